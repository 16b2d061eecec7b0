//! Issue 11 items 4 and 5 between real processes: `aurora dev` (a local cluster of
//! child `aurora serve` processes), the fault-injection endpoint, and the game days
//! (`aurora gameday failover` / `rolling-restart`) against a dev cluster.
//!
//! Scaffolding: `common/dev.rs` (the dev cluster as a guarded child) and
//! `common/cluster.rs` (single nodes, the HTTP client, bounded waits).

mod common;

use std::process::Command;
use std::time::Duration;

use common::cluster::{alive, http, json, spawn, spec, start_three, wait_for, BIN, SECRET};
use common::dev::{pids, running, state, Dev};

#[test]
fn a_dev_cluster_starts_three_nodes_and_sigint_stops_every_one() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut dev = Dev::start(root.path(), 3, &["--mode", "active_active"]);
    let out = dev.output();
    let token = std::fs::read_to_string(dev.dir.join("admin_token")).expect("token file");
    assert_eq!(token.trim().len(), 64, "32 random bytes as hex");
    assert!(
        out.contains(token.trim()),
        "the banner shows the admin token: {out}"
    );
    assert!(out.contains("/admin/dashboard/cluster"), "{out}");
    assert!(out.contains("/v1/chat/completions"), "a sample curl: {out}");
    let node_pids = pids(&dev.dir);
    for pid in &node_pids {
        assert!(
            out.contains(&format!("pid {pid}")),
            "the banner names pid {pid}: {out}"
        );
        assert!(running(*pid));
    }

    // Every node serves the mock provider and sees the other two.
    let st = state(&dev.dir);
    for node in st["nodes"].as_array().expect("nodes") {
        let addr = node["url"]
            .as_str()
            .and_then(|u| u.strip_prefix("http://"))
            .and_then(|a| a.parse().ok())
            .expect("url");
        let (status, body) = common::cluster::request(
            addr,
            "POST",
            "/v1/chat/completions",
            "",
            Some(r#"{"model":"mock/echo","messages":[{"role":"user","content":"hi"}]}"#),
        )
        .expect("chat");
        assert_eq!(status, 200, "{body}");
        let (_, nodes) =
            common::cluster::request(addr, "GET", "/admin/api/cluster/nodes", token.trim(), None)
                .expect("nodes");
        let alive = json(&nodes)["data"]
            .as_array()
            .map_or(0, |r| r.iter().filter(|n| n["state"] == "alive").count());
        assert_eq!(alive, 3, "{nodes}");
    }

    // A node killed behind its back is reported, not restarted.
    common::dev::signal(node_pids[2], "-KILL");
    wait_for(Duration::from_secs(10), "the death reported", || {
        dev.output().contains("node-3 (pid") && dev.output().contains("exited unexpectedly")
    });

    // Ctrl-C: exit 0, and not one node process left.
    let status = dev.interrupt(Duration::from_secs(45));
    assert!(status.success(), "{status}: {}", dev.output());
    for pid in &node_pids {
        assert!(!running(*pid), "node pid {pid} outlived aurora dev");
    }
    let out = dev.output();
    assert!(out.contains("node-1 stopped (exit status: 0)"), "{out}");
    assert!(out.contains("node-2 stopped (exit status: 0)"), "{out}");
}

