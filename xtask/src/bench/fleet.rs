//! A fleet: three replicas of `positions-api` on one `redis-server`, and
//! whether they behave as one cache.
//!
//! Three measurements, each on fresh servers:
//!
//! - **the day** of `realistic.rs` ([`Day`]), its requests taking the
//!   replicas in turn, against one replica taking them all: the calls that
//!   reach the upstream, the share served stale and the latency. Replicas
//!   that each load for themselves call the upstream once per replica for a
//!   wallet that goes stale; coordinated ones (a per-wallet lease in Redis)
//!   once for the fleet;
//! - **invalidation**: a wallet in every replica's memory, a `DELETE` sent
//!   to replica A, and B and C polled on kept-alive connections until one
//!   answers other than from memory (the `Cache-Status` header's
//!   `detail=memory`): the time from sending the `DELETE` to sending that
//!   poll. A itself is polled too, as the reference;
//! - **a cold stampede** over the fleet: 1,000 requests per replica for one
//!   cold wallet, released together (benchkit's `load stampede` with a URL
//!   per replica), and the upstream calls they made.
//!
//! The replicas are uncoordinated with `FLEET_COORDINATION=false` and
//! coordinated with `true`, the default. A build of the service without
//! that setting ignores the variable (unknown environment variables are
//! not read), so its "coordinated" replicas would be uncoordinated ones
//! under another name: the coordinated variant is measured only when
//! `positions-api --help` names the setting, or when `BENCH_FLEET_COORDINATED`
//! says so (`1` to measure it anyway, `0` to leave it out).

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use super::Mode;
use super::figures::{latency, percent, ratio, thousands};
use super::load::Load;
use super::realistic::{Day, DayResult, failed, upstream_calls};
use super::report::{table, verdict};
use super::servers::{self, Server, release_bin};

/// Replicas in a fleet.
const REPLICAS: usize = 3;
/// The replicas' names in the report, in the order the requests take them.
const NAMES: [&str; REPLICAS] = ["A", "B", "C"];
/// Every replica's memory tier has room for every wallet of the day, so
/// that what differs between the variants is the fleet, not evictions.
const CACHE_MAX: &str = "10000";
/// The admin token the invalidation replicas are started with.
const ADMIN_TOKEN: &str = "fleet-bench";
/// The upstream's delay while invalidations are measured: short, so that
/// the reload after a `DELETE` does not hide how fast it arrived.
const FAST_UPSTREAM_MS: &str = "0..5";
/// How long a replica is polled for before the `DELETE` counts as not
/// having reached it.
const INVALIDATION_DEADLINE: Duration = Duration::from_secs(2);
/// The report's target for the replicas that did not get the `DELETE`.
const INVALIDATION_TARGET_MS: f64 = 50.0;
/// The report's target for the coordinated fleet's upstream calls, as a
/// ratio to one replica's.
const CALLS_TARGET: f64 = 1.1;
const STAMPEDE_PER_REPLICA: usize = 1_000;
/// A fixed delay, so that the time until all are answered reads as this
/// plus the fleet's own cost.
const STAMPEDE_DELAY_MS: u32 = 300;

/// How the service is deployed in a variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fleet {
    /// One replica taking every request, with its default settings.
    One,
    /// Three replicas, `FLEET_COORDINATION=false`: each loads for itself.
    Uncoordinated,
    /// Three replicas, `FLEET_COORDINATION=true`.
    Coordinated,
}

impl Fleet {
    fn replicas(self) -> usize {
        match self {
            Self::One => 1,
            Self::Uncoordinated | Self::Coordinated => REPLICAS,
        }
    }

    /// The value of `FLEET_COORDINATION`, if the variant sets it.
    fn coordination(self) -> Option<&'static str> {
        match self {
            Self::One => None,
            Self::Uncoordinated => Some("false"),
            Self::Coordinated => Some("true"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::One => "one replica, all the traffic",
            Self::Uncoordinated => "three replicas, `FLEET_COORDINATION=false`",
            Self::Coordinated => "three replicas, coordinated (`FLEET_COORDINATION=true`)",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Self::One => "one",
            Self::Uncoordinated => "uncoordinated",
            Self::Coordinated => "coordinated",
        }
    }
}

