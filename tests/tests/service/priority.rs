//! High-value wallets (`POSITION_PRIORITY_FILE`): their own, shorter TTL.

use std::sync::Arc;
use std::time::Duration;

use positions_api::priority::PriorityList;
use system_tests::service::{TTL, default_options};
use system_tests::{FakeSource, TestService, eventually};

use crate::{PATH, WALLET};

const OTHER: &str = "/v4/positions/0x1111111111111111111111111111111111111111";

#[tokio::test]
async fn a_listed_wallet_goes_stale_at_its_own_ttl_and_the_others_at_the_cache_s() {
    let list = PriorityList::parse(&format!("{WALLET} high 10\n"), TTL).expect("valid list");
    let options = positions_api::ServiceOptions { priority: Arc::new(list), ..default_options() };
    let source = Arc::new(FakeSource::new());
    let service = TestService::start(options, source.clone(), None).await;
    let client = service.client();
    assert_eq!(client.get(PATH).await.status, 200);
    assert_eq!(client.get(OTHER).await.status, 200);
    service.clock.advance(Duration::from_secs(11));
    let listed = client.get(PATH).await.json();
    assert_eq!((listed["stale"].as_bool(), listed["cached"].as_bool()), (Some(true), Some(true)), "{listed}");
    assert_eq!(client.get(OTHER).await.json()["stale"], false, "the cache's TTL is 60 s");
    eventually("the listed wallet's refresh", Duration::from_secs(10), || async { source.calls() == 3 }).await;
    eventually("it to finish", Duration::from_secs(10), || async {
        service.app.service().health().active_refresh_tasks == 0
    })
    .await;
    assert_eq!(client.get(PATH).await.json()["stale"], false);
    service.stop().await;
}
