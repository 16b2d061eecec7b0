//! Helpers shared by the fuzz targets and the seed-corpus generator.
//!
//! `node_messages` reads its input as a sequence of operations in a small,
//! hand-rolled format (below) rather than through `arbitrary`, so that seed files
//! can be written from real encoded messages and a crash input can be read by eye.
//!
//! ```text
//! op byte % 8:
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
//! ```

use aurora_core::wire::{HEADER_LEN, MAGIC, PROTOCOL_VERSION};
use aurora_core::{Addr, ClusterId, NodeId};

pub const CLUSTER: ClusterId = ClusterId(0xA0_0A);
pub const SELF: NodeId = NodeId(1);
pub const MEMBER_A: NodeId = NodeId(2);
pub const MEMBER_B: NodeId = NodeId(3);
pub const STRANGER: NodeId = NodeId(9);

/// Where the CRC-32 sits in the header (see `aurora_core::wire`).
const CRC_FIELD: core::ops::Range<usize> = 19..23;

pub fn addr_of(id: NodeId) -> Addr {
    Addr::from(([10, 0, 0, id.0 as u8], 7946))
}

/// Recomputes the checksum of `packet` in place, so a mutated body gets past the
/// CRC and reaches the parser.
pub fn seal(packet: &mut [u8]) {
    if packet.len() < HEADER_LEN {
        return;
    }
    let crc = aurora_core::hash::crc32_update(!0, &packet[..CRC_FIELD.start]);
    let crc = !aurora_core::hash::crc32_update(crc, &packet[CRC_FIELD.end..]);
    packet[CRC_FIELD].copy_from_slice(&crc.to_le_bytes());
}

/// A valid, sealed packet from `sender` with `body` as its postcard body.
pub fn packet(sender: NodeId, body: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(HEADER_LEN + body.len());
    p.extend_from_slice(&MAGIC);
    p.push(PROTOCOL_VERSION);
    p.extend_from_slice(&CLUSTER.0.to_le_bytes());
    p.extend_from_slice(&sender.0.to_le_bytes());
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
        let op = byte(&mut data) % 8;
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
