//! Time windows: a different rate (and concurrency) at different times of
//! day, e.g. 500 MB/s from 02:00 to 06:00 and 50 MB/s otherwise.
//!
//! Times are wall-clock `HH:MM` in each window's IANA zone, so a window
//! follows daylight-saving changes (02:00–06:00 New York is 06:00–10:00 UTC
//! in summer and 07:00–11:00 UTC in winter). A window covers
//! `[start, end)`; one with `end < start` wraps past midnight. On a day when
//! clocks jump forward the skipped wall times simply do not occur, and on a
//! day when they fall back the repeated hour is inside the window both
//! times. The zone database is bundled into the binary, so hosts without
//! `/usr/share/zoneinfo` resolve zones identically.

use jiff::Timestamp;
use jiff::civil::Weekday;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::error::{ConfigError, check_rate};
use crate::units::fmt_rate;

/// One window of the schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// Wall-clock start, "HH:MM", inclusive.
    pub start: String,
    /// Wall-clock end, "HH:MM", exclusive; before `start` means "the next day".
    pub end: String,
    /// IANA zone name.
    #[serde(default = "utc")]
    pub tz: String,
    /// `None`: unlimited while this window is active; `Some(0.0)`: paused.
    #[serde(default)]
    pub rate_bytes_per_s: Option<f64>,
    /// `None`: no limit on concurrent migrations while this window is active.
    #[serde(default)]
    pub max_concurrent: Option<usize>,
    /// Days the window *starts* on (local). A window wrapping past midnight
    /// that starts on Friday also covers early Saturday. `None`: every day.
    #[serde(default)]
    pub days: Option<Vec<Day>>,
}

/// A weekday as written in configs: "mon" … "sun" (full names accepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Day {
    #[serde(alias = "monday")]
    Mon,
    #[serde(alias = "tuesday")]
    Tue,
    #[serde(alias = "wednesday")]
    Wed,
    #[serde(alias = "thursday")]
    Thu,
    #[serde(alias = "friday")]
    Fri,
    #[serde(alias = "saturday")]
    Sat,
    #[serde(alias = "sunday")]
    Sun,
}

/// The windows plus what applies outside all of them.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Schedule {
    /// Checked in order; the first active one wins.
    pub windows: Vec<Window>,
    /// Outside every window. `None`: unlimited; `Some(0.0)`: paused, i.e.
    /// rebalance only inside windows.
    pub default_rate_bytes_per_s: Option<f64>,
    pub default_max_concurrent: Option<usize>,
}

/// What the schedule allows at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Effective {
    pub rate_bytes_per_s: Option<f64>,
    pub max_concurrent: Option<usize>,
    /// Index of the active window; `None` outside every window.
    pub window: Option<usize>,
    /// For operators, e.g. "window 0 (02:00-06:00 UTC): 476.8 MiB/s".
    pub reason: String,
}

/// At most this many windows: a schedule is read by people, and `effective`
/// walks all of them.
pub const WINDOWS_MAX: usize = 64;

impl Schedule {
    /// Checks every window: times, zone, non-empty, rates.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.windows.len() > WINDOWS_MAX {
            return Err(ConfigError::Invalid {
                field: "schedule.windows".to_owned(),
                reason: format!("{} windows, at most {WINDOWS_MAX}", self.windows.len()),
            });
        }
        check_rate(
            "schedule.default_rate_bytes_per_s",
            self.default_rate_bytes_per_s,
        )?;
        for (i, w) in self.windows.iter().enumerate() {
            w.compile(i)?;
            check_rate(
                &format!("schedule.windows[{i}].rate_bytes_per_s"),
                w.rate_bytes_per_s,
            )?;
        }
        Ok(())
    }

    /// What applies at `now_ms` (unix milliseconds). Call [`Self::validate`]
    /// when loading: a window that does not validate never matches here.
    pub fn effective(&self, now_ms: u64) -> Effective {
        let at = Timestamp::from_millisecond(i64::try_from(now_ms).unwrap_or(i64::MAX))
            .unwrap_or(Timestamp::MAX);
        for (i, w) in self.windows.iter().enumerate() {
            let Ok(compiled) = w.compile(i) else { continue };
            if compiled.contains(at) {
                return Effective {
                    rate_bytes_per_s: w.rate_bytes_per_s,
                    max_concurrent: w.max_concurrent,
                    window: Some(i),
                    reason: format!(
                        "window {i} ({}-{} {}): {}",
                        w.start,
                        w.end,
                        w.tz,
                        fmt_rate(w.rate_bytes_per_s)
                    ),
                };
            }
        }
        Effective {
            rate_bytes_per_s: self.default_rate_bytes_per_s,
            max_concurrent: self.default_max_concurrent,
            window: None,
            reason: format!(
                "outside every window: default {}",
                fmt_rate(self.default_rate_bytes_per_s)
            ),
        }
    }
}

