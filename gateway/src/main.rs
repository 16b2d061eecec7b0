//! The `aurora` binary: flags, logging, the runtime and signals around
//! [`aurora_gateway::Server`].
//!
//! Everything that touches the process environment lives here (argv, env vars,
//! stderr, signals, exit codes), so the library stays testable in-process. Bad flags
//! and bad configuration (an unknown key, a bad value, a missing cluster secret) exit
//! 2 with a message naming the key (clap's convention for usage errors); any other
//! failure to start exits 1 with the error chain.
//!
//! Configuration precedence, lowest first: the YAML file (`--config`), the `CLUSTER_*`
//! environment variables, the `--cluster-*` flags. The flags are applied by setting
//! the variable of the same meaning, so one validator names the key at fault.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use aurora_gateway::catalog::file::GatewayFile;
use aurora_gateway::catalog::store::process_env;
use aurora_gateway::cluster::Node;
use aurora_gateway::config::{
    AuthMode, GatewayConfig, MetricsAuth, MockDefaults, DEFAULT_MAX_BODY_BYTES,
    DEFAULT_PROVIDER_ENV_PREFIX,
};
use aurora_gateway::signals::StopSignals;
use aurora_gateway::{AdminToken, DrainOutcome, Server, ServerConfig, TokenError, TokenSource};
use aurora_io::config::ClusterSettings;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Aurora: a clustered LLM/API gateway node.
#[derive(Debug, Parser)]
#[command(name = "aurora", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Flags of `serve`, accepted without the subcommand too (it is the default).
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node: the OpenAI-compatible API, admin API, health and metrics (default).
    Serve(Box<ServeArgs>),
    /// Work with configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Run a local cluster of N nodes on 127.0.0.1..N with the mock provider.
    Dev(aurora_gateway::dev::DevArgs),
    /// Failover and rolling-restart drills under client load, against a running cluster.
    #[command(subcommand)]
    Gameday(aurora_gateway::gameday::GamedayCommand),
    /// Check a running node's health endpoint (the container image's HEALTHCHECK):
    /// exit 0 on 200, 1 on any other answer or none, 2 on a bad URL.
    Health(HealthArgs),
    /// Copy a node's node.db (running or not) to a backup file, consistently.
    Backup(aurora_gateway::ops::cli::BackupArgs),
    /// Restore a backup into an empty data directory, as a new storage life.
    Restore(aurora_gateway::ops::cli::RestoreArgs),
    /// Export or import the replicated state (every collection, secrets as hashes).
    #[command(subcommand)]
    State(aurora_gateway::ops::cli::StateCommand),
}

/// `aurora health`.
#[derive(Debug, Args)]
struct HealthArgs {
    /// The endpoint: `/health` (alive) or `/health/ready` (should get traffic).
    #[arg(
        long,
        value_name = "URL",
        default_value = "http://127.0.0.1:8080/health"
    )]
    url: String,
    /// Seconds for the connection and for the answer.
    #[arg(long, value_name = "SECS", default_value_t = 3,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    timeout_secs: u64,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate FILE (with the CLUSTER_* variables of this environment) without
    /// starting anything: exit 0 when it would start, 2 with the key at fault if not.
    Check {
        /// The YAML file.
        file: PathBuf,
    },
}

/// `--cluster-*` flags: each overrides the `CLUSTER_*` variable of the same name.
#[derive(Debug, Args)]
struct ClusterArgs {
    /// Join a cluster (true) or run a single node (false). Overrides CLUSTER_ENABLED.
    #[arg(long, value_name = "BOOL")]
    cluster_enabled: Option<String>,
    /// Stable unique node id. Overrides CLUSTER_NODE_ID.
    #[arg(long, value_name = "ID")]
    cluster_node_id: Option<String>,
    /// Display name. Overrides CLUSTER_NODE_NAME.
    #[arg(long, value_name = "NAME")]
    cluster_node_name: Option<String>,
    /// Overrides CLUSTER_REGION.
    #[arg(long, value_name = "REGION")]
    cluster_region: Option<String>,
    /// Overrides CLUSTER_ZONE.
    #[arg(long, value_name = "ZONE")]
    cluster_zone: Option<String>,
    /// Gossip (QUIC) address. Overrides CLUSTER_BIND_ADDR.
    #[arg(long, value_name = "IP")]
    cluster_bind_addr: Option<String>,
    /// Gossip (QUIC) UDP port. Overrides CLUSTER_BIND_PORT.
    #[arg(long, value_name = "PORT")]
    cluster_bind_port: Option<String>,
    /// Overrides CLUSTER_SYNC_BIND_ADDR.
    #[arg(long, value_name = "IP")]
    cluster_sync_bind_addr: Option<String>,
    /// Overrides CLUSTER_SYNC_BIND_PORT.
    #[arg(long, value_name = "PORT")]
    cluster_sync_bind_port: Option<String>,
    /// Comma-separated host:port list. Overrides CLUSTER_SEED_NODES.
    #[arg(long, value_name = "LIST")]
    cluster_seed_nodes: Option<String>,
    /// This node's HTTP URL as clients reach it. Overrides CLUSTER_ADVERTISE_URL.
    #[arg(long, value_name = "URL")]
    cluster_advertise_url: Option<String>,
    /// Overrides CLUSTER_FAILOVER_MODE.
    #[arg(long, value_name = "MODE")]
    cluster_failover_mode: Option<String>,
}

