//! HTTP requests answered and how long they took, by route template,
//! method, status code and cache outcome.
//!
//! Cardinality is bounded by construction: the route is a `&'static str`
//! (a template such as `/v4/positions/{wallet}`, never the request's path,
//! which would make one series per wallet), the method is a closed enum with
//! a catch-all, the status is a number, and the cache outcome is a closed
//! enum of five values. The `cache` label is what makes "p99 of cached
//! answers" one query: answers from the cache take microseconds, answers
//! that waited for the source take the source's time, and a histogram
//! that mixed them would show neither.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// An HTTP request method, as the `method` label.
///
/// The methods of RFC 9110 and PATCH; anything else is [`Method::Other`], so
/// a client inventing methods cannot create series.
///
/// # Examples
///
/// ```
/// use telemetry::Method;
///
/// assert_eq!(Method::from_name("GET"), Method::Get);
/// assert_eq!(Method::from_name("BREW"), Method::Other);
/// assert_eq!(Method::Other.as_str(), "_OTHER");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`.
    Get,
    /// `HEAD`.
    Head,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
    /// `DELETE`.
    Delete,
    /// `CONNECT`.
    Connect,
    /// `OPTIONS`.
    Options,
    /// `TRACE`.
    Trace,
    /// `PATCH`.
    Patch,
    /// Any other method, rendered `_OTHER` as OpenTelemetry's HTTP
    /// conventions do.
    Other,
}

impl Method {
    /// The method named `name`, as it appears on the request line. Method
    /// names are case-sensitive (RFC 9110, section 9.1), so `get` is
    /// [`Method::Other`].
    pub fn from_name(name: &str) -> Self {
        match name {
            "GET" => Self::Get,
            "HEAD" => Self::Head,
            "POST" => Self::Post,
            "PUT" => Self::Put,
            "DELETE" => Self::Delete,
            "CONNECT" => Self::Connect,
            "OPTIONS" => Self::Options,
            "TRACE" => Self::Trace,
            "PATCH" => Self::Patch,
            _ => Self::Other,
        }
    }

    /// The label value: the method's name, or `_OTHER`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Head => "HEAD",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Delete => "DELETE",
            Self::Connect => "CONNECT",
            Self::Options => "OPTIONS",
            Self::Trace => "TRACE",
            Self::Patch => "PATCH",
            Self::Other => "_OTHER",
        }
    }
}

label_value_by_as_str!(Method);

/// How the cache took part in answering a request, as the `cache` label.
///
/// # Examples
///
/// ```
/// use telemetry::CacheStatus;
///
/// assert_eq!(CacheStatus::Stale.as_str(), "stale");
/// assert_eq!(CacheStatus::ALL.len(), 5);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheStatus {
    /// Answered at once from a cache tier, within the TTL.
    Hit,
    /// Answered at once from a cache tier with data past its TTL: during
    /// stale-while-revalidate, or as a fail-safe after the source failed.
    Stale,
    /// The request waited for a load from the source (a cold wallet or a
    /// forced refresh), or failed after trying one.
    Miss,
    /// Caching is off: every request loads from the source.
    Bypass,
    /// No cache lookup happened: any route but the positions of a wallet,
    /// and requests refused before the lookup (a malformed wallet).
    None,
}

impl CacheStatus {
    /// Every outcome, in declaration order.
    pub const ALL: [Self; 5] = [Self::Hit, Self::Stale, Self::Miss, Self::Bypass, Self::None];

    /// The label value: the outcome in lower case.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Stale => "stale",
            Self::Miss => "miss",
            Self::Bypass => "bypass",
            Self::None => "none",
        }
    }
}

label_value_by_as_str!(CacheStatus);

