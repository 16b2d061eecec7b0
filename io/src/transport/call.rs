//! Request/reply calls between nodes, on bidirectional QUIC streams of the cluster's
//! connections.
//!
//! Why here: the gateway needs to ask a peer something and wait for its answer (is a
//! response cached on you, its owner? answer this client request for me). The gossip
//! connections are already mutually authenticated (cluster secret + node certificate)
//! and kept alive, so a call rides them: nothing new to configure, and a call is exactly
//! as authenticated and encrypted as gossip. The bytes are opaque to io; the
//! application encodes requests and replies (errors included) itself.
//!
//! One call is one bidirectional stream: the caller writes the request and finishes its
//! side, the callee writes the reply and finishes its side. Nothing else is framed. When
//! the callee will not answer, it resets its side (and stops the caller's) with one of
//! the `CODE_*` values below, which the caller turns into a [`CallError`]; these codes
//! are the wire contract between versions.
//!
//! What holds:
//! * **Bytes reach the node the caller named, or nobody.** [`Transport::call`] checks
//!   the connection's certificate against the expected [`NodeId`] before it writes.
//! * **The caller's timeout bounds the whole call** (dial, write, the handler, the
//!   reply). Calls may legitimately wait long (a call held until another node's upstream
//!   answer is stored); keep-alives keep the connection up meanwhile.
//! * **A cut-short message is never taken for a whole one.** Either side that gives up
//!   resets its send side (a dropped quinn stream would otherwise *finish* it).
//! * **Inbound calls are bounded** ([`ServeLimits`]): the request size, the number being
//!   handled at once on this node (over it: refused at once, not queued), and a deadline
//!   per call. A peer may open at most [`MAX_CALLS_PER_CONNECTION`] at a time on one
//!   connection (QUIC flow control: the next waits for a free slot).
//! * **A handler cannot take the node down.** It runs in its own task: a panic becomes a
//!   [`CallError::HandlerPanicked`] for the caller. When the caller goes away (its timeout,
//!   a dropped future) the handler's future is dropped.
//! * **No handler, no service.** Until [`Transport::set_call_handler`] registers one,
//!   every inbound call is refused ([`CallError::NoHandler`] for the caller).
//!
//! Versions: a node from before calls allows no bidirectional streams, so a call to it
//! waits for a stream slot until the caller's timeout ([`CallError::Timeout`]).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aurora_core::NodeId;
use quinn::{ReadError, ReadToEndError, RecvStream, SendStream, VarInt, WriteError};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::quic::Shared;
use super::{Transport, TransportMetrics};
use crate::identity::PeerIdentity;

/// Stream codes of a refused or failed call (the wire contract, see the module docs).
/// The callee has no handler registered.
pub const CODE_NO_HANDLER: u32 = 0x10;
/// The callee is handling [`ServeLimits::max_in_flight`] calls already.
pub const CODE_BUSY: u32 = 0x11;
/// The request (callee's view) or the reply (caller's view) is over the limit.
pub const CODE_TOO_LARGE: u32 = 0x12;
/// The callee's handler panicked.
pub const CODE_HANDLER_PANICKED: u32 = 0x13;
/// The callee's [`ServeLimits::deadline`] passed before the reply was written.
pub const CODE_DEADLINE: u32 = 0x14;
/// The caller gave up (its timeout, or its future was dropped).
pub const CODE_CANCELLED: u32 = 0x15;

/// Calls a peer may have open at once on one connection.
pub const MAX_CALLS_PER_CONNECTION: u32 = 256;

/// A call from a peer, for the handler the application registered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerRequest {
    /// Who called, as the connection's verified certificate says.
    pub peer: PeerIdentity,
    /// The caller's gossip address (the remote address of its connection).
    pub from: SocketAddr,
    /// The request, whole (at most [`ServeLimits::max_request`] bytes).
    pub bytes: Vec<u8>,
}

/// The future a [`CallHandler`] returns: the reply bytes.
pub type CallFuture = Pin<Box<dyn Future<Output = Vec<u8>> + Send + 'static>>;

/// What answers peers' calls. Returns the reply bytes; the application encodes its own
/// errors in them. `handle` is called once per whole request (never for one cut short);
/// the future runs in its own task and may be dropped at any await (the caller went
/// away, or the [`ServeLimits::deadline`] passed).
///
/// Any `Fn(PeerRequest) -> impl Future<Output = Vec<u8>>` (Send + Sync + 'static) is one.
pub trait CallHandler: Send + Sync + 'static {
    /// Answers one call.
    fn handle(&self, request: PeerRequest) -> CallFuture;
}

