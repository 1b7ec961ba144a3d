//! One shard: an exact LRU over its share of the keys, behind one lock.
//!
//! The shard owns the bookkeeping that must change together with the map:
//! its weight and the event counts, and its part in the cache-wide
//! [`Bounds`] (every entry that enters or leaves is counted there too).
//! Everything here runs under the shard's lock and does no allocation of
//! its own beyond the map's, so the critical sections stay a few index
//! updates long. Values that leave the shard are handed back to the caller
//! to drop after the lock is released.
//!
//! The caller's code (a weigher, an `invalidate_if` predicate, a glob) runs
//! under that lock and may panic, and the lock does not poison: the shard
//! must be as consistent after an unwind as after a return. So every call
//! into caller code happens at a point where the books match the map: an
//! entry is weighed *before* it is taken out or replaced, and the
//! bookkeeping for a change is done in the same step as the change, with no
//! caller code in between. A weigher that panics while an insert is
//! evicting for room leaves the new entry stored over the bounds; a guard
//! ([`UndoInsert`]) then takes it out again.
//!
//! Every entry carries a [`Stamp`]: when its value was fetched, and whether
//! the owner has marked it stale (see `Cache::mark_stale_before`). The mark
//! only changes what a read calls the entry (stale, never fresh); every
//! window, eviction and purge goes by the real `fetched_at`, so an entry's
//! age never lies. A store of a new entry always starts unmarked, and a mark
//! touches neither recency nor the counters.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use crate::bounds::{Bounds, Excess};
use crate::demand::{Demand, HalfLife};
use crate::lru_table::LruTable;
use crate::policy::Windows;
use crate::stats::{Event, Tally};

/// Gives an entry its weight; see [`CacheBuilder::weigher`](crate::CacheBuilder::weigher).
pub(crate) type Weigher<K, V> = Arc<dyn Fn(&K, &V) -> u64 + Send + Sync>;

/// A value, when it was fetched and whether it is marked stale, and how
/// much it has been read lately.
#[derive(Debug)]
pub(crate) struct Slot<V> {
    pub(crate) value: V,
    pub(crate) stamp: Stamp,
    /// Counts the reads that touch the entry (`Get` and `FailSafe`), and
    /// survives the value's replacement: a refresh does not make a wallet
    /// in demand look cold.
    pub(crate) demand: Demand,
}

/// When a value was fetched, in nanoseconds since the Unix epoch, and
/// whether it is marked stale until replaced, in one `u64` so that the mark
/// makes no entry larger: the mark is the top bit, the time the rest.
///
/// Nanoseconds since 1970 stay below 2^63 until April 2262; a later time is
/// stored as the last instant below the bit, so such an entry reads as
/// fetched then (and ages as the clock moves past it) instead of wrapping or
/// reading as marked. The bits are private: read them through the methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp(u64);

impl Stamp {
    const MARK: u64 = 1 << 63;
    /// The latest time a stamp holds; later ones saturate to it.
    const LATEST: u64 = Self::MARK - 1;

    /// An unmarked stamp for a value fetched at `fetched_at`.
    #[inline]
    pub(crate) const fn new(fetched_at: u64) -> Self {
        Self(if fetched_at > Self::LATEST { Self::LATEST } else { fetched_at })
    }

    /// When the value was fetched, the mark left out.
    #[inline]
    pub(crate) const fn fetched_at(self) -> u64 {
        self.0 & Self::LATEST
    }

    /// Whether the value is marked stale until replaced.
    #[inline]
    pub(crate) const fn is_marked(self) -> bool {
        self.0 & Self::MARK != 0
    }

    /// The same time, marked.
    #[inline]
    pub(crate) const fn marked(self) -> Self {
        Self(self.0 | Self::MARK)
    }
}

pub(crate) struct Shard<K, V, S> {
    map: LruTable<K, Slot<V>, S>,
    weight: u64,
    bounds: Arc<Bounds>,
    weigher: Option<Weigher<K, V>>,
    windows: Windows,
    half_life: HalfLife,
    pub(crate) tally: Tally,
}

