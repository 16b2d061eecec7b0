//! What a chat request must pass before it goes upstream, and what it costs after.
//!
//! In the order a client can act on:
//! 1. **Auth** ([`auth`]): `Authorization: Bearer` or `x-api-key`, hashed and looked up
//!    among the replicated auth keys — 401 `invalid_api_key` when missing or unknown,
//!    403 `api_key_disabled` / `api_key_expired`. While the `auth_keys` collection is
//!    empty the caller is [`Caller::Anonymous`]; whether that is served is
//!    `gateway.auth` (see [`crate::admission`]: only `open`, the default of a lone
//!    loopback node, serves it); **once one key exists, every request needs a valid
//!    key**.
//! 2. **Model**: a key with `allowed_models` refuses other public names — 403
//!    `model_not_allowed`.
//! 3. **Guardrails** ([`guardrails`]): the key's workflow, or, for anonymous requests
//!    and keys without one, the workflow with id `default` if it exists (the "global"
//!    guardrails) — 400 `guardrail_denied`, 413 `input_too_large`, 403
//!    `model_not_allowed`; redaction rewrites the request.
//!    A key whose `workflow_id` names no workflow is refused (403
//!    `key_misconfigured`), never served without its guardrails.
//! 4. **Budget** ([`budget`]): the key's budget, from the cluster-wide usage of the
//!    current period plus what this node has reserved for its requests in flight on
//!    it (a request and an estimated cost each, [`reserve`]), plus the other nodes'
//!    usage predicted to be in transit ([`pacing`]) — 402 `insufficient_quota` once
//!    spend or requests reached the limit. Once this node has seen the counters
//!    reach a limit, it refuses for the rest of the period (unless the budget record
//!    changes). A key whose `budget_id` names no budget is refused (403
//!    `key_misconfigured`), never served unlimited. In a cluster that elects a
//!    leader, `max_requests` is judged by quota leases instead ([`leases`]: exact
//!    cluster-wide; 429 `budget_pending` / `budget_cut_off` while this node holds
//!    no capacity), the spend limit still by the counters.
//! 5. **Parallel requests**: a key with `max_parallel_requests` holds one slot per
//!    request in flight on this node — 429 `too_many_parallel_requests` when all
//!    are taken. The slot is released however the request ends.
//! 6. **Rate limits** ([`limits`]): per key, per node — 429 `rate_limit_exceeded` with
//!    `Retry-After`. Last, so a request refused for another reason costs no quota.
//!
//! After the answer ([`Ticket::settle`]): the cost from the usage and the pricing
//! record of the model that served it (exact nano-USD arithmetic of
//! [`Pricing::cost`]), the key's budget charged through
//! [`PolicyData::record_usage`], the token bucket debited, metrics, and one row in
//! the usage log ([`crate::usage`]). What is charged depends on [`Served`]: once an
//! upstream (or the mock) answered, the request costs — its reported usage, or an
//! estimate when the answer was cut short — whatever happens after (the client went
//! away, the stream broke); a request that ended before any answer costs nothing.
//! Refused requests get a usage-log row and a metric too.

pub mod auth;
pub mod budget;
pub mod data;
pub mod errors;
pub mod guardrails;
mod leased;
pub mod leases;
pub mod limits;
pub mod pacing;
pub mod redact;
pub mod reserve;
pub mod unpriced;
pub mod view;

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwapOption;
use aurora_core::state::store::Usage;
use aurora_schema::{AuthKey, Budget, Collection, Money, Pricing, Record, RecordId, Workflow};

use crate::metrics::Metrics;
use crate::openai::types::ChatCompletionRequest;
use crate::openai::ApiError;
use crate::usage::{UsageLog, UsageRow};
use auth::{KeyIndex, Lookup};
use data::PolicyData;
pub use limits::RateHeaders;
use limits::RateLimiter;
use reserve::{lock, ParallelSlots, Reservation, Reservations, Slot};

/// The workflow applied to anonymous requests and to keys without a workflow.
pub const DEFAULT_WORKFLOW: &str = "default";

/// A refusal: the answer for the client and a bounded reason label for metrics.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {error}")]
pub struct Rejection {
    /// The OpenAI-shaped error.
    pub error: ApiError,
    /// `missing_key`, `unknown_key`, `key_disabled`, `budget_exceeded`, …
    pub reason: &'static str,
}

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// No auth key exists: the gateway is open.
    Anonymous,
    /// A valid, enabled, unexpired key.
    Key {
        /// The key's record id (a bounded metrics label).
        id: Arc<str>,
        /// The key record.
        key: Box<AuthKey>,
    },
}

