//! The `bootstrap` binary refuses what cannot run in Lambda before it
//! contacts the runtime API: one line on stderr, a non-zero exit.

use std::process::Command;

fn run(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_uploadgate-lambda"))
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_file_store_is_refused_in_one_line() {
    // The default store is `file`.
    let (code, stderr) = run(&[
        ("UPLOADGATE_TARGET", "s3"),
        ("UPLOADGATE_IDENTITY", "header"),
    ]);
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        "uploadgate-lambda: invalid UPLOADGATE_STORE: the file store cannot run in Lambda; use dynamodb\n"
    );
}

#[test]
fn the_local_bucket_is_refused_in_one_line() {
    let (code, stderr) = run(&[
        ("UPLOADGATE_STORE", "memory"),
        ("UPLOADGATE_IDENTITY", "header"),
    ]);
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        "uploadgate-lambda: invalid UPLOADGATE_TARGET: the local bucket cannot run in Lambda; use s3\n"
    );
}

#[test]
fn an_invalid_setting_is_named_in_one_line() {
    let (code, stderr) = run(&[
        ("UPLOADGATE_STORE", "dynamodb"),
        ("UPLOADGATE_TABLE", "quota"),
        ("UPLOADGATE_TARGET", "s3"),
        ("UPLOADGATE_LIMITS", "uploads=user:five/3h"),
        ("UPLOADGATE_IDENTITY", "header"),
    ]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.starts_with("uploadgate-lambda: invalid UPLOADGATE_LIMITS: "),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}
