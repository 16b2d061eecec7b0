//! The wire format: a fixed header, then a postcard-encoded [`Message`].
//!
//! ```text
//! offset  size  field
//! 0       2     magic "AU"
//! 2       1     protocol version
//! 3       8     cluster id (little endian)
//! 11      8     sender node id (little endian)
//! 19      8     sender storage life (little endian)
//! 27      4     CRC-32 of every other byte of the packet (little endian)
//! 31      ..    postcard(Message)
//! ```
//!
//! The sender's (id, life) is what the receiver checks against the binding it
//! recorded for that id (see `crate::identity`); the driver authenticates that the
//! pair matches the peer's certificate before the bytes reach the core.
//!
//! The header is fixed-size and checked before any of the body is parsed, so a packet
//! of another protocol, another version or another cluster costs a few comparisons.
//! The checksum is not security (QUIC's AEAD is): it keeps a flipped bit from turning
//! one valid claim into another ("n1 is dead" into "n3 is dead") on any transport
//! without integrity of its own, and it is what the simulator's corruption hits.
//! Every decode is bounded: the packet size is capped before parsing, postcard never
//! reads past the buffer, and [`check_limits`] caps element counts and string sizes
//! afterwards. A packet that fails any check is rejected with a [`DecodeError`] that
//! names the reason; the node counts it and changes no state.

mod message;

pub use message::*;

use crate::config::MemberMeta;
use crate::id::{ClusterId, Life, NodeId};

/// The first two bytes of every packet: a packet without them is no Aurora packet
/// (`BadMagic`), rejected before anything else is read.
pub const MAGIC: [u8; 2] = *b"AU";
/// The protocol version this build speaks. Bumped on any incompatible change
/// (3: lease messages carry the voter roster; member metadata `bootstrap_expect`;
/// 4: the header carries the sender's storage life, write origins and the roster
/// name lives; 5: a record value inside an entry is length-prefixed bytes, the
/// schema's encoding, which the core does not parse).
pub const PROTOCOL_VERSION: u8 = 5;
/// The fixed header's size in bytes (magic, version, cluster, sender id, life, CRC); the
/// body starts here.
pub const HEADER_LEN: usize = 31;
const LIFE_AT: usize = 19;
const CRC_AT: usize = 27;
/// Largest datagram accepted (QUIC datagrams are smaller than this anyway).
pub const MAX_DATAGRAM: usize = 64 * 1024;
/// Largest stream message accepted (a push-pull of a large cluster).
pub const MAX_STREAM_MESSAGE: usize = 4 * 1024 * 1024;
/// Most rumours one message may carry.
pub const MAX_RUMORS: usize = 512;
/// Most member records one push-pull may carry.
pub const MAX_MEMBERS: usize = 16 * 1024;
/// Largest application broadcast payload.
pub const MAX_APP_PAYLOAD: usize = 1024;
/// Most entries (or cleared ranges) in one sync message.
pub const MAX_ENTRIES: usize = 64 * 1024;
/// Most origins in a version vector, and ranges per origin.
pub const MAX_ORIGINS: usize = 16 * 1024;
/// Most ranges per origin in a version vector (a long run of gaps in one origin's numbers
/// is refused, not parsed).
pub const MAX_RANGES: usize = 4096;

/// How a packet arrived; it decides the size limit.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    /// Unreliable, unordered, at most one packet (QUIC datagram).
    Datagram,
    /// Reliable and ordered (a QUIC stream), for large messages.
    Stream,
}

impl Channel {
    /// The largest packet accepted on this channel (`MAX_DATAGRAM` or
    /// `MAX_STREAM_MESSAGE`); anything longer is `TooLarge` before it is parsed.
    pub fn max_len(self) -> usize {
        match self {
            Channel::Datagram => MAX_DATAGRAM,
            Channel::Stream => MAX_STREAM_MESSAGE,
        }
    }
}

/// A decoded packet.
#[derive(Clone, Debug, PartialEq)]
pub struct Envelope {
    /// The cluster the sender belongs to (checked equal to ours in the header).
    pub cluster: ClusterId,
    /// The sending node's id, which the receiver checks against its binding for that id.
    pub sender: NodeId,
    /// The sender's storage life (see [`Life`]).
    pub life: Life,
    /// The body.
    pub message: Message,
}

