//! Multi-process cluster tests: real `aurora` processes on loopback, talking QUIC with
//! mutual TLS from a shared secret, written to through their admin APIs.
//!
//! Why here and not in `aurora-tests`: `env!("CARGO_BIN_EXE_aurora")` exists only in
//! the tests of the package that defines the binary, and it makes cargo build the
//! binary before the test runs — no guessing at `target/debug/aurora` (which may be
//! stale, or be under another profile or target directory).
//!
//! Each node gets its own loopback address (127.0.0.1, .2, .3, … when they can be
//! bound, which is the default on Linux; otherwise distinct ports on 127.0.0.1) and
//! ports chosen by the OS. Every process is killed when its guard drops, so a failing
//! assertion never leaves processes behind. Every wait is bounded.
//!
//! Figures printed (run with `--nocapture`): end-to-end propagation of an admin write
//! to all other nodes (p50/p99/max), and the idle RSS of a node.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_aurora");
const TOKEN: &str = "cluster-test-admin-token";
const SECRET: &str = "a-cluster-secret-of-more-than-16-bytes";

/// One `aurora serve` process.
struct Proc {
    child: Child,
    http: SocketAddr,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where a node listens; kept across restarts.
#[derive(Clone)]
struct Spec {
    name: String,
    http: SocketAddr,
    gossip: SocketAddr,
    sync_port: u16,
    dir: PathBuf,
}

fn loopback(i: u8) -> IpAddr {
    let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, i));
    if UdpSocket::bind((ip, 0)).is_ok() {
        ip
    } else {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    }
}

fn free_udp(ip: IpAddr) -> u16 {
    UdpSocket::bind((ip, 0))
        .and_then(|s| s.local_addr())
        .expect("free UDP port")
        .port()
}

fn free_tcp(ip: IpAddr) -> u16 {
    TcpListener::bind((ip, 0))
        .and_then(|s| s.local_addr())
        .expect("free TCP port")
        .port()
}

fn spec(root: &Path, i: u8) -> Spec {
    let ip = loopback(i);
    let dir = root.join(format!("node{i}"));
    std::fs::create_dir_all(&dir).expect("mkdir");
    Spec {
        name: format!("node-{i}"),
        http: SocketAddr::new(ip, free_tcp(ip)),
        gossip: SocketAddr::new(ip, free_udp(ip)),
        sync_port: free_udp(ip),
        dir,
    }
}

fn spawn(spec: &Spec, seeds: &[&Spec], secret: &str) -> Proc {
    let seeds: Vec<String> = seeds.iter().map(|s| s.gossip.to_string()).collect();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(spec.dir.join("aurora.log"))
        .expect("log file");
    let child = Command::new(BIN)
        .arg("serve")
        .arg("--listen")
        .arg(spec.http.to_string())
        .arg("--data-dir")
        .arg(&spec.dir)
        .args(["--cluster-enabled", "true", "--cluster-node-id"])
        .arg(&spec.name)
        .arg("--cluster-bind-addr")
        .arg(spec.gossip.ip().to_string())
        .arg("--cluster-bind-port")
        .arg(spec.gossip.port().to_string())
        .arg("--cluster-sync-bind-port")
        .arg(spec.sync_port.to_string())
        .arg("--cluster-seed-nodes")
        .arg(seeds.join(","))
        .arg("--cluster-advertise-url")
        .arg(format!("http://{}", spec.http))
        .args(["--drain-timeout-secs", "1", "--leave-timeout-secs", "1"])
        .env("CLUSTER_SECRET", secret)
        .env("AURORA_ADMIN_TOKEN", TOKEN)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn aurora");
    let proc = Proc {
        child,
        http: spec.http,
    };
    wait_for(Duration::from_secs(20), "HTTP up", || {
        http(proc.http, "GET", "/health", None)
            .map(|(s, _)| s == 200)
            .unwrap_or(false)
    });
    proc
}

/// A minimal HTTP/1.1 client (one request per connection), bounded by timeouts.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {TOKEN}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad response: {response:?}")))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or(serde_json::Value::Null)
}

fn wait_for(limit: Duration, what: &str, mut ok: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while start.elapsed() < limit {
        if ok() {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("timed out after {limit:?} waiting for {what}");
}

/// Alive members (this node included) in `/admin/api/cluster/nodes`.
fn alive(p: &Proc) -> usize {
    http(p.http, "GET", "/admin/api/cluster/nodes", None)
        .map(|(_, b)| {
            json(&b)["data"]
                .as_array()
                .map(|rows| rows.iter().filter(|r| r["state"] == "alive").count())
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

fn has(p: &Proc, path: &str) -> bool {
    matches!(http(p.http, "GET", path, None), Ok((200, _)))
}

fn metric(p: &Proc, name: &str) -> u64 {
    http(p.http, "GET", "/metrics", None)
        .ok()
        .and_then(|(_, text)| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        })
        .unwrap_or(0)
}

fn rss_kib(p: &Proc) -> u64 {
    std::fs::read_to_string(format!("/proc/{}/status", p.child.id()))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VmRSS:")?
                    .trim()
                    .strip_suffix("kB")?
                    .trim()
                    .parse()
                    .ok()
            })
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn start_three(root: &Path) -> (Vec<Spec>, Vec<Proc>) {
    let specs: Vec<Spec> = (1..=3).map(|i| spec(root, i)).collect();
    let procs: Vec<Proc> = specs
        .iter()
        .map(|s| {
            let seeds: Vec<&Spec> = specs.iter().collect();
            spawn(s, &seeds, SECRET)
        })
        .collect();
    for p in &procs {
        wait_for(Duration::from_secs(20), "three alive members", || {
            alive(p) == 3
        });
    }
    (specs, procs)
}

#[test]
fn three_processes_form_propagate_and_refuse_a_wrong_secret() {
    let root = tempfile::tempdir().expect("tempdir");
    let (specs, procs) = start_three(root.path());

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
    let intruder_spec = spec(root.path(), 4);
    let seeds: Vec<&Spec> = specs.iter().collect();
    let intruder = spawn(&intruder_spec, &seeds, "a-different-secret-0123456789");
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
    let (specs, mut procs) = start_three(root.path());

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
    procs[1].child.kill().expect("kill -9");
    let _ = procs[1].child.wait();
    writer.join().expect("writer");
    let acked = acked.lock().expect("lock").clone();
    println!("acknowledged before kill -9: {} of 200", acked.len());
    assert!(
        acked.len() >= 60 && acked.len() < 200,
        "{} acked",
        acked.len()
    );

    // Restart node 2 from the same directory.
    let seeds: Vec<&Spec> = specs.iter().collect();
    procs[1] = spawn(&specs[1], &seeds, SECRET);
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
