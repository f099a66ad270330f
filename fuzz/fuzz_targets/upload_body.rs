//! The body of `POST /v1/uploads`: the parse, the checks against the gate,
//! the object key built from the result, and the `body`-mode identity.
//!
//! The parse is compared with an oracle that reads the body with
//! `serde_json` alone: a body is accepted exactly when it is one JSON object
//! whose known fields appear at most once, each `null` or valid, and what
//! is accepted equals what the oracle read. Every refusal is a one-line
//! message of bounded length.
#![no_main]

use std::fmt;
use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::StatusCode;
use libfuzzer_sys::fuzz_target;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use uploadgate_core::{ObjectKey, Policy, UserId};
use uploadgate_fuzz::check_message;
use uploadgate_http::fuzzing::{self, MAX_MESSAGE_BYTES, UploadFields};
use uploadgate_http::{ApiError, ClientIpSource, CorsOrigins, GateConfig, IdentityMode};

const MAX_OBJECT_BYTES: u64 = 100 << 20;
/// The policy's one byte limit: a size over it can never be admitted.
const VOLUME_BYTES: u64 = 50 << 20;
const CONTENT_TYPES: [&str; 3] = ["application/pdf", "image/png", "text/plain"];
const MAX_FILENAME_BYTES: usize = 1024;
const MAX_CONTENT_TYPE_BYTES: usize = 255;

static GATE: LazyLock<GateConfig> = LazyLock::new(|| GateConfig {
    policy: "uploads=user:5/3h;volume=user:50MiB/1d;month=ip:10GiB/1mo:fixed"
        .parse::<Policy>()
        .expect("the fuzz policy parses"),
    max_object_bytes: MAX_OBJECT_BYTES,
    content_types: CONTENT_TYPES.iter().map(|s| (*s).to_owned()).collect(),
    key_prefix: "uploads/".into(),
    identity: IdentityMode::Body,
    client_ip: ClientIpSource::Peer,
    cors: CorsOrigins::None,
    origin_secret: None,
    fail_open: false,
    emf_metrics: false,
    shadow: false,
    require_checksum: false,
    tiers: Vec::new(),
    settlement: None,
});

/// A JSON object's members in order, repeats kept (a `Value` keeps only
/// the last of a repeated key, the handler's parse refuses the repeat).
struct Members(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, Value>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(V)
    }
}

impl Members {
    /// The one value of `key`: `Ok(None)` if absent or `null`, `Err` if
    /// repeated.
    fn field(&self, key: &str) -> Result<Option<&Value>, ()> {
        let mut found = self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v);
        match (found.next(), found.next()) {
            (Some(_), Some(_)) => Err(()),
            (Some(Value::Null) | None, None) => Ok(None),
            (Some(v), None) => Ok(Some(v)),
            (None, Some(_)) => unreachable!(),
        }
    }
}

/// The members of a body that is one JSON object (RFC 8259: UTF-8, one
/// value): `Err(true)` if it is not, `Err(false)` if it is but a `String`
/// cannot hold one of its strings (an escaped lone surrogate, `"\ud800"`,
/// is valid JSON): the handler refuses that only in a field it reads.
fn members(body: &[u8]) -> Result<Members, bool> {
    let text = std::str::from_utf8(body).map_err(|_| true)?;
    serde_json::from_str::<Members>(text).map_err(|_| {
        let object = text.trim_start().starts_with('{');
        !(object && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok())
    })
}

