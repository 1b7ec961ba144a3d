//! `cargo xtask fuzz`: runs the cargo-fuzz targets in `fuzz/` for a while
//! each, from the committed seed corpus, and fails if one finds a crash.
//!
//! The targets check the properties in `system_tests::fuzz_checks`, which
//! the property tests in `tests/tests/parsers.rs` also check on every
//! `cargo xtask ci`; this is the long, coverage-guided pass, too slow for
//! CI.
//!
//! It works on a stable toolchain: the targets are built without a
//! sanitizer (`--sanitizer none`), which is the only cargo-fuzz mode that
//! passes rustc no `-Z` flag (cargo-fuzz itself installs and runs on
//! stable). The code fuzzed forbids `unsafe`, so a sanitizer would mostly
//! watch the dependencies; the address sanitizer runs on stable too, given
//! `RUSTC_BOOTSTRAP=1`: `RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz
//! -s address TARGET` (a separate, full rebuild of the fuzz workspace).
//!
//! `--keep-going` uses libFuzzer's fork mode, which restarts its child
//! process after each failing input; that costs throughput (each child
//! loads the whole corpus), so the plain mode is the default.
//!
//! libFuzzer writes every input that finds new coverage into the first
//! corpus directory it is given. That is `fuzz/grown/<target>`, ignored by
//! git and kept between runs; the committed seeds in `fuzz/corpus/<target>`
//! are only read, so they stay the small, readable set they are.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::cmd::{cargo, ensure_cargo_subcommand, root, run};
use crate::tools::{self, Tool};

/// The targets, as named in `fuzz/Cargo.toml` and under `fuzz/corpus/`.
const TARGETS: [&str; 4] = ["upstream_body", "envelope", "wallet", "glob"];

/// The committed seeds, read only, and the inputs libFuzzer adds, kept
/// between runs and never committed; one folder per target in each.
const SEEDS: &str = "fuzz/corpus";
const GROWN: &str = "fuzz/grown";

/// Where libFuzzer writes failing inputs (cargo fuzz's default), one folder
/// per target.
const ARTIFACTS: &str = "fuzz/artifacts";

/// How long each target runs unless `--seconds` says otherwise.
const DEFAULT_SECONDS: u64 = 60;

/// One input running longer than this is reported as a hang, a failure
/// like a crash.
const INPUT_TIMEOUT_SECONDS: u64 = 10;

/// A C++ compiler: `libfuzzer-sys` builds libFuzzer from source.
const CXX: Tool = Tool { program: "c++", package: "g++" };

/// The cargo-fuzz flags every build and run uses; `run` must pass the same
/// ones as `build`, or it builds again.
const FUZZ_FLAGS: [&str; 4] = ["--fuzz-dir", "fuzz", "--sanitizer", "none"];

pub(crate) fn run_fuzz(args: &[String]) -> Result<()> {
    let Options { seconds, targets, keep_going } = parse_args(args)?;
    tools::ensure(&[CXX])?;
    ensure_cargo_subcommand("fuzz", "cargo-fuzz")?;
    eprintln!(
        "fuzzing {} for {seconds} s each (after one build of every target)",
        targets.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", ")
    );
    // One build of every target first, so that each target's time is spent
    // fuzzing rather than compiling.
    run(cargo().arg("fuzz").arg("build").args(FUZZ_FLAGS))?;
    let mut reports = Vec::new();
    for target in targets {
        reports.push(fuzz_one(target, seconds, keep_going)?);
    }
    eprintln!("\n{}", summary(&reports));
    let failed: Vec<&Report> = reports.iter().filter(|r| !r.passed).collect();
    if !failed.is_empty() {
        bail!(
            "{} found failing inputs (listed above); replay one with `cargo fuzz run {} TARGET INPUT`",
            failed.iter().map(|r| r.target).collect::<Vec<_>>().join(", "),
            FUZZ_FLAGS.join(" ")
        );
    }
    Ok(())
}

/// What the command line asked for.
#[derive(Debug, PartialEq, Eq)]
struct Options {
    seconds: u64,
    targets: Vec<&'static str>,
    /// Record each failing input and fuzz on, instead of stopping at the
    /// first: so that a known bug does not cut a target's run short.
    keep_going: bool,
}

