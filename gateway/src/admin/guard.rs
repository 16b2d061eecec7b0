//! Failed admin logins, counted and limited per client IP.
//!
//! The admin token opens everything (keys, providers, the cluster), so guessing it
//! online must be slow: after [`MAX_FAILURES`] wrong tokens from one IP
//! within [`WINDOW`], every admin request from that IP gets 429 with `Retry-After`
//! until the window that began with its first failure is over, whether or not the
//! token is right (otherwise the 429 would not slow the guessing down). Success
//! clears the IP's count.
//!
//! Memory is bounded: at most [`MAX_TRACKED`] IPs are tracked. When the table is
//! full, expired windows are dropped first, then the IP whose window began first, so
//! a flood from many addresses costs a fixed amount of memory (and each of those
//! addresses still gets only its own [`MAX_FAILURES`] guesses per window before it
//! is refused).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Failed logins allowed per IP per window.
pub const MAX_FAILURES: u32 = 10;
/// The window failures are counted in.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Most IPs tracked at once.
pub const MAX_TRACKED: usize = 4096;

#[derive(Clone, Copy, Debug)]
struct Failures {
    since: Instant,
    count: u32,
}

/// The per-IP failure table.
#[derive(Debug, Default)]
pub struct LoginGuard {
    table: Mutex<HashMap<IpAddr, Failures>>,
}

impl LoginGuard {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, Failures>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Err(seconds)` while `ip` has used up its failures: answer 429 with that
    /// `Retry-After` without looking at the token.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        let table = self.lock();
        match table.get(&ip) {
            Some(f) if f.count >= MAX_FAILURES => {
                let over = f.since + WINDOW;
                if now >= over {
                    Ok(())
                } else {
                    Err(over.duration_since(now).as_secs().max(1))
                }
            }
            _ => Ok(()),
        }
    }

    /// Counts one failed login from `ip`.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let mut table = self.lock();
        if let Some(f) = table.get_mut(&ip) {
            if now.saturating_duration_since(f.since) >= WINDOW {
                *f = Failures {
                    since: now,
                    count: 1,
                };
            } else {
                f.count = f.count.saturating_add(1);
            }
            return;
        }
        if table.len() >= MAX_TRACKED {
            table.retain(|_, f| now.saturating_duration_since(f.since) < WINDOW);
        }
        if table.len() >= MAX_TRACKED {
            if let Some(oldest) = table.iter().min_by_key(|(_, f)| f.since).map(|(ip, _)| *ip) {
                table.remove(&oldest);
            }
        }
        table.insert(
            ip,
            Failures {
                since: now,
                count: 1,
            },
        );
    }

    /// A successful login from `ip` clears its count.
    pub fn succeeded(&self, ip: IpAddr) {
        let mut table = self.lock();
        if !table.is_empty() {
            table.remove(&ip);
        }
    }

    /// IPs tracked now.
    pub fn tracked(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_out_after_max_failures_until_the_window_ends() {
        let guard = LoginGuard::new();
        let ip: IpAddr = "10.0.0.1".parse().expect("ip");
        let other: IpAddr = "10.0.0.2".parse().expect("ip");
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES {
            assert_eq!(guard.check(ip, t0), Ok(()));
            guard.failed(ip, t0);
        }
        let retry = guard
            .check(ip, t0 + Duration::from_secs(1))
            .expect_err("locked");
        assert!((58..=59).contains(&retry), "{retry}");
        assert_eq!(guard.check(other, t0), Ok(()), "per IP");
        assert_eq!(guard.check(ip, t0 + WINDOW), Ok(()), "the window ends");
        guard.failed(ip, t0 + WINDOW);
        assert_eq!(guard.check(ip, t0 + WINDOW), Ok(()), "a new window");
        guard.succeeded(ip);
        assert_eq!(guard.tracked(), 0);
    }

    #[test]
    fn the_table_is_bounded() {
        let guard = LoginGuard::new();
        let t0 = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 100) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            guard.failed(ip, t0 + Duration::from_millis(u64::from(i)));
        }
        assert_eq!(guard.tracked(), MAX_TRACKED);
    }
}
