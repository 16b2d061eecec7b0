//! Calls between nodes on loopback QUIC: replies, concurrency, held calls, every limit,
//! and who may call whom.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aurora_core::{Channel, NodeId};
use tokio::sync::{mpsc, Notify};

use super::call::{CallError, CallHandler, CallLimits, PeerRequest, ServeLimits};
use super::tests::endpoint;
use super::{Inbound, Transport, TransportStats};

const S: &str = "call-test-secret-0123456789abcdef";

fn limits() -> CallLimits {
    CallLimits {
        timeout: Duration::from_secs(5),
        ..CallLimits::default()
    }
}

/// Echoes the request behind "re:".
fn echo() -> Arc<dyn CallHandler> {
    Arc::new(|r: PeerRequest| async move {
        let mut reply = b"re:".to_vec();
        reply.extend_from_slice(&r.bytes);
        reply
    })
}

/// Waits (bounded) until `done` holds for `t`'s counters.
async fn settle(t: &Transport, done: impl Fn(&TransportStats) -> bool) -> TransportStats {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !done(&t.stats()) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    t.stats()
}

async fn recv(rx: &mut mpsc::Receiver<Inbound>) -> Option<Inbound> {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .ok()
        .flatten()
}

#[tokio::test]
async fn a_call_gets_its_reply_and_the_callee_knows_the_caller() {
    let (a, _a_rx) = endpoint(S, "a");
    let (b, _b_rx) = endpoint(S, "b");
    let a_addr = a.local_addr().expect("a");
    let b_addr = b.local_addr().expect("b");
    let seen = Arc::new(std::sync::Mutex::new(None));
    let seen_in = seen.clone();
    b.set_call_handler(Arc::new(move |r: PeerRequest| {
        *seen_in.lock().expect("lock") = Some((r.peer.node, r.from));
        async move { [b"re:".as_slice(), &r.bytes].concat() }
    }));
    let reply = a
        .call(b_addr, NodeId::from_name("b"), b"ping".to_vec(), limits())
        .await
        .expect("reply");
    assert_eq!(reply, b"re:ping");
    assert_eq!(
        *seen.lock().expect("lock"),
        Some((NodeId::from_name("a"), a_addr)),
        "the certificate's node and the caller's gossip address"
    );
    // Empty requests and replies are calls like any other.
    b.set_call_handler(Arc::new(|_r: PeerRequest| async { Vec::new() }));
    let empty = a
        .call(b_addr, NodeId::from_name("b"), Vec::new(), limits())
        .await;
    assert_eq!(empty, Ok(Vec::new()));
    let (sa, sb) = (a.stats(), settle(&b, |s| s.calls_in_flight == 0).await);
    assert_eq!((sa.calls_sent, sa.calls_failed), (2, 0), "{sa:?}");
    assert_eq!((sb.calls_received, sb.calls_refused), (2, 0), "{sb:?}");
    // The reverse direction reuses the one connection a dialled.
    a.set_call_handler(echo());
    let back = b
        .call(a_addr, NodeId::from_name("a"), b"pong".to_vec(), limits())
        .await;
    assert_eq!(back, Ok(b"re:pong".to_vec()));
    assert_eq!(
        a.stats().connections_opened + b.stats().connections_opened,
        2
    );
}

#[tokio::test]
async fn many_concurrent_calls_share_one_connection() {
    let (a, _a_rx) = endpoint(S, "a");
    let (b, _b_rx) = endpoint(S, "b");
    let b_addr = b.local_addr().expect("b");
    b.set_call_handler(Arc::new(|r: PeerRequest| async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        r.bytes
    }));
    // More than a connection's stream cap at once: the rest wait for a slot.
    let n = super::call::MAX_CALLS_PER_CONNECTION as usize + 44;
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..n {
        let a = a.clone();
        calls.spawn(async move {
            let body = format!("call {i}").into_bytes();
            let reply = a
                .call(b_addr, NodeId::from_name("b"), body.clone(), limits())
                .await;
            (body, reply)
        });
    }
    let mut answered = 0;
    while let Some(done) = calls.join_next().await {
        let (body, reply) = done.expect("task");
        assert_eq!(reply, Ok(body));
        answered += 1;
    }
    assert_eq!(answered, n);
    assert_eq!(a.stats().connections_opened, 1, "{:?}", a.stats());
    assert_eq!(a.stats().calls_failed, 0);
}

