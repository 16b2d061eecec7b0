//! Budget admission: the limit check, and the latch that keeps a refusal final.
//!
//! A budget is checked against three amounts: the cluster-wide usage of the period as
//! this node sees it, what this node has reserved for its requests in flight on it (a
//! request and an estimated cost each, [`super::reserve`]), and the other nodes' usage
//! predicted to be in transit ([`super::pacing`]). The last two are estimates — an
//! in-flight request may fail and cost nothing, or cost less than reserved, a
//! prediction may be too high — so a refusal based on them may rightly turn into an
//! admission later.
//!
//! A refusal based on the counters alone must not: once this node has *seen* the
//! period's usage reach a limit, it refuses every later request of that period
//! ([`Exhausted`]), even if the counters it reads go down again (a node that resyncs
//! from scratch forgets the others' counters for a moment; a snapshot rebuilt at
//! start-up may lag). Clients then see one switch from 200 to 402 per period, never
//! back. The latch is lifted only by what can really give the budget room: a changed
//! budget record (a raised limit, say — any change, so the new record is judged
//! afresh) or the next period.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use aurora_core::state::store::Usage;
use aurora_schema::{Budget, BudgetPeriod, Money, RecordId};

use super::{errors, Rejection};

/// Which limit of a budget was reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reached {
    Spend,
    Requests,
}

/// The limit of `budget` that `used` plus the `reserved` amounts of requests in
/// flight reached, if any. A budget with any room left admits (a request is never
/// refused only because its estimate is larger than the room), so one node overshoots
/// a spend limit by less than one request (see [`super::reserve`]).
fn reached(budget: &Budget, used: Usage, reserved: Usage) -> Option<Reached> {
    if budget
        .limit
        .is_some_and(|limit| used.spend_nanos.saturating_add(reserved.spend_nanos) >= limit.nanos())
    {
        return Some(Reached::Spend);
    }
    if budget
        .max_requests
        .is_some_and(|max| used.requests.saturating_add(reserved.requests) >= max)
    {
        return Some(Reached::Requests);
    }
    None
}

/// What a budget check compares with the limits.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Amounts {
    /// The period's usage as this node sees it (counters, no estimate).
    pub seen: Usage,
    /// The other nodes' usage predicted to be in transit.
    pub in_transit: Usage,
    /// What requests admitted on this node and not settled yet reserved.
    pub in_flight: Usage,
}

/// 402 when `amounts` reach a limit of `budget`, or when `latched` (this node saw the
/// period exhausted earlier).
pub(crate) fn check(
    id: &RecordId,
    budget: &Budget,
    amounts: Amounts,
    latched: bool,
    period: u64,
    wall: u64,
) -> Result<(), Rejection> {
    let used = amounts.seen.saturating_add(amounts.in_transit);
    let which = match reached(budget, used, amounts.in_flight) {
        Some(which) => which,
        // Latched although the counters now read lower: name the limit that was hit.
        None if latched && budget.max_requests.is_some() => Reached::Requests,
        None if latched => Reached::Spend,
        None => return Ok(()),
    };
    Err(refusal(id, budget, used, which, period, wall))
}

/// The 402 for `which` limit of `budget`, with the time until the period resets.
pub(crate) fn refusal(
    id: &RecordId,
    budget: &Budget,
    used: Usage,
    which: Reached,
    period: u64,
    wall: u64,
) -> Rejection {
    let resets_in = budget
        .period
        .start_ms(period.saturating_add(1))
        .filter(|_| budget.period != BudgetPeriod::Total)
        .map(|start| start.saturating_sub(wall).div_ceil(1000));
    let detail = match (which, budget.limit, budget.max_requests) {
        (Reached::Spend, Some(limit), _) => format!(
            "spent {} of {} USD this period",
            Money::from_nanos(used.spend_nanos),
            limit
        ),
        (_, _, Some(max)) => format!("{max} requests allowed this period"),
        _ => "budget exhausted this period".to_owned(),
    };
    errors::budget_exceeded(id.as_str(), &detail, resets_in)
}

/// The budgets this node has seen exhausted: per budget, the period and the budget
/// record at that moment (see the module docs).
#[derive(Debug, Default)]
pub struct Exhausted {
    budgets: Mutex<HashMap<RecordId, (u64, Budget)>>,
}

