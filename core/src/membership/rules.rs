//! The SWIM rules: how one claim about a member (alive, suspect, dead, left, at an
//! incarnation) changes what this node believes. Incarnations order claims; a
//! suspicion runs out into death unless refuted; a claim about this node itself is
//! refuted with a higher incarnation, persisted before it is announced.

use super::member::{LocalChange, Member, MemberChange};
use super::suspicion::{self, Suspicion};
use super::{Membership, Phase, Timer};
use crate::config::MemberMeta;
use crate::event::Event;
use crate::id::{Addr, Incarnation, NodeId};
use crate::outbox::Outbox;
use crate::persist::{PersistBatch, PersistItem};
use crate::time::Millis;
use crate::wire::{Liveness, MemberUpdate, Rumor};

impl Membership {
    /// Applies one claim about a member. The rules, in SWIM's order of precedence:
    /// a claim with a lower incarnation than known is stale; `Alive` overrides a
    /// suspicion only with a strictly higher incarnation; `Suspect` and `Dead`
    /// override `Alive` at an equal or higher one; nothing revives a dead or
    /// departed member but a higher incarnation. Claims about this node are
    /// refuted, not applied.
    pub(crate) fn apply_update(&mut self, now: Millis, update: MemberUpdate, out: &mut Outbox) {
        let node = update.node();
        if node == self.id {
            self.refute_if_needed(&update, out);
            return;
        }
        match update {
            MemberUpdate::Alive {
                node,
                incarnation,
                addr,
                meta,
            } => self.apply_alive(now, node, incarnation, addr, meta, out),
            MemberUpdate::Suspect {
                node,
                incarnation,
                from,
            } => self.apply_suspect(now, node, incarnation, from, out),
            MemberUpdate::Dead {
                node,
                incarnation,
                from,
            } => self.apply_dead(now, node, incarnation, from, out),
            MemberUpdate::Left { node, incarnation } => {
                self.apply_left(now, node, incarnation, out)
            }
        }
    }

    fn apply_alive(
        &mut self,
        now: Millis,
        node: NodeId,
        incarnation: Incarnation,
        addr: Addr,
        meta: MemberMeta,
        out: &mut Outbox,
    ) {
        if let Some(t) = self.tombstones.get(&node) {
            if incarnation <= t.incarnation {
                self.stats.stale_updates += 1;
                return;
            }
            self.tombstones.remove(&node);
        }
        let change = match self.members.get_mut(&node) {
            None => {
                self.members.insert(
                    node,
                    Member {
                        id: node,
                        addr,
                        meta: meta.clone(),
                        incarnation,
                        liveness: Liveness::Alive,
                        since: now,
                        heartbeat: 0,
                        last_heartbeat: None,
                    },
                );
                MemberChange::Joined
            }
            Some(m) => {
                if incarnation <= m.incarnation {
                    self.stats.stale_updates += 1;
                    return;
                }
                let change = match m.liveness {
                    Liveness::Suspect => MemberChange::AliveAgain,
                    Liveness::Dead | Liveness::Left => MemberChange::Joined,
                    Liveness::Alive if m.addr != addr || m.meta != meta => MemberChange::Updated,
                    Liveness::Alive => {
                        // A plain re-announcement: adopt it and pass it on quietly.
                        m.advance(incarnation);
                        self.rumors.push(Rumor::Member(MemberUpdate::Alive {
                            node,
                            incarnation,
                            addr,
                            meta,
                        }));
                        return;
                    }
                };
                if m.liveness != Liveness::Alive {
                    m.since = now;
                }
                m.advance(incarnation);
                m.liveness = Liveness::Alive;
                m.addr = addr;
                m.meta = meta.clone();
                change
            }
        };
        self.suspicions.remove(&node);
        self.rumors.push(Rumor::Member(MemberUpdate::Alive {
            node,
            incarnation,
            addr,
            meta,
        }));
        self.changes += 1;
        out.event(Event::Member { node, change });
    }

