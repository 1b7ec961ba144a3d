//! The service running in-process on an ephemeral port, with a manual
//! clock, stopped by the test.

use std::sync::Arc;
use std::time::Duration;

use cache_core::{ManualClock, Policy};
use positions_api::source::Source;
use positions_api::{App, ServerOptions, Service, ServiceOptions};
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
/// 1,000 wallets, 8 loads at once, a 2-second load timeout.
pub fn default_options() -> ServiceOptions {
    ServiceOptions {
        cache_enabled: true,
        policy: Policy::new(TTL).stale_while_revalidate(MAX_STALE).stale_if_error(STALE_IF_ERROR),
        max_wallets: 1_000,
        refresh: refresh::Config {
            concurrency: std::num::NonZeroUsize::MIN.saturating_add(7),
            timeout: Duration::from_secs(2),
            max_queued: 1_024,
        },
    }
}

impl TestService {
    /// Starts the service over `source` with `options`.
    ///
    /// # Panics
    ///
    /// If it cannot bind a port on 127.0.0.1.
    pub async fn start(options: ServiceOptions, source: Arc<dyn Source>, admin_token: Option<&str>) -> Self {
        let clock = ManualClock::starting_now();
        let metrics = Arc::new(Metrics::new());
        let service = Service::new(&options, source, Arc::clone(&metrics), Arc::new(clock.clone()));
        let app = Arc::new(App::new(service, Arc::clone(&metrics), admin_token.map(str::to_owned)));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind an ephemeral port");
        let base = format!("http://{}", listener.local_addr().expect("bound address"));
        let (stop, stopped) = oneshot::channel::<()>();
        let options = ServerOptions { header_timeout: Duration::from_secs(5), drain: Duration::from_secs(5) };
        let task = tokio::spawn(positions_api::startup::run(Arc::clone(&app), listener, options, async move {
            let _ = stopped.await;
        }));
        Self { base, clock, metrics, app, stop: Some(stop), task: Some(task) }
    }

    /// Starts the service with [`default_options`].
    pub async fn with_source(source: Arc<dyn Source>) -> Self {
        Self::start(default_options(), source, None).await
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
