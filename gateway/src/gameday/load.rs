//! Steady client traffic for a game day, and what the clients saw.
//!
//! Two kinds of client run side by side, each a thread sending one chat completion
//! (`mock/echo`, a fresh connection per request, 5 s timeout) at a fixed rate:
//!
//! - **direct**: one per node, pinned to it, as a client configured with that node's
//!   URL. On *connection refused* (nothing was sent, so it is safe) it retries at once on
//!   the next node of the list, each node at most once; any other failure (reset,
//!   timeout, a non-200 answer) is final and counted as failed.
//! - **ready-routed**: one client behind a load balancer that health-checks every
//!   node's `/health/ready` every `lb_interval` and sends to the first ready one (the
//!   last one seen ready while none is), retrying on *connection refused* like the
//!   direct clients. This is what an active_passive deployment is meant to run behind.
//!
//! Retry policy in one line: retry only on connection refused, once per other node,
//! no back-off; everything else fails the request.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::probe::{self, ProbeError};

/// The timeout of one client request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const BODY: &str = r#"{"model":"mock/echo","messages":[{"role":"user","content":"game day"}]}"#;

/// One node as the clients reach it.
#[derive(Clone, Debug)]
pub struct Target {
    pub name: String,
    pub url: String,
    pub addr: SocketAddr,
}

/// One request as its client saw it (times since the load started).
#[derive(Clone, Debug)]
pub struct Outcome {
    pub started: Duration,
    pub ended: Duration,
    /// The failure's label, `None` when the answer was 200.
    pub failure: Option<String>,
    /// What exactly went wrong (the error, or the answer's start), for the examples.
    pub detail: Option<String>,
    /// Connection-refused retries before the final answer.
    pub retries: u32,
}

/// Running clients; [`Load::stop`] ends them and returns what they saw.
pub struct Load {
    stop: Arc<AtomicBool>,
    lanes: Vec<(String, JoinHandle<Vec<Outcome>>)>,
    checker: Option<JoinHandle<LbView>>,
    pub t0: Instant,
}

/// What one kind of client saw.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ClientStats {
    pub client: String,
    pub sent: usize,
    pub failed: usize,
    /// Requests that succeeded after at least one connection-refused retry.
    pub retried_ok: usize,
    /// The longest error window of any one client of this kind, ms (see the docs).
    pub longest_error_window_ms: u64,
    /// Whether that window was still open when the load stopped.
    pub window_open_at_end: bool,
    pub failures: BTreeMap<String, usize>,
    /// The first failure of each kind, in full (an error message or an answer).
    pub examples: BTreeMap<String, String>,
}

impl Load {
    /// [`Load::start`] with the rate, health-check interval and key of the flags.
    pub fn from_flags(targets: &[Target], common: &super::Common) -> Load {
        Load::start(
            targets,
            common.rate,
            Duration::from_millis(common.lb_interval_ms),
            common.api_key.clone(),
        )
    }

    /// Starts `rate` requests per second on each direct client (one per target) and on
    /// one ready-routed client, with `api_key` as bearer if given.
    pub fn start(
        targets: &[Target],
        rate: f64,
        lb_interval: Duration,
        api_key: Option<String>,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let t0 = Instant::now();
        let interval = Duration::from_secs_f64(1.0 / rate.max(0.1));
        let addrs: Arc<Vec<SocketAddr>> = Arc::new(targets.iter().map(|t| t.addr).collect());
        let mut lanes = Vec::new();
        for (i, t) in targets.iter().enumerate() {
            let pick: Picker = Arc::new(move || i);
            lanes.push((
                format!("direct {}", t.name),
                spawn_lane(
                    stop.clone(),
                    t0,
                    interval,
                    addrs.clone(),
                    pick,
                    api_key.clone(),
                ),
            ));
        }
        let routed = Arc::new(Mutex::new(0usize));
        let checker = {
            let (stop, addrs, routed) = (stop.clone(), addrs.clone(), routed.clone());
            std::thread::spawn(move || health_checker(&stop, &addrs, &routed, lb_interval))
        };
        let pick: Picker = Arc::new(move || {
            *routed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        });
        lanes.push((
            "ready-routed".to_owned(),
            spawn_lane(stop.clone(), t0, interval, addrs, pick, api_key),
        ));
        Load {
            stop,
            lanes,
            checker: Some(checker),
            t0,
        }
    }

