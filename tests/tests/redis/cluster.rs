//! The service on a real Redis Cluster (`REDIS_MODE=cluster`, three
//! primaries and three replicas on loopback) under a steady stream of
//! requests that mostly reach tier 2: a primary killed (`SIGKILL`) and a
//! reshard (`redis-cli --cluster reshard`) fail no request, and `/health`
//! says `degraded` while slots have no reachable primary, `ok` once the
//! replica is promoted.
//!
//! Each test starts its own cluster, since each changes its topology. The
//! times (promotion, `/health` back, the reshard) are printed as `FIGURE`
//! lines, never asserted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cache_redis::testing::RedisCluster;
use system_tests::service::default_options;
use system_tests::{TestService, eventually};

use crate::faults::{Stream, TIER1_WALLETS, WALLETS, health_status, start_stream};
use crate::source;

const DEADLINE: Duration = Duration::from_secs(30);
const TOKEN: &str = "cluster-t0ken";

/// A service on `cluster` whose tier 1 holds fewer wallets than the stream
/// asks for, so that most requests read (and many write) tier 2.
async fn service_on(cluster: &RedisCluster, redis_timeout_ms: u64) -> TestService {
    let mut options = default_options();
    options.max_wallets = TIER1_WALLETS;
    TestService::builder(source())
        .options(options)
        .redis_timeout_ms(redis_timeout_ms)
        .redis(&cluster.seeds())
        .redis_args(&["--redis-mode", "cluster"])
        .admin_token(TOKEN)
        .start()
        .await
}

