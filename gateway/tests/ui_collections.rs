//! The admin UI's collection pages (`ui/js/pages/collection.js`, driven by the field
//! specs of `ui/js/pages/collections.js`).
//!
//! `forms_on_one_node_show_on_another`: in a real browser (headless chromium, see
//! `common/browser.rs`) against a real three-node cluster, a budget, a key (its
//! secret shown once, with the copy button), a model and a price are created through
//! the forms of node 1; a route with a zero weight gets the API's error next to that
//! weight; the fixed route is deleted through the confirmation; node 2's pages then
//! show the budget, key and model once replicated, and the budget's bar shows spend
//! made on node 3 (cluster-wide). Without chromium and chromedriver it prints
//! SKIPPED and passes, unless `AURORA_REQUIRE_BROWSER=1` (CI).
//! `AURORA_UI_SCREENSHOTS=docs/img` writes `docs/img/ui-collection.png`.
//!
//! `every_record_field_has_a_form_field`: the field specs are written by hand from the
//! aurora-schema records, so a field added to a record and forgotten in the specs
//! would make the page silently drop it on every edit (a PUT sends the whole record).
//! This test serialises one record of each collection (every variant of a guardrail's
//! kind too) and checks that each field the API accepts is named in the specs.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use aurora_schema::{
    AuthKey, Budget, BudgetPeriod, Guardrail, GuardrailKind, Model, Money, Pricing, Provider,
    ProviderKind, RecordId, Route, RouteTarget, RoutingPolicy, Workflow,
};
use serde_json::{json, Value};

use common::browser::Browser;
use common::cluster::{get_json, http, request, start_three};
use common::TOKEN;

const SPECS: &str = include_str!("../ui/js/pages/collections.js");

fn id(s: &str) -> RecordId {
    RecordId::new(s).expect("id")
}

/// The part of the specs that describes collection `path`: from its `path: "…"` to
/// the next collection's.
fn section(path: &str) -> &'static str {
    let start = SPECS
        .find(&format!("path: \"{path}\""))
        .unwrap_or_else(|| panic!("no page spec for {path} in collections.js"));
    let rest = &SPECS[start + 1..];
    let end = rest.find("path: \"").map_or(SPECS.len(), |e| start + 1 + e);
    &SPECS[start..end]
}

/// The values given to `key` (`name: "…"`, `value: "…"`) in `text`.
fn values(text: &str, key: &str) -> BTreeSet<String> {
    let needle = format!("{key}: \"");
    text.match_indices(&needle)
        .filter_map(|(at, _)| {
            text[at + needle.len()..]
                .split('"')
                .next()
                .map(str::to_owned)
        })
        .collect()
}

/// The top-level field names of `value`, a JSON object.
fn fields(value: Value) -> Vec<String> {
    match value {
        Value::Object(map) => map.keys().cloned().collect(),
        other => panic!("not an object: {other}"),
    }
}

