//! # aurora-sim
//!
//! A deterministic simulator for `aurora-core`: N nodes over a seeded, faulty
//! network, with named invariant checks after every run.
//!
//! - [`net`]: the network model (loss, delay, jitter, duplication, corruption,
//!   symmetric/asymmetric/partial partitions), with no per-pair state so that a
//!   thousand nodes fit on one core;
//! - [`faults`]: per-seed fault profiles (swarm testing) and their schedule;
//! - [`world`]: nodes with drifting clocks and disks, crash/restart, pauses, joins
//!   and leaves, one event queue;
//! - [`observe`]: what the checkers record and their verdicts;
//! - [`checks`]: how often each named check ran and failed (the table after a run);
//! - [`run`]: running many seeds on all cores, determinism, figures;
//! - [`scenario`]: named cases that bit other systems.

pub mod bench;
pub mod checks;
pub mod faults;
pub mod net;
pub mod observe;
pub mod run;
pub mod scenario;
pub mod trace;
pub mod world;

pub use checks::CheckTally;
pub use observe::CheckFailure;
pub use run::{run_seed, run_seeds, Figures, SeedOutcome};
pub use world::{Action, Mutation, ProfileSpec, QuotaLoad, SimParams, World};
