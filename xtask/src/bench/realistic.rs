//! A realistic day, compressed: `positions-api` in front of benchkit's
//! `slow-upstream` (200 to 500 ms per wallet), 10,000 wallets asked for
//! Zipf(1.0) by independent users (Poisson arrivals at a fixed rate), and a
//! TTL short enough that entries go stale and are refreshed during the run.
//!
//! Each variant is one call of [`run_day`] with the service's extra
//! settings, on a fresh upstream and a fresh service. A day starts from a
//! cache that has been running: the service is first asked once for every
//! wallet while the upstream answers at once (a cold start through a
//! 200-500 ms upstream would take minutes, and under Zipf(1.0) a tenth of
//! requests go to wallets that even 30,000 requests have not touched, so a
//! short run from cold measures the cold start and not the day). Then the
//! upstream turns slow, a warm-up lets the memory tier settle (reported
//! apart), and the measured period follows. The figures are the report's:
//! latency percentiles, the hit rate, the share served stale and the calls
//! reaching the upstream, next to its targets (cached answers under 10 ms,
//! p95 under 120 ms).
//!
//! The variant with Redis runs the same day with `REDIS_URL` pointing at a
//! fresh `redis-server` of its own: the fill leaves every wallet in Redis,
//! so the wallets that do not fit in memory are a Redis read away instead
//! of an upstream call.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Result, ensure};

use super::Mode;
use super::figures::{latency, percent, thousands};
use super::load::Load;
use super::report::{table, verdict};
use super::servers::Server;
use super::{probe, servers};

/// The day's workload, the same for every variant (and for the fleet's
/// day, `fleet.rs`, which spreads it over several replicas).
#[derive(Debug, Clone, Copy)]
pub(super) struct Day {
    pub(super) wallets: u32,
    pub(super) alpha: f64,
    /// Requests per second, Poisson arrivals.
    pub(super) rate: u32,
    pub(super) ttl_s: u32,
    pub(super) warm_up_s: u32,
    pub(super) measured_s: u32,
    pub(super) upstream_delay_ms: &'static str,
    pub(super) positions: u32,
}

impl Day {
    pub(super) fn for_mode(mode: Mode) -> Self {
        // 100 requests per second keeps refreshes within what the default
        // REFRESH_CONCURRENCY (32 loads of 200-500 ms: about 90 a second)
        // can do, so the figures show the cache and not an overloaded
        // upstream queue.
        let base = Self {
            wallets: 10_000,
            alpha: 1.0,
            rate: 100,
            ttl_s: 30,
            warm_up_s: 30,
            measured_s: 90,
            upstream_delay_ms: "200..500",
            positions: 10,
        };
        match mode {
            Mode::Full => base,
            // What the fill loaded goes stale about 5 s into the measured
            // period, so refreshes still happen in a short pass.
            Mode::Quick => Self { ttl_s: 8, warm_up_s: 3, measured_s: 10, ..base },
        }
    }

    /// `load zipf` for `seconds`, its requests taking `prefixes` in turn.
    fn load_args(&self, prefixes: &[String], seconds: u32, seed: u32) -> Vec<String> {
        let mut args = vec!["zipf".to_owned()];
        for prefix in prefixes {
            args.extend(["--url-prefix".to_owned(), prefix.clone()]);
        }
        args.extend(
            [
                "--wallets",
                &self.wallets.to_string(),
                "--alpha",
                &self.alpha.to_string(),
                "--rate",
                &self.rate.to_string(),
                "--duration",
                &format!("{seconds}s"),
                "--seed",
                &seed.to_string(),
            ]
            .map(str::to_owned),
        );
        args
    }

    /// A fresh `slow-upstream` for the day, in `dir`.
    pub(super) fn upstream(&self, dir: &Path) -> Result<Server> {
        servers::slow_upstream(dir, self.upstream_delay_ms, self.positions)
    }

    /// The settings a service needs for the day behind `upstream`:
    /// `POSITIONS_SOURCE` and `POSITION_CACHE_TTL_SEC`.
    pub(super) fn service_env(&self, upstream: &Server) -> Vec<(&'static str, String)> {
        vec![
            ("POSITIONS_SOURCE", format!("http://{}", upstream.addr)),
            ("POSITION_CACHE_TTL_SEC", self.ttl_s.to_string()),
        ]
    }