/// Which kind of read: they differ in how old an entry they serve, whether
/// they count, and whether they update recency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadMode {
    /// Serves within the stale-while-revalidate window; counts; touches.
    Get,
    /// Serves within the stale-if-error window; counts; touches.
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
    pub(crate) fn new(
        hasher: S,
        weigher: Option<Weigher<K, V>>,
        windows: Windows,
        half_life: HalfLife,
        bounds: Arc<Bounds>,
    ) -> Self {
        Self {
            // The cache enforces its bounds across shards (so that it can
            // count each eviction and bound weight too): the map only
            // orders.
            map: LruTable::with_hasher(hasher),
            weight: 0,
            bounds,
            weigher,
            windows,
            half_life,
            tally: Tally::default(),
        }
    }

    /// Counts `n` of `event` in the shard's tally and the operation's.
    #[inline]
    fn count(&mut self, events: &mut Tally, event: Event, n: u64) {
        self.tally.add(event, n);
        events.add(event, n);
    }

    /// Books an entry of `weight` as gone from the shard and the cache.
    #[inline]
    fn forget(&mut self, weight: u64) {
        self.weight = self.weight.saturating_sub(weight);
        self.bounds.release(1, weight);
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
            ReadMode::FailSafe => self.windows.fail_safe,
        };
        let mut expired = None;
        let (found, event) = match self.map.find(hash, key) {
            Some(at) => {
                let (k, slot) = self.map.get(at);
                let age = now.saturating_sub(slot.stamp.fetched_at());
                if age <= limit {
                    let mut found = Slot { value: slot.value.clone(), stamp: slot.stamp, demand: slot.demand };
                    let fresh = age <= self.windows.fresh && !slot.stamp.is_marked();
                    let event = if fresh { Event::Hit } else { Event::StaleHit };
                    if mode != ReadMode::Peek {
                        // A plain store under the lock the read holds anyway:
                        // no atomic, no second lookup. A peek leaves it, and
                        // the caller decays what it found to now.
                        let demand = &mut self.map.get_mut(at).demand;
                        demand.bump(self.half_life.epoch(now));
                        found.demand = *demand;
                        self.map.touch(at);
                    }
                    (Some(found), event)
                } else if age > self.windows.retain && mode != ReadMode::Peek {
                    // Weighed while still in place: see the module's docs.
                    let weight = weigh(self.weigher.as_ref(), k, &slot.value);
                    if let Some((k, slot)) = self.map.remove(hash, at) {
                        self.forget(weight);
                        self.tally.add(Event::Expiration, 1);
                        expired = Some((k, slot.value));
                    }
                    (None, Event::Miss)
                } else {
                    (None, Event::Miss)
                }
            }
            None => (None, Event::Miss),
        };
        if mode != ReadMode::Peek {
            self.tally.add(event, 1);
        }
        Read { found, event, expired }
    }

    /// Whether the shard holds an entry for `key` that an entry fetched at
    /// `fetched_at` must not replace: one fetched later, or at the same time
    /// and not marked stale (a marked one is confirmed by a value of the
    /// same time). A plain lookup: no recency update, nothing counted.
    #[inline]
    pub(crate) fn holds_newer(&self, hash: u64, key: &K, fetched_at: u64) -> bool {
        let fetched_at = Stamp::new(fetched_at).fetched_at();
        self.map.find(hash, key).is_some_and(|at| {
            let slot = self.map.get(at).1;
            let held = slot.stamp.fetched_at();
            held > fetched_at || (held == fetched_at && !slot.stamp.is_marked())
        })
    }

    /// Marks stale every entry fetched strictly before `before`; returns how
    /// many were not marked already. Leaves recency and the counters alone.
    ///
    /// `before` is not saturated as a stamp's time is: an entry stored at
    /// the latest time a stamp holds is marked by any later `before`, which
    /// errs towards one revalidation too many rather than one too few.
    pub(crate) fn mark_stale_before(&mut self, before: u64) -> usize {
        let mut marked = 0;
        for slot in self.map.values_mut() {
            if slot.stamp.fetched_at() < before && !slot.stamp.is_marked() {
                slot.stamp = slot.stamp.marked();
                marked += 1;
            }
        }
        marked
    }

    /// Stores `value` under `key`, then evicts from this shard's least
    /// recently used end whatever the insert took the cache over its
    /// [`Bounds`] by (possibly the new entry itself, if this shard holds too
    /// little else). `now` tells evicted entries that were already dead
    /// (counted as expirations) from live ones. The events the insert caused
    /// are added to `events` as they happen, so that a panicking weigher
    /// leaves them counted too.
    #[expect(clippy::too_many_arguments, reason = "the hot path; a struct of arguments would only be unpacked again")]
    pub(crate) fn insert(
        &mut self,
        hash: u64,
        key: K,
        value: V,
        fetched_at: u64,
        now: u64,
        removed: &mut Removed<K, V>,
        events: &mut Tally,
    ) {
        let weight = weigh(self.weigher.as_ref(), &key, &value);
        if weight > self.bounds.max_weight() {
            // It could never fit: storing it would flush the cache and then
            // evict it anyway. Drop it, and any older value it replaces, since
            // serving that older value would be wrong.
            if let Some(at) = self.map.find(hash, &key) {
                let (k, old) = self.map.get(at);
                let old_weight = weigh(self.weigher.as_ref(), k, &old.value);
                if let Some((k, old)) = self.map.remove(hash, at) {
                    self.forget(old_weight);
                    removed.push(k, old.value);
                }
            }
            removed.push(key, value);
            self.count(events, Event::Eviction, 1);
            return;
        }
        let mut slot = Slot { value, stamp: Stamp::new(fetched_at), demand: Demand::new(self.half_life.epoch(now)) };
        let excess = if let Some(at) = self.map.find(hash, &key) {
            let (k, old) = self.map.get(at);
            let old_weight = weigh(self.weigher.as_ref(), k, &old.value);
            // A new value for the same key: the reads it answers are the
            // same demand.
            slot.demand = old.demand;
            let old = std::mem::replace(self.map.get_mut(at), slot);
            self.map.touch(at);
            removed.push(key, old.value);
            self.weight = self.weight.saturating_sub(old_weight).saturating_add(weight);
            if weight >= old_weight {
                self.bounds.grow(weight - old_weight)
            } else {
                self.bounds.shrink(old_weight - weight);
                Excess::default()
            }
        } else {
            if self.map.is_full() {
                // The map's indices are spent: this shard makes room
                // for the new entry itself, before reserving it.
                self.evict(Excess { entries: 1, weight: 0 }, now, removed, events);
            }
            let excess = self.bounds.reserve(weight);
            self.map.push_back(hash, key, slot);
            self.weight = self.weight.saturating_add(weight);
            excess
        };
        self.count(events, Event::Insertion, 1);
        if !excess.is_none() {
            let mut undo = UndoInsert { shard: self, hash, weight, events, finished: false };
            undo.shard.evict(excess, now, removed, undo.events);
            undo.finished = true;
        }
    }

    /// Evicts from the least recently used end until `excess` is made up or
    /// the shard is empty.
    #[inline]
    fn evict(&mut self, mut excess: Excess, now: u64, removed: &mut Removed<K, V>, events: &mut Tally) {
        while !excess.is_none() {
            // Weighed while still in place, so that a weigher that panics
            // leaves the entry stored and counted.
            let old_weight = match &self.weigher {
                None => 1,
                Some(weigher) => match self.map.front() {
                    Some(at) => {
                        let (k, old) = self.map.get(at);
                        weigher(k, &old.value)
                    }
                    None => break,
                },
            };
            let Some((k, old)) = self.map.remove_front() else {
                break;
            };
            self.forget(old_weight);
            let dead = now.saturating_sub(old.stamp.fetched_at()) > self.windows.retain;
            self.count(events, if dead { Event::Expiration } else { Event::Eviction }, 1);
            excess = excess.after_evicting(old_weight);
            removed.push(k, old.value);
        }
    }

    /// Removes `key`, counting an invalidation if it was there.
    pub(crate) fn remove<Q>(&mut self, hash: u64, key: &Q) -> Option<(K, V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let at = self.map.find(hash, key)?;
        let (k, slot) = self.map.get(at);
        let weight = weigh(self.weigher.as_ref(), k, &slot.value);
        let (k, slot) = self.map.remove(hash, at)?;
        self.forget(weight);
        self.tally.add(Event::Invalidation, 1);
        Some((k, slot.value))
    }

    /// Drops every entry for which `drop_it` says so, counting each as
    /// `event` in the shard's tally and in `events`; returns how many went.
    ///
    /// The map drops an entry as soon as the closure given to `retain` says
    /// so, before it calls the closure for the next; each is booked in that
    /// same step, so if `drop_it` (or the weigher) panics partway, every
    /// entry gone so far is counted and every entry left is still booked.
    pub(crate) fn remove_where(
        &mut self,
        event: Event,
        events: &mut Tally,
        mut drop_it: impl FnMut(&K, &Slot<V>) -> bool,
    ) -> usize {
        let Self { map, weight, bounds, weigher, tally, .. } = self;
        let mut gone = 0;
        map.retain(|k, slot| {
            if !drop_it(k, slot) {
                return true;
            }
            let w = weigh(weigher.as_ref(), k, &slot.value);
            *weight = weight.saturating_sub(w);
            bounds.release(1, w);
            tally.add(event, 1);
            events.add(event, 1);
            gone += 1;
            false
        });
        gone
    }

    /// Visits entries from least to most recently used.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&K, &Slot<V>)) {
        for (k, slot) in self.map.iter() {
            f(k, slot);
        }
    }
}

