//! Connections that send nothing are closed, and a cap on connections that
//! still lets a new client in: no client can hold the server's file
//! descriptors without sending requests. Keep-alive connections that have
//! served a request wait the idle timeout, longer than the header timeout,
//! so that a load balancer reusing one is not refused; and the `Host`
//! rules of HTTP/1.1.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use positions_api::ServerOptions;
use system_tests::service::default_options;
use system_tests::{FakeSource, TestService, eventually};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::PATH;

const HEADER_TIMEOUT: Duration = Duration::from_secs(1);
/// How long past the header timeout a silent connection may stay open.
const SLACK: Duration = Duration::from_secs(1);

fn options(header_timeout: Duration, max_connections: usize) -> ServerOptions {
    ServerOptions { header_timeout, drain: Duration::from_secs(5), max_connections, ..ServerOptions::default() }
}

/// Waits until the server closes `stream`, at most until `deadline`;
/// whether it did.
async fn closed_by(mut stream: TcpStream, deadline: Instant) -> bool {
    let mut byte = [0_u8; 64];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut byte)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            // An HTTP/2 server speaks first (its SETTINGS, then GOAWAY):
            // read on until the close.
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_closed_within_the_header_timeout_while_clients_are_served() {
    const SILENT: usize = 2_000;
    const PREFACE_ONLY: usize = 50;
    let service =
        TestService::builder(Arc::new(FakeSource::new())).server_options(options(HEADER_TIMEOUT, 10_000)).start().await;
    let client = service.client();
    assert_eq!(client.get(PATH).await.status, 200);

    // A client that keeps asking throughout.
    let done = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let asking = tokio::spawn({
        let (client, done, answered) = (client.clone(), Arc::clone(&done), Arc::clone(&answered));
        async move {
            while !done.load(Ordering::Relaxed) {
                let reply = client.get(PATH).await;
                assert_eq!(reply.status, 200, "{}", reply.text());
                answered.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });

    let addr = service.base.trim_start_matches("http://").to_owned();
    let mut waits = JoinSet::new();
    for i in 0..SILENT + PREFACE_ONLY {
        let mut stream = TcpStream::connect(&addr).await.expect("connects");
        // Connected: the server may not have accepted it yet, but its
        // clock cannot have started earlier than now.
        let deadline = Instant::now() + HEADER_TIMEOUT + SLACK;
        if i >= SILENT {
            stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.expect("preface sent");
        }
        waits.spawn(closed_by(stream, deadline));
    }
    let before = answered.load(Ordering::Relaxed);
    let mut open = 0;
    while let Some(closed) = waits.join_next().await {
        if !closed.expect("wait ran") {
            open += 1;
        }
    }
    assert_eq!(
        open,
        0,
        "{open} of {} silent connections were still open past the header timeout plus {SLACK:?}",
        SILENT + PREFACE_ONLY
    );
    eventually("an answer while the silent connections were open", Duration::from_secs(5), || async {
        answered.load(Ordering::Relaxed) > before
    })
    .await;
    done.store(true, Ordering::Relaxed);
    asking.await.expect("every answer was 200");
    service.stop().await;
}

/// Short limits for the idle tests: the header timeout well below the idle
/// timeout, which is well below the other.
const SHORT_HEADER_TIMEOUT: Duration = Duration::from_millis(300);
const IDLE_TIMEOUT: Duration = Duration::from_secs(3);

fn idle_options() -> ServerOptions {
    ServerOptions { idle_timeout: IDLE_TIMEOUT, ..options(SHORT_HEADER_TIMEOUT, 10_000) }
}

/// Sends one HTTP/1.1 request on `stream` and reads its answer (a body
/// with `Content-Length`); the status.
async fn keep_alive_get(stream: &mut TcpStream, path: &str) -> u16 {
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.expect("request sent");
    let mut read = Vec::new();
    let mut chunk = [0_u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("an answer within 5 s")
            .expect("readable");
        assert!(n > 0, "closed before answering: {}", String::from_utf8_lossy(&read));
        read.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&read).into_owned();
        let Some((head, body)) = text.split_once("\r\n\r\n") else { continue };
        let length: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().expect("a length"))
            })
            .expect("a Content-Length");
        if body.len() >= length {
            return head[9..12].parse().expect("a status");
        }
    }
}

#[tokio::test]
async fn a_keep_alive_connection_idle_past_the_header_timeout_serves_its_next_request() {
    let service = TestService::builder(Arc::new(FakeSource::new())).server_options(idle_options()).start().await;
    let mut stream = TcpStream::connect(service.base.trim_start_matches("http://")).await.expect("connects");
    assert_eq!(keep_alive_get(&mut stream, "/health").await, 200);
    // Idle for several header timeouts: what a load balancer's pooled
    // connection does between requests.
    tokio::time::sleep(SHORT_HEADER_TIMEOUT * 4).await;
    assert_eq!(keep_alive_get(&mut stream, "/health").await, 200, "the idle connection still serves");

    // Past the idle timeout it is closed.
    let idle_from = Instant::now();
    assert!(
        closed_by(stream, idle_from + IDLE_TIMEOUT + SLACK).await,
        "the keep-alive connection was still open past the idle timeout plus {SLACK:?}"
    );
    service.stop().await;
}

