//! Tier 2, the shared Redis cache: reads found and not found, failures by
//! operation, error replies by kind, undecodable and oversized values,
//! reachability and the circuit breaker.
//!
//! The Redis tier records here; it owns the decisions (what counts as a
//! usable value, when the breaker opens), this module only names them.
//!
//! The two gauges (`position_cache_redis_up`, `_breaker_state`) are left
//! out of the exposition until first set, which the service does only when
//! Redis is configured: a replica without Redis shows no `up` gauge at
//! all, rather than a 0 that an alert on "Redis down" would page for.
//!
//! The breaker is one series per state, `state="closed"`, `"half_open"` and
//! `"open"`, the current one 1 and the others 0 (the shape of an
//! `OpenMetrics` state set, as a gauge so that the classic format carries
//! it too): `position_cache_redis_breaker_state{state="open"} == 1` selects
//! the replicas skipping Redis, and a `sum by (state)` counts replicas per
//! state. The three series are rendered from one atomic, so a scrape never
//! sees two states at once, or none.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// A Redis operation, as the `op` label of
/// `position_cache_redis_errors_total`.
///
/// # Examples
///
/// ```
/// use telemetry::RedisOp;
///
/// assert_eq!(RedisOp::Scan.as_str(), "scan");
/// assert_eq!(RedisOp::ALL.len(), 6);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RedisOp {
    /// Reading a wallet's entry (`GET`).
    Get,
    /// Writing a wallet's entry (`SET` with an expiry).
    Set,
    /// Dropping entries (`DEL` or `UNLINK`).
    Delete,
    /// Walking keys for a pattern invalidation (`SCAN`).
    Scan,
    /// Getting a connection from the pool (or making one).
    Connect,
    /// A health probe (`PING`).
    Ping,
}

impl RedisOp {
    /// Every operation, in declaration order.
    pub const ALL: [Self; 6] = [Self::Get, Self::Set, Self::Delete, Self::Scan, Self::Connect, Self::Ping];

    /// The label value: the operation in lower case.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Set => "set",
            Self::Delete => "delete",
            Self::Scan => "scan",
            Self::Connect => "connect",
            Self::Ping => "ping",
        }
    }
}

/// The kind of an error reply from Redis, as the `kind` label of
/// `position_cache_redis_error_replies_total`: Redis answered and refused
/// one command, which is not an outage.
///
/// # Examples
///
/// ```
/// use telemetry::RedisErrorReply;
///
/// assert_eq!(RedisErrorReply::Oom.as_str(), "oom");
/// assert_eq!(RedisErrorReply::ALL.len(), 4);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RedisErrorReply {
    /// `OOM`: at `maxmemory` with `noeviction`, writes are refused.
    Oom,
    /// `READONLY`: a replica refuses writes.
    ReadOnly,
    /// `WRONGTYPE`: the key holds another type of value.
    WrongType,
    /// Any other error reply.
    Other,
}

impl RedisErrorReply {
    /// Every kind, in declaration order.
    pub const ALL: [Self; 4] = [Self::Oom, Self::ReadOnly, Self::WrongType, Self::Other];

    /// The label value: the kind in lower case.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Oom => "oom",
            Self::ReadOnly => "readonly",
            Self::WrongType => "wrongtype",
            Self::Other => "other",
        }
    }
}

label_value_by_as_str!(RedisOp, RedisErrorReply);

/// The Redis tier's circuit breaker, as the `state` label of
/// `position_cache_redis_breaker_state`.
///
/// # Examples
///
/// ```
/// use telemetry::{BreakerState, Metrics};
///
/// let metrics = Metrics::new();
/// metrics.tier2.set_breaker(BreakerState::Open);
/// let text = metrics.encode();
/// assert!(text.contains("\nposition_cache_redis_breaker_state{state=\"open\"} 1\n"));
/// assert!(text.contains("\nposition_cache_redis_breaker_state{state=\"closed\"} 0\n"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BreakerState {
    /// Redis is used normally (`closed`).
    #[default]
    Closed,
    /// A trial request is allowed through to see whether Redis is back
    /// (`half_open`).
    HalfOpen,
    /// Redis is skipped after repeated failures (`open`).
    Open,
}

