//! `deploy/grafana/positions-cache.json` against a real Prometheus scraping
//! the real binary under traffic: every query of every panel returns data,
//! so no panel is ever empty because a metric or label name drifted.
//!
//! The service runs with Redis, an HTTP upstream that fails some wallets, a
//! one-second TTL and a small memory tier, so that hits, stale serves,
//! misses, refreshes, evictions, tier-2 reads and source errors all happen
//! within seconds. Prometheus (Debian's `prometheus` package, which
//! `cargo xtask ci` installs for promtool) scrapes it every 250 ms; the
//! test is skipped where it is missing, except in CI.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::{Running, Scratch};

use cache_redis::testing::RedisServer;
use serde_json::Value;

const BINARY: &str = env!("CARGO_BIN_EXE_positions-api");

/// How often the test's Prometheus scrapes.
const SCRAPE_INTERVAL: &str = "250ms";
/// What the test puts for Grafana's `$__rate_interval` (at least four scrape
/// intervals in Grafana): a window holding several of the test's scrapes.
const RATE_INTERVAL: &str = "3s";
/// The longest wait for every query to return data once traffic flows.
const DEADLINE: Duration = Duration::from_secs(20);
/// Wallets the upstream fails with a 500 start with this.
const FAILING_PREFIX: &str = "0xbad";

fn dashboard() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/grafana/positions-cache.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One query of the dashboard: the panel's title and the `PromQL`.
struct Query {
    panel: String,
    expr: String,
}

/// Every panel's queries, and the metric each template variable reads
/// (`label_values(METRIC, LABEL)` is Grafana's, not `PromQL`: the test asks
/// for the series instead).
fn queries(dashboard: &Value) -> Vec<Query> {
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        if panel["type"] == "row" {
            continue;
        }
        let title = panel["title"].as_str().expect("a title").to_owned();
        let targets = panel["targets"].as_array().unwrap_or_else(|| panic!("{title}: no targets"));
        assert!(!targets.is_empty(), "{title}: no targets");
        for target in targets {
            let expr = target["expr"].as_str().unwrap_or_else(|| panic!("{title}: a target without expr"));
            queries.push(Query { panel: title.clone(), expr: expr.to_owned() });
        }
    }
    for variable in dashboard["templating"]["list"].as_array().expect("templating") {
        if variable["type"] != "query" {
            continue;
        }
        let definition = variable["definition"].as_str().expect("a definition");
        let inner = definition.strip_prefix("label_values(").and_then(|d| d.strip_suffix(')')).expect("label_values");
        let (metric, label) = inner.rsplit_once(',').expect("label_values(METRIC, LABEL)");
        let name = variable["name"].as_str().expect("a name");
        queries.push(Query {
            panel: format!("variable ${name}"),
            expr: format!("count by ({}) ({metric})", label.trim()),
        });
    }
    queries
}

/// The expression as Grafana would send it for the test's job.
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", RATE_INTERVAL).replace("$job", "positions-api").replace("$instance", ".+")
}

#[test]
fn the_dashboard_is_grafana_json_with_unique_panels_and_every_variable_defined() {
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "positions-cache");
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids: Vec<u64> = panels.iter().map(|p| p["id"].as_u64().expect("an id")).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
        .iter()
        .map(|v| v["name"].as_str().expect("a name"))
        .collect();
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        assert!(panel["gridPos"]["w"].as_u64().is_some(), "{}: no gridPos", panel["title"]);
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{}: not on the datasource variable", panel["title"]);
    }
    for query in queries(&dashboard) {
        for word in query.expr.split('$').skip(1) {
            let name: String = word.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            assert!(
                name == "__rate_interval" || variables.contains(&name.as_str()),
                "{}: ${name} is not defined",
                query.panel
            );
        }
    }
}

/// An upstream answering every wallet with no positions, except those
/// starting with [`FAILING_PREFIX`], which get a 500. One connection per
/// request; it runs until the test process exits.
fn start_upstream() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address").to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || answer_upstream(stream));
        }
    });
    addr
}

