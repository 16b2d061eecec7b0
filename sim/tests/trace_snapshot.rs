//! A small traced run, snapshotted: any change to the protocol's behaviour (timing,
//! who probes whom, when a crash is noticed) shows up in review as a diff.

use core::time::Duration;

use aurora_sim::faults::FaultProfile;
use aurora_sim::{Action, ProfileSpec, SimParams, World};

#[test]
fn three_nodes_one_crash() {
    let params = SimParams {
        nodes: 3,
        profile: ProfileSpec::Fixed(FaultProfile::none()),
        safety: Duration::from_secs(12),
        liveness: Duration::from_secs(3),
        trace: true,
        ..SimParams::default()
    };
    let mut w = World::new(11, params);
    w.at(Duration::from_secs(4), Action::Crash(2));
    w.run();
    let mut text = w.trace.take_lines().join("\n");
    text.push_str(&format!("\ntrace-hash: {:016x}", w.trace.hash()));
    insta::assert_snapshot!(text);
}
