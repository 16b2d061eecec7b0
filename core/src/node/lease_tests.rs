//! Node tests of lease traffic: messages the node cannot address (an event once and
//! a counter each time), the persistence contract the outbox's held section keeps,
//! and the wall clock that comes with each call.

use super::*;
use crate::failover::{
    FailoverConfig, FailoverMode, LeaseMessage, Roster, RosterState, RosterVersion,
};
use crate::wire::MemberUpdate;

// The node-level fixtures of the identity tests: lives numbered like ids.
use crate::identity::tests::node::{addr, meta, CLUSTER};

const T: Millis = Millis(1_000_000);

/// Node 1 restarted with a roster of voters 1, 2 and 3 (lives = ids) but has
/// not heard from either peer yet: it campaigns to voters it has no address for.
fn restarted_voter(now: Now) -> Node {
    let config = Config {
        cluster: CLUSTER,
        timing: Default::default(),
        state: Default::default(),
        failover: FailoverConfig::with_mode(FailoverMode::ActivePassive),
        admission: Default::default(),
    };
    let identity = Identity {
        id: NodeId(1),
        life: Life(1),
        addr: addr(1),
        meta: meta(1),
    };
    let roster = Roster::with_lives(
        RosterVersion {
            epoch: Epoch(1),
            seq: 0,
        },
        (1..=3).map(|n| (NodeId(n), Life(n))),
    );
    let restored = Restored {
        incarnation: Some(Incarnation(3)),
        epoch: Some(Epoch(1)),
        roster: Some(RosterState {
            roster: Some(roster),
            bootstrapped: true,
        }),
        ..Restored::default()
    };
    Node::new(
        config,
        identity,
        crate::state::record::test_schema::arc(),
        7,
        restored,
        now,
    )
    .expect("valid config")
}

/// The gossip with which node `n` tells of itself (alive, incarnation 0).
fn introduce(n: u64) -> Vec<u8> {
    wire::encode(
        CLUSTER,
        NodeId(n),
        Life(n),
        &Message::Gossip {
            rumors: vec![Rumor::Member(MemberUpdate::Alive {
                node: NodeId(n),
                incarnation: Incarnation(0),
                addr: addr(n),
                meta: meta(n),
            })],
        },
    )
}

/// Runs the node's timers for `span` ms; returns what it output.
fn run(node: &mut Node, from: Millis, span: u64) -> Vec<Output> {
    let mut out = Vec::new();
    let end = Millis(from.0 + span);
    while let Some(at) = node.poll_timeout().filter(|t| *t <= end) {
        node.handle_timeout(Now::at(at.max(from)));
        out.extend(std::iter::from_fn(|| node.poll_output()));
    }
    out
}

fn undeliverable(out: &[Output]) -> Vec<NodeId> {
    out.iter()
        .filter_map(|o| match o {
            Output::Event(Event::FailoverUndeliverable { to }) => Some(*to),
            _ => None,
        })
        .collect()
}

fn sent_to(out: &[Output], a: Addr) -> usize {
    out.iter()
        .filter(|o| matches!(o, Output::Transmit(t) if t.to == a))
        .count()
}

#[test]
fn a_lease_message_to_an_unknown_voter_is_an_event_once_and_a_counter_each_time() {
    let mut node = restarted_voter(Now::at(T));
    let out = run(&mut node, T, 20_000);
    assert_eq!(undeliverable(&out), vec![NodeId(2), NodeId(3)], "{out:?}");
    let dropped = node.metrics().failover_undeliverable;
    assert!(dropped > 2, "every retried campaign counts: {dropped}");
    assert_eq!(sent_to(&out, addr(2)) + sent_to(&out, addr(3)), 0);

    // n2 introduces itself: its lease messages now go out, n3's still do not,
    // and neither is reported again.
    let hello = introduce(2);
    let later = Millis(T.0 + 20_000);
    node.handle_datagram(Now::at(later), addr(2), &hello);
    let mut out: Vec<Output> = std::iter::from_fn(|| node.poll_output()).collect();
    out.extend(run(&mut node, later, 20_000));
    assert!(sent_to(&out, addr(2)) > 0, "n2 is reachable now: {out:?}");
    assert_eq!(undeliverable(&out), vec![], "reported once per stretch");
    assert!(
        node.metrics().failover_undeliverable > dropped,
        "n3 still counts"
    );
}

