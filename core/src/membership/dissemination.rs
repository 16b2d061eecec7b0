//! Dissemination: how what this node knows reaches the others. Rumours (member
//! updates, application broadcasts, replicated writes) piggyback on pings, acks
//! and gossip rounds, as many as fit in a datagram; a periodic push-pull of full
//! member lists with one random member repairs anything missed; joining, the
//! post-join catch-up and the reconnect loop are push-pulls too. What comes in is
//! handed to the rules (`apply_update`) one claim at a time.

use super::member::Member;
use super::{Membership, Phase, Timer};
use crate::event::Event;
use crate::id::{Addr, NodeId};
use crate::outbox::Outbox;
use crate::time::Millis;
use crate::wire::{
    AppRumor, Channel, Liveness, MemberRecord, MemberUpdate, Message, PushPullKind, Rumor,
};

/// Bytes reserved in a datagram for the header and the message around its rumours.
const PACKET_OVERHEAD: usize = crate::wire::HEADER_LEN + 48;

impl Membership {
    pub(super) fn gossip(&mut self, now: Millis, out: &mut Outbox) {
        if self.rumors.is_empty() {
            return;
        }
        let dead_horizon = now - self.timing.gossip_to_the_dead;
        let candidates: Vec<(NodeId, Addr)> = self
            .members
            .values()
            .filter(|m| m.is_active() || m.since >= dead_horizon)
            .map(|m| (m.id, m.addr))
            .collect();
        for (_, addr) in self.rng.sample(&candidates, self.timing.gossip_nodes) {
            let rumors = self.take_rumors(0);
            if rumors.is_empty() {
                break;
            }
            out.send(addr, Channel::Datagram, Message::Gossip { rumors });
        }
    }

    /// Rumours for one datagram that already holds `used` bytes of them.
    pub(super) fn take_rumors(&mut self, used: usize) -> Vec<Rumor> {
        let budget = self
            .timing
            .max_datagram
            .saturating_sub(PACKET_OVERHEAD + used);
        let n = self.members.len() + 1;
        let scale = (n as f64 + 1.0).log10().ceil().max(1.0) as u32;
        let limits = super::rumors::Limits {
            member: self.timing.retransmit_mult * scale,
            data: self.timing.data_retransmit_mult * scale,
        };
        self.rumors.take(budget, limits)
    }

    pub(super) fn push_pull(&mut self, out: &mut Outbox) {
        let alive: Vec<Addr> = self
            .members
            .values()
            .filter(|m| m.liveness == Liveness::Alive)
            .map(|m| m.addr)
            .collect();
        if let Some(&addr) = self.rng.sample(&alive, 1).first() {
            let msg = self.push_pull_message(PushPullKind::Periodic);
            out.send(addr, Channel::Stream, msg);
        }
    }

    /// Push-pull with one failed member, so two sides of a healed partition that
    /// declared each other dead find each other again (SWIM alone never probes the
    /// dead; serf adds the same reconnect loop), or with one seed that is not a
    /// live member: newcomers that only ever met each other (one joined through
    /// the other while the cluster was out of reach) would otherwise stay an island,
    /// since neither knows any member of the cluster to reconnect to (sim seed
    /// 3577). A node that is alone asks its seeds.
    pub(super) fn reconnect(&mut self, now: Millis, out: &mut Outbox) {
        if self.active_count() == 0 && !self.seeds.is_empty() {
            self.phase = Phase::Joining;
            self.send_join(now, out);
            return;
        }
        let mut failed: Vec<Addr> = self
            .members
            .values()
            .filter(|m| m.liveness == Liveness::Dead)
            .map(|m| m.addr)
            .collect();
        failed.extend(self.tombstones.values().filter(|t| !t.left).map(|t| t.addr));
        let live: Vec<Addr> = self
            .members
            .values()
            .filter(|m| m.is_active())
            .map(|m| m.addr)
            .collect();
        failed.extend(self.seeds.iter().filter(|s| !live.contains(s)));
        if let Some(&addr) = self.rng.sample(&failed, 1).first() {
            let msg = self.push_pull_message(PushPullKind::Periodic);
            out.send(addr, Channel::Stream, msg);
        }
    }

