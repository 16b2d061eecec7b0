//! One test per rule, then seeded fault schedules through the [`harness`] world
//! that assert safety at every step, a measurement of failover time, and a
//! snapshot of one traced failover.

use super::harness::{active_passive, candidate, percentile, Bare, Net, Real, World, MS, SEC};
use super::rank::best_candidate;
use super::*;
use crate::config::Role;
use crate::rng::DetRng;

/// Tests start well after the clock's origin.
const START: Millis = Millis(1_000_000);

/// Set to `Some(seed)` to keep the readable trace of that harness seed while
/// debugging (the core reads no environment, not even in tests).
const TRACE_SEED: Option<u64> = None;

fn serving(i: usize) -> Candidate {
    candidate(i, 1, 10, Role::Serving)
}

fn witness(i: usize) -> Candidate {
    candidate(i, 0, 100, Role::Witness)
}

fn n(i: u64) -> NodeId {
    NodeId(i)
}

fn ms(x: u64) -> Duration {
    Duration::from_millis(x)
}

/// Active-passive with every one of `n` nodes a founder.
fn founders(n: usize) -> FailoverConfig {
    FailoverConfig {
        expected_voters: n as u32,
        ..active_passive()
    }
}

/// The bootstrap electorate of `n` founders.
fn boot(n: u32) -> Electorate {
    Electorate::Bootstrap { expected: n }
}

/// A first campaign round (epoch 1) of a founder that expects `n` founders.
fn boot_request(n: u32) -> LeaseMessage {
    LeaseMessage::Request {
        epoch: Epoch(1),
        round: 1,
        holding: false,
        electorate: boot(n),
    }
}

/// Node `i + 1` alone with `live` (all founders), in active-passive.
fn lone(i: usize, live: &[Candidate]) -> Bare {
    let live = as_founders(live);
    let mut fo = Bare::new(live[i].id, founders(live.len()), START).unwrap();
    fo.handle_members(START, &live);
    fo
}

/// `live`, each configured as one of `live.len()` founders.
fn as_founders(live: &[Candidate]) -> Vec<Candidate> {
    live.iter()
        .map(|c| Candidate {
            bootstrap_expect: live.len() as u32,
            ..c.clone()
        })
        .collect()
}

fn drain(fo: &mut Bare) -> Vec<(NodeId, LeaseMessage)> {
    fo.messages()
}

fn events(fo: &mut Bare) -> Vec<FailoverEvent> {
    fo.events()
}

/// After the quiet period (one promise length).
fn after_quiet() -> Millis {
    START + ms(2829)
}

fn world(seed: u64, cands: Vec<Candidate>) -> World {
    let rates = vec![1.0; cands.len()];
    World::new(seed, cands, rates, active_passive(), Net::lan())
}

fn holder_ids(w: &World) -> Vec<NodeId> {
    w.holders().iter().map(|&i| w.nodes[i].cand.id).collect()
}

// ---- config ----------------------------------------------------------------------

#[test]
fn defaults_validate_and_bad_timing_is_refused() {
    let c = FailoverConfig::default();
    assert_eq!(c.lease, Duration::from_millis(2800));
    assert_eq!(c.renew_every, Duration::from_secs(1));
    assert_eq!(c.hold_down, Duration::from_secs(10));
    assert!(c.validate().is_ok());
    let slow_renew = FailoverConfig {
        renew_every: ms(1600),
        ..c.clone()
    };
    assert!(slow_renew.validate().is_err());
    let wild_drift = FailoverConfig {
        max_drift: 0.5,
        ..c.clone()
    };
    assert!(wild_drift.validate().is_err());
    assert!(Bare::new(n(1), slow_renew, START).is_err());
}

#[test]
fn mode_is_snake_case_on_the_wire_and_in_config() {
    use serde::de::{value::Error, IntoDeserializer};
    use serde::Deserialize;
    for (name, mode) in [
        ("single_node", FailoverMode::SingleNode),
        ("active_passive", FailoverMode::ActivePassive),
        ("active_active", FailoverMode::ActiveActive),
    ] {
        let parsed: Result<FailoverMode, Error> =
            FailoverMode::deserialize(name.into_deserializer());
        assert_eq!(parsed, Ok(mode));
    }
    // On the wire postcard carries the variant index.
    let bytes = postcard::to_allocvec(&FailoverMode::ActiveActive).unwrap();
    assert_eq!(bytes, [2]);
    let back: FailoverMode = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(back, FailoverMode::ActiveActive);
}

#[test]
fn lease_messages_round_trip_and_keep_their_variant_indices() {
    let msgs = [
        LeaseMessage::Request {
            epoch: Epoch(7),
            round: 3,
            holding: true,
            electorate: Electorate::Roster(Roster::new(
                RosterVersion {
                    epoch: Epoch(7),
                    seq: 1,
                },
                [n(1), n(2), n(3)],
            )),
        },
        LeaseMessage::Grant {
            epoch: Epoch(7),
            round: 3,
        },
        LeaseMessage::Reject {
            epoch: Epoch(8),
            round: 3,
            electorate: boot(3),
            retry_after_ms: 250,
            starting: false,
        },
        LeaseMessage::Handover {
            epoch: Epoch(7),
            to: n(2),
        },
        LeaseMessage::Release { epoch: Epoch(7) },
    ];
    for (index, m) in msgs.iter().enumerate() {
        let bytes = postcard::to_allocvec(m).unwrap();
        assert_eq!(usize::from(bytes[0]), index, "variant order is append-only");
        let back: LeaseMessage = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(&back, m);
    }
}

