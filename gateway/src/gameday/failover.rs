//! `aurora gameday failover`: take the leader down under load and measure.
//!
//! Sequence: find the leader; start the clients ([`super::load`]); after the warm-up
//! take the leader down (`--kill`); poll the survivors' `cluster/status` until one
//! names another leader (**time to new leader**, from the kill); bring the node back
//! (a dev cluster restarts it `--restart-after` seconds after the kill; an isolation
//! ends by itself) and poll it until it is **back**: `/health/ready` 200 or 503
//! `standby`, every node alive in its `cluster/status`, and the same leader as the
//! survivors (**time to ready**, from the restart or the end of the isolation); keep
//! the load to `--duration`, then stop and print the tables.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde_json::json;

use super::load::Load;
use super::nodes::Drill;
use super::{table, FailoverArgs, Kill};

/// The longest wait for a new leader, and for the node to be back.
const LEADER_LIMIT: Duration = Duration::from_secs(30);
const BACK_LIMIT: Duration = Duration::from_secs(60);

pub fn run(args: &FailoverArgs) -> anyhow::Result<()> {
    let drill = Drill::from_args(&args.common)?;
    let n = drill.targets.len();
    let mode = drill.mode();
    let mut found = None;
    drill.wait(Duration::from_secs(15), || {
        found = (0..n)
            .find_map(|i| drill.leader_seen_by(i))
            .filter(|(idx, _, _)| idx.is_some());
        found.is_some()
    });
    let Some((Some(old), old_id, old_epoch)) = found else {
        bail!("no node names a leader among the given nodes within 15 s (is the cluster up, in an electing mode?)");
    };
    let pid = match args.kill {
        Kill::Pid => Some(drill.pid(old)?),
        _ => None,
    };
    let name = drill.targets[old].name.clone();
    eprintln!(
        "gameday failover: {mode}, {n} nodes, leader {name} ({old_id}, epoch {old_epoch}); {} for {} s",
        load_line(&args.common, n),
        args.duration
    );

    let load = Load::from_flags(&drill.targets, &args.common);
    std::thread::sleep(Duration::from_secs(args.common.warmup));
    let kill_at = Instant::now();
    let result = take_down(&drill, args, old, pid);
    if let Err(e) = result {
        drop(load.stop());
        return Err(e);
    }
    let killed_after = load.t0.elapsed();
    eprintln!(
        "gameday failover: {name} taken down ({}) at {:.1} s",
        args.kill.as_str(),
        killed_after.as_secs_f64()
    );

    let survivors: Vec<usize> = (0..n).filter(|&i| i != old).collect();
    let mut new_id = None;
    let to_leader = drill.wait(LEADER_LIMIT, || {
        new_id = survivors.iter().find_map(|&j| {
            let status = drill.status(j);
            status["leader"]
                .as_str()
                .filter(|l| *l != old_id)
                .map(|l| (l.to_owned(), status["epoch"].as_u64()))
        });
        new_id.is_some()
    });
    let new_name = new_id.as_ref().and_then(|(id, _)| {
        survivors
            .iter()
            .find(|&&j| drill.status(j)["this_node"]["id"] == id.as_str())
            .map(|&j| drill.targets[j].name.clone())
    });
    eprintln!("gameday failover: new leader {new_name:?} after {to_leader:?}");

    // Bring it back and time it.
    let back_from = match args.kill {
        Kill::Isolate => Some(kill_at + Duration::from_secs(args.isolate_secs)),
        Kill::Pid | Kill::Fault if drill.dev_dir.is_some() => {
            let at = kill_at + Duration::from_secs(args.restart_after);
            sleep_until(at);
            let restart = Instant::now();
            drill
                .control("start", old)
                .context("restarting the node through the dev cluster")?;
            Some(restart)
        }
        _ => None,
    };
    let to_ready = back_from.and_then(|from| {
        sleep_until(from);
        let agreed = || {
            let leader = survivors
                .iter()
                .find_map(|&j| drill.status(j)["leader"].as_str().map(str::to_owned));
            drill.back(old, leader.as_deref())
        };
        drill.wait(BACK_LIMIT, agreed).map(|_| from.elapsed())
    });
    eprintln!("gameday failover: {name} back after {to_ready:?}");
    sleep_until(load.t0 + Duration::from_secs(args.duration));
    let (clients, lb) = load.stop();

    let ms = |d: Option<Duration>| d.map(|d| d.as_millis() as u64);
    println!(
        "\nGame day: failover, {mode}, {n} nodes, {}; leader {name} taken down by {} at {:.1} s{}.\n",
        load_line(&args.common, n),
        args.kill.as_str(),
        killed_after.as_secs_f64(),
        match args.kill {
            Kill::Isolate => format!(", cut off for {} s", args.isolate_secs),
            _ if drill.dev_dir.is_some() => format!(", restarted {} s after", args.restart_after),
            _ => ", not restarted".to_owned(),
        }
    );
    print!("{}", table::clients(&clients));
    eprint!("{}", table::examples(&clients));
    println!("\n| event | time |\n|---|---:|");
    println!(
        "| new leader ({} → {}, epoch {old_epoch} → {}) | {} after the kill |",
        name,
        new_name.clone().unwrap_or_else(|| "none".to_owned()),
        new_id
            .as_ref()
            .and_then(|(_, e)| *e)
            .map_or("?".to_owned(), |e| e.to_string()),
        table::ms(ms(to_leader))
    );
    println!(
        "| no node ready, as the load balancer's health check saw it (longest stretch) | {} |",
        table::ms(ms(Some(lb.no_ready)))
    );
    println!(
        "| two or more nodes ready at once, as that health check saw it (longest stretch) | {} |",
        if mode == "active_passive" {
            table::ms(ms(Some(lb.several_ready)))
        } else {
            "- (every node is meant to be ready in this mode)".to_owned()
        }
    );
    println!(
        "| {name} ready again | {} after {} |\n",
        table::ms(ms(to_ready)),
        if args.kill == Kill::Isolate {
            "the isolation ended"
        } else {
            "its restart"
        }
    );
    if let Some(path) = &args.common.json {
        let summary = json!({
            "drill": "failover", "mode": mode, "kill": args.kill.as_str(), "nodes": n,
            "leader": name, "new_leader": new_name, "epoch_before": old_epoch,
            "time_to_new_leader_ms": ms(to_leader), "time_to_ready_ms": ms(to_ready),
            "no_node_ready_ms": ms(Some(lb.no_ready)),
            "several_ready_ms": ms(Some(lb.several_ready)),
            "clients": clients,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&summary)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn take_down(
    drill: &Drill,
    args: &FailoverArgs,
    old: usize,
    pid: Option<u32>,
) -> anyhow::Result<()> {
    match (args.kill, pid) {
        (Kill::Pid, Some(pid)) => {
            crate::dev::supervisor::send_signal(pid, rustix::process::Signal::KILL)
        }
        (Kill::Pid, None) => bail!("no PID for the leader"),
        (Kill::Fault, _) => {
            let (status, body) =
                drill.admin_post(old, "/admin/api/cluster/fault", r#"{"fault":"crash"}"#)?;
            if status != 202 {
                bail!("the crash fault was refused ({status}): {body} (start the nodes with --allow-fault-injection)");
            }
            Ok(())
        }
        (Kill::Isolate, _) => {
            let body = json!({"fault": "isolate", "seconds": args.isolate_secs}).to_string();
            let (status, answer) = drill.admin_post(old, "/admin/api/cluster/fault", &body)?;
            if status != 200 {
                bail!("the isolate fault was refused ({status}): {answer} (start the nodes with --allow-fault-injection)");
            }
            Ok(())
        }
    }
}

/// "3 × 20 req/s direct + 20 req/s ready-routed (LB check every 500 ms)".
pub fn load_line(common: &super::Common, n: usize) -> String {
    format!(
        "{n} × {} req/s direct + {} req/s ready-routed (LB check every {} ms)",
        common.rate, common.rate, common.lb_interval_ms
    )
}

fn sleep_until(at: Instant) {
    let now = Instant::now();
    if at > now {
        std::thread::sleep(at - now);
    }
}
