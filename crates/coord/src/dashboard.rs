//! The coordinator's web dashboard (`GET /` and `/dashboard` on the admin
//! address): one page, rendered on the server from the same state the JSON
//! API serves, that reloads itself every [`REFRESH_S`] seconds.
//!
//! It shows what an operator watches during a rebalance: the disruption
//! budget (the throttle's rate and why, foreground p99 of the last five
//! minutes against the baseline and the budget line, client errors of the
//! store's making), the rebalance and its stages, the migrations in flight
//! (and the last ones ended) with their progress, the nodes with their
//! health gates, and the partition map (each partition's owner, moving
//! ones marked).
//!
//! Read-only by design: it changes nothing, so a page left open, a crawler
//! or a cross-site request cannot pause a migration; every action it
//! suggests is a CLI command. Built with maud, which escapes every value
//! it interpolates (stage names, error messages and addresses come from
//! operators and from the network). No script: the page is a plain
//! document, readable with any browser or `curl`.

use crate::api::{ClusterStatus, MigrationInfo, NodeStatus, PartitionStatus, ThrottleStatus};
use crate::rebalance::Rebalance;
use crate::stages::{self, Stage, StagePhase};
use crate::throttle::Sample;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use std::collections::HashMap;
use std::fmt::Write as _;

/// Seconds between reloads.
pub const REFRESH_S: u32 = 2;
/// The latency chart's span.
pub const CHART_MS: u64 = 300_000;
/// Ended migrations listed below the running ones.
const ENDED_SHOWN: usize = 10;
/// Busiest partitions listed under the partition map.
const BUSIEST: usize = 5;

/// Everything one page shows.
pub struct View<'a> {
    pub now_ms: u64,
    pub leader: bool,
    pub status: &'a ClusterStatus,
    /// Every migration listed (running and ended), any order.
    pub migrations: &'a [MigrationInfo],
    pub rebalance: Option<&'a Rebalance>,
    /// How long it still needs (while active).
    pub remaining: Option<&'a crate::estimate::Estimate>,
    pub throttle: &'a ThrottleStatus,
    /// The foreground's seconds over the last [`CHART_MS`], oldest first.
    pub samples: &'a [Sample],
    /// Automatic rebalancing's last decision (None: off).
    pub auto: Option<&'a str>,
}

const CSS: &str = "body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;margin:16px auto;max-width:1200px;color:#222;padding:0 12px}\
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:22px 0 6px;border-bottom:1px solid #ddd;padding-bottom:3px}\
table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;padding:3px 8px;border-bottom:1px solid #eee;vertical-align:top}\
th{background:#f6f6f6;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}.muted{color:#777}\
.bad{color:#b00020;font-weight:600}.ok{color:#1b7f2a}.warn{color:#b26a00}progress{width:140px}\
.grid{display:flex;flex-wrap:wrap;gap:2px}.cell{width:14px;height:14px;border-radius:2px}.cell.moving{outline:2px solid #222;outline-offset:-1px}\
.kv{display:grid;grid-template-columns:max-content auto;gap:2px 14px}.legend span{display:inline-block;margin-right:12px}code{background:#f3f3f3;padding:0 3px}";

/// Node colours for the partition map, by node id.
const PALETTE: [&str; 10] = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];

fn colour(node: u32) -> &'static str {
    PALETTE[node as usize % PALETTE.len()]
}

/// The whole page.
pub fn render(v: &View) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="refresh" content=(REFRESH_S);
                title { "evenkeel dashboard" }
                style { (PreEscaped(CSS)) }
            }
            body {
                h1 { "evenkeel" }
                p.muted {
                    "epoch " (v.status.epoch) " · " (v.status.nodes.len()) " nodes · " (v.status.num_partitions) " partitions · "
                    @if v.leader { "this coordinator leads" } @else { span.warn { "this coordinator is standing by: the leader's decisions are not shown" } }
                    " · reloads every " (REFRESH_S) " s"
                }
                @if !v.status.bootstrapped { p.warn { "The cluster is not bootstrapped yet: waiting for nodes." } }
                (budget(v))
                (rebalance(v))
                (migrations(v))
                (nodes(v))
                (partition_map(v))
            }
        }
    }
}

fn us(us: u64) -> String {
    if us >= 10_000 { format!("{:.1} ms", us as f64 / 1000.0) } else { format!("{us} µs") }
}

