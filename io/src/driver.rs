//! The driver: one tokio task that owns the [`Node`] and carries out its outputs.
//!
//! Why one task: the core is a plain `&mut` state machine; owning it in one task needs no
//! lock and keeps its inputs in one total order, which is also what the simulator models.
//!
//! The loop feeds the node inbound messages, local requests and timeouts, and after every
//! round drains `poll_output` completely. The persistence contract:
//!
//! * every `Persist` batch drained in a round is committed to SQLite (all of them in one
//!   transaction) **before** any `Transmit` of that round is handed to the transport.
//!   Committing a batch earlier than strictly required is always safe; sending before the
//!   commit is never done. If the commit fails the driver stops without sending: it can no
//!   longer keep its promises, so it must not speak;
//! * a local command is acknowledged to its caller only after that commit. Commands that
//!   are queued together are handled in one round, so a burst costs one transaction.
//!
//! Reads go through [`Handle::view`]: an immutable [`ClusterView`] swapped into a
//! `watch` channel after rounds that changed something (and at least every
//! [`VIEW_REFRESH`] otherwise, for heartbeats), so readers never block the driver.
//!
//! The replicated store has its own channel, [`Handle::state`]: a [`StateSnapshot`] of
//! persistent maps updated from the keys each round persisted, published right after
//! the commit and *before* the round's writes are acknowledged, so a client that got
//! its acknowledgement reads its own write from the snapshot.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aurora_core::{
    Command, CommandError, Config, ConfigError, DecodeError, Effect, Event, Identity, LocalChange,
    MemberChange, Millis, Node, PersistBatch, PersistItem,
};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::store::{Store, StoreError};
use crate::transport::{Inbound, PeerCalls, Transport};
use crate::view::{
    ClusterView, LocalStatus, MemberView, ReplicaCounters, StateSnapshot, StrangerKind,
    StrangerView, ViewMetrics,
};

/// Most requests or inbound messages taken in one round, so a flood of one kind cannot
/// starve the other or the timers.
const MAX_ROUND: usize = 256;
/// The view is refreshed at least this often while anything happens.
pub const VIEW_REFRESH: Duration = Duration::from_millis(250);
const REQUEST_QUEUE: usize = 1024;
const EVENT_QUEUE: usize = 1024;

