//! One test per protocol rule, driving `Membership` directly and inspecting what it
//! emits. The tests sit by the room they test (`probe`, `rules`, `dissemination`,
//! `lifecycle`); this file holds what they share: fixtures, readers of effects and
//! the harness. The fixtures marked `pub(crate)` are shared with the `Node` tests
//! (`crate::node::tests`), which exercise membership through the whole node.

use super::*;
use crate::config::Role;
use crate::outbox::Effect;
use crate::persist::PersistItem;
use crate::wire::MemberRecord;

/// Tests start well after the clock's origin, so no `now - span` saturates.
pub(crate) const START: Millis = Millis(1_000_000);

pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub(crate) fn id(n: u64) -> NodeId {
    NodeId(n)
}

/// Node `n` lives at port `7000 + n`.
pub(crate) fn addr(n: u64) -> Addr {
    Addr::from(([10, 0, 0, 1], 7000 + n as u16))
}

fn node_at(a: Addr) -> NodeId {
    NodeId(u64::from(a.port() - 7000))
}

pub(crate) fn meta(n: u64) -> MemberMeta {
    MemberMeta {
        name: format!("node-{n}"),
        region: "eu-west-1".into(),
        zone: "eu-west-1a".into(),
        advertise_url: format!("https://node-{n}.example"),
        sync_addr: addr(n + 100),
        promotion_tier: 1,
        capacity: 10,
        role: Role::Serving,
        version: "0.1.0".into(),
        config_fingerprint: 1,
        bootstrap_expect: 0,
    }
}

pub(crate) fn identity(n: u64) -> Identity {
    Identity {
        id: id(n),
        life: crate::id::Life(n),
        addr: addr(n),
        meta: meta(n),
    }
}

pub(crate) fn timing() -> Timing {
    Timing::lan()
}

pub(crate) fn alive(n: u64, inc: u64) -> MemberUpdate {
    MemberUpdate::Alive {
        node: id(n),
        incarnation: Incarnation(inc),
        addr: addr(n),
        meta: meta(n),
    }
}

fn suspect(n: u64, inc: u64, from: u64) -> MemberUpdate {
    MemberUpdate::Suspect {
        node: id(n),
        incarnation: Incarnation(inc),
        from: id(from),
    }
}

pub(crate) fn dead(n: u64, inc: u64, from: u64) -> MemberUpdate {
    MemberUpdate::Dead {
        node: id(n),
        incarnation: Incarnation(inc),
        from: id(from),
    }
}

fn left(n: u64, inc: u64) -> MemberUpdate {
    MemberUpdate::Left {
        node: id(n),
        incarnation: Incarnation(inc),
    }
}

pub(crate) fn gossip(updates: Vec<MemberUpdate>) -> Message {
    Message::Gossip {
        rumors: updates.into_iter().map(Rumor::Member).collect(),
    }
}

fn ping(seq: Seq, target: u64) -> Message {
    Message::Ping {
        seq,
        target: id(target),
        heartbeat: 0,
        rumors: Vec::new(),
    }
}

fn ack(seq: Seq) -> Message {
    Message::Ack {
        seq,
        heartbeat: 0,
        rumors: Vec::new(),
    }
}

fn record(n: u64, inc: u64, liveness: Liveness) -> MemberRecord {
    MemberRecord {
        node: id(n),
        incarnation: Incarnation(inc),
        liveness,
        addr: addr(n),
        heartbeat: 0,
        meta: meta(n),
    }
}

fn push_pull(kind: PushPullKind, members: Vec<MemberRecord>) -> Message {
    Message::PushPull {
        kind,
        heartbeat: 0,
        members,
    }
}

// ---- reading effects ---------------------------------------------------------------

fn sends(effects: &[Effect]) -> Vec<(Addr, Channel, &Message)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send {
                to,
                channel,
                message,
            } => Some((*to, *channel, message)),
            _ => None,
        })
        .collect()
}

fn events(effects: &[Effect]) -> Vec<Event> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Event(ev) => Some(ev.clone()),
            _ => None,
        })
        .collect()
}

/// The changes reported about member `n`, in order.
fn changes(effects: &[Effect], n: u64) -> Vec<MemberChange> {
    events(effects)
        .into_iter()
        .filter_map(|ev| match ev {
            Event::Member { node, change } if node == id(n) => Some(change),
            _ => None,
        })
        .collect()
}

fn local_changes(effects: &[Effect]) -> Vec<LocalChange> {
    events(effects)
        .into_iter()
        .filter_map(|ev| match ev {
            Event::Local(change) => Some(change),
            _ => None,
        })
        .collect()
}

fn persisted(effects: &[Effect]) -> Vec<Incarnation> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Persist(batch) => Some(batch.items.iter().filter_map(|item| match item {
                PersistItem::Incarnation(i) => Some(*i),
                PersistItem::Entry(_)
                | PersistItem::OwnSeq(_)
                | PersistItem::Remove(_)
                | PersistItem::Epoch(_)
                | PersistItem::Roster(_)
                | PersistItem::Binding { .. }
                | PersistItem::QuotaFence(_)
                | PersistItem::QuotaEntry(_)
                | PersistItem::QuotaForget { .. } => None,
            })),
            _ => None,
        })
        .flatten()
        .collect()
}

