//! The SWIM rules (`membership::rules`): refutation, incarnation order, suspicion
//! timeouts and confirmations, a member back at a new address.

use super::*;

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
