//! Three replicas of the service on one real `redis-server`, sharing one
//! counting source and one clock: they must behave as one cache.
//!
//! - one load per wallet across the fleet ([`loads`]);
//! - a delete reaches every replica and is final for loads that started
//!   before it ([`deletes`]);
//! - every replica serves the newest copy ([`newest`]);
//! - a lost subscription is not a lost invalidation, and Redis going away
//!   leaves each replica alone, then coordinated again ([`gaps`]);
//! - invalidation and one load per wallet hold with the three replicas on
//!   a Redis Cluster ([`cluster`]).

mod cluster;
mod deletes;
mod gaps;
mod loads;
mod newest;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use cache_core::ManualClock;
use cache_redis::testing::{RedisCluster, RedisServer};
use system_tests::{Client, FakeSource, TestService, eventually};

/// The wallet most tests use.
pub(crate) const WALLET: &str = "0x52908400098527886e0f7030069857d2e4169ee7";
/// Its path.
pub(crate) const PATH: &str = "/v4/positions/0x52908400098527886e0f7030069857d2e4169ee7";
/// Its Redis key under the default namespace (a fleet on a cluster has a
/// namespace of its own: see [`Fleet::key`]).
pub(crate) const KEY: &str = "poscache:positions:v2:{0x52908400098527886e0f7030069857d2e4169ee7}";
/// The admin token every replica takes.
pub(crate) const TOKEN: &str = "fleet-t0ken";
/// How long a condition may take to hold before a test fails. Generous:
/// correctness is asserted here; how fast is `cargo xtask bench --only
/// fleet`'s to measure.
pub(crate) const DEADLINE: Duration = Duration::from_secs(10);

/// The replicas' Redis operation timeout. A Redis that cannot answer in time
/// is one that cannot say who loads, and each replica then loads alone (as
/// it must): on a machine busy enough to miss the default 100 ms (a cold
/// burst of 900 requests on two cores delays a cluster client's routing task
/// that much), the tests would see the fallback instead of the coordination
/// they are about. The fault tests of `tests/redis` keep 100 ms.
const REDIS_TIMEOUT_MS: u64 = 2_000;

/// Which Redis a fleet shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backing {
    /// A `redis-server` of its own.
    Standalone,
    /// The test binary's shared Redis Cluster, in a namespace of its own.
    Cluster,
}

/// The Redis a fleet shares.
pub(crate) enum Redis {
    Server(RedisServer),
    Cluster { cluster: Arc<RedisCluster>, namespace: String },
}

impl Redis {
    /// The bytes stored under `key`.
    pub(crate) async fn get_raw(&self, key: &str) -> Option<Vec<u8>> {
        match self {
            Self::Server(server) => server.get_raw(key).await,
            Self::Cluster { cluster, .. } => cluster.get_raw(key),
        }
    }

    /// Runs one command on the server (standalone only: the tests that
    /// stage outages of one Redis).
    pub(crate) async fn command(&self, args: &[&str]) {
        match self {
            Self::Server(server) => drop(server.command(args).await),
            Self::Cluster { .. } => panic!("a standalone-only test ran on a cluster"),
        }
    }

    /// Kills the server (standalone only).
    pub(crate) fn kill(&mut self) {
        self.server().kill();
    }

    /// Restarts the server, empty (standalone only).
    pub(crate) fn restart(&mut self) {
        self.server().restart();
    }

    fn server(&mut self) -> &mut RedisServer {
        match self {
            Self::Server(server) => server,
            Self::Cluster { .. } => panic!("a standalone-only test ran on a cluster"),
        }
    }
}

/// Three replicas, one Redis, one source, one clock.
pub(crate) struct Fleet {
    pub(crate) redis: Redis,
    pub(crate) source: Arc<FakeSource>,
    pub(crate) clock: ManualClock,
    pub(crate) replicas: Vec<TestService>,
}

impl Fleet {
    /// Starts three coordinated replicas and waits until each one's fleet
    /// subscription is up.
    pub(crate) async fn start() -> Self {
        Self::start_on(Backing::Standalone).await
    }

    /// As [`start`](Self::start), on `backing`.
    pub(crate) async fn start_on(backing: Backing) -> Self {
        Self::start_with(backing, |_| {}).await
    }

