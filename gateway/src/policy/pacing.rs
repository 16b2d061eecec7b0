//! Predicting the usage other nodes have recorded but this node cannot see yet.
//!
//! A budget is checked against the cluster-wide counters, and a node sees its own
//! usage at once but the other nodes' only after they flushed it (every 500 ms) and
//! gossip carried it (a few hundred ms more). Near the limit, every node keeps
//! admitting on a stale total, so N nodes overshoot by about the other nodes' rate ×
//! that delay: with 3 nodes at 100 req/s and 750 ms, a 100-request budget lets 150
//! through (see docs/benchmarks-gateway.md).
//!
//! The pacer removes most of that: per budget and period it keeps a short history of
//! the *others'* usage (cluster total minus what this node recorded), derives their
//! recent rate, and adds rate × [`PROPAGATION_MS`] to the total before comparing with
//! the limit. At a steady rate the prediction matches what is in transit, so the
//! overshoot falls to a few requests. The price: when the others' traffic stops
//! abruptly just below the limit, this node may refuse for up to [`WINDOW_MS`] a
//! request the budget could still afford — an error toward the budget, never past it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use aurora_core::state::records::RecordId;
use aurora_core::state::store::Usage;

/// Expected time from a usage record on one node to its visibility on the others:
/// the 500 ms usage flush plus gossip on a LAN.
pub const PROPAGATION_MS: u64 = 750;
/// How much history the others' rate is measured over.
pub const WINDOW_MS: u64 = 2_000;
/// Shortest history a rate is derived from (a rate over a few ms is noise).
const MIN_SPAN_MS: u64 = 100;
/// Most samples kept per budget (one per distinct millisecond at most).
const MAX_SAMPLES: usize = 256;

#[derive(Debug, Default)]
struct Track {
    period: u64,
    /// What this node recorded in `period`.
    mine: Usage,
    /// (wall ms, others' usage) samples, oldest first.
    samples: VecDeque<(u64, Usage)>,
}

/// Per-budget pacing state of one node.
#[derive(Debug, Default)]
pub struct Pacer {
    budgets: Mutex<HashMap<RecordId, Track>>,
}

impl Pacer {
    /// No history.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<RecordId, Track>> {
        self.budgets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This node recorded `usage` on `budget` in `period`.
    pub fn recorded(&self, budget: &RecordId, period: u64, usage: Usage) {
        let mut budgets = self.lock();
        let track = budgets.entry(budget.clone()).or_default();
        if track.period != period {
            *track = Track {
                period,
                ..Track::default()
            };
        }
        track.mine = track.mine.saturating_add(usage);
    }

    /// The usage other nodes probably recorded but `total` does not show yet, given the
    /// cluster-wide `total` seen now (`now_ms`, wall clock).
    pub fn in_transit(&self, budget: &RecordId, period: u64, total: Usage, now_ms: u64) -> Usage {
        let mut budgets = self.lock();
        let track = budgets.entry(budget.clone()).or_default();
        if track.period != period {
            *track = Track {
                period,
                ..Track::default()
            };
        }
        let others = Usage {
            spend_nanos: total.spend_nanos.saturating_sub(track.mine.spend_nanos),
            requests: total.requests.saturating_sub(track.mine.requests),
            tokens: total.tokens.saturating_sub(track.mine.tokens),
        };
        // A clock that went backwards invalidates the history.
        if track.samples.back().is_some_and(|(t, _)| *t > now_ms) {
            track.samples.clear();
        }
        if track.samples.back().is_none_or(|(t, _)| *t < now_ms) {
            track.samples.push_back((now_ms, others));
        }
        while track.samples.len() > MAX_SAMPLES
            || track
                .samples
                .front()
                .is_some_and(|(t, _)| now_ms.saturating_sub(*t) > WINDOW_MS)
        {
            track.samples.pop_front();
        }
        let Some(&(t0, first)) = track.samples.front() else {
            return Usage::default();
        };
        let span = now_ms.saturating_sub(t0);
        if span < MIN_SPAN_MS {
            return Usage::default();
        }
        let project = |now: u64, then: u64| -> u64 {
            let grown = u128::from(now.saturating_sub(then));
            let projected = grown * u128::from(PROPAGATION_MS) / u128::from(span);
            u64::try_from(projected).unwrap_or(u64::MAX)
        };
        Usage {
            spend_nanos: project(others.spend_nanos, first.spend_nanos),
            requests: project(others.requests, first.requests),
            tokens: project(others.tokens, first.tokens),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(n: u64) -> Usage {
        Usage {
            spend_nanos: n * 10,
            requests: n,
            tokens: 0,
        }
    }

    #[test]
    fn projects_the_others_rate_over_the_propagation_delay() {
        let p = Pacer::new();
        let b = RecordId::new("b").unwrap();
        // Others grow at 100 requests per second; this node recorded 5.
        p.recorded(&b, 0, req(5));
        assert_eq!(p.in_transit(&b, 0, req(5), 10_000), Usage::default());
        assert_eq!(p.in_transit(&b, 0, req(5 + 10), 10_100).requests, 75);
        let t = p.in_transit(&b, 0, req(5 + 100), 11_000);
        assert_eq!((t.requests, t.spend_nanos), (75, 750));
        // The others stop: after the window the prediction is gone.
        assert_eq!(p.in_transit(&b, 0, req(105), 13_500).requests, 0);
        // A new period starts from scratch; so does a clock that went backwards.
        assert_eq!(p.in_transit(&b, 1, req(0), 13_600), Usage::default());
        assert_eq!(p.in_transit(&b, 1, req(50), 1_000), Usage::default());
    }
}
