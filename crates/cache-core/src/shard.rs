//! One shard: an exact LRU over its share of the keys, behind one lock.
//!
//! The shard owns the bookkeeping that must change together with the map:
//! its weight and the event counts, and its part in the cache-wide
//! [`Bounds`] (every entry that enters or leaves is counted there too). Everything here runs under the
//! shard's lock and does no allocation of its own beyond the map's, so the
//! critical sections stay a few pointer updates long. Values that leave the
//! shard are handed back to the caller to drop after the lock is released.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use hashlink::LruCache;
use hashlink::linked_hash_map::RawEntryMut;

use crate::bounds::{Bounds, Excess};
use crate::policy::Windows;
use crate::stats::{Event, Tally};

/// Gives an entry its weight; see [`CacheBuilder::weigher`](crate::CacheBuilder::weigher).
pub(crate) type Weigher<K, V> = Arc<dyn Fn(&K, &V) -> u64 + Send + Sync>;

/// A value and when it was fetched, in nanoseconds since the Unix epoch.
#[derive(Debug)]
pub(crate) struct Slot<V> {
    pub(crate) value: V,
    pub(crate) fetched_at: u64,
}

pub(crate) struct Shard<K, V, S> {
    map: LruCache<K, Slot<V>, S>,
    weight: u64,
    bounds: Arc<Bounds>,
    weigher: Option<Weigher<K, V>>,
    windows: Windows,
    pub(crate) tally: Tally,
}

/// Which kind of read: they differ in how old an entry they serve, whether
/// they count, and whether they update recency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadMode {
    /// Serves within the stale-while-revalidate window; counts; touches.
    Get,
    /// Serves anything not yet dead; counts; touches.
    FailSafe,
    /// Serves within the stale-while-revalidate window; silent; no touch.
    Peek,
}

/// What [`Shard::read`] found.
pub(crate) struct Read<K, V> {
    /// The value, if it was servable under the read's mode.
    pub(crate) found: Option<Slot<V>>,
    /// A hit, a stale hit or a miss.
    pub(crate) event: Event,
    /// A dead entry the read dropped.
    pub(crate) expired: Option<(K, V)>,
}

/// Entries that left the shard during one operation, to be dropped after the
/// lock is released. The common case of one eviction needs no allocation.
pub(crate) struct Removed<K, V> {
    first: Option<(K, V)>,
    rest: Vec<(K, V)>,
}

impl<K, V> Removed<K, V> {
    pub(crate) const fn none() -> Self {
        Self { first: None, rest: Vec::new() }
    }

    fn push(&mut self, key: K, value: V) {
        if self.first.is_none() {
            self.first = Some((key, value));
        } else {
            self.rest.push((key, value));
        }
    }
}

