//! `evenkeel`: run a cluster (`up`) or administer a running one.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use evenkeel::admin::AdminClient;
use evenkeel::up::{LocalCluster, UpOptions};
use evenkeel_coord::api::ClusterStatus;
use evenkeel_node::Durability;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc rather than the system allocator: about 5% less CPU per request
/// (figures in ARCHITECTURE, "Dependencies and why").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "evenkeel", version, about = "A sharded Redis-protocol key-value store that rebalances without users noticing.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["from", "rdb"]))]
struct ImportArgs {
    /// The Redis to copy from: redis://[[user]:password@]host:port.
    #[arg(long)]
    from: Option<String>,
    /// Or an RDB file to copy from (what Redis's SAVE writes, dump.rdb).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["follow", "cursor", "rate"])]
    rdb: Option<PathBuf>,
    /// With --rdb: the file's database to import (evenkeel has one).
    #[arg(long, default_value_t = 0, requires = "rdb")]
    db: u64,
    /// The evenkeel router to copy into.
    #[arg(long, default_value = "redis://127.0.0.1:6380", env = "EVENKEEL_ROUTER")]
    to: String,
    #[command(flatten)]
    walk: WalkArgs,
    /// Overwrite keys evenkeel already holds (else they are kept).
    #[arg(long)]
    replace: bool,
    /// Resume from this SCAN cursor (an interrupted import prints it).
    #[arg(long, default_value = "0")]
    cursor: String,
    /// After the copy, keep copying the keys the source changes (its
    /// keyspace events) until Ctrl-C: stop the writers, wait for the
    /// import to catch up, then point clients at evenkeel.
    #[arg(long)]
    follow: bool,
    /// With --follow, turn on the source's keyspace events if they are off
    /// (CONFIG SET notify-keyspace-events, adding EA), rather than refuse.
    #[arg(long, requires = "follow")]
    set_notify_keyspace_events: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct ExportArgs {
    /// The file to write (replaced once complete).
    #[arg(long, value_name = "FILE")]
    rdb: PathBuf,
    /// The evenkeel router (or Redis) to read from.
    #[arg(long, default_value = "redis://127.0.0.1:6380", env = "EVENKEEL_ROUTER")]
    from: String,
    #[command(flatten)]
    walk: WalkArgs,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// How `import` and `export` walk the keys.
#[derive(clap::Args)]
struct WalkArgs {
    /// Only keys matching this glob pattern (SCAN's MATCH).
    #[arg(long = "match", value_name = "PATTERN")]
    pattern: Option<String>,
    /// Keys per SCAN step and per pipeline.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// At most this many keys a second (0: no limit), to spare the server
    /// read from.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    #[command(flatten)]
    tls: evenkeel_bench::config::TlsArgs,
}

impl WalkArgs {
    /// `url` as a target, trusting `--tls-ca` if it is rediss://.
    fn target(&self, url: &str) -> anyhow::Result<evenkeel_bench::config::Target> {
        Ok(self.tls.apply(evenkeel_bench::config::Target::parse(url).map_err(anyhow::Error::msg)?))
    }
}

async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let opts = evenkeel::export::ExportOptions {
        from: args.walk.target(&args.from)?,
        pattern: args.walk.pattern,
        batch: args.walk.batch,
        rate: args.walk.rate,
    };
    let progress = if args.json { indicatif::ProgressBar::hidden() } else { evenkeel_bench::run::progress_bar(0, "keys scanned") };
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let report = evenkeel::export::run(&opts, &args.rdb, &progress, stop).await?;
    progress.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", evenkeel::export::describe(&report, &args.rdb));
    }
    Ok(())
}

async fn import(args: ImportArgs) -> anyhow::Result<()> {
    let opts = evenkeel::import::ImportOptions {
        from: args.from.as_deref().map(|from| args.walk.target(from)).transpose()?,
        to: args.walk.target(&args.to)?,
        pattern: args.walk.pattern,
        batch: args.walk.batch,
        rate: args.walk.rate,
        replace: args.replace,
        cursor: args.cursor,
        follow: args.follow,
        set_notify: args.set_notify_keyspace_events,
    };
    let what = if args.rdb.is_some() { "bytes read" } else { "keys scanned" };
    let progress = if args.json { indicatif::ProgressBar::hidden() } else { evenkeel_bench::run::progress_bar(0, what) };
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let report = match &args.rdb {
        Some(path) => evenkeel::import::run_file(path, args.db, &opts, &progress, stop).await?,
        None => evenkeel::import::run(&opts, &progress, stop).await?,
    };
    progress.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", evenkeel::import::describe(&report));
    }
    if report.failed > 0 || report.cursor != "0" {
        anyhow::bail!("the import is not complete");
    }
    Ok(())
}

