//! The ledger as held in memory: every trade in one flat array, sorted so
//! that a wallet's trades are one run and each token's trades one run
//! within it, with the tables that trades point into.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::BufReader;
use std::ops::Range as Span;
use std::path::Path;

use rust_decimal::Decimal;
use time::OffsetDateTime;

use super::LedgerError;
use super::builder::Builder;
use super::parse::{PRICE_COLUMNS, PRICES_FILE, TRADE_COLUMNS, TRADES_FILE, for_each_line};
use crate::model::Positions;
use crate::source::{BoxFuture, Source, SourceError};
use crate::wallet::Wallet;

/// The sample ledger's trades, compiled in so that the binary runs from
/// any directory.
const SAMPLE_TRADES: &str = include_str!("../../../ledger/trades.csv");
/// The sample ledger's prices.
const SAMPLE_PRICES: &str = include_str!("../../../ledger/prices.csv");

/// Trades and prices, indexed by wallet: a [`Source`] that computes a
/// wallet's positions on demand.
///
/// # Examples
///
/// ```
/// use positions_api::source::ledger::Ledger;
/// use positions_api::{Confidence, Wallet};
///
/// let ledger = Ledger::from_strs(
///     "wallet,token,symbol,side,quantity,price,fee,timestamp\n\
///      0x52908400098527886E0F7030069857D2E4169EE7,0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48,USDC,buy,1000,0.9990,0.50,2026-11-24T09:00:00Z\n",
///     "token,price,updated_at\n\
///      0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48,1.0001,2026-11-24T10:59:30Z\n",
/// )?;
/// let wallet = Wallet::parse("0x52908400098527886e0f7030069857d2e4169ee7")?;
/// let usdc = &ledger.positions(&wallet)?[0];
/// // 1000 × 0.9990 + 0.50 = 999.5000; 999.5 / 1000 = 0.9995.
/// assert_eq!(usdc.cost_basis.to_string(), "999.5000");
/// assert_eq!(usdc.avg_cost.to_string(), "0.9995");
/// // 1000 × 1.0001 = 1000.1000; 1000.1000 − 999.5000 = 0.6000.
/// assert_eq!(usdc.unrealized_pnl.unwrap().to_string(), "0.6000");
/// assert_eq!(usdc.confidence, Confidence::High);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Ledger {
    /// Every trade, sorted by wallet, token, time and line: a wallet's
    /// trades are one run, and within it each token's are one run in the
    /// order they apply.
    pub(super) trades: Vec<Trade>,
    /// Wallets in order of first appearance, each with its run of trades.
    pub(super) wallets: Vec<(Wallet, Span<usize>)>,
    /// Wallet to its index in `wallets`.
    pub(super) index: HashMap<Wallet, u32>,
    /// Tokens, sorted by address: a trade's token is an index here.
    pub(super) tokens: Vec<Token>,
    /// The latest timestamp in either file.
    pub(super) as_of: Option<OffsetDateTime>,
}

/// One trade line, in 80 bytes: the decimals dominate, and the token and
/// wallet are indexes into the ledger's tables rather than strings.
#[derive(Debug, Clone, Copy)]
pub(super) struct Trade {
    pub(super) quantity: Decimal,
    pub(super) price: Decimal,
    pub(super) fee: Decimal,
    pub(super) at: OffsetDateTime,
    pub(super) wallet: u32,
    pub(super) token: u32,
    pub(super) line: u32,
    pub(super) side: Side,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Buy,
    Sell,
}

#[derive(Debug)]
pub(super) struct Token {
    pub(super) address: Box<str>,
    /// Empty for a token that only has prices.
    pub(super) symbol: Box<str>,
    /// The line that set the symbol, for the error when another disagrees.
    pub(super) symbol_line: usize,
    pub(super) price: Option<Quote>,
}

/// A token's latest price.
#[derive(Debug, Clone, Copy)]
pub(super) struct Quote {
    pub(super) price: Decimal,
    pub(super) updated_at: OffsetDateTime,
    pub(super) line: usize,
}

impl Ledger {
    /// Loads `dir/trades.csv` and `dir/prices.csv`.
    pub fn load(dir: &Path) -> Result<Self, LedgerError> {
        let open = |name: &str| {
            let path = dir.join(name);
            match File::open(&path) {
                Ok(file) => Ok((BufReader::with_capacity(1 << 16, file), path)),
                Err(source) => Err(LedgerError::Read { path, source }),
            }
        };
        let mut builder = Builder::default();
        let (trades, path) = open(TRADES_FILE)?;
        for_each_line(TRADES_FILE, &path, &TRADE_COLUMNS, trades, |line, fields| builder.trade(line, fields))?;
        let (prices, path) = open(PRICES_FILE)?;
        for_each_line(PRICES_FILE, &path, &PRICE_COLUMNS, prices, |line, fields| builder.price(line, fields))?;
        Ok(builder.finish())
    }

