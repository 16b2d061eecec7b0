//! `gateway.limits`: how much of this node one client, one request or one upstream may
//! hold, and for how long.
//!
//! Node configuration, like `gateway.upstream`: the right numbers depend on the
//! machine (file descriptors, memory), not on the cluster. Every limit has a default a
//! public deployment can run with, and every one is checked at start (out of range:
//! exit 2 naming the key). What each one stops:
//!
//! - `max_connections` / `max_connections_per_ip`: a client opening sockets until the
//!   node runs out of file descriptors or memory (each connection costs a task and
//!   hyper's buffers, tens of KiB). 10,000 fits a node with `ulimit -n` raised to
//!   the usual 65,536 and a few hundred MiB of buffers; 256 per address lets a NAT'd
//!   office or a client's connection pool through while one host takes at most 2.5 %
//!   of the node. Over either cap the connection gets a one-line 503 and is closed at
//!   once; nothing is queued.
//! - `header_read_timeout_ms` / `body_read_timeout_ms`: slowloris, a client trickling
//!   a request one byte at a time to hold a connection forever. The header deadline
//!   also closes idle keep-alive connections.
//! - `send_timeout_ms` / `stream_max_duration_ms`: a client that stops reading (its TCP
//!   window full) would pin the connection, the stream task and the upstream request;
//!   a stream that never ends would do the same.
//! - `max_upstream_body_bytes`, `max_stream_bytes`, `max_sse_event_bytes`,
//!   `max_buffered_upstream_bytes`: an upstream (or whoever controls its URL) sending
//!   a huge or endless answer; the last bounds the sum over all requests in flight.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::catalog::CatalogError;

/// The limits (defaults in [`Limits::default`], documented in docs/configuration.md).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Open client connections on this node.
    pub max_connections: u32,
    /// Open client connections from one IP address (IPv6: one /64).
    pub max_connections_per_ip: u32,
    /// Time a client has to send a request's headers, and the longest idle time of a
    /// keep-alive connection, ms.
    pub header_read_timeout_ms: u64,
    /// Time a client has to send a request's whole body once its headers are in, ms.
    pub body_read_timeout_ms: u64,
    /// Longest a write to a client may stay blocked (client not reading) before the
    /// connection is dropped, ms.
    pub send_timeout_ms: u64,
    /// Longest a streamed answer may last; then it ends with an SSE error event, ms.
    pub stream_max_duration_ms: u64,
    /// Largest non-streamed upstream answer (or error document) read, bytes.
    pub max_upstream_body_bytes: u64,
    /// Most bytes one upstream stream may send in total.
    pub max_stream_bytes: u64,
    /// Largest single SSE event (and so line) of an upstream stream, bytes.
    pub max_sse_event_bytes: u64,
    /// Most upstream bytes buffered at once across every request in flight.
    pub max_buffered_upstream_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_connections_per_ip: 256,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 60_000,
            send_timeout_ms: 30_000,
            stream_max_duration_ms: 30 * 60_000,
            max_upstream_body_bytes: 16 << 20,
            max_stream_bytes: 256 << 20,
            max_sse_event_bytes: 4 << 20,
            max_buffered_upstream_bytes: 512 << 20,
        }
    }
}

impl Limits {
    /// Checks the ranges; the error names the field.
    pub fn validate(&self) -> Result<(), CatalogError> {
        const HOUR: u64 = 3_600_000;
        const GIB: u64 = 1 << 30;
        let checks: [(&str, u64, u64, u64); 10] = [
            (
                "max_connections",
                u64::from(self.max_connections),
                1,
                1_000_000,
            ),
            (
                "max_connections_per_ip",
                u64::from(self.max_connections_per_ip),
                1,
                1_000_000,
            ),
            (
                "header_read_timeout_ms",
                self.header_read_timeout_ms,
                1,
                HOUR,
            ),
            ("body_read_timeout_ms", self.body_read_timeout_ms, 1, HOUR),
            ("send_timeout_ms", self.send_timeout_ms, 1, HOUR),
            (
                "stream_max_duration_ms",
                self.stream_max_duration_ms,
                1,
                24 * HOUR,
            ),
            (
                "max_upstream_body_bytes",
                self.max_upstream_body_bytes,
                1024,
                GIB,
            ),
            ("max_stream_bytes", self.max_stream_bytes, 1024, 64 * GIB),
            ("max_sse_event_bytes", self.max_sse_event_bytes, 1024, GIB),
            (
                "max_buffered_upstream_bytes",
                self.max_buffered_upstream_bytes,
                1024,
                256 * GIB,
            ),
        ];
        for (field, value, min, max) in checks {
            if !(min..=max).contains(&value) {
                return Err(CatalogError::new(
                    field,
                    format!("must be from {min} to {max}, got {value}"),
                ));
            }
        }
        if self.max_connections_per_ip > self.max_connections {
            return Err(CatalogError::new(
                "max_connections_per_ip",
                format!(
                    "must not exceed max_connections ({}), got {}",
                    self.max_connections, self.max_connections_per_ip
                ),
            ));
        }
        Ok(())
    }

    /// [`Limits::header_read_timeout_ms`].
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }

    /// [`Limits::body_read_timeout_ms`].
    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_millis(self.body_read_timeout_ms)
    }

    /// [`Limits::send_timeout_ms`].
    pub fn send_timeout(&self) -> Duration {
        Duration::from_millis(self.send_timeout_ms)
    }

    /// [`Limits::stream_max_duration_ms`].
    pub fn stream_max_duration(&self) -> Duration {
        Duration::from_millis(self.stream_max_duration_ms)
    }

    /// A byte limit as `usize` (saturating on 32-bit platforms).
    pub fn bytes(value: u64) -> usize {
        usize::try_from(value).unwrap_or(usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_ranges_name_the_field() {
        assert_eq!(Limits::default().validate(), Ok(()));
        let bad = Limits {
            send_timeout_ms: 0,
            ..Limits::default()
        };
        assert_eq!(
            bad.validate().map_err(|e| e.path),
            Err("send_timeout_ms".into())
        );
        let bad = Limits {
            max_connections: 10,
            max_connections_per_ip: 11,
            ..Limits::default()
        };
        assert_eq!(
            bad.validate().map_err(|e| e.path),
            Err("max_connections_per_ip".into())
        );
    }
}