/// What the handler's parse must give for `body`, or `None` if it must
/// refuse it. Not JSON is refused.
fn oracle(body: &[u8]) -> Option<Fields> {
    let members: Members = members(body).ok()?;
    let filename = match members.field("filename").ok()? {
        None => None,
        Some(Value::String(s)) if s.len() <= MAX_FILENAME_BYTES => Some(s.clone()),
        Some(_) => return None,
    };
    let content_type = match members.field("contentType").ok()? {
        None => None,
        Some(Value::String(s)) => {
            let ct = s.trim().to_ascii_lowercase();
            // A media type is at most 127/127 characters (RFC 6838).
            if ct.len() > MAX_CONTENT_TYPE_BYTES {
                return None;
            }
            Some(ct)
        }
        Some(_) => return None,
    };
    let size = match members.field("size").ok()? {
        None => None,
        // A whole number, however written (`12`, `12.0`, `1.2e1`): JSON has
        // one number type. Past u64 it saturates (too large, not malformed).
        Some(Value::Number(n)) => {
            let whole = n.as_u64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                    .map(|f| f as u64)
            });
            Some(whole.filter(|&n| n >= 1)?)
        }
        Some(_) => return None,
    };
    let checksum = match members.field("checksumSha256").ok()? {
        None => None,
        // Standard base64 of exactly 32 bytes, in its one canonical form.
        Some(Value::String(s)) => {
            let digest = STANDARD.decode(s).ok()?;
            if digest.len() != 32 || STANDARD.encode(&digest) != *s {
                return None;
            }
            Some(s.clone())
        }
        Some(_) => return None,
    };
    Some((filename, content_type, size, checksum))
}

/// `filename`, `contentType`, `size`, `checksumSha256` as the handler must
/// read them.
type Fields = (Option<String>, Option<String>, Option<u64>, Option<String>);

/// What `body` mode must make of `body`: `Ok(Some(id))`, `Ok(None)` for no
/// `userId`, `Err(())` for a 400.
fn body_user_oracle(body: &[u8]) -> Result<Option<String>, ()> {
    let members: Members = members(body).map_err(|_| ())?;
    match members.field("userId")? {
        None => Ok(None),
        Some(Value::String(s)) => UserId::parse(s).map(|_| Some(s.clone())).map_err(|_| ()),
        Some(_) => Err(()),
    }
}

/// A refusal of a client's body: its status, and a message a client can
/// read in one line.
fn check_refusal(e: &ApiError, allowed: &[StatusCode]) {
    assert!(
        allowed.contains(&e.status()),
        "unexpected {:?}: {e}",
        e.status()
    );
    check_message(&e.to_string(), MAX_MESSAGE_BYTES);
}

fn check_parsed(body: &[u8], parsed: &Result<UploadFields, ApiError>) {
    if members(body).is_err_and(|not_json| !not_json) {
        if let Err(e) = parsed {
            check_refusal(e, &[StatusCode::BAD_REQUEST]);
        }
        return;
    }
    let want = oracle(body);
    match (parsed, want) {
        (Ok(got), Some((filename, content_type, size, checksum))) => {
            assert_eq!(got.filename, filename, "filename");
            assert_eq!(got.checksum, checksum, "checksumSha256");
            assert_eq!(got.content_type, content_type, "contentType");
            assert_eq!(got.size, size, "size");
            if let Some(ct) = &got.content_type {
                assert_eq!(ct, ct.trim(), "content type not trimmed");
                assert!(
                    !ct.bytes().any(|b| b.is_ascii_uppercase()),
                    "upper case: {ct}"
                );
            }
            assert!(got.size.is_none_or(|s| s >= 1));
            assert!(
                got.filename
                    .as_ref()
                    .is_none_or(|f| f.len() <= MAX_FILENAME_BYTES)
            );
        }
        (Err(e), None) => check_refusal(e, &[StatusCode::BAD_REQUEST]),
        (Ok(got), None) => panic!("accepted a body the oracle refuses: {got:?}"),
        (Err(e), Some(want)) => panic!("refused a valid body ({want:?}): {e}"),
    }
}

