//! The node: one sans-IO state machine with a quinn-proto-style API.
//!
//! ```text
//! Node::new(config, identity, schema, seed, restored, now)  // start (restored: from disk)
//! node.handle_datagram(now, from, &bytes)   // a packet from a peer
//! node.handle_stream(now, from, &bytes)     // a whole stream message from a peer
//! node.handle_command(now, command)         // a local request
//! node.handle_timeout(now)                  // a deadline from poll_timeout passed
//! node.poll_timeout() -> Option<Millis>     // when to call handle_timeout next
//! node.poll_output()  -> Option<Output>     // Transmit | Persist | Event, in order
//! node.view()         -> NodeView           // read-only: members, state, leadership
//! ```
//!
//! `now` is a [`Now`]: the monotonic and the wall clock, read together at each call.
//! The driver owns all I/O. It must drain `poll_output` after every `handle_*` call,
//! commit each `Persist` before carrying out any later `Transmit`, and call
//! `handle_timeout` no later than `poll_timeout` asks. Given the same seed and the
//! same sequence of calls, a node produces the same outputs, byte for byte.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::config::{Config, ConfigError, Identity, MemberMeta};
use crate::event::Event;
use crate::failover::{Candidate, Epoch, Failover, SwitchoverError};
use crate::id::{Addr, Incarnation, Life, NodeId, Origin};
use crate::identity::{Bindings, Verdict};
use crate::membership::{Member, Membership, MembershipStats};
use crate::outbox::{Effect, Outbox};
use crate::persist::{PersistBatch, PersistItem, Restored};
use crate::rng::DetRng;
use crate::state::hlc::Hlc;
use crate::state::record::{CollectionId, RecordBytes, RecordError, RecordId, Schema};
use crate::state::replica::Replica;
use crate::state::store::{Key, Usage, Value};
use crate::time::{Millis, Now};
use crate::view::NodeView;
use crate::wire::{self, Channel, DecodeError, Message, Rumor, MAX_APP_PAYLOAD};

/// A request from the node's own process.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Join the cluster through these seed addresses.
    Join {
        /// Gossip addresses of members (or of nodes joining too); kept for rejoining.
        seeds: Vec<Addr>,
    },
    /// More seed addresses, learnt while running (a seed name that resolved only
    /// after start-up, as a StatefulSet's later pods do): kept with the others for
    /// rejoining, and a node that is alone starts joining through them at once.
    AddSeeds {
        /// The addresses learnt.
        seeds: Vec<Addr>,
    },
    /// Leave gracefully; an `Event::Local(LocalChange::Left)` follows when done.
    Leave,
    /// Announce new metadata.
    UpdateMeta(MemberMeta),
    /// Spread an opaque payload to every member.
    Broadcast(Vec<u8>),
    /// Create or replace a record. The node answers with the write's timestamp;
    /// the write is durable once the `Persist` batch that follows is committed.
    /// The node's [`Schema`] must accept `record` as one of `collection` under `id`.
    Put {
        /// The record's collection (the schema's numbering).
        collection: CollectionId,
        /// The record's id within it.
        id: RecordId,
        /// The record in the schema's encoding.
        record: RecordBytes,
    },
    /// Delete a record (a tombstone, replicated like any write).
    Delete {
        /// The record's collection.
        collection: CollectionId,
        /// The record's id within it.
        id: RecordId,
    },
    /// Add to this node's usage of a budget in a period (published in batches).
    RecordUsage {
        /// The budget record it counts against.
        budget: RecordId,
        /// The budget's period index (`Schema::period_index`).
        period: u64,
        /// What to add (the counter only grows).
        usage: Usage,
    },
    /// Hand leadership to `to` (this node must be the leader).
    Switchover {
        /// A live serving voter with this node's settings.
        to: NodeId,
    },
    /// Stop counting `node` as a voter (an operator's decision that a member
    /// which failed, or left unseen, is gone for good), and release its id → life
    /// binding: the id may come back as a new life (a lost disk, a replaced key),
    /// which the leader then admits as a new member.
    ForgetMember {
        /// The member that is gone.
        node: NodeId,
    },
    /// Bind `node` to `life` on an operator's word (`cluster.admission: manual`:
    /// the pending (id, life) is accepted from now on).
    AdmitMember {
        /// The id that waits.
        node: NodeId,
        /// The life to accept for it.
        life: Life,
    },
    /// A message of this node's quota holder (an ask or a release, see
    /// [`crate::quota::Holder`]) for the grantor `to` the holder named (the lease
    /// holder it knows, or the grantor that recalled): sent there, or handled here
    /// when that is this node.
    Quota {
        /// The grantor.
        to: NodeId,
        /// The message.
        message: crate::quota::QuotaMessage,
    },
}

