//! # aurora-io
//!
//! The driver that turns the pure `aurora-core` state machine into a running node:
//! a tokio task owning the `Node`, QUIC transport and a SQLite store. Not built yet
//! (see issue 5); the crate exists so the workspace has its final shape.
