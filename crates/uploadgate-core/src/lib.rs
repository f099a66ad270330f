//! The pure core of uploadgate.
//!
//! Nothing in this crate knows about AWS, HTTP or an async runtime. It holds:
//!
//! * the domain types, parsed once at the edge and valid from then on
//!   ([`UserId`], [`ObjectKey`], [`Policy`] of [`Limit`]s, each with an
//!   [`Algorithm`] that carries the window kind it counts over);
//! * the [`Clock`] trait, so time is injected and window edges are testable
//!   without sleeping ([`FakeClock`]);
//! * the limiter algorithms as pure state transitions
//!   `(state, now, cost) -> (outcome, new_state)` ([`algorithm`]);
//! * the [`Store`] trait: compare-and-swap on versioned per-key state, the one
//!   atomic operation every backend provides, and an in-memory [`MemoryStore`];
//! * the [`Limiter`], which runs the algorithms against a store under CAS and
//!   retries on conflict, so no backend ever needs a read-then-write; it
//!   coalesces concurrent requests on the same keys into one CAS, and takes
//!   what it needs of an async runtime (spawning a batch, pausing before a
//!   retry) as an injected [`Runtime`];
//! * [`settle`] and [`usage`]: paying for what lands (reservations settled
//!   by storage events, the usage ledger);
//! * [`Operation`], the shape in which the adapters declare the calls they
//!   make to outside services (strings only: no SDK comes in with it).
//!
//! Every store is held to the same behaviour by one conformance suite
//! (feature `conformance`, see [`conformance`]).

pub mod algorithm;
mod clock;
pub mod codec;
#[cfg(feature = "conformance")]
pub mod conformance;
mod domain;
mod limiter;
mod operation;
mod policy;
mod reservation;
pub mod settle;
mod store;
pub mod usage;

pub use algorithm::{FixedState, GcraState, SlidingState};
pub use clock::{Clock, FakeClock, SystemClock, Timestamp};
pub use domain::{IdError, ObjectKey, StateKey, Subject, Subjects, UserId, sanitize_filename};
pub use limiter::{
    Backlog, Backoff, Charge, Contention, Decision, GrantOutcome, GrantRequest, LimitStatus,
    Limiter, LimiterError, MAX_BATCH_KEYS, Runtime, Task,
};
pub use operation::Operation;
pub use policy::{Algorithm, Amount, Limit, LimitName, Policy, PolicyError, Span, Unit, Window};
pub use reservation::{Reservation, ReservationRequest, ReservationStatus};
pub use store::{
    CasOutcome, Grant, KeyState, LimitState, MemoryStore, Reset, Store, StoreError, Version,
    Versioned, Write,
};
