//! The exposition as a scraper reads it: `Metrics::encode` after realistic
//! use, every line checked by a strict parser of the `OpenMetrics` text format (`checker`), and
//! the values a dashboard would show compared with what was recorded.

mod classic;

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use cache_core::{Cache, Policy};
use telemetry::exposition::{Family, parse_strict};
use telemetry::{
    BreakerState, CacheStatus, FleetMessage, HttpMetrics, LeaseEvent, LoadKind, Lookup, MemoryTierObserver, Method,
    Metrics, Outcome, RedisErrorReply, RedisOp, Source, StoreRefusal,
};

const WALLET_ROUTE: &str = "/v4/positions/{wallet}";

/// Every registered family, in exposition order, with its type.
const FAMILIES: [(&str, &str); 47] = [
    ("position_cache_hits", "counter"),
    ("position_cache_misses", "counter"),
    ("position_cache_evictions", "counter"),
    ("position_cache_refresh_errors", "counter"),
    ("position_cache_stale_serves", "counter"),
    ("position_cache_refresh_triggers", "counter"),
    ("position_cache_eager_refreshes", "counter"),
    ("position_cache_overload_rejections", "counter"),
    ("position_cache_queue_timeouts", "counter"),
    ("position_cache_loads_queued", "counter"),
    ("position_cache_loads_started", "counter"),
    ("position_cache_loads_dropped", "counter"),
    ("position_cache_load_wait_seconds", "histogram"),
    ("position_cache_active_refresh_tasks", "gauge"),
    ("position_cache_memory_events", "counter"),
    ("position_cache_entries", "gauge"),
    ("position_cache_redis_hits", "counter"),
    ("position_cache_redis_misses", "counter"),
    ("position_cache_redis_errors", "counter"),
    ("position_cache_redis_error_replies", "counter"),
    ("position_cache_redis_corrupt_values", "counter"),
    ("position_cache_redis_oversized_values", "counter"),
    ("position_cache_redis_up", "gauge"),
    ("position_cache_redis_breaker_state", "gauge"),
    ("position_cache_fleet_messages_sent", "counter"),
    ("position_cache_fleet_messages_received", "counter"),
    ("position_cache_fleet_messages_undecodable", "counter"),
    ("position_cache_fleet_subscribed", "gauge"),
    ("position_cache_fleet_resubscriptions", "counter"),
    ("position_cache_fleet_revalidations", "counter"),
    ("position_cache_fleet_leases", "counter"),
    ("position_cache_fleet_adopted_loads", "counter"),
    ("position_cache_fleet_writes_refused", "counter"),
    ("position_cache_fleet_memory_stores_stopped", "counter"),
    ("position_source_fetch_duration_seconds", "histogram"),
    ("http_requests", "counter"),
    ("http_request_duration_seconds", "histogram"),
    ("tokio_runtime_workers", "gauge"),
    ("tokio_runtime_alive_tasks", "gauge"),
    ("tokio_runtime_global_queue_depth", "gauge"),
    ("positions_api_build", "info"),
    ("process_cpu_seconds", "counter"),
    ("process_resident_memory_bytes", "gauge"),
    ("process_virtual_memory_bytes", "gauge"),
    ("process_start_time_seconds", "gauge"),
    ("process_open_fds", "gauge"),
    ("process_max_fds", "gauge"),
];

/// Families read from the process at each scrape: there on Linux only, and
/// not zero.
const PROCESS: [&str; 6] = [
    "process_cpu_seconds",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_start_time_seconds",
    "process_open_fds",
    "process_max_fds",
];

/// Whether this system exposes the process families.
fn has_process_families() -> bool {
    cfg!(target_os = "linux")
}

/// [`FAMILIES`] as this system exposes them.
fn expected_families() -> Vec<(&'static str, &'static str)> {
    FAMILIES.iter().copied().filter(|(name, _)| has_process_families() || !PROCESS.contains(name)).collect()
}

