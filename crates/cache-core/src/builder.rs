//! Configuration of a [`Cache`] before it is built.

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::num::NonZero;
use std::sync::Arc;
use std::time::Duration;

use hashbrown::DefaultHashBuilder;

use crate::cache::{Cache, CacheParts};
use crate::clock::{Clock, ClockSource};
use crate::policy::Policy;
use crate::shard::Weigher;
use crate::stats::Observer;

/// Fewer entries than this per shard and sharding starts to cost hit ratio
/// (each shard's LRU sees a noisier slice of the traffic), so the default
/// shard count stops growing here.
const MIN_ENTRIES_PER_SHARD: usize = 64;

/// Shards per available core by default. Skewed traffic piles onto the
/// shard of the hottest keys, and every time two cores touch the same shard
/// its lock's cache line moves between them; with 32 per core the 2-thread
/// Zipf(0.99) benchmark runs about 60% faster than with 4 per core, at no
/// measurable cost in hit ratio (see `tests/hit_ratio.rs`).
const SHARDS_PER_CORE: usize = 32;

/// How long a key's demand count takes to halve by default: long enough
/// that a key read a few times a minute keeps a count, short enough that
/// yesterday's favourites fade within the hour.
pub const DEFAULT_DEMAND_HALF_LIFE: Duration = Duration::from_secs(60);

/// Builds a [`Cache`].
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use cache_core::{Cache, Policy};
///
/// // At most 10,000 wallets and at most 64 MiB of position data.
/// let cache: Cache<String, Arc<Vec<u8>>> = Cache::builder(10_000)
///     .policy(Policy::new(Duration::from_secs(900)).stale_while_revalidate(Duration::from_secs(3_600)))
///     .weigher(64 << 20, |key: &String, value: &Arc<Vec<u8>>| (key.len() + value.len()) as u64)
///     .build();
/// assert_eq!(cache.max_weight(), Some(64 << 20));
/// ```
pub struct CacheBuilder<K, V, S = DefaultHashBuilder> {
    capacity: usize,
    shards: Option<usize>,
    max_weight: Option<u64>,
    parts: CacheParts<K, V, S>,
}

impl<K, V> CacheBuilder<K, V> {
    /// A builder for a cache of at most `capacity` entries, whose entries
    /// never go stale until a [`policy`](Self::policy) says otherwise.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            shards: None,
            max_weight: None,
            parts: CacheParts {
                hasher: DefaultHashBuilder::default(),
                policy: Policy::never_stale(),
                clock: ClockSource::System,
                observer: None,
                weigher: None,
                demand_half_life: DEFAULT_DEMAND_HALF_LIFE,
            },
        }
    }
}

impl<K, V, S> CacheBuilder<K, V, S> {
    /// Sets the freshness policy.
    #[must_use]
    pub fn policy(mut self, policy: Policy) -> Self {
        self.parts.policy = policy;
        self
    }

