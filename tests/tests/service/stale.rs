//! Fresh hits, the stale-while-revalidate flow, forced refreshes and the
//! feature flag.

use std::sync::Arc;
use std::time::Duration;

use system_tests::service::{MAX_STALE, TTL, default_options};
use system_tests::{FakeSource, TestService, eventually};

use crate::{PATH, WALLET};

const DEADLINE: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_miss_loads_then_hits_are_fresh_and_cached() {
    let source = Arc::new(FakeSource::new());
    let service = TestService::with_source(source.clone()).await;
    let client = service.client();

    let first = client.get(PATH).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let body = first.json();
    assert_eq!(body["wallet"], WALLET);
    assert_eq!(
        (body["cached"].as_bool(), body["stale"].as_bool(), body["age_seconds"].as_u64()),
        (Some(false), Some(false), Some(0))
    );
    assert_eq!(body["positions"][0]["realized_pnl"], "1");
    assert_eq!(first.header("cache-status"), "positions-api; fwd=miss; stored");
    assert_eq!(first.header("content-type"), "application/json");

    service.clock.advance(Duration::from_secs(30));
    let second = client.get(PATH).await;
    let body = second.json();
    assert_eq!(
        (body["cached"].as_bool(), body["stale"].as_bool(), body["age_seconds"].as_u64()),
        (Some(true), Some(false), Some(30))
    );
    assert_eq!(second.header("age"), "30");
    assert_eq!(second.header("cache-control"), "max-age=60, stale-while-revalidate=120, stale-if-error=600");
    assert_eq!(second.header("cache-status"), "positions-api; hit; ttl=30; detail=memory");
    assert_eq!(source.calls(), 1, "a hit does not call the source");
    service.stop().await;
}

#[tokio::test]
async fn stale_data_is_served_at_once_while_exactly_one_refresh_runs() {
    let source = Arc::new(FakeSource::new());
    let service = TestService::with_source(source.clone()).await;
    let client = service.client();
    assert_eq!(client.get(PATH).await.status, 200);

    service.clock.advance(TTL + Duration::from_secs(1));
    // Hold the refresh so that the test sees it in flight.
    source.hold();
    let stale = client.get(PATH).await;
    let body = stale.json();
    assert_eq!((body["cached"].as_bool(), body["stale"].as_bool()), (Some(true), Some(true)));
    assert_eq!(body["age_seconds"].as_u64(), Some(TTL.as_secs() + 1));
    assert_eq!(body["positions"][0]["realized_pnl"], "1", "the old data, at once");
    assert_eq!(stale.header("cache-status"), "positions-api; hit; ttl=-1; detail=memory");
    eventually("one refresh to start", DEADLINE, || async { source.calls() == 2 }).await;

    // More stale reads while the refresh runs start no second one.
    for _ in 0..5 {
        assert_eq!(client.get(PATH).await.json()["stale"], true);
    }
    assert_eq!(service.app.service().health().active_refresh_tasks, 1);
    source.release();
    eventually("the refresh to finish", DEADLINE, || async {
        service.app.service().health().active_refresh_tasks == 0
    })
    .await;

    let fresh = client.get(PATH).await.json();
    assert_eq!(
        (fresh["cached"].as_bool(), fresh["stale"].as_bool(), fresh["age_seconds"].as_u64()),
        (Some(true), Some(false), Some(0))
    );
    assert_eq!(fresh["positions"][0]["realized_pnl"], "2", "the refreshed data");
    assert_eq!(source.calls(), 2, "exactly one refresh");
    let counts = service.metrics.cache.counts();
    assert_eq!((counts.refresh_triggers, counts.stale_serves), (1, 6));
    service.stop().await;
}

#[tokio::test]
async fn past_the_stale_window_a_request_waits_for_a_load() {
    let source = Arc::new(FakeSource::new());
    let service = TestService::with_source(source.clone()).await;
    let client = service.client();
    client.get(PATH).await;
    service.clock.advance(TTL + MAX_STALE + Duration::from_secs(1));
    let body = client.get(PATH).await.json();
    assert_eq!((body["cached"].as_bool(), body["stale"].as_bool()), (Some(false), Some(false)));
    assert_eq!(body["positions"][0]["realized_pnl"], "2");
    service.stop().await;
}

#[tokio::test]
async fn a_forced_refresh_bypasses_the_cache_and_concurrent_ones_share_a_load() {
    let source = Arc::new(FakeSource::new());
    let service = TestService::with_source(source.clone()).await;
    let client = service.client();
    client.get(PATH).await;
    // The forced load fetches later than the first: two fetches at one
    // instant keep the first stored, in memory as in Redis.
    service.clock.advance(Duration::from_millis(1));

    source.hold();
    let forced: Vec<_> = (0..20)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get(&format!("{PATH}?refresh=true")).await })
        })
        .collect();
    // Every forced refresh counts its miss just before it joins the load,
    // so once all twenty are counted, all twenty are in the one flight and
    // the source may go on.
    eventually("all forced refreshes to join the load", DEADLINE, || async {
        service.metrics.cache.counts().misses == 21
    })
    .await;
    assert_eq!(source.calls(), 2);
    // A plain read meanwhile still gets the cached value at once.
    assert_eq!(client.get(PATH).await.json()["positions"][0]["realized_pnl"], "1");
    source.release();
    for reply in forced {
        let reply = reply.await.expect("request task");
        let body = reply.json();
        assert_eq!(body["cached"], false);
        assert_eq!(body["positions"][0]["realized_pnl"], "2");
        assert_eq!(reply.header("cache-status"), "positions-api; fwd=request; stored");
    }
    assert_eq!(source.calls(), 2, "twenty forced refreshes, one load");
    let after = client.get(PATH).await.json();
    assert_eq!(
        (after["cached"].as_bool(), after["positions"][0]["realized_pnl"].as_str()),
        (Some(true), Some("2")),
        "and it was stored"
    );
    service.stop().await;
}

