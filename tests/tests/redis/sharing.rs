//! Replicas sharing one Redis: warm data across replicas and restarts,
//! exact round trips, invalidation through both tiers, corrupt values.

use std::time::Duration;

use cache_core::ManualClock;
use cache_redis::testing::RedisServer;
use system_tests::{TestService, eventually};

use crate::{KEY, PATH, source};

const DEADLINE: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_second_replica_serves_the_first_ones_entry_with_the_same_age() {
    let redis = RedisServer::start();
    let clock = ManualClock::starting_now();
    let (source_a, source_b) = (source(), source());
    let a = TestService::builder(source_a.clone()).redis(&redis.url()).clock(&clock).start().await;
    let b = TestService::builder(source_b.clone()).redis(&redis.url()).clock(&clock).start().await;

    let first = a.client().get(PATH).await;
    assert_eq!(first.json()["cached"], false);
    // The write to Redis happens in the background.
    eventually_in_redis(&redis, KEY).await;

    clock.advance(Duration::from_secs(30));
    let from_b = b.client().get(PATH).await;
    assert_eq!(from_b.status, 200);
    let body = from_b.json();
    assert_eq!(
        (body["cached"].as_bool(), body["stale"].as_bool(), body["age_seconds"].as_u64()),
        (Some(true), Some(false), Some(30))
    );
    assert_eq!(from_b.header("cache-status"), "positions-api; hit; ttl=30; detail=redis");
    assert_eq!(source_b.calls(), 0, "the second replica did not call its source");
    assert_eq!(body["positions"], first.json()["positions"], "the same positions, digit for digit");
    assert_eq!(body["positions"][0]["quantity"], "1520.250000000000000000001");
    assert_eq!(body["computed_at"], first.json()["computed_at"]);

    let again = b.client().get(PATH).await;
    assert!(again.header("cache-status").contains("detail=memory"), "now in the second replica's memory too");
    let metrics = b.client().get("/metrics").await.text();
    assert!(metrics.lines().any(|l| l == "position_cache_redis_hits_total 1"), "{metrics}");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_stale_entry_in_redis_is_served_at_once_and_refreshed() {
    let redis = RedisServer::start();
    let clock = ManualClock::starting_now();
    let a = TestService::builder(source()).redis(&redis.url()).clock(&clock).start().await;
    a.client().get(PATH).await;
    eventually_in_redis(&redis, KEY).await;

    // A replica starting later, after the TTL: warm but stale.
    clock.advance(system_tests::service::TTL + Duration::from_secs(5));
    let later_source = source();
    let later = TestService::builder(later_source.clone()).redis(&redis.url()).clock(&clock).start().await;
    let reply = later.client().get(PATH).await.json();
    assert_eq!((reply["cached"].as_bool(), reply["stale"].as_bool()), (Some(true), Some(true)));
    eventually("the background refresh", DEADLINE, || async { later_source.calls() == 1 }).await;
    a.stop().await;
    later.stop().await;
}

#[tokio::test]
async fn delete_drops_the_wallet_from_memory_and_redis() {
    let redis = RedisServer::start();
    let service = TestService::builder(source()).redis(&redis.url()).admin_token("t0ken").start().await;
    let client = service.client();
    client.get(PATH).await;
    eventually_in_redis(&redis, KEY).await;

    let deleted = client.delete(PATH, Some("t0ken")).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    assert_eq!(deleted.json()["removed"], true);
    assert_eq!(redis.get_raw(KEY).await, None, "gone from Redis");

    client.get("/v4/positions/0xab00000000000000000000000000000000000001").await;
    client.get("/v4/positions/0xcd00000000000000000000000000000000000002").await;
    eventually_in_redis(&redis, "poscache:positions:v2:{0xab00000000000000000000000000000000000001}").await;
    let by_pattern = client.delete("/v4/positions?pattern=0xab*", Some("t0ken")).await.json();
    assert!(by_pattern["removed"].as_u64().is_some_and(|n| n >= 1), "{by_pattern}");
    assert_eq!(redis.get_raw("poscache:positions:v2:{0xab00000000000000000000000000000000000001}").await, None);
    service.stop().await;
}

#[tokio::test]
async fn a_corrupt_value_in_redis_is_a_miss_a_counter_and_then_replaced() {
    let redis = RedisServer::start();
    let source = source();
    // One replica alone: with fleet coordination a miss reads tier 2 once
    // more under the wallet's lease, and sees the garbage twice.
    let service = TestService::builder(source.clone())
        .redis(&redis.url())
        .redis_args(&["--fleet-coordination", "false"])
        .start()
        .await;
    redis.set_raw(KEY, b"\x00\x01garbage that is no envelope").await;

    let reply = service.client().get(PATH).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["cached"], false, "garbage is a miss: the source answered");
    assert_eq!(source.calls(), 1);
    let metrics = service.client().get("/metrics").await.text();
    assert!(metrics.lines().any(|l| l == "position_cache_redis_corrupt_values_total 1"), "{metrics}");

    eventually("the garbage to be replaced", DEADLINE, || async {
        let raw = redis.get_raw(KEY).await.expect("a value");
        cache_redis::envelope::decode::<positions_api::StoredSnapshot>(&raw).is_ok()
    })
    .await;
    service.stop().await;
}

async fn eventually_in_redis(redis: &RedisServer, key: &str) {
    eventually("the entry to reach Redis", DEADLINE, || async { redis.get_raw(key).await.is_some() }).await;
}

#[tokio::test]
async fn a_restarted_replica_warms_its_memory_from_redis_keeping_the_age() {
    let redis = RedisServer::start();
    let clock = ManualClock::starting_now();
    let warm = positions_api::WarmOptions { keys: 10, snapshot_path: None, timeout: Duration::from_secs(30) };
    let options = || positions_api::ServiceOptions { warm: warm.clone(), ..system_tests::service::default_options() };
    let first_source = source();
    let first =
        TestService::builder(first_source.clone()).options(options()).redis(&redis.url()).clock(&clock).start().await;
    for _ in 0..3 {
        assert_eq!(first.client().get(PATH).await.status, 200);
    }
    eventually_in_redis(&redis, KEY).await;
    first.stop().await;

    clock.advance(Duration::from_secs(20));
    let second_source = source();
    let second =
        TestService::builder(second_source.clone()).options(options()).redis(&redis.url()).clock(&clock).start().await;
    let client = second.client();
    eventually("/readyz to answer 200", DEADLINE, || async { client.get("/readyz").await.status == 200 }).await;
    assert_eq!(second.app.service().health().lru_size, 1, "filled from Redis before any request");
    let answer = client.get(PATH).await;
    assert_eq!(answer.header("cache-status"), "positions-api; hit; ttl=40; detail=memory");
    assert_eq!(answer.json()["age_seconds"], 20, "the entry kept its fetched_at");
    assert_eq!(second_source.calls(), 0);
    second.stop().await;
}
