//! The admin UI in a real browser (headless chromium, see `common/browser.rs`): login
//! and logout, Settings → Routing, phone width, and the cluster page of a real
//! three-node cluster: one leader badge, three nodes alive, the 30 s timer, a planned
//! switchover from the leader's page, a killed node turning failed on refresh and
//! forgotten from the new leader's page.
//!
//! Without chromium and chromedriver these print SKIPPED and pass, unless
//! `AURORA_REQUIRE_BROWSER=1` (CI). `AURORA_UI_SCREENSHOTS=docs/img` writes
//! `docs/img/ui-cluster.png`.

mod common;

use std::time::Duration;

use common::browser::Browser;
use common::cluster::{self, agreed, get_json, wait_for, Proc, Spec};
use common::{TestServer, TOKEN};
use serde_json::Value;

const CLUSTER: &str = "/admin/dashboard/cluster";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_settings_phone_width_and_logout_on_a_lone_node() {
    let server = TestServer::start().await;
    let Some(browser) = Browser::start("ui lone node", server.addr).await else {
        return;
    };

    // Not signed in: the login form, whatever page was asked for.
    browser.goto(CLUSTER).await;
    let input = browser.wait_for("[data-testid=login-token]").await;
    input.send_keys("not-the-token").await.expect("type");
    browser.click("[data-testid=login-submit]").await;
    browser
        .wait_until(
            "the login error",
            Duration::from_secs(5),
            "document.querySelector('[data-testid=login-error]').textContent.includes('not this node')",
        )
        .await;
    assert_eq!(
        browser
            .js(
                "return sessionStorage.getItem('aurora.admin_token');",
                vec![]
            )
            .await,
        Value::Null,
        "a refused token is not kept"
    );

    browser.assert_labelled().await;

    // Signing in with the keyboard only: the field has focus, Enter submits.
    let focused = browser
        .js("return document.activeElement.id;", vec![])
        .await;
    assert_eq!(focused, "login-token", "the token field takes focus");
    let input = browser.wait_for("[data-testid=login-token]").await;
    input
        .send_keys(&format!("{TOKEN}\u{e007}"))
        .await
        .expect("type the token and Enter");
    browser.wait_for("#app:not([hidden])").await;
    browser.wait_for("[data-testid=clustering-off]").await;
    browser.assert_labelled().await;
    assert!(
        browser
            .all("[data-testid=leader-controls]")
            .await
            .is_empty(),
        "no cluster controls with clustering off"
    );
    assert!(browser.all("[data-testid=switchover]").await.is_empty());
    let page = browser.wait_for("[data-testid=page]").await;
    assert_eq!(
        page.attr("data-refresh-ms").await.expect("attr").as_deref(),
        Some("30000"),
        "the cluster page refreshes every 30 s"
    );
    let url = browser.client.current_url().await.expect("url");
    assert!(!url.as_str().contains(TOKEN), "the token is never in a URL");
    assert_eq!(
        browser
            .js(
                "return sessionStorage.getItem('aurora.admin_token');",
                vec![]
            )
            .await,
        Value::String(TOKEN.into())
    );

    // Settings → Routing through the menu.
    browser.click("[data-testid=nav-settings-routing]").await;
    let mode = browser
        .wait_for("[data-testid=setting-failover-mode]")
        .await;
    assert_eq!(mode.text().await.expect("text"), "single_node");
    let heartbeat = browser
        .wait_for("[data-testid=setting-heartbeat-interval]")
        .await;
    assert_eq!(heartbeat.text().await.expect("text"), "1 s");
    browser.wait_for("[data-testid=setting-node-id]").await;
    let url = browser.client.current_url().await.expect("url");
    assert_eq!(url.path(), "/admin/dashboard/settings/routing");

    // The bare dashboard path goes to the start page; an unknown page says so.
    browser.goto("/admin/dashboard").await;
    browser
        .wait_until(
            "the start page",
            Duration::from_secs(5),
            "location.pathname.startsWith('/admin/dashboard/') && document.querySelector('#page').childElementCount > 0",
        )
        .await;
    browser.goto("/admin/dashboard/no-such-page").await;
    browser.wait_for("[data-testid=not-found]").await;

    // A reload keeps the session (session storage), and lands on the same page.
    browser.goto("/admin/dashboard/settings/routing").await;
    browser
        .wait_for("#app:not([hidden]) [data-testid=setting-failover-mode]")
        .await;

    // Phone width: the menu folds behind a labelled button.
    browser
        .client
        .set_window_size(390, 844)
        .await
        .expect("resize");
    let toggle = browser.wait_for("#nav-toggle").await;
    assert!(toggle.is_displayed().await.expect("displayed"));
    let nav = browser.wait_for("#nav").await;
    assert!(!nav.is_displayed().await.expect("displayed"));
    toggle.click().await.expect("open the menu");
    assert!(nav.is_displayed().await.expect("displayed"));
    browser.click("[data-testid=nav-cluster]").await;
    browser.wait_for("[data-testid=clustering-off]").await;
    browser
        .client
        .set_window_size(1280, 800)
        .await
        .expect("resize");

    // A token the node refuses later (rotated) brings the login back with a word.
    browser
        .js(
            "sessionStorage.setItem('aurora.admin_token', 'rotated-away'); return null;",
            vec![],
        )
        .await;
    browser.click("[data-testid=refresh]").await;
    browser.wait_for("#login:not([hidden])").await;
    let said = browser.wait_for("[data-testid=login-error]").await;
    assert!(said.text().await.expect("text").contains("refused"));
    browser.login(CLUSTER, TOKEN).await;
    browser.wait_for("[data-testid=clustering-off]").await;

    // Logout forgets the token and shows the login again.
    browser.click("[data-testid=logout]").await;
    browser.wait_for("#login:not([hidden])").await;
    assert_eq!(
        browser
            .js(
                "return sessionStorage.getItem('aurora.admin_token');",
                vec![]
            )
            .await,
        Value::Null
    );
    browser.goto(CLUSTER).await;
    browser.wait_for("#login:not([hidden])").await;
    browser.finish().await;
    server.stop().await;
}

