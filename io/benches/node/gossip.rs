//! Cluster traffic per node on the wire: N real drivers (default 3) over QUIC on
//! 127.0.0.1, idle and then under a steady stream of admin writes.
//!
//! Each node is started by [`aurora_io::launch`] exactly as the gateway starts it, with
//! one difference: its UDP socket is wrapped in [`Counting`], which counts every datagram
//! quinn hands to the kernel and gets from it. Those are the bytes on the wire (QUIC
//! headers, TLS encryption, ACKs, keep-alives, handshakes and all); the core's own
//! counters (`bytes_out`, what `/metrics` shows as `aurora_gossip_bytes_sent_total`)
//! are printed beside them, so the QUIC overhead is visible. IPv4 + UDP headers (28 bytes
//! per datagram) are added for the "IP" column.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use aurora_io::{Handle, Socket};
use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, Runtime, UdpPoller};

use crate::common::{auth_key, median, settings, Args};

/// IPv4 (20) + UDP (8) header bytes per datagram.
const IP_UDP_HEADER: u64 = 28;
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(60);
/// After the cluster converges, let the join's push-pulls and rumours die down.
const SETTLE: Duration = Duration::from_secs(5);

pub fn run(args: &Args) -> Result<(), String> {
    let nodes = args.number("nodes", 3)? as usize;
    let idle_secs = args.number("idle-secs", 30)?;
    let load_secs = args.number("load-secs", 30)?;
    let rate = args.number("rate", 10)?;
    let windows = args.number("windows", 3)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    rt.block_on(async {
        let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let cluster = Cluster::start(dir.path(), nodes).await?;
        println!("# gossip: {nodes} nodes on loopback QUIC, default timing");
        let idle = Duration::from_secs(idle_secs);
        let load = Duration::from_secs(load_secs);
        let idle_rates = cluster.measure(windows, idle, None).await;
        report(
            &format!("idle, {windows} windows of {idle_secs} s"),
            &idle_rates,
        );
        let load_rates = cluster.measure(windows, load, Some(rate)).await;
        report(
            &format!("{rate} admin writes/s on node 0, {windows} windows of {load_secs} s"),
            &load_rates,
        );
        cluster.stop().await
    })
}

/// Bytes per second of one node over one window.
#[derive(Clone, Copy, Default)]
struct Rates {
    udp_out: f64,
    ip_out: f64,
    datagrams_out: f64,
    udp_in: f64,
    core_out: f64,
}

/// Prints, per node, the median of each rate over the windows.
fn report(title: &str, per_node: &[Vec<Rates>]) {
    println!("{title}:");
    for (i, windows) in per_node.iter().enumerate() {
        let m = |f: fn(&Rates) -> f64| median(&windows.iter().map(f).collect::<Vec<_>>());
        println!(
            "  node {i}: sent {:.0} B/s UDP payload ({:.0} B/s with IP+UDP headers, {:.1} datagrams/s); received {:.0} B/s; core messages sent {:.0} B/s",
            m(|r| r.udp_out),
            m(|r| r.ip_out),
            m(|r| r.datagrams_out),
            m(|r| r.udp_in),
            m(|r| r.core_out),
        );
    }
}

struct Member {
    handle: Handle,
    socket: Arc<Counting>,
}

/// A consistent reading of one node's counters.
#[derive(Clone, Copy)]
struct Reading {
    at: Instant,
    wire: WireCount,
    core_out: u64,
}

struct Cluster {
    members: Vec<Member>,
}

impl Cluster {
    /// Starts `n` nodes (node 0 alone, the others seeded by it) and waits until every
    /// node sees every other alive.
    async fn start(dir: &std::path::Path, n: usize) -> Result<Cluster, String> {
        let mut members = Vec::new();
        let mut seed: Vec<SocketAddr> = Vec::new();
        for i in 0..n {
            let runtime: Arc<dyn Runtime> = Arc::new(quinn::TokioRuntime);
            let std_socket =
                std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
            let addr = std_socket.local_addr().map_err(|e| format!("addr: {e}"))?;
            let inner = runtime
                .wrap_udp_socket(std_socket)
                .map_err(|e| format!("wrap socket: {e}"))?;
            let socket = Arc::new(Counting::new(inner));
            let settings = settings(&format!("bench-gossip-{i}"), addr.port(), &seed);
            let db = dir.join(format!("node{i}.db"));
            let custom = Socket::Custom(socket.clone(), runtime);
            let handle = aurora_io::launch(&settings, &db, custom, Some(i as u64), "bench")
                .await
                .map_err(|e| e.to_string())?;
            if i == 0 {
                seed.push(addr);
            }
            members.push(Member { handle, socket });
        }
        let cluster = Cluster { members };
        cluster.converge(n).await?;
        tokio::time::sleep(SETTLE).await;
        Ok(cluster)
    }

