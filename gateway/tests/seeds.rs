//! A seed name that does not resolve does not stop a node: it is what every pod of a
//! Kubernetes StatefulSet sees at start, since a pod's DNS name exists only once that
//! pod has an address (deploy/helm/aurora lists every founding pod as a seed). The
//! node starts, joins through the seeds that do resolve, and counts the name it keeps
//! retrying in `/metrics`. Before the fix the start failed (exit 1, "`cluster.seed_nodes`:
//! expected a resolvable host:port"), so such a pod crash-looped.

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

/// Writes `lines` into the hosts file in place (the bind mounts see the new text).
fn write_hosts(path: &std::path::Path, lines: &[String]) {
    let mut text = String::from("127.0.0.1 localhost\n");
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    std::fs::write(path, text).expect("write hosts");
}

/// A node started while its only other seed's name does not exist joins through it
/// once the name resolves (a StatefulSet's pod-1 getting its address after pod-0
/// started): the retry hands the address to the core, which joins at once.
#[test]
fn a_seed_name_that_resolves_later_is_joined() {
    if !common::cluster::mount_namespaces_allowed() {
        eprintln!("SKIPPED: needs mount namespaces (root) to control /etc/hosts; CI runs as root");
        return;
    }
    let root = tempfile::tempdir().expect("tempdir");
    let hosts = root.path().join("hosts");
    write_hosts(&hosts, &[]);
    let first = spec(root.path(), 1, &[]);
    let mut second = spec(root.path(), 2, &[]);
    second.hosts = Some(hosts.clone());
    let n1 = spawn(&first, &[], SECRET);
    let name = format!("aurora-0.aurora-peers.test:{}", first.gossip.port());
    let n2 = spawn_seeded(&second, &[name], SECRET);
    wait_for(
        Duration::from_secs(10),
        "a failed resolution counted",
        || metric(&n2, "aurora_cluster_seed_resolve_failures_total") >= 2,
    );
    assert_eq!(alive(&n1), 1, "node-1 has not heard of node-2 yet");
    assert!(
        matches!(http(n2.http, "GET", "/health/ready", None), Ok((503, _))),
        "a node whose seed is pending is not ready (it may be a peer to sync with)"
    );
    write_hosts(
        &hosts,
        &[format!("{} aurora-0.aurora-peers.test", first.gossip.ip())],
    );
    let took = wait_for(Duration::from_secs(40), "node-2 joined node-1", || {
        alive(&n1) == 2 && alive(&n2) == 2
    });
    eprintln!("joined {took:?} after the name appeared");
    wait_for(Duration::from_secs(20), "node-2 ready", || {
        matches!(http(n2.http, "GET", "/health/ready", None), Ok((200, _)))
    });
    assert_eq!(metric(&n2, "aurora_cluster_seeds_unresolved"), 0);
}

/// A node whose only seed is its own name, not resolvable at start (a one-pod
/// StatefulSet whose DNS record comes after the container starts): once the name
/// resolves to itself the node is a founder alone and ready, as if started without
/// seeds, instead of waiting for a sync with nobody.
#[test]
fn a_late_seed_that_is_this_node_makes_it_a_founder_alone() {
    if !common::cluster::mount_namespaces_allowed() {
        eprintln!("SKIPPED: needs mount namespaces (root) to control /etc/hosts; CI runs as root");
        return;
    }
    let root = tempfile::tempdir().expect("tempdir");
    let hosts = root.path().join("hosts");
    write_hosts(&hosts, &[]);
    let mut only = spec(root.path(), 1, &[]);
    only.hosts = Some(hosts.clone());
    let me = format!("node-1.aurora-peers.test:{}", only.gossip.port());
    let n = spawn_seeded(&only, &[me], SECRET);
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        matches!(http(n.http, "GET", "/health/ready", None), Ok((503, _))),
        "not ready while its seed is pending"
    );
    write_hosts(
        &hosts,
        &[format!("{} node-1.aurora-peers.test", only.gossip.ip())],
    );
    wait_for(
        Duration::from_secs(40),
        "ready once the seed is known to be itself",
        || matches!(http(n.http, "GET", "/health/ready", None), Ok((200, _))),
    );
}

/// Founders listed by DNS name, as the Helm chart lists its pods, with no
/// `bootstrap_expect` set: each finds its own node id as the first label of a seed,
/// so both are founders (bootstrap_expect 2) and elect the first leader. Before,
/// names never matched: both defaulted to 0 (newcomers) and no leader was ever
/// elected.
#[test]
fn founders_listed_by_name_find_themselves_and_elect_a_leader() {
    if !common::cluster::mount_namespaces_allowed() {
        eprintln!("SKIPPED: needs mount namespaces (root) to control /etc/hosts; CI runs as root");
        return;
    }
    let root = tempfile::tempdir().expect("tempdir");
    let hosts = root.path().join("hosts");
    let mut specs = vec![spec(root.path(), 1, &[]), spec(root.path(), 2, &[])];
    let names: Vec<String> = specs
        .iter()
        .map(|s| format!("{}.aurora-peers.test", s.name))
        .collect();
    write_hosts(
        &hosts,
        &specs
            .iter()
            .zip(&names)
            .map(|(s, n)| format!("{} {n}", s.gossip.ip()))
            .collect::<Vec<_>>(),
    );
    let seeds: Vec<String> = specs
        .iter()
        .zip(&names)
        .map(|(s, n)| format!("{n}:{}", s.gossip.port()))
        .collect();
    for s in &mut specs {
        s.hosts = Some(hosts.clone());
    }
    let procs: Vec<_> = specs
        .iter()
        .map(|s| spawn_seeded(s, &seeds, SECRET))
        .collect();
    wait_for(
        Duration::from_secs(40),
        "one leader and 2 voters on both",
        || {
            let status: Vec<serde_json::Value> = procs
                .iter()
                .map(|p| common::cluster::get_json(p, "/admin/api/cluster/status"))
                .collect();
            status.iter().all(|s| {
                s["leader"].is_string() && s["voters"].as_array().is_some_and(|v| v.len() == 2)
            }) && status[0]["leader"] == status[1]["leader"]
        },
    );
}
