//! Cooldown of failing targets: a small circuit breaker per target.
//!
//! States, as Prometheus shows them (`aurora_upstream_target_state`):
//! - **closed** (0): traffic flows; consecutive failed requests are counted, a
//!   success resets the count;
//! - **open** (1): after `cooldown_failures` failures in a row the target is skipped
//!   for `cooldown_ms`, so requests go straight to the other targets instead of
//!   paying a timeout or a retry ladder first;
//! - **half-open** (2): once the cooldown has passed, exactly one request is let
//!   through as a trial; success closes the breaker, failure opens it again.
//!
//! A "failure" is one request on that target that ended in a retryable error
//! (429, 5xx, timeout, connect error) after its retries, or an auth error; a 400 is
//! the client's fault and does not count. Time is passed in, so tests need no clock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A target's breaker state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Serving.
    Closed,
    /// Cooling down until the instant.
    Open,
    /// Cooldown over; one trial request allowed (or in flight).
    HalfOpen,
}

impl State {
    /// Gauge value: closed 0, open 1, half-open 2.
    pub fn gauge(self) -> u8 {
        match self {
            State::Closed => 0,
            State::Open => 1,
            State::HalfOpen => 2,
        }
    }
}

#[derive(Debug, Default)]
struct Entry {
    failures: u32,
    open_until: Option<Instant>,
    trial_in_flight: bool,
}

/// Permission to try a target; frees a half-open trial slot when dropped (recording
/// success or failure first is what decides the breaker's next state).
#[must_use = "dropping the claim at once frees the trial slot"]
#[derive(Debug)]
pub struct Claim<'a> {
    breakers: &'a Breakers,
    id: &'a str,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.breakers.release(self.id);
    }
}

/// Breakers of every target, keyed by target id (`provider/model`).
#[derive(Debug)]
pub struct Breakers {
    entries: Mutex<HashMap<Arc<str>, Entry>>,
}

impl Default for Breakers {
    fn default() -> Self {
        Self::new()
    }
}

