//! Merge laws and anti-entropy deltas.

use super::*;
use crate::state::record::test_schema::{self, TestSchema, BUDGETS, NOTES};
use proptest::prelude::*;

fn budget(n: u8) -> RecordId {
    RecordId::new(format!("b{n}")).expect("valid id")
}

/// Node `n` in one fixed storage life.
fn org(n: u64) -> Origin {
    Origin::new(NodeId(n), Life(1))
}

fn key(b: u8, node: u64) -> Key {
    Key::Usage {
        budget: budget(b),
        period: 1,
        node: org(node),
    }
}

fn entry(b: u8, origin: u64, wall: u64, seq: u64, value: Option<u64>) -> Entry {
    Entry {
        key: key(b, origin),
        value: value.map(|v| {
            Value::Usage(Usage {
                spend_nanos: v,
                requests: v,
                tokens: v,
            })
        }),
        // A real origin never issues the same timestamp twice.
        hlc: Hlc {
            wall,
            logical: seq as u32,
            origin: org(origin),
        },
        seq,
    }
}

/// Arbitrary writes: a few keys, a few origins, arbitrary times, some deletes.
/// Each (origin, seq) names exactly one write, as in a real cluster.
fn writes() -> impl Strategy<Value = Vec<Entry>> {
    proptest::collection::vec(
        (0u8..3, 1u64..4, 0u64..50, proptest::option::of(0u64..9)),
        0..40,
    )
    .prop_map(|ws| {
        ws.into_iter()
            .enumerate()
            .map(|(i, (b, o, wall, v))| entry(b, o, wall, i as u64 + 1, v))
            .collect()
    })
}

fn merged(entries: &[Entry]) -> Store {
    let mut s = Store::default();
    for e in entries {
        s.merge(e.clone());
    }
    s
}

fn state(s: &Store) -> (Vec<Entry>, u64, VersionVector) {
    (
        s.entries().cloned().collect(),
        s.digest(),
        s.version_vector(),
    )
}

proptest! {
    #[test]
    fn merge_is_commutative(ws in writes(), seed in any::<u64>()) {
        let mut shuffled = ws.clone();
        crate::rng::DetRng::from_seed(seed).shuffle(&mut shuffled);
        prop_assert_eq!(state(&merged(&ws)), state(&merged(&shuffled)));
    }

    #[test]
    fn merge_is_idempotent(ws in writes()) {
        let twice: Vec<Entry> = ws.iter().chain(ws.iter()).cloned().collect();
        prop_assert_eq!(state(&merged(&ws)), state(&merged(&twice)));
    }

    #[test]
    fn merge_is_associative(ws in writes(), cut in any::<proptest::sample::Index>()) {
        let (a, b) = ws.split_at(cut.index(ws.len() + 1));
        // (A ∪ B) merged at once equals A merged, then B's delta merged.
        let all: Vec<Entry> = a.iter().chain(b.iter()).cloned().collect();
        let mut left = merged(a);
        let right = merged(b);
        let (delta, more) = right.delta_for(&left.version_vector(), usize::MAX);
        prop_assert!(!more);
        left.merge_delta(delta);
        let whole = merged(&all);
        prop_assert_eq!(left.digest(), whole.digest());
        prop_assert_eq!(left.entries().cloned().collect::<Vec<_>>(), whole.entries().cloned().collect::<Vec<_>>());
    }

    #[test]
    fn a_delta_brings_a_peer_level_and_sends_only_what_it_lacks(ws in writes(), cut in any::<proptest::sample::Index>()) {
        let (a, b) = ws.split_at(cut.index(ws.len() + 1));
        let mut x = merged(a);
        let y = merged(b);
        let lacking = y.ahead_of(&x.version_vector());
        let (delta, _) = y.delta_for(&x.version_vector(), usize::MAX);
        let sent = delta.entries.len() as u64
            + delta.cleared.iter().map(|(_, r)| r.end - r.start + 1).sum::<u64>();
        prop_assert_eq!(sent, lacking);
        x.merge_delta(delta);
        prop_assert_eq!(x.ahead_of(&y.version_vector()) + y.ahead_of(&x.version_vector()),
                        x.ahead_of(&y.version_vector()));
        prop_assert_eq!(y.ahead_of(&x.version_vector()), 0);
    }
}

