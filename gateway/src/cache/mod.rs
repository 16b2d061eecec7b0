//! The response cache: exact-match, cluster-wide, with identical requests coalesced.
//!
//! **What is cached.** An admitted request whose answer would be the same for the same
//! input: the key ([`key`]) hashes the call kind, the model name, the request as
//! admitted (after redaction) and, by default, the caller's key id. A request uses the
//! cache when its model or key is listed in `gateway.cache` or it sends
//! `x-aurora-cache: use`; `cache-control: no-cache` (or `no-store`, or
//! `x-aurora-cache: skip`) keeps it out. Answers with a tool call, errors and broken
//! streams are not stored unless configured ([`settings`]); 5xx never are. Every answer
//! that went through the cache carries `x-aurora-cache: hit` or `miss`.
//!
//! **Where an answer lives.** Each key has one owner, the winner of rendezvous hashing
//! over the live members ([`ring`]); only the owner keeps the answer ([`store`]), so the
//! cluster holds one copy and a hit on any node is the owner's copy. A node asks the
//! owner with a peer call ([`wire`], over the cluster's QUIC connections; `remote`);
//! when it is the owner itself, it asks its own store directly.
//!
//! **Coalescing.** The first lookup of a key that nobody holds gets the right to fill
//! it: its node calls the upstream as usual, records the answer as it goes to the client
//! ([`recording`]) and stores it at the owner. Lookups of the same key meanwhile, on any
//! node, are held at the owner until the answer is stored and are then answered from
//! it: one upstream call for any number of identical requests in flight. An answer that
//! is not to be stored releases the held requests to call the upstream each.
//!
//! **Failure.** The cache never fails a request: an owner that cannot be reached, a
//! malformed reply, a bound reached — each is counted and the request is served
//! without the cache (`x-aurora-cache: miss`).
//!
//! **Billing.** A hit costs nothing: it is logged with zero tokens and zero cost and
//! marked `hit` in the usage log, counts one request against its budget and none of
//! its tokens against `tpm`.

pub mod key;
pub mod link;
pub mod recording;
mod remote;
pub mod ring;
pub mod settings;
pub mod store;
pub mod wire;

#[cfg(test)]
mod tests;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use aurora_core::NodeId;
use http::{HeaderMap, HeaderValue};

use crate::http::body::{full, Response};
use crate::metrics::exposition::{Exposition, Kind};

pub use key::{CacheKey, CallKind};
pub use ring::Member;
pub use settings::{CacheSettings, Scope};
pub use store::Answer;
use store::{FillToken, Found, Store, Stored, Wake};
use wire::{Reply, Request};

/// The request header that asks for the cache, and the response header that says how
/// an answer went through it.
pub const HEADER: &str = "x-aurora-cache";

/// What a request's headers ask of the cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Directive {
    /// Whatever `gateway.cache` says for its model and key.
    #[default]
    Default,
    /// `x-aurora-cache: use`.
    Use,
    /// `cache-control: no-cache` or `no-store`, or `x-aurora-cache: skip`.
    Skip,
}

impl Directive {
    /// Reads the directive from a request's headers (`cache-control` wins).
    pub fn of(headers: &HeaderMap) -> Directive {
        let skips_cache = headers
            .get_all(http::header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|d| {
                let d = d.trim();
                d.eq_ignore_ascii_case("no-cache") || d.eq_ignore_ascii_case("no-store")
            });
        if skips_cache {
            return Directive::Skip;
        }
        match headers
            .get(HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
        {
            Some(v) if v.eq_ignore_ascii_case("use") => Directive::Use,
            Some(v) if v.eq_ignore_ascii_case("skip") => Directive::Skip,
            _ => Directive::Default,
        }
    }
}

/// How a request went through the cache, for its response header and its usage row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheUse {
    /// Answered from the cache.
    Hit,
    /// Looked up and not found (answered by the upstream, stored if it could be).
    Miss,
}

