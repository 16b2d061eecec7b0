//! The `cluster:` block of `aurora.yaml`, overlaid by the `CLUSTER_*` environment
//! variables, validated, and turned into the core's [`Config`] and [`Identity`].
//!
//! Why this shape:
//! * Parsing is a pure function of the YAML text and an environment *map* (plus reading
//!   the secret files it names), so every rule and every error path is unit-tested
//!   without touching the process environment.
//! * `deny_unknown_fields` everywhere: a misspelt key (`bind_prot`) is an error that names
//!   it, never a silently ignored setting. Only the `cluster:` block is read here; the
//!   other top-level sections belong to the gateway.
//! * The secret is never accepted inline in the YAML (config files end up in repositories
//!   and tickets): it comes from `CLUSTER_SECRET` or a file (`cluster.secret_file`), and
//!   the previous secret of a rotation from `cluster.previous_secret_file`. [`Secret`]
//!   never prints its bytes.
//! * Every error names the key (or variable) and the form expected, so an operator can
//!   fix it from the message alone.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use aurora_core::Admission;
use aurora_core::FailoverMode;
use aurora_core::{ClusterId, Config, Identity, MemberMeta, NodeId, Role, Timing};
use serde::Deserialize;

pub use crate::transport::limits::HandshakeLimits;
pub use crate::transport::tls::KdfParams;

/// Default gossip port (memberlist's).
pub const DEFAULT_BIND_PORT: u16 = 7946;
/// Default state-sync port.
pub const DEFAULT_SYNC_PORT: u16 = 7947;
/// Cluster name when none is configured.
pub const DEFAULT_CLUSTER_NAME: &str = "aurora";
/// Shortest accepted secret: 32 bytes, what `openssl rand -hex 32` prints half of. The
/// secret guards the cluster CA, and a stranger who completes a handshake can test
/// guesses offline (at the cost of one Argon2id run each): only a long random secret
/// makes that hopeless. Human-chosen phrases of this length are still weak; generate it.
pub const MIN_SECRET_LEN: usize = 32;
/// Gossip datagram budget. A QUIC datagram must fit one packet; quinn starts at the
/// 1200-byte minimum QUIC path MTU, which leaves about 1150 bytes of datagram payload.
/// Messages larger than the connection allows are sent on a stream instead (counted),
/// but filling piggybacked rumours up to this size keeps that rare.
pub const DEFAULT_MAX_DATAGRAM: usize = 1100;

/// The environment variables that overlay the file, exactly those of the seed docs.
pub const ENV_VARS: [&str; 14] = [
    "CLUSTER_ENABLED",
    "CLUSTER_NODE_ID",
    "CLUSTER_NODE_NAME",
    "CLUSTER_REGION",
    "CLUSTER_ZONE",
    "CLUSTER_BIND_ADDR",
    "CLUSTER_BIND_PORT",
    "CLUSTER_SYNC_BIND_ADDR",
    "CLUSTER_SYNC_BIND_PORT",
    "CLUSTER_SEED_NODES",
    "CLUSTER_ADVERTISE_URL",
    "CLUSTER_HEARTBEAT_INTERVAL_SECONDS",
    "CLUSTER_FAILOVER_MODE",
    "CLUSTER_SECRET",
];

