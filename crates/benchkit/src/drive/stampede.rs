//! A stampede: `n` requests for one URL, each on its own connection,
//! released at the same instant.
//!
//! With several URLs, the requests go to each in turn.
//!
//! Every connection is opened and its HTTP/1 handshake done first (a few at
//! a time, so that the server's accept queue never overflows and no
//! connect waits for a SYN retry); then one signal releases every request.
//! Latencies count from the release, so the slowest is the time until all
//! were answered. This is what a cold wallet's sudden popularity looks
//! like to the service, and what its single-flight loading must absorb with
//! one call to the source.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Uri, header};
use http_body_util::Empty;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc, watch};

use super::{Answer, Report, Tally, read_answer};

/// Connections opened at once while getting ready.
const CONNECTING_AT_ONCE: usize = 64;

/// Sends `n` concurrent requests, each on its own connection, released
/// together: to each of `uris` (`http://host:port/path` URLs) in turn, so
/// that with several replicas of a service each gets its share of one
/// stampede.
///
/// # Errors
///
/// If `uris` is empty or one has no host.
pub async fn run(uris: &[Uri], n: usize) -> anyhow::Result<Report> {
    anyhow::ensure!(!uris.is_empty(), "no URL to request");
    let targets = uris
        .iter()
        .map(|uri| {
            let authority = uri.authority().ok_or_else(|| anyhow::anyhow!("invalid URL {uri}: no host"))?;
            let address = format!("{}:{}", authority.host(), authority.port_u16().unwrap_or(80));
            let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
            Ok((address, path, authority.to_string()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;

    let (go, released) = watch::channel::<Option<Instant>>(None);
    let (done, mut results) = mpsc::unbounded_channel::<(Duration, Result<Answer, String>)>();
    let (ready, mut readies) = mpsc::unbounded_channel::<()>();
    let connecting = Arc::new(Semaphore::new(CONNECTING_AT_ONCE));
    for i in 0..n {
        let (address, path, host) = targets[i % targets.len()].clone();
        let (mut released, done, ready, connecting) =
            (released.clone(), done.clone(), ready.clone(), Arc::clone(&connecting));
        tokio::spawn(async move {
            let connection = {
                let _permit = connecting.acquire().await;
                connect(&address).await
            };
            let _ = ready.send(());
            // Wait for the release even if connecting failed, so the error
            // is counted with everything else.
            let Ok(start) = released.wait_for(Option::is_some).await.map(|s| (*s).unwrap_or_else(Instant::now)) else {
                return;
            };
            let outcome = match connection {
                Ok(sender) => request(sender, &path, &host).await,
                Err(e) => Err(e),
            };
            let _ = done.send((start.elapsed(), outcome));
        });
    }
    drop((done, ready, released));
    for _ in 0..n {
        readies.recv().await;
    }
    let start = Instant::now();
    let _ = go.send(Some(start));

    let mut tally = Tally::default();
    let mut slowest = Duration::ZERO;
    while let Some((latency, outcome)) = results.recv().await {
        slowest = slowest.max(latency);
        tally.add(latency, outcome);
    }
    let mut report = tally.report("stampede", start.elapsed());
    report.all_answered_ms = Some(slowest.as_secs_f64() * 1_000.0);
    Ok(report)
}

async fn connect(address: &str) -> Result<http1::SendRequest<Empty<Bytes>>, String> {
    let stream = TcpStream::connect(address).await.map_err(|e| format!("connecting to {address}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) =
        http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("{:#}", anyhow::Error::new(e)))?;
    tokio::spawn(async move {
        // An error here shows up as the request's error.
        let _ = connection.await;
    });
    Ok(sender)
}

async fn request(mut sender: http1::SendRequest<Empty<Bytes>>, path: &str, host: &str) -> Result<Answer, String> {
    let request = Request::get(path).header(header::HOST, host).body(Empty::new()).map_err(|e| e.to_string())?;
    read_answer(sender.send_request(request)).await
}
