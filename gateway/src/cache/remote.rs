//! Asking the owner of a key that is another node: the quick lookup, the held lookup
//! this node's requests share while a fill is in flight there, and the stores and
//! abandons sent off the request's path.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aurora_core::NodeId;

use super::store::{self, FillToken};
use super::wire::{self, Reply, Request};
use super::{bump, Answer, Cache, CacheKey, Filler, Link, Lookup, Member};

/// Lookups one node has held at one owner at once, at most: below the peer calls a
/// connection carries at once (`MAX_CALLS_PER_CONNECTION`, 256), so quick lookups,
/// stores and abandons always find room beside them. Held lookups are per key (the
/// node's requests for one key share one), so this bounds keys, not requests; a
/// lookup beyond it goes on alone.
const MAX_HELD_PER_OWNER: usize = 192;

/// How long a filler waits before trying a failed store (or abandon) once more.
const RETRY_AFTER: Duration = Duration::from_millis(200);

/// The lookups this node holds at other owners, one per key: every request of this
/// node for a key whose fill is in flight elsewhere waits on the one held call, so a
/// burst of identical requests costs the owner one stream and one copy of the answer
/// per node, not per request.
#[derive(Debug, Default)]
pub(super) struct Held {
    waiting: HashMap<CacheKey, Vec<tokio::sync::oneshot::Sender<Waited>>>,
    per_owner: HashMap<NodeId, usize>,
}

/// How a held lookup ended, for one of the requests waiting on it.
#[derive(Debug)]
enum Waited {
    Hit(Arc<Answer>),
    /// The fill ended without an answer and this request got the right to fill it.
    Fill(FillToken),
    Alone,
}

impl Cache {
    /// Looks `key` up at `owner`, another node (see [`Cache::lookup`]).
    pub(super) async fn lookup_at(
        self: &Arc<Self>,
        link: &Arc<dyn Link>,
        owner: Member,
        key: CacheKey,
    ) -> Lookup {
        // First a quick look (bounded by `peer_timeout`, so an owner that died unseen
        // costs a request at most that); only when a fill is in flight, the lookup the
        // owner holds until the answer is stored, shared by this node's requests.
        let token = FillToken::random();
        match self.ask(link, owner, key, token, Duration::ZERO).await {
            Ok(Reply::Hit(answer)) => Lookup::Hit(Arc::new(answer.into())),
            Ok(Reply::Fill) => Lookup::Fill(Filler::new(
                self,
                key,
                token,
                Some((Arc::clone(link), owner)),
            )),
            Ok(Reply::Alone) => Lookup::Alone,
            Ok(Reply::Pending) => match self.wait_at(link, owner, key).await {
                Waited::Hit(answer) => {
                    bump(&self.counters.coalesced);
                    Lookup::Hit(answer)
                }
                Waited::Fill(token) => Lookup::Fill(Filler::new(
                    self,
                    key,
                    token,
                    Some((Arc::clone(link), owner)),
                )),
                Waited::Alone => Lookup::Alone,
            },
            Ok(other) => {
                self.unexpected(owner, &other);
                Lookup::Alone
            }
            Err(()) => Lookup::Alone,
        }
    }

