//! The `ledger` source: positions computed from a directory of trades and
//! prices, so that the service runs with no other service.
//!
//! It is the embedded default ([`Ledger::sample`], a handful of wallets
//! compiled into the binary) and the benchmark workload (a large ledger
//! from [`generate`]). It is not an accounting system: one method (average
//! cost), amounts in USD, no lots, transfers, splits or chain data.
//!
//! # Format
//!
//! Two files, `trades.csv` and `prices.csv`: plain CSV with a header line,
//! no quoting, `#` comment lines and blank lines allowed. The full
//! definition is `docs/ledger-format.md`; in short:
//!
//! ```text
//! wallet,token,symbol,side,quantity,price,fee,timestamp
//! 0x52908400098527886e0f7030069857d2e4169ee7,0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48,USDC,buy,1000,0.9990,0.50,2026-11-20T09:00:00Z
//!
//! token,price,updated_at
//! 0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48,1.0001,2026-11-24T10:59:30Z
//! ```
//!
//! Wallets and tokens are addresses ([`Wallet`] rules; EVM ones stored in
//! lower case). Decimals are plain (`12.5`, no exponent) and keep the scale
//! they are written with. If a token has several price lines, the one with
//! the latest `updated_at` wins (the later line on a tie).
//!
//! # Method
//!
//! Each wallet's trades in each token apply in timestamp order (ties in
//! file order), by the average-cost method:
//!
//! - a buy of `q` at `p` with fee `f` adds `q` to the quantity and
//!   `q·p + f` to the cost basis; the average cost becomes
//!   `cost_basis / quantity`, rounded to 18 decimal places (midpoint away
//!   from zero) and stripped of trailing zeros;
//! - a sell realizes `q·(p − avg_cost) − f` and takes `q` from the quantity
//!   and `q·avg_cost` from the basis; the average is unchanged;
//! - a sell of more than is held sells what is held: the excess is ignored,
//!   logged at `warn` (once per computation), and that position's
//!   confidence is low, because its history does not add up;
//! - when the quantity reaches zero the basis and the average are zero, and
//!   the next buy starts a fresh average. Closed positions stay in the
//!   list: their realized profit or loss matters.
//!
//! Sums and products are exact and keep their natural scale, so results
//! are reproducible digit for digit. Market value is `quantity × price`
//! and unrealized profit `market value − cost basis`; without a price both
//! are null. Positions are ordered by token address.
//!
//! # Confidence
//!
//! Measured against the ledger's as-of time, the latest timestamp in
//! either file, so that answers do not drift as the wall clock moves:
//!
//! - high: the price was updated at most 15 minutes before the as-of time;
//! - medium: at most 24 hours before;
//! - low: older, no price at all, or a sell beyond holdings in the history.
//!
//! # Cost
//!
//! Loading indexes the trades by wallet and token, sorted by time, in one
//! flat array; a fetch adds up one wallet's run of it (microseconds for a
//! few dozen trades). A 100,000-wallet ledger of two million trades loads
//! in about a second in release and holds 80 bytes per trade (figures in
//! `docs/ledger-format.md`).

mod average_cost;
pub mod generate;
mod parse;

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::BufReader;
use std::ops::Range as Span;
use std::path::{Path, PathBuf};

use rust_decimal::Decimal;
use time::OffsetDateTime;

use self::average_cost::{Holding, Overflow, confidence};
use self::parse::{PRICE_COLUMNS, PRICES_FILE, Place, Range, TRADE_COLUMNS, TRADES_FILE, for_each_line, shown};
use super::{BoxFuture, Source, SourceError};
use crate::model::{Position, Positions};
use crate::wallet::Wallet;

