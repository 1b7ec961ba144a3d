//! Reading a ledger's lines into its index: each line is checked and
//! interned as it comes, then [`Builder::finish`] sorts and indexes the
//! whole.

use std::collections::HashMap;

use time::OffsetDateTime;

use super::LedgerError;
use super::parse::{PRICES_FILE, Place, Range, TRADES_FILE, shown};
use super::store::{Ledger, Quote, Side, Token, Trade};
use crate::wallet::Wallet;

/// A ledger being read: lines are added one at a time, then
/// [`Builder::finish`] sorts and indexes them.
#[derive(Default)]
pub(super) struct Builder {
    trades: Vec<Trade>,
    wallets: Vec<Wallet>,
    wallet_index: HashMap<Wallet, u32>,
    tokens: Vec<Token>,
    token_index: HashMap<Box<str>, u32>,
    as_of: Option<OffsetDateTime>,
}

impl Builder {
    pub(super) fn trade(&mut self, line: usize, fields: [&str; 8]) -> Result<(), LedgerError> {
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

    pub(super) fn price(&mut self, line: usize, fields: [&str; 3]) -> Result<(), LedgerError> {
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
    pub(super) fn finish(self) -> Ledger {
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

    use super::super::fixtures::{HEADER, PRICES, USDC, W, WETH, trade_error, wallet};
    use super::*;

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
}