impl BreakerState {
    /// Every state, in declaration order (the order of the series).
    pub const ALL: [Self; 3] = [Self::Closed, Self::HalfOpen, Self::Open];

    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::HalfOpen => "half_open",
            Self::Open => "open",
        }
    }

    const fn from_index(index: u8) -> Self {
        match index {
            0 => Self::Closed,
            1 => Self::HalfOpen,
            _ => Self::Open,
        }
    }
}

label_value_by_as_str!(BreakerState);

/// The Redis tier's metrics.
///
/// Reached as [`Metrics::tier2`](crate::Metrics::tier2). Clones share the
/// same series, so the Redis tier can be handed just this part.
///
/// # Examples
///
/// ```
/// use telemetry::{Metrics, RedisOp};
///
/// let metrics = Metrics::new();
/// metrics.tier2.set_up(true);
/// metrics.tier2.record_miss();
/// metrics.tier2.record_error(RedisOp::Get);
///
/// let text = metrics.encode();
/// assert!(text.contains("\nposition_cache_redis_up 1\n"));
/// assert!(text.contains("\nposition_cache_redis_misses_total 1\n"));
/// assert!(text.contains("\nposition_cache_redis_errors_total{op=\"get\"} 1\n"));
/// ```
#[derive(Debug, Clone)]
pub struct Tier2Metrics {
    hits: Counter,
    misses: Counter,
    /// One counter per [`RedisOp`], indexed by `op as usize`, created up
    /// front so that every `op` series exists at zero: an alert on
    /// `increase(...[5m]) > 0` then fires on the first error instead of
    /// missing it while the series is born.
    errors: [Counter; RedisOp::ALL.len()],
    /// One counter per [`RedisErrorReply`], made up front like `errors`.
    error_replies: [Counter; RedisErrorReply::ALL.len()],
    corrupt_values: Counter,
    oversized_values: Counter,
    up: ConfiguredGauge,
    breaker_state: BreakerGauge,
}

impl Tier2Metrics {
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let errors_family = Family::<OpLabels, Counter>::default();
        // `RedisOp::ALL` is in declaration order, so position `i` holds the
        // operation whose discriminant is `i`; `record_error` relies on that.
        let errors = RedisOp::ALL.map(|op| errors_family.get_or_create_owned(&OpLabels { op }));
        let replies_family = Family::<KindLabels, Counter>::default();
        let error_replies = RedisErrorReply::ALL.map(|kind| replies_family.get_or_create_owned(&KindLabels { kind }));
        let metrics = Self {
            hits: Counter::default(),
            misses: Counter::default(),
            errors,
            error_replies,
            corrupt_values: Counter::default(),
            oversized_values: Counter::default(),
            up: ConfiguredGauge::default(),
            breaker_state: BreakerGauge::default(),
        };
        registry.register(
            "position_cache_redis_hits",
            "Tier-2 (Redis) reads that found a usable value",
            metrics.hits.clone(),
        );
        registry.register(
            "position_cache_redis_misses",
            "Tier-2 (Redis) reads that found nothing usable",
            metrics.misses.clone(),
        );
        registry.register(
            "position_cache_redis_errors",
            "Tier-2 (Redis) operations that failed, by operation",
            errors_family,
        );
        registry.register(
            "position_cache_redis_error_replies",
            "Tier-2 (Redis) operations that Redis refused with an error reply, by kind (also counted as errors; not outages)",
            replies_family,
        );
        registry.register(
            "position_cache_redis_corrupt_values",
            "Tier-2 (Redis) values that could not be decoded and were ignored",
            metrics.corrupt_values.clone(),
        );
        registry.register(
            "position_cache_redis_oversized_values",
            "Tier-2 (Redis) values larger than REDIS_MAX_VALUE_BYTES, read as misses without being fetched whole",
            metrics.oversized_values.clone(),
        );
        registry.register(
            "position_cache_redis_up",
            "Whether tier 2 (Redis) answered its last operation or health probe: 1 up, 0 down; absent without Redis",
            metrics.up.clone(),
        );
        registry.register(
            "position_cache_redis_breaker_state",
            "Tier-2 (Redis) circuit breaker, one series per state (closed, half_open, open): 1 for the current state, 0 for the others; absent without Redis",
            metrics.breaker_state.clone(),
        );
        metrics
    }

    /// Counts a read that found a usable value.
    pub fn record_hit(&self) {
        self.hits.inc();
    }

    /// Counts a read that found nothing usable.
    pub fn record_miss(&self) {
        self.misses.inc();
    }

    /// Counts a failed operation.
    pub fn record_error(&self, op: RedisOp) {
        self.errors[op as usize].inc();
    }

    /// Counts an operation that Redis refused with an error reply of
    /// `kind` (count it with [`record_error`](Self::record_error) too).
    pub fn record_error_reply(&self, kind: RedisErrorReply) {
        self.error_replies[kind as usize].inc();
    }

    /// Counts a value that was found but could not be decoded.
    pub fn record_corrupt_value(&self) {
        self.corrupt_values.inc();
    }

    /// Counts a value that was found but is larger than the limit.
    pub fn record_oversized_value(&self) {
        self.oversized_values.inc();
    }

    /// Sets whether Redis is reachable now. The gauge appears in the
    /// exposition at the first call: do not call it without Redis.
    pub fn set_up(&self, up: bool) {
        self.up.set(i64::from(up));
    }

    /// Sets the circuit breaker's state. The gauge appears in the
    /// exposition at the first call, as [`set_up`](Self::set_up)'s does.
    pub fn set_breaker(&self, state: BreakerState) {
        self.breaker_state.set(state);
    }
}

