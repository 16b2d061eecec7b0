//! Typed records of the replicated collections (being written).
