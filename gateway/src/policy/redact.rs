//! Hand-written scanners for e-mail addresses, phone numbers and secret-like strings,
//! and the rewrite that replaces what they find.
//!
//! Why no regex crate: the three patterns are small, the scanners run in one linear
//! pass over the bytes with no backtracking (so a hostile prompt cannot make them
//! slow), and the heuristics that matter — word boundaries, "is this a date or an IP
//! address rather than a phone number", "is this random enough to be a key" — are
//! easier to state and test as code than as a regular expression.
//!
//! Every pattern is ASCII, and a match starts and ends next to an ASCII byte or the
//! text's ends, so spans always fall on UTF-8 character boundaries.
//!
//! What is matched (see the tests for the tricky cases):
//! - **E-mail**: `local@domain.tld` — local part of letters, digits and `._%+-`; a
//!   domain with at least one dot and an alphabetic top-level label of 2+ letters
//!   (`user@localhost` and `@mentions` are left alone).
//! - **Phone number**: `+` and 8–15 digits in any grouping (E.164), or, without `+`,
//!   10–15 digits in at least two groups of at most 4 digits separated by single
//!   spaces, `-`, `.` or parentheses (`(555) 123-4567`, `020 7946 0958`). Dates,
//!   times, version numbers, decimals, IPv4 addresses and bare digit runs (ids, Unix
//!   timestamps) do not match.
//! - **Secret**: tokens starting with a known key prefix (`sk-`, `sk_live_`, `ghp_`,
//!   `github_pat_`, `glpat-`, `xoxb-`, `AIza`, `hf_`, …) and 16+ more characters; AWS
//!   access key ids (`AKIA`/`ASIA` + 16 upper-case letters or digits); JWTs (`eyJ…` in
//!   three dot-separated parts); hex strings of 32+ digits mixing letters and digits
//!   (SHA-256 digests, many API tokens — and, knowingly, git commit ids); and
//!   base64-like tokens of 32+ characters with upper- and lower-case letters, at least
//!   3 digits and no run of 8+ lower-case letters (random keys have those properties,
//!   words, paths and identifiers rarely do).

/// Replacement of an e-mail address.
pub const EMAIL: &str = "[REDACTED_EMAIL]";
/// Replacement of a phone number.
pub const PHONE: &str = "[REDACTED_PHONE]";
/// Replacement of a secret-like token.
pub const SECRET: &str = "[REDACTED_SECRET]";

/// Which categories to redact.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Categories {
    /// E-mail addresses.
    pub emails: bool,
    /// Phone numbers.
    pub phone_numbers: bool,
    /// API keys, tokens and other secret-like strings.
    pub secrets: bool,
}

/// A match: byte range and replacement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
    /// What replaces it.
    pub replacement: &'static str,
}

/// `text` with every match of the enabled categories replaced, or `None` when nothing
/// matched (no allocation in the common case).
pub fn redact(text: &str, categories: Categories) -> Option<String> {
    let spans = find(text, categories);
    if spans.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for span in spans {
        out.push_str(text.get(at..span.start)?);
        out.push_str(span.replacement);
        at = span.end;
    }
    out.push_str(text.get(at..)?);
    Some(out)
}

/// Non-overlapping matches of the enabled categories, in order. Where two overlap
/// the one that starts first (then the longer) wins.
pub fn find(text: &str, categories: Categories) -> Vec<Span> {
    let b = text.as_bytes();
    let mut spans = Vec::new();
    if categories.emails {
        emails(b, &mut spans);
    }
    if categories.phone_numbers {
        phones(b, &mut spans);
    }
    if categories.secrets {
        secrets(b, &mut spans);
    }
    spans.sort_by_key(|s| (s.start, std::cmp::Reverse(s.end)));
    let mut kept: Vec<Span> = Vec::with_capacity(spans.len());
    for span in spans {
        if kept.last().is_none_or(|last| span.start >= last.end) {
            kept.push(span);
        }
    }
    kept
}

// ----- e-mail -----

fn is_local(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_domain(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-')
}

fn emails(b: &[u8], out: &mut Vec<Span>) {
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'@' {
            i += 1;
            continue;
        }
        let mut start = i;
        while start > 0 && is_local(b[start - 1]) {
            start -= 1;
        }
        while start < i && b[start] == b'.' {
            start += 1;
        }
        let mut end = i + 1;
        while end < b.len() && is_domain(b[end]) {
            end += 1;
        }
        while end > i + 1 && matches!(b[end - 1], b'.' | b'-') {
            end -= 1;
        }
        if start < i && valid_domain(&b[i + 1..end]) {
            out.push(Span {
                start,
                end,
                replacement: EMAIL,
            });
            i = end;
        } else {
            i += 1;
        }
    }
}

