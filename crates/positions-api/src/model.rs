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
use http::HeaderValue;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use std::fmt::Write as _;

use sha2::Digest as _;

use crate::body::Body;
use crate::encoding::{Encoding, Packed};
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
/// let snapshot = Snapshot::render(&wallet, &Positions::default(), datetime!(2026-11-24 11:00 UTC));
/// let body = snapshot.body(true, false, 120).to_bytes();
/// let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
/// assert_eq!(json["computed_at"], "2026-11-24T11:00:00Z");
/// assert_eq!(json["positions"], serde_json::json!([]));
/// assert_eq!(json["age_seconds"], 120);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// `{"wallet":…,"positions":[…],"computed_at":"…"`: every answer's
    /// body up to the per-request fields.
    head: Bytes,
    /// The head compressed once, if it is long enough (see
    /// [`encoding`](crate::encoding)).
    packed: Option<Packed>,
    /// The weak entity tag, a digest of the head, ready to be sent (a
    /// clone of it is a reference count, not a copy or a check).
    etag: HeaderValue,
    count: usize,
}

impl Snapshot {
    /// Renders `positions` of `wallet` fetched at `fetched_at`, and
    /// compresses it (gzip and br) for the answers that accept it. The
    /// response's `computed_at` is the source's own timestamp if it gave
    /// one, else `fetched_at`.
    ///
    /// # Panics
    ///
    /// Never in practice: rendering these types to JSON cannot fail.
    pub fn render(wallet: &Wallet, positions: &Positions, fetched_at: OffsetDateTime) -> Self {
        let computed_at = rfc3339(positions.computed_at.unwrap_or(fetched_at));
        let mut head = Vec::with_capacity(64 + 400 * positions.positions.len());
        head.extend_from_slice(b"{\"wallet\":\"");
        // A wallet holds only [0-9A-Za-z]: nothing to escape.
        head.extend_from_slice(wallet.as_str().as_bytes());
        head.extend_from_slice(b"\",\"positions\":");
        serde_json::to_writer(&mut head, &positions.positions).expect("positions always serialize to JSON");
        head.extend_from_slice(b",\"computed_at\":\"");
        head.extend_from_slice(computed_at.as_bytes());
        head.push(b'"');
        // Spare capacity would stay allocated as long as the entry.
        head.shrink_to_fit();
        let digest = sha2::Sha256::digest(&head);
        let mut etag = String::with_capacity(36);
        etag.push_str("W/\"");
        for byte in &digest[..16] {
            let _ = write!(etag, "{byte:02x}");
        }
        etag.push('"');
        let etag = HeaderValue::from_maybe_shared(Bytes::from(etag)).expect("quotes and hex digits are a header value");
        Self { packed: Packed::new(&head), head: Bytes::from(head), etag, count: positions.positions.len() }
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
        self.head.len() + self.etag.len() + self.packed.as_ref().map_or(0, Packed::heap_bytes)
    }

    /// Its weak entity tag (`W/"…"`): a digest of what the answer says
    /// (wallet, positions, `computed_at`), not of the per-request fields,
    /// so every replica gives the same entry the same tag.
    pub fn etag(&self) -> &str {
        self.etag.to_str().unwrap_or_default()
    }

    /// [`etag`](Self::etag) as the `ETag` header's value.
    pub fn etag_header(&self) -> &HeaderValue {
        &self.etag
    }

    /// The identity response body with the per-request fields: the shared
    /// head, not copied, then the small tail.
    pub fn body(&self, cached: bool, stale: bool, age_seconds: u64) -> Body {
        Body::parts(self.head.clone(), tail(cached, stale, age_seconds), Bytes::new())
    }

    /// The response body in `encoding` if this snapshot has it (a head
    /// long enough to be compressed), else the identity body; and which
    /// encoding it is.
    pub fn encoded_body(&self, encoding: Encoding, cached: bool, stale: bool, age_seconds: u64) -> (Body, Encoding) {
        match (&self.packed, encoding) {
            (Some(packed), Encoding::Gzip | Encoding::Brotli) => {
                let [before, head, after] = packed.body(encoding, &self.head, &tail(cached, stale, age_seconds));
                (Body::parts(before, head, after), encoding)
            }
            _ => (self.body(cached, stale, age_seconds), Encoding::Identity),
        }
    }
}