/// Why the driver stopped, or a request failed.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("storage failed: {0}")]
    Store(#[from] StoreError),
    #[error("the core refused the configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("the node refused the command: {0}")]
    Command(#[from] CommandError),
    #[error("the driver has stopped")]
    Stopped,
    #[error("graceful leave did not finish within {0:?}")]
    LeaveTimeout(Duration),
}

/// What the driver is started with.
#[derive(Clone, Debug)]
pub struct DriverConfig {
    pub config: Config,
    pub identity: Identity,
    /// Seeds the node's RNG. Production draws it from the OS; tests fix it.
    pub seed: u64,
    /// Joined through at start-up (own address excluded). Empty: start alone.
    pub seeds: Vec<SocketAddr>,
    /// Seed names that did not resolve at start-up and are being retried
    /// ([`crate::seeds`]). While any is pending the node counts as joining peers
    /// (readiness waits for a first sync), since the name may be another member.
    pub pending_seeds: usize,
}

enum Request {
    Command {
        // Boxed: a command can carry a whole record.
        command: Box<Command>,
        reply: oneshot::Sender<Result<(), DriverError>>,
    },
    Leave {
        reply: oneshot::Sender<Result<(), DriverError>>,
    },
    Stop,
    /// From the seed retry task: addresses a late name resolved to (may be empty
    /// after a failed attempt), names still pending, failed attempts so far.
    Seeds {
        addrs: Vec<SocketAddr>,
        pending: usize,
        failures: u64,
    },
}

/// The caller's side of a running driver. Dropping it stops the node (without leaving).
#[derive(Debug)]
pub struct Handle {
    requests: mpsc::Sender<Request>,
    view: watch::Receiver<Arc<ClusterView>>,
    state: watch::Receiver<Arc<StateSnapshot>>,
    events: broadcast::Sender<Event>,
    task: JoinHandle<Result<(), DriverError>>,
    calls: PeerCalls,
}

impl Handle {
    /// The latest snapshot. Never waits for the driver.
    pub fn view(&self) -> Arc<ClusterView> {
        self.view.borrow().clone()
    }

    /// A receiver that is notified of each new snapshot.
    pub fn watch(&self) -> watch::Receiver<Arc<ClusterView>> {
        self.view.clone()
    }

    /// The latest snapshot of the replicated store. Never waits for the driver.
    pub fn state(&self) -> Arc<StateSnapshot> {
        self.state.borrow().clone()
    }

    /// A receiver notified after each round that changed the replicated store.
    pub fn watch_state(&self) -> watch::Receiver<Arc<StateSnapshot>> {
        self.state.clone()
    }

    /// The sink of the seed retry task: a weak sender, so it never keeps the driver
    /// alive after every handle is gone.
    pub(crate) fn seed_sink(&self) -> DriverSeedSink {
        DriverSeedSink(self.requests.downgrade())
    }

    /// A cloneable sender of commands, for tasks that must not own the handle.
    pub fn commander(&self) -> Commander {
        Commander {
            requests: self.requests.clone(),
        }
    }

    /// Events from the core (membership changes, broadcasts). A subscriber that falls
    /// behind loses the oldest events, never blocks the driver.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Where to subscribe to the events later, for tasks that must not own the
    /// handle (cheap to clone).
    pub fn event_source(&self) -> EventSource {
        EventSource(self.events.clone())
    }

    /// Runs a command; returns once everything it made durable is committed.
    pub async fn command(&self, command: Command) -> Result<(), DriverError> {
        send_command(&self.requests, command).await
    }

    /// Leaves gracefully: the core gossips its departure, then the driver stops. If that
    /// takes longer than `deadline` the driver is stopped anyway.
    pub async fn leave(self, deadline: Duration) -> Result<(), DriverError> {
        let (reply, rx) = oneshot::channel();
        self.requests
            .send(Request::Leave { reply })
            .await
            .map_err(|_| DriverError::Stopped)?;
        let outcome = match tokio::time::timeout(deadline, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(DriverError::Stopped),
            Err(_) => Err(DriverError::LeaveTimeout(deadline)),
        };
        let _ = self.requests.send(Request::Stop).await;
        let finished = self.join().await;
        outcome.and(finished)
    }

    /// Stops without leaving (peers will detect the failure).
    pub async fn stop(self) -> Result<(), DriverError> {
        let _ = self.requests.send(Request::Stop).await;
        self.join().await
    }

    /// Waits for the driver task to end.
    pub async fn join(self) -> Result<(), DriverError> {
        match self.task.await {
            Ok(result) => result,
            Err(_) => Err(DriverError::Stopped),
        }
    }

    /// Calls to and from peers over the node's connections ([`crate::transport::call`]).
    /// Cheap to clone; once the driver stopped (and closed the transport) calls fail.
    pub fn peer_calls(&self) -> PeerCalls {
        self.calls.clone()
    }

    /// Whether the driver task has ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// Subscribes to a driver's events ([`Handle::subscribe`]); cheap to clone.
#[derive(Clone, Debug)]
pub struct EventSource(broadcast::Sender<Event>);

impl EventSource {
    /// A new subscription: the events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.0.subscribe()
    }
}

/// Sends commands to a running driver; cheap to clone. It cannot stop the driver.
#[derive(Clone, Debug)]
pub struct Commander {
    requests: mpsc::Sender<Request>,
}

impl Commander {
    /// Runs a command; returns once everything it made durable is committed (and the
    /// state snapshot that contains it is published).
    pub async fn command(&self, command: Command) -> Result<(), DriverError> {
        send_command(&self.requests, command).await
    }

    /// Queues a command without waiting for it (nobody hears how it went): `false`
    /// when the driver's queue is full or it stopped.
    pub fn try_command(&self, command: Command) -> bool {
        let (reply, _) = oneshot::channel();
        self.requests
            .try_send(Request::Command {
                command: Box::new(command),
                reply,
            })
            .is_ok()
    }
}

/// Reports of the seed retry task ([`crate::seeds`]) to the driver.
pub(crate) struct DriverSeedSink(mpsc::WeakSender<Request>);

impl DriverSeedSink {
    async fn send(&self, addrs: Vec<SocketAddr>, pending: usize, failures: u64) -> bool {
        match self.0.upgrade() {
            Some(tx) => tx
                .send(Request::Seeds {
                    addrs,
                    pending,
                    failures,
                })
                .await
                .is_ok(),
            None => false,
        }
    }
}

impl crate::seeds::SeedSink for DriverSeedSink {
    async fn resolved(&self, addrs: Vec<SocketAddr>, pending: usize, failures: u64) -> bool {
        self.send(addrs, pending, failures).await
    }

    async fn failed(&self, pending: usize, failures: u64) -> bool {
        self.send(Vec::new(), pending, failures).await
    }
}

async fn send_command(
    requests: &mpsc::Sender<Request>,
    command: Command,
) -> Result<(), DriverError> {
    let (reply, rx) = oneshot::channel();
    requests
        .send(Request::Command {
            command: Box::new(command),
            reply,
        })
        .await
        .map_err(|_| DriverError::Stopped)?;
    rx.await.map_err(|_| DriverError::Stopped)?
}

/// Starts the driver task. `inbound` is the receiving end of the channel given to the
/// transport.
pub fn start(
    cfg: DriverConfig,
    store: Store,
    transport: Transport,
    inbound: mpsc::Receiver<Inbound>,
) -> Result<Handle, DriverError> {
    let clock = Clock::start();
    let restored = store.load()?;
    let node = Node::new(
        cfg.config,
        cfg.identity.clone(),
        aurora_schema::GatewaySchema::arc(),
        cfg.seed,
        restored,
        clock.read(),
    )?;
    let (requests_tx, requests) = mpsc::channel(REQUEST_QUEUE);
    let (view_tx, view) = watch::channel(Arc::new(ClusterView::default()));
    let built = std::time::Instant::now();
    let mut snapshot = StateSnapshot::build(node.view().store(), node.view().origin());
    snapshot.wall_ms = node.view().wall(clock.now());
    tracing::info!(
        records = snapshot.live_records(),
        build_ms = built.elapsed().as_millis() as u64,
        "state snapshot built"
    );
    let (state_tx, state) = watch::channel(Arc::new(snapshot.clone()));
    let live_count = node.view().store().live_count();
    let (events, _) = broadcast::channel(EVENT_QUEUE);
    let seeds: Vec<SocketAddr> = cfg
        .seeds
        .into_iter()
        .filter(|s| *s != cfg.identity.addr)
        .collect();
    let calls = PeerCalls::new(transport.clone());
    let mut driver = Driver {
        node,
        clock,
        store,
        transport,
        inbound,
        requests,
        view: view_tx,
        events: events.clone(),
        status: LocalStatus::Joining,
        leaving: Vec::new(),
        commits: 0,
        persisted_batches: 0,
        last_view: None,
        // No version: the first view copies the restored ledger.
        quota_ledger: (u64::MAX, Arc::default()),
        quota_copied: None,
        dirty: true,
        snapshot,
        state: state_tx,
        live_count,
        counters: ReplicaCounters::default(),
        joins_peers: !seeds.is_empty() || cfg.pending_seeds > 0,
        seed_addrs: seeds.clone(),
        own_addr: cfg.identity.addr,
        seeds_unresolved: cfg.pending_seeds,
        seed_failures: cfg.pending_seeds as u64,
        stopped: None,
    };
    // Readers get a real view (id, address, incarnation) from the first moment.
    driver.publish(true);
    let task = tokio::spawn(driver.run(seeds));
    Ok(Handle {
        requests: requests_tx,
        view,
        state,
        events,
        task,
        calls,
    })
}

struct Driver {
    node: Node,
    clock: Clock,
    store: Store,
    transport: Transport,
    inbound: mpsc::Receiver<Inbound>,
    requests: mpsc::Receiver<Request>,
    view: watch::Sender<Arc<ClusterView>>,
    events: broadcast::Sender<Event>,
    status: LocalStatus,
    leaving: Vec<Reply>,
    commits: u64,
    persisted_batches: u64,
    last_view: Option<Millis>,
    /// The keeper's ledger as last published, and its version (copied only when it
    /// changed).
    quota_ledger: (u64, Arc<aurora_core::quota::Ledger>),
    /// When the ledger was last copied.
    quota_copied: Option<Millis>,
    dirty: bool,
    /// The working copy of the published state snapshot.
    snapshot: StateSnapshot,
    state: watch::Sender<Arc<StateSnapshot>>,
    /// The store's live register count at the last publish.
    live_count: usize,
    counters: ReplicaCounters,
    /// Started with seeds to join (see [`ClusterView::joins_peers`]).
    joins_peers: bool,
    /// Every seed address known (own excluded): at start and resolved since.
    seed_addrs: Vec<SocketAddr>,
    /// This node's gossip address (never a seed).
    own_addr: SocketAddr,
    /// Seed names not resolved yet, and failed resolution attempts so far.
    seeds_unresolved: usize,
    seed_failures: u64,
    /// Why the loop ended on an error (published in the last view).
    stopped: Option<String>,
}

/// Where a request's outcome goes.
type Reply = oneshot::Sender<Result<(), DriverError>>;

/// What a round asks of the loop afterwards.
#[derive(Default)]
struct Round {
    acks: Vec<(Reply, Result<(), DriverError>)>,
    stop: bool,
}

impl Driver {
    async fn run(mut self, seeds: Vec<SocketAddr>) -> Result<(), DriverError> {
        let result = self.run_inner(seeds).await;
        // Not logged here: the reason goes into the last view and the task's result,
        // and the process that owns the driver logs it once, with what it does next.
        if let Err(e) = &result {
            self.stopped = Some(e.to_string());
        }
        self.transport.close().await;
        self.publish(true);
        result
    }

    async fn run_inner(&mut self, seeds: Vec<SocketAddr>) -> Result<(), DriverError> {
        // The node's first output is the incarnation it starts with: commit it before
        // the join sends anything.
        let mut round = Round::default();
        if seeds.is_empty() {
            self.status = LocalStatus::Active;
        } else {
            let now = self.clock.read();
            if let Err(e) = self.node.handle_command(now, Command::Join { seeds }) {
                tracing::warn!(error = %e, "join refused");
            }
        }
        self.flush(&mut round)?;
        self.publish(true);
        loop {
            let mut round = Round::default();
            let deadline = self.node.poll_timeout().map(|t| self.clock.instant(t));
            tokio::select! {
                request = self.requests.recv() => match request {
                    Some(request) => {
                        self.handle_request(request, &mut round);
                        while round.acks.len() < MAX_ROUND && !round.stop {
                            match self.requests.try_recv() {
                                Ok(request) => self.handle_request(request, &mut round),
                                Err(_) => break,
                            }
                        }
                    }
                    // Every handle is gone: nobody can stop us any other way.
                    None => round.stop = true,
                },
                message = self.inbound.recv() => {
                    if let Some(message) = message {
                        self.feed(message);
                        for _ in 1..MAX_ROUND {
                            match self.inbound.try_recv() {
                                Ok(message) => self.feed(message),
                                Err(_) => break,
                            }
                        }
                    }
                }
                () = sleep_until(deadline) => {}
            }
            // Timers are checked every round, so a flood of packets cannot starve them.
            if let Some(due) = self.node.poll_timeout() {
                let now = self.clock.read();
                if now.mono >= due {
                    self.node.handle_timeout(now);
                }
            }
            let flushed = self.flush(&mut round);
            if let Err(e) = &flushed {
                // Published before any caller hears of the failure, so whoever is told
                // "stopped" and then asks the node (`/health/ready`) is told the same.
                self.stopped = Some(e.to_string());
                self.publish(true);
            }
            // Acknowledge only after the commit; on failure every caller hears of it.
            for (reply, result) in round.acks {
                let result = match (&flushed, result) {
                    (Err(_), _) => Err(DriverError::Stopped),
                    (Ok(()), r) => r,
                };
                let _ = reply.send(result);
            }
            flushed?;
            if round.stop || self.status == LocalStatus::Left {
                return Ok(());
            }
            self.publish(false);
        }
    }

    fn feed(&mut self, message: Inbound) {
        let now = self.clock.read();
        match message.channel {
            aurora_core::Channel::Datagram => {
                self.node.handle_datagram(now, message.from, &message.bytes)
            }
            aurora_core::Channel::Stream => {
                self.node.handle_stream(now, message.from, &message.bytes)
            }
        }
    }

    fn handle_request(&mut self, request: Request, round: &mut Round) {
        let now = self.clock.read();
        match request {
            Request::Command { command, reply } => {
                let result = self
                    .node
                    .handle_command(now, *command)
                    .map(drop)
                    .map_err(Into::into);
                round.acks.push((reply, result));
            }
            Request::Leave { reply } => match self.node.handle_command(now, Command::Leave) {
                Ok(_) => self.leaving.push(reply),
                Err(e) => round.acks.push((reply, Err(e.into()))),
            },
            Request::Stop => {
                // Committed by this round's flush, before the loop ends.
                self.node.publish_usage(now);
                round.stop = true;
            }
            Request::Seeds {
                addrs,
                pending,
                failures,
            } => self.add_seeds(addrs, pending, failures),
        }
    }

    /// A late seed name resolved (or failed again). New addresses go to the core,
    /// which joins through them if this node is alone. Once no name is pending and
    /// every one of them was this node itself, the node is a founder alone, as if
    /// started without seeds: it has no peer to wait for.
    fn add_seeds(&mut self, addrs: Vec<SocketAddr>, pending: usize, failures: u64) {
        self.dirty = true;
        self.seeds_unresolved = pending;
        self.seed_failures = failures;
        let own = self.own_addr;
        let new: Vec<SocketAddr> = addrs
            .into_iter()
            .filter(|a| *a != own && !self.seed_addrs.contains(a))
            .collect();
        if !new.is_empty() {
            self.seed_addrs.extend(&new);
            let now = self.clock.read();
            if let Err(e) = self
                .node
                .handle_command(now, Command::AddSeeds { seeds: new })
            {
                tracing::warn!(error = %e, "late seeds refused");
            }
        }
        if pending == 0 && self.seed_addrs.is_empty() && self.node.view().first_sync().is_none() {
            self.joins_peers = false;
        }
    }

    /// Drains every output: commits all persist batches in one transaction, then sends
    /// and reports in order (the split is the core's [`aurora_core::Round`], the same
    /// one the simulator's and the fuzzer's harness runs on).
    fn flush(&mut self, round: &mut Round) -> Result<(), DriverError> {
        let aurora_core::Round {
            persists: batches,
            effects,
        } = aurora_core::Round::drain(&mut self.node);
        if !batches.is_empty() {
            let started = std::time::Instant::now();
            self.store.apply_all(&batches)?;
            self.counters
                .observe_commit(started.elapsed().as_micros() as u64);
            self.commits += 1;
            self.persisted_batches += batches.len() as u64;
            self.publish_state(&batches);
        }
        for (_, effect) in effects {
            match effect {
                Effect::Transmit(t) => self.transport.send(t.to, t.channel, t.bytes),
                Effect::Event(event) => self.on_event(event, round),
            }
        }
        Ok(())
    }

    fn on_event(&mut self, event: Event, round: &mut Round) {
        self.dirty = true;
        match &event {
            Event::Member { node, change } => match change {
                MemberChange::Failed | MemberChange::Suspected => {
                    tracing::warn!(member = %node, ?change, "member change")
                }
                _ => tracing::info!(member = %node, ?change, "member change"),
            },
            Event::Local(change) => {
                tracing::info!(?change, "local change");
                match change {
                    LocalChange::Joined => self.status = LocalStatus::Active,
                    LocalChange::Left => {
                        self.status = LocalStatus::Left;
                        for reply in self.leaving.drain(..) {
                            round.acks.push((reply, Ok(())));
                        }
                    }
                    LocalChange::Refuted(_) => {}
                }
            }
            Event::Broadcast { .. } => {}
            Event::Failover(change) => tracing::info!(?change, "failover"),
            Event::IdentityMismatch {
                node,
                presented,
                bound,
                from,
            } => tracing::warn!(
                member = %node, %presented, %bound, %from,
                "a peer presented an unknown key (storage life) for a bound node id; its messages are dropped"
            ),
            Event::FailoverUndeliverable { to } => tracing::warn!(
                member = %to,
                "a lease message is addressed to a voter this node has no address for; not sent (counted in aurora_cluster_lease_undeliverable_total)"
            ),
            Event::AdmissionPending { node, life, from } => tracing::warn!(
                member = %node, %life, %from,
                "an unknown node waits for an operator's admission (cluster.admission: manual)"
            ),
            // For the quota holder, a subscriber of the events.
            Event::Quota { .. } => {}
        }
        // No subscriber is fine.
        let _ = self.events.send(event);
    }

    /// Updates the state snapshot from the keys the batches persisted and publishes it.
    /// Runs after the commit and before any acknowledgement of the round.
    fn publish_state(&mut self, batches: &[PersistBatch]) {
        let started = std::time::Instant::now();
        let store = self.node.view().store();
        let own = self.node.view().origin();
        let mut changed = false;
        let mut other = false;
        for batch in batches {
            for item in &batch.items {
                #[allow(unreachable_patterns)]
                match item {
                    PersistItem::Entry(entry) => {
                        self.snapshot.apply_key(store, own, &entry.key);
                        changed = true;
                    }
                    PersistItem::OwnSeq(_) | PersistItem::Incarnation(_) => {}
                    // Removals (collected tombstones, a resync from scratch): only a
                    // change of the live count can matter to readers, and then the
                    // snapshot is rebuilt whole (rare: a resync after a long absence).
                    _ => other = true,
                }
            }
        }
        if other && store.live_count() != self.live_count {
            let version = self.snapshot.version;
            self.snapshot = StateSnapshot::build(store, own);
            self.snapshot.version = version;
            changed = true;
        }
        self.live_count = store.live_count();
        if !changed {
            return;
        }
        self.snapshot.version += 1;
        self.snapshot.digest = store.digest();
        self.snapshot.wall_ms = self.node.view().wall(self.clock.now());
        self.state.send_replace(Arc::new(self.snapshot.clone()));
        self.dirty = true;
        let micros = started.elapsed().as_micros() as u64;
        self.counters.publishes += 1;
        self.counters.publish_micros_total += micros;
        self.counters.publish_micros_max = self.counters.publish_micros_max.max(micros);
    }

    /// Swaps in a new view if something changed or the last one is stale.
    fn publish(&mut self, force: bool) {
        let now = self.clock.now();
        let stale = self
            .last_view
            .is_none_or(|at| now.since(at) >= VIEW_REFRESH);
        if !(force || self.dirty || stale) {
            return;
        }
        self.dirty = false;
        self.last_view = Some(now);
        let membership = self.node.view();
        let metrics = self.node.metrics();
        // The copy costs a walk of the whole ledger: at most once per refresh period
        // (the admin API reads it; a second's lag is fine there).
        let keeper = self.node.view().quota_keeper();
        let due = self
            .quota_copied
            .is_none_or(|at| now.since(at) >= VIEW_REFRESH);
        if self.quota_ledger.0 != keeper.version() && due {
            self.quota_ledger = (keeper.version(), Arc::new(keeper.ledger().clone()));
            self.quota_copied = Some(now);
        }
        let view = ClusterView {
            failover: Some(self.node.view().failover_status()),
            node_id: Some(self.node.id()),
            node_name: membership.meta().name.clone(),
            addr: self.transport.local_addr(),
            incarnation: membership.incarnation(),
            status: self.status,
            members: self
                .node
                .members()
                .map(|m| MemberView {
                    id: m.id,
                    addr: m.addr,
                    meta: m.meta.clone(),
                    liveness: m.liveness,
                    incarnation: m.incarnation,
                    heartbeat: m.heartbeat,
                    last_heartbeat: m.last_heartbeat,
                })
                .collect(),
            metrics: ViewMetrics {
                packets_in: metrics.packets_in,
                packets_out: metrics.packets_out,
                bytes_in: metrics.bytes_in,
                bytes_out: metrics.bytes_out,
                decode_dropped: DecodeError::ALL
                    .iter()
                    .map(|e| (e.label(), metrics.dropped[e.index()]))
                    .chain([
                        ("identity_mismatch", metrics.identity_mismatch),
                        ("pending_admission", metrics.pending_admission),
                    ])
                    .collect(),
                lease_undeliverable: metrics.failover_undeliverable,
                quota_undeliverable: metrics.quota_undeliverable,
                transport: self.transport.stats(),
                commits: self.commits,
                persisted_batches: self.persisted_batches,
            },
            at: now,
            lag: self.node.view().lag().clone(),
            replica: {
                let stats = self.node.view().replica_stats();
                ReplicaCounters {
                    local_writes: stats.local_writes,
                    applied_from_gossip: stats.applied_from_gossip,
                    applied_from_sync: stats.applied_from_sync,
                    live_records: self.snapshot.live_records() as u64,
                    ..self.counters.clone()
                }
            },
            joins_peers: self.joins_peers,
            seeds_unresolved: self.seeds_unresolved,
            seed_resolve_failures: self.seed_failures,
            first_sync: self.node.view().first_sync(),
            stopped: self.stopped.clone(),
            life: self.node.life(),
            admission: self.node.bindings().admission(),
            strangers: {
                let b = self.node.bindings();
                let mismatched = b.mismatched().map(|s| {
                    let bound = b.life_of(s.node).unwrap_or_default();
                    StrangerView::of(s, StrangerKind::Mismatch { bound })
                });
                let pending = b
                    .pending()
                    .map(|s| StrangerView::of(s, StrangerKind::Pending));
                mismatched.chain(pending).collect()
            },
            quota_ledger: Arc::clone(&self.quota_ledger.1),
        };
        self.view.send_replace(Arc::new(view));
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
