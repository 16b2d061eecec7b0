//! What a run is made of besides its seed: sizes, phases, profile, scripted actions.

use super::*;

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
    pub admission: aurora_core::Admission,
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
            admission: aurora_core::Admission::Auto,
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