/// What tier 2 keeps of a [`Snapshot`]: everything tier 1 needs to serve it
/// without rendering, in the smallest form it has. A compressed snapshot
/// keeps its deflate stream (the identity head is inflated back from it,
/// and the gzip answers are made of it as they are); a short one keeps its
/// head as it is.
///
/// Encoded with bincode inside the versioned envelope of
/// [`cache_redis::envelope`]; a change here is a new envelope version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSnapshot {
    count: u32,
    etag: String,
    body: StoredBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum StoredBody {
    /// The head, for a snapshot too short to compress.
    Plain(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The deflate stream and the head's CRC-32 (bytes are read as one
    /// copy, not byte by byte).
    Packed {
        #[serde(with = "serde_bytes")]
        deflate: Vec<u8>,
        crc: u32,
    },
}

/// The longest head a stored snapshot may inflate to: far above any real
/// wallet's (a few KB), it bounds what a corrupt or hostile value costs.
const MAX_STORED_HEAD: usize = 64 << 20;

impl Snapshot {
    /// What tier 2 keeps of it.
    pub fn to_stored(&self) -> StoredSnapshot {
        let body = match &self.packed {
            Some(packed) => {
                let (deflate, crc) = packed.parts();
                StoredBody::Packed { deflate: deflate.to_vec(), crc }
            }
            None => StoredBody::Plain(self.head.to_vec()),
        };
        StoredSnapshot { count: u32::try_from(self.count).unwrap_or(u32::MAX), etag: self.etag().to_owned(), body }
    }

    /// The snapshot tier 2 kept, or `None` if what was kept does not hold
    /// together (a deflate stream that does not inflate to a head with its
    /// CRC-32, a head that is not an answer's, a malformed entity tag):
    /// the caller treats it as a miss.
    pub fn from_stored(stored: StoredSnapshot) -> Option<Self> {
        let (head, packed) = match stored.body {
            StoredBody::Plain(head) => (head, None),
            StoredBody::Packed { deflate, crc } => {
                let (packed, head) = Packed::unpack(deflate, crc, MAX_STORED_HEAD)?;
                (head, Some(packed))
            }
        };
        let well_formed = head.starts_with(b"{\"wallet\":\"")
            && head.ends_with(b"\"")
            && stored.etag.len() == 36
            && stored.etag.starts_with("W/\"")
            && stored.etag.ends_with('"');
        let etag = HeaderValue::from_maybe_shared(Bytes::from(stored.etag)).ok().filter(|_| well_formed)?;
        Some(Self { head: Bytes::from(head), packed, etag, count: usize::try_from(stored.count).unwrap_or(usize::MAX) })
    }
}

/// `,"cached":…,"stale":…,"age_seconds":…}`
fn tail(cached: bool, stale: bool, age_seconds: u64) -> Bytes {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_slice(if cached { b",\"cached\":true" } else { b",\"cached\":false" });
    buf.put_slice(if stale { b",\"stale\":true" } else { b",\"stale\":false" });
    buf.put_slice(b",\"age_seconds\":");
    buf.put_slice(itoa::Buffer::new().format(age_seconds).as_bytes());
    buf.put_u8(b'}');
    buf.freeze()
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
        let snapshot = Snapshot::render(&wallet, &positions, datetime!(2026-11-24 11:00 UTC));
        assert_eq!(snapshot.len(), 1);
        let body = snapshot.body(true, false, 120).to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).expect("valid JSON");
        assert_eq!(json["wallet"], wallet.as_str());
        assert_eq!(json["positions"][0], serde_json::to_value(usdc()).expect("serializes"));
        assert_eq!(json["computed_at"], "2026-11-24T11:00:00Z", "fetched_at stands in for a missing computed_at");
        assert_eq!(
            (json["cached"].clone(), json["stale"].clone(), json["age_seconds"].clone()),
            (true.into(), false.into(), 120.into())
        );
        let stale = snapshot.body(false, true, 0).to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&stale).expect("valid JSON");
        assert_eq!((json["cached"].clone(), json["stale"].clone()), (false.into(), true.into()));
    }

    #[test]
    fn the_etag_follows_what_the_answer_says_and_every_coding_decodes_to_the_identity_body() {
        use std::io::Read;

        let wallet = Wallet::parse("0x52908400098527886e0f7030069857d2e4169ee7").expect("valid");
        let many = Positions { positions: vec![usdc(); 5], computed_at: None };
        let at = datetime!(2026-11-24 11:00 UTC);
        let snapshot = Snapshot::render(&wallet, &many, at);
        assert!(snapshot.etag().starts_with("W/\"") && snapshot.etag().len() == 36, "{}", snapshot.etag());
        assert_eq!(snapshot.etag(), Snapshot::render(&wallet, &many, at).etag(), "the same on every replica");
        let later = Snapshot::render(&wallet, &many, at + time::Duration::SECOND);
        assert_ne!(snapshot.etag(), later.etag(), "another computed_at");
        let other = Wallet::parse("0x8617e340b3d01fa5f11f306f4090fd50e238070d").expect("valid");
        assert_ne!(snapshot.etag(), Snapshot::render(&other, &many, at).etag(), "another wallet");

        let identity = snapshot.body(true, true, 42).to_bytes();
        for encoding in [Encoding::Gzip, Encoding::Brotli] {
            let (body, used) = snapshot.encoded_body(encoding, true, true, 42);
            assert_eq!(used, encoding);
            let compressed = body.to_bytes();
            let mut decoded = Vec::new();
            match encoding {
                Encoding::Gzip => flate2::read::GzDecoder::new(&compressed[..]).read_to_end(&mut decoded),
                _ => brotli::Decompressor::new(&compressed[..], 4096).read_to_end(&mut decoded),
            }
            .expect("decodes");
            assert_eq!(decoded, identity, "{encoding:?}");
        }
        let small = Snapshot::render(&wallet, &Positions::default(), at);
        assert_eq!(small.encoded_body(Encoding::Gzip, true, false, 0).1, Encoding::Identity, "too small to pack");
    }

    #[test]
    fn a_stored_snapshot_comes_back_whole_and_a_damaged_one_not_at_all() {
        let wallet = Wallet::parse("0x52908400098527886e0f7030069857d2e4169ee7").expect("valid");
        let at = datetime!(2026-11-24 11:00 UTC);
        for positions in [Positions { positions: vec![usdc(); 10], computed_at: None }, Positions::default()] {
            let snapshot = Snapshot::render(&wallet, &positions, at);
            let stored = snapshot.to_stored();
            let bytes = bincode::serde::encode_to_vec(&stored, bincode::config::standard()).expect("encodes");
            let (decoded, _): (StoredSnapshot, usize) =
                bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).expect("decodes");
            assert_eq!(Snapshot::from_stored(decoded), Some(snapshot.clone()));
            if positions.positions.len() == 10 {
                assert!(
                    bytes.len() < snapshot.head.len() / 2,
                    "{} bytes kept of a {}-byte head",
                    bytes.len(),
                    snapshot.head.len()
                );
            }
        }
        let mut stored =
            Snapshot::render(&wallet, &Positions { positions: vec![usdc(); 10], computed_at: None }, at).to_stored();
        if let StoredBody::Packed { crc, .. } = &mut stored.body {
            *crc ^= 1;
        }
        assert_eq!(Snapshot::from_stored(stored), None, "a wrong CRC");
        let mut stored = Snapshot::render(&wallet, &Positions::default(), at).to_stored();
        stored.etag = "W/\"short\"".into();
        assert_eq!(Snapshot::from_stored(stored), None, "a malformed tag");
        let plain = StoredSnapshot {
            count: 0,
            etag: format!("W/\"{}\"", "0".repeat(32)),
            body: StoredBody::Plain(b"[]".to_vec()),
        };
        assert_eq!(Snapshot::from_stored(plain), None, "not an answer's head");
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
        let wallet = Wallet::parse("0x52908400098527886e0f7030069857d2e4169ee7").expect("valid");
        let snapshot = Snapshot::render(&wallet, &positions, datetime!(2026-11-24 11:00 UTC));
        let json: serde_json::Value = serde_json::from_slice(&snapshot.body(true, false, 0).to_bytes()).expect("valid");
        assert_eq!(json["computed_at"], "2026-11-24T07:00:00Z", "converted to UTC");
    }
}
