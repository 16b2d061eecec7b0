//! Seeded randomness for protocol choices.
//!
//! All randomness in the core comes from one `ChaCha8Rng` seeded by the caller:
//! `rand_chacha` promises a stable stream across versions, which `StdRng` does not,
//! so a seed recorded today replays the same run tomorrow. The helpers here are our
//! own for the same reason: their output is fixed by this file, not by a library.

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

/// The core's random source.
#[derive(Clone, Debug)]
pub struct DetRng(ChaCha8Rng);

impl DetRng {
    /// The stream for `seed`: the same seed gives the same numbers on every build and
    /// platform.
    pub fn from_seed(seed: u64) -> DetRng {
        DetRng(ChaCha8Rng::seed_from_u64(seed))
    }

    /// The next 64 random bits of the stream.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// A uniform integer in `0..n` (`n > 0`), by Lemire's multiply-shift; the bias
    /// is below 2^-32 for the sizes used here.
    pub fn below(&mut self, n: usize) -> usize {
        debug_assert!(n > 0);
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// A uniform float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }

    /// Up to `k` distinct items of `items`, in random order.
    pub fn sample<T: Copy>(&mut self, items: &[T], k: usize) -> Vec<T> {
        let mut pool = items.to_vec();
        let k = k.min(pool.len());
        for i in 0..k {
            let j = i + self.below(pool.len() - i);
            pool.swap(i, j);
        }
        pool.truncate(k);
        pool
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let mut a = DetRng::from_seed(7);
        let mut b = DetRng::from_seed(7);
        let xs: Vec<u64> = (0..16).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..16).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
    }

    #[test]
    fn sample_is_distinct_and_bounded() {
        let mut r = DetRng::from_seed(1);
        let items: Vec<u32> = (0..10).collect();
        for k in 0..12 {
            let mut s = r.sample(&items, k);
            assert_eq!(s.len(), k.min(10));
            s.sort_unstable();
            s.dedup();
            assert_eq!(s.len(), k.min(10));
        }
    }

    #[test]
    fn below_stays_in_range() {
        let mut r = DetRng::from_seed(3);
        for n in 1..50 {
            for _ in 0..50 {
                assert!(r.below(n) < n);
            }
        }
    }
}
