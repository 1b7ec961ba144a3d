//! Reading an upstream's body: tolerant where it costs no correctness,
//! strict where it would.
//!
//! Decimals come as JSON strings or JSON numbers, in plain or exponent
//! form, and are read from their text (`serde_json`'s `arbitrary_precision`
//! keeps it), never through `f64`. A decimal is exact or an error: a value
//! with more significant digits or decimal places than a 96-bit decimal
//! holds is refused, in either form, rather than rounded and cached.

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};
use time::OffsetDateTime;

use crate::model::{Confidence, Position, Positions, parse_timestamp};

/// Reads an upstream body as positions.
///
/// This is the one entry point for untrusted upstream bytes: it never
/// panics, whatever it is given.
///
/// # Errors
///
/// What is wrong with the body, with `serde_json`'s line and column.
///
/// # Examples
///
/// ```
/// use positions_api::source::http::parse_body;
///
/// let body = br#"{"positions": [{"token": "t", "symbol": "T", "quantity": 1.5e3, "avg_cost": "2",
///     "cost_basis": "3000", "realized_pnl": 0, "confidence": "High"}]}"#;
/// assert_eq!(parse_body(body).unwrap().positions[0].quantity.to_string(), "1500");
///
/// let too_precise = String::from_utf8_lossy(body).replace("1.5e3", "1.234567890123456789012345678901234567890e9");
/// assert!(parse_body(too_precise.as_bytes()).unwrap_err().contains("invalid decimal"));
/// ```
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
    exact_decimal(&text)
        .map(Some)
        .map_err(|reason| serde::de::Error::custom(format!("invalid decimal {text:?}: {reason}")))
}

/// `text`, in plain (`1500.25`) or exponent (`1.50025e3`) form, as the
/// decimal it denotes exactly, or why there is none.
///
/// The exponent moves the decimal point; the digits sent are kept, trailing
/// zeros included. A decimal cannot have a negative scale, so where the
/// point moves past the last digit the gap is filled with zeros
/// (`1.5e3` is `1500`): the same value, and the plain form every answer of
/// this service uses. `1.50e1` is `15.0` and `1.5e-3` is `0.0015`, as if the
/// number had been written without an exponent. `rust_decimal`'s own
/// `from_scientific` is not used: it rounds a mantissa with more digits than
/// fit, silently.
fn exact_decimal(text: &str) -> Result<Decimal, &'static str> {
    const TOO_PRECISE: &str =
        "more digits than a 96-bit decimal holds (28 decimal places, about 28 significant digits)";
    const NOT_A_NUMBER: &str = "expected a decimal number such as 12.5 or 1.25e1";
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    // `from_str_exact` refuses, rather than rounds, what does not fit.
    let mantissa = Decimal::from_str_exact(mantissa).map_err(|e| match e {
        rust_decimal::Error::Underflow | rust_decimal::Error::ExceedsMaximumPossibleValue => TOO_PRECISE,
        _ => NOT_A_NUMBER,
    })?;
    let Some(exponent) = exponent else { return Ok(mantissa) };
    let exponent: i64 = match exponent.parse() {
        Ok(exponent) => exponent,
        // Too long for an `i64`: far past anything a decimal holds, unless
        // the mantissa is zero (below), where the exponent does not matter.
        Err(_) if is_digits(exponent.strip_prefix(['+', '-']).unwrap_or(exponent)) => {
            if exponent.starts_with('-') {
                i64::MIN / 2
            } else {
                i64::MAX / 2
            }
        }
        Err(_) => return Err(NOT_A_NUMBER),
    };
    // The value is `digits × 10^(exponent − scale)`.
    let mut digits = mantissa.mantissa();
    let mut scale = i64::from(mantissa.scale()) - exponent;
    if digits == 0 {
        // Zero in any magnitude is zero; keep what scale fits.
        return Ok(Decimal::new(0, u32::try_from(scale.clamp(0, i64::from(Decimal::MAX_SCALE))).unwrap_or(0)));
    }
    if scale < 0 {
        let power = u32::try_from(-scale).ok().and_then(|p| 10_i128.checked_pow(p)).ok_or(TOO_PRECISE)?;
        digits = digits.checked_mul(power).ok_or(TOO_PRECISE)?;
        scale = 0;
    }
    // Trailing zeros beyond the largest scale are not digits lost.
    while scale > i64::from(Decimal::MAX_SCALE) && digits % 10 == 0 {
        digits /= 10;
        scale -= 1;
    }
    let scale = u32::try_from(scale).map_err(|_| TOO_PRECISE)?;
    Decimal::try_from_i128_with_scale(digits, scale).map_err(|_| TOO_PRECISE)
}

fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
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

    /// The quantity `text` reads as, sent as a JSON number and as a string.
    fn quantity(text: &str) -> Result<String, String> {
        let number = parse_body(BODY.replace("123.456789012345678901", text).as_bytes());
        let string = parse_body(BODY.replace("123.456789012345678901", &format!("{text:?}")).as_bytes());
        match (&number, &string) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{text}: a number and a string read alike"),
            (Err(_), Err(_)) => {}
            _ => panic!("{text}: a number and a string read differently: {number:?} {string:?}"),
        }
        number.map(|p| p.positions[0].quantity.to_string())
    }

    #[test]
    fn exponent_forms_are_read_exactly() {
        let cases = [
            ("1.5e3", "1500"),
            ("1.5E+3", "1500"),
            ("15e2", "1500"),
            ("1.50e1", "15.0"),
            ("1.5e-3", "0.0015"),
            ("-2.5e-2", "-0.025"),
            ("0e10", "0"),
            ("1.234567890123456789012345678e9", "1234567890.123456789012345678"),
            ("7.9228162514264337593543950335e28", "79228162514264337593543950335"),
            ("1e-28", "0.0000000000000000000000000001"),
            ("100e-30", "0.0000000000000000000000000001"),
        ];
        for (text, expected) in cases {
            assert_eq!(quantity(text).as_deref(), Ok(expected), "{text}");
        }
    }

    #[test]
    fn a_number_that_does_not_fit_is_an_error_not_a_rounding() {
        for text in [
            // 40 significant digits: with or without an exponent, too many.
            "1.234567890123456789012345678901234567890e9",
            "1234567890.123456789012345678901234567890",
            "1e-29",
            "1.5e-28",
            "1e29",
            "1e99999999999999999999",
        ] {
            let err = quantity(text).expect_err(text);
            assert!(err.contains("invalid decimal") && err.contains(": more digits"), "{text}: {err}");
        }
        for text in ["1e", "1e+", "e5", "1.5e3.0", "0x10"] {
            assert_eq!(exact_decimal(text), Err("expected a decimal number such as 12.5 or 1.25e1"), "{text}");
        }
        assert_eq!(exact_decimal("0e-99999999999999999999"), Ok(Decimal::ZERO), "zero in any magnitude");
    }

    #[test]
    fn timestamps_outside_rfc3339_years_are_errors() {
        for text in ["-0001-01-01T00:00:00", "+10000-01-01T00:00:00Z", "9999-12-31T23:30:00-01:00"] {
            let err = parse_body(BODY.replace("2026-11-24T10:59:30Z", text).as_bytes()).expect_err(text);
            assert!(err.contains("invalid timestamp"), "{text}: {err}");
        }
    }
}