impl ClusterArgs {
    fn overlay(&self, env: &mut HashMap<String, String>) {
        let pairs = [
            ("CLUSTER_ENABLED", &self.cluster_enabled),
            ("CLUSTER_NODE_ID", &self.cluster_node_id),
            ("CLUSTER_NODE_NAME", &self.cluster_node_name),
            ("CLUSTER_REGION", &self.cluster_region),
            ("CLUSTER_ZONE", &self.cluster_zone),
            ("CLUSTER_BIND_ADDR", &self.cluster_bind_addr),
            ("CLUSTER_BIND_PORT", &self.cluster_bind_port),
            ("CLUSTER_SYNC_BIND_ADDR", &self.cluster_sync_bind_addr),
            ("CLUSTER_SYNC_BIND_PORT", &self.cluster_sync_bind_port),
            ("CLUSTER_SEED_NODES", &self.cluster_seed_nodes),
            ("CLUSTER_ADVERTISE_URL", &self.cluster_advertise_url),
            ("CLUSTER_FAILOVER_MODE", &self.cluster_failover_mode),
        ];
        for (name, value) in pairs {
            if let Some(v) = value {
                env.insert(name.to_owned(), v.clone());
            }
        }
    }
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// YAML config file; its `gateway:` section holds providers, models, routes and
    /// upstream settings. Without it: the built-in mock provider only.
    #[arg(long, value_name = "FILE", env = "AURORA_CONFIG")]
    config: Option<PathBuf>,
    /// Address for the HTTP API.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Directory for this node's files (created if missing): the SQLite store
    /// (`node.db`) and the generated admin token.
    #[arg(long, value_name = "DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Log format on stderr. Filter with RUST_LOG (default: info).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// OTLP/HTTP collector base URL (`http://collector:4318`): exports OpenTelemetry
    /// traces of client requests there (docs/tracing.md). Unset: traces off.
    #[arg(long, value_name = "URL", env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// Largest request body accepted, in bytes (larger: 413).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES as u64,
          value_parser = clap::value_parser!(u64).range(1..=1 << 30))]
    max_body_bytes: u64,
    /// After SIGTERM/Ctrl-C: seconds to keep accepting while /health/ready says 503.
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    shutdown_grace_secs: u64,
    /// After the listener closes: seconds in-flight requests get to finish.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    drain_timeout_secs: u64,
    /// Mock provider: delay before each answer (first chunk when streaming), ms.
    #[arg(long, value_name = "MS", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=600_000))]
    mock_latency_ms: u64,
    /// Mock provider: delay between streamed chunks, ms.
    #[arg(long, value_name = "MS", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=60_000))]
    mock_chunk_ms: u64,
    /// Mock provider: answer length of the generating models, tokens.
    #[arg(long, value_name = "N", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    mock_completion_tokens: u32,
    /// Whether clients need an API key while none exists: `open` serves them
    /// anonymously, `keys` refuses them (401). Overrides `gateway.auth`. Default: open
    /// only for a lone node listening on loopback.
    #[arg(long, value_enum, value_name = "MODE", env = "AURORA_AUTH")]
    auth: Option<AuthArg>,
    /// After the drain: seconds to announce departure to the cluster before exiting.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    leave_timeout_secs: u64,
    /// A node joining through seeds opens its HTTP listener only once it caught up
    /// with a peer, waiting at most this long (then it listens and answers 503
    /// `node_syncing` until it has): clients meanwhile get "connection refused", which
    /// they may retry on another node, instead of a 503. 0: listen at once.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    sync_wait_secs: u64,
    /// Game days only, never in production: enable `POST /admin/api/cluster/fault`
    /// (cut this node off the cluster network for a while, or crash it).
    #[arg(long)]
    allow_fault_injection: bool,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// `--auth`.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum AuthArg {
    /// Serve without a key while no key exists.
    Open,
    /// Always require a key.
    Keys,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Why the process stops without serving, or stopped serving.
