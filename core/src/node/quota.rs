//! Quota leases inside the node: the messages between this node's keeper, its
//! grantor (while it holds the failover lease) and the holder, which lives with the
//! application (it admits on the request path) and speaks through
//! [`Command::Quota`](super::Command::Quota) and hears through
//! [`Event::Quota`](crate::Event::Quota).
//!
//! The persistence contract holds here as everywhere: what a keeper must persist is
//! queued as a batch before any message it answers with, so an acknowledgement never
//! leaves before the entry it acknowledges is on disk.

use std::collections::VecDeque;

use super::Node;
use crate::event::Event;
use crate::failover::Epoch;
use crate::id::{Life, NodeId};
use crate::persist::{PersistBatch, PersistItem};
use crate::quota::{Grantor, Keeper, Ledger, Persisted, QuotaMessage, QuotaOut, QuotaTiming};
use crate::time::Millis;
use crate::wire::{Channel, Message};

/// The node's quota machines.
#[derive(Clone, Debug)]
pub(super) struct QuotaState {
    keeper: Keeper,
    grantor: Option<Grantor>,
    timing: QuotaTiming,
    /// The last record number any grantor of this process used: a grantor started
    /// again at the same epoch numbers on from here. The high 32 bits are the
    /// process's session (its starting incarnation, like the lease rounds'), so a
    /// restarted node never reuses the numbers of its previous life either.
    seq: u64,
    /// The wall clock of the node's latest call (ms since the Unix epoch): a grantor
    /// refuses windows far ahead of it.
    pub(super) wall: u64,
    /// A deliberate mistake for the grantors of this node (feature `testing`).
    #[cfg(feature = "testing")]
    pub(super) bug: Option<crate::quota::QuotaBug>,
}

impl QuotaState {
    pub(super) fn restore(fence: Epoch, ledger: Ledger, session: u64) -> QuotaState {
        QuotaState {
            keeper: Keeper::restore(fence, ledger.entries()),
            grantor: None,
            timing: QuotaTiming::default(),
            seq: session << 32,
            wall: 0,
            #[cfg(feature = "testing")]
            bug: None,
        }
    }

    pub(super) fn poll_timeout(&self) -> Option<Millis> {
        self.grantor.as_ref().and_then(Grantor::poll_timeout)
    }

    /// The grantor, while this node holds the lease.
    pub(super) fn grantor(&self) -> Option<&Grantor> {
        self.grantor.as_ref()
    }

    /// This node's keeper.
    pub(super) fn keeper(&self) -> &Keeper {
        &self.keeper
    }
}

/// Which channel a quota message rides: a collected copy may be large (a stream);
/// everything else is a few dozen bytes (a datagram).
fn channel(message: &QuotaMessage) -> Channel {
    match message {
        QuotaMessage::Copy { .. } => Channel::Stream,
        _ => Channel::Datagram,
    }
}

impl Node {
    /// A quota message from `sender` (this node itself for what it sends itself).
    pub(super) fn handle_quota(
        &mut self,
        now: Millis,
        sender: NodeId,
        life: Life,
        message: QuotaMessage,
    ) {
        let mut work = VecDeque::from([(sender, life, message)]);
        while let Some((from, life, message)) = work.pop_front() {
            let out = self.route_quota(now, from, life, message);
            for (to, message) in self.persist_quota(out) {
                work.extend(self.send_quota(to, message));
            }
        }
    }

    /// Hands one message to the machine it is for; what it answers.
    fn route_quota(
        &mut self,
        now: Millis,
        from: NodeId,
        life: Life,
        message: QuotaMessage,
    ) -> QuotaOut {
        match &message {
            QuotaMessage::Record { .. } | QuotaMessage::Collect { .. } => {
                if self.is_quota_keeper() && self.sender_votes(from, life) {
                    self.quota.keeper.handle(from, &message)
                } else {
                    QuotaOut::default()
                }
            }
            QuotaMessage::Grant { .. }
            | QuotaMessage::Exhausted { .. }
            | QuotaMessage::Recall { .. } => {
                self.outbox.event(Event::Quota { from, message });
                QuotaOut::default()
            }
            QuotaMessage::Ask { .. } | QuotaMessage::Release { .. } => {
                // A holder's word starts the grantor of this leadership, if none
                // runs yet: a cluster that uses no quota sends no quota traffic.
                let mut out = self.start_grantor(now);
                out.extend(self.grantor_handle(now, from, message));
                out
            }
            QuotaMessage::Recorded { .. }
            | QuotaMessage::Fenced { .. }
            | QuotaMessage::Copy { .. } => self.grantor_handle(now, from, message),
        }
    }