fn valid_domain(d: &[u8]) -> bool {
    let mut labels = d.split(|&c| c == b'.');
    let mut count = 0;
    let mut last: &[u8] = &[];
    for label in labels.by_ref() {
        if label.is_empty() || label[0] == b'-' {
            return false;
        }
        count += 1;
        last = label;
    }
    count >= 2 && last.len() >= 2 && last.iter().all(u8::is_ascii_alphabetic)
}

// ----- phone numbers -----

fn is_sep(c: u8) -> bool {
    matches!(c, b' ' | b'-' | b'.')
}

fn word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn phones(b: &[u8], out: &mut Vec<Span>) {
    let digit_at = |j: usize| b.get(j).is_some_and(u8::is_ascii_digit);
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let starts = (c == b'+'
            && (digit_at(i + 1) || (b.get(i + 1) == Some(&b'(') && digit_at(i + 2))))
            || (c == b'(' && digit_at(i + 1))
            || c.is_ascii_digit();
        let bounded =
            i == 0 || !(word_byte(b[i - 1]) || matches!(b[i - 1], b'+' | b'.' | b'/' | b','));
        if !starts || !bounded {
            i += 1;
            continue;
        }
        match phone_at(b, i) {
            Some(end) => {
                out.push(Span {
                    start: i,
                    end,
                    replacement: PHONE,
                });
                i = end;
            }
            None => {
                // Skip the rest of this run of digits and separators: a phone number
                // cannot start inside it (that would be a suffix of a longer number).
                let mut j = i + 1;
                while j < b.len()
                    && (b[j].is_ascii_digit() || is_sep(b[j]) || matches!(b[j], b'(' | b')'))
                {
                    j += 1;
                }
                i = j;
            }
        }
    }
}

/// The end of a phone number starting at `i`, if one does.
fn phone_at(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    let plus = b[j] == b'+';
    if plus {
        j += 1;
    }
    let mut groups: Vec<usize> = Vec::new();
    let mut seps: Vec<u8> = Vec::new();
    loop {
        let paren = b.get(j) == Some(&b'(');
        if paren {
            j += 1;
        }
        let start = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        let digits = j - start;
        if digits == 0 {
            return None;
        }
        if paren {
            if b.get(j) != Some(&b')') {
                return None;
            }
            j += 1;
        }
        groups.push(digits);
        if groups.len() > 8 {
            return None;
        }
        match (b.get(j), b.get(j + 1)) {
            (Some(&s), Some(&n)) if is_sep(s) && (n.is_ascii_digit() || n == b'(') => {
                seps.push(s);
                j += 1;
            }
            (Some(&b'('), Some(n)) if n.is_ascii_digit() => {}
            _ => break,
        }
    }
    // A number glued to a word or another number is not a phone number.
    if b.get(j).is_some_and(|&c| word_byte(c) || c == b'@') {
        return None;
    }
    let total: usize = groups.iter().sum();
    let ok = if plus {
        (8..=15).contains(&total)
    } else {
        let ipv4_like = groups.len() == 4 && seps.iter().all(|&s| s == b'.');
        groups.len() >= 2
            && (10..=15).contains(&total)
            && groups.iter().all(|&g| g <= 4)
            && !ipv4_like
    };
    ok.then_some(j)
}

// ----- secrets -----

/// Key prefixes of well-known providers (Stripe, GitHub, GitLab, Slack, Google,
/// Hugging Face, OpenAI/Anthropic and lookalikes).
const PREFIXES: [&str; 17] = [
    "sk-",
    "sk_live_",
    "sk_test_",
    "rk_live_",
    "rk_test_",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "xoxb-",
    "xoxp-",
    "xapp-",
    "AIza",
    "hf_",
];

/// Characters after a prefix for the token to count as a key.
const MIN_AFTER_PREFIX: usize = 16;
/// Shortest hex or base64-like token taken for a secret.
const MIN_RANDOM_LEN: usize = 32;

fn is_token(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-')
}

fn is_b64(c: u8) -> bool {
    is_token(c) || matches!(c, b'+' | b'/')
}

