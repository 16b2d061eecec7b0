//! The figures in docs/benchmarks.md, measured in simulated time.
//!
//! Each benchmark prints the numbers it measured next to the goal they are held
//! against; none of them asserts a wall-clock time (the simulator's own speed is
//! reported, in seeds per second, but never tested). The membership and
//! propagation benchmarks also say which bounds they missed ([`Measured`]), so
//! `aurora-sim bench ... --assert` can fail CI: their figures are in simulated
//! time, the same on any machine, so such a guard cannot flake.

use core::time::Duration;

use aurora_core::Millis;

use crate::faults::FaultProfile;
use crate::net::LinkConditions;

use crate::run::{quantile, run_seeds, Figures};
use crate::world::{Action, ProfileSpec, SimParams, Workload, World};

/// The world of the detection benchmark: 5 nodes, 5 % loss, default timing, the
/// last node crashed at 20 s and never restarted.
pub fn detection_params() -> SimParams {
    SimParams {
        profile: ProfileSpec::Fixed(FaultProfile {
            link: LinkConditions {
                loss: 0.05,
                delay_ms: 1,
                jitter_ms: 2,
                ..LinkConditions::clean()
            },
            ..FaultProfile::none()
        }),
        safety: Duration::from_secs(40),
        liveness: Duration::from_secs(20),
        script: vec![(Duration::from_secs(20), Action::Crash(4))],
        ..SimParams::default()
    }
}

/// What a guarded benchmark measured, and the bounds it missed (empty: all held).
#[derive(Clone, Debug, Default)]
pub struct Measured {
    pub lines: Vec<String>,
    pub missed: Vec<String>,
}

impl Measured {
    /// Records `what` as missed unless `held`.
    fn bound(&mut self, held: bool, what: String) {
        if !held {
            self.missed.push(what);
        }
    }
}

/// Detection p99 bound the CI guard holds with default timing. The goal (p99 <=
/// 5 s) is not reachable with memberlist's LAN defaults: the suspicion alone lasts
/// 4 s after the first missed probe (docs/benchmarks.md). 9 s is that floor plus
/// the probing tail as measured once the rumour fix was in (p99 8.28 s at 1feaedf);
/// the regression this guard is for took it to 14.4 s.
pub const DETECTION_P99_BOUND_MS: u64 = 9_000;

/// Write propagation p99 bound of the CI guard at N = 100. The goal is 1 s; it is
/// not met over more than one lucky seed (p99 of the 50 writes 1.2-1.7 s over
/// seeds 0-5, before and after the commits that moved seed 0), see
/// docs/benchmarks.md. The guard keeps the tail from growing past 2 s.
pub const PROPAGATION_P99_BOUND_MS: u64 = 2_000;

/// Copies received per node per write: the goal, held by the guard.
pub const PROPAGATION_COPIES_GOAL: f64 = 10.0;

/// One line per failed check of up to ten failed seeds, with how to replay them.
fn failed_seed_lines(outcomes: &[crate::run::SeedOutcome], replay: &str) -> Vec<String> {
    let failed: Vec<_> = outcomes.iter().filter(|o| !o.passed()).collect();
    let mut lines = Vec::new();
    for o in failed.iter().take(10) {
        for c in &o.failures {
            lines.push(format!(
                "  seed {} FAILED {}: {}",
                o.seed, c.check, c.detail
            ));
        }
        lines.push(format!(
            "    replay: aurora-sim replay --seed {} {replay}",
            o.seed
        ));
    }
    if failed.len() > 10 {
        lines.push(format!("  ... and {} more failed seeds", failed.len() - 10));
    }
    lines
}

/// Time from a crash to "failed" at every member: 5 nodes, 5 % loss, default timing.
/// Bounds: p99 <= [`DETECTION_P99_BOUND_MS`], every seed passes every check.
pub fn detection(seeds: u64, threads: usize) -> Measured {
    let params = detection_params();
    let (outcomes, secs) = run_seeds(0, seeds, &params, threads, false);
    let f = Figures::of(&outcomes);
    let mut m = Measured {
        lines: vec![
            format!("detection, 5 nodes, 5% loss, default (LAN) timing, {seeds} seeds, {secs:.1}s wall"),
            format!(
                "  crash -> failed at every member: p50 {} ms, p99 {} ms, max {} ms (goal p99 <= 5000 ms, not reachable with default timing; guard p99 <= {DETECTION_P99_BOUND_MS} ms)",
                f.detection_p50_ms, f.detection_p99_ms, f.detection_max_ms
            ),
            format!("  seeds passing every check: {}/{}", f.passed, f.seeds),
        ],
        missed: Vec::new(),
    };
    m.lines
        .extend(failed_seed_lines(&outcomes, "--bench-world detection"));
    m.bound(
        f.detection_p99_ms <= DETECTION_P99_BOUND_MS,
        format!(
            "detection p99 {} ms > {DETECTION_P99_BOUND_MS} ms",
            f.detection_p99_ms
        ),
    );
    m.bound(
        f.passed == f.seeds,
        format!(
            "detection: {} of {} seeds failed a check",
            f.seeds - f.passed,
            f.seeds
        ),
    );
    m
}

