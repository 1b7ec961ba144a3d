//! A Redis that refuses writes is not a Redis that is down: under `OOM` on
//! every store, `/health` stays ok, reads keep coming from Redis instead of
//! the source, and the refusals are counted by kind.

use cache_redis::testing::RedisServer;
use system_tests::service::default_options;
use system_tests::{Client, TestService};

use crate::{source, wallet_path};

/// More wallets than tier 1 holds, so that reads reach Redis.
const WALLETS: usize = 48;
const TIER1_WALLETS: usize = 8;

async fn status(client: &Client) -> String {
    client.get("/health").await.json()["status"].as_str().unwrap_or_default().to_owned()
}

fn sample<'a>(metrics: &'a str, series: &str) -> Option<&'a str> {
    metrics.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_memory_on_every_store_keeps_health_ok_and_reads_on_redis() {
    let redis = RedisServer::start();
    let mut options = default_options();
    options.max_wallets = TIER1_WALLETS;
    let source = source();
    let service = TestService::builder(source.clone()).options(options).redis(&redis.url()).start().await;
    let client = service.client();

    // Every wallet loaded once, and so stored in Redis (in the background).
    for i in 0..WALLETS {
        assert_eq!(client.get(&wallet_path(i)).await.status, 200);
    }
    system_tests::eventually("every wallet is in redis", std::time::Duration::from_secs(10), || async {
        let mut all = true;
        for i in 0..WALLETS {
            all &= redis.get_raw(&format!("poscache:positions:v2:{{0x{i:040x}}}")).await.is_some();
        }
        all
    })
    .await;
    let loads = source.calls();

    redis.fill_to_out_of_memory().await;
    // New wallets: each load's store is refused. Old ones, evicted from
    // memory by the new: read back from Redis, which still serves reads.
    for i in 0..WALLETS {
        assert_eq!(client.get(&wallet_path(WALLETS + i)).await.status, 200);
        assert_eq!(status(&client).await, "ok", "after the refused store of wallet {}", WALLETS + i);
        let old = client.get(&wallet_path(i)).await;
        assert_eq!(old.status, 200);
        assert_eq!(status(&client).await, "ok", "after reading wallet {i}");
    }
    assert_eq!(source.calls(), loads + WALLETS, "the old wallets came from redis, not the source");

    let metrics = client.get("/metrics").await.text();
    let refused: f64 = sample(&metrics, r#"position_cache_redis_error_replies_total{kind="oom"}"#)
        .and_then(|v| v.parse().ok())
        .unwrap_or_default();
    assert!(refused >= 1.0, "OOM refusals are counted: {metrics}");
    assert_eq!(sample(&metrics, r#"position_cache_redis_breaker_state{state="closed"}"#), Some("1"), "{metrics}");
    assert_eq!(sample(&metrics, "position_cache_redis_up"), Some("1"), "{metrics}");
    service.stop().await;
}