// ---- ranking ---------------------------------------------------------------------

#[test]
fn ranking_is_tier_then_capacity_then_lowest_id() {
    let a = candidate(0, 2, 100, Role::Serving);
    let b = candidate(1, 1, 10, Role::Serving);
    let c = candidate(2, 1, 20, Role::Serving);
    let d = candidate(3, 1, 20, Role::Serving);
    let all = [a.clone(), b.clone(), c.clone(), d.clone()];
    // Tier 1 beats tier 2; within tier 1, capacity 20 beats 10; then lowest id.
    assert_eq!(best_candidate(&all, 42).unwrap().id, c.id);
    assert!(c.outranks(&d) && d.outranks(&b) && b.outranks(&a));
}

#[test]
fn a_witness_never_leads_and_a_drifted_member_takes_no_part() {
    let w = candidate(0, 0, 1000, Role::Witness);
    let mut drifted = candidate(1, 0, 1000, Role::Serving);
    drifted.fingerprint = 7;
    let s = candidate(2, 3, 1, Role::Serving);
    let all = [w.clone(), drifted.clone(), s.clone()];
    assert_eq!(best_candidate(&all, 42).unwrap().id, s.id);

    // The same through the protocol: the worst-ranked serving node leads (the
    // drifted node is no founder either: two founders are expected).
    let two = FailoverConfig {
        expected_voters: 2,
        ..active_passive()
    };
    let mut world = World::new(1, all.to_vec(), vec![1.0; 3], two, Net::lan());
    world.run_until(8 * SEC);
    assert_eq!(holder_ids(&world), vec![s.id]);
    let st = world.fo(2).status();
    assert_eq!(st.drift, vec![drifted.id]);
    assert_eq!(st.leader, Some(s.id));
    // The drifted node is no voter: the majority is over {witness, s}.
    assert!(!st.can_fail_over);
    let mut fo = lone(2, &all);
    assert!(events(&mut fo).contains(&FailoverEvent::ConfigDrift { node: drifted.id }));
}

// ---- the lease -------------------------------------------------------------------

/// Node 1 of `live` after winning the bootstrap lease (grants from 2 and 3 at
/// `t + 1 ms`), with the messages it sent drained.
fn bootstrapped_leader(live: &[Candidate], t: Millis) -> (Bare, Epoch, u64) {
    let mut fo = lone(0, live);
    fo.handle_timeout(t);
    let LeaseMessage::Request { epoch, round, .. } = drain(&mut fo)[0].1 else {
        panic!("expected a request")
    };
    for v in 2..=live.len() as u64 {
        fo.handle_message(t + ms(1), n(v), LeaseMessage::Grant { epoch, round });
    }
    (fo, epoch, round)
}

#[test]
fn bootstrap_needs_every_founder_and_its_granters_become_the_roster() {
    let live = [serving(0), serving(1), serving(2)];
    let mut fo = lone(0, &live);
    assert!(drain(&mut fo).is_empty(), "quiet period: no campaign yet");
    let t = after_quiet();
    fo.handle_timeout(t);
    let sent = drain(&mut fo);
    assert_eq!(sent.len(), 2);
    let LeaseMessage::Request {
        epoch,
        round,
        ref electorate,
        ..
    } = sent[0].1
    else {
        panic!("expected a request, got {sent:?}");
    };
    assert_eq!(epoch, Epoch(1));
    assert_eq!(electorate, &boot(3));
    // Its own vote and one grant are 2 of the 3 founders: no lease yet.
    fo.handle_message(t + ms(2), n(2), LeaseMessage::Grant { epoch, round });
    assert!(!fo.holds_lease_at(t + ms(2)));
    assert!(fo.roster().is_none());
    fo.handle_message(t + ms(3), n(3), LeaseMessage::Grant { epoch, round });
    assert!(fo.holds_lease_at(t + ms(3)));
    assert_eq!(fo.status().leader, Some(n(1)));
    assert!(events(&mut fo).contains(&FailoverEvent::BecameLeader { epoch }));
    let roster = fo
        .roster()
        .expect("the winner makes the first roster")
        .clone();
    assert_eq!(roster.voters, vec![n(1), n(2), n(3)]);
    assert_eq!(roster.version, RosterVersion { epoch, seq: 0 });
    // The announcing renewal carries it; from now on two of three make a lease.
    let renewal = drain(&mut fo);
    assert!(matches!(
        &renewal[0].1,
        LeaseMessage::Request { electorate: Electorate::Roster(r), holding: true, .. } if *r == roster
    ));
    assert_eq!(fo.voters(), 3);
}

