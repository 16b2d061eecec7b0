//! What the checkers look at: facts recorded while the world runs (crashes, pauses,
//! who declared whom failed and when, broadcast receipts), and the final verdicts.
//!
//! Each check is separate and named, so a failing seed says exactly which property
//! broke: `convergence`, `detection`, `false-positive`; the runner adds `no-panic`
//! and `determinism`.

use core::time::Duration;
use std::collections::BTreeMap;

use aurora_core::state::hlc::Hlc;
use aurora_core::state::store::{Key, Store};
use aurora_core::{MemberChange, Millis, NodeId, Origin};

use crate::checks::CheckTally;
use crate::world::SimNode;

/// A property that did not hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckFailure {
    pub check: &'static str,
    pub detail: String,
}

/// A node that is down is excused for this long after it comes back: stale rumours
/// about its old incarnation may still be in flight.
const GRACE: Duration = Duration::from_secs(60);

#[derive(Clone, Debug, Default)]
pub struct Observations {
    pub liveness_start: Option<Millis>,
    pub converged_at: Option<Millis>,
    /// When every up node first had the same state digest after the workload stopped.
    pub state_converged_at: Option<Millis>,
    /// Every write a node acknowledged: key, timestamp, live (false = delete).
    acked: Vec<(Key, Hlc, bool)>,
    /// Per write (by timestamp): when each node persisted it (`track_writes`).
    pub receipts: BTreeMap<Hlc, BTreeMap<usize, Millis>>,
    /// Leadership: whether two nodes ever held a lease at once (first instance).
    lease_overlap: Option<String>,
    /// The highest failover epoch seen per node id, to check epochs only grow.
    epochs: BTreeMap<NodeId, u64>,
    epoch_regression: Option<String>,
    /// When some node last held the lease, and the longest gap without one
    /// after a scripted leader crash or switchover.
    last_holder_at: Option<Millis>,
    pub leader_crash_at: Option<Millis>,
    /// Time from a scripted leader crash to the next lease holder.
    pub failover_ms: Option<u64>,
    switchover_at: Option<Millis>,
    /// Longest time without a lease holder after a scripted switchover.
    pub switchover_gap_ms: Option<u64>,
    /// When a leader first held the lease after the liveness phase began.
    pub leader_after_liveness: Option<Millis>,
    /// A partition happened during the run.
    pub partitioned: bool,
    /// Per node: until when it is excused (down, paused, leaving); `Millis(u64::MAX)`
    /// while the disturbance lasts.
    excused_until: BTreeMap<usize, Millis>,
    /// Crashed nodes that are still down, and when they crashed.
    down_since: BTreeMap<usize, Millis>,
    /// (crashed node, observer) → when the observer declared it failed.
    detected: BTreeMap<(usize, usize), Millis>,
    /// Crashes whose detection by every member has been recorded.
    detection_done: BTreeMap<usize, Millis>,
    /// Time from crash to "failed" at every live member, one entry per crash.
    pub detection_ms: Vec<u64>,
    /// (when, observer, target) of every "failed" about a node that was fine.
    pub false_positives: Vec<(Millis, NodeId, NodeId)>,
    pub suspicions: u64,
    /// Payload → (origin, sent at, receipts).
    broadcasts: BTreeMap<Vec<u8>, (NodeId, Millis, BTreeMap<NodeId, Millis>)>,
    pub failures: Vec<CheckFailure>,
    /// How often each check ran and failed (see [`CheckTally`]).
    pub checks: CheckTally,
    /// `leader-safety` and `epochs-grow` run after every event: counted here, in
    /// plain fields, and added to `checks` with the end-of-run verdicts.
    lease_checks: (u64, u64),
    epoch_checks: (u64, u64),
    /// (when, observer, target, change), when `SimParams::record_events` is set.
    pub events: Vec<(Millis, NodeId, NodeId, MemberChange)>,
}

impl Observations {
    pub fn crashed(&mut self, i: usize, at: Millis) {
        self.excused_until.insert(i, Millis(u64::MAX));
        self.down_since.insert(i, at);
        self.detected.retain(|&(t, _), _| t != i);
        self.detection_done.remove(&i);
    }

