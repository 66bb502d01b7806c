//! `evenkeel cluster partitions`: every partition with its owner, size and
//! client load, busiest first by default, so an operator sees where the
//! traffic is (and which partitions a staged rebalance will move first:
//! the quietest, see `evenkeel_coord::stages::run_order`). `evenkeel
//! cluster hotkeys`: the busiest keys, and how much of their partition's
//! load each one is (a partition whose load is one key cannot be evened
//! out by moving partitions).

use crate::admin::AdminClient;
use crate::progress::human;
use anyhow::Context;
use evenkeel_coord::api::{ClusterStatus, HotKeyStatus, PartitionStatus};
use evenkeel_types::NodeId;

/// How `cluster partitions` lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Order {
    /// Busiest first (reads and writes per second).
    Load,
    /// Largest first.
    Bytes,
    /// Most keys first.
    Keys,
    /// By partition id.
    Id,
}

/// Which partitions to list and how.
#[derive(Debug, Clone, Copy)]
pub struct Listing {
    pub order: Order,
    /// At most this many (all when None).
    pub top: Option<usize>,
    /// Only this node's.
    pub node: Option<NodeId>,
}

pub async fn run(admin: &str, listing: Listing, json: bool) -> anyhow::Result<()> {
    let status = AdminClient::new(admin)?.cluster().await?;
    let chosen = select(&status, listing);
    if json {
        println!("{}", serde_json::to_string_pretty(&chosen).context("encoding JSON")?);
    } else {
        print!("{}", render(&status, &chosen));
    }
    Ok(())
}

/// The partitions `listing` asks for, in its order (ties by id).
pub fn select(status: &ClusterStatus, listing: Listing) -> Vec<PartitionStatus> {
    let mut parts: Vec<PartitionStatus> = status.partitions.iter().filter(|p| listing.node.is_none_or(|n| p.owner == n)).cloned().collect();
    match listing.order {
        Order::Load => parts.sort_by(|a, b| b.ops_per_s().total_cmp(&a.ops_per_s()).then(a.id.cmp(&b.id))),
        Order::Bytes => parts.sort_by_key(|p| (std::cmp::Reverse(p.bytes), p.id)),
        Order::Keys => parts.sort_by_key(|p| (std::cmp::Reverse(p.keys), p.id)),
        Order::Id => parts.sort_by_key(|p| p.id),
    }
    parts.truncate(listing.top.unwrap_or(usize::MAX));
    parts
}

/// A table of `parts`, with each one's share of the cluster's load.
pub fn render(status: &ClusterStatus, parts: &[PartitionStatus]) -> String {
    let total: f64 = status.partitions.iter().map(PartitionStatus::ops_per_s).sum();
    let mut out = format!("{:>9} {:>5} {:>8} {:>12} {:>10} {:>10} {:>10} {:>6}\n", "PARTITION", "OWNER", "EPOCH", "KEYS", "BYTES", "READS/S", "WRITES/S", "LOAD");
    for p in parts {
        let share = if total > 0.0 { format!("{:.1}%", 100.0 * p.ops_per_s() / total) } else { "-".to_string() };
        out += &format!(
            "{:>9} {:>5} {:>8} {:>12} {:>10} {:>10.1} {:>10.1} {:>6}\n",
            p.id,
            p.owner,
            p.epoch,
            p.keys,
            human(p.bytes),
            p.reads_per_s,
            p.writes_per_s,
            share
        );
    }
    let shown = if parts.len() < status.partitions.len() { format!("{} of {} partitions", parts.len(), status.partitions.len()) } else { format!("{} partitions", parts.len()) };
    out += &format!("{shown}; the cluster serves {total:.1} ops/s (averaged over about a minute)\n");
    out
}

pub async fn hot_keys(admin: &str, top: usize, json: bool) -> anyhow::Result<()> {
    let status = AdminClient::new(admin)?.cluster().await?;
    let keys: Vec<HotKeyStatus> = status.hot_keys.iter().take(top).cloned().collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&keys).context("encoding JSON")?);
    } else {
        print!("{}", render_hot_keys(&status, &keys));
    }
    Ok(())
}

