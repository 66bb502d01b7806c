use super::*;

const MB: f64 = 1e6;

/// Unix ms of an RFC 3339 instant; parsed independently of the code under
/// test so expectations are written in UTC.
fn ms(rfc3339: &str) -> u64 {
    rfc3339.parse::<Timestamp>().unwrap().as_millisecond() as u64
}

fn window(start: &str, end: &str, tz: &str, rate: Option<f64>) -> Window {
    Window {
        start: start.to_owned(),
        end: end.to_owned(),
        tz: tz.to_owned(),
        rate_bytes_per_s: rate,
        max_concurrent: None,
        days: None,
    }
}

fn only(w: Window) -> Schedule {
    Schedule {
        windows: vec![w],
        ..Schedule::default()
    }
}

fn active(s: &Schedule, at: &str) -> Option<usize> {
    s.effective(ms(at)).window
}

#[test]
fn night_and_day_windows_cover_the_clock() {
    let s = Schedule {
        windows: vec![
            window("02:00", "06:00", "UTC", Some(500.0 * MB)),
            window("06:00", "02:00", "UTC", Some(50.0 * MB)),
        ],
        ..Schedule::default()
    };
    s.validate().unwrap();
    for (at, expect) in [
        ("2026-07-01T01:59:59Z", 1),
        ("2026-07-01T02:00:00Z", 0),
        ("2026-07-01T05:59:59Z", 0),
        ("2026-07-01T06:00:00Z", 1),
        ("2026-07-01T23:30:00Z", 1),
        ("2026-07-02T00:00:00Z", 1),
    ] {
        assert_eq!(active(&s, at), Some(expect), "at {at}");
    }
    let e = s.effective(ms("2026-07-01T03:00:00Z"));
    assert_eq!(e.rate_bytes_per_s, Some(500.0 * MB));
    assert_eq!(e.reason, "window 0 (02:00-06:00 UTC): 476.8 MiB/s");
}

#[test]
fn window_wraps_past_midnight() {
    let s = only(window("22:00", "02:00", "UTC", None));
    assert_eq!(active(&s, "2026-07-01T21:59:00Z"), None);
    assert_eq!(active(&s, "2026-07-01T22:00:00Z"), Some(0));
    assert_eq!(active(&s, "2026-07-02T00:00:00Z"), Some(0));
    assert_eq!(active(&s, "2026-07-02T01:59:59Z"), Some(0));
    assert_eq!(active(&s, "2026-07-02T02:00:00Z"), None);
}

#[test]
fn new_york_window_follows_daylight_saving() {
    let s = only(window("02:00", "06:00", "America/New_York", Some(MB)));
    // Summer, EDT = UTC-4: 02:00-06:00 local is 06:00-10:00 UTC.
    assert_eq!(active(&s, "2026-07-01T05:59:00Z"), None);
    assert_eq!(active(&s, "2026-07-01T06:30:00Z"), Some(0));
    assert_eq!(active(&s, "2026-07-01T09:59:00Z"), Some(0));
    assert_eq!(active(&s, "2026-07-01T10:00:00Z"), None);
    // Winter, EST = UTC-5: 07:00-11:00 UTC.
    assert_eq!(active(&s, "2026-01-15T06:30:00Z"), None);
    assert_eq!(active(&s, "2026-01-15T07:30:00Z"), Some(0));
    assert_eq!(active(&s, "2026-01-15T10:59:00Z"), Some(0));
    assert_eq!(active(&s, "2026-01-15T11:00:00Z"), None);
}

#[test]
fn spring_forward_day_skips_the_missing_hour() {
    // 2026-03-08 02:00 EST jumps to 03:00 EDT: the window runs 03:00-06:00 EDT.
    let s = only(window("02:00", "06:00", "America/New_York", Some(MB)));
    assert_eq!(active(&s, "2026-03-08T06:59:59Z"), None); // 01:59:59 EST
    assert_eq!(active(&s, "2026-03-08T07:00:00Z"), Some(0)); // 03:00 EDT
    assert_eq!(active(&s, "2026-03-08T09:59:00Z"), Some(0)); // 05:59 EDT
    assert_eq!(active(&s, "2026-03-08T10:00:00Z"), None); // 06:00 EDT
}

