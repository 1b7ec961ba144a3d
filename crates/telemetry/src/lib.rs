//! Prometheus metrics for the positions cache: one registry, the project's
//! metric families, and typed handles to record into them.
//!
//! Every other crate that reports something (the HTTP service, the Redis
//! tier, the refresh scheduler's adapter in the service) records through a
//! shared [`Metrics`], built once with [`Metrics::new`] and passed around as
//! an `Arc<Metrics>`. Its fields group the families by area
//! ([`cache`](Metrics::cache), [`memory`](Metrics::memory),
//! [`tier2`](Metrics::tier2), [`fleet`](Metrics::fleet), [`source`](Metrics::source),
//! [`http`](Metrics::http), [`runtime`](Metrics::runtime)), and their methods take enums rather than free
//! strings wherever the set of label values is closed, so a call site cannot
//! invent a new series by accident. [`Metrics::encode`] renders everything
//! as [OpenMetrics] text, to be served with [`CONTENT_TYPE`];
//! [`Metrics::encode_text`] as the classic Prometheus text format 0.0.4,
//! with [`TEXT_CONTENT_TYPE`]. `GET /metrics` picks one with
//! [`Format::negotiate`] from the scraper's `Accept` header.
//!
//! [`MemoryTierObserver`] adapts `cache-core`'s
//! [`Observer`](cache_core::Observer) trait, so the memory tier's events
//! reach Prometheus without `cache-core` knowing about any metrics library.
//!
//! What it is not: it serves no HTTP, spawns no task and depends on no async
//! runtime, HTTP library or Redis client; the service owns the `/metrics`
//! route and calls [`Metrics::encode_as`]. It decides no cache policy either:
//! the service decides what a request counts as and reports it here.
//!
//! # Examples
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use telemetry::{CacheStatus, Lookup, Method, Metrics, Outcome, Source};
//!
//! let metrics = Arc::new(Metrics::new());
//!
//! // One request answered from the cache with stale data, which also starts
//! // a background refresh.
//! metrics.cache.record_lookup(Lookup::Stale);
//! metrics.cache.record_refresh_started();
//! metrics.source.observe(Source::Ledger, Outcome::Ok, Duration::from_millis(180));
//! metrics.http.observe("/v4/positions/{wallet}", Method::Get, 200, CacheStatus::Stale, Duration::from_micros(90));
//!
//! let text = metrics.encode();
//! assert!(text.contains("\nposition_cache_hits_total 1\n"));
//! assert!(text.contains("\nposition_cache_stale_serves_total 1\n"));
//! assert!(text.contains("\nposition_cache_refresh_triggers_total 1\n"));
//! assert!(text.contains(r#"http_requests_total{route="/v4/positions/{wallet}",method="GET",status="200",cache="stale"} 1"#));
//! assert!(text.ends_with("# EOF\n"));
//! ```
//!
//! # Metric reference
//!
//! Names as exposed (prometheus-client adds `_total` to counters; the
//! classic text format also describes them under that name). "Per
//! request" counters are counted once per `GET /v4/positions/{wallet}` by the
//! service, whichever tier answered.
//!
//! | name | type | labels | meaning |
//! | --- | --- | --- | --- |
//! | `position_cache_hits_total` | counter | | requests answered at once from the cache, fresh or stale (per request) |
//! | `position_cache_misses_total` | counter | | requests that had to wait for a load from the source (per request) |
//! | `position_cache_evictions_total` | counter | | tier-1 entries evicted to stay within `POSITION_CACHE_MAX` |
//! | `position_cache_refresh_errors_total` | counter | | loads from the source that failed, background or foreground |
//! | `position_cache_stale_serves_total` | counter | | requests answered at once with data past its TTL; each is also a hit (per request) |
//! | `position_cache_refresh_triggers_total` | counter | | background refreshes started |
//! | `position_cache_eager_refreshes_total` | counter | | of those, started early for wallets in demand read near the end of their TTL |
//! | `position_cache_overload_rejections_total` | counter | | loads refused because the load queue was full (the request got a 503) |
//! | `position_cache_queue_timeouts_total` | counter | `kind`: `foreground`, `background` | loads that waited `REFRESH_QUEUE_TIMEOUT_MS` for a turn at the source and gave up: the requests got a 503, or the background refresh was dropped |
//! | `position_cache_loads_queued_total` | counter | `class`: `waiting`, `stale`, `eager`, `warm_up` | loads that took a place in the load queue |
//! | `position_cache_loads_started_total` | counter | `class` | loads that got a permit and called the source |
//! | `position_cache_loads_dropped_total` | counter | `class` | loads refused with the queue full or given up after `REFRESH_QUEUE_TIMEOUT_MS` |
//! | `position_cache_load_wait_seconds` | histogram | `class` | time a load waited for its permit |
//! | `position_cache_active_refresh_tasks` | gauge | | background refreshes in flight now |
//! | `position_cache_memory_events_total` | counter | `event`: `hit`, `stale_hit`, `miss`, `insertion`, `eviction`, `expiration`, `invalidation` | raw tier-1 (in-process LRU) events, one per cache operation outcome |
//! | `position_cache_entries` | gauge | | wallets held in tier 1 now |
//! | `position_cache_redis_hits_total` | counter | | tier-2 (Redis) reads that found a usable value |
//! | `position_cache_redis_misses_total` | counter | | tier-2 reads that found nothing usable |
//! | `position_cache_redis_errors_total` | counter | `op`: `get`, `set`, `delete`, `scan`, `connect`, `ping` | tier-2 operations that failed |
//! | `position_cache_redis_error_replies_total` | counter | `kind`: `oom`, `readonly`, `wrongtype`, `other` | tier-2 operations Redis refused with an error reply (also in `errors`; not an outage) |
//! | `position_cache_redis_corrupt_values_total` | counter | | tier-2 values that could not be decoded and were ignored |
//! | `position_cache_redis_oversized_values_total` | counter | | tier-2 values over `REDIS_MAX_VALUE_BYTES`, read as misses |
//! | `position_cache_redis_up` | gauge | | 1 while tier 2 answers (operations or the health probe), 0 while it does not; absent without Redis |
//! | `position_cache_redis_breaker_state` | gauge | `state`: `closed`, `half_open`, `open` | tier-2 circuit breaker, one series per state: 1 for the current one, 0 for the others; absent without Redis |
//! | `position_source_fetch_duration_seconds` | histogram | `source`: `ledger`, `http`; `outcome`: `ok`, `error`, `timeout`, `panicked` | time to load one wallet from the source; buckets 1 ms to 10 s; the configured source's series exist from start |
//! | `http_requests_total` | counter | `route` (template), `method`, `status`, `cache` | HTTP requests answered |
//! | `http_request_duration_seconds` | histogram | `route` (template), `method`, `status`, `cache`: `hit`, `stale`, `miss`, `bypass`, `none` | time to answer an HTTP request; buckets 50 µs to 10 s |
//! | `tokio_runtime_workers` | gauge | | worker threads of the async runtime (set by the service before each scrape) |
//! | `tokio_runtime_alive_tasks` | gauge | | tasks alive in the runtime |
//! | `tokio_runtime_global_queue_depth` | gauge | | tasks waiting in the runtime's global queue |
//! | `positions_api_build_info` | info (a gauge in the classic format) | `version`, `revision` | 1; the build this process runs (absent until the service sets it) |
//! | `process_cpu_seconds_total` | counter | | user and system CPU time (Linux; read from `/proc` at each scrape) |
//! | `process_resident_memory_bytes` | gauge | | resident memory |
//! | `process_virtual_memory_bytes` | gauge | | virtual memory |
//! | `process_start_time_seconds` | gauge | | when the process started, in seconds since the epoch |
//! | `process_open_fds` | gauge | | open file descriptors |
//! | `process_max_fds` | gauge | | the open-file soft limit (absent when unlimited) |
//!
//! `cache` says how the cache took part in an answer ([`CacheStatus`]):
//! `hit` and `stale` were answered at once from a tier, `miss` waited for
//! (or failed after) a load, `bypass` had caching off, and `none` had no
//! lookup (other routes, and requests refused before one). "p99 of cached
//! answers" is therefore
//! `histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{route="/v4/positions/{wallet}",cache=~"hit|stale"}[5m])))`.
//!
//! The hit rate that `/health` reports is `hits / (hits + misses)`
//! ([`CacheCounts::hit_ratio`]); stale serves are a subset of hits, not a
//! third outcome. `position_cache_memory_events_total` is what tier 1 saw,
//! which differs from the per-request counters: a request that misses tier
//! 1 but finds the wallet in Redis is a tier-1 `miss` and a request `hit`.
//!
//! # Cost on the hot path
//!
//! Counters and gauges are single atomics. Label sets that are closed and
//! looked up on every cache read (`event`) or that operators alert on before
//! the first occurrence (`op`, `kind`) are resolved once, in [`Metrics::new`], into
//! plain handles: recording into them takes no lock, and their series show
//! zeros from the start. The other families (`http_*`,
//! `position_source_fetch_duration_seconds`) look their label set up with
//! prometheus-client's `Family::get_or_create`, which takes a read lock on
//! the family's map (a write lock the first time a label set is seen); their
//! label sets are small `Copy` values with `&'static str` routes, so the
//! lookup hashes a few words and allocates nothing. A histogram observation
//! takes the histogram's own mutex.
//!
//! The two `http_*` families have no series until first used (the service
//! makes its busiest ones when it starts), and prometheus-client leaves a
//! family without series out of the exposition altogether, `# HELP` and
//! `# TYPE` included. The source histogram has its series from
//! [`SourceMetrics::declare`], which the service calls at start-up. The
//! process families cost nothing between scrapes: they are read when
//! encoded.
//!
//! [OpenMetrics]: https://prometheus.io/docs/specs/om/open_metrics_spec/

