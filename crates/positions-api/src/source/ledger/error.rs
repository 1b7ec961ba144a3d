//! Why a ledger could not be loaded, or a wallet's positions computed.

use std::path::PathBuf;

use crate::wallet::Wallet;

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
