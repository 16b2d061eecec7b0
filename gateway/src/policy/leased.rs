//! How admission uses the quota leases ([`super::leases`]): which of a caller's limits
//! are leased, what a request reserves of each, and the refusal a client reads when
//! its node cannot admit it.
//!
//! Four limits go through leases in a cluster that elects a leader: a budget's
//! `max_requests` and spend `limit` per period, a key's `rpm_limit` and `tpm_limit`
//! per rolling minute. [`super::Policy::ready`] takes what a request needs of each
//! before admission (it may wait briefly for a grant); admission then keeps what was
//! taken for the same window, or takes again without waiting ([`admitted`]).

use std::sync::Arc;

use aurora_core::quota::Refusal;
use aurora_core::state::store::Usage;
use aurora_schema::{Budget, Collection, Money, Record, RecordId};

use super::data::PolicyData;
use super::errors::{self, Scope};
use super::leases::{LeaseHold, Leased, Leases};
use super::{budget, reserve, Allowance, Caller, Rejection};
use crate::openai::types::ChatCompletionRequest;

/// What a request may use at most, counted once per request: the tokens of its
/// prompt and the output every one of its `n` completions may produce (its
/// `max_tokens`, or the allowance reserved when it sets none).
#[derive(Clone, Copy, Debug)]
pub(super) struct Sizing {
    prompt: u64,
    output: u64,
}

impl Sizing {
    pub(super) fn of(request: &ChatCompletionRequest, allowance: &Allowance<'_>) -> Sizing {
        Sizing {
            prompt: crate::provider::tokens::prompt(&request.messages),
            output: u64::from(request.token_cap().unwrap_or(allowance.output_tokens))
                * u64::from(request.choices()),
        }
    }

    /// What a request reserves of its budget: one request and its estimated cost at
    /// the most expensive pricing it may be billed at.
    pub(super) fn estimate(
        self,
        data: &dyn PolicyData,
        model: &str,
        allowance: &Allowance<'_>,
    ) -> Usage {
        let priced_as = std::iter::once(model).chain(allowance.priced_as.iter().map(|a| &**a));
        Usage {
            requests: 1,
            spend_nanos: reserve::estimate_cost(data, priced_as, self.prompt, self.output).nanos(),
            tokens: 0,
        }
    }

    /// What a request reserves of its key's leased tpm limit: its prompt and its
    /// output cap (at least 1 token).
    pub(super) fn tokens(self) -> u64 {
        self.prompt.saturating_add(self.output).max(1)
    }
}

/// What a request reserves of its budget's leased spend limit: its estimated cost,
/// at least a nano-USD, so that a spent budget refuses even a request it cannot
/// price (as the counters' check does).
pub(super) fn spend_reserved(estimate: Usage) -> u64 {
    estimate.spend_nanos.max(1)
}

/// `budget`'s (record `id`) request and spend limits in the period of `wall_ms`, as
/// the leases admit them, where it has them.
pub(super) fn budget_limits(
    id: &RecordId,
    budget: &Budget,
    wall_ms: u64,
) -> (Option<Leased>, Option<Leased>) {
    let period = budget.period.index(wall_ms);
    let requests = budget.max_requests.map(|max| {
        Leased::budget_requests(id.as_str(), budget.period, period, max, budget.on_partition)
    });
    let spend = budget.limit.map(|limit| {
        Leased::budget_spend(
            id.as_str(),
            budget.period,
            period,
            limit.nanos(),
            budget.on_partition,
        )
    });
    (requests, spend)
}

/// `caller`'s budget record, if its key names one that exists.
pub(super) fn caller_budget(data: &dyn PolicyData, caller: &Caller) -> Option<Budget> {
    let Caller::Key { key, .. } = caller else {
        return None;
    };
    match data.record(Collection::Budgets, key.budget_id.as_ref()?.as_str())? {
        Record::Budget(budget) => Some(budget),
        _ => None,
    }
}