/// The HTTP request counter and duration histogram.
///
/// Reached as [`Metrics::http`](crate::Metrics::http). Clones share the same
/// series.
///
/// Each [`observe`](Self::observe) looks its label set up in two families
/// with `Family::get_or_create`, which takes a read lock on each family's map
/// (a write lock the first time a label set is seen), then does one atomic
/// add and one histogram update under the histogram's mutex. The label set
/// is a small `Copy` value, so the lookup hashes a pointer, a length and three
/// small integers, and allocates nothing.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use telemetry::{CacheStatus, HttpMetrics, Method, Metrics};
///
/// let metrics = Metrics::new();
/// let route = "/v4/positions/{wallet}";
/// metrics.http.observe(route, Method::Get, 200, CacheStatus::Hit, Duration::from_micros(120));
/// metrics.http.observe(HttpMetrics::UNMATCHED_ROUTE, Method::Get, 404, CacheStatus::None, Duration::from_micros(30));
///
/// let text = metrics.encode();
/// assert!(text.contains(r#"http_requests_total{route="/v4/positions/{wallet}",method="GET",status="200",cache="hit"} 1"#));
/// assert!(text.contains(r#"http_requests_total{route="unmatched",method="GET",status="404",cache="none"} 1"#));
/// ```
#[derive(Debug, Clone)]
pub struct HttpMetrics {
    requests: Family<HttpLabels, Counter>,
    duration: Family<HttpLabels, Histogram>,
}

impl HttpMetrics {
    /// The route to report for a request that matched no route (a 404), so
    /// that scanners probing random paths add one series, not one per path.
    pub const UNMATCHED_ROUTE: &'static str = "unmatched";

    /// Upper bounds of the duration buckets, in seconds: 50 µs to 10 s.
    /// A request answered from tier 1 takes well under a millisecond, so the
    /// low end is fine-grained enough to see it move; a request that waits
    /// for the source takes hundreds of milliseconds, up to the load
    /// timeout. Spaced 1, 2.5, 5 per decade.
    pub const BUCKETS: [f64; 17] = [
        0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        10.0,
    ];

    pub(crate) fn register(registry: &mut Registry) -> Self {
        let requests = Family::<HttpLabels, Counter>::default();
        let duration = Family::<HttpLabels, Histogram>::new_with_constructor(histogram);
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template, method, status code and cache outcome",
            requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time from receiving an HTTP request to answering it, by route template, method, status code and cache outcome",
            Unit::Seconds,
            duration.clone(),
        );
        Self { requests, duration }
    }

    /// Records one request to `route` (a template, or
    /// [`UNMATCHED_ROUTE`](Self::UNMATCHED_ROUTE)) answered with `status`
    /// after `elapsed`, the cache having taken part as `cache` says.
    pub fn observe(&self, route: &'static str, method: Method, status: u16, cache: CacheStatus, elapsed: Duration) {
        let labels = HttpLabels { route, method, status, cache };
        self.requests.get_or_create(&labels).inc();
        self.duration.get_or_create(&labels).observe(elapsed.as_secs_f64());
    }

    /// The series of one route, method and status, looked up once: for a
    /// hot path, recording through the handle skips the two family lookups
    /// (each a read lock and a hash) that [`observe`](Self::observe) makes.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use telemetry::{CacheStatus, Method, Metrics};
    ///
    /// let metrics = Metrics::new();
    /// let route = "/v4/positions/{wallet}";
    /// let hit = metrics.http.series(route, Method::Get, 200, CacheStatus::Hit);
    /// hit.observe(Duration::from_micros(80));
    /// metrics.http.observe(route, Method::Get, 200, CacheStatus::Hit, Duration::from_micros(90));
    /// assert!(metrics.encode().contains(r#"http_requests_total{route="/v4/positions/{wallet}",method="GET",status="200",cache="hit"} 2"#));
    /// ```
    pub fn series(&self, route: &'static str, method: Method, status: u16, cache: CacheStatus) -> HttpSeries {
        let labels = HttpLabels { route, method, status, cache };
        HttpSeries {
            requests: self.requests.get_or_create_owned(&labels),
            duration: self.duration.get_or_create_owned(&labels),
        }
    }
}

/// One route's, method's and status's series; see [`HttpMetrics::series`].
#[derive(Debug, Clone)]
pub struct HttpSeries {
    requests: Counter,
    duration: Histogram,
}

impl HttpSeries {
    /// Records one request answered after `elapsed`.
    pub fn observe(&self, elapsed: Duration) {
        self.requests.inc();
        self.duration.observe(elapsed.as_secs_f64());
    }
}