#[tokio::test]
async fn with_caching_off_every_request_loads() {
    let source = Arc::new(FakeSource::new());
    let mut options = default_options();
    options.cache_enabled = false;
    let service = TestService::start(options, source.clone(), None).await;
    let client = service.client();
    for call in 1..=3 {
        let reply = client.get(PATH).await;
        let body = reply.json();
        assert_eq!((body["cached"].as_bool(), body["stale"].as_bool()), (Some(false), Some(false)));
        assert_eq!(body["positions"][0]["realized_pnl"], call.to_string());
        assert_eq!(reply.header("cache-control"), "no-store");
        assert_eq!(reply.header("cache-status"), "positions-api; fwd=bypass");
    }
    assert_eq!(source.calls(), 3);
    let health = client.get("/health").await.json();
    assert_eq!(
        (health["cache_stats"]["enabled"].as_bool(), health["cache_stats"]["lru_size"].as_u64()),
        (Some(false), Some(0))
    );
    service.stop().await;
}

#[tokio::test]
async fn a_wallet_with_no_positions_is_cached_like_any_other() {
    let service = TestService::with_source(Arc::new(positions_api::source::ledger::Ledger::sample())).await;
    let client = service.client();
    let empty = "/v4/positions/0x0000000000000000000000000000000000000001";
    let first = client.get(empty).await.json();
    assert_eq!(first["positions"], serde_json::json!([]));
    assert_eq!(first["cached"], false);
    assert_eq!(client.get(empty).await.json()["cached"], true);
    service.stop().await;
}

#[tokio::test]
async fn a_forced_refresh_soon_after_a_load_answers_the_entry_held() {
    let source = Arc::new(FakeSource::new());
    let mut options = default_options();
    options.force_refresh_min_interval = Duration::from_secs(1);
    let service = TestService::start(options, source.clone(), None).await;
    let client = service.client();
    let forced = format!("{PATH}?refresh=true");
    assert_eq!(client.get(&forced).await.json()["cached"], false, "nothing held: a load");

    service.clock.advance(Duration::from_millis(999));
    let soon = client.get(&forced).await;
    let body = soon.json();
    assert_eq!((body["cached"].as_bool(), body["stale"].as_bool()), (Some(true), Some(false)));
    assert_eq!(body["positions"][0]["realized_pnl"], "1");
    assert_eq!(soon.header("cache-status"), "positions-api; hit; ttl=60; detail=memory");
    assert_eq!(source.calls(), 1, "no load ran");

    service.clock.advance(Duration::from_millis(1));
    let later = client.get(&forced).await.json();
    assert_eq!((later["cached"].as_bool(), later["positions"][0]["realized_pnl"].as_str()), (Some(false), Some("2")));
    assert_eq!(source.calls(), 2);
    service.stop().await;
}

#[tokio::test]
async fn stale_means_past_the_ttl_on_every_path() {
    use system_tests::Behavior;
    let source = Arc::new(FakeSource::new());
    let service = TestService::with_source(source.clone()).await;
    let client = service.client();
    let forced = format!("{PATH}?refresh=true");
    client.get(PATH).await;

    // A failed forced refresh of a fresh entry serves it, not stale.
    source.set(Behavior::Fail);
    service.clock.advance(TTL);
    let fresh = client.get(&forced).await;
    assert_eq!(fresh.status, 200, "{}", fresh.text());
    let body = fresh.json();
    assert_eq!((body["cached"].as_bool(), body["stale"].as_bool()), (Some(true), Some(false)));
    assert_eq!(fresh.header("cache-status"), "positions-api; hit; ttl=0; detail=memory-stale-if-error");

    // One second past the TTL it is stale, on the same path.
    service.clock.advance(Duration::from_secs(1));
    let stale = client.get(&forced).await.json();
    assert_eq!((stale["cached"].as_bool(), stale["stale"].as_bool()), (Some(true), Some(true)));
    service.stop().await;
}

#[tokio::test]
async fn without_stale_if_error_a_failed_load_serves_nothing_past_the_ttl() {
    use system_tests::Behavior;
    let source = Arc::new(FakeSource::new());
    let mut options = default_options();
    options.policy = cache_core::Policy::new(TTL).stale_while_revalidate(MAX_STALE);
    let service = TestService::start(options, source.clone(), None).await;
    let client = service.client();
    client.get(PATH).await;
    source.set(Behavior::Fail);

    // Within the stale-while-revalidate window a read is served stale, but a
    // forced refresh that fails has no fail-safe to fall back on.
    service.clock.advance(TTL + Duration::from_secs(1));
    let failed = client.get(&format!("{PATH}?refresh=true")).await;
    assert_eq!(failed.status, 502, "{}", failed.text());
    assert_eq!(failed.json()["error"], "source_failed");

    // Past it, a plain read loads, fails, and has nothing to serve either.
    service.clock.advance(MAX_STALE);
    assert_eq!(client.get(PATH).await.status, 502);
    service.stop().await;
}
