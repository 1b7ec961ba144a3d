//! When the source fails: stale-if-error, errors as JSON with the right
//! status, and nothing cached from a failure.

use std::sync::Arc;
use std::time::Duration;

use system_tests::service::{MAX_STALE, STALE_IF_ERROR, TTL, default_options};
use system_tests::{Behavior, FakeSource, TestService, eventually};

use crate::PATH;

const DEADLINE: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_failing_source_is_covered_by_stale_data_within_stale_if_error() {
    let source = Arc::new(FakeSource::new());
    let service = TestService::with_source(source.clone()).await;
    let client = service.client();
    client.get(PATH).await;
    source.set(Behavior::Fail);

    // Within stale-while-revalidate: stale at once; the refresh fails and
    // the old value stays.
    service.clock.advance(TTL + Duration::from_secs(5));
    assert_eq!(client.get(PATH).await.json()["stale"], true);
    eventually("the failed refresh to be counted", DEADLINE, || async {
        service.metrics.cache.counts().refresh_errors == 1
    })
    .await;
    assert_eq!(client.get(PATH).await.json()["positions"][0]["realized_pnl"], "1", "the old value stayed");

    // Past stale-while-revalidate but within stale-if-error: the request
    // waits for a load, which fails, and gets the old value instead.
    service.clock.advance(MAX_STALE);
    let reply = client.get(PATH).await;
    assert_eq!(reply.status, 200);
    let body = reply.json();
    assert_eq!((body["cached"].as_bool(), body["stale"].as_bool()), (Some(true), Some(true)));
    assert_eq!(body["age_seconds"].as_u64(), Some((TTL + MAX_STALE).as_secs() + 5));
    assert!(reply.header("cache-status").contains("detail=memory-stale-if-error"), "{}", reply.header("cache-status"));
    assert!(service.metrics.cache.counts().refresh_errors >= 2);
    let metrics = client.get("/metrics").await.text();
    assert!(metrics.contains("position_cache_refresh_errors_total "), "{metrics}");

    // Past stale-if-error: nothing servable.
    service.clock.advance(STALE_IF_ERROR);
    let reply = client.get(PATH).await;
    assert_eq!(reply.status, 502);
    assert_eq!(reply.json()["error"], "source_failed");
    service.stop().await;
}

#[tokio::test]
async fn a_cold_wallet_with_a_failing_source_is_a_502_and_nothing_is_cached() {
    let source = Arc::new(FakeSource::new());
    source.set(Behavior::Fail);
    let service = TestService::with_source(source.clone()).await;
    let client = service.client();
    let reply = client.get(PATH).await;
    assert_eq!(reply.status, 502);
    let body = reply.json();
    assert_eq!(body["error"], "source_failed");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("500")), "{body}");

    source.set(Behavior::Succeed);
    let reply = client.get(PATH).await.json();
    assert_eq!(reply["cached"], false, "the failure was not cached");
    assert_eq!(source.calls(), 2);
    service.stop().await;
}

#[tokio::test]
async fn a_source_that_hangs_is_a_504_after_the_timeout() {
    let source = Arc::new(FakeSource::new());
    source.set(Behavior::Hang);
    let mut options = default_options();
    options.refresh.timeout = Duration::from_millis(200);
    let service = TestService::start(options, source.clone(), None).await;
    let started = std::time::Instant::now();
    let reply = service.client().get(PATH).await;
    assert_eq!(reply.status, 504);
    assert_eq!(reply.json()["error"], "source_timeout");
    assert!(started.elapsed() < Duration::from_secs(5), "answered after the timeout, not much later");
    service.stop().await;
}

#[tokio::test]
async fn a_panicking_source_is_an_error_not_a_crash() {
    let source = Arc::new(FakeSource::new());
    source.set(Behavior::Panic);
    let service = TestService::with_source(source.clone()).await;
    let client = service.client();
    let reply = client.get(PATH).await;
    assert_eq!(reply.status, 502);
    assert_eq!(reply.json()["error"], "source_failed");
    source.set(Behavior::Succeed);
    assert_eq!(client.get(PATH).await.status, 200, "the service carries on");
    service.stop().await;
}

#[tokio::test]
async fn past_the_load_queue_requests_are_refused_with_503_and_retry_after() {
    let source = Arc::new(FakeSource::new());
    let mut options = default_options();
    options.refresh.concurrency = std::num::NonZeroUsize::MIN;
    options.refresh.max_queued = 0;
    let service = TestService::start(options, source.clone(), None).await;
    let client = service.client();
    source.hold();
    let first = tokio::spawn({
        let client = client.clone();
        async move { client.get(PATH).await }
    });
    eventually("the first load to start", DEADLINE, || async { source.calls() == 1 }).await;
    let refused = client.get("/v4/positions/0x0000000000000000000000000000000000000002").await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.header("retry-after"), "1");
    assert_eq!(refused.json()["error"], "overloaded");
    source.release();
    assert_eq!(first.await.expect("request task").status, 200);
    assert_eq!(service.metrics.cache.counts().overload_rejections, 1);
    service.stop().await;
}
