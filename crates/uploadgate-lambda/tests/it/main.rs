//! The Lambda adapter end to end in process: event fixtures (tests/data)
//! go through lambda_http's own event conversion (`LambdaRequest` →
//! `http::Request`, the invocation context attached), the adapter, the
//! real router on a memory store, and lambda_http's response conversion,
//! exactly as `lambda_http::run` chains them for each invocation.

// Test helpers panic on purpose: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod binary;
mod events;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use lambda_http::lambda_runtime::{Context, LambdaEvent};
use lambda_http::request::LambdaRequest;
use lambda_http::tower::{Service, ServiceExt};
use lambda_http::{Adapter, Request};
use serde_json::Value;
use uploadgate_core::{Clock, FakeClock, MemoryStore, StateKey, Store, Timestamp};
use uploadgate_http::{AppState, MetricsSink, router};
use uploadgate_s3::{LocalCredentials, Presigner};

/// 2027-01-15T08:00:00Z, the fixtures' request time.
const T0: Timestamp = Timestamp(1_800_000_000_000);

/// EMF lines, captured.
#[derive(Default)]
pub(crate) struct Lines(Mutex<Vec<String>>);

impl Lines {
    pub(crate) fn take(&self) -> Vec<Value> {
        std::mem::take(&mut *self.0.lock().unwrap())
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl MetricsSink for Lines {
    fn emit(&self, line: String) {
        self.0.lock().unwrap().push(line);
    }
}

/// The function as the runtime loop sees it, plus its state for
/// inspection and its metric lines.
pub(crate) struct Function {
    service: uploadgate_lambda::LambdaService,
    store: Arc<MemoryStore>,
    pub(crate) metrics: Arc<Lines>,
}

/// A function configured like the deployed one (`UPLOADGATE_*` as the
/// environment, read through the Lambda defaults), with a memory store
/// and a presigner for a local endpoint.
pub(crate) fn function(env: &[(&'static str, &'static str)]) -> Function {
    let mut env = env.to_vec();
    // The fixtures identify callers by header; the first value of a name
    // wins, so a test may still choose another mode.
    env.extend([
        ("UPLOADGATE_STORE", "memory"),
        ("UPLOADGATE_TARGET", "s3"),
        ("UPLOADGATE_IDENTITY", "header"),
    ]);
    let config = uploadgate_lambda::load_config(|k| {
        env.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| (*v).to_owned())
    })
    .unwrap();
    assert!(config.gate.emf_metrics, "Lambda defaults to EMF metrics");
    let creds = LocalCredentials {
        access_key: "AKIDTEST".into(),
        secret_key: "test-secret".into(),
    };
    let presigner = Presigner::for_local(
        "http://127.0.0.1:9",
        &creds,
        config.bucket.clone(),
        config.url_ttl,
    );
    let clock: Arc<dyn Clock> = Arc::new(FakeClock::new(T0));
    let metrics = Arc::new(Lines::default());
    let sink: Arc<dyn MetricsSink> = metrics.clone();
    let store = Arc::new(MemoryStore::new());
    let state = AppState::with_metrics_sink(
        config.gate,
        Arc::clone(&store),
        clock,
        presigner,
        Some(sink),
    );
    Function {
        service: uploadgate_lambda::service(router(state)),
        store,
        metrics,
    }
}

/// A fixture from tests/data as JSON.
pub(crate) fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// What Lambda would get back: the serialized response event.
pub(crate) struct Answer {
    pub(crate) status: u64,
    pub(crate) json: Value,
    pub(crate) body: Value,
}

impl Answer {
    /// A response header, from `headers` (payload 2.0) or
    /// `multiValueHeaders` (REST).
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        if let Some(v) = self.json["headers"].get(name).and_then(Value::as_str) {
            return Some(v.to_owned());
        }
        let values = self.json["multiValueHeaders"].get(name)?.as_array()?;
        assert_eq!(values.len(), 1, "{name}: {values:?}");
        values[0].as_str().map(str::to_owned)
    }
}

impl Function {
    /// Invokes the function with `event` under the invocation request id
    /// `request_id`, as the runtime loop would.
    pub(crate) async fn invoke(&self, event: Value, request_id: &str) -> Answer {
        let payload: LambdaRequest = serde_json::from_value(event).unwrap();
        let mut context = Context::default();
        context.request_id = request_id.to_owned();
        let mut adapter = Adapter::from(self.service.clone());
        let response = adapter
            .ready()
            .await
            .unwrap()
            .call(LambdaEvent::new(payload, context))
            .await
            .unwrap();
        let json = serde_json::to_value(&response).unwrap();
        assert_eq!(json["isBase64Encoded"], false, "{json}");
        let body = json["body"]
            .as_str()
            .map(|b| serde_json::from_str(b).unwrap_or(Value::String(b.to_owned())))
            .unwrap_or(Value::Null);
        Answer {
            status: json["statusCode"].as_u64().unwrap(),
            json,
            body,
        }
    }

    /// Whether the store holds state for the `ip` subject of `addr`.
    pub(crate) async fn has_ip_state(&self, addr: &str) -> bool {
        let ip: IpAddr = addr.parse().unwrap();
        let key = StateKey::ip(ip);
        self.store.load(&[key]).await.unwrap()[0].is_some()
    }
}

/// A prepared request, for the adapter's own tests.
pub(crate) fn converted(event: Value, request_id: Option<&str>) -> Request {
    let payload: LambdaRequest = serde_json::from_value(event).unwrap();
    let req: Request = payload.into();
    match request_id {
        Some(id) => {
            use lambda_http::RequestExt;
            let mut context = Context::default();
            context.request_id = id.to_owned();
            req.with_lambda_context(context)
        }
        None => req,
    }
}
