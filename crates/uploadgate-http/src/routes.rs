//! The handlers. Each reads the raw request itself, so every failure goes
//! through the one [`ApiError`] mapping (no framework rejection escapes as
//! plain text).

use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value, json};
use uploadgate_core::{
    Decision, LimitStatus, LimiterError, ObjectKey, Store, Subjects, Unit, UserId,
};

use crate::AppState;
use crate::error::ApiError;
use crate::identity::{client_ip, user_id};
use crate::metrics::{self, Outcome};
use crate::ratelimit::{RATELIMIT, ratelimit_header, secs};

/// Largest request body the API reads.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The limits of a decision as response JSON (serialized straight from the
/// decision; the hot path never builds a `serde_json::Value`).
struct LimitsJson<'a>(&'a [LimitStatus]);

impl Serialize for LimitsJson<'_> {
    fn serialize<Ser: Serializer>(&self, ser: Ser) -> Result<Ser::Ok, Ser::Error> {
        ser.collect_seq(self.0.iter().map(|l| LimitJson {
            name: l.limit.name.as_str(),
            subject: l.limit.subject.as_str(),
            unit: l.limit.amount.unit.as_str(),
            limit: l.limit.amount.value.get(),
            remaining: l.remaining,
            reset_seconds: secs(l.reset_after),
            window_seconds: l.limit.window().nominal_ms() / 1000,
        }))
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LimitJson<'a> {
    name: &'a str,
    subject: &'a str,
    unit: &'a str,
    limit: u64,
    remaining: u64,
    reset_seconds: i64,
    window_seconds: u64,
}

/// The limits of a decision as a JSON value (for the 429 problem body).
pub fn limits_json(decision: &Decision) -> Value {
    serde_json::to_value(LimitsJson(&decision.limits)).unwrap_or_else(|_| json!([]))
}

/// The upload object of a 200 answer.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UploadJson {
    url: String,
    method: &'static str,
    #[serde(serialize_with = "pairs_as_map")]
    headers: Vec<(String, String)>,
    key: String,
    expires_at: String,
}

fn pairs_as_map<Ser: Serializer>(
    pairs: &[(String, String)],
    ser: Ser,
) -> Result<Ser::Ok, Ser::Error> {
    ser.collect_map(pairs.iter().map(|(k, v)| (k, v)))
}

/// `POST /v1/uploads` 200 body.
#[derive(Serialize)]
struct UploadAnswer<'a> {
    #[serde(flatten)]
    upload: UploadJson,
    limits: LimitsJson<'a>,
}

/// `POST /upload-check` 200 body.
#[derive(Serialize)]
struct CheckAnswer<'a> {
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    upload: Option<UploadJson>,
    limits: LimitsJson<'a>,
}

/// `GET /v1/quota` body.
#[derive(Serialize)]
struct QuotaAnswer<'a> {
    user: &'a str,
    limits: LimitsJson<'a>,
}

fn decision_limits(decision: Option<&Decision>) -> LimitsJson<'_> {
    LimitsJson(decision.map_or(&[], |d| &d.limits))
}

async fn read_json(body: Body, required: bool) -> Result<Option<Map<String, Value>>, ApiError> {
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::BodyTooLarge {
            max: MAX_BODY_BYTES,
        })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return if required {
            Err(ApiError::BadRequest(
                "the request body must be a JSON object".into(),
            ))
        } else {
            Ok(None)
        };
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => Ok(Some(m)),
        Ok(_) => Err(ApiError::BadRequest(
            "the request body must be a JSON object".into(),
        )),
        Err(e) => Err(ApiError::BadRequest(format!(
            "the request body is not valid JSON: {e}"
        ))),
    }
}

fn check_declared_length(parts: &Parts) -> Result<(), ApiError> {
    let too_big = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > MAX_BODY_BYTES as u64);
    if too_big {
        Err(ApiError::BodyTooLarge {
            max: MAX_BODY_BYTES,
        })
    } else {
        Ok(())
    }
}

/// A validated upload request.
struct UploadSpec {
    filename: String,
    content_type: String,
    size: u64,
}