/// A `cluster:` block (or `CLUSTER_*` variable) that cannot run; every variant names
/// the key or variable at fault. (The core's own [`aurora_core::ConfigError`] is about
/// a [`Config`] built in code; [`resolve_timing`] turns it into this, naming the key.)
#[derive(Debug, thiserror::Error)]
pub enum ClusterConfigError {
    #[error("invalid YAML: {0}")]
    Yaml(String),
    #[error("`{key}`: expected {expected}, got {got:?}")]
    Invalid {
        key: String,
        expected: String,
        got: String,
    },
    #[error("`{key}` is required: {expected}")]
    Missing { key: String, expected: String },
    #[error("`{key}`: cannot read {path}: {source}")]
    SecretFile {
        key: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

fn invalid(key: &str, expected: &str, got: impl fmt::Display) -> ClusterConfigError {
    ClusterConfigError::Invalid {
        key: key.to_string(),
        expected: expected.to_string(),
        got: got.to_string(),
    }
}

/// `cluster.failover_mode` when it is not set. Not the core's
/// [`FailoverMode::default`] (`single_node`, the safe choice for a bare `Node` built in
/// code): a node an operator clusters without naming a mode has always served from
/// every member (`active_active`), and keeping it so is part of the config format.
pub const DEFAULT_FAILOVER_MODE: FailoverMode = FailoverMode::ActiveActive;

/// Timing base profile.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimingProfile {
    #[default]
    Lan,
    Wan,
}

/// `cluster.timing`: a profile and optional per-field overrides.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimingFile {
    pub profile: Option<TimingProfile>,
    pub probe_interval_ms: Option<u64>,
    pub probe_timeout_ms: Option<u64>,
    pub indirect_checks: Option<usize>,
    pub suspicion_mult: Option<u32>,
    pub suspicion_max_timeout_mult: Option<u32>,
    pub retransmit_mult: Option<u32>,
    pub gossip_nodes: Option<usize>,
    pub gossip_interval_ms: Option<u64>,
    pub push_pull_interval_ms: Option<u64>,
    pub reap_after_seconds: Option<u64>,
    pub tombstone_ttl_seconds: Option<u64>,
    pub reconnect_interval_ms: Option<u64>,
    pub max_datagram: Option<usize>,
}

/// The `cluster:` block as written. Every field is optional here; defaults and
/// requirements are applied by [`ClusterFile::resolve`].
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    pub enabled: Option<bool>,
    pub cluster_name: Option<String>,
    pub node_id: Option<String>,
    pub node_name: Option<String>,
    pub region: Option<String>,
    pub zone: Option<String>,
    pub bind_addr: Option<String>,
    pub bind_port: Option<u16>,
    /// The IP peers reach this node's gossip port at; needed when `bind_addr` is a
    /// wildcard (0.0.0.0 / ::), because the node announces its own address.
    pub advertise_addr: Option<String>,
    pub sync_bind_addr: Option<String>,
    pub sync_bind_port: Option<u16>,
    pub seed_nodes: Option<Vec<String>>,
    pub advertise_url: Option<String>,
    pub heartbeat_interval_seconds: Option<f64>,
    pub failover_mode: Option<FailoverMode>,
    /// `auto` (default) or `manual`: see [`ClusterSettings::admission`].
    pub admission: Option<Admission>,
    /// How many founding members elect the first leader (see
    /// [`ClusterSettings::bootstrap_expect`]).
    pub bootstrap_expect: Option<u32>,
    pub promotion_tier: Option<u8>,
    pub capacity: Option<u32>,
    pub role: Option<Role>,
    pub timing: Option<TimingFile>,
    pub secret_file: Option<PathBuf>,
    pub previous_secret_file: Option<PathBuf>,
    /// Networks inbound cluster handshakes may come from (see [`HandshakeLimits`]).
    pub allowed_peers: Option<Vec<String>>,
    pub max_handshakes: Option<usize>,
    pub handshake_timeout_ms: Option<u64>,
}

/// Only the `cluster:` key of the whole document; the rest is the gateway's.
#[derive(Deserialize)]
struct Document {
    #[serde(default)]
    cluster: Option<ClusterFile>,
}

/// A cluster secret. Its bytes never appear in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Validates length; surrounding whitespace (a file's trailing newline) is trimmed.
    pub fn new(key: &str, bytes: &[u8]) -> Result<Secret, ClusterConfigError> {
        let trimmed = bytes.trim_ascii();
        if trimmed.len() < MIN_SECRET_LEN {
            return Err(invalid(
                key,
                "a random secret of at least 32 bytes (generate one with `openssl rand -hex 32`)",
                format!("{} bytes", trimmed.len()),
            ));
        }
        Ok(Secret(trimmed.to_vec()))
    }

    /// The secret's bytes, for key derivation only.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The current secret and, during a rotation, the previous one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Secrets {
    pub current: Secret,
    pub previous: Option<Secret>,
}

