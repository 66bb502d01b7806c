//! The controller against a simulated plant.
//!
//! Plant: `p99 = baseline * (1 + 0.5 * (rate / capacity)^2) * (1 + noise)`
//! with seeded uniform noise in ±2%. The budget (1.10x) is crossed at
//! `r* = capacity * sqrt(0.2)`.
//!
//! **Stated steady-state bound: once converged, the rate stays within
//! `[0.4 * r*, 1.05 * r* + increase_bytes_per_s]`.** Why: a raise needs an
//! observed ratio < 1.08, i.e. a true ratio < 1.08 / 0.98 ≈ 1.102, i.e.
//! rate < 1.011 r*, so no raise starts above that and none ends above it
//! plus one step. A cut needs an observed ratio above 1.10, i.e. a true
//! ratio above 1.10 / 1.02 ≈ 1.078, i.e. rate > 0.886 r*, and halves it to no
//! less than 0.443 r*; at that rate p99 is far under budget, so no second cut
//! follows. Seeds 1–5 at r* = 20 MiB/s stay within [0.447, 1.016] r* with
//! the true p99 over budget in under 1% of the seconds.

use super::*;
use proptest::prelude::*;

const BASELINE_US: u64 = 2_000;
const NOISE: f64 = 0.02;

/// SplitMix64: a seeded, dependency-free source of noise.
struct Rng(u64);

impl Rng {
    fn next_unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) as f64 / u64::MAX as f64
    }
}

struct Plant {
    capacity: f64,
    rng: Rng,
}

impl Plant {
    /// A plant whose p99 crosses the default budget at `r_star`.
    fn crossing_budget_at(r_star: f64, seed: u64) -> Self {
        Self {
            capacity: r_star / 0.2f64.sqrt(),
            rng: Rng(seed),
        }
    }

    fn true_ratio(&self, rate: f64) -> f64 {
        1.0 + 0.5 * (rate / self.capacity).powi(2)
    }

    fn p99_us(&mut self, rate: f64) -> u64 {
        let noise = 1.0 + NOISE * (2.0 * self.rng.next_unit() - 1.0);
        (BASELINE_US as f64 * self.true_ratio(rate) * noise) as u64
    }
}

struct Run {
    rates: Vec<f64>,
    true_ratios: Vec<f64>,
}

/// One sample per second for `seconds`, starting at `start`.
fn simulate(cfg: AimdConfig, r_star: f64, seed: u64, seconds: u64) -> (Controller, Run) {
    let mut plant = Plant::crossing_budget_at(r_star, seed);
    let mut c = Controller::new(cfg, 0);
    let mut run = Run {
        rates: vec![],
        true_ratios: vec![],
    };
    for s in 1..=seconds {
        // The p99 of second s reflects the rate in force during it.
        run.true_ratios.push(plant.true_ratio(c.rate()));
        let p99 = plant.p99_us(c.rate());
        c.observe(p99, BASELINE_US, s * 1000);
        run.rates.push(c.rate());
    }
    (c, run)
}

fn check_steady_state(run: &Run, r_star: f64, inc: f64, from: usize) -> Result<(), String> {
    let (lo, hi) = (0.4 * r_star, 1.05 * r_star + inc);
    for (i, &r) in run.rates.iter().enumerate().skip(from) {
        if r < lo || r > hi {
            return Err(format!(
                "second {}: rate {r:.0} outside [{lo:.0}, {hi:.0}]",
                i + 1
            ));
        }
    }
    Ok(())
}

fn over_budget_fraction(run: &Run, from: usize) -> f64 {
    let tail = &run.true_ratios[from..];
    tail.iter().filter(|&&r| r > 1.10).count() as f64 / tail.len() as f64
}

#[test]
fn converges_and_keeps_p99_under_budget() {
    let r_star = 20.0 * MIB;
    for seed in 1..=5 {
        let (_, run) = simulate(AimdConfig::default(), r_star, seed, 600);
        check_steady_state(&run, r_star, MIB, 60).unwrap();
        let over = over_budget_fraction(&run, 60);
        assert!(
            over <= 0.05,
            "seed {seed}: over budget {:.1}% of the time",
            over * 100.0
        );
        let mean = run.rates[60..].iter().sum::<f64>() / (run.rates.len() - 60) as f64;
        assert!(
            mean >= 0.65 * r_star,
            "seed {seed}: mean rate {mean:.0} wastes capacity"
        );
    }
}

#[test]
fn starting_above_capacity_cuts_down_into_the_bound() {
    let cfg = AimdConfig {
        start_bytes_per_s: 64.0 * MIB,
        ..AimdConfig::default()
    };
    let r_star = 10.0 * MIB;
    let (_, run) = simulate(cfg, r_star, 7, 300);
    // 64 -> 32 -> 16 -> 8 MiB/s takes three cuts, one per cooldown.
    assert!(
        run.rates[8] <= 1.05 * r_star + MIB,
        "rate after 9 s: {}",
        run.rates[8]
    );
    check_steady_state(&run, r_star, MIB, 10).unwrap();
}