impl<F, Fut> CallHandler for F
where
    F: Fn(PeerRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Vec<u8>> + Send + 'static,
{
    fn handle(&self, request: PeerRequest) -> CallFuture {
        Box::pin(self(request))
    }
}

/// Why a call got no reply. Whatever the variant, the caller may retry or fall back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// Refused before anything was sent: the request is over the caller's own limit.
    #[error("call request of {len} bytes is over the limit of {limit}")]
    RequestTooLarge { len: usize, limit: usize },
    /// A dial to the peer failed recently; dials are retried after a backoff (the same
    /// one gossip uses), so the call fails at once instead of waiting.
    #[error("no connection to {to}: a recent dial failed, retried after a backoff")]
    NotConnected { to: SocketAddr },
    /// Dialling the peer for this call failed: no answer, or the handshake was refused
    /// (wrong cluster secret, a certificate naming no node).
    #[error("cannot connect to {to}")]
    ConnectFailed { to: SocketAddr },
    /// The connection at that address belongs to another node than the caller expected
    /// (the node moved, or the caller's view is stale). Nothing was sent.
    #[error("the node at {to} is {found}, not {expected}")]
    WrongPeer {
        to: SocketAddr,
        expected: NodeId,
        found: NodeId,
    },
    /// The caller's timeout passed (dial, request, handler and reply together).
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// The reply is over the caller's [`CallLimits::max_reply`].
    #[error("reply over the limit of {limit} bytes")]
    ReplyTooLarge { limit: usize },
    /// The peer has no call handler registered (yet: it may still be starting).
    #[error("the peer answers no calls (no handler registered)")]
    NoHandler,
    /// The peer is handling as many calls as it allows at once.
    #[error("the peer is busy (too many calls in flight)")]
    Busy,
    /// The request is over the peer's [`ServeLimits::max_request`].
    #[error("the request is over the peer's size limit")]
    TooLargeForPeer,
    /// The peer's handler panicked.
    #[error("the peer's call handler failed")]
    HandlerPanicked,
    /// The peer's own deadline for one call passed.
    #[error("the peer's deadline for the call passed")]
    PeerDeadline,
    /// The peer reset the call with a code this version does not know (0: it is
    /// shutting down, or gave up).
    #[error("the peer reset the call (code {0})")]
    Reset(u64),
    /// The connection closed during the call.
    #[error("connection lost during the call: {0}")]
    ConnectionLost(String),
}

impl CallError {
    fn from_code(code: VarInt) -> CallError {
        match u32::try_from(code.into_inner()) {
            Ok(CODE_NO_HANDLER) => CallError::NoHandler,
            Ok(CODE_BUSY) => CallError::Busy,
            Ok(CODE_TOO_LARGE) => CallError::TooLargeForPeer,
            Ok(CODE_HANDLER_PANICKED) => CallError::HandlerPanicked,
            Ok(CODE_DEADLINE) => CallError::PeerDeadline,
            _ => CallError::Reset(code.into_inner()),
        }
    }
}

/// The caller's bounds on one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallLimits {
    /// The whole call: dial (if there is no connection), request, handler, reply.
    pub timeout: Duration,
    /// Larger requests are refused before anything is sent.
    pub max_request: usize,
    /// Longer replies end the call with [`CallError::ReplyTooLarge`].
    pub max_reply: usize,
}

impl Default for CallLimits {
    /// 10 s, 1 MiB requests, 8 MiB replies.
    fn default() -> Self {
        CallLimits {
            timeout: Duration::from_secs(10),
            max_request: 1 << 20,
            max_reply: 8 << 20,
        }
    }
}

/// The callee's bounds on peers' calls, node-wide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServeLimits {
    /// Longer requests are refused ([`CallError::TooLargeForPeer`]) and counted.
    pub max_request: usize,
    /// Calls handled at once (all peers together); more are refused at once
    /// ([`CallError::Busy`]) and counted. Memory held by requests is bounded by
    /// `max_request * max_in_flight`.
    pub max_in_flight: usize,
    /// One call (request read, handler, reply written) may take this long. A backstop
    /// only: the caller's timeout normally ends a call first (its going away drops the
    /// handler at once); this frees the slot of a caller that never gives up.
    pub deadline: Duration,
}

impl Default for ServeLimits {
    /// 1 MiB requests, 1024 calls at once, 120 s per call.
    fn default() -> Self {
        ServeLimits {
            max_request: 1 << 20,
            max_in_flight: 1024,
            deadline: Duration::from_secs(120),
        }
    }
}

/// A node's calls to and from its peers: a cheap clone of its [`Transport`] that can
/// make and answer calls but not send the core's gossip (what the gateway holds, from
/// `aurora_io::Handle::peer_calls`).
#[derive(Clone, Debug)]
pub struct PeerCalls {
    transport: Transport,
}

impl PeerCalls {
    /// Calls over `transport`.
    pub fn new(transport: Transport) -> PeerCalls {
        PeerCalls { transport }
    }

