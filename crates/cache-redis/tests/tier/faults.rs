//! Outages cost latency, bounded by the op timeout, never a hang; the
//! breaker then fails fast without calling Redis; and the tier recovers by
//! itself when Redis comes back.
//!
//! Outcomes are asserted, not durations: which error each operation gives,
//! what the observer heard, that Redis was not called while the breaker
//! was open. The one bound on time is against hanging: an operation must
//! return within ten times the op timeout (the slack absorbs a loaded,
//! shared machine), which a tier without timeouts would not. Measured
//! figures are printed.

use std::time::{Duration, SystemTime};

use cache_redis::testing::RedisServer;
use cache_redis::{BreakerState, Config, Error, Op, RedisTier};

use crate::support::{Counts, tier, wait_until};

const SLACK: u32 = 10;

/// Runs `get` until the breaker opens, checking that each returns (within
/// the bound against hanging) with the expected error; returns the slowest.
async fn fail_until_open(tier: &RedisTier, counts: &Counts, expect_timeout: bool) -> Duration {
    let bound = tier.op_timeout() * SLACK;
    let mut slowest = Duration::ZERO;
    for attempt in 1..=3 {
        let started = std::time::Instant::now();
        let error = tokio::time::timeout(bound, tier.get::<u8>("0xabc"))
            .await
            .unwrap_or_else(|_| panic!("attempt {attempt} hung beyond {bound:?}"))
            .unwrap_err();
        slowest = slowest.max(started.elapsed());
        if expect_timeout {
            assert!(matches!(error, Error::Timeout(..)), "{error:?}");
        } else {
            assert!(matches!(error, Error::Redis { .. } | Error::Timeout(..)), "{error:?}");
        }
        if tier.state() == BreakerState::Open {
            break;
        }
    }
    assert_eq!(tier.state(), BreakerState::Open, "open after 3 consecutive failures");
    assert!(!tier.is_available() && !tier.is_up());
    assert!(counts.errors() >= 1);
    slowest
}

/// While open, operations fail at once with `Unavailable`, and Redis is not
/// called: the observer hears rejections, not errors.
async fn fails_fast_while_open(tier: &RedisTier, counts: &Counts) {
    let (errors, rejected) = (counts.errors(), counts.rejected());
    for _ in 0..5 {
        let error = tier.set("0xabc", &1_u8, SystemTime::now(), Duration::from_secs(60)).await.unwrap_err();
        assert!(matches!(error, Error::Unavailable), "{error:?}");
    }
    assert_eq!(counts.rejected(), rejected + 5);
    // The prober's probes may have failed meanwhile; the five operations
    // added no error, since none reached Redis.
    assert!(counts.errors() <= errors + 2, "{} errors, was {errors}", counts.errors());
}

#[tokio::test]
async fn a_killed_server_fails_fast_and_a_restarted_one_is_used_again_within_seconds() {
    let mut server = RedisServer::start();
    let (tier, counts) = tier(&server.url());
    tier.set("0xabc", &1_u8, SystemTime::now(), Duration::from_secs(60)).await.unwrap();
    assert!(tier.is_up());

    server.kill();
    let slowest = fail_until_open(&tier, &counts, false).await;
    println!("FIGURE killed server: slowest failing op {slowest:?} (op timeout {:?})", tier.op_timeout());
    fails_fast_while_open(&tier, &counts).await;

    // No traffic from here: the prober alone must notice the restart.
    server.restart();
    let recovered = wait_until("the breaker closes after a restart", Duration::from_secs(10), || async {
        tier.state() == BreakerState::Closed
    })
    .await;
    println!("FIGURE restart: breaker closed {recovered:?} after the server answered again, with no traffic");
    assert!(tier.is_up() && tier.is_available());
    assert_eq!(tier.get::<u8>("0xabc").await.unwrap(), None, "a restarted server is empty");
    tier.set("0xabc", &2_u8, SystemTime::now(), Duration::from_secs(60)).await.unwrap();
    assert_eq!(tier.get::<u8>("0xabc").await.unwrap().map(|s| s.value), Some(2));

    let states = counts.breaker.lock().unwrap().clone();
    assert_eq!(states.first(), Some(&BreakerState::Open));
    assert_eq!(states.last(), Some(&BreakerState::Closed));
    assert_eq!(*counts.up.lock().unwrap(), [true, false, true]);
}

#[tokio::test]
async fn a_frozen_server_costs_one_op_timeout_per_call_and_a_thawed_one_is_used_again() {
    let server = RedisServer::start();
    let (tier, counts) = tier(&server.url());
    tier.set("0xabc", &1_u8, SystemTime::now(), Duration::from_secs(60)).await.unwrap();

    server.freeze();
    let slowest = fail_until_open(&tier, &counts, true).await;
    println!("FIGURE frozen server: slowest failing op {slowest:?} (op timeout {:?})", tier.op_timeout());
    assert!(counts.errors_of(Op::Get) + counts.errors_of(Op::Connect) >= 3);
    fails_fast_while_open(&tier, &counts).await;

    server.thaw();
    let recovered = wait_until("the breaker closes after a thaw", Duration::from_secs(10), || async {
        tier.state() == BreakerState::Closed
    })
    .await;
    println!("FIGURE thaw: breaker closed {recovered:?} after the server was thawed, with no traffic");
    let stored = tier.get::<u8>("0xabc").await.unwrap().expect("the frozen server kept its data");
    assert_eq!(stored.value, 1);
}

#[tokio::test]
async fn a_redis_that_is_down_at_start_up_neither_blocks_nor_fails_it() {
    let mut server = RedisServer::start();
    let url = server.url();
    server.kill();

    // Building does not connect, so it succeeds with Redis down.
    let (tier, _) = tier(&url);
    assert!(tier.get::<u8>("0xabc").await.unwrap_err().is_unavailability());

    server.restart();
    wait_until("the tier works once redis is up", Duration::from_secs(10), || async {
        tier.get::<u8>("0xabc").await.is_ok()
    })
    .await;
}

#[tokio::test]
async fn dropping_the_tier_stops_its_prober() {
    let server = RedisServer::start();
    let config = Config::new(server.url());
    let (tier, counts) = crate::support::tier_with(config);
    tier.ping().await.unwrap();
    let weak = std::sync::Arc::downgrade(&counts);
    drop(counts);
    drop(tier);
    // The prober holds the observer through the tier's shared state; once
    // it has stopped, nothing does.
    wait_until("the prober lets go", Duration::from_secs(5), || {
        let gone = weak.upgrade().is_none();
        async move { gone }
    })
    .await;
}
