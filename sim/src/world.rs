//! The simulated world: nodes, their clocks and disks, the network, and one queue of
//! everything that will happen, ordered by (time, insertion order).
//!
//! One `World` is one seed. All its randomness comes from that seed: the fault plan,
//! the network's choices (from the world's own RNG) and each node's protocol choices
//! (from a per-node seed derived from it). Nothing iterates a hash map, so the same
//! seed replays the same run, byte for byte.

use core::time::Duration;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use aurora_core::failover::{FailoverMode, LeaseMessage};
use aurora_core::rng::DetRng;
use aurora_core::state::records::{Collection, Model, Record, RecordId};
use aurora_core::state::replica::StateTiming;
use aurora_core::state::store::{Key, Store, Usage};
use aurora_core::testing::{self, Driver, Host};
use aurora_core::wire::{self, MemberUpdate, Message, Rumor};
use aurora_core::{
    Addr, Channel, ClusterId, Command, Config, Event, Identity, Incarnation, Life, LocalChange,
    MemberChange, MemberMeta, Millis, Node, NodeId, Origin, PersistBatch, Restored, Role, Timing,
    Transmit,
};

use crate::faults::{self, FaultKind, FaultProfile};
use crate::net::{self, Fate, LinkConditions, PartitionKind, Partitions};
use crate::observe::{CheckFailure, Observations};
use crate::trace::Trace;

/// A deliberately injected protocol bug, applied by the simulator to what nodes send,
/// to prove the checkers catch real bugs.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Mutation {
    /// Refutations keep the old incarnation: a node "refutes" a suspicion without
    /// overriding it, as if the incarnation rule were ignored.
    RefuteWithoutIncarnation,
    /// A replica that never ships deletes (tombstones are dropped from its
    /// rumours and sync deltas), as if merge ignored them.
    DropTombstones,
    /// A voter that grants every lease request (its refusals become grants), as
    /// if the majority rule were not there.
    GrantEverything,
}

/// Random writes during a run: record puts and deletes on a small key space (so
/// keys are overwritten and deleted concurrently from several nodes) and usage.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    /// Record writes per second, cluster-wide.
    pub writes_per_sec: f64,
    /// Distinct record ids written.
    pub keys: usize,
    /// Share of record writes that are deletes.
    pub delete_ratio: f64,
    /// Usage increments per second, cluster-wide.
    pub usage_per_sec: f64,
}

impl Workload {
    pub fn none() -> Workload {
        Workload {
            writes_per_sec: 0.0,
            keys: 1,
            delete_ratio: 0.0,
            usage_per_sec: 0.0,
        }
    }
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            writes_per_sec: 2.0,
            keys: 16,
            delete_ratio: 0.25,
            usage_per_sec: 4.0,
        }
    }
}

/// Writes stop this long before the end, so the checks see a quiet cluster.
pub const QUIET_TAIL: Duration = Duration::from_secs(30);
/// The simulated wall clock starts here (ms since the Unix epoch, 2027).
const EPOCH_MS: u64 = 1_800_000_000_000;
/// Mixed into a node's seed to derive its first storage life.
const LIFE_SALT: u64 = 0x11fe_0000_5eed_0001;

/// Everything a run is made of, besides its seed.
#[derive(Clone, Debug)]
pub struct SimParams {
    /// Nodes at start.
    pub nodes: usize,
    /// How many of them are seeds the others join through.
    pub seed_nodes: usize,
    /// Nodes start at a random time in `0..start_spread`.
    pub start_spread: Duration,
    /// Phase one: every fault of the profile.
    pub safety: Duration,
    /// Phase two: faults healed; the survivors must converge.
    pub liveness: Duration,
    pub timing: Timing,
    pub profile: ProfileSpec,
    /// Actions at fixed times, on top of the drawn faults.
    pub script: Vec<(Duration, Action)>,
    pub mutation: Option<Mutation>,
    /// Keep readable trace lines (for replay).
    pub trace: bool,
    /// Keep every membership event in `obs.events` (for scenario checks).
    pub record_events: bool,
    pub state: StateTiming,
    pub workload: Workload,
    /// Record when each node persists each entry (for propagation figures).
    pub track_writes: bool,
    /// Records every initial node starts with (as if written long ago by n1).
    pub preload_records: usize,
    /// `None`: drawn from the seed (one of the three modes).
    pub failover_mode: Option<FailoverMode>,
    /// The last initial node is a witness: it votes, never leads, never serves.
    pub witness: bool,
    /// How nodes treat an id they have no binding for.
    pub admission: aurora_core::identity::Admission,
}

