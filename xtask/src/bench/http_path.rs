//! The cached HTTP path: `positions-api` answering one wallet from memory,
//! against its ceiling (benchkit's `ceiling`, a bare hyper server returning
//! the same bytes) and its peer (nginx `proxy_cache` in front of the
//! service, answering the same bytes from its cache).
//!
//! One wrk, the same settings for all three, at 1, 32 and 256 connections;
//! the servers take turns (A B C A B C ...) and each figure is the median
//! of its repeats. All of it twice: with the two cores shared by whoever
//! wants them, and pinned (the server on core 0 with one worker, wrk on
//! core 1), because sharing makes the tails noisy. Ratios and targets
//! compare figures of this run only.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{Context, Result, bail, ensure};

use super::Mode;
use super::figures::{latency, median, rate, ratio, thousands};
use super::report::{table, verdict};
use super::servers::{self, Server};
use super::{nginx, probe, wrk};
use crate::tools;

/// The wallet asked for. The service gets it from benchkit's
/// `slow-upstream` (once; every later answer is from memory), which gives
/// it ten positions: the report's typical wallet.
const WALLET: &str = "0x52908400098527886e0f7030069857d2e4169ee7";
const POSITIONS: u32 = 10;
const CONNECTIONS: [u32; 3] = [1, 32, 256];

/// The three servers, in the order they take turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Contender {
    Ours,
    Ceiling,
    Nginx,
}

impl Contender {
    const ALL: [Self; 3] = [Self::Ours, Self::Ceiling, Self::Nginx];

    fn name(self) -> &'static str {
        match self {
            Self::Ours => "`positions-api`",
            Self::Ceiling => "ceiling (bare hyper)",
            Self::Nginx => "nginx `proxy_cache`",
        }
    }
}

/// Where the processes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// Every process may use both cores; servers use their default worker
    /// counts (two).
    Shared,
    /// Servers on core 0 with one worker each, wrk on core 1.
    Pinned,
}

impl Placement {
    fn title(self) -> &'static str {
        match self {
            Self::Shared => "cores shared",
            Self::Pinned => "pinned: server on core 0 (one worker), wrk on core 1",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Self::Shared => "shared",
            Self::Pinned => "pinned",
        }
    }

    fn server_cpu(self) -> Option<u32> {
        (self == Self::Pinned).then_some(0)
    }

    fn wrk_cpu(self) -> Option<u32> {
        (self == Self::Pinned).then_some(1)
    }
}

/// How long and how often.
#[derive(Debug, Clone, Copy)]
struct Timing {
    seconds: u32,
    rounds: usize,
    /// A short untimed wrk run per server first, so no server is measured
    /// cold (page faults, first connections) in its first round.
    warm_up: bool,
}

impl Timing {
    fn for_mode(mode: Mode) -> Self {
        match mode {
            // Five rounds: on a shared two-core machine a single run's p99
            // can move by a factor of two or more, and the median of three
            // was still swayed by one bad run.
            Mode::Full => Self { seconds: 8, rounds: 5, warm_up: true },
            Mode::Quick => Self { seconds: 2, rounds: 1, warm_up: false },
        }
    }
}

/// The medians of one server at one connection count.
#[derive(Debug, Clone, Copy)]
struct Cell {
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    socket_errors: u64,
}

/// One placement's measurements.
#[derive(Debug)]
struct Measured {
    placement: Placement,
    cells: BTreeMap<(u32, Contender), Cell>,
    body_bytes: usize,
    /// Loads the service did during the runs (must be 0: every answer from
    /// memory).
    loads_during_runs: f64,
    commands: Vec<String>,
}

impl Measured {
    fn cell(&self, connections: u32, who: Contender) -> Cell {
        self.cells[&(connections, who)]
    }
}

pub(crate) fn run_section(mode: Mode) -> Result<String> {
    tools::ensure(&[tools::WRK, tools::NGINX, tools::TASKSET])?;
    servers::build_release()?;
    let timing = Timing::for_mode(mode);
    let shared = measure(Placement::Shared, timing)?;
    let pinned = measure(Placement::Pinned, timing)?;
    Ok(render(timing, &[shared, pinned]))
}

