//! The `evenkeel bench` command line ([`BenchArgs`]) and its validated form
//! ([`Config`]): target address, operation mix, key distribution, phases.

use crate::BenchError;
use std::path::PathBuf;
use std::time::Duration;

/// `evenkeel bench`: open-loop load against any RESP endpoint, with latency
/// split into before/during/after a disruptive command and a correctness
/// check of every reply.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// RESP endpoint: redis://[[USER]:PASSWORD@]HOST:PORT (or HOST:PORT);
    /// rediss:// for TLS, with --tls-ca.
    #[arg(long, default_value = "redis://127.0.0.1:6380")]
    pub target: String,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Requests per second, sent on schedule whether or not replies keep up.
    #[arg(long, default_value_t = 10_000)]
    pub rate: u64,
    /// Total length of the load, in seconds (extended if the recovery window
    /// after --during-cmd would be shorter than --recovery-seconds).
    #[arg(long, default_value_t = 60.0)]
    pub seconds: f64,
    /// Pipelined connections the load is spread over.
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Requests in flight per connection before sends are held back (and
    /// counted as behind schedule).
    #[arg(long, default_value_t = 10_000)]
    pub window: usize,
    /// Operation mix by ratio, from get, set, incr, del, mget.
    #[arg(long, default_value = "get=50,set=45,incr=3,del=1,mget=1")]
    pub mix: String,
    /// Keys per MGET.
    #[arg(long, default_value_t = 10)]
    pub mget_keys: usize,
    /// Key popularity: uniform, or zipf:S (e.g. zipf:0.99).
    #[arg(long, default_value = "uniform")]
    pub dist: String,
    /// Data keys (SET/GET/DEL/MGET), named ek:0 .. ek:N-1.
    #[arg(long, default_value_t = 100_000)]
    pub keys: u32,
    /// Counter keys for INCR, named ekc:0..; default min(keys, 1000).
    #[arg(long)]
    pub counter_keys: Option<u32>,
    /// Bytes per SET value (values are longer if their unique id needs it).
    #[arg(long, default_value_t = 64)]
    pub value_size: usize,
    /// SET every data key before the load, so the initial state is known.
    #[arg(long)]
    pub preload: bool,
    /// Shell command (sh -c) run after the baseline window; the "during"
    /// phase lasts as long as it runs.
    #[arg(long)]
    pub during_cmd: Option<String>,
    /// Length of the "before" phase; default a third of --seconds.
    #[arg(long)]
    pub baseline_seconds: Option<f64>,
    /// Load to run before the "before" phase, left out of every phase's
    /// figures (its replies are still checked): lets a freshly preloaded
    /// cluster work off its flushes and compactions, so the baseline is
    /// steady state. Added to --seconds.
    #[arg(long, default_value_t = 0.0)]
    pub warmup_seconds: f64,
    /// Minimum "after" phase once --during-cmd has finished.
    #[arg(long, default_value_t = 5.0)]
    pub recovery_seconds: f64,
    /// Kill --during-cmd if it runs longer than this.
    #[arg(long, default_value_t = 600.0)]
    pub during_timeout_seconds: f64,
    /// A request with no reply after this long is a timeout; its connection
    /// is dropped and reopened.
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
    /// evenkeel admin API (URL or HOST:PORT), for GET /v1/migrations.
    #[arg(long)]
    pub admin: Option<String>,
    /// Write the full report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write a self-contained HTML report with charts here.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Write every request of the load as a CSV row here (times in µs from
    /// the load's start: intended, sent, completed; command; outcome), for
    /// offline analysis. About 45 bytes a request.
    #[arg(long)]
    pub samples: Option<PathBuf>,
    /// Also measure the machine's own noise: a thread that sleeps 1 ms in
    /// a loop notes every wake-up over 1 ms late, and the report gives the
    /// time lost so per phase (is a slow window the system or the host?).
    #[arg(long)]
    pub host_probe: bool,
    /// Latency budget: this ratio times the baseline p99, drawn on the chart
    /// and checked in the summary.
    #[arg(long, default_value_t = 1.10)]
    pub budget_ratio: f64,
    /// Seed for the workload's random choices (default: random).
    #[arg(long)]
    pub seed: Option<u64>,
    /// No per-second progress lines on stderr.
    #[arg(long)]
    pub quiet: bool,
}

