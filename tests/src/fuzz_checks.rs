//! The properties of the parsers that read untrusted bytes, written once
//! and checked two ways: by the cargo-fuzz targets in `fuzz/` (`cargo xtask
//! fuzz`, for minutes, coverage-guided) and by the property tests in
//! `tests/parsers.rs` (every `cargo xtask ci`, in a second).
//!
//! Each check takes arbitrary bytes, so a fuzz target is one line, and
//! panics naming the property when one fails; it returns normally for input
//! the parser rightly refuses. Every check holds two things:
//!
//! - no input makes the parser (or anything it hands its result to) panic;
//! - what parses comes back as the same value after going through the
//!   form the service writes it in.
//!
//! What this is not: a place for the parsers' own unit tests (each lives at
//! the foot of its file), nor a second implementation of a parser. Where a
//! check needs an oracle it uses a much simpler one that cannot share the
//! parser's mistakes: a digit-by-digit reading of decimal text, a table
//! matcher for `*` and `?`.

use cache_core::glob::{Pattern, escape};
use cache_redis::envelope;
use positions_api::source::http::parse_body;
use positions_api::{Decimal, Position, Positions, Snapshot, StoredSnapshot, Wallet};

/// The upstream body parser ([`parse_body`]).
///
/// A body that parses renders to JSON (as the service renders positions),
/// and that JSON parses back to the same positions. Every decimal it
/// accepted has exactly the value of the text the upstream sent, string or
/// number, exponent or not: a digit that does not fit must be an error, not
/// a rounding.
///
/// # Panics
///
/// When a property fails.
pub fn upstream_body(bytes: &[u8]) {
    let Ok(positions) = parse_body(bytes) else { return };
    let rendered = serde_json::to_vec(&positions).expect("parsed positions render to JSON");
    let again = parse_body(&rendered).unwrap_or_else(|e| {
        panic!("rendered positions do not parse back: {e}\nrendered: {}", String::from_utf8_lossy(&rendered))
    });
    assert_eq!(again, positions, "positions changed on the way through JSON");
    decimals_are_exact(bytes, &positions);
}

/// Compares every decimal field of `positions` with the text it was parsed
/// from in `body`.
fn decimals_are_exact(body: &[u8], positions: &Positions) {
    // serde_json keeps a number's text (`arbitrary_precision`), so the
    // `Value` holds exactly what the upstream sent.
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else { return };
    for (i, position) in positions.positions.iter().enumerate() {
        let sent = &value["positions"][i];
        for (field, parsed) in decimal_fields(position) {
            let text = match &sent[field] {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.as_str().to_owned(),
                _ => continue,
            };
            let Some(parsed) = parsed else { panic!("positions[{i}].{field}: {text:?} was read as null") };
            // Text outside the plain grammar (digit separators and the
            // like) is left to the parser's own tests.
            let Some(exact) = exact_value(&text) else { continue };
            assert_eq!(
                exact_value(&parsed.to_string()),
                Some(exact),
                "positions[{i}].{field}: {text:?} was read as {parsed}, which is not the same number"
            );
        }
    }
}

