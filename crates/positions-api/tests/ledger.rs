//! The ledger source from the outside: positions computed by hand and
//! compared digit for digit, the committed sample, loading from a
//! directory, and the generator binary.
//!
//! Every expected figure below is a literal worked out by hand; the
//! comment beside it shows the arithmetic. Decimals keep the scale their
//! inputs give them (`10.000 × 2.50 = 25.00000`); the average cost is
//! rounded to 18 places and loses trailing zeros.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use positions_api::source::Source;
use positions_api::source::ledger::{Ledger, LedgerError};
use positions_api::{Position, Wallet};

const TRADES_HEADER: &str = "wallet,token,symbol,side,quantity,price,fee,timestamp";
const PRICES_HEADER: &str = "token,price,updated_at";
const W: &str = "0x1111111111111111111111111111111111111111";
/// Tokens A, B, C, D, E, in address order.
const A: &str = "0x00000000000000000000000000000000000000a1";
const B: &str = "0x00000000000000000000000000000000000000b2";
const C: &str = "0x00000000000000000000000000000000000000c3";
const D: &str = "0x00000000000000000000000000000000000000d4";
const E: &str = "0x00000000000000000000000000000000000000e5";
/// The as-of time of the hand-made ledgers: every one has a price at it.
const AS_OF: &str = "2026-11-24T11:00:00Z";

/// A ledger from trade lines `(token, side, quantity, price, fee, time)`
/// of wallet `W` and price lines `(token, price, updated_at)`.
fn ledger(trades: &[(&str, &str, &str, &str, &str, &str)], prices: &[(&str, &str, &str)]) -> Ledger {
    let trade_lines = trades.iter().map(|(token, side, quantity, price, fee, time)| {
        format!("{W},{token},{},{side},{quantity},{price},{fee},{time}\n", symbol(token))
    });
    let trades_csv: String = std::iter::once(format!("{TRADES_HEADER}\n")).chain(trade_lines).collect();
    let price_lines = prices.iter().map(|(token, price, updated_at)| format!("{token},{price},{updated_at}\n"));
    let prices_csv: String = std::iter::once(format!("{PRICES_HEADER}\n")).chain(price_lines).collect();
    Ledger::from_strs(&trades_csv, &prices_csv).expect("a valid ledger")
}

fn symbol(token: &str) -> &'static str {
    match token {
        A => "AAA",
        B => "BBB",
        C => "CCC",
        D => "DDD",
        _ => "EEE",
    }
}

fn wallet(text: &str) -> Wallet {
    Wallet::parse(text).expect("a valid wallet")
}

/// `W`'s positions, one line each: the figures a user reads, as text.
fn positions(ledger: &Ledger) -> Vec<String> {
    positions_of(ledger, W)
}

fn positions_of(ledger: &Ledger, w: &str) -> Vec<String> {
    ledger.positions(&wallet(w)).expect("computes").iter().map(show).collect()
}

fn show(p: &Position) -> String {
    let opt = |d: Option<rust_decimal::Decimal>| d.map_or_else(|| "null".to_owned(), |d| d.to_string());
    format!(
        "{} q={} avg={} basis={} price={} mv={} upnl={} rpnl={} {:?}",
        p.symbol,
        p.quantity,
        p.avg_cost,
        p.cost_basis,
        opt(p.price),
        opt(p.market_value),
        opt(p.unrealized_pnl),
        p.realized_pnl,
        p.confidence
    )
}

#[test]
fn a_single_buy() {
    let l = ledger(&[(A, "buy", "10.000", "2.50", "0", "2026-11-24T10:00:00Z")], &[(A, "3.00", AS_OF)]);
    // basis 10.000 × 2.50 + 0 = 25.00000; avg 25.00000 / 10.000 = 2.5;
    // mv 10.000 × 3.00 = 30.00000; upnl 30.00000 − 25.00000 = 5.00000.
    assert_eq!(positions(&l), ["AAA q=10.000 avg=2.5 basis=25.00000 price=3.00 mv=30.00000 upnl=5.00000 rpnl=0 High"]);
}

