//! Scenarios of storage lives: a node that lost its disk comes back under its old
//! id as a new life, and a holder of the secret who claims an existing id with
//! another life is dropped.

use core::time::Duration;

use aurora_core::FailoverMode;
use aurora_core::{Life, Liveness, Millis, NodeId, Origin};

use super::{id, secs, Report};
use crate::faults::FaultProfile;
use crate::world::{Action, ProfileSpec, SimParams, World};

/// Five voters electing an active/passive leader, a steady write workload, every
/// acknowledged write tracked, no random faults (the script is the fault).
fn voters(seed: u64) -> World {
    let params = SimParams {
        nodes: 5,
        safety: secs(60),
        liveness: secs(40),
        profile: ProfileSpec::Fixed(FaultProfile::none()),
        failover_mode: Some(FailoverMode::ActivePassive),
        track_writes: true,
        ..SimParams::default()
    };
    World::new(seed, params)
}

/// The roster the current lease holder follows, as (id, life) pairs.
fn leader_roster(w: &World) -> Option<Vec<(NodeId, Life)>> {
    let l = w.lease_holder()?;
    let roster = w.nodes[l].node()?.view().roster()?;
    Some(roster.members().collect())
}

/// How many entries each store holds from `origin`, per up node.
fn writes_of(w: &World, origin: Origin) -> Vec<(NodeId, usize)> {
    w.nodes
        .iter()
        .filter_map(|n| {
            let store = n.node()?.view().store();
            let count = store.entries().filter(|e| e.origin() == origin).count();
            Some((n.id, count))
        })
        .collect()
}

/// Checks that the wiped nodes in `wiped` (index, life before, life after) are
/// not voters in their new life before `forget`, and are afterwards.
fn check_readmitted(w: &World, r: &mut Report, wiped: &[(usize, Life, Life)]) {
    let Some(roster) = leader_roster(w) else {
        r.fail("new-life", "no leader at the end".into());
        return;
    };
    for &(i, old, new) in wiped {
        let entry = roster.iter().find(|(n, _)| *n == id(i)).map(|(_, l)| *l);
        if entry != Some(new) {
            r.fail(
                "new-life",
                format!(
                    "after forget the leader's roster names {} as {entry:?}, expected its new life {new:?} (old {old:?})",
                    id(i)
                ),
            );
        }
        for n in w.nodes.iter().filter(|n| n.is_up() && n.id != id(i)) {
            let seen = n.node().and_then(|x| x.view().member(id(i)));
            if seen.map(|m| m.liveness) != Some(Liveness::Alive) {
                r.fail(
                    "new-life",
                    format!(
                        "{} sees the new life of {} as {:?}",
                        n.id,
                        id(i),
                        seen.map(|m| m.liveness)
                    ),
                );
            }
        }
    }
}

/// Before forget: the wiped lives are not on the leader's roster, and their
/// packets were dropped as identity mismatches by the others.
fn check_not_admitted(w: &World, r: &mut Report, wiped: &[(usize, Life, Life)]) {
    if let Some(roster) = leader_roster(w) {
        for &(i, _, new) in wiped {
            if roster.contains(&(id(i), new)) {
                r.fail(
                    "new-life",
                    format!(
                        "the new life of {} votes before its old one was forgotten",
                        id(i)
                    ),
                );
            }
        }
    }
    let dropped: u64 = w
        .nodes
        .iter()
        .filter_map(|n| n.node())
        .map(|n| n.metrics().identity_mismatch)
        .sum();
    if dropped == 0 {
        r.fail(
            "new-life",
            "no packet of a new life was dropped before forget".into(),
        );
    }
}

/// A voter loses its disk, restarts under its old id as a new life, is kept out
/// of the roster until the operator forgets the old life on the leader, then is
/// admitted as a new member; its new writes are numbered from 1 under a new
/// origin and reach every node.
pub fn wiped_voter_rejoins_as_new_life(seed: u64) -> Report {
    let mut w = voters(seed);
    let old = w.nodes[1].life;
    w.at(secs(15), Action::Crash(1));
    w.at(secs(16), Action::Wipe(1));
    w.at(
        secs(17),
        Action::Restart {
            node: 1,
            new_addr: false,
        },
    );
    w.run_until(Millis(30_000));
    let new = w.nodes[1].life;
    let wiped = [(1, old, new)];
    let mut r = Report::default();
    check_not_admitted(&w, &mut r, &wiped);
    w.at(secs(31), Action::Forget(1));
    w.run();
    r.absorb(&w);
    check_readmitted(&w, &mut r, &wiped);
    let writes = writes_of(&w, Origin::new(id(1), new));
    r.lines.push(format!(
        "n2 came back as life {new:?} (was {old:?}), was refused until forgotten, then admitted; entries of its new origin per node: {writes:?}"
    ));
    r
}

