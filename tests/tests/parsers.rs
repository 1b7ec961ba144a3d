//! The parsers that read untrusted bytes, held to their properties on every
//! test run: the same checks the fuzz targets run (`system_tests::
//! fuzz_checks`), over arbitrary bytes, over structured inputs that get past
//! the first byte (valid-looking upstream bodies, envelopes made by
//! `encode`, wallet-shaped strings, patterns full of special characters)
//! and their mutations, and over every committed seed and regression input
//! in `fuzz/`.
//!
//! This is the quick pass; `cargo xtask fuzz` runs the same properties for
//! minutes under libFuzzer's coverage guidance.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, UNIX_EPOCH};

use cache_redis::envelope;
use positions_api::source::http::parse_body;
use positions_api::{Confidence, Decimal, Position, Positions, Snapshot, StoredSnapshot, Wallet};
use proptest::prelude::*;
use system_tests::fuzz_checks;
use time::OffsetDateTime;

/// A property check over arbitrary bytes.
type Check = fn(&[u8]);

/// Each fuzz target, by the name of its folder under `fuzz/corpus/` and
/// `fuzz/regressions/`, with its check.
const TARGETS: [(&str, Check); 4] = [
    ("upstream_body", fuzz_checks::upstream_body),
    ("envelope", fuzz_checks::envelope),
    ("wallet", fuzz_checks::wallet),
    ("glob", fuzz_checks::glob),
];

/// Regression inputs whose bug is known and not fixed yet: each is
/// expected to fail its check, and the test fails when it no longer does,
/// so that the entry is removed (and the input guards the fix) the moment
/// the parser is fixed.
const KNOWN_OPEN: &[(&str, &str, &str)] = &[];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries.map(|e| e.expect("readable directory").path()).collect();
    files.sort();
    files
}

fn holds(check: Check, input: &[u8]) -> bool {
    std::panic::catch_unwind(|| check(input)).is_ok()
}

thread_local! {
    /// Set while this thread runs an input that is expected to fail.
    static EXPECTING_A_PANIC: Cell<bool> = const { Cell::new(false) };
}

/// Like `!holds`, for a known-open input: its panic is expected, so it is
/// not printed (with a backtrace) into the test output. Panics on other
/// threads print as always.
fn fails_quietly(check: Check, input: &[u8]) -> bool {
    static QUIET_HOOK: Once = Once::new();
    QUIET_HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !EXPECTING_A_PANIC.get() {
                default(info);
            }
        }));
    });
    EXPECTING_A_PANIC.set(true);
    let failed = !holds(check, input);
    EXPECTING_A_PANIC.set(false);
    failed
}

#[test]
fn every_seed_and_fixed_regression_holds_and_known_open_ones_still_fail() {
    let mut seeds = 0;
    for (target, check) in TARGETS {
        let corpus = files_in(&fuzz_dir().join("corpus").join(target));
        assert!(!corpus.is_empty(), "no seed corpus for {target}");
        for file in corpus {
            let input = std::fs::read(&file).expect("readable seed");
            assert!(holds(check, &input), "seed {} fails its check", file.display());
            seeds += 1;
        }
        for file in files_in(&fuzz_dir().join("regressions").join(target)) {
            let input = std::fs::read(&file).expect("readable regression input");
            let name = file.file_name().and_then(|n| n.to_str()).expect("a UTF-8 file name");
            match KNOWN_OPEN.iter().find(|(t, n, _)| *t == target && *n == name) {
                None => assert!(holds(check, &input), "regression {} fails its check again", file.display()),
                Some((_, _, bug)) => assert!(
                    fails_quietly(check, &input),
                    "{} passes now ({bug}): remove it from KNOWN_OPEN so that it guards the fix",
                    file.display()
                ),
            }
        }
    }
    assert!(seeds >= 4 * 4, "only {seeds} seeds");
    for (target, name, _) in KNOWN_OPEN {
        assert!(fuzz_dir().join("regressions").join(target).join(name).is_file(), "KNOWN_OPEN names {target}/{name}");
    }
}

/// What the service stores in Redis for `positions` of a fixed wallet:
/// the rendered, compressed snapshot.
fn stored_of(positions: &Positions) -> StoredSnapshot {
    let wallet = Wallet::parse("0x52908400098527886e0f7030069857d2e4169ee7").expect("a valid wallet");
    let at = OffsetDateTime::from_unix_timestamp(1_795_000_000).expect("in range");
    Snapshot::render(&wallet, positions, at).to_stored()
}