enum Failure {
    /// Bad configuration: exit 2.
    Config(anyhow::Error),
    /// Anything else before serving: exit 1.
    Start(anyhow::Error),
    /// The io driver stopped while serving (already logged): drained, exit 3.
    DriverDied,
}

/// Exit code after the io driver stopped under a serving node.
const EXIT_DRIVER_DIED: u8 = 3;

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Start(e)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Serve(args)) => *args,
        Some(Command::Config(ConfigCommand::Check { file })) => return config_check(&file),
        Some(Command::Dev(args)) => return aurora_gateway::dev::main(args),
        Some(Command::Gameday(command)) => return aurora_gateway::gameday::main(command),
        Some(Command::Health(args)) => return health(&args),
        Some(Command::Backup(args)) => return aurora_gateway::ops::cli::run_backup(&args),
        Some(Command::Restore(args)) => return aurora_gateway::ops::cli::run_restore(&args),
        Some(Command::State(command)) => return aurora_gateway::ops::cli::run_state(&command),
        None => cli.serve,
    };
    let telemetry =
        aurora_gateway::telemetry::Telemetry::start(&aurora_gateway::telemetry::Settings {
            // The flag or env var, else `gateway.telemetry.otlp_endpoint` of the file (a
            // file that does not load is reported by `serve` below).
            otlp_endpoint: args.otlp_endpoint.clone().or_else(|| {
                let path = args.config.as_deref()?;
                let file = aurora_gateway::catalog::file::load(path).ok()?;
                file.telemetry.otlp_endpoint
            }),
            node_id: cluster_env(Some(&args.cluster))
                .get("CLUSTER_NODE_ID")
                .cloned(),
        });
    let telemetry = match telemetry {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("error: --otlp-endpoint: {error}");
            return ExitCode::from(2);
        }
    };
    init_logging(args.log_format, telemetry.as_ref());
    let served = serve(args);
    if let Some(telemetry) = telemetry {
        telemetry.shutdown();
    }
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Config(error)) => {
            tracing::error!("{error:#}");
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
        Err(Failure::Start(error)) => {
            tracing::error!("{error:#}");
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
        Err(Failure::DriverDied) => ExitCode::from(EXIT_DRIVER_DIED),
    }
}

/// `aurora config check FILE`.
fn config_check(file: &Path) -> ExitCode {
    match load_config(Some(file), &cluster_env(None)) {
        Ok((gateway, cluster)) => {
            // bootstrap_expect is shown because its default depends on the node id and
            // the seeds (founder or newcomer): the Helm chart's CI check reads it.
            println!(
                "{}: ok (clustering {}, bootstrap_expect {}, {} providers, {} models, {} routes)",
                file.display(),
                if cluster.enabled {
                    "enabled"
                } else {
                    "disabled"
                },
                cluster.bootstrap_expect,
                gateway.catalog.providers.len(),
                gateway.catalog.models.len(),
                gateway.catalog.routes.len()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// `aurora health`: prints the status and body, exits 0 only on 200.
fn health(args: &HealthArgs) -> ExitCode {
    use aurora_gateway::probe;
    let (addr, path) = match probe::addr_of_url(&args.url) {
        Ok(addr) => (addr, probe::path_of_url(&args.url)),
        Err(error) => {
            eprintln!("error: --url {error}");
            return ExitCode::from(2);
        }
    };
    let timeout = Duration::from_secs(args.timeout_secs);
    match probe::request(addr, "GET", path, None, None, timeout) {
        Ok(reply) if reply.status == 200 => {
            println!("200 {}", reply.body.trim());
            ExitCode::SUCCESS
        }
        Ok(reply) => {
            println!("{} {}", reply.status, reply.body.trim());
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("error: {}: {error}", args.url);
            ExitCode::FAILURE
        }
    }
}

/// The `CLUSTER_*` variables of the process (non-UTF-8 values are skipped: the
/// validator then reports the setting as absent), overlaid by the flags.
fn cluster_env(flags: Option<&ClusterArgs>) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| k.starts_with("CLUSTER_"))
        .collect();
    if let Some(flags) = flags {
        flags.overlay(&mut env);
    }
    env
}

/// Reads and validates the whole configuration: the `gateway:` section and the
/// `cluster:` section with `env` over it.
fn load_config(
    path: Option<&Path>,
    env: &HashMap<String, String>,
) -> anyhow::Result<(GatewayFile, ClusterSettings)> {
    let (file, text) = match path {
        Some(path) => {
            let file = aurora_gateway::catalog::file::load(path)
                .with_context(|| format!("loading the config file {}", path.display()))?;
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            (file, text)
        }
        None => (GatewayFile::default(), String::new()),
    };
    let cluster = aurora_io::config::load(&text, env).context("the cluster configuration")?;
    Ok((file, cluster))
}

fn init_logging(format: LogFormat, telemetry: Option<&aurora_gateway::telemetry::Telemetry>) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::{EnvFilter, Layer as _};
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal; log files and collectors get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let fmt = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().boxed(),
    };
    // Traces off: no OpenTelemetry layer at all (`None` is a no-op layer).
    let traces = telemetry.map(|t| t.layer());
    // `try_init` fails only if a subscriber is already set, which cannot happen here.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(traces)
        .try_init();
}

