//! Entries marked stale until replaced (`Cache::mark_stale_before`): what
//! each read makes of them, what clears the mark, and what the mark leaves
//! alone (ages, windows, recency, counters).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use cache_core::{Cache, CacheStats, Clock, Event, Freshness, ManualClock, Observer, Policy};

const TTL: Duration = Duration::from_secs(900);
const SWR: Duration = Duration::from_secs(3_600);
const SIE: Duration = Duration::from_secs(86_400);
const SECOND: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<(Event, u64)>>);

impl Observer for Recorder {
    fn record(&self, event: Event, count: u64) {
        self.0.lock().expect("not poisoned").push((event, count));
    }
}

impl Recorder {
    fn take(&self) -> Vec<(Event, u64)> {
        std::mem::take(&mut *self.0.lock().expect("not poisoned"))
    }
}

struct Fixture {
    cache: Cache<&'static str, u32>,
    clock: ManualClock,
    heard: Arc<Recorder>,
}

fn fixture(capacity: usize) -> Fixture {
    let clock = ManualClock::starting_now();
    let heard = Arc::new(Recorder::default());
    let cache = Cache::builder(capacity)
        .policy(Policy::new(TTL).stale_while_revalidate(SWR).stale_if_error(SIE))
        .shards(1)
        .clock(clock.clone())
        .observer(heard.clone())
        .build();
    Fixture { cache, clock, heard }
}

fn keys_in_recency_order(cache: &Cache<&'static str, u32>) -> Vec<&'static str> {
    let mut keys = Vec::new();
    cache.for_each(|k, _| keys.push(*k));
    keys
}

#[test]
fn marked_entries_read_stale_on_every_read_and_keep_their_age() {
    let Fixture { cache, clock, heard } = fixture(10);
    cache.insert("old", 1);
    clock.advance(10 * SECOND);
    let before = clock.now();
    cache.insert("at", 2);
    clock.advance(SECOND);
    cache.insert("after", 3);
    heard.take();

    assert_eq!(cache.mark_stale_before(before), 1, "only the entry fetched strictly before");

    let entry = cache.get("old").expect("within the TTL");
    assert_eq!(entry.freshness(), Freshness::Stale);
    assert!(entry.is_stale());
    assert_eq!(entry.age(), 11 * SECOND, "the age stays the real one");
    assert_eq!(entry.fetched_at(), before - 10 * SECOND);
    assert!(cache.peek("old").is_some_and(|e| e.is_stale()));
    assert!(cache.get_fail_safe("old").is_some_and(|e| e.is_stale() && e.age() == 11 * SECOND));
    for key in ["at", "after"] {
        assert_eq!(cache.get(key).map(|e| e.freshness()), Some(Freshness::Fresh), "{key} is untouched");
    }
    let mut seen = Vec::new();
    cache.for_each(|k, e| seen.push((*k, e.freshness())));
    assert_eq!(seen, [("old", Freshness::Stale), ("at", Freshness::Fresh), ("after", Freshness::Fresh)]);

    // Counted as an entry past its TTL would be: a stale hit.
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.stale_hits, stats.misses), (2, 2, 0));
    assert_eq!(heard.take(), [(Event::StaleHit, 1), (Event::StaleHit, 1), (Event::Hit, 1), (Event::Hit, 1)]);
}

#[test]
fn past_the_stale_window_a_marked_entry_follows_the_usual_rules() {
    let Fixture { cache, clock, .. } = fixture(10);
    let fetched_at = clock.now();
    cache.insert("k", 1);
    assert_eq!(cache.mark_stale_before(fetched_at + SECOND), 1);

    clock.set(fetched_at + TTL + SWR);
    assert!(cache.get("k").is_some_and(|e| e.is_stale()), "last moment of stale-while-revalidate");

    clock.advance(SECOND);
    assert!(cache.get("k").is_none(), "past stale-while-revalidate a plain read misses, marked or not");
    assert!(cache.peek("k").is_none());
    let fail_safe = cache.get_fail_safe("k").expect("within stale-if-error");
    assert!(fail_safe.is_stale());
    assert_eq!(fail_safe.age(), TTL + SWR + SECOND);
    assert_eq!(cache.purge_expired(), 0, "not dead yet");

    clock.set(fetched_at + TTL + SIE);
    assert!(cache.get_fail_safe("k").is_some(), "last moment of stale-if-error");
    clock.advance(SECOND);
    assert_eq!(cache.purge_expired(), 1, "dead by its real age");
    assert_eq!(cache.len(), 0);
}

