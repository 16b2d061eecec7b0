//! Which storage life each node id speaks with: the id → life bindings.
//!
//! The wire header names its sender as (node id, life); the driver authenticates
//! that pair against the peer's certificate (the life is derived from the peer's
//! own public key). What the core adds is memory: the first admission of an id
//! binds it to a life, and from then on a message that claims the id with another
//! life is dropped before any state machine sees it, counted
//! (`identity_mismatch`) and reported once per presented life
//! ([`Event::IdentityMismatch`](crate::Event)). So a holder of the cluster secret
//! can join as a *new* node, but never speak as an existing one.
//!
//! Where bindings come from, strongest first:
//!
//! * **The voter roster.** It names every voter with its life, is changed only by
//!   the lease holder, persisted and carried by every lease message, so adopting a
//!   roster binds its voters (replacing whatever this node recorded), and a roster
//!   that no longer lists a voter releases that voter's binding: an operator's
//!   `forget` on the leader releases the id cluster-wide.
//! * **First contact** (`cluster.admission: auto`): an id heard of for the first
//!   time is bound to the life its first message carries, and the binding is
//!   persisted.
//! * **An operator** (`cluster.admission: manual`): an unknown id is only recorded
//!   as pending (visible, every message dropped) until [`Bindings::admit`].
//!
//! A binding is released by `forget` ([`Bindings::release`]); the id may then be
//! bound again, to a new life (a node that lost its disk, or whose key an operator
//! replaced). Non-voters' bindings are per node: forget releases them where it is
//! sent. Everything here is bounded: pending ids and reported mismatches are capped.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::id::{Addr, Life, NodeId};
use crate::time::Millis;

/// Most unknown (id, life) pairs kept as pending admission, and most mismatching
/// pairs remembered for status; further ones are counted only.
pub const MAX_TRACKED: usize = 256;

/// How a node treats an id it has no binding for.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Admission {
    /// Bind it to the life of its first message (trust on first use).
    #[default]
    Auto,
    /// Keep it pending, dropping its messages, until an operator admits it.
    Manual,
}

/// What [`Bindings::check`] decided about one message.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The id is bound to this life: accept.
    Bound,
    /// First contact: now bound to this life (persist it), accept.
    Admitted,
    /// The id is bound to another life: drop.
    Mismatch {
        bound: Life,
        /// The first time this (id, life) was seen mismatching (report it).
        first: bool,
    },
    /// Unknown id under manual admission: drop, keep it pending.
    Pending {
        /// The first time this (id, life) asked (report it).
        first: bool,
    },
}

/// An (id, life) seen but not accepted: pending admission, or mismatching its id's
/// binding.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Stranger {
    /// The id it claimed.
    pub node: NodeId,
    /// The life it presented.
    pub life: Life,
    /// The address its last message came from.
    pub addr: Addr,
    /// When it was first turned away (this node's monotonic clock).
    pub first_seen: Millis,
    /// When its last message was turned away.
    pub last_seen: Millis,
    /// Messages dropped from it.
    pub dropped: u64,
}

/// One node's id → life bindings and the strangers it turned away.
#[derive(Clone, Debug)]
pub struct Bindings {
    me: NodeId,
    life: Life,
    admission: Admission,
    bound: BTreeMap<NodeId, Life>,
    pending: BTreeMap<(NodeId, Life), Stranger>,
    mismatched: BTreeMap<(NodeId, Life), Stranger>,
    /// Messages dropped because their (id, life) did not match the binding.
    pub mismatches: u64,
    /// Messages dropped because their id waits for an operator.
    pub pending_drops: u64,
}

impl Bindings {
    /// This node (`me` in `life`, always bound) and the bindings restored from disk.
    pub fn new(
        me: NodeId,
        life: Life,
        admission: Admission,
        restored: BTreeMap<NodeId, Life>,
    ) -> Bindings {
        let mut bound = restored;
        bound.insert(me, life);
        Bindings {
            me,
            life,
            admission,
            bound,
            pending: BTreeMap::new(),
            mismatched: BTreeMap::new(),
            mismatches: 0,
            pending_drops: 0,
        }
    }

