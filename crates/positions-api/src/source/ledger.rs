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
//! Wallets and tokens are addresses ([`Wallet`](crate::Wallet) rules; EVM ones stored in
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
//!
//! # Where things are
//!
//! - `store.rs`: [`Ledger`], the trades in one flat array indexed by
//!   wallet, and the sample compiled in;
//! - `builder.rs`: reading lines into that index;
//! - `valuation.rs`: a wallet's positions from its run of trades;
//! - `average_cost.rs`: the method, one holding at a time, and confidence;
//! - `parse.rs`: the CSV lines and their fields;
//! - `error.rs`: [`LedgerError`];
//! - [`generate`]: large deterministic ledgers for benchmarks.

mod average_cost;
mod builder;
mod error;
#[cfg(test)]
mod fixtures;
pub mod generate;
mod parse;
mod store;
mod valuation;

pub use self::error::LedgerError;
pub use self::store::Ledger;
