//! The `positions-api` binary as an operator runs it: configuration errors,
//! help, serving the bundled sample on its defaults, and a clean stop on
//! SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_positions-api");

/// The binary with a clean environment: only what the test sets.
fn command() -> Command {
    let mut command = Command::new(BINARY);
    command.env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default());
    command
}

#[test]
fn a_bad_setting_stops_start_up_with_one_line_and_exit_code_2() {
    let cases = [
        ("POSITION_CACHE_TTL_SEC", "abc"),
        ("POSITION_CACHE_MAX", "0"),
        ("POSITION_CACHE_ENABLED", "perhaps"),
        ("POSITIONS_BIND", "localhost"),
        ("REFRESH_CONCURRENCY", "-1"),
        ("POSITIONS_SOURCE", "ledger:/nonexistent/ledger"),
        ("POSITIONS_SOURCE", "https://analytics.example"),
        ("ADMIN_TOKEN", " "),
    ];
    for (var, value) in cases {
        let out = command().env(var, value).output().expect("the binary runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{var}={value}: not one line: {stderr}");
        assert!(stderr.contains(var), "{var}={value}: the line does not name {var}: {stderr}");
    }
}

#[test]
fn help_documents_every_variable() {
    let out = command().arg("--help").output().expect("the binary runs");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for var in [
        "POSITION_CACHE_ENABLED",
        "POSITION_CACHE_TTL_SEC",
        "POSITION_CACHE_MAX",
        "POSITION_CACHE_MAX_STALE_SEC",
        "POSITION_CACHE_STALE_IF_ERROR_SEC",
        "POSITIONS_SOURCE",
        "POSITIONS_BIND",
        "REFRESH_CONCURRENCY",
        "REFRESH_TIMEOUT_MS",
        "REFRESH_QUEUE_MAX",
        "ADMIN_TOKEN",
        "REDIS_URL",
        "REDIS_NAMESPACE",
        "REDIS_TIMEOUT_MS",
        "REDIS_POOL_SIZE",
        "REDIS_HEALTH_INTERVAL_MS",
        "REDIS_MAX_VALUE_BYTES",
        "LOG_FORMAT",
        "HTTP_HEADER_TIMEOUT_MS",
        "SHUTDOWN_GRACE_MS",
    ] {
        assert!(help.contains(var), "--help does not mention {var}");
    }
}

/// Starts the binary on an ephemeral port and returns it with its address,
/// read from its first log line.
fn start(extra: &[(&str, &str)]) -> (Child, String) {
    let mut child = command()
        .env("POSITIONS_BIND", "127.0.0.1:0")
        .env("LOG_FORMAT", "json")
        .envs(extra.iter().copied())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let stderr = child.stderr.take().expect("piped stderr");
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines.next().expect("a log line before exiting").expect("readable log");
        let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if event["message"] == "listening" {
            break event["addr"].as_str().expect("an address").to_owned();
        }
    };
    // Keep draining the log so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, addr)
}

/// One HTTP/1.1 request over a fresh connection; returns status and body.
fn get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connects");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout set");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").expect("request sent");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response read");
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status line");
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

#[test]
fn serves_the_bundled_sample_and_stops_cleanly_on_sigterm() {
    let (mut child, addr) = start(&[]);
    let (status, body) = get(&addr, "/health");
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).expect("JSON health");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["cache_stats"]["backend"], "memory");

    let (status, body) = get(&addr, "/v4/positions/0x52908400098527886e0f7030069857d2e4169ee7");
    assert_eq!(status, 200, "{body}");
    let positions: serde_json::Value = serde_json::from_str(&body).expect("JSON positions");
    assert!(
        positions["positions"].as_array().is_some_and(|p| !p.is_empty()),
        "the sample wallet has positions: {body}"
    );

    let terminated = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill runs");
    assert!(terminated.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waitable") {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "still running 15 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status after SIGTERM: {status}");
}