#[test]
fn a_newcomer_never_bootstraps_and_waits_to_be_admitted() {
    let live = [serving(0), serving(1)];
    // expected_voters 0: a node that joins an existing cluster.
    let mut fo = Bare::new(n(1), active_passive(), START).unwrap();
    fo.handle_members(START, &live);
    fo.handle_timeout(after_quiet());
    assert!(
        drain(&mut fo).is_empty(),
        "asked for a lease: {:?}",
        fo.status()
    );
    let st = fo.status();
    assert!(!st.can_fail_over);
    assert!(st.reason.unwrap().contains("admit"), "reason says why");
    // A founder's bootstrap request is refused, and the refusal says it takes no part.
    fo.handle_message(after_quiet(), n(2), boot_request(2));
    assert!(matches!(
        drain(&mut fo)[..],
        [(
            _,
            LeaseMessage::Reject {
                electorate: Electorate::Bootstrap { expected: 0 },
                ..
            }
        )]
    ));
}

#[test]
fn lease_runs_from_the_send_and_ends_before_any_promise() {
    let live = [serving(0), serving(1), serving(2)];
    let mut fo = lone(0, &live);
    let t = after_quiet();
    fo.handle_timeout(t);
    let sent = drain(&mut fo);
    let LeaseMessage::Request { epoch, round, .. } = sent[0].1 else {
        panic!()
    };
    // The grants arrive late; the lease still counts from the send.
    fo.handle_message(t + ms(400), n(2), LeaseMessage::Grant { epoch, round });
    fo.handle_message(t + ms(400), n(3), LeaseMessage::Grant { epoch, round });
    // 2800 × 0.99 − 10 ms margin.
    assert_eq!(fo.status().lease_until, Some(t + ms(2762)));

    // The voter's promise runs from receipt, × 1.01.
    let mut voter = lone(1, &live);
    let r = after_quiet() + ms(1);
    voter.handle_message(
        r,
        n(1),
        LeaseMessage::Request {
            epoch,
            round,
            holding: false,
            electorate: boot(3),
        },
    );
    assert_eq!(
        drain(&mut voter),
        vec![(n(1), LeaseMessage::Grant { epoch, round })]
    );
    assert_eq!(voter.voter.binding(r).unwrap().until, r + ms(2828));
}

#[test]
fn leader_without_renewals_steps_down_before_its_lease_ends() {
    let live = [serving(0), serving(1), serving(2)];
    let t = after_quiet();
    let (mut fo, _, _) = bootstrapped_leader(&live, t);
    events(&mut fo);
    // No more grants: renewals go unanswered.
    let end = t + ms(2762);
    while let Some(next) = fo.poll_timeout() {
        if next >= end {
            break;
        }
        assert!(fo.holds_lease_at(next));
        fo.handle_timeout(next);
        drain(&mut fo);
    }
    assert_eq!(
        fo.poll_timeout(),
        Some(end),
        "wakes at the end of its lease"
    );
    assert!(fo.holds_lease_at(end - ms(1)));
    fo.handle_timeout(end);
    assert!(!fo.holds_lease_at(end));
    assert!(events(&mut fo)
        .iter()
        .any(|e| matches!(e, FailoverEvent::SteppedDown { .. })));
    assert!(!fo.status().serving);
}

#[test]
fn a_voter_never_grants_two_unexpired_leases() {
    // Node 2 votes; 1 asks first, 3 (better-ranked than 1) asks while 1's promise holds.
    let live = as_founders(&[
        candidate(0, 2, 10, Role::Serving),
        candidate(1, 2, 10, Role::Serving),
        candidate(2, 1, 10, Role::Serving),
    ]);
    let mut v = Bare::new(n(2), founders(3), START).unwrap();
    // Only 1 and 2 live at first, so 1 is the voter's own pick.
    v.handle_members(START, &live[..2]);
    let t = after_quiet();
    let req = |epoch, round| LeaseMessage::Request {
        epoch: Epoch(epoch),
        round,
        holding: false,
        electorate: boot(3),
    };
    v.handle_members(t, &live[..2]);
    v.handle_message(t, n(1), req(1, 1));
    assert!(matches!(
        drain(&mut v)[..],
        [(_, LeaseMessage::Grant { .. })]
    ));
    v.handle_members(t + ms(10), &live);
    v.handle_message(t + ms(20), n(3), req(2, 1));
    let out = drain(&mut v);
    let [(_, LeaseMessage::Reject { retry_after_ms, .. })] = out[..] else {
        panic!("granted a second unexpired lease: {out:?}")
    };
    assert_eq!(u64::from(retry_after_ms), 2828 - 20);
    // Once 1's promise ran out unrenewed, 3 gets it.
    let later = t + ms(2828);
    v.handle_timeout(later);
    v.handle_message(later, n(3), req(2, 2));
    assert!(matches!(
        drain(&mut v)[..],
        [(_, LeaseMessage::Grant { .. })]
    ));
}