fn check_validated(parsed: &Result<UploadFields, ApiError>, body: &[u8]) -> Option<String> {
    let validated = fuzzing::validate_upload(&GATE, body);
    let fields = match (parsed, &validated) {
        (Err(a), Err(b)) => {
            assert_eq!(a.to_string(), b.to_string(), "a parse error is the error");
            return None;
        }
        (Err(e), Ok(v)) => panic!("validated ({v:?}) a body whose parse fails: {e}"),
        (Ok(fields), _) => fields,
    };
    // Why the gate must refuse, in the handler's order.
    let refusal = match (&fields.content_type, fields.size) {
        (None, _) | (_, None) => Some(StatusCode::BAD_REQUEST),
        (Some(ct), _) if !CONTENT_TYPES.contains(&ct.as_str()) => {
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        }
        (_, Some(size)) if size > MAX_OBJECT_BYTES || size > VOLUME_BYTES => {
            Some(StatusCode::PAYLOAD_TOO_LARGE)
        }
        _ => None,
    };
    match (validated, refusal) {
        (Ok(v), None) => {
            assert_eq!(Some(&v.content_type), fields.content_type.as_ref());
            assert_eq!(Some(v.size), fields.size);
            assert_eq!(v.checksum, fields.checksum);
            assert!((1..=VOLUME_BYTES).contains(&v.size));
            assert_eq!(
                v.filename,
                fields.filename.clone().unwrap_or_else(|| "file".into())
            );
            Some(v.filename)
        }
        (Err(e), Some(status)) => {
            check_refusal(&e, &[status]);
            None
        }
        (Ok(v), Some(status)) => panic!("admitted {v:?}; want {status}"),
        (Err(e), None) => panic!("refused a valid upload {fields:?}: {e}"),
    }
}

/// The key of an admitted upload stays under its user's prefix, and its
/// last segment is a safe file name: the client's, if it already was one.
fn check_key(user: &UserId, filename: &str) {
    const UNIQUE: &str = "0b6a4f1e-6d1c-4c1e-9d43-6f6f3e1f2a7b";
    let key = ObjectKey::for_upload(&GATE.key_prefix, user, UNIQUE, filename);
    let dir = format!("{}{}/{UNIQUE}/", GATE.key_prefix, user.as_str());
    let name = key
        .as_str()
        .strip_prefix(&dir)
        .unwrap_or_else(|| panic!("key {key} is not under {dir}"));
    let safe = |n: &str| {
        !n.is_empty()
            && n.len() <= 100
            && !n.starts_with('.')
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    };
    assert!(safe(name), "unsafe key name {name:?} from {filename:?}");
    let last = filename.rsplit(['/', '\\']).next().unwrap_or_default();
    if safe(last) {
        assert_eq!(name, last, "a safe name is kept as is");
    }
}

fn check_body_caller(body: &[u8]) -> Option<UserId> {
    let caller = fuzzing::body_caller(body);
    if members(body).is_err_and(|not_json| !not_json) {
        return match caller {
            Ok(c) => c.user,
            Err(e) => {
                check_refusal(&e, &[StatusCode::BAD_REQUEST, StatusCode::UNAUTHORIZED]);
                None
            }
        };
    }
    match (caller, body_user_oracle(body)) {
        (Ok(c), Ok(Some(want))) => {
            let user = c.user.expect("body mode names a user");
            assert_eq!(user.as_str(), want);
            assert!(c.tiers.is_empty());
            Some(user)
        }
        (Err(e), Ok(None)) => {
            check_refusal(&e, &[StatusCode::UNAUTHORIZED]);
            None
        }
        (Err(e), Err(())) => {
            check_refusal(&e, &[StatusCode::BAD_REQUEST]);
            None
        }
        (Ok(c), want) => panic!("identified {c:?}; want {want:?}"),
        (Err(e), Ok(Some(want))) => panic!("refused user {want:?}: {e}"),
    }
}

fuzz_target!(|body: &[u8]| {
    let parsed = fuzzing::parse_upload(body);
    check_parsed(body, &parsed);
    let filename = check_validated(&parsed, body);
    let user = check_body_caller(body);
    if let Some(filename) = filename {
        let user = user.unwrap_or_else(|| UserId::parse("fuzz-user").expect("a valid id"));
        check_key(&user, &filename);
    }
});
