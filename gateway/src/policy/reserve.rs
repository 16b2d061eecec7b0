//! What an admitted request holds on this node until it is settled: its share of a
//! budget (a request and an estimated cost) and, for keys with
//! `max_parallel_requests`, one of the key's parallel slots.
//!
//! # Why reserve
//!
//! A budget is checked against the usage recorded so far, and a request's usage is
//! only recorded when it ends. Without reservations, N requests arriving together
//! all see the same spend and all pass while it is under the limit. So admission
//! reserves, atomically with the check (one lock), one request and the request's
//! estimated cost ([`estimate_cost`]: the prompt by the token heuristic plus the
//! output allowance — `max_completion_tokens`, `max_tokens`, or the configured
//! per-model or default allowance, `gateway.budgets` — at the most expensive pricing record the request may be billed at).
//! The next check counts the reservations of every request in flight. Settling
//! records the real usage, then drops the reservation (the difference is released);
//! a request that ends before an upstream answered releases it and costs nothing.
//!
//! # The bound
//!
//! A request is admitted while `spend + reserved < limit` (as before, a budget with
//! room for anything admits). So on one node, with `R` the smallest reservation and
//! estimates that are not below the real costs, at most `ceil((limit − spend) / R)`
//! requests are admitted against the remaining room, and the period's spend exceeds
//! the limit by less than one request's cost. A `max_tokens` that bounds the answer
//! makes the estimate an upper bound of the output; the prompt estimate is the token
//! heuristic, so a provider that counts more prompt tokens can overshoot by the
//! difference.
//!
//! # Across nodes
//!
//! Reservations are local to this node: they close the concurrency hole on one node.
//! Other nodes' requests in flight are unknown here until their usage is recorded
//! and replicated (about a second); in between, the pacer's prediction of usage in
//! transit ([`super::pacing`]) is all that accounts for them. N nodes admitting at
//! once can together overshoot by up to N − 1 nodes' reservations.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use aurora_core::state::store::Usage;
use aurora_schema::{Collection, Money, Record, RecordId};

use super::data::PolicyData;
use super::TokenUsage;

/// The reserved amounts per (budget, period): requests and estimated spend.
pub(crate) type Reservations = Arc<Mutex<HashMap<(RecordId, u64), Usage>>>;

/// Locks the reservations (a poisoned lock still holds consistent sums: every
/// change is one add or one subtract).
pub(crate) fn lock(r: &Reservations) -> MutexGuard<'_, HashMap<(RecordId, u64), Usage>> {
    r.lock().unwrap_or_else(|e| e.into_inner())
}

/// Holds one request and its estimated cost against a budget until the request is
/// settled (or dropped), so concurrent requests on this node see each other before
/// their usage is recorded.
#[derive(Debug)]
pub(crate) struct Reservation {
    map: Reservations,
    key: (RecordId, u64),
    held: Usage,
}

impl Reservation {
    /// Adds `held` under `key` in `map` (the caller holds the lock: `reserved`).
    pub(crate) fn take(
        map: &Reservations,
        reserved: &mut HashMap<(RecordId, u64), Usage>,
        key: (RecordId, u64),
        held: Usage,
    ) -> Self {
        let sum = reserved.entry(key.clone()).or_default();
        *sum = sum.saturating_add(held);
        Self {
            map: Arc::clone(map),
            key,
            held,
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut map = lock(&self.map);
        if let Some(sum) = map.get_mut(&self.key) {
            sum.requests = sum.requests.saturating_sub(self.held.requests);
            sum.spend_nanos = sum.spend_nanos.saturating_sub(self.held.spend_nanos);
            sum.tokens = sum.tokens.saturating_sub(self.held.tokens);
            if sum.requests == 0 {
                map.remove(&self.key);
            }
        }
    }
}

/// The cost to reserve for a request of `prompt_tokens` that may produce
/// `output_tokens`, billed at whichever pricing record of `priced_as` makes it most
/// expensive (the target that will serve it is not known yet). Zero without any
/// pricing record: such a request is not billed (a warning in `cluster/status`).
pub(crate) fn estimate_cost<'a>(
    data: &dyn PolicyData,
    priced_as: impl IntoIterator<Item = &'a str>,
    prompt_tokens: u64,
    output_tokens: u64,
) -> Money {
    let usage = TokenUsage {
        prompt: prompt_tokens,
        completion: output_tokens,
        cached: 0,
    };
    priced_as
        .into_iter()
        .filter_map(|id| match data.record(Collection::Pricing, id) {
            Some(Record::Pricing(p)) => Some(usage.cost(&p)),
            _ => None,
        })
        .max()
        .unwrap_or(Money::ZERO)
}

/// Requests in flight per key, for `max_parallel_requests`.
#[derive(Debug, Default)]
pub(crate) struct ParallelSlots {
    keys: Arc<Mutex<HashMap<Arc<str>, u32>>>,
}

/// One request's slot: released when dropped, on every exit path (answered,
/// refused later in admission, failed, client gone, task cancelled).
#[derive(Debug)]
pub(crate) struct Slot {
    keys: Arc<Mutex<HashMap<Arc<str>, u32>>>,
    key: Arc<str>,
}

impl ParallelSlots {
    fn lock(keys: &Mutex<HashMap<Arc<str>, u32>>) -> MutexGuard<'_, HashMap<Arc<str>, u32>> {
        keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot of `key`, or `Err(in_flight)` when `max` requests already hold one.
    pub(crate) fn acquire(&self, key: &Arc<str>, max: u32) -> Result<Slot, u32> {
        let mut keys = Self::lock(&self.keys);
        let n = keys.entry(Arc::clone(key)).or_insert(0);
        if *n >= max {
            return Err(*n);
        }
        *n += 1;
        Ok(Slot {
            keys: Arc::clone(&self.keys),
            key: Arc::clone(key),
        })
    }

    /// Requests of `key` holding a slot now.
    pub(crate) fn in_flight(&self, key: &str) -> u32 {
        Self::lock(&self.keys).get(key).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut keys = ParallelSlots::lock(&self.keys);
        if let Some(n) = keys.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                keys.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_released_on_drop() {
        let slots = ParallelSlots::default();
        let k: Arc<str> = "k".into();
        let a = slots.acquire(&k, 2).expect("first");
        let b = slots.acquire(&k, 2).expect("second");
        assert_eq!(slots.acquire(&k, 2).err(), Some(2));
        drop(a);
        let c = slots.acquire(&k, 2).expect("freed");
        drop((b, c));
        assert_eq!(slots.in_flight("k"), 0);
    }

    #[test]
    fn reservations_add_up_and_release_exactly_what_they_hold() {
        let map: Reservations = Arc::default();
        let key = (RecordId::new("b").expect("id"), 3);
        let held = |spend_nanos| Usage {
            requests: 1,
            spend_nanos,
            tokens: 0,
        };
        let a = Reservation::take(&map, &mut lock(&map), key.clone(), held(10));
        let b = Reservation::take(&map, &mut lock(&map), key.clone(), held(5));
        assert_eq!(lock(&map)[&key].spend_nanos, 15);
        drop(a);
        assert_eq!(lock(&map)[&key], held(5));
        drop(b);
        assert!(lock(&map).is_empty());
    }
}
