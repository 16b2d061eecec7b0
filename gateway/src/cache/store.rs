//! The owner's side: the answers this node keeps for the keys it owns, and the fills in
//! flight that identical requests wait for.
//!
//! A lookup finds one of three things. A fresh answer is a hit. A fill in flight (some
//! node got a miss for this key and is calling the upstream) makes the lookup a waiter,
//! woken with the answer when it is stored, or told to go on alone when the fill is
//! abandoned. Nothing makes the lookup the filler, under the [`FillToken`] it brought:
//! the token names the fill, so only its filler can abandon it, and a filler whose
//! lookup reply was lost can abandon the fill it never heard it got. After
//! `fill_timeout` a new lookup may take the fill over (the filler's node may have
//! died); a late store under the old token is still kept as an answer (an answer is
//! an answer) but wakes nobody.
//!
//! Bounds: entries by bytes (least recently used evicted first), waiters per fill, and
//! fills in flight (beyond either, the lookup is told to go on alone: never an unbounded
//! queue). Time is an argument, so the tests need no clock.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use aurora_core::NodeId;

use super::key::CacheKey;

/// Requests waiting on one fill at most; later ones go on alone.
pub const MAX_WAITERS: usize = 4096;
/// Fills in flight on one owner at most.
pub const MAX_FILLS: usize = 65_536;
/// Bytes an entry costs beyond its body (key, headers, bookkeeping).
pub const ENTRY_OVERHEAD: usize = 128;

/// A stored answer: what the client is sent on a hit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status (200, or a stored client error).
    pub status: u16,
    /// `Content-Type` of the body.
    pub content_type: String,
    /// The body as the first client got it (JSON, or the whole SSE event stream).
    pub body: Bytes,
    /// An Anthropic target's own answer to a passed-through `/v1/messages` request
    /// (marked [`crate::openai::chat::Untranslated`]), not a chat answer.
    pub untranslated: bool,
}

impl Answer {
    /// What the entry counts against `max_bytes`.
    pub fn cost(&self) -> usize {
        self.body.len() + self.content_type.len() + ENTRY_OVERHEAD
    }
}

/// Names one fill: chosen at random by the looking node, shown again by its store or
/// abandon. A store under any token keeps its answer; only the fill's own token wakes
/// its waiters or abandons it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FillToken(pub u64);

impl FillToken {
    /// A fresh token (64 random bits: two lookups never bring the same one).
    pub fn random() -> Self {
        FillToken(fastrand::u64(..))
    }
}

/// What a store did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stored {
    /// Waiters woken with the answer.
    pub woken: usize,
    /// Whether the answer is kept (not over `max_entry_bytes` or the whole store).
    pub kept: bool,
}

/// What a waiter is woken with.
#[derive(Clone, Debug)]
pub enum Wake {
    /// The fill stored its answer.
    Answer(Arc<Answer>),
    /// The fill was abandoned (an uncacheable answer, an error, a client that left):
    /// every waiter calls the upstream on its own.
    Alone,
}

/// What a lookup found.
#[derive(Debug)]
pub enum Found {
    /// A fresh answer.
    Hit(Arc<Answer>),
    /// Nobody has it: the caller fills it, under the token it brought.
    Fill,
    /// A fill is in flight: wait on this.
    Wait(oneshot::Receiver<Wake>),
    /// Over a bound: serve the request without the cache.
    Alone,
}

struct Entry {
    answer: Arc<Answer>,
    expires: Instant,
    /// Position in the recency order.
    used: u64,
}

struct Fill {
    token: FillToken,
    deadline: Instant,
    /// The node calling the upstream (`None`: this one).
    filler: Option<NodeId>,
    waiters: Vec<oneshot::Sender<Wake>>,
}

/// Counters of one store (a plain copy).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Entries held now.
    pub entries: u64,
    /// Bytes held now (as counted against `max_bytes`).
    pub bytes: u64,
    /// Entries evicted to make room.
    pub evictions: u64,
    /// Entries dropped because their TTL passed.
    pub expirations: u64,
    /// Fills in flight now.
    pub fills: u64,
}

