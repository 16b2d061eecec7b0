//! Client connections: the caps on how many may be open, and the socket wrapper that
//! bounds how long a write to a client may stay blocked.
//!
//! [`Connections`] is consulted by the accept loop before a connection gets a task: a
//! connection over the global cap or over its address's cap is answered with a fixed
//! 503 written without blocking and closed at once, so a flood costs an accept and a
//! close, never a queue. The slot is held by the connection's task and released when
//! it ends, however it ends.
//!
//! [`EdgeIo`] is what hyper reads and writes through. A write the kernel cannot take
//! (the client's TCP window is full because it stopped reading) is allowed to stay
//! pending for `send_timeout`; after that the write fails, hyper drops the connection,
//! the response body goes with it, and a stream's producer sees its channel closed and
//! cancels the upstream request. The socket is shared with the accept task (an `Arc`,
//! no second file descriptor), which is how a connection whose headers did not
//! arrive in time still gets its 408 written after hyper has given up on it.

use crate::metrics::{Exposition, Kind};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr, Shutdown};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// Why a connection was refused (the `reason` label of
/// `aurora_http_connections_refused_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// `gateway.limits.max_connections` connections are open.
    Global,
    /// `gateway.limits.max_connections_per_ip` connections from this address are open.
    PerIp,
}

impl Refused {
    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Refused::Global => "global",
            Refused::PerIp => "per_ip",
        }
    }
}

/// What a refused connection is told before it is closed.
pub const REFUSED_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 110\r\nconnection: close\r\n\r\n{\"error\":{\"message\":\"Too many connections.\",\"type\":\"server_error\",\"param\":null,\"code\":\"too_many_connections\"}}";

/// What a client whose request headers did not arrive in time is told.
pub const HEADER_TIMEOUT_RESPONSE: &[u8] = b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\ncontent-length: 136\r\nconnection: close\r\n\r\n{\"error\":{\"message\":\"The request headers did not arrive in time.\",\"type\":\"invalid_request_error\",\"param\":null,\"code\":\"request_timeout\"}}";

#[derive(Debug, Default)]
struct Open {
    total: u32,
    per_ip: HashMap<IpAddr, u32>,
}

/// Open connections, by address, under the two caps; and the counters /metrics shows.
#[derive(Debug)]
pub struct Connections {
    max_total: u32,
    max_per_ip: u32,
    open: Mutex<Open>,
    refused_global: AtomicU64,
    refused_per_ip: AtomicU64,
    header_timeouts: AtomicU64,
    send_timeouts: AtomicU64,
}

/// One open connection's place under the caps; released on drop.
#[derive(Debug)]
pub struct Slot {
    connections: Arc<Connections>,
    ip: IpAddr,
}

/// The address a cap counts against: IPv4 (also when mapped into IPv6) as is, IPv6 by
/// its /64, since one host is usually given a whole /64.
fn cap_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
        v4 => v4,
    }
}

