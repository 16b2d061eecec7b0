//! The holder: admission against the slices this node holds, and the asks and
//! releases that keep them the right size.

use core::time::Duration;
use std::collections::BTreeMap;

use super::{QuotaKey, QuotaLimit, QuotaMessage, QuotaOut, Session, Slot};
use crate::failover::Epoch;
use crate::id::NodeId;
use crate::time::Millis;

/// What a holder does when it cannot reach a grantor: none is known, or an ask has
/// gone unanswered for [`QuotaTiming::partition_after`] (a holder that needs
/// nothing is never cut off for being quiet).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnPartition {
    /// Refuse everything once cut off, the slice held too: the limit holds.
    FailClosed,
    /// Spend the slice held, then refuse: the limit holds.
    #[default]
    SpendLeased,
    /// Spend the slice held, then admit everything while cut off: available, and
    /// the limit no longer holds.
    FailOpen,
}

/// How slices are sized and how often a holder asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaTiming {
    /// The largest slice, in millionths of the limit (10 000: 1 %).
    pub max_slice_ppm: u32,
    /// The smallest slice asked for (and the largest, when 1 % of the limit is less).
    pub min_slice: u64,
    /// A slice lasts about this long at the holder's recent rate.
    pub refill_horizon: Duration,
    /// An ask without an answer is sent again after this.
    pub ask_timeout: Duration,
    /// A grantor that said "exhausted" is asked again after this.
    pub exhausted_retry: Duration,
    /// A slice unused for this long is given back.
    pub idle_release: Duration,
    /// An ask unanswered for this long: cut off (see [`OnPartition`]).
    pub partition_after: Duration,
}

impl Default for QuotaTiming {
    fn default() -> Self {
        QuotaTiming {
            max_slice_ppm: 10_000,
            min_slice: 4,
            refill_horizon: Duration::from_millis(500),
            ask_timeout: Duration::from_millis(500),
            exhausted_retry: Duration::from_secs(1),
            idle_release: Duration::from_secs(10),
            partition_after: Duration::from_secs(5),
        }
    }
}

impl QuotaTiming {
    /// The largest slice of a key limited to `limit`.
    pub fn max_slice(&self, limit: u64) -> u64 {
        let share = (u128::from(limit) * u128::from(self.max_slice_ppm) / 1_000_000) as u64;
        share.max(self.min_slice)
    }
}

/// An admission: `amount` was taken from the slice (or, cut off with
/// [`OnPartition::FailOpen`], from nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Admission {
    /// Taken from the slice.
    Leased,
    /// Admitted unleased (fail open while cut off): outside the bound.
    Unleased,
}

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The slice is short and more was asked for: try again when a grant arrives.
    Waiting,
    /// The grantor said nothing is left of the key.
    Exhausted,
    /// No grantor reachable and the quota fails closed.
    CutOff,
}

#[derive(Clone, Debug)]
struct Held {
    limit: QuotaLimit,
    on_partition: OnPartition,
    slot: Slot,
    /// Reserved and settled amounts admitted against the slot (may pass
    /// `slot.held()` when a settlement was above its reservation: a debt).
    used: u64,
    /// Admitted unleased while cut off.
    unleased: u64,
    asked: Option<Millis>,
    exhausted_at: Option<Millis>,
    /// What the grantor could still grant of the key at its last grant (0 once it
    /// said exhausted).
    room: u64,
    /// The amount of a refused admission larger than what is held: asked for
    /// (over several grants if it is larger than a slice) until an admission
    /// succeeds.
    need: u64,
    /// Units admitted per second, smoothed.
    rate: f64,
    last_use: Millis,
}

impl Held {
    fn available(&self) -> u64 {
        self.slot.held().saturating_sub(self.used)
    }
}

