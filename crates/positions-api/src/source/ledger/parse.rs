//! The ledger's grammar: lines, fields and the values in them.
//!
//! Plain CSV as the format defines it (docs/ledger-format.md): a header
//! line, comma-separated fields with no quoting, `#` comment lines and
//! blank lines. Every error names the file, the line and, where there is
//! one, the field.
//!
//! Not here: what the values mean together (wallets and tokens interned,
//! trades ordered and added up), which is the ledger's business.

use std::io::BufRead;
use std::path::Path;

use rust_decimal::Decimal;
use time::OffsetDateTime;

use super::LedgerError;
use crate::model::parse_timestamp;

/// The trades file's name in a ledger directory.
pub(super) const TRADES_FILE: &str = "trades.csv";
/// The prices file's name in a ledger directory.
pub(super) const PRICES_FILE: &str = "prices.csv";
/// The trades file's columns, in order.
pub(super) const TRADE_COLUMNS: [&str; 8] =
    ["wallet", "token", "symbol", "side", "quantity", "price", "fee", "timestamp"];
/// The prices file's columns, in order.
pub(super) const PRICE_COLUMNS: [&str; 3] = ["token", "price", "updated_at"];

/// Longer field text is not echoed back whole in an error message.
const ECHO_LIMIT: usize = 64;

/// Reads `reader` (the file `file`, at `path` for I/O errors) line by line
/// and hands each data line's `N` fields, trimmed, to `each` with the
/// line's 1-based number. The first line that is neither blank nor a
/// comment must be the header `columns`.
///
/// One buffer serves every line, so reading allocates nothing per line.
pub(super) fn for_each_line<const N: usize>(
    file: &'static str,
    path: &Path,
    columns: &[&'static str; N],
    mut reader: impl BufRead,
    mut each: impl FnMut(usize, [&str; N]) -> Result<(), LedgerError>,
) -> Result<(), LedgerError> {
    let mut buffer = Vec::with_capacity(256);
    let mut number = 0;
    let mut header_seen = false;
    loop {
        buffer.clear();
        let read = reader
            .read_until(b'\n', &mut buffer)
            .map_err(|source| LedgerError::Read { path: path.to_path_buf(), source })?;
        if read == 0 {
            break;
        }
        number += 1;
        let place = Place { file, line: number };
        let bytes = buffer.strip_suffix(b"\n").unwrap_or(&buffer);
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        let text = std::str::from_utf8(bytes).map_err(|_| place.error(None, "not valid UTF-8".to_owned()))?;
        let text = text.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let fields = split(text).ok_or_else(|| {
            let found = text.split(',').count();
            place.error(None, format!("expected {N} comma-separated fields ({}), found {found}", columns.join(",")))
        })?;
        if header_seen {
            each(number, fields)?;
        } else {
            if fields != *columns {
                return Err(
                    place.error(None, format!("expected the header {:?}, found {}", columns.join(","), shown(text)))
                );
            }
            header_seen = true;
        }
    }
    if header_seen { Ok(()) } else { Err(LedgerError::MissingHeader { file, expected: columns.join(",") }) }
}

/// A line's `N` fields, trimmed, or `None` if it has another number.
fn split<const N: usize>(line: &str) -> Option<[&str; N]> {
    let mut fields = [""; N];
    let mut parts = line.split(',');
    for field in &mut fields {
        *field = parts.next()?.trim();
    }
    parts.next().is_none().then_some(fields)
}

/// Where a value was read: file and line, for error messages.
#[derive(Debug, Clone, Copy)]
pub(super) struct Place {
    pub(super) file: &'static str,
    pub(super) line: usize,
}

/// Which decimals a field accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Range {
    /// Zero or more: prices and fees (an airdrop is bought at 0).
    NonNegative,
    /// More than zero: quantities.
    Positive,
}

impl Place {
    /// An error at this place, about `field` if the problem is in one.
    pub(super) fn error(self, field: Option<&'static str>, problem: String) -> LedgerError {
        LedgerError::Line { file: self.file, line: self.line, field, problem }
    }

    /// An error about `field`, whose text was `text`.
    pub(super) fn invalid(self, field: &'static str, text: &str, reason: &str) -> LedgerError {
        self.error(Some(field), format!("invalid {field} {}: {reason}", shown(text)))
    }

    /// A plain decimal: digits with an optional fractional part, the
    /// scale kept as written. No exponent, sign, `_` separators or bare
    /// `.5`, which `rust_decimal` would otherwise accept: a ledger is
    /// written by programs, and a surprising spelling is more likely a bug
    /// upstream than an intent.
    pub(super) fn decimal(self, field: &'static str, text: &str, range: Range) -> Result<Decimal, LedgerError> {
        if text.starts_with('-') && is_plain_decimal(&text[1..]) {
            return Err(self.invalid(field, text, "must not be negative"));
        }
        if !is_plain_decimal(text) {
            return Err(self.invalid(field, text, "expected a plain decimal number such as 12.5"));
        }
        let value = Decimal::from_str_exact(text).map_err(|_| {
            self.invalid(field, text, "too many digits for a 96-bit decimal (at most 28 after the point)")
        })?;
        if range == Range::Positive && value.is_zero() {
            return Err(self.invalid(field, text, "must be greater than zero"));
        }
        Ok(value)
    }

