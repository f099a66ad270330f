use std::fmt;
use std::net::IpAddr;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The identifier was empty.
    #[error("user id is empty")]
    Empty,
    /// The identifier was longer than [`UserId::MAX_LEN`].
    #[error("user id is longer than {max} characters")]
    TooLong {
        /// The maximum length.
        max: usize,
    },
    /// The identifier had a character outside the allowed set.
    #[error("user id contains {0:?}; allowed are letters, digits and . _ - @ + = : |")]
    BadChar(char),
    /// The identifier was only dots (`.`, `..`): a path segment of its own.
    #[error("user id is only dots, which a key path would read as `.` or `..`")]
    OnlyDots,
}

/// A caller's identity, as established by the identity extractor.
///
/// It becomes part of a store key and of an S3 object key, so the character
/// set is closed: no `/`, no whitespace, nothing that needs escaping in a key
/// prefix. That is what keeps one user's objects under their own prefix.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);

impl UserId {
    /// Longest accepted identifier, in bytes.
    pub const MAX_LEN: usize = 128;

    /// Parses an identifier.
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        if raw.is_empty() {
            return Err(IdError::Empty);
        }
        if raw.len() > Self::MAX_LEN {
            return Err(IdError::TooLong { max: Self::MAX_LEN });
        }
        if let Some(c) = raw
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "._-@+=:|".contains(*c)))
        {
            return Err(IdError::BadChar(c));
        }
        // `uploads/../<uuid>/a.pdf` would leave the user's prefix.
        if raw.bytes().all(|b| b == b'.') {
            return Err(IdError::OnlyDots);
        }
        Ok(UserId(raw.to_owned()))
    }

    /// The identifier as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whose quota a limit counts against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    /// The authenticated user.
    User,
    /// The client's IP address (IPv6 by its /64).
    Ip,
}

