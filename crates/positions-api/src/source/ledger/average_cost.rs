//! The average-cost method: what one token's trades add up to, one trade at
//! a time, and how far to trust the valuation.
//!
//! Only arithmetic on decimals: no files, no wallets, no clock. Every
//! operation is checked, because a ledger is input and an overflowing
//! product must be an error for that wallet, never a panic in a request.
//!
//! Not here: which trades belong together or in which order they apply
//! (the ledger sorts them by time before they get here), and prices.

use rust_decimal::{Decimal, RoundingStrategy};
use time::Duration;

use crate::model::Confidence;

/// Decimal places the average cost is rounded to. Without a bound, a
/// quotient such as 1/3 would carry 28 digits and every later product
/// would round differently; 18 is what ERC-20 tokens divide a unit into.
pub(super) const AVG_COST_DECIMALS: u32 = 18;

/// A price at most this old (before the ledger's as-of time) is fresh.
pub(super) const FRESH: Duration = Duration::minutes(15);

/// A price at most this old is still usable, but ageing.
pub(super) const USABLE: Duration = Duration::hours(24);

/// A product or sum left the range of a 96-bit decimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Overflow;

/// One wallet's holding of one token, after the trades applied so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Holding {
    /// Units held.
    pub(super) quantity: Decimal,
    /// What the units held cost, fees included.
    pub(super) cost_basis: Decimal,
    /// Cost per unit held: set by buys, unchanged by sells, zero when
    /// nothing is held.
    pub(super) avg_cost: Decimal,
    /// Profit or loss locked in by sells, fees deducted.
    pub(super) realized_pnl: Decimal,
}

impl Default for Holding {
    fn default() -> Self {
        Self {
            quantity: Decimal::ZERO,
            cost_basis: Decimal::ZERO,
            avg_cost: Decimal::ZERO,
            realized_pnl: Decimal::ZERO,
        }
    }
}

impl Holding {
    /// A buy of `quantity` at `price` per unit, paying `fee`: the fee is
    /// part of what the units cost.
    pub(super) fn buy(&mut self, quantity: Decimal, price: Decimal, fee: Decimal) -> Result<(), Overflow> {
        let cost = checked(quantity.checked_mul(price))?;
        let quantity = checked(self.quantity.checked_add(quantity))?;
        let cost_basis = checked(checked(self.cost_basis.checked_add(cost))?.checked_add(fee))?;
        // The quantity is positive here: a buy adds a positive quantity to
        // a non-negative one.
        let avg_cost = checked(cost_basis.checked_div(quantity))?
            .round_dp_with_strategy(AVG_COST_DECIMALS, RoundingStrategy::MidpointAwayFromZero)
            .normalize();
        *self = Self { quantity, cost_basis, avg_cost, realized_pnl: self.realized_pnl };
        Ok(())
    }

    /// A sell of `quantity` at `price` per unit, paying `fee`. Sells at
    /// most what is held; returns the excess that was not held (zero when
    /// the sell was covered), which the caller reports. The fee is charged
    /// whole even on a clamped sell: it was paid.
    pub(super) fn sell(&mut self, quantity: Decimal, price: Decimal, fee: Decimal) -> Result<Decimal, Overflow> {
        let sold = quantity.min(self.quantity);
        // Neither subtraction can overflow: 0 ≤ sold ≤ both operands.
        let excess = quantity - sold;
        let remaining = self.quantity - sold;
        let gain = checked(sold.checked_mul(checked(price.checked_sub(self.avg_cost))?))?;
        let realized_pnl = checked(checked(self.realized_pnl.checked_add(gain))?.checked_sub(fee))?;
        *self = if remaining.is_zero() {
            // A closed position costs nothing, and the next buy starts a
            // fresh average. This also drops the residue (under 10^-18 per
            // unit) that rounding the average leaves in the basis.
            Self { realized_pnl, ..Self::default() }
        } else {
            let cost_basis = checked(self.cost_basis.checked_sub(checked(sold.checked_mul(self.avg_cost))?))?;
            Self { quantity: remaining, cost_basis, avg_cost: self.avg_cost, realized_pnl }
        };
        Ok(excess)
    }
}

/// How far to trust a position, from its price's age (as-of time minus
/// the price's `updated_at`; `None` without a price) and whether a sell
/// beyond holdings was clamped.
pub(super) fn confidence(price_age: Option<Duration>, oversold: bool) -> Confidence {
    match price_age {
        _ if oversold => Confidence::Low,
        Some(age) if age <= FRESH => Confidence::High,
        Some(age) if age <= USABLE => Confidence::Medium,
        _ => Confidence::Low,
    }
}

