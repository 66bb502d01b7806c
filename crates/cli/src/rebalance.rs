//! `evenkeel rebalance plan | start [--wait] [--stages SPEC] | status | pause | resume | cancel | rollback | approve`.

use crate::admin::AdminClient;
use anyhow::bail;
use evenkeel_coord::api::RebalanceStatus;
use evenkeel_coord::plan::{MoveSpec, Plan};
use evenkeel_coord::rebalance::{PlanPreview, Rebalance, StartRequest, State};
use std::time::Duration;

const POLL: Duration = Duration::from_millis(500);

pub async fn plan(admin: &str, stages: Option<&str>, balance_load: Option<bool>, load_tolerance: Option<f64>, json: bool) -> anyhow::Result<()> {
    let mut query: Vec<(&str, String)> = Vec::new();
    if let Some(spec) = stages {
        evenkeel_coord::stages::parse(spec).map_err(|e| anyhow::anyhow!("--stages: {e}"))?;
        query.push(("stages", spec.to_string()));
    }
    if let Some(b) = balance_load {
        query.push(("balance_load", b.to_string()));
    }
    if let Some(t) = load_tolerance {
        query.push(("load_tolerance", t.to_string()));
    }
    let preview: PlanPreview = AdminClient::new(admin)?.get_json_query("/v1/rebalance/plan", &query.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>()).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&preview)?);
        return Ok(());
    }
    print_plan(&preview.plan);
    if let Some(e) = &preview.estimate {
        println!("duration: {}", e.describe());
    }
    for (i, st) in preview.stages.iter().enumerate() {
        let partitions: Vec<String> = st.moves.iter().map(|&m| preview.plan.moves[m].partition.to_string()).collect();
        let gate = if st.spec.approval { ", approval gate" } else { "" };
        println!("stage {} {:?}: {} moves (partitions {}), bake {}{gate}", i + 1, st.spec.name, st.moves.len(), partitions.join(" "), evenkeel_coord::stages::format_ms(st.spec.bake_ms));
    }
    if !preview.plan.moves.is_empty() {
        println!("(`rebalance start` plans again; to run exactly these moves: `rebalance plan --json > plan.json`, then `rebalance start --plan plan.json`)");
    }
    Ok(())
}

/// The moves of a plan file (`rebalance plan --json`'s output, or any JSON
/// object with a `moves` list of `{partition, from, to}`); `-` reads
/// standard input.
pub fn read_plan(path: &std::path::Path) -> anyhow::Result<Vec<MoveSpec>> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).map_err(|e| anyhow::anyhow!("--plan -: reading standard input: {e}"))?
    } else {
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("--plan {}: {e}", path.display()))?
    };
    parse_plan(&text).map_err(|e| anyhow::anyhow!("--plan {}: {e}", path.display()))
}

fn parse_plan(text: &str) -> Result<Vec<MoveSpec>, String> {
    #[derive(serde::Deserialize)]
    struct PlanFile {
        moves: Option<Vec<MoveSpec>>,
    }
    let file: PlanFile = serde_json::from_str(text).map_err(|e| format!("not a plan: {e} (write one with `evenkeel rebalance plan --json > FILE`)"))?;
    file.moves.ok_or_else(|| "no \"moves\" list (write one with `evenkeel rebalance plan --json > FILE`)".to_string())
}

fn print_plan(plan: &Plan) {
    let pct = if plan.total_bytes == 0 { 0.0 } else { 100.0 * plan.moved_bytes as f64 / plan.total_bytes as f64 };
    println!("{} moves, {} of {} bytes ({pct:.1}%)", plan.moves.len(), plan.moved_bytes, plan.total_bytes);
    for m in &plan.moves {
        println!("  partition {:>5}: node {} -> node {} ({} bytes, {} ops/s)", m.partition, m.from, m.to, m.bytes, m.ops_per_s);
    }
    if let Some(l) = &plan.load {
        println!("load: {} swaps; the busiest node carries {:.2}x its share of the load now, {:.2}x after", l.swaps, l.spread_before, l.spread_after);
    }
    println!("{:<6} {:>18} {:>18}", "NODE", "BEFORE (parts/B)", "AFTER (parts/B)");
    for (b, a) in plan.before.iter().zip(&plan.after) {
        println!("{:<6} {:>7}/{:<10} {:>7}/{:<10}", b.id, b.partitions, b.bytes, a.partitions, a.bytes);
    }
}