fn secrets(b: &[u8], out: &mut Vec<Span>) {
    // Pass 1: runs of [A-Za-z0-9_-] — prefixed keys, AWS ids, JWTs, hex.
    let mut i = 0;
    while i < b.len() {
        if !is_token(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && is_token(b[i]) {
            i += 1;
        }
        let run = &b[start..i];
        if run.starts_with(b"eyJ") {
            if let Some(end) = jwt_end(b, i) {
                out.push(Span {
                    start,
                    end,
                    replacement: SECRET,
                });
                i = end;
                continue;
            }
        }
        if prefixed_key(run) || aws_key_id(run) || hex_secret(run) {
            out.push(Span {
                start,
                end: i,
                replacement: SECRET,
            });
        }
    }
    // Pass 2: runs of base64 characters with their `=` padding — random tokens.
    let mut i = 0;
    while i < b.len() {
        if !is_b64(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && is_b64(b[i]) {
            i += 1;
        }
        let body_end = i;
        while i < b.len() && b[i] == b'=' && i - body_end < 2 {
            i += 1;
        }
        if random_looking(&b[start..body_end]) {
            out.push(Span {
                start,
                end: i,
                replacement: SECRET,
            });
        }
    }
}

fn prefixed_key(run: &[u8]) -> bool {
    PREFIXES
        .iter()
        .any(|p| run.starts_with(p.as_bytes()) && run.len() >= p.len() + MIN_AFTER_PREFIX)
}

fn aws_key_id(run: &[u8]) -> bool {
    run.len() == 20
        && (run.starts_with(b"AKIA") || run.starts_with(b"ASIA"))
        && run[4..]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

fn hex_secret(run: &[u8]) -> bool {
    run.len() >= MIN_RANDOM_LEN
        && run.iter().all(u8::is_ascii_hexdigit)
        && run.iter().any(u8::is_ascii_digit)
        && run.iter().any(u8::is_ascii_alphabetic)
}

/// A JWT's end if `b[at..]` continues the `eyJ…` run at `at` with `.part.part`.
fn jwt_end(b: &[u8], at: usize) -> Option<usize> {
    let mut j = at;
    for _ in 0..2 {
        if b.get(j) != Some(&b'.') {
            return None;
        }
        let start = j + 1;
        j = start;
        while j < b.len() && is_token(b[j]) {
            j += 1;
        }
        if j == start {
            return None;
        }
    }
    Some(j)
}

fn random_looking(run: &[u8]) -> bool {
    if run.len() < MIN_RANDOM_LEN {
        return false;
    }
    let (mut upper, mut lower, mut digits, mut lower_run, mut longest_lower) = (0, 0, 0, 0, 0);
    for &c in run {
        if c.is_ascii_lowercase() {
            lower += 1;
            lower_run += 1;
            longest_lower = longest_lower.max(lower_run);
        } else {
            lower_run = 0;
            if c.is_ascii_uppercase() {
                upper += 1;
            } else if c.is_ascii_digit() {
                digits += 1;
            }
        }
    }
    upper >= 2 && lower >= 2 && digits >= 3 && longest_lower < 8
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: Categories = Categories {
        emails: true,
        phone_numbers: true,
        secrets: true,
    };

    fn only(emails: bool, phone_numbers: bool, secrets: bool) -> Categories {
        Categories {
            emails,
            phone_numbers,
            secrets,
        }
    }

    fn r(text: &str, c: Categories) -> String {
        redact(text, c).unwrap_or_else(|| text.to_owned())
    }

    #[test]
    fn emails_found_and_boundaries_respected() {
        let e = only(true, false, false);
        for (input, expected) in [
            ("mail alice@example.com now", "mail [REDACTED_EMAIL] now"),
            ("<bob.smith+tag@mail.example.co.uk>", "<[REDACTED_EMAIL]>"),
            (
                "end of sentence: x_y@ex-ample.org.",
                "end of sentence: [REDACTED_EMAIL].",
            ),
            ("two a@b.io,c@d.io", "two [REDACTED_EMAIL],[REDACTED_EMAIL]"),
            (".dot@example.com", ".[REDACTED_EMAIL]"),
            (
                "ünïcode before a@b.de after ü",
                "ünïcode before [REDACTED_EMAIL] after ü",
            ),
            ("mailto:UPPER@EXAMPLE.COM", "mailto:[REDACTED_EMAIL]"),
        ] {
            assert_eq!(r(input, e), expected, "{input}");
        }
        for untouched in [
            "user@localhost",
            "@mention in a tweet",
            "a@b.c",
            "x@@y.com",
            "foo@.com",
            "foo@-bar.com",
            "price: 3@4.5",
            "no at sign here",
            "trailing@",
            "@",
            "a@b.123",
        ] {
            assert_eq!(redact(untouched, e), None, "{untouched}");
        }
    }

    #[test]
    fn phone_numbers_but_not_dates_ips_or_ids() {
        let p = only(false, true, false);
        for (input, expected) in [
            ("call +1 415 555 2671 today", "call [REDACTED_PHONE] today"),
            ("+14155552671", "[REDACTED_PHONE]"),
            ("(555) 123-4567", "[REDACTED_PHONE]"),
            ("tel: 555.123.4567.", "tel: [REDACTED_PHONE]."),
            ("UK 020 7946 0958", "UK [REDACTED_PHONE]"),
            ("+44 (20) 7946-0958", "[REDACTED_PHONE]"),
            ("1-800-555-0199, ext", "[REDACTED_PHONE], ext"),
            ("+33 1 23 45 67 89", "[REDACTED_PHONE]"),
            ("+49 30 901820", "[REDACTED_PHONE]"),
            (
                "a 555-123-4567 and 555-765-4321",
                "a [REDACTED_PHONE] and [REDACTED_PHONE]",
            ),
        ] {
            assert_eq!(r(input, p), expected, "{input}");
        }
        for untouched in [
            "on 2024-01-15 at 10:30",
            "from 2020-2024",
            "server 192.168.100.200 is up",
            "version 10.0.19041.1234",
            "pi is 3.14159265358979",
            "unix time 1700000000000",
            "order 12345678901",
            "card 4111-1111-1111-1111",
            "ISBN 978-3-16-148410-0",
            "uuid 123e4567-e89b-12d3-a456-426614174000",
            "abc555-123-4567",
            "555-123-4567x",
            "+123",
            "1 2 3",
            "v1.555.123.4567",
            "room 555-1234",
        ] {
            assert_eq!(redact(untouched, p), None, "{untouched}");
        }
    }

    #[test]
    fn secrets_by_prefix_shape_and_randomness() {
        let s = only(false, false, true);
        for (input, expected) in [
            (
                "key sk-proj-abcdefghijklmnop1234 done",
                "key [REDACTED_SECRET] done",
            ),
            ("OPENAI_API_KEY=sk-abcdefghijklmnopqrst", "OPENAI_API_KEY=[REDACTED_SECRET]"),
            ("sk-ant-api03-Zx9_kq-1234567890abcd", "[REDACTED_SECRET]"),
            ("aws AKIAIOSFODNN7EXAMPLE.", "aws [REDACTED_SECRET]."),
            ("ghp_16C7e42F292c6912E7710c838347Ae178B4a", "[REDACTED_SECRET]"),
            (
                "sha 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                "sha [REDACTED_SECRET]",
            ),
            (
                "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk end",
                "jwt [REDACTED_SECRET] end",
            ),
            (
                "Bearer dGhpcyBpcyBhIHRlc3Q0NTY3OA9Xk2LmQpZ3R0Yg==",
                "Bearer [REDACTED_SECRET]",
            ),
            ("'xoxb-1234567890-abcdefghijkl'", "'[REDACTED_SECRET]'"),
        ] {
            assert_eq!(r(input, s), expected, "{input}");
        }
        for untouched in [
            "use sk-learn for ML",
            "task-management-system-overview-with-many-words",
            "the word skeleton and asking",
            "AKIA is a prefix",
            "AKIAIOSFODNN7EXAMPL",
            "deadbeef",
            "0123456789012345678901234567890123456789",
            "abcdefabcdefabcdefabcdefabcdefabcdef",
            "src/components/UserProfile2024/index3.tsx",
            "getUserAccountSettingsForOrganization",
            "CONSTANT_NAME_WITH_DIGITS_2024_AND_MORE_TEXT",
            "eyJ not a jwt",
            "eyJhbGciOiJIUzI1NiJ9.only-two",
        ] {
            assert_eq!(redact(untouched, s), None, "{untouched}");
        }
    }

    #[test]
    fn categories_are_independent_and_overlaps_resolved() {
        let text = "sk-abcdefghijklmnopqrstuv@example.com +1 415 555 2671";
        assert_eq!(r(text, ALL), "[REDACTED_EMAIL] [REDACTED_PHONE]");
        assert_eq!(
            r(text, only(false, true, false)),
            "sk-abcdefghijklmnopqrstuv@example.com [REDACTED_PHONE]"
        );
        assert_eq!(redact("", ALL), None);
        assert_eq!(redact("nothing to see", ALL), None);
        assert_eq!(redact("a@b.io", Categories::default()), None);
    }

    #[test]
    fn never_panics_on_arbitrary_bytes_and_keeps_utf8() {
        let samples = [
            "@@@@",
            "++++",
            "((((",
            "))))",
            "+(",
            "+(1",
            "(1",
            "1)",
            "eyJ.",
            "eyJ..",
            "é@é.é",
            "1-",
            "-1",
            "+1 ",
            "a@b.co.",
            "📞 +1 415 555 2671 📞",
            "🔑sk-aaaaaaaaaaaaaaaaaaaa🔑",
        ];
        for s in samples {
            let out = r(s, ALL);
            assert!(std::str::from_utf8(out.as_bytes()).is_ok());
        }
        assert_eq!(r("📞 +1 415 555 2671 📞", ALL), "📞 [REDACTED_PHONE] 📞");
        assert_eq!(
            r("🔑sk-aaaaaaaaaaaaaaaaaaaa🔑", ALL),
            "🔑[REDACTED_SECRET]🔑"
        );
        // Linear time on a long hostile input.
        let long = "1-".repeat(100_000) + &"@a".repeat(100_000);
        let started = std::time::Instant::now();
        let _ = find(&long, ALL);
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
}
