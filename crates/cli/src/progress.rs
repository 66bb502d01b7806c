//! Per-migration progress for `rebalance status`, `rebalance start --wait`
//! and `move --wait`: bytes copied of the partition's size, change-log lag,
//! state, rate and ETA.
//!
//! On a terminal `--wait` draws live bars (indicatif); otherwise, and for
//! `status`, the same facts print as text lines. The rate is measured by
//! the CLI between two polls, so it is what actually moved.

use evenkeel_coord::api::MigrationInfo;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Instant;

/// Bytes per second between two observations of one migration.
#[derive(Default)]
pub struct Rates {
    last: HashMap<String, (Instant, u64, Option<f64>)>,
}

impl Rates {
    /// Updates and returns `m`'s copy rate (smoothed over polls): None
    /// until two polls at least 0.2 s apart have seen it, and whenever it
    /// is not copying (a rate then would read as a stalled copy).
    pub fn observe(&mut self, m: &MigrationInfo, now: Instant) -> Option<f64> {
        let entry = self.last.entry(m.id.clone()).or_insert((now, m.bytes_copied, None));
        let dt = now.duration_since(entry.0).as_secs_f64();
        if dt >= 0.2 {
            let instant = m.bytes_copied.saturating_sub(entry.1) as f64 / dt;
            entry.2 = Some(entry.2.map_or(instant, |r| 0.5 * r + 0.5 * instant));
            (entry.0, entry.1) = (now, m.bytes_copied);
        }
        entry.2.filter(|_| m.state == "COPYING")
    }
}

/// One line of text: `p12 1->4 COPYING [####------] 41% 3.1 MiB/7.6 MiB lag - 1.2 MiB/s eta 4s`.
/// `rate`: the copy's bytes per second, `-` when not known.
pub fn line(m: &MigrationInfo, rate: Option<f64>) -> String {
    let total = m.bytes_total.unwrap_or(0).max(m.bytes_copied);
    let frac = if m.state == "DONE" || total == 0 { 1.0 } else { m.bytes_copied as f64 / total as f64 };
    let again = match m.copies() {
        0 | 1 => String::new(),
        n => format!("  (copy {n}: the change log was trimmed under the earlier ones)"),
    };
    let filled = (frac * 20.0).round() as usize;
    format!(
        "p{:<5} {}->{} {:<17} [{}{}] {:>3.0}% {}/{} lag {} {} eta {}{again}{}",
        m.partition,
        m.source,
        m.target,
        m.state,
        "#".repeat(filled.min(20)),
        "-".repeat(20 - filled.min(20)),
        frac * 100.0,
        human(m.bytes_copied),
        human(total),
        m.lag_entries.map_or("-".to_string(), |l| l.to_string()),
        rate.map_or("-".to_string(), evenkeel_throttle::units::fmt_bytes_per_s),
        eta(m, total, rate),
        m.error.as_ref().map(|e| format!("  ({e})")).unwrap_or_default(),
    )
}

fn eta(m: &MigrationInfo, total: u64, rate: Option<f64>) -> String {
    let Some(rate) = rate.filter(|r| *r >= 1.0 && m.state == "COPYING") else {
        return "-".into();
    };
    let s = total.saturating_sub(m.bytes_copied) as f64 / rate;
    if s < 90.0 { format!("{s:.0}s") } else { format!("{:.0}m", s / 60.0) }
}

pub fn human(b: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = b as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{b} B") } else { format!("{v:.1} {}", UNITS[unit]) }
}

/// Live bars on a terminal, lines elsewhere.
pub struct Display {
    multi: Option<MultiProgress>,
    header: Option<ProgressBar>,
    bars: HashMap<String, ProgressBar>,
    rates: Rates,
    last_lines: HashMap<String, String>,
}

