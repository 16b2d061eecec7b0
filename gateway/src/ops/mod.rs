//! Operator commands on a node's state: `aurora backup`, `aurora restore`, `aurora
//! state export` and `aurora state import` ([`cli`]), the export document they share
//! with the admin API's `state/export` and `state/import` ([`document`]), and the
//! `--at` time format ([`time`]).
//!
//! The file side (online backup, verified restore into a new storage life, the
//! point-in-time history) is `aurora_io::store::{backup, history}`; docs/operations.md
//! ("Backup, restore and export") is the runbook.

pub mod cli;
pub mod document;
pub mod time;

/// Wall-clock ms since the Unix epoch (the clock the history's commit times use).
pub fn now_ms() -> u64 {
    crate::clock::wall_ms()
}
