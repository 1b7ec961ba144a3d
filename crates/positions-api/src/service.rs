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
//! Loads go through a [`refresh::Loader`]: it runs one flight per wallet,
//! limits the loads in flight, times them out and turns panics into errors.
//! The load function fetches from the [`Source`], renders the
//! [`Snapshot`], and stores it, so a load finishes filling the cache even if
//! every request that waited for it has gone.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cache_core::{Cache, Clock, Entry, Policy};
use refresh::{FlightKind, LoadError, Loader, Outcome, Refresh};
use telemetry::{Lookup, Metrics};
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::model::Snapshot;
use crate::source::{Source, SourceError};
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
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Tier 1, within the TTL or the stale-while-revalidate window.
    Memory,
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

/// What a load produces: the rendered positions and when they were fetched.
#[derive(Debug, Clone)]
struct Fetched {
    snapshot: Arc<Snapshot>,
    fetched_at: SystemTime,
}

/// The service: cache, loader, source and metrics, joined.
#[derive(Debug, Clone)]
pub struct Service {
    shared: Arc<Shared>,
    loader: Loader<Wallet, Fetched, SourceError>,
}

#[derive(Debug)]
struct Shared {
    enabled: bool,
    cache: Cache<Wallet, Arc<Snapshot>>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    source_name: &'static str,
}

/// Counts the loader's events into the project's metrics.
#[derive(Debug)]
struct LoaderMetrics {
    metrics: Arc<Metrics>,
    source: telemetry::Source,
}

impl refresh::Observer for LoaderMetrics {
    fn refresh_requested(&self, refresh: Refresh) {
        if refresh == Refresh::Started {
            self.metrics.cache.record_refresh_started();
        }
    }

    fn load_finished(&self, _kind: FlightKind, outcome: Outcome, elapsed: Duration) {
        let outcome = match outcome {
            Outcome::Ok => telemetry::Outcome::Ok,
            Outcome::Timeout => telemetry::Outcome::Timeout,
            Outcome::Panicked => telemetry::Outcome::Panicked,
            Outcome::Error | Outcome::Abandoned => telemetry::Outcome::Error,
        };
        if outcome != telemetry::Outcome::Ok {
            self.metrics.cache.record_load_failed();
        }
        self.metrics.source.observe(self.source, outcome, elapsed);
    }

    fn overloaded(&self) {
        self.metrics.cache.record_overload_rejection();
    }
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
    /// in production, a manual one in tests).
    pub fn new(
        options: &ServiceOptions,
        source: Arc<dyn Source>,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let cache = Cache::builder(options.max_wallets)
            .policy(options.policy)
            .clock(SharedClock(Arc::clone(&clock)))
            .observer(Arc::new(telemetry::MemoryTierObserver::new(Arc::clone(&metrics))))
            .build();
        let source_label = if source.name() == "http" { telemetry::Source::Http } else { telemetry::Source::Ledger };
        let shared = Arc::new(Shared {
            enabled: options.cache_enabled,
            cache,
            clock,
            metrics: Arc::clone(&metrics),
            source_name: source.name(),
        });
        let observer = Arc::new(LoaderMetrics { metrics, source: source_label });
        let for_loads = Arc::clone(&shared);
        let loader = Loader::with_observer(options.refresh, observer, move |wallet: Wallet| {
            let shared = Arc::clone(&for_loads);
            let source = Arc::clone(&source);
            async move { shared.load(&*source, wallet).await }
        });
        Self { shared, loader }
    }

