//! The positions service: the cache semantics, in one place.
//!
//! | age of the entry | what a request gets |
//! | --- | --- |
//! | within the TTL | the cached value, `stale: false` |
//! | within the stale-while-revalidate window | the cached value at once, `stale: true`; one background refresh for the wallet starts unless one is running |
//! | older, or absent | a load from the source, shared by every concurrent request for the wallet |
//! | a load fails and an entry within the stale-if-error window exists | that entry, `stale: true`; the error is counted |
//! | a load fails, nothing servable | an error (502, 504 or 503); nothing is cached |
//!
//! `?refresh=true` skips the cache read, joins any load in flight for the
//! wallet, stores the result and answers it with `cached: false`. With
//! caching disabled every request is a load (still shared).
//!
//! With Redis configured, a tier-1 miss reads tier 2 before loading: a
//! value there serves (and fills tier 1, keeping its `fetched_at`) by the
//! same table, and a load writes both tiers. Redis failures are misses: the
//! tier bounds every operation in time, so an outage costs latency, never an
//! error.
//!
//! Several replicas on one Redis act as one cache (see `fleet`): every
//! write keeps the newest `fetched_at`, a delete is final for the loads that
//! started before it (tombstones), replicas hear each other's deletes and
//! stores, and one replica loads a wallet while the others wait for it.
//!
//! The table itself is [`cache_swr::SwrCache`]'s, the library other
//! services use too: the service gives it tier 1 (a [`cache_core::Cache`]),
//! Redis as its [`SecondTier`] (read after a tier-1 miss; `RedisRead`), the
//! priority list as [`KeyRule`]s, the eager refresh rule, and the load
//! function. Loads go through its [`refresh::Loader`]: one flight per
//! wallet, a limit on the loads in flight, timeouts, panics turned into
//! errors. The load function fetches from the [`Source`], renders the
//! [`Snapshot`], and stores it in both tiers by the fleet's rules
//! ([`Loaded::stored_by_loader`]), so a load finishes filling the cache even
//! if every request that waited for it has gone.

mod fleet;
mod warm;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use cache_core::glob::Pattern;
use cache_core::{Cache, Clock, Policy};
use cache_redis::bus::Kind;
use cache_redis::{FETCHED_AT_SKEW, RedisTier, WriteOutcome};
pub use cache_swr::EagerRefresh;
use cache_swr::{BoxFuture, Got, Invalidator, KeyRule, LoadError, Loaded, Pending, SecondTier, SwrCache, TierRead};
use telemetry::Metrics;
use time::OffsetDateTime;

pub use self::fleet::{Fleet, Tier2};
pub use self::warm::{WarmOptions, WarmReport};
use crate::error::ApiError;
use crate::model::{Snapshot, StoredSnapshot};
use crate::priority::PriorityList;
use crate::request_context::{RequestContext, in_scope};
use crate::source::{Source, SourceError};
use crate::tombstones::Tombstones;
use crate::wallet::Wallet;

/// How the service is set up; built from [`Config`](crate::config::Config)
/// by [`crate::startup::service_options`], or by hand in tests.
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    /// Whether to cache at all.
    pub cache_enabled: bool,
    /// The freshness windows.
    pub policy: Policy,
    /// Wallets held in memory.
    pub max_wallets: usize,
    /// The loader's limits.
    pub refresh: refresh::Config,
    /// A forced refresh (`?refresh=true`) of a wallet fetched more recently
    /// than this answers the entry already held instead of loading again
    /// (`FORCE_REFRESH_MIN_INTERVAL_MS`); zero lets every forced refresh
    /// load.
    pub force_refresh_min_interval: Duration,
    /// Whether and when wallets in demand are refreshed before they go
    /// stale (`POSITION_CACHE_EAGER_REFRESH`); `None` waits for staleness.
    pub eager_refresh: Option<EagerRefresh>,
    /// High-value wallets (`POSITION_PRIORITY_FILE`): their own shorter
    /// TTL, and the front of their class in the load queue.
    pub priority: Arc<PriorityList>,
    /// What a restart warms from, and how long it may take.
    pub warm: WarmOptions,
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Tier 1, within the TTL or the stale-while-revalidate window.
    Memory,
    /// Tier 2, within the TTL or the stale-while-revalidate window.
    Redis,
    /// Tier 1, past every normal window, because the source failed.
    MemoryStaleIfError,
    /// A load from the source that this request waited for.
    Source {
        /// Whether the request asked to bypass the cache.
        forced: bool,
    },
    /// A load from the source with caching disabled.
    Uncached,
}

