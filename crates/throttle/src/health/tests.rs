use super::*;

fn healthy_sample() -> NodeSample {
    NodeSample {
        heartbeat_age_ms: Some(500),
        p99_us: 2_000,
        usual_p99_us: None,
        ops: 10_000,
        errors: 0,
        disk_free_bytes: 500,
        disk_total_bytes: 1000,
        log_lag_entries: 10,
        l0_tables: 3,
        sealed_memtables: 0,
        shed_ops: 0,
    }
}

fn level(f: impl FnOnce(&mut NodeSample)) -> Level {
    let mut s = healthy_sample();
    f(&mut s);
    classify(&s, &HealthThresholds::default())
}

fn degraded(reason: &str) -> Level {
    Level::Degraded(vec![reason.to_owned()])
}

fn critical(reason: &str) -> Level {
    Level::Critical(vec![reason.to_owned()])
}

#[test]
fn healthy_node_is_healthy() {
    assert_eq!(level(|_| {}), Level::Healthy);
}

#[test]
fn heartbeat_age() {
    assert_eq!(level(|s| s.heartbeat_age_ms = Some(3000)), Level::Healthy);
    assert_eq!(
        level(|s| s.heartbeat_age_ms = Some(4200)),
        degraded("heartbeat 4.2 s old > 3.0 s")
    );
    assert_eq!(
        level(|s| s.heartbeat_age_ms = Some(30_000)),
        degraded("heartbeat 30.0 s old > 3.0 s")
    );
    assert_eq!(
        level(|s| s.heartbeat_age_ms = Some(30_001)),
        critical("heartbeat 30.0 s old > 30.0 s")
    );
    assert_eq!(
        level(|s| s.heartbeat_age_ms = None),
        critical("no heartbeat")
    );
}

#[test]
fn p99() {
    assert_eq!(level(|s| s.p99_us = 50_000), Level::Healthy);
    assert_eq!(
        level(|s| s.p99_us = 82_100),
        degraded("p99 82.1 ms > 50.0 ms")
    );
}

#[test]
fn error_rate() {
    assert_eq!(level(|s| s.errors = 100), Level::Healthy); // exactly 1%
    assert_eq!(
        level(|s| s.errors = 250),
        degraded("error rate 2.50% > 1.00%")
    );
    assert_eq!(
        level(|s| {
            s.ops = 0;
            s.errors = 3
        }),
        degraded("error rate 100.00% > 1.00%")
    );
    assert_eq!(
        level(|s| {
            s.ops = 0;
            s.errors = 0
        }),
        Level::Healthy
    );
}

#[test]
fn disk_free() {
    assert_eq!(level(|s| s.disk_free_bytes = 100), Level::Healthy); // exactly 10%
    assert_eq!(
        level(|s| s.disk_free_bytes = 99),
        degraded("disk 9.9% free < 10.0%")
    );
    assert_eq!(
        level(|s| s.disk_free_bytes = 20),
        degraded("disk 2.0% free < 10.0%")
    );
    assert_eq!(
        level(|s| s.disk_free_bytes = 12),
        critical("disk 1.2% free < 2.0%")
    );
    assert_eq!(
        level(|s| s.disk_total_bytes = 0),
        degraded("disk size not reported")
    );
}

#[test]
fn log_lag() {
    assert_eq!(level(|s| s.log_lag_entries = 200_000), Level::Healthy);
    assert_eq!(
        level(|s| s.log_lag_entries = 250_000),
        degraded("log lag 250000 entries > 200000")
    );
}

#[test]
fn storage_engine_debt() {
    assert_eq!(level(|s| s.l0_tables = 12), Level::Healthy);
    assert_eq!(
        level(|s| s.l0_tables = 13),
        degraded("13 level-0 tables > 12 (compaction behind)")
    );
    assert_eq!(level(|s| s.sealed_memtables = 2), Level::Healthy);
    assert_eq!(
        level(|s| s.sealed_memtables = 3),
        degraded("3 memtables waiting for flush > 2")
    );
}

#[test]
fn critical_lists_every_finding_critical_first() {
    let l = level(|s| {
        s.p99_us = 60_000;
        s.disk_free_bytes = 10
    });
    assert_eq!(
        l,
        Level::Critical(vec![
            "disk 1.0% free < 2.0%".to_owned(),
            "p99 60.0 ms > 50.0 ms".to_owned(),
        ])
    );
}

#[test]
fn gate_pauses_and_recovers_only_after_unbroken_healthy_run() {
    let mut g = Gate::new(5000);
    assert_eq!(g.observe(&Level::Healthy, 0), GateState::Open);
    let bad = degraded("p99 82.1 ms > 50.0 ms");
    assert_eq!(
        g.observe(&bad, 1000),
        GateState::Paused {
            reasons: vec!["p99 82.1 ms > 50.0 ms".to_owned()],
            since_ms: 1000
        }
    );
    // A second degraded sample keeps the original start of the pause.
    assert!(matches!(
        g.observe(&bad, 2000),
        GateState::Paused { since_ms: 1000, .. }
    ));
    assert!(matches!(
        g.observe(&Level::Healthy, 3000),
        GateState::Paused { .. }
    ));
    // A relapse restarts the recovery clock.
    g.observe(&bad, 6000);
    let GateState::Paused { reasons, .. } = g.observe(&Level::Healthy, 7000) else {
        panic!()
    };
    assert_eq!(
        reasons.last().unwrap(),
        "recovering: healthy for 0 ms of 5000 ms"
    );
    let GateState::Paused { reasons, since_ms } = g.observe(&Level::Healthy, 11_999) else {
        panic!()
    };
    assert_eq!(since_ms, 1000);
    assert_eq!(
        reasons,
        vec![
            "p99 82.1 ms > 50.0 ms".to_owned(),
            "recovering: healthy for 4999 ms of 5000 ms".to_owned(),
        ]
    );
    assert_eq!(g.observe(&Level::Healthy, 12_000), GateState::Open);
    assert_eq!(g.observe(&Level::Healthy, 12_001), GateState::Open);
}

