//! Backup, restore, export and import on real `aurora` processes, real SQLite files
//! and real QUIC clusters on loopback (docs/operations.md, "Backup, restore and
//! export"):
//!
//! 1. a backup taken from a node while a writer creates keys through it restores into
//!    a fresh directory that holds every write acknowledged before the backup began;
//!    started as a new member, it converges with the cluster (same export digest);
//!    started under the original's node id while the original runs, it is refused;
//! 2. an export of a source cluster imported into a fresh cluster, once into an empty
//!    data directory and once through the admin API of a running cluster (after a
//!    dry run that shows the diff), gives the source's digest on every node, and the
//!    clients' keys keep working there;
//! 3. `export --at T` equals the export taken at `T` after overwrites and deletes,
//!    from the data directory and from the URL, also after a restart; a time the node
//!    was down is refused; the node reading its own file for it leaves its SQLite locks
//!    alone (an outside `sqlite3`-like program closing next does not delete its WAL);
//! 4. refusals: a non-empty directory, a corrupt file, a newer schema, an existing
//!    backup file, bad and out-of-range `--at`, a wrong admin token: exit 2 with the
//!    thing at fault named, nothing written.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::{
    aurora, http, json, request, spawn, spec, start_cluster, wait_for, Proc, SECRET,
};

