//! The grantor: the lease holder's side. It collects the ledger from a majority of
//! keepers when it takes over, then grants from it, recording every grant at a
//! majority before the holder hears of it.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    Ledger, LedgerEntry, QuotaKey, QuotaLimit, QuotaMessage, QuotaOut, QuotaTiming, Session, Slot,
};
use crate::failover::Epoch;
use crate::id::NodeId;
use crate::time::Millis;

/// Asks queued while the ledger is being collected, at most (later ones are
/// dropped; their holders ask again).
const MAX_QUEUED: usize = 4096;

/// Records awaiting a majority, at most: beyond, no grant is made and no release
/// recorded until acknowledgements come back (the keepers are unreachable).
const MAX_PENDING: usize = 4096;

/// How often an unanswered collection or record is sent again.
const RESEND: core::time::Duration = core::time::Duration::from_millis(500);

/// What a keeper's answer to a collection brought so far: its digest, the parts
/// received, how many there are.
#[derive(Clone, Debug)]
struct Answer {
    digest: u64,
    got: BTreeSet<u32>,
    parts: u32,
}

impl Answer {
    fn complete(&self) -> bool {
        self.got.len() as u32 == self.parts
    }
}

#[derive(Clone, Debug)]
enum Phase {
    /// Copies received so far, per keeper.
    Collecting {
        copies: BTreeMap<NodeId, Answer>,
        sent: Millis,
    },
    /// Granting.
    Ready,
    /// A keeper was fenced by a higher epoch: a newer grantor exists.
    Deposed,
}

#[derive(Clone, Debug)]
struct Pending {
    entries: Vec<LedgerEntry>,
    acks: BTreeSet<NodeId>,
    /// The grants to give once a majority has the record.
    grants: Vec<LedgerEntry>,
    sent: Millis,
}

/// Deliberate mistakes of a grantor, which the simulator and the tests must catch
/// (feature `testing` only: a production build cannot carry them).
#[cfg(any(test, feature = "testing"))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuotaBug {
    /// Gives a grant as it sends the record, before a majority persisted it.
    GrantBeforeRecorded,
    /// Gives a grant and never records it: no keeper persists it.
    GrantUnrecorded,
}

/// The grantor of one epoch (see the module docs of [`super`]).
#[derive(Clone, Debug)]
pub struct Grantor {
    me: NodeId,
    epoch: Epoch,
    voters: Vec<NodeId>,
    timing: QuotaTiming,
    phase: Phase,
    ledger: Ledger,
    limits: BTreeMap<u64, QuotaLimit>,
    /// The quotas whose limit was set (not learnt from asks).
    limit_set: BTreeSet<u64>,
    seq: u64,
    pending: BTreeMap<u64, Pending>,
    queued: BTreeMap<(QuotaKey, Session), QuotaMessage>,
    /// When a recall of each key was last sent (pruned as they pass
    /// `exhausted_retry`).
    recalled: BTreeMap<QuotaKey, Millis>,
    /// The node's wall clock at its latest call, if known ([`Grantor::set_wall`]).
    wall: Option<u64>,
    #[cfg(any(test, feature = "testing"))]
    bug: Option<QuotaBug>,
}

impl Grantor {
    /// The grantor of `epoch` on `me` (call when this node became the lease holder),
    /// with the failover voters `voters`: it collects their copies first.
    pub fn new(
        me: NodeId,
        epoch: Epoch,
        voters: Vec<NodeId>,
        timing: QuotaTiming,
        now: Millis,
    ) -> (Grantor, QuotaOut) {
        let mut grantor = Grantor {
            me,
            epoch,
            voters,
            timing,
            phase: Phase::Collecting {
                copies: BTreeMap::new(),
                sent: now,
            },
            ledger: Ledger::default(),
            limits: BTreeMap::new(),
            limit_set: BTreeSet::new(),
            seq: 0,
            pending: BTreeMap::new(),
            queued: BTreeMap::new(),
            recalled: BTreeMap::new(),
            wall: None,
            #[cfg(any(test, feature = "testing"))]
            bug: None,
        };
        let mut out = QuotaOut::default();
        grantor.collect(&mut out, None);
        (grantor, out)
    }

    /// This grantor with a deliberate mistake (see [`QuotaBug`]).
    #[cfg(any(test, feature = "testing"))]
    pub fn with_bug(mut self, bug: Option<QuotaBug>) -> Grantor {
        self.bug = bug;
        self
    }

