//! How often each named check ran and how often it failed, so a green run says
//! which checks were on (`aurora-sim run` ends with this table).
//!
//! What holds: a count is bumped where the check itself is evaluated (in
//! `observe.rs`, the harness's contract, the runner), never derived afterwards, so a
//! check that silently stopped running shows as 0 evaluations.

use std::collections::BTreeMap;

use aurora_core::testing::{Contract, ContractCounts};

/// Per check name: (times evaluated, times failed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckTally {
    counts: BTreeMap<&'static str, (u64, u64)>,
}

impl CheckTally {
    /// Check `name` was evaluated once; `ok` is its verdict.
    pub fn ran(&mut self, name: &'static str, ok: bool) {
        self.add(name, 1, u64::from(!ok));
    }

    /// Check `name` was evaluated `evaluated` times and failed `failed` of them.
    pub fn add(&mut self, name: &'static str, evaluated: u64, failed: u64) {
        let c = self.counts.entry(name).or_default();
        c.0 += evaluated;
        c.1 += failed;
    }

    /// Adds another tally (another seed's) to this one.
    pub fn merge(&mut self, other: &CheckTally) {
        for (&name, &(evaluated, failed)) in &other.counts {
            self.add(name, evaluated, failed);
        }
    }

    /// (evaluated, failed) of check `name`; (0, 0) if it never ran.
    pub fn get(&self, name: &str) -> (u64, u64) {
        self.counts.get(name).copied().unwrap_or_default()
    }

    /// Adds what one host's contract checked (see `aurora_core::testing::Contract`).
    pub fn contract(&mut self, c: &Contract) {
        let ContractCounts {
            transmits,
            announcements,
            carried_entries,
            rounds,
            store_walks,
        } = c.counts;
        let failed = |check: &str| c.violations().iter().filter(|v| v.check == check).count();
        self.add("wire", transmits, failed("wire") as u64);
        self.add(
            "announced-after-persisted",
            announcements,
            failed("announced-after-persisted") as u64,
        );
        self.add(
            "persist-before-transmit",
            carried_entries,
            failed("persist-before-transmit") as u64,
        );
        self.add(
            "incarnation-monotone",
            rounds,
            failed("incarnation-monotone") as u64,
        );
        self.add("timer", rounds, failed("timer") as u64);
        if store_walks > 0 {
            self.add(
                "store-persisted",
                store_walks,
                failed("store-persisted") as u64,
            );
        }
    }

    /// The table: one line per check, by name.
    pub fn table(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "{:<28} {:>16} {:>10}",
            "check", "evaluated", "failures"
        )];
        for (name, (evaluated, failed)) in &self.counts {
            lines.push(format!("{name:<28} {evaluated:>16} {failed:>10}"));
        }
        lines
    }
}