impl CacheUse {
    /// The header value and usage-log word.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheUse::Hit => "hit",
            CacheUse::Miss => "miss",
        }
    }

    /// The value [`CacheUse::as_str`] wrote.
    pub fn parse(word: &str) -> Option<CacheUse> {
        match word {
            "hit" => Some(CacheUse::Hit),
            "miss" => Some(CacheUse::Miss),
            _ => None,
        }
    }

    /// Marks `response` with `x-aurora-cache`.
    pub fn mark(self, response: &mut Response) {
        self.mark_headers(response.headers_mut());
    }

    /// Marks response `headers` with `x-aurora-cache`.
    pub fn mark_headers(self, headers: &mut HeaderMap) {
        headers.insert(HEADER, HeaderValue::from_static(self.as_str()));
    }
}

/// Why a peer call failed (for the counter and the debug log).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LinkError(pub String);

/// A boxed future of a peer call.
pub type CallFuture = Pin<Box<dyn Future<Output = Result<Vec<u8>, LinkError>> + Send>>;

/// How the cache reaches the other nodes: the node's peer calls in a running server,
/// a test double in tests. Without one, this node owns every key.
pub trait Link: Send + Sync + fmt::Debug {
    /// This node, and the other members alive now.
    fn members(&self) -> (Member, Vec<Member>);
    /// Sends `bytes` to `to` and returns its reply, within `timeout`.
    fn call(&self, to: Member, bytes: Vec<u8>, timeout: Duration) -> CallFuture;
}

/// Counters of the cache (see [`Cache::write_metrics`]).
#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    /// Hits that waited for another request's fill.
    coalesced: AtomicU64,
    /// Requests served without the cache after looking (a bound, an abandoned fill).
    alone: AtomicU64,
    stored: AtomicU64,
    /// Answers not stored: tool calls, errors, broken or oversized answers.
    not_stored: AtomicU64,
    peer_errors: AtomicU64,
    /// Held lookups at an owner refused room (over `MAX_HELD_PER_OWNER`).
    held_full: AtomicU64,
    peer_calls_served: AtomicU64,
    peer_refused: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// The node's cache: its share of the cluster's answers and the way to the others'.
pub struct Cache {
    settings: CacheSettings,
    store: Mutex<Store>,
    link: OnceLock<Arc<dyn Link>>,
    held: Mutex<remote::Held>,
    counters: Counters,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("settings", &self.settings)
            .field("store", &*self.lock())
            .finish_non_exhaustive()
    }
}

/// What the cache says to an admitted request before its answer is made.
#[derive(Debug)]
pub enum Gate {
    /// Answer with this (settle the bill with `finish_cached`).
    Hit(Arc<Answer>),
    /// Make the answer, and pass it through [`Pass::wrap`].
    Pass(Pass),
}

/// A request that goes on to its upstream: what to do with its answer.
#[derive(Debug)]
pub struct Pass {
    filler: Option<Filler>,
    looked: bool,
}

impl Pass {
    /// Whether the request looked in the cache (and missed): its answer is marked
    /// `miss`, and so is its usage row.
    pub fn looked(&self) -> bool {
        self.looked
    }

    /// The answer as the client gets it: recorded and stored when this request fills
    /// its key, marked `miss` when it looked.
    pub fn wrap(self, mut response: Response) -> Response {
        match self.filler {
            Some(filler) => filler.record(response),
            None => {
                if self.looked {
                    CacheUse::Miss.mark(&mut response);
                }
                response
            }
        }
    }
}

/// What a lookup gives the request.
#[derive(Debug)]
pub enum Lookup {
    /// Answer with this.
    Hit(Arc<Answer>),
    /// Call the upstream and give the answer to this (see [`Filler::record`]).
    Fill(Filler),
    /// Call the upstream; nothing to store.
    Alone,
}

impl Cache {
    /// A cache with `settings` (validated by the caller), owning every key until a
    /// [`Link`] is set.
    pub fn new(settings: CacheSettings) -> Self {
        let store = Store::new(
            settings.max_bytes,
            settings.max_entry_bytes,
            settings.fill_timeout(),
        );
        Self {
            settings,
            store: Mutex::new(store),
            link: OnceLock::new(),
            held: Mutex::new(remote::Held::default()),
            counters: Counters::default(),
        }
    }

    /// Connects the cache to the cluster; once.
    pub fn set_link(&self, link: Arc<dyn Link>) {
        let _ = self.link.set(link);
    }

    /// The settings.
    pub fn settings(&self) -> &CacheSettings {
        &self.settings
    }

