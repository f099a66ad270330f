//! What a pass judges by besides each job's own policy: every limit
//! definition the limiter knows (to bring a foreign limit's state up to
//! date, and to release a reservation under the definition it was charged
//! by), and the settlement grace (`None`: grant mode).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::policy::{Algorithm, Limit, Policy};
use crate::store::LimitState;

/// The limiter's rules; see the module docs.
#[derive(Clone, Debug, Default)]
pub(super) struct Rules {
    /// Limit name -> every definition of it, across the policies.
    known: HashMap<String, Vec<Limit>>,
    /// (tier, limit name) -> that tier's definition; `None` is the default
    /// policy.
    by_tier: HashMap<(Option<String>, String), Limit>,
    /// How long after its URL's expiry a pending reservation is released;
    /// `None` in grant mode (nothing is reserved or released).
    pub(super) grace: Option<Duration>,
}

impl Rules {
    /// The rules of `policy` and `tiers`, in grant mode.
    pub(super) fn new(policy: &Policy, tiers: &[(String, Arc<Policy>)]) -> Self {
        let mut rules = Rules::default();
        let all = std::iter::once((None, policy))
            .chain(tiers.iter().map(|(n, p)| (Some(n.clone()), p.as_ref())));
        for (tier, p) in all {
            for limit in p.limits() {
                let name = limit.name.as_str().to_owned();
                let defs = rules.known.entry(name.clone()).or_default();
                if !defs.contains(limit) {
                    defs.push(limit.clone());
                }
                rules.by_tier.insert((tier.clone(), name), limit.clone());
            }
        }
        rules
    }

    /// Every definition of the limit `name`.
    pub(super) fn definitions(&self, name: &str) -> &[Limit] {
        self.known.get(name).map_or(&[], Vec::as_slice)
    }

    /// The definition a charge to `name` under `tier` was made by, as far
    /// as `held` can be read by it: the tier's own, else (after a policy
    /// change) any of the same algorithm. `None` if no definition reads
    /// `held`, which then reads as empty and has nothing to hand back.
    pub(super) fn charged_under(
        &self,
        tier: Option<&str>,
        name: &str,
        held: &LimitState,
    ) -> Option<&Limit> {
        self.by_tier
            .get(&(tier.map(str::to_owned), name.to_owned()))
            .into_iter()
            .chain(self.definitions(name))
            .find(|l| reads(l, held))
    }
}

/// Whether `limit`'s algorithm reads `state` (another algorithm's state
/// reads as empty).
fn reads(limit: &Limit, state: &LimitState) -> bool {
    matches!(
        (limit.algorithm, state),
        (Algorithm::Sliding(_), LimitState::Sliding(_))
            | (Algorithm::Gcra(_), LimitState::Gcra(_))
            | (Algorithm::Fixed(_), LimitState::Fixed(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::{FixedState, SlidingState};

    #[test]
    fn a_charge_is_read_by_its_tiers_definition_first() {
        let default: Policy = "u=user:2/1h".parse().unwrap();
        let pro: Policy = "u=user:9/1h;d=user:5/1d:fixed".parse().unwrap();
        let rules = Rules::new(&default, &[("pro".into(), Arc::new(pro))]);
        let sliding = LimitState::Sliding(SlidingState::default());
        let quota = |l: Option<&Limit>| l.map(|l| l.amount.value.get());
        assert_eq!(quota(rules.charged_under(None, "u", &sliding)), Some(2));
        assert_eq!(
            quota(rules.charged_under(Some("pro"), "u", &sliding)),
            Some(9)
        );
        // An unknown tier, or a name its tier lacks: any definition.
        assert_eq!(
            quota(rules.charged_under(Some("x"), "u", &sliding)),
            Some(2)
        );
        let fixed = LimitState::Fixed(FixedState::default());
        assert_eq!(quota(rules.charged_under(None, "d", &fixed)), Some(5));
        // No definition reads a state of another algorithm.
        assert_eq!(quota(rules.charged_under(None, "u", &fixed)), None);
        assert_eq!(quota(rules.charged_under(None, "gone", &sliding)), None);
        assert_eq!(rules.definitions("u").len(), 2);
        assert_eq!(rules.grace, None);
    }
}
