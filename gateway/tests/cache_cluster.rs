//! The response cache across real processes: three `aurora serve` nodes on loopback
//! (QUIC with mutual TLS between them, as in production) in front of one fake upstream
//! that counts its calls. Each key's answer lives at one owner; a hit on any node is the
//! owner's copy, and identical requests in flight anywhere are one upstream call.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use common::cluster::{metric, start_three, wait_for, Proc};
use common::fake::{FakeUpstream, Reply};
use serde_json::json;

/// The upstream answer (7 tokens).
fn answer(text: &str) -> serde_json::Value {
    json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
           "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}})
}

/// A config whose one model `up/m` is the fake at `fake`, always cached.
fn config(root: &Path, fake: SocketAddr) -> String {
    let path = root.join("aurora.yaml");
    let text = format!(
        "gateway:\n  auth: open\n  providers:\n    - {{name: up, kind: openai, base_url: \"http://{fake}/v1\"}}\n  models:\n    - {{name: up/m}}\n  cache:\n    models: [up/m]\n"
    );
    std::fs::write(&path, text).expect("config");
    path.to_string_lossy().into_owned()
}

/// One chat request for `prompt` to `node`: status, `x-aurora-cache`, body.
fn chat(node: &Proc, prompt: &str) -> (u16, String, String) {
    let body =
        json!({"model": "up/m", "messages": [{"role": "user", "content": prompt}]}).to_string();
    let mut stream =
        TcpStream::connect_timeout(&node.http, Duration::from_secs(2)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        stream,
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        node.http,
        body.len()
    )
    .expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let cache = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("x-aurora-cache")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    (status, cache, body.to_owned())
}

fn cluster_metric(procs: &[Proc], name: &str) -> u64 {
    procs.iter().map(|p| metric(p, name)).sum()
}

/// Waits until every node has caught up with the cluster (`/health/ready` 200): a
/// node that has not answers 503 `node_syncing`, before any cache lookup, and a slow
/// machine can take a few seconds after the members see each other.
fn caught_up(procs: &[Proc]) {
    wait_for(Duration::from_secs(30), "every node caught up", || {
        procs.iter().all(|p| {
            p.call("GET", "/health/ready", None)
                .is_ok_and(|(status, _)| status == 200)
        })
    });
}

#[test]
fn one_upstream_call_for_the_cluster_however_the_requests_are_spread() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let slow = Reply::Slow(
        Duration::from_millis(1500),
        Box::new(Reply::Json(200, answer("shared"))),
    );
    let fake = runtime.block_on(FakeUpstream::start(vec![slow]));
    let root = tempfile::tempdir().expect("tempdir");
    let config = config(root.path(), fake.addr);
    let (_specs, procs) = start_three(root.path(), &["--config", &config]);
    caught_up(&procs);

    // The same request to each node in turn: one upstream call, the others are hits.
    let mut seen = Vec::new();
    for node in &procs {
        let (status, cache, body) = chat(node, "in turn");
        assert_eq!(status, 200, "{body}");
        seen.push((cache, body));
    }
    assert_eq!(fake.hits(), 1, "three nodes, one upstream call");
    assert_eq!(seen[0].0, "miss");
    assert_eq!((seen[1].0.as_str(), seen[2].0.as_str()), ("hit", "hit"));
    assert!(
        seen.iter().all(|(_, body)| *body == seen[0].1),
        "every node served the owner's copy"
    );
    // One copy in the cluster: only the owner keeps it.
    assert_eq!(cluster_metric(&procs, "aurora_cache_entries"), 1);

    // 100 identical requests at once, spread over the three nodes: one upstream call.
    let before = fake.hits();
    let started = Instant::now();
    let replies: Vec<(u16, String, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..100)
            .map(|i| {
                let node = &procs[i % 3];
                s.spawn(move || chat(node, "all at once"))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client"))
            .collect()
    });
    let took = started.elapsed();
    assert_eq!(
        fake.hits() - before,
        1,
        "100 concurrent requests on 3 nodes, one upstream call"
    );
    assert!(
        replies.iter().all(|(status, _, _)| *status == 200),
        "{replies:?}"
    );
    assert!(replies.iter().all(|(_, _, body)| *body == replies[0].2));
    let misses = replies
        .iter()
        .filter(|(_, cache, _)| cache == "miss")
        .count();
    assert_eq!(misses, 1, "one request filled, 99 were answered from it");
    let coalesced = cluster_metric(&procs, "aurora_cache_coalesced_total");
    println!("100 concurrent identical requests over 3 nodes: 1 upstream call, {coalesced} waited for it, all answered in {took:?}");
    assert!(coalesced >= 1, "some requests waited for the fill");

    // The owner of a key dies: the others still answer (without the cache until the
    // ring moves), and the new owner caches it again.
    let owner = procs
        .iter()
        .position(|p| metric(p, "aurora_cache_entries") > 0)
        .expect("an owner");
    let mut procs = procs;
    procs[owner].kill_9();
    let survivors: Vec<&Proc> = procs
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != owner)
        .map(|(_, p)| p)
        .collect();
    let started = Instant::now();
    let (status, _, body) = chat(survivors[0], "in turn");
    println!(
        "first request after the owner's kill -9 answered in {:?}",
        started.elapsed()
    );
    assert_eq!(status, 200, "{body}");
    wait_for(
        Duration::from_secs(30),
        "the ring to move and the key to be cached again",
        || {
            let _ = chat(survivors[0], "in turn");
            chat(survivors[1], "in turn").1 == "hit"
        },
    );
}

