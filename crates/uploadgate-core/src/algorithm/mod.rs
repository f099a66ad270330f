//! The limiter algorithms, as pure state transitions.
//!
//! Each is a function `(state, now, cost) -> (outcome, new_state)` with no
//! I/O and no clock of its own, so the same code runs on every store and is
//! tested against brute-force oracles with proptest. A denied request leaves
//! the state as it was (only pruned), so denial never consumes quota.

mod fixed;
mod gcra;
mod sliding;

pub use fixed::{fixed, window_bounds};
pub use gcra::gcra;
pub use sliding::sliding;

use crate::clock::Timestamp;
use crate::policy::{Algorithm, Limit, Window};
use crate::store::LimitState;

/// What one limit says about one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Whether this limit admits the request.
    pub allowed: bool,
    /// Quota left after the decision (after consuming, if allowed).
    pub remaining: u64,
    /// Milliseconds until capacity next frees up (0 if nothing is used).
    pub reset_after_ms: u64,
    /// If denied: milliseconds until this same request would be admitted.
    /// 0 when allowed.
    pub retry_after_ms: u64,
}

/// Evaluates one limit. `state` of another algorithm's shape (a policy
/// change) counts as empty. Returns the outcome and the state to store,
/// `None` when the limit holds nothing worth storing.
pub fn evaluate(
    limit: &Limit,
    state: Option<&LimitState>,
    now: Timestamp,
    cost: u64,
) -> (Outcome, Option<LimitState>) {
    let quota = limit.amount.value.get();
    let now_ms = now.as_millis();
    match (limit.algorithm, limit.window) {
        (Algorithm::Sliding, Window::Fixed(w)) => {
            let entries = match state {
                Some(LimitState::Sliding(e)) => e.as_slice(),
                _ => &[],
            };
            let (o, e) = sliding(quota, w.get(), entries, now_ms, cost);
            (o, (!e.is_empty()).then_some(LimitState::Sliding(e)))
        }
        (Algorithm::Gcra, Window::Fixed(w)) => {
            let tat = match state {
                Some(LimitState::Gcra { tat_ns, rem }) => (*tat_ns, *rem),
                _ => (0, 0),
            };
            let (o, (tat_ns, rem)) = gcra(quota, w.get(), tat, now_ms, cost);
            let live = tat_ns > now_ms.saturating_mul(1_000_000);
            (o, live.then_some(LimitState::Gcra { tat_ns, rem }))
        }
        (Algorithm::Fixed, window) => {
            let prev = match state {
                Some(LimitState::Fixed { start, used }) => Some((*start, *used)),
                _ => None,
            };
            let (o, start, used) = fixed(quota, window, prev, now_ms, cost);
            (o, (used > 0).then_some(LimitState::Fixed { start, used }))
        }
        // Policy parsing refuses calendar months for other algorithms; should
        // one get here anyway, count it as the fixed month it describes.
        (_, Window::CalendarMonth) => {
            let (o, start, used) = fixed(quota, Window::CalendarMonth, None, now_ms, cost);
            (o, (used > 0).then_some(LimitState::Fixed { start, used }))
        }
    }
}

/// When a limit's state stops mattering: after this, it reads as empty.
pub fn expires_at(limit: &Limit, state: &LimitState) -> Timestamp {
    let w = limit.window.nominal_ms();
    Timestamp(match state {
        LimitState::Sliding(e) => e
            .iter()
            .map(|(t, _)| t.saturating_add(w))
            .max()
            .unwrap_or(0),
        LimitState::Gcra { tat_ns, .. } => tat_ns.saturating_add(1).div_ceil(1_000_000),
        LimitState::Fixed { start, .. } => start.saturating_add(w),
    })
}
