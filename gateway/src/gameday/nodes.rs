//! The cluster a game day runs against: its nodes, the admin token, the dev cluster
//! behind it (if any), and the admin-API questions the drills ask.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde_json::Value;

use super::load::Target;
use super::Common;
use crate::dev::control;
use crate::probe;

/// A flag problem (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

/// How long a drill's control command may take (a restart waits for the drain).
const CONTROL_TIMEOUT: Duration = Duration::from_secs(120);
const ADMIN_TIMEOUT: Duration = Duration::from_secs(2);
pub const POLL: Duration = Duration::from_millis(50);

/// The nodes under drill.
pub struct Drill {
    pub targets: Vec<Target>,
    token: String,
    /// The dev cluster's directory, when it is one.
    pub dev_dir: Option<PathBuf>,
}

impl Drill {
    /// From the flags: `--nodes` (or the dev cluster's), the token (flag, env, or the
    /// dev cluster's file).
    pub fn from_args(common: &Common) -> anyhow::Result<Drill> {
        let dev = match &common.dev_dir {
            Some(dir) => Some(crate::dev::read_state(dir).map_err(usage)?),
            None => None,
        };
        let urls: Vec<String> = if common.nodes.is_empty() {
            match &dev {
                Some(state) => state.nodes.iter().map(|n| n.url.clone()).collect(),
                None => return Err(usage("give --nodes URL,URL,… or --dev-dir DIR")),
            }
        } else {
            common.nodes.clone()
        };
        if urls.len() < 2 {
            return Err(usage(format!(
                "a game day needs at least 2 nodes, got {}",
                urls.len()
            )));
        }
        if !(common.rate > 0.0 && common.rate <= 1000.0) {
            return Err(usage(format!(
                "--rate {} must be above 0 and at most 1000",
                common.rate
            )));
        }
        let mut targets = Vec::new();
        for (i, url) in urls.iter().enumerate() {
            let addr = probe::addr_of_url(url).map_err(|e| usage(format!("--nodes: {e}")))?;
            let name = dev
                .as_ref()
                .and_then(|s| s.nodes.iter().find(|n| n.url == *url))
                .map_or_else(|| format!("node {}", i + 1), |n| n.name.clone());
            targets.push(Target {
                name,
                url: url.clone(),
                addr,
            });
        }
        let token = match (&common.admin_token, &dev) {
            (Some(t), _) => t.clone(),
            (None, Some(state)) => std::fs::read_to_string(&state.admin_token_file)
                .with_context(|| {
                    format!(
                        "reading the admin token {}",
                        state.admin_token_file.display()
                    )
                })?
                .trim()
                .to_owned(),
            (None, None) => {
                return Err(usage(
                    "give --admin-token T (or AURORA_ADMIN_TOKEN, or --dev-dir)",
                ))
            }
        };
        Ok(Drill {
            targets,
            token,
            dev_dir: common.dev_dir.clone(),
        })
    }

    /// `GET path` on node `i` with the admin token; `Null` if it does not answer 200.
    pub fn admin_get(&self, i: usize, path: &str) -> Value {
        match probe::request(
            self.targets[i].addr,
            "GET",
            path,
            Some(&self.token),
            None,
            ADMIN_TIMEOUT,
        ) {
            Ok(r) if r.status == 200 => r.json(),
            _ => Value::Null,
        }
    }

    /// `POST path` on node `i` with the admin token: the status and JSON body.
    pub fn admin_post(&self, i: usize, path: &str, body: &str) -> anyhow::Result<(u16, Value)> {
        let r = probe::request(
            self.targets[i].addr,
            "POST",
            path,
            Some(&self.token),
            Some(body),
            ADMIN_TIMEOUT,
        )
        .with_context(|| format!("POST {path} on {}", self.targets[i].url))?;
        Ok((r.status, r.json()))
    }

    pub fn status(&self, i: usize) -> Value {
        self.admin_get(i, "/admin/api/cluster/status")
    }

    /// The leader as node `i` sees it: (its index among the targets, id, epoch).
    pub fn leader_seen_by(&self, i: usize) -> Option<(Option<usize>, String, u64)> {
        let status = self.status(i);
        let leader = status["leader"].as_str()?.to_owned();
        let epoch = status["epoch"].as_u64().unwrap_or(0);
        let index =
            (0..self.targets.len()).find(|&j| self.status(j)["this_node"]["id"] == leader.as_str());
        Some((index, leader, epoch))
    }

    /// The cluster's mode, as the first answering node says.
    pub fn mode(&self) -> String {
        (0..self.targets.len())
            .map(|i| self.status(i))
            .find_map(|s| s["mode"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "unknown".to_owned())
    }

    /// Whether node `i` serves from caught-up state (`/health/ready` 200, or 503
    /// `standby`), sees every node alive, and names `leader` (when given) as leader.
    pub fn back(&self, i: usize, leader: Option<&str>) -> bool {
        let ready = match probe::request(
            self.targets[i].addr,
            "GET",
            "/health/ready",
            None,
            None,
            ADMIN_TIMEOUT,
        ) {
            Ok(r) => r.status == 200 || (r.status == 503 && r.json()["status"] == "standby"),
            Err(_) => false,
        };
        if !ready {
            return false;
        }
        let status = self.status(i);
        let members = status["node_count"].as_u64() == Some(self.targets.len() as u64);
        members && leader.is_none_or(|l| status["leader"] == l)
    }

    /// Polls `ok` every [`POLL`] for at most `limit`; how long it took, if it held.
    pub fn wait(&self, limit: Duration, mut ok: impl FnMut() -> bool) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if ok() {
                return Some(start.elapsed());
            }
            std::thread::sleep(POLL);
        }
        None
    }

    /// The PID of node `i` from the dev cluster's state file.
    pub fn pid(&self, i: usize) -> anyhow::Result<u32> {
        let dir = self
            .dev_dir
            .as_ref()
            .ok_or_else(|| usage("--kill pid needs --dev-dir (the PIDs are in its dev.json)"))?;
        let state = crate::dev::read_state(dir).map_err(anyhow::Error::msg)?;
        state
            .nodes
            .iter()
            .find(|n| n.url == self.targets[i].url)
            .and_then(|n| n.pid)
            .with_context(|| {
                format!(
                    "{} has no running process in {}",
                    self.targets[i].url,
                    dir.display()
                )
            })
    }

    /// Sends `command NAME` for node `i` to the dev cluster's control socket.
    pub fn control(&self, command: &str, i: usize) -> anyhow::Result<Value> {
        let Some(dir) = &self.dev_dir else {
            bail!("`{command}` needs a dev cluster (--dev-dir)");
        };
        let socket = crate::dev::supervisor::control_path(dir);
        control::call(
            &socket,
            &format!("{command} {}", self.targets[i].name),
            CONTROL_TIMEOUT,
        )
    }
}
