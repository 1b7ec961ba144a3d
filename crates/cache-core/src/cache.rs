//! The concurrent cache: shards, hashing and the public operations.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::ops::Deref;
use std::sync::Arc;
use std::time::SystemTime;

use hashbrown::DefaultHashBuilder;

use crate::bounds::Bounds;
use crate::builder::CacheBuilder;
use crate::clock::{ClockSource, duration_nanos, to_unix_nanos};
use crate::demand::HalfLife;
use crate::entry::Entry;
use crate::glob::{Pattern, PatternError};
use crate::lock::{ShardGuard, ShardLock};
use crate::policy::{Freshness, Policy, Windows};
use crate::shard::{Read, ReadMode, Removed, Shard};
use crate::stats::{CacheStats, Event, Observer, Tally};

/// A concurrent LRU cache whose entries go stale with age.
///
/// Keys are spread over independently locked shards, each an exact LRU over
/// its keys; the capacity bounds the whole cache, and an insert that fills
/// it evicts from its own shard's least recently used end. With one shard
/// the whole cache is an exact LRU.
/// Every entry remembers when it was fetched, and reads classify it against
/// the [`Policy`]: fresh, stale but servable, or only good as a fail-safe.
///
/// `get`, `insert` and eviction are O(1). Values are cloned out on a hit, so
/// use a cheaply cloned type such as `Arc<T>` for anything large.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use cache_core::{Cache, Freshness, ManualClock, Policy};
///
/// let clock = ManualClock::starting_now();
/// let cache: Cache<String, Arc<Vec<u32>>> = Cache::builder(2_000)
///     .policy(
///         Policy::new(Duration::from_secs(900))
///             .stale_while_revalidate(Duration::from_secs(3_600))
///             .stale_if_error(Duration::from_secs(86_400)),
///     )
///     .clock(clock.clone())
///     .build();
///
/// cache.insert("0xab".to_owned(), Arc::new(vec![1, 2, 3]));
/// assert_eq!(cache.get("0xab").unwrap().freshness(), Freshness::Fresh);
///
/// clock.advance(Duration::from_secs(1_000));
/// let entry = cache.get("0xab").unwrap();
/// assert!(entry.is_stale(), "served at once, but due for a refresh");
///
/// clock.advance(Duration::from_secs(10_000));
/// assert!(cache.get("0xab").is_none(), "too old to serve normally");
/// assert!(cache.get_fail_safe("0xab").is_some(), "but still good if the source is down");
/// ```
pub struct Cache<K, V, S = DefaultHashBuilder> {
    shards: Box<[LockedShard<K, V, S>]>,
    /// `shards.len() - 1`; the shard count is a power of two.
    shard_mask: usize,
    hasher: S,
    policy: Policy,
    windows: Windows,
    half_life: HalfLife,
    capacity: usize,
    max_weight: Option<u64>,
    /// The cache-wide entry and weight counts, shared with every shard.
    bounds: Arc<Bounds>,
    clock: ClockSource,
    observer: Option<Arc<dyn Observer>>,
}

type LockedShard<K, V, S> = Padded<ShardLock<Shard<K, V, S>>>;

/// Keeps each shard's lock on its own cache lines so that threads working on
/// different shards do not contend through false sharing.
#[repr(align(128))]
struct Padded<T>(T);

impl<T> Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<K, V> Cache<K, V>
where
    K: Hash + Eq,
    V: Clone,
{
    /// A cache of `capacity` entries under `policy`, with default settings
    /// otherwise; see [`Cache::builder`] for the rest.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cache_core::{Cache, Policy};
    ///
    /// let cache = Cache::new(100, Policy::new(Duration::from_secs(60)));
    /// cache.insert(1_u64, "one");
    /// assert_eq!(cache.get(&1).map(|e| *e.value()), Some("one"));
    /// ```
    pub fn new(capacity: usize, policy: Policy) -> Self {
        Self::builder(capacity).policy(policy).build()
    }

    /// A builder for a cache of `capacity` entries.
    pub fn builder(capacity: usize) -> CacheBuilder<K, V> {
        CacheBuilder::new(capacity)
    }
}

