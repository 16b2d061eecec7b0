//! Configuration the core is built with: who this node is and how fast it talks.
//!
//! Defaults follow HashiCorp memberlist's LAN profile (probe every 1 s, 500 ms probe
//! timeout, 3 indirect checks, suspicion multiplier 4, gossip to 3 members every
//! 200 ms), because those values are battle-tested for data-centre networks.

use core::time::Duration;
use serde::{Deserialize, Serialize};

use crate::id::{Addr, ClusterId, Life, NodeId};

/// Timing and fan-out of the membership protocol. Every field is tunable; use
/// [`Timing::lan`] or [`Timing::wan`] as a starting point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// How often a member is probed.
    pub probe_interval: Duration,
    /// How long to wait for a direct ack before asking others to probe.
    pub probe_timeout: Duration,
    /// How many members are asked to probe indirectly.
    pub indirect_checks: usize,
    /// Suspicion lasts at least `suspicion_mult × max(1, log10 N) × probe_interval`.
    pub suspicion_mult: u32,
    /// ... and at most `suspicion_max_timeout_mult` times that, before confirmations.
    pub suspicion_max_timeout_mult: u32,
    /// Each rumour is retransmitted `retransmit_mult × ceil(log10(N + 1))` times.
    pub retransmit_mult: u32,
    /// The same for replicated writes. Lower than for membership: a missed write
    /// is repaired by anti-entropy within a sync interval, so fewer copies buy
    /// less duplicate traffic (application broadcasts keep `retransmit_mult`).
    pub data_retransmit_mult: u32,
    /// How many members receive each gossip round.
    pub gossip_nodes: usize,
    /// How often a gossip round runs.
    pub gossip_interval: Duration,
    /// Dead members keep receiving gossip for this long, so they learn they were
    /// declared dead and can refute.
    pub gossip_to_the_dead: Duration,
    /// How often a full membership exchange runs with one random member.
    pub push_pull_interval: Duration,
    /// How often this node's heartbeat counter is bumped.
    pub heartbeat_interval: Duration,
    /// A dead or departed member is removed from the member list after this long.
    pub reap_after: Duration,
    /// A removed member's last incarnation is remembered this long, so stale state
    /// from a lagging peer cannot bring it back (memberlist #312).
    pub tombstone_ttl: Duration,
    /// Upper bound of the Lifeguard local-health multiplier.
    pub awareness_max_multiplier: u32,
    /// How often a push-pull is tried with a failed member, to heal partitions.
    pub reconnect_interval: Duration,
    /// How often an unanswered join is retried.
    pub join_retry: Duration,
    /// How long a leaving node keeps gossiping its departure before it stops.
    pub leave_propagate: Duration,
    /// Largest datagram the node sends; piggybacked rumours fill up to this size.
    pub max_datagram: usize,
}

impl Timing {
    /// Data-centre defaults (memberlist's `DefaultLANConfig`).
    pub fn lan() -> Timing {
        Timing {
            probe_interval: Duration::from_millis(1000),
            probe_timeout: Duration::from_millis(500),
            indirect_checks: 3,
            suspicion_mult: 4,
            suspicion_max_timeout_mult: 6,
            retransmit_mult: 4,
            data_retransmit_mult: 2,
            gossip_nodes: 3,
            gossip_interval: Duration::from_millis(200),
            gossip_to_the_dead: Duration::from_secs(30),
            push_pull_interval: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(1),
            reap_after: Duration::from_secs(30),
            tombstone_ttl: Duration::from_secs(24 * 3600),
            awareness_max_multiplier: 8,
            reconnect_interval: Duration::from_secs(10),
            join_retry: Duration::from_secs(1),
            leave_propagate: Duration::from_secs(1),
            // QUIC datagrams hold about 1150 bytes at quinn's initial 1200-byte
            // packets; memberlist's 1400 assumes raw UDP.
            max_datagram: 1100,
        }
    }

    /// Wide-area defaults (memberlist's `DefaultWANConfig`).
    pub fn wan() -> Timing {
        Timing {
            probe_interval: Duration::from_secs(5),
            probe_timeout: Duration::from_secs(3),
            suspicion_mult: 6,
            push_pull_interval: Duration::from_secs(60),
            gossip_interval: Duration::from_millis(500),
            gossip_nodes: 4,
            ..Timing::lan()
        }
    }

    /// Checks the relations between fields that the protocol relies on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("probe_interval", self.probe_interval),
            ("probe_timeout", self.probe_timeout),
            ("gossip_interval", self.gossip_interval),
            ("push_pull_interval", self.push_pull_interval),
            ("heartbeat_interval", self.heartbeat_interval),
            ("join_retry", self.join_retry),
            ("reconnect_interval", self.reconnect_interval),
        ];
        for (field, d) in positive {
            if d.as_millis() == 0 {
                return Err(ConfigError::Invalid {
                    field,
                    expected: "a duration of at least 1 ms",
                });
            }
        }
        if self.probe_timeout >= self.probe_interval {
            return Err(ConfigError::Invalid {
                field: "probe_timeout",
                expected: "less than probe_interval",
            });
        }
        if self.suspicion_mult < 2 || self.suspicion_max_timeout_mult < 1 {
            return Err(ConfigError::Invalid {
                field: "suspicion_mult",
                expected: "suspicion_mult >= 2 and suspicion_max_timeout_mult >= 1",
            });
        }
        if self.retransmit_mult == 0
            || self.data_retransmit_mult == 0
            || self.awareness_max_multiplier == 0
        {
            return Err(ConfigError::Invalid {
                field: "retransmit_mult",
                expected: "retransmit_mult, data_retransmit_mult and awareness_max_multiplier >= 1",
            });
        }
        // Peers drop datagrams above MAX_DATAGRAM, so a node must never fill one past it.
        if !(512..=crate::wire::MAX_DATAGRAM).contains(&self.max_datagram) {
            return Err(ConfigError::Invalid {
                field: "max_datagram",
                expected: "between 512 and 65536 bytes",
            });
        }
        Ok(())
    }
}