impl Display {
    pub fn new(quiet: bool) -> Display {
        let live = !quiet && std::io::stdout().is_terminal();
        let multi = live.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stdout()));
        let header = multi.as_ref().map(|mp| mp.add(ProgressBar::new_spinner()));
        Display { multi, header, bars: HashMap::new(), rates: Rates::default(), last_lines: HashMap::new() }
    }

    /// Shows the overall line and every migration's progress.
    pub fn update(&mut self, headline: &str, migrations: &[MigrationInfo]) {
        let now = Instant::now();
        match &self.multi {
            Some(mp) => {
                if let Some(h) = &self.header {
                    h.set_message(headline.to_string());
                    h.tick();
                }
                for m in migrations {
                    let rate = self.rates.observe(m, now);
                    let bar = self.bars.entry(m.id.clone()).or_insert_with(|| mp.add(ProgressBar::new(0).with_style(ProgressStyle::with_template("{msg}").expect("static template"))));
                    if !bar.is_finished() {
                        bar.set_message(line(m, rate));
                        if m.has_ended() {
                            bar.finish();
                        }
                    }
                }
            }
            None => self.print_changes(headline, migrations, now),
        }
    }

    /// Without a terminal: the headline and each migration when its state
    /// changes, so logs stay short.
    fn print_changes(&mut self, headline: &str, migrations: &[MigrationInfo], now: Instant) {
        if self.last_lines.get("").is_none_or(|l| l != headline) {
            println!("{headline}");
            self.last_lines.insert(String::new(), headline.to_string());
        }
        for m in migrations {
            let rate = self.rates.observe(m, now);
            if self.last_lines.get(&m.id).is_none_or(|s| s != &m.state) {
                println!("  {}", line(m, rate));
                self.last_lines.insert(m.id.clone(), m.state.clone());
            }
        }
    }

    pub fn finish(&self) {
        if let Some(h) = &self.header {
            h.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(state: &str, copied: u64, total: Option<u64>) -> MigrationInfo {
        MigrationInfo {
            id: "p3-1".into(),
            partition: 3,
            source: 1,
            target: 4,
            state: state.into(),
            started_ms: 0,
            finished_ms: None,
            bytes_copied: copied,
            keys_copied: 0,
            cutover_pause_ms: None,
            transitions: vec![],
            error: None,
            bytes_total: total,
            lag_entries: None,
            modes: None,
            mirror: Default::default(),
            catch_up: Default::default(),
            drain: Default::default(),
        }
    }

    #[test]
    fn a_line_shows_progress_rate_and_eta() {
        let l = line(&info("COPYING", 512 << 10, Some(1 << 20)), Some(256.0 * 1024.0));
        assert!(l.contains("[##########----------]  50%"), "{l}");
        assert!(l.contains("512.0 KiB/1.0 MiB") && l.contains("256.0 KiB/s eta 2s"), "{l}");
        let done = line(&info("DONE", 1 << 20, Some(1 << 20)), None);
        assert!(done.contains("100%") && done.contains("lag - - eta -"), "{done}");
        // A copy that moved nothing between two polls says so; it is not
        // paused (the throttle's gate says when it is).
        let stalled = line(&info("COPYING", 0, Some(1 << 20)), Some(0.0));
        assert!(stalled.contains("0 B/s eta -") && !stalled.contains("paused"), "{stalled}");
        assert!(!l.contains("copy"), "a first copy says nothing: {l}");
        let mut again = info("COPYING", 3 << 19, Some(1 << 20));
        again.transitions = ["COPYING", "CATCHING_UP", "COPYING"].iter().map(|s| evenkeel_coord::api::Transition { state: s.to_string(), at_ms: 0 }).collect();
        assert!(line(&again, None).ends_with("(copy 2: the change log was trimmed under the earlier ones)"), "{}", line(&again, None));
    }

    #[test]
    fn rates_come_from_successive_polls() {
        let mut r = Rates::default();
        let t0 = Instant::now();
        assert_eq!(r.observe(&info("COPYING", 0, None), t0), None);
        let rate = r.observe(&info("COPYING", 1_000_000, None), t0 + std::time::Duration::from_secs(1)).expect("two polls");
        assert!((rate - 1_000_000.0).abs() < 1.0, "{rate}");
        // Once the copy is over there is no rate to show.
        assert_eq!(r.observe(&info("CATCHING_UP", 1_000_000, None), t0 + std::time::Duration::from_secs(2)), None);
    }
}
