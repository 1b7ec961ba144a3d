//! CPU per cached answer: how much processor time the service spends on
//! one answer from memory, against the ceiling (benchkit's bare hyper
//! server returning the same bytes).
//!
//! Throughput on a shared two-core machine moves with whatever else runs;
//! the CPU a server spends per request moves much less. So this section
//! sends a fixed number of requests over a few keep-alive connections to
//! each server in turn (pinned to core 0, one worker thread), reads the
//! server's CPU time (user + system, from `/proc/PID/stat`) before and
//! after, and divides. The servers alternate (A B A B …) and each figure
//! is the median of its rounds.
//!
//! Then, where valgrind is installed (it is installed here if missing, as
//! the other sections install their tools), the same requests under
//! callgrind: instructions per request, which do not depend on the machine's
//! load at all, and a profile per server to read with `callgrind_annotate`.

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use super::Mode;
use super::figures::{median, ratio, thousands};
use super::probe;
use super::process::{Launch, Process, relative};
use super::report::{table, verdict};
use super::servers;
use crate::tools::{self, Tool};

/// `valgrind` and its `callgrind_control`, for instructions per request.
const VALGRIND: Tool = Tool { program: "valgrind", package: "valgrind" };

/// The wallet asked for, from benchkit's `slow-upstream` with ten
/// positions: the same answer as the cached-path section's.
const WALLET: &str = "0x52908400098527886e0f7030069857d2e4169ee7";
const POSITIONS: u32 = 10;
/// Keep-alive connections, each sending its next request when answered.
const CONNECTIONS: usize = 8;
/// The target: our CPU per answer over the ceiling's.
const TARGET: f64 = 1.1;
/// How long one answer may take before the driver gives up (under
/// valgrind a request takes a few milliseconds).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// How much and how often.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Requests per measured run, over all connections.
    requests: usize,
    rounds: usize,
    /// Requests per server under callgrind, after a warm-up of as many.
    callgrind_requests: usize,
}

impl Plan {
    fn for_mode(mode: Mode) -> Self {
        match mode {
            Mode::Full => Self { requests: 40_000, rounds: 3, callgrind_requests: 4_000 },
            Mode::Quick => Self { requests: 10_000, rounds: 1, callgrind_requests: 1_000 },
        }
    }
}

/// The two servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Contender {
    Ours,
    Ceiling,
}

impl Contender {
    const ALL: [Self; 2] = [Self::Ours, Self::Ceiling];

    fn name(self) -> &'static str {
        match self {
            Self::Ours => "`positions-api`",
            Self::Ceiling => "ceiling (bare hyper)",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Self::Ours => "ours",
            Self::Ceiling => "ceiling",
        }
    }
}

/// One server's runs: CPU microseconds per request, and the wall time.
#[derive(Debug, Default)]
struct Runs {
    cpu_us_per_request: Vec<f64>,
    seconds: Vec<f64>,
}

/// Instructions per request under callgrind, and where the profile is.
#[derive(Debug)]
struct Counted {
    instructions_per_request: f64,
    profile: PathBuf,
}

/// What the callgrind part found: counts for both, or why there are none.
#[derive(Debug)]
enum Callgrind {
    Counted { ours: Counted, ceiling: Counted, commands: Vec<String> },
    Skipped(String),
}

#[derive(Debug)]
struct Measured {
    plan: Plan,
    clock_ticks: u64,
    body_bytes: usize,
    ours: Runs,
    ceiling: Runs,
    loads_during_runs: f64,
    callgrind: Callgrind,
    commands: Vec<String>,
}

pub(crate) fn run_section(mode: Mode) -> Result<String> {
    tools::ensure(&[tools::TASKSET])?;
    servers::build_release()?;
    let plan = Plan::for_mode(mode);
    let measured = measure(plan)?;
    Ok(render(&measured))
}