/// A one-shard (exact LRU) tier-1 cache of `capacity` wallets reporting
/// into `metrics`, as the service wires it.
fn observed_cache(metrics: &Arc<Metrics>, capacity: usize) -> Cache<String, u32> {
    Cache::builder(capacity)
        .policy(Policy::new(Duration::from_secs(900)))
        .shards(1)
        .observer(Arc::new(MemoryTierObserver::new(Arc::clone(metrics))))
        .build()
}

/// Records into every family, the way a replica's first few requests would.
fn exercise_everything(metrics: &Arc<Metrics>) {
    let cache = observed_cache(metrics, 2);
    for i in 0..3 {
        cache.insert(format!("0x{i:040x}"), i);
    }
    metrics.memory.set_entries(cache.len());
    metrics.cache.record_lookup(Lookup::Hit);
    metrics.cache.record_lookup(Lookup::Stale);
    metrics.cache.record_lookup(Lookup::Miss);
    metrics.cache.record_refresh_started();
    metrics.cache.record_load_failed();
    metrics.cache.record_overload_rejection();
    metrics.cache.record_queue_timeout(LoadKind::Background);
    metrics.cache.set_active_refresh_tasks(1);
    metrics.tier2.record_hit();
    metrics.tier2.record_miss();
    metrics.tier2.record_error(RedisOp::Set);
    metrics.tier2.record_error_reply(RedisErrorReply::Oom);
    metrics.tier2.record_corrupt_value();
    metrics.tier2.record_oversized_value();
    metrics.tier2.set_up(true);
    metrics.tier2.set_breaker(BreakerState::Closed);
    metrics.fleet.record_sent(FleetMessage::Stored);
    metrics.fleet.record_received(FleetMessage::Deleted);
    metrics.fleet.record_undecodable();
    metrics.fleet.set_subscribed(true);
    metrics.fleet.record_resubscribed(3);
    metrics.fleet.record_lease(LeaseEvent::Contended);
    metrics.fleet.record_adopted();
    metrics.fleet.record_refused(StoreRefusal::Older);
    metrics.fleet.record_memory_store_stopped();
    metrics.source.observe(Source::Ledger, Outcome::Ok, Duration::from_millis(240));
    metrics.source.observe(Source::Http, Outcome::Timeout, Duration::from_secs(5));
    metrics.http.observe(WALLET_ROUTE, Method::Get, 200, CacheStatus::Hit, Duration::from_micros(85));
    metrics.http.observe(WALLET_ROUTE, Method::Get, 502, CacheStatus::Miss, Duration::from_millis(310));
    metrics.http.observe(
        HttpMetrics::UNMATCHED_ROUTE,
        Method::Other,
        404,
        CacheStatus::None,
        Duration::from_micros(12),
    );
    metrics.runtime.set(2, 9, 0);
    metrics.set_build_info("0.1.0", "0123abc");
}

fn family<'a>(families: &'a [Family], name: &str) -> &'a Family {
    families.iter().find(|f| f.name == name).unwrap_or_else(|| panic!("no family {name}"))
}

fn has_line(text: &str, expected: &str) -> bool {
    text.lines().any(|line| line == expected)
}

#[test]
fn report_counters_render_as_total_with_their_values() {
    let metrics = Arc::new(Metrics::new());
    // Evictions can only come from the memory tier, so drive a real cache:
    // five wallets into room for two evicts three.
    let cache = observed_cache(&metrics, 2);
    for i in 0..5 {
        cache.insert(format!("0x{i:040x}"), i);
    }
    for lookup in [Lookup::Hit, Lookup::Hit, Lookup::Stale, Lookup::Miss, Lookup::Stale, Lookup::Hit, Lookup::Miss] {
        metrics.cache.record_lookup(lookup);
    }
    metrics.cache.record_refresh_started();
    metrics.cache.record_refresh_started();
    metrics.cache.record_load_failed();

    let text = metrics.encode();
    parse_strict(&text).unwrap();
    for expected in [
        "position_cache_hits_total 5",
        "position_cache_misses_total 2",
        "position_cache_evictions_total 3",
        "position_cache_refresh_errors_total 1",
        "position_cache_stale_serves_total 2",
        "position_cache_refresh_triggers_total 2",
    ] {
        assert!(has_line(&text, expected), "no line {expected:?} in:\n{text}");
    }
}

