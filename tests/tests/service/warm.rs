//! Warm start from a snapshot file (no Redis): a restarted replica holds
//! its wallets in demand before it is ready; a cut or foreign file is
//! ignored; `/readyz` answers 503 while it warms.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cache_core::ManualClock;
use positions_api::{ServiceOptions, WarmOptions};
use system_tests::service::{MAX_STALE, TTL, default_options};
use system_tests::{FakeSource, TestService, eventually};

use crate::PATH;

const DEADLINE: Duration = Duration::from_secs(10);
const OTHER: &str = "/v4/positions/0x1111111111111111111111111111111111111111";

fn snapshot_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("positions-warm-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join("warm.snapshot")
}

fn options(path: &Path) -> ServiceOptions {
    let warm = WarmOptions { keys: 10, snapshot_path: Some(path.to_path_buf()), timeout: Duration::from_secs(30) };
    ServiceOptions { warm, ..default_options() }
}

async fn start(path: &Path, clock: &ManualClock, source: &Arc<FakeSource>) -> TestService {
    TestService::builder(source.clone()).options(options(path)).clock(clock).start().await
}

async fn ready(service: &TestService) {
    let client = service.client();
    eventually("/readyz to answer 200", DEADLINE, || async { client.get("/readyz").await.status == 200 }).await;
}

/// Runs a first replica that serves `PATH` and `OTHER` and writes its
/// snapshot when it stops.
async fn first_life(path: &Path, clock: &ManualClock) {
    let source = Arc::new(FakeSource::new());
    let first = start(path, clock, &source).await;
    ready(&first).await;
    for _ in 0..3 {
        assert_eq!(first.client().get(PATH).await.status, 200);
    }
    assert_eq!(first.client().get(OTHER).await.status, 200);
    first.stop().await;
    assert!(path.exists(), "the snapshot is written at shutdown");
}

#[tokio::test]
async fn a_restart_serves_its_wallets_from_memory_with_their_age() {
    let path = snapshot_path("restart");
    let clock = ManualClock::starting_now();
    first_life(&path, &clock).await;

    clock.advance(Duration::from_secs(10));
    let source = Arc::new(FakeSource::new());
    let second = start(&path, &clock, &source).await;
    ready(&second).await;
    assert_eq!(second.app.service().health().lru_size, 2, "both wallets are in memory before any request");
    let answer = second.client().get(PATH).await;
    let body = answer.json();
    assert_eq!((body["cached"].as_bool(), body["age_seconds"].as_u64()), (Some(true), Some(10)), "{body}");
    assert_eq!(answer.header("cache-status"), "positions-api; hit; ttl=50; detail=memory");
    assert_eq!(source.calls(), 0, "nothing was loaded again");
    second.stop().await;
}

#[tokio::test]
async fn a_cut_or_foreign_snapshot_is_ignored_and_the_replica_starts_cold() {
    let path = snapshot_path("bad");
    let clock = ManualClock::starting_now();
    first_life(&path, &clock).await;
    let good = std::fs::read(&path).expect("the snapshot");
    let mut foreign = good.clone();
    foreign[4] = 99;
    for bad in [good[..good.len() / 2].to_vec(), foreign, b"not a snapshot".to_vec()] {
        std::fs::write(&path, &bad).expect("written");
        let source = Arc::new(FakeSource::new());
        let service = start(&path, &clock, &source).await;
        ready(&service).await;
        assert_eq!(service.app.service().health().lru_size, 0);
        assert_eq!(service.client().get(PATH).await.json()["cached"], false, "a cold miss, not a crash");
        service.stop().await;
    }
}

#[tokio::test]
async fn readyz_answers_503_until_the_warm_up_loads_have_ended() {
    let path = snapshot_path("readyz");
    let clock = ManualClock::starting_now();
    first_life(&path, &clock).await;

    // Past every window: the saved entries are useless, so both wallets are
    // loaded from the source, in the warm-up class.
    clock.advance(TTL + MAX_STALE + Duration::from_secs(1));
    let source = Arc::new(FakeSource::new());
    source.hold();
    let service = start(&path, &clock, &source).await;
    let client = service.client();
    eventually("both warm-up loads to start", DEADLINE, || async { source.calls() == 2 }).await;
    let warming = client.get("/readyz").await;
    assert_eq!(warming.status, 503);
    assert_eq!(warming.json()["status"], "warming up");
    source.release();
    ready(&service).await;
    assert_eq!(service.app.service().health().lru_size, 2);
    assert_eq!(client.get(OTHER).await.json()["cached"], true);
    let metrics = client.get("/metrics").await.text();
    assert!(metrics.lines().any(|l| l == r#"position_cache_loads_started_total{class="warm_up"} 2"#), "{metrics}");
    service.stop().await;
}