impl Default for Timing {
    fn default() -> Self {
        Timing::lan()
    }
}

/// A configuration that cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid `{field}`: expected {expected}")]
    /// `field` (as the configuration names it) is out of range.
    Invalid {
        /// The setting, as the configuration names it.
        field: &'static str,
        /// What would be accepted.
        expected: &'static str,
    },
}

/// Whether a member serves traffic. A witness votes in leader elections but never
/// leads and never serves, so two serving nodes plus a witness can fail over safely.
///
/// Serde names are the configuration's (`serving`, `witness`: the io config parses
/// `cluster.role` straight into this type); the wire encoding (postcard) numbers
/// variants and does not see the names.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    #[default]
    /// Serves traffic and may lead.
    Serving,
    /// Votes in elections (so two serving nodes plus a witness have a majority after one
    /// fails), never leads, never serves.
    Witness,
}

/// Everything a member tells the cluster about itself. It travels inside `Alive`
/// rumours and push-pull records; a change is announced with a new incarnation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberMeta {
    /// The operator's name for the node (the configured `node_id`), for people: not an
    /// identity.
    pub name: String,
    /// Where it runs, as the operator names it (shown, not interpreted by the core).
    pub region: String,
    /// The zone within the region (shown, not interpreted by the core).
    pub zone: String,
    /// The gateway's public URL (empty or `http(s)://…`), so a client or proxy can be sent
    /// to the leader.
    pub advertise_url: String,
    /// The address announced for state sync (shown; sync rides on the gossip endpoint's
    /// streams).
    pub sync_addr: Addr,
    /// 0 (preferred) to 15, as in Aurora/RDS promotion tiers.
    pub promotion_tier: u8,
    /// Relative capacity: among equal tiers the higher one is preferred as leader.
    pub capacity: u32,
    /// Serving or witness.
    pub role: Role,
    /// The build's version, for the operator's view of a rolling upgrade.
    pub version: String,
    /// Hash of the settings that must agree across the cluster.
    pub config_fingerprint: u64,
    /// This node's `failover.expected_voters`: more than 0 on a founding member,
    /// which takes part in electing the cluster's first leader (the others never
    /// rank a newcomer, which waits to be admitted, at bootstrap).
    pub bootstrap_expect: u32,
}

impl MemberMeta {
    /// Longest string field accepted on the wire, in bytes.
    pub const MAX_STR: usize = 256;
    /// Highest promotion tier.
    pub const MAX_TIER: u8 = 15;

    /// Checks the limits a decoded or configured record must respect.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, s) in [
            ("name", &self.name),
            ("region", &self.region),
            ("zone", &self.zone),
            ("advertise_url", &self.advertise_url),
            ("version", &self.version),
        ] {
            if s.len() > Self::MAX_STR {
                return Err(ConfigError::Invalid {
                    field,
                    expected: "at most 256 bytes",
                });
            }
        }
        if self.promotion_tier > Self::MAX_TIER {
            return Err(ConfigError::Invalid {
                field: "promotion_tier",
                expected: "0 to 15",
            });
        }
        Ok(())
    }
}

/// Who this node is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The node's id: names its role in the cluster across restarts and disk losses.
    pub id: NodeId,
    /// The storage life this process speaks with (see [`Life`]): derived by the
    /// driver from the node's own key pair, which lives with its data directory.
    pub life: Life,
    /// The gossip address peers reach this node at.
    pub addr: Addr,
    /// What it announces to the cluster (must pass [`MemberMeta::validate`]).
    pub meta: MemberMeta,
}

/// Everything a [`crate::Node`] is built from.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The cluster every packet is stamped with; packets of another are dropped.
    pub cluster: ClusterId,
    /// SWIM and Lifeguard timing.
    pub timing: Timing,
    /// Timing of the replicated state: gossip, anti-entropy, usage flush, tombstone TTL,
    /// clock skew bound.
    pub state: crate::state::replica::StateTiming,
    /// Failover mode, lease timing and voters.
    pub failover: crate::failover::FailoverConfig,
    /// How an id this node has no binding for is treated (see
    /// [`Bindings`](crate::Bindings)): bound on first contact, or held for an operator.
    pub admission: crate::identity::Admission,
}

impl Config {
    /// Checks the SWIM timing; `Node::new` also checks the failover settings and the
    /// identity's metadata, so a node that was built runs with settings it accepts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.timing.validate()
    }
}
