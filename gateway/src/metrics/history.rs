//! A short in-memory history of the node's own API traffic, for the admin UI's
//! overview (`GET /admin/api/metrics/history`, served from [`crate::admin`]).
//!
//! Why besides the usage log's series ([`crate::usage::series`]): the log holds only
//! requests that passed authentication and reached the policy, so a flood of 401s or
//! of malformed bodies — exactly what an operator wants to see on a chart — is in the
//! metrics alone; and the log can be disabled. The history samples the counters the
//! metrics already keep, so it costs one lock per sample and no I/O.
//!
//! What holds: every [`FINE_MS`] the sampler ([`sample_forever`]) records the
//! cumulative counters of the `/v1/…` routes (requests, of which status ≥ 400, the
//! latency histogram) with the wall time; [`FINE_SAMPLES`] samples are kept (an hour),
//! and every sample on a new minute also goes to a coarse ring of [`COARSE_SAMPLES`]
//! (a day). A point is the difference of two consecutive samples, so a restart of the
//! process (counters from zero) shows as a gap, never as a negative rate. Memory is
//! bounded: (360 + 1,440) samples of about 180 bytes.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use serde::Serialize;

use super::{Metrics, LATENCY_BUCKETS};

/// The fine resolution: one sample every 10 s.
pub const FINE_MS: u64 = 10_000;
/// Fine samples kept: an hour.
pub const FINE_SAMPLES: usize = 360;
/// The coarse resolution: one sample a minute.
pub const COARSE_MS: u64 = 60_000;
/// Coarse samples kept: a day.
pub const COARSE_SAMPLES: usize = 1_440;

const BINS: usize = LATENCY_BUCKETS.len() + 1;

/// Cumulative counters of the API routes at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sample {
    /// Unix ms when it was taken.
    pub wall_ms: u64,
    /// Requests finished.
    pub requests: u64,
    /// Of which answered with a status ≥ 400.
    pub errors: u64,
    /// Of which answered with a status ≥ 500.
    pub server_errors: u64,
    /// Non-cumulative latency bucket counts ([`LATENCY_BUCKETS`], then `+Inf`).
    pub latency: [u64; BINS],
    /// Requests being served when it was taken.
    pub in_flight: i64,
}

/// One interval between two samples.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Point {
    /// The interval's end, Unix ms.
    pub time_ms: u64,
    /// Its length, ms.
    pub interval_ms: u64,
    /// Requests finished in it.
    pub requests: u64,
    /// Of which status ≥ 400.
    pub errors: u64,
    /// Of which status ≥ 500.
    pub server_errors: u64,
    /// Requests per second.
    pub rate: f64,
    /// The upper bound (ms) of the latency bucket holding the median of the interval's
    /// requests; `None` without requests or when it is past the last bound.
    pub latency_p50_ms: Option<f64>,
    /// As the median, for the 99th percentile.
    pub latency_p99_ms: Option<f64>,
    /// In flight at the interval's end.
    pub in_flight: i64,
}

/// The two rings.
#[derive(Debug, Default)]
pub struct History {
    rings: Mutex<Rings>,
}

#[derive(Debug, Default)]
struct Rings {
    fine: VecDeque<Sample>,
    coarse: VecDeque<Sample>,
}

/// Which ring to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// 10 s, the last hour.
    Fine,
    /// 1 min, the last day.
    Coarse,
}

impl History {
    fn lock(&self) -> MutexGuard<'_, Rings> {
        self.rings.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records `sample` (see the module docs for which ring keeps it). For a sample
    /// of the live counters use [`History::record_taken`]: this one is for samples
    /// whose time and counters are already fixed (tests).
    pub fn record(&self, sample: Sample) {
        let mut rings = self.lock();
        Self::push(&mut rings, sample);
    }

    /// Takes a sample with `take` and records it in one step, under the rings' lock:
    /// the rings are then in the order the samples were taken, and each sample's time
    /// is that of its counters. (Taken outside the lock, a sampler preempted between
    /// reading the clock and the counters could land after a sample taken meanwhile,
    /// with an older time and newer counters; the interval between the two would
    /// look like a clock going backwards and its requests would be lost.)
    pub fn record_taken(&self, take: impl FnOnce() -> Sample) {
        let mut rings = self.lock();
        let sample = take();
        Self::push(&mut rings, sample);
    }

    fn push(rings: &mut Rings, sample: Sample) {
        let new_minute = rings
            .coarse
            .back()
            .is_none_or(|last| last.wall_ms / COARSE_MS != sample.wall_ms / COARSE_MS);
        if new_minute {
            if rings.coarse.len() == COARSE_SAMPLES {
                rings.coarse.pop_front();
            }
            rings.coarse.push_back(sample.clone());
        }
        if rings.fine.len() == FINE_SAMPLES {
            rings.fine.pop_front();
        }
        rings.fine.push_back(sample);
    }

    /// The points of `resolution` whose interval ends at or after `since_ms`, oldest
    /// first. An interval whose counters went down (a restart) or whose clock went
    /// backwards is left out.
    pub fn points(&self, resolution: Resolution, since_ms: u64) -> Vec<Point> {
        let rings = self.lock();
        let ring = match resolution {
            Resolution::Fine => &rings.fine,
            Resolution::Coarse => &rings.coarse,
        };
        ring.iter()
            .zip(ring.iter().skip(1))
            .filter(|(_, b)| b.wall_ms >= since_ms)
            .filter_map(|(a, b)| point(a, b))
            .collect()
    }
}

