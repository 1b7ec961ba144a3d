//! The tier itself: a connection pool, the key layout, the envelope and the
//! breaker put together into five time-bounded operations.
//!
//! Every operation goes the same way ([`Shared::round_trip`]), in three
//! steps, each a function of its own:
//!
//! 1. **leave**: the breaker lets the operation through, or it fails at
//!    once ([`Error::Unavailable`]);
//! 2. **attempt** ([`Shared::attempt`]): under one `tokio::time::timeout`
//!    of the op timeout, take a connection and send one command or
//!    pipeline ([`Shared::send`]); the connection bookkeeping (which lease
//!    a connection came from, when to give it up, the one retry on a
//!    fresh connection) stays inside this step;
//! 3. **record** ([`Shared::record`]): tell the breaker, the up flag and
//!    the observer how it went. An answer, even an error reply, says Redis
//!    is up; only an outage (no connection, a timeout) is a failure.
//!
//! So an operation is one round trip (a pattern deletion makes one per
//! page, each under its own op timeout), no caller waits longer than the
//! op timeout, and none waits at all while the breaker is open.
//!
//! On a Redis Cluster the steps are the same; what is sent on, and how,
//! is [`link`](crate::link)'s (a cluster connection that routes by slot),
//! and health is a `PING` of every primary (see the prober).
//!
//! A connection that fails at the I/O level or times out is replaced: its
//! lease ends, and the next operation leases another (one server only: a
//! cluster connection mends its node connections itself). One that broke while
//! no one used it (Redis restarted, a proxy dropped it) is found out by the
//! next operation on it, which then tries once more on a fresh connection
//! within its op timeout; the pool's check on checkout used to spare that
//! operation the failure, and this does too.
//!
//! A `get` reads at most [`Config::max_value_bytes`] plus one bytes
//! (`GETRANGE key 0 max`, the same one round trip and the same cost in
//! Redis as `GET` for a value under the limit), so an oversized value is
//! never copied whole; concurrent `get`s of one key share that round trip
//! ([`reads`](crate::reads)).
//!
//! What it is not: a cache policy. It stores what it is given for as long
//! as it is told, and reads back what is there; freshness, single flight
//! of loads and what to do on an error belong to the service.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant, SystemTime};

use cache_core::{Clock, SystemClock};

use deadpool_redis::redis::{self, AsyncConnectionConfig, FromRedisValue};
use deadpool_redis::{Pool, PoolError, Runtime};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::breaker::{Breaker, BreakerState, Permit};
use crate::config::{Config, Mode};
use crate::envelope::{self, Stored};
use crate::error::{Error, ErrorReply, OUTAGE_CODES};
use crate::keys::Keys;
use crate::lease::{Lease, Ticket};
pub(crate) use crate::link::Request;
use crate::link::{Connections, NodeAddress};
use crate::observer::{Observer, Silent};
use crate::op::Op;
use crate::prober;
use crate::reads::{Raw, Reads};
use crate::redact::Secrets;
use crate::topology;

/// Keys asked for per `SCAN` page: large, so that walking a big keyspace
/// takes few round trips, yet one page (and the `UNLINK` of it) keeps Redis
/// busy for only a millisecond or so, leaving room for other clients.
pub const SCAN_COUNT: usize = 1000;

/// In cluster mode, how many op timeouts the pool gives to creating the
/// cluster connection (learning the slot map and connecting to the nodes).
const CLUSTER_CREATE_TIMEOUTS: u32 = 5;

/// The longest expiry a store asks for (about 140,000 years); longer ones
/// are shortened to it, because Redis refuses an expiry that overflows its
/// clock.
const MAX_EXPIRY_MS: u64 = 1 << 52;

/// `expire_after` in whole milliseconds, at least one, at most
/// [`MAX_EXPIRY_MS`]: what `PX` is given.
pub(crate) fn expiry_millis(expire_after: Duration) -> u64 {
    u64::try_from(expire_after.as_millis()).unwrap_or(u64::MAX).clamp(1, MAX_EXPIRY_MS)
}

/// How far past now a stored `fetched_at` may lie before a read clamps it
/// to now: 2 s, more than replicas' clocks kept by NTP differ (milliseconds),
/// far less than any TTL.
///
/// Without the clamp, an entry written by a replica whose clock ran ahead
/// (or planted by hand) would be younger than zero for as long as the
/// clock's lead: fresh however long it stays, and newer than every real
/// load, so never replaced. Clamped, it is as old as a value just fetched,
/// ages from there, and is refreshed after one TTL like any other.
pub const FETCHED_AT_SKEW: Duration = Duration::from_secs(2);

