//! What an inbound QUIC handshake may cost this node, and who may start one.
//!
//! Why: the gossip port faces whatever network the node is on, and every handshake costs
//! memory and CPU (key exchange, certificate signature) before the peer has proved
//! anything. So, in the order the accept loop applies them:
//! 1. **Allow-list** (`cluster.allowed_peers`, optional): a packet from an address outside
//!    the listed networks is ignored before any crypto, and counted.
//! 2. **Address validation**: a peer whose address is not validated gets a stateless
//!    QUIC Retry; only a peer that echoes the token from its real address costs state.
//!    This stops spoofed-source floods and amplification.
//! 3. **A cap on handshakes in progress** (`cluster.max_handshakes`): beyond it, a new
//!    handshake is refused at once (counted) instead of queueing.
//! 4. **A handshake deadline** (`cluster.handshake_timeout_ms`): a handshake that has not
//!    finished by then is dropped (counted), so a peer that starts and stalls holds its
//!    slot for a bounded time.
//!
//! quinn's own buffers for not-yet-accepted handshakes are kept small as well
//! ([`QUINN_MAX_INCOMING`], [`QUINN_INCOMING_BUFFER`]).

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use crate::config::ClusterConfigError;

/// Default cap on inbound handshakes in progress. A cluster of tens of nodes that all
/// restart at once needs a few at a time; a flood needs many.
pub const DEFAULT_MAX_HANDSHAKES: usize = 32;
/// Default handshake deadline: a LAN handshake (with a Retry) takes milliseconds, a WAN
/// one well under a second.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Lifetime of a Retry token: long enough for one round trip on any real network.
pub const RETRY_TOKEN_LIFETIME: Duration = Duration::from_secs(10);
/// quinn's limit on handshakes received but not yet passed to the accept loop (which
/// takes each at once).
pub const QUINN_MAX_INCOMING: usize = 256;
/// Bytes quinn buffers for one such handshake, and for all of them.
pub const QUINN_INCOMING_BUFFER: u64 = 64 * 1024;
pub const QUINN_INCOMING_BUFFER_TOTAL: u64 = 1024 * 1024;

/// An IP network (`10.0.0.0/8`, `fd00::/8`, or one address).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PeerNetwork {
    base: IpAddr,
    prefix: u8,
}

impl PeerNetwork {
    /// Parses `addr/prefix` or a bare address (a single host). The base must have no
    /// bits set past the prefix, so a typo like `10.0.0.1/8` is an error, not a silent
    /// widening.
    pub fn parse(s: &str) -> Option<PeerNetwork> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let base: IpAddr = addr.parse().ok()?;
        let max = if base.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().ok()?
            }
            Some(_) => return None,
            None => max,
        };
        if prefix > max {
            return None;
        }
        let net = PeerNetwork { base, prefix };
        (mask(base, prefix) == bits(base)).then_some(net)
    }

    /// Whether `ip` lies in this network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.base.is_ipv4() && mask(ip, self.prefix) == bits(self.base)
    }
}

impl fmt::Display for PeerNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn mask(ip: IpAddr, prefix: u8) -> u128 {
    let width = if ip.is_ipv4() { 32 } else { 128 };
    let host_bits = u32::from(width - prefix.min(width));
    let keep = u128::MAX.checked_shl(host_bits).unwrap_or(0);
    let keep = if width == 32 {
        keep & u128::from(u32::MAX)
    } else {
        keep
    };
    bits(ip) & keep
}

/// The handshake policy of one endpoint (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandshakeLimits {
    /// Inbound handshakes in progress at once; more are refused.
    pub max_in_progress: usize,
    /// A handshake not finished by then is dropped.
    pub timeout: Duration,
    /// Networks inbound handshakes may come from; empty = anyone.
    pub allowed_peers: Vec<PeerNetwork>,
}

impl Default for HandshakeLimits {
    fn default() -> Self {
        HandshakeLimits {
            max_in_progress: DEFAULT_MAX_HANDSHAKES,
            timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            allowed_peers: Vec::new(),
        }
    }
}

impl HandshakeLimits {
    /// Whether an inbound handshake from `ip` may proceed.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allowed_peers.is_empty() || self.allowed_peers.iter().any(|n| n.contains(ip))
    }

    /// Validates the `cluster.allowed_peers`, `cluster.max_handshakes` and
    /// `cluster.handshake_timeout_ms` values of the configuration.
    pub fn from_config(
        allowed_peers: Option<&[String]>,
        max_handshakes: Option<usize>,
        timeout_ms: Option<u64>,
    ) -> Result<HandshakeLimits, ClusterConfigError> {
        let invalid = |key: &str, expected: &str, got: String| ClusterConfigError::Invalid {
            key: key.into(),
            expected: expected.into(),
            got,
        };
        let mut limits = HandshakeLimits::default();
        if let Some(n) = max_handshakes {
            if !(1..=4096).contains(&n) {
                return Err(invalid(
                    "cluster.max_handshakes",
                    "a whole number from 1 to 4096",
                    n.to_string(),
                ));
            }
            limits.max_in_progress = n;
        }
        if let Some(ms) = timeout_ms {
            if !(100..=60_000).contains(&ms) {
                return Err(invalid(
                    "cluster.handshake_timeout_ms",
                    "milliseconds from 100 to 60000",
                    ms.to_string(),
                ));
            }
            limits.timeout = Duration::from_millis(ms);
        }
        for s in allowed_peers.unwrap_or_default() {
            let net = PeerNetwork::parse(s).ok_or_else(|| {
                invalid(
                    "cluster.allowed_peers",
                    "a list of networks such as 10.0.0.0/8, fd00::/8 or single addresses \
                     (no bits set past the prefix)",
                    s.clone(),
                )
            })?;
            limits.allowed_peers.push(net);
        }
        Ok(limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn networks_parse_and_contain() {
        let net = PeerNetwork::parse("10.1.0.0/16").expect("net");
        assert!(net.contains(ip("10.1.255.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(!net.contains(ip("::1")), "families never match");
        assert!(
            net.contains(ip("::ffff:10.1.0.9")),
            "v4-mapped counts as v4"
        );
        let host = PeerNetwork::parse("127.0.0.2").expect("host");
        assert!(host.contains(ip("127.0.0.2")) && !host.contains(ip("127.0.0.3")));
        let all = PeerNetwork::parse("0.0.0.0/0").expect("all");
        assert!(all.contains(ip("203.0.113.9")));
        let v6 = PeerNetwork::parse("fd00::/8").expect("v6");
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        assert!(PeerNetwork::parse("::/0")
            .expect("any6")
            .contains(ip("2001:db8::1")));
        for bad in [
            "10.0.0.1/8",
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "fd00::/129",
            "nope",
            "",
        ] {
            assert_eq!(PeerNetwork::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn config_values_are_validated_naming_the_key() {
        let err =
            |r: Result<HandshakeLimits, ClusterConfigError>| r.expect_err("refused").to_string();
        let bad = ["10.0.0.1/8".to_string()];
        assert!(err(HandshakeLimits::from_config(Some(&bad), None, None))
            .contains("cluster.allowed_peers"));
        assert!(err(HandshakeLimits::from_config(None, Some(0), None))
            .contains("cluster.max_handshakes"));
        assert!(err(HandshakeLimits::from_config(None, None, Some(5)))
            .contains("cluster.handshake_timeout_ms"));
        let ok = HandshakeLimits::from_config(None, None, None).expect("defaults");
        assert_eq!(ok, HandshakeLimits::default());
        assert!(ok.allows(ip("198.51.100.1")), "no list: anyone may try");
    }
}
