//! Probing (`membership::probe`): direct and indirect probes, relays and their
//! nacks, and Lifeguard's awareness score.

use super::*;

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