/// The export digest a node's admin API answers now ("" if it does not answer).
fn digest(p: &Proc) -> String {
    http(p.http, "GET", "/admin/api/state/export", None)
        .ok()
        .filter(|(status, _)| *status == 200)
        .and_then(|(_, body)| json(&body)["digest"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The ids of `collection` in an export document.
fn ids(doc: &serde_json::Value, collection: &str) -> BTreeSet<String> {
    doc["collections"][collection]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter_map(|r| r["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn url(p: &Proc) -> String {
    format!("http://{}", p.http)
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

/// Creates key `id` through `p`; its secret on success (201).
fn create_key(p: &Proc, id: &str) -> Option<String> {
    let body = format!(r#"{{"id":"{id}","name":"key {id}"}}"#);
    match http(p.http, "POST", "/admin/api/keys", Some(&body)) {
        Ok((201, text)) => json(&text)["secret"].as_str().map(str::to_owned),
        _ => None,
    }
}

#[test]
fn a_backup_under_write_load_restores_to_a_node_that_converges() {
    let root = tempfile::tempdir().expect("tempdir");
    let (mut specs, mut procs) = start_cluster(root.path(), 3, &[]);

    // A steady writer through node 1; every acknowledged id is recorded in order.
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let target = procs[0].http;
    let writer = {
        let (acked, stop) = (Arc::clone(&acked), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let id = format!("load-{i:05}");
                let body = format!(r#"{{"id":"{id}","name":"load {i}"}}"#);
                if let Ok((201, _)) = http(target, "POST", "/admin/api/keys", Some(&body)) {
                    acked.lock().expect("lock").push(id);
                }
                i += 1;
            }
        })
    };
    wait_for(Duration::from_secs(60), "400 acknowledged writes", || {
        acked.lock().expect("lock").len() >= 400
    });
    // Everything acknowledged before the backup starts must be in it.
    let before: Vec<String> = acked.lock().expect("lock").clone();
    let out = root.path().join("node1.backup");
    let started = Instant::now();
    let run = aurora(
        &[
            "backup",
            "--data-dir",
            path(&specs[0].dir),
            "--out",
            path(&out),
        ],
        &[],
    );
    let took = started.elapsed();
    assert_eq!(run.code, 0, "backup: {}{}", run.stdout, run.stderr);
    let during = acked.lock().expect("lock").len() - before.len();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    let total = acked.lock().expect("lock").len();
    println!(
        "backup under load: {} ms, {} writes acknowledged before it, {during} while it ran, {total} in all; {}",
        took.as_millis(),
        before.len(),
        run.stdout.trim()
    );
    assert!(
        total > before.len(),
        "the writer kept writing after the backup"
    );

    // Restore into a fresh directory: it holds every write acknowledged before.
    let mut new = spec(root.path(), 4, &[]);
    let run = aurora(&["restore", path(&out), "--data-dir", path(&new.dir)], &[]);
    assert_eq!(run.code, 0, "restore: {}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("new storage life"), "{}", run.stdout);
    let run = aurora(&["state", "export", "--data-dir", path(&new.dir)], &[]);
    assert_eq!(run.code, 0, "export of the restored dir: {}", run.stderr);
    let restored = ids(&json(&run.stdout), "keys");
    let missing: Vec<&String> = before.iter().filter(|id| !restored.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "acknowledged before the backup but not in it: {missing:?}"
    );
    assert!(
        !new.dir.join("node.key").exists(),
        "no key of the old life is copied"
    );

    // Started as a new member of the cluster, it catches up and converges.
    new.name = "node-4".into();
    specs.push(new);
    let node4 = spawn(&specs[3], &specs, SECRET);
    let started = Instant::now();
    wait_for(
        Duration::from_secs(60),
        "the restored node converges",
        || {
            let d = digest(&node4);
            !d.is_empty() && procs.iter().all(|p| digest(p) == d)
        },
    );
    println!(
        "restored node converged {} ms after its start ({} records)",
        started.elapsed().as_millis(),
        total
    );
    let doc = json(
        &http(node4.http, "GET", "/admin/api/state/export", None)
            .expect("export")
            .1,
    );
    let all: BTreeSet<String> = acked.lock().expect("lock").iter().cloned().collect();
    assert!(
        all.is_subset(&ids(&doc, "keys")),
        "every acknowledged write is on it"
    );
    // A new storage life: its own key, another life than node 1's.
    assert!(specs[3].dir.join("node.key").exists());
    procs.push(node4);
    let nodes = json(
        &http(procs[0].http, "GET", "/admin/api/cluster/nodes", None)
            .expect("nodes")
            .1,
    );
    let alive = nodes["data"]
        .as_array()
        .map(|rows| rows.iter().filter(|r| r["state"] == "alive").count())
        .unwrap_or(0);
    assert_eq!(
        alive, 4,
        "node 1 lists the restored node as a member: {nodes}"
    );

    // The same backup started under the original's node id while the original runs:
    // a new life, so the peers refuse it (identity mismatch) and keep the original.
    let mut twin = spec(root.path(), 5, &[]);
    let run = aurora(&["restore", path(&out), "--data-dir", path(&twin.dir)], &[]);
    assert_eq!(run.code, 0, "restore: {}", run.stderr);
    twin.name = "node-1".into();
    let seeds = specs.clone();
    let _twin = spawn(&twin, &seeds, SECRET);
    wait_for(Duration::from_secs(30), "node 2 refuses the twin", || {
        let status = common::cluster::get_json(&procs[1], "/admin/api/cluster/status");
        status["identity"]["strangers"]
            .as_array()
            .is_some_and(|rows| rows.iter().any(|r| r["reason"] == "identity_mismatch"))
    });
    let nodes = common::cluster::get_json(&procs[1], "/admin/api/cluster/nodes");
    let node1 = nodes["data"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["name"] == "node-1").cloned())
        .expect("node-1 listed");
    assert_eq!(node1["state"], "alive", "the original stays: {node1}");
    assert_eq!(
        node1["advertise_url"].as_str(),
        Some(common::cluster::advertise_url(&specs[0]).as_str()),
        "node-1 is still the original process, not the twin"
    );
}

#[test]
fn an_export_imported_into_a_fresh_cluster_has_the_source_digest() {
    let root = tempfile::tempdir().expect("tempdir");
    let source_root = root.path().join("source");
    let (_, source) = start_cluster(&source_root, 2, &[]);
    let budget =
        r#"{"id":"team-a","name":"Team A","limit":null,"max_requests":1000,"period":"total"}"#;
    let (status, text) =
        http(source[0].http, "POST", "/admin/api/budgets", Some(budget)).expect("budget");
    assert_eq!(status, 201, "{text}");
    let mut secrets = Vec::new();
    for i in 0..5 {
        secrets.push(create_key(&source[i % 2], &format!("k{i}")).expect("key"));
    }
    let (status, text) = http(
        source[0].http,
        "PUT",
        "/admin/api/keys/k0",
        Some(r#"{"name":"k0 renamed","budget_id":"team-a"}"#),
    )
    .expect("put");
    assert_eq!(status, 200, "{text}");
    wait_for(Duration::from_secs(20), "the source converges", || {
        let d = digest(&source[0]);
        !d.is_empty() && d == digest(&source[1])
    });
    let run = aurora(&["state", "export", "--url", &url(&source[1])], &[]);
    assert_eq!(run.code, 0, "export: {}", run.stderr);
    let doc = json(&run.stdout);
    let source_digest = doc["digest"].as_str().expect("digest").to_owned();
    assert_eq!(source_digest, digest(&source[0]));
    assert_eq!(ids(&doc, "keys").len(), 5);
    assert!(!run.stdout.contains("sk-aurora-"), "no secret is exported");
    assert!(doc["collections"]["keys"][0]["secret_hash"].is_string());
    let file = root.path().join("state.json");
    std::fs::write(&file, &run.stdout).expect("write export");

    // Into an empty data directory; the second node starts empty and syncs.
    let fresh_root = root.path().join("fresh");
    let specs: Vec<_> = (1..=2).map(|i| spec(&fresh_root, i, &[])).collect();
    let run = aurora(
        &[
            "state",
            "import",
            path(&file),
            "--data-dir",
            path(&specs[0].dir),
        ],
        &[],
    );
    assert_eq!(
        run.code, 0,
        "import into a data dir: {}{}",
        run.stdout, run.stderr
    );
    let fresh: Vec<Proc> = specs.iter().map(|s| spawn(s, &specs, SECRET)).collect();
    let took = wait_for(
        Duration::from_secs(60),
        "the fresh cluster has the source's digest",
        || fresh.iter().all(|p| digest(p) == source_digest),
    );
    println!(
        "export of the source: {source_digest}; imported into an empty data dir, both nodes of \
         the fresh cluster have it {} ms after their start",
        took.as_millis()
    );
    // The clients' keys work there: their secrets hash the same.
    let chat = r#"{"model":"mock/gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;
    // (Polled: a node serves clients once it has had its first sync with a peer.)
    for (i, secret) in secrets.iter().enumerate() {
        wait_for(
            Duration::from_secs(20),
            &format!("key k{i} works on the fresh cluster"),
            || {
                matches!(
                    request(
                        fresh[i % 2].http,
                        "POST",
                        "/v1/chat/completions",
                        secret,
                        Some(chat)
                    ),
                    Ok((200, _))
                )
            },
        );
    }

    // Into a running cluster through its admin API: it drifted (one key deleted, one
    // added); the dry run shows exactly that and writes nothing, the import undoes it.
    let (status, _) = http(fresh[0].http, "DELETE", "/admin/api/keys/k3", None).expect("delete");
    assert_eq!(status, 200);
    create_key(&fresh[1], "extra").expect("extra key");
    wait_for(Duration::from_secs(20), "the drift converges", || {
        let d = digest(&fresh[0]);
        d != source_digest && d == digest(&fresh[1])
    });
    let drifted = digest(&fresh[0]);
    let run = aurora(
        &[
            "state",
            "import",
            path(&file),
            "--url",
            &url(&fresh[1]),
            "--dry-run",
        ],
        &[],
    );
    assert_eq!(run.code, 0, "dry run: {}", run.stderr);
    let answer = json(&run.stdout);
    assert_eq!(answer["dry_run"], true);
    assert_eq!(answer["diff"]["keys"]["added"], serde_json::json!(["k3"]));
    assert_eq!(
        answer["diff"]["keys"]["removed"],
        serde_json::json!(["extra"])
    );
    assert_eq!(answer["diff"]["keys"]["changed"], serde_json::json!([]));
    assert_eq!(answer["diff"]["budgets"]["added"], serde_json::json!([]));
    assert!(
        run.stderr.contains("keys: would change +1 added"),
        "{}",
        run.stderr
    );
    assert_eq!(digest(&fresh[0]), drifted, "a dry run writes nothing");
    let run = aurora(
        &["state", "import", path(&file), "--url", &url(&fresh[1])],
        &[],
    );
    assert_eq!(run.code, 0, "import: {}", run.stderr);
    let answer = json(&run.stdout);
    assert_eq!(
        answer["digest_after"].as_str(),
        Some(source_digest.as_str())
    );
    assert_eq!(
        (answer["written"].as_u64(), answer["deleted"].as_u64()),
        (Some(1), Some(1))
    );
    println!(
        "import --url into the drifted cluster: {} written, {} deleted, digest_after {}",
        answer["written"], answer["deleted"], answer["digest_after"]
    );
    wait_for(
        Duration::from_secs(20),
        "both nodes have the source's digest again",
        || fresh.iter().all(|p| digest(p) == source_digest),
    );
    let (status, _) = request(
        fresh[0].http,
        "POST",
        "/v1/chat/completions",
        &secrets[3],
        Some(chat),
    )
    .expect("chat");
    assert_eq!(status, 200, "the re-imported key k3 works again");
}

#[test]
fn export_at_a_past_time_equals_the_export_taken_then_and_refusals_are_clear() {
    let root = tempfile::tempdir().expect("tempdir");
    let (specs, mut procs) = start_cluster(root.path(), 1, &[]);
    let dir = path(&specs[0].dir).to_owned();
    for id in ["a", "b", "c"] {
        create_key(&procs[0], id).expect("key");
    }
    let t = aurora_io::store::wall_ms();
    let then = aurora(&["state", "export", "--url", &url(&procs[0])], &[]);
    assert_eq!(then.code, 0, "{}", then.stderr);
    let then = json(&then.stdout);
    std::thread::sleep(Duration::from_millis(20));
    // Overwrite a, delete b, add d.
    let (status, _) = http(
        procs[0].http,
        "PUT",
        "/admin/api/keys/a",
        Some(r#"{"name":"a, renamed","disabled":true}"#),
    )
    .expect("put");
    assert_eq!(status, 200);
    let (status, _) = http(procs[0].http, "DELETE", "/admin/api/keys/b", None).expect("delete");
    assert_eq!(status, 200);
    create_key(&procs[0], "d").expect("key");
    assert_ne!(digest(&procs[0]), then["digest"], "the state changed");

    let at = t.to_string();
    let rfc = aurora_gateway::ops::time::rfc3339(u64::try_from(t).expect("positive"));
    let check = |run: common::cluster::CliRun, how: &str| {
        assert_eq!(run.code, 0, "{how}: {}", run.stderr);
        let doc = json(&run.stdout);
        assert_eq!(doc["digest"], then["digest"], "{how}");
        assert_eq!(doc["collections"], then["collections"], "{how}");
        assert_eq!(doc["at_ms"].as_i64(), Some(t), "{how}");
    };
    check(
        aurora(&["state", "export", "--data-dir", &dir, "--at", &at], &[]),
        "--data-dir, unix ms, node running",
    );
    check(
        aurora(
            &["state", "export", "--url", &url(&procs[0]), "--at", &rfc],
            &[],
        ),
        "--url, RFC 3339",
    );
    // The history is in the file: a restart keeps answering.
    procs[0].kill_9();
    check(
        aurora(&["state", "export", "--data-dir", &dir, "--at", &at], &[]),
        "--data-dir, node stopped",
    );
    std::thread::sleep(Duration::from_millis(50));
    let down = aurora_io::store::wall_ms().to_string();
    std::thread::sleep(Duration::from_millis(50));
    procs[0] = spawn(&specs[0], &specs, SECRET);
    check(
        aurora(
            &["state", "export", "--url", &url(&procs[0]), "--at", &at],
            &[],
        ),
        "--url after a restart",
    );
    // While it was down its copy was not kept current: that time is refused.
    let run = aurora(&["state", "export", "--data-dir", &dir, "--at", &down], &[]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("was not running"), "{}", run.stderr);

    // The node read its own file for that export. Doing so must leave its SQLite locks
    // alone: were they dropped (POSIX locks go with any closed descriptor of the file in
    // the process), the next outside connection to close (an operator's `sqlite3`)
    // would take itself for the last one and delete the WAL the node still writes to,
    // and the node's later commits would be lost at its next start.
    // The outside program is Python's sqlite3 module (the system's libsqlite3, like the
    // `sqlite3` shell; CI has python3 for the openai client test).
    let db = specs[0].dir.join("node.db");
    let outside = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); \
             print(c.execute('SELECT count(*) FROM entries').fetchone()[0]); c.close()",
        ])
        .arg(&db)
        .output()
        .expect("python3 (with its sqlite3 module) acts as the outside SQLite program");
    assert!(
        outside.status.success(),
        "{}",
        String::from_utf8_lossy(&outside.stderr)
    );
    assert!(
        specs[0].dir.join("node.db-wal").exists(),
        "the node's WAL is still there after an outside connection closed"
    );
    create_key(&procs[0], "after-export").expect("key");
    procs[0].kill_9();
    procs[0] = spawn(&specs[0], &specs, SECRET);
    assert!(
        common::cluster::has(&procs[0], "/admin/api/keys/after-export"),
        "a write acknowledged after the --at export survives a restart"
    );

    // Refusals, each exit 2 naming what is at fault.
    let refused = |run: common::cluster::CliRun, needle: &str| {
        assert_eq!(run.code, 2, "stdout {} stderr {}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains(needle),
            "`{needle}` not in: {}",
            run.stderr
        );
        assert!(run.stdout.is_empty(), "nothing exported: {}", run.stdout);
    };
    refused(
        aurora(
            &["state", "export", "--data-dir", &dir, "--at", "yesterday"],
            &[],
        ),
        "--at `yesterday`",
    );
    refused(
        aurora(
            &["state", "export", "--data-dir", &dir, "--at", "1000"],
            &[],
        ),
        "before this node.db started keeping history",
    );
    let future = (t + 3_600_000).to_string();
    refused(
        aurora(
            &["state", "export", "--url", &url(&procs[0]), "--at", &future],
            &[],
        ),
        "in the future",
    );
    refused(
        aurora(
            &["state", "export", "--url", &url(&procs[0])],
            &[("AURORA_ADMIN_TOKEN", "not-the-admin-token-of-this-cluster")],
        ),
        "401",
    );

    let backup = root.path().join("b.db");
    let run = aurora(&["backup", "--data-dir", &dir, "--out", path(&backup)], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    refused(
        aurora(&["backup", "--data-dir", &dir, "--out", path(&backup)], &[]),
        "exists; pass --force",
    );
    let run = aurora(
        &[
            "backup",
            "--data-dir",
            &dir,
            "--out",
            path(&backup),
            "--force",
        ],
        &[],
    );
    assert_eq!(run.code, 0, "--force replaces: {}", run.stderr);
    refused(
        aurora(&["restore", path(&backup), "--data-dir", &dir], &[]),
        "is not empty",
    );

    // A damaged copy: the header of every page after the first overwritten.
    let corrupt = root.path().join("corrupt.db");
    let mut bytes = std::fs::read(&backup).expect("read");
    assert!(bytes.len() >= 3 * 4096, "a file of several pages");
    for page in bytes.chunks_mut(4096).skip(1) {
        for b in &mut page[..8] {
            *b = 0xA5;
        }
    }
    std::fs::write(&corrupt, &bytes).expect("write");
    let into = root.path().join("into");
    refused(
        aurora(&["restore", path(&corrupt), "--data-dir", path(&into)], &[]),
        "corrupt",
    );
    assert!(!into.exists(), "nothing was created for a refused file");

    // Not SQLite at all.
    let text = root.path().join("notes.txt");
    std::fs::write(&text, "not a database, just some text").expect("write");
    refused(
        aurora(&["restore", path(&text), "--data-dir", path(&into)], &[]),
        "not an SQLite database",
    );

    // A file of a newer schema than this build.
    let newer = root.path().join("newer.db");
    std::fs::copy(&backup, &newer).expect("copy");
    rusqlite::Connection::open(&newer)
        .and_then(|c| c.execute("UPDATE schema_version SET version = 99", []))
        .expect("bump the schema");
    refused(
        aurora(&["restore", path(&newer), "--data-dir", path(&into)], &[]),
        "schema version 99 is newer than this build supports",
    );
    refused(
        aurora(
            &[
                "restore",
                path(&root.path().join("absent.db")),
                "--data-dir",
                path(&into),
            ],
            &[],
        ),
        "no such file",
    );
    assert!(!into.exists());

    // An import file that was edited after export is refused whole.
    let mut edited = then.clone();
    edited["collections"]["keys"][0]["name"] = "edited".into();
    let file = root.path().join("edited.json");
    std::fs::write(&file, edited.to_string()).expect("write");
    refused(
        aurora(
            &["state", "import", path(&file), "--data-dir", path(&into)],
            &[],
        ),
        "the digest does not match",
    );
    assert!(!into.exists());
}
