//! The one harness every test driver of the core runs on (cargo feature `testing`).
//!
//! Why one: the simulator, the fuzz targets and the core's own tests each used to carry
//! a hand-written copy of the drain loop and of the contract checks; a change to the
//! node's outputs then had to be made, and could be forgotten, in each. Here:
//! - [`Host`]: a node, its disk (exactly the committed batches) and its [`Contract`];
//! - [`drain`] with a [`Driver`]: the drain loop after every input (contract, commit,
//!   then the effects through the driver's network and observers). The simulator's
//!   faulty network is one driver; [`Cluster`] with a [`Network`] is the small one;
//! - [`Contract`]: the promises a node makes its driver, checked in one place.
//!
//! The module is pure like the rest of the core (no clock, no I/O): time is whatever
//! the harness says. The io driver cannot run on a test harness, but it shares the
//! split of a round into batches and effects ([`Round`](crate::Round)).

mod cluster;
mod contract;
mod host;

/// The core's own tiny [`crate::Schema`] (notes and budgets), for harness tests.
pub use crate::state::record::test_schema;
pub use cluster::{Cluster, Delivery, Lossless, Network};
pub use contract::{announced, carried, Contract, ContractCounts, Violation};
pub use host::{drain, Driver, Host};
