//! Hot keys: the keys clients use most on this node, found by sampling.
//!
//! A busy partition (`crate::load`) can be evened out by moving partitions
//! only when its load is spread over many keys; one key that takes most of
//! it (a *hot key*) makes whichever node holds it busy. To tell the two
//! apart, and to name the key, each node keeps the heavy hitters of its
//! client ops: one op in [`SAMPLE_EVERY`], drawn at random (a fixed stride
//! would alias with a client's own loop), feeds a Space-Saving sketch
//! (Metwally, Agrawal, El Abbadi, 2005) of [`CAPACITY`] counters. A key seen
//! again adds one to its counter; a new key, once the sketch is full,
//! replaces the smallest counter and inherits its count as its possible
//! overestimate (`error`). Any key sampled more than `samples / CAPACITY`
//! times is certain to be in the sketch, and every count is within its
//! `error` of the truth.
//!
//! The sketch covers a window of about [`WINDOW_MS`]: the first sample or
//! report after the window's end closes it, and its [`REPORTED`] largest
//! counters become what `Stats` reports (rates: count × sampling / the
//! window's actual span), while a new sketch starts. So the figures are at
//! most a window or so old, and a key that went quiet drops out after one
//! window. Only the first [`KEY_PREFIX_MAX`] bytes of a key are kept: longer
//! keys sharing that prefix are counted together (`truncated`).
//!
//! Cost: one random draw per op; a lock and a map update per sampled op.

use bytes::Bytes;
use evenkeel_types::PartitionId;
use parking_lot::Mutex;
use std::collections::HashMap;

/// One op in this many is sampled.
pub const SAMPLE_EVERY: u32 = 16;
/// Counters the sketch keeps.
pub const CAPACITY: usize = 128;
/// A window's length.
pub const WINDOW_MS: u64 = 10_000;
/// Keys reported per window.
pub const REPORTED: usize = 16;
/// Bytes of a key kept.
pub const KEY_PREFIX_MAX: usize = 256;

/// A key among the busiest of the last closed window.
#[derive(Debug, Clone, PartialEq)]
pub struct HotKey {
    pub key: Bytes,
    pub partition: PartitionId,
    /// Client ops per second on it (an overestimate by at most
    /// `error_ops_per_s`).
    pub ops_per_s: f64,
    pub error_ops_per_s: f64,
    /// Longer than [`KEY_PREFIX_MAX`]: keys with this prefix together.
    pub truncated: bool,
}

#[derive(Debug, Clone, Copy)]
struct Counter {
    count: u64,
    error: u64,
    partition: PartitionId,
    truncated: bool,
}

#[derive(Debug, Default)]
struct Sketch {
    counters: HashMap<Bytes, Counter>,
}

impl Sketch {
    fn add(&mut self, key: &[u8], partition: PartitionId) {
        let truncated = key.len() > KEY_PREFIX_MAX;
        let key = &key[..key.len().min(KEY_PREFIX_MAX)];
        if let Some(c) = self.counters.get_mut(key) {
            c.count += 1;
            return;
        }
        let (count, error) = if self.counters.len() < CAPACITY {
            (1, 0)
        } else {
            // The smallest counter (the first such key in byte order, so
            // the choice does not depend on the map's iteration order).
            let (smallest, min) = self.counters.iter().map(|(k, c)| (k, c.count)).min_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(b.0))).expect("a full sketch");
            let smallest = smallest.clone();
            self.counters.remove(&smallest);
            (min + 1, min)
        };
        self.counters.insert(Bytes::copy_from_slice(key), Counter { count, error, partition, truncated });
    }

    /// The `n` largest counters as rates over `span_ms`, largest first.
    fn top(&self, n: usize, span_ms: u64) -> Vec<HotKey> {
        let mut all: Vec<(&Bytes, &Counter)> = self.counters.iter().collect();
        all.sort_by(|a, b| b.1.count.cmp(&a.1.count).then_with(|| a.0.cmp(b.0)));
        let per_s = SAMPLE_EVERY as f64 * 1000.0 / span_ms.max(1) as f64;
        all.into_iter()
            .take(n)
            .map(|(k, c)| HotKey { key: k.clone(), partition: c.partition, ops_per_s: c.count as f64 * per_s, error_ops_per_s: c.error as f64 * per_s, truncated: c.truncated })
            .collect()
    }
}

#[derive(Debug)]
struct State {
    started_ms: u64,
    current: Sketch,
    closed: Vec<HotKey>,
}