/// This node's slices (see the module docs of [`super`]).
#[derive(Clone, Debug)]
pub struct Holder {
    me: Session,
    timing: QuotaTiming,
    grantor: Option<(NodeId, Epoch)>,
    /// Since when an ask waits for any answer from a grantor (`None`: none waits).
    unanswered_since: Option<Millis>,
    /// Per quota, the first window not retired: windows below are refused.
    retired: BTreeMap<u64, u64>,
    /// Slices retired while an ask was out, and what they had spent: a grant that
    /// arrives late for one is given back at once.
    late: BTreeMap<QuotaKey, (Slot, u64)>,
    slices: BTreeMap<QuotaKey, Held>,
}

impl Holder {
    /// A holder for this node's session `me` (its incarnation: a restarted node is a
    /// new session and holds nothing).
    pub fn new(me: Session, timing: QuotaTiming) -> Holder {
        Holder {
            me,
            timing,
            grantor: None,
            unanswered_since: None,
            retired: BTreeMap::new(),
            late: BTreeMap::new(),
            slices: BTreeMap::new(),
        }
    }

    /// This holder's session.
    pub fn session(&self) -> Session {
        self.me
    }

    /// Call when the lease holder changes (or becomes known): asks go to `grantor`.
    /// Outstanding asks are sent to it again at once.
    pub fn set_grantor(&mut self, now: Millis, grantor: Option<(NodeId, Epoch)>) -> QuotaOut {
        if grantor == self.grantor {
            return QuotaOut::default();
        }
        self.grantor = grantor;
        for held in self.slices.values_mut() {
            held.asked = None;
            held.exhausted_at = None;
        }
        self.unanswered_since = None;
        self.asks(now)
    }

    /// Admits `amount` of `key` (limited to `limit`, cut off as `on_partition`
    /// says): takes it from the slice, or refuses. Never waits; call
    /// [`Holder::poll`] afterwards to send the asks it made necessary.
    pub fn admit(
        &mut self,
        now: Millis,
        key: QuotaKey,
        limit: QuotaLimit,
        on_partition: OnPartition,
        amount: u64,
    ) -> Result<Admission, Refusal> {
        if self
            .retired
            .get(&key.quota)
            .is_some_and(|floor| key.window < *floor)
        {
            return Err(Refusal::Exhausted);
        }
        let cut_off = self.cut_off(now);
        let held = self.slices.entry(key).or_insert_with(|| Held {
            limit,
            on_partition,
            slot: Slot::default(),
            used: 0,
            unleased: 0,
            asked: None,
            exhausted_at: None,
            // Unknown until the grantor answers: nothing is promised.
            room: 0,
            need: 0,
            rate: 0.0,
            last_use: now,
        });
        held.limit = limit;
        held.on_partition = on_partition;
        // The rate, per second: an exponentially decayed count with a one-second
        // time constant.
        let dt = now.since(held.last_use).as_secs_f64();
        held.rate = held.rate * (-dt).exp() + amount as f64;
        held.last_use = now;
        if cut_off && on_partition == OnPartition::FailClosed {
            return Err(Refusal::CutOff);
        }
        if amount > limit.max {
            // More than the whole limit: no grant can ever cover it.
            return Err(Refusal::Exhausted);
        }
        if held.available() >= amount {
            held.used += amount;
            held.need = 0;
            return Ok(Admission::Leased);
        }
        held.need = held.need.max(amount);
        if cut_off && on_partition == OnPartition::FailOpen {
            held.unleased = held.unleased.saturating_add(amount);
            return Ok(Admission::Unleased);
        }
        if held.exhausted_at.is_some() {
            return Err(Refusal::Exhausted);
        }
        if cut_off {
            return Err(Refusal::CutOff);
        }
        Err(Refusal::Waiting)
    }