/// A command the node refused; the node's state is unchanged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// A broadcast payload above [`MAX_APP_PAYLOAD`] bytes.
    #[error("broadcast payload of {0} bytes exceeds the {MAX_APP_PAYLOAD}-byte limit")]
    PayloadTooLarge(usize),
    /// `UpdateMeta` with metadata that does not validate.
    #[error("invalid metadata: {0}")]
    InvalidMeta(ConfigError),
    /// Any command after the node left.
    #[error("the node has left the cluster")]
    Left,
    /// `Put` of a record that does not validate (or whose id does not match).
    #[error("invalid record: {0}")]
    InvalidRecord(RecordError),
    /// `Switchover` refused: single_node mode, not the leader, the target already
    /// leads or may not lead.
    #[error("switchover refused: {0}")]
    Switchover(SwitchoverError),
}

/// Bytes to send to a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// The peer's gossip address.
    pub to: Addr,
    /// Datagram (gossip, probes, leases) or stream (anti-entropy sync).
    pub channel: Channel,
    /// The encoded envelope, ready to send as it is.
    pub bytes: Vec<u8>,
}

/// What the driver must do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send these bytes (after committing every earlier `Persist`).
    Transmit(Transmit),
    /// Commit before any later `Transmit`.
    Persist(PersistBatch),
    /// Report: log, count, forward to subscribers.
    Event(Event),
}

/// Traffic counters, for metrics and the simulator's bandwidth figures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeMetrics {
    /// Packets handed to `handle_datagram`/`handle_stream`.
    pub packets_in: u64,
    /// Their bytes.
    pub bytes_in: u64,
    /// Transmits output.
    pub packets_out: u64,
    /// Their bytes.
    pub bytes_out: u64,
    /// Dropped packets, indexed by [`DecodeError::index`].
    pub dropped: [u64; DecodeError::ALL.len()],
    /// Packets dropped because their sender (id, life) did not match the life
    /// that id is bound to (drop reason `identity_mismatch`).
    pub identity_mismatch: u64,
    /// Packets dropped because their sender waits for an operator's admission
    /// (drop reason `pending_admission`).
    pub pending_admission: u64,
    /// Lease messages the failover machine addressed to a node this node's
    /// membership has no address for (a roster voter not yet, or no longer, known):
    /// not sent. The first for each such node is [`Event::FailoverUndeliverable`].
    pub failover_undeliverable: u64,
    /// Quota messages not sent: addressed to a node this node's membership has no
    /// address for, or a holder's ask while no lease holder is known.
    pub quota_undeliverable: u64,
    /// Membership's own counters (probes, suspicions, refutations, …).
    pub membership: MembershipStats,
}

impl NodeMetrics {
    /// Every inbound packet dropped, whatever the reason.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum::<u64>() + self.identity_mismatch + self.pending_admission
    }
}