#![warn(missing_docs)]

/// Implements `EncodeLabelValue` for label enums by their `as_str`.
///
/// By hand rather than derived: the derive writes the Rust variant name
/// (`Get`, `Ledger`), and the documented label values are the `as_str`
/// spellings (`get`, `ledger`, and upper-case HTTP methods).
macro_rules! label_value_by_as_str {
    ($($label:ty),+ $(,)?) => {$(
        impl prometheus_client::encoding::EncodeLabelValue for $label {
            fn encode(
                &self,
                encoder: &mut prometheus_client::encoding::LabelValueEncoder<'_>,
            ) -> Result<(), std::fmt::Error> {
                std::fmt::Write::write_str(encoder, self.as_str())
            }
        }
    )+};
}

mod build_info;
mod cache;
mod classic;
pub mod exposition;
mod fleet;
mod format;
mod http;
mod memory;
mod metrics;
mod observer;
mod process;
mod runtime;
mod source;
#[cfg(test)]
mod testing;
mod tier2;

pub use cache::{CacheCounts, CacheMetrics, LoadClass, LoadKind, Lookup};
pub use fleet::{FleetMessage, FleetMetrics, LeaseEvent, StoreRefusal};
pub use format::{CONTENT_TYPE, Format, TEXT_CONTENT_TYPE};
pub use http::{CacheStatus, HttpMetrics, HttpSeries, Method};
pub use memory::MemoryMetrics;
pub use metrics::Metrics;
pub use observer::MemoryTierObserver;
pub use runtime::RuntimeMetrics;
pub use source::{Outcome, Source, SourceMetrics};
pub use tier2::{BreakerState, RedisErrorReply, RedisOp, Tier2Metrics};
