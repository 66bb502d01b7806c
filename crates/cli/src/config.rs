//! `evenkeel up --config FILE`: every setting of a cluster in one TOML file.
//!
//! Each section is optional, each field too; a field left out takes its
//! default, and a command-line flag overrides the file. The defaults are
//! documented in README ("Configuration"), and `evenkeel up
//! --print-config` prints the effective configuration as TOML.
//!
//! ```toml
//! [cluster]
//! nodes = 3
//! partitions = 128
//!
//! [migration]
//! pause_budget_ms = 50
//! bake_ms = 30000
//! dual_write = true
//! shadow_read_ratio = 0.01
//!
//! [throttle]
//! migration_rate_bytes_per_s = 5000000
//! [[throttle.schedule.windows]]
//! start = "02:00"
//! end = "06:00"
//! tz = "Europe/Berlin"
//! rate_bytes_per_s = 500000000
//! ```

use anyhow::Context;
use evenkeel_coord::throttle::Settings;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    pub cluster: ClusterSection,
    pub router: RouterSection,
    pub migration: MigrationSection,
    /// Stored at startup, replacing the stored throttle settings; absent
    /// keeps what `evenkeel throttle set` stored last.
    pub throttle: Option<Settings>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSection {
    pub nodes: Option<usize>,
    pub partitions: Option<u32>,
    pub data_dir: Option<PathBuf>,
    /// Keep the metadata in etcd at these client URLs instead of
    /// `data_dir/meta` (a build with the `etcd` feature).
    pub etcd_endpoints: Option<Vec<String>>,
    /// With `etcd_endpoints`: every key under this path (e.g. `/team-a`).
    pub etcd_namespace: Option<String>,
    /// With `etcd_endpoints`: the etcd user (its password only from the
    /// environment, `EVENKEEL_ETCD_PASSWORD`).
    pub etcd_user: Option<String>,
    /// With `etcd_endpoints` (`https://`): PEM file of the CA that signed
    /// etcd's certificate.
    pub etcd_ca: Option<PathBuf>,
    /// With `etcd_ca`: this client's certificate and key (PEM), when etcd
    /// asks for one.
    pub etcd_cert: Option<PathBuf>,
    pub etcd_key: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub admin: Option<SocketAddr>,
    /// A file of tokens (one per line) the admin API asks for; none: it
    /// answers anyone who reaches it.
    pub admin_token_file: Option<PathBuf>,
    /// Serve the admin API without a token on an address other than
    /// loopback (refused otherwise).
    pub admin_insecure: Option<bool>,
    /// The admin API speaks HTTPS with this certificate chain and key
    /// (PEM).
    pub admin_tls_cert: Option<PathBuf>,
    pub admin_tls_key: Option<PathBuf>,
    /// Mutual TLS on the internal gRPC between nodes, routers and
    /// coordinators: the cluster's CA and this process's certificate and
    /// key (PEM), which must name `internal_tls_name` (default "evenkeel").
    pub internal_tls_ca: Option<PathBuf>,
    pub internal_tls_cert: Option<PathBuf>,
    pub internal_tls_key: Option<PathBuf>,
    pub internal_tls_name: Option<String>,
    /// "buffered" or "sync".
    pub durability: Option<String>,
    pub cache_mib: Option<u64>,
    /// Memtable size (MiB) of each node's data and change-log keyspaces,
    /// for stores created with it.
    pub memtable_mib: Option<u64>,
    /// Row cache (records kept in memory for reads) of each node, in MiB;
    /// 0 turns it off.
    pub row_cache_mib: Option<u64>,
    /// Migration work on nodes yields to queued client requests.
    pub background_lane: Option<bool>,
    /// Router and coordinator call nodes of this process directly instead
    /// of over loopback gRPC.
    pub in_process_rpc: Option<bool>,
    /// The nodes' bulk migration threads are SCHED_IDLE (else `bulk_nice`).
    pub bulk_idle: Option<bool>,
    /// Nice value (0-19) of the nodes' bulk migration threads when not idle.
    pub bulk_nice: Option<i32>,
    /// Percent of one core the bulk migration threads of all nodes of the
    /// process may use together; 0: no ceiling.
    pub bulk_cpu_percent: Option<f64>,
    /// Nice value (0-19) of the coordinator's own runtime thread.
    pub coordinator_nice: Option<i32>,
    /// Age (ms) past which nodes collect tombstones no migration needs.
    pub tombstone_grace_ms: Option<u64>,
    /// Free disk (MiB) under which nodes refuse commands that add data
    /// (OOM); 0: no reserve.
    pub min_free_disk_mib: Option<u64>,
    /// Change-log bytes (MiB) each node keeps per partition, at most.
    pub log_retention_mib: Option<u64>,
    /// Turn transparent huge pages off for the process (like Redis's
    /// `disable-thp`).
    pub disable_thp: Option<bool>,
    /// How long (ms) the allocator keeps freed memory before returning it
    /// to the kernel; -1: never.
    pub memory_purge_delay_ms: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouterSection {
    pub requirepass: Option<String>,
    /// The RESP endpoint speaks TLS with this certificate chain (PEM) and
    /// `tls_key`; plain RESP is not served then.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// With TLS: clients must present a certificate this CA (PEM) signed.
    pub tls_client_ca: Option<PathBuf>,
    pub max_clients: Option<usize>,
    pub max_bulk_len: Option<usize>,
    /// How long a request may be retried while partitions move.
    pub retry_budget_ms: Option<u64>,
    /// SLOWLOG logs commands taking at least this many microseconds
    /// (negative: none; Redis's `slowlog-log-slower-than`).
    pub slowlog_log_slower_than: Option<i64>,
    /// SLOWLOG keeps this many entries (Redis's `slowlog-max-len`).
    pub slowlog_max_len: Option<usize>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MigrationSection {
    pub pause_budget_ms: Option<u64>,
    pub bake_ms: Option<u64>,
    /// How often reverse capture polls the new owner during bake.
    pub reverse_interval_ms: Option<u64>,
    pub lag_entries_max: Option<u64>,
    pub cutover_attempts_max: Option<u32>,
    pub needs_approval: Option<bool>,
    pub chunk_keys: Option<u32>,
    pub chunk_bytes: Option<u64>,
    pub moves_per_node: Option<usize>,
    pub moves_cluster: Option<usize>,
    /// The stages a rebalance runs in unless `rebalance start --stages`
    /// says otherwise, e.g. "canary=1%:10m:approve,10%:30m,100%"; "none"
    /// runs every move at once.
    pub rebalance_stages: Option<String>,
    /// Start a rebalance automatically when the membership changed (a node
    /// joined, drains, came back, changed weight) and then held still for
    /// `auto_rebalance_settle_ms`.
    pub auto_rebalance: Option<bool>,
    pub auto_rebalance_settle_ms: Option<u64>,
    /// The p99 ratio (bake's typical second over the baseline) a staged
    /// rebalance's stage may reach; left out: the throttle's budget ratio.
    pub stage_p99_ratio_max: Option<f64>,
    /// Rebalances also even out client load by swapping busy partitions
    /// for quiet ones (a request may say otherwise); with `auto_rebalance`,
    /// load uneven past `load_tolerance` starts one too, at most one per
    /// `load_rebalance_cooldown_ms`.
    pub balance_load: Option<bool>,
    pub load_tolerance: Option<f64>,
    pub load_rebalance_cooldown_ms: Option<u64>,
    /// Routing modes of new migrations (a move may override them).
    pub dual_write: Option<bool>,
    pub shadow_read_ratio: Option<f64>,
    pub copy_on_read: Option<bool>,
    /// Verification refuses a cutover above this shadow-read mismatch
    /// ratio, once `shadow_compared_min` reads were compared.
    pub shadow_mismatch_ratio_max: Option<f64>,
    pub shadow_compared_min: Option<u64>,
}

/// How long the membership must hold still before an automatic rebalance.
pub const DEFAULT_AUTO_REBALANCE_SETTLE_MS: u64 = 30_000;

impl FileConfig {
    pub fn load(path: &Path) -> anyhow::Result<FileConfig> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading the configuration file {}", path.display()))?;
        let c: FileConfig = toml::from_str(&text).with_context(|| format!("{} is not a valid evenkeel configuration", path.display()))?;
        if let Some(t) = &c.throttle {
            t.validate().map_err(|e| anyhow::anyhow!("{}: [throttle]: {e}", path.display()))?;
        }
        let m = &c.migration;
        let zero = [
            ("chunk_keys", m.chunk_keys.map(u64::from)),
            ("chunk_bytes", m.chunk_bytes),
            ("reverse_interval_ms", m.reverse_interval_ms),
        ]
        .into_iter()
        .find(|(_, v)| *v == Some(0));
        if let Some((key, _)) = zero {
            anyhow::bail!("{}: [migration]: {key} must be at least 1", path.display());
        }
        if let Some(r) = m.stage_p99_ratio_max
            && !(r.is_finite() && r >= 1.0)
        {
            anyhow::bail!("{}: [migration]: stage_p99_ratio_max must be at least 1.0, not {r}", path.display());
        }
        evenkeel_coord::rebalance::load_balance(Some(false), m.load_tolerance, None).map_err(|e| anyhow::anyhow!("{}: [migration]: {e}", path.display()))?;
        if let Some(spec) = &m.rebalance_stages {
            evenkeel_coord::stages::parse(spec).map_err(|e| anyhow::anyhow!("{}: [migration]: rebalance_stages: {e}", path.display()))?;
        }
        let mut modes = evenkeel_coord::CoordConfig::default();
        c.apply_migration(&mut modes);
        modes.modes.validate().map_err(|e| anyhow::anyhow!("{}: [migration]: {e}", path.display()))?;
        Ok(c)
    }

    /// Applies the migration section to the coordinator's settings.
    pub fn apply_migration(&self, coord: &mut evenkeel_coord::CoordConfig) {
        let m = &self.migration;
        let (d, l) = (&mut coord.driver, &mut coord.limits);
        set(&mut d.pause_budget_ms, m.pause_budget_ms);
        set(&mut d.chunk_keys, m.chunk_keys);
        set(&mut d.chunk_bytes, m.chunk_bytes);
        set(&mut l.bake_ms, m.bake_ms);
        if let Some(ms) = m.reverse_interval_ms {
            d.reverse_interval = std::time::Duration::from_millis(ms);
        }
        set(&mut l.lag_entries_max, m.lag_entries_max);
        set(&mut l.cutover_attempts_max, m.cutover_attempts_max);
        set(&mut l.needs_approval, m.needs_approval);
        set(&mut coord.rebalance.moves_per_node, m.moves_per_node);
        set(&mut coord.rebalance.moves_cluster, m.moves_cluster);
        // Checked by `load`.
        if let Some(Ok(stages)) = m.rebalance_stages.as_deref().map(evenkeel_coord::stages::parse) {
            coord.rebalance_stages = stages;
        }
        if m.stage_p99_ratio_max.is_some() {
            coord.stage_p99_ratio_max = m.stage_p99_ratio_max;
        }
        // `load_tolerance` alone changes the tolerance, not whether (checked
        // by `load`).
        let on = m.balance_load.unwrap_or(coord.balance_load.is_some());
        if let Ok(load) = evenkeel_coord::rebalance::load_balance(Some(on), m.load_tolerance, coord.balance_load) {
            coord.balance_load = load;
        }
        if let Some(ms) = m.load_rebalance_cooldown_ms {
            coord.load_rebalance_cooldown = std::time::Duration::from_millis(ms);
        }
        let settle_ms = m.auto_rebalance_settle_ms.unwrap_or(DEFAULT_AUTO_REBALANCE_SETTLE_MS);
        match m.auto_rebalance {
            Some(true) => coord.auto_rebalance_settle = Some(std::time::Duration::from_millis(settle_ms)),
            Some(false) => coord.auto_rebalance_settle = None,
            None => {}
        }
        let modes = &mut coord.modes;
        set(&mut modes.route.dual_write, m.dual_write);
        set(&mut modes.route.shadow_read_ratio, m.shadow_read_ratio);
        set(&mut modes.route.copy_on_read, m.copy_on_read);
        set(&mut modes.shadow_mismatch_ratio_max, m.shadow_mismatch_ratio_max);
        set(&mut modes.shadow_compared_min, m.shadow_compared_min);
        coord.throttle = self.throttle.clone();
    }
}

fn set<T>(slot: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *slot = v;
    }
}

