//! One test per protocol rule, driving `Membership` directly and inspecting what it
//! emits. The fixtures marked `pub(crate)` are shared with the `Node` tests
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

fn meta(n: u64) -> MemberMeta {
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
                | PersistItem::Binding { .. } => None,
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

// ---- refutation ------------------------------------------------------------------------

/// A claim about ourselves arrives piggybacked on a ping, so both the refutation
/// and the ack come out of one call, and their order can be checked.
fn refutes(claim: MemberUpdate) {
    let mut h = Harness::with(1, &[2, 3]);
    let message = Message::Ping {
        seq: 9,
        target: id(1),
        heartbeat: 0,
        rumors: vec![Rumor::Member(claim)],
    };
    let effects = h.recv(2, message);
    assert_eq!(h.m.incarnation(), Incarnation(1));
    assert_eq!(persisted(&effects), vec![Incarnation(1)]);
    let persist_at = effects
        .iter()
        .position(|e| matches!(e, Effect::Persist(_)))
        .unwrap();
    let first_send = effects
        .iter()
        .position(|e| matches!(e, Effect::Send { .. }))
        .expect("the ping is acked");
    assert!(persist_at < first_send, "{effects:?}");
    assert_eq!(
        local_changes(&effects),
        vec![LocalChange::Refuted(Incarnation(1))]
    );
    // The new incarnation rides on the very ack that answers the ping.
    assert!(rumors_sent(&effects).contains(&Rumor::Member(alive(1, 1))));
}

#[test]
fn suspect_about_self_is_refuted_with_a_persisted_higher_incarnation() {
    refutes(suspect(1, 0, 2));
}

#[test]
fn dead_about_self_is_refuted_with_a_persisted_higher_incarnation() {
    refutes(dead(1, 0, 2));
}

#[test]
fn refutation_goes_above_the_claimed_incarnation() {
    let mut h = Harness::with(1, &[2]);
    let effects = h.update(suspect(1, 5, 2));
    assert_eq!(h.m.incarnation(), Incarnation(6));
    assert_eq!(persisted(&effects), vec![Incarnation(6)]);
    assert_eq!(h.m.stats().refutations, 1);
}

#[test]
fn refutation_rumor_goes_out_on_the_next_message() {
    let mut h = Harness::with(1, &[2, 3]);
    // A gossip needs no answer: the refutation waits in the queue...
    let effects = h.recv(2, gossip(vec![suspect(1, 0, 2)]));
    assert!(sends(&effects).is_empty());
    // ... and leaves on the next message this node sends.
    let effects = h.recv(3, ping(4, 1));
    assert_eq!(sends(&effects).len(), 1);
    assert!(rumors_sent(&effects).contains(&Rumor::Member(alive(1, 1))));
}

#[test]
fn suspect_about_self_with_a_lower_incarnation_is_ignored() {
    let mut h = Harness::with(1, &[2]);
    h.update(suspect(1, 2, 2));
    assert_eq!(h.m.incarnation(), Incarnation(3));
    for stale in [suspect(1, 2, 3), dead(1, 0, 2)] {
        let effects = h.update(stale);
        assert!(effects.is_empty(), "{effects:?}");
        assert_eq!(h.m.incarnation(), Incarnation(3));
    }
}

#[test]
fn stale_suspicion_about_self_re_announces_the_current_incarnation() {
    let mut h = Harness::with(1, &[2]);
    h.update(suspect(1, 2, 2));
    h.m.rumors = RumorQueue::default();
    // The accuser missed the refutation: tell it again, without a new incarnation.
    let message = Message::Ping {
        seq: 3,
        target: id(1),
        heartbeat: 0,
        rumors: vec![Rumor::Member(suspect(1, 2, 2))],
    };
    let effects = h.recv(2, message);
    assert!(persisted(&effects).is_empty());
    assert_eq!(h.m.incarnation(), Incarnation(3));
    assert!(rumors_sent(&effects).contains(&Rumor::Member(alive(1, 3))));
}

// ---- incarnation ordering -------------------------------------------------------------

#[test]
fn alive_clears_a_suspicion_only_with_a_higher_incarnation() {
    let mut h = Harness::with(1, &[2, 3]);
    h.update(alive(2, 1));
    let effects = h.update(suspect(2, 1, 3));
    assert_eq!(changes(&effects, 2), vec![MemberChange::Suspected]);
    let effects = h.update(alive(2, 1));
    assert!(changes(&effects, 2).is_empty());
    assert_eq!(h.liveness(2), Some(Liveness::Suspect));
    let effects = h.update(alive(2, 2));
    assert_eq!(changes(&effects, 2), vec![MemberChange::AliveAgain]);
    assert_eq!(h.liveness(2), Some(Liveness::Alive));
    assert_eq!(h.m.member(id(2)).unwrap().incarnation, Incarnation(2));
}

#[test]
fn suspect_with_a_stale_incarnation_is_ignored() {
    let mut h = Harness::with(1, &[2, 3]);
    h.update(alive(2, 3));
    let stale_before = h.m.stats().stale_updates;
    let effects = h.update(suspect(2, 2, 3));
    assert!(effects.is_empty(), "{effects:?}");
    assert_eq!(h.liveness(2), Some(Liveness::Alive));
    assert_eq!(h.m.stats().stale_updates, stale_before + 1);
    // At the current incarnation it does count.
    let effects = h.update(suspect(2, 3, 3));
    assert_eq!(changes(&effects, 2), vec![MemberChange::Suspected]);
}

#[test]
fn dead_is_overridden_only_by_a_higher_incarnation() {
    let mut h = Harness::with(1, &[2, 3]);
    h.update(alive(2, 1));
    let effects = h.update(dead(2, 1, 3));
    assert_eq!(changes(&effects, 2), vec![MemberChange::Failed]);
    for no_revival in [alive(2, 0), alive(2, 1), suspect(2, 4, 3)] {
        let effects = h.update(no_revival);
        assert!(changes(&effects, 2).is_empty(), "{effects:?}");
        assert_eq!(h.liveness(2), Some(Liveness::Dead));
    }
    let effects = h.update(alive(2, 2));
    assert_eq!(changes(&effects, 2), vec![MemberChange::Joined]);
    assert_eq!(h.liveness(2), Some(Liveness::Alive));
}

// ---- suspicion timeout ----------------------------------------------------------------

/// Five nodes (k = suspicion_mult − 2 = 2 confirmations possible): suspects node 2
/// with the given accusers, one after the other, and returns how long until the
/// suspicion ran out.
fn time_to_failure(accusers: &[u64]) -> Duration {
    let mut h = Harness::with(1, &[2, 3, 4, 5]).acking();
    let t0 = h.now;
    for &from in accusers {
        h.update(suspect(2, 0, from));
    }
    let at = h
        .when(2, MemberChange::Failed, ms(120_000))
        .expect("the suspicion runs out");
    assert_eq!(h.liveness(2), Some(Liveness::Dead));
    at.since(t0)
}

fn bounds_for_five() -> (Duration, Duration) {
    let t = timing();
    suspicion::bounds(
        t.suspicion_mult,
        t.suspicion_max_timeout_mult,
        5,
        t.probe_interval,
    )
}

#[test]
fn suspect_is_declared_failed_within_the_suspicion_bounds() {
    let (min, max) = bounds_for_five();
    let took = time_to_failure(&[3]);
    assert!(
        min <= took && took <= max,
        "{took:?} not in {min:?}..={max:?}"
    );
}

#[test]
fn independent_confirmations_shorten_the_suspicion() {
    let (min, _) = bounds_for_five();
    let alone = time_to_failure(&[3]);
    let one = time_to_failure(&[3, 4]);
    let two = time_to_failure(&[3, 4, 5]);
    assert!(one < alone, "{one:?} !< {alone:?}");
    assert!(two < one, "{two:?} !< {one:?}");
    assert!(two >= min);
}

#[test]
fn repeated_accusation_from_the_same_node_does_not_shorten_the_suspicion() {
    assert_eq!(time_to_failure(&[3, 3, 3]), time_to_failure(&[3]));
}

#[test]
fn independent_confirmation_is_passed_on() {
    let mut h = Harness::with(1, &[2, 3, 4, 5]);
    h.update(suspect(2, 0, 3));
    h.m.rumors = RumorQueue::default();
    h.update(suspect(2, 0, 4));
    let effects = h.recv(5, ping(1, 1));
    assert!(rumors_sent(&effects).contains(&Rumor::Member(suspect(2, 0, 4))));
}

// ---- probing ---------------------------------------------------------------------------

#[test]
fn probe_tick_pings_a_member_at_its_address() {
    let mut h = Harness::with(1, &[2, 3, 4, 5]);
    let (_, to, _, target) = h.next_ping();
    assert_eq!(to, addr(target.0));
    assert!(h.m.member(target).is_some());
}

#[test]
fn unanswered_ping_leads_to_ping_reqs_then_suspicion() {
    let mut h = Harness::with(1, &[2, 3, 4, 5]);
    let indirect = timing().indirect_checks;
    let (sent, _, seq, target) = h.next_ping();
    let (at, reqs) = h
        .run_until_found(sent + ms(5_000), |e| {
            Some(ping_reqs(e)).filter(|r| !r.is_empty())
        })
        .expect("ping-reqs");
    assert_eq!(at, sent + timing().probe_timeout);
    assert_eq!(reqs.len(), indirect.min(3));
    let mut relays: Vec<Addr> = reqs.iter().map(|r| r.0).collect();
    relays.sort();
    relays.dedup();
    assert_eq!(relays.len(), reqs.len(), "distinct relays");
    for (relay, req_seq, req_target, target_addr) in reqs {
        assert_ne!(node_at(relay), target);
        assert_eq!(h.liveness(node_at(relay).0), Some(Liveness::Alive));
        assert_eq!(
            (req_seq, req_target, target_addr),
            (seq, target, addr(target.0))
        );
    }
    let suspected = h.when(target.0, MemberChange::Suspected, ms(5_000));
    assert_eq!(suspected, Some(sent + timing().probe_interval));
    assert_eq!(h.m.stats().probe_failures, 1);
}

#[test]
fn ping_reqs_go_only_to_other_alive_members() {
    // Three others, one of them suspect: at most one relay is eligible.
    let mut h = Harness::with(1, &[2, 3, 4]);
    let (sent, _, _, target) = h.next_ping();
    let others: Vec<u64> = [2, 3, 4].into_iter().filter(|&n| n != target.0).collect();
    h.update(suspect(others[0], 0, 9));
    let effects = h.run_until(sent + timing().probe_timeout);
    let reqs = ping_reqs(&effects);
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(reqs[0].0, addr(others[1]));
}

#[test]
fn direct_ack_prevents_suspicion() {
    let mut h = Harness::with(1, &[2, 3, 4, 5]);
    let (sent, _, seq, target) = h.next_ping();
    h.recv(target.0, ack(seq));
    let effects = h.run_until(sent + timing().probe_interval);
    assert!(
        ping_reqs(&effects).is_empty(),
        "no indirect probe after an ack"
    );
    assert!(changes(&effects, target.0).is_empty(), "{effects:?}");
    assert_eq!(h.liveness(target.0), Some(Liveness::Alive));
    assert_eq!(h.m.stats().probe_failures, 0);
}

#[test]
fn relayed_ack_prevents_suspicion() {
    let mut h = Harness::with(1, &[2, 3, 4, 5]);
    let (sent, _, seq, target) = h.next_ping();
    let effects = h.run_until(sent + timing().probe_timeout);
    let relay = node_at(ping_reqs(&effects)[0].0);
    h.recv(relay.0, ack(seq));
    let effects = h.run_until(sent + timing().probe_interval);
    assert!(changes(&effects, target.0).is_empty(), "{effects:?}");
    assert_eq!(h.liveness(target.0), Some(Liveness::Alive));
}

/// Node 1 is asked by node 2 to probe node 3; returns the seq of its own ping.
fn relay_ping_req(h: &mut Harness, requester_seq: Seq) -> Seq {
    let req = Message::PingReq {
        seq: requester_seq,
        target: id(3),
        target_addr: addr(3),
        rumors: Vec::new(),
    };
    let effects = h.recv(2, req);
    let p = pings(&effects);
    assert_eq!(p.len(), 1, "{effects:?}");
    assert_eq!((p[0].0, p[0].2), (addr(3), id(3)));
    p[0].1
}

#[test]
fn relay_pings_the_target_and_forwards_its_ack_with_the_requesters_seq() {
    let mut h = Harness::with(1, &[2, 3]);
    let seq = relay_ping_req(&mut h, 77);
    let effects = h.recv(3, ack(seq));
    let acks: Vec<_> = sends(&effects)
        .into_iter()
        .filter(|(_, _, m)| matches!(m, Message::Ack { seq: 77, .. }))
        .collect();
    assert_eq!(acks.len(), 1, "{effects:?}");
    assert_eq!(acks[0].0, addr(2));
    // Answered: no nack follows.
    let effects = h.run_until(h.now + timing().probe_interval);
    assert!(!sends(&effects)
        .iter()
        .any(|(_, _, m)| matches!(m, Message::Nack { .. })));
}

#[test]
fn relay_nacks_when_the_target_is_silent_for_80_percent_of_the_probe_timeout() {
    let mut h = Harness::with(1, &[2, 3]);
    let t0 = h.now;
    relay_ping_req(&mut h, 78);
    let nack_after = crate::time::scale(timing().probe_timeout, 0.8);
    let nacks = |e: &[Effect]| -> Vec<Addr> {
        sends(e)
            .into_iter()
            .filter(|(_, _, m)| matches!(m, Message::Nack { seq: 78 }))
            .map(|(to, _, _)| to)
            .collect()
    };
    let early = h.run_until(t0 + nack_after - ms(1));
    assert!(nacks(&early).is_empty());
    let effects = h.run_until(t0 + nack_after);
    assert_eq!(nacks(&effects), vec![addr(2)]);
}

#[test]
fn ping_for_another_node_id_is_not_acked() {
    let mut h = Harness::with(1, &[2]);
    let effects = h.recv(2, ping(5, 9));
    assert!(sends(&effects).is_empty(), "{effects:?}");
    assert_eq!(h.m.stats().misdirected_pings, 1);
    let effects = h.recv(2, ping(6, 1));
    let s = sends(&effects);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].0, addr(2));
    assert!(matches!(s[0].2, Message::Ack { seq: 6, .. }));
}

