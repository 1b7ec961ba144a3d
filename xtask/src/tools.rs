//! External programs the checks and benchmarks need, installed through the
//! system's package manager when they are missing.
//!
//! Only Debian-style systems (`apt-get`) are provisioned automatically, and
//! only as root; anywhere else a missing tool stops the run with one line
//! saying what to install.

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
