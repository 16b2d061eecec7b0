//! Size limits enforced by `validate`. They bound what one record can cost a node
//! to hold, hash and send, whatever a peer or an admin client hands it.

use crate::money::Money;

/// Longest string, in bytes, unless a field says otherwise.
pub const MAX_STR: usize = 1024;
/// Most elements in a list, unless a field says otherwise.
pub const MAX_VEC: usize = 256;
/// Most entries in a map.
pub const MAX_MAP: usize = 64;
/// Longest [`super::RecordId`] (and model name or alias), in bytes.
pub use aurora_core::state::record::MAX_ID;
/// Longest metadata key, in bytes.
pub const MAX_METADATA_KEY: usize = 128;
/// Longest auth-key prefix shown to operators, in bytes.
pub const MAX_KEY_PREFIX: usize = 12;
/// Longest environment variable name, in bytes.
pub const MAX_ENV_NAME: usize = 128;
/// Most weighted targets of a route.
pub const MAX_ROUTE_TARGETS: usize = 32;
/// Most fallbacks of a route.
pub const MAX_FALLBACKS: usize = 8;
/// Most guardrails bound by one workflow.
pub const MAX_WORKFLOW_GUARDRAILS: usize = 32;
/// Longest upstream timeout (10 minutes, enough for long generations).
pub const MAX_TIMEOUT_MS: u32 = 600_000;
/// Most retries of a provider or a route.
pub const MAX_RETRIES: u8 = 10;
/// Longest cooldown of a failing target (one day).
pub const MAX_COOLDOWN_MS: u32 = 86_400_000;
/// Highest price per million tokens (10,000 USD). Real prices are below 1,000 USD;
/// the cap catches a price entered in nanos instead of USD, which would otherwise
/// exhaust every budget at the first request.
pub const MAX_PRICE: Money = Money::from_nanos(10_000 * Money::NANOS_PER_USD);
