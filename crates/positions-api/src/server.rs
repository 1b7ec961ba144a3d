//! The HTTP server: accepts connections, hands requests to the router, and
//! shuts down gracefully.
//!
//! HTTP/1.1 and HTTP/2 (prior knowledge) on one port, and optionally a
//! second listener for the admin routes ([`Listeners`]). No connection can
//! hold a file descriptor without sending requests:
//!
//! - a client gets the header timeout to send its first bytes (the
//!   protocol is told from them, in [`detect`]), and an HTTP/1 client the
//!   header timeout for each request's headers, the idle time between
//!   keep-alive requests included;
//! - an HTTP/2 connection with no open stream is closed once it has been
//!   idle for the header timeout (before its first request as after its
//!   last), and one with open streams is pinged, so a peer that vanished
//!   is noticed;
//! - at most [`ServerOptions::max_connections`] are open at once; at the
//!   cap the connection idle longest is closed to make room, and a
//!   connection serving a request is never cut.
//!
//! On shutdown the listeners close at once, open connections finish the
//! requests they are serving, and whatever is still open at the deadline is
//! dropped.

mod detect;
mod registry;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::routes::{App, RouteSet};
use detect::{Version, detect};
use registry::{Registration, Registry};

/// How long a connection asked to close (at the cap, idle, or at shutdown)
/// gets to say goodbye (an HTTP/2 `GOAWAY`) before it is dropped, provided
/// it is not serving a request.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Server settings that are not the application's.
#[derive(Debug, Clone, Copy)]
pub struct ServerOptions {
    /// How long a client may take to send its first bytes, a request's
    /// headers, or (HTTP/1 keep-alive and HTTP/2) the next request.
    pub header_timeout: Duration,
    /// How long open connections get to finish after shutdown begins.
    pub drain: Duration,
    /// Most connections open at once, over all listeners; see
    /// [`connection_cap`] for fitting it to the descriptor limit.
    pub max_connections: usize,
    /// How often an HTTP/2 connection that has been quiet is pinged.
    pub http2_keep_alive_interval: Duration,
    /// How long an HTTP/2 ping may go unanswered before the connection is
    /// closed.
    pub http2_keep_alive_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            drain: Duration::from_secs(10),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            http2_keep_alive_interval: Duration::from_secs(20),
            http2_keep_alive_timeout: Duration::from_secs(20),
        }
    }
}

/// [`ServerOptions::max_connections`]'s default, as `HTTP_MAX_CONNECTIONS`'s.
const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// Descriptors kept back from the connection cap for everything else the
/// process opens: Redis and upstream connections, listeners, files.
const DESCRIPTOR_HEADROOM: u64 = 256;

/// The listeners to serve: the public one, and optionally one for the
/// admin routes (`DELETE` and `/metrics`), which the public one then
/// answers 404.
#[derive(Debug)]
pub struct Listeners {
    public: TcpListener,
    admin: Option<TcpListener>,
}

impl Listeners {
    /// The public listener alone, serving every route.
    pub fn new(public: TcpListener) -> Self {
        Self { public, admin: None }
    }

    /// The public listener's address.
    ///
    /// # Errors
    ///
    /// As [`TcpListener::local_addr`].
    pub fn public_addr(&self) -> std::io::Result<SocketAddr> {
        self.public.local_addr()
    }

    /// Serves the admin routes on `admin` only.
    #[must_use]
    pub fn with_admin(mut self, admin: TcpListener) -> Self {
        self.admin = Some(admin);
        self
    }
}

impl From<TcpListener> for Listeners {
    fn from(public: TcpListener) -> Self {
        Self::new(public)
    }
}

/// `configured`, lowered if need be to fit this process's open-file limit
/// (`RLIMIT_NOFILE`) with room for the descriptors that are not client
/// connections.
pub fn connection_cap(configured: usize) -> usize {
    #[cfg(unix)]
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    #[cfg(not(unix))]
    let limit = None;
    cap_within(configured, limit)
}

fn cap_within(configured: usize, descriptor_limit: Option<u64>) -> usize {
    let Some(limit) = descriptor_limit else { return configured.max(1) };
    let headroom = DESCRIPTOR_HEADROOM.min(limit / 2);
    let fits = usize::try_from(limit - headroom).unwrap_or(usize::MAX);
    configured.min(fits).max(1)
}

/// What every connection task needs.
struct Shared {
    app: Arc<App>,
    http1: auto::Builder<TokioExecutor>,
    http2: auto::Builder<TokioExecutor>,
    header_timeout: Duration,
}

