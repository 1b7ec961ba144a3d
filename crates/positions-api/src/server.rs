//! The HTTP server: accepts connections, hands requests to the router, and
//! shuts down gracefully.
//!
//! HTTP/1.1 and HTTP/2 (prior knowledge) on one port, and optionally a
//! second listener for the admin routes ([`Listeners`]). No connection can
//! hold a file descriptor without sending requests, and none that does is
//! cut while a load balancer may still reuse it:
//!
//! - a client gets the header timeout to send its first bytes (the
//!   protocol is told from them, in [`detect`]), and an HTTP/1 client the
//!   header timeout for each request's headers, counted from the request's
//!   first byte;
//! - a connection that has served a request and now waits for the next one
//!   (HTTP/1 keep-alive, or HTTP/2 with no open stream) stays open for the
//!   idle timeout, which is longer than the idle timeouts of the common load
//!   balancers, so that they close first and never reuse a connection the
//!   server is closing; an HTTP/2 connection with open streams is pinged,
//!   so a peer that vanished is noticed;
//! - at most [`ServerOptions::max_connections`] are open at once; at the
//!   cap the connection idle longest is closed to make room, and a
//!   connection serving a request is never cut.
//!
//! hyper's own HTTP/1 header timeout is off: it also covers the wait for
//! the next request on a keep-alive connection, so it would close idle
//! connections at the header timeout. The connection's task keeps both
//! limits instead, from the times its [`registry`] notes.
//!
//! On shutdown the listeners stay open for [`ServerOptions::shutdown_delay`]
//! (while load balancers learn that the instance is leaving), during which
//! HTTP/1 answers close their connections and HTTP/2 connections are sent a
//! `GOAWAY`, so that clients reconnect through the balancer; then the
//! listeners close, open connections finish the requests they are serving,
//! and whatever is still open at the drain deadline is dropped.

/// `AsyncWrite` for a stream wrapper that only watches or replays reads:
/// every write goes straight to its `stream` field. One definition for the
/// wrappers of `detect` and `registry`.
macro_rules! forward_async_write {
    ($wrapper:ty $(, $generic:ident : $bound:path)?) => {
        impl$(<$generic: $bound + Unpin>)? tokio::io::AsyncWrite for $wrapper {
            fn poll_write(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.stream).poll_write(cx, buf)
            }

            fn poll_write_vectored(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.stream.is_write_vectored()
            }

            fn poll_flush(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.stream).poll_flush(cx)
            }

            fn poll_shutdown(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.stream).poll_shutdown(cx)
            }
        }
    };
}

mod detect;
mod registry;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use http::header::CONNECTION;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::routes::{App, RouteSet};
use detect::{Version, detect};
use registry::{Connection, Noticing, Registration, Registry};

/// How long a connection asked to close (at the cap, idle, or at shutdown)
/// gets to say goodbye (an HTTP/2 `GOAWAY`) before it is dropped, provided
/// it is not serving a request.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Server settings that are not the application's.
#[derive(Debug, Clone, Copy)]
pub struct ServerOptions {
    /// How long a client may take to send its first bytes, or a request's
    /// headers from their first byte.
    pub header_timeout: Duration,
    /// How long a connection that has served a request may wait for the
    /// next one (HTTP/1 keep-alive, HTTP/2 with no open stream).
    pub idle_timeout: Duration,
    /// How long the listeners keep accepting and serving once shutdown
    /// begins, before they close.
    pub shutdown_delay: Duration,
    /// How long open connections get to finish once the listeners close.
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
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            shutdown_delay: Duration::ZERO,
            drain: Duration::from_secs(10),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            http2_keep_alive_interval: Duration::from_secs(20),
            http2_keep_alive_timeout: Duration::from_secs(20),
        }
    }
}

/// [`ServerOptions::idle_timeout`]'s default, as `HTTP_IDLE_TIMEOUT_MS`'s:
/// above the idle timeout of a load balancer in front (AWS's ALB keeps an
/// idle connection for 60 s by default, nginx's upstream keep-alive as
/// long), which must close an idle connection before the server does: a
/// balancer that reuses one the server has just closed answers its client
/// 502. A balancer configured to keep connections longer needs this raised
/// above its setting.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(75);

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
    idle_timeout: Duration,
}