fn measure(plan: Plan) -> Result<Measured> {
    let dir = servers::scratch("cpu")?;
    let path = format!("/v4/positions/{WALLET}");
    let upstream = servers::slow_upstream(&dir, "0", POSITIONS)?;
    let source = format!("http://{}", upstream.addr);
    let service_env = [("POSITIONS_SOURCE", source.as_str()), ("POSITION_CACHE_TTL_SEC", "86400")];
    // On core 0 with one worker thread each (`servers` sets the service's
    // `TOKIO_WORKER_THREADS=1` and the ceiling's `--threads 1` when pinned).
    let mut service = servers::service(&dir, "positions-api", &service_env, Some(0))?;
    let body = cached_body(service.addr, &path)?;
    let body_file = dir.join("body.json");
    std::fs::write(&body_file, &body)?;
    let mut ceiling = servers::ceiling(&dir, &body_file, Some(0))?;
    let ceiling_len = probe::get(ceiling.addr, &path)?.body.len();
    ensure!(ceiling_len == body.len(), "the ceiling answers {ceiling_len} bytes, the service {}", body.len());

    let mut commands = vec![
        upstream.process.shown().to_owned(),
        service.process.shown().to_owned(),
        ceiling.process.shown().to_owned(),
    ];
    let loads_before = probe::metrics(service.addr, &["position_cache_misses_total"])?[0];
    // Warm: connections, page faults and the allocator's pools before
    // anything counts.
    for server in [&service, &ceiling] {
        drive(server.addr, &path, CONNECTIONS, plan.requests / 4)?;
    }
    let (mut ours, mut theirs) = (Runs::default(), Runs::default());
    for _ in 0..plan.rounds {
        for who in Contender::ALL {
            let (server, runs) = match who {
                Contender::Ours => (&service, &mut ours),
                Contender::Ceiling => (&ceiling, &mut theirs),
            };
            let before = cpu_ticks(server.process.pid())?;
            let started = Instant::now();
            drive(server.addr, &path, CONNECTIONS, plan.requests)?;
            let seconds = started.elapsed().as_secs_f64();
            let ticks = cpu_ticks(server.process.pid())? - before;
            let seconds_of_cpu = ticks as f64 / clock_ticks_per_second() as f64;
            runs.cpu_us_per_request.push(seconds_of_cpu * 1e6 / plan.requests as f64);
            runs.seconds.push(seconds);
        }
    }
    commands.push(format!(
        "the bench's own driver: {CONNECTIONS} keep-alive HTTP/1.1 connections, {} requests in all, each \
         connection sending its next GET {path} when answered",
        thousands(plan.requests as f64)
    ));
    let loads_during_runs = probe::metrics(service.addr, &["position_cache_misses_total"])?[0] - loads_before;
    service.process.check_running()?;
    ceiling.process.check_running()?;
    drop((service, ceiling));

    let callgrind = match tools::ensure(&[VALGRIND]) {
        Ok(()) => count_instructions(&dir, &path, &service_env, &body_file, plan)?,
        Err(e) => Callgrind::Skipped(format!("valgrind is not installed and could not be ({e:#})")),
    };
    drop(upstream);
    Ok(Measured {
        plan,
        clock_ticks: clock_ticks_per_second(),
        body_bytes: body.len(),
        ours,
        ceiling: theirs,
        loads_during_runs,
        callgrind,
        commands,
    })
}

/// The service's answer for `path` from memory: the first request loads
/// the wallet, the second must say `"cached":true`.
fn cached_body(addr: SocketAddr, path: &str) -> Result<Vec<u8>> {
    let first = probe::get(addr, path)?;
    ensure!(first.status == 200, "positions-api answered {} for {path}: {}", first.status, first.text());
    let cached = probe::get(addr, path)?;
    ensure!(
        cached.status == 200 && cached.text().contains("\"cached\":true"),
        "positions-api did not answer {path} from memory: {}",
        cached.text()
    );
    Ok(cached.body)
}