/// One answer for one wallet.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The positions, rendered.
    pub snapshot: Arc<Snapshot>,
    /// How old the data is.
    pub age: Duration,
    /// Whether the data came from the cache.
    pub cached: bool,
    /// Whether the data is past its TTL.
    pub stale: bool,
    /// Where it came from.
    pub origin: Origin,
}

/// Why [`Service::from_memory`] did not answer, which the rest of the
/// answer ([`Service::positions_beyond_memory`]) needs to know so that it
/// looks tier 1 up once, not twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Looked {
    /// The composed cache's read was begun: finish it.
    Pending(Pending),
    /// Tier 1 was not looked up: caching is off, or a forced refresh.
    NotLooked,
}

/// What a load produces: the rendered positions and when they were fetched.
#[derive(Debug, Clone)]
struct Fetched {
    snapshot: Arc<Snapshot>,
    fetched_at: SystemTime,
}

/// What the load function loads: a wallet, and for a forced refresh the
/// time its request arrived, before which a result another replica stored
/// is too old to answer it.
#[derive(Debug, Clone)]
struct Job {
    wallet: Wallet,
    not_before: Option<SystemTime>,
}

/// What a load carries from the request that started it: the request's
/// context (the source call runs in its scope, so the upstream sees its id)
/// and, for a forced refresh, the time it arrived. Flights are keyed by the
/// wallet alone: a forced refresh joins a load already running for its
/// wallet, whatever started it.
#[derive(Debug, Clone, Default)]
struct LoadContext {
    request: Option<RequestContext>,
    not_before: Option<SystemTime>,
}

impl LoadContext {
    /// The context of the request being handled on this task.
    fn current() -> Self {
        Self { request: RequestContext::current(), not_before: None }
    }
}

/// The service: cache, loader, source and metrics, joined.
#[derive(Debug, Clone)]
pub struct Service {
    shared: Arc<Shared>,
    /// The semantics table over tier 1, Redis and the loads.
    swr: SwrCache<Wallet, Arc<Snapshot>, SourceError, LoadContext>,
}

#[derive(Debug)]
struct Shared {
    enabled: bool,
    force_refresh_min_interval: Duration,
    warm: WarmOptions,
    /// Tier 1, shared with `Service::swr`.
    cache: Arc<Cache<Wallet, Arc<Snapshot>>>,
    /// Deletes from tier 1 so that a Redis read in flight does not put the
    /// value back (`SwrCache::invalidator`); set once the composed cache is
    /// built, which holds this `Shared`.
    invalidator: OnceLock<Invalidator<Wallet, Arc<Snapshot>>>,
    redis: Option<RedisTier>,
    /// The fleet's channel and leases, if replicas coordinate.
    fleet: Option<Fleet>,
    /// Deletions that loads started before them must not undo.
    tombstones: Tombstones,
    /// How long a tombstone lives, here and in Redis: at least the longest
    /// a load can run, plus the clock skew allowed between replicas.
    tombstone_ttl: Duration,
    /// One source call's limit (`REFRESH_TIMEOUT_MS`). With coordination
    /// the loader's own limit is longer, to cover a wait for another
    /// replica's lease on top of a call.
    source_timeout: Duration,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    source_name: &'static str,
}

/// A `Clock` shared by the cache and the service.
#[derive(Debug, Clone)]
struct SharedClock(Arc<dyn Clock>);

impl Clock for SharedClock {
    fn now(&self) -> SystemTime {
        self.0.now()
    }

    fn unix_nanos(&self) -> u64 {
        self.0.unix_nanos()
    }
}