#[derive(Subcommand)]
enum Command {
    /// Run a whole cluster (nodes, router, coordinator) in this process.
    Up(UpArgs),
    /// Run one role of a cluster (a node, a router or a coordinator) in
    /// this process, the metadata shared with the others in etcd
    /// (--etcd-endpoints): a cluster over several processes or machines.
    Serve(ServeArgs),
    /// Measure latency and correctness under load, before/during/after a
    /// disruptive command, against any Redis-protocol endpoint.
    Bench(evenkeel_bench::BenchArgs),
    /// Copy the keys of a Redis into evenkeel (SCAN, then DUMP there and
    /// RESTORE here, with their expiry), through one of its routers.
    Import(ImportArgs),
    /// Write evenkeel's keys to an RDB file (Redis's SAVE format): a
    /// backup `import --rdb` reads back, and a file Redis loads.
    Export(ExportArgs),
    /// Inspect the cluster.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// Move one partition to another node, live.
    Move {
        partition: u16,
        /// Destination node id.
        node: u32,
        /// Wait until the migration ends; exit non-zero unless it is DONE.
        #[arg(long)]
        wait: bool,
        /// Routers do not forward acknowledged writes to the destination.
        #[arg(long)]
        no_dual_write: bool,
        /// Routers do not push what clients read to the destination.
        #[arg(long)]
        no_copy_on_read: bool,
        /// Fraction of reads also read on the destination and compared
        /// (0 turns shadow reads off); default: the cluster's setting.
        #[arg(long, value_name = "RATIO")]
        shadow_read_ratio: Option<f64>,
        #[arg(long, default_value = "http://127.0.0.1:7070", env = "EVENKEEL_ADMIN")]
        admin: String,
        #[arg(long)]
        json: bool,
    },
    /// Pause, resume, cancel, roll back or approve one migration.
    Migration {
        #[arg(value_parser = ["pause", "resume", "cancel", "rollback", "approve"])]
        action: String,
        id: String,
        #[arg(long, default_value = "http://127.0.0.1:7070", env = "EVENKEEL_ADMIN")]
        admin: String,
    },
    /// Even out partitions and bytes across nodes with the fewest moves.
    Rebalance {
        #[command(subcommand)]
        command: RebalanceCommand,
    },
    /// Add, drain or remove storage nodes.
    Node {
        #[command(subcommand)]
        command: NodeCommand,
    },
    /// Show or change the migration throttle (rates, adaptive control,
    /// concurrency) at runtime; changes apply within a second.
    Throttle {
        #[command(subcommand)]
        command: ThrottleCommand,
    },
    /// List migrations with their state and progress.
    Migrations {
        #[arg(long, default_value = "http://127.0.0.1:7070", env = "EVENKEEL_ADMIN")]
        admin: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    #[arg(value_enum)]
    role: evenkeel::serve::Role,
    /// node: the node's id (a new id joins the cluster as a new node).
    #[arg(long)]
    id: Option<u32>,
    /// node: the zone (failure domain: zone, rack, region) the node
    /// records itself in when it starts, as `evenkeel node zone` sets it;
    /// left out, the recorded zone is kept.
    #[arg(long)]
    zone: Option<String>,
    /// The role's settings, as for `up`: --listen is the node's gRPC
    /// address (default 127.0.0.1:0) or the router's RESP address, --admin
    /// the coordinator's admin API or, for a node or router, where it
    /// serves its /metrics (none unless given), --nodes what the
    /// coordinator bootstraps with, --data-dir where a node keeps node-ID.
    #[command(flatten)]
    up: UpArgs,
}

/// Flags override the configuration file; both override the defaults
/// shown here.
#[derive(clap::Args)]
struct UpArgs {
    /// A TOML configuration file (sections cluster, router, migration,
    /// throttle; see README).
    #[arg(long, env = "EVENKEEL_CONFIG")]
    config: Option<PathBuf>,
    /// Storage nodes to create on first start (a restart runs the recorded ones) [default: 3].
    #[arg(long)]
    nodes: Option<usize>,
    /// Where the metadata store and every node keep their data [default: ./evenkeel-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Keep the metadata in etcd at these client URLs (comma-separated)
    /// instead of DATA_DIR/meta; needs a build with `--features etcd`.
    #[arg(long, env = "EVENKEEL_ETCD_ENDPOINTS", value_delimiter = ',')]
    etcd_endpoints: Option<Vec<String>>,
    /// With --etcd-endpoints: keep every key under this path (e.g.
    /// /team-a), so several clusters can share one etcd [default: none].
    #[arg(long, env = "EVENKEEL_ETCD_NAMESPACE")]
    etcd_namespace: Option<String>,
    /// With --etcd-endpoints: the etcd user, for an etcd with authentication
    /// on; the password is read from EVENKEEL_ETCD_PASSWORD.
    #[arg(long, env = "EVENKEEL_ETCD_USER")]
    etcd_user: Option<String>,
    /// With https:// etcd endpoints: PEM file of the CA that signed etcd's
    /// certificate.
    #[arg(long)]
    etcd_ca: Option<PathBuf>,
    /// With --etcd-ca: this client's certificate (PEM), when etcd asks for
    /// one (its --client-cert-auth); needs --etcd-key.
    #[arg(long)]
    etcd_cert: Option<PathBuf>,
    /// The private key (PEM) of --etcd-cert.
    #[arg(long)]
    etcd_key: Option<PathBuf>,
    /// RESP address clients connect to [default: 127.0.0.1:6380].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Admin HTTP API and /metrics [default: 127.0.0.1:7070].
    #[arg(long)]
    admin: Option<SocketAddr>,
    /// A file of tokens (one per line) the admin API asks for (as `Authorization:
    /// Bearer TOKEN`; the CLI sends EVENKEEL_ADMIN_TOKEN); /metrics, /healthz and /readyz stay open.
    #[arg(long, env = "EVENKEEL_ADMIN_TOKEN_FILE")]
    admin_token_file: Option<PathBuf>,
    /// Serve the admin API without a token on an address other than loopback
    /// (refused otherwise: whoever reaches it could drain and remove nodes).
    #[arg(long)]
    admin_insecure: bool,
    /// The admin API speaks HTTPS with this certificate chain (PEM) and
    /// --admin-tls-key (clients: an https:// --admin URL, and the CA in
    /// EVENKEEL_ADMIN_CA).
    #[arg(long)]
    admin_tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --admin-tls-cert.
    #[arg(long)]
    admin_tls_key: Option<PathBuf>,
    /// Mutual TLS on the internal gRPC (nodes, routers, coordinators): the
    /// cluster's CA (PEM); needs --internal-tls-cert and --internal-tls-key.
    #[arg(long)]
    internal_tls_ca: Option<PathBuf>,
    /// This process's certificate (PEM), signed by --internal-tls-ca and
    /// naming --internal-tls-name.
    #[arg(long)]
    internal_tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --internal-tls-cert.
    #[arg(long)]
    internal_tls_key: Option<PathBuf>,
    /// The DNS name every process's certificate carries [default: evenkeel].
    #[arg(long)]
    internal_tls_name: Option<String>,
    /// Partitions, fixed when the cluster is created [default: 128].
    #[arg(long)]
    partitions: Option<u32>,
    /// buffered: acknowledged writes survive a process crash (fsync every second);
    /// sync: fsync before every acknowledgement (survives power loss) [default: buffered].
    #[arg(long, value_enum)]
    durability: Option<DurabilityArg>,
    /// Require clients to AUTH with this password.
    #[arg(long, env = "EVENKEEL_REQUIREPASS")]
    requirepass: Option<String>,
    /// Clients connect with TLS: this certificate chain (PEM) and --tls-key;
    /// plain RESP is not served then.
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// With TLS: clients must present a certificate this CA (PEM) signed.
    #[arg(long)]
    tls_client_ca: Option<PathBuf>,
    /// [default: 10000]
    #[arg(long)]
    max_clients: Option<usize>,
    /// Largest bulk string a client may send, in bytes [default: 67108864].
    #[arg(long)]
    max_bulk_len: Option<usize>,
    /// Block cache per node, in MiB, 1-1048576 [default: 64].
    #[arg(long)]
    cache_mib: Option<u64>,
    /// Row cache per node (records kept in memory for reads), in MiB; 0
    /// turns it off; at most 1048576 [default: 64].
    #[arg(long)]
    row_cache_mib: Option<u64>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
}

#[derive(Subcommand)]
enum ThrottleCommand {
    /// The rate in force and why, the baseline, budget used, node gates.
    Show(AdminArgs),
    /// Change some settings (only the flags given); `none` clears a limit.
    Set {
        #[command(flatten)]
        set: evenkeel::throttle::SetArgs,
        #[arg(long, default_value = "http://127.0.0.1:7070", env = "EVENKEEL_ADMIN")]
        admin: String,
    },
    /// Back to the defaults (adaptive, no static limits, no windows).
    Reset {
        #[arg(long, default_value = "http://127.0.0.1:7070", env = "EVENKEEL_ADMIN")]
        admin: String,
    },
}

/// Whether a rebalance also evens out client load.
#[derive(clap::Args)]
struct LoadArgs {
    /// Also even out client load: swap busy partitions of the busiest
    /// nodes for quiet ones of the quietest (`--balance-load false`: counts
    /// and bytes only) [default: the configuration's balance_load, off
    /// unless set]
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    balance_load: Option<bool>,
    /// Swap while the busiest node carries more than 1 + T times its share
    /// of the load [default: the configuration's load_tolerance, 0.25];
    /// implies --balance-load
    #[arg(long, value_name = "T")]
    load_tolerance: Option<f64>,
}

#[derive(Subcommand)]
enum RebalanceCommand {
    /// Show the moves a rebalance would make now (and, with --stages, the
    /// stages they would run in).
    Plan {
        /// Split the moves as `rebalance start --stages SPEC` would.
        #[arg(long)]
        stages: Option<String>,
        #[command(flatten)]
        load: LoadArgs,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Start a rebalance; with --wait, exit 0 only once every move is DONE.
    Start {
        /// Exit 0 only once every move is DONE; non-zero if it fails or a
        /// stage halts it.
        #[arg(long)]
        wait: bool,
        /// Run the moves in stages, each judged before the next:
        /// `[NAME=]SHARE%[:BAKE][:approve]`, comma-separated, shares
        /// cumulative, e.g. `canary=1%:10m:approve,10%:30m,100%`; `none`
        /// runs every move at once [default: the configuration's
        /// rebalance_stages, none unless set]
        #[arg(long)]
        stages: Option<String>,
        /// What a stage that fails does: pause (halt until `rebalance
        /// resume`, `rollback` or `cancel`) or rollback (hand back every
        /// move still in its bake and cancel the rest, at once)
        /// [default: pause]
        #[arg(long, value_parser = ["pause", "rollback"])]
        on_stage_failure: Option<String>,
        /// The p99 ratio (a stage's bake, typical second over the baseline)
        /// a stage may reach and pass [default: the configuration's
        /// stage_p99_ratio_max, else the throttle's budget ratio]
        #[arg(long)]
        stage_p99_ratio_max: Option<f64>,
        /// Run exactly the moves of a reviewed plan (`evenkeel rebalance
        /// plan --json > FILE`; `-` reads standard input) instead of
        /// planning again; refused, and nothing started, if the cluster
        /// changed since in a way the plan no longer fits (a partition
        /// moved, a target drained or left)
        #[arg(long, value_name = "FILE", conflicts_with_all = ["balance_load", "load_tolerance"])]
        plan: Option<std::path::PathBuf>,
        #[command(flatten)]
        load: LoadArgs,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// The current (or last) rebalance and its migrations.
    Status(AdminArgs),
    /// Pause the rebalance and its running migrations.
    Pause(AdminArgs),
    Resume(AdminArgs),
    /// Stop starting moves and cancel those not yet cutting over.
    Cancel(AdminArgs),
    /// Hand every moved partition still in bake back to its source and cancel the moves not yet cut over.
    Rollback(AdminArgs),
    /// Let a staged rebalance go on past a stage that passed and waits for
    /// approval.
    Approve(AdminArgs),
}

#[derive(clap::Args)]
struct AdminArgs {
    #[arg(long, default_value = "http://127.0.0.1:7070", env = "EVENKEEL_ADMIN")]
    admin: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum NodeCommand {
    /// Start a new node (in `evenkeel up`, inside that process, with its own data directory).
    Add {
        /// Relative capacity; 100 is a standard node.
        #[arg(long, default_value_t = 100)]
        weight: u32,
        /// The node's zone (failure domain: a zone, rack or region), which a
        /// staged rebalance's `rings` stage goes by.
        #[arg(long)]
        zone: Option<String>,
        #[arg(long, default_value = "http://127.0.0.1:7070", env = "EVENKEEL_ADMIN")]
        admin: String,
        #[arg(long)]
        json: bool,
    },
    /// Mark a node to be emptied: it receives no partitions and the planner moves its own away.
    Drain {
        id: u32,
        #[arg(long, default_value = "http://127.0.0.1:7070", env = "EVENKEEL_ADMIN")]
        admin: String,
    },
    /// Undo a drain.
    Activate {
        id: u32,
        #[arg(long, default_value = "http://127.0.0.1:7070", env = "EVENKEEL_ADMIN")]
        admin: String,
    },
    /// Remove an empty node (refused while it owns partitions).
    Remove {
        id: u32,
        #[arg(long, default_value = "http://127.0.0.1:7070", env = "EVENKEEL_ADMIN")]
        admin: String,
    },
    /// Place a node in a zone (failure domain), or in none with --clear.
    Zone {
        id: u32,
        /// The zone: letters, digits, '-', '_', '.', '/' (at most 64).
        #[arg(required_unless_present = "clear")]
        zone: Option<String>,
        #[arg(long, conflicts_with = "zone")]
        clear: bool,
        #[arg(long, default_value = "http://127.0.0.1:7070", env = "EVENKEEL_ADMIN")]
        admin: String,
    },
}

#[derive(Clone, Copy, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum DurabilityArg {
    Buffered,
    Sync,
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Nodes, their health, and how partitions, keys and bytes are spread.
    Status {
        #[arg(long, default_value = "http://127.0.0.1:7070", env = "EVENKEEL_ADMIN")]
        admin: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The busiest keys (sampled on the nodes over about 10 s) and how much
    /// of their partition's load each one is.
    Hotkeys {
        /// Show at most this many.
        #[arg(long, value_name = "N", default_value_t = 20)]
        top: usize,
        #[arg(long, default_value = "http://127.0.0.1:7070", env = "EVENKEEL_ADMIN")]
        admin: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Every partition's owner, size and client load (reads and writes per
    /// second, averaged over about a minute), busiest first.
    Partitions {
        #[arg(long, value_enum, default_value = "load")]
        sort: evenkeel::partitions::Order,
        /// Show at most this many.
        #[arg(long, value_name = "N")]
        top: Option<usize>,
        /// Only the partitions this node owns.
        #[arg(long, value_name = "ID")]
        node: Option<u32>,
        #[arg(long, default_value = "http://127.0.0.1:7070", env = "EVENKEEL_ADMIN")]
        admin: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Settled before any thread starts: transparent huge pages are a
    // process-wide choice (see `disable_transparent_huge_pages`).
    let mut serving = None;
    let (command, up_opts) = match cli.command {
        Command::Up(args) => {
            let print = args.print_config;
            match up_options(args) {
                Ok(opts) => (None, Some((opts, print))),
                Err(e) => return fail(e),
            }
        }
        Command::Serve(ServeArgs { role, id, zone, up }) => {
            let (print, node_listen, metrics) = (up.print_config, up.listen, up.admin);
            match up_options(up) {
                Ok(mut opts) => {
                    // A node's own address; the file's `listen` is the router's.
                    if role == evenkeel::serve::Role::Node {
                        opts.listen = node_listen.unwrap_or_else(|| "127.0.0.1:0".parse().expect("valid"));
                    }
                    let metrics = if role == evenkeel::serve::Role::Coordinator { None } else { metrics };
                    serving = Some((role, id, zone, metrics));
                    (None, Some((opts, print)))
                }
                Err(e) => return fail(e),
            }
        }
        other => (Some(other), None),
    };
    // The bench measures latency: a huge-page fault on its thread would be
    // counted as the server's.
    let no_thp = match (&command, &up_opts) {
        (Some(Command::Bench(_)), _) => true,
        (_, Some((opts, print))) => opts.disable_thp && !print,
        _ => false,
    };
    if no_thp && let Err(e) = evenkeel::up::disable_transparent_huge_pages() {
        eprintln!("warning: could not turn transparent huge pages off: {e}");
    }
    // The bench keeps what it frees for the same reason as the cluster: a
    // purge and the refault after it are time on the thread that times
    // requests.
    let purge_delay_ms = match (&command, &up_opts) {
        (Some(Command::Bench(_)), _) => Some(evenkeel::up::DEFAULT_MEMORY_PURGE_DELAY_MS),
        (_, Some((opts, false))) => Some(opts.memory_purge_delay_ms),
        _ => None,
    };
    if let Some(ms) = purge_delay_ms {
        evenkeel::up::set_memory_purge_delay(ms);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let result = runtime.block_on(async {
        let Some(command) = command else {
            let (opts, print) = up_opts.expect("up options");
            if print {
                quiet_on_closed_stdout();
            }
            return match serving {
                Some((role, id, zone, metrics)) if !print => serve(role, id, zone, opts, metrics).await,
                _ => up(opts, print).await,
            };
        };
        if !matches!(command, Command::Bench(_)) {
            quiet_on_closed_stdout();
        }
        match command {
            Command::Up(_) | Command::Serve(_) => unreachable!("handled above"),
            Command::Cluster { command: ClusterCommand::Status { admin, json } } => status(&admin, json).await,
            Command::Cluster { command: ClusterCommand::Hotkeys { top, admin, json } } => evenkeel::partitions::hot_keys(&admin, top, json).await,
            Command::Cluster { command: ClusterCommand::Partitions { sort, top, node, admin, json } } => {
                evenkeel::partitions::run(&admin, evenkeel::partitions::Listing { order: sort, top, node }, json).await
            }
            Command::Bench(args) => Ok(evenkeel_bench::run_cli(args).await?),
            Command::Move { partition, node, wait, no_dual_write, no_copy_on_read, shadow_read_ratio, admin, json } => {
                let modes = evenkeel_coord::api::ModeOverrides { dual_write: no_dual_write.then_some(false), shadow_read_ratio, copy_on_read: no_copy_on_read.then_some(false) };
                evenkeel::moves::move_partition(&admin, partition, node, modes, wait, json).await
            }
            Command::Migrations { admin, json } => evenkeel::moves::list(&admin, json).await,
            Command::Node { command } => node(command).await,
            Command::Rebalance { command } => rebalance(command).await,
            Command::Migration { action, id, admin } => evenkeel::moves::control(&admin, &action, &id).await,
            Command::Import(args) => import(args).await,
            Command::Export(args) => export(args).await,
            Command::Throttle { command } => throttle(command).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

fn fail(e: anyhow::Error) -> ExitCode {
    eprintln!("error: {e:#}");
    ExitCode::FAILURE
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,h2=warn,tower=warn,hyper=warn,fjall=warn,lsm_tree=warn".into());
    // Colours only on a terminal: a log file or journald gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_ansi(ansi).init();
}

async fn throttle(command: ThrottleCommand) -> anyhow::Result<()> {
    use evenkeel::throttle as t;
    match command {
        ThrottleCommand::Show(a) => t::show(&a.admin, a.json).await,
        ThrottleCommand::Set { set, admin } => t::set(&admin, set).await,
        ThrottleCommand::Reset { admin } => t::reset(&admin).await,
    }
}

/// The file's settings overlaid by the flags given.
fn up_options(args: UpArgs) -> anyhow::Result<UpOptions> {
    let file = match &args.config {
        Some(path) => evenkeel::config::FileConfig::load(path)?,
        None => Default::default(),
    };
    let (c, r) = (&file.cluster, &file.router);
    let mut opts = UpOptions::new(args.data_dir.or(c.data_dir.clone()).unwrap_or_else(|| "./evenkeel-data".into()));
    let pick = |flag: Option<usize>, file: Option<usize>, default: usize| flag.or(file).unwrap_or(default);
    opts.nodes = pick(args.nodes, c.nodes, opts.nodes);
    if let Some(endpoints) = args.etcd_endpoints.or(c.etcd_endpoints.clone()) {
        anyhow::ensure!(!endpoints.is_empty() && endpoints.iter().all(|e| !e.trim().is_empty()), "--etcd-endpoints / cluster.etcd_endpoints: give at least one etcd client URL, e.g. http://127.0.0.1:2379");
        let namespace = args.etcd_namespace.or(c.etcd_namespace.clone()).unwrap_or_default();
        let user = match args.etcd_user.or(c.etcd_user.clone()) {
            Some(user) => {
                let password = std::env::var("EVENKEEL_ETCD_PASSWORD").map_err(|_| anyhow::anyhow!("--etcd-user / cluster.etcd_user {user:?}: set its password in EVENKEEL_ETCD_PASSWORD"))?;
                Some(evenkeel_meta::EtcdUser { name: user, password })
            }
            None => None,
        };
        let (cert, key) = (args.etcd_cert.or(c.etcd_cert.clone()), args.etcd_key.or(c.etcd_key.clone()));
        anyhow::ensure!(cert.is_some() == key.is_some(), "--etcd-cert and --etcd-key (cluster.etcd_cert, cluster.etcd_key) go together");
        let tls = match args.etcd_ca.or(c.etcd_ca.clone()) {
            Some(ca) => Some(evenkeel_meta::EtcdTls { ca, cert, key }),
            None => {
                anyhow::ensure!(cert.is_none(), "--etcd-cert needs --etcd-ca (cluster.etcd_ca): the CA that signed etcd's certificate");
                None
            }
        };
        let endpoints: Vec<String> = endpoints.iter().map(|e| e.trim().to_string()).collect();
        let https = endpoints.iter().filter(|e| e.starts_with("https://")).count();
        anyhow::ensure!(https == 0 || https == endpoints.len(), "--etcd-endpoints: all https:// or none");
        anyhow::ensure!((https > 0) == tls.is_some(), "--etcd-endpoints: https:// endpoints go with --etcd-ca (cluster.etcd_ca), http:// ones without");
        let mut etcd = evenkeel_meta::EtcdOptions::new(endpoints);
        (etcd.namespace, etcd.user, etcd.tls) = (namespace, user, tls);
        opts.meta = evenkeel::up::MetaBackend::Etcd(Box::new(etcd));
    } else if args.etcd_namespace.is_some() || c.etcd_namespace.is_some() || args.etcd_user.is_some() || c.etcd_user.is_some() || args.etcd_ca.is_some() || c.etcd_ca.is_some() {
        anyhow::bail!("--etcd-namespace, --etcd-user and --etcd-ca (cluster.etcd_namespace, cluster.etcd_user, cluster.etcd_ca) need --etcd-endpoints (or cluster.etcd_endpoints)");
    }
    opts.partitions = args.partitions.or(c.partitions).unwrap_or(opts.partitions);
    opts.listen = args.listen.or(c.listen).unwrap_or(opts.listen);
    opts.admin = args.admin.or(c.admin).unwrap_or(opts.admin);
    opts.admin_token_file = args.admin_token_file.or(c.admin_token_file.clone());
    if let Some(file) = &opts.admin_token_file {
        opts.coord.admin_auth = Some(evenkeel_coord::auth::AdminAuth::from_file(file).map_err(|e| anyhow::anyhow!(e))?);
    }
    opts.admin_insecure = args.admin_insecure || c.admin_insecure.unwrap_or(false);
    opts.admin_tls = match (args.admin_tls_cert.or(c.admin_tls_cert.clone()), args.admin_tls_key.or(c.admin_tls_key.clone())) {
        (Some(cert), Some(key)) => Some(evenkeel::tls::TlsFiles { cert, key, client_ca: None }),
        (None, None) => None,
        _ => anyhow::bail!("--admin-tls-cert and --admin-tls-key ([cluster] admin_tls_cert, admin_tls_key) go together"),
    };
    opts.coord.admin_tls = opts.admin_tls.as_ref().map(|t| t.server_config()).transpose()?;
    let internal = (args.internal_tls_ca.or(c.internal_tls_ca.clone()), args.internal_tls_cert.or(c.internal_tls_cert.clone()), args.internal_tls_key.or(c.internal_tls_key.clone()));
    let name = args.internal_tls_name.or(c.internal_tls_name.clone());
    opts.internal_tls = match internal {
        (Some(ca), Some(cert), Some(key)) => {
            let name = name.unwrap_or_else(|| evenkeel::tls::DEFAULT_INTERNAL_TLS_NAME.to_string());
            anyhow::ensure!(!name.is_empty(), "--internal-tls-name ([cluster] internal_tls_name) must not be empty");
            // Read and checked now, so a bad file stops the start with its name.
            Some(evenkeel::tls::load_internal(ca, cert, key, name)?)
        }
        (None, None, None) => {
            anyhow::ensure!(name.is_none(), "--internal-tls-name ([cluster] internal_tls_name) needs --internal-tls-ca, --internal-tls-cert and --internal-tls-key");
            None
        }
        _ => anyhow::bail!("--internal-tls-ca, --internal-tls-cert and --internal-tls-key ([cluster] internal_tls_ca, internal_tls_cert, internal_tls_key) go together"),
    };
    let durability = match (args.durability, c.durability.as_deref()) {
        (Some(d), _) => d,
        (None, None | Some("buffered")) => DurabilityArg::Buffered,
        (None, Some("sync")) => DurabilityArg::Sync,
        (None, Some(other)) => anyhow::bail!("[cluster] durability = {other:?}: use \"buffered\" or \"sync\""),
    };
    opts.durability = match durability {
        DurabilityArg::Buffered => Durability::Buffered,
        DurabilityArg::Sync => Durability::Sync,
    };
    opts.router.requirepass = args.requirepass.or(r.requirepass.clone());
    let (cert, key, client_ca) = (args.tls_cert.or(r.tls_cert.clone()), args.tls_key.or(r.tls_key.clone()), args.tls_client_ca.or(r.tls_client_ca.clone()));
    opts.tls = match (cert, key) {
        (Some(cert), Some(key)) => Some(evenkeel::tls::TlsFiles { cert, key, client_ca }),
        (None, None) => {
            anyhow::ensure!(client_ca.is_none(), "--tls-client-ca ([router] tls_client_ca) needs --tls-cert and --tls-key: client certificates are checked in a TLS handshake");
            None
        }
        _ => anyhow::bail!("--tls-cert and --tls-key ([router] tls_cert, tls_key) go together"),
    };
    opts.router.tls = opts.tls.as_ref().map(|t| t.server_config()).transpose()?;
    opts.router.max_clients = pick(args.max_clients, r.max_clients, opts.router.max_clients);
    opts.router.limits.max_bulk_len = pick(args.max_bulk_len, r.max_bulk_len, opts.router.limits.max_bulk_len);
    if let Some(ms) = r.retry_budget_ms {
        opts.router.retry.total_ms = ms;
    }
    opts.router.slowlog_slower_than_us = r.slowlog_log_slower_than.unwrap_or(opts.router.slowlog_slower_than_us);
    opts.router.slowlog_max_len = r.slowlog_max_len.unwrap_or(opts.router.slowlog_max_len);
    // A TiB bounds both caches: far above any machine this runs on, and
    // far below the MiB-to-bytes product's overflow.
    const MAX_CACHE_MIB: u64 = 1 << 20;
    let cache_mib = args.cache_mib.or(c.cache_mib).unwrap_or(64);
    anyhow::ensure!((1..=MAX_CACHE_MIB).contains(&cache_mib), "--cache-mib / cluster.cache_mib must be 1-{MAX_CACHE_MIB} (MiB), not {cache_mib}");
    opts.cache_bytes = cache_mib * 1024 * 1024;
    if let Some(mib) = args.row_cache_mib.or(c.row_cache_mib) {
        anyhow::ensure!(mib <= MAX_CACHE_MIB, "--row-cache-mib / cluster.row_cache_mib must be 0 (off) to {MAX_CACHE_MIB} (MiB), not {mib}");
        opts.row_cache_bytes = mib * 1024 * 1024;
    }
    if let Some(mib) = c.memtable_mib {
        anyhow::ensure!((1..=1024).contains(&mib), "cluster.memtable_mib must be 1-1024, not {mib}");
        opts.memtable_bytes = mib * 1024 * 1024;
    }
    if let Some(lane) = c.background_lane {
        opts.background_lane = lane;
    }
    if let Some(local) = c.in_process_rpc {
        opts.in_process_rpc = local;
    }
    if let Some(idle) = c.bulk_idle {
        opts.bulk_idle = idle;
    }
    if let Some(nice) = c.bulk_nice {
        anyhow::ensure!((0..=19).contains(&nice), "cluster.bulk_nice must be 0-19, not {nice}");
        opts.bulk_nice = nice;
    }
    if let Some(percent) = c.bulk_cpu_percent {
        anyhow::ensure!(percent == 0.0 || evenkeel_node::CpuBudget::new(percent).is_ok(), "cluster.bulk_cpu_percent must be 0 (no ceiling) or over 0 and at most 100, not {percent}");
        opts.bulk_cpu_percent = percent;
    }
    if let Some(nice) = c.coordinator_nice {
        anyhow::ensure!((0..=19).contains(&nice), "cluster.coordinator_nice must be 0-19, not {nice}");
        opts.coordinator_nice = nice;
    }
    if let Some(ms) = c.tombstone_grace_ms {
        opts.tombstone_grace = std::time::Duration::from_millis(ms);
    }
    // WATCH trusts an absent key for half the time a tombstone is kept.
    opts.router.watch_absent_max = opts.tombstone_grace / 2;
    if let Some(mib) = c.min_free_disk_mib {
        opts.min_free_disk_bytes = mib.checked_mul(1 << 20).ok_or_else(|| anyhow::anyhow!("cluster.min_free_disk_mib is too large: {mib}"))?;
    }
    if let Some(mib) = c.log_retention_mib {
        anyhow::ensure!(mib >= 1, "cluster.log_retention_mib must be at least 1, not {mib}");
        opts.log_retention_bytes = mib.checked_mul(1 << 20).ok_or_else(|| anyhow::anyhow!("cluster.log_retention_mib is too large: {mib}"))?;
    }
    if let Some(off) = c.disable_thp {
        opts.disable_thp = off;
    }
    if let Some(ms) = c.memory_purge_delay_ms {
        anyhow::ensure!(ms >= -1, "cluster.memory_purge_delay_ms must be -1 (never) or at least 0, not {ms}");
        opts.memory_purge_delay_ms = ms;
    }
    file.apply_migration(&mut opts.coord);
    Ok(opts)
}

async fn up(opts: UpOptions, print: bool) -> anyhow::Result<()> {
    if print {
        print!("{}", toml::to_string_pretty(&evenkeel::config::effective(&opts))?);
        return Ok(());
    }
    init_logging();
    apply_internal_tls(&opts)?;
    let tls = if opts.tls.is_some() { " --tls --cacert CA.pem" } else { "" };
    let mut cluster = LocalCluster::start(opts).await?;
    tracing::info!(
        router = %cluster.router_addr, admin = %cluster.admin_addr, nodes = ?cluster.node_ids,
        "evenkeel is up; try: redis-cli -p {}{tls}", cluster.router_addr.port()
    );
    let failure = tokio::select! {
        _ = shutdown_signal() => None,
        e = cluster.failed() => Some(e),
    };
    if let Some(e) = failure {
        return Err(e.context("a component failed; stopping"));
    }
    tracing::info!("shutting down");
    cluster.shutdown().await?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// A command's output piped into a reader that stops early (`evenkeel
/// rebalance status | head`): Rust's `println!` panics when stdout is a
/// closed pipe, which printed a panic and a backtrace. The command ends
/// quietly instead, with the status a process killed by SIGPIPE has (128 +
/// 13), as command-line tools written in C do. (Resetting SIGPIPE to its
/// default would do the same, but it would also kill the process on a
/// broken socket: the admin API client writes with `writev`, which has no
/// MSG_NOSIGNAL.)
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info.payload().downcast_ref::<String>().map(String::as_str).or_else(|| info.payload().downcast_ref::<&str>().copied()).unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

/// Makes the process's internal gRPC mutual TLS, if configured: before any
/// node serves or any client connects.
fn apply_internal_tls(opts: &UpOptions) -> anyhow::Result<()> {
    if let Some(tls) = &opts.internal_tls {
        evenkeel_rpc::set_cluster_tls(tls.clone()).map_err(|e| anyhow::anyhow!(e))?;
        tracing::info!(name = %tls.server_name, "internal gRPC: mutual TLS");
    }
    Ok(())
}

async fn serve(role: evenkeel::serve::Role, id: Option<u32>, zone: Option<String>, opts: UpOptions, metrics: Option<SocketAddr>) -> anyhow::Result<()> {
    init_logging();
    apply_internal_tls(&opts)?;
    let stop = tokio_util::sync::CancellationToken::new();
    let stopping = stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        stopping.cancel();
    });
    evenkeel::serve::serve(role, id, zone, opts, metrics, stop).await?;
    tracing::info!("stopped cleanly");
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

async fn rebalance(command: RebalanceCommand) -> anyhow::Result<()> {
    use evenkeel::rebalance as r;
    match command {
        RebalanceCommand::Plan { stages, load, admin } => r::plan(&admin.admin, stages.as_deref(), load.balance_load, load.load_tolerance, admin.json).await,
        RebalanceCommand::Start { wait, stages, on_stage_failure, stage_p99_ratio_max, plan, load, admin } => {
            let on_failure = on_stage_failure.map(|f| if f == "rollback" { evenkeel_coord::rebalance::OnStageFailure::Rollback } else { evenkeel_coord::rebalance::OnStageFailure::Pause });
            let request = evenkeel_coord::rebalance::StartRequest {
                stages: stages.map(evenkeel_coord::rebalance::StagesArg::Spec),
                on_stage_failure: on_failure,
                stage_p99_ratio_max,
                balance_load: load.balance_load,
                load_tolerance: load.load_tolerance,
                moves: plan.as_deref().map(r::read_plan).transpose()?,
            };
            r::start(&admin.admin, wait, request, admin.json).await
        }
        RebalanceCommand::Status(a) => r::status(&a.admin, a.json).await,
        RebalanceCommand::Pause(a) => r::control(&a.admin, "pause").await,
        RebalanceCommand::Resume(a) => r::control(&a.admin, "resume").await,
        RebalanceCommand::Cancel(a) => r::control(&a.admin, "cancel").await,
        RebalanceCommand::Rollback(a) => r::control(&a.admin, "rollback").await,
        RebalanceCommand::Approve(a) => r::control(&a.admin, "approve").await,
    }
}

async fn node(command: NodeCommand) -> anyhow::Result<()> {
    match command {
        NodeCommand::Add { weight, zone, admin, json } => {
            let info = AdminClient::new(&admin)?.add_node(weight, zone).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                let zone = info.zone.as_deref().map(|z| format!(", zone {z}")).unwrap_or_default();
                println!("node {} added at {} (weight {}{zone})", info.id, info.data_dir.as_deref().unwrap_or("?"), info.weight);
            }
        }
        NodeCommand::Zone { id, zone, clear: _, admin } => {
            let info: evenkeel_types::routing::NodeInfo = AdminClient::new(&admin)?.post_json_with(&format!("/v1/nodes/{id}/zone"), &serde_json::json!({ "zone": zone })).await?;
            match &info.zone {
                Some(z) => println!("node {id} is in zone {z}"),
                None => println!("node {id} is in no zone"),
            }
        }
        NodeCommand::Drain { id, admin } => {
            AdminClient::new(&admin)?.node_action(id, "drain").await?;
            println!("node {id} is draining; `evenkeel rebalance` moves its partitions away");
        }
        NodeCommand::Activate { id, admin } => {
            AdminClient::new(&admin)?.node_action(id, "activate").await?;
            println!("node {id} is active");
        }
        NodeCommand::Remove { id, admin } => {
            AdminClient::new(&admin)?.node_action(id, "remove").await?;
            println!("node {id} removed");
        }
    }
    Ok(())
}

async fn status(admin: &str, json: bool) -> anyhow::Result<()> {
    let status = AdminClient::new(admin)?.cluster().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status).context("encoding JSON")?);
    } else {
        print!("{}", render_status(&status));
    }
    Ok(())
}

fn render_status(s: &ClusterStatus) -> String {
    let healthy = s.nodes.iter().filter(|n| n.healthy).count();
    let mut out = if s.bootstrapped {
        format!("epoch {}  partitions {}  nodes {} ({} healthy)\n\n", s.epoch, s.num_partitions, s.nodes.len(), healthy)
    } else {
        "cluster not bootstrapped yet\n\n".to_string()
    };
    out += &format!("{:<5} {:<22} {:<9} {:<10} {:<22} {:>10} {:>12} {:>10} {:>9}  {}\n", "NODE", "ADDR", "STATE", "ZONE", "HEALTH", "PARTITIONS", "KEYS", "BYTES", "OPS/S", "ENGINE");
    for n in &s.nodes {
        let health = n.problem.clone().unwrap_or_else(|| "ok".to_string());
        let state = format!("{:?}", n.state).to_lowercase();
        let zone = n.zone.as_deref().unwrap_or("-");
        let ops: f64 = s.partitions.iter().filter(|p| p.owner == n.id).map(|p| p.ops_per_s()).sum();
        out += &format!("{:<5} {:<22} {:<9} {:<10} {:<22} {:>10} {:>12} {:>10} {:>9.1}  {}\n", n.id, n.addr, state, zone, health, n.partitions, n.keys, evenkeel::progress::human(n.bytes), ops, engine_state(n));
    }
    if !s.removed_nodes.is_empty() {
        let ids: Vec<String> = s.removed_nodes.iter().map(u32::to_string).collect();
        out += &format!("\nremoved nodes (ids not given out again): {}\n", ids.join(", "));
    }
    out
}

/// A node's storage engine at a glance: its level-0 tables, memtables
/// waiting to flush, and a compaction in progress (what slows its
/// clients for reasons of its own).
fn engine_state(n: &evenkeel_coord::api::NodeStatus) -> String {
    let mut parts = vec![format!("L0 {}", n.l0_tables)];
    if n.sealed_memtables > 0 {
        parts.push(format!("{} memtables to flush", n.sealed_memtables));
    }
    if n.compactions_active > 0 {
        parts.push("compacting".to_string());
    }
    parts.join(", ")
}
