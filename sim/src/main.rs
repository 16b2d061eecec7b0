//! `aurora-sim`: run seeds of the deterministic simulator, or replay one.
//!
//! ```text
//! aurora-sim run --seeds N [--start S] [--nodes K] [--duration SECS] [--threads T]
//! aurora-sim replay --seed S [--nodes K] [--duration SECS]
//! aurora-sim scenario NAME [--seed S]      (names: aurora-sim scenario --list)
//! aurora-sim bench detection|false-positives|cold-start|idle-bandwidth|throughput|all
//! ```
//!
//! Flags are parsed by clap (`aurora-sim --help`, `aurora-sim run --help`); a bad flag
//! exits 2 with clap's message. Every command takes the same world flags, as the
//! hand-written parser before it did, so every documented invocation keeps working.

use std::process::ExitCode;
use std::time::Duration;

use aurora_core::FailoverMode;
use aurora_sim::faults::FaultProfile;
use aurora_sim::run::{run_seeds, simulate, Figures};
use aurora_sim::scenario;
use aurora_sim::{bench, ProfileSpec, SimParams};
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Deterministic simulator of aurora-core clusters: seeded worlds over a faulty
/// network, with named invariant checks.
#[derive(Parser, Debug)]
#[command(name = "aurora-sim", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run many seeds with every check; ends with the table of checks it ran.
    Run(Flags),
    /// Run one seed with a readable trace and its trace-hash.
    Replay(Flags),
    /// Run a named case (`aurora-sim scenario --list`).
    Scenario {
        /// The scenario's name.
        name: Option<String>,
        /// List the scenarios.
        #[arg(long)]
        list: bool,
        #[command(flatten)]
        flags: Flags,
    },
    /// Measure: detection, false-positives, cold-start, idle-bandwidth, throughput,
    /// write-propagation, partition-heal, anti-entropy, merge, snapshot, failover or all.
    Bench {
        /// Which benchmark (or `all`).
        name: String,
        #[command(flatten)]
        flags: Flags,
    },
}

/// The flags every command takes (each means what it meant before clap).
#[derive(Args, Debug, Clone)]
struct Flags {
    /// Seeds to run (run: default 100; bench: each benchmark's own default).
    #[arg(long, value_name = "N")]
    seeds: Option<u64>,
    /// The first seed (`--seed` is the same flag: replay's and scenario's seed).
    #[arg(long, visible_alias = "seed", value_name = "S", default_value_t = 0)]
    start: u64,
    /// Nodes at start (at least 1).
    #[arg(long, value_name = "K")]
    nodes: Option<u64>,
    /// Seconds of the fault phase.
    #[arg(long, value_name = "SECS")]
    duration: Option<u64>,
    /// Seconds of the liveness phase (faults healed).
    #[arg(long, value_name = "SECS")]
    liveness: Option<u64>,
    /// Threads (default: the available cores).
    #[arg(long, value_name = "T")]
    threads: Option<u64>,
    /// Run each seed once, without the determinism re-run.
    #[arg(long)]
    no_determinism: bool,
    /// bench: exit 1 when detection, false-positives or write-propagation misses a bound.
    #[arg(long)]
    assert: bool,
    /// Crash the last node at SECS (as the detection bench does).
    #[arg(long, value_name = "SECS")]
    crash_at: Option<u64>,
    /// The fault profile of run and replay.
    #[arg(long, value_enum, default_value_t = Profile::Drawn)]
    profile: Profile,
    /// The failover mode (default: drawn per seed).
    #[arg(long, value_enum)]
    failover_mode: Option<Mode>,
    /// Run and replay the world of a benchmark (its parameters; other world flags
    /// apply on top).
    #[arg(long, value_enum)]
    bench_world: Option<BenchWorld>,
    /// Add the quota workload: a holder per node admitting against one
    /// cluster-wide limit (100 a 10 s window, 50 attempts/s), checked by
    /// `quota-bound` after every admission (the failover mode is then never
    /// single_node).
    #[arg(long)]
    quota: bool,
}

