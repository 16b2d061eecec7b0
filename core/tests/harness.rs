//! The `testing` harness on real nodes: a cluster forms and replicates with every
//! contract check on, and the contract checker itself catches each broken promise
//! (so a green run of the simulator or the fuzzer means the checks could have failed).

use aurora_core::state::store::Key;
use aurora_core::testing::test_schema::{self, NOTES};
use aurora_core::testing::{Cluster, Contract, Host, Lossless};
use aurora_core::wire::{self, MemberUpdate, Message, Rumor};
use aurora_core::{
    Addr, Channel, ClusterId, Command, Config, Identity, Incarnation, Life, MemberMeta, Millis,
    Node, NodeId, Now, PersistBatch, PersistItem, RecordBytes, RecordId, Restored, Role, Timing,
    Transmit,
};

const CLUSTER: ClusterId = ClusterId(0x7e57);

fn addr(i: usize) -> Addr {
    Addr::from(([10, 0, 0, i as u8 + 1], 7946))
}

fn id(i: usize) -> NodeId {
    NodeId(i as u64 + 1)
}

fn life(i: usize) -> Life {
    Life(0x1000 + i as u64)
}

fn meta(i: usize) -> MemberMeta {
    MemberMeta {
        name: format!("node-{}", i + 1),
        region: "r".into(),
        zone: "z".into(),
        advertise_url: String::new(),
        sync_addr: addr(i),
        promotion_tier: 0,
        capacity: 1,
        role: Role::Serving,
        version: "0".into(),
        config_fingerprint: 0,
        bootstrap_expect: 0,
    }
}

fn node(i: usize, disk: Restored, now: Now) -> Node {
    let identity = Identity {
        id: id(i),
        life: life(i),
        addr: addr(i),
        meta: meta(i),
    };
    let config = Config {
        cluster: CLUSTER,
        timing: Timing::lan(),
        state: Default::default(),
        failover: Default::default(),
        admission: aurora_core::Admission::Auto,
    };
    Node::new(
        config,
        identity,
        test_schema::arc(),
        40 + i as u64,
        disk,
        now,
    )
    .expect("valid config")
}

/// The wall clock of these tests runs `WALL - mono` ahead of the shared clock.
const WALL: u64 = 1_800_000_000_000;

fn cluster_of(n: usize) -> Cluster<Lossless> {
    let now = Millis(10_000);
    let mut c = Cluster::new(Lossless::new(2), now);
    c.wall_offset = WALL;
    for i in 0..n {
        let mut host = Host::new(CLUSTER, id(i), life(i));
        host.contract.check_store = true;
        host.boot(node(i, Restored::default(), c.clock()));
        c.add(host, addr(i));
    }
    for i in 0..n {
        let seeds = if i == 0 { Vec::new() } else { vec![addr(0)] };
        c.with_node(i, |node, now| {
            node.handle_command(now, Command::Join { seeds })
        });
    }
    c
}

fn model(version: u64) -> RecordBytes {
    test_schema::note(&format!("up-{version}"))
}

#[test]
fn a_cluster_forms_and_replicates_with_every_contract_check_on() {
    let mut c = cluster_of(3);
    c.run_until(Millis(20_000));
    for h in &c.hosts {
        let node = h.node.as_ref().expect("running");
        assert_eq!(
            node.view().active_count(),
            2,
            "{} sees both others",
            node.id()
        );
    }
    let m1 = RecordId::new("m1").expect("valid id");
    let put = Command::Put {
        collection: NOTES,
        id: m1.clone(),
        record: model(1),
    };
    let written = c.with_node(0, |node, now| node.handle_command(now, put));
    assert!(matches!(written, Some(Ok(Some(_)))), "{written:?}");
    c.run_until(Millis(30_000));
    let key = Key::Record(NOTES, m1);
    for h in &c.hosts {
        assert!(h.disk.entries.contains_key(&key), "committed everywhere");
        assert!(
            h.contract.violations().is_empty(),
            "{:?}",
            h.contract.violations()
        );
        let counts = h.contract.counts;
        assert!(counts.transmits > 10, "{counts:?}");
        assert!(counts.announcements > 0, "{counts:?}");
        assert!(counts.store_walks > 0, "{counts:?}");
    }
    let carried: u64 = c
        .hosts
        .iter()
        .map(|h| h.contract.counts.carried_entries)
        .sum();
    assert!(
        carried > 0,
        "the write travelled, so some transmit carried it"
    );
}

