//! Binding, the accept loop and graceful drain.
//!
//! Shutdown happens in three steps so no client sees a reset connection it did not
//! deserve: (1) readiness flips to 503 at once, and for `shutdown_grace` the listener
//! still accepts, so a load balancer polling `/health/ready` moves traffic away;
//! (2) the connections the kernel has already queued are taken (closing the listener
//! would reset them), the listener closes, and every connection is told to finish its
//! current request
//! (streams included) and close; (3) after `drain_timeout` whatever is left is dropped.
//! Either way the server returns normally and the binary exits 0.
//!
//! HTTP/1.1 only for now: it is what OpenAI clients speak; h2 can be added with
//! hyper-util's auto builder when a client needs it.
//!
//! Every accepted connection first takes a slot under the connection caps
//! ([`crate::http::conn::Connections`]); one over a cap gets a canned 503 and is
//! closed without a task. Hyper reads and writes through
//! [`crate::http::conn::EdgeIo`] (writes bounded by `send_timeout_ms`); request headers
//! must arrive within `header_read_timeout_ms` (also the keep-alive idle limit), and a
//! client that sent part of a request by then is told 408 before the close.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::admin::token::AdminToken;
use crate::catalog::store::{process_env, EnvLookup};
use crate::cluster::{ClusterInfo, StateView};
use crate::config::ServerConfig;
use crate::http::conn::{EdgeIo, HEADER_TIMEOUT_RESPONSE, REFUSED_RESPONSE};
use crate::http::router;
use crate::state::AppState;

/// After the listener closed, how long connections accepted just before get for their
/// request to be read, before idle connections are closed.
pub const JUST_ACCEPTED_GRACE: Duration = Duration::from_millis(250);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Binding the listen address failed (in use, no permission, bad interface).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: io::Error,
    },
    /// The catalog, upstream settings or upstream client are unusable.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
}

/// How shutdown went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DrainOutcome {
    /// Every connection finished within the drain timeout.
    Drained,
    /// The drain timeout passed; the remaining connections were dropped.
    TimedOut,
}

/// A bound, not yet running server.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    state: Arc<AppState>,
    config: ServerConfig,
}

impl Server {
    /// Binds `config.listen`. Binding before running lets the caller learn the real
    /// port (for port 0) and fail fast on a busy address.
    pub async fn bind(config: ServerConfig, admin_token: AdminToken) -> Result<Self, ServerError> {
        Self::bind_with_env(config, admin_token, process_env()).await
    }

    /// [`Server::bind`] with upstream API-key variables looked up by `env` instead of
    /// the process environment (tests: no `set_var` racing other threads).
    pub async fn bind_with_env(
        config: ServerConfig,
        admin_token: AdminToken,
        env: EnvLookup,
    ) -> Result<Self, ServerError> {
        Self::bind_with(config, admin_token, env, None).await
    }