    /// Stops every client (in-flight requests finish) and summarises: the direct
    /// clients together, then the ready-routed one; and the longest time the load
    /// balancer's health check found no node ready (see [`health_checker`]).
    pub fn stop(mut self) -> (Vec<ClientStats>, LbView) {
        self.stop.store(true, Ordering::Relaxed);
        let lb = match self.checker.take() {
            Some(checker) => checker.join().unwrap_or_default(),
            None => LbView::default(),
        };
        let mut direct = Vec::new();
        let mut routed = Vec::new();
        for (name, lane) in self.lanes.drain(..) {
            let outcomes = lane.join().unwrap_or_default();
            if name.starts_with("direct") {
                direct.push(outcomes);
            } else {
                routed.push(outcomes);
            }
        }
        let n = direct.len();
        let stats = vec![
            summarise(&format!("direct, {n} clients (one per node)"), &direct),
            summarise("ready-routed (load balancer on /health/ready)", &routed),
        ];
        (stats, lb)
    }
}

type Picker = Arc<dyn Fn() -> usize + Send + Sync>;

fn spawn_lane(
    stop: Arc<AtomicBool>,
    t0: Instant,
    interval: Duration,
    addrs: Arc<Vec<SocketAddr>>,
    pick: Picker,
    api_key: Option<String>,
) -> JoinHandle<Vec<Outcome>> {
    std::thread::spawn(move || {
        let mut outcomes = Vec::new();
        let mut next = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            }
            // A slow answer delays the next request; no burst to catch up.
            next = (next + interval).max(Instant::now());
            let started = t0.elapsed();
            let (failed, retries) = send(&addrs, pick(), api_key.as_deref());
            let (failure, detail) = failed.unzip();
            outcomes.push(Outcome {
                started,
                ended: t0.elapsed(),
                failure,
                detail,
                retries,
            });
        }
        outcomes
    })
}

/// One request under the retry policy: the failure's label and detail (`None`: 200),
/// and the retries.
fn send(
    addrs: &[SocketAddr],
    first: usize,
    api_key: Option<&str>,
) -> (Option<(String, String)>, u32) {
    let n = addrs.len();
    let mut retries = 0;
    for k in 0..n {
        let addr = addrs[(first + k) % n];
        match probe::request(
            addr,
            "POST",
            "/v1/chat/completions",
            api_key,
            Some(BODY),
            REQUEST_TIMEOUT,
        ) {
            Ok(reply) if reply.status == 200 => return (None, retries),
            Ok(reply) => {
                let code = reply.json()["error"]["code"].as_str().map(str::to_owned);
                let detail: String = reply.body.chars().take(300).collect();
                return (
                    Some((
                        format!(
                            "http_{}{}",
                            reply.status,
                            code.map(|c| format!("_{c}")).unwrap_or_default()
                        ),
                        detail,
                    )),
                    retries,
                );
            }
            Err(ProbeError::Refused(_)) => retries += 1,
            Err(e) => return (Some((e.label().to_owned(), e.to_string())), retries),
        }
    }
    (
        Some((
            "all_refused".to_owned(),
            "every node refused the connection".to_owned(),
        )),
        retries,
    )
}

/// What the load balancer's health check saw over the run: the longest stretch with
/// no node ready (from the first check that found none to the first that found one
/// again: a load balancer that fails closed refuses clients for about that long; this
/// one keeps sending to the last ready node), and the longest with two or more ready
/// at once (in active_passive: two nodes both saying they are the active one).
#[derive(Clone, Copy, Debug, Default)]
pub struct LbView {
    pub no_ready: Duration,
    pub several_ready: Duration,
}

/// The longest stretch of checks for which a condition held.
#[derive(Default)]
struct Stretch {
    since: Option<Instant>,
    longest: Duration,
}

impl Stretch {
    fn observe(&mut self, holds: bool) {
        match (holds, self.since) {
            (true, None) => self.since = Some(Instant::now()),
            (false, Some(since)) => {
                self.longest = self.longest.max(since.elapsed());
                self.since = None;
            }
            _ => {}
        }
    }

