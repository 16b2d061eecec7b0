//! The voter roster: which members vote, changed one member at a time by the
//! lease holder.
//!
//! # Why a roster
//!
//! A majority lease is safe only when any two majorities that may grant leases at
//! overlapping times share a voter. Counting "every member this node has seen" is
//! not enough: during a partition, two newcomers that join the minority side grow
//! its voter count while the majority side never hears of them, and the two sides'
//! majorities are then disjoint (the simulator found exactly this, seed 9733 of the
//! 10,000-seed run). So the voters are an explicit, versioned list, and it changes
//! the way Raft's single-server membership changes do:
//!
//! * **Only the lease holder changes it**, by one member at a time (add or remove),
//!   and only once a lease round under the current version won a majority of the
//!   current roster (the version is *committed*). Any majority of a roster and any
//!   majority of a one-step neighbour share a member.
//! * **A voter adopts any newer version it hears of, and grants only requests
//!   made under its own version** (so never to a candidate behind it), and only if
//!   it is on that roster. A grant is therefore also an acknowledgement of the
//!   version, and a candidate that is behind learns the newer roster from the
//!   refusal.
//! * **Every new leadership first re-stamps the roster at its own epoch** (Raft's
//!   no-op entry of a new term) and changes nothing until that stamp is committed.
//!   A leader that lost its lease may leave behind a change that never reached a
//!   majority; the new leader's committed stamp is newer than it, so voters that
//!   hold the stamp refuse that branch's candidates, and too few voters remain
//!   below it to make a majority of that branch's roster.
//!
//! Versions are ordered (epoch, then seq); every version made at an epoch above a
//! committed version's descends from it, so "newer" never jumps to a branch that
//! lost.
//!
//! # Bootstrap
//!
//! Before any roster exists, the first lease is won by a request made under
//! [`Electorate::Bootstrap`]: it needs a grant from `expected_voters` founding
//! members, each configured with the same `expected_voters` and none of which has
//! heard of a roster yet. When no more founders than `expected_voters` exist (the
//! operator's promise, as Consul's `bootstrap_expect`), two bootstrap leases have
//! the same grant set, so they are ordered by the voters' promises; the winner
//! makes its grant set the first roster. A node with `expected_voters = 0` never
//! bootstraps: it joins and waits for the leader to admit it.

use serde::{Deserialize, Serialize};

use crate::id::{Life, NodeId};

use super::message::Epoch;

/// Which roster a version names: made by the holder of `epoch` as its `seq`-th
/// change (0: the re-stamp every leadership starts with). Ordered by epoch, then seq.
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct RosterVersion {
    /// The leadership that made it (its lease epoch).
    pub epoch: Epoch,
    /// Its change number within that leadership (0: the re-stamp).
    pub seq: u32,
}

impl core::fmt::Display for RosterVersion {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{}", self.epoch, self.seq)
    }
}

/// The voting members at one version. `voters` is sorted and free of duplicates;
/// `lives[i]` is the storage life `voters[i]` was admitted with.
///
/// A voter is a node id *in one life*: a node that lost its disk comes back under
/// its old id with a new life and empty storage, having forgotten the roster and
/// its promises. It is not the voter the roster names, so it neither grants under
/// this roster nor is its grant counted (a wiped voter could otherwise help a
/// stale candidate to a majority), until the leader admits the new life, which it
/// does only once the old one was forgotten.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Roster {
    /// Which roster this is; a node only ever adopts a newer one.
    pub version: RosterVersion,
    /// The voters' ids, sorted, no duplicates.
    pub voters: Vec<NodeId>,
    /// `lives[i]` is the life `voters[i]` was admitted with.
    pub lives: Vec<Life>,
}

impl Roster {
    /// Voters in their default life (tests and single-life harnesses).
    pub fn new(version: RosterVersion, voters: impl IntoIterator<Item = NodeId>) -> Roster {
        Roster::with_lives(version, voters.into_iter().map(|v| (v, Life::default())))
    }

    /// Voters with their lives; a repeated id keeps its last life.
    pub fn with_lives(
        version: RosterVersion,
        voters: impl IntoIterator<Item = (NodeId, Life)>,
    ) -> Roster {
        let map: std::collections::BTreeMap<NodeId, Life> = voters.into_iter().collect();
        Roster {
            version,
            voters: map.keys().copied().collect(),
            lives: map.values().copied().collect(),
        }
    }