// ---- Lifeguard awareness --------------------------------------------------------------------

/// A probe in flight: when its ping went out, and its seq.
type Probing = (Millis, Seq);

fn first_probe(h: &mut Harness) -> Probing {
    let (sent, _, seq, _) = h.next_ping();
    (sent, seq)
}

/// Lets the probe go unanswered by its target (the relays nack if `nack`) until
/// the next probe tick closes it; returns the probe that tick starts.
fn fail_probe(h: &mut Harness, (sent, seq): Probing, nack: bool) -> Probing {
    let effects = h.run_until(sent + timing().probe_timeout);
    if nack {
        for (relay, ..) in ping_reqs(&effects) {
            h.recv(node_at(relay).0, Message::Nack { seq });
        }
    }
    first_probe(h)
}

/// Answers the probe; the next tick closes it. Returns the probe that tick starts.
fn ack_probe(h: &mut Harness, (_, seq): Probing) -> Probing {
    let target = h.m.probe.as_ref().expect("a probe in flight").target;
    h.recv(target.0, ack(seq));
    first_probe(h)
}

#[test]
fn failed_probe_without_nacks_raises_awareness_by_the_missing_nacks() {
    let mut h = Harness::with(1, &[2, 3, 4, 5]);
    let p = first_probe(&mut h);
    fail_probe(&mut h, p, false);
    // Three relays were asked (indirect_checks) and none nacked.
    assert_eq!(h.m.awareness(), 3);
}

