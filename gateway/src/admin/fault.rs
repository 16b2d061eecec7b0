//! `POST /admin/api/cluster/fault`: injected faults for game days.
//!
//! Only a node started with `aurora serve --allow-fault-injection` has this; any other
//! node answers 403 `fault_injection_disabled` (after the admin token check, like every
//! admin path), so a production node cannot be cut off or crashed through its admin
//! API even by a holder of the token. The faults:
//!
//! - `{"fault": "isolate", "seconds": N}` (1..=3600): the node's QUIC socket drops
//!   every packet in and out for N seconds ([`aurora_io::transport::fault`]); the HTTP
//!   side keeps serving. Ends by itself; sending it again replaces the duration.
//! - `{"fault": "heal"}`: ends an isolation at once.
//! - `{"fault": "crash"}`: the process exits at once with [`CRASH_EXIT_CODE`], without
//!   draining, leaving the cluster or flushing anything, as `kill -9` would (only
//!   committed SQLite transactions survive, as after a real crash). The 202 answer is
//!   written first, so the caller knows the fault was taken.

use std::time::Duration;

use aurora_io::transport::Isolation;
use bytes::Bytes;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error;
use super::records::{field_error, from_value, json_object};
use crate::http::body::{json_ok, json_response, Response};
use crate::openai::ApiError;

/// The exit code of a `crash` fault (128 + 9, what a shell reports for `kill -9`).
pub const CRASH_EXIT_CODE: i32 = 137;
/// How long the process lives after answering a crash, so the answer reaches the wire.
const CRASH_DELAY: Duration = Duration::from_millis(50);
/// The longest isolation accepted.
pub const MAX_ISOLATE_SECS: u64 = 3600;

#[derive(Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case", deny_unknown_fields)]
enum Fault {
    Isolate { seconds: u64 },
    Heal {},
    Crash {},
}

#[derive(Serialize)]
struct Taken {
    object: &'static str,
    fault: &'static str,
    /// For `isolate`: how long the isolation lasts.
    #[serde(skip_serializing_if = "Option::is_none")]
    seconds: Option<u64>,
}

/// `POST /admin/api/cluster/fault`; `faults` is `None` unless the node was started
/// with fault injection allowed.
pub fn inject(faults: Option<&Isolation>, body: &Bytes) -> Response {
    let Some(isolation) = faults else {
        return error(
            StatusCode::FORBIDDEN,
            "fault injection is disabled on this node: start it with `aurora serve --allow-fault-injection` (never in production)",
            "fault_injection_disabled",
        )
        .into_response();
    };
    let fault = match parse(body) {
        Ok(fault) => fault,
        Err(e) => return e.into_response(),
    };
    match fault {
        Fault::Isolate { seconds } => {
            if !(1..=MAX_ISOLATE_SECS).contains(&seconds) {
                return field_error("seconds", &format!("must be 1 to {MAX_ISOLATE_SECS}"))
                    .into_response();
            }
            isolation.isolate(Duration::from_secs(seconds));
            tracing::warn!(seconds, "fault injected: cluster traffic cut off");
            json_ok(&Taken {
                object: "cluster.fault",
                fault: "isolate",
                seconds: Some(seconds),
            })
        }
        Fault::Heal {} => {
            isolation.isolate(Duration::ZERO);
            tracing::warn!("fault healed: cluster traffic flows again");
            json_ok(&Taken {
                object: "cluster.fault",
                fault: "heal",
                seconds: None,
            })
        }
        Fault::Crash {} => {
            tracing::warn!(code = CRASH_EXIT_CODE, "fault injected: crashing now");
            tokio::spawn(async {
                tokio::time::sleep(CRASH_DELAY).await;
                std::process::exit(CRASH_EXIT_CODE);
            });
            let body = serde_json::to_vec(&Taken {
                object: "cluster.fault",
                fault: "crash",
                seconds: None,
            })
            .unwrap_or_default();
            json_response(StatusCode::ACCEPTED, body)
        }
    }
}

/// The body as a [`Fault`]; an unknown `fault` or a bad field is a 400 naming it.
fn parse(body: &Bytes) -> Result<Fault, ApiError> {
    let map = json_object(body)?;
    match map.get("fault") {
        Some(Value::String(kind)) if ["isolate", "heal", "crash"].contains(&kind.as_str()) => {
            from_value(Value::Object(map))
        }
        Some(_) => Err(field_error(
            "fault",
            "must be \"isolate\", \"heal\" or \"crash\"",
        )),
        None => Err(field_error("fault", "missing")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(faults: Option<&Isolation>, body: &str) -> u16 {
        inject(faults, &Bytes::from(body.to_owned()))
            .status()
            .as_u16()
    }

    #[test]
    fn a_node_without_the_flag_refuses_every_fault() {
        assert_eq!(status(None, r#"{"fault":"isolate","seconds":5}"#), 403);
        assert_eq!(status(None, r#"{"fault":"crash"}"#), 403);
    }

    #[tokio::test]
    async fn isolate_and_heal_drive_the_switch_and_bad_bodies_name_the_field() {
        let switch = Isolation::new();
        assert_eq!(
            status(Some(&switch), r#"{"fault":"isolate","seconds":30}"#),
            200
        );
        assert!(switch.is_isolated());
        assert_eq!(status(Some(&switch), r#"{"fault":"heal"}"#), 200);
        assert!(!switch.is_isolated());
        for bad in [
            r#"{"fault":"isolate","seconds":0}"#,
            r#"{"fault":"isolate"}"#,
            r#"{"fault":"melt"}"#,
            r#"{"seconds":3}"#,
            r#"[1]"#,
        ] {
            assert_eq!(status(Some(&switch), bad), 400, "{bad}");
        }
        assert!(!switch.is_isolated());
    }
}
