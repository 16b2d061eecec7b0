//! A tiny deterministic world of a few `Failover`s, for the safety tests.
//!
//! Real time runs in microseconds. Each node has its own clock: an offset and a
//! rate within `1 ± max_drift`, so `local = offset + floor(real × rate)` ms. Messages
//! are delayed, dropped, duplicated and cut by partitions at random (a seeded
//! [`DetRng`]); nodes crash and restart (a restart is a fresh `Failover` that keeps
//! only what the node would persist: its session and its durable epoch).
//! Membership is modelled coarsely: a crashed node leaves everyone's live list
//! after a detection delay, a restarted one is back at once.
//!
//! After every step the world checks safety at that real instant: at most one node
//! for which `holds_lease_at(its own clock)` is true. A lease only ever starts at
//! a step (a grant arriving), so an overlap, if any, shows at the step where the
//! second holder starts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::{Deref, DerefMut};

use crate::config::{ConfigError, Role};
use crate::id::{Addr, Life, NodeId};
use crate::outbox::Outbox;
use crate::rng::DetRng;
use crate::time::Millis;

use super::{
    Candidate, Epoch, Failover, FailoverConfig, FailoverEvent, LeaseMessage, SwitchoverError,
};

/// A bare failover machine with the outbox a node would give it, for tests that
/// drive the machine without a node: the inputs are the machine's own, minus
/// `out`, and [`Bare::messages`] / [`Bare::events`] take what it said from the
/// outbox's held section (the node's `pump_failover` releases the same). Reads go
/// to the machine through `Deref`.
#[derive(Clone, Debug)]
pub struct Bare {
    fo: Failover,
    out: Outbox,
}

impl Bare {
    pub fn new(id: NodeId, config: FailoverConfig, now: Millis) -> Result<Bare, ConfigError> {
        let mut out = Outbox::default();
        let fo = Failover::new(id, config, now, &mut out)?;
        Ok(Bare { fo, out })
    }

    pub fn with_session(self, session: u64) -> Bare {
        Bare {
            fo: self.fo.with_session(session),
            ..self
        }
    }

    pub fn with_life(self, life: Life) -> Bare {
        Bare {
            fo: self.fo.with_life(life),
            ..self
        }
    }

    pub fn handle_members(&mut self, now: Millis, live: &[Candidate]) {
        self.fo.handle_members(now, live, &mut self.out);
    }

    pub fn handle_message(&mut self, now: Millis, from: NodeId, msg: LeaseMessage) {
        self.fo.handle_message(now, from, msg, &mut self.out);
    }

    pub fn handle_lease(&mut self, now: Millis, from: NodeId, life: Life, msg: LeaseMessage) {
        self.fo.handle_lease(now, from, life, msg, &mut self.out);
    }

    pub fn handle_timeout(&mut self, now: Millis) {
        self.fo.handle_timeout(now, &mut self.out);
    }

    pub fn switchover(&mut self, now: Millis, to: NodeId) -> Result<(), SwitchoverError> {
        self.fo.switchover(now, to, &mut self.out)
    }

    pub fn resign(&mut self, now: Millis) {
        self.fo.resign(now, &mut self.out);
    }

    pub fn forget(&mut self, now: Millis, node: NodeId) {
        self.fo.forget(now, node, &mut self.out);
    }

    /// The lease messages sent since last asked, in order, with their voter.
    pub fn messages(&mut self) -> Vec<(NodeId, LeaseMessage)> {
        std::iter::from_fn(|| self.out.release_lease()).collect()
    }

    /// The events reported since last asked, in order.
    pub fn events(&mut self) -> Vec<FailoverEvent> {
        std::iter::from_fn(|| self.out.release_failover_event()).collect()
    }
}

impl Deref for Bare {
    type Target = Failover;

    fn deref(&self) -> &Failover {
        &self.fo
    }
}

impl DerefMut for Bare {
    fn deref_mut(&mut self) -> &mut Failover {
        &mut self.fo
    }
}

/// Real time, in microseconds.
pub type Real = u64;

pub const MS: Real = 1_000;
pub const SEC: Real = 1_000_000;

#[derive(Clone, Debug)]
pub struct Net {
    pub delay_min: Real,
    pub delay_max: Real,
    /// Chance that a message takes up to `slow_max` instead.
    pub slow: f64,
    pub slow_max: Real,
    pub drop: f64,
    pub duplicate: f64,
    /// How long after a crash the others' membership stops listing the node.
    pub detect: Real,
}

impl Net {
    /// A quiet LAN: 1–5 ms, no loss.
    pub fn lan() -> Net {
        Net {
            delay_min: MS,
            delay_max: 5 * MS,
            slow: 0.0,
            slow_max: 0,
            drop: 0.0,
            duplicate: 0.0,
            detect: 5 * SEC,
        }
    }
}