    /// Forgets the slices of `quota` in windows before `window` and refuses them
    /// from now on ([`Refusal::Exhausted`]): a holder that forgot a window must never
    /// admit in it again (it would ask as if it held nothing, and could be given its
    /// old slice a second time). Call when a quota's window moved on. What the
    /// forgotten slices did not spend is given back (a rolling limit counts it in
    /// the windows after too); the requests still in flight in them stay spent. If
    /// no grantor is known it stays held in the ledger, as a crashed holder's does.
    pub fn retire(&mut self, quota: u64, window: u64) -> QuotaOut {
        let mut out = QuotaOut::default();
        let floor = self.retired.entry(quota).or_default();
        if window <= *floor {
            return out;
        }
        *floor = window;
        let grantor = self.grantor.map(|(node, _)| node);
        let me = self.me;
        let late = &mut self.late;
        // Tombstones of windows well past are dropped (a grant is late by an ask's
        // round trip, not by windows).
        late.retain(|k, _| k.quota != quota || k.window.saturating_add(2) >= window);
        self.slices.retain(|k, held| {
            let keep = k.quota != quota || k.window >= window;
            if !keep {
                if let Some(to) = grantor {
                    release(me, *k, held, to, &mut out);
                }
                if held.asked.is_some() {
                    late.insert(*k, (held.slot, held.used));
                }
            }
            keep
        });
        out
    }

    /// The request that could not be admitted in `key` gave up waiting: stop asking
    /// for what it lacked (only the recent rate is asked for from now on).
    pub fn give_up(&mut self, key: QuotaKey) {
        if let Some(held) = self.slices.get_mut(&key) {
            held.need = 0;
        }
    }

    /// Settles a request `admitted` with `reserved` of `key` that came to `actual`:
    /// for a leased admission the difference goes back to the slice (or, above, is
    /// owed by it: the next admissions wait until grants cover it); an unleased one
    /// only corrects the unleased count.
    pub fn settle(&mut self, key: QuotaKey, admitted: Admission, reserved: u64, actual: u64) {
        if let Some(held) = self.slices.get_mut(&key) {
            let count = match admitted {
                Admission::Leased => &mut held.used,
                Admission::Unleased => &mut held.unleased,
            };
            *count = count.saturating_sub(reserved).saturating_add(actual);
        }
    }

    /// Call for a message from a grantor.
    pub fn handle(&mut self, now: Millis, from: NodeId, message: &QuotaMessage) -> QuotaOut {
        let mut out = QuotaOut::default();
        // Any grantor's answer shows the way to one is open.
        self.unanswered_since = None;
        match message {
            QuotaMessage::Grant {
                key,
                holder,
                slot,
                room,
                ..
            } if *holder == self.me => {
                // Any grant that reaches its holder was recorded first, whatever the
                // grantor's epoch now: it is a fact of the ledger.
                if let Some(held) = self.slices.get_mut(key) {
                    held.slot = held.slot.merge(*slot);
                    held.asked = None;
                    held.exhausted_at = None;
                    held.room = *room;
                } else if let Some((known, used)) = self.late.get_mut(key) {
                    // For a retired slice: nothing more of it is spent, give it back.
                    let mut merged = known.merge(*slot);
                    let spare = merged.held().saturating_sub(*used);
                    if spare > 0 {
                        merged.released += spare;
                        out.send(
                            from,
                            QuotaMessage::Release {
                                key: *key,
                                holder: self.me,
                                slot: merged,
                            },
                        );
                    }
                    *known = merged;
                }
            }
            QuotaMessage::Exhausted { key, holder, .. } if *holder == self.me => {
                if let Some(held) = self.slices.get_mut(key) {
                    held.asked = None;
                    held.exhausted_at = Some(now);
                    held.room = 0;
                }
            }
            QuotaMessage::Recall { key, .. } => {
                // Back to the grantor that recalls (this holder's idea of who
                // grants may lag behind).
                if let Some(held) = self.slices.get_mut(key) {
                    release(self.me, *key, held, from, &mut out);
                    // Said again even with nothing new to give back: the grantor
                    // recalls while it lacks capacity, so a release it lost is
                    // repaired by the next recall.
                    if out.sends.is_empty() && held.slot.released > 0 {
                        out.send(
                            from,
                            QuotaMessage::Release {
                                key: *key,
                                holder: self.me,
                                slot: held.slot,
                            },
                        );
                    }
                }
            }
            _ => {}
        }
        out
    }