    fn end(mut self) -> Duration {
        self.observe(false);
        self.longest
    }
}

/// The load balancer's health check: routes to the first node whose `/health/ready`
/// is 200, every `every`.
fn health_checker(
    stop: &AtomicBool,
    addrs: &[SocketAddr],
    routed: &Mutex<usize>,
    every: Duration,
) -> LbView {
    let (mut none, mut several) = (Stretch::default(), Stretch::default());
    while !stop.load(Ordering::Relaxed) {
        let ready: Vec<usize> = (0..addrs.len())
            .filter(|&i| {
                matches!(probe::request(addrs[i], "GET", "/health/ready", None, None, Duration::from_millis(500)), Ok(r) if r.status == 200)
            })
            .collect();
        if let Some(&i) = ready.first() {
            *routed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = i;
        }
        none.observe(ready.is_empty());
        several.observe(ready.len() > 1);
        std::thread::sleep(every);
    }
    LbView {
        no_ready: none.end(),
        several_ready: several.end(),
    }
}

/// Totals over `lanes` of one kind, and the longest error window of any of them.
///
/// A client's error window opens when a request fails after a success (or at its first
/// request) — at that request's start — and closes at the end of its next successful
/// request; a window still open when the load stops ends at its last failure's end.
pub fn summarise(client: &str, lanes: &[Vec<Outcome>]) -> ClientStats {
    let mut stats = ClientStats {
        client: client.to_owned(),
        sent: 0,
        failed: 0,
        retried_ok: 0,
        longest_error_window_ms: 0,
        window_open_at_end: false,
        failures: BTreeMap::new(),
        examples: BTreeMap::new(),
    };
    for lane in lanes {
        let mut open: Option<Duration> = None;
        let mut last_failure_end = Duration::ZERO;
        for o in lane {
            stats.sent += 1;
            match &o.failure {
                Some(label) => {
                    stats.failed += 1;
                    *stats.failures.entry(label.clone()).or_default() += 1;
                    if let Some(detail) = &o.detail {
                        stats
                            .examples
                            .entry(label.clone())
                            .or_insert_with(|| detail.clone());
                    }
                    open.get_or_insert(o.started);
                    last_failure_end = o.ended;
                }
                None => {
                    if o.retries > 0 {
                        stats.retried_ok += 1;
                    }
                    if let Some(start) = open.take() {
                        let ms = (o.ended.saturating_sub(start)).as_millis() as u64;
                        stats.longest_error_window_ms = stats.longest_error_window_ms.max(ms);
                    }
                }
            }
        }
        if let Some(start) = open {
            let ms = last_failure_end.saturating_sub(start).as_millis() as u64;
            if ms >= stats.longest_error_window_ms {
                stats.longest_error_window_ms = ms;
                stats.window_open_at_end = true;
            }
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(started_ms: u64, ended_ms: u64, failure: Option<&str>) -> Outcome {
        Outcome {
            started: Duration::from_millis(started_ms),
            ended: Duration::from_millis(ended_ms),
            failure: failure.map(str::to_owned),
            detail: failure.map(|f| format!("{f} detail")),
            retries: 0,
        }
    }

    #[test]
    fn the_error_window_runs_from_the_first_failure_to_the_next_success() {
        let lane = vec![
            o(0, 10, None),
            o(100, 110, Some("io")),
            o(200, 210, Some("http_503_node_syncing")),
            o(300, 320, None),
            o(400, 405, Some("io")),
            o(500, 502, None),
        ];
        let s = summarise("x", &[lane]);
        assert_eq!((s.sent, s.failed), (6, 3));
        assert_eq!(s.longest_error_window_ms, 220, "100 → 320");
        assert!(!s.window_open_at_end);
        assert_eq!(s.failures["io"], 2);
        assert_eq!(
            s.examples["io"], "io detail",
            "the first of its kind, in full"
        );

        let open = summarise(
            "y",
            &[vec![
                o(0, 5, None),
                o(50, 60, Some("io")),
                o(1050, 1060, Some("io")),
            ]],
        );
        assert_eq!(open.longest_error_window_ms, 1010);
        assert!(open.window_open_at_end);
        assert_eq!(
            summarise("z", &[vec![o(0, 5, None)]]).longest_error_window_ms,
            0
        );
    }
}