pub async fn start(admin: &str, wait: bool, request: StartRequest, json: bool) -> anyhow::Result<()> {
    if let Some(stages) = request.stages.clone() {
        // Checked here too, so a typo fails before any request is sent.
        stages.resolve().map_err(|e| anyhow::anyhow!("--stages: {e}"))?;
    }
    let client = AdminClient::new(admin)?;
    let r: Rebalance = client.post_json_with("/v1/rebalance", &serde_json::to_value(&request)?).await?;
    if !json {
        let given = if request.moves.is_some() { " (the given plan)" } else { "" };
        println!("rebalance {} started: {} moves{given}", r.id, r.plan.moves.len());
        if let Some(l) = r.plan.load.filter(|l| l.swaps > 0) {
            println!("  {} of them in {} swaps for load (the busiest node at {:.2}x its share, {:.2}x after)", 2 * l.swaps, l.swaps, l.spread_before, l.spread_after);
        }
        for line in stage_lines(&r) {
            println!("  {line}");
        }
        // How long it will take, as the coordinator estimates it now.
        if let Ok(RebalanceStatus { remaining: Some(e), .. }) = client.get_json::<RebalanceStatus>("/v1/rebalance").await {
            println!("  {}", e.describe());
        }
    }
    if !wait {
        if json {
            println!("{}", serde_json::to_string_pretty(&r)?);
        }
        return Ok(());
    }
    let end = follow(&client, &r.id, json).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&end)?);
    }
    match end.rebalance {
        Some(r) if r.state == State::Done => Ok(()),
        Some(Rebalance { halted: Some(why), state: State::Cancelled, .. }) => bail!("rebalance halted and rolled back: {why}"),
        Some(Rebalance { halted: Some(why), .. }) => bail!("rebalance halted: {why}; `evenkeel rebalance resume` goes on, `rollback` hands back what is in bake, `cancel` stops"),
        Some(r) => bail!("rebalance ended {:?}", r.state),
        None => bail!("the rebalance record disappeared"),
    }
}