impl<K, V, S> Cache<K, V, S>
where
    K: Hash + Eq,
    V: Clone,
    S: BuildHasher + Clone,
{
    pub(crate) fn from_parts(
        capacity: usize,
        max_weight: Option<u64>,
        shard_count: usize,
        parts: CacheParts<K, V, S>,
    ) -> Self {
        debug_assert!(shard_count.is_power_of_two());
        let windows = Windows::from(&parts.policy);
        let half_life = HalfLife::from_nanos(duration_nanos(parts.demand_half_life));
        let bounds = Arc::new(Bounds::new(capacity, max_weight));
        let shards = (0..shard_count)
            .map(|_| {
                let shard =
                    Shard::new(parts.hasher.clone(), parts.weigher.clone(), windows, half_life, Arc::clone(&bounds));
                Padded(ShardLock::new(shard))
            })
            .collect();
        Self {
            shards,
            shard_mask: shard_count - 1,
            hasher: parts.hasher,
            policy: parts.policy,
            windows,
            half_life,
            capacity,
            max_weight,
            bounds,
            clock: parts.clock,
            observer: parts.observer,
        }
    }

    /// Returns the entry for `key` if it is within the TTL or the
    /// stale-while-revalidate window, and marks it most recently used.
    ///
    /// Counts a hit, a stale hit or a miss. An entry too old for every
    /// window is dropped and counted as an expiration.
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<Entry<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.read(key, ReadMode::Get)
    }

    /// Returns the entry for `key` if it is within the TTL or the
    /// stale-if-error window: for use once a fresh load has failed.
    ///
    /// Its window is its own, not the longer of the two: an entry past
    /// `ttl + stale_if_error` is not returned even if [`get`](Self::get)
    /// would still serve it stale (see [`Policy`]). Otherwise like `get`.
    pub fn get_fail_safe<Q>(&self, key: &Q) -> Option<Entry<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.read(key, ReadMode::FailSafe)
    }

    /// Like [`get`](Self::get), but leaves recency and the counters alone.
    pub fn peek<Q>(&self, key: &Q) -> Option<Entry<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.read(key, ReadMode::Peek)
    }

    #[inline]
    fn read<Q>(&self, key: &Q, mode: ReadMode) -> Option<Entry<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        let now = self.now();
        let Read { found, event, expired } = self.shard(hash).read(hash, key, now, mode);
        if let (ReadMode::Get | ReadMode::FailSafe, Some(observer)) = (mode, &self.observer) {
            observer.record(event, 1);
            if expired.is_some() {
                observer.record(Event::Expiration, 1);
            }
        }
        drop(expired);
        // The shard has already weighed the mark: a marked entry counts as a
        // stale hit.
        let freshness = if event == Event::Hit { Freshness::Fresh } else { Freshness::Stale };
        let epoch = self.half_life.epoch(now);
        found.map(|slot| {
            Entry::new(slot.value, slot.stamp.fetched_at(), now, freshness).with_demand(slot.demand.at(epoch))
        })
    }

    /// Stores `value` under `key` as fetched now, replacing any older value,
    /// and evicts the least recently used entries if the cache is full.
    pub fn insert(&self, key: K, value: V) {
        let now = self.now();
        self.insert_nanos(key, value, now, now);
    }

    /// Stores `value` under `key` as fetched at `fetched_at`: for a value
    /// that comes from a shared tier and must keep its original age.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use cache_core::{Cache, Policy};
    ///
    /// let cache = Cache::new(10, Policy::new(Duration::from_secs(60)));
    /// let fetched_at = SystemTime::now() - Duration::from_secs(30);
    /// cache.insert_at("k", 7, fetched_at);
    /// let entry = cache.get("k").unwrap();
    /// assert!(entry.age() >= Duration::from_secs(29));
    /// assert!(!entry.is_stale());
    /// ```
    pub fn insert_at(&self, key: K, value: V, fetched_at: SystemTime) {
        self.insert_nanos(key, value, to_unix_nanos(fetched_at), self.now());
    }

    /// Like [`insert_at`](Self::insert_at), unless the cache already holds
    /// a value for `key` that outranks it: then that value stays, untouched,
    /// and `value` is dropped. Returns whether `value` was stored.
    ///
    /// The held value outranks the new one when it was fetched later, or at
    /// the same time and is not marked stale. A held value marked by
    /// [`mark_stale_before`](Self::mark_stale_before) and fetched at the same
    /// time (or earlier) is replaced: a value of the same time *confirms* it
    /// (the shared tier still holds exactly that entry), and the stored
    /// value starts unmarked, as every insert does. A store of either kind
    /// counts an insertion and makes the entry the most recently used.
    ///
    /// For filling this cache from a slower shared tier: while the read of
    /// that tier was under way, a fresher value may have arrived here, and
    /// it must not be replaced by an older one. The check and the store are
    /// one step under the shard's lock.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use cache_core::{Cache, Policy};
    ///
    /// let cache = Cache::new(10, Policy::new(Duration::from_secs(60)));
    /// let now = SystemTime::now();
    /// cache.insert_at("k", "new", now);
    /// assert!(!cache.insert_if_newer("k", "old", now - Duration::from_secs(5)));
    /// assert_eq!(*cache.get("k").unwrap().value(), "new");
    /// assert!(cache.insert_if_newer("k", "newer", now + Duration::from_secs(1)));
    /// assert_eq!(*cache.get("k").unwrap().value(), "newer");
    ///
    /// // The same time does not replace an unmarked entry, but confirms a
    /// // marked one.
    /// let newer = now + Duration::from_secs(1);
    /// assert!(!cache.insert_if_newer("k", "same", newer));
    /// cache.mark_stale_before(newer + Duration::from_secs(1));
    /// assert!(cache.get("k").unwrap().is_stale());
    /// assert!(cache.insert_if_newer("k", "confirmed", newer));
    /// assert!(!cache.get("k").unwrap().is_stale());
    /// ```
    pub fn insert_if_newer(&self, key: K, value: V, fetched_at: SystemTime) -> bool {
        let fetched_at = to_unix_nanos(fetched_at);
        let now = self.now();
        let hash = self.hasher.hash_one(&key);
        let mut removed = Removed::none();
        let mut pending = self.pending();
        {
            let mut shard = self.shard(hash);
            if shard.holds_newer(hash, &key, fetched_at) {
                drop(shard);
                drop((key, value));
                return false;
            }
            shard.insert(hash, key, value, fetched_at, now, &mut removed, &mut pending.events);
        }
        drop(removed);
        drop(pending);
        true
    }

    fn insert_nanos(&self, key: K, value: V, fetched_at: u64, now: u64) {
        let hash = self.hasher.hash_one(&key);
        let mut removed = Removed::none();
        let mut pending = self.pending();
        self.shard(hash).insert(hash, key, value, fetched_at, now, &mut removed, &mut pending.events);
        drop(removed);
        drop(pending);
    }

    /// Marks stale every entry fetched strictly before `before`, until it is
    /// replaced; returns how many entries it marked that were not marked
    /// already (so a second call with the same `before` returns zero). Dead
    /// entries not yet dropped are marked and counted too, as
    /// [`len`](Self::len) counts them.
    ///
    /// For an owner that may have missed invalidations: once a lost
    /// subscription is back, every entry fetched before the end of the gap
    /// may have been invalidated elsewhere, so it should be served as stale
    /// (and revalidated) rather than as fresh.
    ///
    /// A marked entry reads as [`Freshness::Stale`] on every read
    /// ([`get`](Self::get) counts it as a stale hit), even while its age is
    /// within the TTL. Everything else still goes by its real `fetched_at`:
    /// its [`age`](Entry::age), the windows in which each read serves it
    /// (past `ttl + stale_while_revalidate` `get` misses it as usual, and
    /// [`get_fail_safe`](Self::get_fail_safe) serves it to the end of its own
    /// window), eviction and [`purge_expired`](Self::purge_expired). Any
    /// insert of `key` stores an unmarked entry; see
    /// [`insert_if_newer`](Self::insert_if_newer) for how a value of the same
    /// time confirms a marked one.
    ///
    /// Touches neither recency nor the counters, and tells the observer
    /// nothing. O(n): visits every entry, one shard at a time, each under its
    /// lock. An entry stored while the pass is under way is marked if its
    /// shard is visited after the store and it was fetched before `before`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cache_core::{Cache, Clock, Freshness, ManualClock, Policy};
    ///
    /// let clock = ManualClock::starting_now();
    /// let cache = Cache::builder(10)
    ///     .policy(Policy::new(Duration::from_secs(60)).stale_while_revalidate(Duration::from_secs(60)))
    ///     .clock(clock.clone())
    ///     .build();
    /// cache.insert("before", 1);
    /// clock.advance(Duration::from_secs(10));
    /// let gap_ended = clock.now();
    /// cache.insert("after", 2);
    ///
    /// assert_eq!(cache.mark_stale_before(gap_ended), 1);
    /// let entry = cache.get("before").unwrap();
    /// assert_eq!(entry.freshness(), Freshness::Stale);
    /// assert_eq!(entry.age(), Duration::from_secs(10), "the age is still the real one");
    /// assert!(!cache.get("after").unwrap().is_stale());
    ///
    /// cache.insert("before", 3); // replaced: fresh again
    /// assert!(!cache.get("before").unwrap().is_stale());
    /// ```
    pub fn mark_stale_before(&self, before: SystemTime) -> usize {
        let before = to_unix_nanos(before);
        self.shards.iter().map(|shard| lock(shard).mark_stale_before(before)).sum()
    }

    /// Drops `key`; returns whether it was there. Counts an invalidation.
    pub fn invalidate<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        let removed = self.shard(hash).remove(hash, key);
        let found = removed.is_some();
        drop(removed);
        if found {
            self.report_one(Event::Invalidation, 1);
        }
        found
    }

    /// Drops every entry for which `predicate` returns true; returns how
    /// many went. O(n): visits every entry, one shard at a time.
    ///
    /// The predicate runs under a shard's lock: it must not use this cache.
    /// If it panics, the panic reaches the caller; the entries dropped until
    /// then stay dropped and counted, and the cache stays within its bounds
    /// and usable.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cache_core::{Cache, Policy};
    ///
    /// let cache = Cache::new(100, Policy::new(Duration::from_secs(60)));
    /// for i in 0..10_u32 {
    ///     cache.insert(i, i * 10);
    /// }
    /// assert_eq!(cache.invalidate_if(|_, v| *v >= 50), 5);
    /// assert_eq!(cache.len(), 5);
    /// ```
    pub fn invalidate_if(&self, mut predicate: impl FnMut(&K, &V) -> bool) -> usize {
        let mut pending = self.pending();
        let gone = self
            .shards
            .iter()
            .map(|shard| {
                lock(shard).remove_where(Event::Invalidation, &mut pending.events, |k, slot| predicate(k, &slot.value))
            })
            .sum();
        drop(pending);
        gone
    }

    /// Drops every entry whose key matches the glob `pattern` (Redis `MATCH`
    /// syntax, see [`glob`](crate::glob)); returns how many went.
    ///
    /// A pattern without wildcards drops one key in O(1); any other is O(n).
    ///
    /// # Errors
    ///
    /// A [`PatternError`] for a malformed pattern; nothing is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cache_core::{Cache, Policy};
    ///
    /// let cache = Cache::new(100, Policy::new(Duration::from_secs(60)));
    /// cache.insert("wallet:0xab01".to_owned(), 1);
    /// cache.insert("wallet:0xab02".to_owned(), 2);
    /// cache.insert("wallet:0xcd01".to_owned(), 3);
    /// assert_eq!(cache.invalidate_matching("wallet:0xab*").unwrap(), 2);
    /// assert!(cache.get("wallet:0xcd01").is_some());
    /// assert!(cache.invalidate_matching("wallet:[0x").is_err());
    /// ```
    pub fn invalidate_matching(&self, pattern: &str) -> Result<usize, PatternError>
    where
        K: Borrow<str>,
    {
        let pattern = Pattern::new(pattern)?;
        if pattern.is_literal() {
            // A literal pattern parses back to its own unescaped text; the
            // match is exact, so a direct removal is equivalent.
            let literal = unescape_literal(pattern.as_str());
            return Ok(usize::from(self.invalidate::<str>(&literal)));
        }
        Ok(self.invalidate_if(|k, _| pattern.matches(k.borrow())))
    }

    /// Drops every entry; returns how many went. Each counts as an
    /// invalidation.
    pub fn clear(&self) -> usize {
        self.invalidate_if(|_, _| true)
    }

    /// Drops every entry older than every window (see
    /// [`Policy::retention`]); returns how many went. Reads drop such entries
    /// lazily anyway; this is for reclaiming memory on a schedule.
    pub fn purge_expired(&self) -> usize {
        let now = self.now();
        let retain = self.windows.retain;
        let mut pending = self.pending();
        let gone = self
            .shards
            .iter()
            .map(|shard| {
                lock(shard).remove_where(Event::Expiration, &mut pending.events, |_, slot| {
                    now.saturating_sub(slot.stamp.fetched_at()) > retain
                })
            })
            .sum();
        drop(pending);
        gone
    }

    /// Calls `f` with every entry not yet dead (within
    /// [`Policy::retention`], the longer of the two stale windows past the
    /// TTL), one shard at a time, least recently used first within a shard.
    /// Touches neither recency nor counters. `f` runs under a shard's lock:
    /// keep it short and do not use this cache from it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cache_core::{Cache, Policy};
    ///
    /// let cache = Cache::new(10, Policy::new(Duration::from_secs(60)));
    /// cache.insert(1, "a");
    /// cache.insert(2, "b");
    /// let mut keys = Vec::new();
    /// cache.for_each(|k, entry| keys.push((*k, *entry.into_value())));
    /// keys.sort();
    /// assert_eq!(keys, [(1, "a"), (2, "b")]);
    /// ```
    pub fn for_each(&self, mut f: impl FnMut(&K, Entry<&V>)) {
        let now = self.now();
        let windows = self.windows;
        let epoch = self.half_life.epoch(now);
        for shard in &*self.shards {
            lock(shard).for_each(|k, slot| {
                let fetched_at = slot.stamp.fetched_at();
                let age = now.saturating_sub(fetched_at);
                if age <= windows.retain {
                    let fresh = age <= windows.fresh && !slot.stamp.is_marked();
                    let freshness = if fresh { Freshness::Fresh } else { Freshness::Stale };
                    let demand = slot.demand.at(epoch);
                    f(k, Entry::new(&slot.value, fetched_at, now, freshness).with_demand(demand));
                }
            });
        }
    }

    /// How many entries the cache holds, dead ones not yet dropped included.
    /// O(1), and never above the capacity: see [`stats`](Self::stats).
    pub fn len(&self) -> usize {
        self.bounds.len().min(self.capacity)
    }

    /// Whether the cache holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The total weight held: the sum of the weigher over every entry, or
    /// the entry count without a weigher. O(1), and never above the weight
    /// bound: see [`stats`](Self::stats).
    pub fn weight(&self) -> u64 {
        match self.max_weight {
            None => self.len() as u64,
            Some(max) => self.bounds.weight().min(max),
        }
    }

    /// Counters and sizes.
    ///
    /// The sizes (`len`, `weight`) are one instant's: they are read from the
    /// cache-wide counts that the bounds are kept with, never from the
    /// shards. An insert counts its entry before it evicts what that entry
    /// displaces, so while inserts are under way those counts can run over
    /// the bounds for a moment; the sizes are reported capped at the bounds,
    /// which is what the cache holds once those inserts finish. When no
    /// operation is under way they are exact.
    ///
    /// The event counters are summed shard by shard, each shard locked only
    /// while its counters are copied, so a call never holds more than one
    /// shard and never makes other threads wait for more than that copy.
    /// Under concurrent use they are therefore not one instant's: an event
    /// on a shard already read is left for the next call. Each counter only
    /// grows, and every event is counted exactly once across calls.
    pub fn stats(&self) -> CacheStats {
        let mut tally = Tally::default();
        for shard in &*self.shards {
            let shard_tally = lock(shard).tally;
            tally += &shard_tally;
        }
        let mut stats = CacheStats { len: self.len(), weight: self.weight(), ..CacheStats::default() };
        tally.add_to(&mut stats);
        stats
    }

    /// The maximum number of entries.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The bound on total weight, if a weigher was given.
    pub fn max_weight(&self) -> Option<u64> {
        self.max_weight
    }

    /// The time now by the cache's clock: what entry ages are measured
    /// against. A caller that holds values fetched elsewhere (a second
    /// tier) ages them by this clock too, so that both kinds of age agree.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cache_core::{Cache, Clock, ManualClock};
    ///
    /// let clock = ManualClock::starting_now();
    /// let cache: Cache<u8, u8> = Cache::builder(10).clock(clock.clone()).build();
    /// clock.advance(Duration::from_secs(5));
    /// assert_eq!(cache.current_time(), clock.now());
    /// ```
    pub fn current_time(&self) -> SystemTime {
        crate::clock::from_unix_nanos(self.clock.unix_nanos())
    }

    /// The freshness policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// How many shards the keys are spread over.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The clock's current reading, in nanoseconds since the epoch.
    #[inline]
    fn now(&self) -> u64 {
        self.clock.unix_nanos()
    }

    #[inline]
    fn shard(&self, hash: u64) -> ShardGuard<'_, Shard<K, V, S>> {
        // hashbrown indexes buckets with the low bits and tags them with the
        // top seven, so the shard is chosen from bits that neither uses.
        let index = (hash >> 32) as usize & self.shard_mask;
        lock(&self.shards[index])
    }

    /// Collects one operation's events for the observer.
    fn pending(&self) -> Pending<'_> {
        Pending { observer: self.observer.as_deref(), events: Tally::default() }
    }

    fn report_one(&self, event: Event, count: u64) {
        if let (Some(observer), 1..) = (&self.observer, count) {
            observer.record(event, count);
        }
    }
}

