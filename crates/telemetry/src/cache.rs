//! The original report's six request-level counters, plus the refresh and
//! overload figures that sit beside them.
//!
//! These keep the names and meanings of the Python system's counters, so
//! dashboards and alerts written for it keep working. They describe what a
//! *request* got, whichever tier answered; what the memory tier itself did is
//! in [`MemoryMetrics`](crate::MemoryMetrics). This module does not decide
//! what a request counts as: the service does, once per request, through
//! [`CacheMetrics::record_lookup`].

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// How one request for a wallet's positions was answered, as the report's
/// counters see it.
///
/// # Examples
///
/// ```
/// use telemetry::{Lookup, Metrics};
///
/// let metrics = Metrics::new();
/// metrics.cache.record_lookup(Lookup::Stale);
/// let counts = metrics.cache.counts();
/// assert_eq!((counts.hits, counts.stale_serves, counts.misses), (1, 1, 0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lookup {
    /// Answered at once with fresh data, from either tier.
    Hit,
    /// Answered at once with data past its TTL; a background refresh is due.
    /// Counted as a hit and as a stale serve.
    Stale,
    /// Had to wait for a load from the source: nothing servable was cached,
    /// the caller asked for `refresh=true`, or caching is off. Still a miss
    /// if the load then failed and a fail-safe stale value was served: the
    /// request waited for the source all the same.
    Miss,
}

/// Who started a load, as the `kind` label of
/// `position_cache_queue_timeouts_total`.
///
/// # Examples
///
/// ```
/// use telemetry::{LoadKind, Metrics};
///
/// let metrics = Metrics::new();
/// metrics.cache.record_queue_timeout(LoadKind::Background);
/// assert!(metrics.encode().contains("\nposition_cache_queue_timeouts_total{kind=\"background\"} 1\n"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoadKind {
    /// A request waiting for the positions: a miss, `refresh=true`, or
    /// caching off.
    Foreground,
    /// A background refresh of a stale entry, which nobody waits for.
    Background,
}

impl LoadKind {
    /// Every kind, in declaration order.
    pub const ALL: [Self; 2] = [Self::Foreground, Self::Background];

    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Foreground => "foreground",
            Self::Background => "background",
        }
    }
}

label_value_by_as_str!(LoadKind);

/// A load's class in the load queue, as the `class` label of the
/// `position_cache_loads_*` families: highest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoadClass {
    /// A load a user waits for.
    Waiting,
    /// A refresh of an entry served stale.
    Stale,
    /// A refresh started early for a wallet in demand.
    Eager,
    /// A load that warms the cache after a start.
    WarmUp,
}

impl LoadClass {
    /// Every class, highest first.
    pub const ALL: [Self; 4] = [Self::Waiting, Self::Stale, Self::Eager, Self::WarmUp];

    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Stale => "stale",
            Self::Eager => "eager",
            Self::WarmUp => "warm_up",
        }
    }
}

label_value_by_as_str!(LoadClass);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ClassLabels {
    class: LoadClass,
}

/// Upper bounds of the load-queue wait buckets, in seconds: none to the
/// default queue timeout and past it.
const WAIT_BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

fn wait_histogram() -> prometheus_client::metrics::histogram::Histogram {
    prometheus_client::metrics::histogram::Histogram::new(WAIT_BUCKETS)
}

/// The load queue's families, by class, before they are registered.
struct QueueFamilies {
    queued: Family<ClassLabels, Counter>,
    started: Family<ClassLabels, Counter>,
    dropped: Family<ClassLabels, Counter>,
    wait: Family<ClassLabels, prometheus_client::metrics::histogram::Histogram>,
}

impl Default for QueueFamilies {
    fn default() -> Self {
        Self {
            queued: Family::default(),
            started: Family::default(),
            dropped: Family::default(),
            wait: Family::new_with_constructor(wait_histogram as fn() -> _),
        }
    }
}

impl QueueFamilies {
    /// One series per class, created up front so each shows zero.
    fn by_class(family: &Family<ClassLabels, Counter>) -> [Counter; LoadClass::ALL.len()] {
        LoadClass::ALL.map(|class| family.get_or_create_owned(&ClassLabels { class }))
    }

