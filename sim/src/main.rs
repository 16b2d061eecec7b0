//! `aurora-sim`: run seeds of the deterministic simulator, or replay one.
//!
//! ```text
//! aurora-sim run --seeds N [--start S] [--nodes K] [--duration SECS] [--threads T]
//! aurora-sim replay --seed S [--nodes K] [--duration SECS]
//! aurora-sim scenario NAME [--seed S]      (names: aurora-sim scenario --list)
//! aurora-sim bench detection|false-positives|cold-start|idle-bandwidth|throughput|all
//! ```

use std::process::ExitCode;
use std::time::Duration;

use aurora_sim::faults::FaultProfile;
use aurora_sim::run::{run_seeds, simulate, Figures};
use aurora_sim::scenario;
use aurora_sim::{bench, ProfileSpec, SimParams};

const USAGE: &str = "usage:
  aurora-sim run --seeds N [--start S] [--nodes K] [--duration SECS] [--liveness SECS] [--threads T] [--no-determinism]
  aurora-sim replay --seed S [--nodes K] [--duration SECS] [--liveness SECS]
  aurora-sim scenario NAME [--seed S]    (aurora-sim scenario --list)
  aurora-sim bench detection|false-positives|cold-start|idle-bandwidth|throughput|
                   write-propagation|partition-heal|anti-entropy|merge|snapshot|failover|all [--seeds N] [--nodes K] [--assert]
options: --assert makes bench exit 1 when detection, false-positives or write-propagation misses a bound;
         --bench-world detection runs and replays the detection benchmark's world (give it first); --profile drawn|calm|none selects the fault profile of run and replay (default drawn);
         --failover-mode single_node|active_passive|active_active (default: drawn per seed);
         --crash-at SECS crashes the last node at SECS (as the detection bench does)";

