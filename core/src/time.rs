//! Time as the core sees it: a number handed in by the caller.
//!
//! The core never reads a clock. `Node::new` and every `handle_*` call carry a
//! [`Now`]: a reading of a monotonic millisecond clock chosen by the driver (tokio's
//! clock in production, the simulator's virtual clock in `aurora-sim`), which orders
//! timers, and of the wall clock, which stamps replicated writes. Spans are
//! `core::time::Duration`.

use core::fmt;
use core::ops::{Add, Sub};
use core::time::Duration;
use serde::{Deserialize, Serialize};

/// An instant on the driver's monotonic clock, in milliseconds from an arbitrary origin.
#[derive(Copy, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Millis(pub u64);

impl Millis {
    /// The clock's origin (what `Default` gives).
    pub const ZERO: Millis = Millis(0);

    /// The span from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Millis) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Millis {
    type Output = Millis;
    fn add(self, d: Duration) -> Millis {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Millis(self.0.saturating_add(ms))
    }
}

impl Sub<Duration> for Millis {
    type Output = Millis;
    fn sub(self, d: Duration) -> Millis {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Millis(self.0.saturating_sub(ms))
    }
}

impl fmt::Debug for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}s", self.0 / 1000, self.0 % 1000)
    }
}

/// The time of one call into the node: both clocks, read together by the driver.
///
/// Why both on every call: the wall clock may be stepped (NTP, an operator) while
/// the node runs, and timestamps of writes must follow it; carrying it with the
/// monotonic reading leaves no "tell the node the wall clock first" step to forget.
/// The node keeps the latest `wall - mono` offset, so reads between calls
/// ([`crate::NodeView::wall`]) follow the last reading.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Now {
    /// The monotonic clock: deadlines from `poll_timeout` are on this clock.
    pub mono: Millis,
    /// The wall clock, ms since the Unix epoch.
    pub wall: u64,
}

impl Now {
    /// A reading of both clocks.
    pub fn new(mono: Millis, wall: u64) -> Now {
        Now { mono, wall }
    }

    /// For the core's own tests: a wall clock that reads the monotonic one (what a
    /// node that was never told the wall clock used before `Now` existed).
    #[cfg(test)]
    pub(crate) fn at(mono: Millis) -> Now {
        Now { mono, wall: mono.0 }
    }
}

/// Multiplies a span by a non-negative factor, rounding to whole milliseconds.
pub(crate) fn scale(d: Duration, factor: f64) -> Duration {
    Duration::from_millis((d.as_millis() as f64 * factor).round().max(0.0) as u64)
}