    fn apply_suspect(
        &mut self,
        now: Millis,
        node: NodeId,
        incarnation: Incarnation,
        from: NodeId,
        out: &mut Outbox,
    ) {
        let n = self.members.len() + 1;
        let Some(m) = self.members.get_mut(&node) else {
            return;
        };
        if incarnation < m.incarnation || !m.is_active() {
            self.stats.stale_updates += 1;
            return;
        }
        if m.liveness == Liveness::Suspect {
            if incarnation > m.incarnation {
                m.advance(incarnation);
            }
            // Another accuser: shorten the timer and pass the confirmation on.
            let grace = now + self.timing.probe_interval;
            let confirmed = self
                .suspicions
                .get_mut(&node)
                .is_some_and(|s| s.confirm(from, grace));
            if confirmed {
                let deadline = self.suspicions[&node].deadline();
                self.timers.set(deadline, Timer::Suspicion(node));
                self.rumors.push(Rumor::Member(MemberUpdate::Suspect {
                    node,
                    incarnation,
                    from,
                }));
            }
            return;
        }
        m.liveness = Liveness::Suspect;
        m.advance(incarnation);
        m.since = now;
        // Probe the suspect at the next tick: if someone else accused it, our
        // probe is an independent confirmation (or its ack clears it); if we did,
        // the ping carries the suspicion to the suspect itself (the buddy system),
        // so it can refute even if every gossip copy of the rumour was lost.
        if !self.probe_soon.contains(&node) {
            self.probe_soon.push(node);
        }
        let t = &self.timing;
        let (min, max) = suspicion::bounds(
            t.suspicion_mult,
            t.suspicion_max_timeout_mult,
            n,
            t.probe_interval,
        );
        // Confirmations can only come from members other than the suspect and us.
        let k = t.suspicion_mult.saturating_sub(2);
        let k = if (n as u32).saturating_sub(2) < k {
            0
        } else {
            k
        };
        let s = Suspicion::new(now, from, min, max, k);
        self.timers.set(s.deadline(), Timer::Suspicion(node));
        self.suspicions.insert(node, s);
        self.rumors.push(Rumor::Member(MemberUpdate::Suspect {
            node,
            incarnation,
            from,
        }));
        self.report(out, node, MemberChange::Suspected);
    }

    fn apply_dead(
        &mut self,
        now: Millis,
        node: NodeId,
        incarnation: Incarnation,
        from: NodeId,
        out: &mut Outbox,
    ) {
        let Some(m) = self.members.get_mut(&node) else {
            return;
        };
        if incarnation < m.incarnation || !m.is_active() {
            self.stats.stale_updates += 1;
            return;
        }
        m.liveness = Liveness::Dead;
        m.advance(incarnation);
        m.since = now;
        self.suspicions.remove(&node);
        self.rumors.push(Rumor::Member(MemberUpdate::Dead {
            node,
            incarnation,
            from,
        }));
        self.report(out, node, MemberChange::Failed);
    }

    fn apply_left(
        &mut self,
        now: Millis,
        node: NodeId,
        incarnation: Incarnation,
        out: &mut Outbox,
    ) {
        let Some(m) = self.members.get_mut(&node) else {
            return;
        };
        if incarnation < m.incarnation || m.liveness == Liveness::Left {
            self.stats.stale_updates += 1;
            return;
        }
        m.liveness = Liveness::Left;
        m.advance(incarnation);
        m.since = now;
        self.suspicions.remove(&node);
        self.rumors
            .push(Rumor::Member(MemberUpdate::Left { node, incarnation }));
        self.departed.push(node);
        self.report(out, node, MemberChange::Left);
    }

