//! `/health` and the Redis gauges follow Redis with no request traffic: a
//! replica whose answers all come from memory still sees Redis die and come
//! back, through the tier's background `PING` every
//! `REDIS_HEALTH_INTERVAL_MS` (1 s by default). Without Redis, the gauges
//! are absent rather than a 0 that pages someone.

use std::time::Duration;

use cache_redis::testing::RedisServer;
use system_tests::{Client, TestService, eventually};

use crate::{PATH, source};

/// The default `REDIS_HEALTH_INTERVAL_MS`.
const INTERVAL: Duration = Duration::from_secs(1);

/// Two intervals, the promise, plus room for a loaded machine: a bound on
/// the wait, not a measurement.
const WITHIN: Duration = Duration::from_secs(2 + 2);

async fn status(client: &Client) -> String {
    client.get("/health").await.json()["status"].as_str().unwrap_or_default().to_owned()
}

async fn redis_up(client: &Client) -> Option<String> {
    let metrics = client.get("/metrics").await.text();
    metrics.lines().find_map(|line| line.strip_prefix("position_cache_redis_up ").map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_loss_and_return_show_in_health_and_metrics_without_traffic() {
    let mut redis = RedisServer::start();
    let service = TestService::builder(source()).redis(&redis.url()).start().await;
    let client = service.client();
    eventually("the first probe answers", WITHIN, || async { status(&client).await == "ok" }).await;
    // The one wallet anyone asks for is in memory: from here on, nothing a
    // user does would reach Redis.
    assert_eq!(client.get(PATH).await.status, 200);
    assert!(client.get(PATH).await.header("cache-status").contains("detail=memory"));

    redis.kill();
    let killed = tokio::time::Instant::now();
    eventually("/health to say degraded with no traffic", WITHIN, || async { status(&client).await == "degraded" })
        .await;
    let seen_down = killed.elapsed();
    assert_eq!(redis_up(&client).await.as_deref(), Some("0"));

    redis.restart();
    let restarted = tokio::time::Instant::now();
    eventually("/health to say ok again with no traffic", WITHIN, || async { status(&client).await == "ok" }).await;
    let seen_up = restarted.elapsed();
    assert_eq!(redis_up(&client).await.as_deref(), Some("1"));
    println!(
        "FIGURE no traffic, {INTERVAL:?} health interval: degraded {seen_down:?} after redis was killed, \
         ok {seen_up:?} after it came back"
    );
    service.stop().await;
}

#[tokio::test]
async fn without_redis_the_redis_gauges_are_absent() {
    let service = TestService::builder(source()).start().await;
    let client = service.client();
    assert_eq!(client.get(PATH).await.status, 200);
    let metrics = client.get("/metrics").await.text();
    for gauge in ["position_cache_redis_up", "position_cache_redis_breaker_state"] {
        assert!(!metrics.contains(gauge), "{gauge} is exposed without redis:\n{metrics}");
    }
    assert_eq!(status(&client).await, "ok");
    service.stop().await;
}
