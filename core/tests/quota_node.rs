//! Quota leases through real nodes: holders outside the node (as the gateway runs
//! them) ask through `Command::Quota` and hear through `Event::Quota`; the lease
//! holder grants what a majority of keepers persisted; a new lease holder collects
//! before it grants, so a limit holds across a leader crash.

use aurora_core::quota::{Holder, OnPartition, QuotaKey, QuotaTiming, Session};
use aurora_core::testing::test_schema;
use aurora_core::testing::{Cluster, Host, Lossless};
use aurora_core::{
    Addr, ClusterId, Command, Config, Event, FailoverConfig, FailoverMode, Identity, Life,
    MemberMeta, Millis, Node, NodeId, Now, Restored, Role, Timing,
};

const CLUSTER: ClusterId = ClusterId(0x9a07);
const LIMIT: u64 = 100;
const KEY: QuotaKey = QuotaKey {
    quota: 7,
    window: 1,
};

fn addr(i: usize) -> Addr {
    Addr::from(([10, 0, 1, i as u8 + 1], 7946))
}

fn id(i: usize) -> NodeId {
    NodeId(i as u64 + 1)
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
        bootstrap_expect: 3,
    }
}

fn node(i: usize, now: Now) -> Node {
    let config = Config {
        cluster: CLUSTER,
        timing: Timing::lan(),
        state: Default::default(),
        failover: FailoverConfig {
            expected_voters: 3,
            ..FailoverConfig::with_mode(FailoverMode::ActivePassive)
        },
        admission: aurora_core::Admission::Auto,
    };
    let identity = Identity {
        id: id(i),
        life: Life(0x2000 + i as u64),
        addr: addr(i),
        meta: meta(i),
    };
    Node::new(
        config,
        identity,
        test_schema::arc(),
        90 + i as u64,
        Restored::default(),
        now,
    )
    .expect("valid config")
}

struct World {
    c: Cluster<Lossless>,
    holders: Vec<Holder>,
    admitted: u64,
    seen_events: usize,
}

impl World {
    fn new() -> World {
        let mut c = Cluster::new(Lossless::new(2), Millis(10_000));
        for i in 0..3 {
            let mut host = Host::new(CLUSTER, id(i), Life(0x2000 + i as u64));
            host.boot(node(i, c.clock()));
            c.add(host, addr(i));
        }
        for i in 0..3 {
            let seeds = if i == 0 { Vec::new() } else { vec![addr(0)] };
            c.with_node(i, |node, now| {
                node.handle_command(now, Command::Join { seeds })
            });
        }
        let holders = (0..3)
            .map(|i| {
                Holder::new(
                    Session {
                        node: id(i),
                        session: 1,
                    },
                    QuotaTiming::default(),
                )
            })
            .collect();
        World {
            c,
            holders,
            admitted: 0,
            seen_events: 0,
        }
    }

    /// The node whose grantor grants.
    fn grantor(&self) -> Option<usize> {
        (0..3).find(|&i| {
            self.c.hosts[i]
                .node
                .as_ref()
                .is_some_and(|n| n.view().quota_grantor().is_some_and(|g| g.is_ready()))
        })
    }

    /// The lease holder.
    fn leader(&self) -> Option<usize> {
        (0..3).find(|&i| {
            self.c.hosts[i]
                .node
                .as_ref()
                .is_some_and(|n| n.view().holds_lease_at(self.c.now))
        })
    }

    /// One step of 10 ms: every running node's holder tries `demand` admissions,
    /// hears its events, sends its asks.
    fn step(&mut self, demand: u64) {
        let until = Millis(self.c.now.0 + 10);
        self.c.run_until(until);
        let now = self.c.now;
        let events: Vec<(usize, Event)> = self.c.events[self.seen_events..].to_vec();
        self.seen_events = self.c.events.len();
        for (i, event) in events {
            if let Event::Quota { from, message } = event {
                let out = self.holders[i].handle(now, from, &message);
                self.send(i, out.sends);
            }
        }
        for i in 0..3 {
            let Some(node) = self.c.hosts[i].node.as_ref() else {
                continue;
            };
            let status = node.view().failover_status();
            let grantor = status.leader.map(|l| (l, status.epoch));
            let out = self.holders[i].set_grantor(now, grantor);
            self.send(i, out.sends);
            for _ in 0..demand {
                let admitted = self.holders[i].admit(
                    now,
                    KEY,
                    aurora_core::quota::QuotaLimit::per_window(LIMIT),
                    OnPartition::SpendLeased,
                    1,
                );
                self.admitted += u64::from(admitted.is_ok());
            }
            let out = self.holders[i].poll(now);
            self.send(i, out.sends);
        }
    }

    fn send(&mut self, i: usize, sends: Vec<(NodeId, aurora_core::quota::QuotaMessage)>) {
        for (to, message) in sends {
            self.c.with_node(i, |node, now| {
                node.handle_command(now, Command::Quota { to, message })
            });
        }
    }
}

#[test]
fn a_limit_is_granted_exactly_and_holds_across_a_leader_crash() {
    let mut w = World::new();
    while w.leader().is_none() {
        assert!(w.c.now < Millis(40_000), "no lease holder");
        w.step(0);
    }
    // No quota traffic until a holder asks: no grantor yet.
    assert_eq!(w.grantor(), None);
    // Half the limit, spread over the three holders.
    while w.admitted < LIMIT / 2 {
        assert!(w.c.now < Millis(60_000), "only {} admitted", w.admitted);
        w.step(1);
    }
    let first = w.grantor().expect("a grantor");
    assert_eq!(w.leader(), Some(first));
    // Every grant a holder heard of is on the disks of a majority of keepers.
    let granted: u64 = w.holders.iter().map(|h| h.slot(KEY).allowance).sum();
    let on_disk = |i: usize, w: &World| w.c.hosts[i].disk.quota.held(KEY);
    let keepers = (0..3).filter(|&i| on_disk(i, &w) >= granted).count();
    assert!(
        keepers >= 2,
        "{granted} granted; on disk: {:?}",
        (0..3).map(|i| on_disk(i, &w)).collect::<Vec<_>>()
    );
    // The lease holder crashes; another takes over, collects, and grants the rest.
    w.c.hosts[first].crash();
    let before = w.admitted;
    let end = Millis(w.c.now.0 + 60_000);
    while w.c.now < end && w.admitted < LIMIT {
        w.step(2);
    }
    let second = w.grantor().expect("a new grantor");
    assert_ne!(second, first);
    assert!(w.admitted > before, "the new grantor granted");
    // The crashed node's slice is stranded (it may have spent it): never more than
    // the limit, all but that slice admitted.
    assert!(w.admitted <= LIMIT, "{} admitted of {LIMIT}", w.admitted);
    let stranded = w.holders[first].slot(KEY).held() - w.holders[first].used(KEY).0;
    assert!(
        w.admitted + stranded >= LIMIT - QuotaTiming::default().max_slice(LIMIT),
        "{} admitted, {stranded} stranded",
        w.admitted
    );
    // Nothing broke the persistence contract on the way.
    for h in &w.c.hosts {
        assert!(
            h.contract.violations().is_empty(),
            "{:?}",
            h.contract.violations()
        );
    }
}