#[test]
fn failed_probe_with_every_nack_does_not_raise_awareness() {
    let mut h = Harness::with(1, &[2, 3, 4, 5]);
    let p = first_probe(&mut h);
    fail_probe(&mut h, p, true);
    assert_eq!(h.m.awareness(), 0);
}

#[test]
fn failed_probe_without_relays_raises_awareness_by_one() {
    let mut h = Harness::with(1, &[2]);
    let p = first_probe(&mut h);
    fail_probe(&mut h, p, false);
    assert_eq!(h.m.awareness(), 1);
}

#[test]
fn ack_lowers_awareness() {
    let mut h = Harness::with(1, &[2]);
    let p = first_probe(&mut h);
    let p = fail_probe(&mut h, p, false);
    let p = fail_probe(&mut h, p, false);
    assert_eq!(h.m.awareness(), 2);
    ack_probe(&mut h, p);
    assert_eq!(h.m.awareness(), 1);
}

#[test]
fn awareness_stretches_the_probe_interval() {
    let mut h = Harness::with(1, &[2]);
    let p = first_probe(&mut h);
    let p = fail_probe(&mut h, p, false);
    assert_eq!(h.m.awareness(), 1);
    // The tick that closed the failed probe had already scheduled the next one
    // unstretched; the interval after that is (score + 1) times as long.
    let (third, seq) = ack_probe(&mut h, p);
    let (fourth, _) = ack_probe(&mut h, (third, seq));
    assert_eq!(fourth.since(third), timing().probe_interval * 2);
}

