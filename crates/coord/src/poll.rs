//! Polling node stats and building the cluster status.
//!
//! Every `stats_interval` the coordinator reads membership, liveness and the
//! routing table from the metadata store, asks every member for its stats,
//! and publishes a fresh [`ClusterStatus`] plus per-node and per-partition
//! gauges. A node is healthy when its liveness key exists (it heartbeats) and
//! it answered the stats call.

use crate::Coordinator;
use crate::api::{ClusterStatus, HotKeyStatus, NodeStatus, PartitionStatus};
use crate::clients::NodeClients;
use crate::load::LoadTracker;
use evenkeel_rpc::pb;
use evenkeel_types::{NodeId, NodeInfo, RoutingTable, keys};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

pub(crate) async fn run(coord: Arc<Coordinator>) {
    let mut tick = tokio::time::interval(coord.config.stats_interval);
    loop {
        tick.tick().await;
        match collect(&coord).await {
            Ok(status) => {
                export(&status);
                coord.status.store(Arc::new(status));
            }
            Err(e) => tracing::warn!(error = %e, "could not read cluster state"),
        }
        if let Err(e) = throttle_tick(&coord).await {
            tracing::warn!(error = %e, "throttle tick skipped");
        }
    }
}

/// Feeds the throttle this second's signals and, on the leader, delivers
/// the pauses, resumes and failures its health gates call for.
async fn throttle_tick(coord: &Coordinator) -> Result<(), evenkeel_meta::MetaError> {
    let meta = coord.meta.as_ref();
    let settings = match crate::throttle::load_settings(meta).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "keeping the previous throttle settings");
            coord.throttle.settings()
        }
    };
    let (reports, _) = meta.get_prefix(keys::ROUTERS_PREFIX).await?;
    let routers = reports.iter().filter_map(|kv| serde_json::from_slice(&kv.value).ok()).collect();
    let migrations = crate::migration::manager::list(meta).await?;
    let input = crate::throttle::TickInput { settings, status: coord.status(), routers, migrations };
    let requests = coord.throttle.tick(&input, evenkeel_types::unix_ms());
    if !coord.is_leader() {
        return Ok(());
    }
    for (id, event) in requests {
        tracing::info!(migration = %id, ?event, "health gate");
        if let Err(e) = coord.migrations.control(&id, event).await {
            tracing::warn!(migration = %id, error = %e, "health gate request not delivered");
        }
    }
    Ok(())
}

async fn collect(coord: &Coordinator) -> Result<ClusterStatus, evenkeel_meta::MetaError> {
    let meta = coord.meta.as_ref();
    let (members, _) = meta.get_prefix(keys::NODES_PREFIX).await?;
    let (live, _) = meta.get_prefix(keys::LIVE_PREFIX).await?;
    let table = meta.get(keys::ROUTING).await?.and_then(|kv| RoutingTable::from_json(&kv.value).ok());
    let infos: Vec<NodeInfo> = members.iter().filter_map(|kv| serde_json::from_slice(&kv.value).ok()).collect();
    let live: BTreeSet<NodeId> = live.iter().filter_map(|kv| keys::node_id_of(&kv.key)).collect();
    let removed_nodes = crate::nodes::removed_ids(meta).await?;
    let stats = fetch_stats(&infos, &coord.clients, coord.config.stats_interval).await;
    let mut load = coord.load.lock();
    let status = assemble(&infos, &live, &stats, table.as_ref(), &mut load, evenkeel_types::unix_ms());
    Ok(ClusterStatus { leader: coord.is_leader(), removed_nodes, ..status })
}

async fn fetch_stats(infos: &[NodeInfo], clients: &NodeClients, timeout: Duration) -> HashMap<NodeId, Result<pb::StatsResponse, String>> {
    let calls = infos.iter().filter_map(|info| {
        let client = clients.for_info(info)?;
        Some(async move {
            let mut client = client;
            let mut req = tonic::Request::new(pb::StatsRequest {});
            req.set_timeout(timeout);
            (info.id, client.stats(req).await.map(|r| r.into_inner()).map_err(|s| s.message().to_string()))
        })
    });
    futures::future::join_all(calls).await.into_iter().collect()
}

