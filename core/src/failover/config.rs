//! Failover settings. They are part of the config fingerprint: two nodes that
//! disagree on any of them must not elect each other, because the lease arithmetic
//! below is only safe when every voter uses the same `lease` and `max_drift`.

use core::time::Duration;
use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// How the cluster uses its leader.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailoverMode {
    /// No failover: every node serves on its own and is its own leader. No messages.
    #[default]
    SingleNode,
    /// Only the lease holder serves; standbys report not-ready and name it.
    ActivePassive,
    /// Every serving node serves; the lease holder also runs singleton duties.
    ActiveActive,
}

impl FailoverMode {
    /// Every mode, in the order the configuration docs list them.
    pub const ALL: [FailoverMode; 3] = [
        FailoverMode::SingleNode,
        FailoverMode::ActivePassive,
        FailoverMode::ActiveActive,
    ];

    /// Whether this mode runs the lease protocol.
    pub fn elects(self) -> bool {
        !matches!(self, FailoverMode::SingleNode)
    }

    /// The configuration's (and serde's) name: `single_node`, `active_passive`,
    /// `active_active`. Also part of the config fingerprint, so it never changes.
    pub fn as_str(self) -> &'static str {
        match self {
            FailoverMode::SingleNode => "single_node",
            FailoverMode::ActivePassive => "active_passive",
            FailoverMode::ActiveActive => "active_active",
        }
    }
}

impl core::fmt::Display for FailoverMode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses the names of [`FailoverMode::as_str`] (surrounding whitespace ignored), as
/// an environment variable or flag gives them.
impl core::str::FromStr for FailoverMode {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<FailoverMode, ConfigError> {
        let s = s.trim();
        FailoverMode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or(ConfigError::Invalid {
                field: "failover_mode",
                expected: "one of single_node, active_passive, active_active",
            })
    }
}

/// Timing of the majority lease.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FailoverConfig {
    /// `single_node` (no election: every node serves), `active_passive` (one lease holder
    /// serves) or `active_active` (every serving node serves; the lease still names a
    /// leader).
    pub mode: FailoverMode,
    /// How long a voter's promise lasts, on the voter's clock, from when it received
    /// the request (stretched by `1 + max_drift`). The holder's own lease is shorter.
    pub lease: Duration,
    /// How often the holder renews. Must leave room for at least two renewals per
    /// lease, so one lost round trip never costs the lease.
    pub renew_every: Duration,
    /// Bound on how fast or slow any node's clock may run relative to real time,
    /// as a ratio (0.01: up to 1 % fast or slow). Safety holds only within it.
    pub max_drift: f64,
    /// A better-ranked node is not handed the lease before it has been live this
    /// long, so a node that flaps does not drag leadership along with it.
    pub hold_down: Duration,
    /// How many founding members elect the first leader (Consul's
    /// `bootstrap_expect`). Set it, to the same value, on the nodes that start a
    /// new cluster: the first lease needs a grant from every one of them, and its
    /// holder makes them the first voter roster. Leave it 0 on nodes that join an
    /// existing cluster: they never bootstrap and wait for the leader to admit
    /// them. Safe only if no more than this many nodes are started with it.
    pub expected_voters: u32,
    /// The most voters the roster takes; further members serve (in
    /// `active_active`) and follow the leader but neither vote nor lead. Small
    /// odd numbers (3, 5, 7) are what majority protocols are built for.
    pub max_voters: u32,
}

impl Default for FailoverConfig {
    fn default() -> Self {
        FailoverConfig {
            mode: FailoverMode::SingleNode,
            // 2.8 s rather than 3: a crashed leader's voters release their
            // promise at most lease × (1 + drift) after its last renewal, so the
            // worst-case failover is ≈ 2.83 s plus one round trip (goal: 3 s).
            lease: Duration::from_millis(2800),
            renew_every: Duration::from_secs(1),
            max_drift: 0.01,
            hold_down: Duration::from_secs(10),
            expected_voters: 0,
            max_voters: 7,
        }
    }
}

impl FailoverConfig {
    /// The defaults in `mode`.
    pub fn with_mode(mode: FailoverMode) -> FailoverConfig {
        FailoverConfig {
            mode,
            ..FailoverConfig::default()
        }
    }

    /// Checks the relations the safety argument relies on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(0.0..0.25).contains(&self.max_drift) || self.max_drift.is_nan() {
            return Err(ConfigError::Invalid {
                field: "failover.max_drift",
                expected: "a ratio in [0, 0.25)",
            });
        }
        if self.renew_every.as_millis() == 0 {
            return Err(ConfigError::Invalid {
                field: "failover.renew_every",
                expected: "a duration of at least 1 ms",
            });
        }
        // The holder's usable lease is lease × (1 − drift) − margin from when it
        // sent the request; two renewals must fit in it.
        let usable = crate::time::scale(self.lease, 1.0 - self.max_drift)
            .saturating_sub(super::SAFETY_MARGIN);
        if usable < self.renew_every * 2 {
            return Err(ConfigError::Invalid {
                field: "failover.renew_every",
                expected: "at most half of lease × (1 − max_drift)",
            });
        }
        if self.lease > Duration::from_secs(3600) || self.hold_down > Duration::from_secs(86_400) {
            return Err(ConfigError::Invalid {
                field: "failover.lease",
                expected: "lease at most 1 h and hold_down at most 24 h",
            });
        }
        if !(1..=64).contains(&self.max_voters) {
            return Err(ConfigError::Invalid {
                field: "failover.max_voters",
                expected: "1 to 64",
            });
        }
        if self.expected_voters > self.max_voters {
            return Err(ConfigError::Invalid {
                field: "failover.expected_voters",
                expected: "at most failover.max_voters",
            });
        }
        Ok(())
    }
}
