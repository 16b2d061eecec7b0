//! Handing the lease over before a planned shutdown.
//!
//! Why: a leader that simply drains keeps its lease until it leaves (after the drain)
//! while its `/health/ready` already says `draining`, so in active_passive no node is
//! ready for the drain plus an election, and a load balancer that routes on readiness
//! has nowhere to send clients (measured: 5 s in a rolling restart of a dev cluster).
//! Handing the lease to a live standby first (the planned switchover of
//! `POST cluster/switchover`, about one round trip) keeps one node ready throughout.
//!
//! The standby is the first live voter, lowest id first, that the core accepts (it
//! refuses witnesses and members whose settings differ); if none does within
//! [`HANDOVER_LIMIT`], the node shuts down as before and the lease ends at its leave.

use std::time::Duration;

use aurora_core::Command;
use aurora_io::ClusterView;

use super::ClusterInfo;

/// The longest a shutdown waits for another node to lead.
pub const HANDOVER_LIMIT: Duration = Duration::from_secs(2);

fn holds_lease(view: &ClusterView) -> bool {
    view.failover
        .as_ref()
        .is_some_and(|f| f.this_node_holds_lease)
}

/// If this node leads, hands the lease to a live standby and waits (at most
/// [`HANDOVER_LIMIT`]) until that node leads; returns whether it does.
pub async fn before_shutdown(info: &ClusterInfo) -> bool {
    if !info.elects() {
        return false;
    }
    let view = info.view();
    if !holds_lease(&view) {
        return false;
    }
    let mut candidates: Vec<_> = view
        .failover
        .as_ref()
        .map(|f| f.voters.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|&id| view.node_id != Some(id))
        .filter(|&id| {
            view.member(id)
                .is_some_and(|m| m.liveness == aurora_core::Liveness::Alive)
        })
        .collect();
    candidates.sort_by_key(|id| id.0);
    for to in candidates {
        if info.command(Command::Switchover { to }).await.is_err() {
            continue;
        }
        let led = info
            .settle(HANDOVER_LIMIT, |v| {
                v.failover.as_ref().and_then(|f| f.leader) == Some(to)
            })
            .await;
        let done = led.failover.as_ref().and_then(|f| f.leader) == Some(to);
        if done {
            tracing::info!(to = %to, "handed the lease over before shutting down");
        } else {
            tracing::warn!(to = %to, "handed the lease over, but it did not lead within the limit; shutting down anyway");
        }
        return done;
    }
    tracing::warn!("no live standby took the lease; it ends when this node leaves");
    false
}
