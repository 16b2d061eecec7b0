//! Who may lead, in what order, and who counts as a voter.
//!
//! The order is Aurora/RDS promotion tiers: the lowest tier, then the highest
//! capacity, then the lowest node id, so every node that sees the same members
//! picks the same leader. Witnesses vote but never lead. A member whose config
//! fingerprint differs from this node's takes no part at all (it is reported as
//! drift): its lease timing or mode may differ, and the safety argument needs every
//! voter to run the same arithmetic.
//!
//! Who votes is the roster's business ([`super::roster`]): once a roster exists
//! the view is restricted to it, so every ranking below is among roster members.
//! Before (at bootstrap) the founders are: every member with this node's
//! fingerprint and its `expected_voters` (gossiped as `bootstrap_expect`).

use core::cmp::Reverse;
use core::time::Duration;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::config::Role;
use crate::id::{Addr, Life, NodeId};
use crate::time::Millis;

/// What the node tells failover about a live member (itself included).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    pub id: NodeId,
    /// The storage life this node knows it by (its binding; `None` for a member
    /// only heard of through others): the leader admits a candidate to the
    /// roster as this (id, life), so never one whose life it does not know.
    pub life: Option<Life>,
    pub addr: Addr,
    /// Promotion tier, 0 (preferred) to 15.
    pub tier: u8,
    pub capacity: u32,
    pub role: Role,
    /// Hash of the settings that must agree across the cluster.
    pub fingerprint: u64,
    /// Its `expected_voters` (0: a newcomer, never a founder).
    pub bootstrap_expect: u32,
}

/// The key candidates are sorted by; lower leads.
pub type RankKey = (u8, Reverse<u32>, NodeId);

impl Candidate {
    /// A candidate from a member's gossiped metadata.
    pub fn from_meta(
        id: NodeId,
        life: Option<Life>,
        addr: Addr,
        meta: &crate::config::MemberMeta,
    ) -> Candidate {
        Candidate {
            id,
            life,
            addr,
            tier: meta.promotion_tier,
            capacity: meta.capacity,
            role: meta.role,
            fingerprint: meta.config_fingerprint,
            bootstrap_expect: meta.bootstrap_expect,
        }
    }

    /// Whether this member may ever lead (witnesses may not).
    pub fn can_lead(&self) -> bool {
        self.role == Role::Serving
    }

    pub fn rank_key(&self) -> RankKey {
        (self.tier, Reverse(self.capacity), self.id)
    }

    /// Whether `self` should lead rather than `other`.
    pub fn outranks(&self, other: &Candidate) -> bool {
        self.rank_key() < other.rank_key()
    }
}

/// The leader among `candidates` as this module ranks them: the best-ranked
/// member that may lead and has `fingerprint`. Liveness, lapses and hold-down are
/// left to the caller; this is the bare order, for tests and dashboards.
#[cfg(test)]
pub fn best_candidate(candidates: &[Candidate], fingerprint: u64) -> Option<&Candidate> {
    candidates
        .iter()
        .filter(|c| c.can_lead() && c.fingerprint == fingerprint)
        .min_by_key(|c| c.rank_key())
}

/// What this node remembers of a member.
#[derive(Clone, Debug)]
pub(crate) struct Known {
    pub cand: Candidate,
    pub live: bool,
    /// When it last became live (or came back from a lapse), for hold-down.
    pub live_since: Millis,
    /// Why it is not ranked for now, if it is not.
    pub lapsed: Option<Lapse>,
}

/// Why a member is left out of the ranking.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Lapse {
    /// A lease promised to it ran out unrenewed: it crashed or was cut off. It is
    /// ranked again (after a fresh hold-down) once it is heard from at all.
    Expired,
    /// It handed its lease over or resigned: it is ranked again only once it asks
    /// for a lease itself, so a planned switchover is not undone.
    Released,
}

/// This node's view of the members, as fed by the node.
#[derive(Clone, Debug)]
pub(crate) struct View {
    me: NodeId,
    /// Every member ever fed, live or not, with its last known details.
    known: BTreeMap<NodeId, Known>,
    /// The roster's voters, once this node follows a roster; `None` at bootstrap.
    roster: Option<BTreeSet<NodeId>>,
}

