//! The simulated world: nodes, their clocks and disks, the network, and one queue of
//! everything that will happen, ordered by (time, insertion order).
//!
//! One `World` is one seed. All its randomness comes from that seed: the fault plan,
//! the network's choices (from the world's own RNG) and each node's protocol choices
//! (from a per-node seed derived from it). Nothing iterates a hash map, so the same
//! seed replays the same run, byte for byte.
//!
//! One concern per file: [`params`] (what a run is made of), `queue` (the event
//! queue), `clock` (drifting node clocks), `network` (the faulty network and the world
//! as the `testing` harness's driver), [`workload`] (writes and usage), `actions`
//! (faults and scripted actions), [`mutation`] (injected bugs). This file holds the
//! world itself: its nodes, booting them, and dispatching each event.

use core::time::Duration;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use aurora_core::state::replica::StateTiming;
use aurora_core::state::store::{Key, Store, Usage};
use aurora_core::testing::{self, Driver, Host};
use aurora_core::wire::{self, MemberUpdate, Message, Rumor};
use aurora_core::DetRng;
use aurora_core::{
    Addr, Channel, ClusterId, Command, Config, Event, Identity, Incarnation, Life, LocalChange,
    MemberChange, MemberMeta, Millis, Node, NodeId, Now, Origin, PersistBatch, Restored, Role,
    Timing, Transmit,
};
use aurora_core::{FailoverMode, LeaseMessage};
use aurora_schema::{Collection, Model, Record, RecordId};

use crate::faults::{self, FaultKind, FaultProfile};
use crate::net::{self, Fate, LinkConditions, PartitionKind, Partitions};
use crate::observe::{CheckFailure, Observations};
use crate::trace::Trace;

mod actions;
mod clock;
pub mod mutation;
mod network;
pub mod params;
mod queue;
mod quota;
pub mod workload;

use clock::Clock;
use mutation::mutate;
pub use mutation::Mutation;
pub use network::sim_addr;
pub use params::{Action, ProfileSpec, SimParams};
use queue::Ev;
use workload::preloaded;
pub use workload::{sample_model, QuotaLoad, Workload, QUIET_TAIL};

/// The simulated wall clock starts here (ms since the Unix epoch, 2027).
pub const EPOCH_MS: u64 = 1_800_000_000_000;
/// Mixed into a node's seed to derive its first storage life.
const LIFE_SALT: u64 = 0x11fe_0000_5eed_0001;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Not started yet.
    Pending,
    Up,
    Paused {
        until: Millis,
    },
    Crashed,
    /// Left gracefully and stopped.
    Gone,
}

/// One simulated host.
pub struct SimNode {
    pub id: NodeId,
    pub addr: Addr,
    pub status: Status,
    /// The process, its disk (what survives a crash) and its contract checks.
    pub host: Host,
    clock: Clock,
    /// The global time of the pending wake-up, if any.
    wake_at: Option<Millis>,
    /// Messages that arrived while paused.
    inbox: Vec<(Addr, Channel, Vec<u8>)>,
    /// Extra latency on everything to and from this node.
    pub slow_ms: u64,
    generation: u8,
    node_seed: u64,
    /// This node's wall clock error, ms.
    wall_skew: i64,
    /// The storage life of its disk: a wiped disk is a new life (a new key pair
    /// in the real node). Derived, not drawn, so a wipe leaves the world's random
    /// stream where it was.
    pub life: Life,
}

impl SimNode {
    /// This node's clock reading at global time `t`.
    pub fn local(&self, t: Millis) -> Millis {
        self.clock.local(t)
    }

    /// Both of this node's clocks at global time `t`: its monotonic clock, and a
    /// wall clock that runs with it from [`EPOCH_MS`], off by its `wall_skew`.
    fn now(&self, t: Millis) -> Now {
        let local = self.clock.local(t);
        let wall = EPOCH_MS as i64 + (local.0 - self.clock.offset) as i64 + self.wall_skew;
        Now::new(local, wall.max(0) as u64)
    }

