//! The quinn endpoint, its connection table, and the tasks that read from peers.
//!
//! Policy, and why:
//! * **One connection per peer address, reused.** Handshakes are expensive and gossip is
//!   constant; a table maps each peer's gossip address to its live connection.
//! * **Newest connection wins.** When a peer dials us while we hold a connection to it, the
//!   new one replaces ours in the table: a peer that dials again has usually restarted,
//!   and our old connection to its previous process would swallow datagrams until it
//!   timed out. Both sides dialling at once is harmless: each uses the other's
//!   connection, and both stay valid.
//! * **Reconnect with backoff.** A failed dial blocks that address for an exponentially
//!   growing delay (capped), during which sends to it are dropped and counted. The core
//!   already treats the network as lossy and retries on its own schedule, so dropping
//!   is correct; queueing unboundedly for a dead peer would not be.
//! * **Never block the driver.** [`Transport::send`] only touches the table under a short
//!   lock and spawns; stream writes and dials happen in their own tasks. Inbound datagrams
//!   are offered to the driver with `try_send` and dropped (counted) when it is behind;
//!   inbound stream messages wait for room, which pushes back on the sender through QUIC
//!   flow control.
//! * **Bounded streams.** Each uni stream carries exactly one message; reading stops at
//!   [`MAX_STREAM_MESSAGE`] bytes, and a longer one is dropped and counted.
//! * **Calls on bidirectional streams.** Request/reply calls between nodes
//!   ([`super::call`]) ride the same connections, one bidi stream per call, at most
//!   [`MAX_CALLS_PER_CONNECTION`] open at once per connection; a call waits for (or
//!   starts) the dial to its peer, where gossip would only queue.
//! * **Stateless reset.** The endpoint's reset key is derived from the cluster keys and
//!   the node's id, so after a restart the node can reset peers' connections to its
//!   previous process at once instead of leaving them to time out.
//! * **Bounded handshakes.** Inbound handshakes pass the allow-list, address validation
//!   (Retry), a cap on handshakes in progress and a deadline ([`super::limits`]).
//! * **A connection speaks for one node.** After the handshake the peer's node id and key
//!   life are read from its verified certificate ([`PeerIdentity`]); a connection whose
//!   certificate names none is closed, and every message on a connection whose header
//!   claims another sender is dropped and counted (`identity_mismatch`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use aurora_core::wire::MAX_STREAM_MESSAGE;
use aurora_core::Channel;
use quinn::{
    AsyncUdpSocket, ClientConfig, Connection, ConnectionError, Endpoint, EndpointConfig, Runtime,
    SendDatagramError, ServerConfig, TransportConfig, VarInt,
};
use rustls::pki_types::CertificateDer;
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::time::Instant;

use super::call::{self, CallError, Serving, MAX_CALLS_PER_CONNECTION};
use super::limits::{
    HandshakeLimits, QUINN_INCOMING_BUFFER, QUINN_INCOMING_BUFFER_TOTAL, QUINN_MAX_INCOMING,
    RETRY_TOKEN_LIFETIME,
};
use super::tls::{peer_identity, PeerIdentityError, TlsConfig, SERVER_NAME};
use super::{Inbound, TransportMetrics, TransportStats};
use crate::identity::PeerIdentity;

/// Messages held for a peer while its connection is being set up.
const CONNECT_QUEUE: usize = 64;
const BACKOFF_BASE: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A connection with no traffic for this long is dead. Gossip keeps live ones busy;
/// keep-alives cover quiet ones.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
const KEEP_ALIVE: Duration = Duration::from_secs(2);
/// Application close code: the certificate does not say which node it is.
const CLOSE_NO_IDENTITY: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot create the QUIC endpoint: {0}")]
    Endpoint(std::io::Error),
    #[error("invalid transport setting: {0}")]
    Setting(String),
}

/// One peer address's state.
enum Peer {
    Connected(Connection, PeerIdentity),
    Connecting {
        queue: Vec<(Channel, Vec<u8>)>,
        failures: u32,
    },
    Backoff {
        until: Instant,
        failures: u32,
    },
}