    /// See [`Transport::call`].
    pub async fn call(
        &self,
        to: SocketAddr,
        expect: NodeId,
        bytes: Vec<u8>,
        limits: CallLimits,
    ) -> Result<Vec<u8>, CallError> {
        self.transport.call(to, expect, bytes, limits).await
    }

    /// See [`Transport::set_call_handler`].
    pub fn set_call_handler(&self, handler: Arc<dyn CallHandler>) {
        self.transport.set_call_handler(handler);
    }

    /// See [`Transport::set_call_handler_with`].
    pub fn set_call_handler_with(&self, handler: Arc<dyn CallHandler>, limits: ServeLimits) {
        self.transport.set_call_handler_with(handler, limits);
    }
}

/// The registered handler with its limits and in-flight slots.
pub(super) struct Serving {
    handler: Arc<dyn CallHandler>,
    limits: ServeLimits,
    slots: Arc<Semaphore>,
}

impl Transport {
    /// Registers the handler for peers' calls with the default [`ServeLimits`]. Until
    /// then inbound calls are refused ([`CallError::NoHandler`] for the caller).
    pub fn set_call_handler(&self, handler: Arc<dyn CallHandler>) {
        self.set_call_handler_with(handler, ServeLimits::default());
    }

    /// [`Transport::set_call_handler`] with explicit limits. A later registration
    /// replaces the earlier one for new calls; calls already being handled finish with
    /// the handler they started with.
    pub fn set_call_handler_with(&self, handler: Arc<dyn CallHandler>, limits: ServeLimits) {
        let slots = Arc::new(Semaphore::new(
            limits.max_in_flight.min(Semaphore::MAX_PERMITS),
        ));
        let serving = Arc::new(Serving {
            handler,
            limits,
            slots,
        });
        *self.shared.lock_serving() = Some(serving);
    }

    /// Calls node `expect` at its gossip address `to`: opens a bidirectional stream on
    /// the live connection (dialling if there is none), checks that the connection's
    /// certificate names `expect`, writes `bytes`, and reads the reply to its end. Every
    /// step is bounded by `limits` (see the module docs).
    pub async fn call(
        &self,
        to: SocketAddr,
        expect: NodeId,
        bytes: Vec<u8>,
        limits: CallLimits,
    ) -> Result<Vec<u8>, CallError> {
        let metrics = &self.shared.metrics;
        TransportMetrics::bump(&metrics.calls_sent);
        let result = if bytes.len() > limits.max_request {
            Err(CallError::RequestTooLarge {
                len: bytes.len(),
                limit: limits.max_request,
            })
        } else {
            let call = call_on(&self.shared, to, expect, &bytes, limits.max_reply);
            match tokio::time::timeout(limits.timeout, call).await {
                Ok(result) => result,
                Err(_) => Err(CallError::Timeout(limits.timeout)),
            }
        };
        if let Err(e) = &result {
            TransportMetrics::bump(&metrics.calls_failed);
            tracing::debug!(peer = %to, node = %expect, error = %e, "call failed");
        }
        result
    }
}

async fn call_on(
    shared: &Arc<Shared>,
    to: SocketAddr,
    expect: NodeId,
    bytes: &[u8],
    max_reply: usize,
) -> Result<Vec<u8>, CallError> {
    let (conn, peer) = shared.connection_for(to).await?;
    if peer.node != expect {
        return Err(CallError::WrongPeer {
            to,
            expected: expect,
            found: peer.node,
        });
    }
    let lost = |e: &dyn std::fmt::Display| CallError::ConnectionLost(e.to_string());
    let (send, mut recv) = conn.open_bi().await.map_err(|e| lost(&e))?;
    let mut send = ResetOnDrop::new(send, CODE_CANCELLED);
    match send.stream().write_all(bytes).await {
        Ok(()) => {}
        Err(WriteError::Stopped(code)) => return Err(CallError::from_code(code)),
        Err(e) => return Err(lost(&e)),
    }
    send.finish();
    match recv.read_to_end(max_reply).await {
        Ok(reply) => Ok(reply),
        Err(ReadToEndError::TooLong) => {
            let _ = recv.stop(VarInt::from_u32(CODE_TOO_LARGE));
            Err(CallError::ReplyTooLarge { limit: max_reply })
        }
        Err(ReadToEndError::Read(ReadError::Reset(code))) => Err(CallError::from_code(code)),
        Err(ReadToEndError::Read(e)) => Err(lost(&e)),
    }
}

/// A send stream that is reset with `code` unless it was finished: quinn finishes a
/// dropped stream, which would hand the peer a cut-short message as a whole one.
struct ResetOnDrop {
    stream: SendStream,
    code: u32,
    finished: bool,
}

impl ResetOnDrop {
    fn new(stream: SendStream, code: u32) -> ResetOnDrop {
        ResetOnDrop {
            stream,
            code,
            finished: false,
        }
    }