/// Both servers again, each under callgrind: warmed up, counters zeroed,
/// `plan.callgrind_requests` requests, counters dumped.
fn count_instructions(
    dir: &Path,
    path: &str,
    service_env: &[(&str, &str)],
    body_file: &Path,
    plan: Plan,
) -> Result<Callgrind> {
    let mut commands = Vec::new();
    let mut counted = Vec::new();
    for who in Contender::ALL {
        let out = dir.join(format!("{}.callgrind", who.short()));
        let launch = match who {
            Contender::Ours => {
                let mut launch = under_callgrind(&out, &servers::release_bin("positions-api"))
                    .env("LOG_FORMAT", "json")
                    .env("POSITIONS_BIND", "127.0.0.1:0")
                    .env("SHUTDOWN_GRACE_MS", "1000")
                    .env("TOKIO_WORKER_THREADS", "1");
                for (key, value) in service_env {
                    launch = launch.env(key, *value);
                }
                launch
            }
            Contender::Ceiling => under_callgrind(&out, &servers::release_bin("ceiling"))
                .arg("--body")
                .arg(body_file.to_string_lossy())
                .arg("--bind")
                .arg("127.0.0.1:0")
                .arg("--threads")
                .arg("1"),
        };
        let name = format!("{}-callgrind", who.short());
        let mut process = Process::start(&name, &launch, &dir.join(format!("{name}.log")))?;
        let addr = match who {
            Contender::Ours => process.wait_for_line("its address", |line| {
                let json: serde_json::Value = serde_json::from_str(line).ok()?;
                (json["message"] == "listening").then(|| json["addr"].as_str()?.parse().ok())?
            })?,
            Contender::Ceiling => process.wait_for_line("its address", |line| {
                line.strip_prefix("listening on ").and_then(|a| a.trim().parse().ok())
            })?,
        };
        if who == Contender::Ours {
            cached_body(addr, path)?;
        }
        drive(addr, path, CONNECTIONS, plan.callgrind_requests)?;
        callgrind_control(process.pid(), "--zero")?;
        drive(addr, path, CONNECTIONS, plan.callgrind_requests)?;
        callgrind_control(process.pid(), "--dump")?;
        process.check_running()?;
        let profile = dumped(&out)?;
        let instructions = total_instructions(&profile)?;
        commands.push(launch.shown());
        drop(process);
        counted.push(Counted { instructions_per_request: instructions / plan.callgrind_requests as f64, profile });
    }
    let ceiling = counted.pop().context("no ceiling count")?;
    let ours = counted.pop().context("no count of ours")?;
    Ok(Callgrind::Counted { ours, ceiling, commands })
}

/// `program` under callgrind, writing to `out` (dumps go to `out.1`, …).
fn under_callgrind(out: &Path, program: &Path) -> Launch {
    Launch::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(program.to_string_lossy())
}

fn callgrind_control(pid: u32, what: &str) -> Result<()> {
    let status = Command::new("callgrind_control")
        .arg(what)
        .arg(pid.to_string())
        .stdout(std::process::Stdio::null())
        .status()
        .context("could not run callgrind_control")?;
    ensure!(status.success(), "callgrind_control {what} {pid} failed ({status})");
    Ok(())
}

/// The first dump callgrind wrote for `out` (`out.1`); it writes the file
/// before `callgrind_control --dump` returns, but give it a moment.
fn dumped(out: &Path) -> Result<PathBuf> {
    let dump = PathBuf::from(format!("{}.1", out.display()));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if std::fs::read_to_string(&dump).is_ok_and(|text| text.lines().any(|l| l.starts_with("totals:"))) {
            return Ok(dump);
        }
        if Instant::now() > deadline {
            bail!("callgrind wrote no dump at {}", dump.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `totals:` line of a callgrind profile: instructions executed.
fn total_instructions(profile: &Path) -> Result<f64> {
    let text = std::fs::read_to_string(profile)?;
    parse_totals(&text).with_context(|| format!("no totals in {}", profile.display()))
}

fn parse_totals(text: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix("totals:")).and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// `requests` GETs for `path`, over `connections` keep-alive HTTP/1.1
/// connections, each sending its next request once the last is answered.
/// Every answer must be a 200 with a body.
fn drive(addr: SocketAddr, path: &str, connections: usize, requests: usize) -> Result<()> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: cargo-xtask-bench\r\n\r\n");
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..connections)
            .map(|i| {
                let share = requests / connections + usize::from(i < requests % connections);
                let request = request.as_bytes();
                scope.spawn(move || keep_alive(addr, request, share))
            })
            .collect();
        for worker in workers {
            worker.join().map_err(|_| anyhow::anyhow!("a driver thread panicked"))??;
        }
        Ok(())
    })
}

