//! Budget accuracy on a real 3-process cluster: how many requests does a cluster-wide
//! budget of `max_requests` let through when three `aurora` processes serve the same
//! key?
//!
//! `policy_cluster.rs` answers this exactly, for a simulated counter with a fixed
//! propagation delay. This test measures the real thing end to end: each node's usage
//! flush (500 ms), gossip over QUIC, the replicated counters, the in-flight
//! reservations and the pacer, with the processes' own clocks and scheduling.
//!
//! For each rate, a fresh budget (`period: total`) and a fresh key on it are created
//! on node 1 and awaited on all nodes; then requests to the mock model go round-robin
//! over the three nodes, open-loop (each sent at its scheduled time on its own thread,
//! whatever happened to the earlier ones), for `limit / rate + 5 s`, so the budget is
//! exhausted and every node has seen it. The run counts the 200s (admitted), the
//! flip-backs (200s from a node that had already answered 402 to an earlier request)
//! and checks that the last second saw none. Each rate runs several times; the median
//! is reported.
//!
//! Ignored by default (about a minute and a half of load); run it with
//!
//! ```sh
//! cargo test -p aurora-gateway --test cluster_budget -- --ignored --nocapture
//! ```
//!
//! `BUDGET_LIMIT` (default 100), `BUDGET_RATES` (comma-separated req/s, default
//! `10,100,300`) and `BUDGET_RUNS` (default 3) change the shape. Rates are capped at
//! 1,000 req/s, the limit at 10,000 and a run at [`MAX_RUN`], so the load stays bounded.
//!
//! Two arms run in one session, each on three fresh processes in
//! `BUDGET_FAILOVER_MODE` (default `active_active`): `counters` (the replicated usage
//! counters and the pacer, `gateway.budgets.request_leases: false`) and `leases`
//! (quota leases, docs/quota.md). `BUDGET_ARMS` (default `counters,leases`) picks
//! them. The leases arm must admit at most the limit and at least the limit less one
//! slice per node; a 429 `budget_pending` (a node waiting for its grant longer than
//! the request waits) is counted, not failed.
//!
//! `BUDGET_PARTITION=1` cuts node 3 off (fault injection: its QUIC socket drops every
//! packet) after the budget reached every node and before the load, for the whole
//! run, and heals it after; the load still goes round-robin over all three. The
//! leases arm must then admit at most the limit on both sides together.

mod common;

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::cluster::{
    alive, header, http, json, percentile, request, request_with_head, start_three, wait_for, Proc,
};

/// After the budget should be used up, how long the load goes on: longer than the
/// pacer's 2 s window plus a flush and gossip, so admissions that resume when the
/// pacer's prediction fades are counted too, and the last second shows refusals only.
const TAIL: Duration = Duration::from_secs(5);
/// How long a fresh node may refuse writes before the test gives up.
const READY: Duration = Duration::from_secs(10);
/// The longest run allowed (a low rate with a high limit would otherwise run for hours).
const MAX_RUN: Duration = Duration::from_secs(120);
const CHAT: &str =
    r#"{"model":"mock/gpt-4o-mini","messages":[{"role":"user","content":"budget"}]}"#;

/// What one run saw.
#[derive(Debug, Default)]
struct Outcome {
    admitted: u64,
    /// When the first request that got 402 was sent, since the start.
    first_refusal: Option<Duration>,
    /// Admitted requests sent after that first 402 (a "second wave": see the docs).
    admitted_after_first_refusal: u64,
    /// Admitted requests sent to a node after that same node had answered 402
    /// (flip-backs: a node refusing, then admitting again).
    flip_backs: u64,
    refused: u64,
    /// 429 `budget_pending`: the node had no capacity yet and the grant came late.
    pending: u64,
    other: u64,
    /// The statuses counted in `other`, how often each (0: no answer: a connection
    /// refused or reset, a timeout).
    other_statuses: std::collections::BTreeMap<u16, u64>,
    per_node: [u64; 3],
    /// Admitted requests sent during the last second of the run.
    admitted_in_last_second: u64,
    /// The most admitted requests sent within any 60 s of the run.
    max_in_a_minute: u64,
    sent: u64,
}

fn env_u64(name: &str, default: u64, max: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
        .clamp(1, max)
}

fn rates() -> Vec<u64> {
    let spec = std::env::var("BUDGET_RATES").unwrap_or_else(|_| "10,100,300".into());
    let rates: Vec<u64> = spec
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .map(|r: u64| r.clamp(1, 1_000))
        .collect();
    assert!(!rates.is_empty(), "BUDGET_RATES has no rate: {spec:?}");
    rates
}

