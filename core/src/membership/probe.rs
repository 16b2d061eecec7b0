//! Probing: SWIM's failure detector. Every probe interval the next member of a
//! shuffled round-robin list (fresh suspects first) is pinged; no ack within the
//! probe timeout and `indirect_checks` other members are asked to ping it; no ack
//! by the end of the interval and it is suspected. Lifeguard's parts live here too:
//! relays nack, a prober's own health score moves with what came back, and a
//! suspect's ping carries its suspicion (the buddy system). This node also relays
//! probes for others.

use super::member::Member;
use super::{Membership, Timer};
use crate::id::{Addr, NodeId};
use crate::outbox::Outbox;
use crate::time::Millis;
use crate::wire::{encoded_len, Channel, Liveness, MemberUpdate, Message, Rumor, Seq};

/// Relays nack after this fraction of the probe timeout, as memberlist does.
const NACK_FRACTION: f64 = 0.8;

/// The probe in flight.
#[derive(Clone, Debug)]
pub(super) struct Probe {
    seq: Seq,
    /// Read by the membership tests, to answer the probe in flight.
    pub(super) target: NodeId,
    acked: bool,
    expected_nacks: u32,
    nacks: u32,
}

/// A probe this node makes on another's behalf (it received a `PingReq`).
#[derive(Clone, Debug)]
pub(super) struct Relay {
    requester: Addr,
    requester_seq: Seq,
}

impl Membership {
    pub(super) fn start_probe(&mut self, now: Millis, out: &mut Outbox) {
        let Some(target) = self.next_probe_target() else {
            return;
        };
        let member = &self.members[&target];
        let (addr, liveness, incarnation) = (member.addr, member.liveness, member.incarnation);
        let seq = self.next_seq();
        self.stats.probes += 1;
        self.probe = Some(Probe {
            seq,
            target,
            acked: false,
            expected_nacks: 0,
            nacks: 0,
        });
        // Lifeguard's buddy system: a suspect hears of its suspicion first-hand.
        let mut rumors = Vec::new();
        if liveness == Liveness::Suspect {
            rumors.push(Rumor::Member(MemberUpdate::Suspect {
                node: target,
                incarnation,
                from: self.id,
            }));
        }
        let used = rumors.iter().map(encoded_len).sum();
        rumors.extend(self.take_rumors(used));
        let ping = Message::Ping {
            seq,
            target,
            heartbeat: self.heartbeat,
            rumors,
        };
        out.send(addr, Channel::Datagram, ping);
        let timeout = self.awareness.scale(self.timing.probe_timeout);
        self.timers.set(now + timeout, Timer::ProbeTimeout(seq));
    }

    /// The next active member in a shuffled round-robin order; the order is
    /// reshuffled after each full pass, so every member is probed once per pass
    /// (SWIM's bounded detection time) in an order nobody can predict.
    fn next_probe_target(&mut self) -> Option<NodeId> {
        while let Some(id) = self.probe_soon.pop() {
            if self
                .members
                .get(&id)
                .is_some_and(|m| m.liveness == Liveness::Suspect)
            {
                return Some(id);
            }
        }
        for _ in 0..2 {
            while self.probe_next < self.probe_order.len() {
                let id = self.probe_order[self.probe_next];
                self.probe_next += 1;
                if self.members.get(&id).is_some_and(Member::is_active) {
                    return Some(id);
                }
            }
            self.probe_order = self
                .members
                .values()
                .filter(|m| m.is_active())
                .map(|m| m.id)
                .collect();
            let mut order = std::mem::take(&mut self.probe_order);
            self.rng.shuffle(&mut order);
            self.probe_order = order;
            self.probe_next = 0;
        }
        None
    }

