//! Predicting the usage other nodes have recorded but this node cannot see yet.
//!
//! A budget is checked against the cluster-wide counters, and a node sees its own
//! usage at once but the other nodes' only after they flushed it (every 500 ms) and
//! gossip carried it. Near the limit, every node keeps admitting on a stale total, so
//! N nodes overshoot by about the other nodes' rate × that delay (see
//! docs/benchmarks-gateway.md).
//!
//! The pacer removes most of that: per budget and period it keeps a short history of
//! the *others'* usage (cluster total minus what this node recorded), derives their
//! recent rate, and adds rate × the propagation delay to the total before comparing
//! with the limit. At a steady rate the prediction matches what is in transit, so the
//! overshoot falls to a few requests.
//!
//! # The delay is measured
//!
//! A fixed guess is wrong both ways: too long and the node refuses early, then admits
//! again when the prediction fades (a "second wave"); too short and it overshoots. So
//! the delay is measured ([`DelayEstimate`]). A peer's usage becomes visible here in
//! steps, one per flush of that peer plus the transit; between two flushes the usage
//! not yet seen ages from 0 to the flush period P, so on average it is P/2 + transit
//! old. Two things a node can time, both as gaps between steps of a counter (the
//! mean age over a gap is half the gap; gaps weigh by their length, so the mean is
//! over time, not per step):
//!
//! - **its own flushes**, from the steps of its own *published* counter
//!   ([`super::data::PolicyData::own_published`]): P of this node, the same as every
//!   peer's with the same configuration;
//! - **the others' steps**, from the cluster total minus its own usage: P of a single
//!   busy peer (or of a peer that flushes more slowly), but with several peers flushing
//!   at different moments the steps come more often than any peer's, which makes this
//!   one low (about P/3 instead of P/2 for two peers a third of a period apart).
//!
//! The delay assumed is the larger of the two means plus [`GOSSIP_WAIT_MS`] (the mean
//! wait of a published counter for its node's next gossip round, which no counter here
//! shows), bounded to [`MIN_DELAY_MS`] ..= [`MAX_DELAY_MS`], and [`FALLBACK_DELAY_MS`]
//! until a first gap was timed. It is one value per node, fed by every budget: the
//! delay belongs to the cluster, not to a budget, and a new budget starts with it.
//!
//! What it cannot see, because the state snapshot carries neither per-peer counters
//! nor their timestamps: the actual transit from a peer's flush to this node (the
//! gossip wait is an allowance, not a measurement; a WAN adds more) and which peer a
//! step came from. Exact per-peer ages need, per peer, the HLC wall time of the newest
//! usage entry this node holds from it (see docs/policy.md).
//!
//! # The others' rate
//!
//! It is their growth over the last [`WINDOW_MS`], but the history starts at most one
//! delay before their usage first grew in the period (see [`Track::project`]): a
//! longer flat stretch (all nodes' traffic beginning together, a budget created long
//! before its traffic) diluted the rate, and nodes admitted too long. It is not cut at
//! that first step either: the step carries usage from up to a flush period before it,
//! and counted as one burst it made nodes refuse early, then admit again.
//!
//! The price of any prediction: when the others' traffic stops abruptly just below
//! the limit, this node may refuse for up to [`WINDOW_MS`] a request the budget could
//! still afford — an error toward the budget, never past it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use aurora_core::state::store::Usage;
use aurora_schema::RecordId;

/// The propagation delay assumed until one was measured: the 500 ms usage flush plus
/// gossip on a LAN.
pub const FALLBACK_DELAY_MS: u64 = 750;
/// The shortest delay the estimate may give (a few fast steps are not a 0 ms delay).
pub const MIN_DELAY_MS: u64 = 100;
/// The longest delay the estimate may give; gaps between steps longer than this are
/// pauses of the others' traffic, not delays, and are not measured.
pub const MAX_DELAY_MS: u64 = 2_000;
/// Added to the measured mean age: the mean wait of a published counter for its
/// node's next gossip round (every 200 ms with the LAN defaults), which no counter
/// this node can read shows (module docs).
pub const GOSSIP_WAIT_MS: u64 = 100;
/// Time constant of the delay's moving average.
const SMOOTHING_MS: f64 = 1_000.0;
/// How much history the others' rate is measured over.
pub const WINDOW_MS: u64 = 2_000;
/// Shortest history a rate is derived from (a rate over a few ms is noise).
const MIN_SPAN_MS: u64 = 100;
/// Most samples kept per budget (one per distinct millisecond at most).
const MAX_SAMPLES: usize = 256;