/// The answers and fills of the keys this node owns.
pub struct Store {
    max_bytes: usize,
    max_entry_bytes: usize,
    fill_timeout: Duration,
    entries: HashMap<CacheKey, Entry>,
    /// `used` → key: the least recently used first.
    recency: BTreeMap<u64, CacheKey>,
    fills: HashMap<CacheKey, Fill>,
    bytes: usize,
    clock: u64,
    evictions: u64,
    expirations: u64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// An empty store.
    pub fn new(max_bytes: u64, max_entry_bytes: u64, fill_timeout: Duration) -> Self {
        Self {
            max_bytes: usize::try_from(max_bytes).unwrap_or(usize::MAX),
            max_entry_bytes: usize::try_from(max_entry_bytes).unwrap_or(usize::MAX),
            fill_timeout,
            entries: HashMap::new(),
            recency: BTreeMap::new(),
            fills: HashMap::new(),
            bytes: 0,
            clock: 0,
            evictions: 0,
            expirations: 0,
        }
    }

    /// Looks `key` up at `now` for `caller` (`None`: this node), who fills it under
    /// `token` if nobody holds it; `wait`: whether the caller may wait on a fill in
    /// flight.
    pub fn lookup(
        &mut self,
        key: CacheKey,
        now: Instant,
        wait: bool,
        caller: Option<NodeId>,
        token: FillToken,
    ) -> Found {
        if let Some(entry) = self.entries.get(&key) {
            if entry.expires > now {
                let answer = Arc::clone(&entry.answer);
                self.touch(key);
                return Found::Hit(answer);
            }
            self.expirations += 1;
            self.remove(key);
        }
        if let Some(fill) = self.fills.get_mut(&key) {
            if fill.deadline > now {
                if !wait || fill.waiters.len() >= MAX_WAITERS {
                    return Found::Alone;
                }
                // Waiters whose requests are gone take no room.
                fill.waiters.retain(|w| !w.is_closed());
                let (tx, rx) = oneshot::channel();
                fill.waiters.push(tx);
                return Found::Wait(rx);
            }
            // The filler never came back: its waiters' own timeouts release them (their
            // senders drop here), and this caller takes the fill over.
            self.fills.remove(&key);
        }
        if self.fills.len() >= MAX_FILLS {
            return Found::Alone;
        }
        self.fills.insert(
            key,
            Fill {
                token,
                deadline: now + self.fill_timeout,
                filler: caller,
                waiters: Vec::new(),
            },
        );
        Found::Fill
    }

    /// Stores the answer of the fill `token` for `ttl` and wakes its waiters with it.
    /// An answer over `max_entry_bytes` (or the whole store) wakes them but is not kept.
    pub fn store(
        &mut self,
        key: CacheKey,
        token: FillToken,
        answer: Answer,
        ttl: Duration,
        now: Instant,
    ) -> Stored {
        let answer = Arc::new(answer);
        let woken = match self.fills.get(&key) {
            Some(fill) if fill.token == token => {
                let fill = self
                    .fills
                    .remove(&key)
                    .map(|f| f.waiters)
                    .unwrap_or_default();
                let n = fill.len();
                for waiter in fill {
                    let _ = waiter.send(Wake::Answer(Arc::clone(&answer)));
                }
                n
            }
            _ => 0,
        };
        let cost = answer.cost();
        if cost > self.max_entry_bytes || cost > self.max_bytes {
            return Stored { woken, kept: false };
        }
        self.remove(key);
        while self.bytes + cost > self.max_bytes {
            let Some((_, oldest)) = self.recency.pop_first() else {
                break;
            };
            if let Some(entry) = self.entries.remove(&oldest) {
                self.bytes -= entry.answer.cost();
                self.evictions += 1;
            }
        }
        self.clock += 1;
        self.recency.insert(self.clock, key);
        self.bytes += cost;
        self.entries.insert(
            key,
            Entry {
                answer,
                expires: now + ttl,
                used: self.clock,
            },
        );
        debug_assert_eq!(self.entries.len(), self.recency.len());
        debug_assert!(self.bytes <= self.max_bytes);
        Stored { woken, kept: true }
    }

    /// Ends the fill `token` without an answer: its waiters go on alone. Returns how
    /// many were woken.
    pub fn abandon(&mut self, key: CacheKey, token: FillToken) -> usize {
        match self.fills.get(&key) {
            Some(fill) if fill.token == token => {
                let waiters = self
                    .fills
                    .remove(&key)
                    .map(|f| f.waiters)
                    .unwrap_or_default();
                let n = waiters.len();
                for waiter in waiters {
                    let _ = waiter.send(Wake::Alone);
                }
                n
            }
            _ => 0,
        }
    }