/// The pings sent: (to, seq, target).
fn pings(effects: &[Effect]) -> Vec<(Addr, Seq, NodeId)> {
    sends(effects)
        .into_iter()
        .filter_map(|(to, _, m)| match m {
            Message::Ping { seq, target, .. } => Some((to, *seq, *target)),
            _ => None,
        })
        .collect()
}

fn ping_reqs(effects: &[Effect]) -> Vec<(Addr, Seq, NodeId, Addr)> {
    sends(effects)
        .into_iter()
        .filter_map(|(to, _, m)| match m {
            Message::PingReq {
                seq,
                target,
                target_addr,
                ..
            } => Some((to, *seq, *target, *target_addr)),
            _ => None,
        })
        .collect()
}

/// Every rumour in every message sent.
fn rumors_sent(effects: &[Effect]) -> Vec<Rumor> {
    sends(effects)
        .into_iter()
        .flat_map(|(_, _, m)| m.rumors().to_vec())
        .collect()
}

// ---- the harness -------------------------------------------------------------------

/// One `Membership` with its outbox and a virtual clock.
pub(crate) struct Harness {
    m: Membership,
    out: Outbox,
    pub(crate) now: Millis,
    /// Answer every ping to a member at once, as a healthy member would, so that
    /// unrelated probes neither raise suspicions nor the awareness score.
    auto_ack: bool,
}

impl Harness {
    fn at(n: u64, now: Millis) -> Harness {
        let m = Membership::new(
            identity(n),
            Incarnation(0),
            timing(),
            DetRng::from_seed(n),
            now,
        );
        Harness {
            m,
            out: Outbox::default(),
            now,
            auto_ack: false,
        }
    }

    /// Node `n` that already knows `others` as alive at incarnation 0.
    pub(crate) fn with(n: u64, others: &[u64]) -> Harness {
        let mut h = Harness::at(n, START);
        for &o in others {
            h.update(alive(o, 0));
        }
        h.drain();
        h
    }

    pub(crate) fn acking(mut self) -> Harness {
        self.auto_ack = true;
        self
    }

    fn drain(&mut self) -> Vec<Effect> {
        let mut effects = Vec::new();
        while let Some(e) = self.out.pop() {
            effects.push(e);
        }
        effects
    }

    pub(crate) fn update(&mut self, update: MemberUpdate) -> Vec<Effect> {
        self.m.apply_update(self.now, update, &mut self.out);
        self.drain()
    }

    pub(crate) fn recv(&mut self, from: u64, message: Message) -> Vec<Effect> {
        self.m
            .handle_message(self.now, addr(from), id(from), message, &mut self.out);
        self.drain()
    }

    /// Advances to the next deadline and fires it; `None` if no timer is set.
    fn step(&mut self) -> Option<Vec<Effect>> {
        let next = self.m.poll_timeout()?;
        self.now = self.now.max(next);
        self.m.handle_timeout(self.now, &mut self.out);
        let mut effects = self.drain();
        if self.auto_ack {
            for (to, seq, target) in pings(&effects) {
                if node_at(to) == target && self.m.member(target).is_some() {
                    let more = self.recv(target.0, ack(seq));
                    effects.extend(more);
                }
            }
        }
        Some(effects)
    }

    /// Fires every timer due up to `until`, then sets the clock to `until`.
    fn run_until(&mut self, until: Millis) -> Vec<Effect> {
        let mut effects = Vec::new();
        while self.m.poll_timeout().is_some_and(|t| t <= until) {
            effects.extend(self.step().unwrap_or_default());
        }
        self.now = self.now.max(until);
        effects
    }

    /// Steps until `found` picks something out of one step's effects, at most
    /// until `limit`; returns it with the time it happened.
    fn run_until_found<T>(
        &mut self,
        limit: Millis,
        mut found: impl FnMut(&[Effect]) -> Option<T>,
    ) -> Option<(Millis, T)> {
        while self.m.poll_timeout().is_some_and(|t| t <= limit) {
            let effects = self.step().unwrap_or_default();
            if let Some(x) = found(&effects) {
                return Some((self.now, x));
            }
        }
        None
    }

    /// Runs until the next ping and returns (sent at, to, seq, target).
    fn next_ping(&mut self) -> (Millis, Addr, Seq, NodeId) {
        let limit = self.now + ms(10_000);
        let (at, (to, seq, target)) = self
            .run_until_found(limit, |e| pings(e).first().copied())
            .expect("a probe within 10 s");
        (at, to, seq, target)
    }

    /// Runs until member `n` changes as `change`; returns when.
    pub(crate) fn when(
        &mut self,
        n: u64,
        change: MemberChange,
        within: Duration,
    ) -> Option<Millis> {
        let limit = self.now + within;
        self.run_until_found(limit, |e| changes(e, n).contains(&change).then_some(()))
            .map(|(at, ())| at)
    }

    pub(crate) fn liveness(&self, n: u64) -> Option<Liveness> {
        self.m.member(id(n)).map(|m| m.liveness)
    }
}

mod dissemination;
mod lifecycle;
mod probe;
mod rules;