/// Shows progress until the rebalance with `id` ends.
async fn follow(client: &AdminClient, id: &str, quiet: bool) -> anyhow::Result<RebalanceStatus> {
    let mut display = crate::progress::Display::new(quiet);
    loop {
        let status: RebalanceStatus = client.get_json("/v1/rebalance").await?;
        let Some(r) = status.rebalance.as_ref().filter(|r| r.id == id) else { bail!("rebalance {id} was replaced") };
        if !quiet {
            display.update(&headline(r, &status), &status.migrations);
        }
        // A halted rebalance waits for a person: --wait reports it.
        if !r.state.is_active() || r.halted.is_some() {
            display.finish();
            return Ok(status);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The overall line plus the throttle's rate and why.
fn headline(r: &Rebalance, s: &RebalanceStatus) -> String {
    let mut line = progress_line(r, s);
    if let Some(stage) = r.current_stage() {
        line += &format!("\nstage {}/{} {:?}: {}", r.stage + 1, r.stages.len(), stage.spec.name, stage.describe(evenkeel_types::unix_ms()));
    }
    if let Some(why) = &r.halted {
        line += &format!("\nhalted: {why}");
    }
    if let Some(t) = &s.throttle {
        line += &format!("\nthrottle: {} per migration ({})", crate::throttle::fmt_rate(t.rate_bytes_per_s), t.reason);
    }
    if let Some(e) = &s.remaining {
        line += &format!("\nleft: {}", e.describe());
    }
    line
}

fn progress_line(r: &Rebalance, s: &RebalanceStatus) -> String {
    let count = |state: &str| s.migrations.iter().filter(|m| m.state == state).count();
    let bytes: u64 = s.migrations.iter().map(|m| m.bytes_copied).sum();
    let pause = s.migrations.iter().filter_map(|m| m.cutover_pause_ms).max();
    // Migrations in bake (COMPLETED) and cleanup are shown apart from those
    // copying or cutting over: only the latter count against the limits.
    let active = s.migrations.iter().filter(|m| !matches!(m.state.as_str(), "DONE" | "FAILED" | "ROLLED_BACK" | "CANCELLED" | "COMPLETED" | "CLEANING_UP")).count();
    format!(
        "{:?}: {}/{} moves done, {} moving, {} in bake, {} cleaning up, {} failed, {} bytes copied, largest cutover pause {}",
        r.state,
        count("DONE"),
        r.plan.moves.len(),
        active,
        count("COMPLETED"),
        count("CLEANING_UP"),
        count("FAILED") + count("ROLLED_BACK"),
        bytes,
        pause.map_or("-".to_string(), |p| format!("{p} ms")),
    )
}

pub async fn status(admin: &str, json: bool) -> anyhow::Result<()> {
    let status: RebalanceStatus = AdminClient::new(admin)?.get_json("/v1/rebalance").await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(());
    }
    if let Some(why) = &status.auto {
        println!("automatic rebalancing: {why}");
    }
    let Some(r) = &status.rebalance else {
        println!("no rebalance has run");
        return Ok(());
    };
    let how = r.started_because().map(|why| format!(" (started automatically: {why})")).unwrap_or_default();
    println!("rebalance {}{how}: {}", r.id, headline(r, &status));
    if let Some(l) = r.plan.load.filter(|l| l.swaps > 0) {
        println!("  load: {} swaps; the busiest node carried {:.2}x its share of the load, {:.2}x planned after", l.swaps, l.spread_before, l.spread_after);
    }
    for line in stage_lines(r) {
        println!("  {line}");
    }
    let now = evenkeel_types::unix_ms();
    for m in &status.migrations {
        // One poll gives no rate between polls; the copy's own average
        // (bytes over the time spent copying) does, once it has copied.
        let rate = m.copy_rate_bytes_per_s(now).filter(|_| m.bytes_copied > 0);
        println!("  {}", crate::progress::line(m, rate));
    }
    Ok(())
}

/// One line per stage: its share, moves, bake, gate and where it stands.
fn stage_lines(r: &Rebalance) -> Vec<String> {
    r.stages
        .iter()
        .enumerate()
        .map(|(i, st)| {
            let gate = if st.spec.approval { ", approval gate" } else { "" };
            format!(
                "stage {} {:?}: up to {}% of the moves ({} moves), bake {}{gate}: {}",
                i + 1,
                st.spec.name,
                st.spec.share_percent,
                st.moves.len(),
                evenkeel_coord::stages::format_ms(st.spec.bake_ms),
                st.describe(evenkeel_types::unix_ms())
            )
        })
        .collect()
}

pub async fn control(admin: &str, action: &str) -> anyhow::Result<()> {
    let r: Rebalance = AdminClient::new(admin)?.post_json(&format!("/v1/rebalance/{action}")).await?;
    println!("rebalance {}: {action} accepted, now {:?}", r.id, r.state);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_file_is_read_for_its_moves() {
        let file = r#"{"moves": [{"partition": 7, "from": 1, "to": 4, "bytes": 10, "ops_per_s": 0}, {"partition": 2, "from": 3, "to": 4}], "moved_bytes": 10, "stages": []}"#;
        assert_eq!(parse_plan(file).unwrap(), vec![MoveSpec { partition: 7, from: 1, to: 4 }, MoveSpec { partition: 2, from: 3, to: 4 }]);
        assert!(parse_plan(r#"{"stages": []}"#).unwrap_err().contains("no \"moves\" list"));
        assert!(parse_plan(r#"{"moves": [{"partition": 7, "from": 1}]}"#).unwrap_err().contains("missing field `to`"));
        assert!(parse_plan("moves: 7").unwrap_err().starts_with("not a plan"));
    }
}