impl Service {
    /// A service over `source`, reading time from `clock` (the system clock
    /// in production, a manual one in tests), with Redis as tier 2 if given
    /// (and, through it, the fleet: see [`Tier2`]).
    ///
    /// Must be called within a Tokio runtime when `redis` coordinates a
    /// fleet: it spawns the task that hears the other replicas.
    pub fn new(
        options: &ServiceOptions,
        source: Arc<dyn Source>,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
        redis: Option<Tier2>,
    ) -> Self {
        let cache = Cache::builder(options.max_wallets)
            .policy(options.policy)
            .clock(SharedClock(Arc::clone(&clock)))
            // Demand then reads as "reads within about the last TTL".
            .demand_half_life(options.policy.ttl().min(Duration::from_secs(86_400)))
            .observer(Arc::new(telemetry::MemoryTierObserver::new(Arc::clone(&metrics))))
            .build();
        let cache = Arc::new(cache);
        let source_label = if source.name() == "http" { telemetry::Source::Http } else { telemetry::Source::Ledger };
        metrics.source.declare(source_label);
        let (redis, fleet, events) = match redis {
            Some(tier2) => {
                let (fleet, events) = tier2.fleet.map_or((None, None), |(fleet, events)| (Some(fleet), Some(events)));
                (Some(tier2.tier), fleet, events)
            }
            None => (None, None, None),
        };
        // The loader's limit covers what a load does besides its source
        // call (which has `options.refresh.timeout` of its own): its Redis
        // write, and with coordination a wait for other replicas first.
        let mut refresh = options.refresh;
        match (&fleet, &redis) {
            (Some(fleet), Some(redis)) => refresh.timeout = fleet.load_limit(refresh.timeout, redis.op_timeout()),
            (None, Some(redis)) => refresh.timeout += redis.op_timeout() * 2,
            _ => {}
        }
        let shared = Arc::new(Shared {
            enabled: options.cache_enabled,
            force_refresh_min_interval: options.force_refresh_min_interval,
            warm: options.warm.clone(),
            cache: Arc::clone(&cache),
            invalidator: OnceLock::new(),
            redis,
            fleet,
            tombstones: Tombstones::new(refresh.timeout + FETCHED_AT_SKEW),
            tombstone_ttl: refresh.timeout + FETCHED_AT_SKEW,
            source_timeout: options.refresh.timeout,
            clock,
            metrics: Arc::clone(&metrics),
            source_name: source.name(),
        });
        if let Some(events) = events {
            tokio::spawn(fleet::hear(Arc::downgrade(&shared), events));
        }
        let loads = Arc::new(crate::observers::LoaderMetrics { metrics: Arc::clone(&metrics), source: source_label });
        let mut swr = SwrCache::builder(cache)
            .loader_config(refresh)
            .loader_observer(loads)
            .observer(Arc::new(crate::observers::ReadMetrics::new(metrics)));
        if let Some(eager) = options.eager_refresh {
            swr = swr.eager_refresh(eager);
        }
        if !options.priority.is_empty() {
            let priority = Arc::clone(&options.priority);
            swr = swr.key_rules(move |wallet: &Wallet| {
                priority.rule(wallet.as_str()).map_or_else(KeyRule::default, |r| KeyRule { ttl: r.ttl, high: r.high })
            });
        }
        if shared.redis.is_some() {
            swr = swr.second_tier(Arc::new(RedisRead(Arc::clone(&shared))));
        }
        let for_loads = Arc::clone(&shared);
        let swr = swr.build_with(LoadContext::current, move |wallet, context: LoadContext| {
            let shared = Arc::clone(&for_loads);
            let source = Arc::clone(&source);
            let job = Job { wallet, not_before: context.not_before };
            in_scope(context.request, async move {
                let fetched = shared.load(&*source, job).await?;
                Ok(Loaded::stored_by_loader(fetched.snapshot, fetched.fetched_at))
            })
        });
        // Set once, here: `set` cannot fail.
        let _ = shared.invalidator.set(swr.invalidator());
        Self { shared, swr }
    }

    /// The positions of `wallet`, by the semantics in this module's docs.
    ///
    /// # Errors
    ///
    /// [`ApiError::SourceFailed`], [`ApiError::SourceTimeout`],
    /// [`ApiError::Overloaded`] or [`ApiError::ShuttingDown`] when a load
    /// was needed and failed with nothing servable cached.
    pub async fn positions(&self, wallet: &Wallet, force_refresh: bool) -> Result<Answer, ApiError> {
        match self.from_memory(wallet, force_refresh) {
            Ok(answer) => Ok(answer),
            Err(looked) => self.positions_beyond_memory(wallet, force_refresh, looked).await,
        }
    }

