//! The HTTP routes: matching, handlers, and the headers every answer gets.
//!
//! | route | methods |
//! | --- | --- |
//! | `/v4/positions/{wallet}` | `GET`, `HEAD` (optional `?refresh=true`), `DELETE` (admin) |
//! | `/v4/positions` | `DELETE` (admin; optional `?pattern=GLOB`, default every wallet) |
//! | `/health` | `GET`, `HEAD` |
//! | `/livez`, `/readyz` | `GET`, `HEAD` |
//! | `/metrics` | `GET`, `HEAD` |
//!
//! Every error is JSON (see [`ApiError`]); every request is counted by route
//! template, status and cache outcome, never by raw path.
//!
//! Every answer carries the request's `X-Request-Id`, the client's if it
//! sent a safe one, else a generated one (`request_context`). With
//! `ACCESS_LOG=true` each request is logged once, on target `access`, with
//! its method, route template, status, cache outcome, duration, body size
//! and request id, and every other line logged while handling it carries
//! the id too, from a `request` span.
//!
//! The cost on the cached path, without the access log, is what the id
//! needs: reading the header (or counting one up) and echoing it. No span
//! is made then: a span the log level keeps costs two allocations and its
//! formatted fields per request, which is the access log's price, paid when
//! it is asked for (or when debug logging is on). Without it, the few lines
//! a request can log at `info` and above (a stale answer after a source
//! failure, an invalidation) do not name the request; the id still reaches
//! the client and the upstream.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use http::header::{AGE, AUTHORIZATION, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, ETAG, IF_NONE_MATCH, VARY};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use serde::Serialize;
use sha2::{Digest, Sha256};
use telemetry::{CacheStatus, Metrics};
use tracing::Instrument;

use bytes::{BufMut, Bytes, BytesMut};

use crate::body::Body;
use crate::encoding::{self, Encoding};
use crate::error::ApiError;
use crate::request_context::{REQUEST_ID, RequestContext};
use crate::service::{Answer, Looked, Origin, Service};
use crate::wallet::Wallet;

/// RFC 9211's response header.
static CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");
/// The name this cache gives itself in `Cache-Status`.
const CACHE_NAME: &str = "positions-api";

const POSITIONS_ROUTE: &str = "/v4/positions/{wallet}";
const ALL_POSITIONS_ROUTE: &str = "/v4/positions";
const POSITIONS_PREFIX: &str = "/v4/positions/";
/// The headers of a wallet's answer: `Content-Type`, `Content-Encoding`,
/// `Vary`, `ETag`, `Age`, `Cache-Control`, `Cache-Status` and the request
/// id.
const ANSWER_HEADERS: usize = 8;

/// Where [`App::route_now`] leaves a request.
#[expect(
    clippy::large_enum_variant,
    reason = "made and matched at once on the stack; boxing the answer would allocate on the hot path"
)]
enum Routed {
    /// Answered from tier 1: the route, how the cache took part, the
    /// response.
    Now((&'static str, CacheStatus, Result<HttpResponse, ApiError>)),
    /// A wallet's answer that waits for tier 2 or a load.
    Load { wallet: Wallet, force: bool, looked: Looked },
    /// Anything else.
    Elsewhere,
}

/// The source revision this binary was built from (`build.rs`), or
/// `unknown` outside a git checkout.
const REVISION: &str = env!("POSITIONS_API_REVISION");

/// The application behind the HTTP server: the service plus what the
/// routes need around it.
#[derive(Debug)]
pub struct App {
    service: Service,
    metrics: Arc<Metrics>,
    admin_token: Option<String>,
    cache_control: HeaderValue,
    ready: AtomicBool,
    warming: AtomicBool,
    access_log: bool,
    /// The series of the route that carries nearly all traffic, one per
    /// cache outcome a 200 can have, indexed by [`positions_ok_index`]:
    /// recording an answer is then an index, with no lookup.
    positions_ok: [telemetry::HttpSeries; 4],
}

type HttpResponse = Response<Body>;

/// The routes a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteSet {
    /// Every route: the one listener, or the admin listener (`ADMIN_BIND`).
    All,
    /// Every route but the admin ones (`DELETE` and `/metrics`), which
    /// answer 404 as if they did not exist: the public listener when the
    /// admin routes have a listener of their own.
    Public,
}

impl App {
    /// An application serving `service`, recording into `metrics`; DELETE
    /// routes need `admin_token` as a bearer token, and are off without one.
    pub fn new(service: Service, metrics: Arc<Metrics>, admin_token: Option<String>) -> Self {
        let cache_control = if service.cache_enabled() {
            let policy = service.policy();
            let value = format!(
                "max-age={}, stale-while-revalidate={}, stale-if-error={}",
                policy.ttl().as_secs(),
                policy.stale_while_revalidate_window().as_secs(),
                policy.stale_if_error_window().as_secs()
            );
            HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("no-cache"))
        } else {
            HeaderValue::from_static("no-store")
        };
        let positions_ok = [CacheStatus::Hit, CacheStatus::Stale, CacheStatus::Miss, CacheStatus::Bypass]
            .map(|cache| metrics.http.series(POSITIONS_ROUTE, telemetry::Method::Get, 200, cache));
        metrics.set_build_info(env!("CARGO_PKG_VERSION"), REVISION);
        Self {
            service,
            metrics,
            admin_token,
            cache_control,
            ready: AtomicBool::new(true),
            warming: AtomicBool::new(false),
            access_log: false,
            positions_ok,
        }
    }