impl Connections {
    /// No connections open yet.
    pub fn new(max_total: u32, max_per_ip: u32) -> Self {
        Self {
            max_total,
            max_per_ip,
            open: Mutex::new(Open::default()),
            refused_global: AtomicU64::new(0),
            refused_per_ip: AtomicU64::new(0),
            header_timeouts: AtomicU64::new(0),
            send_timeouts: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for a connection from `ip`, or why not (counted).
    pub fn try_open(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refused> {
        let ip = cap_key(ip);
        let mut open = self.lock();
        let refused = if open.total >= self.max_total {
            Some(Refused::Global)
        } else if open.per_ip.get(&ip).copied().unwrap_or(0) >= self.max_per_ip {
            Some(Refused::PerIp)
        } else {
            None
        };
        if let Some(reason) = refused {
            drop(open);
            match reason {
                Refused::Global => &self.refused_global,
                Refused::PerIp => &self.refused_per_ip,
            }
            .fetch_add(1, Ordering::Relaxed);
            return Err(reason);
        }
        open.total += 1;
        *open.per_ip.entry(ip).or_insert(0) += 1;
        Ok(Slot {
            connections: Arc::clone(self),
            ip,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> u32 {
        self.lock().total
    }

    /// Connections refused for `reason` so far.
    pub fn refused(&self, reason: Refused) -> u64 {
        match reason {
            Refused::Global => &self.refused_global,
            Refused::PerIp => &self.refused_per_ip,
        }
        .load(Ordering::Relaxed)
    }

    /// Counts a connection closed because its request headers were late.
    pub fn header_timed_out(&self) {
        self.header_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection dropped because a write to it stayed blocked.
    pub fn send_timed_out(&self) {
        self.send_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// Appends the connection series to a Prometheus exposition.
    pub fn write_metrics(&self, out: &mut Exposition) {
        out.single(
            "aurora_http_connections_open",
            "Client connections open now.",
            Kind::Gauge,
            self.open(),
        );
        out.family(
            "aurora_http_connections_refused_total",
            "Client connections refused by a cap (global: max_connections, per_ip: max_connections_per_ip).",
            Kind::Counter,
        );
        for reason in [Refused::Global, Refused::PerIp] {
            out.sample(&[("reason", &reason.label())], self.refused(reason));
        }
        out.family(
            "aurora_http_connections_timed_out_total",
            "Client connections closed by a deadline (header: request headers late or keep-alive idle with a partial request, send: client not reading).",
            Kind::Counter,
        );
        for (kind, n) in [
            ("header", &self.header_timeouts),
            ("send", &self.send_timeouts),
        ] {
            out.sample(&[("kind", &kind)], n.load(Ordering::Relaxed));
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.connections.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.per_ip.remove(&self.ip);
            }
        }
    }
}

/// What the accept task learns about a connection after hyper is done with it.
#[derive(Debug, Default)]
pub struct IoFlags {
    /// A write stayed blocked past the send timeout.
    pub send_timed_out: AtomicBool,
    /// Bytes arrived since the last write: a request was (partly) read and not
    /// answered yet.
    pub unanswered: AtomicBool,
}

/// The client socket as hyper sees it (see the module docs).
#[derive(Debug)]
pub struct EdgeIo {
    stream: Arc<TcpStream>,
    send_timeout: Duration,
    /// Running while a write is blocked.
    stall: Option<Pin<Box<Sleep>>>,
    flags: Arc<IoFlags>,
}

impl EdgeIo {
    /// Wraps `stream`; returns the wrapper, the shared socket and the shared flags.
    pub fn new(stream: TcpStream, send_timeout: Duration) -> (Self, Arc<TcpStream>, Arc<IoFlags>) {
        let stream = Arc::new(stream);
        let flags = Arc::new(IoFlags::default());
        let io = Self {
            stream: Arc::clone(&stream),
            send_timeout,
            stall: None,
            flags: Arc::clone(&flags),
        };
        (io, stream, flags)
    }

    /// Runs `write` once the socket is writable; while it is not, the stall timer runs.
    fn poll_write_with(
        &mut self,
        cx: &mut Context<'_>,
        mut write: impl FnMut(&TcpStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            match self.stream.poll_write_ready(cx) {
                Poll::Ready(Ok(())) => match write(&self.stream) {
                    Ok(n) => {
                        self.stall = None;
                        self.flags.unanswered.store(false, Ordering::Relaxed);
                        return Poll::Ready(Ok(n));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Poll::Ready(Err(e)),
                },
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    let timeout = self.send_timeout;
                    let stall = self
                        .stall
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                    if stall.as_mut().poll(cx).is_ready() {
                        self.flags.send_timed_out.store(true, Ordering::Relaxed);
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the client did not read within the send timeout",
                        )));
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

impl AsyncRead for EdgeIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            ready!(this.stream.poll_read_ready(cx))?;
            // Into the unfilled part as it is: hyper hands a fresh, uninitialised
            // `ReadBuf` over its whole read buffer on every read, and zeroing it first
            // (`initialize_unfilled`) cost about 18,000 instructions a request, an
            // eighth of the request path (docs/benchmarks-gateway.md).
            match this.stream.try_read_buf(buf) {
                Ok(n) => {
                    if n > 0 {
                        this.flags.unanswered.store(true, Ordering::Relaxed);
                    }
                    return Poll::Ready(Ok(()));
                }
                // `try_read` cleared the readiness; polling it again registers the waker.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for EdgeIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_with(cx, |s| s.try_write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_write_with(cx, |s| s.try_write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // TCP has no user-space buffer to flush.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Half-close now (FIN), even though the accept task still holds the socket.
        let result = socket2::SockRef::from(&*self.stream).shutdown(Shutdown::Write);
        match result {
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Poll::Ready(Ok(())),
            other => Poll::Ready(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_count_per_address_and_release_on_drop() {
        let c = Arc::new(Connections::new(3, 2));
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        let a1 = c.try_open(a).expect("first");
        let _a2 = c.try_open(a).expect("second");
        assert_eq!(c.try_open(a).err(), Some(Refused::PerIp));
        let _b1 = c.try_open(b).expect("other address");
        assert_eq!(c.try_open(b).err(), Some(Refused::Global));
        assert_eq!((c.open(), c.refused(Refused::PerIp)), (3, 1));
        drop(a1);
        assert_eq!(c.open(), 2);
        let _a3 = c.try_open(a).expect("released");
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        let c = Arc::new(Connections::new(10, 1));
        let _x = c
            .try_open("2001:db8::1".parse().expect("ip"))
            .expect("first");
        assert_eq!(
            c.try_open("2001:db8::ffff:2".parse().expect("ip")).err(),
            Some(Refused::PerIp)
        );
        let _y = c
            .try_open("2001:db8:0:1::1".parse().expect("ip"))
            .expect("other /64");
        let _v4 = c.try_open("10.1.1.1".parse().expect("ip")).expect("v4");
        assert_eq!(
            c.try_open("::ffff:10.1.1.1".parse().expect("ip")).err(),
            Some(Refused::PerIp)
        );
    }

    /// A read initialises only the bytes it received: the rest of hyper's read buffer
    /// is left alone, not zeroed on every read (that was an eighth of a request's
    /// instructions).
    #[tokio::test]
    async fn a_read_touches_only_the_bytes_it_received() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let mut client = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        let (mut io, _socket, flags) = EdgeIo::new(server, Duration::from_secs(5));
        client
            .write_all(b"GET / HTTP/1.1\r\n")
            .await
            .expect("write");

        let mut storage = [std::mem::MaybeUninit::<u8>::uninit(); 64 * 1024];
        let mut buf = ReadBuf::uninit(&mut storage);
        std::future::poll_fn(|cx| Pin::new(&mut io).poll_read(cx, &mut buf))
            .await
            .expect("read");
        assert_eq!(buf.filled(), b"GET / HTTP/1.1\r\n");
        assert_eq!(buf.initialized().len(), buf.filled().len());
        assert!(flags.unanswered.load(Ordering::Relaxed));

        // End of stream: an empty read.
        drop(client);
        let mut rest = Vec::new();
        io.read_to_end(&mut rest).await.expect("eof");
        assert!(rest.is_empty());
    }

    #[test]
    fn canned_responses_have_the_right_length() {
        for raw in [REFUSED_RESPONSE, HEADER_TIMEOUT_RESPONSE] {
            let text = std::str::from_utf8(raw).expect("ascii");
            let (head, body) = text.split_once("\r\n\r\n").expect("head");
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|v| v.parse().ok())
                .expect("content-length");
            assert_eq!(len, body.len(), "{head}");
            assert!(serde_json::from_str::<serde_json::Value>(body).is_ok());
        }
    }
}
