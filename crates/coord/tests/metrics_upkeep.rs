//! The recorder's histogram samples are drained by the upkeep thread, so a
//! process nobody scrapes does not keep every sample it ever recorded.
//!
//! Its own test binary: it counts the bytes live on the heap with a global
//! allocator of its own.

use evenkeel_coord::{LATENCY_BUCKETS, start_metrics_upkeep};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is passed to the system allocator unchanged; the
// counter only observes sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

const SAMPLES: usize = 100_000;

fn record(recorder: &metrics_exporter_prometheus::PrometheusRecorder, samples: usize) {
    metrics::with_local_recorder(recorder, || {
        let h = metrics::histogram!("evenkeel_test_seconds", "node" => "1");
        for i in 0..samples {
            h.record((i % 1000) as f64 * 1e-6);
        }
    });
}

#[test]
fn histogram_samples_are_drained_without_a_scrape() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().set_buckets(&LATENCY_BUCKETS).unwrap().build_recorder();
    let handle = recorder.handle();
    let before = live();
    record(&recorder, SAMPLES);
    let held = live() - before;
    // 8 bytes a sample at the least: what an undrained recorder keeps.
    assert!(held >= (SAMPLES * 8) as isize, "the samples are held until drained ({held} bytes live)");

    start_metrics_upkeep(handle.clone(), Duration::from_millis(20)).unwrap();
    // The freed blocks are reclaimed by threads that record later (the
    // bucket's memory is epoch-managed), as in a serving process: keep a
    // trickle of samples going while waiting.
    let mut recorded = SAMPLES;
    let deadline = Instant::now() + Duration::from_secs(10);
    while live() - before > held / 10 && Instant::now() < deadline {
        record(&recorder, 100);
        recorded += 100;
        std::thread::sleep(Duration::from_millis(5));
    }
    let left = live() - before;
    assert!(left <= held / 10, "upkeep left {left} of {held} bytes live");

    // Drained into the buckets, not lost: every sample is counted.
    let text = handle.render();
    let count = text.lines().find(|l| l.starts_with("evenkeel_test_seconds_count")).expect("the histogram is rendered");
    assert!(count.ends_with(&format!(" {recorded}")), "{count}");
}
