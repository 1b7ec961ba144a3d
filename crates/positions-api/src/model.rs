//! The positions data model: what a source produces, what is cached, and the
//! JSON the API answers with.
//!
//! [`Positions`] is the structured result of one computation for one wallet.
//! It serializes exactly in both JSON and bincode: decimals travel as
//! strings (every digit and the scale kept), timestamps as RFC 3339 UTC.
//! (No field may use `skip_serializing_if`: bincode is not self-describing
//! and would misread a skipped field.)
//!
//! [`Snapshot`] is what the memory tier holds: the positions already
//! rendered to JSON, so that a cached answer is a copy of bytes and not a
//! serialization of seventy decimals.

use bytes::{BufMut, Bytes, BytesMut};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::body::Body;
use crate::wallet::Wallet;

/// One wallet's holding of one token, valued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The token's contract address (or mint).
    pub token: String,
    /// The token's ticker symbol.
    pub symbol: String,
    /// Units held now.
    #[serde(with = "rust_decimal::serde::str")]
    pub quantity: Decimal,
    /// Average cost per unit held, by the average-cost method.
    #[serde(with = "rust_decimal::serde::str")]
    pub avg_cost: Decimal,
    /// What the units held cost in total (`quantity × avg_cost`).
    #[serde(with = "rust_decimal::serde::str")]
    pub cost_basis: Decimal,
    /// The latest price per unit, if one is known.
    #[serde(with = "rust_decimal::serde::str_option")]
    pub price: Option<Decimal>,
    /// `quantity × price`, if the price is known.
    #[serde(with = "rust_decimal::serde::str_option")]
    pub market_value: Option<Decimal>,
    /// `market_value − cost_basis`, if the price is known.
    #[serde(with = "rust_decimal::serde::str_option")]
    pub unrealized_pnl: Option<Decimal>,
    /// Profit or loss locked in by sales so far.
    #[serde(with = "rust_decimal::serde::str")]
    pub realized_pnl: Decimal,
    /// How far to trust the valuation.
    pub confidence: Confidence,
    /// When the price was last updated, if one is known.
    #[serde(with = "timestamp_option")]
    pub price_updated_at: Option<OffsetDateTime>,
}

/// How far to trust a position's valuation; each source documents how it
/// decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    /// A fresh price and consistent history.
    High,
    /// A usable but ageing price.
    Medium,
    /// No price, a stale one, or history that does not add up.
    Low,
}

/// The result of one computation of one wallet's positions.
///
/// An empty list is a valid result: a wallet with no positions.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Positions {
    /// The positions, in the source's order.
    pub positions: Vec<Position>,
    /// The source's own timestamp for the computation, if it gives one.
    #[serde(with = "timestamp_option")]
    pub computed_at: Option<OffsetDateTime>,
}

/// A wallet's positions rendered for serving: what tier 1 caches.
///
/// # Examples
///
/// ```
/// use positions_api::{Positions, Snapshot, Wallet};
/// use time::macros::datetime;
///
/// let wallet: Wallet = "0x52908400098527886e0f7030069857d2e4169ee7".parse().unwrap();
/// let snapshot = Snapshot::render(&Positions::default(), datetime!(2026-11-24 11:00 UTC));
/// let body = snapshot.body(&wallet, true, false, 120).to_bytes();
/// let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
/// assert_eq!(json["computed_at"], "2026-11-24T11:00:00Z");
/// assert_eq!(json["positions"], serde_json::json!([]));
/// assert_eq!(json["age_seconds"], 120);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    positions_json: Bytes,
    computed_at: Box<str>,
    count: usize,
}

impl Snapshot {
    /// Renders `positions` fetched at `fetched_at`. The response's
    /// `computed_at` is the source's own timestamp if it gave one, else
    /// `fetched_at`.
    ///
    /// # Panics
    ///
    /// Never in practice: rendering these types to JSON cannot fail.
    pub fn render(positions: &Positions, fetched_at: OffsetDateTime) -> Self {
        let mut json = serde_json::to_vec(&positions.positions).expect("positions always serialize to JSON");
        // The vector grew by doubling; the spare capacity would stay
        // allocated for as long as the entry is cached.
        json.shrink_to_fit();
        Self {
            positions_json: Bytes::from(json),
            computed_at: rfc3339(positions.computed_at.unwrap_or(fetched_at)).into(),
            count: positions.positions.len(),
        }
    }

    /// How many positions it holds.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether it holds no position.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The bytes this snapshot keeps in memory (for sizing and weighing).
    pub fn heap_bytes(&self) -> usize {
        self.positions_json.len() + self.computed_at.len()
    }

