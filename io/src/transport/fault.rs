//! Fault injection for game days: a switch that cuts this node off the cluster network.
//!
//! [`Isolation`] wraps the node's UDP socket ([`IsolatableSocket`]); while it is armed
//! every datagram in and out is dropped at the socket, below QUIC, exactly as a cable
//! pulled between this node and every peer. QUIC, SWIM and the lease then see what they
//! would see in a real partition: no handshake, no gossip, connections timing out. The
//! HTTP side of the node is untouched and keeps serving, which is the point of the
//! exercise (what do its clients get while it is cut off?).
//!
//! Why at the socket and not in the core or the transport's send path: the core stays
//! free of test hooks, and dropping whole packets is the only cut that also starves
//! QUIC's own keep-alives and handshakes. The isolation ends by itself after the
//! duration it was armed with, so a game day that crashes half-way cannot leave a node
//! cut off for good. It is only ever wired in when the operator started the node with
//! fault injection allowed (`aurora serve --allow-fault-injection`).

use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};
use tokio::time::Instant;

/// The switch. Cloning shares it; [`Isolation::isolate`] arms it for a while.
#[derive(Clone, Default)]
pub struct Isolation {
    inner: Arc<State>,
}

#[derive(Default)]
struct State {
    /// Fast path: false while not armed, so an idle switch costs one relaxed load.
    armed: AtomicBool,
    /// When the isolation ends.
    until: Mutex<Option<Instant>>,
    dropped_in: AtomicU64,
    dropped_out: AtomicU64,
}

impl fmt::Debug for Isolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Isolation")
            .field("remaining", &self.remaining())
            .finish_non_exhaustive()
    }
}

impl Isolation {
    pub fn new() -> Isolation {
        Isolation::default()
    }

    /// Drops every packet in and out from now for `duration` (replacing any isolation
    /// in progress; `Duration::ZERO` heals at once).
    pub fn isolate(&self, duration: Duration) {
        let mut until = self.lock();
        if duration.is_zero() {
            *until = None;
            self.inner.armed.store(false, Ordering::Release);
        } else {
            *until = Some(Instant::now() + duration);
            self.inner.armed.store(true, Ordering::Release);
        }
    }

    /// How long the isolation still lasts (`None`: not isolated).
    pub fn remaining(&self) -> Option<Duration> {
        let until = (*self.lock())?;
        until.checked_duration_since(Instant::now())
    }

    /// Whether packets are dropped now; disarms the switch once its time is over.
    pub fn is_isolated(&self) -> bool {
        if !self.inner.armed.load(Ordering::Acquire) {
            return false;
        }
        let mut until = self.lock();
        match *until {
            Some(end) if Instant::now() < end => true,
            _ => {
                *until = None;
                self.inner.armed.store(false, Ordering::Release);
                false
            }
        }
    }

    /// Packets dropped so far, (in, out).
    pub fn dropped(&self) -> (u64, u64) {
        (
            self.inner.dropped_in.load(Ordering::Relaxed),
            self.inner.dropped_out.load(Ordering::Relaxed),
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        // The guarded value is a plain deadline: a panic elsewhere cannot leave it torn.
        self.inner
            .until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A UDP socket that drops everything while its [`Isolation`] is armed.
#[derive(Debug)]
pub struct IsolatableSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    isolation: Isolation,
}

impl IsolatableSocket {
    pub fn new(inner: Arc<dyn AsyncUdpSocket>, isolation: Isolation) -> IsolatableSocket {
        IsolatableSocket { inner, isolation }
    }
}

impl AsyncUdpSocket for IsolatableSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        if self.isolation.is_isolated() {
            // Reported as sent: a pulled cable does not fail the sender's write either.
            self.isolation
                .inner
                .dropped_out
                .fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        self.inner.try_send(transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        loop {
            match self.inner.poll_recv(cx, bufs, meta) {
                Poll::Ready(Ok(n)) if self.isolation.is_isolated() => {
                    // Read and thrown away; poll again so the waker is registered
                    // once the socket is empty.
                    self.isolation
                        .inner
                        .dropped_in
                        .fetch_add(n as u64, Ordering::Relaxed);
                }
                other => return other,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_isolation_ends_by_itself_and_can_be_healed_early() {
        let switch = Isolation::new();
        assert!(!switch.is_isolated());
        switch.isolate(Duration::from_secs(2));
        assert!(switch.is_isolated());
        tokio::time::advance(Duration::from_millis(1_999)).await;
        assert!(switch.is_isolated());
        tokio::time::advance(Duration::from_millis(2)).await;
        assert!(!switch.is_isolated(), "over after its duration");
        assert_eq!(switch.remaining(), None);
        switch.isolate(Duration::from_secs(60));
        switch.isolate(Duration::ZERO);
        assert!(!switch.is_isolated(), "healed at once");
    }
}
