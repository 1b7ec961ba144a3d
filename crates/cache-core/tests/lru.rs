//! The cache's behaviour through its public API: the cases of the original
//! report's LRU tests (get/set, staleness, TTL expiry, eviction order,
//! pattern deletion) and the features beyond them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use cache_core::{Cache, CacheStats, Event, Freshness, ManualClock, Observer, Policy};

const TTL: Duration = Duration::from_secs(900);
const SWR: Duration = Duration::from_secs(3_600);
const SIE: Duration = Duration::from_secs(86_400);

fn policy() -> Policy {
    Policy::new(TTL).stale_while_revalidate(SWR).stale_if_error(SIE)
}

fn cache(capacity: usize) -> (Cache<String, u32>, ManualClock) {
    let clock = ManualClock::starting_now();
    let cache = Cache::builder(capacity).policy(policy()).shards(1).clock(clock.clone()).build();
    (cache, clock)
}

fn key(i: u32) -> String {
    format!("wallet:{i}")
}

#[test]
fn get_returns_what_set_stored() {
    let (cache, _) = cache(10);
    assert!(cache.get("wallet:1").is_none());
    cache.insert(key(1), 100);
    let entry = cache.get("wallet:1").expect("just inserted");
    assert_eq!(*entry.value(), 100);
    assert_eq!(entry.freshness(), Freshness::Fresh);
    assert_eq!(entry.age(), Duration::ZERO);

    cache.insert(key(1), 200);
    assert_eq!(cache.get("wallet:1").map(|e| *e.value()), Some(200), "a second set replaces the value");
    assert_eq!(cache.len(), 1);
}

#[test]
fn staleness_is_detected_past_the_ttl() {
    let (cache, clock) = cache(10);
    cache.insert(key(1), 1);

    clock.advance(TTL);
    let entry = cache.get("wallet:1").expect("at the TTL");
    assert!(!entry.is_stale(), "an entry exactly TTL old is still fresh");

    clock.advance(Duration::from_secs(1));
    let entry = cache.get("wallet:1").expect("just past the TTL");
    assert!(entry.is_stale());
    assert_eq!(entry.age(), TTL + Duration::from_secs(1));

    let stats = cache.stats();
    assert_eq!((stats.hits, stats.stale_hits, stats.misses), (1, 1, 0));
}

#[test]
fn entries_expire_after_the_stale_windows() {
    let (cache, clock) = cache(10);
    cache.insert(key(1), 1);

    clock.advance(TTL + SWR);
    assert!(cache.get("wallet:1").is_some_and(|e| e.is_stale()), "last moment of stale-while-revalidate");

    clock.advance(Duration::from_secs(1));
    assert!(cache.get("wallet:1").is_none(), "past stale-while-revalidate a plain read misses");
    let fail_safe = cache.get_fail_safe("wallet:1").expect("within stale-if-error");
    assert!(fail_safe.is_stale());

    clock.advance(SIE);
    assert!(cache.get_fail_safe("wallet:1").is_none(), "past every window");
    assert_eq!(cache.len(), 0, "a dead entry is dropped when read");
    let stats = cache.stats();
    assert_eq!(stats.expirations, 1);
    assert_eq!(stats.misses, 2);
}