pub(super) struct Shared {
    endpoint: Endpoint,
    client: ClientConfig,
    peers: Mutex<HashMap<SocketAddr, Peer>>,
    inbound: mpsc::Sender<Inbound>,
    pub(super) metrics: TransportMetrics,
    limits: HandshakeLimits,
    /// One permit per inbound handshake in progress.
    handshakes: Arc<Semaphore>,
    /// Woken whenever a peer's entry in `peers` changes state (connected, dial failed,
    /// connection gone): calls waiting for a connection look again.
    peer_change: Notify,
    /// The handler of peers' calls, once registered ([`super::call`]).
    serving: Mutex<Option<Arc<Serving>>>,
}

/// A node's QUIC endpoint. Cloning shares it.
#[derive(Clone)]
pub struct Transport {
    pub(super) shared: Arc<Shared>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("local_addr", &self.shared.endpoint.local_addr().ok())
            .finish_non_exhaustive()
    }
}

fn transport_config() -> Result<Arc<TransportConfig>, TransportError> {
    let mut t = TransportConfig::default();
    t.max_idle_timeout(Some(
        IDLE_TIMEOUT
            .try_into()
            .map_err(|_| TransportError::Setting("idle timeout".into()))?,
    ));
    t.keep_alive_interval(Some(KEEP_ALIVE));
    // Peers' calls (super::call); more wait for a free slot (QUIC flow control).
    t.max_concurrent_bidi_streams(VarInt::from_u32(MAX_CALLS_PER_CONNECTION));
    t.max_concurrent_uni_streams(VarInt::from_u32(256));
    Ok(Arc::new(t))
}

impl Transport {
    /// Starts an endpoint on `socket` with the default [`HandshakeLimits`]. Inbound
    /// messages go to `inbound`; `reset_key` (32 bytes, secret) seeds stateless resets
    /// (see the module docs).
    pub fn new(
        socket: Arc<dyn AsyncUdpSocket>,
        runtime: Arc<dyn Runtime>,
        tls: &TlsConfig,
        reset_key: [u8; 32],
        inbound: mpsc::Sender<Inbound>,
    ) -> Result<Transport, TransportError> {
        let limits = HandshakeLimits::default();
        Transport::with_limits(socket, runtime, tls, reset_key, &limits, inbound)
    }

