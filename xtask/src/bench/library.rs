//! The `library` section: `cache-swr` as a library user meets it, against
//! the async caches they would otherwise pick. The async hit path (criterion
//! medians) and an expiring workload (read latency percentiles and load
//! calls), both from `cargo bench -p cache-swr --bench swr`.

use std::fmt::Write as _;
use std::process::Stdio;

use anyhow::{Context, Result, ensure};

use super::Mode;
use super::figures::{latency, ratio, thousands};
use super::report::{criterion_median_ns, table, verdict};
use crate::cmd::cargo;

/// The hit-path contenders: criterion's function name and the call timed.
const HIT: [(&str, &str); 4] = [
    ("cache-swr", "`SwrCache::get_or_load`"),
    ("cache-core", "its memory tier alone: `cache_core::Cache::get` (sync, for reference)"),
    ("moka", "`moka::future::Cache::get_with`"),
    ("quick_cache", "`quick_cache::sync::Cache::get_value_or_guard_async`"),
];
const OURS: &str = "cache-swr";
/// The bench's load function sleeps this long (`LOAD_TIME` there).
const LOAD_MS: f64 = 5.0;
/// Ours on a hit within this factor of `quick_cache`.
const HIT_TARGET: f64 = 1.2;

/// One cache's line of the expiring workload, as the bench prints it:
/// `swr-workload name=.. reads=.. p50_us=.. p90_us=.. p99_us=.. p999_us=.. max_us=.. calls=.. [stale=..]`.
#[derive(Debug, Clone, PartialEq)]
struct Workload {
    name: String,
    reads: u64,
    /// p50, p90, p99, p99.9 and max, in µs.
    percentiles_us: [f64; 5],
    calls: u64,
    /// Reads answered with a stale value, for a cache that serves them.
    stale: Option<u64>,
}

impl Workload {
    fn parse(line: &str) -> Option<Result<Self>> {
        let fields = line.strip_prefix("swr-workload ")?;
        Some(Self::parse_fields(fields).with_context(|| format!("unreadable workload line {line:?}")))
    }

    fn parse_fields(fields: &str) -> Result<Self> {
        let pairs: Vec<(&str, &str)> = fields
            .split_whitespace()
            .map(|f| f.split_once('=').context("a field without `=`"))
            .collect::<Result<_>>()?;
        let get = |key: &str| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        let need = |key: &str| get(key).with_context(|| format!("no `{key}`"));
        let us = |key: &str| -> Result<f64> { Ok(need(key)?.parse()?) };
        Ok(Self {
            name: need("name")?.to_owned(),
            reads: need("reads")?.parse()?,
            percentiles_us: [us("p50_us")?, us("p90_us")?, us("p99_us")?, us("p999_us")?, us("max_us")?],
            calls: need("calls")?.parse()?,
            stale: get("stale").map(str::parse).transpose()?,
        })
    }

    fn p99_ms(&self) -> f64 {
        self.percentiles_us[2] / 1_000.0
    }
}

pub(crate) fn run_section(mode: Mode) -> Result<String> {
    let timing: &[&str] = match mode {
        Mode::Full => &[],
        Mode::Quick => &["--warm-up-time", "0.5", "--measurement-time", "1", "--sample-size", "20"],
    };
    let mut cmd = cargo();
    cmd.args(["bench", "--locked", "-p", "cache-swr", "--bench", "swr", "--"]).args(timing);
    if mode == Mode::Quick {
        cmd.env("QUICK", "1");
    }
    eprintln!("==> cargo bench --locked -p cache-swr --bench swr -- {}", timing.join(" "));
    // Criterion and the workload print to stdout, read here; cargo's own
    // output goes straight through.
    let out = cmd.stderr(Stdio::inherit()).output().context("could not run cargo bench")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprint!("{stdout}");
    ensure!(out.status.success(), "`cargo bench -p cache-swr --bench swr` failed ({})", out.status);

    let hits: Vec<(&str, &str, f64)> = HIT
        .iter()
        .map(|(name, call)| Ok((*name, *call, criterion_median_ns(&format!("swr_hit/{name}"))?)))
        .collect::<Result<_>>()?;
    let workloads = parse_workloads(&stdout)?;
    for name in [OURS, "moka"] {
        ensure!(workloads.iter().any(|w| w.name == name), "the bench printed no workload line for {name}");
    }
    Ok(render(mode, &hits, &workloads))
}

