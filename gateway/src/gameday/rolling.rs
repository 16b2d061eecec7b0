//! `aurora gameday rolling-restart`: every node of a dev cluster SIGTERM'd and
//! restarted in turn under load, as a rolling upgrade would.
//!
//! For each node in order: `restart NAME` on the dev cluster's control socket (SIGTERM,
//! wait for the exit, start the same command line, wait for `/health`); then wait until
//! it is back (`/health/ready` 200 or 503 `standby`, every node alive, the same leader
//! as the others); then `--pause` seconds of traffic before the next node.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde_json::json;

use super::load::Load;
use super::nodes::Drill;
use super::{table, RollingArgs};

const BACK_LIMIT: Duration = Duration::from_secs(60);

pub fn run(args: &RollingArgs) -> anyhow::Result<()> {
    let drill = Drill::from_args(&args.common)?;
    if drill.dev_dir.is_none() {
        return Err(super::nodes::UsageError(
            "rolling-restart needs --dev-dir: the dev cluster restarts its nodes".to_owned(),
        )
        .into());
    }
    let n = drill.targets.len();
    let mode = drill.mode();
    eprintln!(
        "gameday rolling-restart: {mode}, {n} nodes; {}",
        super::failover::load_line(&args.common, n)
    );
    let load = Load::from_flags(&drill.targets, &args.common);
    std::thread::sleep(Duration::from_secs(args.common.warmup));
    let mut rows = Vec::new();
    for i in 0..n {
        let name = drill.targets[i].name.clone();
        let started = Instant::now();
        let answer = match drill.control("restart", i) {
            Ok(answer) => answer,
            Err(e) => {
                drop(load.stop());
                return Err(e.context(format!("restarting {name}")));
            }
        };
        let others: Vec<usize> = (0..n).filter(|&j| j != i).collect();
        let back = drill.wait(BACK_LIMIT, || {
            let leader = others
                .iter()
                .find_map(|&j| drill.status(j)["leader"].as_str().map(str::to_owned));
            drill.back(i, leader.as_deref())
        });
        let Some(_) = back else {
            drop(load.stop());
            bail!("{name} was not back within {BACK_LIMIT:?} after its restart");
        };
        let ready_ms = started.elapsed().as_millis() as u64;
        eprintln!("gameday rolling-restart: {name} restarted, back after {ready_ms} ms");
        rows.push(json!({
            "node": name,
            "exit": answer["exit"],
            "stopped_ms": answer["stopped_ms"],
            "listening_ms": answer["listening_ms"],
            "ready_ms": ready_ms,
        }));
        std::thread::sleep(Duration::from_secs(args.pause));
    }
    let took = load.t0.elapsed();
    let (clients, lb) = load.stop();

    println!(
        "\nGame day: rolling restart, {mode}, {n} nodes, {}; {:.1} s in all.\n",
        super::failover::load_line(&args.common, n),
        took.as_secs_f64()
    );
    print!("{}", table::clients(&clients));
    eprint!("{}", table::examples(&clients));
    println!("\n| node | old process exited | SIGTERM → exit | start → listening | SIGTERM → back |\n|---|---|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} |",
            r["node"].as_str().unwrap_or("?"),
            r["exit"].as_str().unwrap_or("?"),
            table::ms(r["stopped_ms"].as_u64()),
            table::ms(r["listening_ms"].as_u64()),
            table::ms(r["ready_ms"].as_u64()),
        );
    }
    println!(
        "\nLongest stretch with no node ready (the load balancer's health check): {}\n",
        table::ms(Some(lb.no_ready.as_millis() as u64))
    );
    if let Some(path) = &args.common.json {
        let summary = json!({"drill": "rolling-restart", "mode": mode, "nodes": n, "restarts": rows, "clients": clients,
            "no_node_ready_ms": lb.no_ready.as_millis() as u64});
        std::fs::write(path, serde_json::to_vec_pretty(&summary)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
