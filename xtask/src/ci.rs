//! `cargo xtask ci`: the checks CI runs, in the order that fails fastest.

use anyhow::{Result, bail};

use crate::cmd::{cargo, on_path, run};
use crate::{api_check, deploy, libraries, msrv, tools};

pub(crate) fn run_ci(args: &[String]) -> Result<()> {
    if let Some(arg) = args.first() {
        bail!("`ci` takes no arguments, got {arg:?}");
    }
    // The Redis tests start their own redis-server processes; the metrics
    // tests run promtool on the exposition, and the dashboard test a
    // Prometheus server (one package has both); deploy-check uses promtool and
    // docker-compose; the browser test runs Chromium headless. One apt-get
    // run for all of them.
    tools::ensure(&tools::CI)?;
    run(cargo().args(["fmt", "--all", "--check"]))?;
    // A few seconds: linters and validators of `deploy/`.
    deploy::run_deploy_check(&[])?;
    run(cargo().args(["clippy", "--workspace", "--all-targets", "--locked", "--", "-D", "warnings"]))?;
    run(cargo().args(["doc", "--workspace", "--no-deps", "--locked"]).env("RUSTDOCFLAGS", "-D warnings"))?;
    // The libraries as published: each packaged and built from its package
    // alone, then by the oldest Rust it declares. Cheap even from cold: a
    // build of the libraries' few dependencies each, and a minimal
    // toolchain download.
    libraries::run_publish_check(&[])?;
    msrv::run_msrv(&[])?;
    if on_path("cargo-nextest") {
        run(cargo().args(["nextest", "run", "--workspace", "--locked", "--no-fail-fast"]))?;
    } else {
        eprintln!("cargo-nextest is not installed; running the tests with cargo test");
        run(cargo().args(["test", "--workspace", "--locked", "--lib", "--bins", "--tests"]))?;
    }
    // Seconds, on the test build: the libraries' examples, run.
    libraries::run_examples()?;
    // Under a minute: the server as built for the tests, against
    // docs/openapi.yaml.
    api_check::run_api_check(&[])?;
    // nextest does not run doc tests; they run last so that the output ends
    // with the test runner's own summary.
    run(cargo().args(["test", "--workspace", "--locked", "--doc"]))
}