#[test]
fn two_buys_make_an_average_cost() {
    let l = ledger(
        &[
            (A, "buy", "10", "2.00", "0", "2026-11-24T09:00:00Z"),
            (A, "buy", "30", "3.00", "0", "2026-11-24T10:00:00Z"),
            (B, "buy", "1", "1.00", "0", "2026-11-24T09:00:00Z"),
            (B, "buy", "2", "0.50", "0", "2026-11-24T10:00:00Z"),
        ],
        &[(A, "2.80", AS_OF), (B, "0.70", AS_OF)],
    );
    assert_eq!(
        positions(&l),
        [
            // basis 10 × 2.00 + 30 × 3.00 = 20.00 + 90.00 = 110.00 for 40:
            // avg 2.75; mv 40 × 2.80 = 112.00; upnl 112.00 − 110.00 = 2.00.
            "AAA q=40 avg=2.75 basis=110.00 price=2.80 mv=112.00 upnl=2.00 rpnl=0 High",
            // basis 1 × 1.00 + 2 × 0.50 = 2.00 for 3: avg 0.666…, 18 places
            // rounded up to …667; mv 3 × 0.70 = 2.10; upnl 0.10.
            "BBB q=3 avg=0.666666666666666667 basis=2.00 price=0.70 mv=2.10 upnl=0.10 rpnl=0 High",
        ]
    );
}

#[test]
fn a_partial_sell_realizes_and_keeps_the_rest_of_the_basis() {
    let l = ledger(
        &[(A, "buy", "10", "4.00", "0", "2026-11-24T09:00:00Z"), (A, "sell", "4", "5.00", "0", "2026-11-24T10:00:00Z")],
        &[(A, "4.50", AS_OF)],
    );
    // buy: basis 10 × 4.00 = 40.00, avg 4.
    // sell 4: rpnl 4 × (5.00 − 4) − 0 = 4.00; basis 40.00 − 4 × 4 = 24.00;
    // q 6, avg still 4; mv 6 × 4.50 = 27.00; upnl 27.00 − 24.00 = 3.00.
    assert_eq!(positions(&l), ["AAA q=6 avg=4 basis=24.00 price=4.50 mv=27.00 upnl=3.00 rpnl=4.00 High"]);
}

#[test]
fn a_sell_beyond_holdings_is_clamped_logged_once_and_low() {
    let l = ledger(
        &[
            (A, "buy", "5", "10", "0", "2026-11-24T09:00:00Z"),
            (A, "sell", "8", "12", "0", "2026-11-24T10:00:00Z"),
            (B, "buy", "1", "7", "0", "2026-11-24T09:00:00Z"),
            (C, "sell", "1", "3", "0", "2026-11-24T09:00:00Z"),
        ],
        &[(A, "11", AS_OF), (B, "7", AS_OF), (C, "3", AS_OF)],
    );
    let (lines, log) = capture_log(|| positions(&l));
    assert_eq!(
        lines,
        [
            // 8 sold, 5 held: 5 sold, 3 ignored. rpnl 5 × (12 − 10) − 0 = 10;
            // closed, so q, avg and basis are 0 and mv 0 × 11 = 0. Low even
            // with a fresh price: the history does not add up.
            "AAA q=0 avg=0 basis=0 price=11 mv=0 upnl=0 rpnl=10 Low",
            // Another token of the same wallet is not affected.
            "BBB q=1 avg=7 basis=7 price=7 mv=7 upnl=0 rpnl=0 High",
            // A sell with nothing held sells nothing: rpnl 0 × (3 − 0) − 0.
            "CCC q=0 avg=0 basis=0 price=3 mv=0 upnl=0 rpnl=0 Low",
        ]
    );
    assert_eq!(log.matches("WARN").count(), 1, "one warning per computation, for two oversold sells: {log}");
    assert!(log.contains("sells=2") && log.contains("sells beyond holdings"), "{log}");
}