#[test]
fn a_restarted_voter_grants_nothing_for_one_promise_length() {
    let live = [serving(0), serving(1), serving(2)];
    let mut v = lone(1, &live);
    let req = boot_request(3);
    v.handle_message(START + ms(2800), n(1), req.clone());
    assert!(matches!(
        drain(&mut v)[..],
        [(_, LeaseMessage::Reject { .. })]
    ));
    v.handle_message(after_quiet(), n(1), req);
    assert!(matches!(
        drain(&mut v)[..],
        [(_, LeaseMessage::Grant { .. })]
    ));
}

#[test]
fn a_bootstrap_with_another_founder_count_is_refused() {
    let live = [serving(0), serving(1), serving(2)];
    let mut v = lone(1, &live);
    v.handle_message(after_quiet(), n(1), boot_request(2));
    assert!(matches!(
        drain(&mut v)[..],
        [(
            _,
            LeaseMessage::Reject {
                electorate: Electorate::Bootstrap { expected: 3 },
                ..
            }
        )]
    ));
}

#[test]
fn a_voter_grants_only_under_its_own_roster_and_learns_newer_ones() {
    let live = [serving(0), serving(1), serving(2)];
    let t = after_quiet();
    let (leader, epoch, _) = bootstrapped_leader(&live, t);
    let roster = leader.roster().unwrap().clone();
    // A voter still bootstrapping learns the roster from the renewal and grants.
    let mut v = lone(1, &live);
    let renewal = |round, r: &Roster| LeaseMessage::Request {
        epoch,
        round,
        holding: true,
        electorate: Electorate::Roster(r.clone()),
    };
    v.handle_message(t + ms(2), n(1), renewal(2, &roster));
    assert_eq!(v.roster(), Some(&roster));
    assert!(matches!(
        drain(&mut v)[..],
        [(_, LeaseMessage::Grant { .. })]
    ));
    // A request under an older roster version is refused, with the newer roster.
    let older = roster.restamped(RosterVersion {
        epoch: Epoch::ZERO,
        seq: 0,
    });
    v.handle_message(t + ms(3), n(1), renewal(3, &older));
    let out = drain(&mut v);
    let [(
        _,
        LeaseMessage::Reject {
            electorate: Electorate::Roster(ref taught),
            ..
        },
    )] = out[..]
    else {
        panic!("granted under another roster: {out:?}")
    };
    assert_eq!(taught, &roster);
}

// ---- epochs, hold-down, switchover -------------------------------------------------

#[test]
fn epochs_only_grow_and_change_with_the_leader() {
    let mut w = world(3, vec![serving(0), serving(1), serving(2)]);
    w.run_until(10 * SEC);
    assert_eq!(holder_ids(&w), vec![n(1)]);
    w.crash(0);
    w.run_until(20 * SEC);
    assert_eq!(holder_ids(&w), vec![n(2)]);
    w.restart(0);
    w.run_until(45 * SEC);
    assert_eq!(holder_ids(&w), vec![n(1)], "the best-ranked node is back");
    let got: Vec<(usize, Epoch)> = w.acquisitions.iter().map(|&(_, i, e)| (i, e)).collect();
    // Renewals kept each epoch: one acquisition per leadership, each one higher.
    assert_eq!(got, vec![(0, Epoch(1)), (1, Epoch(2)), (0, Epoch(3))]);
    for i in 0..3 {
        assert_eq!(w.fo(i).status().epoch, Epoch(3));
    }
}

#[test]
fn hold_down_keeps_a_flapping_better_node_from_taking_over() {
    let mut w = world(4, vec![serving(0), serving(1), serving(2)]);
    w.run_until(10 * SEC);
    w.crash(0);
    w.run_until(16 * SEC);
    assert_eq!(holder_ids(&w), vec![n(2)]);
    // Node 1 flaps: up 6 s, down 2 s, five times. Node 2 keeps the lease.
    for _ in 0..5 {
        w.restart(0);
        let t = w.now;
        w.run_until(t + 6 * SEC);
        assert_eq!(holder_ids(&w), vec![n(2)], "flapped at {}", w.now);
        w.crash(0);
        let t = w.now;
        w.run_until(t + 2 * SEC);
    }
    assert_eq!(w.acquisitions.len(), 2);
    // Back for good: it takes over by handover once `hold_down` has passed.
    w.restart(0);
    let back = w.now;
    let at = w.run_until_holder(Some(1), 30 * SEC).unwrap();
    assert!(
        at >= back + 10 * SEC,
        "took over {} ms after returning",
        (at - back) / MS
    );
    assert!(at <= back + 13 * SEC);
    assert_eq!(holder_ids(&w), vec![n(1)]);
}