    fn lock(&self) -> MutexGuard<'_, Store> {
        // Every store operation leaves it consistent before it can panic (no user code
        // runs under the lock), so a poisoned lock is safe to keep using.
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a request for the public model `model` by key `key_id` with `directive`
    /// goes through the cache.
    pub fn applies(&self, directive: Directive, key_id: Option<&str>, model: &str) -> bool {
        if !self.settings.enabled() {
            return false;
        }
        match directive {
            Directive::Skip => false,
            Directive::Use => true,
            Directive::Default => {
                self.settings.models.iter().any(|m| m == model)
                    || key_id.is_some_and(|k| self.settings.keys.iter().any(|s| s == k))
            }
        }
    }

    /// The cache's word on an admitted request for the public model `model` by key
    /// `key_id` with `directive`: a hit, or what to do with the answer it makes.
    /// `key` computes the request's key, only when the cache applies (`None`: the
    /// request has none, and passes as if the cache did not apply).
    pub async fn gate(
        self: &Arc<Self>,
        directive: Directive,
        key_id: Option<&str>,
        model: &str,
        key: impl FnOnce(Scope) -> Option<CacheKey>,
    ) -> Gate {
        let past = || {
            Gate::Pass(Pass {
                filler: None,
                looked: false,
            })
        };
        if !self.applies(directive, key_id, model) {
            return past();
        }
        let Some(key) = key(self.settings.scope) else {
            return past();
        };
        let span = crate::telemetry::cache_span();
        let lookup = tracing::Instrument::instrument(self.lookup(key), span.clone()).await;
        let filler = match lookup {
            Lookup::Hit(answer) => {
                crate::telemetry::record_cache(&span, CacheUse::Hit.as_str());
                return Gate::Hit(answer);
            }
            Lookup::Fill(filler) => Some(filler),
            Lookup::Alone => None,
        };
        crate::telemetry::record_cache(&span, CacheUse::Miss.as_str());
        Gate::Pass(Pass {
            filler,
            looked: true,
        })
    }

    /// The owner of `key`: `None` when it is this node.
    fn owner(&self, key: &CacheKey) -> Option<(Arc<dyn Link>, Member)> {
        let link = self.link.get()?;
        let (me, others) = link.members();
        let owner = ring::owner(key, std::iter::once(me).chain(others))?;
        (owner.id != me.id).then(|| (Arc::clone(link), owner))
    }

    /// Looks `key` up at its owner, waiting (bounded by `fill_timeout_ms`) when an
    /// identical request is being answered.
    pub async fn lookup(self: &Arc<Self>, key: CacheKey) -> Lookup {
        let lookup = match self.owner(&key) {
            None => self.lookup_here(key).await,
            Some((link, owner)) => self.lookup_at(&link, owner, key).await,
        };
        match &lookup {
            Lookup::Hit(_) => bump(&self.counters.hits),
            Lookup::Fill(_) => bump(&self.counters.misses),
            Lookup::Alone => {
                bump(&self.counters.misses);
                bump(&self.counters.alone);
            }
        }
        lookup
    }

    async fn lookup_here(self: &Arc<Self>, key: CacheKey) -> Lookup {
        let token = FillToken::random();
        let found = self.lock().lookup(key, Instant::now(), true, None, token);
        match found {
            Found::Hit(answer) => Lookup::Hit(answer),
            Found::Fill => Lookup::Fill(Filler::new(self, key, token, None)),
            Found::Alone => Lookup::Alone,
            Found::Wait(rx) => match Self::wait(rx, self.settings.fill_timeout()).await {
                Some(answer) => {
                    bump(&self.counters.coalesced);
                    Lookup::Hit(answer)
                }
                None => Lookup::Alone,
            },
        }
    }

    /// Waits (at most `limit`) for the fill `rx` waits on; `None`: go on alone.
    async fn wait(
        rx: tokio::sync::oneshot::Receiver<Wake>,
        limit: Duration,
    ) -> Option<Arc<Answer>> {
        match tokio::time::timeout(limit, rx).await {
            Ok(Ok(Wake::Answer(answer))) => Some(answer),
            _ => None,
        }
    }

