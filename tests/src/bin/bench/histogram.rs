//! A fixed-bucket latency histogram that many viewer tasks record into without locks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bucket width: 0.1 ms.
const RESOLUTION_NS: u64 = 100_000;
/// 100 000 buckets of 0.1 ms cover 0–10 s; anything slower lands in the overflow bucket.
const BUCKETS: usize = 100_000;

/// Counts of durations in 0.1 ms buckets up to 10 s.
///
/// Viewers on one thread share one histogram; relaxed atomics make that cheap and keep the
/// type `Sync` for the multi-threaded case. Quantiles report a bucket's upper edge, so they
/// over-state by at most 0.1 ms.
#[derive(Debug)]
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    overflow: AtomicU64,
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            overflow: AtomicU64::new(0),
        }
    }

    /// Records one duration.
    pub fn record(&self, ns: u64) {
        let i = (ns / RESOLUTION_NS) as usize;
        match self.buckets.get(i) {
            Some(b) => b.fetch_add(1, Ordering::Relaxed),
            None => self.overflow.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// Adds every duration `other` recorded to this one (the figures of several nodes' viewers
    /// as one).
    pub fn add(&self, other: &Histogram) {
        for (b, o) in self.buckets.iter().zip(other.buckets.iter()) {
            b.fetch_add(o.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        self.overflow
            .fetch_add(other.overflow.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// How many durations were recorded.
    pub fn count(&self) -> u64 {
        self.buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .sum::<u64>()
            + self.overflow.load(Ordering::Relaxed)
    }

    /// The `q` quantile (0.0–1.0); `None` when empty, 10 s or more when it is in the overflow.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= rank {
                return Some(Duration::from_nanos((i as u64 + 1) * RESOLUTION_NS));
            }
        }
        Some(Duration::from_nanos(BUCKETS as u64 * RESOLUTION_NS))
    }
}

/// The `q` quantile of exact samples (sorted in place).
pub fn quantile_of(samples: &mut [Duration], q: f64) -> Option<Duration> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
    Some(samples[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_report_the_bucket_upper_edge() {
        let h = Histogram::new();
        for ms in 1..=100u64 {
            h.record(ms * 1_000_000);
        }
        assert_eq!(h.count(), 100);
        assert_eq!(h.quantile(0.5), Some(Duration::from_micros(50_100)));
        assert_eq!(h.quantile(0.99), Some(Duration::from_micros(99_100)));
        h.record(20_000_000_000);
        assert_eq!(h.quantile(1.0), Some(Duration::from_secs(10)));
        let sum = Histogram::new();
        sum.add(&h);
        sum.add(&h);
        assert_eq!(sum.count(), 202);
        // Each duration twice: the 101st of 202 is the second 51 ms.
        assert_eq!(sum.quantile(0.5), Some(Duration::from_micros(51_100)));
    }

    #[test]
    fn exact_quantiles() {
        let mut v: Vec<Duration> = (1..=10).rev().map(Duration::from_millis).collect();
        assert_eq!(quantile_of(&mut v, 0.5), Some(Duration::from_millis(5)));
        assert_eq!(quantile_of(&mut v, 0.99), Some(Duration::from_millis(10)));
        assert_eq!(quantile_of(&mut [], 0.5), None);
    }
}