/// One Aurora node's cluster state machine: membership, the replicated store and
/// the failover lease behind one quinn-proto-style surface. It does no I/O; the
/// driver calls it and carries out what it outputs.
///
/// # Method groups
///
/// * **Start:** [`Node::new`], with what the driver read back from disk
///   ([`Restored`]); drain [`Node::poll_output`] at once (the first batch persists
///   the new incarnation).
/// * **Inputs** (`handle_*`), each with the [`Now`] of the call:
///   [`Node::handle_datagram`] when a datagram arrived, [`Node::handle_stream`]
///   when a whole stream message arrived, [`Node::handle_command`] for each local
///   request, [`Node::handle_timeout`] when the clock reached
///   [`Node::poll_timeout`]'s deadline.
/// * **Outputs** (`poll_*`, `#[must_use]`), after every input:
///   [`Node::poll_output`] until it returns `None`, committing each
///   [`Output::Persist`] before carrying out any later [`Output::Transmit`]; then
///   [`Node::poll_timeout`] for the next deadline.
/// * **Reading** (no effect on the node, call any time): [`Node::view`],
///   [`Node::metrics`], [`Node::id`], [`Node::life`], [`Node::phase`],
///   [`Node::members`], [`Node::bindings`], [`Node::config`].
///
/// There is no other call order to keep: the wall clock comes with every call and
/// the failover session is derived at `new` from the restored incarnation.
#[derive(Clone, Debug)]
pub struct Node {
    config: Config,
    membership: Membership,
    replica: Replica,
    failover: Failover,
    /// `membership.changes()` when the failover last saw the member list.
    members_seen: Option<u64>,
    /// The highest epoch persisted so far.
    persisted_epoch: Epoch,
    /// The roster state last handed to the driver to persist.
    persisted_roster: crate::failover::RosterState,
    /// This process's storage life (stamped on every packet it sends).
    life: Life,
    /// Which life each id speaks with (see [`crate::identity`]).
    bindings: Bindings,
    outbox: Outbox,
    metrics: NodeMetrics,
    /// Nodes whose lease messages found no address since one last got through
    /// (so [`Event::FailoverUndeliverable`] is reported once per stretch).
    undeliverable: BTreeSet<NodeId>,
    /// Quota leases: this node's keeper and, while it holds the lease, its grantor.
    quota: quota::QuotaState,
}

impl Node {
    /// Call once per process start. Builds a node; then drain
    /// [`Node::poll_output`] before any other call. `seed` drives every random choice;
    /// `restored` is what the
    /// driver read back from disk (empty on first start); `schema` says which records
    /// are well formed (asked of every local and remote write). A restarted node
    /// comes back with an incarnation above any it announced, so its return
    /// overrides the cluster's memory of its death.
    pub fn new(
        config: Config,
        identity: Identity,
        schema: Arc<dyn Schema>,
        seed: u64,
        restored: Restored,
        now: Now,
    ) -> Result<Node, ConfigError> {
        let (wall, now) = (now.wall, now.mono);
        config.validate()?;
        identity.meta.validate()?;
        let mut outbox = Outbox::default();
        let mut failover = Failover::new(identity.id, config.failover.clone(), now, &mut outbox)?
            .with_life(identity.life);
        // Persisted even on first start: a restart must always come back above
        // whatever the cluster remembers of this node.
        let incarnation = restored
            .incarnation
            .map_or(Incarnation(0), Incarnation::next);
        // Lease rounds are numbered per session; the incarnation names this one.
        failover = failover.with_session(incarnation.0);
        let persisted_epoch = restored.epoch.unwrap_or(Epoch::ZERO);
        failover.restore_epoch(persisted_epoch);
        let persisted_roster = restored.roster.unwrap_or_default();
        failover.restore_roster(persisted_roster.clone());
        outbox.persist(PersistBatch {
            items: vec![PersistItem::Incarnation(incarnation)],
        });
        let life = identity.life;
        let mut bindings = Bindings::new(identity.id, life, config.admission, restored.bindings);
        // The roster is the stronger word on its voters.
        if let Some(r) = persisted_roster.roster.as_ref() {
            for (node, life) in r.members() {
                bindings.admit(node, life);
            }
        }
        let replica = Replica::new(
            Origin::new(identity.id, life),
            schema,
            config.state.clone(),
            restored.entries.into_values(),
            restored.own_seq,
            // A separate stream, so state traffic does not shift membership's choices.
            DetRng::from_seed(seed ^ 0x5747_e5ee_d000_0001),
            now,
        );
        let membership = Membership::new(
            identity,
            incarnation,
            config.timing.clone(),
            DetRng::from_seed(seed),
            now,
        );
        let mut node = Node {
            config,
            membership,
            replica,
            failover,
            members_seen: None,
            persisted_epoch,
            persisted_roster,
            life,
            bindings,
            outbox,
            metrics: NodeMetrics::default(),
            undeliverable: BTreeSet::new(),
            quota: quota::QuotaState::restore(restored.quota_fence, restored.quota, incarnation.0),
        };
        node.pump_failover(now);
        // The first wall reading decides whether this node was away so long that
        // it must resync from scratch (after the failover's start, as the old
        // separate call did, so the output order is what it was).
        node.replica.set_wall_clock(now, wall, &mut node.outbox);
        Ok(node)
    }