#[tokio::test]
async fn a_held_call_waits_while_other_calls_complete() {
    let (a, _a_rx) = endpoint(S, "a");
    let (b, _b_rx) = endpoint(S, "b");
    let b_addr = b.local_addr().expect("b");
    let release = Arc::new(Notify::new());
    let held = Arc::new(AtomicUsize::new(0));
    let (release_in, held_in) = (release.clone(), held.clone());
    b.set_call_handler(Arc::new(move |r: PeerRequest| {
        let (release, held) = (release_in.clone(), held_in.clone());
        async move {
            if r.bytes == b"hold" {
                let released = release.notified();
                held.fetch_add(1, Ordering::SeqCst);
                released.await;
                return b"stored".to_vec();
            }
            r.bytes
        }
    }));
    let caller = a.clone();
    let waiter = tokio::spawn(async move {
        let limits = CallLimits {
            timeout: Duration::from_secs(20),
            ..CallLimits::default()
        };
        caller
            .call(b_addr, NodeId::from_name("b"), b"hold".to_vec(), limits)
            .await
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while held.load(Ordering::SeqCst) == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(held.load(Ordering::SeqCst), 1, "the held call reached b");
    for i in 0..20u8 {
        let reply = a
            .call(b_addr, NodeId::from_name("b"), vec![i], limits())
            .await;
        assert_eq!(reply, Ok(vec![i]), "not blocked behind the held call");
    }
    // Longer than a keep-alive interval: the held call's connection stays up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!waiter.is_finished());
    assert_eq!(b.stats().calls_in_flight, 1);
    release.notify_waiters();
    let reply = waiter.await.expect("task");
    assert_eq!(reply, Ok(b"stored".to_vec()));
}

#[tokio::test]
async fn a_reply_over_the_callers_limit_is_an_error() {
    let (a, _a_rx) = endpoint(S, "a");
    let (b, _b_rx) = endpoint(S, "b");
    let b_addr = b.local_addr().expect("b");
    b.set_call_handler(Arc::new(|_r: PeerRequest| async { vec![9u8; 100_000] }));
    let small = CallLimits {
        max_reply: 99_999,
        ..limits()
    };
    let got = a
        .call(b_addr, NodeId::from_name("b"), b"x".to_vec(), small)
        .await;
    assert_eq!(got, Err(CallError::ReplyTooLarge { limit: 99_999 }));
    let exact = CallLimits {
        max_reply: 100_000,
        ..limits()
    };
    let got = a
        .call(b_addr, NodeId::from_name("b"), b"x".to_vec(), exact)
        .await;
    assert_eq!(got.map(|r| r.len()), Ok(100_000), "the limit is inclusive");
    assert_eq!(a.stats().calls_failed, 1);
}

#[tokio::test]
async fn a_request_over_the_callees_limit_is_refused_counted_and_the_connection_lives() {
    let (a, _a_rx) = endpoint(S, "a");
    let (b, mut b_rx) = endpoint(S, "b");
    let b_addr = b.local_addr().expect("b");
    let reached = Arc::new(AtomicUsize::new(0));
    let reached_in = reached.clone();
    let serve = ServeLimits {
        max_request: 1000,
        ..ServeLimits::default()
    };
    b.set_call_handler_with(
        Arc::new(move |r: PeerRequest| {
            reached_in.fetch_add(1, Ordering::SeqCst);
            async move { r.bytes }
        }),
        serve,
    );
    let b_id = NodeId::from_name("b");
    for len in [1001, 300_000] {
        let got = a.call(b_addr, b_id, vec![1u8; len], limits()).await;
        assert_eq!(got, Err(CallError::TooLargeForPeer), "{len} bytes");
    }
    let stats = settle(&b, |s| s.call_too_large == 2).await;
    assert_eq!(stats.call_too_large, 2, "{stats:?}");
    assert_eq!(
        reached.load(Ordering::SeqCst),
        0,
        "the handler never saw them"
    );
    // The caller's own limit refuses before anything is sent.
    let own = CallLimits {
        max_request: 10,
        ..limits()
    };
    let got = a.call(b_addr, b_id, vec![0u8; 11], own).await;
    assert_eq!(got, Err(CallError::RequestTooLarge { len: 11, limit: 10 }));
    // The connection still carries gossip and calls.
    a.send(b_addr, Channel::Datagram, b"gossip".to_vec());
    assert_eq!(
        recv(&mut b_rx).await.map(|m| m.bytes),
        Some(b"gossip".to_vec())
    );
    let ok = a.call(b_addr, b_id, vec![2u8; 1000], limits()).await;
    assert_eq!(ok, Ok(vec![2u8; 1000]), "exactly the limit passes");
    assert_eq!(a.stats().connections_opened, 1);
    assert_eq!(a.stats().calls_failed, 3);
}

#[tokio::test]
async fn without_a_handler_calls_are_refused_with_their_own_error() {
    let (a, _a_rx) = endpoint(S, "a");
    let (b, _b_rx) = endpoint(S, "b");
    let b_addr = b.local_addr().expect("b");
    let got = a
        .call(b_addr, NodeId::from_name("b"), b"hello?".to_vec(), limits())
        .await;
    assert_eq!(got, Err(CallError::NoHandler));
    let stats = settle(&b, |s| s.calls_refused == 1).await;
    assert_eq!((stats.calls_received, stats.calls_refused), (1, 1));
    // Registered later (after launch): served from then on.
    b.set_call_handler(echo());
    let got = a
        .call(b_addr, NodeId::from_name("b"), b"now".to_vec(), limits())
        .await;
    assert_eq!(got, Ok(b"re:now".to_vec()));
}

#[tokio::test]
async fn a_busy_callee_refuses_beyond_its_in_flight_cap() {
    let (a, _a_rx) = endpoint(S, "a");
    let (b, _b_rx) = endpoint(S, "b");
    let b_addr = b.local_addr().expect("b");
    let release = Arc::new(Notify::new());
    let release_in = release.clone();
    let serve = ServeLimits {
        max_in_flight: 1,
        ..ServeLimits::default()
    };
    b.set_call_handler_with(
        Arc::new(move |_r: PeerRequest| {
            let release = release_in.clone();
            async move {
                release.notified().await;
                b"done".to_vec()
            }
        }),
        serve,
    );
    let caller = a.clone();
    let first = tokio::spawn(async move {
        caller
            .call(b_addr, NodeId::from_name("b"), b"1".to_vec(), limits())
            .await
    });
    settle(&b, |s| s.calls_in_flight == 1).await;
    let second = a
        .call(b_addr, NodeId::from_name("b"), b"2".to_vec(), limits())
        .await;
    assert_eq!(second, Err(CallError::Busy));
    release.notify_waiters();
    assert_eq!(first.await.expect("task"), Ok(b"done".to_vec()));
    assert_eq!(b.stats().calls_refused, 1);
}

#[tokio::test]
async fn a_call_to_another_node_than_expected_is_not_sent() {
    let (a, _a_rx) = endpoint(S, "a");
    let (b, _b_rx) = endpoint(S, "b");
    let b_addr = b.local_addr().expect("b");
    b.set_call_handler(echo());
    let got = a
        .call(b_addr, NodeId::from_name("c"), b"for c".to_vec(), limits())
        .await;
    assert_eq!(
        got,
        Err(CallError::WrongPeer {
            to: b_addr,
            expected: NodeId::from_name("c"),
            found: NodeId::from_name("b"),
        })
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(b.stats().calls_received, 0, "nothing reached b");
}

#[tokio::test]
async fn a_peer_with_another_secret_cannot_call_or_be_called() {
    let (a, _a_rx) = endpoint(S, "a");
    let (x, _x_rx) = endpoint("another-cluster-secret-9876543210", "x");
    let a_addr = a.local_addr().expect("a");
    let x_addr = x.local_addr().expect("x");
    let reached = Arc::new(AtomicUsize::new(0));
    for t in [&a, &x] {
        let reached = reached.clone();
        t.set_call_handler(Arc::new(move |r: PeerRequest| {
            reached.fetch_add(1, Ordering::SeqCst);
            async move { r.bytes }
        }));
    }
    let got = x
        .call(
            a_addr,
            NodeId::from_name("a"),
            b"let me in".to_vec(),
            limits(),
        )
        .await;
    assert_eq!(got, Err(CallError::ConnectFailed { to: a_addr }));
    // A second call during the backoff fails at once, without dialling.
    let got = x
        .call(a_addr, NodeId::from_name("a"), b"again".to_vec(), limits())
        .await;
    assert_eq!(got, Err(CallError::NotConnected { to: a_addr }));
    let got = a
        .call(x_addr, NodeId::from_name("x"), b"who?".to_vec(), limits())
        .await;
    assert_eq!(got, Err(CallError::ConnectFailed { to: x_addr }));
    assert_eq!(
        reached.load(Ordering::SeqCst),
        0,
        "no call reached a handler"
    );
    assert_eq!(a.stats().calls_received + x.stats().calls_received, 0);
    assert!(a.stats().tls_rejected >= 1, "{:?}", a.stats());
}

#[tokio::test]
async fn the_callers_timeout_ends_a_call_the_handler_never_answers() {
    let (a, _a_rx) = endpoint(S, "a");
    let (b, _b_rx) = endpoint(S, "b");
    let b_addr = b.local_addr().expect("b");
    /// Sets its flag when the handler's future is dropped.
    struct Dropped(Arc<AtomicBool>);
    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(AtomicBool::new(false));
    let dropped_in = dropped.clone();
    b.set_call_handler(Arc::new(move |_r: PeerRequest| {
        let guard = Dropped(dropped_in.clone());
        async move {
            let _guard = guard;
            std::future::pending::<()>().await;
            Vec::new()
        }
    }));
    let short = CallLimits {
        timeout: Duration::from_millis(500),
        ..CallLimits::default()
    };
    let started = tokio::time::Instant::now();
    let got = a
        .call(b_addr, NodeId::from_name("b"), b"never".to_vec(), short)
        .await;
    assert_eq!(got, Err(CallError::Timeout(Duration::from_millis(500))));
    assert!(started.elapsed() < Duration::from_secs(2));
    // The caller's going away reaches b: the handler is dropped, its slot freed.
    let stats = settle(&b, |s| s.calls_abandoned == 1 && s.calls_in_flight == 0).await;
    assert_eq!(
        (stats.calls_abandoned, stats.calls_in_flight),
        (1, 0),
        "{stats:?}"
    );
    assert!(
        dropped.load(Ordering::SeqCst),
        "the handler's future was dropped"
    );
}

#[tokio::test]
async fn the_callees_deadline_frees_a_slot_the_caller_would_hold() {
    let (a, _a_rx) = endpoint(S, "a");
    let (b, _b_rx) = endpoint(S, "b");
    let b_addr = b.local_addr().expect("b");
    let serve = ServeLimits {
        deadline: Duration::from_millis(300),
        ..ServeLimits::default()
    };
    b.set_call_handler_with(
        Arc::new(|_r: PeerRequest| async {
            std::future::pending::<()>().await;
            Vec::new()
        }),
        serve,
    );
    let got = a
        .call(b_addr, NodeId::from_name("b"), b"slow".to_vec(), limits())
        .await;
    assert_eq!(got, Err(CallError::PeerDeadline));
    let stats = settle(&b, |s| s.calls_in_flight == 0).await;
    assert_eq!(stats.calls_handler_failed, 1, "{stats:?}");
}

#[tokio::test]
async fn a_panicking_handler_fails_its_call_not_the_node() {
    let (a, _a_rx) = endpoint(S, "a");
    let (b, mut b_rx) = endpoint(S, "b");
    let b_addr = b.local_addr().expect("b");
    b.set_call_handler(Arc::new(|r: PeerRequest| async move {
        if r.bytes == b"boom" {
            panic!("handler bug (expected by the test)");
        }
        r.bytes
    }));
    let b_id = NodeId::from_name("b");
    let got = a.call(b_addr, b_id, b"boom".to_vec(), limits()).await;
    assert_eq!(got, Err(CallError::HandlerPanicked));
    // A panic while building the future is caught the same way.
    b.set_call_handler(Arc::new(|r: PeerRequest| {
        assert!(r.bytes != b"boom", "handler bug (expected by the test)");
        async move { r.bytes }
    }));
    let got = a.call(b_addr, b_id, b"boom".to_vec(), limits()).await;
    assert_eq!(got, Err(CallError::HandlerPanicked));
    let got = a.call(b_addr, b_id, b"fine".to_vec(), limits()).await;
    assert_eq!(got, Ok(b"fine".to_vec()), "the node still answers");
    a.send(b_addr, Channel::Datagram, b"gossip".to_vec());
    assert_eq!(
        recv(&mut b_rx).await.map(|m| m.bytes),
        Some(b"gossip".to_vec())
    );
    let stats = settle(&b, |s| s.calls_handler_failed == 2).await;
    assert_eq!(stats.calls_handler_failed, 2, "{stats:?}");
}

#[tokio::test]
async fn a_request_cut_short_by_the_callers_timeout_never_reaches_the_handler() {
    let (a, _a_rx) = endpoint(S, "a");
    let (b, _b_rx) = endpoint(S, "b");
    let b_addr = b.local_addr().expect("b");
    let b_id = NodeId::from_name("b");
    let lengths = Arc::new(std::sync::Mutex::new(Vec::new()));
    let lengths_in = lengths.clone();
    let serve = ServeLimits {
        max_request: 64 << 20,
        ..ServeLimits::default()
    };
    b.set_call_handler_with(
        Arc::new(move |r: PeerRequest| {
            lengths_in.lock().expect("lock").push(r.bytes.len());
            async { b"ok".to_vec() }
        }),
        serve,
    );
    // Connected first, so the short timeout below cuts the write, not the dial.
    assert_eq!(
        a.call(b_addr, b_id, vec![1], limits()).await,
        Ok(b"ok".to_vec())
    );
    let big = 32 << 20;
    let cut = CallLimits {
        timeout: Duration::from_millis(20),
        max_request: big,
        ..CallLimits::default()
    };
    let got = a.call(b_addr, b_id, vec![0u8; big], cut).await;
    assert_eq!(got, Err(CallError::Timeout(Duration::from_millis(20))));
    let stats = settle(&b, |s| s.calls_abandoned == 1).await;
    assert_eq!(stats.calls_abandoned, 1, "b saw the reset: {stats:?}");
    assert_eq!(
        a.call(b_addr, b_id, vec![2; 3], limits()).await,
        Ok(b"ok".to_vec())
    );
    assert_eq!(
        *lengths.lock().expect("lock"),
        [1, 3],
        "no cut-short request was handled"
    );
}
