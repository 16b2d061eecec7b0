//! The dev cluster's supervisor: spawns, watches, restarts and stops the nodes.
//!
//! One [`Cluster`] behind a mutex, never held across an await: the main loop reaps
//! exited children every [`TICK`] and reports the unexpected ones; the control socket
//! ([`super::control`]) marks a node as stopped on purpose before signalling it, so its
//! exit is not reported as a failure.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rustix::process::Signal;

use super::layout::{self, NodeSpec, NodeState, StateFile};
use super::{DevArgs, DevAuth, DevMode, START_DEADLINE, STOP_DEADLINE};
use crate::probe;

/// How often exited children are reaped.
const TICK: Duration = Duration::from_millis(100);
/// How often readiness is polled while waiting.
const POLL: Duration = Duration::from_millis(50);

/// The nodes and how to start them.
pub struct Cluster {
    exe: PathBuf,
    pub dir: PathBuf,
    pub specs: Vec<NodeSpec>,
    mode: DevMode,
    auth: DevAuth,
    allow_faults: bool,
    serve_args: Vec<String>,
    secret: String,
    token: String,
    children: Vec<Option<Child>>,
    /// Stopped on purpose (control socket or shutdown): its exit is no failure.
    intended_down: Vec<bool>,
    /// The exit status of each node's last process, once reaped.
    last_exit: Vec<Option<ExitStatus>>,
}

/// The cluster shared between the main loop and the control socket.
pub type Shared = Arc<Mutex<Cluster>>;

