//! Pattern deletion removes what matches in its own namespace and nothing
//! else, and a big one does not stall Redis for everyone else.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use cache_core::glob::Pattern;
use cache_redis::testing::RedisServer;
use cache_redis::{Config, Error};
use deadpool_redis::redis;

use crate::support::{db_size, tier, tier_with};

async fn stored_ids(tier: &cache_redis::RedisTier, ids: &[&str]) -> Vec<String> {
    let mut present = Vec::new();
    for id in ids {
        if tier.get::<u8>(id).await.unwrap().is_some() {
            present.push((*id).to_owned());
        }
    }
    present
}

#[tokio::test]
async fn only_matching_ids_of_the_namespace_are_deleted_even_with_glob_characters_in_it() {
    let server = RedisServer::start();
    let weird = "we[ir]d*ns";
    // Namespaces that the unescaped pattern `we[ir]d*ns:…` would match
    // (`weid-ns`, `werdXns`), and ones it would not (`weird-ns`, `weirdXns`).
    let neighbours = ["weird-ns", "weirdXns", "weid-ns", "werdXns"];
    let unescaped = Pattern::new(&format!("{weird}:positions:v2:{{0xab*}}")).unwrap();
    assert!(unescaped.matches("weid-ns:positions:v2:{0xab1}"), "the test has teeth");

    let (tier, counts) = tier_with(Config { namespace: weird.to_owned(), ..Config::new(server.url()) });
    let ids = ["0xab", "0xab1", "0xab2", "0xabc", "0xac1", "0xa", "x0xab1", "0xAB1", "0xa*b"];
    for id in ids {
        tier.set(id, &1_u8, SystemTime::now(), Duration::from_secs(60)).await.unwrap();
    }
    let mut others = Vec::new();
    for namespace in neighbours {
        let (other, _) = tier_with(Config { namespace: namespace.to_owned(), ..Config::new(server.url()) });
        for id in ids {
            other.set(id, &1_u8, SystemTime::now(), Duration::from_secs(60)).await.unwrap();
        }
        others.push(other);
    }
    assert_eq!(db_size(&server).await, 45);

    assert_eq!(tier.delete_matching("0xab*").await.unwrap(), 4);
    assert_eq!(stored_ids(&tier, &ids).await, ["0xac1", "0xa", "x0xab1", "0xAB1", "0xa*b"]);
    for other in &others {
        assert_eq!(stored_ids(other, &ids).await.len(), ids.len(), "{} is untouched", other.namespace());
    }

    // The id pattern is a glob: `?`, sets and escapes work as in Redis.
    assert_eq!(tier.delete_matching("0x[A-Z]?1").await.unwrap(), 1);
    assert_eq!(tier.delete_matching(r"0xa\*b").await.unwrap(), 1);
    assert_eq!(tier.delete_matching("nothing*").await.unwrap(), 0);
    assert_eq!(stored_ids(&tier, &ids).await, ["0xac1", "0xa", "x0xab1"]);
    assert_eq!(tier.delete_matching("*").await.unwrap(), 3);
    assert_eq!(db_size(&server).await, 36, "only the neighbours' keys are left");
    assert_eq!(counts.errors(), 0);
}

#[tokio::test]
async fn a_malformed_pattern_is_an_error_and_deletes_nothing() {
    let server = RedisServer::start();
    let (tier, counts) = tier(&server.url());
    tier.set("0xab1", &1_u8, SystemTime::now(), Duration::from_secs(60)).await.unwrap();
    for pattern in ["0x[ab", "0xab\\"] {
        let error = tier.delete_matching(pattern).await.unwrap_err();
        assert!(matches!(error, Error::InvalidPattern(_)), "{pattern}: {error:?}");
        assert!(error.to_string().starts_with("invalid pattern"), "{error}");
    }
    assert_eq!(db_size(&server).await, 1);
    assert_eq!(counts.errors(), 0, "a caller's mistake is not a Redis error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_100k_keys_leaves_redis_answering_other_clients() {
    const KEYS: usize = 100_000;
    let server = RedisServer::start();
    // A generous op timeout: this test is about deletion on a shared,
    // loaded machine, not about timeouts.
    let config =
        Config { namespace: "bulk".to_owned(), op_timeout: Duration::from_secs(1), ..Config::new(server.url()) };
    let (tier, counts) = tier_with(config);

    let mut connection = server.connection().await;
    for chunk in (0..KEYS).collect::<Vec<_>>().chunks(10_000) {
        let mut mset = redis::cmd("MSET");
        for i in chunk {
            mset.arg(format!("bulk:positions:v2:{{w{i}}}")).arg("x");
        }
        let () = mset.query_async(&mut connection).await.unwrap();
    }
    for i in 0..10 {
        let () = redis::cmd("SET")
            .arg(format!("bulk:positions:v2:{{keep{i}}}"))
            .arg("x")
            .query_async(&mut connection)
            .await
            .unwrap();
        let () = redis::cmd("SET")
            .arg(format!("other:positions:v2:{{w{i}}}"))
            .arg("x")
            .query_async(&mut connection)
            .await
            .unwrap();
    }
    assert_eq!(db_size(&server).await, KEYS as u64 + 20);

    let stop = Arc::new(AtomicBool::new(false));
    let pinger = tokio::spawn({
        let (tier, stop) = (tier.clone(), Arc::clone(&stop));
        async move {
            let (mut pings, mut failures, mut worst) = (0_u32, 0_u32, Duration::ZERO);
            while !stop.load(Ordering::Relaxed) {
                match tier.ping().await {
                    Ok(took) => worst = worst.max(took),
                    Err(_) => failures += 1,
                }
                pings += 1;
            }
            (pings, failures, worst)
        }
    });

    let started = Instant::now();
    let removed = tier.delete_matching("w*").await.unwrap();
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (pings, failures, worst) = pinger.await.unwrap();

    println!(
        "FIGURE bulk deletion: {removed} keys in {took:?} ({:.0} keys/s); concurrent PING loop: {pings} pings, \
         {failures} failed, worst {worst:?}",
        removed as f64 / took.as_secs_f64()
    );
    assert_eq!(removed, KEYS as u64);
    assert_eq!(db_size(&server).await, 20, "the other keys are left");
    assert!(pings >= 20, "the PING loop ran only {pings} times");
    assert_eq!(counts.errors(), u64::from(failures), "every error was a failed ping, if any");
}