    /// [`Transport::new`] with explicit handshake limits.
    pub fn with_limits(
        socket: Arc<dyn AsyncUdpSocket>,
        runtime: Arc<dyn Runtime>,
        tls: &TlsConfig,
        reset_key: [u8; 32],
        limits: &HandshakeLimits,
        inbound: mpsc::Sender<Inbound>,
    ) -> Result<Transport, TransportError> {
        let tc = transport_config()?;
        let mut server = ServerConfig::with_crypto(tls.server.clone());
        server.transport_config(tc.clone());
        server
            .retry_token_lifetime(RETRY_TOKEN_LIFETIME)
            .max_incoming(QUINN_MAX_INCOMING)
            .incoming_buffer_size(QUINN_INCOMING_BUFFER)
            .incoming_buffer_size_total(QUINN_INCOMING_BUFFER_TOTAL);
        let mut client = ClientConfig::new(tls.client.clone());
        client.transport_config(tc);
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &reset_key);
        let endpoint_config = EndpointConfig::new(Arc::new(key));
        let endpoint =
            Endpoint::new_with_abstract_socket(endpoint_config, Some(server), socket, runtime)
                .map_err(TransportError::Endpoint)?;
        let shared = Arc::new(Shared {
            endpoint,
            client,
            peers: Mutex::new(HashMap::new()),
            inbound,
            metrics: TransportMetrics::default(),
            limits: limits.clone(),
            handshakes: Arc::new(Semaphore::new(limits.max_in_progress)),
            peer_change: Notify::new(),
            serving: Mutex::new(None),
        });
        tokio::spawn(accept_loop(shared.clone()));
        Ok(Transport { shared })
    }

    /// Binds a tokio UDP socket at `addr` with the default [`HandshakeLimits`].
    pub fn bind(
        addr: SocketAddr,
        tls: &TlsConfig,
        reset_key: [u8; 32],
        inbound: mpsc::Sender<Inbound>,
    ) -> Result<Transport, TransportError> {
        Transport::bind_with_limits(addr, tls, reset_key, &HandshakeLimits::default(), inbound)
    }

    /// Binds a tokio UDP socket at `addr` (production).
    pub fn bind_with_limits(
        addr: SocketAddr,
        tls: &TlsConfig,
        reset_key: [u8; 32],
        limits: &HandshakeLimits,
        inbound: mpsc::Sender<Inbound>,
    ) -> Result<Transport, TransportError> {
        let socket = std::net::UdpSocket::bind(addr).map_err(TransportError::Endpoint)?;
        let runtime: Arc<dyn Runtime> = Arc::new(quinn::TokioRuntime);
        let socket = runtime
            .wrap_udp_socket(socket)
            .map_err(TransportError::Endpoint)?;
        Transport::with_limits(socket, runtime, tls, reset_key, limits, inbound)
    }

    /// The authenticated identity of the peer connected at `addr`, if connected.
    pub fn peer_identity(&self, addr: SocketAddr) -> Option<PeerIdentity> {
        match self.shared.lock_peers().get(&addr) {
            Some(Peer::Connected(_, id)) => Some(*id),
            _ => None,
        }
    }

    /// Connections open now (established or handshaking), as quinn counts them.
    pub fn open_connections(&self) -> usize {
        self.shared.endpoint.open_connections()
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.shared.endpoint.local_addr().ok()
    }

    pub fn stats(&self) -> TransportStats {
        self.shared.metrics.snapshot()
    }

    /// Sends `bytes` to the peer at `to`. Never blocks: connects in the background if
    /// needed, and drops (counting) when the peer is backing off or its queue is full.
    pub fn send(&self, to: SocketAddr, channel: Channel, bytes: Vec<u8>) {
        let shared = &self.shared;
        let mut peers = shared.lock_peers();
        let (failures, queue) = match peers.remove(&to) {
            Some(Peer::Connected(conn, id)) => {
                if conn.close_reason().is_none() {
                    shared.send_on(&conn, channel, bytes);
                    peers.insert(to, Peer::Connected(conn, id));
                    return;
                }
                (0, vec![(channel, bytes)])
            }
            Some(Peer::Connecting {
                mut queue,
                failures,
            }) => {
                if queue.len() < CONNECT_QUEUE {
                    queue.push((channel, bytes));
                } else {
                    TransportMetrics::bump(&shared.metrics.send_dropped);
                }
                peers.insert(to, Peer::Connecting { queue, failures });
                return;
            }
            Some(Peer::Backoff { until, failures }) => {
                if Instant::now() < until {
                    TransportMetrics::bump(&shared.metrics.send_dropped);
                    peers.insert(to, Peer::Backoff { until, failures });
                    return;
                }
                (failures, vec![(channel, bytes)])
            }
            None => (0, vec![(channel, bytes)]),
        };
        peers.insert(to, Peer::Connecting { queue, failures });
        drop(peers);
        tokio::spawn(connect(self.shared.clone(), to, failures));
    }

    /// Closes every connection and the endpoint, waiting (bounded) for peers to be told.
    pub async fn close(&self) {
        self.shared
            .endpoint
            .close(VarInt::from_u32(0), b"node stopping");
        let _ =
            tokio::time::timeout(Duration::from_secs(2), self.shared.endpoint.wait_idle()).await;
    }
}

impl Shared {
    fn lock_peers(&self) -> MutexGuard<'_, HashMap<SocketAddr, Peer>> {
        // A panic while holding this lock leaves the table consistent (every update is
        // a single insert), so a poisoned lock is safe to keep using.
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn lock_serving(&self) -> MutexGuard<'_, Option<Arc<Serving>>> {
        // Every update is a single assignment: a poisoned lock is consistent.
        self.serving.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn serving(&self) -> Option<Arc<Serving>> {
        self.lock_serving().clone()
    }