/// A gauge left out of the exposition (no `# HELP`, no `# TYPE`, no
/// sample) until it is first set.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConfiguredGauge {
    gauge: Gauge,
    set: Arc<AtomicBool>,
}

impl ConfiguredGauge {
    pub(crate) fn set(&self, value: i64) {
        self.gauge.set(value);
        self.set.store(true, Ordering::Relaxed);
    }
}

impl EncodeMetric for ConfiguredGauge {
    fn encode(&self, encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        self.gauge.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }

    fn is_empty(&self) -> bool {
        !self.set.load(Ordering::Relaxed)
    }
}

/// The breaker's state set: left out until first set, like
/// [`ConfiguredGauge`], then one gauge sample per [`BreakerState`], all
/// read from one atomic.
#[derive(Debug, Clone, Default)]
struct BreakerGauge {
    /// `BreakerState as u8 + 1`; 0 until first set.
    state: Arc<AtomicU8>,
}

impl BreakerGauge {
    fn set(&self, state: BreakerState) {
        self.state.store(state as u8 + 1, Ordering::Relaxed);
    }
}

impl EncodeMetric for BreakerGauge {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(index) = self.state.load(Ordering::Relaxed).checked_sub(1) else { return Ok(()) };
        let current = BreakerState::from_index(index);
        for state in BreakerState::ALL {
            encoder.encode_family(&StateLabels { state })?.encode_gauge(&i64::from(state == current))?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }

