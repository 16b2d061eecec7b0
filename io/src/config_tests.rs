use super::*;

const SECRET: &str = "0123456789abcdef0123456789abcdef";

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn enabled_env() -> HashMap<String, String> {
    env(&[("CLUSTER_SECRET", SECRET)])
}

const MINIMAL: &str = "
cluster:
  enabled: true
  node_id: node-1
  bind_addr: 10.0.0.1
";

fn err_of(yaml: &str, env: &HashMap<String, String>) -> String {
    match load(yaml, env) {
        Ok(s) => panic!("expected an error, got {s:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn empty_document_is_disabled_defaults() -> Result<(), ClusterConfigError> {
    let s = load("", &HashMap::new())?;
    assert!(!s.enabled);
    assert_eq!(s.bind.port(), DEFAULT_BIND_PORT);
    assert_eq!(s.sync_bind.port(), DEFAULT_SYNC_PORT);
    assert_eq!(s.secrets, None);
    // Other top-level sections belong to the gateway and are ignored here.
    let s = load("server:\n  port: 8080\n", &HashMap::new())?;
    assert!(!s.enabled);
    Ok(())
}

#[test]
fn full_file_parses() -> Result<(), ClusterConfigError> {
    let yaml = "
cluster:
  enabled: true
  cluster_name: prod
  node_id: node-1
  node_name: Node One
  region: eu-west-1
  zone: eu-west-1a
  bind_addr: 0.0.0.0
  bind_port: 8946
  advertise_addr: 10.1.2.3
  sync_bind_addr: 10.1.2.3
  sync_bind_port: 8947
  seed_nodes: ['10.1.2.4:8946', 'node-3.internal', '[::1]:7000']
  advertise_url: https://node1.example.com
  heartbeat_interval_seconds: 2
  failover_mode: active_passive
  promotion_tier: 3
  capacity: 250
  role: witness
  timing:
    profile: wan
    probe_interval_ms: 2000
    probe_timeout_ms: 900
    max_datagram: 1000
";
    let s = load(yaml, &enabled_env())?;
    assert!(s.enabled);
    assert_eq!(s.cluster_name, "prod");
    assert_eq!(s.node_name, "Node One");
    assert_eq!(s.bind, "0.0.0.0:8946".parse().expect("addr"));
    assert_eq!(s.advertise, "10.1.2.3:8946".parse().expect("addr"));
    assert_eq!(s.sync_bind, "10.1.2.3:8947".parse().expect("addr"));
    assert_eq!(s.seed_nodes.len(), 3);
    assert_eq!(s.failover_mode, FailoverMode::ActivePassive);
    assert_eq!(s.promotion_tier, 3);
    assert_eq!(s.capacity, 250);
    assert_eq!(s.role, Role::Witness);
    assert_eq!(s.timing.probe_interval, Duration::from_secs(2));
    assert_eq!(s.timing.gossip_nodes, Timing::wan().gossip_nodes);
    assert_eq!(s.timing.heartbeat_interval, Duration::from_secs(2));
    assert_eq!(s.timing.max_datagram, 1000);

    let (config, identity) = s.to_core("0.1.0");
    assert_eq!(config.cluster, ClusterId::from_name("prod"));
    assert_eq!(identity.id, NodeId::from_name("node-1"));
    assert_eq!(identity.addr, s.advertise);
    assert_eq!(identity.meta.role, Role::Witness);
    assert_eq!(identity.meta.sync_addr, s.sync_bind);
    assert_eq!(identity.meta.version, "0.1.0");
    config.validate().expect("core accepts it");
    identity.meta.validate().expect("core accepts it");
    Ok(())
}

#[test]
fn env_overlays_file() -> Result<(), ClusterConfigError> {
    let e = env(&[
        ("CLUSTER_ENABLED", "true"),
        ("CLUSTER_NODE_ID", "from-env"),
        ("CLUSTER_NODE_NAME", "Env Node"),
        ("CLUSTER_REGION", "r"),
        ("CLUSTER_ZONE", "z"),
        ("CLUSTER_BIND_ADDR", "127.0.0.2"),
        ("CLUSTER_BIND_PORT", "9000"),
        ("CLUSTER_SYNC_BIND_ADDR", "127.0.0.2"),
        ("CLUSTER_SYNC_BIND_PORT", "9001"),
        ("CLUSTER_SEED_NODES", "127.0.0.3:9000, 127.0.0.4:9000,"),
        ("CLUSTER_ADVERTISE_URL", "http://127.0.0.2:8080"),
        ("CLUSTER_HEARTBEAT_INTERVAL_SECONDS", "0.5"),
        ("CLUSTER_FAILOVER_MODE", "single_node"),
        ("CLUSTER_SECRET", SECRET),
    ]);
    let yaml = "cluster:\n  enabled: false\n  node_id: from-file\n  bind_port: 1234\n";
    let s = load(yaml, &e)?;
    assert!(s.enabled);
    assert_eq!(s.node_id, "from-env");
    assert_eq!(s.node_name, "Env Node");
    assert_eq!((s.region.as_str(), s.zone.as_str()), ("r", "z"));
    assert_eq!(s.bind, "127.0.0.2:9000".parse().expect("addr"));
    assert_eq!(s.advertise, s.bind);
    assert_eq!(s.sync_bind, "127.0.0.2:9001".parse().expect("addr"));
    assert_eq!(s.seed_nodes, vec!["127.0.0.3:9000", "127.0.0.4:9000"]);
    assert_eq!(s.advertise_url, "http://127.0.0.2:8080");
    assert_eq!(s.timing.heartbeat_interval, Duration::from_millis(500));
    assert_eq!(s.failover_mode, FailoverMode::SingleNode);
    assert_eq!(
        s.secrets.map(|x| x.current),
        Some(Secret::new("t", SECRET.as_bytes())?)
    );
    assert_eq!(ENV_VARS.len(), 14);
    Ok(())
}

#[test]
fn unknown_key_is_named() {
    let msg = err_of("cluster:\n  bind_prot: 1\n", &HashMap::new());
    assert!(msg.contains("bind_prot"), "{msg}");
    let msg = err_of(
        "cluster:\n  timing:\n    probe_intervall_ms: 1\n",
        &HashMap::new(),
    );
    assert!(msg.contains("probe_intervall_ms"), "{msg}");
    // An inline secret is refused: secrets never live in the file.
    let msg = err_of(
        "cluster:\n  secret: hunter2hunter2hunter2\n",
        &HashMap::new(),
    );
    assert!(msg.contains("secret"), "{msg}");
}

#[test]
fn bad_yaml_values_are_errors() {
    for (yaml, needle) in [
        ("cluster:\n  bind_port: 70000\n", "bind_port"),
        ("cluster:\n  enabled: maybe\n", "enabled"),
        ("cluster:\n  failover_mode: primary\n", "failover_mode"),
        ("cluster:\n  role: leader\n", "role"),
        ("cluster:\n  admission: sometimes\n", "admission"),
        ("cluster:\n  seed_nodes: 5\n", "seed_nodes"),
        ("cluster: [\n", "YAML"),
    ] {
        let msg = err_of(yaml, &HashMap::new());
        assert!(msg.contains(needle), "{yaml:?} -> {msg}");
    }
}

#[test]
fn bad_env_values_name_the_variable() {
    for (var, value) in [
        ("CLUSTER_ENABLED", "perhaps"),
        ("CLUSTER_BIND_PORT", "http"),
        ("CLUSTER_SYNC_BIND_PORT", "-1"),
        ("CLUSTER_HEARTBEAT_INTERVAL_SECONDS", "soon"),
        ("CLUSTER_FAILOVER_MODE", "primary"),
        ("CLUSTER_ADMISSION", "sometimes"),
    ] {
        let msg = err_of("", &env(&[(var, value)]));
        assert!(msg.contains(var), "{var}={value} -> {msg}");
        assert!(msg.contains("expected"), "{msg}");
    }
}

#[test]
fn invalid_values_name_the_key() {
    let e = enabled_env();
    for (extra, key) in [
        ("  sync_bind_addr: not-an-ip\n", "cluster.sync_bind_addr"),
        ("  bind_port: 0\n", "cluster.bind_port"),
        ("  sync_bind_port: 0\n", "cluster.sync_bind_port"),
        (
            "  sync_bind_addr: 10.0.0.1\n  sync_bind_port: 7946\n",
            "cluster.sync_bind_port",
        ),
        ("  advertise_addr: nope\n", "cluster.advertise_addr"),
        ("  advertise_addr: 0.0.0.0\n", "cluster.advertise_addr"),
        ("  seed_nodes: ['host:notaport']\n", "cluster.seed_nodes"),
        ("  seed_nodes: ['host:0']\n", "cluster.seed_nodes"),
        ("  seed_nodes: [':7946']\n", "cluster.seed_nodes"),
        ("  advertise_url: ftp://x\n", "cluster.advertise_url"),
        ("  promotion_tier: 16\n", "cluster.promotion_tier"),
        (
            "  heartbeat_interval_seconds: 0\n",
            "cluster.heartbeat_interval_seconds",
        ),
        (
            "  heartbeat_interval_seconds: -1\n",
            "cluster.heartbeat_interval_seconds",
        ),
        (
            "  heartbeat_interval_seconds: .nan\n",
            "cluster.heartbeat_interval_seconds",
        ),
        ("  cluster_name: ''\n", "cluster.cluster_name"),
        (
            "  timing:\n    probe_timeout_ms: 5000\n",
            "cluster.timing.probe_timeout",
        ),
        (
            "  timing:\n    max_datagram: 100\n",
            "cluster.timing.max_datagram",
        ),
        (
            "  timing:\n    gossip_interval_ms: 0\n",
            "cluster.timing.gossip_interval",
        ),
    ] {
        let yaml = format!("{MINIMAL}{extra}");
        let msg = err_of(&yaml, &e);
        assert!(msg.contains(key), "{extra:?} -> {msg}");
        assert!(msg.contains("expected"), "{msg}");
    }
    let long = "x".repeat(300);
    let msg = err_of(&format!("{MINIMAL}  region: {long}\n"), &e);
    assert!(msg.contains("cluster.region"), "{msg}");
}

#[test]
fn enabled_requires_node_id_secret_and_advertise() {
    let msg = err_of(
        "cluster:\n  enabled: true\n  bind_addr: 10.0.0.1\n",
        &enabled_env(),
    );
    assert!(msg.contains("cluster.node_id"), "{msg}");
    let msg = err_of(MINIMAL, &HashMap::new());
    assert!(msg.contains("CLUSTER_SECRET"), "{msg}");
    let msg = err_of("cluster:\n  enabled: true\n  node_id: n\n", &enabled_env());
    assert!(msg.contains("cluster.advertise_addr"), "{msg}");
}

#[test]
fn short_secret_is_refused_without_echoing_it() {
    let msg = err_of(MINIMAL, &env(&[("CLUSTER_SECRET", "short-secret")]));
    assert!(msg.contains("CLUSTER_SECRET"), "{msg}");
    assert!(!msg.contains("short-secret"), "the secret leaked: {msg}");
}

#[test]
fn a_secret_shorter_than_32_bytes_is_refused_with_the_openssl_hint(
) -> Result<(), ClusterConfigError> {
    // 31 bytes: long enough for the old 16-byte rule, too short now.
    let short = "0123456789abcdef0123456789abcde";
    let msg = err_of(MINIMAL, &env(&[("CLUSTER_SECRET", short)]));
    assert!(msg.contains("CLUSTER_SECRET"), "{msg}");
    assert!(msg.contains("openssl rand -hex 32"), "{msg}");
    assert!(msg.contains("31 bytes"), "{msg}");
    assert!(!msg.contains(short), "the secret leaked: {msg}");
    // Exactly 32 is enough, and a loaded config always derives at the production cost.
    let s = load(MINIMAL, &env(&[("CLUSTER_SECRET", SECRET)]))?;
    assert_eq!(SECRET.len(), 32);
    assert_eq!(s.kdf, KdfParams::PRODUCTION);
    Ok(())
}

#[test]
fn secret_files_current_and_previous() -> Result<(), ClusterConfigError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let cur = dir.path().join("secret");
    let prev = dir.path().join("previous");
    std::fs::write(&cur, format!("{SECRET}\n")).expect("write");
    std::fs::write(&prev, "fedcba9876543210fedcba9876543210").expect("write");
    let yaml = format!(
        "{MINIMAL}  secret_file: {}\n  previous_secret_file: {}\n",
        cur.display(),
        prev.display()
    );
    let s = load(&yaml, &HashMap::new())?;
    let secrets = s.secrets.expect("enabled");
    assert_eq!(
        secrets.current.expose(),
        SECRET.as_bytes(),
        "newline trimmed"
    );
    assert!(secrets.previous.is_some());
    // CLUSTER_SECRET wins over the file.
    let other = "ffffffffffffffffffffffffffffffff";
    let s = load(&yaml, &env(&[("CLUSTER_SECRET", other)]))?;
    assert_eq!(
        s.secrets.map(|x| x.current.expose().to_vec()),
        Some(other.as_bytes().to_vec())
    );
    // A missing file names the key.
    let yaml = format!(
        "{MINIMAL}  secret_file: {}\n",
        dir.path().join("nope").display()
    );
    let msg = err_of(&yaml, &HashMap::new());
    assert!(msg.contains("cluster.secret_file"), "{msg}");
    Ok(())
}

#[test]
fn secret_debug_is_redacted() -> Result<(), ClusterConfigError> {
    let s = Secret::new("k", SECRET.as_bytes())?;
    let printed = format!("{s:?}");
    assert!(!printed.contains(SECRET), "{printed}");
    let settings = load(MINIMAL, &enabled_env())?;
    assert!(!format!("{settings:?}").contains(SECRET));
    Ok(())
}

#[test]
fn fingerprint_is_stable_and_sensitive() -> Result<(), ClusterConfigError> {
    let a = load(MINIMAL, &enabled_env())?;
    let b = load(MINIMAL, &enabled_env())?;
    assert_eq!(a.config_fingerprint(), b.config_fingerprint());
    let c = load(
        &format!("{MINIMAL}  failover_mode: single_node\n"),
        &enabled_env(),
    )?;
    assert_ne!(a.config_fingerprint(), c.config_fingerprint());
    let d = load(
        &format!("{MINIMAL}  timing:\n    gossip_interval_ms: 300\n"),
        &enabled_env(),
    )?;
    assert_ne!(a.config_fingerprint(), d.config_fingerprint());
    // Node-specific fields do not change it.
    let e = load(&format!("{MINIMAL}  region: elsewhere\n"), &enabled_env())?;
    assert_eq!(a.config_fingerprint(), e.config_fingerprint());
    Ok(())
}

#[tokio::test]
async fn seeds_resolve_and_skip_self() -> Result<(), ClusterConfigError> {
    let own: SocketAddr = "127.0.0.1:7946".parse().expect("addr");
    let seeds = vec![
        "127.0.0.1:7946".to_string(),
        "127.0.0.2".to_string(),
        "[::1]:9000".to_string(),
    ];
    let got = crate::seeds::resolve(&seeds, own).await?;
    assert!(got.lists_self && got.unresolved.is_empty());
    assert_eq!(
        got.addrs,
        vec![
            "127.0.0.2:7946".parse().expect("addr"),
            "[::1]:9000".parse().expect("addr")
        ]
    );
    Ok(())
}

#[test]
fn bad_bind_addr_is_named() {
    let msg = err_of(
        "cluster:\n  enabled: true\n  node_id: n\n  bind_addr: not-an-ip\n",
        &enabled_env(),
    );
    assert!(msg.contains("cluster.bind_addr"), "{msg}");
}

#[test]
fn a_pre_parsed_cluster_value_loads_the_same() -> Result<(), ClusterConfigError> {
    let value: serde_norway::Value =
        serde_norway::from_str("enabled: true\nnode_id: node-1\nbind_addr: 10.0.0.1\n")
            .expect("yaml");
    let a = load_value(Some(value), &enabled_env())?;
    let b = load(MINIMAL, &enabled_env())?;
    assert_eq!(a, b);
    assert!(!load_value(None, &HashMap::new())?.enabled);
    let bad: serde_norway::Value = serde_norway::from_str("bind_prot: 1\n").expect("yaml");
    let msg = load_value(Some(bad), &HashMap::new())
        .expect_err("unknown key")
        .to_string();
    assert!(msg.contains("bind_prot"), "{msg}");
    Ok(())
}

#[test]
fn bootstrap_expect_defaults_to_founding_alone_only_without_seeds() -> Result<(), ClusterConfigError>
{
    let e = enabled_env();
    let alone = load(MINIMAL, &e)?;
    assert_eq!(
        alone.bootstrap_expect, 1,
        "no seeds: this node founds the cluster"
    );
    let joiner = load(&format!("{MINIMAL}  seed_nodes: ['10.0.0.2:7946']\n"), &e)?;
    assert_eq!(
        joiner.bootstrap_expect, 0,
        "seeds: it joins and waits to be admitted"
    );
    let listed = "  seed_nodes: ['10.0.0.1:7946', '10.0.0.2:7946', '10.0.0.3:7946']\n";
    let founder = load(&format!("{MINIMAL}{listed}"), &e)?;
    assert_eq!(
        founder.bootstrap_expect, 3,
        "one of the seeds: the seeds found it"
    );
    // By name, as a StatefulSet lists its founding pods: the pod whose node id
    // begins a seed's host name is a founder, a pod added by a scale-up is not.
    let pods = "  seed_nodes: ['aurora-0.aurora-peers.ns.svc:7946', 'Aurora-1.aurora-peers.ns.svc:7946']\n";
    let mut pod = e.clone();
    pod.insert("CLUSTER_NODE_ID".into(), "aurora-1".into());
    assert_eq!(load(&format!("{MINIMAL}{pods}"), &pod)?.bootstrap_expect, 2);
    for later in ["aurora-2", "aurora-1x", "aurora"] {
        pod.insert("CLUSTER_NODE_ID".into(), later.into());
        assert_eq!(
            load(&format!("{MINIMAL}{pods}"), &pod)?.bootstrap_expect,
            0,
            "{later} is not listed: it joins"
        );
    }
    let three = load(&format!("{MINIMAL}  bootstrap_expect: 3\n"), &e)?;
    assert_eq!(three.bootstrap_expect, 3);
    let (config, identity) = three.to_core("test");
    assert_eq!(config.failover.expected_voters, 3);
    assert_eq!(identity.meta.bootstrap_expect, 3);
    let mut env3 = e.clone();
    env3.insert("CLUSTER_BOOTSTRAP_EXPECT".into(), "2".into());
    assert_eq!(load(MINIMAL, &env3)?.bootstrap_expect, 2);
    let msg = err_of(&format!("{MINIMAL}  bootstrap_expect: 9\n"), &e);
    assert!(msg.contains("cluster.bootstrap_expect"), "{msg}");
    env3.insert("CLUSTER_BOOTSTRAP_EXPECT".into(), "three".into());
    assert!(err_of(MINIMAL, &env3).contains("CLUSTER_BOOTSTRAP_EXPECT"));
    Ok(())
}

#[test]
fn admission_defaults_to_auto_and_reaches_the_core() -> Result<(), ClusterConfigError> {
    use aurora_core::Admission;
    let auto = ClusterFile::default().resolve(&HashMap::new())?;
    assert_eq!(auto.admission, Admission::Auto);
    let file: ClusterFile = serde_norway::from_str("admission: manual\n").expect("yaml");
    let manual = file.resolve(&HashMap::new())?;
    assert_eq!(manual.admission, Admission::Manual);
    assert_eq!(manual.to_core("t").0.admission, Admission::Manual);
    Ok(())
}

/// The failover mode and role are the core's own enums now (io keeps no mirror of
/// them): every spelling the file, the environment and the flags (which reach here as
/// `CLUSTER_*` variables) accepted before is accepted the same, the default stays
/// `active_active`, and refusals read as they did.
#[test]
fn failover_mode_and_role_parse_as_before() -> Result<(), ClusterConfigError> {
    let e = enabled_env();
    let unset = load(MINIMAL, &e)?;
    assert_eq!(unset.failover_mode, FailoverMode::ActiveActive);
    assert_eq!(unset.role, Role::Serving);
    assert_eq!(
        load("", &HashMap::new())?.failover_mode,
        FailoverMode::ActiveActive
    );
    for (name, mode) in [
        ("single_node", FailoverMode::SingleNode),
        ("active_passive", FailoverMode::ActivePassive),
        ("active_active", FailoverMode::ActiveActive),
    ] {
        let file = load(&format!("{MINIMAL}  failover_mode: {name}\n"), &e)?;
        assert_eq!(file.failover_mode, mode, "file {name}");
        let mut env = e.clone();
        env.insert("CLUSTER_FAILOVER_MODE".into(), format!(" {name}\n"));
        assert_eq!(load(MINIMAL, &env)?.failover_mode, mode, "env {name}");
        // The fingerprint's text form is the configuration's name.
        assert_eq!(file.failover_mode.as_str(), name);
    }
    for (name, role) in [("serving", Role::Serving), ("witness", Role::Witness)] {
        let s = load(&format!("{MINIMAL}  role: {name}\n"), &e)?;
        assert_eq!(s.role, role, "{name}");
        assert_eq!(s.to_core("t").1.meta.role, role);
    }
    let env_err = err_of("", &env(&[("CLUSTER_FAILOVER_MODE", " primary ")]));
    assert_eq!(
        env_err,
        "`CLUSTER_FAILOVER_MODE`: expected one of single_node, active_passive, active_active, got \"primary\""
    );
    for (yaml, needle) in [
        (
            "cluster:\n  failover_mode: primary\n",
            "unknown variant `primary`, expected one of `single_node`, `active_passive`, `active_active`",
        ),
        (
            "cluster:\n  failover_mode: ActiveActive\n",
            "unknown variant `ActiveActive`",
        ),
        (
            "cluster:\n  role: leader\n",
            "unknown variant `leader`, expected `serving` or `witness`",
        ),
        ("cluster:\n  role: Serving\n", "unknown variant `Serving`"),
    ] {
        let msg = err_of(yaml, &HashMap::new());
        assert!(msg.contains(needle), "{yaml:?} -> {msg}");
    }
    Ok(())
}
