//! Running seeds: one at a time with every check, or thousands across all cores.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crate::checks::CheckTally;
use crate::observe::CheckFailure;
use crate::world::{SimParams, World};

/// The result of one seed.
#[derive(Clone, Debug)]
pub struct SeedOutcome {
    pub seed: u64,
    pub trace_hash: u64,
    pub profile: String,
    pub failures: Vec<CheckFailure>,
    /// How often each check ran and failed in this seed (all its runs).
    pub checks: CheckTally,
    pub detection_ms: Vec<u64>,
    /// From the start of the liveness phase to agreeing views.
    pub convergence_ms: Option<u64>,
    /// From the end of the workload to equal state digests everywhere.
    pub state_convergence_ms: Option<u64>,
    pub acked_writes: usize,
    /// A scripted leader crash to the next lease holder.
    pub failover_ms: Option<u64>,
    /// The longest time without a lease holder after a scripted switchover.
    pub switchover_gap_ms: Option<u64>,
    pub false_positives: usize,
    pub suspicions: u64,
    pub messages_per_node_s: f64,
    pub bytes_per_node_s: f64,
}

impl SeedOutcome {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Runs one seed to the end and collects its checks and figures.
pub fn simulate(seed: u64, params: &SimParams) -> (World, SeedOutcome) {
    let mut world = World::new(seed, params.clone());
    world.run();
    let secs = world.now.0 as f64 / 1000.0;
    let (mut msgs, mut bytes, mut count) = (0u64, 0u64, 0usize);
    for n in world.nodes.iter().filter_map(|n| n.node()) {
        let m = n.metrics();
        msgs += m.packets_out;
        bytes += m.bytes_out;
        count += 1;
    }
    let per = |x: u64| x as f64 / (count.max(1) as f64 * secs.max(1e-9));
    let obs = &world.obs;
    let outcome = SeedOutcome {
        seed,
        trace_hash: world.trace.hash(),
        profile: world.profile.describe(),
        failures: obs.failures.clone(),
        checks: obs.checks.clone(),
        detection_ms: obs.detection_ms.clone(),
        convergence_ms: obs
            .converged_at
            .zip(obs.liveness_start)
            .map(|(c, s)| c.since(s).as_millis() as u64),
        state_convergence_ms: obs.state_converged_at.map(|c| {
            let quiet = world.end() - crate::world::QUIET_TAIL;
            c.since(quiet).as_millis() as u64
        }),
        acked_writes: obs.acked_writes(),
        failover_ms: obs.failover_ms,
        switchover_gap_ms: obs.switchover_gap_ms,
        false_positives: obs.false_positives.len(),
        suspicions: obs.suspicions,
        messages_per_node_s: per(msgs),
        bytes_per_node_s: per(bytes),
    };
    (world, outcome)
}

/// Runs one seed with every check: the run's own checks, `no-panic` (a panic in
/// the core or the simulator fails the seed instead of the process), and
/// `determinism` (a second run must produce the same trace hash).
pub fn run_seed(seed: u64, params: &SimParams, check_determinism: bool) -> SeedOutcome {
    let once = || panic::catch_unwind(AssertUnwindSafe(|| simulate(seed, params).1));
    let mut outcome = match once() {
        Ok(o) => o,
        Err(payload) => return panicked(seed, payload),
    };
    outcome.checks.ran("no-panic", true);
    if check_determinism {
        let again = once();
        let same = matches!(&again, Ok(a) if a.trace_hash == outcome.trace_hash);
        outcome.checks.ran("determinism", same);
        match again {
            Ok(again) if again.trace_hash == outcome.trace_hash => {}
            Ok(again) => outcome.failures.push(CheckFailure {
                check: "determinism",
                detail: format!(
                    "trace hash {:016x} then {:016x}",
                    outcome.trace_hash, again.trace_hash
                ),
            }),
            Err(payload) => return panicked(seed, payload),
        }
    }
    outcome
}

fn panicked(seed: u64, payload: Box<dyn std::any::Any + Send>) -> SeedOutcome {
    let msg = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "non-string panic".into());
    SeedOutcome {
        seed,
        trace_hash: 0,
        profile: String::new(),
        failures: vec![CheckFailure {
            check: "no-panic",
            detail: msg,
        }],
        checks: {
            let mut c = CheckTally::default();
            c.ran("no-panic", false);
            c
        },
        detection_ms: Vec::new(),
        convergence_ms: None,
        state_convergence_ms: None,
        acked_writes: 0,
        failover_ms: None,
        switchover_gap_ms: None,
        false_positives: 0,
        suspicions: 0,
        messages_per_node_s: 0.0,
        bytes_per_node_s: 0.0,
    }
}

