//! SWIM membership with the Lifeguard refinements, as HashiCorp memberlist does it.
//!
//! * **Probing.** Every probe interval the next member of a shuffled round-robin
//!   list is pinged. No ack within the probe timeout: `indirect_checks` other members
//!   are asked to ping it (`PingReq`). No ack by the end of the interval: the member
//!   is suspected.
//! * **Suspicion.** A suspect has a timer ([`suspicion`]) that shrinks with every
//!   independent accusation. When it runs out the member is declared dead. A member
//!   that hears it is suspected refutes by announcing a higher incarnation; a claim
//!   with a lower incarnation than the one known is always ignored.
//! * **Lifeguard.** Timeouts are scaled by the local health multiplier
//!   ([`awareness`]); relays send nacks so a prober can tell its own trouble from the
//!   target's; a suspect being probed is told directly that it is suspected.
//! * **Dissemination.** Rumours piggyback on pings, acks and gossip rounds
//!   ([`rumors`]), each sent about `retransmit_mult × log10(N+1)` times. A push-pull
//!   exchange of full member lists with one random member repairs anything missed.
//! * **Lifecycle.** Joining is a push-pull with a seed. Leaving is a `Left` rumour
//!   gossiped for a moment before the node stops. Dead and departed members are
//!   reaped after `reap_after`, but their incarnation is remembered as a tombstone
//!   for `tombstone_ttl`, so stale state cannot revive them (memberlist #312). A node
//!   that restarts comes back with a higher incarnation, at any address (#157).

pub mod awareness;
pub mod member;
pub mod rumors;
pub mod suspicion;

pub use member::{LocalChange, Member, MemberChange};

use core::time::Duration;
use std::collections::BTreeMap;

use crate::config::{Identity, MemberMeta, Timing};
use crate::event::Event;
use crate::id::{Addr, Incarnation, NodeId};
use crate::outbox::Outbox;
use crate::persist::{PersistBatch, PersistItem};
use crate::rng::DetRng;
use crate::time::Millis;
use crate::timers::Timers;
use crate::wire::{
    encoded_len, AppRumor, Channel, Liveness, MemberRecord, MemberUpdate, Message, PushPullKind,
    Rumor, Seq,
};

use awareness::Awareness;
use rumors::RumorQueue;
use suspicion::Suspicion;

/// The membership protocol's timers.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Probe,
    ProbeTimeout(Seq),
    RelayNack(Seq),
    RelayExpire(Seq),
    Gossip,
    PushPull,
    Heartbeat,
    Suspicion(NodeId),
    Reap,
    Reconnect,
    /// Extra push-pulls right after joining; the argument counts them.
    CatchUp(u8),
    JoinRetry,
    LeaveDone,
}

/// Where this node is in its own lifecycle.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Asking the seeds for the member list.
    Joining,
    Active,
    /// Gossiping its departure until the deadline.
    Leaving,
    /// Done: no timers, no sends.
    Left,
}

/// The probe in flight.
#[derive(Clone, Debug)]
struct Probe {
    seq: Seq,
    target: NodeId,
    acked: bool,
    expected_nacks: u32,
    nacks: u32,
}

/// What is remembered of a reaped member.
#[derive(Clone, Debug)]
struct Tombstone {
    incarnation: Incarnation,
    addr: Addr,
    /// Left on purpose (never reconnected to) rather than failed.
    left: bool,
    expires: Millis,
}

/// A probe this node makes on another's behalf (it received a `PingReq`).
#[derive(Clone, Debug)]
struct Relay {
    requester: Addr,
    requester_seq: Seq,
}

/// Counters for metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MembershipStats {
    pub probes: u64,
    pub probe_failures: u64,
    pub indirect_probes: u64,
    pub refutations: u64,
    pub misdirected_pings: u64,
    pub stale_updates: u64,
    pub rumors_dropped: u64,
}

/// Bytes reserved in a datagram for the header and the message around its rumours.
const PACKET_OVERHEAD: usize = crate::wire::HEADER_LEN + 48;
/// Relays nack after this fraction of the probe timeout, as memberlist does.
const NACK_FRACTION: f64 = 0.8;
/// A node that just joined got the seed's member list as of that instant; when
/// many nodes join together (a cold start) the seed knew few of them yet. A few
/// early push-pulls (after 2, 4 and 8 s) fetch the rest in bulk instead of waiting
/// up to a full `push_pull_interval` or for a thousand rumours one by one.
const CATCH_UP_FIRST: Duration = Duration::from_secs(2);
const CATCH_UP_ROUNDS: u8 = 3;
/// Application broadcasts are remembered this long for de-duplication.
const APP_DEDUP_WINDOW: Duration = Duration::from_secs(120);

/// One node's membership state machine.
#[derive(Clone, Debug)]
pub struct Membership {
    id: NodeId,
    addr: Addr,
    meta: MemberMeta,
    incarnation: Incarnation,
    heartbeat: u64,
    phase: Phase,
    timing: Timing,
    members: BTreeMap<NodeId, Member>,
    /// Members reaped from `members`, remembered so stale state cannot revive them.
    tombstones: BTreeMap<NodeId, Tombstone>,
    /// Where this node joined through; asked again if it ever finds itself alone.
    seeds: Vec<Addr>,
    suspicions: BTreeMap<NodeId, Suspicion>,
    probe_order: Vec<NodeId>,
    probe_next: usize,
    /// Fresh suspects, probed out of turn so that confirmations, acks and the
    /// buddy-system warning come within one probe interval rather than whenever
    /// the round-robin reaches them.
    probe_soon: Vec<NodeId>,
    probe: Option<Probe>,
    relays: BTreeMap<Seq, Relay>,
    next_seq: Seq,
    awareness: Awareness,
    rumors: RumorQueue,
    app_seq: u64,
    app_seen: BTreeMap<(NodeId, u64), Millis>,
    timers: Timers<Timer>,
    rng: DetRng,
    stats: MembershipStats,
    /// Replicated writes that arrived as rumours, for the node to hand on.
    state_inbox: Vec<crate::state::store::Entry>,
    /// Counts changes to the member list, so others can tell when to look again.
    changes: u64,
    /// Members that left gracefully since the last call to `take_departed`.
    departed: Vec<NodeId>,
}

