//! Caller code that panics under a shard's lock: an `invalidate_if`
//! predicate, a glob pattern's matching, a weigher. The lock does not
//! poison, so the cache must come out of the unwind as it would from a
//! return: no entry or weight counted that is not held (or held and not
//! counted), the bounds still filled exactly, and the observer told what the
//! counters say.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cache_core::{Cache, CacheStats, Event, Observer, Policy};

fn policy() -> Policy {
    Policy::new(Duration::from_secs(900)).stale_while_revalidate(Duration::from_secs(3_600))
}

/// Sums every event it hears.
#[derive(Debug, Default)]
struct Summer(Mutex<CacheStats>);

impl Observer for Summer {
    fn record(&self, event: Event, count: u64) {
        let mut s = self.0.lock().expect("not poisoned");
        match event {
            Event::Hit => s.hits += count,
            Event::StaleHit => s.stale_hits += count,
            Event::Miss => s.misses += count,
            Event::Insertion => s.insertions += count,
            Event::Eviction => s.evictions += count,
            Event::Expiration => s.expirations += count,
            Event::Invalidation => s.invalidations += count,
        }
    }
}

impl Summer {
    /// What was heard, with the sizes taken from `stats`.
    fn heard(&self, stats: CacheStats) -> CacheStats {
        CacheStats { len: stats.len, weight: stats.weight, ..*self.0.lock().expect("not poisoned") }
    }
}

/// The entries really held (all live: no test here moves the clock), and
/// their total weight under `weigh`.
fn held<V: Clone>(cache: &Cache<u64, V>, weigh: impl Fn(&V) -> u64) -> (usize, u64) {
    let (mut n, mut weight) = (0, 0);
    cache.for_each(|_, entry| {
        n += 1;
        weight += weigh(entry.value());
    });
    (n, weight)
}

#[test]
fn a_predicate_that_panics_midway_leaks_no_capacity() {
    let capacity = 200;
    let summer = Arc::new(Summer::default());
    let cache: Cache<u64, u64> = Cache::builder(capacity).shards(8).policy(policy()).observer(summer.clone()).build();
    for k in 0..capacity as u64 {
        cache.insert(k, k);
    }
    let calls = AtomicU64::new(0);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        cache.invalidate_if(|_, _| {
            // Drops the first 120 entries it is shown (over several
            // shards), then fails in the middle of a shard.
            let n = calls.fetch_add(1, Ordering::SeqCst);
            assert!(n < 120, "the predicate fails on its 121st call");
            true
        })
    }));
    assert!(outcome.is_err());

    let (n, _) = held(&cache, |_| 1);
    assert_eq!(n, capacity - 120, "what the predicate dropped is gone");
    assert_eq!(cache.len(), n);
    assert_eq!(cache.weight(), n as u64);
    let stats = cache.stats();
    assert_eq!((stats.len, stats.invalidations), (n, 120), "{stats:?}");
    assert_eq!(summer.heard(stats), stats, "the observer hears what was dropped before the panic");

    // The room the dropped entries left is usable: the cache fills to
    // exactly its capacity again, and stays there.
    for k in 1_000..3_000 {
        cache.insert(k, k);
        assert!(cache.len() <= capacity);
    }
    assert_eq!(held(&cache, |_| 1).0, capacity);
    assert_eq!(cache.len(), capacity);
    assert_eq!(summer.heard(cache.stats()), cache.stats());
}

#[test]
fn a_glob_match_that_panics_midway_leaks_no_capacity() {
    // A pattern's matching is caller-supplied code too when the keys are:
    // a `Borrow<str>` that panics on some keys.
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    struct Touchy(String);
    impl std::borrow::Borrow<str> for Touchy {
        fn borrow(&self) -> &str {
            assert!(!self.0.ends_with('!'), "cannot show {}", self.0);
            &self.0
        }
    }
    let cache: Cache<Touchy, u32> = Cache::builder(64).shards(1).policy(policy()).build();
    for i in 0..63 {
        cache.insert(Touchy(format!("wallet:{i:02}")), i);
    }
    cache.insert(Touchy("wallet:!".to_owned()), 99);
    let outcome = catch_unwind(AssertUnwindSafe(|| cache.invalidate_matching("wallet:*")));
    assert!(outcome.is_err());
    let mut left = 0;
    cache.for_each(|_, _| left += 1);
    assert!(left >= 1, "the key that panicked is still there");
    assert_eq!(cache.len(), left);
    assert_eq!(cache.stats().invalidations, 64 - left as u64);
    for i in 100..200 {
        cache.insert(Touchy(format!("other:{i}")), i);
    }
    let mut held = 0;
    cache.for_each(|_, _| held += 1);
    assert_eq!((held, cache.len()), (64, 64), "fills to exactly its capacity again");
}

