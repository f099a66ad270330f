//! The local bucket checks presigned URLs for real: each test signs with the
//! production presigner and sends real HTTP to the bucket on loopback.
//!
//! * here: one PUT per URL, tampering, expiry, races, CORS;
//! * [`checksum`]: a signed `x-amz-checksum-sha256` binds the bytes;
//! * [`landing`]: stored objects are reported to the gate, and quarantined
//!   ones carry a tag;
//! * [`unsigned_headers`]: what the URL does not sign, the bucket refuses.

// Test helpers panic on purpose: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use s3s::crypto::{Checksum as _, Md5};
use tokio::net::TcpListener;
use uploadgate_core::{ObjectKey, UserId};
use uploadgate_s3::{LocalBucket, LocalCredentials, PresignedUpload, Presigner, PutSpec};

mod checksum;
mod landing;
mod unsigned_headers;

struct Bucket {
    endpoint: String,
    creds: LocalCredentials,
    bucket: LocalBucket,
    dir: tempfile::TempDir,
}

async fn bucket() -> Bucket {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let creds = LocalCredentials::generate();
    let bucket = LocalBucket::open(dir.path(), "uploads").unwrap();
    let service = bucket.clone().service(creds.clone());
    // The simplest server: one hyper-util connection per accepted socket
    // (`uploadgate serve` adds timeouts and a connection cap around it).
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let svc = hyper_util::service::TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
            });
        }
    });
    Bucket {
        endpoint,
        creds,
        bucket,
        dir,
    }
}

impl Bucket {
    fn presigner(&self, ttl: Duration) -> Presigner {
        Presigner::for_local(&self.endpoint, &self.creds, "uploads".into(), ttl)
    }

    async fn sign(&self, name: &str, ctype: &str, size: u64) -> (ObjectKey, PresignedUpload) {
        let key = new_key(name);
        let up = self
            .presigner(Duration::from_secs(300))
            .presign_put(&key, ctype, size, SystemTime::now())
            .await
            .unwrap();
        (key, up)
    }

    /// Signs `spec` (built by the caller for `key`) with a 5-minute URL.
    async fn sign_spec(&self, spec: &PutSpec<'_>) -> PresignedUpload {
        self.presigner(Duration::from_secs(300))
            .presign(spec, SystemTime::now())
            .await
            .unwrap()
    }

    /// Whether anything is stored under `key`, or left half-written.
    fn stored(&self, key: &ObjectKey) -> Option<Vec<u8>> {
        let tmp = self.dir.path().join("objects-tmp");
        assert_eq!(
            std::fs::read_dir(tmp).unwrap().count(),
            0,
            "leftover temp files"
        );
        std::fs::read(self.bucket.object_path(key.as_str()).unwrap()).ok()
    }

    /// An SDK client with the bucket's credentials (header-signed requests).
    fn client(&self) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .force_path_style(true)
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                &self.creds.access_key,
                &self.creds.secret_key,
                None,
                None,
                "t",
            ))
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }
}

fn new_key(name: &str) -> ObjectKey {
    ObjectKey::for_upload("uploads/", &UserId::parse("alice").unwrap(), &uuid(), name)
}

fn md5_hex(body: &[u8]) -> String {
    hex::encode(Md5::checksum(body))
}

/// Sends `body` to a presigned URL with exactly the headers it lists
/// (reqwest sets `Content-Length` from the body), plus `extra`, which
/// replaces a listed header of the same name. Status, `ETag`, body text.
async fn send(
    up: &PresignedUpload,
    extra: &[(&str, &str)],
    body: &[u8],
) -> (u16, Option<String>, String) {
    let mut req = reqwest::Client::new().put(&up.url).body(body.to_vec());
    for (k, v) in &up.headers {
        if k != "content-length" && !extra.iter().any(|(e, _)| e == k) {
            req = req.header(k, v);
        }
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let etag = res
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().trim_matches('"').to_owned());
    (status, etag, res.text().await.unwrap())
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
    let got = b
        .client()
        .get_object()
        .bucket("uploads")
        .key(key.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(got.content_type(), Some("application/pdf"));
    let md5 = format!("\"{}\"", md5_hex(body));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_puts_of_one_url_store_once_with_the_winners_metadata() {
    let b = bucket().await;
    let client = b.client();
    // Several rounds: the losers' work overlaps the winner's differently
    // each time.
    for round in 0..12 {
        let (key, up) = b.sign("race.pdf", "application/pdf", 3).await;
        let puts: Vec<_> = (0..8)
            .map(|i| {
                let up = up.clone();
                tokio::spawn(async move {
                    let body = format!("{round:x}b{i}");
                    (send(&up, &[], body.as_bytes()).await, body)
                })
            })
            .collect();
        let mut winners = vec![];
        for p in puts {
            let ((status, etag, text), body) = p.await.unwrap();
            match status {
                200 => winners.push((etag, body)),
                412 | 409 => {}
                _ => panic!("round {round}: {status} {text}"),
            }
        }
        let [(etag, body)] = &winners[..] else {
            panic!("round {round}: {} PUTs won", winners.len());
        };
        // The stored bytes are the winner's, and so is every piece of
        // metadata: the ETag it was answered, the one GET and HEAD serve.
        assert_eq!(b.stored(&key).unwrap(), body.as_bytes(), "round {round}");
        assert_eq!(etag.as_deref(), Some(md5_hex(body.as_bytes()).as_str()));
        let expected = format!("\"{}\"", md5_hex(body.as_bytes()));
        let head = client
            .head_object()
            .bucket("uploads")
            .key(key.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(head.e_tag(), Some(expected.as_str()), "round {round}");
        assert_eq!(head.content_length(), Some(3));
        let got = client
            .get_object()
            .bucket("uploads")
            .key(key.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(got.e_tag(), Some(expected.as_str()), "round {round}");
        assert_eq!(got.content_type(), Some("application/pdf"));
        let bytes = got.body.collect().await.unwrap().into_bytes();
        assert_eq!(bytes.as_ref(), body.as_bytes());
    }
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
