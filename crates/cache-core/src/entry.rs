//! What a read returns: the value with its age and freshness.

use std::time::{Duration, SystemTime};

use crate::clock::from_unix_nanos;
use crate::policy::Freshness;

/// A value read from a [`Cache`](crate::Cache), with what the reader needs
/// to decide what to do with it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use cache_core::{Cache, Freshness, ManualClock, Policy};
///
/// let clock = ManualClock::starting_now();
/// let cache = Cache::builder(10)
///     .policy(Policy::new(Duration::from_secs(60)).stale_while_revalidate(Duration::from_secs(60)))
///     .clock(clock.clone())
///     .build();
/// cache.insert("k", 1);
/// clock.advance(Duration::from_secs(90));
///
/// let entry = cache.get("k").expect("within the stale window");
/// assert_eq!(*entry.value(), 1);
/// assert_eq!(entry.freshness(), Freshness::Stale);
/// assert_eq!(entry.age(), Duration::from_secs(90));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<V> {
    value: V,
    // Kept as integers: a read that only looks at the value and freshness
    // should not pay for building a `SystemTime` and a `Duration`.
    fetched_at_nanos: u64,
    age_nanos: u64,
    freshness: Freshness,
    demand: u16,
}

impl<V> Entry<V> {
    #[inline]
    pub(crate) fn new(value: V, fetched_at_nanos: u64, now_nanos: u64, freshness: Freshness) -> Self {
        Self { value, fetched_at_nanos, age_nanos: now_nanos.saturating_sub(fetched_at_nanos), freshness, demand: 0 }
    }

    #[inline]
    pub(crate) const fn with_demand(mut self, demand: u16) -> Self {
        self.demand = demand;
        self
    }

    /// The cached value.
    pub fn value(&self) -> &V {
        &self.value
    }

    /// The cached value, owned.
    pub fn into_value(self) -> V {
        self.value
    }

    /// When the value was fetched from its source.
    pub fn fetched_at(&self) -> SystemTime {
        from_unix_nanos(self.fetched_at_nanos)
    }

    /// How old the value was when it was read; zero if `fetched_at` lies in
    /// the future (a clock ahead on another replica).
    pub fn age(&self) -> Duration {
        Duration::from_nanos(self.age_nanos)
    }

    /// Whether the value was fresh or stale when it was read: stale once
    /// past the TTL, or if it was marked stale
    /// ([`Cache::mark_stale_before`](crate::Cache::mark_stale_before)) and
    /// not replaced since.
    pub fn freshness(&self) -> Freshness {
        self.freshness
    }

    /// How much the entry has been read lately: a count of the reads that
    /// touched it ([`get`](crate::Cache::get) and
    /// [`get_fail_safe`](crate::Cache::get_fail_safe), this one included),
    /// halved once per [demand half-life](crate::CacheBuilder::demand_half_life).
    /// A replaced value keeps its key's count; an evicted or invalidated
    /// entry loses it. An estimate for telling the keys in demand from the
    /// rest (it saturates at `u16::MAX`), not an exact rate.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cache_core::{Cache, ManualClock, Policy};
    ///
    /// let clock = ManualClock::starting_now();
    /// let cache = Cache::builder(10)
    ///     .policy(Policy::new(Duration::from_secs(3_600)))
    ///     .demand_half_life(Duration::from_secs(60))
    ///     .clock(clock.clone())
    ///     .build();
    /// cache.insert("hot", 1);
    /// cache.insert("cold", 2);
    /// for _ in 0..7 {
    ///     cache.get("hot");
    /// }
    /// assert_eq!(cache.get("hot").unwrap().demand(), 8);
    /// assert_eq!(cache.peek("cold").unwrap().demand(), 0, "a peek is not a read");
    /// cache.insert("hot", 3); // a new value: the same demand
    /// assert!(cache.peek("hot").unwrap().demand() >= 4, "at most one halving since");
    /// clock.advance(Duration::from_secs(20 * 60));
    /// assert_eq!(cache.peek("hot").unwrap().demand(), 0, "twenty half-lives later");
    /// ```
    pub fn demand(&self) -> u16 {
        self.demand
    }

    /// Shorthand for `self.freshness().is_stale()`.
    pub fn is_stale(&self) -> bool {
        self.freshness.is_stale()
    }
}
