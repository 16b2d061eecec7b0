//! Writes the seed corpus: `cargo run --example gen_corpus` from `fuzz/`.
//!
//! Seeds are real encoded messages and realistic operation sequences, so the
//! fuzzer starts from inputs that reach deep into decoding, the membership rules
//! and replication instead of the header checks.
//!
//! It also writes `regressions/`: inputs that reproduced a bug in the core. They
//! are not seeds (the corpus must never crash in CI); run them by hand, e.g.
//! `cargo fuzz run --sanitizer none node_messages regressions/node_messages/*`.

use std::fs;
use std::path::Path;

use aurora_core::wire::{
    encode, AppRumor, Liveness, MemberRecord, MemberUpdate, Message, PushPullKind, Rumor,
    HEADER_LEN,
};
use aurora_core::{Incarnation, MemberMeta, NodeId, Role};
use aurora_fuzz::{addr_of, life_of, unparse, Op, CLUSTER, MEMBER_A, MEMBER_B, SELF, STRANGER};

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
        bootstrap_expect: 0,
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
        let bytes = encode(CLUSTER, MEMBER_A, life_of(MEMBER_A), &message);
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
    for (name, ops) in state_sessions() {
        write(&node_dir, name, &unparse(&ops));
    }
    let merge_dir = root.join("state_merge");
    for (name, bytes) in merge_seeds() {
        write(&merge_dir, name, &bytes);
    }
    println!("wrote seeds under {}", root.display());

    let regressions = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
    for (name, ops) in node_regressions() {
        write(&regressions.join("node_messages"), name, &unparse(&ops));
    }
    println!("wrote regression inputs under {}", regressions.display());
}

/// `node_messages` seeds that exercise replication: local writes, usage, remote
/// writes arriving by every route, wall-clock jumps and restarts.
fn state_sessions() -> Vec<(&'static str, Vec<Op>)> {
    let remote = |peer, key, variant, skew| Op::Remote {
        peer,
        key,
        variant,
        skew,
    };
    let sync = |peer, kind, arg| Op::Sync { peer, kind, arg };
    // Sync kinds: 0 request, 1 response, 2 push, 3 gossip; arg bit 7: use the
    // node's real version vector, low bits: chunk budget.
    let writes = vec![
        Op::Put { id: 0, variant: 1 },
        Op::Put { id: 1, variant: 2 },
        Op::Put { id: 0, variant: 3 },
        Op::Put {
            id: 2,
            variant: 0x80,
        },
        Op::Delete { id: 1 },
        Op::Usage {
            budget: 0,
            period: 1,
            amount: 500,
        },
        Op::Usage {
            budget: 1,
            period: 1,
            amount: 7,
        },
        Op::Wait(600),
        Op::Tick,
    ];
    let mut remote_sync = vec![
        remote(0, 0, 5, 0),
        remote(0, 1, 6, 3),
        remote(1, 0, 7, -2),
        remote(1, 4, 9, 0),
        remote(0, 2, 0x40, 1),
        // Far in the future: refused.
        remote(1, 3, 0x80 | 8, 120),
    ];
    remote_sync.extend(writes.iter().cloned());
    remote_sync.extend([
        sync(0, 0, 0),
        sync(0, 1, 1),
        sync(0, 1, 0x80 | 1),
        sync(1, 2, 0x80 | 4),
        sync(1, 3, 0),
        sync(1, 3, 2),
        Op::Tick,
        Op::Tick,
        Op::Tick,
        sync(0, 1, 2),
        sync(1, 1, 2),
    ]);
    let mut clock_jumps = writes.clone();
    clock_jumps.extend([
        // Back an hour, forward a day: writes still order after earlier ones.
        Op::Wall {
            scale: 2,
            delta: -1,
        },
        Op::Put { id: 3, variant: 4 },
        Op::Wall { scale: 3, delta: 1 },
        Op::Put { id: 3, variant: 5 },
        Op::Delete { id: 0 },
        // Eight days on: the tombstones are collected at the next sweep.
        Op::Wall { scale: 3, delta: 8 },
    ]);
    clock_jumps.extend(std::iter::repeat_n(Op::Tick, 30));
    let mut restarts = remote_sync.clone();
    restarts.extend([
        Op::Restart,
        Op::Put { id: 2, variant: 9 },
        sync(1, 0, 0),
        Op::Wait(300),
        Op::Restart,
        sync(0, 1, 0x80),
    ]);
    vec![
        ("state_writes", writes),
        ("state_remote_sync", remote_sync),
        ("state_clock_jumps", clock_jumps),
        ("state_restarts", restarts),
    ]
}

/// `state_merge` seeds: a budget byte, then 4-byte entry specs (key, clock, rank,
/// value; see `aurora_fuzz::merge_entries`).
fn merge_seeds() -> Vec<(&'static str, Vec<u8>)> {
    // One key written by every origin in the same millisecond.
    let mut same_ms = vec![1];
    for i in 0..9u8 {
        same_ms.extend([0, i % 3, 9 - i, i]);
    }
    // Every key, tombstones, usage, three groups, clocks that observe each other.
    let mut mixed = vec![2];
    for i in 0..24u8 {
        let k = (i % 5) | ((i % 4 == 3) as u8) << 3 | (i % 3) << 4;
        let c = (i % 3) | (i % 4) << 2 | (i % 3) << 4 | ((i % 5 == 0) as u8) << 6;
        mixed.extend([k, c, i.wrapping_mul(37), i.wrapping_mul(11)]);
    }
    // A deterministic pseudo-random input at the entry limit, one entry per chunk.
    let mut x: u32 = 0x2545_f491;
    let mut random = vec![0];
    for _ in 0..aurora_fuzz::MAX_MERGE_ENTRIES * 4 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        random.push(x as u8);
    }
    vec![
        ("same_millisecond", same_ms),
        ("mixed", mixed),
        ("random_one_per_chunk", random),
    ]
}

/// Inputs that reproduced core bugs (see the README).
fn node_regressions() -> Vec<(&'static str, Vec<Op>)> {
    vec![(
        "reset_forgets_in_memory_only",
        vec![
            // Member A writes model m0 and pushes it: the node persists it.
            Op::Remote {
                peer: 0,
                key: 0,
                variant: 1,
                skew: 0,
            },
            Op::Sync {
                peer: 0,
                kind: 2,
                arg: 0x80 | 4,
            },
            // Eight days pass with the node down: on restart it resets, forgetting
            // A's write in memory, while storage still has it.
            Op::Wall { scale: 3, delta: 8 },
            Op::Restart,
            // A fresh write, then another restart: no reset this time, and A's
            // stale m0 comes back from storage.
            Op::Put { id: 1, variant: 2 },
            Op::Restart,
        ],
    )]
}
