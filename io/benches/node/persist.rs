//! Replicated writes applied per second into the node's SQLite file.
//!
//! This is the driver's own persistence call: one [`Store::apply_all`] per round, with
//! the round's `PersistItem::Entry` items in it, into a real file with the store's own
//! settings (WAL, `synchronous=FULL`, so one fsync per commit). Only the commit is timed;
//! building the entries (the core's work, already done when the driver gets them) is not,
//! but encoding them to bytes is, because the store does it.
//!
//! A batch of 1 is one gossiped write arriving alone (one fsync per record); 64 to
//! 10,000 are what one driver round holds when writes arrive in bursts or an
//! anti-entropy delta or snapshot chunk lands.

use std::path::Path;
use std::time::{Duration, Instant};

use aurora_core::{NodeId, PersistBatch, PersistItem};
use aurora_io::Store;

use crate::common::{auth_key_entry, summary, Args};

const BATCH_SIZES: [u64; 4] = [1, 64, 1024, 10_000];
/// A run stops after this many records or this much committing, whichever comes first.
const RUN_RECORDS: u64 = 100_000;
const RUN_TIME: Duration = Duration::from_secs(2);

pub fn run(args: &Args) -> Result<(), String> {
    let runs = args.number("runs", 5)?;
    let batches = args.numbers("batches", &BATCH_SIZES)?;
    if batches.contains(&0) {
        return Err("--batches: a batch holds at least one record".into());
    }
    println!("# persist: records/s committed by Store::apply_all (WAL, synchronous=FULL)");
    for &batch in &batches {
        let mut rates = Vec::new();
        let mut commit_ms = Vec::new();
        for _ in 0..runs {
            let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
            let (rate, per_commit) = one_run(&dir.path().join("node.db"), batch)?;
            rates.push(rate);
            commit_ms.push(per_commit);
        }
        println!(
            "batch {batch:>6}: {}; per commit {}",
            summary(&rates, "records/s"),
            summary(&commit_ms, "ms")
        );
    }
    Ok(())
}

/// Commits fresh records in batches of `batch` into a new file; returns records per
/// second and milliseconds per commit.
fn one_run(path: &Path, batch: u64) -> Result<(f64, f64), String> {
    let origin = NodeId::from_name("bench-origin");
    let mut store = Store::open(path, NodeId::from_name("bench")).map_err(|e| e.to_string())?;
    let mut committing = Duration::ZERO;
    let mut written = 0;
    let mut commits = 0u32;
    while written < RUN_RECORDS && committing < RUN_TIME {
        let round = entries(origin, written, batch);
        let started = Instant::now();
        store.apply_all(&round).map_err(|e| e.to_string())?;
        committing += started.elapsed();
        written += batch;
        commits += 1;
    }
    let per_commit = committing.as_secs_f64() * 1e3 / f64::from(commits);
    Ok((written as f64 / committing.as_secs_f64(), per_commit))
}

/// One driver round: `count` entries, as one batch (what an anti-entropy delta or a
/// burst of gossip persists).
fn entries(origin: NodeId, first: u64, count: u64) -> Vec<PersistBatch> {
    vec![PersistBatch {
        items: (first..first + count)
            .map(|i| PersistItem::Entry(Box::new(auth_key_entry(origin, i))))
            .collect(),
    }]
}