/// The weight of one entry: 1 without a weigher.
#[inline]
fn weigh<K, V>(weigher: Option<&Weigher<K, V>>, key: &K, value: &V) -> u64 {
    weigher.map_or(1, |w| w(key, value))
}

/// Takes an insert's new entry out again if the evictions it needed did not
/// finish, which only a panicking weigher can cause: without this, the cache
/// would hold more than its bounds until the next insert made up for it.
///
/// The new entry is the shard's most recently used (evictions take from the
/// other end), unless the evictions took it too, which leaves the shard
/// empty. It is taken out under the hash it was stored with, so that no
/// caller code runs here, in the middle of an unwind.
struct UndoInsert<'a, K, V, S>
where
    K: Hash + Eq,
    S: BuildHasher,
{
    shard: &'a mut Shard<K, V, S>,
    hash: u64,
    weight: u64,
    events: &'a mut Tally,
    finished: bool,
}

impl<K, V, S> Drop for UndoInsert<'_, K, V, S>
where
    K: Hash + Eq,
    S: BuildHasher,
{
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let shard = &mut *self.shard;
        let Some(newest) = shard.map.back() else {
            return;
        };
        if let Some(entry) = shard.map.remove(self.hash, newest) {
            drop(entry);
            shard.forget(self.weight);
            shard.count(self.events, Event::Eviction, 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_makes_no_entry_larger() {
        assert_eq!(size_of::<Stamp>(), size_of::<u64>());
        assert_eq!(size_of::<Slot<Arc<u8>>>(), size_of::<(Arc<u8>, u64, Demand)>());
        assert_eq!(size_of::<Slot<u64>>(), size_of::<(u64, u64, Demand)>());
    }

    #[test]
    fn demand_adds_at_most_eight_bytes_to_a_slot() {
        assert_eq!(size_of::<Slot<u64>>(), 24);
        assert_eq!(size_of::<Slot<Arc<u8>>>(), 24);
    }

    #[test]
    fn a_stamp_keeps_its_time_apart_from_its_mark() {
        let t = 1_700_000_000_123_456_789;
        let stamp = Stamp::new(t);
        assert!(!stamp.is_marked());
        assert_eq!(stamp.fetched_at(), t);
        let marked = stamp.marked();
        assert!(marked.is_marked());
        assert_eq!(marked.fetched_at(), t, "marking leaves the time alone");
        assert_eq!(marked.marked(), marked);
        assert_eq!(Stamp::new(0).marked().fetched_at(), 0);
    }

    #[test]
    fn a_shard_whose_map_is_full_evicts_its_oldest_for_a_new_key() {
        let bounds = Arc::new(Bounds::new(100, None));
        let windows = Windows { fresh: 10, serve_stale: 10, fail_safe: 10, retain: 10 };
        let hasher = std::hash::BuildHasherDefault::<std::hash::DefaultHasher>::default();
        let half_life = HalfLife::from_nanos(10);
        let mut shard: Shard<u32, u32, _> = Shard::new(hasher.clone(), None, windows, half_life, Arc::clone(&bounds));
        shard.map = LruTable::with_limit(hasher.clone(), 2);
        let (mut removed, mut events) = (Removed::none(), Tally::default());
        for k in 1..=3 {
            shard.insert(hasher.hash_one(k), k, k, 0, 0, &mut removed, &mut events);
        }
        let mut held = Vec::new();
        shard.for_each(|k, _| held.push(*k));
        assert_eq!(held, [2, 3], "the least recently used entry made room");
        assert_eq!(removed.first.map(|(k, _)| k), Some(1));
        assert_eq!((bounds.len(), events.get(Event::Insertion), events.get(Event::Eviction)), (2, 3, 1));
        // A key it holds is replaced in place, evicting nothing.
        shard.insert(hasher.hash_one(2), 2, 20, 0, 0, &mut removed, &mut events);
        assert_eq!((bounds.len(), events.get(Event::Eviction)), (2, 1));
    }

    #[test]
    fn times_past_the_mark_bit_saturate_below_it() {
        for t in [Stamp::LATEST, Stamp::LATEST + 1, u64::MAX] {
            let stamp = Stamp::new(t);
            assert!(!stamp.is_marked(), "{t} must not read as marked");
            assert_eq!(stamp.fetched_at(), Stamp::LATEST);
            assert_eq!(stamp.marked().fetched_at(), Stamp::LATEST);
        }
    }
}