    /// The positions of `wallet`, by the semantics in this module's docs.
    ///
    /// # Errors
    ///
    /// [`ApiError::SourceFailed`], [`ApiError::SourceTimeout`],
    /// [`ApiError::Overloaded`] or [`ApiError::ShuttingDown`] when a load
    /// was needed and failed with nothing servable cached.
    pub async fn positions(&self, wallet: &Wallet, force_refresh: bool) -> Result<Answer, ApiError> {
        let shared = &self.shared;
        if shared.enabled && !force_refresh {
            if let Some(entry) = shared.cache.get(wallet) {
                if entry.is_stale() {
                    self.loader.refresh(wallet.clone());
                    shared.metrics.cache.record_lookup(Lookup::Stale);
                } else {
                    shared.metrics.cache.record_lookup(Lookup::Hit);
                }
                return Ok(Answer::cached(entry, Origin::Memory));
            }
            shared.metrics.cache.record_lookup(Lookup::Miss);
        }
        match self.loader.load(wallet.clone()).await {
            Ok(fetched) => {
                let origin = match (shared.enabled, force_refresh) {
                    (false, _) => Origin::Uncached,
                    (true, forced) => Origin::Source { forced },
                };
                let age = shared.clock.now().duration_since(fetched.fetched_at).unwrap_or_default();
                Ok(Answer { snapshot: fetched.snapshot, age, cached: false, stale: false, origin })
            }
            Err(error) => {
                if let Some(entry) = shared.enabled.then(|| shared.cache.get_fail_safe(wallet)).flatten() {
                    tracing::warn!(%wallet, %error, age = ?entry.age(), "source failed; serving stale data");
                    return Ok(Answer::cached(entry, Origin::MemoryStaleIfError));
                }
                Err(api_error(&error))
            }
        }
    }

    /// Drops `wallet` from the cache; returns whether it was there.
    pub fn invalidate(&self, wallet: &Wallet) -> bool {
        self.shared.cache.invalidate(wallet)
    }

    /// Drops every wallet matching the glob `pattern` (every wallet for
    /// `*`); returns how many went.
    ///
    /// # Errors
    ///
    /// [`ApiError::BadRequest`] for a malformed pattern.
    pub fn invalidate_matching(&self, pattern: &str) -> Result<usize, ApiError> {
        self.shared.cache.invalidate_matching(pattern).map_err(|e| ApiError::BadRequest(e.to_string()))
    }

    /// What `/health` reports.
    pub fn health(&self) -> Health {
        let shared = &self.shared;
        let counts = shared.metrics.cache.counts();
        Health {
            degraded: false,
            enabled: shared.enabled,
            backend: "memory",
            hit_rate_pct: (counts.hit_ratio() * 1000.0).round() / 10.0,
            lru_size: shared.cache.len(),
            active_refresh_tasks: self.loader.active_refreshes(),
            source: shared.source_name,
        }
    }

    /// Brings the gauges up to date, just before a scrape.
    pub fn update_gauges(&self) {
        let metrics = &self.shared.metrics;
        metrics.memory.set_entries(self.shared.cache.len());
        metrics.cache.set_active_refresh_tasks(self.loader.active_refreshes());
    }

    /// The freshness policy.
    pub fn policy(&self) -> &Policy {
        self.shared.cache.policy()
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
        let report = self.loader.shutdown(grace).await;
        tracing::info!(?report, "loads drained");
    }
}

impl Shared {
    /// The load function: fetch, render, store.
    async fn load(&self, source: &dyn Source, wallet: Wallet) -> Result<Fetched, SourceError> {
        let positions = source.fetch(&wallet).await?;
        let fetched_at = self.clock.now();
        let snapshot = Arc::new(Snapshot::render(&positions, OffsetDateTime::from(fetched_at)));
        if self.enabled {
            self.cache.insert_at(wallet, Arc::clone(&snapshot), fetched_at);
        }
        Ok(Fetched { snapshot, fetched_at })
    }
}

impl Answer {
    fn cached(entry: Entry<Arc<Snapshot>>, origin: Origin) -> Self {
        let (age, stale) = (entry.age(), entry.is_stale());
        Self { snapshot: entry.into_value(), age, cached: true, stale, origin }
    }
}

/// The one mapping from a failed load to an API error.
fn api_error(error: &LoadError<SourceError>) -> ApiError {
    match error {
        LoadError::Source(e) => match &**e {
            SourceError::Timeout(after) => ApiError::SourceTimeout(after.as_millis()),
            other => ApiError::SourceFailed(other.to_string()),
        },
        LoadError::Timeout(after) => ApiError::SourceTimeout(after.as_millis()),
        LoadError::Overloaded => ApiError::Overloaded,
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