impl Subject {
    /// The subject's name in configuration and responses.
    pub fn as_str(self) -> &'static str {
        match self {
            Subject::User => "user",
            Subject::Ip => "ip",
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The key under which one subject's state is stored, e.g. `user#alice` or
/// `ip#2001:db8:1:2::/64`. All limits of one subject share one key, so a
/// request that only has user limits is a single-key compare-and-swap.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StateKey(String);

impl StateKey {
    /// The key of a user.
    pub fn user(user: &UserId) -> Self {
        StateKey(format!("user#{}", user.as_str()))
    }

    /// The key of a client address. IPv6 clients are keyed by their /64,
    /// since one subscriber usually holds a whole /64 and could otherwise
    /// rotate through addresses to escape the limit.
    pub fn ip(addr: IpAddr) -> Self {
        let addr = match addr {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let s = v6.segments();
                    let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                    return StateKey(format!("ip#{net}/64"));
                }
            },
            v4 => v4,
        };
        StateKey(format!("ip#{addr}"))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The subjects a request is made by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subjects {
    /// The authenticated user.
    pub user: UserId,
    /// The client's address, when known.
    pub ip: Option<IpAddr>,
}

impl Subjects {
    /// The state key for one subject, if the request has it.
    pub fn key(&self, subject: Subject) -> Option<StateKey> {
        match subject {
            Subject::User => Some(StateKey::user(&self.user)),
            Subject::Ip => self.ip.map(StateKey::ip),
        }
    }
}

/// An S3 object key chosen by the server: `<prefix><user>/<uuid>/<name>`.
///
/// The caller never chooses it. The user id has a closed character set and
/// the file name is sanitized, so a key can never leave its user's prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectKey(String);

impl ObjectKey {
    /// Builds the key for an upload. `unique` is a fresh random id (a UUID).
    pub fn for_upload(prefix: &str, user: &UserId, unique: &str, filename: &str) -> Self {
        let user = user.as_str();
        let mut key =
            String::with_capacity(prefix.len() + user.len() + unique.len() + 2 + MAX_FILENAME);
        key.push_str(prefix);
        key.push_str(user);
        key.push('/');
        key.push_str(unique);
        key.push('/');
        push_sanitized_filename(&mut key, filename);
        ObjectKey(key)
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The longest name [`sanitize_filename`] returns, in bytes.
const MAX_FILENAME: usize = 100;

/// Reduces a client-supplied file name to a safe last path segment.
///
/// Only the part after the last `/` or `\` is kept, characters outside
/// `[A-Za-z0-9._-]` become `_`, leading dots are dropped (no `..`, no hidden
/// files), and the result is at most 100 bytes; an empty result is `file`.
pub fn sanitize_filename(raw: &str) -> String {
    let mut out = String::new();
    push_sanitized_filename(&mut out, raw);
    out
}

/// [`sanitize_filename`], appended to `out` in one pass (it runs for every
/// upload).
fn push_sanitized_filename(out: &mut String, raw: &str) {
    let start = out.len();
    let last = raw
        .bytes()
        .rposition(|b| b == b'/' || b == b'\\')
        .map_or(raw, |i| &raw[i + 1..]);
    out.reserve(last.len().min(2 * MAX_FILENAME));
    for c in last.chars() {
        let c = if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
            c
        } else {
            '_'
        };
        // Leading dots are dropped.
        if !(c == '.' && out.len() == start) {
            out.push(c);
        }
    }
    // Only ASCII was pushed, so byte offsets are character boundaries.
    if out.len() - start > MAX_FILENAME {
        // Keep the extension, which downstream processing keys on.
        let ext = out[start..]
            .rfind('.')
            .map(|i| out[start + i..].to_owned())
            .filter(|e| e.len() <= 16)
            .unwrap_or_default();
        out.truncate(start + MAX_FILENAME - ext.len());
        out.push_str(&ext);
    }
    if out.len() == start {
        out.push_str("file");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn user_ids() {
        assert_eq!(UserId::parse("alice").map(|u| u.0), Ok("alice".into()));
        assert_eq!(
            UserId::parse("auth0|5f7c@x.io").map(|u| u.0),
            Ok("auth0|5f7c@x.io".into())
        );
        assert_eq!(UserId::parse(""), Err(IdError::Empty));
        assert_eq!(UserId::parse("."), Err(IdError::OnlyDots));
        assert_eq!(UserId::parse(".."), Err(IdError::OnlyDots));
        assert_eq!(UserId::parse("..."), Err(IdError::OnlyDots));
        assert_eq!(UserId::parse(".a.").map(|u| u.0), Ok(".a.".into()));
        assert_eq!(UserId::parse("a/b"), Err(IdError::BadChar('/')));
        assert_eq!(UserId::parse("a b"), Err(IdError::BadChar(' ')));
        assert_eq!(
            UserId::parse(&"x".repeat(129)),
            Err(IdError::TooLong { max: 128 })
        );
    }

    #[test]
    fn ip_keys() {
        assert_eq!(
            StateKey::ip("203.0.113.7".parse().unwrap()).as_str(),
            "ip#203.0.113.7"
        );
        assert_eq!(
            StateKey::ip("2001:db8:1:2:3:4:5:6".parse().unwrap()).as_str(),
            "ip#2001:db8:1:2::/64"
        );
        assert_eq!(
            StateKey::ip("2001:db8:1:2:ffff::1".parse().unwrap()),
            StateKey::ip("2001:db8:1:2::9".parse().unwrap())
        );
        assert_eq!(
            StateKey::ip("::ffff:10.1.2.3".parse().unwrap()).as_str(),
            "ip#10.1.2.3"
        );
    }

    #[test]
    fn filenames() {
        assert_eq!(sanitize_filename("invoice.pdf"), "invoice.pdf");
        assert_eq!(sanitize_filename("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_filename("..\\..\\boot.ini"), "boot.ini");
        assert_eq!(sanitize_filename(".."), "file");
        assert_eq!(sanitize_filename(""), "file");
        assert_eq!(
            sanitize_filename("Mé facture (1).pdf"),
            "M__facture__1_.pdf"
        );
        let long = format!("{}.pdf", "a".repeat(300));
        let s = sanitize_filename(&long);
        assert_eq!(s.len(), 100);
        assert!(s.ends_with(".pdf"));
    }

    /// The rules of [`sanitize_filename`] written the obvious way, step by
    /// step: the oracle of the one-pass version.
    fn sanitized_step_by_step(raw: &str) -> String {
        let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
        let mapped: String = last
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let mut out = mapped.trim_start_matches('.').to_owned();
        if out.len() > 100 {
            let ext = out.rfind('.').map(|i| out[i..].to_owned());
            let ext = ext.filter(|e| e.len() <= 16).unwrap_or_default();
            out.truncate(100 - ext.len());
            out.push_str(&ext);
        }
        if out.is_empty() {
            "file".to_owned()
        } else {
            out
        }
    }

    proptest! {
        #[test]
        fn one_pass_sanitizing_follows_the_rules(
            raw in r"[a-z./\\é (]{0,12}|[a-z.]{90,130}(\.[a-z]{1,20})?|.*"
        ) {
            let key = ObjectKey::for_upload("p/", &UserId::parse("u").unwrap(), "x", &raw);
            let expected = sanitized_step_by_step(&raw);
            prop_assert_eq!(key.as_str(), format!("p/u/x/{expected}"));
            prop_assert_eq!(sanitize_filename(&raw), expected);
        }

        #[test]
        fn keys_never_escape_their_prefix(name in ".*", user in "[a-z0-9._@+=:|-]{1,8}") {
            let Ok(user) = UserId::parse(&user) else {
                prop_assert!(user.bytes().all(|b| b == b'.'), "{} refused", user);
                return Ok(());
            };
            let key = ObjectKey::for_upload("uploads/", &user, "u-1", &name);
            prop_assert!(key.as_str().split('/').all(|seg| seg != "." && seg != ".."), "{}", key);
            let rest = key.as_str().strip_prefix(&format!("uploads/{user}/u-1/")).unwrap();
            prop_assert!(!rest.contains('/'));
            prop_assert!(!rest.contains('\\'));
            prop_assert!(!rest.starts_with('.'));
            prop_assert!(!rest.is_empty() && rest.len() <= 100);
        }
    }
}
