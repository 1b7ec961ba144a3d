//! A one-shard cache checked against a plain model of an LRU with staleness
//! windows, over random sequences of operations and clock advances.
//!
//! The model is deliberately naive (a vector in recency order, linear
//! searches) so that it is obviously right; the cache must agree with it on
//! every returned value, freshness and age, on its length, and on every
//! counter. Entries may be marked stale until replaced
//! (`Cache::mark_stale_before`), and the model carries that mark too. It runs under stale windows of both orders (stale-if-error
//! longer than stale-while-revalidate, and shorter, down to zero), since each
//! read has a window of its own.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cache_core::{Cache, CacheStats, Freshness, ManualClock, Policy};
use proptest::prelude::*;

const CAPACITY: usize = 4;
const TTL: u64 = 10;

#[derive(Debug, Clone)]
enum Op {
    Insert(u8, u32),
    /// Insert with `fetched_at` this many seconds before now (negative: ahead).
    InsertAt(u8, u32, i64),
    /// Like `InsertAt`, but only over an entry fetched earlier (or none), or
    /// at the same time and marked.
    InsertIfNewer(u8, u32, i64),
    /// `InsertIfNewer` with the held entry's own `fetched_at` (now if none):
    /// confirms a marked entry, leaves an unmarked one.
    Confirm(u8, u32),
    /// Marks entries fetched before this many seconds before now (negative:
    /// ahead).
    MarkStaleBefore(i64),
    Get(u8),
    GetFailSafe(u8),
    Peek(u8),
    Invalidate(u8),
    InvalidateIfValueBelow(u32),
    PurgeExpired,
    Clear,
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0_u8..8;
    prop_oneof![
        4 => (key.clone(), any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
        2 => (key.clone(), any::<u32>(), -5_i64..40).prop_map(|(k, v, s)| Op::InsertAt(k, v, s)),
        2 => (key.clone(), any::<u32>(), -5_i64..40).prop_map(|(k, v, s)| Op::InsertIfNewer(k, v, s)),
        2 => (key.clone(), any::<u32>()).prop_map(|(k, v)| Op::Confirm(k, v)),
        2 => (-5_i64..30).prop_map(Op::MarkStaleBefore),
        5 => key.clone().prop_map(Op::Get),
        2 => key.clone().prop_map(Op::GetFailSafe),
        2 => key.clone().prop_map(Op::Peek),
        1 => key.prop_map(Op::Invalidate),
        1 => any::<u32>().prop_map(Op::InvalidateIfValueBelow),
        1 => Just(Op::PurgeExpired),
        1 => Just(Op::Clear),
        3 => (0_u64..12).prop_map(Op::Advance),
    ]
}

/// An entry of the model: key, value, `fetched_at` and whether it is marked
/// stale.
type ModelEntry = (u8, u32, u64, bool);

/// The obviously correct version: entries least recently used first.
#[derive(Debug, Default)]
struct Model {
    now: u64,
    /// `get` serves up to this age: the TTL plus stale-while-revalidate.
    serve_stale: u64,
    /// `get_fail_safe` serves up to this age: the TTL plus stale-if-error.
    fail_safe: u64,
    entries: Vec<ModelEntry>,
    stats: CacheStats,
}

/// What a read returned: value, freshness and age in seconds.
type Read = Option<(u32, Freshness, u64)>;

impl Model {
    /// Past this age an entry is dead: the longer window's end.
    fn retain(&self) -> u64 {
        self.serve_stale.max(self.fail_safe)
    }

    fn position(&self, k: u8) -> Option<usize> {
        self.entries.iter().position(|e| e.0 == k)
    }

    fn age(&self, fetched_at: u64) -> u64 {
        self.now.saturating_sub(fetched_at)
    }

    fn insert(&mut self, k: u8, v: u32, fetched_at: u64) {
        self.stats.insertions += 1;
        if let Some(i) = self.position(k) {
            self.entries.remove(i);
        }
        self.entries.push((k, v, fetched_at, false));
        while self.entries.len() > CAPACITY {
            let (_, _, fetched, _) = self.entries.remove(0);
            if self.age(fetched) > self.retain() {
                self.stats.expirations += 1;
            } else {
                self.stats.evictions += 1;
            }
        }
    }

    fn read(&mut self, k: u8, limit: u64, counted: bool) -> Read {
        let Some(i) = self.position(k) else {
            self.stats.misses += u64::from(counted);
            return None;
        };
        let (_, v, fetched, marked) = self.entries[i];
        let age = self.age(fetched);
        if age <= limit {
            let freshness = if age <= TTL && !marked { Freshness::Fresh } else { Freshness::Stale };
            if counted {
                if freshness == Freshness::Fresh {
                    self.stats.hits += 1;
                } else {
                    self.stats.stale_hits += 1;
                }
                let e = self.entries.remove(i);
                self.entries.push(e);
            }
            return Some((v, freshness, age));
        }
        if counted {
            self.stats.misses += 1;
            if age > self.retain() {
                self.entries.remove(i);
                self.stats.expirations += 1;
            }
        }
        None
    }

    /// Whether the held entry for `k` stays over one fetched at `fetched_at`
    /// offered to `insert_if_newer`.
    fn holds_newer(&self, k: u8, fetched_at: u64) -> bool {
        self.position(k).is_some_and(|i| {
            let (_, _, held, marked) = self.entries[i];
            held > fetched_at || (held == fetched_at && !marked)
        })
    }

