//! A hung source behind one permit, and a crowd of cold wallets: nobody
//! waits longer than a turn at the source plus one load, and everyone gets
//! an honest answer (504 if their load ran, 503 `overloaded` with
//! `Retry-After` if it never got its turn).

use std::sync::Arc;
use std::time::Duration;

use positions_api::config::Config;
use system_tests::{Behavior, FakeSource, Reply, TestService};
use tokio::task::JoinSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_hung_source_every_request_is_answered_within_the_queue_timeout_plus_the_load_timeout() {
    const REQUESTS: usize = 50;
    // The production wiring from the settings an operator would write.
    let config = Config::from_args([
        "positions-api",
        "--refresh-concurrency",
        "1",
        "--refresh-timeout-ms",
        "500",
        "--refresh-queue-timeout-ms",
        "1000",
    ])
    .expect("valid settings");
    let source = Arc::new(FakeSource::new());
    source.set(Behavior::Hang);
    let service =
        TestService::builder(source.clone()).options(positions_api::startup::service_options(&config)).start().await;

    let mut requests = JoinSet::new();
    for n in 0..REQUESTS {
        let client = service.client();
        requests.spawn(async move { client.get(&format!("/v4/positions/0x{n:040x}")).await });
    }
    // Without a queue timeout the last request would wait for every load
    // ahead of it to time out: 50 × 500 ms.
    let deadline = config.refresh_timeout() + config.refresh_queue_timeout() + Duration::from_secs(10);
    let replies: Vec<Reply> = tokio::time::timeout(deadline, requests.join_all())
        .await
        .expect("every request answered within REFRESH_TIMEOUT_MS + REFRESH_QUEUE_TIMEOUT_MS, plus slack");

    let (mut timed_out, mut overloaded) = (0, 0);
    for reply in &replies {
        match reply.status.as_u16() {
            504 => {
                assert_eq!(reply.json()["error"], "source_timeout");
                timed_out += 1;
            }
            503 => {
                assert_eq!(reply.json()["error"], "overloaded", "{}", reply.text());
                assert_eq!(reply.header("retry-after"), "1");
                overloaded += 1;
            }
            status => panic!("unexpected {status}: {}", reply.text()),
        }
    }
    assert_eq!(timed_out + overloaded, REQUESTS);
    assert!(timed_out >= 1 && overloaded >= 1, "{timed_out} timed out, {overloaded} overloaded");
    assert_eq!(source.calls(), timed_out, "a request answered 503 never reached the source");
    let metrics = service.metrics.encode();
    let counted = format!("\nposition_cache_queue_timeouts_total{{kind=\"foreground\"}} {overloaded}\n");
    assert!(metrics.contains(&counted), "expected {counted:?} in:\n{metrics}");
    service.stop().await;
}