impl Caller {
    /// The key id, if any.
    pub fn key_id(&self) -> Option<&Arc<str>> {
        match self {
            Caller::Anonymous => None,
            Caller::Key { id, .. } => Some(id),
        }
    }
}

/// Token counts of a finished request, OpenAI's convention: `prompt` includes
/// `cached` (`prompt_tokens_details.cached_tokens`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenUsage {
    /// Prompt tokens, cached ones included.
    pub prompt: u64,
    /// Completion tokens.
    pub completion: u64,
    /// Prompt tokens read from the provider's cache.
    pub cached: u64,
}

impl TokenUsage {
    /// Prompt + completion.
    pub fn total(&self) -> u64 {
        self.prompt.saturating_add(self.completion)
    }

    /// The cost at `pricing`: uncached input, cached input (at its own rate, or the
    /// input rate when none is set) and output, summed exactly and rounded once.
    pub fn cost(&self, pricing: &Pricing) -> Money {
        let cached = self.cached.min(self.prompt);
        pricing.cost(self.prompt - cached, cached, self.completion)
    }
}

/// `usage.prompt_tokens_details.cached_tokens` of a plain chat completion body, 0 when
/// absent. A substring test first, so bodies without it (most) are not parsed twice.
pub fn cached_tokens_in(body: &[u8]) -> u64 {
    const NEEDLE: &[u8] = b"\"cached_tokens\"";
    if !body.windows(NEEDLE.len()).any(|w| w == NEEDLE) {
        return 0;
    }
    #[derive(serde::Deserialize)]
    struct Body {
        usage: Option<UsageIn>,
    }
    #[derive(serde::Deserialize)]
    struct UsageIn {
        prompt_tokens_details: Option<Details>,
    }
    #[derive(serde::Deserialize)]
    struct Details {
        cached_tokens: Option<u64>,
    }
    serde_json::from_slice::<Body>(body)
        .ok()
        .and_then(|b| b.usage?.prompt_tokens_details?.cached_tokens)
        .unwrap_or(0)
}

/// The policy state of one server: the key index, rate-limit buckets, budget
/// reservations and the usage log.
#[derive(Debug, Default)]
pub struct Policy {
    keys: KeyIndex,
    limiter: RateLimiter,
    reservations: Reservations,
    parallel: ParallelSlots,
    pacer: pacing::Pacer,
    /// Whether budgets add the predicted in-transit usage of other nodes (on by
    /// default; off only to measure what it buys).
    no_pacing: bool,
    /// Budgets this node has seen exhausted this period.
    exhausted: budget::Exhausted,
    usage_log: ArcSwapOption<UsageLog>,
    /// Quota leases for budgets' request limits, in a cluster that elects a leader
    /// ([`leases`]); unset: the counters decide.
    leases: std::sync::OnceLock<Arc<leases::Leases>>,
}

/// An admitted request: settle it once the answer is known.
#[derive(Debug)]
pub struct Ticket {
    key_id: Option<Arc<str>>,
    budget: Option<(RecordId, u64)>,
    _reservation: Option<Reservation>,
    /// The request's unit of its budget's request limit (quota leases): kept once
    /// the request is answered, given back otherwise.
    lease: Option<leases::LeaseHold>,
    /// The request's estimated cost reserved of its budget's leased spend limit:
    /// settled at its actual cost once answered, given back otherwise.
    spend: Option<leases::LeaseHold>,
    /// Its tokens reserved of its key's leased `tpm_limit`: settled like `spend`.
    tpm: Option<leases::LeaseHold>,
    _slot: Option<Slot>,
    model: String,
    started: Instant,
    /// Whether a guardrail rewrote the request's text (redaction).
    rewrote: bool,
}

/// What a request took before admission ([`Policy::ready`]): its units of leased
/// request limits (its budget's, its key's rpm), if it got them. Dropped unused, a
/// unit is given back.
#[derive(Debug, Default)]
pub struct Prepared {
    lease: Option<leases::LeaseHold>,
    rpm: Option<leases::LeaseHold>,
    spend: Option<leases::LeaseHold>,
    tpm: Option<leases::LeaseHold>,
    /// The request's budget estimate, when a leased limit needed it (before
    /// redaction: an estimate either way); admission reuses it.
    estimate: Option<Usage>,
    /// The caller's budget record as `ready` read it; admission reuses it (read
    /// microseconds apart, it is the same record but for a write in between,
    /// which either order could have met).
    budget: Option<Budget>,
}

