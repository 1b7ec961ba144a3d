//! Tier 1, the in-process LRU: its raw events by kind, and how many wallets
//! it holds.
//!
//! The events are `cache-core`'s [`Event`]s exactly as the cache reported
//! them, one label value per variant; they arrive through
//! [`MemoryTierObserver`](crate::MemoryTierObserver), which is the only
//! writer. They say what tier 1 did, not what a request got: for that, see
//! [`CacheMetrics`](crate::CacheMetrics).

use cache_core::Event;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::cache::saturating_i64;

/// The memory tier's event counters and its size.
///
/// Reached as [`Metrics::memory`](crate::Metrics::memory). Clones share the
/// same series.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use cache_core::{Cache, Event, Policy};
/// use telemetry::{MemoryTierObserver, Metrics};
///
/// let metrics = Arc::new(Metrics::new());
/// let cache = Cache::builder(100)
///     .policy(Policy::new(Duration::from_secs(900)))
///     .observer(Arc::new(MemoryTierObserver::new(metrics.clone())))
///     .build();
/// cache.insert("0xab", 1);
/// cache.get("0xab");
/// metrics.memory.set_entries(cache.len());
///
/// assert_eq!(metrics.memory.count(Event::Insertion), 1);
/// assert_eq!(metrics.memory.count(Event::Hit), 1);
/// assert!(metrics.encode().contains("\nposition_cache_entries 1\n"));
/// ```
#[derive(Debug, Clone)]
pub struct MemoryMetrics {
    /// One counter per [`Event`], indexed by `event as usize`, resolved from
    /// the family once so that the observer, called on every cache read,
    /// takes no lock and hashes nothing.
    events: [Counter; Event::ALL.len()],
    entries: Gauge,
}

impl MemoryMetrics {
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let family = Family::<EventLabels, Counter>::default();
        // `Event::ALL` is in declaration order, so position `i` holds the
        // event whose discriminant is `i`; `record` relies on that.
        let events = Event::ALL.map(|event| family.get_or_create_owned(&EventLabels { event: EventName(event) }));
        let entries = Gauge::default();
        registry.register(
            "position_cache_memory_events",
            "Raw tier-1 (in-process LRU) cache events by kind, as the memory tier reported them",
            family,
        );
        registry.register("position_cache_entries", "Wallets held in tier 1 (the in-process LRU) now", entries.clone());
        Self { events, entries }
    }

    /// Counts `count` occurrences of `event`.
    pub(crate) fn record(&self, event: Event, count: u64) {
        self.events[event as usize].inc_by(count);
    }

    /// How many times tier 1 reported `event` so far.
    pub fn count(&self, event: Event) -> u64 {
        self.events[event as usize].get()
    }

    /// Sets how many wallets tier 1 holds now.
    ///
    /// The events cannot tell (an insertion may replace an entry), so the
    /// service sets this from `Cache::len`, for example just before each
    /// scrape's [`Metrics::encode`](crate::Metrics::encode).
    pub fn set_entries(&self, entries: usize) {
        self.entries.set(saturating_i64(entries));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EventLabels {
    event: EventName,
}

/// [`Event`] as a label value. A wrapper because neither the trait nor the
/// type is this crate's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct EventName(Event);

impl EventName {
    /// Snake case, as Prometheus label values usually are; the derive would
    /// write the Rust name (`StaleHit`).
    fn as_str(self) -> &'static str {
        match self.0 {
            Event::Hit => "hit",
            Event::StaleHit => "stale_hit",
            Event::Miss => "miss",
            Event::Insertion => "insertion",
            Event::Eviction => "eviction",
            Event::Expiration => "expiration",
            Event::Invalidation => "invalidation",
        }
    }
}

label_value_by_as_str!(EventName);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Metrics;
    use crate::testing::sample;

    #[test]
    fn every_event_shows_as_a_zero_series_before_it_happens() {
        let text = Metrics::new().encode();
        for event in Event::ALL {
            let series = format!("position_cache_memory_events_total{{event=\"{}\"}}", EventName(event).as_str());
            assert_eq!(sample(&text, &series), Some(0.0), "{series}");
        }
    }

    #[test]
    fn each_event_lands_in_its_own_series() {
        let metrics = Metrics::new();
        // A different count per event, so a mix-up of indices would show.
        for (n, event) in (1..).zip(Event::ALL) {
            metrics.memory.record(event, n);
        }
        let text = metrics.encode();
        let expected = [
            ("hit", 1),
            ("stale_hit", 2),
            ("miss", 3),
            ("insertion", 4),
            ("eviction", 5),
            ("expiration", 6),
            ("invalidation", 7),
        ];
        for (label, n) in expected {
            let series = format!("position_cache_memory_events_total{{event=\"{label}\"}}");
            assert_eq!(sample(&text, &series), Some(f64::from(n)), "{series}");
        }
        for (n, event) in (1..).zip(Event::ALL) {
            assert_eq!(metrics.memory.count(event), n, "{event:?}");
        }
    }

    #[test]
    fn entries_gauge_follows_the_last_value_set() {
        let metrics = Metrics::new();
        metrics.memory.set_entries(1_523);
        assert_eq!(sample(&metrics.encode(), "position_cache_entries"), Some(1_523.0));
        metrics.memory.set_entries(12);
        assert_eq!(sample(&metrics.encode(), "position_cache_entries"), Some(12.0));
    }
}
