use super::*;
use serde::Deserialize;

// ----- money -----

#[test]
fn money_parses_exactly() {
    for (s, nanos) in [
        ("0", 0),
        ("0.15", 150_000_000),
        ("0.6", 600_000_000),
        ("3", 3_000_000_000),
        ("0.000000001", 1),
        ("1.000000000", 1_000_000_000),
        ("007.50", 7_500_000_000),
        ("18446744073.709551615", u64::MAX),
    ] {
        assert_eq!(
            Money::from_decimal_str(s),
            Ok(Money::from_nanos(nanos)),
            "{s}"
        );
    }
}

#[test]
fn money_rejects_inexact_or_malformed() {
    use MoneyError::*;
    for (s, err) in [
        ("", Empty),
        ("-1", Negative),
        ("-0.5", Negative),
        ("+1", Malformed),
        ("1e3", Malformed),
        ("1E-3", Malformed),
        ("1.5e2", Malformed),
        (".5", Malformed),
        ("5.", Malformed),
        (".", Malformed),
        (" 1", Malformed),
        ("1 ", Malformed),
        ("1,000", Malformed),
        ("1_000", Malformed),
        ("1.2.3", Malformed),
        ("0x10", Malformed),
        ("NaN", Malformed),
        ("inf", Malformed),
        ("١", Malformed),
        ("0.0000000001", TooPrecise),
        ("0.1500000000", TooPrecise),
        ("18446744073.709551616", Overflow),
        ("18446744074", Overflow),
        ("99999999999999999999999", Overflow),
    ] {
        assert_eq!(Money::from_decimal_str(s), Err(err), "{s:?}");
    }
}

#[test]
fn money_prints_minimal_decimals() {
    for (nanos, s) in [
        (0, "0"),
        (1, "0.000000001"),
        (10, "0.00000001"),
        (150_000_000, "0.15"),
        (1_000_000_000, "1"),
        (1_500_000_000, "1.5"),
        (123_456_789_012, "123.456789012"),
        (u64::MAX, "18446744073.709551615"),
    ] {
        assert_eq!(Money::from_nanos(nanos).to_string(), s);
    }
    assert_eq!(format!("{:?}", usd("0.15")), "$0.15");
}

#[test]
fn money_arithmetic() {
    assert_eq!(usd("0.1").checked_add(usd("0.2")), Some(usd("0.3")));
    assert_eq!(Money::MAX.checked_add(Money::from_nanos(1)), None);
    assert_eq!(Money::MAX.saturating_add(usd("1")), Money::MAX);
    assert_eq!(usd("1").checked_sub(usd("0.25")), Some(usd("0.75")));
    assert_eq!(usd("0.25").checked_sub(usd("1")), None);
    assert_eq!(Money::from_usd(5), Some(usd("5")));
    assert_eq!(Money::from_usd(u64::MAX), None);
    assert!(Money::ZERO.is_zero() && Money::default().is_zero());
}

#[test]
fn money_serde_is_decimal_string_when_human_readable() {
    use serde::de::value::{Error, StrDeserializer, U64Deserializer};
    use serde::de::IntoDeserializer;
    let d: StrDeserializer<Error> = "0.15".into_deserializer();
    assert_eq!(Money::deserialize(d), Ok(usd("0.15")));
    let d: StrDeserializer<Error> = "1e3".into_deserializer();
    assert!(Money::deserialize(d).is_err());
    // A bare number in JSON/YAML is refused: float or unclear unit.
    let d: U64Deserializer<Error> = 15u64.into_deserializer();
    assert!(Money::deserialize(d).is_err());
    // postcard (not human-readable) carries the integer of nanos.
    let bytes = postcard::to_allocvec(&usd("0.15")).unwrap();
    assert_eq!(bytes, postcard::to_allocvec(&150_000_000u64).unwrap());
    assert_eq!(postcard::from_bytes::<Money>(&bytes), Ok(usd("0.15")));
}

proptest! {
    #[test]
    fn money_display_round_trips(n in any::<u64>()) {
        let m = Money::from_nanos(n);
        prop_assert_eq!(Money::from_decimal_str(&m.to_string()), Ok(m));
    }

    #[test]
    fn money_parse_round_trips(whole in 0u64..18_446_744_073, frac in 0u64..1_000_000_000, width in 1usize..=9) {
        let frac = frac % 10u64.pow(width as u32);
        let s = format!("{whole}.{frac:0width$}");
        let m = Money::from_decimal_str(&s).unwrap();
        prop_assert_eq!(m.nanos(), whole * 1_000_000_000 + frac * 10u64.pow(9 - width as u32));
    }

    #[test]
    fn cost_is_within_half_a_nano(tokens in any::<u64>(), nanos in 0u64..=MAX_PRICE.nanos()) {
        let exact = u128::from(tokens) * u128::from(nanos); // in 1e-6 nano
        let c = u128::from(cost(tokens, Money::from_nanos(nanos)).nanos());
        if c < u128::from(u64::MAX) {
            let scaled = c * 1_000_000;
            // half-up: exact - 0.5 nano <= c < exact + 0.5 nano
            prop_assert!(scaled + 500_000 > exact && scaled <= exact + 500_000);
        }
    }
}