/// What admission reserves for a request beyond what it asks for: the output it may
/// produce when it sets no `max_tokens`, and the catalog names it may be billed
/// under (the targets of its route; the most expensive pricing is reserved).
#[derive(Clone, Debug, Default)]
pub struct Allowance<'a> {
    /// Output tokens reserved when the request sets neither `max_completion_tokens`
    /// nor `max_tokens`.
    pub output_tokens: u32,
    /// Pricing record ids the request may be billed at, besides its public name.
    pub priced_as: &'a [Arc<str>],
}

/// Whether an upstream (or the mock) answered an admitted request, which decides
/// whether it costs ([`Ticket::settle`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Served {
    /// No answer began (a refusal by every upstream, a failure before the status
    /// line, a client that left first): nothing is charged, the reservation is
    /// released.
    #[default]
    NotAnswered,
    /// An upstream answered 200 (or the mock answered): the request is counted and
    /// its usage charged, however the answer ended.
    Answered,
}

/// How an admitted request ended.
#[derive(Clone, Debug, Default)]
pub struct Settled {
    /// HTTP status (for a stream that failed after it began, 502; a client that went
    /// away, 499).
    pub status: u16,
    /// Whether an answer began (what is charged depends on it).
    pub served: Served,
    /// Token counts: the reported usage, or the caller's estimate of a cut-short
    /// answer.
    pub usage: Option<TokenUsage>,
    /// The catalog name of the model that served it (its pricing record id).
    pub target: Option<Arc<str>>,
    /// The provider that served it.
    pub provider: Option<Arc<str>>,
    /// How it went through the response cache, if it did.
    pub cache: Option<crate::cache::CacheUse>,
}

impl Policy {
    /// Empty state, no usage log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Like [`Policy::new`] but budgets are checked against the counters as seen,
    /// without predicting other nodes' unpublished usage ([`pacing`]). For comparison.
    pub fn without_pacing() -> Self {
        Self {
            no_pacing: true,
            ..Self::default()
        }
    }

    /// Like [`Policy::new`] but the pacer assumes a fixed propagation delay of
    /// `delay_ms` instead of measuring it (how it worked before; for comparison).
    pub fn with_fixed_pacing_delay(delay_ms: u64) -> Self {
        Self {
            pacer: pacing::Pacer::with_fixed_delay(delay_ms),
            ..Self::default()
        }
    }

    /// The propagation delay the pacer assumes now, ms ([`pacing`]).
    pub fn pacing_delay_ms(&self) -> u64 {
        self.pacer.delay_ms()
    }

    /// Admits budgets' request limits through quota leases from now on (once).
    pub fn attach_leases(&self, leases: Arc<leases::Leases>) {
        let _ = self.leases.set(leases);
    }

    /// The quota leases, when attached.
    pub fn leases(&self) -> Option<&Arc<leases::Leases>> {
        self.leases.get()
    }

    /// Takes the request's units of `caller`'s leased request limits (its budget's
    /// `max_requests`, its key's `rpm_limit`) when they go through quota leases,
    /// waiting briefly (see [`leases::GRANT_WAIT`]) while this node holds none and
    /// has asked; hand the result to [`Policy::admit_prepared`]. The first requests
    /// of a period on a node wait for their grant here instead of being refused; an
    /// exhausted limit or an unreachable lease holder answers at once (admission
    /// then refuses).
    pub async fn ready(
        &self,
        data: &dyn PolicyData,
        caller: &Caller,
        request: &ChatCompletionRequest,
        model: &str,
        allowance: &Allowance<'_>,
    ) -> Prepared {
        let Some(leases) = self.leases.get() else {
            return Prepared::default();
        };
        let mut prepared = Prepared {
            budget: leased::caller_budget(data, caller),
            ..Prepared::default()
        };
        let wall = data.wall_ms();
        let (requests, spend) = match (caller, &prepared.budget) {
            (Caller::Key { key, .. }, Some(budget)) => match &key.budget_id {
                Some(id) => leased::budget_limits(id, budget, wall),
                None => (None, None),
            },
            _ => (None, None),
        };
        let (rpm, tpm) = leased::key_limits(caller, wall);
        let sizing =
            (spend.is_some() || tpm.is_some()).then(|| leased::Sizing::of(request, allowance));
        if let Some(limit) = requests {
            prepared.lease = leases.take(limit).await.ok();
        }
        if let (Some(limit), Some(sizing)) = (spend, sizing) {
            let estimate = sizing.estimate(data, model, allowance);
            prepared.estimate = Some(estimate);
            let amount = leased::spend_reserved(estimate);
            prepared.spend = leases.take_amount(limit, amount).await.ok();
        }
        // Last: their 5 s windows are the likeliest to move on during the waits above.
        if let (Some(limit), Some(sizing)) = (tpm, sizing) {
            prepared.tpm = leases.take_amount(limit, sizing.tokens()).await.ok();
        }
        if let Some(limit) = rpm {
            prepared.rpm = leases.take(limit).await.ok();
        }
        prepared
    }