#[test]
fn every_family_has_help_type_and_samples_once_exercised() {
    let metrics = Arc::new(Metrics::new());
    exercise_everything(&metrics);
    let text = metrics.encode();
    let families = parse_strict(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));

    let declared: Vec<(&str, &str)> = families.iter().map(|f| (f.name.as_str(), f.kind.as_str())).collect();
    assert_eq!(declared, expected_families());
    for family in &families {
        let help = family.help.as_deref().unwrap();
        assert!(help.len() > 20 && help.ends_with('.'), "{}: HELP {help:?} says too little", family.name);
        let expected_unit = ["seconds", "bytes"].into_iter().find(|unit| family.name.ends_with(&format!("_{unit}")));
        assert_eq!(family.unit.as_deref(), expected_unit, "{}", family.name);
    }
    assert!(text.ends_with("\n# EOF\n"));
}

#[test]
fn a_fresh_exposition_is_well_formed_and_reads_zero() {
    let text = Metrics::new().encode();
    let families = parse_strict(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(text.lines().last(), Some("# EOF"));

    // Series that exist from the start read zero, so `rate()` and alerts
    // work before the first event; the process's own figures are what they
    // are.
    for family in families.iter().filter(|f| !PROCESS.contains(&f.name.as_str())) {
        assert!(family.samples.iter().all(|s| s.value == 0.0), "{} is not zero at start", family.name);
    }
    assert_eq!(family(&families, "position_cache_memory_events").samples.len(), 7);
    assert_eq!(family(&families, "position_cache_redis_errors").samples.len(), 6);
    assert_eq!(family(&families, "position_cache_queue_timeouts").samples.len(), 2);
    assert_eq!(family(&families, "position_cache_redis_error_replies").samples.len(), 4);
    // Families keyed by open label values get their first series on first
    // use, and until then are left out, descriptors and all; so are the
    // Redis gauges, until the service says Redis is configured.
    // The source histogram, until the service declares its source; the
    // runtime gauges and the build, until the service sets them.
    let lazy = [
        "position_source_fetch_duration_seconds",
        "http_requests",
        "http_request_duration_seconds",
        "position_cache_redis_up",
        "position_cache_redis_breaker_state",
        "position_cache_fleet_subscribed",
        "tokio_runtime_workers",
        "tokio_runtime_alive_tasks",
        "tokio_runtime_global_queue_depth",
        "positions_api_build",
    ];
    let declared: Vec<&str> = families.iter().map(|f| f.name.as_str()).collect();
    let expected: Vec<&str> =
        expected_families().into_iter().map(|(name, _)| name).filter(|name| !lazy.contains(name)).collect();
    assert_eq!(declared, expected);
}

#[test]
fn label_values_render_as_documented() {
    let metrics = Arc::new(Metrics::new());
    exercise_everything(&metrics);
    let text = metrics.encode();
    let families = parse_strict(&text).unwrap();

    let requests = family(&families, "http_requests");
    let ok = requests.samples.iter().find(|s| s.label("status") == Some("200")).expect("a status=\"200\" series");
    assert_eq!(ok.label("route"), Some(WALLET_ROUTE), "the route template, braces and all");
    assert_eq!(ok.label("method"), Some("GET"));
    assert_eq!(ok.label("cache"), Some("hit"));
    assert!(has_line(
        &text,
        r#"http_requests_total{route="/v4/positions/{wallet}",method="GET",status="200",cache="hit"} 1"#
    ));
    assert!(has_line(&text, r#"http_requests_total{route="unmatched",method="_OTHER",status="404",cache="none"} 1"#));
    assert!(has_line(&text, r#"position_cache_redis_breaker_state{state="closed"} 1"#));
    assert!(has_line(&text, r#"position_cache_redis_breaker_state{state="open"} 0"#));
    assert!(has_line(&text, r#"positions_api_build_info{version="0.1.0",revision="0123abc"} 1"#));

    let fetches = family(&families, "position_source_fetch_duration_seconds");
    assert!(fetches.samples.iter().any(|s| s.name.ends_with("_count")
        && s.label("source") == Some("http")
        && s.label("outcome") == Some("timeout")));
    assert!(has_line(&text, r#"position_cache_redis_errors_total{op="set"} 1"#));
    assert!(has_line(&text, r#"position_cache_memory_events_total{event="eviction"} 1"#));
    assert!(has_line(&text, r#"position_cache_memory_events_total{event="stale_hit"} 0"#));
}

#[test]
fn recording_from_many_threads_adds_up() {
    const THREADS: u32 = 4;
    const PER_THREAD: u32 = 1_000;
    let metrics = Arc::new(Metrics::new());
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let metrics = Arc::clone(&metrics);
            thread::spawn(move || {
                for i in 0..PER_THREAD {
                    let lookup = if i % 4 == 0 { Lookup::Miss } else { Lookup::Hit };
                    metrics.cache.record_lookup(lookup);
                    metrics.http.observe(
                        WALLET_ROUTE,
                        Method::Get,
                        200,
                        CacheStatus::Hit,
                        Duration::from_micros(u64::from(i)),
                    );
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }

    let text = metrics.encode();
    parse_strict(&text).unwrap();
    let total = THREADS * PER_THREAD;
    let requests =
        format!(r#"http_requests_total{{route="{WALLET_ROUTE}",method="GET",status="200",cache="hit"}} {total}"#);
    assert!(has_line(&text, &requests), "no line {requests:?}");
    let counts = metrics.cache.counts();
    assert_eq!(counts.hits + counts.misses, u64::from(THREADS * PER_THREAD));
    assert_eq!(counts.misses, u64::from(THREADS * PER_THREAD / 4));
}

#[test]
fn histogram_buckets_are_cumulative_and_match_the_count() {
    let metrics = Metrics::new();
    for micros in [30, 80, 400, 2_000, 90_000, 20_000_000] {
        metrics.http.observe(WALLET_ROUTE, Method::Get, 200, CacheStatus::Hit, Duration::from_micros(micros));
    }
    let text = metrics.encode();
    // The checker verifies order, cumulativeness and `_count == +Inf`.
    let families = parse_strict(&text).unwrap();
    let duration = family(&families, "http_request_duration_seconds");
    let bucket = |le: &str| duration.samples.iter().find(|s| s.label("le") == Some(le)).map(|s| s.value);
    assert_eq!(bucket("0.0001"), Some(2.0), "30 µs and 80 µs");
    assert_eq!(bucket("10.0"), Some(5.0), "all but the 20 s request");
    assert_eq!(bucket("+Inf"), Some(6.0));
}

/// The checker must have teeth: each case is a way the output could be
/// broken, and each must be rejected for that reason (not another one,
/// hence the expected message). The first text is valid, to show the
/// failures come from the defects and not from the scaffolding.
#[test]
fn checker_rejects_malformed_output() {
    const A: &str = "# HELP a A counter.\n# TYPE a counter\n";
    const G: &str = "# HELP g A gauge.\n# TYPE g gauge\n";
    const H: &str = "# HELP h A histogram.\n# TYPE h histogram\n";
    let valid = format!(
        "{A}a_total{{x=\"1\"}} 3\n{H}h_sum 0.5\nh_count 2\nh_bucket{{le=\"0.1\"}} 1\nh_bucket{{le=\"+Inf\"}} 2\n# EOF\n"
    );
    parse_strict(&valid).unwrap();

    let broken = [
        ("no EOF", format!("{A}a_total 1\n"), "does not end with `# EOF`"),
        ("a line after EOF", format!("{A}a_total 1\n# EOF\na_total 2\n"), "does not end with `# EOF`"),
        ("a value that is not a float", format!("{A}a_total one\n# EOF\n"), "not a valid float"),
        ("a float spelled the Rust way", format!("{G}g inf\n# EOF\n"), "not a valid float"),
        ("a sample of another family", format!("{A}b_total 1\n# EOF\n"), "does not belong to"),
        ("a counter without _total", format!("{A}a 1\n# EOF\n"), "does not belong to"),
        ("a negative counter", format!("{A}a_total -1\n# EOF\n"), "negative or NaN"),
        ("a sample before any TYPE", "a_total 1\n# EOF\n".to_owned(), "before any `# TYPE`"),
        ("an invalid metric name", format!("{A}a_total 1\n# HELP 1b B.\n# EOF\n"), "invalid metric name"),
        ("a raw quote in a label value", format!("{A}a_total{{x=\"a\"b\"}} 1\n# EOF\n"), "labels not closed"),
        ("labels never closed", format!("{A}a_total{{x=\"a\" 1\n# EOF\n"), "labels not closed"),
        ("a bad escape in a label value", format!("{A}a_total{{x=\"a\\q\"}} 1\n# EOF\n"), "invalid escape"),
        ("a repeated label", format!("{A}a_total{{x=\"a\",x=\"b\"}} 1\n# EOF\n"), "appears twice"),
        ("a duplicate series", format!("{A}a_total 1\na_total 2\n# EOF\n"), "the same series appears twice"),
        ("a timestamp", format!("{A}a_total 1 1700000000\n# EOF\n"), "something after the value"),
        ("an unknown type", "# HELP a A.\n# TYPE a countr\na_total 1\n# EOF\n".to_owned(), "unknown metric type"),
        ("a family described twice", format!("{A}a_total 1\n{A}a_total 2\n# EOF\n"), "described twice"),
        (
            "a raw quote in HELP",
            "# HELP a Says \"hi\".\n# TYPE a counter\na_total 1\n# EOF\n".to_owned(),
            "raw double quote",
        ),
        ("a stray comment", format!("{A}# hello there\na_total 1\n# EOF\n"), "not HELP, TYPE, UNIT or EOF"),
        ("a TYPE with no samples", format!("{A}{G}g 1\n# EOF\n"), "followed by no sample"),
        ("a family without HELP", "# TYPE a counter\na_total 1\n# EOF\n".to_owned(), "no HELP text"),
        ("a unit the name lacks", format!("{G}# UNIT g seconds\ng 1\n# EOF\n"), "does not end with it"),
        (
            "histogram buckets that go down",
            format!("{H}h_bucket{{le=\"0.1\"}} 2\nh_bucket{{le=\"+Inf\"}} 1\nh_sum 1\nh_count 1\n# EOF\n"),
            "not increasing and cumulative",
        ),
        (
            "a histogram count that differs from +Inf",
            format!("{H}h_bucket{{le=\"0.1\"}} 1\nh_bucket{{le=\"+Inf\"}} 2\nh_sum 1\nh_count 3\n# EOF\n"),
            "lacks a `_count` equal",
        ),
        (
            "a histogram without +Inf",
            format!("{H}h_bucket{{le=\"0.1\"}} 1\nh_sum 1\nh_count 1\n# EOF\n"),
            "does not end with an le=\"+Inf\" bucket",
        ),
        (
            "a bucket without le",
            format!("{H}h_bucket 1\nh_bucket{{le=\"+Inf\"}} 1\nh_sum 1\nh_count 1\n# EOF\n"),
            "`le` belongs on `_bucket` samples only",
        ),
    ];
    for (defect, text, expected) in broken {
        match parse_strict(&text) {
            Ok(_) => panic!("the checker accepted {defect}:\n{text}"),
            Err(error) => assert!(error.contains(expected), "{defect}: rejected for another reason: {error}"),
        }
    }
}