    pub fn restarted(&mut self, i: usize, at: Millis) {
        self.excused_until.insert(i, at + GRACE);
        self.down_since.remove(&i);
    }

    pub fn paused(&mut self, i: usize, _at: Millis, _until: Millis) {
        self.excused_until.insert(i, Millis(u64::MAX));
    }

    pub fn resumed(&mut self, i: usize, at: Millis) {
        self.excused_until.insert(i, at + GRACE);
    }

    pub fn left(&mut self, i: usize, _at: Millis) {
        self.excused_until.insert(i, Millis(u64::MAX));
    }

    fn excused(&self, i: usize, at: Millis) -> bool {
        self.excused_until.get(&i).is_some_and(|&until| at <= until)
    }

    pub fn leader_crashed(&mut self, at: Millis) {
        self.leader_crash_at = Some(at);
    }

    pub fn switchover_started(&mut self, at: Millis) {
        self.switchover_at = Some(at);
        self.switchover_gap_ms = Some(0);
    }

    /// After every simulated event: at most one node may hold an unexpired lease
    /// (each judged by its own clock at this instant, paused nodes included), and
    /// no node's epoch may go back.
    pub fn check_leases(
        &mut self,
        now: Millis,
        nodes: &[SimNode],
        local: impl Fn(&SimNode, Millis) -> Millis,
    ) {
        let mut holders = Vec::new();
        for n in nodes {
            let Some(node) = n.node() else {
                continue;
            };
            let f = node.view();
            if f.holds_lease_at(local(n, now)) {
                holders.push((n.id, f.failover_status().epoch));
            }
            let epoch = f.durable_epoch().0;
            let seen = self.epochs.entry(n.id).or_insert(epoch);
            self.epoch_checks.0 += 1;
            self.epoch_checks.1 += u64::from(epoch < *seen);
            if epoch < *seen && self.epoch_regression.is_none() {
                self.epoch_regression = Some(format!(
                    "{} went from epoch {} to {epoch} at {now}",
                    n.id, *seen
                ));
            }
            *seen = (*seen).max(epoch);
        }
        self.lease_checks.0 += 1;
        self.lease_checks.1 += u64::from(holders.len() > 1);
        if holders.len() > 1 && self.lease_overlap.is_none() {
            self.lease_overlap = Some(format!("{holders:?} all hold a lease at {now}"));
        }
        if !holders.is_empty() {
            if let (Some(crash), None) = (self.leader_crash_at, self.failover_ms) {
                self.failover_ms = Some(now.since(crash).as_millis() as u64);
            }
            if let Some(start) = self.liveness_start {
                self.leader_after_liveness.get_or_insert(now.max(start));
            }
            self.last_holder_at = Some(now);
        } else if let (Some(from), Some(gap)) =
            (self.last_holder_at, self.switchover_gap_ms.as_mut())
        {
            if self
                .switchover_at
                .is_some_and(|s| from >= s - core::time::Duration::from_millis(1))
            {
                *gap = (*gap).max(now.since(from).as_millis() as u64);
            }
        }
    }

