//! Counted events: a snapshot struct for polling and an observer trait for
//! pushing.
//!
//! Each shard counts its events in plain integers under the lock it already
//! holds, so counting costs no atomic operation on the hot path;
//! [`Cache::stats`](crate::Cache::stats) sums the shards. An [`Observer`]
//! additionally hears every event as it happens, outside the lock, which is
//! how a metrics exporter can keep its own counters without this crate
//! depending on one.

use std::fmt;
use std::ops::AddAssign;

/// Something the cache did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// A read found a fresh entry.
    Hit,
    /// A read found an entry past its TTL and returned it marked stale.
    StaleHit,
    /// A read found nothing it could return.
    Miss,
    /// An entry was stored (new, or replacing an older value).
    Insertion,
    /// An entry was dropped to respect the capacity or the weight bound.
    Eviction,
    /// An entry was dropped because it was older than every window.
    Expiration,
    /// An entry was dropped on request (`invalidate`, a pattern, `clear`).
    Invalidation,
}

impl Event {
    /// Every event, in declaration order.
    pub const ALL: [Self; 7] =
        [Self::Hit, Self::StaleHit, Self::Miss, Self::Insertion, Self::Eviction, Self::Expiration, Self::Invalidation];
}

/// Hears the cache's events as they happen.
///
/// Called after the shard lock is released, from whichever thread caused the
/// event; `count` is how many of that event one operation caused (an insert
/// can evict several entries). Implementations should be quick and must not
/// call back into the same cache. Nor should they panic: an operation whose
/// predicate or weigher panicked still reports what it did while the panic
/// unwinds, and a second panic then aborts the process.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use cache_core::{Cache, Event, Observer, Policy};
/// use std::time::Duration;
///
/// #[derive(Debug, Default)]
/// struct Evictions(AtomicU64);
///
/// impl Observer for Evictions {
///     fn record(&self, event: Event, count: u64) {
///         if event == Event::Eviction {
///             self.0.fetch_add(count, Ordering::Relaxed);
///         }
///     }
/// }
///
/// let evictions = Arc::new(Evictions::default());
/// let cache = Cache::builder(2)
///     .policy(Policy::new(Duration::from_secs(60)))
///     .observer(evictions.clone())
///     .build();
/// for i in 0..5 {
///     cache.insert(i, i);
/// }
/// assert_eq!(evictions.0.load(Ordering::Relaxed), 3);
/// ```
pub trait Observer: Send + Sync + fmt::Debug {
    /// `count` occurrences of `event` just happened.
    fn record(&self, event: Event, count: u64);
}

/// A point-in-time summary of a cache's activity and size.
///
/// Counters are cumulative since the cache was built. Shards are read one
/// after another, so under concurrent use the snapshot is not one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Reads that found a fresh entry.
    pub hits: u64,
    /// Reads that returned an entry marked stale.
    pub stale_hits: u64,
    /// Reads that returned nothing.
    pub misses: u64,
    /// Values stored.
    pub insertions: u64,
    /// Entries dropped for capacity or weight.
    pub evictions: u64,
    /// Entries dropped for age.
    pub expirations: u64,
    /// Entries dropped on request.
    pub invalidations: u64,
    /// Entries held now.
    pub len: usize,
    /// Total weight held now (equal to `len` without a weigher).
    pub weight: u64,
}

impl CacheStats {
    /// The share of reads answered from the cache, fresh or stale, in
    /// `0.0..=1.0`; zero before the first read.
    ///
    /// # Examples
    ///
    /// ```
    /// use cache_core::CacheStats;
    ///
    /// let stats = CacheStats { hits: 6, stale_hits: 2, misses: 2, ..CacheStats::default() };
    /// assert!((stats.hit_ratio() - 0.8).abs() < 1e-9);
    /// ```
    pub fn hit_ratio(&self) -> f64 {
        let served = self.hits + self.stale_hits;
        let reads = served + self.misses;
        if reads == 0 { 0.0 } else { served as f64 / reads as f64 }
    }

    /// How many times `event` happened.
    pub fn count(&self, event: Event) -> u64 {
        match event {
            Event::Hit => self.hits,
            Event::StaleHit => self.stale_hits,
            Event::Miss => self.misses,
            Event::Insertion => self.insertions,
            Event::Eviction => self.evictions,
            Event::Expiration => self.expirations,
            Event::Invalidation => self.invalidations,
        }
    }
}

/// Events counted by one operation, or by one shard over its life.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Tally {
    counts: [u64; Event::ALL.len()],
}

impl Tally {
    #[inline]
    pub(crate) fn add(&mut self, event: Event, n: u64) {
        self.counts[event as usize] += n;
    }

    #[inline]
    pub(crate) fn get(&self, event: Event) -> u64 {
        self.counts[event as usize]
    }

    /// Tells the observer about every non-zero count.
    #[inline]
    pub(crate) fn report(&self, observer: &dyn Observer) {
        for event in Event::ALL {
            let n = self.get(event);
            if n > 0 {
                observer.record(event, n);
            }
        }
    }

    pub(crate) fn add_to(&self, stats: &mut CacheStats) {
        stats.hits += self.get(Event::Hit);
        stats.stale_hits += self.get(Event::StaleHit);
        stats.misses += self.get(Event::Miss);
        stats.insertions += self.get(Event::Insertion);
        stats.evictions += self.get(Event::Eviction);
        stats.expirations += self.get(Event::Expiration);
        stats.invalidations += self.get(Event::Invalidation);
    }
}

impl AddAssign<&Tally> for Tally {
    fn add_assign(&mut self, rhs: &Tally) {
        for (a, b) in self.counts.iter_mut().zip(rhs.counts) {
            *a += b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_sums_into_stats_by_event() {
        let mut a = Tally::default();
        a.add(Event::Hit, 3);
        a.add(Event::Eviction, 2);
        let mut b = Tally::default();
        b.add(Event::Hit, 1);
        b.add(Event::Invalidation, 4);
        a += &b;
        let mut stats = CacheStats::default();
        a.add_to(&mut stats);
        for event in Event::ALL {
            assert_eq!(stats.count(event), a.get(event), "{event:?}");
        }
        assert_eq!(stats.hits, 4);
        assert_eq!(stats.evictions, 2);
        assert_eq!(stats.invalidations, 4);
    }

    #[test]
    fn hit_ratio_of_no_reads_is_zero() {
        assert!(CacheStats::default().hit_ratio().abs() < f64::EPSILON);
    }
}