fn measure(placement: Placement, timing: Timing) -> Result<Measured> {
    let dir = servers::scratch(&format!("http-path-{}", placement.short()))?;
    let cpu = placement.server_cpu();
    let path = format!("/v4/positions/{WALLET}");
    // No delay: the upstream is asked once, before anything is measured.
    let upstream = servers::slow_upstream(&dir, "0", POSITIONS)?;
    let source = format!("http://{}", upstream.addr);
    // A day-long TTL: the wallet must stay fresh in memory through every run.
    let mut service = servers::service(
        &dir,
        "positions-api",
        &[("POSITIONS_SOURCE", source.as_str()), ("POSITION_CACHE_TTL_SEC", "86400")],
        cpu,
    )?;

    // The first request loads the wallet from the upstream; from the second
    // on it comes from memory, and that answer is the body the others serve.
    let first = probe::get(service.addr, &path)?;
    ensure!(first.status == 200, "positions-api answered {} for {path}: {}", first.status, first.text());
    let cached = probe::get(service.addr, &path)?;
    ensure!(
        cached.status == 200 && cached.text().contains("\"cached\":true"),
        "positions-api did not answer {path} from memory: {}",
        cached.text()
    );
    let body_file = dir.join("body.json");
    std::fs::write(&body_file, &cached.body)?;
    let mut ceiling = servers::ceiling(&dir, &body_file, cpu)?;
    let mut nginx = nginx::start(&dir, service.addr, cpu)?;
    let hit = nginx_hit(&nginx, &path)?;

    // The same bytes from all three. The service's own answer differs from
    // the stored copies only in `age_seconds`, which is still one digit
    // this soon after the load (it grows a digit or two over the runs).
    let ours = probe::get(service.addr, &path)?.body.len();
    let ceiling_len = probe::get(ceiling.addr, &path)?.body.len();
    ensure!(
        ours == cached.body.len() && ceiling_len == cached.body.len() && hit.body.len() == cached.body.len(),
        "the servers answer different bodies for {path}: positions-api {ours} bytes, ceiling {ceiling_len}, \
         nginx {} (stored: {})",
        hit.body.len(),
        cached.body.len()
    );
    let loads_before = probe::metrics(service.addr, &["position_cache_misses_total"])?[0];

    let mut commands = vec![
        upstream.process.shown().to_owned(),
        service.process.shown().to_owned(),
        ceiling.process.shown().to_owned(),
        nginx.process.shown().to_owned(),
    ];
    let servers = [(Contender::Ours, &service), (Contender::Ceiling, &ceiling), (Contender::Nginx, &nginx)];
    if timing.warm_up {
        for (_, server) in servers {
            wrk::run(wrk::Settings { connections: 32, seconds: 1, cpu: placement.wrk_cpu() }, &server.url(&path))?;
        }
    }
    let mut runs: BTreeMap<(u32, Contender), Vec<wrk::Run>> = BTreeMap::new();
    for connections in CONNECTIONS {
        let settings = wrk::Settings { connections, seconds: timing.seconds, cpu: placement.wrk_cpu() };
        for round in 0..timing.rounds {
            for (who, server) in servers {
                let url = server.url(&path);
                if round == 0 {
                    commands.push(settings.shown(&url));
                }
                runs.entry((connections, who)).or_default().push(wrk::run(settings, &url)?);
            }
        }
    }

    // Still answering from caches, and still running: a server that died
    // or fell back to its upstream mid-run would make its figures lies.
    nginx_hit(&nginx, &path).context("nginx after the runs")?;
    let loads_during_runs = probe::metrics(service.addr, &["position_cache_misses_total"])?[0] - loads_before;
    for process in [&mut service.process, &mut ceiling.process, &mut nginx.process] {
        process.check_running()?;
    }

    let cells = runs
        .into_iter()
        .map(|(key, runs)| {
            let pick = |f: fn(&wrk::Run) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
            let cell = Cell {
                requests_per_sec: pick(|r| r.requests_per_sec),
                p50_ms: pick(|r| r.p50_ms),
                p99_ms: pick(|r| r.p99_ms),
                socket_errors: runs.iter().map(|r| r.socket_errors).sum(),
            };
            (key, cell)
        })
        .collect();
    Ok(Measured { placement, cells, body_bytes: cached.body.len(), loads_during_runs, commands })
}

