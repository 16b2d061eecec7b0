//! Real hosts: three `aurora serve` processes, each alone in its own network
//! namespace on its own address (10.77.0.1-3, HTTP on :8080, cluster QUIC on :7946
//! and :7947), joined by veth pairs to a bridge in a fourth namespace. Links are cut
//! and healed with `ip link set b<i> down/up` on the bridge side (see
//! `common/netns.rs`), and the test asserts what must hold across a real network
//! boundary:
//!
//! - **one leader**: no two nodes hold the lease in the same epoch, and no node is
//!   seen serving between two samples in which another holds one continuous lease
//!   (a monitor thread samples every node's `cluster/status` all along, through the
//!   namespaces, so a cut-off node is still observed);
//! - **liveness**: after the leader is cut off, the majority side agrees on a new
//!   leader with a higher epoch within [`NEW_LEADER_WITHIN`], and the cut-off node
//!   stops serving within [`STEP_DOWN_WITHIN`];
//! - **convergence after heal**: every node lists three alive members, one leader is
//!   agreed on, and every node's state digest (`state.digest` in `cluster/status`) and
//!   live record count are equal;
//! - **no lost acknowledged write**: every key whose creation was answered 201, on
//!   either side of a partition, is on every node after the heal; a key created on the
//!   majority during the partition authenticates a chat request on the healed minority.
//!
//! Why `#[ignore]`: it needs root (namespaces, veths, a bridge) and changes the host's
//! namespace list while it runs, so a plain `cargo test` must not do that just because
//! it runs as root. `.ci/run` runs it explicitly (`-- --ignored --exact`). Where it
//! cannot create namespaces (not root, no `ip`, a container without CAP_SYS_ADMIN) it
//! prints why to stderr and passes as skipped: its name ends in `_or_skip` so the
//! test list says so. No netem: loss and delay are the simulator's job.

mod common;

use std::collections::BTreeSet;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cluster::{
    agreed, alive, get_json, json, request, spawn, spec_in_netns, wait_for, Agreed, Proc, Spec,
    SECRET,
};
use common::netns::{in_netns, Lab, Setup};

/// The majority side agrees on a new leader within this after the leader is cut off
/// (the design: one lease, 2.8 s, plus a round trip; measured about 3 s).
const NEW_LEADER_WITHIN: Duration = Duration::from_secs(10);
/// A cut-off leader stops serving within this (its lease is shorter than 2.8 s).
const STEP_DOWN_WITHIN: Duration = Duration::from_secs(5);
/// After a heal: every node alive, one leader, equal digests, every acked write.
const CONVERGE_WITHIN: Duration = Duration::from_secs(30);
/// The longest time without a serving node while only a standby is cut off and
/// healed: the leader keeps its majority, so only sampling separates two serving
/// samples (a round of three status requests, about 10-30 ms; a planned handover
/// after `hold_down`, one round trip).
const STANDBY_CUT_GAP: Duration = Duration::from_secs(1);
/// The whole test, set-up included.
const TEST_WITHIN: Duration = Duration::from_secs(120);

const ACTIVE_PASSIVE: &[&str] = &["--cluster-failover-mode", "active_passive"];