/// The configuration `opts` amounts to, as a file would state it.
pub fn effective(opts: &crate::up::UpOptions) -> FileConfig {
    let (d, l) = (&opts.coord.driver, &opts.coord.limits);
    let etcd = match &opts.meta {
        crate::up::MetaBackend::Etcd(etcd) => Some(etcd),
        crate::up::MetaBackend::Embedded => None,
    };
    let tls = etcd.and_then(|e| e.tls.as_ref());
    FileConfig {
        cluster: ClusterSection {
            nodes: Some(opts.nodes),
            partitions: Some(opts.partitions),
            data_dir: Some(opts.data_dir.clone()),
            etcd_endpoints: etcd.map(|e| e.endpoints.clone()),
            etcd_namespace: etcd.map(|e| e.namespace.clone()).filter(|n| !n.is_empty()),
            etcd_user: etcd.and_then(|e| e.user.as_ref()).map(|u| u.name.clone()),
            etcd_ca: tls.map(|t| t.ca.clone()),
            etcd_cert: tls.and_then(|t| t.cert.clone()),
            etcd_key: tls.and_then(|t| t.key.clone()),
            listen: Some(opts.listen),
            admin: Some(opts.admin),
            admin_token_file: opts.admin_token_file.clone(),
            admin_insecure: Some(opts.admin_insecure),
            admin_tls_cert: opts.admin_tls.as_ref().map(|t| t.cert.clone()),
            admin_tls_key: opts.admin_tls.as_ref().map(|t| t.key.clone()),
            internal_tls_ca: opts.internal_tls.as_ref().map(|t| t.ca.clone()),
            internal_tls_cert: opts.internal_tls.as_ref().map(|t| t.cert.clone()),
            internal_tls_key: opts.internal_tls.as_ref().map(|t| t.key.clone()),
            internal_tls_name: opts.internal_tls.as_ref().map(|t| t.server_name.clone()),
            durability: Some(format!("{:?}", opts.durability).to_lowercase()),
            cache_mib: Some(opts.cache_bytes / (1024 * 1024)),
            memtable_mib: Some(opts.memtable_bytes / (1024 * 1024)),
            row_cache_mib: Some(opts.row_cache_bytes / (1024 * 1024)),
            background_lane: Some(opts.background_lane),
            in_process_rpc: Some(opts.in_process_rpc),
            bulk_idle: Some(opts.bulk_idle),
            bulk_nice: Some(opts.bulk_nice),
            bulk_cpu_percent: Some(opts.bulk_cpu_percent),
            coordinator_nice: Some(opts.coordinator_nice),
            tombstone_grace_ms: Some(opts.tombstone_grace.as_millis() as u64),
            min_free_disk_mib: Some(opts.min_free_disk_bytes >> 20),
            log_retention_mib: Some(opts.log_retention_bytes >> 20),
            disable_thp: Some(opts.disable_thp),
            memory_purge_delay_ms: Some(opts.memory_purge_delay_ms),
        },
        router: RouterSection {
            requirepass: opts.router.requirepass.as_ref().map(|_| "(set)".to_string()),
            tls_cert: opts.tls.as_ref().map(|t| t.cert.clone()),
            tls_key: opts.tls.as_ref().map(|t| t.key.clone()),
            tls_client_ca: opts.tls.as_ref().and_then(|t| t.client_ca.clone()),
            max_clients: Some(opts.router.max_clients),
            max_bulk_len: Some(opts.router.limits.max_bulk_len),
            retry_budget_ms: Some(opts.router.retry.total_ms),
            slowlog_log_slower_than: Some(opts.router.slowlog_slower_than_us),
            slowlog_max_len: Some(opts.router.slowlog_max_len),
        },
        migration: MigrationSection {
            pause_budget_ms: Some(d.pause_budget_ms),
            bake_ms: Some(l.bake_ms),
            reverse_interval_ms: Some(d.reverse_interval.as_millis() as u64),
            lag_entries_max: Some(l.lag_entries_max),
            cutover_attempts_max: Some(l.cutover_attempts_max),
            needs_approval: Some(l.needs_approval),
            chunk_keys: Some(d.chunk_keys),
            chunk_bytes: Some(d.chunk_bytes),
            moves_per_node: Some(opts.coord.rebalance.moves_per_node),
            moves_cluster: Some(opts.coord.rebalance.moves_cluster),
            rebalance_stages: Some(evenkeel_coord::stages::format(&opts.coord.rebalance_stages)),
            auto_rebalance: Some(opts.coord.auto_rebalance_settle.is_some()),
            auto_rebalance_settle_ms: Some(opts.coord.auto_rebalance_settle.map_or(DEFAULT_AUTO_REBALANCE_SETTLE_MS, |d| d.as_millis() as u64)),
            stage_p99_ratio_max: opts.coord.stage_p99_ratio_max,
            balance_load: Some(opts.coord.balance_load.is_some()),
            load_tolerance: Some(opts.coord.balance_load.unwrap_or_default().tolerance),
            load_rebalance_cooldown_ms: Some(opts.coord.load_rebalance_cooldown.as_millis() as u64),
            dual_write: Some(opts.coord.modes.route.dual_write),
            shadow_read_ratio: Some(opts.coord.modes.route.shadow_read_ratio),
            copy_on_read: Some(opts.coord.modes.route.copy_on_read),
            shadow_mismatch_ratio_max: Some(opts.coord.modes.shadow_mismatch_ratio_max),
            shadow_compared_min: Some(opts.coord.modes.shadow_compared_min),
        },
        throttle: Some(opts.coord.throttle.clone().unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_parses_and_applies() {
        let text = r#"
            [cluster]
            nodes = 4
            listen = "127.0.0.1:6400"
            [migration]
            pause_budget_ms = 30
            bake_ms = 1000
            reverse_interval_ms = 1000
            moves_cluster = 3
            dual_write = false
            shadow_read_ratio = 0.25
            [throttle]
            migration_rate_bytes_per_s = 5000000.0
            adaptive = false
            [[throttle.schedule.windows]]
            start = "02:00"
            end = "06:00"
            tz = "Europe/Berlin"
            rate_bytes_per_s = 500000000.0
        "#;
        let c: FileConfig = toml::from_str(text).unwrap();
        assert_eq!(c.cluster.nodes, Some(4));
        let mut coord = evenkeel_coord::CoordConfig::default();
        c.apply_migration(&mut coord);
        assert_eq!((coord.driver.pause_budget_ms, coord.limits.bake_ms, coord.rebalance.moves_cluster), (30, 1000, 3));
        assert_eq!(coord.driver.reverse_interval, std::time::Duration::from_secs(1));
        assert_eq!((coord.modes.route.dual_write, coord.modes.route.shadow_read_ratio, coord.modes.route.copy_on_read), (false, 0.25, true));
        let t = coord.throttle.unwrap();
        assert_eq!(t.migration_rate_bytes_per_s, Some(5e6));
        assert!(!t.adaptive);
        assert_eq!(t.schedule.windows.len(), 1);
    }

    /// `FileConfig::load` of a file holding `text`.
    fn load(text: &str) -> anyhow::Result<FileConfig> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).unwrap();
        FileConfig::load(&path)
    }

    #[test]
    fn out_of_range_ratios_are_refused() {
        let err = load("[migration]\nshadow_read_ratio = 2.0\n").unwrap_err();
        assert!(format!("{err:#}").contains("shadow_read_ratio"), "{err:#}");
    }

    #[test]
    fn zero_sizes_and_intervals_are_refused() {
        for key in ["chunk_keys", "chunk_bytes", "reverse_interval_ms"] {
            let err = load(&format!("[migration]\n{key} = 0\n")).unwrap_err();
            assert!(format!("{err:#}").contains(&format!("{key} must be at least 1")), "{err:#}");
        }
    }

    #[test]
    fn rebalance_stages_are_read_checked_and_printed_back() {
        let mut coord = evenkeel_coord::CoordConfig::default();
        load("[migration]\nrebalance_stages = \"canary=1%:10m:approve,100%\"\n").unwrap().apply_migration(&mut coord);
        assert_eq!(coord.rebalance_stages.len(), 2);
        assert_eq!((coord.rebalance_stages[0].bake_ms, coord.rebalance_stages[0].approval), (600_000, true));
        assert_eq!(evenkeel_coord::stages::format(&coord.rebalance_stages), "canary=1%:10m:approve,stage 2=100%");
        let err = load("[migration]\nrebalance_stages = \"canary=1%,50%\"\n").unwrap_err();
        assert!(format!("{err:#}").contains("rebalance_stages: the last stage"), "{err:#}");
    }

    #[test]
    fn a_stage_p99_ratio_under_one_is_refused() {
        let err = load("[migration]\nstage_p99_ratio_max = 0.9\n").unwrap_err();
        assert!(format!("{err:#}").contains("stage_p99_ratio_max must be at least 1.0"), "{err:#}");
        let mut coord = evenkeel_coord::CoordConfig::default();
        load("[migration]\nstage_p99_ratio_max = 1.5\n").unwrap().apply_migration(&mut coord);
        assert_eq!(coord.stage_p99_ratio_max, Some(1.5));
    }

    #[test]
    fn load_balancing_is_off_unless_turned_on() {
        let mut coord = evenkeel_coord::CoordConfig::default();
        load("[migration]\nload_tolerance = 0.5\n").unwrap().apply_migration(&mut coord);
        assert_eq!(coord.balance_load, None, "a tolerance alone turns nothing on");
        load("[migration]\nbalance_load = true\nload_tolerance = 0.5\nload_rebalance_cooldown_ms = 60000\n").unwrap().apply_migration(&mut coord);
        assert_eq!(coord.balance_load.map(|l| l.tolerance), Some(0.5));
        assert_eq!(coord.load_rebalance_cooldown, std::time::Duration::from_secs(60));
        load("[migration]\nbalance_load = false\n").unwrap().apply_migration(&mut coord);
        assert_eq!(coord.balance_load, None);
        let err = load("[migration]\nload_tolerance = 0\n").unwrap_err();
        assert!(format!("{err:#}").contains("load_tolerance must be above 0"), "{err:#}");
    }

    #[test]
    fn auto_rebalance_is_off_unless_turned_on() {
        let mut coord = evenkeel_coord::CoordConfig::default();
        toml::from_str::<FileConfig>("[migration]\nauto_rebalance_settle_ms = 500\n").unwrap().apply_migration(&mut coord);
        assert_eq!(coord.auto_rebalance_settle, None);
        toml::from_str::<FileConfig>("[migration]\nauto_rebalance = true\n").unwrap().apply_migration(&mut coord);
        assert_eq!(coord.auto_rebalance_settle, Some(std::time::Duration::from_secs(30)));
        toml::from_str::<FileConfig>("[migration]\nauto_rebalance = true\nauto_rebalance_settle_ms = 500\n").unwrap().apply_migration(&mut coord);
        assert_eq!(coord.auto_rebalance_settle, Some(std::time::Duration::from_millis(500)));
    }

    #[test]
    fn unknown_keys_are_errors_not_silently_ignored() {
        assert!(toml::from_str::<FileConfig>("[cluster]\nnodez = 3\n").is_err());
        assert!(toml::from_str::<FileConfig>("[clustre]\nnodes = 3\n").is_err());
    }
}