    /// The live connection to `to` and its peer's identity, for a call: an existing
    /// one, one being dialled (waited for), or a new dial. A peer in backoff, or whose
    /// dial fails meanwhile, is an error at once; the caller's timeout bounds the wait.
    pub(super) async fn connection_for(
        self: &Arc<Self>,
        to: SocketAddr,
    ) -> Result<(Connection, PeerIdentity), CallError> {
        // Whether a dial was pending (ours or another's) since this call began: its
        // failure is this call's failure.
        let mut dialling = false;
        loop {
            // Registered before looking, so a change in between is not missed.
            let changed = self.peer_change.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let mut peers = self.lock_peers();
                match peers.remove(&to) {
                    Some(Peer::Connected(conn, id)) if conn.close_reason().is_none() => {
                        peers.insert(to, Peer::Connected(conn.clone(), id));
                        return Ok((conn, id));
                    }
                    Some(p @ Peer::Connecting { .. }) => {
                        peers.insert(to, p);
                        dialling = true;
                    }
                    Some(Peer::Backoff { until, failures }) => {
                        if dialling {
                            peers.insert(to, Peer::Backoff { until, failures });
                            return Err(CallError::ConnectFailed { to });
                        }
                        if Instant::now() < until {
                            peers.insert(to, Peer::Backoff { until, failures });
                            return Err(CallError::NotConnected { to });
                        }
                        self.dial(&mut peers, to, failures);
                        dialling = true;
                    }
                    // A closed connection (its read loop has not removed it yet) or
                    // none at all: dial.
                    Some(Peer::Connected(..)) | None => {
                        self.dial(&mut peers, to, 0);
                        dialling = true;
                    }
                }
            }
            changed.await;
        }
    }

    /// Starts a dial to `to` with nothing queued for it.
    fn dial(
        self: &Arc<Self>,
        peers: &mut HashMap<SocketAddr, Peer>,
        to: SocketAddr,
        failures: u32,
    ) {
        peers.insert(
            to,
            Peer::Connecting {
                queue: Vec::new(),
                failures,
            },
        );
        tokio::spawn(connect(self.clone(), to, failures));
    }

    fn send_on(self: &Arc<Self>, conn: &Connection, channel: Channel, bytes: Vec<u8>) {
        if channel == Channel::Datagram {
            let fits = conn
                .max_datagram_size()
                .is_some_and(|max| bytes.len() <= max);
            if fits {
                match conn.send_datagram(bytes.clone().into()) {
                    Ok(()) => {
                        TransportMetrics::bump(&self.metrics.datagrams_sent);
                        return;
                    }
                    Err(SendDatagramError::ConnectionLost(_)) => {
                        TransportMetrics::bump(&self.metrics.send_dropped);
                        return;
                    }
                    Err(_) => {} // too large after all, or datagrams off: use a stream
                }
            }
            TransportMetrics::bump(&self.metrics.oversize_datagrams);
        }
        let conn = conn.clone();
        let shared = self.clone();
        tokio::spawn(async move {
            let result = async {
                let mut stream = conn.open_uni().await.ok()?;
                stream.write_all(&bytes).await.ok()?;
                stream.finish().ok()
            }
            .await;
            match result {
                Some(()) => TransportMetrics::bump(&shared.metrics.streams_sent),
                None => TransportMetrics::bump(&shared.metrics.send_dropped),
            }
        });
    }

    /// Reads the peer's identity from its verified certificate, makes `conn` the
    /// connection for its remote address, flushes anything queued for it, and starts
    /// reading from it. A certificate that names no node is closed and counted; the
    /// caller then treats the peer as failed. Returns whether it was registered.
    fn register(self: &Arc<Self>, conn: Connection) -> bool {
        let addr = conn.remote_address();
        let identity = conn
            .peer_identity()
            .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
            .ok_or(PeerIdentityError::NoCertificate)
            .and_then(|chain| peer_identity(&chain));
        let identity = match identity {
            Ok(id) => id,
            Err(e) => {
                TransportMetrics::bump(&self.metrics.identity_refused);
                tracing::warn!(peer = %addr, error = %e, "peer refused: its certificate does not say which node it is");
                conn.close(VarInt::from_u32(CLOSE_NO_IDENTITY), b"no node identity");
                return false;
            }
        };
        TransportMetrics::bump(&self.metrics.connections_opened);
        let mut peers = self.lock_peers();
        let queued = match peers.insert(addr, Peer::Connected(conn.clone(), identity)) {
            Some(Peer::Connecting { queue, .. }) => queue,
            _ => Vec::new(),
        };
        drop(peers);
        self.peer_change.notify_waiters();
        for (channel, bytes) in queued {
            self.send_on(&conn, channel, bytes);
        }
        tokio::spawn(read_loop(self.clone(), conn, identity));
        true
    }

    /// Whether a message from `peer` may go to the driver: its header must claim the
    /// node and the storage life the certificate proves (the life is the fingerprint
    /// of the key that completed the handshake, so a holder of the secret can claim
    /// neither another node's id nor its life). A header too short to read passes:
    /// the core's decode rejects and counts it.
    fn authentic(&self, peer: &PeerIdentity, bytes: &[u8]) -> bool {
        match aurora_core::wire::peek_sender(bytes) {
            Some((node, life)) if node != peer.node || life != peer.life => {
                TransportMetrics::bump(&self.metrics.identity_mismatch);
                tracing::debug!(
                    claimed = %node, claimed_life = %life,
                    certified = %peer.node, certified_life = %peer.life,
                    "message claims another sender than its certificate: dropped"
                );
                false
            }
            _ => true,
        }
    }

    fn count_failure(&self, e: &ConnectionError) {
        if is_tls_rejection(e) {
            TransportMetrics::bump(&self.metrics.tls_rejected);
            tracing::warn!(error = %e, "peer refused: TLS handshake failed (wrong cluster secret?)");
        }
    }
}

