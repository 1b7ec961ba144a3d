//! Redis failing under load: killed, restarted, frozen. Not one request may
//! fail, and no request may wait on Redis longer than its timeout.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cache_redis::testing::RedisServer;
use http::Method;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use system_tests::service::default_options;
use system_tests::{Client, TestService, eventually};

use crate::{source, wallet_path};

/// More wallets than tier 1 holds, so that most requests reach Redis.
pub(crate) const WALLETS: usize = 64;
pub(crate) const TIER1_WALLETS: usize = 16;
const REDIS_TIMEOUT_MS: u64 = 100;

/// What a steady stream of requests saw.
#[derive(Debug, Default)]
pub(crate) struct Stream {
    sent: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) worst_micros: AtomicU64,
    pub(crate) failures: std::sync::Mutex<Vec<String>>,
}

impl Stream {
    pub(crate) fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }
}

/// Starts `workers` clients that request random wallets until `stop`.
pub(crate) fn start_stream(
    client: &Client,
    stream: &Arc<Stream>,
    stop: &Arc<AtomicBool>,
    workers: u64,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..workers)
        .map(|worker| {
            let (client, stream, stop) = (client.clone(), Arc::clone(stream), Arc::clone(stop));
            tokio::spawn(async move {
                // Seeded per worker: deterministic, and enough to spread requests.
                let mut rng = SmallRng::seed_from_u64(worker);
                while !stop.load(Ordering::SeqCst) {
                    let path = wallet_path(rng.random_range(0..WALLETS));
                    let started = Instant::now();
                    let result = client.try_send(Method::GET, &path, &[]).await;
                    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                    stream.worst_micros.fetch_max(micros, Ordering::SeqCst);
                    stream.sent.fetch_add(1, Ordering::SeqCst);
                    match result {
                        Ok(reply) if reply.status == 200 => {}
                        Ok(reply) => {
                            stream.failed.fetch_add(1, Ordering::SeqCst);
                            stream.failures.lock().expect("lock").push(format!(
                                "{path}: {} {}",
                                reply.status,
                                reply.text()
                            ));
                        }
                        Err(e) => {
                            stream.failed.fetch_add(1, Ordering::SeqCst);
                            stream.failures.lock().expect("lock").push(format!("{path}: {e}"));
                        }
                    }
                }
            })
        })
        .collect()
}

pub(crate) async fn health_status(client: &Client) -> String {
    client.get("/health").await.json()["status"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_under_load_fails_no_request() {
    let mut redis = RedisServer::start();
    let mut options = default_options();
    options.max_wallets = TIER1_WALLETS;
    let service = TestService::builder(source()).options(options).redis(&redis.url()).start().await;
    let client = service.client();
    let stream = Arc::new(Stream::default());
    let stop = Arc::new(AtomicBool::new(false));
    let workers = start_stream(&client, &stream, &stop, 8);
    let deadline = Duration::from_secs(30);

    eventually("traffic before the outage", deadline, || async { stream.sent() >= 300 }).await;
    assert_eq!(health_status(&client).await, "ok");
    redis.kill();
    let at_kill = stream.sent();
    eventually("/health to say degraded", deadline, || async { health_status(&client).await == "degraded" }).await;
    eventually("traffic during the outage", deadline, || async { stream.sent() >= at_kill + 500 }).await;

    redis.restart();
    let restarted = Instant::now();
    eventually("/health to say ok again", deadline, || async { health_status(&client).await == "ok" }).await;
    let recovery = restarted.elapsed();
    let at_recovery = stream.sent();
    eventually("traffic after recovery", deadline, || async { stream.sent() >= at_recovery + 300 }).await;
    stop.store(true, Ordering::SeqCst);
    for worker in workers {
        worker.await.expect("stream worker");
    }

    let (sent, failed) = (stream.sent(), stream.failed.load(Ordering::SeqCst));
    let worst = Duration::from_micros(stream.worst_micros.load(Ordering::SeqCst));
    println!(
        "FIGURE redis killed mid-stream: {sent} requests sent ({} during the outage), {failed} failed, \
         /health ok again {recovery:?} after the restart, worst request {worst:?}",
        at_recovery - at_kill
    );
    assert_eq!(failed, 0, "failed requests: {:?}", stream.failures.lock().expect("lock"));
    let metrics = client.get("/metrics").await.text();
    assert!(metrics.lines().any(|l| l == "position_cache_redis_up 1"), "{metrics}");
    assert!(!metrics.lines().any(|l| l == "position_cache_redis_hits_total 0"), "tier 2 served hits: {metrics}");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_delays_a_request_by_at_most_its_timeout() {
    let redis = RedisServer::start();
    let mut options = default_options();
    options.max_wallets = TIER1_WALLETS;
    let service = TestService::builder(source())
        .options(options)
        .redis(&redis.url())
        .redis_timeout_ms(REDIS_TIMEOUT_MS)
        .start()
        .await;
    let client = service.client();

    // Normal latency of requests that go past tier 1, with Redis healthy.
    let mut normal = Duration::ZERO;
    for round in 0..2 {
        for i in 0..WALLETS {
            let started = Instant::now();
            assert_eq!(client.get(&wallet_path(i)).await.status, 200);
            if round == 1 {
                normal = normal.max(started.elapsed());
            }
        }
    }

    redis.freeze();
    let mut worst = Duration::ZERO;
    for i in 0..WALLETS {
        let started = Instant::now();
        let reply = client.get(&wallet_path(i)).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        worst = worst.max(started.elapsed());
    }
    let health = health_status(&client).await;
    redis.thaw();
    println!(
        "FIGURE redis frozen: worst request {worst:?} against a {REDIS_TIMEOUT_MS} ms Redis timeout and {normal:?} \
         worst normal latency; /health said {health}"
    );
    // A bound, not a speed: without the timeout a request would hang for as
    // long as Redis stays frozen. The slack absorbs a loaded test machine.
    let bound = Duration::from_millis(REDIS_TIMEOUT_MS) + normal + Duration::from_millis(400);
    assert!(worst <= bound, "a request waited {worst:?} on a frozen Redis (bound {bound:?})");
    assert_eq!(health, "degraded");
    eventually("/health to recover after the thaw", Duration::from_secs(30), || async {
        health_status(&client).await == "ok"
    })
    .await;
    service.stop().await;
}
