//! The driver on real UDP sockets on 127.0.0.1 (the production socket path, tokio's
//! clock), and the persistence contract as a client sees it.
//!
//! Everything stays on the loopback interface and every wait is bounded.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aurora_core::{Command, Incarnation, Liveness, MemberMeta};
use aurora_io::config::{self, KdfParams, Secrets};
use aurora_io::driver::{self, DriverConfig};
use aurora_io::transport::tls;
use aurora_io::{ClusterView, Handle, NodeKey, Store, Transport};
use tokio::sync::mpsc;

const SECRET: &str = "loopback-test-secret-0123456789abcdef";

fn secrets() -> Secrets {
    Secrets {
        current: config::Secret::new("test", SECRET.as_bytes()).expect("secret"),
        previous: None,
    }
}

/// Starts a node on an ephemeral loopback port through the lower-level API (the
/// config layer refuses port 0, so the address is only known after binding).
async fn node(name: &str, dir: &std::path::Path, seeds: Vec<SocketAddr>) -> (Handle, SocketAddr) {
    node_certified_as(name, None, dir, seeds).await
}

/// [`node`], whose certificate names `cert_name`'s id instead of its own when given: a
/// holder of the secret whose messages claim another node than its certificate.
async fn node_certified_as(
    name: &str,
    cert_name: Option<&str>,
    dir: &std::path::Path,
    seeds: Vec<SocketAddr>,
) -> (Handle, SocketAddr) {
    let yaml = format!(
        "cluster:\n  enabled: true\n  node_id: {name}\n  bind_addr: 127.0.0.1\n  timing:\n    probe_interval_ms: 200\n    probe_timeout_ms: 100\n    gossip_interval_ms: 50\n"
    );
    let env = HashMap::from([("CLUSTER_SECRET".to_string(), SECRET.to_string())]);
    let settings = config::load(&yaml, &env).expect("config");
    let (config, mut identity) = settings.to_core("test");
    // The fast KDF: these nodes never face a stranger, and the suite starts many.
    let keys = tls::ClusterKeys::derive(&secrets(), &settings.cluster_name, KdfParams::MINIMAL)
        .expect("keys");
    let node_key = NodeKey::generate().expect("node key");
    // The headers carry the life of the key the certificate holds, as `launch` does.
    identity.life = node_key.life();
    let cert_id = cert_name.map_or(identity.id, aurora_core::NodeId::from_name);
    let tls = tls::node_tls(&keys, &node_key, cert_id, name).expect("tls");
    let reset = keys.current.reset_key(name).expect("reset key");
    let (tx, rx) = mpsc::channel(1024);
    let transport =
        Transport::bind("127.0.0.1:0".parse().expect("addr"), &tls, reset, tx).expect("bind");
    let addr = transport.local_addr().expect("bound");
    identity.addr = addr;
    let store = Store::open(dir.join(format!("{name}.db")), identity.id).expect("store");
    let handle = driver::start(
        DriverConfig {
            config,
            identity,
            seed: 1,
            seeds,
            pending_seeds: 0,
        },
        store,
        transport,
        rx,
    )
    .expect("start");
    (handle, addr)
}

async fn wait_for(handle: &Handle, what: &str, done: impl Fn(&ClusterView) -> bool) {
    let mut watch = handle.watch();
    let result = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            if done(&watch.borrow_and_update()) {
                return;
            }
            if watch.changed().await.is_err() {
                return;
            }
        }
    })
    .await;
    assert!(
        result.is_ok(),
        "timed out waiting for {what}: {:#?}",
        handle.view()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_loopback_udp_join_and_leave() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, a_addr) = node("a", dir.path(), vec![]).await;
    let (b, _) = node("b", dir.path(), vec![a_addr]).await;
    wait_for(&a, "a sees b", |v| v.alive().count() == 1).await;
    wait_for(&b, "b sees a", |v| v.alive().count() == 1).await;
    let sent = b.view().metrics.transport.clone();
    assert!(sent.datagrams_sent + sent.streams_sent > 0, "{sent:?}");
    b.leave(Duration::from_secs(5)).await.expect("leave");
    wait_for(&a, "a sees b left", |v| {
        v.members.iter().all(|m| m.liveness == Liveness::Left)
    })
    .await;
    a.stop().await.expect("stop");
}

/// Issue 10 item 7: a process holding the secret, whose certificate names "mallory" but
/// whose driver speaks as "b", is never heard: every message is dropped and counted
/// before the node sees it, so `a` never lists `b`. An honest node joins meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_certificate_names_another_id_is_never_heard() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, a_addr) = node("a", dir.path(), vec![]).await;
    let (impostor, _) = node_certified_as("b", Some("mallory"), dir.path(), vec![a_addr]).await;
    wait_for(&a, "dropped identity mismatches", |v| {
        v.metrics.transport.identity_mismatch >= 3
    })
    .await;
    let (c, _) = node("c", dir.path(), vec![a_addr]).await;
    wait_for(&a, "a sees the honest c", |v| v.alive().count() >= 1).await;
    let view = a.view();
    let b_id = aurora_core::NodeId::from_name("b");
    assert!(
        view.members.iter().all(|m| m.id != b_id),
        "the impostor was heard: {view:#?}"
    );
    assert_eq!(view.metrics.transport.identity_refused, 0);
    impostor.stop().await.expect("stop");
    c.stop().await.expect("stop");
    a.stop().await.expect("stop");
}

