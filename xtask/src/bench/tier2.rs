//! A tier-2 hit: what it costs to answer from Redis when the wallet is not
//! in memory, next to the floor, `redis-benchmark` reading a value of the
//! same size straight from the same Redis.
//!
//! The service runs with `POSITION_CACHE_MAX=1`, so that a request for any
//! of 1,000 wallets (drawn uniformly, all stored in Redis beforehand) is
//! almost never in memory: it reads Redis, decodes the envelope, inflates
//! and checks the stored answer and answers. The difference to the floor is
//! the HTTP exchange plus that work; to tell them apart, the same server is
//! then asked for one wallet only, which memory holds: the HTTP exchange
//! alone, at the same connection count.
//!
//! Then the same against a Redis Cluster (three primaries, three replicas,
//! all on this machine, `REDIS_MODE=cluster`), with `redis-benchmark
//! --cluster` as its floor: what routing by slot costs a tier-2 hit.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use super::Mode;
use super::figures::{latency, percent, ratio, thousands};
use super::load::Load;
use super::report::{table, verdict};
use super::{probe, servers};
use crate::tools;

const WALLETS: u32 = 1_000;
const CONNECTIONS: [u32; 2] = [1, 32];
/// The target: a tier-2 hit's p50 at most this many times the floor's.
const TARGET: f64 = 2.0;

/// One Redis setup's and connection count's figures.
#[derive(Debug)]
struct Row {
    redis: &'static str,
    connections: u32,
    load: Load,
    /// The same server answering one wallet from memory: the HTTP exchange.
    memory: Load,
    tier2_share: f64,
    floor_p50_ms: f64,
    floor_p99_ms: f64,
    floor_command: String,
}

/// The Redis a measurement runs against: the service's settings, and the
/// ports of the servers that hold the data (the primaries, for a cluster).
struct Backend<'a> {
    name: &'static str,
    env: Vec<(&'static str, String)>,
    primaries: Vec<String>,
    /// `redis-benchmark`'s extra arguments (`--cluster`).
    floor_args: &'a [&'a str],
}

pub(crate) fn run_section(mode: Mode) -> Result<String> {
    tools::ensure(&[tools::REDIS])?;
    servers::build_release()?;
    let seconds = match mode {
        Mode::Full => 10,
        Mode::Quick => 2,
    };
    let dir = servers::scratch("tier2")?;
    let upstream = servers::slow_upstream(&dir, "0", 10)?;
    let source = format!("http://{}", upstream.addr);
    let mut commands = vec![upstream.process.shown().to_owned()];
    let mut rows = Vec::new();

    let redis = servers::redis(&dir)?;
    commands.push(redis.process.shown().to_owned());
    let single = Backend {
        name: "one server",
        env: vec![("REDIS_URL", format!("redis://{}", redis.addr))],
        primaries: vec![redis.addr.port().to_string()],
        floor_args: &[],
    };
    let value_bytes = measure(&dir, &source, &single, seconds, &mut rows, &mut commands)?;
    drop(redis);

    let cluster = servers::redis_cluster(&dir.join("cluster"))?;
    commands.push(format!("{} (and five more nodes like it, each on its own port)", cluster.nodes[0].process.shown()));
    commands.push(cluster.create.clone());
    let clustered = Backend {
        name: "cluster, 3 primaries",
        env: vec![("REDIS_URL", cluster.seeds()), ("REDIS_MODE", "cluster".to_owned())],
        primaries: cluster.primary_ports(),
        floor_args: &["--cluster"],
    };
    measure(&dir, &source, &clustered, seconds, &mut rows, &mut commands)?;
    render(&rows, value_bytes, &commands)
}

