//! `aurora gameday`: failover and rolling-restart drills against a running cluster,
//! under steady client traffic, ending in a table of what the clients saw.
//!
//! - `failover`: finds the leader (`cluster/status`), kills it by PID (a dev
//!   cluster's `dev.json`), crashes it or isolates it (`POST cluster/fault`, nodes
//!   started with `--allow-fault-injection`), brings it back (a dev cluster restarts
//!   it through its control socket; an isolation heals by itself) and reports the
//!   clients' failures, the longest error window, the time to a new leader and the
//!   time to ready of the node that came back ([`failover`]).
//! - `rolling-restart`: SIGTERM and restart every node of a dev cluster in turn,
//!   waiting for each to serve again before the next ([`rolling`]).
//!
//! The clients and their retry policy are in [`load`]; every column is defined in
//! docs/operations.md ("Game day"). Nothing is tuned to a goal: the tool reports.

pub mod failover;
pub mod load;
pub mod nodes;
pub mod rolling;
pub mod table;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

/// `aurora gameday …`.
#[derive(Debug, Subcommand)]
pub enum GamedayCommand {
    /// Kill, crash or isolate the leader under load; report what clients saw.
    Failover(FailoverArgs),
    /// SIGTERM and restart every node of a dev cluster in turn under load.
    RollingRestart(RollingArgs),
}

/// Which cluster, and the client load.
#[derive(Debug, Args)]
pub struct Common {
    /// The nodes' HTTP URLs, comma-separated (default: those of `--dev-dir`).
    #[arg(long, value_delimiter = ',', value_name = "URL,URL,…")]
    pub nodes: Vec<String>,
    /// The admin token (default: `AURORA_ADMIN_TOKEN`, else the `--dev-dir` token file).
    #[arg(
        long,
        value_name = "T",
        env = "AURORA_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
    /// The directory of a running `aurora dev` (its dev.json: PIDs, control socket).
    #[arg(long, value_name = "DIR")]
    pub dev_dir: Option<PathBuf>,
    /// Requests per second of each client (one direct client per node, one routed).
    #[arg(long, value_name = "R", default_value_t = 20.0)]
    pub rate: f64,
    /// Health-check interval of the ready-routed client's load balancer, ms.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    pub lb_interval_ms: u64,
    /// Traffic before the fault, seconds.
    #[arg(long, value_name = "S", default_value_t = 3)]
    pub warmup: u64,
    /// API key for the client requests (nodes with `gateway.auth: keys`).
    #[arg(
        long,
        value_name = "KEY",
        env = "AURORA_API_KEY",
        hide_env_values = true
    )]
    pub api_key: Option<String>,
    /// Also write the results as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct FailoverArgs {
    #[command(flatten)]
    pub common: Common,
    /// How the leader is taken down.
    #[arg(long, value_enum, default_value_t = Kill::Pid)]
    pub kill: Kill,
    /// Seconds of traffic in all (at least until the node is back).
    #[arg(long, value_name = "S", default_value_t = 30)]
    pub duration: u64,
    /// `--kill isolate`: how long the leader is cut off, seconds.
    #[arg(long, value_name = "S", default_value_t = 10)]
    pub isolate_secs: u64,
    /// Seconds after the kill before the dev cluster restarts the node.
    #[arg(long, value_name = "S", default_value_t = 5)]
    pub restart_after: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Kill {
    /// SIGKILL by PID (needs `--dev-dir`).
    Pid,
    /// `POST cluster/fault {"fault":"crash"}` (needs `--allow-fault-injection`).
    Fault,
    /// `POST cluster/fault {"fault":"isolate"}`: cut off, not killed.
    Isolate,
}

impl Kill {
    pub fn as_str(self) -> &'static str {
        match self {
            Kill::Pid => "kill -9 (pid)",
            Kill::Fault => "crash (fault)",
            Kill::Isolate => "isolate (fault)",
        }
    }
}

#[derive(Debug, Args)]
pub struct RollingArgs {
    #[command(flatten)]
    pub common: Common,
    /// Seconds of traffic between one node serving again and the next restart.
    #[arg(long, value_name = "S", default_value_t = 2)]
    pub pause: u64,
}

/// Runs a game day; exit 0 when it ran to the end (whatever the clients saw), 2 for
/// bad flags, 1 when the drill could not be carried out.
pub fn main(command: GamedayCommand) -> ExitCode {
    let result = match command {
        GamedayCommand::Failover(args) => failover::run(&args),
        GamedayCommand::RollingRestart(args) => rolling::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<nodes::UsageError>() => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