#[test]
fn ping_to_a_suspect_carries_its_suspicion() {
    let mut h = Harness::with(1, &[2]);
    h.update(suspect(2, 0, 3));
    // Empty the rumour queue: the suspicion must come from the buddy system.
    h.m.rumors = RumorQueue::default();
    let (_, rumors) = h
        .run_until_found(h.now + ms(10_000), |e| {
            sends(e).into_iter().find_map(|(to, _, m)| match m {
                Message::Ping { rumors, .. } if to == addr(2) => Some(rumors.clone()),
                _ => None,
            })
        })
        .expect("a ping to the suspect");
    assert!(
        rumors.iter().any(|r| matches!(
            r,
            Rumor::Member(MemberUpdate::Suspect { node, incarnation: Incarnation(0), .. })
                if *node == id(2)
        )),
        "{rumors:?}"
    );
}

// ---- reaping -------------------------------------------------------------------------------

/// Node 1 knew node 2 at incarnation 2, then heard `gone` about it; runs until
/// node 2 is reaped and checks when.
fn reaped(gone: MemberUpdate) -> Harness {
    let mut h = Harness::with(1, &[2, 3]).acking();
    h.update(alive(2, 2));
    let t0 = h.now;
    h.update(gone);
    let t = timing();
    let at = h
        .when(2, MemberChange::Reaped, t.reap_after * 2)
        .expect("reaped");
    assert!(at >= t0 + t.reap_after, "reaped early at {at:?}");
    assert!(at <= t0 + t.reap_after + reap_period(&t), "reaped late");
    assert!(h.m.member(id(2)).is_none());
    h
}