/// Why a packet was dropped. Each reason has its own counter.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, thiserror::Error)]
pub enum DecodeError {
    /// Larger than the channel's limit (named); nothing was parsed.
    #[error("packet larger than the {0} limit")]
    TooLarge(&'static str),
    /// Shorter than the fixed header.
    #[error("packet shorter than the header")]
    Truncated,
    /// The first two bytes are not `MAGIC`.
    #[error("not an Aurora packet (bad magic)")]
    BadMagic,
    /// A protocol version this build does not speak (a mixed-version cluster during an
    /// incompatible upgrade).
    #[error("unsupported protocol version {0}")]
    UnknownVersion(u8),
    /// A packet of another cluster (another `ClusterId` in the header).
    #[error("packet from another cluster")]
    WrongCluster,
    /// The CRC does not match: corrupted in transit.
    #[error("checksum mismatch (corrupted in transit)")]
    Checksum,
    /// The body is not a valid postcard `Message`.
    #[error("malformed body")]
    Malformed,
    /// Bytes left after the body.
    #[error("trailing bytes after the body")]
    TrailingBytes,
    /// A count or size inside the body is above its limit (`MAX_RUMORS`, `MAX_ENTRIES`, …).
    #[error("a count or size limit is exceeded")]
    LimitExceeded,
}

impl DecodeError {
    /// Every reason, for metrics that list all counters even when zero.
    pub const ALL: [DecodeError; 9] = [
        DecodeError::TooLarge(""),
        DecodeError::Truncated,
        DecodeError::BadMagic,
        DecodeError::UnknownVersion(0),
        DecodeError::WrongCluster,
        DecodeError::Checksum,
        DecodeError::Malformed,
        DecodeError::TrailingBytes,
        DecodeError::LimitExceeded,
    ];

    /// A stable label, for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            DecodeError::TooLarge(_) => "too_large",
            DecodeError::Truncated => "truncated",
            DecodeError::BadMagic => "bad_magic",
            DecodeError::UnknownVersion(_) => "unknown_version",
            DecodeError::WrongCluster => "wrong_cluster",
            DecodeError::Checksum => "checksum",
            DecodeError::Malformed => "malformed",
            DecodeError::TrailingBytes => "trailing_bytes",
            DecodeError::LimitExceeded => "limit_exceeded",
        }
    }

    /// Index into a counter array of length `ALL.len()`.
    pub fn index(&self) -> usize {
        match self {
            DecodeError::TooLarge(_) => 0,
            DecodeError::Truncated => 1,
            DecodeError::BadMagic => 2,
            DecodeError::UnknownVersion(_) => 3,
            DecodeError::WrongCluster => 4,
            DecodeError::Checksum => 5,
            DecodeError::Malformed => 6,
            DecodeError::TrailingBytes => 7,
            DecodeError::LimitExceeded => 8,
        }
    }
}

/// Encodes `message` into a packet. Encoding an in-memory message cannot fail except
/// by exhausting memory, which aborts anyway; the `expect` documents that invariant.
pub fn encode(cluster: ClusterId, sender: NodeId, life: Life, message: &Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(&MAGIC);
    out.push(PROTOCOL_VERSION);
    out.extend_from_slice(&cluster.0.to_le_bytes());
    out.extend_from_slice(&sender.0.to_le_bytes());
    out.extend_from_slice(&life.0.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    let mut out = postcard::to_extend(message, out).expect("encoding into a Vec cannot fail");
    let crc = checksum(&out);
    out[CRC_AT..HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    out
}

/// CRC-32 (IEEE) of the packet with its checksum field skipped.
fn checksum(packet: &[u8]) -> u32 {
    let crc = crate::hash::crc32_update(!0, &packet[..CRC_AT]);
    !crate::hash::crc32_update(crc, &packet[HEADER_LEN..])
}

/// The sender (id, storage life) a packet's header claims, without checking anything
/// else (no checksum, no body): `None` when the bytes are too short or not of this
/// protocol. The transport compares the claim with the identity the peer's certificate
/// proves before the packet reaches the node; the full check is still [`decode`]'s.
pub fn peek_sender(bytes: &[u8]) -> Option<(NodeId, Life)> {
    let header = bytes.get(..HEADER_LEN)?;
    if header[0..2] != MAGIC {
        return None;
    }
    let field = |range: core::ops::Range<usize>| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&header[range]);
        u64::from_le_bytes(b)
    };
    Some((NodeId(field(11..LIFE_AT)), Life(field(LIFE_AT..CRC_AT))))
}