#[test]
fn switchover_hands_over_within_one_renewal_and_sticks() {
    let mut w = world(5, vec![serving(0), serving(1), serving(2)]);
    w.run_until(10 * SEC);
    assert_eq!(holder_ids(&w), vec![n(1)]);
    let epoch = w.fo(0).status().epoch;
    assert_eq!(
        w.with_node(0, |fo, now| fo.switchover(now, n(1))),
        Err(SwitchoverError::AlreadyLeader(n(1)))
    );
    assert_eq!(
        w.with_node(1, |fo, now| fo.switchover(now, n(3))),
        Err(SwitchoverError::NotLeader)
    );
    let t0 = w.now;
    w.with_node(0, |fo, now| fo.switchover(now, n(2))).unwrap();
    assert!(w.holders().is_empty(), "the old leader stops at once");
    let at = w.run_until_holder(None, 5 * SEC).unwrap();
    assert!(at - t0 <= 20 * MS, "no leader for {} ms", (at - t0) / MS);
    assert_eq!(holder_ids(&w), vec![n(2)]);
    assert_eq!(w.fo(1).status().epoch, epoch.next());
    // Node 1, better-ranked but lapsed (it handed over), is not handed it back.
    w.run_until(at + 60 * SEC);
    assert_eq!(holder_ids(&w), vec![n(2)]);
    assert_eq!(w.fo(0).status().leader, Some(n(2)));
    assert_eq!(w.acquisitions.len(), 2);
}

#[test]
fn a_handover_to_a_node_that_dies_leaves_the_old_leader_eligible() {
    let mut w = world(6, vec![serving(0), serving(1), serving(2)]);
    w.run_until(10 * SEC);
    assert_eq!(holder_ids(&w), vec![n(1)]);
    // Node 1 hands over to node 3, which crashes before it can take the lease.
    w.with_node(0, |fo, now| fo.switchover(now, n(3))).unwrap();
    w.crash(2);
    let t0 = w.now;
    let at = w.run_until_holder(None, 10 * SEC).expect("a new leader");
    // Once the handover's preference ran out with nobody leading, the plain order
    // ranks node 1 again: it leads, not node 2, one promise length later.
    assert_eq!(holder_ids(&w), vec![n(1)], "after {} ms", (at - t0) / MS);
    assert!(at - t0 <= 3 * SEC, "no leader for {} ms", (at - t0) / MS);
}

#[test]
fn a_member_that_left_and_returns_is_voter_again() {
    // A rolling restart: each node leaves gracefully (resign, then every other
    // node forgets it) and comes back. The roster must not shrink.
    let mut w = world(7, vec![serving(0), serving(1), serving(2)]);
    w.run_until(20 * SEC);
    for i in [1usize, 0, 2] {
        let id = w.nodes[i].cand.id;
        w.with_node(i, |fo, now| fo.resign(now));
        w.crash(i);
        for j in (0..3).filter(|&j| j != i) {
            w.with_node(j, |fo, now| fo.forget(now, id));
        }
        let t = w.now;
        w.run_until(t + 20 * SEC);
        w.restart(i);
        let t = w.now;
        w.run_until(t + 40 * SEC);
        let holders = w.holders();
        assert_eq!(holders.len(), 1, "after {id} came back");
        let roster = w.fo(holders[0]).roster().expect("a roster").clone();
        assert_eq!(roster.len(), 3, "{id} back, roster {roster:?}");
    }
}

#[test]
fn switchover_to_a_worse_ranked_node_lasts_one_hold_down() {
    let mut w = world(9, vec![serving(0), serving(1), serving(2)]);
    w.run_until(10 * SEC);
    w.with_node(0, |fo, now| fo.switchover(now, n(3))).unwrap();
    let at = w.run_until_holder(None, 5 * SEC).unwrap();
    assert_eq!(holder_ids(&w), vec![n(3)]);
    // Node 2 outranks node 3 and never lapsed: after `hold_down`, a handover.
    let back = w.run_until_holder(Some(2), 30 * SEC).unwrap();
    assert!(back - at >= 10 * SEC && back - at <= 11 * SEC);
    assert_eq!(holder_ids(&w), vec![n(2)]);
}

/// Found by the network-namespace partition test (gateway/tests/netns_partition.rs):
/// a standby cut off long enough for its promise to the leader to run out campaigns
/// alone and grants itself ever higher epochs. Back on the network it refused the
/// leader's renewals (their epoch was below the one it had granted itself), so the
/// leader's majority silently shrank to the other standby, and cutting that one off
/// too cost the lease although the leader and the returned standby were a majority.
#[test]
fn a_standby_back_from_a_partition_renews_the_leaders_lease() {
    // How long after node 2 is back node 3 is cut off: at once (node 2 still
    // holds its own promise from its last campaign round, and must drop it when
    // it hears the holder), and after every promise of its own has run out.
    for (seed, back_for) in [(12, 300 * MS), (13, 5 * SEC)] {
        let mut w = world(seed, vec![serving(0), serving(1), serving(2)]);
        w.run_until(10 * SEC);
        assert_eq!(holder_ids(&w), vec![n(1)]);
        let epoch = w.fo(0).status().epoch;
        // Node 2 alone: once its promise to node 1 ran out it ranks itself best
        // and campaigns by itself, raising the epoch it granted.
        w.set_group(1, 1);
        w.run_until(20 * SEC);
        assert_eq!(holder_ids(&w), vec![n(1)]);
        assert!(
            w.fo(1).durable_epoch() > epoch,
            "node 2 campaigned while cut off: {:?}",
            w.fo(1).durable_epoch()
        );
        w.heal();
        w.run_until(20 * SEC + back_for);
        // Node 3 alone: nodes 1 and 2 are a majority, so the lease never lapses.
        w.set_group(2, 1);
        let mut t = w.now;
        while t < 40 * SEC {
            t += 10 * MS;
            w.run_until(t);
            assert_eq!(
                holder_ids(&w),
                vec![n(1)],
                "at {} ms, node 2 back for {} ms, node 3 cut off after {} ms",
                t / MS,
                (t - 20 * SEC) / MS,
                back_for / MS
            );
        }
        assert_eq!(w.fo(0).status().epoch, epoch, "one leadership throughout");
    }
}