/// A validated `cluster:` block.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterSettings {
    pub enabled: bool,
    pub cluster_name: String,
    pub node_id: String,
    pub node_name: String,
    pub region: String,
    pub zone: String,
    pub bind: SocketAddr,
    /// This node's gossip address as peers see it.
    pub advertise: SocketAddr,
    /// Announced to peers as `MemberMeta::sync_addr` (the dashboard shows it). Nothing
    /// binds it yet: push-pull and anti-entropy ride on QUIC streams of the gossip
    /// endpoint, which already gives them reliability, flow control and mutual TLS.
    pub sync_bind: SocketAddr,
    /// `host:port` strings; resolved at start-up and retried while running by
    /// [`crate::seeds`].
    pub seed_nodes: Vec<String>,
    pub advertise_url: String,
    pub failover_mode: FailoverMode,
    /// How an unknown (node id, storage life) is treated: `auto` binds it on first
    /// contact, `manual` keeps it pending (visible in `cluster/status`, every
    /// message dropped) until an operator admits it.
    pub admission: Admission,
    /// `failover.expected_voters` of the core: on the nodes that start a new
    /// cluster, how many of them (all set alike) elect the first leader; 0 on a
    /// node that joins an existing cluster. Default: see [`default_bootstrap_expect`].
    pub bootstrap_expect: u32,
    pub promotion_tier: u8,
    pub capacity: u32,
    pub role: Role,
    pub timing: Timing,
    /// `None` only when clustering is disabled.
    pub secrets: Option<Secrets>,
    /// Cost of deriving the cluster keys from the secret. Always
    /// [`KdfParams::PRODUCTION`] from the configuration (there is no key for it); only
    /// code may lower it, for a generated single-process secret or in tests.
    pub kdf: KdfParams,
    /// What an inbound handshake may cost and who may start one.
    pub handshakes: HandshakeLimits,
}

/// Parses the `cluster:` block of an `aurora.yaml` document and overlays `env`.
/// A document without a `cluster:` key gives the disabled defaults (still overlaid).
pub fn load(
    yaml: &str,
    env: &HashMap<String, String>,
) -> Result<ClusterSettings, ClusterConfigError> {
    let file = parse_document(yaml)?;
    file.overlay_env(env)?.resolve(env)
}

/// Like [`load`], for a caller that already parsed the document and kept the `cluster:`
/// block as a raw YAML value (the gateway's `aurora.yaml` reader does).
pub fn load_value(
    cluster: Option<serde_norway::Value>,
    env: &HashMap<String, String>,
) -> Result<ClusterSettings, ClusterConfigError> {
    let file: ClusterFile = match cluster {
        Some(serde_norway::Value::Null) | None => ClusterFile::default(),
        Some(v) => {
            serde_norway::from_value(v).map_err(|e| ClusterConfigError::Yaml(e.to_string()))?
        }
    };
    file.overlay_env(env)?.resolve(env)
}

/// Just the `cluster:` block, unvalidated.
pub fn parse_document(yaml: &str) -> Result<ClusterFile, ClusterConfigError> {
    if yaml.trim().is_empty() {
        return Ok(ClusterFile::default());
    }
    let doc: Document =
        serde_norway::from_str(yaml).map_err(|e| ClusterConfigError::Yaml(e.to_string()))?;
    Ok(doc.cluster.unwrap_or_default())
}

fn parse_bool(key: &str, s: &str) -> Result<bool, ClusterConfigError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        other => Err(invalid(key, "true or false", other)),
    }
}

/// `cluster.bootstrap_expect` when it is not set: 1 on a node without seed nodes
/// (it founds the cluster alone; the others join it); the number of seed nodes
/// when this node is one of them (the seed list is then the list of founders, the
/// usual layout of a fixed cluster); otherwise 0 (a newcomer, admitted by the
/// leader). A seed names this node when it is its own `ip:port`, or when its host
/// is the node id or starts with the node id and a dot: a StatefulSet pod
/// `aurora-0` (node id from the pod name) listed as
/// `aurora-0.aurora-peers.ns.svc.cluster.local:7946`. So the founding pods of a
/// Helm chart found the cluster and the pods a scale-up adds later join it, from
/// the same seed list and environment.
pub fn default_bootstrap_expect(
    seeds: &[String],
    advertise: SocketAddr,
    node_id: &str,
    max: u32,
) -> u32 {
    if seeds.is_empty() {
        return 1;
    }
    let own = advertise.to_string();
    let names_self = |seed: &str| {
        let seed = seed.trim();
        if seed == own {
            return true;
        }
        let host = split_host_port(seed).map_or(seed, |(h, _)| h);
        !node_id.is_empty()
            && host.len() >= node_id.len()
            && host[..node_id.len()].eq_ignore_ascii_case(node_id)
            && matches!(host.as_bytes().get(node_id.len()), None | Some(b'.'))
    };
    if seeds.iter().any(|s| names_self(s)) {
        return u32::try_from(seeds.len()).unwrap_or(u32::MAX).min(max);
    }
    0
}