    pub(super) fn send_join(&mut self, now: Millis, out: &mut Outbox) {
        if self.phase != Phase::Joining {
            return;
        }
        let msg = self.push_pull_message(PushPullKind::Join);
        for &seed in &self.seeds {
            out.send(seed, Channel::Stream, msg.clone());
        }
        self.timers
            .set(now + self.timing.join_retry, Timer::JoinRetry);
    }

    pub(super) fn push_pull_message(&self, kind: PushPullKind) -> Message {
        let mut members = Vec::with_capacity(self.members.len() + 1);
        members.push(self.self_record());
        members.extend(self.members.values().map(Member::record));
        Message::PushPull {
            kind,
            heartbeat: self.heartbeat,
            members,
        }
    }

    /// A peer we reaped is talking to us with an incarnation we consider stale (it
    /// restarted without its disk, say). Reaped members are not in our list, so
    /// tell it explicitly that it is dead: it will refute with a higher incarnation.
    pub(super) fn tombstone_record(&self, sender: MemberRecord) -> Option<MemberRecord> {
        let t = self.tombstones.get(&sender.node)?;
        Some(MemberRecord {
            incarnation: t.incarnation,
            liveness: Liveness::Dead,
            ..sender
        })
    }

    fn self_record(&self) -> MemberRecord {
        MemberRecord {
            node: self.id,
            incarnation: self.announced_incarnation(),
            liveness: if self.phase == Phase::Leaving {
                Liveness::Left
            } else {
                Liveness::Alive
            },
            addr: self.addr,
            heartbeat: self.heartbeat,
            meta: self.meta.clone(),
        }
    }

    /// Merges a peer's full member list. Its "dead" is only taken as "suspect":
    /// a stale list must not kill a member outright (memberlist does the same), and
    /// the suspect itself gets the chance to refute.
    pub(super) fn merge_remote_state(
        &mut self,
        now: Millis,
        sender: NodeId,
        records: Vec<MemberRecord>,
        out: &mut Outbox,
    ) {
        for r in records {
            let update = match r.liveness {
                Liveness::Alive => MemberUpdate::Alive {
                    node: r.node,
                    incarnation: r.incarnation,
                    addr: r.addr,
                    meta: r.meta,
                },
                Liveness::Suspect | Liveness::Dead => MemberUpdate::Suspect {
                    node: r.node,
                    incarnation: r.incarnation,
                    from: sender,
                },
                Liveness::Left => MemberUpdate::Left {
                    node: r.node,
                    incarnation: r.incarnation,
                },
            };
            self.apply_update(now, update, out);
            self.observe_heartbeat(now, r.node, r.heartbeat);
        }
    }

    pub(super) fn apply_rumors(&mut self, now: Millis, rumors: Vec<Rumor>, out: &mut Outbox) {
        for rumor in rumors {
            match rumor {
                Rumor::Member(update) => self.apply_update(now, update, out),
                Rumor::App(app) => self.apply_app(now, app, out),
                Rumor::State(entry) => self.state_inbox.push(entry),
            }
        }
    }

    fn apply_app(&mut self, now: Millis, app: AppRumor, out: &mut Outbox) {
        let key = (app.origin, app.seq);
        if self.app_seen.contains_key(&key) {
            return;
        }
        self.app_seen.insert(key, now);
        out.event(Event::Broadcast {
            origin: app.origin,
            seq: app.seq,
            payload: app.payload.clone(),
        });
        self.rumors.push(Rumor::App(app));
    }

    pub(super) fn observe_heartbeat(&mut self, now: Millis, node: NodeId, heartbeat: u64) {
        if let Some(m) = self.members.get_mut(&node) {
            if heartbeat > m.heartbeat {
                m.heartbeat = heartbeat;
                m.last_heartbeat = Some(now);
            }
        }
    }
}
