//! `load`: the bench's load driver for what wrk cannot do.
//!
//! ```text
//! load stampede --url URL --requests 1000
//! load stampede --url URL_A --url URL_B --url URL_C --requests 3000
//! load zipf --url-prefix http://HOST:PORT/v4/positions/ --wallets 10000 --alpha 1.0 --rate 100 --duration 60s
//! load zipf --url-prefix http://A/v4/positions/ --url-prefix http://B/v4/positions/ --wallets 10000 --rate 100 --duration 60s
//! load zipf --url-prefix ... --wallets-from-ledger DIR --connections 32 --duration 10s
//! load sweep --url-prefix ... --wallets-from-ledger DIR --from 0 --count 2000 --concurrency 8
//! load sweep --url-prefix ... --wallets 10000 --reverse
//! ```
//!
//! It prints one JSON object on stdout (`benchkit::drive::Report`) for the
//! xtask to read, and nothing else there. The modes are in
//! `benchkit::drive`; this is their command line.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use benchkit::drive::{self, Report};
use clap::{Args as ClapArgs, Parser, Subcommand};

/// Drives load at a server and reports what it answered, as JSON.
#[derive(Debug, Parser)]
#[command(name = "load", version)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
    /// Worker threads (default: tokio's, one per core).
    #[arg(long, global = true)]
    threads: Option<usize>,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// N concurrent requests for one URL, each on its own connection,
    /// released together.
    Stampede {
        /// The URL to request; repeated, the requests go to each in turn.
        #[arg(long, required = true)]
        url: Vec<String>,
        /// How many requests, in all.
        #[arg(long, default_value_t = 1_000)]
        requests: usize,
    },
    /// Requests for wallets drawn Zipf(alpha), for a duration.
    Zipf {
        #[command(flatten)]
        wallets: WalletArgs,
        /// The Zipf exponent.
        #[arg(long, default_value_t = 1.0)]
        alpha: f64,
        /// Poisson arrivals at this many requests per second (open loop).
        #[arg(long, conflicts_with = "connections", required_unless_present = "connections")]
        rate: Option<f64>,
        /// This many connections, each sending when answered (closed loop).
        #[arg(long)]
        connections: Option<usize>,
        /// How long to send for: `90s`, `1500ms` or seconds.
        #[arg(long, value_parser = parse_duration)]
        duration: Duration,
        /// The seed of the wallet choices and arrival times.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Each wallet of a list (or a slice of it) once.
    Sweep {
        #[command(flatten)]
        wallets: WalletArgs,
        /// The first wallet of the list to request.
        #[arg(long, default_value_t = 0)]
        from: usize,
        /// How many (default: to the end of the list).
        #[arg(long)]
        count: Option<usize>,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Go through the slice from its end: least popular first, for a
        /// list ordered most popular first.
        #[arg(long)]
        reverse: bool,
    },
}

/// Where the wallets come from and how to make their URLs.
#[derive(Debug, ClapArgs)]
struct WalletArgs {
    /// Prepended to each wallet to make its URL; repeated (`zipf` only),
    /// the requests go to each in turn.
    #[arg(long, required = true)]
    url_prefix: Vec<String>,
    /// This many synthetic wallets (`benchkit::wallets::synthetic`).
    #[arg(long, conflicts_with = "wallets_from_ledger", required_unless_present = "wallets_from_ledger")]
    wallets: Option<usize>,
    /// Every wallet of the ledger in this directory, in first-trade order.
    #[arg(long)]
    wallets_from_ledger: Option<PathBuf>,
}

impl WalletArgs {
    fn list(&self) -> Result<Vec<String>> {
        match (&self.wallets, &self.wallets_from_ledger) {
            (Some(n), _) => Ok(benchkit::wallets::synthetic_list(*n)),
            (None, Some(dir)) => benchkit::wallets::from_ledger(dir),
            (None, None) => bail!("give --wallets N or --wallets-from-ledger DIR"),
        }
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let runtime = benchkit::serve::runtime(cli.threads)?;
    let report: Report = runtime.block_on(async {
        match cli.mode {
            Mode::Stampede { url, requests } => {
                let uris = url
                    .iter()
                    .map(|u| u.parse().with_context(|| format!("invalid --url {u:?}")))
                    .collect::<Result<Vec<_>>>()?;
                drive::stampede::run(&uris, requests).await
            }
            Mode::Zipf { wallets, alpha, rate, connections, duration, seed } => {
                let pace = match (rate, connections) {
                    (Some(rate), _) => drive::zipf::Pace::Rate(rate),
                    (None, Some(c)) => drive::zipf::Pace::Connections(c),
                    (None, None) => bail!("give --rate R or --connections C"),
                };
                let plan = drive::zipf::Plan {
                    url_prefixes: wallets.url_prefix.clone(),
                    wallets: wallets.list()?,
                    alpha,
                    pace,
                    duration,
                    seed,
                };
                drive::zipf::run(plan).await
            }
            Mode::Sweep { wallets, from, count, concurrency, reverse } => {
                // A sweep fills one cache with a known set of wallets; to
                // fill several, sweep each.
                let [url_prefix] = wallets.url_prefix.as_slice() else {
                    bail!("sweep takes one --url-prefix, not {}", wallets.url_prefix.len());
                };
                let list = wallets.list()?;
                let end = count.map_or(list.len(), |c| from.saturating_add(c));
                let Some(slice) = list.get(from..end) else {
                    bail!("invalid --from {from} --count {count:?}: the list has {} wallets", list.len());
                };
                let mut slice = slice.to_vec();
                if reverse {
                    slice.reverse();
                }
                drive::sweep::run(url_prefix, &slice, concurrency).await
            }
        }
    })?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// `90s`, `1500ms`, or a number of seconds.
fn parse_duration(text: &str) -> Result<Duration> {
    let invalid = || format!("invalid duration {text:?}: expected such as 90s, 1500ms or 2.5");
    let (number, scale) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 1e-3)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number.trim().parse().with_context(invalid)?;
    Duration::try_from_secs_f64(value * scale).with_context(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("90s").ok(), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1500ms").ok(), Some(Duration::from_millis(1_500)));
        assert_eq!(parse_duration("2.5").ok(), Some(Duration::from_millis(2_500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