fn decimal_fields(p: &Position) -> [(&'static str, Option<Decimal>); 7] {
    [
        ("quantity", Some(p.quantity)),
        ("avg_cost", Some(p.avg_cost)),
        ("cost_basis", Some(p.cost_basis)),
        ("price", p.price),
        ("market_value", p.market_value),
        ("unrealized_pnl", p.unrealized_pnl),
        ("realized_pnl", Some(p.realized_pnl)),
    ]
}

/// The number decimal text stands for, as a sign, its significant digits
/// (no leading or trailing zero; empty for zero, which has no sign) and a
/// power of ten: `-1.50e3` is `(true, "15", 2)`. `None` for text that is
/// not `[+-]digits[.digits][(e|E)[+-]digits]`, or whose exponent does not
/// fit an `i64`.
fn exact_value(text: &str) -> Option<(bool, String, i64)> {
    let (negative, unsigned) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((m, e)) => {
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (m, e.parse::<i64>().ok()?)
        }
        None => (unsigned, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.len() + frac.len() == 0 || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let all = format!("{int}{frac}");
    let significant = all.trim_start_matches('0');
    let trimmed = significant.trim_end_matches('0');
    if trimmed.is_empty() {
        return Some((false, String::new(), 0));
    }
    let trailing_zeros = i64::try_from(significant.len() - trimmed.len()).ok()?;
    let power = exponent.checked_sub(i64::try_from(frac.len()).ok()?)?.checked_add(trailing_zeros)?;
    Some((negative, trimmed.to_owned(), power))
}

/// The Redis value envelope ([`envelope::decode`]) with the type the
/// service stores in it, [`StoredSnapshot`], and what the service makes of
/// one ([`Snapshot::from_stored`]: inflating, checking).
///
/// A value that decodes encodes again, and those bytes decode to the same
/// value and time and are a fixed point of decode-then-encode. A decoded
/// envelope cut short by one byte never decodes. A stored snapshot the
/// service accepts is stored again as exactly the same value.
///
/// # Panics
///
/// When a property fails.
pub fn envelope(bytes: &[u8]) {
    let Ok(stored) = envelope::decode::<StoredSnapshot>(bytes) else { return };
    let encoded = envelope::encode(&stored.value, stored.fetched_at).expect("a decoded value encodes again");
    let again = envelope::decode::<StoredSnapshot>(&encoded).expect("re-encoded bytes decode");
    assert_eq!(again, stored, "the value or its fetched_at changed on the way through the envelope");
    let twice = envelope::encode(&again.value, again.fetched_at).expect("a decoded value encodes again");
    assert_eq!(twice, encoded, "encoding is not a fixed point of decode-then-encode");
    assert!(
        envelope::decode::<StoredSnapshot>(&bytes[..bytes.len() - 1]).is_err(),
        "a valid envelope cut short by one byte still decodes"
    );
    if let Some(snapshot) = Snapshot::from_stored(stored.value.clone()) {
        assert_eq!(snapshot.to_stored(), stored.value, "an accepted snapshot is not stored as it came");
    }
}

/// The longest error message a wallet may produce, whatever it was given:
/// the input is echoed cut short, not whole.
const MAX_WALLET_ERROR_BYTES: usize = 1024;

/// The wallet parser ([`Wallet::parse`]), on the bytes read as UTF-8
/// (invalid sequences replaced, so every input reaches the parser).
///
/// A wallet that parses is in canonical form (`0x` and 40 lower-case hex
/// digits, or 32 to 44 base58 characters), is the input with only the
/// letter case of an EVM address changed, and parses to itself, also
/// through serde. A refusal is a bounded one-line message.
///
/// # Panics
///
/// When a property fails.
pub fn wallet(bytes: &[u8]) {
    let input = String::from_utf8_lossy(bytes);
    let wallet = match Wallet::parse(&input) {
        Ok(wallet) => wallet,
        Err(e) => {
            let message = e.to_string();
            assert!(message.starts_with("invalid wallet "), "{message}");
            assert!(message.len() <= MAX_WALLET_ERROR_BYTES, "error message of {} bytes", message.len());
            assert!(!message.contains('\n'), "error message on more than one line: {message}");
            return;
        }
    };
    let canonical = wallet.as_str();
    let evm = canonical.len() == 42
        && canonical.starts_with("0x")
        && canonical[2..].bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let base58 = (32..=44).contains(&canonical.len())
        && canonical.bytes().all(|b| b.is_ascii_alphanumeric() && !b"0OIl".contains(&b));
    assert!(evm || base58, "{input:?} was accepted as {canonical:?}, which is not canonical");
    assert_eq!(wallet.is_evm(), evm, "{canonical:?}: is_evm is wrong");
    if evm {
        assert_eq!(canonical, input.to_ascii_lowercase(), "an EVM address changed beyond its letter case");
    } else {
        assert_eq!(canonical, input, "a base58 address changed");
    }
    assert_eq!(Wallet::parse(canonical).as_ref(), Ok(&wallet), "the canonical form does not parse to itself");
    let json = serde_json::to_string(&wallet).expect("a wallet serializes");
    assert_eq!(serde_json::from_str::<Wallet>(&json).ok().as_ref(), Some(&wallet), "serde round trip: {json}");
}

/// Inputs at most this long (pattern bytes times text bytes) are also
/// checked against the table matcher, which costs their product. Kept
/// small: under the fuzzer's instrumentation every cell costs several
/// traced comparisons, and short inputs are where a matcher goes wrong.
const ORACLE_CELLS: usize = 1 << 12;

/// The glob matcher ([`Pattern`], [`escape`]), on the bytes read as UTF-8
/// and split at the first newline into a pattern and a text.
///
/// Parsing any pattern and matching any text never panics, and
/// `matches` agrees with `matches_bytes`. [`escape`] makes a literal
/// pattern that matches exactly the text it escaped and nothing else, and
/// that composes with wildcards: `escape(a)*` matches `a` followed by
/// anything, `*escape(a)` anything ending in `a`, `escape(a)?escape(b)` `a`,
/// any one byte, then `b`. A pattern built from escaped pieces and `*` and
/// `?` matches exactly what a dynamic-programming table says it should.
///
/// # Panics
///
/// When a property fails.
pub fn glob(bytes: &[u8]) {
    let input = String::from_utf8_lossy(bytes);
    let (pattern, text) = input.split_once('\n').unwrap_or((&input, ""));

    if let Ok(p) = Pattern::new(pattern) {
        assert_eq!(p.matches(text), p.matches_bytes(text.as_bytes()), "{pattern:?} on {text:?}");
        assert_eq!(p.as_str(), pattern);
        if p.is_literal() {
            // Without a wildcard, a pattern matches one string: itself with
            // each escaping backslash taken out.
            let mut unescaped = String::new();
            let mut chars = pattern.chars();
            while let Some(c) = chars.next() {
                unescaped.push(if c == '\\' { chars.next().expect("a valid pattern ends unescaped") } else { c });
            }
            assert_eq!(p.matches(text), text == unescaped, "literal {pattern:?} on {text:?}");
        }
    }

    for (a, b) in [(pattern, text), (text, pattern)] {
        let literal = Pattern::new(&escape(a)).expect("escaped text is a valid pattern");
        assert!(literal.is_literal(), "escape({a:?}) has a wildcard");
        assert!(literal.matches(a), "escape({a:?}) does not match {a:?}");
        assert_eq!(literal.matches(b), a == b, "escape({a:?}) on {b:?}");
        let prefix = Pattern::new(&format!("{}*", escape(a))).expect("valid");
        assert!(prefix.matches(&format!("{a}{b}")), "escape({a:?})* does not match {a:?}{b:?}");
        let suffix = Pattern::new(&format!("*{}", escape(a))).expect("valid");
        assert!(suffix.matches(&format!("{b}{a}")), "*escape({a:?}) does not match {b:?}{a:?}");
        let one = Pattern::new(&format!("{}?{}", escape(a), escape(b))).expect("valid");
        assert!(one.matches(&format!("{a}x{b}")), "escape({a:?})?escape({b:?}) does not match {a:?}x{b:?}");
        assert!(!one.matches(&format!("{a}{b}")), "escape({a:?})?escape({b:?}) matches without the byte");
    }

    wildcards_match_as_the_table_says(pattern, text);
}

/// One step of a pattern as the table matcher sees it.
#[derive(Debug, Clone, Copy)]
enum Item {
    Byte(u8),
    One,
    Run,
}

/// Reads `shape` as wildcards (`*`, `?`) between literal pieces, builds the
/// pattern with the pieces escaped, and compares its answer on `text` with
/// a table of which pattern prefix matches which text prefix.
fn wildcards_match_as_the_table_says(shape: &str, text: &str) {
    if shape.len().saturating_mul(text.len()) > ORACLE_CELLS {
        return;
    }
    let mut pattern = String::new();
    let mut items = Vec::new();
    for c in shape.chars() {
        match c {
            '*' => {
                pattern.push('*');
                items.push(Item::Run);
            }
            '?' => {
                pattern.push('?');
                items.push(Item::One);
            }
            c => {
                let mut buf = [0; 4];
                pattern.push_str(&escape(c.encode_utf8(&mut buf)));
                items.extend(c.encode_utf8(&mut buf).bytes().map(Item::Byte));
            }
        }
    }
    let text = text.as_bytes();
    // row[j]: the items so far match text[..j].
    let mut row = vec![false; text.len() + 1];
    row[0] = true;
    for item in &items {
        let mut next = vec![false; text.len() + 1];
        for j in 0..=text.len() {
            next[j] = match item {
                Item::Run => row[j] || (j > 0 && next[j - 1]),
                Item::One => j > 0 && row[j - 1],
                Item::Byte(b) => j > 0 && row[j - 1] && text[j - 1] == *b,
            };
        }
        row = next;
    }
    let p = Pattern::new(&pattern).expect("a pattern of escaped pieces and wildcards is valid");
    assert_eq!(p.matches_bytes(text), row[text.len()], "{pattern:?} on {:?}", String::from_utf8_lossy(text));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_value_reads_every_spelling_of_a_number_alike() {
        let fifteen_hundred = Some((false, "15".to_owned(), 2));
        for text in ["1500", "1500.000", "+1.5e3", "1.50E+3", "15e2", "0001500", "150000e-2", ".15e4", "1500."] {
            assert_eq!(exact_value(text), fifteen_hundred, "{text}");
        }
        assert_eq!(exact_value("-0.00120"), Some((true, "12".to_owned(), -4)));
        for zero in ["0", "-0", "0.000", "0e99", "-.0"] {
            assert_eq!(exact_value(zero), Some((false, String::new(), 0)), "{zero}");
        }
        for other in ["", "-", ".", "1e", "1e+", "e5", "1_000", "1.2.3", "0x10", "NaN", "1e99999999999999999999"] {
            assert_eq!(exact_value(other), None, "{other}");
        }
    }

    #[test]
    fn a_rounded_decimal_is_caught() {
        let body = br#"{"positions": [{"token": "t", "symbol": "T", "quantity": "1.5", "avg_cost": 2,
            "cost_basis": 3, "realized_pnl": 0, "confidence": "low"}]}"#;
        upstream_body(body);
        let mut positions = parse_body(body).expect("valid");
        positions.positions[0].avg_cost = Decimal::new(20_001, 4);
        let outcome = std::panic::catch_unwind(|| decimals_are_exact(body, &positions));
        assert!(outcome.is_err(), "2 read as 2.0001 passed");
    }
}
