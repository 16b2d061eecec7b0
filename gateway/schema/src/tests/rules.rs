use super::*;

// ----- records: valid samples -----

#[test]
fn samples_are_valid() {
    for r in samples() {
        assert_eq!(r.validate(), Ok(()), "{r:?}");
    }
    // Minimal records are valid too.
    let minimal_key = AuthKey {
        key_prefix: String::new(),
        allowed_models: vec![],
        budget_id: None,
        workflow_id: None,
        rpm_limit: None,
        tpm_limit: None,
        expires_at_ms: None,
        metadata: BTreeMap::new(),
        max_parallel_requests: None,
        ..auth_key()
    };
    assert_eq!(minimal_key.validate(), Ok(()));
    let mock = Provider {
        kind: ProviderKind::Mock,
        base_url: String::new(),
        api_key_env: None,
        ..provider()
    };
    assert_eq!(mock.validate(), Ok(()));
    let free = Budget {
        limit: None,
        max_requests: None,
        period: BudgetPeriod::Total,
        ..budget()
    };
    assert_eq!(free.validate(), Ok(()));
}

// ----- records: one refusal per rule -----

#[test]
fn auth_key_rules() {
    let k = auth_key();
    let v = AuthKey::validate;
    refused(&k, v, "name", |k| k.name.clear());
    refused(&k, v, "name", |k| k.name = "x".repeat(1025));
    refused(&k, v, "name", |k| k.name = "evil\nlog line".into());
    refused(&k, v, "secret_hash", |k| {
        k.secret_hash = HASH.to_uppercase()
    });
    refused(&k, v, "secret_hash", |k| {
        k.secret_hash.pop().map(drop).unwrap()
    });
    refused(&k, v, "secret_hash", |k| {
        k.secret_hash = "sk-plain-secret".into()
    });
    refused(&k, v, "key_prefix", |k| {
        k.key_prefix = "sk-aur-3f9a12".into()
    });
    refused(&k, v, "key_prefix", |k| k.key_prefix = "sk aur".into());
    refused(&k, v, "allowed_models", |k| {
        k.allowed_models = (0..257).map(|i| format!("m{i}")).collect()
    });
    refused(&k, v, "allowed_models[1]", |k| {
        k.allowed_models[1] = "bad model".into()
    });
    refused(&k, v, "allowed_models[2]", |k| {
        k.allowed_models.push("chat".into())
    });
    refused(&k, v, "budget_id", |k| {
        k.budget_id = Some(raw_id("/x".into()))
    });
    refused(&k, v, "workflow_id", |k| {
        k.workflow_id = Some(raw_id(String::new()))
    });
    refused(&k, v, "rpm_limit", |k| k.rpm_limit = Some(0));
    refused(&k, v, "tpm_limit", |k| k.tpm_limit = Some(0));
    refused(&k, v, "metadata", |k| {
        k.metadata = (0..65).map(|i| (format!("k{i}"), String::new())).collect()
    });
    refused(&k, v, "metadata", |k| {
        k.metadata.insert(String::new(), "v".into());
    });
    refused(&k, v, "metadata", |k| {
        k.metadata.insert("k".repeat(129), "v".into());
    });
    refused(&k, v, "metadata[\"owner\"]", |k| {
        k.metadata.insert("owner".into(), "v".repeat(1025));
    });
    assert_eq!(
        Record::AuthKey(AuthKey {
            rpm_limit: Some(0),
            ..k.clone()
        })
        .validate(),
        Err(invalid(
            "rpm_limit",
            "must be at least 1 (set `disabled` to block a key)"
        ))
    );
    assert_eq!(
        Record::AuthKey(AuthKey {
            max_parallel_requests: Some(0),
            ..k.clone()
        })
        .validate(),
        Err(invalid(
            "max_parallel_requests",
            "must be at least 1 (set `disabled` to block a key)"
        ))
    );
}

#[test]
fn auth_key_helpers() {
    let k = auth_key();
    let at = k.expires_at_ms.unwrap();
    assert!(!k.is_expired(at - 1));
    assert!(k.is_expired(at));
    assert!(!AuthKey {
        expires_at_ms: None,
        ..k.clone()
    }
    .is_expired(u64::MAX));
    assert!(k.allows_model("chat"));
    assert!(!k.allows_model("mock/gpt-4o"));
    let any = AuthKey {
        allowed_models: vec![],
        ..k
    };
    assert!(any.allows_model("mock/gpt-4o"));
}