    /// Ends the fills past their deadline, and those of fillers `alive` says are gone
    /// (their node died mid-fill): their waiters go on alone at once rather than at
    /// their own timeouts. Returns how many fills ended.
    pub fn sweep(&mut self, now: Instant, alive: impl Fn(NodeId) -> bool) -> usize {
        let before = self.fills.len();
        self.fills.retain(|_, fill| {
            let live = fill.deadline > now && fill.filler.is_none_or(&alive);
            if !live {
                for waiter in fill.waiters.drain(..) {
                    let _ = waiter.send(Wake::Alone);
                }
            }
            live
        });
        before - self.fills.len()
    }

    /// Counters now.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            entries: self.entries.len() as u64,
            bytes: self.bytes as u64,
            evictions: self.evictions,
            expirations: self.expirations,
            fills: self.fills.len() as u64,
        }
    }

    fn touch(&mut self, key: CacheKey) {
        if let Some(entry) = self.entries.get_mut(&key) {
            self.recency.remove(&entry.used);
            self.clock += 1;
            entry.used = self.clock;
            self.recency.insert(self.clock, key);
        }
    }

    fn remove(&mut self, key: CacheKey) {
        if let Some(entry) = self.entries.remove(&key) {
            self.recency.remove(&entry.used);
            self.bytes -= entry.answer.cost();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    fn key(n: u8) -> CacheKey {
        CacheKey([n; 32])
    }

    fn answer(len: usize) -> Answer {
        Answer {
            status: 200,
            content_type: "application/json".into(),
            body: Bytes::from(vec![b'x'; len]),
            untranslated: false,
        }
    }

    fn store() -> Store {
        Store::new(10_000, 4_000, Duration::from_secs(5))
    }

    /// A lookup by this node with a fresh token.
    fn look(s: &mut Store, k: CacheKey, now: Instant, wait: bool, caller: Option<NodeId>) -> Found {
        s.lookup(k, now, wait, caller, FillToken::random())
    }

    fn fill(s: &mut Store, k: CacheKey, now: Instant) -> FillToken {
        let token = FillToken::random();
        match s.lookup(k, now, true, None, token) {
            Found::Fill => token,
            other => panic!("expected a fill, got {other:?}"),
        }
    }

    #[test]
    fn a_miss_fills_and_the_next_lookup_hits_until_the_ttl() {
        let mut s = store();
        let t0 = Instant::now();
        let token = fill(&mut s, key(1), t0);
        assert_eq!(
            s.store(key(1), token, answer(10), TTL, t0),
            Stored {
                woken: 0,
                kept: true
            }
        );
        assert!(
            matches!(look(&mut s, key(1), t0 + TTL / 2, true, None), Found::Hit(a) if a.body.len() == 10)
        );
        // Expired: a fill again, and the expiry is counted.
        assert!(matches!(
            look(&mut s, key(1), t0 + TTL, true, None),
            Found::Fill
        ));
        assert_eq!(s.stats().expirations, 1);
        assert_eq!(s.stats().entries, 0);
    }

    #[test]
    fn lookups_during_a_fill_wait_and_are_woken_with_the_answer() {
        let mut s = store();
        let t0 = Instant::now();
        let token = fill(&mut s, key(1), t0);
        let mut waiters: Vec<_> = (0..3)
            .map(|_| match look(&mut s, key(1), t0, true, None) {
                Found::Wait(rx) => rx,
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(matches!(
            look(&mut s, key(1), t0, false, None),
            Found::Alone
        ));
        assert_eq!(s.store(key(1), token, answer(5), TTL, t0).woken, 3);
        for rx in &mut waiters {
            assert!(matches!(rx.try_recv(), Ok(Wake::Answer(a)) if a.body.len() == 5));
        }
    }

    #[test]
    fn an_abandoned_fill_sends_its_waiters_alone_and_the_next_lookup_fills() {
        let mut s = store();
        let t0 = Instant::now();
        let token = fill(&mut s, key(1), t0);
        let Found::Wait(mut rx) = look(&mut s, key(1), t0, true, None) else {
            panic!()
        };
        assert_eq!(
            s.abandon(key(1), FillToken(token.0 + 99)),
            0,
            "a stranger's token"
        );
        assert_eq!(s.abandon(key(1), token), 1);
        assert!(matches!(rx.try_recv(), Ok(Wake::Alone)));
        assert!(matches!(look(&mut s, key(1), t0, true, None), Found::Fill));
    }

    #[test]
    fn a_fill_past_its_deadline_is_taken_over_and_its_late_answer_still_kept() {
        let mut s = store();
        let t0 = Instant::now();
        let old = fill(&mut s, key(1), t0);
        let Found::Wait(mut rx) = look(&mut s, key(1), t0, true, None) else {
            panic!()
        };
        let later = t0 + Duration::from_secs(6);
        let new = fill(&mut s, key(1), later);
        assert_ne!(old, new);
        // The old waiter's sender is gone: it goes on alone (its request times out anyway).
        assert!(rx.try_recv().is_err());
        // The old filler's late answer is an answer all the same, but wakes no one.
        assert_eq!(
            s.store(key(1), old, answer(7), TTL, later),
            Stored {
                woken: 0,
                kept: true
            }
        );
        assert!(matches!(
            look(&mut s, key(1), later, true, None),
            Found::Hit(_)
        ));
    }

    #[test]
    fn bytes_are_bounded_least_recently_used_first_and_big_answers_not_kept() {
        let mut s = store();
        let t0 = Instant::now();
        for n in 0..4 {
            let token = fill(&mut s, key(n), t0);
            s.store(key(n), token, answer(3_000), TTL, t0);
        }
        // 3 × (3000 + overhead) fit in 10 000; the 4th evicted the oldest (key 0).
        assert_eq!(s.stats().entries, 3);
        assert_eq!(s.stats().evictions, 1);
        assert!(s.stats().bytes <= 10_000);
        // Touch key 1, add another: key 2 (now the oldest) goes.
        assert!(matches!(
            look(&mut s, key(1), t0, true, None),
            Found::Hit(_)
        ));
        let token = fill(&mut s, key(9), t0);
        s.store(key(9), token, answer(3_000), TTL, t0);
        assert!(matches!(
            look(&mut s, key(1), t0, true, None),
            Found::Hit(_)
        ));
        assert!(matches!(look(&mut s, key(2), t0, true, None), Found::Fill));
        // Over max_entry_bytes: the waiters get it, the store does not keep it.
        let token = fill(&mut s, key(7), t0);
        let Found::Wait(mut rx) = look(&mut s, key(7), t0, true, None) else {
            panic!()
        };
        assert_eq!(
            s.store(key(7), token, answer(5_000), TTL, t0),
            Stored {
                woken: 1,
                kept: false
            }
        );
        assert!(matches!(rx.try_recv(), Ok(Wake::Answer(_))));
        assert!(matches!(look(&mut s, key(7), t0, true, None), Found::Fill));
    }

    #[test]
    fn a_sweep_ends_the_fills_of_dead_fillers_and_past_deadlines_waking_their_waiters() {
        let mut s = store();
        let t0 = Instant::now();
        let dead = NodeId(7);
        let Found::Fill = look(&mut s, key(1), t0, true, Some(dead)) else {
            panic!()
        };
        let Found::Fill = look(&mut s, key(2), t0, true, Some(NodeId(8))) else {
            panic!()
        };
        let Found::Fill = look(&mut s, key(3), t0, true, None) else {
            panic!()
        };
        let Found::Wait(mut on_dead) = look(&mut s, key(1), t0, true, None) else {
            panic!()
        };
        let Found::Wait(mut on_live) = look(&mut s, key(2), t0, true, None) else {
            panic!()
        };
        assert_eq!(s.sweep(t0, |n| n != dead), 1);
        assert!(matches!(on_dead.try_recv(), Ok(Wake::Alone)));
        assert!(on_live.try_recv().is_err(), "still waiting");
        // The dead filler's key can be filled again at once.
        assert!(matches!(look(&mut s, key(1), t0, true, None), Found::Fill));
        // Past the deadline every fill ends, this node's own included.
        assert_eq!(s.sweep(t0 + Duration::from_secs(6), |_| true), 3);
        assert!(matches!(on_live.try_recv(), Ok(Wake::Alone)));
        assert_eq!(s.stats().fills, 0);
    }
}