/// The time-weighted mean of half the gaps between steps of a counter: the mean age
/// of what was seen of it (module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct MeanAge {
    /// ms; `None` before the first gap.
    mean_ms: Option<f64>,
}

impl MeanAge {
    fn observe_gap(&mut self, gap_ms: u64) {
        if gap_ms == 0 || gap_ms > MAX_DELAY_MS {
            return;
        }
        let gap = gap_ms as f64;
        let sample = gap / 2.0;
        self.mean_ms = Some(match self.mean_ms {
            None => sample,
            // Weighted by the gap's length: the mean age over time, not per step.
            Some(mean) => mean + (sample - mean) * (1.0 - (-gap / SMOOTHING_MS).exp()),
        });
    }
}

/// The measured propagation delay of the others' usage to this node (module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DelayEstimate {
    /// From the steps of this node's own published counters.
    own_flushes: MeanAge,
    /// From the steps of the others' counters as seen here.
    others_steps: MeanAge,
}

impl DelayEstimate {
    /// This node's published usage grew again `gap_ms` after its previous step.
    pub fn observe_own_flush_gap(&mut self, gap_ms: u64) {
        self.own_flushes.observe_gap(gap_ms);
    }

    /// The others' usage seen here grew again `gap_ms` after its previous step.
    pub fn observe_others_gap(&mut self, gap_ms: u64) {
        self.others_steps.observe_gap(gap_ms);
    }

    /// The delay to assume now, ms.
    pub fn delay_ms(&self) -> u64 {
        let means = [self.own_flushes.mean_ms, self.others_steps.mean_ms];
        means
            .into_iter()
            .flatten()
            .reduce(f64::max)
            .map_or(FALLBACK_DELAY_MS, |mean| {
                (mean.round() as u64)
                    .saturating_add(GOSSIP_WAIT_MS)
                    .clamp(MIN_DELAY_MS, MAX_DELAY_MS)
            })
    }
}

/// When a counter last grew, to time the gaps between its steps.
#[derive(Clone, Copy, Debug, Default)]
struct Steps {
    /// The value last seen, and when it was first seen if that was a step (`None`
    /// for the first sight: when that value arrived is not known).
    last: Option<(Option<u64>, Usage)>,
}

impl Steps {
    /// Whether the counter grew since it was first seen.
    fn grew_once(&self) -> bool {
        self.last.is_some_and(|(since, _)| since.is_some())
    }

    /// Notes `value` seen at `now_ms`; the gap since the previous step if it grew.
    /// The first step after the first sight gives no gap either: only then is the
    /// timing aligned with the counter's steps.
    fn observe(&mut self, now_ms: u64, value: Usage) -> Option<u64> {
        match self.last {
            Some((_, before)) if !grew(before, value) => None,
            Some((since, _)) => {
                self.last = Some((Some(now_ms), value));
                since.map(|at| now_ms.saturating_sub(at))
            }
            None => {
                self.last = Some((None, value));
                None
            }
        }
    }
}

#[derive(Debug, Default)]
struct Track {
    period: u64,
    /// What this node recorded in `period`.
    mine: Usage,
    /// (wall ms, others' usage) samples, oldest first.
    samples: VecDeque<(u64, Usage)>,
    /// Steps of the others' usage as seen here.
    others_steps: Steps,
    /// Steps of this node's own published usage (its flushes).
    own_steps: Steps,
    /// When the others' usage was first seen to grow in `period` (wall ms).
    others_started: Option<u64>,
}

