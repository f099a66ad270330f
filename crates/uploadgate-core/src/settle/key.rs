//! Reading back the object keys the gate hands out,
//! `<prefix><user>/<uuid>/<name>` ([`ObjectKey::for_upload`]), and the time
//! a UUIDv7 carries. Parsed by hand: the core takes no UUID dependency for
//! 36 characters of hex.
//!
//! [`ObjectKey::for_upload`]: crate::ObjectKey::for_upload

use crate::clock::Timestamp;
use crate::domain::UserId;

/// The user and the UUID's bytes of a key the gate hands out under
/// `prefix`, or `None` if the key is not one.
pub(crate) fn parse(prefix: &str, key: &str) -> Option<(UserId, [u8; 16])> {
    let rest = key.strip_prefix(prefix)?;
    let mut parts = rest.splitn(3, '/');
    let user = UserId::parse(parts.next()?).ok()?;
    let unique = uuid(parts.next()?)?;
    let name = parts.next()?;
    // A sanitized file name: one non-empty segment.
    if name.is_empty() || name.contains('/') {
        return None;
    }
    Some((user, unique))
}

/// The bytes of a UUID in its hyphenated form (`8-4-4-4-12` hex digits,
/// either case).
fn uuid(text: &str) -> Option<[u8; 16]> {
    let bytes = text.as_bytes();
    if bytes.len() != 36 {
        return None;
    }
    const DASHES: [usize; 4] = [8, 13, 18, 23];
    if DASHES.iter().any(|&i| bytes[i] != b'-') {
        return None;
    }
    let mut digits = bytes
        .iter()
        .enumerate()
        .filter(|(i, _)| !DASHES.contains(i))
        .map(|(_, c)| hex(*c));
    let mut out = [0u8; 16];
    for byte in &mut out {
        *byte = (digits.next()?? << 4) | digits.next()??;
    }
    Some(out)
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// When a UUIDv7 was made: its first 48 bits, big-endian milliseconds since
/// the epoch. `None` for another version (which carries no time).
pub(crate) fn v7_time(unique: &[u8; 16]) -> Option<Timestamp> {
    if unique[6] >> 4 != 7 {
        return None;
    }
    let mut ms = [0u8; 8];
    ms[2..].copy_from_slice(&unique[..6]);
    Some(Timestamp(u64::from_be_bytes(ms)))
}

/// The hyphenated lower-case form of a UUID's bytes, as the gate writes it
/// into object keys.
#[cfg(any(test, feature = "conformance"))]
pub(crate) fn hyphenated(unique: &[u8; 16]) -> String {
    let mut out = String::with_capacity(36);
    for (i, b) in unique.iter().enumerate() {
        if [4, 6, 8, 10].contains(&i) {
            out.push('-');
        }
        out.push_str(&format!("{b:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ObjectKey;

    const V7: [u8; 16] = [
        0x01, 0x93, 0x12, 0x34, 0x56, 0x78, 0x7a, 0xbc, 0x8d, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89,
        0xab,
    ];

    #[test]
    fn keys_the_gate_hands_out_parse_back() {
        let alice = UserId::parse("alice@x.io").unwrap();
        let text = hyphenated(&V7);
        assert_eq!(text, "01931234-5678-7abc-8def-0123456789ab");
        let key = ObjectKey::for_upload("uploads/", &alice, &text, "../Report 1.pdf");
        assert_eq!(parse("uploads/", key.as_str()), Some((alice.clone(), V7)));
        let upper = format!("uploads/alice@x.io/{}/a.pdf", text.to_uppercase());
        assert_eq!(parse("uploads/", &upper), Some((alice.clone(), V7)));
        // An empty prefix works too.
        let bare = ObjectKey::for_upload("", &alice, &text, "a");
        assert_eq!(parse("", bare.as_str()), Some((alice, V7)));
    }

    #[test]
    fn other_keys_are_not_ours() {
        let uuid = hyphenated(&V7);
        for key in [
            format!("other/alice/{uuid}/a.pdf"),
            format!("uploads/alice/{uuid}"),
            format!("uploads/alice/{uuid}/"),
            format!("uploads/alice/{uuid}/a/b.pdf"),
            format!("uploads/al ice/{uuid}/a.pdf"),
            format!("uploads/../{uuid}/a.pdf"),
            format!("uploads/alice/{}/a.pdf", &uuid[1..]),
            format!("uploads/alice/{}/a.pdf", uuid.replace('-', "")),
            format!("uploads/alice/{}x/a.pdf", &uuid[..35]),
            format!("uploads/alice/{}/a.pdf", uuid.replacen('-', "0", 1)),
            "uploads/alice".to_owned(),
            String::new(),
        ] {
            assert_eq!(parse("uploads/", &key), None, "{key}");
        }
    }

    #[test]
    fn a_uuid_v7_tells_its_time_and_others_do_not() {
        assert_eq!(v7_time(&V7), Some(Timestamp(0x0193_1234_5678)));
        let mut v4 = V7;
        v4[6] = 0x4a;
        assert_eq!(v7_time(&v4), None);
    }
}
