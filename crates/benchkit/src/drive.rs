//! The load driver's modes, and what they share: sending a request, reading
//! what the service said about its answer, and tallying a run into the one
//! JSON object the `load` binary prints.
//!
//! - [`stampede`]: many connections, one request each for one URL,
//!   released together;
//! - [`zipf`]: requests for wallets drawn Zipf(alpha), at a fixed rate or
//!   from a closed loop of connections, for a duration;
//! - [`sweep`]: each wallet of a list once, a few at a time.
//!
//! Every answer's latency is recorded, and every answer of the service is
//! counted by status and by its `cached` and `stale` fields; anything that
//! is not an HTTP answer (refused connection, reset, timeout) is an error,
//! counted, with the first one's message kept.
//!
//! What it is not: a general HTTP benchmarking tool. The cached path's
//! throughput is measured with wrk, an established tool, and not with this.

pub mod stampede;
pub mod sweep;
pub mod zipf;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};

use crate::latency::{Latencies, Summary};

/// How long one request may take before it counts as an error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A pooled HTTP/1 client with `TCP_NODELAY`, as the bench's modes share.
pub type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// A client that keeps as many idle connections as were ever open, so a
/// steady load reuses them instead of reconnecting.
pub fn client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(connector)
}

/// One HTTP answer, as far as the bench cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The body's length in bytes.
    pub bytes: usize,
    /// What the body said, if it was a positions answer.
    pub fields: Option<Fields>,
}

/// What a positions answer says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fields {
    /// Whether it came from the cache.
    pub cached: bool,
    /// Whether it was past its TTL.
    pub stale: bool,
    /// How many positions it held.
    pub positions: usize,
}

impl Fields {
    /// Reads the fields of a positions body, or `None` if it is not one
    /// (an error body, or a server that is not the service).
    ///
    /// # Examples
    ///
    /// ```
    /// use benchkit::drive::Fields;
    ///
    /// let body = br#"{"wallet":"0xab","positions":[{"token":"t"},{"token":"u"}],"cached":true,"stale":false}"#;
    /// let fields = Fields::parse(body).unwrap();
    /// assert_eq!((fields.cached, fields.stale, fields.positions), (true, false, 2));
    /// assert_eq!(Fields::parse(br#"{"error":"overloaded"}"#), None);
    /// ```
    pub fn parse(body: &[u8]) -> Option<Self> {
        #[derive(Deserialize)]
        struct Body {
            positions: Vec<serde::de::IgnoredAny>,
            cached: bool,
            stale: bool,
        }
        let body: Body = serde_json::from_slice(body).ok()?;
        Some(Self { cached: body.cached, stale: body.stale, positions: body.positions.len() })
    }
}

/// Sends `GET uri` and reads the whole answer.
///
/// # Errors
///
/// A message for anything that is not an HTTP answer within
/// [`REQUEST_TIMEOUT`].
pub async fn get(client: &HttpClient, uri: Uri) -> Result<Answer, String> {
    read_answer(client.get(uri)).await
}