    /// A ledger from the text of its two files.
    pub fn from_strs(trades: &str, prices: &str) -> Result<Self, LedgerError> {
        let mut builder = Builder::default();
        let path = Path::new(TRADES_FILE);
        for_each_line(TRADES_FILE, path, &TRADE_COLUMNS, trades.as_bytes(), |line, fields| {
            builder.trade(line, fields)
        })?;
        let path = Path::new(PRICES_FILE);
        for_each_line(PRICES_FILE, path, &PRICE_COLUMNS, prices.as_bytes(), |line, fields| {
            builder.price(line, fields)
        })?;
        Ok(builder.finish())
    }

    /// The sample ledger committed in `crates/positions-api/ledger/` and
    /// compiled into the binary: the default source.
    ///
    /// # Panics
    ///
    /// Never in practice: the committed sample is valid, and a test checks
    /// it.
    pub fn sample() -> Self {
        Self::from_strs(SAMPLE_TRADES, SAMPLE_PRICES).expect("the committed sample ledger is valid")
    }

    /// The latest timestamp in either file, against which price ages are
    /// measured; `None` for a ledger with no line at all.
    pub fn as_of(&self) -> Option<OffsetDateTime> {
        self.as_of
    }

    /// Every wallet with a trade, in order of first appearance.
    pub fn wallets(&self) -> impl ExactSizeIterator<Item = &Wallet> + '_ {
        self.wallets.iter().map(|(wallet, _)| wallet)
    }

    /// How many wallets have a trade.
    pub fn wallet_count(&self) -> usize {
        self.wallets.len()
    }

    /// How many trade lines the ledger holds.
    pub fn trade_count(&self) -> usize {
        self.trades.len()
    }
}

impl Source for Ledger {
    fn name(&self) -> &'static str {
        "ledger"
    }

    fn fetch<'a>(&'a self, wallet: &'a Wallet) -> BoxFuture<'a, Result<Positions, SourceError>> {
        Box::pin(async move {
            let positions = self.positions(wallet).map_err(|e| SourceError::Ledger(e.to_string()))?;
            Ok(Positions { positions, computed_at: Some(OffsetDateTime::now_utc()) })
        })
    }
}

impl fmt::Debug for Ledger {
    /// A summary: the trades themselves would be megabytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ledger")
            .field("wallets", &self.wallets.len())
            .field("tokens", &self.tokens.len())
            .field("trades", &self.trades.len())
            .field("as_of", &self.as_of)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{W, wallet};
    use super::*;
    use crate::model::Confidence;

    #[test]
    fn the_sample_loads_and_every_wallet_has_positions() {
        let ledger = Ledger::sample();
        assert!(ledger.wallets().len() >= 4, "{ledger:?}");
        for w in ledger.wallets() {
            assert!(!ledger.positions(w).expect("computes").is_empty(), "{w}");
        }
        let confidences: Vec<Confidence> =
            ledger.wallets().flat_map(|w| ledger.positions(w).expect("computes")).map(|p| p.confidence).collect();
        for level in [Confidence::High, Confidence::Medium, Confidence::Low] {
            assert!(confidences.contains(&level), "the sample shows {level:?} confidence");
        }
    }

    #[tokio::test]
    async fn fetch_stamps_the_computation_with_now() {
        let ledger = Ledger::sample();
        assert_eq!(ledger.name(), "ledger");
        let before = OffsetDateTime::now_utc();
        let positions = ledger.fetch(&wallet(W)).await.expect("computes");
        assert!(!positions.positions.is_empty());
        assert!(positions.computed_at.is_some_and(|t| t >= before && t <= OffsetDateTime::now_utc()));
        let stranger = ledger.fetch(&wallet("0x0000000000000000000000000000000000000001")).await.expect("computes");
        assert!(stranger.positions.is_empty() && stranger.computed_at.is_some());
    }

    #[test]
    fn a_trade_is_80_bytes() {
        // The module docs and the format document quote this figure.
        assert_eq!(std::mem::size_of::<Trade>(), 80);
    }
}