/// Starts the service on `backend`, stores every wallet, and measures
/// tier-2 hits and the floor at each connection count, into `rows`; the
/// size of a stored value.
fn measure(
    dir: &std::path::Path,
    source: &str,
    backend: &Backend<'_>,
    seconds: u32,
    rows: &mut Vec<Row>,
    commands: &mut Vec<String>,
) -> Result<u64> {
    let mut env: Vec<(&str, &str)> =
        vec![("POSITIONS_SOURCE", source), ("POSITION_CACHE_MAX", "1"), ("POSITION_CACHE_TTL_SEC", "86400")];
    env.extend(backend.env.iter().map(|(key, value)| (*key, value.as_str())));
    let name = if backend.floor_args.is_empty() { "positions-api" } else { "positions-api-cluster" };
    let service = servers::service(dir, name, &env, None)?;
    commands.push(service.process.shown().to_owned());
    let prefix = service.url("/v4/positions/");
    let wallets = WALLETS.to_string();
    let fill =
        Load::run(&["sweep".into(), "--url-prefix".into(), prefix.clone(), "--wallets".into(), wallets.clone()])?;
    ensure!(fill.failed() == 0, "storing the wallets failed: {}", fill.failures());
    commands.push(fill.shown.clone());
    wait_for_keys(&backend.primaries, u64::from(WALLETS))?;
    let value_bytes = value_size(&backend.primaries[0])?;

    for connections in CONNECTIONS {
        let hits_before = probe::metrics(service.addr, &["position_cache_redis_hits_total"])?[0];
        let load = uniform(&prefix, &wallets, connections, seconds)?;
        ensure!(load.failed() == 0, "tier-2 reads failed: {}", load.failures());
        let hits = probe::metrics(service.addr, &["position_cache_redis_hits_total"])?[0] - hits_before;
        let memory = uniform(&prefix, "1", connections, seconds)?;
        ensure!(memory.failed() == 0, "memory hits failed: {}", memory.failures());
        #[expect(clippy::cast_precision_loss, reason = "request counts are far below 2^52")]
        let tier2_share = hits / load.requests() as f64;
        let (floor_p50_ms, floor_p99_ms, floor_command) =
            redis_benchmark(&backend.primaries[0], backend.floor_args, value_bytes, connections)?;
        rows.push(Row {
            redis: backend.name,
            connections,
            load,
            memory,
            tier2_share,
            floor_p50_ms,
            floor_p99_ms,
            floor_command,
        });
    }
    Ok(value_bytes)
}

/// A closed-loop run over `wallets` wallets drawn uniformly.
fn uniform(prefix: &str, wallets: &str, connections: u32, seconds: u32) -> Result<Load> {
    Load::run(&[
        "zipf".into(),
        "--url-prefix".into(),
        prefix.to_owned(),
        "--wallets".into(),
        wallets.to_owned(),
        "--alpha".into(),
        "0".into(),
        "--connections".into(),
        connections.to_string(),
        "--duration".into(),
        format!("{seconds}s"),
    ])
}