/// POSTs `body` to `path` on `addr`, retrying for up to [`READY`] while the node
/// answers 503 (a node that is still starting up may refuse requests for a moment).
fn post(addr: SocketAddr, path: &str, body: &str) -> (u16, String) {
    let start = Instant::now();
    loop {
        let answer = http(addr, "POST", path, Some(body)).expect("POST");
        if answer.0 != 503 || start.elapsed() > READY {
            return answer;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Creates budget `id` with `limit` requests and a key `id` on it through node 1, waits
/// until every node has both, and returns the key's secret.
fn budget_and_key(procs: &[Proc], id: &str, limit: u64) -> String {
    budget_and_key_on_partition(procs, id, limit, "spend_leased")
}

/// [`budget_and_key`] with the budget's `on_partition`.
fn budget_and_key_on_partition(procs: &[Proc], id: &str, limit: u64, on_partition: &str) -> String {
    let budget = format!(
        r#"{{"id":"{id}","name":"{id}","limit":null,"max_requests":{limit},"period":"total","on_partition":"{on_partition}"}}"#
    );
    let (status, text) = post(procs[0].http, "/admin/api/budgets", &budget);
    assert_eq!(status, 201, "{text}");
    let key = format!(r#"{{"id":"{id}","name":"{id}","budget_id":"{id}"}}"#);
    let (status, text) = post(procs[0].http, "/admin/api/keys", &key);
    assert_eq!(status, 201, "{text}");
    let secret = json(&text)["secret"]
        .as_str()
        .unwrap_or_else(|| panic!("no secret in {text}"))
        .to_owned();
    let paths = [
        format!("/admin/api/budgets/{id}"),
        format!("/admin/api/keys/{id}"),
    ];
    wait_for(Duration::from_secs(10), "budget and key everywhere", || {
        procs.iter().all(|p| {
            paths
                .iter()
                .all(|path| matches!(http(p.http, "GET", path, None), Ok((200, _))))
        })
    });
    secret
}

/// Sends `rate` req/s round-robin over `nodes` for `duration`, open-loop.
fn open_loop(nodes: &[SocketAddr], secret: &str, rate: u64, duration: Duration) -> Outcome {
    open_loop_with(nodes, secret, rate, duration, CHAT)
}

/// [`open_loop`] with another request body.
fn open_loop_with(
    nodes: &[SocketAddr],
    secret: &str,
    rate: u64,
    duration: Duration,
    body: &'static str,
) -> Outcome {
    let count = (duration.as_secs_f64() * rate as f64).ceil() as u64;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let (tx, rx) = mpsc::channel();
    let start = Instant::now();
    // Joined as they finish: a long run at 1,000 req/s would otherwise keep every
    // finished thread's stack until the end.
    let mut senders = std::collections::VecDeque::new();
    for i in 0..count {
        let at = start + interval.mul_f64(i as f64);
        if let Some(wait) = at.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let node = (i % nodes.len() as u64) as usize;
        let (addr, secret, tx) = (nodes[node], secret.to_owned(), tx.clone());
        while senders
            .front()
            .is_some_and(std::thread::JoinHandle::is_finished)
        {
            if let Some(done) = senders.pop_front() {
                done.join().expect("sender thread");
            }
        }
        senders.push_back(std::thread::spawn(move || {
            let answer = match request(addr, "POST", "/v1/chat/completions", &secret, Some(body)) {
                // A node still waiting for its grant of a leased limit.
                Ok((429, body)) if body.contains("being granted capacity") => Answer::Pending,
                Ok((status, _)) => Answer::Status(status),
                Err(_) => Answer::Status(0),
            };
            let _ = tx.send((node, at, answer));
        }));
    }
    drop(tx);
    for s in senders {
        s.join().expect("sender thread");
    }
    let mut answers: Vec<(usize, Instant, Answer)> = rx.into_iter().collect();
    answers.sort_by_key(|(_, at, _)| *at);
    tally(&answers, start, duration)
}

/// How a request of the load was answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    Status(u16),
    /// 429 `budget_pending` or `rpm_pending`.
    Pending,
}

/// Counts the answers (sorted by send time) of a run that began at `start`: 200
/// admitted, 402 and any other 429 refused.
fn tally(answers: &[(usize, Instant, Answer)], start: Instant, duration: Duration) -> Outcome {
    let last_second = start + duration.saturating_sub(Duration::from_secs(1));
    let mut o = Outcome {
        sent: answers.len() as u64,
        ..Outcome::default()
    };
    let mut node_refused = [false; 3];
    let mut minute = std::collections::VecDeque::new();
    for &(node, at, answer) in answers {
        match answer {
            Answer::Pending => o.pending += 1,
            Answer::Status(200) => {
                minute.push_back(at);
                while minute
                    .front()
                    .is_some_and(|first| at.duration_since(*first) >= Duration::from_secs(60))
                {
                    minute.pop_front();
                }
                o.max_in_a_minute = o.max_in_a_minute.max(minute.len() as u64);
                o.admitted += 1;
                o.per_node[node] += 1;
                if o.first_refusal.is_some() {
                    o.admitted_after_first_refusal += 1;
                }
                if node_refused[node] {
                    o.flip_backs += 1;
                }
                if at >= last_second {
                    o.admitted_in_last_second += 1;
                }
            }
            Answer::Status(402 | 429) => {
                o.refused += 1;
                node_refused[node] = true;
                o.first_refusal.get_or_insert(at.duration_since(start));
            }
            Answer::Status(status) => {
                o.other += 1;
                *o.other_statuses.entry(status).or_default() += 1;
            }
        }
    }
    o
}

fn partition() -> bool {
    std::env::var("BUDGET_PARTITION").is_ok_and(|v| v == "1")
}

/// Isolates node 3 for longer than the run and waits until nodes 1 and 2 see it gone
/// and agree on a leader between them.
fn cut_off_node_3(procs: &[Proc], duration: Duration) {
    let seconds = duration.as_secs() + 60;
    let body = format!(r#"{{"fault":"isolate","seconds":{seconds}}}"#);
    let (status, text) = http(
        procs[2].http,
        "POST",
        "/admin/api/cluster/fault",
        Some(&body),
    )
    .expect("fault");
    assert_eq!(status, 200, "{text}");
    wait_for(
        Duration::from_secs(60),
        "a leader among nodes 1 and 2",
        || {
            alive(&procs[0]) == 2
                && alive(&procs[1]) == 2
                && procs[..2].iter().all(|p| {
                    http(p.http, "GET", "/admin/api/cluster/status", None).is_ok_and(|(s, body)| {
                        let leader = json(&body)["leader"].as_str().map(str::to_owned);
                        s == 200 && matches!(leader.as_deref(), Some("node-1" | "node-2"))
                    })
                })
        },
    );
}

fn heal_node_3(procs: &[Proc]) {
    let (status, text) = http(
        procs[2].http,
        "POST",
        "/admin/api/cluster/fault",
        Some(r#"{"fault":"heal"}"#),
    )
    .expect("heal");
    assert_eq!(status, 200, "{text}");
    wait_for(Duration::from_secs(60), "node 3 back", || {
        procs.iter().all(|p| alive(p) == 3)
    });
}

/// One arm: its name and the config file its nodes run with.
fn arms(root: &std::path::Path) -> Vec<(String, std::path::PathBuf)> {
    let spec = std::env::var("BUDGET_ARMS").unwrap_or_else(|_| "counters,leases".into());
    spec.split(',')
        .map(|arm| {
            let arm = arm.trim().to_owned();
            let leases = match arm.as_str() {
                "counters" => false,
                "leases" => true,
                other => panic!("BUDGET_ARMS: unknown arm {other:?} (counters, leases)"),
            };
            let file = root.join(format!("{arm}.yaml"));
            std::fs::write(
                &file,
                format!("gateway:\n  budgets:\n    request_leases: {leases}\n"),
            )
            .expect("config file");
            (arm, file)
        })
        .collect()
}

#[test]
#[ignore = "measurement: about 90 s of load on three processes per arm; run with --ignored"]
fn budget_accuracy_on_three_processes() {
    let limit = env_u64("BUDGET_LIMIT", 100, 10_000);
    let runs = env_u64("BUDGET_RUNS", 3, 10);
    let mode = std::env::var("BUDGET_FAILOVER_MODE").unwrap_or_else(|_| "active_active".into());
    let root = tempfile::tempdir().expect("tempdir");
    println!("| arm | limit | rate (req/s) | admitted per run (nodes 1/2/3) | median |");
    println!("|---|---:|---:|---|---:|");
    for (arm, config) in arms(root.path()) {
        let dir = root.path().join(&arm);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let config = config.to_string_lossy().into_owned();
        let mut extra = vec![
            "--cluster-failover-mode",
            mode.as_str(),
            "--config",
            config.as_str(),
        ];
        if partition() {
            extra.push("--allow-fault-injection");
        }
        let (_specs, procs) = start_three(&dir, &extra);
        let nodes: Vec<SocketAddr> = procs.iter().map(|p| p.http).collect();
        // A leader first: the leases arm grants from it.
        wait_for(Duration::from_secs(30), "a lease holder", || {
            procs.iter().any(|p| {
                http(p.http, "GET", "/admin/api/cluster/status", None)
                    .is_ok_and(|(s, body)| s == 200 && json(&body)["leader"].is_string())
            })
        });
        run_rates(&arm, &procs, &nodes, limit, runs);
    }
}

fn run_rates(arm: &str, procs: &[Proc], nodes: &[SocketAddr], limit: u64, runs: u64) {
    for rate in rates() {
        let duration = Duration::from_secs_f64(limit as f64 / rate as f64) + TAIL;
        assert!(
            duration <= MAX_RUN,
            "{limit} requests at {rate} req/s would run {duration:?}, more than {MAX_RUN:?}"
        );
        let mut admitted = Vec::new();
        let mut cells = Vec::new();
        for run in 0..runs {
            let secret = budget_and_key(procs, &format!("acc-{arm}-{rate}-{run}"), limit);
            if partition() {
                cut_off_node_3(procs, duration);
            }
            let o = open_loop(nodes, &secret, rate, duration);
            if partition() {
                heal_node_3(procs);
            }
            println!("{arm}: rate {rate} req/s, run {run}: {o:?}");
            assert_eq!(
                o.other, 0,
                "only 200, 402 and 429 expected ({} others)",
                o.other
            );
            assert_eq!(
                o.admitted + o.refused + o.pending,
                o.sent,
                "every request answered"
            );
            assert_eq!(
                o.admitted_in_last_second, 0,
                "the budget must be exhausted everywhere by the end of the run"
            );
            if arm == "leases" {
                // One slice per node may be stranded; never more than the limit.
                let slack = 3 * aurora_core::quota::QuotaTiming::default().max_slice(limit);
                assert!(o.admitted <= limit, "{} admitted of {limit}", o.admitted);
                assert!(
                    o.admitted + slack >= limit,
                    "{} admitted of {limit}",
                    o.admitted
                );
            }
            cells.push(format!(
                "{} ({}/{}/{}; {} after the first 402 at {} ms; {} flip-backs; {} pending)",
                o.admitted,
                o.per_node[0],
                o.per_node[1],
                o.per_node[2],
                o.admitted_after_first_refusal,
                o.first_refusal.map_or(0, |d| d.as_millis()),
                o.flip_backs,
                o.pending
            ));
            admitted.push(o.admitted);
        }
        admitted.sort_unstable();
        println!(
            "| {arm} | {limit} | {rate} | {} | {} |",
            cells.join(", "),
            percentile(&admitted, 0.5)
        );
    }
}

/// The must-show in small, in every CI run: three processes in `active_active`, a
/// 30-request budget at 200 req/s round-robin: never more than 30 admitted, at
/// least 30 less one slice per node.
#[test]
fn a_leased_request_limit_holds_exactly_on_three_processes() {
    let limit = 30;
    let root = tempfile::tempdir().expect("tempdir");
    let (_specs, procs) = start_three(root.path(), &["--cluster-failover-mode", "active_active"]);
    let nodes: Vec<SocketAddr> = procs.iter().map(|p| p.http).collect();
    wait_for(Duration::from_secs(30), "a lease holder", || {
        procs.iter().any(|p| {
            http(p.http, "GET", "/admin/api/cluster/status", None)
                .is_ok_and(|(s, body)| s == 200 && json(&body)["leader"].is_string())
        })
    });
    let secret = budget_and_key(&procs, "leased", limit);
    let o = open_loop(&nodes, &secret, 200, Duration::from_secs(3));
    println!("{o:?}");
    assert_eq!(o.other, 0, "only 200, 402 and 429: {o:?}");
    assert!(
        o.admitted <= limit,
        "{} admitted of {limit}: {o:?}",
        o.admitted
    );
    let slack = 3 * aurora_core::quota::QuotaTiming::default().max_slice(limit);
    assert!(
        o.admitted + slack >= limit,
        "{} admitted of {limit}: {o:?}",
        o.admitted
    );
    assert_eq!(o.admitted_in_last_second, 0, "{o:?}");
    // The nodes say so in their metrics.
    let admitted: u64 = procs
        .iter()
        .map(|p| {
            let (_, text) = http(p.http, "GET", "/metrics", None).expect("metrics");
            text.lines()
                .find(|l| {
                    l.starts_with(
                        "aurora_quota_admissions_total{limit=\"budget_requests\",result=\"admitted\"}",
                    )
                })
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum();
    assert!(
        admitted >= o.admitted,
        "metrics count {admitted}, clients saw {}",
        o.admitted
    );
    // The budget shows its slices per node, never more than the limit in all.
    let (status, text) =
        http(procs[0].http, "GET", "/admin/api/budgets/leased", None).expect("GET");
    assert_eq!(status, 200, "{text}");
    let leases = &json(&text)["leases"]["requests"];
    let held = leases["held"]
        .as_u64()
        .unwrap_or_else(|| panic!("no leases in {text}"));
    assert!(held >= o.admitted && held <= limit, "{text}");
    let by_node = leases["by_node"].as_array().expect("by_node");
    assert!(!by_node.is_empty(), "{text}");
    let summed: u64 = by_node.iter().filter_map(|n| n["held"].as_u64()).sum();
    assert_eq!(summed, held, "{text}");
    assert_eq!(
        json(&text)["leases"]["on_partition"],
        "spend_leased",
        "{text}"
    );
    assert!(json(&text)["leases"]["spend_nanos"].is_null(), "{text}");
}

// ---- A key's requests per minute -----------------------------------------------

/// Creates key `id` with `rpm_limit: rpm` (no budget) through node 1, waits until
/// every node has it, and returns its secret.
fn key_with_rpm(procs: &[Proc], id: &str, rpm: u64) -> String {
    let key = format!(r#"{{"id":"{id}","name":"{id}","rpm_limit":{rpm}}}"#);
    let (status, text) = post(procs[0].http, "/admin/api/keys", &key);
    assert_eq!(status, 201, "{text}");
    let path = format!("/admin/api/keys/{id}");
    wait_for(Duration::from_secs(10), "the key everywhere", || {
        procs
            .iter()
            .all(|p| matches!(http(p.http, "GET", &path, None), Ok((200, _))))
    });
    json(&text)["secret"]
        .as_str()
        .unwrap_or_else(|| panic!("no secret in {text}"))
        .to_owned()
}

fn wait_for_leader(procs: &[Proc]) {
    wait_for(Duration::from_secs(30), "a lease holder", || {
        procs.iter().any(|p| {
            http(p.http, "GET", "/admin/api/cluster/status", None)
                .is_ok_and(|(s, body)| s == 200 && json(&body)["leader"].is_string())
        })
    });
}

/// The rpm must-show in small, in every CI run: three processes in
/// `active_active`, a key of 20 requests per minute at 200 req/s round-robin for
/// 3 s: never more than 20 admitted, at least 20 less one slice per node; the
/// answers carry the cluster's figure in `x-ratelimit-*` and a refusal says when
/// to come back.
#[test]
fn a_leased_rpm_limit_holds_exactly_on_three_processes() {
    let rpm = 20;
    let root = tempfile::tempdir().expect("tempdir");
    let (_specs, procs) = start_three(root.path(), &["--cluster-failover-mode", "active_active"]);
    let nodes: Vec<SocketAddr> = procs.iter().map(|p| p.http).collect();
    wait_for_leader(&procs);
    let secret = key_with_rpm(&procs, "rpm", rpm);
    // One request first: admitted, and its headers count it.
    let (status, head, body) = request_with_head(
        nodes[0],
        "POST",
        "/v1/chat/completions",
        &secret,
        Some(CHAT),
    )
    .expect("first request");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        header(&head, "x-ratelimit-limit-requests"),
        Some("20"),
        "{head}"
    );
    let remaining: u64 = header(&head, "x-ratelimit-remaining-requests")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no remaining in {head}"));
    assert!(remaining < rpm, "{head}");
    assert!(
        header(&head, "x-ratelimit-reset-requests").is_some(),
        "{head}"
    );
    let o = open_loop(&nodes, &secret, 200, Duration::from_secs(3));
    println!("{o:?}");
    assert_eq!(o.other, 0, "only 200 and 429: {o:?}");
    let admitted = o.admitted + 1;
    assert!(admitted <= rpm, "{admitted} admitted of {rpm}: {o:?}");
    let slack = 3 * aurora_core::quota::QuotaTiming::default().max_slice(rpm);
    assert!(
        admitted + slack >= rpm,
        "{admitted} admitted of {rpm}: {o:?}"
    );
    // Spent: refused on every node, with when to come back and nothing left.
    for node in &nodes {
        let (status, head, body) =
            request_with_head(*node, "POST", "/v1/chat/completions", &secret, Some(CHAT))
                .expect("refused request");
        assert_eq!(status, 429, "{body}");
        assert!(body.contains("across the cluster"), "{body}");
        let retry: u64 = header(&head, "retry-after")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no retry-after in {head}"));
        assert!((1..=5).contains(&retry), "{head}");
        assert_eq!(
            header(&head, "x-ratelimit-remaining-requests"),
            Some("0"),
            "{head}"
        );
    }
    // What the nodes hold unspent (the current bound) and what was admitted never
    // pass the limit together.
    let unspent: u64 = procs
        .iter()
        .map(|p| {
            let (_, text) = http(p.http, "GET", "/metrics", None).expect("metrics");
            text.lines()
                .find(|l| l.starts_with("aurora_quota_unspent{limit=\"key_rpm\"}"))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("no aurora_quota_unspent in {text}"))
        })
        .sum();
    assert!(
        admitted + unspent <= rpm,
        "{admitted} admitted, {unspent} unspent"
    );
}

/// A key's rpm limit on three processes at each rate, per arm: `counters` (this
/// node's token buckets, `request_leases: false`) and `leases`. `RPM_LIMIT` (default
/// 60), `RPM_SECONDS` (default 20: every arm's admissions in the run are within one
/// minute), `BUDGET_RATES` (default `10,100,300`), `BUDGET_ARMS`,
/// `BUDGET_FAILOVER_MODE` and `BUDGET_PARTITION` as for budgets. The leases arm must
/// admit at most the limit in any 60 s, and at least the limit less one slice per
/// node in a healthy cluster.
///
/// ```sh
/// BUDGET_RATES=10,100,300,1000 cargo test --release -p aurora-gateway --test cluster_budget \
///   -- --ignored --nocapture rpm_accuracy
/// ```
#[test]
#[ignore = "measurement: about 20 s of load per rate on three processes per arm; run with --ignored"]
fn rpm_accuracy_on_three_processes() {
    let limit = env_u64("RPM_LIMIT", 60, 10_000);
    let seconds = env_u64("RPM_SECONDS", 20, 120);
    let mode = std::env::var("BUDGET_FAILOVER_MODE").unwrap_or_else(|_| "active_active".into());
    let root = tempfile::tempdir().expect("tempdir");
    println!("| arm | rpm | rate (req/s) | seconds | admitted (nodes 1/2/3) | most in any 60 s | pending |");
    println!("|---|---:|---:|---:|---|---:|---:|");
    for (arm, config) in arms(root.path()) {
        let dir = root.path().join(&arm);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let config = config.to_string_lossy().into_owned();
        let mut extra = vec![
            "--cluster-failover-mode",
            mode.as_str(),
            "--config",
            config.as_str(),
        ];
        if partition() {
            extra.push("--allow-fault-injection");
        }
        let (_specs, procs) = start_three(&dir, &extra);
        let nodes: Vec<SocketAddr> = procs.iter().map(|p| p.http).collect();
        wait_for_leader(&procs);
        for rate in rates() {
            let duration = Duration::from_secs(seconds);
            let secret = key_with_rpm(&procs, &format!("rpm-{arm}-{rate}"), limit);
            if partition() {
                cut_off_node_3(&procs, duration);
            }
            let o = open_loop(&nodes, &secret, rate, duration);
            if partition() {
                heal_node_3(&procs);
            }
            println!("{arm}: rate {rate} req/s: {o:?}");
            assert_eq!(o.other, 0, "only 200 and 429 expected: {o:?}");
            if arm == "leases" {
                assert!(o.max_in_a_minute <= limit, "{o:?}");
                let slack = 3 * aurora_core::quota::QuotaTiming::default().max_slice(limit);
                if !partition() && rate * seconds >= limit {
                    assert!(o.max_in_a_minute + slack >= limit, "{o:?}");
                }
            }
            println!(
                "| {arm} | {limit} | {rate} | {seconds} | {} ({}/{}/{}) | {} | {} |",
                o.admitted,
                o.per_node[0],
                o.per_node[1],
                o.per_node[2],
                o.max_in_a_minute,
                o.pending
            );
        }
    }
}

/// A node cut off from the lease holder does with each budget what its
/// `on_partition` says: `fail_closed` refuses at once, `spend_leased` spends what it
/// holds (nothing here) and refuses, `fail_open` admits past the limit; the
/// majority side keeps the limit.
#[test]
fn a_cut_off_node_follows_each_budgets_on_partition() {
    let limit = 10;
    let root = tempfile::tempdir().expect("tempdir");
    let (_specs, procs) = start_three(
        root.path(),
        &[
            "--cluster-failover-mode",
            "active_active",
            "--allow-fault-injection",
        ],
    );
    wait_for_leader(&procs);
    let closed = budget_and_key_on_partition(&procs, "closed", limit, "fail_closed");
    let leased = budget_and_key_on_partition(&procs, "leased", limit, "spend_leased");
    let open = budget_and_key_on_partition(&procs, "open", limit, "fail_open");
    cut_off_node_3(&procs, Duration::from_secs(60));
    let chat = |node: usize, secret: &str| {
        request(
            procs[node].http,
            "POST",
            "/v1/chat/completions",
            secret,
            Some(CHAT),
        )
        .expect("request")
    };
    // Node 3 knows it is cut off once no lease holder answers it (at most the
    // holder's `partition_after`, 5 s, after its first unanswered ask).
    wait_for(Duration::from_secs(20), "node 3 cut off", || {
        let (status, body) = chat(2, &closed);
        assert_ne!(
            status, 200,
            "fail_closed admitted on a cut-off node: {body}"
        );
        status == 429 && body.contains("cannot reach")
    });
    let (status, body) = chat(2, &leased);
    assert!(
        status == 429 && body.contains("cannot reach"),
        "{status} {body}"
    );
    for i in 0..2 * limit {
        let (status, body) = chat(2, &open);
        assert_eq!(status, 200, "fail_open request {i}: {body}");
    }
    // The majority side holds the limit.
    let admitted = (0..3 * limit)
        .filter(|i| chat((i % 2) as usize, &leased).0 == 200)
        .count() as u64;
    assert!(admitted <= limit, "{admitted} admitted of {limit}");
    heal_node_3(&procs);
}

// ---- A budget's spend limit ------------------------------------------------------

/// A request that reserves at most its prompt and 5 output tokens.
const SHORT_CHAT: &str =
    r#"{"model":"mock/gpt-4o-mini","max_tokens":5,"messages":[{"role":"user","content":"spend"}]}"#;

/// The spend must-show in small, in every CI run: three processes in
/// `active_active`, a budget of 0.0001 USD (100,000 nano-USD) on a model priced at
/// 1 USD a million tokens, requests of about 7,000 nano-USD each at 200 req/s
/// round-robin for 3 s. Each request reserves its estimated cost against its node's
/// slice and settles the actual cost after (never more here: the mock counts
/// prompts as the estimate does and stops at `max_tokens`), so the cluster spends
/// at most the limit, and at least the limit less a request and a slice per node.
#[test]
fn a_leased_spend_limit_holds_on_three_processes() {
    let root = tempfile::tempdir().expect("tempdir");
    let (_specs, procs) = start_three(root.path(), &["--cluster-failover-mode", "active_active"]);
    let nodes: Vec<SocketAddr> = procs.iter().map(|p| p.http).collect();
    wait_for_leader(&procs);
    let pricing = r#"{"id":"mock/gpt-4o-mini","input_per_million":"1","output_per_million":"1","cached_input_per_million":null}"#;
    let (status, text) = post(procs[0].http, "/admin/api/pricing", pricing);
    assert_eq!(status, 201, "{text}");
    let budget =
        r#"{"id":"spend","name":"spend","limit":"0.0001","max_requests":null,"period":"total"}"#;
    let (status, text) = post(procs[0].http, "/admin/api/budgets", budget);
    assert_eq!(status, 201, "{text}");
    let (status, text) = post(
        procs[0].http,
        "/admin/api/keys",
        r#"{"id":"spend","name":"spend","budget_id":"spend"}"#,
    );
    assert_eq!(status, 201, "{text}");
    let secret = json(&text)["secret"].as_str().expect("secret").to_owned();
    let paths = [
        "/admin/api/pricing/mock/gpt-4o-mini",
        "/admin/api/budgets/spend",
        "/admin/api/keys/spend",
    ];
    wait_for(
        Duration::from_secs(10),
        "pricing, budget and key everywhere",
        || {
            procs.iter().all(|p| {
                paths
                    .iter()
                    .all(|path| matches!(http(p.http, "GET", path, None), Ok((200, _))))
            })
        },
    );
    let o = open_loop_with(&nodes, &secret, 200, Duration::from_secs(3), SHORT_CHAT);
    println!("{o:?}");
    assert_eq!(o.other, 0, "only 200, 402 and 429: {o:?}");
    // The counters carry every node's spend to node 1 within about a second.
    let limit = 100_000u64;
    let mut spent = 0;
    wait_for(
        Duration::from_secs(10),
        "every request's spend counted",
        || {
            let (_, text) =
                http(procs[0].http, "GET", "/admin/api/budgets/spend", None).expect("GET");
            let usage = &json(&text)["usage"];
            spent = usage["spend_nanos"].as_u64().unwrap_or(0);
            usage["requests"].as_u64() == Some(o.admitted)
        },
    );
    let per_request = spent / o.admitted.max(1);
    println!(
        "spent {spent} of {limit} nano-USD in {} requests",
        o.admitted
    );
    assert!(spent <= limit, "spent {spent} of {limit}: {o:?}");
    let slice = aurora_core::quota::QuotaTiming::default().max_slice(limit);
    assert!(
        spent + 3 * (per_request + slice) >= limit,
        "spent {spent} of {limit}: {o:?}"
    );
    assert!(o.refused > 0, "the budget was never reached: {o:?}");
    // The slices per node: what they hold covers what was spent, never the limit over.
    let (_, text) = http(procs[0].http, "GET", "/admin/api/budgets/spend", None).expect("GET");
    let held = json(&text)["leases"]["spend_nanos"]["held"]
        .as_u64()
        .unwrap_or_else(|| panic!("no spend leases in {text}"));
    assert!(held >= spent && held <= limit, "{text}");
}

/// The tpm must-show in small, in every CI run: three processes, a key of 100 tokens
/// per minute, requests reserving their prompt and at most 5 output tokens at 200
/// req/s round-robin for 3 s. Each request reserves its tokens against its node's
/// slice and settles what it used, so the cluster uses at most 100 tokens (the mock
/// never uses more than a request reserves), and at least 100 less a request and a
/// slice per node.
#[test]
fn a_leased_tpm_limit_holds_on_three_processes() {
    let tpm = 100u64;
    let root = tempfile::tempdir().expect("tempdir");
    let (_specs, procs) = start_three(root.path(), &["--cluster-failover-mode", "active_active"]);
    let nodes: Vec<SocketAddr> = procs.iter().map(|p| p.http).collect();
    wait_for_leader(&procs);
    let key = format!(r#"{{"id":"tpm","name":"tpm","tpm_limit":{tpm}}}"#);
    let (status, text) = post(procs[0].http, "/admin/api/keys", &key);
    assert_eq!(status, 201, "{text}");
    let secret = json(&text)["secret"].as_str().expect("secret").to_owned();
    wait_for(Duration::from_secs(10), "the key everywhere", || {
        procs.iter().all(|p| {
            matches!(
                http(p.http, "GET", "/admin/api/keys/tpm", None),
                Ok((200, _))
            )
        })
    });
    // One request first: what one costs, and the headers that count it.
    let (status, head, body) = request_with_head(
        nodes[0],
        "POST",
        "/v1/chat/completions",
        &secret,
        Some(SHORT_CHAT),
    )
    .expect("first request");
    assert_eq!(status, 200, "{body}");
    let per_request = json(&body)["usage"]["total_tokens"]
        .as_u64()
        .unwrap_or_else(|| panic!("no usage in {body}"));
    assert_eq!(
        header(&head, "x-ratelimit-limit-tokens"),
        Some("100"),
        "{head}"
    );
    let o = open_loop_with(&nodes, &secret, 200, Duration::from_secs(3), SHORT_CHAT);
    println!("{o:?}, {per_request} tokens a request");
    assert_eq!(o.other, 0, "only 200 and 429: {o:?}");
    let used = (o.admitted + 1) * per_request;
    assert!(used <= tpm, "{used} tokens used of {tpm}: {o:?}");
    let slack = 3 * (per_request + aurora_core::quota::QuotaTiming::default().max_slice(tpm) + 5);
    assert!(used + slack >= tpm, "{used} tokens used of {tpm}: {o:?}");
    let (status, head, body) = request_with_head(
        nodes[1],
        "POST",
        "/v1/chat/completions",
        &secret,
        Some(SHORT_CHAT),
    )
    .expect("refused request");
    assert_eq!(status, 429, "{body}");
    assert!(
        body.contains("tokens per minute across the cluster"),
        "{body}"
    );
    assert!(header(&head, "retry-after").is_some(), "{head}");
}
