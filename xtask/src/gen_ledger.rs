//! `cargo xtask gen-ledger`: a large, deterministic ledger for benchmarks.
//!
//! This only picks the defaults and resolves paths; the format and the
//! generator live in positions-api (its `gen-ledger` binary, run here in
//! release), so that they have one definition, next to the parser.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::cmd::{cargo, root, run as run_command};

const USAGE: &str = "cargo xtask gen-ledger [--wallets N] [--out DIR] [--seed S]";

pub(crate) fn run(args: &[String]) -> Result<()> {
    let mut wallets: u64 = 100_000;
    let mut seed: u64 = 1;
    let mut out: Option<PathBuf> = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        // Both `--flag value` and `--flag=value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag, Some(value.to_owned())),
            None => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next().cloned())
                .with_context(|| format!("{flag} needs a value; usage: {USAGE}"))
        };
        match flag {
            "--wallets" => {
                let text = value()?;
                wallets =
                    text.parse().with_context(|| format!("invalid --wallets {text:?}: expected a whole number"))?;
            }
            "--seed" => {
                let text = value()?;
                seed = text.parse().with_context(|| format!("invalid --seed {text:?}: expected a whole number"))?;
            }
            "--out" => out = Some(PathBuf::from(value()?)),
            other => bail!("unknown argument to `gen-ledger`: {other:?}; usage: {USAGE}"),
        }
    }
    // The generator runs from the workspace root; a relative --out means
    // relative to where the user typed the command.
    let out = match out {
        Some(dir) => std::path::absolute(&dir).with_context(|| format!("invalid --out {}", dir.display()))?,
        None => root().join("target").join(format!("ledger-{}", short_count(wallets))),
    };
    let mut command = cargo();
    command.args(["run", "--release", "-p", "positions-api", "--bin", "gen-ledger", "--"]);
    command.arg("--wallets").arg(wallets.to_string()).arg("--seed").arg(seed.to_string()).arg("--out").arg(&out);
    run_command(&mut command)
}

/// `100000` as `100k`, `2000000` as `2m`; other counts as they are.
fn short_count(n: u64) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}m", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_directories_are_named_by_size() {
        assert_eq!(short_count(100_000), "100k");
        assert_eq!(short_count(1_000), "1k");
        assert_eq!(short_count(2_000_000), "2m");
        assert_eq!(short_count(1_500), "1500");
        assert_eq!(short_count(0), "0");
    }
}