/// One connection's share of [`drive`].
fn keep_alive(addr: SocketAddr, request: &[u8], count: usize) -> Result<()> {
    let mut stream = TcpStream::connect(addr).with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    let mut buf = vec![0_u8; 16 * 1024];
    let mut filled = 0;
    for _ in 0..count {
        stream.write_all(request)?;
        // Read until the head is complete, then until the body is.
        let (head_len, body_len) = loop {
            if let Some(found) = parse_head(&buf[..filled])? {
                break found;
            }
            if filled == buf.len() {
                buf.resize(buf.len() * 2, 0);
            }
            let n = stream.read(&mut buf[filled..])?;
            ensure!(n > 0, "{addr} closed the connection mid-answer");
            filled += n;
        };
        let total = head_len + body_len;
        while filled < total {
            if total > buf.len() {
                buf.resize(total, 0);
            }
            let n = stream.read(&mut buf[filled..])?;
            ensure!(n > 0, "{addr} closed the connection mid-body");
            filled += n;
        }
        // Nothing is pipelined, so nothing follows the body.
        buf.copy_within(total..filled, 0);
        filled -= total;
    }
    Ok(())
}

/// The length of a complete response head in `bytes` and its body's
/// `Content-Length`, or `None` if the head is not all there yet. Anything
/// but a 200 with a length is an error.
fn parse_head(bytes: &[u8]) -> Result<Option<(usize, usize)>> {
    let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else { return Ok(None) };
    let head = std::str::from_utf8(&bytes[..end]).context("a response head that is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    ensure!(status.starts_with("HTTP/1.1 200 "), "expected a 200, got {status:?}");
    let length = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .context("an answer without Content-Length")?;
    Ok(Some((end + 4, length)))
}

/// A process's CPU time so far, user plus system, in clock ticks
/// (`/proc/PID/stat` fields 14 and 15: every thread of it, live or ended).
fn cpu_ticks(pid: u32) -> Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("no process {pid}"))?;
    parse_cpu_ticks(&text).with_context(|| format!("cannot read /proc/{pid}/stat: {text:?}"))
}

fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may hold spaces:
    // count from the last `)`, after which field 3 comes.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// `getconf CLK_TCK`: the unit of `/proc/PID/stat`'s times (100 on Linux
/// almost everywhere).
fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
        .unwrap_or(100)
}

/// One clock tick as a percentage of the ceiling's CPU time in one run
/// (the smaller of the two): the figures' resolution.
fn tick_share(m: &Measured) -> f64 {
    let ticks = median(&m.ceiling.cpu_us_per_request) * m.plan.requests as f64 * m.clock_ticks as f64 / 1e6;
    if ticks > 0.0 { 100.0 / ticks } else { 100.0 }
}

