//! `Node` tests: what the whole node does on start-up, restart, seeds and datagram
//! sizes, driven through its public `handle_*`/`poll_*` API. The membership fixtures
//! (ids, addresses, identities, rumours, the `Membership` harness) are shared with
//! `crate::membership::tests`.

use crate::config::{Config, Timing};
use crate::id::{Addr, ClusterId, Incarnation};
use crate::membership::tests::{
    addr, alive, dead, gossip, id, identity, ms, timing, Harness, START,
};
use crate::membership::MemberChange;
use crate::node::{Command, Node, Output};
use crate::persist::{PersistBatch, PersistItem, Restored};
use crate::round::Effect;
use crate::state::record::test_schema;
use crate::testing::Host;
use crate::time::{Millis, Now};
use crate::wire::{Channel, Liveness, Message, PushPullKind};

const CLUSTER: ClusterId = ClusterId(42);

fn config(timing: Timing) -> Config {
    Config {
        cluster: CLUSTER,
        timing,
        state: Default::default(),
        failover: Default::default(),
        admission: Default::default(),
    }
}

fn new_node(n: u64, restored: Restored, now: Millis) -> Node {
    Node::new(
        config(timing()),
        identity(n),
        test_schema::arc(),
        n,
        restored,
        Now::at(now),
    )
    .expect("valid config")
}

fn outputs(node: &mut Node) -> Vec<Output> {
    std::iter::from_fn(|| node.poll_output()).collect()
}

#[test]
fn restart_starts_above_the_persisted_incarnation_and_persists_it_first() {
    let restored = Restored {
        incarnation: Some(Incarnation(4)),
        ..Restored::default()
    };
    let mut node = new_node(1, restored, START);
    assert_eq!(node.view().incarnation(), Incarnation(5));
    let out = outputs(&mut node);
    assert_eq!(
        out.first(),
        Some(&Output::Persist(PersistBatch {
            items: vec![PersistItem::Incarnation(Incarnation(5))]
        }))
    );
}

/// Regression: before 1339d52 a first start persisted nothing, so a node that
/// restarted before it ever refuted came back at #0 and was ignored for
/// `tombstone_ttl` by peers that had reaped it at #0.
#[test]
fn node_restarted_from_its_persisted_state_is_readmitted_after_being_reaped() {
    // First life: the harness's host keeps what the driver would have committed.
    let me = identity(1);
    let mut host = Host::new(CLUSTER, me.id, me.life);
    host.boot(new_node(1, Restored::default(), START));
    let _ = host.round();
    let announced = host.node.as_ref().expect("running").view().incarnation();
    // A peer knew it at that incarnation, saw it fail, and reaped it.
    let mut peer = Harness::with(2, &[3]).acking();
    peer.update(alive(1, announced.0));
    peer.update(dead(1, announced.0, 3));
    peer.when(1, MemberChange::Reaped, timing().reap_after * 2)
        .expect("reaped");
    // Second life, from the committed disk, joining through the peer.
    host.crash();
    host.boot(new_node(1, host.disk.clone(), peer.now));
    let node = host.node.as_mut().expect("running");
    node.handle_command(
        Now::at(peer.now),
        Command::Join {
            seeds: vec![addr(2)],
        },
    )
    .unwrap();
    let round = host.round().expect("running");
    for (_, effect) in round.effects {
        if let Effect::Transmit(t) = effect {
            let envelope = crate::wire::decode(CLUSTER, t.channel, &t.bytes).unwrap();
            peer.recv(1, envelope.message);
        }
    }
    assert_eq!(host.contract.violations(), &[]);
    assert_eq!(peer.liveness(1), Some(Liveness::Alive));
}

#[test]
fn every_datagram_sent_under_a_valid_config_is_accepted_by_peers() {
    let mut t = timing();
    t.max_datagram = crate::wire::MAX_DATAGRAM + 1;
    assert!(config(t.clone()).validate().is_err());
    t.max_datagram = crate::wire::MAX_DATAGRAM;
    let config = config(t);
    assert_eq!(config.validate(), Ok(()));
    let me = identity(1);
    let mut host = Host::new(CLUSTER, me.id, me.life);
    host.boot(
        Node::new(
            config,
            me,
            test_schema::arc(),
            1,
            Restored::default(),
            Now::at(START),
        )
        .unwrap(),
    );
    let node = host.node.as_mut().expect("running");
    let hello = crate::wire::encode(
        CLUSTER,
        id(2),
        crate::id::Life(2),
        &gossip(vec![alive(2, 0)]),
    );
    node.handle_datagram(Now::at(START), addr(2), &hello);
    for i in 0..64u8 {
        let payload = vec![i; crate::wire::MAX_APP_PAYLOAD];
        node.handle_command(Now::at(START), Command::Broadcast(payload))
            .unwrap();
    }
    let mut datagrams = 0;
    loop {
        let node = host.node.as_mut().expect("running");
        let Some(at) = node.poll_timeout().filter(|&at| at <= START + ms(1_000)) else {
            break;
        };
        node.handle_timeout(Now::at(at));
        // The harness's contract decodes every send on its channel (`wire`).
        let round = host.round().expect("running");
        datagrams += round
            .effects
            .iter()
            .filter(|(_, e)| matches!(e, Effect::Transmit(t) if t.channel == Channel::Datagram))
            .count();
    }
    assert_eq!(host.contract.violations(), &[]);
    assert!(datagrams > 0);
}

/// The join push-pulls among `outs`, by destination.
fn join_targets(outs: &[Output]) -> Vec<Addr> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Transmit(t) => {
                let envelope = crate::wire::decode(CLUSTER, t.channel, &t.bytes).ok()?;
                matches!(
                    envelope.message,
                    Message::PushPull {
                        kind: PushPullKind::Join,
                        ..
                    }
                )
                .then_some(t.to)
            }
            _ => None,
        })
        .collect()
}

#[test]
fn seeds_added_late_make_a_lone_node_join_and_widen_a_join_under_way() {
    // Started while none of its seeds resolved: a cluster of one.
    let mut alone = new_node(1, Restored::default(), START);
    let _ = outputs(&mut alone);
    assert!(!alone.view().is_joining());
    alone
        .handle_command(
            Now::at(START),
            Command::AddSeeds {
                seeds: vec![addr(1), addr(2)],
            },
        )
        .unwrap();
    assert!(alone.view().is_joining(), "a lone node joins at once");
    assert_eq!(
        join_targets(&outputs(&mut alone)),
        vec![addr(2)],
        "never itself"
    );

    // Already joining through seed 2: seed 3 resolves later and is asked too.
    let mut joining = new_node(1, Restored::default(), START);
    joining
        .handle_command(
            Now::at(START),
            Command::Join {
                seeds: vec![addr(2)],
            },
        )
        .unwrap();
    let _ = outputs(&mut joining);
    joining
        .handle_command(
            Now::at(START),
            Command::AddSeeds {
                seeds: vec![addr(3), addr(2)],
            },
        )
        .unwrap();
    assert_eq!(join_targets(&outputs(&mut joining)), vec![addr(2), addr(3)]);
}