    /// Decides on a message from `node` in `life`, arriving from `addr`.
    pub fn check(&mut self, now: Millis, node: NodeId, life: Life, addr: Addr) -> Verdict {
        match self.bound.get(&node) {
            Some(&bound) if bound == life => Verdict::Bound,
            Some(&bound) => {
                self.mismatches += 1;
                let first = note(&mut self.mismatched, now, node, life, addr);
                Verdict::Mismatch { bound, first }
            }
            None => match self.admission {
                Admission::Auto => {
                    self.bound.insert(node, life);
                    Verdict::Admitted
                }
                Admission::Manual => {
                    self.pending_drops += 1;
                    let first = note(&mut self.pending, now, node, life, addr);
                    Verdict::Pending { first }
                }
            },
        }
    }

    /// Binds `node` to `life` on an operator's word (or the roster's): returns
    /// whether the binding changed (persist it).
    pub fn admit(&mut self, node: NodeId, life: Life) -> bool {
        if node == self.me {
            return false;
        }
        self.pending.retain(|&(n, _), _| n != node);
        self.mismatched.remove(&(node, life));
        self.bound.insert(node, life) != Some(life)
    }

    /// Forgets `node`'s binding (an operator's `forget`, or the roster dropped it):
    /// its next first contact binds it again. Returns whether one was released.
    /// This node's own binding is never released.
    pub fn release(&mut self, node: NodeId) -> bool {
        if node == self.me {
            return false;
        }
        self.mismatched.retain(|&(n, _), _| n != node);
        self.bound.remove(&node).is_some()
    }

    /// The life `node` is bound to.
    pub fn life_of(&self, node: NodeId) -> Option<Life> {
        self.bound.get(&node).copied()
    }

    /// Whether an unknown (id, life) is bound on first contact or held for an operator.
    pub fn admission(&self) -> Admission {
        self.admission
    }

    /// Every binding, this node's own included.
    pub fn bound(&self) -> impl Iterator<Item = (NodeId, Life)> + '_ {
        self.bound.iter().map(|(&n, &l)| (n, l))
    }

    /// Ids waiting for an operator (manual admission), oldest first by id.
    pub fn pending(&self) -> impl Iterator<Item = &Stranger> {
        self.pending.values()
    }

    /// Messages that claimed a bound id with another life, by (id, life).
    pub fn mismatched(&self) -> impl Iterator<Item = &Stranger> {
        self.mismatched.values()
    }

    /// This node's own life.
    pub fn own_life(&self) -> Life {
        self.life
    }
}

