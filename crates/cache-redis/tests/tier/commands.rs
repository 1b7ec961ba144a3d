//! What the tier asks of Redis: one command per operation, on a connection
//! it keeps, with no check before each use; and, when that connection
//! breaks or stalls, one new connection, not one per operation.
//!
//! Counted by Redis itself (`INFO commandstats`, `INFO stats`), on a
//! connection of the test's own opened before the counting starts.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use cache_redis::testing::RedisServer;
use cache_redis::{Error, Op};
use deadpool_redis::redis::{self, aio::MultiplexedConnection};

use crate::support::{Counts, tier};

/// Calls per command so far, e.g. `"get" → 1000`, from `INFO commandstats`.
async fn command_calls(admin: &mut MultiplexedConnection) -> HashMap<String, u64> {
    let info: String = redis::cmd("INFO").arg("commandstats").query_async(admin).await.expect("INFO commandstats");
    info.lines()
        .filter_map(|line| {
            // cmdstat_get:calls=1000,usec=1234,usec_per_call=1.23,…
            let (name, fields) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = fields.split(',').find_map(|field| field.strip_prefix("calls="))?;
            Some((name.to_owned(), calls.parse().ok()?))
        })
        .collect()
}

/// Connections Redis has accepted so far (`total_connections_received`).
async fn connections_accepted(admin: &mut MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO").arg("stats").query_async(admin).await.expect("INFO stats");
    info.lines()
        .find_map(|line| line.strip_prefix("total_connections_received:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("INFO stats has total_connections_received")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_is_one_getrange_and_nothing_else() {
    const SEQUENTIAL: u64 = 500;
    const TASKS: u64 = 8;
    const PER_TASK: u64 = 100;
    let server = RedisServer::start();
    let (tier, counts) = tier(&server.url());
    tier.set("0xabc", &vec![7_u64; 200], SystemTime::now(), Duration::from_secs(60)).await.unwrap();
    let mut admin = server.connection().await;
    let (before, accepted) = (command_calls(&mut admin).await, connections_accepted(&mut admin).await);

    for _ in 0..SEQUENTIAL {
        assert!(tier.get::<Vec<u64>>("0xabc").await.unwrap().is_some());
    }
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let tier = tier.clone();
            tokio::spawn(async move {
                for _ in 0..PER_TASK {
                    assert!(tier.get::<Vec<u64>>("0xabc").await.unwrap().is_some());
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }

    let after = command_calls(&mut admin).await;
    let grew = |name: &str| after.get(name).copied().unwrap_or(0) - before.get(name).copied().unwrap_or(0);
    // One read per get, bounded by the value limit (`GETRANGE key 0 limit`);
    // the sequential gets cannot share a flight, the concurrent ones may.
    assert!(grew("getrange") >= SEQUENTIAL && grew("getrange") <= SEQUENTIAL + TASKS * PER_TASK, "{after:?}");
    // The prober's first PING may land in the window; a check per checkout
    // would be one per get.
    // and the health probe is skipped while operations get answers.
    assert!(grew("ping") <= 1, "{} PINGs for {} gets", grew("ping"), grew("getrange"));
    let others: Vec<(&String, u64)> = after
        .keys()
        .filter(|name| !["getrange", "ping", "info"].contains(&name.as_str()))
        .map(|name| (name, grew(name)))
        .filter(|&(_, calls)| calls > 0)
        .collect();
    assert!(others.is_empty(), "no other command (UNWATCH, say) was sent: {others:?}");
    assert_eq!(connections_accepted(&mut admin).await, accepted, "no connection was opened");
    assert_eq!(Counts::get(&counts.hits), SEQUENTIAL + TASKS * PER_TASK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_killed_while_idle_is_replaced_once_and_costs_no_error() {
    let server = RedisServer::start();
    let (tier, counts) = tier(&server.url());
    tier.set("0xabc", &1_u8, SystemTime::now(), Duration::from_secs(60)).await.unwrap();
    let mut admin = server.connection().await;
    let accepted = connections_accepted(&mut admin).await;

    // As a restart or an idle timeout in a proxy would: the tier's
    // connection is closed under it while it is not in use.
    let killed: u64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .arg("SKIPME")
        .arg("yes")
        .query_async(&mut admin)
        .await
        .expect("CLIENT KILL");
    assert_eq!(killed, 1, "the tier's one connection");

    // Concurrent gets all find the dead connection, or its replacement.
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let tier = tier.clone();
            tokio::spawn(async move { tier.get::<u8>("0xabc").await })
        })
        .collect();
    for task in tasks {
        let stored = task.await.unwrap().expect("a fresh connection answers");
        assert_eq!(stored.map(|s| s.value), Some(1));
    }
    assert_eq!(connections_accepted(&mut admin).await, accepted + 1, "one replacement, not one per get");
    assert_eq!(counts.errors(), 0);
    assert_eq!(*counts.up.lock().unwrap(), [true], "never seen as down");
    assert!(tier.is_available());
}

#[tokio::test]
async fn a_connection_that_timed_out_is_not_used_again() {
    let server = RedisServer::start();
    let (tier, counts) = tier(&server.url());
    tier.set("0xabc", &1_u8, SystemTime::now(), Duration::from_secs(60)).await.unwrap();
    let mut admin = server.connection().await;
    let accepted = connections_accepted(&mut admin).await;

    server.freeze();
    let error = tier.get::<u8>("0xabc").await.unwrap_err();
    server.thaw();
    assert!(matches!(error, Error::Timeout(Op::Get, _)), "{error:?}");

    // The stalled connection's late reply is not waited for or misread:
    // the next get goes out on a new connection and reads its own answer.
    assert_eq!(tier.get::<u8>("0xabc").await.unwrap().map(|s| s.value), Some(1));
    assert_eq!(connections_accepted(&mut admin).await, accepted + 1, "the timed-out connection was replaced");
    assert_eq!(counts.errors_of(Op::Get), 1);
}
