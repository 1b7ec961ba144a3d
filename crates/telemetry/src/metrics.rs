//! The registry that holds every family, and its encoding as `OpenMetrics`
//! text or the classic Prometheus text format.
//!
//! All families are registered once, in [`Metrics::new`]; nothing is added
//! later, so the registry needs no lock and encoding only reads atomics.

use prometheus_client::encoding::text;
use prometheus_client::registry::Registry;

use crate::build_info::BuildInfo;
use crate::cache::CacheMetrics;
use crate::classic;
use crate::fleet::FleetMetrics;
use crate::format::Format;
use crate::http::HttpMetrics;
use crate::memory::MemoryMetrics;
use crate::process::ProcessCollector;
use crate::runtime::RuntimeMetrics;
use crate::source::SourceMetrics;
use crate::tier2::Tier2Metrics;

/// Every metric the positions cache exposes, grouped by area.
///
/// Build one per process with [`Metrics::new`] and share it as an
/// `Arc<Metrics>`; every recording method takes `&self`.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use telemetry::{BreakerState, CONTENT_TYPE, Metrics};
///
/// let metrics = Arc::new(Metrics::new());
/// let for_redis = Arc::clone(&metrics);
/// for_redis.tier2.set_breaker(BreakerState::HalfOpen);
///
/// // What `GET /metrics` answers.
/// let body = metrics.encode();
/// assert!(body.contains("\nposition_cache_redis_breaker_state{state=\"half_open\"} 1\n"));
/// assert!(body.ends_with("# EOF\n"));
/// assert!(CONTENT_TYPE.starts_with("application/openmetrics-text"));
/// ```
#[derive(Debug)]
pub struct Metrics {
    /// The original report's per-request counters, refresh and overload
    /// figures.
    pub cache: CacheMetrics,
    /// Tier 1, the in-process LRU.
    pub memory: MemoryMetrics,
    /// Tier 2, Redis.
    pub tier2: Tier2Metrics,
    /// Replicas sharing one Redis: messages, leases, conditional writes.
    pub fleet: FleetMetrics,
    /// Loads from the positions source.
    pub source: SourceMetrics,
    /// HTTP requests.
    pub http: HttpMetrics,
    /// The async runtime, as the service reads it before a scrape.
    pub runtime: RuntimeMetrics,
    build_info: BuildInfo,
    registry: Registry,
}

impl Metrics {
    /// Creates every family, registered in the order of the metric
    /// reference table, with every counter and gauge at zero; the process
    /// families are read at each scrape.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let cache = CacheMetrics::register(&mut registry);
        let memory = MemoryMetrics::register(&mut registry);
        let tier2 = Tier2Metrics::register(&mut registry);
        let fleet = FleetMetrics::register(&mut registry);
        let source = SourceMetrics::register(&mut registry);
        let http = HttpMetrics::register(&mut registry);
        let runtime = RuntimeMetrics::register(&mut registry);
        let build_info = BuildInfo::default();
        registry.register(
            "positions_api_build",
            "The build this process runs: its version and source revision as labels, value 1",
            build_info.clone(),
        );
        registry.register_collector(Box::new(ProcessCollector));
        Self { cache, memory, tier2, fleet, source, http, runtime, build_info, registry }
    }

    /// Sets `positions_api_build_info{version, revision}`, which is absent
    /// until then; a process has one build, so later calls change nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// let metrics = telemetry::Metrics::new();
    /// metrics.set_build_info("0.1.0", "1a2b3c4");
    /// assert!(metrics.encode().contains("positions_api_build_info{version=\"0.1.0\",revision=\"1a2b3c4\"} 1\n"));
    /// ```
    pub fn set_build_info(&self, version: &str, revision: &str) {
        self.build_info.set(version, revision);
    }

    /// Renders every family in the `OpenMetrics` text format, ending with `# EOF`, to be
    /// served with [`CONTENT_TYPE`](crate::CONTENT_TYPE).
    ///
    /// Values are read one by one while other threads keep recording, so a
    /// scrape is not one instant; each series is consistent on its own.
    ///
    /// # Panics
    ///
    /// Never in practice: writing to a `String` cannot fail, and none of
    /// this crate's label values or metric types returns an encoding error.
    pub fn encode(&self) -> String {
        // About what a busy replica's exposition takes, so a scrape does not
        // regrow the buffer several times.
        let mut out = String::with_capacity(32 * 1024);
        text::encode(&mut out, &self.registry).expect("encoding metrics into a String cannot fail");
        out
    }

    /// Renders every family in the classic Prometheus text format 0.0.4, to
    /// be served with [`TEXT_CONTENT_TYPE`](crate::TEXT_CONTENT_TYPE): the
    /// same samples as [`Metrics::encode`], with counters described under
    /// their `_total` names and no `# UNIT` or `# EOF` lines, as `promtool
    /// check metrics` and every 0.0.4 parser expect.
    ///
    /// # Examples
    ///
    /// ```
    /// let metrics = telemetry::Metrics::new();
    /// metrics.cache.record_lookup(telemetry::Lookup::Hit);
    /// let text = metrics.encode_text();
    /// assert!(text.contains("# TYPE position_cache_hits_total counter\nposition_cache_hits_total 1\n"));
    /// assert!(!text.contains("# EOF"));
    /// ```
    ///
    /// # Panics
    ///
    /// Never in practice, as [`Metrics::encode`].
    pub fn encode_text(&self) -> String {
        classic::from_openmetrics(&self.encode())
    }

    /// Renders every family in `format`: [`Metrics::encode`] or
    /// [`Metrics::encode_text`].
    ///
    /// # Panics
    ///
    /// Never in practice, as [`Metrics::encode`].
    pub fn encode_as(&self, format: Format) -> String {
        match format {
            Format::OpenMetrics => self.encode(),
            Format::Text => self.encode_text(),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    // The families' names, types and order are checked on the encoded text
    // by `tests/exposition`, with a strict parser.
    use super::*;
    use crate::CONTENT_TYPE;

    #[test]
    fn content_type_is_openmetrics_1_0_0_in_utf8() {
        assert_eq!(CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8");
    }

    #[test]
    fn encode_as_picks_the_format() {
        let metrics = Metrics::new();
        assert!(metrics.encode_as(Format::OpenMetrics).ends_with("# EOF\n"));
        assert!(metrics.encode_as(Format::Text).contains("# TYPE position_cache_hits_total counter\n"));
    }
}
