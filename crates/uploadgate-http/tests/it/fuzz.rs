//! No client input may produce a 5xx: random methods, paths, headers and
//! bodies against the real router.

use axum::body::Body;
use http::Request;
use proptest::prelude::*;

use crate::*;

fn method() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD",
    ])
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/v1/uploads".to_owned()),
        Just("/v1/quota".to_owned()),
        Just("/upload-check".to_owned()),
        Just("/healthz".to_owned()),
        Just("/v1/quota?userId=%ff%fe".to_owned()),
        "/[a-z0-9/%.]{0,20}",
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        (
            prop::option::of(".{0,40}"),
            prop::option::of(prop_oneof![Just("application/pdf".to_owned()), ".{0,20}"]),
            prop::option::of(prop_oneof![
                any::<i64>().prop_map(|n| n.to_string()),
                any::<f64>().prop_map(|f| format!("{f:e}")),
                Just("\"7\"".to_owned()),
                Just("null".to_owned()),
                Just("[1]".to_owned()),
                Just("18446744073709551616".to_owned()),
            ]),
            prop::option::of(prop_oneof![
                Just("\"u1\"".to_owned()),
                Just("{}".to_owned()),
                ".{0,10}".prop_map(|s| format!("{s:?}"))
            ]),
        )
            .prop_map(|(f, ct, size, uid)| {
                let mut parts = vec![];
                if let Some(f) = f {
                    parts.push(format!("\"filename\":{f:?}"));
                }
                if let Some(ct) = ct {
                    parts.push(format!("\"contentType\":{ct:?}"));
                }
                if let Some(s) = size {
                    parts.push(format!("\"size\":{s}"));
                }
                if let Some(u) = uid {
                    parts.push(format!("\"userId\":{u}"));
                }
                format!("{{{}}}", parts.join(",")).into_bytes()
            }),
    ]
}

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[a-zA-Z0-9@._|:+=-]{0,140}".prop_map(String::into_bytes),
        prop::collection::vec(0x20u8..0x7f, 0..40),
        prop::collection::vec(0x80u8..=0xff, 1..8),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]
    #[test]
    fn no_client_input_gets_a_5xx(
        method in method(),
        path in path(),
        user in prop::option::of(header_value()),
        viewer in prop::option::of(header_value()),
        ctype in prop::option::of(header_value()),
        body in body(),
        body_mode in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let identity = if body_mode { "body" } else { "header" };
        let (app, _) = app(&[
            ("UPLOADGATE_IDENTITY", identity),
            ("UPLOADGATE_CLIENT_IP", "cloudfront"),
            ("UPLOADGATE_LIMITS", "uploads=user:3/1h;volume=user:10MiB/1d:fixed;burst=ip:5/1m:gcra"),
        ]);
        let mut req = Request::builder().method(method).uri(&path);
        if let Some(u) = &user
            && let Ok(v) = http::HeaderValue::from_bytes(u) { req = req.header("x-user-id", v); }
        if let Some(v) = &viewer
            && let Ok(v) = http::HeaderValue::from_bytes(v) { req = req.header("cloudfront-viewer-address", v); }
        if let Some(c) = &ctype
            && let Ok(v) = http::HeaderValue::from_bytes(c) { req = req.header("content-type", v); }
        let req = with_peer(req.body(Body::from(body)).unwrap(), "192.0.2.99");
        let r = rt.block_on(send(&app, req));
        prop_assert!(r.status < 500, "{} {} -> {}: {}", method, path, r.status, r.raw);
        if r.status >= 400 {
            let is_problem = r.header("content-type") == Some("application/problem+json");
            prop_assert!(is_problem, "{} {} -> {} without problem+json", method, path, r.status);
        }
    }
}
