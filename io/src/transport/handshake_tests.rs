//! Inbound handshakes are bounded: a raw QUIC client (quinn-proto, driven by hand over a
//! plain UDP socket) that floods, stalls or comes from outside the allow-list costs the
//! node only what [`super::limits`] allows.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aurora_core::{Channel, NodeId};
use tokio::net::UdpSocket;

use super::limits::{HandshakeLimits, PeerNetwork};
use super::tests::{endpoint_at, secrets, tls_as};
use super::tls::SERVER_NAME;
use super::Transport;
use crate::identity::NodeKey;

const S: &str = "handshake-test-secret-0123456789";

/// A QUIC client that sends what the test says and nothing else.
struct RawClient {
    socket: UdpSocket,
    endpoint: quinn_proto::Endpoint,
    conn: quinn_proto::Connection,
    server: SocketAddr,
}

impl RawClient {
    /// A client holding the cluster secret (so only the policy under test can stop it).
    async fn new(server: SocketAddr) -> RawClient {
        let key = NodeKey::generate().expect("key");
        let (tls, _) = tls_as(&secrets(S), NodeId(99), &key);
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let mut endpoint = quinn_proto::Endpoint::new(
            Arc::new(quinn_proto::EndpointConfig::default()),
            None,
            false,
            None,
        );
        let config = quinn_proto::ClientConfig::new(tls.client.clone());
        let (_, conn) = endpoint
            .connect(Instant::now(), config, server, SERVER_NAME)
            .expect("connect");
        RawClient {
            socket,
            endpoint,
            conn,
            server,
        }
    }

    /// Sends every packet the connection wants to send now.
    async fn flush(&mut self) {
        let mut buf = Vec::new();
        while let Some(t) = self.conn.poll_transmit(Instant::now(), 1, &mut buf) {
            self.socket
                .send_to(&buf[..t.size], self.server)
                .await
                .expect("send");
            buf.clear();
        }
    }

    /// Feeds the server's next datagram (a Retry) to the connection, then answers it:
    /// after this the server holds a validated handshake, which the client abandons.
    async fn answer_retry(&mut self) {
        let mut buf = vec![0u8; 65536];
        let (n, from) =
            tokio::time::timeout(Duration::from_secs(10), self.socket.recv_from(&mut buf))
                .await
                .expect("a Retry within 10 s")
                .expect("recv");
        let mut response = Vec::new();
        let event = self.endpoint.handle(
            Instant::now(),
            from,
            None,
            None,
            bytes::BytesMut::from(&buf[..n]),
            &mut response,
        );
        match event {
            Some(quinn_proto::DatagramEvent::ConnectionEvent(_, e)) => self.conn.handle_event(e),
            _ => panic!("expected a Retry for the connection"),
        }
        self.flush().await;
    }
}

async fn poll_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn server(limits: HandshakeLimits) -> Transport {
    endpoint_at(S, NodeId::from_name("server"), "127.0.0.1:0", &limits).0
}

#[tokio::test]
async fn a_client_that_stalls_its_handshake_is_dropped_after_the_deadline() {
    let server = server(HandshakeLimits {
        timeout: Duration::from_millis(300),
        ..HandshakeLimits::default()
    });
    let addr = server.local_addr().expect("addr");
    let started = tokio::time::Instant::now();
    let mut client = RawClient::new(addr).await;
    client.flush().await;
    client.answer_retry().await;
    poll_until("the timeout", Duration::from_secs(8), || {
        server.stats().handshake_timeouts == 1
    })
    .await;
    // Well before the 10 s idle timeout that alone would have ended it.
    assert!(started.elapsed() < Duration::from_secs(8));
    let stats = server.stats();
    assert_eq!(
        stats.retries_sent, 1,
        "its address was validated first: {stats:?}"
    );
    assert_eq!(stats.handshakes_in_progress, 0, "{stats:?}");
    poll_until(
        "the half-open connection to go",
        Duration::from_secs(5),
        || server.open_connections() == 0,
    )
    .await;
}