/// A handshake that failed on certificates: QUIC carries TLS alerts as the crypto error
/// codes 0x100-0x1ff, whichever side noticed first.
fn is_tls_rejection(e: &ConnectionError) -> bool {
    let crypto = |code: u64| (0x100..0x200).contains(&code);
    match e {
        ConnectionError::TransportError(t) => crypto(u64::from(t.code)),
        ConnectionError::ConnectionClosed(c) => crypto(u64::from(c.error_code)),
        _ => false,
    }
}

fn backoff(failures: u32) -> Duration {
    BACKOFF_BASE
        .saturating_mul(1u32 << failures.min(16))
        .min(BACKOFF_MAX)
}

async fn connect(shared: Arc<Shared>, to: SocketAddr, failures: u32) {
    let result = match shared
        .endpoint
        .connect_with(shared.client.clone(), to, SERVER_NAME)
    {
        Ok(connecting) => connecting.await.map_err(Some),
        Err(e) => {
            tracing::debug!(peer = %to, error = %e, "cannot dial");
            Err(None)
        }
    };
    let error = match result {
        Ok(conn) => {
            if shared.register(conn) {
                return;
            }
            None // connected, but refused: counted by `register`
        }
        Err(e) => e,
    };
    TransportMetrics::bump(&shared.metrics.connect_failures);
    if let Some(e) = &error {
        shared.count_failure(e);
        tracing::debug!(peer = %to, error = %e, "connection failed");
    }
    let mut peers = shared.lock_peers();
    // An inbound connection may have arrived meanwhile; keep it.
    if let Some(Peer::Connected(..)) = peers.get(&to) {
        return;
    }
    if let Some(Peer::Connecting { queue, .. }) = peers.get(&to) {
        for _ in queue {
            TransportMetrics::bump(&shared.metrics.send_dropped);
        }
    }
    let failures = failures.saturating_add(1);
    peers.insert(
        to,
        Peer::Backoff {
            until: Instant::now() + backoff(failures),
            failures,
        },
    );
    drop(peers);
    shared.peer_change.notify_waiters();
}