impl Default for SimParams {
    fn default() -> Self {
        SimParams {
            nodes: 5,
            seed_nodes: 3,
            start_spread: Duration::from_secs(1),
            safety: Duration::from_secs(60),
            liveness: Duration::from_secs(90),
            timing: Timing::lan(),
            profile: ProfileSpec::Drawn,
            script: Vec::new(),
            mutation: None,
            trace: false,
            record_events: false,
            state: StateTiming::default(),
            workload: Workload::default(),
            track_writes: false,
            preload_records: 0,
            failover_mode: None,
            witness: false,
            admission: aurora_core::identity::Admission::Auto,
        }
    }
}

/// Where a run's fault profile comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum ProfileSpec {
    /// Drawn from the seed, every fault possible (the default).
    Drawn,
    /// Drawn from the seed, but with loss ≤ 10 % and no partitions: the seeds on
    /// which no live node may ever be declared failed.
    Calm,
    Fixed(FaultProfile),
}

/// A scripted or drawn change to the world.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Crash(usize),
    Restart {
        node: usize,
        new_addr: bool,
    },
    Pause {
        node: usize,
        for_ms: u64,
    },
    Resume(usize),
    Slow {
        node: usize,
        extra_ms: u64,
    },
    Partition(PartitionKind),
    /// These nodes on one side, everyone else on the other.
    SplitOff(Vec<usize>),
    Heal,
    /// Start a brand-new node that joins through the seeds.
    Join,
    /// Lose a crashed node's disk: its next restart starts from empty storage
    /// under the same id (a replaced disk, a container without a volume).
    Wipe(usize),
    Leave(usize),
    Broadcast {
        node: usize,
        payload: Vec<u8>,
    },
    /// Switch the link conditions.
    Link(LinkConditions),
    /// Crash whichever node holds the lease now (if any).
    CrashLeader,
    /// The operator forgets node `i` on the node holding the lease now (`POST
    /// cluster/forget`): its voter entry and id → life binding are released.
    Forget(usize),
    /// A holder of the cluster secret speaks as node `i` with another storage
    /// life: it sends every other up node a death rumour about `i` and a lease
    /// release in `i`'s name. Every copy must be dropped as `identity_mismatch`.
    Impersonate(usize),
    /// The operator forgets node `i` on every other up node: what releases a
    /// binding where no roster carries it (a non-voter, or `single_node` mode).
    ForgetEverywhere(usize),
    /// Ask the leader to hand over to the best-ranked other serving node.
    Switchover,
    /// Heal everything and start checking for convergence.
    StartLiveness,
    /// Sample the nodes' views (liveness phase).
    Sample,
}

#[derive(Clone, Debug)]
enum Ev {
    Deliver {
        to: usize,
        from: Addr,
        channel: Channel,
        bytes: Vec<u8>,
    },
    Wake(usize),
    Start(usize),
    Act(Action),
    Fault(FaultKind),
    /// One random record write, then the next is scheduled.
    Write,
    /// One random usage increment, then the next is scheduled.
    Use,
}

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

/// A node's local clock: `local = offset + global · (1 + ppm / 10⁶)`.
#[derive(Copy, Clone, Debug)]
struct Clock {
    offset: u64,
    ppm: i64,
}

impl Clock {
    fn local(&self, global: Millis) -> Millis {
        let g = global.0 as i128;
        Millis((self.offset as i128 + g + g * self.ppm as i128 / 1_000_000) as u64)
    }