fn parse_num<T: std::str::FromStr>(
    key: &str,
    s: &str,
    expected: &str,
) -> Result<T, ClusterConfigError> {
    s.trim().parse().map_err(|_| invalid(key, expected, s))
}

impl ClusterFile {
    /// Applies the `CLUSTER_*` variables over the file's values. `CLUSTER_SECRET` is
    /// read in [`ClusterFile::resolve`].
    pub fn overlay_env(
        mut self,
        env: &HashMap<String, String>,
    ) -> Result<Self, ClusterConfigError> {
        let get = |k: &str| env.get(k).map(String::as_str);
        if let Some(v) = get("CLUSTER_ENABLED") {
            self.enabled = Some(parse_bool("CLUSTER_ENABLED", v)?);
        }
        let strings: [(&str, &mut Option<String>); 7] = [
            ("CLUSTER_NODE_ID", &mut self.node_id),
            ("CLUSTER_NODE_NAME", &mut self.node_name),
            ("CLUSTER_REGION", &mut self.region),
            ("CLUSTER_ZONE", &mut self.zone),
            ("CLUSTER_BIND_ADDR", &mut self.bind_addr),
            ("CLUSTER_SYNC_BIND_ADDR", &mut self.sync_bind_addr),
            ("CLUSTER_ADVERTISE_URL", &mut self.advertise_url),
        ];
        for (k, slot) in strings {
            if let Some(v) = get(k) {
                *slot = Some(v.to_string());
            }
        }
        if let Some(v) = get("CLUSTER_BIND_PORT") {
            self.bind_port = Some(parse_num("CLUSTER_BIND_PORT", v, "a port 1-65535")?);
        }
        if let Some(v) = get("CLUSTER_SYNC_BIND_PORT") {
            self.sync_bind_port = Some(parse_num("CLUSTER_SYNC_BIND_PORT", v, "a port 1-65535")?);
        }
        if let Some(v) = get("CLUSTER_SEED_NODES") {
            self.seed_nodes = Some(
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
            );
        }
        if let Some(v) = get("CLUSTER_HEARTBEAT_INTERVAL_SECONDS") {
            self.heartbeat_interval_seconds = Some(parse_num(
                "CLUSTER_HEARTBEAT_INTERVAL_SECONDS",
                v,
                "a number of seconds greater than 0",
            )?);
        }
        if let Some(v) = get("CLUSTER_FAILOVER_MODE") {
            let mode = v.parse::<FailoverMode>().map_err(|e| match e {
                aurora_core::ConfigError::Invalid { expected, .. } => {
                    invalid("CLUSTER_FAILOVER_MODE", expected, v.trim())
                }
            })?;
            self.failover_mode = Some(mode);
        }
        if let Some(v) = get("CLUSTER_ADMISSION") {
            self.admission = Some(match v.trim() {
                "auto" => Admission::Auto,
                "manual" => Admission::Manual,
                other => return Err(invalid("CLUSTER_ADMISSION", "auto or manual", other)),
            });
        }
        if let Some(v) = get("CLUSTER_BOOTSTRAP_EXPECT") {
            self.bootstrap_expect = Some(parse_num(
                "CLUSTER_BOOTSTRAP_EXPECT",
                v,
                "a whole number from 0 to 7",
            )?);
        }
        Ok(self)
    }