    /// Answers a call of the peer `from` (this node is the owner of its key): a lookup,
    /// held while a fill is in flight, a store or an abandon. Malformed calls get
    /// [`Reply::Refused`] and are counted.
    pub async fn serve_peer(&self, from: NodeId, bytes: &[u8]) -> Vec<u8> {
        bump(&self.counters.peer_calls_served);
        let request = match wire::decode::<Request>(bytes) {
            Ok(request) if self.settings.enabled() => request,
            Ok(_) => return wire::encode(&Reply::Refused),
            Err(error) => {
                bump(&self.counters.peer_refused);
                tracing::debug!(%error, "cache call refused");
                return wire::encode(&Reply::Refused);
            }
        };
        let key = request.key();
        let reply = match request {
            Request::Lookup { wait_ms, token, .. } => {
                let found =
                    self.lock()
                        .lookup(key, Instant::now(), true, Some(from), FillToken(token));
                match found {
                    Found::Hit(answer) => Reply::Hit((&*answer).into()),
                    Found::Fill => Reply::Fill,
                    Found::Alone => Reply::Alone,
                    // A quick look: the caller asks again to wait.
                    Found::Wait(_) if wait_ms == 0 => Reply::Pending,
                    Found::Wait(rx) => {
                        let limit = Duration::from_millis(u64::from(wait_ms))
                            .min(self.settings.fill_timeout());
                        match Self::wait(rx, limit).await {
                            Some(answer) => Reply::Hit((&*answer).into()),
                            None => Reply::Alone,
                        }
                    }
                }
            }
            Request::Store {
                token,
                ttl_ms,
                answer,
                ..
            } => {
                let ttl = Duration::from_millis(ttl_ms).min(self.settings.ttl());
                let stored =
                    self.lock()
                        .store(key, FillToken(token), answer.into(), ttl, Instant::now());
                self.count_store(stored);
                Reply::Done
            }
            Request::Abandon { token, .. } => {
                self.lock().abandon(key, FillToken(token));
                Reply::Done
            }
        };
        wire::encode(&reply)
    }

    fn count_store(&self, stored: Stored) {
        if stored.kept {
            bump(&self.counters.stored);
        } else {
            bump(&self.counters.not_stored);
        }
    }

    /// Ends the fills whose filler left the live members or whose deadline passed
    /// ([`Store::sweep`]); the link calls it every second.
    pub fn sweep(&self) {
        let Some(link) = self.link.get() else { return };
        let (me, others) = link.members();
        let alive = |node: NodeId| node == me.id || others.iter().any(|m| m.id == node);
        let ended = self.lock().sweep(Instant::now(), alive);
        if ended > 0 {
            tracing::debug!(
                ended,
                "cache fills ended: their filler is gone or their time is up"
            );
        }
    }

    /// The response of a hit.
    pub fn hit_response(answer: &Answer) -> Response {
        let mut response = http::Response::new(full(answer.body.clone()));
        *response.status_mut() =
            http::StatusCode::from_u16(answer.status).unwrap_or(http::StatusCode::OK);
        if let Ok(value) = HeaderValue::from_str(&answer.content_type) {
            response
                .headers_mut()
                .insert(http::header::CONTENT_TYPE, value);
        }
        if answer.content_type.starts_with("text/event-stream") {
            response.headers_mut().insert(
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache"),
            );
        }
        if answer.untranslated {
            response
                .extensions_mut()
                .insert(crate::openai::chat::Untranslated);
        }
        CacheUse::Hit.mark(&mut response);
        response
    }