/// Records a sighting of a stranger; returns whether it is the first (the map is
/// capped at [`MAX_TRACKED`]: beyond it, new strangers are counted only).
fn note(
    map: &mut BTreeMap<(NodeId, Life), Stranger>,
    now: Millis,
    node: NodeId,
    life: Life,
    addr: Addr,
) -> bool {
    if let Some(s) = map.get_mut(&(node, life)) {
        s.last_seen = now;
        s.addr = addr;
        s.dropped = s.dropped.saturating_add(1);
        return false;
    }
    if map.len() >= MAX_TRACKED {
        return false;
    }
    map.insert(
        (node, life),
        Stranger {
            node,
            life,
            addr,
            first_seen: now,
            last_seen: now,
            dropped: 1,
        },
    );
    true
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn addr() -> Addr {
        Addr::from(([127, 0, 0, 9], 7946))
    }

    fn bindings(admission: Admission) -> Bindings {
        Bindings::new(NodeId(1), Life(100), admission, BTreeMap::new())
    }

    #[test]
    fn first_contact_binds_and_another_life_is_then_refused() {
        let mut b = bindings(Admission::Auto);
        let t = Millis(5);
        assert_eq!(b.check(t, NodeId(2), Life(20), addr()), Verdict::Admitted);
        assert_eq!(b.check(t, NodeId(2), Life(20), addr()), Verdict::Bound);
        assert_eq!(
            b.check(t, NodeId(2), Life(21), addr()),
            Verdict::Mismatch {
                bound: Life(20),
                first: true
            }
        );
        assert_eq!(
            b.check(t, NodeId(2), Life(21), addr()),
            Verdict::Mismatch {
                bound: Life(20),
                first: false
            }
        );
        assert_eq!(b.mismatches, 2);
        assert_eq!(b.mismatched().next().map(|s| s.dropped), Some(2));
    }

    #[test]
    fn nobody_speaks_as_this_node() {
        let mut b = bindings(Admission::Auto);
        assert!(matches!(
            b.check(Millis(1), NodeId(1), Life(7), addr()),
            Verdict::Mismatch { .. }
        ));
        assert!(!b.release(NodeId(1)));
        assert!(!b.admit(NodeId(1), Life(7)));
        assert_eq!(b.life_of(NodeId(1)), Some(Life(100)));
    }

    #[test]
    fn release_lets_a_new_life_bind() {
        let mut b = bindings(Admission::Auto);
        b.check(Millis(1), NodeId(2), Life(20), addr());
        assert!(b.release(NodeId(2)));
        assert_eq!(
            b.check(Millis(2), NodeId(2), Life(21), addr()),
            Verdict::Admitted
        );
        assert_eq!(b.life_of(NodeId(2)), Some(Life(21)));
    }

    #[test]
    fn manual_admission_keeps_strangers_pending_until_admitted() {
        let mut b = bindings(Admission::Manual);
        assert_eq!(
            b.check(Millis(1), NodeId(3), Life(30), addr()),
            Verdict::Pending { first: true }
        );
        assert_eq!(b.pending().count(), 1);
        assert!(b.admit(NodeId(3), Life(30)));
        assert_eq!(b.pending().count(), 0);
        assert_eq!(
            b.check(Millis(2), NodeId(3), Life(30), addr()),
            Verdict::Bound
        );
    }

    #[test]
    fn strangers_are_bounded() {
        let mut b = bindings(Admission::Manual);
        for n in 0..(MAX_TRACKED as u64 + 50) {
            b.check(Millis(1), NodeId(1000 + n), Life(n), addr());
        }
        assert_eq!(b.pending().count(), MAX_TRACKED);
        assert_eq!(b.pending_drops, MAX_TRACKED as u64 + 50);
    }

    // ---- through a Node: the gate in front of every state machine -------------

    pub(crate) mod node {
        use super::super::Admission;
        use crate::config::{Config, Identity, MemberMeta, Role};
        use crate::id::{Addr, ClusterId, Incarnation, Life, NodeId};
        use crate::node::{Command, Node, Output};
        use crate::persist::{PersistItem, Restored};
        use crate::time::{Millis, Now};
        use crate::wire::{self, MemberUpdate, Message, Rumor};
        use crate::Event;

        pub(crate) const CLUSTER: ClusterId = ClusterId(5);
        const T: Millis = Millis(1_000_000);

        pub(crate) fn addr(n: u64) -> Addr {
            Addr::from(([10, 0, 0, 1], 7000 + n as u16))
        }

        pub(crate) fn meta(n: u64) -> MemberMeta {
            MemberMeta {
                name: format!("node-{n}"),
                region: String::new(),
                zone: String::new(),
                advertise_url: String::new(),
                sync_addr: addr(n),
                promotion_tier: 0,
                capacity: 1,
                role: Role::Serving,
                version: String::new(),
                config_fingerprint: 1,
                bootstrap_expect: 0,
            }
        }

        fn node(admission: Admission, restored: Restored) -> Node {
            let config = Config {
                cluster: CLUSTER,
                timing: Default::default(),
                state: Default::default(),
                failover: Default::default(),
                admission,
            };
            let identity = Identity {
                id: NodeId(1),
                life: Life(100),
                addr: addr(1),
                meta: meta(1),
            };
            Node::new(
                config,
                identity,
                crate::state::record::test_schema::arc(),
                1,
                restored,
                Now::at(T),
            )
            .expect("valid config")
        }

        /// "n`n` is alive", sent by n`n` in `life`.
        fn hello(n: u64, life: u64) -> Vec<u8> {
            let message = Message::Gossip {
                rumors: vec![Rumor::Member(MemberUpdate::Alive {
                    node: NodeId(n),
                    incarnation: Incarnation(0),
                    addr: addr(n),
                    meta: meta(n),
                })],
            };
            wire::encode(CLUSTER, NodeId(n), Life(life), &message)
        }

        /// "n`victim` is dead", claimed by n`sender` in `life`.
        fn death(sender: u64, life: u64, victim: u64) -> Vec<u8> {
            let message = Message::Gossip {
                rumors: vec![Rumor::Member(MemberUpdate::Dead {
                    node: NodeId(victim),
                    incarnation: Incarnation(1_000),
                    from: NodeId(sender),
                })],
            };
            wire::encode(CLUSTER, NodeId(sender), Life(life), &message)
        }

        fn drain(n: &mut Node) -> Vec<Output> {
            std::iter::from_fn(|| n.poll_output()).collect()
        }

        fn bindings_persisted(out: &[Output]) -> Vec<(NodeId, Option<Life>)> {
            out.iter()
                .filter_map(|o| match o {
                    Output::Persist(b) => Some(b.items.iter()),
                    _ => None,
                })
                .flatten()
                .filter_map(|i| match i {
                    PersistItem::Binding { node, life } => Some((*node, *life)),
                    _ => None,
                })
                .collect()
        }

        #[test]
        fn another_life_under_a_bound_id_is_dropped_counted_and_reported() {
            let mut n = node(Admission::Auto, Restored::default());
            n.handle_datagram(Now::at(T), addr(2), &hello(2, 20));
            let out = drain(&mut n);
            assert_eq!(bindings_persisted(&out), vec![(NodeId(2), Some(Life(20)))]);
            assert!(n.view().member(NodeId(2)).is_some());
            // A secret holder speaks as n2 with another key: "n2 says n2 is dead".
            n.handle_datagram(Now::at(T), addr(9), &death(2, 21, 2));
            n.handle_datagram(Now::at(T), addr(9), &death(2, 21, 2));
            let out = drain(&mut n);
            let reported: Vec<&Event> = out
                .iter()
                .filter_map(|o| match o {
                    Output::Event(e @ Event::IdentityMismatch { .. }) => Some(e),
                    _ => None,
                })
                .collect();
            assert_eq!(
                reported,
                vec![&Event::IdentityMismatch {
                    node: NodeId(2),
                    presented: Life(21),
                    bound: Life(20),
                    from: addr(9),
                }]
            );
            assert_eq!(n.metrics().identity_mismatch, 2);
            let m = n.view().member(NodeId(2)).expect("still known");
            assert_eq!(m.liveness, crate::wire::Liveness::Alive);
            assert_eq!(m.incarnation, Incarnation(0));
            // Nobody speaks as this node either.
            n.handle_datagram(Now::at(T), addr(9), &death(1, 7, 2));
            assert_eq!(n.metrics().identity_mismatch, 3);
        }

        #[test]
        fn forget_releases_the_binding_and_a_new_life_binds() {
            let mut n = node(Admission::Auto, Restored::default());
            n.handle_datagram(Now::at(T), addr(2), &hello(2, 20));
            drain(&mut n);
            n.handle_command(Now::at(T), Command::ForgetMember { node: NodeId(2) })
                .expect("forget");
            assert_eq!(bindings_persisted(&drain(&mut n)), vec![(NodeId(2), None)]);
            n.handle_datagram(Now::at(T), addr(2), &hello(2, 21));
            assert_eq!(
                bindings_persisted(&drain(&mut n)),
                vec![(NodeId(2), Some(Life(21)))]
            );
            assert_eq!(n.bindings().life_of(NodeId(2)), Some(Life(21)));
            assert_eq!(n.metrics().identity_mismatch, 0);
        }

        #[test]
        fn bindings_survive_a_restart() {
            let mut restored = Restored::default();
            let mut n = node(Admission::Auto, Restored::default());
            n.handle_datagram(Now::at(T), addr(2), &hello(2, 20));
            for o in drain(&mut n) {
                if let Output::Persist(b) = o {
                    restored.apply(&b);
                }
            }
            let mut again = node(Admission::Auto, restored);
            again.handle_datagram(Now::at(T), addr(2), &hello(2, 21));
            assert_eq!(again.metrics().identity_mismatch, 1);
        }

        #[test]
        fn manual_admission_holds_a_stranger_until_an_operator_admits_it() {
            let mut n = node(Admission::Manual, Restored::default());
            n.handle_datagram(Now::at(T), addr(3), &hello(3, 30));
            let out = drain(&mut n);
            assert!(out.iter().any(|o| matches!(
                o,
                Output::Event(Event::AdmissionPending {
                    node: NodeId(3),
                    life: Life(30),
                    ..
                })
            )));
            assert!(n.view().member(NodeId(3)).is_none(), "not admitted");
            assert_eq!(n.metrics().pending_admission, 1);
            assert_eq!(n.bindings().pending().count(), 1);
            n.handle_command(
                Now::at(T),
                Command::AdmitMember {
                    node: NodeId(3),
                    life: Life(30),
                },
            )
            .expect("admit");
            n.handle_datagram(Now::at(T), addr(3), &hello(3, 30));
            assert!(n.view().member(NodeId(3)).is_some(), "admitted");
            assert_eq!(n.bindings().pending().count(), 0);
        }
    }
}