/// The node's hot-key sketch and its last closed window.
#[derive(Debug)]
pub struct HotKeys {
    state: Mutex<State>,
}

impl HotKeys {
    pub fn new(now_ms: u64) -> Self {
        HotKeys { state: Mutex::new(State { started_ms: now_ms, current: Sketch::default(), closed: Vec::new() }) }
    }

    /// Counts an op on `key` if it is drawn for the sample.
    pub fn op(&self, partition: PartitionId, key: &[u8], now_ms: u64) {
        if rand::random::<u32>().is_multiple_of(SAMPLE_EVERY) {
            self.sampled(partition, key, now_ms);
        }
    }

    /// Adds one sampled op.
    fn sampled(&self, partition: PartitionId, key: &[u8], now_ms: u64) {
        let mut s = self.state.lock();
        Self::roll(&mut s, now_ms);
        s.current.add(key, partition);
    }

    /// The busiest keys of the last closed window, busiest first.
    pub fn report(&self, now_ms: u64) -> Vec<HotKey> {
        let mut s = self.state.lock();
        Self::roll(&mut s, now_ms);
        s.closed.clone()
    }

    /// Closes the window if it has run its length.
    fn roll(s: &mut State, now_ms: u64) {
        let span = now_ms.saturating_sub(s.started_ms);
        if span >= WINDOW_MS {
            s.closed = s.current.top(REPORTED, span);
            s.current = Sketch::default();
            s.started_ms = now_ms;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heavy_hitters_are_found_with_their_rates_in_a_long_tail() {
        let hot = HotKeys::new(0);
        // 10,000 samples in a window: "a" 2,000, "b" 1,000, and 7,000 keys
        // seen once each (far more than the sketch holds).
        for i in 0..10_000u32 {
            let key = match i % 10 {
                0 | 5 => b"a".to_vec(),
                3 => b"b".to_vec(),
                _ => format!("tail{i}").into_bytes(),
            };
            hot.sampled(7, &key, i as u64);
        }
        assert!(hot.report(9_999).is_empty(), "no window closed yet");
        let top = hot.report(10_000);
        assert_eq!(top.len(), REPORTED);
        assert_eq!((&top[0].key[..], top[0].partition, &top[1].key[..]), (&b"a"[..], 7, &b"b"[..]));
        // Sampled one in 16 over 10 s: 2,000 samples are 3,200 ops/s, give
        // or take what a key may have inherited.
        for (k, truth) in [(0, 3_200.0), (1, 1_600.0)] {
            let h = &top[k];
            assert!(h.ops_per_s >= truth && h.ops_per_s - h.error_ops_per_s <= truth, "{h:?}");
        }
        assert!(top[2].ops_per_s < top[1].ops_per_s / 2.0, "the tail is not hot: {:?}", top[2]);
        // The next window started empty.
        assert!(hot.report(20_000).is_empty());
    }

    #[test]
    fn the_sketch_stays_bounded_and_long_keys_are_cut() {
        let mut s = Sketch::default();
        for i in 0..10_000u32 {
            s.add(&i.to_be_bytes(), 1);
        }
        assert_eq!(s.counters.len(), CAPACITY);
        let long_a = vec![b'x'; 1_000];
        let mut long_b = long_a.clone();
        long_b[999] = b'y';
        s.add(&long_a, 2);
        s.add(&long_b, 2);
        let top = s.top(1, WINDOW_MS);
        assert_eq!(top[0].key.len(), KEY_PREFIX_MAX);
        assert!(top[0].truncated);
        assert!(s.counters.len() <= CAPACITY);
    }

    #[test]
    fn rates_are_over_the_windows_actual_span() {
        let hot = HotKeys::new(0);
        for _ in 0..100 {
            hot.sampled(0, b"k", 1_000);
        }
        // Closed late, at 20 s: 100 samples × 16 over 20 s = 80 ops/s.
        let top = hot.report(20_000);
        assert_eq!(top[0].ops_per_s, 80.0);
        assert_eq!(top[0].error_ops_per_s, 0.0);
    }

    #[test]
    fn about_one_op_in_sixteen_is_sampled() {
        let hot = HotKeys::new(0);
        for _ in 0..160_000 {
            hot.op(0, b"k", 0);
        }
        let count = hot.state.lock().current.counters[&Bytes::from_static(b"k")].count;
        assert!((9_000..11_000).contains(&count), "{count}");
    }
}
