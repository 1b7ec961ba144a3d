//! How long loads from the positions source take, by source and outcome.
//!
//! One observation per load, however many requests were waiting on it. The
//! source itself (ledger files or an upstream HTTP service) lives in the
//! service; this module only times it.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Where a load got its positions, as the `source` label.
///
/// # Examples
///
/// ```
/// use telemetry::Source;
///
/// assert_eq!(Source::Http.as_str(), "http");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The embedded or on-disk ledger (`POSITIONS_SOURCE=ledger:DIR`).
    Ledger,
    /// An upstream analytics service (`POSITIONS_SOURCE=http(s)://...`).
    Http,
}

impl Source {
    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ledger => "ledger",
            Self::Http => "http",
        }
    }
}

label_value_by_as_str!(Source);

/// How a load ended, as the `outcome` label.
///
/// # Examples
///
/// ```
/// use telemetry::Outcome;
///
/// assert_eq!(Outcome::Panicked.as_str(), "panicked");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Positions came back (an empty list included).
    Ok,
    /// The source answered with an error, or with something unusable.
    Error,
    /// The load ran past `REFRESH_TIMEOUT_MS` and was abandoned.
    Timeout,
    /// The loader panicked; the service turned that into an error.
    Panicked,
}

impl Outcome {
    /// Every outcome, in declaration order.
    pub const ALL: [Self; 4] = [Self::Ok, Self::Error, Self::Timeout, Self::Panicked];

    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::Timeout => "timeout",
            Self::Panicked => "panicked",
        }
    }
}

label_value_by_as_str!(Outcome);

/// The source's fetch-duration histograms.
///
/// Reached as [`Metrics::source`](crate::Metrics::source). Clones share the
/// same series.
///
/// The service [`declare`](Self::declare)s its source at start-up, which
/// makes that source's series, one per outcome, at zero: the family is in
/// the exposition before the first load, and a rate or an alert on an
/// outcome works from its first occurrence. A replica that only ever uses
/// the ledger shows no `source="http"` series. Each observation looks its
/// label set up with `Family::get_or_create`, which takes a read lock; at one
/// observation per load (hundreds of milliseconds each) that cost is noise.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use telemetry::{Metrics, Outcome, Source};
///
/// let metrics = Metrics::new();
/// metrics.source.observe(Source::Http, Outcome::Timeout, Duration::from_secs(5));
///
/// let text = metrics.encode();
/// assert!(text.contains(
///     "position_source_fetch_duration_seconds_count{source=\"http\",outcome=\"timeout\"} 1\n"
/// ));
/// ```
#[derive(Debug, Clone)]
pub struct SourceMetrics {
    fetch_duration: Family<SourceLabels, Histogram>,
}

impl SourceMetrics {
    /// Upper bounds of the fetch-duration buckets, in seconds: 1 ms (a warm
    /// ledger) to 10 s, twice the default `REFRESH_TIMEOUT_MS`, so that a
    /// load stopped by any timeout up to 10 s still lands in a finite
    /// bucket. Spaced 1, 2.5, 5 per decade, as Prometheus' defaults are.
    pub const BUCKETS: [f64; 13] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

    pub(crate) fn register(registry: &mut Registry) -> Self {
        let fetch_duration = Family::<SourceLabels, Histogram>::new_with_constructor(histogram);
        // Registered with its unit, so the exposition carries a `# UNIT`
        // line; the name gains the `_seconds` suffix from it.
        registry.register_with_unit(
            "position_source_fetch_duration",
            "Time to load one wallet's positions from the source, by source and outcome",
            Unit::Seconds,
            fetch_duration.clone(),
        );
        Self { fetch_duration }
    }

    /// Makes the series of `source`, one per [`Outcome`], at zero, so that
    /// they are exposed before the first load.
    ///
    /// # Examples
    ///
    /// ```
    /// use telemetry::{Metrics, Source};
    ///
    /// let metrics = Metrics::new();
    /// metrics.source.declare(Source::Http);
    /// let text = metrics.encode();
    /// assert!(text.contains("position_source_fetch_duration_seconds_count{source=\"http\",outcome=\"timeout\"} 0\n"));
    /// assert!(!text.contains("source=\"ledger\""));
    /// ```
    pub fn declare(&self, source: Source) {
        for outcome in Outcome::ALL {
            drop(self.fetch_duration.get_or_create(&SourceLabels { source, outcome }));
        }
    }