fn assert_not_revived(h: &mut Harness) {
    for stale in [alive(2, 2), alive(2, 1)] {
        let effects = h.update(stale);
        assert!(changes(&effects, 2).is_empty(), "{effects:?}");
        assert!(h.m.member(id(2)).is_none());
    }
    // Stale state from a lagging peer's push-pull does not revive it either (#312).
    let effects = h.recv(
        3,
        push_pull(PushPullKind::Periodic, vec![record(2, 2, Liveness::Alive)]),
    );
    assert!(changes(&effects, 2).is_empty(), "{effects:?}");
    assert!(h.m.member(id(2)).is_none());
}

#[test]
fn dead_member_is_reaped_and_its_tombstone_blocks_stale_alives() {
    let mut h = reaped(dead(2, 2, 3));
    assert_not_revived(&mut h);
}

#[test]
fn left_member_is_reaped_and_its_tombstone_blocks_stale_alives() {
    let mut h = reaped(left(2, 2));
    assert_not_revived(&mut h);
}

#[test]
fn reaped_member_rejoins_with_a_higher_incarnation() {
    let mut h = reaped(dead(2, 2, 3));
    let effects = h.update(alive(2, 3));
    assert_eq!(changes(&effects, 2), vec![MemberChange::Joined]);
    assert_eq!(h.liveness(2), Some(Liveness::Alive));
}

#[test]
fn active_members_are_never_reaped() {
    let mut h = Harness::with(1, &[2, 3]).acking();
    h.update(suspect(2, 0, 3));
    h.m.suspicions.clear(); // keep it suspect for the whole run
    let effects = h.run_until(h.now + timing().reap_after * 3);
    assert!(!changes(&effects, 2).contains(&MemberChange::Reaped));
    assert!(!changes(&effects, 3).contains(&MemberChange::Reaped));
}

// ---- rejoin ----------------------------------------------------------------------------------

#[test]
fn higher_incarnation_at_a_new_address_replaces_the_old_one() {
    let moved = Addr::from(([10, 0, 0, 2], 7002));
    let at_new_addr = |inc| MemberUpdate::Alive {
        node: id(2),
        incarnation: Incarnation(inc),
        addr: moved,
        meta: meta(2),
    };
    let mut h = Harness::with(1, &[2]);
    // Same incarnation: the claim is stale, the old address stays.
    h.update(at_new_addr(0));
    assert_eq!(h.m.member(id(2)).unwrap().addr, addr(2));
    let effects = h.update(at_new_addr(1));
    assert_eq!(changes(&effects, 2), vec![MemberChange::Updated]);
    assert_eq!(h.m.member(id(2)).unwrap().addr, moved);
    let (_, to, _, _) = h.next_ping();
    assert_eq!(to, moved, "probes go to the new address");

    // A node that died and comes back elsewhere (memberlist #157).
    h.update(dead(2, 1, 3));
    let effects = h.update(MemberUpdate::Alive {
        node: id(2),
        incarnation: Incarnation(2),
        addr: addr(2),
        meta: meta(2),
    });
    assert_eq!(changes(&effects, 2), vec![MemberChange::Joined]);
    assert_eq!(h.m.member(id(2)).unwrap().addr, addr(2));
}

