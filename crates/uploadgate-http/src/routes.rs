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
use uploadgate_core::{
    Charge, Decision, GrantOutcome, LimitStatus, LimiterError, ObjectKey, StoreError, Subjects,
    Timestamp, Unit, UserId,
};

use crate::AppState;
use crate::charge::charge;
use crate::error::ApiError;
use crate::gate::{GateConfig, OriginSecret};
use crate::identity::{Caller, client_ip};
use crate::json::{
    CheckAnswer, LimitsJson, QuotaAnswer, UploadAnswer, UploadJson, decision_limits,
};
use crate::metrics::{self, Outcome};
use crate::ratelimit::insert_fields_with;
use crate::request::{UploadRequest, parse, read_body, require_json};
use uploadgate_s3::{ChecksumSha256, PutSpec};

/// A validated upload request.
pub(crate) struct UploadSpec {
    pub(crate) filename: String,
    pub(crate) content_type: String,
    pub(crate) size: u64,
    /// The SHA-256 the bytes must have, when the client bound one.
    pub(crate) checksum: Option<ChecksumSha256>,
}

/// Checks a parsed body against the gate and the caller's policy: a
/// declared, allowed content type, a size no limit can never admit, and a
/// checksum where the gate requires one.
pub(crate) fn upload_spec(
    gate: &GateConfig,
    policy: &uploadgate_core::Policy,
    req: &UploadRequest,
) -> Result<UploadSpec, ApiError> {
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
    if let Some(l) = policy
        .limits()
        .iter()
        .find(|l| l.amount.unit == Unit::Bytes && size > l.amount.value.get())
    {
        return Err(ApiError::ObjectTooLarge(format!(
            "{size} bytes is more than limit `{}` allows in any window ({})",
            l.name, l.amount
        )));
    }
    let checksum = req.checksum_sha256.as_ref().map(|c| c.0.clone());
    if checksum.is_none() && gate.require_checksum {
        return Err(ApiError::BadRequest(
            "`checksumSha256` is required: the base64 SHA-256 of the file (UPLOADGATE_REQUIRE_CHECKSUM)"
                .into(),
        ));
    }
    Ok(UploadSpec {
        filename,
        content_type,
        size,
        checksum,
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
    charge: &Charge,
) -> Result<Option<Decision>, ApiError> {
    // Timed only for the metrics record.
    let started = st.inner.metrics.is_some().then(std::time::Instant::now);
    let result = st.inner.meter.consume(who, charge).await;
    let latency = started.map(|t| t.elapsed()).unwrap_or_default();
    // Another request under the same idempotency key: the client's mistake,
    // not a decision.
    if let Ok(d) = &result
        && d.grant == Some(GrantOutcome::Mismatch)
    {
        return Err(ApiError::IdempotencyMismatch);
    }
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
            Ok(d) if d.is_contention() => (Outcome::Contention, limits(d), d.attempts),
            Ok(d) if st.inner.gate.shadow => (Outcome::ShadowDenied, limits(d), d.attempts),
            Ok(d) => (Outcome::Denied, limits(d), d.attempts),
            Err(e) if fails_open(st, e) => (Outcome::FailOpen, String::new(), 0),
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
        Ok(d) if d.is_contention() => {
            // Busy, not full: nothing was charged; try again in a second.
            tracing::warn!(
                decision = "contention",
                attempts = d.attempts,
                "key too busy to decide; answered 429"
            );
            Err(ApiError::Busy(Box::new(d)))
        }
        Ok(d) if d.backlog.is_some() => {
            // Upload mode: too many grants not settled yet. Never admitted
            // in shadow mode either: an unrecorded grant has no refund.
            tracing::info!(
                decision = "pending-uploads",
                attempts = d.attempts,
                "too many uploads pending; answered 429"
            );
            Err(ApiError::PendingUploads(Box::new(d)))
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
        Err(e) if fails_open(st, &e) => {
            tracing::warn!(decision = "fail-open", error = %e, "quota store failed; admitting (UPLOADGATE_FAIL_OPEN)");
            Ok(None)
        }
        Err(e) => Err(ApiError::Unavailable(e)),
    }
}

/// Whether a failed decision admits (`UPLOADGATE_FAIL_OPEN`): only when the
/// store is unreachable. Never when it throttles (a client hammering one
/// key can provoke throttling, and must not thereby lift its limit) or when
/// state is corrupt (a bad record must not lift a limit for good).
fn fails_open(st: &AppState, e: &LimiterError) -> bool {
    st.inner.gate.fail_open && matches!(e, LimiterError::Store(StoreError::Unavailable(_)))
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
    require_json(&parts)?;
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

async fn presign(
    st: &AppState,
    user: &UserId,
    spec: &UploadSpec,
    unique: uuid::Uuid,
    now: Timestamp,
) -> Result<UploadJson, ApiError> {
    let key = ObjectKey::for_upload(
        &st.inner.gate.key_prefix,
        user,
        unique
            .hyphenated()
            .encode_lower(&mut uuid::Uuid::encode_buffer()),
        &spec.filename,
    );
    let now = SystemTime::UNIX_EPOCH + Duration::from_millis(now.as_millis());
    // The object downloads as an attachment under its sanitized name (never
    // rendered inline), and the uploader cannot choose otherwise: the URL
    // signs the header.
    let name = key.as_str().rsplit('/').next().unwrap_or("file");
    let disposition = format!("attachment; filename=\"{name}\"");
    let mut put =
        PutSpec::new(&key, &spec.content_type, spec.size).with_content_disposition(&disposition);
    if let Some(sum) = &spec.checksum {
        put = put.with_checksum_sha256(sum);
    }
    let signed = st.inner.presigner.presign(&put, now).await.map_err(|e| {
        if e.is_transient() {
            ApiError::SigningUnavailable(e)
        } else {
            ApiError::Internal(Box::new(e))
        }
    })?;
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
pub(crate) fn ok_json(
    st: &AppState,
    decision: Option<&Decision>,
    body: &impl Serialize,
) -> Result<Response, ApiError> {
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
    if let Some(d) = decision {
        insert_fields_with(res.headers_mut(), d, &st.inner.policy_fields);
    }
    Ok(res)
}

/// A fresh unique part for an object key: a UUIDv7 of `now` (the injected
/// clock's), so the key itself tells when it was granted. The settle step
/// reads that time back for an upload whose reservation is gone.
fn fresh_unique(now: Timestamp) -> uuid::Uuid {
    let ms = now.as_millis();
    let (secs, nanos) = (ms / 1000, u32::try_from(ms % 1000).unwrap_or(0) * 1_000_000);
    uuid::Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, secs, nanos))
}

/// The object key's unique part a decision settles on: the original one
/// when an idempotent retry is replayed, else this request's.
fn unique_of(decision: Option<&Decision>, fresh: uuid::Uuid) -> uuid::Uuid {
    match decision.and_then(|d| d.grant) {
        Some(GrantOutcome::Replayed { unique }) => uuid::Uuid::from_bytes(unique),
        _ => fresh,
    }
}

/// A request the limiter admitted: its decision (`None` when the store
/// failed and the gate fails open), and what its URL is signed for.
struct Admitted {
    decision: Option<Decision>,
    user: UserId,
    /// The object key's unique part: this request's, or the original one
    /// of an idempotent retry.
    unique: uuid::Uuid,
    now: Timestamp,
}

impl Admitted {
    /// The single-use URL for `spec`.
    async fn presign(&self, st: &AppState, spec: &UploadSpec) -> Result<UploadJson, ApiError> {
        presign(st, &self.user, spec, self.unique, self.now).await
    }
}

/// Charges the caller's quotas for the upload `spec` declares. Without one
/// only count limits are charged (size 0), and nothing is reserved.
async fn admit(
    st: &AppState,
    route: &'static str,
    parts: &Parts,
    caller: &Caller,
    spec: Option<&UploadSpec>,
) -> Result<Admitted, ApiError> {
    let who = subjects(st, parts, caller);
    let now = st.inner.meter.now();
    let fresh = fresh_unique(now);
    let charge = charge(st, parts, caller, route, spec, *fresh.as_bytes(), now)?;
    let decision = decide(st, route, parts, &who, &charge).await?;
    Ok(Admitted {
        unique: unique_of(decision.as_ref(), fresh),
        decision,
        user: who.user,
        now,
    })
}

/// `POST /v1/uploads`: charge the quotas, then sign a single-use URL.
pub async fn create_upload(State(st): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let (parts, body, caller) = read_post(&st, req).await?;
    let tier = crate::charge::tier(&st, &caller);
    let spec = upload_spec(
        &st.inner.gate,
        st.inner.meter.policy_of(tier.as_deref()),
        &body,
    )?;
    let admitted = admit(&st, "uploads", &parts, &caller, Some(&spec)).await?;
    let upload = admitted.presign(&st, &spec).await?;
    let decision = admitted.decision.as_ref();
    ok_json(
        &st,
        decision,
        &UploadAnswer {
            upload,
            limits: decision_limits(decision),
        },
    )
}

/// `POST /upload-check`: the original design's route. Same decision; the
/// upload object is included when the body declares `contentType` and
/// `size`.
pub async fn upload_check(State(st): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let (parts, body, caller) = read_post(&st, req).await?;
    let tier = crate::charge::tier(&st, &caller);
    let declares_upload = body.content_type.is_some() || body.size.is_some();
    let spec = if declares_upload {
        Some(upload_spec(
            &st.inner.gate,
            st.inner.meter.policy_of(tier.as_deref()),
            &body,
        )?)
    } else {
        None
    };
    let admitted = admit(&st, "upload-check", &parts, &caller, spec.as_ref()).await?;
    let upload = match &spec {
        Some(spec) => Some(admitted.presign(&st, spec).await?),
        None => None,
    };
    let decision = admitted.decision.as_ref();
    ok_json(
        &st,
        decision,
        &CheckAnswer {
            allowed: true,
            upload,
            limits: decision_limits(decision),
        },
    )
}

/// `GET /v1/quota`: what is left of the caller's own tier, consuming
/// nothing.
pub async fn quota(State(st): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let (parts, _) = req.into_parts();
    let caller = st.inner.identity.caller(&parts, None).await?;
    let tier = crate::charge::tier(&st, &caller);
    let who = subjects(&st, &parts, &caller);
    let decision = match st.inner.meter.peek(&who, tier.as_deref()).await {
        Ok(d) => d,
        Err(LimiterError::MissingSubject(s)) => return Err(missing_subject(s)),
        Err(e) => return Err(ApiError::Unavailable(e)),
    };
    ok_json(
        &st,
        Some(&decision),
        &QuotaAnswer {
            user: caller.user.as_ref().map(UserId::as_str),
            tier: tier.as_deref(),
            limits: LimitsJson(&decision.limits),
        },
    )
}

/// Refuses a request that lacks the origin secret: behind CloudFront, only
/// requests CloudFront forwards carry it, so only those may claim a viewer
/// address (`CloudFront-Viewer-Address`). A plain tower validator, layered
/// only when a secret is set, so a gate without one pays nothing for it.
#[derive(Clone)]
pub(crate) struct FromOrigin(pub(crate) OriginSecret);

impl<B> tower_http::validate_request::ValidateRequest<B> for FromOrigin {
    type ResponseBody = axum::body::Body;

    fn validate(&mut self, req: &mut http::Request<B>) -> Result<(), Response> {
        use subtle::ConstantTimeEq as _;
        let sent = req
            .headers()
            .get(crate::ORIGIN_VERIFY)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if bool::from(sent.ct_eq(self.0.expose())) {
            Ok(())
        } else {
            Err(ApiError::NotFromOrigin.into_response())
        }
    }
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