    /// The response body for `wallet` with the per-request fields: the
    /// rendered positions between a small prefix and suffix, not copied.
    pub fn body(&self, wallet: &Wallet, cached: bool, stale: bool, age_seconds: u64) -> Body {
        // Prefix and suffix share one allocation.
        let mut buf = BytesMut::with_capacity(wallet.as_str().len() + self.computed_at.len() + 110);
        buf.put_slice(b"{\"wallet\":\"");
        // A wallet holds only [0-9A-Za-z]: nothing to escape.
        buf.put_slice(wallet.as_str().as_bytes());
        buf.put_slice(b"\",\"positions\":");
        let prefix = buf.split();
        buf.put_slice(b",\"computed_at\":\"");
        buf.put_slice(self.computed_at.as_bytes());
        buf.put_slice(if cached { b"\",\"cached\":true" } else { b"\",\"cached\":false" });
        buf.put_slice(if stale { b",\"stale\":true" } else { b",\"stale\":false" });
        buf.put_slice(b",\"age_seconds\":");
        buf.put_slice(itoa::Buffer::new().format(age_seconds).as_bytes());
        buf.put_u8(b'}');
        Body::parts(prefix.freeze(), self.positions_json.clone(), buf.freeze())
    }
}

/// Parses a timestamp the way every input of this service is read: RFC 3339
/// with any offset, or the same without an offset (read as UTC), with or
/// without fractional seconds.
///
/// The time must fall in the years 0000 to 9999 once converted to UTC: RFC
/// 3339 has no other years, so [`rfc3339`] could not render it back. This
/// check is what keeps [`rfc3339`] from panicking on what a source sends.
///
/// # Errors
///
/// A message naming the text, when it is neither, or when its year in UTC
/// is outside 0000 to 9999 (`-0001-01-01T00:00:00`,
/// `9999-12-31T23:30:00-01:00`).
///
/// # Examples
///
/// ```
/// use positions_api::parse_timestamp;
/// use time::macros::datetime;
///
/// assert_eq!(parse_timestamp("2026-11-24T10:59:30Z").unwrap(), datetime!(2026-11-24 10:59:30 UTC));
/// assert_eq!(parse_timestamp("2026-11-24T10:59:30").unwrap(), datetime!(2026-11-24 10:59:30 UTC));
/// assert_eq!(parse_timestamp("2026-11-24T12:59:30.5+02:00").unwrap(), datetime!(2026-11-24 10:59:30.5 UTC));
/// assert!(parse_timestamp("yesterday").is_err());
/// assert!(parse_timestamp("-0001-01-01T00:00:00").is_err());
/// ```
pub fn parse_timestamp(text: &str) -> Result<OffsetDateTime, String> {
    const NAIVE: &[time::format_description::BorrowedFormatItem<'_>] =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]");
    let parsed = OffsetDateTime::parse(text, &Rfc3339)
        .or_else(|_| time::PrimitiveDateTime::parse(text, NAIVE).map(time::PrimitiveDateTime::assume_utc))
        .map_err(|_| format!("invalid timestamp {text:?}: expected RFC 3339, such as 2026-11-24T10:59:30Z"))?;
    // `to_offset` would panic past the range `time` holds; an offset can
    // also carry a year 9999 into 10000 or a year 0000 into -0001.
    parsed
        .checked_to_offset(time::UtcOffset::UTC)
        .filter(|t| (0..=9999).contains(&t.year()))
        .ok_or_else(|| format!("invalid timestamp {text:?}: the year in UTC is outside 0000 to 9999"))
}

/// Optional timestamps as RFC 3339 strings, in a way that binary formats
/// can decode too (`time`'s own option module needs `deserialize_any`).
mod timestamp_option {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    #[expect(clippy::ref_option, reason = "serde's `with` hands over a reference to the field")]
    pub(super) fn serialize<S: Serializer>(value: &Option<OffsetDateTime>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(t) => serializer.serialize_some(&super::rfc3339(*t)),
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<OffsetDateTime>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| super::parse_timestamp(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// RFC 3339 in UTC with a `Z`.
///
/// # Panics
///
/// Never for a time between years 0000 and 9999 in UTC, which is every time
/// this service holds: the clock's, and every parsed one, since
/// [`parse_timestamp`] refuses the others.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC).format(&Rfc3339).expect("a four-digit year formats as RFC 3339")
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use time::macros::datetime;

    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).expect("valid decimal")
    }

    pub(crate) fn usdc() -> Position {
        Position {
            token: "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48".into(),
            symbol: "USDC".into(),
            quantity: d("1520.250000"),
            avg_cost: d("0.9998"),
            cost_basis: d("1519.945950"),
            price: Some(d("1.0001")),
            market_value: Some(d("1520.402025")),
            unrealized_pnl: Some(d("0.456075")),
            realized_pnl: d("12.50"),
            confidence: Confidence::High,
            price_updated_at: Some(datetime!(2026-11-24 10:59:30 UTC)),
        }
    }

    #[test]
    fn json_matches_the_spec_example() {
        let json = serde_json::to_value(usdc()).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({
                "token": "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48",
                "symbol": "USDC",
                "quantity": "1520.250000",
                "avg_cost": "0.9998",
                "cost_basis": "1519.945950",
                "price": "1.0001",
                "market_value": "1520.402025",
                "unrealized_pnl": "0.456075",
                "realized_pnl": "12.50",
                "confidence": "high",
                "price_updated_at": "2026-11-24T10:59:30Z"
            })
        );
    }

    #[test]
    fn a_missing_price_is_null() {
        let mut p = usdc();
        p.price = None;
        p.market_value = None;
        p.unrealized_pnl = None;
        p.price_updated_at = None;
        p.confidence = Confidence::Low;
        let json = serde_json::to_value(&p).expect("serializes");
        assert!(json["price"].is_null() && json["market_value"].is_null() && json["price_updated_at"].is_null());
        assert_eq!(json["confidence"], "low");
        assert_eq!(serde_json::from_value::<Position>(json).expect("parses back"), p);
    }

    #[test]
    fn bincode_round_trips_every_digit() {
        let mut p = usdc();
        p.quantity = d("123456789.012345678901234567");
        p.realized_pnl = d("-0.000000000000000000000000001");
        let positions =
            Positions { positions: vec![p, usdc()], computed_at: Some(datetime!(2026-11-24 11:00:00.123456 UTC)) };
        let bytes = bincode::serde::encode_to_vec(&positions, bincode::config::standard()).expect("encodes");
        let (back, read): (Positions, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).expect("decodes");
        assert_eq!(read, bytes.len());
        assert_eq!(back, positions);
        assert_eq!(back.positions[0].quantity.to_string(), "123456789.012345678901234567");
        assert_eq!(back.positions[1].cost_basis.to_string(), "1519.945950", "scale kept");
    }

    #[test]
    fn the_body_is_the_spec_shape() {
        let wallet = Wallet::parse("0x52908400098527886e0f7030069857d2e4169ee7").expect("valid");
        let positions = Positions { positions: vec![usdc()], computed_at: None };
        let snapshot = Snapshot::render(&positions, datetime!(2026-11-24 11:00 UTC));
        assert_eq!(snapshot.len(), 1);
        let body = snapshot.body(&wallet, true, false, 120).to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).expect("valid JSON");
        assert_eq!(json["wallet"], wallet.as_str());
        assert_eq!(json["positions"][0], serde_json::to_value(usdc()).expect("serializes"));
        assert_eq!(json["computed_at"], "2026-11-24T11:00:00Z", "fetched_at stands in for a missing computed_at");
        assert_eq!(
            (json["cached"].clone(), json["stale"].clone(), json["age_seconds"].clone()),
            (true.into(), false.into(), 120.into())
        );
        let stale = snapshot.body(&wallet, false, true, 0).to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&stale).expect("valid JSON");
        assert_eq!((json["cached"].clone(), json["stale"].clone()), (false.into(), true.into()));
    }

    #[test]
    fn years_rfc3339_cannot_write_are_parse_errors() {
        for text in [
            "-0001-01-01T00:00:00",
            "-0001-01-01T00:00:00Z",
            "+10000-01-01T00:00:00Z",
            "+10000-01-01T00:00:00",
            "9999-12-31T23:30:00-01:00",
            "0000-01-01T00:30:00+01:00",
        ] {
            let err = parse_timestamp(text).expect_err(text);
            assert!(err.starts_with("invalid timestamp"), "{text}: {err}");
        }
        // The edges themselves render back exactly.
        for text in ["0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z"] {
            assert_eq!(rfc3339(parse_timestamp(text).expect(text)), text);
        }
        assert_eq!(rfc3339(parse_timestamp("9999-12-31T23:30:00+01:00").expect("in range")), "9999-12-31T22:30:00Z");
    }

    #[test]
    fn the_sources_computed_at_wins_over_fetched_at() {
        let positions = Positions { positions: vec![], computed_at: Some(datetime!(2026-11-24 09:00 +02:00)) };
        let snapshot = Snapshot::render(&positions, datetime!(2026-11-24 11:00 UTC));
        let wallet = Wallet::parse("0x52908400098527886e0f7030069857d2e4169ee7").expect("valid");
        let json: serde_json::Value =
            serde_json::from_slice(&snapshot.body(&wallet, true, false, 0).to_bytes()).expect("valid");
        assert_eq!(json["computed_at"], "2026-11-24T07:00:00Z", "converted to UTC");
    }
}