    fn stream(&mut self) -> &mut SendStream {
        &mut self.stream
    }

    fn finish(mut self) {
        self.finished = self.stream.finish().is_ok();
    }

    fn reset(mut self, code: u32) {
        self.code = code;
    }
}

impl Drop for ResetOnDrop {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.stream.reset(VarInt::from_u32(self.code));
        }
    }
}

/// Counts a gauge up while alive.
struct InFlight<'a>(&'a AtomicU64);

impl<'a> InFlight<'a> {
    fn up(gauge: &'a AtomicU64) -> InFlight<'a> {
        gauge.fetch_add(1, Ordering::Relaxed);
        InFlight(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How the handler's part of a call ended.
enum Outcome {
    Reply(Vec<u8>),
    Panicked,
    Deadline,
    Abandoned,
}

/// Answers one inbound call (its own task, spawned by the connection's read loop).
pub(super) async fn serve(
    shared: Arc<Shared>,
    from: SocketAddr,
    peer: PeerIdentity,
    send: SendStream,
    mut recv: RecvStream,
) {
    let metrics = &shared.metrics;
    TransportMetrics::bump(&metrics.calls_received);
    let send = ResetOnDrop::new(send, CODE_CANCELLED);
    let refuse = |send: ResetOnDrop, recv: &mut RecvStream, code: u32| {
        let _ = recv.stop(VarInt::from_u32(code));
        send.reset(code);
    };
    let Some(serving) = shared.serving() else {
        TransportMetrics::bump(&metrics.calls_refused);
        tracing::debug!(peer = %from, "call refused: no handler registered");
        return refuse(send, &mut recv, CODE_NO_HANDLER);
    };
    let Ok(_slot) = serving.slots.clone().try_acquire_owned() else {
        TransportMetrics::bump(&metrics.calls_refused);
        tracing::debug!(peer = %from, "call refused: too many calls in flight");
        return refuse(send, &mut recv, CODE_BUSY);
    };
    let _gauge = InFlight::up(&metrics.calls_in_flight);
    let deadline = Instant::now() + serving.limits.deadline;
    let read = recv.read_to_end(serving.limits.max_request);
    let bytes = match tokio::time::timeout_at(deadline, read).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(ReadToEndError::TooLong)) => {
            TransportMetrics::bump(&metrics.call_too_large);
            tracing::debug!(peer = %from, limit = serving.limits.max_request, "call refused: request too large");
            return refuse(send, &mut recv, CODE_TOO_LARGE);
        }
        Ok(Err(_)) => {
            // The caller reset its request, or the connection is gone.
            TransportMetrics::bump(&metrics.calls_abandoned);
            return;
        }
        Err(_) => {
            TransportMetrics::bump(&metrics.calls_handler_failed);
            return refuse(send, &mut recv, CODE_DEADLINE);
        }
    };
    let request = PeerRequest { peer, from, bytes };
    // A panic while building the future, or (in its own task) while running it, fails
    // only this call.
    let build = std::panic::AssertUnwindSafe(|| serving.handler.handle(request));
    let Ok(future) = std::panic::catch_unwind(build) else {
        TransportMetrics::bump(&metrics.calls_handler_failed);
        tracing::warn!(peer = %from, "call handler panicked");
        return send.reset(CODE_HANDLER_PANICKED);
    };
    let task = tokio::spawn(future);
    let abort = task.abort_handle();
    let mut send = send;
    let gone = send.stream().stopped();
    let outcome = tokio::select! {
        done = tokio::time::timeout_at(deadline, task) => match done {
            Ok(Ok(reply)) => Outcome::Reply(reply),
            Ok(Err(_)) => Outcome::Panicked,
            Err(_) => Outcome::Deadline,
        },
        _ = gone => Outcome::Abandoned,
    };
    abort.abort();
    match outcome {
        Outcome::Reply(reply) => {
            let write = send.stream().write_all(&reply);
            match tokio::time::timeout_at(deadline, write).await {
                Ok(Ok(())) => send.finish(),
                Ok(Err(_)) => TransportMetrics::bump(&metrics.calls_abandoned),
                Err(_) => {
                    TransportMetrics::bump(&metrics.calls_handler_failed);
                    send.reset(CODE_DEADLINE);
                }
            }
        }
        Outcome::Panicked => {
            TransportMetrics::bump(&metrics.calls_handler_failed);
            tracing::warn!(peer = %from, "call handler panicked");
            send.reset(CODE_HANDLER_PANICKED);
        }
        Outcome::Deadline => {
            TransportMetrics::bump(&metrics.calls_handler_failed);
            tracing::debug!(peer = %from, "call handler passed the serve deadline");
            send.reset(CODE_DEADLINE);
        }
        Outcome::Abandoned => TransportMetrics::bump(&metrics.calls_abandoned),
    }
}
