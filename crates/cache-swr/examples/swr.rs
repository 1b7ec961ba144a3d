//! Stale-while-revalidate in one run: a miss loads, a hit is served from
//! memory, a stale value is served at once while one background refresh
//! replaces it, and a failing source is covered by the stale-if-error window.
//!
//! ```sh
//! cargo run -p cache-swr --example swr
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cache_core::{Cache, ManualClock, Policy};
use cache_swr::{Origin, SwrCache};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // The cache's clock moves by hand, so the windows are walked without waiting.
    let clock = ManualClock::starting_now();
    let policy = Policy::new(Duration::from_secs(60)) // fresh for a minute,
        .stale_while_revalidate(Duration::from_secs(300)) // served stale (and refreshed) for five more,
        .stale_if_error(Duration::from_secs(3_600)); // a fallback for an hour if the source fails.
    let memory = Cache::builder(10_000).policy(policy).clock(clock.clone()).build();

    // A slow source whose answer changes on every call, and which can be made to fail.
    let version = Arc::new(AtomicU64::new(0));
    let source_down = Arc::new(AtomicBool::new(false));
    let (v, down) = (Arc::clone(&version), Arc::clone(&source_down));
    let prices = SwrCache::builder(memory).build(move |symbol: String| {
        let (v, down) = (Arc::clone(&v), Arc::clone(&down));
        async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if down.load(Ordering::Relaxed) {
                return Err(format!("price source unreachable for {symbol}"));
            }
            Ok(format!("{symbol} v{}", v.fetch_add(1, Ordering::Relaxed) + 1))
        }
    });
    let btc = "BTC".to_owned();

    let got = prices.get_or_load(&btc).await.unwrap();
    println!("miss:        {:<7} origin {:?}, stale {}", got.value, got.origin, got.stale);
    assert_eq!((got.value.as_str(), got.origin), ("BTC v1", Origin::Loaded));

    clock.advance(Duration::from_secs(30));
    let got = prices.get_or_load(&btc).await.unwrap();
    println!("hit at 30 s: {:<7} origin {:?}, stale {}, age {:?}", got.value, got.origin, got.stale, got.age);
    assert_eq!((got.origin, got.stale), (Origin::Memory, false));

    // Past the TTL: the old value at once, and one refresh in the background.
    clock.advance(Duration::from_secs(60));
    let started = Instant::now();
    let got = prices.get_or_load(&btc).await.unwrap();
    println!(
        "stale at 90 s: {} in {:?}, stale {}; refreshes running: {}",
        got.value,
        started.elapsed(),
        got.stale,
        prices.active_refreshes()
    );
    assert!(got.stale && got.value == "BTC v1");
    wait_for_refreshes(&prices).await;
    let got = prices.get_or_load(&btc).await.unwrap();
    println!("after the refresh: {} origin {:?}, stale {}", got.value, got.origin, got.stale);
    assert_eq!((got.value.as_str(), got.stale), ("BTC v2", false));

    // The source fails, and the value is past stale-while-revalidate: the
    // load fails, and the stale-if-error window answers instead of the error.
    source_down.store(true, Ordering::Relaxed);
    clock.advance(Duration::from_secs(600));
    let got = prices.get_or_load(&btc).await.unwrap();
    println!("source down at 690 s: {} origin {:?}, age {:?}", got.value, got.origin, got.age);
    assert_eq!(got.origin, Origin::FailSafe);

    // Past every window, the error itself.
    clock.advance(Duration::from_secs(3_600));
    let error = prices.get_or_load(&btc).await.unwrap_err();
    println!("source down at 4290 s: error: {error}");

    let stats = prices.stats();
    println!(
        "stats: hits {}, stale hits {}, misses {}, fail-safe {}, errors {}",
        stats.hits, stats.stale_hits, stats.misses, stats.fail_safe, stats.errors
    );
}

/// Waits, with a deadline, until no background refresh is running.
async fn wait_for_refreshes(cache: &SwrCache<String, String, String>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while cache.active_refreshes() > 0 {
        assert!(Instant::now() < deadline, "the refresh did not finish within 5 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
