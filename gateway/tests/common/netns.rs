//! Network namespaces joined by a bridge, for tests across real network boundaries.
//!
//! Layout ([`Lab::create`]): one namespace per node (`aurora-np-<pid>-n<i>`) and one
//! more for the bridge (`aurora-np-<pid>-br`). Node `i` has `lo` and `c0` with
//! `10.77.0.<i>/24`; `c0` is a veth whose peer `b<i>` is a port of bridge `br0` in the
//! bridge namespace. Nothing is added to the namespace the test runs in, so the host's
//! own interfaces, routes and addresses are untouched, and the fixed names inside the
//! namespaces cannot collide with anything.
//!
//! A partition is a bridge port set down ([`Lab::cut`]): the node's veth loses its
//! carrier and no frame crosses in either direction, exactly like a pulled cable.
//! [`Lab::heal`] sets it up again. (Loss and delay are the simulator's job; there is
//! no netem here.)
//!
//! The test process stays in its own namespace and reaches a node through
//! [`in_netns`]: a short-lived thread enters the node's namespace (`setns` changes the
//! network namespace of the calling thread only) and opens its sockets there, so a
//! node stays observable while it is cut off from its peers.
//!
//! Cleanup: [`Lab`]'s `Drop` kills whatever still runs in the namespaces and deletes
//! them, which also destroys their veths and the bridge; it runs on panic too. Names
//! carry the test's pid, so a run that was killed before cleaning up cannot break the
//! next one, and the next run deletes namespaces left by runs whose pid is gone.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::process::Command;

/// Prefix of every namespace this module creates.
const PREFIX: &str = "aurora-np-";

/// Node namespaces and the bridge namespace between them.
pub struct Lab {
    bridge: String,
    nodes: Vec<String>,
}

/// Why the lab could not be built. [`Setup::Unavailable`] means the host does not
/// allow namespaces (not root, no `ip`, or `ip netns add` refused): tests skip.
/// [`Setup::Failed`] means a later step failed where namespaces work: a real error.
#[derive(Debug)]
pub enum Setup {
    Unavailable(String),
    Failed(String),
}

impl Lab {
    /// `n` node namespaces (node `i` of 1..=n at `10.77.0.i`) joined by a bridge.
    pub fn create(n: u8) -> Result<Lab, Setup> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        if euid != 0 {
            return Err(Setup::Unavailable(format!(
                "not root (euid {euid}): creating network namespaces needs CAP_SYS_ADMIN"
            )));
        }
        remove_stale();
        let pid = std::process::id();
        let bridge = format!("{PREFIX}{pid}-br");
        if let Err(e) = ip(None, &["netns", "add", &bridge]) {
            return Err(Setup::Unavailable(format!("`ip netns add` failed: {e}")));
        }
        let mut lab = Lab {
            bridge,
            nodes: Vec::new(),
        };
        lab.build(n).map_err(Setup::Failed)?;
        Ok(lab)
    }

    fn build(&mut self, n: u8) -> Result<(), String> {
        let br = self.bridge.clone();
        ip(Some(&br), &["link", "set", "lo", "up"])?;
        ip(Some(&br), &["link", "add", "br0", "type", "bridge"])?;
        ip(Some(&br), &["link", "set", "br0", "up"])?;
        for i in 1..=n {
            let ns = format!("{PREFIX}{}-n{i}", std::process::id());
            ip(None, &["netns", "add", &ns])?;
            self.nodes.push(ns.clone());
            let port = format!("b{i}");
            ip(
                Some(&ns),
                &["link", "add", "c0", "type", "veth", "peer", "name", &port],
            )?;
            ip(Some(&ns), &["link", "set", &port, "netns", &br])?;
            ip(Some(&br), &["link", "set", &port, "master", "br0"])?;
            ip(Some(&br), &["link", "set", &port, "up"])?;
            ip(Some(&ns), &["link", "set", "lo", "up"])?;
            let addr = format!("{}/24", Lab::ip(i));
            ip(Some(&ns), &["addr", "add", &addr, "dev", "c0"])?;
            ip(Some(&ns), &["link", "set", "c0", "up"])?;
        }
        Ok(())
    }

    /// The address of node `i` (1-based).
    pub fn ip(i: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 77, 0, i))
    }

    /// The namespace of node `i` (1-based).
    pub fn ns(&self, i: u8) -> &str {
        &self.nodes[usize::from(i) - 1]
    }

    /// Cuts node `i` off the bridge (its port goes down; frames stop both ways).
    pub fn cut(&self, i: u8) {
        let port = format!("b{i}");
        ip(Some(&self.bridge), &["link", "set", &port, "down"])
            .unwrap_or_else(|e| panic!("cutting node {i}: {e}"));
    }

    /// Puts node `i` back on the bridge.
    pub fn heal(&self, i: u8) {
        let port = format!("b{i}");
        ip(Some(&self.bridge), &["link", "set", &port, "up"])
            .unwrap_or_else(|e| panic!("healing node {i}: {e}"));
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.nodes.iter().chain([&self.bridge]) {
            delete(ns);
        }
    }
}

/// Kills what runs in `ns` and deletes it (errors ignored: cleanup is best effort and
/// must not panic while a test is already unwinding).
fn delete(ns: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
    }
    let _ = Command::new("ip").args(["netns", "del", ns]).status();
}

/// Deletes namespaces left by earlier runs whose process is gone.
fn remove_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            delete(name);
        }
    }
}

/// Runs `ip [-n ns] args…`; the error names the command and what `ip` said.
fn ip(ns: Option<&str>, args: &[&str]) -> Result<(), String> {
    let mut command = Command::new("ip");
    if let Some(ns) = ns {
        command.args(["-n", ns]);
    }
    let shown = format!(
        "ip {}{}",
        ns.map_or(String::new(), |n| format!("-n {n} ")),
        args.join(" ")
    );
    let out = command
        .args(args)
        .output()
        .map_err(|e| format!("{shown}: cannot run `ip`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{shown}: {} ({})",
            String::from_utf8_lossy(&out.stderr).trim(),
            out.status
        ))
    }
}

/// Runs `f` on a thread inside network namespace `ns` (a name under `/run/netns`):
/// every socket `f` opens belongs to that namespace.
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> std::io::Result<T> {
    let file = File::open(format!("/run/netns/{ns}"))?;
    std::thread::scope(|scope| {
        let thread = scope.spawn(move || {
            // SAFETY: `file` is an open namespace file for the whole call; setns with
            // CLONE_NEWNET moves only this (fresh, single-purpose) thread, which ends
            // right after `f`.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(f())
        });
        match thread.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}
