//! The `aurora` binary: flags, logging, the runtime and signals around
//! [`aurora_gateway::Server`].
//!
//! Everything that touches the process environment lives here (argv, env vars,
//! stderr, signals, exit codes), so the library stays testable in-process. Bad flags
//! exit 2 (clap's convention); a failure to start exits 1 with the error chain.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use aurora_gateway::catalog::file::GatewayFile;
use aurora_gateway::config::{GatewayConfig, MockDefaults, DEFAULT_MAX_BODY_BYTES};
use aurora_gateway::{AdminToken, DrainOutcome, Server, ServerConfig, TokenSource};
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
    Serve(ServeArgs),
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
    /// Directory for this node's files (created if missing). Holds the generated admin
    /// token today; the SQLite store later.
    #[arg(long, value_name = "DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Log format on stderr. Filter with RUST_LOG (default: info).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
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
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Serve(args)) => args,
        None => cli.serve,
    };
    init_logging(args.log_format);
    match serve(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal; log files and collectors get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // `try_init` fails only if a subscriber is already set, which cannot happen here.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => aurora_gateway::catalog::file::load(path)
            .with_context(|| format!("loading the config file {}", path.display()))?,
        None => GatewayFile::default(),
    };
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating data directory {}", args.data_dir.display()))?;
    let env_token = match std::env::var("AURORA_ADMIN_TOKEN") {
        Ok(value) => Some(value),
        Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(_)) => {
            anyhow::bail!("AURORA_ADMIN_TOKEN is not valid UTF-8")
        }
    };
    let (admin_token, source) = AdminToken::load_or_create(env_token, &args.data_dir)
        .context("setting up the admin token")?;
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
        },
        shutdown_grace: Duration::from_secs(args.shutdown_grace_secs),
        drain_timeout: Duration::from_secs(args.drain_timeout_secs),
        ..ServerConfig::new(args.listen)
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async move {
        let server = Server::bind(config, admin_token)
            .await
            .context("starting the HTTP server")?;
        let catalog = server.state().catalog.load();
        tracing::info!(
            addr = %server.local_addr(),
            data_dir = %args.data_dir.display(),
            version = env!("CARGO_PKG_VERSION"),
            providers = catalog.records().providers.len(),
            models = catalog.listed().len(),
            "aurora serving (single node)"
        );
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
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("signal received; shutting down (send again to exit at once)");
            let _ = tx.send(());
            wait_for_signal().await;
            tracing::warn!("second signal; exiting without waiting for the drain");
            std::process::exit(1);
        });
        let outcome = server
            .run(async {
                // A dropped sender also means "stop": never serve on without a way out.
                let _ = rx.await;
            })
            .await;
        if outcome == DrainOutcome::TimedOut {
            tracing::warn!("some requests were cut off by the drain timeout");
        }
        tracing::info!("bye");
        Ok(())
    })
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
        match aurora_gateway::catalog::file::load(&path) {
            Err(error) => {
                tracing::error!(%error, "config reload failed; keeping the running catalog")
            }
            Ok(file) => {
                if file.upstream != state.config.upstream {
                    tracing::warn!("`gateway.upstream` changed; it takes effect after a restart");
                }
                match state.replace_catalog(file.catalog) {
                    Ok(()) => tracing::info!(path = %path.display(), "config reloaded"),
                    Err(error) => {
                        tracing::error!(%error, "config reload failed; keeping the running catalog")
                    }
                }
            }
        }
    }
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
async fn wait_for_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