    fn insert_if_newer(&mut self, k: u8, v: u32, fetched_at: u64) -> bool {
        if self.holds_newer(k, fetched_at) {
            return false;
        }
        self.insert(k, v, fetched_at);
        true
    }

    fn mark_stale_before(&mut self, before: u64) -> usize {
        let mut marked = 0;
        for e in &mut self.entries {
            if e.2 < before && !e.3 {
                e.3 = true;
                marked += 1;
            }
        }
        marked
    }

    fn remove_where(&mut self, mut go: impl FnMut(&ModelEntry) -> bool) -> usize {
        let before = self.entries.len();
        self.entries.retain(|e| !go(e));
        before - self.entries.len()
    }
}

fn read(entry: Option<cache_core::Entry<u32>>) -> Read {
    entry.map(|e| (*e.value(), e.freshness(), e.age().as_secs()))
}

fn secs(t: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(t)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn one_shard_cache_matches_the_model(
        (swr, sie) in prop_oneof![Just((5_u64, 20_u64)), Just((20, 5)), Just((20, 0))],
        ops in prop::collection::vec(op(), 1..120),
    ) {
        let start = 1_000_000;
        let clock = ManualClock::new(secs(start));
        let policy = Policy::new(Duration::from_secs(TTL))
            .stale_while_revalidate(Duration::from_secs(swr))
            .stale_if_error(Duration::from_secs(sie));
        let cache: Cache<u8, u32> = Cache::builder(CAPACITY).shards(1).policy(policy).clock(clock.clone()).build();
        let mut model = Model { now: start, serve_stale: TTL + swr, fail_safe: TTL + sie, ..Model::default() };
        let (serve_stale, fail_safe, retain) = (model.serve_stale, model.fail_safe, model.retain());

        for op in ops {
            match op {
                Op::Insert(k, v) => {
                    cache.insert(k, v);
                    model.insert(k, v, model.now);
                }
                Op::InsertAt(k, v, ago) => {
                    let fetched_at = model.now.saturating_add_signed(-ago);
                    cache.insert_at(k, v, secs(fetched_at));
                    model.insert(k, v, fetched_at);
                }
                Op::InsertIfNewer(k, v, ago) => {
                    let fetched_at = model.now.saturating_add_signed(-ago);
                    let stored = model.insert_if_newer(k, v, fetched_at);
                    prop_assert_eq!(cache.insert_if_newer(k, v, secs(fetched_at)), stored, "insert_if_newer({})", k);
                }
                Op::Confirm(k, v) => {
                    let fetched_at = model.position(k).map_or(model.now, |i| model.entries[i].2);
                    let stored = model.insert_if_newer(k, v, fetched_at);
                    prop_assert_eq!(cache.insert_if_newer(k, v, secs(fetched_at)), stored, "confirm({})", k);
                }
                Op::MarkStaleBefore(ago) => {
                    let before = model.now.saturating_add_signed(-ago);
                    let expected = model.mark_stale_before(before);
                    prop_assert_eq!(cache.mark_stale_before(secs(before)), expected, "mark_stale_before({})", before);
                }
                Op::Get(k) => prop_assert_eq!(read(cache.get(&k)), model.read(k, serve_stale, true), "get({})", k),
                Op::GetFailSafe(k) => {
                    prop_assert_eq!(read(cache.get_fail_safe(&k)), model.read(k, fail_safe, true), "get_fail_safe({})", k);
                }
                Op::Peek(k) => prop_assert_eq!(read(cache.peek(&k)), model.read(k, serve_stale, false), "peek({})", k),
                Op::Invalidate(k) => {
                    let expected = model.remove_where(|e| e.0 == k);
                    model.stats.invalidations += expected as u64;
                    prop_assert_eq!(cache.invalidate(&k), expected == 1);
                }
                Op::InvalidateIfValueBelow(limit) => {
                    let expected = model.remove_where(|e| e.1 < limit);
                    model.stats.invalidations += expected as u64;
                    prop_assert_eq!(cache.invalidate_if(|_, v| *v < limit), expected);
                }
                Op::PurgeExpired => {
                    let now = model.now;
                    let expected = model.remove_where(|e| now.saturating_sub(e.2) > retain);
                    model.stats.expirations += expected as u64;
                    prop_assert_eq!(cache.purge_expired(), expected);
                }
                Op::Clear => {
                    let expected = model.remove_where(|_| true);
                    model.stats.invalidations += expected as u64;
                    prop_assert_eq!(cache.clear(), expected);
                }
                Op::Advance(s) => {
                    clock.advance(Duration::from_secs(s));
                    model.now += s;
                }
            }
            prop_assert_eq!(cache.len(), model.entries.len());
            let mut order = Vec::new();
            cache.for_each(|k, e| order.push((*k, e.freshness(), e.age().as_secs())));
            let live: Vec<(u8, Freshness, u64)> = model
                .entries
                .iter()
                .filter(|e| model.age(e.2) <= retain)
                .map(|e| {
                    let age = model.age(e.2);
                    (e.0, if age <= TTL && !e.3 { Freshness::Fresh } else { Freshness::Stale }, age)
                })
                .collect();
            prop_assert_eq!(order, live, "recency order, freshness and age of the entries still alive");
        }
        let mut expected = model.stats;
        expected.len = model.entries.len();
        expected.weight = model.entries.len() as u64;
        prop_assert_eq!(cache.stats(), expected);
    }
}
