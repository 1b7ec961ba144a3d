//! The cache-wide bounds on entries and weight, which every shard enforces
//! together.
//!
//! Splitting the capacity evenly over the shards would make a sharded cache
//! start evicting before it is full: keys never spread perfectly evenly, so
//! the fullest shard reaches its share first (with 16 shards of 125, at
//! about 1,700 of 2,000 entries). Instead the totals are counted across
//! shards, and an insert that takes the cache past a bound evicts from its
//! own shard's least recently used end until the cache is within it.
//!
//! An insert *reserves* its entry and weight in the totals before it stores
//! anything, and evicts exactly what its reservation put over the bound,
//! all under its shard's lock. So the entries stored are within the bounds
//! whenever no insert is under way, even after several ran at once on
//! different shards; at worst concurrent inserts evict a little more than
//! strictly needed. While inserts are under way the totals run over by
//! their reservations (one entry each, for the moment between reserving and
//! evicting); [`Cache::stats`](crate::Cache::stats) reads the totals capped
//! at the bounds, which is what the cache holds once they finish.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Entries and weight held across all shards, and their limits.
#[derive(Debug)]
pub(crate) struct Bounds {
    capacity: usize,
    /// `None` without a weigher: then every entry weighs 1 and the weight
    /// bound is the capacity, so the weight is not counted at all (two
    /// fewer atomic operations per insert).
    max_weight: Option<u64>,
    len: AtomicUsize,
    weight: AtomicU64,
}

/// What an insert must evict to stay within the bounds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Excess {
    pub(crate) entries: usize,
    pub(crate) weight: u64,
}

impl Excess {
    pub(crate) fn is_none(self) -> bool {
        self.entries == 0 && self.weight == 0
    }

    /// What is left after evicting one entry of `weight`.
    pub(crate) fn after_evicting(self, weight: u64) -> Self {
        Self { entries: self.entries.saturating_sub(1), weight: self.weight.saturating_sub(weight) }
    }
}

impl Bounds {
    pub(crate) fn new(capacity: usize, max_weight: Option<u64>) -> Self {
        Self { capacity, max_weight, len: AtomicUsize::new(0), weight: AtomicU64::new(0) }
    }

    /// The weight bound; unbounded without a weigher.
    pub(crate) fn max_weight(&self) -> u64 {
        self.max_weight.unwrap_or(u64::MAX)
    }

    /// Entries counted now, reservations of inserts under way included.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Weight counted now, as [`len`](Self::len); the entry count without a
    /// weigher.
    pub(crate) fn weight(&self) -> u64 {
        match self.max_weight {
            None => self.len() as u64,
            Some(_) => self.weight.load(Ordering::Acquire),
        }
    }

    /// Counts a new entry of `weight`; returns what it takes the cache over
    /// the bounds by.
    pub(crate) fn reserve(&self, weight: u64) -> Excess {
        let len = self.len.fetch_add(1, Ordering::AcqRel) + 1;
        let entries = len.saturating_sub(self.capacity);
        match self.max_weight {
            None => Excess { entries, weight: 0 },
            Some(max) => {
                let total = self.weight.fetch_add(weight, Ordering::AcqRel).saturating_add(weight);
                Excess { entries, weight: total.saturating_sub(max) }
            }
        }
    }

    /// Counts an entry's weight growing by `by` (a replaced value); returns
    /// what that takes the cache over the weight bound by.
    pub(crate) fn grow(&self, by: u64) -> Excess {
        match self.max_weight {
            None => Excess::default(),
            Some(max) => {
                let total = self.weight.fetch_add(by, Ordering::AcqRel).saturating_add(by);
                Excess { entries: 0, weight: total.saturating_sub(max) }
            }
        }
    }

    /// Counts an entry's weight shrinking by `by`.
    pub(crate) fn shrink(&self, by: u64) {
        if self.max_weight.is_some() {
            self.weight.fetch_sub(by, Ordering::AcqRel);
        }
    }

    /// Counts `entries` entries of `weight` in all leaving the cache.
    pub(crate) fn release(&self, entries: usize, weight: u64) {
        self.len.fetch_sub(entries, Ordering::AcqRel);
        self.shrink(weight);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_weigher_only_entries_are_bounded() {
        let bounds = Bounds::new(1, None);
        assert!(bounds.reserve(1).is_none());
        assert_eq!(bounds.reserve(1), Excess { entries: 1, weight: 0 });
        assert!(bounds.grow(u64::MAX).is_none());
        assert_eq!(bounds.max_weight(), u64::MAX);
    }

    #[test]
    fn reservations_report_the_excess_and_releases_undo_them() {
        let bounds = Bounds::new(2, Some(100));
        assert!(bounds.reserve(40).is_none());
        assert!(bounds.reserve(40).is_none());
        assert_eq!(bounds.reserve(40), Excess { entries: 1, weight: 20 });
        bounds.release(1, 40);
        assert_eq!(bounds.grow(30), Excess { entries: 0, weight: 10 });
        bounds.shrink(30);
        bounds.release(2, 80);
        assert!(bounds.reserve(100).is_none());
        assert_eq!(Excess { entries: 2, weight: 50 }.after_evicting(60), Excess { entries: 1, weight: 0 });
    }
}
