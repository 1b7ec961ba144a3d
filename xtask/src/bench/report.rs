//! Shared pieces of the benchmark report: the machine, criterion's medians,
//! and Markdown tables.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use super::Mode;
use crate::cmd::root;

/// What the figures were measured on.
#[derive(Debug)]
pub(crate) struct Machine {
    cpu: String,
    cores: usize,
    memory_gib: u64,
    kernel: String,
    rustc: String,
    date: String,
}

impl Machine {
    pub(crate) fn probe() -> Result<Self> {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim()))
            .unwrap_or("unknown CPU")
            .to_owned();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib: u64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        Ok(Self {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            memory_gib: memory_kib.div_ceil(1024 * 1024),
            kernel: output("uname", &["-r"]).unwrap_or_else(|_| "unknown".into()),
            rustc: output("rustc", &["--version"])?,
            date: output("date", &["-u", "+%Y-%m-%d %H:%M UTC"])?,
        })
    }
}

/// The report's opening: what this is, where, when, and how to redo it.
pub(crate) fn header(machine: &Machine, mode: Mode) -> String {
    let quick = match mode {
        Mode::Full => "",
        Mode::Quick => {
            "\n> **Quick pass** (`cargo xtask bench --quick`): short measurements, noisier figures. \
             Run `cargo xtask bench` for the report's real numbers.\n"
        }
    };
    format!(
        "# Benchmarks\n\n\
         Written by `cargo xtask bench`; do not edit by hand. Every figure below was measured in the \
         run that wrote this file, peers included, and ratios compare figures of that same run. What was \
         profiled and changed because of these figures, and what remains and why: \
         [performance.md](performance.md).\n\
         {quick}\n\
         | | |\n| --- | --- |\n\
         | date | {} |\n| CPU | {} |\n| cores | {} |\n| memory | {} GiB |\n| kernel | {} |\n| compiler | {} |\n\n",
        machine.date, machine.cpu, machine.cores, machine.memory_gib, machine.kernel, machine.rustc
    )
}

/// The median time per iteration, in nanoseconds, of the criterion
/// benchmark `id` (`group/function[/parameter]`) from the last run.
pub(crate) fn criterion_median_ns(id: &str) -> Result<f64> {
    let path = root().join("target/criterion").join(id).join("new/estimates.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("no criterion result at {}", path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)?;
    json["median"]["point_estimate"].as_f64().with_context(|| format!("no median in {}", path.display()))
}

/// Removes criterion's previous results so that a failed bench cannot leave
/// an old figure to be reported as new.
pub(crate) fn clear_criterion() -> Result<()> {
    let dir = root().join("target/criterion");
    if Path::new(&dir).exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}

/// A Markdown table from a header row and body rows.
pub(crate) fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "| {} |", head.join(" | "));
    let _ = writeln!(out, "|{}", " --- |".repeat(head.len()));
    for row in rows {
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    out
}

/// "met" or "missed", for a target line.
pub(crate) fn verdict(met: bool) -> &'static str {
    if met { "**met**" } else { "**missed**" }
}

fn output(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program).args(args).output().with_context(|| format!("could not run {program}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
