//! The real `aurora-io` driver (QUIC, mutual TLS, SQLite) on turmoil's simulated network.
//!
//! Each turmoil host runs one node exactly as production would, except that its UDP
//! socket is turmoil's (through `aurora_tests::TurmoilUdp`). The network is entirely in
//! memory: the 192.168.x addresses turmoil assigns never reach a real interface.
//!
//! Determinism: turmoil fixes time, scheduling and network randomness, and each node's
//! core seed is fixed, so timing is reproducible; quinn-proto and rustls still draw OS
//! randomness, so packet bytes are not. Assertions are about outcomes only.
//!
//! Time bounds: QUIC's idle timeout is 10 s (`aurora_io::transport::quic::IDLE_TIMEOUT`);
//! the simulation duration is well above it, while every wait below is bounded in
//! simulated time and each test runs in a few seconds of wall time.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aurora_core::{Incarnation, Liveness};
use aurora_io::transport::{CallError, CallLimits, PeerRequest};
use aurora_io::{launch, ClusterView, LocalStatus, Socket};
use aurora_tests::TurmoilUdp;

const SECRET: &str = "turmoil-test-secret-0123456789abcdef";
const WRONG_SECRET: &str = "a-completely-different-secret-xyz";
const PORT: u16 = 7946;

type Views = Arc<Mutex<HashMap<String, Arc<ClusterView>>>>;
/// Names of nodes asked to leave gracefully (read by their host loops).
type Leaves = Arc<Mutex<Vec<String>>>;
/// Calls a node's host loop is asked to make (it runs them on its own runtime, where
/// its socket lives), and their outcomes by order number.
type CallOrders = Arc<Mutex<Vec<CallOrder>>>;
type CallResults = Arc<Mutex<HashMap<usize, Result<Vec<u8>, CallError>>>>;

struct CallOrder {
    number: usize,
    from: &'static str,
    to: &'static str,
    bytes: Vec<u8>,
    timeout: Duration,
}

/// How one host's node is configured.
#[derive(Clone)]
struct NodeSpec {
    name: &'static str,
    seeds: Vec<&'static str>,
    secret: &'static str,
    previous: Option<&'static str>,
    /// `cluster.failover_mode`.
    mode: &'static str,
}

fn spec(name: &'static str, seeds: &[&'static str]) -> NodeSpec {
    NodeSpec {
        name,
        seeds: seeds.to_vec(),
        secret: SECRET,
        previous: None,
        mode: "single_node",
    }
}

struct Harness<'a> {
    sim: turmoil::Sim<'a>,
    views: Views,
    leaves: Leaves,
    orders: CallOrders,
    results: CallResults,
    next_call: usize,
    dir: tempfile::TempDir,
}

fn harness() -> Harness<'static> {
    let sim = turmoil::Builder::new()
        .simulation_duration(Duration::from_secs(300))
        .rng_seed(7)
        .build();
    Harness {
        sim,
        views: Arc::new(Mutex::new(HashMap::new())),
        leaves: Arc::new(Mutex::new(Vec::new())),
        orders: Arc::new(Mutex::new(Vec::new())),
        results: Arc::new(Mutex::new(HashMap::new())),
        next_call: 0,
        dir: tempfile::tempdir().expect("tempdir"),
    }
}

