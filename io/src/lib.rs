//! # aurora-io
//!
//! The driver that turns the pure `aurora-core` state machine into a running node.
//! One concern per module:
//!
//! - [`config`]: the `cluster:` block of `aurora.yaml` plus `CLUSTER_*` variables,
//!   validated and mapped to the core's `Config`/`Identity`;
//! - [`store`]: the node's SQLite file (WAL, migrations, refusal of foreign files),
//!   online backup and verified restore, and the point-in-time history of its records;
//! - [`identity`]: this node's own key pair (one storage life), kept in its data dir;
//! - [`transport`]: QUIC with mutual TLS derived from the cluster secret, bounded
//!   handshakes, each connection's authenticated peer identity, and request/reply
//!   calls between nodes on the same connections ([`PeerCalls`]);
//! - [`clock`]: tokio time as core milliseconds (virtual under turmoil), and the wall
//!   clock for the core's hybrid logical clock and the history's commit times;
//! - [`driver`]: the task that owns the `Node` and honours the persistence contract;
//! - [`view`]: the immutable snapshots other tasks read (the cluster's [`ClusterView`],
//!   the replicated records' [`StateSnapshot`]), swapped in by the driver;
//! - [`seeds`]: seed names to addresses, retried while a name does not resolve yet;
//! - [`launch`]: start-up in the right order.

#![forbid(unsafe_code)]

pub mod clock;
pub mod config;
pub mod driver;
pub mod identity;
pub mod launch;
pub mod seeds;
pub mod store;
pub mod transport;
pub mod view;

pub use config::{ClusterConfigError, ClusterSettings};
pub use driver::{Commander, DriverConfig, DriverError, EventSource, Handle};
pub use identity::{life_of_public_key, NodeKey, PeerIdentity};
pub use launch::{launch, LaunchError, Socket};
pub use store::{Store, StoreError};
pub use transport::{
    CallError, CallHandler, CallLimits, Inbound, PeerCalls, PeerRequest, ServeLimits, Transport,
};
pub use view::{
    ClusterView, LocalStatus, MemberView, ReplicaCounters, StateSnapshot, StrangerKind,
    StrangerView,
};
