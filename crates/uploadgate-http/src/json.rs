//! Response bodies, serialized straight from typed structs (the hot path
//! never builds a `serde_json::Value`). Shared by the handlers and the error
//! mapping, which both report a decision's limits.

use serde::{Serialize, Serializer};
use serde_json::Value;
use uploadgate_core::{Decision, LimitStatus};

use crate::ratelimit::secs;

/// The limits of a decision as response JSON.
pub(crate) struct LimitsJson<'a>(pub(crate) &'a [LimitStatus]);

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
pub(crate) fn limits_json(decision: &Decision) -> Value {
    serde_json::to_value(LimitsJson(&decision.limits)).unwrap_or_else(|_| Value::Array(vec![]))
}

/// The limits of an optional decision (none when the gate failed open).
pub(crate) fn decision_limits(decision: Option<&Decision>) -> LimitsJson<'_> {
    LimitsJson(decision.map_or(&[], |d| &d.limits))
}

/// The upload object of a 200 answer.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UploadJson {
    pub(crate) url: String,
    pub(crate) method: &'static str,
    #[serde(serialize_with = "pairs_as_map")]
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) key: String,
    pub(crate) expires_at: String,
}

fn pairs_as_map<Ser: Serializer>(
    pairs: &[(String, String)],
    ser: Ser,
) -> Result<Ser::Ok, Ser::Error> {
    ser.collect_map(pairs.iter().map(|(k, v)| (k, v)))
}

/// `POST /v1/uploads` 200 body.
#[derive(Serialize)]
pub(crate) struct UploadAnswer<'a> {
    #[serde(flatten)]
    pub(crate) upload: UploadJson,
    pub(crate) limits: LimitsJson<'a>,
}

/// `POST /upload-check` 200 body.
#[derive(Serialize)]
pub(crate) struct CheckAnswer<'a> {
    pub(crate) allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) upload: Option<UploadJson>,
    pub(crate) limits: LimitsJson<'a>,
}

/// `GET /v1/quota` body.
#[derive(Serialize)]
pub(crate) struct QuotaAnswer<'a> {
    /// `null` in anonymous mode.
    pub(crate) user: Option<&'a str>,
    /// The caller's quota tier; `null` for the default policy.
    pub(crate) tier: Option<&'a str>,
    pub(crate) limits: LimitsJson<'a>,
}
