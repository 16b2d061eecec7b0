//! The run's trace: a stable hash of everything that happened, and, when asked for,
//! the readable lines behind it.
//!
//! Every delivered message (its time, receiver and bytes) and every event feeds the
//! hash, so two runs with the same hash made the same decisions in the same order.
//! The lines are only formatted when a replay wants them: formatting costs more than
//! the simulation itself.

use aurora_core::Fnv64;
use aurora_core::Millis;

#[derive(Clone, Debug, Default)]
pub struct Trace {
    hash: Fnv64,
    lines: Option<Vec<String>>,
}

impl Trace {
    pub fn new(keep_lines: bool) -> Trace {
        Trace {
            hash: Fnv64::new(),
            lines: keep_lines.then(Vec::new),
        }
    }

    /// A message delivery: hashed, never printed (there are too many).
    pub fn delivery(&mut self, at: Millis, to: usize, bytes: &[u8]) {
        self.hash.write_u64(at.0);
        self.hash.write_u64(to as u64);
        self.hash.write(bytes);
    }

    /// An event worth reading: hashed, and kept as a line when replaying.
    pub fn event(&mut self, at: Millis, who: &str, what: impl FnOnce() -> String) {
        let line = what();
        self.hash.write_u64(at.0);
        self.hash.write(who.as_bytes());
        self.hash.write(line.as_bytes());
        if let Some(lines) = self.lines.as_mut() {
            lines.push(format!("{:>10} {:<6} {}", at.to_string(), who, line));
        }
    }

    /// A report that follows from what is already hashed (the deliveries and
    /// events before it), kept as a line when replaying but not hashed, so adding
    /// such a report to the core leaves every seed's trace hash as it was.
    pub fn note(&mut self, at: Millis, who: &str, what: impl FnOnce() -> String) {
        if let Some(lines) = self.lines.as_mut() {
            lines.push(format!("{:>10} {:<6} {}", at.to_string(), who, what()));
        }
    }

    pub fn hash(&self) -> u64 {
        self.hash.finish()
    }

    pub fn take_lines(&mut self) -> Vec<String> {
        self.lines.take().unwrap_or_default()
    }
}
