//! The `--at TIME` of `aurora state export`: RFC 3339 or unix milliseconds, and the
//! RFC 3339 form of a time in an export document.
//!
//! Hand-written (civil-from-days, Howard Hinnant's algorithm) rather than a date
//! crate: two small functions, exact to the millisecond, and no dependency to audit.

/// Why a `--at` value was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "--at `{value}`: {reason}; give an RFC 3339 time (2026-12-04T18:55:20Z, \
     2026-12-04T19:55:20.250+01:00) or unix milliseconds (1796410520000)"
)]
pub struct AtParseError {
    pub value: String,
    pub reason: &'static str,
}

/// Parses `value` as unix ms (digits only) or an RFC 3339 date-time with a zone.
pub fn parse_at(value: &str) -> Result<u64, AtParseError> {
    let err = |reason| AtParseError {
        value: value.to_owned(),
        reason,
    };
    let v = value.trim();
    if v.is_empty() {
        return Err(err("empty"));
    }
    if v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse().map_err(|_| err("too large"));
    }
    let b = v.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return Err(err("not unix ms and not an RFC 3339 date-time"));
    }
    if b[13] != b':' || b[16] != b':' {
        return Err(err("not unix ms and not an RFC 3339 date-time"));
    }
    let num = |from: usize, to: usize| -> Result<i64, AtParseError> {
        let s = v.get(from..to).ok_or_else(|| err("bad date-time"))?;
        if !s.bytes().all(|c| c.is_ascii_digit()) {
            return Err(err("bad digits in the date-time"));
        }
        s.parse().map_err(|_| err("bad digits in the date-time"))
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(err("no such date"));
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err(err("no such time of day (leap seconds are not accepted)"));
    }
    let mut rest = &v[19..];
    let mut millis = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(err("a `.` without fraction digits"));
        }
        let first3: String = frac[..digits]
            .chars()
            .chain("000".chars())
            .take(3)
            .collect();
        millis = first3.parse().map_err(|_| err("bad fraction"))?;
        rest = &frac[digits..];
    }
    let offset_min = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6
            && matches!(rest.as_bytes()[0], b'+' | b'-')
            && rest.as_bytes()[3] == b':' =>
        {
            let h: i64 = rest[1..3].parse().map_err(|_| err("bad zone offset"))?;
            let m: i64 = rest[4..6].parse().map_err(|_| err("bad zone offset"))?;
            if h > 23 || m > 59 {
                return Err(err("bad zone offset"));
            }
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (h * 60 + m)
        }
        _ => return Err(err("a zone is required (`Z` or `+HH:MM`)")),
    };
    let days = days_from_civil(year, month, day);
    let ms =
        (((days * 24 + hour) * 60 + minute) * 60 + second) * 1000 + millis - offset_min * 60_000;
    u64::try_from(ms).map_err(|_| err("before 1970"))
}

/// `ms` (unix) as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_and_unix_ms_agree() {
        // date -u -d 2026-12-04T18:55:20Z +%s -> 1796410520
        assert_eq!(parse_at("2026-12-04T18:55:20Z"), Ok(1_796_410_520_000));
        assert_eq!(parse_at("1796410520000"), Ok(1_796_410_520_000));
        assert_eq!(
            parse_at("2026-12-04T19:55:20.25+01:00"),
            Ok(1_796_410_520_250)
        );
        assert_eq!(parse_at("2024-02-29T00:00:00.000Z"), Ok(1_709_164_800_000));
        assert_eq!(rfc3339(1_796_410_520_250), "2026-12-04T18:55:20.250Z");
        for ms in [0, 951_782_400_000, 1_709_164_800_000, 1_796_410_520_999] {
            assert_eq!(parse_at(&rfc3339(ms)), Ok(ms));
        }
    }

    #[test]
    fn bad_times_are_refused_with_the_reason() {
        for (value, reason) in [
            ("", "empty"),
            ("yesterday", "not unix ms"),
            ("2026-02-30T00:00:00Z", "no such date"),
            ("2026-12-04T24:00:00Z", "no such time"),
            ("2026-12-04T18:55:20", "a zone is required"),
            ("99999999999999999999999", "too large"),
            ("1969-12-31T23:59:59Z", "before 1970"),
            // Multi-byte characters anywhere never split a slice (no panic).
            ("2026-12-04T18:55:2\u{e9}Z", "bad"),
            ("2026-12-04T18:55:20+\u{e9}:00", "bad zone offset"),
            ("\u{ff12}\u{ff10}26-12-04T18:55:20Z", "not unix ms"),
            ("2026-12-04T18:55:20.\u{e9}Z", "without fraction digits"),
        ] {
            let e = parse_at(value).expect_err(value);
            assert!(e.to_string().contains(reason), "{value}: {e}");
        }
    }
}