impl Harness<'_> {
    /// Each node's SQLite file, in a data directory of its own: the node key kept
    /// beside it belongs to that file (one storage life per directory).
    fn db(&self, name: &str) -> PathBuf {
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(&dir).expect("node data dir");
        dir.join("node.db")
    }

    /// Adds a host running one node. On `bounce` the same closure runs again with the
    /// same SQLite file: that is a restart.
    fn add(&mut self, spec: NodeSpec) {
        let views = self.views.clone();
        let leaves = self.leaves.clone();
        let (orders, results) = (self.orders.clone(), self.results.clone());
        let db = self.db(spec.name);
        let seed = aurora_core::fnv1a64(spec.name.as_bytes());
        self.sim.host(spec.name, move || {
            let views = views.clone();
            let leaves = leaves.clone();
            let (orders, results) = (orders.clone(), results.clone());
            let db = db.clone();
            let spec = spec.clone();
            async move {
                let own = turmoil::lookup(spec.name);
                let seeds: Vec<String> = spec
                    .seeds
                    .iter()
                    .map(|s| SocketAddr::new(turmoil::lookup(*s), PORT).to_string())
                    .collect();
                let mut yaml = format!(
                    "cluster:\n  enabled: true\n  node_id: {name}\n  region: sim\n  zone: z-{name}\n  bind_addr: 0.0.0.0\n  bind_port: {PORT}\n  advertise_addr: {own}\n  seed_nodes: [{seeds}]\n  failover_mode: {mode}\n",
                    name = spec.name,
                    seeds = seeds.join(", "),
                    mode = spec.mode,
                );
                let dir = db.parent().map(PathBuf::from).unwrap_or_default();
                if let Some(prev) = spec.previous {
                    let path = dir.join("previous_secret");
                    std::fs::write(&path, prev)?;
                    yaml.push_str(&format!("  previous_secret_file: {}\n", path.display()));
                }
                let env = HashMap::from([("CLUSTER_SECRET".to_string(), spec.secret.to_string())]);
                let mut settings = aurora_io::config::load(&yaml, &env)?;
                // The fast KDF: this simulated network has no strangers, and the suite
                // starts many nodes (the production cost is asserted in aurora-io).
                settings.kdf = aurora_io::config::KdfParams::MINIMAL;
                let socket = turmoil::net::UdpSocket::bind(SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    PORT,
                ))
                .await?;
                let handle = launch(
                    &settings,
                    &db,
                    Socket::Custom(
                        Arc::new(TurmoilUdp::new(socket)),
                        Arc::new(quinn::TokioRuntime),
                    ),
                    Some(seed),
                    "test",
                )
                .await?;
                // Every node answers calls with its name and the request; "hold N"
                // is answered after N seconds (a call held until another node's
                // answer is stored).
                let name = spec.name;
                let calls = handle.peer_calls();
                calls.set_call_handler(Arc::new(move |r: PeerRequest| async move {
                    let text = String::from_utf8_lossy(&r.bytes).into_owned();
                    if let Some(secs) = text.strip_prefix("hold ") {
                        let secs = secs.parse().unwrap_or(0);
                        tokio::time::sleep(Duration::from_secs(secs)).await;
                    }
                    format!("{name}: {text}").into_bytes()
                }));
                let mut watch = handle.watch();
                loop {
                    let mine: Vec<CallOrder> = {
                        let mut all = orders.lock().unwrap_or_else(|p| p.into_inner());
                        let (mine, rest) = all.drain(..).partition(|o| o.from == spec.name);
                        *all = rest;
                        mine
                    };
                    for order in mine {
                        let (calls, results) = (calls.clone(), results.clone());
                        tokio::spawn(async move {
                            let to = SocketAddr::new(turmoil::lookup(order.to), PORT);
                            let limits = CallLimits {
                                timeout: order.timeout,
                                ..CallLimits::default()
                            };
                            let id = aurora_core::NodeId::from_name(order.to);
                            let got = calls.call(to, id, order.bytes, limits).await;
                            results
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .insert(order.number, got);
                        });
                    }
                    let view = watch.borrow_and_update().clone();
                    views
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(spec.name.to_string(), view);
                    let asked = leaves
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .iter()
                        .any(|n| n == spec.name);
                    if asked {
                        let result = handle.leave(Duration::from_secs(5)).await;
                        let last = watch.borrow().clone();
                        views
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(spec.name.to_string(), last);
                        result?;
                        return Ok(());
                    }
                    // Woken by a new view, or soon anyway to pick up call orders.
                    tokio::select! {
                        changed = watch.changed() => if changed.is_err() { break },
                        _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                    }
                }
                handle.join().await?;
                Ok(())
            }
        });
    }

    /// Has `from` call `to` (bounded by `timeout`) and steps until the call ended.
    fn call(
        &mut self,
        from: &'static str,
        to: &'static str,
        bytes: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, CallError> {
        let number = self.next_call;
        self.next_call += 1;
        self.orders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(CallOrder {
                number,
                from,
                to,
                bytes: bytes.to_vec(),
                timeout,
            });
        let what = format!("the call {from} -> {to}");
        self.run_until(timeout + Duration::from_secs(2), &what, |h| {
            let results = h.results.lock().unwrap_or_else(|p| p.into_inner());
            results.contains_key(&number)
        });
        let results = self.results.lock().unwrap_or_else(|p| p.into_inner());
        results
            .get(&number)
            .cloned()
            .unwrap_or(Err(CallError::Timeout(timeout)))
    }

    fn view(&self, name: &str) -> Option<Arc<ClusterView>> {
        self.views
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// Steps the simulation until `done` holds or `limit` of simulated time passes.
    fn run_until(&mut self, limit: Duration, what: &str, mut done: impl FnMut(&Self) -> bool) {
        let end = self.sim.elapsed() + limit;
        while self.sim.elapsed() < end {
            if done(self) {
                return;
            }
            if let Err(e) = self.sim.step() {
                panic!("simulation failed while waiting for {what}: {e}");
            }
        }
        panic!(
            "timed out after {limit:?} of simulated time waiting for {what}; views: {:#?}",
            self.summary()
        );
    }

    /// Steps for `span` of simulated time.
    fn run_for(&mut self, span: Duration) {
        let end = self.sim.elapsed() + span;
        while self.sim.elapsed() < end {
            if let Err(e) = self.sim.step() {
                panic!("simulation failed: {e}");
            }
        }
    }

    /// Whether `name` sees exactly `others` as alive members.
    fn sees_alive(&self, name: &str, others: &[&str]) -> bool {
        let Some(view) = self.view(name) else {
            return false;
        };
        let mut alive: Vec<&str> = view.alive().map(|m| m.meta.name.as_str()).collect();
        alive.sort_unstable();
        let mut want = others.to_vec();
        want.sort_unstable();
        alive == want
    }

    fn liveness_of(&self, observer: &str, member: &str) -> Option<Liveness> {
        self.view(observer)?
            .members
            .iter()
            .find(|m| m.meta.name == member)
            .map(|m| m.liveness)
    }

    fn summary(&self) -> Vec<String> {
        let views = self.views.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<String> = views
            .iter()
            .map(|(name, v)| {
                let members: Vec<String> = v
                    .members
                    .iter()
                    .map(|m| format!("{}:{:?}{}", m.meta.name, m.liveness, m.incarnation))
                    .collect();
                format!(
                    "{name} {:?} {} [{}] tls_rejected={}",
                    v.status,
                    v.incarnation,
                    members.join(" "),
                    v.metrics.transport.tls_rejected
                )
            })
            .collect();
        out.sort();
        out
    }
}

/// The lease holders among `names`, by name, as their own views say.
fn holders(h: &Harness, names: &[&str]) -> Vec<String> {
    names
        .iter()
        .filter(|n| {
            h.view(n)
                .and_then(|v| v.failover.clone())
                .is_some_and(|f| f.this_node_holds_lease)
        })
        .map(|n| n.to_string())
        .collect()
}

/// Whether every node in `names` follows a roster of all of them and names one
/// leader, the same one, which holds the lease.
fn one_agreed_leader(h: &Harness, names: &[&str]) -> bool {
    let statuses: Vec<_> = names
        .iter()
        .filter_map(|n| h.view(n).and_then(|v| v.failover.clone()))
        .collect();
    statuses.len() == names.len()
        && statuses.iter().all(|f| f.voters.len() == names.len())
        && statuses.windows(2).all(|w| w[0].leader == w[1].leader)
        && statuses[0].leader.is_some()
        && holders(h, names).len() == 1
}

fn all_converged(h: &Harness, names: &[&str]) -> bool {
    names.iter().all(|n| {
        let others: Vec<&str> = names.iter().copied().filter(|o| o != n).collect();
        h.sees_alive(n, &others)
    })
}

#[test]
fn four_nodes_converge_to_the_full_member_list() {
    let mut h = harness();
    let names = ["n1", "n2", "n3", "n4"];
    h.add(spec("n1", &[]));
    for n in &names[1..] {
        h.add(spec(n, &["n1"]));
    }
    h.run_until(Duration::from_secs(20), "full membership", |h| {
        all_converged(h, &names)
    });
    for n in names {
        let view = h.view(n).expect("view");
        assert_eq!(view.status, LocalStatus::Active, "{n}");
        assert_eq!(view.incarnation, Incarnation(0), "first start: {n}");
        assert_eq!(view.metrics.transport.tls_rejected, 0, "{n}");
        assert!(view.metrics.commits >= 1, "the incarnation was persisted");
        let zones: Vec<&str> = view.members.iter().map(|m| m.meta.zone.as_str()).collect();
        assert_eq!(zones.len(), 3, "{zones:?}");
    }
    eprintln!("converged at {:?}: {:#?}", h.sim.elapsed(), h.summary());
    // Heartbeats keep flowing: every member's last heartbeat is recent.
    h.run_for(Duration::from_secs(3));
    let view = h.view("n2").expect("view");
    for m in &view.members {
        let last = m.last_heartbeat.expect("heard a heartbeat");
        assert!(view.at.since(last) <= Duration::from_secs(3), "{m:?}");
    }
}

#[test]
fn a_partition_heals() {
    let mut h = harness();
    let names = ["n1", "n2", "n3"];
    h.add(spec("n1", &[]));
    h.add(spec("n2", &["n1"]));
    h.add(spec("n3", &["n1"]));
    h.run_until(Duration::from_secs(20), "full membership", |h| {
        all_converged(h, &names)
    });
    h.sim.partition("n3", "n1");
    h.sim.partition("n3", "n2");
    h.run_until(Duration::from_secs(30), "n3 declared failed", |h| {
        let gone = |o: &str| {
            matches!(
                h.liveness_of(o, "n3"),
                Some(Liveness::Dead) | Some(Liveness::Suspect) | None
            )
        };
        gone("n1") && gone("n2") && !h.sees_alive("n3", &["n1", "n2"])
    });
    h.sim.repair("n3", "n1");
    h.sim.repair("n3", "n2");
    h.run_until(Duration::from_secs(40), "membership after repair", |h| {
        all_converged(h, &names)
    });
}

/// Calls ride the nodes' connections on the simulated network: answered between
/// members, held for longer than the idle timeout, failed within the caller's timeout
/// across a partition (never hung), and answered again once it heals.
#[test]
fn calls_between_nodes_fail_across_a_partition_and_work_after_it() {
    let mut h = harness();
    let names = ["n1", "n2", "n3"];
    h.add(spec("n1", &[]));
    h.add(spec("n2", &["n1"]));
    h.add(spec("n3", &["n1"]));
    h.run_until(Duration::from_secs(20), "full membership", |h| {
        all_converged(h, &names)
    });
    let timeout = Duration::from_secs(3);
    assert_eq!(h.call("n2", "n1", b"hi", timeout), Ok(b"n1: hi".to_vec()));
    // Held for longer than QUIC's idle timeout: the connection stays up meanwhile.
    let held = h.call("n3", "n1", b"hold 25", Duration::from_secs(40));
    assert_eq!(held, Ok(b"n1: hold 25".to_vec()));
    assert_eq!(h.call("n3", "n2", b"yo", timeout), Ok(b"n2: yo".to_vec()));
    h.sim.partition("n2", "n1");
    let cut = h.call("n2", "n1", b"anyone?", timeout);
    assert!(
        matches!(
            cut,
            Err(CallError::Timeout(_) | CallError::ConnectionLost(_))
        ),
        "a call across a partition: {cut:?}"
    );
    // n3 still reaches both.
    assert_eq!(h.call("n3", "n1", b"x", timeout), Ok(b"n1: x".to_vec()));
    h.sim.repair("n2", "n1");
    h.run_until(Duration::from_secs(30), "membership after repair", |h| {
        all_converged(h, &names)
    });
    // Past any dial backoff: the call reconnects if the old connection died.
    h.run_for(Duration::from_secs(6));
    assert_eq!(
        h.call("n2", "n1", b"back", timeout),
        Ok(b"n1: back".to_vec())
    );
}

#[test]
fn a_restarted_node_returns_with_a_higher_incarnation() {
    let mut h = harness();
    let names = ["n1", "n2", "n3"];
    h.add(spec("n1", &[]));
    h.add(spec("n2", &["n1"]));
    h.add(spec("n3", &["n1", "n2"]));
    h.run_until(Duration::from_secs(20), "full membership", |h| {
        all_converged(h, &names)
    });
    let before = h.view("n3").expect("view").incarnation;
    h.sim.crash("n3");
    h.views
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove("n3");
    h.run_until(Duration::from_secs(30), "n3 declared failed", |h| {
        !matches!(h.liveness_of("n1", "n3"), Some(Liveness::Alive))
    });
    h.sim.bounce("n3");
    h.run_until(Duration::from_secs(40), "n3 back", |h| {
        all_converged(h, &names)
    });
    let after = h.view("n3").expect("view").incarnation;
    assert!(after > before, "{after} must exceed {before}");
    for o in ["n1", "n2"] {
        let seen = h
            .view(o)
            .and_then(|v| v.members.iter().find(|m| m.meta.name == "n3").cloned())
            .expect("n3 known");
        assert!(seen.incarnation >= after, "{o} sees {}", seen.incarnation);
    }
}

#[test]
fn a_node_with_the_wrong_secret_never_joins() {
    let mut h = harness();
    h.add(spec("n1", &[]));
    h.add(spec("n2", &["n1"]));
    h.add(NodeSpec {
        secret: WRONG_SECRET,
        ..spec("intruder", &["n1", "n2"])
    });
    h.run_until(Duration::from_secs(20), "n1 and n2 together", |h| {
        all_converged(h, &["n1", "n2"])
    });
    // Far longer than joining takes; the intruder keeps retrying all along.
    h.run_for(Duration::from_secs(20));
    let intruder = h.view("intruder").expect("intruder ran");
    assert!(intruder.members.is_empty(), "{:?}", h.summary());
    assert_eq!(intruder.status, LocalStatus::Joining);
    for n in ["n1", "n2"] {
        let view = h.view(n).expect("view");
        assert!(
            view.members.iter().all(|m| m.meta.name != "intruder"),
            "{:?}",
            h.summary()
        );
    }
    eprintln!("{:#?}", h.summary());
    let rejected: u64 = ["n1", "n2", "intruder"]
        .iter()
        .filter_map(|n| h.view(n))
        .map(|v| v.metrics.transport.tls_rejected)
        .sum();
    assert!(rejected > 0, "refusals are counted: {:?}", h.summary());
}

#[test]
fn secret_rotation_keeps_old_and_new_nodes_together() {
    // n1, n2 are mid-rotation (present the new secret, still trust the old one); n3 has
    // not been restarted yet but already trusts the new secret (step one of the rollout).
    let mut h = harness();
    let names = ["n1", "n2", "n3"];
    h.add(NodeSpec {
        secret: WRONG_SECRET,
        previous: Some(SECRET),
        ..spec("n1", &[])
    });
    h.add(NodeSpec {
        secret: WRONG_SECRET,
        previous: Some(SECRET),
        ..spec("n2", &["n1"])
    });
    h.add(NodeSpec {
        secret: SECRET,
        previous: Some(WRONG_SECRET),
        ..spec("n3", &["n1"])
    });
    h.run_until(Duration::from_secs(20), "full membership", |h| {
        all_converged(h, &names)
    });
}

#[test]
fn a_graceful_leave_is_seen_as_left() {
    let mut h = harness();
    let names = ["n1", "n2", "n3"];
    h.add(spec("n1", &[]));
    h.add(spec("n2", &["n1"]));
    h.add(spec("n3", &["n1"]));
    h.run_until(Duration::from_secs(20), "full membership", |h| {
        all_converged(h, &names)
    });
    h.leaves
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push("n3".into());
    h.run_until(Duration::from_secs(10), "n3 left", |h| {
        h.view("n3").is_some_and(|v| v.status == LocalStatus::Left)
            && ["n1", "n2"]
                .iter()
                .all(|o| matches!(h.liveness_of(o, "n3"), Some(Liveness::Left) | None))
    });
    // Left, not failed: nobody suspects it afterwards either.
    h.run_for(Duration::from_secs(5));
    for o in ["n1", "n2"] {
        assert!(
            matches!(h.liveness_of(o, "n3"), Some(Liveness::Left) | None),
            "{:?}",
            h.summary()
        );
        assert!(h.sees_alive(o, &[if o == "n1" { "n2" } else { "n1" }]));
    }
}

/// active_passive on the real driver: n1 founds the cluster alone and admits n2 and
/// n3 one at a time; exactly one node holds the lease; when it crashes another takes
/// over, and the restarted node (its SQLite file kept) comes back under a higher
/// epoch without ever making a second holder.
#[test]
fn active_passive_elects_one_leader_and_fails_over() {
    let mut h = harness();
    let names = ["n1", "n2", "n3"];
    let ap = |name, seeds: &[&'static str]| NodeSpec {
        mode: "active_passive",
        ..spec(name, seeds)
    };
    h.add(ap("n1", &[]));
    h.add(ap("n2", &["n1"]));
    h.add(ap("n3", &["n1"]));
    h.run_until(
        Duration::from_secs(40),
        "one leader over a roster of three",
        |h| one_agreed_leader(h, &names),
    );
    let first = holders(&h, &names).remove(0);
    let epoch = h
        .view(&first)
        .and_then(|v| v.failover.clone())
        .expect("status")
        .epoch;
    for n in names {
        let f = h.view(n).and_then(|v| v.failover.clone()).expect("status");
        // Standbys are ready-but-passive; only the holder serves.
        assert_eq!(f.serving, n == first, "{n}: {f:?}");
    }
    h.sim.crash(first.as_str());
    h.views
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&first);
    let rest: Vec<&str> = names.iter().copied().filter(|n| *n != first).collect();
    h.run_until(
        Duration::from_secs(20),
        "a new leader among the rest",
        |h| holders(h, &rest).len() == 1,
    );
    // Never two holders from here on, through the restart and the hold-down after it.
    h.sim.bounce(first.as_str());
    let end = h.sim.elapsed() + Duration::from_secs(30);
    while h.sim.elapsed() < end {
        let now = holders(&h, &names);
        assert!(
            now.len() <= 1,
            "two lease holders: {now:?}; {:#?}",
            h.summary()
        );
        if let Err(e) = h.sim.step() {
            panic!("simulation failed: {e}");
        }
    }
    h.run_until(Duration::from_secs(20), "one agreed leader again", |h| {
        one_agreed_leader(h, &names)
    });
    let later = h
        .view(names[0])
        .and_then(|v| v.failover.clone())
        .expect("status")
        .epoch;
    assert!(later > epoch, "epochs grow: {later} after {epoch}");
}
