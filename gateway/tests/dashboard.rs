//! `GET /admin/dashboard/cluster` over real HTTP: who may see it (the admin token as a
//! bearer token or as the Basic password; Basic nowhere else), its headers, and the
//! page itself as an insta snapshot of a fixed three-node cluster.
//!
//! The multi-process test in `cluster_processes.rs` checks the page of a live cluster
//! (leader badge on the node that holds the lease).

mod common;

use aurora_gateway::admin::dashboard;
use aurora_gateway::cluster::status::{Lag, NodeRow, Status, StatusDetails, ThisNode};
use bytes::Bytes;
use common::{send, Reply, TestServer};
use http::Method;

const PAGE: &str = "/admin/dashboard/cluster";
/// base64 of `admin:test-admin-token-0123456789abcdef` (the test servers' token as the password).
const BASIC_OK: &str = "Basic YWRtaW46dGVzdC1hZG1pbi10b2tlbi0wMTIzNDU2Nzg5YWJjZGVm";
/// base64 of `admin:wrong-token`.
const BASIC_WRONG: &str = "Basic YWRtaW46d3JvbmctdG9rZW4=";

async fn get(server: &TestServer, path: &str, authorization: Option<&str>) -> Reply {
    let headers: Vec<(&str, &str)> = authorization
        .map(|a| vec![("authorization", a)])
        .unwrap_or_default();
    send(server.addr, Method::GET, path, &headers, Bytes::new()).await
}

#[tokio::test]
async fn the_page_needs_the_admin_token_and_basic_is_accepted_only_there() {
    let server = TestServer::start().await;

    // A request with credentials, or `?format=static` without, gets the server-rendered
    // page; without either it is a browser opening the admin UI (see below).
    let static_page = format!("{PAGE}?format=static");
    for (path, authorization) in [
        (static_page.as_str(), None),
        (PAGE, Some(BASIC_WRONG)),
        (PAGE, Some("Bearer nope")),
        (PAGE, Some("Basic !!")),
    ] {
        let reply = get(&server, path, authorization).await;
        assert_eq!(reply.status, 401, "{authorization:?}");
        assert!(
            reply.header("www-authenticate").starts_with("Basic realm="),
            "a browser must be asked for credentials"
        );
        assert_eq!(reply.header("content-type"), "text/html; charset=utf-8");
        assert!(
            !reply.text().contains("<table"),
            "no cluster data before auth"
        );
        assert!(
            !reply.text().contains("http-equiv=\"refresh\""),
            "no reload loop of credential prompts"
        );
    }

    let bearer = format!("Bearer {}", common::TOKEN);
    for authorization in [BASIC_OK, bearer.as_str()] {
        let reply = get(&server, PAGE, Some(authorization)).await;
        assert_eq!(reply.status, 200, "{authorization}: {}", reply.text());
        assert_eq!(reply.header("content-type"), "text/html; charset=utf-8");
        assert!(reply
            .header("content-security-policy")
            .starts_with("default-src 'none'"));
        assert_eq!(reply.header("x-frame-options"), "DENY");
        assert_eq!(reply.header("cache-control"), "no-store");
        let page = reply.text();
        assert!(page.contains(r#"<meta http-equiv="refresh" content="30">"#));
        assert!(page.contains("Clustering is <b>off</b>"), "{page}");
        assert!(!page.contains("<script"), "the page runs no script");
        assert!(
            !page.contains("src=") && !page.contains("href="),
            "no external assets, no links"
        );
    }

    // The JSON API keeps taking the bearer token only (Basic there would be CSRF-able).
    let reply = get(&server, "/admin/api/cluster/status", Some(BASIC_OK)).await;
    assert_eq!(reply.status, 401);

    let reply = send(server.addr, Method::POST, PAGE, &[], Bytes::new()).await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow"), "GET");
    server.stop().await;
}

/// The admin UI over real HTTP: the shell for every page path without any token (it
/// holds no data), the assets with their types, the strict CSP on all of them.
#[tokio::test]
async fn the_admin_ui_shell_and_assets_are_served_without_data_under_a_strict_csp() {
    let server = TestServer::start().await;
    for path in [
        "/admin/dashboard",
        PAGE,
        "/admin/dashboard/settings/routing",
        "/admin/dashboard/no-such-page",
    ] {
        let reply = get(&server, path, None).await;
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.header("content-type"), "text/html; charset=utf-8");
        assert_eq!(
            reply.header("content-security-policy"),
            aurora_gateway::admin::ui::CSP
        );
        let page = reply.text();
        assert!(page.contains("/admin/dashboard/assets/js/app.js"), "{page}");
        assert!(!page.contains("<table"), "the shell holds no data");
    }
    let reply = get(&server, "/admin/dashboard/assets/js/app.js", None).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        "text/javascript; charset=utf-8"
    );
    let etag = reply.header("etag").to_owned();
    let again = send(
        server.addr,
        Method::GET,
        "/admin/dashboard/assets/js/app.js",
        &[("if-none-match", etag.as_str())],
        Bytes::new(),
    )
    .await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    for path in [
        "/admin/dashboard/assets/nope.js",
        "/admin/dashboard/assets/../../Cargo.toml",
        "/admin/dashboard/assets/%2e%2e/build.rs",
    ] {
        let reply = get(&server, path, None).await;
        assert_eq!(reply.status, 404, "{path}");
        assert_eq!(
            reply.header("content-security-policy"),
            aurora_gateway::admin::ui::CSP
        );
    }
    server.stop().await;
}

fn row(name: &str, state: &'static str, leader: bool, is_self: bool) -> NodeRow {
    let i = name.trim_start_matches("node-");
    NodeRow {
        id: name.to_owned(),
        numeric_id: format!("n00000000000000{i}"),
        name: name.to_owned(),
        region: "eu-west".into(),
        zone: format!("eu-west-{i}"),
        advertise_url: format!("http://127.0.0.{i}:8080"),
        sync_addr: format!("127.0.0.{i}:7947"),
        state,
        incarnation: 1,
        last_heartbeat_ms_ago: (!is_self).then_some(420),
        is_leader: leader,
        is_self,
        sync_lag: Lag {
            versions: u64::from(state == "suspect") * 3,
            millis: u64::from(state == "suspect") * 1_250,
        },
    }
}

#[test]
fn page_of_a_three_node_cluster() {
    let status = Status {
        enabled: true,
        details: Some(StatusDetails {
            mode: "active_passive",
            node_count: 2,
            leader: Some("node-2".into()),
            leader_advertise_url: Some("http://127.0.0.2:8080".into()),
            epoch: 7,
            serving: false,
            can_fail_over: false,
            failover_reason: Some("one voter of three is suspect".into()),
            this_node: ThisNode {
                id: "node-1".into(),
                numeric_id: "n000000000000001".into(),
                name: "node-1".into(),
                status: "active",
                gossip_addr: Some("127.0.0.1:7946".into()),
                incarnation: 1,
            },
            drift_warnings: vec![
                "node-<3> (n000000000000003): version 0.2.0 differs from this node's 0.1.0".into(),
            ],
        }),
    };
    let nodes = [
        row("node-1", "alive", false, true),
        row("node-2", "alive", true, false),
        row("node-<3>", "suspect", false, false),
    ];
    let page = dashboard::render(&status, &nodes);
    assert!(
        page.contains("node-&lt;3&gt;") && !page.contains("node-<3>"),
        "escaped"
    );
    insta::assert_snapshot!("dashboard_cluster", page);
}