/// False positives on calm seeds (loss ≤ 10 %, no partitions; crashes, pauses,
/// slow nodes, churn and drift as drawn). Bounds: no live node declared failed,
/// every seed passes every check.
pub fn false_positives(seeds: u64, threads: usize) -> Measured {
    let params = SimParams {
        profile: ProfileSpec::Calm,
        ..SimParams::default()
    };
    let (outcomes, secs) = run_seeds(0, seeds, &params, threads, false);
    let f = Figures::of(&outcomes);
    let mut m = Measured {
        lines: vec![
            format!("false positives, 5 nodes, calm profiles (loss <= 10%, no partitions), {seeds} seeds, {secs:.1}s wall"),
            format!(
                "  live nodes declared failed: {} (goal 0); suspicions raised and refuted: {}",
                f.false_positives, f.suspicions
            ),
            format!("  seeds passing every check: {}/{}", f.passed, f.seeds),
        ],
        missed: Vec::new(),
    };
    m.lines
        .extend(failed_seed_lines(&outcomes, "--profile calm"));
    m.bound(
        f.false_positives == 0,
        format!("{} live nodes declared failed (goal 0)", f.false_positives),
    );
    m.bound(
        f.passed == f.seeds,
        format!(
            "false positives: {} of {} calm seeds failed a check",
            f.seeds - f.passed,
            f.seeds
        ),
    );
    m
}

/// No faults; 10 ms ± 5 ms links.
fn lan_10ms() -> ProfileSpec {
    ProfileSpec::Fixed(FaultProfile {
        link: LinkConditions {
            delay_ms: 10,
            jitter_ms: 5,
            ..LinkConditions::clean()
        },
        ..FaultProfile::none()
    })
}

/// Runs `w` until every node agrees on the full member list, or `limit`.
fn until_converged(w: &mut World, limit: Millis) -> Option<Millis> {
    let mut t = w.now;
    while w.obs.converged_at.is_none() && t < limit {
        t = t + Duration::from_millis(500);
        w.run_until(t);
    }
    w.obs.converged_at
}

fn cold_start_world(nodes: usize, seed: u64) -> World {
    let params = SimParams {
        nodes,
        start_spread: Duration::from_secs(2),
        // Sampling starts with the "liveness" phase, once every node has started.
        safety: Duration::from_secs(2),
        liveness: Duration::from_secs(600),
        profile: lan_10ms(),
        // Membership figures: no write workload, no lease traffic, as documented.
        workload: Workload::none(),
        failover_mode: Some(aurora_core::FailoverMode::SingleNode),
        ..SimParams::default()
    };
    World::new(seed, params)
}

/// A cluster of `nodes` started within 2 s, joining through 3 seeds: when does
/// every node see every other?
pub fn cold_start(nodes: usize, seed: u64) -> Vec<String> {
    let began = std::time::Instant::now();
    let mut w = cold_start_world(nodes, seed);
    let done = until_converged(&mut w, Millis(120_000));
    let wall = began.elapsed().as_secs_f64();
    vec![format!(
        "cold start, {nodes} nodes through 3 seeds (10 ms links): fully converged at {} (goal <= 30 s for 1000), {wall:.1}s wall",
        done.map_or("never (120 s limit)".to_string(), |t| t.to_string())
    )]
}

