//! Lifeguard's dynamic suspicion timeout.
//!
//! A suspicion starts with the maximum timeout and shrinks, logarithmically, with
//! every *independent* confirmation (a suspect rumour from another node), reaching
//! the minimum after `k` confirmations. A lone accuser thus waits long enough for
//! the suspect to refute, while a failure many members agree on is declared fast.
//!
//! ```text
//! timeout(c) = max(min, max − (max − min) · ln(c + 1) / ln(k + 1))
//! ```

use core::time::Duration;
use std::collections::BTreeSet;

use crate::id::NodeId;
use crate::time::Millis;

/// The timeout bounds for a cluster of `n` members (memberlist's formula).
pub fn bounds(
    suspicion_mult: u32,
    max_mult: u32,
    n: usize,
    probe_interval: Duration,
) -> (Duration, Duration) {
    let scale = (n.max(1) as f64).log10().max(1.0);
    let min = crate::time::scale(probe_interval * suspicion_mult, scale);
    (min, min * max_mult)
}

#[derive(Clone, Debug)]
pub struct Suspicion {
    start: Millis,
    min: Duration,
    max: Duration,
    /// Confirmations needed to reach `min`.
    k: u32,
    /// Who has accused the node so far (the first accuser included, but not counted).
    accusers: BTreeSet<NodeId>,
    /// The timer never fires before this: see [`Suspicion::confirm`].
    not_before: Millis,
}

impl Suspicion {
    pub fn new(start: Millis, first_accuser: NodeId, min: Duration, max: Duration, k: u32) -> Self {
        let mut accusers = BTreeSet::new();
        accusers.insert(first_accuser);
        Suspicion {
            start,
            min,
            max,
            k,
            accusers,
            not_before: start,
        }
    }

    /// Independent confirmations received so far.
    pub fn confirmations(&self) -> u32 {
        (self.accusers.len() - 1) as u32
    }

    /// Records an accusation; `true` if it is a new, independent one (worth
    /// re-gossiping, as it shortens everybody's timer).
    ///
    /// A confirmation that arrives late can shrink the timeout below the time
    /// already elapsed; Lifeguard would then fire at once, leaving the suspect no
    /// time to hear of the new accusation and refute it (the simulator found a slow
    /// node declared dead 70 ms before its refutation arrived). So the timer holds
    /// until at least `grace`, normally one probe interval after the confirmation.
    pub fn confirm(&mut self, from: NodeId, grace: Millis) -> bool {
        if self.confirmations() >= self.k || !self.accusers.insert(from) {
            return false;
        }
        self.not_before = self.not_before.max(grace.min(self.start + self.max));
        true
    }

    pub fn timeout(&self) -> Duration {
        if self.k == 0 {
            return self.min;
        }
        let c = f64::from(self.confirmations());
        let frac = (c + 1.0).ln() / (f64::from(self.k) + 1.0).ln();
        let span = self.max.saturating_sub(self.min);
        let t = self.max.saturating_sub(crate::time::scale(span, frac));
        t.max(self.min)
    }

    pub fn deadline(&self) -> Millis {
        (self.start + self.timeout()).max(self.not_before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn bounds_follow_memberlist() {
        // 5 nodes: log10(5) < 1, so min = 4 × 1 s.
        assert_eq!(bounds(4, 6, 5, ms(1000)), (ms(4000), ms(24000)));
        // 1000 nodes: log10 = 3.
        assert_eq!(bounds(4, 6, 1000, ms(1000)), (ms(12000), ms(72000)));
    }

    #[test]
    fn confirmations_shrink_the_timeout_to_the_minimum() {
        let mut s = Suspicion::new(Millis(0), NodeId(1), ms(4000), ms(24000), 2);
        assert_eq!(s.timeout(), ms(24000));
        assert!(s.confirm(NodeId(2), Millis(0)));
        let one = s.timeout();
        assert!(one < ms(24000) && one > ms(4000), "{one:?}");
        // The same accuser twice is not independent.
        assert!(!s.confirm(NodeId(2), Millis(0)));
        assert_eq!(s.timeout(), one);
        assert!(s.confirm(NodeId(3), Millis(0)));
        assert_eq!(s.timeout(), ms(4000));
        assert_eq!(s.deadline(), Millis(4000));
        // Beyond k, confirmations change nothing and are not re-gossiped.
        assert!(!s.confirm(NodeId(4), Millis(0)));
    }

    #[test]
    fn first_accuser_is_not_a_confirmation() {
        let mut s = Suspicion::new(Millis(10), NodeId(1), ms(4000), ms(24000), 2);
        assert!(!s.confirm(NodeId(1), Millis(0)));
        assert_eq!(s.confirmations(), 0);
    }

    #[test]
    fn a_late_confirmation_leaves_the_suspect_time_to_refute() {
        let mut s = Suspicion::new(Millis(0), NodeId(1), ms(4000), ms(24000), 1);
        // Confirmed at 10 s: the timeout drops to 4 s, already past.
        assert!(s.confirm(NodeId(2), Millis(11_000)));
        assert_eq!(s.timeout(), ms(4000));
        assert_eq!(s.deadline(), Millis(11_000));
        // Never beyond the maximum, however late.
        let mut s = Suspicion::new(Millis(0), NodeId(1), ms(4000), ms(24000), 1);
        assert!(s.confirm(NodeId(2), Millis(99_000)));
        assert_eq!(s.deadline(), Millis(24_000));
    }

    #[test]
    fn k_zero_means_minimum() {
        let s = Suspicion::new(Millis(0), NodeId(1), ms(4000), ms(24000), 0);
        assert_eq!(s.timeout(), ms(4000));
    }
}
