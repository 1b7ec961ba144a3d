//! The service running in-process on an ephemeral port, with a manual
//! clock, stopped by the test.

use std::sync::Arc;
use std::time::Duration;

use cache_core::{ManualClock, Policy};
use positions_api::config::Config;
use positions_api::source::Source;
use positions_api::{App, Listeners, ServerOptions, Service, ServiceOptions};
use telemetry::Metrics;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::client::Client;

/// The TTL, stale-while-revalidate and stale-if-error windows tests use.
pub const TTL: Duration = Duration::from_secs(60);
/// See [`TTL`].
pub const MAX_STALE: Duration = Duration::from_secs(120);
/// See [`TTL`].
pub const STALE_IF_ERROR: Duration = Duration::from_secs(600);

/// A running service.
#[derive(Debug)]
pub struct TestService {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// `http://127.0.0.1:PORT` of the admin listener, if it has one
    /// ([`Builder::admin_listener`]).
    pub admin_base: Option<String>,
    /// The clock the service reads; advance it to age entries.
    pub clock: ManualClock,
    /// The service's metrics.
    pub metrics: Arc<Metrics>,
    /// The application, for looking inside.
    pub app: Arc<App>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// The options most tests want: caching on, the test windows, room for
/// 1,000 wallets, 8 loads at once, a 2-second load timeout, and every
/// forced refresh a load (no minimum interval), and no eager refresh
/// (the tests of it turn it on).
pub fn default_options() -> ServiceOptions {
    ServiceOptions {
        cache_enabled: true,
        policy: Policy::new(TTL).stale_while_revalidate(MAX_STALE).stale_if_error(STALE_IF_ERROR),
        max_wallets: 1_000,
        refresh: refresh::Config {
            concurrency: std::num::NonZeroUsize::MIN.saturating_add(7),
            timeout: Duration::from_secs(2),
            max_queued: 1_024,
            ..refresh::Config::default()
        },
        force_refresh_min_interval: Duration::ZERO,
        eager_refresh: None,
        priority: Arc::default(),
        warm: positions_api::WarmOptions::default(),
    }
}

/// How to start a [`TestService`]; see [`TestService::builder`].
#[derive(Debug)]
pub struct Builder {
    options: ServiceOptions,
    source: Arc<dyn Source>,
    admin_token: Option<String>,
    redis_url: Option<String>,
    redis_timeout_ms: u64,
    redis_args: Vec<String>,
    clock: Option<ManualClock>,
    server: Option<ServerOptions>,
    admin_listener: bool,
}

impl Builder {
    /// Sets the service options (default: [`default_options`]).
    #[must_use]
    pub fn options(mut self, options: ServiceOptions) -> Self {
        self.options = options;
        self
    }

    /// Enables DELETE with this token.
    #[must_use]
    pub fn admin_token(mut self, token: &str) -> Self {
        self.admin_token = Some(token.to_owned());
        self
    }

    /// Uses the Redis at `url` as tier 2, with a 100 ms operation timeout
    /// unless [`redis_timeout_ms`](Self::redis_timeout_ms) says otherwise.
    #[must_use]
    pub fn redis(mut self, url: &str) -> Self {
        self.redis_url = Some(url.to_owned());
        self
    }

    /// Adds settings for the Redis tier and the fleet, as the binary's
    /// flags (`--fleet-coordination false`, `--redis-namespace x`, ...).
    #[must_use]
    pub fn redis_args(mut self, args: &[&str]) -> Self {
        self.redis_args.extend(args.iter().map(|&arg| arg.to_owned()));
        self
    }

    /// Sets the Redis operation timeout.
    #[must_use]
    pub fn redis_timeout_ms(mut self, ms: u64) -> Self {
        self.redis_timeout_ms = ms;
        self
    }

    /// Shares `clock` with this service (so that two services agree on
    /// ages).
    #[must_use]
    pub fn clock(mut self, clock: &ManualClock) -> Self {
        self.clock = Some(clock.clone());
        self
    }

