//! How far a cluster-wide budget can be overshot: three nodes, each running the real
//! policy layer, share one budget through a simulated counter that propagates usage
//! the way the replicated store does. A node sees its own usage at once; each node
//! publishes what it recorded at its next usage flush (every `flush_ms`, the three
//! nodes' flush ticks a third of a period apart, as unsynchronised processes would
//! be) and the others see it `transit_ms` later (gossip). `flush_ms = 0` is the
//! older, simpler model: every write visible to the others after a fixed delay.
//! Requests arrive round-robin at a fixed rate, in simulated time, so the run is exact
//! and deterministic. The figures are quoted in docs/benchmarks-gateway.md.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aurora_core::state::store::Usage;
use aurora_gateway::metrics::Metrics;
use aurora_gateway::openai::types::ChatCompletionRequest;
use aurora_gateway::policy::data::PolicyData;
use aurora_gateway::policy::{auth, Policy, Served, Settled, TokenUsage};
use aurora_schema::{AuthKey, Budget, BudgetPeriod, Collection, Record, RecordId};

/// How usage travels from the node that recorded it to the others.
#[derive(Clone, Copy, Debug, Default)]
struct Propagation {
    /// Usage flush period of every node; 0: each write is published at once.
    flush_ms: u64,
    /// From publication to visibility on the other nodes.
    transit_ms: u64,
}

impl Propagation {
    /// When a write recorded by `node` at `at` becomes visible to the other nodes:
    /// `node`'s first flush tick at or after `at` (ticks at `phase + k × flush_ms`,
    /// the nodes a third of a period apart), plus the transit.
    fn visible_at(&self, node: usize, at: u64) -> u64 {
        let published = match self.flush_ms {
            0 => at,
            flush => {
                let phase = node as u64 * flush / NODES as u64;
                let ticks = at.saturating_sub(phase).div_ceil(flush);
                phase + ticks * flush
            }
        };
        published + self.transit_ms
    }

    /// The longest a write stays invisible to the other nodes.
    fn worst_delay_ms(&self) -> u64 {
        self.flush_ms + self.transit_ms
    }
}

/// What every node shares: the records and a log of (time, node, usage) writes.
#[derive(Default)]
struct Cluster {
    records: BTreeMap<(Collection, String), Record>,
    writes: Mutex<Vec<(u64, usize, Usage)>>,
    now_ms: AtomicU64,
    propagation: Propagation,
}

/// One node's view of the cluster.
struct SimNode {
    cluster: Arc<Cluster>,
    me: usize,
}

impl PolicyData for SimNode {
    fn record(&self, collection: Collection, id: &str) -> Option<Record> {
        self.cluster
            .records
            .get(&(collection, id.to_owned()))
            .cloned()
    }

    fn records(&self, collection: Collection) -> Vec<(RecordId, Record)> {
        self.cluster
            .records
            .iter()
            .filter(|((c, _), _)| *c == collection)
            .filter_map(|((_, id), r)| Some((RecordId::new(id.as_str()).ok()?, r.clone())))
            .collect()
    }

    fn version(&self) -> Option<u64> {
        Some(1)
    }

    fn usage(&self, _budget: &RecordId, _period: u64) -> Usage {
        let now = self.cluster.now_ms.load(Ordering::Relaxed);
        let propagation = self.cluster.propagation;
        let writes = self.cluster.writes.lock().expect("writes");
        writes
            .iter()
            .filter(|(at, node, _)| *node == self.me || propagation.visible_at(*node, *at) <= now)
            .fold(Usage::default(), |sum, (_, _, u)| sum.saturating_add(*u))
    }

    fn own_published(&self, _budget: &RecordId, _period: u64) -> Option<Usage> {
        let now = self.cluster.now_ms.load(Ordering::Relaxed);
        let published = Propagation {
            transit_ms: 0,
            ..self.cluster.propagation
        };
        let writes = self.cluster.writes.lock().expect("writes");
        let own = writes
            .iter()
            .filter(|(at, node, _)| *node == self.me && published.visible_at(*node, *at) <= now)
            .fold(Usage::default(), |sum, (_, _, u)| sum.saturating_add(*u));
        Some(own)
    }

