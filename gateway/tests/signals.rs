//! Stop signals are listened for from `StopSignals::install` on, not from the first
//! `recv`: a SIGTERM that arrives before anything awaits it is reported, where the
//! default action would end the process without a drain (gateway/src/signals.rs).
//! A test binary of its own, because it sends SIGTERM to itself.

#![cfg(unix)]

use std::time::Duration;

use aurora_gateway::signals::StopSignals;

fn sigterm_self() {
    let pid = std::process::id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM {pid}");
}

#[tokio::test]
async fn a_sigterm_before_the_first_recv_is_reported_and_does_not_kill() {
    let mut stop = StopSignals::install();
    // Nothing awaits `stop` yet. Were the handler registered only on the first poll,
    // this process would end here with the signal's default action.
    sigterm_self();
    tokio::time::sleep(Duration::from_millis(200)).await;
    tokio::time::timeout(Duration::from_secs(10), stop.recv())
        .await
        .expect("the early SIGTERM is reported");

    // And the next one too, for the "send again to exit at once" of `aurora serve`.
    sigterm_self();
    tokio::time::timeout(Duration::from_secs(10), stop.recv())
        .await
        .expect("a second SIGTERM is reported");
}