/// How a tool reaches a `rediss://` endpoint: the CA its certificate must
/// chain to, and a certificate of the tool's own when the server asks for
/// one (`--tls-client-ca` there, Redis's `tls-auth-clients`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// For a rediss:// endpoint: the PEM file of the CA that signed its
    /// certificate.
    #[arg(long, value_name = "FILE", env = "EVENKEEL_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// For a rediss:// endpoint that asks clients for a certificate: this
    /// one (PEM), with --tls-key.
    #[arg(long, value_name = "FILE", env = "EVENKEEL_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", env = "EVENKEEL_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl TlsArgs {
    /// `target` with these files.
    pub fn apply(&self, target: Target) -> Target {
        let client_cert = self.tls_cert.clone().zip(self.tls_key.clone()).map(|(cert, key)| ClientCert { cert, key });
        Target { tls_ca: self.tls_ca.clone(), client_cert, ..target }
    }
}

/// A client certificate and its key (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Where to send the load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    /// `rediss://`: TLS, the server's certificate checked against
    /// `tls_ca` (import and export; the bench's load speaks plain RESP).
    pub tls: bool,
    /// PEM file of the CA a TLS server's certificate must chain to.
    pub tls_ca: Option<PathBuf>,
    /// The certificate to present when the server asks for one.
    pub client_cert: Option<ClientCert>,
}

impl Target {
    /// Parses `redis://[[user]:password@]host:port[/db]`, the same with
    /// `rediss://` (TLS), or `host:port`.
    pub fn parse(s: &str) -> Result<Target, String> {
        let (tls, rest) = match s.split_once("://") {
            Some(("redis", rest)) => (false, rest),
            Some(("rediss", rest)) => (true, rest),
            Some((scheme, _)) => return Err(format!("unsupported scheme {scheme:?} (use redis://HOST:PORT, or rediss:// for TLS)")),
            None => (false, s),
        };
        let rest = rest.split('/').next().unwrap_or_default();
        let (auth, hostport) = match rest.rsplit_once('@') {
            Some((auth, hostport)) => (Some(auth), hostport),
            None => (None, rest),
        };
        let (username, password) = match auth.map(|a| a.split_once(':').unwrap_or(("", a))) {
            Some((user, pass)) => ((!user.is_empty()).then(|| user.to_string()), Some(pass.to_string())),
            None => (None, None),
        };
        let (host, port) = hostport.rsplit_once(':').ok_or_else(|| format!("{s:?} has no port (use redis://HOST:PORT)"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("{s:?} has no host"));
        }
        let port = port.parse().map_err(|_| format!("{s:?}: bad port {port:?}"))?;
        Ok(Target { host: host.to_string(), port, username, password, tls, tls_ca: None, client_cert: None })
    }

    /// `redis://host:port`, without credentials.
    pub fn display(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        if self.host.contains(':') { format!("{scheme}://[{}]:{}", self.host, self.port) } else { format!("{scheme}://{}:{}", self.host, self.port) }
    }
}

/// Operation kinds the load generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cmd {
    Get,
    Set,
    Incr,
    Del,
    Mget,
    /// EVAL of a script that INCRs a counter key: checked as INCR is.
    Eval,
}

impl Cmd {
    pub const ALL: [Cmd; 6] = [Cmd::Get, Cmd::Set, Cmd::Incr, Cmd::Del, Cmd::Mget, Cmd::Eval];

    pub fn name(self) -> &'static str {
        match self {
            Cmd::Get => "get",
            Cmd::Set => "set",
            Cmd::Incr => "incr",
            Cmd::Del => "del",
            Cmd::Mget => "mget",
            Cmd::Eval => "eval",
        }
    }
}

/// Relative weights of each [`Cmd`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    pub weights: Vec<(Cmd, u32)>,
}

