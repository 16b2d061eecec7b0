//! Quota leases (docs/quota.md): this node's holder of the cluster's request limits,
//! and the task that carries its asks to the lease holder and the grants back.
//!
//! Two limits are admitted here in a cluster that elects a leader, not from the
//! replicated counters nor from this node's memory alone ([`LimitKind`]):
//!
//! - a budget's `max_requests` per period (one window per period);
//! - a key's `rpm_limit`, as a rolling minute: the minute is cut into windows of
//!   [`RPM_WINDOW`], and a request counts against [`RPM_SPAN`] windows from its own
//!   on (65 s), so that no 60 s, wherever they start, admit more than the limit; a
//!   key may burst its whole minute, and sustains `limit × 60 / 65` per minute.
//!
//! A request takes one unit from the slice this node holds (no network on the
//! request path), and the holder asks the lease holder for more before the slice
//! runs out. Admitted requests across the cluster never exceed the limit (the
//! counters, which learn of other nodes' requests a second later, let 154 through a
//! 100-request limit at 300 req/s over three nodes; the leases 100, see
//! docs/benchmarks-gateway.md). A request that ends without an answer gives its unit
//! back, as it gives back its reservation. [`Leases::take`] is how a request waits
//! (briefly) for its unit when the node holds none yet.
//!
//! Where no leader is elected (`single_node`, or clustering off) every node would be
//! its own grantor and the limit would be per node: budgets keep the counters there.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use aurora_core::quota::{
    Admission, Holder, OnPartition, QuotaKey, QuotaLimit, QuotaMessage, QuotaTiming, Refusal,
    Session,
};
use aurora_core::{Command, Event, Millis, NodeId};
use tokio::sync::Notify;

use aurora_schema::BudgetPeriod;

use crate::cluster::ClusterInfo;
use crate::metrics::exposition::{Exposition, Kind};

/// How long a request whose node holds no capacity yet waits for a grant (the
/// first requests of a period on each node, or those arriving faster than the
/// slices are refilled) before it is refused with 429 `budget_pending`.
pub const GRANT_WAIT: Duration = Duration::from_millis(250);

/// The windows a key's rolling requests-per-minute limit is counted in.
pub const RPM_WINDOW: Duration = Duration::from_secs(5);

/// How many windows of [`RPM_WINDOW`] a request counts against: 13, so that a
/// request admitted anywhere in a window still counts a full minute later.
pub const RPM_SPAN: u32 = 13;

/// Which limit a quota is: they are counted apart in `/metrics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitKind {
    /// A budget's `max_requests` in one period.
    BudgetRequests,
    /// A key's `rpm_limit`, a rolling minute.
    KeyRpm,
    /// A budget's spend `limit` in one period, in nano-USD.
    BudgetSpend,
    /// A key's `tpm_limit`, a rolling minute of tokens.
    KeyTpm,
}

impl LimitKind {
    const ALL: [LimitKind; 4] = [
        LimitKind::BudgetRequests,
        LimitKind::KeyRpm,
        LimitKind::BudgetSpend,
        LimitKind::KeyTpm,
    ];

    fn label(self) -> &'static str {
        match self {
            LimitKind::BudgetRequests => "budget_requests",
            LimitKind::KeyRpm => "key_rpm",
            LimitKind::BudgetSpend => "budget_spend",
            LimitKind::KeyTpm => "key_tpm",
        }
    }
}

/// One limit as the leases admit it: which quota key, how much, what kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leased {
    /// The quota and window.
    pub key: QuotaKey,
    /// Its limit.
    pub limit: QuotaLimit,
    /// What it limits.
    pub kind: LimitKind,
    /// What this node does with it while it cannot reach the lease holder.
    pub on_partition: OnPartition,
}

impl Leased {
    /// A budget's request limit `max` in its period `period` (an index of periods
    /// of `kind`), cut off as `on_partition` says. The budget's id and period kind
    /// name the quota (a stable hash, so every node names the same one): a budget
    /// whose period changes is a new quota, never judged by windows of the old kind.
    pub fn budget_requests(
        budget_id: &str,
        kind: BudgetPeriod,
        period: u64,
        max: u64,
        on_partition: OnPartition,
    ) -> Leased {
        Leased {
            key: QuotaKey {
                quota: quota_of(b"budget-requests\0", budget_id, kind),
                window: period,
            },
            limit: QuotaLimit::per_window(max),
            kind: LimitKind::BudgetRequests,
            on_partition,
        }
    }

