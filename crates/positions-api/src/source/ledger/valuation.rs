//! A wallet's positions: its run of trades applied token by token by the
//! average-cost method, each holding valued at its token's latest price.

use rust_decimal::Decimal;

use super::LedgerError;
use super::average_cost::{Holding, Overflow, confidence};
use super::parse::{PRICES_FILE, TRADES_FILE};
use super::store::{Ledger, Side, Token, Trade};
use crate::model::Position;
use crate::wallet::Wallet;

impl Ledger {
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

#[cfg(test)]
mod tests {
    use super::super::fixtures::{HEADER, PRICES, USDC, W, WETH, wallet};
    use super::*;

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
}