    /// Numbers this grantor's records from `seq` on: a node that starts a grantor
    /// again at the same epoch must not reuse a record number of the previous one
    /// (an acknowledgement of the old record would count for the new).
    pub fn with_seq(mut self, seq: u64) -> Grantor {
        self.seq = seq;
        self
    }

    /// The last record number used.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// This grantor's epoch.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// Whether it grants (it has collected, and no newer grantor fenced it).
    pub fn is_ready(&self) -> bool {
        matches!(self.phase, Phase::Ready)
    }

    /// Whether a keeper told it a newer grantor exists.
    pub fn is_deposed(&self) -> bool {
        matches!(self.phase, Phase::Deposed)
    }

    /// The ledger as this grantor knows it.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Call before each call with the node's wall clock (ms since the Unix epoch):
    /// windows read from the wall clock are checked against it (see
    /// [`QuotaLimit::window_ms`]).
    pub fn set_wall(&mut self, wall: u64) {
        self.wall = Some(wall);
    }

    /// Sets the limit of `quota` (from the replicated record); a quota without one
    /// is granted by the limit of the latest ask.
    pub fn set_limit(&mut self, quota: u64, limit: QuotaLimit) {
        self.limits.insert(quota, limit);
        self.limit_set.insert(quota);
    }

    fn majority(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    fn collect(&mut self, out: &mut QuotaOut, only_missing: Option<&BTreeMap<NodeId, Answer>>) {
        for &voter in &self.voters {
            let done = only_missing
                .and_then(|c| c.get(&voter))
                .is_some_and(Answer::complete);
            if !done {
                out.send(voter, QuotaMessage::Collect { epoch: self.epoch });
            }
        }
    }

    /// Call for a message from `from` (a holder or a keeper).
    pub fn handle(&mut self, now: Millis, from: NodeId, message: QuotaMessage) -> QuotaOut {
        let mut out = QuotaOut::default();
        match message {
            QuotaMessage::Fenced { epoch } if epoch > self.epoch && self.voters.contains(&from) => {
                self.phase = Phase::Deposed;
                self.pending.clear();
                self.queued.clear();
            }
            QuotaMessage::Copy {
                epoch,
                digest,
                part,
                parts,
                entries,
            } if epoch == self.epoch && self.voters.contains(&from) && part < parts => {
                let Phase::Collecting { copies, .. } = &mut self.phase else {
                    return out;
                };
                // Merging any part is safe (it only adds what was recorded); only
                // counting a copy complete needs all parts of one answer.
                for entry in entries {
                    self.ledger.merge(entry);
                }
                let fresh = Answer {
                    digest,
                    got: BTreeSet::new(),
                    parts,
                };
                let answer = copies.entry(from).or_insert_with(|| fresh.clone());
                if answer.digest != digest || answer.parts != parts {
                    // Another answer of the same keeper (to a resent collection),
                    // with other entries: its parts are counted afresh.
                    *answer = fresh;
                }
                answer.got.insert(part);
                let complete = copies.values().filter(|a| a.complete()).count();
                if complete >= self.majority() {
                    self.phase = Phase::Ready;
                    for ((_, holder), ask) in std::mem::take(&mut self.queued) {
                        out.extend(self.handle(now, holder.node, ask));
                    }
                }
            }
            QuotaMessage::Recorded { epoch, seq }
                if epoch == self.epoch && self.voters.contains(&from) =>
            {
                let majority = self.majority();
                let Some(pending) = self.pending.get_mut(&seq) else {
                    return out;
                };
                pending.acks.insert(from);
                if pending.acks.len() >= majority {
                    let done = self
                        .pending
                        .remove(&seq)
                        .map(|p| p.grants)
                        .unwrap_or_default();
                    for entry in done {
                        self.give(entry, &mut out);
                    }
                }
            }
            ask @ QuotaMessage::Ask { .. } => self.ask(now, ask, &mut out),
            QuotaMessage::Release { key, holder, slot } => {
                self.release(now, LedgerEntry { key, holder, slot }, &mut out);
            }
            _ => {}
        }
        out
    }

    /// A holder gave capacity back: recorded (nobody waits on it) so that a later
    /// grantor may grant it again too.
    fn release(&mut self, now: Millis, entry: LedgerEntry, out: &mut QuotaOut) {
        if self.ledger.merge(entry) && self.is_ready() && self.pending.len() < MAX_PENDING {
            let entry = LedgerEntry {
                slot: self.ledger.slot(entry.key, entry.holder),
                ..entry
            };
            self.record(now, vec![entry], Vec::new(), out);
        }
    }

    fn ask(&mut self, now: Millis, ask: QuotaMessage, out: &mut QuotaOut) {
        let QuotaMessage::Ask {
            key,
            limit,
            holder,
            slot,
            want,
        } = ask
        else {
            return;
        };
        match self.phase {
            Phase::Deposed => return,
            Phase::Collecting { .. } => {
                if self.queued.len() < MAX_QUEUED || self.queued.contains_key(&(key, holder)) {
                    self.queued.insert((key, holder), ask);
                }
                return;
            }
            Phase::Ready => {}
        }
        // The holder's own view can only add releases the ledger has not seen (an
        // invalid slot is ignored).
        self.ledger.merge(LedgerEntry { key, holder, slot });
        // An ask for nothing (no holder sends one) is no reason to say "exhausted"
        // and recall the others' capacity.
        if want == 0 {
            return;
        }
        if self.pending.len() >= MAX_PENDING {
            return;
        }
        // An ask while a grant to the same holder is being recorded waits for it.
        if self
            .pending
            .values()
            .any(|p| p.grants.iter().any(|g| g.key == key && g.holder == holder))
        {
            return;
        }
        // Without a limit set, the one the latest ask carried: a changed record
        // (raised or lowered) takes effect with the first ask that reads it; while
        // the record spreads (about a second) holders may ask with either value.
        let set = self.limit_set.contains(&key.quota);
        let refuse = |grantor: &mut Grantor, out: &mut QuotaOut| {
            out.send(
                holder.node,
                QuotaMessage::Exhausted {
                    epoch: grantor.epoch,
                    key,
                    holder,
                },
            );
        };
        if !limit.is_valid() {
            return refuse(self, out);
        }
        // A window more than a span ahead of this grantor's clock: the holder's clock
        // runs ahead; granting would make the current windows look past (below).
        if let (Some(wall), Some(window_ms)) =
            (self.wall, core::num::NonZeroU64::new(limit.window_ms))
        {
            let current = wall / window_ms.get();
            if key.window > current.saturating_add(u64::from(limit.span)) {
                return refuse(self, out);
            }
        }
        // A window more than a span behind the latest: its neighbours may be
        // forgotten (see `Ledger::forget_old`), and it is past for everyone whose
        // clock is near the others'.
        if self
            .ledger
            .latest(key.quota)
            .is_some_and(|latest| key.window.saturating_add(u64::from(limit.span)) < latest)
        {
            return refuse(self, out);
        }
        let limit = *self
            .limits
            .entry(key.quota)
            .and_modify(|l| {
                if !set {
                    *l = limit;
                }
            })
            .or_insert(limit);
        if !limit.is_valid() {
            return refuse(self, out);
        }
        let fullest = self.fullest(key, limit.span);
        let room = limit.max.saturating_sub(fullest);
        let slice = want.min(room).min(self.timing.max_slice(limit.max));
        let known = self.ledger.slot(key, holder);
        if slice == 0 && known.allowance > slot.allowance && fullest <= limit.max {
            // Nothing more to give, but the holder has not heard of all it got (a
            // grant was lost): give it again, recorded in this epoch first. Only
            // while the ledger is within the limit: a collected ledger may hold
            // entries an old grantor recorded at a minority and never gave (counted,
            // so nothing is granted on top of them), and giving one of those when
            // they overflow the limit would make it real.
            let entry = LedgerEntry {
                key,
                holder,
                slot: known,
            };
            self.record(now, vec![entry], vec![entry], out);
            return;
        }
        if slice == 0 {
            refuse(self, out);
            self.recall(now, key, holder, out);
            return;
        }
        let mut grown = known;
        let Some(allowance) = grown.allowance.checked_add(slice) else {
            return;
        };
        grown.allowance = allowance;
        let entry = LedgerEntry {
            key,
            holder,
            slot: grown,
        };
        self.ledger.merge(entry);
        debug_assert!(
            self.fullest(key, limit.span) <= limit.max,
            "a grant past the limit"
        );
        let _ = self.ledger.forget_old(key.quota);
        self.record(now, vec![entry], vec![entry], out);
    }

    /// What the fullest span of `span` consecutive windows containing `key`'s holds
    /// (granted and not given back): a grant in `key` must fit in every one of them.
    fn fullest(&self, key: QuotaKey, span: u32) -> u64 {
        let span = u64::from(span.max(1));
        let first = key.window.saturating_sub(span - 1);
        let last = key.window.saturating_add(span - 1);
        let held: Vec<u64> = (first..=last)
            .map(|window| {
                self.ledger.held(QuotaKey {
                    quota: key.quota,
                    window,
                })
            })
            .collect();
        (key.window..=last)
            .map(|end| {
                let start = end.saturating_sub(span - 1).max(first);
                held[(start - first) as usize..=(end - first) as usize]
                    .iter()
                    .fold(0u64, |a, b| a.saturating_add(*b))
            })
            .max()
            .unwrap_or(0)
    }

    /// What could still be granted of `key` now, by the limit this grantor knows.
    fn room(&self, key: QuotaKey) -> u64 {
        self.limits.get(&key.quota).map_or(0, |limit| {
            limit.max.saturating_sub(self.fullest(key, limit.span))
        })
    }

    /// Asks the other holders of `key` with unspent capacity to give it back, at
    /// most once per `exhausted_retry`.
    fn recall(&mut self, now: Millis, key: QuotaKey, asker: Session, out: &mut QuotaOut) {
        if self
            .recalled
            .get(&key)
            .is_some_and(|at| now.since(*at) < self.timing.exhausted_retry)
        {
            return;
        }
        self.recalled.insert(key, now);
        let retry = self.timing.exhausted_retry;
        self.recalled.retain(|_, at| now.since(*at) < retry);
        let holders: BTreeSet<NodeId> = self
            .ledger
            .range(key)
            .filter(|(s, slot)| *s != asker && slot.held() > 0)
            .map(|(s, _)| s.node)
            .collect();
        for node in holders {
            out.send(
                node,
                QuotaMessage::Recall {
                    epoch: self.epoch,
                    key,
                },
            );
        }
    }

    fn record(
        &mut self,
        now: Millis,
        entries: Vec<LedgerEntry>,
        grants: Vec<LedgerEntry>,
        out: &mut QuotaOut,
    ) {
        self.seq += 1;
        let seq = self.seq;
        #[cfg(any(test, feature = "testing"))]
        let grants = match self.bug {
            None => grants,
            Some(bug) => {
                for entry in &grants {
                    self.give(*entry, out);
                }
                if bug == QuotaBug::GrantUnrecorded {
                    return;
                }
                Vec::new()
            }
        };
        for &voter in &self.voters {
            out.send(
                voter,
                QuotaMessage::Record {
                    epoch: self.epoch,
                    seq,
                    entries: entries.clone(),
                },
            );
        }
        self.pending.insert(
            seq,
            Pending {
                entries,
                acks: BTreeSet::new(),
                grants,
                sent: now,
            },
        );
    }

    fn give(&self, entry: LedgerEntry, out: &mut QuotaOut) {
        out.send(
            entry.holder.node,
            QuotaMessage::Grant {
                epoch: self.epoch,
                key: entry.key,
                holder: entry.holder,
                slot: entry.slot,
                room: self.room(entry.key),
            },
        );
    }

    /// Resends collections and records that are not answered yet.
    pub fn handle_timeout(&mut self, now: Millis) -> QuotaOut {
        let mut out = QuotaOut::default();
        if let Phase::Collecting { copies, sent } = &self.phase {
            if now.since(*sent) >= RESEND {
                let copies = copies.clone();
                self.collect(&mut out, Some(&copies));
                if let Phase::Collecting { sent, .. } = &mut self.phase {
                    *sent = now;
                }
            }
        }
        for (&seq, pending) in &mut self.pending {
            if now.since(pending.sent) >= RESEND {
                pending.sent = now;
                for &voter in &self.voters {
                    if !pending.acks.contains(&voter) {
                        out.send(
                            voter,
                            QuotaMessage::Record {
                                epoch: self.epoch,
                                seq,
                                entries: pending.entries.clone(),
                            },
                        );
                    }
                }
            }
        }
        out
    }

    /// When [`Grantor::handle_timeout`] has something to do next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Millis> {
        let collect = match &self.phase {
            Phase::Collecting { sent, .. } => Some(*sent + RESEND),
            _ => None,
        };
        let records = self.pending.values().map(|p| p.sent + RESEND).min();
        collect.into_iter().chain(records).min()
    }

    /// The slot of `holder` for `key` in this grantor's ledger.
    pub fn slot(&self, key: QuotaKey, holder: Session) -> Slot {
        self.ledger.slot(key, holder)
    }

    /// This node.
    pub fn node(&self) -> NodeId {
        self.me
    }
}
