//! Helpers shared by the fuzz targets and the seed-corpus generator.
//!
//! `node_messages` reads its input as a sequence of operations in a small,
//! hand-rolled format (below) rather than through `arbitrary`, so that seed files
//! can be written from real encoded messages and a crash input can be read by eye.
//!
//! ```text
//! op byte % 16:
//!   0..=4  packet   from:u8 flags:u8 len:u16le body[len]
//!          from % 4: 0 = member A, 1 = member B, 2 = a stranger, 3 = the node itself
//!          flags bit 0: stream (else datagram)
//!          flags bit 1: raw: body is the whole packet (else a valid, checksummed
//!                       header from `from` is put in front of it)
//!   5      wait     ms:u16le             (then handle_timeout if anything is due)
//!   6      command  kind:u8 len:u16le payload[len]
//!          kind % 4: 0 = Leave, 1 = Broadcast(payload), 2 = Join(member A),
//!                    3 = UpdateMeta(name = payload, lossy UTF-8)
//!   7      tick     (jump to poll_timeout and handle it)
//!   8      put      id:u8 variant:u8     Command::Put of a Model record
//!          id % 4 names `m0`..`m3`; variant bit 7: invalid (an alias equal to
//!          the id), which must be refused without a write
//!   9      delete   id:u8                Command::Delete of model `m{id % 4}`
//!   10     usage    budget:u8 period:u8 amount:u16le   Command::RecordUsage
//!   11     wall     scale:u8 delta:i16le the wall clock (the next call's `Now`) jumps by
//!          delta × [1 ms, 1 s, 1 h, 1 day][scale % 4] (back or forward)
//!   12     remote   peer:u8 key:u8 variant:u8 skew:i8   a write at member A or B
//!          (peer % 2) into that member's own store, not sent yet; its wall clock
//!          is ours + skew × [1 ms, 1 s][variant bit 7] (so sometimes > max skew)
//!   13     sync     peer:u8 kind:u8 arg:u8   member A or B talks to the node:
//!          kind % 4: 0 = SyncRequest(its version vector),
//!                    1 = SyncResponse(what the node lacks, chunk `arg`),
//!                    2 = SyncPush(what the node lacks, chunk `arg`),
//!                    3 = Gossip(Rumor::State(its entry number `arg`))
//!   14     restart  the node is rebuilt from what it asked to persist
//!   15     tick     (as 7)
//! ```
//!
//! `state_merge` reads a chunk-budget byte, then 4-byte entry specs (see
//! [`merge_entries`]).

use core::time::Duration;

use aurora_core::state::hlc::{Hlc, HlcClock};
use aurora_schema::{Collection, Model, Record, RecordId};
use aurora_core::state::store::{Entry, Key, Usage, Value};
use aurora_core::wire::{HEADER_LEN, MAGIC, PROTOCOL_VERSION};
use aurora_core::{Addr, ClusterId, Life, NodeId, Origin};

pub const CLUSTER: ClusterId = ClusterId(0xA0_0A);
pub const SELF: NodeId = NodeId(1);
pub const MEMBER_A: NodeId = NodeId(2);
pub const MEMBER_B: NodeId = NodeId(3);
pub const STRANGER: NodeId = NodeId(9);

/// Where the CRC-32 sits in the header (see `aurora_core::wire`).
const CRC_FIELD: core::ops::Range<usize> = 27..31;

/// The storage life every simulated member speaks with.
pub fn life_of(id: NodeId) -> Life {
    Life(id.0.wrapping_mul(0x0101_0101))
}

/// The write origin of `id` in its one life.
pub fn origin_of(id: NodeId) -> Origin {
    Origin::new(id, life_of(id))
}

pub fn addr_of(id: NodeId) -> Addr {
    Addr::from(([10, 0, 0, id.0 as u8], 7946))
}

/// Recomputes the checksum of `packet` in place, so a mutated body gets past the
/// CRC and reaches the parser.
pub fn seal(packet: &mut [u8]) {
    if packet.len() < HEADER_LEN {
        return;
    }
    let crc = aurora_core::crc32_update(!0, &packet[..CRC_FIELD.start]);
    let crc = !aurora_core::crc32_update(crc, &packet[CRC_FIELD.end..]);
    packet[CRC_FIELD].copy_from_slice(&crc.to_le_bytes());
}

/// A valid, sealed packet from `sender` with `body` as its postcard body.
pub fn packet(sender: NodeId, body: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(HEADER_LEN + body.len());
    p.extend_from_slice(&MAGIC);
    p.push(PROTOCOL_VERSION);
    p.extend_from_slice(&CLUSTER.0.to_le_bytes());
    p.extend_from_slice(&sender.0.to_le_bytes());
    p.extend_from_slice(&life_of(sender).0.to_le_bytes());
    p.extend_from_slice(&[0; 4]);
    p.extend_from_slice(body);
    seal(&mut p);
    p
}