fn serve(args: ServeArgs) -> Result<(), Failure> {
    let (file, cluster) = load_config(args.config.as_deref(), &cluster_env(Some(&args.cluster)))
        .map_err(Failure::Config)?;
    create_data_dir(&args.data_dir)?;
    let env_token = match std::env::var("AURORA_ADMIN_TOKEN") {
        Ok(value) => Some(value),
        Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err(Failure::Config(anyhow::anyhow!(
                "AURORA_ADMIN_TOKEN is not valid UTF-8"
            )))
        }
    };
    let (admin_token, source) = match AdminToken::load_or_create(env_token, &args.data_dir) {
        Ok(loaded) => loaded,
        // The operator's value is at fault: a configuration error naming it.
        Err(e @ (TokenError::TooShort { .. } | TokenError::EmptyEnv)) => {
            return Err(Failure::Config(e.into()))
        }
        Err(e) => {
            return Err(Failure::Start(
                anyhow::Error::new(e).context("setting up the admin token"),
            ))
        }
    };
    match &source {
        TokenSource::Env => tracing::info!("admin token from AURORA_ADMIN_TOKEN"),
        TokenSource::File(path) => tracing::info!(path = %path.display(), "admin token from file"),
        TokenSource::Generated(path) => {
            // Printed once, on the start that created it; later starts only name the file.
            eprintln!(
                "\nGenerated admin token (saved to {}, shown only this once):\n\n    {}\n",
                path.display(),
                admin_token.expose()
            );
        }
    }

    let auth = match args.auth {
        Some(AuthArg::Open) => AuthMode::Open,
        Some(AuthArg::Keys) => AuthMode::Keys,
        None => file
            .auth
            .unwrap_or_else(|| AuthMode::default_for(args.listen, cluster.enabled)),
    };
    let config = ServerConfig {
        listen: args.listen,
        gateway: GatewayConfig {
            max_body_bytes: usize::try_from(args.max_body_bytes)
                .context("--max-body-bytes does not fit this platform")?,
            mock: MockDefaults {
                latency_ms: args.mock_latency_ms,
                chunk_ms: args.mock_chunk_ms,
                completion_tokens: args.mock_completion_tokens,
            },
            catalog: file.catalog,
            upstream: file.upstream,
            limits: file.limits,
            usage_log: file.usage_log.clone(),
            budgets: file.budgets,
            auth,
            provider_env_prefix: file
                .provider_env_prefix
                .clone()
                .unwrap_or_else(|| DEFAULT_PROVIDER_ENV_PREFIX.to_owned()),
            metrics_auth: file
                .metrics_auth
                .unwrap_or_else(|| MetricsAuth::default_for(args.listen)),
            cache: file.cache.clone(),
        },
        shutdown_grace: Duration::from_secs(args.shutdown_grace_secs),
        drain_timeout: Duration::from_secs(args.drain_timeout_secs),
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let leave_timeout = Duration::from_secs(args.leave_timeout_secs);
    runtime.block_on(async move {
        // Before anything listens: from here on a SIGTERM or Ctrl-C is handled, not the
        // default action (gateway/src/signals.rs says why this cannot wait for the
        // task that awaits it). During start-up it ends the process at once (nothing
        // is served yet, and a hung start must stay stoppable); once serving, it
        // drains: the task learns which through `serving`.
        let mut stop = StopSignals::install();
        let (serving, mut started) = tokio::sync::oneshot::channel::<(
            aurora_gateway::cluster::ClusterInfo,
            tokio::sync::oneshot::Sender<()>,
        )>();
        tokio::spawn(async move {
            stop.recv().await;
            let Ok((handover_info, tx)) = started.try_recv() else {
                tracing::warn!("signal received during start-up; exiting before serving");
                std::process::exit(1);
            };
            tracing::info!("signal received; shutting down (send again to exit at once)");
            // A leader hands its lease over first, so another node is ready before
            // this one says `draining`.
            aurora_gateway::cluster::handover::before_shutdown(&handover_info).await;
            let _ = tx.send(());
            stop.recv().await;
            tracing::warn!("second signal; exiting without waiting for the drain");
            std::process::exit(1);
        });
        // The node first: its SQLite file is checked (and a foreign or corrupt one
        // refused) before anything listens.
        if args.allow_fault_injection {
            tracing::warn!(
                "--allow-fault-injection: POST /admin/api/cluster/fault can isolate or crash this node; never use it in production"
            );
        }
        let node = Node::start_with_faults(&cluster, &args.data_dir, args.allow_fault_injection)
            .await
            .context("starting the cluster node")?;
        node.info
            .wait_synced(Duration::from_secs(args.sync_wait_secs))
            .await;
        let server = Server::bind_with(
            config,
            admin_token,
            process_env(),
            Some((node.state_view.clone(), node.info.clone())),
        )
        .await
        .context("starting the HTTP server")?;
        // One row per request, in the node's own file, written off the request path.
        let usage_log = aurora_gateway::usage::UsageLog::open_with(
            &args.data_dir.join("usage.db"),
            &cluster.node_id,
            file.usage_log,
        )
        .context("opening the usage log")?;
        server.state().policy.attach_usage_log(usage_log);
        let catalog = server.state().catalog.load();
        tracing::info!(
            addr = %server.local_addr(),
            data_dir = %args.data_dir.display(),
            version = env!("CARGO_PKG_VERSION"),
            providers = catalog.records().providers.len(),
            models = catalog.listed().len(),
            cluster = cluster.enabled,
            node_id = %cluster.node_id,
            records = node.state_view.snapshot().live_records(),
            auth = auth.as_str(),
            "aurora serving"
        );
        announce_auth(auth, args.listen, cluster.enabled, &server.state());
        // Registered before serving, so a SIGHUP can never hit the default action
        // (terminate) once the node is reachable.
        #[cfg(unix)]
        if let Some(path) = args.config.clone() {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::hangup()) {
                Ok(hangups) => {
                    tokio::spawn(reload_on_sighup(hangups, path, server.state()));
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGHUP; config reload disabled")
                }
            }
        }
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        // From here a signal drains (a failed send drops `tx`, which stops too).
        let _ = serving.send((node.info.clone(), tx));
        let (died, watcher) = watch_driver(node.info.clone());
        let outcome = server
            .run(async {
                tokio::select! {
                    // A dropped sender also means "stop": never serve on without a way out.
                    _ = rx => {}
                    () = died.notified() => {}
                }
            })
            .await;
        if outcome == DrainOutcome::TimedOut {
            tracing::warn!("some requests were cut off by the drain timeout");
        }
        let driver_died = node.info.driver_stopped().is_some();
        // The node is stopped on purpose from here: that is no failure to report.
        watcher.abort();
        match node.shutdown(leave_timeout).await {
            Ok(()) => tracing::info!("left the cluster"),
            // Already logged with its cause when it happened.
            Err(_) if driver_died => {}
            Err(error) => tracing::warn!(%error, "leaving the cluster did not complete"),
        }
        if driver_died {
            tracing::info!(
                code = EXIT_DRIVER_DIED,
                "drained after the cluster driver stopped; exiting"
            );
            return Ok(Err(Failure::DriverDied));
        }
        tracing::info!("bye");
        Ok::<_, anyhow::Error>(Ok(()))
    })??;
    Ok(())
}