    /// The answer tier 1 gives on its own, without waiting for anything:
    /// what [`positions`](Self::positions) answers first when it can
    /// ([`SwrCache::try_get`]). A forced refresh of a wallet fetched less
    /// than `force_refresh_min_interval` ago answers the entry held, as a
    /// hit, so that anonymous clients cannot drive the source at will.
    ///
    /// # Errors
    ///
    /// [`Looked`] when the answer has to be awaited: pass it on to
    /// [`positions_beyond_memory`](Self::positions_beyond_memory).
    pub fn from_memory(&self, wallet: &Wallet, force_refresh: bool) -> Result<Answer, Looked> {
        let shared = &self.shared;
        if !shared.enabled {
            return Err(Looked::NotLooked);
        }
        if force_refresh {
            let held = self.swr.get_if_younger_than(wallet, shared.force_refresh_min_interval);
            return held.map(|got| answer(got, true, true)).ok_or(Looked::NotLooked);
        }
        self.swr.try_get(wallet).map(|got| answer(got, true, false)).map_err(Looked::Pending)
    }

    /// The rest of [`positions`](Self::positions) after
    /// [`from_memory`](Self::from_memory) could not answer: tier 2, then a
    /// load; or, for a forced refresh or with caching off, a load.
    ///
    /// # Errors
    ///
    /// As [`positions`](Self::positions).
    pub async fn positions_beyond_memory(
        &self,
        wallet: &Wallet,
        force_refresh: bool,
        looked: Looked,
    ) -> Result<Answer, ApiError> {
        let shared = &self.shared;
        let got = match looked {
            Looked::Pending(pending) if shared.enabled && !force_refresh => self.swr.complete(wallet, pending).await,
            _ if shared.enabled && force_refresh => {
                let context = LoadContext { not_before: Some(shared.clock.now()), ..LoadContext::current() };
                self.swr.reload_unless_younger_than(wallet, shared.force_refresh_min_interval, context).await
            }
            _ => self.swr.reload_in(wallet, LoadContext::current()).await,
        };
        got.map(|got| answer(got, shared.enabled, force_refresh)).map_err(|error| api_error(&error))
    }

    /// Drops `wallet` from every tier, and from every replica's memory if
    /// replicas coordinate; returns whether any tier here held it. A load
    /// of it that started before now stores nothing, on any replica
    /// (tombstones).
    ///
    /// # Errors
    ///
    /// [`ApiError::RedisUnavailable`] if Redis could not be reached (the
    /// wallet is gone from memory but may still be in Redis), or if the
    /// other replicas could not be told (it is gone from Redis, and from
    /// their memory when their entries expire); deleting again is safe.
    pub async fn invalidate(&self, wallet: &Wallet) -> Result<bool, ApiError> {
        let shared = &self.shared;
        let at = shared.clock.now();
        let in_memory = shared.tombstones.delete(wallet, at, || shared.drop_from_memory(wallet));
        let in_redis = match &shared.redis {
            Some(redis) => redis
                .delete_with_tombstone(wallet.as_str(), at, shared.tombstone_ttl)
                .await
                .map_err(redis_unavailable)?,
            None => false,
        };
        // A Redis read that began before the Redis deletion may have put
        // the value back meanwhile: gone again, and such reads store
        // nothing.
        if in_redis {
            shared.drop_from_memory(wallet);
        }
        shared.tell_fleet(Kind::Deleted, wallet.as_str(), at).await.map_err(redis_unavailable)?;
        Ok(in_memory || in_redis)
    }

