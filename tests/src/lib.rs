//! Cross-crate test support: quinn over turmoil's simulated UDP.
//!
//! [`TurmoilUdp`] adapts `turmoil::net::UdpSocket` to quinn's `AsyncUdpSocket`, so the
//! real `aurora-io` transport and driver run unchanged inside a turmoil simulation (the
//! approach DFINITY's IC and s2n-quic use). Two details matter:
//!
//! * turmoil has no `poll_recv`. The adapter keeps a pending `readable()` future and
//!   polls that; when it completes it is dropped *before* `try_recv_from` is called,
//!   because the future holds turmoil's receive lock and `try_recv_from` would otherwise
//!   report `WouldBlock` forever.
//! * quinn's `TokioRuntime` reads time from tokio's clock, which turmoil drives, so QUIC
//!   timers (handshake, idle, loss detection) run in simulated time.
//!
//! Determinism: turmoil fixes the schedule, the clock and the network's randomness, and
//! the tests fix the core's seed, so *timing* is reproducible; quinn-proto and rustls
//! still draw OS randomness (connection ids, TLS key shares, node keys), so packet
//! *bytes* differ from run to run. The tests therefore assert outcomes (membership,
//! incarnations, refusals), never traces.

use std::fmt;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};

type Readable = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

/// A turmoil UDP socket as a quinn socket.
pub struct TurmoilUdp {
    socket: Arc<turmoil::net::UdpSocket>,
    readable: Mutex<Option<Readable>>,
}

impl TurmoilUdp {
    pub fn new(socket: turmoil::net::UdpSocket) -> TurmoilUdp {
        TurmoilUdp {
            socket: Arc::new(socket),
            readable: Mutex::new(None),
        }
    }
}

impl fmt::Debug for TurmoilUdp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TurmoilUdp")
            .field("socket", &self.socket)
            .finish()
    }
}

/// turmoil's UDP has no back-pressure: it is always writable.
#[derive(Debug)]
struct AlwaysWritable;

impl UdpPoller for AlwaysWritable {
    fn poll_writable(self: Pin<&mut Self>, _cx: &mut Context) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl AsyncUdpSocket for TurmoilUdp {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(AlwaysWritable)
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        // One datagram per transmit (max_transmit_segments is 1, the default).
        self.socket
            .try_send_to(transmit.contents, transmit.destination)
            .map(drop)
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let (Some(buf), Some(meta)) = (bufs.first_mut(), meta.first_mut()) else {
            return Poll::Ready(Ok(0));
        };
        let mut slot = self.readable.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let socket = self.socket.clone();
            let fut = slot.get_or_insert_with(|| Box::pin(async move { socket.readable().await }));
            let ready = ready!(fut.as_mut().poll(cx));
            // Release turmoil's receive lock before reading.
            *slot = None;
            ready?;
            match self.socket.try_recv_from(buf) {
                Ok((len, addr)) => {
                    *meta = RecvMeta {
                        addr,
                        len,
                        stride: len,
                        ecn: None,
                        dst_ip: None,
                    };
                    return Poll::Ready(Ok(1));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }
}