/// The status from one poll's reads (`leader` and `removed_nodes` are left
/// for the caller), feeding each owner's op counts to `load`.
fn assemble(
    infos: &[NodeInfo],
    live: &BTreeSet<NodeId>,
    stats: &HashMap<NodeId, Result<pb::StatsResponse, String>>,
    table: Option<&RoutingTable>,
    load: &mut LoadTracker,
    now_ms: u64,
) -> ClusterStatus {
    let mut per_partition: HashMap<(NodeId, u16), &pb::PartitionStats> = HashMap::new();
    for (&id, s) in stats {
        for p in s.as_ref().map(|s| s.partitions.as_slice()).unwrap_or_default() {
            per_partition.insert((id, p.partition as u16), p);
        }
    }
    let partitions: Vec<PartitionStatus> = table
        .map(|t| {
            t.partitions
                .iter()
                .enumerate()
                .map(|(p, e)| {
                    let sample = per_partition.get(&(e.owner, p as u16));
                    let rates = load.observe(p as u16, e.owner, sample.map(|s| (s.reads_total, s.writes_total)), now_ms);
                    let s = sample.map_or_else(pb::PartitionStats::default, |s| **s);
                    PartitionStatus {
                        id: p as u16,
                        owner: e.owner,
                        epoch: e.epoch,
                        keys: s.keys,
                        bytes: s.bytes,
                        log_next: s.log_next,
                        tombstones: s.tombstones,
                        reads_per_s: rates.reads_per_s,
                        writes_per_s: rates.writes_per_s,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let nodes = infos.iter().map(|info| node_status(info, live, stats.get(&info.id), &partitions)).collect();
    let mut hot_keys: Vec<HotKeyStatus> = stats
        .iter()
        .filter_map(|(&node, s)| Some((node, s.as_ref().ok()?)))
        .flat_map(|(node, s)| {
            s.hot_keys.iter().map(move |h| HotKeyStatus {
                key: evenkeel_types::repr::quote(&h.key),
                node,
                partition: h.partition as u16,
                ops_per_s: h.ops_per_s,
                error_ops_per_s: h.error_ops_per_s,
                truncated: h.truncated,
            })
        })
        .collect();
    hot_keys.sort_by(|a, b| b.ops_per_s.total_cmp(&a.ops_per_s).then_with(|| a.key.cmp(&b.key)));
    hot_keys.truncate(crate::api::HOT_KEYS_SHOWN);
    ClusterStatus {
        bootstrapped: table.is_some(),
        epoch: table.map_or(0, |t| t.epoch),
        num_partitions: table.map_or(0, |t| t.num_partitions()),
        leader: false,
        nodes,
        partitions,
        removed_nodes: Vec::new(),
        hot_keys,
    }
}

fn node_status(info: &NodeInfo, live: &BTreeSet<NodeId>, stats: Option<&Result<pb::StatsResponse, String>>, partitions: &[PartitionStatus]) -> NodeStatus {
    let owned: Vec<&PartitionStatus> = partitions.iter().filter(|p| p.owner == info.id).collect();
    let ok = stats.and_then(|s| s.as_ref().ok());
    let problem = match (live.contains(&info.id), stats) {
        (false, _) => Some("no heartbeat".to_string()),
        (true, Some(Err(e))) => Some(format!("stats failed: {e}")),
        (true, None) => Some("no address".to_string()),
        (true, Some(Ok(_))) => None,
    };
    NodeStatus {
        id: info.id,
        addr: info.addr.clone(),
        state: info.state,
        weight: info.weight,
        zone: info.zone.clone(),
        healthy: problem.is_none(),
        live: live.contains(&info.id),
        problem,
        partitions: owned.len(),
        keys: owned.iter().map(|p| p.keys).sum(),
        bytes: owned.iter().map(|p| p.bytes).sum(),
        disk_bytes: ok.map_or(0, |s| s.disk_bytes),
        p99_us: ok.map_or(0, |s| s.execute_p99_us),
        ops_last_s: ok.map_or(0, |s| s.execute_ops_last_s),
        errors_total: ok.map_or(0, |s| s.errors_total),
        shed_ops_total: ok.map_or(0, |s| s.shed_ops_total),
        disk_free_bytes: ok.map_or(0, |s| s.disk_free_bytes),
        disk_total_bytes: ok.map_or(0, |s| s.disk_total_bytes),
        l0_tables: ok.map_or(0, |s| s.l0_tables),
        sealed_memtables: ok.map_or(0, |s| s.sealed_memtables),
        retired_partitions: ok.map_or(0, |s| s.retired_partitions),
        bulk_cpu_ms_total: ok.map_or(0, |s| s.bulk_cpu_us_total / 1000),
        compaction_ms_total: ok.map_or(0, |s| s.compaction_us_total / 1000),
        compactions_active: ok.map_or(0, |s| s.compactions_active),
        row_cache_hits_total: ok.map_or(0, |s| s.row_cache_hits_total),
        row_cache_misses_total: ok.map_or(0, |s| s.row_cache_misses_total),
        group_syncs_total: ok.map_or(0, |s| s.group_syncs_total),
    }
}

/// Publishes the status as Prometheus gauges.
fn export(status: &ClusterStatus) {
    metrics::gauge!("evenkeel_routing_epoch").set(status.epoch as f64);
    for n in &status.nodes {
        let node = n.id.to_string();
        metrics::gauge!("evenkeel_node_healthy", "node" => node.clone()).set(n.healthy as u8 as f64);
        metrics::gauge!("evenkeel_node_keys", "node" => node.clone()).set(n.keys as f64);
        metrics::gauge!("evenkeel_node_bytes", "node" => node.clone()).set(n.bytes as f64);
        metrics::gauge!("evenkeel_node_disk_bytes", "node" => node.clone()).set(n.disk_bytes as f64);
        metrics::gauge!("evenkeel_node_l0_tables", "node" => node.clone()).set(n.l0_tables as f64);
        metrics::gauge!("evenkeel_node_sealed_memtables", "node" => node.clone()).set(n.sealed_memtables as f64);
        metrics::gauge!("evenkeel_node_retired_partitions", "node" => node.clone()).set(n.retired_partitions as f64);
        metrics::gauge!("evenkeel_node_bulk_cpu_seconds_total", "node" => node.clone()).set(n.bulk_cpu_ms_total as f64 / 1000.0);
        metrics::gauge!("evenkeel_node_compaction_seconds_total", "node" => node.clone()).set(n.compaction_ms_total as f64 / 1000.0);
        metrics::gauge!("evenkeel_node_compactions_active", "node" => node.clone()).set(n.compactions_active as f64);
        metrics::gauge!("evenkeel_node_group_syncs_total", "node" => node.clone()).set(n.group_syncs_total as f64);
        metrics::gauge!("evenkeel_node_partitions", "node" => node).set(n.partitions as f64);
    }
    for p in &status.partitions {
        let part = p.id.to_string();
        metrics::gauge!("evenkeel_partition_keys", "partition" => part.clone()).set(p.keys as f64);
        metrics::gauge!("evenkeel_partition_bytes", "partition" => part.clone()).set(p.bytes as f64);
        metrics::gauge!("evenkeel_partition_tombstones", "partition" => part.clone()).set(p.tombstones as f64);
        metrics::gauge!("evenkeel_partition_ops_per_second", "partition" => part.clone(), "kind" => "read").set(p.reads_per_s);
        metrics::gauge!("evenkeel_partition_ops_per_second", "partition" => part, "kind" => "write").set(p.writes_per_s);
    }
}
