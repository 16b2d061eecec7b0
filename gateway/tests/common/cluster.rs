//! Real `aurora` processes on loopback, for the multi-process cluster tests and the
//! budget-accuracy measurement.
//!
//! Why real processes: what these tests check (QUIC with mutual TLS, SQLite durability
//! across `kill -9`, failover leases, usage flushes carried by gossip) only happens
//! between separate nodes with their own clocks, sockets and files.
//!
//! `env!("CARGO_BIN_EXE_aurora")` exists only in the tests of the package that defines
//! the binary, and it makes cargo build the binary before the test runs — no guessing
//! at `target/debug/aurora`.
//!
//! Each node gets its own loopback address (127.0.0.1, .2, .3, … when they can be
//! bound, which is the default on Linux; otherwise distinct ports on 127.0.0.1) and
//! ports chosen by the OS. Every process is killed when its guard drops, so a failing
//! assertion never leaves processes behind. Every wait and every socket is bounded.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::TOKEN;

const BIN: &str = env!("CARGO_BIN_EXE_aurora");
/// The cluster secret every test node shares.
pub const SECRET: &str = "a-cluster-secret-of-more-than-16-bytes";

/// One `aurora serve` process, killed (SIGKILL) when dropped.
pub struct Proc {
    pub child: Child,
    pub http: SocketAddr,
}

impl Proc {
    /// Kills the process with SIGKILL and reaps it.
    pub fn kill_9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill_9();
    }
}

/// Where a node listens and what it runs with; kept across restarts.
#[derive(Clone)]
pub struct Spec {
    pub name: String,
    pub http: SocketAddr,
    pub gossip: SocketAddr,
    pub sync_port: u16,
    pub dir: PathBuf,
    /// Extra `aurora serve` arguments (e.g. `--cluster-failover-mode active_passive`).
    pub extra: Vec<String>,
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

/// Node `i` (named `node-{i}`) with its directory under `root`.
pub fn spec(root: &Path, i: u8, extra: &[&str]) -> Spec {
    let ip = loopback(i);
    let dir = root.join(format!("node{i}"));
    std::fs::create_dir_all(&dir).expect("mkdir");
    Spec {
        name: format!("node-{i}"),
        http: SocketAddr::new(ip, free_tcp(ip)),
        gossip: SocketAddr::new(ip, free_udp(ip)),
        sync_port: free_udp(ip),
        dir,
        extra: extra.iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// Starts `spec` with these seeds and cluster secret; returns once `/health` answers.
pub fn spawn(spec: &Spec, seeds: &[Spec], secret: &str) -> Proc {
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
        .arg(advertise_url(spec))
        .args(["--drain-timeout-secs", "1", "--leave-timeout-secs", "1"])
        .args(&spec.extra)
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

/// The advertise URL a node is started with.
pub fn advertise_url(spec: &Spec) -> String {
    format!("http://{}", spec.http)
}

/// Starts three nodes seeded with each other (`extra` arguments on each) and waits
/// until every one lists three alive members.
pub fn start_three(root: &Path, extra: &[&str]) -> (Vec<Spec>, Vec<Proc>) {
    let specs: Vec<Spec> = (1..=3).map(|i| spec(root, i, extra)).collect();
    let procs: Vec<Proc> = specs.iter().map(|s| spawn(s, &specs, SECRET)).collect();
    for p in &procs {
        wait_for(Duration::from_secs(20), "three alive members", || {
            alive(p) == 3
        });
    }
    (specs, procs)
}

/// An admin request (the admin token as bearer).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    request(addr, method, path, TOKEN, body)
}

/// A minimal HTTP/1.1 client (one request per connection, `bearer` as the
/// credentials), bounded by timeouts. Returns the status and the body.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: &str,
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {bearer}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
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

/// `text` as JSON, `Null` if it is not.
pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or(serde_json::Value::Null)
}

/// The JSON body of an admin `GET path`, `Null` on any failure.
pub fn get_json(p: &Proc, path: &str) -> serde_json::Value {
    http(p.http, "GET", path, None)
        .map(|(_, b)| json(&b))
        .unwrap_or(serde_json::Value::Null)
}

/// Polls `ok` every 5 ms until it holds; panics naming `what` after `limit`.
/// Returns how long it took.
pub fn wait_for(limit: Duration, what: &str, mut ok: impl FnMut() -> bool) -> Duration {
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
pub fn alive(p: &Proc) -> usize {
    get_json(p, "/admin/api/cluster/nodes")["data"]
        .as_array()
        .map(|rows| rows.iter().filter(|r| r["state"] == "alive").count())
        .unwrap_or(0)
}

/// Whether an admin `GET path` answers 200.
pub fn has(p: &Proc, path: &str) -> bool {
    matches!(http(p.http, "GET", path, None), Ok((200, _)))
}

/// The value of an unlabelled series in `/metrics` (0 if absent).
pub fn metric(p: &Proc, name: &str) -> u64 {
    http(p.http, "GET", "/metrics", None)
        .ok()
        .and_then(|(_, text)| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The process's resident memory, KiB (0 if unknown).
pub fn rss_kib(p: &Proc) -> u64 {
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

/// The `p`-quantile (0..=1) of sorted values, nearest rank.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> T {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}