/// Waits until the servers on `ports` hold `keys` keys in all (the service
/// writes them in the background).
fn wait_for_keys(ports: &[String], keys: u64) -> Result<()> {
    let started = Instant::now();
    loop {
        let mut held = 0_u64;
        for port in ports {
            let out =
                Command::new("redis-cli").args(["-p", port, "DBSIZE"]).output().context("could not run redis-cli")?;
            held += String::from_utf8_lossy(&out.stdout).trim().parse::<u64>().unwrap_or(0);
        }
        if held >= keys {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("Redis holds {held} keys, expected {keys}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The length of one stored value, in bytes.
fn value_size(port: &str) -> Result<u64> {
    let out = Command::new("redis-cli").args(["-p", port, "RANDOMKEY"]).output().context("could not run redis-cli")?;
    let key = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let out = Command::new("redis-cli").args(["-p", port, "STRLEN", &key]).output()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().with_context(|| format!("no length for key {key:?}"))
}

/// `redis-benchmark` GETs of a value of `bytes` bytes over `connections`
/// connections (with `extra` arguments: `--cluster` spreads its keys over
/// a cluster's primaries): p50 and p99 in milliseconds, and the command.
fn redis_benchmark(port: &str, extra: &[&str], bytes: u64, connections: u32) -> Result<(f64, f64, String)> {
    let requests = if connections == 1 { "50000" } else { "300000" };
    let mut args: Vec<String> = extra.iter().map(|&arg| arg.to_owned()).collect();
    args.extend(
        ["-p", port, "-t", "get", "-d", &bytes.to_string(), "-c", &connections.to_string(), "-n", requests, "--csv"]
            .map(str::to_owned),
    );
    let shown = format!("redis-benchmark {}", args.join(" "));
    eprintln!("==> {shown}");
    let out = Command::new("redis-benchmark").args(&args).output().context("could not run redis-benchmark")?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    let row = text.lines().find(|l| l.starts_with("\"GET\"")).with_context(|| format!("`{shown}` printed {text}"))?;
    let fields: Vec<f64> = row.split(',').skip(1).map(|f| f.trim_matches('"').parse().unwrap_or(f64::NAN)).collect();
    ensure!(fields.len() >= 6, "`{shown}` printed {row}");
    Ok((fields[3], fields[5], shown))
}

fn render(rows: &[Row], value_bytes: u64, commands: &[String]) -> Result<String> {
    let mut s = format!(
        "## A tier-2 (Redis) hit\n\n\
         `positions-api` with `REDIS_URL` and `POSITION_CACHE_MAX=1`, asked for {} wallets drawn uniformly, \
         all stored in Redis beforehand, so that nearly every answer is read from Redis, its stored answer \
         inflated and checked, and sent (the share is counted from `position_cache_redis_hits_total`). Redis \
         holds {value_bytes} bytes per wallet (`STRLEN` of a stored value, ten positions). The floor is \
         `redis-benchmark` reading a value of that size from the same Redis over the same number of \
         connections. *Memory hit* is the same server asked for one wallet only, which memory holds: the \
         HTTP exchange alone, so *tier-2 hit − memory hit* is what reading Redis adds to an answer. Closed \
         loop: each connection sends when answered. Measured against one `redis-server`, then against a \
         Redis Cluster of three primaries and three replicas on the same machine (`REDIS_MODE=cluster`, \
         every node a seed; the floor `redis-benchmark --cluster`).\n\n",
        thousands(f64::from(WALLETS)),
    );
    let mut verdicts = Vec::new();
    let mut table_rows = Vec::new();
    for row in rows {
        let p50 = row.load.number("/latency_ms/all/p50_ms")?;
        let p99 = row.load.number("/latency_ms/all/p99_ms")?;
        #[expect(clippy::cast_precision_loss, reason = "request counts are far below 2^52")]
        let requests = row.load.requests() as f64;
        let memory_p50 = row.memory.number("/latency_ms/all/p50_ms")?;
        verdicts.push(format!(
            "- {}, {} connection(s): tier-2 hit p50 ≤ {TARGET}× the floor: {}, {}; what Redis adds (tier-2 hit − \
             memory hit, p50) ÷ floor: {}\n",
            row.redis,
            row.connections,
            ratio(p50 / row.floor_p50_ms),
            verdict(p50 / row.floor_p50_ms <= TARGET),
            ratio((p50 - memory_p50) / row.floor_p50_ms),
        ));
        table_rows.push(vec![
            row.redis.to_owned(),
            row.connections.to_string(),
            thousands(requests),
            percent(row.tier2_share, 1.0),
            latency(p50),
            latency(p99),
            latency(memory_p50),
            latency(row.floor_p50_ms),
            latency(row.floor_p99_ms),
            ratio(p50 / row.floor_p50_ms),
            ratio(p99 / row.floor_p99_ms),
        ]);
    }
    s.push_str(&table(
        &[
            "Redis",
            "connections",
            "requests",
            "answered from Redis",
            "tier-2 hit p50",
            "tier-2 hit p99",
            "memory hit p50",
            "Redis GET p50 (floor)",
            "Redis GET p99 (floor)",
            "p50 ÷ floor",
            "p99 ÷ floor",
        ],
        &table_rows,
    ));
    s.push_str("\nTargets in this run:\n\n");
    for line in verdicts {
        s.push_str(&line);
    }
    s.push_str("\n### Commands\n\n```sh\n");
    for command in commands.iter().chain(rows.iter().flat_map(|r| [&r.load.shown, &r.memory.shown, &r.floor_command])) {
        s.push_str(command);
        s.push('\n');
    }
    s.push_str("```\n\n");
    Ok(s)
}