    /// Requests every wallet once from the service at `prefix`; returns the
    /// command.
    fn fill(&self, prefix: &str) -> Result<String> {
        let fill = Load::run(&[
            "sweep".into(),
            "--url-prefix".into(),
            prefix.to_owned(),
            "--wallets".into(),
            self.wallets.to_string(),
            // Least popular first, so that a memory tier too small for all
            // of them ends up holding the most popular, as a day of traffic
            // leaves an LRU.
            "--reverse".into(),
            "--concurrency".into(),
            "16".into(),
        ])?;
        ensure!(fill.failed() == 0, "filling the cache failed: {}", fill.failures());
        Ok(fill.shown)
    }

    /// Runs the day against `services`, started with [`Day::service_env`]
    /// in front of `upstream`, the requests taking them in turn; `name`
    /// labels it in the report. Each service is first filled with every
    /// wallet (the day before) while the upstream answers at once.
    pub(super) fn run(&self, name: &str, upstream: &mut Server, services: &mut [Server]) -> Result<DayResult> {
        let prefixes: Vec<String> = services.iter().map(|s| s.url("/v4/positions/")).collect();

        // Yesterday: every wallet fetched once, quickly, by each service.
        // Several services are filled at the same time, so that their
        // entries are as old as a lone service's when the day starts and
        // go stale at the same point of it.
        let quick = probe::post(upstream.addr, "/delay?ms=0")?;
        let fills = std::thread::scope(|scope| {
            let sweeps: Vec<_> = prefixes.iter().map(|prefix| scope.spawn(|| self.fill(prefix))).collect();
            sweeps
                .into_iter()
                .map(|sweep| sweep.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a fill panicked"))))
                .collect::<Result<Vec<String>>>()
        })?;
        let slow_path = format!("/delay?ms={}", self.upstream_delay_ms);
        let slow = probe::post(upstream.addr, &slow_path)?;
        ensure!(quick.status == 200 && slow.status == 200, "slow-upstream refused a new delay");

        let warm_up = Load::run(&self.load_args(&prefixes, self.warm_up_s, 1))?;
        probe::post(upstream.addr, "/stats/reset-peak")?;
        let calls_before = upstream_calls(upstream)?;
        let refreshes_before = refreshes(services)?;
        let eager_before = counter(services, "position_cache_eager_refreshes_total")?;
        let measured = Load::run(&self.load_args(&prefixes, self.measured_s, 2))?;
        let stats = probe::json(upstream.addr, "/stats")?;
        let refreshes = refreshes(services)? - refreshes_before;
        let eager_refreshes = counter(services, "position_cache_eager_refreshes_total")? - eager_before;
        for service in services.iter_mut() {
            service.process.check_running()?;
        }
        upstream.process.check_running()?;
        ensure!(measured.requests() > 0, "the day sent no requests");

        let mut commands = vec![upstream.process.shown().to_owned()];
        commands.extend(services.iter().map(|s| s.process.shown().to_owned()));
        commands.push(format!("curl -X POST 'http://{}/delay?ms=0'", upstream.addr));
        commands.extend(fills);
        commands.push(format!("curl -X POST 'http://{}{slow_path}'", upstream.addr));
        commands.extend([warm_up.shown.clone(), measured.shown.clone()]);
        Ok(DayResult {
            name: name.to_owned(),
            upstream_calls: stats["position_requests"].as_f64().unwrap_or(0.0) - calls_before,
            upstream_max_in_flight: stats["max_in_flight"].as_f64().unwrap_or(0.0),
            refreshes,
            eager_refreshes,
            commands,
            warm_up,
            measured,
        })
    }
}

/// The calls that reached `upstream` (benchkit's `slow-upstream`) so far.
pub(super) fn upstream_calls(upstream: &Server) -> Result<f64> {
    Ok(probe::json(upstream.addr, "/stats")?["position_requests"].as_f64().unwrap_or(0.0))
}

/// The background refreshes `services` have started so far, together.
fn refreshes(services: &[Server]) -> Result<f64> {
    counter(services, "position_cache_refresh_triggers_total")
}

/// The sum of one counter over `services`.
fn counter(services: &[Server], name: &str) -> Result<f64> {
    let mut total = 0.0;
    for service in services {
        total += probe::metrics(service.addr, &[name])?[0];
    }
    Ok(total)
}

/// One variant's day.
#[derive(Debug)]
pub(super) struct DayResult {
    pub(super) name: String,
    pub(super) warm_up: Load,
    pub(super) measured: Load,
    /// Calls that reached the upstream during the measured period.
    pub(super) upstream_calls: f64,
    pub(super) upstream_max_in_flight: f64,
    pub(super) refreshes: f64,
    /// Of those, the eager refreshes.
    pub(super) eager_refreshes: f64,
    /// The commands that ran the day, in order.
    pub(super) commands: Vec<String>,
}

pub(crate) fn run_section(mode: Mode) -> Result<String> {
    crate::tools::ensure(&[crate::tools::REDIS])?;
    servers::build_release()?;
    let day = Day::for_mode(mode);
    let results = [
        run_day(&day, "memory only, `POSITION_CACHE_MAX=2000` (the default)", &[("POSITION_CACHE_MAX", "2000")])?,
        run_day(&day, EAGER_OFF, &[("POSITION_CACHE_MAX", "10000"), ("POSITION_CACHE_EAGER_REFRESH", "false")])?,
        run_day(&day, EAGER_ON, &[("POSITION_CACHE_MAX", "10000"), ("POSITION_CACHE_EAGER_REFRESH", "true")])?,
        run_day_with_redis(&day, "memory + Redis, `POSITION_CACHE_MAX=2000`", &[("POSITION_CACHE_MAX", "2000")])?,
    ];
    let restarts =
        [run_restart(&day, Warm::Cold)?, run_restart(&day, Warm::FromRedis)?, run_restart(&day, Warm::FromSnapshot)?];
    let mut s = render(&day, &results);
    render_restarts(&mut s, &day, &restarts);
    Ok(s)
}

/// What a restarted replica warms from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Warm {
    Cold,
    FromRedis,
    FromSnapshot,
}