    /// The rate-limit headers of a response to `caller` (see [`RateHeaders`]):
    /// what is left of its key's limits after this request. `None` for a caller
    /// without a key or without limits.
    pub fn rate_headers(&self, data: &dyn PolicyData, caller: &Caller) -> Option<RateHeaders> {
        let Caller::Key { id, key } = caller else {
            return None;
        };
        if key.rpm_limit.is_none() && key.tpm_limit.is_none() {
            return None;
        }
        let now = Instant::now();
        let mut headers = self.limiter.headers(id, now);
        let Some(leases) = self.leases.get() else {
            return Some(headers);
        };
        let wall = data.wall_ms();
        // Nothing said when this node has not admitted in the window (a request
        // refused before its limit was reached): it knows no figure.
        let remaining = |limit: leases::Leased| {
            leases.remaining(limit).map(|remaining| limits::Remaining {
                limit: limit.limit.max,
                remaining: remaining.min(limit.limit.max),
                reset: leases::Leased::next_rpm_window_in(wall),
            })
        };
        let (rpm, tpm) = leased::key_limits(caller, wall);
        if let Some(limit) = tpm {
            headers.tokens = remaining(limit);
        }
        if let Some(limit) = rpm {
            headers.requests = remaining(limit);
        }
        Some(headers)
    }

    /// Starts writing one row per request to `log` (replacing any previous log).
    pub fn attach_usage_log(&self, log: UsageLog) {
        self.usage_log.store(Some(Arc::new(log)));
    }

    /// The usage log, if one is attached.
    pub fn usage_log(&self) -> Option<Arc<UsageLog>> {
        self.usage_log.load_full()
    }

    /// Step 1: who is calling (see the module docs).
    pub fn authenticate(
        &self,
        data: &dyn PolicyData,
        headers: &http::HeaderMap,
    ) -> Result<Caller, Rejection> {
        let secret = auth::presented_secret(headers);
        let (lookup, rebuilt) = self.keys.lookup(data, secret, Instant::now());
        if rebuilt && !self.limiter.is_empty() {
            self.limiter
                .retain(|id| data.record(Collection::AuthKeys, id).is_some());
        }
        match lookup {
            Lookup::NoKeysExist => Ok(Caller::Anonymous),
            Lookup::Missing => Err(errors::missing_key()),
            Lookup::Unknown => Err(errors::unknown_key()),
            Lookup::Found(id, key) => {
                if key.disabled {
                    return Err(errors::key_disabled(id.as_str()));
                }
                if key.is_expired(data.wall_ms()) {
                    return Err(errors::key_expired(id.as_str()));
                }
                Ok(Caller::Key {
                    id: Arc::from(id.as_str()),
                    key,
                })
            }
        }
    }

    /// Steps 2–6 for a request to the public model name `model`, reserving no output
    /// allowance beyond the request's `max_tokens` (see [`Policy::admit_with`]).
    pub fn admit(
        &self,
        data: &dyn PolicyData,
        caller: &Caller,
        request: &mut ChatCompletionRequest,
        model: &str,
    ) -> Result<Ticket, Rejection> {
        self.admit_with(data, caller, request, model, &Allowance::default())
    }

    /// Steps 2–6 for a request to the public model name `model`; may rewrite
    /// `request` (redaction). `allowance` sizes the spend reserved on the key's
    /// budget ([`reserve`]).
    pub fn admit_with(
        &self,
        data: &dyn PolicyData,
        caller: &Caller,
        request: &mut ChatCompletionRequest,
        model: &str,
        allowance: &Allowance<'_>,
    ) -> Result<Ticket, Rejection> {
        self.admit_prepared(data, caller, request, model, allowance, Prepared::default())
    }