/// Gossip traffic per node once a cluster of each size has settled.
pub fn idle_bandwidth(sizes: &[usize], seed: u64) -> Vec<String> {
    let mut lines = vec![
        "idle gossip traffic per node (60 s window starting 120 s after convergence):".to_string(),
    ];
    for &n in sizes {
        let mut w = cold_start_world(n, seed);
        let Some(done) = until_converged(&mut w, Millis(120_000)) else {
            lines.push(format!("  N={n}: did not converge in 120 s"));
            continue;
        };
        // Let the join rumours die out before measuring.
        let start = done + Duration::from_secs(120);
        w.run_until(start);
        let before = totals(&w);
        let end = start + Duration::from_secs(60);
        w.run_until(end);
        let after = totals(&w);
        let per = |x: u64| x as f64 / (n as f64 * 60.0);
        lines.push(format!(
            "  N={n:>5}: {:.1} msgs/s, {:.0} bytes/s sent per node",
            per(after.0 - before.0),
            per(after.1 - before.1)
        ));
    }
    lines
}

fn totals(w: &World) -> (u64, u64) {
    w.nodes
        .iter()
        .filter_map(|n| n.node())
        .map(|n| {
            let m = n.metrics();
            (m.packets_out, m.bytes_out)
        })
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
}

/// Simulator speed: seeds per second per core, 5 nodes × 60 s of faults (plus the
/// liveness phase), every check but the determinism re-run.
pub fn throughput(seeds: u64, threads: usize) -> Vec<String> {
    let params = SimParams {
        safety: Duration::from_secs(60),
        liveness: Duration::from_secs(30),
        ..SimParams::default()
    };
    let (outcomes, secs) = run_seeds(0, seeds, &params, threads, false);
    let f = Figures::of(&outcomes);
    vec![format!(
        "simulator speed, 5 nodes x (60 s faults + 30 s liveness): {:.0} seeds/s on {threads} threads = {:.0} seeds/s per core (goal >= 50); {}/{} passed",
        seeds as f64 / secs,
        seeds as f64 / secs / threads as f64,
        f.passed,
        f.seeds
    )]
}

// ---- replicated state -----------------------------------------------------------

fn total_receptions(w: &World) -> u64 {
    w.nodes
        .iter()
        .filter_map(|n| n.node())
        .map(|n| {
            let s = n.view().replica_stats();
            s.applied_from_gossip + s.applied_from_sync + s.duplicates
        })
        .sum()
}

fn quiet_world(nodes: usize, seed: u64, link: LinkConditions) -> World {
    let params = SimParams {
        nodes,
        start_spread: Duration::from_secs(2),
        safety: Duration::from_secs(2),
        liveness: Duration::from_secs(3600),
        profile: ProfileSpec::Fixed(FaultProfile {
            link,
            ..FaultProfile::none()
        }),
        workload: Workload::none(),
        track_writes: true,
        // These figures are about replication, measured without lease traffic.
        failover_mode: Some(aurora_core::FailoverMode::SingleNode),
        ..SimParams::default()
    };
    World::new(seed, params)
}

/// A write's trip to every node: `writes` writes from random nodes, one every
/// 200 ms, on a settled cluster with 1 % loss and 10 ms links.
///
/// Bounds (held at N = 100, where the goal's figures are): p99 <=
/// [`PROPAGATION_P99_BOUND_MS`], <= [`PROPAGATION_COPIES_GOAL`] copies, every write
/// complete.
pub fn write_propagation(nodes: usize, writes: usize, seed: u64) -> Measured {
    let link = LinkConditions {
        loss: 0.01,
        delay_ms: 10,
        jitter_ms: 5,
        ..LinkConditions::clean()
    };
    let mut w = quiet_world(nodes, seed, link);
    let Some(done) = until_converged(&mut w, Millis(120_000)) else {
        let what = format!("write propagation, N={nodes}: membership never converged");
        return Measured {
            lines: vec![what.clone()],
            missed: vec![what],
        };
    };
    // Let the join traffic die down.
    let mut t = done + Duration::from_secs(30);
    w.run_until(t);
    let before = total_receptions(&w);
    let mut rng = aurora_core::DetRng::from_seed(seed);
    let mut sent = Vec::new();
    for k in 0..writes {
        w.run_until(t);
        let node = rng.below(nodes);
        let (id, record) = crate::world::sample_model(k, 1);
        if let Some(hlc) = w.command(node, aurora_schema::put(id, &record)) {
            sent.push((hlc, t));
        }
        t = t + Duration::from_millis(200);
    }
    w.run_until(t + Duration::from_secs(10));
    let copies = (total_receptions(&w) - before) as f64 / (nodes as f64 * sent.len().max(1) as f64);
    let mut reach: Vec<u64> = Vec::new();
    let mut incomplete = 0;
    for (hlc, at) in &sent {
        match w.obs.receipts.get(hlc) {
            Some(r) if r.len() == nodes => {
                let last = r.values().max().copied().unwrap_or(*at);
                reach.push(last.since(*at).as_millis() as u64);
            }
            _ => incomplete += 1,
        }
    }
    reach.sort_unstable();
    let p99 = quantile(&reach, 0.99);
    let mut m = Measured {
        lines: vec![format!(
            "write propagation, N={nodes}, 1% loss, 10 ms links, {} writes: every node has it after p50 {} ms, p99 {p99} ms, max {} ms; {incomplete} incomplete after 10 s; {copies:.1} copies received per node per write",
            sent.len(),
            quantile(&reach, 0.5),
            reach.last().copied().unwrap_or(0)
        )],
        missed: Vec::new(),
    };
    if nodes == 100 {
        m.bound(
            p99 <= PROPAGATION_P99_BOUND_MS,
            format!("write propagation N=100 p99 {p99} ms > {PROPAGATION_P99_BOUND_MS} ms"),
        );
        m.bound(
            copies <= PROPAGATION_COPIES_GOAL,
            format!("write propagation N=100: {copies:.1} copies per node per write > {PROPAGATION_COPIES_GOAL}"),
        );
    }
    m.bound(
        incomplete == 0 && !sent.is_empty(),
        format!(
            "write propagation N={nodes}: {incomplete} of {} writes incomplete after 10 s",
            sent.len()
        ),
    );
    m
}

