//! A small HTTP service over a [`SwrCache`]: `GET /price/{symbol}` answers a
//! quote from a deliberately slow source (200 ms a call) through the cache,
//! saying how old it is and where it came from; `GET /stats` answers the
//! cache's counters.
//!
//! ```sh
//! cargo run -p cache-swr --example http_service            # port 0: prints the address it bound
//! cargo run -p cache-swr --example http_service -- 8080    # or PRICE_SERVICE_PORT=8080
//! curl -s http://127.0.0.1:8080/price/BTC
//! # {"symbol":"BTC","price":"97000.01","stale":false,"age_seconds":0.000,"origin":"loaded"}
//!
//! # Starts the server, asks it a few questions over real HTTP, checks the
//! # answers, and exits (non-zero on a wrong answer): for CI.
//! cargo run -p cache-swr --example http_service -- --self-test   # or PRICE_SERVICE_SELF_TEST=1
//! ```
//!
//! The server is hyper 1.x through hyper-util's `auto` builder (HTTP/1.1 and
//! HTTP/2), with a graceful shutdown on Ctrl-C that drains open connections
//! and the cache's loads. The self-test gives the cache a hand-moved clock,
//! so that it can show a stale answer without waiting out a TTL.

use std::convert::Infallible;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cache_core::{Cache, ManualClock, Policy};
use cache_swr::{LoadError, Origin, SwrCache};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};

type BoxError = Box<dyn Error + Send + Sync>;

/// The cache the service answers from.
type Prices = SwrCache<String, Arc<Quote>, SourceError>;

/// How long the fake source takes to answer.
const SOURCE_DELAY: Duration = Duration::from_millis(200);

/// The symbols the source knows, with a base price in cents.
const SYMBOLS: &[(&str, u64)] = &[("BTC", 9_700_000), ("ETH", 340_000), ("SOL", 18_000)];

/// A quote as the source gives it.
#[derive(Debug)]
struct Quote {
    symbol: String,
    cents: u64,
}

/// Why the source gave no quote.
#[derive(Debug)]
enum SourceError {
    UnknownSymbol(String),
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownSymbol(symbol) => write!(f, "unknown symbol {symbol}"),
        }
    }
}

/// The slow source: every call sleeps, then answers a price that moves by
/// a cent per call, so that a refreshed value is visibly new.
async fn fetch_quote(symbol: String, calls: Arc<AtomicU64>) -> Result<Arc<Quote>, SourceError> {
    let call = calls.fetch_add(1, Ordering::Relaxed) + 1;
    tokio::time::sleep(SOURCE_DELAY).await;
    let Some(&(_, base)) = SYMBOLS.iter().find(|(known, _)| *known == symbol) else {
        return Err(SourceError::UnknownSymbol(symbol));
    };
    Ok(Arc::new(Quote { symbol, cents: base + call }))
}

/// The cache: fresh for 10 s, served stale (and refreshed) for 5 min more,
/// a fallback for an hour if the source fails. `clock` replaces the system
/// clock (for the self-test).
fn prices(clock: Option<ManualClock>) -> Prices {
    let policy = Policy::new(Duration::from_secs(10))
        .stale_while_revalidate(Duration::from_secs(300))
        .stale_if_error(Duration::from_secs(3_600));
    let mut memory = Cache::builder(10_000).policy(policy);
    if let Some(clock) = clock {
        memory = memory.clock(clock);
    }
    let limits = refresh::Config { timeout: Duration::from_secs(2), ..refresh::Config::default() };
    let calls = Arc::new(AtomicU64::new(0));
    SwrCache::builder(memory.build())
        .loader_config(limits)
        .build(move |symbol: String| fetch_quote(symbol, Arc::clone(&calls)))
}