    /// The cache's series for `/metrics`.
    pub fn write_metrics(&self, out: &mut Exposition) {
        let c = &self.counters;
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        out.family(
            "aurora_cache_lookups_total",
            "Requests that went through the response cache, by result (hit, miss).",
            Kind::Counter,
        );
        out.sample(&[("result", &"hit")], r(&c.hits));
        out.sample(&[("result", &"miss")], r(&c.misses));
        for (name, help, value) in [
            ("aurora_cache_coalesced_total", "Hits that waited for an identical request's answer instead of calling the upstream.", r(&c.coalesced)),
            ("aurora_cache_alone_total", "Lookups served without the cache: the fill they waited for was abandoned, or a bound was reached.", r(&c.alone)),
            ("aurora_cache_stored_total", "Answers kept by this node as the owner of their keys.", r(&c.stored)),
            ("aurora_cache_not_stored_total", "Answers not kept: tool calls, errors, broken or oversized answers (counted by the filler, or by the owner when over its size limits).", r(&c.not_stored)),
            ("aurora_cache_peer_errors_total", "Calls to a cache owner that failed or were answered wrongly (the request is served without the cache).", r(&c.peer_errors)),
            ("aurora_cache_held_full_total", "Lookups that would have waited at an owner already holding the most lookups of this node (served without the cache).", r(&c.held_full)),
            ("aurora_cache_peer_calls_total", "Cache calls from other nodes answered by this node.", r(&c.peer_calls_served)),
            ("aurora_cache_peer_refused_total", "Cache calls from other nodes refused as malformed.", r(&c.peer_refused)),
        ] {
            out.single(name, help, Kind::Counter, value);
        }
        let s = self.lock().stats();
        out.single(
            "aurora_cache_entries",
            "Answers this node keeps as an owner.",
            Kind::Gauge,
            s.entries,
        );
        out.single(
            "aurora_cache_bytes",
            "Bytes of the answers this node keeps (bounded by gateway.cache.max_bytes).",
            Kind::Gauge,
            s.bytes,
        );
        out.single(
            "aurora_cache_fills_in_flight",
            "Keys this node owns whose answer is being fetched now.",
            Kind::Gauge,
            s.fills,
        );
        out.single(
            "aurora_cache_evictions_total",
            "Answers evicted to make room.",
            Kind::Counter,
            s.evictions,
        );
        out.single(
            "aurora_cache_expirations_total",
            "Answers dropped because their TTL passed.",
            Kind::Counter,
            s.expirations,
        );
    }
}

/// The right, and the duty, to fill one key: store its answer or abandon it. Dropped
/// without either, it abandons (the request was cancelled), so waiters never hang on a
/// fill nobody will finish.
pub struct Filler {
    cache: Arc<Cache>,
    key: CacheKey,
    token: FillToken,
    /// The owner, when it is another node.
    owner: Option<(Arc<dyn Link>, Member)>,
    done: bool,
}

impl fmt::Debug for Filler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Filler")
            .field("key", &self.key)
            .field("owner", &self.owner.as_ref().map(|(_, m)| m.id))
            .finish_non_exhaustive()
    }
}

impl Filler {
    fn new(
        cache: &Arc<Cache>,
        key: CacheKey,
        token: FillToken,
        owner: Option<(Arc<dyn Link>, Member)>,
    ) -> Self {
        Self {
            cache: Arc::clone(cache),
            key,
            token,
            owner,
            done: false,
        }
    }

    /// Wraps `response` so that its body is recorded as it goes to the client and, once
    /// complete and fit to keep, stored at the owner (see [`recording`]).
    pub fn record(self, response: Response) -> Response {
        recording::record(response, self)
    }

    /// Ends the fill: `Some` stores the answer at the owner, `None` abandons.
    fn finish(mut self, answer: Option<Answer>) {
        self.done = true;
        if answer.is_none() {
            bump(&self.cache.counters.not_stored);
        }
        let ttl = self.cache.settings.ttl();
        match self.owner.take() {
            None => {
                let mut store = self.cache.lock();
                match answer {
                    Some(answer) => {
                        let stored = store.store(self.key, self.token, answer, ttl, Instant::now());
                        drop(store);
                        self.cache.count_store(stored);
                    }
                    None => {
                        store.abandon(self.key, self.token);
                    }
                }
            }
            Some((link, owner)) => {
                let request = match &answer {
                    Some(answer) => {
                        Request::store(self.key, self.token, ttl.as_millis() as u64, answer)
                    }
                    None => Request::Abandon {
                        key: self.key.0,
                        token: self.token.0,
                    },
                };
                // Off the request's path: the client already has its answer.
                self.cache.send_off(&link, owner, request);
            }
        }
    }
}

impl Drop for Filler {
    fn drop(&mut self) {
        if !self.done {
            let filler = Filler {
                cache: Arc::clone(&self.cache),
                key: self.key,
                token: self.token,
                owner: self.owner.take(),
                done: false,
            };
            self.done = true;
            filler.finish(None);
        }
    }
}
