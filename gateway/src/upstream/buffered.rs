//! Upstream bytes held in memory across every request in flight, under
//! `gateway.limits.max_buffered_upstream_bytes`.
//!
//! Each request caps its own upstream body (`max_upstream_body_bytes`, or for a stream
//! its unfinished event), but a thousand requests each just under their cap would
//! still take the node's memory. So every request holds a [`Hold`] on the shared
//! [`Pool`], grown before bytes are kept and shrunk (or dropped) when they are gone: a
//! plain answer holds its body until the response is written to the client, a stream
//! holds its partial event. Growing never waits: when the pool is full the request
//! fails at once with 503 (a plain answer) or an SSE error event (a stream), which is
//! better than a queue that could wait on itself.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The pool is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the gateway holds {limit} bytes of upstream answers already")]
pub struct Exhausted {
    /// The pool's size, bytes.
    pub limit: u64,
}

/// Bytes held by all requests together.
#[derive(Debug)]
pub struct Pool {
    used: AtomicU64,
    limit: u64,
}

impl Pool {
    /// An empty pool of `limit` bytes.
    pub fn new(limit: u64) -> Arc<Self> {
        Arc::new(Self {
            used: AtomicU64::new(0),
            limit,
        })
    }

    /// An empty hold on the pool.
    pub fn hold(self: &Arc<Self>) -> Hold {
        Hold {
            pool: Arc::clone(self),
            held: 0,
        }
    }

    /// Bytes held now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    fn try_add(&self, n: u64) -> Result<(), Exhausted> {
        let limit = self.limit;
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|&total| total <= limit)
            })
            .map(|_| ())
            .map_err(|_| Exhausted { limit })
    }
}

/// One request's share of the pool; released on drop.
#[derive(Debug)]
pub struct Hold {
    pool: Arc<Pool>,
    held: u64,
}

impl Hold {
    /// Holds exactly `n` bytes: grows (or fails, holding what it held) or shrinks.
    pub fn resize(&mut self, n: u64) -> Result<(), Exhausted> {
        if n > self.held {
            self.pool.try_add(n - self.held)?;
        } else {
            self.pool.used.fetch_sub(self.held - n, Ordering::AcqRel);
        }
        self.held = n;
        Ok(())
    }

    /// Bytes held.
    pub fn held(&self) -> u64 {
        self.held
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.pool.used.fetch_sub(self.held, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_share_the_pool_and_release_on_drop() {
        let pool = Pool::new(100);
        let mut a = pool.hold();
        let mut b = pool.hold();
        a.resize(60).expect("fits");
        assert_eq!(b.resize(50), Err(Exhausted { limit: 100 }));
        assert_eq!(b.held(), 0);
        b.resize(40).expect("fits exactly");
        a.resize(10).expect("shrinks");
        assert_eq!(pool.used(), 50);
        drop(b);
        assert_eq!(pool.used(), 10);
        drop(a);
        assert_eq!(pool.used(), 0);
    }
}