    /// Up and not paused: it answers.
    pub fn is_up(&self) -> bool {
        self.status == Status::Up
    }

    /// The running process, if any.
    pub fn node(&self) -> Option<&Node> {
        self.host.node.as_ref()
    }

    /// What it would restart with.
    pub(crate) fn disk(&self) -> &Restored {
        &self.host.disk
    }
}

pub struct World {
    pub seed: u64,
    pub params: SimParams,
    pub profile: FaultProfile,
    pub failover_mode: FailoverMode,
    pub now: Millis,
    queue: BinaryHeap<Reverse<(Millis, u64, usize)>>,
    /// Event payloads, indexed by the queue's last field (keeps the heap small).
    slots: Vec<Option<Ev>>,
    free: Vec<usize>,
    next_seq: u64,
    pub nodes: Vec<SimNode>,
    by_addr: HashMap<Addr, usize>,
    link: LinkConditions,
    partitions: Partitions,
    rng: DetRng,
    pub trace: Trace,
    pub obs: Observations,
    cluster: ClusterId,
    in_liveness: bool,
    quota: quota::QuotaSim,
}

impl World {
    pub fn new(seed: u64, params: SimParams) -> World {
        let mut rng = DetRng::from_seed(seed);
        let profile = match &params.profile {
            ProfileSpec::Drawn => FaultProfile::draw(&mut rng),
            ProfileSpec::Calm => FaultProfile::draw_calm(&mut rng),
            ProfileSpec::Fixed(p) => p.clone(),
        };
        let modes = [
            FailoverMode::SingleNode,
            FailoverMode::ActivePassive,
            FailoverMode::ActiveActive,
        ];
        let mut failover_mode = params
            .failover_mode
            .unwrap_or_else(|| modes[rng.below(modes.len())]);
        // Quota leases need one grantor for the cluster: in single_node every node
        // grants itself, and one limit is per node.
        if params.workload.quota.is_some() && !failover_mode.elects() {
            failover_mode = FailoverMode::ActivePassive;
        }
        let mut w = World {
            seed,
            link: profile.link.clone(),
            partitions: Partitions::new(0),
            profile,
            now: Millis::ZERO,
            queue: BinaryHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            next_seq: 0,
            nodes: Vec::new(),
            by_addr: HashMap::new(),
            rng,
            trace: Trace::new(params.trace),
            obs: Observations::default(),
            cluster: ClusterId(0xA0A0),
            in_liveness: false,
            quota: quota::QuotaSim::default(),
            failover_mode,
            params,
        };
        let preload = preloaded(w.params.preload_records);
        for _ in 0..w.params.nodes {
            let i = w.add_node();
            for e in &preload {
                w.nodes[i]
                    .host
                    .disk
                    .entries
                    .insert(e.key.clone(), e.clone());
            }
            let spread = w.params.start_spread.as_millis().max(1) as usize;
            let at = Millis(w.rng.below(spread) as u64);
            w.push(at, Ev::Start(i));
        }
        let plan = faults::schedule(&w.profile, w.params.safety, &mut w.rng);
        for (t, kind) in plan {
            w.push(Millis(t), Ev::Fault(kind));
        }
        for (t, action) in w.params.script.clone() {
            w.at(t, action);
        }
        if w.params.workload.writes_per_sec > 0.0 {
            w.push(Millis(1_000), Ev::Write);
        }
        if w.params.workload.usage_per_sec > 0.0 {
            w.push(Millis(1_000), Ev::Use);
        }
        if w.params.workload.quota.is_some() {
            w.push(Millis(1_000), Ev::Quota);
        }
        let liveness_at = Millis::ZERO + w.params.safety;
        w.push(liveness_at, Ev::Act(Action::StartLiveness));
        w
    }

