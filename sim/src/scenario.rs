//! Named scenarios: the cases that bit other membership systems, each a script
//! over the simulated world with checks of its own on top of the standard ones.
//!
//! Run one with `aurora-sim scenario NAME [--seed S]`; `sim/tests/scenarios.rs`
//! runs them all on several seeds.

use core::time::Duration;

use aurora_core::{Liveness, MemberChange, Millis, NodeId};

use crate::faults::FaultProfile;
use crate::net::LinkConditions;
use crate::observe::CheckFailure;
use crate::run::quantile;
use crate::world::{sim_addr, Action, Mutation, ProfileSpec, SimParams, World};

mod lives;

/// What a scenario reports: readable lines, and the checks that failed.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub lines: Vec<String>,
    pub failures: Vec<CheckFailure>,
}

impl Report {
    fn fail(&mut self, check: &'static str, detail: String) {
        self.failures.push(CheckFailure { check, detail });
    }

    /// Takes over the world's standard verdicts (convergence, detection, ...).
    fn absorb(&mut self, w: &World) {
        self.failures.extend(w.obs.failures.iter().cloned());
    }
}

/// A named scenario.
pub struct Scenario {
    pub name: &'static str,
    pub about: &'static str,
    pub run: fn(u64) -> Report,
}

pub const ALL: &[Scenario] = &[
    Scenario {
        name: "removed-member-stays-removed",
        about: "memberlist #312: a departed or dead member must not come back through a stale push-pull",
        run: removed_member_stays_removed,
    },
    Scenario {
        name: "restart-new-address",
        about: "memberlist #157: a node restarting under the same id on a new address rejoins cleanly",
        run: restart_new_address,
    },
    Scenario {
        name: "broadcasts-not-starved",
        about: "memberlist #299: application broadcasts spread while 100 nodes join at once",
        run: broadcasts_not_starved,
    },
    Scenario {
        name: "wiped-disk-keeps-numbering",
        about: "a node restarted with empty storage under its old id is a new storage life: it writes at once, under a new origin; once the operator forgot the old life it rejoins, and no write of either life is dropped as a duplicate",
        run: wiped_disk_keeps_numbering,
    },
    Scenario {
        name: "wiped-voter-rejoins-as-new-life",
        about: "a voter that lost its disk is a new life: refused and not voting until the leader forgets the old life, then admitted; its writes start a fresh numbering",
        run: lives::wiped_voter_rejoins_as_new_life,
    },
    Scenario {
        name: "two-wiped-during-partition",
        about: "two voters lose their disks while partitioned together: leader safety holds, no acknowledged write is lost, no write number collides, both are re-admitted after forget",
        run: lives::two_wiped_during_partition,
    },
    Scenario {
        name: "standby-back-keeps-the-leader",
        about: "found on real hosts: a standby back from a partition in which it campaigned alone still renews the leader, so cutting off the other standby 300 ms later does not cost the lease",
        run: lives::standby_back_keeps_the_leader,
    },
    Scenario {
        name: "impersonator-is-dropped",
        about: "a secret holder speaking as an existing node id with another life (death rumour, lease release) is dropped and counted; nothing changes",
        run: lives::impersonator_is_dropped,
    },
    Scenario {
        name: "slow-node-not-dead",
        about: "Lifeguard: a slow node that still answers is never declared dead",
        run: slow_node_not_dead,
    },
    Scenario {
        name: "tombstone-gc-no-resurrection",
        about: "a node away longer than the tombstone TTL resyncs from scratch; a deleted record never comes back",
        run: tombstone_gc_no_resurrection,
    },
    Scenario {
        name: "injected-tombstone-bug-is-caught",
        about: "a replica that never ships deletes must fail the state checkers",
        run: injected_tombstone_bug_is_caught,
    },
    Scenario {
        name: "injected-majority-bug-is-caught",
        about: "voters that grant every lease request (no majority rule) must fail the leader-safety check",
        run: injected_majority_bug_is_caught,
    },
    Scenario {
        name: "injected-refutation-bug-is-caught",
        about: "a refutation that ignores incarnations must fail the checkers",
        run: injected_refutation_bug_is_caught,
    },
    Scenario {
        name: "quota-leases-hold-the-limit",
        about: "a holder per node admits against one cluster-wide limit under drawn faults and a leader crash: no window admits more than its limit, and calm ones reach it",
        run: quota_leases_hold_the_limit,
    },
    Scenario {
        name: "injected-quota-bug-is-caught",
        about: "grantors that give a grant no keeper persisted must fail the quota-bound check once the lease holder changes",
        run: injected_quota_bug_is_caught,
    },
];

