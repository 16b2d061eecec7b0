//! Where the nodes of a dev cluster live: addresses, ports, directories, the shared
//! secret and admin token, and the state file (`dev.json`) other tools read.
//!
//! Node `i` (1-based) gets its own loopback address `127.0.0.i` (every `127.0.0.x`
//! works on Linux without set-up) with the same ports on each; where `127.0.0.2` cannot
//! be bound, every node uses `127.0.0.1` with ports moved by `i - 1` (HTTP) and
//! `2 × (i - 1)` (gossip, sync).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One node's fixed layout (kept across its restarts).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeSpec {
    /// `node-i`: the node id, its name and its directory's name.
    pub name: String,
    pub http: SocketAddr,
    pub gossip: SocketAddr,
    pub sync_port: u16,
    pub data_dir: PathBuf,
    pub log: PathBuf,
}

impl NodeSpec {
    /// The node's HTTP base URL (also its advertise URL).
    pub fn url(&self) -> String {
        format!("http://{}", self.http)
    }
}

/// The nodes of a cluster of `n` under `root`.
pub fn nodes(
    root: &Path,
    n: u8,
    http_port: u16,
    gossip_port: u16,
) -> Result<Vec<NodeSpec>, String> {
    let distinct_ips = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 2), 0)).is_ok();
    (1..=n)
        .map(|i| {
            let k = u16::from(i - 1);
            let (ip, http, gossip) = if distinct_ips {
                (Ipv4Addr::new(127, 0, 0, i), http_port, gossip_port)
            } else {
                let http = http_port.checked_add(k);
                let gossip = gossip_port.checked_add(2 * k);
                match (http, gossip) {
                    (Some(h), Some(g)) => (Ipv4Addr::LOCALHOST, h, g),
                    _ => {
                        return Err(format!(
                            "ports above {http_port}/{gossip_port} run past 65535"
                        ))
                    }
                }
            };
            let sync_port = gossip.checked_add(1).ok_or_else(|| {
                format!("--gossip-port {gossip_port}: its sync port would pass 65535")
            })?;
            let name = format!("node-{i}");
            Ok(NodeSpec {
                http: SocketAddr::new(IpAddr::V4(ip), http),
                gossip: SocketAddr::new(IpAddr::V4(ip), gossip),
                sync_port,
                data_dir: root.join(&name),
                log: root.join(format!("{name}.log")),
                name,
            })
        })
        .collect()
}

/// What a running dev cluster publishes in `<dir>/dev.json` (rewritten on every
/// start, restart and stop of a node): enough for `aurora gameday` to find the nodes,
/// their PIDs, the admin token's file and the control socket.
#[derive(Debug, Serialize, Deserialize)]
pub struct StateFile {
    /// The `aurora dev` process.
    pub pid: u32,
    pub mode: String,
    /// The Unix socket `aurora dev` takes `restart`/`start`/`kill` commands on.
    pub control: PathBuf,
    /// The file holding the admin token (mode 0600).
    pub admin_token_file: PathBuf,
    pub nodes: Vec<NodeState>,
}

/// One node in [`StateFile`].
#[derive(Debug, Serialize, Deserialize)]
pub struct NodeState {
    pub name: String,
    pub url: String,
    /// `None` while the node is down.
    pub pid: Option<u32>,
    pub data_dir: PathBuf,
    pub log: PathBuf,
}

/// The state file of the dev cluster in `dir`.
pub fn state_path(dir: &Path) -> PathBuf {
    dir.join("dev.json")
}

/// Reads `<dir>/dev.json`, naming the file on failure.
pub fn read_state(dir: &Path) -> Result<StateFile, String> {
    let path = state_path(dir);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "cannot read {} (is `aurora dev --dir {}` running?): {e}",
            path.display(),
            dir.display()
        )
    })?;
    serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a dev cluster state file: {e}", path.display()))
}

/// Reads a secret kept in `path`, or writes a new one (32 random bytes as hex, mode
/// 0600): one secret per dev cluster, reused when the same `--dir` starts again.
pub fn secret_file(path: &Path) -> Result<String, String> {
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness from the OS: {e}"))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    std::io::Write::write_all(&mut file, hex.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_get_distinct_addresses_and_the_secret_is_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let specs = nodes(dir.path(), 3, 8080, 7946).expect("layout");
        let https: std::collections::HashSet<_> = specs.iter().map(|s| s.http).collect();
        let gossips: std::collections::HashSet<_> = specs.iter().map(|s| s.gossip).collect();
        assert_eq!((https.len(), gossips.len()), (3, 3));
        assert_eq!(specs[2].name, "node-3");
        assert!(
            nodes(dir.path(), 3, 65535, 7946).is_err() || specs[1].http.ip() != specs[0].http.ip()
        );

        let path = dir.path().join("secret");
        let first = secret_file(&path).expect("created");
        assert_eq!(first.len(), 64);
        assert_eq!(
            secret_file(&path).expect("read"),
            first,
            "one secret per dev cluster"
        );
    }
}