    /// A budget's spend limit of `max_nanos` nano-USD in its period `period` (of
    /// `kind`, as for [`Leased::budget_requests`]). Cut off, it spends what it holds:
    /// `fail_open` is for the request limit only (a partition never lifts the money
    /// cap), `fail_closed` holds for both.
    pub fn budget_spend(
        budget_id: &str,
        kind: BudgetPeriod,
        period: u64,
        max_nanos: u64,
        on_partition: OnPartition,
    ) -> Leased {
        Leased {
            key: QuotaKey {
                quota: quota_of(b"budget-spend\0", budget_id, kind),
                window: period,
            },
            limit: QuotaLimit::per_window(max_nanos),
            kind: LimitKind::BudgetSpend,
            on_partition: match on_partition {
                OnPartition::FailOpen => OnPartition::SpendLeased,
                other => other,
            },
        }
    }

    /// A key's requests-per-minute limit `rpm` at the wall-clock time `wall_ms`.
    pub fn key_rpm(key_id: &str, wall_ms: u64, rpm: u32) -> Leased {
        Leased {
            key: QuotaKey {
                quota: quota_of(b"key-rpm\0", key_id, BudgetPeriod::Total),
                window: wall_ms / RPM_WINDOW.as_millis() as u64,
            },
            limit: QuotaLimit::rolling(u64::from(rpm), RPM_SPAN, RPM_WINDOW.as_millis() as u64),
            kind: LimitKind::KeyRpm,
            // A key's rate has no option of its own: the limit holds.
            on_partition: OnPartition::SpendLeased,
        }
    }

    /// A key's tokens-per-minute limit `tpm` at the wall-clock time `wall_ms`: the
    /// same rolling minute as [`Leased::key_rpm`], in tokens (a request reserves its
    /// prompt and the most it may produce, and settles what it used).
    pub fn key_tpm(key_id: &str, wall_ms: u64, tpm: u32) -> Leased {
        Leased {
            key: QuotaKey {
                quota: quota_of(b"key-tpm\0", key_id, BudgetPeriod::Total),
                window: wall_ms / RPM_WINDOW.as_millis() as u64,
            },
            limit: QuotaLimit::rolling(u64::from(tpm), RPM_SPAN, RPM_WINDOW.as_millis() as u64),
            kind: LimitKind::KeyTpm,
            on_partition: OnPartition::SpendLeased,
        }
    }

    /// Time from `wall_ms` until a key's rolling limit enters its next window (when
    /// capacity admitted a minute before may come back): for `Retry-After` and the
    /// reset headers.
    pub fn next_rpm_window_in(wall_ms: u64) -> Duration {
        let window = RPM_WINDOW.as_millis() as u64;
        Duration::from_millis(window - wall_ms % window)
    }
}

fn quota_of(what: &[u8], id: &str, period: BudgetPeriod) -> u64 {
    let mut h = aurora_core::Fnv64::new();
    h.write(what);
    h.write(id.as_bytes());
    h.write(match period {
        // A key's rpm (and budgets before periods were named) hash nothing more.
        BudgetPeriod::Total => b"",
        BudgetPeriod::Hourly => b"\0hourly",
        BudgetPeriod::Daily => b"\0daily",
        BudgetPeriod::Weekly => b"\0weekly",
        BudgetPeriod::Monthly => b"\0monthly",
    });
    h.finish()
}

/// Counters of the holder, for `/metrics`.
#[derive(Debug, Default)]
struct Counters {
    admitted: AtomicU64,
    refused_pending: AtomicU64,
    refused_exhausted: AtomicU64,
    refused_cut_off: AtomicU64,
    given_back: AtomicU64,
}

/// Counters that are not per limit kind.
#[derive(Debug, Default)]
struct Traffic {
    sent: AtomicU64,
    unsent: AtomicU64,
    grants: AtomicU64,
}

/// This node's holder and its way to the node (see the module docs).
pub struct Leases {
    holder: Mutex<Held>,
    started: Instant,
    cluster: ClusterInfo,
    /// Woken whenever a grant arrives.
    granted: Notify,
    /// Per [`LimitKind`], in the order of [`LimitKind::ALL`].
    counters: [Counters; 4],
    traffic: Traffic,
}