    /// The application with the access log on or off (`ACCESS_LOG`; off
    /// by default).
    #[must_use]
    pub fn with_access_log(mut self, on: bool) -> Self {
        self.access_log = on;
        self
    }

    /// The service.
    pub fn service(&self) -> &Service {
        &self.service
    }

    /// Marks the application ready or not; `/readyz` reports it. It turns
    /// unready when shutdown begins, so load balancers stop sending before
    /// the listener closes.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Marks the memory tier as warming up after a start, or done; while it
    /// is, `/readyz` answers 503 (`warming up`), so a rolling restart sends
    /// no traffic to a cold replica. Apart from [`set_ready`](Self::set_ready),
    /// so that a warm-up ending late cannot make a replica that is shutting
    /// down ready again.
    pub fn set_warming(&self, warming: bool) {
        self.warming.store(warming, Ordering::Relaxed);
    }

    /// Whether the memory tier is still warming up after a start.
    pub fn is_warming(&self) -> bool {
        self.warming.load(Ordering::Relaxed)
    }

    /// Answers one request, on any route.
    pub async fn handle<B>(&self, request: Request<B>) -> HttpResponse {
        self.handle_on(request, RouteSet::All).await
    }

    /// Answers one request that came in on a listener serving `routes`.
    pub async fn handle_on<B>(&self, request: Request<B>, routes: RouteSet) -> HttpResponse {
        let started = Instant::now();
        let method = request.method().clone();
        let context = RequestContext::from_headers(request.headers());
        // The only allocation the id costs, for a generated one: the header.
        let request_id = context.id_header();
        // A span only when its lines are wanted: see the module's docs.
        let span = if self.access_log || tracing::enabled!(tracing::Level::DEBUG) {
            tracing::info_span!("request", request_id = context.id(), trace_id = context.trace_id())
        } else {
            tracing::Span::none()
        };
        // Most answers are tier-1 hits, which wait for nothing: they are
        // made here, without building the route's future. That future is as
        // large as its largest branch (a load from the source), and moving
        // it into the request's scope and span copied all of it on every
        // request; the answers that must wait build it in a box, where only
        // a pointer moves. `cargo xtask bench --only cpu` counts the
        // instructions.
        let now = context.sync_scope(|| span.in_scope(|| self.route_now(&request)));
        let (route, cache, result) = match now {
            Routed::Now(done) => done,
            Routed::Load { wallet, force, looked } => {
                let loading = Box::write(Box::new_uninit(), self.load_positions(wallet, force, looked, &request));
                context.scope(Box::into_pin(loading)).instrument(span.clone()).await
            }
            Routed::Elsewhere => {
                let routing = Box::write(Box::new_uninit(), self.route(&request, routes));
                context.scope(Box::into_pin(routing)).instrument(span.clone()).await
            }
        };
        // For HEAD, hyper sends the headers (Content-Length included) and
        // drops the body.
        let mut response = result.unwrap_or_else(|e| e.to_response());
        let status = response.status().as_u16();
        let elapsed = started.elapsed();
        if let Some(index) = positions_ok_index(route, &method, status, cache) {
            self.positions_ok[index].observe(elapsed);
        } else {
            let method = telemetry::Method::from_name(method.as_str());
            self.metrics.http.observe(route, method, status, cache, elapsed);
        }
        if self.access_log {
            let bytes = hyper::body::Body::size_hint(response.body()).exact().unwrap_or(0);
            // The coding the body went out in: what a client's decoder saw.
            let encoding = response.headers().get(CONTENT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("identity");
            span.in_scope(|| {
                tracing::info!(
                    target: "access",
                    method = method.as_str(),
                    route,
                    status,
                    cache = cache.as_str(),
                    duration_ms = elapsed.as_secs_f64() * 1000.0,
                    bytes,
                    encoding,
                    request_id = request_id.to_str().unwrap_or_default(),
                    "request"
                );
            });
        }
        response.headers_mut().insert(REQUEST_ID.clone(), request_id);
        response
    }

    async fn route<B>(
        &self,
        request: &Request<B>,
        routes: RouteSet,
    ) -> (&'static str, CacheStatus, Result<HttpResponse, ApiError>) {
        if let Err(e) = host_is_valid(request) {
            return (telemetry::HttpMetrics::UNMATCHED_ROUTE, CacheStatus::None, Err(e));
        }
        let path = request.uri().path();
        let method = request.method();
        if routes == RouteSet::Public && is_admin_route(path, method) {
            return (
                telemetry::HttpMetrics::UNMATCHED_ROUTE,
                CacheStatus::None,
                Err(ApiError::NotFound(shorten(path))),
            );
        }
        let read = method == Method::GET || method == Method::HEAD;
        let not_allowed = |allow| Err(ApiError::MethodNotAllowed { method: method.to_string(), allow });
        if let Some(wallet) = path.strip_prefix(POSITIONS_PREFIX) {
            let (cache, result) = match *method {
                Method::GET | Method::HEAD => self.get_positions(wallet, request).await,
                Method::DELETE => (CacheStatus::None, self.delete_positions(request, wallet).await),
                _ => (CacheStatus::None, not_allowed("GET, HEAD, DELETE")),
            };
            return (POSITIONS_ROUTE, cache, result);
        }
        let (route, result) = match path {
            ALL_POSITIONS_ROUTE => match *method {
                Method::DELETE => (ALL_POSITIONS_ROUTE, self.delete_all(request).await),
                _ => (ALL_POSITIONS_ROUTE, not_allowed("DELETE")),
            },
            "/health" if read => ("/health", Ok(self.health())),
            "/livez" if read => ("/livez", Ok(json(StatusCode::OK, &Status { status: "ok" }))),
            "/readyz" if read => ("/readyz", Ok(self.readyz())),
            "/metrics" if read => ("/metrics", Ok(self.metrics(request))),
            "/health" | "/livez" | "/readyz" | "/metrics" => (route_name(path), not_allowed("GET, HEAD")),
            _ => (telemetry::HttpMetrics::UNMATCHED_ROUTE, Err(ApiError::NotFound(shorten(path)))),
        };
        (route, CacheStatus::None, result)
    }

    /// A wallet's positions, and how the cache took part: `none` for a
    /// request refused before the lookup, and a failed load a `miss` (or
    /// a `bypass` with caching off), since it waited for the source.
    async fn get_positions<B>(
        &self,
        wallet: &str,
        request: &Request<B>,
    ) -> (CacheStatus, Result<HttpResponse, ApiError>) {
        let (wallet, force) = match Wallet::parse(wallet).map_err(ApiError::from).and_then(|wallet| {
            let force = refresh_requested(request.uri().query())?;
            Ok((wallet, force))
        }) {
            Ok(parsed) => parsed,
            Err(e) => return (CacheStatus::None, Err(e)),
        };
        let answered = self.service.positions(&wallet, force).await;
        self.positions_answer(answered, request.headers())
    }

    /// A wallet's positions when tier 1 answers on its own, or what the
    /// answer must wait for. Every other request, and a request for
    /// positions that is refused (a bad host, wallet or query), is routed
    /// [`Elsewhere`](Routed::Elsewhere), by [`route`](Self::route). A
    /// `GET` of a wallet is never an admin route, so the route set does not
    /// matter here.
    fn route_now<B>(&self, request: &Request<B>) -> Routed {
        let method = request.method();
        let Some(wallet) = request.uri().path().strip_prefix(POSITIONS_PREFIX) else {
            return Routed::Elsewhere;
        };
        if !(method == Method::GET || method == Method::HEAD) || host_is_valid(request).is_err() {
            return Routed::Elsewhere;
        }
        let (Ok(wallet), Ok(force)) = (Wallet::parse(wallet), refresh_requested(request.uri().query())) else {
            return Routed::Elsewhere;
        };
        match self.service.from_memory(&wallet, force) {
            Ok(answer) => {
                let (cache, result) = self.positions_answer(Ok(answer), request.headers());
                Routed::Now((POSITIONS_ROUTE, cache, result))
            }
            Err(looked) => Routed::Load { wallet, force, looked },
        }
    }

    /// The rest of a wallet's answer after [`route_now`](Self::route_now)
    /// found that it has to wait: tier 2, or a load.
    async fn load_positions<B>(
        &self,
        wallet: Wallet,
        force: bool,
        looked: Looked,
        request: &Request<B>,
    ) -> (&'static str, CacheStatus, Result<HttpResponse, ApiError>) {
        let answered = self.service.positions_beyond_memory(&wallet, force, looked).await;
        let (cache, result) = self.positions_answer(answered, request.headers());
        (POSITIONS_ROUTE, cache, result)
    }

    /// The response to a wallet's answer, and how the cache took part.
    fn positions_answer(
        &self,
        answered: Result<Answer, ApiError>,
        request: &HeaderMap,
    ) -> (CacheStatus, Result<HttpResponse, ApiError>) {
        match answered {
            Ok(answer) => (cache_status(&answer), Ok(self.positions_response(&answer, request))),
            Err(e) if self.service.cache_enabled() => (CacheStatus::Miss, Err(e)),
            Err(e) => (CacheStatus::Bypass, Err(e)),
        }
    }

    /// A wallet's answer: `304 Not Modified` if the request already holds
    /// this entry (`If-None-Match`), else the body in the best coding the
    /// request accepts (see [`encoding`](crate::encoding)).
    fn positions_response(&self, answer: &Answer, request: &HeaderMap) -> HttpResponse {
        let age = answer.age.as_secs();
        let etag = answer.snapshot.etag_header();
        let not_modified = if_none_match(request, answer.snapshot.etag());
        let (body, encoding) = if not_modified {
            (Body::default(), Encoding::Identity)
        } else {
            let accepted = encoding::negotiate(request).unwrap_or(Encoding::Identity);
            answer.snapshot.encoded_body(accepted, answer.cached, answer.stale, age)
        };
        let mut response = Response::new(body);
        if not_modified {
            *response.status_mut() = StatusCode::NOT_MODIFIED;
        }
        let headers = response.headers_mut();
        // Room for every header set here and the request id set after:
        // filling an empty map grew it once per answer.
        headers.reserve(ANSWER_HEADERS);
        if !not_modified {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        if let Some(coding) = encoding.header() {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static(coding));
        }
        headers.insert(VARY, HeaderValue::from_static("accept-encoding"));
        headers.insert(ETAG, etag.clone());
        headers.insert(AGE, HeaderValue::from(age));
        headers.insert(CACHE_CONTROL, self.cache_control.clone());
        if let Ok(status) = HeaderValue::from_maybe_shared(self.cache_status(answer)) {
            headers.insert(CACHE_STATUS.clone(), status);
        }
        response
    }

    /// The RFC 9211 `Cache-Status` value for an answer, built in one
    /// buffer (it is on every answer's path).
    fn cache_status(&self, answer: &Answer) -> Bytes {
        let ttl = self.service.policy().ttl().as_secs().cast_signed() - answer.age.as_secs().cast_signed();
        let hit = |detail: &str| {
            let mut value = BytesMut::with_capacity(64);
            value.put_slice(CACHE_NAME.as_bytes());
            value.put_slice(b"; hit; ttl=");
            value.put_slice(itoa::Buffer::new().format(ttl).as_bytes());
            value.put_slice(b"; detail=");
            value.put_slice(detail.as_bytes());
            value.freeze()
        };
        match answer.origin {
            Origin::Memory => hit("memory"),
            Origin::Redis => hit("redis"),
            Origin::MemoryStaleIfError => hit("memory-stale-if-error"),
            Origin::Source { forced: false } => Bytes::from_static(b"positions-api; fwd=miss; stored"),
            Origin::Source { forced: true } => Bytes::from_static(b"positions-api; fwd=request; stored"),
            Origin::Uncached => Bytes::from_static(b"positions-api; fwd=bypass"),
        }
    }

    async fn delete_positions<B>(&self, request: &Request<B>, wallet: &str) -> Result<HttpResponse, ApiError> {
        self.authorize(request)?;
        let wallet = Wallet::parse(wallet)?;
        let removed = self.service.invalidate(&wallet).await?;
        tracing::info!(%wallet, removed, request_id = RequestContext::current_id(), "wallet invalidated");
        Ok(json(StatusCode::OK, &DeletedWallet { wallet: wallet.as_str(), removed }))
    }

    async fn delete_all<B>(&self, request: &Request<B>) -> Result<HttpResponse, ApiError> {
        self.authorize(request)?;
        let pattern = query_param(request.uri().query(), "pattern")?.unwrap_or(Cow::Borrowed("*"));
        let pattern = pattern.as_ref();
        let removed = self.service.invalidate_matching(pattern).await?;
        tracing::info!(pattern, removed, request_id = RequestContext::current_id(), "wallets invalidated");
        Ok(json(StatusCode::OK, &DeletedPattern { pattern, removed, partial: false }))
    }

    /// Checks the bearer token. The scheme is matched case-insensitively
    /// (RFC 9110 §11.1), and the token is compared through SHA-256 digests
    /// in constant time, so neither its bytes nor its length leak through
    /// timing.
    fn authorize<B>(&self, request: &Request<B>) -> Result<(), ApiError> {
        let Some(expected) = &self.admin_token else {
            return Err(ApiError::AdminDisabled);
        };
        let given = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .ok_or(ApiError::Unauthorized)?;
        if tokens_match(given, expected) { Ok(()) } else { Err(ApiError::Forbidden) }
    }

    fn health(&self) -> HttpResponse {
        let health = self.service.health();
        let body = HealthBody {
            status: if health.degraded { "degraded" } else { "ok" },
            cache_stats: HealthCacheStats {
                enabled: health.enabled,
                backend: health.backend,
                hit_rate_pct: health.hit_rate_pct,
                lru_size: health.lru_size,
                active_refresh_tasks: health.active_refresh_tasks,
                source: health.source,
            },
        };
        json(StatusCode::OK, &body)
    }

    fn readyz(&self) -> HttpResponse {
        if !self.ready.load(Ordering::Relaxed) {
            json(StatusCode::SERVICE_UNAVAILABLE, &Status { status: "shutting down" })
        } else if self.warming.load(Ordering::Relaxed) {
            json(StatusCode::SERVICE_UNAVAILABLE, &Status { status: "warming up" })
        } else {
            json(StatusCode::OK, &Status { status: "ready" })
        }
    }

    /// `OpenMetrics` for a scraper that asks for it (Prometheus does), the
    /// classic text format 0.0.4 for everyone else (`curl`, `promtool check
    /// metrics`); `Vary: Accept` since the body depends on it.
    fn metrics<B>(&self, request: &Request<B>) -> HttpResponse {
        self.service.update_gauges();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let figures = runtime.metrics();
            self.metrics.runtime.set(figures.num_workers(), figures.num_alive_tasks(), figures.global_queue_depth());
        }
        let accept = request.headers().get(http::header::ACCEPT).and_then(|v| v.to_str().ok());
        let format = telemetry::Format::negotiate(accept);
        let mut response = Response::new(Body::full(self.metrics.encode_as(format)));
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
        response.headers_mut().insert(http::header::VARY, HeaderValue::from_static("accept"));
        response
    }
}

