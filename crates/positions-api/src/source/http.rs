//! The `http` source: positions from an upstream analytics service.
//!
//! `GET {base}/positions/{wallet}` answers a JSON object with `positions`
//! (objects with the API's field names) and optionally `computed_at`.
//! Upstreams are not all careful, so reading is tolerant where it costs no
//! correctness and strict where it would:
//!
//! - timestamps with or without a trailing `Z` (no offset means UTC);
//! - decimals as JSON strings or JSON numbers, with no digit lost: numbers
//!   are read from their text (`serde_json`'s `arbitrary_precision`), never
//!   through `f64`;
//! - `confidence` in any letter case;
//! - unknown fields ignored; `404` means a wallet with no positions.
//!
//! Any other status, a timeout, a broken connection or a body that is not
//! positions is a [`SourceError`] that says which and why. Nothing here can
//! panic on what the upstream sends.

use std::time::Duration;

use bytes::Bytes;
use http::{StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};
use time::OffsetDateTime;

use super::{BoxFuture, Source, SourceError};
use crate::model::{Confidence, Position, Positions, parse_timestamp};
use crate::wallet::Wallet;

/// An upstream body larger than this is refused rather than buffered.
const MAX_BODY_BYTES: usize = 16 << 20;

/// Positions from an upstream service over HTTP.
#[derive(Debug, Clone)]
pub struct HttpSource {
    base: String,
    client: Client<HttpConnector, Empty<Bytes>>,
    timeout: Duration,
}

/// Why an upstream base URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid upstream URL {url:?}: {reason}")]
pub struct InvalidBaseUrl {
    url: String,
    reason: &'static str,
}

impl HttpSource {
    /// A source for the upstream at `base` (such as
    /// `http://analytics.internal:9000/api`), giving up on a request after
    /// `timeout`.
    ///
    /// # Errors
    ///
    /// [`InvalidBaseUrl`] if `base` is not an absolute `http://` URL without
    /// a query. (`https://` upstreams need a TLS-terminating proxy in front;
    /// see the operations guide.)
    pub fn new(base: &str, timeout: Duration) -> Result<Self, InvalidBaseUrl> {
        let error = |reason| InvalidBaseUrl { url: base.to_owned(), reason };
        let uri: Uri = base.parse().map_err(|_| error("not a URL"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => return Err(error("https is not supported; put a TLS-terminating proxy in front")),
            _ => return Err(error("expected http://host[:port][/path]")),
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(error("no host"));
        }
        if uri.query().is_some() {
            return Err(error("a query string is not allowed"));
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(connector);
        Ok(Self { base: base.trim_end_matches('/').to_owned(), client, timeout })
    }

    fn url_for(&self, wallet: &Wallet) -> String {
        format!("{}/positions/{wallet}", self.base)
    }

    async fn fetch_url(&self, url: String) -> Result<Positions, SourceError> {
        let transport = |cause: String| SourceError::Transport { url: url.clone(), cause };
        let uri: Uri = url.parse().map_err(|e| transport(format!("{e}")))?;
        let exchange = async {
            let response = self.client.get(uri).await.map_err(|e| transport(error_chain(&e)))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_BODY_BYTES)
                .collect()
                .await
                .map_err(|e| transport(format!("reading the body: {e}")))?
                .to_bytes();
            Ok::<_, SourceError>((status, body))
        };
        let (status, body) =
            tokio::time::timeout(self.timeout, exchange).await.map_err(|_| SourceError::Timeout(self.timeout))??;
        match status {
            StatusCode::NOT_FOUND => Ok(Positions::default()),
            s if s.is_success() => parse_body(&body).map_err(|cause| SourceError::BadBody { url, cause }),
            s => Err(SourceError::Status { url, status: s.as_u16() }),
        }
    }
}

impl Source for HttpSource {
    fn name(&self) -> &'static str {
        "http"
    }

    fn fetch<'a>(&'a self, wallet: &'a Wallet) -> BoxFuture<'a, Result<Positions, SourceError>> {
        Box::pin(self.fetch_url(self.url_for(wallet)))
    }
}

/// An error and its causes, on one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Reads an upstream body as positions.
///
/// # Errors
///
/// What is wrong with the body, with `serde_json`'s line and column.
pub fn parse_body(body: &[u8]) -> Result<Positions, String> {
    let upstream: UpstreamBody = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    Ok(Positions {
        positions: upstream.positions.into_iter().map(Position::from).collect(),
        computed_at: upstream.computed_at,
    })
}

/// The upstream's body, read tolerantly.
#[derive(Deserialize)]
struct UpstreamBody {
    positions: Vec<UpstreamPosition>,
    #[serde(default, deserialize_with = "timestamp_option")]
    computed_at: Option<OffsetDateTime>,
}

#[derive(Deserialize)]
struct UpstreamPosition {
    token: String,
    symbol: String,
    #[serde(deserialize_with = "decimal")]
    quantity: Decimal,
    #[serde(deserialize_with = "decimal")]
    avg_cost: Decimal,
    #[serde(deserialize_with = "decimal")]
    cost_basis: Decimal,
    #[serde(default, deserialize_with = "decimal_option")]
    price: Option<Decimal>,
    #[serde(default, deserialize_with = "decimal_option")]
    market_value: Option<Decimal>,
    #[serde(default, deserialize_with = "decimal_option")]
    unrealized_pnl: Option<Decimal>,
    #[serde(deserialize_with = "decimal")]
    realized_pnl: Decimal,
    #[serde(deserialize_with = "confidence")]
    confidence: Confidence,
    #[serde(default, deserialize_with = "timestamp_option")]
    price_updated_at: Option<OffsetDateTime>,
}

