//! What Redis refuses, and what it should not be asked for whole: error
//! replies fail one operation and are counted by kind without opening the
//! breaker; an oversized value is a miss, read no further than the limit,
//! once for any number of concurrent gets; a `fetched_at` in the future is
//! clamped to now.

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use cache_core::ManualClock;
use cache_redis::testing::RedisServer;
use cache_redis::{BreakerState, Config, Error, ErrorReply, FETCHED_AT_SKEW, Op, RedisTier};
use deadpool_redis::redis;

use crate::support::{Counts, command_calls, info_field, tier, tier_with, wait_until};

/// Sends `command` on a connection of the test's own.
async fn admin(server: &RedisServer, command: &redis::Cmd) -> redis::RedisResult<redis::Value> {
    let mut connection = server.connection().await;
    command.query_async(&mut connection).await
}

/// A tier that is up and has read a value, and stays so: the state every
/// refusal test starts from and must end in.
async fn tier_with_a_value(server: &RedisServer) -> (RedisTier, Arc<Counts>) {
    let (tier, counts) = tier(&server.url());
    tier.set("kept", &7_u8, SystemTime::now(), Duration::from_secs(600)).await.unwrap();
    assert_eq!(tier.get::<u8>("kept").await.unwrap().map(|s| s.value), Some(7));
    (tier, counts)
}

/// Reads still work, and nothing took Redis for down.
async fn still_up_and_reading(tier: &RedisTier, counts: &Counts) {
    assert_eq!(tier.get::<u8>("kept").await.unwrap().map(|s| s.value), Some(7), "reads still work");
    assert_eq!(tier.state(), BreakerState::Closed);
    assert!(tier.is_up() && tier.is_available());
    assert!(counts.breaker.lock().unwrap().is_empty(), "the breaker never moved");
    assert_eq!(*counts.up.lock().unwrap(), [true], "never seen as down");
}

#[tokio::test]
async fn out_of_memory_on_every_store_fails_the_stores_only() {
    let server = RedisServer::start();
    let (tier, counts) = tier_with_a_value(&server).await;
    server.fill_to_out_of_memory().await;

    for _ in 0..20 {
        let error = tier.set("0xabc", &vec![1_u64; 100], SystemTime::now(), Duration::from_secs(60)).await.unwrap_err();
        assert!(matches!(error, Error::Reply { op: Op::Set, kind: ErrorReply::Oom, .. }), "{error:?}");
        assert!(!error.is_unavailability(), "{error}");
    }
    assert_eq!(counts.replies_of(ErrorReply::Oom), 20);
    assert_eq!(counts.errors_of(Op::Set), 20, "each counted as a failed set too");
    assert_eq!(counts.rejected(), 0, "none refused by the breaker");
    still_up_and_reading(&tier, &counts).await;
}

#[tokio::test]
async fn a_read_only_replica_refuses_stores_and_keeps_serving_reads() {
    let server = RedisServer::start();
    let (tier, counts) = tier_with_a_value(&server).await;
    // A replica of a primary that is not there: it keeps its data, serves
    // reads, and refuses writes, as one does after a failover.
    admin(&server, redis::cmd("REPLICAOF").arg("127.0.0.1").arg(1)).await.unwrap();

    for _ in 0..5 {
        let error = tier.set("0xabc", &1_u8, SystemTime::now(), Duration::from_secs(60)).await.unwrap_err();
        assert!(matches!(error, Error::Reply { kind: ErrorReply::ReadOnly, .. }), "{error:?}");
    }
    assert_eq!(counts.replies_of(ErrorReply::ReadOnly), 5);
    still_up_and_reading(&tier, &counts).await;
}

#[tokio::test]
async fn a_key_of_another_type_is_refused_by_kind_and_replaced_by_a_store() {
    let server = RedisServer::start();
    let (tier, counts) = tier_with_a_value(&server).await;
    admin(&server, redis::cmd("RPUSH").arg("poscache:positions:v2:{0xabc}").arg("x")).await.unwrap();

    for _ in 0..5 {
        let error = tier.get::<u8>("0xabc").await.unwrap_err();
        assert!(matches!(error, Error::Reply { op: Op::Get, kind: ErrorReply::WrongType, .. }), "{error:?}");
    }
    assert_eq!(counts.replies_of(ErrorReply::WrongType), 5);
    still_up_and_reading(&tier, &counts).await;
    tier.set("0xabc", &2_u8, SystemTime::now(), Duration::from_secs(60)).await.unwrap();
    assert_eq!(tier.get::<u8>("0xabc").await.unwrap().map(|s| s.value), Some(2));
}