impl Track {
    /// `self` for `period`, reset if it was for another one.
    fn for_period(&mut self, period: u64) -> &mut Track {
        if self.period != period {
            *self = Track {
                period,
                ..Track::default()
            };
        }
        self
    }

    /// Keeps the samples of the last [`WINDOW_MS`], with `others` at `now_ms`.
    fn sample(&mut self, now_ms: u64, others: Usage) {
        // A clock that went backwards invalidates the history.
        if self.samples.back().is_some_and(|(t, _)| *t > now_ms) {
            self.samples.clear();
            self.others_steps = Steps::default();
            self.own_steps = Steps::default();
            self.others_started = None;
        }
        if self.samples.back().is_none_or(|(t, _)| *t < now_ms) {
            self.samples.push_back((now_ms, others));
        }
        while self.samples.len() > MAX_SAMPLES
            || self
                .samples
                .front()
                .is_some_and(|(t, _)| now_ms.saturating_sub(*t) > WINDOW_MS)
        {
            self.samples.pop_front();
        }
    }

    /// The growth of `others` over the kept history, projected over `delay_ms`.
    ///
    /// The history starts at most one delay before the others' usage first grew in
    /// the period: their first step carries what they recorded since their traffic
    /// began, on average one delay earlier (half a flush period plus the transit). A
    /// longer flat stretch before it (the nodes' own traffic began together, or a
    /// budget was created long before its traffic) would dilute their rate over time
    /// in which their usage could not show yet; cut at the first step itself, the
    /// usage that step carries would count as if it came at once.
    fn project(&self, now_ms: u64, others: Usage, delay_ms: u64) -> Usage {
        let earliest = self
            .others_started
            .map_or(0, |at| at.saturating_sub(delay_ms));
        let Some(&(t0, first)) = self.samples.iter().find(|(t, _)| *t >= earliest) else {
            return Usage::default();
        };
        let span = now_ms.saturating_sub(t0);
        if span < MIN_SPAN_MS {
            return Usage::default();
        }
        let project = |now: u64, then: u64| -> u64 {
            let grown = u128::from(now.saturating_sub(then));
            let projected = grown * u128::from(delay_ms) / u128::from(span);
            u64::try_from(projected).unwrap_or(u64::MAX)
        };
        Usage {
            spend_nanos: project(others.spend_nanos, first.spend_nanos),
            requests: project(others.requests, first.requests),
            tokens: project(others.tokens, first.tokens),
        }
    }
}

/// Whether any counter of `after` is above `before`'s.
fn grew(before: Usage, after: Usage) -> bool {
    after.spend_nanos > before.spend_nanos
        || after.requests > before.requests
        || after.tokens > before.tokens
}

#[derive(Debug, Default)]
struct State {
    budgets: HashMap<RecordId, Track>,
    delay: DelayEstimate,
}

/// Per-budget pacing state of one node, and its measured propagation delay.
#[derive(Debug, Default)]
pub struct Pacer {
    state: Mutex<State>,
    /// A delay to assume instead of the measured one (for comparisons).
    fixed_delay_ms: Option<u64>,
}

impl Pacer {
    /// No history; the delay is measured.
    pub fn new() -> Self {
        Self::default()
    }

