//! The uploadgate HTTP API as one axum [`Router`].
//!
//! The router is the product: the local server runs it with `axum::serve`,
//! the Lambda function runs the very same router with `lambda_http`, and the
//! tests call it with `tower::ServiceExt::oneshot`. Handlers parse requests
//! into core types at the edge, ask the core [`Limiter`] for a decision,
//! sign a URL with the [`Presigner`], and turn every failure into RFC 9457
//! problem+json through the single [`ApiError`] mapping.
//!
//! In upload mode ([`GateConfig::settlement`]) the upload routes record
//! what each URL binds as a reservation, and `GET /v1/usage` reads the
//! caller's settled uploads from the usage ledger given with
//! [`AppState::with_usage`]; settling itself is the event source's job
//! (`uploadgate serve`'s embedded bucket).

mod charge;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod gate;
pub mod identity;
mod json;
mod meter;
pub mod metrics;
pub mod ratelimit;
mod request;
mod routes;
pub mod token;
mod usage;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use http::{HeaderName, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use uploadgate_core::{Clock, Limiter, Store};
use uploadgate_s3::Presigner;

pub use error::{ApiError, QUOTA_EXCEEDED_TYPE};
pub use gate::{ClientIpSource, CorsOrigins, GateConfig, IdentityMode, OriginSecret};
pub use identity::ClientAddr;
pub use meter::{BoxFuture, Meter, Tokio};
pub use metrics::MetricsSink;
pub use request::MAX_BODY_BYTES;
pub use usage::UsageLog;

/// The header that carries [`GateConfig::origin_secret`].
pub const ORIGIN_VERIFY: HeaderName = HeaderName::from_static("x-origin-verify");

/// The request id header. Runners may set it (the Lambda function sets its
/// invocation's request id); otherwise a UUID is generated. It is echoed on
/// the response and carried by every log line and metric of the request.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The OpenAPI 3.1 description of this API.
pub const OPENAPI_YAML: &str = include_str!("../../../docs/openapi.yaml");

/// Everything the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    gate: GateConfig,
    identity: identity::Identity,
    meter: Box<dyn Meter>,
    presigner: Presigner,
    metrics: Option<Arc<dyn MetricsSink>>,
    fallbacks: charge::Fallbacks,
    /// The `RateLimit-Policy` values of the policy and each tier.
    policy_fields: ratelimit::PolicyFields,
    /// The usage ledger `GET /v1/usage` reads, if the deployment keeps one.
    usage: OnceLock<Box<dyn UsageLog>>,
}

/// The limiter the router runs for `gate`, on `store` and `clock`: the
/// gate's policy and tiers, its charging mode
/// ([`GateConfig::settlement`]), batches run on Tokio. Built apart from
/// the [`AppState`] when something else needs the same limiter (the settle
/// step writes through it): clones share its store and batches.
pub fn limiter<S: Store, C: Clock>(gate: &GateConfig, store: S, clock: C) -> Limiter<S, C> {
    Limiter::new(Arc::new(gate.policy.clone()), store, clock)
        .with_tiers(gate.tiers.clone())
        .with_settlement(gate.settlement)
        .with_runtime(Arc::new(meter::Tokio))
}

impl AppState {
    /// Builds the state once, at start-up: a limiter for the gate's policy
    /// on `store`. Metrics go to stdout when the configuration asks for EMF.
    pub fn new<S: Store>(
        gate: GateConfig,
        store: S,
        clock: Arc<dyn Clock>,
        presigner: Presigner,
    ) -> Self {
        let sink = gate
            .emf_metrics
            .then(|| Arc::new(metrics::Stdout) as Arc<dyn MetricsSink>);
        Self::with_metrics_sink(gate, store, clock, presigner, sink)
    }

    /// Like [`AppState::new`], with metrics going to `sink` (or nowhere).
    pub fn with_metrics_sink<S: Store>(
        gate: GateConfig,
        store: S,
        clock: Arc<dyn Clock>,
        presigner: Presigner,
        sink: Option<Arc<dyn MetricsSink>>,
    ) -> Self {
        let limiter = limiter(&gate, store, clock);
        Self::with_limiter(gate, limiter, presigner, sink)
    }

    /// The state around a `limiter` built by [`limiter`] for `gate` (whose
    /// clock also times tokens), with metrics going to `sink`.
    pub fn with_limiter<S: Store>(
        gate: GateConfig,
        limiter: Limiter<S, Arc<dyn Clock>>,
        presigner: Presigner,
        sink: Option<Arc<dyn MetricsSink>>,
    ) -> Self {
        let identity = identity::Identity::new(&gate.identity, Arc::clone(limiter.clock()));
        let policy_fields = ratelimit::PolicyFields::new(
            std::iter::once(&gate.policy).chain(gate.tiers.iter().map(|(_, p)| p)),
        );
        AppState {
            inner: Arc::new(Inner {
                policy_fields,
                gate,
                identity,
                meter: Box::new(limiter),
                presigner,
                metrics: sink,
                fallbacks: charge::Fallbacks::default(),
                usage: OnceLock::new(),
            }),
        }
    }

