//! Memory: the resident set of `positions-api` holding 2,000 and then
//! 100,000 wallets of about ten positions each, and what that makes per
//! wallet, next to the 4 KB target (the original report measured about
//! 100 KB).
//!
//! The service serves the generated 100,000-wallet ledger (written once
//! into `target/ledger-100k`, as `cargo xtask gen-ledger` does, and reused
//! if present), with room for every wallet and a TTL that outlasts the
//! run. Its resident set is read from `/proc` with nothing cached, after a
//! sweep of the first 2,000 wallets, and after a sweep of the rest; the
//! growth over the first reading, divided by the wallets held (checked on
//! `/metrics`), is the cost of one cached wallet, allocator and table
//! overheads included. The ledger itself is in the baseline.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};

use super::Mode;
use super::figures::thousands;
use super::load::Load;
use super::process::relative;
use super::report::{table, verdict};
use super::{probe, servers};
use crate::cmd::{cargo, root, run};

const LEDGER_WALLETS: u64 = 100_000;
const FIRST: u64 = 2_000;
/// Room for exactly every wallet of the ledger (the memory tier bounds its
/// total, not each shard's share, so an exact fit holds them all).
const CAPACITY: u64 = LEDGER_WALLETS;
/// The target: 4 KB per wallet.
const TARGET_BYTES: f64 = 4_096.0;

/// One reading.
#[derive(Debug)]
struct Reading {
    wallets: u64,
    rss_bytes: f64,
}

pub(crate) fn run_section(_mode: Mode) -> Result<String> {
    // The same in both modes: it counts bytes, not time, and a sweep of
    // 100,000 wallets takes seconds.
    servers::build_release()?;
    let ledger = ensure_ledger()?;
    let dir = servers::scratch("memory")?;
    // Relative to the workspace root, where the service runs, so that the
    // commands in the report work anywhere.
    let ledger = PathBuf::from(relative(&ledger));
    let source = format!("ledger:{}", ledger.display());
    let capacity = CAPACITY.to_string();
    let mut service = servers::service(
        &dir,
        "positions-api",
        &[
            ("POSITIONS_SOURCE", source.as_str()),
            ("POSITION_CACHE_MAX", capacity.as_str()),
            ("POSITION_CACHE_TTL_SEC", "86400"),
        ],
        None,
    )?;
    let pid = service.process.pid();
    let prefix = service.url("/v4/positions/");

    let mut readings = vec![Reading { wallets: held(&service)?, rss_bytes: rss_bytes(pid)? }];
    let mut sweeps = Vec::new();
    for (from, count) in [(0, FIRST), (FIRST, LEDGER_WALLETS - FIRST)] {
        let sweep = Load::run(&[
            "sweep".into(),
            "--url-prefix".into(),
            prefix.clone(),
            "--wallets-from-ledger".into(),
            ledger.to_string_lossy().into_owned(),
            "--from".into(),
            from.to_string(),
            "--count".into(),
            count.to_string(),
            "--concurrency".into(),
            "4".into(),
        ])?;
        ensure!(sweep.failed() == 0, "the sweep of wallets {from}.. failed: {}", sweep.failures());
        readings.push(Reading { wallets: held(&service)?, rss_bytes: rss_bytes(pid)? });
        sweeps.push(sweep);
    }
    service.process.check_running()?;
    ensure!(
        readings.iter().map(|r| r.wallets).eq([0, FIRST, LEDGER_WALLETS]),
        "the service does not hold the wallets it was asked for: {:?}",
        readings.iter().map(|r| r.wallets).collect::<Vec<_>>()
    );
    let commands = [service.process.shown().to_owned(), sweeps[0].shown.clone(), sweeps[1].shown.clone()];
    render(&readings, &sweeps, &commands)
}

/// The ledger directory, generated if it is not there yet.
fn ensure_ledger() -> Result<PathBuf> {
    let dir = root().join("target/ledger-100k");
    if dir.join("trades.csv").is_file() && dir.join("prices.csv").is_file() {
        eprintln!("reusing the ledger in {}", relative(&dir));
        return Ok(dir);
    }
    run(cargo()
        .args(["run", "--release", "--locked", "-p", "positions-api", "--bin", "gen-ledger", "--"])
        .args(["--wallets", &LEDGER_WALLETS.to_string(), "--seed", "1", "--out"])
        .arg(&dir))?;
    Ok(dir)
}

/// Wallets in the service's memory tier, from `/metrics`.
fn held(service: &servers::Server) -> Result<u64> {
    let entries = probe::metrics(service.addr, &["position_cache_entries"])?[0];
    // A gauge of whole wallets.
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "a count of wallets")]
    Ok(entries as u64)
}

/// The resident set of process `pid`, in bytes (`VmRSS` in
/// `/proc/PID/status`).
fn rss_bytes(pid: u32) -> Result<f64> {
    let path = Path::new("/proc").join(pid.to_string()).join("status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no VmRSS in {}", path.display()))?;
    Ok(kib * 1_024.0)
}

fn render(readings: &[Reading], sweeps: &[Load], commands: &[String]) -> Result<String> {
    let base = &readings[0];
    let mut s = String::from(
        "## Memory per cached wallet\n\n\
         `positions-api` serving the generated 100,000-wallet ledger (`target/ledger-100k`, seed 1) with \
         `POSITION_CACHE_MAX=100000` (room for exactly all of them): its resident set (`VmRSS`) with nothing cached, after one request \
         for each of the first 2,000 wallets, and after one for each of the rest (the wallets held are \
         read from `position_cache_entries`). Per wallet is the growth over the first reading divided by \
         the wallets held: the cached JSON, the cache's entry and table, and what the allocator keeps \
         around them. The ledger itself is in the first reading.\n\n",
    );
    let mut rows = vec![vec!["0".to_owned(), mib(base.rss_bytes), "–".to_owned(), "–".to_owned()]];
    let mut verdicts = Vec::new();
    for r in &readings[1..] {
        let per_wallet = (r.rss_bytes - base.rss_bytes) / r.wallets as f64;
        rows.push(vec![
            thousands(r.wallets as f64),
            mib(r.rss_bytes),
            mib(r.rss_bytes - base.rss_bytes),
            thousands(per_wallet),
        ]);
        verdicts.push(format!(
            "- holding {} wallets: {} bytes per wallet, at most {} bytes: {}.",
            thousands(r.wallets as f64),
            thousands(per_wallet),
            thousands(TARGET_BYTES),
            verdict(per_wallet <= TARGET_BYTES)
        ));
    }
    s.push_str(&table(&["wallets held", "resident set", "growth", "bytes per wallet"], &rows));
    let positions = sweeps[1].number("/positions_mean")?;
    let body = sweeps[1].number("/body_bytes_mean")?;
    let _ = writeln!(
        s,
        "\nA wallet held {positions:.1} positions on average, and its answer was {} bytes of JSON on \
         average, nearly all of it the positions as the memory tier keeps them (rendered JSON).\n\n\
         Against the target of 4 KB (4,096 bytes) per wallet; the original report measured about 100 KB:\n\n{}\n",
        thousands(body),
        verdicts.join("\n")
    );
    s.push_str("Commands:\n\n```sh\n");
    for command in commands {
        let _ = writeln!(s, "{command}");
    }
    s.push_str("```\n\n");
    Ok(s)
}

fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / (1_024.0 * 1_024.0))
}
