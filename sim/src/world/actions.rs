//! Faults and scripted actions: turning a drawn fault into an action, carrying actions
//! out (crash, wipe, restart, pause, partitions, joins, leaves, forged packets).

use super::*;

impl World {
    /// Turns a drawn fault kind into a concrete action on the current state, or
    /// nothing if it does not apply (no crashed node to restart, say). At least
    /// half of the nodes stay up, so the liveness phase has a core to converge.
    pub(super) fn resolve(&mut self, kind: FaultKind) -> Option<Action> {
        let up: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_up())
            .collect();
        let keep = self.nodes.len().div_ceil(2).max(2);
        let pick =
            |rng: &mut DetRng, from: &[usize]| from.get(rng.below(from.len().max(1))).copied();
        match kind {
            FaultKind::Partition(k) => Some(Action::Partition(k)),
            FaultKind::Heal => Some(Action::Heal),
            FaultKind::Crash if up.len() > keep => pick(&mut self.rng, &up).map(Action::Crash),
            FaultKind::Restart => {
                let crashed: Vec<usize> = (0..self.nodes.len())
                    .filter(|&i| self.nodes[i].status == Status::Crashed)
                    .collect();
                let node = pick(&mut self.rng, &crashed)?;
                let new_addr = self.rng.chance(0.3);
                Some(Action::Restart { node, new_addr })
            }
            FaultKind::Pause if up.len() > keep => {
                let node = pick(&mut self.rng, &up)?;
                let for_ms = 500 + self.rng.below(8_000) as u64;
                Some(Action::Pause { node, for_ms })
            }
            FaultKind::Slow => {
                let node = pick(&mut self.rng, &up)?;
                let extra_ms = 50 + self.rng.below(350) as u64;
                Some(Action::Slow { node, extra_ms })
            }
            FaultKind::Join if self.nodes.len() < self.params.nodes * 2 => Some(Action::Join),
            FaultKind::Leave if up.len() > keep => {
                let candidates: Vec<usize> = up
                    .into_iter()
                    .filter(|&i| i >= self.params.seed_nodes)
                    .collect();
                pick(&mut self.rng, &candidates).map(Action::Leave)
            }
            _ => None,
        }
    }

    pub(super) fn act(&mut self, action: Action) {
        if action != Action::Sample {
            let a = format!("{action:?}");
            self.trace.event(self.now, "sim", || a);
        }
        match action {
            Action::Crash(i) => {
                if self.nodes[i].is_up() || matches!(self.nodes[i].status, Status::Paused { .. }) {
                    self.nodes[i].host.crash();
                    self.nodes[i].status = Status::Crashed;
                    self.nodes[i].inbox.clear();
                    self.nodes[i].wake_at = None;
                    self.obs.crashed(i, self.now);
                }
            }
            Action::Wipe(i) => {
                if self.nodes[i].status == Status::Crashed {
                    let id = self.nodes[i].id;
                    let lost = Origin::new(id, self.nodes[i].life);
                    let life = Life(DetRng::from_seed(lost.life.0).next_u64());
                    self.nodes[i].life = life;
                    self.nodes[i].host.wipe(life);
                    let others: Vec<&Store> = self
                        .nodes
                        .iter()
                        .filter(|n| n.id != id)
                        .filter_map(|n| n.node().map(|x| x.view().store()))
                        .collect();
                    self.obs.disk_lost(lost, &others);
                }
            }
            Action::Restart { node: i, new_addr } => {
                if self.nodes[i].status == Status::Crashed {
                    if new_addr {
                        self.by_addr.remove(&self.nodes[i].addr);
                        self.nodes[i].generation = self.nodes[i].generation.wrapping_add(1);
                        let addr = sim_addr(i, self.nodes[i].generation);
                        self.nodes[i].addr = addr;
                        self.by_addr.insert(addr, i);
                    }
                    self.obs.restarted(i, self.now);
                    self.boot(i);
                }
            }
            Action::Pause { node: i, for_ms } => {
                if self.nodes[i].is_up() {
                    let until = self.now + Duration::from_millis(for_ms);
                    self.nodes[i].status = Status::Paused { until };
                    self.obs.paused(i, self.now, until);
                    self.push(until, Ev::Act(Action::Resume(i)));
                }
            }
            Action::Resume(i) => self.resume(i),
            Action::Slow { node, extra_ms } => self.nodes[node].slow_ms = extra_ms,
            Action::Partition(kind) => {
                let members: Vec<usize> = (0..self.nodes.len()).collect();
                self.partitions.split(kind, &members, &mut self.rng);
                self.obs.partitioned = true;
            }
            Action::SplitOff(side) => {
                self.partitions.split_off(&side);
                self.obs.partitioned = true;
            }
            Action::Heal => self.partitions.heal(),
            Action::CrashLeader => {
                if let Some(i) = self.lease_holder() {
                    let now = self.now;
                    self.obs.leader_crashed(now);
                    self.act(Action::Crash(i));
                }
            }
            Action::Forget(i) => {
                let node = self.nodes[i].id;
                if let Some(l) = self.lease_holder() {
                    self.with_node(l, |n, now| {
                        let _ = n.handle_command(now, Command::ForgetMember { node });
                    });
                }
            }
            Action::Impersonate(i) => self.impersonate(i),
            Action::ForgetEverywhere(i) => {
                let node = self.nodes[i].id;
                for k in (0..self.nodes.len()).filter(|&k| k != i) {
                    self.with_node(k, |n, now| {
                        let _ = n.handle_command(now, Command::ForgetMember { node });
                    });
                }
            }
            Action::Switchover => {
                let now = self.now;
                let leader = self.lease_holder();
                let target = (0..self.nodes.len())
                    .filter(|&i| Some(i) != leader && self.nodes[i].is_up())
                    .min_by_key(|&i| (i % 16, i));
                if let (Some(l), Some(t)) = (leader, target) {
                    let to = self.nodes[t].id;
                    self.obs.switchover_started(now);
                    self.with_node(l, |node, now| {
                        let _ = node.handle_command(now, Command::Switchover { to });
                    });
                }
            }
            Action::Join => {
                let i = self.add_node();
                self.boot(i);
            }
            Action::Leave(i) => {
                if self.nodes[i].is_up() {
                    self.obs.left(i, self.now);
                    self.with_node(i, |node, now| {
                        let _ = node.handle_command(now, Command::Leave);
                    });
                }
            }
            Action::Broadcast { node, payload } => {
                let origin = self.nodes[node].id;
                let key = payload.clone();
                self.obs.broadcast_sent(origin, key, self.now);
                self.with_node(node, |n, now| {
                    let _ = n.handle_command(now, Command::Broadcast(payload));
                });
            }
            Action::Link(link) => self.link = link,
            Action::StartLiveness => {
                self.in_liveness = true;
                self.partitions.heal();
                self.link.loss = 0.0;
                self.link.corrupt = 0.0;
                for i in 0..self.nodes.len() {
                    self.nodes[i].slow_ms = 0;
                    if matches!(self.nodes[i].status, Status::Paused { .. }) {
                        self.resume(i);
                    }
                }
                self.obs.liveness_start = Some(self.now);
                self.push(self.now, Ev::Act(Action::Sample));
            }
            Action::Sample => {
                if self.obs.converged_at.is_none() && crate::observe::views_agree(&self.nodes) {
                    self.obs.converged_at = Some(self.now);
                }
                // State can only settle once the workload has stopped.
                let writes_done = self.now + QUIET_TAIL >= self.end();
                if writes_done
                    && self.obs.state_converged_at.is_none()
                    && crate::observe::digests_agree(&self.nodes)
                {
                    self.obs.state_converged_at = Some(self.now);
                }
                if self.obs.converged_at.is_none() || self.obs.state_converged_at.is_none() {
                    let period = if self.nodes.len() > 100 { 500 } else { 100 };
                    self.push(
                        self.now + Duration::from_millis(period),
                        Ev::Act(Action::Sample),
                    );
                }
            }
        }
    }

    /// Sends forged packets in node `i`'s name, from a stranger's address, with a
    /// life `i` never had.
    pub(super) fn impersonate(&mut self, i: usize) {
        let victim = self.nodes[i].id;
        let forged_life = Life(self.nodes[i].life.0 ^ 0xbad0_0000_0000_0bad);
        let stranger = sim_addr(0xfe, 0xfe);
        let rumor = Rumor::Member(MemberUpdate::Dead {
            node: victim,
            incarnation: Incarnation(u64::MAX / 2),
            from: victim,
        });
        let messages = [
            Message::Gossip {
                rumors: vec![rumor],
            },
            Message::Lease(LeaseMessage::Release {
                epoch: aurora_core::Epoch(u64::MAX / 2),
            }),
        ];
        let targets: Vec<usize> = (0..self.nodes.len())
            .filter(|&t| t != i && self.nodes[t].is_up())
            .collect();
        for to in targets {
            for m in &messages {
                let bytes = wire::encode(self.cluster, victim, forged_life, m);
                let at = self.now + Duration::from_millis(1);
                self.push(
                    at,
                    Ev::Deliver {
                        to,
                        from: stranger,
                        channel: Channel::Datagram,
                        bytes,
                    },
                );
            }
        }
    }

    pub(super) fn resume(&mut self, i: usize) {
        if let Status::Paused { until } = self.nodes[i].status {
            self.nodes[i].status = Status::Up;
            self.obs.resumed(i, until.min(self.now));
            // The node wakes to a backlog: overdue timers, then the queued packets.
            self.with_node(i, |node, now| node.handle_timeout(now));
            let inbox = std::mem::take(&mut self.nodes[i].inbox);
            for (from, channel, bytes) in inbox {
                self.with_node(i, |node, now| match channel {
                    Channel::Datagram => node.handle_datagram(now, from, &bytes),
                    Channel::Stream => node.handle_stream(now, from, &bytes),
                });
            }
        }
    }
}
