//! The programs the HTTP benchmarks start: `positions-api` itself and
//! benchkit's `ceiling` and `slow-upstream`, built in release, each on a
//! free port of 127.0.0.1, and how to build them and where they keep their
//! files. nginx has its own file (`nginx.rs`): it needs a configuration.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};

use super::process::{Launch, Process};
use crate::cmd::{cargo, root, run};

/// A server the bench started: its process (stopped on drop) and address.
#[derive(Debug)]
pub(crate) struct Server {
    pub(crate) process: Process,
    pub(crate) addr: SocketAddr,
}

impl Server {
    /// `http://ADDR` followed by `path`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// Builds the service and benchkit's programs in release, into the
/// workspace's `target/` (where the xtask itself runs from), once per
/// `cargo xtask bench`: every section measures the same binaries even if
/// the sources change while the bench runs.
pub(crate) fn build_release() -> Result<()> {
    static BUILT: AtomicBool = AtomicBool::new(false);
    if BUILT.load(Ordering::Relaxed) {
        return Ok(());
    }
    run(cargo().args(["build", "--release", "--locked", "-p", "positions-api", "-p", "benchkit"]))?;
    BUILT.store(true, Ordering::Relaxed);
    Ok(())
}

/// A release binary of this workspace.
pub(crate) fn release_bin(name: &str) -> PathBuf {
    root().join("target/release").join(name)
}

/// A fresh, empty `target/bench-tmp/NAME` for one run's logs, bodies and
/// configuration (emptied first, so that nothing of an earlier run can be
/// mistaken for this one's).
pub(crate) fn scratch(name: &str) -> Result<PathBuf> {
    let dir = root().join("target/bench-tmp").join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot empty {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// `positions-api` on a free port with `env` on top of the bench's
/// defaults, pinned to `cpu` with one worker thread if given. Its log goes
/// to `dir/NAME.log`.
pub(crate) fn service(dir: &Path, name: &str, env: &[(&str, &str)], cpu: Option<u32>) -> Result<Server> {
    let mut launch = Launch::new(release_bin("positions-api"))
        // JSON logs, so that the first line says where it listens.
        .env("LOG_FORMAT", "json")
        .env("POSITIONS_BIND", "127.0.0.1:0")
        // wrk leaves no connection open, but a stuck one should not hold a
        // section up for the default ten seconds.
        .env("SHUTDOWN_GRACE_MS", "1000")
        .pin(cpu);
    if cpu.is_some() {
        launch = launch.env("TOKIO_WORKER_THREADS", "1");
    }
    for (key, value) in env {
        launch = launch.env(key, *value);
    }
    let mut process = Process::start(name, &launch, &dir.join(format!("{name}.log")))?;
    let addr = process.wait_for_line("its address", |line| {
        let json: serde_json::Value = serde_json::from_str(line).ok()?;
        (json["message"] == "listening").then(|| json["addr"].as_str()?.parse().ok())?
    })?;
    Ok(Server { process, addr })
}

/// benchkit's `ceiling`, answering every GET with the bytes of `body`.
pub(crate) fn ceiling(dir: &Path, body: &Path, cpu: Option<u32>) -> Result<Server> {
    let mut launch =
        Launch::new(release_bin("ceiling")).arg("--body").arg(body.to_string_lossy()).arg("--bind").arg("127.0.0.1:0");
    if cpu.is_some() {
        launch = launch.arg("--threads").arg("1");
    }
    announced(Process::start("ceiling", &launch.pin(cpu), &dir.join("ceiling.log"))?)
}

/// benchkit's `slow-upstream`, answering after `delay_ms` (`LO..HI` or one
/// number) with `positions` positions per wallet.
pub(crate) fn slow_upstream(dir: &Path, delay_ms: &str, positions: u32) -> Result<Server> {
    let launch = Launch::new(release_bin("slow-upstream"))
        .arg("--delay-ms")
        .arg(delay_ms)
        .arg("--positions")
        .arg(positions.to_string())
        .arg("--bind")
        .arg("127.0.0.1:0");
    announced(Process::start("slow-upstream", &launch, &dir.join("slow-upstream.log"))?)
}

/// `redis-server` on `port` of loopback, keeping nothing on disk, working
/// in `dir`.
fn redis_launch(port: u16, dir: &Path) -> Launch {
    Launch::new("redis-server")
        .arg("--bind")
        .arg("127.0.0.1")
        .arg("--port")
        .arg(port.to_string())
        .arg("--save")
        .arg("")
        .arg("--appendonly")
        .arg("no")
        .arg("--dir")
        .arg(dir.to_string_lossy())
}

/// A `redis-server` on a free port, keeping nothing on disk.
pub(crate) fn redis(dir: &Path) -> Result<Server> {
    let addr = super::process::free_port()?;
    let launch = redis_launch(addr.port(), dir);
    let mut process = Process::start("redis-server", &launch, &dir.join("redis-server.log"))?;
    process.wait_for_port(addr)?;
    Ok(Server { process, addr })
}

/// A Redis Cluster on 127.0.0.1: three primaries and three replicas, each
/// a `redis-server --cluster-enabled yes` in `dir`, joined with
/// `redis-cli --cluster create --cluster-replicas 1`; stopped on drop.
#[derive(Debug)]
pub(crate) struct Cluster {
    pub(crate) nodes: Vec<Server>,
    /// The `redis-cli --cluster create` command, as run.
    pub(crate) create: String,
}

impl Cluster {
    /// `redis://127.0.0.1:P` for every node, joined by commas: what
    /// `REDIS_URL` takes with `REDIS_MODE=cluster`.
    pub(crate) fn seeds(&self) -> String {
        self.nodes.iter().map(|node| format!("redis://{}", node.addr)).collect::<Vec<_>>().join(",")
    }

    /// The ports of the nodes that are primaries now (`ROLE`).
    pub(crate) fn primary_ports(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|node| node.addr.port().to_string())
            .filter(|port| {
                Command::new("redis-cli")
                    .args(["-p", port, "ROLE"])
                    .output()
                    .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).starts_with("master"))
            })
            .collect()
    }
}

