//! A large, deterministic ledger for benchmarks: what the `gen-ledger`
//! binary (and `cargo xtask gen-ledger`) writes.
//!
//! It lives beside the parser so that the format has one definition, and
//! a test loads what it writes. The bytes depend on the [`Options`] alone:
//! `rand`'s seeded `SmallRng` (the generator the benchmarks use too) and a
//! fixed as-of time ([`AS_OF`]), never the clock or a hash map's order, so
//! one seed gives the same files from one build on any 64-bit machine.
//!
//! What it writes, for each wallet (80% EVM, 20% base58): a distinct
//! random choice of tokens of its own family, and in each token one to
//! three trades over the 30 days before the as-of time, starting with a
//! buy; later trades buy or sell (at most what is held, except one sell in
//! a thousand, which oversells). One token's lines in a hundred are written
//! newest first, to exercise ordering by timestamp. Token prices are
//! log-uniform from 0.000001 to 10,000 USD; trade prices within ±50% of
//! them. Of the tokens, 80% have a price at most 15 minutes old (high
//! confidence), 12% one at most a day old (medium), 5% an older one and 3%
//! none (low); one in twenty has an extra, older price line that loses.
//!
//! It is not a market model: the figures only need to look like a ledger
//! to the parser and the arithmetic, and to give every confidence level.

use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::parse::{PRICE_COLUMNS, PRICES_FILE, TRADE_COLUMNS, TRADES_FILE};

/// The as-of time of every generated ledger: the latest timestamp in it
/// (one price is updated exactly then).
pub const AS_OF: OffsetDateTime = datetime!(2026-11-24 11:00 UTC);

/// Tokens of each family (EVM, base58) at the least; more if each wallet
/// holds more than a quarter of them.
const MIN_FAMILY: u32 = 100;
const DAY: u64 = 86_400;
const BASE58: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
/// Decimal places of generated quantities, prices and fees.
const QUANTITY_SCALE: u32 = 4;
const PRICE_SCALE: u32 = 6;
const FEE_SCALE: u32 = 2;

/// What to generate.
///
/// # Examples
///
/// ```
/// use positions_api::source::ledger::Ledger;
/// use positions_api::source::ledger::generate::{self, Options};
///
/// let options = Options { wallets: 50, tokens_per_wallet: 3, seed: 7 };
/// let (mut trades, mut prices) = (Vec::new(), Vec::new());
/// let summary = generate::write(&options, &mut trades, &mut prices)?;
/// assert_eq!(summary.wallets, 50);
///
/// let ledger = Ledger::from_strs(std::str::from_utf8(&trades)?, std::str::from_utf8(&prices)?)?;
/// assert_eq!(ledger.trade_count() as u64, summary.trades);
/// assert_eq!(ledger.as_of(), Some(generate::AS_OF));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// How many wallets.
    pub wallets: u64,
    /// How many tokens each wallet trades (at least 1).
    pub tokens_per_wallet: u32,
    /// The generator's seed: the same seed gives the same bytes.
    pub seed: u64,
}

impl Default for Options {
    /// The benchmark ledger: 100,000 wallets of 10 tokens, seed 1.
    fn default() -> Self {
        Self { wallets: 100_000, tokens_per_wallet: 10, seed: 1 }
    }
}

/// What was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Wallets (each has at least one trade).
    pub wallets: u64,
    /// Trade lines.
    pub trades: u64,
    /// Distinct tokens, priced or not.
    pub tokens: u64,
    /// Price lines, duplicates included.
    pub prices: u64,
}

/// Writes the ledger directory `dir` (created if missing): `trades.csv`
/// and `prices.csv`.
pub fn write_dir(options: &Options, dir: &Path) -> io::Result<Summary> {
    std::fs::create_dir_all(dir)?;
    let create = |name: &str| File::create(dir.join(name)).map(|file| BufWriter::with_capacity(1 << 20, file));
    let mut trades = create(TRADES_FILE)?;
    let mut prices = create(PRICES_FILE)?;
    let summary = write(options, &mut trades, &mut prices)?;
    trades.flush()?;
    prices.flush()?;
    Ok(summary)
}

