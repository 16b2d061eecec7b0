//! SWIM membership with the Lifeguard refinements, as HashiCorp memberlist does it.
//!
//! One room per concern, all of them `impl Membership` blocks over the one state
//! defined here (so the state machine stays one value, cloned and compared whole):
//!
//! * **Probing** (module `probe`). Every probe interval the next member of a
//!   shuffled round-robin list is pinged. No ack within the probe timeout:
//!   `indirect_checks` other members are asked to ping it (`PingReq`). No ack by the
//!   end of the interval: the member is suspected.
//! * **The rules** (module `rules`). One claim about a member at an incarnation
//!   changes what this node believes, in SWIM's order of precedence. A suspect has a
//!   timer ([`suspicion`]) that shrinks with every independent accusation. When it
//!   runs out the member is declared dead. A member that hears it is suspected
//!   refutes by announcing a higher incarnation; a claim with a lower incarnation
//!   than the one known is always ignored.
//! * **Lifeguard.** Timeouts are scaled by the local health multiplier
//!   ([`awareness`]); relays send nacks so a prober can tell its own trouble from the
//!   target's; a suspect being probed is told directly that it is suspected.
//! * **Dissemination** (module `dissemination`). Rumours piggyback on pings, acks
//!   and gossip rounds ([`rumors`]), each sent about `retransmit_mult × log10(N+1)`
//!   times. A push-pull exchange of full member lists with one random member
//!   repairs anything missed.
//! * **Lifecycle** (here, with the inputs, timers and housekeeping). Joining is a
//!   push-pull with a seed. Leaving is a `Left` rumour gossiped for a moment before
//!   the node stops. Dead and departed members are reaped after `reap_after`, but
//!   their incarnation is remembered as a tombstone for `tombstone_ttl`, so stale
//!   state cannot revive them (memberlist #312). A node that restarts comes back
//!   with a higher incarnation, at any address (#157).

pub mod awareness;
mod dissemination;
pub mod member;
mod probe;
mod rules;
pub mod rumors;
pub mod suspicion;

pub use member::{LocalChange, Member, MemberChange};

use core::time::Duration;
use std::collections::BTreeMap;

use crate::config::{Identity, MemberMeta, Timing};
use crate::event::Event;
use crate::id::{Addr, Incarnation, NodeId};
use crate::outbox::Outbox;
use crate::rng::DetRng;
use crate::time::Millis;
use crate::timers::Timers;
use crate::wire::{AppRumor, Channel, Liveness, MemberUpdate, Message, PushPullKind, Rumor, Seq};

use awareness::Awareness;
use probe::{Probe, Relay};
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
    /// A member: probing, gossiping, taking part in failover.
    Active,
    /// Gossiping its departure until the deadline.
    Leaving,
    /// Done: no timers, no sends.
    Left,
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

/// Counters for metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MembershipStats {
    /// Direct probes sent.
    pub probes: u64,
    /// Probe rounds that ended without an ack (direct or indirect): each raises a
    /// suspicion.
    pub probe_failures: u64,
    /// Indirect probes (`PingReq`) sent after a direct probe went unanswered.
    pub indirect_probes: u64,
    /// Suspicions of this node it refuted by raising its incarnation.
    pub refutations: u64,
    /// Pings addressed to another node id than this one (a peer's stale address book), not
    /// acked.
    pub misdirected_pings: u64,
    /// Claims dropped because they were about an incarnation older than the one known.
    pub stale_updates: u64,
    /// Rumours dropped from a full queue before they were spread as often as planned.
    pub rumors_dropped: u64,
}

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
    /// The highest incarnation handed to the driver to persist (the start one by
    /// `Node::new`): nothing above it may be announced.
    persisted: Incarnation,
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
    /// announced before a restart), already queued for persisting by the caller
    /// (`Node::new` makes it its first output).
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
            persisted: incarnation,
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

    #[cfg(test)]
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

    /// When membership's next timer (probe, suspicion, gossip, push-pull, reaping,
    /// leave deadline) is due; `handle_timeout` runs what is due.
    #[must_use]
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
            incarnation: self.announced_incarnation(),
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
            Message::Nack { seq } => self.handle_nack(seq),
            Message::Gossip { rumors } => self.apply_rumors(now, rumors, out),
            // Replication messages are routed to the replica by the node.
            Message::SyncRequest { .. }
            | Message::SyncResponse { .. }
            | Message::SyncPush { .. }
            | Message::Lease(_)
            | Message::Quota(_) => {}
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
            Timer::RelayNack(seq) => self.relay_nack(seq, out),
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