pub(crate) fn run_section(mode: Mode) -> Result<String> {
    crate::tools::ensure(&[crate::tools::REDIS])?;
    servers::build_release()?;
    let skipped = coordinated_skipped()?;
    let fleets: Vec<Fleet> = match skipped {
        None => vec![Fleet::Uncoordinated, Fleet::Coordinated],
        Some(_) => vec![Fleet::Uncoordinated],
    };
    let (samples, rounds) = match mode {
        Mode::Full => (200, 3),
        Mode::Quick => (40, 1),
    };

    let mut stampedes = Vec::new();
    for &fleet in &fleets {
        stampedes.push(run_stampedes(fleet, rounds)?);
    }
    let mut invalidations = Vec::new();
    for &fleet in &fleets {
        // Uncoordinated replicas never hear of another's DELETE: a few
        // samples show it, each waiting out the deadline.
        let n = if fleet == Fleet::Coordinated { samples } else { 4 };
        invalidations.push(run_invalidations(fleet, n)?);
    }
    let day = fleet_day(mode);
    let mut days = vec![(Fleet::One, run_day(&day, Fleet::One)?)];
    for &fleet in &fleets {
        days.push((fleet, run_day(&day, fleet)?));
    }
    Ok(render(&day, &days, &invalidations, &stampedes, skipped.as_deref()))
}

/// Why the coordinated variant is left out, or `None` to measure it.
fn coordinated_skipped() -> Result<Option<String>> {
    match std::env::var("BENCH_FLEET_COORDINATED").as_deref() {
        Ok("1") => return Ok(None),
        Ok("0") => return Ok(Some("`BENCH_FLEET_COORDINATED=0`".to_owned())),
        Ok(other) => bail!("invalid BENCH_FLEET_COORDINATED {other:?}: expected 1 or 0"),
        Err(_) => {}
    }
    let program = release_bin("positions-api");
    let out = Command::new(&program)
        .arg("--help")
        .output()
        .with_context(|| format!("could not run {} --help", program.display()))?;
    let help = String::from_utf8_lossy(&out.stdout);
    Ok((!help.contains("FLEET_COORDINATION"))
        .then(|| "this build of `positions-api` has no `FLEET_COORDINATION` setting".to_owned()))
}

/// The day of `realistic.rs`; the quick pass is shorter than that
/// section's, since the fleets' upstream calls need a measured period long
/// enough for entries to go stale and be refreshed in it.
fn fleet_day(mode: Mode) -> Day {
    let day = Day::for_mode(Mode::Full);
    match mode {
        Mode::Full => day,
        Mode::Quick => Day { warm_up_s: 20, measured_s: 40, ..day },
    }
}

/// A fresh `redis-server` in `dir`, and `fleet`'s replicas on it, each
/// started with `env` on top of `REDIS_URL`, `POSITION_CACHE_MAX` and the
/// fleet's `FLEET_COORDINATION`.
fn start_fleet(dir: &Path, fleet: Fleet, env: &[(&str, String)]) -> Result<(Server, Vec<Server>)> {
    let redis = servers::redis(dir)?;
    let redis_url = format!("redis://{}", redis.addr);
    let mut settings: Vec<(&str, &str)> = vec![("REDIS_URL", redis_url.as_str()), ("POSITION_CACHE_MAX", CACHE_MAX)];
    if let Some(value) = fleet.coordination() {
        settings.push(("FLEET_COORDINATION", value));
    }
    settings.extend(env.iter().map(|(k, v)| (*k, v.as_str())));
    let replicas = NAMES[..fleet.replicas()]
        .iter()
        .map(|name| servers::service(dir, &format!("positions-api-{}", name.to_lowercase()), &settings, None))
        .collect::<Result<_>>()?;
    Ok((redis, replicas))
}

/// The commands that started a fleet: Redis, then each replica.
fn fleet_commands(redis: &Server, replicas: &[Server], upstream: &Server) -> Vec<String> {
    let mut commands = vec![redis.process.shown().to_owned(), upstream.process.shown().to_owned()];
    commands.extend(replicas.iter().map(|r| r.process.shown().to_owned()));
    commands
}

