//! Sets of sequence numbers as disjoint ranges: the "version vector with gaps".
//!
//! Every write an origin makes gets the next sequence number of that origin. A node
//! records, per origin, which numbers it has applied (or learnt were superseded).
//! Usually that is one range `1..=n`; messages lost or reordered leave gaps until
//! anti-entropy fills them. Comparing two nodes' sets tells exactly which writes one
//! lacks, so a sync sends only those.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// An inclusive range of sequence numbers.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SeqRange {
    /// The first number in the range.
    pub start: u64,
    /// The last number in the range (inclusive; `start > end` is empty).
    pub end: u64,
}

/// A set of sequence numbers, kept as disjoint, non-adjacent ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeqSet {
    /// start → end (inclusive). Invariant: ranges are disjoint and not adjacent.
    ranges: BTreeMap<u64, u64>,
}

impl SeqSet {
    /// The empty set.
    pub fn new() -> SeqSet {
        SeqSet::default()
    }

    /// The union of `ranges` (in any order; overlapping and empty ones allowed).
    pub fn from_ranges(ranges: &[SeqRange]) -> SeqSet {
        let mut s = SeqSet::new();
        for r in ranges {
            s.insert_range(*r);
        }
        s
    }

    /// The set of `seqs`, in any order and with repeats: one sort, then one pass
    /// (the ranges come out in order, so the map is built in bulk). Start-up uses
    /// it to restore an origin's numbers without an insert per number.
    pub fn from_seqs(mut seqs: Vec<u64>) -> SeqSet {
        seqs.sort_unstable();
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for seq in seqs {
            match ranges.last_mut() {
                // Sorted, so `seq >= start`: it extends the last range or repeats it.
                Some((_, end)) if seq <= end.saturating_add(1) => *end = (*end).max(seq),
                _ => ranges.push((seq, seq)),
            }
        }
        SeqSet {
            ranges: ranges.into_iter().collect(),
        }
    }

    /// Whether `seq` is in the set.
    pub fn contains(&self, seq: u64) -> bool {
        self.ranges
            .range(..=seq)
            .next_back()
            .is_some_and(|(_, &end)| seq <= end)
    }

    /// Adds `seq`; `true` if it was not there.
    pub fn insert(&mut self, seq: u64) -> bool {
        // The common case by far: the next number of an origin we are level with.
        if let Some((&start, end)) = self.ranges.iter_mut().next_back() {
            if seq == end.saturating_add(1) {
                *end = seq;
                return true;
            }
            if (start..=*end).contains(&seq) {
                return false;
            }
        }
        if self.contains(seq) {
            return false;
        }
        self.insert_range(SeqRange {
            start: seq,
            end: seq,
        });
        true
    }

    /// Adds every number of `r`, merging with ranges it overlaps or touches; an empty `r`
    /// is ignored.
    pub fn insert_range(&mut self, r: SeqRange) {
        if r.start > r.end {
            return;
        }
        let (mut start, mut end) = (r.start, r.end);
        // Merge with every range that overlaps or touches [start, end].
        let touching: Vec<(u64, u64)> = self
            .ranges
            .range(..=end.saturating_add(1))
            .rev()
            .take_while(|(_, &e)| e.saturating_add(1) >= start)
            .map(|(&s, &e)| (s, e))
            .collect();
        for (s, e) in touching {
            self.ranges.remove(&s);
            start = start.min(s);
            end = end.max(e);
        }
        self.ranges.insert(start, end);
    }

    /// The highest number in the set.
    pub fn max(&self) -> Option<u64> {
        self.ranges.values().next_back().copied()
    }

    /// How many numbers the set holds.
    pub fn count(&self) -> u64 {
        self.ranges.iter().map(|(s, e)| e - s + 1).sum()
    }

    /// The ranges, in order: disjoint and not adjacent (the shortest form of the set).
    pub fn ranges(&self) -> impl Iterator<Item = SeqRange> + '_ {
        self.ranges
            .iter()
            .map(|(&start, &end)| SeqRange { start, end })
    }

    /// The numbers in `self` that `other` lacks, as ranges.
    pub fn minus(&self, other: &SeqSet) -> Vec<SeqRange> {
        let mut out = Vec::new();
        for r in self.ranges() {
            let mut cursor = r.start;
            let overlapping = other.ranges.range(..=r.end).filter(|(_, &e)| e >= r.start);
            for (&s, &e) in overlapping {
                if s > cursor {
                    out.push(SeqRange {
                        start: cursor,
                        end: s - 1,
                    });
                }
                cursor = cursor.max(e.saturating_add(1));
                if cursor > r.end {
                    break;
                }
            }
            if cursor <= r.end {
                out.push(SeqRange {
                    start: cursor,
                    end: r.end,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn r(start: u64, end: u64) -> SeqRange {
        SeqRange { start, end }
    }

    #[test]
    fn inserts_merge_adjacent_and_overlapping_ranges() {
        let mut s = SeqSet::new();
        assert!(s.insert(1));
        assert!(s.insert(3));
        assert!(!s.insert(3));
        assert_eq!(s.ranges().collect::<Vec<_>>(), vec![r(1, 1), r(3, 3)]);
        s.insert(2);
        assert_eq!(s.ranges().collect::<Vec<_>>(), vec![r(1, 3)]);
        s.insert_range(r(10, 20));
        s.insert_range(r(4, 9));
        assert_eq!(s.ranges().collect::<Vec<_>>(), vec![r(1, 20)]);
        assert_eq!(s.count(), 20);
        assert_eq!(s.max(), Some(20));
    }

    #[test]
    fn minus_finds_gaps_and_tails() {
        let a = SeqSet::from_ranges(&[r(1, 10)]);
        let b = SeqSet::from_ranges(&[r(1, 3), r(6, 7)]);
        assert_eq!(a.minus(&b), vec![r(4, 5), r(8, 10)]);
        assert!(b.minus(&a).is_empty());
        assert_eq!(a.minus(&SeqSet::new()), vec![r(1, 10)]);
    }

    proptest! {
        #[test]
        fn behaves_like_a_set(xs in proptest::collection::vec(0u64..200, 0..100),
                              ys in proptest::collection::vec(0u64..200, 0..100)) {
            let mut a = SeqSet::new();
            let mut b = SeqSet::new();
            let sa: BTreeSet<u64> = xs.iter().copied().collect();
            let sb: BTreeSet<u64> = ys.iter().copied().collect();
            for &x in &xs { a.insert(x); }
            for &y in &ys { b.insert(y); }
            prop_assert_eq!(a.count(), sa.len() as u64);
            for x in 0..200 { prop_assert_eq!(a.contains(x), sa.contains(&x)); }
            let diff: BTreeSet<u64> = a.minus(&b).iter().flat_map(|r| r.start..=r.end).collect();
            let expected: BTreeSet<u64> = sa.difference(&sb).copied().collect();
            prop_assert_eq!(diff, expected);
            // Ranges stay disjoint and non-adjacent.
            let rs: Vec<SeqRange> = a.ranges().collect();
            for w in rs.windows(2) { prop_assert!(w[0].end + 1 < w[1].start); }
        }

        #[test]
        fn from_seqs_equals_inserting_one_by_one(
            xs in proptest::collection::vec(
                prop_oneof![0u64..200, Just(u64::MAX), Just(u64::MAX - 1), Just(0)], 0..100)
        ) {
            let mut one_by_one = SeqSet::new();
            for &x in &xs { one_by_one.insert(x); }
            prop_assert_eq!(SeqSet::from_seqs(xs), one_by_one);
        }
    }
}
