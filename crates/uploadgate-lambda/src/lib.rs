//! The uploadgate Lambda function: the very router that `uploadgate serve`
//! runs, driven by `lambda_http`, with one small adapter in front.
//!
//! lambda_http turns each event (a function URL or HTTP API payload 2.0
//! event, or an API Gateway REST payload 1.0 event) into an
//! `http::Request`. The router was written for a TCP server, so
//! [`prepare`] makes that request look like one, per invocation:
//!
//! * **Client address.** The `ip` limits key on [`ClientAddr`], taken from the
//!   event's request context: `requestContext.http.sourceIp` (payload 2.0)
//!   or `requestContext.identity.sourceIp` (REST, payload 1.0). With
//!   `UPLOADGATE_CLIENT_IP=cloudfront` the router prefers the
//!   `CloudFront-Viewer-Address` header, as behind CloudFront it must (the
//!   function URL's source IP is a CloudFront edge). `X-Forwarded-For` is
//!   never used.
//! * **Forged viewer addresses.** The REST API is not behind our CloudFront,
//!   so any client can send `CloudFront-Viewer-Address` to it: REST events
//!   lose that header, and their source IP counts. Payload 2.0 events keep
//!   it: the function URL takes only AWS_IAM-signed requests, which only
//!   the distribution's origin access control makes, and CloudFront sets
//!   the header itself.
//! * **Request id.** `x-request-id` becomes the invocation's request id,
//!   replacing whatever the client sent, so log lines, metric lines and the
//!   response all carry the id Lambda reports for the invocation.
//! * **Stage prefix.** lambda_http puts the API Gateway stage in front of
//!   the path (`POST /upload-check` on stage `prod` arrives as
//!   `/prod/upload-check`); the router's routes have no stage, so it is
//!   taken off again. Function URLs have no stage (`$default`).

use std::net::IpAddr;

use http::uri::PathAndQuery;
use http::{HeaderValue, Uri};
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use tower::ServiceExt;
use tower::util::MapRequest;
use uploadgate_app::{Config, SettingError, StoreKind, TargetKind};
use uploadgate_http::identity::CLOUDFRONT_VIEWER_ADDRESS;
use uploadgate_http::{ClientAddr, REQUEST_ID};

/// Settings whose default differs in Lambda: CloudWatch Logs wants one
/// JSON object per line, EMF lines on stdout become metrics there, and a
/// function reachable from the internet verifies who is asking (a bearer
/// token) unless told otherwise.
pub const LAMBDA_DEFAULTS: &[(&str, &str)] = &[
    ("UPLOADGATE_LOG_FORMAT", "json"),
    ("UPLOADGATE_METRICS", "emf"),
    ("UPLOADGATE_IDENTITY", "jwt"),
];

/// Settings under `uploadgate serve`'s heading that the gate function reads
/// too, in upload mode (`UPLOADGATE_CHARGE=upload`): the charging mode and
/// the grace make its grants reservations; the usage table and the events
/// queue are required by the upload-mode check ([`load_config`] refuses
/// the configuration without them), though the function itself neither
/// writes the ledger nor polls the queue: the settle function does. The
/// deployment's manifest (`examples/manifest.rs`) counts them as read.
pub const UPLOAD_MODE_SETTINGS: &[&str] = &[
    "UPLOADGATE_CHARGE",
    "UPLOADGATE_SETTLE_GRACE",
    "UPLOADGATE_USAGE_TABLE",
    "UPLOADGATE_SETTLE_QUEUE_URL",
];

