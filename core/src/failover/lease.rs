//! The candidate's side: rounds of requests and the lease they earn.
//!
//! Each round is stamped with the local instant it was *sent*. When a majority of
//! voters granted the same round, the lease runs until
//! `sent_at + lease × (1 − max_drift) − margin`: every granting voter received the
//! request after it was sent, and keeps its promise for `lease × (1 + max_drift)`
//! on its own clock, so the lease ends (in real time) before the first of those
//! promises does. Grants are counted only for the round they answer, and only
//! while the campaign that sent it is current, so a late grant can never stretch
//! a lease past what its voter promised.

use core::time::Duration;
use std::collections::BTreeMap;

use crate::id::{Life, NodeId};
use crate::time::Millis;

use super::message::Epoch;
use super::roster::Roster;

#[derive(Clone, Debug)]
struct Round {
    sent_at: Millis,
    quorum: usize,
    /// The roster the round was sent under; `None` for a bootstrap round. Only its
    /// members' grants count, each from the life the roster names.
    roster: Option<Roster>,
    grants: BTreeMap<NodeId, Life>,
}

/// A round that just reached its quorum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Won {
    /// The roster it was sent under (`None`: bootstrap).
    pub roster: Option<Roster>,
    /// Who granted it, in which life.
    pub grants: BTreeMap<NodeId, Life>,
}

/// A campaign for, or the holding of, one epoch.
#[derive(Clone, Debug, Default)]
pub(crate) struct Lease {
    /// The epoch asked for or held; `None` when not campaigning.
    pub epoch: Option<Epoch>,
    /// Held while `now < until`.
    pub until: Option<Millis>,
    /// When the next round is due.
    pub next_send: Millis,
    rounds: BTreeMap<u64, Round>,
    /// High 32 bits of every round id: the node's session (one per process start).
    session: u64,
    counter: u64,
}

impl Lease {
    pub fn new(session: u64) -> Lease {
        Lease {
            session,
            ..Lease::default()
        }
    }

    pub fn holding(&self, now: Millis) -> bool {
        self.until.is_some_and(|u| now < u)
    }

    /// Starts campaigning for `epoch`, with a first round due now.
    pub fn campaign(&mut self, now: Millis, epoch: Epoch) {
        self.epoch = Some(epoch);
        self.until = None;
        self.rounds.clear();
        self.next_send = now;
    }

    /// Moves a campaign that has not won yet to a higher epoch; its rounds are void.
    pub fn bump(&mut self, epoch: Epoch) {
        self.epoch = Some(epoch);
        self.rounds.clear();
    }

    /// Stops campaigning or holding. Grants still in flight are ignored from now on.
    pub fn clear(&mut self) {
        self.epoch = None;
        self.until = None;
        self.rounds.clear();
    }

    /// Opens a round sent at `now` under `roster` that needs `quorum` grants;
    /// returns its id. Rounds older than `keep` can no longer earn a lease that
    /// outlives the current one, so they are dropped.
    pub fn open_round(
        &mut self,
        now: Millis,
        quorum: usize,
        roster: Option<Roster>,
        keep: Duration,
    ) -> u64 {
        self.counter = (self.counter + 1) & 0xffff_ffff;
        let id = (self.session << 32) | self.counter;
        self.rounds.retain(|_, r| now.since(r.sent_at) < keep);
        self.rounds.insert(
            id,
            Round {
                sent_at: now,
                quorum,
                roster,
                grants: BTreeMap::new(),
            },
        );
        id
    }

    /// Counts `from`'s grant of `round` for `epoch`. With a majority (at least
    /// `quorum_now`, the quorum the node needs at this moment, and at least the
    /// one the round was sent with), the lease is extended to
    /// `sent_at + usable`, and the round is returned.
    pub fn grant(
        &mut self,
        from: NodeId,
        life: Life,
        epoch: Epoch,
        round: u64,
        quorum_now: usize,
        usable: Duration,
    ) -> Option<Won> {
        if self.epoch != Some(epoch) {
            return None;
        }
        let r = self.rounds.get_mut(&round)?;
        if r.roster.as_ref().is_some_and(|ro| !ro.admits(from, life)) {
            return None;
        }
        r.grants.insert(from, life);
        if r.grants.len() < r.quorum.max(quorum_now) {
            return None;
        }
        let end = r.sent_at + usable;
        self.until = Some(self.until.map_or(end, |u| u.max(end)));
        let won = Won {
            roster: r.roster.clone(),
            grants: r.grants.clone(),
        };
        // Earlier rounds were sent earlier: they can only earn an earlier end.
        self.rounds.retain(|&id, _| id > round);
        Some(won)
    }
}