// ---- leave -------------------------------------------------------------------------------------

#[test]
fn leave_gossips_left_stops_probing_and_then_stops() {
    let mut h = Harness::with(1, &[2, 3, 4]).acking();
    h.next_ping(); // probing runs before the leave
    h.m.leave(h.now, &mut h.out);
    let t0 = h.now;
    let effects = h.drain();
    let gossiped: Vec<Addr> = sends(&effects)
        .into_iter()
        .filter(|(_, _, m)| {
            matches!(m, Message::Gossip { .. }) && m.rumors().contains(&Rumor::Member(left(1, 0)))
        })
        .map(|(to, _, _)| to)
        .collect();
    assert!(!gossiped.is_empty(), "{effects:?}");
    // A probe tick falls in any window of one probe interval; none pings.
    assert!(timing().leave_propagate >= timing().probe_interval);
    let effects = h.run_until(t0 + timing().leave_propagate - ms(1));
    assert!(pings(&effects).is_empty(), "{effects:?}");
    assert!(local_changes(&effects).is_empty());
    let effects = h.run_until(t0 + timing().leave_propagate);
    assert!(pings(&effects).is_empty(), "{effects:?}");
    assert_eq!(local_changes(&effects), vec![LocalChange::Left]);
    assert!(h.m.has_left());
    assert_eq!(h.m.poll_timeout(), None);
    // Gone for good: nothing is answered any more.
    assert!(h.recv(2, ping(1, 1)).is_empty());
}

#[test]
fn members_apply_left_and_never_suspect_the_node_afterwards() {
    let mut h = Harness::with(2, &[1, 3]).acking();
    let effects = h.recv(1, gossip(vec![left(1, 0)]));
    assert_eq!(changes(&effects, 1), vec![MemberChange::Left]);
    assert_eq!(h.liveness(1), Some(Liveness::Left));
    // Late suspicions about it are stale.
    let effects = h.update(suspect(1, 0, 3));
    assert!(changes(&effects, 1).is_empty());
    let effects = h.run_until(h.now + ms(60_000));
    assert!(
        pings(&effects).iter().all(|p| p.2 != id(1)),
        "a departed node is not probed"
    );
    for change in changes(&effects, 1) {
        assert!(
            !matches!(change, MemberChange::Suspected | MemberChange::Failed),
            "{change:?}"
        );
    }
}

// ---- push-pull ----------------------------------------------------------------------------------

#[test]
fn join_push_pull_is_answered_with_the_full_member_list() {
    let mut h = Harness::with(1, &[2, 3]);
    let effects = h.recv(
        9,
        push_pull(PushPullKind::Join, vec![record(9, 0, Liveness::Alive)]),
    );
    assert_eq!(changes(&effects, 9), vec![MemberChange::Joined]);
    let s = sends(&effects);
    assert_eq!(s.len(), 1, "{effects:?}");
    let (to, channel, reply) = s[0];
    assert_eq!((to, channel), (addr(9), Channel::Stream));
    let Message::PushPull {
        kind: PushPullKind::Reply,
        members,
        ..
    } = reply
    else {
        panic!("not a reply: {reply:?}");
    };
    let mut ids: Vec<u64> = members.iter().map(|r| r.node.0).collect();
    ids.sort_unstable();
    for n in [1, 2, 3] {
        assert!(ids.contains(&n), "{ids:?}");
    }
    let me = members.iter().find(|r| r.node == id(1)).unwrap();
    assert_eq!(
        (me.liveness, me.addr, &me.meta),
        (Liveness::Alive, addr(1), &meta(1))
    );
}

#[test]
fn push_pull_reply_is_not_answered() {
    let mut h = Harness::with(1, &[2]);
    let effects = h.recv(
        2,
        push_pull(PushPullKind::Reply, vec![record(2, 0, Liveness::Alive)]),
    );
    assert!(sends(&effects).is_empty(), "{effects:?}");
}