#[test]
fn the_newest_write_wins_and_an_older_one_is_superseded() {
    let mut s = Store::default();
    assert_eq!(s.merge(entry(0, 1, 10, 1, Some(1))), Merge::Applied);
    assert_eq!(s.merge(entry(0, 1, 20, 2, Some(2))), Merge::Applied);
    assert_eq!(s.merge(entry(0, 1, 15, 3, Some(3))), Merge::Superseded);
    assert_eq!(s.merge(entry(0, 1, 20, 2, Some(2))), Merge::Duplicate);
    assert_eq!(s.get(&key(0, 1)).map(|e| e.seq), Some(2));
}

#[test]
fn a_tombstone_hides_the_value_and_leaves_the_digest() {
    let mut s = Store::default();
    s.merge(entry(0, 1, 10, 1, Some(1)));
    let with = s.digest();
    assert_eq!(s.live_count(), 1);
    s.merge(entry(0, 1, 11, 2, None));
    assert_eq!(s.live_count(), 0);
    assert_eq!(s.digest(), 0);
    assert_ne!(with, 0);
    // A late copy of the deleted write never brings it back.
    assert_eq!(s.merge(entry(0, 1, 10, 1, Some(1))), Merge::Duplicate);
    assert_eq!(s.live_count(), 0);
}

#[test]
fn collected_tombstones_stay_deleted_for_peers_that_saw_them() {
    let mut s = Store::default();
    s.merge(entry(0, 1, 10, 1, Some(1)));
    s.merge(entry(0, 1, 11, 2, None));
    assert_eq!(s.collect_tombstones(100), vec![key(0, 1)]);
    assert!(s.is_empty());
    // The old write's number is still seen: a peer replaying it is a duplicate.
    assert_eq!(s.merge(entry(0, 1, 10, 1, Some(1))), Merge::Duplicate);
}

#[test]
fn superseded_numbers_travel_as_cleared_ranges() {
    let mut a = Store::default();
    for seq in 1..=10 {
        a.merge(entry(0, 1, seq, seq, Some(seq)));
    }
    let (delta, more) = a.delta_for(&Vec::new(), usize::MAX);
    assert!(!more);
    assert_eq!(delta.entries.len(), 1);
    assert_eq!(delta.cleared, vec![(org(1), SeqRange { start: 1, end: 9 })]);
    let mut b = Store::default();
    b.merge_delta(delta);
    assert_eq!(b.digest(), a.digest());
    assert_eq!(a.ahead_of(&b.version_vector()), 0);
}

#[test]
fn deltas_are_chunked_by_size() {
    let mut a = Store::default();
    for b in 0..3u8 {
        for o in 1..=30u64 {
            a.merge(entry(b, o, o, u64::from(b) + 1, Some(o)));
        }
    }
    let mut b = Store::default();
    let mut rounds = 0;
    loop {
        let (delta, more) = a.delta_for(&b.version_vector(), 400);
        assert!(!delta.is_empty());
        b.merge_delta(delta);
        rounds += 1;
        if !more {
            break;
        }
    }
    assert!(rounds > 1);
    assert_eq!(b.digest(), a.digest());
}

#[test]
fn usage_sums_every_nodes_counter() {
    let mut s = Store::default();
    s.merge(entry(0, 1, 1, 1, Some(5)));
    s.merge(entry(0, 2, 1, 1, Some(7)));
    s.merge(entry(1, 2, 1, 2, Some(100)));
    assert_eq!(s.usage(&budget(0), 1).requests, 12);
    assert_eq!(s.usage(&budget(1), 1).requests, 100);
    assert_eq!(s.usage(&budget(0), 2).requests, 0);
}

#[test]
fn a_reset_keeps_only_own_writes() {
    let mut s = Store::default();
    s.merge(entry(0, 1, 1, 1, Some(5)));
    s.merge(entry(0, 2, 1, 1, Some(7)));
    assert_eq!(s.reset_except(org(1)), vec![key(0, 2)]);
    assert_eq!(s.len(), 1);
    assert_eq!(s.version_vector().len(), 1);
}