#[test]
fn the_fail_safe_window_is_its_own_not_the_longer_one() {
    // Stale-while-revalidate 60 s, stale-if-error 0: a failed load must get
    // nothing older than the TTL, though a plain read still serves it stale.
    let clock = ManualClock::starting_now();
    let policy = Policy::new(TTL).stale_while_revalidate(Duration::from_secs(60));
    let cache: Cache<String, u32> = Cache::builder(10).shards(1).policy(policy).clock(clock.clone()).build();
    cache.insert(key(1), 1);
    clock.advance(TTL);
    assert!(cache.get_fail_safe("wallet:1").is_some_and(|e| !e.is_stale()), "fresh is always served");
    clock.advance(Duration::from_secs(1));
    assert!(cache.get("wallet:1").is_some_and(|e| e.is_stale()));
    assert!(cache.get_fail_safe("wallet:1").is_none(), "past ttl + stale_if_error (0)");
    assert!(cache.get("wallet:1").is_some(), "and still kept for the longer window");
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.stale_hits, stats.misses, stats.expirations), (1, 2, 1, 0));

    // Stale-if-error 30 s, shorter than stale-while-revalidate's 60 s.
    let policy = policy.stale_if_error(Duration::from_secs(30));
    let cache: Cache<String, u32> = Cache::builder(10).shards(1).policy(policy).clock(clock.clone()).build();
    cache.insert(key(1), 1);
    clock.advance(TTL + Duration::from_secs(30));
    assert!(cache.get_fail_safe("wallet:1").is_some_and(|e| e.is_stale()), "the last moment of stale-if-error");
    clock.advance(Duration::from_secs(1));
    assert!(cache.get_fail_safe("wallet:1").is_none());
    assert!(cache.get("wallet:1").is_some_and(|e| e.is_stale()));
    clock.advance(Duration::from_secs(29));
    assert!(cache.get("wallet:1").is_some(), "the last moment of stale-while-revalidate");
    clock.advance(Duration::from_secs(1));
    assert!(cache.get("wallet:1").is_none());
    assert_eq!(cache.len(), 0, "dead past the longer window, and dropped");
}

#[test]
fn stale_means_exactly_older_than_the_ttl_on_every_read() {
    let (cache, clock) = cache(10);
    cache.insert(key(1), 1);
    for (advance, stale) in
        [(TTL, false), (Duration::from_nanos(1), true), (SWR.saturating_sub(Duration::from_nanos(1)), true)]
    {
        clock.advance(advance);
        let age = cache.peek("wallet:1").expect("within stale-while-revalidate").age();
        assert_eq!(age > TTL, stale);
        assert_eq!(cache.get("wallet:1").map(|e| e.is_stale()), Some(stale), "get at {age:?}");
        assert_eq!(cache.peek("wallet:1").map(|e| e.is_stale()), Some(stale), "peek at {age:?}");
        assert_eq!(cache.get_fail_safe("wallet:1").map(|e| e.is_stale()), Some(stale), "get_fail_safe at {age:?}");
        let mut seen = None;
        cache.for_each(|_, e| seen = Some(e.is_stale()));
        assert_eq!(seen, Some(stale), "for_each at {age:?}");
    }
}

#[test]
fn eviction_takes_the_least_recently_used_first() {
    let (cache, _) = cache(3);
    for i in 1..=3 {
        cache.insert(key(i), i);
    }
    // Reading 1 makes 2 the least recently used.
    assert!(cache.get("wallet:1").is_some());
    cache.insert(key(4), 4);
    assert!(cache.peek("wallet:2").is_none(), "2 was least recently used");

    // A peek does not count as a use: 3 stays least recently used.
    assert!(cache.peek("wallet:3").is_some());
    cache.insert(key(5), 5);
    assert!(cache.peek("wallet:3").is_none());

    // Replacing a value counts as a use.
    cache.insert(key(1), 10);
    cache.insert(key(6), 6);
    assert!(cache.peek("wallet:4").is_none());

    let mut left: Vec<u32> = Vec::new();
    cache.for_each(|_, e| left.push(*e.into_value()));
    assert_eq!(left, [5, 10, 6], "least to most recently used");
    assert_eq!(cache.stats().evictions, 3);
}

#[test]
fn pattern_deletion_removes_only_what_matches() {
    let (cache, _) = cache(100);
    for k in ["wallet:0xab01", "wallet:0xab02", "wallet:0xabc", "wallet:0xcd01", "other:0xab01", "wallet:0x[ab]"] {
        cache.insert(k.to_owned(), 1);
    }
    assert_eq!(cache.invalidate_matching("wallet:0xab*").expect("valid"), 3);
    assert!(cache.peek("wallet:0xcd01").is_some());
    assert!(cache.peek("other:0xab01").is_some());

    assert_eq!(cache.invalidate_matching("wallet:0x\\[ab\\]").expect("valid"), 1, "escaped brackets are literal");
    assert_eq!(cache.invalidate_matching("nothing:*").expect("valid"), 0);
    assert!(cache.invalidate_matching("wallet:[").is_err());
    assert_eq!(cache.len(), 2);
    assert_eq!(cache.stats().invalidations, 4);
}