fn parse_args(args: &[String]) -> Result<Options> {
    let mut seconds = DEFAULT_SECONDS;
    let mut targets = Vec::new();
    let mut keep_going = false;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--seconds" => {
                let text = value()?;
                seconds = text
                    .parse()
                    .ok()
                    .filter(|&s| s > 0)
                    .with_context(|| format!("--seconds takes a whole number of seconds above 0, got {text:?}"))?;
            }
            "--target" => {
                let name = value()?;
                let Some(&target) = TARGETS.iter().find(|&&t| t == name) else {
                    bail!("unknown fuzz target {name:?}; the targets are {}", TARGETS.join(", "));
                };
                targets.push(target);
            }
            "--keep-going" => keep_going = true,
            other => bail!("`fuzz` takes --seconds N, --target NAME and --keep-going, got {other:?}"),
        }
    }
    if targets.is_empty() {
        targets = TARGETS.to_vec();
    }
    Ok(Options { seconds, targets, keep_going })
}

/// What one target's run came to.
#[derive(Debug, Default)]
struct Report {
    target: &'static str,
    seconds: f64,
    passed: bool,
    /// libFuzzer's final figures, where it printed them.
    executions: Option<u64>,
    executions_per_second: Option<u64>,
    new_inputs: Option<u64>,
    /// The last status line's `cov:` (coverage points), `ft:` (features)
    /// and `corp:` (inputs/size) fields.
    coverage: Option<String>,
    features: Option<String>,
    corpus: Option<String>,
    /// Failing inputs counted in fork mode (`--keep-going`): crashes,
    /// timeouts and out-of-memory runs.
    failures: u64,
    /// Where libFuzzer wrote failing inputs.
    artifacts: Vec<String>,
}

fn fuzz_one(target: &'static str, seconds: u64, keep_going: bool) -> Result<Report> {
    let seeds = Path::new(SEEDS).join(target);
    let grown = Path::new(GROWN).join(target);
    let artifacts = Path::new(ARTIFACTS).join(target);
    std::fs::create_dir_all(root().join(&grown)).with_context(|| format!("creating {}", grown.display()))?;
    let artifacts_before = files_in(&root().join(&artifacts));
    let mut cmd = cargo();
    cmd.arg("fuzz")
        .arg("run")
        .args(FUZZ_FLAGS)
        .arg(target)
        .arg(&grown)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-timeout={INPUT_TIMEOUT_SECONDS}"))
        .arg("-print_final_stats=1")
        .stderr(Stdio::piped());
    if keep_going {
        // libFuzzer's fork mode runs the fuzzing in a child process that it
        // restarts after a failure, merging what each child found.
        cmd.args(["-fork=1", "-ignore_crashes=1", "-ignore_timeouts=1", "-ignore_ooms=1"]);
    }
    eprintln!(
        "\n==> {target}: cargo fuzz run {} {target} {} {} -- -max_total_time={seconds} ...",
        FUZZ_FLAGS.join(" "),
        grown.display(),
        seeds.display()
    );
    let started = Instant::now();
    let mut child = cmd.spawn().context("could not start `cargo fuzz run`")?;
    let mut report = Report { target, ..Report::default() };
    let stderr = child.stderr.take().context("no stderr from cargo fuzz")?;
    for line in BufReader::new(stderr).lines() {
        let line = line.context("reading libFuzzer's output")?;
        read_line(&line, &mut report);
        // Each new input, each newly covered function and each word of
        // libFuzzer's suggested dictionary is a line; the rest (start,
        // pulses, the end, any failure in full) is what a reader needs.
        let noise = line.contains("\tNEW ")
            || line.contains("\tREDUCE ")
            || line.starts_with("\tNEW_FUNC")
            || line.contains("\" # Uses: ");
        if !noise {
            eprintln!("{line}");
        }
    }
    let status = child.wait().context("waiting for cargo fuzz")?;
    report.seconds = started.elapsed().as_secs_f64();
    for file in files_in(&root().join(&artifacts)) {
        if !artifacts_before.contains(&file) {
            let path = artifacts.join(file).display().to_string();
            if !report.artifacts.contains(&path) {
                report.artifacts.push(path);
            }
        }
    }
    report.passed = status.success() && report.failures == 0 && report.artifacts.is_empty();
    Ok(report)
}

fn files_in(dir: &Path) -> Vec<std::ffi::OsString> {
    std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| Some(e.ok()?.file_name())).collect())
        .unwrap_or_default()
}