    /// Sets how many shards the keys are spread over, rounded up to a power
    /// of two and kept no larger than the capacity. One shard makes the
    /// cache an exact LRU; the default grows with the cores (32 per core)
    /// while keeping at least 64 entries per shard.
    #[must_use]
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// Sets the clock; [`SystemClock`](crate::SystemClock) by default.
    #[must_use]
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.parts.clock = ClockSource::Custom(Arc::new(clock));
        self
    }

    /// Sets how long a key's demand count ([`Entry::demand`](crate::Entry::demand))
    /// takes to halve, rounded to the nearest power of two nanoseconds (a
    /// minute is 68.7 s, 15 minutes 18.3 min); [`DEFAULT_DEMAND_HALF_LIFE`]
    /// by default. A caller that
    /// asks "was this key read often within the last TTL?" sets it to
    /// about the TTL.
    #[must_use]
    pub fn demand_half_life(mut self, half_life: Duration) -> Self {
        self.parts.demand_half_life = half_life;
        self
    }

    /// Sets an observer that hears every event.
    #[must_use]
    pub fn observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.parts.observer = Some(observer);
        self
    }

    /// Bounds the cache by weight as well as by count: `weigher` gives each
    /// entry a weight (for example its size in bytes), and the least recently
    /// used entries are evicted while the total exceeds `max_weight`. A value
    /// heavier than `max_weight` is not stored; neither is one that its shard
    /// cannot make room for by evicting its own entries.
    ///
    /// The weigher is called again when an entry leaves, so it must give the
    /// same answer for the same entry every time. It runs under a shard's
    /// lock: keep it cheap. If it panics, the panic reaches the caller of the
    /// operation that called it, and the cache stays consistent: every entry
    /// is weighed before anything about it changes, and an insert whose
    /// evictions a panic cut short is taken back out, so the cache stays
    /// within its bounds.
    #[must_use]
    pub fn weigher(mut self, max_weight: u64, weigher: impl Fn(&K, &V) -> u64 + Send + Sync + 'static) -> Self {
        let weigher: Weigher<K, V> = Arc::new(weigher);
        self.parts.weigher = Some(weigher);
        self.max_weight = Some(max_weight);
        self
    }

    /// Sets the hasher. The default is hashbrown's (foldhash, randomly
    /// seeded), which is fast and resists collision attacks.
    #[must_use]
    pub fn hasher<S2>(self, hasher: S2) -> CacheBuilder<K, V, S2> {
        CacheBuilder {
            capacity: self.capacity,
            shards: self.shards,
            max_weight: self.max_weight,
            parts: CacheParts {
                hasher,
                policy: self.parts.policy,
                clock: self.parts.clock,
                observer: self.parts.observer,
                weigher: self.parts.weigher,
                demand_half_life: self.parts.demand_half_life,
            },
        }
    }

    /// The shard count this builder will use.
    fn shard_count(&self) -> usize {
        let most = largest_power_of_two_at_most(self.capacity.max(1));
        if let Some(n) = self.shards {
            return n.max(1).next_power_of_two().min(most);
        }
        let cores = std::thread::available_parallelism().map_or(1, NonZero::get);
        let wanted = (cores * SHARDS_PER_CORE).next_power_of_two();
        let affordable = largest_power_of_two_at_most((self.capacity / MIN_ENTRIES_PER_SHARD).max(1));
        wanted.min(affordable)
    }
}

impl<K, V, S> CacheBuilder<K, V, S>
where
    K: Hash + Eq,
    V: Clone,
    S: BuildHasher + Clone,
{
    /// Builds the cache.
    pub fn build(self) -> Cache<K, V, S> {
        let shards = self.shard_count();
        Cache::from_parts(self.capacity, self.max_weight, shards, self.parts)
    }
}

fn largest_power_of_two_at_most(n: usize) -> usize {
    debug_assert!(n > 0);
    1 << (usize::BITS - 1 - n.leading_zeros())
}

impl<K, V, S> fmt::Debug for CacheBuilder<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("capacity", &self.capacity)
            .field("shards", &self.shards)
            .field("max_weight", &self.max_weight)
            .field("policy", &self.parts.policy)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_counts_are_powers_of_two_within_the_capacity() {
        assert_eq!(largest_power_of_two_at_most(1), 1);
        assert_eq!(largest_power_of_two_at_most(1000), 512);
        let shards = |capacity, asked| CacheBuilder::<u32, u32>::new(capacity).shards(asked).shard_count();
        assert_eq!(shards(1000, 1), 1);
        assert_eq!(shards(1000, 3), 4);
        assert_eq!(shards(3, 16), 2);
        assert_eq!(shards(0, 16), 1);
        let default = CacheBuilder::<u32, u32>::new(100).shard_count();
        assert_eq!(default, 1, "100 entries cannot afford two shards of 64");
        let default = CacheBuilder::<u32, u32>::new(1 << 20).shard_count();
        assert!(default.is_power_of_two() && default >= SHARDS_PER_CORE);
    }
}
