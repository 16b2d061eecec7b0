//! The overview and the usage-log page in a real browser (headless chromium, see
//! `common/browser.rs`): after real chat requests by three keys on two models (one
//! refused), the
//! overview's tiles show the usage log's totals, its charts are drawn (points, a
//! legend naming each model and key), the totals per model and per key are right,
//! and the usage page filters by model and pages back by `until` without repeating or
//! losing a row.
//!
//! Without chromium and chromedriver this prints SKIPPED and passes, unless
//! `AURORA_REQUIRE_BROWSER=1` (CI). `AURORA_UI_SCREENSHOTS=docs/img` writes
//! `docs/img/ui-overview.png` and `docs/img/ui-usage.png`.

mod common;

use std::time::Duration;

use aurora_gateway::state::AppState;
use aurora_gateway::usage::{GroupBy, UsageLog, UsageRow};
use aurora_schema::{AuthKey, Money, Pricing, Record, RecordId};
use bytes::Bytes;
use common::browser::Browser;
use common::{chat, send, TestServer, TOKEN};
use http::Method;
use serde_json::Value;

const OVERVIEW: &str = "/admin/dashboard/overview";

async fn put(state: &AppState, name: &str, record: Record) {
    state
        .state_view
        .put(RecordId::new(name).expect("id"), record)
        .await
        .expect("record accepted");
}

fn key(secret: &str, allowed_models: &[&str]) -> Record {
    Record::AuthKey(AuthKey {
        allowed_models: allowed_models.iter().map(|m| (*m).to_owned()).collect(),
        ..common::auth_key(secret)
    })
}

fn pricing(input: u64, output: u64) -> Record {
    Record::Pricing(Pricing {
        input_per_million: Money::from_usd(input).expect("usd"),
        output_per_million: Money::from_usd(output).expect("usd"),
        cached_input_per_million: None,
    })
}

async fn chat_as(server: &TestServer, secret: &str, model: &str) -> u16 {
    let auth = format!("Bearer {secret}");
    send(
        server.addr,
        Method::POST,
        "/v1/chat/completions",
        &[
            ("content-type", "application/json"),
            ("authorization", &auth),
        ],
        Bytes::from(chat(model, "hello there, how is the weather today?").to_string()),
    )
    .await
    .status
    .as_u16()
}

/// `fmtUsd` of `ui/js/dom.js`: two decimals, six below a cent.
fn fmt_usd(nanos: u64) -> String {
    let usd = nanos as f64 / 1e9;
    if usd != 0.0 && usd < 0.01 {
        format!("${usd:.6}")
    } else {
        format!("${usd:.2}")
    }
}

/// The trimmed text of each cell of the first row matching `css`, or of each legend
/// item under it.
async fn cells(browser: &Browser, css: &str) -> Vec<String> {
    browser.wait_for(css).await;
    let value = browser
        .js(
            "const n = document.querySelector(arguments[0]); const parts = n.tagName === 'TR' ? [...n.cells] : [...n.querySelectorAll('li')]; return parts.map((c) => c.textContent.trim());",
            vec![Value::String(css.to_owned())],
        )
        .await;
    serde_json::from_value(value).expect("strings")
}