impl View {
    pub fn new(me: NodeId) -> View {
        View {
            me,
            known: BTreeMap::new(),
            roster: None,
        }
    }

    /// Restricts voters to `roster` (or, with `None`, to the bootstrap founders).
    pub fn restrict(&mut self, roster: Option<&[NodeId]>) {
        self.roster = roster.map(|r| r.iter().copied().collect());
    }

    /// Whether a member counts as a voter in this view's electorate: the roster,
    /// or at bootstrap the founders configured like this node.
    fn in_electorate(&self, k: &Known) -> bool {
        match &self.roster {
            Some(r) => r.contains(&k.cand.id),
            None => {
                let expect = self.own().map_or(0, |c| c.bootstrap_expect);
                expect > 0 && k.cand.bootstrap_expect == expect
            }
        }
    }

    /// Whether `id` is a member with this node's fingerprint, voter or not.
    pub fn is_member(&self, id: NodeId) -> bool {
        self.members().any(|k| k.cand.id == id)
    }

    /// Live members with this node's fingerprint that may vote but are not on the
    /// roster: the ones the leader may admit.
    pub fn outside_roster(&self) -> impl Iterator<Item = &Known> {
        let fp = self.reference();
        self.known.values().filter(move |k| {
            k.live
                && Some(k.cand.fingerprint) == fp
                && self
                    .roster
                    .as_ref()
                    .is_some_and(|r| !r.contains(&k.cand.id))
        })
    }

    /// Every member with this node's fingerprint, voter or not (whom lease
    /// messages go to: a newcomer learns the leader and the roster from them).
    pub fn members(&self) -> impl Iterator<Item = &Known> {
        let fp = self.reference();
        self.known
            .values()
            .filter(move |k| Some(k.cand.fingerprint) == fp)
    }

    /// A member's details, voter or not.
    pub fn get(&self, id: NodeId) -> Option<&Known> {
        self.known.get(&id)
    }

    /// This node's own candidate, once the node has fed it.
    pub fn own(&self) -> Option<&Candidate> {
        self.known.get(&self.me).map(|k| &k.cand)
    }

    fn reference(&self) -> Option<u64> {
        self.own().map(|c| c.fingerprint)
    }

    /// Replaces the live set. Returns the nodes that newly show config drift.
    pub fn update(&mut self, now: Millis, live: &[Candidate]) -> Vec<NodeId> {
        let before = self.drift();
        let was_live: BTreeSet<NodeId> = self
            .known
            .values()
            .filter(|k| k.live)
            .map(|k| k.cand.id)
            .collect();
        for k in self.known.values_mut() {
            k.live = false;
        }
        for c in live {
            let k = self.known.entry(c.id).or_insert_with(|| Known {
                cand: c.clone(),
                live: false,
                live_since: now,
                lapsed: None,
            });
            if !was_live.contains(&c.id) {
                // Newly live, or back after being gone: its hold-down starts now.
                k.live_since = now;
                k.lapsed = None;
            }
            k.cand = c.clone();
            k.live = true;
        }
        let after = self.drift();
        after.into_iter().filter(|n| !before.contains(n)).collect()
    }

    /// Live members whose fingerprint differs from this node's.
    pub fn drift(&self) -> Vec<NodeId> {
        let Some(fp) = self.reference() else {
            return Vec::new();
        };
        self.known
            .values()
            .filter(|k| k.live && k.cand.fingerprint != fp)
            .map(|k| k.cand.id)
            .collect()
    }

    /// Voters: the members of the electorate this node knows, with its
    /// fingerprint, live or not.
    pub fn voters(&self) -> impl Iterator<Item = &Known> {
        self.members().filter(|k| self.in_electorate(k))
    }

    pub fn is_voter(&self, id: NodeId) -> bool {
        self.get_voter(id).is_some()
    }

    pub fn get_voter(&self, id: NodeId) -> Option<&Known> {
        let fp = self.reference()?;
        self.known
            .get(&id)
            .filter(|k| k.cand.fingerprint == fp && self.in_electorate(k))
    }

    pub fn live_voters(&self) -> impl Iterator<Item = &Known> {
        self.voters().filter(|k| k.live)
    }

