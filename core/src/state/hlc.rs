//! Hybrid logical clocks: the order of writes.
//!
//! A timestamp is (wall-clock ms, logical counter, origin: node id and storage life). It never goes
//! backwards on one node, it moves past every timestamp the node has seen, and it
//! stays close to real time, so "last writer wins" means what an operator expects:
//! the write made later wins, and two writes in the same millisecond are ordered by
//! their logical counters and then by origin, identically everywhere.
//!
//! The risk is a remote clock far in the future dragging everyone's clock along
//! (after which no local write could win for a while). So a timestamp more than
//! `max_skew` ahead of our wall clock is refused and counted, not adopted.

use core::fmt;
use core::time::Duration;

use serde::{Deserialize, Serialize};

#[cfg(test)]
use crate::id::NodeId;
use crate::id::Origin;

/// A hybrid-logical-clock timestamp. Field order is the total order.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Hlc {
    /// Wall-clock milliseconds since the Unix epoch.
    pub wall: u64,
    /// Orders writes within one wall millisecond (and while the wall clock stands still or
    /// steps back).
    pub logical: u32,
    /// Who wrote it (see [`Origin`]): the last tie-breaker.
    pub origin: Origin,
}

impl Default for Hlc {
    /// The zero timestamp, older than any write.
    fn default() -> Hlc {
        Hlc {
            wall: 0,
            logical: 0,
            origin: Origin::default(),
        }
    }
}

impl fmt::Debug for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}@{}", self.wall, self.logical, self.origin)
    }
}

/// A remote timestamp was refused.
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HlcError {
    /// Accepting it would drag this node's clock further ahead than `max_skew`
    /// (a peer with a runaway wall clock); the entry is refused, not merged.
    #[error("timestamp {ahead_ms} ms ahead of the local clock (limit {limit_ms} ms)")]
    TooFarAhead {
        /// How far ahead of the local wall clock it was.
        ahead_ms: u64,
        /// The configured bound (`max_skew`).
        limit_ms: u64,
    },
}

/// One node's clock.
#[derive(Clone, Debug)]
pub struct HlcClock {
    last: Hlc,
    max_skew: Duration,
}

impl HlcClock {
    /// A clock for `origin`'s writes that refuses remote timestamps more than `max_skew`
    /// ahead of the wall clock.
    pub fn new(origin: Origin, max_skew: Duration) -> HlcClock {
        HlcClock {
            last: Hlc {
                wall: 0,
                logical: 0,
                origin,
            },
            max_skew,
        }
    }

    /// The latest timestamp issued or observed.
    pub fn last(&self) -> Hlc {
        self.last
    }

    /// A timestamp for a local event at wall time `wall`: later than every
    /// timestamp issued or observed before, even if the wall clock went back.
    pub fn tick(&mut self, wall: u64) -> Hlc {
        let before = self.last;
        if wall > self.last.wall {
            self.last.wall = wall;
            self.last.logical = 0;
        } else if self.last.logical == u32::MAX {
            // 4 billion events in one millisecond: borrow the next millisecond.
            self.last.wall += 1;
            self.last.logical = 0;
        } else {
            self.last.logical += 1;
        }
        // Holds because each branch moves (wall, logical) up: timestamps of one
        // origin only grow, so its own writes are ordered and never tie.
        debug_assert!(self.last > before, "tick {:?} after {before:?}", self.last);
        self.last
    }

    /// Moves the clock past a remote timestamp, unless that timestamp is more than
    /// `max_skew` ahead of `wall`; then the clock is unchanged.
    pub fn observe(&mut self, remote: Hlc, wall: u64) -> Result<(), HlcError> {
        let limit = self.max_skew.as_millis() as u64;
        let ahead = remote.wall.saturating_sub(wall);
        if ahead > limit {
            return Err(HlcError::TooFarAhead {
                ahead_ms: ahead,
                limit_ms: limit,
            });
        }
        let origin = self.last.origin;
        if (remote.wall, remote.logical) > (self.last.wall, self.last.logical) {
            self.last = Hlc { origin, ..remote };
        }
        // Holds because only a later remote time is taken, and the origin is kept:
        // observing never moves this clock back or makes it another origin's.
        debug_assert_eq!(self.last.origin, origin);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(node: u64) -> Origin {
        Origin::new(NodeId(node), crate::id::Life(7))
    }

    fn clock(node: u64) -> HlcClock {
        HlcClock::new(o(node), Duration::from_secs(60))
    }

    #[test]
    fn ticks_follow_the_wall_clock() {
        let mut c = clock(1);
        let a = c.tick(1_000);
        let b = c.tick(2_000);
        assert_eq!((a.wall, a.logical), (1_000, 0));
        assert_eq!((b.wall, b.logical), (2_000, 0));
    }

    #[test]
    fn same_millisecond_writes_are_ordered_by_the_logical_counter() {
        let mut c = clock(1);
        let a = c.tick(5);
        let b = c.tick(5);
        assert!(b > a);
        assert_eq!(b.logical, 1);
    }

    #[test]
    fn a_wall_clock_jump_back_never_moves_time_back() {
        let mut c = clock(1);
        let a = c.tick(10_000);
        let b = c.tick(3_000);
        assert!(b > a);
        assert_eq!(b.wall, 10_000);
        // And a jump forward is followed.
        assert_eq!(c.tick(20_000).wall, 20_000);
    }

    #[test]
    fn same_millisecond_on_two_nodes_orders_by_node_id() {
        let mut a = clock(1);
        let mut b = clock(2);
        let ta = a.tick(7);
        let tb = b.tick(7);
        assert!(tb > ta);
        assert_ne!(ta, tb);
    }

    #[test]
    fn observing_moves_past_the_remote_timestamp() {
        let mut a = clock(1);
        let remote = Hlc {
            wall: 5_000,
            logical: 3,
            origin: o(2),
        };
        a.observe(remote, 4_000).unwrap();
        let next = a.tick(4_500);
        assert!(next > remote);
        assert_eq!(next.origin, o(1));
    }

    #[test]
    fn a_far_future_timestamp_is_refused_and_not_adopted() {
        let mut a = clock(1);
        let before = a.tick(1_000);
        let remote = Hlc {
            wall: 1_000 + 61_000,
            logical: 0,
            origin: o(2),
        };
        assert_eq!(
            a.observe(remote, 1_000),
            Err(HlcError::TooFarAhead {
                ahead_ms: 61_000,
                limit_ms: 60_000
            })
        );
        assert_eq!(a.last(), before);
    }

    #[test]
    fn logical_overflow_borrows_the_next_millisecond() {
        let mut a = clock(1);
        a.tick(9);
        a.last.logical = u32::MAX;
        let t = a.tick(9);
        assert_eq!((t.wall, t.logical), (10, 0));
    }
}
