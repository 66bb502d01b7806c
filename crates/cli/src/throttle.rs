//! `evenkeel throttle show | set | reset`: the disruption budget's knobs.
//!
//! `set` sends a JSON merge patch of only the fields given, so two
//! operators changing different limits do not undo each other; `none`
//! clears a limit (unlimited, or the adaptive controller decides).

use crate::admin::AdminClient;
use anyhow::{Context, bail};
use evenkeel_coord::api::ThrottleStatus;
use evenkeel_coord::throttle::Settings;
use serde_json::{Value, json};

/// The fields `evenkeel throttle set` can change; None = leave as is.
#[derive(Debug, Default, clap::Args)]
pub struct SetArgs {
    /// Static limit per migration, e.g. 5MB, 512KiB, 100MB/s, or none.
    #[arg(long, value_parser = parse_rate)]
    pub migration_rate: Option<Limit>,
    /// Keys per second per migration, or none.
    #[arg(long, value_parser = parse_count)]
    pub migration_keys_rate: Option<Limit>,
    /// Migration bytes per second through any one node, or none.
    #[arg(long, value_parser = parse_rate)]
    pub node_rate: Option<Limit>,
    /// Adaptive throttling: on or off.
    #[arg(long, value_parser = parse_on_off)]
    pub adaptive: Option<bool>,
    /// p99 during a rebalance may be at most this multiple of the baseline.
    #[arg(long)]
    pub budget_ratio: Option<f64>,
    /// Concurrent moves per node (overrides the rebalance's), or none.
    #[arg(long, value_parser = parse_count)]
    pub moves_per_node: Option<Limit>,
    /// Concurrent moves in the cluster, or none.
    #[arg(long, value_parser = parse_count)]
    pub moves_cluster: Option<Limit>,
    /// Replace all settings with this TOML or JSON file (see README).
    #[arg(long, conflicts_with_all = ["migration_rate", "migration_keys_rate", "node_rate", "adaptive", "budget_ratio", "moves_per_node", "moves_cluster"])]
    pub file: Option<std::path::PathBuf>,
}

/// A limit on the command line: a number, or `none` to clear it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    Set(f64),
    None,
}

impl Limit {
    fn to_json(self) -> Value {
        match self {
            Limit::Set(v) => json!(v),
            Limit::None => Value::Null,
        }
    }
}

pub async fn show(admin: &str, json: bool) -> anyhow::Result<()> {
    let status: ThrottleStatus = AdminClient::new(admin)?.get_json("/v1/throttle").await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", render(&status));
    }
    Ok(())
}

pub async fn set(admin: &str, args: SetArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(admin)?;
    let stored: Settings = match &args.file {
        Some(path) => client.put_json("/v1/throttle", &serde_json::to_value(read_file(path)?)?).await?,
        None => {
            let patch = patch_of(&args);
            if patch.as_object().is_none_or(|o| o.is_empty()) {
                bail!("nothing to set; see `evenkeel throttle set --help`");
            }
            client.patch_json("/v1/throttle", &patch).await?
        }
    };
    println!("throttle settings stored; they apply within a second");
    print!("{}", render_settings(&stored));
    Ok(())
}

pub async fn reset(admin: &str) -> anyhow::Result<()> {
    let _: Settings = AdminClient::new(admin)?.put_json("/v1/throttle", &json!({})).await?;
    println!("throttle settings reset to the defaults");
    Ok(())
}

/// Loads settings from a TOML (by extension `.toml`) or JSON file.
pub fn read_file(path: &std::path::Path) -> anyhow::Result<Settings> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let s: Settings = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).with_context(|| format!("{} is not valid throttle settings", path.display()))?
    } else {
        toml::from_str(&text).with_context(|| format!("{} is not valid throttle settings", path.display()))?
    };
    s.validate().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(s)
}

fn patch_of(a: &SetArgs) -> Value {
    let mut p = serde_json::Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            p.insert(k.to_string(), v);
        }
    };
    put("migration_rate_bytes_per_s", a.migration_rate.map(Limit::to_json));
    put("migration_rate_keys_per_s", a.migration_keys_rate.map(Limit::to_json));
    put("node_rate_bytes_per_s", a.node_rate.map(Limit::to_json));
    put("adaptive", a.adaptive.map(Value::from));
    put("moves_per_node", a.moves_per_node.map(Limit::to_json));
    put("moves_cluster", a.moves_cluster.map(Limit::to_json));
    if let Some(r) = a.budget_ratio {
        p.insert("aimd".into(), json!({ "budget_ratio": r }));
    }
    Value::Object(p)
}