#[test]
#[ignore = "needs root (network namespaces); .ci/run runs it with --ignored"]
fn netns_partition_one_leader_converges_no_lost_write_or_skip() {
    let started = Instant::now();
    // AURORA_TEST_KEEP_DIR=1 keeps the nodes' data directories and logs, pass or fail.
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_tmp, root) = if std::env::var_os("AURORA_TEST_KEEP_DIR").is_some() {
        let kept = tmp.keep();
        println!("node logs kept in {}", kept.display());
        (None, kept)
    } else {
        let path = tmp.path().to_owned();
        (Some(tmp), path)
    };
    let lab = match Lab::create(3) {
        Ok(lab) => lab,
        Err(Setup::Unavailable(why)) => {
            // Straight to stderr: the test harness captures println!/eprintln!.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED netns_partition: {why}; run as root where `ip netns add` works"
            );
            return;
        }
        Err(Setup::Failed(e)) => {
            panic!("network namespaces work here but the test network could not be built: {e}")
        }
    };
    let specs: Vec<Spec> = (1..=3)
        .map(|i| spec_in_netns(&root, i, lab.ns(i), Lab::ip(i), ACTIVE_PASSIVE))
        .collect();
    // Declared after `lab`, so dropped (killed) before the namespaces are deleted.
    let procs: Vec<Proc> = specs.iter().map(|s| spawn(s, &specs, SECRET)).collect();
    let mut cluster = Cluster {
        lab: &lab,
        specs: &specs,
        procs: &procs,
        acked: Vec::new(),
    };
    let monitor = Monitor::start(&procs);

    // Formation.
    let all = [0, 1, 2];
    let formed = cluster.converge(&all, "formation");
    let first = &formed.agreed;
    println!(
        "formed: {} leads (epoch {}); after the three were up: {formed}",
        specs[first.active].name, first.epoch
    );
    cluster.write_to(&all, "before", 6);
    cluster.converge(&all, "writes before any cut");

    // 1. The leader alone on one side, the two others on the other.
    let leader = first.active;
    let majority: Vec<usize> = all.into_iter().filter(|&i| i != leader).collect();
    let phase1 = Instant::now();
    let (after, new_leader_in) = cluster.isolate(leader, &majority, first);
    let majority_written = cluster.write_to(&majority, "majority-1", 4);
    cluster.write_to(&[leader], "minority-1", 3);
    assert_partitioned(&cluster, leader, &majority_written);
    cluster.lab.heal(node_no(leader));
    let converged = cluster.converge(&all, "heal after the leader was cut off");
    let healed = &converged.agreed;
    let heal1 = Instant::now() - converged.all;
    let phase1 = (phase1, heal1, Instant::now(), majority.clone());
    println!(
        "leader {} cut off: {} leads on the majority side (epoch {} -> {}) {new_leader_in:?} after the cut; after the heal: {converged} ({} leads, epoch {})",
        specs[leader].name, specs[after.active].name, first.epoch, after.epoch,
        specs[healed.active].name, healed.epoch
    );
    cluster.key_works_on(&majority_written[0], leader);

    // 2. A standby alone: the leader stays on the majority side and keeps leading.
    let standby = (healed.active + 1) % 3;
    let majority: Vec<usize> = all.into_iter().filter(|&i| i != standby).collect();
    let phase2 = Instant::now();
    cluster.lab.cut(node_no(standby));
    let seen_gone = wait_for(
        CONVERGE_WITHIN,
        "the majority to see the cut-off standby as not alive",
        || majority.iter().all(|&i| alive(&procs[i]) == 2),
    );
    let mut kept = None;
    wait_for(NEW_LEADER_WITHIN, "a leader on the majority side", || {
        kept = agreed(&cluster.pairs(&majority));
        kept.is_some()
    });
    let kept = kept.expect("agreed");
    let majority_written = cluster.write_to(&majority, "majority-2", 4);
    cluster.write_to(&[standby], "minority-2", 3);
    assert_partitioned(&cluster, standby, &majority_written);
    cluster.lab.heal(node_no(standby));
    let converged = cluster.converge(&all, "heal after a standby was cut off");
    let heal2 = Instant::now() - converged.all;
    // Keep watching a little: a disturbance after the heal shows up as a gap.
    std::thread::sleep(Duration::from_secs(3));
    let phase2 = (phase2, heal2, Instant::now(), majority.clone());
    println!(
        "standby {} cut off: the majority saw it gone {seen_gone:?} after the cut, {} led (epoch {}); after the heal: {converged}",
        specs[standby].name, specs[kept.active].name, kept.epoch
    );
    cluster.key_works_on(&majority_written[0], standby);

    // 3. Every node alone: no majority anywhere, so nobody may serve.
    for i in all {
        cluster.lab.cut(node_no(i));
    }
    let nobody = wait_for(
        STEP_DOWN_WITHIN,
        "no node serving without a majority",
        || all.iter().all(|&i| serving(&procs[i]) == Some(false)),
    );
    for i in all {
        cluster.write_to(&[i], &format!("alone-{i}"), 2);
    }
    for i in all {
        cluster.lab.heal(node_no(i));
    }
    let converged = cluster.converge(&all, "heal after every node was cut off");
    let last = &converged.agreed;
    println!(
        "every node cut off: none serving {nobody:?} after the cut; after the heal: {converged} ({} leads, epoch {})",
        specs[last.active].name, last.epoch
    );

    let samples = monitor.stop();
    check_one_holder(&samples, &specs).unwrap_or_else(|e| panic!("{e}"));
    for (what, (cut, heal, end, majority)) in
        [("leader cut off", &phase1), ("standby cut off", &phase2)]
    {
        println!(
            "{what}: longest time without a serving node on the majority side: {:?} between cut and heal; on any node: {:?} after the heal",
            longest_gap(&samples, majority, *cut, *heal),
            longest_gap(&samples, &all, *heal, *end)
        );
    }
    // A standby cut off and back must not interrupt the leader: it keeps a
    // majority all along. (Before the fix in core/src/failover/voter.rs, a node
    // back from an earlier cut refused the leader's renewals, and the leader lost
    // its lease here for 7-10 s.)
    let (cut, _, end, _) = phase2;
    let gap = longest_gap(&samples, &all, cut, end);
    assert!(
        gap < STANDBY_CUT_GAP,
        "no node served for {gap:?} while only a standby was cut off and healed"
    );
    let epochs: BTreeSet<u64> = samples
        .iter()
        .filter(|s| s.serving)
        .map(|s| s.epoch)
        .collect();
    println!(
        "{} acknowledged writes, every one on all three nodes; {} status samples, leader epochs {epochs:?}, never two holders; {:?} in all",
        cluster.acked.len(),
        samples.len(),
        started.elapsed()
    );
    assert!(
        started.elapsed() < TEST_WITHIN,
        "took {:?}, more than {TEST_WITHIN:?}",
        started.elapsed()
    );
}