/// Takes what the report needs from one line of libFuzzer's output.
fn read_line(line: &str, report: &mut Report) {
    let stat = |name: &str| {
        line.strip_prefix("stat::")
            .and_then(|rest| rest.strip_prefix(name))
            .and_then(|rest| rest.trim_start_matches(':').trim().parse::<u64>().ok())
    };
    if let Some(n) = stat("number_of_executed_units") {
        report.executions = Some(n);
    } else if let Some(n) = stat("average_exec_per_sec") {
        report.executions_per_second = Some(n);
    } else if let Some(n) = stat("new_units_added") {
        report.new_inputs = Some(n);
    } else if let Some(path) = line.split("Test unit written to ").nth(1) {
        report.artifacts.push(path.trim().to_owned());
    } else if line.starts_with('#') && line.contains(" cov: ") {
        let field = |name: &str| {
            let mut words = line.split_whitespace();
            words.find(|w| *w == name)?;
            words.next().map(str::to_owned)
        };
        report.coverage = field("cov:").or(report.coverage.take());
        report.features = field("ft:").or(report.features.take());
        report.corpus = field("corp:").or(report.corpus.take());
        // Fork mode prints no final stats; its status lines
        // (`#RUNS: cov: ... exec/s: N oom/timeout/crash: A/B/C ...`)
        // carry the totals so far.
        if let Some(runs) = line.strip_prefix('#').and_then(|rest| rest.split_once(": cov:")) {
            report.executions = runs.0.parse().ok().or(report.executions);
            report.executions_per_second = field("exec/s:").and_then(|n| n.parse().ok());
            if let Some(counts) = field("oom/timeout/crash:") {
                report.failures = counts.split('/').filter_map(|n| n.parse::<u64>().ok()).sum();
            }
        }
    }
}

fn summary(reports: &[Report]) -> String {
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    let number = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |n| n.to_string());
    // Writing to a String cannot fail.
    let mut table = String::new();
    let _ = writeln!(
        table,
        "{:<14} {:>7} {:>12} {:>8} {:>6} {:>7} {:>11} {:>5}  result",
        "target", "ran", "executions", "exec/s", "cov", "ft", "corpus", "new"
    );
    for r in reports {
        let _ = writeln!(
            table,
            "{:<14} {:>6.0}s {:>12} {:>8} {:>6} {:>7} {:>11} {:>5}  {}",
            r.target,
            r.seconds,
            number(r.executions),
            number(r.executions_per_second),
            show(&r.coverage),
            show(&r.features),
            show(&r.corpus),
            number(r.new_inputs),
            match (r.passed, r.artifacts.as_slice()) {
                (true, _) => "ok".to_owned(),
                (false, []) => "FAILED".to_owned(),
                (false, paths) => format!("FAILED: {}", paths.join(" ")),
            }
        );
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_read_and_checked() {
        let args = |a: &[&str]| parse_args(&a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        assert_eq!(
            args(&[]).unwrap(),
            Options { seconds: DEFAULT_SECONDS, targets: TARGETS.to_vec(), keep_going: false }
        );
        assert_eq!(
            args(&["--seconds", "5", "--target", "glob", "--target", "wallet", "--keep-going"]).unwrap(),
            Options { seconds: 5, targets: vec!["glob", "wallet"], keep_going: true }
        );
        for bad in [&["--seconds"][..], &["--seconds", "0"], &["--seconds", "x"], &["--target", "nope"], &["-x"]] {
            assert!(args(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn libfuzzer_output_is_read() {
        let mut report = Report::default();
        for line in [
            "#2\tINITED cov: 10 ft: 11 corp: 6/1200b exec/s: 0 rss: 40Mb",
            "#4096\tpulse  cov: 20 ft: 30 corp: 9/2Kb lim: 4096 exec/s: 2048 rss: 41Mb",
            "#50000\tDONE   cov: 25 ft: 40 corp: 12/3Kb lim: 4096 exec/s: 833 rss: 42Mb",
            "stat::number_of_executed_units: 50000",
            "stat::average_exec_per_sec:     833",
            "stat::new_units_added:          6",
            "artifact_prefix='fuzz/artifacts/glob/'; Test unit written to fuzz/artifacts/glob/crash-abc",
        ] {
            read_line(line, &mut report);
        }
        assert_eq!(
            (report.executions, report.executions_per_second, report.new_inputs),
            (Some(50000), Some(833), Some(6))
        );
        assert_eq!(
            (report.coverage.as_deref(), report.features.as_deref(), report.corpus.as_deref()),
            (Some("25"), Some("40"), Some("12/3Kb"))
        );
        assert_eq!(report.artifacts, ["fuzz/artifacts/glob/crash-abc"]);
    }

    #[test]
    fn fork_mode_status_lines_are_read() {
        let mut report = Report::default();
        read_line(
            "#1200000: cov: 2716 ft: 8349 corp: 2476 exec/s: 30000 oom/timeout/crash: 0/1/2 time: 40s job: 9 dft_time: 0",
            &mut report,
        );
        assert_eq!(
            (report.executions, report.executions_per_second, report.failures),
            (Some(1_200_000), Some(30000), 3)
        );
        assert_eq!((report.coverage.as_deref(), report.corpus.as_deref()), (Some("2716"), Some("2476")));
    }
}
