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
//!
//! Pinned, at 32 connections, three more contenders take their turns in
//! the same rounds: the service answering `304 Not Modified` to wrk's
//! `If-None-Match` with the entry's `ETag`, the service answering
//! `Accept-Encoding: gzip` (compressed once per entry), and nginx answering
//! it with `gzip on` (compressed per request). Each is checked once before
//! the runs (status, `Content-Encoding`, the decoded body, nginx's cache
//! status), so a broken variant stops the bench instead of being measured;
//! the same probes count the bytes one answer takes on the wire for
//! identity, gzip, br and 304.

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
/// Where the conditional and compressed answers are measured (pinned
/// only, to keep the section short: one core is where a per-request cost
/// shows in full).
const VARIANT_CONNECTIONS: u32 = 32;

/// The servers and the ways they are asked, in the order they take turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Contender {
    Ours,
    Ceiling,
    Nginx,
    /// The service, `If-None-Match` with the entry's `ETag`: 304s.
    OursNotModified,
    /// The service, `Accept-Encoding: gzip`.
    OursGzip,
    /// nginx with `gzip on`, `Accept-Encoding: gzip`.
    NginxGzip,
}

impl Contender {
    const ALL: [Self; 3] = [Self::Ours, Self::Ceiling, Self::Nginx];
    /// Measured at [`VARIANT_CONNECTIONS`], pinned.
    const VARIANTS: [Self; 3] = [Self::OursNotModified, Self::OursGzip, Self::NginxGzip];

