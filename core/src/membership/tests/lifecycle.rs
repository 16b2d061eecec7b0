//! Lifecycle (`membership` itself): reaping dead and departed members behind
//! tombstones, and leaving gracefully.

use super::*;

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