#[test]
fn the_fault_endpoint_is_refused_without_the_flag_and_isolates_or_crashes_with_it() {
    let root = tempfile::tempdir().expect("tempdir");
    let plain = spawn(&spec(root.path(), 9, &[]), &[], SECRET);
    let (status, body) = http(
        plain.http,
        "POST",
        "/admin/api/cluster/fault",
        Some(r#"{"fault":"crash"}"#),
    )
    .expect("answer");
    assert_eq!(status, 403, "{body}");
    assert_eq!(json(&body)["error"]["code"], "fault_injection_disabled");
    assert!(
        plain.http.port() > 0 && http(plain.http, "GET", "/health", None).is_ok(),
        "still up"
    );
    drop(plain);

    let (_specs, mut procs) = start_three(root.path(), &["--allow-fault-injection"]);
    let log = std::fs::read_to_string(root.path().join("node1/aurora.log")).expect("log");
    assert!(
        log.contains("--allow-fault-injection"),
        "a warning at start"
    );
    let (status, body) = http(
        procs[2].http,
        "POST",
        "/admin/api/cluster/fault",
        Some(r#"{"fault":"isolate","seconds":9}"#),
    )
    .expect("answer");
    assert_eq!(status, 200, "{body}");
    let cut = wait_for(Duration::from_secs(20), "node 3 seen gone", || {
        alive(&procs[0]) == 2 && alive(&procs[1]) == 2
    });
    // Its HTTP side keeps serving while it is cut off.
    assert_eq!(
        http(procs[2].http, "GET", "/health", None).expect("up").0,
        200
    );
    let healed = wait_for(Duration::from_secs(40), "node 3 back", || {
        procs.iter().all(|p| alive(p) == 3)
    });
    println!("isolated 9 s: seen gone after {cut:?}, all three alive again {healed:?} later");

    let (status, body) = http(
        procs[2].http,
        "POST",
        "/admin/api/cluster/fault",
        Some(r#"{"fault":"crash"}"#),
    )
    .expect("answer");
    assert_eq!(status, 202, "{body}");
    let mut code = None;
    wait_for(Duration::from_secs(5), "the crashed process gone", || {
        code = procs[2].child.try_wait().ok().flatten().map(|s| s.code());
        code.is_some()
    });
    assert_eq!(code, Some(Some(137)), "exits at once like kill -9");
    procs.truncate(2);
}

/// Runs `aurora gameday ARGS…`, asserts exit 0, returns stdout and the JSON summary.
fn gameday(args: &[&str], json_path: &std::path::Path) -> (String, serde_json::Value) {
    let out = Command::new(BIN)
        .arg("gameday")
        .args(args)
        .arg("--json")
        .arg(json_path)
        .output()
        .expect("run gameday");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = json(&std::fs::read_to_string(json_path).expect("summary"));
    (stdout, summary)
}

#[test]
fn game_days_against_a_dev_cluster_report_sane_figures_and_a_clean_rolling_restart() {
    let root = tempfile::tempdir().expect("tempdir");
    let dev = Dev::start(root.path(), 3, &[]);
    let dir = dev.dir.to_str().expect("utf-8 path").to_owned();

    let (table, fo) = gameday(
        &[
            "failover",
            "--dev-dir",
            &dir,
            "--duration",
            "12",
            "--warmup",
            "2",
            "--restart-after",
            "2",
            "--rate",
            "10",
        ],
        &root.path().join("failover.json"),
    );
    println!("{table}");
    assert!(
        table.contains("| client | requests sent | failed |"),
        "{table}"
    );
    let to_leader = fo["time_to_new_leader_ms"].as_u64().expect("a new leader");
    assert!(to_leader < 15_000, "{fo}");
    assert_ne!(fo["new_leader"], fo["leader"], "{fo}");
    assert!(
        fo["time_to_ready_ms"].as_u64().expect("back") < 30_000,
        "{fo}"
    );
    for client in fo["clients"].as_array().expect("clients") {
        let sent = client["sent"].as_u64().expect("sent");
        let failed = client["failed"].as_u64().expect("failed");
        assert!(sent > 50, "{client}");
        // In flight on the killed node, at most: nobody else refuses (see the docs).
        assert!(failed <= 5, "{client}");
        assert!(
            client["longest_error_window_ms"].as_u64().expect("window") < 6_000,
            "{client}"
        );
    }

    let (table, rr) = gameday(
        &[
            "rolling-restart",
            "--dev-dir",
            &dir,
            "--warmup",
            "1",
            "--pause",
            "1",
            "--rate",
            "10",
        ],
        &root.path().join("rolling.json"),
    );
    println!("{table}");
    assert_eq!(rr["restarts"].as_array().map(Vec::len), Some(3), "{rr}");
    // The leader hands its lease over before it drains, so some node stays ready
    // (without the handover: about 5 s with none, the drain plus an election).
    assert!(
        rr["no_node_ready_ms"].as_u64().expect("lb view") < 2_500,
        "{rr}"
    );
    for client in rr["clients"].as_array().expect("clients") {
        assert!(client["sent"].as_u64().expect("sent") > 50, "{client}");
        // Fails without the sync wait: 503 node_syncing from each restarted node.
        assert_eq!(client["failed"], 0, "{client}");
    }
    drop(dev);
}