/// The longest stretch within `from..to` in which no sample showed one of `nodes`
/// serving
/// (from the window's start or the answer of the last serving sample to the request
/// of the next one, or the window's end).
fn longest_gap(samples: &[Sample], nodes: &[usize], from: Instant, to: Instant) -> Duration {
    let mut last = from;
    let mut longest = Duration::ZERO;
    let serving = samples
        .iter()
        .filter(|s| s.serving && nodes.contains(&s.node) && s.sent >= from && s.got <= to);
    for s in serving {
        longest = longest.max(s.sent.saturating_duration_since(last));
        last = s.got;
    }
    longest.max(to.saturating_duration_since(last))
}

/// `ip` names nodes 1-based; the slices here are 0-based.
fn node_no(i: usize) -> u8 {
    u8::try_from(i + 1).expect("small")
}

/// An acknowledged key creation: its id, secret and the node that answered 201.
struct Acked {
    id: String,
    secret: String,
    node: usize,
}

/// What a convergence wait found: the agreement, and when each part of it first
/// held (members alive, a leader agreed on, equal state) and when all held at once.
struct Converged {
    agreed: Agreed,
    members: Duration,
    leader: Duration,
    state: Duration,
    all: Duration,
}

impl std::fmt::Display for Converged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| d.as_millis();
        write!(
            f,
            "all alive {} ms, leader {} ms, equal state {} ms, all at once {} ms",
            ms(self.members),
            ms(self.leader),
            ms(self.state),
            ms(self.all)
        )
    }
}

struct Cluster<'a> {
    lab: &'a Lab,
    specs: &'a [Spec],
    procs: &'a [Proc],
    acked: Vec<Acked>,
}

