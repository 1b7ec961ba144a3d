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
//!
//! With several URL prefixes (several replicas of the service), the
//! requests go to them in turn, whatever the wallet: each replica sees the
//! same popularity at a share of the rate.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::Uri;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand_distr::{Distribution, Exp, Zipf};
use tokio::sync::mpsc;

use super::{Answer, HttpClient, Report, Tally, client, get};
use crate::latency::Latencies;

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
    /// `http://127.0.0.1:8080/v4/positions/`); with several, the requests
    /// go to each in turn.
    pub url_prefixes: Vec<String>,
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
/// If the plan has no wallets or no URL prefix, a negative Zipf exponent, a
/// rate that is not positive, or a wallet's URL is invalid.
pub async fn run(plan: Plan) -> anyhow::Result<Report> {
    let targets = Arc::new(Targets::new(&plan.url_prefixes, &plan.wallets, plan.alpha)?);
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

/// The wallets' URLs at each prefix, most popular first, their
/// popularity, and whose turn it is.
struct Targets {
    /// One list of URLs per prefix, each in the wallets' order.
    uris: Vec<Vec<Uri>>,
    zipf: Zipf<f64>,
    /// Requests picked so far, for taking the prefixes in turn.
    picked: AtomicUsize,
}

impl Targets {
    fn new(prefixes: &[String], wallets: &[String], alpha: f64) -> anyhow::Result<Self> {
        anyhow::ensure!(!wallets.is_empty(), "no wallets to request");
        anyhow::ensure!(!prefixes.is_empty(), "no URL prefix to request");
        let uris = prefixes
            .iter()
            .map(|prefix| {
                wallets
                    .iter()
                    .map(|w| format!("{prefix}{w}").parse().map_err(|e| anyhow::anyhow!("invalid URL for {w}: {e}")))
                    .collect::<anyhow::Result<Vec<Uri>>>()
            })
            .collect::<anyhow::Result<_>>()?;
        let zipf = Zipf::new(wallets.len() as f64, alpha)
            .map_err(|e| anyhow::anyhow!("invalid Zipf exponent {alpha}: {e}"))?;
        Ok(Self { uris, zipf, picked: AtomicUsize::new(0) })
    }

    /// The index of a wallet drawn by popularity: Zipf's ranks are `1..=n`.
    fn pick_index(&self, rng: &mut SmallRng) -> usize {
        let rank = self.zipf.sample(rng);
        #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "ranks are whole numbers in 1..=n")]
        let index = (rank as usize).saturating_sub(1);
        index.min(self.uris[0].len() - 1)
    }

    /// A wallet drawn by popularity, at the next prefix in turn. The turn
    /// draws nothing from `rng`, so one prefix or several, a seed picks the
    /// same wallets.
    fn pick(&self, rng: &mut SmallRng) -> Uri {
        let wallet = self.pick_index(rng);
        let turn = self.picked.fetch_add(1, Ordering::Relaxed) % self.uris.len();
        self.uris[turn][wallet].clone()
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
    let mut rng = SmallRng::seed_from_u64(seed);
    // Exponential gaps between arrivals make a Poisson process. The rate
    // was checked to be positive and finite.
    let gaps = Exp::new(rate).ok()?;
    let start = tokio::time::Instant::now();
    let mut offset = Duration::ZERO;
    loop {
        offset += Duration::from_secs_f64(gaps.sample(&mut rng));
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
        // Seeding mixes the seed, so neighbouring seeds give unrelated
        // sequences.
        let mut rng = SmallRng::seed_from_u64(seed.wrapping_add(worker as u64));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(n: usize, alpha: f64) -> Targets {
        let wallets: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        Targets::new(&["http://127.0.0.1/".to_owned()], &wallets, alpha).expect("valid exponent")
    }

    #[test]
    fn picks_follow_zipf_with_the_first_wallet_most_popular() {
        let targets = targets(100, 1.0);
        let mut rng = SmallRng::seed_from_u64(11);
        let draws = 200_000;
        let mut counts = [0_u32; 100];
        for _ in 0..draws {
            counts[targets.pick_index(&mut rng)] += 1;
        }
        // Under Zipf(1.0) over 100 ranks, rank k has probability 1 / (k H),
        // H = 5.187...; within 5% of that share (many standard deviations
        // at this sample size, so the test is not flaky).
        let harmonic: f64 = (1..=100).map(|k| 1.0 / f64::from(k)).sum();
        for (index, rank) in [(0, 1.0), (1, 2.0), (9, 10.0), (49, 50.0)] {
            let expected = 1.0 / (rank * harmonic);
            let seen = f64::from(counts[index]) / f64::from(draws);
            assert!((seen - expected).abs() < 0.05 * expected + 0.0005, "index {index}: {seen} vs {expected}");
        }
    }

    #[test]
    fn the_same_seed_picks_the_same_wallets() {
        let targets = targets(10_000, 1.0);
        let draw = |seed| {
            let mut rng = SmallRng::seed_from_u64(seed);
            (0..100).map(|_| targets.pick_index(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(draw(42), draw(42));
        assert_ne!(draw(42), draw(43));
        assert!(draw(7).iter().all(|&i| i < 10_000));
    }

    #[test]
    fn a_negative_exponent_is_refused() {
        let error = Targets::new(&["http://127.0.0.1/".to_owned()], &["w".to_owned()], -1.0).err().expect("refused");
        assert!(error.to_string().starts_with("invalid Zipf exponent -1"), "{error}");
    }

    #[test]
    fn several_prefixes_take_turns_and_pick_the_same_wallets() {
        let prefixes: Vec<String> =
            ["http://127.0.0.1:1/", "http://127.0.0.1:2/", "http://127.0.0.1:3/"].map(str::to_owned).to_vec();
        let wallets: Vec<String> = (0..1_000).map(|i| i.to_string()).collect();
        let fleet = Targets::new(&prefixes, &wallets, 1.0).expect("valid");
        let one = Targets::new(&prefixes[..1], &wallets, 1.0).expect("valid");
        let (mut fleet_rng, mut one_rng) = (SmallRng::seed_from_u64(5), SmallRng::seed_from_u64(5));
        for i in 0..300 {
            let (at_fleet, at_one) = (fleet.pick(&mut fleet_rng), one.pick(&mut one_rng));
            assert_eq!(at_fleet.port_u16(), Some(1 + (i % 3)), "request {i} goes to the next prefix");
            assert_eq!(at_fleet.path(), at_one.path(), "request {i} asks for the same wallet");
        }
        assert!(Targets::new(&[], &wallets, 1.0).is_err(), "no prefix is refused");
        assert!(Targets::new(&prefixes, &[], 1.0).is_err(), "no wallet is refused");
    }
}