#[test]
fn entries_whose_value_does_not_match_their_key_are_not_well_formed() {
    let mut e = entry(0, 1, 1, 1, Some(1));
    assert!(e.is_well_formed(&TestSchema));
    e.key = Key::Record(NOTES, budget(0));
    assert!(!e.is_well_formed(&TestSchema), "usage under a record key");
    e.value = Some(Value::Record(test_schema::note("hello")));
    assert!(e.is_well_formed(&TestSchema), "a note under a note key");
    e.key = Key::Record(BUDGETS, budget(0));
    assert!(!e.is_well_formed(&TestSchema), "a note under a budget key");
    e.value = None;
    assert!(
        e.is_well_formed(&TestSchema),
        "a tombstone under a valid id"
    );
}

fn budget_entry(b: u8, period_ms: u64, seq: u64, live: bool) -> Entry {
    let record = test_schema::budget(period_ms);
    Entry {
        key: Key::Record(BUDGETS, budget(b)),
        value: live.then_some(Value::Record(record)),
        hlc: Hlc {
            wall: seq,
            logical: 0,
            origin: org(9),
        },
        seq,
    }
}

fn usage_in(b: u8, period: u64, node: u64, seq: u64) -> Entry {
    Entry {
        key: Key::Usage {
            budget: budget(b),
            period,
            node: org(node),
        },
        ..entry(b, node, seq, seq, Some(1))
    }
}

#[test]
fn usage_of_past_periods_and_deleted_budgets_is_compacted() {
    const HOUR: u64 = 3_600_000;
    let mut s = Store::default();
    // Budget 0 is hourly; at 10:30 the current hour is 10.
    s.merge(budget_entry(0, HOUR, 1, true));
    for (p, seq) in [(8, 2), (9, 3), (10, 4)] {
        s.merge(usage_in(0, p, 1, seq));
    }
    // Budget 1 was deleted; budget 2 never arrived here; budget 3 never resets.
    s.merge(budget_entry(1, 24 * HOUR, 5, false));
    s.merge(usage_in(1, 0, 1, 6));
    s.merge(usage_in(2, 3, 1, 7));
    s.merge(budget_entry(3, 0, 8, true));
    s.merge(usage_in(3, 0, 1, 9));
    let mut dropped = s.compact_old_usage(10 * HOUR + HOUR / 2, &TestSchema);
    dropped.sort();
    let mut want = vec![usage_in(0, 8, 1, 0).key, usage_in(1, 0, 1, 0).key];
    want.sort();
    assert_eq!(dropped, want, "hour 8 and the deleted budget's counter");
    for kept in [
        usage_in(0, 9, 1, 0),
        usage_in(0, 10, 1, 0),
        usage_in(2, 3, 1, 0),
        usage_in(3, 0, 1, 0),
    ] {
        assert!(s.get(&kept.key).is_some(), "{:?} kept", kept.key);
    }
    // A peer replaying a dropped counter is a duplicate, not a resurrection.
    assert_eq!(s.merge(usage_in(0, 8, 1, 2)), Merge::Duplicate);
}

// ---- restoring in bulk ------------------------------------------------------------

/// What storage hands back at start-up: the latest entry per key, in key order.
fn restored(ws: &[Entry]) -> Vec<Entry> {
    let by_key: BTreeMap<Key, Entry> = ws.iter().map(|e| (e.key.clone(), e.clone())).collect();
    by_key.into_values().collect()
}

/// Writes whose (origin, seq) may repeat with different contents, which a real
/// origin never does, but a damaged or hand-edited file might.
fn writes_with_repeated_numbers() -> impl Strategy<Value = Vec<Entry>> {
    proptest::collection::vec(
        (
            0u8..3,
            1u64..4,
            0u64..50,
            1u64..6,
            proptest::option::of(0u64..9),
        ),
        0..40,
    )
    .prop_map(|ws| {
        ws.into_iter()
            .map(|(b, o, wall, seq, v)| entry(b, o, wall, seq, v))
            .collect()
    })
}