impl From<UpstreamPosition> for Position {
    fn from(u: UpstreamPosition) -> Self {
        Self {
            token: u.token,
            symbol: u.symbol,
            quantity: u.quantity,
            avg_cost: u.avg_cost,
            cost_basis: u.cost_basis,
            price: u.price,
            market_value: u.market_value,
            unrealized_pnl: u.unrealized_pnl,
            realized_pnl: u.realized_pnl,
            confidence: u.confidence,
            price_updated_at: u.price_updated_at,
        }
    }
}

/// A decimal from a JSON string or a JSON number, read from its text.
fn decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    decimal_option(d)?.ok_or_else(|| serde::de::Error::custom("expected a decimal, found null"))
}

fn decimal_option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    let text = match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => return Ok(None),
        serde_json::Value::String(s) => s,
        // With `arbitrary_precision`, a number keeps the text it was sent as.
        serde_json::Value::Number(n) => n.as_str().to_owned(),
        other => return Err(serde::de::Error::custom(format!("expected a decimal, found {other}"))),
    };
    Decimal::from_str_exact(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .map(Some)
        .map_err(|_| serde::de::Error::custom(format!("invalid decimal {text:?}")))
}

fn timestamp_option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<OffsetDateTime>, D::Error> {
    Option::<String>::deserialize(d)?.map(|t| parse_timestamp(&t).map_err(serde::de::Error::custom)).transpose()
}

fn confidence<'de, D: Deserializer<'de>>(d: D) -> Result<Confidence, D::Error> {
    let text = String::deserialize(d)?;
    match text.to_ascii_lowercase().as_str() {
        "high" => Ok(Confidence::High),
        "medium" => Ok(Confidence::Medium),
        "low" => Ok(Confidence::Low),
        _ => Err(serde::de::Error::custom(format!("invalid confidence {text:?}: expected high, medium or low"))),
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const BODY: &str = r#"{
        "wallet": "ignored",
        "computed_at": "2026-11-24T11:00:00",
        "positions": [{
            "token": "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48",
            "symbol": "USDC",
            "quantity": 123.456789012345678901,
            "avg_cost": "0.9998",
            "cost_basis": 1519.945950,
            "price": "1.0001",
            "market_value": null,
            "realized_pnl": "12.50",
            "confidence": "HIGH",
            "price_updated_at": "2026-11-24T10:59:30Z",
            "extra": {"nested": [1, 2, 3]}
        }]
    }"#;

    #[test]
    fn tolerant_parsing_keeps_every_digit() {
        let positions = parse_body(BODY.as_bytes()).expect("parses");
        assert_eq!(positions.computed_at, Some(datetime!(2026-11-24 11:00 UTC)), "no offset means UTC");
        let p = &positions.positions[0];
        assert_eq!(p.quantity.to_string(), "123.456789012345678901", "a JSON number loses no digit");
        assert_eq!(p.cost_basis.to_string(), "1519.945950", "and keeps its scale");
        assert_eq!(p.avg_cost.to_string(), "0.9998");
        assert_eq!(p.market_value, None);
        assert_eq!(p.unrealized_pnl, None, "an absent optional field is null");
        assert_eq!(p.confidence, Confidence::High);
        assert_eq!(p.price_updated_at, Some(datetime!(2026-11-24 10:59:30 UTC)));
    }

    #[test]
    fn bad_bodies_say_what_is_wrong() {
        let cases = [
            ("", "EOF"),
            ("[]", "expected struct"),
            (r#"{"positions": 3}"#, "expected a sequence"),
            (r#"{"positions": [{"token": "t"}]}"#, "missing field"),
            (&BODY.replace("\"HIGH\"", "\"sure\""), "invalid confidence \"sure\""),
            (&BODY.replace("\"0.9998\"", "\"zero\""), "invalid decimal \"zero\""),
            (&BODY.replace("\"0.9998\"", "true"), "expected a decimal"),
            (&BODY.replace("2026-11-24T10:59:30Z", "yesterday"), "invalid timestamp"),
        ];
        for (body, expected) in cases {
            let err = parse_body(body.as_bytes()).expect_err(body);
            assert!(err.contains(expected), "{body}: {err}");
        }
    }

    #[test]
    fn base_urls_are_checked() {
        let t = Duration::from_secs(1);
        assert!(HttpSource::new("http://localhost:9000/api/", t).is_ok());
        let https = HttpSource::new("https://example.com", t).expect_err("https");
        assert!(https.to_string().contains("TLS-terminating proxy"), "{https}");
        for bad in ["localhost:9000", "ftp://x", "http://", "http://h/?q=1", "not a url"] {
            assert!(HttpSource::new(bad, t).is_err(), "{bad}");
        }
        let source = HttpSource::new("http://localhost:9000/api/", t).expect("valid");
        let wallet = Wallet::parse("0x52908400098527886e0f7030069857d2e4169ee7").expect("valid");
        assert_eq!(
            source.url_for(&wallet),
            "http://localhost:9000/api/positions/0x52908400098527886e0f7030069857d2e4169ee7"
        );
    }
}
