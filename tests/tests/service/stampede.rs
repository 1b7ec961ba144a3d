//! Many requests for one cold wallet: one source call.

use std::sync::Arc;
use std::time::Duration;

use system_tests::{FakeSource, TestService, eventually};

use crate::PATH;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_requests_for_a_cold_wallet_make_one_source_call() {
    const REQUESTS: u64 = 500;
    let source = Arc::new(FakeSource::new());
    let service = TestService::with_source(source.clone()).await;
    source.hold();
    let requests: Vec<_> = (0..REQUESTS)
        .map(|_| {
            let client = service.client();
            tokio::spawn(async move { client.get(PATH).await })
        })
        .collect();
    // Every request has missed and is waiting on the one load before the
    // source is allowed to answer.
    let metrics = Arc::clone(&service.metrics);
    eventually("every request to miss", Duration::from_secs(30), || async {
        metrics.cache.counts().misses == REQUESTS
    })
    .await;
    assert_eq!(source.calls(), 1);
    source.release();

    let mut bodies = Vec::new();
    for request in requests {
        let reply = request.await.expect("request task");
        assert_eq!(reply.status, 200, "{}", reply.text());
        bodies.push(reply.json()["positions"].clone());
    }
    assert_eq!(source.calls(), 1, "one call for {REQUESTS} requests");
    assert!(bodies.iter().all(|b| *b == bodies[0]), "every request got the same positions");
    service.stop().await;
}