    /// Drops every wallet matching the glob `pattern` (every wallet for
    /// `*`) from every tier, and from every replica's memory if replicas
    /// coordinate; returns how many entries went here (a wallet held in
    /// both tiers counts twice). Loads of matching wallets that started
    /// before now store nothing (tombstones; in Redis, for the wallets it
    /// holds or is loading).
    ///
    /// # Errors
    ///
    /// [`ApiError::BadRequest`] for a malformed pattern (nothing is
    /// dropped); [`ApiError::RedisUnavailable`] as for
    /// [`invalidate`](Self::invalidate); [`ApiError::PartialDeletion`] when
    /// Redis is a cluster and some of its primaries could not be walked to
    /// the end (what was found elsewhere is gone, and the other replicas
    /// are told): deleting again finishes the job.
    pub async fn invalidate_matching(&self, pattern: &str) -> Result<u64, ApiError> {
        let shared = &self.shared;
        let parsed = Pattern::new(pattern).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let at = shared.clock.now();
        let in_memory = shared
            .tombstones
            .delete_matching(parsed, at, || shared.drop_matching_from_memory(pattern))
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let mut partial = None;
        let in_redis = match &shared.redis {
            Some(redis) => match redis.delete_matching_with_tombstones(pattern, at, shared.tombstone_ttl).await {
                Ok(removed) => removed,
                // Some primaries were walked: the replicas must still hear
                // of it, and the caller that it was partial.
                Err(cache_redis::Error::Partial { removed, unreached, primaries, cause }) => {
                    partial =
                        Some(format!("{unreached} of {primaries} Redis primaries not walked to the end: {cause}"));
                    removed
                }
                Err(error) => return Err(redis_unavailable(error)),
            },
            None => 0,
        };
        if in_redis > 0 {
            // As for one wallet: what Redis reads put back meanwhile.
            let _ = shared.drop_matching_from_memory(pattern);
        }
        shared.tell_fleet(Kind::PatternDeleted, pattern, at).await.map_err(redis_unavailable)?;
        let removed = in_memory as u64 + in_redis;
        match partial {
            Some(detail) => Err(ApiError::PartialDeletion { pattern: pattern.to_owned(), removed, detail }),
            None => Ok(removed),
        }
    }

    /// What `/health` reports.
    pub fn health(&self) -> Health {
        let shared = &self.shared;
        let counts = shared.metrics.cache.counts();
        Health {
            degraded: shared.redis.as_ref().is_some_and(|r| !r.is_up() || !r.is_available()),
            enabled: shared.enabled,
            backend: if shared.redis.is_some() { "redis" } else { "memory" },
            hit_rate_pct: (counts.hit_ratio() * 1000.0).round() / 10.0,
            lru_size: shared.cache.len(),
            active_refresh_tasks: self.swr.active_refreshes(),
            source: shared.source_name,
        }
    }

    /// Brings the gauges up to date, just before a scrape.
    pub fn update_gauges(&self) {
        let metrics = &self.shared.metrics;
        metrics.memory.set_entries(self.shared.cache.len());
        metrics.cache.set_active_refresh_tasks(self.swr.active_refreshes());
    }

    /// The freshness policy.
    pub fn policy(&self) -> &Policy {
        self.shared.cache.policy()
    }

    /// The warm-start settings.
    pub fn warm_options(&self) -> &WarmOptions {
        &self.shared.warm
    }

    /// Whether caching is on.
    pub fn cache_enabled(&self) -> bool {
        self.shared.enabled
    }

    /// Drops entries past every window; returns how many went.
    pub fn purge_expired(&self) -> usize {
        self.shared.cache.purge_expired()
    }

    /// Stops starting loads and lets those in flight finish, for up to
    /// `grace`.
    pub async fn shutdown(&self, grace: Duration) {
        let report = self.swr.shutdown(grace).await;
        tracing::info!(finished = report.finished, abandoned = report.abandoned, "loads drained");
    }
}

impl Shared {
    /// Whether a tier-1 entry can answer on its own: always, unless
    /// replicas coordinate and this one's channel is down (or not up yet),
    /// when a message that would have removed the entry may be lost.
    fn trusts_memory(&self) -> bool {
        self.fleet.as_ref().is_none_or(Fleet::is_listening)
    }

    /// Drops `wallet` from tier 1 so that no Redis read or load that began
    /// before puts it back through the composed cache; returns whether it
    /// was there. (Loads store by the tombstones' rule, checked by their
    /// callers.)
    fn drop_from_memory(&self, wallet: &Wallet) -> bool {
        match self.invalidator.get() {
            Some(invalidator) => invalidator.invalidate(wallet),
            None => self.cache.invalidate(wallet),
        }
    }