/// A table of `keys` with each one's share of its partition's load.
pub fn render_hot_keys(status: &ClusterStatus, keys: &[HotKeyStatus]) -> String {
    if keys.is_empty() {
        return "no key stands out yet (nodes sample one op in 16 and report every 10 s)\n".to_string();
    }
    let mut out = format!("{:<40} {:>5} {:>9} {:>10} {:>8} {:>10}\n", "KEY", "NODE", "PARTITION", "OPS/S", "±", "OF PART.");
    for k in keys {
        let part = status.partitions.iter().find(|p| p.id == k.partition).map_or(0.0, PartitionStatus::ops_per_s);
        let share = if part > 0.0 { format!("{:.0}%", (100.0 * k.ops_per_s / part).min(100.0)) } else { "-".to_string() };
        let key = if k.truncated { format!("{}...", k.key) } else { k.key.clone() };
        out += &format!("{:<40} {:>5} {:>9} {:>10.1} {:>8.1} {:>10}\n", key, k.node, k.partition, k.ops_per_s, k.error_ops_per_s, share);
    }
    out += "sampled: one op in 16 over each node's last 10 s window; OPS/S may overstate a key by up to ±\n";
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(id: u16, owner: NodeId, bytes: u64, keys: u64, reads: f64, writes: f64) -> PartitionStatus {
        PartitionStatus { id, owner, epoch: 3, keys, bytes, log_next: 0, tombstones: 0, reads_per_s: reads, writes_per_s: writes }
    }

    fn status() -> ClusterStatus {
        ClusterStatus {
            bootstrapped: true,
            epoch: 3,
            num_partitions: 4,
            leader: true,
            nodes: vec![],
            partitions: vec![part(0, 1, 4096, 40, 10.0, 0.0), part(1, 2, 100, 1, 0.0, 0.0), part(2, 1, 2048, 90, 60.0, 20.0), part(3, 2, 8192, 5, 5.0, 5.0)],
            removed_nodes: vec![],
            hot_keys: vec![],
        }
    }

    fn ids(parts: &[PartitionStatus]) -> Vec<u16> {
        parts.iter().map(|p| p.id).collect()
    }

    #[test]
    fn hot_keys_show_their_share_of_their_partition() {
        let s = status();
        let keys = vec![
            HotKeyStatus { key: "\"user:1\"".into(), node: 1, partition: 2, ops_per_s: 64.0, error_ops_per_s: 0.0, truncated: false },
            HotKeyStatus { key: "\"x\"".into(), node: 2, partition: 1, ops_per_s: 1.6, error_ops_per_s: 1.6, truncated: true },
        ];
        let out = render_hot_keys(&s, &keys);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("KEY") && lines[0].ends_with("OF PART."), "{out}");
        assert!(lines[1].starts_with("\"user:1\"") && lines[1].ends_with(" 80%"), "64 of partition 2's 80 ops/s: {out}");
        assert!(lines[2].starts_with("\"x\"...") && lines[2].ends_with(" -"), "partition 1 has no load figure: {out}");
        assert!(render_hot_keys(&s, &[]).starts_with("no key stands out yet"));
    }

    #[test]
    fn partitions_list_in_the_order_asked_for() {
        let s = status();
        let all = |order| Listing { order, top: None, node: None };
        assert_eq!(ids(&select(&s, all(Order::Load))), vec![2, 0, 3, 1]);
        assert_eq!(ids(&select(&s, all(Order::Bytes))), vec![3, 0, 2, 1]);
        assert_eq!(ids(&select(&s, all(Order::Keys))), vec![2, 0, 3, 1]);
        assert_eq!(ids(&select(&s, all(Order::Id))), vec![0, 1, 2, 3]);
        assert_eq!(ids(&select(&s, Listing { order: Order::Load, top: Some(1), node: None })), vec![2]);
        assert_eq!(ids(&select(&s, Listing { order: Order::Load, top: None, node: Some(2) })), vec![3, 1]);
    }

    #[test]
    fn the_table_shows_each_partitions_share_of_the_load() {
        let s = status();
        let out = render(&s, &select(&s, Listing { order: Order::Load, top: Some(2), node: None }));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert!(lines[0].contains("READS/S") && lines[0].contains("LOAD"), "{out}");
        assert!(lines[1].trim_start().starts_with("2 ") && lines[1].contains("60.0") && lines[1].contains("20.0") && lines[1].ends_with("80.0%"), "{out}");
        assert!(lines[2].ends_with("10.0%"), "{out}");
        assert_eq!(lines[3], "2 of 4 partitions; the cluster serves 100.0 ops/s (averaged over about a minute)");
        let quiet = ClusterStatus { partitions: vec![part(0, 1, 0, 0, 0.0, 0.0)], ..s };
        assert!(render(&quiet, &quiet.partitions).lines().nth(1).unwrap().ends_with('-'), "no load: no share");
    }
}
