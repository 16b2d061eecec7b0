//! The gateway's one wall clock: every reading of the time of day in this crate goes
//! through here.
//!
//! Why one module: wall time decides things (an auth key's expiry, which budget period
//! a request is charged to, usage-log retention, the `created` field of answers, the
//! history's "now" of a state export), and a reader or a test can only reason about
//! those decisions if there is one place the time comes from. It is the io driver's
//! wall clock ([`aurora_io::clock::unix_ms`], which also feeds the core's hybrid
//! logical clock and the store's history), so the gateway and its node never disagree
//! on what "now" is. Intervals and deadlines use monotonic clocks (`Instant`, tokio
//! time) instead and do not come from here.
//!
//! Before 1970 (a badly set clock) every reading is 0, never a panic. Tests that need a
//! fixed "now" inject it one level up (`policy::data::MemoryData`'s clock, the
//! `PolicyData::wall_ms` of a test double); `the_wall_clock_is_read_only_here` keeps
//! other modules from reading the system clock directly.

/// Milliseconds since the Unix epoch.
pub fn wall_ms() -> u64 {
    aurora_io::clock::unix_ms()
}

/// Whole seconds since the Unix epoch, for the `created` field of responses.
pub fn unix_seconds() -> u64 {
    wall_ms() / 1000
}

/// Nanoseconds since the Unix epoch, at the system clock's resolution: only a fallback
/// source of uniqueness (the id prefix when the OS random source fails), never a time
/// anything is judged by.
pub fn unix_nanos() -> u64 {
    u64::try_from(aurora_io::clock::unix_time().as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_agree_with_each_other() {
        let ms = wall_ms();
        let s = unix_seconds();
        let ns = unix_nanos();
        let after = wall_ms();
        // 2020-01-01 onwards: a real clock, not the 0 of a failed reading.
        assert!(ms > 1_577_836_800_000, "{ms}");
        assert!(s >= ms / 1000 && s <= after / 1000, "{s} vs {ms}..{after}");
        assert!(
            ns / 1_000_000 >= ms && ns / 1_000_000 <= after,
            "{ns} vs {ms}..{after}"
        );
    }

    /// Every module reads the time of day through this one: a mention of std's system
    /// clock or its epoch constant anywhere in `gateway/src` fails here, naming the file.
    #[test]
    fn the_wall_clock_is_read_only_here() {
        fn walk(dir: &std::path::Path, found: &mut Vec<String>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                panic!("cannot read {}", dir.display());
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, found);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    let needles = [concat!("System", "Time"), concat!("UNIX", "_EPOCH")];
                    if needles.iter().any(|n| text.contains(n)) {
                        found.push(path.display().to_string());
                    }
                }
            }
        }
        let mut found = Vec::new();
        walk(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut found,
        );
        assert!(
            found.is_empty(),
            "read the wall clock through crate::clock, not in {found:?}"
        );
    }
}
