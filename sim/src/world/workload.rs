//! The write workload: random record puts and deletes, usage increments, and the
//! records nodes start with.

use super::*;

/// Random writes during a run: record puts and deletes on a small key space (so
/// keys are overwritten and deleted concurrently from several nodes) and usage.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    /// Record writes per second, cluster-wide.
    pub writes_per_sec: f64,
    /// Distinct record ids written.
    pub keys: usize,
    /// Share of record writes that are deletes.
    pub delete_ratio: f64,
    /// Usage increments per second, cluster-wide.
    pub usage_per_sec: f64,
    /// Quota leases under load (see [`QuotaLoad`]); none by default.
    pub quota: Option<QuotaLoad>,
}

/// Admissions against cluster-wide limits through quota leases: each up node runs a
/// holder, as the gateway does, and admits one unit at a time of each of two quotas
/// (one per window, one rolling over several windows); the `quota-bound` check
/// counts what was admitted per window (per span of windows) after every admission.
#[derive(Clone, Debug, PartialEq)]
pub struct QuotaLoad {
    /// Admission attempts per second, cluster-wide (well above `limit / window`, so
    /// every window reaches its limit).
    pub per_sec: f64,
    /// Units a window admits at most.
    pub limit: u64,
    /// The window's length (its index is read from each node's own wall clock).
    pub window: Duration,
    /// A second quota, rolling: `limit` over any `rolling_span` consecutive windows
    /// of `rolling_window` (as a key's rpm limit is, in the gateway).
    pub rolling_window: Duration,
    /// How many of those windows share the limit.
    pub rolling_span: u32,
}

impl Default for QuotaLoad {
    fn default() -> Self {
        QuotaLoad {
            per_sec: 50.0,
            limit: 100,
            window: Duration::from_secs(10),
            rolling_window: Duration::from_secs(2),
            rolling_span: 5,
        }
    }
}

impl Workload {
    pub fn none() -> Workload {
        Workload {
            writes_per_sec: 0.0,
            keys: 1,
            delete_ratio: 0.0,
            usage_per_sec: 0.0,
            quota: None,
        }
    }
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            writes_per_sec: 2.0,
            keys: 16,
            delete_ratio: 0.25,
            usage_per_sec: 4.0,
            quota: None,
        }
    }
}

/// Writes stop this long before the end, so the checks see a quiet cluster.
pub const QUIET_TAIL: Duration = Duration::from_secs(30);

/// A model record whose id is `model-{k}`.
pub fn sample_model(k: usize, version: u64) -> (RecordId, Record) {
    let id = RecordId::new(format!("model-{k}")).unwrap_or_else(|_| unreachable_id());
    let model = Model {
        provider_id: RecordId::new("mock").unwrap_or_else(|_| unreachable_id()),
        upstream_model: format!("upstream-model-v{version}"),
        aliases: Vec::new(),
        context_window: Some(128_000),
        enabled: true,
    };
    (id, Record::Model(model))
}

fn unreachable_id() -> RecordId {
    // Only reached if the id alphabet stopped accepting "model-0"; keep the sim
    // going with an id that is valid by construction.
    RecordId::new("x").expect("a one-letter id is valid")
}

/// `n` records as n1 wrote them long ago, identical on every node that has them.
pub(super) fn preloaded(n: usize) -> Vec<aurora_core::state::store::Entry> {
    use aurora_core::state::store::{Entry, Value};
    (0..n)
        .map(|k| {
            let (id, record) = sample_model(k, 0);
            Entry {
                key: Key::Record(Collection::Models.id(), id),
                value: Some(Value::Record(aurora_schema::encode(&record))),
                hlc: aurora_core::Hlc {
                    wall: EPOCH_MS - 1_000,
                    logical: k as u32,
                    origin: aurora_core::Origin::new(NodeId(1), Life(1)),
                },
                seq: k as u64 + 1,
            }
        })
        .collect()
}

impl World {
    pub(super) fn schedule_workload(&mut self, ev: Ev, per_sec: f64) {
        let mean = 1000.0 / per_sec;
        let gap = Duration::from_millis(1 + (2.0 * mean * self.rng.unit()) as u64);
        if self.now + gap + QUIET_TAIL < self.end() {
            self.push(self.now + gap, ev);
        }
    }

    pub(super) fn random_up_node(&mut self) -> Option<usize> {
        let up: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_up())
            .collect();
        up.get(self.rng.below(up.len().max(1))).copied()
    }

    /// A put or delete of a random model record at a random up node. What the
    /// node acknowledges (returns a timestamp for) must survive everything.
    pub(super) fn write(&mut self) {
        let Some(i) = self.random_up_node() else {
            return;
        };
        let k = self.rng.below(self.params.workload.keys.max(1));
        let Ok(id) = RecordId::new(format!("model-{k}")) else {
            return;
        };
        let delete = self.rng.chance(self.params.workload.delete_ratio);
        let version = self.rng.next_u64() % 1_000_000;
        let command = if delete {
            Command::Delete {
                collection: Collection::Models.id(),
                id: id.clone(),
            }
        } else {
            let (_, record) = sample_model(k, version);
            aurora_schema::put(id.clone(), &record)
        };
        let mut acked = None;
        self.with_node(i, |node, now| {
            if let Ok(Some(hlc)) = node.handle_command(now, command) {
                acked = Some(hlc);
            }
        });
        if let Some(hlc) = acked {
            let key = Key::Record(Collection::Models.id(), id);
            self.obs.acked(key, hlc, !delete);
        }
    }

    pub(super) fn use_budget(&mut self) {
        let Some(i) = self.random_up_node() else {
            return;
        };
        let b = self.rng.below(4);
        let Ok(budget) = RecordId::new(format!("budget-{b}")) else {
            return;
        };
        let usage = Usage {
            spend_nanos: 1_500,
            requests: 1,
            tokens: 10,
        };
        self.with_node(i, |node, now| {
            let _ = node.handle_command(
                now,
                Command::RecordUsage {
                    budget,
                    period: 1,
                    usage,
                },
            );
        });
    }
}
