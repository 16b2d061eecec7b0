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
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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
