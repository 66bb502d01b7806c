//! `evenkeel move` and `evenkeel migrations`.

use crate::admin::AdminClient;
use anyhow::bail;
use evenkeel_coord::api::{MigrationInfo, ModeOverrides};
use std::time::Duration;

/// How often `--wait` polls the admin API.
const POLL: Duration = Duration::from_millis(250);

pub async fn move_partition(admin: &str, partition: u16, node: u32, modes: ModeOverrides, wait: bool, json: bool) -> anyhow::Result<()> {
    let client = AdminClient::new(admin)?;
    let started = client.start_move(partition, node, modes).await?;
    if !json {
        println!("{}: moving partition {} from node {} to node {}", started.id, partition, started.source, node);
    }
    let last = if wait { follow(&client, &started.id, json).await? } else { started };
    if json {
        println!("{}", serde_json::to_string_pretty(&last)?);
    }
    if wait && last.state != "DONE" {
        bail!("migration {} ended {}{}", last.id, last.state, last.error.map(|e| format!(": {e}")).unwrap_or_default());
    }
    Ok(())
}

/// Prints each state the migration enters until it ends; returns the end.
async fn follow(client: &AdminClient, id: &str, quiet: bool) -> anyhow::Result<MigrationInfo> {
    let mut printed = 0;
    loop {
        let Some(m) = client.migrations().await?.migrations.into_iter().find(|m| m.id == id) else {
            bail!("migration {id} disappeared from the admin API");
        };
        for t in m.transitions.iter().skip(printed) {
            if !quiet {
                println!("  {:<18} keys copied {:>10}  bytes copied {:>12}", t.state, m.keys_copied, m.bytes_copied);
            }
        }
        printed = m.transitions.len();
        if m.has_ended() {
            if !quiet && let Some(p) = m.cutover_pause_ms {
                println!("  cutover paused writes for {p} ms");
            }
            if !quiet {
                println!("{}", mirror_line(&m));
            }
            return Ok(m);
        }
        tokio::time::sleep(POLL).await;
    }
}

pub async fn list(admin: &str, json: bool) -> anyhow::Result<()> {
    let list = AdminClient::new(admin)?.migrations().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    println!("{:<22} {:>9} {:>6} {:>6} {:<18} {:>10} {:>12} {:>11} {:>9}", "ID", "PARTITION", "FROM", "TO", "STATE", "KEYS", "BYTES", "COPY_RATE", "PAUSE_MS");
    let now = evenkeel_types::unix_ms();
    for m in &list.migrations {
        let pause = m.cutover_pause_ms.map_or("-".to_string(), |p| p.to_string());
        let rate = m.copy_rate_bytes_per_s(now).map_or("-".to_string(), |r| format!("{}/s", crate::progress::human(r as u64)));
        println!("{:<22} {:>9} {:>6} {:>6} {:<18} {:>10} {:>12} {:>11} {:>9}", m.id, m.partition, m.source, m.target, m.state, m.keys_copied, m.bytes_copied, rate, pause);
        println!("{}", mirror_line(m));
        if let Some(e) = &m.error {
            println!("  {e}");
        }
    }
    Ok(())
}

/// What routers mirrored for `m` and what the change log still had to
/// apply: `  dual-writes 812 (0 dropped, 0 failed), copied on read 40;
/// shadow reads 95 compared, 3 lagging, 0 mismatched; catch-up applied 2 of
/// 830 entries, drain 0 of 4`, with `, 12 too large to mirror` after the
/// copies on read when sources withheld records.
fn mirror_line(m: &MigrationInfo) -> String {
    let (c, s) = (&m.mirror, &m.mirror.shadow);
    let withheld = if c.withheld > 0 { format!(", {} too large to mirror", c.withheld) } else { String::new() };
    format!(
        "  dual-writes {} ({} dropped, {} failed), copied on read {}{withheld}; shadow reads {} compared, {} lagging, {} mismatched; catch-up applied {} of {} entries, drain {} of {}",
        c.dual_writes, c.dropped, c.failed, c.copied_on_read, s.compared, s.lagging, s.mismatched, m.catch_up.applied, m.catch_up.entries, m.drain.applied, m.drain.entries
    )
}

pub async fn control(admin: &str, action: &str, id: &str) -> anyhow::Result<()> {
    let m = AdminClient::new(admin)?.control(id, action).await?;
    println!("{}: {action} accepted (state {})", m.id, m.state);
    Ok(())
}
