//! The per-entry demand estimate: what counts, what keeps it, what loses it.

use std::time::Duration;

use cache_core::{Cache, ManualClock, Policy};

fn cache(clock: &ManualClock) -> Cache<&'static str, u32> {
    Cache::builder(2)
        .shards(1)
        .policy(Policy::new(Duration::from_secs(60)).stale_if_error(Duration::from_secs(600)))
        .demand_half_life(Duration::from_secs(10))
        .clock(clock.clone())
        .build()
}

#[test]
fn reads_count_peeks_do_not_and_time_halves_the_count() {
    let clock = ManualClock::starting_now();
    let cache = cache(&clock);
    cache.insert("a", 1);
    assert_eq!(cache.peek("a").unwrap().demand(), 0);
    assert_eq!(cache.get("a").unwrap().demand(), 1);
    assert_eq!(cache.get_fail_safe("a").unwrap().demand(), 2, "a fail-safe read is a read");
    for _ in 0..6 {
        cache.get("a");
    }
    assert_eq!(cache.peek("a").unwrap().demand(), 8);
    // The half-life is rounded to a power of two nanoseconds (8.6 s), so
    // 20 s cross two or three of its boundaries: an eighth to a quarter is
    // left.
    clock.advance(Duration::from_secs(20));
    let left = cache.peek("a").unwrap().demand();
    assert!((1..=2).contains(&left), "{left}");
    let mut seen = Vec::new();
    cache.for_each(|k, e| seen.push((*k, e.demand())));
    assert_eq!(seen, [("a", left)], "for_each reports the same estimate");
}

#[test]
fn a_new_value_keeps_the_demand_and_an_eviction_loses_it() {
    let clock = ManualClock::starting_now();
    let cache = cache(&clock);
    cache.insert("a", 1);
    for _ in 0..5 {
        cache.get("a");
    }
    clock.advance(Duration::from_millis(1));
    assert!(cache.insert_if_newer("a", 2, clock_now(&clock)));
    assert_eq!(cache.peek("a").unwrap().demand(), 5, "a refresh does not make a wallet cold");
    cache.insert("a", 3);
    assert_eq!(cache.peek("a").unwrap().demand(), 5);
    cache.insert("b", 1);
    cache.insert("c", 1); // evicts "a", the least recently used
    assert!(cache.peek("a").is_none());
    cache.insert("a", 4);
    assert_eq!(cache.peek("a").unwrap().demand(), 0);
    cache.invalidate("a");
    cache.insert("a", 5);
    assert_eq!(cache.get("a").unwrap().demand(), 1);
}

fn clock_now(clock: &ManualClock) -> std::time::SystemTime {
    use cache_core::Clock as _;
    clock.now()
}