/// The total of a counter family's samples in a metrics text.
fn total(metrics: &str, family: &str) -> u64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(family))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_killed_under_load_fails_no_request_and_health_follows_the_promotion() {
    let mut cluster = RedisCluster::start();
    // The default timeout: a dead primary's operations must fail fast.
    let service = service_on(&cluster, 100).await;
    let client = service.client();
    eventually("/health to say ok", DEADLINE, || async { health_status(&client).await == "ok" }).await;
    let stream = Arc::new(Stream::default());
    let stop = Arc::new(AtomicBool::new(false));
    let workers = start_stream(&client, &stream, &stop, 8);
    eventually("traffic before the failover", DEADLINE, || async { stream.sent() >= 500 }).await;
    cluster.wait_replicated();

    let victim = cluster.port_of_key("poscache:positions:v2:{0x0000000000000000000000000000000000000000}");
    let at_kill = stream.sent();
    let killed = Instant::now();
    cluster.kill(victim);
    // A pattern deletion now cannot walk the dead primary: never a success.
    // It is partial, or, if the failures of the stream's requests to that
    // primary have opened the breaker (one for the cluster), unavailable.
    let partial = client.delete("/v4/positions?pattern=0x*", Some(TOKEN)).await;
    let json = partial.json();
    assert_eq!(partial.status, 503, "{json}");
    match json["error"].as_str() {
        Some("partial_deletion") => {
            assert_eq!(json["partial"], true, "{json}");
            assert!(json["removed"].as_u64().is_some(), "{json}");
        }
        Some("redis_unavailable") => {}
        _ => panic!("{json}"),
    }
    eventually("/health to say degraded", DEADLINE, || async { health_status(&client).await == "degraded" }).await;
    cluster.wait_until_healthy();
    let promoted = killed.elapsed();
    eventually("/health to say ok again", DEADLINE, || async { health_status(&client).await == "ok" }).await;
    let healthy = killed.elapsed();
    let complete = client.delete("/v4/positions?pattern=0x*", Some(TOKEN)).await;
    assert_eq!(
        (complete.status.as_u16(), &complete.json()["partial"]),
        (200, &serde_json::json!(false)),
        "{}",
        complete.text()
    );
    let at_recovery = stream.sent();
    eventually("traffic after the promotion", DEADLINE, || async { stream.sent() >= at_recovery + 500 }).await;
    stop.store(true, Ordering::SeqCst);
    for worker in workers {
        worker.await.expect("stream worker");
    }

    let (sent, failed) = (stream.sent(), stream.failed.load(Ordering::SeqCst));
    let worst = Duration::from_micros(stream.worst_micros.load(Ordering::SeqCst));
    let metrics = client.get("/metrics").await.text();
    println!(
        "FIGURE cluster primary killed mid-stream: {sent} requests ({} between the kill and /health ok), {failed} \
         failed; replica promoted (cluster_state ok, slots agreed) {promoted:?} after the SIGKILL, /health ok \
         {healthy:?} after it; worst request {worst:?}; {} tier-2 operations failed",
        at_recovery - at_kill,
        total(&metrics, "position_cache_redis_errors_total")
    );
    assert_eq!(failed, 0, "failed requests: {:?}", stream.failures.lock().expect("lock"));
    assert!(metrics.lines().any(|l| l == "position_cache_redis_up 1"), "{metrics}");
    assert!(total(&metrics, "position_cache_redis_hits_total") > 0, "tier 2 served hits: {metrics}");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reshard_under_load_fails_no_request() {
    let cluster = RedisCluster::start();
    // Every tier-2 failure counts against the test below, which is about
    // MOVED and ASK; on two busy cores (a whole test run beside it) an
    // operation can outlast the default 100 ms during a migration without
    // any redirection going wrong, so timeouts get room here. A redirection
    // not followed is an error reply, at once, whatever the timeout.
    let service = service_on(&cluster, 2_000).await;
    let client = service.client();
    eventually("/health to say ok", DEADLINE, || async { health_status(&client).await == "ok" }).await;
    let stream = Arc::new(Stream::default());
    let stop = Arc::new(AtomicBool::new(false));
    let workers = start_stream(&client, &stream, &stop, 8);
    // Every wallet stored in tier 2 first, so the slots that move carry
    // keys that requests then read.
    eventually("every wallet stored", DEADLINE, || async { cluster.key_count() >= WALLETS as u64 }).await;

    let primaries = cluster.primaries();
    let (from, to) = (&primaries[0], &primaries[1]);
    // Enough slots to move some of the stream's keys (64 wallets over
    // 16,384 slots), few enough to keep the test short.
    let slots = from.slots / 4;
    let keys_before = cluster.key_count();
    let errors_before = total(&client.get("/metrics").await.text(), "position_cache_redis_errors_total");
    let at_start = stream.sent();
    let started = Instant::now();
    cluster.reshard(&from.id, &to.id, slots);
    let took = started.elapsed();
    let during = stream.sent() - at_start;
    cluster.wait_until_healthy();
    let after = cluster.primaries();
    assert_eq!(after.iter().find(|p| p.id == from.id).map(|p| p.slots), Some(from.slots - slots), "{after:?}");
    eventually("traffic after the reshard", DEADLINE, || async { stream.sent() >= at_start + during + 300 }).await;
    stop.store(true, Ordering::SeqCst);
    for worker in workers {
        worker.await.expect("stream worker");
    }

    let (sent, failed) = (stream.sent(), stream.failed.load(Ordering::SeqCst));
    let metrics = client.get("/metrics").await.text();
    let errors = total(&metrics, "position_cache_redis_errors_total") - errors_before;
    println!(
        "FIGURE cluster reshard of {slots} slots ({keys_before} keys in the cluster) under load: took {took:?}, \
         {during} requests meanwhile, {sent} in all, {failed} failed, {errors} tier-2 operations failed"
    );
    assert_eq!(failed, 0, "failed requests: {:?}", stream.failures.lock().expect("lock"));
    let failures: Vec<&str> = metrics.lines().filter(|l| l.starts_with("position_cache_redis_error")).collect();
    assert_eq!(errors, 0, "MOVED and ASK are followed, not failed: {failures:?}");
    assert_eq!(health_status(&client).await, "ok");
    service.stop().await;
}