    /// Call when a datagram arrived from `from` (the transport's peer address);
    /// then drain [`Node::poll_output`]. Malformed or foreign packets are dropped
    /// and counted in [`NodeMetrics`], never an error.
    pub fn handle_datagram(&mut self, now: Now, from: Addr, bytes: &[u8]) {
        let now = self.observe(now);
        self.handle_packet(now, from, Channel::Datagram, bytes);
    }

    /// Call when a whole message arrived on a stream from `from`; then drain
    /// [`Node::poll_output`]. Same rules as [`Node::handle_datagram`].
    pub fn handle_stream(&mut self, now: Now, from: Addr, bytes: &[u8]) {
        let now = self.observe(now);
        self.handle_packet(now, from, Channel::Stream, bytes);
    }

    /// Takes the wall clock of this call; returns its monotonic reading.
    fn observe(&mut self, now: Now) -> Millis {
        self.replica
            .set_wall_clock(now.mono, now.wall, &mut self.outbox);
        self.quota.wall = now.wall;
        now.mono
    }

    fn handle_packet(&mut self, now: Millis, from: Addr, channel: Channel, bytes: &[u8]) {
        self.metrics.packets_in += 1;
        self.metrics.bytes_in += bytes.len() as u64;
        let envelope = match wire::decode(self.config.cluster, channel, bytes) {
            Ok(envelope) => envelope,
            Err(e) => {
                self.metrics.dropped[e.index()] += 1;
                return;
            }
        };
        let (sender, life, message) = (envelope.sender, envelope.life, envelope.message);
        if !self.admit_sender(now, from, sender, life) {
            return;
        }
        match message {
            Message::SyncRequest { .. }
            | Message::SyncResponse { .. }
            | Message::SyncPush { .. } => {
                if !self.membership.has_left() {
                    self.replica
                        .handle_sync(now, from, sender, message, &mut self.outbox);
                }
            }
            Message::Lease(lease) => {
                if !self.membership.has_left() {
                    self.failover
                        .handle_lease(now, sender, life, lease, &mut self.outbox);
                }
            }
            Message::Quota(quota) => {
                if !self.membership.has_left() {
                    self.handle_quota(now, sender, life, quota);
                }
            }
            _ => self
                .membership
                .handle_message(now, from, sender, message, &mut self.outbox),
        }
        self.exchange_rumors(now);
        self.pump_failover(now);
    }

    /// Checks a decoded packet's sender against its binding: accepts it (binding
    /// it on first contact under automatic admission) or drops and counts it.
    fn admit_sender(&mut self, now: Millis, from: Addr, sender: NodeId, life: Life) -> bool {
        match self.bindings.check(now, sender, life, from) {
            Verdict::Bound => true,
            Verdict::Admitted => {
                self.persist_binding(sender, Some(life));
                true
            }
            Verdict::Mismatch { bound, first } => {
                self.metrics.identity_mismatch += 1;
                if first {
                    self.outbox.event(Event::IdentityMismatch {
                        node: sender,
                        presented: life,
                        bound,
                        from,
                    });
                }
                false
            }
            Verdict::Pending { first } => {
                self.metrics.pending_admission += 1;
                if first {
                    self.outbox.event(Event::AdmissionPending {
                        node: sender,
                        life,
                        from,
                    });
                }
                false
            }
        }
    }

    fn persist_binding(&mut self, node: NodeId, life: Option<Life>) {
        self.outbox.persist(PersistBatch {
            items: vec![PersistItem::Binding { node, life }],
        });
    }

