//! The charging mode (`UPLOADGATE_CHARGE`) checked against the rest of the
//! configuration: what upload mode needs, and what it cannot work with.
//!
//! Upload mode pays for what lands: a grant is a reservation that the
//! object's arrival settles and that is released (its quota handed back)
//! when nothing arrived by the URL's expiry plus the grace. So it needs an
//! event source, and every upload it admits must be reserved; a
//! configuration that breaks either is refused at start, with one line
//! naming the setting (see `docs/design/settlement.md`).

use std::time::Duration;

use uploadgate_core::{Policy, Reservation, Subject, codec};

use crate::settings::{
    ChargeChoice, IdentitySource, SettingError, Settings, StoreChoice, TargetChoice,
};

/// The settlement grace in upload mode, `None` in grant mode; or why the
/// settings cannot charge as they ask.
pub(crate) fn settlement(s: &Settings) -> Result<Option<Duration>, SettingError> {
    if s.usage_table.is_some() && s.store != StoreChoice::Dynamodb {
        return Err(SettingError::new(
            "UPLOADGATE_USAGE_TABLE",
            "is only read by the dynamodb store (the memory and file stores keep their usage ledger themselves)",
        ));
    }
    if s.charge == ChargeChoice::Grant {
        for (name, set) in [
            ("UPLOADGATE_SETTLE_QUEUE_URL", s.settle_queue_url.is_some()),
            (
                "UPLOADGATE_ACCEPTED_QUEUE_URL",
                s.accepted_queue_url.is_some(),
            ),
        ] {
            if set {
                return Err(SettingError::new(
                    name,
                    "is only read with UPLOADGATE_CHARGE=upload (grant mode settles nothing)",
                ));
            }
        }
        return Ok(None);
    }
    if s.target == TargetChoice::S3 && s.settle_queue_url.is_none() {
        return Err(SettingError::new(
            "UPLOADGATE_SETTLE_QUEUE_URL",
            "required with UPLOADGATE_CHARGE=upload and UPLOADGATE_TARGET=s3: the SQS queue the bucket sends its s3:ObjectCreated:* events to, which settles what lands (without it every grant would be refunded after its URL's TTL plus the grace)",
        ));
    }
    if s.target == TargetChoice::Local && s.settle_queue_url.is_some() {
        return Err(SettingError::new(
            "UPLOADGATE_SETTLE_QUEUE_URL",
            "is for UPLOADGATE_TARGET=s3: the embedded bucket (`local`) settles in-process",
        ));
    }
    if s.fail_open {
        return Err(SettingError::new(
            "UPLOADGATE_FAIL_OPEN",
            "`true` cannot be combined with UPLOADGATE_CHARGE=upload: an upload admitted while the store is down has no reservation, so the settle step would quarantine it",
        ));
    }
    if s.shadow {
        return Err(SettingError::new(
            "UPLOADGATE_SHADOW",
            "`true` cannot be combined with UPLOADGATE_CHARGE=upload: an upload shadow mode admits over a limit has no reservation, so the settle step would quarantine it",
        ));
    }
    if s.identity == IdentitySource::Anonymous {
        return Err(SettingError::new(
            "UPLOADGATE_IDENTITY",
            "`anonymous` cannot be combined with UPLOADGATE_CHARGE=upload: every upload would be reserved under one shared user key, whose pending uploads and usage all callers would share",
        ));
    }
    if s.store == StoreChoice::Dynamodb && s.usage_table.is_none() {
        return Err(SettingError::new(
            "UPLOADGATE_USAGE_TABLE",
            "required with UPLOADGATE_CHARGE=upload and the dynamodb store: settled uploads are recorded there (create it with `uploadgate table create`)",
        ));
    }
    check_reserved_state(s)?;
    Ok(Some(s.settle_grace))
}

