//! The handlers. Each reads the raw request itself, so every failure goes
//! through the one [`ApiError`] mapping (no framework rejection escapes as
//! plain text).

use std::time::{Duration, SystemTime};

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use uploadgate_core::{Decision, LimitStatus, LimiterError, ObjectKey, Subjects, Unit, UserId};

use crate::AppState;
use crate::error::ApiError;
use crate::gate::GateConfig;
use crate::identity::{Caller, client_ip};
use crate::json::{
    CheckAnswer, LimitsJson, QuotaAnswer, UploadAnswer, UploadJson, decision_limits,
};
use crate::metrics::{self, Outcome};
use crate::ratelimit::{RATELIMIT, ratelimit_header};
use crate::request::{UploadRequest, parse, read_body};

/// A validated upload request.
pub(crate) struct UploadSpec {
    pub(crate) filename: String,
    pub(crate) content_type: String,
    pub(crate) size: u64,
}

/// Checks a parsed body against the gate: a declared, allowed content type
/// and a size no limit can never admit.
pub(crate) fn upload_spec(gate: &GateConfig, req: &UploadRequest) -> Result<UploadSpec, ApiError> {
    let filename = req
        .filename
        .as_ref()
        .map_or_else(|| "file".to_owned(), |f| f.0.clone());
    let content_type = req
        .content_type
        .as_ref()
        .ok_or_else(|| ApiError::BadRequest("`contentType` is required".into()))?
        .0
        .clone();
    let size = req
        .size
        .ok_or_else(|| ApiError::BadRequest("`size` is required".into()))?
        .0;
    if !gate.content_types.contains(&content_type) {
        return Err(ApiError::UnsupportedType {
            got: content_type,
            allowed: gate.content_types.join(", "),
        });
    }
    if size > gate.max_object_bytes {
        return Err(ApiError::ObjectTooLarge(format!(
            "{size} bytes is over the maximum upload size of {} bytes",
            gate.max_object_bytes
        )));
    }
    if let Some(l) = gate
        .policy
        .limits()
        .iter()
        .find(|l| l.amount.unit == Unit::Bytes && size > l.amount.value.get())
    {
        return Err(ApiError::ObjectTooLarge(format!(
            "{size} bytes is more than limit `{}` allows in any window ({})",
            l.name, l.amount
        )));
    }
    Ok(UploadSpec {
        filename,
        content_type,
        size,
    })
}

/// The owner of anonymous uploads: in anonymous mode there are no users,
/// so the name cannot collide, and no user limit exists to charge it.
fn anonymous() -> UserId {
    UserId::parse("anonymous").unwrap_or_else(|_| unreachable!("a valid constant id"))
}

fn subjects(st: &AppState, parts: &Parts, caller: &Caller) -> Subjects {
    Subjects {
        user: caller.user.clone().unwrap_or_else(anonymous),
        ip: client_ip(st.inner.gate.client_ip, parts),
    }
}

/// Runs the limiter; maps failures per the fail-open setting. `Ok(None)`
/// means the store failed and the gate is configured to fail open. Logs the
/// decision and records its metrics.
async fn decide(
    st: &AppState,
    route: &'static str,
    parts: &Parts,
    who: &Subjects,
    size: u64,
) -> Result<Option<Decision>, ApiError> {
    let started = std::time::Instant::now();
    let result = st.inner.meter.consume(who, size).await;
    let latency = started.elapsed();
    // The limits a log line or metric names: all of them when admitted, the
    // violated ones when denied. Formatted only if something records them.
    let limits = |d: &Decision| {
        if d.allowed {
            names(d.limits.iter())
        } else {
            names(d.violated())
        }
    };
    if let Some(sink) = &st.inner.metrics {
        let (outcome, limits, retries) = match &result {
            Ok(d) if d.allowed => (Outcome::Allowed, limits(d), d.attempts),
            Ok(d) if st.inner.gate.shadow => (Outcome::ShadowDenied, limits(d), d.attempts),
            Ok(d) => (Outcome::Denied, limits(d), d.attempts),
            Err(_) if st.inner.gate.fail_open => (Outcome::FailOpen, String::new(), 0),
            Err(_) => (Outcome::FailClosed, String::new(), 0),
        };
        sink.emit(
            metrics::Record {
                timestamp_ms: st.inner.meter.now().as_millis(),
                route,
                outcome,
                store_latency: latency,
                retries: retries.saturating_sub(1),
                request_id: parts
                    .headers
                    .get(crate::REQUEST_ID)
                    .and_then(|v| v.to_str().ok()),
                limits: &limits,
            }
            .to_line(),
        );
    }
    match result {
        Ok(d) if d.allowed => {
            // Field values are only evaluated when the event is enabled.
            tracing::info!(decision = "allowed", limits = %limits(&d), attempts = d.attempts, "upload admitted");
            Ok(Some(d))
        }
        Ok(d) if st.inner.gate.shadow => {
            // Measured, not enforced: the URL goes out with the would-be
            // RateLimit fields, and nothing was charged.
            tracing::info!(decision = "shadow-denied", limits = %limits(&d), attempts = d.attempts, "upload would be denied; admitted (UPLOADGATE_SHADOW)");
            Ok(Some(d))
        }
        Ok(d) => {
            // Field values are only evaluated when the event is enabled.
            tracing::info!(decision = "denied", limits = %limits(&d), attempts = d.attempts, "upload denied");
            Err(ApiError::QuotaExceeded(Box::new(d)))
        }
        Err(LimiterError::MissingSubject(s)) => Err(missing_subject(s)),
        Err(e) if st.inner.gate.fail_open => {
            tracing::warn!(decision = "fail-open", error = %e, "quota store failed; admitting (UPLOADGATE_FAIL_OPEN)");
            Ok(None)
        }
        Err(e) => Err(ApiError::Unavailable(e)),
    }
}