/// The holder and, under the same lock (one per admission), the kind of each quota
/// this node admitted in, for the metrics. Bounded by the keys and budgets with
/// limits (a deleted one's entry stays until restart: a few bytes).
struct Held {
    holder: Holder,
    kinds: std::collections::HashMap<u64, LimitKind>,
}

impl std::ops::Deref for Held {
    type Target = Holder;
    fn deref(&self) -> &Holder {
        &self.holder
    }
}

impl std::ops::DerefMut for Held {
    fn deref_mut(&mut self) -> &mut Holder {
        &mut self.holder
    }
}

impl std::fmt::Debug for Leases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leases").finish_non_exhaustive()
    }
}

/// What one request reserved of a leased limit (a unit of a request limit, its
/// estimated cost of a spend limit): given back when dropped, unless the request was
/// answered ([`LeaseHold::keep`], [`LeaseHold::settle`]).
#[derive(Debug)]
pub struct LeaseHold {
    leases: Arc<Leases>,
    key: QuotaKey,
    kind: LimitKind,
    admission: Admission,
    amount: u64,
    settled: bool,
}

impl LeaseHold {
    /// The request was answered: what it reserved stays spent.
    pub fn keep(self) {
        let amount = self.amount;
        self.settle(amount);
    }

    /// The request was answered and came to `actual` (its cost): the difference to
    /// the reservation goes back to the slice, or is owed by it when above.
    pub fn settle(mut self, actual: u64) {
        self.settled = true;
        self.leases
            .lock()
            .settle(self.key, self.admission, self.amount, actual);
    }

    /// The key it is a unit of.
    pub fn key(&self) -> QuotaKey {
        self.key
    }

    /// What it reserved.
    pub fn amount(&self) -> u64 {
        self.amount
    }
}

