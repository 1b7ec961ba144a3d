//! The Redis tier on a real Redis Cluster (three primaries, three replicas
//! on loopback, from `testing::RedisCluster`): every operation on wallets
//! that live on different primaries, a pattern deletion over all of them,
//! the fleet's bus, and what a primary killed midway does to a pattern
//! deletion and to health.
//!
//! The tests that leave the cluster as they found it share one cluster
//! when they run in one process (`cargo test`; each in a namespace of its
//! own); the one that kills a primary starts its own. Under nextest each
//! test has its own process, so its own cluster, and the cluster tests run
//! one at a time (`.config/nextest.toml`). Figures (deletion time, failover time) are printed, never
//! asserted: run with `--nocapture` to see them.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cache_redis::bus::{Bus, Event, Kind};
use cache_redis::testing::RedisCluster;
use cache_redis::{Config, Error, RedisTier, WriteOutcome};

const EXPIRY: Duration = Duration::from_secs(60);
const DEADLINE: Duration = Duration::from_secs(20);

fn shared_cluster() -> Arc<RedisCluster> {
    RedisCluster::shared()
}

fn tier(cluster: &RedisCluster, namespace: &str) -> RedisTier {
    let config = Config { namespace: namespace.to_owned(), ..Config::cluster(cluster.seeds()) };
    RedisTier::new(config).expect("a valid cluster configuration")
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_764_000_000 + secs)
}

/// A wallet-like id for each primary: ids whose keys land on three
/// different primaries.
fn one_id_per_primary(cluster: &RedisCluster, namespace: &str) -> Vec<String> {
    let primaries = cluster.primaries().len();
    let mut ports = BTreeSet::new();
    let mut ids = Vec::new();
    for i in 0.. {
        let id = format!("0x{i:040x}");
        if ports.insert(cluster.port_of_key(&format!("{namespace}:positions:v2:{{{id}}}"))) {
            ids.push(id);
        }
        if ids.len() == primaries {
            break;
        }
    }
    ids
}