/// Answers one request.
async fn handle(prices: Prices, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.method() != Method::GET {
        return Ok(json(StatusCode::METHOD_NOT_ALLOWED, r#"{"error":"only GET is served"}"#.to_owned()));
    }
    let path = request.uri().path();
    if path == "/stats" {
        let stats = prices.stats();
        let body = format!(
            r#"{{"hits":{},"stale_hits":{},"misses":{},"fail_safe":{},"errors":{},"hit_ratio":{:.3}}}"#,
            stats.hits,
            stats.stale_hits,
            stats.misses,
            stats.fail_safe,
            stats.errors,
            stats.hit_ratio()
        );
        return Ok(json(StatusCode::OK, body));
    }
    let Some(symbol) = path.strip_prefix("/price/") else {
        return Ok(json(StatusCode::NOT_FOUND, r#"{"error":"try GET /price/{symbol} or GET /stats"}"#.to_owned()));
    };
    if symbol.is_empty() || symbol.len() > 10 || !symbol.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Ok(json(StatusCode::BAD_REQUEST, r#"{"error":"a symbol is 1 to 10 letters or digits"}"#.to_owned()));
    }
    let symbol = symbol.to_ascii_uppercase();
    let response = match prices.get_or_load(&symbol).await {
        Ok(got) => {
            let quote = &got.value;
            let body = format!(
                r#"{{"symbol":"{}","price":"{}.{:02}","stale":{},"age_seconds":{:.3},"origin":"{}"}}"#,
                quote.symbol,
                quote.cents / 100,
                quote.cents % 100,
                got.stale,
                got.age.as_secs_f64(),
                origin_name(got.origin)
            );
            json(StatusCode::OK, body)
        }
        Err(LoadError::Source(error)) => {
            let SourceError::UnknownSymbol(_) = &*error;
            json(StatusCode::NOT_FOUND, format!(r#"{{"error":"{}"}}"#, escape(&error.to_string())))
        }
        // Timeouts, a full queue, shutting down: the source is unavailable
        // now and nothing cached can stand in.
        Err(other) => json(StatusCode::SERVICE_UNAVAILABLE, format!(r#"{{"error":"{}"}}"#, escape(&other.to_string()))),
    };
    Ok(response)
}

fn origin_name(origin: Origin) -> &'static str {
    match origin {
        Origin::Memory => "memory",
        Origin::SecondTier => "second_tier",
        Origin::Loaded => "loaded",
        Origin::FailSafe => "fail_safe",
    }
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

fn json(status: StatusCode, mut body: String) -> Response<Full<Bytes>> {
    body.push('\n');
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, "application/json".parse().expect("a valid header value"));
    response
}

/// Serves `listener` until `shutdown` completes, then lets open connections
/// and running loads finish for up to five seconds each.
async fn run(listener: TcpListener, prices: Prices, shutdown: impl Future<Output = ()>) {
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        eprintln!("accept failed: {error}");
                        continue;
                    }
                };
                let prices = prices.clone();
                let service = hyper::service::service_fn(move |request| handle(prices.clone(), request));
                let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service).into_owned());
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        eprintln!("connection failed: {error}");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(5)) => eprintln!("connections still open after 5 s; closing them"),
    }
    let drained = prices.shutdown(Duration::from_secs(5)).await;
    println!("stopped: {} load(s) finished, {} abandoned", drained.finished, drained.abandoned);
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let self_test = args.iter().any(|arg| arg == "--self-test")
        || std::env::var("PRICE_SERVICE_SELF_TEST").is_ok_and(|value| value == "1");
    let port = match args.iter().find(|arg| !arg.starts_with("--")) {
        Some(port) => port.parse::<u16>().map_err(|e| format!("invalid port {port:?}: {e}"))?,
        None => match std::env::var("PRICE_SERVICE_PORT") {
            Ok(port) => port.parse::<u16>().map_err(|e| format!("invalid PRICE_SERVICE_PORT {port:?}: {e}"))?,
            Err(_) => 0,
        },
    };
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
    let addr = listener.local_addr()?;

    if self_test {
        return self_test_against(listener, addr).await;
    }
    println!("listening on http://{addr} (GET /price/{{symbol}}: {:?}; GET /stats); Ctrl-C stops", known_symbols());
    let shutdown = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            eprintln!("cannot listen for Ctrl-C: {error}");
            std::future::pending::<()>().await;
        }
    };
    run(listener, prices(None), shutdown).await;
    Ok(())
}

fn known_symbols() -> Vec<&'static str> {
    SYMBOLS.iter().map(|(symbol, _)| *symbol).collect()
}

/// Runs the server on `listener` and checks its answers over real HTTP: a
/// miss, a hit, a stale answer and its refresh, an unknown symbol.
async fn self_test_against(listener: TcpListener, addr: SocketAddr) -> Result<(), BoxError> {
    println!("self-test: serving on http://{addr}");
    let clock = ManualClock::starting_now();
    let prices = prices(Some(clock.clone()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(run(listener, prices.clone(), async {
        let _ = stopped.await;
    }));

    let miss = get(addr, "/price/BTC").await?;
    check(miss.status == StatusCode::OK && miss.body.contains(r#""origin":"loaded""#), "a first read loads", &miss)?;

    let hit = get(addr, "/price/btc").await?;
    check(
        hit.body.contains(r#""origin":"memory""#) && hit.body.contains(r#""stale":false"#),
        "a second read is a fresh hit from memory",
        &hit,
    )?;

    clock.advance(Duration::from_secs(30));
    let stale = get(addr, "/price/BTC").await?;
    check(
        stale.body.contains(r#""stale":true"#) && stale.body.contains(&price_of(&hit.body)),
        "past the TTL the old value is served at once, stale",
        &stale,
    )?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while prices.active_refreshes() > 0 {
        check(Instant::now() < deadline, "the background refresh finishes within 5 s", &stale)?;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refreshed = get(addr, "/price/BTC").await?;
    check(
        refreshed.body.contains(r#""stale":false"#) && !refreshed.body.contains(&price_of(&hit.body)),
        "after the refresh a new value is served fresh",
        &refreshed,
    )?;

    let unknown = get(addr, "/price/NOPE").await?;
    check(unknown.status == StatusCode::NOT_FOUND, "an unknown symbol is a 404", &unknown)?;
    let stats = get(addr, "/stats").await?;
    check(stats.status == StatusCode::OK, "stats answer", &stats)?;

    let _ = stop.send(());
    server.await?;
    println!("self-test passed");
    Ok(())
}

/// One answer, as the self-test saw it.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    body: String,
}

/// `GET path` over a new HTTP/1.1 connection, printed with its time.
async fn get(addr: SocketAddr, path: &str) -> Result<Answer, BoxError> {
    let started = Instant::now();
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = Request::get(path).header(HOST, addr.to_string()).body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    let body = String::from_utf8_lossy(&body).trim_end().to_owned();
    println!("GET {path:<11} -> {} in {:>9.3?}: {body}", status.as_u16(), started.elapsed());
    Ok(Answer { status, body })
}

fn price_of(body: &str) -> String {
    body.split(r#""price":"#).nth(1).and_then(|rest| rest.split(',').next()).unwrap_or_default().to_owned()
}

fn check(ok: bool, what: &str, answer: &Answer) -> Result<(), BoxError> {
    if ok { Ok(()) } else { Err(format!("self-test failed: {what}; got {} {}", answer.status, answer.body).into()) }
}
