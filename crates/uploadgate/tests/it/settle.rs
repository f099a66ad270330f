//! `serve` charging on upload: the embedded bucket settles what lands
//! in-process, and `GET /v1/usage` shows it; refused configurations stop
//! with one line naming the setting.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{BIN, Server, serve};

async fn usage(s: &Server, user: &str) -> Value {
    let res = reqwest::Client::new()
        .get(format!("{}/v1/usage", s.api))
        .header("x-user-id", user)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    res.json().await.unwrap()
}

#[tokio::test]
async fn what_lands_in_the_embedded_bucket_is_settled_and_in_the_usage() {
    for store in ["memory", "file"] {
        let dir = tempfile::tempdir().unwrap();
        let s = serve(
            dir.path(),
            &[
                ("UPLOADGATE_CHARGE", "upload"),
                ("UPLOADGATE_STORE", store),
                ("UPLOADGATE_LIMITS", "uploads=user:5/3h"),
            ],
        );
        let bytes = b"%PDF-1.7 paid for because it landed".to_vec();
        let res = reqwest::Client::new()
            .post(format!("{}/v1/uploads", s.api))
            .header("x-user-id", "mia")
            .json(&json!({"filename": "a.pdf", "contentType": "application/pdf", "size": bytes.len()}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200, "{store}");
        let up: Value = res.json().await.unwrap();
        assert_eq!(usage(&s, "mia").await["records"], json!([]), "{store}");

        let mut put = reqwest::Client::new()
            .put(up["url"].as_str().unwrap())
            .body(bytes.clone());
        for (k, v) in up["headers"].as_object().unwrap() {
            if k != "content-length" {
                put = put.header(k, v.as_str().unwrap());
            }
        }
        assert_eq!(put.send().await.unwrap().status().as_u16(), 200, "{store}");

        // Settled off the PUT's path: poll, for at most 5 s.
        let started = Instant::now();
        let page = loop {
            let page = usage(&s, "mia").await;
            if page["uploads"] == 1 || started.elapsed() > Duration::from_secs(5) {
                break page;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(page["uploads"], 1, "{store}: {page}");
        assert_eq!(page["bytes"], bytes.len(), "{store}");
        let record = &page["records"][0];
        assert_eq!(record["key"], up["key"], "{store}");
        assert_eq!(record["bytes"], bytes.len(), "{store}");
        assert_eq!(record["contentType"], "application/pdf", "{store}");
        assert_eq!(page["next"], Value::Null, "{store}");
        // Someone else sees none of it.
        assert_eq!(usage(&s, "noa").await["records"], json!([]), "{store}");

        // Once the server is gone, the file store's ledger exports the same
        // record, with the same fields, plus its user.
        if store == "file" {
            drop(s);
            let out = Command::new(BIN)
                .args(["usage", "export", "--format", "jsonl", "--data-dir"])
                .arg(dir.path())
                .env_remove("UPLOADGATE_STORE")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let mut exported: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(exported["user"], "mia");
            exported.as_object_mut().unwrap().remove("user");
            assert_eq!(&exported, record);
        }
    }
}

/// Each refusal of upload mode is one line naming its setting, at start.
#[test]
fn upload_mode_refuses_what_it_cannot_settle() {
    for (name, value, extra) in [
        ("UPLOADGATE_TARGET", "s3", None),
        (
            "UPLOADGATE_SETTLE_QUEUE_URL",
            "http://127.0.0.1:4566/000000000000/events",
            None,
        ),
        ("UPLOADGATE_FAIL_OPEN", "true", None),
        ("UPLOADGATE_SHADOW", "true", None),
        (
            "UPLOADGATE_IDENTITY",
            "anonymous",
            Some(("UPLOADGATE_LIMITS", "burst=ip:5/1m")),
        ),
        (
            "UPLOADGATE_STORE",
            "dynamodb",
            Some(("UPLOADGATE_TABLE", "quota")),
        ),
    ] {
        let mut cmd = Command::new(BIN);
        cmd.args(["config", "check"])
            .env_remove("UPLOADGATE_LIMITS")
            .env("UPLOADGATE_CHARGE", "upload")
            .env(name, value);
        if let Some((k, v)) = extra {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}={value}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        // The dynamodb store without a usage table names the table; S3
        // without a queue of its events names the queue.
        let named = match name {
            "UPLOADGATE_STORE" => "UPLOADGATE_USAGE_TABLE",
            "UPLOADGATE_TARGET" => "UPLOADGATE_SETTLE_QUEUE_URL",
            _ => name,
        };
        assert!(
            err.starts_with(&format!("uploadgate: invalid {named}: ")),
            "{err}"
        );
    }
    // And `config check` shows the mode it would run.
    let out = Command::new(BIN)
        .args(["config", "check"])
        .env_remove("UPLOADGATE_LIMITS")
        .env("UPLOADGATE_CHARGE", "upload")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("UPLOADGATE_CHARGE") && l.contains("upload")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("UPLOADGATE_SETTLE_GRACE") && l.contains("15m")),
        "{text}"
    );
}
