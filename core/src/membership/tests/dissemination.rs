//! Dissemination (`membership::dissemination`): push-pull exchanges, joining
//! through them, and application broadcasts.

use super::*;

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