#[test]
fn a_missing_or_old_price_lowers_confidence() {
    let l = ledger(
        &[
            (A, "buy", "2", "3", "0", "2026-11-24T09:00:00Z"),
            (B, "buy", "1", "1", "0", "2026-11-24T09:00:00Z"),
            (C, "buy", "1", "1", "0", "2026-11-24T09:00:00Z"),
            (D, "buy", "1", "1", "0", "2026-11-24T09:00:00Z"),
            (E, "buy", "1", "1", "0", "2026-11-24T09:00:00Z"),
        ],
        &[
            (B, "1", "2026-11-24T10:45:00Z"), // 15 minutes before as-of: high
            (C, "1", "2026-11-24T10:44:59Z"), // 15 minutes and a second: medium
            (D, "1", "2026-11-23T11:00:00Z"), // 24 hours: medium
            (E, "1", "2026-11-23T10:59:59Z"), // 24 hours and a second: low
            ("0x00000000000000000000000000000000000000f6", "1", AS_OF), // sets the as-of time
        ],
    );
    assert_eq!(
        positions(&l),
        [
            // No price: price, mv and upnl are null; basis 2 × 3 = 6, avg 3.
            "AAA q=2 avg=3 basis=6 price=null mv=null upnl=null rpnl=0 Low",
            "BBB q=1 avg=1 basis=1 price=1 mv=1 upnl=0 rpnl=0 High",
            "CCC q=1 avg=1 basis=1 price=1 mv=1 upnl=0 rpnl=0 Medium",
            "DDD q=1 avg=1 basis=1 price=1 mv=1 upnl=0 rpnl=0 Medium",
            "EEE q=1 avg=1 basis=1 price=1 mv=1 upnl=0 rpnl=0 Low",
        ]
    );
    let json = serde_json::to_value(&l.positions(&wallet(W)).expect("computes")[0]).expect("serializes");
    assert!(json["price"].is_null() && json["market_value"].is_null() && json["unrealized_pnl"].is_null());
    assert!(json["price_updated_at"].is_null());
}

#[test]
fn fees_add_to_the_basis_and_come_off_the_realized_pnl() {
    let l = ledger(
        &[
            (A, "buy", "3", "2.00", "0.30", "2026-11-24T08:00:00Z"),
            (A, "sell", "1", "2.50", "0.25", "2026-11-24T09:00:00Z"),
            (A, "sell", "1", "2.10", "0.05", "2026-11-24T10:00:00Z"),
        ],
        &[(A, "2.20", AS_OF)],
    );
    // buy: basis 3 × 2.00 + 0.30 = 6.30; avg 6.30 / 3 = 2.1.
    // sell 1: rpnl 1 × (2.50 − 2.1) − 0.25 = 0.15; basis 6.30 − 2.1 = 4.20.
    // sell 1: rpnl += 1 × (2.10 − 2.1) − 0.05 = −0.05, so 0.10;
    //         basis 4.20 − 2.1 = 2.10.
    // q 1: mv 1 × 2.20 = 2.20; upnl 2.20 − 2.10 = 0.10.
    assert_eq!(positions(&l), ["AAA q=1 avg=2.1 basis=2.10 price=2.20 mv=2.20 upnl=0.10 rpnl=0.10 High"]);
}

#[test]
fn selling_to_zero_then_buying_starts_a_fresh_average() {
    let l = ledger(
        &[
            (A, "buy", "3", "0.30", "0.10", "2026-11-24T08:00:00Z"),
            (A, "sell", "3", "0.40", "0", "2026-11-24T09:00:00Z"),
            (A, "buy", "2", "0.50", "0", "2026-11-24T10:00:00Z"),
        ],
        &[(A, "0.55", AS_OF)],
    );
    // buy: basis 3 × 0.30 + 0.10 = 1.00; avg 1/3 to 18 places = 0.333333333333333333.
    // sell 3: rpnl 3 × (0.40 − 0.333333333333333333) = 3 × 0.066666666666666667
    //         = 0.200000000000000001; q 0, so basis 0 (not the residue
    //         1.00 − 0.999999999999999999 = 0.000000000000000001).
    // buy: basis 0 + 2 × 0.50 = 1.00; avg 0.5 (with the residue it would
    //      be 1.000000000000000001 / 2, rounded to 0.500000000000000001).
    // mv 2 × 0.55 = 1.10; upnl 1.10 − 1.00 = 0.10.
    assert_eq!(
        positions(&l),
        ["AAA q=2 avg=0.5 basis=1.00 price=0.55 mv=1.10 upnl=0.10 rpnl=0.200000000000000001 High"]
    );
}

