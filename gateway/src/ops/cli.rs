//! The `backup`, `restore` and `state` subcommands of the `aurora` binary.
//!
//! Exit codes follow `main.rs`: 2 when what the operator gave is at fault (a flag, a
//! time, a directory that is not empty, a file that exists or is not a sound Aurora
//! file of a schema this build reads, a document that does not check, a token the
//! node refuses), 1 for anything else (I/O, a node that cannot be reached or fails).
//! Every error names the file, directory, flag or URL at fault.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use aurora_io::store::backup::{self, BackupError};
use aurora_io::StoreError;
use bytes::Bytes;
use clap::{Args, Subcommand};
use http_body_util::{BodyExt, Full};

use super::document::{Document, Records};

/// `aurora backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The node's data directory (its `node.db` is copied; the node may be running).
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// The backup file to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Replace FILE if it exists.
    #[arg(long)]
    pub force: bool,
}

/// `aurora restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A file written by `aurora backup`.
    pub file: PathBuf,
    /// An empty or absent directory to restore into.
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
}

/// Where `state export` reads and `state import` writes: exactly one of the two.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["data_dir", "url"])))]
pub struct Target {
    /// A data directory (its `node.db`; for export the node may be running).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// A running node's HTTP URL (its admin API).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// The admin token for --url.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "AURORA_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
}

/// `aurora state …`.
#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Write every replicated collection (secrets as hashes) as one JSON document with
    /// a digest to stdout: now, or as this node held it at --at.
    Export {
        #[command(flatten)]
        target: Target,
        /// RFC 3339 (2026-12-04T18:55:20Z) or unix ms; within the tombstone TTL.
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
    },
    /// Load an export: into an empty data directory, or into a running cluster
    /// through one node (which then holds exactly the file's records).
    Import {
        /// A document written by `aurora state export`.
        file: PathBuf,
        #[command(flatten)]
        target: Target,
        /// With --url: print the diff (added, changed, removed per collection), write
        /// nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// A failure and its exit code.
struct Failed {
    code: u8,
    error: anyhow::Error,
}

fn usage(error: impl Into<anyhow::Error>) -> Failed {
    Failed {
        code: 2,
        error: error.into(),
    }
}

fn failure(error: impl Into<anyhow::Error>) -> Failed {
    Failed {
        code: 1,
        error: error.into(),
    }
}

/// Exit code 2 for what the operator gave, 1 for the rest (see the module docs).
fn classify(e: BackupError) -> Failed {
    let operator = match &e {
        BackupError::Exists { .. }
        | BackupError::NotEmpty { .. }
        | BackupError::Missing { .. }
        | BackupError::NotSqlite { .. }
        | BackupError::OldSchema { .. }
        | BackupError::At { .. } => true,
        BackupError::Store(s) => matches!(
            s,
            StoreError::NotSqlite { .. }
                | StoreError::Foreign { .. }
                | StoreError::Corrupt { .. }
                | StoreError::TooNew { .. }
                | StoreError::BeforeLives { .. }
        ),
        BackupError::Io { .. } => false,
    };
    Failed {
        code: if operator { 2 } else { 1 },
        error: e.into(),
    }
}

fn finish(result: Result<(), Failed>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failed { code, error }) => {
            eprintln!("error: {error:#}");
            ExitCode::from(code)
        }
    }
}

/// `aurora backup --data-dir DIR --out FILE [--force]`.
pub fn run_backup(args: &BackupArgs) -> ExitCode {
    finish((|| {
        let db = args.data_dir.join(backup::DB_FILE);
        let started = Instant::now();
        let info = backup::backup(&db, &args.out, args.force).map_err(classify)?;
        println!(
            "backup of {} written to {}: {} entries, {} bytes, schema {}, {} ms",
            db.display(),
            args.out.display(),
            info.entries,
            info.bytes,
            info.schema_version,
            started.elapsed().as_millis()
        );
        Ok(())
    })())
}

/// `aurora restore FILE --data-dir DIR`.
pub fn run_restore(args: &RestoreArgs) -> ExitCode {
    finish((|| {
        let info = backup::restore(&args.file, &args.data_dir).map_err(classify)?;
        println!(
            "restored {} into {}: {} entries (schema {}). The node started on it is a new \
             storage life (a new node.key is made at first start) and catches up from its \
             peers; give it a node id of its own, or forget the old life on the leader first \
             (docs/operations.md, \"Backup, restore and export\")",
            args.file.display(),
            args.data_dir.join(backup::DB_FILE).display(),
            info.entries,
            info.schema_version
        );
        Ok(())
    })())
}

/// `aurora state export|import`.
pub fn run_state(command: &StateCommand) -> ExitCode {
    finish(match command {
        StateCommand::Export { target, at } => export(target, at.as_deref()),
        StateCommand::Import {
            file,
            target,
            dry_run,
        } => import(file, target, *dry_run),
    })
}