/// Locks the cluster (a panic while holding it leaves plain data: keep going).
pub fn lock(shared: &Shared) -> MutexGuard<'_, Cluster> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Cluster {
    /// The index of the node named `name` (`node-2`, or just `2`).
    pub fn index(&self, name: &str) -> Option<usize> {
        self.specs
            .iter()
            .position(|s| s.name == name || s.name.strip_prefix("node-") == Some(name))
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn pid(&self, i: usize) -> Option<u32> {
        self.children[i].as_ref().map(Child::id)
    }

    fn command(&self, i: usize) -> Command {
        let spec = &self.specs[i];
        let seeds: Vec<String> = self.specs.iter().map(|s| s.gossip.to_string()).collect();
        let mut cmd = Command::new(&self.exe);
        cmd.arg("serve")
            .arg("--listen")
            .arg(spec.http.to_string())
            .arg("--data-dir")
            .arg(&spec.data_dir)
            .args(["--cluster-enabled", "true", "--cluster-node-id"])
            .arg(&spec.name)
            .arg("--cluster-bind-addr")
            .arg(spec.gossip.ip().to_string())
            .arg("--cluster-bind-port")
            .arg(spec.gossip.port().to_string())
            .arg("--cluster-sync-bind-port")
            .arg(spec.sync_port.to_string())
            .arg("--cluster-seed-nodes")
            .arg(seeds.join(","))
            .arg("--cluster-advertise-url")
            .arg(spec.url())
            .arg("--cluster-failover-mode")
            .arg(self.mode.as_str())
            .arg("--auth")
            .arg(match self.auth {
                DevAuth::Open => "open",
                DevAuth::Keys => "keys",
            });
        if self.allow_faults {
            cmd.arg("--allow-fault-injection");
        }
        cmd.args(&self.serve_args)
            .env("CLUSTER_SECRET", &self.secret)
            .env("AURORA_ADMIN_TOKEN", &self.token)
            .stdin(Stdio::null());
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        #[cfg(unix)]
        {
            // Its own process group: the terminal's Ctrl-C reaches only `aurora dev`,
            // which then sends exactly one SIGTERM (a second one skips the drain).
            use std::os::unix::process::CommandExt as _;
            cmd.process_group(0);
        }
        cmd
    }

    /// Starts node `i` (its log appended to its file); returns the PID.
    pub fn spawn(&mut self, i: usize) -> anyhow::Result<u32> {
        if let Some(pid) = self.pid(i) {
            bail!("{} is already running (pid {pid})", self.specs[i].name);
        }
        let spec = &self.specs[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log)
            .with_context(|| format!("opening the log file {}", spec.log.display()))?;
        let err = log
            .try_clone()
            .with_context(|| format!("opening the log file {}", spec.log.display()))?;
        let child = self
            .command(i)
            .stdout(log)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {} ({})", spec.name, self.exe.display()))?;
        let pid = child.id();
        self.children[i] = Some(child);
        self.intended_down[i] = false;
        self.last_exit[i] = None;
        self.write_state();
        Ok(pid)
    }

    /// Sends `signal` to node `i`, marking it as stopped on purpose.
    pub fn signal(&mut self, i: usize, signal: Signal) -> anyhow::Result<u32> {
        let pid = self
            .pid(i)
            .with_context(|| format!("{} is not running", self.specs[i].name))?;
        self.intended_down[i] = true;
        send_signal(pid, signal)?;
        Ok(pid)
    }

    /// Reaps exited children; returns a line for each one that exited unasked.
    pub fn reap(&mut self) -> Vec<String> {
        let mut reports = Vec::new();
        let mut changed = false;
        for i in 0..self.specs.len() {
            let Some(child) = self.children[i].as_mut() else {
                continue;
            };
            let status = match child.try_wait() {
                Ok(Some(status)) => status,
                Ok(None) => continue,
                Err(e) => {
                    reports.push(format!(
                        "{}: cannot check the process: {e}",
                        self.specs[i].name
                    ));
                    continue;
                }
            };
            let pid = child.id();
            self.children[i] = None;
            self.last_exit[i] = Some(status);
            changed = true;
            if !self.intended_down[i] {
                reports.push(format!(
                    "{} (pid {pid}) exited unexpectedly ({status}); its log: {}",
                    self.specs[i].name,
                    self.specs[i].log.display()
                ));
            }
        }
        if changed {
            self.write_state();
        }
        reports
    }

    /// The exit status of node `i`'s last process, once it has exited and was reaped.
    pub fn exited(&mut self, i: usize) -> Option<ExitStatus> {
        for line in self.reap() {
            eprintln!("aurora dev: {line}");
        }
        if self.children[i].is_some() {
            return None;
        }
        self.last_exit[i]
    }

    pub fn state(&self) -> StateFile {
        StateFile {
            pid: std::process::id(),
            mode: self.mode.as_str().to_owned(),
            control: control_path(&self.dir),
            admin_token_file: self.dir.join("admin_token"),
            nodes: self
                .specs
                .iter()
                .enumerate()
                .map(|(i, s)| NodeState {
                    name: s.name.clone(),
                    url: s.url(),
                    pid: self.pid(i),
                    data_dir: s.data_dir.clone(),
                    log: s.log.clone(),
                })
                .collect(),
        }
    }

    /// Rewrites `dev.json` (through a temporary file, so a reader never sees half).
    fn write_state(&self) {
        let path = layout::state_path(&self.dir);
        let tmp = path.with_extension("json.tmp");
        let written = serde_json::to_vec_pretty(&self.state())
            .map_err(std::io::Error::other)
            .and_then(|json| std::fs::write(&tmp, json))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            eprintln!("aurora dev: cannot write {}: {e}", path.display());
        }
    }
}

/// The control socket of the dev cluster in `dir`.
pub fn control_path(dir: &Path) -> PathBuf {
    dir.join("control.sock")
}

/// `kill(pid, signal)`.
pub fn send_signal(pid: u32, signal: Signal) -> anyhow::Result<()> {
    let raw = i32::try_from(pid).context("pid out of range")?;
    let pid = rustix::process::Pid::from_raw(raw).context("pid 0")?;
    rustix::process::kill_process(pid, signal)
        .with_context(|| format!("sending {signal:?} to pid {raw}"))
}

/// Waits until node `i` has exited, at most `limit`; then SIGKILLs it and waits.
/// Returns the exit status and whether it had to be killed.
pub async fn wait_exit(shared: &Shared, i: usize, limit: Duration) -> (Option<ExitStatus>, bool) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = lock(shared).exited(i) {
            return (Some(status), false);
        }
        tokio::time::sleep(POLL / 2).await;
    }
    let _ = lock(shared).signal(i, Signal::KILL);
    for _ in 0..100 {
        if let Some(status) = lock(shared).exited(i) {
            return (Some(status), true);
        }
        tokio::time::sleep(POLL).await;
    }
    (None, true)
}

/// What a node says on `path`, `None` if it does not answer.
pub async fn get(
    addr: std::net::SocketAddr,
    path: &'static str,
    token: Option<String>,
) -> Option<probe::Reply> {
    tokio::task::spawn_blocking(move || {
        probe::request(
            addr,
            "GET",
            path,
            token.as_deref(),
            None,
            Duration::from_secs(2),
        )
        .ok()
    })
    .await
    .ok()
    .flatten()
}