/// The envelope seeds: values as the service stores them, written by
/// `encode`. The test checks the committed files are exactly what `encode`
/// writes today; `FUZZ_SEEDS=write` rewrites them (after an envelope
/// format change).
fn envelope_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let d = |s: &str| s.parse::<Decimal>().expect("a valid decimal");
    let at = |s: &str| positions_api::parse_timestamp(s).expect("a valid timestamp");
    let usdc = Position {
        token: "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48".to_owned(),
        symbol: "USDC".to_owned(),
        quantity: d("1520.250000"),
        avg_cost: d("0.9998"),
        cost_basis: d("1519.945950"),
        price: Some(d("1.0001")),
        market_value: Some(d("1520.402025")),
        unrealized_pnl: Some(d("0.456075")),
        realized_pnl: d("12.50"),
        confidence: Confidence::High,
        price_updated_at: Some(at("2026-11-24T10:59:30Z")),
    };
    let unpriced = Position {
        token: "So11111111111111111111111111111111111111112".to_owned(),
        symbol: "SOL".to_owned(),
        quantity: d("123456789.012345678901234567"),
        avg_cost: d("-0.0000000000000000000000000001"),
        cost_basis: d("0"),
        price: None,
        market_value: None,
        unrealized_pnl: None,
        realized_pnl: d("-79228162514264337593543950335"),
        confidence: Confidence::Low,
        price_updated_at: None,
    };
    let fetched_at = UNIX_EPOCH + Duration::new(1_795_000_000, 123_456_789);
    let encode = |value: &Positions| envelope::encode(&stored_of(value), fetched_at).expect("encodes");
    vec![
        ("empty", encode(&Positions::default())),
        (
            "one-position",
            encode(&Positions { positions: vec![usdc.clone()], computed_at: Some(at("2026-11-24T11:00:00Z")) }),
        ),
        (
            "extremes",
            encode(&Positions {
                positions: vec![unpriced, usdc],
                computed_at: Some(at("9999-12-31T23:59:59.999999999Z")),
            }),
        ),
    ]
}

#[test]
fn the_envelope_seeds_are_what_encode_writes() {
    let dir = fuzz_dir().join("corpus/envelope");
    for (name, bytes) in envelope_seeds() {
        let path = dir.join(name);
        if std::env::var_os("FUZZ_SEEDS").is_some_and(|v| v == "write") {
            std::fs::write(&path, &bytes).expect("writable corpus");
        }
        let committed = std::fs::read(&path).unwrap_or_default();
        assert!(committed == bytes, "{} is not what encode writes now; FUZZ_SEEDS=write rewrites it", path.display());
    }
}

/// Some edit of `bytes`: one byte replaced, inserted or removed, or the
/// tail cut off, at a position chosen by `at`.
fn mutate(mut bytes: Vec<u8>, kind: u8, at: usize, byte: u8) -> Vec<u8> {
    let i = at % (bytes.len() + 1);
    match kind % 4 {
        0 if i < bytes.len() => bytes[i] = byte,
        1 => bytes.insert(i, byte),
        2 if i < bytes.len() => {
            bytes.remove(i);
        }
        _ => bytes.truncate(i),
    }
    bytes
}

fn mutation() -> impl Strategy<Value = (u8, usize, u8)> {
    (any::<u8>(), any::<usize>(), any::<u8>())
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..512)
}

// ---------------------------------------------------------------- upstream

/// A decimal as an upstream may send it, exactly representable: a JSON
/// number (plain or in exponent form) or the same text in a string.
fn decimal_json() -> impl Strategy<Value = String> {
    let int = prop_oneof![Just("0".to_owned()), "[1-9][0-9]{0,9}"];
    let frac = proptest::option::of("[0-9]{1,8}");
    let exponent = proptest::option::of(("[eE]", prop_oneof![Just(""), Just("+"), Just("-")], 0_u8..=6));
    (any::<bool>(), int, frac, exponent, any::<bool>()).prop_map(|(negative, int, frac, exponent, quoted)| {
        let mut text = if negative { "-".to_owned() } else { String::new() };
        text.push_str(&int);
        if let Some(frac) = frac {
            text.push('.');
            text.push_str(&frac);
        }
        if let Some((e, sign, power)) = exponent {
            text.push_str(&e);
            text.push_str(sign);
            text.push_str(&power.to_string());
        }
        if quoted { format!("\"{text}\"") } else { text }
    })
}