#[derive(Serialize)]
struct Status {
    status: &'static str,
}

#[derive(Serialize)]
struct DeletedWallet<'a> {
    wallet: &'a str,
    removed: bool,
}

#[derive(Serialize)]
struct DeletedPattern<'a> {
    pattern: &'a str,
    removed: u64,
    /// Always `false` here: a partial deletion answers 503 with
    /// `partial: true` (see [`ApiError::PartialDeletion`]).
    partial: bool,
}

/// `/health`'s body.
#[derive(Serialize)]
struct HealthBody {
    status: &'static str,
    cache_stats: HealthCacheStats,
}

#[derive(Serialize)]
struct HealthCacheStats {
    enabled: bool,
    backend: &'static str,
    hit_rate_pct: f64,
    lru_size: usize,
    active_refresh_tasks: usize,
    source: &'static str,
}

/// How the cache took part in an answer, by where it came from.
fn cache_status(answer: &Answer) -> CacheStatus {
    match answer.origin {
        Origin::Memory | Origin::Redis if answer.stale => CacheStatus::Stale,
        Origin::Memory | Origin::Redis => CacheStatus::Hit,
        Origin::MemoryStaleIfError => CacheStatus::Stale,
        Origin::Source { .. } => CacheStatus::Miss,
        Origin::Uncached => CacheStatus::Bypass,
    }
}