    /// End-of-run leadership verdicts: `leader-safety`, `epochs-grow`,
    /// `leader-liveness` (with a majority of voters up, someone leads) and
    /// `leader-tier` (it is the best-ranked live voting member).
    pub fn check_leadership(&mut self, now: Millis, nodes: &[SimNode]) {
        let (evaluated, failed) = std::mem::take(&mut self.lease_checks);
        self.checks.add("leader-safety", evaluated, failed);
        let (evaluated, failed) = std::mem::take(&mut self.epoch_checks);
        self.checks.add("epochs-grow", evaluated, failed);
        if let Some(d) = self.lease_overlap.clone() {
            self.failures.push(CheckFailure {
                check: "leader-safety",
                detail: d,
            });
        }
        if let Some(d) = self.epoch_regression.clone() {
            self.failures.push(CheckFailure {
                check: "epochs-grow",
                detail: d,
            });
        }
        let up: Vec<&SimNode> = nodes.iter().filter(|n| n.is_up()).collect();
        // Voters as the protocol counts them: the newest roster any live node
        // follows (a member that failed, or left without anyone seeing it, stays
        // on it until the leader takes it off). No roster at all: the founders,
        // every one of whom the first leader needs.
        let roster = up
            .iter()
            .filter_map(|n| n.node()?.view().roster().cloned())
            .max_by_key(|r| r.version);
        let (voters, quorum) = match &roster {
            Some(r) => (r.len(), r.quorum()),
            None => {
                let founders = up
                    .iter()
                    .filter_map(|n| n.node())
                    .map(|x| x.view().meta().bootstrap_expect as usize)
                    .max()
                    .unwrap_or(0);
                (founders, founders)
            }
        };
        let on_roster = |n: &&&SimNode| match &roster {
            Some(r) => r.contains(n.id),
            None => n
                .node()
                .is_some_and(|x| x.view().meta().bootstrap_expect > 0),
        };
        let up_voters = up.iter().filter(on_roster).count();
        if up_voters < quorum || voters < 2 {
            return;
        }
        let holder = up.iter().find(|n| {
            n.node()
                .is_some_and(|x| x.view().holds_lease_at(n.local(now)))
        });
        self.checks.ran("leader-liveness", holder.is_some());
        let Some(holder) = holder else {
            self.failures.push(CheckFailure {
                check: "leader-liveness",
                detail: format!(
                    "{up_voters} of {voters} voters up, nobody holds the lease at {now}"
                ),
            });
            return;
        };
        let best = up
            .iter()
            .filter(on_roster)
            .filter_map(|n| n.node().map(|x| (n.id, x.view().meta())))
            .filter(|(_, m)| m.role == aurora_core::Role::Serving)
            .min_by_key(|(id, m)| (m.promotion_tier, core::cmp::Reverse(m.capacity), *id))
            .map(|(id, _)| id);
        self.checks.ran("leader-tier", best == Some(holder.id));
        if best != Some(holder.id) {
            self.failures.push(CheckFailure {
                check: "leader-tier",
                detail: format!(
                    "{} leads at {now}, but {best:?} ranks best among the live voters",
                    holder.id
                ),
            });
        }
    }

    pub fn acked(&mut self, key: Key, hlc: Hlc, live: bool) {
        self.acked.push((key, hlc, live));
    }

    /// `node`'s disk is gone: its acknowledged writes that no other node holds
    /// (at that version or later) went with it, and are no longer owed; and so did
    /// the epoch it had seen (it learns the current one from the leader again).
    pub fn disk_lost(&mut self, lost: Origin, others: &[&Store]) {
        self.epochs.remove(&lost.node);
        self.acked.retain(|(key, hlc, _)| {
            hlc.origin != lost
                || others
                    .iter()
                    .any(|s| s.get(key).is_some_and(|e| e.hlc >= *hlc))
        });
    }

    /// Notes the entries in a node's persist batch.
    pub fn persisted(&mut self, node: usize, batch: &aurora_core::PersistBatch, at: Millis) {
        for item in &batch.items {
            if let aurora_core::PersistItem::Entry(e) = item {
                self.receipts
                    .entry(e.hlc)
                    .or_default()
                    .entry(node)
                    .or_insert(at);
            }
        }
    }

    pub fn acked_writes(&self) -> usize {
        self.acked.len()
    }