    /// Applies defaults, checks every value, reads the secrets.
    pub fn resolve(
        self,
        env: &HashMap<String, String>,
    ) -> Result<ClusterSettings, ClusterConfigError> {
        let enabled = self.enabled.unwrap_or(false);
        let cluster_name = self
            .cluster_name
            .unwrap_or_else(|| DEFAULT_CLUSTER_NAME.to_string());
        check_str("cluster.cluster_name", &cluster_name, false)?;
        let node_id = match self.node_id {
            Some(id) => {
                check_str("cluster.node_id", &id, false)?;
                id
            }
            None if enabled => {
                return Err(ClusterConfigError::Missing {
                    key: "cluster.node_id (or CLUSTER_NODE_ID)".into(),
                    expected: "a stable, unique name for this node, e.g. `node-1`".into(),
                })
            }
            None => String::new(),
        };
        let node_name = self.node_name.unwrap_or_else(|| node_id.clone());
        check_str("cluster.node_name", &node_name, true)?;
        let region = self.region.unwrap_or_default();
        check_str("cluster.region", &region, true)?;
        let zone = self.zone.unwrap_or_default();
        check_str("cluster.zone", &zone, true)?;

        let bind_ip = parse_ip("cluster.bind_addr", self.bind_addr.as_deref())?;
        let bind_port = port("cluster.bind_port", self.bind_port, DEFAULT_BIND_PORT)?;
        let bind = SocketAddr::new(bind_ip, bind_port);
        let advertise_ip = match self.advertise_addr.as_deref() {
            Some(s) => parse_ip("cluster.advertise_addr", Some(s))?,
            None if bind_ip.is_unspecified() && enabled => {
                return Err(ClusterConfigError::Missing {
                    key: "cluster.advertise_addr".into(),
                    expected: "the IP peers reach this node at, because bind_addr is a wildcard"
                        .into(),
                })
            }
            None => bind_ip,
        };
        if advertise_ip.is_unspecified() && enabled {
            return Err(invalid(
                "cluster.advertise_addr",
                "a concrete IP address, not a wildcard",
                advertise_ip,
            ));
        }
        let advertise = SocketAddr::new(advertise_ip, bind_port);
        let sync_ip = parse_ip("cluster.sync_bind_addr", self.sync_bind_addr.as_deref())?;
        let sync_port = port(
            "cluster.sync_bind_port",
            self.sync_bind_port,
            DEFAULT_SYNC_PORT,
        )?;
        let sync_bind = SocketAddr::new(sync_ip, sync_port);
        if enabled && sync_bind == bind {
            return Err(invalid(
                "cluster.sync_bind_port",
                "a port different from bind_port on the same address",
                sync_port,
            ));
        }

        let seed_nodes = self.seed_nodes.unwrap_or_default();
        for seed in &seed_nodes {
            check_seed(seed)?;
        }
        let advertise_url = self.advertise_url.unwrap_or_default();
        check_str("cluster.advertise_url", &advertise_url, true)?;
        let is_url = advertise_url.starts_with("http://") || advertise_url.starts_with("https://");
        if !(advertise_url.is_empty() || is_url) {
            return Err(invalid(
                "cluster.advertise_url",
                "an http:// or https:// URL",
                &advertise_url,
            ));
        }
        let promotion_tier = self.promotion_tier.unwrap_or(0);
        if promotion_tier > MemberMeta::MAX_TIER {
            return Err(invalid("cluster.promotion_tier", "0 to 15", promotion_tier));
        }
        let capacity = self.capacity.unwrap_or(100);
        let max_voters = aurora_core::FailoverConfig::default().max_voters;
        let bootstrap_expect = self.bootstrap_expect.unwrap_or_else(|| {
            default_bootstrap_expect(&seed_nodes, advertise, &node_id, max_voters)
        });
        if bootstrap_expect > max_voters {
            return Err(invalid(
                "cluster.bootstrap_expect",
                "a whole number from 0 to 7 (founding voters)",
                bootstrap_expect,
            ));
        }
        let role = self.role.unwrap_or_default();
        let timing = resolve_timing(
            self.timing.unwrap_or_default(),
            self.heartbeat_interval_seconds,
        )?;

        let handshakes = HandshakeLimits::from_config(
            self.allowed_peers.as_deref(),
            self.max_handshakes,
            self.handshake_timeout_ms,
        )?;

        let secrets = if enabled {
            let current = match env.get("CLUSTER_SECRET") {
                Some(s) => Secret::new("CLUSTER_SECRET", s.as_bytes())?,
                None => match &self.secret_file {
                    Some(path) => read_secret("cluster.secret_file", path)?,
                    None => {
                        return Err(ClusterConfigError::Missing {
                            key: "CLUSTER_SECRET (or cluster.secret_file)".into(),
                            expected: "the shared cluster secret, at least 32 random bytes (`openssl rand -hex 32`)"
                                .into(),
                        })
                    }
                },
            };
            let previous = match &self.previous_secret_file {
                Some(path) => Some(read_secret("cluster.previous_secret_file", path)?),
                None => None,
            };
            Some(Secrets { current, previous })
        } else {
            None
        };

        Ok(ClusterSettings {
            enabled,
            cluster_name,
            node_id,
            node_name,
            region,
            zone,
            bind,
            advertise,
            sync_bind,
            seed_nodes,
            advertise_url,
            failover_mode: self.failover_mode.unwrap_or(DEFAULT_FAILOVER_MODE),
            admission: self.admission.unwrap_or_default(),
            bootstrap_expect,
            promotion_tier,
            capacity,
            role,
            timing,
            secrets,
            kdf: KdfParams::PRODUCTION,
            handshakes,
        })
    }
}