    /// Whether `id` is a voter, in whichever life.
    pub fn contains(&self, id: NodeId) -> bool {
        self.voters.binary_search(&id).is_ok()
    }

    /// The life `id` was admitted with, if it is a voter.
    pub fn life_of(&self, id: NodeId) -> Option<Life> {
        let i = self.voters.binary_search(&id).ok()?;
        self.lives.get(i).copied()
    }

    /// Whether `id` in `life` is a voter: the check every grant and vote makes.
    pub fn admits(&self, id: NodeId, life: Life) -> bool {
        self.life_of(id) == Some(life)
    }

    /// The voters with their lives.
    pub fn members(&self) -> impl Iterator<Item = (NodeId, Life)> + '_ {
        self.voters.iter().copied().zip(self.lives.iter().copied())
    }

    /// How many voters; majorities are taken over this number.
    pub fn len(&self) -> usize {
        self.voters.len()
    }

    /// Whether it names no voter.
    pub fn is_empty(&self) -> bool {
        self.voters.is_empty()
    }

    /// Grants a lease needs under this roster: a strict majority.
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// The same voters under `version` (a new leadership's re-stamp).
    pub fn restamped(&self, version: RosterVersion) -> Roster {
        Roster {
            version,
            ..self.clone()
        }
    }

    /// One step away: `change` applied, under `version`.
    pub fn changed(&self, version: RosterVersion, change: Change) -> Roster {
        let voters = self.members();
        let next = match change {
            Change::Add(id, life) => Roster::with_lives(version, voters.chain([(id, life)])),
            Change::Remove(id) => Roster::with_lives(version, voters.filter(|&(v, _)| v != id)),
        };
        // Holds because the leader adds only members outside the roster and
        // removes only voters on it: one voter more or fewer, which is what keeps
        // any majority of the old roster and of the new one overlapping.
        debug_assert_eq!(
            next.len().abs_diff(self.len()),
            1,
            "{change:?} on {:?} is not a one-voter change",
            self.voters
        );
        next
    }

    /// Whether a well-formed roster: sorted, no duplicates, not empty, one life
    /// per voter. A peer's roster that is not is ignored.
    pub fn is_well_formed(&self) -> bool {
        !self.voters.is_empty()
            && self.voters.len() == self.lives.len()
            && self.voters.windows(2).all(|w| w[0] < w[1])
    }
}

/// A one-member change of the roster.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Admit this id in this life.
    Add(NodeId, Life),
    Remove(NodeId),
}

/// Whom a lease request asks to count: the founders, or a roster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Electorate {
    /// No roster exists yet: `expected` founding members must all grant.
    Bootstrap {
        expected: u32,
    },
    Roster(Roster),
}

impl Electorate {
    pub fn roster(&self) -> Option<&Roster> {
        match self {
            Electorate::Roster(r) => Some(r),
            Electorate::Bootstrap { .. } => None,
        }
    }
}

/// What a node knows of the roster; persisted whenever it changes, because a voter
/// that forgot its roster could grant under a version it had moved past, or take
/// part in a second bootstrap.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RosterState {
    /// The roster this node follows, once it adopted one.
    pub roster: Option<Roster>,
    /// This node has heard of a roster: it no longer takes part in a bootstrap.
    pub bootstrapped: bool,
}

impl RosterState {
    /// The version of the roster followed, if any.
    pub fn version(&self) -> Option<RosterVersion> {
        self.roster.as_ref().map(|r| r.version)
    }