/// Decodes and validates one packet received on `channel` for cluster `cluster`.
pub fn decode(cluster: ClusterId, channel: Channel, bytes: &[u8]) -> Result<Envelope, DecodeError> {
    if bytes.len() > channel.max_len() {
        return Err(DecodeError::TooLarge(match channel {
            Channel::Datagram => "datagram",
            Channel::Stream => "stream message",
        }));
    }
    let (header, body) = bytes
        .split_at_checked(HEADER_LEN)
        .ok_or(DecodeError::Truncated)?;
    if header[0..2] != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    if header[2] != PROTOCOL_VERSION {
        return Err(DecodeError::UnknownVersion(header[2]));
    }
    let field = |range: core::ops::Range<usize>| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&header[range]);
        u64::from_le_bytes(b)
    };
    let packet_cluster = ClusterId(field(3..11));
    if packet_cluster != cluster {
        return Err(DecodeError::WrongCluster);
    }
    let sender = NodeId(field(11..LIFE_AT));
    let life = Life(field(LIFE_AT..CRC_AT));
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&header[CRC_AT..HEADER_LEN]);
    if u32::from_le_bytes(crc) != checksum(bytes) {
        return Err(DecodeError::Checksum);
    }
    let (message, rest) =
        postcard::take_from_bytes::<Message>(body).map_err(|_| DecodeError::Malformed)?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes);
    }
    check_limits(&message)?;
    Ok(Envelope {
        cluster: packet_cluster,
        sender,
        life,
        message,
    })
}

/// Caps element counts and string sizes of a decoded message.
pub fn check_limits(message: &Message) -> Result<(), DecodeError> {
    let meta_ok = |m: &MemberMeta| m.validate().is_ok();
    let rumors = message.rumors();
    if rumors.len() > MAX_RUMORS {
        return Err(DecodeError::LimitExceeded);
    }
    for r in rumors {
        let ok = match r {
            Rumor::Member(MemberUpdate::Alive { meta, .. }) => meta_ok(meta),
            Rumor::Member(_) => true,
            Rumor::App(app) => app.payload.len() <= MAX_APP_PAYLOAD,
            Rumor::State(_) => true,
        };
        if !ok {
            return Err(DecodeError::LimitExceeded);
        }
    }
    let vv_ok = |vv: &crate::state::store::VersionVector| {
        vv.len() <= MAX_ORIGINS && vv.iter().all(|(_, ranges)| ranges.len() <= MAX_RANGES)
    };
    let delta_ok = |d: &crate::state::store::Delta| {
        d.entries.len() <= MAX_ENTRIES && d.cleared.len() <= MAX_ENTRIES
    };
    let ok = match message {
        Message::PushPull { members, .. } => {
            members.len() <= MAX_MEMBERS && members.iter().all(|m| meta_ok(&m.meta))
        }
        Message::SyncRequest { vv, .. } => vv_ok(vv),
        Message::SyncResponse { vv, delta, .. } => vv_ok(vv) && delta_ok(delta),
        Message::SyncPush { delta } => delta_ok(delta),
        Message::Quota(
            crate::quota::QuotaMessage::Record { entries, .. }
            | crate::quota::QuotaMessage::Copy { entries, .. },
        ) => entries.len() <= crate::quota::COPY_CHUNK,
        _ => true,
    };
    if !ok {
        return Err(DecodeError::LimitExceeded);
    }
    Ok(())
}

/// The encoded size of a value, for filling a packet up to its budget.
pub fn encoded_len<T: serde::Serialize>(value: &T) -> usize {
    postcard::experimental::serialized_size(value).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests;