    pub(super) fn suspicion_expired(&mut self, now: Millis, node: NodeId, out: &mut Outbox) {
        let Some(deadline) = self.suspicions.get(&node).map(Suspicion::deadline) else {
            return;
        };
        if deadline > now {
            // An older, later timer of a suspicion that has since been shortened or
            // restarted; the current deadline has its own timer.
            return;
        }
        self.suspicions.remove(&node);
        let Some(incarnation) = self
            .members
            .get(&node)
            .filter(|m| m.liveness == Liveness::Suspect)
            .map(|m| m.incarnation)
        else {
            return;
        };
        let update = MemberUpdate::Dead {
            node,
            incarnation,
            from: self.id,
        };
        self.apply_update(now, update, out);
    }

    /// Someone claims something about us. A suspicion or death at our current (or a
    /// higher) incarnation is refuted with a higher one; our own `Left` while leaving
    /// is just our own rumour coming back.
    fn refute_if_needed(&mut self, update: &MemberUpdate, out: &mut Outbox) {
        let claimed = match update {
            MemberUpdate::Alive {
                incarnation,
                addr,
                meta,
                ..
            } => {
                // Only an Alive that is newer and differs from us (someone replaying
                // an old identity of this node, say) needs overriding.
                if *incarnation < self.incarnation
                    || (*incarnation == self.incarnation
                        && *addr == self.addr
                        && *meta == self.meta)
                {
                    return;
                }
                *incarnation
            }
            MemberUpdate::Suspect { incarnation, .. } | MemberUpdate::Dead { incarnation, .. } => {
                if *incarnation < self.incarnation {
                    // The accuser missed our refutation (its retransmits ran out,
                    // or went to dead members): say it again, at the same
                    // incarnation. It rides on the ack to a buddy-system probe.
                    if !matches!(self.phase, Phase::Leaving | Phase::Left) {
                        self.announce();
                    }
                    return;
                }
                *incarnation
            }
            MemberUpdate::Left { incarnation, .. } => {
                if matches!(self.phase, Phase::Leaving | Phase::Left)
                    || *incarnation < self.incarnation
                {
                    return;
                }
                *incarnation
            }
        };
        if matches!(self.phase, Phase::Leaving | Phase::Left) {
            return;
        }
        self.stats.refutations += 1;
        self.awareness.apply(1);
        self.bump_incarnation(claimed, out);
        out.event(Event::Local(LocalChange::Refuted(self.incarnation)));
    }

    /// Moves to an incarnation above `above`, persists it before anything is sent
    /// under it, and announces it.
    pub(super) fn bump_incarnation(&mut self, above: Incarnation, out: &mut Outbox) {
        let before = self.incarnation;
        self.incarnation = above.max(self.incarnation).next();
        // Holds because `next` is `+ 1`, saturating only at the very top (a peer
        // may claim `u64::MAX`; then there is nothing higher to refute with).
        debug_assert!(
            self.incarnation > before || before == Incarnation(u64::MAX),
            "own incarnation went from {before} to {}",
            self.incarnation
        );
        out.persist(PersistBatch {
            items: vec![PersistItem::Incarnation(self.incarnation)],
        });
        self.persisted = self.incarnation;
        self.announce();
    }

    /// This node's incarnation, for a message about itself. Every announcement
    /// goes through here.
    pub(super) fn announced_incarnation(&self) -> Incarnation {
        // Holds because the incarnation only moves in `bump_incarnation`, which
        // queues its persist first, and starts at one `Node::new` persisted: the
        // driver commits a persist before any later transmit, so no peer hears of
        // an incarnation a crash could make this node forget.
        debug_assert!(
            self.incarnation <= self.persisted,
            "incarnation {} announced, only {} persisted",
            self.incarnation,
            self.persisted
        );
        self.incarnation
    }

    /// Queues an `Alive` rumour for this node at its current incarnation.
    fn announce(&mut self) {
        self.rumors.push(Rumor::Member(MemberUpdate::Alive {
            node: self.id,
            incarnation: self.announced_incarnation(),
            addr: self.addr,
            meta: self.meta.clone(),
        }));
    }
}