async fn text(browser: &Browser, css: &str) -> String {
    browser
        .wait_for(css)
        .await
        .text()
        .await
        .unwrap_or_else(|e| panic!("text of {css}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overview_charts_show_the_usage_log_totals_and_the_usage_page_filters_by_model() {
    if !Browser::available("ui overview") {
        return;
    }
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let s = &server.state;
    s.policy.attach_usage_log(
        UsageLog::open(&dir.path().join("usage.db"), "node-ui").expect("usage log"),
    );
    let log = s.policy.usage_log().expect("attached");
    put(s, "alice", key("sk-alice", &[])).await;
    put(s, "bob", key("sk-bob", &[])).await;
    put(s, "carol", key("sk-carol", &["mock/echo"])).await;
    put(s, "mock/echo", pricing(2, 8)).await;
    put(s, "mock/gpt-4o", pricing(5, 15)).await;
    // The mock waits as long as it is told, so the latency chart has something to show.
    for ms in [20, 40, 60] {
        let model = format!("mock/echo?latency_ms={ms}");
        assert_eq!(chat_as(&server, "sk-alice", &model).await, 200);
    }
    for ms in [80, 120] {
        let model = format!("mock/gpt-4o?latency_ms={ms}");
        assert_eq!(chat_as(&server, "sk-bob", &model).await, 200);
    }
    // Refused after authentication: a usage row with status 403, an error.
    assert_eq!(chat_as(&server, "sk-carol", "mock/gpt-4o").await, 403);
    // A 401: no usage row, but in the metrics history.
    assert_eq!(chat_as(&server, "sk-nobody", "mock/echo").await, 401);

    // What the log holds once the last answer is settled (a moment after it was read).
    let mut totals = Vec::new();
    for _ in 0..100 {
        assert!(log.flush(Duration::from_secs(5)));
        totals = log.summary(GroupBy::Model, 0, u64::MAX).expect("summary");
        if totals.iter().map(|t| t.requests).sum::<u64>() == 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let requests: u64 = totals.iter().map(|t| t.requests).sum();
    assert_eq!(requests, 6);
    let spent: u64 = totals.iter().map(|t| t.cost_nanos).sum();
    assert!(spent > 0, "priced requests cost something");
    let prompt: u64 = totals.iter().map(|t| t.prompt_tokens).sum();
    let completion: u64 = totals.iter().map(|t| t.completion_tokens).sum();
    let echo = totals
        .iter()
        .find(|t| t.group.as_deref() == Some("mock/echo"))
        .expect("mock/echo");
    // One history sample now, so the traffic chart has an interval to draw.
    s.metrics
        .history
        .record(s.metrics.sample(aurora_gateway::clock::wall_ms()));

    let Some(browser) = Browser::start("ui overview", server.addr).await else {
        return;
    };
    browser.login(OVERVIEW, TOKEN).await;
    browser
        .wait_for("[data-testid=overview][data-loaded]")
        .await;
    assert_eq!(
        text(&browser, "[data-testid=total-requests-value]").await,
        requests.to_string()
    );
    assert_eq!(
        text(&browser, "[data-testid=total-errors-value]").await,
        "1"
    );
    assert_eq!(
        text(&browser, "[data-testid=total-spend-value]").await,
        fmt_usd(spent)
    );
    assert_eq!(
        text(&browser, "[data-testid=total-tokens-value]").await,
        format!("{prompt} / {completion}")
    );
    // The slowest request took 120 ms or a little more: p99 is in its latency bin.
    let p99 = text(&browser, "[data-testid=total-p99-value]").await;
    let p99: u64 = p99
        .strip_suffix(" ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("p99 {p99}"));
    assert!((120..150).contains(&p99), "p99 {p99} ms");

    // Every chart of the usage log is drawn, with a legend naming both models.
    for id in ["requests", "errors", "latency", "tokens", "spend"] {
        let chart = browser.wait_for(&format!("[data-testid=chart-{id}]")).await;
        let points: u64 = chart
            .attr("data-points")
            .await
            .expect("attr")
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        assert!(points > 0, "chart {id} has no points");
        assert!(
            !browser
                .all(&format!("[data-testid=chart-{id}] path.chart-line"))
                .await
                .is_empty()
                || !browser
                    .all(&format!("[data-testid=chart-{id}] circle"))
                    .await
                    .is_empty(),
            "chart {id} draws nothing"
        );
    }
    let legend = cells(&browser, "[data-testid=chart-requests] .chart-legend").await;
    assert_eq!(
        legend,
        [
            "all 6 requests",
            "mock/echo 3 requests",
            "mock/gpt-4o 3 requests"
        ],
        "the legend names every series with its value"
    );
    let row = cells(
        &browser,
        "[data-testid=overview-group-row][data-group='mock/echo']",
    )
    .await;
    assert_eq!(row[0], "mock/echo");
    assert_eq!(row[1], "3");
    assert_eq!(row[7], fmt_usd(echo.cost_nanos), "{row:?}");
    let errors = cells(&browser, "[data-testid=chart-errors] .chart-legend").await;
    assert_eq!(errors[2], "mock/gpt-4o 1 error, 33.3 %", "{errors:?}");
    browser.wait_for("[data-testid=chart-traffic]").await;
    // The screenshot over the last 15 minutes (30 s buckets).
    browser
        .js(
            "const s = document.getElementById('overview-range'); s.value = '15m'; s.dispatchEvent(new Event('change'));",
            vec![],
        )
        .await;
    browser
        .wait_until(
            "the 15 min range",
            Duration::from_secs(5),
            "['30', '31'].includes(document.querySelector('[data-testid=chart-requests]')?.dataset.buckets)",
        )
        .await;
    browser.screenshot("ui-overview").await;

    // By key: alice and bob.
    browser
        .js(
            "const s = document.getElementById('overview-group'); s.value = 'key'; s.dispatchEvent(new Event('change'));",
            vec![],
        )
        .await;
    browser
        .wait_for("[data-testid=overview-group-row][data-group=alice]")
        .await;
    let bob = cells(&browser, "[data-testid=overview-group-row][data-group=bob]").await;
    assert_eq!((bob[0].as_str(), bob[1].as_str()), ("bob", "2"), "{bob:?}");
    let carol = cells(
        &browser,
        "[data-testid=overview-group-row][data-group=carol]",
    )
    .await;
    assert_eq!(carol[2], "1 (100.0 %)", "{carol:?}");
    // The 24-hour range asks for 30-minute buckets (48, or 49 when the day does not
    // start on a bucket boundary) and shows the same totals.
    browser
        .js(
            "const s = document.getElementById('overview-range'); s.value = '24h'; s.dispatchEvent(new Event('change'));",
            vec![],
        )
        .await;
    browser
        .wait_until(
            "the 24 h range",
            Duration::from_secs(5),
            "['48', '49'].includes(document.querySelector('[data-testid=chart-requests]')?.dataset.buckets)",
        )
        .await;
    assert_eq!(
        text(&browser, "[data-testid=total-requests-value]").await,
        requests.to_string()
    );

    // The usage log: every row, then only one model's.
    browser.click("[data-testid=nav-usage]").await;
    browser
        .wait_until(
            "six usage rows",
            Duration::from_secs(5),
            "document.querySelectorAll('[data-testid=usage-row]').length === 6",
        )
        .await;
    let model = browser.wait_for("#usage-model").await;
    model.send_keys("mock/gpt-4o").await.expect("type");
    browser.click("[data-testid=usage-apply]").await;
    browser
        .wait_until(
            "the rows of mock/gpt-4o only",
            Duration::from_secs(5),
            "(() => { const rows = [...document.querySelectorAll('[data-testid=usage-row]')]; return rows.length === 3 && rows.every((r) => r.dataset.model === 'mock/gpt-4o'); })()",
        )
        .await;
    browser.screenshot("ui-usage").await;

    // Paging by `until`: 60 rows of one model, 20 of them in the same millisecond
    // across the page boundary (50 rows a page); "Older rows" shows the other ten,
    // none twice, none lost (each row's latency is its number).
    let now = aurora_gateway::clock::wall_ms();
    for i in 0..60u64 {
        let time_ms = if (40..60).contains(&i) {
            now - 60_000
        } else {
            now - 1_000 - i
        };
        log.record(UsageRow {
            time_ms,
            key_id: Some("alice".into()),
            model: "paging/model".into(),
            status: 200,
            latency_ms: i,
            ..UsageRow::default()
        });
    }
    assert!(log.flush(Duration::from_secs(5)));
    let model = browser.wait_for("#usage-model").await;
    model.clear().await.expect("clear");
    model.send_keys("paging/model").await.expect("type");
    browser.click("[data-testid=usage-apply]").await;
    browser
        .wait_until(
            "the first page",
            Duration::from_secs(5),
            "document.querySelectorAll('[data-testid=usage-row][data-model=\"paging/model\"]').length === 50",
        )
        .await;
    browser.click("[data-testid=usage-more]").await;
    browser
        .wait_until(
            "the second page",
            Duration::from_secs(5),
            "document.querySelectorAll('[data-testid=usage-row]').length === 60 && document.querySelector('[data-testid=usage-more]').hidden",
        )
        .await;
    let latencies = browser
        .js(
            "return [...document.querySelectorAll('[data-testid=usage-row]')].map((r) => parseInt(r.cells[5].textContent, 10)).sort((a, b) => a - b);",
            vec![],
        )
        .await;
    let expected: Vec<u64> = (0..60).collect();
    assert_eq!(latencies, serde_json::json!(expected));
    // The page asked the API with the filter, never with the token in a URL.
    let url = browser.client.current_url().await.expect("url");
    assert_eq!(url.path(), "/admin/dashboard/usage");
    browser.finish().await;
}