    fn wall_ms(&self) -> u64 {
        1_700_000_000_000 + self.cluster.now_ms.load(Ordering::Relaxed)
    }

    fn record_usage(&self, _budget: &RecordId, _period: u64, usage: Usage) {
        let now = self.cluster.now_ms.load(Ordering::Relaxed);
        self.cluster
            .writes
            .lock()
            .expect("writes")
            .push((now, self.me, usage));
    }
}

const NODES: usize = 3;

/// How the nodes check the budget.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// Counters as seen.
    NoPacing,
    /// Pacing with the fixed 750 ms delay it assumed before the delay was measured.
    Fixed750,
    /// The default: pacing with the measured delay.
    Pacing,
}

impl Mode {
    fn policy(self) -> Policy {
        match self {
            Mode::NoPacing => Policy::without_pacing(),
            Mode::Fixed750 => Policy::with_fixed_pacing_delay(750),
            Mode::Pacing => Policy::new(),
        }
    }
}

/// What one run let through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Admitted {
    total: u64,
    /// Admissions by a node after that node had refused once (flip-backs).
    after_refusal: u64,
    /// The delay node 0's pacer assumed at the end, ms.
    delay_ms: u64,
}

fn records(limit: u64) -> BTreeMap<(Collection, String), Record> {
    let mut records = BTreeMap::new();
    records.insert(
        (Collection::Budgets, "b".to_owned()),
        Record::Budget(Budget {
            name: "b".into(),
            limit: None,
            max_requests: Some(limit),
            period: BudgetPeriod::Total,
            on_partition: Default::default(),
        }),
    );
    records.insert(
        (Collection::AuthKeys, "k".to_owned()),
        Record::AuthKey(AuthKey {
            name: "k".into(),
            secret_hash: auth::to_hex(&auth::digest("sk-k")),
            key_prefix: "sk".into(),
            allowed_models: vec![],
            budget_id: Some(RecordId::new("b").expect("id")),
            workflow_id: None,
            rpm_limit: None,
            tpm_limit: None,
            expires_at_ms: None,
            disabled: false,
            metadata: Default::default(),
            max_parallel_requests: None,
        }),
    );
    records
}

/// One request on `node`: whether it was admitted (and then answered at once).
fn request(data: &SimNode, policy: &Policy, metrics: &Metrics) -> bool {
    let mut headers = http::HeaderMap::new();
    headers.insert("authorization", "Bearer sk-k".parse().expect("header"));
    let caller = policy.authenticate(data, &headers).expect("valid key");
    let mut request: ChatCompletionRequest = serde_json::from_value(serde_json::json!({
        "model": "m", "messages": [{"role": "user", "content": "hi"}]
    }))
    .expect("request");
    let Ok(ticket) = policy.admit(data, &caller, &mut request, "m") else {
        return false;
    };
    ticket.settle(
        data,
        policy,
        metrics,
        Settled {
            status: 200,
            served: Served::Answered,
            usage: Some(TokenUsage {
                prompt: 1,
                completion: 1,
                cached: 0,
            }),
            ..Settled::default()
        },
    );
    true
}

/// Requests admitted when `rate` requests per second arrive round-robin and usage
/// propagates as `propagation` says.
fn admitted(limit: u64, rate: u64, propagation: Propagation, mode: Mode) -> Admitted {
    let cluster = Arc::new(Cluster {
        records: records(limit),
        propagation,
        ..Cluster::default()
    });
    let nodes: Vec<(SimNode, Policy)> = (0..NODES)
        .map(|me| {
            let node = SimNode {
                cluster: Arc::clone(&cluster),
                me,
            };
            (node, mode.policy())
        })
        .collect();
    let metrics = Metrics::new();
    let mut refused = [false; NODES];
    let mut out = Admitted::default();
    // Long enough for every node to see the whole cluster's usage and stop.
    let total = limit * 2 + rate * (propagation.worst_delay_ms() + 2_500) / 1_000;
    for k in 0..total {
        cluster.now_ms.store(k * 1_000 / rate, Ordering::Relaxed);
        let me = (k % NODES as u64) as usize;
        let (data, policy) = &nodes[me];
        if request(data, policy, &metrics) {
            out.total += 1;
            out.after_refusal += u64::from(refused[me]);
        } else {
            refused[me] = true;
        }
    }
    out.delay_ms = nodes[0].1.pacing_delay_ms();
    out
}