    /// Sets the server options (default: 5-second header and drain
    /// timeouts).
    #[must_use]
    pub fn server_options(mut self, options: ServerOptions) -> Self {
        self.server = Some(options);
        self
    }

    /// Serves the admin routes on a second ephemeral port of their own
    /// ([`TestService::admin_base`]).
    #[must_use]
    pub fn admin_listener(mut self) -> Self {
        self.admin_listener = true;
        self
    }

    /// Starts the service on an ephemeral port.
    ///
    /// # Panics
    ///
    /// If it cannot bind a port on 127.0.0.1 or the Redis settings are
    /// invalid.
    pub async fn start(self) -> TestService {
        let clock = self.clock.unwrap_or_else(ManualClock::starting_now);
        let metrics = Arc::new(Metrics::new());
        let redis = self.redis_url.map(|url| {
            // The production wiring, so that the tier's metrics and logs
            // are what an operator would see.
            let timeout = self.redis_timeout_ms.to_string();
            let refresh_timeout = self.options.refresh.timeout.as_millis().to_string();
            let args = ["positions-api", "--redis-url", &url, "--redis-timeout-ms", &timeout];
            let args = args.into_iter().map(str::to_owned).chain(["--refresh-timeout-ms".into(), refresh_timeout]);
            let config = Config::from_args(args.chain(self.redis_args.iter().cloned())).expect("valid Redis settings");
            positions_api::startup::redis_with_clock(&config, &metrics, Arc::new(clock.clone()))
                .expect("a usable Redis URL")
                .expect("Redis configured")
        });
        let service = Service::new(&self.options, self.source, Arc::clone(&metrics), Arc::new(clock.clone()), redis);
        let app = Arc::new(App::new(service, Arc::clone(&metrics), self.admin_token));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind an ephemeral port");
        let base = format!("http://{}", listener.local_addr().expect("bound address"));
        let (stop, stopped) = oneshot::channel::<()>();
        let options = self.server.unwrap_or(ServerOptions {
            header_timeout: Duration::from_secs(5),
            drain: Duration::from_secs(5),
            ..ServerOptions::default()
        });
        let mut listeners = Listeners::new(listener);
        let mut admin_base = None;
        if self.admin_listener {
            let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind an ephemeral port");
            admin_base = Some(format!("http://{}", admin.local_addr().expect("bound address")));
            listeners = listeners.with_admin(admin);
        }
        let task = tokio::spawn(positions_api::startup::run(Arc::clone(&app), listeners, options, async move {
            let _ = stopped.await;
        }));
        TestService { base, admin_base, clock, metrics, app, stop: Some(stop), task: Some(task) }
    }
}

impl TestService {
    /// A builder for a service over `source`.
    pub fn builder(source: Arc<dyn Source>) -> Builder {
        Builder {
            options: default_options(),
            source,
            admin_token: None,
            redis_url: None,
            redis_timeout_ms: 100,
            redis_args: Vec::new(),
            clock: None,
            server: None,
            admin_listener: false,
        }
    }

    /// Starts the service over `source` with `options`.
    pub async fn start(options: ServiceOptions, source: Arc<dyn Source>, admin_token: Option<&str>) -> Self {
        let builder = Self::builder(source).options(options);
        match admin_token {
            Some(token) => builder.admin_token(token),
            None => builder,
        }
        .start()
        .await
    }

    /// Starts the service with [`default_options`].
    pub async fn with_source(source: Arc<dyn Source>) -> Self {
        Self::builder(source).start().await
    }

    /// A client for this service.
    pub fn client(&self) -> Client {
        Client::new(self.base.clone())
    }

    /// Shuts the service down and waits until it has stopped.
    ///
    /// # Panics
    ///
    /// If the server task panicked.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task ended cleanly");
        }
    }
}

impl Drop for TestService {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