/// A 60 s partition with writes on both sides, then healed: how long until every
/// node holds the same state?
pub fn partition_heal(seed: u64) -> Vec<String> {
    let nodes = 10;
    let mut w = quiet_world(
        nodes,
        seed,
        LinkConditions {
            delay_ms: 10,
            jitter_ms: 5,
            ..LinkConditions::clean()
        },
    );
    let split = Millis(10_000);
    let heal = Millis(70_000);
    w.run_until(split);
    w.at(
        Duration::from_millis(split.0),
        Action::SplitOff((0..nodes / 2).collect()),
    );
    w.at(Duration::from_millis(heal.0), Action::Heal);
    let mut rng = aurora_core::DetRng::from_seed(seed);
    let mut t = split + Duration::from_millis(500);
    let mut k = 0;
    while t < heal {
        w.run_until(t);
        let (id, record) = crate::world::sample_model(k % 50, k as u64);
        w.command(rng.below(nodes), aurora_schema::put(id, &record));
        k += 1;
        t = t + Duration::from_millis(500);
    }
    w.run_until(heal);
    let diverged = !crate::observe::digests_agree(&w.nodes);
    let mut at = heal;
    while !crate::observe::digests_agree(&w.nodes) && at < heal + Duration::from_secs(120) {
        at = at + Duration::from_millis(100);
        w.run_until(at);
    }
    vec![format!(
        "partition heal, 10 nodes split 5/5 for 60 s with {k} writes on both sides (diverged: {diverged}): digests agree {} ms after the heal (goal <= 5000 ms)",
        at.since(heal).as_millis()
    )]
}

/// Anti-entropy cost against what is actually missing, on the real messages.
pub fn anti_entropy_bytes() -> Vec<String> {
    use aurora_core::state::store::{Entry, Key, Store, Value};
    use aurora_core::wire::{encode, encoded_len, Message};
    use aurora_core::{ClusterId, NodeId};
    let n = 10_000;
    let entries: Vec<Entry> = (0..n)
        .map(|k| {
            let (id, record) = crate::world::sample_model(k, 1);
            Entry {
                key: Key::Record(aurora_schema::Collection::Models.id(), id),
                value: Some(Value::Record(aurora_schema::encode(&record))),
                hlc: aurora_core::Hlc {
                    wall: 1_000 + k as u64,
                    logical: 0,
                    origin: aurora_core::Origin::new(
                        NodeId(1 + (k % 3) as u64),
                        aurora_core::Life(1),
                    ),
                },
                seq: 1 + (k / 3) as u64,
            }
        })
        .collect();
    let mut lines = vec![format!(
        "anti-entropy bytes on the wire vs bytes missing ({n} records):"
    )];
    for (label, keep) in [
        (
            "missing the newest 10% (a node that was down)",
            Box::new(|k: usize| k < n * 9 / 10) as Box<dyn Fn(usize) -> bool>,
        ),
        (
            "missing every 10th (scattered loss)",
            Box::new(|k: usize| !k.is_multiple_of(10)),
        ),
        ("missing 1 record", Box::new(|k: usize| k != n / 2)),
    ] {
        let mut full = Store::default();
        let mut partial = Store::default();
        for (k, e) in entries.iter().enumerate() {
            full.merge(e.clone());
            if keep(k) {
                partial.merge(e.clone());
            }
        }
        let missing: usize = entries
            .iter()
            .enumerate()
            .filter(|(k, _)| !keep(*k))
            .map(|(_, e)| encoded_len(e))
            .sum();
        let cluster = ClusterId(1);
        let request = Message::SyncRequest {
            newest: partial.newest(),
            digest: partial.digest(),
            vv: partial.version_vector(),
        };
        let (delta, _) = full.delta_for(&partial.version_vector(), usize::MAX);
        let response = Message::SyncResponse {
            newest: full.newest(),
            digest: full.digest(),
            vv: full.version_vector(),
            delta,
            more: false,
        };
        let life = aurora_core::Life(1);
        let wire = encode(cluster, NodeId(9), life, &request).len()
            + encode(cluster, NodeId(1), life, &response).len();
        lines.push(format!(
            "  {label}: {wire} bytes sent for {missing} bytes missing = {:.2}x (goal <= 2x)",
            wire as f64 / missing.max(1) as f64
        ));
    }
    lines
}

