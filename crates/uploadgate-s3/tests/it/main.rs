//! The local bucket checks presigned URLs for real: each test signs with the
//! production presigner and sends real HTTP to the bucket on loopback.

// Test helpers panic on purpose: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use tokio::net::TcpListener;
use uploadgate_core::{ObjectKey, UserId};
use uploadgate_s3::{LocalBucket, LocalCredentials, PresignedUpload, Presigner};

struct Bucket {
    endpoint: String,
    creds: LocalCredentials,
    bucket: LocalBucket,
    _dir: tempfile::TempDir,
}

async fn bucket() -> Bucket {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let creds = LocalCredentials::generate();
    let bucket = LocalBucket::open(dir.path(), "uploads").unwrap();
    tokio::spawn(
        bucket
            .clone()
            .serve(listener, creds.clone(), std::future::pending()),
    );
    Bucket {
        endpoint,
        creds,
        bucket,
        _dir: dir,
    }
}

impl Bucket {
    fn presigner(&self, ttl: Duration) -> Presigner {
        Presigner::for_local(&self.endpoint, &self.creds, "uploads".into(), ttl)
    }

    async fn sign(&self, name: &str, ctype: &str, size: u64) -> (ObjectKey, PresignedUpload) {
        let key =
            ObjectKey::for_upload("uploads/", &UserId::parse("alice").unwrap(), &uuid(), name);
        let up = self
            .presigner(Duration::from_secs(300))
            .presign_put(&key, ctype, size, SystemTime::now())
            .await
            .unwrap();
        (key, up)
    }
}

fn uuid() -> String {
    format!(
        "{:x}",
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

async fn put(url: &str, ctype: &str, if_none_match: bool, body: &[u8]) -> (u16, String) {
    let mut req = reqwest::Client::new()
        .put(url)
        .header("content-type", ctype)
        .body(body.to_vec());
    if if_none_match {
        req = req.header("if-none-match", "*");
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.text().await.unwrap())
}

fn code(xml: &str) -> &str {
    xml.split("<Code>")
        .nth(1)
        .and_then(|s| s.split("</Code>").next())
        .unwrap_or("")
}

#[tokio::test]
async fn one_put_of_the_declared_bytes_then_412_and_get_returns_them() {
    let b = bucket().await;
    let body = b"%PDF-1.7 exactly these bytes";
    let (key, up) = b
        .sign("doc.pdf", "application/pdf", body.len() as u64)
        .await;
    let (status, text) = put(&up.url, "application/pdf", true, body).await;
    assert_eq!(status, 200, "{text}");
    let stored = std::fs::read(b.bucket.object_path(key.as_str()).unwrap()).unwrap();
    assert_eq!(stored, body);
    let (status, text) = put(&up.url, "application/pdf", true, body).await;
    assert_eq!((status, code(&text)), (412, "PreconditionFailed"));

    // GET through the S3 API (a signed GetObject) returns the same bytes.
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(&b.endpoint)
        .force_path_style(true)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            &b.creds.access_key,
            &b.creds.secret_key,
            None,
            None,
            "t",
        ))
        .build();
    let client = aws_sdk_s3::Client::from_conf(conf);
    let got = client
        .get_object()
        .bucket("uploads")
        .key(key.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(got.content_type(), Some("application/pdf"));
    let md5 = format!("\"{}\"", hex::encode(md5::Md5::digest(body)));
    assert_eq!(got.e_tag(), Some(md5.as_str()));
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        body
    );
    // Anonymous reads are refused.
    let anon = reqwest::get(format!("{}/uploads/{}", b.endpoint, key))
        .await
        .unwrap();
    assert_eq!(anon.status().as_u16(), 403);
}

use md5::Digest as _;

#[tokio::test]
async fn tampered_expired_resized_retyped_and_headerless_puts_are_403() {
    let b = bucket().await;
    let body = b"12345";
    let (key, up) = b.sign("a.pdf", "application/pdf", 5).await;

    // A flipped signature character.
    let sig_at = up.url.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let mut tampered = up.url.clone();
    let c = if &tampered[sig_at..sig_at + 1] == "0" {
        "1"
    } else {
        "0"
    };
    tampered.replace_range(sig_at..sig_at + 1, c);
    assert_eq!(put(&tampered, "application/pdf", true, body).await.0, 403);

    // The same signature on another key.
    let other = up.url.replace(key.as_str(), "uploads/alice/other/a.pdf");
    assert_ne!(other, up.url);
    assert_eq!(put(&other, "application/pdf", true, body).await.0, 403);

    // Another size: 4 or 6 bytes instead of the signed 5.
    assert_eq!(put(&up.url, "application/pdf", true, b"1234").await.0, 403);
    assert_eq!(
        put(&up.url, "application/pdf", true, b"123456").await.0,
        403
    );
    // Another content type.
    let (status, text) = put(&up.url, "text/html", true, body).await;
    assert_eq!((status, code(&text)), (403, "SignatureDoesNotMatch"));
    // Without the If-None-Match header the URL was signed with.
    assert_eq!(put(&up.url, "application/pdf", false, body).await.0, 403);

    // Expired: signed 10 minutes ago with a 5 minute lifetime.
    let old = b
        .presigner(Duration::from_secs(300))
        .presign_put(
            &key,
            "application/pdf",
            5,
            SystemTime::now() - Duration::from_secs(600),
        )
        .await
        .unwrap();
    let (status, text) = put(&old.url, "application/pdf", true, body).await;
    assert_eq!((status, code(&text)), (403, "AccessDenied"), "{text}");

    // None of these stored anything; the genuine URL still works once.
    assert!(!b.bucket.object_path(key.as_str()).unwrap().exists());
    assert_eq!(put(&up.url, "application/pdf", true, body).await.0, 200);
}

#[tokio::test]
async fn concurrent_puts_of_one_url_store_once() {
    let b = bucket().await;
    let (_, up) = b.sign("race.pdf", "application/pdf", 3).await;
    let puts: Vec<_> = (0..8)
        .map(|i| {
            let url = up.url.clone();
            tokio::spawn(async move {
                put(&url, "application/pdf", true, format!("ab{i}").as_bytes())
                    .await
                    .0
            })
        })
        .collect();
    let mut statuses = vec![];
    for p in puts {
        statuses.push(p.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 412),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn answers_cors_preflights_for_a_browser_put() {
    let b = bucket().await;
    let (_, up) = b.sign("c.pdf", "application/pdf", 3).await;
    let res = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, &up.url)
        .header("origin", "http://127.0.0.1:8080")
        .header("access-control-request-method", "PUT")
        .header(
            "access-control-request-headers",
            "content-type,if-none-match",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let h = |n: &str| {
        res.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(h("access-control-allow-origin").as_deref(), Some("*"));
    assert!(h("access-control-allow-methods").unwrap().contains("PUT"));
}
