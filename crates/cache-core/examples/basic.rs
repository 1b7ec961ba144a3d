//! `cache-core` in one run: inserts and reads, the three freshness windows
//! walked through with a hand-moved clock, LRU eviction, and the counters.
//!
//! ```sh
//! cargo run -p cache-core --example basic
//! ```

use std::time::Duration;

use cache_core::{Cache, Clock, Freshness, ManualClock, Policy};

fn main() {
    // A clock that moves only when told to: no sleeping to see time pass.
    let clock = ManualClock::starting_now();
    let policy = Policy::new(Duration::from_secs(60)) // fresh for a minute,
        .stale_while_revalidate(Duration::from_secs(240)) // then served stale for four more,
        .stale_if_error(Duration::from_secs(3_600)); // and kept an hour past the TTL for when the source fails.
    let cache = Cache::builder(3)
        .policy(policy)
        .shards(1) // one shard: an exact LRU, so the eviction below is predictable
        .clock(clock.clone())
        .build();

    cache.insert("BTC", 97_000_u64);
    let btc = cache.get("BTC").expect("just inserted");
    println!("t=0s     BTC = {} ({:?}, age {:?})", btc.value(), btc.freshness(), btc.age());
    assert_eq!(btc.freshness(), Freshness::Fresh);

    clock.advance(Duration::from_secs(90));
    let btc = cache.get("BTC").expect("within stale-while-revalidate");
    println!("t=90s    BTC = {} ({:?}: serve it now, refresh it in the background)", btc.value(), btc.freshness());
    assert!(btc.is_stale());

    clock.advance(Duration::from_secs(300));
    println!("t=390s   get: {:?} (past stale-while-revalidate)", cache.get("BTC").map(|e| *e.value()));
    assert!(cache.get("BTC").is_none());
    let fallback = cache.get_fail_safe("BTC").expect("within stale-if-error");
    println!("t=390s   get_fail_safe: {} (what to answer if the source is down)", fallback.value());

    clock.advance(Duration::from_secs(3_600));
    println!("t=3990s  get_fail_safe: {:?} (past every window)", cache.get_fail_safe("BTC").map(|e| *e.value()));
    assert!(cache.get_fail_safe("BTC").is_none());

    // A value fetched elsewhere keeps its age: stored 50 s old, it is stale 10 s later.
    cache.insert_at("ETH", 3_400, clock.now() - Duration::from_secs(50));
    clock.advance(Duration::from_secs(11));
    println!("ETH fetched 61 s ago by another process: {:?}", cache.get("ETH").map(|e| e.freshness()));

    // Eviction: capacity 3, "ETH" is the least recently used once the others are read.
    cache.insert("SOL", 180);
    cache.insert("ADA", 1);
    cache.get("SOL");
    cache.get("ADA");
    cache.insert("DOT", 7);
    println!(
        "after inserting DOT into a full cache: ETH {}, SOL {}, ADA {}, DOT {}",
        held(&cache, "ETH"),
        held(&cache, "SOL"),
        held(&cache, "ADA"),
        held(&cache, "DOT")
    );
    assert!(cache.peek("ETH").is_none());

    let stats = cache.stats();
    println!(
        "stats: hits {}, stale hits {}, misses {}, insertions {}, evictions {}, expirations {}, held {}",
        stats.hits, stats.stale_hits, stats.misses, stats.insertions, stats.evictions, stats.expirations, stats.len
    );
    println!("hit ratio {:.2}", stats.hit_ratio());
}

fn held(cache: &Cache<&'static str, u64>, key: &str) -> &'static str {
    if cache.peek(key).is_some() { "held" } else { "evicted" }
}