/// Watches the io driver: once it stops (a failed commit, a full disk, a panic) the
/// node's state is frozen and keys revoked elsewhere would stay valid here, so this
/// logs the cause once and wakes the returned notifier, which starts the drain (the
/// node already refuses clients and reports not-ready, see `admission`).
fn watch_driver(
    info: aurora_gateway::cluster::ClusterInfo,
) -> (
    std::sync::Arc<tokio::sync::Notify>,
    tokio::task::JoinHandle<()>,
) {
    let died = std::sync::Arc::new(tokio::sync::Notify::new());
    let notify = std::sync::Arc::clone(&died);
    let mut view = info.watch();
    let watcher = tokio::spawn(async move {
        // Ends when the driver publishes its reason, or when its task ends (a panic
        // publishes nothing; the channel closes).
        while view.borrow_and_update().stopped.is_none() {
            if view.changed().await.is_err() {
                break;
            }
        }
        let reason = info
            .driver_stopped()
            .unwrap_or_else(|| "the cluster driver stopped".to_owned());
        tracing::error!(
            %reason,
            "the cluster driver stopped: this node no longer serves clients (503, not ready); draining, then exiting"
        );
        notify.notify_one();
    });
    (died, watcher)
}

/// Says once at start how clients are admitted; an open node reachable from elsewhere
/// or clustered is warned about, since it was chosen explicitly.
fn announce_auth(
    auth: AuthMode,
    listen: SocketAddr,
    clustered: bool,
    state: &aurora_gateway::state::AppState,
) {
    if auth != AuthMode::Open {
        return;
    }
    let keys =
        state.state_view.snapshot().records[aurora_schema::Collection::AuthKeys as usize].len();
    if AuthMode::default_for(listen, clustered) == AuthMode::Open {
        if keys == 0 {
            tracing::info!(
                "serving clients without API keys: no key exists and gateway.auth is open \
                 (the default for a lone node on loopback); the first key created closes it"
            );
        }
    } else {
        tracing::warn!(
            %listen,
            clustered,
            keys,
            "gateway.auth is open on a node others can reach: while no API key exists, \
             anyone may use it without a key"
        );
    }
}