impl Drop for LeaseHold {
    fn drop(&mut self) {
        if !self.settled {
            self.leases
                .lock()
                .settle(self.key, self.admission, self.amount, 0);
            self.leases
                .counters(self.kind)
                .given_back
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Leases {
    /// Starts the holder of this node and its task, when the cluster elects a
    /// leader; `None` otherwise (budgets keep the counters, see the module docs).
    pub fn start(cluster: &ClusterInfo) -> Option<Arc<Leases>> {
        if !cluster.elects() {
            return None;
        }
        let events = cluster.subscribe()?;
        // The driver names this node as its configuration does (published in the
        // view once it runs).
        let node = cluster
            .view()
            .node_id
            .unwrap_or_else(|| NodeId::from_name(&cluster.node_id));
        // A fresh session per process: a restarted node never spends a grant of
        // its previous life (64 random bits; sessions never repeat).
        let session = Session {
            node,
            session: fastrand::u64(..),
        };
        let leases = Arc::new(Leases {
            holder: Mutex::new(Held {
                holder: Holder::new(session, QuotaTiming::default()),
                kinds: Default::default(),
            }),
            started: Instant::now(),
            cluster: cluster.clone(),
            granted: Notify::new(),
            counters: Default::default(),
            traffic: Traffic::default(),
        });
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let view = cluster.watch();
        let grantor = grantor_of(&view.borrow());
        let out = leases.lock().set_grantor(leases.now(), grantor);
        leases.send(out.sends);
        runtime.spawn(bridge(Arc::downgrade(&leases), events, view));
        Some(leases)
    }

    fn lock(&self) -> MutexGuard<'_, Held> {
        // The holder is left consistent by every call before it can panic.
        self.holder.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn counters(&self, kind: LimitKind) -> &Counters {
        &self.counters[kind as usize]
    }

    fn now(&self) -> Millis {
        Millis(self.started.elapsed().as_millis() as u64)
    }

    /// Sends the holder's messages to the node, without waiting.
    fn send(&self, sends: Vec<(NodeId, QuotaMessage)>) {
        for (to, message) in sends {
            let sent = self.cluster.command_now(Command::Quota { to, message });
            let counter = if sent {
                &self.traffic.sent
            } else {
                &self.traffic.unsent
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Takes one unit of `limit`: never waits. See [`Leases::take`] for a request
    /// that may wait for its grant.
    pub fn admit(self: &Arc<Self>, limit: Leased) -> Result<LeaseHold, Refusal> {
        self.admit_amount(limit, 1)
    }

    /// Takes `amount` of `limit` (a reservation: settle it with
    /// [`LeaseHold::settle`]): never waits.
    pub fn admit_amount(
        self: &Arc<Self>,
        limit: Leased,
        amount: u64,
    ) -> Result<LeaseHold, Refusal> {
        let taken = self.try_take(limit, amount);
        self.count(limit.kind, &taken);
        taken
    }

    /// A request refused `limit` gave up: the holder stops asking for what it
    /// lacked (a large reservation would otherwise be gathered for nobody).
    pub fn give_up(&self, limit: Leased) {
        self.lock().give_up(limit.key);
    }

    /// What is left of `limit` cluster-wide as this node knows it (its own unspent
    /// slice and what the lease holder could still grant at its last answer); `None`
    /// before this node admitted anything of it.
    pub fn remaining(&self, limit: Leased) -> Option<u64> {
        self.lock().remaining(limit.key)
    }

    /// Takes one unit of `key`, waiting (at most [`GRANT_WAIT`]) while this node
    /// holds none and has asked for more; answers at once when the cluster's limit
    /// is reached or no lease holder is reachable. Each waiting request counts as
    /// demand, so a burst asks for a slice its size (up to the largest).
    pub async fn take(self: &Arc<Self>, limit: Leased) -> Result<LeaseHold, Refusal> {
        self.take_amount(limit, 1).await
    }

    /// [`Leases::take`] of `amount` (a reservation larger than a slice is granted
    /// over several asks, within the same wait).
    pub async fn take_amount(
        self: &Arc<Self>,
        limit: Leased,
        amount: u64,
    ) -> Result<LeaseHold, Refusal> {
        // The common case first: the slice covers it, no wait to set up.
        match self.try_take(limit, amount) {
            Err(Refusal::Waiting) => {}
            taken => {
                self.count(limit.kind, &taken);
                return taken;
            }
        }
        let deadline = tokio::time::Instant::now() + GRANT_WAIT;
        loop {
            // Registered before the attempt: a grant between the two still wakes it.
            let granted = self.granted.notified();
            match self.try_take(limit, amount) {
                Err(Refusal::Waiting) => {
                    if tokio::time::timeout_at(deadline, granted).await.is_err() {
                        self.give_up(limit);
                        let taken = Err(Refusal::Waiting);
                        self.count(limit.kind, &taken);
                        return taken;
                    }
                }
                taken => {
                    self.count(limit.kind, &taken);
                    return taken;
                }
            }
        }
    }

    fn try_take(self: &Arc<Self>, limit: Leased, amount: u64) -> Result<LeaseHold, Refusal> {
        let now = self.now();
        let key = limit.key;
        let (admitted, out) = {
            let mut holder = self.lock();
            holder.kinds.entry(key.quota).or_insert(limit.kind);
            // A key of a later window means the earlier ones of its quota (a budget's
            // past periods, a rolling limit's past windows) are done with: the holder
            // forgets them and gives back what they did not spend, under the same
            // lock (a no-op unless the window moved on).
            let mut out = holder.retire(key.quota, key.window);
            let admitted = holder.admit(now, key, limit.limit, limit.on_partition, amount);
            // Only this key's ask: the bridge's timer polls the others.
            out.extend(holder.poll_key(now, key));
            (admitted, out)
        };
        self.send(out.sends);
        admitted.map(|admission| LeaseHold {
            leases: Arc::clone(self),
            key,
            kind: limit.kind,
            admission,
            amount,
            settled: false,
        })
    }

    fn count(&self, kind: LimitKind, taken: &Result<LeaseHold, Refusal>) {
        let c = self.counters(kind);
        let counter = match taken {
            Ok(_) => &c.admitted,
            Err(Refusal::Waiting) => &c.refused_pending,
            Err(Refusal::Exhausted) => &c.refused_exhausted,
            Err(Refusal::CutOff) => &c.refused_cut_off,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The holder's series for `/metrics`.
    pub fn write_metrics(&self, out: &mut Exposition) {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        out.family(
            "aurora_quota_admissions_total",
            "Requests admitted against this node's quota slice of a leased limit, and refused (pending: no capacity held yet; exhausted: the cluster's limit is reached; cut_off: no lease holder reachable).",
            Kind::Counter,
        );
        for kind in LimitKind::ALL {
            let c = self.counters(kind);
            let limit = kind.label();
            out.sample(
                &[("limit", &limit), ("result", &"admitted")],
                r(&c.admitted),
            );
            out.sample(
                &[("limit", &limit), ("result", &"pending")],
                r(&c.refused_pending),
            );
            out.sample(
                &[("limit", &limit), ("result", &"exhausted")],
                r(&c.refused_exhausted),
            );
            out.sample(
                &[("limit", &limit), ("result", &"cut_off")],
                r(&c.refused_cut_off),
            );
        }
        let mut unspent = [0u64; LimitKind::ALL.len()];
        {
            let held = self.lock();
            for (key, left) in held.unspent() {
                if let Some(kind) = held.kinds.get(&key.quota) {
                    unspent[*kind as usize] = unspent[*kind as usize].saturating_add(left);
                }
            }
        }
        out.family(
            "aurora_quota_unspent",
            "Capacity of leased limits this node holds and has not spent (units: requests, tokens, nano-USD): what the cluster would not admit elsewhere if this node were cut off now. Summed over the nodes, the current bound of docs/quota.md.",
            Kind::Gauge,
        );
        for kind in LimitKind::ALL {
            out.sample(&[("limit", &kind.label())], unspent[kind as usize]);
        }
        out.family(
            "aurora_quota_given_back_total",
            "Admitted requests of a leased limit that ended without an answer and gave their unit back.",
            Kind::Counter,
        );
        for kind in LimitKind::ALL {
            out.sample(
                &[("limit", &kind.label())],
                r(&self.counters(kind).given_back),
            );
        }
        let c = &self.traffic;
        for (name, help, value) in [
            (
                "aurora_quota_messages_sent_total",
                "Asks and releases this node's holder sent to the lease holder.",
                r(&c.sent),
            ),
            (
                "aurora_quota_messages_unsent_total",
                "Asks and releases dropped because the node's queue was full (asked again later).",
                r(&c.unsent),
            ),
            (
                "aurora_quota_grants_total",
                "Grants, exhaustions and recalls this node's holder received.",
                r(&c.grants),
            ),
        ] {
            out.single(name, help, Kind::Counter, value);
        }
    }
}

/// Carries the node's quota events to the holder, tells the holder who grants, and
/// runs its timers; ends when the holder is dropped or the node stops.
async fn bridge(
    leases: std::sync::Weak<Leases>,
    mut events: tokio::sync::broadcast::Receiver<Event>,
    mut view: tokio::sync::watch::Receiver<Arc<aurora_io::ClusterView>>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let next_timer = {
            let Some(l) = leases.upgrade() else { return };
            let at = l.lock().poll_timeout();
            at.map(|at| l.started + Duration::from_millis(at.0))
        };
        let timer = async {
            match next_timer {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            event = events.recv() => match event {
                Ok(Event::Quota { from, message }) => {
                    let Some(l) = leases.upgrade() else { return };
                    let now = l.now();
                    let out = l.lock().handle(now, from, &message);
                    l.traffic.grants.fetch_add(1, Ordering::Relaxed);
                    l.send(out.sends);
                    l.granted.notify_waiters();
                }
                Ok(_) => {}
                // Lost events: a lost grant is asked again after `ask_timeout`.
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            },
            changed = view.changed() => {
                if changed.is_err() {
                    return;
                }
                let Some(l) = leases.upgrade() else { return };
                let grantor = grantor_of(&view.borrow_and_update());
                let now = l.now();
                let out = l.lock().set_grantor(now, grantor);
                l.send(out.sends);
            }
            () = timer => {
                let Some(l) = leases.upgrade() else { return };
                let now = l.now();
                let out = l.lock().poll(now);
                l.send(out.sends);
            }
        }
    }
}

/// Who grants, as the node's view says: the lease holder and its epoch.
fn grantor_of(view: &aurora_io::ClusterView) -> Option<(NodeId, aurora_core::Epoch)> {
    view.failover
        .as_ref()
        .and_then(|f| f.leader.map(|leader| (leader, f.epoch)))
}
