//! Multi-process cluster tests: real `aurora` processes on loopback, talking QUIC with
//! mutual TLS from a shared secret, written to through their admin APIs. The process
//! scaffolding (addresses, spawning, the HTTP client, bounded waits) is in
//! `common/cluster.rs`.
//!
//! Figures printed (run with `--nocapture`): end-to-end propagation of an admin write
//! to all other nodes (p50/p99/max), the idle RSS of a node, and in active_passive
//! mode how long a new active node took to appear after `kill -9` of the old one.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::{
    advertise_url, alive, get_json, has, http, json, metric, percentile, rss_kib, spawn, spec,
    start_three, wait_for, Proc, Spec, SECRET,
};

#[test]
fn three_processes_form_propagate_and_refuse_a_wrong_secret() {
    let root = tempfile::tempdir().expect("tempdir");
    let (specs, procs) = start_three(root.path(), &[]);

    // Propagation of admin writes made on node 1 to nodes 2 and 3.
    let mut delays = Vec::new();
    for i in 0..40 {
        let body = format!(
            r#"{{"id":"prop-{i}","name":"P","limit":null,"max_requests":{i},"period":"total"}}"#
        );
        let started = Instant::now();
        let (status, text) =
            http(procs[0].http, "POST", "/admin/api/budgets", Some(&body)).expect("post");
        assert_eq!(status, 201, "{text}");
        let path = format!("/admin/api/budgets/prop-{i}");
        wait_for(Duration::from_secs(10), "propagation", || {
            has(&procs[1], &path) && has(&procs[2], &path)
        });
        delays.push(started.elapsed());
    }
    delays.sort();
    let (p50, p99, max) = (
        percentile(&delays, 0.5),
        percentile(&delays, 0.99),
        delays[delays.len() - 1],
    );
    println!("end-to-end propagation (write on node 1 → visible on nodes 2 and 3), n=40: p50 {p50:?} p99 {p99:?} max {max:?}");
    assert!(
        max < Duration::from_secs(5),
        "propagation too slow: {max:?}"
    );

    // Status fields.
    let (_, status) =
        http(procs[1].http, "GET", "/admin/api/cluster/status", None).expect("status");
    let status = json(&status);
    assert_eq!(status["enabled"], true);
    assert_eq!(status["node_count"], 3);
    assert_eq!(status["this_node"]["name"], "node-2");

    std::thread::sleep(Duration::from_millis(500));
    println!("idle RSS of node 1: {} KiB", rss_kib(&procs[0]));

    // A fourth process with the wrong secret never joins; the others count refusals.
    let intruder_spec = spec(root.path(), 4, &[]);
    let intruder = spawn(&intruder_spec, &specs, "a-different-secret-0123456789");
    let refused = || {
        procs
            .iter()
            .map(|p| metric(p, "aurora_cluster_tls_rejected_total"))
            .sum::<u64>()
    };
    wait_for(Duration::from_secs(15), "a counted TLS refusal", || {
        refused() > 0
    });
    std::thread::sleep(Duration::from_secs(2));
    for p in &procs {
        assert_eq!(alive(p), 3, "the intruder must not be listed");
    }
    let (_, rows) = http(intruder.http, "GET", "/admin/api/cluster/nodes", None).expect("nodes");
    let rows = json(&rows)["data"].as_array().map_or(0, Vec::len);
    assert_eq!(rows, 1, "the intruder knows only itself");
    println!("TLS refusals counted by the three members: {}", refused());
    drop(intruder);
    drop(procs);
}

