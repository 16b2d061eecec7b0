//! The faulty network between nodes (addresses, partitions, loss, delay, duplication,
//! corruption) and the world as the harness's driver that sends through it.

use super::*;

/// The simulated address of node `i` in its `generation` (a restart on a new
/// address bumps it). Loopback-range values: they never reach a socket.
pub fn sim_addr(i: usize, generation: u8) -> Addr {
    let ip = Ipv4Addr::new(
        127,
        generation.wrapping_add(1),
        (i >> 8) as u8,
        (i & 0xff) as u8,
    );
    SocketAddr::new(IpAddr::V4(ip), 7946)
}

/// The world as the harness's driver: its faulty network carries the transmits, its
/// observers see the events and commits.
impl Driver for World {
    fn host(&mut self, i: usize) -> &mut Host {
        &mut self.nodes[i].host
    }

    fn transmit(&mut self, i: usize, t: Transmit) {
        let bytes = match self.params.mutation {
            Some(m) => mutate(m, self.cluster, self.nodes[i].id, t.channel, t.bytes),
            None => t.bytes,
        };
        self.send(i, t.to, t.channel, bytes);
    }

    fn event(&mut self, i: usize, e: Event) {
        self.on_event(i, e);
    }

    fn committed(&mut self, i: usize, batch: &PersistBatch) {
        if self.params.track_writes {
            self.obs.persisted(i, batch, self.now);
        }
    }
}

impl World {
    pub(super) fn send(&mut self, from: usize, to: Addr, channel: Channel, mut bytes: Vec<u8>) {
        let Some(&dest) = self.by_addr.get(&to) else {
            return;
        };
        if self.nodes[dest].addr != to || !self.partitions.allows(from, dest) {
            return;
        }
        let extra = self.nodes[from].slow_ms + self.nodes[dest].slow_ms;
        let from_addr = self.nodes[from].addr;
        match net::fate(&self.link, channel, extra, &mut self.rng) {
            Fate::Dropped => {}
            Fate::Delivered { delays, corrupt } => {
                for (k, &d) in delays.iter().enumerate() {
                    let mut b = if k + 1 < delays.len() {
                        bytes.clone()
                    } else {
                        std::mem::take(&mut bytes)
                    };
                    if corrupt {
                        net::corrupt(&mut b, &mut self.rng);
                    }
                    let at = self.now + Duration::from_millis(d);
                    self.push(
                        at,
                        Ev::Deliver {
                            to: dest,
                            from: from_addr,
                            channel,
                            bytes: b,
                        },
                    );
                }
            }
        }
    }
}