impl Mix {
    /// Parses `get=50,set=45,...`; unnamed commands get weight 0.
    pub fn parse(s: &str) -> Result<Mix, String> {
        let mut weights: Vec<(Cmd, u32)> = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, w) = part.split_once('=').ok_or_else(|| format!("{part:?} is not NAME=WEIGHT"))?;
            let cmd = Cmd::ALL.into_iter().find(|c| c.name() == name.trim().to_ascii_lowercase()).ok_or_else(|| format!("unknown command {name:?} (use get, set, incr, del, mget, eval)"))?;
            let w: u32 = w.trim().parse().map_err(|_| format!("{part:?}: weight must be a whole number"))?;
            if weights.iter().any(|(c, _)| *c == cmd) {
                return Err(format!("{name} appears twice"));
            }
            weights.push((cmd, w));
        }
        if weights.iter().map(|(_, w)| u64::from(*w)).sum::<u64>() == 0 {
            return Err("the mix has no weight at all".to_string());
        }
        Ok(Mix { weights })
    }

    pub fn total(&self) -> u32 {
        self.weights.iter().map(|(_, w)| w).sum()
    }

    /// The command for a number drawn uniformly from `0..total()`.
    pub fn pick(&self, mut n: u32) -> Cmd {
        for &(cmd, w) in &self.weights {
            if n < w {
                return cmd;
            }
            n -= w;
        }
        self.weights.last().map(|(c, _)| *c).unwrap_or(Cmd::Get)
    }

    pub fn weight(&self, cmd: Cmd) -> u32 {
        self.weights.iter().find(|(c, _)| *c == cmd).map(|(_, w)| *w).unwrap_or(0)
    }
}

/// Key popularity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Dist {
    Uniform,
    /// Zipf with this exponent: rank r is chosen with weight 1/r^s.
    Zipf(f64),
}

impl Dist {
    pub fn parse(s: &str) -> Result<Dist, String> {
        match s.split_once(':') {
            None if s == "uniform" => Ok(Dist::Uniform),
            None if s == "zipf" => Ok(Dist::Zipf(0.99)),
            Some(("zipf", e)) => match e.parse::<f64>() {
                Ok(e) if e.is_finite() && e > 0.0 => Ok(Dist::Zipf(e)),
                _ => Err(format!("zipf exponent {e:?} must be a positive number")),
            },
            _ => Err(format!("unknown distribution {s:?} (use uniform or zipf:0.99)")),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Dist::Uniform => "uniform".to_string(),
            Dist::Zipf(s) => format!("zipf:{s}"),
        }
    }
}

/// Validated settings for one run.
#[derive(Debug, Clone)]
pub struct Config {
    pub target: Target,
    pub rate: u64,
    pub duration: Duration,
    pub connections: usize,
    pub window: usize,
    pub mix: Mix,
    pub mget_keys: usize,
    pub dist: Dist,
    pub keys: u32,
    pub counter_keys: u32,
    pub value_size: usize,
    pub preload: bool,
    pub during_cmd: Option<String>,
    pub baseline: Duration,
    /// Load before the baseline window, in no phase; included in `duration`.
    pub warmup: Duration,
    pub recovery: Duration,
    pub during_timeout: Duration,
    pub op_timeout: Duration,
    pub admin: Option<String>,
    pub json: Option<PathBuf>,
    pub html: Option<PathBuf>,
    pub samples: Option<PathBuf>,
    pub host_probe: bool,
    pub budget_ratio: f64,
    pub seed: Option<u64>,
    pub quiet: bool,
}

fn seconds(flag: &'static str, v: f64) -> Result<Duration, BenchError> {
    Duration::try_from_secs_f64(v).map_err(|_| BenchError::Config { flag, message: format!("{v} is not a number of seconds") })
}

