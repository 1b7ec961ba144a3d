//! What a read did, counted ([`Stats`]) and told to an [`Observer`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use refresh::LoadError;

/// How a read was answered, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lookup {
    /// A fresh value from a cache tier.
    Hit,
    /// A stale value from a cache tier, with a background refresh.
    Stale,
    /// No servable value: the read loaded (or was a forced reload).
    Miss,
}

/// Hears what the cache does, for metrics and logs. Every method has an
/// empty default; implement what you need.
///
/// Called on the reading task, synchronously: keep it cheap.
pub trait Observer<K, E>: Send + Sync + 'static {
    /// A read was answered as `lookup`.
    fn lookup(&self, key: &K, lookup: Lookup) {
        let _ = (key, lookup);
    }

    /// A fresh value in demand near the end of its TTL started an early
    /// refresh ([`EagerRefresh`](crate::EagerRefresh)).
    fn eager_refresh(&self, key: &K) {
        let _ = key;
    }

    /// A load failed and the read answered a value `age` old from the
    /// stale-if-error window instead.
    fn fail_safe(&self, key: &K, error: &LoadError<E>, age: Duration) {
        let _ = (key, error, age);
    }
}

/// What the cache has done since it was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Reads answered fresh from a cache tier.
    pub hits: u64,
    /// Reads answered stale from a cache tier (each started or joined a
    /// background refresh).
    pub stale_hits: u64,
    /// Reads of those two answered by the second tier.
    pub second_tier_hits: u64,
    /// Reads that had to load (including forced reloads).
    pub misses: u64,
    /// Loads that failed, answered from the stale-if-error window.
    pub fail_safe: u64,
    /// Loads that failed with nothing to fall back on.
    pub errors: u64,
    /// Early refreshes of values in demand.
    pub eager_refreshes: u64,
}

impl Stats {
    /// The share of reads answered from a cache tier, fresh or stale, in
    /// `0.0..=1.0` (zero before any read).
    pub fn hit_ratio(&self) -> f64 {
        let served = self.hits + self.stale_hits;
        let all = served + self.misses;
        if all == 0 { 0.0 } else { served as f64 / all as f64 }
    }
}

/// The counters behind [`Stats`]: exact, one relaxed atomic add per read.
/// That add is the largest part of what a hit costs beyond the memory read
/// (about 3.5 of some 43 ns on the machine `docs/benchmarks.md` names);
/// counters that may lose a count under contention would save it, and are
/// not what a caller reading `stats` expects.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    hits: AtomicU64,
    stale_hits: AtomicU64,
    second_tier_hits: AtomicU64,
    misses: AtomicU64,
    fail_safe: AtomicU64,
    errors: AtomicU64,
    eager_refreshes: AtomicU64,
}

/// Which counter an event bumps.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Count {
    Lookup(Lookup),
    SecondTierHit,
    FailSafe,
    Error,
    EagerRefresh,
}

impl Counters {
    #[inline]
    pub(crate) fn add(&self, count: Count) {
        let counter = match count {
            Count::Lookup(Lookup::Hit) => &self.hits,
            Count::Lookup(Lookup::Stale) => &self.stale_hits,
            Count::Lookup(Lookup::Miss) => &self.misses,
            Count::SecondTierHit => &self.second_tier_hits,
            Count::FailSafe => &self.fail_safe,
            Count::Error => &self.errors,
            Count::EagerRefresh => &self.eager_refreshes,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            hits: read(&self.hits),
            stale_hits: read(&self.stale_hits),
            second_tier_hits: read(&self.second_tier_hits),
            misses: read(&self.misses),
            fail_safe: read(&self.fail_safe),
            errors: read(&self.errors),
            eager_refreshes: read(&self.eager_refreshes),
        }
    }
}