#[test]
fn fall_back_day_repeats_the_hour_inside_the_window() {
    // 2026-11-01 01:00-02:00 happens twice (EDT, then EST).
    let s = only(window("01:00", "02:00", "America/New_York", Some(MB)));
    assert_eq!(active(&s, "2026-11-01T04:59:00Z"), None); // 00:59 EDT
    assert_eq!(active(&s, "2026-11-01T05:30:00Z"), Some(0)); // 01:30 EDT
    assert_eq!(active(&s, "2026-11-01T06:30:00Z"), Some(0)); // 01:30 EST
    assert_eq!(active(&s, "2026-11-01T07:00:00Z"), None); // 02:00 EST
}

#[test]
fn days_name_the_day_a_window_starts() {
    let mut w = window("22:00", "02:00", "UTC", None);
    w.days = Some(vec![Day::Fri]);
    let s = only(w);
    // 2026-07-03 is a Friday.
    assert_eq!(active(&s, "2026-07-03T01:00:00Z"), None); // Thursday's night
    assert_eq!(active(&s, "2026-07-03T23:00:00Z"), Some(0)); // Friday night
    assert_eq!(active(&s, "2026-07-04T01:00:00Z"), Some(0)); // its Saturday tail
    assert_eq!(active(&s, "2026-07-04T23:00:00Z"), None); // Saturday night
}

#[test]
fn first_matching_window_wins() {
    let s = Schedule {
        windows: vec![
            window("03:00", "04:00", "UTC", Some(0.0)),
            window("00:00", "12:00", "UTC", Some(MB)),
        ],
        ..Schedule::default()
    };
    assert_eq!(active(&s, "2026-07-01T03:30:00Z"), Some(0));
    assert_eq!(active(&s, "2026-07-01T04:00:00Z"), Some(1));
}

#[test]
fn outside_every_window_the_default_applies() {
    let s = Schedule {
        windows: vec![Window {
            max_concurrent: Some(4),
            ..window("02:00", "06:00", "UTC", None)
        }],
        default_rate_bytes_per_s: Some(0.0),
        default_max_concurrent: Some(1),
    };
    let e = s.effective(ms("2026-07-01T12:00:00Z"));
    assert_eq!(
        e,
        Effective {
            rate_bytes_per_s: Some(0.0),
            max_concurrent: Some(1),
            window: None,
            reason: "outside every window: default paused".to_owned(),
        }
    );
    let e = s.effective(ms("2026-07-01T02:00:00Z"));
    assert_eq!((e.rate_bytes_per_s, e.max_concurrent), (None, Some(4)));
    assert_eq!(e.reason, "window 0 (02:00-06:00 UTC): unlimited");
}

#[test]
fn validate_rejects_bad_times_with_clear_messages() {
    for bad in [
        "25:00", "24:00", "12:60", "1200", "", "ab:cd", "1:5", "001:00", "-1:00",
    ] {
        let err = only(window(bad, "06:00", "UTC", None))
            .validate()
            .unwrap_err();
        assert_eq!(
            err,
            ConfigError::BadTime {
                window: 0,
                field: "start",
                value: bad.to_owned()
            }
        );
    }
    let err = only(window("02:00", "25:00", "UTC", None))
        .validate()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "window 0: end \"25:00\" is not a time of day HH:MM (00:00 to 23:59)"
    );
    assert!(
        only(window("2:00", "23:59", "UTC", None))
            .validate()
            .is_ok()
    );
}

