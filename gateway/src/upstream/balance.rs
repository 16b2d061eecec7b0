//! Weighted load balancing: the order in which a request tries a route's targets.
//!
//! Targets are drawn by weight without replacement (a target with weight 3 is first
//! three times as often as one with weight 1), then the fallbacks follow in their
//! configured order. Drawing the whole order up front means a failed target hands over
//! to another *weighted* choice, and fallbacks are reached only when every target has
//! failed. A target listed again as a fallback is tried only once.

use std::sync::Arc;

use crate::catalog::{Resolved, Target};

/// The order in which to try the targets of `resolved`; `rng` supplies randomness
/// (seeded in tests).
pub fn order(resolved: &Resolved, rng: &mut fastrand::Rng) -> Vec<Arc<Target>> {
    let mut pool: Vec<(Arc<Target>, u64)> = resolved
        .targets
        .iter()
        .map(|(t, w)| (Arc::clone(t), u64::from(*w)))
        .collect();
    let mut out = Vec::with_capacity(pool.len() + resolved.fallbacks.len());
    while !pool.is_empty() {
        let total: u64 = pool.iter().map(|(_, w)| w).sum();
        let mut pick = rng.u64(0..total.max(1));
        let mut chosen = pool.len() - 1;
        for (i, (_, w)) in pool.iter().enumerate() {
            if pick < *w {
                chosen = i;
                break;
            }
            pick -= w;
        }
        out.push(pool.swap_remove(chosen).0);
    }
    for f in &resolved.fallbacks {
        if !out.iter().any(|t| t.id == f.id) {
            out.push(Arc::clone(f));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::snapshot::ProviderRuntime;
    use aurora_schema::ProviderKind;

    fn target(id: &str) -> Arc<Target> {
        Arc::new(Target {
            id: id.into(),
            provider: Arc::new(ProviderRuntime {
                name: "p".into(),
                kind: ProviderKind::OpenAiCompatible,
                endpoint: String::new(),
                api_key_env: None,
                api_key: None,
                timeout: std::time::Duration::from_secs(1),
                max_retries: 0,
            }),
            upstream_model: id.to_owned(),
            mock: None,
        })
    }

    #[test]
    fn first_choice_follows_weights_and_fallbacks_come_last() {
        let (a, b, f) = (target("a"), target("b"), target("f"));
        let resolved = Resolved {
            label: "r".into(),
            targets: vec![(Arc::clone(&a), 3), (Arc::clone(&b), 1)],
            fallbacks: vec![Arc::clone(&f), Arc::clone(&a)],
        };
        let mut rng = fastrand::Rng::with_seed(7);
        let mut first_a = 0;
        for _ in 0..4000 {
            let o = order(&resolved, &mut rng);
            let ids: Vec<&str> = o.iter().map(|t| &*t.id).collect();
            assert_eq!(ids.len(), 3, "{ids:?}");
            assert_eq!(ids[2], "f");
            if ids[0] == "a" {
                first_a += 1;
            }
        }
        // Expected 3000 of 4000; 6 sigma is about 165.
        assert!((2835..=3165).contains(&first_a), "{first_a}");
    }
}
