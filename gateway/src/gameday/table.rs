//! The game day's tables, as Markdown (pasted as they are into docs/operations.md).

use super::load::ClientStats;

/// One table row per kind of client.
pub fn clients(stats: &[ClientStats]) -> String {
    let mut out = String::from(
        "| client | requests sent | failed | ok after a refused retry | longest error window | failures by kind |\n|---|---:|---:|---:|---:|---|\n",
    );
    for s in stats {
        let kinds = if s.failures.is_empty() {
            "-".to_owned()
        } else {
            s.failures
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {}{} | {} |\n",
            s.client,
            s.sent,
            s.failed,
            s.retried_ok,
            ms(Some(s.longest_error_window_ms)),
            if s.window_open_at_end {
                " (still open at the end)"
            } else {
                ""
            },
            kinds
        ));
    }
    out
}

/// `1234 ms`, or `-` when not measured.
pub fn ms(value: Option<u64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v} ms"))
}

/// The first failure of each kind, one line each (empty when nothing failed).
pub fn examples(stats: &[ClientStats]) -> String {
    let mut out = String::new();
    for s in stats {
        for (kind, example) in &s.examples {
            out.push_str(&format!("{}: first {kind}: {example}\n", s.client));
        }
    }
    out
}
