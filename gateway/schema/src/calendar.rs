//! [`BudgetPeriod`]: UTC windows (hours, days, Monday weeks, civil months) and the
//! proleptic Gregorian calendar arithmetic behind them.

use serde::{Deserialize, Serialize};

/// The window a budget's spend and request count accumulate over before resetting.
/// Windows are aligned to UTC: hours, days, weeks starting on Monday, calendar months.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetPeriod {
    Hourly,
    Daily,
    Weekly,
    Monthly,
    /// Never resets.
    Total,
}

const MS_PER_HOUR: u64 = 3_600_000;
const MS_PER_DAY: u64 = 86_400_000;
const MS_PER_WEEK: u64 = 7 * MS_PER_DAY;
/// 1970-01-01 was a Thursday: the Monday-based week containing it began 3 days
/// earlier, on 1969-12-29.
const EPOCH_WEEKDAY_FROM_MONDAY: u64 = 3;

impl BudgetPeriod {
    /// The number of the period that contains the Unix wall-clock time `wall_ms`:
    /// periods since the one containing the epoch (hours, days, Monday-based weeks or
    /// calendar months of 1970-01 onwards, in UTC; always 0 for `Total`).
    ///
    /// Usage counters are keyed by `(budget, period index)`, so every node files a
    /// request under the same key whatever its time zone; nodes whose clocks disagree
    /// near a boundary file it under adjacent periods, which the counters tolerate.
    pub fn index(self, wall_ms: u64) -> u64 {
        match self {
            BudgetPeriod::Hourly => wall_ms / MS_PER_HOUR,
            BudgetPeriod::Daily => wall_ms / MS_PER_DAY,
            BudgetPeriod::Weekly => (wall_ms / MS_PER_DAY + EPOCH_WEEKDAY_FROM_MONDAY) / 7,
            BudgetPeriod::Monthly => {
                let (y, m, _) = civil_from_days(wall_ms / MS_PER_DAY);
                (y - 1970) * 12 + u64::from(m - 1)
            }
            BudgetPeriod::Total => 0,
        }
    }

    /// The first millisecond of period `index` (the inverse of [`BudgetPeriod::index`]),
    /// e.g. for a "resets at" header: period `i` ends where `start_ms(i + 1)` begins.
    /// Week 0 began before the epoch and is reported as 0. `None` when the start is
    /// past `u64::MAX` ms, and for any `Total` index but 0.
    pub fn start_ms(self, index: u64) -> Option<u64> {
        match self {
            BudgetPeriod::Hourly => index.checked_mul(MS_PER_HOUR),
            BudgetPeriod::Daily => index.checked_mul(MS_PER_DAY),
            BudgetPeriod::Weekly => index
                .checked_mul(MS_PER_WEEK)
                .map(|ms| ms.saturating_sub(EPOCH_WEEKDAY_FROM_MONDAY * MS_PER_DAY)),
            BudgetPeriod::Monthly => {
                // u64::MAX ms is about 584.5 million years: beyond this many months the
                // start cannot be represented, and refusing early keeps the
                // arithmetic below far from overflow.
                const MAX_MONTH_INDEX: u64 = 600_000_000 * 12;
                if index > MAX_MONTH_INDEX {
                    return None;
                }
                let days = days_from_civil(1970 + index / 12, (index % 12) as u32 + 1, 1);
                days.checked_mul(MS_PER_DAY)
            }
            BudgetPeriod::Total => (index == 0).then_some(0),
        }
    }
}

/// Civil date (year, month 1–12, day 1–31) of `days` since 1970-01-01, proleptic
/// Gregorian, after Howard Hinnant's `civil_from_days`, restricted to dates from the
/// epoch on so that unsigned arithmetic suffices. Eras are 400-year cycles of
/// 146,097 days starting on March 1, which puts the leap day at the end of a year.
pub(crate) fn civil_from_days(days: u64) -> (u64, u32, u32) {
    // Days from 0000-03-01 to 1970-01-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365], from March 1
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// Days since 1970-01-01 of a civil date on or after the epoch (Hinnant's
/// `days_from_civil`, the inverse of [`civil_from_days`]).
pub(crate) fn days_from_civil(y: u64, m: u32, d: u32) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400; // [0, 399]
    let mp = u64::from(if m > 2 { m - 3 } else { m + 9 }); // [0, 11]
    let doy = (153 * mp + 2) / 5 + u64::from(d) - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}