/// The index in `App::positions_ok` of a request's series, if it is one of
/// them: a `GET` of a wallet's positions answered 200.
fn positions_ok_index(route: &'static str, method: &Method, status: u16, cache: CacheStatus) -> Option<usize> {
    if !(status == 200 && *method == Method::GET && route == POSITIONS_ROUTE) {
        return None;
    }
    match cache {
        CacheStatus::Hit => Some(0),
        CacheStatus::Stale => Some(1),
        CacheStatus::Miss => Some(2),
        CacheStatus::Bypass => Some(3),
        CacheStatus::None => None,
    }
}

fn json(status: StatusCode, body: &impl Serialize) -> HttpResponse {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Body::full(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// `?refresh=true` (or `1`, or a bare `refresh`); absent or `false`/`0`
/// means no.
fn refresh_requested(query: Option<&str>) -> Result<bool, ApiError> {
    match query_param(query, "refresh")?.as_deref() {
        None | Some("false" | "0") => Ok(false),
        Some("true" | "1" | "") => Ok(true),
        Some(other) => {
            Err(ApiError::BadRequest(format!("invalid refresh {:?}: expected true or false", shorten(other))))
        }
    }
}

/// The value of the first `name` in a query string, percent-decoded
/// (`%2A` is `*`). `+` is left as it is: no value this API takes contains
/// a space, and a glob may contain a literal `+`.
fn query_param<'q>(query: Option<&'q str>, name: &str) -> Result<Option<Cow<'q, str>>, ApiError> {
    let Some(raw) = query.and_then(|query| {
        query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == name).then_some(value)
        })
    }) else {
        return Ok(None);
    };
    percent_decode(raw)
        .map(Some)
        .ok_or_else(|| ApiError::BadRequest(format!("invalid {name} {:?}: bad percent-encoding", shorten(raw))))
}

