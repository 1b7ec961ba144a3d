//! `refresh` in one run: a hundred concurrent loads of one key make one call
//! of a slow source; a background refresh that a load joins; the limits
//! (concurrency, a bounded queue, a timeout) turning excess work away; a
//! source error shared by its waiters; and a drain at shutdown.
//!
//! ```sh
//! cargo run -p refresh --example single_flight
//! ```

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use refresh::{Config, LoadError, Loader, Refresh};

/// The slow source: a quote takes `delay` to compute; symbols that are not
/// upper-case letters do not exist, and "HANG" never answers in time.
async fn fetch_quote(symbol: String, calls: Arc<AtomicUsize>) -> Result<u64, String> {
    calls.fetch_add(1, Ordering::Relaxed);
    let delay = if symbol == "HANG" { Duration::from_secs(60) } else { Duration::from_millis(100) };
    tokio::time::sleep(delay).await;
    if symbol.chars().all(|c| c.is_ascii_uppercase()) {
        Ok(symbol.bytes().map(u64::from).sum::<u64>() * 100)
    } else {
        Err(format!("no such symbol {symbol:?}"))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let calls = Arc::new(AtomicUsize::new(0));
    let config = Config {
        concurrency: NonZeroUsize::new(2).unwrap(), // two calls of the source at once,
        max_queued: 2,                              // two more flights may wait for a turn,
        timeout: Duration::from_millis(500),        // and a call may take half a second.
        ..Config::default()
    };
    let source_calls = Arc::clone(&calls);
    let loader = Loader::new(config, move |symbol: String| fetch_quote(symbol, Arc::clone(&source_calls)));

    // 1. A stampede: 100 concurrent loads of one key, one call of the source.
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let loader = loader.clone();
        tasks.spawn(async move { loader.load("BTC".to_owned()).await });
    }
    let mut values = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        values.push(joined.expect("task ran").expect("BTC loads"));
    }
    values.dedup();
    println!(
        "100 concurrent loads of BTC: {} source call(s), value(s) {values:?}, in {:?}",
        calls.load(Ordering::Relaxed),
        started.elapsed()
    );
    assert_eq!(calls.swap(0, Ordering::Relaxed), 1);

    // 2. A background refresh returns at once; a load of the same key joins it.
    let refresh = loader.refresh("ETH".to_owned());
    let again = loader.refresh("ETH".to_owned());
    println!("refresh(ETH): {refresh:?}, then {again:?}; background refreshes running: {}", loader.active_refreshes());
    let eth = loader.load("ETH".to_owned()).await.expect("ETH loads");
    println!("load(ETH) joined the refresh: {eth}, source calls {}", calls.swap(0, Ordering::Relaxed));
    assert_eq!(refresh, Refresh::Started);

    // 3. The source's error reaches every waiter of the flight, shared.
    let (a, b) = tokio::join!(loader.load("nope".to_owned()), loader.load("nope".to_owned()));
    match (a, b) {
        (Err(LoadError::Source(a)), Err(LoadError::Source(b))) => {
            println!(
                "two loads of \"nope\": one error, shared ({}): {a}",
                if Arc::ptr_eq(&a, &b) { "same Arc" } else { "copies" }
            );
        }
        other => panic!("expected a source error, got {other:?}"),
    }

    // 4. Limits: two keys take both permits, two wait in line, the fifth is refused at once.
    let keys = ["SOL", "ADA", "DOT", "XRP", "LTC"];
    let pending: Vec<_> = keys.iter().map(|key| loader.load((*key).to_owned())).collect();
    println!("queued now: {} (limit {})", loader.queued(), loader.config().max_queued);
    for (key, load) in keys.iter().zip(pending) {
        match load.await {
            Ok(value) => println!("  {key}: {value}"),
            Err(error) => println!("  {key}: error: {error}"),
        }
    }

    // 5. A call that runs past the timeout is given up.
    let started = Instant::now();
    let hang = loader.load("HANG".to_owned()).await;
    println!("HANG: {} after {:?}", hang.as_ref().map_err(ToString::to_string).unwrap_err(), started.elapsed());
    assert!(matches!(hang, Err(LoadError::Timeout(_))));

    // 6. Shutdown lets running flights finish until a deadline and refuses new work.
    let late = loader.load("BNB".to_owned());
    let report = loader.shutdown(Duration::from_secs(2)).await;
    println!("shutdown: {} finished, {} abandoned; BNB: {:?}", report.finished, report.abandoned, late.await);
    println!("load after shutdown: {}", loader.load("BTC".to_owned()).await.unwrap_err());
}