    /// [`drop_from_memory`](Self::drop_from_memory) for every wallet
    /// matching the glob `pattern`.
    fn drop_matching_from_memory(&self, pattern: &str) -> Result<usize, cache_core::glob::PatternError> {
        match self.invalidator.get() {
            Some(invalidator) => invalidator.invalidate_matching(pattern),
            None => self.cache.invalidate_matching(pattern),
        }
    }

    /// The load function: with coordination, tier 2 first and then the
    /// wallet's lease (see [`fleet`]); otherwise fetch, render, store in
    /// both tiers.
    async fn load(&self, source: &dyn Source, job: Job) -> Result<Fetched, SourceError> {
        let started_at = self.clock.now();
        if !self.enabled {
            return self.fetch(source, &job.wallet).await;
        }
        match (&self.fleet, &self.redis) {
            (Some(fleet), Some(redis)) => fleet.load(self, redis, source, &job, started_at).await,
            _ => self.fetch_and_store(source, &job.wallet, started_at).await,
        }
    }

    /// Fetches `wallet` from the source, within its own limit, and renders
    /// it.
    async fn fetch(&self, source: &dyn Source, wallet: &Wallet) -> Result<Fetched, SourceError> {
        let positions = match tokio::time::timeout(self.source_timeout, source.fetch(wallet)).await {
            Ok(fetched) => fetched?,
            Err(_) => return Err(SourceError::Timeout(self.source_timeout)),
        };
        let fetched_at = self.clock.now();
        let snapshot = Arc::new(Snapshot::render(wallet, &positions, OffsetDateTime::from(fetched_at)));
        Ok(Fetched { snapshot, fetched_at })
    }

    /// Fetches `wallet` from the source and stores it in both tiers, by the
    /// fleet's rules: not at all if it was deleted since `started_at`
    /// (tombstones), and only over older entries. The tier-2 write is
    /// awaited (it is bounded by the Redis op timeout, and fails at once
    /// while the breaker is open), so that any replica that reads Redis
    /// after this answer finds it; then the others are told.
    async fn fetch_and_store(
        &self,
        source: &dyn Source,
        wallet: &Wallet,
        started_at: SystemTime,
    ) -> Result<Fetched, SourceError> {
        let fetched = self.fetch(source, wallet).await?;
        let fetched_at = fetched.fetched_at;
        let kept = self.tombstones.store_unless_deleted(wallet, started_at, || {
            self.cache.insert_if_newer(wallet.clone(), Arc::clone(&fetched.snapshot), fetched_at);
        });
        if !kept {
            self.metrics.fleet.record_memory_store_stopped();
            tracing::debug!(%wallet, "deleted while it loaded; the result is answered, not stored");
            return Ok(fetched);
        }
        let Some(redis) = &self.redis else { return Ok(fetched) };
        // Kept as long as any window can use it.
        let expire_after = self.cache.policy().retention();
        let stored = fetched.snapshot.to_stored();
        match redis.set_if_newer(wallet.as_str(), &stored, fetched_at, started_at, expire_after).await {
            Ok(WriteOutcome::Stored) => {
                if let Err(e) = self.tell_fleet(Kind::Stored, wallet.as_str(), fetched_at).await {
                    tracing::debug!(%wallet, error = %e, "could not tell the fleet of a store; their copies expire");
                }
            }
            // Redis holds a newer entry, or the wallet was deleted on
            // another replica since the load started: this copy must not
            // answer from memory either.
            Ok(WriteOutcome::Older | WriteOutcome::Deleted) => self.forget(wallet, fetched_at),
            Err(e) => tracing::debug!(%wallet, error = %e, "redis write failed; the value is in memory only"),
        }
        Ok(fetched)
    }

    /// The snapshot tier 2 kept, or `None` (counted as a corrupt value,
    /// read as a miss) if it does not hold together.
    fn unstore(&self, stored: StoredSnapshot) -> Option<Snapshot> {
        let snapshot = Snapshot::from_stored(stored);
        if snapshot.is_none() {
            self.metrics.tier2.record_corrupt_value();
        }
        snapshot
    }

