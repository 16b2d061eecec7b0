//! The simulated network.
//!
//! It must scale to thousands of nodes on one core, so it keeps nothing per pair of
//! nodes: a message's fate is drawn from the link conditions when it is sent, and
//! partitions are expressed over *groups* (one byte per node plus a short list of
//! blocked group pairs). A symmetric split blocks both directions between groups, an
//! asymmetric one a single direction, a partial one only some pairs of groups
//! (A cannot reach B, but both reach C).

use aurora_core::Channel;
use aurora_core::DetRng;

/// Conditions that apply to every message.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkConditions {
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Probability that a datagram is delivered twice.
    pub duplicate: f64,
    /// Probability that a datagram arrives with a corrupted byte.
    pub corrupt: f64,
    /// One-way latency.
    pub delay_ms: u64,
    /// Uniform extra latency in `0..=jitter_ms`; jitter larger than the gap between
    /// two messages reorders them.
    pub jitter_ms: u64,
}

impl LinkConditions {
    /// A clean LAN: 1 ms one way, no faults.
    pub fn clean() -> LinkConditions {
        LinkConditions {
            loss: 0.0,
            duplicate: 0.0,
            corrupt: 0.0,
            delay_ms: 1,
            jitter_ms: 1,
        }
    }
}

/// Partition state over groups of nodes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Partitions {
    group: Vec<u8>,
    /// Directed (from group, to group) pairs that cannot talk.
    blocked: Vec<(u8, u8)>,
}

/// The shape of a partition, for traces and fault plans.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PartitionKind {
    /// Every group cut off from every other, both ways.
    Symmetric,
    /// Group 0 cannot send to group 1; the reverse works.
    Asymmetric,
    /// Groups 0 and 1 cannot talk, both reach group 2.
    Partial,
    /// One node alone, both ways.
    Isolate,
}

impl Partitions {
    pub fn new(nodes: usize) -> Partitions {
        Partitions {
            group: vec![0; nodes],
            blocked: Vec::new(),
        }
    }

    pub fn grow(&mut self, nodes: usize) {
        self.group.resize(nodes, 0);
    }

    pub fn is_partitioned(&self) -> bool {
        !self.blocked.is_empty()
    }

    pub fn heal(&mut self) {
        self.blocked.clear();
        self.group.iter_mut().for_each(|g| *g = 0);
    }

    /// Splits `members` (node indices) into groups by `kind`, drawing from `rng`.
    pub fn split(&mut self, kind: PartitionKind, members: &[usize], rng: &mut DetRng) {
        self.heal();
        if members.len() < 2 {
            return;
        }
        let groups: u8 = match kind {
            PartitionKind::Symmetric => 2 + rng.below(2) as u8,
            PartitionKind::Asymmetric => 2,
            PartitionKind::Partial => 3,
            PartitionKind::Isolate => 2,
        };
        if kind == PartitionKind::Isolate {
            let lone = members[rng.below(members.len())];
            self.group[lone] = 1;
        } else {
            for &m in members {
                self.group[m] = rng.below(usize::from(groups)) as u8;
            }
        }
        self.blocked = match kind {
            PartitionKind::Symmetric | PartitionKind::Isolate => (0..groups)
                .flat_map(|a| (0..groups).filter(move |&b| b != a).map(move |b| (a, b)))
                .collect(),
            PartitionKind::Asymmetric => vec![(0, 1)],
            PartitionKind::Partial => vec![(0, 1), (1, 0)],
        };
    }

    /// Cuts `side` off from everyone else, both ways.
    pub fn split_off(&mut self, side: &[usize]) {
        self.heal();
        for &i in side {
            self.group[i] = 1;
        }
        self.blocked = vec![(0, 1), (1, 0)];
    }

    pub fn allows(&self, from: usize, to: usize) -> bool {
        if self.blocked.is_empty() {
            return true;
        }
        let pair = (self.group[from], self.group[to]);
        !self.blocked.contains(&pair)
    }
}

/// What happens to one message.
#[derive(Clone, Debug, PartialEq)]
pub enum Fate {
    Dropped,
    /// Delivered after each of these delays (two entries when duplicated), with a
    /// byte corrupted when `corrupt` says so.
    Delivered {
        delays: Vec<u64>,
        corrupt: bool,
    },
}

/// Draws the fate of a message. Streams are reliable (QUIC retransmits and
/// authenticates them), so only partitions stop them; datagrams suffer everything.
pub fn fate(
    link: &LinkConditions,
    channel: Channel,
    extra_delay_ms: u64,
    rng: &mut DetRng,
) -> Fate {
    let delay = |rng: &mut DetRng| link.delay_ms + extra_delay_ms + rng_jitter(link.jitter_ms, rng);
    if channel == Channel::Stream {
        return Fate::Delivered {
            delays: vec![delay(rng)],
            corrupt: false,
        };
    }
    if rng.chance(link.loss) {
        return Fate::Dropped;
    }
    let mut delays = vec![delay(rng)];
    if rng.chance(link.duplicate) {
        delays.push(delay(rng));
    }
    let corrupt = rng.chance(link.corrupt);
    Fate::Delivered { delays, corrupt }
}

fn rng_jitter(jitter_ms: u64, rng: &mut DetRng) -> u64 {
    if jitter_ms == 0 {
        0
    } else {
        rng.below(jitter_ms as usize + 1) as u64
    }
}

/// Flips one random bit of one random byte.
pub fn corrupt(bytes: &mut [u8], rng: &mut DetRng) {
    if bytes.is_empty() {
        return;
    }
    let i = rng.below(bytes.len());
    bytes[i] ^= 1 << rng.below(8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asymmetric_blocks_one_direction() {
        let mut p = Partitions::new(4);
        let mut rng = DetRng::from_seed(1);
        p.split(PartitionKind::Asymmetric, &[0, 1, 2, 3], &mut rng);
        for a in 0..4 {
            for b in 0..4 {
                let (ga, gb) = (p.group[a], p.group[b]);
                assert_eq!(p.allows(a, b), !(ga == 0 && gb == 1));
            }
        }
        p.heal();
        assert!(p.allows(0, 1) && !p.is_partitioned());
    }

    #[test]
    fn partial_keeps_the_bridge_group_connected() {
        let mut p = Partitions::new(30);
        let mut rng = DetRng::from_seed(2);
        let all: Vec<usize> = (0..30).collect();
        p.split(PartitionKind::Partial, &all, &mut rng);
        for a in 0..30 {
            for b in 0..30 {
                if p.group[a] == 2 || p.group[b] == 2 {
                    assert!(p.allows(a, b));
                }
            }
        }
    }

    #[test]
    fn isolate_cuts_exactly_one_node() {
        let mut p = Partitions::new(5);
        let mut rng = DetRng::from_seed(3);
        p.split(PartitionKind::Isolate, &[0, 1, 2, 3, 4], &mut rng);
        let lone: Vec<usize> = (0..5).filter(|&i| p.group[i] == 1).collect();
        assert_eq!(lone.len(), 1);
        for i in 0..5 {
            assert_eq!(p.allows(lone[0], i), i == lone[0]);
        }
    }

    #[test]
    fn streams_are_never_lost() {
        let link = LinkConditions {
            loss: 1.0,
            ..LinkConditions::clean()
        };
        let mut rng = DetRng::from_seed(4);
        assert!(matches!(
            fate(&link, Channel::Stream, 0, &mut rng),
            Fate::Delivered { .. }
        ));
        assert_eq!(fate(&link, Channel::Datagram, 0, &mut rng), Fate::Dropped);
    }
}