#[test]
fn every_record_field_has_a_form_field() {
    let key = AuthKey {
        name: "k".into(),
        secret_hash: "0".repeat(64),
        key_prefix: "abcd1234".into(),
        allowed_models: vec![],
        budget_id: None,
        workflow_id: None,
        rpm_limit: None,
        tpm_limit: None,
        expires_at_ms: None,
        disabled: false,
        metadata: Default::default(),
        max_parallel_requests: None,
    };
    let provider = Provider {
        kind: ProviderKind::Mock,
        base_url: String::new(),
        api_key_env: None,
        timeout_ms: 1,
        max_retries: 0,
        cooldown_ms: 0,
    };
    let model = Model {
        provider_id: id("mock"),
        upstream_model: "echo".into(),
        aliases: vec![],
        context_window: None,
        enabled: true,
    };
    let route = Route {
        targets: vec![RouteTarget {
            model_id: id("m"),
            weight: 1,
        }],
        fallbacks: vec![],
        retries: 0,
    };
    let workflow = Workflow {
        name: "w".into(),
        guardrails: vec![],
        routing: RoutingPolicy::Weighted,
    };
    let pricing = Pricing {
        input_per_million: Money::ZERO,
        output_per_million: Money::ZERO,
        cached_input_per_million: None,
    };
    let budget = Budget {
        name: "b".into(),
        limit: None,
        max_requests: None,
        period: BudgetPeriod::Daily,
        on_partition: Default::default(),
    };
    let kinds = [
        GuardrailKind::DenyPatterns {
            patterns: vec!["x".into()],
            case_insensitive: false,
        },
        GuardrailKind::MaxInputChars { max: 1 },
        GuardrailKind::Redact {
            emails: true,
            phone_numbers: false,
            secrets: false,
        },
        GuardrailKind::AllowedModels {
            models: vec!["m".into()],
        },
    ];

    let json = |v: Result<Value, serde_json::Error>| v.expect("serialises");
    let mut wanted: Vec<(&str, Vec<String>)> = vec![
        (
            "keys",
            // The secret's hash and prefix are the node's to set, never the form's.
            fields(json(serde_json::to_value(&key)))
                .into_iter()
                .filter(|f| f != "secret_hash" && f != "key_prefix")
                .collect(),
        ),
        ("providers", fields(json(serde_json::to_value(&provider)))),
        ("models", fields(json(serde_json::to_value(&model)))),
        ("routes", fields(json(serde_json::to_value(&route)))),
        (
            "routes",
            fields(json(serde_json::to_value(&route.targets[0]))),
        ),
        ("workflows", fields(json(serde_json::to_value(&workflow)))),
        ("pricing", fields(json(serde_json::to_value(&pricing)))),
        ("budgets", fields(json(serde_json::to_value(&budget)))),
    ];
    let guardrail = Guardrail {
        kind: kinds[0].clone(),
        enabled: true,
    };
    wanted.push(("guardrails", fields(json(serde_json::to_value(&guardrail)))));
    for kind in &kinds {
        // `{"variant": {fields}}`: the variant's name is a `value:`, its fields `name:`s.
        let Value::Object(map) = json(serde_json::to_value(kind)) else {
            panic!("a kind is an object");
        };
        for (variant, inner) in map {
            assert!(
                values(section("guardrails"), "value").contains(&variant),
                "guardrail kind `{variant}` has no variant in collections.js"
            );
            wanted.push(("guardrails", fields(inner)));
        }
    }

    for (collection, record_fields) in &wanted {
        let names = values(section(collection), "name");
        for field in record_fields {
            assert!(
                names.contains(field),
                "{collection}: field `{field}` has no form field in ui/js/pages/collections.js"
            );
        }
    }
}

/// `[data-testid="…"]`.
fn tid(testid: &str) -> String {
    format!("[data-testid=\"{testid}\"]")
}

/// The list row of record `id`.
fn row(id: &str) -> String {
    format!("[data-testid=record-row][data-id=\"{id}\"]")
}

/// Types `text` into the form field at `path` (cleared first).
async fn fill(b: &Browser, path: &str, text: &str) {
    type_into(b, &tid(&format!("field-{path}")), text).await;
}

/// Types `text` into the input matching `css` (cleared first).
async fn type_into(b: &Browser, css: &str, text: &str) {
    let input = b.wait_for(css).await;
    input
        .clear()
        .await
        .unwrap_or_else(|e| panic!("clear {css}: {e}"));
    input
        .send_keys(text)
        .await
        .unwrap_or_else(|e| panic!("type into {css}: {e}"));
}

/// Opens collection `page` from the menu and its empty form.
async fn new_record(b: &Browser, page: &str) {
    b.click(&tid(&format!("nav-{page}"))).await;
    b.wait_for(&format!(
        "[data-testid=collection-page][data-collection={page}]"
    ))
    .await;
    b.click(&tid("collection-new")).await;
    b.wait_for(&tid("record-form")).await;
}

/// Saves the form and waits for the list to show record `id`.
async fn save_and_see(b: &Browser, id: &str) {
    b.click(&tid("record-save")).await;
    b.wait_for(&row(id)).await;
}

/// The JavaScript `value` of the element matching `css`.
async fn value_of(b: &Browser, css: &str) -> Value {
    b.js(
        "const e = document.querySelector(arguments[0]); return e ? e.value : null;",
        vec![json!(css)],
    )
    .await
}