fn check_running(redis: &mut Server, upstream: &mut Server, replicas: &mut [Server]) -> Result<()> {
    redis.process.check_running()?;
    upstream.process.check_running()?;
    replicas.iter_mut().try_for_each(|r| r.process.check_running())
}

fn run_day(day: &Day, fleet: Fleet) -> Result<DayResult> {
    let dir = servers::scratch(&format!("fleet-day-{}", fleet.slug()))?;
    let mut upstream = day.upstream(&dir)?;
    let (mut redis, mut replicas) = start_fleet(&dir, fleet, &day.service_env(&upstream))?;
    let mut result = day.run(fleet.name(), &mut upstream, &mut replicas)?;
    redis.process.check_running()?;
    result.commands.insert(0, redis.process.shown().to_owned());
    Ok(result)
}

/// How a sample's `DELETE` names the wallet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delete {
    /// `DELETE /v4/positions/{wallet}`.
    Wallet,
    /// `DELETE /v4/positions?pattern=GLOB`, a glob matching the wallet.
    Pattern,
}

impl Delete {
    fn path(self, wallet: &str) -> String {
        match self {
            Self::Wallet => format!("/v4/positions/{wallet}"),
            // The wallet but its last digit: it matches that one wallet
            // among those cached.
            Self::Pattern => format!("/v4/positions?pattern={}*", &wallet[..wallet.len() - 1]),
        }
    }

    fn shown(self) -> &'static str {
        match self {
            Self::Wallet => "`DELETE /v4/positions/{wallet}`",
            Self::Pattern => "`DELETE /v4/positions?pattern=…*`",
        }
    }
}

/// One invalidation.
#[derive(Debug)]
struct Sample {
    kind: Delete,
    /// From sending the `DELETE` to its answer, in ms.
    answered_ms: f64,
    /// For each replica, from sending the `DELETE` to sending the first
    /// poll not answered from memory, in ms; `None` if none came within
    /// [`INVALIDATION_DEADLINE`].
    reached_ms: [Option<f64>; REPLICAS],
}

/// A fleet's invalidations.
#[derive(Debug)]
struct Invalidations {
    fleet: Fleet,
    samples: Vec<Sample>,
    /// The mean time of one poll of B or C, in ms: the resolution.
    poll_ms: f64,
    commands: Vec<String>,
}

/// `samples` invalidations on a fresh fleet, half of them by pattern.
fn run_invalidations(fleet: Fleet, samples: usize) -> Result<Invalidations> {
    let dir = servers::scratch(&format!("fleet-invalidation-{}", fleet.slug()))?;
    let mut upstream = servers::slow_upstream(&dir, FAST_UPSTREAM_MS, 10)?;
    let env = [("POSITIONS_SOURCE", format!("http://{}", upstream.addr)), ("ADMIN_TOKEN", ADMIN_TOKEN.to_owned())];
    let (mut redis, mut replicas) = start_fleet(&dir, fleet, &env)?;
    let mut polls: Vec<Conn> = replicas.iter().map(|r| Conn::open(r.addr)).collect::<Result<_>>()?;
    let mut admin = Conn::open(replicas[0].addr)?;
    let (mut poll_time, mut poll_count) = (Duration::ZERO, 0_u32);
    let mut done = Vec::with_capacity(samples);
    for i in 0..samples {
        let wallet = format!("0x{:040x}", 0xf1ee_7000_u64 + i as u64);
        let kind = if i % 2 == 0 { Delete::Wallet } else { Delete::Pattern };
        let get = format!("/v4/positions/{wallet}");
        cache_everywhere(&mut polls, &get)?;
        let barrier = Barrier::new(REPLICAS + 1);
        let (sent, answered, outcomes) = std::thread::scope(|scope| -> Result<_> {
            let pollers: Vec<_> = polls
                .iter_mut()
                .map(|conn| {
                    let (barrier, get) = (&barrier, get.as_str());
                    scope.spawn(move || {
                        barrier.wait();
                        conn.poll_until_not_memory(get)
                    })
                })
                .collect();
            barrier.wait();
            let sent = Instant::now();
            let reply = admin.send("DELETE", &kind.path(&wallet), Some(ADMIN_TOKEN));
            let answered = sent.elapsed();
            let outcomes: Vec<Result<Poll>> = pollers
                .into_iter()
                .map(|p| p.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a poller panicked"))))
                .collect();
            let reply = reply?;
            ensure!(reply.status == 200, "DELETE {} answered {}", kind.path(&wallet), reply.status);
            Ok((sent, answered, outcomes))
        })?;
        let mut reached_ms = [None; REPLICAS];
        for (r, outcome) in outcomes.into_iter().enumerate() {
            let poll = outcome?;
            if r > 0 {
                poll_time += poll.busy;
                poll_count += poll.polls;
            }
            reached_ms[r] = poll.first_not_memory.map(|at| ms(at.saturating_duration_since(sent)));
        }
        done.push(Sample { kind, answered_ms: ms(answered), reached_ms });
    }
    check_running(&mut redis, &mut upstream, &mut replicas)?;
    let mut commands = fleet_commands(&redis, &replicas, &upstream);
    commands.push(format!(
        "# per sample: GET {get} on each replica until memory answers; then, together, \
         curl -X DELETE -H 'Authorization: Bearer {ADMIN_TOKEN}' '{delete}' and GETs of each replica until one is not from memory",
        get = replicas[0].url("/v4/positions/{wallet}"),
        delete = replicas[0].url("/v4/positions/{wallet}"),
    ));
    Ok(Invalidations { fleet, samples: done, poll_ms: ms(poll_time) / f64::from(poll_count.max(1)), commands })
}

/// Requests `get` of every replica until, in one pass, each answers from
/// memory: a replica that stores the wallet after another may make the
/// others drop theirs, so one pass where all hold it is the start line.
fn cache_everywhere(conns: &mut [Conn], get: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut everywhere = true;
        for conn in conns.iter_mut() {
            everywhere &= conn.send("GET", get, None)?.is_memory_hit();
        }
        if everywhere {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "GET {get} was not answered from every replica's memory within 10 s");
    }
}