/// Everything a store exposes that merging decides.
fn everything(s: &Store) -> (Vec<Entry>, u64, VersionVector, usize, usize, Hlc) {
    let (entries, digest, vv) = state(s);
    (entries, digest, vv, s.live_count(), s.len(), s.newest())
}

proptest! {
    #[test]
    fn bulk_restore_equals_merging_one_by_one(ws in writes()) {
        let ws = restored(&ws);
        prop_assert_eq!(everything(&Store::from_entries(ws.clone())), everything(&merged(&ws)));
    }

    #[test]
    fn any_input_builds_what_merging_one_by_one_builds(
        ws in prop_oneof![writes(), writes_with_repeated_numbers()],
        sort in any::<bool>(),
    ) {
        let ws = if sort { restored(&ws) } else { ws };
        prop_assert_eq!(everything(&Store::from_entries(ws.clone())), everything(&merged(&ws)));
    }

    /// `Replica::new` against the loop it replaced: observe and merge each entry.
    #[test]
    fn a_restored_replica_is_what_restoring_one_by_one_made(
        ws in prop_oneof![writes(), writes_with_repeated_numbers()],
        sort in any::<bool>(),
        own_seq in 0u64..60,
    ) {
        use crate::state::hlc::HlcClock;
        use crate::state::replica::{Replica, StateTiming};
        let ws = if sort { restored(&ws) } else { ws };
        let me = org(1);
        let timing = StateTiming::default();
        let mut clock = HlcClock::new(me, timing.max_clock_skew);
        let mut store = Store::default();
        let mut want_seq = own_seq;
        for e in &ws {
            if e.origin() == me {
                want_seq = want_seq.max(e.seq);
            }
            let _ = clock.observe(e.hlc, e.hlc.wall);
            store.merge(e.clone());
        }
        let mut replica = Replica::new(
            me,
            test_schema::arc(),
            timing,
            ws,
            own_seq,
            crate::rng::DetRng::from_seed(7),
            crate::time::Millis::ZERO,
        );
        prop_assert_eq!(replica.own_seq(), want_seq);
        prop_assert_eq!(everything(replica.store()), everything(&store));
        // The clock: the next local write (at wall time 0, behind every restored
        // timestamp) is stamped just after the newest restored one.
        let mut out = crate::outbox::Outbox::default();
        replica.set_wall_clock(crate::time::Millis::ZERO, 0, &mut out);
        let written = replica.write(crate::time::Millis::ZERO, key(0, 1), None, &mut out);
        prop_assert_eq!(written.hlc, clock.tick(0));
        prop_assert_eq!(written.seq, want_seq + 1);
    }
}

#[test]
fn bulk_restore_of_nothing_is_empty() {
    let s = Store::from_entries(Vec::new());
    assert!(s.is_empty());
    assert_eq!(everything(&s), everything(&Store::default()));
}

/// The door: a peer's record the node's schema refuses is counted and never merged,
/// one it accepts is.
#[test]
fn a_replica_refuses_records_its_schema_refuses() {
    let me = org(1);
    let mut replica = crate::state::replica::Replica::new(
        me,
        test_schema::arc(),
        crate::state::replica::StateTiming::default(),
        Vec::new(),
        0,
        crate::rng::DetRng::from_seed(7),
        crate::time::Millis::ZERO,
    );
    let mut out = crate::outbox::Outbox::default();
    replica.set_wall_clock(crate::time::Millis::ZERO, 1_000, &mut out);
    let note = |text: &str, seq| Entry {
        key: Key::Record(NOTES, budget(0)),
        value: Some(Value::Record(test_schema::note(text))),
        hlc: Hlc {
            wall: 1_000,
            logical: seq as u32,
            origin: org(2),
        },
        seq,
    };
    let now = crate::time::Millis::ZERO;
    replica.handle_rumor(now, note("", 1), &mut out);
    assert_eq!(replica.stats().invalid_entries, 1);
    assert!(replica.store().is_empty(), "an empty note is refused");
    replica.handle_rumor(now, note("hello", 2), &mut out);
    assert_eq!(replica.stats().invalid_entries, 1);
    assert_eq!(
        replica.store().record(NOTES, &budget(0)),
        Some(&test_schema::note("hello"))
    );
}