    /// The earliest global time at which the local clock reads at least `local`.
    fn global(&self, local: Millis) -> Millis {
        let l = local.0 as i128 - self.offset as i128;
        let g =
            (l * 1_000_000 + (1_000_000 + self.ppm as i128) - 1) / (1_000_000 + self.ppm as i128);
        // The guess is within a millisecond or two; settle it exactly.
        let mut g = g.max(0) as u64;
        while g > 0 && self.local(Millis(g - 1)) >= local {
            g -= 1;
        }
        while self.local(Millis(g)) < local {
            g += 1;
        }
        Millis(g)
    }
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
}

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
        let failover_mode = params
            .failover_mode
            .unwrap_or_else(|| modes[rng.below(modes.len())]);
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

    fn push(&mut self, at: Millis, ev: Ev) {
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s] = Some(ev);
                s
            }
            None => {
                self.slots.push(Some(ev));
                self.slots.len() - 1
            }
        };
        self.next_seq += 1;
        self.queue.push(Reverse((at, self.next_seq, slot)));
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
            .min(aurora_core::failover::FailoverConfig::default().max_voters as usize);
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
            failover: aurora_core::failover::FailoverConfig {
                expected_voters: self.bootstrap_expect(i),
                ..aurora_core::failover::FailoverConfig::with_mode(self.failover_mode)
            },
            admission: self.params.admission,
        };
        // A restarted node draws a fresh seed, as a real process would.
        let seed = self.nodes[i].node_seed ^ u64::from(self.nodes[i].generation) ^ self.now.0;
        let local = self.nodes[i].clock.local(self.now);
        let disk = self.nodes[i].host.disk.clone();
        let node = match Node::new(config, identity, seed, disk, local) {
            Ok(node) => node,
            Err(e) => panic!("simulator built an invalid node config: {e}"),
        };
        let n = &self.nodes[i];
        let wall = EPOCH_MS as i64 + (local.0 - n.clock.offset) as i64 + n.wall_skew;
        let mut node = node;
        node.set_wall_clock(local, wall.max(0) as u64);
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
    fn with_node(&mut self, i: usize, f: impl FnOnce(&mut Node, Millis)) {
        let local = self.nodes[i].clock.local(self.now);
        let Some(node) = self.nodes[i].host.node.as_mut() else {
            return;
        };
        f(node, local);
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

    fn send(&mut self, from: usize, to: Addr, channel: Channel, mut bytes: Vec<u8>) {
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
            Ev::Fault(kind) => {
                if let Some(action) = self.resolve(kind) {
                    self.act(action);
                }
            }
        }
    }

    fn schedule_workload(&mut self, ev: Ev, per_sec: f64) {
        let mean = 1000.0 / per_sec;
        let gap = Duration::from_millis(1 + (2.0 * mean * self.rng.unit()) as u64);
        if self.now + gap + QUIET_TAIL < self.end() {
            self.push(self.now + gap, ev);
        }
    }

    fn random_up_node(&mut self) -> Option<usize> {
        let up: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_up())
            .collect();
        up.get(self.rng.below(up.len().max(1))).copied()
    }

    /// A put or delete of a random model record at a random up node. What the
    /// node acknowledges (returns a timestamp for) must survive everything.
    fn write(&mut self) {
        let Some(i) = self.random_up_node() else {
            return;
        };
        let k = self.rng.below(self.params.workload.keys.max(1));
        let Ok(id) = RecordId::new(format!("model-{k}")) else {
            return;
        };
        let delete = self.rng.chance(self.params.workload.delete_ratio);
        let version = self.rng.next_u64() % 1_000_000;
        let command = if delete {
            Command::Delete {
                collection: Collection::Models,
                id: id.clone(),
            }
        } else {
            let (_, record) = sample_model(k, version);
            Command::Put {
                id: id.clone(),
                record,
            }
        };
        let mut acked = None;
        self.with_node(i, |node, now| {
            if let Ok(Some(hlc)) = node.handle_command(now, command) {
                acked = Some(hlc);
            }
        });
        if let Some(hlc) = acked {
            let key = Key::Record(Collection::Models, id);
            self.obs.acked(key, hlc, !delete);
        }
    }

    fn use_budget(&mut self) {
        let Some(i) = self.random_up_node() else {
            return;
        };
        let b = self.rng.below(4);
        let Ok(budget) = RecordId::new(format!("budget-{b}")) else {
            return;
        };
        let usage = Usage {
            spend_nanos: 1_500,
            requests: 1,
            tokens: 10,
        };
        self.with_node(i, |node, now| {
            let _ = node.handle_command(
                now,
                Command::RecordUsage {
                    budget,
                    period: 1,
                    usage,
                },
            );
        });
    }

    /// Turns a drawn fault kind into a concrete action on the current state, or
    /// nothing if it does not apply (no crashed node to restart, say). At least
    /// half of the nodes stay up, so the liveness phase has a core to converge.
    fn resolve(&mut self, kind: FaultKind) -> Option<Action> {
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

    fn act(&mut self, action: Action) {
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
                        .filter_map(|n| n.node().map(|x| x.replica().store()))
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
    fn impersonate(&mut self, i: usize) {
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
                epoch: aurora_core::failover::Epoch(u64::MAX / 2),
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

    /// The node holding the lease now, by its own clock.
    pub fn lease_holder(&self) -> Option<usize> {
        (0..self.nodes.len()).find(|&i| {
            let n = &self.nodes[i];
            n.node()
                .is_some_and(|x| x.failover().holds_lease_at(n.local(self.now)))
        })
    }

    fn resume(&mut self, i: usize) {
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
        }
    }
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

/// Applies an injected bug to an outgoing packet.
fn mutate(
    m: Mutation,
    cluster: ClusterId,
    sender: NodeId,
    channel: Channel,
    bytes: Vec<u8>,
) -> Vec<u8> {
    let Ok(mut env) = wire::decode(cluster, channel, &bytes) else {
        return bytes;
    };
    match m {
        Mutation::RefuteWithoutIncarnation => {
            let stale = Incarnation(0);
            match &mut env.message {
                Message::Ping { rumors, .. }
                | Message::Ack { rumors, .. }
                | Message::PingReq { rumors, .. }
                | Message::Gossip { rumors } => {
                    for r in rumors.iter_mut() {
                        if let Rumor::Member(MemberUpdate::Alive {
                            node, incarnation, ..
                        }) = r
                        {
                            if *node == sender {
                                *incarnation = stale;
                            }
                        }
                    }
                }
                Message::PushPull { members, .. } => {
                    for r in members.iter_mut().filter(|r| r.node == sender) {
                        r.incarnation = stale;
                    }
                }
                _ => {}
            }
        }
        Mutation::GrantEverything => {
            if let Message::Lease(LeaseMessage::Reject { epoch, round, .. }) = env.message {
                env.message = Message::Lease(LeaseMessage::Grant { epoch, round });
            }
        }
        Mutation::DropTombstones => match &mut env.message {
            Message::Ping { rumors, .. }
            | Message::Ack { rumors, .. }
            | Message::PingReq { rumors, .. }
            | Message::Gossip { rumors } => {
                rumors.retain(|r| !matches!(r, Rumor::State(e) if e.value.is_none()));
            }
            Message::SyncResponse { delta, .. } | Message::SyncPush { delta } => {
                delta.entries.retain(|e| e.value.is_some());
            }
            _ => {}
        },
    }
    wire::encode(cluster, sender, env.life, &env.message)
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

/// A model record whose id is `model-{k}`.
pub fn sample_model(k: usize, version: u64) -> (RecordId, Record) {
    let id = RecordId::new(format!("model-{k}")).unwrap_or_else(|_| unreachable_id());
    let model = Model {
        provider_id: RecordId::new("mock").unwrap_or_else(|_| unreachable_id()),
        upstream_model: format!("upstream-model-v{version}"),
        aliases: Vec::new(),
        context_window: Some(128_000),
        enabled: true,
    };
    (id, Record::Model(model))
}

fn unreachable_id() -> RecordId {
    // Only reached if the id alphabet stopped accepting "model-0"; keep the sim
    // going with an id that is valid by construction.
    RecordId::new("x").expect("a one-letter id is valid")
}

/// `n` records as n1 wrote them long ago, identical on every node that has them.
fn preloaded(n: usize) -> Vec<aurora_core::state::store::Entry> {
    use aurora_core::state::store::{Entry, Value};
    (0..n)
        .map(|k| {
            let (id, record) = sample_model(k, 0);
            Entry {
                key: Key::Record(Collection::Models, id),
                value: Some(Value::Record(record)),
                hlc: aurora_core::Hlc {
                    wall: EPOCH_MS - 1_000,
                    logical: k as u32,
                    origin: aurora_core::Origin::new(NodeId(1), Life(1)),
                },
                seq: k as u64 + 1,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_inverse_is_tight() {
        for ppm in [-9_999, -1, 0, 1, 5_000, 9_999] {
            let c = Clock {
                offset: 12_345,
                ppm,
            };
            for g in [0u64, 1, 999, 1_000_000, 123_456_789] {
                let l = c.local(Millis(g));
                let back = c.global(l);
                assert!(back <= Millis(g), "ppm {ppm} g {g}");
                assert!(c.local(back) >= l);
            }
        }
    }
}