/// One operation of a `node_messages` input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Packet {
        from: u8,
        stream: bool,
        raw: bool,
        body: Vec<u8>,
    },
    Wait(u16),
    Command {
        kind: u8,
        payload: Vec<u8>,
    },
    Tick,
    Put {
        id: u8,
        variant: u8,
    },
    Delete {
        id: u8,
    },
    Usage {
        budget: u8,
        period: u8,
        amount: u16,
    },
    Wall {
        scale: u8,
        delta: i16,
    },
    Remote {
        peer: u8,
        key: u8,
        variant: u8,
        skew: i8,
    },
    Sync {
        peer: u8,
        kind: u8,
        arg: u8,
    },
    Restart,
}

/// Reads operations until the input runs out; a short tail is read as far as it goes.
pub fn parse(mut data: &[u8]) -> Vec<Op> {
    fn byte(data: &mut &[u8]) -> u8 {
        let (&b, rest) = data.split_first().unwrap_or((&0, &[]));
        *data = rest;
        b
    }
    fn u16le(data: &mut &[u8]) -> u16 {
        u16::from_le_bytes([byte(data), byte(data)])
    }
    fn bytes(data: &mut &[u8], len: usize) -> Vec<u8> {
        let (head, rest) = data.split_at(len.min(data.len()));
        *data = rest;
        head.to_vec()
    }
    let mut ops = Vec::new();
    while !data.is_empty() {
        let op = byte(&mut data) % 16;
        ops.push(match op {
            0..=4 => {
                let from = byte(&mut data);
                let flags = byte(&mut data);
                let len = u16le(&mut data) as usize;
                Op::Packet {
                    from,
                    stream: flags & 1 != 0,
                    raw: flags & 2 != 0,
                    body: bytes(&mut data, len),
                }
            }
            5 => Op::Wait(u16le(&mut data)),
            6 => {
                let kind = byte(&mut data);
                let len = u16le(&mut data) as usize;
                Op::Command {
                    kind,
                    payload: bytes(&mut data, len),
                }
            }
            8 => Op::Put {
                id: byte(&mut data),
                variant: byte(&mut data),
            },
            9 => Op::Delete {
                id: byte(&mut data),
            },
            10 => Op::Usage {
                budget: byte(&mut data),
                period: byte(&mut data),
                amount: u16le(&mut data),
            },
            11 => Op::Wall {
                scale: byte(&mut data),
                delta: u16le(&mut data) as i16,
            },
            12 => Op::Remote {
                peer: byte(&mut data),
                key: byte(&mut data),
                variant: byte(&mut data),
                skew: byte(&mut data) as i8,
            },
            13 => Op::Sync {
                peer: byte(&mut data),
                kind: byte(&mut data),
                arg: byte(&mut data),
            },
            14 => Op::Restart,
            _ => Op::Tick,
        });
    }
    ops
}

/// The inverse of [`parse`], for writing seed files.
pub fn unparse(ops: &[Op]) -> Vec<u8> {
    let mut out = Vec::new();
    for op in ops {
        match op {
            Op::Packet {
                from,
                stream,
                raw,
                body,
            } => {
                out.extend_from_slice(&[0, *from, u8::from(*stream) | (u8::from(*raw) << 1)]);
                out.extend_from_slice(&(body.len() as u16).to_le_bytes());
                out.extend_from_slice(body);
            }
            Op::Wait(ms) => {
                out.push(5);
                out.extend_from_slice(&ms.to_le_bytes());
            }
            Op::Command { kind, payload } => {
                out.extend_from_slice(&[6, *kind]);
                out.extend_from_slice(&(payload.len() as u16).to_le_bytes());
                out.extend_from_slice(payload);
            }
            Op::Tick => out.push(7),
            Op::Put { id, variant } => out.extend_from_slice(&[8, *id, *variant]),
            Op::Delete { id } => out.extend_from_slice(&[9, *id]),
            Op::Usage {
                budget,
                period,
                amount,
            } => {
                out.extend_from_slice(&[10, *budget, *period]);
                out.extend_from_slice(&amount.to_le_bytes());
            }
            Op::Wall { scale, delta } => {
                out.extend_from_slice(&[11, *scale]);
                out.extend_from_slice(&delta.to_le_bytes());
            }
            Op::Remote {
                peer,
                key,
                variant,
                skew,
            } => out.extend_from_slice(&[12, *peer, *key, *variant, *skew as u8]),
            Op::Sync { peer, kind, arg } => out.extend_from_slice(&[13, *peer, *kind, *arg]),
            Op::Restart => out.push(14),
        }
    }
    out
}

/// The sender a `from` byte names.
pub fn sender(from: u8) -> NodeId {
    match from % 4 {
        0 => MEMBER_A,
        1 => MEMBER_B,
        2 => STRANGER,
        _ => SELF,
    }
}

// ---- replicated state -------------------------------------------------------------

/// Model `m{n % 4}`: few ids, so writes to the same key collide.
pub fn model_id(n: u8) -> RecordId {
    RecordId::new(format!("m{}", n % 4)).expect("valid id")
}

