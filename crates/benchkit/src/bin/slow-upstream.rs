//! `slow-upstream`: a bench-only stand-in for the analytics service that
//! computes positions, as slow as the real one.
//!
//! - `GET /positions/{wallet}`: after a delay drawn uniformly from the
//!   configured range (200 to 500 ms by default), `200` with the wallet's
//!   deterministic positions (`benchkit::positions`), in the body shape
//!   `positions-api`'s `http` source reads.
//! - `GET /stats`: `{"position_requests": N, "answered": N, "in_flight": N,
//!   "max_in_flight": N}`, so the bench can count the service's calls.
//! - `POST /stats/reset-peak`: starts `max_in_flight` over from the calls
//!   in flight now, so that a measured period reports its own peak.
//! - `POST /delay?ms=LO..HI`: changes the delay from now on, so that the
//!   bench can fill a cache quickly (delay 0) and then run its day against
//!   a slow upstream, without restarting it on another port.
//!
//! The delay is a timer, not work: the upstream uses no CPU while it
//! "computes", so it does not compete with the service for the machine's
//! cores. Not a mock for tests (they script their own upstream).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Parser;
use http::{HeaderValue, Method, Response, StatusCode, header};
use http_body_util::Full;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Answers `GET /positions/{wallet}` slowly, with deterministic positions.
#[derive(Debug, Parser)]
#[command(name = "slow-upstream", version)]
struct Args {
    /// The delay before each answer, in milliseconds: `LO..HI` (uniform,
    /// inclusive) or one number.
    #[arg(long, default_value = "200..500", value_parser = parse_range)]
    delay_ms: (u64, u64),
    /// Positions per wallet.
    #[arg(long, default_value_t = 10)]
    positions: usize,
    /// The seed of the delays.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where to listen; port 0 picks a free one (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: String,
}

/// What the upstream has been asked, and its current delay.
#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    answered: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    delay_lo: AtomicU64,
    delay_hi: AtomicU64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let counters = Arc::new(Counters::default());
    counters.delay_lo.store(args.delay_ms.0, Ordering::Relaxed);
    counters.delay_hi.store(args.delay_ms.1, Ordering::Relaxed);
    let (positions, seed) = (args.positions, args.seed);
    benchkit::serve::runtime(None)?.block_on(async move {
        let listener =
            benchkit::serve::bind(&args.bind).await.with_context(|| format!("cannot listen on {}", args.bind))?;
        benchkit::serve::serve(listener, None, move |request| {
            let counters = Arc::clone(&counters);
            async move {
                let path = request.uri().path();
                if let Some(wallet) = path.strip_prefix("/positions/") {
                    let n = counters.requests.fetch_add(1, Ordering::Relaxed);
                    let now = counters.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
                    counters.max_in_flight.fetch_max(now, Ordering::Relaxed);
                    // The n-th request's delay is a function of n, so a run
                    // sees the same sequence of delays every time.
                    let (lo, hi) =
                        (counters.delay_lo.load(Ordering::Relaxed), counters.delay_hi.load(Ordering::Relaxed));
                    let delay = SmallRng::seed_from_u64(seed ^ n).random_range(lo..=hi.max(lo));
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    let body = benchkit::positions::body(wallet, positions, Some(time::OffsetDateTime::now_utc()));
                    counters.in_flight.fetch_sub(1, Ordering::Relaxed);
                    counters.answered.fetch_add(1, Ordering::Relaxed);
                    json(StatusCode::OK, body)
                } else if path == "/stats" {
                    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
                    let body = serde_json::json!({
                        "position_requests": get(&counters.requests),
                        "answered": get(&counters.answered),
                        "in_flight": get(&counters.in_flight),
                        "max_in_flight": get(&counters.max_in_flight),
                    });
                    json(StatusCode::OK, body.to_string())
                } else if path == "/stats/reset-peak" && request.method() == Method::POST {
                    let now = counters.in_flight.load(Ordering::Relaxed);
                    counters.max_in_flight.store(now, Ordering::Relaxed);
                    json(StatusCode::OK, format!(r#"{{"max_in_flight":{now}}}"#))
                } else if path == "/delay" && request.method() == Method::POST {
                    let range = request.uri().query().and_then(|q| q.strip_prefix("ms="));
                    match range.map(parse_range) {
                        Some(Ok((lo, hi))) => {
                            // Two stores, not one: a request drawing its
                            // delay in between gets a range from both, which
                            // is harmless for a benchmark's upstream.
                            counters.delay_lo.store(lo, Ordering::Relaxed);
                            counters.delay_hi.store(hi, Ordering::Relaxed);
                            json(StatusCode::OK, format!(r#"{{"delay_ms":[{lo},{hi}]}}"#))
                        }
                        _ => json(StatusCode::BAD_REQUEST, r#"{"error":"expected ?ms=LO..HI or ?ms=N"}"#.to_owned()),
                    }
                } else {
                    json(StatusCode::NOT_FOUND, r#"{"error":"not_found"}"#.to_owned())
                }
            }
        })
        .await;
        Ok(())
    })
}

fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// `200..500` or `300`.
fn parse_range(text: &str) -> Result<(u64, u64)> {
    let (lo, hi) = text.split_once("..").unwrap_or((text, text));
    let number =
        |s: &str| s.trim().parse::<u64>().with_context(|| format!("invalid delay {text:?}: expected LO..HI or N"));
    let (lo, hi) = (number(lo)?, number(hi)?);
    if hi < lo {
        bail!("invalid delay {text:?}: the upper bound is below the lower");
    }
    Ok((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_are_a_range_or_one_number() {
        assert_eq!(parse_range("200..500").ok(), Some((200, 500)));
        assert_eq!(parse_range("300").ok(), Some((300, 300)));
        assert!(parse_range("500..200").is_err());
        assert!(parse_range("fast").is_err());
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }
}