impl Warm {
    const fn name(self) -> &'static str {
        match self {
            Self::Cold => "cold: memory only, nothing to warm from",
            Self::FromRedis => "warm from Redis (`REDIS_URL`)",
            Self::FromSnapshot => "warm from a snapshot (`POSITION_CACHE_SNAPSHOT_PATH`, no Redis)",
        }
    }
}

/// A restart in the middle of the day.
#[derive(Debug)]
struct Restart {
    warm: Warm,
    steady: Load,
    after: Load,
    /// From the second start to `/readyz` answering 200.
    ready_after: std::time::Duration,
    commands: Vec<String>,
}

/// The day's fill and one measured period on a replica with room for
/// every wallet, then a graceful restart (SIGTERM, which saves what it
/// warms from), then the first `measured_s` after `/readyz` said ready.
fn run_restart(day: &Day, warm: Warm) -> Result<Restart> {
    let dir = servers::scratch(&format!("realistic-restart-{warm:?}"))?;
    let mut upstream = day.upstream(&dir)?;
    let day_env = day.service_env(&upstream);
    let redis = if warm == Warm::FromRedis { Some(servers::redis(&dir)?) } else { None };
    let redis_url = redis.as_ref().map(|r| format!("redis://{}", r.addr));
    let snapshot = dir.join("warm.snapshot");
    let snapshot = snapshot.to_string_lossy().into_owned();
    let mut settings: Vec<(&str, &str)> = day_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    settings.push(("POSITION_CACHE_MAX", "10000"));
    match (&redis_url, warm) {
        (Some(url), _) => settings.push(("REDIS_URL", url)),
        (None, Warm::FromSnapshot) => settings.push(("POSITION_CACHE_SNAPSHOT_PATH", &snapshot)),
        _ => {}
    }
    let first = servers::service(&dir, "positions-api", &settings, None)?;
    let steady = day.run(warm.name(), &mut upstream, &mut [first])?;
    let mut commands = steady.commands;
    if let Some(redis) = &redis {
        commands.insert(0, redis.process.shown().to_owned());
    }
    // `day.run` dropped the first replica: SIGTERM, drained, state saved.
    let started = std::time::Instant::now();
    let mut second = servers::service(&dir, "positions-api-restarted", &settings, None)?;
    loop {
        if probe::get(second.addr, "/readyz").is_ok_and(|r| r.status == 200) {
            break;
        }
        second.process.check_running()?;
        ensure!(started.elapsed() < std::time::Duration::from_secs(60), "the restarted replica never got ready");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let ready_after = started.elapsed();
    let prefix = vec![second.url("/v4/positions/")];
    let after = Load::run(&day.load_args(&prefix, day.measured_s, 3))?;
    second.process.check_running()?;
    upstream.process.check_running()?;
    commands.push(second.process.shown().to_owned());
    commands.push(after.shown.clone());
    Ok(Restart { warm, steady: steady.measured, after, ready_after, commands })
}

fn render_restarts(s: &mut String, day: &Day, restarts: &[Restart]) {
    let _ = writeln!(
        s,
        "### A restart in the middle of the day\n\n\
         The same day on one replica with room for every wallet (`POSITION_CACHE_MAX=10000`, the other \
         warm-start settings at their defaults: `POSITION_WARM_KEYS=2000`): the fill, {measured} s measured \
         (*steady*), then SIGTERM (the replica saves the wallets most in demand as it stops) and a new replica \
         on the same upstream (and Redis), measured for the first {measured} s after its `/readyz` answered 200. \
         With Redis every wallet is a Redis read away even from a cold memory tier, so its hit rate says little; \
         the warm start's effect there is that the first reads are answered from memory.\n",
        measured = day.measured_s,
    );
    let hit = |load: &Load| {
        let requests = load.requests() as f64;
        load.number("/cached").map(|c| if requests > 0.0 { c / requests } else { 0.0 })
    };
    let mut rows = Vec::new();
    let mut verdicts = Vec::new();
    for r in restarts {
        let (Ok(steady), Ok(after)) = (hit(&r.steady), hit(&r.after)) else { continue };
        let ratio = if steady > 0.0 { after / steady } else { 0.0 };
        rows.push(vec![
            r.warm.name().to_owned(),
            format!("{:.1}%", steady * 100.0),
            format!("{:.1}%", after * 100.0),
            format!("{:.2}", ratio),
            format!("{} ms", r.ready_after.as_millis()),
            failed(&r.after),
        ]);
        if r.warm != Warm::Cold {
            verdicts.push(format!(
                "- {}: first {} s at {:.0}% of the steady hit rate, at least 95%: {}.",
                r.warm.name(),
                day.measured_s,
                ratio * 100.0,
                verdict(ratio >= 0.95)
            ));
        }
    }
    s.push_str(&table(
        &["restart", "steady hit rate", "hit rate, first seconds after ready", "ratio", "start to ready", "not 200"],
        &rows,
    ));
    s.push('\n');
    for line in verdicts {
        let _ = writeln!(s, "{line}");
    }
    s.push_str("\n```sh\n");
    for r in restarts {
        let _ = writeln!(s, "# restart, {}", r.warm.name().replace('`', ""));
        for command in &r.commands {
            let _ = writeln!(s, "{command}");
        }
    }
    s.push_str("```\n\n");
}

/// The pair of variants that shows what eager refresh does, with room for
/// every wallet so that nothing but staleness separates them.
const EAGER_OFF: &str = "memory only, `POSITION_CACHE_MAX=10000` (room for every wallet), eager refresh off";
/// See [`EAGER_OFF`].
const EAGER_ON: &str = "memory only, `POSITION_CACHE_MAX=10000`, eager refresh on (the default)";

/// [`run_day`] with a fresh `redis-server` as tier 2.
fn run_day_with_redis(day: &Day, name: &str, env: &[(&str, &str)]) -> Result<DayResult> {
    let slug: String = name.chars().filter(char::is_ascii_alphanumeric).take(40).collect();
    let dir = servers::scratch(&format!("realistic-{slug}-redis"))?;
    let redis = servers::redis(&dir)?;
    let url = format!("redis://{}", redis.addr);
    let mut settings = vec![("REDIS_URL", url.as_str())];
    settings.extend_from_slice(env);
    let mut result = run_day(day, name, &settings)?;
    result.commands.insert(0, redis.process.shown().to_owned());
    Ok(result)
}

/// Runs the day against a fresh upstream and a fresh service started with
/// `env` on top of the day's settings (`POSITIONS_SOURCE` and
/// `POSITION_CACHE_TTL_SEC`); `name` labels it in the report.
fn run_day(day: &Day, name: &str, env: &[(&str, &str)]) -> Result<DayResult> {
    let slug: String = name.chars().filter(char::is_ascii_alphanumeric).take(40).collect();
    let dir = servers::scratch(&format!("realistic-{slug}"))?;
    let mut upstream = day.upstream(&dir)?;
    let day_env = day.service_env(&upstream);
    let mut settings: Vec<(&str, &str)> = day_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    settings.extend_from_slice(env);
    let service = servers::service(&dir, "positions-api", &settings, None)?;
    day.run(name, &mut upstream, &mut [service])
}

fn render(day: &Day, results: &[DayResult]) -> String {
    let mut s = format!(
        "## A realistic day\n\n\
         `positions-api` with the `http` source in front of benchkit's `slow-upstream`, which answers each \
         wallet ({positions} positions) after a delay drawn uniformly from {delay} ms. {wallets} wallets, \
         asked for Zipf({alpha:.1}) by independent users: Poisson arrivals at {rate} requests/s, each request \
         sent at its scheduled time in a task of its own, so a slow answer holds no other back (no \
         coordinated omission). TTL {ttl} s (the other settings \
         are the defaults: stale data is served for up to an hour past the TTL while one background \
         refresh per wallet runs), so entries go stale and are refreshed during the run. Each variant \
         starts from a cache that has seen the day before: every wallet requested once, least popular first, \
         while the upstream answers at once (its delay set to 0, then back), so that the cache holds what a day \
         of traffic would have put there (as much as its capacity allows); then a {warm} s warm-up \
         (reported apart) lets the memory tier settle, then {measured} s are measured. The fill stamps \
         every entry at once, so they go stale together {ttl} s later and the first refreshes come in a \
         burst; a real day's entries are spread out.\n\n",
        positions = day.positions,
        delay = day.upstream_delay_ms.replace("..", "–"),
        wallets = thousands(f64::from(day.wallets)),
        alpha = day.alpha,
        rate = day.rate,
        ttl = day.ttl_s,
        warm = day.warm_up_s,
        measured = day.measured_s,
    );
    render_measured(&mut s, day, results);
    render_warm_up(&mut s, day, results);
    render_targets(&mut s, day, results);
    s.push_str("\n### Commands\n\n```sh\n");
    for r in results {
        let _ = writeln!(s, "# {}", r.name.replace('`', ""));
        for command in &r.commands {
            let _ = writeln!(s, "{command}");
        }
    }
    s.push_str("```\n\n");
    s
}

fn render_measured(s: &mut String, day: &Day, results: &[DayResult]) {
    let mut rows = Vec::new();
    for r in results {
        let m = &r.measured;
        let requests = m.requests() as f64;
        let row = || -> Result<Vec<String>> {
            Ok(vec![
                r.name.clone(),
                thousands(requests),
                latency(m.number("/latency_ms/all/p50_ms")?),
                latency(m.number("/latency_ms/all/p95_ms")?),
                latency(m.number("/latency_ms/all/p99_ms")?),
                latency(m.number("/latency_ms/cached/p99_ms")?),
                percent(m.number("/cached")?, requests),
                percent(m.number("/stale")?, requests),
                format!("{:.1}", r.upstream_calls / f64::from(day.measured_s)),
                format!("{:.1}", r.refreshes / f64::from(day.measured_s)),
                format!("{}", r.upstream_max_in_flight),
                failed(m),
            ])
        };
        rows.push(row().unwrap_or_else(|e| vec![r.name.clone(), format!("unreadable: {e}")]));
    }
    let _ = writeln!(s, "### The measured {} s\n", day.measured_s);
    s.push_str(&table(
        &[
            "variant",
            "requests",
            "p50",
            "p95",
            "p99",
            "p99 of cached answers",
            "hit rate",
            "served stale",
            "upstream calls/s",
            "background refreshes/s",
            "most upstream calls at once",
            "not 200",
        ],
        &rows,
    ));
    s.push_str(
        "\n*Hit rate*: answers with `\"cached\": true`, of all requests; *served stale*: answers with \
         `\"stale\": true` (a subset of the hits). *Upstream calls/s* counts what reached `slow-upstream` \
         (loads for misses and background refreshes); *background refreshes/s* is the service's \
         `position_cache_refresh_triggers_total`; *most upstream calls at once* is the peak the upstream \
         saw (the service allows `REFRESH_CONCURRENCY`, 32 by default). Latencies count from when the driver sent each request; \
         how late it sent them after their scheduled times (its timer's granularity, not the service) \
         is not in them",
    );
    let lags: Vec<String> =
        results.iter().filter_map(|r| r.measured.number("/send_lag_ms/p99_ms").ok()).map(latency).collect();
    if lags.is_empty() {
        s.push_str(".\n\n");
    } else {
        let _ = writeln!(s, " (p99 of that lag, in the table's order: {}).\n", lags.join(", "));
    }
}

fn render_warm_up(s: &mut String, day: &Day, results: &[DayResult]) {
    let _ = writeln!(s, "### The {} s warm-up\n", day.warm_up_s);
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            let w = &r.warm_up;
            let requests = w.requests() as f64;
            let figure = |p: &str| w.number(p).map_or_else(|_| "–".to_owned(), latency);
            vec![
                r.name.clone(),
                thousands(requests),
                figure("/latency_ms/all/p50_ms"),
                figure("/latency_ms/all/p95_ms"),
                figure("/latency_ms/all/p99_ms"),
                w.number("/cached").map_or_else(|_| "–".to_owned(), |c| percent(c, requests)),
                failed(w),
            ]
        })
        .collect();
    s.push_str(&table(&["variant", "requests", "p50", "p95", "p99", "hit rate", "not 200"], &rows));
}