/// Issue 10 item 1: a node started with seeds reports its state as not synced until
/// it completed an anti-entropy exchange with a peer; a node without seeds (the
/// founder) has nobody to wait for. A node whose seed never answers stays unsynced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_node_is_synced_only_after_an_exchange_with_a_peer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, a_addr) = node("a", dir.path(), vec![]).await;
    assert!(a.view().state_synced(), "no seeds: nothing to wait for");
    // A seed nobody listens on: a UDP port bound and dropped.
    let nobody = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("port");
    let (lonely, _) = node("lonely", dir.path(), vec![nobody]).await;
    let (b, _) = node("b", dir.path(), vec![a_addr]).await;
    let view = b.view();
    assert!(view.joins_peers && view.first_sync.is_none());
    wait_for(&b, "b synced with a", |v| v.state_synced()).await;
    // `lonely` had as long as `b` needed, and more: still not synced.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let view = lonely.view();
    assert!(
        view.first_sync.is_none() && !view.state_synced(),
        "{view:?}"
    );
    for h in [b, lonely, a] {
        h.stop().await.expect("stop");
    }
}

/// A command is acknowledged only after what it made durable is committed, and a burst
/// of commands shares transactions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_are_acknowledged_after_commit_and_batched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, _) = node("solo", dir.path(), vec![]).await;
    let db = dir.path().join("solo.db");
    let id = a.view().node_id.expect("id");
    let meta = |n: u32| MemberMeta {
        capacity: n,
        ..a_meta()
    };
    wait_for(&a, "the start-up incarnation committed", |v| {
        v.metrics.commits >= 1
    })
    .await;
    let before = a.view().metrics.commits;
    // Each metadata change announces a new incarnation, which must be persisted.
    let handle = Arc::new(a);
    let mut tasks = Vec::new();
    for n in 0..200u32 {
        let h = handle.clone();
        let m = meta(n);
        tasks.push(tokio::spawn(async move {
            h.command(Command::UpdateMeta(m)).await
        }));
    }
    for t in tasks {
        t.await.expect("task").expect("acknowledged");
    }
    // Acknowledged, so on disk: a second reader sees the latest incarnation.
    let stored = Store::open(&db, id).and_then(|s| s.load()).expect("reopen");
    let live = handle.view().incarnation;
    assert!(stored.incarnation >= Some(Incarnation(200)), "{stored:?}");
    assert!(stored.incarnation >= Some(live) || live == Incarnation(0));
    wait_for(&handle, "view refresh", |v| {
        v.incarnation >= Incarnation(200)
    })
    .await;
    let commits = handle.view().metrics.commits - before;
    eprintln!("200 commands -> {commits} commits");
    assert!(
        commits < 200,
        "a burst shares transactions ({commits} commits)"
    );
}

fn a_meta() -> MemberMeta {
    MemberMeta {
        name: "solo".into(),
        region: String::new(),
        zone: String::new(),
        advertise_url: String::new(),
        sync_addr: "127.0.0.1:7947".parse().expect("addr"),
        promotion_tier: 0,
        capacity: 0,
        role: aurora_core::Role::Serving,
        version: "test".into(),
        config_fingerprint: 0,
        bootstrap_expect: 0,
    }
}

/// Calls between two running nodes: the caller finds its peer (address and id) in its
/// membership view, as the gateway does, and the call rides the connection gossip
/// already opened. A stopped peer fails the call within its timeout, never hangs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_nodes_call_each_other_over_their_gossip_connection() {
    use aurora_io::transport::{CallLimits, PeerRequest};

    let dir = tempfile::tempdir().expect("tempdir");
    let (a, a_addr) = node("a", dir.path(), vec![]).await;
    let (b, _) = node("b", dir.path(), vec![a_addr]).await;
    wait_for(&a, "a sees b", |v| v.alive().count() == 1).await;
    let b_id = aurora_core::NodeId::from_name("b");
    b.peer_calls()
        .set_call_handler(Arc::new(|r: PeerRequest| async move {
            format!(
                "{} asked {}",
                r.peer.node,
                String::from_utf8_lossy(&r.bytes)
            )
            .into_bytes()
        }));
    let view = a.view();
    let peer = view
        .members
        .iter()
        .find(|m| m.id == b_id)
        .expect("b listed");
    let limits = CallLimits {
        timeout: Duration::from_secs(5),
        ..CallLimits::default()
    };
    let calls = a.peer_calls();
    let reply = calls
        .call(peer.addr, peer.id, b"cached?".to_vec(), limits)
        .await
        .expect("reply");
    let a_id = aurora_core::NodeId::from_name("a");
    assert_eq!(reply, format!("{a_id} asked cached?").into_bytes());
    wait_for(&b, "b counted the call", |v| {
        v.metrics.transport.calls_received == 1
    })
    .await;
    wait_for(&a, "a counted the call", |v| {
        let t = &v.metrics.transport;
        t.calls_sent == 1 && t.calls_failed == 0
    })
    .await;

    b.stop().await.expect("stop");
    let short = CallLimits {
        timeout: Duration::from_secs(2),
        ..limits
    };
    let started = tokio::time::Instant::now();
    let gone = calls
        .call(peer.addr, peer.id, b"still there?".to_vec(), short)
        .await;
    assert!(gone.is_err(), "{gone:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    a.stop().await.expect("stop");
}