#[test]
fn a_crashed_host_restarts_from_what_it_committed() {
    let mut c = cluster_of(2);
    c.run_until(Millis(15_000));
    let put = Command::Put {
        collection: NOTES,
        id: RecordId::new("m2").expect("valid id"),
        record: model(2),
    };
    c.with_node(1, |node, now| node.handle_command(now, put));
    c.hosts[1].crash();
    let disk = c.hosts[1].disk.clone();
    assert_eq!(
        disk.own_seq, 1,
        "the acknowledged write was committed before its answer"
    );
    let now = c.clock();
    c.hosts[1].boot(node(1, disk, now));
    c.with_node(1, |node, now| {
        node.handle_command(
            now,
            Command::Join {
                seeds: vec![addr(0)],
            },
        )
    });
    c.run_until(Millis(25_000));
    for h in &c.hosts {
        assert!(
            h.contract.violations().is_empty(),
            "{:?}",
            h.contract.violations()
        );
    }
}

fn alive_of_self(incarnation: u64) -> Transmit {
    let message = Message::Gossip {
        rumors: vec![Rumor::Member(MemberUpdate::Alive {
            node: id(0),
            incarnation: Incarnation(incarnation),
            addr: addr(0),
            meta: meta(0),
        })],
    };
    Transmit {
        to: addr(1),
        channel: Channel::Datagram,
        bytes: wire::encode(CLUSTER, id(0), life(0), &message),
    }
}

#[test]
fn the_contract_catches_an_incarnation_announced_before_it_was_persisted() {
    let mut contract = Contract::new(CLUSTER, id(0), life(0), &Restored::default());
    contract.transmit(&alive_of_self(3));
    assert_eq!(contract.violations().len(), 1);
    assert_eq!(contract.violations()[0].check, "announced-after-persisted");
    contract.persisted(&PersistBatch {
        items: vec![PersistItem::Incarnation(Incarnation(3))],
    });
    contract.transmit(&alive_of_self(3));
    assert_eq!(
        contract.violations().len(),
        1,
        "persisted first: no new violation"
    );
    assert_eq!(contract.counts.announcements, 2);
}

#[test]
fn the_contract_catches_a_write_sent_before_it_was_persisted() {
    let mut donor = cluster_of(1);
    let put = Command::Put {
        collection: NOTES,
        id: RecordId::new("m3").expect("valid id"),
        record: model(3),
    };
    donor.with_node(0, |node, now| node.handle_command(now, put));
    let entry = donor.hosts[0]
        .disk
        .entries
        .values()
        .next()
        .expect("written")
        .clone();
    let message = Message::Gossip {
        rumors: vec![Rumor::State(entry.clone())],
    };
    let t = Transmit {
        to: addr(1),
        channel: Channel::Datagram,
        bytes: wire::encode(CLUSTER, id(0), life(0), &message),
    };
    let mut contract = Contract::new(CLUSTER, id(0), life(0), &Restored::default());
    contract.transmit(&t);
    assert_eq!(contract.violations()[0].check, "persist-before-transmit");
    contract.persisted(&PersistBatch {
        items: vec![PersistItem::Entry(Box::new(entry))],
    });
    contract.transmit(&t);
    assert_eq!(contract.violations().len(), 1);
}

#[test]
fn the_contract_catches_a_packet_that_does_not_decode_or_names_another_sender() {
    let mut contract = Contract::new(CLUSTER, id(0), life(0), &Restored::default());
    contract.transmit(&Transmit {
        to: addr(1),
        channel: Channel::Datagram,
        bytes: vec![0; 8],
    });
    let forged = Transmit {
        to: addr(1),
        channel: Channel::Datagram,
        bytes: wire::encode(CLUSTER, id(2), life(2), &Message::Gossip { rumors: vec![] }),
    };
    contract.transmit(&forged);
    let checks: Vec<&str> = contract.violations().iter().map(|v| v.check).collect();
    assert_eq!(checks, ["wire", "wire"]);
}