    /// A roster was adopted: its voters are bound to the lives it names, and a
    /// voter it dropped is released (how a `forget` on the leader releases the id
    /// on every node that follows the roster).
    fn bind_roster(&mut self, old: Option<&crate::failover::Roster>) {
        let new = self.failover.roster().cloned();
        let mut changes = Vec::new();
        if let Some(old) = old {
            for (node, life) in old.members() {
                let kept = new.as_ref().is_some_and(|r| r.contains(node));
                if !kept && self.bindings.life_of(node) == Some(life) && self.bindings.release(node)
                {
                    changes.push(PersistItem::Binding { node, life: None });
                }
            }
        }
        for (node, life) in new.iter().flat_map(|r| r.members()) {
            if self.bindings.admit(node, life) {
                changes.push(PersistItem::Binding {
                    node,
                    life: Some(life),
                });
            }
        }
        if !changes.is_empty() {
            self.outbox.persist(PersistBatch { items: changes });
        }
    }

    /// Feeds the failover machine the member list when it changed, then keeps the
    /// persistence contract for lease traffic: it queues the batch that persists a
    /// grown epoch or a changed roster first, and only then releases the
    /// outbox's held lease messages (resolving each voter's id to its address)
    /// and failover events behind it. Called at the end of every `handle_*` (and
    /// of `new`), so nothing stays held while the driver polls.
    fn pump_failover(&mut self, now: Millis) {
        for node in self.membership.take_departed() {
            self.failover.forget(now, node, &mut self.outbox);
        }
        let changes = self.membership.changes();
        if self.members_seen != Some(changes) {
            self.members_seen = Some(changes);
            let live = self.candidates();
            self.failover.handle_members(now, &live, &mut self.outbox);
        }
        let mut items = Vec::new();
        let epoch = self.failover.durable_epoch();
        // Holds because the failover machine only ever raises its epochs (`max`),
        // from the floor restored at start: epochs only grow, across restarts too.
        debug_assert!(
            epoch >= self.persisted_epoch,
            "durable epoch {epoch:?} below the persisted {:?}",
            self.persisted_epoch
        );
        if epoch > self.persisted_epoch {
            self.persisted_epoch = epoch;
            items.push(PersistItem::Epoch(epoch));
        }
        if self.failover.durable_roster() != &self.persisted_roster {
            // Holds because a node adopts only newer versions and the leader makes
            // each new one above the last: a roster persisted is never replaced by
            // an older one (a restart would otherwise bring the older one back).
            debug_assert!(
                self.failover.durable_roster().version() >= self.persisted_roster.version(),
                "roster {:?} replaces the persisted {:?}",
                self.failover.durable_roster().version(),
                self.persisted_roster.version()
            );
            let old = std::mem::replace(
                &mut self.persisted_roster,
                self.failover.durable_roster().clone(),
            );
            items.push(PersistItem::Roster(Box::new(self.persisted_roster.clone())));
            if old.roster != self.persisted_roster.roster {
                self.bind_roster(old.roster.as_ref());
            }
        }
        if !items.is_empty() {
            self.outbox.persist(PersistBatch { items });
        }
        // Only now, behind the batch just queued, may lease traffic go out.
        while let Some((to, message)) = self.outbox.release_lease() {
            let addr = if to == self.id() {
                None
            } else {
                self.membership.member(to).map(|m| m.addr)
            };
            match addr {
                Some(addr) => {
                    self.undeliverable.remove(&to);
                    self.outbox
                        .send(addr, Channel::Datagram, Message::Lease(message));
                }
                // Lease traffic to itself is settled inside the failover machine.
                None if to == self.id() => {}
                // A voter this node's membership does not know (yet, or any more):
                // the message cannot go anywhere. Counted every time, reported once
                // until a message to it gets through again.
                None => {
                    self.metrics.failover_undeliverable += 1;
                    if self.undeliverable.insert(to) {
                        self.outbox.event(Event::FailoverUndeliverable { to });
                    }
                }
            }
        }
        while let Some(event) = self.outbox.release_failover_event() {
            self.outbox.event(Event::Failover(event));
        }
        self.sync_grantor(now);
    }

    /// This node and every live member, as failover candidates. A node still
    /// joining offers only itself: the members it knows may be other newcomers
    /// that have not reached the cluster either, and two of them must not make a
    /// majority of their own.
    fn candidates(&self) -> Vec<Candidate> {
        let me = Candidate::from_meta(
            self.id(),
            Some(self.life),
            self.membership.addr(),
            self.membership.meta(),
        );
        if self.membership.is_joining() {
            return vec![me];
        }
        let others = self
            .membership
            .members()
            .filter(|m| m.is_active())
            .map(|m| Candidate::from_meta(m.id, self.bindings.life_of(m.id), m.addr, &m.meta));
        std::iter::once(me).chain(others).collect()
    }

