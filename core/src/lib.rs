//! # aurora-core
//!
//! The pure heart of an Aurora node: a deterministic state machine with no I/O, no
//! clock, no threads and no OS randomness. Time comes in as an argument ([`Now`]),
//! randomness from a seed, bytes in through `handle_*` and out through
//! [`Node::poll_output`]. That is what lets `aurora-sim` run thousands of seeded
//! fault schedules a minute and replay any one of them exactly, and what lets
//! `aurora-io` drive the very same code over QUIC.
//!
//! The surface is the list below; the modules behind it are private, except the
//! replicated state (`state`: the generic store of opaque records, its clock and
//! replica types), the wire format (`wire`, for transports and fuzzers that build
//! or inspect packets) and, behind the `testing` feature, the harness that drives
//! nodes (`testing`). Every public item is documented (`deny(missing_docs)`): what
//! it is and what holds of it; [`Node`] lists its methods by group and when to call
//! each.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod config;
mod event;
mod failover;
mod hash;
mod id;
mod identity;
mod membership;
mod node;
mod outbox;
mod persist;
pub mod quota;
mod rng;
mod round;
pub mod state;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod time;
mod timers;
mod view;
pub mod wire;

// ---- the node: inputs, outputs, reading ---------------------------------------
pub use event::Event;
pub use node::{Command, CommandError, Node, NodeMetrics, Output, Transmit};
pub use round::{Effect, Round};
pub use time::{Millis, Now};
pub use view::NodeView;
// ---- configuration and identity -------------------------------------------------
pub use config::{Config, ConfigError, Identity, MemberMeta, Role, Timing};
pub use id::{Addr, ClusterId, Incarnation, Life, NodeId, Origin};
pub use identity::{Admission, Bindings, Stranger};
// ---- membership (SWIM + Lifeguard) ----------------------------------------------
pub use membership::{LocalChange, Member, MemberChange, MembershipStats, Phase};
// ---- failover (majority lease, fencing epochs, voter roster) ---------------------
pub use failover::{Epoch, LeaseMessage, Roster, RosterState, RosterVersion, SwitchoverError};
pub use failover::{FailoverConfig, FailoverEvent, FailoverMode, FailoverStatus};
// ---- persistence: what the driver stores and hands back --------------------------
pub use persist::{decode_entry, decode_roster, encode_entry, encode_key, encode_roster};
pub use persist::{decode_quota_entry, encode_quota_entry, encode_quota_key};
pub use persist::{PersistBatch, PersistItem, Restored};
pub use state::hlc::Hlc;
pub use state::record::{CollectionId, RecordBytes, RecordError, RecordId, Schema};
// ---- wire: the envelope's channel and decode errors ------------------------------
pub use wire::{Channel, DecodeError, Liveness};
// ---- deterministic helpers (stable across builds and platforms) ------------------
pub use hash::{crc32_update, fnv1a64, Fnv64};
pub use rng::DetRng;
