//! Putting the service together from its configuration, and running it
//! until a shutdown signal.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cache_core::{Policy, SystemClock};
use cache_redis::RedisTier;
use telemetry::Metrics;

use crate::config::{Config, SourceSpec};
use crate::observers::RedisMetrics;
use crate::routes::App;
use crate::server::{Listeners, ServerOptions, serve};
use crate::service::{Service, ServiceOptions};
use crate::source::Source;
use crate::source::http::HttpSource;
use crate::source::ledger::Ledger;

/// How often expired entries are swept out of memory. Reads drop them
/// lazily anyway; the sweep returns memory held by wallets nobody asks for.
const PURGE_EVERY: Duration = Duration::from_secs(60);

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
        max_queued: usize::try_from(config.refresh_queue_max).unwrap_or(usize::MAX),
    };
    ServiceOptions {
        cache_enabled: config.cache_enabled,
        policy,
        max_wallets: usize::try_from(config.max_wallets).unwrap_or(usize::MAX),
        refresh,
    }
}

/// The source the configuration names: the bundled sample, a ledger
/// directory (loaded now), or an upstream.
///
/// # Errors
///
/// A [`StartupError`] naming `POSITIONS_SOURCE` if the ledger cannot be
/// loaded or the URL is unusable.
pub fn source(config: &Config) -> Result<Arc<dyn Source>, StartupError> {
    let error = |reason: String| StartupError { setting: "POSITIONS_SOURCE", reason };
    Ok(match &config.source {
        SourceSpec::Sample => Arc::new(Ledger::sample()),
        SourceSpec::Ledger(dir) => {
            let started = std::time::Instant::now();
            let ledger = Ledger::load(dir).map_err(|e| error(e.to_string()))?;
            tracing::info!(dir = %dir.display(), wallets = ledger.wallet_count(), elapsed = ?started.elapsed(), "ledger loaded");
            Arc::new(ledger)
        }
        SourceSpec::Http(url) => {
            Arc::new(HttpSource::new(url, config.refresh_timeout()).map_err(|e| error(e.to_string()))?)
        }
    })
}

/// The Redis tier the configuration names, if any. It does not connect:
/// start-up never waits for Redis, and a Redis that is down at start-up is
/// picked up when it comes back.
///
/// # Errors
///
/// A [`StartupError`] naming `REDIS_URL` if the URL is unusable.
pub fn redis(config: &Config, metrics: &Arc<Metrics>) -> Result<Option<RedisTier>, StartupError> {
    let Some(url) = &config.redis_url else {
        metrics.tier2.set_up(false);
        return Ok(None);
    };
    let mut redis_config = cache_redis::Config::new(url.clone());
    redis_config.namespace.clone_from(&config.redis_namespace);
    redis_config.op_timeout = config.redis_timeout();
    redis_config.pool_size = std::num::NonZeroUsize::new(usize::try_from(config.redis_pool_size).unwrap_or(16))
        .unwrap_or(std::num::NonZeroUsize::MIN);
    let observer = Arc::new(RedisMetrics { metrics: Arc::clone(metrics) });
    let tier = RedisTier::with_observer(redis_config, observer)
        .map_err(|e| StartupError { setting: "REDIS_URL", reason: e.to_string() })?;
    tracing::info!(url = tier.redacted_url(), namespace = tier.namespace(), "redis tier configured");
    Ok(Some(tier))
}

/// The application for `config`, with a fresh metrics registry.
///
/// # Errors
///
/// A [`StartupError`] if the source or Redis cannot be set up.
pub fn build(config: &Config) -> Result<Arc<App>, StartupError> {
    let metrics = Arc::new(Metrics::new());
    let redis = redis(config, &metrics)?;
    let service =
        Service::new(&service_options(config), source(config)?, Arc::clone(&metrics), Arc::new(SystemClock), redis);
    Ok(Arc::new(App::new(service, metrics, config.admin_token.clone())))
}

/// Serves `app` on `listeners` (one [`TcpListener`](tokio::net::TcpListener), or [`Listeners`] with
/// an admin listener) until `shutdown` completes; then stops accepting on
/// every listener, lets open requests and loads finish within the grace
/// period, and returns.
pub async fn run(
    app: Arc<App>,
    listeners: impl Into<Listeners>,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) {
    let janitor = tokio::spawn({
        let app = Arc::clone(&app);
        async move {
            let mut every = tokio::time::interval(PURGE_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let purged = app.service().purge_expired();
                if purged > 0 {
                    tracing::debug!(purged, "expired entries swept");
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
    serve(listeners, Arc::clone(&app), options, unready).await;
    janitor.abort();
    app.service().shutdown(options.drain).await;
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