    /// A pacer that always assumes `delay_ms` (how it worked before the delay was
    /// measured; for comparisons).
    pub fn with_fixed_delay(delay_ms: u64) -> Self {
        Self {
            fixed_delay_ms: Some(delay_ms),
            ..Self::default()
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The propagation delay assumed now, ms.
    pub fn delay_ms(&self) -> u64 {
        self.fixed_delay_ms
            .unwrap_or_else(|| self.lock().delay.delay_ms())
    }

    /// This node recorded `usage` on `budget` in `period`.
    pub fn recorded(&self, budget: &RecordId, period: u64, usage: Usage) {
        let mut state = self.lock();
        let track = state
            .budgets
            .entry(budget.clone())
            .or_default()
            .for_period(period);
        track.mine = track.mine.saturating_add(usage);
    }

    /// The usage other nodes probably recorded but `seen.total` does not show yet.
    pub fn in_transit(&self, budget: &RecordId, period: u64, seen: Seen) -> Usage {
        let mut state = self.lock();
        let State { budgets, delay } = &mut *state;
        let track = budgets
            .entry(budget.clone())
            .or_default()
            .for_period(period);
        let others = Usage {
            spend_nanos: seen
                .total
                .spend_nanos
                .saturating_sub(track.mine.spend_nanos),
            requests: seen.total.requests.saturating_sub(track.mine.requests),
            tokens: seen.total.tokens.saturating_sub(track.mine.tokens),
        };
        if let Some(gap) = track.others_steps.observe(seen.now_ms, others) {
            delay.observe_others_gap(gap);
        }
        if track.others_started.is_none() && track.others_steps.grew_once() {
            track.others_started = Some(seen.now_ms);
        }
        track.sample(seen.now_ms, others);
        let own_gap = seen
            .own_published
            .and_then(|own| track.own_steps.observe(seen.now_ms, own));
        if let Some(gap) = own_gap {
            delay.observe_own_flush_gap(gap);
        }
        let delay_ms = self.fixed_delay_ms.unwrap_or_else(|| delay.delay_ms());
        track.project(seen.now_ms, others, delay_ms)
    }
}

/// What a node sees of a budget's usage at one moment.
#[derive(Clone, Copy, Debug, Default)]
pub struct Seen {
    /// The cluster-wide usage of the period, this node's unpublished usage included.
    pub total: Usage,
    /// This node's usage as published, if the source publishes in batches.
    pub own_published: Option<Usage>,
    /// Wall clock, Unix ms.
    pub now_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(total: Usage, now_ms: u64) -> Seen {
        Seen {
            total,
            own_published: None,
            now_ms,
        }
    }

    fn req(n: u64) -> Usage {
        Usage {
            spend_nanos: n * 10,
            requests: n,
            tokens: 0,
        }
    }

    #[test]
    fn projects_the_others_rate_over_the_propagation_delay() {
        let p = Pacer::with_fixed_delay(750);
        let b = RecordId::new("b").unwrap();
        // Others grow at 100 requests per second; this node recorded 5.
        p.recorded(&b, 0, req(5));
        assert_eq!(p.in_transit(&b, 0, seen(req(5), 10_000)), Usage::default());
        assert_eq!(p.in_transit(&b, 0, seen(req(5 + 10), 10_100)).requests, 75);
        let t = p.in_transit(&b, 0, seen(req(5 + 100), 11_000));
        assert_eq!((t.requests, t.spend_nanos), (75, 750));
        // The others stop: after the window the prediction is gone.
        assert_eq!(p.in_transit(&b, 0, seen(req(105), 13_500)).requests, 0);
        // A new period starts from scratch; so does a clock that went backwards.
        assert_eq!(p.in_transit(&b, 1, seen(req(0), 13_600)), Usage::default());
        assert_eq!(p.in_transit(&b, 1, seen(req(50), 1_000)), Usage::default());
    }

    #[test]
    fn the_delay_is_the_mean_age_of_the_others_usage_bounded_with_a_fallback() {
        let mut d = DelayEstimate::default();
        assert_eq!(d.delay_ms(), FALLBACK_DELAY_MS);
        // Steps every 500 ms (one peer flushing): the usage seen ages 0..500 ms.
        for _ in 0..20 {
            d.observe_others_gap(500);
        }
        assert_eq!(d.delay_ms(), 250 + GOSSIP_WAIT_MS);
        // Pauses of the others' traffic are not delays.
        d.observe_others_gap(MAX_DELAY_MS + 1);
        d.observe_others_gap(0);
        assert_eq!(d.delay_ms(), 250 + GOSSIP_WAIT_MS);
        // Smoothed: one short gap moves it only part of the way.
        d.observe_others_gap(100);
        let moved = d.delay_ms();
        assert!((300..350).contains(&moved), "{moved}");
        // Steps every 10 ms: the usage seen is fresh, only the gossip wait is left.
        for _ in 0..2_000 {
            d.observe_others_gap(10);
        }
        assert_eq!(d.delay_ms(), 5 + GOSSIP_WAIT_MS);
        // This node's flushes every 500 ms: the larger mean wins (the others' steps
        // come more often when several peers flush at different moments).
        for _ in 0..20 {
            d.observe_own_flush_gap(500);
        }
        assert_eq!(d.delay_ms(), 250 + GOSSIP_WAIT_MS);
        // Bounded above.
        let mut slow = DelayEstimate::default();
        slow.observe_own_flush_gap(MAX_DELAY_MS);
        slow.observe_others_gap(MAX_DELAY_MS);
        assert_eq!(slow.delay_ms(), MAX_DELAY_MS / 2 + GOSSIP_WAIT_MS);
        let mut slowest = DelayEstimate::default();
        slowest.own_flushes.mean_ms = Some(10_000.0);
        assert_eq!(slowest.delay_ms(), MAX_DELAY_MS);
    }

    #[test]
    fn the_pacer_times_this_nodes_flushes_from_its_published_counter() {
        let p = Pacer::new();
        let b = RecordId::new("b").unwrap();
        // Own published usage steps every 500 ms, checked every 100 ms; the others'
        // every 100 ms (many peers), which alone would say 50 ms.
        for tick in 0..30u64 {
            let own = req(5 * (tick / 5 + 1));
            let total = own.saturating_add(req(tick));
            let at = Seen {
                total,
                own_published: Some(own),
                now_ms: 10_000 + tick * 100,
            };
            p.recorded(&b, 0, if tick % 5 == 0 { req(5) } else { req(0) });
            p.in_transit(&b, 0, at);
        }
        assert_eq!(p.delay_ms(), 250 + GOSSIP_WAIT_MS);
    }

    #[test]
    fn the_pacer_measures_the_gaps_between_the_others_steps() {
        let p = Pacer::new();
        let b = RecordId::new("b").unwrap();
        assert_eq!(p.delay_ms(), FALLBACK_DELAY_MS);
        // The others' usage steps up by 20 every 400 ms, checked every 100 ms: the
        // first sight says nothing about when it arrived, every later step does.
        for tick in 0..40u64 {
            let others = req(20 * (tick / 4 + 1));
            p.in_transit(&b, 0, seen(others, 10_000 + tick * 100));
        }
        assert_eq!(p.delay_ms(), 200 + GOSSIP_WAIT_MS);
        // At 50 requests per second over the 2 s window, 300 ms hold 15 in transit.
        let t = p.in_transit(&b, 0, seen(req(20 * 11), 14_000));
        assert_eq!(t.requests, 15);
        // The delay belongs to the node: another budget starts with it.
        let c = RecordId::new("c").unwrap();
        p.in_transit(&c, 0, seen(req(0), 14_000));
        assert_eq!(p.in_transit(&c, 0, seen(req(0), 14_200)), Usage::default());
        assert_eq!(p.delay_ms(), 200 + GOSSIP_WAIT_MS);
        // A fixed delay is not measured.
        let fixed = Pacer::with_fixed_delay(750);
        fixed.in_transit(&b, 0, seen(req(1), 1_000));
        fixed.in_transit(&b, 0, seen(req(2), 1_300));
        assert_eq!(fixed.delay_ms(), 750);
    }

    #[test]
    fn a_flat_history_before_the_others_traffic_does_not_dilute_their_rate() {
        let p = Pacer::with_fixed_delay(250);
        let b = RecordId::new("b").unwrap();
        // Nothing from the others for 1.5 s, then 25 requests every 250 ms (100/s),
        // first seen at 1,600.
        for t in (0..1_600).step_by(100) {
            p.in_transit(&b, 0, seen(req(0), t));
        }
        let mut last = Usage::default();
        for t in (1_600..=2_600).step_by(50) {
            last = p.in_transit(&b, 0, seen(req(25 * ((t - 1_600) / 250 + 1)), t));
        }
        // The history starts one delay before the first step (the sample at 1,400
        // ms): 125 over 1.2 s, 26 in 250 ms (the true rate gives 25) — not 125 over
        // the whole 2 s window (15), nor the first step as a burst.
        assert_eq!(last.requests, 26);
    }
}
