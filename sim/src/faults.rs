//! Fault plans, drawn from the seed (swarm testing).
//!
//! Rather than one fixed mix of faults, every seed draws its own: each kind of fault
//! is switched on or off with even odds and given its own severity, as TigerBeetle's
//! VOPR does. One seed gets heavy loss and no partitions, the next long asymmetric
//! partitions and crashes on a clean network. Bugs that hide behind one kind of fault
//! being always present (loss masking a timing bug, say) come out that way.

use core::time::Duration;

use aurora_core::DetRng;

use crate::net::{LinkConditions, PartitionKind};

/// The faults one seed runs with.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultProfile {
    pub link: LinkConditions,
    /// Partition shapes this seed uses; empty means none.
    pub partitions: Vec<PartitionKind>,
    /// Nodes crash (losing everything not persisted) and may restart.
    pub crashes: bool,
    /// Nodes stop for a while (a long GC pause, a stopped VM).
    pub pauses: bool,
    /// Some nodes are slow: everything to and from them takes longer.
    pub slow: bool,
    /// Largest clock drift, in parts per million, either way.
    pub drift_ppm: u32,
    /// Nodes join and leave gracefully during the run.
    pub churn: bool,
}

impl FaultProfile {
    /// No faults at all: a clean network with fixed latency.
    pub fn none() -> FaultProfile {
        FaultProfile {
            link: LinkConditions::clean(),
            partitions: Vec::new(),
            crashes: false,
            pauses: false,
            slow: false,
            drift_ppm: 0,
            churn: false,
        }
    }

    /// Draws a profile: every fault on or off with even odds, severity uniform.
    pub fn draw(rng: &mut DetRng) -> FaultProfile {
        let mut coin = [false; 10];
        coin.iter_mut().for_each(|c| *c = rng.chance(0.5));
        let [loss, dup, corrupt, jitter, parts, crashes, pauses, slow, drift, churn] = coin;
        let link = LinkConditions {
            loss: if loss { 0.3 * rng.unit() } else { 0.0 },
            duplicate: if dup { 0.3 * rng.unit() } else { 0.0 },
            corrupt: if corrupt { 0.05 * rng.unit() } else { 0.0 },
            delay_ms: 1 + rng.below(20) as u64,
            jitter_ms: if jitter { rng.below(100) as u64 } else { 1 },
        };
        let partitions = if parts {
            let all = [
                PartitionKind::Symmetric,
                PartitionKind::Asymmetric,
                PartitionKind::Partial,
                PartitionKind::Isolate,
            ];
            let k = 1 + rng.below(all.len());
            rng.sample(&all, k)
        } else {
            Vec::new()
        };
        FaultProfile {
            link,
            partitions,
            crashes,
            pauses,
            slow,
            drift_ppm: if drift { rng.below(10_000) as u32 } else { 0 },
            churn,
        }
    }

    /// A drawn profile restricted to what the false-positive check demands:
    /// loss at most 10 % and no partitions; everything else as drawn.
    pub fn draw_calm(rng: &mut DetRng) -> FaultProfile {
        let mut p = FaultProfile::draw(rng);
        p.link.loss /= 3.0;
        p.partitions.clear();
        p
    }

    /// Whether this seed is calm enough that *no* live node may ever be declared
    /// failed: loss at most 10 % and no partitions (crashes, pauses and departures
    /// are excused per node by the checker).
    pub fn expects_no_false_positives(&self) -> bool {
        self.link.loss <= 0.10 && self.partitions.is_empty()
    }

    /// A one-line summary for reports.
    pub fn describe(&self) -> String {
        let mut parts = vec![format!(
            "loss {:.1}% dup {:.1}% corrupt {:.1}% delay {}+{}ms",
            self.link.loss * 100.0,
            self.link.duplicate * 100.0,
            self.link.corrupt * 100.0,
            self.link.delay_ms,
            self.link.jitter_ms
        )];
        if !self.partitions.is_empty() {
            parts.push(format!("partitions {:?}", self.partitions));
        }
        for (on, name) in [
            (self.crashes, "crashes"),
            (self.pauses, "pauses"),
            (self.slow, "slow-nodes"),
            (self.churn, "churn"),
        ] {
            if on {
                parts.push(name.to_string());
            }
        }
        if self.drift_ppm > 0 {
            parts.push(format!("drift ±{}ppm", self.drift_ppm));
        }
        parts.join(", ")
    }
}

/// A fault action, chosen at its time from what the profile allows.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FaultKind {
    Partition(PartitionKind),
    Heal,
    Crash,
    Restart,
    Pause,
    Slow,
    Join,
    Leave,
}

/// The times at which fault actions happen during the safety phase, and what kind.
pub fn schedule(
    profile: &FaultProfile,
    safety: Duration,
    rng: &mut DetRng,
) -> Vec<(u64, FaultKind)> {
    let mut kinds: Vec<FaultKind> = profile
        .partitions
        .iter()
        .map(|&k| FaultKind::Partition(k))
        .collect();
    if !profile.partitions.is_empty() {
        kinds.push(FaultKind::Heal);
    }
    for (on, list) in [
        (profile.crashes, &[FaultKind::Crash, FaultKind::Restart][..]),
        (profile.pauses, &[FaultKind::Pause][..]),
        (profile.slow, &[FaultKind::Slow][..]),
        (profile.churn, &[FaultKind::Join, FaultKind::Leave][..]),
    ] {
        if on {
            kinds.extend_from_slice(list);
        }
    }
    let mut out = Vec::new();
    if kinds.is_empty() {
        return out;
    }
    let end = safety.as_millis() as u64;
    let mut t = 2_000 + rng.below(3_000) as u64;
    while t < end {
        out.push((t, kinds[rng.below(kinds.len())]));
        t += 2_000 + rng.below(10_000) as u64;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_vary_across_seeds() {
        let profiles: Vec<FaultProfile> = (0..64)
            .map(|s| FaultProfile::draw(&mut DetRng::from_seed(s)))
            .collect();
        assert!(profiles.iter().any(|p| p.link.loss == 0.0));
        assert!(profiles.iter().any(|p| p.link.loss > 0.1));
        assert!(profiles.iter().any(|p| p.partitions.is_empty()));
        assert!(profiles.iter().any(|p| p.partitions.len() > 1));
        assert!(profiles.iter().any(|p| p.crashes && !p.pauses));
        assert!(profiles.iter().any(|p| !p.crashes && p.pauses));
    }

    #[test]
    fn schedule_stays_inside_the_safety_phase() {
        let mut rng = DetRng::from_seed(9);
        let profile = FaultProfile {
            crashes: true,
            ..FaultProfile::none()
        };
        let s = schedule(&profile, Duration::from_secs(60), &mut rng);
        assert!(!s.is_empty());
        assert!(s.iter().all(|&(t, _)| t < 60_000));
        assert!(s.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(schedule(&FaultProfile::none(), Duration::from_secs(60), &mut rng).is_empty());
    }
}