    /// As [`start_on`](Self::start_on), with the replicas' options changed
    /// by `tweak`.
    pub(crate) async fn start_with(backing: Backing, tweak: impl Fn(&mut positions_api::ServiceOptions)) -> Self {
        static NAMESPACES: AtomicU32 = AtomicU32::new(0);
        let redis = match backing {
            Backing::Standalone => Redis::Server(RedisServer::start()),
            Backing::Cluster => Redis::Cluster {
                cluster: RedisCluster::shared(),
                namespace: format!("fleet{}", NAMESPACES.fetch_add(1, Ordering::Relaxed)),
            },
        };
        let source = Arc::new(FakeSource::new());
        let clock = ManualClock::starting_now();
        // The tests hold the source while they look at the replicas; a
        // source call that timed out meanwhile would let another replica
        // take the lease over and call again, however slow the machine.
        let mut options = system_tests::service::default_options();
        options.refresh.timeout = DEADLINE * 3;
        tweak(&mut options);
        let mut replicas = Vec::new();
        for _ in 0..3 {
            let builder = TestService::builder(source.clone())
                .options(options.clone())
                .redis_timeout_ms(REDIS_TIMEOUT_MS)
                .clock(&clock)
                .admin_token(TOKEN);
            let builder = match &redis {
                Redis::Server(server) => builder.redis(&server.url()),
                Redis::Cluster { cluster, namespace } => builder.redis(&cluster.seeds()).redis_args(&[
                    "--redis-mode",
                    "cluster",
                    "--redis-namespace",
                    namespace,
                ]),
            };
            replicas.push(builder.start().await);
        }
        let fleet = Self { redis, source, clock, replicas };
        fleet.wait_subscribed().await;
        fleet
    }

    /// Waits until every replica's subscription is up and its Redis tier
    /// usable (reachable, breaker closed).
    pub(crate) async fn wait_subscribed(&self) {
        for (i, replica) in self.replicas.iter().enumerate() {
            eventually(&format!("replica {i} to subscribe"), DEADLINE, || async {
                metric(replica, "position_cache_fleet_subscribed") == 1 && !replica.app.service().health().degraded
            })
            .await;
        }
    }

    /// The Redis key of [`WALLET`]'s entry in this fleet's namespace.
    pub(crate) fn key(&self) -> String {
        match &self.redis {
            Redis::Server(_) => KEY.to_owned(),
            Redis::Cluster { namespace, .. } => format!("{namespace}:positions:v2:{{{WALLET}}}"),
        }
    }

    /// A client of replica `i`.
    pub(crate) fn client(&self, i: usize) -> Client {
        self.replicas[i].client()
    }

    /// The sum of a metric's sample over the replicas.
    pub(crate) fn total(&self, sample: &str) -> u64 {
        self.replicas.iter().map(|replica| metric(replica, sample)).sum()
    }

    /// Loads the wallet on replica 0 and has replicas 1 and 2 read it (from
    /// Redis), so that every replica holds it in memory.
    pub(crate) async fn warm(&self, path: &str) {
        let first = self.client(0).get(path).await;
        assert_eq!(first.status, 200, "{}", first.text());
        for i in 1..3 {
            let reply = self.client(i).get(path).await;
            assert_eq!(reply.status, 200, "{}", reply.text());
            assert_eq!(reply.json()["cached"], true, "replica {i} read replica 0's entry from Redis");
            let again = self.client(i).get(path).await;
            assert!(again.header("cache-status").contains("detail=memory"), "{}", again.header("cache-status"));
        }
    }

    pub(crate) async fn stop(self) {
        for replica in self.replicas {
            replica.stop().await;
        }
    }
}

/// A sample of the replica's metrics (`name{labels}` as exposed), 0 if it
/// is absent.
pub(crate) fn metric(replica: &TestService, sample: &str) -> u64 {
    let text = replica.metrics.encode();
    text.lines().find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok()).unwrap_or(0)
}

/// The call number the source stamped on an answer's positions.
pub(crate) fn call_of(reply: &system_tests::Reply) -> String {
    reply.json()["positions"][0]["realized_pnl"].as_str().expect("a realized_pnl").to_owned()
}