pub struct SimNode {
    pub cand: Candidate,
    pub fo: Option<Bare>,
    pub rate: f64,
    pub offset: u64,
    /// The one wake-up that counts (earlier scheduled ones are stale).
    wake: Option<Real>,
    /// When it crashed, while it is down.
    down_since: Option<Real>,
    session: u64,
    durable: Epoch,
    roster: super::RosterState,
    pub group: u8,
}

#[derive(Clone, Debug)]
enum Ev {
    Deliver {
        to: usize,
        from: NodeId,
        msg: LeaseMessage,
    },
    Wake(usize),
    Members,
}

pub struct World {
    pub nodes: Vec<SimNode>,
    pub config: FailoverConfig,
    pub net: Net,
    pub now: Real,
    rng: DetRng,
    queue: BTreeMap<(Real, u64), Ev>,
    seq: u64,
    pub trace: Option<String>,
    /// Every acquisition: (real time, node index, epoch).
    pub acquisitions: Vec<(Real, usize, Epoch)>,
    /// Highest status epoch reported by each node's current life.
    status_epochs: Vec<Epoch>,
    pub steps: u64,
    /// Runs every node with [`Failover::break_majority`] (for the checker's own test).
    pub broken: bool,
    /// Safety violations seen in a broken run (a correct run panics on the first).
    pub violations: u64,
}

/// Node `i` is `NodeId(i + 1)` at port `7001 + i`.
pub fn candidate(i: usize, tier: u8, capacity: u32, role: Role) -> Candidate {
    Candidate {
        id: NodeId(i as u64 + 1),
        life: Some(crate::id::Life::default()),
        addr: Addr::from(([10, 0, 0, 1], 7001 + i as u16)),
        tier,
        capacity,
        role,
        fingerprint: 42,
        bootstrap_expect: 0,
    }
}

impl World {
    /// `rates[i]` is node `i`'s clock rate. Every node is a founder: unless the
    /// config says otherwise, `expected_voters` is the number of nodes.
    pub fn new(
        seed: u64,
        cands: Vec<Candidate>,
        rates: Vec<f64>,
        mut config: FailoverConfig,
        net: Net,
    ) -> World {
        if config.expected_voters == 0 {
            config.expected_voters = cands.len() as u32;
        }
        let cands: Vec<Candidate> = cands
            .into_iter()
            .map(|c| Candidate {
                bootstrap_expect: config.expected_voters,
                ..c
            })
            .collect();
        let mut rng = DetRng::from_seed(seed);
        let nodes: Vec<SimNode> = cands
            .into_iter()
            .zip(rates)
            .map(|(cand, rate)| {
                let offset = 1_000_000 + rng.below(1_000_000) as u64;
                let fo = Bare::new(cand.id, config.clone(), Millis(offset)).unwrap();
                SimNode {
                    cand,
                    fo: Some(fo),
                    rate,
                    offset,
                    wake: None,
                    down_since: None,
                    session: 0,
                    durable: Epoch::ZERO,
                    roster: super::RosterState::default(),
                    group: 0,
                }
            })
            .collect();
        let n = nodes.len();
        let mut w = World {
            nodes,
            config,
            net,
            now: 0,
            rng,
            queue: BTreeMap::new(),
            seq: 0,
            trace: None,
            acquisitions: Vec::new(),
            status_epochs: vec![Epoch::ZERO; n],
            steps: 0,
            broken: false,
            violations: 0,
        };
        w.push(0, Ev::Members);
        for i in 0..n {
            w.after_call(i);
        }
        w
    }

    pub fn local(&self, i: usize, t: Real) -> Millis {
        let n = &self.nodes[i];
        Millis(n.offset + (t as f64 * n.rate / 1000.0).floor() as u64)
    }

    /// The first real instant at which node `i`'s clock reads `at` or more.
    fn real_at(&self, i: usize, at: Millis) -> Real {
        let n = &self.nodes[i];
        let ms = at.0.saturating_sub(n.offset) as f64;
        let mut t = ((ms * 1000.0) / n.rate).floor().max(0.0) as Real;
        while self.local(i, t) < at {
            t += 1;
        }
        t.max(self.now)
    }

    fn push(&mut self, at: Real, ev: Ev) {
        self.seq += 1;
        self.queue.insert((at, self.seq), ev);
    }

    fn note(&mut self, line: String) {
        if let Some(t) = self.trace.as_mut() {
            let now = self.now / MS;
            let _ = writeln!(t, "{:>3}.{:03}s  {line}", now / 1000, now % 1000);
        }
    }

    /// Whether `i` and `j` can talk.
    fn connected(&self, i: usize, j: usize) -> bool {
        self.nodes[i].group == self.nodes[j].group
    }