/// Budget `b{n % 2}`.
pub fn budget_id(n: u8) -> RecordId {
    RecordId::new(format!("b{}", n % 2)).expect("valid id")
}

/// A valid model record (for any id `m*`) whose fields vary with `variant`, so two
/// writes to one id usually hold different values.
pub fn model(variant: u8) -> Record {
    Record::Model(Model {
        provider_id: RecordId::new("p").expect("valid id"),
        upstream_model: format!("up-{variant}"),
        aliases: (0..variant % 3).map(|i| format!("alias-{i}")).collect(),
        context_window: Some(u32::from(variant) + 1),
        enabled: variant & 1 == 0,
    })
}

/// Chunk budgets (bytes of entries per delta) that `state_merge` picks from: one
/// entry per chunk, a few, and everything at once.
pub const CHUNK_BUDGETS: [usize; 5] = [1, 80, 200, 600, 1 << 20];

/// Most entries one `state_merge` input makes (more adds time, not coverage).
pub const MAX_MERGE_ENTRIES: usize = 48;

/// Origins of `state_merge` writes: nodes 1..=3.
pub const MERGE_ORIGINS: u64 = 3;

/// A `state_merge` input: writes as a real cluster would make them, plus how to
/// split and reorder them.
#[derive(Clone, Debug)]
pub struct MergeInput {
    /// Bytes of entries per delta when two stores sync.
    pub chunk_budget: usize,
    pub entries: Vec<Entry>,
    /// Which of three partial stores receives each entry.
    pub group: Vec<u8>,
    /// The second merge order sorts entries by (rank, index).
    pub rank: Vec<u8>,
}

/// Reads a `state_merge` input:
///
/// ```text
/// byte 0: chunk budget = CHUNK_BUDGETS[b % 5]
/// then 4 bytes per entry (a shorter tail is ignored), at most MAX_MERGE_ENTRIES:
///   k  bits 0-2: key % 5: 0..=2 model m0..m2; 3, 4 usage of budget b0 in period
///               0 or 1, counted by the origin (its own counter key)
///      bit 3:   tombstone (else a value)
///      bits 4-5: group % 3: the partial store that receives the entry
///   c  bits 0-1: origin = 1 + c % 3
///      bits 2-3: the shared wall clock (starting at 1000 ms) advances by this
///      bits 4-5: the origin's clock reads the shared wall plus this (skew)
///      bit 6:   the origin first observes the newest timestamp so far, as if it
///               had received that write
///   r  rank, for the second merge order
///   v  value: varies the model fields or the usage amounts
/// ```
///
/// As in a real cluster every origin numbers its writes 1, 2, 3, … and stamps them
/// with its own hybrid logical clock, so each (origin, seq) and each timestamp
/// names exactly one write.
pub fn merge_entries(data: &[u8]) -> MergeInput {
    let (&budget, specs) = data.split_first().unwrap_or((&0, &[]));
    let mut clocks: Vec<HlcClock> = (1..=MERGE_ORIGINS)
        .map(|n| HlcClock::new(origin_of(NodeId(n)), Duration::from_secs(1 << 40)))
        .collect();
    let mut seqs = [0u64; MERGE_ORIGINS as usize];
    let mut wall = 1_000u64;
    let mut newest = Hlc::default();
    let mut input = MergeInput {
        chunk_budget: CHUNK_BUDGETS[usize::from(budget) % CHUNK_BUDGETS.len()],
        entries: Vec::new(),
        group: Vec::new(),
        rank: Vec::new(),
    };
    for spec in specs.chunks_exact(4).take(MAX_MERGE_ENTRIES) {
        let [k, c, r, v] = [spec[0], spec[1], spec[2], spec[3]];
        let o = usize::from(c & 3) % MERGE_ORIGINS as usize;
        let origin = origin_of(NodeId(o as u64 + 1));
        wall += u64::from((c >> 2) & 3);
        let local_wall = wall + u64::from((c >> 4) & 3);
        if c & 0x40 != 0 {
            clocks[o]
                .observe(newest, local_wall)
                .expect("no skew limit");
        }
        let hlc = clocks[o].tick(local_wall);
        newest = newest.max(hlc);
        seqs[o] += 1;
        let tombstone = k & 8 != 0;
        let (key, value) = match (k & 7) % 5 {
            n @ 0..=2 => (
                Key::Record(Collection::Models.id(), model_id(n)),
                Value::Record(aurora_schema::encode(&model(v))),
            ),
            n => (
                Key::Usage {
                    budget: budget_id(0),
                    period: u64::from(n - 3),
                    node: origin,
                },
                Value::Usage(Usage {
                    spend_nanos: u64::from(v) * 1_000,
                    requests: u64::from(v >> 4),
                    tokens: u64::from(v) * 7,
                }),
            ),
        };
        input.entries.push(Entry {
            key,
            value: (!tombstone).then_some(value),
            hlc,
            seq: seqs[o],
        });
        input.group.push(((k >> 4) & 3) % 3);
        input.rank.push(r);
    }
    input
}