#[derive(ValueEnum, Copy, Clone, Debug)]
enum Profile {
    Drawn,
    Calm,
    None,
}

#[derive(ValueEnum, Copy, Clone, Debug)]
#[value(rename_all = "snake_case")]
enum Mode {
    SingleNode,
    ActivePassive,
    ActiveActive,
}

#[derive(ValueEnum, Copy, Clone, Debug)]
enum BenchWorld {
    Detection,
}

/// Parsed command-line options.
struct Opts {
    seeds: u64,
    start: u64,
    params: SimParams,
    threads: usize,
    determinism: bool,
    /// `bench`: exit 1 when a guarded benchmark misses a bound.
    assert: bool,
    /// `--seeds` / `--nodes` were given (bench keeps its own defaults otherwise).
    seeds_given: bool,
    nodes_given: bool,
}

impl From<&Flags> for Opts {
    fn from(f: &Flags) -> Opts {
        let mut params = match f.bench_world {
            Some(BenchWorld::Detection) => bench::detection_params(),
            None => SimParams::default(),
        };
        if let Some(n) = f.nodes {
            params.nodes = n.max(1) as usize;
        }
        if let Some(secs) = f.duration {
            params.safety = Duration::from_secs(secs);
        }
        if let Some(secs) = f.liveness {
            params.liveness = Duration::from_secs(secs);
        }
        if let Some(secs) = f.crash_at {
            let last = params.nodes.saturating_sub(1);
            params
                .script
                .push((Duration::from_secs(secs), aurora_sim::Action::Crash(last)));
        }
        if f.quota {
            params.workload.quota = Some(aurora_sim::QuotaLoad::default());
        }
        if let Some(mode) = f.failover_mode {
            params.failover_mode = Some(match mode {
                Mode::SingleNode => FailoverMode::SingleNode,
                Mode::ActivePassive => FailoverMode::ActivePassive,
                Mode::ActiveActive => FailoverMode::ActiveActive,
            });
        }
        // Only an explicit choice replaces the profile a bench world brings.
        match f.profile {
            Profile::Drawn if f.bench_world.is_some() => {}
            Profile::Drawn => params.profile = ProfileSpec::Drawn,
            Profile::Calm => params.profile = ProfileSpec::Calm,
            Profile::None => params.profile = ProfileSpec::Fixed(FaultProfile::none()),
        }
        Opts {
            seeds: f.seeds.unwrap_or(100),
            start: f.start,
            params,
            threads: f.threads.map_or_else(
                || std::thread::available_parallelism().map_or(1, |n| n.get()),
                |t| t.max(1) as usize,
            ),
            determinism: !f.no_determinism,
            assert: f.assert,
            seeds_given: f.seeds.is_some(),
            nodes_given: f.nodes.is_some(),
        }
    }
}

fn main() -> ExitCode {
    // Bad flags: clap prints its message and exits 2; --help and --version exit 0.
    let cli = Cli::parse();
    match &cli.command {
        Cmd::Run(f) => run(&Opts::from(f)),
        Cmd::Replay(f) => replay(&Opts::from(f)),
        Cmd::Scenario { name, list, flags } => run_scenario(&Opts::from(flags), name, *list),
        Cmd::Bench { name, flags } => run_bench(&Opts::from(flags), name),
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
            let fo = node.view();
            let s = fo.failover_status();
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

fn run_scenario(o: &Opts, name: &Option<String>, list: bool) -> ExitCode {
    if list {
        for s in scenario::ALL {
            println!("{:<32} {}", s.name, s.about);
        }
        return ExitCode::SUCCESS;
    }
    let Some(name) = name else {
        eprintln!("aurora-sim: scenario needs a name (aurora-sim scenario --list)");
        return ExitCode::from(2);
    };
    let Some(s) = scenario::ALL.iter().find(|s| s.name == *name) else {
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

fn run_bench(o: &Opts, name: &str) -> ExitCode {
    let (seeds_given, nodes_given) = (o.seeds_given, o.nodes_given);
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
        eprintln!("aurora-sim: unknown bench {name:?} (aurora-sim bench --help)");
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
