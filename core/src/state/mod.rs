//! Replicated control-plane state.
//!
//! - [`hlc`]: hybrid logical clocks, the order of writes;
//! - [`records`]: the typed records of each collection, with validation;
//!   [`record_wire`]: their serde forms, and how a record gains a field;
//! - [`seqset`]: per-origin sets of applied sequence numbers (version vectors
//!   with gaps);
//! - [`store`]: last-writer-wins registers, usage counters, digests and deltas;
//! - [`replica`]: the replication state machine (local writes, gossip,
//!   anti-entropy, usage flushing, tombstone collection).

pub mod hlc;
pub mod record_wire;
pub mod records;
pub mod replica;
pub mod seqset;
pub mod store;