    /// Carries out a command at node `i` now (a scripted write, say).
    pub fn command(&mut self, i: usize, command: Command) -> Option<aurora_core::Hlc> {
        let mut written = None;
        self.with_node(i, |node, now| {
            written = node.handle_command(now, command).ok().flatten();
        });
        written
    }

    /// Schedules a scripted action.
    pub fn at(&mut self, t: Duration, action: Action) {
        self.push(Millis::ZERO + t, Ev::Act(action));
    }

    /// The end of the run.
    pub fn end(&self) -> Millis {
        Millis::ZERO + self.params.safety + self.params.liveness
    }

    /// Runs both phases to the end.
    pub fn run(&mut self) {
        let end = self.end();
        self.run_until(end);
        self.obs.finish(self.now, &self.nodes);
        self.obs.check_state(&self.nodes);
        if self.failover_mode.elects() {
            self.obs.check_leadership(self.now, &self.nodes);
        }
        if self.profile.expects_no_false_positives() {
            self.obs.check_false_positives();
        }
        // The driver contract, checked by the harness on every round of every node.
        for n in &self.nodes {
            self.obs.checks.contract(&n.host.contract);
            for v in n.host.contract.violations() {
                self.obs.failures.push(CheckFailure {
                    check: v.check,
                    detail: v.detail.clone(),
                });
            }
        }
    }

    pub fn run_until(&mut self, end: Millis) {
        while let Some(&Reverse((at, _, slot))) = self.queue.peek() {
            if at > end {
                break;
            }
            self.queue.pop();
            let ev = self.slots[slot].take().expect("queued slots hold an event");
            self.free.push(slot);
            self.now = at;
            self.dispatch(ev);
            if self.failover_mode.elects() {
                self.obs
                    .check_leases(self.now, &self.nodes, |n, t| n.local(t));
            }
        }
        self.now = end;
    }

    fn add_node(&mut self) -> usize {
        let i = self.nodes.len();
        let drift = self.profile.drift_ppm as i64;
        let ppm = if drift > 0 {
            self.rng.below(2 * drift as usize + 1) as i64 - drift
        } else {
            0
        };
        let clock = Clock {
            offset: self.rng.below(1_000_000) as u64,
            ppm,
        };
        let node_seed = self.rng.next_u64();
        let wall_skew = self.rng.below(1_001) as i64 - 500;
        let addr = sim_addr(i, 0);
        let id = NodeId(i as u64 + 1);
        let life = Life(DetRng::from_seed(node_seed ^ LIFE_SALT).next_u64());
        self.nodes.push(SimNode {
            id,
            addr,
            status: Status::Pending,
            host: Host::new(self.cluster, id, life),
            clock,
            wake_at: None,
            inbox: Vec::new(),
            slow_ms: 0,
            generation: 0,
            node_seed,
            wall_skew,
            life,
        });
        self.by_addr.insert(addr, i);
        self.partitions.grow(self.nodes.len());
        i
    }

    fn meta(&self, i: usize) -> MemberMeta {
        let n = &self.nodes[i];
        MemberMeta {
            name: format!("node-{}", i + 1),
            region: format!("region-{}", i % 2),
            zone: format!("zone-{}", i % 3),
            advertise_url: format!("http://{}:8080", n.addr.ip()),
            sync_addr: SocketAddr::new(n.addr.ip(), 7947),
            promotion_tier: (i % 16) as u8,
            capacity: 100,
            role: if self.params.witness && i + 1 == self.params.nodes {
                Role::Witness
            } else {
                Role::Serving
            },
            version: "0.1.0".into(),
            config_fingerprint: 1,
            bootstrap_expect: self.bootstrap_expect(i),
        }
    }

    /// The nodes the cluster starts with are its founders (up to the voter cap), as
    /// an operator sets `expected_voters` on them; later joiners wait to be admitted.
    fn bootstrap_expect(&self, i: usize) -> u32 {
        let founders = self
            .params
            .nodes
            .min(aurora_core::FailoverConfig::default().max_voters as usize);
        if i < founders {
            founders as u32
        } else {
            0
        }
    }