    /// An RFC 3339 timestamp, as [`parse_timestamp`] reads it, in UTC.
    pub(super) fn timestamp(self, field: &'static str, text: &str) -> Result<OffsetDateTime, LedgerError> {
        parse_timestamp(text)
            .map_err(|_| self.invalid(field, text, "expected an RFC 3339 time such as 2026-11-24T10:59:30Z"))
    }
}

fn is_plain_decimal(text: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match text.split_once('.') {
        Some((whole, fraction)) => digits(whole) && digits(fraction),
        None => digits(text),
    }
}

/// `text`, quoted and escaped, cut short if long.
pub(super) fn shown(text: &str) -> String {
    match text.char_indices().nth(ECHO_LIMIT) {
        Some((cut, _)) => format!("{:?}… ({} bytes)", &text[..cut], text.len()),
        None => format!("{text:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLACE: Place = Place { file: "trades.csv", line: 12 };

    /// The data lines `for_each_line` hands over, as (line number, fields).
    fn lines(text: &str) -> Result<Vec<(usize, [String; 3])>, LedgerError> {
        let mut seen = Vec::new();
        for_each_line("prices.csv", Path::new("prices.csv"), &PRICE_COLUMNS, text.as_bytes(), |n, fields| {
            seen.push((n, fields.map(str::to_owned)));
            Ok(())
        })?;
        Ok(seen)
    }

    #[test]
    fn comments_blank_lines_crlf_and_spaces_are_skipped() {
        let text = "# a comment\n\n token , price,updated_at\r\n  # indented comment\na, 1.50 ,t\r\n\nb,2,u";
        let seen = lines(text).expect("valid");
        let owned = |a: &str, b: &str, c: &str| [a.to_owned(), b.to_owned(), c.to_owned()];
        assert_eq!(seen, [(5, owned("a", "1.50", "t")), (7, owned("b", "2", "u"))]);
    }

    #[test]
    fn the_header_is_required_first() {
        let err = lines("token,updated_at,price\na,1,t\n").expect_err("wrong header");
        assert_eq!(
            err.to_string(),
            r#"prices.csv line 1: expected the header "token,price,updated_at", found "token,updated_at,price""#
        );
        let err = lines("# only a comment\n\n").expect_err("no header");
        assert_eq!(err.to_string(), r#"prices.csv: no header line; expected "token,price,updated_at""#);
    }

    #[test]
    fn a_line_with_the_wrong_number_of_fields_is_refused() {
        let err = lines("token,price,updated_at\na,1\n").expect_err("two fields");
        assert_eq!(
            err.to_string(),
            "prices.csv line 2: expected 3 comma-separated fields (token,price,updated_at), found 2"
        );
        assert!(lines("token,price,updated_at\na,1,t,x\n").is_err(), "four fields");
    }

    #[test]
    fn invalid_utf8_is_refused_with_its_line() {
        let mut bytes = b"token,price,updated_at\n".to_vec();
        bytes.extend_from_slice(b"a,1,\xff\n");
        let err = for_each_line("prices.csv", Path::new("prices.csv"), &PRICE_COLUMNS, &bytes[..], |_, _| Ok(()))
            .expect_err("not UTF-8");
        assert_eq!(err.to_string(), "prices.csv line 2: not valid UTF-8");
    }

    #[test]
    fn decimals_keep_their_scale() {
        let value = PLACE.decimal("quantity", "1520.250000", Range::Positive).expect("valid");
        assert_eq!(value.to_string(), "1520.250000");
        assert_eq!(PLACE.decimal("fee", "0", Range::NonNegative).expect("valid"), Decimal::ZERO);
    }

    #[test]
    fn only_plain_decimals_are_accepted() {
        let cases = [
            ("1.2.3", "expected a plain decimal number such as 12.5"),
            ("1e5", "expected a plain decimal number such as 12.5"),
            ("1_000", "expected a plain decimal number such as 12.5"),
            ("+1", "expected a plain decimal number such as 12.5"),
            (".5", "expected a plain decimal number such as 12.5"),
            ("5.", "expected a plain decimal number such as 12.5"),
            ("", "expected a plain decimal number such as 12.5"),
            ("-3", "must not be negative"),
            ("0.000", "must be greater than zero"),
            ("79228162514264337593543950336", "too many digits"),
            ("0.00000000000000000000000000001", "too many digits"),
        ];
        for (text, reason) in cases {
            let err = PLACE.decimal("quantity", text, Range::Positive).expect_err(text);
            let LedgerError::Line { field, .. } = &err else { panic!("{err:?}") };
            assert_eq!(*field, Some("quantity"));
            let message = err.to_string();
            assert!(message.starts_with(&format!("trades.csv line 12: invalid quantity {text:?}: ")), "{message}");
            assert!(message.contains(reason), "{text}: {message}");
        }
    }

    #[test]
    fn timestamps_are_rfc3339() {
        let t = PLACE.timestamp("timestamp", "2026-11-24T12:59:30+02:00").expect("valid");
        assert_eq!(t, time::macros::datetime!(2026-11-24 10:59:30 UTC));
        let err = PLACE.timestamp("updated_at", "yesterday").expect_err("not a time");
        assert_eq!(
            err.to_string(),
            r#"trades.csv line 12: invalid updated_at "yesterday": expected an RFC 3339 time such as 2026-11-24T10:59:30Z"#
        );
    }

    #[test]
    fn long_text_is_not_echoed_whole() {
        let err = PLACE.decimal("price", &"9".repeat(5000), Range::NonNegative).expect_err("too long");
        assert!(err.to_string().len() < 200, "{err}");
    }
}