/// Runs seeds `start..start + count` on `threads` threads; outcomes by seed.
pub fn run_seeds(
    start: u64,
    count: u64,
    params: &SimParams,
    threads: usize,
    check_determinism: bool,
) -> (Vec<SeedOutcome>, f64) {
    let next = AtomicU64::new(start);
    let results = Mutex::new(Vec::with_capacity(count as usize));
    let began = Instant::now();
    // Silence the default panic message: a panicking seed is reported as a failure.
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= start + count {
                    break;
                }
                let outcome = run_seed(seed, params, check_determinism);
                results
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(outcome);
            });
        }
    });
    panic::set_hook(hook);
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|o| o.seed);
    (results, began.elapsed().as_secs_f64())
}

/// Figures over many seeds.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    pub seeds: usize,
    pub passed: usize,
    pub detections: usize,
    pub detection_p50_ms: u64,
    pub detection_p99_ms: u64,
    pub detection_max_ms: u64,
    pub convergence_p50_ms: u64,
    pub convergence_p99_ms: u64,
    pub convergence_max_ms: u64,
    pub state_convergence_p99_ms: u64,
    pub state_convergence_max_ms: u64,
    pub acked_writes: usize,
    pub false_positives: usize,
    pub suspicions: u64,
    pub messages_per_node_s: f64,
    pub bytes_per_node_s: f64,
}

/// The `q`-quantile (nearest rank) of a sorted slice; 0 when empty.
pub fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

impl Figures {
    pub fn of(outcomes: &[SeedOutcome]) -> Figures {
        let mut det: Vec<u64> = outcomes
            .iter()
            .flat_map(|o| o.detection_ms.iter().copied())
            .collect();
        det.sort_unstable();
        let mut conv: Vec<u64> = outcomes.iter().filter_map(|o| o.convergence_ms).collect();
        conv.sort_unstable();
        let mut state: Vec<u64> = outcomes
            .iter()
            .filter_map(|o| o.state_convergence_ms)
            .collect();
        state.sort_unstable();
        let n = outcomes.len().max(1) as f64;
        Figures {
            seeds: outcomes.len(),
            passed: outcomes.iter().filter(|o| o.passed()).count(),
            detections: det.len(),
            detection_p50_ms: quantile(&det, 0.50),
            detection_p99_ms: quantile(&det, 0.99),
            detection_max_ms: det.last().copied().unwrap_or(0),
            convergence_p50_ms: quantile(&conv, 0.50),
            convergence_p99_ms: quantile(&conv, 0.99),
            convergence_max_ms: conv.last().copied().unwrap_or(0),
            state_convergence_p99_ms: quantile(&state, 0.99),
            state_convergence_max_ms: state.last().copied().unwrap_or(0),
            acked_writes: outcomes.iter().map(|o| o.acked_writes).sum(),
            false_positives: outcomes.iter().map(|o| o.false_positives).sum(),
            suspicions: outcomes.iter().map(|o| o.suspicions).sum(),
            messages_per_node_s: outcomes.iter().map(|o| o.messages_per_node_s).sum::<f64>() / n,
            bytes_per_node_s: outcomes.iter().map(|o| o.bytes_per_node_s).sum::<f64>() / n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_nearest_rank() {
        let xs: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&xs, 0.5), 50);
        assert_eq!(quantile(&xs, 0.99), 99);
        assert_eq!(quantile(&xs, 1.0), 100);
        assert_eq!(quantile(&[], 0.5), 0);
        assert_eq!(quantile(&[7], 0.99), 7);
    }
}