impl Config {
    pub fn from_args(a: &BenchArgs) -> Result<Config, BenchError> {
        let bad = |flag: &'static str, message: String| BenchError::Config { flag, message };
        let duration = seconds("seconds", a.seconds)?;
        if duration < Duration::from_millis(100) {
            return Err(bad("seconds", "the run must last at least 0.1 s".into()));
        }
        let baseline = match a.baseline_seconds {
            Some(b) => seconds("baseline-seconds", b)?,
            None => duration / 3,
        };
        if baseline >= duration {
            return Err(bad("baseline-seconds", "must be shorter than --seconds".into()));
        }
        let warmup = seconds("warmup-seconds", a.warmup_seconds)?;
        for (flag, ok) in [("rate", a.rate > 0), ("connections", a.connections > 0), ("window", a.window > 0), ("keys", a.keys > 0), ("mget-keys", a.mget_keys > 0), ("timeout-ms", a.timeout_ms > 0)] {
            if !ok {
                return Err(bad(flag, "must be at least 1".into()));
            }
        }
        if !(a.budget_ratio.is_finite() && a.budget_ratio > 0.0) {
            return Err(bad("budget-ratio", "must be a positive number".into()));
        }
        Ok(Config {
            target: a.tls.apply(Target::parse(&a.target).map_err(|m| bad("target", m))?),
            rate: a.rate,
            duration: warmup + duration,
            warmup,
            connections: a.connections,
            window: a.window,
            mix: Mix::parse(&a.mix).map_err(|m| bad("mix", m))?,
            mget_keys: a.mget_keys,
            dist: Dist::parse(&a.dist).map_err(|m| bad("dist", m))?,
            keys: a.keys,
            counter_keys: a.counter_keys.unwrap_or(a.keys.min(1000)).max(1),
            value_size: a.value_size,
            preload: a.preload,
            during_cmd: a.during_cmd.clone().filter(|c| !c.trim().is_empty()),
            baseline,
            recovery: seconds("recovery-seconds", a.recovery_seconds)?,
            during_timeout: seconds("during-timeout-seconds", a.during_timeout_seconds)?,
            op_timeout: Duration::from_millis(a.timeout_ms),
            admin: a.admin.clone(),
            json: a.json.clone(),
            html: a.html.clone(),
            samples: a.samples.clone(),
            host_probe: a.host_probe,
            budget_ratio: a.budget_ratio,
            seed: a.seed,
            quiet: a.quiet,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = Target::parse("redis://127.0.0.1:6380").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.username, t.password), ("127.0.0.1", 6380, None, None));
        let t = Target::parse("redis://:secret@localhost:7000/0").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.username, t.password.as_deref()), ("localhost", 7000, None, Some("secret")));
        let t = Target::parse("redis://bob:pw@[::1]:7000").unwrap();
        assert_eq!((t.host.as_str(), t.username.as_deref(), t.password.as_deref()), ("::1", Some("bob"), Some("pw")));
        assert_eq!(t.display(), "redis://[::1]:7000");
        assert_eq!(Target::parse("h:1").unwrap().port, 1);
        let t = Target::parse("rediss://:pw@example.com:6380").unwrap();
        assert!(t.tls && !Target::parse("redis://example.com:6380").unwrap().tls);
        assert_eq!(t.display(), "rediss://example.com:6380");
        assert!(Target::parse("http://h:1").unwrap_err().contains("rediss://"));
        assert!(Target::parse("redis://localhost").unwrap_err().contains("no port"));
        assert!(Target::parse("http://localhost:1").unwrap_err().contains("scheme"));
        assert!(Target::parse("redis://h:99999").unwrap_err().contains("bad port"));
    }

    #[test]
    fn mixes() {
        let m = Mix::parse("get=50,set=45,incr=3,del=1,mget=1").unwrap();
        assert_eq!(m.total(), 100);
        assert_eq!(m.pick(0), Cmd::Get);
        assert_eq!(m.pick(49), Cmd::Get);
        assert_eq!(m.pick(50), Cmd::Set);
        assert_eq!(m.pick(95), Cmd::Incr);
        assert_eq!(m.pick(98), Cmd::Del);
        assert_eq!(m.pick(99), Cmd::Mget);
        assert_eq!(Mix::parse("eval=1").unwrap().pick(0), Cmd::Eval);
        assert_eq!(Mix::parse("set=1").unwrap().weight(Cmd::Get), 0);
        assert!(Mix::parse("get=0").is_err());
        assert!(Mix::parse("hget=1").unwrap_err().contains("unknown"));
        assert!(Mix::parse("get=1,get=2").unwrap_err().contains("twice"));
        assert!(Mix::parse("get").is_err());
    }

    #[test]
    fn dists() {
        assert_eq!(Dist::parse("uniform").unwrap(), Dist::Uniform);
        assert_eq!(Dist::parse("zipf:0.99").unwrap(), Dist::Zipf(0.99));
        assert!(Dist::parse("zipf:-1").is_err());
        assert!(Dist::parse("normal").is_err());
    }
}