#[test]
fn validate_rejects_unknown_zone_empty_window_and_bad_rate() {
    let err = only(window("02:00", "06:00", "Mars/Olympus_Mons", None))
        .validate()
        .unwrap_err();
    assert_eq!(
        err,
        ConfigError::UnknownTz {
            window: 0,
            tz: "Mars/Olympus_Mons".to_owned()
        }
    );
    let err = only(window("02:00", "02:00", "UTC", None))
        .validate()
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("window 0: start and end are both 02:00"),
        "{err}"
    );
    let err = only(window("02:00", "06:00", "UTC", Some(-1.0)))
        .validate()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "schedule.windows[0].rate_bytes_per_s must be a finite number >= 0 (0 pauses), got -1"
    );
    let mut w = window("02:00", "06:00", "UTC", None);
    w.days = Some(vec![]);
    assert_eq!(
        only(w).validate().unwrap_err(),
        ConfigError::NoDays { window: 0 }
    );
}

#[test]
fn invalid_window_never_matches() {
    let s = Schedule {
        windows: vec![window("02:00", "06:00", "Nowhere/Special", Some(MB))],
        default_rate_bytes_per_s: Some(2.0 * MB),
        ..Schedule::default()
    };
    assert_eq!(
        s.effective(ms("2026-07-01T03:00:00Z")).rate_bytes_per_s,
        Some(2.0 * MB)
    );
}

#[test]
fn loads_from_json_with_defaults() {
    let s: Schedule = serde_json::from_str(
        r#"{
        "windows": [
            {"start": "02:00", "end": "06:00", "rate_bytes_per_s": 500000000},
            {"start": "06:00", "end": "02:00", "tz": "Europe/Berlin",
             "rate_bytes_per_s": 50000000, "days": ["mon", "tuesday"]}
        ]
    }"#,
    )
    .unwrap();
    s.validate().unwrap();
    assert_eq!(s.windows[0].tz, "UTC");
    assert_eq!(s.windows[1].days, Some(vec![Day::Mon, Day::Tue]));
    assert_eq!(s.default_rate_bytes_per_s, None);
}

#[test]
fn the_next_open_instant_is_found_across_days_zones_and_paused_windows() {
    // Moves only from 02:00 to 06:00 UTC.
    let nightly = Schedule { windows: vec![window("02:00", "06:00", "UTC", Some(500.0 * MB))], default_rate_bytes_per_s: Some(0.0), ..Schedule::default() };
    assert_eq!(nightly.next_open(ms("2026-01-01T03:00:00Z")), Some(ms("2026-01-01T03:00:00Z")), "open now");
    assert_eq!(nightly.next_open(ms("2026-01-01T10:00:00Z")), Some(ms("2026-01-02T02:00:00Z")));
    assert_eq!(nightly.next_open(ms("2026-01-01T01:59:00Z")), Some(ms("2026-01-01T02:00:00Z")));
    // In its zone: 02:00 New York in July is 06:00 UTC.
    let ny = Schedule { windows: vec![window("02:00", "06:00", "America/New_York", Some(MB))], default_rate_bytes_per_s: Some(0.0), ..Schedule::default() };
    assert_eq!(ny.next_open(ms("2026-07-01T12:00:00Z")), Some(ms("2026-07-02T06:00:00Z")));
    // Saturdays only: from a Monday (2026-01-05), the Saturday after.
    let mut sat = window("22:00", "04:00", "UTC", None);
    sat.days = Some(vec![Day::Sat]);
    let weekend = Schedule { windows: vec![sat], default_rate_bytes_per_s: Some(0.0), ..Schedule::default() };
    assert_eq!(weekend.next_open(ms("2026-01-05T12:00:00Z")), Some(ms("2026-01-10T22:00:00Z")));
    // A window that pauses, unlimited outside it: open at its end.
    let business = Schedule { windows: vec![window("09:00", "17:00", "UTC", Some(0.0))], ..Schedule::default() };
    assert_eq!(business.next_open(ms("2026-01-01T12:00:00Z")), Some(ms("2026-01-01T17:00:00Z")));
    // Never: paused everywhere.
    let never = Schedule { windows: vec![window("02:00", "06:00", "UTC", Some(0.0))], default_rate_bytes_per_s: Some(0.0), ..Schedule::default() };
    assert_eq!(never.next_open(ms("2026-01-01T12:00:00Z")), None);
    assert_eq!(Schedule::default().next_open(7), Some(7), "no schedule: always open");
}
