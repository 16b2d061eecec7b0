//! Cold start with a populated store: from opening the SQLite file to a driver that is
//! ready (its `Node` restored, its start-up incarnation committed, status `active`).
//!
//! The end-to-end figure runs [`aurora_io::launch`], the gateway's own start-up path:
//! open and check the file, derive TLS from the secret, bind QUIC on loopback, load the
//! records, build the `Node` and the readers' state snapshot, commit the new
//! incarnation. The phases are then timed one by one with the same calls, so a slow
//! total can be attributed. The file is warm in the page cache (it was just written or
//! read); a cold cache adds reading it from disk.

use std::path::Path;
use std::time::{Duration, Instant};

use aurora_core::{Millis, Node, NodeId, Now, PersistBatch, PersistItem};
use aurora_io::transport::tls;
use aurora_io::{LocalStatus, Socket, StateSnapshot, Store};

use crate::common::{auth_key_entry, free_udp_port, millis, settings, summary, wall_ms, Args};

const NODE: &str = "bench-cold";
/// Records are written in commits of this many when the file is prepared.
const PREPARE_BATCH: u64 = 10_000;
const READY_TIMEOUT: Duration = Duration::from_secs(60);

pub fn run(args: &Args) -> Result<(), String> {
    let records = args.number("records", 100_000)?;
    let runs = args.number("runs", 5)?;
    let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    // `--keep PATH` writes the file there and leaves it (for `aurora serve
    // --cluster-node-id bench-cold`, e.g. to read its memory with the records loaded).
    let path = args
        .text("keep")
        .map_or_else(|| dir.path().join("node.db"), Into::into);
    let node = settings(NODE, 7946, &[]).to_core("bench").1.id;
    prepare(&path, node, records)?;
    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
    println!(
        "# cold start: {records} auth-key records, file {:.1} MB",
        size as f64 / 1e6
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let mut totals = Vec::new();
    for _ in 0..runs {
        totals.push(rt.block_on(end_to_end(&path, records))?);
    }
    println!("launch -> ready: {}", summary(&totals, "ms"));
    phases(&path, runs)
}

/// Writes `records` entries (and an incarnation, as a node that ran before) to a
/// fresh file owned by `node`.
fn prepare(path: &Path, node: NodeId, records: u64) -> Result<(), String> {
    let mut store = Store::open(path, node).map_err(|e| e.to_string())?;
    let origin = NodeId::from_name("bench-origin");
    let started = Instant::now();
    let mut first = 0;
    while first < records {
        let count = PREPARE_BATCH.min(records - first);
        let items = (first..first + count)
            .map(|i| PersistItem::Entry(Box::new(auth_key_entry(origin, i))))
            .collect();
        store
            .apply(&PersistBatch { items })
            .map_err(|e| e.to_string())?;
        first += count;
    }
    store
        .apply(&PersistBatch {
            items: vec![PersistItem::Incarnation(aurora_core::Incarnation(1))],
        })
        .map_err(|e| e.to_string())?;
    println!(
        "prepared in {:.0} ms ({:.0} records/s in commits of {PREPARE_BATCH})",
        millis(started.elapsed()),
        records as f64 / started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `launch` until the driver reports itself active; returns milliseconds.
async fn end_to_end(path: &Path, records: u64) -> Result<f64, String> {
    let settings = settings(NODE, free_udp_port(), &[]);
    let started = Instant::now();
    let handle = aurora_io::launch(&settings, path, Socket::Bind, Some(1), "bench")
        .await
        .map_err(|e| e.to_string())?;
    let mut watch = handle.watch();
    tokio::time::timeout(
        READY_TIMEOUT,
        watch.wait_for(|v| v.status == LocalStatus::Active && v.metrics.commits >= 1),
    )
    .await
    .map_err(|_| "the driver did not become ready".to_string())?
    .map_err(|_| "the driver stopped".to_string())?;
    let elapsed = millis(started.elapsed());
    let live = handle.state().live_records() as u64;
    handle.stop().await.map_err(|e| e.to_string())?;
    if live != records {
        return Err(format!("restored {live} records, expected {records}"));
    }
    Ok(elapsed)
}

/// Times each step of the start-up path separately (median over `runs`).
fn phases(path: &Path, runs: u64) -> Result<(), String> {
    let settings = settings(NODE, free_udp_port(), &[]);
    let secrets = settings.secrets.clone().ok_or("no secret")?;
    let mut steps: [(&str, Vec<f64>); 5] = [
        ("Store::open (header, quick_check, migrations)", Vec::new()),
        ("Store::load (read + decode every entry)", Vec::new()),
        ("Node::new (restore the replica)", Vec::new()),
        ("StateSnapshot::build (readers' maps)", Vec::new()),
        ("TLS from the derived cluster keys", Vec::new()),
    ];
    // Argon2id runs once per secret and process (it is cached), so it is timed once.
    let t = Instant::now();
    let keys = tls::ClusterKeys::derive(&secrets, &settings.cluster_name, settings.kdf)
        .map_err(|e| e.to_string())?;
    println!(
        "  cluster keys from the secret (Argon2id {:?}, once): {:.0} ms",
        settings.kdf,
        millis(t.elapsed())
    );
    let node_key = aurora_io::NodeKey::generate().map_err(|e| e.to_string())?;
    for _ in 0..runs {
        let (config, identity) = settings.to_core("bench");
        let t = Instant::now();
        let store = Store::open(path, identity.id).map_err(|e| e.to_string())?;
        steps[0].1.push(millis(t.elapsed()));
        let t = Instant::now();
        let restored = store.load().map_err(|e| e.to_string())?;
        steps[1].1.push(millis(t.elapsed()));
        let t = Instant::now();
        let now = Now::new(Millis::ZERO, wall_ms());
        let node = Node::new(
            config,
            identity,
            aurora_schema::GatewaySchema::arc(),
            1,
            restored,
            now,
        )
        .map_err(|e| e.to_string())?;
        steps[2].1.push(millis(t.elapsed()));
        let t = Instant::now();
        let snapshot = StateSnapshot::build(node.view().store(), node.view().origin());
        steps[3].1.push(millis(t.elapsed()));
        let t = Instant::now();
        tls::node_tls(&keys, &node_key, node.id(), &settings.node_name)
            .map_err(|e| e.to_string())?;
        steps[4].1.push(millis(t.elapsed()));
        // Dropping these maps is not part of start-up, but it costs a run's time.
        drop((snapshot, node));
    }
    for (name, samples) in &steps {
        println!("  {name}: {}", summary(samples, "ms"));
    }
    Ok(())
}
