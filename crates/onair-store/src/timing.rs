//! How long store calls take, for the server's `/metrics`: a fixed-bucket histogram every
//! call adds to (three relaxed atomic adds, no lock).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds. Fixed so the series stay the same across
/// releases and dashboards can rely on them.
pub const CALL_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Store calls by duration. One per [`Store`](crate::Store), shared by its clones.
#[derive(Debug, Default)]
pub struct CallTimes {
    /// Calls that took at most `CALL_BUCKETS[i]` (not cumulative).
    buckets: [AtomicU64; CALL_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl CallTimes {
    /// Counts one call that took `took`.
    pub fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        if let Some(i) = CALL_BUCKETS.iter().position(|&b| secs <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Cumulative counts per bucket (Prometheus `le` semantics), in [`CALL_BUCKETS`] order.
    pub fn cumulative(&self) -> [u64; CALL_BUCKETS.len()] {
        let mut out = [0; CALL_BUCKETS.len()];
        let mut running = 0;
        for (slot, bucket) in out.iter_mut().zip(&self.buckets) {
            running += bucket.load(Ordering::Relaxed);
            *slot = running;
        }
        out
    }

    /// Calls counted.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Total time of the calls counted, in seconds.
    pub fn sum_seconds(&self) -> f64 {
        self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_land_in_cumulative_buckets() {
        let t = CallTimes::default();
        t.observe(Duration::from_micros(300));
        t.observe(Duration::from_millis(20));
        t.observe(Duration::from_secs(9));
        let c = t.cumulative();
        assert_eq!(c[0], 1, "0.3 ms is within 0.5 ms");
        assert_eq!(c[5], 2, "20 ms is within 25 ms");
        assert_eq!(
            c[CALL_BUCKETS.len() - 1],
            2,
            "9 s is past the last bound, in +Inf only"
        );
        assert_eq!(t.count(), 3);
        assert!((t.sum_seconds() - 9.0203).abs() < 1e-6);
    }
}