impl<K, V, S> Shard<K, V, S>
where
    K: Hash + Eq,
    S: BuildHasher,
{
    pub(crate) fn new(hasher: S, weigher: Option<Weigher<K, V>>, windows: Windows, bounds: Arc<Bounds>) -> Self {
        Self {
            // The cache enforces its bounds across shards (so that it can
            // count each eviction and bound weight too); hashlink's own bound
            // stays off.
            map: LruCache::with_hasher(usize::MAX, hasher),
            weight: 0,
            bounds,
            weigher,
            windows,
            tally: Tally::default(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn weight(&self) -> u64 {
        self.weight
    }

    /// The weight of one entry: 1 without a weigher.
    #[inline]
    fn weigh(&self, key: &K, value: &V) -> u64 {
        self.weigher.as_ref().map_or(1, |w| w(key, value))
    }

    /// Looks `key` up as of `now` (nanoseconds since the epoch).
    ///
    /// Returns what was found and the event it counts as (a peek's event is
    /// not counted). A dead entry found on the way is removed, counted as an
    /// expiration and handed back to be dropped outside the lock.
    #[inline]
    pub(crate) fn read<Q>(&mut self, hash: u64, key: &Q, now: u64, mode: ReadMode) -> Read<K, V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        let limit = match mode {
            ReadMode::Get | ReadMode::Peek => self.windows.serve_stale,
            ReadMode::FailSafe => self.windows.retain,
        };
        let mut expired = None;
        let (found, event) = match self.map.raw_entry_mut().from_key_hashed_nocheck(hash, key) {
            RawEntryMut::Occupied(mut occupied) => {
                let slot = occupied.get();
                let age = now.saturating_sub(slot.fetched_at);
                if age <= limit {
                    let found = Slot { value: slot.value.clone(), fetched_at: slot.fetched_at };
                    let event = if age <= self.windows.fresh { Event::Hit } else { Event::StaleHit };
                    if mode != ReadMode::Peek {
                        occupied.to_back();
                    }
                    (Some(found), event)
                } else if age > self.windows.retain && mode != ReadMode::Peek {
                    let (k, slot) = occupied.remove_entry();
                    let weight = self.weigh(&k, &slot.value);
                    self.weight = self.weight.saturating_sub(weight);
                    self.bounds.release(1, weight);
                    self.tally.add(Event::Expiration, 1);
                    expired = Some((k, slot.value));
                    (None, Event::Miss)
                } else {
                    (None, Event::Miss)
                }
            }
            RawEntryMut::Vacant(_) => (None, Event::Miss),
        };
        if mode != ReadMode::Peek {
            self.tally.add(event, 1);
        }
        Read { found, event, expired }
    }

    /// Whether the shard holds `key` fetched at `fetched_at` or later. A
    /// plain lookup: no recency update, nothing counted.
    #[inline]
    pub(crate) fn holds_newer(&self, hash: u64, key: &K, fetched_at: u64) -> bool {
        self.map.raw_entry().from_key_hashed_nocheck(hash, key).is_some_and(|(_, slot)| slot.fetched_at >= fetched_at)
    }

    /// Stores `value` under `key`, then evicts from this shard's least
    /// recently used end whatever the insert took the cache over its
    /// [`Bounds`] by (possibly the new entry itself, if this shard holds too
    /// little else). `now` tells evicted entries that were already dead
    /// (counted as expirations) from live ones. Returns the events the insert
    /// caused.
    pub(crate) fn insert(
        &mut self,
        hash: u64,
        key: K,
        value: V,
        fetched_at: u64,
        now: u64,
        removed: &mut Removed<K, V>,
    ) -> Tally {
        let mut events = Tally::default();
        let weight = self.weigh(&key, &value);
        if weight > self.bounds.max_weight() {
            // It could never fit: storing it would flush the cache and then
            // evict it anyway. Drop it, and any older value it replaces, since
            // serving that older value would be wrong.
            if let Some((k, old)) = self.map.remove_entry(&key) {
                let old_weight = self.weigh(&k, &old.value);
                self.weight = self.weight.saturating_sub(old_weight);
                self.bounds.release(1, old_weight);
                removed.push(k, old.value);
            }
            removed.push(key, value);
            events.add(Event::Eviction, 1);
            self.tally += &events;
            return events;
        }
        events.add(Event::Insertion, 1);
        let slot = Slot { value, fetched_at };
        let mut excess = match self.map.raw_entry_mut().from_key_hashed_nocheck(hash, &key) {
            RawEntryMut::Occupied(mut occupied) => {
                let old = std::mem::replace(occupied.get_mut(), slot);
                occupied.to_back();
                let old_weight = self.weigh(&key, &old.value);
                removed.push(key, old.value);
                self.weight = self.weight.saturating_sub(old_weight).saturating_add(weight);
                if weight >= old_weight {
                    self.bounds.grow(weight - old_weight)
                } else {
                    self.bounds.shrink(old_weight - weight);
                    Excess::default()
                }
            }
            RawEntryMut::Vacant(vacant) => {
                let excess = self.bounds.reserve(weight);
                vacant.insert_hashed_nocheck(hash, key, slot);
                self.weight = self.weight.saturating_add(weight);
                excess
            }
        };
        while !excess.is_none() {
            let Some((k, old)) = self.map.remove_lru() else {
                break;
            };
            let dead = now.saturating_sub(old.fetched_at) > self.windows.retain;
            events.add(if dead { Event::Expiration } else { Event::Eviction }, 1);
            let old_weight = self.weigh(&k, &old.value);
            self.weight = self.weight.saturating_sub(old_weight);
            self.bounds.release(1, old_weight);
            excess = excess.after_evicting(old_weight);
            removed.push(k, old.value);
        }
        self.tally += &events;
        events
    }

    /// Removes `key`, counting an invalidation if it was there.
    pub(crate) fn remove<Q>(&mut self, hash: u64, key: &Q) -> Option<(K, V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self.map.raw_entry_mut().from_key_hashed_nocheck(hash, key) {
            RawEntryMut::Occupied(occupied) => {
                let (k, slot) = occupied.remove_entry();
                let weight = self.weigh(&k, &slot.value);
                self.weight = self.weight.saturating_sub(weight);
                self.bounds.release(1, weight);
                self.tally.add(Event::Invalidation, 1);
                Some((k, slot.value))
            }
            RawEntryMut::Vacant(_) => None,
        }
    }

    /// Drops every entry for which `drop_it` says so, counting each as
    /// `event`; returns how many went.
    pub(crate) fn remove_where(&mut self, event: Event, mut drop_it: impl FnMut(&K, &Slot<V>) -> bool) -> usize {
        let before = self.map.len();
        let mut weight = self.weight;
        let weigher = self.weigher.as_ref();
        self.map.retain(|k, slot| {
            let go = drop_it(k, slot);
            if go {
                weight = weight.saturating_sub(weigher.map_or(1, |w| w(k, &slot.value)));
            }
            !go
        });
        let gone = before - self.map.len();
        self.bounds.release(gone, self.weight - weight);
        self.weight = weight;
        self.tally.add(event, gone as u64);
        gone
    }

    /// Visits entries from least to most recently used.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&K, &Slot<V>)) {
        for (k, slot) in &self.map {
            f(k, slot);
        }
    }
}