    /// Drops `wallet` from memory if what is there was fetched at
    /// `fetched_at`: this replica's own copy, superseded.
    fn forget(&self, wallet: &Wallet, fetched_at: SystemTime) {
        if self.cache.peek(wallet).is_some_and(|entry| entry.fetched_at() == fetched_at) {
            self.cache.invalidate(wallet);
        }
    }

    /// Publishes a message on the fleet's channel, if replicas coordinate.
    async fn tell_fleet(&self, kind: Kind, subject: &str, at: SystemTime) -> Result<(), cache_redis::Error> {
        match &self.fleet {
            Some(fleet) => fleet.publish(kind, subject, at).await,
            None => Ok(()),
        }
    }
}

/// The answer for what the composed cache got, for a request that forced
/// a refresh or not, with caching on or off.
fn answer(got: Got<Arc<Snapshot>>, enabled: bool, forced: bool) -> Answer {
    let cached = got.cached();
    let origin = match got.origin {
        cache_swr::Origin::Memory => Origin::Memory,
        cache_swr::Origin::SecondTier => Origin::Redis,
        cache_swr::Origin::FailSafe => Origin::MemoryStaleIfError,
        cache_swr::Origin::Loaded if enabled => Origin::Source { forced },
        cache_swr::Origin::Loaded => Origin::Uncached,
    };
    Answer { snapshot: got.value, age: got.age, cached, stale: got.stale, origin }
}

/// Redis as the composed cache's second tier: read after a tier-1 miss, or
/// first while the fleet's channel is down (tier 1 may then hold what
/// another replica deleted). A value that does not decode is counted and
/// read as absent; any Redis failure is "unavailable", which the table
/// treats as a miss (or answers from tier 1 if it held the wallet).
#[derive(Debug)]
struct RedisRead(Arc<Shared>);

impl SecondTier<Wallet, Arc<Snapshot>> for RedisRead {
    fn read<'a>(&'a self, wallet: &'a Wallet) -> BoxFuture<'a, TierRead<Arc<Snapshot>>> {
        Box::pin(async move {
            let shared = &*self.0;
            let Some(redis) = &shared.redis else { return TierRead::Unavailable };
            match redis.get::<StoredSnapshot>(wallet.as_str()).await {
                Ok(Some(stored)) => match shared.unstore(stored.value) {
                    Some(snapshot) => TierRead::Found(Arc::new(snapshot), stored.fetched_at),
                    None => TierRead::Absent,
                },
                Ok(None) => TierRead::Absent,
                Err(e) => {
                    tracing::debug!(%wallet, error = %e, "redis read failed; treating it as a miss");
                    TierRead::Unavailable
                }
            }
        })
    }

    fn trusts_memory(&self) -> bool {
        self.0.trusts_memory()
    }
}

#[expect(clippy::needless_pass_by_value, reason = "shaped for `map_err`")]
fn redis_unavailable(error: cache_redis::Error) -> ApiError {
    ApiError::RedisUnavailable(error.to_string())
}

/// The one mapping from a failed load to an API error.
fn api_error(error: &LoadError<SourceError>) -> ApiError {
    match error {
        LoadError::Source(e) => match &**e {
            SourceError::Timeout(after) => ApiError::SourceTimeout(after.as_millis()),
            other => ApiError::SourceFailed(other.to_string()),
        },
        LoadError::Timeout(after) => ApiError::SourceTimeout(after.as_millis()),
        // Waiting too long for a turn is the same overload as finding the
        // line full, told later: the client should come back shortly.
        LoadError::Overloaded | LoadError::QueueTimeout(_) => ApiError::Overloaded,
        LoadError::Panicked(_) => ApiError::SourceFailed("the source failed unexpectedly".into()),
        LoadError::ShuttingDown => ApiError::ShuttingDown,
    }
}

/// What `/health` reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// Whether a configured tier is unreachable.
    pub degraded: bool,
    /// Whether caching is on.
    pub enabled: bool,
    /// `memory` or `redis`.
    pub backend: &'static str,
    /// Requests answered from the cache, in percent of cache lookups.
    pub hit_rate_pct: f64,
    /// Wallets in tier 1.
    pub lru_size: usize,
    /// Background refreshes in flight.
    pub active_refresh_tasks: usize,
    /// The source's name.
    pub source: &'static str,
}