    /// The replicated-state verdicts: `state-convergence` (every up node has the
    /// same digest), `durability` (every acknowledged write is on every up node,
    /// or overwritten by a newer one) and `no-resurrection` (a key whose last
    /// acknowledged write is a delete is live nowhere).
    ///
    /// A write is acknowledged once its origin committed it, before any peer has
    /// it. If the origin crashed right after and is still down at the end (the
    /// detection benchmark's crash is never restarted), the write is owed by its
    /// disk, which it restarts with and then spreads: `durability` then checks that
    /// disk instead of the up nodes. A wiped disk already released its writes
    /// ([`Observations::disk_lost`]).
    pub fn check_state(&mut self, nodes: &[SimNode]) {
        let up: Vec<&SimNode> = nodes.iter().filter(|n| n.is_up()).collect();
        self.checks.ran("state-convergence", digests_agree(nodes));
        if !digests_agree(nodes) {
            let digests: Vec<String> = up
                .iter()
                .filter_map(|n| {
                    n.node()
                        .map(|x| format!("{}={:016x}", n.id, x.view().store().digest()))
                })
                .collect();
            self.failures.push(CheckFailure {
                check: "state-convergence",
                detail: format!("digests differ: {}", digests.join(" ")),
            });
        }
        // The write is on the disk of its origin, which is down (see above).
        let on_origin_disk = |key: &Key, hlc: &Hlc| {
            nodes.iter().any(|o| {
                o.id == hlc.origin.node
                    && o.status == crate::world::Status::Crashed
                    && o.disk().entries.get(key).is_some_and(|e| e.hlc >= *hlc)
            })
        };
        let mut last: BTreeMap<&Key, (Hlc, bool)> = BTreeMap::new();
        for (key, hlc, live) in &self.acked {
            let slot = last.entry(key).or_insert((*hlc, *live));
            if *hlc > slot.0 {
                *slot = (*hlc, *live);
            }
        }
        for n in &up {
            let Some(store) = n.node().map(|x| x.view().store()) else {
                continue;
            };
            for (key, hlc, _) in &self.acked {
                let lost = store.get(key).is_none_or(|e| e.hlc < *hlc) && !on_origin_disk(key, hlc);
                self.checks.ran("durability", !lost);
                if lost {
                    self.failures.push(CheckFailure {
                        check: "durability",
                        detail: format!("{} lacks acknowledged write {hlc:?} to {key:?}", n.id),
                    });
                    return;
                }
            }
            for (key, (hlc, live)) in &last {
                let resurrected = !live
                    && !on_origin_disk(key, hlc)
                    && store
                        .get(key)
                        .is_some_and(|e| e.value.is_some() && e.hlc < *hlc);
                self.checks.ran("no-resurrection", !resurrected);
                if resurrected {
                    self.failures.push(CheckFailure {
                        check: "no-resurrection",
                        detail: format!("{} holds {key:?} deleted at {hlc:?}", n.id),
                    });
                    return;
                }
            }
        }
    }

    pub fn broadcast_sent(&mut self, origin: NodeId, payload: Vec<u8>, at: Millis) {
        self.broadcasts
            .insert(payload, (origin, at, BTreeMap::new()));
    }

    /// Records a receipt by `receiver`.
    pub fn broadcast_receipt(&mut self, receiver: NodeId, payload: &[u8], at: Millis) {
        if let Some((_, _, receipts)) = self.broadcasts.get_mut(payload) {
            receipts.entry(receiver).or_insert(at);
        }
    }

    /// Per broadcast: (origin, sent at, receipts).
    pub fn broadcasts(
        &self,
    ) -> impl Iterator<Item = (&NodeId, &Millis, &BTreeMap<NodeId, Millis>)> {
        self.broadcasts.values().map(|(o, s, r)| (o, s, r))
    }

    pub fn member_event(
        &mut self,
        observer: usize,
        target: NodeId,
        change: MemberChange,
        at: Millis,
        nodes: &[SimNode],
    ) {
        let Some(t) = index_of(target, nodes) else {
            return;
        };
        match change {
            MemberChange::Suspected => self.suspicions += 1,
            MemberChange::Failed if !self.excused(t, at) && !self.excused(observer, at) => {
                self.false_positives.push((at, nodes[observer].id, target));
            }
            _ => {}
        }
        let gone = matches!(
            change,
            MemberChange::Failed | MemberChange::Left | MemberChange::Reaped
        );
        if let (true, Some(&crash)) = (gone, self.down_since.get(&t)) {
            self.detected.entry((t, observer)).or_insert(at);
            if !self.detection_done.contains_key(&t) && self.all_detected(t, nodes) {
                self.detection_done.insert(t, at);
                self.detection_ms.push(at.since(crash).as_millis() as u64);
            }
        }
    }

    /// Every live member other than `t` has declared it failed, or never saw it.
    fn all_detected(&self, t: usize, nodes: &[SimNode]) -> bool {
        let target = nodes[t].id;
        nodes.iter().enumerate().all(|(o, n)| {
            o == t || !n.is_up() || self.detected.contains_key(&(t, o)) || !sees_active(n, target)
        })
    }