/// Starts a [`Cluster`] in `dir` and waits until every node says
/// `cluster_state:ok`.
pub(crate) fn redis_cluster(dir: &Path) -> Result<Cluster> {
    let mut nodes = Vec::new();
    while nodes.len() < 6 {
        let addr = super::process::free_port()?;
        // The cluster bus listens on the port plus 10000.
        let Some(bus) = addr.port().checked_add(10_000) else { continue };
        if std::net::TcpListener::bind(("127.0.0.1", bus)).is_err() {
            continue;
        }
        let node_dir = dir.join(format!("cluster-{}", addr.port()));
        std::fs::create_dir_all(&node_dir).with_context(|| format!("cannot create {}", node_dir.display()))?;
        let launch = redis_launch(addr.port(), &node_dir)
            .arg("--cluster-enabled")
            .arg("yes")
            .arg("--cluster-config-file")
            .arg("nodes.conf");
        let mut process = Process::start("redis-server", &launch, &node_dir.join("redis-server.log"))?;
        process.wait_for_port(addr)?;
        nodes.push(Server { process, addr });
    }
    let mut args: Vec<String> = vec!["--cluster".into(), "create".into()];
    args.extend(nodes.iter().map(|node| node.addr.to_string()));
    args.extend(["--cluster-replicas", "1", "--cluster-yes"].map(str::to_owned));
    let create = format!("redis-cli {}", args.join(" "));
    eprintln!("==> {create}");
    let out = Command::new("redis-cli").args(&args).output().context("could not run redis-cli")?;
    anyhow::ensure!(out.status.success(), "`{create}` failed: {}", String::from_utf8_lossy(&out.stdout));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    for node in &nodes {
        let port = node.addr.port().to_string();
        loop {
            let out = Command::new("redis-cli").args(["-p", &port, "CLUSTER", "INFO"]).output()?;
            if String::from_utf8_lossy(&out.stdout).contains("cluster_state:ok") {
                break;
            }
            anyhow::ensure!(std::time::Instant::now() < deadline, "node {port} never said cluster_state:ok");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    Ok(Cluster { nodes, create })
}

/// A benchkit program's server, once it has printed `listening on ADDR`.
fn announced(mut process: Process) -> Result<Server> {
    let addr = process
        .wait_for_line("its address", |line| line.strip_prefix("listening on ").and_then(|a| a.trim().parse().ok()))?;
    Ok(Server { process, addr })
}
