//! What the ledger's unit tests share: file headers, addresses, helpers.

use super::{Ledger, LedgerError};
use crate::wallet::Wallet;

pub(super) const HEADER: &str = "wallet,token,symbol,side,quantity,price,fee,timestamp\n";
pub(super) const PRICES: &str = "token,price,updated_at\n";
pub(super) const W: &str = "0x52908400098527886e0f7030069857d2e4169ee7";
pub(super) const USDC: &str = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48";
pub(super) const WETH: &str = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2";

pub(super) fn wallet(text: &str) -> Wallet {
    Wallet::parse(text).expect("a valid wallet")
}

/// The error for a trades file with `line` as its only data line.
pub(super) fn trade_error(line: &str) -> LedgerError {
    Ledger::from_strs(&format!("{HEADER}{line}\n"), PRICES).expect_err(line)
}