/// Also seen on real hosts: right after a heal, the two standbys each saw the
/// other flap (suspected and alive again within milliseconds), so in each one's
/// view the other was in hold-down and it ranked itself best. When the leader then
/// went, each campaigned and refused the other until hold-down ran out: 10 s
/// without a leader instead of one lease.
#[test]
fn standbys_that_each_saw_the_other_flap_still_elect_within_a_lease() {
    let mut w = world(14, vec![serving(0), serving(1), serving(2)]);
    w.run_until(10 * SEC);
    assert_eq!(holder_ids(&w), vec![n(1)]);
    let all: Vec<Candidate> = w.nodes.iter().map(|x| x.cand.clone()).collect();
    // Node 2 sees node 3 gone and back; node 3 sees node 2 gone and back.
    for (me, other) in [(1, 2), (2, 1)] {
        let without: Vec<Candidate> = all
            .iter()
            .filter(|c| c.id != all[other].id)
            .cloned()
            .collect();
        w.with_node(me, |fo, now| fo.handle_members(now, &without));
        w.with_node(me, |fo, now| fo.handle_members(now, &all));
    }
    w.run_until(11 * SEC);
    w.crash(0);
    let t0 = w.now;
    let at = w
        .run_until_holder(Some(0), 15 * SEC)
        .expect("a new leader within 15 s");
    assert!(
        at - t0 <= 3200 * MS,
        "new leader {} ms after the crash",
        (at - t0) / MS
    );
}

// ---- two nodes, witness ------------------------------------------------------------

#[test]
fn two_nodes_without_a_witness_cannot_fail_over_and_never_split() {
    let mut w = world(6, vec![serving(0), serving(1)]);
    w.run_until(10 * SEC);
    assert_eq!(holder_ids(&w), vec![n(1)], "2 of 2 elect");
    let st = w.fo(1).status();
    assert!(!st.can_fail_over);
    assert_eq!(
        st.reason.as_deref(),
        Some("two voting members: add a witness to fail over safely")
    );
    // A partition: neither side may hold; the checker runs at every step.
    w.set_group(1, 1);
    w.run_until(40 * SEC);
    assert!(w.holders().is_empty());
    w.heal();
    w.run_until(60 * SEC);
    assert_eq!(w.holders().len(), 1);
    // A crash: the survivor never takes over.
    let leader = w.holders()[0];
    w.crash(leader);
    w.run_until(120 * SEC);
    assert!(w.holders().is_empty());
    assert_eq!(w.fo(1 - leader).status().leader, None);
}

#[test]
fn two_serving_nodes_and_a_witness_fail_over() {
    let mut w = world(7, vec![serving(0), serving(1), witness(2)]);
    w.run_until(10 * SEC);
    assert_eq!(
        holder_ids(&w),
        vec![n(1)],
        "the witness outranks both, yet never leads"
    );
    let st = w.fo(1).status();
    assert!(st.can_fail_over, "{:?}", st.reason);
    assert!(!st.serving);
    assert_eq!(st.leader, Some(n(1)));
    assert!(!w.fo(2).status().serving, "a witness never serves");
    w.crash(0);
    let t0 = w.now;
    let at = w.run_until_holder(Some(0), 10 * SEC).unwrap();
    assert!(at - t0 <= 3200 * MS, "failed over in {} ms", (at - t0) / MS);
    assert_eq!(holder_ids(&w), vec![n(2)]);
    assert!(w.fo(1).status().serving);
}

// ---- modes -------------------------------------------------------------------------

#[test]
fn single_node_mode_leads_at_once_and_sends_nothing() {
    let live = [serving(0), serving(1)];
    let mut fo = Bare::new(n(1), FailoverConfig::default(), START).unwrap();
    fo.handle_members(START, &live);
    fo.handle_timeout(START + ms(10_000));
    assert!(drain(&mut fo).is_empty());
    assert_eq!(fo.poll_timeout(), None);
    assert!(fo.holds_lease_at(START));
    let st = fo.status();
    assert_eq!(st.leader, Some(n(1)));
    assert!(st.serving && st.this_node_holds_lease && !st.can_fail_over);
    assert_eq!(
        events(&mut fo),
        vec![FailoverEvent::LeaderChanged {
            leader: Some(n(1)),
            epoch: Epoch::ZERO
        }]
    );
    assert_eq!(fo.switchover(START, n(2)), Err(SwitchoverError::SingleNode));
}