    fn register(self, registry: &mut Registry) {
        registry.register(
            "position_cache_loads_queued",
            "Loads that found no free permit for their class and took a place in the load queue, by class",
            self.queued,
        );
        registry.register(
            "position_cache_loads_started",
            "Loads that got a permit and called the source, by class",
            self.started,
        );
        registry.register(
            "position_cache_loads_dropped",
            "Loads refused with the queue full or given up after REFRESH_QUEUE_TIMEOUT_MS, by class",
            self.dropped,
        );
        registry.register_with_unit(
            "position_cache_load_wait",
            "Time a load waited in the load queue for its permit, by class; zero for one that found a permit free",
            prometheus_client::registry::Unit::Seconds,
            self.wait,
        );
    }
}

/// The report's counters, and the refresh and overload figures.
///
/// Reached as [`Metrics::cache`](crate::Metrics::cache). Clones share the
/// same series.
///
/// # Examples
///
/// ```
/// use telemetry::{Lookup, Metrics};
///
/// let metrics = Metrics::new();
/// metrics.cache.record_lookup(Lookup::Hit);
/// metrics.cache.record_lookup(Lookup::Miss);
/// metrics.cache.record_load_failed();
/// metrics.cache.set_active_refresh_tasks(3);
///
/// let text = metrics.encode();
/// assert!(text.contains("\nposition_cache_misses_total 1\n"));
/// assert!(text.contains("\nposition_cache_refresh_errors_total 1\n"));
/// assert!(text.contains("\nposition_cache_active_refresh_tasks 3\n"));
/// ```
#[derive(Debug, Clone)]
pub struct CacheMetrics {
    hits: Counter,
    misses: Counter,
    /// Written by [`MemoryTierObserver`](crate::MemoryTierObserver), the
    /// only thing that sees evictions.
    pub(crate) evictions: Counter,
    refresh_errors: Counter,
    stale_serves: Counter,
    refresh_triggers: Counter,
    eager_refreshes: Counter,
    overload_rejections: Counter,
    /// One counter per [`LoadKind`], indexed by `kind as usize`, created up
    /// front so both series show zeros before the first timeout.
    queue_timeouts: [Counter; LoadKind::ALL.len()],
    loads_queued: [Counter; LoadClass::ALL.len()],
    loads_started: [Counter; LoadClass::ALL.len()],
    loads_dropped: [Counter; LoadClass::ALL.len()],
    load_wait: [prometheus_client::metrics::histogram::Histogram; LoadClass::ALL.len()],
    active_refresh_tasks: Gauge,
}