fn check_str(key: &str, s: &str, empty_ok: bool) -> Result<(), ClusterConfigError> {
    if !empty_ok && s.trim().is_empty() {
        return Err(invalid(key, "a non-empty string", s));
    }
    if s.len() > MemberMeta::MAX_STR {
        return Err(invalid(
            key,
            "at most 256 bytes",
            format!("{} bytes", s.len()),
        ));
    }
    Ok(())
}

fn parse_ip(key: &str, s: Option<&str>) -> Result<IpAddr, ClusterConfigError> {
    match s {
        None => Ok(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        Some(s) => s
            .trim()
            .parse()
            .map_err(|_| invalid(key, "an IP address such as 0.0.0.0 or 10.0.0.5", s)),
    }
}

fn port(key: &str, v: Option<u16>, default: u16) -> Result<u16, ClusterConfigError> {
    match v.unwrap_or(default) {
        0 => Err(invalid(key, "a port 1-65535", 0)),
        p => Ok(p),
    }
}

/// `host:port`, `host` (default port) or `[v6]:port`.
fn check_seed(seed: &str) -> Result<(), ClusterConfigError> {
    split_seed(seed).map(drop)
}

/// A seed entry's host and port (`None`: the default port), or the error naming
/// `cluster.seed_nodes` and the entry.
pub(crate) fn split_seed(seed: &str) -> Result<(&str, Option<u16>), ClusterConfigError> {
    let bad = || invalid("cluster.seed_nodes", "a list of host:port entries", seed);
    let (host, port_str) = split_host_port(seed).ok_or_else(bad)?;
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(bad());
    }
    let port = match port_str {
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(bad()),
            Ok(p) => Some(p),
        },
        None => None,
    };
    Ok((host, port))
}

fn split_host_port(seed: &str) -> Option<(&str, Option<&str>)> {
    let seed = seed.trim();
    if let Some(rest) = seed.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            a => Some((host, Some(a.strip_prefix(':')?))),
        };
    }
    match seed.rsplit_once(':') {
        Some((h, _)) if h.contains(':') => Some((seed, None)), // bare IPv6
        Some((h, p)) => Some((h, Some(p))),
        None => Some((seed, None)),
    }
}

fn read_secret(key: &str, path: &PathBuf) -> Result<Secret, ClusterConfigError> {
    let bytes = std::fs::read(path).map_err(|source| ClusterConfigError::SecretFile {
        key: key.to_string(),
        path: path.clone(),
        source,
    })?;
    Secret::new(key, &bytes)
}

