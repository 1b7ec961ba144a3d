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
        ("POSITIONS_SOURCE", "https://analytics.example/?key=1"),
        ("POSITIONS_SOURCE_CA_FILE", "/nonexistent/ca.pem"),
        ("ADMIN_TOKEN", " "),
        ("HTTP_MAX_CONNECTIONS", "0"),
        ("ADMIN_BIND", "localhost"),
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
        "POSITIONS_SOURCE_CA_FILE",
        "POSITIONS_BIND",
        "REFRESH_CONCURRENCY",
        "REFRESH_TIMEOUT_MS",
        "REFRESH_QUEUE_MAX",
        "REFRESH_QUEUE_TIMEOUT_MS",
        "FORCE_REFRESH_MIN_INTERVAL_MS",
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
        "HTTP_MAX_CONNECTIONS",
        "ADMIN_BIND",
    ] {
        assert!(help.contains(var), "--help does not mention {var}");
    }
}

#[test]
fn a_listener_that_cannot_be_bound_stops_start_up_naming_its_variable() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = taken.local_addr().expect("address").to_string();
    for (var, extra) in [("POSITIONS_BIND", "ADMIN_BIND"), ("ADMIN_BIND", "POSITIONS_BIND")] {
        let out = command().env(var, &taken).env(extra, "127.0.0.1:0").output().expect("the binary runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{var}: not one line: {stderr}");
        assert!(stderr.contains(var) && stderr.contains(&taken), "{var}: {stderr}");
    }
}

/// Starts the binary on an ephemeral port and returns it with its address,
/// read from its first log line.
fn start(extra: &[(&str, &str)]) -> (Child, String) {
    let (child, listening, log) = start_logged(extra);
    // Keep draining the log so the child never blocks on a full pipe.
    std::thread::spawn(move || drop(log.join()));
    (child, listening["addr"].as_str().expect("an address").to_owned())
}

/// Like [`start`], returning the "listening" log event and keeping every
/// log line: the thread returns them once the binary has exited.
fn start_logged(extra: &[(&str, &str)]) -> (Child, serde_json::Value, std::thread::JoinHandle<Vec<String>>) {
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
    let mut log = Vec::new();
    let listening = loop {
        let line = lines.next().expect("a log line before exiting").expect("readable log");
        let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        log.push(line);
        if event["message"] == "listening" {
            break event;
        }
    };
    let log = std::thread::spawn(move || {
        log.extend(lines.map_while(Result::ok));
        log
    });
    (child, listening, log)
}

/// Sends SIGTERM and waits for the exit, at most 15 s.
fn stop(child: &mut Child) -> std::process::ExitStatus {
    let terminated = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill runs");
    assert!(terminated.success());
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("waitable") {
            return status;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "still running 15 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
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

    let status = stop(&mut child);
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

/// A plain HTTP/1.1 upstream on its own threads: wallet `…01` answers 500,
/// `…02` a body that is not positions, `…03` never answers; anything else
/// an empty list. It records each request's `Authorization` header.
fn scripted_upstream() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address").to_string();
    let authorizations = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = std::sync::Arc::clone(&authorizations);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let seen = std::sync::Arc::clone(&seen);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut head = Vec::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    head.push(line);
                }
                let Some(request_line) = head.first() else { return };
                if let Some(value) = head.iter().find_map(|h| h.strip_prefix("authorization: ")) {
                    seen.lock().expect("lock").push(value.trim_end().to_owned());
                }
                let (status, body) = if request_line.contains("0000000000000000000000000000000000000001 ") {
                    ("500 Internal Server Error", "boom".to_owned())
                } else if request_line.contains("0000000000000000000000000000000000000002 ") {
                    ("200 OK", r#"{"positions": [{"token": 1}]}"#.to_owned())
                } else if request_line.contains("0000000000000000000000000000000000000003 ") {
                    // Hang: hold the connection until the client gives up.
                    let _ = reader.read_to_end(&mut Vec::new());
                    return;
                } else {
                    ("200 OK", r#"{"positions": []}"#.to_owned())
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    (addr, authorizations)
}

#[test]
fn no_upstream_credential_or_address_reaches_a_client_or_the_log() {
    let (upstream, authorizations) = scripted_upstream();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").to_string();
    let wallet = |n: u8| format!("/v4/positions/0x{n:040x}");
    // (source, wallet, status, the failure class the body names)
    let cases = [
        (format!("http://app:hunter2@{upstream}/"), wallet(1), 502, "upstream answered 500"),
        (format!("http://app:hunter2@{upstream}/"), wallet(2), 502, "upstream body invalid: invalid type"),
        (format!("http://app:hunter2@{upstream}/"), wallet(3), 504, "did not answer within"),
        (format!("http://app:hunter2@{closed}/"), wallet(4), 502, "upstream unreachable"),
        // An https source whose upstream speaks plain HTTP.
        (format!("https://app:hunter2@{upstream}/"), wallet(5), 502, "upstream TLS handshake failed"),
    ];
    for (source, path, status, class) in cases {
        let (mut child, listening, log) =
            start_logged(&[("POSITIONS_SOURCE", source.as_str()), ("REFRESH_TIMEOUT_MS", "500")]);
        let addr = listening["addr"].as_str().expect("an address").to_owned();
        let (got, body) = get(&addr, &path);
        assert_eq!(got, status, "{source} {path}: {body}");
        assert!(body.contains(class), "{source} {path}: {body}");
        for secret in ["hunter2", upstream.as_str(), closed.as_str(), "127.0.0.1"] {
            assert!(!body.contains(secret), "{source} {path}: the body shows {secret}: {body}");
        }
        assert!(stop(&mut child).success());
        let log = log.join().expect("log reader");
        let started = log.iter().position(|l| l.contains("\"listening\"")).expect("a listening line");
        assert!(log.iter().any(|l| l.contains("load failed")), "{source} {path}: the failure is logged: {log:#?}");
        for line in &log {
            assert!(!line.contains("hunter2"), "{source}: the log shows the password: {line}");
        }
        for line in &log[started + 1..] {
            for address in [upstream.as_str(), closed.as_str()] {
                assert!(!line.contains(address), "{source}: a request's log line names the upstream: {line}");
            }
        }
    }
    let authorizations = authorizations.lock().expect("lock");
    assert!(!authorizations.is_empty(), "the upstream was asked");
    assert!(authorizations.iter().all(|a| a == "Basic YXBwOmh1bnRlcjI="), "credentials are sent: {authorizations:?}");
}

#[test]
fn admin_bind_moves_delete_and_metrics_to_their_own_listener() {
    let (mut child, listening, _log) = start_logged(&[("ADMIN_BIND", "127.0.0.1:0"), ("ADMIN_TOKEN", "t0ken")]);
    let public = listening["addr"].as_str().expect("an address").to_owned();
    let admin = listening["admin_addr"].as_str().expect("the admin address is logged").to_owned();
    assert_ne!(public, admin);
    assert_eq!(get(&public, "/metrics").0, 404);
    assert_eq!(get(&public, "/health").0, 200);
    let (status, body) = get(&admin, "/metrics");
    assert_eq!(status, 200);
    assert!(body.contains("position_cache_hits_total"), "{body}");
    child.kill().expect("killed");
    child.wait().expect("reaped");
}
