//! The gateway's one Prometheus text writer (exposition format 0.0.4).
//!
//! Every series the node exposes (request metrics here, connection caps in
//! `http::conn`, the usage log in `usage`, the cluster in `cluster::status`) is written
//! through an [`Exposition`], so the format rules live in one place: a family is its
//! `# HELP` and `# TYPE` lines followed by its samples, every label value is escaped
//! (`\`, `"`, newline), and a histogram's buckets are cumulative and end in `+Inf`,
//! with `_sum` and `_count`.
//!
//! Why not a metrics crate (`prometheus-client`, `prometheus`): their encoders write
//! OpenMetrics or reorder and rename families (`_total` suffix handling, `# EOF`,
//! `# UNIT`), and the exposition is an interface that the alert rules
//! (`deploy/prometheus/aurora-alerts.yaml`), their CI check, the runbook and the
//! tests read by name, label and HELP text. The registry such a crate brings would
//! hold nothing the owners of these counters do not already hold; what they lacked
//! was one writer.
//!
//! Writing to a `String` cannot fail, so the `fmt::Result`s are ignored here, once.

use std::fmt::{self, Display, Write as _};

/// A family's type, as its `# TYPE` line names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
    Summary,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
            Kind::Summary => "summary",
        }
    }
}

/// The labels of one sample: fixed names, values anything printable (escaped as they
/// are written).
pub type Labels<'a> = &'a [(&'a str, &'a dyn Display)];

/// An exposition being written: families in the order they are started.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
    /// The family samples are written under (set by [`Exposition::family`]).
    family: &'static str,
}

impl Exposition {
    /// An empty exposition.
    pub fn new() -> Self {
        Exposition {
            text: String::with_capacity(8192),
            family: "",
        }
    }

    /// Starts the family `name`: its `# HELP` and `# TYPE` lines. Samples written after
    /// it belong to it.
    pub fn family(&mut self, name: &'static str, help: &str, kind: Kind) -> &mut Self {
        self.family = name;
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {}", kind.as_str());
        self
    }

    /// One sample of the current family.
    pub fn sample(&mut self, labels: Labels<'_>, value: impl Display) -> &mut Self {
        self.line("", labels, None, value)
    }

    /// A family of one unlabelled sample (most gauges and counters).
    pub fn single(
        &mut self,
        name: &'static str,
        help: &str,
        kind: Kind,
        value: impl Display,
    ) -> &mut Self {
        self.family(name, help, kind).sample(&[], value)
    }

    /// One histogram of the current family: `counts[i]` observations fell at or below
    /// `bounds[i]` and above the previous bound (not cumulative); `counts` has one more
    /// slot than `bounds`, for `+Inf`. Written cumulatively, then `_sum` and `_count`.
    pub fn histogram(
        &mut self,
        labels: Labels<'_>,
        bounds: impl IntoIterator<Item = f64>,
        counts: &[u64],
        sum: f64,
    ) -> &mut Self {
        let mut cumulative = 0u64;
        let mut slots = counts.iter();
        for le in bounds {
            cumulative += slots.next().copied().unwrap_or(0);
            self.line("_bucket", labels, Some(&le), cumulative);
        }
        cumulative += slots.sum::<u64>();
        self.line("_bucket", labels, Some(&"+Inf"), cumulative);
        self.line("_sum", labels, None, sum);
        self.line("_count", labels, None, cumulative)
    }

    /// One summary of the current family without quantiles: `_sum` and `_count`.
    pub fn summary(&mut self, labels: Labels<'_>, sum: f64, count: u64) -> &mut Self {
        self.line("_sum", labels, None, sum);
        self.line("_count", labels, None, count)
    }

    /// The text written so far.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The finished text.
    pub fn into_string(self) -> String {
        self.text
    }

    fn line(
        &mut self,
        suffix: &str,
        labels: Labels<'_>,
        le: Option<&dyn Display>,
        value: impl Display,
    ) -> &mut Self {
        self.text.push_str(self.family);
        self.text.push_str(suffix);
        let le = le.map(|v| ("le", v));
        let mut all = labels.iter().copied().chain(le).peekable();
        if all.peek().is_some() {
            self.text.push('{');
            for (i, (name, value)) in all.enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                self.text.push_str(name);
                self.text.push_str("=\"");
                let _ = write!(Escaped(&mut self.text), "{value}");
                self.text.push('"');
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
        self
    }
}

/// Writes through to a string, escaping what a label value must not hold raw.
struct Escaped<'a>(&'a mut String);

impl fmt::Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            match c {
                '\\' => self.0.push_str("\\\\"),
                '"' => self.0.push_str("\\\""),
                '\n' => self.0.push_str("\\n"),
                c => self.0.push(c),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_samples_and_escaping() {
        let mut e = Exposition::new();
        e.family("a_total", "Things.", Kind::Counter)
            .sample(&[("k", &"x\"y\\z\nw"), ("status", &200u16)], 3)
            .sample(&[], 4);
        e.single("b", "One gauge.", Kind::Gauge, 7);
        assert_eq!(
            e.as_str(),
            "# HELP a_total Things.\n# TYPE a_total counter\n\
             a_total{k=\"x\\\"y\\\\z\\nw\",status=\"200\"} 3\na_total 4\n\
             # HELP b One gauge.\n# TYPE b gauge\nb 7\n"
        );
    }

    #[test]
    fn histograms_are_cumulative_with_inf_sum_and_count() {
        let mut e = Exposition::new();
        e.family("h_seconds", "H.", Kind::Histogram).histogram(
            &[("route", &"/r")],
            [0.5, 1.0],
            &[1, 0, 2],
            3.25,
        );
        e.family("u_seconds", "U.", Kind::Histogram)
            .histogram(&[], [0.001], &[0, 0], 0.0);
        e.family("s_seconds", "S.", Kind::Summary)
            .summary(&[], 1.5, 2);
        assert_eq!(
            e.into_string(),
            "# HELP h_seconds H.\n# TYPE h_seconds histogram\n\
             h_seconds_bucket{route=\"/r\",le=\"0.5\"} 1\n\
             h_seconds_bucket{route=\"/r\",le=\"1\"} 1\n\
             h_seconds_bucket{route=\"/r\",le=\"+Inf\"} 3\n\
             h_seconds_sum{route=\"/r\"} 3.25\nh_seconds_count{route=\"/r\"} 3\n\
             # HELP u_seconds U.\n# TYPE u_seconds histogram\n\
             u_seconds_bucket{le=\"0.001\"} 0\nu_seconds_bucket{le=\"+Inf\"} 0\n\
             u_seconds_sum 0\nu_seconds_count 0\n\
             # HELP s_seconds S.\n# TYPE s_seconds summary\ns_seconds_sum 1.5\ns_seconds_count 2\n"
        );
    }
}
