//! Every named scenario passes on several seeds.

use aurora_sim::scenario::ALL;

fn check(name: &str) {
    let scenario = ALL
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no scenario named {name}"));
    for seed in 1..=2 {
        let report = (scenario.run)(seed);
        assert!(
            report.failures.is_empty(),
            "{name} failed on seed {seed}: {:?}\n{:?}",
            report.failures.iter().take(5).collect::<Vec<_>>(),
            report.lines
        );
    }
}

#[test]
fn removed_member_stays_removed() {
    check("removed-member-stays-removed");
}

#[test]
fn restart_new_address() {
    check("restart-new-address");
}

#[test]
fn broadcasts_not_starved() {
    check("broadcasts-not-starved");
}

#[test]
fn slow_node_not_dead() {
    check("slow-node-not-dead");
}

#[test]
fn tombstone_gc_no_resurrection() {
    check("tombstone-gc-no-resurrection");
}

#[test]
fn wiped_disk_keeps_numbering() {
    check("wiped-disk-keeps-numbering");
}

#[test]
fn wiped_voter_rejoins_as_new_life() {
    check("wiped-voter-rejoins-as-new-life");
}

#[test]
fn two_wiped_during_partition() {
    check("two-wiped-during-partition");
}

#[test]
fn standby_back_keeps_the_leader() {
    check("standby-back-keeps-the-leader");
}

#[test]
fn impersonator_is_dropped() {
    check("impersonator-is-dropped");
}

#[test]
fn injected_tombstone_bug_is_caught() {
    check("injected-tombstone-bug-is-caught");
}

#[test]
fn injected_majority_bug_is_caught() {
    check("injected-majority-bug-is-caught");
}

#[test]
fn injected_refutation_bug_is_caught() {
    check("injected-refutation-bug-is-caught");
}

#[test]
fn quota_leases_hold_the_limit() {
    check("quota-leases-hold-the-limit");
}

#[test]
fn injected_quota_bug_is_caught() {
    check("injected-quota-bug-is-caught");
}

#[test]
fn every_scenario_has_a_test() {
    let tested = [
        "removed-member-stays-removed",
        "restart-new-address",
        "broadcasts-not-starved",
        "slow-node-not-dead",
        "injected-refutation-bug-is-caught",
        "injected-tombstone-bug-is-caught",
        "tombstone-gc-no-resurrection",
        "injected-majority-bug-is-caught",
        "wiped-disk-keeps-numbering",
        "wiped-voter-rejoins-as-new-life",
        "two-wiped-during-partition",
        "impersonator-is-dropped",
        "standby-back-keeps-the-leader",
        "quota-leases-hold-the-limit",
        "injected-quota-bug-is-caught",
    ];
    for s in ALL {
        assert!(tested.contains(&s.name), "scenario {} has no test", s.name);
    }
}