fn answer_upstream(stream: TcpStream) {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    // The rest of the header block.
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
        line.clear();
    }
    let path = request_line.split(' ').nth(1).unwrap_or("");
    let failing = path.rsplit('/').next().is_some_and(|wallet| wallet.starts_with(FAILING_PREFIX));
    let (status, body) = if failing { ("500 Internal Server Error", "{}") } else { ("200 OK", r#"{"positions":[]}"#) };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = reader.into_inner().write_all(response.as_bytes());
}

/// The binary with exactly `env`, and its address from the JSON
/// `listening` log line.
fn start_service(env: &[(&str, &str)]) -> (Running, String) {
    let mut child = Command::new(BINARY)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LOG_FORMAT", "json")
        .env("POSITIONS_BIND", "127.0.0.1:0")
        .envs(env.iter().copied())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let mut lines = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
    let addr = support::listening_addr(&support::until_listening(&mut lines, drop));
    // Keep draining the log so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (Running(child), addr)
}

/// Prometheus scraping `target` every [`SCRAPE_INTERVAL`], keeping its data
/// in `dir`; `None` where it is not installed, outside CI.
fn start_prometheus(dir: &Path, target: &str) -> Option<(Running, String)> {
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: {SCRAPE_INTERVAL}\n  scrape_timeout: {SCRAPE_INTERVAL}\n\
             scrape_configs:\n  - job_name: positions-api\n    static_configs:\n      - targets: [\"{target}\"]\n"
        ),
    )
    .expect("config written");
    // A port free a moment ago: Prometheus cannot report one it picked.
    let addr = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").to_string();
    let spawned = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address={addr}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match spawned {
        Ok(child) => Some((Running(child), addr)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && std::env::var_os("CI").is_none() => {
            eprintln!("note: prometheus is not installed; skipping (Debian's `prometheus` package has it)");
            None
        }
        Err(e) => panic!("cannot run prometheus (`cargo xtask ci` installs the `prometheus` package): {e}"),
    }
}

/// One GET over a fresh connection; the status and body, or `None` if the
/// server could not be reached.
fn get(addr: &str, target: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(stream, "GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// Percent-encodes a query-string value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Whether Prometheus answers `expr` with at least one sample that is a
/// number (not `NaN`, which a quantile of no observations gives).
fn returns_data(prometheus: &str, expr: &str) -> bool {
    let Some((200, body)) = get(prometheus, &format!("/api/v1/query?query={}", encode(expr))) else {
        return false;
    };
    let answer: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    answer["data"]["result"]
        .as_array()
        .is_some_and(|result| result.iter().any(|series| series["value"][1].as_str().is_some_and(|v| v != "NaN")))
}

/// Requests that make every panel move: wallets cycling through a memory
/// tier smaller than them (evictions, tier-2 hits), repeats (hits, and
/// stale serves past the one-second TTL), wallets the upstream fails (502s,
/// source errors), and the other routes.
fn send_traffic(service: &str, stop: &AtomicBool) {
    let mut round = 0_u64;
    while !stop.load(Ordering::Relaxed) {
        for i in 0..12_u64 {
            let _ = get(service, &format!("/v4/positions/0x{i:040x}"));
            let _ = get(service, &format!("/v4/positions/0x{i:040x}"));
        }
        let _ = get(service, &format!("/v4/positions/{FAILING_PREFIX}{round:037x}"));
        let _ = get(service, "/health");
        let _ = get(service, "/no-such-route");
        round += 1;
    }
}

#[test]
fn every_panel_query_returns_data_from_prometheus_scraping_the_service() {
    let dashboard = dashboard();
    let queries = queries(&dashboard);
    let scratch = Scratch::new("dashboard");
    let redis = RedisServer::start();
    let upstream = format!("http://{}", start_upstream());
    let redis_url = redis.url();
    let (_service, service) = start_service(&[
        ("POSITIONS_SOURCE", &upstream),
        ("REDIS_URL", &redis_url),
        ("POSITION_CACHE_TTL_SEC", "1"),
        ("POSITION_CACHE_MAX", "4"),
    ]);
    let Some((_prometheus, prometheus)) = start_prometheus(&scratch.0, &service) else { return };

    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (stop, service) = (Arc::clone(&stop), service.clone());
        std::thread::spawn(move || send_traffic(&service, &stop))
    };
    let started = Instant::now();
    let mut pending: Vec<&Query> = queries.iter().collect();
    while !pending.is_empty() && started.elapsed() < DEADLINE {
        pending.retain(|query| !returns_data(&prometheus, &substitute(&query.expr)));
        std::thread::sleep(Duration::from_millis(250));
    }
    stop.store(true, Ordering::Relaxed);
    traffic.join().expect("the traffic thread");

    let empty: Vec<String> = pending.iter().map(|q| format!("{}: {}", q.panel, substitute(&q.expr))).collect();
    assert!(
        empty.is_empty(),
        "{} of {} queries returned no data within {DEADLINE:?} of traffic:\n{}",
        empty.len(),
        queries.len(),
        empty.join("\n")
    );
}