    /// The asks and releases due at `now`: call after admissions, and at
    /// [`Holder::poll_timeout`].
    pub fn poll(&mut self, now: Millis) -> QuotaOut {
        let mut out = self.asks(now);
        let Some((to, _)) = self.grantor else {
            return out;
        };
        for (key, held) in &mut self.slices {
            if held.available() > 0 && now.since(held.last_use) >= self.timing.idle_release {
                release(self.me, *key, held, to, &mut out);
            }
        }
        out
    }

    fn asks(&mut self, now: Millis) -> QuotaOut {
        let mut out = QuotaOut::default();
        let Some((to, _)) = self.grantor else {
            return out;
        };
        for (key, held) in &mut self.slices {
            let ask = ask(&self.timing, self.me, now, *key, held);
            if let Some(ask) = ask {
                self.unanswered_since.get_or_insert(now);
                out.send(to, ask);
            }
        }
        out
    }

    /// The ask `key` needs at `now`, if any: call after admitting in `key` on the
    /// request path instead of [`Holder::poll`], which looks at every key (the
    /// others' asks and releases are due at [`Holder::poll_timeout`]).
    pub fn poll_key(&mut self, now: Millis, key: QuotaKey) -> QuotaOut {
        let mut out = QuotaOut::default();
        let (Some((to, _)), Some(held)) = (self.grantor, self.slices.get_mut(&key)) else {
            return out;
        };
        if let Some(ask) = ask(&self.timing, self.me, now, key, held) {
            self.unanswered_since.get_or_insert(now);
            out.send(to, ask);
        }
        out
    }

    /// When [`Holder::poll`] has something to do next, at the latest.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Millis> {
        // Without a grantor there is nobody to ask or give back to: nothing is due
        // until one is known (`set_grantor`).
        self.grantor?;
        self.slices
            .values()
            .filter_map(|h| {
                let ask = h.asked.map(|at| at + self.timing.ask_timeout);
                let rest = h.exhausted_at.map(|at| at + self.timing.exhausted_retry);
                let idle = (h.available() > 0).then(|| h.last_use + self.timing.idle_release);
                [ask, rest, idle].into_iter().flatten().min()
            })
            .min()
    }

    /// Whether this holder cannot reach a grantor: none is known, or an ask has
    /// waited `partition_after` without any answer.
    pub fn cut_off(&self, now: Millis) -> bool {
        self.grantor.is_none()
            || self
                .unanswered_since
                .is_some_and(|at| now.since(at) >= self.timing.partition_after)
    }

    /// What this holder counts against `key` now, leased and unleased: the
    /// reservations of requests in flight and the settled amounts of those that
    /// ended.
    pub fn used(&self, key: QuotaKey) -> (u64, u64) {
        self.slices
            .get(&key)
            .map_or((0, 0), |h| (h.used, h.unleased))
    }

    /// What is left of `key` cluster-wide as this holder knows it: its own unspent
    /// slice and what the grantor could still grant at its last answer (other
    /// holders' unspent slices count as spent). `None` for a key it never admitted.
    pub fn remaining(&self, key: QuotaKey) -> Option<u64> {
        self.slices
            .get(&key)
            .map(|h| h.available().saturating_add(h.room))
    }

    /// What each key's slice holds and has not spent, by key: what the cluster
    /// would not admit elsewhere if this holder were cut off now (its part of the
    /// bound).
    pub fn unspent(&self) -> impl Iterator<Item = (QuotaKey, u64)> + '_ {
        self.slices.iter().map(|(k, h)| (*k, h.available()))
    }

    /// The slot this holder knows for `key`.
    pub fn slot(&self, key: QuotaKey) -> Slot {
        self.slices.get(&key).map(|h| h.slot).unwrap_or_default()
    }
}

