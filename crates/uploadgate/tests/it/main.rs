//! The `uploadgate` binary as a user runs it: real processes, real ports.

// Test helpers panic on purpose: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

mod cognito;
mod export;
mod hardening;
mod settle;
mod settle_s3;

const BIN: &str = env!("CARGO_BIN_EXE_uploadgate");

struct Server {
    child: Child,
    api: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(data_dir: &Path, env: &[(&str, &str)]) -> Server {
    serve_with(Command::new(BIN), data_dir, env)
}

/// `serve` with at most `nofile` open files (a shell's `ulimit -n`).
fn serve_with_open_files(nofile: u32, data_dir: &Path, env: &[(&str, &str)]) -> Server {
    let mut cmd = Command::new("bash");
    cmd.args([
        "-c",
        &format!("ulimit -n {nofile} && exec \"$0\" \"$@\""),
        BIN,
    ]);
    serve_with(cmd, data_dir, env)
}

fn serve_with(mut cmd: Command, data_dir: &Path, env: &[(&str, &str)]) -> Server {
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--s3-listen",
        "127.0.0.1:0",
        "--data-dir",
    ])
    .arg(data_dir)
    .env_remove("UPLOADGATE_LIMITS")
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn uploadgate");
    let stdout = child.stdout.take().expect("stdout");
    let mut api = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        if let Some(a) = line.strip_prefix("uploadgate: api listening on ") {
            api = Some(a.to_owned());
            break;
        }
    }
    Server {
        child,
        api: api.expect("the server printed its address"),
    }
}

async fn upload(s: &Server, user: &str, size: usize) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(format!("{}/v1/uploads", s.api))
        .header("x-user-id", user)
        .json(&json!({"filename": "scan.png", "contentType": "image/png", "size": size}))
        .send()
        .await
        .expect("request");
    let status = res.status().as_u16();
    (status, res.json().await.expect("json"))
}

#[tokio::test]
async fn quota_state_survives_a_kill_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("UPLOADGATE_LIMITS", "uploads=user:2/3h")];
    {
        let s = serve(dir.path(), &env);
        assert_eq!(upload(&s, "ivan", 10).await.0, 200);
        assert_eq!(upload(&s, "ivan", 10).await.0, 200);
        // Dropping the server sends SIGKILL: no graceful shutdown.
    }
    let s = serve(dir.path(), &env);
    let (status, body) = upload(&s, "ivan", 10).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(upload(&s, "judy", 10).await.0, 200);
}

#[tokio::test]
async fn the_url_takes_one_put_of_the_declared_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path(), &[]);
    let bytes = b"\x89PNG\r\n\x1a\n not really a png, but the declared size";
    let (status, up) = upload(&s, "kim", bytes.len()).await;
    assert_eq!(status, 200, "{up}");
    let url = up["url"].as_str().unwrap();
    let put = |url: String, body: Vec<u8>| {
        let headers = up["headers"].clone();
        async move {
            let mut req = reqwest::Client::new().put(url).body(body);
            for (k, v) in headers.as_object().unwrap() {
                if k != "content-length" {
                    req = req.header(k, v.as_str().unwrap());
                }
            }
            req.send().await.unwrap().status().as_u16()
        }
    };
    // Flip the signature's last hex digit.
    let mut tampered = url.to_owned();
    let last = tampered.pop().unwrap();
    tampered.push(if last == '0' { '1' } else { '0' });
    assert_eq!(put(tampered, bytes.to_vec()).await, 403);
    assert_eq!(put(url.to_owned(), bytes[1..].to_vec()).await, 403);
    assert_eq!(put(url.to_owned(), bytes.to_vec()).await, 200);
    assert_eq!(put(url.to_owned(), bytes.to_vec()).await, 412);
    let key = up["key"].as_str().unwrap();
    let stored = std::fs::read(dir.path().join("objects/uploads").join(key)).unwrap();
    assert_eq!(stored, bytes);
}

#[test]
fn invalid_configuration_stops_with_one_line_naming_the_setting() {
    let out = Command::new(BIN)
        .args(["config", "check"])
        .env("UPLOADGATE_LIMITS", "uploads=user:5/3fortnights")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("uploadgate: invalid UPLOADGATE_LIMITS: window `3fortnights`"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .env("UPLOADGATE_URL_TTL", "3w")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("uploadgate: invalid UPLOADGATE_URL_TTL"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing was created"
    );

    let out = Command::new(BIN)
        .args(["config", "check"])
        .env_remove("UPLOADGATE_LIMITS")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("limit      uploads=user:5/3h:sliding")
    );
}

#[tokio::test]
async fn quota_show_and_reset_work_on_the_file_store() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("UPLOADGATE_LIMITS", "uploads=user:1/3h")];
    {
        let s = serve(dir.path(), &env);
        assert_eq!(upload(&s, "lena", 1).await.0, 200);
    }
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .env("UPLOADGATE_LIMITS", "uploads=user:1/3h")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(run(&["quota", "show", "lena"]).contains("uploads      0 of 1 left"));
    assert!(run(&["quota", "reset", "lena"]).contains("usage is forgotten"));
    assert!(run(&["quota", "show", "lena"]).contains("uploads      1 of 1 left"));
    let s = serve(dir.path(), &env);
    assert_eq!(upload(&s, "lena", 1).await.0, 200);
}

/// Runs a command to success; its trimmed stdout.
fn run_ok(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "uploadgate {args:?}: {stderr}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `uploadgate table create`, then two servers on one DynamoDB table (moto):
/// they share the quota, which is how users scale out without Lambda.
#[tokio::test]
async fn servers_sharing_a_dynamodb_table_share_the_quota() {
    let endpoint = uploadgate_dynamodb::test_util::endpoint();
    let table = format!("uploadgate-bin-{}", std::process::id());
    let aws = [
        ("AWS_ENDPOINT_URL_DYNAMODB", endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("UPLOADGATE_STORE", "dynamodb"),
        ("UPLOADGATE_TABLE", table.as_str()),
    ];
    assert_eq!(
        run_ok(&["table", "create"], &aws),
        format!("table {table}: created (on-demand, pk, TTL on expireAt)")
    );

    let mut env = aws.to_vec();
    env.push(("UPLOADGATE_LIMITS", "uploads=user:5/3h"));
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = serve(dir_a.path(), &env);
    let b = serve(dir_b.path(), &env);
    let mut statuses = vec![];
    for i in 0..8 {
        let s = if i % 2 == 0 { &a } else { &b };
        statuses.push(upload(s, "nina", 10).await.0);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);

    // A reset through the CLI is seen by both (each re-reads a cached
    // denial once it is older than UPLOADGATE_DENIAL_TTL; 0s here).
    drop((a, b));
    env.push(("UPLOADGATE_DENIAL_TTL", "0s"));
    let a = serve(dir_a.path(), &env);
    assert_eq!(upload(&a, "nina", 10).await.0, 429);
    assert!(run_ok(&["quota", "reset", "nina"], &aws).starts_with("reset: nina"));
    assert_eq!(upload(&a, "nina", 10).await.0, 200);
}