#[test]
fn active_passive_standbys_name_the_leader_active_active_all_serve() {
    let cands = vec![serving(0), serving(1), witness(2)];
    let mut w = world(8, cands.clone());
    w.run_until(10 * SEC);
    let standby = w.fo(1).status();
    assert!(!standby.serving && !standby.this_node_holds_lease);
    assert_eq!(standby.leader, Some(n(1)));
    assert!(w.fo(0).status().serving);

    let config = FailoverConfig::with_mode(FailoverMode::ActiveActive);
    let mut w = World::new(8, cands, vec![1.0; 3], config, Net::lan());
    w.run_until(10 * SEC);
    assert_eq!(holder_ids(&w), vec![n(1)]);
    assert!(w.fo(0).status().serving && w.fo(1).status().serving);
    assert!(!w.fo(2).status().serving);
    assert_eq!(w.fo(1).status().leader, Some(n(1)));
}

// ---- seeded fault schedules ---------------------------------------------------------

/// One random schedule: 3–5 nodes (maybe a witness), drifting clocks, lossy
/// network, crashes, restarts and partitions; safety checked at every step.
fn chaos(seed: u64, broken: bool) -> World {
    let mut rng = DetRng::from_seed(seed ^ 0xfa11_0e55);
    let size = 3 + rng.below(3);
    let cands: Vec<Candidate> = (0..size)
        .map(|i| {
            let role = if i == size - 1 && rng.chance(0.3) {
                Role::Witness
            } else {
                Role::Serving
            };
            candidate(i, rng.below(3) as u8, 1 + rng.below(4) as u32, role)
        })
        .collect();
    let config = active_passive();
    let d = config.max_drift;
    let rates = (0..size).map(|_| 1.0 - d + 2.0 * d * rng.unit()).collect();
    let net = Net {
        delay_min: MS,
        delay_max: (2 + rng.below(60) as Real) * MS,
        slow: 0.05,
        slow_max: 800 * MS,
        drop: rng.unit() * 0.3,
        duplicate: 0.02,
        detect: (2 + rng.below(6) as Real) * SEC,
    };
    let mut w = World::new(seed, cands, rates, config, net);
    if TRACE_SEED == Some(seed) {
        w.trace = Some(String::new());
    }
    if broken {
        w.break_majority();
    }
    let horizon = 90 * SEC;
    while w.now < horizon {
        let step = (1 + rng.below(8) as Real) * SEC;
        w.run_until(w.now + step);
        match rng.below(6) {
            0 => w.crash(rng.below(size)),
            1 => w.restart(rng.below(size)),
            2 => {
                for i in 0..size {
                    let g = rng.below(2) as u8;
                    w.set_group(i, g);
                }
            }
            3 => w.heal(),
            _ => {
                // Crash whoever leads.
                if let Some(&h) = w.holders().first() {
                    w.crash(h);
                }
            }
        }
    }
    // Liveness once faults stop: everyone up and connected, a majority can talk.
    w.heal();
    w.net.drop = 0.0;
    w.net.slow = 0.0;
    w.net.duplicate = 0.0;
    for i in 0..size {
        w.restart(i);
    }
    let t = w.now;
    w.run_until(t + 30 * SEC);
    w
}

#[test]
fn safety_holds_across_seeded_fault_schedules() {
    let mut steps = 0;
    for seed in 0..300 {
        let w = chaos(seed, false);
        steps += w.steps;
        let serving_voters = w
            .nodes
            .iter()
            .filter(|n| n.cand.role == Role::Serving)
            .count();
        if serving_voters > 0 {
            if let Some(t) = &w.trace {
                let lines: Vec<&str> = t.lines().collect();
                println!("{}", lines[lines.len().saturating_sub(150)..].join("\n"));
                for (i, n) in w.nodes.iter().enumerate() {
                    println!("{i} {:?} {:?}", n.cand, w.fo(i).status());
                }
            }
            assert_eq!(
                w.holders().len(),
                1,
                "seed {seed}: no leader after faults stopped"
            );
        }
    }
    assert!(steps > 100_000, "the schedules did little: {steps} steps");
}

/// Crash the leader at a random point of its renewal cycle; measure until another
/// node holds the lease. Default timing, 3 serving nodes, drifting clocks, 1–5 ms LAN.
fn failover_times(seeds: u64) -> Vec<Real> {
    (0..seeds)
        .map(|seed| {
            let mut rng = DetRng::from_seed(seed);
            let config = active_passive();
            let d = config.max_drift;
            let rates = (0..3).map(|_| 1.0 - d + 2.0 * d * rng.unit()).collect();
            let cands = vec![serving(0), serving(1), serving(2)];
            let mut w = World::new(seed, cands, rates, config, Net::lan());
            w.run_until(10 * SEC + rng.below(1_000_000) as Real);
            let leader = w.holders()[0];
            w.crash(leader);
            let t0 = w.now;
            w.run_until_holder(Some(leader), 20 * SEC)
                .expect("no failover")
                - t0
        })
        .collect()
}

#[test]
fn failover_time_after_a_leader_crash() {
    let mut times = failover_times(200);
    let p50 = percentile(&mut times, 50.0);
    let p99 = percentile(&mut times, 99.0);
    let max = *times.last().unwrap();
    println!(
        "failover after leader crash, default timing, 200 seeds: p50 {} ms, p99 {} ms, max {} ms",
        p50 / MS,
        p99 / MS,
        max / MS
    );
    // Bounded by one promise (lease × 1.01) after the last renewal, plus a round trip.
    assert!(p99 <= 3100 * MS, "p99 {} ms", p99 / MS);
    assert!(
        p50 >= 2000 * MS,
        "faster than the lease allows: {} ms",
        p50 / MS
    );
}

