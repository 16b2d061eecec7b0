//! Multi-process cluster tests: real `aurora` processes on loopback, talking QUIC with
//! mutual TLS from a shared secret, written to through their admin APIs. The process
//! scaffolding (addresses, spawning, the HTTP client, bounded waits) is in
//! `common/cluster.rs`.
//!
//! Figures printed (run with `--nocapture`): end-to-end propagation of an admin write
//! to all other nodes (p50/p99/max), the idle RSS of a node, and in active_passive
//! mode how long a planned switchover took and how long a new active node took to
//! appear after `kill -9` of the old one.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::{
    advertise_url, agreed, alive, get_json, has, http, json, metric, percentile, rss_kib, spawn,
    spec, start_three, wait_for, Agreed, Proc, Spec, SECRET,
};
use serde_json::json;

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
    let intruder = spawn(
        &intruder_spec,
        &specs,
        "a-different-secret-0123456789abcdef",
    );
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

    let before = switch_over_to_the_best_standby(&all, before);

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
    forget_the_killed_node(&survivors, &after, &before.leader);
}

/// The killed node is gone for good: once the new leader sees it dead, forget takes it
/// off the roster there; the standby refuses and names the leader.
fn forget_the_killed_node(survivors: &[(&Spec, &Proc)], after: &Agreed, killed: &str) {
    let leader = survivors[after.active].1;
    let standby = survivors[1 - after.active].1;
    let dead = || {
        get_json(leader, "/admin/api/cluster/nodes")["data"]
            .as_array()
            .is_some_and(|rows| {
                rows.iter()
                    .any(|r| r["id"] == killed && r["state"] == "dead")
            })
    };
    let seen_dead = wait_for(Duration::from_secs(30), "the killed node seen dead", dead);
    let (status, body) = post(standby, FORGET, &json!({"node": killed}));
    assert_eq!(
        (status, &body["error"]["code"]),
        (409, &json!("not_leader")),
        "{body}"
    );
    assert_eq!(body["leader"]["id"], after.leader.as_str(), "{body}");
    let (status, answer) = post(leader, FORGET, &json!({"node": killed}));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["removed"], true, "{answer}");
    let voters: Vec<&str> = answer["voters"]
        .as_array()
        .map(|v| v.iter().filter_map(|n| n["id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(voters.len(), 2, "{answer}");
    assert!(!voters.contains(&killed), "{answer}");
    println!("forgot the killed node {killed} (the leader saw it dead {seen_dead:?} after the failover); roster {voters:?}");
}

const SWITCHOVER: &str = "/admin/api/cluster/switchover";
const FORGET: &str = "/admin/api/cluster/forget";

/// The number of a `numeric_id` as cluster/status shows it (`n` and digits): the
/// core ranks equal candidates by it.
fn id_number(id: &str) -> u64 {
    id.strip_prefix('n')
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("not a numeric node id: {id}"))
}

/// `this_node.id` (the configured node id) and `this_node.numeric_id` of a node's
/// cluster/status.
fn own_id(p: &Proc) -> (String, String) {
    let status = get_json(p, "/admin/api/cluster/status");
    let field = |name: &str| {
        status["this_node"][name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name} in {status}"))
            .to_owned()
    };
    (field("id"), field("numeric_id"))
}

/// An admin POST of `body`; panics if the node does not answer.
fn post(p: &Proc, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let (status, text) = http(p.http, "POST", path, Some(&body.to_string())).expect("answer");
    (status, json(&text))
}

/// Hands the lease from the active node to the standby that ranks best (equal tiers
/// and capacities: the lowest id), so no automatic handover takes it back; checks the
/// refusals on the way and returns what the nodes agree on afterwards.
fn switch_over_to_the_best_standby(all: &[(&Spec, &Proc)], before: Agreed) -> Agreed {
    let leader = all[before.active].1;
    let (ids, numeric): (Vec<String>, Vec<String>) = all.iter().map(|(_, p)| own_id(p)).unzip();
    for ((spec, _), id) in all.iter().zip(&ids) {
        assert_eq!(id, &spec.name, "the API shows the configured node id");
    }
    let target = (0..all.len())
        .filter(|&i| i != before.active)
        .min_by_key(|&i| id_number(&numeric[i]))
        .expect("a standby");

    // A bad body names the field; a live member cannot be forgotten.
    let (status, body) = post(leader, SWITCHOVER, &json!({"to": 5}));
    assert_eq!(
        (status, &body["error"]["param"]),
        (400, &json!("to")),
        "{body}"
    );
    let (status, body) = post(leader, FORGET, &json!({"node": ids[target]}));
    assert_eq!(
        (status, &body["error"]["code"]),
        (409, &json!("member_alive")),
        "{body}"
    );

    let started = Instant::now();
    let (status, answer) = post(leader, SWITCHOVER, &json!({"to": ids[target]}));
    let answered = started.elapsed();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["to"]["id"], ids[target].as_str(), "{answer}");
    assert_eq!(
        answer["leader_before"]["id"],
        before.leader.as_str(),
        "{answer}"
    );
    assert_eq!(answer["epoch_before"], before.epoch, "{answer}");
    let mut switched = None;
    let took = wait_for(
        Duration::from_secs(10),
        "the target as the only ready node",
        || {
            switched = agreed(all).filter(|a| a.active == target);
            switched.is_some()
        },
    );
    let switched = switched.expect("agreed");
    println!(
        "switchover {} -> {}: answered in {answered:?} (completed: {}), agreed after {took:?}, epoch {} -> {}",
        all[before.active].0.name, all[target].0.name, answer["completed"], before.epoch, switched.epoch
    );
    assert!(
        switched.epoch > before.epoch,
        "epoch must grow: {before:?} -> {switched:?}"
    );

    // The old leader refuses now and names the new one, so a script can retry there.
    let (status, body) = post(leader, SWITCHOVER, &json!({"to": ids[before.active]}));
    assert_eq!(
        (status, &body["error"]["code"]),
        (409, &json!("not_leader")),
        "{body}"
    );
    assert_eq!(body["leader"]["id"], ids[target].as_str(), "{body}");
    assert_eq!(
        body["leader"]["advertise_url"],
        advertise_url(all[target].0),
        "{body}"
    );
    switched
}