#[test]
fn insert_if_newer_of_the_same_time_confirms_only_a_marked_entry() {
    let Fixture { cache, clock, .. } = fixture(10);
    let fetched_at = clock.now() - 5 * SECOND;
    cache.insert_at("k", 1, fetched_at);

    assert!(!cache.insert_if_newer("k", 2, fetched_at), "an unmarked entry of the same time is kept");
    assert_eq!(cache.get("k").map(|e| (*e.value(), e.is_stale())), Some((1, false)));

    assert_eq!(cache.mark_stale_before(clock.now()), 1);
    assert!(!cache.insert_if_newer("k", 3, fetched_at - SECOND), "an older value never replaces");
    assert_eq!(cache.get("k").map(|e| (*e.value(), e.is_stale())), Some((1, true)), "still marked");

    assert!(cache.insert_if_newer("k", 4, fetched_at), "the same time confirms a marked entry");
    let entry = cache.get("k").expect("confirmed");
    assert_eq!((*entry.value(), entry.freshness(), entry.fetched_at()), (4, Freshness::Fresh, fetched_at));
    assert!(!cache.insert_if_newer("k", 5, fetched_at), "confirmed, it is unmarked again");

    assert_eq!(cache.mark_stale_before(clock.now()), 1);
    assert!(cache.insert_if_newer("k", 6, fetched_at + SECOND), "a newer value replaces, as before");
    assert_eq!(cache.get("k").map(|e| (*e.value(), e.is_stale())), Some((6, false)));
}

#[test]
fn every_insert_stores_an_unmarked_entry() {
    let Fixture { cache, clock, .. } = fixture(10);
    let fetched_at = clock.now();
    cache.insert_at("a", 1, fetched_at);
    cache.insert("b", 2);
    clock.advance(SECOND);
    assert_eq!(cache.mark_stale_before(clock.now()), 2);

    cache.insert_at("a", 10, fetched_at);
    cache.insert("b", 20);
    let a = cache.get("a").expect("stored");
    assert_eq!((*a.value(), a.freshness(), a.age()), (10, Freshness::Fresh, SECOND));
    assert_eq!(cache.get("b").map(|e| (*e.value(), e.freshness())), Some((20, Freshness::Fresh)));
}

#[test]
fn marking_touches_neither_recency_nor_counters() {
    let Fixture { cache, clock, heard } = fixture(3);
    cache.insert("a", 1);
    cache.insert("b", 2);
    cache.insert("c", 3);
    cache.get("a");
    assert_eq!(keys_in_recency_order(&cache), ["b", "c", "a"]);
    let stats = cache.stats();
    heard.take();

    clock.advance(SECOND);
    assert_eq!(cache.mark_stale_before(clock.now()), 3);
    assert_eq!(cache.mark_stale_before(clock.now()), 0, "entries already marked are not counted again");

    assert_eq!(keys_in_recency_order(&cache), ["b", "c", "a"], "recency unchanged");
    assert_eq!(cache.stats(), stats, "no counter moved");
    assert!(heard.take().is_empty(), "the observer heard nothing");

    cache.insert("d", 4);
    assert!(cache.peek("b").is_none(), "the least recently used went first");
    assert_eq!(keys_in_recency_order(&cache), ["c", "a", "d"]);
}

#[test]
fn marking_reaches_every_shard() {
    let clock = ManualClock::starting_now();
    let cache: Cache<u32, u32> = Cache::builder(256).shards(8).clock(clock.clone()).build();
    for i in 0..200 {
        cache.insert(i, i);
    }
    clock.advance(SECOND);
    assert_eq!(cache.mark_stale_before(clock.now()), 200);
    assert!((0..200).all(|i| cache.peek(&i).is_some_and(|e| e.is_stale())));
    assert_eq!(cache.stats(), CacheStats { len: 200, weight: 200, insertions: 200, ..CacheStats::default() });
}

#[test]
fn a_cut_at_the_epoch_marks_nothing() {
    let Fixture { cache, .. } = fixture(10);
    cache.insert("k", 1);
    assert_eq!(cache.mark_stale_before(SystemTime::UNIX_EPOCH), 0);
    assert!(cache.get("k").is_some_and(|e| !e.is_stale()));
}