#[test]
fn spike_cuts_within_one_sample() {
    let r_star = 20.0 * MIB;
    let (mut c, run) = simulate(AimdConfig::default(), r_star, 3, 200);
    let mut now_ms = 200_000;
    // Ride the plant until the last cut is outside the cooldown, as it is
    // most of the time in steady state.
    let mut plant = Plant::crossing_budget_at(r_star, 99);
    while c.last_cut_ms().is_some_and(|t| now_ms - t < 2000) {
        now_ms += 1000;
        c.observe(plant.p99_us(c.rate()), BASELINE_US, now_ms);
    }
    let before = c.rate();
    assert!(
        before >= 0.4 * r_star,
        "rate {before} (last of run {:?})",
        run.rates.last()
    );
    let d = c.observe(3 * BASELINE_US, BASELINE_US, now_ms + 1000);
    assert_eq!(d.action, Adjust::Decrease);
    assert_eq!(d.rate_bytes_per_s, before * 0.5);
    assert_eq!(d.reason, "cut: p99 3.00x baseline (budget 1.10x)");
}

#[test]
fn cooldown_spaces_cuts() {
    let mut c = Controller::new(
        AimdConfig {
            start_bytes_per_s: 32.0 * MIB,
            ..AimdConfig::default()
        },
        0,
    );
    assert_eq!(c.observe(3000, 1000, 1000).action, Adjust::Decrease);
    let held = c.observe(3000, 1000, 2999);
    assert_eq!(held.action, Adjust::Hold);
    assert_eq!(held.rate_bytes_per_s, 16.0 * MIB);
    assert!(held.reason.contains("cooldown 2000 ms"), "{}", held.reason);
    assert_eq!(c.observe(3000, 1000, 3000).action, Adjust::Decrease);
    assert_eq!(c.rate(), 8.0 * MIB);
}

#[test]
fn floor_and_ceiling_hold() {
    // Without the floor reference, which would otherwise take the 10x p99
    // as what the floor costs (tested below).
    let cfg = AimdConfig { floor_patience_s: 0, ..AimdConfig::default() };
    let mut c = Controller::new(cfg.clone(), 0);
    for s in 1..100 {
        c.observe(10_000, 1000, s * 3000);
    }
    assert_eq!(c.rate(), cfg.floor_bytes_per_s);
    let d = c.observe(10_000, 1000, 1_000_000);
    assert_eq!(d.action, Adjust::Hold);
    assert!(
        d.reason.contains("already at floor 256.0 KiB/s"),
        "{}",
        d.reason
    );
    for s in 1..200 {
        c.observe(1000, 1000, 1_000_000 + s * 1000);
    }
    assert_eq!(c.rate(), cfg.ceiling_bytes_per_s);
}

#[test]
fn raise_needs_consecutive_comfortable_samples() {
    let mut c = Controller::new(AimdConfig::default(), 0);
    let start = c.rate();
    let d = c.observe(930, 1000, 1000);
    assert_eq!(
        (d.action, d.reason.as_str()),
        (
            Adjust::Hold,
            "hold: p99 0.93x baseline, comfortable 1/2 samples"
        )
    );
    // A sample in the band breaks the streak.
    let d = c.observe(1090, 1000, 2000);
    assert_eq!(d.reason, "hold: p99 1.09x baseline, inside hysteresis band");
    assert_eq!(c.observe(930, 1000, 3000).action, Adjust::Hold);
    let d = c.observe(930, 1000, 4000);
    assert_eq!(
        (d.action, d.reason.as_str()),
        (Adjust::Increase, "raise: p99 0.93x baseline")
    );
    assert_eq!(d.rate_bytes_per_s, start + MIB);
}

#[test]
fn band_edges_follow_headroom_not_budget_times_comfort() {
    let cfg = AimdConfig::default();
    assert!((cfg.raise_below_ratio() - 1.08).abs() < 1e-12);
    let mut c = Controller::new(cfg, 0);
    // 1.02x is comfortable (the migration adds 2% of a 10% allowance).
    c.observe(1020, 1000, 1000);
    assert_eq!(c.observe(1020, 1000, 2000).action, Adjust::Increase);
    // Exactly at the budget is not over it.
    assert_eq!(c.observe(1100, 1000, 3000).action, Adjust::Hold);
    assert_eq!(c.observe(1101, 1000, 4000).action, Adjust::Decrease);
}