impl Membership {
    /// A node that knows nobody yet. `incarnation` is where it starts (above any it
    /// announced before a restart).
    pub(crate) fn new(
        identity: Identity,
        incarnation: Incarnation,
        timing: Timing,
        rng: DetRng,
        now: Millis,
    ) -> Membership {
        let mut m = Membership {
            id: identity.id,
            addr: identity.addr,
            meta: identity.meta,
            incarnation,
            heartbeat: 0,
            phase: Phase::Active,
            awareness: Awareness::new(timing.awareness_max_multiplier),
            timing,
            members: BTreeMap::new(),
            tombstones: BTreeMap::new(),
            seeds: Vec::new(),
            suspicions: BTreeMap::new(),
            probe_order: Vec::new(),
            probe_next: 0,
            probe_soon: Vec::new(),
            probe: None,
            relays: BTreeMap::new(),
            next_seq: 0,
            rumors: RumorQueue::default(),
            app_seq: 0,
            app_seen: BTreeMap::new(),
            timers: Timers::default(),
            rng,
            stats: MembershipStats::default(),
            state_inbox: Vec::new(),
            changes: 0,
            departed: Vec::new(),
        };
        // Stagger the periodic timers by a random phase, so nodes started together
        // do not probe and gossip in lock step.
        let t = m.timing.clone();
        for (timer, period) in [
            (Timer::Probe, t.probe_interval),
            (Timer::Gossip, t.gossip_interval),
            (Timer::PushPull, t.push_pull_interval),
            (Timer::Heartbeat, t.heartbeat_interval),
            (Timer::Reap, reap_period(&t)),
            (Timer::Reconnect, t.reconnect_interval),
        ] {
            let jitter = m.jitter(period);
            m.timers.set(now + jitter, timer);
        }
        m
    }

    // ---- queries -------------------------------------------------------------

    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn incarnation(&self) -> Incarnation {
        self.incarnation
    }

    pub fn heartbeat(&self) -> u64 {
        self.heartbeat
    }

    pub fn meta(&self) -> &MemberMeta {
        &self.meta
    }

    /// This node's gossip address.
    pub fn addr(&self) -> Addr {
        self.addr
    }