/// Decodes `%XX` escapes; `None` for a malformed escape or a result that
/// is not UTF-8.
fn percent_decode(raw: &str) -> Option<Cow<'_, str>> {
    if !raw.contains('%') {
        return Some(Cow::Borrowed(raw));
    }
    let mut bytes = Vec::with_capacity(raw.len());
    let mut rest = raw.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        if byte == b'%' {
            let hex = tail.get(..2)?;
            let hex = std::str::from_utf8(hex).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(byte);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok().map(Cow::Owned)
}

/// The token of an `Authorization: Bearer TOKEN` value, with the scheme in
/// any letter case and any run of spaces after it.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim_start();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Whether a request is for a route that [`RouteSet::Public`] leaves out.
fn is_admin_route(path: &str, method: &Method) -> bool {
    path == "/metrics"
        || (method == Method::DELETE && (path == ALL_POSITIONS_ROUTE || path.starts_with(POSITIONS_PREFIX)))
}

fn route_name(path: &str) -> &'static str {
    match path {
        "/health" => "/health",
        "/livez" => "/livez",
        "/readyz" => "/readyz",
        _ => "/metrics",
    }
}

/// Whether the request's `If-None-Match` names `etag` (or is `*`), by weak
/// comparison (RFC 9110 §13.1.2: `W/` is ignored on either side); several
/// headers and comma-separated lists are read as one list.
fn if_none_match(request: &HeaderMap, etag: &str) -> bool {
    fn opaque(tag: &str) -> &str {
        tag.strip_prefix("W/").unwrap_or(tag)
    }
    let ours = opaque(etag);
    request
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || opaque(tag) == ours
        })
}