#[tokio::test]
async fn headers_that_stop_arriving_are_cut_at_the_header_timeout_not_the_idle_timeout() {
    let service = TestService::builder(Arc::new(FakeSource::new())).server_options(idle_options()).start().await;
    let addr = service.base.trim_start_matches("http://");

    // A first request that never completes its request line.
    let mut fresh = TcpStream::connect(addr).await.expect("connects");
    fresh.write_all(b"GET /hea").await.expect("partial request sent");
    let deadline = Instant::now() + SHORT_HEADER_TIMEOUT + SLACK;
    assert!(closed_by(fresh, deadline).await, "a partial first request outlived the header timeout");

    // The same on a keep-alive connection, after an idle spell longer than
    // the header timeout.
    let mut served = TcpStream::connect(addr).await.expect("connects");
    assert_eq!(keep_alive_get(&mut served, "/health").await, 200);
    tokio::time::sleep(SHORT_HEADER_TIMEOUT * 2).await;
    served.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").await.expect("partial headers sent");
    let deadline = Instant::now() + SHORT_HEADER_TIMEOUT + SLACK;
    assert!(deadline < Instant::now() + IDLE_TIMEOUT, "the limits are far enough apart to tell");
    assert!(
        closed_by(served, deadline).await,
        "partial headers on a keep-alive connection outlived the header timeout"
    );
    service.stop().await;
}

#[tokio::test]
async fn an_idle_http2_connection_is_kept_for_the_idle_timeout_then_closed() {
    let service = TestService::builder(Arc::new(FakeSource::new())).server_options(idle_options()).start().await;
    let addr = service.base.trim_start_matches("http://");
    let stream = TcpStream::connect(addr).await.expect("connects");
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.expect("h2 handshake");
    let connection = tokio::spawn(connection);
    let get = || http::Request::get(format!("{}{PATH}", service.base)).body(Empty::<Bytes>::new()).expect("request");
    assert_eq!(sender.send_request(get()).await.expect("an answer over HTTP/2").status(), 200);

    tokio::time::sleep(SHORT_HEADER_TIMEOUT * 4).await;
    let response = sender.send_request(get()).await.expect("the idle HTTP/2 connection still serves");
    assert_eq!(response.status(), 200);
    drop(response);

    // Idle from here: the server ends it.
    let idle_from = Instant::now();
    let ended = tokio::time::timeout_at(idle_from + IDLE_TIMEOUT + SLACK, connection).await;
    assert!(ended.is_ok(), "the idle HTTP/2 connection was still open past the idle timeout plus {SLACK:?}");
    service.stop().await;
}

/// One raw HTTP/1 request (`head` without its final blank line) on a new
/// connection; the status and the body.
async fn raw_request(addr: &str, head: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    stream.write_all(format!("{head}\r\nConnection: close\r\n\r\n").as_bytes()).await.expect("request sent");
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut response))
        .await
        .expect("an answer within 5 s")
        .expect("readable");
    let status = response.get(9..12).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status: {response}"));
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body).to_owned();
    (status, body)
}

#[tokio::test]
async fn an_http11_request_needs_exactly_one_host() {
    let service = TestService::builder(Arc::new(FakeSource::new())).server_options(idle_options()).start().await;
    let addr = service.base.trim_start_matches("http://");
    for head in ["GET /health HTTP/1.1", &format!("GET {PATH} HTTP/1.1\r\nHost: a\r\nHost: b")] {
        let (status, body) = raw_request(addr, head).await;
        assert_eq!(status, 400, "{head:?}: {body}");
        let error: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert_eq!(error["error"], "bad_request", "{head:?}: {body}");
    }
    assert_eq!(raw_request(addr, "GET /health HTTP/1.1\r\nHost: a").await.0, 200);
    assert_eq!(raw_request(addr, "GET /health HTTP/1.0").await.0, 200, "HTTP/1.0 has no Host to require");

    // HTTP/2 names the authority in `:authority`, with no Host header.
    let stream = TcpStream::connect(addr).await.expect("connects");
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.expect("h2 handshake");
    tokio::spawn(connection);
    let request = http::Request::get(format!("{}/health", service.base)).body(Empty::<Bytes>::new()).expect("request");
    assert!(request.headers().get(http::header::HOST).is_none());
    assert_eq!(sender.send_request(request).await.expect("an answer over HTTP/2").status(), 200);
    service.stop().await;
}