/// The persistence contract for lease traffic, which the outbox's held section
/// keeps: every lease message the node transmits carries an epoch it has
/// already output a `Persist` for, and a roster no newer than the one it
/// persisted before. n2 is known before the quiet period ends, so the first
/// campaign (a grown epoch) goes out in the step that grows it; n2's grant
/// then wins the lease, and the announcing round carries the roster restamped
/// at the new epoch in the step that restamps it.
#[test]
fn a_lease_message_follows_the_persist_of_its_epoch_and_roster() {
    fn lease_of(t: &Transmit) -> Option<LeaseMessage> {
        match wire::decode(CLUSTER, t.channel, &t.bytes).map(|e| e.message) {
            Ok(Message::Lease(msg)) => Some(msg),
            _ => None,
        }
    }
    let mut node = restarted_voter(Now::at(T));
    let mut out: Vec<Output> = std::iter::from_fn(|| node.poll_output()).collect();
    let hello = introduce(2);
    let t1 = Millis(T.0 + 500);
    node.handle_datagram(Now::at(t1), addr(2), &hello);
    out.extend(std::iter::from_fn(|| node.poll_output()));
    out.extend(run(&mut node, t1, 3_000));
    let asked = out.iter().rev().find_map(|o| match o {
        Output::Transmit(t) if t.to == addr(2) => lease_of(t),
        _ => None,
    });
    let Some(LeaseMessage::Request { epoch, round, .. }) = asked else {
        panic!("no campaign reached n2: {out:?}");
    };
    let grant = wire::encode(
        CLUSTER,
        NodeId(2),
        Life(2),
        &Message::Lease(LeaseMessage::Grant { epoch, round }),
    );
    let t2 = Millis(T.0 + 3_500);
    node.handle_datagram(Now::at(t2), addr(2), &grant);
    out.extend(std::iter::from_fn(|| node.poll_output()));
    assert!(node.view().holds_lease_at(t2), "n1 leads with n2's grant");

    // What `restarted_voter` restored counts as persisted.
    let restored = RosterVersion {
        epoch: Epoch(1),
        seq: 0,
    };
    let mut persisted = (Epoch(1), Some(restored));
    let mut carried = (Epoch(1), None);
    for o in &out {
        match o {
            Output::Persist(batch) => {
                for item in &batch.items {
                    match item {
                        PersistItem::Epoch(e) => persisted.0 = persisted.0.max(*e),
                        PersistItem::Roster(r) => persisted.1 = persisted.1.max(r.version()),
                        _ => {}
                    }
                }
            }
            Output::Transmit(t) => {
                let Some(msg) = lease_of(t) else { continue };
                let roster = msg.roster().map(|r| r.version);
                assert!(msg.epoch() <= persisted.0, "{msg:?} before its epoch");
                assert!(roster <= persisted.1, "{msg:?} before its roster");
                carried = (carried.0.max(msg.epoch()), carried.1.max(roster));
            }
            Output::Event(_) => {}
        }
    }
    let restamped = RosterVersion { epoch, seq: 0 };
    assert!(epoch > Epoch(1), "the campaign grew the epoch");
    assert_eq!(carried, (epoch, Some(restamped)), "both were carried");
}

/// The wall clock is read at every call, not once at start: a step of the
/// wall clock while the node runs (NTP, an operator) stamps the next write.
#[test]
fn each_call_brings_its_wall_clock_and_writes_follow_it() {
    use crate::state::record::test_schema::NOTES;
    use crate::state::record::RecordId;
    const W: u64 = 1_800_000_000_000;
    let mut node = restarted_voter(Now::new(T, W));
    let _ = std::iter::from_fn(|| node.poll_output()).count();
    let delete = || Command::Delete {
        collection: NOTES,
        id: RecordId::new("m1").expect("valid id"),
    };
    let first = node.handle_command(Now::new(T, W), delete());
    assert_eq!(first.map(|h| h.map(|h| h.wall)), Ok(Some(W)));
    // One second later on the monotonic clock, an hour later on the wall.
    let later = Millis(T.0 + 1_000);
    let stepped = W + 3_600_000;
    let second = node.handle_command(Now::new(later, stepped), delete());
    assert_eq!(second.map(|h| h.map(|h| h.wall)), Ok(Some(stepped)));
    assert_eq!(node.view().wall(later), stepped);
}
