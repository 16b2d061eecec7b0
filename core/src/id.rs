//! Identities that travel on the wire.
//!
//! Each is a newtype so that a node id can never be passed where an incarnation is
//! expected, and so that their ordering rules (which matter for leader choice and
//! refutation) live in one place.

use core::fmt;
use serde::{Deserialize, Serialize};

/// A transport address. This is the plain value type from `core::net`: it carries
/// no socket and does no I/O, which keeps the core pure while letting the driver map
/// it to a QUIC connection and the simulator to a slot in its network model.
pub type Addr = core::net::SocketAddr;

/// A node's stable identity. It survives restarts (the driver persists it) and is
/// independent of the node's address, so a node may come back on a new address
/// under the same id (memberlist #157).
#[derive(Copy, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u64);

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

impl NodeId {
    /// Derives a node id from an operator-chosen name with FNV-1a, a hash whose
    /// output is fixed by its definition (unlike `std`'s hashers), so the same name
    /// maps to the same id on every build and every machine.
    pub fn from_name(name: &str) -> NodeId {
        NodeId(crate::hash::fnv1a64(name.as_bytes()))
    }
}

/// A SWIM incarnation number. Only the node itself increases its own incarnation,
/// to refute a suspicion or to announce new metadata; any claim about a node with
/// a lower incarnation than the one known is stale and ignored.
#[derive(
    Copy, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug,
)]
pub struct Incarnation(pub u64);

impl Incarnation {
    /// The incarnation that overrides `self`.
    pub fn next(self) -> Incarnation {
        Incarnation(self.0.saturating_add(1))
    }
}

impl fmt::Display for Incarnation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Identifies a cluster. Packets from another cluster are dropped before their
/// body is parsed, so two clusters that share a network never mix.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug)]
pub struct ClusterId(pub u64);

impl ClusterId {
    /// Derives a cluster id from its configured name (see [`NodeId::from_name`]).
    pub fn from_name(name: &str) -> ClusterId {
        ClusterId(crate::hash::fnv1a64(name.as_bytes()))
    }
}

/// A storage life: which key pair (and so which data directory) a node id is
/// speaking with. The driver derives it from the node's own public key (the first
/// 8 bytes of its SHA-256), so a node that lost its disk comes back under its old
/// id with a new life, and the cluster can tell the two apart: the new life is a
/// new member that must be admitted, and the roster, the id → life bindings and
/// the write origins all name lives, never bare ids.
#[derive(Copy, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Life(pub u64);

impl fmt::Debug for Life {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "L{:016x}", self.0)
    }
}

impl fmt::Display for Life {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Who wrote a replicated entry: a node id in one storage life. Sequence numbers
/// are counted per origin, so a node that lost its disk starts a fresh sequence
/// space as a new origin and can never reuse a number of its earlier life (two
/// nodes wiped at once included), whatever its peers know or do not know.
#[derive(Copy, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Origin {
    /// The writing node.
    pub node: NodeId,
    /// The storage life it wrote in.
    pub life: Life,
}

impl Origin {
    /// The origin of `node`'s writes in `life`.
    pub fn new(node: NodeId, life: Life) -> Origin {
        Origin { node, life }
    }

    /// The lowest origin of `node` (for key ranges over every life of a node).
    pub fn first_of(node: NodeId) -> Origin {
        Origin::new(node, Life(0))
    }
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{:?}", self.node, self.life)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.node, self.life)
    }
}
