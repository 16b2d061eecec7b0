//! A seed name that does not resolve does not stop a node: it is what every pod of a
//! Kubernetes StatefulSet sees at start, since a pod's DNS name exists only once that
//! pod has an address (deploy/helm/aurora lists every founding pod as a seed). The
//! node starts, joins through the seeds that do resolve, and counts the name it keeps
//! retrying in `/metrics`. Before the fix the start failed with exit 2 ("a
//! resolvable host:port").

mod common;

use std::time::Duration;

use common::cluster::{alive, http, metric, spawn, spawn_seeded, spec, wait_for, SECRET};

#[test]
fn a_node_whose_other_seed_does_not_resolve_yet_starts_joins_and_counts_it() {
    let root = tempfile::tempdir().expect("tempdir");
    let first = spec(root.path(), 1, &[]);
    let second = spec(root.path(), 2, &[]);
    let n1 = spawn(&first, &[], SECRET);
    // `.invalid` never resolves (RFC 6761): a pod that does not exist yet.
    let seeds = vec![
        first.gossip.to_string(),
        "aurora-7.aurora-peers.invalid:7946".to_owned(),
    ];
    let n2 = spawn_seeded(&second, &seeds, SECRET);
    wait_for(
        Duration::from_secs(30),
        "node-2 ready (synced with node-1)",
        || matches!(http(n2.http, "GET", "/health/ready", None), Ok((200, _))),
    );
    wait_for(
        Duration::from_secs(20),
        "both members alive on node-1",
        || alive(&n1) == 2,
    );
    assert_eq!(metric(&n2, "aurora_cluster_seeds_unresolved"), 1);
    // The start's attempt, then retries with backoff (0.5 s, 1 s, ...).
    wait_for(Duration::from_secs(10), "a retry counted", || {
        metric(&n2, "aurora_cluster_seed_resolve_failures_total") >= 2
    });
    let log = std::fs::read_to_string(second.dir.join("aurora.log")).unwrap_or_default();
    assert!(
        log.contains("seed does not resolve (yet)")
            && log.contains("aurora-7.aurora-peers.invalid"),
        "the name is logged: {log}"
    );
}

#[test]
fn a_malformed_seed_entry_is_still_a_configuration_error() {
    let root = tempfile::tempdir().expect("tempdir");
    let s = spec(root.path(), 1, &[]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aurora"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&s.dir)
        .args(["--cluster-enabled", "true", "--cluster-node-id", "n1"])
        .args(["--cluster-bind-addr", "127.0.0.1"])
        .args(["--cluster-seed-nodes", "aurora-0.peers:notaport"])
        .env("CLUSTER_SECRET", SECRET)
        .env("AURORA_ADMIN_TOKEN", common::TOKEN)
        .output()
        .expect("run aurora");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cluster.seed_nodes") && stderr.contains("notaport"),
        "{stderr}"
    );
}