/// Writes a ledger's trades file to `trades` and its prices file to
/// `prices`. Both are written line by line: wrap a file in a
/// [`BufWriter`].
pub fn write(options: &Options, mut trades: impl Write, mut prices: impl Write) -> io::Result<Summary> {
    if options.tokens_per_wallet == 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "tokens_per_wallet must be at least 1"));
    }
    let rng = &mut SmallRng::seed_from_u64(options.seed);
    let family = MIN_FAMILY.max(options.tokens_per_wallet.saturating_mul(4));
    let evm: Vec<Token> = (0..family).map(|i| Token::new(rng, Family::Evm, i)).collect();
    let base58: Vec<Token> = (0..family).map(|i| Token::new(rng, Family::Base58, i)).collect();
    let stamp = format!(
        "# generated by gen-ledger: seed {}, {} wallets, {} tokens each; as of {}\n",
        options.seed,
        options.wallets,
        options.tokens_per_wallet,
        Stamp(0)
    );

    prices.write_all(stamp.as_bytes())?;
    writeln!(prices, "{}", PRICE_COLUMNS.join(","))?;
    let mut price_lines = 0;
    for (i, token) in evm.iter().chain(&base58).enumerate() {
        // The first token pins the as-of time; the rest spread over the
        // confidence levels.
        let back = match below(rng, 100) {
            _ if i == 0 => 0,
            0..80 => below(rng, 15 * 60 + 1),
            80..92 => 15 * 60 + 1 + below(rng, DAY - 15 * 60),
            92..97 => DAY + 1 + below(rng, 6 * DAY),
            _ => continue,
        };
        writeln!(prices, "{},{},{}", token.address, Fixed(token.around_price(rng), PRICE_SCALE), Stamp(back))?;
        price_lines += 1;
        if below(rng, 20) == 0 {
            // An older quote after the newer one: the newer must win.
            let older = back + 1 + below(rng, DAY);
            writeln!(prices, "{},{},{}", token.address, Fixed(token.around_price(rng), PRICE_SCALE), Stamp(older))?;
            price_lines += 1;
        }
    }

    trades.write_all(stamp.as_bytes())?;
    writeln!(trades, "{}", TRADE_COLUMNS.join(","))?;
    let k = options.tokens_per_wallet as usize;
    let mut picks: Vec<usize> = (0..family as usize).collect();
    let mut records = Vec::with_capacity(3);
    let mut trade_lines = 0;
    for _ in 0..options.wallets {
        let (wallet, tokens) = if below(rng, 100) < 80 {
            (address(rng, Family::Evm), &evm)
        } else {
            (address(rng, Family::Base58), &base58)
        };
        // A partial Fisher–Yates shuffle picks k distinct tokens; `picks`
        // stays a permutation, so it needs no reset between wallets.
        for i in 0..k {
            let j = i + rng.random_range(0..picks.len() - i);
            picks.swap(i, j);
        }
        for &pick in &picks[..k] {
            let token = &tokens[pick];
            records.clear();
            token.history(rng, &mut records);
            if below(rng, 100) == 0 {
                records.reverse();
            }
            for r in &records {
                trade_lines += 1;
                writeln!(
                    trades,
                    "{wallet},{},{},{},{},{},{},{}",
                    token.address,
                    token.symbol,
                    if r.sell { "sell" } else { "buy" },
                    Fixed(r.quantity, QUANTITY_SCALE),
                    Fixed(r.price, PRICE_SCALE),
                    Fixed(r.fee, if r.fee == 0 { 0 } else { FEE_SCALE }),
                    Stamp(r.back),
                )?;
            }
        }
    }
    Ok(Summary { wallets: options.wallets, trades: trade_lines, tokens: u64::from(family) * 2, prices: price_lines })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Evm,
    Base58,
}

struct Token {
    address: String,
    symbol: String,
    /// The price's mantissa at [`PRICE_SCALE`].
    price: u64,
}

/// One trade, in mantissas, `back` seconds before [`AS_OF`].
struct Record {
    sell: bool,
    quantity: u64,
    price: u64,
    fee: u64,
    back: u64,
}

impl Token {
    fn new(rng: &mut SmallRng, family: Family, i: u32) -> Self {
        let address = address(rng, family);
        let symbol = match family {
            Family::Evm => format!("TOK{i}"),
            Family::Base58 => format!("SPL{i}"),
        };
        // Log-uniform: a number of digits, then a number of that many.
        let digits = 1 + below(rng, 10);
        let price = 1 + below(rng, 10_u64.pow(u32::try_from(digits).unwrap_or(10)));
        Self { address, symbol, price }
    }

    /// A price within ±50% of the token's.
    fn around_price(&self, rng: &mut SmallRng) -> u64 {
        (self.price * (500 + below(rng, 1001)) / 1000).max(1)
    }

