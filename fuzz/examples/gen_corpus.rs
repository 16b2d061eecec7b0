//! Writes the seed corpus: `cargo run --example gen_corpus` from `fuzz/`.
//!
//! Seeds are real encoded messages, so the fuzzer starts from inputs that reach
//! deep into decoding and into the membership rules instead of the header checks.

use std::fs;
use std::path::Path;

use aurora_core::wire::{
    encode, AppRumor, Liveness, MemberRecord, MemberUpdate, Message, PushPullKind, Rumor,
    HEADER_LEN,
};
use aurora_core::{Incarnation, MemberMeta, NodeId, Role};
use aurora_fuzz::{addr_of, unparse, Op, CLUSTER, MEMBER_A, MEMBER_B, SELF, STRANGER};

fn meta() -> MemberMeta {
    MemberMeta {
        name: "seed".into(),
        region: "eu".into(),
        zone: "eu-1a".into(),
        advertise_url: "https://seed.example".into(),
        sync_addr: addr_of(MEMBER_B),
        promotion_tier: 2,
        capacity: 5,
        role: Role::Serving,
        version: "0.1.0".into(),
        config_fingerprint: 9,
    }
}

fn messages() -> Vec<(&'static str, Message)> {
    let suspect_self = Rumor::Member(MemberUpdate::Suspect {
        node: SELF,
        incarnation: Incarnation(0),
        from: MEMBER_A,
    });
    let record = |node: NodeId, liveness| MemberRecord {
        node,
        incarnation: Incarnation(1),
        liveness,
        addr: addr_of(node),
        heartbeat: 3,
        meta: meta(),
    };
    vec![
        (
            "ping",
            Message::Ping {
                seq: 1,
                target: SELF,
                heartbeat: 2,
                rumors: vec![suspect_self.clone()],
            },
        ),
        (
            "ack",
            Message::Ack {
                seq: 1,
                heartbeat: 2,
                rumors: vec![Rumor::App(AppRumor {
                    origin: MEMBER_B,
                    seq: 1,
                    payload: b"hello".to_vec(),
                })],
            },
        ),
        (
            "ping_req",
            Message::PingReq {
                seq: 5,
                target: MEMBER_B,
                target_addr: addr_of(MEMBER_B),
                rumors: vec![],
            },
        ),
        ("nack", Message::Nack { seq: 1 }),
        (
            "gossip",
            Message::Gossip {
                rumors: vec![
                    Rumor::Member(MemberUpdate::Alive {
                        node: STRANGER,
                        incarnation: Incarnation(4),
                        addr: addr_of(STRANGER),
                        meta: meta(),
                    }),
                    Rumor::Member(MemberUpdate::Dead {
                        node: MEMBER_B,
                        incarnation: Incarnation(0),
                        from: MEMBER_A,
                    }),
                    Rumor::Member(MemberUpdate::Left {
                        node: MEMBER_A,
                        incarnation: Incarnation(0),
                    }),
                    suspect_self,
                ],
            },
        ),
        (
            "push_pull",
            Message::PushPull {
                kind: PushPullKind::Join,
                heartbeat: 1,
                members: vec![
                    record(MEMBER_A, Liveness::Alive),
                    record(MEMBER_B, Liveness::Dead),
                    record(STRANGER, Liveness::Suspect),
                    record(SELF, Liveness::Left),
                ],
            },
        ),
    ]
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let wire_dir = root.join("wire_decode");
    let node_dir = root.join("node_messages");
    let mut all_ops = Vec::new();
    for (name, message) in messages() {
        let bytes = encode(CLUSTER, MEMBER_A, &message);
        write(&wire_dir, name, &bytes);
        let op = Op::Packet {
            from: 0,
            stream: matches!(message, Message::PushPull { .. }),
            raw: false,
            body: bytes[HEADER_LEN..].to_vec(),
        };
        write(
            &node_dir,
            name,
            &unparse(&[op.clone(), Op::Tick, Op::Wait(600), Op::Tick]),
        );
        all_ops.push(op);
        all_ops.push(Op::Wait(250));
    }
    // A whole session: everything above, a broadcast, probes running out, a leave.
    all_ops.push(Op::Command {
        kind: 1,
        payload: b"bcast".to_vec(),
    });
    all_ops.extend(std::iter::repeat_n(Op::Tick, 40));
    all_ops.push(Op::Command {
        kind: 0,
        payload: Vec::new(),
    });
    all_ops.extend(std::iter::repeat_n(Op::Tick, 10));
    write(&node_dir, "session", &unparse(&all_ops));
    println!("wrote seeds under {}", root.display());
}