/// Serves `app` on `listeners` until `shutdown` completes and then for
/// `options.shutdown_delay` more, then closes the listeners and drains open
/// connections for up to `options.drain`. Returns the drain deadline, which
/// the caller may share with other work that must end by it.
///
/// Tests bind `127.0.0.1:0` and pass their own shutdown future.
pub async fn serve(
    listeners: impl Into<Listeners>,
    app: Arc<App>,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) -> Instant {
    let Listeners { public, admin } = listeners.into();
    let public_routes = if admin.is_some() { RouteSet::Public } else { RouteSet::All };
    let shared = Arc::new(Shared {
        app,
        http1: builder(&options).http1_only(),
        http2: builder(&options).http2_only(),
        header_timeout: options.header_timeout,
        idle_timeout: options.idle_timeout,
    });
    let registry = Registry::new(options.max_connections);
    let (phase, phases) = watch::channel(Phase::Serving);
    let mut tasks = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    // Armed when shutdown begins; the accept loop ends when it fires.
    let delay = tokio::time::sleep(Duration::ZERO);
    let mut delay = pin!(delay);
    let mut delaying = false;

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
            () = shutdown.as_mut(), if !delaying => {
                if options.shutdown_delay.is_zero() {
                    break;
                }
                tracing::info!(delay = ?options.shutdown_delay, "shutting down; serving on until the delay ends");
                delay.as_mut().reset(Instant::now() + options.shutdown_delay);
                delaying = true;
                let _ = phase.send(Phase::Leaving);
                continue;
            }
            () = delay.as_mut(), if delaying => break,
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
        tasks.spawn(connection(stream, peer, routes, Arc::clone(&shared), registration, phases.clone()));
    }

    drop((public, admin));
    tracing::info!(open = registry.len(), "stopped accepting connections; draining open ones");
    let _ = phase.send(Phase::Stopping);
    let deadline = Instant::now() + options.drain;
    let drained = tokio::time::timeout_at(deadline, async { while tasks.join_next().await.is_some() {} }).await;
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
    deadline
}