    /// Takes `offered` if it is newer than the roster held. Hearing of any roster
    /// ends this node's part in a bootstrap. Returns whether the roster changed.
    pub fn offer(&mut self, offered: &Roster) -> bool {
        if !offered.is_well_formed() {
            return false;
        }
        self.bootstrapped = true;
        if self.version().is_none_or(|v| offered.version > v) {
            self.roster = Some(offered.clone());
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn v(epoch: u64, seq: u32) -> RosterVersion {
        RosterVersion {
            epoch: Epoch(epoch),
            seq,
        }
    }

    fn ids(xs: &[u64]) -> Vec<NodeId> {
        xs.iter().map(|&x| NodeId(x)).collect()
    }

    #[test]
    fn versions_order_by_epoch_then_seq() {
        assert!(v(1, 9) < v(2, 0));
        assert!(v(2, 0) < v(2, 1));
    }

    #[test]
    fn changes_are_one_member_and_sorted() {
        let r = Roster::new(v(1, 0), ids(&[3, 1, 2, 2]));
        assert_eq!(r.voters, ids(&[1, 2, 3]));
        assert_eq!(r.quorum(), 2);
        let added = r.changed(v(1, 1), Change::Add(NodeId(0), Life(0)));
        assert_eq!(added.voters, ids(&[0, 1, 2, 3]));
        assert_eq!(added.quorum(), 3);
        let removed = added.changed(v(1, 2), Change::Remove(NodeId(2)));
        assert_eq!(removed.voters, ids(&[0, 1, 3]));
    }

    /// The property the one-step rule rests on: a majority of a roster and a
    /// majority of any one-step neighbour always share a member.
    #[test]
    fn majorities_of_neighbours_intersect() {
        for n in 1..=9u64 {
            let base = Roster::new(v(1, 0), (1..=n).map(NodeId));
            let neighbours = [
                base.changed(v(1, 1), Change::Add(NodeId(100), Life(0))),
                base.changed(v(1, 1), Change::Remove(NodeId(1))),
            ];
            for nb in neighbours.iter().filter(|r| !r.is_empty()) {
                let union: BTreeSet<NodeId> = base
                    .voters
                    .iter()
                    .chain(nb.voters.iter())
                    .copied()
                    .collect();
                // Disjoint majorities would need this many distinct members.
                assert!(base.quorum() + nb.quorum() > union.len(), "n = {n}");
            }
        }
    }

    #[test]
    fn a_voter_is_an_id_in_one_life() {
        let r = Roster::with_lives(v(1, 0), [(NodeId(1), Life(10)), (NodeId(2), Life(20))]);
        assert!(r.admits(NodeId(1), Life(10)));
        // The same id after a lost disk: a new life, not this roster's voter.
        assert!(r.contains(NodeId(1)));
        assert!(!r.admits(NodeId(1), Life(11)));
        assert!(!r.admits(NodeId(3), Life(10)));
        let replaced = r
            .changed(v(1, 1), Change::Remove(NodeId(1)))
            .changed(v(1, 2), Change::Add(NodeId(1), Life(11)));
        assert!(replaced.admits(NodeId(1), Life(11)));
        assert!(!replaced.admits(NodeId(1), Life(10)));
        assert!(replaced.is_well_formed());
    }

    #[test]
    fn offer_takes_only_newer_versions() {
        let mut s = RosterState::default();
        let r1 = Roster::new(v(3, 0), ids(&[1, 2, 3]));
        assert!(s.offer(&r1));
        assert!(s.bootstrapped);
        // Older or equal: kept.
        assert!(!s.offer(&Roster::new(v(2, 5), ids(&[1]))));
        assert!(!s.offer(&r1));
        assert!(s.offer(&Roster::new(v(4, 0), ids(&[1, 2]))));
        assert_eq!(s.version(), Some(v(4, 0)));
    }

    #[test]
    fn malformed_rosters_are_ignored_and_do_not_end_bootstrap() {
        let mut s = RosterState::default();
        let unsorted = Roster {
            version: v(1, 0),
            voters: ids(&[2, 1]),
            lives: vec![Life(0); 2],
        };
        let empty = Roster {
            version: v(1, 0),
            voters: vec![],
            lives: vec![],
        };
        let lifeless = Roster {
            version: v(1, 0),
            voters: ids(&[1, 2]),
            lives: vec![Life(0)],
        };
        assert!(!s.offer(&unsorted));
        assert!(!s.offer(&empty));
        assert!(!s.offer(&lifeless));
        assert!(!s.bootstrapped);
    }

    /// The one-step rule is asserted where a change is made: re-adding a voter in
    /// another life would swap it without a step, and trips the assertion.
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "not a one-voter change")]
    fn a_change_that_is_not_one_voter_trips_the_assertion() {
        let r = Roster::with_lives(v(1, 0), [(NodeId(1), Life(10)), (NodeId(2), Life(20))]);
        let _ = r.changed(v(1, 1), Change::Add(NodeId(1), Life(11)));
    }
}
