//! Seed names to addresses, tolerant of names that do not exist yet.
//!
//! Why tolerant: in a Kubernetes StatefulSet the seed list names every founding pod
//! (`aurora-0.aurora-peers…`, `aurora-1.aurora-peers…`), and a pod's DNS record
//! exists only once that pod has an address. All pods start at once
//! (`podManagementPolicy: Parallel`), so at start-up some names do not resolve *yet*.
//! Failing the start on such a name would crash-loop the pods in turn; resolving
//! once and dropping it would leave a pod that started first alone for good.
//!
//! What holds:
//! * a malformed entry (`host:notaport`) is a configuration error at start (checked
//!   by [`crate::config`] before anything runs, and again here);
//! * a name that does not resolve is logged (warn), counted, and retried in the
//!   background with exponential backoff ([`RETRY_FIRST`] doubling to
//!   [`RETRY_MAX`]) for as long as the node runs; each address it resolves to is
//!   handed to the driver (`Command::AddSeeds`), so a node that started alone joins
//!   through it at once;
//! * the node's own address is never a seed (a node lists itself in a shared list);
//! * the retry task holds only a weak sender to the driver: it never keeps a
//!   stopped node alive, and ends when the driver ends.

use std::net::SocketAddr;
use std::time::Duration;

use crate::config::{split_seed, ClusterConfigError, DEFAULT_BIND_PORT};

/// First wait before retrying a name that did not resolve.
pub const RETRY_FIRST: Duration = Duration::from_millis(500);
/// Longest wait between two attempts at one name.
pub const RETRY_MAX: Duration = Duration::from_secs(30);

/// One parsed seed entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedName {
    /// The entry as configured (for logs and status).
    pub entry: String,
    pub host: String,
    pub port: u16,
}

impl SeedName {
    /// Parses `host:port`, `host` (default port) or `[v6]:port`.
    pub fn parse(entry: &str) -> Result<SeedName, ClusterConfigError> {
        let (host, port) = split_seed(entry)?;
        Ok(SeedName {
            entry: entry.trim().to_string(),
            host: host.to_string(),
            port: port.unwrap_or(DEFAULT_BIND_PORT),
        })
    }
}

/// What one resolution pass found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolution {
    /// Addresses of the names that resolved, without duplicates and without `own`.
    pub addrs: Vec<SocketAddr>,
    /// Names that did not resolve, with the resolver's error.
    pub unresolved: Vec<(SeedName, String)>,
    /// Whether some name resolved to `own` (this node is in its own seed list).
    pub lists_self: bool,
}