fn export(target: &Target, at: Option<&str>) -> Result<(), Failed> {
    let at_ms = at.map(super::time::parse_at).transpose().map_err(usage)?;
    let document = match (&target.data_dir, &target.url) {
        (Some(dir), _) => {
            let db = dir.join(backup::DB_FILE);
            let entries = backup::StateFile::open(&db)
                .and_then(|f| f.record_entries(at_ms))
                .map_err(classify)?;
            let source = format!("node.db in {}", dir.display());
            Records::from_entries(entries).document(at_ms, super::now_ms(), source)
        }
        (None, Some(url)) => {
            let path = match at_ms {
                Some(at) => format!("/admin/api/state/export?at={at}"),
                None => "/admin/api/state/export".to_owned(),
            };
            let body = call(url, token(target)?, http::Method::GET, &path, Bytes::new())?;
            let (document, _) = Document::parse(&body)
                .map_err(|e| failure(anyhow::anyhow!("{url} answered a bad document: {e}")))?;
            document
        }
        (None, None) => return Err(usage(anyhow::anyhow!("give --data-dir DIR or --url URL"))),
    };
    let text = serde_json::to_string_pretty(&document).map_err(failure)?;
    println!("{text}");
    Ok(())
}

fn import(file: &Path, target: &Target, dry_run: bool) -> Result<(), Failed> {
    let bytes = std::fs::read(file)
        .map_err(|e| usage(anyhow::anyhow!("{}: cannot read it: {e}", file.display())))?;
    let (_, records) =
        Document::parse(&bytes).map_err(|e| usage(anyhow::anyhow!("{}: {e}", file.display())))?;
    match (&target.data_dir, &target.url) {
        (Some(dir), _) => {
            if dry_run {
                return Err(usage(anyhow::anyhow!(
                    "--dry-run compares with a running node (--url); an import into a data \
                     directory only ever writes an empty one"
                )));
            }
            let origin = import_origin().map_err(failure)?;
            let entries = records.entries(origin, super::now_ms());
            backup::seed(dir, &entries).map_err(classify)?;
            println!(
                "imported {} records into {} (digest {}); the node started on it binds its \
                 node id and a new storage life at first start",
                records.len(),
                dir.join(backup::DB_FILE).display(),
                records.digest()
            );
            Ok(())
        }
        (None, Some(url)) => {
            let path = if dry_run {
                "/admin/api/state/import?dry_run=true"
            } else {
                "/admin/api/state/import"
            };
            let body = call(
                url,
                token(target)?,
                http::Method::POST,
                path,
                Bytes::from(bytes),
            )?;
            let answer: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|e| failure(anyhow::anyhow!("{url} answered no JSON: {e}")))?;
            eprint!("{}", summary(&answer));
            let text = serde_json::to_string_pretty(&answer).map_err(failure)?;
            println!("{text}");
            Ok(())
        }
        (None, None) => Err(usage(anyhow::anyhow!("give --data-dir DIR or --url URL"))),
    }
}

/// One line per collection that changes: `keys: +2 ~1 -0`.
fn summary(answer: &serde_json::Value) -> String {
    let mut out = String::new();
    let verb = if answer["dry_run"] == true {
        "would change"
    } else {
        "changed"
    };
    if let Some(diff) = answer["diff"].as_object() {
        for (name, d) in diff {
            let n = |k: &str| d[k].as_array().map_or(0, Vec::len);
            if n("added") + n("changed") + n("removed") > 0 {
                out.push_str(&format!(
                    "{name}: {verb} +{} added, ~{} changed, -{} removed\n",
                    n("added"),
                    n("changed"),
                    n("removed")
                ));
            }
        }
    }
    if out.is_empty() {
        out.push_str("no differences\n");
    }
    out
}

/// The origin an import into a data directory writes under: a random id and life
/// that no node has, so its numbers can never collide with any node's writes.
fn import_origin() -> anyhow::Result<aurora_core::Origin> {
    let id = getrandom::u64().map_err(|e| anyhow::anyhow!("OS random source: {e}"))?;
    let life = getrandom::u64().map_err(|e| anyhow::anyhow!("OS random source: {e}"))?;
    Ok(aurora_core::Origin::new(
        aurora_core::NodeId(id),
        aurora_core::Life(life),
    ))
}

fn token(target: &Target) -> Result<&str, Failed> {
    target.admin_token.as_deref().ok_or_else(|| {
        usage(anyhow::anyhow!(
            "--url needs the admin token: --admin-token TOKEN or AURORA_ADMIN_TOKEN"
        ))
    })
}

/// One admin request; a non-2xx answer is an error quoting the node's message.
fn call(
    url: &str,
    token: &str,
    method: http::Method,
    path: &str,
    body: Bytes,
) -> Result<Bytes, Failed> {
    let base = url.trim_end_matches('/');
    let uri: http::Uri = format!("{base}{path}")
        .parse()
        .map_err(|e| usage(anyhow::anyhow!("--url {url}: not a URL: {e}")))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(failure)?;
    runtime.block_on(async {
        let client = crate::upstream::client::build(Duration::from_secs(5)).map_err(failure)?;
        let request = http::Request::builder()
            .method(method)
            .uri(uri)
            .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| usage(anyhow::anyhow!("--admin-token: cannot be sent: {e}")))?;
        let response = tokio::time::timeout(Duration::from_secs(600), client.request(request))
            .await
            .map_err(|_| failure(anyhow::anyhow!("{url}: no answer within 600 s")))?
            .map_err(|e| failure(anyhow::anyhow!("{url}: {e}")))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| failure(anyhow::anyhow!("{url}: reading the answer: {e}")))?
            .to_bytes();
        if status.is_success() {
            return Ok(bytes);
        }
        let message = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        let error = anyhow::anyhow!("{url}{path}: {status}: {message}");
        Err(if status.is_client_error() {
            usage(error)
        } else {
            failure(error)
        })
    })
}