    fn is_empty(&self) -> bool {
        self.state.load(Ordering::Relaxed) == 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StateLabels {
    state: BreakerState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OpLabels {
    op: RedisOp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabels {
    kind: RedisErrorReply,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Metrics;
    use crate::testing::sample;

    fn errors(text: &str, op: &str) -> Option<f64> {
        sample(text, &format!("position_cache_redis_errors_total{{op=\"{op}\"}}"))
    }

    #[test]
    fn every_op_has_a_zero_error_series_from_the_start() {
        let text = Metrics::new().encode();
        for op in ["get", "set", "delete", "scan", "connect", "ping"] {
            assert_eq!(errors(&text, op), Some(0.0), "{op}");
        }
    }

    #[test]
    fn errors_are_counted_under_their_own_op() {
        let metrics = Metrics::new();
        metrics.tier2.record_error(RedisOp::Connect);
        metrics.tier2.record_error(RedisOp::Connect);
        metrics.tier2.record_error(RedisOp::Scan);
        let text = metrics.encode();
        assert_eq!(errors(&text, "connect"), Some(2.0));
        assert_eq!(errors(&text, "scan"), Some(1.0));
        for op in ["get", "set", "delete", "ping"] {
            assert_eq!(errors(&text, op), Some(0.0), "{op}");
        }
    }

    #[test]
    fn error_replies_are_counted_by_kind_from_zero() {
        let metrics = Metrics::new();
        let replies = |text: &str, kind: &str| {
            sample(text, &format!("position_cache_redis_error_replies_total{{kind=\"{kind}\"}}"))
        };
        let text = metrics.encode();
        for kind in ["oom", "readonly", "wrongtype", "other"] {
            assert_eq!(replies(&text, kind), Some(0.0), "{kind}");
        }
        metrics.tier2.record_error_reply(RedisErrorReply::Oom);
        metrics.tier2.record_error_reply(RedisErrorReply::Oom);
        metrics.tier2.record_error_reply(RedisErrorReply::WrongType);
        metrics.tier2.record_oversized_value();
        let text = metrics.encode();
        assert_eq!(replies(&text, "oom"), Some(2.0));
        assert_eq!(replies(&text, "wrongtype"), Some(1.0));
        assert_eq!(replies(&text, "readonly"), Some(0.0));
        assert_eq!(sample(&text, "position_cache_redis_oversized_values_total"), Some(1.0));
    }

    #[test]
    fn the_gauges_are_absent_until_redis_is_configured() {
        let metrics = Metrics::new();
        let text = metrics.encode();
        for gauge in ["position_cache_redis_up", "position_cache_redis_breaker_state"] {
            assert!(!text.contains(gauge), "{gauge} shows without redis:\n{text}");
        }
        crate::exposition::parse_strict(&text).unwrap();
        metrics.tier2.set_breaker(BreakerState::Closed);
        let text = metrics.encode();
        assert_eq!(sample(&text, r#"position_cache_redis_breaker_state{state="closed"}"#), Some(1.0));
        assert!(!text.contains("position_cache_redis_up"), "each gauge appears when set");
        metrics.tier2.set_up(false);
        assert_eq!(sample(&metrics.encode(), "position_cache_redis_up"), Some(0.0));
    }

    #[test]
    fn the_breaker_is_one_series_per_state_with_the_current_one_at_1() {
        let metrics = Metrics::new();
        for current in [BreakerState::Open, BreakerState::HalfOpen, BreakerState::Closed] {
            metrics.tier2.set_breaker(current);
            let text = metrics.encode();
            crate::exposition::parse_strict(&text).unwrap();
            for (state, label) in
                [(BreakerState::Closed, "closed"), (BreakerState::HalfOpen, "half_open"), (BreakerState::Open, "open")]
            {
                let series = format!("position_cache_redis_breaker_state{{state=\"{label}\"}}");
                let expected = if state == current { 1.0 } else { 0.0 };
                assert_eq!(sample(&text, &series), Some(expected), "{current:?}: {series}");
            }
        }
    }

    #[test]
    fn reads_corruption_and_reachability_render() {
        let metrics = Metrics::new();
        metrics.tier2.set_up(true);
        metrics.tier2.record_hit();
        metrics.tier2.record_hit();
        metrics.tier2.record_miss();
        metrics.tier2.record_corrupt_value();
        let text = metrics.encode();
        assert_eq!(sample(&text, "position_cache_redis_up"), Some(1.0));
        assert_eq!(sample(&text, "position_cache_redis_hits_total"), Some(2.0));
        assert_eq!(sample(&text, "position_cache_redis_misses_total"), Some(1.0));
        assert_eq!(sample(&text, "position_cache_redis_corrupt_values_total"), Some(1.0));
        metrics.tier2.set_up(false);
        assert_eq!(sample(&metrics.encode(), "position_cache_redis_up"), Some(0.0));
    }
}