/// Reads the configuration from `lookup` (the process environment in the
/// function) with the Lambda defaults, and refuses what cannot work in
/// Lambda: the file store (a container's disk is neither shared nor kept)
/// and the embedded local bucket.
pub fn load_config(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, SettingError> {
    let config = Config::from_lookup(LAMBDA_DEFAULTS, lookup)?;
    if config.store == StoreKind::File {
        return Err(SettingError::new(
            "UPLOADGATE_STORE",
            "the file store cannot run in Lambda; use dynamodb",
        ));
    }
    if config.target == TargetKind::Local {
        return Err(SettingError::new(
            "UPLOADGATE_TARGET",
            "the local bucket cannot run in Lambda; use s3",
        ));
    }
    Ok(config)
}

/// The router behind [`prepare`]: what `lambda_http::run` is given.
pub type LambdaService = MapRequest<axum::Router, fn(Request) -> Request>;

/// Puts [`prepare`] in front of the router.
pub fn service(router: axum::Router) -> LambdaService {
    router.map_request(prepare as fn(Request) -> Request)
}

/// Adapts one converted event for the router: client address, viewer
/// address header, request id and stage prefix (see the crate docs).
pub fn prepare(mut req: Request) -> Request {
    let (source_ip, keep_viewer_address, stage_prefix) = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => (
            ctx.http.source_ip.clone(),
            true,
            // Payload 2.0's rawPath already holds a named stage.
            named_stage(ctx.stage.as_deref()).map(|s| format!("/{s}")),
        ),
        Some(RequestContext::ApiGatewayV1(ctx)) => {
            let stage = named_stage(ctx.stage.as_deref());
            // lambda_http prepends `/{stage}` unless the event's path
            // already starts with it; undo exactly what it did.
            let added = stage.filter(|s| !req.raw_http_path().starts_with(&format!("/{s}/")));
            (
                ctx.identity.source_ip.clone(),
                false,
                added.map(|s| format!("/{s}")),
            )
        }
        // No other event source is compiled in; trust nothing from one.
        _ => (None, false, None),
    };

    if !keep_viewer_address {
        req.headers_mut().remove(CLOUDFRONT_VIEWER_ADDRESS);
    }
    match source_ip.as_deref().map(str::parse::<IpAddr>) {
        Some(Ok(ip)) => {
            req.extensions_mut().insert(ClientAddr(ip));
        }
        _ => {
            req.extensions_mut().remove::<ClientAddr>();
        }
    }

    let request_id = req
        .lambda_context_ref()
        .and_then(|c| HeaderValue::from_str(&c.request_id).ok())
        .filter(|v| !v.is_empty());
    match request_id {
        Some(id) => {
            req.headers_mut().insert(REQUEST_ID, id);
        }
        // Without an invocation id the router generates one; a client's
        // value is never kept.
        None => {
            req.headers_mut().remove(REQUEST_ID);
        }
    }

    if let Some(prefix) = stage_prefix
        && let Some(uri) = strip_path_prefix(req.uri(), &prefix)
    {
        *req.uri_mut() = uri;
    }
    req
}

fn named_stage(stage: Option<&str>) -> Option<&str> {
    stage.filter(|s| !s.is_empty() && *s != "$default")
}

