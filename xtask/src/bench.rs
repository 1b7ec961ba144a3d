//! `cargo xtask bench`: run every benchmark and rewrite `docs/benchmarks.md`.
//!
//! Each section measures one thing against its peers in the same run and
//! renders itself as Markdown; this module runs them in order and writes
//! the report with the machine and the date on top. `--quick` shortens
//! every measurement so that the whole pass is cheap enough to run often;
//! its figures are noisier and the report says so.

mod cache_core;
mod cpu;
mod figures;
mod fleet;
mod http_path;
mod library;
mod load;
mod memory;
mod nginx;
mod probe;
pub(crate) mod process;
mod realistic;
mod report;
mod servers;
mod stampede;
mod tier2;
mod wrk;

use anyhow::{Result, bail};

use crate::cmd::root;

/// How long to measure: a full run for the report, or a quick pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Full,
    Quick,
}

/// A section: its name for `--only`, and the function that measures it and
/// renders it as Markdown.
type Section = (&'static str, fn(Mode) -> Result<String>);

/// Every section, in the report's order.
const SECTIONS: [Section; 9] = [
    ("cache-core", cache_core::run_section),
    ("library", library::run_section),
    ("http-path", http_path::run_section),
    ("cpu", cpu::run_section),
    ("realistic", realistic::run_section),
    ("memory", memory::run_section),
    ("stampede", stampede::run_section),
    ("tier2", tier2::run_section),
    ("fleet", fleet::run_section),
];

pub(crate) fn run_bench(args: &[String]) -> Result<()> {
    let mut mode = Mode::Full;
    let mut only: Option<&str> = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => mode = Mode::Quick,
            "--only" => only = Some(args.next().map_or("", String::as_str)),
            other => bail!("unknown argument to `bench`: {other:?} (expected --quick or --only SECTION)"),
        }
    }
    if let Some(name) = only {
        // One section, for working on it: printed, and the report is left
        // alone (it must hold one run's figures, all of them).
        let Some((_, section)) = SECTIONS.iter().find(|(n, _)| *n == name) else {
            let names: Vec<&str> = SECTIONS.iter().map(|(n, _)| *n).collect();
            bail!("no section {name:?}; the sections are {}", names.join(", "));
        };
        report::clear_criterion()?;
        print!("{}", section(mode)?);
        return Ok(());
    }
    let machine = report::Machine::probe()?;
    report::clear_criterion()?;
    let mut doc = report::header(&machine, mode);
    for (name, section) in SECTIONS {
        let started = std::time::Instant::now();
        doc.push_str(&section(mode)?);
        eprintln!("section {name}: {:.0} s", started.elapsed().as_secs_f64());
    }
    let path = root().join("docs/benchmarks.md");
    std::fs::write(&path, doc)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
