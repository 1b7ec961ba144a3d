//! What every tier test needs: a tier on a test server with a counting
//! observer, and waiting for a condition with a deadline.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cache_redis::testing::RedisServer;
use cache_redis::{BreakerState, Config, ErrorReply, Observer, Op, RedisTier};
use deadpool_redis::redis;
use tokio::time::Instant;

/// Counts everything a tier reports.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) corrupt: AtomicU64,
    pub(crate) oversized: AtomicU64,
    pub(crate) refused_older: AtomicU64,
    pub(crate) stopped_by_tombstone: AtomicU64,
    errors: [AtomicU64; Op::ALL.len()],
    replies: [AtomicU64; ErrorReply::ALL.len()],
    rejected: [AtomicU64; Op::ALL.len()],
    pub(crate) breaker: Mutex<Vec<BreakerState>>,
    pub(crate) up: Mutex<Vec<bool>>,
}

impl Counts {
    pub(crate) fn errors(&self) -> u64 {
        self.errors.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    pub(crate) fn errors_of(&self, op: Op) -> u64 {
        self.errors[op as usize].load(Ordering::Relaxed)
    }

    pub(crate) fn replies_of(&self, kind: ErrorReply) -> u64 {
        self.replies[kind as usize].load(Ordering::Relaxed)
    }

    pub(crate) fn rejected(&self) -> u64 {
        self.rejected.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

impl Observer for Counts {
    fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }
    fn miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }
    fn error(&self, op: Op) {
        self.errors[op as usize].fetch_add(1, Ordering::Relaxed);
    }
    fn rejected(&self, op: Op) {
        self.rejected[op as usize].fetch_add(1, Ordering::Relaxed);
    }
    fn corrupt_value(&self) {
        self.corrupt.fetch_add(1, Ordering::Relaxed);
    }
    fn error_reply(&self, _op: Op, kind: ErrorReply) {
        self.replies[kind as usize].fetch_add(1, Ordering::Relaxed);
    }
    fn oversized_value(&self) {
        self.oversized.fetch_add(1, Ordering::Relaxed);
    }
    fn refused_older(&self) {
        self.refused_older.fetch_add(1, Ordering::Relaxed);
    }
    fn stopped_by_tombstone(&self) {
        self.stopped_by_tombstone.fetch_add(1, Ordering::Relaxed);
    }
    fn breaker_changed(&self, state: BreakerState) {
        self.breaker.lock().unwrap().push(state);
    }
    fn up_changed(&self, up: bool) {
        self.up.lock().unwrap().push(up);
    }
}

/// A tier on `url` with the default configuration but `namespace`, and the
/// observer counting what it does.
pub(crate) fn tier_with(config: Config) -> (RedisTier, Arc<Counts>) {
    let counts = Arc::new(Counts::default());
    let tier = RedisTier::with_observer(config, counts.clone()).expect("a valid configuration");
    (tier, counts)
}

pub(crate) fn tier(url: &str) -> (RedisTier, Arc<Counts>) {
    tier_with(Config::new(url))
}

/// Polls `condition` until it holds, failing the test after `deadline`;
/// returns how long it took.
pub(crate) async fn wait_until<F, Fut>(what: &str, deadline: Duration, mut condition: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if condition().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < deadline, "not within {deadline:?}: {what}");
        // The interval between polls, not a wait for the condition.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `DBSIZE`, on a connection of the test's own.
pub(crate) async fn db_size(server: &RedisServer) -> u64 {
    let mut connection = server.connection().await;
    redis::cmd("DBSIZE").query_async(&mut connection).await.expect("DBSIZE")
}

/// `PTTL key`, on a connection of the test's own.
pub(crate) async fn pttl(server: &RedisServer, key: &str) -> i64 {
    let mut connection = server.connection().await;
    redis::cmd("PTTL").arg(key).query_async(&mut connection).await.expect("PTTL")
}

/// A field of `INFO`, e.g. `total_net_output_bytes`, on a connection of the
/// test's own.
pub(crate) async fn info_field(server: &RedisServer, field: &str) -> u64 {
    let mut connection = server.connection().await;
    let info: String = redis::cmd("INFO").query_async(&mut connection).await.expect("INFO");
    info.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("INFO has no numeric {field}"))
}

/// Calls of `command` so far, from `INFO commandstats`.
pub(crate) async fn command_calls(server: &RedisServer, command: &str) -> u64 {
    let mut connection = server.connection().await;
    let info: String = redis::cmd("INFO").arg("commandstats").query_async(&mut connection).await.expect("INFO");
    info.lines()
        .find_map(|line| {
            let fields = line.strip_prefix("cmdstat_")?.strip_prefix(command)?.strip_prefix(':')?;
            fields.split(',').find_map(|field| field.strip_prefix("calls="))?.parse().ok()
        })
        .unwrap_or(0)
}