/// An RFC 3339 timestamp, or one without an offset, as a JSON string. Years
/// stay a day clear of 0000 and 9999, where an offset would carry them out.
fn timestamp_json() -> impl Strategy<Value = String> {
    let fraction = proptest::option::of("[0-9]{1,9}");
    let offset = prop_oneof![Just(String::new()), Just("Z".to_owned()), "[+-](0[0-9]|1[0-3]):[0-5][0-9]"];
    (1_u16..=9998, 1_u8..=12, 1_u8..=28, 0_u8..24, 0_u8..60, 0_u8..60, fraction, offset).prop_map(
        |(year, month, day, hour, minute, second, fraction, offset)| {
            let fraction = fraction.map(|f| format!(".{f}")).unwrap_or_default();
            format!("\"{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{fraction}{offset}\"")
        },
    )
}

/// `"name": value,` for an optional field: absent, null or a value.
fn optional_field(name: &'static str, value: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(format!("\"{name}\": null, ")),
        value.prop_map(move |v| format!("\"{name}\": {v}, ")),
    ]
}

fn position_json() -> impl Strategy<Value = String> {
    let confidence = prop_oneof![Just("high"), Just("HIGH"), Just("Medium"), Just("low"), Just("lOw")];
    (
        (any::<String>(), "[A-Za-z0-9. ]{0,8}", decimal_json(), decimal_json(), decimal_json(), decimal_json()),
        (
            optional_field("price", decimal_json()),
            optional_field("market_value", decimal_json()),
            optional_field("unrealized_pnl", decimal_json()),
            optional_field("price_updated_at", timestamp_json()),
            optional_field(
                "extra",
                prop_oneof![Just("{\"nested\": [1, 2.5e300, null]}".to_owned()), Just("\"x\"".to_owned())],
            ),
        ),
        confidence,
    )
        .prop_map(|((token, symbol, quantity, avg_cost, cost_basis, realized), optional, confidence)| {
            let (price, market_value, unrealized, price_updated_at, extra) = optional;
            let token = serde_json::to_string(&token).expect("a string serializes");
            format!(
                "{{{extra}\"token\": {token}, \"symbol\": \"{symbol}\", \"quantity\": {quantity}, \
                 \"avg_cost\": {avg_cost}, \"cost_basis\": {cost_basis}, {price}{market_value}{unrealized}\
                 \"realized_pnl\": {realized}, {price_updated_at}\"confidence\": \"{confidence}\"}}"
            )
        })
}

fn upstream_body_json() -> impl Strategy<Value = String> {
    (optional_field("computed_at", timestamp_json()), proptest::collection::vec(position_json(), 0..4)).prop_map(
        |(computed_at, positions)| {
            format!("{{\"wallet\": \"0xignored\", {computed_at}\"positions\": [{}]}}", positions.join(", "))
        },
    )
}

proptest! {
    #[test]
    fn upstream_body_holds_on_arbitrary_bytes(input in bytes()) {
        fuzz_checks::upstream_body(&input);
    }

    #[test]
    fn upstream_body_holds_on_valid_bodies(body in upstream_body_json()) {
        // The generator only writes valid bodies, so the round trip and
        // the exactness check are reached every time.
        prop_assert!(parse_body(body.as_bytes()).is_ok(), "{body}: {:?}", parse_body(body.as_bytes()));
        fuzz_checks::upstream_body(body.as_bytes());
    }

    #[test]
    fn upstream_body_holds_on_edited_bodies(body in upstream_body_json(), (kind, at, byte) in mutation()) {
        fuzz_checks::upstream_body(&mutate(body.into_bytes(), kind, at, byte));
    }
}

// ---------------------------------------------------------------- envelope

fn decimal() -> impl Strategy<Value = Decimal> {
    (any::<(u32, u32, u32)>(), any::<bool>(), 0_u32..=28)
        .prop_map(|((lo, mid, hi), negative, scale)| Decimal::from_parts(lo, mid, hi, negative, scale))
}

/// A time in years 0001 to 9998, to the nanosecond.
fn timestamp() -> impl Strategy<Value = OffsetDateTime> {
    (-62_135_596_800_i64..253_370_764_800, 0_u32..1_000_000_000).prop_map(|(seconds, nanos)| {
        OffsetDateTime::from_unix_timestamp(seconds)
            .expect("in range")
            .replace_nanosecond(nanos)
            .expect("a valid nanosecond")
    })
}

