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
}

impl<V> Entry<V> {
    #[inline]
    pub(crate) fn new(value: V, fetched_at_nanos: u64, now_nanos: u64, freshness: Freshness) -> Self {
        Self { value, fetched_at_nanos, age_nanos: now_nanos.saturating_sub(fetched_at_nanos), freshness }
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

    /// Shorthand for `self.freshness().is_stale()`.
    pub fn is_stale(&self) -> bool {
        self.freshness.is_stale()
    }
}