impl Cluster<'_> {
    fn pairs(&self, nodes: &[usize]) -> Vec<(&Spec, &Proc)> {
        nodes
            .iter()
            .map(|&i| (&self.specs[i], &self.procs[i]))
            .collect()
    }

    /// Creates `n` keys, round robin over `nodes`; every one must be acknowledged
    /// (a node answers a write once its own SQLite committed it, partition or not).
    /// Returns the ids written.
    fn write_to(&mut self, nodes: &[usize], tag: &str, n: usize) -> Vec<String> {
        let mut ids = Vec::new();
        for k in 0..n {
            let node = nodes[k % nodes.len()];
            let id = format!("np-{tag}-{k}");
            let body = format!(r#"{{"id":"{id}","name":"{tag}"}}"#);
            let (status, text) = self.procs[node]
                .call("POST", "/admin/api/keys", Some(&body))
                .unwrap_or_else(|e| panic!("creating {id} on {}: {e}", self.specs[node].name));
            assert_eq!(
                status, 201,
                "creating {id} on {}: {text}",
                self.specs[node].name
            );
            let secret = json(&text)["secret"]
                .as_str()
                .unwrap_or_else(|| panic!("no secret in {text}"))
                .to_owned();
            self.acked.push(Acked {
                id: id.clone(),
                secret,
                node,
            });
            ids.push(id);
        }
        ids
    }

    /// Waits until `nodes` agree: each lists them all alive, one leader with one
    /// epoch, equal state digests and record counts, and every acknowledged write on
    /// every node, all at once.
    fn converge(&self, nodes: &[usize], what: &str) -> Converged {
        let start = Instant::now();
        let mut firsts: [Option<Duration>; 3] = [None; 3];
        let mut last = String::new();
        while start.elapsed() < CONVERGE_WITHIN {
            let members = self.members_alive(nodes);
            let leader = agreed(&self.pairs(nodes)).ok_or_else(|| "no leader agreed on".to_owned());
            let state = self.same_state(nodes);
            let elapsed = start.elapsed();
            let held = [members.is_ok(), leader.is_ok(), state.is_ok()];
            for (first, held) in firsts.iter_mut().zip(held) {
                if held && first.is_none() {
                    *first = Some(elapsed);
                }
            }
            match (members, leader, state, firsts) {
                (Ok(()), Ok(agreed), Ok(()), [Some(members), Some(leader), Some(state)]) => {
                    return Converged {
                        agreed,
                        members,
                        leader,
                        state,
                        all: elapsed,
                    };
                }
                (Err(why), _, _, _) | (_, Err(why), _, _) | (_, _, Err(why), _) => last = why,
                _ => unreachable!("a check that held just now has a first time"),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{what}: no convergence within {CONVERGE_WITHIN:?}: {last}")
    }

    /// `Ok` when each of `nodes` lists all of them alive.
    fn members_alive(&self, nodes: &[usize]) -> Result<(), String> {
        for &i in nodes {
            let n = alive(&self.procs[i]);
            if n != nodes.len() {
                return Err(format!("{} sees {n} alive", self.specs[i].name));
            }
        }
        Ok(())
    }

    /// `Ok` when `nodes` hold the same state digest and record count, and every
    /// acknowledged write.
    fn same_state(&self, nodes: &[usize]) -> Result<(), String> {
        let mut digests = BTreeSet::new();
        for &i in nodes {
            let status = get_json(&self.procs[i], "/admin/api/cluster/status");
            let state = &status["state"];
            let digest = state["digest"].as_str().ok_or_else(|| {
                format!(
                    "no state.digest in {}'s status: {status}",
                    self.specs[i].name
                )
            })?;
            digests.insert((digest.to_owned(), state["live_records"].to_string()));
            let keys = get_json(&self.procs[i], "/admin/api/keys");
            let have: BTreeSet<&str> = keys["data"]
                .as_array()
                .map(|rows| rows.iter().filter_map(|r| r["id"].as_str()).collect())
                .unwrap_or_default();
            if let Some(missing) = self.acked.iter().find(|a| !have.contains(a.id.as_str())) {
                return Err(format!(
                    "{} lacks {} (acknowledged by {})",
                    self.specs[i].name, missing.id, self.specs[missing.node].name
                ));
            }
        }
        if digests.len() != 1 {
            return Err(format!("state (digest, live records) differs: {digests:?}"));
        }
        Ok(())
    }

    /// Cuts `leader` off and waits for the `majority` to agree on another leader with
    /// a higher epoch, and for the cut-off node to stop serving.
    fn isolate(&self, leader: usize, majority: &[usize], before: &Agreed) -> (Agreed, Duration) {
        self.lab.cut(node_no(leader));
        let cut = Instant::now();
        let mut after = None;
        let took = wait_for(
            NEW_LEADER_WITHIN,
            "a new leader on the majority side",
            || {
                after = agreed(&self.pairs(majority))
                    .filter(|a| a.leader != before.leader && a.epoch > before.epoch);
                after.is_some()
            },
        );
        let after = after.expect("agreed");
        let left = STEP_DOWN_WITHIN.saturating_sub(cut.elapsed());
        wait_for(left, "the cut-off leader to stop serving", || {
            serving(&self.procs[leader]) == Some(false)
        });
        // Index into `majority` → index into the cluster.
        let active = majority[after.active];
        (Agreed { active, ..after }, took)
    }

    /// The key `id` (created elsewhere) authenticates a chat request on `node`.
    fn key_works_on(&self, id: &str, node: usize) {
        let key = self.acked.iter().find(|a| a.id == id).expect("acked");
        let body =
            r#"{"model":"mock/echo","messages":[{"role":"user","content":"over the bridge"}]}"#;
        let p = &self.procs[node];
        let netns = p.netns.as_deref().expect("in a namespace");
        let (status, text) = in_netns(netns, || {
            request(
                p.http,
                "POST",
                "/v1/chat/completions",
                &key.secret,
                Some(body),
            )
        })
        .and_then(|r| r)
        .unwrap_or_else(|e| panic!("chat on {}: {e}", self.specs[node].name));
        assert_eq!(
            status, 200,
            "key {id} (acknowledged by {}) on {}: {text}",
            self.specs[key.node].name, self.specs[node].name
        );
    }
}

/// A write acknowledged on the majority side is not on the cut-off node: the cut is
/// real (otherwise the rest of the test would prove nothing).
fn assert_partitioned(cluster: &Cluster<'_>, cut_off: usize, majority_written: &[String]) {
    std::thread::sleep(Duration::from_millis(500));
    for id in majority_written {
        let (status, _) = cluster.procs[cut_off]
            .call("GET", &format!("/admin/api/keys/{id}"), None)
            .expect("the cut-off node answers its own HTTP");
        assert_eq!(
            status, 404,
            "{id} reached {} through a cut link",
            cluster.specs[cut_off].name
        );
    }
}

/// `serving` in a node's cluster/status, `None` if it did not answer.
fn serving(p: &Proc) -> Option<bool> {
    get_json(p, "/admin/api/cluster/status")["serving"].as_bool()
}

/// One observation of one node's cluster/status.
#[derive(Clone, Debug)]
struct Sample {
    node: usize,
    /// When the request was sent and when the answer was read.
    sent: Instant,
    got: Instant,
    epoch: u64,
    /// Whether the node said it holds the lease (`serving` in active_passive).
    serving: bool,
}

/// Samples every node's cluster/status, round robin, until stopped.
struct Monitor {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<Sample>>,
}

impl Monitor {
    fn start(procs: &[Proc]) -> Monitor {
        let targets: Vec<(usize, std::net::SocketAddr, String)> = procs
            .iter()
            .enumerate()
            .map(|(i, p)| (i, p.http, p.netns.clone().expect("in a namespace")))
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !flag.load(Ordering::SeqCst) {
                for (node, addr, netns) in &targets {
                    let sent = Instant::now();
                    let answer = in_netns(netns, || {
                        common::cluster::http(*addr, "GET", "/admin/api/cluster/status", None)
                    });
                    let got = Instant::now();
                    let Ok(Ok((200, body))) = answer else {
                        continue;
                    };
                    let status = json(&body);
                    let (Some(epoch), Some(serving)) =
                        (status["epoch"].as_u64(), status["serving"].as_bool())
                    else {
                        continue;
                    };
                    samples.push(Sample {
                        node: *node,
                        sent,
                        got,
                        epoch,
                        serving,
                    });
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            samples
        });
        Monitor { stop, thread }
    }

    fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().expect("monitor thread")
    }
}

/// At most one lease holder: (1) no two nodes seen serving in the same epoch; (2) no
/// node seen serving strictly between two samples of another node serving in one
/// epoch with no non-serving sample between them (a lease of one epoch is one
/// continuous interval: losing it and leading again takes a new epoch).
fn check_one_holder(samples: &[Sample], specs: &[Spec]) -> Result<(), String> {
    let mut holder_of: std::collections::BTreeMap<u64, usize> = std::collections::BTreeMap::new();
    for s in samples.iter().filter(|s| s.serving) {
        if let Some(&other) = holder_of.get(&s.epoch) {
            if other != s.node {
                return Err(format!(
                    "split brain: {} and {} both held the lease in epoch {}",
                    specs[other].name, specs[s.node].name, s.epoch
                ));
            }
        } else {
            holder_of.insert(s.epoch, s.node);
        }
    }
    // Samples are in time order (one thread takes them one after another), so the
    // samples strictly between two of node `a` are the ones between their indices.
    for a in 0..specs.len() {
        let own: Vec<usize> = (0..samples.len())
            .filter(|&k| samples[k].node == a)
            .collect();
        for pair in own.windows(2) {
            let (a1, a2) = (&samples[pair[0]], &samples[pair[1]]);
            if !(a1.serving && a2.serving && a1.epoch == a2.epoch) {
                continue;
            }
            let between = &samples[pair[0] + 1..pair[1]];
            if let Some(b) = between
                .iter()
                .find(|b| b.node != a && b.serving && b.sent > a1.got && b.got < a2.sent)
            {
                return Err(format!(
                    "two holders at once: {} served in epoch {} while {} held epoch {} continuously",
                    specs[b.node].name, b.epoch, specs[a].name, a1.epoch
                ));
            }
        }
    }
    Ok(())
}

/// The checker itself: it must catch two holders in one epoch and a holder seen
/// inside another's continuous lease, and pass a clean handover.
#[test]
fn the_one_holder_check_catches_split_brain() {
    let root = tempfile::tempdir().expect("tempdir");
    let specs: Vec<Spec> = (1..=2)
        .map(|i| spec_in_netns(root.path(), i, "unused", Lab::ip(i), &[]))
        .collect();
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let sample = |node, ms, epoch, serving| Sample {
        node,
        sent: at(ms),
        got: at(ms + 1),
        epoch,
        serving,
    };
    // Node 1 holds epoch 3, steps down; node 2 takes epoch 4: fine.
    let handover = [
        sample(0, 0, 3, true),
        sample(1, 2, 3, false),
        sample(0, 10, 3, false),
        sample(1, 12, 4, true),
    ];
    assert_eq!(check_one_holder(&handover, &specs), Ok(()));
    // Both serve in epoch 4.
    let same_epoch = [sample(0, 0, 4, true), sample(1, 2, 4, true)];
    let e = check_one_holder(&same_epoch, &specs).expect_err("same epoch");
    assert!(e.contains("both held the lease in epoch 4"), "{e}");
    // Node 2 serves (epoch 5) while node 1 holds epoch 4 before and after.
    let overlap = [
        sample(0, 0, 4, true),
        sample(1, 2, 5, true),
        sample(0, 10, 4, true),
    ];
    let e = check_one_holder(&overlap, &specs).expect_err("overlap");
    assert!(e.contains("two holders at once"), "{e}");
}