fn point(a: &Sample, b: &Sample) -> Option<Point> {
    let interval_ms = b.wall_ms.checked_sub(a.wall_ms).filter(|&d| d > 0)?;
    let requests = b.requests.checked_sub(a.requests)?;
    let mut latency = [0u64; BINS];
    for (i, slot) in latency.iter_mut().enumerate() {
        *slot = b.latency[i].checked_sub(a.latency[i])?;
    }
    Some(Point {
        time_ms: b.wall_ms,
        interval_ms,
        requests,
        errors: b.errors.checked_sub(a.errors)?,
        server_errors: b.server_errors.checked_sub(a.server_errors)?,
        rate: requests as f64 * 1000.0 / interval_ms as f64,
        latency_p50_ms: bound_ms(&latency, 50),
        latency_p99_ms: bound_ms(&latency, 99),
        in_flight: b.in_flight,
    })
}

/// The upper bound (ms) of the bucket holding the nearest-rank `pct` percentile.
fn bound_ms(buckets: &[u64; BINS], pct: u64) -> Option<f64> {
    let n: u64 = buckets.iter().sum();
    if n == 0 {
        return None;
    }
    let rank = (u128::from(n) * u128::from(pct)).div_ceil(100).max(1);
    let mut seen = 0u128;
    for (i, count) in buckets.iter().enumerate() {
        seen += u128::from(*count);
        if seen >= rank {
            return LATENCY_BUCKETS.get(i).map(|s| s * 1000.0);
        }
    }
    None
}

impl Metrics {
    /// The cumulative counters of the `/v1/…` routes now, stamped `wall_ms`.
    pub fn sample(&self, wall_ms: u64) -> Sample {
        let inner = self.lock();
        let mut sample = Sample {
            wall_ms,
            in_flight: self.in_flight(),
            ..Sample::default()
        };
        for (labels, n) in &inner.requests {
            if !labels.route.starts_with("/v1/") {
                continue;
            }
            sample.requests += n;
            if labels.status >= 400 {
                sample.errors += n;
            }
            if labels.status >= 500 {
                sample.server_errors += n;
            }
        }
        for (route, histogram) in &inner.latency {
            if route.starts_with("/v1/") {
                for (slot, n) in sample.latency.iter_mut().zip(&histogram.buckets) {
                    *slot += n;
                }
            }
        }
        sample
    }
}

/// Samples `state`'s metrics into its history every [`FINE_MS`], forever (the
/// server aborts the task when it stops).
pub async fn sample_forever(state: std::sync::Arc<crate::state::AppState>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(FINE_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let metrics = &state.metrics;
        metrics
            .history
            .record_taken(|| metrics.sample(crate::clock::wall_ms()));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::metrics::RequestLabels;

    fn finish(metrics: &Metrics, route: &'static str, status: u16, ms: u64) {
        metrics.request_started();
        metrics.request_finished(
            RequestLabels {
                route,
                model: Arc::from(""),
                status,
            },
            Duration::from_millis(ms),
            None,
        );
    }

    #[test]
    fn points_are_differences_of_samples_of_the_api_routes() {
        let metrics = Metrics::new();
        let history = History::default();
        history.record(metrics.sample(1_000_000));
        for _ in 0..98 {
            finish(&metrics, "/v1/chat/completions", 200, 3);
        }
        finish(&metrics, "/v1/chat/completions", 401, 1);
        finish(&metrics, "/v1/chat/completions", 502, 2_000);
        // Not an API route: not counted.
        finish(&metrics, "/health", 200, 1);
        history.record(metrics.sample(1_010_000));
        let points = history.points(Resolution::Fine, 0);
        assert_eq!(points.len(), 1);
        let p = &points[0];
        assert_eq!((p.requests, p.errors, p.server_errors), (100, 2, 1));
        assert_eq!(p.interval_ms, 10_000);
        assert!((p.rate - 10.0).abs() < 1e-9);
        assert_eq!(p.latency_p50_ms, Some(5.0));
        assert_eq!(p.latency_p99_ms, Some(5.0));
        // Only the 2 s request past the 99th: the 100th rank.
        assert_eq!(bound_ms(&metrics.sample(0).latency, 100), Some(2_500.0));
        assert!(history.points(Resolution::Fine, 1_010_001).is_empty());
    }

    #[test]
    fn the_rings_are_bounded_and_a_restart_is_a_gap() {
        let history = History::default();
        for i in 0..(FINE_SAMPLES as u64 + 50) {
            history.record(Sample {
                wall_ms: i * FINE_MS,
                requests: i,
                ..Sample::default()
            });
        }
        let fine = history.points(Resolution::Fine, 0);
        assert_eq!(fine.len(), FINE_SAMPLES - 1);
        assert!(fine.iter().all(|p| p.requests == 1));
        // One coarse sample per minute of wall time: 410 samples over 69 minutes.
        let coarse = history.points(Resolution::Coarse, 0);
        assert_eq!(coarse.len(), 68);
        assert!(coarse.iter().all(|p| p.requests == 6));
        // Counters from zero again: that interval is left out.
        let last = fine.last().map(|p| p.time_ms).unwrap_or(0);
        history.record(Sample {
            wall_ms: last + FINE_MS,
            requests: 0,
            ..Sample::default()
        });
        assert_eq!(history.points(Resolution::Fine, last + 1).len(), 0);
    }
}