    /// Hands gossiped writes to the replica, and the replica's writes to gossip.
    fn exchange_rumors(&mut self, now: Millis) {
        for entry in self.membership.take_state_rumors() {
            self.replica.handle_rumor(now, entry, &mut self.outbox);
        }
        for entry in self.replica.take_rumors() {
            self.membership.queue_rumor(Rumor::State(entry));
        }
    }

    /// Call for each local request (an admin write, a join, a switchover); then
    /// drain [`Node::poll_output`]. Writes answer with their timestamp and are
    /// durable once the `Persist` that follows is committed; a refused command
    /// leaves the node unchanged.
    pub fn handle_command(
        &mut self,
        now: Now,
        command: Command,
    ) -> Result<Option<Hlc>, CommandError> {
        let now = self.observe(now);
        if self.membership.has_left() {
            return Err(CommandError::Left);
        }
        let written = match command {
            Command::Put {
                collection,
                id,
                record,
            } => {
                self.replica
                    .schema()
                    .validate(collection, &id, record.as_slice())
                    .map_err(CommandError::InvalidRecord)?;
                let key = Key::Record(collection, id);
                Some(
                    self.replica
                        .write(now, key, Some(Value::Record(record)), &mut self.outbox),
                )
            }
            Command::Delete { collection, id } => {
                let key = Key::Record(collection, id);
                Some(self.replica.write(now, key, None, &mut self.outbox))
            }
            Command::RecordUsage {
                budget,
                period,
                usage,
            } => {
                self.replica.record_usage(budget, period, usage);
                None
            }
            Command::ForgetMember { node } => {
                self.failover.forget(now, node, &mut self.outbox);
                if self.bindings.release(node) {
                    self.persist_binding(node, None);
                }
                None
            }
            Command::AdmitMember { node, life } => {
                if self.bindings.admit(node, life) {
                    self.persist_binding(node, Some(life));
                }
                None
            }
            Command::Switchover { to } => {
                self.failover
                    .switchover(now, to, &mut self.outbox)
                    .map_err(CommandError::Switchover)?;
                None
            }
            Command::Quota { to, message } => {
                self.quota_from_holder(now, to, message);
                None
            }
            Command::Leave => {
                // Usage recorded since the last flush is written now: a graceful
                // restart loses none.
                self.replica.flush_usage(now, &mut self.outbox);
                self.failover.resign(now, &mut self.outbox);
                self.membership_command(now, Command::Leave)?;
                None
            }
            other => {
                self.membership_command(now, other)?;
                None
            }
        };
        self.exchange_rumors(now);
        self.pump_failover(now);
        Ok(written.map(|e| e.hlc))
    }

    fn membership_command(&mut self, now: Millis, command: Command) -> Result<(), CommandError> {
        match command {
            Command::Join { seeds } => self.membership.join(now, seeds, &mut self.outbox),
            Command::AddSeeds { seeds } => self.membership.add_seeds(now, seeds, &mut self.outbox),
            Command::Leave => self.membership.leave(now, &mut self.outbox),
            Command::UpdateMeta(meta) => {
                meta.validate().map_err(CommandError::InvalidMeta)?;
                self.membership.update_meta(meta, &mut self.outbox);
            }
            Command::Broadcast(payload) => {
                if payload.len() > MAX_APP_PAYLOAD {
                    return Err(CommandError::PayloadTooLarge(payload.len()));
                }
                self.membership.broadcast(now, payload);
            }
            Command::Put { .. }
            | Command::Delete { .. }
            | Command::RecordUsage { .. }
            | Command::Switchover { .. }
            | Command::ForgetMember { .. }
            | Command::AdmitMember { .. }
            | Command::Quota { .. } => {}
        }
        Ok(())
    }

