//! `aurora dev --nodes N`: a local cluster of real `aurora serve` processes on
//! 127.0.0.1..N, the fastest way to see the cluster (and the target of game days).
//!
//! What holds:
//! - every node is a child process of this one, running the same binary
//!   (`std::env::current_exe`), with the mock provider, its own data directory and
//!   log file under `--dir` (default: a new directory under the system's temp dir,
//!   kept after exit so the logs can be read);
//! - one generated 32-byte cluster secret and admin token per dev cluster (files of
//!   mode 0600 in `--dir`, reused when the same `--dir` starts again);
//! - the children run in their own process group, so a Ctrl-C in the terminal reaches
//!   only this process, which then sends each node one SIGTERM (a second signal would
//!   make a node skip its drain) and waits for all of them (SIGKILL after
//!   [`STOP_DEADLINE`]); it exits 0 once every node is gone;
//! - a node that exits without being asked to is reported on stderr with its exit
//!   status and log file, and stays down (`start NAME` on the control socket brings it
//!   back);
//! - `<dir>/dev.json` lists the nodes with their PIDs and `<dir>/control.sock` takes
//!   `restart`/`start`/`kill`/`status` commands ([`control`]), which is how
//!   `aurora gameday rolling-restart` restarts nodes without taking them away from
//!   this supervisor.
//!
//! If this process itself is killed with SIGKILL its nodes keep running (they are in
//! their own process group); stop them with the PIDs in `dev.json`.

pub mod control;
pub mod layout;
pub mod supervisor;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};

pub use layout::{read_state, NodeSpec, StateFile};

/// How long the nodes get to stop after SIGTERM before they are killed.
pub const STOP_DEADLINE: Duration = Duration::from_secs(30);
/// How long the cluster gets to come up.
pub const START_DEADLINE: Duration = Duration::from_secs(60);

/// `aurora dev`.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// How many nodes (1 to 9).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=9))]
    pub nodes: u8,
    /// Failover mode of every node.
    #[arg(long, value_enum, default_value_t = DevMode::ActivePassive)]
    pub mode: DevMode,
    /// HTTP port of every node (on 127.0.0.1, .2, …; on one address: this port + i - 1).
    #[arg(long, value_name = "P", default_value_t = 8080)]
    pub base_port: u16,
    /// Gossip (QUIC, UDP) port of every node; the next port is its sync port.
    #[arg(long, value_name = "PORT", default_value_t = 7946)]
    pub gossip_port: u16,
    /// Directory for the nodes' data, logs, secret, token and state file (created if
    /// missing; reused, with its data, if it exists). Default: a new temp directory.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Whether clients need an API key: `open` (the default here: loopback only,
    /// no key to create first) or `keys`.
    #[arg(long, value_enum, default_value_t = DevAuth::Open)]
    pub auth: DevAuth,
    /// Start every node with `--allow-fault-injection` (for `aurora gameday`).
    #[arg(long)]
    pub allow_fault_injection: bool,
    /// More `aurora serve` flags for every node, after `--`
    /// (e.g. `-- --mock-latency-ms 20 --shutdown-grace-secs 2`).
    #[arg(last = true, value_name = "SERVE_ARGS")]
    pub serve_args: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DevMode {
    #[value(name = "active_passive", alias = "active-passive")]
    ActivePassive,
    #[value(name = "active_active", alias = "active-active")]
    ActiveActive,
    #[value(name = "single_node", alias = "single-node")]
    SingleNode,
}

impl DevMode {
    pub fn as_str(self) -> &'static str {
        match self {
            DevMode::ActivePassive => "active_passive",
            DevMode::ActiveActive => "active_active",
            DevMode::SingleNode => "single_node",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DevAuth {
    Open,
    Keys,
}

/// Runs the dev cluster until SIGINT/SIGTERM. Exit 0 after a clean stop, 1 when it
/// could not start (the message names what failed, with the log to read).
pub fn main(args: DevArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: starting the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(supervisor::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