fn render_targets(s: &mut String, day: &Day, results: &[DayResult]) {
    s.push_str("\n### Against the report's targets (measured period)\n\n");
    let by_name = |name: &str| results.iter().find(|r| r.name == name);
    if let (Some(off), Some(on)) = (by_name(EAGER_OFF), by_name(EAGER_ON)) {
        let stale = |r: &DayResult| {
            let requests = r.measured.requests() as f64;
            r.measured.number("/stale").map(|n| if requests > 0.0 { n / requests } else { 0.0 })
        };
        if let (Ok(stale_off), Ok(stale_on)) = (stale(off), stale(on)) {
            let calls = if off.upstream_calls > 0.0 { on.upstream_calls / off.upstream_calls } else { f64::NAN };
            let _ = writeln!(
                s,
                "- eager refresh (its target, same run, `POSITION_CACHE_MAX=10000`): served stale {:.1}% off, \
                 {:.1}% on, under 2%: {}; upstream calls {calls:.2}× with it, at most 1.15×: {} \
                 (`position_cache_eager_refreshes_total` counted {} in the measured period).",
                stale_off * 100.0,
                stale_on * 100.0,
                verdict(stale_on < 0.02),
                verdict(calls <= 1.15),
                on.eager_refreshes,
            );
            let (share, wallets) = rarely_read(day);
            let _ = writeln!(
                s,
                "  Under this day's Zipf traffic, {:.1}% of requests go to the {} wallets asked for less than once per \
                 TTL on average. Such a wallet has nearly always gone stale by its next read, with or without early \
                 refreshes (which need a read inside the TTL to start); keeping those wallets fresh would take a \
                 fetch of each once per TTL whether anyone asks or not, about {:.0} calls/s against the {:.1} measured \
                 with eager refresh off. Stale answers under 2% are out of reach for this workload at that cost; what \
                 eager refresh removes is the stale answers of the wallets read several times per TTL.",
                share * 100.0,
                thousands(f64::from(wallets)),
                f64::from(wallets) / f64::from(day.ttl_s),
                off.upstream_calls / f64::from(day.measured_s),
            );
        }
    }
    for r in results {
        let m = &r.measured;
        let (Ok(cached_p99), Ok(p95)) = (m.number("/latency_ms/cached/p99_ms"), m.number("/latency_ms/all/p95_ms"))
        else {
            continue;
        };
        let _ = writeln!(
            s,
            "- {}: cached answers < 10 ms (their p99): {}, {}; p95 < 120 ms: {}, {}.",
            r.name,
            latency(cached_p99),
            verdict(cached_p99 < 10.0),
            latency(p95),
            verdict(p95 < 120.0)
        );
    }
}

/// The share of the day's requests that go to wallets asked for less than
/// once per TTL on average, and how many such wallets there are: under
/// Zipf(alpha) wallet `k` gets `k^-alpha / H` of the requests.
fn rarely_read(day: &Day) -> (f64, u32) {
    let weights: Vec<f64> = (1..=day.wallets).map(|k| f64::from(k).powf(-day.alpha)).collect();
    let total: f64 = weights.iter().sum();
    let per_ttl = f64::from(day.rate) * f64::from(day.ttl_s);
    let (mut share, mut wallets) = (0.0, 0);
    for w in &weights {
        if per_ttl * w / total < 1.0 {
            share += w / total;
            wallets += 1;
        }
    }
    (share, wallets)
}

/// The failures of a run for a table cell: `0`, or what they were.
pub(super) fn failed(load: &Load) -> String {
    match load.failed() {
        0 => "0".to_owned(),
        n => format!("{n}: {}", load.failures()),
    }
}