fn upload_spec<S: Store>(
    st: &AppState<S>,
    body: &Map<String, Value>,
) -> Result<UploadSpec, ApiError> {
    let gate = &st.inner.gate;
    let filename = match body.get("filename") {
        None | Some(Value::Null) => "file".to_owned(),
        Some(Value::String(s)) if s.len() <= 1024 => s.clone(),
        Some(Value::String(_)) => {
            return Err(ApiError::BadRequest(
                "`filename` is longer than 1024 bytes".into(),
            ));
        }
        Some(_) => return Err(ApiError::BadRequest("`filename` must be a string".into())),
    };
    let content_type = match body.get("contentType") {
        Some(Value::String(s)) => s.trim().to_ascii_lowercase(),
        None | Some(Value::Null) => {
            return Err(ApiError::BadRequest("`contentType` is required".into()));
        }
        Some(_) => {
            return Err(ApiError::BadRequest(
                "`contentType` must be a string".into(),
            ));
        }
    };
    let size = match body.get("size") {
        Some(Value::Number(n)) => match n.as_u64() {
            Some(0) => {
                return Err(ApiError::BadRequest(
                    "`size` must be at least 1 byte".into(),
                ));
            }
            Some(s) => s,
            None if n.as_i64().is_some() || n.as_f64().is_some_and(|f| f < 0.0) => {
                return Err(ApiError::BadRequest("`size` must be positive".into()));
            }
            None => {
                return Err(ApiError::BadRequest(
                    "`size` must be a whole number of bytes".into(),
                ));
            }
        },
        None | Some(Value::Null) => return Err(ApiError::BadRequest("`size` is required".into())),
        Some(_) => {
            return Err(ApiError::BadRequest(
                "`size` must be a number of bytes".into(),
            ));
        }
    };
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

fn subjects<S: Store>(st: &AppState<S>, parts: &Parts, user: UserId) -> Subjects {
    Subjects {
        user,
        ip: client_ip(st.inner.gate.client_ip, parts),
    }
}

/// Runs the limiter; maps failures per the fail-open setting. `Ok(None)`
/// means the store failed and the gate is configured to fail open. Logs the
/// decision and records its metrics.
async fn decide<S: Store>(
    st: &AppState<S>,
    route: &'static str,
    parts: &Parts,
    who: &Subjects,
    size: u64,
) -> Result<Option<Decision>, ApiError> {
    let started = std::time::Instant::now();
    let result = st.inner.limiter.consume(who, size).await;
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
            Ok(d) => (Outcome::Denied, limits(d), d.attempts),
            Err(_) if st.inner.gate.fail_open => (Outcome::FailOpen, String::new(), 0),
            Err(_) => (Outcome::FailClosed, String::new(), 0),
        };
        sink.emit(
            metrics::Record {
                timestamp_ms: st.inner.limiter.clock().now().as_millis(),
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

/// The shared start of the POST handlers: size check, JSON body, identity.
async fn read_post<S: Store>(
    st: &AppState<S>,
    req: Request,
) -> Result<(Parts, Map<String, Value>, UserId), ApiError> {
    let (parts, body) = req.into_parts();
    check_declared_length(&parts)?;
    let body = read_json(body, true).await?.unwrap_or_default();
    let user = user_id(&st.inner.gate.identity, &parts, Some(&body))?;
    Ok((parts, body, user))
}

fn names<'a>(limits: impl Iterator<Item = &'a LimitStatus>) -> String {
    limits
        .map(|l| l.limit.name.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

async fn presign<S: Store>(
    st: &AppState<S>,
    user: &UserId,
    spec: &UploadSpec,
) -> Result<UploadJson, ApiError> {
    let unique = uuid::Uuid::new_v4();
    let key = ObjectKey::for_upload(
        &st.inner.gate.key_prefix,
        user,
        unique
            .hyphenated()
            .encode_lower(&mut uuid::Uuid::encode_buffer()),
        &spec.filename,
    );
    let now =
        SystemTime::UNIX_EPOCH + Duration::from_millis(st.inner.limiter.clock().now().as_millis());
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
pub async fn create_upload<S: Store>(
    State(st): State<AppState<S>>,
    req: Request,
) -> Result<Response, ApiError> {
    let (parts, body, user) = read_post(&st, req).await?;
    let spec = upload_spec(&st, &body)?;
    let who = subjects(&st, &parts, user);
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
pub async fn upload_check<S: Store>(
    State(st): State<AppState<S>>,
    req: Request,
) -> Result<Response, ApiError> {
    let (parts, body, user) = read_post(&st, req).await?;
    let declares_upload = body.contains_key("contentType") || body.contains_key("size");
    let spec = if declares_upload {
        Some(upload_spec(&st, &body)?)
    } else {
        None
    };
    let who = subjects(&st, &parts, user);
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
pub async fn quota<S: Store>(
    State(st): State<AppState<S>>,
    req: Request,
) -> Result<Response, ApiError> {
    let (parts, _) = req.into_parts();
    let user = user_id(&st.inner.gate.identity, &parts, None)?;
    let who = subjects(&st, &parts, user);
    let decision = match st.inner.limiter.peek(&who).await {
        Ok(d) => d,
        Err(LimiterError::MissingSubject(s)) => return Err(missing_subject(s)),
        Err(e) => return Err(ApiError::Unavailable(e)),
    };
    ok_json(
        Some(&decision),
        &QuotaAnswer {
            user: who.user.as_str(),
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
