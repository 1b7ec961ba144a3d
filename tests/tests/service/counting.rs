//! What each answer counts as: a hit (fresh or stale) when a cache served
//! it, a miss for everything else, and `/health`'s hit rate from the same
//! counters.

use std::sync::Arc;
use std::time::Duration;

use system_tests::service::{TTL, default_options};
use system_tests::{Behavior, FakeSource, TestService, eventually};
use telemetry::CacheCounts;

use crate::PATH;

const DEADLINE: Duration = Duration::from_secs(10);

/// Hits, stale serves and misses since `before`.
fn delta(service: &TestService, before: CacheCounts) -> (u64, u64, u64) {
    let now = service.metrics.cache.counts();
    (now.hits - before.hits, now.stale_serves - before.stale_serves, now.misses - before.misses)
}

#[tokio::test]
async fn every_answer_not_served_from_a_cache_is_a_miss() {
    let source = Arc::new(FakeSource::new());
    let service = TestService::with_source(source.clone()).await;
    let client = service.client();
    let forced = format!("{PATH}?refresh=true");
    let start = service.metrics.cache.counts();

    client.get(PATH).await;
    assert_eq!(delta(&service, start), (0, 0, 1), "a cold wallet");
    client.get(PATH).await;
    assert_eq!(delta(&service, start), (1, 0, 1), "a fresh hit");

    service.clock.advance(TTL + Duration::from_secs(1));
    assert_eq!(client.get(PATH).await.json()["stale"], true);
    assert_eq!(delta(&service, start), (2, 1, 1), "a stale serve is a hit and a stale serve");
    eventually("the refresh to finish", DEADLINE, || async {
        service.app.service().health().active_refresh_tasks == 0
    })
    .await;

    assert_eq!(client.get(&forced).await.json()["cached"], false);
    assert_eq!(delta(&service, start), (2, 1, 2), "a forced refresh waits for the source");

    source.set(Behavior::Fail);
    let fail_safe = client.get(&forced).await;
    assert_eq!(fail_safe.status, 200);
    assert_eq!(fail_safe.json()["cached"], true);
    assert_eq!(delta(&service, start), (2, 1, 3), "a fail-safe answer after a failed load");

    let cold = client.get("/v4/positions/0x0000000000000000000000000000000000000bad").await;
    assert_eq!(cold.status, 502);
    assert_eq!(delta(&service, start), (2, 1, 4), "an error after a load");

    assert_eq!(client.get("/v4/positions/nope").await.status, 400);
    assert_eq!(delta(&service, start), (2, 1, 4), "a bad request is no lookup");

    let health = client.get("/health").await.json();
    assert_eq!(health["cache_stats"]["hit_rate_pct"], 33.3, "2 hits of 6 answers");
    service.stop().await;
}

#[tokio::test]
async fn with_caching_off_every_answer_is_a_miss() {
    let mut options = default_options();
    options.cache_enabled = false;
    let service = TestService::start(options, Arc::new(FakeSource::new()), None).await;
    let client = service.client();
    let start = service.metrics.cache.counts();
    for _ in 0..3 {
        assert_eq!(client.get(PATH).await.status, 200);
    }
    assert_eq!(client.get(&format!("{PATH}?refresh=true")).await.status, 200);
    assert_eq!(delta(&service, start), (0, 0, 4));
    assert_eq!(client.get("/health").await.json()["cache_stats"]["hit_rate_pct"], 0.0);
    service.stop().await;
}