#[test]
fn idle_holds_and_restarts_the_comfortable_streak() {
    let mut c = Controller::new(AimdConfig::default(), 0);
    let start = c.rate();
    c.observe(930, 1000, 1000);
    assert_eq!(c.idle().reason, "hold: nothing moving");
    // One comfortable sample before the idle spell does not count.
    assert_eq!(c.observe(930, 1000, 3000).action, Adjust::Hold);
    assert_eq!(c.observe(930, 1000, 4000).action, Adjust::Increase);
    assert_eq!(c.rate(), start + MIB);
}

#[test]
fn no_baseline_holds() {
    let mut c = Controller::new(AimdConfig::default(), 0);
    let d = c.observe(1_000_000, 0, 1000);
    assert_eq!(
        d,
        Decision {
            rate_bytes_per_s: 4.0 * MIB,
            action: Adjust::Hold,
            reason: "hold: no baseline yet".to_owned(),
        }
    );
}

#[test]
fn config_defaults_fill_missing_fields() {
    let cfg: AimdConfig = serde_json::from_str(r#"{"budget_ratio": 1.2}"#).unwrap();
    assert_eq!(
        cfg,
        AimdConfig {
            budget_ratio: 1.2,
            ..AimdConfig::default()
        }
    );
    assert!(AimdConfig::default().validate().is_ok());
}

#[test]
fn validate_rejects_nonsense() {
    let bad = [
        AimdConfig {
            budget_ratio: 1.0,
            ..AimdConfig::default()
        },
        AimdConfig {
            comfort_ratio: 0.0,
            ..AimdConfig::default()
        },
        AimdConfig {
            decrease_factor: 1.0,
            ..AimdConfig::default()
        },
        AimdConfig {
            floor_bytes_per_s: 0.0,
            ..AimdConfig::default()
        },
        AimdConfig {
            ceiling_bytes_per_s: 1.0,
            ..AimdConfig::default()
        },
        AimdConfig {
            increase_after_samples: 0,
            ..AimdConfig::default()
        },
        AimdConfig {
            increase_bytes_per_s: f64::NAN,
            ..AimdConfig::default()
        },
    ];
    for cfg in bad {
        assert!(cfg.validate().is_err(), "{cfg:?}");
    }
}

proptest! {
    /// Whatever the samples, the rate stays within [floor, ceiling], the
    /// action says truthfully how it moved, and cuts are a cooldown apart.
    #[test]
    fn bounds_hold_for_any_samples(
        start in 0f64..1e9,
        samples in prop::collection::vec((0u64..1_000_000, 0u64..100_000, 0u64..5000), 1..400),
    ) {
        let cfg = AimdConfig { start_bytes_per_s: start, ..AimdConfig::default() };
        let mut c = Controller::new(cfg.clone(), 0);
        let mut now_ms = 0;
        let mut last_cut: Option<u64> = None;
        for (p99, baseline, dt) in samples {
            now_ms += dt;
            let before = c.rate();
            let d = c.observe(p99, baseline, now_ms);
            prop_assert_eq!(d.rate_bytes_per_s, c.rate());
            prop_assert!(c.rate() >= cfg.floor_bytes_per_s && c.rate() <= cfg.ceiling_bytes_per_s);
            match d.action {
                Adjust::Increase => prop_assert!(c.rate() > before),
                Adjust::Hold => prop_assert_eq!(c.rate(), before),
                Adjust::Decrease => {
                    prop_assert!(c.rate() < before);
                    if let Some(t) = last_cut {
                        prop_assert!(now_ms - t >= cfg.decrease_cooldown_ms);
                    }
                    last_cut = Some(now_ms);
                }
            }
        }
    }

    /// The stated steady-state bound holds across seeds and capacities.
    #[test]
    fn converges_for_any_capacity(seed in any::<u64>(), r_star_mib in 8f64..48.0) {
        let r_star = r_star_mib * MIB;
        let (_, run) = simulate(AimdConfig::default(), r_star, seed, 400);
        // Climbing from 4 MiB/s at 1 MiB/s per 2 s reaches r* within 90 s.
        let from = (2.0 * r_star_mib) as usize + 10;
        if let Err(e) = check_steady_state(&run, r_star, MIB, from) {
            return Err(TestCaseError::fail(e));
        }
        prop_assert!(over_budget_fraction(&run, from) <= 0.15);
    }
}

/// A plant whose p99 has a part the rate does not change: 1.5x the
/// baseline at any rate (a moving partition's extra hop), plus what the
/// rate adds, which crosses the budget over that part at `r_star`.
fn offset_plant_p99(rate: f64, r_star: f64) -> u64 {
    let capacity = r_star / 0.2f64.sqrt();
    (BASELINE_US as f64 * (1.5 + 1.5 * 0.5 * (rate / capacity).powi(2))) as u64
}

#[test]
fn latency_the_rate_does_not_cause_does_not_pin_the_rate_to_the_floor() {
    let r_star = 8.0 * MIB;
    let run = |cfg: AimdConfig| {
        let mut c = Controller::new(cfg, 0);
        let mut rates = vec![];
        let mut reasons = vec![];
        for s in 1..=120u64 {
            let d = c.observe(offset_plant_p99(c.rate(), r_star), BASELINE_US, s * 1000);
            rates.push(c.rate());
            reasons.push(d.reason);
        }
        (c, rates, reasons)
    };

    // Steering against the baseline alone, 1.5x is over budget at any
    // rate: the controller cuts to the floor and stays there.
    let (_, rates, _) = run(AimdConfig { floor_patience_s: 0, ..AimdConfig::default() });
    let floor = AimdConfig::default().floor_bytes_per_s;
    assert!(rates[20..].iter().all(|&r| r == floor), "{rates:?}");

    // With the default patience (10 s), the p99 at the floor becomes the
    // reference, and the rate grows until the rate's own share crosses the
    // budget over it: it settles into the usual sawtooth below r*.
    let (mut c, rates, reasons) = run(AimdConfig::default());
    let taken = reasons.iter().position(|r| r.contains("does not come down with the rate")).expect("the reference is taken");
    assert!(reasons[taken].contains("1.50x baseline"), "{}", reasons[taken]);
    let reference = c.reference_us().unwrap();
    assert_eq!(reference, offset_plant_p99(floor, r_star));
    let tail = &rates[60..];
    assert!(tail.iter().all(|&r| r >= 0.4 * r_star && r <= 1.05 * r_star + MIB), "{tail:?}");
    let over = tail.iter().filter(|&&r| offset_plant_p99(r, r_star) as f64 > 1.10 * reference as f64).count();
    assert!(over <= tail.len() / 20, "{over} of {} seconds over budget of the reference", tail.len());
    assert!(reasons[60..].iter().all(|r| !r.contains("x baseline") || r.contains("does not come down")), "ratios are against the reference now");

    // Once nothing is in flight the caller resets it; the next over-budget
    // sample is compared with the baseline again and cut.
    c.reset_reference();
    assert_eq!(c.reference_us(), None);
    let d = c.observe(offset_plant_p99(c.rate(), r_star), BASELINE_US, 1_000_000);
    assert_eq!(d.action, Adjust::Decrease, "{}", d.reason);
    assert!(d.reason.contains("x baseline"), "{}", d.reason);
}

#[test]
fn a_worse_floor_is_taken_again_after_another_wait() {
    // p99 at the floor is 2x, and later 4x, the baseline (say, a node's
    // compaction): each is taken as the reference only after
    // floor_patience_s over budget at the floor.
    let cfg = AimdConfig { start_bytes_per_s: 0.0, ..AimdConfig::default() };
    let mut c = Controller::new(cfg, 0);
    let mut taken = vec![];
    for s in 1..=40u64 {
        let p99 = if s <= 20 { 2 * BASELINE_US } else { 4 * BASELINE_US };
        let d = c.observe(p99, BASELINE_US, s * 1000);
        if d.reason.contains("does not come down") {
            taken.push((s, c.reference_us()));
        }
        // Rising from the floor: the plant is flat, so each raise is
        // comfortable against the reference. Hold the rate at the floor to
        // test the wait alone.
        c.rate_bytes_per_s = c.cfg.floor_bytes_per_s;
    }
    assert_eq!(taken, vec![(11, Some(2 * BASELINE_US)), (31, Some(4 * BASELINE_US))]);
}

#[test]
fn a_reference_taken_during_a_transient_does_not_outlive_it() {
    let cfg = AimdConfig { start_bytes_per_s: 0.0, ..AimdConfig::default() };
    let mut c = Controller::new(cfg, 0);
    // 5x for 11 s at the floor: taken.
    for s in 1..=11u64 {
        c.observe(5 * BASELINE_US, BASELINE_US, s * 1000);
    }
    assert_eq!(c.reference_us(), Some(5 * BASELINE_US));
    // The transient ends: p99 is 2x, then back at the baseline. The
    // reference follows it down, and is gone once p99 is at the baseline.
    c.observe(2 * BASELINE_US, BASELINE_US, 12_000);
    assert_eq!(c.reference_us(), Some(2 * BASELINE_US));
    c.observe(3 * BASELINE_US, BASELINE_US, 13_000);
    assert_eq!(c.reference_us(), Some(2 * BASELINE_US), "it never goes up but by another wait at the floor");
    c.observe(BASELINE_US, BASELINE_US, 14_000);
    assert_eq!(c.reference_us(), None);
    // So 1.5x is over budget again, against the baseline.
    c.rate_bytes_per_s = 4.0 * MIB;
    let d = c.observe(3 * BASELINE_US / 2, BASELINE_US, 20_000);
    assert_eq!(d.action, Adjust::Decrease, "{}", d.reason);
    assert!(d.reason.contains("x baseline"), "{}", d.reason);
}