/// Parsed command-line options.
struct Opts {
    seeds: u64,
    start: u64,
    params: SimParams,
    threads: usize,
    determinism: bool,
    /// `bench`: exit 1 when a guarded benchmark misses a bound.
    assert: bool,
    rest: Vec<String>,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        seeds: 100,
        start: 0,
        params: SimParams::default(),
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        determinism: true,
        assert: false,
        rest: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            let v = it.next().ok_or_else(|| format!("{name} needs a value"))?;
            v.parse::<u64>()
                .map_err(|_| format!("{name} expects a whole number, got {v:?}"))
        };
        match a.as_str() {
            "--seeds" => o.seeds = value("--seeds")?,
            "--start" | "--seed" => o.start = value(a)?,
            "--nodes" => o.params.nodes = value("--nodes")?.max(1) as usize,
            "--duration" => o.params.safety = Duration::from_secs(value("--duration")?),
            "--liveness" => o.params.liveness = Duration::from_secs(value("--liveness")?),
            "--threads" => o.threads = value("--threads")?.max(1) as usize,
            "--no-determinism" => o.determinism = false,
            "--assert" => o.assert = true,
            "--crash-at" => {
                let at = Duration::from_secs(value("--crash-at")?);
                let last = o.params.nodes.saturating_sub(1);
                o.params.script.push((at, aurora_sim::Action::Crash(last)));
            }
            "--failover-mode" => {
                use aurora_core::failover::FailoverMode;
                o.params.failover_mode = Some(match it.next().map(String::as_str) {
                    Some("single_node") => FailoverMode::SingleNode,
                    Some("active_passive") => FailoverMode::ActivePassive,
                    Some("active_active") => FailoverMode::ActiveActive,
                    other => {
                        return Err(format!(
                            "--failover-mode expects single_node, active_passive or active_active, got {other:?}"
                        ))
                    }
                });
            }
            "--bench-world" => {
                o.params = match it.next().map(String::as_str) {
                    Some("detection") => bench::detection_params(),
                    other => return Err(format!("--bench-world expects detection, got {other:?}")),
                }
            }
            "--profile" => {
                o.params.profile = match it.next().map(String::as_str) {
                    Some("drawn") => ProfileSpec::Drawn,
                    Some("calm") => ProfileSpec::Calm,
                    Some("none") => ProfileSpec::Fixed(FaultProfile::none()),
                    other => {
                        return Err(format!(
                            "--profile expects drawn, calm or none, got {other:?}"
                        ))
                    }
                }
            }
            other if other.starts_with("--") && other != "--list" => {
                return Err(format!("unknown option {other}"))
            }
            other => o.rest.push(other.to_string()),
        }
    }
    Ok(o)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let opts = match parse(&args[1..]) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("aurora-sim: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match cmd.as_str() {
        "run" => run(&opts),
        "replay" => replay(&opts),
        "scenario" => run_scenario(&opts),
        "bench" => run_bench(&opts, &args[1..]),
        _ => {
            eprintln!("aurora-sim: unknown command {cmd:?}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// The flags that reproduce `opts`' world, for replay commands.
fn world_flags(p: &SimParams) -> String {
    format!(
        "--nodes {} --duration {} --liveness {}",
        p.nodes,
        p.safety.as_secs(),
        p.liveness.as_secs()
    )
}

fn run(o: &Opts) -> ExitCode {
    println!(
        "running seeds {}..{} ({} nodes, {}s faults + {}s liveness) on {} threads",
        o.start,
        o.start + o.seeds,
        o.params.nodes,
        o.params.safety.as_secs(),
        o.params.liveness.as_secs(),
        o.threads
    );
    let (outcomes, secs) = run_seeds(o.start, o.seeds, &o.params, o.threads, o.determinism);
    let failed: Vec<_> = outcomes.iter().filter(|x| !x.passed()).collect();
    for f in &failed {
        for c in &f.failures {
            println!("seed {} FAILED {}: {}", f.seed, c.check, c.detail);
        }
        println!("  profile: {}", f.profile);
        println!(
            "  replay: cargo run --release -p aurora-sim -- replay --seed {} {}",
            f.seed,
            world_flags(&o.params)
        );
    }
    let fig = Figures::of(&outcomes);
    let runs = if o.determinism { 2.0 } else { 1.0 };
    println!(
        "seeds/s: {:.1} ({:.1} per core; each seed run {}x)",
        o.seeds as f64 / secs,
        o.seeds as f64 / secs / o.threads as f64,
        runs
    );
    println!(
        "detection (crash -> failed at every member): n={} p50 {} ms, p99 {} ms, max {} ms",
        fig.detections, fig.detection_p50_ms, fig.detection_p99_ms, fig.detection_max_ms
    );
    println!(
        "convergence after faults stop: p50 {} ms, p99 {} ms, max {} ms",
        fig.convergence_p50_ms, fig.convergence_p99_ms, fig.convergence_max_ms
    );
    println!(
        "state: {} acknowledged writes; digests equal after the workload stopped: p99 {} ms, max {} ms",
        fig.acked_writes, fig.state_convergence_p99_ms, fig.state_convergence_max_ms
    );
    println!(
        "false positives: {} (suspicions raised: {})",
        fig.false_positives, fig.suspicions
    );
    println!(
        "traffic per node: {:.1} msgs/s, {:.0} bytes/s",
        fig.messages_per_node_s, fig.bytes_per_node_s
    );
    // Which checks were on, and how often each ran: a green run is only as good as them.
    let mut checks = aurora_sim::CheckTally::default();
    for outcome in &outcomes {
        checks.merge(&outcome.checks);
    }
    for line in checks.table() {
        println!("{line}");
    }
    println!(
        "{} passed, {} failed",
        fig.passed,
        outcomes.len() - fig.passed
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn replay(o: &Opts) -> ExitCode {
    let mut params = o.params.clone();
    params.trace = true;
    let (mut world, outcome) = simulate(o.start, &params);
    println!("seed {}: {}", o.start, outcome.profile);
    for line in world.trace.take_lines() {
        println!("{line}");
    }
    // Where each live node's failover stands at the end: what a leadership verdict
    // is about.
    for n in &world.nodes {
        if let Some(node) = n.node() {
            let fo = node.failover();
            let s = fo.status();
            let roster = fo
                .roster()
                .map_or("none".to_string(), |r| r.version.to_string());
            println!(
                "end {} ({:?}): leader {:?} {} holds {} roster {roster} {:?} reason {:?}",
                n.id,
                node.phase(),
                s.leader,
                s.epoch,
                s.this_node_holds_lease,
                s.voters,
                s.reason
            );
        }
    }
    for c in &outcome.failures {
        println!("FAILED {}: {}", c.check, c.detail);
    }
    println!("trace-hash: {:016x}", outcome.trace_hash);
    if outcome.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn run_scenario(o: &Opts) -> ExitCode {
    let Some(name) = o.rest.first() else {
        eprintln!("aurora-sim: scenario needs a name\n{USAGE}");
        return ExitCode::from(2);
    };
    if name == "--list" {
        for s in scenario::ALL {
            println!("{:<32} {}", s.name, s.about);
        }
        return ExitCode::SUCCESS;
    }
    let Some(s) = scenario::ALL.iter().find(|s| s.name == name) else {
        eprintln!("aurora-sim: unknown scenario {name:?} (try --list)");
        return ExitCode::from(2);
    };
    let report = (s.run)(o.start);
    for line in &report.lines {
        println!("{line}");
    }
    for c in report.failures.iter().take(10) {
        println!("FAILED {}: {}", c.check, c.detail);
    }
    if report.failures.len() > 10 {
        println!("... and {} more failures", report.failures.len() - 10);
    }
    let failed = usize::from(!report.failures.is_empty());
    println!("{} passed, {} failed", 1 - failed, failed);
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn run_bench(o: &Opts, args: &[String]) -> ExitCode {
    let Some(name) = o.rest.first() else {
        eprintln!("aurora-sim: bench needs a name\n{USAGE}");
        return ExitCode::from(2);
    };
    let seeds_given = args.iter().any(|a| a == "--seeds");
    let nodes_given = args.iter().any(|a| a == "--nodes");
    let seeds = |default: u64| if seeds_given { o.seeds } else { default };
    let nodes = |default: usize| if nodes_given { o.params.nodes } else { default };
    let mut lines = Vec::new();
    let mut missed = Vec::new();
    let mut guarded = |m: bench::Measured, lines: &mut Vec<String>| {
        lines.extend(m.lines);
        missed.extend(m.missed);
    };
    let all = name == "all";
    if all || name == "detection" {
        guarded(bench::detection(seeds(1000), o.threads), &mut lines);
    }
    if all || name == "false-positives" {
        guarded(bench::false_positives(seeds(10_000), o.threads), &mut lines);
    }
    if all || name == "cold-start" {
        lines.extend(bench::cold_start(nodes(1000), o.start));
    }
    if all || name == "idle-bandwidth" {
        let sizes: Vec<usize> = if nodes_given {
            vec![o.params.nodes]
        } else {
            vec![10, 100, 1000]
        };
        lines.extend(bench::idle_bandwidth(&sizes, o.start));
    }
    if all || name == "throughput" {
        lines.extend(bench::throughput(seeds(1000), o.threads));
    }
    if all || name == "write-propagation" {
        let sizes: Vec<usize> = if nodes_given {
            vec![o.params.nodes]
        } else {
            vec![100, 1000]
        };
        for n in sizes {
            guarded(bench::write_propagation(n, 50, o.start), &mut lines);
        }
    }
    if all || name == "partition-heal" {
        lines.extend(bench::partition_heal(o.start));
    }
    if all || name == "anti-entropy" {
        lines.extend(bench::anti_entropy_bytes());
    }
    if all || name == "merge" {
        lines.extend(bench::merge_throughput());
    }
    if all || name == "snapshot" {
        lines.extend(bench::snapshot_join(o.start));
    }
    if all || name == "failover" {
        lines.extend(bench::failover(seeds(1000), o.threads));
    }
    if lines.is_empty() {
        eprintln!("aurora-sim: unknown bench {name:?}\n{USAGE}");
        return ExitCode::from(2);
    }
    for l in lines {
        println!("{l}");
    }
    for m in &missed {
        println!("MISSED: {m}");
    }
    if o.assert && !missed.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
