//! Putting the service together from its configuration, and running it
//! until a shutdown signal.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cache_core::{Clock, Policy, SystemClock};
use cache_redis::RedisTier;
use telemetry::Metrics;

use crate::config::{Config, SourceSpec};
use crate::observers::RedisMetrics;
use crate::routes::App;
use crate::server::{Listeners, ServerOptions, serve};
use crate::service::{Service, ServiceOptions, Tier2};
use crate::source::Source;
use crate::source::http::HttpSource;
use crate::source::ledger::Ledger;

/// How often expired entries are swept out of memory. Reads drop them
/// lazily anyway; the sweep returns memory held by wallets nobody asks for.
const PURGE_EVERY: Duration = Duration::from_secs(60);
/// The warm-start state is saved every this many sweeps (each minute).
const WARM_SAVE_EVERY_TICKS: u32 = 1;

/// A setting that passed parsing but could not be put to use.
#[derive(Debug, thiserror::Error)]
#[error("invalid {setting}: {reason}")]
pub struct StartupError {
    setting: &'static str,
    reason: String,
}

/// The service's options from its configuration.
pub fn service_options(config: &Config) -> ServiceOptions {
    let policy =
        Policy::new(config.ttl()).stale_while_revalidate(config.max_stale()).stale_if_error(config.stale_if_error());
    let refresh = refresh::Config {
        concurrency: std::num::NonZeroUsize::new(usize::try_from(config.refresh_concurrency).unwrap_or(usize::MAX))
            .unwrap_or(refresh::DEFAULT_CONCURRENCY),
        timeout: config.refresh_timeout(),
        queue_timeout: config.refresh_queue_timeout(),
        max_queued: usize::try_from(config.refresh_queue_max).unwrap_or(usize::MAX),
        ..refresh::Config::default()
    };
    ServiceOptions {
        cache_enabled: config.cache_enabled,
        policy,
        max_wallets: usize::try_from(config.max_wallets).unwrap_or(usize::MAX),
        refresh,
        force_refresh_min_interval: config.force_refresh_min_interval(),
        eager_refresh: config.eager_refresh(),
        priority: Arc::new(config.priority.clone()),
        warm: config.warm(),
    }
}

/// The source the configuration names: the bundled sample, a ledger
/// directory (loaded now), or an upstream.
///
/// # Errors
///
/// A [`StartupError`] naming `POSITIONS_SOURCE` if the ledger cannot be
/// loaded or the URL is unusable, or `POSITIONS_SOURCE_CA_FILE` if it is set
/// for a source that is not `https://`.
pub fn source(config: &Config) -> Result<Arc<dyn Source>, StartupError> {
    let error = |reason: String| StartupError { setting: "POSITIONS_SOURCE", reason };
    if config.source_ca_file.is_some()
        && !matches!(&config.source, SourceSpec::Http(url) if url.starts_with("https://"))
    {
        return Err(StartupError {
            setting: "POSITIONS_SOURCE_CA_FILE",
            reason: "only an https:// source uses it".into(),
        });
    }
    Ok(match &config.source {
        SourceSpec::Sample => Arc::new(Ledger::sample()),
        SourceSpec::Ledger(dir) => {
            let started = std::time::Instant::now();
            let ledger = Ledger::load(dir).map_err(|e| error(e.to_string()))?;
            tracing::info!(dir = %dir.display(), wallets = ledger.wallet_count(), elapsed_s = started.elapsed().as_secs_f64(), "ledger loaded");
            Arc::new(ledger)
        }
        SourceSpec::Http(url) => {
            let source = match &config.source_ca_file {
                Some(ca) => HttpSource::with_ca(url, config.refresh_timeout(), ca),
                None => HttpSource::new(url, config.refresh_timeout()),
            }
            .map_err(|e| error(e.to_string()))?;
            let ca_file = config.source_ca_file.as_ref().map(|ca| ca.path().display().to_string());
            tracing::info!(base = source.base(), ca_file, "upstream source configured");
            Arc::new(source)
        }
    })
}

/// The Redis tier the configuration names, if any, reading the time from
/// the system clock, with the fleet's channel unless `FLEET_COORDINATION`
/// is off. It does not connect: start-up never waits for Redis, and a Redis
/// that is down at start-up is picked up when it comes back.
///
/// Without `REDIS_URL` the Redis gauges stay out of `/metrics` altogether:
/// there is nothing to be up or down, and a 0 would page someone.
///
/// # Errors
///
/// A [`StartupError`] naming `REDIS_URL` if the URL is unusable.
///
/// # Panics
///
/// Outside a Tokio runtime, with Redis configured and coordination on.
pub fn redis(config: &Config, metrics: &Arc<Metrics>) -> Result<Option<Tier2>, StartupError> {
    redis_with_clock(config, metrics, Arc::new(SystemClock))
}