    /// One lookup call to `owner`, held there at most `wait`. A call without a reply
    /// (the owner is unreachable, or answered too late) abandons `token`: the owner
    /// may have made this node the filler in a reply that never arrived.
    async fn ask(
        self: &Arc<Self>,
        link: &Arc<dyn Link>,
        owner: Member,
        key: CacheKey,
        token: FillToken,
        wait: Duration,
    ) -> Result<Reply, ()> {
        let request = Request::Lookup {
            key: key.0,
            wait_ms: u32::try_from(wait.as_millis()).unwrap_or(u32::MAX),
            token: token.0,
        };
        let reply = link
            .call(
                owner,
                wire::encode(&request),
                wait + self.settings.peer_timeout(),
            )
            .await;
        match reply.map(|bytes| wire::decode::<Reply>(&bytes)) {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(error)) => {
                bump(&self.counters.peer_errors);
                tracing::debug!(owner = %owner.id, %error, "cache owner gave an unreadable reply; serving without the cache");
                Err(())
            }
            Err(error) => {
                bump(&self.counters.peer_errors);
                tracing::debug!(owner = %owner.id, %error, "cache owner unreachable; serving without the cache");
                self.send_off(
                    link,
                    owner,
                    Request::Abandon {
                        key: key.0,
                        token: token.0,
                    },
                );
                Err(())
            }
        }
    }

    fn unexpected(&self, owner: Member, reply: &Reply) {
        bump(&self.counters.peer_errors);
        tracing::debug!(owner = %owner.id, ?reply, "cache owner gave an unexpected reply; serving without the cache");
    }

    /// Waits for the fill in flight at `owner`: on the lookup this node already holds
    /// there for `key`, or on a new one (see [`Held`]).
    async fn wait_at(
        self: &Arc<Self>,
        link: &Arc<dyn Link>,
        owner: Member,
        key: CacheKey,
    ) -> Waited {
        let (tx, rx) = tokio::sync::oneshot::channel();
        {
            let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
            let Held { waiting, per_owner } = &mut *held;
            if let Some(waiters) = waiting.get_mut(&key) {
                if waiters.len() >= store::MAX_WAITERS {
                    return Waited::Alone;
                }
                waiters.push(tx);
            } else {
                let count = per_owner.entry(owner.id).or_default();
                if *count >= MAX_HELD_PER_OWNER {
                    bump(&self.counters.held_full);
                    return Waited::Alone;
                }
                *count += 1;
                waiting.insert(key, vec![tx]);
                // In a task of its own: the requests waiting on it may leave, it may not.
                let cache = Arc::clone(self);
                let link = Arc::clone(link);
                tokio::spawn(async move { cache.hold(link, owner, key).await });
            }
        }
        rx.await.unwrap_or(Waited::Alone)
    }

    /// The held lookup of `key` at `owner`, and the fan-out of its reply to this node's
    /// requests waiting on it.
    async fn hold(self: Arc<Self>, link: Arc<dyn Link>, owner: Member, key: CacheKey) {
        let token = FillToken::random();
        let reply = self
            .ask(&link, owner, key, token, self.settings.fill_timeout())
            .await;
        let waiters = {
            let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(count) = held.per_owner.get_mut(&owner.id) {
                *count -= 1;
                if *count == 0 {
                    held.per_owner.remove(&owner.id);
                }
            }
            held.waiting.remove(&key).unwrap_or_default()
        };
        match reply {
            Ok(Reply::Hit(answer)) => {
                let answer = Arc::new(Answer::from(answer));
                for waiter in waiters {
                    let _ = waiter.send(Waited::Hit(Arc::clone(&answer)));
                }
            }
            Ok(Reply::Fill) => {
                // The fill in flight ended without an answer and this node got the
                // next: one of its requests still waiting fills it, the others go on
                // alone (as the waiters of an abandoned fill do everywhere).
                let mut filled = false;
                for waiter in waiters {
                    if !filled {
                        filled = waiter.send(Waited::Fill(token)).is_ok();
                    } else {
                        let _ = waiter.send(Waited::Alone);
                    }
                }
                if !filled {
                    self.send_off(
                        &link,
                        owner,
                        Request::Abandon {
                            key: key.0,
                            token: token.0,
                        },
                    );
                }
            }
            other => {
                if let Ok(reply @ (Reply::Pending | Reply::Done | Reply::Refused)) = &other {
                    self.unexpected(owner, reply);
                }
                for waiter in waiters {
                    let _ = waiter.send(Waited::Alone);
                }
            }
        }
    }

    /// Sends `request` (a store or an abandon) to `owner` off the request's path,
    /// trying once more after [`RETRY_AFTER`] if it fails: waiters at the owner hang
    /// on it until `fill_timeout_ms` otherwise.
    pub(super) fn send_off(
        self: &Arc<Self>,
        link: &Arc<dyn Link>,
        owner: Member,
        request: Request,
    ) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let cache = Arc::clone(self);
        let link = Arc::clone(link);
        let bytes = wire::encode(&request);
        let timeout = cache.settings.peer_timeout();
        runtime.spawn(async move {
            for attempt in 0..2 {
                if attempt > 0 {
                    tokio::time::sleep(RETRY_AFTER).await;
                }
                match link.call(owner, bytes.clone(), timeout).await {
                    Ok(_) => return,
                    Err(error) => {
                        bump(&cache.counters.peer_errors);
                        tracing::debug!(owner = %owner.id, %error, attempt, "cannot reach the cache owner with a store or abandon");
                    }
                }
            }
        });
    }
}
