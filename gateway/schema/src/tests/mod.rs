//! The schema's tests: shared sample records, ids and collections, encoding;
//! the rules of each record family in [`rules`], money and the calendar in
//! [`money_calendar`].

mod money_calendar;
mod rules;

use std::collections::BTreeMap;

use super::*;
use crate::calendar::{civil_from_days, days_from_civil};
use crate::checks::invalid;
use crate::limits::*;
use proptest::prelude::*;

fn id(s: &str) -> RecordId {
    RecordId::new(s).unwrap()
}

fn usd(s: &str) -> Money {
    Money::from_decimal_str(s).unwrap()
}

const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn auth_key() -> AuthKey {
    AuthKey {
        name: "team-a production".into(),
        secret_hash: HASH.into(),
        key_prefix: "sk-aur-3f9a".into(),
        allowed_models: vec!["chat".into(), "openai/gpt-4o-mini".into()],
        budget_id: Some(id("team-a")),
        workflow_id: Some(id("default")),
        rpm_limit: Some(600),
        tpm_limit: Some(100_000),
        expires_at_ms: Some(1_776_124_800_000),
        disabled: false,
        metadata: BTreeMap::from([("owner".into(), "alice@example.com".into())]),
        max_parallel_requests: None,
    }
}

fn provider() -> Provider {
    Provider {
        kind: ProviderKind::OpenAiCompatible,
        base_url: "https://api.openai.com/v1".into(),
        api_key_env: Some("OPENAI_API_KEY".into()),
        timeout_ms: 120_000,
        max_retries: 2,
        cooldown_ms: 10_000,
    }
}

fn model() -> Model {
    Model {
        provider_id: id("openai"),
        upstream_model: "gpt-4o-mini".into(),
        aliases: vec!["fast".into()],
        context_window: Some(128_000),
        enabled: true,
    }
}

fn route() -> Route {
    Route {
        targets: vec![
            RouteTarget {
                model_id: id("openai/gpt-4o-mini"),
                weight: 3,
            },
            RouteTarget {
                model_id: id("claude/sonnet"),
                weight: 1,
            },
        ],
        fallbacks: vec![id("mock/gpt-4o-mini")],
        retries: 1,
    }
}

fn guardrails() -> Vec<Guardrail> {
    vec![
        Guardrail {
            kind: GuardrailKind::DenyPatterns {
                patterns: vec!["ignore previous instructions".into()],
                case_insensitive: true,
            },
            enabled: true,
        },
        Guardrail {
            kind: GuardrailKind::MaxInputChars { max: 100_000 },
            enabled: true,
        },
        Guardrail {
            kind: GuardrailKind::Redact {
                emails: true,
                phone_numbers: false,
                secrets: true,
            },
            enabled: false,
        },
        Guardrail {
            kind: GuardrailKind::AllowedModels {
                models: vec!["chat".into(), "fast".into()],
            },
            enabled: true,
        },
    ]
}

fn workflow() -> Workflow {
    Workflow {
        name: "default".into(),
        guardrails: vec![id("no-jailbreak"), id("redact-pii")],
        routing: RoutingPolicy::Weighted,
    }
}

fn pricing() -> Pricing {
    Pricing {
        input_per_million: usd("0.15"),
        output_per_million: usd("0.6"),
        cached_input_per_million: Some(usd("0.075")),
    }
}

fn budget() -> Budget {
    Budget {
        name: "team A monthly".into(),
        limit: Some(usd("250")),
        max_requests: Some(1_000_000),
        period: BudgetPeriod::Monthly,
        on_partition: Default::default(),
    }
}

/// One valid sample of every record, in collection order.
fn samples() -> Vec<Record> {
    let mut v = vec![
        Record::AuthKey(auth_key()),
        Record::Provider(provider()),
        Record::Model(model()),
        Record::Route(route()),
    ];
    v.extend(guardrails().into_iter().map(Record::Guardrail));
    v.extend([
        Record::Workflow(workflow()),
        Record::Pricing(pricing()),
        Record::Budget(budget()),
    ]);
    v
}

/// Applies `mutate` to a copy of the valid `base` and expects `check` to refuse it
/// naming `field`.
#[track_caller]
fn refused<T: Clone>(
    base: &T,
    check: impl Fn(&T) -> Result<(), RecordError>,
    field: &str,
    mutate: impl FnOnce(&mut T),
) {
    let mut r = base.clone();
    mutate(&mut r);
    match check(&r) {
        Err(e) => assert_eq!(e.field(), field, "wrong field for {e}"),
        Ok(()) => panic!("expected `{field}` to be refused"),
    }
}

// ----- collections and ids -----