/// Whether a node serves from caught-up state: `/health/ready` is 200, or 503 `standby`.
pub async fn serving(addr: std::net::SocketAddr) -> bool {
    match get(addr, "/health/ready", None).await {
        Some(r) if r.status == 200 => true,
        Some(r) => r.status == 503 && r.json()["status"] == "standby",
        None => false,
    }
}

/// Waits until node `i` answers `/health` (it listens), at most `limit`, failing early
/// if its process exits.
pub async fn wait_listening(
    shared: &Shared,
    i: usize,
    limit: Duration,
) -> anyhow::Result<Duration> {
    let (addr, name, log) = {
        let c = lock(shared);
        (
            c.specs[i].http,
            c.specs[i].name.clone(),
            c.specs[i].log.clone(),
        )
    };
    let start = Instant::now();
    loop {
        if matches!(get(addr, "/health", None).await, Some(r) if r.status == 200) {
            return Ok(start.elapsed());
        }
        if let Some(status) = lock(shared).exited(i) {
            bail!(
                "{name} exited during start-up ({status}); its log: {}",
                log.display()
            );
        }
        if start.elapsed() > limit {
            bail!(
                "{name} did not answer /health within {limit:?}; its log: {}",
                log.display()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Starts the cluster, prints how to use it, and supervises it until a signal.
pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    // Before any node is started: a Ctrl-C from now on stops them all, also while
    // they start (signals.rs).
    let mut stop = crate::signals::StopSignals::install();
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => {
            let mut bytes = [0u8; 4];
            getrandom::fill(&mut bytes)
                .map_err(|e| anyhow::anyhow!("no randomness from the OS: {e}"))?;
            let tag: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            std::env::temp_dir().join(format!("aurora-dev-{tag}"))
        }
    };
    create_private_dir(&dir)?;
    let specs = layout::nodes(&dir, args.nodes, args.base_port, args.gossip_port)
        .map_err(anyhow::Error::msg)?;
    let secret = layout::secret_file(&dir.join("cluster.secret")).map_err(anyhow::Error::msg)?;
    let token = layout::secret_file(&dir.join("admin_token")).map_err(anyhow::Error::msg)?;
    let exe = std::env::current_exe().context("finding this program's path")?;
    let n = specs.len();
    let shared: Shared = Arc::new(Mutex::new(Cluster {
        exe,
        dir: dir.clone(),
        specs,
        mode: args.mode,
        auth: args.auth,
        allow_faults: args.allow_fault_injection,
        serve_args: args.serve_args,
        secret,
        token: token.clone(),
        children: (0..n).map(|_| None).collect(),
        intended_down: vec![false; n],
        last_exit: vec![None; n],
    }));

    // A stale socket of an earlier run would make the bind fail.
    let control = control_path(&dir);
    let _ = std::fs::remove_file(&control);
    let listener = tokio::net::UnixListener::bind(&control)
        .with_context(|| format!("binding the control socket {}", control.display()))?;

    let started = Instant::now();
    // Ctrl-C while the nodes start stops those already started.
    let up = tokio::select! {
        up = start_all(&shared, args.mode) => up,
        () = stop.recv() => Err(anyhow::anyhow!("interrupted while starting the nodes")),
    };
    if let Err(e) = up {
        stop_all(&shared).await;
        let _ = std::fs::remove_file(&control);
        return Err(e);
    }
    print_banner(&lock(&shared), args.mode, started.elapsed());
    tokio::spawn(super::control::serve(listener, shared.clone()));

    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            () = stop.recv() => break,
            _ = tick.tick() => {
                for line in lock(&shared).reap() {
                    eprintln!("aurora dev: {line}");
                }
            }
        }
    }
    eprintln!("aurora dev: stopping {n} nodes (SIGTERM each)");
    stop_all(&shared).await;
    let _ = std::fs::remove_file(&control);
    eprintln!(
        "aurora dev: all nodes stopped; data and logs kept in {}",
        dir.display()
    );
    Ok(())
}

