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
//! A node may also run inside a network namespace ([`super::netns`]): it is started
//! through `ip netns exec`, and every request to it is made from a thread that
//! entered that namespace, so it stays reachable while its cluster link is cut.
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

pub const BIN: &str = env!("CARGO_BIN_EXE_aurora");
/// The cluster secret every test node shares.
pub const SECRET: &str = "a-cluster-secret-of-more-than-16-bytes";

/// One `aurora serve` process, killed (SIGKILL) when dropped.
pub struct Proc {
    pub child: Child,
    pub http: SocketAddr,
    /// The network namespace it runs in (`None`: this process's own).
    pub netns: Option<String>,
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
    /// The network namespace to run in (`None`: this process's own).
    pub netns: Option<String>,
    /// Run the process in a mount namespace of its own whose `/etc/hosts` is this
    /// file (root only, see [`mount_namespaces_allowed`]): the test decides what seed
    /// names resolve to, and when (glibc reads the file on every lookup).
    pub hosts: Option<PathBuf>,
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
        netns: None,
        hosts: None,
    }
}

/// Node `i` (named `node-{i}`) alone in network namespace `netns` on address `ip`:
/// the namespace has nothing else on it, so the ports are fixed (HTTP 8080, gossip
/// 7946, sync 7947, the defaults of docs/operations.md).
pub fn spec_in_netns(root: &Path, i: u8, netns: &str, ip: IpAddr, extra: &[&str]) -> Spec {
    let dir = root.join(format!("node{i}"));
    std::fs::create_dir_all(&dir).expect("mkdir");
    Spec {
        name: format!("node-{i}"),
        http: SocketAddr::new(ip, 8080),
        gossip: SocketAddr::new(ip, 7946),
        sync_port: 7947,
        dir,
        extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        netns: Some(netns.to_owned()),
        hosts: None,
    }
}

