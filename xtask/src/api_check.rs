//! `cargo xtask api-check`: `docs/openapi.yaml` against the real server.
//!
//! schemathesis (installed with pip where missing) generates requests from
//! the document, valid and invalid, sends them to the `positions-api`
//! binary serving the bundled sample ledger, and runs every check it has
//! on the answers: each status, header, content type and body is one the
//! document declares, valid input is accepted and invalid input refused,
//! no answer is a 5xx, an admin route refuses a missing token, a method
//! the document does not list gets 405 with an `Allow` header. Any finding
//! fails the command. Part of `cargo xtask ci`.
//!
//! Each run draws new cases; it prints its seed, and `cargo xtask api-check
//! -- --seed N` repeats one (a finding it shows is a real difference, not
//! noise: the server answers these requests deterministically).
//!
//! One process serves both listeners, so both route sets are checked: the
//! admin listener (`ADMIN_BIND`), which serves every route as the single
//! listener does, and the main one, which answers the admin routes 404 as
//! if they did not exist.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::bench::process::{Launch, Process};
use crate::cmd::{cargo, root, run};
use crate::tools;

/// Test cases per operation and phase. With the debug binary both runs
/// together take well under a minute here; schemathesis's own default (100)
/// finds what a larger number found when it was tried.
const DEFAULT_MAX_EXAMPLES: u32 = 100;

/// The admin token the checked server is started with; the server listens
/// on loopback only, for the length of the run.
const ADMIN_TOKEN: &str = "api-check-admin-token";

pub(crate) fn run_api_check(args: &[String]) -> Result<()> {
    let mut max_examples = DEFAULT_MAX_EXAMPLES;
    let mut release = false;
    let mut extra: Vec<String> = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--release" => release = true,
            "--max-examples" => {
                let value = args.next().map_or("", String::as_str);
                max_examples = value.parse().with_context(|| format!("--max-examples {value:?}: expected a number"))?;
            }
            // Everything after `--` goes to schemathesis (`--seed N` to
            // repeat a run, `--phases fuzzing`, ...).
            "--" => extra.extend(args.by_ref().cloned()),
            other => {
                bail!("unknown argument to `api-check`: {other:?} (expected --release, --max-examples N or -- ARGS)")
            }
        }
    }
    let schemathesis = tools::ensure_pip(tools::SCHEMATHESIS)?;
    let profile = if release { "release" } else { "debug" };
    let mut build = cargo();
    build.args(["build", "--locked", "-p", "positions-api", "--bin", "positions-api"]);
    if release {
        build.arg("--release");
    }
    run(&mut build)?;

    let dir = scratch()?;
    let launch = Launch::new(root().join("target").join(profile).join("positions-api"))
        .env("LOG_FORMAT", "json")
        .env("POSITIONS_BIND", "127.0.0.1:0")
        .env("ADMIN_BIND", "127.0.0.1:0")
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .env("SHUTDOWN_GRACE_MS", "1000");
    let mut server = Process::start("positions-api", &launch, &dir.join("positions-api.log"))?;
    let (public, admin) = server.wait_for_line("its addresses", |line| {
        let event: serde_json::Value = serde_json::from_str(line).ok()?;
        if event["message"] != "listening" {
            return None;
        }
        Some((event["addr"].as_str()?.to_owned(), event["admin_addr"].as_str()?.to_owned()))
    })?;

    let started = Instant::now();
    let spec = root().join("docs/openapi.yaml");
    let checks = |addr: &str| {
        let mut command = Command::new(&schemathesis);
        // Its example database and reports go to the scratch directory,
        // not the working tree.
        command
            .current_dir(&dir)
            .arg("run")
            .arg(&spec)
            .args(["--url", &format!("http://{addr}")])
            .args(["--checks", "all"])
            .args(["--max-examples", &max_examples.to_string()])
            .args(["--header", &format!("Authorization: Bearer {ADMIN_TOKEN}")])
            .arg("--no-color");
        command
    };
    run(checks(&admin).args(&extra))?;
    server.check_running()?;
    // On the main listener the admin routes do not exist, by design: a
    // missing token gets 404 rather than 401, and so does any method on
    // `/metrics`. The two checks that presume an operation's route exists
    // are left out there; the admin listener's run above applies them, to
    // the same handlers.
    run(checks(&public).args(["--exclude-checks", "missing_required_header,unsupported_method"]).args(&extra))?;
    server.check_running()?;
    eprintln!(
        "api-check: docs/openapi.yaml matches the server on both listeners ({max_examples} examples per operation, \
         {:.0}s; server log: {})",
        started.elapsed().as_secs_f64(),
        crate::bench::process::relative(&dir.join("positions-api.log"))
    );
    Ok(())
}

/// A fresh, empty `target/api-check`.
fn scratch() -> Result<PathBuf> {
    let dir = root().join("target/api-check");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot empty {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}