#[test]
fn gate_aborts_on_critical_then_recovers_like_a_pause() {
    let mut g = Gate::new(5000);
    assert_eq!(
        g.observe(&critical("no heartbeat"), 0),
        GateState::Abort {
            reasons: vec!["no heartbeat".to_owned()]
        }
    );
    assert!(matches!(
        g.observe(&Level::Healthy, 1000),
        GateState::Paused { since_ms: 1000, .. }
    ));
    assert!(matches!(
        g.observe(&Level::Healthy, 5999),
        GateState::Paused { .. }
    ));
    assert_eq!(g.observe(&Level::Healthy, 6000), GateState::Open);
}

#[test]
fn thresholds_load_with_defaults_and_validate() {
    let t: HealthThresholds = serde_json::from_str(r#"{"pause_p99_us": 20000}"#).unwrap();
    assert_eq!(
        t,
        HealthThresholds {
            pause_p99_us: 20_000,
            ..HealthThresholds::default()
        }
    );
    t.validate().unwrap();
    let bad = HealthThresholds {
        critical_disk_free_ratio: 0.2,
        ..HealthThresholds::default()
    };
    assert!(bad.validate().is_err());
    let bad = HealthThresholds {
        critical_heartbeat_age_ms: 1000,
        ..HealthThresholds::default()
    };
    assert!(bad.validate().is_err());
    let bad = HealthThresholds {
        pause_error_rate: 1.5,
        ..HealthThresholds::default()
    };
    assert!(bad.validate().is_err());
}

#[test]
fn shed_ops_pause_past_the_threshold() {
    assert_eq!(level(|s| s.shed_ops = 3), degraded("3 ops shed (overloaded: not started within their deadline) > 0"));
    let lenient = HealthThresholds { pause_shed_ops: 5, ..HealthThresholds::default() };
    let sample = NodeSample { shed_ops: 5, ..healthy_sample() };
    assert_eq!(classify(&sample, &lenient), Level::Healthy);
    assert!(matches!(classify(&NodeSample { shed_ops: 6, ..sample }, &lenient), Level::Degraded(_)));
}

/// Over the absolute limit, a node is degraded only if it is also over
/// the ratio of its usual p99; without a usual (a young cluster), or with
/// the ratio 0, the limit alone decides.
#[test]
fn p99_pauses_when_over_the_limit_and_over_the_ratio_of_the_usual() {
    let t = HealthThresholds::default();
    let at = |p99_us, usual_p99_us| classify(&NodeSample { p99_us, usual_p99_us, ..healthy_sample() }, &t);
    assert_eq!(at(55_000, Some(52_000)), Level::Healthy, "slow as usual");
    assert_eq!(at(104_000, Some(52_000)), Level::Healthy, "at twice the usual");
    assert_eq!(at(105_000, Some(52_000)), Level::Degraded(vec!["p99 105.0 ms > 50.0 ms and > 2x its usual 52.0 ms".into()]));
    assert_eq!(at(30_000, Some(2_000)), Level::Healthy, "under the limit, however far over the usual");
    assert_eq!(at(55_000, None), Level::Degraded(vec!["p99 55.0 ms > 50.0 ms".into()]));
    let absolute = HealthThresholds { pause_p99_ratio: 0.0, ..t.clone() };
    assert!(matches!(classify(&NodeSample { p99_us: 55_000, usual_p99_us: Some(52_000), ..healthy_sample() }, &absolute), Level::Degraded(_)));
    assert!(HealthThresholds { pause_p99_ratio: -1.0, ..t.clone() }.validate().is_err());
    assert!(HealthThresholds { pause_p99_ratio: f64::NAN, ..t }.validate().is_err());
}

/// The usual p99 is the median of the samples that served ops, once there
/// are enough; the window forgets the oldest.
#[test]
fn the_usual_p99_is_a_median_known_after_enough_samples() {
    let mut u = UsualP99::default();
    for i in 0..UsualP99::KNOWN_AFTER as u64 - 1 {
        u.observe(1_000 + i, 5);
        u.observe(999_999, 0);
    }
    assert_eq!(u.get(), None, "idle samples do not count");
    u.observe(1_000_000, 5);
    assert_eq!(u.get(), Some(1_030), "a spike does not move the median");
    for _ in 0..UsualP99::WINDOW {
        u.observe(7_000, 1);
    }
    assert_eq!(u.get(), Some(7_000), "a whole window later only the new samples count");
}