#[test]
fn provider_rules() {
    let p = provider();
    let v = Provider::validate;
    for bad in [
        "",
        "api.openai.com/v1",
        "ftp://example.com",
        "HTTPS://example.com",
        "https://",
        "https:///v1",
        "https://:8080/v1",
        "https://exa mple.com",
        "https://example.com/v1 ",
        "https://example.com/\u{7}",
        "https://user:pass@example.com/v1",
        "https://example.com/v1#frag",
        "https://example.com:0",
        "https://example.com:65536",
        "https://example.com:",
        "https://example.com:80a",
        "https://exämple.com",
        "https://[::1",
        "https://[]:80",
        "https://[::1]x",
        "https://[zz::1]",
    ] {
        refused(&p, v, "base_url", |p| p.base_url = bad.into());
    }
    refused(&p, v, "base_url", |p| {
        p.base_url = format!("https://example.com/{}", "a".repeat(1024))
    });
    for good in [
        "http://localhost:8000/v1",
        "https://10.0.0.7:443",
        "http://[::1]:11434/v1",
        "https://[fe80::1]",
        "https://my_host.internal/openai/deployments?api-version=2024-06-01",
        "https://api.groq.com/openai/v1/",
    ] {
        let ok = Provider {
            base_url: good.into(),
            ..p.clone()
        };
        assert_eq!(ok.validate(), Ok(()), "{good}");
    }
    // Only a mock may leave the URL empty; a mock with a URL must still be valid.
    refused(&p, v, "base_url", |p| p.base_url.clear());
    refused(&p, v, "base_url", |p| {
        p.kind = ProviderKind::Mock;
        p.base_url = "nope".into();
    });
    for bad in [
        "",
        "openai_api_key",
        "sk-abc123",
        "OPENAI-KEY",
        "1KEY",
        "CLUSTER_SECRET",
        "CLUSTER_NODE_NAME",
        "AURORA_ADMIN_TOKEN",
    ] {
        refused(&p, v, "api_key_env", |p| p.api_key_env = Some(bad.into()));
    }
    refused(&p, v, "api_key_env", |p| {
        p.api_key_env = Some("K".repeat(129))
    });
    refused(&p, v, "timeout_ms", |p| p.timeout_ms = 0);
    refused(&p, v, "timeout_ms", |p| p.timeout_ms = 600_001);
    refused(&p, v, "max_retries", |p| p.max_retries = 11);
    refused(&p, v, "cooldown_ms", |p| p.cooldown_ms = 86_400_001);
}

#[test]
fn model_rules() {
    let m = model();
    let v = Model::validate;
    refused(&m, v, "provider_id", |m| {
        m.provider_id = raw_id("open ai".into())
    });
    refused(&m, v, "upstream_model", |m| m.upstream_model.clear());
    refused(&m, v, "upstream_model", |m| {
        m.upstream_model = "gpt 4o".into()
    });
    refused(&m, v, "upstream_model", |m| {
        m.upstream_model = "g".repeat(1025)
    });
    refused(&m, v, "aliases", |m| {
        m.aliases = (0..257).map(|i| format!("a{i}")).collect()
    });
    refused(&m, v, "aliases[0]", |m| m.aliases[0] = "fast!".into());
    refused(&m, v, "aliases[1]", |m| m.aliases.push("fast".into()));
    refused(&m, v, "context_window", |m| m.context_window = Some(0));
}

#[test]
fn route_rules() {
    let r = route();
    let v = Route::validate;
    refused(&r, v, "targets", |r| r.targets.clear());
    refused(&r, v, "targets", |r| {
        r.targets = (0..33)
            .map(|i| RouteTarget {
                model_id: id(&format!("m{i}")),
                weight: 1,
            })
            .collect()
    });
    refused(&r, v, "targets[1].model_id", |r| {
        r.targets[1].model_id = raw_id("a b".into())
    });
    refused(&r, v, "targets[1].model_id", |r| {
        r.targets[1].model_id = r.targets[0].model_id.clone()
    });
    refused(&r, v, "targets[1].weight", |r| r.targets[1].weight = 0);
    refused(&r, v, "fallbacks", |r| {
        r.fallbacks = (0..9).map(|i| id(&format!("f{i}"))).collect()
    });
    refused(&r, v, "fallbacks[0]", |r| {
        r.fallbacks[0] = raw_id("x/".into())
    });
    refused(&r, v, "fallbacks[1]", |r| {
        r.fallbacks.push(id("mock/gpt-4o-mini"))
    });
    refused(&r, v, "fallbacks[1]", |r| {
        r.fallbacks.push(id("claude/sonnet"))
    });
    refused(&r, v, "retries", |r| r.retries = 11);
    assert_eq!(
        Route {
            targets: vec![RouteTarget {
                model_id: id("m"),
                weight: 0
            }],
            ..r.clone()
        }
        .validate(),
        Err(invalid("targets[0].weight", "must be at least 1"))
    );
    let heavy = Route {
        targets: (0..32)
            .map(|i| RouteTarget {
                model_id: id(&format!("m{i}")),
                weight: u32::MAX,
            })
            .collect(),
        fallbacks: vec![],
        retries: 0,
    };
    assert_eq!(heavy.validate(), Ok(()));
    assert_eq!(heavy.total_weight(), 32 * u64::from(u32::MAX));
    assert_eq!(r.total_weight(), 4);
}