    /// Every other member this node knows (reaped ones excluded), by id.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    pub fn member(&self, id: NodeId) -> Option<&Member> {
        self.members.get(&id)
    }

    /// Alive and suspect members, this node excluded.
    pub fn active_count(&self) -> usize {
        self.members.values().filter(|m| m.is_active()).count()
    }

    pub fn awareness(&self) -> u32 {
        self.awareness.score()
    }

    pub fn stats(&self) -> MembershipStats {
        MembershipStats {
            rumors_dropped: self.rumors.dropped(),
            ..self.stats.clone()
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn is_joining(&self) -> bool {
        self.phase == Phase::Joining
    }

    pub fn has_left(&self) -> bool {
        self.phase == Phase::Left
    }

    pub fn poll_timeout(&self) -> Option<Millis> {
        self.timers.next()
    }

    /// Addresses of the members currently alive.
    pub fn alive_addrs(&self) -> Vec<Addr> {
        self.members
            .values()
            .filter(|m| m.liveness == Liveness::Alive)
            .map(|m| m.addr)
            .collect()
    }

    /// Addresses of members declared dead (not departed) and not yet reaped.
    pub fn failed_addrs(&self) -> Vec<Addr> {
        self.members
            .values()
            .filter(|m| m.liveness == Liveness::Dead)
            .map(|m| m.addr)
            .collect()
    }

    /// Reports a change in the member list (and moves the change counter).
    fn report(&mut self, out: &mut Outbox, node: NodeId, change: MemberChange) {
        self.changes += 1;
        out.event(Event::Member { node, change });
    }

    /// A counter that moves whenever the member list changes.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// Members that left gracefully since the last call.
    pub(crate) fn take_departed(&mut self) -> Vec<NodeId> {
        std::mem::take(&mut self.departed)
    }

    /// Replicated writes received as rumours since the last call.
    pub(crate) fn take_state_rumors(&mut self) -> Vec<crate::state::store::Entry> {
        std::mem::take(&mut self.state_inbox)
    }

    /// Queues a rumour to piggyback on gossip.
    pub(crate) fn queue_rumor(&mut self, rumor: Rumor) {
        self.rumors.push(rumor);
    }

    // ---- commands --------------------------------------------------------------

    /// Starts joining through `seeds` (addresses; their ids are learnt from the
    /// answer). With no seed other than itself the node forms a cluster of one.
    pub(crate) fn join(&mut self, now: Millis, seeds: Vec<Addr>, out: &mut Outbox) {
        self.seeds = seeds.into_iter().filter(|s| *s != self.addr).collect();
        if self.seeds.is_empty() || self.phase != Phase::Active {
            return;
        }
        self.phase = Phase::Joining;
        self.send_join(now, out);
    }

    /// Adds seed addresses learnt late (see `Command::AddSeeds`). Nothing else
    /// changes for a node that already has live members: the seeds only join the
    /// reconnect loop's candidates. A node that is alone (it started while none of
    /// its seeds resolved) joins through them now instead of waiting for the
    /// reconnect timer; one already joining includes them from this attempt on.
    pub(crate) fn add_seeds(&mut self, now: Millis, seeds: Vec<Addr>, out: &mut Outbox) {
        for seed in seeds {
            if seed != self.addr && !self.seeds.contains(&seed) {
                self.seeds.push(seed);
            }
        }
        if self.seeds.is_empty() {
            return;
        }
        match self.phase {
            Phase::Active if self.active_count() == 0 => {
                self.phase = Phase::Joining;
                self.send_join(now, out);
            }
            Phase::Joining => self.send_join(now, out),
            _ => {}
        }
    }

    /// Leaves gracefully: announces `Left` and stops after `leave_propagate`.
    pub(crate) fn leave(&mut self, now: Millis, out: &mut Outbox) {
        if matches!(self.phase, Phase::Leaving | Phase::Left) {
            return;
        }
        self.phase = Phase::Leaving;
        self.rumors.push(Rumor::Member(MemberUpdate::Left {
            node: self.id,
            incarnation: self.incarnation,
        }));
        // Tell a few members at once rather than waiting for the next gossip round.
        self.gossip(now, out);
        self.timers
            .set(now + self.timing.leave_propagate, Timer::LeaveDone);
    }

    /// Announces new metadata under a new incarnation.
    pub(crate) fn update_meta(&mut self, meta: MemberMeta, out: &mut Outbox) {
        self.meta = meta;
        self.bump_incarnation(self.incarnation, out);
    }

    /// Spreads an application payload to every member (at most once each).
    pub(crate) fn broadcast(&mut self, now: Millis, payload: Vec<u8>) {
        self.app_seq += 1;
        self.app_seen.insert((self.id, self.app_seq), now);
        self.rumors.push(Rumor::App(AppRumor {
            origin: self.id,
            seq: self.app_seq,
            payload,
        }));
    }

    // ---- inputs --------------------------------------------------------------

    pub(crate) fn handle_message(
        &mut self,
        now: Millis,
        from: Addr,
        sender: NodeId,
        message: Message,
        out: &mut Outbox,
    ) {
        if self.phase == Phase::Left || sender == self.id {
            return;
        }
        match message {
            Message::Ping {
                seq,
                target,
                heartbeat,
                rumors,
            } => {
                self.observe_heartbeat(now, sender, heartbeat);
                self.apply_rumors(now, rumors, out);
                // A ping for a node that used to live at this address (restarted
                // under another id) must not be acked in its name.
                if target != self.id {
                    self.stats.misdirected_pings += 1;
                    return;
                }
                let rumors = self.take_rumors(0);
                let ack = Message::Ack {
                    seq,
                    heartbeat: self.heartbeat,
                    rumors,
                };
                out.send(from, Channel::Datagram, ack);
            }
            Message::Ack {
                seq,
                heartbeat,
                rumors,
            } => {
                self.observe_heartbeat(now, sender, heartbeat);
                self.apply_rumors(now, rumors, out);
                self.handle_ack(seq, out);
            }
            Message::PingReq {
                seq,
                target,
                target_addr,
                rumors,
            } => {
                self.apply_rumors(now, rumors, out);
                self.relay_probe(now, from, seq, target, target_addr, out);
            }
            Message::Nack { seq } => {
                if let Some(p) = self.probe.as_mut().filter(|p| p.seq == seq) {
                    p.nacks += 1;
                }
            }
            Message::Gossip { rumors } => self.apply_rumors(now, rumors, out),
            // Replication messages are routed to the replica by the node.
            Message::SyncRequest { .. }
            | Message::SyncResponse { .. }
            | Message::SyncPush { .. }
            | Message::Lease(_) => {}
            Message::PushPull {
                kind,
                heartbeat,
                members,
            } => {
                self.observe_heartbeat(now, sender, heartbeat);
                // Merge before replying: if the peer's list says we are dead, the
                // reply already carries our refutation, so one exchange heals a
                // pair that had declared each other dead during a partition.
                let sender_record = members.iter().find(|r| r.node == sender).cloned();
                self.merge_remote_state(now, sender, members, out);
                let notice = sender_record.and_then(|r| self.tombstone_record(r));
                if kind != PushPullKind::Reply {
                    let mut reply = self.push_pull_message(PushPullKind::Reply);
                    if let Message::PushPull { members, .. } = &mut reply {
                        members.extend(notice);
                    }
                    out.send(from, Channel::Stream, reply);
                } else if let Some(dead) = notice {
                    // We asked a member we had reaped (a reconnect) and it answered
                    // under its old incarnation: tell it, so it refutes.
                    let rumor = Rumor::Member(MemberUpdate::Dead {
                        node: dead.node,
                        incarnation: dead.incarnation,
                        from: self.id,
                    });
                    let gossip = Message::Gossip {
                        rumors: vec![rumor],
                    };
                    out.send(from, Channel::Datagram, gossip);
                }
                // A reply to our join, or a periodic push-pull (only active members
                // send those: a reconnect to us after we declared everyone dead):
                // either way we are in touch with the cluster. Waiting for a reply
                // from our seeds alone left a node whose seeds had all crashed
                // joining forever while live members kept pushing to it (sim seed
                // 3830).
                let in_touch = matches!(kind, PushPullKind::Reply | PushPullKind::Periodic);
                if in_touch && self.is_joining() {
                    self.phase = Phase::Active;
                    self.timers.set(now + CATCH_UP_FIRST, Timer::CatchUp(0));
                    out.event(Event::Local(LocalChange::Joined));
                }
            }
        }
    }

    pub(crate) fn handle_timeout(&mut self, now: Millis, out: &mut Outbox) {
        while let Some(timer) = self.timers.pop_due(now) {
            if self.phase == Phase::Left {
                self.timers.clear();
                return;
            }
            self.fire(now, timer, out);
        }
    }

    fn fire(&mut self, now: Millis, timer: Timer, out: &mut Outbox) {
        match timer {
            Timer::Probe => {
                let next = self.awareness.scale(self.timing.probe_interval);
                self.timers.set(now + next, Timer::Probe);
                self.finish_probe(now, out);
                if self.phase == Phase::Active {
                    self.start_probe(now, out);
                }
            }
            Timer::ProbeTimeout(seq) => self.probe_indirectly(seq, out),
            Timer::RelayNack(seq) => {
                if let Some(relay) = self.relays.get(&seq) {
                    let nack = Message::Nack {
                        seq: relay.requester_seq,
                    };
                    out.send(relay.requester, Channel::Datagram, nack);
                }
            }
            Timer::RelayExpire(seq) => {
                self.relays.remove(&seq);
            }
            Timer::Gossip => {
                self.timers
                    .set(now + self.timing.gossip_interval, Timer::Gossip);
                self.gossip(now, out);
            }
            Timer::PushPull => {
                let every =
                    push_pull_period(self.timing.push_pull_interval, self.members.len() + 1);
                self.timers.set(now + every, Timer::PushPull);
                if self.phase == Phase::Active {
                    self.push_pull(out);
                }
            }
            Timer::Heartbeat => {
                self.timers
                    .set(now + self.timing.heartbeat_interval, Timer::Heartbeat);
                self.heartbeat += 1;
            }
            Timer::Suspicion(node) => self.suspicion_expired(now, node, out),
            Timer::Reap => {
                self.timers
                    .set(now + reap_period(&self.timing), Timer::Reap);
                self.reap(now, out);
            }
            Timer::Reconnect => {
                self.timers
                    .set(now + self.timing.reconnect_interval, Timer::Reconnect);
                if self.phase == Phase::Active {
                    self.reconnect(now, out);
                }
            }
            Timer::CatchUp(round) => {
                if self.phase == Phase::Active {
                    self.push_pull(out);
                }
                if round + 1 < CATCH_UP_ROUNDS {
                    let next = CATCH_UP_FIRST * 2u32.pow(u32::from(round) + 1);
                    self.timers.set(now + next, Timer::CatchUp(round + 1));
                }
            }
            Timer::JoinRetry => {
                if self.is_joining() {
                    self.send_join(now, out);
                }
            }
            Timer::LeaveDone => {
                self.phase = Phase::Left;
                self.timers.clear();
                out.event(Event::Local(LocalChange::Left));
            }
        }
    }

    // ---- probing -------------------------------------------------------------

    fn start_probe(&mut self, now: Millis, out: &mut Outbox) {
        let Some(target) = self.next_probe_target() else {
            return;
        };
        let member = &self.members[&target];
        let (addr, liveness, incarnation) = (member.addr, member.liveness, member.incarnation);
        let seq = self.next_seq();
        self.stats.probes += 1;
        self.probe = Some(Probe {
            seq,
            target,
            acked: false,
            expected_nacks: 0,
            nacks: 0,
        });
        // Lifeguard's buddy system: a suspect hears of its suspicion first-hand.
        let mut rumors = Vec::new();
        if liveness == Liveness::Suspect {
            rumors.push(Rumor::Member(MemberUpdate::Suspect {
                node: target,
                incarnation,
                from: self.id,
            }));
        }
        let used = rumors.iter().map(encoded_len).sum();
        rumors.extend(self.take_rumors(used));
        let ping = Message::Ping {
            seq,
            target,
            heartbeat: self.heartbeat,
            rumors,
        };
        out.send(addr, Channel::Datagram, ping);
        let timeout = self.awareness.scale(self.timing.probe_timeout);
        self.timers.set(now + timeout, Timer::ProbeTimeout(seq));
    }

    /// The next active member in a shuffled round-robin order; the order is
    /// reshuffled after each full pass, so every member is probed once per pass
    /// (SWIM's bounded detection time) in an order nobody can predict.
    fn next_probe_target(&mut self) -> Option<NodeId> {
        while let Some(id) = self.probe_soon.pop() {
            if self
                .members
                .get(&id)
                .is_some_and(|m| m.liveness == Liveness::Suspect)
            {
                return Some(id);
            }
        }
        for _ in 0..2 {
            while self.probe_next < self.probe_order.len() {
                let id = self.probe_order[self.probe_next];
                self.probe_next += 1;
                if self.members.get(&id).is_some_and(Member::is_active) {
                    return Some(id);
                }
            }
            self.probe_order = self
                .members
                .values()
                .filter(|m| m.is_active())
                .map(|m| m.id)
                .collect();
            let mut order = std::mem::take(&mut self.probe_order);
            self.rng.shuffle(&mut order);
            self.probe_order = order;
            self.probe_next = 0;
        }
        None
    }

    fn probe_indirectly(&mut self, seq: Seq, out: &mut Outbox) {
        let Some(probe) = self.probe.as_ref().filter(|p| p.seq == seq && !p.acked) else {
            return;
        };
        let target = probe.target;
        let Some(target_addr) = self.members.get(&target).map(|m| m.addr) else {
            return;
        };
        let candidates: Vec<NodeId> = self
            .members
            .values()
            .filter(|m| m.liveness == Liveness::Alive && m.id != target)
            .map(|m| m.id)
            .collect();
        let relays = self.rng.sample(&candidates, self.timing.indirect_checks);
        for relay in &relays {
            let rumors = self.take_rumors(0);
            let req = Message::PingReq {
                seq,
                target,
                target_addr,
                rumors,
            };
            out.send(self.members[relay].addr, Channel::Datagram, req);
        }
        self.stats.indirect_probes += relays.len() as u64;
        if let Some(p) = self.probe.as_mut() {
            p.expected_nacks = relays.len() as u32;
        }
    }

    fn handle_ack(&mut self, seq: Seq, out: &mut Outbox) {
        if let Some(p) = self.probe.as_mut().filter(|p| p.seq == seq) {
            p.acked = true;
            return;
        }
        if let Some(relay) = self.relays.remove(&seq) {
            let ack = Message::Ack {
                seq: relay.requester_seq,
                heartbeat: self.heartbeat,
                rumors: Vec::new(),
            };
            out.send(relay.requester, Channel::Datagram, ack);
        }
    }

    fn relay_probe(
        &mut self,
        now: Millis,
        requester: Addr,
        requester_seq: Seq,
        target: NodeId,
        target_addr: Addr,
        out: &mut Outbox,
    ) {
        let seq = self.next_seq();
        self.relays.insert(
            seq,
            Relay {
                requester,
                requester_seq,
            },
        );
        let ping = Message::Ping {
            seq,
            target,
            heartbeat: self.heartbeat,
            rumors: Vec::new(),
        };
        out.send(target_addr, Channel::Datagram, ping);
        let nack_at = crate::time::scale(self.timing.probe_timeout, NACK_FRACTION);
        self.timers.set(now + nack_at, Timer::RelayNack(seq));
        self.timers
            .set(now + self.timing.probe_interval, Timer::RelayExpire(seq));
    }

    /// Closes the probe in flight at the end of its interval: an ack lowers the
    /// local health score; no ack raises it (by the nacks that did not come, when
    /// relays were asked) and makes the target a suspect.
    fn finish_probe(&mut self, now: Millis, out: &mut Outbox) {
        let Some(p) = self.probe.take() else {
            return;
        };
        if p.acked {
            self.awareness.apply(-1);
            return;
        }
        let missed_nacks = p.expected_nacks.saturating_sub(p.nacks);
        let delta = if p.expected_nacks > 0 {
            missed_nacks
        } else {
            1
        };
        self.awareness.apply(delta as i32);
        self.stats.probe_failures += 1;
        if let Some(m) = self.members.get(&p.target).filter(|m| m.is_active()) {
            let update = MemberUpdate::Suspect {
                node: p.target,
                incarnation: m.incarnation,
                from: self.id,
            };
            self.apply_update(now, update, out);
        }
    }

    // ---- dissemination -------------------------------------------------------

    fn gossip(&mut self, now: Millis, out: &mut Outbox) {
        if self.rumors.is_empty() {
            return;
        }
        let dead_horizon = now - self.timing.gossip_to_the_dead;
        let candidates: Vec<(NodeId, Addr)> = self
            .members
            .values()
            .filter(|m| m.is_active() || m.since >= dead_horizon)
            .map(|m| (m.id, m.addr))
            .collect();
        for (_, addr) in self.rng.sample(&candidates, self.timing.gossip_nodes) {
            let rumors = self.take_rumors(0);
            if rumors.is_empty() {
                break;
            }
            out.send(addr, Channel::Datagram, Message::Gossip { rumors });
        }
    }

    /// Rumours for one datagram that already holds `used` bytes of them.
    fn take_rumors(&mut self, used: usize) -> Vec<Rumor> {
        let budget = self
            .timing
            .max_datagram
            .saturating_sub(PACKET_OVERHEAD + used);
        let n = self.members.len() + 1;
        let scale = (n as f64 + 1.0).log10().ceil().max(1.0) as u32;
        let limits = rumors::Limits {
            member: self.timing.retransmit_mult * scale,
            data: self.timing.data_retransmit_mult * scale,
        };
        self.rumors.take(budget, limits)
    }

    fn push_pull(&mut self, out: &mut Outbox) {
        let alive: Vec<Addr> = self
            .members
            .values()
            .filter(|m| m.liveness == Liveness::Alive)
            .map(|m| m.addr)
            .collect();
        if let Some(&addr) = self.rng.sample(&alive, 1).first() {
            let msg = self.push_pull_message(PushPullKind::Periodic);
            out.send(addr, Channel::Stream, msg);
        }
    }

    /// Push-pull with one failed member, so two sides of a healed partition that
    /// declared each other dead find each other again (SWIM alone never probes the
    /// dead; serf adds the same reconnect loop), or with one seed that is not a
    /// live member: newcomers that only ever met each other (one joined through
    /// the other while the cluster was out of reach) would otherwise stay an island,
    /// since neither knows any member of the cluster to reconnect to (sim seed
    /// 3577). A node that is alone asks its seeds.
    fn reconnect(&mut self, now: Millis, out: &mut Outbox) {
        if self.active_count() == 0 && !self.seeds.is_empty() {
            self.phase = Phase::Joining;
            self.send_join(now, out);
            return;
        }
        let mut failed: Vec<Addr> = self
            .members
            .values()
            .filter(|m| m.liveness == Liveness::Dead)
            .map(|m| m.addr)
            .collect();
        failed.extend(self.tombstones.values().filter(|t| !t.left).map(|t| t.addr));
        let live: Vec<Addr> = self
            .members
            .values()
            .filter(|m| m.is_active())
            .map(|m| m.addr)
            .collect();
        failed.extend(self.seeds.iter().filter(|s| !live.contains(s)));
        if let Some(&addr) = self.rng.sample(&failed, 1).first() {
            let msg = self.push_pull_message(PushPullKind::Periodic);
            out.send(addr, Channel::Stream, msg);
        }
    }

    fn send_join(&mut self, now: Millis, out: &mut Outbox) {
        if self.phase != Phase::Joining {
            return;
        }
        let msg = self.push_pull_message(PushPullKind::Join);
        for &seed in &self.seeds {
            out.send(seed, Channel::Stream, msg.clone());
        }
        self.timers
            .set(now + self.timing.join_retry, Timer::JoinRetry);
    }

    fn push_pull_message(&self, kind: PushPullKind) -> Message {
        let mut members = Vec::with_capacity(self.members.len() + 1);
        members.push(self.self_record());
        members.extend(self.members.values().map(Member::record));
        Message::PushPull {
            kind,
            heartbeat: self.heartbeat,
            members,
        }
    }

    /// A peer we reaped is talking to us with an incarnation we consider stale (it
    /// restarted without its disk, say). Reaped members are not in our list, so
    /// tell it explicitly that it is dead: it will refute with a higher incarnation.
    fn tombstone_record(&self, sender: MemberRecord) -> Option<MemberRecord> {
        let t = self.tombstones.get(&sender.node)?;
        Some(MemberRecord {
            incarnation: t.incarnation,
            liveness: Liveness::Dead,
            ..sender
        })
    }

    fn self_record(&self) -> MemberRecord {
        MemberRecord {
            node: self.id,
            incarnation: self.incarnation,
            liveness: if self.phase == Phase::Leaving {
                Liveness::Left
            } else {
                Liveness::Alive
            },
            addr: self.addr,
            heartbeat: self.heartbeat,
            meta: self.meta.clone(),
        }
    }

    /// Merges a peer's full member list. Its "dead" is only taken as "suspect":
    /// a stale list must not kill a member outright (memberlist does the same), and
    /// the suspect itself gets the chance to refute.
    fn merge_remote_state(
        &mut self,
        now: Millis,
        sender: NodeId,
        records: Vec<MemberRecord>,
        out: &mut Outbox,
    ) {
        for r in records {
            let update = match r.liveness {
                Liveness::Alive => MemberUpdate::Alive {
                    node: r.node,
                    incarnation: r.incarnation,
                    addr: r.addr,
                    meta: r.meta,
                },
                Liveness::Suspect | Liveness::Dead => MemberUpdate::Suspect {
                    node: r.node,
                    incarnation: r.incarnation,
                    from: sender,
                },
                Liveness::Left => MemberUpdate::Left {
                    node: r.node,
                    incarnation: r.incarnation,
                },
            };
            self.apply_update(now, update, out);
            self.observe_heartbeat(now, r.node, r.heartbeat);
        }
    }

    fn apply_rumors(&mut self, now: Millis, rumors: Vec<Rumor>, out: &mut Outbox) {
        for rumor in rumors {
            match rumor {
                Rumor::Member(update) => self.apply_update(now, update, out),
                Rumor::App(app) => self.apply_app(now, app, out),
                Rumor::State(entry) => self.state_inbox.push(entry),
            }
        }
    }

    fn apply_app(&mut self, now: Millis, app: AppRumor, out: &mut Outbox) {
        let key = (app.origin, app.seq);
        if self.app_seen.contains_key(&key) {
            return;
        }
        self.app_seen.insert(key, now);
        out.event(Event::Broadcast {
            origin: app.origin,
            seq: app.seq,
            payload: app.payload.clone(),
        });
        self.rumors.push(Rumor::App(app));
    }

    fn observe_heartbeat(&mut self, now: Millis, node: NodeId, heartbeat: u64) {
        if let Some(m) = self.members.get_mut(&node) {
            if heartbeat > m.heartbeat {
                m.heartbeat = heartbeat;
                m.last_heartbeat = Some(now);
            }
        }
    }

    // ---- the rules -----------------------------------------------------------

    /// Applies one claim about a member. The rules, in SWIM's order of precedence:
    /// a claim with a lower incarnation than known is stale; `Alive` overrides a
    /// suspicion only with a strictly higher incarnation; `Suspect` and `Dead`
    /// override `Alive` at an equal or higher one; nothing revives a dead or
    /// departed member but a higher incarnation. Claims about this node are
    /// refuted, not applied.
    pub(crate) fn apply_update(&mut self, now: Millis, update: MemberUpdate, out: &mut Outbox) {
        let node = update.node();
        if node == self.id {
            self.refute_if_needed(&update, out);
            return;
        }
        match update {
            MemberUpdate::Alive {
                node,
                incarnation,
                addr,
                meta,
            } => self.apply_alive(now, node, incarnation, addr, meta, out),
            MemberUpdate::Suspect {
                node,
                incarnation,
                from,
            } => self.apply_suspect(now, node, incarnation, from, out),
            MemberUpdate::Dead {
                node,
                incarnation,
                from,
            } => self.apply_dead(now, node, incarnation, from, out),
            MemberUpdate::Left { node, incarnation } => {
                self.apply_left(now, node, incarnation, out)
            }
        }
    }

    fn apply_alive(
        &mut self,
        now: Millis,
        node: NodeId,
        incarnation: Incarnation,
        addr: Addr,
        meta: MemberMeta,
        out: &mut Outbox,
    ) {
        if let Some(t) = self.tombstones.get(&node) {
            if incarnation <= t.incarnation {
                self.stats.stale_updates += 1;
                return;
            }
            self.tombstones.remove(&node);
        }
        let change = match self.members.get_mut(&node) {
            None => {
                self.members.insert(
                    node,
                    Member {
                        id: node,
                        addr,
                        meta: meta.clone(),
                        incarnation,
                        liveness: Liveness::Alive,
                        since: now,
                        heartbeat: 0,
                        last_heartbeat: None,
                    },
                );
                MemberChange::Joined
            }
            Some(m) => {
                if incarnation <= m.incarnation {
                    self.stats.stale_updates += 1;
                    return;
                }
                let change = match m.liveness {
                    Liveness::Suspect => MemberChange::AliveAgain,
                    Liveness::Dead | Liveness::Left => MemberChange::Joined,
                    Liveness::Alive if m.addr != addr || m.meta != meta => MemberChange::Updated,
                    Liveness::Alive => {
                        // A plain re-announcement: adopt it and pass it on quietly.
                        m.incarnation = incarnation;
                        self.rumors.push(Rumor::Member(MemberUpdate::Alive {
                            node,
                            incarnation,
                            addr,
                            meta,
                        }));
                        return;
                    }
                };
                if m.liveness != Liveness::Alive {
                    m.since = now;
                }
                m.incarnation = incarnation;
                m.liveness = Liveness::Alive;
                m.addr = addr;
                m.meta = meta.clone();
                change
            }
        };
        self.suspicions.remove(&node);
        self.rumors.push(Rumor::Member(MemberUpdate::Alive {
            node,
            incarnation,
            addr,
            meta,
        }));
        self.changes += 1;
        out.event(Event::Member { node, change });
    }

    fn apply_suspect(
        &mut self,
        now: Millis,
        node: NodeId,
        incarnation: Incarnation,
        from: NodeId,
        out: &mut Outbox,
    ) {
        let n = self.members.len() + 1;
        let Some(m) = self.members.get_mut(&node) else {
            return;
        };
        if incarnation < m.incarnation || !m.is_active() {
            self.stats.stale_updates += 1;
            return;
        }
        if m.liveness == Liveness::Suspect {
            if incarnation > m.incarnation {
                m.incarnation = incarnation;
            }
            // Another accuser: shorten the timer and pass the confirmation on.
            let grace = now + self.timing.probe_interval;
            let confirmed = self
                .suspicions
                .get_mut(&node)
                .is_some_and(|s| s.confirm(from, grace));
            if confirmed {
                let deadline = self.suspicions[&node].deadline();
                self.timers.set(deadline, Timer::Suspicion(node));
                self.rumors.push(Rumor::Member(MemberUpdate::Suspect {
                    node,
                    incarnation,
                    from,
                }));
            }
            return;
        }
        m.liveness = Liveness::Suspect;
        m.incarnation = incarnation;
        m.since = now;
        // Probe the suspect at the next tick: if someone else accused it, our
        // probe is an independent confirmation (or its ack clears it); if we did,
        // the ping carries the suspicion to the suspect itself (the buddy system),
        // so it can refute even if every gossip copy of the rumour was lost.
        if !self.probe_soon.contains(&node) {
            self.probe_soon.push(node);
        }
        let t = &self.timing;
        let (min, max) = suspicion::bounds(
            t.suspicion_mult,
            t.suspicion_max_timeout_mult,
            n,
            t.probe_interval,
        );
        // Confirmations can only come from members other than the suspect and us.
        let k = t.suspicion_mult.saturating_sub(2);
        let k = if (n as u32).saturating_sub(2) < k {
            0
        } else {
            k
        };
        let s = Suspicion::new(now, from, min, max, k);
        self.timers.set(s.deadline(), Timer::Suspicion(node));
        self.suspicions.insert(node, s);
        self.rumors.push(Rumor::Member(MemberUpdate::Suspect {
            node,
            incarnation,
            from,
        }));
        self.report(out, node, MemberChange::Suspected);
    }

    fn apply_dead(
        &mut self,
        now: Millis,
        node: NodeId,
        incarnation: Incarnation,
        from: NodeId,
        out: &mut Outbox,
    ) {
        let Some(m) = self.members.get_mut(&node) else {
            return;
        };
        if incarnation < m.incarnation || !m.is_active() {
            self.stats.stale_updates += 1;
            return;
        }
        m.liveness = Liveness::Dead;
        m.incarnation = incarnation;
        m.since = now;
        self.suspicions.remove(&node);
        self.rumors.push(Rumor::Member(MemberUpdate::Dead {
            node,
            incarnation,
            from,
        }));
        self.report(out, node, MemberChange::Failed);
    }

    fn apply_left(
        &mut self,
        now: Millis,
        node: NodeId,
        incarnation: Incarnation,
        out: &mut Outbox,
    ) {
        let Some(m) = self.members.get_mut(&node) else {
            return;
        };
        if incarnation < m.incarnation || m.liveness == Liveness::Left {
            self.stats.stale_updates += 1;
            return;
        }
        m.liveness = Liveness::Left;
        m.incarnation = incarnation;
        m.since = now;
        self.suspicions.remove(&node);
        self.rumors
            .push(Rumor::Member(MemberUpdate::Left { node, incarnation }));
        self.departed.push(node);
        self.report(out, node, MemberChange::Left);
    }

    fn suspicion_expired(&mut self, now: Millis, node: NodeId, out: &mut Outbox) {
        let Some(deadline) = self.suspicions.get(&node).map(Suspicion::deadline) else {
            return;
        };
        if deadline > now {
            // An older, later timer of a suspicion that has since been shortened or
            // restarted; the current deadline has its own timer.
            return;
        }
        self.suspicions.remove(&node);
        let Some(incarnation) = self
            .members
            .get(&node)
            .filter(|m| m.liveness == Liveness::Suspect)
            .map(|m| m.incarnation)
        else {
            return;
        };
        let update = MemberUpdate::Dead {
            node,
            incarnation,
            from: self.id,
        };
        self.apply_update(now, update, out);
    }

    /// Someone claims something about us. A suspicion or death at our current (or a
    /// higher) incarnation is refuted with a higher one; our own `Left` while leaving
    /// is just our own rumour coming back.
    fn refute_if_needed(&mut self, update: &MemberUpdate, out: &mut Outbox) {
        let claimed = match update {
            MemberUpdate::Alive {
                incarnation,
                addr,
                meta,
                ..
            } => {
                // Only an Alive that is newer and differs from us (someone replaying
                // an old identity of this node, say) needs overriding.
                if *incarnation < self.incarnation
                    || (*incarnation == self.incarnation
                        && *addr == self.addr
                        && *meta == self.meta)
                {
                    return;
                }
                *incarnation
            }
            MemberUpdate::Suspect { incarnation, .. } | MemberUpdate::Dead { incarnation, .. } => {
                if *incarnation < self.incarnation {
                    // The accuser missed our refutation (its retransmits ran out,
                    // or went to dead members): say it again, at the same
                    // incarnation. It rides on the ack to a buddy-system probe.
                    if !matches!(self.phase, Phase::Leaving | Phase::Left) {
                        self.announce();
                    }
                    return;
                }
                *incarnation
            }
            MemberUpdate::Left { incarnation, .. } => {
                if matches!(self.phase, Phase::Leaving | Phase::Left)
                    || *incarnation < self.incarnation
                {
                    return;
                }
                *incarnation
            }
        };
        if matches!(self.phase, Phase::Leaving | Phase::Left) {
            return;
        }
        self.stats.refutations += 1;
        self.awareness.apply(1);
        self.bump_incarnation(claimed, out);
        out.event(Event::Local(LocalChange::Refuted(self.incarnation)));
    }

    /// Moves to an incarnation above `above`, persists it before anything is sent
    /// under it, and announces it.
    fn bump_incarnation(&mut self, above: Incarnation, out: &mut Outbox) {
        self.incarnation = above.max(self.incarnation).next();
        out.persist(PersistBatch {
            items: vec![PersistItem::Incarnation(self.incarnation)],
        });
        self.announce();
    }

    /// Queues an `Alive` rumour for this node at its current incarnation.
    fn announce(&mut self) {
        self.rumors.push(Rumor::Member(MemberUpdate::Alive {
            node: self.id,
            incarnation: self.incarnation,
            addr: self.addr,
            meta: self.meta.clone(),
        }));
    }

    // ---- housekeeping ----------------------------------------------------------

    fn reap(&mut self, now: Millis, out: &mut Outbox) {
        let gone: Vec<NodeId> = self
            .members
            .values()
            .filter(|m| !m.is_active() && now.since(m.since) >= self.timing.reap_after)
            .map(|m| m.id)
            .collect();
        for id in gone {
            if let Some(m) = self.members.remove(&id) {
                let tombstone = Tombstone {
                    incarnation: m.incarnation,
                    addr: m.addr,
                    left: m.liveness == Liveness::Left,
                    expires: now + self.timing.tombstone_ttl,
                };
                self.tombstones.insert(id, tombstone);
                self.report(out, id, MemberChange::Reaped);
            }
        }
        self.tombstones.retain(|_, t| t.expires > now);
        self.app_seen
            .retain(|_, seen| now.since(*seen) < APP_DEDUP_WINDOW);
    }

    fn next_seq(&mut self) -> Seq {
        self.next_seq = self.next_seq.wrapping_add(1);
        self.next_seq
    }

    fn jitter(&mut self, period: Duration) -> Duration {
        let ms = period.as_millis().max(1) as usize;
        Duration::from_millis(self.rng.below(ms) as u64)
    }
}

/// The push-pull period for a cluster of `n`: a full exchange costs O(n) bytes,
/// so past 32 members the period grows with log2(n) (memberlist's
/// `pushPullScale`), keeping idle traffic per node nearly flat as clusters grow.
fn push_pull_period(base: Duration, n: usize) -> Duration {
    const THRESHOLD: f64 = 32.0;
    if n as f64 <= THRESHOLD {
        return base;
    }
    let mult = ((n as f64).log2() - THRESHOLD.log2()).ceil() as u32 + 1;
    base * mult
}

/// How often dead members are swept: often enough to reap close to `reap_after`,
/// rarely enough to cost nothing.
fn reap_period(t: &Timing) -> Duration {
    (t.reap_after / 6).max(Duration::from_secs(1))
}

#[cfg(test)]
pub(crate) mod tests;

#[cfg(test)]
mod period_tests {
    use super::*;

    #[test]
    fn push_pull_period_scales_past_32_members() {
        let base = Duration::from_secs(30);
        assert_eq!(push_pull_period(base, 5), base);
        assert_eq!(push_pull_period(base, 32), base);
        assert_eq!(push_pull_period(base, 33), base * 2);
        assert_eq!(push_pull_period(base, 100), base * 3);
        assert_eq!(push_pull_period(base, 1000), base * 6);
    }
}