/// The shared Redis tier: values of type `T` stored under
/// `<namespace>:positions:v2:{<id>}` with the time they were fetched.
///
/// Built from a [`Config`] without connecting, so start-up neither fails
/// nor waits when Redis is down; only a malformed URL is an error here.
/// Cloning is cheap and clones share the connection, the pool, the breaker
/// and the prober.
///
/// Every operation returns within the op timeout (getting a connection
/// included), or at once with [`Error::Unavailable`] while the breaker is
/// open; every error means "Redis could not help this time", and the
/// caller should carry on as on a miss.
///
/// **One round trip per operation, on one shared connection.** The tier
/// checks one connection out of its pool and keeps it; every operation,
/// from any clone or task, sends on it (concurrent requests are pipelined
/// over its socket), so none pays for the check the pool makes on each
/// checkout. A connection that fails at the I/O level or times out is
/// detached from the pool, and the next operation checks out another under
/// its op timeout. A connection that broke while idle (Redis restarted, a
/// proxy dropped it) is found out by the next operation on it, which tries
/// once more on a fresh connection, within its op timeout, rather than
/// fail. See [`Config::pool_size`] for what the pool's size still does.
///
/// **Health is probed in the background.** When built inside a tokio
/// runtime, the tier spawns a small prober task. It sends one `PING` at
/// start (so [`is_up`](Self::is_up) and the observer learn early whether
/// Redis answers, without anyone waiting for it; skipped if an operation
/// is already under way, which answers the same), then one every
/// [`Config::health_interval`] unless an operation got an answer since the
/// last, and, while the breaker is open, the trial `PING` when the pause
/// ends or the interval does, whichever comes first. So a replica whose
/// every request is answered from memory still sees Redis die (within two
/// intervals) and come back (within two intervals) with no traffic to
/// Redis at all, and users never pay for a trial that the prober can make.
/// An operation that finds the pause over before the prober does is the
/// trial itself, which also covers a tier built outside a runtime (no
/// prober then). The prober stops when the last clone of the tier is
/// dropped.
///
/// # Examples
///
/// ```no_run
/// use std::time::{Duration, SystemTime};
/// use cache_redis::{Config, RedisTier};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cache_redis::Error> {
/// let tier = RedisTier::new(Config::new("redis://127.0.0.1:6379"))?;
///
/// tier.set("0xabc", &vec![1_u64, 2, 3], SystemTime::now(), Duration::from_secs(900)).await?;
/// let stored = tier.get::<Vec<u64>>("0xabc").await?.expect("just stored");
/// assert_eq!(stored.value, [1, 2, 3]);
///
/// assert!(tier.delete("0xabc").await?);
/// assert_eq!(tier.delete_matching("0x*").await?, 0);
/// println!("redis answers in {:?}", tier.ping().await?);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisTier {
    pub(crate) shared: Arc<Shared>,
    /// Stops the prober when the last clone goes; `None` without a runtime.
    prober: Option<Arc<prober::Guard>>,
}

/// What the tier's clones and its prober share.
pub(crate) struct Shared {
    pub(crate) connection: Connections,
    pub(crate) mode: Mode,
    pub(crate) keys: Keys,
    namespace: String,
    op_timeout: Duration,
    pub(crate) health_interval: Duration,
    max_value_bytes: usize,
    pub(crate) breaker: Breaker,
    pub(crate) observer: Arc<dyn Observer>,
    clock: Arc<dyn Clock>,
    reads: Reads,
    redacted_url: String,
    secrets: Secrets,
    reachability: AtomicU8,
    /// Set when a round trip gets an answer; the prober clears it, and
    /// skips its `PING` if it was set: Redis has just answered.
    answered: AtomicBool,
}

const UNKNOWN: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

/// Why a round trip failed before it was classified.
enum Failure {
    Pool(PoolError),
    Redis(redis::RedisError),
}

/// A boxed read (see [`RedisTier::get`]).
type ReadFuture<'a> = std::pin::Pin<Box<dyn Future<Output = Result<Raw, Error>> + Send + 'a>>;

/// Where an attempt got to, so that a timeout can say which step it cut
/// short and end the lease of the connection it was waiting on.
struct Progress {
    step: Op,
    in_flight: Option<Ticket>,
}

impl RedisTier {
    /// Builds a tier that reports to no one.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUrl`] if the URL does not parse, [`Error::Pool`] if
    /// the pool cannot be built. Never a connection error: nothing connects
    /// here.
    pub fn new(config: Config) -> Result<Self, Error> {
        Self::with_observer(config, Arc::new(Silent))
    }