    /// Collects what node `i` produced and schedules its next wake-up.
    fn after_call(&mut self, i: usize) {
        let Some(fo) = self.nodes[i].fo.as_mut() else {
            return;
        };
        let out = fo.messages();
        let events = fo.events();
        let status_epoch = fo.status().epoch;
        let durable = fo.durable_epoch();
        let roster = fo.durable_roster().clone();
        let wake = fo.poll_timeout();
        let from = self.nodes[i].cand.id;
        self.nodes[i].durable = self.nodes[i].durable.max(durable);
        self.nodes[i].roster = roster;
        assert!(
            status_epoch >= self.status_epochs[i],
            "status epoch went down on {from}"
        );
        self.status_epochs[i] = status_epoch;
        for e in events {
            if let FailoverEvent::BecameLeader { epoch } = e {
                if let Some(&(_, _, last)) = self.acquisitions.last().filter(|_| !self.broken) {
                    assert!(
                        epoch > last,
                        "{from} acquired {epoch} after {last} was held"
                    );
                }
                self.acquisitions.push((self.now, i, epoch));
            }
            self.note(format!("{from} event {e:?}"));
        }
        for (to, msg) in out {
            let Some(j) = self.nodes.iter().position(|n| n.cand.id == to) else {
                continue;
            };
            if !self.connected(i, j) || self.rng.chance(self.net.drop) {
                self.note(format!("{from} -> {to}  {}  (lost)", show(&msg)));
                continue;
            }
            self.note(format!("{from} -> {to}  {}", show(&msg)));
            let copies = if self.rng.chance(self.net.duplicate) {
                2
            } else {
                1
            };
            for _ in 0..copies {
                let delay = if self.rng.chance(self.net.slow) {
                    self.net.delay_min + self.rng.below(self.net.slow_max.max(1) as usize) as Real
                } else {
                    let span = (self.net.delay_max - self.net.delay_min).max(1);
                    self.net.delay_min + self.rng.below(span as usize) as Real
                };
                self.push(
                    self.now + delay,
                    Ev::Deliver {
                        to: j,
                        from,
                        msg: msg.clone(),
                    },
                );
            }
        }
        if let Some(at) = wake {
            let t = self.real_at(i, at);
            if self.nodes[i].wake != Some(t) {
                self.nodes[i].wake = Some(t);
                self.push(t, Ev::Wake(i));
            }
        }
    }

    /// Who each node's membership lists as live now.
    fn live_for(&self, _i: usize) -> Vec<Candidate> {
        self.nodes
            .iter()
            .filter(|n| match n.down_since {
                None => true,
                Some(t) => self.now < t + self.net.detect,
            })
            .map(|n| n.cand.clone())
            .collect()
    }

    /// Runs until real time `until`, checking safety after every step.
    pub fn run_until(&mut self, until: Real) {
        while let Some((&(at, seq), _)) = self.queue.first_key_value() {
            if at > until {
                break;
            }
            let ev = self.queue.remove(&(at, seq)).unwrap();
            self.now = at;
            self.steps += 1;
            match ev {
                Ev::Deliver { to, from, msg } => {
                    let now = self.local(to, at);
                    if let Some(fo) = self.nodes[to].fo.as_mut() {
                        fo.handle_message(now, from, msg);
                        self.after_call(to);
                    }
                }
                Ev::Wake(i) => {
                    if self.nodes[i].wake == Some(at) {
                        self.nodes[i].wake = None;
                        let now = self.local(i, at);
                        if let Some(fo) = self.nodes[i].fo.as_mut() {
                            fo.handle_timeout(now);
                            self.after_call(i);
                        }
                    }
                }
                Ev::Members => {
                    for i in 0..self.nodes.len() {
                        let live = self.live_for(i);
                        let now = self.local(i, at);
                        if let Some(fo) = self.nodes[i].fo.as_mut() {
                            fo.handle_members(now, &live);
                            self.after_call(i);
                        }
                    }
                    self.push(at + 500 * MS, Ev::Members);
                }
            }
            self.check_safety();
        }
        self.now = self.now.max(until);
    }