impl Breakers {
    /// No target has failed yet.
    pub fn new() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Arc<str>, Entry>> {
        // Entries stay consistent under a panic (plain counters); recover.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state of `id` at `now`.
    pub fn state(&self, id: &str, now: Instant) -> State {
        self.lock()
            .get(id)
            .map_or(State::Closed, |e| entry_state(e, now))
    }

    /// Whether a request may go to `id` now: `Some` if so. In half-open state this
    /// claims the single trial, so call it only for a target about to be tried; the
    /// returned [`Claim`] frees the trial when dropped, so a request abandoned midway
    /// (client gone) cannot leave the target stuck with a trial that never ends.
    pub fn try_acquire<'a>(&'a self, id: &'a str, now: Instant) -> Option<Claim<'a>> {
        let claim = Claim { breakers: self, id };
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(id) else {
            return Some(claim);
        };
        match entry_state(entry, now) {
            State::Closed => Some(claim),
            State::Open => None,
            State::HalfOpen if entry.trial_in_flight => None,
            State::HalfOpen => {
                entry.trial_in_flight = true;
                Some(claim)
            }
        }
    }

    /// Whether `id` would be skipped now (without claiming a trial).
    pub fn is_cooling(&self, id: &str, now: Instant) -> bool {
        match self.lock().get(id) {
            None => false,
            Some(e) => match entry_state(e, now) {
                State::Closed => false,
                State::Open => true,
                State::HalfOpen => e.trial_in_flight,
            },
        }
    }

    /// When the earliest cooling target among `ids` opens for a trial, from `now`.
    pub fn next_trial_in(&self, ids: &[&str], now: Instant) -> Option<Duration> {
        let entries = self.lock();
        ids.iter()
            .filter_map(|id| entries.get(*id)?.open_until)
            .map(|until| until.saturating_duration_since(now))
            .min()
    }

    /// A request on `id` succeeded: close the breaker.
    pub fn record_success(&self, id: &str) {
        let mut entries = self.lock();
        if let Some(entry) = entries.get_mut(id) {
            *entry = Entry::default();
        }
    }

    /// A request on `id` failed at `now`: count it, and open the breaker after
    /// `threshold` in a row (at once, if this was the half-open trial).
    pub fn record_failure(&self, id: &Arc<str>, now: Instant, threshold: u32, cooldown: Duration) {
        let mut entries = self.lock();
        let entry = entries.entry(Arc::clone(id)).or_default();
        let was_trial = entry.trial_in_flight;
        entry.trial_in_flight = false;
        entry.failures = entry.failures.saturating_add(1);
        if was_trial || entry.failures >= threshold {
            entry.open_until = Some(now + cooldown);
            if !was_trial {
                tracing::warn!(
                    target_id = %id,
                    failures = entry.failures,
                    cooldown_ms = cooldown.as_millis() as u64,
                    "upstream target cooling down"
                );
            }
        }
    }

    /// A trial that ended neither way (client gone, 400): free the trial slot.
    pub fn release(&self, id: &str) {
        if let Some(entry) = self.lock().get_mut(id) {
            entry.trial_in_flight = false;
        }
    }

    /// States of every target with history, for the metrics gauge.
    pub fn states(&self, now: Instant) -> Vec<(Arc<str>, State)> {
        let mut out: Vec<_> = self
            .lock()
            .iter()
            .map(|(id, e)| (Arc::clone(id), entry_state(e, now)))
            .collect();
        out.sort();
        out
    }

    /// Forgets targets no longer in the catalog.
    pub fn retain(&self, keep: &[Arc<str>]) {
        self.lock().retain(|id, _| keep.contains(id));
    }
}

fn entry_state(entry: &Entry, now: Instant) -> State {
    match entry.open_until {
        None => State::Closed,
        Some(until) if now < until => State::Open,
        Some(_) => State::HalfOpen,
    }
}

impl PartialOrd for State {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for State {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.gauge().cmp(&other.gauge())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_then_allows_one_trial() {
        let b = Breakers::new();
        let id: Arc<str> = "p/m".into();
        let t0 = Instant::now();
        let cool = Duration::from_secs(10);
        b.record_failure(&id, t0, 2, cool);
        assert_eq!(b.state(&id, t0), State::Closed);
        assert!(b.try_acquire(&id, t0).is_some());
        b.record_failure(&id, t0, 2, cool);
        assert_eq!(b.state(&id, t0), State::Open);
        assert!(b.try_acquire(&id, t0 + Duration::from_secs(9)).is_none());
        assert_eq!(
            b.next_trial_in(&[&id], t0 + Duration::from_secs(4)),
            Some(Duration::from_secs(6))
        );
        let later = t0 + Duration::from_secs(11);
        assert_eq!(b.state(&id, later), State::HalfOpen);
        let trial = b.try_acquire(&id, later);
        assert!(trial.is_some(), "one trial");
        assert!(b.try_acquire(&id, later).is_none(), "only one");
        // The trial fails: open again at once, no threshold.
        b.record_failure(&id, later, 2, cool);
        drop(trial);
        assert_eq!(b.state(&id, later), State::Open);
        let much_later = later + Duration::from_secs(11);
        let trial = b.try_acquire(&id, much_later);
        assert!(trial.is_some());
        b.record_success(&id);
        drop(trial);
        assert_eq!(b.state(&id, much_later), State::Closed);
        assert!(b.try_acquire(&id, much_later).is_some());
    }

    #[test]
    fn an_abandoned_trial_frees_its_slot() {
        let b = Breakers::new();
        let id: Arc<str> = "p/m".into();
        let t0 = Instant::now();
        b.record_failure(&id, t0, 1, Duration::from_secs(1));
        let later = t0 + Duration::from_secs(2);
        let trial = b.try_acquire(&id, later);
        assert!(trial.is_some());
        assert!(b.is_cooling(&id, later), "trial in flight");
        drop(trial); // the request was dropped before it finished
        assert!(!b.is_cooling(&id, later));
        assert!(
            b.try_acquire(&id, later).is_some(),
            "a new trial is allowed"
        );
    }

    #[test]
    fn success_resets_the_count() {
        let b = Breakers::new();
        let id: Arc<str> = "p/m".into();
        let t0 = Instant::now();
        let cool = Duration::from_secs(1);
        b.record_failure(&id, t0, 2, cool);
        b.record_success(&id);
        b.record_failure(&id, t0, 2, cool);
        assert_eq!(b.state(&id, t0), State::Closed);
    }
}
