//! The `aurora-sim` command line (clap): help works, a bad flag exits 2 with clap's
//! message, and `run` ends with the table of the checks it ran.

use std::process::Command;

fn sim(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_aurora-sim"))
        .args(args)
        .output()
        .expect("run aurora-sim")
}

#[test]
fn help_lists_the_commands_and_each_command_has_its_own() {
    let out = sim(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["run", "replay", "scenario", "bench"] {
        assert!(text.contains(cmd), "{text}");
    }
    let out = sim(&["run", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--seeds",
        "--start",
        "--nodes",
        "--duration",
        "--liveness",
        "--threads",
    ] {
        assert!(text.contains(flag), "{flag} missing: {text}");
    }
}

#[test]
fn a_bad_flag_or_value_exits_2_naming_it() {
    for (args, names) in [
        (&["run", "--bogus"][..], "--bogus"),
        (&["run", "--seeds", "many"][..], "many"),
        (&["replay", "--failover-mode", "sideways"][..], "sideways"),
        (&["bench", "nope"][..], "nope"),
    ] {
        let out = sim(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(names), "{args:?}: {err}");
    }
}

#[test]
fn run_ends_with_the_table_of_checks() {
    let out = sim(&[
        "run",
        "--seeds",
        "2",
        "--duration",
        "5",
        "--liveness",
        "20",
        "--threads",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let table: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("check "))
        .collect();
    let row = |name: &str| -> Vec<u64> {
        let line = table
            .iter()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row {name}: {text}"));
        line.split_whitespace()
            .skip(1)
            .map(|n| n.parse().expect("counts"))
            .collect()
    };
    for check in ["convergence", "determinism", "no-panic", "wire"] {
        let counts = row(check);
        assert!(counts[0] > 0 && counts[1] == 0, "{check}: {counts:?}");
    }
    assert_eq!(row("convergence")[0], 2, "one verdict per seed");
}