/// Which of `procs` (node-1, node-2, … in order) owns the key of an anonymous chat
/// request for `prompt`, by the same rendezvous hashing the nodes use.
fn owner_of(prompt: &str, n: usize) -> usize {
    use aurora_gateway::cache::{ring, CacheKey, CallKind, Member, Scope};
    let request: aurora_gateway::openai::types::ChatCompletionRequest = serde_json::from_value(
        json!({"model": "up/m", "messages": [{"role": "user", "content": prompt}]}),
    )
    .expect("request");
    let key = CacheKey::of(Scope::Key, None, CallKind::Chat, &request, None).expect("a key");
    let members = (1..=n).map(|i| Member {
        id: aurora_core::NodeId::from_name(&format!("node-{i}")),
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
    });
    let owner = ring::owner(&key, members).expect("an owner");
    (1..=n)
        .position(|i| aurora_core::NodeId::from_name(&format!("node-{i}")) == owner.id)
        .expect("a node")
}

#[test]
fn a_filler_that_dies_mid_fill_releases_the_requests_waiting_for_it() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    // The first upstream call never ends in time (its node is killed meanwhile); the
    // next ones answer at once.
    let stuck = Reply::Slow(
        Duration::from_secs(60),
        Box::new(Reply::Json(200, answer("late"))),
    );
    let fake = runtime.block_on(FakeUpstream::start(vec![
        stuck,
        Reply::Json(200, answer("fresh")),
    ]));
    let root = tempfile::tempdir().expect("tempdir");
    let config = config(root.path(), fake.addr);
    let (_specs, mut procs) = start_three(root.path(), &["--config", &config]);
    caught_up(&procs);
    let prompt = "the filler dies";
    let owner = owner_of(prompt, 3);
    let (filler, waiter) = ((owner + 1) % 3, (owner + 2) % 3);
    let (killed, released) = std::thread::scope(|s| {
        let filling = &procs[filler];
        s.spawn(move || {
            let _ = std::panic::catch_unwind(|| chat(filling, prompt));
        });
        wait_for(
            Duration::from_secs(10),
            "the fill to start at the owner",
            || metric(&procs[owner], "aurora_cache_fills_in_flight") == 1,
        );
        let waiting = &procs[waiter];
        let held = s.spawn(move || {
            let (status, cache, _) = chat(waiting, prompt);
            (status, cache, Instant::now())
        });
        std::thread::sleep(Duration::from_millis(300));
        // SIGKILL without reaping: `Proc` is borrowed by the scope; reaped on drop.
        let pid = rustix::process::Pid::from_raw(procs[filler].child.id() as i32).expect("pid");
        rustix::process::kill_process(pid, rustix::process::Signal::KILL).expect("kill");
        let killed = Instant::now();
        (killed, held.join().expect("waiter"))
    });
    procs[filler].kill_9();
    let (status, cache, answered) = released;
    let after = answered.duration_since(killed);
    println!(
        "a request held on a fill whose node was killed was answered {after:?} after the kill"
    );
    assert_eq!(
        (status, cache.as_str()),
        (200, "miss"),
        "released to call the upstream itself"
    );
    assert!(
        after < Duration::from_secs(30),
        "released when the filler was seen dead, not after fill_timeout_ms (120 s): {after:?}"
    );
}
