//! The OpenAPI document stays true: every route it lists answers, every
//! field a real response carries is documented, and required fields are
//! present.

use axum::body::Body;
use http::Request;
use serde_json::Value;

use crate::*;

pub(crate) fn spec() -> Value {
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(uploadgate_http::OPENAPI_YAML).expect("valid YAML");
    serde_json::to_value(yaml).expect("JSON-compatible")
}

fn schema<'a>(spec: &'a Value, name: &str) -> &'a Value {
    &spec["components"]["schemas"][name]
}

/// A schema and the members of its `allOf`, with local `$ref`s followed.
fn parts<'a>(spec: &'a Value, s: &'a Value) -> Vec<&'a Value> {
    if let Some(r) = s["$ref"].as_str() {
        let name = r.strip_prefix("#/components/schemas/").unwrap();
        return parts(spec, schema(spec, name));
    }
    let mut all = vec![s];
    for member in s["allOf"].as_array().into_iter().flatten() {
        all.extend(parts(spec, member));
    }
    all
}

/// Every property of `value` is declared in `schema` (or a member of its
/// `allOf`), and every required one is present.
pub(crate) fn conforms(spec: &Value, schema_name: &str, value: &Value) {
    let all = parts(spec, schema(spec, schema_name));
    let props: Vec<&serde_json::Map<String, Value>> = all
        .iter()
        .filter_map(|s| s["properties"].as_object())
        .collect();
    assert!(!props.is_empty(), "{schema_name} has properties");
    let obj = value
        .as_object()
        .unwrap_or_else(|| panic!("{schema_name}: {value} is an object"));
    for k in obj.keys() {
        assert!(
            props.iter().any(|p| p.contains_key(k)),
            "{schema_name}: `{k}` is returned but not documented"
        );
    }
    for r in all
        .iter()
        .flat_map(|s| s["required"].as_array().into_iter().flatten())
    {
        let r = r.as_str().unwrap();
        assert!(
            obj.contains_key(r),
            "{schema_name}: required `{r}` missing from {value}"
        );
    }
}

#[tokio::test]
async fn openapi_describes_the_real_responses() {
    let spec = spec();
    assert_eq!(spec["openapi"], "3.1.0");
    let paths = spec["paths"].as_object().unwrap();
    let mut documented: Vec<&str> = paths.keys().map(String::as_str).collect();
    documented.sort();
    assert_eq!(
        documented,
        [
            "/healthz",
            "/upload-check",
            "/v1/quota",
            "/v1/uploads",
            "/v1/usage"
        ]
    );

    let (app, _) = app(&[("UPLOADGATE_LIMITS", "uploads=user:1/3h")]);
    let ok = upload(&app, "olga", 10).await;
    assert_eq!(ok.status, 200);
    conforms(&spec, "Upload", &ok.body);
    for l in ok.body["limits"].as_array().unwrap() {
        conforms(&spec, "Limit", l);
    }
    let denied = upload(&app, "olga", 10).await;
    assert_eq!(denied.status, 429);
    conforms(
        &spec,
        "Problem",
        &serde_json::json!({
            "type": denied.body["type"], "title": denied.body["title"], "status": denied.body["status"], "detail": denied.body["detail"],
        }),
    );
    // A 429 is one of three problems, told apart by their `type`.
    let one_of = &spec["components"]["responses"]["TooManyRequests"]["content"]["application/problem+json"]
        ["schema"]["oneOf"];
    let kinds: Vec<&str> = one_of
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["$ref"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "#/components/schemas/QuotaExceededProblem",
            "#/components/schemas/PendingUploadsProblem",
            "#/components/schemas/BusyProblem"
        ]
    );
    conforms(&spec, "QuotaExceededProblem", &denied.body);
    let documented_type =
        |name: &str| schema(&spec, name)["allOf"][1]["properties"]["type"]["const"].clone();
    assert_eq!(documented_type("QuotaExceededProblem"), denied.body["type"]);
    let q = quota(&app, "olga").await;
    conforms(&spec, "Quota", &q.body);
    // Usage, with a record, from a router in upload mode.
    let m = crate::settle::upload_mode("uploads=user:1/3h");
    let up = upload(&m.app, "olga", 10).await;
    m.settle(&up, 10).await;
    let u = crate::settle::usage(&m.app, "olga", "").await;
    assert_eq!(u.status, 200, "{}", u.raw);
    conforms(&spec, "Usage", &u.body);
    conforms(&spec, "UsageRecord", &u.body["records"][0]);
    // Found by Schemathesis: /upload-check's upload object is the URL
    // alone (its limits are beside it), and declaring half an upload is
    // refused, as the document's `anyOf` says (`null` counts as absent).
    let check = |body: &str| {
        let req = Request::post("/upload-check")
            .header("x-user-id", "petra")
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap();
        send(&app, with_peer(req, "192.0.2.10"))
    };
    let c = check(&pdf(10)).await;
    assert_eq!(c.status, 200, "{}", c.raw);
    conforms(&spec, "UploadCheck", &c.body);
    conforms(&spec, "UploadUrl", &c.body["upload"]);
    let either = &schema(&spec, "UploadCheckRequest")["anyOf"];
    assert_eq!(
        either[0]["required"],
        serde_json::json!(["contentType", "size"])
    );
    for half in [
        r#"{"contentType":"application/pdf"}"#,
        r#"{"size":10}"#,
        r#"{"contentType":"application/pdf","size":null}"#,
    ] {
        let r = check(half).await;
        assert_eq!(r.status, 400, "{half}: {}", r.raw);
    }
    let r = send(
        &app,
        Request::get("/openapi.yaml").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.raw, uploadgate_http::OPENAPI_YAML);

    // Every status the router produced above is documented for its path.
    let documented_status = |path: &str, method: &str, status: u16| {
        spec["paths"][path][method]["responses"]
            .get(status.to_string())
            .is_some()
    };
    assert!(documented_status("/v1/uploads", "post", 200));
    assert!(documented_status("/v1/uploads", "post", 429));
    for s in [400, 401, 413, 415, 503] {
        assert!(documented_status("/v1/uploads", "post", s), "{s}");
    }
    for s in [200, 400, 401, 404] {
        assert!(documented_status("/v1/usage", "get", s), "{s}");
    }
}

/// Found by Schemathesis: the document's `size` is a JSON Schema `integer`,
/// which `1.0` and `1e3` are (JSON has one number type), so the router takes
/// them as sizes; a fraction is still refused.
#[tokio::test]
async fn whole_sizes_written_as_floats_are_accepted() {
    let spec = spec();
    assert_eq!(
        schema(&spec, "UploadRequest")["properties"]["size"]["type"],
        "integer"
    );
    let (app, _) = app(&[]);
    let post = |size: &str| {
        upload_req(
            "nina",
            &format!(r#"{{"contentType":"application/pdf","size":{size}}}"#),
        )
    };
    for (size, bytes) in [("12.0", "12"), ("1e3", "1000"), ("129068.0", "129068")] {
        let r = send(&app, post(size)).await;
        assert_eq!(r.status, 200, "{size}: {}", r.raw);
        assert_eq!(r.body["headers"]["content-length"], bytes, "{size}");
    }
    let r = send(&app, post("12.5")).await;
    assert_eq!(r.status, 400, "{}", r.raw);
    assert_eq!(r.body["detail"], "`size`: must be a whole number of bytes");
}