/// nginx's answer for `path`, which must be a cache hit.
fn nginx_hit(nginx: &Server, path: &str) -> Result<probe::Reply> {
    // The first request may be the one that fills the cache.
    for _ in 0..2 {
        let reply = probe::get(nginx.addr, path)?;
        ensure!(reply.status == 200, "nginx answered {} for {path}: {}", reply.status, reply.text());
        if reply.header("X-Cache-Status") == Some("HIT") {
            return Ok(reply);
        }
    }
    bail!("nginx does not answer {path} from its cache (X-Cache-Status is not HIT)")
}

/// One target: the ratio, the limit, and whether it must be above or below.
struct Target {
    what: &'static str,
    limit: f64,
    at_least: bool,
    ratio: fn(&Measured, u32) -> f64,
}

const TARGETS: [Target; 4] = [
    Target {
        what: "req/s ≥ 0.8 × ceiling",
        limit: 0.8,
        at_least: true,
        ratio: |m, c| m.cell(c, Contender::Ours).requests_per_sec / m.cell(c, Contender::Ceiling).requests_per_sec,
    },
    Target {
        what: "req/s ≥ 1.0 × nginx",
        limit: 1.0,
        at_least: true,
        ratio: |m, c| m.cell(c, Contender::Ours).requests_per_sec / m.cell(c, Contender::Nginx).requests_per_sec,
    },
    Target {
        what: "p99 ≤ nginx",
        limit: 1.0,
        at_least: false,
        ratio: |m, c| m.cell(c, Contender::Ours).p99_ms / m.cell(c, Contender::Nginx).p99_ms,
    },
    Target {
        what: "p99 ≤ 1.25 × ceiling",
        limit: 1.25,
        at_least: false,
        ratio: |m, c| m.cell(c, Contender::Ours).p99_ms / m.cell(c, Contender::Ceiling).p99_ms,
    },
];

fn render(timing: Timing, measured: &[Measured]) -> String {
    let body_bytes = thousands(measured.first().map_or(0.0, |m| m.body_bytes as f64));
    let mut s = format!(
        "## The cached HTTP path\n\n\
         `GET /v4/positions/{WALLET}` on loopback: a wallet of {POSITIONS} positions, a {body_bytes}-byte \
         JSON body. Answered by `positions-api` from its memory tier (loaded once from benchkit's \
         `slow-upstream` before measuring); by the **ceiling**, benchkit's bare hyper server \
         (hyper-util's auto builder on tokio with `TCP_NODELAY`, as the service) returning the same bytes \
         from memory; and by the **peer**, nginx with `proxy_cache` in front of the same service, returning \
         the same bytes from its cache (a probe before and after the runs checked `X-Cache-Status: HIT`). \
         Load: wrk, the same settings for all three; servers take turns (A B C A B C …), {} run(s) of {} s \
         each per cell, and each figure is the median of its runs. Before measuring, all three answered \
         bodies of the same length.\n\n",
        timing.rounds, timing.seconds
    );
    for m in measured {
        render_placement(&mut s, m);
    }
    render_ratios(&mut s, measured);
    render_targets(&mut s, measured);
    render_commands(&mut s, measured);
    s
}

