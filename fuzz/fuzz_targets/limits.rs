//! The limits grammar (`UPLOADGATE_LIMITS`, `Policy::from_str`) and the
//! tiers grammar (`UPLOADGATE_TIERS`, `Tiers::from_str`) on any text.
//!
//! What parses prints back (`Display`) in a canonical form that parses to
//! an equal value and prints the same again; every limit that parses is
//! one the limiter can run; every refusal is one line (the settings layer
//! shows it after the setting's name, on one line).
#![no_main]

use libfuzzer_sys::fuzz_target;
use uploadgate_app::values::{Tiers, check_state_size};
use uploadgate_core::{Algorithm, Policy, Window};
use uploadgate_fuzz::check_message;

/// An error quotes at most the whole value, escaped: a one-byte control
/// character shows as six (`\u{12}`).
fn max_message(raw: &str) -> usize {
    raw.len() * 6 + 512
}

fn check_policy(p: &Policy) {
    let limits = p.limits();
    assert!(!limits.is_empty(), "an empty policy");
    for (i, l) in limits.iter().enumerate() {
        let name = l.name.as_str();
        assert!((1..=32).contains(&name.len()), "name {name:?}");
        assert!(
            limits[..i].iter().all(|o| o.name != l.name),
            "repeated name {name}"
        );
        assert!(l.amount.value.get() >= 1);
        match l.algorithm {
            Algorithm::Sliding(span) | Algorithm::Gcra(span) => {
                assert!(
                    (1_000..=400 * 86_400_000).contains(&span.as_millis()),
                    "{l}: span"
                );
            }
            Algorithm::Fixed(Window::Span(span)) => {
                assert!(
                    (1_000..=400 * 86_400_000).contains(&span.as_millis()),
                    "{l}: span"
                );
            }
            Algorithm::Fixed(Window::CalendarMonth) => {}
        }
    }
    let shown = p.to_string();
    assert!(
        !shown.chars().any(char::is_whitespace),
        "canonical form with whitespace: {shown:?}"
    );
    let again: Policy = shown
        .parse()
        .unwrap_or_else(|e| panic!("{shown:?} does not parse back: {e}"));
    assert_eq!(&again, p, "{shown:?} parses back to another policy");
    assert_eq!(again.to_string(), shown, "the canonical form is not stable");
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    match raw.parse::<Policy>() {
        Ok(p) => check_policy(&p),
        Err(e) => check_message(&e.to_string(), max_message(raw)),
    }
    match raw.parse::<Tiers>() {
        Ok(tiers) => {
            for (i, (name, policy)) in tiers.0.iter().enumerate() {
                assert!(
                    tiers.0[..i].iter().all(|(n, _)| n != name),
                    "repeated tier {name}"
                );
                assert!(!name.is_empty() && name.len() <= 64, "tier name {name:?}");
                check_policy(policy);
                // Each tier's state fits one store item, as UPLOADGATE_LIMITS.
                assert_eq!(check_state_size(policy), Ok(()));
            }
            let shown = tiers.to_string();
            let again: Tiers = shown
                .parse()
                .unwrap_or_else(|e| panic!("{shown:?} does not parse back: {e}"));
            assert_eq!(again, tiers, "{shown:?} parses back to other tiers");
            assert_eq!(again.to_string(), shown, "the canonical form is not stable");
        }
        Err(e) => check_message(&e, max_message(raw)),
    }
});