fn position() -> impl Strategy<Value = Position> {
    let confidence = prop_oneof![Just(Confidence::High), Just(Confidence::Medium), Just(Confidence::Low)];
    (
        (any::<String>(), any::<String>(), decimal(), decimal(), decimal(), decimal()),
        (
            proptest::option::of(decimal()),
            proptest::option::of(decimal()),
            proptest::option::of(decimal()),
            confidence,
            proptest::option::of(timestamp()),
        ),
    )
        .prop_map(
            |(
                (token, symbol, quantity, avg_cost, cost_basis, realized_pnl),
                (price, market_value, unrealized_pnl, confidence, price_updated_at),
            )| Position {
                token,
                symbol,
                quantity,
                avg_cost,
                cost_basis,
                price,
                market_value,
                unrealized_pnl,
                realized_pnl,
                confidence,
                price_updated_at,
            },
        )
}

fn positions() -> impl Strategy<Value = Positions> {
    (proptest::collection::vec(position(), 0..4), proptest::option::of(timestamp()))
        .prop_map(|(positions, computed_at)| Positions { positions, computed_at })
}

proptest! {
    #[test]
    fn envelope_holds_on_arbitrary_bytes(input in bytes()) {
        fuzz_checks::envelope(&input);
        // And on the same bytes behind a valid header, so that the payload
        // decoder sees them.
        let mut enveloped = envelope::encode(&(), UNIX_EPOCH).expect("encodes");
        enveloped.extend_from_slice(&input);
        fuzz_checks::envelope(&enveloped);
    }

    #[test]
    fn envelope_holds_on_encoded_values(positions in positions(), nanos in any::<u64>()) {
        let fetched_at = UNIX_EPOCH + Duration::from_nanos(nanos);
        let value = stored_of(&positions);
        let bytes = envelope::encode(&value, fetched_at).expect("encodes");
        fuzz_checks::envelope(&bytes);
        // What `encode` wrote is canonical: it decodes to the value and
        // encodes to the identical bytes; the service takes it back.
        let stored = envelope::decode::<StoredSnapshot>(&bytes).expect("decodes");
        prop_assert!(Snapshot::from_stored(stored.value.clone()).is_some());
        prop_assert_eq!(&stored.value, &value);
        prop_assert_eq!(stored.fetched_at, fetched_at);
        prop_assert_eq!(envelope::encode(&stored.value, stored.fetched_at).expect("encodes"), bytes);
    }

    #[test]
    fn envelope_holds_on_edited_envelopes(positions in positions(), (kind, at, byte) in mutation()) {
        let bytes = envelope::encode(&stored_of(&positions), UNIX_EPOCH).expect("encodes");
        fuzz_checks::envelope(&mutate(bytes, kind, at, byte));
    }
}

// ------------------------------------------------------------------ wallet

proptest! {
    #[test]
    fn wallet_holds_on_arbitrary_bytes(input in bytes()) {
        fuzz_checks::wallet(&input);
    }

    #[test]
    fn wallet_holds_on_arbitrary_text(input in any::<String>()) {
        fuzz_checks::wallet(input.as_bytes());
    }

    #[test]
    fn wallet_holds_on_evm_addresses(input in "0[xX][0-9a-fA-F]{40}") {
        prop_assert!(Wallet::parse(&input).is_ok(), "{}", input);
        fuzz_checks::wallet(input.as_bytes());
    }

    #[test]
    fn wallet_holds_on_base58_addresses(input in "[1-9A-HJ-NP-Za-km-z]{32,44}") {
        prop_assert!(Wallet::parse(&input).is_ok(), "{}", input);
        fuzz_checks::wallet(input.as_bytes());
    }

    #[test]
    fn wallet_holds_on_near_misses(input in "0?[xX]?[0-9a-zA-Z]{30,46}") {
        fuzz_checks::wallet(input.as_bytes());
    }
}

// -------------------------------------------------------------------- glob

proptest! {
    #[test]
    fn glob_holds_on_arbitrary_bytes(input in bytes()) {
        fuzz_checks::glob(&input);
    }

    #[test]
    fn glob_holds_on_arbitrary_text(pattern in "[^\n]{0,24}", text in "[^\n]{0,24}") {
        fuzz_checks::glob(format!("{pattern}\n{text}").as_bytes());
    }

    #[test]
    fn glob_holds_on_special_characters(pattern in r"[ab*?\[\]^\\-]{0,16}", text in r"[ab*?\[\]^\\-]{0,16}") {
        // A small alphabet, so that patterns often parse and often match.
        fuzz_checks::glob(format!("{pattern}\n{text}").as_bytes());
    }
}
