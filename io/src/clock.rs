//! The driver's clock: tokio's monotonic time as core [`Millis`].
//!
//! Why tokio's clock and not `std::time::Instant`: under turmoil (and tokio's paused
//! test clock) tokio time is virtual, so the same driver code runs in simulated time in
//! tests and in real time in production. The origin is the driver's start; the core only
//! compares instants, so an arbitrary origin is fine.

use std::time::Duration;

use aurora_core::{Millis, Now};
use tokio::time::Instant;

/// Converts between tokio instants and core milliseconds.
#[derive(Copy, Clone, Debug)]
pub struct Clock {
    origin: Instant,
}

impl Clock {
    /// A clock whose zero is now.
    pub fn start() -> Clock {
        Clock {
            origin: Instant::now(),
        }
    }

    /// Milliseconds since the origin, rounded down.
    pub fn now(&self) -> Millis {
        let ms = Instant::now().duration_since(self.origin).as_millis();
        Millis(u64::try_from(ms).unwrap_or(u64::MAX))
    }

    /// The wall clock, ms since the Unix epoch, for the core's hybrid logical clock
    /// (which bounds how far a skewed clock can move replicated timestamps).
    pub fn wall_ms(&self) -> u64 {
        unix_ms()
    }

    /// Both clocks, read together: what every call into the core carries, so the
    /// core's timestamps follow the wall clock when it is stepped while running.
    pub fn read(&self) -> Now {
        Now::new(self.now(), self.wall_ms())
    }

    /// The tokio instant of a core deadline. Deadlines are whole milliseconds, so a
    /// timer firing at this instant reads `now() >= at` and the core sees it as due.
    pub fn instant(&self, at: Millis) -> Instant {
        self.origin + Duration::from_millis(at.0)
    }
}

/// The wall clock, ms since the Unix epoch (0 before it): also the commit times of the
/// store's point-in-time history.
pub fn unix_ms() -> u64 {
    u64::try_from(unix_time().as_millis()).unwrap_or(u64::MAX)
}

/// The wall clock since the Unix epoch at the system clock's resolution (zero before
/// it): the one reading of the time of day in io, and the gateway's (`clock.rs`).
pub fn unix_time() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn follows_tokio_time() {
        let clock = Clock::start();
        assert_eq!(clock.now(), Millis(0));
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert_eq!(clock.now(), Millis(1500));
        assert_eq!(clock.instant(Millis(1500)), Instant::now());
    }
}