#[test]
fn invalidation_and_clear_are_counted() {
    let (cache, _) = cache(100);
    for i in 0..10 {
        cache.insert(key(i), i);
    }
    assert!(cache.invalidate("wallet:3"));
    assert!(!cache.invalidate("wallet:3"), "already gone");
    assert_eq!(cache.invalidate_if(|_, v| v % 2 == 0), 5);
    assert_eq!(cache.clear(), 4);
    assert!(cache.is_empty());
    assert_eq!(cache.stats().invalidations, 10);
}

#[test]
fn insert_at_keeps_the_original_age() {
    let (cache, clock) = cache(10);
    let fetched_at = clock_now(&clock) - TTL - Duration::from_secs(30);
    cache.insert_at(key(1), 1, fetched_at);
    let entry = cache.get("wallet:1").expect("within stale-while-revalidate");
    assert!(entry.is_stale());
    assert_eq!(entry.fetched_at(), fetched_at);
    assert_eq!(entry.age(), TTL + Duration::from_secs(30));

    // A timestamp from a replica whose clock runs ahead reads as age zero.
    let ahead = clock_now(&clock) + Duration::from_secs(5);
    cache.insert_at(key(2), 2, ahead);
    assert_eq!(cache.get("wallet:2").map(|e| e.age()), Some(Duration::ZERO));
}

#[test]
fn purge_expired_drops_only_dead_entries() {
    let (cache, clock) = cache(10);
    cache.insert(key(1), 1);
    clock.advance(TTL + SIE);
    cache.insert(key(2), 2);
    assert_eq!(cache.purge_expired(), 0, "exactly at the end of stale-if-error is still alive");
    clock.advance(Duration::from_secs(1));
    assert_eq!(cache.purge_expired(), 1);
    assert!(cache.peek("wallet:2").is_some());
    assert_eq!(cache.stats().expirations, 1);
}

#[test]
fn dead_entries_evicted_for_room_count_as_expirations() {
    let (cache, clock) = cache(2);
    cache.insert(key(1), 1);
    clock.advance(TTL + SIE + Duration::from_secs(1));
    cache.insert(key(2), 2);
    cache.insert(key(3), 3);
    let stats = cache.stats();
    assert_eq!((stats.evictions, stats.expirations), (0, 1));
}

#[test]
fn weight_bounds_the_cache_too() {
    let cache: Cache<String, Vec<u8>> =
        Cache::builder(100).shards(1).weigher(100, |_, v: &Vec<u8>| v.len() as u64).policy(policy()).build();
    cache.insert("a".to_owned(), vec![0; 40]);
    cache.insert("b".to_owned(), vec![0; 40]);
    assert_eq!(cache.weight(), 80);
    cache.insert("c".to_owned(), vec![0; 40]);
    assert_eq!(cache.weight(), 80, "a went to make room");
    assert!(cache.peek("a").is_none());

    cache.insert("b".to_owned(), vec![0; 10]);
    assert_eq!(cache.weight(), 50, "replacing a value re-weighs it");

    cache.insert("huge".to_owned(), vec![0; 101]);
    assert!(cache.peek("huge").is_none(), "heavier than the whole cache: not stored");
    assert_eq!(cache.len(), 2, "and nothing else was flushed for it");

    cache.insert("c".to_owned(), vec![0; 500]);
    assert!(cache.peek("c").is_none(), "an oversized replacement drops the old value too");
    assert_eq!(cache.weight(), 10);
    assert_eq!(cache.stats().weight, 10);
}