fn render(s: &ThrottleStatus) -> String {
    let ratio = s.p99_ratio.map_or("-".to_string(), |r| format!("{r:.2}x"));
    let used = s.budget_used.map_or("-".to_string(), |u| format!("{:.0}%", u * 100.0));
    let mut out = format!(
        "rate per migration {}  ({} moving)\nwhy: {}\nforeground ({}): p99 {}  from arrival {}  sched {}  baseline {}{}{}  ratio {ratio}  budget {:.2}x, used {used}\n",
        fmt_rate(s.rate_bytes_per_s),
        s.migrations_moving,
        s.reason,
        s.signal,
        fmt_us(s.p99_us),
        s.arrival_p99_us.map_or("-".to_string(), fmt_us),
        s.sched_p99_us.map_or("-".to_string(), fmt_us),
        s.baseline_p99_us.map_or("-".to_string(), fmt_us),
        if s.baseline_frozen { " (frozen)" } else { "" },
        s.floor_reference_p99_us.map_or(String::new(), |r| format!(", steering against the floor's {}", fmt_us(r))),
        s.budget_ratio,
    );
    for n in &s.nodes {
        out += &format!("node {:<4} gate {:<7} {}\n", n.node, n.state, n.reasons.join("; "));
    }
    out + &render_settings(&s.settings)
}

fn render_settings(s: &Settings) -> String {
    let t = s;
    format!(
        "settings: migration rate {}, keys/s {}, node rate {}, adaptive {}, moves per node {}, moves in cluster {}, {} time windows\n",
        fmt_rate(t.migration_rate_bytes_per_s),
        t.migration_rate_keys_per_s.map_or("unlimited".to_string(), |k| format!("{k:.0}")),
        fmt_rate(t.node_rate_bytes_per_s),
        if t.adaptive { "on" } else { "off" },
        t.moves_per_node.map_or("(rebalance's)".to_string(), |n| n.to_string()),
        t.moves_cluster.map_or("(rebalance's)".to_string(), |n| n.to_string()),
        t.schedule.windows.len(),
    )
}

pub fn fmt_rate(r: Option<f64>) -> String {
    evenkeel_throttle::units::fmt_rate(r)
}

fn fmt_us(us: u64) -> String {
    if us >= 1000 { format!("{:.1} ms", us as f64 / 1000.0) } else { format!("{us} µs") }
}

fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" | "true" | "yes" => Ok(true),
        "off" | "false" | "no" => Ok(false),
        _ => Err(format!("{s:?}: use on or off")),
    }
}

fn parse_count(s: &str) -> Result<Limit, String> {
    if s == "none" {
        return Ok(Limit::None);
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(Limit::Set(v)),
        _ => Err(format!("{s:?}: expected a non-negative number or none")),
    }
}

/// `5MB`, `5 MB/s`, `512KiB`, `1000` (bytes), or `none`. Decimal units are
/// powers of 1000, binary ones (KiB, MiB, GiB) powers of 1024.
pub fn parse_rate(s: &str) -> Result<Limit, String> {
    let t = s.trim().trim_end_matches("/s").trim();
    if t == "none" {
        return Ok(Limit::None);
    }
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        u => return Err(format!("{s:?}: unknown unit {u:?} (use B, KB, MB, GB, KiB, MiB, GiB, or none)")),
    };
    match num.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(Limit::Set(v * factor)),
        _ => Err(format!("{s:?}: expected a rate like 5MB or 512KiB, or none")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_with_units() {
        assert_eq!(parse_rate("5MB"), Ok(Limit::Set(5e6)));
        assert_eq!(parse_rate("5 MB/s"), Ok(Limit::Set(5e6)));
        assert_eq!(parse_rate("512KiB"), Ok(Limit::Set(512.0 * 1024.0)));
        assert_eq!(parse_rate("1000"), Ok(Limit::Set(1000.0)));
        assert_eq!(parse_rate("none"), Ok(Limit::None));
        assert!(parse_rate("5XB").is_err());
        assert!(parse_rate("-1MB").is_err());
        assert!(parse_rate("fast").is_err());
    }

    #[test]
    fn set_sends_only_the_fields_given() {
        let a = SetArgs { migration_rate: Some(Limit::Set(5e6)), node_rate: Some(Limit::None), budget_ratio: Some(1.2), ..Default::default() };
        assert_eq!(patch_of(&a), json!({"migration_rate_bytes_per_s": 5e6, "node_rate_bytes_per_s": null, "aimd": {"budget_ratio": 1.2}}));
    }
}