    /// Call before stopping without leaving (a single node, a stop on purpose), then
    /// drain [`Node::poll_output`]: the usage recorded since the last usage flush is
    /// written into the store now instead of at the next flush, so it is persisted
    /// with that drain and a stop loses none. [`Command::Leave`] does this itself.
    pub fn publish_usage(&mut self, now: Now) {
        let now = self.observe(now);
        self.replica.flush_usage(now, &mut self.outbox);
        self.exchange_rumors(now);
    }

    /// Call when the monotonic clock reached the deadline [`Node::poll_timeout`]
    /// gave (calling early or late is harmless: what is not due waits, what is
    /// overdue runs now); then drain [`Node::poll_output`].
    pub fn handle_timeout(&mut self, now: Now) {
        let now = self.observe(now);
        self.membership.handle_timeout(now, &mut self.outbox);
        if self.membership.has_left() {
            return;
        }
        if self.failover.poll_timeout().is_some_and(|t| t <= now) {
            self.failover.handle_timeout(now, &mut self.outbox);
            // The lease timers are where membership is re-read too ("every tick").
            self.members_seen = None;
        }
        // The peer lists cost O(members): build them only when a replica timer is due.
        if self.replica.poll_timeout().is_some_and(|t| t <= now) {
            let alive = self.membership.alive_addrs();
            let failed = self.membership.failed_addrs();
            self.replica
                .handle_timeout(now, &alive, &failed, &mut self.outbox);
        }
        self.quota_timeout(now);
        self.exchange_rumors(now);
        self.pump_failover(now);
    }

    /// When to call [`Node::handle_timeout`] next, on the monotonic clock; ask
    /// again after every `handle_*` call (any of them may move it). `None`: no
    /// timer is set (a node that has left).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Millis> {
        let membership = self.membership.poll_timeout();
        if self.membership.has_left() {
            return membership;
        }
        [
            self.replica.poll_timeout(),
            self.failover.poll_timeout(),
            self.quota.poll_timeout(),
        ]
        .into_iter()
        .fold(membership, |a, b| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    /// Call after every `handle_*` call until it returns `None`: the next thing
    /// to do, in the order the node decided it. Commit each [`Output::Persist`]
    /// before carrying out any later [`Output::Transmit`].
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        let effect = self.outbox.pop()?;
        Some(match effect {
            Effect::Send {
                to,
                channel,
                message,
            } => {
                let bytes = wire::encode(
                    self.config.cluster,
                    self.membership.id(),
                    self.life,
                    &message,
                );
                self.metrics.packets_out += 1;
                self.metrics.bytes_out += bytes.len() as u64;
                Output::Transmit(Transmit { to, channel, bytes })
            }
            Effect::Persist(batch) => Output::Persist(batch),
            Effect::Event(event) => Output::Event(event),
        })
    }

    // ---- read access -----------------------------------------------------------

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.membership.id()
    }

    /// This process's storage life.
    pub fn life(&self) -> Life {
        self.life
    }

    /// The id → life bindings, and the strangers turned away (pending admission,
    /// or presenting another life than their id's).
    pub fn bindings(&self) -> &Bindings {
        &self.bindings
    }

    /// Joining, active, leaving or left.
    pub fn phase(&self) -> crate::membership::Phase {
        self.membership.phase()
    }

    /// A read-only look at membership, the replicated state and leadership
    /// (see [`NodeView`]): what drivers, the simulator and fuzzers read.
    #[must_use]
    pub fn view(&self) -> NodeView<'_> {
        NodeView::new(
            &self.membership,
            &self.replica,
            &self.failover,
            (self.quota.keeper(), self.quota.grantor()),
        )
    }

    /// Gives this node's quota grantors a deliberate mistake, for the simulator to
    /// catch (feature `testing` only).
    #[cfg(feature = "testing")]
    pub fn inject_quota_bug(&mut self, bug: crate::quota::QuotaBug) {
        self.quota.bug = Some(bug);
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Every other member this node knows, by id.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.membership.members()
    }

    /// The counters now (a copy).
    #[must_use]
    pub fn metrics(&self) -> NodeMetrics {
        NodeMetrics {
            membership: self.membership.stats(),
            ..self.metrics.clone()
        }
    }
}

#[cfg(test)]
mod tests;

mod quota;

#[cfg(test)]
mod lease_tests;
