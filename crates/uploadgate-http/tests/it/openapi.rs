//! The OpenAPI document stays true: every route it lists answers, every
//! field a real response carries is documented, and required fields are
//! present.

use axum::body::Body;
use http::Request;
use serde_json::Value;

use crate::*;

fn spec() -> Value {
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(uploadgate_http::OPENAPI_YAML).expect("valid YAML");
    serde_json::to_value(yaml).expect("JSON-compatible")
}

fn schema<'a>(spec: &'a Value, name: &str) -> &'a Value {
    &spec["components"]["schemas"][name]
}

/// Every property of `value` is declared in `schema`, and every required one
/// is present.
fn conforms(spec: &Value, schema_name: &str, value: &Value) {
    let s = schema(spec, schema_name);
    let props = s["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("{schema_name} has properties"));
    let obj = value
        .as_object()
        .unwrap_or_else(|| panic!("{schema_name}: {value} is an object"));
    for k in obj.keys() {
        assert!(
            props.contains_key(k),
            "{schema_name}: `{k}` is returned but not documented"
        );
    }
    for r in s["required"].as_array().into_iter().flatten() {
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
        ["/healthz", "/upload-check", "/v1/quota", "/v1/uploads"]
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
    let extra = &spec["components"]["responses"]["QuotaExceeded"]["content"]["application/problem+json"]
        ["schema"]["allOf"][1]["properties"];
    for k in denied.body.as_object().unwrap().keys() {
        let base = schema(&spec, "Problem")["properties"].get(k).is_some();
        assert!(
            base || extra.get(k).is_some(),
            "429 field `{k}` not documented"
        );
    }
    let q = quota(&app, "olga").await;
    conforms(&spec, "Quota", &q.body);
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
}
