//! Moving the core's bytes between nodes: QUIC (quinn) with mutual TLS.
//!
//! Why QUIC: one UDP socket per node carries unreliable gossip (QUIC datagrams,
//! [`Channel::Datagram`]), reliable bulk transfers (one unidirectional stream per
//! push-pull or anti-entropy message, [`Channel::Stream`]) and the application's
//! request/reply calls between nodes (one bidirectional stream per call, [`call`]), all
//! on the same connections, encrypted and authenticated by TLS 1.3 ([`tls`]). One endpoint both listens and dials from the same
//! socket, so the remote address of any connection is the peer's gossip address — which
//! is the address the core must reply to.
//!
//! The transport is generic over the socket: [`Transport::new`] takes a quinn
//! `AsyncUdpSocket` and `Runtime`, so the same code runs on a tokio UDP socket in
//! production and on turmoil's simulated network in `aurora-tests`.

pub mod call;
pub mod fault;
pub mod limits;
pub mod quic;
pub mod tls;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use aurora_core::Channel;

use crate::identity::PeerIdentity;

pub use call::{
    CallError, CallFuture, CallHandler, CallLimits, PeerCalls, PeerRequest, ServeLimits,
};
pub use fault::{IsolatableSocket, Isolation};
pub use limits::{HandshakeLimits, PeerNetwork};
pub use quic::{Transport, TransportError};

/// Bytes from a peer, handed to the driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inbound {
    /// The peer's gossip address (the remote address of its connection).
    pub from: SocketAddr,
    pub channel: Channel,
    pub bytes: Vec<u8>,
    /// Who sent it, as the connection's verified certificate says. The header's sender
    /// id already matched `peer.node` (mismatches are dropped before this point).
    pub peer: PeerIdentity,
}

/// Transport counters, updated lock-free from the transport's tasks.
#[derive(Debug, Default)]
pub struct TransportMetrics {
    pub datagrams_sent: AtomicU64,
    pub datagrams_received: AtomicU64,
    pub streams_sent: AtomicU64,
    pub streams_received: AtomicU64,
    /// Datagrams too large for the connection's current path, sent on a stream instead.
    pub oversize_datagrams: AtomicU64,
    /// Messages dropped: no connection (backing off), queue full, driver busy, send error.
    pub send_dropped: AtomicU64,
    pub receive_dropped: AtomicU64,
    /// Inbound stream messages over the size limit.
    pub stream_too_large: AtomicU64,
    pub connections_opened: AtomicU64,
    pub connect_failures: AtomicU64,
    /// Handshakes refused because the peer's certificate did not chain to our cluster CA
    /// (or ours not to theirs): a wrong or missing cluster secret.
    pub tls_rejected: AtomicU64,
    /// Messages dropped because the sender id in their header is not the node id of the
    /// connection's certificate: a holder of the secret speaking as another node.
    pub identity_mismatch: AtomicU64,
    /// Connections closed because their verified certificate names no node id (or has no
    /// Ed25519 key): a peer of an older version, or a hand-made certificate.
    pub identity_refused: AtomicU64,
    /// Inbound handshakes ignored because the address is outside `cluster.allowed_peers`.
    pub peer_not_allowed: AtomicU64,
    /// Retry packets sent to validate a peer's address before any handshake state.
    pub retries_sent: AtomicU64,
    /// Inbound handshakes refused because `cluster.max_handshakes` were in progress.
    pub handshakes_refused: AtomicU64,
    /// Inbound handshakes dropped because they did not finish within
    /// `cluster.handshake_timeout_ms`.
    pub handshake_timeouts: AtomicU64,
    /// Inbound handshakes in progress now (a gauge).
    pub handshakes_in_progress: AtomicU64,
    /// Calls this node made to peers ([`call`]), answered or not.
    pub calls_sent: AtomicU64,
    /// Calls this node made that ended without a reply (any [`CallError`]; a call
    /// whose future the caller dropped is in neither this nor a reply).
    pub calls_failed: AtomicU64,
    /// Peers' calls that reached this node.
    pub calls_received: AtomicU64,
    /// Peers' calls refused: no handler registered, or too many in flight.
    pub calls_refused: AtomicU64,
    /// Peers' calls refused because the request was over the size limit.
    pub call_too_large: AtomicU64,
    /// Peers' calls whose handler panicked or passed the serve deadline.
    pub calls_handler_failed: AtomicU64,
    /// Peers' calls whose caller went away (reset, timeout, lost connection) first.
    pub calls_abandoned: AtomicU64,
    /// Peers' calls being handled now (a gauge).
    pub calls_in_flight: AtomicU64,
}

/// A plain copy of [`TransportMetrics`] for views and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransportStats {
    pub datagrams_sent: u64,
    pub datagrams_received: u64,
    pub streams_sent: u64,
    pub streams_received: u64,
    pub oversize_datagrams: u64,
    pub send_dropped: u64,
    pub receive_dropped: u64,
    pub stream_too_large: u64,
    pub connections_opened: u64,
    pub connect_failures: u64,
    pub tls_rejected: u64,
    pub identity_mismatch: u64,
    pub identity_refused: u64,
    pub peer_not_allowed: u64,
    pub retries_sent: u64,
    pub handshakes_refused: u64,
    pub handshake_timeouts: u64,
    pub handshakes_in_progress: u64,
    pub calls_sent: u64,
    pub calls_failed: u64,
    pub calls_received: u64,
    pub calls_refused: u64,
    pub call_too_large: u64,
    pub calls_handler_failed: u64,
    pub calls_abandoned: u64,
    pub calls_in_flight: u64,
}

impl TransportMetrics {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> TransportStats {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TransportStats {
            datagrams_sent: r(&self.datagrams_sent),
            datagrams_received: r(&self.datagrams_received),
            streams_sent: r(&self.streams_sent),
            streams_received: r(&self.streams_received),
            oversize_datagrams: r(&self.oversize_datagrams),
            send_dropped: r(&self.send_dropped),
            receive_dropped: r(&self.receive_dropped),
            stream_too_large: r(&self.stream_too_large),
            connections_opened: r(&self.connections_opened),
            connect_failures: r(&self.connect_failures),
            tls_rejected: r(&self.tls_rejected),
            identity_mismatch: r(&self.identity_mismatch),
            identity_refused: r(&self.identity_refused),
            peer_not_allowed: r(&self.peer_not_allowed),
            retries_sent: r(&self.retries_sent),
            handshakes_refused: r(&self.handshakes_refused),
            handshake_timeouts: r(&self.handshake_timeouts),
            handshakes_in_progress: r(&self.handshakes_in_progress),
            calls_sent: r(&self.calls_sent),
            calls_failed: r(&self.calls_failed),
            calls_received: r(&self.calls_received),
            calls_refused: r(&self.calls_refused),
            call_too_large: r(&self.call_too_large),
            calls_handler_failed: r(&self.calls_handler_failed),
            calls_abandoned: r(&self.calls_abandoned),
            calls_in_flight: r(&self.calls_in_flight),
        }
    }
}

#[cfg(test)]
mod call_tests;
#[cfg(test)]
mod handshake_tests;
#[cfg(test)]
mod tests;
