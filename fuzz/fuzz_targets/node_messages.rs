//! A sequence of packets, waits and commands (format in `src/lib.rs`) fed to a
//! `Node` that knows two members. It must never panic, and:
//! - its incarnation never decreases;
//! - `poll_timeout` is `Some` until the node has left, `None` after;
//! - every packet it sends decodes on the channel it is sent on;
//! - it never announces an incarnation of its own above the highest it asked the
//!   driver to persist before that send.

#![no_main]

use aurora_core::wire::{self, MemberUpdate, Message, Rumor};
use aurora_core::{
    Command, Config, Event, Identity, Incarnation, LocalChange, MemberMeta, Millis, Node, Output,
    PersistItem, Restored, Role, Timing,
};
use aurora_fuzz::{addr_of, packet, parse, sender, Op, CLUSTER, MEMBER_A, MEMBER_B, SELF};
use libfuzzer_sys::fuzz_target;

fn meta(name: &str) -> MemberMeta {
    MemberMeta {
        name: name.to_string(),
        region: "r".into(),
        zone: "z".into(),
        advertise_url: String::new(),
        sync_addr: addr_of(SELF),
        promotion_tier: 0,
        capacity: 1,
        role: Role::Serving,
        version: "0".into(),
        config_fingerprint: 0,
    }
}

struct Checker {
    incarnation: Incarnation,
    persisted: Option<Incarnation>,
    left: bool,
}

impl Checker {
    fn drain(&mut self, node: &mut Node) {
        while let Some(out) = node.poll_output() {
            match out {
                Output::Persist(batch) => {
                    for item in batch.items {
                        #[allow(irrefutable_let_patterns)]
                        if let PersistItem::Incarnation(i) = item {
                            self.persisted = self.persisted.max(Some(i));
                        }
                    }
                }
                Output::Transmit(t) => {
                    let envelope = wire::decode(CLUSTER, t.channel, &t.bytes)
                        .unwrap_or_else(|e| panic!("undecodable {} B send: {e}", t.bytes.len()));
                    assert_eq!(envelope.sender, SELF);
                    for i in announced(&envelope.message) {
                        assert!(
                            Some(i) <= self.persisted,
                            "announced {i:?} before persisting it ({:?})",
                            self.persisted
                        );
                    }
                }
                Output::Event(Event::Local(LocalChange::Left)) => self.left = true,
                Output::Event(_) => {}
            }
        }
        let now = node.membership().incarnation();
        assert!(now >= self.incarnation, "{now:?} < {:?}", self.incarnation);
        self.incarnation = now;
        assert_eq!(node.membership().has_left(), self.left);
        assert_eq!(node.poll_timeout().is_some(), !self.left);
    }
}

/// Incarnations of this node that a message announces.
fn announced(message: &Message) -> Vec<Incarnation> {
    let mut out: Vec<Incarnation> = message
        .rumors()
        .iter()
        .filter_map(|r| match r {
            Rumor::Member(MemberUpdate::Alive {
                node, incarnation, ..
            }) if *node == SELF => Some(*incarnation),
            _ => None,
        })
        .collect();
    if let Message::PushPull { members, .. } = message {
        out.extend(
            members
                .iter()
                .filter(|r| r.node == SELF)
                .map(|r| r.incarnation),
        );
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let ops = parse(data);
    let mut now = Millis(1_000_000);
    let identity = Identity {
        id: SELF,
        addr: addr_of(SELF),
        meta: meta("self"),
    };
    let config = Config {
        cluster: CLUSTER,
        timing: Timing::lan(),
        state: Default::default(),
    };
    let mut node = Node::new(config, identity, 7, Restored::default(), now).expect("valid");
    let mut checker = Checker {
        incarnation: node.membership().incarnation(),
        persisted: None,
        left: false,
    };
    // Two known members, introduced the way a peer would: by gossip.
    for member in [MEMBER_A, MEMBER_B] {
        let hello = Message::Gossip {
            rumors: vec![Rumor::Member(MemberUpdate::Alive {
                node: member,
                incarnation: Incarnation(0),
                addr: addr_of(member),
                meta: meta("peer"),
            })],
        };
        node.handle_datagram(now, addr_of(member), &wire::encode(CLUSTER, member, &hello));
    }
    checker.drain(&mut node);
    assert_eq!(node.membership().active_count(), 2);

    for op in ops {
        match op {
            Op::Packet {
                from,
                stream,
                raw,
                body,
            } => {
                let who = sender(from);
                let bytes = if raw { body } else { packet(who, &body) };
                if stream {
                    node.handle_stream(now, addr_of(who), &bytes);
                } else {
                    node.handle_datagram(now, addr_of(who), &bytes);
                }
            }
            Op::Wait(ms) => {
                now = Millis(now.0 + u64::from(ms));
                if node.poll_timeout().is_some_and(|t| t <= now) {
                    node.handle_timeout(now);
                }
            }
            Op::Command { kind, payload } => {
                let command = match kind % 4 {
                    0 => Command::Leave,
                    1 => Command::Broadcast(payload),
                    2 => Command::Join {
                        seeds: vec![addr_of(MEMBER_A)],
                    },
                    _ => Command::UpdateMeta(meta(&String::from_utf8_lossy(&payload))),
                };
                let result = node.handle_command(now, command);
                if checker.left {
                    assert!(result.is_err(), "a node that left takes no command");
                }
            }
            Op::Tick => {
                if let Some(t) = node.poll_timeout() {
                    now = now.max(t);
                    node.handle_timeout(now);
                }
            }
        }
        checker.drain(&mut node);
    }
});
