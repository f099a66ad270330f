//! S3 event notifications, as they arrive in an SQS message's body.
//!
//! The bucket sends `s3:ObjectCreated:*` for the key prefix to a queue;
//! each message body is an S3 event (`{"Records": [...]}`), or, once, when
//! the notification is configured, S3's `s3:TestEvent`. The shapes are
//! `aws_lambda_events`' own; this module only picks what settling needs and
//! undoes S3's encoding of the key (form encoding: `+` for a space, `%XX`
//! for the rest).

use aws_lambda_events::event::s3::{S3Event, S3EventRecord};
use uploadgate_core::Timestamp;

/// One object that S3 says was created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Created {
    /// The bucket.
    pub bucket: String,
    /// The object key, decoded.
    pub key: String,
    /// Its size as the event reports it.
    pub size: u64,
    /// The event's time: the same on every delivery of the event.
    pub at: Timestamp,
}

/// What one queue message holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notification {
    /// Objects created (a record of another kind is left out and logged).
    Created(Vec<Created>),
    /// S3's test message, sent when the notification is configured.
    Test,
}

/// A message that is not an S3 event notification. Not transient: the same
/// body never parses, so the event source should not retry it (it goes to
/// the dead-letter queue after its receive count).
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// Not JSON, or not the S3 event shape.
    #[error("not an S3 event notification: {0}")]
    Shape(#[from] serde_json::Error),
    /// A record lacks what settling needs.
    #[error("an S3 event record has no {0}")]
    Missing(&'static str),
    /// A record's key is not valid percent-encoded UTF-8.
    #[error("an S3 event record's key is not percent-encoded UTF-8")]
    Key,
}

/// Reads one queue message body.
pub fn parse(body: &str) -> Result<Notification, EventError> {
    #[derive(serde::Deserialize)]
    struct TestEvent {
        #[serde(rename = "Event")]
        event: String,
    }
    if let Ok(t) = serde_json::from_str::<TestEvent>(body)
        && t.event == "s3:TestEvent"
    {
        return Ok(Notification::Test);
    }
    let event: S3Event = serde_json::from_str(body)?;
    let mut created = Vec::with_capacity(event.records.len());
    for record in &event.records {
        let name = record.event_name.as_deref().unwrap_or_default();
        if !name.starts_with("ObjectCreated:") {
            tracing::info!(event = name, "not an ObjectCreated event; left alone");
            continue;
        }
        created.push(one(record)?);
    }
    Ok(Notification::Created(created))
}

fn one(record: &S3EventRecord) -> Result<Created, EventError> {
    let bucket = record
        .s3
        .bucket
        .name
        .clone()
        .ok_or(EventError::Missing("bucket name"))?;
    let raw = record
        .s3
        .object
        .key
        .as_deref()
        .ok_or(EventError::Missing("object key"))?;
    let size = record
        .s3
        .object
        .size
        .and_then(|s| u64::try_from(s).ok())
        .ok_or(EventError::Missing("object size"))?;
    let millis = u64::try_from(record.event_time.timestamp_millis())
        .map_err(|_| EventError::Missing("event time after 1970"))?;
    Ok(Created {
        bucket,
        key: decode_key(raw)?,
        size,
        at: Timestamp(millis),
    })
}

/// Undoes S3's encoding of keys in event notifications (as in an HTML
/// form: `+` is a space, `%2B` a plus).
pub fn decode_key(raw: &str) -> Result<String, EventError> {
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(|k| k.into_owned())
        .map_err(|_| EventError::Key)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// An event as S3 sends it (from the S3 user guide's example), for two
    /// objects, one of them with a space and a plus in its name.
    const EVENT: &str = r#"{"Records":[
      {"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1",
       "eventTime":"2026-12-02T06:00:00.123Z","eventName":"ObjectCreated:Put",
       "userIdentity":{"principalId":"AWS:AIDAEXAMPLE"},
       "requestParameters":{"sourceIPAddress":"203.0.113.9"},
       "responseElements":{"x-amz-request-id":"C3D13FE58DE4C810","x-amz-id-2":"FMyUVURIY8"},
       "s3":{"s3SchemaVersion":"1.0","configurationId":"uploadgate-settle",
             "bucket":{"name":"uploads","ownerIdentity":{"principalId":"A3NL1KOZZKExample"},"arn":"arn:aws:s3:::uploads"},
             "object":{"key":"uploads/alice/0193c1de-9f00-7000-8000-000000000001/my+report%2B1.pdf","size":1024,"eTag":"d41d8cd98f00b204e9800998ecf8427e","sequencer":"0055AED6DCD90281E5"}}},
      {"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1",
       "eventTime":"2026-12-02T06:00:01Z","eventName":"ObjectRemoved:Delete",
       "userIdentity":{"principalId":"AWS:AIDAEXAMPLE"},
       "requestParameters":{"sourceIPAddress":"203.0.113.9"},
       "responseElements":{},
       "s3":{"s3SchemaVersion":"1.0","bucket":{"name":"uploads"},
             "object":{"key":"uploads/alice/x/y.pdf","sequencer":"0055AED6DCD90281E6"}}}
    ]}"#;

    #[test]
    fn created_records_are_read_and_their_keys_decoded() {
        let Notification::Created(created) = parse(EVENT).unwrap() else {
            panic!("not created");
        };
        assert_eq!(
            created,
            vec![Created {
                bucket: "uploads".into(),
                key: "uploads/alice/0193c1de-9f00-7000-8000-000000000001/my report+1.pdf".into(),
                size: 1024,
                at: Timestamp(1_796_191_200_123),
            }]
        );
    }

    #[test]
    fn the_test_event_is_recognised() {
        let body = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-12-02T06:00:00.000Z","Bucket":"uploads","RequestId":"5582815E1AEA5ADF","HostId":"8cLeGAmw"}"#;
        assert_eq!(parse(body).unwrap(), Notification::Test);
    }

    #[test]
    fn what_is_not_an_s3_event_is_refused_with_the_reason() {
        for (body, want) in [
            ("not json", "not an S3 event notification"),
            (r#"{"Records": 3}"#, "not an S3 event notification"),
            (
                &EVENT.replace(r#""size":1024,"#, ""),
                "an S3 event record has no object size",
            ),
            (
                &EVENT.replace("my+report%2B1.pdf", "bad%FF.pdf"),
                "not percent-encoded UTF-8",
            ),
        ] {
            let e = parse(body).unwrap_err().to_string();
            assert!(e.contains(want), "{body}: {e}");
        }
    }

    #[test]
    fn keys_decode_as_s3_encodes_them() {
        assert_eq!(decode_key("a+b%20c%2Bd%C3%A9").unwrap(), "a b c+dé");
        assert_eq!(decode_key("plain/key.pdf").unwrap(), "plain/key.pdf");
    }
}