#[tokio::test]
async fn concurrent_gets_of_an_oversized_value_cost_one_bounded_read() {
    const GETS: usize = 20;
    const VALUE: usize = 8 << 20;
    let server = RedisServer::start();
    // A long op timeout: the server is frozen while the gets gather.
    let config = Config { op_timeout: Duration::from_secs(30), ..Config::new(server.url()) };
    let (tier, counts) = tier_with(config);
    tier.set("big", &vec![0xab_u8; VALUE], SystemTime::now(), Duration::from_secs(60)).await.unwrap();
    let (reads, sent) = (command_calls(&server, "getrange").await, info_field(&server, "total_net_output_bytes").await);

    // Every get joins the flight at its first poll, before any await; the
    // frozen server holds that flight's one read until all have joined.
    server.freeze();
    let joined = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..GETS)
        .map(|_| {
            let (tier, joined) = (tier.clone(), Arc::clone(&joined));
            tokio::spawn(async move {
                let mut get = pin!(tier.get::<Vec<u8>>("big"));
                let first = tokio::time::timeout(Duration::ZERO, &mut get).await;
                joined.fetch_add(1, Ordering::SeqCst);
                match first {
                    Ok(done) => done,
                    Err(_) => get.await,
                }
            })
        })
        .collect();
    wait_until("every get has joined", Duration::from_secs(10), || {
        let all = joined.load(Ordering::SeqCst) == GETS;
        async move { all }
    })
    .await;
    server.thaw();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), None, "an oversized value is a miss");
    }

    assert_eq!(command_calls(&server, "getrange").await - reads, 1, "one read for {GETS} gets");
    let out = info_field(&server, "total_net_output_bytes").await - sent;
    assert!(out < 2 << 20, "{out} bytes sent: the value was read only up to the limit");
    assert_eq!(Counts::get(&counts.oversized), 1, "counted once per read");
    assert_eq!(Counts::get(&counts.misses), GETS as u64, "a miss for every get");
    assert_eq!(Counts::get(&counts.corrupt), 0);
}

#[tokio::test]
async fn a_value_at_the_limit_is_read_and_one_byte_over_is_not() {
    let server = RedisServer::start();
    let config = Config { max_value_bytes: 1000, ..Config::new(server.url()) };
    let (tier, counts) = tier_with(config);
    let header = cache_redis::envelope::HEADER_LEN;
    // A `Vec<u8>` of n bytes (251 <= n < 65536) encodes as a three-byte
    // length and the n bytes.
    let fits = 1000 - header - 3;
    tier.set("fits", &vec![1_u8; fits], SystemTime::now(), Duration::from_secs(60)).await.unwrap();
    tier.set("over", &vec![1_u8; fits + 1], SystemTime::now(), Duration::from_secs(60)).await.unwrap();
    assert_eq!(server.get_raw("poscache:positions:v2:{fits}").await.unwrap().len(), 1000);
    assert_eq!(tier.get::<Vec<u8>>("fits").await.unwrap().map(|s| s.value.len()), Some(fits));
    assert_eq!(tier.get::<Vec<u8>>("over").await.unwrap(), None);
    assert_eq!(Counts::get(&counts.oversized), 1);
}

#[tokio::test]
async fn a_fetched_at_in_the_future_is_clamped_to_now_on_read() {
    let server = RedisServer::start();
    let clock = ManualClock::starting_now();
    let counts = Arc::new(Counts::default());
    let tier = RedisTier::with_observer_and_clock(Config::new(server.url()), counts, Arc::new(clock.clone())).unwrap();
    let now = cache_core::Clock::now(&clock);

    let far = now + Duration::from_secs(365 * 24 * 3600);
    tier.set("far", &1_u8, far, Duration::from_secs(60)).await.unwrap();
    assert_eq!(tier.get::<u8>("far").await.unwrap().unwrap().fetched_at, now, "clamped to now");
    clock.advance(Duration::from_secs(30));
    assert_eq!(
        tier.get::<u8>("far").await.unwrap().unwrap().fetched_at,
        now + Duration::from_secs(30),
        "read again later, it is as old as a value just fetched"
    );

    // Within the allowance for clocks that differ, it is kept as written.
    let now = cache_core::Clock::now(&clock);
    let near = now + FETCHED_AT_SKEW;
    tier.set("near", &1_u8, near, Duration::from_secs(60)).await.unwrap();
    assert_eq!(tier.get::<u8>("near").await.unwrap().unwrap().fetched_at, near);
    let past = now - Duration::from_secs(3600);
    tier.set("past", &1_u8, past, Duration::from_secs(60)).await.unwrap();
    assert_eq!(tier.get::<u8>("past").await.unwrap().unwrap().fetched_at, past);
}