/// Applies the handshake policy of [`super::limits`] to each inbound handshake, in
/// order: allow-list, address validation, the cap, the deadline.
async fn accept_loop(shared: Arc<Shared>) {
    while let Some(incoming) = shared.endpoint.accept().await {
        let remote = incoming.remote_address();
        if !shared.limits.allows(remote.ip()) {
            TransportMetrics::bump(&shared.metrics.peer_not_allowed);
            tracing::debug!(peer = %remote, "inbound handshake from outside cluster.allowed_peers ignored");
            incoming.ignore();
            continue;
        }
        if !incoming.remote_address_validated() {
            if incoming.may_retry() {
                // Stateless: the peer must echo the token from this address to go on.
                if incoming.retry().is_ok() {
                    TransportMetrics::bump(&shared.metrics.retries_sent);
                }
            } else {
                incoming.ignore();
            }
            continue;
        }
        let Ok(permit) = shared.handshakes.clone().try_acquire_owned() else {
            TransportMetrics::bump(&shared.metrics.handshakes_refused);
            tracing::debug!(peer = %remote, "inbound handshake refused: cluster.max_handshakes in progress");
            incoming.refuse();
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let gauge = &shared.metrics.handshakes_in_progress;
            gauge.fetch_add(1, Ordering::Relaxed);
            let result = tokio::time::timeout(shared.limits.timeout, incoming).await;
            gauge.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
            match result {
                Ok(Ok(conn)) => {
                    shared.register(conn);
                }
                Ok(Err(e)) => {
                    shared.count_failure(&e);
                    tracing::debug!(peer = %remote, error = %e, "inbound handshake failed");
                }
                Err(_) => {
                    // Dropping the handshake future closes the half-open connection.
                    TransportMetrics::bump(&shared.metrics.handshake_timeouts);
                    tracing::debug!(peer = %remote, "inbound handshake timed out");
                }
            }
        });
    }
}

async fn read_loop(shared: Arc<Shared>, conn: Connection, peer: PeerIdentity) {
    let from = conn.remote_address();
    loop {
        tokio::select! {
            datagram = conn.read_datagram() => {
                let Ok(bytes) = datagram else { break };
                TransportMetrics::bump(&shared.metrics.datagrams_received);
                if !shared.authentic(&peer, &bytes) {
                    continue;
                }
                let msg = Inbound { from, channel: Channel::Datagram, bytes: bytes.to_vec(), peer };
                if shared.inbound.try_send(msg).is_err() {
                    TransportMetrics::bump(&shared.metrics.receive_dropped);
                }
            }
            call = conn.accept_bi() => {
                let Ok((send, recv)) = call else { break };
                tokio::spawn(call::serve(shared.clone(), from, peer, send, recv));
            }
            stream = conn.accept_uni() => {
                let Ok(mut stream) = stream else { break };
                let shared = shared.clone();
                tokio::spawn(async move {
                    match stream.read_to_end(MAX_STREAM_MESSAGE).await {
                        Ok(bytes) => {
                            TransportMetrics::bump(&shared.metrics.streams_received);
                            if !shared.authentic(&peer, &bytes) {
                                return;
                            }
                            let msg = Inbound { from, channel: Channel::Stream, bytes, peer };
                            if shared.inbound.send(msg).await.is_err() {
                                TransportMetrics::bump(&shared.metrics.receive_dropped);
                            }
                        }
                        Err(quinn::ReadToEndError::TooLong) => {
                            TransportMetrics::bump(&shared.metrics.stream_too_large);
                            let _ = stream.stop(VarInt::from_u32(1));
                        }
                        Err(_) => TransportMetrics::bump(&shared.metrics.receive_dropped),
                    }
                });
            }
        }
    }
    // Forget the connection unless a newer one has replaced it.
    let mut peers = shared.lock_peers();
    if let Some(Peer::Connected(current, _)) = peers.get(&from) {
        if current.stable_id() == conn.stable_id() {
            peers.remove(&from);
        }
    }
    drop(peers);
    shared.peer_change.notify_waiters();
}