    /// [`Policy::admit_with`] with what [`Policy::ready`] took for the request.
    pub fn admit_prepared(
        &self,
        data: &dyn PolicyData,
        caller: &Caller,
        request: &mut ChatCompletionRequest,
        model: &str,
        allowance: &Allowance<'_>,
        mut prepared: Prepared,
    ) -> Result<Ticket, Rejection> {
        let key = match caller {
            Caller::Anonymous => None,
            Caller::Key { id, key } => Some((id, key)),
        };
        if let Some((_, key)) = key {
            if !key.allows_model(model) {
                return Err(errors::model_not_allowed(model, None));
            }
        }
        let workflow = match key.and_then(|(id, k)| Some((id, k.workflow_id.as_ref()?))) {
            Some((key_id, id)) => match workflow(data, id.as_str()) {
                Some(w) => Some(w),
                None => {
                    return Err(errors::key_misconfigured(
                        key_id,
                        "workflow_id",
                        "workflow",
                        id.as_str(),
                    ))
                }
            },
            None => workflow(data, DEFAULT_WORKFLOW),
        };
        let mut rewrote = false;
        if let Some(workflow) = workflow {
            rewrote = guardrails::apply(data, &workflow, request, model)?.redacted > 0;
        }
        let mut reservation = None;
        let mut budget_slot = None;
        let mut lease = None;
        let mut spend = None;
        if let Some((key_id, budget_id)) = key.and_then(|(id, k)| Some((id, k.budget_id.as_ref()?)))
        {
            let budget = match prepared.budget.take() {
                Some(budget) => Some(budget),
                None => match data.record(Collection::Budgets, budget_id.as_str()) {
                    Some(Record::Budget(budget)) => Some(budget),
                    _ => None,
                },
            };
            let Some(budget) = budget else {
                return Err(errors::key_misconfigured(
                    key_id,
                    "budget_id",
                    "budget",
                    budget_id.as_str(),
                ));
            };
            let estimate = prepared.estimate.take();
            let held = || {
                estimate.unwrap_or_else(|| {
                    leased::Sizing::of(request, allowance).estimate(data, model, allowance)
                })
            };
            let wall = data.wall_ms();
            if let Some(leases) = self.leases.get() {
                // The leases judge both limits; the counters only refuse what they
                // already show spent (usage of the period from before the leases
                // judged it: a build without them, `request_leases` off). No pacer,
                // no reservation: the usage is still recorded.
                // A `fail_open` budget's requests admitted while cut off are beyond
                // the limit on purpose: they do not refuse afterwards.
                let period = budget.period.index(wall);
                let seen = data.published_usage(budget_id, period);
                let reached = if budget.limit.is_some_and(|l| seen.spend_nanos >= l.nanos()) {
                    Some(budget::Reached::Spend)
                } else if budget.on_partition != aurora_core::quota::OnPartition::FailOpen
                    && budget.max_requests.is_some_and(|max| seen.requests >= max)
                {
                    Some(budget::Reached::Requests)
                } else {
                    None
                };
                if let Some(reached) = reached {
                    return Err(budget::refusal(
                        budget_id, &budget, seen, reached, period, wall,
                    ));
                }
                budget_slot = Some((budget_id.clone(), period));
                let (requests, spend_limit) = leased::budget_limits(budget_id, &budget, wall);
                if let Some(limit) = requests {
                    let taken = leased::admitted(leases, prepared.lease.take(), limit, 1);
                    lease = Some(taken.map_err(|refusal| {
                        leased::budget_refusal(budget_id, refusal, || {
                            leased::requests_exhausted(budget_id, &budget, limit.limit.max, wall)
                        })
                    })?);
                }
                if let (Some(limit), Some(max)) = (spend_limit, budget.limit) {
                    // What `ready` reserved, if it did (its window may have passed).
                    let amount = match &prepared.spend {
                        Some(hold) => hold.amount(),
                        None => leased::spend_reserved(held()),
                    };
                    let taken = leased::admitted(leases, prepared.spend.take(), limit, amount);
                    spend = Some(taken.map_err(|refusal| {
                        leased::budget_refusal(budget_id, refusal, || {
                            leased::spend_exhausted(data, budget_id, &budget, max, amount)
                        })
                    })?);
                }
            } else {
                let (reserved, slot) = self.reserve_budget(data, budget_id, &budget, held())?;
                budget_slot = Some(slot);
                reservation = Some(reserved);
            }
        }
        let mut slot = None;
        let mut tpm = None;
        if let Some((id, k)) = key {
            if let Some(max) = k.max_parallel_requests {
                match self.parallel.acquire(id, max) {
                    Ok(s) => slot = Some(s),
                    Err(in_flight) => return Err(errors::too_many_parallel(id, in_flight, max)),
                }
            }
            // Leased limits are the leases' to judge; without leases, this node's
            // buckets'.
            let (mut local_rpm, mut local_tpm) = (k.rpm_limit, k.tpm_limit);
            if let Some(leases) = self.leases.get() {
                let wall = data.wall_ms();
                let (rpm, tpm_limit) = leased::key_limits(caller, wall);
                if let (Some(limit), Some(max)) = (rpm, local_rpm.take()) {
                    // Counted once admitted, answered or not (as a bucket counts it).
                    leased::admitted(leases, prepared.rpm.take(), limit, 1)
                        .map_err(|refusal| leased::key_refusal(id, false, max, wall, refusal))?
                        .keep();
                }
                if let (Some(limit), Some(max)) = (tpm_limit, local_tpm.take()) {
                    let amount = match &prepared.tpm {
                        Some(hold) => hold.amount(),
                        None => leased::Sizing::of(request, allowance).tokens(),
                    };
                    let taken = leased::admitted(leases, prepared.tpm.take(), limit, amount);
                    tpm =
                        Some(taken.map_err(|refusal| {
                            leased::key_refusal(id, true, max, wall, refusal)
                        })?);
                }
            }
            if let Err(limited) = self.limiter.admit(id, local_rpm, local_tpm, Instant::now()) {
                return Err(errors::rate_limited(
                    id,
                    limited.tokens,
                    limited.limit,
                    limited.retry_after,
                    errors::Scope::ThisNode,
                ));
            }
        }
        Ok(Ticket {
            key_id: key.map(|(id, _)| Arc::clone(id)),
            budget: budget_slot,
            _reservation: reservation,
            lease,
            spend,
            tpm,
            _slot: slot,
            model: model.to_owned(),
            started: Instant::now(),
            rewrote,
        })
    }