impl CacheMetrics {
    /// Creates the families and registers them, in the report's order.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        // `LoadKind::ALL` is in declaration order, so position `i` holds the
        // kind whose discriminant is `i`; `record_queue_timeout` relies on it.
        let queue_timeouts = Family::<KindLabels, Counter>::default();
        let queue = QueueFamilies::default();
        let metrics = Self {
            hits: Counter::default(),
            misses: Counter::default(),
            evictions: Counter::default(),
            refresh_errors: Counter::default(),
            stale_serves: Counter::default(),
            refresh_triggers: Counter::default(),
            eager_refreshes: Counter::default(),
            overload_rejections: Counter::default(),
            queue_timeouts: LoadKind::ALL.map(|kind| queue_timeouts.get_or_create_owned(&KindLabels { kind })),
            loads_queued: QueueFamilies::by_class(&queue.queued),
            loads_started: QueueFamilies::by_class(&queue.started),
            loads_dropped: QueueFamilies::by_class(&queue.dropped),
            load_wait: LoadClass::ALL.map(|class| queue.wait.get_or_create_owned(&ClassLabels { class })),
            active_refresh_tasks: Gauge::default(),
        };
        // HELP texts carry no double quote or backslash: prometheus-client
        // writes them unescaped, and OpenMetrics forbids both raw.
        registry.register(
            "position_cache_hits",
            "Position requests answered at once from the cache (either tier, fresh or stale), counted once per \
             request; stale serves are included",
            metrics.hits.clone(),
        );
        registry.register(
            "position_cache_misses",
            "Position requests that had to wait for a load from the source, counted once per request",
            metrics.misses.clone(),
        );
        registry.register(
            "position_cache_evictions",
            "Tier-1 (in-process) entries evicted to stay within capacity",
            metrics.evictions.clone(),
        );
        registry.register(
            "position_cache_refresh_errors",
            "Loads from the source that failed, background or foreground",
            metrics.refresh_errors.clone(),
        );
        registry.register(
            "position_cache_stale_serves",
            "Position requests answered at once with data past its TTL, counted once per request; each is also a hit",
            metrics.stale_serves.clone(),
        );
        registry.register(
            "position_cache_refresh_triggers",
            "Background refreshes started",
            metrics.refresh_triggers.clone(),
        );
        registry.register(
            "position_cache_eager_refreshes",
            "Background refreshes started early, before the TTL, for wallets in demand read near its end; each is \
             also a refresh trigger",
            metrics.eager_refreshes.clone(),
        );
        registry.register(
            "position_cache_overload_rejections",
            "Loads refused because the load queue was full; the request was answered 503",
            metrics.overload_rejections.clone(),
        );
        registry.register(
            "position_cache_queue_timeouts",
            "Loads that waited REFRESH_QUEUE_TIMEOUT_MS for a turn at the source and gave up, by who started them: \
             a foreground load's requests were answered 503, a background refresh was dropped",
            queue_timeouts,
        );
        queue.register(registry);
        registry.register(
            "position_cache_active_refresh_tasks",
            "Background refreshes in flight now",
            metrics.active_refresh_tasks.clone(),
        );
        metrics
    }

    /// Counts one request: a hit, a stale serve (which is also a hit) or a
    /// miss. Call it exactly once per request for positions.
    pub fn record_lookup(&self, lookup: Lookup) {
        match lookup {
            Lookup::Hit => {
                self.hits.inc();
            }
            Lookup::Stale => {
                self.hits.inc();
                self.stale_serves.inc();
            }
            Lookup::Miss => {
                self.misses.inc();
            }
        }
    }

    /// Counts one background refresh started (not one joined or skipped
    /// because a refresh for that wallet was already running).
    pub fn record_refresh_started(&self) {
        self.refresh_triggers.inc();
    }

    /// Counts one eager refresh started: a wallet in demand, read while
    /// still fresh but near the end of its TTL (see the service's eager
    /// refresh). Such a refresh is also counted by
    /// [`record_refresh_started`](Self::record_refresh_started).
    pub fn record_eager_refresh(&self) {
        self.eager_refreshes.inc();
    }

    /// Counts one failed load from the source, background or foreground,
    /// whatever the failure (error, timeout, panic). A load shared by several
    /// waiting requests counts once.
    pub fn record_load_failed(&self) {
        self.refresh_errors.inc();
    }

    /// Counts one load refused because the load queue was full.
    pub fn record_overload_rejection(&self) {
        self.overload_rejections.inc();
    }

    /// Counts one load that gave up waiting for a turn at the source. A
    /// load shared by several waiting requests counts once.
    pub fn record_queue_timeout(&self, kind: LoadKind) {
        self.queue_timeouts[kind as usize].inc();
    }

    /// Counts one load of `class` that took a place in the queue.
    pub fn record_load_queued(&self, class: LoadClass) {
        self.loads_queued[class as usize].inc();
    }

    /// Counts one load of `class` that got its permit after `waited`.
    pub fn record_load_started(&self, class: LoadClass, waited: std::time::Duration) {
        self.loads_started[class as usize].inc();
        self.load_wait[class as usize].observe(waited.as_secs_f64());
    }

    /// Counts one load of `class` dropped for want of a permit.
    pub fn record_load_dropped(&self, class: LoadClass) {
        self.loads_dropped[class as usize].inc();
    }

    /// Sets how many background refreshes are in flight now.
    pub fn set_active_refresh_tasks(&self, tasks: usize) {
        self.active_refresh_tasks.set(saturating_i64(tasks));
    }

    /// The counters' current values, for `/health` and for tests.
    ///
    /// Each counter is read on its own, so under concurrent use the result
    /// is not one instant (a stale serve may show before its hit).
    pub fn counts(&self) -> CacheCounts {
        CacheCounts {
            hits: self.hits.get(),
            misses: self.misses.get(),
            stale_serves: self.stale_serves.get(),
            evictions: self.evictions.get(),
            refresh_triggers: self.refresh_triggers.get(),
            eager_refreshes: self.eager_refreshes.get(),
            refresh_errors: self.refresh_errors.get(),
            overload_rejections: self.overload_rejections.get(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabels {
    kind: LoadKind,
}

/// A reading of [`CacheMetrics`]' counters, cumulative since start.
///
/// # Examples
///
/// ```
/// use telemetry::CacheCounts;
///
/// let counts = CacheCounts { hits: 855, misses: 145, stale_serves: 40, ..CacheCounts::default() };
/// assert!((counts.hit_ratio() - 0.855).abs() < 1e-9);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheCounts {
    /// Requests answered at once, fresh or stale.
    pub hits: u64,
    /// Requests that waited for the source.
    pub misses: u64,
    /// Requests answered at once with stale data (a subset of `hits`).
    pub stale_serves: u64,
    /// Tier-1 entries evicted for capacity.
    pub evictions: u64,
    /// Background refreshes started.
    pub refresh_triggers: u64,
    /// Of those, the ones started early for wallets in demand.
    pub eager_refreshes: u64,
    /// Failed loads.
    pub refresh_errors: u64,
    /// Loads refused for a full queue.
    pub overload_rejections: u64,
}

impl CacheCounts {
    /// The share of requests answered without waiting for the source,
    /// `hits / (hits + misses)`, in `0.0..=1.0`; zero before the first
    /// request.
    pub fn hit_ratio(&self) -> f64 {
        let requests = self.hits + self.misses;
        if requests == 0 { 0.0 } else { self.hits as f64 / requests as f64 }
    }
}

/// Gauges hold `i64`; a count beyond `i64::MAX` cannot happen in practice,
/// but saturating keeps the conversion total without a panic path.
pub(crate) fn saturating_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Metrics;
    use crate::testing::sample;

    #[test]
    fn a_stale_serve_counts_as_a_hit_and_a_stale_serve() {
        let metrics = Metrics::new();
        metrics.cache.record_lookup(Lookup::Hit);
        metrics.cache.record_lookup(Lookup::Stale);
        metrics.cache.record_lookup(Lookup::Miss);
        let text = metrics.encode();
        assert_eq!(sample(&text, "position_cache_hits_total"), Some(2.0));
        assert_eq!(sample(&text, "position_cache_stale_serves_total"), Some(1.0));
        assert_eq!(sample(&text, "position_cache_misses_total"), Some(1.0));
    }

    #[test]
    fn hit_ratio_is_hits_over_requests_and_ignores_stale_serves() {
        let metrics = Metrics::new();
        assert!(metrics.cache.counts().hit_ratio().abs() < f64::EPSILON, "no requests yet");
        for _ in 0..3 {
            metrics.cache.record_lookup(Lookup::Stale);
        }
        metrics.cache.record_lookup(Lookup::Miss);
        assert!((metrics.cache.counts().hit_ratio() - 0.75).abs() < 1e-9);
    }

    #[test]
    fn refresh_and_overload_figures_render() {
        let metrics = Metrics::new();
        metrics.cache.record_refresh_started();
        metrics.cache.record_refresh_started();
        metrics.cache.record_eager_refresh();
        metrics.cache.record_load_failed();
        metrics.cache.record_overload_rejection();
        metrics.cache.set_active_refresh_tasks(2);
        let text = metrics.encode();
        assert_eq!(sample(&text, "position_cache_refresh_triggers_total"), Some(2.0));
        assert_eq!(sample(&text, "position_cache_eager_refreshes_total"), Some(1.0));
        assert_eq!(sample(&text, "position_cache_refresh_errors_total"), Some(1.0));
        assert_eq!(sample(&text, "position_cache_overload_rejections_total"), Some(1.0));
        assert_eq!(sample(&text, r#"position_cache_queue_timeouts_total{kind="foreground"}"#), Some(0.0));
        assert_eq!(sample(&text, r#"position_cache_queue_timeouts_total{kind="background"}"#), Some(0.0));
        assert_eq!(sample(&text, "position_cache_active_refresh_tasks"), Some(2.0));

        metrics.cache.set_active_refresh_tasks(0);
        assert_eq!(sample(&metrics.encode(), "position_cache_active_refresh_tasks"), Some(0.0), "a gauge goes down");
    }

    #[test]
    fn queue_timeouts_are_counted_by_kind() {
        let metrics = Metrics::new();
        metrics.cache.record_queue_timeout(LoadKind::Foreground);
        metrics.cache.record_queue_timeout(LoadKind::Background);
        metrics.cache.record_queue_timeout(LoadKind::Background);
        let text = metrics.encode();
        assert_eq!(sample(&text, r#"position_cache_queue_timeouts_total{kind="foreground"}"#), Some(1.0));
        assert_eq!(sample(&text, r#"position_cache_queue_timeouts_total{kind="background"}"#), Some(2.0));
        assert!(text.contains("# HELP position_cache_queue_timeouts Loads that waited REFRESH_QUEUE_TIMEOUT_MS"));
    }

    #[test]
    fn counts_read_back_what_was_recorded() {
        let metrics = Metrics::new();
        metrics.cache.record_lookup(Lookup::Stale);
        metrics.cache.record_refresh_started();
        metrics.cache.evictions.inc_by(4);
        assert_eq!(
            metrics.cache.counts(),
            CacheCounts { hits: 1, stale_serves: 1, refresh_triggers: 1, evictions: 4, ..CacheCounts::default() }
        );
    }
}