/// Two voters lose their disks while cut off together from the majority: they
/// restart side by side (each has only the other to learn from), write, and
/// after the partition heals are refused until forgotten, then admitted. Leader
/// safety holds throughout, no acknowledged write is lost, and no write number
/// of either life collides (a collision would drop an acknowledged write).
pub fn two_wiped_during_partition(seed: u64) -> Report {
    let mut w = voters(seed);
    let old = [w.nodes[0].life, w.nodes[1].life];
    w.at(secs(14), Action::SplitOff(vec![0, 1]));
    w.at(secs(15), Action::Crash(0));
    w.at(secs(15), Action::Crash(1));
    w.at(secs(16), Action::Wipe(0));
    w.at(secs(16), Action::Wipe(1));
    for node in [0, 1] {
        w.at(
            secs(17),
            Action::Restart {
                node,
                new_addr: false,
            },
        );
    }
    w.at(secs(28), Action::Heal);
    w.run_until(Millis(35_000));
    let wiped = [(0, old[0], w.nodes[0].life), (1, old[1], w.nodes[1].life)];
    let mut r = Report::default();
    check_not_admitted(&w, &mut r, &wiped);
    w.at(secs(36), Action::Forget(0));
    w.at(secs(36), Action::Forget(1));
    w.run();
    r.absorb(&w);
    check_readmitted(&w, &mut r, &wiped);
    for &(i, _, new) in &wiped {
        let counts = writes_of(&w, Origin::new(id(i), new));
        let distinct: std::collections::BTreeSet<usize> = counts.iter().map(|c| c.1).collect();
        if distinct.len() > 1 {
            r.fail(
                "new-life",
                format!(
                    "the nodes disagree on the writes of {}'s new life: {counts:?}",
                    id(i)
                ),
            );
        }
        r.lines.push(format!(
            "{} came back as {new:?}; entries of its new origin per node: {counts:?}",
            id(i)
        ));
    }
    r
}

/// A holder of the secret speaks as n3 (and then as whoever leads) with a life
/// they never had: a death rumour about them and a lease release in their name.
/// Every copy is dropped and counted, and nothing changes: the victims stay
/// alive at their own incarnations and the leadership continues.
pub fn impersonator_is_dropped(seed: u64) -> Report {
    let mut w = voters(seed);
    w.run_until(Millis(25_000));
    let leader = w.lease_holder();
    let epoch = leader.and_then(|l| w.nodes[l].node().map(|n| n.view().failover_status().epoch));
    w.at(secs(26), Action::Impersonate(2));
    if let Some(l) = leader {
        w.at(secs(26), Action::Impersonate(l));
    }
    w.run_until(Millis(26_000) + Duration::from_millis(500));
    let mut r = Report::default();
    let victims: Vec<usize> = std::iter::once(2).chain(leader).collect();
    for n in w.nodes.iter().filter(|n| n.is_up()) {
        let Some(node) = n.node() else {
            continue;
        };
        let expected = victims.iter().filter(|&&v| id(v) != n.id).count() as u64 * 2;
        let dropped = node.metrics().identity_mismatch;
        if dropped < expected {
            r.fail(
                "impersonation",
                format!(
                    "{} dropped {dropped} forged packets, expected {expected}",
                    n.id
                ),
            );
        }
        for &v in victims.iter().filter(|&&v| id(v) != n.id) {
            if let Some(m) = node.view().member(id(v)) {
                if m.liveness != Liveness::Alive || m.incarnation.0 >= u64::MAX / 4 {
                    r.fail(
                        "impersonation",
                        format!(
                            "{} believes the forged rumour about {}: {:?} at {}",
                            n.id,
                            id(v),
                            m.liveness,
                            m.incarnation
                        ),
                    );
                }
            }
        }
    }
    let after = w.lease_holder();
    if after != leader {
        r.fail(
            "impersonation",
            format!("the forged release moved the lease from {leader:?} to {after:?}"),
        );
    }
    w.run();
    r.absorb(&w);
    r.lines.push(format!(
        "forged packets in the names of {:?} were dropped as identity mismatches; leader {leader:?} at {epoch:?} kept the lease",
        victims.iter().map(|&v| id(v)).collect::<Vec<_>>()
    ));
    r
}

/// Found by the network-namespace partition test on real hosts
/// (`gateway/tests/netns_partition.rs`): a standby cut off from an active/passive
/// leader long enough to campaign alone, then back, then the *other* standby cut
/// off shortly after. The leader and the returned standby are a majority, so the
/// lease must stay where it is the whole time. It used to be lost, for one lease
/// plus an election: the returned standby refused renewals below the epoch it had
/// granted itself (and, for one promise length, because of that promise).
pub fn standby_back_keeps_the_leader(seed: u64) -> Report {
    let params = SimParams {
        nodes: 3,
        safety: secs(50),
        liveness: secs(20),
        profile: ProfileSpec::Fixed(FaultProfile::none()),
        failover_mode: Some(FailoverMode::ActivePassive),
        track_writes: true,
        ..SimParams::default()
    };
    let mut w = World::new(seed, params);
    let mut r = Report::default();
    w.run_until(Millis(20_000));
    let Some(leader) = w.lease_holder() else {
        r.fail("leader-kept", "no leader after 20 s".into());
        return r;
    };
    let standbys: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    // Cut off for 10 s (several leases), back for 300 ms, then the other one.
    w.at(secs(20), Action::SplitOff(vec![standbys[0]]));
    w.at(secs(30), Action::Heal);
    w.at(
        secs(30) + Duration::from_millis(300),
        Action::SplitOff(vec![standbys[1]]),
    );
    w.at(secs(45), Action::Heal);
    let mut t = 20_000;
    let mut lost = None;
    while t < 45_000 {
        t += 10;
        w.run_until(Millis(t));
        if lost.is_none() && w.lease_holder() != Some(leader) {
            lost = Some((t, w.lease_holder()));
        }
    }
    let kept = lost.is_none();
    if let Some((at, holder)) = lost {
        r.fail(
            "leader-kept",
            format!(
                "{} lost the lease at {at} ms (holder then: {:?}) although it always had a majority",
                id(leader),
                holder.map(id)
            ),
        );
    }
    w.run();
    r.absorb(&w);
    // The cut-off standbys are declared failed by the others: that is the
    // partition working, not a false positive.
    r.failures.retain(|f| f.check != "false-positive");
    r.lines.push(format!(
        "{} {} the lease while {} was cut off, came back, and {} was cut off 300 ms later",
        id(leader),
        if kept { "kept" } else { "lost" },
        id(standbys[0]),
        id(standbys[1])
    ));
    r
}