#[test]
fn collection_names_are_stable_and_parse_back() {
    let names: Vec<_> = Collection::ALL.iter().map(|c| c.name()).collect();
    assert_eq!(
        names,
        [
            "auth_keys",
            "providers",
            "models",
            "routes",
            "guardrails",
            "workflows",
            "pricing",
            "budgets"
        ]
    );
    for c in Collection::ALL {
        assert_eq!(c.name().parse::<Collection>(), Ok(c));
        assert_eq!(c.to_string(), c.name());
    }
    assert_eq!("AuthKeys".parse::<Collection>(), Err(ParseCollectionError));
    assert_eq!("auth_key".parse::<Collection>(), Err(ParseCollectionError));
    assert_eq!("".parse::<Collection>(), Err(ParseCollectionError));
}

#[test]
fn record_collection_matches_variant_order() {
    let mut seen = Vec::new();
    for r in samples() {
        if seen.last() != Some(&r.collection()) {
            seen.push(r.collection());
        }
    }
    assert_eq!(seen, Collection::ALL);
}

// ----- encoding -----

#[test]
fn every_record_round_trips_through_postcard() {
    for r in samples() {
        let bytes = postcard::to_allocvec(&r).unwrap();
        assert_eq!(postcard::from_bytes::<Record>(&bytes), Ok(r.clone()));
        // The inner record alone too, as the admin API and store may hold it.
        macro_rules! inner {
            ($($v:ident),*) => {
                match &r {
                    $(Record::$v(x) => {
                        let b = postcard::to_allocvec(x).unwrap();
                        assert_eq!(&postcard::from_bytes::<$v>(&b).unwrap(), x);
                    })*
                }
            };
        }
        inner!(AuthKey, Provider, Model, Route, Guardrail, Workflow, Pricing, Budget);
    }
    for c in Collection::ALL {
        let bytes = postcard::to_allocvec(&c).unwrap();
        assert_eq!(postcard::from_bytes::<Collection>(&bytes), Ok(c));
    }
}

#[test]
fn postcard_variant_indices_are_pinned() {
    // Reordering variants would silently change the meaning of stored and
    // replicated bytes; these pins make it a test failure instead.
    assert_eq!(postcard::to_allocvec(&Collection::Budgets).unwrap(), [7]);
    let first: Vec<u8> = samples()
        .iter()
        .map(|r| postcard::to_allocvec(r).unwrap()[0])
        .collect();
    assert_eq!(first, [0, 1, 2, 3, 4, 4, 4, 4, 5, 6, 7]);
    assert_eq!(postcard::to_allocvec(&BudgetPeriod::Total).unwrap(), [4]);
    assert_eq!(
        postcard::to_allocvec(&RoutingPolicy::LeastBusy).unwrap(),
        [2]
    );
    assert_eq!(postcard::to_allocvec(&ProviderKind::Mock).unwrap(), [2]);
    // An unknown variant or truncated bytes are an error, not a panic.
    assert!(postcard::from_bytes::<Record>(&[9]).is_err());
    let bytes = postcard::to_allocvec(&samples()[0]).unwrap();
    assert!(postcard::from_bytes::<Record>(&bytes[..bytes.len() - 1]).is_err());
}

#[test]
fn sample_records_snapshot() {
    insta::assert_debug_snapshot!(samples());
}

/// An id that skips the rules (what a decoded, not yet validated id can hold).
fn raw_id(s: String) -> RecordId {
    serde_json::from_value(serde_json::Value::String(s)).expect("an id is a string")
}

/// The YAML catalog's names (`kind: openai`, a target's `model`, an absent `weight`)
/// are serde aliases and defaults: they are read, but what is written (JSON, and the
/// postcard bytes that replicate) is exactly what it was.
#[test]
fn catalog_aliases_read_but_never_change_what_is_written() {
    let kind: ProviderKind = serde_json::from_str("\"openai\"").unwrap();
    assert_eq!(kind, ProviderKind::OpenAiCompatible);
    assert_eq!(
        serde_json::to_string(&kind).unwrap(),
        "\"open_ai_compatible\""
    );
    assert_eq!(postcard::to_allocvec(&kind).unwrap(), [0]);
    let target: RouteTarget = serde_json::from_str(r#"{"model": "mock/echo"}"#).unwrap();
    assert_eq!(
        target,
        RouteTarget {
            model_id: id("mock/echo"),
            weight: 1
        }
    );
    assert_eq!(
        serde_json::to_string(&target).unwrap(),
        r#"{"model_id":"mock/echo","weight":1}"#
    );
    assert_eq!(
        postcard::to_allocvec(&target).unwrap(),
        [9, b'm', b'o', b'c', b'k', b'/', b'e', b'c', b'h', b'o', 1]
    );
}