    /// A live voter that may lead.
    pub fn eligible(&self, id: NodeId) -> Option<&Known> {
        self.get_voter(id)
            .filter(|k| k.live && k.cand.can_lead() && k.lapsed.is_none())
    }

    /// The node that should lead now, in this view: the best-ranked live voter
    /// that may lead and has not lapsed, skipping those still in hold-down unless
    /// every candidate is (as at a cold start, when all joined together).
    pub fn best(&self, now: Millis, hold_down: Duration) -> Option<&Candidate> {
        let eligible = || {
            self.voters()
                .filter(|k| k.live && k.cand.can_lead() && k.lapsed.is_none())
        };
        let settled = eligible()
            .filter(|k| now.since(k.live_since) >= hold_down)
            .min_by_key(|k| k.cand.rank_key());
        settled
            .or_else(|| eligible().min_by_key(|k| k.cand.rank_key()))
            .map(|k| &k.cand)
    }

    /// Whether this node, which ranks itself best only because `from` is in
    /// hold-down in its view, should give way to `from`'s campaign: `from` is a
    /// live, unlapsed voter that may lead and outranks this node.
    ///
    /// Why: hold-down is judged on each node's own clock from when *it* saw a
    /// member come back, and a node never holds itself down. After a heal (or a
    /// suspicion refuted within milliseconds) two nodes can each see the other in
    /// hold-down, each rank itself best and refuse the other's campaign until
    /// hold-down runs out (10 s without a leader). Giving way to the better-ranked
    /// of the two settles it at once, the same way on both sides. Hold-down still
    /// decides between *other* candidates, so a voter that prefers a settled third
    /// node keeps refusing a flapping one.
    pub fn yields_to(&self, now: Millis, hold_down: Duration, from: NodeId) -> bool {
        let (Some(own), Some(them)) = (self.own(), self.eligible(from)) else {
            return false;
        };
        self.best(now, hold_down).map(|c| c.id) == Some(self.me) && them.cand.outranks(own)
    }

    /// `id` let a lease run out (or handed it over): rank it no more until it asks
    /// for a lease again.
    pub fn mark_lapsed(&mut self, id: NodeId, why: Lapse) {
        if id == self.me {
            return;
        }
        if let Some(k) = self.known.get_mut(&id) {
            // A release is the stronger statement; an expiry does not weaken it.
            if k.lapsed != Some(Lapse::Released) {
                k.lapsed = Some(why);
            }
        }
    }

    /// A message from `id`. A member lapsed by expiry is back, and starts a fresh
    /// hold-down (so a node that crashes and restarts is not handed the lease at
    /// once); one that released its lease is back only if the message asks for a
    /// lease, and keeps its standing (it never went away: a fresh hold-down would
    /// make voters prefer someone else while it considers itself best, and the two
    /// would refuse each other's campaigns until it ran out). A member that says it
    /// just started is back whatever its state, with a fresh hold-down.
    pub fn heard_from(&mut self, now: Millis, id: NodeId, asks: bool, started: bool) {
        if let Some(k) = self.known.get_mut(&id) {
            let fresh = started || k.lapsed == Some(Lapse::Expired);
            let back = fresh || (k.lapsed == Some(Lapse::Released) && asks);
            if back {
                k.lapsed = None;
            }
            if fresh {
                k.live_since = now;
            }
        }
    }

    /// Ranks again every member that released a lease: the leadership it handed
    /// over to is gone, so the plain order decides once more.
    pub fn clear_released(&mut self) {
        for k in self.known.values_mut() {
            if k.lapsed == Some(Lapse::Released) {
                k.lapsed = None;
            }
        }
    }

    /// Removes `id` from the voter set (it left on purpose).
    pub fn forget(&mut self, id: NodeId) {
        if id != self.me {
            self.known.remove(&id);
        }
    }

    /// Instants after `now` at which a member leaves hold-down.
    pub fn hold_down_ends(
        &self,
        now: Millis,
        hold_down: Duration,
    ) -> impl Iterator<Item = Millis> + '_ {
        self.voters()
            .filter(|k| k.live)
            .map(move |k| k.live_since + hold_down)
            .filter(move |&t| t > now)
    }
}
