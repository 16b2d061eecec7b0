//! The node on real parts: SQLite on disk, QUIC on loopback, the real driver.
//!
//! `aurora-sim` measures the protocol in simulated time; this bench measures what the
//! simulator cannot: the store's commit rate with real entries and fsync, the cost of a
//! cold start with a populated file, and the bytes QUIC actually puts on the wire.
//!
//! ```sh
//! cargo bench -p aurora-io --bench node -- persist      # records/s per batch size
//! cargo bench -p aurora-io --bench node -- cold-start   # --records 100000 --runs 5
//! cargo bench -p aurora-io --bench node -- gossip       # --nodes 3 --idle-secs 30 --rate 10
//! cargo bench -p aurora-io --bench node -- all
//! ```
//!
//! Every figure is printed as a median with its min and max; docs/benchmarks.md
//! records them.

mod cold_start;
mod common;
mod gossip;
mod persist;

use std::process::ExitCode;

fn main() -> ExitCode {
    let result = common::Args::parse().and_then(|args| match args.what.as_str() {
        "persist" => persist::run(&args),
        "cold-start" => cold_start::run(&args),
        "gossip" => gossip::run(&args),
        "all" => persist::run(&args)
            .and_then(|()| cold_start::run(&args))
            .and_then(|()| gossip::run(&args)),
        other => Err(format!(
            "unknown benchmark {other:?}: persist, cold-start, gossip or all"
        )),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}