fn histogram() -> Histogram {
    Histogram::new(HttpMetrics::BUCKETS)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HttpLabels {
    route: &'static str,
    method: Method,
    status: u16,
    cache: CacheStatus,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Metrics;
    use crate::testing::sample;

    const WALLET_ROUTE: &str = "/v4/positions/{wallet}";

    #[test]
    fn labels_render_route_template_method_and_numeric_status() {
        let metrics = Metrics::new();
        metrics.http.observe(WALLET_ROUTE, Method::Get, 200, CacheStatus::Hit, Duration::from_micros(80));
        metrics.http.observe(WALLET_ROUTE, Method::Get, 200, CacheStatus::Hit, Duration::from_micros(95));
        metrics.http.observe(WALLET_ROUTE, Method::Delete, 401, CacheStatus::None, Duration::from_micros(20));
        let text = metrics.encode();
        assert_eq!(
            sample(
                &text,
                r#"http_requests_total{route="/v4/positions/{wallet}",method="GET",status="200",cache="hit"}"#
            ),
            Some(2.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"http_requests_total{route="/v4/positions/{wallet}",method="DELETE",status="401",cache="none"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"http_request_duration_seconds_count{route="/v4/positions/{wallet}",method="GET",status="200",cache="hit"}"#
            ),
            Some(2.0)
        );
    }

    #[test]
    fn cached_answers_and_loads_land_in_series_of_their_own() {
        let metrics = Metrics::new();
        metrics.http.observe(WALLET_ROUTE, Method::Get, 200, CacheStatus::Hit, Duration::from_micros(40));
        metrics.http.observe(WALLET_ROUTE, Method::Get, 200, CacheStatus::Stale, Duration::from_micros(60));
        metrics.http.observe(WALLET_ROUTE, Method::Get, 200, CacheStatus::Miss, Duration::from_millis(300));
        metrics.http.observe(WALLET_ROUTE, Method::Get, 502, CacheStatus::Miss, Duration::from_millis(90));
        let text = metrics.encode();
        let count = |status: &str, cache: &str| {
            sample(
                &text,
                &format!(
                    "http_request_duration_seconds_count{{route=\"{WALLET_ROUTE}\",method=\"GET\",status=\"{status}\",cache=\"{cache}\"}}"
                ),
            )
        };
        assert_eq!(count("200", "hit"), Some(1.0));
        assert_eq!(count("200", "stale"), Some(1.0));
        assert_eq!(count("200", "miss"), Some(1.0));
        assert_eq!(count("502", "miss"), Some(1.0));
        assert_eq!(count("200", "bypass"), None, "no series until used");
        let labels: Vec<&str> = CacheStatus::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(labels, ["hit", "stale", "miss", "bypass", "none"]);
    }

    #[test]
    fn a_cached_answer_lands_below_a_tenth_of_a_millisecond() {
        let metrics = Metrics::new();
        metrics.http.observe(WALLET_ROUTE, Method::Get, 200, CacheStatus::Hit, Duration::from_micros(40));
        metrics.http.observe(WALLET_ROUTE, Method::Get, 200, CacheStatus::Hit, Duration::from_micros(70));
        let text = metrics.encode();
        let bucket = |le: &str| {
            sample(
                &text,
                &format!(
                    "http_request_duration_seconds_bucket{{le=\"{le}\",route=\"{WALLET_ROUTE}\",method=\"GET\",status=\"200\",cache=\"hit\"}}"
                ),
            )
        };
        assert_eq!(bucket("0.00005"), Some(1.0), "40 µs is in the lowest bucket");
        assert_eq!(bucket("0.0001"), Some(2.0), "70 µs is below 0.1 ms");
        assert_eq!(bucket("+Inf"), Some(2.0));
    }

    #[test]
    fn method_names_are_case_sensitive_and_unknown_ones_collapse() {
        assert_eq!(Method::from_name("DELETE"), Method::Delete);
        assert_eq!(Method::from_name("delete"), Method::Other);
        assert_eq!(Method::from_name("PROPFIND"), Method::Other);
        let all = [
            Method::Get,
            Method::Head,
            Method::Post,
            Method::Put,
            Method::Delete,
            Method::Connect,
            Method::Options,
            Method::Trace,
            Method::Patch,
        ];
        for method in all {
            assert_eq!(Method::from_name(method.as_str()), method, "round trip of {method:?}");
        }
    }

    #[test]
    fn buckets_are_increasing_and_span_fifty_microseconds_to_ten_seconds() {
        let buckets = HttpMetrics::BUCKETS;
        assert!(buckets.windows(2).all(|pair| pair[0] < pair[1]));
        assert!((buckets[0] - 50e-6).abs() < f64::EPSILON);
        assert!((buckets[buckets.len() - 1] - 10.0).abs() < f64::EPSILON);
    }
}
