//! `aurora dev` as a child of a test: started on free ports in a temp directory,
//! stopped with SIGINT (or SIGKILL, with its nodes, when the guard drops), so a
//! failing assertion leaves no process behind.

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::cluster::BIN;

/// A running `aurora dev`.
pub struct Dev {
    pub child: Child,
    pub dir: PathBuf,
}

/// The state file's content (`Null` until it exists and parses).
pub fn state(dir: &Path) -> serde_json::Value {
    std::fs::read_to_string(dir.join("dev.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// The node PIDs in the state file (those that are running).
pub fn pids(dir: &Path) -> Vec<u32> {
    state(dir)["nodes"]
        .as_array()
        .map(|nodes| {
            nodes
                .iter()
                .filter_map(|n| n["pid"].as_u64().map(|p| p as u32))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether process `pid` exists (and is not a zombie).
pub fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Sends `signal` (e.g. `-INT`) to `pid` with kill(1).
pub fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {signal} {pid}");
}

/// A free HTTP port on 127.0.0.1 and a free UDP port whose successor (the sync port)
/// is free too.
fn free_ports() -> (u16, u16) {
    let http = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("tcp port")
        .port();
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("udp port")
            .port();
        if udp < u16::MAX && UdpSocket::bind(("127.0.0.1", udp + 1)).is_ok() {
            return (http, udp);
        }
    }
}

impl Dev {
    /// Starts `aurora dev --nodes n` with `extra` flags in `dir`; returns once the
    /// state file lists `n` running nodes and the banner was printed (the cluster is
    /// ready then).
    pub fn start(dir: &Path, n: u8, extra: &[&str]) -> Dev {
        let (http, gossip) = free_ports();
        let out = std::fs::File::create(dir.join("dev.out")).expect("dev.out");
        let err = out.try_clone().expect("dev.out");
        let child = Command::new(BIN)
            .args(["dev", "--nodes", &n.to_string()])
            .args(["--base-port", &http.to_string()])
            .args(["--gossip-port", &gossip.to_string()])
            .arg("--dir")
            .arg(dir.join("cluster"))
            .args(extra)
            .stdout(out)
            .stderr(err)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn aurora dev");
        let dev = Dev {
            child,
            dir: dir.join("cluster"),
        };
        let out = dir.join("dev.out");
        let start = Instant::now();
        let mut dev = dev;
        while !std::fs::read_to_string(&out).is_ok_and(|t| t.contains("Ctrl-C stops all nodes")) {
            let logs: Vec<String> = (1..=n)
                .map(|i| {
                    let log = std::fs::read_to_string(dev.dir.join(format!("node-{i}.log")))
                        .unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(5).collect();
                    format!("node-{i}: {tail:?}")
                })
                .collect();
            if let Ok(Some(status)) = dev.child.try_wait() {
                panic!(
                    "aurora dev exited ({status}): {}\n{}",
                    dev.output(),
                    logs.join("\n")
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "no banner after 90 s: {}\n{}",
                dev.output(),
                logs.join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(pids(&dev.dir).len(), usize::from(n), "{}", state(&dev.dir));
        dev
    }

    /// What `aurora dev` printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.dir.with_file_name("dev.out")).unwrap_or_default()
    }

    /// SIGINT, as Ctrl-C; waits at most `limit` for the exit.
    pub fn interrupt(&mut self, limit: Duration) -> ExitStatus {
        signal(self.child.id(), "-INT");
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                start.elapsed() < limit,
                "aurora dev did not exit within {limit:?}: {}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            for pid in pids(&self.dir) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