/// Creates the data directory owner-only (0700): it holds the admin token, the node's
/// state with every key's hash, and the usage log. An existing directory others can
/// read is kept as it is, with a warning (changing an operator's permissions silently
/// could break their backups).
fn create_data_dir(dir: &Path) -> Result<(), Failure> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    let existed = dir.is_dir();
    builder
        .create(dir)
        .with_context(|| format!("creating data directory {}", dir.display()))?;
    #[cfg(unix)]
    if existed {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir)
            .with_context(|| format!("reading data directory {}", dir.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %dir.display(),
                mode = format!("{:o}", mode & 0o777),
                "the data directory is accessible to other users; it holds the admin token and key hashes (chmod 700 it)"
            );
        }
    }
    let _ = existed;
    Ok(())
}

/// On SIGHUP, reads the config file again and replaces the catalog (providers, models,
/// routes; API-key variables are read again too) through the same function the
/// replicated store will use. A file that does not validate is logged and ignored: the
/// running catalog stays. `upstream:` settings need a restart.
#[cfg(unix)]
async fn reload_on_sighup(
    mut hangups: tokio::signal::unix::Signal,
    path: PathBuf,
    state: std::sync::Arc<aurora_gateway::state::AppState>,
) {
    while hangups.recv().await.is_some() {
        match aurora_gateway::catalog::file::reload(&path, &state.config.upstream) {
            Err(error) => {
                tracing::error!(%error, "config reload failed; keeping the running catalog")
            }
            Ok(file) => {
                if file.upstream != state.config.upstream {
                    tracing::warn!("`gateway.upstream` changed; it takes effect after a restart");
                }
                if file.limits != state.config.limits || file.usage_log != state.config.usage_log {
                    tracing::warn!(
                        "`gateway.limits` or `gateway.usage_log` changed; they take effect after a restart"
                    );
                }
                if file.budgets != state.config.budgets {
                    tracing::warn!("`gateway.budgets` changed; it takes effect after a restart");
                }
                match state.replace_base_catalog(file.catalog) {
                    Ok(()) => tracing::info!(path = %path.display(), "config reloaded"),
                    Err(error) => {
                        tracing::error!(%error, "config reload failed; keeping the running catalog")
                    }
                }
            }
        }
    }
}