/// A world with a fixed (not drawn) fault profile whose safety phase lasts
/// `secs`, followed by 30 s of liveness.
fn world(seed: u64, nodes: usize, secs: u64, link: LinkConditions) -> World {
    let params = SimParams {
        nodes,
        safety: Duration::from_secs(secs),
        liveness: Duration::from_secs(30),
        profile: ProfileSpec::Fixed(FaultProfile {
            link,
            ..FaultProfile::none()
        }),
        record_events: true,
        ..SimParams::default()
    };
    World::new(seed, params)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Node `i`'s id in the simulator.
fn id(i: usize) -> NodeId {
    NodeId(i as u64 + 1)
}

fn removed_member_stays_removed(seed: u64) -> Report {
    let mut w = world(seed, 6, 100, LinkConditions::clean());
    // n5 freezes with everybody alive in its member list and wakes long after
    // n4 crashed for good and n6 left: its push-pulls then carry stale "alive"
    // records for both.
    w.at(
        secs(10),
        Action::Pause {
            node: 4,
            for_ms: 80_000,
        },
    );
    w.at(secs(12), Action::Crash(3));
    w.at(secs(14), Action::Leave(5));
    w.run();
    let mut r = Report::default();
    r.absorb(&w);
    for gone in [id(3), id(5)] {
        let removed_at: Vec<(NodeId, Millis)> = w
            .obs
            .events
            .iter()
            .filter(|e| e.2 == gone && matches!(e.3, MemberChange::Failed | MemberChange::Left))
            .map(|e| (e.1, e.0))
            .collect();
        for &(at, observer, target, change) in &w.obs.events {
            let revived = target == gone
                && matches!(change, MemberChange::Joined | MemberChange::AliveAgain)
                && removed_at.iter().any(|&(o, t)| o == observer && t < at);
            if revived {
                r.fail(
                    "stays-removed",
                    format!("{observer} brought {gone} back ({change:?}) at {at}"),
                );
            }
        }
    }
    r.lines.push(format!(
        "{} membership events; n4 (crashed) and n6 (left) revived 0 times as required",
        w.obs.events.len()
    ));
    r
}

fn restart_new_address(seed: u64) -> Report {
    let mut w = world(seed, 5, 120, LinkConditions::clean());
    // n4 comes back on a new address before anyone declared it dead; n5 long
    // after it was declared dead and reaped.
    w.at(secs(10), Action::Crash(3));
    w.at(
        secs(12),
        Action::Restart {
            node: 3,
            new_addr: true,
        },
    );
    w.at(secs(30), Action::Crash(4));
    w.at(
        secs(90),
        Action::Restart {
            node: 4,
            new_addr: true,
        },
    );
    w.run();
    let mut r = Report::default();
    r.absorb(&w);
    for (i, target) in [(3, id(3)), (4, id(4))] {
        let expected = sim_addr(i, 1);
        for n in w.nodes.iter().filter(|n| n.is_up() && n.id != target) {
            let seen = n.node().and_then(|x| x.view().member(target));
            match seen {
                Some(m) if m.liveness == Liveness::Alive && m.addr == expected => {}
                other => r.fail(
                    "rejoin",
                    format!(
                        "{} sees {target} as {:?} at {:?}, expected alive at {expected}",
                        n.id,
                        other.map(|m| m.liveness),
                        other.map(|m| m.addr)
                    ),
                ),
            }
        }
    }
    r.lines.push(
        "n4 (quick restart) and n5 (restart after reaping) both rejoined at their new addresses"
            .into(),
    );
    r
}

fn broadcasts_not_starved(seed: u64) -> Report {
    let mut params = SimParams {
        nodes: 100,
        start_spread: secs(2),
        safety: secs(30),
        liveness: secs(10),
        profile: ProfileSpec::Fixed(FaultProfile::none()),
        ..SimParams::default()
    };
    params.timing.push_pull_interval = secs(30);
    let mut w = World::new(seed, params);
    let count = 30;
    for k in 0..count {
        let payload = format!("broadcast-{k}").into_bytes();
        // Every node has started by 2 s; most are still joining.
        let at = Duration::from_millis(2_000 + 100 * k);
        w.at(at, Action::Broadcast { node: 0, payload });
    }
    w.run();
    let mut r = Report::default();
    r.absorb(&w);
    let mut latencies = Vec::new();
    for (origin, sent, receipts) in w.obs.broadcasts() {
        for n in w.nodes.iter().filter(|n| n.is_up() && n.id != *origin) {
            match receipts.get(&n.id) {
                Some(at) => latencies.push(at.since(*sent).as_millis() as u64),
                None => r.fail(
                    "broadcast-delivery",
                    format!("{} never got a broadcast sent at {sent}", n.id),
                ),
            }
        }
    }
    latencies.sort_unstable();
    let p99 = quantile(&latencies, 0.99);
    if p99 > 10_000 {
        r.fail(
            "broadcast-latency",
            format!("p99 delivery {p99} ms > 10 s during the join storm"),
        );
    }
    r.lines.push(format!(
        "{count} broadcasts during a 100-node join storm: {} deliveries, p50 {} ms, p99 {p99} ms, max {} ms",
        latencies.len(),
        quantile(&latencies, 0.5),
        latencies.last().copied().unwrap_or(0)
    ));
    r
}

fn slow_node_not_dead(seed: u64) -> Report {
    let mut w = world(seed, 5, 120, LinkConditions::clean());
    // n3 answers, but 600 ms late each way: every probe of it times out.
    w.at(
        secs(5),
        Action::Slow {
            node: 2,
            extra_ms: 600,
        },
    );
    w.run();
    let mut r = Report::default();
    r.absorb(&w);
    let suspected = w
        .obs
        .events
        .iter()
        .filter(|e| e.2 == id(2) && e.3 == MemberChange::Suspected)
        .count();
    for &(at, observer, target, change) in &w.obs.events {
        if target == id(2) && change == MemberChange::Failed {
            r.fail(
                "slow-not-dead",
                format!("{observer} declared the slow {target} failed at {at}"),
            );
        }
    }
    r.lines.push(format!(
        "slow n3 (+600 ms each way) suspected {suspected} times over 120 s, declared failed 0 times"
    ));
    r
}

/// Proves the checkers can fail: with refutations that keep the old incarnation,
/// a suspected node can never clear its name, so on a lossy network some seed must
/// trip `false-positive` or `convergence`.
fn injected_refutation_bug_is_caught(seed: u64) -> Report {
    let mut r = Report::default();
    for s in seed..seed + 20 {
        let mut params = SimParams {
            profile: ProfileSpec::Fixed(FaultProfile {
                link: LinkConditions {
                    loss: 0.08,
                    ..LinkConditions::clean()
                },
                ..FaultProfile::none()
            }),
            mutation: Some(Mutation::RefuteWithoutIncarnation),
            ..SimParams::default()
        };
        params.nodes = 5;
        let (_, outcome) = crate::run::simulate(s, &params);
        if let Some(f) = outcome.failures.first() {
            r.lines.push(format!(
                "seed {s}: the injected bug was caught by `{}`: {}",
                f.check, f.detail
            ));
            return r;
        }
    }
    r.fail(
        "checker-sensitivity",
        "20 seeds with refutations that ignore incarnations all passed: the checkers are blind"
            .into(),
    );
    r
}

/// Proves the state checkers can fail: a replica that drops tombstones from what
/// it sends leaves deleted records alive elsewhere.
fn injected_tombstone_bug_is_caught(seed: u64) -> Report {
    let mut r = Report::default();
    let params = SimParams {
        profile: ProfileSpec::Fixed(FaultProfile::none()),
        mutation: Some(Mutation::DropTombstones),
        ..SimParams::default()
    };
    let (_, outcome) = crate::run::simulate(seed, &params);
    match outcome.failures.iter().find(|f| {
        matches!(
            f.check,
            "state-convergence" | "durability" | "no-resurrection"
        )
    }) {
        Some(f) => r.lines.push(format!(
            "the injected bug was caught by `{}`: {}",
            f.check, f.detail
        )),
        None => r.fail(
            "checker-sensitivity",
            format!(
                "a replica that drops tombstones passed every state check: {:?}",
                outcome.failures
            ),
        ),
    }
    r
}

fn wiped_disk_keeps_numbering(seed: u64) -> Report {
    use aurora_core::state::store::Key;
    use aurora_schema::Collection;
    let params = SimParams {
        nodes: 3,
        profile: ProfileSpec::Fixed(FaultProfile::none()),
        workload: crate::world::Workload::none(),
        safety: secs(30),
        liveness: secs(10),
        ..SimParams::default()
    };
    let mut w = World::new(seed, params);
    let put = |w: &mut World, k: usize| {
        let (id, record) = crate::world::sample_model(k, 1);
        w.command(1, aurora_schema::put(id, &record))
    };
    w.run_until(Millis(5_000));
    for k in 0..10 {
        put(&mut w, k);
    }
    // n2 loses its disk and comes back under the same id with empty storage.
    w.at(secs(8), Action::Crash(1));
    w.at(secs(9), Action::Wipe(1));
    w.at(
        secs(10),
        Action::Restart {
            node: 1,
            new_addr: false,
        },
    );
    // The operator forgets the old life everywhere (the new one is refused until then).
    w.at(secs(11), Action::ForgetEverywhere(1));
    w.run_until(Millis(10_001));
    let mut r = Report::default();
    // At once, before it has heard from any peer: its numbering is its own.
    let written: Vec<bool> = (10..15).map(|k| put(&mut w, k).is_some()).collect();
    if written.iter().any(|ok| !ok) {
        r.fail(
            "new-life",
            format!("writes of the new life refused: {written:?}"),
        );
    }
    w.run();
    r.absorb(&w);
    for n in w.nodes.iter().filter(|n| n.is_up()) {
        let Some(store) = n.node().map(|x| x.view().store()) else {
            continue;
        };
        let missing: Vec<usize> = (0..15)
            .filter(|&k| {
                let (id, _) = crate::world::sample_model(k, 1);
                store
                    .get(&Key::Record(Collection::Models.id(), id))
                    .is_none()
            })
            .collect();
        if !missing.is_empty() {
            r.fail(
                "wiped-disk",
                format!("{} lacks models {missing:?} written by n2", n.id),
            );
        }
    }
    let (own, origin) = w.nodes[1]
        .node()
        .map_or((0, None), |x| (x.view().own_seq(), Some(x.view().origin())));
    r.lines.push(format!(
        "n2 restarted with empty storage as {origin:?} and numbered its new writes 1 to {own} at once; every node holds all 15 models"
    ));
    r
}

fn tombstone_gc_no_resurrection(seed: u64) -> Report {
    use aurora_core::state::store::Key;
    use aurora_core::Command;
    use aurora_schema::Collection;
    let mut params = SimParams {
        profile: ProfileSpec::Fixed(FaultProfile::none()),
        workload: crate::world::Workload::none(),
        safety: secs(150),
        liveness: secs(30),
        ..SimParams::default()
    };
    params.state.tombstone_ttl = secs(20);
    let mut w = World::new(seed, params);
    let (id, record) = crate::world::sample_model(7, 1);
    let key = Key::Record(Collection::Models.id(), id.clone());
    w.run_until(Millis(5_000));
    w.command(0, aurora_schema::put(id.clone(), &record));
    // n5 has the record on disk when it goes down.
    w.at(secs(8), Action::Crash(4));
    w.run_until(Millis(10_000));
    let deleted = w.command(
        1,
        Command::Delete {
            collection: Collection::Models.id(),
            id,
        },
    );
    // Long after the others collected the tombstone, n5 comes back with its stale copy.
    w.at(
        secs(100),
        Action::Restart {
            node: 4,
            new_addr: false,
        },
    );
    w.run();
    let mut r = Report::default();
    r.absorb(&w);
    let collected = w.nodes[..4]
        .iter()
        .filter_map(|n| n.node())
        .map(|n| n.view().replica_stats().tombstones_collected)
        .sum::<u64>();
    for n in w.nodes.iter().filter(|n| n.is_up()) {
        let live = n
            .node()
            .and_then(|x| x.view().store().get(&key))
            .is_some_and(|e| e.value.is_some());
        if live {
            r.fail(
                "no-resurrection",
                format!("{} holds the record deleted at {deleted:?}", n.id),
            );
        }
    }
    let resets = w.nodes[4]
        .node()
        .map_or(0, |n| n.view().replica_stats().resets);
    if resets != 1 {
        r.fail(
            "resync",
            format!("n5 came back after the TTL but reset {resets} times (expected 1)"),
        );
    }
    r.lines.push(format!(
        "tombstones collected on the others: {collected}; n5 resynced from scratch {resets} time(s); the record stayed deleted"
    ));
    r
}

/// Proves the leader-safety checker can fail: with voters that grant everything,
/// partitions must produce two lease holders at once in some seed.
fn injected_majority_bug_is_caught(seed: u64) -> Report {
    let mut r = Report::default();
    for s in seed..seed + 30 {
        let params = SimParams {
            mutation: Some(Mutation::GrantEverything),
            failover_mode: Some(aurora_core::FailoverMode::ActivePassive),
            ..SimParams::default()
        };
        let (_, outcome) = crate::run::simulate(s, &params);
        if let Some(f) = outcome.failures.iter().find(|f| f.check == "leader-safety") {
            r.lines.push(format!(
                "seed {s}: the injected bug was caught by `leader-safety`: {}",
                f.detail
            ));
            return r;
        }
    }
    r.fail(
        "checker-sensitivity",
        "30 seeds with voters that grant every lease passed leader-safety: the checker is blind"
            .into(),
    );
    r
}

/// The quota workload on five nodes over a lossy, reordering network (3 % loss,
/// 1 % duplication, 1–6 ms), with the lease holder crashed at 35 s.
fn quota_params() -> SimParams {
    let link = LinkConditions {
        loss: 0.03,
        duplicate: 0.01,
        corrupt: 0.0,
        delay_ms: 1,
        jitter_ms: 5,
    };
    SimParams {
        workload: crate::world::Workload {
            quota: Some(crate::QuotaLoad::default()),
            ..crate::world::Workload::default()
        },
        failover_mode: Some(aurora_core::FailoverMode::ActivePassive),
        profile: ProfileSpec::Fixed(FaultProfile {
            link,
            ..FaultProfile::none()
        }),
        script: vec![(secs(35), Action::CrashLeader)],
        ..SimParams::default()
    }
}

/// Quota leases over a lossy network with the lease holder crashed mid-run (the
/// drawn faults are `aurora-sim run --quota`'s): the `quota-bound` check holds after
/// every admission, and the windows of the liveness phase admit their whole limit
/// (none is starved while capacity remains).
fn quota_leases_hold_the_limit(seed: u64) -> Report {
    let mut r = Report::default();
    let params = quota_params();
    let load = crate::QuotaLoad::default();
    let mut w = World::new(seed, params);
    w.run();
    r.absorb(&w);
    let (evaluated, failed) = w.obs.checks.get("quota-bound");
    if evaluated == 0 {
        r.fail(
            "quota-bound",
            "no admission was made: the check never ran".into(),
        );
    }
    let window_ms = load.window.as_millis() as u64;
    // Windows wholly inside the liveness phase (faults healed), before the
    // workload's quiet tail.
    let calm_from = (crate::world::EPOCH_MS + w.params.safety.as_millis() as u64) / window_ms + 2;
    let calm_to = (crate::world::EPOCH_MS
        + (w.end().0 - crate::world::QUIET_TAIL.as_millis() as u64))
        / window_ms;
    let mut calm = Vec::new();
    for (key, &n) in w.quota_admitted() {
        if key.window >= calm_from && key.window < calm_to {
            calm.push(n);
            // All but the last slices of nodes that were not asked again in time.
            let slack = 5 * aurora_core::quota::QuotaTiming::default().max_slice(load.limit);
            if n + slack < load.limit {
                r.fail(
                    "quota-liveness",
                    format!("calm window {} admitted {n} of {}", key.window, load.limit),
                );
            }
        }
    }
    // The rolling quota: every span of windows wholly in the calm phase admits its
    // limit but the last slices.
    let rolling_ms = load.rolling_window.as_millis() as u64;
    let span = u64::from(load.rolling_span);
    let rolling_from = calm_from * window_ms / rolling_ms;
    let rolling_to = calm_to * window_ms / rolling_ms;
    let mut spans = Vec::new();
    for start in rolling_from..rolling_to.saturating_sub(span) {
        let n: u64 = (start..start + span)
            .filter_map(|window| {
                w.quota_rolling_admitted()
                    .iter()
                    .find_map(|(k, n)| (k.window == window).then_some(*n))
            })
            .sum();
        spans.push(n);
        let slack = 5 * aurora_core::quota::QuotaTiming::default().max_slice(load.limit);
        if n + slack < load.limit {
            r.fail(
                "quota-liveness",
                format!(
                    "calm span of windows from {start} admitted {n} of {}",
                    load.limit
                ),
            );
        }
    }
    r.lines.push(format!(
        "rolling quota ({} over {span} windows of {} ms): calm spans admitted {spans:?}",
        load.limit, rolling_ms
    ));
    let most = w.quota_admitted().values().max().copied().unwrap_or(0);
    r.lines.push(format!(
        "{} windows, at most {most} admitted of a limit of {} ({evaluated} admissions checked, {failed} over); calm windows admitted {calm:?}",
        w.quota_admitted().len(),
        load.limit
    ));
    r
}

/// Proves the quota-bound checker can fail: grants no keeper persisted are unknown
/// to the next lease holder, which grants them again.
fn injected_quota_bug_is_caught(seed: u64) -> Report {
    let mut r = Report::default();
    for s in seed..seed + 40 {
        let params = SimParams {
            mutation: Some(Mutation::GrantUnrecorded),
            ..quota_params()
        };
        let (_, outcome) = crate::run::simulate(s, &params);
        if let Some(f) = outcome.failures.iter().find(|f| f.check == "quota-bound") {
            r.lines.push(format!(
                "seed {s}: the injected bug was caught by `quota-bound`: {}",
                f.detail
            ));
            return r;
        }
    }
    r.fail(
        "checker-sensitivity",
        "40 seeds with grants nobody recorded passed quota-bound: the checker is blind".into(),
    );
    r
}