/// A fleet's stampedes.
#[derive(Debug)]
struct Stampedes {
    fleet: Fleet,
    rounds: Vec<Stampede>,
    commands: Vec<String>,
}

#[derive(Debug)]
struct Stampede {
    wallet: String,
    load: Load,
    upstream_calls: f64,
}

/// `rounds` stampedes on a fresh fleet, each for a wallet none has cached.
fn run_stampedes(fleet: Fleet, rounds: u64) -> Result<Stampedes> {
    let dir = servers::scratch(&format!("fleet-stampede-{}", fleet.slug()))?;
    let mut upstream = servers::slow_upstream(&dir, &STAMPEDE_DELAY_MS.to_string(), 10)?;
    let env = [("POSITIONS_SOURCE", format!("http://{}", upstream.addr))];
    let (mut redis, mut replicas) = start_fleet(&dir, fleet, &env)?;
    let mut done = Vec::new();
    for round in 0..rounds {
        let wallet = format!("0x{:040x}", 0xf1ee_75a3_u64 + round);
        let mut args = vec!["stampede".to_owned()];
        for replica in &replicas {
            args.extend(["--url".to_owned(), replica.url(&format!("/v4/positions/{wallet}"))]);
        }
        args.extend(["--requests".to_owned(), (STAMPEDE_PER_REPLICA * replicas.len()).to_string()]);
        let calls_before = upstream_calls(&upstream)?;
        let load = Load::run(&args)?;
        let upstream_calls = upstream_calls(&upstream)? - calls_before;
        done.push(Stampede { wallet, load, upstream_calls });
    }
    check_running(&mut redis, &mut upstream, &mut replicas)?;
    let mut commands = fleet_commands(&redis, &replicas, &upstream);
    commands.extend(done.iter().map(|s| s.load.shown.clone()));
    Ok(Stampedes { fleet, rounds: done, commands })
}

/// One keep-alive HTTP/1.1 connection to a replica. `probe.rs` opens a
/// connection per request, which would add a handshake to every poll and
/// coarsen the invalidation figures; this keeps one open.
#[derive(Debug)]
struct Conn {
    addr: SocketAddr,
    reader: BufReader<TcpStream>,
}

/// An answer, as far as polling cares.
#[derive(Debug)]
struct Reply {
    status: u16,
    cache_status: String,
}