    async fn converge(&self, n: usize) -> Result<(), String> {
        for (i, m) in self.members.iter().enumerate() {
            let mut watch = m.handle.watch();
            tokio::time::timeout(
                CONVERGE_TIMEOUT,
                watch.wait_for(|v| v.alive().count() == n - 1),
            )
            .await
            .map_err(|_| format!("node {i} did not see all {n} nodes"))?
            .map_err(|_| format!("node {i} stopped"))?;
        }
        Ok(())
    }

    fn read(&self) -> Vec<Reading> {
        self.members
            .iter()
            .map(|m| Reading {
                at: Instant::now(),
                wire: m.socket.count(),
                core_out: m.handle.view().metrics.bytes_out,
            })
            .collect()
    }

    /// Rates per node over `windows` windows of `length`, with `writes_per_sec` puts on
    /// node 0 running throughout (if any).
    async fn measure(
        &self,
        windows: u64,
        length: Duration,
        writes_per_sec: Option<u64>,
    ) -> Vec<Vec<Rates>> {
        let writer = writes_per_sec.map(|rate| {
            let commander = self.members[0].handle.commander();
            tokio::spawn(write_steadily(commander, rate))
        });
        let mut per_node = vec![Vec::new(); self.members.len()];
        for _ in 0..windows {
            let before = self.read();
            tokio::time::sleep(length).await;
            for (i, (b, a)) in before.iter().zip(self.read()).enumerate() {
                per_node[i].push(rates(b, &a));
            }
        }
        if let Some(writer) = writer {
            writer.abort();
        }
        per_node
    }

    async fn stop(self) -> Result<(), String> {
        for m in self.members {
            m.handle.stop().await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

fn rates(before: &Reading, after: &Reading) -> Rates {
    let secs = after.at.duration_since(before.at).as_secs_f64();
    let per_sec = |a: u64, b: u64| a.saturating_sub(b) as f64 / secs;
    let datagrams = after
        .wire
        .datagrams_out
        .saturating_sub(before.wire.datagrams_out);
    let udp = after.wire.bytes_out.saturating_sub(before.wire.bytes_out);
    Rates {
        udp_out: per_sec(after.wire.bytes_out, before.wire.bytes_out),
        ip_out: (udp + datagrams * IP_UDP_HEADER) as f64 / secs,
        datagrams_out: datagrams as f64 / secs,
        udp_in: per_sec(after.wire.bytes_in, before.wire.bytes_in),
        core_out: per_sec(after.core_out, before.core_out),
    }
}

/// Puts a new auth key every `1/rate` s until aborted, as an admin client would.
async fn write_steadily(commander: aurora_io::Commander, rate: u64) {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1) as f64));
    for i in 0.. {
        tick.tick().await;
        let (id, record) = auth_key(1_000_000 + i);
        if let Err(e) = commander.command(aurora_schema::put(id, &record)).await {
            eprintln!("write refused: {e}");
            return;
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct WireCount {
    bytes_out: u64,
    datagrams_out: u64,
    bytes_in: u64,
}

/// A quinn socket that counts what passes through the one it wraps.
#[derive(Debug)]
struct Counting {
    inner: Arc<dyn AsyncUdpSocket>,
    bytes_out: AtomicU64,
    datagrams_out: AtomicU64,
    bytes_in: AtomicU64,
}

impl Counting {
    fn new(inner: Arc<dyn AsyncUdpSocket>) -> Counting {
        Counting {
            inner,
            bytes_out: AtomicU64::new(0),
            datagrams_out: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
        }
    }

    fn count(&self) -> WireCount {
        WireCount {
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            datagrams_out: self.datagrams_out.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
        }
    }
}

impl AsyncUdpSocket for Counting {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        self.inner.try_send(transmit)?;
        let len = transmit.contents.len();
        // With GSO one transmit carries several datagrams of `segment_size` bytes.
        let datagrams = transmit.segment_size.map_or(1, |s| len.div_ceil(s.max(1)));
        self.bytes_out.fetch_add(len as u64, Ordering::Relaxed);
        self.datagrams_out
            .fetch_add(datagrams as u64, Ordering::Relaxed);
        Ok(())
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let polled = self.inner.poll_recv(cx, bufs, meta);
        if let Poll::Ready(Ok(n)) = &polled {
            let bytes: usize = meta.iter().take(*n).map(|m| m.len).sum();
            self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
        }
        polled
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}
