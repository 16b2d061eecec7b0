//! How far a cluster-wide budget can be overshot: three nodes, each running the real
//! policy layer, share one budget through a simulated counter in which a node sees
//! its own usage at once and the other nodes' usage only after a propagation delay
//! (the replicated counters are flushed every 500 ms and then gossiped). Requests
//! arrive round-robin at a fixed rate, in simulated time, so the run is exact and
//! deterministic. The figures are quoted in docs/benchmarks-gateway.md.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aurora_core::state::records::{AuthKey, Budget, BudgetPeriod, Collection, Record, RecordId};
use aurora_core::state::store::Usage;
use aurora_gateway::metrics::Metrics;
use aurora_gateway::openai::types::ChatCompletionRequest;
use aurora_gateway::policy::data::PolicyData;
use aurora_gateway::policy::{auth, Policy, Settled, TokenUsage};

/// What every node shares: the records and a log of (time, node, usage) writes.
#[derive(Default)]
struct Cluster {
    records: BTreeMap<(Collection, String), Record>,
    writes: Mutex<Vec<(u64, usize, Usage)>>,
    now_ms: AtomicU64,
    delay_ms: u64,
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
        let writes = self.cluster.writes.lock().expect("writes");
        writes
            .iter()
            .filter(|(at, node, _)| *node == self.me || at + self.cluster.delay_ms <= now)
            .fold(Usage::default(), |sum, (_, _, u)| sum.saturating_add(*u))
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

/// Requests admitted in total when `rate` requests per second arrive round-robin and
/// each node sees the others' usage `delay_ms` late.
fn admitted(limit: u64, rate: u64, delay_ms: u64, pacing: bool) -> u64 {
    let mut records = BTreeMap::new();
    records.insert(
        (Collection::Budgets, "b".to_owned()),
        Record::Budget(Budget {
            name: "b".into(),
            limit: None,
            max_requests: Some(limit),
            period: BudgetPeriod::Total,
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
        }),
    );
    let cluster = Arc::new(Cluster {
        records,
        delay_ms,
        ..Cluster::default()
    });
    let nodes: Vec<(SimNode, Policy)> = (0..NODES)
        .map(|me| {
            (
                SimNode {
                    cluster: Arc::clone(&cluster),
                    me,
                },
                if pacing {
                    Policy::new()
                } else {
                    Policy::without_pacing()
                },
            )
        })
        .collect();
    let metrics = Metrics::new();
    let mut headers = http::HeaderMap::new();
    headers.insert("authorization", "Bearer sk-k".parse().expect("header"));
    let mut admitted = 0;
    // Long enough for every node to see the whole cluster's usage and stop.
    let total = limit * 2 + rate * (delay_ms + 1_000) / 1_000;
    for k in 0..total {
        cluster.now_ms.store(k * 1_000 / rate, Ordering::Relaxed);
        let (data, policy) = &nodes[(k % NODES as u64) as usize];
        let caller = policy.authenticate(data, &headers).expect("valid key");
        let mut request: ChatCompletionRequest = serde_json::from_value(serde_json::json!({
            "model": "m", "messages": [{"role": "user", "content": "hi"}]
        }))
        .expect("request");
        if let Ok(ticket) = policy.admit(data, &caller, &mut request, "m") {
            admitted += 1;
            ticket.settle(
                data,
                policy,
                &metrics,
                Settled {
                    status: 200,
                    usage: Some(TokenUsage {
                        prompt: 1,
                        completion: 1,
                        cached: 0,
                    }),
                    ..Settled::default()
                },
            );
        }
    }
    admitted
}

#[test]
fn cluster_wide_budget_overshoot_is_bounded_by_rate_times_delay() {
    println!(
        "nodes={NODES}; admitted requests without and with pacing (prediction of in-transit usage)"
    );
    println!(" limit  rate/s  delay_ms  no pacing  bound  pacing");
    for (limit, rate, delay_ms) in [
        (100, 10, 750),
        (100, 100, 0),
        (100, 100, 250),
        (100, 100, 750),
        (100, 100, 1_500),
        (100, 1_000, 750),
        (1_000, 100, 750),
        (1_000, 100, 1_500),
        (1_000, 1_000, 750),
    ] {
        let naive = admitted(limit, rate, delay_ms, false);
        let paced = admitted(limit, rate, delay_ms, true);
        // Without pacing: the requests the other nodes admit within one propagation
        // delay, plus one per node in progress, and never past N × the limit (each
        // node sees its own usage at once).
        let n = NODES as u64;
        let unseen = (n - 1) * rate * delay_ms / (n * 1_000);
        let bound = (limit + unseen + n).min(n * limit);
        println!("{limit:>6}  {rate:>6}  {delay_ms:>8}  {naive:>9}  {bound:>5}  {paced:>6}");
        assert!(
            naive >= limit,
            "never below the limit without pacing: {naive}"
        );
        assert!(
            paced + 2 >= limit,
            "pacing refuses at most a couple early: {paced}"
        );
        assert!(
            naive <= bound,
            "limit {limit}, rate {rate}, delay {delay_ms}: {naive} > {bound}"
        );
        assert!(paced <= naive, "pacing never lets more through");
    }
    // With no delay the limit is exact either way.
    assert_eq!(admitted(100, 100, 0, false), 100);
    assert_eq!(admitted(100, 100, 0, true), 100);
    // In steady state at the delay pacing assumes, the overshoot is a few requests.
    assert!(admitted(1_000, 100, 750, true) <= 1_005);
}
