use super::*;

fn filled(p99s: &[u64]) -> Baseline {
    let mut b = Baseline::new(BaselineConfig::default());
    for (i, &p) in p99s.iter().enumerate() {
        b.push(p, 1000, (i as u64 + 1) * 1000);
    }
    b
}

#[test]
fn estimate_is_the_median_of_the_window() {
    let b = filled(&[1000, 5000, 1200, 1100, 900]);
    assert_eq!(b.estimate(5000), Some(1100));
    let b = filled(&[1000, 5000, 1200, 1100]);
    assert_eq!(b.estimate(4000), None); // fewer than 5 samples
    let b = filled(&[1000, 5000, 1200, 1100, 900, 1300]);
    assert_eq!(b.estimate(6000), Some(1150)); // mean of the middle two
}

#[test]
fn old_samples_leave_the_window() {
    let mut b = filled(&[9000; 10]); // seconds 1..=10
    for s in 11..=15 {
        b.push(1000, 1000, s * 1000);
    }
    // At 15 s the window is (5 s, 15 s]: five 9000s and five 1000s.
    assert_eq!(b.estimate(15_000), Some(5000));
    // At 20 s only the five 1000s remain.
    assert_eq!(b.estimate(20_000), Some(1000));
    assert_eq!(b.estimate(26_000), None);
}

#[test]
fn quiet_seconds_are_ignored() {
    let mut b = Baseline::new(BaselineConfig::default());
    for s in 1..=10 {
        b.push(100_000, 49, s * 1000);
    }
    assert_eq!(b.estimate(10_000), None);
    for s in 11..=15 {
        b.push(1000, 50, s * 1000);
    }
    assert_eq!(b.estimate(15_000), Some(1000));
}

#[test]
fn ring_is_bounded() {
    let cfg = BaselineConfig {
        capacity: 5,
        window_s: 1000,
        ..BaselineConfig::default()
    };
    let mut b = Baseline::new(cfg);
    for s in 1..=100 {
        b.push(s, 1000, s * 1000);
    }
    assert_eq!(b.samples.len(), 5);
    assert_eq!(b.estimate(100_000), Some(98));
}

#[test]
fn out_of_order_samples_are_dropped() {
    let mut b = filled(&[1000; 5]);
    b.push(1_000_000, 1000, 1000);
    assert_eq!(b.estimate(5000), Some(1000));
    assert_eq!(b.samples.len(), 5);
}

#[test]
fn steady_tolerates_one_outlier_but_not_two() {
    assert!(filled(&[1000, 1100, 1050, 1400, 1000]).is_steady(5000));
    assert!(filled(&[1000, 1100, 9000, 1400, 1000]).is_steady(5000));
    assert!(!filled(&[1000, 9000, 1100, 9000, 1000]).is_steady(5000));
    assert!(filled(&[1000, 1500, 1000, 1000, 1000]).is_steady(5000));
    // Exactly 1.5x (without the top) is not under the ratio.
    assert!(!filled(&[1000, 1500, 1000, 1500, 9000]).is_steady(5000));
    // Only the latest samples count.
    assert!(filled(&[50_000, 1, 1000, 1000, 1000, 1000, 1000]).is_steady(7000));
    assert!(!filled(&[1000; 4]).is_steady(4000));
}

#[test]
fn frozen_baseline_ignores_the_rebalance() {
    let mut b = filled(&[1000; 5]);
    assert_eq!(b.freeze(5000), Some(1000));
    for s in 6..=30 {
        b.push(50_000, 1000, s * 1000);
    }
    assert_eq!(b.estimate(30_000), Some(1000));
    assert_eq!(b.freeze(30_000), Some(1000));
    assert_eq!(b.frozen(), Some(1000));
    b.unfreeze();
    assert_eq!(b.frozen(), None);
    // Nothing from the rebalance was kept, and the old samples are stale.
    assert_eq!(b.estimate(30_000), None);
    // A move starting now freezes the last baseline known rather than
    // none: the rate would otherwise be held for the whole move.
    assert_eq!(b.freeze(31_000), Some(1000));
}

#[test]
fn a_second_between_moves_does_not_lose_the_baseline() {
    let mut b = filled(&[1000; 5]);
    assert_eq!(b.freeze(5000), Some(1000));
    // A long move, then one second with nothing moving: that second's
    // sample alone is no estimate, and the previous baseline is kept.
    b.unfreeze();
    b.push(4000, 1000, 300_000);
    assert_eq!(b.estimate(300_000), None);
    assert_eq!(b.freeze(301_000), Some(1000));
    // Once a fresh window has been learned, a new freeze takes it.
    b.unfreeze();
    for s in 400..405 {
        b.push(2000, 1000, s * 1000);
    }
    assert_eq!(b.freeze(404_000), Some(2000));
}

#[test]
fn freezing_without_an_estimate_freezes_nothing() {
    let mut b = filled(&[1000; 3]);
    assert_eq!(b.freeze(3000), None);
    assert_eq!(b.frozen(), None);
    b.push(1000, 1000, 4000);
    b.push(1000, 1000, 5000);
    assert_eq!(b.estimate(5000), Some(1000));
}

#[test]
fn config_validates() {
    assert!(BaselineConfig::default().validate().is_ok());
    assert!(
        BaselineConfig {
            capacity: 2,
            ..BaselineConfig::default()
        }
        .validate()
        .is_err()
    );
    assert!(
        BaselineConfig {
            steady_ratio_max: 0.5,
            ..BaselineConfig::default()
        }
        .validate()
        .is_err()
    );
}