fn parse_workloads(stdout: &str) -> Result<Vec<Workload>> {
    stdout.lines().filter_map(Workload::parse).collect()
}

/// `0.4 µs`, `35 µs`, then as [`latency`] does.
fn micros(us: f64) -> String {
    if us < 10.0 {
        format!("{us:.1} µs")
    } else if us < 1_000.0 {
        format!("{us:.0} µs")
    } else {
        latency(us / 1_000.0)
    }
}

fn render(mode: Mode, hits: &[(&str, &str, f64)], workloads: &[Workload]) -> String {
    let command = match mode {
        Mode::Full => "cargo bench -p cache-swr --bench swr",
        Mode::Quick => {
            "QUICK=1 cargo bench -p cache-swr --bench swr -- --warm-up-time 0.5 --measurement-time 1 --sample-size 20"
        }
    };
    let mut s = format!(
        "## cache-swr as a library: async hit path and an expiring workload\n\n\
         `{command}`, in one run. `u64` keys and values.\n\n\
         ### Async hit path\n\n\
         Criterion medians of one read of a present, fresh key through each cache's async \
         read-or-load call, over 10,000 present keys in shuffled order. Each read is polled once with a \
         no-op waker and must be ready on that poll (the bench fails otherwise; all three were), so the \
         figure is the cache's cost without an executor's. `cache-swr` and moka hold a 900 s TTL, so \
         their reads also read a clock; quick_cache has no expiry. The `cache-core` row is `cache-swr`'s \
         memory tier read directly, without the async call: the difference from the `cache-swr` row is \
         what the composition adds to a hit.\n\n",
    );
    let quick_ns = hits.iter().find(|(n, _, _)| *n == "quick_cache").map(|(_, _, ns)| *ns);
    let rows: Vec<Vec<String>> = hits
        .iter()
        .map(|(name, call, ns)| {
            vec![
                format!("`{name}`"),
                (*call).to_owned(),
                format!("{ns:.1}"),
                quick_ns.map_or_else(|| "–".to_owned(), |q| ratio(ns / q)),
            ]
        })
        .collect();
    s.push_str(&table(&["cache", "call", "hit (ns)", "ratio to quick_cache"], &rows));
    let ours_ns = hits.iter().find(|(n, _, _)| *n == OURS).map(|(_, _, ns)| *ns);
    if let (Some(ours), Some(quick)) = (ours_ns, quick_ns) {
        let r = ours / quick;
        let _ = writeln!(
            s,
            "\n- `get_or_load` on a hit within {HIT_TARGET}x of quick_cache's time: {r:.2}x, {}.",
            verdict(r <= HIT_TARGET)
        );
    }

    s.push_str(
        "\n### Expiring workload\n\n\
         A load function that sleeps 5 ms (real time) and counts its calls; a TTL of 200 ms \
         (`cache-swr`: stale-while-revalidate for 60 s after it; moka: `time_to_live` 200 ms); 100 keys, \
         all loaded first, read with a Zipf(1.0) skew by 16 tasks on a multi-thread Tokio runtime (one \
         worker per core), each pausing 0.5 ms (the timer's next tick) between reads; 3 s of reads \
         (1 s in a quick pass). Latency is each read's, from call to answer. `cache-swr` answers a \
         stale value at once and refreshes the key once in the background; moka makes the readers of \
         an expired key wait for its one load. quick_cache has no expiry, so no place here. The \
         machine's other load is not controlled: a read's latency includes any time its thread was \
         not running.\n\n",
    );
    let rows: Vec<Vec<String>> = workloads
        .iter()
        .map(|w| {
            let mut row = vec![format!("`{}`", w.name), thousands(w.reads as f64)];
            row.extend(w.percentiles_us.iter().map(|&us| micros(us)));
            row.push(thousands(w.calls as f64));
            row.push(w.stale.map_or_else(|| "–".to_owned(), |n| thousands(n as f64)));
            row
        })
        .collect();
    s.push_str(&table(&["cache", "reads", "p50", "p90", "p99", "p99.9", "max", "load calls", "stale answers"], &rows));
    let find = |name: &str| workloads.iter().find(|w| w.name == name);
    if let (Some(ours), Some(moka)) = (find(OURS), find("moka")) {
        let _ = write!(
            s,
            "\nTargets in this run:\n\n\
             - `cache-swr` p99 below the load's {LOAD_MS} ms: {}, {};\n\
             - moka's p99 at least the load's {LOAD_MS} ms (its readers wait on expiry): {}, {}.\n",
            micros(ours.percentiles_us[2]),
            verdict(ours.p99_ms() < LOAD_MS),
            micros(moka.percentiles_us[2]),
            verdict(moka.p99_ms() >= LOAD_MS),
        );
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_lines_parse_and_others_are_skipped() {
        let stdout = "Benchmarking swr_hit/moka: Analyzing\n\
             swr-workload name=cache-swr reads=9693 p50_us=0.1 p90_us=0.6 p99_us=3.4 p999_us=11.0 max_us=86.4 calls=381 stale=584\n\
             swr_hit/moka            time:   [877.82 ns 1.1569 µs 1.5126 µs]\n\
             swr-workload name=moka reads=7943 p50_us=0.6 p90_us=2.7 p99_us=6733.8 p999_us=9723.9 max_us=10936.3 calls=368\n";
        let parsed = parse_workloads(stdout).unwrap();
        assert_eq!(
            parsed,
            vec![
                Workload {
                    name: "cache-swr".into(),
                    reads: 9693,
                    percentiles_us: [0.1, 0.6, 3.4, 11.0, 86.4],
                    calls: 381,
                    stale: Some(584),
                },
                Workload {
                    name: "moka".into(),
                    reads: 7943,
                    percentiles_us: [0.6, 2.7, 6733.8, 9723.9, 10936.3],
                    calls: 368,
                    stale: None,
                },
            ]
        );
        assert!((parsed[1].p99_ms() - 6.7338).abs() < 1e-9);
    }

    #[test]
    fn a_broken_workload_line_is_an_error() {
        assert!(parse_workloads("swr-workload name=moka reads=1 p50_us=1\n").is_err());
        assert!(
            parse_workloads("swr-workload name=moka reads=x p50_us=1 p90_us=1 p99_us=1 p999_us=1 max_us=1 calls=1\n")
                .is_err()
        );
        assert!(parse_workloads("swr-workload name\n").is_err());
        assert!(parse_workloads("no workload here\n").unwrap().is_empty());
    }

    #[test]
    fn micros_read_well() {
        assert_eq!(micros(0.14), "0.1 µs");
        assert_eq!(micros(35.4), "35 µs");
        assert_eq!(micros(6_733.8), "6.73 ms");
    }

    #[test]
    fn verdicts_follow_the_targets() {
        let hits = [("cache-swr", "a", 110.0), ("moka", "b", 900.0), ("quick_cache", "c", 100.0)];
        let line = |name: &str, p99_us: f64| Workload {
            name: name.into(),
            reads: 10,
            percentiles_us: [1.0, 2.0, p99_us, 4.0, 5.0],
            calls: 3,
            stale: None,
        };
        let met = render(Mode::Quick, &hits, &[line("cache-swr", 3.4), line("moka", 6_000.0)]);
        assert!(met.contains("1.10x, **met**"), "{met}");
        assert!(met.contains("3.4 µs, **met**"), "{met}");
        assert!(met.contains("6.00 ms, **met**"), "{met}");
        assert!(met.contains("| `quick_cache` | c | 100.0 | 1.00 |"), "{met}");
        let slow = [("cache-swr", "a", 130.0), ("quick_cache", "c", 100.0)];
        let missed = render(Mode::Full, &slow, &[line("cache-swr", 5_000.0), line("moka", 4_000.0)]);
        assert_eq!(missed.matches("**missed**").count(), 3, "{missed}");
    }
}