    fn name(self) -> &'static str {
        match self {
            Self::Ours => "`positions-api`",
            Self::Ceiling => "ceiling (bare hyper)",
            Self::Nginx => "nginx `proxy_cache`",
            Self::OursNotModified => "`positions-api`, 304 (`If-None-Match`)",
            Self::OursGzip => "`positions-api`, gzip",
            Self::NginxGzip => "nginx `proxy_cache`, `gzip on`",
        }
    }

    /// The request headers wrk sends, `etag` being the entry's `ETag`.
    fn headers(self, etag: &str) -> Vec<String> {
        match self {
            Self::Ours | Self::Ceiling | Self::Nginx => Vec::new(),
            Self::OursNotModified => vec![format!("If-None-Match: {etag}")],
            Self::OursGzip | Self::NginxGzip => vec!["Accept-Encoding: gzip".to_owned()],
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

    /// Who takes turns at `connections`.
    fn contenders(self, connections: u32) -> Vec<Contender> {
        let mut all = Contender::ALL.to_vec();
        if self == Self::Pinned && connections == VARIANT_CONNECTIONS {
            all.extend(Contender::VARIANTS);
        }
        all
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
    /// One answer of each kind, as probed before the runs (pinned only).
    wire: Vec<Wire>,
    commands: Vec<String>,
}

impl Measured {
    fn cell(&self, connections: u32, who: Contender) -> Cell {
        self.cells[&(connections, who)]
    }
}

/// What one answer takes on the wire.
#[derive(Debug)]
struct Wire {
    what: &'static str,
    status: u16,
    encoding: String,
    head_bytes: usize,
    body_bytes: usize,
    total_bytes: usize,
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
    let etag = cached.header("ETag").context("positions-api answered without an ETag")?.to_owned();
    let wire =
        if placement == Placement::Pinned { check_variants(&service, &nginx, &path, &etag)? } else { Vec::new() };
    let loads_before = probe::metrics(service.addr, &["position_cache_misses_total"])?[0];

    let mut commands = vec![
        upstream.process.shown().to_owned(),
        service.process.shown().to_owned(),
        ceiling.process.shown().to_owned(),
        nginx.process.shown().to_owned(),
    ];
    let server = |who: Contender| match who {
        Contender::Ours | Contender::OursNotModified | Contender::OursGzip => &service,
        Contender::Ceiling => &ceiling,
        Contender::Nginx | Contender::NginxGzip => &nginx,
    };
    if timing.warm_up {
        let settings = wrk::Settings { connections: 32, seconds: 1, cpu: placement.wrk_cpu() };
        for who in placement.contenders(VARIANT_CONNECTIONS) {
            wrk::run(settings, &server(who).url(&path), &who.headers(&etag))?;
        }
    }
    let mut runs: BTreeMap<(u32, Contender), Vec<wrk::Run>> = BTreeMap::new();
    for connections in CONNECTIONS {
        let settings = wrk::Settings { connections, seconds: timing.seconds, cpu: placement.wrk_cpu() };
        let contenders = placement.contenders(connections);
        for round in 0..timing.rounds {
            for &who in &contenders {
                let url = server(who).url(&path);
                let headers = who.headers(&etag);
                if round == 0 {
                    commands.push(settings.shown(&url, &headers));
                }
                runs.entry((connections, who)).or_default().push(wrk::run(settings, &url, &headers)?);
            }
        }
    }

    // Still answering from caches, and still running: a server that died
    // or fell back to its upstream mid-run would make its figures lies.
    nginx_hit(&nginx, &path).context("nginx after the runs")?;
    if placement == Placement::Pinned {
        check_variants(&service, &nginx, &path, &etag).context("after the runs")?;
    }
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
    Ok(Measured { placement, cells, body_bytes: cached.body.len(), loads_during_runs, wire, commands })
}

/// Asks once for each kind of answer the variants get, and for `br`, and
/// fails unless each is what it should be: the service's identity, gzip
/// and br answers with the right `Content-Encoding`, gzip decoding to the
/// identity body; its 304 for `etag` with no body; nginx's identity and
/// gzip answers from its cache, the gzip one decoding to its identity
/// body. What each took on the wire, for the report.
fn check_variants(service: &Server, nginx: &Server, path: &str, etag: &str) -> Result<Vec<Wire>> {
    let gzip = ["Accept-Encoding: gzip".to_owned()];
    let br = ["Accept-Encoding: br".to_owned()];
    let not_modified = [format!("If-None-Match: {etag}")];
    let mut wire = Vec::new();
    let mut keep = |what: &'static str, reply: &probe::Reply| {
        wire.push(Wire {
            what,
            status: reply.status,
            // A 304 has no body, so no coding.
            encoding: match reply.header("Content-Encoding") {
                Some(coding) => format!("`{coding}`"),
                None if reply.status == 304 => "none".to_owned(),
                None => "`identity`".to_owned(),
            },
            head_bytes: reply.head_bytes,
            body_bytes: reply.wire_bytes - reply.head_bytes,
            total_bytes: reply.wire_bytes,
        });
    };
    let expect = |what: &str, reply: &probe::Reply, status: u16, encoding: Option<&str>| -> Result<()> {
        ensure!(
            reply.status == status && reply.header("Content-Encoding") == encoding,
            "{what}: answered {} with Content-Encoding {:?}, not {status} with {encoding:?}",
            reply.status,
            reply.header("Content-Encoding")
        );
        Ok(())
    };

    let identity = probe::fetch(service.addr, path, &[])?;
    expect("positions-api, identity", &identity, 200, None)?;
    keep("`positions-api`, identity", &identity);
    let compressed = probe::fetch(service.addr, path, &gzip)?;
    expect("positions-api, gzip", &compressed, 200, Some("gzip"))?;
    // `age_seconds` may tick between two answers: the decoded body must
    // equal the identity answer just before it or one just after.
    let decoded = gunzip(&compressed.body)?;
    let after = probe::fetch(service.addr, path, &[])?;
    ensure!(
        decoded == identity.body || decoded == after.body,
        "positions-api's gzip answer does not decode to its identity answer:\n{}\n{}",
        String::from_utf8_lossy(&decoded),
        identity.text()
    );
    keep("`positions-api`, gzip", &compressed);
    let brotli = probe::fetch(service.addr, path, &br)?;
    expect("positions-api, br", &brotli, 200, Some("br"))?;
    keep("`positions-api`, br", &brotli);
    let unchanged = probe::fetch(service.addr, path, &not_modified)?;
    expect("positions-api, If-None-Match", &unchanged, 304, None)?;
    ensure!(
        unchanged.body.is_empty() && unchanged.header("ETag") == Some(etag),
        "positions-api's 304 has a body or another ETag ({:?})",
        unchanged.header("ETag")
    );
    keep("`positions-api`, 304", &unchanged);

    let plain = probe::fetch(nginx.addr, path, &[])?;
    expect("nginx, identity", &plain, 200, None)?;
    let zipped = probe::fetch(nginx.addr, path, &gzip)?;
    expect("nginx, gzip", &zipped, 200, Some("gzip"))?;
    for (what, reply) in [("identity", &plain), ("gzip", &zipped)] {
        ensure!(
            reply.header("X-Cache-Status") == Some("HIT"),
            "nginx's {what} answer is not from its cache (X-Cache-Status {:?})",
            reply.header("X-Cache-Status")
        );
    }
    ensure!(gunzip(&zipped.body)? == plain.body, "nginx's gzip answer does not decode to its identity answer");
    keep("nginx `proxy_cache`, identity", &plain);
    keep("nginx `proxy_cache`, gzip", &zipped);
    Ok(wire)
}

/// `gzip -dc` of `data`.
fn gunzip(data: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write as _;
    let mut child = std::process::Command::new("gzip")
        .arg("-dc")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("could not run gzip")?;
    let mut stdin = child.stdin.take().context("gzip's stdin")?;
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output()?;
    writer.join().map_err(|_| anyhow::anyhow!("writing to gzip panicked"))??;
    ensure!(out.status.success(), "gzip -dc failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    Ok(out.stdout)
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
         bodies of the same length.\n\n\
         Pinned, at {VARIANT_CONNECTIONS} connections, three more take their turns in the same rounds: \
         `positions-api` asked with `If-None-Match` holding the entry's `ETag` (it answers \
         `304 Not Modified`, no body), `positions-api` asked with `Accept-Encoding: gzip` (the entry's body \
         was compressed once, when it was stored; each answer adds a small uncompressed tail), and nginx \
         with `gzip on` asked the same (it compresses the cached identity body on every request, at its \
         default level 1). Before and after the runs each was asked once and had to answer as it should: \
         the 304 with the same `ETag` and no body, the gzip answers with `Content-Encoding: gzip` decoding \
         to the identity body byte for byte, and nginx's with \
         `X-Cache-Status: HIT`; the same probes, and one with `Accept-Encoding: br`, give the bytes on the \
         wire below.\n\n",
        timing.rounds, timing.seconds
    );
    for m in measured {
        render_placement(&mut s, m);
    }
    render_ratios(&mut s, measured);
    render_variants(&mut s, measured);
    render_targets(&mut s, measured);
    render_commands(&mut s, measured);
    s
}