/// How many node rows the page shows in `state`, and how many leader badges.
const ALIVE_ROWS: &str =
    "document.querySelectorAll('[data-testid=node-row][data-state=alive]').length";
const BADGES: &str = "document.querySelectorAll('[data-testid=leader-badge]').length";

fn leader_row_is(name: &str) -> String {
    format!(
        "(() => {{ const b = document.querySelectorAll('[data-testid=leader-badge]'); \
         return b.length === 1 && b[0].closest('[data-testid=node-row]').dataset.node === '{name}'; }})()"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_page_of_three_nodes_switchover_and_a_killed_node() {
    // Skip before starting a cluster when there is no browser.
    if !Browser::available("ui cluster") {
        return;
    }
    let root = tempfile::tempdir().expect("tempdir");
    // Two regions, three zones: the page groups them.
    let placement = [
        ("eu-west", "eu-west-1a"),
        ("eu-west", "eu-west-1b"),
        ("us-east", "us-east-1a"),
    ];
    let specs: Vec<Spec> = (1..=3u8)
        .map(|i| {
            let (region, zone) = placement[usize::from(i - 1)];
            cluster::spec(
                root.path(),
                i,
                &[
                    "--cluster-failover-mode",
                    "active_passive",
                    "--cluster-region",
                    region,
                    "--cluster-zone",
                    zone,
                ],
            )
        })
        .collect();
    let mut procs: Vec<Proc> = specs
        .iter()
        .map(|s| cluster::spawn(s, &specs, cluster::SECRET))
        .collect();
    for p in &procs {
        wait_for(Duration::from_secs(20), "all members alive", || {
            cluster::alive(p) == 3
        });
    }
    let leader = {
        let all: Vec<(&Spec, &Proc)> = specs.iter().zip(procs.iter()).collect();
        let mut found = None;
        wait_for(Duration::from_secs(20), "one active node", || {
            found = agreed(&all);
            found.is_some()
        });
        found.expect("agreed").active
    };
    let leader_name = specs[leader].name.clone();
    let mut browser = Browser::start("ui cluster", specs[leader].http)
        .await
        .expect("a browser (found a moment ago)");
    browser.login(CLUSTER, TOKEN).await;

    // Exactly one leader badge, on this node's row; three nodes alive.
    browser
        .wait_until(
            "three alive nodes and one leader badge",
            Duration::from_secs(15),
            &format!("{ALIVE_ROWS} === 3 && {}", leader_row_is(&leader_name)),
        )
        .await;
    assert_eq!(browser.js(&format!("return {BADGES};"), vec![]).await, 1);
    browser.wait_for("[data-testid=leader-controls]").await;
    browser.assert_labelled().await;
    let count = browser.wait_for("[data-testid=node-count]").await;
    assert!(
        count.text().await.expect("text").contains("3 of 3"),
        "{:?}",
        count.text().await
    );
    assert_eq!(browser.all("[data-testid=region]").await.len(), 2);
    assert_eq!(browser.all("[data-testid=zone]").await.len(), 3);
    assert_eq!(
        browser
            .all("[data-region=eu-west] [data-testid=node-row]")
            .await
            .len(),
        2,
        "node-1 and node-2 under eu-west"
    );
    browser
        .wait_for("[data-zone=us-east-1a] [data-testid=node-row][data-node=node-3]")
        .await;
    // The whole page in the picture: a taller window for the screenshot only.
    browser
        .client
        .set_window_size(1280, 1150)
        .await
        .expect("resize");
    browser.screenshot("ui-cluster").await;
    browser
        .client
        .set_window_size(1280, 800)
        .await
        .expect("resize");

    // The timer: 30 s by default; with a short period (the test hook) the page
    // refreshes by itself, with no click.
    let page = browser.wait_for("[data-testid=page]").await;
    assert_eq!(
        page.attr("data-refresh-ms").await.expect("attr").as_deref(),
        Some("30000")
    );
    browser
        .js(
            "sessionStorage.setItem('aurora.refresh_ms', '600'); return null;",
            vec![],
        )
        .await;
    browser.goto(CLUSTER).await;
    browser
        .wait_until(
            "three refreshes by the timer",
            Duration::from_secs(10),
            "Number(document.querySelector('[data-testid=updated-at]').dataset.refreshes) >= 3",
        )
        .await;
    browser
        .js(
            "sessionStorage.removeItem('aurora.refresh_ms'); return null;",
            vec![],
        )
        .await;
    browser.goto(CLUSTER).await;
    browser.wait_for("[data-testid=leader-controls]").await;

    // A planned switchover from the leader's page, behind a confirmation.
    let select = browser.wait_for("[data-testid=switchover-to]").await;
    let target = select
        .prop("value")
        .await
        .expect("value")
        .expect("a switchover target");
    browser.click("[data-testid=switchover]").await;
    let dialog = browser.wait_for("[data-testid=confirm-dialog][open]").await;
    assert!(dialog.text().await.expect("text").contains(&target));
    browser.click("[data-testid=confirm-yes]").await;
    browser.wait_for("[data-testid=toast-ok]").await;
    browser
        .wait_until_clicking(
            "the leader badge on the new leader",
            Duration::from_secs(15),
            &leader_row_is(&target),
            Some("[data-testid=refresh]"),
        )
        .await;
    browser.wait_for("[data-testid=not-leader-note]").await;
    assert!(
        browser.all("[data-testid=switchover]").await.is_empty(),
        "controls only on the leader"
    );
    let status = get_json(&procs[leader], "/admin/api/cluster/status");
    assert_eq!(status["leader"], target.as_str(), "{status}");

    // Kill the node that is neither this page's nor the new leader; it turns failed.
    let victim = (0..3)
        .find(|&i| i != leader && specs[i].name != target)
        .expect("a third node");
    let victim_name = specs[victim].name.clone();
    procs[victim].kill_9();
    let failed = std::time::Instant::now();
    browser
        .wait_until_clicking(
            "the killed node shown failed",
            Duration::from_secs(30),
            &format!(
                "document.querySelector('[data-testid=node-row][data-node={victim_name}][data-state=dead]') !== null"
            ),
            Some("[data-testid=refresh]"),
        )
        .await;
    println!(
        "{victim_name} shown failed {:?} after kill -9",
        failed.elapsed()
    );
    let state = browser
        .wait_for(&format!(
            "[data-testid=node-row][data-node={victim_name}] [data-testid=node-state]"
        ))
        .await;
    assert_eq!(state.text().await.expect("text"), "failed");
    assert_eq!(
        browser.js(&format!("return {ALIVE_ROWS};"), vec![]).await,
        2
    );
    assert!(
        browser.all("[data-testid=forget]").await.is_empty(),
        "no forget button on a standby's page"
    );
    browser.assert_no_errors().await;

    // On the new leader's UI (its own sign-in) the failed node can be forgotten.
    let new_leader = specs
        .iter()
        .position(|s| s.name == target)
        .expect("the new leader");
    browser.switch_to(specs[new_leader].http);
    browser.login(CLUSTER, TOKEN).await;
    let forget = format!("[data-testid=node-row][data-node={victim_name}] [data-testid=forget]");
    browser
        .wait_until_clicking(
            "a forget button on the failed node's row",
            Duration::from_secs(30),
            &format!("document.querySelector('{forget}') !== null"),
            Some("[data-testid=refresh]"),
        )
        .await;
    browser.click(&forget).await;
    browser.wait_for("[data-testid=confirm-dialog][open]").await;
    browser.click("[data-testid=confirm-yes]").await;
    browser.wait_for("[data-testid=toast-ok]").await;
    browser
        .wait_until_clicking(
            "the voter roster without the forgotten node",
            Duration::from_secs(15),
            &format!(
                "!document.querySelector('[data-testid=voters]').textContent.includes('{victim_name}')"
            ),
            Some("[data-testid=refresh]"),
        )
        .await;
    browser.finish().await;
}
