//! What the three benchmarks share: realistic records, node settings, statistics and
//! the command line.
//!
//! Records are auth keys as the admin API writes them (every field set, ~250 bytes in
//! postcard), under random-looking ids, because auth keys are the collection that grows
//! into the hundreds of thousands and random ids are the worst case for the primary-key
//! B-tree (no appends at the right edge).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aurora_core::state::store::{Entry, Key, Value};
use aurora_core::{Hlc, NodeId};
use aurora_io::config::{self, ClusterSettings};
use aurora_schema::{AuthKey, Collection, Record, RecordId};

/// The cluster secret every bench node shares (loopback only).
pub const SECRET: &str = "aurora-io-bench-secret-0123456789abcdef";

/// A SplitMix64 step: a fixed, dependency-free stream of well-mixed ids.
fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The `i`-th auth key: a random-looking id and a fully populated record.
pub fn auth_key(i: u64) -> (RecordId, Record) {
    let h = mix(i);
    let id = RecordId::new(format!("key-{h:016x}")).expect("hex ids are in the id alphabet");
    let key = AuthKey {
        name: format!("team-{} production key {i}", i % 97),
        secret_hash: format!(
            "{:016x}{:016x}{:016x}{:016x}",
            h,
            mix(h),
            mix(h ^ 1),
            mix(h ^ 2)
        ),
        key_prefix: format!("sk-aur-{:04x}", h & 0xffff),
        allowed_models: vec!["chat".into(), "openai/gpt-4o-mini".into()],
        budget_id: Some(RecordId::new(format!("team-{}", i % 97)).expect("valid id")),
        workflow_id: Some(RecordId::new("default").expect("valid id")),
        rpm_limit: Some(600),
        tpm_limit: Some(100_000),
        expires_at_ms: Some(1_776_124_800_000),
        disabled: false,
        metadata: BTreeMap::from([("owner".into(), format!("user{}@example.com", i % 1000))]),
        max_parallel_requests: None,
    };
    (id, Record::AuthKey(key))
}

/// The `i`-th auth key as a replicated entry written by `origin` with sequence `i + 1`,
/// `i` milliseconds after an hour ago. (Recent on purpose: a node whose newest entry is
/// older than the tombstone TTL forgets its state at start-up and resyncs.)
pub fn auth_key_entry(origin: NodeId, i: u64) -> Entry {
    let (id, record) = auth_key(i);
    let hour_ago = wall_ms().saturating_sub(3_600_000);
    Entry {
        key: Key::Record(Collection::AuthKeys.id(), id),
        value: Some(Value::Record(aurora_schema::encode(&record))),
        hlc: Hlc {
            wall: hour_ago + i,
            logical: 0,
            origin: aurora_core::Origin::new(origin, aurora_core::Life::default()),
        },
        seq: i + 1,
    }
}

/// The wall clock in Unix milliseconds.
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Validated settings of a loopback node `name` on `port`, seeding through `seeds`.
pub fn settings(name: &str, port: u16, seeds: &[SocketAddr]) -> ClusterSettings {
    let seeds: Vec<String> = seeds.iter().map(|s| format!("\"{s}\"")).collect();
    let yaml = format!(
        "cluster:\n  enabled: true\n  node_id: {name}\n  bind_addr: 127.0.0.1\n  bind_port: {port}\n  sync_bind_port: {sync}\n  seed_nodes: [{seeds}]\n",
        sync = port.wrapping_add(1).max(1),
        seeds = seeds.join(", "),
    );
    let env = HashMap::from([("CLUSTER_SECRET".to_string(), SECRET.to_string())]);
    config::load(&yaml, &env).expect("bench settings are valid")
}

/// A free UDP port on 127.0.0.1 (bound, read and released).
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral loopback port")
}

/// The median of `samples` (the mean of the middle two for an even count).
pub fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// `min / median / max` of a sample, formatted with `unit`.
pub fn summary(samples: &[f64], unit: &str) -> String {
    let min = samples.iter().copied().fold(f64::INFINITY, f64::min);
    let max = samples.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!(
        "median {:.1} {unit} (min {min:.1}, max {max:.1}, {} runs)",
        median(samples),
        samples.len()
    )
}

pub fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The command line: `<what> [--name value]...`. cargo's own `--bench` flag is ignored.
pub struct Args {
    pub what: String,
    options: HashMap<String, String>,
}

impl Args {
    pub fn parse() -> Result<Args, String> {
        let mut what = None;
        let mut options = HashMap::new();
        let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
        while let Some(arg) = args.next() {
            match arg.strip_prefix("--") {
                Some(name) => {
                    let value = args.next().ok_or(format!("--{name} needs a value"))?;
                    options.insert(name.to_string(), value);
                }
                None if what.is_none() => what = Some(arg),
                None => return Err(format!("unexpected argument {arg:?}")),
            }
        }
        Ok(Args {
            what: what.unwrap_or_else(|| "all".into()),
            options,
        })
    }

    /// The option `--name` as given, if present.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.options.get(name).map(String::as_str)
    }

    /// The numeric option `--name`, or `default`.
    pub fn number(&self, name: &str, default: u64) -> Result<u64, String> {
        self.options.get(name).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| format!("--{name}: not a number: {v:?}"))
        })
    }

    /// The comma-separated numbers of option `--name`, or `default`.
    pub fn numbers(&self, name: &str, default: &[u64]) -> Result<Vec<u64>, String> {
        let Some(list) = self.options.get(name) else {
            return Ok(default.to_vec());
        };
        list.split(',')
            .map(|v| {
                v.trim()
                    .parse()
                    .map_err(|_| format!("--{name}: not a number: {v:?}"))
            })
            .collect()
    }
}
