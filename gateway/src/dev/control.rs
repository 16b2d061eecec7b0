//! The dev cluster's control socket, `<dir>/control.sock`: one command line in, one
//! JSON line out, one command per connection.
//!
//! Why a socket beside the state file: a game day must restart nodes without taking
//! them away from `aurora dev` (which would then report them as died and could not
//! stop them on Ctrl-C). The supervisor stays the only parent; the socket is
//! owner-only by the directory's mode (0700).
//!
//! Commands (`NAME` is `node-2` or `2`):
//! - `status`: the state file's content;
//! - `restart NAME`: SIGTERM, wait for the exit (SIGKILL after the stop deadline),
//!   start it again with the same command line, wait until it answers `/health`;
//!   answers `old_pid`, `pid`, `exit` (the old process's status), `stopped_ms` (SIGTERM
//!   to exit) and `listening_ms` (spawn to `/health` 200);
//! - `stop NAME`: SIGTERM and wait; `kill NAME`: SIGKILL and wait (both leave it down,
//!   not reported as a failure); `start NAME`: start a node that is down.
//!
//! Errors answer `{"ok": false, "error": "..."}` naming the node or command at fault.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rustix::process::Signal;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};

use super::supervisor::{lock, wait_exit, wait_listening, Shared};
use super::{START_DEADLINE, STOP_DEADLINE};

/// The longest command line read.
const MAX_LINE: usize = 256;

/// Serves the control socket until the process ends.
pub async fn serve(listener: tokio::net::UnixListener, shared: Shared) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            let mut reader = tokio::io::BufReader::new(read.take(MAX_LINE as u64));
            let answer = match reader.read_line(&mut line).await {
                Ok(_) => match execute(&shared, line.trim()).await {
                    Ok(mut value) => {
                        value["ok"] = json!(true);
                        value
                    }
                    Err(e) => json!({"ok": false, "error": format!("{e:#}")}),
                },
                Err(e) => json!({"ok": false, "error": format!("reading the command: {e}")}),
            };
            let _ = write.write_all(format!("{answer}\n").as_bytes()).await;
        });
    }
}

async fn execute(shared: &Shared, line: &str) -> anyhow::Result<Value> {
    let mut words = line.split_whitespace();
    let command = words.next().unwrap_or("");
    if command == "status" {
        return Ok(serde_json::to_value(lock(shared).state())?);
    }
    let name = words
        .next()
        .with_context(|| format!("`{command}` needs a node name (e.g. `{command} node-1`)"))?;
    let i = lock(shared)
        .index(name)
        .with_context(|| format!("no node named `{name}` in this dev cluster"))?;
    let node = lock(shared).specs[i].name.clone();
    match command {
        "restart" => {
            let started = Instant::now();
            let old_pid = lock(shared).signal(i, Signal::TERM)?;
            let (status, killed) = wait_exit(shared, i, STOP_DEADLINE).await;
            let stopped_ms = started.elapsed().as_millis() as u64;
            let pid = lock(shared).spawn(i)?;
            let listening = wait_listening(shared, i, START_DEADLINE).await?;
            Ok(json!({
                "node": node, "old_pid": old_pid, "pid": pid,
                "exit": status.map(|s| s.to_string()), "killed_after_deadline": killed,
                "stopped_ms": stopped_ms, "listening_ms": listening.as_millis() as u64,
            }))
        }
        "stop" | "kill" => {
            let signal = if command == "stop" {
                Signal::TERM
            } else {
                Signal::KILL
            };
            let pid = lock(shared).signal(i, signal)?;
            let (status, killed) = wait_exit(shared, i, STOP_DEADLINE).await;
            Ok(
                json!({"node": node, "pid": pid, "exit": status.map(|s| s.to_string()), "killed_after_deadline": killed}),
            )
        }
        "start" => {
            let pid = lock(shared).spawn(i)?;
            let listening = wait_listening(shared, i, START_DEADLINE).await?;
            Ok(json!({"node": node, "pid": pid, "listening_ms": listening.as_millis() as u64}))
        }
        other => bail!("unknown command `{other}` (status, restart, stop, kill, start)"),
    }
}

/// Sends one command to the dev cluster whose control socket is `socket` and returns
/// its answer; an answer with `"ok": false` is an error carrying its message.
pub fn call(socket: &Path, command: &str, timeout: Duration) -> anyhow::Result<Value> {
    let mut stream = std::os::unix::net::UnixStream::connect(socket).with_context(|| {
        format!(
            "connecting to the dev cluster's control socket {}",
            socket.display()
        )
    })?;
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(format!("{command}\n").as_bytes())?;
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .with_context(|| format!("waiting for the answer to `{command}`"))?;
    let value: Value = serde_json::from_str(&line)
        .with_context(|| format!("the answer to `{command}` is not JSON: {line:?}"))?;
    if value["ok"] != true {
        bail!(
            "`{command}` failed: {}",
            value["error"].as_str().unwrap_or("no reason given")
        );
    }
    Ok(value)
}