fn bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{b} B") } else { format!("{v:.1} {}", UNITS[unit]) }
}

fn rate(r: Option<f64>) -> String {
    r.map_or("unlimited".into(), |r| format!("{}/s", bytes(r as u64)))
}

fn budget(v: &View) -> Markup {
    let t = v.throttle;
    let used = t.budget_used.map(|u| u * 100.0);
    html! {
        h2 { "Disruption budget" }
        div.kv {
            span { "migration rate" } span { (rate(t.rate_bytes_per_s)) " per migration " span.muted { "(" (t.reason) ")" } }
            span { "foreground p99" } span { (us(t.p99_us)) " in the last second, " (t.ops_last_s) " requests, from the " (t.signal) }
            span { "baseline p99" } span {
                @match t.baseline_p99_us { Some(b) => { (us(b)) } None => { span.muted { "not measured yet" } } }
                @if t.baseline_frozen { span.muted { " (frozen while migrations are in flight)" } }
            }
            span { "p99 / baseline" } span {
                @match t.p99_ratio {
                    Some(r) if r > t.budget_ratio => { span.bad { (format!("{r:.2}x")) } }
                    Some(r) => { span.ok { (format!("{r:.2}x")) } }
                    None => { span.muted { "-" } }
                }
                " of a budget of " (format!("{:.2}x", t.budget_ratio))
                @if let Some(u) = used { " (" (format!("{u:.0}%")) " used)" }
            }
            span { "client errors" } span {
                @if t.client_unavailable_total == 0 { span.ok { "none" } } @else { span.bad { (t.client_unavailable_total) } }
                span.muted { " of the store's making (TRYAGAIN, CLUSTERDOWN) since this coordinator began leading" }
            }
        }
        (chart(v))
    }
}

/// The last five minutes of per-second p99 against the baseline and the
/// budget line, as inline SVG.
fn chart(v: &View) -> Markup {
    const W: f64 = 1000.0;
    const H: f64 = 160.0;
    const LEFT: f64 = 60.0;
    let t = v.throttle;
    let budget_us = t.baseline_p99_us.map(|b| b as f64 * t.budget_ratio);
    let top = v.samples.iter().map(|s| s.p99_us as f64).chain(budget_us).fold(1.0, f64::max) * 1.1;
    let start = v.now_ms.saturating_sub(CHART_MS);
    let x = |at: u64| LEFT + (at.saturating_sub(start) as f64 / CHART_MS as f64) * (W - LEFT - 10.0);
    let y = |value: f64| 10.0 + (1.0 - value / top) * (H - 30.0);
    let mut points = String::new();
    for s in v.samples {
        let _ = write!(points, "{:.1},{:.1} ", x(s.at_ms), y(s.p99_us as f64));
    }
    html! {
        svg width="100%" viewBox=(format!("0 0 {W} {H}")) role="img" aria-label="foreground p99 per second, last five minutes" {
            rect x=(LEFT) y="10" width=(W - LEFT - 10.0) height=(H - 30.0) fill="#fafafa" stroke="#ddd" {}
            text x="4" y="16" font-size="11" fill="#555" { (us(top as u64)) }
            text x="4" y=(H - 20.0) font-size="11" fill="#555" { "0" }
            text x=(LEFT) y=(H - 4.0) font-size="11" fill="#555" { "-5 min" }
            text x=(W - 40.0) y=(H - 4.0) font-size="11" fill="#555" { "now" }
            @if let Some(b) = t.baseline_p99_us {
                line.baseline x1=(LEFT) x2=(W - 10.0) y1=(y(b as f64)) y2=(y(b as f64)) stroke="#1b7f2a" stroke-dasharray="4 3" {}
            }
            @if let Some(limit) = budget_us {
                line.budget x1=(LEFT) x2=(W - 10.0) y1=(y(limit)) y2=(y(limit)) stroke="#b00020" stroke-dasharray="6 3" {}
            }
            polyline.p99 points=(points.trim_end()) fill="none" stroke="#e6820e" stroke-width="1.5" {}
        }
        p.legend.muted { span { "orange: p99 per second" } span { "green: baseline" } span { "red: budget" } }
    }
}