impl Exhausted {
    fn lock(&self) -> MutexGuard<'_, HashMap<RecordId, (u64, Budget)>> {
        self.budgets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `budget` (record `id`) is exhausted for `period` as far as this node is
    /// concerned: it was seen exhausted earlier in the period under the same record,
    /// or `seen` (the counters now, without estimates) reaches a limit — which latches
    /// it. A latch from another period or an older record is dropped.
    pub fn latch(&self, id: &RecordId, budget: &Budget, period: u64, seen: Usage) -> bool {
        let mut budgets = self.lock();
        if budgets
            .get(id)
            .is_some_and(|(p, b)| *p == period && b == budget)
        {
            return true;
        }
        if reached(budget, seen, Usage::default()).is_some() {
            budgets.insert(id.clone(), (period, budget.clone()));
            return true;
        }
        budgets.remove(id);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(max_requests: u64) -> Budget {
        Budget {
            name: "b".into(),
            limit: Some(Money::from_decimal_str("1").expect("money")),
            max_requests: Some(max_requests),
            period: BudgetPeriod::Hourly,
            on_partition: Default::default(),
        }
    }

    fn used(spend_nanos: u64, requests: u64) -> Usage {
        Usage {
            spend_nanos,
            requests,
            tokens: 0,
        }
    }

    fn amounts(seen: Usage, in_flight_requests: u64) -> Amounts {
        Amounts {
            seen,
            in_flight: used(0, in_flight_requests),
            ..Amounts::default()
        }
    }

    #[test]
    fn limits_count_in_flight_requests_and_predictions() {
        let id = RecordId::new("b").expect("id");
        let b = budget(10);
        assert!(check(&id, &b, amounts(used(0, 9), 0), false, 0, 0).is_ok());
        assert!(check(&id, &b, amounts(used(0, 9), 1), false, 0, 0).is_err());
        let predicted = Amounts {
            in_transit: used(0, 1),
            ..amounts(used(0, 9), 0)
        };
        assert!(check(&id, &b, predicted, false, 0, 0).is_err());
        assert!(check(&id, &b, amounts(used(999_999_999, 0), 0), false, 0, 0).is_ok());
        // Reserved spend counts: 0.6 USD spent and 0.4 USD reserved fill 1 USD.
        let reserved = Amounts {
            in_flight: used(400_000_000, 1),
            ..amounts(used(600_000_000, 0), 0)
        };
        assert!(check(&id, &b, reserved, false, 0, 0).is_err());
        let room = Amounts {
            in_flight: used(399_999_999, 1),
            ..reserved
        };
        assert!(check(&id, &b, room, false, 0, 0).is_ok());
        let err = check(&id, &b, amounts(used(1_000_000_000, 0), 0), false, 0, 1_000)
            .expect_err("spend limit");
        assert_eq!(err.error.status, http::StatusCode::PAYMENT_REQUIRED);
        assert!(
            err.error.message.contains("resets in 3599s"),
            "{}",
            err.error.message
        );
        // Latched: refused whatever the amounts say now.
        assert!(check(&id, &b, amounts(used(0, 0), 0), true, 0, 0).is_err());
    }

    #[test]
    fn a_budget_seen_exhausted_stays_exhausted_for_the_period() {
        let latch = Exhausted::default();
        let id = RecordId::new("b").expect("id");
        let b = budget(10);
        assert!(!latch.latch(&id, &b, 7, used(0, 9)));
        assert!(latch.latch(&id, &b, 7, used(0, 10)));
        // The counters read lower again (a resync forgot the others' usage): still
        // exhausted.
        assert!(latch.latch(&id, &b, 7, used(0, 3)));
        // Only the seen counters latch: a check with predictions or in-flight
        // requests is not a reason to refuse for the rest of the period.
        let other = RecordId::new("other").expect("id");
        assert!(!latch.latch(&other, &b, 7, used(0, 9)));
        // A raised limit is judged afresh, and latches again once reached.
        let raised = budget(20);
        assert!(!latch.latch(&id, &raised, 7, used(0, 12)));
        assert!(latch.latch(&id, &raised, 7, used(0, 20)));
        assert!(latch.latch(&id, &raised, 7, used(0, 0)));
        // The next period starts with the budget available.
        assert!(!latch.latch(&id, &raised, 8, used(0, 0)));
    }
}
