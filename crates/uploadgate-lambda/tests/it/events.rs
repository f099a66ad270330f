//! Function URL (payload 2.0) and API Gateway REST (payload 1.0) events.

use serde_json::{Value, json};
use uploadgate_core::StateKey;

use crate::{converted, fixture, function};

/// The invocation request id the runtime API hands out (not the event's
/// `requestContext.requestId`, and not whatever the client sent).
const INVOCATION: &str = "8f5e3c1a-2b4d-4e6f-8a9b-0c1d2e3f4a5b";

const CLIENT_CHOSEN_ID: &str = "client-chosen-request-id";

fn limits_by_name(body: &Value) -> Vec<(String, u64)> {
    body["limits"]
        .as_array()
        .unwrap_or_else(|| panic!("no limits in {body}"))
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap().to_owned(),
                l["remaining"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn pair(name: &str, remaining: u64) -> (String, u64) {
    (name.to_owned(), remaining)
}

fn with_header(mut event: Value, name: &str, value: &str) -> Value {
    event["headers"][name] = json!(value);
    if let Some(multi) = event.get_mut("multiValueHeaders") {
        multi[name] = json!([value]);
    }
    event
}

#[tokio::test]
async fn a_function_url_upload_answers_a_signed_url_and_charges_the_viewer_address() {
    let f = function(&[
        ("UPLOADGATE_LIMITS", "uploads=user:5/3h;burst=ip:3/1m"),
        ("UPLOADGATE_CLIENT_IP", "cloudfront"),
    ]);
    let a = f
        .invoke(fixture("function_url_uploads.json"), INVOCATION)
        .await;
    assert_eq!(a.status, 200, "{}", a.json);
    let b = &a.body;
    assert_eq!(b["method"], "PUT");
    let key = b["key"].as_str().unwrap();
    assert!(
        key.starts_with("uploads/alice/") && key.ends_with("/invoice.pdf"),
        "{key}"
    );
    let url = b["url"].as_str().unwrap();
    assert!(
        url.starts_with("http://127.0.0.1:9/uploads/uploads/alice/"),
        "{url}"
    );
    assert!(url.contains("X-Amz-Signature="), "{url}");
    assert_eq!(b["headers"]["content-length"], "12345");
    assert_eq!(b["headers"]["content-type"], "application/pdf");
    assert_eq!(b["headers"]["if-none-match"], "*");
    assert_eq!(b["expiresAt"], "2027-01-15T08:05:00Z");
    assert_eq!(
        limits_by_name(b),
        [pair("uploads", 4), pair("burst", 2)],
        "{b}"
    );
    assert_eq!(
        a.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(
        a.header("ratelimit").as_deref(),
        Some("\"uploads\";r=4;t=10800, \"burst\";r=2;t=60")
    );

    // The viewer address counted, not CloudFront's edge (the source IP),
    // and not the leftmost X-Forwarded-For.
    assert!(f.has_ip_state("198.51.100.23").await);
    assert!(!f.has_ip_state("130.176.131.12").await);
    assert!(!f.has_ip_state("10.9.8.7").await);

    // The invocation's request id, on the response and on the metric line.
    assert_eq!(a.header("x-request-id").as_deref(), Some(INVOCATION));
    let lines = f.metrics.take();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["requestId"], INVOCATION);
    assert_eq!(lines[0]["Allowed"], 1);
}

#[tokio::test]
async fn an_ipv6_viewer_is_keyed_by_its_64() {
    let f = function(&[
        ("UPLOADGATE_LIMITS", "uploads=user:5/3h;burst=ip:3/1m"),
        ("UPLOADGATE_CLIENT_IP", "cloudfront"),
    ]);
    // CloudFront-Viewer-Address: 2001:db8:85a3:4:8a2e:370:7334:9:443
    let a = f
        .invoke(fixture("function_url_upload_check.json"), INVOCATION)
        .await;
    assert_eq!(a.status, 200, "{}", a.json);
    assert_eq!(a.body["allowed"], true);
    assert_eq!(a.body["upload"]["headers"]["content-type"], "image/png");
    assert_eq!(a.body["upload"]["headers"]["content-length"], "2048");
    assert_eq!(
        limits_by_name(&a.body),
        [pair("uploads", 4), pair("burst", 2)]
    );
    let key = StateKey::ip("2001:db8:85a3:4:8a2e:370:7334:9".parse().unwrap());
    assert_eq!(key.to_string(), "ip#2001:db8:85a3:4::/64");
    assert!(f.has_ip_state("2001:db8:85a3:4::").await);

    // Another address of the same /64 (compressed, as CloudFront may send
    // it) shares the budget, from another user...
    let event = with_header(
        fixture("function_url_upload_check.json"),
        "cloudfront-viewer-address",
        "2001:db8:85a3:4::1:51000",
    );
    let event = with_header(event, "x-user-id", "erin");
    let a = f.invoke(event, "second-invocation").await;
    assert_eq!(a.status, 200, "{}", a.json);
    assert_eq!(
        limits_by_name(&a.body),
        [pair("uploads", 4), pair("burst", 1)]
    );
    // ...while the next /64 has its own.
    let event = with_header(
        fixture("function_url_upload_check.json"),
        "cloudfront-viewer-address",
        "2001:db8:85a3:5::1:443",
    );
    let a = f.invoke(event, "third-invocation").await;
    assert_eq!(
        limits_by_name(&a.body),
        [pair("uploads", 3), pair("burst", 2)]
    );
    assert_eq!(
        a.header("x-request-id").as_deref(),
        Some("third-invocation")
    );
}

#[tokio::test]
async fn without_a_viewer_address_the_function_url_source_ip_counts() {
    let f = function(&[
        ("UPLOADGATE_LIMITS", "uploads=user:5/3h;burst=ip:3/1m"),
        ("UPLOADGATE_CLIENT_IP", "cloudfront"),
    ]);
    let mut event = fixture("function_url_uploads.json");
    event["headers"]
        .as_object_mut()
        .unwrap()
        .remove("cloudfront-viewer-address");
    let a = f.invoke(event, INVOCATION).await;
    assert_eq!(a.status, 200, "{}", a.json);
    assert!(f.has_ip_state("130.176.131.12").await);
    assert!(!f.has_ip_state("198.51.100.23").await);
}

#[tokio::test]
async fn a_rest_upload_check_on_a_stage_counts_the_source_ip_not_a_forged_viewer_address() {
    let f = function(&[
        ("UPLOADGATE_LIMITS", "uploads=user:5/3h;burst=ip:3/1m"),
        ("UPLOADGATE_CLIENT_IP", "cloudfront"),
        ("UPLOADGATE_IDENTITY", "body"),
    ]);
    // POST /upload-check on stage `prod`, CloudFront-Viewer-Address:
    // 192.0.2.250:4444 sent by the client itself.
    let a = f
        .invoke(fixture("apigw_rest_upload_check.json"), INVOCATION)
        .await;
    assert_eq!(a.status, 200, "{}", a.json);
    assert_eq!(a.body["allowed"], true);
    assert!(a.body.get("upload").is_none(), "{}", a.body);
    assert_eq!(
        limits_by_name(&a.body),
        [pair("uploads", 4), pair("burst", 2)]
    );
    assert!(f.has_ip_state("203.0.113.77").await);
    assert!(!f.has_ip_state("192.0.2.250").await);
    // REST responses carry their headers as multiValueHeaders.
    assert_eq!(a.json["headers"], json!({}));
    assert_eq!(a.header("x-request-id").as_deref(), Some(INVOCATION));
    assert_ne!(a.header("x-request-id").as_deref(), Some(CLIENT_CHOSEN_ID));
    assert_eq!(f.metrics.take()[0]["requestId"], INVOCATION);

    // The same forged header from another "viewer" still counts against
    // the same source address.
    let event = with_header(
        fixture("apigw_rest_upload_check.json"),
        "CloudFront-Viewer-Address",
        "192.0.2.251:4444",
    );
    let a = f.invoke(event, "second-invocation").await;
    assert_eq!(
        limits_by_name(&a.body),
        [pair("uploads", 3), pair("burst", 1)]
    );
}

#[tokio::test]
async fn a_rest_upload_on_a_stage_reaches_the_route() {
    let f = function(&[("UPLOADGATE_LIMITS", "uploads=user:5/3h;burst=ip:3/1m")]);
    let a = f
        .invoke(fixture("apigw_rest_uploads.json"), INVOCATION)
        .await;
    assert_eq!(a.status, 200, "{}", a.json);
    let key = a.body["key"].as_str().unwrap();
    assert!(
        key.starts_with("uploads/dave/") && key.ends_with("/scan.tiff"),
        "{key}"
    );
    assert_eq!(a.body["headers"]["content-type"], "image/tiff");
    assert_eq!(a.body["headers"]["content-length"], "4096");
    // peer mode: the REST source IP.
    assert!(f.has_ip_state("203.0.113.77").await);
    assert_eq!(a.header("x-request-id").as_deref(), Some(INVOCATION));
}

#[tokio::test]
async fn a_stage_named_like_the_path_is_not_taken_off_twice() {
    // Stage `v1`, path /v1/uploads: lambda_http leaves the path alone, and
    // so must the adapter.
    let f = function(&[]);
    let mut event = fixture("apigw_rest_uploads.json");
    event["requestContext"]["stage"] = json!("v1");
    event["requestContext"]["path"] = json!("/v1/v1/uploads");
    let a = f.invoke(event, INVOCATION).await;
    assert_eq!(a.status, 200, "{}", a.json);

    // An HTTP API (payload 2.0) on a named stage: rawPath holds the stage.
    let mut event = fixture("function_url_uploads.json");
    event["rawPath"] = json!("/prod/v1/uploads");
    event["requestContext"]["http"]["path"] = json!("/prod/v1/uploads");
    event["requestContext"]["stage"] = json!("prod");
    let a = f.invoke(event, INVOCATION).await;
    assert_eq!(a.status, 200, "{}", a.json);

    // Paths outside the API still answer the router's 404.
    let mut event = fixture("apigw_rest_uploads.json");
    event["path"] = json!("/prod/v1/uploads");
    let a = f.invoke(event, INVOCATION).await;
    assert_eq!(a.status, 404, "{}", a.json);
}

#[tokio::test]
async fn over_the_limit_a_function_url_event_gets_429_with_retry_after() {
    let f = function(&[("UPLOADGATE_LIMITS", "uploads=user:2/3h")]);
    for i in 0..2 {
        let a = f
            .invoke(fixture("function_url_uploads.json"), &format!("ok-{i}"))
            .await;
        assert_eq!(a.status, 200, "{}", a.json);
    }
    let a = f
        .invoke(fixture("function_url_uploads.json"), "denied")
        .await;
    assert_eq!(a.status, 429, "{}", a.json);
    assert_eq!(a.header("retry-after").as_deref(), Some("10800"));
    assert_eq!(
        a.header("content-type").as_deref(),
        Some("application/problem+json")
    );
    assert_eq!(a.body["violated-policies"], json!(["uploads"]));
    assert_eq!(a.header("x-request-id").as_deref(), Some("denied"));
    let lines = f.metrics.take();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[2]["Denied"], 1);
    assert_eq!(lines[2]["requestId"], "denied");
}

#[test]
fn rest_events_lose_the_viewer_address_and_function_url_events_keep_it() {
    use uploadgate_http::ClientAddr;

    let rest = uploadgate_lambda::prepare(converted(
        fixture("apigw_rest_upload_check.json"),
        Some(INVOCATION),
    ));
    assert!(rest.headers().get("cloudfront-viewer-address").is_none());
    assert_eq!(
        rest.extensions().get::<ClientAddr>(),
        Some(&ClientAddr("203.0.113.77".parse().unwrap()))
    );
    assert_eq!(rest.uri().path(), "/upload-check");
    assert_eq!(rest.headers()["x-request-id"], INVOCATION);
    // X-Forwarded-For is passed along untouched and never read.
    assert_eq!(
        rest.headers()["x-forwarded-for"],
        "192.0.2.250, 203.0.113.77"
    );

    let url = uploadgate_lambda::prepare(converted(
        fixture("function_url_uploads.json"),
        Some(INVOCATION),
    ));
    assert_eq!(
        url.headers()["cloudfront-viewer-address"],
        "198.51.100.23:51234"
    );
    assert_eq!(
        url.extensions().get::<ClientAddr>(),
        Some(&ClientAddr("130.176.131.12".parse().unwrap()))
    );
    assert_eq!(url.uri().path(), "/v1/uploads");
}

#[test]
fn without_an_invocation_context_a_client_request_id_is_dropped() {
    let req = uploadgate_lambda::prepare(converted(fixture("function_url_uploads.json"), None));
    assert!(req.headers().get("x-request-id").is_none());
    // With one, the client's value is replaced.
    let req = uploadgate_lambda::prepare(converted(
        fixture("function_url_uploads.json"),
        Some(INVOCATION),
    ));
    let ids: Vec<_> = req.headers().get_all("x-request-id").iter().collect();
    assert_eq!(ids, [INVOCATION]);
}