fn rebalance(v: &View) -> Markup {
    let auto = html! { @if let Some(why) = v.auto { p.muted { "automatic rebalancing: " (why) } } };
    let Some(r) = v.rebalance else {
        return html! { h2 { "Rebalance" } p.muted { "None has run. " code { "evenkeel rebalance plan" } " shows what one would move." } (auto) };
    };
    let phase: HashMap<&str, &str> = v.migrations.iter().map(|m| (m.id.as_str(), m.state.as_str())).collect();
    let done = r.migrations.iter().flatten().filter(|id| phase.get(id.as_str()) == Some(&"DONE")).count();
    html! {
        h2 { "Rebalance " (r.id) @if let Some(why) = r.started_because() { " " span.muted { "(started automatically: " (why) ")" } } }
        (auto)
        @if let Some(l) = r.plan.load.filter(|l| l.swaps > 0) {
            p { (format!("load: {} swaps; the busiest node carried {:.2}x its share of the client load, {:.2}x planned after", l.swaps, l.spread_before, l.spread_after)) }
        }
        p {
            strong { (format!("{:?}", r.state)) } ": " (done) " of " (r.plan.moves.len()) " moves done, " (bytes(r.plan.moved_bytes)) " of " (bytes(r.plan.total_bytes)) " to move"
            @if let Some(e) = v.remaining { br; "left: " (e.describe()) }
            @if let Some(why) = &r.halted {
                br; span.bad { "halted: " (why) } br;
                @if r.state.is_active() {
                    span.muted { code { "evenkeel rebalance resume" } " goes on, " code { "rollback" } " hands back what is in bake, " code { "cancel" } " stops" }
                } @else {
                    span.muted { "rolled back: the moves in their bake were handed back, the others cancelled" }
                }
            }
        }
        @if !r.stages.is_empty() {
            table {
                tr { th { "stage" } th { "share" } th.n { "moves" } th { "bake" } th { "gate" } th { "state" } }
                @for (i, s) in r.stages.iter().enumerate() {
                    tr {
                        td { @if i == r.stage && r.state.is_active() { "▶ " } (s.spec.name) }
                        td { "up to " (s.spec.share_percent) "%" }
                        td.n { (s.moves.len()) }
                        td { (stages::format_ms(s.spec.bake_ms)) }
                        td { @if s.spec.approval { "approval" } @else { "-" } }
                        td { (stage_state(s, v.now_ms)) }
                    }
                }
            }
        }
    }
}

/// [`Stage::describe`], coloured by outcome.
fn stage_state(s: &Stage, now_ms: u64) -> Markup {
    let class = match s.phase() {
        StagePhase::Failed => "bad",
        StagePhase::Passed => "ok",
        StagePhase::AwaitingApproval => "warn",
        _ => "",
    };
    html! { span class=(class) { (s.describe(now_ms)) } }
}

fn migrations(v: &View) -> Markup {
    let mut running: Vec<&MigrationInfo> = v.migrations.iter().filter(|m| !m.has_ended()).collect();
    running.sort_by_key(|m| (m.started_ms, m.partition));
    let mut ended: Vec<&MigrationInfo> = v.migrations.iter().filter(|m| m.has_ended()).collect();
    ended.sort_by_key(|m| std::cmp::Reverse(m.finished_ms.unwrap_or(m.started_ms)));
    ended.truncate(ENDED_SHOWN);
    html! {
        h2 { "Migrations" }
        @if running.is_empty() && ended.is_empty() {
            p.muted { "None yet." }
        } @else {
            table {
                tr { th { "partition" } th { "move" } th { "state" } th { "copied" } th.n { "lag" } th.n { "cutover pause" } th { "id" } }
                @for m in running.iter().chain(ended.iter()) {
                    tr {
                        td { (m.partition) }
                        td { (m.source) " → " (m.target) }
                        td {
                            @if m.state == "DONE" { span.ok { (m.state) } }
                            @else if m.has_ended() { span.bad { (m.state) } }
                            @else { (m.state) }
                            @if let Some(e) = &m.error { br; span.muted { (e) } }
                        }
                        td {
                            @if let Some(total) = m.bytes_total.filter(|t| *t > 0) {
                                progress value=(m.bytes_copied.min(total)) max=(total) {}
                                " "
                            }
                            (bytes(m.bytes_copied))
                        }
                        td.n { @match m.lag_entries { Some(l) => { (l) } None => { "-" } } }
                        td.n { @match m.cutover_pause_ms { Some(p) => { (p) " ms" } None => { "-" } } }
                        td.muted { (m.id) }
                    }
                }
            }
        }
    }
}

