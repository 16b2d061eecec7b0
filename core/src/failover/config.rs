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
    /// Whether this mode runs the lease protocol.
    pub fn elects(self) -> bool {
        !matches!(self, FailoverMode::SingleNode)
    }
}

/// Timing of the majority lease.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FailoverConfig {
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
    /// The number of voting members the cluster is meant to have (0: unknown, learn
    /// it from membership). Set it when nodes are bootstrapped in groups that may
    /// not see each other at first: a quorum is then a majority of at least this
    /// many, so two groups that never heard of each other cannot both elect (as
    /// Consul's `bootstrap_expect`). With 0, a quorum is at least 2 voters.
    pub expected_voters: u32,
}

impl Default for FailoverConfig {
    fn default() -> Self {
        FailoverConfig {
            mode: FailoverMode::SingleNode,
            lease: Duration::from_secs(3),
            renew_every: Duration::from_secs(1),
            max_drift: 0.01,
            hold_down: Duration::from_secs(10),
            expected_voters: 0,
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
        if self.expected_voters > 1024 {
            return Err(ConfigError::Invalid {
                field: "failover.expected_voters",
                expected: "at most 1024",
            });
        }
        Ok(())
    }
}
