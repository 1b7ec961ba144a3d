//! `gen-ledger`: writes a large, deterministic ledger (`trades.csv` and
//! `prices.csv`) for benchmarks.
//!
//! A thin command line over `positions_api::source::ledger::generate`,
//! which owns the format together with the parser. `cargo xtask
//! gen-ledger` runs it in release with the project's defaults; the service
//! reads the result with `POSITIONS_SOURCE=ledger:DIR`. Not for the
//! committed sample ledger, which is written by hand so that every figure
//! in it can be checked by hand.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use positions_api::source::ledger::Ledger;
use positions_api::source::ledger::generate::{self, Options};

/// Writes a deterministic ledger: the same options give the same bytes.
#[derive(Debug, Parser)]
#[command(name = "gen-ledger", version)]
struct Args {
    /// How many wallets.
    #[arg(long, default_value_t = Options::default().wallets)]
    wallets: u64,
    /// How many tokens each wallet trades.
    #[arg(long, default_value_t = Options::default().tokens_per_wallet, value_parser = clap::value_parser!(u32).range(1..))]
    tokens_per_wallet: u32,
    /// The generator's seed.
    #[arg(long, default_value_t = Options::default().seed)]
    seed: u64,
    /// The directory to write `trades.csv` and `prices.csv` into (created
    /// if missing; existing files are replaced).
    #[arg(long)]
    out: PathBuf,
    /// Then load the ledger back and report how long that took.
    #[arg(long)]
    check: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let options = Options { wallets: args.wallets, tokens_per_wallet: args.tokens_per_wallet, seed: args.seed };
    let started = Instant::now();
    let summary = generate::write_dir(&options, &args.out)
        .with_context(|| format!("could not write a ledger into {}", args.out.display()))?;
    eprintln!(
        "wrote {} trades for {} wallets and {} price lines for {} tokens into {} in {:.1}s (as of {})",
        summary.trades,
        summary.wallets,
        summary.prices,
        summary.tokens,
        args.out.display(),
        started.elapsed().as_secs_f64(),
        positions_api::rfc3339(generate::AS_OF),
    );
    if args.check {
        let started = Instant::now();
        let ledger = Ledger::load(&args.out)?;
        eprintln!("loaded {ledger:?} in {:.2}s", started.elapsed().as_secs_f64());
    }
    Ok(())
}