#[test]
fn dead_record_in_a_push_pull_is_only_taken_as_suspect() {
    let mut h = Harness::with(1, &[2, 3]);
    let effects = h.recv(
        3,
        push_pull(PushPullKind::Periodic, vec![record(2, 0, Liveness::Dead)]),
    );
    assert_eq!(changes(&effects, 2), vec![MemberChange::Suspected]);
    assert_eq!(h.liveness(2), Some(Liveness::Suspect));
}

#[test]
fn reply_to_a_join_ends_the_joining_phase() {
    let mut h = Harness::at(1, START);
    h.m.join(h.now, vec![addr(1), addr(2)], &mut h.out);
    let effects = h.drain();
    let s = sends(&effects);
    assert_eq!(s.len(), 1, "only the other seed is asked: {effects:?}");
    assert_eq!((s[0].0, s[0].1), (addr(2), Channel::Stream));
    assert!(matches!(
        s[0].2,
        Message::PushPull {
            kind: PushPullKind::Join,
            ..
        }
    ));
    assert!(h.m.is_joining());
    let reply = push_pull(
        PushPullKind::Reply,
        vec![record(2, 0, Liveness::Alive), record(3, 0, Liveness::Alive)],
    );
    let effects = h.recv(2, reply);
    assert_eq!(local_changes(&effects), vec![LocalChange::Joined]);
    assert!(!h.m.is_joining());
    assert_eq!(h.liveness(2), Some(Liveness::Alive));
    assert_eq!(h.liveness(3), Some(Liveness::Alive));
}

// ---- application broadcasts ---------------------------------------------------------------------

fn app_gossip(origin: u64, seq: u64) -> Message {
    Message::Gossip {
        rumors: vec![Rumor::App(AppRumor {
            origin: id(origin),
            seq,
            payload: b"hello".to_vec(),
        })],
    }
}

fn broadcasts(effects: &[Effect]) -> Vec<(NodeId, u64)> {
    events(effects)
        .into_iter()
        .filter_map(|ev| match ev {
            Event::Broadcast { origin, seq, .. } => Some((origin, seq)),
            _ => None,
        })
        .collect()
}

fn app_rumors(effects: &[Effect]) -> Vec<(NodeId, u64)> {
    rumors_sent(effects)
        .into_iter()
        .filter_map(|r| match r {
            Rumor::App(a) => Some((a.origin, a.seq)),
            Rumor::Member(_) | Rumor::State(_) => None,
        })
        .collect()
}

#[test]
fn app_broadcast_is_delivered_once_and_passed_on() {
    let mut h = Harness::with(1, &[2, 3, 4]).acking();
    let effects = h.recv(2, app_gossip(3, 1));
    assert_eq!(broadcasts(&effects), vec![(id(3), 1)]);
    assert!(broadcasts(&h.recv(4, app_gossip(3, 1))).is_empty());
    // A different seq from the same origin is a different broadcast.
    assert_eq!(broadcasts(&h.recv(4, app_gossip(3, 2))), vec![(id(3), 2)]);
    let effects = h.run_until(h.now + timing().gossip_interval);
    assert!(app_rumors(&effects).contains(&(id(3), 1)), "{effects:?}");
}

#[test]
fn own_broadcast_is_gossiped_but_not_delivered_back() {
    let mut h = Harness::with(1, &[2, 3]).acking();
    h.m.broadcast(h.now, b"hello".to_vec());
    let effects = h.run_until(h.now + timing().gossip_interval);
    assert!(app_rumors(&effects).contains(&(id(1), 1)), "{effects:?}");
    assert!(broadcasts(&h.recv(2, app_gossip(1, 1))).is_empty());
}

// ---- bugs ------------------------------------------------------------------------------------------

#[test]
fn broadcast_seen_at_time_zero_is_delivered_once() {
    let mut h = Harness::at(1, Millis::ZERO).acking();
    for n in [2, 3] {
        h.update(alive(n, 0));
    }
    assert_eq!(broadcasts(&h.recv(2, app_gossip(3, 1))), vec![(id(3), 1)]);
    // Past the first reap sweep (every 5 s), well within the dedup window.
    h.run_until(Millis(2 * reap_period(&timing()).as_millis() as u64));
    assert!(broadcasts(&h.recv(3, app_gossip(3, 1))).is_empty());
}
