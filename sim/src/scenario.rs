//! Named scenarios: the cases that bit other membership systems, each a script
//! over the simulated world with its own checks.

use crate::observe::CheckFailure;

/// What a scenario reports.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub lines: Vec<String>,
    pub failures: Vec<CheckFailure>,
}

/// A named scenario.
pub struct Scenario {
    pub name: &'static str,
    pub about: &'static str,
    pub run: fn(u64) -> Report,
}

pub const ALL: &[Scenario] = &[];