/// As [`redis`], reading the time from `clock` (the service's), against
/// which the tier clamps a stored `fetched_at` in the future.
///
/// # Errors
///
/// As [`redis`].
///
/// # Panics
///
/// As [`redis`].
pub fn redis_with_clock(
    config: &Config,
    metrics: &Arc<Metrics>,
    clock: Arc<dyn Clock>,
) -> Result<Option<Tier2>, StartupError> {
    let Some(url) = &config.redis_url else {
        return Ok(None);
    };
    let redis_config = cache_redis::Config {
        mode: config.redis_mode,
        namespace: config.redis_namespace.clone(),
        op_timeout: config.redis_timeout(),
        pool_size: std::num::NonZeroUsize::new(usize::try_from(config.redis_pool_size).unwrap_or(16))
            .unwrap_or(std::num::NonZeroUsize::MIN),
        health_interval: config.redis_health_interval(),
        max_value_bytes: usize::try_from(config.redis_max_value_bytes).unwrap_or(usize::MAX),
        ..cache_redis::Config::new(url.clone())
    };
    let invalid = |e: cache_redis::Error| StartupError { setting: "REDIS_URL", reason: e.to_string() };
    // The gauges appear now, down and closed until the first probe answers
    // (within milliseconds of start-up, if Redis is there).
    metrics.tier2.set_up(false);
    metrics.tier2.set_breaker(telemetry::BreakerState::Closed);
    let observer = Arc::new(RedisMetrics { metrics: Arc::clone(metrics) });
    let tier = RedisTier::with_observer_and_clock(redis_config.clone(), observer, clock).map_err(invalid)?;
    tracing::info!(
        url = tier.redacted_url(),
        mode = %config.redis_mode,
        namespace = tier.namespace(),
        fleet_coordination = config.fleet_coordination,
        "redis tier configured"
    );
    if !config.fleet_coordination {
        return Ok(Some(Tier2::alone(tier)));
    }
    metrics.fleet.set_subscribed(false);
    Tier2::coordinated(tier, &redis_config, config.fleet_lease()).map(Some).map_err(invalid)
}

/// The application for `config`, with a fresh metrics registry.
///
/// # Errors
///
/// A [`StartupError`] if the source or Redis cannot be set up.
pub fn build(config: &Config) -> Result<Arc<App>, StartupError> {
    let metrics = Arc::new(Metrics::new());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let redis = redis_with_clock(config, &metrics, Arc::clone(&clock))?;
    let service = Service::new(&service_options(config), source(config)?, Arc::clone(&metrics), clock, redis);
    Ok(Arc::new(App::new(service, metrics, config.admin_token.clone()).with_access_log(config.access_log)))
}

/// Serves `app` on `listeners` (one [`TcpListener`](tokio::net::TcpListener), or [`Listeners`] with
/// an admin listener) until `shutdown` completes. Then `/readyz` answers 503
/// at once, while the listeners keep serving for `options.shutdown_delay`;
/// then they stop accepting, and open requests and loads get one deadline,
/// `options.drain` from then, by which both have finished or been dropped.
/// So it returns within the delay plus the drain of `shutdown` completing.
pub async fn run(
    app: Arc<App>,
    listeners: impl Into<Listeners>,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) {
    let warm = app.service().warm_options().clone();
    let warming = app.service().can_warm().then(|| {
        app.set_warming(true);
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            if tokio::time::timeout(warm.timeout, app.service().warm_up()).await.is_err() {
                tracing::warn!(after_ms = warm.timeout.as_millis(), "warm-up unfinished; ready anyway");
            }
            app.set_warming(false);
        })
    });
    let janitor = tokio::spawn({
        let app = Arc::clone(&app);
        async move {
            let mut every = tokio::time::interval(PURGE_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut ticks = 0_u32;
            loop {
                every.tick().await;
                let purged = app.service().purge_expired();
                if purged > 0 {
                    tracing::debug!(purged, "expired entries swept");
                }
                // Not at the first tick, which comes at once, nor while
                // warming: a replica that has just started would replace the
                // saved list with its own, still empty one before reading it.
                ticks = ticks.wrapping_add(1);
                if ticks > 1 && ticks.is_multiple_of(WARM_SAVE_EVERY_TICKS) && !app.is_warming() {
                    app.service().save_warm_state().await;
                }
            }
        }
    });
    let unready = {
        let app = Arc::clone(&app);
        async move {
            shutdown.await;
            tracing::info!("shutdown requested");
            app.set_ready(false);
        }
    };
    let deadline = serve(listeners, Arc::clone(&app), options, unready).await;
    janitor.abort();
    if let Some(warming) = warming {
        warming.abort();
    }
    // What the next start warms from; bounded by the drain deadline.
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    if tokio::time::timeout(left, app.service().save_warm_state()).await.is_err() {
        tracing::warn!("the warm-start state was not saved before the deadline");
    }
    // Loads still running were started by requests that have had their
    // answer (or were dropped) or by background refreshes: they get what is
    // left of the same deadline, not a second one.
    app.service().shutdown(deadline.saturating_duration_since(tokio::time::Instant::now())).await;
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the service");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {},
            _ = terminate.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
