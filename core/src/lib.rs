//! # aurora-core
//!
//! The pure heart of an Aurora node: a deterministic state machine with no I/O, no
//! clock, no threads and no OS randomness. Time comes in as an argument, randomness
//! from a seed, bytes in through `handle_*` and out through `poll_output`. That is what
//! lets `aurora-sim` run thousands of seeded fault schedules a minute and replay any
//! one of them exactly, and what lets `aurora-io` drive the very same code over QUIC.
//!
//! Layout, one concern per module:
//! - [`wire`]: the versioned envelope and messages, bounded decoding;
//! - [`membership`]: SWIM with Lifeguard (probing, suspicion, dissemination);
//! - [`node`]: the [`Node`] that ties them together behind a quinn-proto-style API.

#![forbid(unsafe_code)]

pub mod config;
pub mod event;
pub mod failover;
pub mod hash;
pub mod id;
pub mod identity;
pub mod membership;
pub mod node;
mod outbox;
pub mod persist;
pub mod rng;
mod round;
pub mod state;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod time;
mod timers;
mod view;
pub mod wire;

pub use config::{Config, ConfigError, Identity, MemberMeta, Role, Timing};
pub use event::Event;
pub use id::{Addr, ClusterId, Incarnation, Life, NodeId, Origin};
pub use membership::{LocalChange, Member, MemberChange, Phase};
pub use node::{Command, CommandError, Node, NodeMetrics, Output, Transmit};
pub use persist::{PersistBatch, PersistItem, Restored};
pub use round::{Effect, Round};
pub use state::hlc::Hlc;
pub use time::{Millis, Now};
pub use view::NodeView;
pub use wire::{Channel, DecodeError, Liveness};