    /// Requests of key `id` in flight on this node that hold a parallel slot.
    pub fn parallel_in_flight(&self, id: &str) -> u32 {
        self.parallel.in_flight(id)
    }

    /// Step 4 for `budget` (record `id`): checks the limits and reserves `held`, in
    /// one critical section so concurrent admissions see each other. The
    /// reservation and its (budget, period), or the 402.
    fn reserve_budget(
        &self,
        data: &dyn PolicyData,
        id: &RecordId,
        budget: &Budget,
        held: Usage,
    ) -> Result<(Reservation, (RecordId, u64)), Rejection> {
        // Only without quota leases: with them, the leases judge (see
        // `admit_prepared`).
        debug_assert!(self.leases.get().is_none());
        let wall = data.wall_ms();
        let period = budget.period.index(wall);
        let seen = data.usage(id, period);
        let latched = self.exhausted.latch(id, budget, period, seen);
        let amounts = budget::Amounts {
            seen,
            in_transit: if self.no_pacing || latched {
                Usage::default()
            } else {
                let seen = pacing::Seen {
                    total: seen,
                    own_published: data.own_published(id, period),
                    now_ms: wall,
                };
                self.pacer.in_transit(id, period, seen)
            },
            in_flight: Usage::default(),
        };
        let slot = (id.clone(), period);
        let mut reserved = lock(&self.reservations);
        let amounts = budget::Amounts {
            in_flight: reserved.get(&slot).copied().unwrap_or_default(),
            ..amounts
        };
        budget::check(id, budget, amounts, latched, period, wall)?;
        let reservation = Reservation::take(&self.reservations, &mut reserved, slot.clone(), held);
        Ok((reservation, slot))
    }

    /// Counts a refused request: metrics always; a usage-log row only once the caller
    /// is authenticated. A 401 (no key, unknown key) is a counter and nothing else, so
    /// a flood of junk keys cannot grow the log's file.
    pub fn rejected(
        &self,
        metrics: &Metrics,
        rejection: &Rejection,
        key_id: Option<&Arc<str>>,
        model: &str,
        started: Instant,
    ) {
        let status = rejection.error.status.as_u16();
        metrics.policy_rejection(status, rejection.reason);
        if let Some(id) = key_id {
            metrics.key_request(id, status);
        }
        if status == 401 {
            return;
        }
        if let Some(log) = self.usage_log() {
            log.record(UsageRow {
                time_ms: crate::clock::wall_ms(),
                key_id: key_id.map(|k| k.to_string()),
                model: model.to_owned(),
                status,
                latency_ms: started.elapsed().as_millis() as u64,
                ..UsageRow::default()
            });
        }
    }
}

