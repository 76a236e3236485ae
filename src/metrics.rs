//! Counters behind `getMetrics()`: lock-free, updated on every served read.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct Metrics {
    hits: AtomicU64,
    misses: AtomicU64,
    hit_nanos: AtomicU64,
    miss_nanos: AtomicU64,
    corruptions: AtomicU64,
    rebuilds: AtomicU64,
}

/// A consistent-enough copy of the counters (each read atomically).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSnapshot {
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub cache_hit_rate: f64,
    pub avg_cache_load_ms: f64,
    pub avg_sqlite_fallback_ms: f64,
    pub cache_corruption_count: u64,
    pub cache_rebuild_count: u64,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn avg_ms(total_nanos: u64, n: u64) -> f64 {
    if n == 0 {
        0.0
    } else {
        total_nanos as f64 / n as f64 / 1e6
    }
}

impl Metrics {
    pub fn hit(&self, took: Duration) {
        self.hits.fetch_add(1, Relaxed);
        self.hit_nanos.fetch_add(nanos(took), Relaxed);
    }

    pub fn miss(&self, took: Duration) {
        self.misses.fetch_add(1, Relaxed);
        self.miss_nanos.fetch_add(nanos(took), Relaxed);
    }

    pub fn corruption(&self) {
        self.corruptions.fetch_add(1, Relaxed);
    }

    pub fn rebuild(&self) {
        self.rebuilds.fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        let (hits, misses) = (self.hits.load(Relaxed), self.misses.load(Relaxed));
        MetricsSnapshot {
            cache_hits: hits,
            cache_misses: misses,
            cache_hit_rate: if hits + misses == 0 {
                0.0
            } else {
                hits as f64 / (hits + misses) as f64
            },
            avg_cache_load_ms: avg_ms(self.hit_nanos.load(Relaxed), hits),
            avg_sqlite_fallback_ms: avg_ms(self.miss_nanos.load(Relaxed), misses),
            cache_corruption_count: self.corruptions.load(Relaxed),
            cache_rebuild_count: self.rebuilds.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_averages() {
        let m = Metrics::default();
        assert_eq!(m.snapshot().cache_hit_rate, 0.0);
        m.hit(Duration::from_millis(2));
        m.hit(Duration::from_millis(4));
        m.miss(Duration::from_millis(10));
        let s = m.snapshot();
        assert_eq!((s.cache_hits, s.cache_misses), (2, 1));
        assert!((s.cache_hit_rate - 2.0 / 3.0).abs() < 1e-9);
        assert!((s.avg_cache_load_ms - 3.0).abs() < 1e-9);
        assert!((s.avg_sqlite_fallback_ms - 10.0).abs() < 1e-9);
    }
}