    /// [`Server::bind_with_env`] connected to a running node: its state view and
    /// cluster info (`aurora serve` always passes one; tests may pass `None` for a
    /// detached, in-memory state).
    pub async fn bind_with(
        config: ServerConfig,
        admin_token: AdminToken,
        env: EnvLookup,
        node: Option<(StateView, ClusterInfo)>,
    ) -> Result<Self, ServerError> {
        let addr = config.listen;
        let mut state = AppState::with_env(config.gateway.clone(), admin_token, env)?;
        state.loopback_listener = addr.ip().is_loopback();
        if let Some((view, info)) = node {
            state = state.attach(view, info);
        }
        let state = Arc::new(state);
        let bind_error = |source| ServerError::Bind { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        Ok(Self {
            listener,
            local_addr,
            state,
            config,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The shared state, e.g. to read metrics or readiness in tests.
    pub fn state(&self) -> Arc<AppState> {
        Arc::clone(&self.state)
    }

    /// Serves until `shutdown` completes, then drains (see the module docs).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> DrainOutcome {
        let Server {
            listener,
            local_addr,
            state,
            config,
        } = self;
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(state.config.limits.header_read_timeout())
            .keep_alive(true);
        let graceful = GracefulShutdown::new();
        tracing::info!(addr = %local_addr, "listening");
        // The catalog follows the replicated providers, models and routes.
        let catalog_sync = tokio::spawn(crate::cluster::catalog::sync(Arc::clone(&state)));
        // The overview's short history of the node's own metrics.
        let sampler = tokio::spawn(crate::metrics::history::sample_forever(Arc::clone(&state)));

        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => accept(accepted, &builder, &graceful, &state).await,
                () = &mut shutdown => break,
            }
        }

        state.start_draining();
        tracing::info!(
            grace_ms = config.shutdown_grace.as_millis() as u64,
            "shutdown requested: not ready; draining"
        );
        if !config.shutdown_grace.is_zero() {
            let grace = tokio::time::sleep(config.shutdown_grace);
            tokio::pin!(grace);
            loop {
                tokio::select! {
                    accepted = listener.accept() => accept(accepted, &builder, &graceful, &state).await,
                    () = &mut grace => break,
                }
            }
        }
        // Connections the kernel has queued but the loop has not taken yet would be
        // reset by the close, which a client cannot tell from a failure (seen in a
        // rolling restart on a loaded machine): take them first, and serve them.
        accept_queued(listener, &builder, &graceful, &state).await;
        // A connection accepted a moment ago whose request hyper has not read yet counts
        // as idle, and the graceful shutdown closes idle connections at once: with the
        // request unread in the socket that close is a reset, which a client cannot tell
        // from a failure (seen in a rolling restart). Let such requests be read first.
        tokio::time::sleep(JUST_ACCEPTED_GRACE).await;

        let in_flight = state.metrics.in_flight();
        tracing::info!(
            in_flight,
            timeout_ms = config.drain_timeout.as_millis() as u64,
            "listener closed; waiting for in-flight requests"
        );
        catalog_sync.abort();
        sampler.abort();
        match tokio::time::timeout(config.drain_timeout, graceful.shutdown()).await {
            Ok(()) => {
                tracing::info!("drained");
                DrainOutcome::Drained
            }
            Err(_) => {
                tracing::warn!(
                    in_flight = state.metrics.in_flight(),
                    "drain timeout passed; dropping remaining connections"
                );
                DrainOutcome::TimedOut
            }
        }
    }
}

/// Most connections [`accept_queued`] takes: a flood at shutdown cannot keep it going.
const MAX_QUEUED_AT_CLOSE: usize = 1024;

/// Accepts, without waiting, what the kernel has already queued on `listener`, then
/// closes it: after this a connection attempt is refused, never reset.
async fn accept_queued(
    listener: TcpListener,
    builder: &http1::Builder,
    graceful: &GracefulShutdown,
    state: &Arc<AppState>,
) {
    // The std listener is non-blocking (tokio sets it so): `accept` answers at once.
    let listener = match listener.into_std() {
        Ok(listener) => listener,
        Err(error) => {
            tracing::warn!(%error, "cannot take the listener's queued connections");
            return;
        }
    };
    for _ in 0..MAX_QUEUED_AT_CLOSE {
        let accepted = match listener.accept() {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
            Err(error) => Err(error),
            // An accepted socket does not inherit the listener's non-blocking mode.
            Ok((stream, peer)) => stream
                .set_nonblocking(true)
                .and_then(|()| tokio::net::TcpStream::from_std(stream))
                .map(|stream| (stream, peer)),
        };
        let failed = accepted.is_err();
        accept(accepted, builder, graceful, state).await;
        if failed {
            break;
        }
    }
}

async fn accept(
    accepted: io::Result<(tokio::net::TcpStream, SocketAddr)>,
    builder: &http1::Builder,
    graceful: &GracefulShutdown,
    state: &Arc<AppState>,
) {
    let (stream, peer) = match accepted {
        Ok(pair) => pair,
        Err(error) => {
            // Usually EMFILE/ENFILE: back off briefly instead of spinning on the error.
            tracing::warn!(%error, "accept failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
            return;
        }
    };
    let slot = match state.connections.try_open(peer.ip()) {
        Ok(slot) => slot,
        Err(reason) => {
            // One non-blocking write and a close: a flood costs no task and no queue.
            // If the socket cannot take the bytes at once, the client just sees the close.
            let _ = stream.try_write(REFUSED_RESPONSE);
            tracing::debug!(%peer, reason = reason.label(), "connection refused by a cap");
            return;
        }
    };
    // Small SSE chunks must leave at once, not wait for Nagle.
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "set_nodelay failed");
    }
    let (io, socket, flags) = EdgeIo::new(stream, state.config.limits.send_timeout());
    let state = Arc::clone(state);
    let connections = Arc::clone(&state.connections);
    let service = service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
        request
            .extensions_mut()
            .insert(crate::http::ClientAddr(peer));
        router::dispatch(Arc::clone(&state), request)
    });
    let connection = graceful.watch(builder.serve_connection(TokioIo::new(io), service));
    tokio::spawn(async move {
        let _slot = slot;
        match connection.await {
            Ok(()) => {}
            Err(error) if flags.send_timed_out.load(Ordering::Relaxed) => {
                connections.send_timed_out();
                tracing::debug!(%peer, %error, "client stopped reading; connection dropped");
            }
            Err(error) if error.is_timeout() => {
                // Hyper closes a connection whose headers are late without a word; a
                // client that had started a request is told why. An idle keep-alive
                // connection is just closed (a 408 there could be taken as the answer
                // to the client's next request).
                if flags.unanswered.load(Ordering::Relaxed) {
                    let _ = socket.try_write(HEADER_TIMEOUT_RESPONSE);
                    connections.header_timed_out();
                }
                tracing::debug!(%peer, "request headers late; connection closed");
            }
            Err(error) => tracing::debug!(%peer, %error, "connection ended with an error"),
        }
    });
}
