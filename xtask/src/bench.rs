//! `cargo xtask bench`: run every benchmark and rewrite `docs/benchmarks.md`.
//!
//! Each section measures one thing against its peers in the same run and
//! renders itself as Markdown; this module runs them in order and writes
//! the report with the machine and the date on top. `--quick` shortens
//! every measurement so that the whole pass is cheap enough to run often;
//! its figures are noisier and the report says so.

mod cache_core;
mod figures;
mod http_path;
mod load;
mod memory;
mod nginx;
mod probe;
mod process;
mod realistic;
mod report;
mod servers;
mod stampede;
mod wrk;

use anyhow::{Result, bail};

use crate::cmd::root;

/// How long to measure: a full run for the report, or a quick pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Full,
    Quick,
}

pub(crate) fn run_bench(args: &[String]) -> Result<()> {
    let mut mode = Mode::Full;
    for arg in args {
        match arg.as_str() {
            "--quick" => mode = Mode::Quick,
            other => bail!("unknown argument to `bench`: {other:?} (expected --quick)"),
        }
    }
    let machine = report::Machine::probe()?;
    report::clear_criterion()?;
    let sections = [
        cache_core::run_section(mode)?,
        http_path::run_section(mode)?,
        realistic::run_section(mode)?,
        memory::run_section(mode)?,
        stampede::run_section(mode)?,
    ];

    let mut doc = report::header(&machine, mode);
    for section in sections {
        doc.push_str(&section);
    }
    let path = root().join("docs/benchmarks.md");
    std::fs::write(&path, doc)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