    fn grantor_handle(&mut self, now: Millis, from: NodeId, message: QuotaMessage) -> QuotaOut {
        let wall = self.quota.wall;
        match &mut self.quota.grantor {
            Some(grantor) => {
                grantor.set_wall(wall);
                let out = grantor.handle(now, from, message);
                self.quota.seq = self.quota.seq.max(grantor.seq());
                out
            }
            None => QuotaOut::default(),
        }
    }

    /// Starts the grantor of this node's leadership (it collects first) unless one
    /// runs; nothing when this node does not hold the lease.
    fn start_grantor(&mut self, now: Millis) -> QuotaOut {
        let Some(epoch) = self.failover.leadership(now) else {
            return QuotaOut::default();
        };
        if self.quota.grantor.is_some() {
            return QuotaOut::default();
        }
        let voters = match self.failover.roster() {
            Some(roster) => roster.voters.clone(),
            // single_node: this node is the whole electorate.
            None if !self.config.failover.mode.elects() => vec![self.id()],
            // A lease holder always follows a roster; without one there is nobody
            // whose majority could be known to hold the grants.
            None => return QuotaOut::default(),
        };
        let (grantor, out) = Grantor::new(self.id(), epoch, voters, self.quota.timing, now);
        #[cfg(feature = "testing")]
        let grantor = grantor.with_bug(self.quota.bug);
        self.quota.grantor = Some(grantor.with_seq(self.quota.seq));
        out
    }

    /// Queues the batch of what `out` must persist (before anything sent after it)
    /// and returns the messages to send.
    fn persist_quota(&mut self, out: QuotaOut) -> Vec<(NodeId, QuotaMessage)> {
        if !out.persist.is_empty() {
            let items = out
                .persist
                .into_iter()
                .map(|p| match p {
                    Persisted::Fence(epoch) => PersistItem::QuotaFence(epoch),
                    Persisted::Entry(entry) => PersistItem::QuotaEntry(entry),
                    Persisted::Forget(key, holder) => PersistItem::QuotaForget { key, holder },
                })
                .collect();
            self.outbox.persist(PersistBatch { items });
        }
        out.sends
    }

    /// Sends `message` to `to`; a message to this node itself comes back to be
    /// handled here.
    fn send_quota(
        &mut self,
        to: NodeId,
        message: QuotaMessage,
    ) -> Option<(NodeId, Life, QuotaMessage)> {
        if to == self.id() {
            return Some((to, self.life, message));
        }
        match self.membership.member(to).map(|m| m.addr) {
            Some(addr) => {
                let channel = channel(&message);
                self.outbox.send(addr, channel, Message::Quota(message));
            }
            None => self.metrics.quota_undeliverable += 1,
        }
        None
    }

    /// The holder's ask or release, for the grantor `to`.
    pub(super) fn quota_from_holder(&mut self, now: Millis, to: NodeId, message: QuotaMessage) {
        if let Some((from, life, message)) = self.send_quota(to, message) {
            self.handle_quota(now, from, life, message);
        }
    }

    /// Drops the grantor when this node no longer holds the lease at its epoch (a
    /// later leadership of this node starts a new one, at its own epoch, on the next
    /// ask). Called at the end of every `handle_*`.
    pub(super) fn sync_grantor(&mut self, now: Millis) {
        let leadership = self.failover.leadership(now);
        if self
            .quota
            .grantor
            .as_ref()
            .is_some_and(|g| Some(g.epoch()) != leadership)
        {
            self.quota.grantor = None;
        }
    }

    /// Resends what the grantor has not had answered.
    pub(super) fn quota_timeout(&mut self, now: Millis) {
        let Some(grantor) = &mut self.quota.grantor else {
            return;
        };
        if grantor.poll_timeout().is_none_or(|t| t > now) {
            return;
        }
        let out = grantor.handle_timeout(now);
        for (to, message) in self.persist_quota(out) {
            if let Some((from, life, message)) = self.send_quota(to, message) {
                self.handle_quota(now, from, life, message);
            }
        }
    }

    /// Whether this node keeps a copy of the ledger: a voter of the roster in its
    /// current life (every node in `single_node`).
    fn is_quota_keeper(&self) -> bool {
        match self.failover.roster() {
            Some(roster) => roster.admits(self.id(), self.life),
            None => !self.config.failover.mode.elects(),
        }
    }

    /// Whether `from` speaking in `life` may ask a keeper: a voter of the roster in
    /// that life (the grantor is the lease holder, always a voter), or this node.
    fn sender_votes(&self, from: NodeId, life: Life) -> bool {
        if from == self.id() {
            return true;
        }
        self.failover
            .roster()
            .is_some_and(|roster| roster.admits(from, life))
    }
}
