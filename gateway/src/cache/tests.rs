//! The cache's own harness: two nodes' caches joined by an in-memory [`Link`] that
//! can lose replies, and recorded bodies driven by hand.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use aurora_core::NodeId;
use bytes::Bytes;

use super::wire::{self, Request};
use super::{
    ring, Answer, Cache, CacheKey, CacheSettings, CallFuture, Link, LinkError, Lookup, Member,
};
use crate::http::body::full;

fn member(n: u64) -> Member {
    Member {
        id: NodeId(n),
        addr: std::net::SocketAddr::from(([127, 0, 0, n as u8], 7000)),
    }
}

/// A's way to B: every call is served by B's cache at once.
#[derive(Debug)]
struct Wire {
    me: Member,
    peer: Member,
    to: Mutex<Weak<Cache>>,
    /// The next lookup's reply is lost after the owner made it (the caller sees an
    /// error, as when its call times out).
    lose_next_lookup_reply: AtomicBool,
    /// Lookups held at the owner now, and at most.
    held_now: Arc<AtomicUsize>,
    held_most: Arc<AtomicUsize>,
}

impl Link for Wire {
    fn members(&self) -> (Member, Vec<Member>) {
        (self.me, vec![self.peer])
    }

    fn call(&self, to: Member, bytes: Vec<u8>, _timeout: Duration) -> CallFuture {
        assert_eq!(to, self.peer);
        let cache = self.to.lock().unwrap().upgrade().expect("the owner lives");
        let from = self.me.id;
        let request = wire::decode::<Request>(&bytes).expect("a request");
        let held = matches!(request, Request::Lookup { wait_ms, .. } if wait_ms > 0);
        let lose = matches!(request, Request::Lookup { .. })
            && self.lose_next_lookup_reply.swap(false, Ordering::SeqCst);
        let (now, most) = (Arc::clone(&self.held_now), Arc::clone(&self.held_most));
        Box::pin(async move {
            if held {
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(n, Ordering::SeqCst);
            }
            let reply = cache.serve_peer(from, &bytes).await;
            if held {
                now.fetch_sub(1, Ordering::SeqCst);
            }
            if lose {
                return Err(LinkError("the reply was lost".into()));
            }
            Ok(reply)
        })
    }
}

/// Node A (1) and node B (2), and A's wire to B (B never calls A in these tests).
fn pair() -> (Arc<Cache>, Arc<Cache>, Arc<Wire>) {
    let settings = CacheSettings {
        fill_timeout_ms: 10_000,
        ..CacheSettings::default()
    };
    let a = Arc::new(Cache::new(settings.clone()));
    let b = Arc::new(Cache::new(settings));
    let wire = Arc::new(Wire {
        me: member(1),
        peer: member(2),
        to: Mutex::new(Arc::downgrade(&b)),
        lose_next_lookup_reply: AtomicBool::new(false),
        held_now: Arc::default(),
        held_most: Arc::default(),
    });
    a.set_link(Arc::clone(&wire) as Arc<dyn Link>);
    (a, b, wire)
}

/// A key B owns.
fn key_of_b() -> CacheKey {
    (0..=255u8)
        .map(|n| CacheKey([n; 32]))
        .find(|k| ring::owner(k, [member(1), member(2)]).map(|m| m.id) == Some(NodeId(2)))
        .expect("B owns some key")
}

fn answer(text: &str) -> Answer {
    Answer {
        status: 200,
        content_type: "application/json".into(),
        body: Bytes::from(format!(
            r#"{{"choices":[{{"message":{{"content":"{text}"}}}}]}}"#
        )),
        untranslated: false,
    }
}

fn is_fill(lookup: &Lookup) -> bool {
    matches!(lookup, Lookup::Fill(_))
}

#[tokio::test]
async fn a_fill_whose_reply_was_lost_is_abandoned_by_its_caller() {
    let (a, _b, wire) = pair();
    let key = key_of_b();
    wire.lose_next_lookup_reply.store(true, Ordering::SeqCst);
    // B made A the filler, but A never heard: it serves without the cache.
    assert!(matches!(a.lookup(key).await, Lookup::Alone));
    // The next request must not wait for a fill nobody is making: A abandoned the
    // token it brought, so the key is free to fill again.
    let next = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match a.lookup(key).await {
                Lookup::Fill(f) => return Lookup::Fill(f),
                Lookup::Alone => tokio::time::sleep(Duration::from_millis(10)).await,
                hit @ Lookup::Hit(_) => return hit,
            }
        }
    })
    .await
    .expect("the lost fill was abandoned, not waited out");
    assert!(is_fill(&next));
}

#[tokio::test]
async fn a_node_holds_one_lookup_per_key_at_the_owner_however_many_requests_wait() {
    let (a, _b, wire) = pair();
    let key = key_of_b();
    let Lookup::Fill(filler) = a.lookup(key).await else {
        panic!("the first lookup fills")
    };
    let waiting: Vec<_> = (0..300)
        .map(|_| {
            let a = Arc::clone(&a);
            tokio::spawn(async move { a.lookup(key).await })
        })
        .collect();
    // Let them all reach the owner.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        wire.held_now.load(Ordering::SeqCst),
        1,
        "one held call for 300 requests"
    );
    filler.finish(Some(answer("shared")));
    for w in waiting {
        let Lookup::Hit(got) = w.await.unwrap() else {
            panic!("every waiter gets the answer")
        };
        assert!(got.body.starts_with(b"{\"choices\""));
    }
    assert_eq!(wire.held_most.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_plain_answer_whose_client_left_before_it_was_sent_is_kept() {
    let cache = Arc::new(Cache::new(CacheSettings::default()));
    let key = CacheKey([9; 32]);
    let Lookup::Fill(filler) = cache.lookup(key).await else {
        panic!()
    };
    let response = http::Response::new(full(answer("late").body));
    // The request ran to its end, but nobody polls its body: the client is gone.
    drop(filler.record(response));
    assert!(matches!(cache.lookup(key).await, Lookup::Hit(_)));
}

#[tokio::test]
async fn an_answer_over_the_entry_limit_releases_its_waiters_at_once() {
    use http_body_util::BodyExt;
    let settings = CacheSettings {
        max_entry_bytes: 1 << 10,
        ..CacheSettings::default()
    };
    let cache = Arc::new(Cache::new(settings));
    let key = CacheKey([5; 32]);
    let Lookup::Fill(filler) = cache.lookup(key).await else {
        panic!()
    };
    let waiter = {
        let cache = Arc::clone(&cache);
        tokio::spawn(async move { cache.lookup(key).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await; // the waiter waits
                                                         // A stream whose first event is already over the limit, and whose end is far.
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let mut response = http::Response::new(Channel(rx).boxed());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/event-stream"),
    );
    let mut body = filler.record(response).into_body();
    tx.send(Bytes::from(vec![b'x'; 2 << 10])).await.unwrap();
    body.frame().await.expect("a frame").unwrap();
    let released = tokio::time::timeout(Duration::from_secs(2), waiter)
        .await
        .expect("the waiter is released before the stream ends")
        .unwrap();
    assert!(matches!(released, Lookup::Alone));
    drop(tx);
}

/// A body whose frames come from a channel, ending when it closes.
struct Channel(tokio::sync::mpsc::Receiver<Bytes>);

impl http_body::Body for Channel {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|b| b.map(|b| Ok(http_body::Frame::data(b))))
    }
}