#[test]
fn guardrail_rules() {
    let [deny, max, redact, allow]: [Guardrail; 4] = guardrails().try_into().unwrap();
    let v = Guardrail::validate;
    let set_patterns = |g: &mut Guardrail, new: Vec<String>| {
        if let GuardrailKind::DenyPatterns { patterns, .. } = &mut g.kind {
            *patterns = new;
        }
    };
    refused(&deny, v, "kind.deny_patterns.patterns", |g| {
        set_patterns(g, vec![])
    });
    refused(&deny, v, "kind.deny_patterns.patterns", |g| {
        set_patterns(g, vec!["p".into(); 257])
    });
    refused(&deny, v, "kind.deny_patterns.patterns[1]", |g| {
        set_patterns(g, vec!["a".into(), String::new()])
    });
    refused(&deny, v, "kind.deny_patterns.patterns[0]", |g| {
        set_patterns(g, vec!["p".repeat(1025)])
    });
    refused(&max, v, "kind.max_input_chars.max", |g| {
        g.kind = GuardrailKind::MaxInputChars { max: 0 }
    });
    refused(&redact, v, "kind.redact", |g| {
        g.kind = GuardrailKind::Redact {
            emails: false,
            phone_numbers: false,
            secrets: false,
        }
    });
    let set_models = |g: &mut Guardrail, new: Vec<String>| {
        g.kind = GuardrailKind::AllowedModels { models: new };
    };
    refused(&allow, v, "kind.allowed_models.models", |g| {
        set_models(g, vec![])
    });
    refused(&allow, v, "kind.allowed_models.models", |g| {
        set_models(g, (0..257).map(|i| format!("m{i}")).collect())
    });
    refused(&allow, v, "kind.allowed_models.models[1]", |g| {
        set_models(g, vec!["a".into(), "b c".into()])
    });
    refused(&allow, v, "kind.allowed_models.models[1]", |g| {
        set_models(g, vec!["a".into(), "a".into()])
    });
}

#[test]
fn workflow_rules() {
    let w = workflow();
    let v = Workflow::validate;
    refused(&w, v, "name", |w| w.name.clear());
    refused(&w, v, "guardrails", |w| {
        w.guardrails = (0..33).map(|i| id(&format!("g{i}"))).collect()
    });
    refused(&w, v, "guardrails[1]", |w| {
        w.guardrails[1] = raw_id("g g".into())
    });
    refused(&w, v, "guardrails[2]", |w| {
        w.guardrails.push(id("no-jailbreak"))
    });
}

#[test]
fn pricing_rules() {
    let p = pricing();
    let v = Pricing::validate;
    let too_much = MAX_PRICE.saturating_add(Money::from_nanos(1));
    refused(&p, v, "input_per_million", |p| {
        p.input_per_million = too_much
    });
    refused(&p, v, "output_per_million", |p| {
        p.output_per_million = too_much
    });
    refused(&p, v, "cached_input_per_million", |p| {
        p.cached_input_per_million = Some(too_much)
    });
    let edge = Pricing {
        input_per_million: MAX_PRICE,
        output_per_million: Money::ZERO,
        cached_input_per_million: None,
    };
    assert_eq!(edge.validate(), Ok(()));
}

#[test]
fn budget_rules() {
    let b = budget();
    refused(&b, Budget::validate, "name", |b| b.name.clear());
    refused(&b, Budget::validate, "name", |b| b.name = "a\u{0}b".into());
}

#[test]
fn validate_with_id_checks_the_key() {
    let m = Record::Model(model());
    assert_eq!(m.validate_with_id(&id("openai/gpt-4o-mini")), Ok(()));
    assert_eq!(
        m.validate_with_id(&raw_id("bad id".into()))
            .unwrap_err()
            .field(),
        "id"
    );
    assert_eq!(
        m.validate_with_id(&id("fast")).unwrap_err().field(),
        "aliases[0]"
    );
    let r = Record::Route(route());
    assert_eq!(r.validate_with_id(&id("chat")), Ok(()));
    assert_eq!(
        r.validate_with_id(&id("claude/sonnet"))
            .unwrap_err()
            .field(),
        "targets[1].model_id"
    );
    assert_eq!(
        r.validate_with_id(&id("mock/gpt-4o-mini"))
            .unwrap_err()
            .field(),
        "fallbacks[0]"
    );
    // The record's own rules still apply.
    let bad = Record::Budget(Budget {
        name: String::new(),
        ..budget()
    });
    assert_eq!(bad.validate_with_id(&id("b")).unwrap_err().field(), "name");
}

#[test]
fn references_name_other_collections() {
    let refs = |r: &Record| -> Vec<(Collection, String)> {
        r.references()
            .into_iter()
            .map(|(c, id)| (c, id.to_string()))
            .collect()
    };
    assert_eq!(
        refs(&Record::AuthKey(auth_key())),
        [
            (Collection::Budgets, "team-a".into()),
            (Collection::Workflows, "default".into())
        ]
    );
    assert_eq!(
        refs(&Record::Model(model())),
        [(Collection::Providers, "openai".into())]
    );
    assert_eq!(
        refs(&Record::Route(route())),
        [
            (Collection::Models, "openai/gpt-4o-mini".into()),
            (Collection::Models, "claude/sonnet".into()),
            (Collection::Models, "mock/gpt-4o-mini".into())
        ]
    );
    assert_eq!(refs(&Record::Workflow(workflow())).len(), 2);
    assert!(refs(&Record::Pricing(pricing())).is_empty());
}