// ----- cost -----

#[test]
fn cost_is_exact() {
    assert_eq!(cost(1_000_000, usd("0.15")), usd("0.15"));
    assert_eq!(cost(1_000, usd("0.15")), usd("0.00015"));
    assert_eq!(cost(0, usd("10")), Money::ZERO);
    assert_eq!(cost(123, Money::ZERO), Money::ZERO);
    // 1,234,567 tokens at 2.5 USD/M = 3.0864175 USD exactly.
    assert_eq!(cost(1_234_567, usd("2.5")), usd("3.0864175"));
    // The largest inputs fit in u128 without overflow.
    assert_eq!(cost(u64::MAX, Money::from_nanos(1_000_000)), Money::MAX);
    assert_eq!(cost(u64::MAX, Money::MAX), Money::MAX);
}

#[test]
fn cost_rounds_half_up_to_the_nano() {
    // Prices with at most 3 decimals per million are exact per token:
    assert_eq!(cost(1, usd("0.15")).nanos(), 150);
    // 0.00015 USD/M = 0.15 nano per token.
    let p = usd("0.00015");
    assert_eq!(cost(1, p).nanos(), 0); // 0.15 nano
    assert_eq!(cost(3, p).nanos(), 0); // 0.45 nano
    assert_eq!(cost(4, p).nanos(), 1); // 0.60 nano
    assert_eq!(cost(10, p).nanos(), 2); // 1.50 nano: half rounds up
    assert_eq!(cost(1, usd("0.0005")).nanos(), 1); // exactly half
    assert_eq!(cost(1, Money::from_nanos(499_999)).nanos(), 0); // just under half
    assert_eq!(cost(1, Money::from_nanos(1_499_999)).nanos(), 1);
    assert_eq!(cost(1, Money::from_nanos(1_500_000)).nanos(), 2);
}

#[test]
fn pricing_cost_rounds_once() {
    // Sub-nano prices per token: 0.15 nano in, 0.075 cached, 0.6 out.
    let tiny = Pricing {
        input_per_million: usd("0.00015"),
        output_per_million: usd("0.0006"),
        cached_input_per_million: Some(usd("0.000075")),
    };
    // 3 in (0.45) + 1 cached (0.075) = 0.525 -> 1, where per-part rounding gives 0.
    assert_eq!(tiny.cost(3, 1, 0).nanos(), 1);
    assert_eq!(tiny.cost(1, 1, 1).nanos(), 1); // 0.825
    assert_eq!(tiny.cost(2, 0, 0).nanos(), 0); // 0.3
    let p = pricing(); // 0.15 in, 0.075 cached, 0.6 out per million
    assert_eq!(p.cost(1, 1, 1).nanos(), 150 + 75 + 600);
    assert_eq!(
        p.cost(1_000_000, 2_000_000, 500_000),
        usd("0.15")
            .saturating_add(usd("0.15"))
            .saturating_add(usd("0.3"))
    );
    // Without a cached price, cached tokens bill at the input price.
    let plain = Pricing {
        cached_input_per_million: None,
        ..pricing()
    };
    assert_eq!(plain.cost(0, 1_000_000, 0), usd("0.15"));
    assert_eq!(plain.cost(u64::MAX, u64::MAX, u64::MAX), Money::MAX);
}

// ----- budget periods -----

const DAY: u64 = 86_400_000;
const HOUR: u64 = 3_600_000;

/// Unix ms of a UTC date, from `date -u -d DATE +%s`.
fn date_ms(secs: u64) -> u64 {
    secs * 1000
}

#[test]
fn period_index_at_the_epoch() {
    for p in [
        BudgetPeriod::Hourly,
        BudgetPeriod::Daily,
        BudgetPeriod::Weekly,
        BudgetPeriod::Monthly,
        BudgetPeriod::Total,
    ] {
        assert_eq!(p.index(0), 0, "{p:?}");
        assert_eq!(p.start_ms(0), Some(0), "{p:?}");
    }
    assert_eq!(BudgetPeriod::Total.index(u64::MAX), 0);
    assert_eq!(BudgetPeriod::Total.start_ms(1), None);
}

#[test]
fn hourly_and_daily_boundaries() {
    use BudgetPeriod::*;
    assert_eq!(Hourly.index(HOUR - 1), 0);
    assert_eq!(Hourly.index(HOUR), 1);
    assert_eq!(Daily.index(DAY - 1), 0);
    assert_eq!(Daily.index(DAY), 1);
    let d = date_ms(1_776_124_800); // 2026-04-14
    assert_eq!(Daily.index(d) - Daily.index(d - 1), 1);
    assert_eq!(Hourly.start_ms(Hourly.index(d + 1)), Some(d));
    assert_eq!(Hourly.start_ms(u64::MAX), None);
}