/// Whether this process may make mount namespaces (`unshare --mount`, root).
pub fn mount_namespaces_allowed() -> bool {
    Command::new("unshare")
        .args(["--mount", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts `spec` with these seeds and cluster secret; returns once `/health` answers.
pub fn spawn(spec: &Spec, seeds: &[Spec], secret: &str) -> Proc {
    let seeds: Vec<String> = seeds.iter().map(|s| s.gossip.to_string()).collect();
    spawn_seeded(spec, &seeds, secret)
}

/// Like [`spawn`], with the seed list as written (`host:port` entries, names too).
pub fn spawn_seeded(spec: &Spec, seeds: &[String], secret: &str) -> Proc {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(spec.dir.join("aurora.log"))
        .expect("log file");
    // The wrappers, outermost first: the network namespace (`ip netns exec`), then a
    // mount namespace with its own /etc/hosts; each execs the next, so the child's
    // pid is the node's and `kill_9` kills the node itself.
    let mut argv: Vec<std::ffi::OsString> = Vec::new();
    if let Some(netns) = &spec.netns {
        argv.extend(["ip", "netns", "exec", netns.as_str()].map(Into::into));
    }
    if let Some(hosts) = &spec.hosts {
        argv.extend(
            [
                "unshare",
                "--mount",
                "--",
                "sh",
                "-c",
                "mount --bind \"$0\" /etc/hosts && exec \"$@\"",
            ]
            .map(Into::into),
        );
        argv.push(hosts.into());
    }
    argv.push(BIN.into());
    let mut command = Command::new(&argv[0]);
    command.args(&argv[1..]);
    let child = command
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
        netns: spec.netns.clone(),
    };
    wait_for(Duration::from_secs(20), "HTTP up", || {
        proc.call("GET", "/health", None)
            .map(|(s, _)| s == 200)
            .unwrap_or(false)
    });
    proc
}

impl Proc {
    /// An admin request to this node, from inside its network namespace if it has
    /// one (see [`http`]).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> std::io::Result<(u16, String)> {
        match &self.netns {
            Some(netns) => super::netns::in_netns(netns, || http(self.http, method, path, body))?,
            None => http(self.http, method, path, body),
        }
    }
}

/// The advertise URL a node is started with.
pub fn advertise_url(spec: &Spec) -> String {
    format!("http://{}", spec.http)
}

/// Starts three nodes seeded with each other (`extra` arguments on each) and waits
/// until every one lists three alive members.
pub fn start_three(root: &Path, extra: &[&str]) -> (Vec<Spec>, Vec<Proc>) {
    start_cluster(root, 3, extra)
}

/// Starts `n` nodes (`node-1` …) seeded with each other and waits until every one
/// lists `n` alive members.
pub fn start_cluster(root: &Path, n: u8, extra: &[&str]) -> (Vec<Spec>, Vec<Proc>) {
    let specs: Vec<Spec> = (1..=n).map(|i| spec(root, i, extra)).collect();
    let procs: Vec<Proc> = specs.iter().map(|s| spawn(s, &specs, SECRET)).collect();
    for p in &procs {
        wait_for(Duration::from_secs(20), "all members alive", || {
            alive(p) == usize::from(n)
        });
    }
    (specs, procs)
}

/// What a finished `aurora` subcommand (not `serve`) printed and exited with.
pub struct CliRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `aurora ARGS…` to completion (the admin token in its environment unless
/// `env` sets it), bounded by the caller's test timeout.
pub fn aurora(args: &[&str], env: &[(&str, &str)]) -> CliRun {
    let mut command = Command::new(BIN);
    command.args(args).env("AURORA_ADMIN_TOKEN", TOKEN);
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().expect("run aurora");
    CliRun {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
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
    request_with_head(addr, method, path, bearer, body).map(|(status, _, body)| (status, body))
}

/// [`request`], with the response's head too (status line and headers, as sent).
pub fn request_with_head(
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: &str,
    body: Option<&str>,
) -> std::io::Result<(u16, String, String)> {
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
    let (head, body) = response
        .split_once("\r\n\r\n")
        .map(|(h, b)| (h.to_owned(), b.to_owned()))
        .unwrap_or_default();
    Ok((status, head, body))
}

/// The value of header `name` (lower case) in a response `head`.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// `text` as JSON, `Null` if it is not.
pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or(serde_json::Value::Null)
}

/// The JSON body of an admin `GET path`, `Null` on any failure.
pub fn get_json(p: &Proc, path: &str) -> serde_json::Value {
    p.call("GET", path, None)
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

/// What the live nodes agree on in active_passive mode, if they do: the index (into
/// the slice) of the one node whose `/health/ready` is 200, the leader id and epoch.
#[derive(Debug, PartialEq)]
pub struct Agreed {
    pub active: usize,
    pub leader: String,
    pub epoch: u64,
}

/// `Some` when exactly one of `nodes` is ready, every other one answers 503 `standby`
/// naming the ready node's advertise URL, and every node's cluster/status names the
/// same leader and epoch.
pub fn agreed(nodes: &[(&Spec, &Proc)]) -> Option<Agreed> {
    let mut active = None;
    let mut standby_points_at = Vec::new();
    for (i, (_, p)) in nodes.iter().enumerate() {
        let (status, body) = p.call("GET", "/health/ready", None).ok()?;
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

/// Alive members (this node included) in `/admin/api/cluster/nodes`.
pub fn alive(p: &Proc) -> usize {
    get_json(p, "/admin/api/cluster/nodes")["data"]
        .as_array()
        .map(|rows| rows.iter().filter(|r| r["state"] == "alive").count())
        .unwrap_or(0)
}

/// Whether an admin `GET path` answers 200.
pub fn has(p: &Proc, path: &str) -> bool {
    matches!(p.call("GET", path, None), Ok((200, _)))
}

/// The value of an unlabelled series in `/metrics` (0 if absent).
pub fn metric(p: &Proc, name: &str) -> u64 {
    p.call("GET", "/metrics", None)
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
