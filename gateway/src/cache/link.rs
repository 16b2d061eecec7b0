//! The cache's way to the other nodes: the node's membership view says who is alive,
//! its peer calls (QUIC bidi streams on the cluster's mutually authenticated
//! connections, `aurora_io::transport::call`) carry the owner protocol ([`super::wire`]).

use std::sync::Arc;
use std::time::Duration;

use aurora_core::Liveness;
use aurora_io::transport::{CallLimits, PeerCalls, PeerRequest, ServeLimits};

use super::{Cache, CallFuture, Link, LinkError, Member};
use crate::cluster::ClusterInfo;

/// Bytes a message carries beyond its answer body (key, token, status, content type,
/// lengths): generous, so any answer the store may keep fits in a call.
const WIRE_OVERHEAD: usize = 4096;

/// Peer calls a node answers at once for the cache (waiters held at the owner among
/// them; more are refused, and their nodes serve without the cache).
const MAX_CALLS_IN_FLIGHT: usize = 8192;

/// How often the fills of dead fillers are ended.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// The link of a running node.
#[derive(Debug)]
struct NodeLink {
    cluster: ClusterInfo,
    calls: PeerCalls,
    max_message: usize,
}

impl Link for NodeLink {
    fn members(&self) -> (Member, Vec<Member>) {
        let view = self.cluster.view();
        let me = match (view.node_id, view.addr) {
            (Some(id), Some(addr)) => Member { id, addr },
            // Not started yet: nobody else is known either, so this node owns every key.
            _ => return (unknown_self(), Vec::new()),
        };
        let others = view
            .members
            .iter()
            .filter(|m| m.liveness == Liveness::Alive && m.id != me.id)
            .map(|m| Member {
                id: m.id,
                addr: m.addr,
            })
            .collect();
        (me, others)
    }

    fn call(&self, to: Member, bytes: Vec<u8>, timeout: Duration) -> CallFuture {
        let calls = self.calls.clone();
        let limits = CallLimits {
            timeout,
            max_request: self.max_message,
            max_reply: self.max_message,
        };
        Box::pin(async move {
            calls
                .call(to.addr, to.id, bytes, limits)
                .await
                .map_err(|e| LinkError(e.to_string()))
        })
    }
}

/// A stand-in for this node before its driver published its id: alone, it owns
/// every key, and it is never called.
fn unknown_self() -> Member {
    Member {
        id: aurora_core::NodeId(0),
        addr: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
    }
}

/// Connects `cache` to the cluster of `cluster`: answers the peers' cache calls and
/// sends this node's lookups to the owners. A no-op without a node (detached tests)
/// or with the cache off (peers then serve without it: their calls are refused).
pub fn connect(cache: &Arc<Cache>, cluster: &ClusterInfo) {
    let Some(calls) = cluster.peer_calls() else {
        return;
    };
    if !cache.settings().enabled() {
        return;
    }
    let max_message = usize::try_from(cache.settings().max_entry_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(WIRE_OVERHEAD);
    let answering = Arc::clone(cache);
    let handler = move |request: PeerRequest| {
        let cache = Arc::clone(&answering);
        async move { cache.serve_peer(request.peer.node, &request.bytes).await }
    };
    calls.set_call_handler_with(
        Arc::new(handler),
        ServeLimits {
            max_request: max_message,
            max_in_flight: MAX_CALLS_IN_FLIGHT,
            // A held lookup may wait the whole fill; the caller's own timeout is a
            // little longer, so this is only the backstop for a caller that never leaves.
            deadline: cache.settings().fill_timeout() + cache.settings().peer_timeout() * 2,
        },
    );
    cache.set_link(Arc::new(NodeLink {
        cluster: cluster.clone(),
        calls: calls.clone(),
        max_message,
    }));
    // Fills of nodes that died end within a second of the membership seeing it, so
    // the requests held on them go on alone instead of waiting out `fill_timeout_ms`.
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let cache = Arc::downgrade(cache);
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(cache) = cache.upgrade() else { return };
                cache.sweep();
            }
        });
    }
}
