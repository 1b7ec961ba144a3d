//! The HTTP server: accepts connections, hands requests to the router, and
//! shuts down gracefully.
//!
//! HTTP/1.1 and HTTP/2 (prior knowledge) on one port. A client that takes
//! longer than the header timeout to send a request's headers is
//! disconnected, so idle or slow-loris connections cannot pile up. On
//! shutdown the listener closes at once, open connections finish the
//! requests they are serving, and whatever is still open at the deadline is
//! dropped.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::routes::App;

/// Server settings that are not the application's.
#[derive(Debug, Clone, Copy)]
pub struct ServerOptions {
    /// How long a client may take to send a request's headers.
    pub header_timeout: Duration,
    /// How long open connections get to finish after shutdown begins.
    pub drain: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self { header_timeout: Duration::from_secs(10), drain: Duration::from_secs(10) }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then drains open
/// connections for up to `options.drain`.
///
/// Tests bind `127.0.0.1:0` and pass their own shutdown future.
pub async fn serve(listener: TcpListener, app: Arc<App>, options: ServerOptions, shutdown: impl Future<Output = ()>) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(options.header_timeout);
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Typically out of file descriptors: back off instead of
                    // spinning on the error.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.as_mut() => break,
        };
        // Responses are small and latency matters more than packet count.
        let _ = stream.set_nodelay(true);
        let app = Arc::clone(&app);
        let service = service_fn(move |request| {
            let app = Arc::clone(&app);
            async move { Ok::<_, Infallible>(app.handle(request).await) }
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }

    drop(listener);
    tracing::info!("stopped accepting connections; draining open ones");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(options.drain) => tracing::warn!(drain = ?options.drain, "connections still open at the drain deadline; dropping them"),
    }
}