#[test]
fn trades_apply_in_timestamp_order_and_ties_in_file_order() {
    let l = ledger(
        &[
            // 09:30 at UTC−1 is 10:30Z: after the buy, though it reads earlier.
            (A, "sell", "2", "5", "0", "2026-11-24T09:30:00-01:00"),
            (A, "buy", "4", "3", "0", "2026-11-24T10:00:00Z"),
            // Same time: the buy comes first in the file, so it applies first.
            (B, "buy", "1", "1", "0", "2026-11-24T10:00:00Z"),
            (B, "sell", "1", "2", "0", "2026-11-24T10:00:00Z"),
            // Same time, sell first in the file: it oversells.
            (C, "sell", "1", "2", "0", "2026-11-24T10:00:00Z"),
            (C, "buy", "1", "1", "0", "2026-11-24T10:00:00Z"),
        ],
        &[(A, "4", AS_OF), (B, "2", AS_OF), (C, "1", AS_OF)],
    );
    assert_eq!(
        positions(&l),
        [
            // buy 4 × 3 = basis 12, avg 3; sell 2: rpnl 2 × (5 − 3) = 4,
            // basis 12 − 2 × 3 = 6; mv 2 × 4 = 8; upnl 8 − 6 = 2.
            "AAA q=2 avg=3 basis=6 price=4 mv=8 upnl=2 rpnl=4 High",
            // buy 1 at 1, sell 1 at 2: rpnl 1 × (2 − 1) = 1, closed.
            "BBB q=0 avg=0 basis=0 price=2 mv=0 upnl=0 rpnl=1 High",
            // sell of nothing (rpnl 0), then buy 1 at 1: basis 1, avg 1.
            "CCC q=1 avg=1 basis=1 price=1 mv=1 upnl=0 rpnl=0 Low",
        ]
    );
}

#[test]
fn the_sample_ledger_shows_each_case() {
    let l = Ledger::sample();
    let wallets: Vec<&str> = l.wallets().map(Wallet::as_str).collect();
    assert_eq!(
        wallets,
        [
            "0x52908400098527886e0f7030069857d2e4169ee7",
            "0xde0b295669a9fd93d5f28d9ec85e40f4cb697bae", // written checksummed, stored lower-case
            "7EcDhSYGxXyscszYEp35KHN8vvw3svAuLKTzXwCFLtV",
            "DRpbCBMxVnDK7maPM5tGv6MvB3v1sRMC86PZ8okm21hy",
        ]
    );
    assert_eq!(l.as_of(), Some(time::macros::datetime!(2026-11-24 11:00 UTC)));
    assert_eq!(
        positions_of(&l, wallets[0]),
        [
            // basis 1000 × 0.9990 + 0.50 + 500 × 1.0005 = 999.0000 + 0.50
            // + 500.2500 = 1499.7500 for 1500: avg 0.99983333…, 18 places;
            // mv 1500 × 1.0001 = 1500.1500; upnl 0.4000.
            "USDC q=1500 avg=0.999833333333333333 basis=1499.7500 price=1.0001 mv=1500.1500 upnl=0.4000 rpnl=0 High",
            // buy: basis 2.5 × 3100.00 + 4.20 = 7754.200, avg 3101.68;
            // sell 1.0: rpnl 1.0 × (3450.00 − 3101.68) − 3.10 = 345.220,
            // basis 7754.200 − 3101.680 = 4652.520; mv 1.5 × 3380.50
            // = 5070.750; upnl 418.230.
            "WETH q=1.5 avg=3101.68 basis=4652.520 price=3380.50 mv=5070.750 upnl=418.230 rpnl=345.220 High",
        ]
    );
    assert_eq!(
        positions_of(&l, wallets[1]),
        [
            // Closed: rpnl 100 × (7.25 − 6.01) − 1.25 = 122.75, where
            // avg = (100 × 6.00 + 1.00) / 100 = 6.01.
            "UNI q=0 avg=0 basis=0 price=7.10 mv=0 upnl=0 rpnl=122.75 High",
            // 50 sold of 40 held: rpnl 40 × (16.00 − 14.5) − 0.80 = 59.20.
            "LINK q=0 avg=0 basis=0 price=15.20 mv=0 upnl=0 rpnl=59.20 Low",
        ]
    );
    assert_eq!(
        positions_of(&l, wallets[2]),
        [
            // basis 25000000 × 0.00002150 = 537.50000000; price 9 hours old;
            // mv 25000000 × 0.00001980 = 495.00000000; upnl −42.50000000.
            "BONK q=25000000 avg=0.0000215 basis=537.50000000 price=0.00001980 mv=495.00000000 upnl=-42.50000000 rpnl=0 Medium",
            "MEME q=1000000 avg=0.0004 basis=400.0000 price=null mv=null upnl=null rpnl=0 Low",
            // basis 12.5 × 180.40 + 0.01 = 2255.010, avg 180.4008; the newer
            // of two quotes: mv 12.5 × 212.35 = 2654.375; upnl 399.365.
            "SOL q=12.5 avg=180.4008 basis=2255.010 price=212.35 mv=2654.375 upnl=399.365 rpnl=0 High",
        ]
    );
    assert_eq!(
        positions_of(&l, wallets[3]),
        [
            // Price three days old: low. mv 150 × 1.95 = 292.50; upnl −67.50.
            "WIF q=150 avg=2.4 basis=360.00 price=1.95 mv=292.50 upnl=-67.50 rpnl=0 Low",
            // By time: buy 200 at 0.80, sell 200 at 1.10 less 0.20
            // (rpnl 200 × 0.30 − 0.20 = 59.80), buy 300 at 0.95 afresh.
            "JUP q=300 avg=0.95 basis=285.00 price=0.91 mv=273.00 upnl=-12.00 rpnl=59.80 High",
        ]
    );
}

