//! Lists of wallets to ask for: synthetic ones, or every wallet of a ledger.
//!
//! The realistic-day and stampede benchmarks need many distinct, valid
//! wallets that an upstream of their own answers for: [`synthetic`] makes
//! them from their index, so that the same index is the same wallet in
//! every run. The memory benchmark serves a generated ledger, whose wallets
//! only the ledger knows: [`from_ledger`] reads them from `trades.csv` in
//! the order they first appear.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::{Context, Result};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// The `i`th synthetic wallet: `0x` and 40 lower-case hex digits, the same
/// for the same `i` everywhere.
///
/// # Examples
///
/// ```
/// let wallet = benchkit::wallets::synthetic(0);
/// assert_eq!(wallet.len(), 42);
/// assert!(wallet.starts_with("0x"));
/// assert_eq!(wallet, benchkit::wallets::synthetic(0));
/// assert_ne!(wallet, benchkit::wallets::synthetic(1));
/// ```
pub fn synthetic(i: u64) -> String {
    // 160 bits drawn from a generator seeded by the index; the prefix keeps
    // these seeds apart from the bench's other seeds.
    let mut rng = SmallRng::seed_from_u64(i ^ 0x5741_4c4c_4554_0000);
    let (a, b, c) = (rng.random::<u64>(), rng.random::<u64>(), rng.random::<u32>());
    format!("0x{a:016x}{b:016x}{c:08x}")
}

/// The first `n` synthetic wallets.
pub fn synthetic_list(n: usize) -> Vec<String> {
    (0..n as u64).map(synthetic).collect()
}

/// Every wallet in the ledger directory `dir`, in the order its first trade
/// appears in `trades.csv`, lower-cased as the service serves EVM
/// addresses.
///
/// # Errors
///
/// If `trades.csv` cannot be read or has no header.
pub fn from_ledger(dir: &Path) -> Result<Vec<String>> {
    let path = dir.join("trades.csv");
    let file = File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    from_trades(BufReader::new(file)).with_context(|| format!("cannot read wallets from {}", path.display()))
}

fn from_trades(reader: impl BufRead) -> Result<Vec<String>> {
    let mut seen = HashSet::new();
    let mut wallets = Vec::new();
    let mut header_seen = false;
    for line in reader.lines() {
        let line = line?;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if !header_seen {
            header_seen = true;
            anyhow::ensure!(line.starts_with("wallet,"), "expected the header `wallet,...`, found {line:?}");
            continue;
        }
        let wallet = line.split(',').next().unwrap_or_default().trim();
        // EVM addresses are case-insensitive and served lower-case; base58
        // ones are case-sensitive and kept.
        let wallet = if wallet.starts_with("0x") { wallet.to_ascii_lowercase() } else { wallet.to_owned() };
        if seen.insert(wallet.clone()) {
            wallets.push(wallet);
        }
    }
    anyhow::ensure!(header_seen, "no header line");
    Ok(wallets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_wallets_are_valid_and_distinct() {
        let wallets = synthetic_list(10_000);
        let distinct: HashSet<&String> = wallets.iter().collect();
        assert_eq!(distinct.len(), 10_000);
        for wallet in &wallets {
            let parsed = positions_api::Wallet::parse(wallet).expect("a valid wallet");
            assert_eq!(parsed.as_str(), wallet, "already in the service's spelling");
        }
    }

    #[test]
    fn ledger_wallets_come_once_in_first_seen_order() {
        let trades = "\
# a comment
wallet,token,symbol,side,quantity,price,fee,timestamp
0xAB00000000000000000000000000000000000001,t,S,buy,1,1,0,2026-11-24T10:00:00Z

7EcDhSYGxXyscszYEp35KHN8vvw3svAuLKTzXwCFLtV,t,S,buy,1,1,0,2026-11-24T10:00:00Z
0xab00000000000000000000000000000000000001,t,S,sell,1,1,0,2026-11-24T11:00:00Z
";
        let wallets = from_trades(trades.as_bytes()).expect("reads");
        assert_eq!(
            wallets,
            ["0xab00000000000000000000000000000000000001", "7EcDhSYGxXyscszYEp35KHN8vvw3svAuLKTzXwCFLtV"]
        );
        assert!(from_trades("token,price\n".as_bytes()).is_err());
    }
}