    /// The end-of-run verdicts.
    pub fn finish(&mut self, now: Millis, nodes: &[SimNode]) {
        let converged = self.converged_at.is_some() && views_agree(nodes);
        self.checks.ran("convergence", converged);
        if self.converged_at.is_none() {
            self.failures.push(CheckFailure {
                check: "convergence",
                detail: format!("views still differ at {now}: {}", disagreement(nodes)),
            });
        } else if !views_agree(nodes) {
            self.failures.push(CheckFailure {
                check: "convergence",
                detail: format!("views diverged again by {now}: {}", disagreement(nodes)),
            });
        }
        for (&t, &crash) in &self.down_since {
            let target = nodes[t].id;
            for n in nodes.iter().filter(|n| n.is_up() && n.id != target) {
                self.checks.ran("detection", !sees_active(n, target));
            }
            for n in nodes.iter().filter(|n| n.is_up() && sees_active(n, target)) {
                self.failures.push(CheckFailure {
                    check: "detection",
                    detail: format!(
                        "{} still sees {target} as alive at {now}; it crashed at {crash}",
                        n.id
                    ),
                });
            }
        }
    }

    /// Records the false-positive failures (only for seeds calm enough to demand it).
    pub fn check_false_positives(&mut self) {
        self.checks
            .ran("false-positive", self.false_positives.is_empty());
        if let Some(&(at, observer, target)) = self.false_positives.first() {
            self.failures.push(CheckFailure {
                check: "false-positive",
                detail: format!(
                    "{observer} declared {target} failed at {at} while it was up ({} in all)",
                    self.false_positives.len()
                ),
            });
        }
    }
}

fn index_of(id: NodeId, nodes: &[SimNode]) -> Option<usize> {
    let i = (id.0 as usize).checked_sub(1)?;
    (i < nodes.len() && nodes[i].id == id).then_some(i)
}

fn sees_active(observer: &SimNode, target: NodeId) -> bool {
    observer
        .node()
        .and_then(|n| n.view().member(target))
        .is_some_and(|m| m.is_active())
}

/// Every up node holds the same replicated state.
pub fn digests_agree(nodes: &[SimNode]) -> bool {
    let mut digests = nodes
        .iter()
        .filter(|n| n.is_up())
        .filter_map(|n| n.node().map(|x| x.view().store().digest()));
    match digests.next() {
        Some(first) => digests.all(|d| d == first),
        None => true,
    }
}

/// Every up node sees exactly the up nodes as alive or suspect.
pub fn views_agree(nodes: &[SimNode]) -> bool {
    let live: Vec<NodeId> = nodes.iter().filter(|n| n.is_up()).map(|n| n.id).collect();
    nodes
        .iter()
        .filter(|n| n.is_up())
        .all(|n| view_matches(n, &live))
}

fn view_matches(n: &SimNode, live: &[NodeId]) -> bool {
    let Some(node) = n.node() else {
        return false;
    };
    let mut active = 0;
    for m in node.members().filter(|m| m.is_active()) {
        if live.binary_search(&m.id).is_err() {
            return false;
        }
        active += 1;
    }
    active + 1 == live.len()
}

/// The first node whose view is wrong, and how.
fn disagreement(nodes: &[SimNode]) -> String {
    let live: Vec<NodeId> = nodes.iter().filter(|n| n.is_up()).map(|n| n.id).collect();
    for n in nodes.iter().filter(|n| n.is_up()) {
        if !view_matches(n, &live) {
            let mut seen: Vec<NodeId> = n
                .node()
                .map(|node| {
                    node.members()
                        .filter(|m| m.is_active())
                        .map(|m| m.id)
                        .collect()
                })
                .unwrap_or_default();
            seen.push(n.id);
            seen.sort();
            return format!(
                "{} sees {:?}, live are {:?}",
                n.id,
                abbreviate(&seen),
                abbreviate(&live)
            );
        }
    }
    "none".into()
}

fn abbreviate(ids: &[NodeId]) -> String {
    if ids.len() <= 12 {
        format!("{ids:?}")
    } else {
        format!("{:?}… ({} nodes)", &ids[..12], ids.len())
    }
}
