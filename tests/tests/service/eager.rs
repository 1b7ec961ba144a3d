//! Eager refresh: a wallet in demand, read near the end of its TTL, is
//! refreshed before it goes stale; a cold one never is.

use std::sync::Arc;
use std::time::Duration;

use positions_api::EagerRefresh;
use system_tests::service::{TTL, default_options};
use system_tests::{FakeSource, TestService, eventually};

use crate::PATH;

const DEADLINE: Duration = Duration::from_secs(10);
const COLD: &str = "/v4/positions/0x1111111111111111111111111111111111111111";

async fn service(source: &Arc<FakeSource>) -> TestService {
    let options = default_options();
    let options =
        positions_api::ServiceOptions { eager_refresh: Some(EagerRefresh { at_pct: 90, min_reads: 10 }), ..options };
    TestService::start(options, source.clone(), None).await
}

#[tokio::test]
async fn a_wallet_in_demand_is_refreshed_before_it_goes_stale() {
    let source = Arc::new(FakeSource::new());
    let service = service(&source).await;
    let client = service.client();
    assert_eq!(client.get(PATH).await.status, 200);
    // Twice the demand asked for: the count halves once per TTL, and the
    // clock may cross one such boundary below.
    for _ in 0..20 {
        assert_eq!(client.get(PATH).await.json()["stale"], false);
    }
    // Past 90% of the TTL, still fresh: the read answers at once, fresh,
    // and starts the one refresh.
    service.clock.advance(TTL * 9 / 10 + Duration::from_secs(1));
    let early = client.get(PATH).await.json();
    assert_eq!((early["stale"].as_bool(), early["cached"].as_bool()), (Some(false), Some(true)));
    assert_eq!(early["positions"][0]["realized_pnl"], "1", "the data held, at once");
    eventually("the eager refresh to load", DEADLINE, || async { source.calls() == 2 }).await;
    eventually("the eager refresh to finish", DEADLINE, || async {
        service.app.service().health().active_refresh_tasks == 0
    })
    .await;
    let counts = service.metrics.cache.counts();
    assert_eq!((counts.eager_refreshes, counts.refresh_triggers), (1, 1));

    // Where the old entry would have been stale, the wallet is fresh.
    service.clock.advance(TTL / 10 + Duration::from_secs(1));
    let later = client.get(PATH).await.json();
    assert_eq!(later["stale"], false, "{later}");
    assert_eq!(later["positions"][0]["realized_pnl"], "2", "the refreshed data");
    assert_eq!(service.metrics.cache.counts().stale_serves, 0);
    let metrics = client.get("/metrics").await.text();
    assert!(metrics.lines().any(|l| l == "position_cache_eager_refreshes_total 1"), "{metrics}");
    service.stop().await;
}

#[tokio::test]
async fn a_cold_wallet_is_never_refreshed_early() {
    let source = Arc::new(FakeSource::new());
    let service = service(&source).await;
    let client = service.client();
    assert_eq!(client.get(COLD).await.status, 200);
    // Read a few times, fewer than the demand that makes it hot.
    for _ in 0..3 {
        client.get(COLD).await;
    }
    service.clock.advance(TTL * 9 / 10 + Duration::from_secs(1));
    for _ in 0..3 {
        assert_eq!(client.get(COLD).await.json()["stale"], false);
    }
    assert_eq!(service.app.service().health().active_refresh_tasks, 0, "no refresh was started");
    assert_eq!((source.calls(), service.metrics.cache.counts().eager_refreshes), (1, 0));

    // It goes stale as before and is refreshed then, in the usual way.
    service.clock.advance(TTL / 10 + Duration::from_secs(1));
    assert_eq!(client.get(COLD).await.json()["stale"], true);
    eventually("the stale refresh to load", DEADLINE, || async { source.calls() == 2 }).await;
    assert_eq!(service.metrics.cache.counts().eager_refreshes, 0);
    service.stop().await;
}

#[tokio::test]
async fn without_the_setting_a_hot_wallet_waits_for_staleness() {
    let source = Arc::new(FakeSource::new());
    let service = TestService::with_source(source.clone()).await;
    let client = service.client();
    for _ in 0..20 {
        client.get(PATH).await;
    }
    service.clock.advance(TTL * 9 / 10 + Duration::from_secs(1));
    assert_eq!(client.get(PATH).await.json()["stale"], false);
    assert_eq!(service.app.service().health().active_refresh_tasks, 0);
    assert_eq!((source.calls(), service.metrics.cache.counts().eager_refreshes), (1, 0));
    service.stop().await;
}