fn nodes(v: &View) -> Markup {
    let gates: HashMap<u32, &crate::api::NodeGateStatus> = v.throttle.nodes.iter().map(|g| (g.node, g)).collect();
    html! {
        h2 { "Nodes" }
        table {
            tr { th { "node" } th { "address" } th { "zone" } th { "state" } th { "health" } th.n { "partitions" } th.n { "keys" } th.n { "bytes" } th.n { "p99" } th.n { "ops/s" } th.n { "disk free" } }
            @for n in &v.status.nodes {
                tr {
                    td { span style=(format!("color:{}", colour(n.id))) { "■ " } (n.id) }
                    td { (n.addr) }
                    td { @match &n.zone { Some(z) => { (z) } None => { span.muted { "-" } } } }
                    td { (format!("{:?}", n.state).to_lowercase()) }
                    td { (health(n, gates.get(&n.id).copied())) }
                    td.n { (n.partitions) }
                    td.n { (n.keys) }
                    td.n { (bytes(n.bytes)) }
                    td.n { (us(n.p99_us)) }
                    td.n { (n.ops_last_s) }
                    td.n { (bytes(n.disk_free_bytes)) }
                }
            }
        }
        @if !v.status.removed_nodes.is_empty() {
            p.muted { "removed: " (v.status.removed_nodes.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")) }
        }
    }
}

fn health(n: &NodeStatus, gate: Option<&crate::api::NodeGateStatus>) -> Markup {
    html! {
        @if !n.live { span.bad { "down" } }
        @else if !n.healthy { span.bad { "unhealthy" } }
        @else { span.ok { "healthy" } }
        @if let Some(p) = &n.problem { br; span.muted { (p) } }
        @if let Some(g) = gate.filter(|g| g.state != "open") {
            br; span.warn { "gate " (g.state) } " " span.muted { (g.reasons.join("; ")) }
        }
    }
}

fn partition_map(v: &View) -> Markup {
    let moving: HashMap<u16, &MigrationInfo> = v.migrations.iter().filter(|m| !m.has_ended()).map(|m| (m.partition, m)).collect();
    html! {
        h2 { "Partitions" }
        div.grid {
            @for p in &v.status.partitions {
                @let m = moving.get(&p.id);
                @let tip = match m {
                    Some(m) => format!("partition {}: node {}, {} keys, {}, {:.1} ops/s; moving {} → {} ({})", p.id, p.owner, p.keys, bytes(p.bytes), p.ops_per_s(), m.source, m.target, m.state),
                    None => format!("partition {}: node {}, {} keys, {}, {:.1} ops/s", p.id, p.owner, p.keys, bytes(p.bytes), p.ops_per_s()),
                };
                div.cell.moving[m.is_some()] style=(format!("background:{}", colour(p.owner))) title=(tip) {}
            }
        }
        p.legend.muted {
            @for n in &v.status.nodes { span { span style=(format!("color:{}", colour(n.id))) { "■" } " node " (n.id) } }
            span { "outlined: moving" }
        }
        (busiest(v))
    }
}

/// The partitions with the most client traffic, and each one's share:
/// the ones a staged rebalance moves last.
fn busiest(v: &View) -> Markup {
    let total: f64 = v.status.partitions.iter().map(PartitionStatus::ops_per_s).sum();
    let mut hot: Vec<&PartitionStatus> = v.status.partitions.iter().filter(|p| p.ops_per_s() > 0.0).collect();
    hot.sort_by(|a, b| b.ops_per_s().total_cmp(&a.ops_per_s()).then(a.id.cmp(&b.id)));
    hot.truncate(BUSIEST);
    html! {
        @if !hot.is_empty() {
            h3 { "Busiest partitions" }
            table {
                tr { th.n { "partition" } th { "node" } th.n { "reads/s" } th.n { "writes/s" } th.n { "share" } th.n { "bytes" } }
                @for p in hot {
                    tr {
                        td.n { (p.id) }
                        td { span style=(format!("color:{}", colour(p.owner))) { "■ " } (p.owner) }
                        td.n { (format!("{:.1}", p.reads_per_s)) }
                        td.n { (format!("{:.1}", p.writes_per_s)) }
                        td.n { (format!("{:.1}%", 100.0 * p.ops_per_s() / total)) }
                        td.n { (bytes(p.bytes)) }
                    }
                }
            }
            p.muted { (format!("{total:.1} ops/s in all, averaged over about a minute; a staged rebalance moves the quietest partitions first")) }
        }
        @if !v.status.hot_keys.is_empty() {
            h3 { "Busiest keys" }
            table {
                tr { th { "key" } th { "node" } th.n { "partition" } th.n { "ops/s" } th.n { "±" } }
                @for k in v.status.hot_keys.iter().take(BUSIEST) {
                    tr {
                        td { code { (k.key) @if k.truncated { "…" } } }
                        td { span style=(format!("color:{}", colour(k.node))) { "■ " } (k.node) }
                        td.n { (k.partition) }
                        td.n { (format!("{:.1}", k.ops_per_s)) }
                        td.n { (format!("{:.1}", k.error_ops_per_s)) }
                    }
                }
            }
            p.muted { "sampled on the nodes, one op in 16 over about 10 s" }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::HotKeyStatus;
    use crate::plan::{Move, Plan};
    use crate::rebalance::{Limits, State};
    use crate::stages::{StageSpec, Verdict};

    fn node(id: u32) -> NodeStatus {
        NodeStatus {
            addr: format!("127.0.0.1:{}", 7000 + id),
            zone: (id == 4).then(|| "zone-b".to_string()),
            healthy: id != 3,
            problem: (id == 3).then(|| "p99 12 ms".to_string()),
            partitions: 2,
            keys: 10,
            bytes: 2048,
            p99_us: 420,
            disk_free_bytes: 1 << 30,
            ..NodeStatus::for_tests(id)
        }
    }

    fn migration(id: &str, partition: u16, state: &str) -> MigrationInfo {
        MigrationInfo {
            id: id.into(),
            partition,
            source: 1,
            target: 4,
            state: state.into(),
            started_ms: 1_000,
            finished_ms: (state == "DONE").then_some(2_000),
            bytes_copied: 512,
            keys_copied: 5,
            cutover_pause_ms: None,
            transitions: vec![],
            error: None,
            bytes_total: Some(2048),
            lag_entries: Some(3),
            modes: None,
            mirror: Default::default(),
            catch_up: Default::default(),
            drain: Default::default(),
        }
    }

    #[test]
    fn the_page_shows_budget_rebalance_migrations_nodes_and_partitions_escaped() {
        let status = ClusterStatus {
            bootstrapped: true,
            epoch: 7,
            num_partitions: 4,
            leader: true,
            nodes: (1..=4).map(node).collect(),
            partitions: (0..4)
                .map(|p| {
                    let (reads_per_s, writes_per_s) = [(10.0, 0.0), (0.0, 0.0), (30.0, 10.0), (0.0, 0.0)][p as usize];
                    PartitionStatus { id: p, owner: 1 + p as u32 % 3, epoch: 7, keys: 10, bytes: 1024, log_next: 0, tombstones: 0, reads_per_s, writes_per_s }
                })
                .collect(),
            removed_nodes: vec![],
            hot_keys: vec![HotKeyStatus { key: "\"<b>hot</b>\"".into(), node: 3, partition: 2, ops_per_s: 32.0, error_ops_per_s: 1.6, truncated: false }],
        };
        let migrations = vec![migration("m-run", 2, "COPYING"), migration("m-done", 1, "DONE")];
        let mut stage = Stage::new(StageSpec { name: "<script>alert(1)</script>".into(), share_percent: 10.0, bake_ms: 60_000, approval: true, rings: None }, vec![0]);
        stage.started_ms = Some(1);
        stage.verdict = Some(Verdict { passed: true, at_ms: 2, detail: "no client errors".into(), p99_ratio: Some(1.02), moving_p99_ratio: None, unavailable: 0, seconds: 60 });
        let r = Rebalance {
            id: "r1".into(),
            state: State::Running,
            created_ms: 0,
            finished_ms: None,
            plan: Plan { moves: vec![Move { partition: 1, from: 1, to: 4, bytes: 1024, ops_per_s: 0 }], moved_bytes: 1024, total_bytes: 4096, before: vec![], after: vec![], load: None },
            migrations: vec![Some("m-done".into())],
            skipped: vec![None],
            limits: Limits::default(),
            stages: vec![stage],
            stage: 0,
            halted: None,
            baseline_p99_us: Some(400),
            on_stage_failure: Default::default(),
            membership: None,
            auto: true,
            stage_p99_ratio_max: None,
        };
        let throttle = ThrottleStatus { p99_us: 600, baseline_p99_us: Some(400), budget_ratio: 1.1, p99_ratio: Some(1.5), client_unavailable_total: 2, reason: "cut: p99 1.50x baseline".into(), ..Default::default() };
        let samples: Vec<Sample> = (0..30).map(|i| Sample { at_ms: 300_000 + i * 1000, p99_us: 400 + i, ops: 1000 }).collect();
        let cost = crate::estimate::MoveCost { overhead_ms: 1000.0, bytes_per_s: 1048576.0, tail_ms: 0.0, samples: 0, rate_samples: 0 };
        let left = crate::estimate::Basis { cost, limits: Limits::default(), waiting_ms: Some(0) }.estimate(75_000.0, 0);
        let view = View { now_ms: 330_000, leader: true, status: &status, migrations: &migrations, rebalance: Some(&r), remaining: Some(&left), throttle: &throttle, samples: &samples, auto: Some("a rebalance is running") };
        let page = render(&view).into_string();
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains("left: about 1m15s ("), "{page}");
        assert!(page.contains("started automatically") && page.contains("automatic rebalancing: a rebalance is running"));
        assert!(page.contains(r#"http-equiv="refresh" content="2""#));
        // Operator-supplied text is escaped, never markup.
        assert!(!page.contains("<script>") && page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{page}");
        assert!(page.contains(r#"<span class="warn">passed, awaiting `evenkeel rebalance approve` (no client errors)</span>"#), "{page}");
        assert!(page.contains("cut: p99 1.50x baseline") && page.contains(r#"<span class="bad">1.50x</span>"#));
        assert!(page.contains(r#"<span class="bad">2</span>"#), "two client errors shown as bad");
        // One chart point per sample, and the budget line at 440 µs.
        let points = page.split("points=\"").nth(1).unwrap().split('"').next().unwrap();
        assert_eq!(points.split(' ').count(), 30);
        assert!(page.contains(r#"class="budget""#) && page.contains(r#"class="baseline""#));
        // Running migrations first, with progress; the ended one after.
        let run = page.find("m-run").unwrap();
        assert!(run < page.find("m-done").unwrap());
        assert!(page.contains(r#"<progress value="512" max="2048">"#));
        // Four nodes, node 3 unhealthy with its problem; four cells, one moving.
        assert_eq!(page.matches("127.0.0.1:700").count(), 4);
        assert!(page.contains("unhealthy") && page.contains("p99 12 ms"));
        assert!(page.contains("<td>zone-b</td>"), "node 4's zone");
        assert_eq!(page.matches(r#"class="cell"#).count(), 4);
        assert_eq!(page.matches(r#"class="cell moving""#).count(), 1);
        assert!(page.contains("moving 1 → 4 (COPYING)"));
        assert!(page.contains("partition 2: node 3, 10 keys, 1.0 KiB, 40.0 ops/s; moving"), "{page}");
        // The busiest partitions, with their share; idle ones not listed.
        let busiest = page.split("Busiest partitions").nth(1).unwrap();
        let p2 = busiest.find("<td class=\"n\">80.0%</td>").unwrap();
        assert!(p2 < busiest.find("<td class=\"n\">20.0%</td>").unwrap(), "{busiest}");
        assert_eq!(busiest.matches("%</td>").count(), 2, "{busiest}");
        assert!(busiest.contains("50.0 ops/s in all"));
        assert!(busiest.contains("Busiest keys") && busiest.contains("<code>&quot;&lt;b&gt;hot&lt;/b&gt;&quot;</code>") && busiest.contains("32.0"), "{busiest}");
    }

    #[test]
    fn an_empty_cluster_renders_too() {
        let status = ClusterStatus { bootstrapped: false, epoch: 0, num_partitions: 0, leader: false, nodes: vec![], partitions: vec![], removed_nodes: vec![], hot_keys: vec![] };
        let throttle = ThrottleStatus::default();
        let page = render(&View { now_ms: 0, leader: false, status: &status, migrations: &[], rebalance: None, remaining: None, throttle: &throttle, samples: &[], auto: None }).into_string();
        assert!(page.contains("not bootstrapped") && page.contains("standing by") && page.contains("None has run"));
        assert!(page.contains("not measured yet") && !page.contains("automatic rebalancing"));
    }
}
