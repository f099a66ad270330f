//! The one mapping from errors to HTTP responses: every error is an RFC 9457
//! `application/problem+json` document.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};
use uploadgate_core::{Decision, LimiterError, Reservation};

use crate::json::limits_json;
use crate::ratelimit::{insert_fields, secs};

/// The problem type of draft-ietf-httpapi-ratelimit-headers for quota
/// exhaustion.
pub const QUOTA_EXCEEDED_TYPE: &str =
    "https://iana.org/assignments/http-problem-types#quota-exceeded";
const TYPE_BASE: &str = "https://uploadgate.dev/problems/";

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// Malformed JSON, a wrong type, an invalid field.
    #[error("{0}")]
    BadRequest(String),
    /// No identity on a request that needs one.
    #[error("this request needs a user identity: {0}")]
    Unauthenticated(String),
    /// The bearer token is missing or does not verify.
    #[error("{0}")]
    InvalidToken(#[source] crate::token::TokenError),
    /// The request body is larger than the API takes.
    #[error("the request body is larger than {max} bytes")]
    BodyTooLarge {
        /// The limit.
        max: usize,
    },
    /// The declared upload is larger than allowed.
    #[error("{0}")]
    ObjectTooLarge(String),
    /// The request body is not declared as JSON.
    #[error("the request body must be declared `Content-Type: application/json` (got {got})")]
    UnsupportedBody {
        /// What was declared.
        got: String,
    },
    /// The declared content type is not allowed.
    #[error("content type `{}` is not accepted; allowed: {allowed}", shown(.got))]
    UnsupportedType {
        /// What was declared.
        got: String,
        /// The allowed list.
        allowed: String,
    },
    /// The request did not come through the origin in front of the gate.
    #[error("this gate only answers requests that come through its CDN")]
    NotFromOrigin,
    /// No such route.
    #[error("there is no resource at this path")]
    NotFound,
    /// The route exists but not for this method.
    #[error("this resource does not support this method")]
    MethodNotAllowed,
    /// A limit denied the request.
    #[error("quota exceeded")]
    QuotaExceeded(Box<Decision>),
    /// Upload mode: the caller holds the most granted uploads not yet
    /// uploaded (or released) that one user may. Nothing was charged.
    #[error(
        "you hold {} upload URLs whose uploads have not landed yet; upload or let them expire first",
        Reservation::MAX_PENDING
    )]
    PendingUploads(Box<Decision>),
    /// `GET /v1/usage` where no usage is recorded.
    #[error("{0}")]
    UsageNotRecorded(&'static str),
    /// The `Idempotency-Key` was used before for another request.
    #[error("this Idempotency-Key was used for another request; use a new key for a new upload")]
    IdempotencyMismatch,
    /// The request's key was too busy to decide in time: not a limit, and
    /// not an outage. Nothing was charged.
    #[error(
        "too many requests on the same quota at once; nothing was charged, try again in a second"
    )]
    Busy(Box<Decision>),
    /// The state store failed and the gate fails closed.
    #[error("the quota store is unavailable")]
    Unavailable(#[source] LimiterError),
    /// Signing credentials could not be had (a transient failure of the
    /// credentials provider): 503, try again.
    #[error("the upload URL cannot be signed right now")]
    SigningUnavailable(#[source] uploadgate_s3::PresignError),
    /// A server-side fault.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A client's value as a message quotes it: control characters escaped,
/// and cut to 64 characters (escaping can make one byte eight).
fn shown(value: &str) -> String {
    const MAX: usize = 64;
    let escaped: String = value.escape_debug().collect();
    match escaped.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &escaped[..cut]),
        None => escaped,
    }
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated(_) | ApiError::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            ApiError::BodyTooLarge { .. } | ApiError::ObjectTooLarge(_) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::IdempotencyMismatch => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::UnsupportedType { .. } | ApiError::UnsupportedBody { .. } => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ApiError::NotFromOrigin => StatusCode::FORBIDDEN,
            ApiError::NotFound | ApiError::UsageNotRecorded(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::QuotaExceeded(_) | ApiError::Busy(_) | ApiError::PendingUploads(_) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Unavailable(_) | ApiError::SigningUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn kind(&self) -> (&'static str, &'static str) {
        match self {
            ApiError::BadRequest(_) => ("invalid-request", "The request is invalid"),
            ApiError::Unauthenticated(_) => ("unauthenticated", "No user identity"),
            ApiError::InvalidToken(_) => ("invalid-token", "Invalid bearer token"),
            ApiError::BodyTooLarge { .. } => ("body-too-large", "Request body too large"),
            ApiError::ObjectTooLarge(_) => ("object-too-large", "Upload too large"),
            ApiError::UnsupportedType { .. } => {
                ("unsupported-content-type", "Content type not accepted")
            }
            ApiError::UnsupportedBody { .. } => ("unsupported-body-type", "Request body not JSON"),
            ApiError::NotFromOrigin => ("not-from-origin", "Forbidden"),
            ApiError::NotFound => ("not-found", "Not found"),
            ApiError::MethodNotAllowed => ("method-not-allowed", "Method not allowed"),
            ApiError::QuotaExceeded(_) => (
                "quota-exceeded",
                "Request cannot be satisfied as assigned quota has been exceeded",
            ),
            ApiError::Busy(_) => ("busy", "Too many concurrent requests on one quota"),
            ApiError::PendingUploads(_) => ("pending-uploads", "Too many uploads pending"),
            ApiError::UsageNotRecorded(_) => ("usage-not-recorded", "No usage recorded here"),
            ApiError::IdempotencyMismatch => ("idempotency-key-reused", "Idempotency key reused"),
            ApiError::Unavailable(_) => ("store-unavailable", "Quota store unavailable"),
            ApiError::SigningUnavailable(_) => ("signing-unavailable", "Signing unavailable"),
            ApiError::Internal(_) => ("internal", "Internal server error"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let (slug, title) = self.kind();
        let type_uri = match self {
            ApiError::QuotaExceeded(_) => QUOTA_EXCEEDED_TYPE.to_owned(),
            _ => format!("{TYPE_BASE}{slug}"),
        };
        let mut body = json!({
            "type": type_uri,
            "title": title,
            "status": status.as_u16(),
            "detail": self.to_string(),
        });
        let mut headers = http::HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match &self {
            ApiError::QuotaExceeded(decision) => {
                let retry = decision.retry_after().map(secs).unwrap_or(1).max(1);
                let violated: Vec<&str> =
                    decision.violated().map(|l| l.limit.name.as_str()).collect();
                body["detail"] = Value::from(quota_detail(decision, retry));
                body["violated-policies"] = json!(violated);
                body["retryAfter"] = json!(retry);
                body["allowed"] = json!(false);
                body["limits"] = limits_json(decision);
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry));
                insert_fields(&mut headers, decision);
            }
            ApiError::Unavailable(e) => {
                tracing::error!(error = %e, source = ?std::error::Error::source(e), "quota store failed; failing closed");
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::SigningUnavailable(e) => {
                tracing::error!(error = %e, source = ?std::error::Error::source(e), "no credentials to sign with");
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::Internal(e) => {
                tracing::error!(error = %e, "internal error");
            }
            ApiError::PendingUploads(decision) => {
                let retry = decision.retry_after().map(secs).unwrap_or(1).max(1);
                body["detail"] = Value::from(format!("{self}; try again in {retry} s"));
                body["retryAfter"] = json!(retry);
                body["maxPending"] = json!(Reservation::MAX_PENDING);
                body["allowed"] = json!(false);
                body["limits"] = limits_json(decision);
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry));
                insert_fields(&mut headers, decision);
            }
            ApiError::Busy(decision) => {
                let retry = decision.retry_after().map(secs).unwrap_or(1).max(1);
                body["retryAfter"] = json!(retry);
                body["limits"] = limits_json(decision);
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry));
                insert_fields(&mut headers, decision);
            }
            ApiError::InvalidToken(e) => {
                // RFC 6750: the reason, never the token (messages are fixed
                // text plus a claim or header name). A quoted-string takes
                // visible ASCII only; a user id from a claim may not be.
                let reason: String = e
                    .to_string()
                    .chars()
                    .map(|c| match c {
                        '"' | '\\' => '\'',
                        ' ' | '!'..='~' => c,
                        _ => '?',
                    })
                    .collect();
                let challenge =
                    format!("Bearer error=\"invalid_token\", error_description=\"{reason}\"");
                if let Ok(v) = HeaderValue::from_str(&challenge) {
                    headers.insert(header::WWW_AUTHENTICATE, v);
                }
            }
            _ => {}
        }
        (status, headers, body.to_string()).into_response()
    }
}

