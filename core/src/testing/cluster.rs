//! A set of hosts on one shared clock over a pluggable [`Network`]: the small
//! harness for tests that need real nodes talking but no fault schedule.

use std::collections::BTreeMap;

use crate::event::Event;
use crate::id::Addr;
use crate::node::{Node, Transmit};
use crate::time::{Millis, Now};
use crate::wire::Channel;

use super::host::{drain, Driver, Host};

/// A packet on its way: due at `at`, from `from` to `to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// When it arrives.
    pub at: Millis,
    /// The sender's address.
    pub from: Addr,
    /// The receiver's address.
    pub to: Addr,
    /// Datagram or stream.
    pub channel: Channel,
    /// The packet.
    pub bytes: Vec<u8>,
}

/// Where a [`Cluster`]'s transmits go and when they arrive.
pub trait Network {
    /// `from` sends `t` at `now`.
    fn send(&mut self, now: Millis, from: Addr, t: Transmit);
    /// Takes the earliest delivery due at or before `until`, if any.
    fn next_due(&mut self, until: Millis) -> Option<Delivery>;
}

/// Every packet arrives, in order, after a fixed delay.
#[derive(Clone, Debug, Default)]
pub struct Lossless {
    /// The one-way delay.
    pub delay_ms: u64,
    queue: BTreeMap<(Millis, u64), Delivery>,
    seq: u64,
}

impl Lossless {
    /// A network with `delay_ms` one-way delay.
    pub fn new(delay_ms: u64) -> Lossless {
        Lossless {
            delay_ms,
            ..Lossless::default()
        }
    }
}

impl Network for Lossless {
    fn send(&mut self, now: Millis, from: Addr, t: Transmit) {
        let at = Millis(now.0 + self.delay_ms);
        self.seq += 1;
        let d = Delivery {
            at,
            from,
            to: t.to,
            channel: t.channel,
            bytes: t.bytes,
        };
        self.queue.insert((at, self.seq), d);
    }

    fn next_due(&mut self, until: Millis) -> Option<Delivery> {
        let (&key, _) = self.queue.first_key_value()?;
        if key.0 > until {
            return None;
        }
        self.queue.remove(&key)
    }
}

/// Hosts at fixed addresses on one clock, over network `N`.
pub struct Cluster<N: Network> {
    /// The hosts, by index.
    pub hosts: Vec<Host>,
    /// Each host's address.
    pub addrs: Vec<Addr>,
    /// The network.
    pub net: N,
    /// The shared clock.
    pub now: Millis,
    /// The shared wall clock is `now + wall_offset` (ms since the Unix epoch);
    /// 0 unless a test sets it: the wall clock then reads the monotonic one.
    pub wall_offset: u64,
    /// Every event, with the index of the host that reported it.
    pub events: Vec<(usize, Event)>,
}

impl<N: Network> Driver for Cluster<N> {
    fn host(&mut self, i: usize) -> &mut Host {
        &mut self.hosts[i]
    }

    fn transmit(&mut self, i: usize, t: Transmit) {
        self.net.send(self.now, self.addrs[i], t);
    }

    fn event(&mut self, i: usize, e: Event) {
        self.events.push((i, e));
    }
}

impl<N: Network> Cluster<N> {
    /// A cluster of no hosts yet, at time `now`.
    pub fn new(net: N, now: Millis) -> Cluster<N> {
        Cluster {
            hosts: Vec::new(),
            addrs: Vec::new(),
            net,
            now,
            wall_offset: 0,
            events: Vec::new(),
        }
    }

    /// Adds `host` at `addr`; returns its index.
    pub fn add(&mut self, host: Host, addr: Addr) -> usize {
        self.hosts.push(host);
        self.addrs.push(addr);
        self.hosts.len() - 1
    }

    /// Both clocks now, as every call into a node carries them.
    pub fn clock(&self) -> Now {
        Now::new(self.now, self.now.0.saturating_add(self.wall_offset))
    }

    /// Runs `f` on host `i`'s node now, then drains it. Does nothing while it is down.
    pub fn with_node<T>(&mut self, i: usize, f: impl FnOnce(&mut Node, Now) -> T) -> Option<T> {
        let now = self.clock();
        let out = f(self.hosts[i].node.as_mut()?, now);
        drain(self, i);
        Some(out)
    }

    /// The earliest timer of a running node.
    fn next_timer(&self) -> Option<(Millis, usize)> {
        self.hosts
            .iter()
            .enumerate()
            .filter_map(|(i, h)| Some((h.node.as_ref()?.poll_timeout()?, i)))
            .min()
    }

    /// Delivers packets and fires timers in time order up to `until`.
    pub fn run_until(&mut self, until: Millis) {
        loop {
            let timer = self.next_timer().filter(|&(t, _)| t <= until);
            let due = timer.map_or(until, |(t, _)| t);
            if let Some(d) = self.net.next_due(due) {
                self.now = self.now.max(d.at);
                let Some(to) = self.addrs.iter().position(|&a| a == d.to) else {
                    continue;
                };
                self.with_node(to, |node, now| match d.channel {
                    Channel::Datagram => node.handle_datagram(now, d.from, &d.bytes),
                    Channel::Stream => node.handle_stream(now, d.from, &d.bytes),
                });
                continue;
            }
            let Some((t, i)) = timer else {
                break;
            };
            self.now = self.now.max(t);
            self.with_node(i, |node, now| node.handle_timeout(now));
        }
        self.now = self.now.max(until);
    }
}
