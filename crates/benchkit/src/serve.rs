//! The server loop of the bench's own HTTP programs, built the way
//! `positions-api` builds its server.
//!
//! The ceiling is only a fair ceiling if it differs from the service in
//! what the service does per request, not in how it speaks HTTP: so this is
//! the same hyper-util `auto::Builder` (HTTP/1.1 and HTTP/2 on one port)
//! on the same tokio runtime, with `TCP_NODELAY` on every connection. What
//! it leaves out, deliberately, is everything the service does around a
//! request: routing, the cache, metrics, graceful shutdown (the programs
//! are simply killed) and, unless asked for, the header-read timeout.

use std::convert::Infallible;
use std::future::Future;
use std::io::Write as _;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// Binds `addr` and prints `listening on ADDR` (the bound address, so that
/// port 0 can be used) as the first line on stdout, which is how the xtask
/// learns where to connect.
///
/// # Errors
///
/// If the address cannot be bound.
pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(addr).await?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {}", listener.local_addr()?)?;
    stdout.flush()?;
    Ok(listener)
}

/// Serves every connection on `listener` with `handler`, forever.
///
/// With `header_timeout`, HTTP/1 connections get the service's header-read
/// timeout too (a timer armed for every request), so that its cost can be
/// measured on its own; the ceiling runs without it by default.
pub async fn serve<F, Fut>(listener: TcpListener, header_timeout: Option<Duration>, handler: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    if let Some(timeout) = header_timeout {
        builder.http1().timer(TokioTimer::new()).header_read_timeout(timeout);
    }
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors, most likely; wait instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        // As the service does: small answers, latency over packet count.
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let service = service_fn(move |request| {
            let answer = handler(request);
            async move { Ok::<_, Infallible>(answer.await) }
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
        tokio::spawn(async move {
            // A client that goes away mid-request is not this server's error.
            let _ = connection.await;
        });
    }
}

/// A multi-threaded tokio runtime with `threads` workers, or tokio's
/// default (one per core, or `TOKIO_WORKER_THREADS`) when `None`, as the
/// service gets.
///
/// # Errors
///
/// If the runtime cannot start.
pub fn runtime(threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = threads {
        builder.worker_threads(threads);
    }
    builder.enable_all().build()
}