    /// Serves `GET /v1/usage` from `ledger`. Without a ledger the route
    /// answers 404 (`usage-not-recorded`). The first ledger given stays.
    pub fn with_usage(self, ledger: impl UsageLog) -> Self {
        if self.inner.usage.set(Box::new(ledger)).is_err() {
            tracing::warn!("a usage ledger was already set; keeping the first");
        }
        self
    }

    /// The metrics sink, if metrics are on (the settle step writes its
    /// verdicts there too).
    pub fn metrics_sink(&self) -> Option<Arc<dyn MetricsSink>> {
        self.inner.metrics.clone()
    }

    /// Does the one-time work of identification (fetching the issuer's
    /// keys) now, at start-up, so the first request does not wait for it.
    /// A failure is logged; keys are fetched again on demand.
    pub async fn warm_up(&self) {
        self.inner.identity.warm_up().await;
    }

    /// The limiter, as the handlers see it (the purge task of `serve` and
    /// benchmarks use it too).
    pub fn meter(&self) -> &dyn Meter {
        self.inner.meter.as_ref()
    }
}

fn cors(gate: &GateConfig, identity: &identity::Identity) -> Option<CorsLayer> {
    let origins = match &gate.cors {
        CorsOrigins::None => return None,
        CorsOrigins::Any => AllowOrigin::any(),
        CorsOrigins::List(l) => AllowOrigin::list(l.clone()),
    };
    let mut allow_headers = vec![
        header::CONTENT_TYPE,
        HeaderName::from_static("x-amz-content-sha256"),
        charge::IDEMPOTENCY_KEY,
    ];
    if let Some(h) = identity.header() {
        allow_headers.push(h.clone());
    }
    Some(
        CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers(allow_headers)
            .expose_headers([
                ratelimit::RATELIMIT,
                ratelimit::RATELIMIT_POLICY,
                header::RETRY_AFTER,
            ])
            .max_age(Duration::from_secs(600)),
    )
}

fn asset(content_type: &'static str, body: &'static str) -> axum::response::Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The API: `POST /v1/uploads`, `GET /v1/quota`, `GET /v1/usage`,
/// `POST /upload-check`, `GET /healthz`, the demo page at `/` and the
/// OpenAPI document.
pub fn router(state: AppState) -> Router {
    let policy = state
        .inner
        .policy_fields
        .for_limits(state.inner.gate.policy.limits().iter());
    let api = Router::new()
        .route("/v1/uploads", post(routes::create_upload))
        .route("/v1/quota", get(routes::quota))
        .route("/v1/usage", get(usage::usage))
        .route("/upload-check", post(routes::upload_check))
        .layer(SetResponseHeaderLayer::if_not_present(
            ratelimit::RATELIMIT_POLICY,
            move |_: &axum::response::Response| policy.clone(),
        ));
    let cors = cors(&state.inner.gate, &state.inner.identity);
    Router::new()
        .merge(api)
        .route(
            "/",
            get(|| async {
                asset(
                    "text/html; charset=utf-8",
                    include_str!("../assets/index.html"),
                )
            }),
        )
        .route(
            "/assets/app.js",
            get(|| async {
                asset(
                    "text/javascript; charset=utf-8",
                    include_str!("../assets/app.js"),
                )
            }),
        )
        .route(
            "/assets/app.css",
            get(|| async { asset("text/css; charset=utf-8", include_str!("../assets/app.css")) }),
        )
        .route(
            "/assets/uploadgate.js",
            get(|| async {
                asset(
                    "text/javascript; charset=utf-8",
                    include_str!("../../../clients/js/uploadgate.js"),
                )
            }),
        )
        .route(
            "/openapi.yaml",
            get(|| async { asset("application/yaml", OPENAPI_YAML) }),
        )
        // Every route so far needs the origin's proof, when one is set.
        .route_layer(tower::util::option_layer(
            state.inner.gate.origin_secret.clone().map(|secret| {
                tower_http::validate_request::ValidateRequestHeaderLayer::custom(
                    routes::FromOrigin(secret),
                )
            }),
        ))
        // Liveness answers anyone (load balancers, probes): it carries no
        // state and charges nothing.
        .route("/healthz", get(routes::healthz))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(tower::util::option_layer(cors))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &http::Request<_>| {
                // Path only: the query string is not logged.
                tracing::info_span!(
                    "request",
                    method = %req.method(),
                    path = req.uri().path(),
                    request_id = req
                        .headers()
                        .get(REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default(),
                )
            }),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}