/// One placement's table of medians.
fn render_placement(s: &mut String, m: &Measured) {
    let _ = writeln!(s, "### {}\n", capitalized(m.placement.title()));
    let mut rows = Vec::new();
    for connections in CONNECTIONS {
        for who in m.placement.contenders(connections) {
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

/// The conditional and compressed answers: their req/s against the 200
/// identity path's and nginx's, and their bytes on the wire.
fn render_variants(s: &mut String, measured: &[Measured]) {
    let Some(m) = measured.iter().find(|m| !m.wire.is_empty()) else { return };
    let _ = writeln!(
        s,
        "\n### Conditional and compressed answers\n\n\
         {}, {VARIANT_CONNECTIONS} connections, medians of the runs above. The 200 identity path is \
         `positions-api`'s row in the table above.\n",
        capitalized(m.placement.title())
    );
    let cell = |who| m.cell(VARIANT_CONNECTIONS, who);
    let (identity, not_modified, gzip, nginx_gzip, nginx) = (
        cell(Contender::Ours),
        cell(Contender::OursNotModified),
        cell(Contender::OursGzip),
        cell(Contender::NginxGzip),
        cell(Contender::Nginx),
    );
    let row = |what: &str, ours: Cell, theirs: Cell| {
        vec![
            what.to_owned(),
            ratio(ours.requests_per_sec / theirs.requests_per_sec),
            ratio(ours.p50_ms / theirs.p50_ms),
            ratio(ours.p99_ms / theirs.p99_ms),
        ]
    };
    s.push_str(&table(
        &["ours over theirs", "req/s", "p50", "p99"],
        &[
            row("304 ÷ 200 identity", not_modified, identity),
            row("gzip ÷ identity", gzip, identity),
            row("gzip ÷ nginx `gzip on`", gzip, nginx_gzip),
            row("nginx `gzip on` ÷ nginx identity", nginx_gzip, nginx),
        ],
    ));
    s.push_str(
        "\nBytes one answer takes on a keep-alive connection: the status line and headers (with the blank \
         line after them), then the body as sent (nginx's gzip answer is chunked; its framing is counted \
         with the body).\n\n",
    );
    let rows: Vec<Vec<String>> = m
        .wire
        .iter()
        .map(|w| {
            vec![
                w.what.to_owned(),
                w.status.to_string(),
                w.encoding.clone(),
                thousands(w.head_bytes as f64),
                thousands(w.body_bytes as f64),
                thousands(w.total_bytes as f64),
            ]
        })
        .collect();
    s.push_str(&table(&["answer", "status", "Content-Encoding", "head", "body", "on the wire"], &rows));
}

/// The targets of the conditional and compressed answers, pinned at
/// [`VARIANT_CONNECTIONS`]: the ratio, the limit, what it says.
const VARIANT_TARGETS: [(&str, f64, Contender, Contender); 3] = [
    ("304 req/s ≥ 1.0 × 200 identity", 1.0, Contender::OursNotModified, Contender::Ours),
    ("gzip req/s ≥ 0.9 × identity", 0.9, Contender::OursGzip, Contender::Ours),
    ("gzip req/s ≥ 1.5 × nginx `gzip on`", 1.5, Contender::OursGzip, Contender::NginxGzip),
];

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
    let mut rows = Vec::new();
    for m in measured.iter().filter(|m| !m.wire.is_empty()) {
        for (what, limit, ours, theirs) in VARIANT_TARGETS {
            let value = m.cell(VARIANT_CONNECTIONS, ours).requests_per_sec
                / m.cell(VARIANT_CONNECTIONS, theirs).requests_per_sec;
            let ok = value >= limit;
            met += usize::from(ok);
            total += 1;
            rows.push(vec![
                what.to_owned(),
                m.placement.short().to_owned(),
                VARIANT_CONNECTIONS.to_string(),
                format!("{value:.3}, {}", verdict(ok)),
            ]);
        }
    }
    if !rows.is_empty() {
        s.push_str("\nConditional and compressed answers:\n\n");
        s.push_str(&table(&["target", "cores", "connections", "ratio"], &rows));
    }
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