    /// Builds a tier that reports its events to `observer`.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    pub fn with_observer(config: Config, observer: Arc<dyn Observer>) -> Result<Self, Error> {
        Self::with_observer_and_clock(config, observer, Arc::new(SystemClock))
    }

    /// Builds a tier that reports its events to `observer` and reads the
    /// time from `clock`, the caller's clock, against which a stored
    /// `fetched_at` in the future is clamped (see [`get`](Self::get)).
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    pub fn with_observer_and_clock(
        config: Config,
        observer: Arc<dyn Observer>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, Error> {
        let redacted_url = config.redacted_url();
        let timeout = Some(config.op_timeout);
        // Without the pools' timeouts (and without the runtime they need),
        // a pool waiting on an unreachable Redis would wait forever; the
        // timeout around each operation is the real bound, these keep
        // nothing underneath from outliving it.
        let (connection, secrets) = match config.mode {
            Mode::Standalone => {
                let (info, secrets) = config.connection_info()?;
                let connection_config =
                    AsyncConnectionConfig::new().set_connection_timeout(timeout).set_response_timeout(timeout);
                let manager = deadpool_redis::Manager::new_with_config(info, connection_config)
                    .map_err(|e| config.invalid_url(secrets.scrub(e)))?;
                let pool = Pool::builder(manager)
                    .max_size(config.pool_size.get())
                    .wait_timeout(timeout)
                    .create_timeout(timeout)
                    .recycle_timeout(timeout)
                    .runtime(Runtime::Tokio1)
                    .build()
                    .map_err(|e| Error::Pool(secrets.scrub(e)))?;
                (Connections::Single(Lease::new(pool)), secrets)
            }
            Mode::Cluster => {
                let (seeds, secrets) = config.seed_infos()?;
                // Learning the cluster (the slot map, a connection to each
                // node) takes a few round trips, more than one op timeout
                // on a slow link: creation gets a few of them. The
                // operation waiting for it still gives up at its own.
                let create = config.op_timeout.saturating_mul(CLUSTER_CREATE_TIMEOUTS);
                let manager = deadpool_redis::cluster::Manager::new(seeds, false)
                    .map_err(|e| config.invalid_url(secrets.scrub(e)))?;
                let pool = deadpool_redis::cluster::Pool::builder(manager)
                    .max_size(config.pool_size.get())
                    .wait_timeout(Some(create))
                    .create_timeout(Some(create))
                    .recycle_timeout(timeout)
                    .runtime(Runtime::Tokio1)
                    .build()
                    .map_err(|e| Error::Pool(secrets.scrub(e)))?;
                (Connections::Cluster(Lease::new(pool)), secrets)
            }
        };

        let shared = Arc::new(Shared {
            connection,
            mode: config.mode,
            keys: Keys::new(&config.namespace),
            namespace: config.namespace,
            op_timeout: config.op_timeout,
            health_interval: config.health_interval,
            max_value_bytes: config.max_value_bytes,
            breaker: Breaker::new(config.breaker, Arc::clone(&observer), redacted_url.clone()),
            observer,
            clock,
            reads: Reads::default(),
            redacted_url,
            secrets,
            reachability: AtomicU8::new(UNKNOWN),
            answered: AtomicBool::new(false),
        });
        let prober = prober::start(&shared).map(Arc::new);
        Ok(Self { shared, prober })
    }

    /// Reads the entry for `id` in one round trip.
    ///
    /// Concurrent `get`s of one id share that round trip and its answer
    /// (each decodes the bytes for itself), so a stampede on one id costs
    /// Redis one read. `Ok(None)` if there is none, or if what is there
    /// is not a value this version can read (another format version, or
    /// corruption: logged at warn with its key, reported to the observer as
    /// corrupt), or is larger than [`Config::max_value_bytes`] (reported as
    /// oversized, and read no further than the limit); either is left for
    /// the next [`set`](Self::set) to replace.
    ///
    /// A `fetched_at` more than [`FETCHED_AT_SKEW`] past now (by the
    /// tier's clock) is clamped to now, so that no entry stays fresh
    /// forever.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`], [`Error::Timeout`], [`Error::Redis`] or
    /// [`Error::Pool`]: Redis could not answer; [`Error::Reply`]: it
    /// refused the read (`WRONGTYPE`, say). Treat either as a miss.
    pub async fn get<T: DeserializeOwned>(&self, id: &str) -> Result<Option<Stored<T>>, Error> {
        let key = self.shared.keys.key(id);
        // Boxed, and as a trait object: the read's future (flight, breaker,
        // timeout, connection) is deep, and a caller that nests `get` in
        // its own futures (the service's routes) would otherwise hit the
        // compiler's recursion limit computing their layout. One
        // allocation per round trip, not per caller.
        let raw = self.shared.reads.read(&key, || -> ReadFuture<'_> { Box::pin(self.shared.read_raw(&key)) }).await?;
        let bytes = match raw {
            Raw::Bytes(bytes) => bytes,
            Raw::Absent | Raw::Oversized => {
                self.shared.observer.miss();
                return Ok(None);
            }
        };
        match envelope::decode::<T>(&bytes) {
            Ok(stored) => {
                self.shared.observer.hit();
                Ok(Some(self.shared.clamp(&key, stored)))
            }
            Err(error) => {
                tracing::warn!(
                    key = %key,
                    len = bytes.len(),
                    %error,
                    "ignoring an undecodable value in redis; the next store replaces it",
                );
                self.shared.observer.corrupt_value();
                self.shared.observer.miss();
                Ok(None)
            }
        }
    }

    /// Stores `value` for `id` with the time it was fetched from its
    /// source, to expire after `expire_after` (`SET key value PX ms`; the
    /// service passes TTL plus its stale-if-error window). The expiry is
    /// counted in whole milliseconds, at least one.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] if the value cannot be encoded (nothing is sent),
    /// [`Error::Reply`] if Redis refuses the write (`OOM` at `maxmemory`
    /// under `noeviction`, `READONLY` on a replica), or a Redis error as
    /// for [`get`](Self::get).
    pub async fn set<T: Serialize + ?Sized>(
        &self,
        id: &str,
        value: &T,
        fetched_at: SystemTime,
        expire_after: Duration,
    ) -> Result<(), Error> {
        let bytes = envelope::encode(value, fetched_at).map_err(|error| {
            self.shared.observer.error(Op::Set);
            Error::from(error)
        })?;
        let millis = expiry_millis(expire_after);
        let mut command = redis::cmd("SET");
        command.arg(self.shared.keys.key(id)).arg(bytes).arg("PX").arg(millis);
        self.shared.round_trip(Op::Set, Request::Command(&command)).await
    }

    /// Stores the list of ids most in demand (most first), replacing the one
    /// held, to expire after `expire_after`: what a replica that starts
    /// reads with [`warm_list`](Self::warm_list) to fill its memory from
    /// this tier. One value, the ids joined by newlines (ids hold none).
    ///
    /// # Errors
    ///
    /// A Redis error as for [`set`](Self::set).
    pub async fn set_warm_list(&self, ids: &[&str], expire_after: Duration) -> Result<(), Error> {
        let mut command = redis::cmd("SET");
        command.arg(&self.shared.keys.warm_list).arg(ids.join("\n")).arg("PX").arg(expiry_millis(expire_after));
        self.shared.round_trip(Op::Set, Request::Command(&command)).await
    }

    /// The list [`set_warm_list`](Self::set_warm_list) stored, most in
    /// demand first; empty if there is none.
    ///
    /// # Errors
    ///
    /// A Redis error as for [`get`](Self::get).
    pub async fn warm_list(&self) -> Result<Vec<String>, Error> {
        let mut command = redis::cmd("GET");
        command.arg(&self.shared.keys.warm_list);
        let text: Option<String> = self.shared.round_trip(Op::Get, Request::Command(&command)).await?;
        Ok(text.map(|t| t.lines().filter(|l| !l.is_empty()).map(str::to_owned).collect()).unwrap_or_default())
    }

    /// Drops the entry for `id` (`UNLINK`, so Redis frees it in the
    /// background); `true` if there was one.
    ///
    /// In one rare case it says `false` for an entry it did drop: when the
    /// connection drops after Redis ran the `UNLINK` but before its reply
    /// arrived, and the one retry on a fresh connection (see
    /// [`RedisTier`]) finds the entry gone.
    ///
    /// # Errors
    ///
    /// A Redis error as for [`get`](Self::get).
    pub async fn delete(&self, id: &str) -> Result<bool, Error> {
        let mut command = redis::cmd("UNLINK");
        command.arg(self.shared.keys.key(id));
        let removed: u64 = self.shared.round_trip(Op::Delete, Request::Command(&command)).await?;
        Ok(removed > 0)
    }

    /// Drops the entry of every id that `id_pattern` matches, with Redis's
    /// glob rules (`*`, `?`, `[a-z]`, `\` escapes; see
    /// [`cache_core::glob`]), and returns how many it dropped.
    ///
    /// It walks the keyspace with `SCAN … MATCH … COUNT 1000` (never
    /// `KEYS`, which would stall Redis for every other client) and
    /// `UNLINK`s each page in the same round trip as the `SCAN` of the next
    /// one, until the cursor comes back to 0. Only the namespace's keys are
    /// touched: glob characters in the namespace are escaped. A key that
    /// `SCAN` returns twice, or that expires on the way, is counted once or
    /// not at all: the count is what `UNLINK` removed (and, as for
    /// [`delete`](Self::delete), a page whose reply was lost to a dropped
    /// connection is sent again and its keys are not counted).
    ///
    /// Each round trip gets the op timeout; the whole deletion may take
    /// longer (about a second per 100,000 keys on loopback). If one fails,
    /// the deletion stops with that error, having dropped some keys;
    /// running it again finishes the job.
    ///
    /// On a cluster it walks every primary in turn, each page's keys
    /// unlinked one `UNLINK` each (a cluster refuses a command on keys of
    /// several slots), on that primary. A primary that cannot be walked to
    /// the end does not stop the others: the result is then
    /// [`Error::Partial`], with the count of what went.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPattern`] for a malformed pattern (an unclosed `[`
    /// or a trailing `\`), before anything is deleted; [`Error::Partial`]
    /// on a cluster some of whose primaries were not walked; otherwise a
    /// Redis error as for [`get`](Self::get).
    pub async fn delete_matching(&self, id_pattern: &str) -> Result<u64, Error> {
        let pattern = self.shared.keys.pattern(id_pattern)?;
        match self.shared.mode {
            Mode::Standalone => {
                self.scan_and_apply(&pattern, |pipeline, page| {
                    pipeline.cmd("UNLINK").arg(page);
                    1
                })
                .await
            }
            // A cluster refuses a command on keys of several slots, and a
            // page of one node's keys has many: one `UNLINK` per key, in the
            // same round trip.
            Mode::Cluster => {
                self.scan_and_apply(&pattern, |pipeline, page| {
                    for key in page {
                        pipeline.cmd("UNLINK").arg(key);
                    }
                    page.len()
                })
                .await
            }
        }
    }

    /// Walks the keys that `pattern` (a complete `MATCH` pattern) selects
    /// with `SCAN`, and for each page found adds `apply`'s commands to the
    /// round trip that scans the next page; `apply` says how many it added,
    /// each of which must answer an integer: the sum of those integers is
    /// returned. The last page goes alone, with no `SCAN`.
    ///
    /// In cluster mode it walks every primary in turn (`SCAN` answers for
    /// one node's keys only), each page's commands sent to that primary,
    /// which serves their keys. The primaries are read from the cluster
    /// (`CLUSTER NODES`) when the walk starts, and read again when it ends:
    /// a primary the cluster counts as failing, one that fails midway, or a
    /// change of who serves which slots in between (a reshard or a
    /// failover, which may have moved keys to a primary already walked)
    /// makes the result [`Error::Partial`], with what was removed.
    pub(crate) async fn scan_and_apply(
        &self,
        pattern: &str,
        mut apply: impl FnMut(&mut redis::Pipeline, &[Vec<u8>]) -> usize,
    ) -> Result<u64, Error> {
        match self.shared.mode {
            Mode::Standalone => self.scan_node(None, pattern, &mut apply).await.map_err(|(_, error)| error),
            Mode::Cluster => self.scan_cluster(pattern, &mut apply).await,
        }
    }

    async fn scan_cluster(
        &self,
        pattern: &str,
        apply: &mut impl FnMut(&mut redis::Pipeline, &[Vec<u8>]) -> usize,
    ) -> Result<u64, Error> {
        let before = self.shared.cluster_nodes().await?;
        let primaries = topology::primaries(&before);
        let mut removed = 0;
        let mut unreached = 0;
        let mut causes: Vec<String> = Vec::new();
        for primary in &primaries {
            let address = NodeAddress { host: primary.host.clone(), port: primary.port };
            if primary.failing {
                unreached += 1;
                causes.push(format!("{}:{} is failing", primary.host, primary.port));
                continue;
            }
            match self.scan_node(Some(&address), pattern, apply).await {
                Ok(count) => removed += count,
                Err((count, error)) => {
                    removed += count;
                    unreached += 1;
                    causes.push(format!("{}:{}: {error}", primary.host, primary.port));
                }
            }
        }
        if unreached == primaries.len() && removed == 0 {
            return Err(Error::Redis {
                op: Op::Scan,
                cause: format!("no primary could be walked: {}", causes.join("; ")),
            });
        }
        if unreached == 0 {
            let after = self.shared.cluster_nodes().await;
            let moved = match &after {
                Ok(after) => slot_owners(after) != slot_owners(&before),
                Err(_) => true,
            };
            if !moved {
                return Ok(removed);
            }
            causes.push("the cluster's slots moved during the walk".to_owned());
        }
        tracing::warn!(pattern = %pattern, removed, unreached, primaries = primaries.len(), "redis pattern deletion was partial");
        Err(Error::Partial { removed, unreached, primaries: primaries.len(), cause: causes.join("; ") })
    }

    /// The walk of one node (`None`: the one server), as
    /// [`scan_and_apply`](Self::scan_and_apply) describes; on failure, what
    /// it had removed and the error that stopped it.
    async fn scan_node(
        &self,
        node: Option<&NodeAddress>,
        pattern: &str,
        apply: &mut impl FnMut(&mut redis::Pipeline, &[Vec<u8>]) -> usize,
    ) -> Result<u64, (u64, Error)> {
        let started = Instant::now();
        let mut removed = 0_u64;
        let mut cursor = Some(0_u64);
        let mut page: Vec<Vec<u8>> = Vec::new();
        while cursor.is_some() || !page.is_empty() {
            let mut pipeline = redis::pipe();
            let applied = if page.is_empty() { 0 } else { apply(&mut pipeline, &page) };
            if let Some(at) = cursor {
                pipeline.cmd("SCAN").arg(at).arg("MATCH").arg(pattern).arg("COUNT").arg(SCAN_COUNT);
            }
            let op = if cursor.is_some() { Op::Scan } else { Op::Delete };
            let request = match node {
                Some(node) => Request::OnNode(&pipeline, node),
                None => Request::Pipeline(&pipeline),
            };
            let replies: Vec<redis::Value> = match self.shared.round_trip(op, request).await {
                Ok(replies) => replies,
                Err(error) => {
                    if removed > 0 {
                        tracing::warn!(pattern = %pattern, removed, %error, "redis pattern deletion stopped midway");
                    }
                    return Err((removed, error));
                }
            };
            let mut replies = replies.into_iter();
            for _ in 0..applied {
                removed += self.shared.parse::<u64>(op, replies.next()).map_err(|error| (removed, error))?;
            }
            if cursor.is_some() {
                let (next, keys): (u64, Vec<Vec<u8>>) =
                    self.shared.parse(op, replies.next()).map_err(|error| (removed, error))?;
                cursor = (next != 0).then_some(next);
                page = keys;
            } else {
                page.clear();
            }
        }
        tracing::debug!(pattern = %pattern, removed, elapsed_s = started.elapsed().as_secs_f64(), "redis pattern deletion done");
        Ok(removed)
    }

    /// One `PING` round trip; how long it took, getting a connection
    /// included.
    ///
    /// # Errors
    ///
    /// A Redis error as for [`get`](Self::get).
    pub async fn ping(&self) -> Result<Duration, Error> {
        self.shared.ping().await
    }

    /// Where the circuit breaker is.
    pub fn state(&self) -> BreakerState {
        self.shared.breaker.state()
    }

    /// Whether operations go to Redis: the breaker is closed. While it is
    /// open or half-open, operations fail at once with
    /// [`Error::Unavailable`].
    pub fn is_available(&self) -> bool {
        self.state() == BreakerState::Closed
    }

    /// Whether the last round trip to Redis got an answer (an error reply
    /// counts: Redis is up). `false` until one has (the prober's first
    /// `PING` usually settles it within milliseconds of start-up); kept
    /// current without traffic by the prober, every
    /// [`Config::health_interval`].
    pub fn is_up(&self) -> bool {
        self.shared.reachability.load(Ordering::Relaxed) == UP
    }

    /// The Redis URL with its password replaced by `***`, e.g.
    /// `redis://user:***@host:6379/0`.
    pub fn redacted_url(&self) -> &str {
        &self.shared.redacted_url
    }

    /// The key namespace.
    pub fn namespace(&self) -> &str {
        &self.shared.namespace
    }

    /// The op timeout: the longest any one round trip may take.
    pub fn op_timeout(&self) -> Duration {
        self.shared.op_timeout
    }
}

/// What the fleet's [`bus`](crate::bus) needs of the tier.
impl RedisTier {
    /// `PUBLISH channel payload` as one of the tier's operations (breaker,
    /// op timeout, shared connection); how many subscribers got it. Its
    /// failures are heard as those of [`Op::Set`]: it is a write, and the
    /// operation labels are a closed set the service maps.
    pub(crate) async fn publish(&self, channel: &str, payload: &[u8]) -> Result<u64, Error> {
        let mut command = redis::cmd("PUBLISH");
        command.arg(channel).arg(payload);
        self.shared.round_trip(Op::Set, Request::Command(&command)).await
    }

    pub(crate) fn observer(&self) -> &Arc<dyn Observer> {
        &self.shared.observer
    }
}

impl fmt::Debug for RedisTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTier")
            .field("url", &self.shared.redacted_url)
            .field("namespace", &self.shared.namespace)
            .field("op_timeout", &self.shared.op_timeout)
            .field("breaker", &self.state())
            .field("up", &self.is_up())
            .field("prober", &self.prober.is_some())
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// One `PING` (in cluster mode, to every primary: every slot can be
    /// served) through the breaker; how long it took.
    pub(crate) async fn ping(&self) -> Result<Duration, Error> {
        let started = Instant::now();
        self.round_trip::<()>(Op::Ping, Request::AllPrimaries(&redis::cmd("PING"))).await?;
        self.set_up(true);
        Ok(started.elapsed())
    }

    /// The breaker's trial when the prober makes it: as [`ping`](Self::ping)
    /// on one server; on a cluster, an `ECHO` to any one node, which
    /// closes the breaker if the cluster answers at all. (A `PING` of every
    /// primary would keep it open, and Redis skipped for every wallet,
    /// for as long as one primary is down; this way the wallets of the
    /// primaries that answer are served between the openings that the
    /// failures on the others' cause.) It says nothing of `is_up`.
    pub(crate) async fn trial(&self) {
        match self.mode {
            Mode::Standalone => {
                let _ = self.ping().await;
            }
            Mode::Cluster => {
                let mut command = redis::cmd("ECHO");
                command.arg("trial");
                let _ = self.round_trip::<redis::Value>(Op::Ping, Request::Command(&command)).await;
            }
        }
    }

    /// The prober's `PING`: as [`ping`](Self::ping), but an open breaker
    /// lets it through as the trial before its pause is over (see
    /// `Breaker::admit_probe`).
    pub(crate) async fn probe(&self) -> Result<(), Error> {
        let permit = self.breaker.admit_probe().inspect_err(|_| self.observer.rejected(Op::Ping))?;
        let request = Request::AllPrimaries(&redis::cmd("PING"));
        let result = self.attempt::<()>(Op::Ping, &request).await;
        self.record(permit, &result);
        if result.is_ok() {
            self.set_up(true);
        }
        result
    }

    /// In cluster mode, waits until the tier holds a cluster connection
    /// (or the pool gives up making one), with no op timeout: learning the
    /// cluster may take longer than one operation may wait, and an
    /// operation that gives up would abandon it. The prober calls it
    /// before it pings. Standalone, returns at once.
    pub(crate) async fn connect_cluster(&self) {
        if self.mode == Mode::Cluster
            && let Err(error) = self.connection.get().await
        {
            tracing::debug!(redis = %self.redacted_url, error = %self.secrets.scrub(error), "cannot reach the redis cluster");
        }
    }

    /// `CLUSTER NODES`, from whichever node answers.
    async fn cluster_nodes(&self) -> Result<String, Error> {
        let mut command = redis::cmd("CLUSTER");
        command.arg("NODES");
        self.round_trip(Op::Scan, Request::Command(&command)).await
    }

    /// Whether a round trip got an answer since the last call; clears it.
    pub(crate) fn take_answered(&self) -> bool {
        self.answered.swap(false, Ordering::Relaxed)
    }

    /// Sends `request` through the breaker, under the op timeout, and
    /// records how it went: leave, [`attempt`](Self::attempt),
    /// [`record`](Self::record).
    pub(crate) async fn round_trip<R: FromRedisValue>(&self, op: Op, request: Request<'_>) -> Result<R, Error> {
        let permit = self.breaker.admit().inspect_err(|_| self.observer.rejected(op))?;
        let result = self.attempt(op, &request).await;
        self.record(permit, &result);
        result
    }

    /// Step 2: sends `request` under the op timeout, and turns what went
    /// wrong into an [`Error`]. A connection that the timeout cut short is
    /// given up, as one that failed at the I/O level is in
    /// [`send`](Self::send): it may never answer.
    async fn attempt<R: FromRedisValue>(&self, op: Op, request: &Request<'_>) -> Result<R, Error> {
        let mut progress = Progress { step: Op::Connect, in_flight: None };
        match tokio::time::timeout(self.op_timeout, self.send(op, request, &mut progress)).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(failure)) => Err(self.classify(op, failure)),
            Err(_elapsed) => {
                if let Some(ticket) = progress.in_flight {
                    self.connection.discard(ticket);
                }
                Err(Error::Timeout(progress.step, self.op_timeout))
            }
        }
    }

    /// Takes a connection and sends `request` on it, noting in `progress`
    /// which step it is at. A connection whose socket failed is given up;
    /// one that was leased before this request and turns out to have been
    /// dropped may have died while idle, so the request gets one more try
    /// on a fresh connection. Every request here can be sent twice without
    /// harm (see `delete` and `delete_matching` for what that does to
    /// their counts).
    async fn send<R: FromRedisValue>(
        &self,
        op: Op,
        request: &Request<'_>,
        progress: &mut Progress,
    ) -> Result<R, Failure> {
        let mut may_retry = true;
        loop {
            *progress = Progress { step: Op::Connect, in_flight: None };
            let (ticket, mut connection) = self.connection.get().await.map_err(Failure::Pool)?;
            *progress = Progress { step: op, in_flight: Some(ticket) };
            let error = match connection.send(request).await {
                Ok(reply) => return Ok(reply),
                Err(error) => error,
            };
            if breaks_connection(&error) {
                self.connection.discard(ticket);
            }
            if may_retry && ticket.reused && error.is_connection_dropped() {
                may_retry = false;
                tracing::debug!(redis = %self.redacted_url, "redis connection was dropped; trying a fresh one");
                continue;
            }
            return Err(Failure::Redis(error));
        }
    }

    /// Step 3: tells the breaker, the up flag and the observer how a round
    /// trip went. An answer (an error reply included: Redis refused one
    /// command, it is not down) is a success for the breaker; an outage is
    /// a failure.
    fn record<R>(&self, permit: Permit<'_>, result: &Result<R, Error>) {
        match result {
            Ok(_) => {
                permit.succeeded();
                self.heard_answer();
            }
            Err(Error::Reply { op, kind, cause }) => {
                permit.succeeded();
                self.heard_answer();
                self.observer.error(*op);
                self.observer.error_reply(*op, *kind);
                tracing::debug!(redis = %self.redacted_url, %op, %kind, %cause, "redis refused an operation");
            }
            Err(error) => {
                let trial = permit.is_trial();
                permit.failed();
                self.set_up(false);
                let failed_at = match error {
                    Error::Timeout(step, _) => *step,
                    Error::Redis { op, .. } => *op,
                    _ => Op::Connect,
                };
                self.observer.error(failed_at);
                // Errors are counted by the observer and returned to the
                // caller; logging each one would flood the log during an
                // outage, so only the breaker's transitions are logged above
                // debug.
                tracing::debug!(redis = %self.redacted_url, %error, trial, "redis operation failed");
            }
        }
    }

    fn classify(&self, op: Op, failure: Failure) -> Error {
        // The pool's and the connection's own timeouts equal the op timeout
        // and may fire in the same timer tick as the one around the whole
        // operation, which polls the operation first: they are the same
        // event and get the same error.
        match failure {
            Failure::Pool(PoolError::Timeout(_)) => Error::Timeout(Op::Connect, self.op_timeout),
            Failure::Pool(PoolError::Backend(error)) if error.is_timeout() => {
                Error::Timeout(Op::Connect, self.op_timeout)
            }
            Failure::Pool(PoolError::Backend(error)) => {
                Error::Redis { op: Op::Connect, cause: self.secrets.scrub(error) }
            }
            Failure::Pool(other) => Error::Pool(self.secrets.scrub(other)),
            Failure::Redis(error) if error.is_timeout() => Error::Timeout(op, self.op_timeout),
            Failure::Redis(error) => match refusal(&error) {
                Some(kind) => Error::Reply { op, kind, cause: self.secrets.scrub(error) },
                None => Error::Redis { op, cause: self.secrets.scrub(error) },
            },
        }
    }

    /// One read of `key`, at most `max_value_bytes` plus one bytes of it:
    /// `GETRANGE` returns the whole value when it is within the limit, and
    /// one byte more than the limit tells a value over it.
    async fn read_raw(&self, key: &str) -> Result<Raw, Error> {
        let last = i64::try_from(self.max_value_bytes).unwrap_or(i64::MAX - 1);
        let mut command = redis::cmd("GETRANGE");
        command.arg(key).arg(0).arg(last);
        let bytes: Vec<u8> = self.round_trip(Op::Get, Request::Command(&command)).await?;
        if bytes.is_empty() {
            Ok(Raw::Absent)
        } else if bytes.len() > self.max_value_bytes {
            tracing::warn!(
                key = %key,
                limit = self.max_value_bytes,
                "ignoring a redis value larger than the limit; the next store replaces it",
            );
            self.observer.oversized_value();
            Ok(Raw::Oversized)
        } else {
            Ok(Raw::Bytes(Arc::new(bytes)))
        }
    }

    /// `stored` with a `fetched_at` beyond now plus [`FETCHED_AT_SKEW`]
    /// brought back to now.
    fn clamp<T>(&self, key: &str, mut stored: Stored<T>) -> Stored<T> {
        let now = self.clock.now();
        if stored.fetched_at > now + FETCHED_AT_SKEW {
            let ahead = stored.fetched_at.duration_since(now).unwrap_or_default();
            tracing::debug!(key = %key, ahead_s = ahead.as_secs_f64(), "a redis value was fetched in the future; reading it as fetched now");
            stored.fetched_at = now;
        }
        stored
    }

    /// Reads one reply of a pipeline. A reply of the wrong shape means the
    /// server is not speaking the protocol this code expects; it is an
    /// error of the operation, not a panic.
    fn parse<R: FromRedisValue>(&self, op: Op, reply: Option<redis::Value>) -> Result<R, Error> {
        let reply = reply.ok_or_else(|| Error::Redis { op, cause: "a pipeline reply is missing".to_owned() })?;
        redis::from_redis_value(reply).map_err(|e| {
            self.observer.error(op);
            Error::Redis { op, cause: self.secrets.scrub(redis::RedisError::from(e)) }
        })
    }

    fn heard_answer(&self) {
        // In a cluster, one node's answer says nothing of the others': only
        // the probe of every primary says the cluster is up.
        if self.mode == Mode::Standalone {
            self.set_up(true);
        }
        // Read first: under load every operation lands here, and a store
        // to a flag already set would only bounce its cache line.
        if !self.answered.load(Ordering::Relaxed) {
            self.answered.store(true, Ordering::Relaxed);
        }
    }

    fn set_up(&self, up: bool) {
        let now = if up { UP } else { DOWN };
        if self.reachability.swap(now, Ordering::Relaxed) != now {
            self.observer.up_changed(up);
        }
    }
}