#[test]
fn weeks_start_on_monday() {
    use BudgetPeriod::Weekly;
    // 1970-01-01 (Thu) .. 1970-01-04 (Sun) are week 0; Monday 1970-01-05 is week 1.
    let monday = date_ms(345_600);
    assert_eq!(Weekly.index(monday - 1), 0);
    assert_eq!(Weekly.index(monday), 1);
    assert_eq!(Weekly.start_ms(1), Some(monday));
    // Monday 2026-04-13 starts a week; Sunday 2026-04-12 ends the previous one.
    let m = date_ms(1_776_038_400);
    assert_eq!(Weekly.index(m) - Weekly.index(m - 1), 1);
    assert_eq!(Weekly.index(m + 7 * DAY - 1), Weekly.index(m));
    assert_eq!(Weekly.start_ms(Weekly.index(m + 3 * DAY)), Some(m));
}

#[test]
fn months_follow_the_civil_calendar() {
    use BudgetPeriod::Monthly;
    let feb_1970 = 31 * DAY;
    assert_eq!(Monthly.index(feb_1970 - 1), 0);
    assert_eq!(Monthly.index(feb_1970), 1);
    // 2000 is a leap year (divisible by 400): 29 Feb exists, March starts a day later.
    let (feb29_2000, mar1_2000) = (date_ms(951_782_400), date_ms(951_868_800));
    assert_eq!(Monthly.index(feb29_2000), 30 * 12 + 1);
    assert_eq!(Monthly.index(mar1_2000 - 1), 30 * 12 + 1);
    assert_eq!(Monthly.index(mar1_2000), 30 * 12 + 2);
    // 2024 leap year.
    let (feb29_2024, mar1_2024) = (date_ms(1_709_164_800), date_ms(1_709_251_200));
    assert_eq!(Monthly.index(feb29_2024 + DAY - 1), 54 * 12 + 1);
    assert_eq!(Monthly.index(mar1_2024), 54 * 12 + 2);
    // Year end: 2024-12-31T23:59:59.999 is December, 2025-01-01 the next month.
    let jan1_2025 = date_ms(1_735_689_600);
    assert_eq!(Monthly.index(jan1_2025 - 1), 54 * 12 + 11);
    assert_eq!(Monthly.index(jan1_2025), 55 * 12);
    assert_eq!(Monthly.start_ms(55 * 12), Some(jan1_2025));
    // 2100 is not a leap year (divisible by 100, not 400): Feb 28 is followed by Mar 1.
    let (feb28_2100, mar1_2100) = (date_ms(4_107_456_000), date_ms(4_107_542_400));
    assert_eq!(mar1_2100 - feb28_2100, DAY);
    assert_eq!(Monthly.index(mar1_2100 - 1), 130 * 12 + 1);
    assert_eq!(Monthly.index(mar1_2100), 130 * 12 + 2);
    assert_eq!(Monthly.start_ms(130 * 12 + 2), Some(mar1_2100));
    // The far end of u64 milliseconds.
    let last = Monthly.index(u64::MAX);
    assert!(Monthly
        .start_ms(last)
        .is_some_and(|s| Monthly.index(s) == last));
    assert_eq!(Monthly.start_ms(last + 1), None);
    assert_eq!(Monthly.start_ms(u64::MAX), None);
}

#[test]
fn civil_conversions_agree_over_many_years() {
    // Every day from 1970 to past 2400 (two 400-year boundaries' worth of rules).
    let mut prev = civil_from_days(0);
    assert_eq!(prev, (1970, 1, 1));
    for days in 1..160_000u64 {
        let (y, m, d) = civil_from_days(days);
        assert_eq!(days_from_civil(y, m, d), days);
        // Each day advances the date by exactly one.
        let next_expected = if d == 1 {
            assert!(m == prev.1 % 12 + 1, "{days}: {prev:?} -> {:?}", (y, m, d));
            (if m == 1 { prev.0 + 1 } else { prev.0 }, m, 1)
        } else {
            (prev.0, prev.1, prev.2 + 1)
        };
        assert_eq!((y, m, d), next_expected);
        let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
        let month_len = [
            31,
            if leap { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        assert!(d <= month_len[m as usize - 1]);
        prev = (y, m, d);
    }
}

proptest! {
    #[test]
    fn period_start_is_the_inverse_of_index(wall in any::<u64>()) {
        for p in [BudgetPeriod::Hourly, BudgetPeriod::Daily, BudgetPeriod::Weekly, BudgetPeriod::Monthly] {
            let i = p.index(wall);
            let start = p.start_ms(i).unwrap();
            prop_assert!(start <= wall);
            prop_assert_eq!(p.index(start), i);
            if start > 0 {
                prop_assert_eq!(p.index(start - 1), i - 1);
            }
            if let Some(next) = p.start_ms(i + 1) {
                prop_assert!(next > wall);
            }
        }
    }
}
