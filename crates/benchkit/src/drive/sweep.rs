//! A sweep: each wallet of a list requested once, `c` at a time.
//!
//! This is how the memory benchmark fills the service's cache with a known
//! number of wallets: after a sweep of `n` distinct cold wallets, the
//! memory tier holds exactly those `n` (if it has room). The report's mean
//! positions and body size say what one cached wallet holds.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use http::Uri;
use tokio::sync::mpsc;

use super::{Report, Tally, client, get};

/// Requests `url_prefix` + each of `wallets` once, with `concurrency`
/// requests in flight.
///
/// # Errors
///
/// If a wallet's URL is invalid or `concurrency` is 0.
pub async fn run(url_prefix: &str, wallets: &[String], concurrency: usize) -> anyhow::Result<Report> {
    anyhow::ensure!(concurrency > 0, "invalid concurrency 0");
    let uris: Vec<Uri> = wallets
        .iter()
        .map(|w| format!("{url_prefix}{w}").parse().map_err(|e| anyhow::anyhow!("invalid URL for {w}: {e}")))
        .collect::<anyhow::Result<_>>()?;
    let uris = Arc::new(uris);
    let next = Arc::new(AtomicUsize::new(0));
    let (done, mut results) = mpsc::unbounded_channel();
    let start = Instant::now();
    for _ in 0..concurrency {
        let (uris, next, done, client) = (Arc::clone(&uris), Arc::clone(&next), done.clone(), client());
        tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(uri) = uris.get(i) else { break };
                let sent = Instant::now();
                let outcome = get(&client, uri.clone()).await;
                let _ = done.send((sent.elapsed(), outcome));
            }
        });
    }
    drop(done);
    let mut tally = Tally::default();
    while let Some((latency, outcome)) = results.recv().await {
        tally.add(latency, outcome);
    }
    Ok(tally.report("sweep", start.elapsed()))
}
