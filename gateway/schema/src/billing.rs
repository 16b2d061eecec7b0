//! Pricing (per million tokens) and budgets (limits per period).

use serde::{Deserialize, Serialize};

use aurora_core::quota::OnPartition;
use aurora_core::RecordError;

use crate::calendar::BudgetPeriod;
use crate::checks::*;
use crate::limits::*;
use crate::money::{round_micro_nanos, Money, Price};

/// Prices of one model, per million tokens. The record id is the model's id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pricing {
    pub input_per_million: Price,
    pub output_per_million: Price,
    /// Input tokens served from the provider's prompt cache; billed at the input
    /// price when unset.
    pub cached_input_per_million: Option<Price>,
}

impl Pricing {
    pub fn validate(&self) -> Result<(), RecordError> {
        const REASON: &str = "at most 10000 USD per million tokens (prices are in USD, not nanos)";
        for (field, price) in [
            ("input_per_million", Some(self.input_per_million)),
            ("output_per_million", Some(self.output_per_million)),
            ("cached_input_per_million", self.cached_input_per_million),
        ] {
            if price.is_some_and(|p| p > MAX_PRICE) {
                return Err(invalid(field, REASON));
            }
        }
        Ok(())
    }

    /// The cost of one request. `input_tokens` are the *uncached* input tokens
    /// (OpenAI's `prompt_tokens − prompt_tokens_details.cached_tokens`; Anthropic's
    /// `input_tokens`), `cached_input_tokens` those read from the cache.
    ///
    /// The three products are summed exactly and rounded once, half-up, so the
    /// result is within half a nano of the true cost (see [`cost`]).
    pub fn cost(&self, input_tokens: u64, cached_input_tokens: u64, output_tokens: u64) -> Money {
        let cached_price = self
            .cached_input_per_million
            .unwrap_or(self.input_per_million);
        let exact = (u128::from(input_tokens) * u128::from(self.input_per_million.nanos()))
            .saturating_add(u128::from(cached_input_tokens) * u128::from(cached_price.nanos()))
            .saturating_add(
                u128::from(output_tokens) * u128::from(self.output_per_million.nanos()),
            );
        round_micro_nanos(exact)
    }
}

/// A spending and/or request limit shared by the keys that name it, enforced
/// cluster-wide from the per-node usage counters of the current period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// 1 to 1024 bytes, no control characters.
    pub name: String,
    /// Spend allowed per period; `None` tracks spend without a limit, `Some(ZERO)`
    /// refuses every request.
    pub limit: Option<Money>,
    /// Requests allowed per period; `None` means unlimited.
    pub max_requests: Option<u64>,
    pub period: BudgetPeriod,
    /// What a node does with `max_requests` when it cannot reach the cluster's lease
    /// holder (quota leases, docs/quota.md): spend the slice it holds, then refuse
    /// (the default: the limit holds); refuse at once; or spend its slice, then
    /// admit everything while cut off (the limit no longer holds).
    #[serde(default)]
    pub on_partition: OnPartition,
}

impl Budget {
    pub fn validate(&self) -> Result<(), RecordError> {
        check_name(&self.name).map_err(|r| invalid("name", r))
    }
}