fn resolve_timing(t: TimingFile, heartbeat_s: Option<f64>) -> Result<Timing, ClusterConfigError> {
    let mut timing = match t.profile.unwrap_or_default() {
        TimingProfile::Lan => Timing::lan(),
        TimingProfile::Wan => Timing::wan(),
    };
    timing.max_datagram = DEFAULT_MAX_DATAGRAM;
    let ms = Duration::from_millis;
    if let Some(v) = t.probe_interval_ms {
        timing.probe_interval = ms(v);
    }
    if let Some(v) = t.probe_timeout_ms {
        timing.probe_timeout = ms(v);
    }
    if let Some(v) = t.indirect_checks {
        timing.indirect_checks = v;
    }
    if let Some(v) = t.suspicion_mult {
        timing.suspicion_mult = v;
    }
    if let Some(v) = t.suspicion_max_timeout_mult {
        timing.suspicion_max_timeout_mult = v;
    }
    if let Some(v) = t.retransmit_mult {
        timing.retransmit_mult = v;
    }
    if let Some(v) = t.gossip_nodes {
        timing.gossip_nodes = v;
    }
    if let Some(v) = t.gossip_interval_ms {
        timing.gossip_interval = ms(v);
    }
    if let Some(v) = t.push_pull_interval_ms {
        timing.push_pull_interval = ms(v);
    }
    if let Some(v) = t.reap_after_seconds {
        timing.reap_after = Duration::from_secs(v);
    }
    if let Some(v) = t.tombstone_ttl_seconds {
        timing.tombstone_ttl = Duration::from_secs(v);
    }
    if let Some(v) = t.reconnect_interval_ms {
        timing.reconnect_interval = ms(v);
    }
    if let Some(v) = t.max_datagram {
        timing.max_datagram = v;
    }
    if let Some(s) = heartbeat_s {
        if !(s.is_finite() && s > 0.0 && s <= 3600.0) {
            return Err(invalid(
                "cluster.heartbeat_interval_seconds",
                "a number of seconds greater than 0 and at most 3600",
                s,
            ));
        }
        timing.heartbeat_interval = Duration::from_millis(((s * 1000.0).round() as u64).max(1));
    }
    timing.validate().map_err(|e| match e {
        aurora_core::ConfigError::Invalid { field, expected } => {
            invalid(&format!("cluster.timing.{field}"), expected, "")
        }
    })?;
    Ok(timing)
}

impl ClusterSettings {
    /// The core's configuration and this node's identity. `version` is the software
    /// version announced to peers.
    pub fn to_core(&self, version: &str) -> (Config, Identity) {
        let config = Config {
            cluster: ClusterId::from_name(&self.cluster_name),
            timing: self.timing.clone(),
            state: Default::default(),
            failover: aurora_core::FailoverConfig {
                expected_voters: self.bootstrap_expect,
                ..aurora_core::FailoverConfig::with_mode(self.failover_mode)
            },
            admission: self.admission,
        };
        let identity = Identity {
            id: NodeId::from_name(&self.node_id),
            // Set by `launch`: the life of the node key that belongs to the data directory.
            life: aurora_core::Life::default(),
            addr: self.advertise,
            meta: MemberMeta {
                name: self.node_name.clone(),
                region: self.region.clone(),
                zone: self.zone.clone(),
                advertise_url: self.advertise_url.clone(),
                sync_addr: self.sync_bind,
                promotion_tier: self.promotion_tier,
                capacity: self.capacity,
                role: self.role,
                version: version.to_string(),
                config_fingerprint: self.config_fingerprint(),
                bootstrap_expect: self.bootstrap_expect,
            },
        };
        (config, identity)
    }

    /// A stable hash of the settings every member must agree on (failover mode and
    /// timing), so a node with a divergent config is visible on the dashboard. FNV-1a
    /// over a canonical text form: stable across builds and machines, unlike `std`'s
    /// hashers or a serialisation format that may change.
    pub fn config_fingerprint(&self) -> u64 {
        let t = &self.timing;
        let canonical = format!(
            "failover={};probe={};probe_timeout={};indirect={};susp={};susp_max={};retx={};gossip_nodes={};gossip={};push_pull={};heartbeat={};reap={};tombstone={};dead_gossip={};awareness={};reconnect={};join_retry={};leave={};datagram={}",
            self.failover_mode.as_str(),
            t.probe_interval.as_millis(),
            t.probe_timeout.as_millis(),
            t.indirect_checks,
            t.suspicion_mult,
            t.suspicion_max_timeout_mult,
            t.retransmit_mult,
            t.gossip_nodes,
            t.gossip_interval.as_millis(),
            t.push_pull_interval.as_millis(),
            t.heartbeat_interval.as_millis(),
            t.reap_after.as_millis(),
            t.tombstone_ttl.as_millis(),
            t.gossip_to_the_dead.as_millis(),
            t.awareness_max_multiplier,
            t.reconnect_interval.as_millis(),
            t.join_retry.as_millis(),
            t.leave_propagate.as_millis(),
            t.max_datagram,
        );
        aurora_core::fnv1a64(canonical.as_bytes())
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
