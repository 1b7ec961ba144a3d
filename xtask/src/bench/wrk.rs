//! Running wrk and reading what it says.
//!
//! wrk is the one load generator for every server of the cached-path
//! comparison, with the same settings for each:
//! `wrk -t{threads} -c{connections} -d{seconds}s --latency URL`, optionally
//! pinned to a core with `taskset`. Only the figures the report quotes are
//! read: requests per second and the 50th and 99th latency percentiles. A
//! run with error answers (4xx, 5xx) is an error, not a figure; a 304 is an
//! answer like a 200. Request headers (`If-None-Match`, `Accept-Encoding`)
//! go in with `-H`.

use std::fmt::Write as _;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// One wrk run's figures.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    pub(crate) requests_per_sec: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    /// Connect, read, write errors and timeouts, summed.
    pub(crate) socket_errors: u64,
}

/// How to run wrk.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) connections: u32,
    pub(crate) seconds: u32,
    /// The core to pin wrk to; pinned, it gets one thread.
    pub(crate) cpu: Option<u32>,
}

impl Settings {
    /// One thread per core wrk may use, never more than connections.
    fn threads(self) -> u32 {
        let cores = if self.cpu.is_some() { 1 } else { 2 };
        cores.min(self.connections)
    }

    /// The command line with request `headers` (`Name: value`), as typed
    /// into a POSIX shell.
    pub(crate) fn shown(self, url: &str, headers: &[String]) -> String {
        let pin = self.cpu.map(|cpu| format!("taskset -c {cpu} ")).unwrap_or_default();
        let headers = headers.iter().fold(String::new(), |mut all, header| {
            let _ = write!(all, "-H {} ", quoted(header));
            all
        });
        format!("{pin}wrk -t{} -c{} -d{}s --latency {headers}{url}", self.threads(), self.connections, self.seconds)
    }
}

/// `text` in single quotes for a POSIX shell.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// Runs wrk against `url`, sending `headers` (`Name: value`) with every
/// request.
pub(crate) fn run(settings: Settings, url: &str, headers: &[String]) -> Result<Run> {
    let shown = settings.shown(url, headers);
    eprintln!("==> {shown}");
    let mut cmd = match settings.cpu {
        Some(cpu) => {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", &cpu.to_string(), "wrk"]);
            cmd
        }
        None => Command::new("wrk"),
    };
    cmd.arg(format!("-t{}", settings.threads()))
        .arg(format!("-c{}", settings.connections))
        .arg(format!("-d{}s", settings.seconds))
        .arg("--latency");
    for header in headers {
        cmd.args(["-H", header]);
    }
    cmd.arg(url);
    let out = cmd.output().with_context(|| format!("could not run `{shown}`"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("`{shown}` failed ({}):\n{text}{}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    parse(&text).with_context(|| format!("could not read the output of `{shown}`:\n{text}"))
}

fn parse(text: &str) -> Result<Run> {
    if let Some(line) = text.lines().find(|l| l.trim_start().starts_with("Non-2xx or 3xx responses:")) {
        bail!("the server gave errors: {}", line.trim());
    }
    let requests_per_sec = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .context("no Requests/sec line")?;
    let percentile = |label: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label).map(str::trim))
            .and_then(duration_ms)
            .with_context(|| format!("no {label} latency line"))
    };
    let socket_errors = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Socket errors:"))
        .map_or(0, |rest| rest.split(',').filter_map(|part| part.split_whitespace().nth(1)?.parse::<u64>().ok()).sum());
    Ok(Run { requests_per_sec, p50_ms: percentile("50%")?, p99_ms: percentile("99%")?, socket_errors })
}

/// wrk's `97.00us`, `1.23ms`, `2.00s` or `1.50m`, in milliseconds.
fn duration_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    let scale = match unit {
        "us" => 1e-3,
        "ms" => 1.0,
        "s" => 1e3,
        "m" => 60e3,
        _ => return None,
    };
    Some(value * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "\
Running 2s test @ http://127.0.0.1:8080/v4/positions/0x52908400098527886e0f7030069857d2e4169ee7
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   150.23us  100.12us   5.00ms   90.00%
    Req/Sec   100.00k    10.00k  120.00k    70.00%
  Latency Distribution
     50%  130.00us
     75%  160.00us
     90%  200.00us
     99%    1.25ms
  400000 requests in 2.00s, 500.00MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
Requests/sec: 199999.99
Transfer/sec:    250.00MB
";

    #[test]
    fn figures_are_read_with_their_units() {
        let run = parse(OUTPUT).expect("parses");
        assert!((run.requests_per_sec - 199_999.99).abs() < 1e-6);
        assert!((run.p50_ms - 0.13).abs() < 1e-9);
        assert!((run.p99_ms - 1.25).abs() < 1e-9);
        assert_eq!(run.socket_errors, 5);
        assert_eq!(duration_ms("2.00s"), Some(2_000.0));
        assert_eq!(duration_ms("fast"), None);
    }

    #[test]
    fn error_answers_fail_the_run() {
        let with_errors = OUTPUT.replace("Requests/sec", "  Non-2xx or 3xx responses: 7\nRequests/sec");
        let err = parse(&with_errors).expect_err("errors");
        assert!(err.to_string().contains("Non-2xx or 3xx responses: 7"), "{err}");
        assert!(parse("nothing").is_err());
    }

    #[test]
    fn commands_use_one_thread_per_core_at_most_one_per_connection() {
        let url = "http://127.0.0.1:1/";
        let shared = Settings { connections: 32, seconds: 10, cpu: None };
        assert_eq!(shared.shown(url, &[]), "wrk -t2 -c32 -d10s --latency http://127.0.0.1:1/");
        let single = Settings { connections: 1, ..shared };
        assert_eq!(single.shown(url, &[]), "wrk -t1 -c1 -d10s --latency http://127.0.0.1:1/");
        let pinned = Settings { cpu: Some(1), ..shared };
        assert_eq!(pinned.shown(url, &[]), "taskset -c 1 wrk -t1 -c32 -d10s --latency http://127.0.0.1:1/");
        let headers = ["If-None-Match: W/\"ab'c\"".to_owned(), "Accept-Encoding: gzip".to_owned()];
        assert_eq!(
            shared.shown(url, &headers),
            "wrk -t2 -c32 -d10s --latency -H 'If-None-Match: W/\"ab'\\''c\"' -H 'Accept-Encoding: gzip' http://127.0.0.1:1/"
        );
    }
}