/// The sample ledger's trades, compiled in so that the binary runs from
/// any directory.
const SAMPLE_TRADES: &str = include_str!("../../ledger/trades.csv");
/// The sample ledger's prices.
const SAMPLE_PRICES: &str = include_str!("../../ledger/prices.csv");

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
    trades: Vec<Trade>,
    /// Wallets in order of first appearance, each with its run of trades.
    wallets: Vec<(Wallet, Span<usize>)>,
    /// Wallet to its index in `wallets`.
    index: HashMap<Wallet, u32>,
    /// Tokens, sorted by address: a trade's token is an index here.
    tokens: Vec<Token>,
    /// The latest timestamp in either file.
    as_of: Option<OffsetDateTime>,
}

/// Why a ledger could not be loaded, or a wallet's positions computed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// A file could not be opened or read.
    #[error("could not read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file had no header line (it was empty, or all comments).
    #[error("{file}: no header line; expected {expected:?}")]
    MissingHeader {
        /// `trades.csv` or `prices.csv`.
        file: &'static str,
        /// The header it should start with.
        expected: String,
    },
    /// A line could not be read.
    #[error("{file} line {line}: {problem}")]
    Line {
        /// `trades.csv` or `prices.csv`.
        file: &'static str,
        /// The line's number, from 1.
        line: usize,
        /// The field that was wrong, if the problem is in one field.
        field: Option<&'static str>,
        /// What was wrong, naming the field and quoting its text.
        problem: String,
    },
    /// A wallet's figures overflowed a 96-bit decimal.
    #[error("wallet {wallet} token {token}: a figure overflows a 96-bit decimal at {at}")]
    Overflow {
        /// The wallet being computed.
        wallet: Wallet,
        /// The token whose position overflowed.
        token: String,
        /// The line being applied, such as `trades.csv line 12`.
        at: String,
    },
}

/// One trade line, in 80 bytes: the decimals dominate, and the token and
/// wallet are indexes into the ledger's tables rather than strings.
#[derive(Debug, Clone, Copy)]
struct Trade {
    quantity: Decimal,
    price: Decimal,
    fee: Decimal,
    at: OffsetDateTime,
    wallet: u32,
    token: u32,
    line: u32,
    side: Side,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Buy,
    Sell,
}

#[derive(Debug)]
struct Token {
    address: Box<str>,
    /// Empty for a token that only has prices.
    symbol: Box<str>,
    /// The line that set the symbol, for the error when another disagrees.
    symbol_line: usize,
    price: Option<Quote>,
}

/// A token's latest price.
#[derive(Debug, Clone, Copy)]
struct Quote {
    price: Decimal,
    updated_at: OffsetDateTime,
    line: usize,
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

    /// `wallet`'s positions, one per token it traded, ordered by token.
    /// A wallet the ledger does not know has none.
    ///
    /// # Errors
    ///
    /// [`LedgerError::Overflow`] if a figure leaves the range of a decimal.
    pub fn positions(&self, wallet: &Wallet) -> Result<Vec<Position>, LedgerError> {
        let Some(&index) = self.index.get(wallet.as_str()) else { return Ok(Vec::new()) };
        let trades = &self.trades[self.wallets[index as usize].1.clone()];
        let mut positions = Vec::new();
        // Sells beyond holdings are logged once per computation, not once
        // per sell: a broken history should not flood the log.
        let mut oversold = 0_usize;
        let mut first_oversold: Option<&Trade> = None;
        for run in trades.chunk_by(|a, b| a.token == b.token) {
            let token = &self.tokens[run[0].token as usize];
            let overflow =
                |at: String| LedgerError::Overflow { wallet: wallet.clone(), token: token.address.to_string(), at };
            let mut holding = Holding::default();
            let mut clamped = false;
            for trade in run {
                let applied = match trade.side {
                    Side::Buy => holding.buy(trade.quantity, trade.price, trade.fee).map(|()| Decimal::ZERO),
                    Side::Sell => holding.sell(trade.quantity, trade.price, trade.fee),
                };
                let excess = applied.map_err(|Overflow| overflow(format!("{TRADES_FILE} line {}", trade.line)))?;
                if !excess.is_zero() {
                    clamped = true;
                    oversold += 1;
                    first_oversold.get_or_insert(trade);
                }
            }
            positions.push(self.value(token, &holding, clamped).map_err(|Overflow| {
                let line = token.price.map_or(0, |p| p.line);
                overflow(format!("{PRICES_FILE} line {line}"))
            })?);
        }
        if let Some(first) = first_oversold {
            tracing::warn!(
                %wallet,
                sells = oversold,
                first = %format_args!("{TRADES_FILE} line {}", first.line),
                token = %self.tokens[first.token as usize].address,
                "sells beyond holdings; the excess is ignored and those positions have low confidence"
            );
        }
        Ok(positions)
    }

