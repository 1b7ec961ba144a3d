//! Zipf-distributed requests over a list of wallets, for a duration.
//!
//! Two ways to pace them:
//!
//! - **open loop** at a fixed rate: arrivals are a Poisson process (users
//!   do not wait for each other), and each request is sent at its
//!   scheduled time on whatever pooled connection is free, in a task of its
//!   own. A slow answer therefore cannot hold back the requests behind it
//!   and hide its cost (coordinated omission), which is what a closed loop
//!   does. Latency counts from when the request was sent: tokio's timer
//!   wakes up to a millisecond after the scheduled time, which would
//!   otherwise add a millisecond of the driver's own to every answer. How
//!   late the driver sent is recorded apart (`send_lag_ms`), so a driver
//!   starved of CPU shows instead of hiding.
//! - **closed loop** over `c` connections: each sends its next request as
//!   soon as the last is answered; for throughput, not for tail latency.
//!
//! Requests still unanswered when the duration ends are waited for (up to
//! the request timeout) and counted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Uri;
use tokio::sync::mpsc;

use super::{Answer, HttpClient, Report, Tally, client, get};
use crate::latency::Latencies;
use crate::rng::SplitMix64;
use crate::zipf::Zipf;

/// How requests are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// Poisson arrivals at this many requests per second.
    Rate(f64),
    /// This many connections, each sending as soon as it is answered.
    Connections(usize),
}

/// What to request.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Prepended to each wallet to make its URL (such as
    /// `http://127.0.0.1:8080/v4/positions/`).
    pub url_prefix: String,
    /// The wallets, most popular first.
    pub wallets: Vec<String>,
    /// The Zipf exponent.
    pub alpha: f64,
    /// How requests are paced.
    pub pace: Pace,
    /// How long to send for.
    pub duration: Duration,
    /// The random seed of the wallet choices and arrival times.
    pub seed: u64,
}

/// Runs `plan`.
///
/// # Errors
///
/// If the plan has no wallets, a rate that is not positive, or a wallet's
/// URL is invalid.
pub async fn run(plan: Plan) -> anyhow::Result<Report> {
    anyhow::ensure!(!plan.wallets.is_empty(), "no wallets to request");
    let uris: Vec<Uri> = plan
        .wallets
        .iter()
        .map(|w| format!("{}{w}", plan.url_prefix).parse().map_err(|e| anyhow::anyhow!("invalid URL for {w}: {e}")))
        .collect::<anyhow::Result<_>>()?;
    let targets = Arc::new(Targets { uris, zipf: Zipf::new(plan.wallets.len(), plan.alpha) });
    let (done, mut results) = mpsc::unbounded_channel::<(Duration, Result<Answer, String>)>();
    let start = Instant::now();
    let sender = match plan.pace {
        Pace::Rate(rate) => {
            anyhow::ensure!(rate.is_finite() && rate > 0.0, "invalid rate {rate}: expected requests per second > 0");
            tokio::spawn(open_loop(Arc::clone(&targets), rate, plan.duration, plan.seed, done))
        }
        Pace::Connections(connections) => {
            anyhow::ensure!(connections > 0, "invalid connection count 0");
            tokio::spawn(closed_loop(Arc::clone(&targets), connections, plan.duration, plan.seed, done))
        }
    };
    let mut tally = Tally::default();
    while let Some((latency, outcome)) = results.recv().await {
        tally.add(latency, outcome);
    }
    let lag = sender.await?;
    let mut report = tally.report("zipf", start.elapsed());
    report.send_lag_ms = lag.map(|lag| lag.summary());
    Ok(report)
}

struct Targets {
    uris: Vec<Uri>,
    zipf: Zipf,
}

impl Targets {
    fn pick(&self, rng: &mut SplitMix64) -> Uri {
        self.uris[self.zipf.sample(rng)].clone()
    }
}

type Results = mpsc::UnboundedSender<(Duration, Result<Answer, String>)>;

/// Sends at the rate until the duration is over; returns how late each
/// request was sent.
async fn open_loop(
    targets: Arc<Targets>,
    rate: f64,
    duration: Duration,
    seed: u64,
    done: Results,
) -> Option<Latencies> {
    let client = client();
    let mut lag = Latencies::new();
    let mut rng = SplitMix64::new(seed);
    let start = tokio::time::Instant::now();
    let mut offset = Duration::ZERO;
    loop {
        // Exponential gaps between arrivals make a Poisson process.
        offset += Duration::from_secs_f64(-(1.0 - rng.next_f64()).ln() / rate);
        if offset >= duration {
            break;
        }
        let scheduled = start + offset;
        tokio::time::sleep_until(scheduled).await;
        lag.record(scheduled.elapsed());
        let (client, uri, done) = (client.clone(), targets.pick(&mut rng), done.clone());
        tokio::spawn(async move {
            let sent = Instant::now();
            let outcome = get(&client, uri).await;
            let _ = done.send((sent.elapsed(), outcome));
        });
    }
    Some(lag)
}

async fn closed_loop(
    targets: Arc<Targets>,
    connections: usize,
    duration: Duration,
    seed: u64,
    done: Results,
) -> Option<Latencies> {
    let deadline = Instant::now() + duration;
    let mut workers = Vec::with_capacity(connections);
    for worker in 0..connections {
        let (targets, done) = (Arc::clone(&targets), done.clone());
        // One client per worker, so each keeps its own connection.
        let client: HttpClient = client();
        let mut rng = SplitMix64::new(seed.wrapping_add(worker as u64).wrapping_mul(0x9e37_79b9));
        workers.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let sent = Instant::now();
                let outcome = get(&client, targets.pick(&mut rng)).await;
                let _ = done.send((sent.elapsed(), outcome));
            }
        }));
    }
    for worker in workers {
        let _ = worker.await;
    }
    // Each request is sent as soon as the last is answered: never late.
    None
}