/// The runner gave no client address although the policy limits by it: a
/// deployment fault, not client input.
fn missing_subject(s: uploadgate_core::Subject) -> ApiError {
    ApiError::Internal(
        format!("the policy limits by {s}, but the client address is unavailable").into(),
    )
}

/// The shared start of the POST handlers: the JSON body and the identity.
async fn read_post(
    st: &AppState,
    req: Request,
) -> Result<(Parts, UploadRequest, Caller), ApiError> {
    let (parts, body) = req.into_parts();
    let bytes: Bytes = read_body(&parts, body).await?;
    let upload: UploadRequest = parse(&bytes)?;
    let caller = st.inner.identity.caller(&parts, Some(&bytes)).await?;
    Ok((parts, upload, caller))
}

fn names<'a>(limits: impl Iterator<Item = &'a LimitStatus>) -> String {
    limits
        .map(|l| l.limit.name.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

async fn presign(st: &AppState, user: &UserId, spec: &UploadSpec) -> Result<UploadJson, ApiError> {
    let unique = uuid::Uuid::new_v4();
    let key = ObjectKey::for_upload(
        &st.inner.gate.key_prefix,
        user,
        unique
            .hyphenated()
            .encode_lower(&mut uuid::Uuid::encode_buffer()),
        &spec.filename,
    );
    let now = SystemTime::UNIX_EPOCH + Duration::from_millis(st.inner.meter.now().as_millis());
    let signed = st
        .inner
        .presigner
        .presign_put(&key, &spec.content_type, spec.size, now)
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    let expires: time::OffsetDateTime = signed.expires_at.into();
    let expires_at = expires
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    Ok(UploadJson {
        url: signed.url,
        method: "PUT",
        headers: signed.headers,
        key: key.into_string(),
        expires_at,
    })
}

/// A 200 `application/json` answer with the decision's `RateLimit` field.
fn ok_json(decision: Option<&Decision>, body: &impl Serialize) -> Result<Response, ApiError> {
    let body = serde_json::to_vec(body).map_err(|e| ApiError::Internal(Box::new(e)))?;
    let mut res = (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response();
    if let Some(v) = decision.and_then(ratelimit_header) {
        res.headers_mut().insert(RATELIMIT, v);
    }
    Ok(res)
}

/// `POST /v1/uploads`: charge the quotas, then sign a single-use URL.
pub async fn create_upload(State(st): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let (parts, body, caller) = read_post(&st, req).await?;
    let spec = upload_spec(&st.inner.gate, &body)?;
    let who = subjects(&st, &parts, &caller);
    let decision = decide(&st, "uploads", &parts, &who, spec.size).await?;
    let upload = presign(&st, &who.user, &spec).await?;
    ok_json(
        decision.as_ref(),
        &UploadAnswer {
            upload,
            limits: decision_limits(decision.as_ref()),
        },
    )
}

/// `POST /upload-check`: the original design's route. Same decision; the
/// upload object is included when the body declares `contentType` and
/// `size`.
pub async fn upload_check(State(st): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let (parts, body, caller) = read_post(&st, req).await?;
    let declares_upload = body.content_type.is_some() || body.size.is_some();
    let spec = if declares_upload {
        Some(upload_spec(&st.inner.gate, &body)?)
    } else {
        None
    };
    let who = subjects(&st, &parts, &caller);
    // Without a declared upload only count limits are charged (size 0).
    let decision = decide(
        &st,
        "upload-check",
        &parts,
        &who,
        spec.as_ref().map_or(0, |s| s.size),
    )
    .await?;
    let upload = match &spec {
        Some(spec) => Some(presign(&st, &who.user, spec).await?),
        None => None,
    };
    ok_json(
        decision.as_ref(),
        &CheckAnswer {
            allowed: true,
            upload,
            limits: decision_limits(decision.as_ref()),
        },
    )
}

/// `GET /v1/quota`: what is left, consuming nothing.
pub async fn quota(State(st): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let (parts, _) = req.into_parts();
    let caller = st.inner.identity.caller(&parts, None).await?;
    let who = subjects(&st, &parts, &caller);
    let decision = match st.inner.meter.peek(&who).await {
        Ok(d) => d,
        Err(LimiterError::MissingSubject(s)) => return Err(missing_subject(s)),
        Err(e) => return Err(ApiError::Unavailable(e)),
    };
    ok_json(
        Some(&decision),
        &QuotaAnswer {
            user: caller.user.as_ref().map(UserId::as_str),
            limits: LimitsJson(&decision.limits),
        },
    )
}

/// `GET /healthz`.
pub async fn healthz() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"ok"}"#,
    )
        .into_response()
}

/// Unknown routes.
pub async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// Known routes, wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
