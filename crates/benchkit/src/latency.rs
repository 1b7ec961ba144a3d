//! Every latency of a run, and its percentiles.
//!
//! The load driver records each answer's latency in an HDR histogram (three
//! significant digits, 1 µs to 1 hour) rather than sampling or averaging,
//! so that p99 and the maximum are the run's own and not an estimate. This
//! module turns it into the figures the report quotes, in milliseconds.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// The longest latency recorded, in microseconds; longer ones are clamped.
const MAX_MICROS: u64 = 3_600_000_000;

/// Latencies recorded in microseconds.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use benchkit::latency::Latencies;
///
/// let mut latencies = Latencies::new();
/// for ms in 1..=100 {
///     latencies.record(Duration::from_millis(ms));
/// }
/// let summary = latencies.summary();
/// assert_eq!(summary.count, 100);
/// assert!((summary.p50_ms - 50.0).abs() < 0.1);
/// assert!((summary.max_ms - 100.0).abs() < 0.1);
/// ```
#[derive(Debug, Clone)]
pub struct Latencies {
    histogram: Histogram<u64>,
}

/// A run's latencies in milliseconds: what the report quotes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// How many were recorded.
    pub count: u64,
    /// The mean.
    pub mean_ms: f64,
    /// The median.
    pub p50_ms: f64,
    /// The 95th percentile.
    pub p95_ms: f64,
    /// The 99th percentile.
    pub p99_ms: f64,
    /// The 99.9th percentile.
    pub p999_ms: f64,
    /// The longest.
    pub max_ms: f64,
}

impl Latencies {
    /// An empty record.
    ///
    /// # Panics
    ///
    /// Never: the bounds are constants that `hdrhistogram` accepts.
    pub fn new() -> Self {
        Self { histogram: Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds") }
    }

    /// Records one latency (at least 1 µs, at most an hour).
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(MAX_MICROS).clamp(1, MAX_MICROS);
        // In bounds by the clamp, so this cannot fail.
        let _ = self.histogram.record(micros);
    }

    /// Adds every latency of `other`.
    pub fn merge(&mut self, other: &Self) {
        // Same bounds on both sides, so this cannot fail.
        let _ = self.histogram.add(&other.histogram);
    }

    /// How many were recorded.
    pub fn len(&self) -> u64 {
        self.histogram.len()
    }

    /// Whether none was recorded.
    pub fn is_empty(&self) -> bool {
        self.histogram.is_empty()
    }

    /// The percentiles; all zero if nothing was recorded.
    pub fn summary(&self) -> Summary {
        let h = &self.histogram;
        if h.is_empty() {
            return Summary {
                count: 0,
                mean_ms: 0.0,
                p50_ms: 0.0,
                p95_ms: 0.0,
                p99_ms: 0.0,
                p999_ms: 0.0,
                max_ms: 0.0,
            };
        }
        let ms = |micros: u64| micros as f64 / 1_000.0;
        Summary {
            count: h.len(),
            mean_ms: h.mean() / 1_000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p95_ms: ms(h.value_at_quantile(0.95)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_spread() {
        let mut latencies = Latencies::new();
        // 1,000 latencies of 1 to 1,000 µs.
        for micros in 1..=1_000 {
            latencies.record(Duration::from_micros(micros));
        }
        let s = latencies.summary();
        assert_eq!(s.count, 1_000);
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.002;
        assert!(close(s.p50_ms, 0.500), "{s:?}");
        assert!(close(s.p95_ms, 0.950), "{s:?}");
        assert!(close(s.p99_ms, 0.990), "{s:?}");
        assert!(close(s.max_ms, 1.000), "{s:?}");
        assert!(close(s.mean_ms, 0.5005), "{s:?}");
    }

    #[test]
    fn a_slow_tail_shows_in_p99_and_not_in_p50() {
        let mut fast = Latencies::new();
        for _ in 0..980 {
            fast.record(Duration::from_micros(100));
        }
        let mut slow = Latencies::new();
        for _ in 0..20 {
            slow.record(Duration::from_millis(300));
        }
        fast.merge(&slow);
        let s = fast.summary();
        assert_eq!(s.count, 1_000);
        assert!((s.p50_ms - 0.1).abs() < 0.001, "{s:?}");
        assert!((s.p95_ms - 0.1).abs() < 0.001, "{s:?}");
        assert!((s.p99_ms - 300.0).abs() < 0.5, "{s:?}");
    }

    #[test]
    fn extremes_are_clamped_and_empty_is_zero() {
        let mut latencies = Latencies::new();
        assert_eq!(latencies.summary().count, 0);
        assert!(latencies.is_empty());
        latencies.record(Duration::ZERO);
        latencies.record(Duration::from_secs(10_000));
        let s = latencies.summary();
        assert_eq!(s.count, 2);
        assert!(s.max_ms >= 3_599_000.0, "{s:?}");
    }
}
