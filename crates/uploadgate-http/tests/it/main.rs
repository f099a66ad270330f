//! Integration tests of the router, called in-process with `oneshot`.

// Test helpers panic on purpose: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod api;
mod fuzz;
mod jwt;
mod modes;
mod openapi;
mod settle;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use http::{Request, Response};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;
use uploadgate_app::Config;
use uploadgate_core::{Clock, FakeClock, MemoryStore, Store, Timestamp};
use uploadgate_http::{AppState, router};
use uploadgate_s3::{LocalCredentials, Presigner};

/// 2027-01-15T08:00:00Z: a fixed "now" so windows are exact.
pub(crate) const T0: Timestamp = Timestamp(1_800_000_000_000);

pub(crate) fn config(env: &[(&str, &str)]) -> Config {
    Config::from_lookup(&[], |k| {
        env.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| (*v).to_owned())
    })
    .expect("valid test config")
}

pub(crate) fn presigner(cfg: &Config) -> Presigner {
    let creds = LocalCredentials {
        access_key: "AKIDTEST".into(),
        secret_key: "test-secret".into(),
    };
    Presigner::for_local(
        "http://127.0.0.1:9",
        &creds,
        cfg.bucket.clone(),
        cfg.url_ttl,
    )
}

pub(crate) fn app_with<S: Store>(env: &[(&str, &str)], store: S, clock: FakeClock) -> Router {
    let cfg = config(env);
    let p = presigner(&cfg);
    let clock: Arc<dyn Clock> = Arc::new(clock);
    router(AppState::new(cfg.gate, store, clock, p))
}

pub(crate) fn app(env: &[(&str, &str)]) -> (Router, FakeClock) {
    let clock = FakeClock::new(T0);
    (app_with(env, MemoryStore::new(), clock.clone()), clock)
}

pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: http::HeaderMap,
    pub(crate) body: Value,
    pub(crate) raw: String,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub(crate) async fn read(res: Response<Body>) -> Reply {
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    let raw = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
        raw,
    }
}

pub(crate) fn with_peer(mut req: Request<Body>, ip: &str) -> Request<Body> {
    let addr: SocketAddr = format!("{ip}:40000").parse().expect("addr");
    req.extensions_mut().insert(ConnectInfo(addr));
    req
}

pub(crate) async fn send(app: &Router, req: Request<Body>) -> Reply {
    read(app.clone().oneshot(req).await.expect("infallible")).await
}

pub(crate) fn upload_req(user: &str, body: &str) -> Request<Body> {
    let req = Request::post("/v1/uploads")
        .header("x-user-id", user)
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .expect("request");
    with_peer(req, "192.0.2.10")
}

pub(crate) fn pdf(size: u64) -> String {
    format!(r#"{{"filename":"invoice.pdf","contentType":"application/pdf","size":{size}}}"#)
}

pub(crate) async fn upload(app: &Router, user: &str, size: u64) -> Reply {
    send(app, upload_req(user, &pdf(size))).await
}

pub(crate) async fn quota(app: &Router, user: &str) -> Reply {
    let req = Request::get("/v1/quota")
        .header("x-user-id", user)
        .body(Body::empty())
        .expect("request");
    send(app, with_peer(req, "192.0.2.10")).await
}