#[tokio::test]
async fn a_flood_of_handshakes_never_holds_more_than_max_handshakes() {
    const MAX: usize = 4;
    let server = server(HandshakeLimits {
        max_in_progress: MAX,
        timeout: Duration::from_millis(1500),
        ..HandshakeLimits::default()
    });
    let addr = server.local_addr().expect("addr");

    // Initial-looking garbage: long-header type bits, QUIC v1, random rest. No state.
    let junk = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..300 {
        let mut packet = vec![0u8; 1200];
        for b in packet.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        packet[0] = 0xc3;
        packet[1..5].copy_from_slice(&1u32.to_be_bytes());
        packet[5] = 8;
        let _ = junk.send_to(&packet, addr).await;
    }
    // Real Initials from unvalidated addresses: a Retry each, and still no state.
    let mut unvalidated = Vec::new();
    for _ in 0..40 {
        let mut c = RawClient::new(addr).await;
        c.flush().await;
        unvalidated.push(c);
    }
    poll_until("40 retries", Duration::from_secs(10), || {
        server.stats().retries_sent >= 40
    })
    .await;
    assert_eq!(server.open_connections(), 0, "{:?}", server.stats());
    assert_eq!(server.stats().handshakes_in_progress, 0);

    // Validated handshakes that all stall: at most MAX are held, the rest refused.
    let mut stallers = Vec::new();
    for _ in 0..20 {
        let mut c = RawClient::new(addr).await;
        c.flush().await;
        c.answer_retry().await;
        stallers.push(c);
        let stats = server.stats();
        assert!(stats.handshakes_in_progress <= MAX as u64, "{stats:?}");
        assert!(server.open_connections() <= MAX, "{stats:?}");
    }
    poll_until("16 refusals", Duration::from_secs(10), || {
        server.stats().handshakes_refused >= 16
    })
    .await;
    // Once the stalled ones time out, an honest peer gets through.
    poll_until(
        "the stalled handshakes to time out",
        Duration::from_secs(10),
        || server.stats().handshakes_in_progress == 0,
    )
    .await;
    assert!(
        server.stats().handshake_timeouts >= 1,
        "{:?}",
        server.stats()
    );
    let (honest, _rx) = endpoint_at(
        S,
        NodeId::from_name("honest"),
        "127.0.0.1:0",
        &HandshakeLimits::default(),
    );
    honest.send(addr, Channel::Datagram, b"hello".to_vec());
    poll_until(
        "the honest peer's connection",
        Duration::from_secs(10),
        || server.stats().connections_opened == 1,
    )
    .await;
    drop((stallers, unvalidated));
}

#[tokio::test]
async fn a_peer_outside_the_allow_list_is_ignored_before_any_crypto() {
    let limits = HandshakeLimits {
        allowed_peers: vec![PeerNetwork::parse("127.0.0.2/32").expect("net")],
        ..HandshakeLimits::default()
    };
    let (server, mut rx) = endpoint_at(S, NodeId::from_name("server"), "127.0.0.1:0", &limits);
    let addr = server.local_addr().expect("addr");
    let default = HandshakeLimits::default();
    let (outsider, _o) = endpoint_at(S, NodeId::from_name("outsider"), "127.0.0.3:0", &default);
    outsider.send(addr, Channel::Datagram, b"from outside".to_vec());
    poll_until("the refusal", Duration::from_secs(10), || {
        server.stats().peer_not_allowed >= 1
    })
    .await;
    let stats = server.stats();
    assert_eq!(stats.retries_sent, 0, "no Retry, no crypto: {stats:?}");
    assert_eq!(stats.connections_opened, 0, "{stats:?}");
    let (insider, _i) = endpoint_at(S, NodeId::from_name("insider"), "127.0.0.2:0", &default);
    insider.send(addr, Channel::Datagram, b"from inside".to_vec());
    let got = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("delivered in time")
        .expect("delivered");
    assert_eq!(got.bytes, b"from inside");
    assert_eq!(
        got.from.ip(),
        "127.0.0.2".parse::<std::net::IpAddr>().expect("ip")
    );
}