/// The visible text of the element matching `css`.
async fn text_of(b: &Browser, css: &str) -> String {
    b.wait_for(css).await.text().await.expect("text")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_on_one_node_show_on_another() {
    const TEST: &str = "ui collections on a 3-node cluster";
    if !Browser::available(TEST) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (_specs, procs) = start_three(dir.path(), &[]);
    let Some(mut b) = Browser::start(TEST, procs[0].http).await else {
        return;
    };
    b.login("/admin/dashboard/budgets", TOKEN).await;
    b.wait_for("[data-testid=collection-page][data-collection=budgets]")
        .await;

    // A budget: 5 USD a month.
    b.click(&tid("collection-new")).await;
    fill(&b, "id", "ui-budget").await;
    fill(&b, "name", "UI budget").await;
    fill(&b, "limit", "5").await;
    save_and_see(&b, "ui-budget").await;
    let spend = text_of(&b, &format!("{} {}", row("ui-budget"), tid("budget-spend"))).await;
    assert!(spend.starts_with("0 USD of 5 USD"), "{spend}");

    // A key on it: the secret is shown once, with a copy button.
    new_record(&b, "keys").await;
    b.assert_labelled().await;
    fill(&b, "id", "ui-key").await;
    fill(&b, "name", "UI key").await;
    b.click(&format!(
        "{} option[value=ui-budget]",
        tid("field-budget_id")
    ))
    .await;
    b.click(&tid("record-save")).await;
    b.wait_for(&tid("key-secret")).await;
    let secret = value_of(&b, &tid("key-secret"))
        .await
        .as_str()
        .expect("the secret")
        .to_owned();
    assert!(
        secret.starts_with("sk-aurora-") && secret.len() == 74,
        "{secret}"
    );
    let stored = get_json(&procs[0], "/admin/api/keys/ui-key");
    assert_eq!(stored["budget_id"], json!("ui-budget"), "{stored}");
    assert_eq!(
        stored["key_prefix"].as_str(),
        Some(&secret[10..18]),
        "{stored}"
    );
    b.click(&tid("copy-secret")).await;
    b.wait_until(
        "the copy status",
        Duration::from_secs(5),
        "document.querySelector('[data-testid=copy-status]').textContent.length > 0",
    )
    .await;
    b.click(&tid("secret-done")).await;
    b.wait_for(&row("ui-key")).await;
    let still_shown = b
        .js(
            "return [...document.querySelectorAll('input')].some((i) => i.value === arguments[0]) || document.body.textContent.includes(arguments[0]);",
            vec![json!(secret)],
        )
        .await;
    assert_eq!(still_shown, json!(false), "the secret is gone after Done");

    // A model of the mock provider, and its price (1000 USD per million tokens, so a
    // few tokens show in the budget).
    new_record(&b, "models").await;
    fill(&b, "id", "mock/ui-model").await;
    fill(&b, "provider_id", "mock").await;
    fill(&b, "upstream_model", "echo").await;
    save_and_see(&b, "mock/ui-model").await;
    new_record(&b, "pricing").await;
    fill(&b, "id", "mock/ui-model").await;
    fill(&b, "input_per_million", "1000").await;
    fill(&b, "output_per_million", "1000").await;
    save_and_see(&b, "mock/ui-model").await;

    // A route with a zero weight: the API's 400 names `targets[0].weight`, and the
    // page shows it under that input, which it marks invalid and describes by it.
    new_record(&b, "routes").await;
    fill(&b, "id", "ui-route").await;
    fill(&b, "targets[0].model_id", "mock/ui-model").await;
    fill(&b, "targets[0].weight", "0").await;
    b.click(&tid("record-save")).await;
    b.wait_until(
        "the weight's error next to it",
        Duration::from_secs(5),
        r#"(() => {
            const e = document.querySelector('[data-testid="field-error-targets[0].weight"]');
            const input = document.querySelector('[data-testid="field-targets[0].weight"]');
            return e && !e.hidden && e.textContent.includes('targets[0].weight')
                && input.getAttribute('aria-invalid') === 'true'
                && input.getAttribute('aria-describedby').split(' ').includes(e.id)
                && e.closest('.field').contains(input);
        })()"#,
    )
    .await;
    let others = b
        .js(
            "return [...document.querySelectorAll('.collection .field-error')].filter((e) => !e.hidden).length;",
            vec![],
        )
        .await;
    assert_eq!(others, json!(1), "one error shown, at its field");
    b.assert_labelled().await;
    fill(&b, "targets[0].weight", "2").await;
    save_and_see(&b, "ui-route").await;
    // The delete asks first: Escape (focus is on Cancel) keeps the route...
    let delete = format!("{} {}", row("ui-route"), tid("record-delete"));
    b.click(&delete).await;
    b.wait_for("[data-testid=confirm-dialog][open]").await;
    b.client
        .active_element()
        .await
        .expect("the focused button")
        .send_keys("\u{E00C}")
        .await
        .expect("press Escape");
    b.wait_until(
        "the dialog closed by Escape",
        Duration::from_secs(5),
        "!document.querySelector('[data-testid=confirm-dialog]').open",
    )
    .await;
    b.wait_for(&row("ui-route")).await;
    // ... and confirming deletes it.
    b.click(&delete).await;
    b.wait_for("[data-testid=confirm-dialog][open]").await;
    b.click(&tid("confirm-delete")).await;
    b.wait_until(
        "the route's row gone",
        Duration::from_secs(5),
        r#"!document.querySelector('[data-testid=record-row][data-id="ui-route"]')"#,
    )
    .await;
    assert_eq!(
        http(procs[0].http, "GET", "/admin/api/routes/ui-route", None)
            .expect("GET")
            .0,
        404
    );

    // Spend on node 3 through the new key.
    let chat = r#"{"model":"mock/ui-model","messages":[{"role":"user","content":"hello from the ui test"}]}"#;
    let (status, answer) = request(
        procs[2].http,
        "POST",
        "/v1/chat/completions",
        &secret,
        Some(chat),
    )
    .expect("chat");
    // Node 3 may not have the key yet: retry for a while.
    let mut status = status;
    let started = std::time::Instant::now();
    while status != 200 && started.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        status = request(
            procs[2].http,
            "POST",
            "/v1/chat/completions",
            &secret,
            Some(chat),
        )
        .expect("chat")
        .0;
    }
    assert_eq!(status, 200, "{answer}");

    // Node 2's UI (another origin: sign in again) shows what node 1's forms wrote.
    b.switch_to(procs[1].http);
    b.login("/admin/dashboard/models", TOKEN).await;
    let refresh = tid("collection-refresh");
    b.wait_until_clicking(
        "the model on node 2",
        Duration::from_secs(20),
        r#"document.querySelector('[data-testid=record-row][data-id="mock/ui-model"]')"#,
        Some(&refresh),
    )
    .await;
    b.screenshot("ui-collection").await;
    b.click(&tid("nav-keys")).await;
    b.wait_for("[data-testid=collection-page][data-collection=keys]")
        .await;
    b.wait_until_clicking(
        "the key on node 2",
        Duration::from_secs(20),
        r#"document.querySelector('[data-testid=record-row][data-id="ui-key"]')"#,
        Some(&refresh),
    )
    .await;
    let key_row = text_of(&b, &row("ui-key")).await;
    assert!(
        key_row.contains("UI key") && key_row.contains("ui-budget"),
        "{key_row}"
    );
    // The search filters on any field, in the browser.
    type_into(&b, &tid("collection-search"), "no-such-key").await;
    b.wait_for(&tid("collection-empty")).await;
    type_into(&b, &tid("collection-search"), "ui budget").await;
    b.wait_for(&row("ui-key")).await;

    // The budget's bar on node 2 shows the spend made on node 3.
    b.click(&tid("nav-budgets")).await;
    b.wait_for("[data-testid=collection-page][data-collection=budgets]")
        .await;
    b.wait_until_clicking(
        "node 3's spend in node 2's bar",
        Duration::from_secs(20),
        r#"(() => {
            const t = document.querySelector('[data-testid=record-row][data-id="ui-budget"] [data-testid=budget-spend]');
            return t && !t.textContent.startsWith('0 USD') && /1 of|1 requests/.test(t.parentElement.textContent);
        })()"#,
        Some(&refresh),
    )
    .await;
    let bar = b
        .wait_for(&format!("{} {}", row("ui-budget"), tid("budget-bar")))
        .await;
    let now = bar
        .attr("aria-valuenow")
        .await
        .expect("attr")
        .and_then(|v| v.parse::<f64>().ok())
        .expect("a percentage");
    assert!(now > 0.0 && now <= 100.0, "{now}");
    b.assert_labelled().await;

    // Phone width: each row is a card of labelled cells, nothing scrolls sideways.
    b.client.set_window_size(390, 844).await.expect("resize");
    b.wait_until(
        "the budget's row as a card",
        Duration::from_secs(5),
        r#"(() => {
            const row = document.querySelector('[data-testid=record-row][data-id="ui-budget"]');
            return getComputedStyle(row).display === 'block'
                && document.documentElement.scrollWidth <= window.innerWidth;
        })()"#,
    )
    .await;
    b.client.set_window_size(1280, 800).await.expect("resize");
    b.finish().await;
}