#[test]
fn planned_switchover_window() {
    let mut windows = Vec::new();
    for seed in 0..50 {
        let mut w = world(seed, vec![serving(0), serving(1), serving(2)]);
        w.run_until(10 * SEC + seed * 17 * MS);
        let t0 = w.now;
        w.with_node(0, |fo, now| fo.switchover(now, n(2))).unwrap();
        let at = w.run_until_holder(None, 5 * SEC).unwrap();
        windows.push(at - t0);
    }
    let p99 = percentile(&mut windows, 99.0);
    println!(
        "planned switchover, no-leader window: p50 {} ms, p99 {} ms",
        percentile(&mut windows, 50.0) / MS,
        p99 / MS
    );
    assert!(p99 <= 1000 * MS);
}

#[test]
fn traced_failover_snapshot() {
    let cands = vec![
        candidate(0, 0, 10, Role::Serving),
        candidate(1, 1, 10, Role::Serving),
        candidate(2, 0, 1, Role::Witness),
    ];
    let net = Net {
        delay_min: 2 * MS,
        delay_max: 2 * MS + 1,
        ..Net::lan()
    };
    let mut w = World::new(1, cands, vec![1.0, 1.0, 1.0], active_passive(), net);
    w.trace = Some(String::new());
    w.run_until(5 * SEC + 500 * MS);
    w.crash(0);
    w.run_until(9 * SEC);
    insta::assert_snapshot!(w.trace.take().unwrap());
}

#[test]
fn the_checker_catches_a_lease_without_a_majority() {
    let caught = (0..20)
        .filter(|&seed| chaos(seed, true).violations > 0)
        .count();
    assert!(
        caught >= 10,
        "the broken variant slipped through: {caught} of 20 caught"
    );
}

// ---- storage lives ---------------------------------------------------------------

/// A wiped voter (same id, new life) granting a round under a roster that names
/// its old life is not counted: it could otherwise help a stale candidate to a
/// majority with a promise its earlier life never made.
#[test]
fn a_grant_from_another_life_of_a_voter_does_not_count() {
    use crate::id::Life;
    let live = [serving(0), serving(1), serving(2)];
    let t = after_quiet();
    let (mut fo, epoch, round) = bootstrapped_leader(&live, t);
    let roster = fo.roster().unwrap().clone();
    assert!(roster.admits(n(2), Life::default()));
    // Let the lease run out, then campaign again under the roster.
    let later = t + ms(10_000);
    fo.handle_timeout(later);
    let requests: Vec<(u64, Epoch)> = drain(&mut fo)
        .into_iter()
        .filter_map(|(_, m)| match m {
            LeaseMessage::Request { round, epoch, .. } => Some((round, epoch)),
            _ => None,
        })
        .collect();
    let Some(&(round2, epoch2)) = requests.last() else {
        panic!("expected a new campaign round");
    };
    assert!(round2 != round || epoch2 != epoch);
    // n2 and n3 answer, but both from new lives: nothing is won.
    for v in [2, 3] {
        fo.handle_lease(
            later + ms(1),
            n(v),
            Life(0xdead),
            LeaseMessage::Grant {
                epoch: epoch2,
                round: round2,
            },
        );
    }
    assert!(!fo.holds_lease_at(later + ms(1)));
    // The same grants from the lives the roster names win it.
    for v in [2, 3] {
        fo.handle_lease(
            later + ms(2),
            n(v),
            Life::default(),
            LeaseMessage::Grant {
                epoch: epoch2,
                round: round2,
            },
        );
    }
    assert!(fo.holds_lease_at(later + ms(2)));
}

/// A voter that lost its disk runs in a new life: it adopts the roster it hears
/// of, but that roster names its old life, so it grants nothing under it.
#[test]
fn a_new_life_does_not_grant_under_a_roster_that_names_its_old_one() {
    use crate::id::Life;
    let live = [serving(0), serving(1), serving(2)];
    let t = after_quiet();
    let (leader, epoch, _) = bootstrapped_leader(&live, t);
    let roster = leader.roster().unwrap().clone();
    let as_founders = as_founders(&live);
    let mut wiped = Bare::new(n(2), founders(3), t)
        .unwrap()
        .with_life(Life(0xbeef));
    wiped.handle_members(t, &as_founders);
    let request = LeaseMessage::Request {
        epoch,
        round: 7,
        holding: true,
        electorate: Electorate::Roster(roster.clone()),
    };
    wiped.handle_message(after_quiet() + ms(3_000), n(1), request);
    assert_eq!(wiped.roster(), Some(&roster));
    assert!(
        !drain(&mut wiped)
            .iter()
            .any(|(_, m)| matches!(m, LeaseMessage::Grant { .. })),
        "a new life granted under its old life's roster"
    );
}
