//! The bucket's side of settlement: each stored object is reported once
//! (only by the `PUT` that created it), with what it stored; a quarantined
//! object keeps its bytes and shows the tag `uploadgate-quarantine`.

use std::sync::{Arc, Mutex};

use s3s::crypto::{Checksum as _, Sha256};
use uploadgate_core::Timestamp;
use uploadgate_core::settle::{Landed, Quarantine, QuarantineReason};
use uploadgate_s3::{ChecksumSha256, Landings, QUARANTINE_TAG};

use super::*;

/// Keeps what it is told, at a fixed time.
#[derive(Default)]
struct Recorded(Mutex<Vec<Landed>>);

impl Landings for Recorded {
    fn now(&self) -> Timestamp {
        Timestamp(1_800_000_000_000)
    }

    fn landed(&self, landed: Landed) {
        self.0.lock().unwrap().push(landed);
    }
}

#[tokio::test]
async fn the_put_that_stores_an_object_reports_it_once() {
    let b = bucket().await;
    let seen = Arc::new(Recorded::default());
    assert!(b.bucket.set_landings(seen.clone()));
    assert!(
        !b.bucket.set_landings(Arc::new(Recorded::default())),
        "the first stays"
    );
    let body = b"%PDF-1.7 reported";
    let sum = ChecksumSha256::from_digest(Sha256::checksum(body));
    let key = new_key("r.pdf");
    let spec = PutSpec::new(&key, "application/pdf", body.len() as u64).with_checksum_sha256(&sum);
    let up = b.sign_spec(&spec).await;
    // Refused PUTs store nothing and report nothing.
    assert_eq!(send(&up, &[], b"%PDF-1.7 reportex").await.0, 400);
    assert!(seen.0.lock().unwrap().is_empty());
    assert_eq!(send(&up, &[], body).await.0, 200);
    assert_eq!(send(&up, &[], body).await.0, 412);
    let got = seen.0.lock().unwrap().clone();
    assert_eq!(
        got,
        [Landed {
            bucket: "uploads".into(),
            key: key.as_str().to_owned(),
            size: body.len() as u64,
            content_type: Some("application/pdf".into()),
            checksum_sha256: Some(*sum.digest()),
            created_at: Timestamp(1_800_000_000_000),
        }]
    );
    // Without a checksum header there is no checksum to report.
    let (plain, up) = b.sign("p.png", "image/png", 3).await;
    assert_eq!(send(&up, &[], b"png").await.0, 200);
    let last = seen.0.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        (last.key.as_str(), last.checksum_sha256),
        (plain.as_str(), None)
    );
}

#[tokio::test]
async fn a_quarantined_object_shows_its_tag_and_keeps_its_bytes() {
    let b = bucket().await;
    let (key, up) = b.sign("q.pdf", "application/pdf", 4).await;
    assert_eq!(send(&up, &[], b"%PDF").await.0, 200);
    let client = b.client();
    let tags = |key: String| {
        let client = client.clone();
        async move {
            let out = client
                .get_object_tagging()
                .bucket("uploads")
                .key(key)
                .send()
                .await
                .unwrap();
            out.tag_set()
                .iter()
                .map(|t| (t.key().to_owned(), t.value().to_owned()))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(tags(key.as_str().to_owned()).await, []);

    let reason = QuarantineReason::Size {
        expected: 5,
        actual: 4,
    };
    b.bucket
        .quarantine("uploads", key.as_str(), &reason)
        .await
        .unwrap();
    assert_eq!(
        tags(key.as_str().to_owned()).await,
        [(QUARANTINE_TAG.to_owned(), "size".to_owned())]
    );
    let head = client
        .head_object()
        .bucket("uploads")
        .key(key.as_str())
        .send()
        .await
        .unwrap();
    let meta = head.metadata().unwrap();
    assert_eq!(meta.get(QUARANTINE_TAG).map(String::as_str), Some("size"));
    assert_eq!(head.content_type(), Some("application/pdf"));
    let got = client
        .get_object()
        .bucket("uploads")
        .key(key.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(got.tag_count(), Some(1));
    let bytes = got.body.collect().await.unwrap().into_bytes();
    assert_eq!(&bytes[..], b"%PDF");

    // Another bucket, or an object that is not there, is not marked.
    let err = b
        .bucket
        .quarantine("other", key.as_str(), &reason)
        .await
        .unwrap_err();
    assert!(!err.transient);
    let err = b
        .bucket
        .quarantine("uploads", "uploads/alice/none/x.pdf", &reason)
        .await
        .unwrap_err();
    assert!(!err.transient, "{err}");
}