    /// A holding valued at its token's price.
    fn value(&self, token: &Token, holding: &Holding, oversold: bool) -> Result<Position, Overflow> {
        let (market_value, unrealized_pnl) = match token.price {
            Some(price) => {
                let market_value = holding.quantity.checked_mul(price.price).ok_or(Overflow)?;
                (Some(market_value), Some(market_value.checked_sub(holding.cost_basis).ok_or(Overflow)?))
            }
            None => (None, None),
        };
        // Every price's time is at most the as-of time, which exists as
        // soon as there is a price.
        let age = token.price.map(|price| self.as_of.unwrap_or(price.updated_at) - price.updated_at);
        Ok(Position {
            token: token.address.to_string(),
            symbol: token.symbol.to_string(),
            quantity: holding.quantity,
            avg_cost: holding.avg_cost,
            cost_basis: holding.cost_basis,
            price: token.price.map(|p| p.price),
            market_value,
            unrealized_pnl,
            realized_pnl: holding.realized_pnl,
            confidence: confidence(age, oversold),
            price_updated_at: token.price.map(|p| p.updated_at),
        })
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

/// A ledger being read: lines are added one at a time, then
/// [`Builder::finish`] sorts and indexes them.
#[derive(Default)]
struct Builder {
    trades: Vec<Trade>,
    wallets: Vec<Wallet>,
    wallet_index: HashMap<Wallet, u32>,
    tokens: Vec<Token>,
    token_index: HashMap<Box<str>, u32>,
    as_of: Option<OffsetDateTime>,
}

impl Builder {
    fn trade(&mut self, line: usize, fields: [&str; 8]) -> Result<(), LedgerError> {
        let place = Place { file: TRADES_FILE, line };
        let [wallet, token, symbol, side, quantity, price, fee, timestamp] = fields;
        let wallet = self.wallet(place, wallet)?;
        let token = self.token(place, token)?;
        self.symbol(place, token, symbol)?;
        let side = if side.eq_ignore_ascii_case("buy") {
            Side::Buy
        } else if side.eq_ignore_ascii_case("sell") {
            Side::Sell
        } else {
            return Err(place.invalid("side", side, "expected buy or sell"));
        };
        let quantity = place.decimal("quantity", quantity, Range::Positive)?;
        let price = place.decimal("price", price, Range::NonNegative)?;
        let fee = place.decimal("fee", fee, Range::NonNegative)?;
        let at = place.timestamp("timestamp", timestamp)?;
        self.saw(at);
        // Line numbers past four billion would be a 600 GB file; saturating
        // only blurs the line a log message points at.
        let line = u32::try_from(line).unwrap_or(u32::MAX);
        self.trades.push(Trade { quantity, price, fee, at, wallet, token, line, side });
        Ok(())
    }

    fn price(&mut self, line: usize, fields: [&str; 3]) -> Result<(), LedgerError> {
        let place = Place { file: PRICES_FILE, line };
        let [token, price, updated_at] = fields;
        let token = self.token(place, token)?;
        let price = place.decimal("price", price, Range::NonNegative)?;
        let updated_at = place.timestamp("updated_at", updated_at)?;
        self.saw(updated_at);
        let slot = &mut self.tokens[token as usize].price;
        // The latest update wins; on a tie, the later line.
        if slot.is_none_or(|current| current.updated_at <= updated_at) {
            *slot = Some(Quote { price, updated_at, line });
        }
        Ok(())
    }

    fn saw(&mut self, at: OffsetDateTime) {
        self.as_of = Some(self.as_of.map_or(at, |as_of| as_of.max(at)));
    }

    /// The wallet's index. A wallet already seen in this spelling is found
    /// without allocating; only a new one (or a new spelling of an EVM
    /// address) is parsed.
    fn wallet(&mut self, place: Place, text: &str) -> Result<u32, LedgerError> {
        if let Some(&index) = self.wallet_index.get(text) {
            return Ok(index);
        }
        let wallet = Wallet::parse(text).map_err(|e| place.error(Some("wallet"), e.to_string()))?;
        if let Some(&index) = self.wallet_index.get(wallet.as_str()) {
            return Ok(index);
        }
        let index = next_index(place, self.wallets.len(), "wallets")?;
        self.wallets.push(wallet.clone());
        self.wallet_index.insert(wallet, index);
        Ok(index)
    }

    /// The token's index, interned like wallets. A token is an address
    /// too (a contract or a mint), so it follows the wallet rules: EVM
    /// addresses in lower case, so that two spellings are one position.
    fn token(&mut self, place: Place, text: &str) -> Result<u32, LedgerError> {
        if let Some(&index) = self.token_index.get(text) {
            return Ok(index);
        }
        let canonical = Wallet::parse(text).map_err(|_| {
            place.invalid("token", text, "expected an EVM address (0x and 40 hex digits) or 32 to 44 base58 characters")
        })?;
        if let Some(&index) = self.token_index.get(canonical.as_str()) {
            return Ok(index);
        }
        let index = next_index(place, self.tokens.len(), "tokens")?;
        let address: Box<str> = canonical.as_str().into();
        self.tokens.push(Token { address: address.clone(), symbol: "".into(), symbol_line: 0, price: None });
        self.token_index.insert(address, index);
        Ok(index)
    }

    /// Sets the token's symbol on its first trade; every later trade must
    /// agree, since a position has one symbol.
    fn symbol(&mut self, place: Place, token: u32, symbol: &str) -> Result<(), LedgerError> {
        let entry = &mut self.tokens[token as usize];
        if symbol.is_empty() {
            return Err(place.error(Some("symbol"), "missing symbol".to_owned()));
        }
        if entry.symbol.is_empty() {
            entry.symbol = symbol.into();
            entry.symbol_line = place.line;
        } else if *entry.symbol != *symbol {
            return Err(place.error(
                Some("symbol"),
                format!(
                    "symbol {} for token {} differs from {:?} on line {}",
                    shown(symbol),
                    entry.address,
                    entry.symbol,
                    entry.symbol_line
                ),
            ));
        }
        Ok(())
    }

    /// Sorts tokens by address and trades by wallet, token, time and line,
    /// and records each wallet's run.
    fn finish(self) -> Ledger {
        let Self { mut trades, wallets, wallet_index, tokens, as_of, .. } = self;
        // Number tokens in address order, so that a wallet's runs come out
        // ordered by token with no sort per request.
        let mut order: Vec<usize> = (0..tokens.len()).collect();
        order.sort_unstable_by(|&a, &b| tokens[a].address.cmp(&tokens[b].address));
        let mut renumber = vec![0; tokens.len()];
        for (new, &old) in order.iter().enumerate() {
            // Both fit: there are at most u32::MAX + 1 tokens (`next_index`).
            renumber[old] = u32::try_from(new).unwrap_or(u32::MAX);
        }
        let mut slots: Vec<Option<Token>> = tokens.into_iter().map(Some).collect();
        let tokens: Vec<Token> = order.iter().filter_map(|&old| slots[old].take()).collect();
        for trade in &mut trades {
            trade.token = renumber[trade.token as usize];
        }
        // The line ends every tie, so an unstable (in-place, allocation-free)
        // sort orders equal timestamps by file order all the same.
        trades.sort_unstable_by_key(|t| (t.wallet, t.token, t.at, t.line));
        let mut spans = vec![0..0; wallets.len()];
        let mut start = 0;
        for run in trades.chunk_by(|a, b| a.wallet == b.wallet) {
            spans[run[0].wallet as usize] = start..start + run.len();
            start += run.len();
        }
        Ledger { trades, wallets: wallets.into_iter().zip(spans).collect(), index: wallet_index, tokens, as_of }
    }
}

/// The index the next of `count` items gets, if it fits in a `u32`.
fn next_index(place: Place, count: usize, what: &str) -> Result<u32, LedgerError> {
    u32::try_from(count).map_err(|_| place.error(None, format!("more than {} {what}", u32::MAX)))
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::model::Confidence;

    const HEADER: &str = "wallet,token,symbol,side,quantity,price,fee,timestamp\n";
    const PRICES: &str = "token,price,updated_at\n";
    const W: &str = "0x52908400098527886e0f7030069857d2e4169ee7";
    const USDC: &str = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48";
    const WETH: &str = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2";

    fn wallet(text: &str) -> Wallet {
        Wallet::parse(text).expect("a valid wallet")
    }

    /// The error for a trades file with `line` as its only data line.
    fn trade_error(line: &str) -> LedgerError {
        Ledger::from_strs(&format!("{HEADER}{line}\n"), PRICES).expect_err(line)
    }

    #[test]
    fn parsing_errors_name_the_file_the_line_and_the_field() {
        let good = format!("{W},{USDC},USDC,buy,10,1.00,0,2026-11-24T10:00:00Z");
        let cases = [
            (
                good.replace(",10,", ",1.2.3,"),
                "quantity",
                r#"invalid quantity "1.2.3": expected a plain decimal number such as 12.5"#,
            ),
            (good.replace(",10,", ",0,"), "quantity", r#"invalid quantity "0": must be greater than zero"#),
            (
                good.replace(",1.00,", ",1e5,"),
                "price",
                r#"invalid price "1e5": expected a plain decimal number such as 12.5"#,
            ),
            (good.replace(",0,2026", ",-0.10,2026"), "fee", r#"invalid fee "-0.10": must not be negative"#),
            (good.replace("buy", "hold"), "side", r#"invalid side "hold": expected buy or sell"#),
            (good.replace(W, "0xZZ"), "wallet", r#"invalid wallet "0xZZ": expected 0x and 40 hex digits"#),
            (
                good.replace(USDC, "usdc"),
                "token",
                r#"invalid token "usdc": expected an EVM address (0x and 40 hex digits) or 32 to 44 base58 characters"#,
            ),
            (good.replace(",USDC,", ",,"), "symbol", "missing symbol"),
            (
                good.replace("2026-11-24T10:00:00Z", "24/11/2026"),
                "timestamp",
                r#"invalid timestamp "24/11/2026": expected an RFC 3339 time such as 2026-11-24T10:59:30Z"#,
            ),
        ];
        for (line, field, problem) in cases {
            let err = trade_error(&line);
            assert_eq!(err.to_string(), format!("trades.csv line 2: {problem}"), "{line}");
            let LedgerError::Line { field: named, .. } = err else { panic!("{line}") };
            assert_eq!(named, Some(field));
        }
        let prices = format!("{PRICES}# comment\n{USDC},one,2026-11-24T10:00:00Z\n");
        let err = Ledger::from_strs(HEADER, &prices).expect_err("bad price");
        assert_eq!(
            err.to_string(),
            r#"prices.csv line 3: invalid price "one": expected a plain decimal number such as 12.5"#
        );
    }

    #[test]
    fn a_token_has_one_symbol() {
        let trades = format!(
            "{HEADER}{W},{USDC},USDC,buy,1,1,0,2026-11-24T10:00:00Z\n{W},{USDC},USDT,buy,1,1,0,2026-11-24T10:00:00Z\n"
        );
        let err = Ledger::from_strs(&trades, PRICES).expect_err("two symbols");
        assert_eq!(
            err.to_string(),
            format!(r#"trades.csv line 3: symbol "USDT" for token {USDC} differs from "USDC" on line 2"#)
        );
    }

    #[test]
    fn an_upper_case_evm_wallet_is_stored_lower_case() {
        let upper = "0x52908400098527886E0F7030069857D2E4169EE7";
        let trades = format!(
            "{HEADER}{upper},{},USDC,buy,1,1,0,2026-11-24T10:00:00Z\n{W},{USDC},USDC,buy,2,1,0,2026-11-24T10:01:00Z\n",
            USDC.to_uppercase().replace("0X", "0x"),
        );
        let ledger = Ledger::from_strs(&trades, PRICES).expect("valid");
        assert_eq!(ledger.wallets().map(Wallet::as_str).collect::<Vec<_>>(), [W], "both spellings are one wallet");
        let positions = ledger.positions(&wallet(W)).expect("computes");
        assert_eq!(positions.len(), 1, "both token spellings are one position");
        assert_eq!(positions[0].token, USDC);
        assert_eq!(positions[0].quantity.to_string(), "3");
    }

    #[test]
    fn the_latest_price_wins() {
        let trades = format!("{HEADER}{W},{USDC},USDC,buy,1,1,0,2026-11-24T10:00:00Z\n");
        let prices = format!(
            "{PRICES}{USDC},1.02,2026-11-24T10:30:00Z\n{USDC},1.01,2026-11-24T10:00:00Z\n{USDC},1.03,2026-11-24T10:30:00Z\n"
        );
        let ledger = Ledger::from_strs(&trades, &prices).expect("valid");
        let p = &ledger.positions(&wallet(W)).expect("computes")[0];
        assert_eq!(p.price.map(|d| d.to_string()).as_deref(), Some("1.03"), "the later of two equal times");
        assert_eq!(p.price_updated_at, Some(datetime!(2026-11-24 10:30 UTC)));
    }

    #[test]
    fn as_of_is_the_latest_time_in_either_file() {
        let trades = format!("{HEADER}{W},{USDC},USDC,buy,1,1,0,2026-11-24T12:00:00+01:00\n");
        let late_price = format!("{PRICES}{WETH},3000,2026-11-24T11:30:00Z\n");
        assert_eq!(Ledger::from_strs(&trades, PRICES).expect("valid").as_of(), Some(datetime!(2026-11-24 11:00 UTC)));
        assert_eq!(
            Ledger::from_strs(&trades, &late_price).expect("valid").as_of(),
            Some(datetime!(2026-11-24 11:30 UTC))
        );
        assert_eq!(Ledger::from_strs(HEADER, PRICES).expect("valid").as_of(), None);
    }

    #[test]
    fn positions_are_ordered_by_token_and_unknown_wallets_have_none() {
        let trades = format!(
            "{HEADER}{W},{WETH},WETH,buy,1,3000,0,2026-11-24T10:00:00Z\n{W},{USDC},USDC,buy,1,1,0,2026-11-24T10:01:00Z\n"
        );
        let ledger = Ledger::from_strs(&trades, PRICES).expect("valid");
        let tokens: Vec<String> =
            ledger.positions(&wallet(W)).expect("computes").into_iter().map(|p| p.token).collect();
        assert_eq!(tokens, [USDC, WETH]);
        let stranger = wallet("0x0000000000000000000000000000000000000001");
        assert_eq!(ledger.positions(&stranger).expect("computes"), []);
    }

    #[test]
    fn an_overflow_is_an_error_for_that_wallet() {
        let huge = Decimal::MAX.to_string();
        let trades = format!("{HEADER}{W},{USDC},USDC,buy,{huge},2,0,2026-11-24T10:00:00Z\n");
        let ledger = Ledger::from_strs(&trades, PRICES).expect("each number fits");
        let err = ledger.positions(&wallet(W)).expect_err("the product does not");
        assert_eq!(
            err.to_string(),
            format!("wallet {W} token {USDC}: a figure overflows a 96-bit decimal at trades.csv line 2")
        );
    }

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