#[tokio::test]
async fn at_the_cap_the_longest_idle_connection_makes_room_for_a_new_client() {
    const CAP: usize = 50;
    // A header timeout long enough that nothing closes for idleness.
    let service = TestService::builder(Arc::new(FakeSource::new()))
        .server_options(options(Duration::from_secs(60), CAP))
        .start()
        .await;
    let addr = service.base.trim_start_matches("http://").to_owned();

    // CAP keep-alive connections, each having made a request, now idle.
    let mut idle = Vec::new();
    for _ in 0..CAP {
        let stream = TcpStream::connect(&addr).await.expect("connects");
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("h1");
        let connection = tokio::spawn(connection);
        let request = http::Request::get("/health").header("host", &addr).body(Empty::<Bytes>::new()).expect("request");
        let response = sender.send_request(request).await.expect("an answer");
        assert_eq!(response.status(), 200);
        idle.push((sender, connection));
    }

    // A new client is served within a bounded wait.
    let reply = tokio::time::timeout(Duration::from_secs(10), service.client().get(PATH)).await;
    assert_eq!(reply.expect("a new client is served at the cap").status, 200);

    // The connection idle longest made the room; the newest is still open.
    eventually("the longest-idle connection to close", Duration::from_secs(5), || async { idle[0].1.is_finished() })
        .await;
    let (sender, _) = idle.last_mut().expect("connections");
    let request = http::Request::get("/health").header("host", &addr).body(Empty::<Bytes>::new()).expect("request");
    let response = sender.send_request(request).await.expect("the newest idle connection still serves");
    assert_eq!(response.status(), 200);
    service.stop().await;
}

#[tokio::test]
async fn an_http2_peer_that_stops_answering_pings_is_disconnected() {
    let source = Arc::new(FakeSource::new());
    // A load that outlasts the test, so only the pings can end the stream.
    let mut service_options = default_options();
    service_options.refresh.timeout = Duration::from_secs(30);
    let server = ServerOptions {
        http2_keep_alive_interval: Duration::from_millis(200),
        http2_keep_alive_timeout: Duration::from_millis(200),
        ..options(Duration::from_secs(30), 10_000)
    };
    let service = TestService::builder(source.clone()).options(service_options).server_options(server).start().await;
    source.hold();

    // A raw HTTP/2 client that opens one stream and then never reads a
    // frame, so never acknowledges a ping.
    let mut stream = TcpStream::connect(service.base.trim_start_matches("http://")).await.expect("connects");
    let mut frames = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    frames.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]); // SETTINGS, empty
    // HPACK: :method GET, :scheme http, then :path and :authority as
    // literals with indexed names.
    let mut block = vec![0x82, 0x86, 0x44, u8::try_from(PATH.len()).expect("short path")];
    block.extend_from_slice(PATH.as_bytes());
    block.extend_from_slice(&[0x41, 1, b'x']);
    let length = u32::try_from(block.len()).expect("short block").to_be_bytes();
    // HEADERS on stream 1, END_STREAM | END_HEADERS.
    frames.extend_from_slice(&[length[1], length[2], length[3], 0x1, 0x5, 0, 0, 0, 1]);
    frames.extend_from_slice(&block);
    stream.write_all(&frames).await.expect("request sent");
    eventually("the request to reach the source", Duration::from_secs(5), || async { source.calls() == 1 }).await;

    let deadline = Instant::now() + Duration::from_secs(3);
    assert!(closed_by(stream, deadline).await, "a peer ignoring pings was still connected after 3 s");
    source.release();
    service.stop().await;
}

#[tokio::test]
async fn during_the_shutdown_delay_http2_clients_are_sent_away_and_new_clients_served() {
    const DELAY: Duration = Duration::from_secs(3);
    let server = ServerOptions { shutdown_delay: DELAY, ..idle_options() };
    let service = TestService::builder(Arc::new(FakeSource::new())).server_options(server).start().await;
    let base = service.base.clone();
    let client = service.client();
    let stream = TcpStream::connect(base.trim_start_matches("http://")).await.expect("connects");
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.expect("h2 handshake");
    let connection = tokio::spawn(connection);
    let request = http::Request::get(format!("{base}/readyz")).body(Empty::<Bytes>::new()).expect("request");
    assert_eq!(sender.send_request(request).await.expect("an answer").status(), 200);

    let signalled = Instant::now();
    let stopping = tokio::spawn(service.stop());
    // The HTTP/2 connection is sent a `GOAWAY` and ends, well before the
    // delay does, while new clients are still served, unready.
    let ended = tokio::time::timeout_at(signalled + DELAY / 2, connection).await;
    assert!(ended.is_ok(), "the HTTP/2 connection was still open half-way through the delay");
    assert_eq!(client.get("/readyz").await.status, 503);
    assert_eq!(client.get(PATH).await.status, 200);
    // A new HTTP/2 connection opened during the delay is served too.
    let stream = TcpStream::connect(base.trim_start_matches("http://")).await.expect("connects");
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.expect("h2 handshake");
    tokio::spawn(connection);
    let request = http::Request::get(format!("{base}{PATH}")).body(Empty::<Bytes>::new()).expect("request");
    assert_eq!(sender.send_request(request).await.expect("an answer during the delay").status(), 200);
    stopping.await.expect("stopped");
}