    /// Records one load from `source` that ended with `outcome` after
    /// `elapsed`.
    pub fn observe(&self, source: Source, outcome: Outcome, elapsed: Duration) {
        self.fetch_duration.get_or_create(&SourceLabels { source, outcome }).observe(elapsed.as_secs_f64());
    }
}

fn histogram() -> Histogram {
    Histogram::new(SourceMetrics::BUCKETS)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SourceLabels {
    source: Source,
    outcome: Outcome,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Metrics;
    use crate::testing::sample;

    const LEDGER_OK: &str = "source=\"ledger\",outcome=\"ok\"";

    #[test]
    fn an_observation_lands_in_the_first_bucket_that_holds_it() {
        let metrics = Metrics::new();
        metrics.source.observe(Source::Ledger, Outcome::Ok, Duration::from_millis(3));
        let text = metrics.encode();
        // prometheus-client writes `le` before the family's own labels.
        let bucket = |le: &str| {
            sample(&text, &format!("position_source_fetch_duration_seconds_bucket{{le=\"{le}\",{LEDGER_OK}}}"))
        };
        assert_eq!(bucket("0.0025"), Some(0.0));
        assert_eq!(bucket("0.005"), Some(1.0));
        assert_eq!(bucket("+Inf"), Some(1.0));
        assert_eq!(sample(&text, &format!("position_source_fetch_duration_seconds_count{{{LEDGER_OK}}}")), Some(1.0));
        let sum = sample(&text, &format!("position_source_fetch_duration_seconds_sum{{{LEDGER_OK}}}")).unwrap();
        assert!((sum - 0.003).abs() < 1e-9, "sum is in seconds, got {sum}");
    }

    #[test]
    fn outcomes_and_sources_are_separate_series() {
        let metrics = Metrics::new();
        metrics.source.observe(Source::Ledger, Outcome::Ok, Duration::from_millis(200));
        metrics.source.observe(Source::Http, Outcome::Error, Duration::from_millis(40));
        metrics.source.observe(Source::Http, Outcome::Panicked, Duration::from_millis(1));
        let text = metrics.encode();
        for labels in [LEDGER_OK, "source=\"http\",outcome=\"error\"", "source=\"http\",outcome=\"panicked\""] {
            let series = format!("position_source_fetch_duration_seconds_count{{{labels}}}");
            assert_eq!(sample(&text, &series), Some(1.0), "{series}");
        }
        assert!(!text.contains("source=\"ledger\",outcome=\"error\""), "no series for what never happened");
    }

    #[test]
    fn the_family_appears_on_first_use_with_its_unit() {
        let metrics = Metrics::new();
        assert!(!metrics.encode().contains("position_source_fetch_duration"), "no load, no family");
        metrics.source.observe(Source::Ledger, Outcome::Ok, Duration::from_millis(1));
        assert!(metrics.encode().contains("\n# UNIT position_source_fetch_duration_seconds seconds\n"));
    }

    #[test]
    fn a_declared_source_shows_every_outcome_at_zero_before_its_first_load() {
        let metrics = Metrics::new();
        metrics.source.declare(Source::Ledger);
        let text = metrics.encode();
        crate::exposition::parse_strict(&text).unwrap();
        for outcome in ["ok", "error", "timeout", "panicked"] {
            let series =
                format!("position_source_fetch_duration_seconds_count{{source=\"ledger\",outcome=\"{outcome}\"}}");
            assert_eq!(sample(&text, &series), Some(0.0), "{series}");
        }
        assert!(!text.contains("source=\"http\""), "only the declared source");
    }

    #[test]
    fn buckets_are_increasing_and_span_a_millisecond_to_ten_seconds() {
        let buckets = SourceMetrics::BUCKETS;
        assert!(buckets.windows(2).all(|pair| pair[0] < pair[1]));
        assert!((buckets[0] - 0.001).abs() < f64::EPSILON);
        assert!((buckets[buckets.len() - 1] - 10.0).abs() < f64::EPSILON);
    }
}