/// Serves `app` on `listeners` until `shutdown` completes, then drains open
/// connections for up to `options.drain`.
///
/// Tests bind `127.0.0.1:0` and pass their own shutdown future.
pub async fn serve(
    listeners: impl Into<Listeners>,
    app: Arc<App>,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) {
    let Listeners { public, admin } = listeners.into();
    let public_routes = if admin.is_some() { RouteSet::Public } else { RouteSet::All };
    let shared = Arc::new(Shared {
        app,
        http1: builder(&options).http1_only(),
        http2: builder(&options).http2_only(),
        header_timeout: options.header_timeout,
    });
    let registry = Registry::new(options.max_connections);
    let (stop, stopping) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut shutdown = pin!(shutdown);

    loop {
        // Wait for room under the cap before accepting, so that the
        // listen backlog, not this process, holds the excess.
        let next = async {
            registry.room().await;
            tokio::select! {
                accepted = public.accept() => accepted.map(|(stream, peer)| (stream, peer, public_routes)),
                accepted = accept(admin.as_ref()) => accepted.map(|(stream, peer)| (stream, peer, RouteSet::All)),
            }
        };
        let accepted = tokio::select! {
            accepted = next => accepted,
            // Reap ended connections as they end: a finished task keeps its
            // memory until joined.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            () = shutdown.as_mut() => break,
        };
        let (stream, peer, routes) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Typically out of file descriptors: back off instead of
                // spinning on the error.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Responses are small and latency matters more than packet count.
        let _ = stream.set_nodelay(true);
        let registration = registry.register();
        tasks.spawn(connection(stream, peer, routes, Arc::clone(&shared), registration, stopping.clone()));
    }

    drop((public, admin));
    tracing::info!(open = registry.len(), "stopped accepting connections; draining open ones");
    let _ = stop.send(true);
    let drained = tokio::time::timeout(options.drain, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_ok() {
        tracing::info!("all connections closed");
    } else {
        tracing::warn!(
            drain_s = options.drain.as_secs_f64(),
            open = tasks.len(),
            "connections still open at the drain deadline; dropping them"
        );
        tasks.abort_all();
    }
}

/// The builder both protocols start from.
fn builder(options: &ServerOptions) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(options.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(options.http2_keep_alive_interval)
        .keep_alive_timeout(options.http2_keep_alive_timeout);
    builder
}

/// Accepts on `listener`, or never if there is none.
async fn accept(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// Serves one connection from its first byte to its close.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    routes: RouteSet,
    shared: Arc<Shared>,
    registration: Registration,
    mut stopping: watch::Receiver<bool>,
) {
    let state = Arc::clone(registration.connection());
    let detected = tokio::select! {
        detected = tokio::time::timeout(shared.header_timeout, detect(stream)) => detected,
        () = state.close_requested() => return,
        _ = stopping.wait_for(|stop| *stop) => return,
    };
    let (version, io) = match detected {
        Ok(Ok(Some(detected))) => detected,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "connection failed before its first request");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "no request within the header timeout; closing the connection");
            return;
        }
    };

    let service = service_fn(|request| {
        let busy = state.start_request();
        let app = Arc::clone(&shared.app);
        async move {
            let response = app.handle_on(request, routes).await;
            drop(busy);
            Ok::<_, Infallible>(response)
        }
    });
    let builder = match version {
        Version::Http1 => &shared.http1,
        Version::Http2 => &shared.http2,
    };
    let mut conn = pin!(builder.serve_connection(TokioIo::new(io), service));
    // hyper's own header timeout covers HTTP/1's idle time; HTTP/2 has
    // none, so its idleness is checked here.
    let watch_idle = version == Version::Http2;
    let idle_check = tokio::time::sleep(shared.header_timeout);
    let grace = tokio::time::sleep(CLOSE_GRACE);
    let (mut idle_check, mut grace) = (pin!(idle_check), pin!(grace));
    let mut closing = false;
    loop {
        let close = tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            () = idle_check.as_mut(), if watch_idle && !closing => {
                let idle_until = state.idle_since() + shared.header_timeout;
                if !state.is_idle() {
                    // Look again soon after its requests end: at most a
                    // quarter of the limit late.
                    idle_check.as_mut().reset(Instant::now() + shared.header_timeout / 4);
                    false
                } else if Instant::now() < idle_until {
                    idle_check.as_mut().reset(idle_until);
                    false
                } else {
                    tracing::debug!(%peer, "HTTP/2 connection idle for the header timeout; closing it");
                    true
                }
            }
            () = state.close_requested(), if !closing => true,
            _ = stopping.wait_for(|stop| *stop), if !closing => true,
            () = grace.as_mut(), if closing => {
                if state.is_idle() {
                    // Asked to close and not serving anything: it had its
                    // chance to go quietly.
                    return;
                }
                grace.as_mut().reset(Instant::now() + CLOSE_GRACE);
                false
            }
        };
        if close {
            if !state.has_served() {
                // It never asked for anything: there is no one to say
                // goodbye to (an HTTP/2 peer that sent only its preface
                // would not answer the `GOAWAY`'s ping either).
                return;
            }
            closing = true;
            conn.as_mut().graceful_shutdown();
            grace.as_mut().reset(Instant::now() + CLOSE_GRACE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_for_other_descriptors() {
        assert_eq!(cap_within(10_000, Some(20_000)), 10_000);
        assert_eq!(cap_within(10_000, Some(1024)), 768);
        assert_eq!(cap_within(10_000, Some(100)), 50);
        assert_eq!(cap_within(10_000, None), 10_000);
        assert_eq!(cap_within(0, Some(1024)), 1);
    }
}
