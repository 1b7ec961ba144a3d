//! Project automation, run as `cargo xtask <command>`.
//!
//! One place for the commands a developer or CI runs, so that "green here"
//! means "green in CI": `cargo xtask ci` is exactly what `.ci/run` calls.

mod api_check;
mod bench;
mod ci;
mod cmd;
mod deploy;
mod fuzz;
mod gen_ledger;
mod libraries;
mod msrv;
mod semver;
mod tools;

use std::process::ExitCode;

const HELP: &str = "\
cargo xtask <command>

commands:
  ci       everything CI checks: rustfmt, clippy (warnings denied), docs
           (warnings denied), every test including doc tests; installs
           the system programs it needs first where missing (see
           `tools`); includes deploy-check, api-check, msrv and
           `cargo publish --dry-run` of the libraries
  api-check
           docs/openapi.yaml against the real binary (bundled ledger) by
           schemathesis with every check, on the main and admin listeners;
           installs schemathesis with pip where missing
           [--max-examples 100] [--release] [-- SCHEMATHESIS ARGS]
  deploy-check
           deploy/ checked by hadolint, docker-compose config, promtool
           (config, rules, rule unit tests) and kubernetes-validate;
           installs them first where missing (apt-get, pip)
  publish-check
           `cargo publish --dry-run` of the libraries, all at once (each
           built from its package, the others as a local registry); part
           of `ci`
  msrv     the libraries' lib targets checked (all features) by the
           Rust their `rust-version` declares; installs that toolchain
           with rustup where missing
  semver   cargo-semver-checks on the libraries against the newest `v*`
           tag (nothing to compare without one); installs
           cargo-semver-checks where missing (a long build); for releases,
           not part of `ci`
  bench    every benchmark, against its peers; rewrites docs/benchmarks.md
           (--quick: a short, noisier pass of all of it; --only SECTION:
           one section, printed, the report left alone)
  fuzz     the cargo-fuzz targets (upstream body, envelope, wallet, glob),
           each from its seed corpus; fails on a crash, prints executions
           and coverage per target; installs cargo-fuzz where missing
           [--seconds 60] [--target NAME]... [--keep-going: record each
           failing input and fuzz on instead of stopping at the first]
  gen-ledger
           a deterministic ledger for benchmarks
           [--wallets 100000] [--out target/ledger-100k] [--seed 1]
  tools    installs the system programs `ci` needs (redis-server,
           promtool, prometheus, docker-compose, chromium) where missing,
           with apt-get as root; or only the ones named
           [PROGRAM]... (also wrk, nginx, taskset, for `bench`)
  help     this text
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        None | Some("help" | "-h" | "--help") => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Some("ci") => ci::run_ci(&args[1..]),
        Some("bench") => bench::run_bench(&args[1..]),
        Some("fuzz") => fuzz::run_fuzz(&args[1..]),
        Some("gen-ledger") => gen_ledger::run(&args[1..]),
        Some("api-check") => api_check::run_api_check(&args[1..]),
        Some("deploy-check") => deploy::run_deploy_check(&args[1..]),
        Some("tools") => tools::run_tools(&args[1..]),
        Some("publish-check") => libraries::run_publish_check(&args[1..]),
        Some("msrv") => msrv::run_msrv(&args[1..]),
        Some("semver") => semver::run_semver(&args[1..]),
        Some(other) => {
            eprint!("unknown command {other:?}\n\n{HELP}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}