/// What a quota denial says: the limits that denied it, or, should a
/// denial name none (every denial the limiter makes names one; a backlog
/// or contention denial has its own problem), the bare fact.
fn quota_detail(decision: &Decision, retry: i64) -> String {
    let limits = decision
        .violated()
        .map(|l| {
            format!(
                "limit `{}` ({} per {})",
                l.limit.name,
                l.limit.amount,
                l.limit.window()
            )
        })
        .collect::<Vec<_>>();
    if limits.is_empty() {
        format!("quota exceeded; try again in {retry} s")
    } else {
        format!("{} reached; try again in {retry} s", limits.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::TokenError;

    #[test]
    fn a_denial_naming_no_limit_still_says_what_happened() {
        let d = Decision {
            allowed: false,
            limits: vec![],
            attempts: 1,
            contention: None,
            grant: None,
            backlog: Some(uploadgate_core::Backlog {
                retry_after: std::time::Duration::from_millis(1_500),
            }),
        };
        assert_eq!(quota_detail(&d, 2), "quota exceeded; try again in 2 s");
        let res = ApiError::PendingUploads(Box::new(d)).into_response();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers()[header::RETRY_AFTER], "2");
    }

    /// Found by the upload_body fuzz target: 200 bytes of DEL in a content
    /// type made a 415 message of 1.6 KB.
    #[test]
    fn a_refused_content_type_is_quoted_short_and_escaped() {
        let e = ApiError::UnsupportedType {
            got: format!("text/plain{}", "\u{7f}".repeat(200)),
            allowed: "application/pdf".into(),
        };
        let m = e.to_string();
        assert_eq!(
            m,
            format!(
                "content type `text/plain{}…` is not accepted; allowed: application/pdf",
                "\\u{7f}".repeat(9)
            )
        );
        let short = ApiError::UnsupportedType {
            got: "text/csv".into(),
            allowed: "application/pdf".into(),
        };
        assert_eq!(
            short.to_string(),
            "content type `text/csv` is not accepted; allowed: application/pdf"
        );
    }

    /// Every 401 for a token carries its challenge (RFC 6750), whatever
    /// the reason quotes: here a user id with a non-ASCII character.
    #[test]
    fn token_refusals_always_carry_a_challenge() {
        let why = uploadgate_core::UserId::parse("zoë")
            .expect_err("not a user id")
            .to_string();
        let e = ApiError::InvalidToken(TokenError::BadUser {
            claim: "sub".into(),
            why,
        });
        let res = e.into_response();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        let challenge = res.headers()[header::WWW_AUTHENTICATE].to_str().ok();
        assert_eq!(
            challenge,
            Some(
                "Bearer error=\"invalid_token\", error_description=\"the token's `sub` claim is not a valid user id: user id contains '?'; allowed are letters, digits and . _ - @ + = : |\""
            )
        );
    }
}