/// `caller`'s key's rpm and tpm limits at `wall_ms`, as the leases admit them.
pub(super) fn key_limits(caller: &Caller, wall_ms: u64) -> (Option<Leased>, Option<Leased>) {
    let Caller::Key { id, key } = caller else {
        return (None, None);
    };
    (
        key.rpm_limit.map(|rpm| Leased::key_rpm(id, wall_ms, rpm)),
        key.tpm_limit.map(|tpm| Leased::key_tpm(id, wall_ms, tpm)),
    )
}

/// The request's `amount` of `limit` at admission: what [`super::Policy::ready`]
/// took (`prepared`) when it is of the same window, otherwise taken now without
/// waiting (the clock crossed into another window since: what was taken in the
/// earlier one is given back first). A refused reservation of more than one unit
/// stops the asking for it ([`Leases::give_up`]).
pub(super) fn admitted(
    leases: &Arc<Leases>,
    prepared: Option<LeaseHold>,
    limit: Leased,
    amount: u64,
) -> Result<LeaseHold, Refusal> {
    match prepared {
        Some(hold) if hold.key() == limit.key => Ok(hold),
        stale => {
            drop(stale);
            let taken = leases.admit_amount(limit, amount);
            if taken.is_err() && amount > 1 {
                leases.give_up(limit);
            }
            taken
        }
    }
}

/// A budget's leased limit refused the request: 429 `budget_pending` while this
/// node holds too little, 429 `budget_cut_off` when it cannot reach the lease
/// holder, and once the cluster's limit is reached (or cannot cover the estimate)
/// the 402 `exhausted` builds.
pub(super) fn budget_refusal(
    id: &RecordId,
    refusal: Refusal,
    exhausted: impl FnOnce() -> Rejection,
) -> Rejection {
    match refusal {
        Refusal::Waiting => errors::budget_pending(id.as_str()),
        Refusal::CutOff => errors::budget_cut_off(id.as_str()),
        Refusal::Exhausted => exhausted(),
    }
}

/// The 402 of a budget whose leased `max_requests` (`limit`) is reached.
pub(super) fn requests_exhausted(
    id: &RecordId,
    budget: &Budget,
    limit: u64,
    wall_ms: u64,
) -> Rejection {
    let used = Usage {
        requests: limit,
        ..Usage::default()
    };
    let period = budget.period.index(wall_ms);
    budget::refusal(id, budget, used, budget::Reached::Requests, period, wall_ms)
}

/// The 402 of a budget whose leased spend `limit` cannot cover a request's
/// estimated cost `amount` (what is left: the limit less the counters' spend).
pub(super) fn spend_exhausted(
    data: &dyn PolicyData,
    id: &RecordId,
    budget: &Budget,
    limit: Money,
    amount: u64,
) -> Rejection {
    let period = budget.period.index(data.wall_ms());
    let spent = data.usage(id, period).spend_nanos;
    errors::budget_cannot_cover(
        id.as_str(),
        Money::from_nanos(limit.nanos().saturating_sub(spent)),
        Money::from_nanos(amount),
    )
}

/// A key's leased rpm or tpm limit (`tokens`) of `max` refused the request: 429
/// `rate_limit_exceeded` across the cluster when the rolling minute is spent
/// (`Retry-After`: when its next window begins), `rpm_pending` while this node holds
/// too little, `rpm_cut_off` when it cannot reach the lease holder.
pub(super) fn key_refusal(
    id: &str,
    tokens: bool,
    max: u32,
    wall_ms: u64,
    refusal: Refusal,
) -> Rejection {
    match refusal {
        Refusal::Waiting => errors::rpm_pending(id),
        Refusal::CutOff => errors::rpm_cut_off(id),
        Refusal::Exhausted => {
            let wait = Leased::next_rpm_window_in(wall_ms);
            let retry = wait.as_secs_f64().ceil().max(1.0) as u64;
            errors::rate_limited(id, tokens, max, retry, Scope::Cluster)
        }
    }
}