/// The builder both protocols start from.
fn builder(options: &ServerOptions) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The header timeout is kept by the connection's task (see the module
    // docs): hyper's would cut idle keep-alive connections.
    builder.http1().timer(TokioTimer::new()).header_read_timeout(None);
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
    mut phase: watch::Receiver<Phase>,
) {
    let state = Arc::clone(registration.connection());
    let detected = tokio::select! {
        detected = tokio::time::timeout(shared.header_timeout, detect(stream)) => detected,
        () = state.close_requested() => return,
        _ = phase.wait_for(|p| *p == Phase::Stopping) => return,
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

    if version == Version::Http1 {
        // The first request's bytes arrived during detection.
        state.note_arrival();
    }
    let io = Noticing::new(io, Arc::clone(&state));

    let leaving = phase.clone();
    let mut leaving_watch = phase.clone();
    let service = service_fn(|request| {
        let busy = state.start_request();
        let app = Arc::clone(&shared.app);
        let leaving = *leaving.borrow() != Phase::Serving;
        async move {
            // The application's future is several kilobytes (it holds the
            // state of every route, loads from the source included), and a
            // future is moved whole: hyper moves this one into its
            // connection state for every request, so held inline it cost a
            // copy of all of it per request, a third of the instructions of
            // a cached answer. Written straight into a box allocated first
            // (`Box::new(future)` would build it on the stack and copy it
            // over), only the pointer moves. `cargo xtask bench --only cpu`
            // counts the instructions.
            let handling = Box::write(Box::new_uninit(), app.handle_on(request, routes));
            let mut response = Box::into_pin(handling).await;
            if leaving && version == Version::Http1 {
                // Leaving: the client opens its next request's connection
                // anew, where the balancer no longer sends it here, instead
                // of reusing this one until the drain closes it under it.
                response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
            }
            drop(busy);
            Ok::<_, Infallible>(response)
        }
    });
    let builder = match version {
        Version::Http1 => &shared.http1,
        Version::Http2 => &shared.http2,
    };
    let mut conn = pin!(builder.serve_connection(TokioIo::new(io), service));
    let limits = tokio::time::sleep(shared.header_timeout.min(shared.idle_timeout));
    let grace = tokio::time::sleep(CLOSE_GRACE);
    let (mut limits, mut grace) = (pin!(limits), pin!(grace));
    let mut closing = false;
    loop {
        // Biased: the task wakes once or twice per request, nearly always
        // for the connection itself, so it is polled first and no random
        // start is drawn; the other branches are still polled on every wake
        // it stays pending.
        let close = tokio::select! {
            biased;
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            () = limits.as_mut(), if !closing => match shared.check(&state, version, Instant::now()) {
                Check::OpenUntil(next) => {
                    limits.as_mut().reset(next);
                    false
                }
                Check::HeadersLate => {
                    // Mid-request: there is nothing to say to it.
                    tracing::debug!(%peer, "request headers not received within the header timeout; closing the connection");
                    return;
                }
                Check::Idle => {
                    tracing::debug!(%peer, ?version, "connection idle for the idle timeout; closing it");
                    true
                }
            },
            () = state.close_requested(), if !closing => true,
            _ = phase.wait_for(|p| *p == Phase::Stopping), if !closing => true,
            _ = leaving_watch.wait_for(|p| *p != Phase::Serving),
                if !closing && version == Version::Http2 && state.has_served() =>
            {
                // Leaving: a `GOAWAY` now lets the client finish its streams
                // here and open new ones elsewhere, where a close at the
                // drain could catch a request in flight. A connection that
                // has not served yet (one opened during the delay) is sent
                // it once it has, at the next look at its limits: a client
                // sent it before its first request would only reconnect.
                closing = true;
                conn.as_mut().graceful_shutdown();
                grace.as_mut().reset(Instant::now() + CLOSE_GRACE);
                false
            }
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

/// Where the server is in its life, as its connections see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Serving,
    /// Shutdown has begun, and the listeners serve on for the shutdown
    /// delay: HTTP/1 answers close their connection, HTTP/2 connections
    /// get a `GOAWAY`.
    Leaving,
    /// The listeners are closed: connections drain.
    Stopping,
}

/// What a connection's limits say at one moment.
#[derive(Debug, PartialEq, Eq)]
enum Check {
    /// Within them; look again at this time.
    OpenUntil(Instant),
    /// An HTTP/1 request's headers took longer than the header timeout.
    HeadersLate,
    /// Waited too long for a request.
    Idle,
}

impl Shared {
    /// Holds `connection` to its limits at `now`.
    fn check(&self, connection: &Connection, version: Version, now: Instant) -> Check {
        if !connection.is_idle() {
            // Look again soon after its requests end: at most a quarter of
            // the header timeout late.
            return Check::OpenUntil(now + self.header_timeout / 4);
        }
        // HTTP/2 sends frames of its own (pings, settings) between
        // requests, and hyper bounds its streams: only HTTP/1 bytes start a
        // request.
        if version == Version::Http1
            && let Some(arrived) = connection.arrived_at()
        {
            let late = arrived + self.header_timeout;
            return if now >= late { Check::HeadersLate } else { Check::OpenUntil(late) };
        }
        // Before its first request a connection has only the header
        // timeout: a client that connects has something to ask.
        let limit = if connection.has_served() { self.idle_timeout } else { self.header_timeout };
        let idle_until = connection.idle_since() + limit;
        if now >= idle_until {
            Check::Idle
        } else if version == Version::Http1 {
            // Bytes arriving do not wake this task: look every header
            // timeout, so headers that started are still cut in time.
            Check::OpenUntil(idle_until.min(now + self.header_timeout))
        } else {
            Check::OpenUntil(idle_until)
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