/// `uri` without the leading path segment(s) `prefix` (`/prod`), if its path
/// starts with exactly that; the query string is kept.
fn strip_path_prefix(uri: &Uri, prefix: &str) -> Option<Uri> {
    let rest = uri.path().strip_prefix(prefix)?;
    let path = match rest {
        "" => "/",
        r if r.starts_with('/') => r,
        _ => return None,
    };
    let pq = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(pq).ok()?);
    Uri::from_parts(parts).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_prefixes_come_off_at_a_segment_boundary_only() {
        let uri: Uri = "https://h.example/prod/upload-check?a=1".parse().unwrap();
        assert_eq!(
            strip_path_prefix(&uri, "/prod").unwrap().to_string(),
            "https://h.example/upload-check?a=1"
        );
        let uri: Uri = "https://h.example/prod".parse().unwrap();
        assert_eq!(
            strip_path_prefix(&uri, "/prod").unwrap().path(),
            "/",
            "the stage root is the root"
        );
        let uri: Uri = "https://h.example/production/x".parse().unwrap();
        assert_eq!(strip_path_prefix(&uri, "/prod"), None);
        let uri: Uri = "/v1/uploads".parse().unwrap();
        assert_eq!(strip_path_prefix(&uri, "/v2"), None);
    }

    /// An environment with `pairs`, identifying callers by header unless
    /// `pairs` says otherwise (the default, `jwt`, needs an issuer).
    fn env(pairs: &[(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        let mut pairs = pairs.to_vec();
        pairs.push(("UPLOADGATE_IDENTITY", "header"));
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn lambda_defaults_to_json_logs_and_emf_metrics_unless_set() {
        let c = load_config(env(&[
            ("UPLOADGATE_STORE", "memory"),
            ("UPLOADGATE_TARGET", "s3"),
        ]))
        .unwrap();
        assert_eq!(c.log_format, uploadgate_app::LogFormat::Json);
        assert!(c.gate.emf_metrics);
        let c = load_config(env(&[
            ("UPLOADGATE_STORE", "memory"),
            ("UPLOADGATE_TARGET", "s3"),
            ("UPLOADGATE_LOG_FORMAT", "text"),
            ("UPLOADGATE_METRICS", "off"),
        ]))
        .unwrap();
        assert_eq!(c.log_format, uploadgate_app::LogFormat::Text);
        assert!(!c.gate.emf_metrics);
    }

    #[test]
    fn lambda_defaults_to_verified_tokens() {
        let only = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let e = load_config(only(&[
            ("UPLOADGATE_STORE", "memory"),
            ("UPLOADGATE_TARGET", "s3"),
        ]))
        .unwrap_err();
        assert_eq!(e.setting, "UPLOADGATE_JWT_ISSUER", "{e}");
        let c = load_config(only(&[
            ("UPLOADGATE_STORE", "memory"),
            ("UPLOADGATE_TARGET", "s3"),
            (
                "UPLOADGATE_JWT_ISSUER",
                "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_x",
            ),
            ("UPLOADGATE_JWT_AUDIENCE", "client-1"),
        ]))
        .unwrap();
        assert!(matches!(
            c.gate.identity,
            uploadgate_http::IdentityMode::Jwt(_)
        ));
    }

    #[test]
    fn upload_mode_needs_the_usage_table_and_the_events_queue() {
        let upload: &[(&str, &str)] = &[
            ("UPLOADGATE_STORE", "dynamodb"),
            ("UPLOADGATE_TABLE", "quota"),
            ("UPLOADGATE_TARGET", "s3"),
            ("UPLOADGATE_CHARGE", "upload"),
            ("UPLOADGATE_SETTLE_GRACE", "20m"),
            ("UPLOADGATE_USAGE_TABLE", "usage"),
            (
                "UPLOADGATE_SETTLE_QUEUE_URL",
                "https://sqs.eu-west-1.amazonaws.com/123456789012/events",
            ),
        ];
        let c = load_config(env(upload)).unwrap();
        assert_eq!(
            c.gate.settlement,
            Some(std::time::Duration::from_secs(1200))
        );
        // Each of the last two is required, so the function reads it.
        for required in &UPLOAD_MODE_SETTINGS[2..] {
            let without: Vec<_> = upload
                .iter()
                .copied()
                .filter(|(k, _)| k != required)
                .collect();
            let e = load_config(env(&without)).unwrap_err();
            assert_eq!(e.setting, *required, "{e}");
        }
        let names: Vec<String> = uploadgate_app::Settings::docs()
            .into_iter()
            .map(|d| d.name)
            .collect();
        assert!(
            UPLOAD_MODE_SETTINGS
                .iter()
                .all(|s| names.iter().any(|n| n == s))
        );
    }

    #[test]
    fn the_file_store_and_the_local_bucket_are_refused_in_one_line() {
        // The defaults are the file store and the local bucket.
        let e = load_config(env(&[])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid UPLOADGATE_STORE: the file store cannot run in Lambda; use dynamodb"
        );
        let e = load_config(env(&[
            ("UPLOADGATE_STORE", "dynamodb"),
            ("UPLOADGATE_TABLE", "quota"),
        ]))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid UPLOADGATE_TARGET: the local bucket cannot run in Lambda; use s3"
        );
        let e = load_config(env(&[
            ("UPLOADGATE_STORE", "dynamodb"),
            ("UPLOADGATE_TARGET", "s3"),
        ]))
        .unwrap_err();
        assert_eq!(e.setting, "UPLOADGATE_TABLE");
        let c = load_config(env(&[
            ("UPLOADGATE_STORE", "dynamodb"),
            ("UPLOADGATE_TABLE", "quota"),
            ("UPLOADGATE_TARGET", "s3"),
        ]))
        .unwrap();
        assert!(matches!(c.store, StoreKind::Dynamodb { ref table, .. } if table == "quota"));
    }
}