/// The parts of a cache that the builder hands over unchanged.
pub(crate) struct CacheParts<K, V, S> {
    pub(crate) hasher: S,
    pub(crate) policy: Policy,
    pub(crate) clock: ClockSource,
    pub(crate) observer: Option<Arc<dyn Observer>>,
    pub(crate) weigher: Option<crate::shard::Weigher<K, V>>,
    pub(crate) demand_half_life: std::time::Duration,
}

/// Events of one operation, told to the observer when this is dropped:
/// after the shard's lock is released (declare it before taking the lock),
/// and also when a caller's predicate or weigher panicked partway through,
/// so that the observer hears what happened before the panic, as the
/// shards' counters have it.
struct Pending<'a> {
    observer: Option<&'a dyn Observer>,
    events: Tally,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if let Some(observer) = self.observer {
            self.events.report(observer);
        }
    }
}

/// Locks a shard. A panic in a caller's predicate or weigher unwinds
/// through the guard and unlocks without poisoning; the shard keeps its
/// books in step with its map wherever caller code runs (see the `shard`
/// module), and its map never leaves an entry half moved, so the shard stays
/// consistent and the cache usable.
#[inline]
fn lock<T>(shard: &ShardLock<T>) -> ShardGuard<'_, T> {
    shard.lock()
}

/// The text a literal pattern matches: its source with escapes removed.
fn unescape_literal(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut chars = source.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl<K, V, S> fmt::Debug for Cache<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("capacity", &self.capacity)
            .field("max_weight", &self.max_weight)
            .field("shards", &self.shards.len())
            .field("policy", &self.policy)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}