/// Spawns every node and waits until each listens and serves from caught-up state, and
/// (electing modes) until a leader is known.
async fn start_all(shared: &Shared, mode: DevMode) -> anyhow::Result<()> {
    let n = lock(shared).specs.len();
    for i in 0..n {
        lock(shared).spawn(i)?;
    }
    let deadline = Instant::now() + START_DEADLINE;
    for i in 0..n {
        wait_listening(
            shared,
            i,
            deadline.saturating_duration_since(Instant::now()),
        )
        .await?;
    }
    let (addrs, token) = {
        let c = lock(shared);
        (
            c.specs.iter().map(|s| s.http).collect::<Vec<_>>(),
            c.token.clone(),
        )
    };
    loop {
        let mut all = true;
        for addr in &addrs {
            all &= serving(*addr).await;
        }
        let leader = mode == DevMode::SingleNode
            || get(addrs[0], "/admin/api/cluster/status", Some(token.clone()))
                .await
                .is_some_and(|r| r.json()["leader"].is_string());
        if all && leader {
            return Ok(());
        }
        for i in 0..n {
            let exited = lock(shared).exited(i);
            if let Some(status) = exited {
                let c = lock(shared);
                bail!(
                    "{} exited during start-up ({status}); its log: {}",
                    c.specs[i].name,
                    c.specs[i].log.display()
                );
            }
        }
        if Instant::now() > deadline {
            bail!(
                "the cluster did not become ready within {START_DEADLINE:?} (every node serving{}); see the logs in {}",
                if mode == DevMode::SingleNode { "" } else { ", a leader elected" },
                lock(shared).dir.display()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// SIGTERM to every running node at once, then waits for all (SIGKILL after
/// [`STOP_DEADLINE`]), reporting how each ended.
pub async fn stop_all(shared: &Shared) {
    let n = lock(shared).specs.len();
    let mut running = Vec::new();
    for i in 0..n {
        let mut c = lock(shared);
        if c.pid(i).is_some() {
            if let Err(e) = c.signal(i, Signal::TERM) {
                eprintln!("aurora dev: {}: {e:#}", c.specs[i].name);
            }
            running.push(i);
        }
    }
    let start = Instant::now();
    for i in running {
        let left = STOP_DEADLINE.saturating_sub(start.elapsed());
        let (status, killed) = wait_exit(shared, i, left).await;
        let name = lock(shared).specs[i].name.clone();
        match (status, killed) {
            (Some(s), false) => eprintln!("aurora dev: {name} stopped ({s})"),
            (Some(s), true) => {
                eprintln!("aurora dev: {name} did not stop within {STOP_DEADLINE:?}; killed ({s})")
            }
            (None, _) => eprintln!("aurora dev: {name} could not be stopped"),
        }
    }
}

fn print_banner(c: &Cluster, mode: DevMode, took: Duration) {
    let first = &c.specs[0];
    println!(
        "\nAurora dev cluster: {} nodes, {}, ready in {:.1} s\n",
        c.specs.len(),
        mode.as_str(),
        took.as_secs_f64()
    );
    for (i, s) in c.specs.iter().enumerate() {
        println!(
            "  {:<7} {:<24} pid {:<8} log {}",
            s.name,
            s.url(),
            c.pid(i).map_or("-".to_owned(), |p| p.to_string()),
            s.log.display()
        );
    }
    println!(
        "\nAdmin token: {}  (also in {})",
        c.token,
        c.dir.join("admin_token").display()
    );
    println!(
        "Admin UI:    {}/admin/dashboard/cluster  (sign in with the admin token)",
        first.url()
    );
    println!("Try:\n");
    println!(
        "  curl -s {}/v1/chat/completions -H 'content-type: application/json' \\\n    -d '{{\"model\": \"mock/gpt-4o-mini\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hello, cluster!\"}}]}}'",
        first.url()
    );
    println!(
        "  curl -s -H \"authorization: Bearer $(cat {})\" {}/admin/api/cluster/status",
        c.dir.join("admin_token").display(),
        first.url()
    );
    if c.auth == DevAuth::Keys {
        println!("\n(--auth keys: create a key first with POST /admin/api/keys)");
    }
    println!(
        "\nState file: {}   control socket: {}",
        layout::state_path(&c.dir).display(),
        control_path(&c.dir).display()
    );
    println!("Ctrl-C stops all nodes.\n");
}

/// Creates `dir` owner-only (0700): it holds the cluster secret and the admin token.
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .with_context(|| format!("creating the dev cluster directory {}", dir.display()))
}