#[test]
fn cluster_wide_budget_overshoot_is_bounded_by_rate_times_delay() {
    println!("nodes={NODES}; admitted (and admitted by a node after it had refused once)");
    println!(
        " limit  rate/s  flush_ms  transit_ms  no pacing  bound  fixed 750 ms  measured (delay)"
    );
    for (limit, rate, flush_ms, transit_ms) in [
        (100, 10, 500, 100),
        (100, 100, 500, 0),
        (100, 100, 500, 100),
        (100, 100, 500, 250),
        (100, 100, 500, 750),
        (100, 300, 500, 100),
        (100, 1_000, 500, 100),
        (1_000, 100, 500, 100),
        (1_000, 100, 500, 250),
        (1_000, 1_000, 500, 100),
        (100, 100, 0, 750),
        (1_000, 100, 0, 750),
    ] {
        let propagation = Propagation {
            flush_ms,
            transit_ms,
        };
        let naive = admitted(limit, rate, propagation, Mode::NoPacing);
        let fixed = admitted(limit, rate, propagation, Mode::Fixed750);
        let paced = admitted(limit, rate, propagation, Mode::Pacing);
        // Without pacing: the requests the other nodes admit within the longest
        // propagation delay, plus one per node in progress, and never past N × the
        // limit (each node sees its own usage at once).
        let n = NODES as u64;
        let unseen = (n - 1) * rate * propagation.worst_delay_ms() / (n * 1_000);
        let bound = (limit + unseen + n).min(n * limit);
        println!(
            "{limit:>6}  {rate:>6}  {flush_ms:>8}  {transit_ms:>10}  {:>9}  {bound:>5}  {:>7} ({:>3})  {:>5} ({:>3}) {:>4} ms",
            naive.total,
            fixed.total,
            fixed.after_refusal,
            paced.total,
            paced.after_refusal,
            paced.delay_ms
        );
        assert!(
            naive.total >= limit,
            "never below the limit without pacing: {naive:?}"
        );
        assert_eq!(naive.after_refusal, 0, "counters as seen never go down");
        assert!(
            paced.total + 2 >= limit,
            "pacing refuses at most a couple early: {paced:?}"
        );
        assert!(
            naive.total <= bound,
            "limit {limit}, rate {rate}, {propagation:?}: {naive:?} > {bound}"
        );
        assert!(paced.total <= naive.total, "pacing never lets more through");
        assert!(fixed.total <= naive.total, "pacing never lets more through");
    }
    // At a steady rate the measured delay is the mean age of what a flush publishes
    // (half the flush period) plus the assumed gossip wait (the transit itself is
    // invisible to it), and the limit holds without a second wave.
    let lan = Propagation {
        flush_ms: 500,
        transit_ms: 100,
    };
    let steady = admitted(1_000, 100, lan, Mode::Pacing);
    assert!((300..=360).contains(&steady.delay_ms), "{steady:?}");
    assert!(steady.total <= 1_002, "{steady:?}");
    assert!(steady.after_refusal <= 1, "{steady:?}");
    let fixed = admitted(1_000, 100, lan, Mode::Fixed750);
    assert!(
        fixed.after_refusal > 10,
        "the fixed delay's second wave: {fixed:?}"
    );
    // With no delay the limit is exact either way.
    let instant = Propagation::default();
    assert_eq!(admitted(100, 100, instant, Mode::NoPacing).total, 100);
    assert_eq!(admitted(100, 100, instant, Mode::Pacing).total, 100);
}