impl Ticket {
    /// The key id, if the caller had one.
    pub fn key_id(&self) -> Option<&Arc<str>> {
        self.key_id.as_ref()
    }

    /// Whether a guardrail rewrote the request's text (redaction): a copy of the
    /// client's original body must then not be sent anywhere.
    pub fn rewrote_input(&self) -> bool {
        self.rewrote
    }

    /// Prices, charges and logs the finished request (see the module docs). Returns
    /// its cost.
    pub fn settle(
        mut self,
        data: &dyn PolicyData,
        policy: &Policy,
        metrics: &Metrics,
        outcome: Settled,
    ) -> Money {
        let usage = outcome.usage.unwrap_or_default();
        let pricing = outcome
            .target
            .as_deref()
            .into_iter()
            .chain(std::iter::once(self.model.as_str()))
            .find_map(|id| match data.record(Collection::Pricing, id) {
                Some(Record::Pricing(p)) => Some(p),
                _ => None,
            });
        let cost = pricing.map_or(Money::ZERO, |p| usage.cost(&p));
        if outcome.served == Served::Answered {
            // Counted: its unit of a leased request limit stays spent.
            if let Some(lease) = self.lease.take() {
                lease.keep();
            }
            if let Some(spend) = self.spend.take() {
                spend.settle(cost.nanos());
            }
            if let Some(tpm) = self.tpm.take() {
                tpm.settle(usage.total());
            }
            if let Some((budget, period)) = &self.budget {
                let charged = Usage {
                    spend_nanos: cost.nanos(),
                    requests: 1,
                    tokens: usage.total(),
                };
                // The pacer serves the counters' check only; with leases it is skipped.
                if policy.leases.get().is_none() {
                    policy.pacer.recorded(budget, *period, charged);
                }
                data.record_usage(budget, *period, charged);
            }
        }
        if let Some(id) = &self.key_id {
            policy
                .limiter
                .consume_tokens(id, usage.total(), Instant::now());
            metrics.key_request(id, outcome.status);
        }
        let label = outcome
            .target
            .clone()
            .unwrap_or_else(|| Arc::from(self.model.as_str()));
        if !cost.is_zero() {
            metrics.cost(&label, cost.nanos());
        }
        if let Some(log) = policy.usage_log() {
            log.record(UsageRow {
                time_ms: crate::clock::wall_ms(),
                key_id: self.key_id.as_ref().map(|k| k.to_string()),
                model: label.to_string(),
                provider: outcome.provider.as_ref().map(|p| p.to_string()),
                prompt_tokens: usage.prompt,
                completion_tokens: usage.completion,
                cached_tokens: usage.cached,
                cost_nanos: cost.nanos(),
                status: outcome.status,
                latency_ms: self.started.elapsed().as_millis() as u64,
                node: None,
                cache: outcome.cache,
            });
        }
        // The reservation is released here, after the usage is visible.
        drop(self);
        cost
    }
}