impl Schedule {
    /// The first instant at or after `now_ms` at which migrations may move
    /// (the rate in force is not 0): `now_ms` itself unless a window or
    /// the default pauses them then, else the next window start or end
    /// (every window's, over the next [`OPEN_HORIZON_DAYS`] days, in its
    /// zone) at which the rate in force is not 0. None if there is no such
    /// instant within that horizon.
    pub fn next_open(&self, now_ms: u64) -> Option<u64> {
        let open = |t: u64| self.effective(t).rate_bytes_per_s != Some(0.0);
        if open(now_ms) {
            return Some(now_ms);
        }
        let at = Timestamp::from_millisecond(i64::try_from(now_ms).ok()?).ok()?;
        let mut changes = Vec::new();
        for (i, w) in self.windows.iter().enumerate() {
            let Ok(c) = w.compile(i) else { continue };
            let today = c.tz.to_datetime(at).date();
            for d in -1..=OPEN_HORIZON_DAYS {
                let Ok(day) = today.checked_add(jiff::Span::new().days(d)) else { continue };
                for minute in [c.start_min, c.end_min] {
                    let local = day.at((minute / 60) as i8, (minute % 60) as i8, 0, 0);
                    if let Ok(instant) = c.tz.to_timestamp(local)
                        && let Ok(t) = u64::try_from(instant.as_millisecond())
                        && t > now_ms
                    {
                        changes.push(t);
                    }
                }
            }
        }
        changes.sort_unstable();
        changes.dedup();
        changes.into_iter().find(|&t| open(t))
    }
}

/// How far ahead [`Schedule::next_open`] looks.
pub const OPEN_HORIZON_DAYS: i64 = 8;

/// A window with its times parsed and its zone resolved.
struct Compiled {
    start_min: u16,
    end_min: u16,
    tz: TimeZone,
    days: Option<Vec<Weekday>>,
}

impl Window {
    fn compile(&self, index: usize) -> Result<Compiled, ConfigError> {
        let time = |field: &'static str, value: &str| {
            parse_hh_mm(value).ok_or_else(|| ConfigError::BadTime {
                window: index,
                field,
                value: value.to_owned(),
            })
        };
        let start_min = time("start", &self.start)?;
        let end_min = time("end", &self.end)?;
        if start_min == end_min {
            return Err(ConfigError::EmptyWindow {
                window: index,
                time: self.start.clone(),
            });
        }
        let tz = TimeZone::get(&self.tz).map_err(|_| ConfigError::UnknownTz {
            window: index,
            tz: self.tz.clone(),
        })?;
        if self.days.as_ref().is_some_and(|d| d.is_empty()) {
            return Err(ConfigError::NoDays { window: index });
        }
        let days = self
            .days
            .as_ref()
            .map(|d| d.iter().map(|&d| d.weekday()).collect());
        Ok(Compiled {
            start_min,
            end_min,
            tz,
            days,
        })
    }
}

impl Compiled {
    fn contains(&self, at: Timestamp) -> bool {
        let local = self.tz.to_datetime(at);
        let minute = local.hour() as u16 * 60 + local.minute() as u16;
        let today = local.weekday();
        if self.start_min < self.end_min {
            (self.start_min..self.end_min).contains(&minute) && self.starts_on(today)
        } else if minute >= self.start_min {
            self.starts_on(today)
        } else {
            // Early-morning part of a window that began yesterday.
            minute < self.end_min && self.starts_on(today.previous())
        }
    }

    fn starts_on(&self, day: Weekday) -> bool {
        self.days.as_ref().is_none_or(|d| d.contains(&day))
    }
}

impl Day {
    fn weekday(self) -> Weekday {
        match self {
            Day::Mon => Weekday::Monday,
            Day::Tue => Weekday::Tuesday,
            Day::Wed => Weekday::Wednesday,
            Day::Thu => Weekday::Thursday,
            Day::Fri => Weekday::Friday,
            Day::Sat => Weekday::Saturday,
            Day::Sun => Weekday::Sunday,
        }
    }
}

fn utc() -> String {
    "UTC".to_owned()
}

/// "HH:MM" (or "H:MM") to minutes after midnight.
fn parse_hh_mm(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    let all_digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
    if !(1..=2).contains(&h.len()) || m.len() != 2 || !all_digits(h) || !all_digits(m) {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

#[cfg(test)]
mod tests;