/// A path or value cut to a length fit for an error message.
fn shorten(text: &str) -> String {
    const LIMIT: usize = 100;
    match text.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// RFC 9112 §3.2: an HTTP/1.1 request carries exactly one `Host`, and no
/// request more than one. HTTP/2 names the authority in `:authority`
/// instead, and HTTP/1.0 predates `Host`.
fn host_is_valid<B>(request: &Request<B>) -> Result<(), ApiError> {
    let mut hosts = request.headers().get_all(http::header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if request.version() == http::Version::HTTP_11 => {
            Err(ApiError::BadRequest("missing Host header: HTTP/1.1 requires one".into()))
        }
        (Some(_), Some(_)) => Err(ApiError::BadRequest("more than one Host header".into())),
        _ => Ok(()),
    }
}

/// Whether two tokens are equal, in time that depends on neither: the
/// SHA-256 digests, of fixed length, are compared byte by byte without an
/// early exit.
fn tokens_match(given: &str, expected: &str) -> bool {
    let (given, expected) = (Sha256::digest(given.as_bytes()), Sha256::digest(expected.as_bytes()));
    given.iter().zip(expected.iter()).fold(0_u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refresh_flag_is_parsed_strictly() {
        assert_eq!(refresh_requested(None), Ok(false));
        assert_eq!(refresh_requested(Some("refresh=true")), Ok(true));
        assert_eq!(refresh_requested(Some("a=1&refresh=1")), Ok(true));
        assert_eq!(refresh_requested(Some("refresh=false")), Ok(false));
        assert_eq!(refresh_requested(Some("other=true")), Ok(false));
        assert!(refresh_requested(Some("refresh=maybe")).is_err());
    }

    #[test]
    fn http11_requests_need_exactly_one_host() {
        let request = |version, hosts: &[&str]| {
            let mut builder = Request::get("/health").version(version);
            for host in hosts {
                builder = builder.header(http::header::HOST, *host);
            }
            builder.body(()).expect("request")
        };
        assert!(host_is_valid(&request(http::Version::HTTP_11, &["a"])).is_ok());
        assert!(host_is_valid(&request(http::Version::HTTP_11, &[])).is_err());
        assert!(host_is_valid(&request(http::Version::HTTP_11, &["a", "b"])).is_err());
        assert!(host_is_valid(&request(http::Version::HTTP_2, &[])).is_ok(), ":authority stands in");
        assert!(host_is_valid(&request(http::Version::HTTP_2, &["a", "a"])).is_err());
        assert!(host_is_valid(&request(http::Version::HTTP_10, &[])).is_ok());
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(tokens_match("secret", "secret"));
        assert!(!tokens_match("secret", "secreT"));
        assert!(!tokens_match("secret", "secret2"));
        assert!(!tokens_match("", "x"));
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER   abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearerabc"), None);
    }

    #[test]
    fn query_values_are_percent_decoded() {
        assert_eq!(query_param(Some("pattern=0x5%2A"), "pattern"), Ok(Some(Cow::Borrowed("0x5*"))));
        assert_eq!(query_param(Some("pattern=0x5%2a&x=1"), "pattern"), Ok(Some(Cow::Borrowed("0x5*"))));
        assert_eq!(query_param(Some("pattern=a+b"), "pattern"), Ok(Some(Cow::Borrowed("a+b"))));
        assert_eq!(query_param(Some("refresh=%74rue"), "refresh"), Ok(Some(Cow::Borrowed("true"))));
        assert_eq!(query_param(None, "pattern"), Ok(None));
        for bad in ["pattern=%", "pattern=%2", "pattern=%zz", "pattern=%ff"] {
            assert!(query_param(Some(bad), "pattern").is_err(), "{bad}");
        }
    }
}