/// A value whose first byte marks it as one the weigher refuses while armed.
const POISON: u8 = 0xEE;

fn touchy_cache(max_weight: u64, armed: &Arc<AtomicBool>, summer: &Arc<Summer>) -> Cache<u64, Vec<u8>> {
    let armed = Arc::clone(armed);
    Cache::builder(1_000)
        .shards(1)
        .policy(policy())
        .observer(summer.clone())
        .weigher(max_weight, move |_, v: &Vec<u8>| {
            assert!(!(armed.load(Ordering::SeqCst) && v.first() == Some(&POISON)), "weigher refuses a poisoned value");
            v.len() as u64
        })
        .build()
}

fn value(len: usize, first: u8) -> Vec<u8> {
    let mut v = vec![0; len];
    v[0] = first;
    v
}

#[test]
fn a_weigher_that_panics_while_evicting_leaks_no_weight() {
    let armed = Arc::new(AtomicBool::new(false));
    let summer = Arc::new(Summer::default());
    let cache = touchy_cache(100, &armed, &summer);
    // Full: ten entries of ten, the least recently used one poisoned.
    cache.insert(0, value(10, POISON));
    for k in 1..10 {
        cache.insert(k, value(10, 0));
    }
    assert_eq!(cache.weight(), 100);

    // The insert must evict key 0 for room, and weighing it panics.
    armed.store(true, Ordering::SeqCst);
    let outcome = catch_unwind(AssertUnwindSafe(|| cache.insert(10, value(10, 0))));
    assert!(outcome.is_err());
    armed.store(false, Ordering::SeqCst);

    let (n, weight) = held(&cache, |v| v.len() as u64);
    assert!(weight <= 100, "within the weight bound after the panic: {weight}");
    assert_eq!((cache.len(), cache.weight()), (n, weight), "the books match what is held");
    assert_eq!(summer.heard(cache.stats()), cache.stats());

    // And it fills to exactly its bound again.
    for k in 100..130 {
        cache.insert(k, value(10, 0));
    }
    let (n, weight) = held(&cache, |v| v.len() as u64);
    assert_eq!((n, weight), (10, 100));
    assert_eq!((cache.len(), cache.weight()), (10, 100));
    let stats = cache.stats();
    assert_eq!((stats.len, stats.weight), (10, 100));
    assert_eq!(summer.heard(stats), stats);
}

#[test]
fn a_weigher_that_panics_on_a_replaced_value_changes_nothing() {
    let armed = Arc::new(AtomicBool::new(false));
    let summer = Arc::new(Summer::default());
    let cache = touchy_cache(100, &armed, &summer);
    cache.insert(1, value(10, POISON));
    cache.insert(2, value(10, 0));

    armed.store(true, Ordering::SeqCst);
    let outcome = catch_unwind(AssertUnwindSafe(|| cache.insert(1, value(50, 0))));
    assert!(outcome.is_err(), "weighing the old value panics");
    armed.store(false, Ordering::SeqCst);

    assert_eq!(cache.peek(&1).map(|e| e.value().len()), Some(10), "the old value stays");
    let (n, weight) = held(&cache, |v| v.len() as u64);
    assert_eq!((n, weight), (2, 20));
    assert_eq!((cache.len(), cache.weight()), (2, 20));
    assert_eq!(summer.heard(cache.stats()), cache.stats());

    // Fills to exactly its bound: 20 held, 80 more fit.
    for k in 10..30 {
        cache.insert(k, value(20, 0));
    }
    assert_eq!(held(&cache, |v| v.len() as u64).1, 100);
    assert_eq!(cache.weight(), 100);
}

#[test]
fn a_weigher_that_panics_on_a_new_value_stores_nothing() {
    let armed = Arc::new(AtomicBool::new(true));
    let summer = Arc::new(Summer::default());
    let cache = touchy_cache(100, &armed, &summer);
    cache.insert(1, value(40, 0));
    let outcome = catch_unwind(AssertUnwindSafe(|| cache.insert(2, value(40, POISON))));
    assert!(outcome.is_err());
    assert!(cache.peek(&2).is_none());
    assert_eq!((cache.len(), cache.weight()), (1, 40));
    let stats = cache.stats();
    assert_eq!((stats.insertions, stats.evictions), (1, 0));
    assert_eq!(summer.heard(stats), stats);
}
