//! The CRDT laws of `aurora_core::state::store::Store` on writes made the way a
//! real cluster makes them (format in `src/lib.rs`, [`aurora_fuzz::merge_entries`]):
//! a few keys so writes collide, a few origins with their own hybrid logical
//! clocks, some tombstones, some usage counters.
//!
//! Checks:
//! - each key ends up holding the write with the highest timestamp (a model of
//!   last-writer-wins computed independently of the store);
//! - merging in input order, in an order derived from the input, and in reverse
//!   gives the same `entries()`, `digest()`, `version_vector()`, `live_count()`
//!   and `newest()` (commutativity);
//! - merging everything again reports `Duplicate` and changes nothing
//!   (idempotence);
//! - the digest equals the digest of a fresh store fed the final `entries()`;
//! - three stores that each merged part of the writes, synced pairwise with
//!   `delta_for` / `merge_delta` in small chunks (looping while `more`), along a
//!   chain 0↔1, 1↔2, 0↔1, all end equal to the store that merged everything
//!   (associativity, and that a delta really carries what the peer lacks), with
//!   `ahead_of` / `behind` 0 both ways;
//! - every chunk stays within its budget unless it holds a single entry, and a
//!   pull that reports no `more` leaves nothing behind.

#![no_main]

use std::collections::BTreeMap;

use aurora_core::state::store::{Entry, Key, Merge, Store};
use aurora_core::wire::encoded_len;
use aurora_fuzz::merge_entries;
use libfuzzer_sys::fuzz_target;

/// Everything observable about a store, for comparing two of them.
#[derive(Debug, PartialEq)]
struct Snapshot {
    entries: Vec<Entry>,
    digest: u64,
    vv: aurora_core::state::store::VersionVector,
    live: usize,
    len: usize,
    newest: aurora_core::Hlc,
}

fn snapshot(s: &Store) -> Snapshot {
    Snapshot {
        entries: s.entries().cloned().collect(),
        digest: s.digest(),
        vv: s.version_vector(),
        live: s.live_count(),
        len: s.len(),
        newest: s.newest(),
    }
}

fn merged<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> Store {
    let mut s = Store::default();
    for e in entries {
        s.merge(e.clone());
    }
    s
}

/// Pulls into `dst` what `src` has and `dst` lacks, one chunk at a time, as
/// anti-entropy does (`SyncRequest` → `SyncResponse { more }` → again).
fn pull(dst: &mut Store, src: &Store, budget: usize, total_entries: usize) {
    // Each chunk but the last carries at least one entry, so this bounds the loop.
    for _ in 0..=total_entries + 1 {
        let (delta, more) = src.delta_for(&dst.version_vector(), budget);
        if delta.entries.len() > 1 {
            let bytes: usize = delta.entries.iter().map(encoded_len).sum();
            assert!(
                bytes <= budget,
                "a chunk of {} entries holds {bytes} B, over its {budget} B budget",
                delta.entries.len()
            );
        }
        if more {
            assert!(!delta.entries.is_empty(), "`more` with an empty chunk");
        }
        dst.merge_delta(delta);
        if !more {
            assert_eq!(
                dst.behind(&src.version_vector()),
                0,
                "a pull that reported no `more` left writes behind"
            );
            assert_eq!(src.ahead_of(&dst.version_vector()), 0);
            return;
        }
    }
    panic!("sync did not finish in {} chunks", total_entries + 2);
}

/// Syncs two stores both ways, as one anti-entropy round does.
fn sync(a: &mut Store, b: &mut Store, budget: usize, total: usize) {
    pull(a, b, budget, total);
    pull(b, a, budget, total);
}

fuzz_target!(|data: &[u8]| {
    let input = merge_entries(data);
    let entries = &input.entries;
    let n = entries.len();

    // The model: per key, the write with the highest timestamp.
    let mut model: BTreeMap<Key, Entry> = BTreeMap::new();
    for e in entries {
        match model.get(&e.key) {
            Some(cur) if cur.hlc >= e.hlc => {}
            _ => {
                model.insert(e.key.clone(), e.clone());
            }
        }
    }

    let all = merged(entries);
    let expected = snapshot(&all);
    assert_eq!(
        expected.entries,
        model.values().cloned().collect::<Vec<_>>(),
        "the store does not hold the newest write of every key"
    );
    assert_eq!(
        expected.live,
        model.values().filter(|e| e.value.is_some()).count()
    );

    // Commutativity: two more orders.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (input.rank[i], i));
    let by_rank = merged(order.iter().map(|&i| &entries[i]));
    assert_eq!(snapshot(&by_rank), expected, "order by rank: {order:?}");
    let reversed = merged(entries.iter().rev());
    assert_eq!(snapshot(&reversed), expected, "reverse order");

    // Idempotence: everything again is a duplicate and changes nothing.
    let mut twice = by_rank;
    for e in entries {
        assert_eq!(twice.merge(e.clone()), Merge::Duplicate, "{e:?}");
    }
    assert_eq!(snapshot(&twice), expected, "merged twice");

    // The incremental digest matches one computed from scratch.
    let fresh = merged(all.entries());
    assert_eq!(
        fresh.digest(),
        all.digest(),
        "digest drifted from the registers"
    );
    assert_eq!(fresh.live_count(), all.live_count());

    // Three partial stores, synced along a chain.
    let mut parts: [Store; 3] = Default::default();
    for (e, &g) in entries.iter().zip(&input.group) {
        parts[usize::from(g)].merge(e.clone());
    }
    let budget = input.chunk_budget;
    let [p0, p1, p2] = &mut parts;
    sync(p0, p1, budget, n);
    sync(p1, p2, budget, n);
    sync(p0, p1, budget, n);
    for (i, p) in parts.iter().enumerate() {
        let got = snapshot(p);
        assert_eq!(got, expected, "store {i} after sync (budget {budget})");
        let vv = all.version_vector();
        assert_eq!(p.ahead_of(&vv), 0, "store {i} ahead after sync");
        assert_eq!(p.behind(&vv), 0, "store {i} behind after sync");
        assert_eq!(all.ahead_of(&got.vv), 0);
        assert_eq!(all.behind(&got.vv), 0);
    }
});