#[test]
fn kill_9_during_a_write_burst_loses_no_acknowledged_write() {
    let root = tempfile::tempdir().expect("tempdir");
    let (specs, mut procs) = start_three(root.path(), &[]);

    // 200 writes to node 2; node 2 is killed with SIGKILL after about 60 were acked.
    let acked = Arc::new(Mutex::new(Vec::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let target = procs[1].http;
    let writer = {
        let (acked, count, done) = (acked.clone(), count.clone(), done.clone());
        std::thread::spawn(move || {
            for i in 0..200 {
                let body = format!(
                    r#"{{"id":"burst-{i}","name":"B","limit":null,"max_requests":{i},"period":"total"}}"#
                );
                if let Ok((status, _)) = http(target, "POST", "/admin/api/budgets", Some(&body)) {
                    if (200..300).contains(&status) {
                        acked.lock().expect("lock").push(format!("burst-{i}"));
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    wait_for(Duration::from_secs(20), "60 acknowledged writes", || {
        count.load(Ordering::SeqCst) >= 60 || done.load(Ordering::SeqCst)
    });
    procs[1].kill_9();
    writer.join().expect("writer");
    let acked = acked.lock().expect("lock").clone();
    println!("acknowledged before kill -9: {} of 200", acked.len());
    assert!(
        acked.len() >= 60 && acked.len() < 200,
        "{} acked",
        acked.len()
    );

    // Restart node 2 from the same directory.
    procs[1] = spawn(&specs[1], &specs, SECRET);
    for id in &acked {
        assert!(
            has(&procs[1], &format!("/admin/api/budgets/{id}")),
            "{id} lost on node 2"
        );
    }
    wait_for(
        Duration::from_secs(20),
        "node 2 back in the cluster",
        || procs.iter().all(|p| alive(p) == 3),
    );
    let took = wait_for(
        Duration::from_secs(20),
        "acked writes on nodes 1 and 3",
        || {
            acked.iter().all(|id| {
                let path = format!("/admin/api/budgets/{id}");
                has(&procs[0], &path) && has(&procs[2], &path)
            })
        },
    );
    println!("every acknowledged write on nodes 1 and 3 {took:?} after node 2's restart");
}

/// What the live nodes agree on in active_passive mode, if they do: the index (into
/// the slice) of the one node whose `/health/ready` is 200, the leader id and epoch.
#[derive(Debug, PartialEq)]
struct Agreed {
    active: usize,
    leader: String,
    epoch: u64,
}

/// `Some` when exactly one of `nodes` is ready, every other one answers 503 `standby`
/// naming the ready node's advertise URL, and every node's cluster/status names the
/// same leader and epoch.
fn agreed(nodes: &[(&Spec, &Proc)]) -> Option<Agreed> {
    let mut active = None;
    let mut standby_points_at = Vec::new();
    for (i, (_, p)) in nodes.iter().enumerate() {
        let (status, body) = http(p.http, "GET", "/health/ready", None).ok()?;
        match status {
            200 if active.is_none() => active = Some(i),
            503 if json(&body)["status"] == "standby" => {
                standby_points_at.push(json(&body)["active"].as_str()?.to_owned());
            }
            _ => return None,
        }
    }
    let active = active?;
    let url = advertise_url(nodes[active].0);
    if standby_points_at.iter().any(|u| *u != url) {
        return None;
    }
    let statuses: Vec<serde_json::Value> = nodes
        .iter()
        .map(|(_, p)| get_json(p, "/admin/api/cluster/status"))
        .collect();
    let leader = statuses[0]["leader"].as_str()?.to_owned();
    let epoch = statuses[0]["epoch"].as_u64()?;
    let same = statuses
        .iter()
        .all(|s| s["leader"] == leader.as_str() && s["epoch"] == epoch);
    let leader_is_active = statuses[active]["this_node"]["id"] == leader.as_str();
    (same && leader_is_active).then_some(Agreed {
        active,
        leader,
        epoch,
    })
}

#[test]
fn active_passive_serves_from_one_node_and_fails_over_after_kill_9() {
    let root = tempfile::tempdir().expect("tempdir");
    let (specs, mut procs) =
        start_three(root.path(), &["--cluster-failover-mode", "active_passive"]);
    let all: Vec<(&Spec, &Proc)> = specs.iter().zip(procs.iter()).collect();
    let mut before = None;
    let elected = wait_for(Duration::from_secs(20), "one active node", || {
        before = agreed(&all);
        before.is_some()
    });
    let before = before.expect("agreed");
    println!(
        "first active node: {} (epoch {}) after {elected:?}",
        specs[before.active].name, before.epoch
    );

    // The dashboard of a standby shows the leader badge on the active node's row.
    let standby = &procs[(before.active + 1) % 3];
    let (status, page) =
        http(standby.http, "GET", "/admin/dashboard/cluster", None).expect("dashboard");
    assert_eq!(status, 200);
    let leader_row = page
        .lines()
        .find(|l| l.contains("badge leader"))
        .unwrap_or_else(|| panic!("no leader badge in {page}"));
    assert!(
        leader_row.contains(&format!(">{}<", specs[before.active].name)),
        "{leader_row}"
    );
    assert!(page.contains("<code>active_passive</code>"));

    procs[before.active].kill_9();
    let survivors: Vec<(&Spec, &Proc)> = specs
        .iter()
        .zip(procs.iter())
        .enumerate()
        .filter(|(i, _)| *i != before.active)
        .map(|(_, pair)| pair)
        .collect();
    let mut after = None;
    let took = wait_for(Duration::from_secs(15), "a new active node", || {
        after = agreed(&survivors).filter(|a| a.leader != before.leader);
        after.is_some()
    });
    let after = after.expect("agreed");
    println!(
        "after kill -9 of {}: {} active (epoch {}) within {took:?}",
        specs[before.active].name, survivors[after.active].0.name, after.epoch
    );
    assert!(
        after.epoch > before.epoch,
        "epoch must grow: {before:?} -> {after:?}"
    );
}