    /// The addresses a starting node joins through: the first `seed_nodes` nodes
    /// at cold start; later, that many nodes that are up (as a discovery service
    /// that tracks live nodes would hand out), so a late joiner is not stranded
    /// because the original seeds happen to be down.
    fn seeds(&mut self, joiner: usize) -> Vec<Addr> {
        let k = self.params.seed_nodes.min(self.nodes.len());
        let original: Vec<usize> = (0..k).collect();
        let up: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| i != joiner && self.nodes[i].is_up())
            .collect();
        let cold_start = original
            .iter()
            .any(|&i| self.nodes[i].status == Status::Pending);
        let chosen = if up.is_empty() || cold_start {
            original
        } else {
            self.rng.sample(&up, k)
        };
        chosen
            .into_iter()
            .filter(|&i| i != joiner)
            .map(|i| self.nodes[i].addr)
            .collect()
    }

    fn boot(&mut self, i: usize) {
        let identity = Identity {
            id: self.nodes[i].id,
            life: self.nodes[i].life,
            addr: self.nodes[i].addr,
            meta: self.meta(i),
        };
        let config = Config {
            cluster: self.cluster,
            timing: self.params.timing.clone(),
            state: self.params.state.clone(),
            failover: aurora_core::FailoverConfig {
                expected_voters: self.bootstrap_expect(i),
                ..aurora_core::FailoverConfig::with_mode(self.failover_mode)
            },
            admission: self.params.admission,
        };
        // A restarted node draws a fresh seed, as a real process would.
        let seed = self.nodes[i].node_seed ^ u64::from(self.nodes[i].generation) ^ self.now.0;
        let now = self.nodes[i].now(self.now);
        let disk = self.nodes[i].host.disk.clone();
        let mut node = match Node::new(
            config,
            identity,
            aurora_schema::GatewaySchema::arc(),
            seed,
            disk,
            now,
        ) {
            Ok(node) => node,
            Err(e) => panic!("simulator built an invalid node config: {e}"),
        };
        if self.params.mutation == Some(Mutation::GrantUnrecorded) {
            node.inject_quota_bug(aurora_core::quota::QuotaBug::GrantUnrecorded);
        }
        self.nodes[i].host.boot(node);
        self.nodes[i].status = Status::Up;
        self.nodes[i].wake_at = None;
        let seeds = self.seeds(i);
        self.with_node(i, |node, now| {
            // Join errors only when the node has left, which a fresh node has not.
            let _ = node.handle_command(now, Command::Join { seeds });
        });
        let who = self.nodes[i].id.to_string();
        let addr = self.nodes[i].addr;
        self.trace
            .event(self.now, &who, || format!("start at {addr}"));
    }

    /// Runs `f` on node `i` at its local time, then carries out its outputs.
    fn with_node(&mut self, i: usize, f: impl FnOnce(&mut Node, Now)) {
        let now = self.nodes[i].now(self.now);
        let Some(node) = self.nodes[i].host.node.as_mut() else {
            return;
        };
        f(node, now);
        testing::drain(self, i);
        self.reschedule(i);
    }

    fn reschedule(&mut self, i: usize) {
        let n = &self.nodes[i];
        let next = n
            .node()
            .and_then(Node::poll_timeout)
            .map(|local| n.clock.global(local).max(self.now));
        if next.is_some() && next != n.wake_at {
            self.nodes[i].wake_at = next;
            if let Some(at) = next {
                self.push(at, Ev::Wake(i));
            }
        }
    }

    fn dispatch(&mut self, ev: Ev) {
        match ev {
            Ev::Deliver {
                to,
                from,
                channel,
                bytes,
            } => match self.nodes[to].status {
                Status::Up => {
                    self.trace.delivery(self.now, to, &bytes);
                    self.with_node(to, |node, now| match channel {
                        Channel::Datagram => node.handle_datagram(now, from, &bytes),
                        Channel::Stream => node.handle_stream(now, from, &bytes),
                    });
                }
                Status::Paused { .. } => self.nodes[to].inbox.push((from, channel, bytes)),
                _ => {}
            },
            Ev::Wake(i) => {
                if self.nodes[i].wake_at == Some(self.now) && self.nodes[i].is_up() {
                    self.nodes[i].wake_at = None;
                    self.with_node(i, |node, now| node.handle_timeout(now));
                }
            }
            Ev::Start(i) => {
                if self.nodes[i].status == Status::Pending {
                    self.boot(i);
                }
            }
            Ev::Act(action) => self.act(action),
            Ev::Write => {
                let rate = self.params.workload.writes_per_sec;
                self.write();
                self.schedule_workload(Ev::Write, rate);
            }
            Ev::Use => {
                let rate = self.params.workload.usage_per_sec;
                self.use_budget();
                self.schedule_workload(Ev::Use, rate);
            }
            Ev::Quota => {
                let rate = self
                    .params
                    .workload
                    .quota
                    .as_ref()
                    .map_or(1.0, |q| q.per_sec);
                self.quota_tick();
                self.schedule_workload(Ev::Quota, rate);
            }
            Ev::QuotaSend { node, to, message } => self.quota_send(node, to, message),
            Ev::Fault(kind) => {
                if let Some(action) = self.resolve(kind) {
                    self.act(action);
                }
            }
        }
    }

    /// The node holding the lease now, by its own clock.
    pub fn lease_holder(&self) -> Option<usize> {
        (0..self.nodes.len()).find(|&i| {
            let n = &self.nodes[i];
            n.node()
                .is_some_and(|x| x.view().holds_lease_at(n.local(self.now)))
        })
    }

    fn on_event(&mut self, i: usize, e: Event) {
        let who = self.nodes[i].id.to_string();
        match &e {
            Event::Member { node, change } => {
                self.obs
                    .member_event(i, *node, *change, self.now, &self.nodes);
                if self.params.record_events {
                    let observer = self.nodes[i].id;
                    self.obs.events.push((self.now, observer, *node, *change));
                }
                let (node, change) = (*node, *change);
                self.trace
                    .event(self.now, &who, || format!("{change:?} {node}"));
            }
            Event::Local(change) => {
                if *change == LocalChange::Left {
                    self.nodes[i].status = Status::Gone;
                    self.nodes[i].host.crash();
                }
                let change = *change;
                self.trace
                    .event(self.now, &who, || format!("self {change:?}"));
            }
            Event::Broadcast { payload, .. } => {
                let receiver = self.nodes[i].id;
                self.obs.broadcast_receipt(receiver, payload, self.now);
            }
            Event::Failover(f) => {
                let f = f.clone();
                self.trace.event(self.now, &who, || format!("{f:?}"));
            }
            Event::IdentityMismatch { .. } | Event::AdmissionPending { .. } => {
                let e = e.clone();
                self.trace.event(self.now, &who, || format!("{e:?}"));
            }
            // A lease message with no address: a consequence of the membership
            // and lease decisions already hashed, shown in replays only.
            Event::FailoverUndeliverable { .. } => {
                let e = e.clone();
                self.trace.note(self.now, &who, || format!("{e:?}"));
            }
            Event::Quota { from, message } => {
                let (from, message) = (*from, message.clone());
                self.quota_event(i, from, message);
            }
        }
    }
}

/// Describes a member change for readers of checker failures.
pub fn describe_change(change: MemberChange) -> &'static str {
    match change {
        MemberChange::Joined => "joined",
        MemberChange::Suspected => "suspected",
        MemberChange::AliveAgain => "alive again",
        MemberChange::Failed => "failed",
        MemberChange::Left => "left",
        MemberChange::Updated => "updated",
        MemberChange::Reaped => "reaped",
    }
}