/// Store::merge throughput, median of 5 runs over 1,000,000 entries (wall clock).
pub fn merge_throughput() -> Vec<String> {
    // 200,000 keys (a large deployment's counters) and 10,000 (a typical one).
    [1000, 50]
        .into_iter()
        .flat_map(merge_throughput_over)
        .collect()
}

/// Merge throughput with `budgets` × 4 periods × 50 nodes keys.
fn merge_throughput_over(budget_count: usize) -> Vec<String> {
    use aurora_core::state::store::{Entry, Key, Store, Usage, Value};
    use aurora_core::NodeId;
    use aurora_schema::RecordId;
    let n = 1_000_000usize;
    let budgets: Vec<RecordId> = (0..budget_count)
        .filter_map(|b| RecordId::new(format!("budget-{b}")).ok())
        .collect();
    let mut rng = aurora_core::DetRng::from_seed(1);
    // Each origin numbers its own writes 1, 2, 3, ... as a real node does.
    let mut next_seq = [0u64; 51];
    let entries: Vec<Entry> = (0..n)
        .map(|k| {
            let n = 1 + rng.below(50) as u64;
            next_seq[n as usize] += 1;
            let origin = aurora_core::Origin::new(NodeId(n), aurora_core::Life(1));
            Entry {
                key: Key::Usage {
                    budget: budgets[rng.below(budgets.len())].clone(),
                    period: rng.below(4) as u64,
                    node: origin,
                },
                value: Some(Value::Usage(Usage {
                    spend_nanos: k as u64,
                    requests: k as u64,
                    tokens: 0,
                })),
                hlc: aurora_core::Hlc {
                    wall: rng.below(1_000_000) as u64,
                    logical: 0,
                    origin,
                },
                seq: next_seq[n as usize],
            }
        })
        .collect();
    let mut rates = Vec::new();
    for _ in 0..5 {
        let batch = entries.clone();
        let began = std::time::Instant::now();
        let mut store = Store::default();
        for e in batch {
            store.merge(e);
        }
        rates.push(n as f64 / began.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    vec![format!(
        "store merge throughput, 1,000,000 entries into {} keys, one core: median {:.2} M entries/s (runs: {}) (goal >= 1 M/s)",
        budget_count * 4 * 50,
        rates[2] / 1e6,
        rates.iter().map(|r| format!("{:.2}", r / 1e6)).collect::<Vec<_>>().join(", ")
    )]
}

/// A node joining a cluster that holds 20,000 records (several MB): membership
/// first, state in chunks after.
pub fn snapshot_join(seed: u64) -> Vec<String> {
    let params = SimParams {
        nodes: 4,
        safety: Duration::from_secs(2),
        liveness: Duration::from_secs(600),
        profile: lan_10ms(),
        workload: Workload::none(),
        preload_records: 20_000,
        record_events: true,
        ..SimParams::default()
    };
    let bytes: usize = 20_000 * 110;
    let mut w = World::new(seed, params);
    let join_at = Millis(10_000);
    w.at(Duration::from_millis(join_at.0), Action::Join);
    w.run_until(join_at);
    let mut at = join_at;
    let mut member_at = None;
    while !(crate::observe::digests_agree(&w.nodes) && w.nodes.len() == 5)
        && at < join_at + Duration::from_secs(120)
    {
        at = at + Duration::from_millis(50);
        w.run_until(at);
        if member_at.is_none() && crate::observe::views_agree(&w.nodes) && w.nodes.len() == 5 {
            member_at = Some(at);
        }
    }
    let chunk = w.params.state.sync_chunk_bytes;
    vec![format!(
        "join with 20,000 records (~{} KB) in state: full member list after {} ms, full state after {} ms, in chunks of <= {} KB",
        bytes / 1024,
        member_at.map_or(-1, |m| m.since(join_at).as_millis() as i64),
        at.since(join_at).as_millis(),
        chunk / 1024
    )]
}

// ---- failover ----------------------------------------------------------------------

fn failover_params(
    mode: aurora_core::FailoverMode,
    nodes: usize,
    script: Vec<(Duration, Action)>,
) -> SimParams {
    SimParams {
        nodes,
        profile: ProfileSpec::Fixed(FaultProfile {
            link: LinkConditions {
                delay_ms: 1,
                jitter_ms: 2,
                ..LinkConditions::clean()
            },
            ..FaultProfile::none()
        }),
        safety: Duration::from_secs(60),
        liveness: Duration::from_secs(10),
        workload: Workload::none(),
        failover_mode: Some(mode),
        script,
        ..SimParams::default()
    }
}

/// Leader crash to a new lease holder, and the leaderless window of a planned
/// switchover, with default timing (lease 3 s, renew every 1 s).
pub fn failover(seeds: u64, threads: usize) -> Vec<String> {
    use aurora_core::FailoverMode;
    let mut lines = Vec::new();
    for nodes in [3, 5] {
        let crash = failover_params(
            FailoverMode::ActivePassive,
            nodes,
            vec![(Duration::from_secs(30), Action::CrashLeader)],
        );
        let (outcomes, _) = run_seeds(0, seeds, &crash, threads, false);
        let mut t: Vec<u64> = outcomes.iter().filter_map(|o| o.failover_ms).collect();
        t.sort_unstable();
        let passed = outcomes.iter().filter(|o| o.passed()).count();
        lines.push(format!(
            "failover, {nodes} nodes, active_passive, leader crash -> new lease holder: p50 {} ms, p99 {} ms, max {} ms over {} crashes (goal p99 <= 3000 ms); {passed}/{seeds} seeds pass every check",
            quantile(&t, 0.5),
            quantile(&t, 0.99),
            t.last().copied().unwrap_or(0),
            t.len()
        ));
    }
    // Two serving nodes, with and without a witness.
    for witness in [false, true] {
        let nodes = if witness { 3 } else { 2 };
        let mut params = failover_params(
            FailoverMode::ActivePassive,
            nodes,
            vec![(Duration::from_secs(30), Action::CrashLeader)],
        );
        params.witness = witness;
        let (outcomes, _) = run_seeds(0, seeds.min(200), &params, threads, false);
        let mut t: Vec<u64> = outcomes.iter().filter_map(|o| o.failover_ms).collect();
        t.sort_unstable();
        let label = if witness {
            "2 serving + 1 witness"
        } else {
            "2 nodes, no witness"
        };
        let outcome = if t.is_empty() {
            "no new leader after the crash (by design: 1 of 2 voters is no majority; status says can_fail_over=false)".to_string()
        } else {
            format!(
                "new lease holder after p50 {} ms, p99 {} ms in {} of {} seeds",
                quantile(&t, 0.5),
                quantile(&t, 0.99),
                t.len(),
                outcomes.len()
            )
        };
        let safe = outcomes
            .iter()
            .all(|o| o.failures.iter().all(|f| f.check != "leader-safety"));
        lines.push(format!(
            "{label}, leader crash: {outcome}; never two leaders: {safe}"
        ));
    }
    let switch = failover_params(
        FailoverMode::ActivePassive,
        3,
        vec![(Duration::from_secs(30), Action::Switchover)],
    );
    let (outcomes, _) = run_seeds(0, seeds, &switch, threads, false);
    let mut gaps: Vec<u64> = outcomes
        .iter()
        .filter_map(|o| o.switchover_gap_ms)
        .collect();
    gaps.sort_unstable();
    lines.push(format!(
        "planned switchover, 3 nodes: time without a lease holder p50 {} ms, p99 {} ms, max {} ms over {} switchovers (goal <= one renewal, 1000 ms)",
        quantile(&gaps, 0.5),
        quantile(&gaps, 0.99),
        gaps.last().copied().unwrap_or(0),
        gaps.len()
    ));
    lines
}
