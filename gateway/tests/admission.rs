//! Issue 10 item 1, "open mode only on purpose", between real `aurora` processes on
//! loopback (QUIC with mutual TLS, SQLite, the real binary's defaults):
//!
//! * a clustered node defaults to `gateway.auth: keys`: with no key anywhere it
//!   answers 401 `no_api_keys_configured`, never 200 anonymously;
//! * a node that joins a cluster with keys is not ready (`/health/ready` 503
//!   `syncing`) and refuses clients with 503 until it completed an anti-entropy round
//!   with a peer; with seeds it cannot reach (here: a wrong cluster secret, so no
//!   handshake ever completes) it stays that way;
//! * once caught up it is ready and needs a key like every other node.
//!
//! The lone loopback node that stays open is checked in `binary.rs`.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{http, json, request, spawn, spec, wait_for, Proc, SECRET};

const CHAT: &str = r#"{"model":"mock/gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;

fn chat(p: &Proc, bearer: &str) -> (u16, serde_json::Value) {
    let (status, body) =
        request(p.http, "POST", "/v1/chat/completions", bearer, Some(CHAT)).expect("chat");
    (status, json(&body))
}

fn ready(p: &Proc) -> (u16, serde_json::Value) {
    let (status, body) = http(p.http, "GET", "/health/ready", None).expect("ready");
    (status, json(&body))
}

#[test]
fn a_joining_node_answers_503_until_it_synced_and_never_serves_anonymously() {
    let root = tempfile::tempdir().expect("tempdir");
    let a = spec(root.path(), 1, &[]);
    let b = spec(root.path(), 2, &[]);

    // The founder: clustered, no seeds, so nothing to wait for; but keys mode.
    let pa = spawn(&a, &[], SECRET);
    wait_for(Duration::from_secs(20), "founder ready", || {
        ready(&pa).0 == 200
    });
    let (status, body) = chat(&pa, "");
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "no_api_keys_configured", "{body}");
    let (status, text) = http(
        pa.http,
        "POST",
        "/admin/api/keys",
        Some(r#"{"id":"k","name":"k"}"#),
    )
    .expect("create key");
    assert_eq!(status, 201, "{text}");
    let secret = json(&text)["secret"].as_str().expect("secret").to_owned();
    assert_eq!(chat(&pa, &secret).0, 200);
    assert_eq!(chat(&pa, "").0, 401);

    // A new node whose seed never answers (wrong secret: no handshake completes).
    let wrong = "another-cluster-secret-of-more-than-16-bytes";
    let pb = spawn(&b, std::slice::from_ref(&a), wrong);
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        let (status, body) = ready(&pb);
        assert_eq!((status, body["status"].as_str()), (503, Some("syncing")));
        let (status, body) = chat(&pb, "");
        assert_eq!(status, 503, "never anonymous: {body}");
        assert_eq!(body["error"]["code"], "node_syncing", "{body}");
        assert_eq!(chat(&pb, &secret).0, 503, "its state may not hold the key");
        let (status, _) = request(pb.http, "GET", "/v1/models", "", None).expect("models");
        assert_eq!(status, 503);
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(pb);

    // The same node with the right secret: 503 until synced, then a keyed node.
    let pb = spawn(&b, std::slice::from_ref(&a), SECRET);
    wait_for(Duration::from_secs(30), "joined node ready", || {
        let (status, body) = chat(&pb, "");
        assert_ne!(status, 200, "served anonymously: {body}");
        ready(&pb).0 == 200
    });
    let (status, body) = chat(&pb, "");
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "invalid_api_key", "{body}");
    assert_eq!(chat(&pb, &secret).0, 200);
}
