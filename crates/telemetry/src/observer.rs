//! The bridge from `cache-core`'s [`Observer`] trait to Prometheus counters.
//!
//! `cache-core` knows no metrics library; it tells an [`Observer`] what
//! happened. This adapter turns each event into the raw tier-1 counter
//! (`position_cache_memory_events_total{event=...}`) and, for evictions,
//! also into the report's `position_cache_evictions_total`, which only the
//! memory tier can see.

use std::sync::Arc;

use cache_core::{Event, Observer};

use crate::Metrics;

/// A `cache-core` [`Observer`] that records the memory tier's events into
/// [`Metrics`].
///
/// Called on every cache read, after the shard lock is released: it does an
/// array index and one relaxed atomic add per event (two for an eviction),
/// and never blocks.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use cache_core::{Cache, Policy};
/// use telemetry::{MemoryTierObserver, Metrics};
///
/// let metrics = Arc::new(Metrics::new());
/// let cache = Cache::builder(2)
///     .policy(Policy::new(Duration::from_secs(900)))
///     .shards(1)
///     .observer(Arc::new(MemoryTierObserver::new(metrics.clone())))
///     .build();
/// for wallet in ["0xa1", "0xb2", "0xc3"] {
///     cache.insert(wallet, ());
/// }
/// assert_eq!(metrics.cache.counts().evictions, 1);
/// assert!(metrics.encode().contains("\nposition_cache_evictions_total 1\n"));
/// ```
#[derive(Debug, Clone)]
pub struct MemoryTierObserver {
    metrics: Arc<Metrics>,
}

impl MemoryTierObserver {
    /// An observer recording into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl Observer for MemoryTierObserver {
    fn record(&self, event: Event, count: u64) {
        self.metrics.memory.record(event, count);
        if event == Event::Eviction {
            self.metrics.cache.evictions.inc_by(count);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use cache_core::{Cache, ManualClock, Policy};

    use super::*;
    use crate::testing::sample;

    const TTL: Duration = Duration::from_secs(60);

    /// A one-shard cache (an exact LRU) of `capacity` entries, fresh for a
    /// minute and then servable stale for another, on a clock the test
    /// moves by hand.
    fn observed_cache(capacity: usize) -> (Arc<Metrics>, Cache<&'static str, u32>, ManualClock) {
        let metrics = Arc::new(Metrics::new());
        let clock = ManualClock::starting_now();
        let cache = Cache::builder(capacity)
            .policy(Policy::new(TTL).stale_while_revalidate(TTL))
            .shards(1)
            .clock(clock.clone())
            .observer(Arc::new(MemoryTierObserver::new(metrics.clone())))
            .build();
        (metrics, cache, clock)
    }

    fn memory_event(text: &str, label: &str) -> Option<f64> {
        sample(text, &format!("position_cache_memory_events_total{{event=\"{label}\"}}"))
    }

    #[test]
    fn inserting_past_capacity_counts_evictions_in_both_families() {
        let (metrics, cache, _clock) = observed_cache(3);
        for (i, wallet) in ["0x01", "0x02", "0x03", "0x04", "0x05"].into_iter().enumerate() {
            cache.insert(wallet, u32::try_from(i).unwrap());
        }
        let text = metrics.encode();
        assert_eq!(sample(&text, "position_cache_evictions_total"), Some(2.0));
        assert_eq!(memory_event(&text, "eviction"), Some(2.0));
        assert_eq!(memory_event(&text, "insertion"), Some(5.0));
    }

    #[test]
    fn reads_by_age_map_to_hit_stale_hit_miss_and_expiration() {
        let (metrics, cache, clock) = observed_cache(10);
        cache.insert("0xab", 1);
        assert!(cache.get("0xab").is_some());
        clock.advance(TTL + Duration::from_secs(1));
        assert!(cache.get("0xab").unwrap().is_stale());
        // Past both windows: the read misses and drops the entry.
        clock.advance(TTL);
        assert!(cache.get("0xab").is_none());
        assert!(cache.get("0xcd").is_none());

        let text = metrics.encode();
        assert_eq!(memory_event(&text, "hit"), Some(1.0));
        assert_eq!(memory_event(&text, "stale_hit"), Some(1.0));
        assert_eq!(memory_event(&text, "miss"), Some(2.0));
        assert_eq!(memory_event(&text, "expiration"), Some(1.0));
        assert_eq!(memory_event(&text, "eviction"), Some(0.0));
        assert_eq!(
            sample(&text, "position_cache_hits_total"),
            Some(0.0),
            "tier-1 events must not touch the per-request counters, which the service counts"
        );
    }

    #[test]
    fn invalidations_are_counted_but_are_not_evictions() {
        let (metrics, cache, _clock) = observed_cache(10);
        for wallet in ["0x01", "0x02", "0x03"] {
            cache.insert(wallet, 0);
        }
        assert!(cache.invalidate("0x01"));
        assert_eq!(cache.clear(), 2);

        let text = metrics.encode();
        assert_eq!(memory_event(&text, "invalidation"), Some(3.0));
        assert_eq!(memory_event(&text, "eviction"), Some(0.0));
        assert_eq!(sample(&text, "position_cache_evictions_total"), Some(0.0));
    }
}