/// Resolves every name once. Only a malformed entry is an error.
pub async fn resolve(seeds: &[String], own: SocketAddr) -> Result<Resolution, ClusterConfigError> {
    let names = seeds
        .iter()
        .map(|s| SeedName::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Resolution::default();
    for name in names {
        match lookup(&name).await {
            Ok(addrs) => {
                for addr in addrs {
                    if addr == own {
                        out.lists_self = true;
                    } else if !out.addrs.contains(&addr) {
                        out.addrs.push(addr);
                    }
                }
            }
            Err(error) => out.unresolved.push((name, error)),
        }
    }
    Ok(out)
}

/// The addresses of `name`, or the resolver's error as text. A name that resolves
/// to nothing is an error too.
async fn lookup(name: &SeedName) -> Result<Vec<SocketAddr>, String> {
    match tokio::net::lookup_host((name.host.as_str(), name.port)).await {
        Ok(addrs) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if addrs.is_empty() {
                Err("no address".to_string())
            } else {
                Ok(addrs)
            }
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Where the retry task reports: the driver, through a weak sender.
pub(crate) trait SeedSink: Send + 'static {
    /// Hands over what one name resolved to (`own` already removed; may be empty
    /// when the name is this node). `pending` is how many names are still
    /// unresolved, `failures` the attempts that failed so far. `false` once the
    /// driver is gone: the task then ends.
    fn resolved(
        &self,
        addrs: Vec<SocketAddr>,
        pending: usize,
        failures: u64,
    ) -> impl std::future::Future<Output = bool> + Send;
    /// Reports a failed attempt (for the counters). `false` once the driver is gone.
    fn failed(
        &self,
        pending: usize,
        failures: u64,
    ) -> impl std::future::Future<Output = bool> + Send;
}

/// Logs the names that did not resolve at start, then retries them with backoff
/// until each resolves or the driver stops.
pub(crate) async fn retry_unresolved(
    unresolved: Vec<(SeedName, String)>,
    own: SocketAddr,
    sink: impl SeedSink,
) {
    let mut failures = unresolved.len() as u64;
    let mut pending: Vec<(SeedName, Duration)> = unresolved
        .into_iter()
        .map(|(name, error)| {
            tracing::warn!(
                seed = %name.entry,
                %error,
                retry_in_ms = RETRY_FIRST.as_millis() as u64,
                "seed does not resolve (yet); retrying in the background"
            );
            (name, RETRY_FIRST)
        })
        .collect();
    let mut due: Vec<tokio::time::Instant> = pending
        .iter()
        .map(|(_, wait)| tokio::time::Instant::now() + *wait)
        .collect();
    while !pending.is_empty() {
        let (i, at) = due
            .iter()
            .copied()
            .enumerate()
            .min_by_key(|(_, at)| *at)
            .unwrap_or((0, tokio::time::Instant::now()));
        tokio::time::sleep_until(at).await;
        let result = lookup(&pending[i].0).await;
        match result {
            Ok(addrs) => {
                let (name, _) = pending.remove(i);
                due.remove(i);
                let addrs: Vec<SocketAddr> = addrs.into_iter().filter(|a| *a != own).collect();
                tracing::info!(
                    seed = %name.entry,
                    addrs = ?addrs,
                    still_unresolved = pending.len(),
                    "seed resolved"
                );
                if !sink.resolved(addrs, pending.len(), failures).await {
                    return;
                }
            }
            Err(error) => {
                failures += 1;
                let wait = (pending[i].1 * 2).min(RETRY_MAX);
                pending[i].1 = wait;
                due[i] = tokio::time::Instant::now() + wait;
                tracing::warn!(
                    seed = %pending[i].0.entry,
                    %error,
                    retry_in_ms = wait.as_millis() as u64,
                    "seed still does not resolve"
                );
                if !sink.failed(pending.len(), failures).await {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// One report: addresses, names pending, failures so far.
    type Report = (Vec<SocketAddr>, usize, u64);

    /// Records what the task reports.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<Report>>>);

    impl SeedSink for Recorder {
        async fn resolved(&self, addrs: Vec<SocketAddr>, pending: usize, failures: u64) -> bool {
            self.0.lock().unwrap().push((addrs, pending, failures));
            true
        }
        async fn failed(&self, _pending: usize, _failures: u64) -> bool {
            true
        }
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_kept_not_fatal_and_a_bad_entry_is_an_error() {
        let own: SocketAddr = "127.0.0.1:7946".parse().unwrap();
        let seeds = vec![
            "127.0.0.1:7946".to_string(),
            "127.0.0.2:7946".to_string(),
            // `.invalid` never resolves (RFC 6761), so this needs no network.
            "aurora-1.aurora-peers.invalid:7946".to_string(),
        ];
        let r = resolve(&seeds, own)
            .await
            .expect("only a malformed entry fails");
        assert_eq!(r.addrs, vec!["127.0.0.2:7946".parse().unwrap()]);
        assert!(r.lists_self);
        assert_eq!(r.unresolved.len(), 1);
        assert_eq!(r.unresolved[0].0.host, "aurora-1.aurora-peers.invalid");

        let err = resolve(&["host:notaport".to_string()], own)
            .await
            .expect_err("malformed");
        assert!(err.to_string().contains("host:notaport"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn retries_back_off_and_stop_when_the_driver_is_gone() {
        struct Gone(Arc<Mutex<Vec<u64>>>);
        impl SeedSink for Gone {
            async fn resolved(&self, _: Vec<SocketAddr>, _: usize, _: u64) -> bool {
                false
            }
            async fn failed(&self, _pending: usize, failures: u64) -> bool {
                let mut seen = self.0.lock().unwrap();
                seen.push(failures);
                seen.len() < 3
            }
        }
        let seen = Arc::new(Mutex::new(Vec::new()));
        let name = SeedName::parse("never.invalid:7946").unwrap();
        let started = tokio::time::Instant::now();
        retry_unresolved(
            vec![(name, "start".into())],
            "127.0.0.1:7946".parse().unwrap(),
            Gone(seen.clone()),
        )
        .await;
        // Three failed retries after the start's: 0.5 + 1 + 2 s of backoff.
        assert_eq!(*seen.lock().unwrap(), vec![2, 3, 4]);
        assert!(started.elapsed() >= Duration::from_millis(3500));
    }

    #[tokio::test]
    async fn a_name_that_resolves_later_is_handed_over_without_own_address() {
        let rec = Recorder::default();
        let name = SeedName::parse("localhost:7950").unwrap();
        let own: SocketAddr = "127.0.0.1:7950".parse().unwrap();
        tokio::time::timeout(
            Duration::from_secs(10),
            retry_unresolved(vec![(name, "not yet".into())], own, rec.clone()),
        )
        .await
        .expect("resolves on the first retry");
        let got = rec.0.lock().unwrap().clone();
        assert_eq!(got.len(), 1);
        assert!(!got[0].0.contains(&own), "{got:?}");
        assert_eq!((got[0].1, got[0].2), (0, 1));
    }
}
