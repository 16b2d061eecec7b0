//! Lifeguard's local health multiplier.
//!
//! A node that misses acks may be the slow one. Each sign of local trouble (a probe
//! that failed without the expected nacks, a suspicion about ourselves we had to
//! refute) raises the score; each successful probe lowers it. Probe intervals and
//! timeouts are multiplied by `score + 1`, so an overloaded node gives its peers
//! more time instead of accusing them of its own slowness.

use core::time::Duration;

#[derive(Clone, Debug)]
pub struct Awareness {
    score: u32,
    max: u32,
}

impl Awareness {
    /// `max` is the largest multiplier; the score stays in `0..max`.
    pub fn new(max: u32) -> Awareness {
        Awareness { score: 0, max }
    }

    pub fn apply(&mut self, delta: i32) {
        let next = i64::from(self.score) + i64::from(delta);
        self.score = next.clamp(0, i64::from(self.max.saturating_sub(1))) as u32;
    }

    #[cfg(test)]
    pub fn score(&self) -> u32 {
        self.score
    }

    pub fn scale(&self, d: Duration) -> Duration {
        d * (self.score + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_is_clamped_and_scales_timeouts() {
        let mut a = Awareness::new(8);
        a.apply(-3);
        assert_eq!(a.score(), 0);
        a.apply(100);
        assert_eq!(a.score(), 7);
        assert_eq!(a.scale(Duration::from_millis(500)), Duration::from_secs(4));
        a.apply(-1);
        assert_eq!(a.score(), 6);
    }
}