/// Awaits a response and reads its whole body, all within
/// [`REQUEST_TIMEOUT`].
///
/// # Errors
///
/// A message for anything that is not an HTTP answer in time.
pub async fn read_answer<E: std::error::Error + Send + Sync + 'static>(
    response: impl std::future::Future<Output = Result<http::Response<hyper::body::Incoming>, E>>,
) -> Result<Answer, String> {
    let exchange = async {
        // `{:#}` is anyhow's rendering of an error and its causes on one line.
        let response = response.await.map_err(|e| format!("{:#}", anyhow::Error::new(e)))?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.map_err(|e| format!("reading the body: {e}"))?.to_bytes();
        Ok(answer(status, &body))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {REQUEST_TIMEOUT:?}")))
}

/// An [`Answer`] from a status and a body.
pub fn answer(status: u16, body: &[u8]) -> Answer {
    Answer { status, bytes: body.len(), fields: if status == 200 { Fields::parse(body) } else { None } }
}

/// A run's answers and latencies, as they come in.
#[derive(Debug, Default)]
pub struct Tally {
    statuses: BTreeMap<u16, u64>,
    errors: u64,
    first_error: Option<String>,
    cached: u64,
    stale: u64,
    positions: u64,
    bytes: u64,
    all: Latencies,
    from_cache: Latencies,
    not_from_cache: Latencies,
}

impl Tally {
    /// Counts one request that took `latency` and ended in `outcome`.
    pub fn add(&mut self, latency: Duration, outcome: Result<Answer, String>) {
        match outcome {
            Ok(answer) => {
                *self.statuses.entry(answer.status).or_default() += 1;
                self.bytes += answer.bytes as u64;
                self.all.record(latency);
                match answer.fields {
                    Some(fields) => {
                        self.cached += u64::from(fields.cached);
                        self.stale += u64::from(fields.stale);
                        self.positions += fields.positions as u64;
                        if fields.cached {
                            self.from_cache.record(latency);
                        } else {
                            self.not_from_cache.record(latency);
                        }
                    }
                    None => self.not_from_cache.record(latency),
                }
            }
            Err(message) => {
                self.errors += 1;
                self.first_error.get_or_insert(message);
            }
        }
    }

    /// The report of the run, which took `elapsed` in all.
    pub fn report(&self, mode: &'static str, elapsed: Duration) -> Report {
        let answered: u64 = self.statuses.values().sum();
        let ok = self.statuses.get(&200).copied().unwrap_or(0);
        let mean = |total: u64, of: u64| if of == 0 { 0.0 } else { total as f64 / of as f64 };
        Report {
            mode,
            requests: answered + self.errors,
            elapsed_s: elapsed.as_secs_f64(),
            statuses: self.statuses.iter().map(|(s, n)| (s.to_string(), *n)).collect(),
            errors: self.errors,
            first_error: self.first_error.clone(),
            cached: self.cached,
            stale: self.stale,
            positions_mean: mean(self.positions, ok),
            body_bytes_mean: mean(self.bytes, answered),
            latency_ms: LatencyReport {
                all: self.all.summary(),
                cached: self.from_cache.summary(),
                not_cached: self.not_from_cache.summary(),
            },
            all_answered_ms: None,
            send_lag_ms: None,
        }
    }
}

/// What the `load` binary prints: one JSON object.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `stampede`, `zipf` or `sweep`.
    pub mode: &'static str,
    /// Requests sent, answered or not.
    pub requests: u64,
    /// Seconds from the first request to the last answer.
    pub elapsed_s: f64,
    /// Answers by status code.
    pub statuses: BTreeMap<String, u64>,
    /// Requests that got no HTTP answer.
    pub errors: u64,
    /// The first such error's message.
    pub first_error: Option<String>,
    /// Answers that said `"cached": true`.
    pub cached: u64,
    /// Answers that said `"stale": true`.
    pub stale: u64,
    /// The mean number of positions per `200` answer.
    pub positions_mean: f64,
    /// The mean body length of the answers, in bytes.
    pub body_bytes_mean: f64,
    /// Latency percentiles: of every answer, of those that said they came
    /// from the cache, and of the rest (loads, and non-positions answers).
    pub latency_ms: LatencyReport,
    /// Stampede only: milliseconds from the release to the last answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub all_answered_ms: Option<f64>,
    /// Zipf at a fixed rate only: how late the driver sent each request
    /// after its scheduled time (its timer and its CPU, not the server's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_lag_ms: Option<Summary>,
}

/// Latency percentiles of a run, split by where the answer came from.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LatencyReport {
    /// Every answer.
    pub all: Summary,
    /// Answers with `"cached": true`.
    pub cached: Summary,
    /// Every other answer.
    pub not_cached: Summary,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn positions_answer(cached: bool, stale: bool) -> Answer {
        let body = format!(
            r#"{{"wallet":"0xab","positions":[{{"token":"t","quantity":"1"}}],"computed_at":"2026-11-24T11:00:00Z","cached":{cached},"stale":{stale},"age_seconds":3}}"#
        );
        answer(200, body.as_bytes())
    }

    #[test]
    fn answers_are_counted_by_status_and_freshness() {
        let mut tally = Tally::default();
        tally.add(Duration::from_micros(100), Ok(positions_answer(true, false)));
        tally.add(Duration::from_micros(120), Ok(positions_answer(true, true)));
        tally.add(Duration::from_millis(300), Ok(positions_answer(false, false)));
        tally.add(Duration::from_millis(1), Ok(answer(503, br#"{"error":"overloaded","message":"x"}"#)));
        tally.add(Duration::from_secs(30), Err("connection refused".into()));
        tally.add(Duration::from_secs(30), Err("reset".into()));
        let report = tally.report("zipf", Duration::from_secs(2));
        assert_eq!(report.requests, 6);
        assert_eq!(report.statuses, BTreeMap::from([("200".into(), 3), ("503".into(), 1)]));
        assert_eq!((report.errors, report.first_error.as_deref()), (2, Some("connection refused")));
        assert_eq!((report.cached, report.stale), (2, 1));
        assert!((report.positions_mean - 1.0).abs() < f64::EPSILON);
        assert_eq!(report.latency_ms.all.count, 4, "errors have no latency");
        assert_eq!(report.latency_ms.cached.count, 2);
        assert_eq!(report.latency_ms.not_cached.count, 2);
        assert!(report.latency_ms.cached.max_ms < 0.2);
        let json = serde_json::to_value(&report).expect("serializes");
        assert_eq!(json["latency_ms"]["all"]["count"], 4);
        assert!(json.get("all_answered_ms").is_none());
    }

    #[test]
    fn non_positions_bodies_have_no_fields() {
        assert_eq!(answer(200, b"not json").fields, None);
        assert_eq!(answer(404, br#"{"positions":[],"cached":true,"stale":false}"#).fields, None);
        assert!(answer(200, br#"{"positions":[],"cached":false,"stale":false}"#).fields.is_some());
    }
}
