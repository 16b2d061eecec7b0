//! The figures in docs/benchmarks.md, measured in simulated time.
//!
//! Each benchmark prints the numbers it measured next to the goal they are held
//! against; none of them asserts a wall-clock time (the simulator's own speed is
//! reported, in seeds per second, but never tested).

use core::time::Duration;

use aurora_core::Millis;

use crate::faults::FaultProfile;
use crate::net::LinkConditions;
use crate::run::{run_seeds, Figures};
use crate::world::{Action, ProfileSpec, SimParams, World};

/// Time from a crash to "failed" at every member: 5 nodes, 5 % loss, default timing.
pub fn detection(seeds: u64, threads: usize) -> Vec<String> {
    let params = SimParams {
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
    };
    let (outcomes, secs) = run_seeds(0, seeds, &params, threads, false);
    let f = Figures::of(&outcomes);
    vec![
        format!("detection, 5 nodes, 5% loss, default (LAN) timing, {seeds} seeds, {secs:.1}s wall"),
        format!(
            "  crash -> failed at every member: p50 {} ms, p99 {} ms, max {} ms (goal p99 <= 5000 ms)",
            f.detection_p50_ms, f.detection_p99_ms, f.detection_max_ms
        ),
        format!("  seeds passing every check: {}/{}", f.passed, f.seeds),
    ]
}

/// False positives on calm seeds (loss ≤ 10 %, no partitions; crashes, pauses,
/// slow nodes, churn and drift as drawn).
pub fn false_positives(seeds: u64, threads: usize) -> Vec<String> {
    let params = SimParams {
        profile: ProfileSpec::Calm,
        ..SimParams::default()
    };
    let (outcomes, secs) = run_seeds(0, seeds, &params, threads, false);
    let f = Figures::of(&outcomes);
    vec![
        format!("false positives, 5 nodes, calm profiles (loss <= 10%, no partitions), {seeds} seeds, {secs:.1}s wall"),
        format!(
            "  live nodes declared failed: {} (goal 0); suspicions raised and refuted: {}",
            f.false_positives, f.suspicions
        ),
        format!("  seeds passing every check: {}/{}", f.passed, f.seeds),
    ]
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
        profile: ProfileSpec::Fixed(FaultProfile {
            link: LinkConditions {
                delay_ms: 10,
                jitter_ms: 5,
                ..LinkConditions::clean()
            },
            ..FaultProfile::none()
        }),
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
        .filter_map(|n| n.node.as_ref())
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