#[test]
fn a_sharded_cache_fills_to_its_capacity_before_evicting() {
    // Keys never spread evenly over shards; the capacity bounds the whole
    // cache, so no shard runs out of room early.
    let capacity = 2_000;
    let cache: Cache<u32, u32> = Cache::builder(capacity).shards(64).policy(policy()).build();
    for i in 0..u32::try_from(capacity).expect("fits") {
        cache.insert(i, i);
    }
    assert_eq!(cache.len(), capacity);
    assert_eq!(cache.stats().evictions, 0);
    cache.insert(u32::MAX, 0);
    assert_eq!(cache.len(), capacity, "one more evicts one");
    assert_eq!(cache.stats().evictions, 1);
    for i in 0..10_000 {
        cache.insert(1_000_000 + i, i);
        assert!(cache.len() <= capacity);
    }
    assert_eq!(cache.len(), capacity, "and it stays full");
}

#[test]
fn zero_capacity_stores_nothing() {
    let cache = Cache::new(0, policy());
    cache.insert(1, 1);
    assert!(cache.get(&1).is_none());
    assert_eq!(cache.stats().evictions, 1);
}

#[test]
fn peek_changes_no_counter() {
    let (cache, clock) = cache(10);
    cache.insert(key(1), 1);
    assert!(cache.peek("wallet:1").is_some());
    assert!(cache.peek("wallet:2").is_none());
    clock.advance(TTL + SIE + Duration::from_secs(1));
    assert!(cache.peek("wallet:1").is_none());
    assert_eq!(cache.len(), 1, "a peek does not drop a dead entry");
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.stale_hits, stats.misses, stats.expirations), (0, 0, 0, 0));
}

/// Keeps every event it hears, in order.
#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<(Event, u64)>>);

impl Observer for Recorder {
    fn record(&self, event: Event, count: u64) {
        self.0.lock().expect("not poisoned").push((event, count));
    }
}

#[test]
fn the_observer_hears_what_the_stats_count() {
    let recorder = Arc::new(Recorder::default());
    let clock = ManualClock::starting_now();
    let cache = Cache::builder(2).policy(policy()).clock(clock.clone()).observer(recorder.clone()).build();

    cache.insert(1, 1);
    cache.insert(2, 2);
    cache.insert(3, 3);
    cache.get(&3);
    cache.get(&1);
    clock.advance(TTL + Duration::from_secs(1));
    cache.get(&3);
    cache.peek(&3);
    cache.invalidate(&3);
    clock.advance(SIE);
    cache.get_fail_safe(&2);

    let heard = recorder.0.lock().expect("not poisoned").clone();
    assert_eq!(
        heard,
        [
            (Event::Insertion, 1),
            (Event::Insertion, 1),
            (Event::Insertion, 1),
            (Event::Eviction, 1),
            (Event::Hit, 1),
            (Event::Miss, 1),
            (Event::StaleHit, 1),
            (Event::Invalidation, 1),
            (Event::Miss, 1),
            (Event::Expiration, 1),
        ]
    );
    let mut summed = CacheStats { len: cache.len(), weight: cache.weight(), ..CacheStats::default() };
    for (event, n) in heard {
        match event {
            Event::Hit => summed.hits += n,
            Event::StaleHit => summed.stale_hits += n,
            Event::Miss => summed.misses += n,
            Event::Insertion => summed.insertions += n,
            Event::Eviction => summed.evictions += n,
            Event::Expiration => summed.expirations += n,
            Event::Invalidation => summed.invalidations += n,
        }
    }
    assert_eq!(summed, cache.stats());
}

#[test]
fn a_panicking_predicate_leaves_the_cache_usable() {
    let (cache, _) = cache(10);
    cache.insert(key(1), 1);
    cache.insert(key(2), 2);
    let calls = AtomicU64::new(0);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        cache.invalidate_if(|_, _| {
            assert!(calls.fetch_add(1, Ordering::SeqCst) < 1, "predicate fails on its second call");
            false
        })
    }));
    assert!(outcome.is_err());
    cache.insert(key(3), 3);
    assert_eq!(cache.get("wallet:3").map(|e| *e.value()), Some(3));
    assert_eq!(cache.len(), 3);
}

#[test]
fn the_cache_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Cache<String, Arc<Vec<u8>>>>();
}

fn clock_now(clock: &ManualClock) -> SystemTime {
    use cache_core::Clock;
    clock.now()
}