/// The workflow record `id`, if it exists.
fn workflow(data: &dyn PolicyData, id: &str) -> Option<Workflow> {
    match data.record(Collection::Workflows, id) {
        Some(Record::Workflow(w)) => Some(w),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aurora_schema::BudgetPeriod;

    #[test]
    fn cost_bills_cached_tokens_at_their_rate() {
        let pricing = Pricing {
            input_per_million: Money::from_decimal_str("2.5").unwrap(),
            output_per_million: Money::from_decimal_str("10").unwrap(),
            cached_input_per_million: Some(Money::from_decimal_str("1.25").unwrap()),
        };
        let u = TokenUsage {
            prompt: 1000,
            completion: 100,
            cached: 400,
        };
        // 600 × 2.5 + 400 × 1.25 + 100 × 10 per million = 0.0015 + 0.0005 + 0.001.
        assert_eq!(u.cost(&pricing), Money::from_decimal_str("0.003").unwrap());
        // Cached tokens beyond the prompt (a confused upstream) are capped.
        let odd = TokenUsage { cached: 5000, ..u };
        assert_eq!(
            odd.cost(&pricing),
            Money::from_decimal_str("0.00225").unwrap()
        );
    }

    #[test]
    fn cached_tokens_are_read_only_when_present() {
        assert_eq!(cached_tokens_in(br#"{"usage":{"prompt_tokens":9}}"#), 0);
        assert_eq!(
            cached_tokens_in(
                br#"{"usage":{"prompt_tokens":9,"prompt_tokens_details":{"cached_tokens":4}}}"#
            ),
            4
        );
        assert_eq!(cached_tokens_in(br#"{"cached_tokens": "#), 0);
    }

    /// A key `k` on budget `b` (at most `max_requests` a day) in `data`.
    fn daily_budget(data: &data::MemoryData, max_requests: u64) -> Caller {
        let budget = Budget {
            name: "b".into(),
            limit: None,
            max_requests: Some(max_requests),
            period: BudgetPeriod::Daily,
            on_partition: Default::default(),
        };
        data.put("b", Record::Budget(budget)).expect("budget");
        let key = AuthKey {
            name: "k".into(),
            secret_hash: auth::to_hex(&auth::digest("sk-k")),
            key_prefix: "sk".into(),
            allowed_models: vec![],
            budget_id: Some(RecordId::new("b").expect("id")),
            workflow_id: None,
            rpm_limit: None,
            tpm_limit: None,
            expires_at_ms: None,
            disabled: false,
            metadata: Default::default(),
            max_parallel_requests: None,
        };
        data.put("k", Record::AuthKey(key.clone())).expect("key");
        Caller::Key {
            id: Arc::from("k"),
            key: Box::new(key),
        }
    }

    fn admits(policy: &Policy, data: &data::MemoryData, caller: &Caller) -> bool {
        let mut request: ChatCompletionRequest = serde_json::from_value(serde_json::json!({
            "model": "m", "messages": [{"role": "user", "content": "hi"}]
        }))
        .expect("request");
        policy.admit(data, caller, &mut request, "m").is_ok()
    }

    #[test]
    fn a_budget_seen_exhausted_is_refused_until_the_record_or_the_period_changes() {
        let data = data::MemoryData::new();
        let day = 86_400_000;
        data.set_clock_ms(20_000 * day + 1_000);
        let period = BudgetPeriod::Daily.index(data.wall_ms());
        let caller = daily_budget(&data, 10);
        let b = RecordId::new("b").expect("id");
        let requests = |n| Usage {
            requests: n,
            ..Usage::default()
        };
        let policy = Policy::without_pacing();
        data.set_usage(&b, period, requests(9));
        assert!(admits(&policy, &data, &caller));
        data.set_usage(&b, period, requests(10));
        assert!(!admits(&policy, &data, &caller));
        // The counters read lower again (a resync forgot the others' usage for a
        // moment): still refused — no flip-back within the period.
        data.set_usage(&b, period, requests(2));
        assert!(!admits(&policy, &data, &caller));
        // A raised limit gives room at once.
        let caller = daily_budget(&data, 20);
        assert!(admits(&policy, &data, &caller));
        data.set_usage(&b, period, requests(20));
        assert!(!admits(&policy, &data, &caller));
        data.set_usage(&b, period, requests(0));
        assert!(!admits(&policy, &data, &caller));
        // So does the next period.
        data.set_clock_ms(20_001 * day + 1_000);
        assert!(admits(&policy, &data, &caller));
    }

    #[test]
    fn the_reservation_covers_every_one_of_n_completions() {
        let data = data::MemoryData::new();
        let usd = Money::from_usd(1).expect("usd");
        data.put(
            "m",
            Record::Pricing(Pricing {
                input_per_million: usd,
                output_per_million: usd,
                cached_input_per_million: None,
            }),
        )
        .expect("pricing");
        let caller = daily_budget(&data, 1_000);
        // 0.003 USD: what requests in flight hold counts against it, so beside one
        // completion of 1,000 tokens (0.001 USD) another request fits, beside four not.
        let budget = Budget {
            name: "b".into(),
            limit: Some(Money::from_decimal_str("0.003").expect("money")),
            max_requests: None,
            period: BudgetPeriod::Daily,
            on_partition: Default::default(),
        };
        data.put("b", Record::Budget(budget)).expect("budget");
        let policy = Policy::without_pacing();
        let admit = |n: u32| {
            let mut request: ChatCompletionRequest = serde_json::from_value(serde_json::json!({
                "model": "m", "max_tokens": 1000, "n": n,
                "messages": [{"role": "user", "content": "hi"}]
            }))
            .expect("request");
            policy.admit(&data, &caller, &mut request, "m")
        };
        let one = admit(1).expect("admitted");
        assert!(admit(1).is_ok(), "0.001 USD held leaves room");
        drop(one);
        let four = admit(4).expect("admitted");
        let refused = admit(1).expect_err("0.004 USD held for four completions: no room");
        assert_eq!(refused.error.status.as_u16(), 402);
        drop(four);
        assert!(admit(1).is_ok(), "released");
    }
}