async fn until(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_works_for_wallets_on_every_primary() {
    let cluster = shared_cluster();
    let namespace = "ops";
    let tier = tier(&cluster, namespace);
    let ids = one_id_per_primary(&cluster, namespace);
    assert_eq!(ids.len(), 3, "one wallet on each primary");
    let ports: BTreeSet<u16> =
        ids.iter().map(|id| cluster.port_of_key(&format!("{namespace}:tombstone:v2:{{{id}}}"))).collect();
    assert_eq!(ports.len(), 3, "their tombstones are spread too (same slot as the entry)");

    for id in &ids {
        // Round trip.
        tier.set(id, "plain", at(1), EXPIRY).await.unwrap();
        let stored = tier.get::<String>(id).await.unwrap().expect("just stored");
        assert_eq!((stored.value.as_str(), stored.fetched_at), ("plain", at(1)));

        // Conditional writes: newer wins, older is refused.
        assert_eq!(tier.set_if_newer(id, "newer", at(3), at(2), EXPIRY).await.unwrap(), WriteOutcome::Stored);
        assert_eq!(tier.set_if_newer(id, "older", at(2), at(2), EXPIRY).await.unwrap(), WriteOutcome::Older);

        // A tombstone stops a load that started before the deletion.
        assert!(tier.delete_with_tombstone(id, at(5), EXPIRY).await.unwrap());
        assert_eq!(tier.set_if_newer(id, "late", at(6), at(4), EXPIRY).await.unwrap(), WriteOutcome::Deleted);
        assert!(tier.get::<String>(id).await.unwrap().is_none());
        assert_eq!(tier.set_if_newer(id, "after", at(7), at(6), EXPIRY).await.unwrap(), WriteOutcome::Stored);

        // The load lock: one holder, released by it alone.
        let token = tier.try_lock_load(id, EXPIRY).await.unwrap().expect("free");
        assert!(tier.try_lock_load(id, EXPIRY).await.unwrap().is_none(), "held");
        assert!(tier.unlock_load(id, &token).await.unwrap());
        assert!(tier.try_lock_load(id, EXPIRY).await.unwrap().is_some(), "free again");

        assert!(tier.delete(id).await.unwrap());
    }
    until("the tier to see every primary up", async || tier.is_up()).await;
    assert!(tier.ping().await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pattern_deletion_removes_thirty_thousand_keys_from_every_primary() {
    let cluster = shared_cluster();
    let namespace = "bulk";
    let tier = tier(&cluster, namespace);
    let total = 30_000_u64;
    // Stored as the service stores them, one `set` each, from many tasks
    // at once over the tier's one multiplexed cluster connection.
    let mut writers = tokio::task::JoinSet::new();
    for worker in 0..64_u64 {
        let tier = tier.clone();
        writers.spawn(async move {
            for i in (worker..total).step_by(64) {
                tier.set(&format!("0x{i:040x}"), &i, at(1), EXPIRY).await.unwrap();
            }
        });
    }
    while let Some(done) = writers.join_next().await {
        done.unwrap();
    }
    // An entry of another namespace stays.
    let other = self::tier(&cluster, "bulk-other");
    other.set("0x1", &1_u64, at(1), EXPIRY).await.unwrap();

    let per_primary: Vec<u64> =
        cluster.primaries().iter().map(|primary| cluster.command_on(primary.port, &["DBSIZE"])).collect();
    assert!(per_primary.iter().all(|&keys| keys > 5_000), "spread over every primary: {per_primary:?}");

    let started = Instant::now();
    let removed = tier.delete_matching("*").await.unwrap();
    println!("pattern deletion of {total} keys over 3 primaries: {:?}", started.elapsed());
    assert_eq!(removed, total);
    for i in [0, 1, total / 2, total - 1] {
        assert!(tier.get::<u64>(&format!("0x{i:040x}")).await.unwrap().is_none());
    }
    assert_eq!(other.get::<u64>("0x1").await.unwrap().map(|s| s.value), Some(1));
    assert_eq!(tier.delete_matching("*").await.unwrap(), 0, "nothing left");

    // With tombstones, likewise.
    for i in 0..300_u64 {
        tier.set(&format!("0x{i:040x}"), &i, at(1), EXPIRY).await.unwrap();
    }
    assert_eq!(tier.delete_matching_with_tombstones("*", at(2), EXPIRY).await.unwrap(), 300);
    assert_eq!(
        tier.set_if_newer("0x0000000000000000000000000000000000000007", &7_u64, at(3), at(1), EXPIRY).await.unwrap(),
        WriteOutcome::Deleted
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bus_carries_messages_between_instances_on_the_cluster() {
    let cluster = shared_cluster();
    let config = Config { namespace: "bus".to_owned(), ..Config::cluster(cluster.seeds()) };
    let (a, _a_events) = Bus::start(RedisTier::new(config.clone()).unwrap(), &config).unwrap();
    let (b, mut b_events) = Bus::start(RedisTier::new(config.clone()).unwrap(), &config).unwrap();
    until("both buses to subscribe", async || a.is_subscribed() && b.is_subscribed()).await;
    for subject in ["0xabc", "0xdef", "0x12*"] {
        a.publish(&a.message(Kind::Deleted, subject, SystemTime::now())).await.unwrap();
        let event = tokio::time::timeout(DEADLINE, b_events.recv()).await.expect("heard in time");
        match event {
            Some(Event::Message(message)) => assert_eq!(message.subject, subject),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_killed_midway_makes_a_pattern_deletion_partial_and_health_follows_the_failover() {
    let mut cluster = RedisCluster::start();
    let namespace = "failover";
    let tier = tier(&cluster, namespace);
    let ids = one_id_per_primary(&cluster, namespace);
    for id in &ids {
        tier.set(id, "x", at(1), EXPIRY).await.unwrap();
    }
    until("the tier to see the cluster up", async || tier.is_up()).await;
    cluster.wait_replicated();

    let victim = cluster.port_of_key(&format!("{namespace}:positions:v2:{{{}}}", ids[0]));
    let killed_at = Instant::now();
    cluster.kill(victim);

    match tier.delete_matching("*").await {
        Err(Error::Partial { removed, unreached, primaries, .. }) => {
            assert_eq!((unreached, primaries), (1, 3));
            assert_eq!(removed, 2, "the other primaries' entries went");
        }
        other => panic!("a deletion that missed a primary must say so: {other:?}"),
    }
    until("the tier to see a primary down", async || !tier.is_up()).await;

    cluster.wait_until_healthy();
    until("the tier to see the cluster up again", async || tier.is_up()).await;
    println!("primary killed → replica promoted and the tier up again: {:?}", killed_at.elapsed());
    assert_eq!(tier.delete_matching("*").await.unwrap(), 1, "the promoted replica's copy goes now");
}