fn checked(value: Option<Decimal>) -> Result<Decimal, Overflow> {
    value.ok_or(Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        Decimal::from_str_exact(text).expect("a valid decimal")
    }

    /// The holding's four figures as text, scale included.
    fn figures(h: &Holding) -> [String; 4] {
        [h.quantity.to_string(), h.avg_cost.to_string(), h.cost_basis.to_string(), h.realized_pnl.to_string()]
    }

    #[test]
    fn a_buy_adds_cost_and_fee() {
        let mut h = Holding::default();
        // 3 × 2.00 = 6.00, plus the fee 0.30: basis 6.30; 6.30 / 3 = 2.1.
        h.buy(d("3"), d("2.00"), d("0.30")).expect("no overflow");
        assert_eq!(figures(&h), ["3", "2.1", "6.30", "0"]);
    }

    #[test]
    fn a_sell_realizes_against_the_average_and_keeps_it() {
        let mut h = Holding::default();
        h.buy(d("3"), d("2.00"), d("0.30")).expect("no overflow");
        // 1 × (2.50 − 2.1) − 0.25 = 0.40 − 0.25 = 0.15 realized;
        // basis 6.30 − 1 × 2.1 = 4.20; the average stays 2.1.
        assert_eq!(h.sell(d("1"), d("2.50"), d("0.25")), Ok(d("0")));
        assert_eq!(figures(&h), ["2", "2.1", "4.20", "0.15"]);
    }

    #[test]
    fn the_average_is_rounded_to_18_places_midpoint_away_from_zero() {
        let mut h = Holding::default();
        // 2.00 / 3 = 0.666…, to 18 places: …667.
        h.buy(d("3"), d("0.50"), d("0.50")).expect("no overflow");
        assert_eq!(h.avg_cost.to_string(), "0.666666666666666667");
        // 0.000000000000000001 / 2 = 0.0000000000000000005 exactly: a
        // midpoint, which goes away from zero (banker's rounding would
        // give 0).
        let mut h = Holding::default();
        h.buy(d("2"), d("0"), d("0.000000000000000001")).expect("no overflow");
        assert_eq!(h.avg_cost.to_string(), "0.000000000000000001");
    }

    #[test]
    fn a_sell_beyond_holdings_sells_what_is_held() {
        let mut h = Holding::default();
        h.buy(d("5"), d("10"), d("0")).expect("no overflow");
        // 8 asked, 5 held: 5 × (12 − 10) − 1 = 9 realized, 3 in excess.
        assert_eq!(h.sell(d("8"), d("12"), d("1")), Ok(d("3")));
        assert_eq!(figures(&h), ["0", "0", "0", "9"]);
        // Selling again from nothing sells nothing and still pays the fee.
        assert_eq!(h.sell(d("1"), d("12"), d("0.5")), Ok(d("1")));
        assert_eq!(h.realized_pnl.to_string(), "8.5");
    }

    #[test]
    fn closing_drops_the_rounding_residue() {
        let mut h = Holding::default();
        // 3 × 0.30 + 0.10 = 1.00; average 0.333333333333333333.
        h.buy(d("3"), d("0.30"), d("0.10")).expect("no overflow");
        // Without the reset the basis would keep 1.00 − 0.999999999999999999
        // = 0.000000000000000001.
        h.sell(d("3"), d("0.40"), d("0")).expect("no overflow");
        assert_eq!(figures(&h)[..3], ["0", "0", "0"]);
    }

    #[test]
    fn overflow_is_an_error_not_a_panic() {
        let mut h = Holding::default();
        assert_eq!(h.buy(Decimal::MAX, d("2"), d("0")), Err(Overflow));
        assert_eq!(h, Holding::default(), "a failed trade changes nothing");
    }

    #[test]
    fn confidence_follows_the_price_age_and_oversold_sells() {
        let minutes = Duration::minutes;
        assert_eq!(confidence(Some(minutes(0)), false), Confidence::High);
        assert_eq!(confidence(Some(minutes(15)), false), Confidence::High, "15 minutes is still fresh");
        assert_eq!(confidence(Some(minutes(15) + Duration::SECOND), false), Confidence::Medium);
        assert_eq!(confidence(Some(Duration::hours(24)), false), Confidence::Medium, "24 hours is still usable");
        assert_eq!(confidence(Some(Duration::hours(24) + Duration::SECOND), false), Confidence::Low);
        assert_eq!(confidence(None, false), Confidence::Low);
        assert_eq!(confidence(Some(minutes(1)), true), Confidence::Low, "an oversold sell trumps a fresh price");
    }
}
