//! `serve` under hostile clients: half-sent requests, a low open-file
//! limit, and callers that claim a CloudFront viewer address.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{BIN, serve, serve_with_open_files};

/// 300 connections that never finish their headers, against a server
/// allowed 256 open files: `/healthz` still answers, and every half-sent
/// connection is closed once the header timeout passes.
#[test]
fn half_sent_requests_cannot_lock_out_other_clients() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve_with_open_files(
        256,
        dir.path(),
        &[
            ("UPLOADGATE_STORE", "memory"),
            ("UPLOADGATE_HEADER_TIMEOUT", "2s"),
        ],
    );
    let addr = s.api.trim_start_matches("http://").to_owned();
    let mut slow: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut c = TcpStream::connect(&addr).unwrap();
            c.write_all(b"POST /v1/uploads HTTP/1.1\r\nHost: gate\r\nx-user-id: slow")
                .unwrap();
            c
        })
        .collect();

    // A well-behaved client gets its answer at once, not after the timeout.
    let started = Instant::now();
    let mut ok = TcpStream::connect(&addr).unwrap();
    ok.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    ok.write_all(b"GET /healthz HTTP/1.1\r\nHost: gate\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    ok.read_to_string(&mut answer)
        .unwrap_or_else(|e| panic!("/healthz did not answer within 1 s: {e}"));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    eprintln!("healthz answered after {:?}", started.elapsed());

    // Every half-sent connection is closed by the server: each read ends
    // (EOF or reset) well after the 2 s header timeout at the latest.
    for (i, c) in slow.iter_mut().enumerate() {
        c.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
        let mut buf = [0u8; 64];
        match c.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => panic!("connection {i} got {n} bytes instead of being closed"),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("connection {i} still open: {e}"),
        }
    }
    // And the server still serves.
    let mut again = TcpStream::connect(&addr).unwrap();
    again
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: gate\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    again.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// `serve` believes `CloudFront-Viewer-Address` only from requests that
/// carry the origin secret CloudFront adds.
#[tokio::test]
async fn a_viewer_address_needs_the_origin_secret() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--s3-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("UPLOADGATE_CLIENT_IP", "cloudfront")
        .env_remove("UPLOADGATE_ORIGIN_SECRET")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("uploadgate: invalid UPLOADGATE_ORIGIN_SECRET: "),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");

    let secret = "7f3a9c1e5b2d4f60a8e1c3b5d7f9e2a4";
    let s = serve(
        dir.path(),
        &[
            ("UPLOADGATE_CLIENT_IP", "cloudfront"),
            ("UPLOADGATE_ORIGIN_SECRET", secret),
            ("UPLOADGATE_LIMITS", "burst=ip:3/1h"),
            ("UPLOADGATE_STORE", "memory"),
        ],
    );
    let client = reqwest::Client::new();
    let post = |viewer: String, proof: Option<&'static str>| {
        let mut req = client
            .post(format!("{}/v1/uploads", s.api))
            .header("x-user-id", "rotator")
            .header("cloudfront-viewer-address", viewer)
            .json(&serde_json::json!({"contentType": "application/pdf", "size": 5}));
        if let Some(p) = proof {
            req = req.header("x-origin-verify", p);
        }
        req.send()
    };
    // A caller rotating the header without the secret gets nowhere.
    for i in 0..10 {
        let r = post(format!("203.0.113.{i}:443"), None).await.unwrap();
        assert_eq!(r.status(), 403);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(
            body["type"],
            "https://uploadgate.dev/problems/not-from-origin"
        );
    }
    let r = post("203.0.113.1:443".into(), Some("not-the-secret-0000000000"))
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Through "CloudFront", each viewer has its own limit of 3.
    let mut statuses = Vec::new();
    for i in 0..4 {
        let viewer = if i < 4 { "198.51.100.7:1234" } else { "" };
        statuses.push(
            post(viewer.into(), Some(secret))
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    let r = post("198.51.100.8:1234".into(), Some(secret))
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "another viewer");
    // Liveness needs no secret.
    let r = client
        .get(format!("{}/healthz", s.api))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