/// The ask `held` needs at `now`, if any (it is then marked asked); clears the
/// timers that have nothing left to do.
fn ask(
    timing: &QuotaTiming,
    me: Session,
    now: Millis,
    key: QuotaKey,
    held: &mut Held,
) -> Option<QuotaMessage> {
    let want = want(timing, held);
    let low = want.div_ceil(2).max(1).max(held.need);
    let short = held.available() < low && now.since(held.last_use) < timing.idle_release;
    let waiting = held
        .asked
        .is_some_and(|at| now.since(at) < timing.ask_timeout);
    let resting = held
        .exhausted_at
        .is_some_and(|at| now.since(at) < timing.exhausted_retry);
    // Timers that have nothing left to do are cleared, so that `poll_timeout` never
    // names a moment already past.
    if !resting {
        held.exhausted_at = None;
    }
    if !short {
        held.asked = None;
        return None;
    }
    if waiting || resting {
        return None;
    }
    held.asked = Some(now);
    Some(QuotaMessage::Ask {
        key,
        limit: held.limit,
        holder: me,
        slot: held.slot,
        want,
    })
}

/// What to ask for: the recent rate over the refill horizon, between the smallest
/// and the largest slice; at least what a refused admission lacks (a grantor grants
/// at most a slice at a time, so a request larger than a slice is granted over
/// several asks).
fn want(timing: &QuotaTiming, held: &Held) -> u64 {
    let max = timing.max_slice(held.limit.max);
    let by_rate = (held.rate * timing.refill_horizon.as_secs_f64()).ceil() as u64;
    let lacking = held.need.saturating_sub(held.available());
    by_rate.clamp(timing.min_slice.min(max), max).max(lacking)
}