/// One placement's table of medians.
fn render_placement(s: &mut String, m: &Measured) {
    let _ = writeln!(s, "### {}\n", capitalized(m.placement.title()));
    let mut rows = Vec::new();
    for connections in CONNECTIONS {
        for who in Contender::ALL {
            let cell = m.cell(connections, who);
            rows.push(vec![
                connections.to_string(),
                who.name().to_owned(),
                rate(cell.requests_per_sec),
                latency(cell.p50_ms),
                latency(cell.p99_ms),
            ]);
        }
    }
    s.push_str(&table(&["connections", "server", "req/s", "p50", "p99"], &rows));
    let errors: Vec<String> = m
        .cells
        .iter()
        .filter(|(_, c)| c.socket_errors > 0)
        .map(|((connections, who), c)| format!("{} at {connections}: {}", who.name(), c.socket_errors))
        .collect();
    if !errors.is_empty() {
        let _ = writeln!(s, "\nwrk socket errors (summed over the runs): {}.", errors.join("; "));
    }
    let _ = writeln!(
        s,
        "\nLoads from the source by `positions-api` during these runs: {}.\n",
        if m.loads_during_runs == 0.0 {
            "none, so every answer came from memory".to_owned()
        } else {
            format!("{} (the figures include answers that were not from memory)", m.loads_during_runs)
        }
    );
}

fn render_ratios(s: &mut String, measured: &[Measured]) {
    s.push_str("### Ratios, ours over theirs\n\nFor req/s higher is better; for latency lower is better.\n\n");
    let mut rows = Vec::new();
    for m in measured {
        for connections in CONNECTIONS {
            let ours = m.cell(connections, Contender::Ours);
            let ceiling = m.cell(connections, Contender::Ceiling);
            let nginx = m.cell(connections, Contender::Nginx);
            rows.push(vec![
                m.placement.short().to_owned(),
                connections.to_string(),
                ratio(ours.requests_per_sec / ceiling.requests_per_sec),
                ratio(ours.requests_per_sec / nginx.requests_per_sec),
                ratio(ours.p50_ms / ceiling.p50_ms),
                ratio(ours.p50_ms / nginx.p50_ms),
                ratio(ours.p99_ms / ceiling.p99_ms),
                ratio(ours.p99_ms / nginx.p99_ms),
            ]);
        }
    }
    s.push_str(&table(
        &[
            "cores",
            "connections",
            "req/s ÷ ceiling",
            "req/s ÷ nginx",
            "p50 ÷ ceiling",
            "p50 ÷ nginx",
            "p99 ÷ ceiling",
            "p99 ÷ nginx",
        ],
        &rows,
    ));
}

fn render_targets(s: &mut String, measured: &[Measured]) {
    s.push_str("\n### Targets\n\nEach ratio above against its target, in this run.\n\n");
    let mut rows = Vec::new();
    let (mut met, mut total) = (0, 0);
    for m in measured {
        for connections in CONNECTIONS {
            let mut row = vec![m.placement.short().to_owned(), connections.to_string()];
            for target in &TARGETS {
                let value = (target.ratio)(m, connections);
                let ok = if target.at_least { value >= target.limit } else { value <= target.limit };
                met += usize::from(ok);
                total += 1;
                // Three places: a ratio that rounds to the limit must not
                // read as meeting it when it does not.
                row.push(format!("{value:.3}, {}", verdict(ok)));
            }
            rows.push(row);
        }
    }
    let mut head = vec!["cores", "connections"];
    head.extend(TARGETS.iter().map(|t| t.what));
    s.push_str(&table(&head, &rows));
    let _ = writeln!(s, "\n{met} of {total} targets met.\n");
}

fn render_commands(s: &mut String, measured: &[Measured]) {
    s.push_str(
        "### Commands\n\nRun from the workspace root after `cargo build --release -p positions-api -p benchkit`; \
         ports are the ones this run got. Each server's start, then wrk's command for each server at each \
         connection count (the same for every round).\n\n",
    );
    for m in measured {
        let _ = writeln!(s, "{}:\n\n```sh", capitalized(m.placement.title()));
        for command in &m.commands {
            let _ = writeln!(s, "{command}");
        }
        s.push_str("```\n\n");
    }
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}
