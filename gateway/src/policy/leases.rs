//! Quota leases for budgets (docs/quota.md): this node's holder of the cluster's
//! request limits, and the task that carries its asks to the lease holder and the
//! grants back.
//!
//! A budget's `max_requests` in a cluster that elects a leader is admitted here, not
//! from the replicated counters: the request takes one unit from the slice this node
//! holds (no network on the request path), and the holder asks the lease holder for
//! more before the slice runs out. Admitted requests across the cluster never exceed
//! the limit (the counters, which learn of other nodes' requests a second later, let
//! 154 through a 100-request limit at 300 req/s over three nodes; the leases 100, see
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
    Admission, Holder, OnPartition, QuotaKey, QuotaMessage, QuotaTiming, Refusal, Session,
};
use aurora_core::{Command, Event, Millis, NodeId};
use tokio::sync::Notify;

use crate::cluster::ClusterInfo;
use crate::metrics::exposition::{Exposition, Kind};

/// How long a request whose node holds no capacity yet waits for a grant (the
/// first requests of a period on each node, or those arriving faster than the
/// slices are refilled) before it is refused with 429 `budget_pending`.
pub const GRANT_WAIT: Duration = Duration::from_millis(250);

/// The quota number of a budget's request limit: a stable hash of its id, so every
/// node names the same quota.
pub fn requests_quota(budget_id: &str) -> u64 {
    let mut h = aurora_core::Fnv64::new();
    h.write(b"budget-requests\0");
    h.write(budget_id.as_bytes());
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
    sent: AtomicU64,
    unsent: AtomicU64,
    grants: AtomicU64,
}

/// This node's holder and its way to the node (see the module docs).
pub struct Leases {
    holder: Mutex<Holder>,
    started: Instant,
    cluster: ClusterInfo,
    /// Woken whenever a grant arrives.
    granted: Notify,
    counters: Counters,
}

impl std::fmt::Debug for Leases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leases").finish_non_exhaustive()
    }
}

/// One request's unit of a budget's request limit: given back when dropped, unless
/// the request was answered ([`LeaseHold::keep`]).
#[derive(Debug)]
pub struct LeaseHold {
    leases: Arc<Leases>,
    key: QuotaKey,
    admission: Admission,
    kept: bool,
}

impl LeaseHold {
    /// The request was answered: its unit stays spent.
    pub fn keep(mut self) {
        self.kept = true;
    }

    /// The key it is a unit of.
    pub fn key(&self) -> QuotaKey {
        self.key
    }
}

impl Drop for LeaseHold {
    fn drop(&mut self) {
        if !self.kept {
            self.leases.lock().settle(self.key, self.admission, 1, 0);
            self.leases
                .counters
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
            holder: Mutex::new(Holder::new(session, QuotaTiming::default())),
            started: Instant::now(),
            cluster: cluster.clone(),
            granted: Notify::new(),
            counters: Counters::default(),
        });
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let view = cluster.watch();
        let grantor = grantor_of(&view.borrow());
        let out = leases.lock().set_grantor(leases.now(), grantor);
        leases.send(out.sends);
        runtime.spawn(bridge(Arc::downgrade(&leases), events, view));
        Some(leases)
    }

    fn lock(&self) -> MutexGuard<'_, Holder> {
        // The holder is left consistent by every call before it can panic.
        self.holder.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now(&self) -> Millis {
        Millis(self.started.elapsed().as_millis() as u64)
    }

    /// Sends the holder's messages to the node, without waiting.
    fn send(&self, sends: Vec<(NodeId, QuotaMessage)>) {
        for (to, message) in sends {
            let sent = self.cluster.command_now(Command::Quota { to, message });
            let counter = if sent {
                &self.counters.sent
            } else {
                &self.counters.unsent
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Takes one unit of `key` (limited to `limit`): never waits. See
    /// [`Leases::take`] for a request that may wait for its grant.
    pub fn admit(self: &Arc<Self>, key: QuotaKey, limit: u64) -> Result<LeaseHold, Refusal> {
        let taken = self.try_take(key, limit);
        self.count(&taken);
        taken
    }

    /// Takes one unit of `key`, waiting (at most [`GRANT_WAIT`]) while this node
    /// holds none and has asked for more; answers at once when the cluster's limit
    /// is reached or no lease holder is reachable. Each waiting request counts as
    /// demand, so a burst asks for a slice its size (up to the largest).
    pub async fn take(self: &Arc<Self>, key: QuotaKey, limit: u64) -> Result<LeaseHold, Refusal> {
        let deadline = tokio::time::Instant::now() + GRANT_WAIT;
        loop {
            // Registered before the attempt: a grant between the two still wakes it.
            let granted = self.granted.notified();
            match self.try_take(key, limit) {
                Err(Refusal::Waiting) => {
                    if tokio::time::timeout_at(deadline, granted).await.is_err() {
                        let taken = Err(Refusal::Waiting);
                        self.count(&taken);
                        return taken;
                    }
                }
                taken => {
                    self.count(&taken);
                    return taken;
                }
            }
        }
    }

    fn try_take(self: &Arc<Self>, key: QuotaKey, limit: u64) -> Result<LeaseHold, Refusal> {
        let now = self.now();
        let (admitted, out) = {
            let mut holder = self.lock();
            // A key of a later window means the earlier ones of its quota (a budget's
            // past periods) are done with: the holder forgets them, under the same
            // lock (a no-op unless the window moved on).
            holder.retire(key.quota, key.window);
            let admitted = holder.admit(now, key, limit, OnPartition::SpendLeased, 1);
            (admitted, holder.poll(now))
        };
        self.send(out.sends);
        admitted.map(|admission| LeaseHold {
            leases: Arc::clone(self),
            key,
            admission,
            kept: false,
        })
    }

    fn count(&self, taken: &Result<LeaseHold, Refusal>) {
        let c = &self.counters;
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
        let c = &self.counters;
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        out.family(
            "aurora_quota_admissions_total",
            "Budget requests admitted against this node's quota slice, and refused (pending: no capacity held yet; exhausted: the cluster's limit is reached; cut_off: no lease holder reachable).",
            Kind::Counter,
        );
        out.sample(&[("result", &"admitted")], r(&c.admitted));
        out.sample(&[("result", &"pending")], r(&c.refused_pending));
        out.sample(&[("result", &"exhausted")], r(&c.refused_exhausted));
        out.sample(&[("result", &"cut_off")], r(&c.refused_cut_off));
        for (name, help, value) in [
            (
                "aurora_quota_given_back_total",
                "Admitted budget requests that ended without an answer and gave their unit back.",
                r(&c.given_back),
            ),
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
                    l.counters.grants.fetch_add(1, Ordering::Relaxed);
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
