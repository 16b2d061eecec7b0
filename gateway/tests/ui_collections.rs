//! The admin UI's collection pages (`ui/js/pages/collection.js`, driven by the field
//! specs of `ui/js/pages/collections.js`).
//!
//! `every_record_field_has_a_form_field`: the field specs are written by hand from the
//! aurora-schema records, so a field added to a record and forgotten in the specs
//! would make the page silently drop it on every edit (a PUT sends the whole record).
//! This test serialises one record of each collection (every variant of a guardrail's
//! kind too) and checks that each field the API accepts is named in the specs.

use std::collections::BTreeSet;

use aurora_schema::{
    AuthKey, Budget, BudgetPeriod, Guardrail, GuardrailKind, Model, Money, Pricing, Provider,
    ProviderKind, RecordId, Route, RouteTarget, RoutingPolicy, Workflow,
};
use serde_json::Value;

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