    /// The nodes holding a lease at the current real instant.
    pub fn holders(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| {
                self.nodes[i]
                    .fo
                    .as_ref()
                    .is_some_and(|fo| fo.holds_lease_at(self.local(i, self.now)))
            })
            .collect()
    }

    fn check_safety(&mut self) {
        let h = self.holders();
        if self.broken {
            self.violations += u64::from(h.len() > 1);
            return;
        }
        assert!(
            h.len() <= 1,
            "SAFETY: nodes {:?} hold a lease at real {} us",
            h.iter().map(|&i| self.nodes[i].cand.id).collect::<Vec<_>>(),
            self.now
        );
    }

    pub fn crash(&mut self, i: usize) {
        if self.nodes[i].fo.take().is_some() {
            self.nodes[i].down_since = Some(self.now);
            self.nodes[i].wake = None;
            let id = self.nodes[i].cand.id;
            self.note(format!("{id} CRASH"));
        }
    }

    pub fn restart(&mut self, i: usize) {
        if self.nodes[i].fo.is_some() {
            return;
        }
        let n = &mut self.nodes[i];
        n.session += 1;
        n.down_since = None;
        let (id, session, durable) = (n.cand.id, n.session, n.durable);
        let roster = n.roster.clone();
        let now = self.local(i, self.now);
        let mut fo = Bare::new(id, self.config.clone(), now)
            .unwrap()
            .with_session(session);
        fo.restore_epoch(durable);
        fo.restore_roster(roster);
        fo.break_majority = self.broken;
        let live = self.live_for(i);
        fo.handle_members(now, &live);
        self.nodes[i].fo = Some(fo);
        self.status_epochs[i] = Epoch::ZERO;
        self.note(format!("{id} RESTART"));
        self.after_call(i);
    }

    /// Switches every node to the broken variant.
    pub fn break_majority(&mut self) {
        self.broken = true;
        for n in &mut self.nodes {
            if let Some(fo) = n.fo.as_mut() {
                fo.break_majority = true;
            }
        }
    }

    /// Puts node `i` in partition group `g` (nodes talk only within a group).
    pub fn set_group(&mut self, i: usize, g: u8) {
        self.nodes[i].group = g;
    }

    pub fn heal(&mut self) {
        for n in &mut self.nodes {
            n.group = 0;
        }
    }

    pub fn fo(&self, i: usize) -> &Failover {
        self.nodes[i].fo.as_ref().unwrap()
    }

    pub fn fo_mut(&mut self, i: usize) -> &mut Bare {
        self.nodes[i].fo.as_mut().unwrap()
    }

    /// Calls `f` on node `i` at the current instant with its local time, then
    /// collects its output.
    pub fn with_node<R>(&mut self, i: usize, f: impl FnOnce(&mut Bare, Millis) -> R) -> R {
        let now = self.local(i, self.now);
        let r = f(self.fo_mut(i), now);
        self.after_call(i);
        self.check_safety();
        r
    }

    /// Runs in steps of 1 ms until a node other than `not` holds the lease (or
    /// `limit` passes); returns when.
    pub fn run_until_holder(&mut self, not: Option<usize>, limit: Real) -> Option<Real> {
        let end = self.now + limit;
        while self.now < end {
            let next = self.now + MS;
            self.run_until(next);
            if self.holders().iter().any(|&h| Some(h) != not) {
                return Some(self.now);
            }
        }
        None
    }
}

/// A compact rendering of a message for traces.
pub fn show(msg: &LeaseMessage) -> String {
    match msg {
        LeaseMessage::Request {
            epoch,
            round,
            holding,
            electorate,
        } => format!(
            "Request {epoch} r{} {}{}",
            round & 0xffff_ffff,
            show_electorate(electorate),
            if *holding { " (renew)" } else { "" }
        ),
        LeaseMessage::Grant { epoch, round } => format!("Grant {epoch} r{}", round & 0xffff_ffff),
        LeaseMessage::Reject {
            epoch,
            round,
            retry_after_ms,
            starting,
            ..
        } => format!(
            "Reject r{} (knows {epoch}, retry in {retry_after_ms} ms{})",
            round & 0xffff_ffff,
            if *starting { ", starting" } else { "" }
        ),
        LeaseMessage::Handover { epoch, to } => format!("Handover {epoch} to {to}"),
        LeaseMessage::Release { epoch } => format!("Release {epoch}"),
    }
}

fn show_electorate(e: &super::Electorate) -> String {
    match e {
        super::Electorate::Bootstrap { expected } => format!("bootstrap of {expected}"),
        super::Electorate::Roster(r) => {
            let ids: Vec<String> = r.voters.iter().map(|v| v.to_string()).collect();
            format!("roster {} [{}]", r.version, ids.join(" "))
        }
    }
}

/// Default timing in the active-passive mode.
pub fn active_passive() -> FailoverConfig {
    FailoverConfig::with_mode(super::FailoverMode::ActivePassive)
}

/// `p`-th percentile (0–100) of `xs` (sorted in place).
pub fn percentile(xs: &mut [Real], p: f64) -> Real {
    xs.sort_unstable();
    if xs.is_empty() {
        return 0;
    }
    let idx = ((p / 100.0) * (xs.len() - 1) as f64).round() as usize;
    xs[idx.min(xs.len() - 1)]
}
