//! Replicated control-plane state.
//!
//! - [`hlc`]: hybrid logical clocks, the order of writes;
//! - [`record`]: what the core knows of a record (collection id, record id, bytes)
//!   and the [`record::Schema`] it asks whether a record is well formed;
//! - [`seqset`]: per-origin sets of applied sequence numbers (version vectors
//!   with gaps);
//! - [`store`]: last-writer-wins registers, usage counters, digests and deltas;
//! - [`replica`]: the replication state machine (local writes, gossip,
//!   anti-entropy, usage flushing, tombstone collection).

pub mod hlc;
pub mod record;
pub mod replica;
pub mod seqset;
pub mod store;