    pub(super) fn probe_indirectly(&mut self, seq: Seq, out: &mut Outbox) {
        let Some(probe) = self.probe.as_ref().filter(|p| p.seq == seq && !p.acked) else {
            return;
        };
        let target = probe.target;
        let Some(target_addr) = self.members.get(&target).map(|m| m.addr) else {
            return;
        };
        let candidates: Vec<NodeId> = self
            .members
            .values()
            .filter(|m| m.liveness == Liveness::Alive && m.id != target)
            .map(|m| m.id)
            .collect();
        let relays = self.rng.sample(&candidates, self.timing.indirect_checks);
        for relay in &relays {
            let rumors = self.take_rumors(0);
            let req = Message::PingReq {
                seq,
                target,
                target_addr,
                rumors,
            };
            out.send(self.members[relay].addr, Channel::Datagram, req);
        }
        self.stats.indirect_probes += relays.len() as u64;
        if let Some(p) = self.probe.as_mut() {
            p.expected_nacks = relays.len() as u32;
        }
    }

    pub(super) fn handle_ack(&mut self, seq: Seq, out: &mut Outbox) {
        if let Some(p) = self.probe.as_mut().filter(|p| p.seq == seq) {
            p.acked = true;
            return;
        }
        if let Some(relay) = self.relays.remove(&seq) {
            let ack = Message::Ack {
                seq: relay.requester_seq,
                heartbeat: self.heartbeat,
                rumors: Vec::new(),
            };
            out.send(relay.requester, Channel::Datagram, ack);
        }
    }

    /// A relay's nack for the probe in flight: it heard nothing from the target
    /// either, which Lifeguard counts in the prober's favour in `finish_probe`.
    pub(super) fn handle_nack(&mut self, seq: Seq) {
        if let Some(p) = self.probe.as_mut().filter(|p| p.seq == seq) {
            p.nacks += 1;
        }
    }

    /// The target of a probe relayed for another node has not answered within
    /// `NACK_FRACTION` of the probe timeout: tell the requester so.
    pub(super) fn relay_nack(&self, seq: Seq, out: &mut Outbox) {
        if let Some(relay) = self.relays.get(&seq) {
            let nack = Message::Nack {
                seq: relay.requester_seq,
            };
            out.send(relay.requester, Channel::Datagram, nack);
        }
    }

    pub(super) fn relay_probe(
        &mut self,
        now: Millis,
        requester: Addr,
        requester_seq: Seq,
        target: NodeId,
        target_addr: Addr,
        out: &mut Outbox,
    ) {
        let seq = self.next_seq();
        self.relays.insert(
            seq,
            Relay {
                requester,
                requester_seq,
            },
        );
        let ping = Message::Ping {
            seq,
            target,
            heartbeat: self.heartbeat,
            rumors: Vec::new(),
        };
        out.send(target_addr, Channel::Datagram, ping);
        let nack_at = crate::time::scale(self.timing.probe_timeout, NACK_FRACTION);
        self.timers.set(now + nack_at, Timer::RelayNack(seq));
        self.timers
            .set(now + self.timing.probe_interval, Timer::RelayExpire(seq));
    }

    /// Closes the probe in flight at the end of its interval: an ack lowers the
    /// local health score; no ack raises it (by the nacks that did not come, when
    /// relays were asked) and makes the target a suspect.
    pub(super) fn finish_probe(&mut self, now: Millis, out: &mut Outbox) {
        let Some(p) = self.probe.take() else {
            return;
        };
        if p.acked {
            self.awareness.apply(-1);
            return;
        }
        let missed_nacks = p.expected_nacks.saturating_sub(p.nacks);
        let delta = if p.expected_nacks > 0 {
            missed_nacks
        } else {
            1
        };
        self.awareness.apply(delta as i32);
        self.stats.probe_failures += 1;
        if let Some(m) = self.members.get(&p.target).filter(|m| m.is_active()) {
            let update = MemberUpdate::Suspect {
                node: p.target,
                incarnation: m.incarnation,
                from: self.id,
            };
            self.apply_update(now, update, out);
        }
    }
}