/// Gives back all of `held` that is not spent, to the grantor `to`.
fn release(me: Session, key: QuotaKey, held: &mut Held, to: NodeId, out: &mut QuotaOut) {
    let spare = held.available();
    if spare == 0 {
        return;
    }
    held.slot.released += spare;
    debug_assert!(held.slot.released <= held.slot.allowance);
    out.send(
        to,
        QuotaMessage::Release {
            key,
            holder: me,
            slot: held.slot,
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: Session = Session {
        node: NodeId(1),
        session: 1,
    };
    const KEY: QuotaKey = QuotaKey {
        quota: 1,
        window: 1,
    };

    /// A holder whose timers passed with nothing to do must not ask to be polled in
    /// the past (its driver would spin).
    #[test]
    fn poll_timeout_never_names_a_moment_already_past() {
        let (me, key) = (ME, KEY);
        let mut h = Holder::new(me, QuotaTiming::default());
        let _ = h.set_grantor(Millis(0), Some((NodeId(2), Epoch(1))));
        let _ = h.admit(
            Millis(0),
            key,
            QuotaLimit::per_window(100),
            OnPartition::SpendLeased,
            1,
        );
        let _ = h.poll(Millis(0));
        let _ = h.handle(
            Millis(1),
            NodeId(2),
            &QuotaMessage::Exhausted {
                epoch: Epoch(1),
                key,
                holder: me,
            },
        );
        // Long idle: nothing to ask, nothing to release.
        let later = Millis(60_000);
        let _ = h.poll(later);
        assert!(
            h.poll_timeout().is_none_or(|t| t > later),
            "{:?}",
            h.poll_timeout()
        );
    }

    #[test]
    fn nothing_is_due_without_a_grantor() {
        let (me, key) = (ME, KEY);
        let mut h = Holder::new(me, QuotaTiming::default());
        let _ = h.set_grantor(Millis(0), Some((NodeId(2), Epoch(1))));
        let _ = h.admit(
            Millis(0),
            key,
            QuotaLimit::per_window(100),
            OnPartition::SpendLeased,
            0,
        );
        let grant = QuotaMessage::Grant {
            epoch: Epoch(1),
            key,
            holder: me,
            slot: crate::quota::Slot {
                allowance: 10,
                released: 0,
            },
            room: 0,
        };
        let _ = h.handle(Millis(1), NodeId(2), &grant);
        // The leader is gone: its idle slice cannot be given back, and the holder
        // must not ask to be woken for it (a driver would spin).
        let _ = h.set_grantor(Millis(2), None);
        assert_eq!(h.poll_timeout(), None);
    }

    #[test]
    fn a_cut_off_holder_with_nothing_left_says_so_and_a_retired_window_is_refused() {
        let (me, key) = (ME, KEY);
        let mut h = Holder::new(me, QuotaTiming::default());
        let admit = |h: &mut Holder, t| {
            h.admit(
                Millis(t),
                key,
                QuotaLimit::per_window(100),
                OnPartition::SpendLeased,
                1,
            )
        };
        assert_eq!(admit(&mut h, 0), Err(Refusal::CutOff));
        let _ = h.set_grantor(Millis(0), Some((NodeId(2), Epoch(1))));
        assert_eq!(admit(&mut h, 1), Err(Refusal::Waiting));
        let _ = h.retire(1, 2);
        assert_eq!(admit(&mut h, 2), Err(Refusal::Exhausted));
        assert_eq!(h.slot(key), crate::quota::Slot::default());
    }

    /// A reservation larger than a slice is asked for until it is held, over several
    /// grants (a grantor grants a slice at a time), then admitted.
    #[test]
    fn an_amount_larger_than_a_slice_is_asked_for_until_it_is_held() {
        let (me, key) = (ME, KEY);
        let limit = QuotaLimit::per_window(1_000);
        let slice = QuotaTiming::default().max_slice(1_000);
        let mut h = Holder::new(me, QuotaTiming::default());
        let _ = h.set_grantor(Millis(0), Some((NodeId(2), Epoch(1))));
        let amount = 3 * slice + 1;
        let mut allowance = 0;
        for round in 0..4 {
            assert_eq!(
                h.admit(Millis(round), key, limit, OnPartition::SpendLeased, amount),
                Err(Refusal::Waiting)
            );
            let out = h.poll(Millis(round));
            let want = out
                .sends
                .iter()
                .find_map(|(_, m)| match m {
                    QuotaMessage::Ask { want, .. } => Some(*want),
                    _ => None,
                })
                .unwrap_or_else(|| panic!("round {round}: no ask"));
            assert!(want >= amount - allowance, "round {round}: asks {want}");
            // The grantor grants a slice at a time.
            allowance += slice;
            let grant = QuotaMessage::Grant {
                epoch: Epoch(1),
                key,
                holder: me,
                slot: crate::quota::Slot {
                    allowance,
                    released: 0,
                },
                room: 1_000 - allowance,
            };
            let _ = h.handle(Millis(round), NodeId(2), &grant);
        }
        assert_eq!(
            h.admit(Millis(5), key, limit, OnPartition::SpendLeased, amount),
            Ok(Admission::Leased)
        );
        assert_eq!(h.used(key), (amount, 0));
    }

    /// A grant that arrives after its window was retired is given back at once:
    /// nothing of it can be spent any more.
    #[test]
    fn a_grant_for_a_retired_window_is_given_back() {
        let (me, key) = (ME, KEY);
        let limit = QuotaLimit::per_window(100);
        let mut h = Holder::new(me, QuotaTiming::default());
        let _ = h.set_grantor(Millis(0), Some((NodeId(2), Epoch(1))));
        assert_eq!(
            h.admit(Millis(0), key, limit, OnPartition::SpendLeased, 1),
            Err(Refusal::Waiting)
        );
        let asks = h.poll(Millis(0));
        assert!(!asks.sends.is_empty(), "an ask is out");
        let _ = h.retire(key.quota, key.window + 1);
        let grant = QuotaMessage::Grant {
            epoch: Epoch(1),
            key,
            holder: me,
            slot: crate::quota::Slot {
                allowance: 4,
                released: 0,
            },
            room: 96,
        };
        let out = h.handle(Millis(1), NodeId(2), &grant);
        assert!(
            matches!(&out.sends[..], [(NodeId(2), QuotaMessage::Release { slot, .. })] if slot.released == 4),
            "{out:?}"
        );
    }
}