/// Who serves which slots, by address, for comparing two readings.
fn slot_owners(cluster_nodes: &str) -> Vec<SlotOwner> {
    topology::primaries(cluster_nodes).into_iter().map(|node| (node.host, node.port, node.ranges)).collect()
}

/// A primary's host, port and slot ranges.
type SlotOwner = (String, u16, Vec<(u16, u16)>);

/// The kind of `error` if it is an error reply that refuses one command
/// (rather than one saying the server cannot serve anyone now, which is an
/// outage; see [`OUTAGE_CODES`]).
fn refusal(error: &redis::RedisError) -> Option<ErrorReply> {
    let replies = error.clone().into_server_errors()?;
    let (_, reply) = replies.first()?;
    let code = reply.code();
    (!OUTAGE_CODES.contains(&code)).then(|| ErrorReply::from_code(code))
}

/// Whether `error` leaves its connection unfit for more requests: the
/// socket failed or timed out (a reply may still be on its way, or never
/// come), or the client lost its place in the protocol. An error reply
/// from Redis (`WRONGTYPE`, say) is not one.
fn breaks_connection(error: &redis::RedisError) -> bool {
    error.is_io_error() || error.is_unrecoverable_error()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    fn assert_shareable<T: Send + Sync + Clone + 'static>() {}

    #[test]
    fn operations_can_run_on_any_task() {
        let tier = RedisTier::new(Config::new("redis://127.0.0.1:1")).unwrap();
        assert_send(&tier.get::<Vec<String>>("a"));
        assert_send(&tier.set("a", &vec!["b".to_owned()], SystemTime::now(), Duration::from_secs(1)));
        assert_send(&tier.delete("a"));
        assert_send(&tier.delete_matching("a*"));
        assert_send(&tier.ping());
        assert_shareable::<RedisTier>();
    }

    #[test]
    fn building_does_not_connect_and_a_bad_url_is_refused() {
        // Port 1 has nothing listening; building must not notice.
        let tier = RedisTier::new(Config::new("redis://127.0.0.1:1/0")).unwrap();
        assert_eq!(tier.state(), BreakerState::Closed);
        assert!(!tier.is_up());
        assert_eq!(tier.namespace(), "poscache");

        for url in ["http://127.0.0.1:6379", "redis://:hunter2@host:port", "not a url at all", "redis://host/x"] {
            let error = RedisTier::new(Config::new(url)).unwrap_err();
            assert!(matches!(error, Error::InvalidUrl { .. }), "{url}: {error:?}");
            assert!(!error.to_string().contains("hunter2") && !format!("{error:?}").contains("hunter2"), "{error}");
        }
    }

    #[test]
    fn debug_output_shows_the_redacted_url_only() {
        let tier = RedisTier::new(Config::new("redis://user:hunter2@127.0.0.1:1/0")).unwrap();
        let debug = format!("{tier:?}");
        assert!(debug.contains("redis://user:***@127.0.0.1:1/0"), "{debug}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert_eq!(tier.redacted_url(), "redis://user:***@127.0.0.1:1/0");
    }

    #[tokio::test]
    async fn an_unreachable_redis_fails_fast_then_opens_the_breaker() {
        let tier = RedisTier::new(Config::new("redis://127.0.0.1:1")).unwrap();
        let mut failures = 0;
        while tier.state() == BreakerState::Closed {
            let error = tier.get::<u8>("a").await.unwrap_err();
            assert!(error.is_unavailability(), "{error}");
            failures += 1;
            assert!(failures <= 3, "the breaker opens after 3 failures (the prober's first ping may be one)");
        }
        assert!(matches!(tier.get::<u8>("a").await, Err(Error::Unavailable)));
        assert!(matches!(tier.delete_matching("[").await, Err(Error::InvalidPattern(_))), "checked first");
    }
}