/// Refuses upload mode where a user's state, with every reservation it may
/// hold, could outgrow [`codec::MAX_RESERVED_STATE_BYTES`]: the limits'
/// own bound ([`codec::max_encoded_len`], which `UPLOADGATE_LIMITS` and
/// `UPLOADGATE_TIERS` already keep under [`codec::MAX_STATE_BYTES`]) plus
/// [`codec::max_reservations_len`] for the longest content type and tier
/// name that can be reserved.
fn check_reserved_state(s: &Settings) -> Result<(), SettingError> {
    let content_type = s.content_types.0.iter().map(String::len).max().unwrap_or(0);
    let tier = s.tiers.0.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    let policies: Vec<&Policy> = std::iter::once(&s.limits.0)
        .chain(s.tiers.0.iter().map(|(_, p)| p))
        .collect();
    // A user's reservations may come from any of their tiers.
    let reservations = policies
        .iter()
        .map(|p| codec::max_reservations_len(p, content_type, tier))
        .max()
        .unwrap_or(0);
    let worst = policies
        .iter()
        .map(|p| codec::max_encoded_len(p, Subject::User).unwrap_or(codec::MAX_STATE_BYTES))
        .max()
        .unwrap_or(0)
        + reservations;
    if worst > codec::MAX_RESERVED_STATE_BYTES {
        return Err(SettingError::new(
            "UPLOADGATE_CHARGE",
            format!(
                "`upload` keeps up to {} reservations in a user's state, which under these limits and content types could reach {worst} bytes, over the {}-byte budget of one store item; use shorter content types (UPLOADGATE_CONTENT_TYPES) or fewer user limits",
                Reservation::MAX_PENDING + Reservation::MAX_DONE,
                codec::MAX_RESERVED_STATE_BYTES
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::StoreKind;
    use crate::config::tests::env;
    use std::time::Duration;

    const UPLOAD: (&str, &str) = ("UPLOADGATE_CHARGE", "upload");

    /// Settings, by name.
    type Env<'a> = &'a [(&'a str, &'a str)];

    #[test]
    fn grant_is_the_default_and_upload_takes_the_grace() {
        assert_eq!(env(&[]).unwrap().gate.settlement, None);
        let c = env(&[UPLOAD]).unwrap();
        assert_eq!(c.gate.settlement, Some(Duration::from_secs(15 * 60)));
        let c = env(&[UPLOAD, ("UPLOADGATE_SETTLE_GRACE", "2h")]).unwrap();
        assert_eq!(c.gate.settlement, Some(Duration::from_secs(7200)));
        for bad in ["30s", "2d", "soon"] {
            let e = env(&[UPLOAD, ("UPLOADGATE_SETTLE_GRACE", bad)]).unwrap_err();
            assert_eq!(e.setting, "UPLOADGATE_SETTLE_GRACE", "{bad}");
        }
        let e = env(&[("UPLOADGATE_CHARGE", "later")]).unwrap_err();
        assert_eq!(e.setting, "UPLOADGATE_CHARGE");
        assert!(
            e.message.contains("grant") && e.message.contains("upload"),
            "{e}"
        );
    }

    #[test]
    fn upload_mode_on_s3_takes_its_queues() {
        let events = "https://sqs.eu-west-1.amazonaws.com/123456789012/uploadgate-events";
        let accepted = "http://127.0.0.1:4566/000000000000/accepted";
        let c = env(&[
            UPLOAD,
            ("UPLOADGATE_TARGET", "s3"),
            ("UPLOADGATE_SETTLE_QUEUE_URL", events),
            ("UPLOADGATE_ACCEPTED_QUEUE_URL", accepted),
        ])
        .unwrap();
        assert_eq!(c.settle_queue_url.as_deref(), Some(events));
        assert_eq!(c.accepted_queue_url.as_deref(), Some(accepted));
        // The embedded bucket settles in-process: no queue of events.
        let e = env(&[UPLOAD, ("UPLOADGATE_SETTLE_QUEUE_URL", events)]).unwrap_err();
        assert_eq!(e.setting, "UPLOADGATE_SETTLE_QUEUE_URL");
        assert!(e.message.contains("settles in-process"), "{e}");
        for name in [
            "UPLOADGATE_SETTLE_QUEUE_URL",
            "UPLOADGATE_ACCEPTED_QUEUE_URL",
        ] {
            let e = env(&[("UPLOADGATE_TARGET", "s3"), (name, events)]).unwrap_err();
            assert_eq!(e.setting, name);
            assert!(
                e.message
                    .contains("only read with UPLOADGATE_CHARGE=upload"),
                "{e}"
            );
            let e = env(&[UPLOAD, (name, "sqs/events")]).unwrap_err();
            assert_eq!(e.setting, name);
            assert!(e.message.contains("URL"), "{e}");
        }
    }

    /// Each refusal is one line naming the setting, and says why.
    #[test]
    fn upload_mode_refuses_what_would_leave_uploads_unreserved_or_unsettled() {
        let jwt = [
            ("UPLOADGATE_JWT_ISSUER", "https://issuer.example.com"),
            ("UPLOADGATE_JWT_AUDIENCE", "client"),
        ];
        let cases: [(Env, &str, &str); 5] = [
            (
                &[("UPLOADGATE_TARGET", "s3")],
                "UPLOADGATE_SETTLE_QUEUE_URL",
                "every grant would be refunded",
            ),
            (
                &[("UPLOADGATE_FAIL_OPEN", "true")],
                "UPLOADGATE_FAIL_OPEN",
                "no reservation",
            ),
            (
                &[("UPLOADGATE_SHADOW", "true")],
                "UPLOADGATE_SHADOW",
                "no reservation",
            ),
            (
                &[
                    ("UPLOADGATE_IDENTITY", "anonymous"),
                    ("UPLOADGATE_LIMITS", "burst=ip:10/1m"),
                ],
                "UPLOADGATE_IDENTITY",
                "one shared user key",
            ),
            (
                &[
                    ("UPLOADGATE_STORE", "dynamodb"),
                    ("UPLOADGATE_TABLE", "quota"),
                ],
                "UPLOADGATE_USAGE_TABLE",
                "settled uploads are recorded there",
            ),
        ];
        for (pairs, setting, why) in cases {
            let mut all = vec![UPLOAD];
            all.extend_from_slice(pairs);
            let e = env(&all).unwrap_err();
            assert_eq!(e.setting, setting, "{e}");
            assert!(e.message.contains(why), "{e}");
            let line = e.to_string();
            assert!(line.starts_with(&format!("invalid {setting}: ")), "{line}");
            assert!(!line.contains('\n'), "{line}");
            // Each is fine in grant mode.
            assert!(env(pairs).is_ok(), "{pairs:?}");
        }
        // jwt identity is fine.
        let mut ok = vec![UPLOAD, ("UPLOADGATE_IDENTITY", "jwt")];
        ok.extend_from_slice(&jwt);
        assert!(env(&ok).is_ok());
    }

    #[test]
    fn the_usage_table_belongs_to_the_dynamodb_store() {
        let c = env(&[
            UPLOAD,
            ("UPLOADGATE_STORE", "dynamodb"),
            ("UPLOADGATE_TABLE", "quota"),
            ("UPLOADGATE_USAGE_TABLE", "usage"),
        ])
        .unwrap();
        assert!(
            matches!(&c.store, StoreKind::Dynamodb { usage_table: Some(t), .. } if t == "usage"),
            "{:?}",
            c.store
        );
        let e = env(&[("UPLOADGATE_USAGE_TABLE", "usage")]).unwrap_err();
        assert_eq!(e.setting, "UPLOADGATE_USAGE_TABLE");
        assert!(e.message.contains("only read by the dynamodb store"), "{e}");
    }

    #[test]
    fn reservations_count_in_the_state_budget() {
        // The defaults fit easily.
        assert!(env(&[UPLOAD]).is_ok());
        // A content type of 1000 characters, reserved 288 times, does not.
        let long = format!("application/{}", "x".repeat(1000));
        let e = env(&[UPLOAD, ("UPLOADGATE_CONTENT_TYPES", &long)]).unwrap_err();
        assert_eq!(e.setting, "UPLOADGATE_CHARGE");
        assert!(e.message.contains("288 reservations"), "{e}");
        assert!(e.message.contains("262144-byte budget"), "{e}");
        assert!(env(&[("UPLOADGATE_CONTENT_TYPES", &long)]).is_ok());
    }
}
