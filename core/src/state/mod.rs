//! Replicated control-plane state (in progress).

pub mod records;