    /// One to three trades, oldest first, starting with a buy.
    fn history(&self, rng: &mut SmallRng, records: &mut Vec<Record>) {
        let mut held = 0_u64;
        let mut back = DAY + below(rng, 29 * DAY);
        for i in 0..=below(rng, 3) {
            if i > 0 {
                back = back.saturating_sub(1 + below(rng, DAY)).max(1);
            }
            let is_sell = i > 0 && held > 0 && below(rng, 2) == 0;
            let quantity = if !is_sell {
                let digits = 1 + below(rng, 8);
                1 + below(rng, 10_u64.pow(u32::try_from(digits).unwrap_or(8)))
            } else if below(rng, 1000) == 0 {
                held + 1 + below(rng, held)
            } else {
                1 + below(rng, held)
            };
            held = if is_sell { held.saturating_sub(quantity) } else { held + quantity };
            let price = self.around_price(rng);
            let fee = if below(rng, 2) == 0 { 0 } else { 1 + below(rng, 1000) };
            records.push(Record { sell: is_sell, quantity, price, fee, back });
        }
    }
}

/// A random address of the family: `0x` and 40 lower-case hex digits, or
/// 44 base58 characters.
fn address(rng: &mut SmallRng, family: Family) -> String {
    match family {
        Family::Evm => format!("0x{:016x}{:016x}{:08x}", rng.random::<u64>(), rng.random::<u64>(), rng.random::<u32>()),
        Family::Base58 => (0..44).map(|_| char::from(BASE58[rng.random_range(0..BASE58.len())])).collect(),
    }
}

/// A mantissa shown with `scale` decimal places (`1234` at 2: `12.34`).
struct Fixed(u64, u32);

impl fmt::Display for Fixed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self(mantissa, scale) = *self;
        if scale == 0 {
            return write!(f, "{mantissa}");
        }
        let unit = 10_u64.pow(scale);
        write!(f, "{}.{:0width$}", mantissa / unit, mantissa % unit, width = scale as usize)
    }
}

/// The time `.0` seconds before [`AS_OF`], as RFC 3339 with a `Z`, written
/// without an intermediate string.
struct Stamp(u64);

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = AS_OF - Duration::seconds(i64::try_from(self.0).unwrap_or(i64::MAX));
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    }
}

/// A number in `0..n` (`n > 0`).
fn below(rng: &mut SmallRng, n: u64) -> u64 {
    rng.random_range(0..n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::ledger::Ledger;

    fn generate(options: &Options) -> (String, String, Summary) {
        let (mut trades, mut prices) = (Vec::new(), Vec::new());
        let summary = write(options, &mut trades, &mut prices).expect("writes to memory");
        (String::from_utf8(trades).expect("UTF-8"), String::from_utf8(prices).expect("UTF-8"), summary)
    }

    #[test]
    fn the_same_seed_gives_the_same_bytes() {
        let options = Options { wallets: 300, tokens_per_wallet: 10, seed: 42 };
        assert_eq!(generate(&options), generate(&options));
        let other = Options { seed: 43, ..options.clone() };
        assert_ne!(generate(&options).0, generate(&other).0);
    }

    #[test]
    fn the_output_loads_and_covers_every_confidence_level() {
        let options = Options { wallets: 400, tokens_per_wallet: 10, seed: 1 };
        let (trades, prices, summary) = generate(&options);
        let ledger = Ledger::from_strs(&trades, &prices).expect("the generator writes the format");
        assert_eq!(ledger.wallets().len() as u64, summary.wallets);
        assert_eq!(ledger.trade_count() as u64, summary.trades);
        assert_eq!(ledger.as_of(), Some(AS_OF));
        let mut seen = std::collections::HashSet::new();
        for wallet in ledger.wallets() {
            let positions = ledger.positions(wallet).expect("computes");
            assert_eq!(positions.len(), 10, "{wallet}");
            seen.extend(positions.iter().map(|p| p.confidence));
        }
        assert_eq!(seen.len(), 3, "high, medium and low all occur: {seen:?}");
    }

    #[test]
    fn formatting_helpers() {
        assert_eq!(Fixed(1234, 2).to_string(), "12.34");
        assert_eq!(Fixed(5, 4).to_string(), "0.0005");
        assert_eq!(Fixed(7, 0).to_string(), "7");
        assert_eq!(Stamp(0).to_string(), "2026-11-24T11:00:00Z");
        assert_eq!(Stamp(DAY + 60).to_string(), "2026-11-23T10:59:00Z");
    }

    #[test]
    fn zero_tokens_per_wallet_is_refused() {
        let options = Options { tokens_per_wallet: 0, ..Options::default() };
        let err = write(&options, io::sink(), io::sink()).expect_err("nothing to trade");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