#[test]
fn the_committed_directory_loads_like_the_embedded_sample() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("ledger");
    let loaded = Ledger::load(&dir).expect("the committed sample loads");
    let sample = Ledger::sample();
    assert_eq!(loaded.wallet_count(), sample.wallet_count());
    for w in sample.wallets() {
        assert_eq!(loaded.positions(w).expect("computes"), sample.positions(w).expect("computes"));
    }
}

#[test]
fn load_errors_name_the_file() {
    let dir = TempDir::new("load-errors");
    let err = Ledger::load(&dir.0).expect_err("no files");
    assert!(matches!(err, LedgerError::Read { .. }), "{err:?}");
    assert!(err.to_string().starts_with(&format!("could not read {}", dir.0.join("trades.csv").display())), "{err}");

    std::fs::write(dir.0.join("trades.csv"), format!("{TRADES_HEADER}\n")).expect("writes");
    std::fs::write(dir.0.join("prices.csv"), format!("{PRICES_HEADER}\n# a comment\n{A},1.0.0,{AS_OF}\n"))
        .expect("writes");
    let err = Ledger::load(&dir.0).expect_err("bad price");
    assert_eq!(
        err.to_string(),
        r#"prices.csv line 3: invalid price "1.0.0": expected a plain decimal number such as 12.5"#
    );
}

#[tokio::test]
async fn the_source_answers_unknown_wallets_with_no_positions() {
    let source: Arc<dyn Source> = Arc::new(Ledger::sample());
    assert_eq!(source.name(), "ledger");
    let known = source.fetch(&wallet("0x52908400098527886E0F7030069857D2E4169EE7")).await.expect("computes");
    assert_eq!(known.positions.len(), 2);
    assert!(known.computed_at.is_some());
    let unknown = source.fetch(&wallet("0x0000000000000000000000000000000000000001")).await.expect("computes");
    assert!(unknown.positions.is_empty());
}

#[test]
fn the_generator_is_deterministic_and_its_output_loads() {
    let (first, second, other) = (TempDir::new("gen-1"), TempDir::new("gen-2"), TempDir::new("gen-3"));
    gen_ledger(&first.0, "9");
    gen_ledger(&second.0, "9");
    gen_ledger(&other.0, "10");
    for file in ["trades.csv", "prices.csv"] {
        let read = |dir: &TempDir| std::fs::read(dir.0.join(file)).expect("written");
        assert!(read(&first) == read(&second), "{file}: the same seed gives the same bytes");
        assert!(read(&first) != read(&other), "{file}: another seed gives another ledger");
    }
    let ledger = Ledger::load(&first.0).expect("the generator's output loads");
    assert_eq!(ledger.wallet_count(), 300);
    for w in ledger.wallets() {
        assert_eq!(ledger.positions(w).expect("computes").len(), 10, "{w}: 10 tokens each");
    }
}

fn gen_ledger(out: &Path, seed: &str) {
    let output = Command::new(env!("CARGO_BIN_EXE_gen-ledger"))
        .args(["--wallets", "300", "--seed", seed, "--out"])
        .arg(out)
        .output()
        .expect("gen-ledger runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

/// A directory under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("positions-ledger-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("creates a temporary directory");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `f` with a subscriber that records log lines, and returns what it
/// returned with the log.
fn capture_log<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("not poisoned").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    let value = tracing::subscriber::with_default(subscriber, f);
    let log = String::from_utf8(buffer.0.lock().expect("not poisoned").clone()).expect("UTF-8");
    (value, log)
}
