//! The admin API over real HTTP against a real node (io driver + SQLite in a temporary
//! directory): CRUD of every replicated collection, validation errors naming the
//! field, 401 without the token, auth-key secrets shown once, writes surviving a
//! restart of the node, and the refusals of switchover and forget (single node, and
//! a clustered node that leads alone; the multi-process test in
//! `cluster_processes.rs` hands the lease over between real nodes).

mod common;

use std::path::Path;
use std::sync::Arc;

use aurora_gateway::cluster::Node;
use aurora_gateway::state::AppState;
use aurora_gateway::{AdminToken, DrainOutcome, Server, ServerConfig};
use aurora_io::config::ClusterSettings;
use bytes::Bytes;
use common::{send, Reply, TOKEN};
use http::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A server attached to a single node whose SQLite file lives in `dir`.
struct NodeServer {
    addr: std::net::SocketAddr,
    state: Arc<AppState>,
    node: Option<Node>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<DrainOutcome>>,
}

impl NodeServer {
    /// A single node (clustering off).
    async fn start(dir: &Path) -> NodeServer {
        let settings = aurora_io::config::load("", &Default::default()).expect("default settings");
        NodeServer::start_with(dir, &settings).await
    }

    async fn start_with(dir: &Path, settings: &ClusterSettings) -> NodeServer {
        let node = Node::start(settings, dir).await.expect("node starts");
        let config = ServerConfig::new(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        let server = Server::bind_with(
            config,
            AdminToken::new(TOKEN),
            Arc::new(|_: &str| None),
            Some((node.state_view.clone(), node.info.clone())),
        )
        .await
        .expect("server binds");
        let addr = server.local_addr();
        let state = server.state();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        NodeServer {
            addr,
            state,
            node: Some(node),
            stop: Some(tx),
            task: Some(task),
        }
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        if let Some(node) = self.node.take() {
            node.shutdown(std::time::Duration::from_secs(2))
                .await
                .expect("node stops");
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Reply {
        let bearer = format!("Bearer {TOKEN}");
        let mut headers = vec![("authorization", bearer.as_str())];
        let bytes = match body {
            Some(v) => {
                headers.push(("content-type", "application/json"));
                Bytes::from(serde_json::to_vec(v).expect("json"))
            }
            None => Bytes::new(),
        };
        send(self.addr, method, path, &headers, bytes).await
    }
}

/// One collection's test data: path, a valid record with its id, an update, and an
/// invalid variant with the field the error must name.
struct Case {
    path: &'static str,
    id: &'static str,
    create: Value,
    update: Value,
    invalid: Value,
    field: &'static str,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            path: "providers",
            id: "up",
            create: json!({"id": "up", "kind": "open_ai_compatible", "base_url": "http://127.0.0.1:9/v1",
                           "api_key_env": "AURORA_PROVIDER_UP_KEY", "timeout_ms": 1000, "max_retries": 1, "cooldown_ms": 0}),
            update: json!({"kind": "open_ai_compatible", "base_url": "http://127.0.0.1:9/v1",
                           "api_key_env": "AURORA_PROVIDER_UP_KEY", "timeout_ms": 2000, "max_retries": 2, "cooldown_ms": 0}),
            invalid: json!({"id": "bad", "kind": "open_ai_compatible", "base_url": "http://127.0.0.1:9/v1",
                            "api_key_env": null, "timeout_ms": 0, "max_retries": 1, "cooldown_ms": 0}),
            field: "timeout_ms",
        },
        Case {
            path: "models",
            id: "mock/fast",
            create: json!({"id": "mock/fast", "provider_id": "mock", "upstream_model": "echo"}),
            update: json!({"provider_id": "mock", "upstream_model": "echo", "aliases": ["speedy"]}),
            invalid: json!({"id": "mock/x", "provider_id": "mock", "upstream_model": "echo", "aliases": ["mock/x"]}),
            field: "aliases[0]",
        },
        Case {
            path: "routes",
            id: "chat",
            create: json!({"id": "chat", "targets": [{"model_id": "mock/echo", "weight": 1}], "retries": 0}),
            update: json!({"targets": [{"model_id": "mock/echo", "weight": 3}], "retries": 1}),
            invalid: json!({"id": "r2", "targets": [{"model_id": "mock/echo", "weight": 0}], "retries": 0}),
            field: "targets[0].weight",
        },
        Case {
            path: "guardrails",
            id: "no-secrets",
            create: json!({"id": "no-secrets", "kind": {"deny_patterns": {"patterns": ["password"], "case_insensitive": false}}}),
            update: json!({"kind": {"max_input_chars": {"max": 1000}}, "enabled": false}),
            invalid: json!({"id": "g2", "kind": {"deny_patterns": {"patterns": []}}}),
            field: "kind.deny_patterns.patterns",
        },
        Case {
            path: "workflows",
            id: "default",
            create: json!({"id": "default", "name": "Default", "guardrails": ["no-secrets"], "routing": "weighted"}),
            update: json!({"name": "Default", "guardrails": [], "routing": "ordered"}),
            invalid: json!({"id": "w2", "name": "", "routing": "weighted"}),
            field: "name",
        },
        Case {
            path: "pricing",
            id: "mock/echo",
            create: json!({"id": "mock/echo", "input_per_million": "1.5", "output_per_million": "2"}),
            update: json!({"input_per_million": "1", "output_per_million": "2", "cached_input_per_million": "0.1"}),
            invalid: json!({"id": "mock/gpt-4o", "input_per_million": "20000", "output_per_million": "2"}),
            field: "input_per_million",
        },
        Case {
            path: "budgets",
            id: "team-a",
            create: json!({"id": "team-a", "name": "Team A", "limit": "10", "max_requests": 100, "period": "monthly"}),
            update: json!({"name": "Team A", "limit": "20", "max_requests": null, "period": "daily"}),
            invalid: json!({"id": "b2", "name": "", "limit": null, "max_requests": null, "period": "daily"}),
            field: "name",
        },
        Case {
            path: "keys",
            id: "ci",
            create: json!({"id": "ci", "name": "CI key", "rpm_limit": 60, "budget_id": "team-a"}),
            update: json!({"name": "CI key (renamed)", "rpm_limit": 120, "metadata": {"owner": "ops"}}),
            invalid: json!({"id": "k2", "name": "x", "rpm_limit": 0}),
            field: "rpm_limit",
        },
    ]
}

/// The record without `id` and the fields the server fills in (defaults), compared
/// only on the keys the client sent.
fn assert_contains(answer: &Value, sent: &Value) {
    for (k, v) in sent.as_object().expect("object") {
        assert_eq!(&answer[k], v, "field {k} of {answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crud_round_trip_for_every_collection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = NodeServer::start(dir.path()).await;
    for case in cases() {
        let base = format!("/admin/api/{}", case.path);
        let item = format!("{base}/{}", case.id);

        let created = server.call(Method::POST, &base, Some(&case.create)).await;
        assert_eq!(created.status.as_u16(), 201, "{base}: {}", created.text());
        assert_contains(&created.json(), &case.create);

        let again = server.call(Method::POST, &base, Some(&case.create)).await;
        again.assert_error(409, None, Some("already_exists"));

        let read = server.call(Method::GET, &item, None).await;
        assert_eq!(read.status.as_u16(), 200, "{item}: {}", read.text());
        assert_contains(&read.json(), &case.create);

        let list = server.call(Method::GET, &base, None).await;
        assert_eq!(list.status.as_u16(), 200);
        let ids: Vec<Value> = list.json()["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|r| r["id"].clone())
            .collect();
        assert!(ids.contains(&json!(case.id)), "{base} lists {ids:?}");

        let updated = server.call(Method::PUT, &item, Some(&case.update)).await;
        assert_eq!(updated.status.as_u16(), 200, "{item}: {}", updated.text());
        let read = server.call(Method::GET, &item, None).await;
        assert_contains(&read.json(), &case.update);

        let invalid = server.call(Method::POST, &base, Some(&case.invalid)).await;
        invalid.assert_error(400, Some(case.field), Some("invalid_field"));

        let missing = format!("{base}/does-not-exist");
        server
            .call(Method::GET, &missing, None)
            .await
            .assert_error(404, None, Some("not_found"));
        server
            .call(Method::PUT, &missing, Some(&case.update))
            .await
            .assert_error(404, None, Some("not_found"));
        server
            .call(Method::DELETE, &missing, None)
            .await
            .assert_error(404, None, Some("not_found"));
    }

    // An unknown field is named too.
    let bad = json!({"id": "b3", "name": "B", "limit": null, "max_requests": null, "period": "daily", "colour": "red"});
    server
        .call(Method::POST, "/admin/api/budgets", Some(&bad))
        .await
        .assert_error(400, Some("colour"), Some("invalid_field"));

    // Replicated models and routes reach the catalog (and `/v1/models`).
    let models = send(server.addr, Method::GET, "/v1/models", &[], Bytes::new()).await;
    let names: Vec<String> = models.json()["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| m["id"].as_str().map(str::to_owned))
        .collect();
    assert!(names.iter().any(|n| n == "mock/fast"), "{names:?}");
    assert!(names.iter().any(|n| n == "chat"), "{names:?}");

    // Deletes, in reverse order of the references.
    for case in cases().iter().rev() {
        let item = format!("/admin/api/{}/{}", case.path, case.id);
        let deleted = server.call(Method::DELETE, &item, None).await;
        assert_eq!(deleted.status.as_u16(), 200, "{item}: {}", deleted.text());
        assert_eq!(deleted.json()["deleted"], json!(true));
        server
            .call(Method::GET, &item, None)
            .await
            .assert_error(404, None, Some("not_found"));
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_path_needs_the_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = NodeServer::start(dir.path()).await;
    // Wrong tokens sent so far: after `MAX_FAILURES` of them this client's address is
    // refused with 429 whatever it sends (issue 10 item 10c), which refuses too.
    let mut wrong = 0;
    for case in cases() {
        for (method, path) in [
            (Method::GET, format!("/admin/api/{}", case.path)),
            (Method::POST, format!("/admin/api/{}", case.path)),
            (
                Method::DELETE,
                format!("/admin/api/{}/{}", case.path, case.id),
            ),
        ] {
            let body = Bytes::from(case.create.to_string());
            for headers in [vec![], vec![("authorization", "Bearer wrong-token")]] {
                let reply = send(server.addr, method.clone(), &path, &headers, body.clone()).await;
                if wrong >= aurora_gateway::admin::guard::MAX_FAILURES {
                    reply.assert_error(429, None, Some("too_many_failed_logins"));
                } else {
                    reply.assert_error(401, None, Some("invalid_admin_token"));
                }
                wrong += u32::from(!headers.is_empty());
            }
        }
    }
    // Nothing was written.
    assert_eq!(server.state.state_view.snapshot().live_records(), 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_secret_is_shown_once_and_only_its_hash_is_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = NodeServer::start(dir.path()).await;
    let created = server
        .call(
            Method::POST,
            "/admin/api/keys",
            Some(
                &json!({"name": "app", "allowed_models": ["mock/echo"], "tpm_limit": 1000,
                         "expires_at_ms": 4102444800000u64, "metadata": {"team": "a"}}),
            ),
        )
        .await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.text());
    let key = created.json();
    let secret = key["secret"].as_str().expect("secret").to_owned();
    let id = key["id"].as_str().expect("generated id").to_owned();
    assert!(
        secret.starts_with("sk-aurora-") && secret.len() == 74,
        "{secret}"
    );
    let hash: String = Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(key["secret_hash"], json!(hash));
    assert_eq!(key["key_prefix"], json!(&secret[10..18]));

    for path in [
        format!("/admin/api/keys/{id}"),
        "/admin/api/keys".to_owned(),
    ] {
        let read = server.call(Method::GET, &path, None).await;
        assert_eq!(read.status.as_u16(), 200);
        let text = read.text();
        assert!(!text.contains(&secret), "{path} shows the secret");
        assert!(!text.contains("\"secret\""), "{path} has a secret field");
        assert!(text.contains(&hash), "{path} shows the hash");
    }
    // The replicated record holds the hash only.
    let stored = format!(
        "{:?}",
        server
            .state
            .state_view
            .record(aurora_schema::Collection::AuthKeys, &id)
    );
    assert!(!stored.contains(&secret));

    // PUT keeps the secret; it cannot be changed or set.
    let put = server
        .call(
            Method::PUT,
            &format!("/admin/api/keys/{id}"),
            Some(&json!({"name": "app v2", "disabled": true})),
        )
        .await;
    assert_eq!(put.status.as_u16(), 200, "{}", put.text());
    assert_eq!(put.json()["secret_hash"], json!(hash));
    assert_eq!(put.json()["disabled"], json!(true));
    server
        .call(
            Method::PUT,
            &format!("/admin/api/keys/{id}"),
            Some(&json!({"name": "x", "secret_hash": "0".repeat(64)})),
        )
        .await
        .assert_error(400, Some("secret_hash"), Some("invalid_field"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = NodeServer::start(dir.path()).await;
    for i in 0..20 {
        let r = server
            .call(
                Method::POST,
                "/admin/api/budgets",
                Some(&json!({"id": format!("b{i}"), "name": "B", "limit": null, "max_requests": i, "period": "total"})),
            )
            .await;
        assert_eq!(r.status.as_u16(), 201, "{}", r.text());
    }
    server
        .call(Method::DELETE, "/admin/api/budgets/b3", None)
        .await;
    server.stop().await;

    let server = NodeServer::start(dir.path()).await;
    let list = server.call(Method::GET, "/admin/api/budgets", None).await;
    let data = list.json()["data"].as_array().expect("data").clone();
    assert_eq!(data.len(), 19);
    assert!(data.iter().all(|b| b["id"] != json!("b3")));
    server.stop().await;
}

/// Usage recorded just before a graceful stop is on disk after it, for a single
/// node (the driver stops) and a clustered one (it leaves): neither the view's
/// batched hand-off nor the core's 500 ms usage flush may drop it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_recorded_just_before_a_graceful_stop_survives_the_restart() {
    use aurora_core::state::store::Usage;
    for clustered in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        // Fresh ports for the restart: the old QUIC socket may linger a moment.
        let settings = || {
            if clustered {
                solo_settings()
            } else {
                aurora_io::config::load("", &Default::default()).expect("default settings")
            }
        };
        let server = NodeServer::start_with(dir.path(), &settings()).await;
        let budget = aurora_schema::RecordId::new("team").expect("id");
        let one = Usage {
            spend_nanos: 7,
            requests: 1,
            tokens: 3,
        };
        let view = server.node.as_ref().expect("node").state_view.clone();
        for _ in 0..3 {
            view.record_usage(&budget, 0, one);
        }
        assert_eq!(view.usage(&budget, 0).requests, 3, "seen here at once");
        server.stop().await;

        let server = NodeServer::start_with(dir.path(), &settings()).await;
        let view = server.node.as_ref().expect("node").state_view.clone();
        let usage = view.usage(&budget, 0);
        assert_eq!(
            (usage.requests, usage.spend_nanos, usage.tokens),
            (3, 21, 9),
            "clustered: {clustered}"
        );
        server.stop().await;
    }
}

const SWITCHOVER: &str = "/admin/api/cluster/switchover";
const FORGET: &str = "/admin/api/cluster/forget";
const ADMIT: &str = "/admin/api/cluster/admit";

/// The error object of `reply`, for a snapshot.
fn error_of(reply: &Reply) -> Value {
    json!({"error": reply.json()["error"]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchover_and_forget_on_a_single_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = NodeServer::start(dir.path()).await;

    // No roster without clustering.
    let status = server
        .call(Method::GET, "/admin/api/cluster/status", None)
        .await;
    assert_eq!(status.json(), json!({"enabled": false}));

    let reply = server
        .call(Method::POST, SWITCHOVER, Some(&json!({"to": "n1"})))
        .await;
    reply.assert_error(409, None, Some("single_node"));
    insta::assert_json_snapshot!("error_switchover_single_node", error_of(&reply));
    server
        .call(Method::POST, FORGET, Some(&json!({"node": "gone"})))
        .await
        .assert_error(409, None, Some("single_node"));

    // A body that is not what is expected is a 400 naming the field, whatever the mode.
    for (path, body, field) in [
        (SWITCHOVER, json!({}), "to"),
        (SWITCHOVER, json!({"to": 5}), "to"),
        (SWITCHOVER, json!({"to": "n1", "force": true}), "force"),
        (FORGET, json!({"to": "n1"}), "to"),
        (FORGET, json!({"node": null}), "node"),
    ] {
        let reply = server.call(Method::POST, path, Some(&body)).await;
        reply.assert_error(400, Some(field), Some("invalid_field"));
        if body == json!({}) {
            insta::assert_json_snapshot!("error_switchover_missing_to", error_of(&reply));
        }
    }
    let bearer = format!("Bearer {TOKEN}");
    let auth = [("authorization", bearer.as_str())];
    send(
        server.addr,
        Method::POST,
        SWITCHOVER,
        &auth,
        Bytes::from("to=n1"),
    )
    .await
    .assert_error(400, None, Some("invalid_json"));
    let reply = server.call(Method::GET, SWITCHOVER, None).await;
    reply.assert_error(405, None, Some("method_not_allowed"));
    assert_eq!(reply.header("allow"), "POST");
    // Behind the token like every admin path.
    send(server.addr, Method::POST, FORGET, &[], Bytes::from("{}"))
        .await
        .assert_error(401, None, Some("invalid_admin_token"));
    server.stop().await;
}

/// A clustered node on loopback that founds an active_passive cluster alone.
fn solo_settings() -> ClusterSettings {
    let port = |what| {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .unwrap_or_else(|e| panic!("free {what} port: {e}"))
            .port()
            .to_string()
    };
    let env: std::collections::HashMap<String, String> = [
        ("CLUSTER_ENABLED", "true".to_owned()),
        ("CLUSTER_NODE_ID", "solo".to_owned()),
        ("CLUSTER_BIND_ADDR", "127.0.0.1".to_owned()),
        ("CLUSTER_BIND_PORT", port("gossip")),
        ("CLUSTER_SYNC_BIND_PORT", port("sync")),
        ("CLUSTER_ADVERTISE_URL", "http://127.0.0.1:1".to_owned()),
        ("CLUSTER_FAILOVER_MODE", "active_passive".to_owned()),
        (
            "CLUSTER_SECRET",
            "a-cluster-secret-of-more-than-16-bytes".to_owned(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    aurora_io::config::load("", &env).expect("clustered settings")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_leader_lists_its_roster_and_refuses_what_it_cannot_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = NodeServer::start_with(dir.path(), &solo_settings()).await;
    // It leads once its quiet period (one promise length) is over.
    let started = Instant::now();
    let mut status = Value::Null;
    while status["serving"] != json!(true) || status["voters"].as_array().is_none_or(Vec::is_empty)
    {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no leadership within 15 s: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        status = server
            .call(Method::GET, "/admin/api/cluster/status", None)
            .await
            .json();
    }
    status["this_node"]["gossip_addr"] = json!("[gossip_addr]");
    // The storage life is drawn when node.db is created: 16 hex digits.
    let life = status["identity"]["life"]
        .as_str()
        .expect("life")
        .to_owned();
    assert!(
        life.len() == 16 && life.bytes().all(|b| b.is_ascii_hexdigit()),
        "{life}"
    );
    status["identity"]["life"] = json!("[life]");
    insta::assert_json_snapshot!("cluster_status_lone_leader", status);

    // The configured node_id is the id shown; the core's numeric id stands beside it.
    assert_eq!(status["this_node"]["id"], "solo");
    assert_eq!(status["leader"], "solo");
    let numeric = status["this_node"]["numeric_id"]
        .as_str()
        .expect("numeric_id")
        .to_owned();
    // By the shown (configured) id or the numeric one: it already leads.
    for to in ["solo", numeric.as_str()] {
        let reply = server
            .call(Method::POST, SWITCHOVER, Some(&json!({"to": to})))
            .await;
        reply.assert_error(409, Some("to"), Some("already_leader"));
    }
    let reply = server
        .call(Method::POST, SWITCHOVER, Some(&json!({"to": "n42"})))
        .await;
    reply.assert_error(400, Some("to"), Some("invalid_field"));
    insta::assert_json_snapshot!("error_switchover_not_eligible", error_of(&reply));

    let reply = server
        .call(Method::POST, FORGET, Some(&json!({"node": "solo"})))
        .await;
    reply.assert_error(409, None, Some("cannot_forget_self"));
    let reply = server
        .call(Method::POST, FORGET, Some(&json!({"node": "n42"})))
        .await;
    reply.assert_error(400, Some("node"), Some("invalid_field"));
    insta::assert_json_snapshot!("error_forget_not_a_voter", error_of(&reply));

    // cluster/admit: binds an id to a life on an operator's word.
    for (body, field) in [
        (json!({"node": "n42", "life": "xyz"}), "life"),
        (json!({"node": "n42"}), "life"),
        (json!({"node": "solo", "life": "00000000000000aa"}), "node"),
    ] {
        let reply = server.call(Method::POST, ADMIT, Some(&body)).await;
        reply.assert_error(400, Some(field), Some("invalid_field"));
    }
    let reply = server
        .call(
            Method::POST,
            ADMIT,
            Some(&json!({"node": "n42", "life": "00000000000000aa"})),
        )
        .await;
    let admitted = reply.json();
    assert_eq!(admitted["object"], json!("cluster.admit"), "{admitted}");
    assert_eq!(admitted["life"], json!("00000000000000aa"));
    send(server.addr, Method::POST, ADMIT, &[], Bytes::from("{}"))
        .await
        .assert_error(401, None, Some("invalid_admin_token"));
    server.stop().await;
}

/// Issue 10 item 10a: a provider may only name an API-key variable under
/// `gateway.provider_env_prefix`. The admin API refuses one naming another variable
/// (400 naming `api_key_env`), and one that arrives by replication (written here
/// straight into the replicated store, as a peer's gossip would deliver it) is left out
/// of the catalog, with a gauge: no node ever reads `AWS_SECRET_ACCESS_KEY` for it.
#[tokio::test]
async fn api_key_env_outside_the_provider_prefix_is_refused_and_skipped() {
    use aurora_schema::{Provider, ProviderKind, Record, RecordId};
    let dir = tempfile::tempdir().expect("tempdir");
    let server = NodeServer::start(dir.path()).await;
    let provider = |var: &str| {
        json!({"kind": "open_ai_compatible", "base_url": "http://127.0.0.1:9/v1",
               "api_key_env": var, "timeout_ms": 1000, "max_retries": 0, "cooldown_ms": 0})
    };
    let mut evil = provider("AWS_SECRET_ACCESS_KEY");
    evil["id"] = json!("evil");
    let refused = server
        .call(Method::POST, "/admin/api/providers", Some(&evil))
        .await;
    let error = refused.assert_error(400, Some("api_key_env"), Some("invalid_field"));
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("AURORA_PROVIDER_")),
        "{error}"
    );
    let mut fine = provider("AURORA_PROVIDER_FINE");
    fine["id"] = json!("fine");
    let created = server
        .call(Method::POST, "/admin/api/providers", Some(&fine))
        .await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.text());

    // As if replicated from a node that does not check (or an older version).
    let record = Record::Provider(Provider {
        kind: ProviderKind::OpenAiCompatible,
        base_url: "http://127.0.0.1:9/v1".into(),
        api_key_env: Some("AWS_SECRET_ACCESS_KEY".into()),
        timeout_ms: 1000,
        max_retries: 0,
        cooldown_ms: 0,
    });
    server
        .state
        .state_view
        .put(RecordId::new("evil").expect("id"), record)
        .await
        .expect("written");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let catalog = server.state.catalog.load();
        let has = |name: &str| catalog.records().providers.iter().any(|p| p.name == name);
        if has("fine") {
            assert!(!has("evil"), "the provider outside the prefix is skipped");
            let metrics = common::send(server.addr, Method::GET, "/metrics", &[], Bytes::new())
                .await
                .text();
            if metrics.contains("aurora_replicated_providers_refused 1") {
                break;
            }
        }
        assert!(Instant::now() < deadline, "catalog never settled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_import_checks_the_whole_document_before_writing_anything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = NodeServer::start(dir.path()).await;
    let created = server
        .call(
            Method::POST,
            "/admin/api/keys",
            Some(&json!({"id": "k1", "name": "one"})),
        )
        .await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.text());
    let export = server
        .call(Method::GET, "/admin/api/state/export", None)
        .await;
    assert_eq!(export.status.as_u16(), 200, "{}", export.text());
    let doc = export.json();
    let digest = doc["digest"].clone();
    assert_eq!(doc["collections"]["keys"][0]["id"], "k1");
    assert!(!export.text().contains("sk-aurora-"), "no secret exported");

    // A record that fails the admin API's checks refuses the whole document: the
    // budget beside it is not written either.
    let mut bad = doc.clone();
    bad.as_object_mut().expect("object").remove("digest");
    bad["collections"]["budgets"] = json!([{"id": "b1", "name": "B", "limit": null,
        "max_requests": 5, "period": "total"}]);
    bad["collections"]["providers"] = json!([{"id": "evil", "kind": "open_ai_compatible",
        "base_url": "http://127.0.0.1:9/v1", "api_key_env": "AWS_SECRET_ACCESS_KEY",
        "timeout_ms": 1000, "max_retries": 0, "cooldown_ms": 0}]);
    let refused = server
        .call(Method::POST, "/admin/api/state/import", Some(&bad))
        .await;
    refused.assert_error(400, Some("api_key_env"), Some("invalid_field"));
    let mut wrong_id = doc.clone();
    wrong_id["collections"]["keys"][0]["id"] = json!("not an id!");
    let refused = server
        .call(Method::POST, "/admin/api/state/import", Some(&wrong_id))
        .await;
    let error = refused.assert_error(400, None, Some("invalid_state_document"));
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("keys[0]")),
        "{error}"
    );
    let refused = server
        .call(
            Method::POST,
            "/admin/api/state/import?dry_run=maybe",
            Some(&doc),
        )
        .await;
    refused.assert_error(400, Some("dry_run"), Some("invalid_field"));
    let refused = server
        .call(Method::GET, "/admin/api/state/export?at=yesterday", None)
        .await;
    refused.assert_error(400, Some("at"), Some("at_out_of_range"));
    let refused = server
        .call(Method::GET, "/admin/api/state/export?at=1000", None)
        .await;
    let error = refused.assert_error(400, Some("at"), Some("at_out_of_range"));
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("before this node.db started keeping history")),
        "{error}"
    );
    let after = server
        .call(Method::GET, "/admin/api/state/export", None)
        .await;
    assert_eq!(after.json()["digest"], digest, "nothing was written");

    // The valid part alone goes in; the answer's digest is the new state's.
    let mut good = bad.clone();
    good["collections"]["providers"] = json!([]);
    let imported = server
        .call(Method::POST, "/admin/api/state/import", Some(&good))
        .await;
    assert_eq!(imported.status.as_u16(), 200, "{}", imported.text());
    let answer = imported.json();
    assert_eq!(answer["diff"]["budgets"]["added"], json!(["b1"]));
    assert_eq!(answer["written"], 1);
    let now = server
        .call(Method::GET, "/admin/api/state/export", None)
        .await;
    assert_eq!(answer["digest_after"], now.json()["digest"]);
    assert_eq!(answer["digest"], now.json()["digest"]);
    server.stop().await;
}