impl Reply {
    /// Whether the service answered from its memory tier.
    fn is_memory_hit(&self) -> bool {
        self.status == 200 && self.cache_status.split(';').any(|part| part.trim() == "detail=memory")
    }
}

/// What a poller saw.
#[derive(Debug)]
struct Poll {
    /// When the first poll not answered from memory was sent.
    first_not_memory: Option<Instant>,
    polls: u32,
    /// The time spent polling.
    busy: Duration,
}

impl Conn {
    fn open(addr: SocketAddr) -> Result<Self> {
        let stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(Self { addr, reader: BufReader::new(stream) })
    }

    /// Sends `METHOD path` (with the admin token as a bearer token if
    /// given) and reads the whole answer.
    fn send(&mut self, method: &str, path: &str, token: Option<&str>) -> Result<Reply> {
        let addr = self.addr;
        let mut exchange = || -> Result<Reply> {
            let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
            let request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}\r\n");
            self.reader.get_mut().write_all(request.as_bytes())?;
            let mut line = String::new();
            self.reader.read_line(&mut line)?;
            let status = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).context("no status line")?;
            let (mut length, mut cache_status) = (None, String::new());
            loop {
                line.clear();
                ensure!(self.reader.read_line(&mut line)? > 0, "the connection closed mid-answer");
                let Some((name, value)) = line.trim_end().split_once(':') else { break };
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse::<usize>().ok();
                } else if name.eq_ignore_ascii_case("cache-status") {
                    value.trim().clone_into(&mut cache_status);
                }
            }
            let mut body = vec![0; length.context("no content-length")?];
            self.reader.read_exact(&mut body)?;
            Ok(Reply { status, cache_status })
        };
        exchange().with_context(|| format!("{method} http://{addr}{path}"))
    }

    /// Polls `get` until an answer is not from memory, or the deadline.
    fn poll_until_not_memory(&mut self, get: &str) -> Result<Poll> {
        let start = Instant::now();
        let mut polls = 0;
        while start.elapsed() < INVALIDATION_DEADLINE {
            let sent = Instant::now();
            let reply = self.send("GET", get, None)?;
            polls += 1;
            if !reply.is_memory_hit() {
                ensure!(reply.status == 200, "GET {get} answered {}", reply.status);
                return Ok(Poll { first_not_memory: Some(sent), polls, busy: start.elapsed() });
            }
        }
        Ok(Poll { first_not_memory: None, polls, busy: start.elapsed() })
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

/// The `p`-th percentile (0 to 100) by nearest rank; 0 for none.
fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return 0.0;
    }
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "a rank within 1..=len")]
    let rank = ((p / 100.0 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn render(
    day: &Day,
    days: &[(Fleet, DayResult)],
    invalidations: &[Invalidations],
    stampedes: &[Stampedes],
    skipped: Option<&str>,
) -> String {
    let mut s = format!(
        "## A fleet of three replicas\n\n\
         Three replicas of `positions-api` on one `redis-server`, each with `REDIS_URL` (the same namespace) \
         and `POSITION_CACHE_MAX={CACHE_MAX}`: uncoordinated (`FLEET_COORDINATION=false`: each replica loads \
         for itself) and coordinated (`FLEET_COORDINATION=true`, the default: one replica loads a wallet under \
         a lease in Redis while the others wait for its result, and invalidations reach every replica's memory \
         by pub/sub), next to one replica taking all the traffic. Fresh servers for every measurement.\n\n"
    );
    if let Some(reason) = skipped {
        let _ = writeln!(s, "> The coordinated fleet was not measured in this run: {reason}.\n");
    }
    render_day(&mut s, day, days, skipped);
    render_invalidations(&mut s, invalidations, skipped);
    render_stampedes(&mut s, stampedes, skipped);
    s.push_str("### Commands\n\n```sh\n");
    for (fleet, r) in days {
        let _ = writeln!(s, "# the day: {}", fleet.name().replace('`', ""));
        r.commands.iter().for_each(|c| {
            let _ = writeln!(s, "{c}");
        });
    }
    for inv in invalidations {
        let _ = writeln!(s, "# invalidation: {}", inv.fleet.name().replace('`', ""));
        inv.commands.iter().for_each(|c| {
            let _ = writeln!(s, "{c}");
        });
    }
    for st in stampedes {
        let _ = writeln!(s, "# stampede: {}", st.fleet.name().replace('`', ""));
        st.commands.iter().for_each(|c| {
            let _ = writeln!(s, "{c}");
        });
    }
    s.push_str("```\n\n");
    s
}

fn render_day(s: &mut String, day: &Day, days: &[(Fleet, DayResult)], skipped: Option<&str>) {
    let _ = writeln!(
        s,
        "### The realistic day over the fleet\n\n\
         The day of *A realistic day* above: {wallets} wallets asked for Zipf({alpha:.1}), Poisson arrivals \
         at {rate} requests/s in all, `slow-upstream` answering after {delay} ms, TTL {ttl} s, each replica \
         first filled with every wallet while the upstream answers at once (the replicas at the same time, so \
         that their entries are as old as the lone replica's), then a {warm} s warm-up and \
         {measured} s measured. With three replicas the requests take them in turn (the driver's \
         `--url-prefix` repeated), so each sees the same popularity at a third of the rate.\n",
        wallets = thousands(f64::from(day.wallets)),
        alpha = day.alpha,
        rate = day.rate,
        delay = day.upstream_delay_ms.replace("..", "–"),
        ttl = day.ttl_s,
        warm = day.warm_up_s,
        measured = day.measured_s,
    );
    let per_s = |r: &DayResult| r.upstream_calls / f64::from(day.measured_s);
    let one = days.iter().find(|(f, _)| *f == Fleet::One).map(|(_, r)| per_s(r));
    let ratio_to_one = |r: &DayResult| one.filter(|o| *o > 0.0).map(|o| per_s(r) / o);
    let mut rows = Vec::new();
    for (fleet, r) in days {
        let m = &r.measured;
        let requests = m.requests() as f64;
        let figure = |p: &str| m.number(p).map_or_else(|_| "–".to_owned(), latency);
        rows.push(vec![
            fleet.name().to_owned(),
            fleet.replicas().to_string(),
            thousands(requests),
            figure("/latency_ms/all/p50_ms"),
            figure("/latency_ms/all/p99_ms"),
            m.number("/cached").map_or_else(|_| "–".to_owned(), |c| percent(c, requests)),
            m.number("/stale").map_or_else(|_| "–".to_owned(), |c| percent(c, requests)),
            format!("{:.1}", per_s(r)),
            ratio_to_one(r).map_or_else(|| "–".to_owned(), |x| format!("{}×", ratio(x))),
            format!("{:.1}", r.refreshes / f64::from(day.measured_s)),
            failed(m),
        ]);
    }
    s.push_str(&table(
        &[
            "variant",
            "replicas",
            "requests",
            "p50",
            "p99",
            "hit rate",
            "served stale",
            "upstream calls/s",
            "to one replica's",
            "background refreshes/s",
            "not 200",
        ],
        &rows,
    ));
    s.push_str(
        "\n*Upstream calls/s* counts what reached `slow-upstream` during the measured period (loads and \
         background refreshes of every replica); *to one replica's* is its ratio to the first row's. \
         *Served stale*: answers with `\"stale\": true`, of all requests; *background refreshes/s*: the \
         replicas' `position_cache_refresh_triggers_total`, summed.\n\n",
    );
    for (fleet, r) in days {
        let Some(x) = ratio_to_one(r) else { continue };
        match fleet {
            Fleet::One => {}
            Fleet::Uncoordinated => {
                let _ = writeln!(
                    s,
                    "- {}: upstream calls {}× one replica's (at most {REPLICAS}×, every replica refreshing each \
                     wallet that goes stale; less where a wallet is asked of fewer replicas within its TTL).",
                    fleet.name(),
                    ratio(x)
                );
            }
            Fleet::Coordinated => {
                let _ = writeln!(
                    s,
                    "- {}: upstream calls ≤ {CALLS_TARGET}× one replica's: {}×, {}.",
                    fleet.name(),
                    ratio(x),
                    verdict(x <= CALLS_TARGET)
                );
            }
        }
    }
    if let Some(reason) = skipped {
        let _ = writeln!(s, "- {}: not measured ({reason}).", Fleet::Coordinated.name());
    }
    s.push('\n');
}

fn render_invalidations(s: &mut String, invalidations: &[Invalidations], skipped: Option<&str>) {
    let resolution: Vec<f64> = invalidations.iter().map(|i| i.poll_ms).collect();
    let _ = writeln!(
        s,
        "### Invalidation across replicas\n\n\
         Replicas started with `ADMIN_TOKEN`, in front of a `slow-upstream` answering in {} ms \
         (so that a reload does not hide the invalidation). For each sample, a wallet of its own is requested \
         from every replica until all three answer from memory (`Cache-Status: …; detail=memory`); then a \
         `DELETE` is sent to replica A while A, B and C are each polled with `GET` on a kept-alive connection, \
         in a thread of their own. A figure is the time from sending the `DELETE` to sending the first poll \
         that was not answered from memory; it is late by at most one poll, which took {} on average (B and \
         C, in the table's order of variants). Half the samples delete the wallet, half a pattern matching it \
         (its address but the last digit, then `*`). A poll gives up after {} s. A is the reference: it \
         handled the `DELETE` itself.\n",
        FAST_UPSTREAM_MS.replace("..", "–"),
        resolution.iter().map(|p| latency(*p)).collect::<Vec<_>>().join(", "),
        INVALIDATION_DEADLINE.as_secs(),
    );
    let mut rows = Vec::new();
    for inv in invalidations {
        for kind in [Delete::Wallet, Delete::Pattern] {
            let samples: Vec<&Sample> = inv.samples.iter().filter(|x| x.kind == kind).collect();
            let answered: Vec<f64> = samples.iter().map(|x| x.answered_ms).collect();
            let reached = |r: usize| -> Vec<f64> { samples.iter().filter_map(|x| x.reached_ms[r]).collect() };
            let cell = |values: &[f64], p: f64| {
                if values.is_empty() { "–".to_owned() } else { latency(percentile(values, p)) }
            };
            let (a, b, c) = (reached(0), reached(1), reached(2));
            rows.push(vec![
                inv.fleet.name().to_owned(),
                kind.shown().to_owned(),
                samples.len().to_string(),
                cell(&answered, 50.0),
                cell(&a, 50.0),
                cell(&b, 50.0),
                cell(&b, 99.0),
                cell(&c, 50.0),
                cell(&c, 99.0),
                (2 * samples.len() - b.len() - c.len()).to_string(),
            ]);
        }
    }
    s.push_str(&table(
        &[
            "variant",
            "DELETE",
            "samples",
            "answered, p50",
            "A (got it), p50",
            "B, p50",
            "B, p99",
            "C, p50",
            "C, p99",
            &format!("B or C not within {} s", INVALIDATION_DEADLINE.as_secs()),
        ],
        &rows,
    ));
    s.push_str(
        "\n*Answered*: from sending the `DELETE` to A's answer. A figure of 0 means the poll was sent as \
         the `DELETE` was, and reached the replica after it.\n\n",
    );
    if let Some(inv) = invalidations.iter().find(|i| i.fleet == Fleet::Coordinated) {
        let others: Vec<f64> = inv.samples.iter().flat_map(|x| x.reached_ms[1..].iter().copied()).flatten().collect();
        let missing = inv.samples.len() * (REPLICAS - 1) - others.len();
        let p99 = percentile(&others, 99.0);
        let _ = writeln!(
            s,
            "- {}: B and C no longer answer from memory, p99 < {INVALIDATION_TARGET_MS:.0} ms: {}{}, {}.",
            inv.fleet.name(),
            latency(p99),
            if missing > 0 { format!(" ({missing} never within the deadline)") } else { String::new() },
            verdict(missing == 0 && p99 < INVALIDATION_TARGET_MS)
        );
    }
    if let Some(reason) = skipped {
        let _ = writeln!(s, "- {}: not measured ({reason}).", Fleet::Coordinated.name());
    }
    s.push('\n');
}

fn render_stampedes(s: &mut String, stampedes: &[Stampedes], skipped: Option<&str>) {
    let _ = writeln!(
        s,
        "### Cold stampede across the fleet\n\n\
         {} concurrent requests per replica for one wallet none has cached ({} in all), each on its own \
         connection, opened beforehand and released together (benchkit's `load stampede`, one `--url` per \
         replica). The upstream answers after a fixed {STAMPEDE_DELAY_MS} ms. *All answered* counts from the \
         release to the last answer.\n",
        thousands(STAMPEDE_PER_REPLICA as f64),
        thousands((STAMPEDE_PER_REPLICA * REPLICAS) as f64),
    );
    let mut rows = Vec::new();
    for st in stampedes {
        for (i, round) in st.rounds.iter().enumerate() {
            let figure = |p: &str| round.load.number(p).map_or_else(|_| "–".to_owned(), latency);
            rows.push(vec![
                st.fleet.name().to_owned(),
                (i + 1).to_string(),
                format!("`{}`", round.wallet),
                thousands(round.load.requests() as f64),
                thousands(round.load.status(200) as f64),
                format!("{}", round.upstream_calls),
                figure("/latency_ms/all/p50_ms"),
                figure("/all_answered_ms"),
            ]);
        }
    }
    s.push_str(&table(
        &["variant", "run", "wallet", "requests", "answered 200", "upstream calls", "p50", "all answered"],
        &rows,
    ));
    s.push('\n');
    for st in stampedes {
        let failures: Vec<String> =
            st.rounds.iter().filter(|r| r.load.failed() > 0).map(|r| r.load.failures()).collect();
        if !failures.is_empty() {
            let _ = writeln!(s, "- {}: not answered 200: {}.", st.fleet.name(), failures.join("; "));
        }
        let calls: Vec<String> = st.rounds.iter().map(|r| format!("{}", r.upstream_calls)).collect();
        match st.fleet {
            Fleet::Coordinated => {
                let one = st.rounds.iter().all(|r| (r.upstream_calls - 1.0).abs() < f64::EPSILON);
                let _ = writeln!(
                    s,
                    "- {}: one upstream call per stampede: {}, {}.",
                    st.fleet.name(),
                    calls.join(", "),
                    verdict(one)
                );
            }
            Fleet::Uncoordinated | Fleet::One => {
                let _ = writeln!(
                    s,
                    "- {}: upstream calls per stampede: {} (one per replica, {REPLICAS}, expected without coordination).",
                    st.fleet.name(),
                    calls.join(", ")
                );
            }
        }
    }
    if let Some(reason) = skipped {
        let _ = writeln!(s, "- {}: not measured ({reason}).", Fleet::Coordinated.name());
    }
    s.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let values: Vec<f64> = (1..=200).map(f64::from).collect();
        assert!((percentile(&values, 50.0) - 100.0).abs() < f64::EPSILON);
        assert!((percentile(&values, 99.0) - 198.0).abs() < f64::EPSILON);
        assert!((percentile(&values, 100.0) - 200.0).abs() < f64::EPSILON);
        assert!((percentile(&[7.0], 99.0) - 7.0).abs() < f64::EPSILON);
        assert!(percentile(&[], 50.0).abs() < f64::EPSILON);
    }

    #[test]
    fn a_pattern_delete_matches_its_wallet() {
        let wallet = format!("0x{:040x}", 0xf1ee_7001_u64);
        assert_eq!(Delete::Wallet.path(&wallet), format!("/v4/positions/{wallet}"));
        let path = Delete::Pattern.path(&wallet);
        let glob = path.strip_prefix("/v4/positions?pattern=").expect("a pattern query");
        assert_eq!(glob.len(), wallet.len());
        assert!(glob.ends_with('*') && wallet.starts_with(glob.trim_end_matches('*')));
    }

    #[test]
    fn memory_hits_are_read_from_cache_status() {
        let reply = |status, cache_status: &str| Reply { status, cache_status: cache_status.to_owned() };
        assert!(reply(200, "positions-api; hit; ttl=899; detail=memory").is_memory_hit());
        assert!(!reply(200, "positions-api; hit; ttl=899; detail=redis").is_memory_hit());
        assert!(!reply(200, "positions-api; fwd=miss; stored").is_memory_hit());
        assert!(!reply(200, "positions-api; hit; ttl=-5; detail=memory-stale-if-error").is_memory_hit());
        assert!(!reply(503, "positions-api; hit; ttl=1; detail=memory").is_memory_hit());
    }
}