fn render(m: &Measured) -> String {
    let plan = m.plan;
    let mut s = format!(
        "## CPU per cached answer\n\n\
         `GET /v4/positions/{WALLET}` on loopback, a {}-byte body answered from memory by `positions-api` \
         (loaded once from benchkit's `slow-upstream`) and by the ceiling (benchkit's bare hyper server \
         returning the same bytes). Each server on core 0 with one worker thread; the load is {} requests \
         over {CONNECTIONS} keep-alive HTTP/1.1 connections, each sending its next request when answered. \
         The figure is the server's CPU time (user + system, every thread, from `/proc/PID/stat` in \
         ticks of {} ms) over the run, divided by the requests: what one answer costs the machine, which moves much \
         less with the machine's other load than requests per second do (one tick is {:.0}% of a run's \
         CPU time here, so ratios that close are alike). The servers take turns, {} round(s) after an untimed warm-up, and \
         each figure is the median of its rounds.\n\n",
        thousands(m.body_bytes as f64),
        thousands(plan.requests as f64),
        1000 / m.clock_ticks.max(1),
        tick_share(m),
        plan.rounds,
    );
    let mut rows = Vec::new();
    for (who, runs) in [(Contender::Ours, &m.ours), (Contender::Ceiling, &m.ceiling)] {
        let rounds: Vec<String> = runs.cpu_us_per_request.iter().map(|us| format!("{us:.2}")).collect();
        rows.push(vec![
            who.name().to_owned(),
            format!("{:.2} µs", median(&runs.cpu_us_per_request)),
            rounds.join(", "),
            format!("{:.2} s", median(&runs.seconds)),
        ]);
    }
    s.push_str(&table(&["server", "CPU per request (median)", "each round (µs)", "wall time (median)"], &rows));
    let cpu_ratio = median(&m.ours.cpu_us_per_request) / median(&m.ceiling.cpu_us_per_request);
    let _ = writeln!(
        s,
        "\nOurs over the ceiling: **{}** (target ≤ {TARGET}×: {}). Loads from the source during the runs: {}.\n",
        ratio(cpu_ratio),
        verdict(cpu_ratio <= TARGET),
        if m.loads_during_runs == 0.0 {
            "none, so every answer came from memory".to_owned()
        } else {
            format!("{} (the figures include answers that were not from memory)", m.loads_during_runs)
        }
    );
    s.push_str("### Instructions per request (callgrind)\n\n");
    let mut commands = m.commands.clone();
    match &m.callgrind {
        Callgrind::Counted { ours, ceiling, commands: under } => {
            let _ = writeln!(
                s,
                "Each server again, under `valgrind --tool=callgrind` with one worker thread: {} requests to \
                 warm up, counters zeroed (`callgrind_control --zero`), {} requests as above, counters \
                 dumped (`callgrind_control --dump`). Instructions executed by the whole process over those \
                 requests, divided by them: a count, not a time, the same on a busy machine as on an idle \
                 one.\n",
                thousands(plan.callgrind_requests as f64),
                thousands(plan.callgrind_requests as f64),
            );
            let rows = vec![
                vec![
                    Contender::Ours.name().to_owned(),
                    thousands(ours.instructions_per_request),
                    format!("`{}`", relative(&ours.profile)),
                ],
                vec![
                    Contender::Ceiling.name().to_owned(),
                    thousands(ceiling.instructions_per_request),
                    format!("`{}`", relative(&ceiling.profile)),
                ],
            ];
            s.push_str(&table(&["server", "instructions per request", "profile"], &rows));
            let _ = writeln!(
                s,
                "\nOurs over the ceiling: **{}** (read a profile with `callgrind_annotate --inclusive=yes FILE`).\n",
                ratio(ours.instructions_per_request / ceiling.instructions_per_request)
            );
            commands.extend(under.iter().cloned());
        }
        Callgrind::Skipped(why) => {
            let _ = writeln!(s, "Skipped: {why}.\n");
        }
    }
    s.push_str("Commands:\n\n```text\n");
    for command in &commands {
        let _ = writeln!(s, "{command}");
    }
    s.push_str("```\n\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_past_a_command_name_with_spaces() {
        let stat = "4242 (tokio worker) S 1 4242 4242 0 -1 4194560 1200 0 0 0 731 269 0 0 20 0 3 0 100 0 0";
        assert_eq!(parse_cpu_ticks(stat), Some(1000));
        assert_eq!(parse_cpu_ticks("4242 (short"), None);
    }

    #[test]
    fn a_head_is_complete_only_with_its_blank_line() {
        let head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 750\r\n\r\n{";
        assert_eq!(parse_head(head).unwrap(), Some((head.len() - 1, 750)));
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\n").unwrap(), None);
        assert!(parse_head(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").is_err());
    }

    #[test]
    fn callgrind_totals_are_read_from_the_profile() {
        let profile = "version: 1\ncmd: ceiling\nevents: Ir\nsummary: 1014\ntotals: 34567890\n";
        assert_eq!(parse_totals(profile), Some(34_567_890.0));
        assert_eq!(parse_totals("events: Ir\n"), None);
    }
}
