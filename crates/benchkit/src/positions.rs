//! The slow upstream's answer: deterministic positions for any wallet.
//!
//! Every wallet gets `count` positions whose figures follow from the wallet
//! alone, in the body shape that `positions-api`'s `http` source reads
//! (`{"positions": [...], "computed_at": ...}`, decimals as strings, the
//! field names of the API). The arithmetic is consistent (cost basis is
//! quantity times average cost, market value quantity times price, and
//! unrealized profit their difference), so the body looks like a real
//! computation to anything that checks.
//!
//! It is not a model of anyone's portfolio; only the size and shape of the
//! answer matter to the benchmarks.

use std::fmt::Write as _;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const SYMBOLS: [&str; 12] = ["WETH", "USDC", "USDT", "WBTC", "DAI", "LINK", "UNI", "AAVE", "ARB", "OP", "MKR", "LDO"];
const CONFIDENCE: [&str; 3] = ["high", "medium", "low"];

/// The upstream's JSON body for `wallet`: `count` positions, and
/// `computed_at` (which is the one part that is not a function of the
/// wallet: the time of the answer).
///
/// # Examples
///
/// ```
/// let body = benchkit::positions::body("0x52908400098527886e0f7030069857d2e4169ee7", 10, None);
/// let json: serde_json::Value = serde_json::from_str(&body).unwrap();
/// assert_eq!(json["positions"].as_array().unwrap().len(), 10);
/// ```
pub fn body(wallet: &str, count: usize, computed_at: Option<OffsetDateTime>) -> String {
    let mut rng = SmallRng::seed_from_u64(seed_of(wallet));
    let mut out = String::with_capacity(64 + count * 420);
    out.push_str("{\"positions\":[");
    for i in 0..count {
        if i > 0 {
            out.push(',');
        }
        position(&mut rng, i, &mut out);
    }
    out.push(']');
    if let Some(at) = computed_at.and_then(|t| t.format(&Rfc3339).ok()) {
        let _ = write!(out, ",\"computed_at\":\"{at}\"");
    }
    out.push('}');
    out
}

/// One position, appended to `out` as a JSON object.
fn position(rng: &mut SmallRng, index: usize, out: &mut String) {
    let token = format!("0x{:016x}{:016x}{:08x}", rng.random::<u64>(), rng.random::<u64>(), rng.random::<u32>());
    let symbol = SYMBOLS[index % SYMBOLS.len()];
    // Whole numbers of the smallest units, so every figure is exact.
    let quantity = Decimal::new(rng.random_range(1..=50_000_000), 4);
    let avg_cost = Decimal::new(rng.random_range(1..=5_000_000_000), 6);
    let price = Decimal::new(rng.random_range(1..=5_000_000_000), 6);
    let realized = Decimal::new(rng.random_range(-1_000_000..=1_000_000), 2);
    let cost_basis = quantity * avg_cost;
    let market_value = quantity * price;
    let unrealized = market_value - cost_basis;
    let confidence = CONFIDENCE[rng.random_range(0..CONFIDENCE.len())];
    let minute = rng.random_range(0..60);
    let second = rng.random_range(0..60);
    let _ = write!(
        out,
        "{{\"token\":\"{token}\",\"symbol\":\"{symbol}\",\"quantity\":\"{quantity}\",\"avg_cost\":\"{avg_cost}\",\
         \"cost_basis\":\"{cost_basis}\",\"price\":\"{price}\",\"market_value\":\"{market_value}\",\
         \"unrealized_pnl\":\"{unrealized}\",\"realized_pnl\":\"{realized}\",\"confidence\":\"{confidence}\",\
         \"price_updated_at\":\"2026-11-24T10:{minute:02}:{second:02}Z\"}}"
    );
}

/// A seed from the wallet's text (FNV-1a), so each wallet has its own
/// positions and the same ones every time.
fn seed_of(wallet: &str) -> u64 {
    wallet.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WALLET: &str = "0x52908400098527886e0f7030069857d2e4169ee7";

    #[test]
    fn the_service_reads_what_the_upstream_writes() {
        let at = OffsetDateTime::from_unix_timestamp(1_795_000_000).expect("valid time");
        let body = body(WALLET, 10, Some(at));
        let parsed = positions_api::source::http::parse_body(body.as_bytes()).expect("the http source parses it");
        assert_eq!(parsed.positions.len(), 10);
        assert_eq!(parsed.computed_at, Some(at));
        for p in &parsed.positions {
            assert_eq!(p.cost_basis, p.quantity * p.avg_cost);
            let (price, value, pnl) = (p.price.expect("price"), p.market_value.expect("value"), p.unrealized_pnl);
            assert_eq!(value, p.quantity * price);
            assert_eq!(pnl, Some(value - p.cost_basis));
        }
    }

    #[test]
    fn positions_depend_on_the_wallet_alone() {
        assert_eq!(body(WALLET, 10, None), body(WALLET, 10, None));
        assert_ne!(body(WALLET, 10, None), body("0x52908400098527886e0f7030069857d2e4169ee8", 10, None));
        let empty = positions_api::source::http::parse_body(body(WALLET, 0, None).as_bytes()).expect("parses");
        assert!(empty.positions.is_empty());
        assert_eq!(empty.computed_at, None);
    }
}
