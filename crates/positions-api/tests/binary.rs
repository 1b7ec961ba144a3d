//! The `positions-api` binary as an operator runs it: configuration errors,
//! help, serving the bundled sample on its defaults, and a clean stop on
//! SIGTERM.

mod support;

use support::{exchange, try_get};

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
        ("POSITIONS_BIND", "no-such-host.invalid:8080"),
        ("HTTP_IDLE_TIMEOUT_MS", "0"),
        ("SHUTDOWN_DELAY_MS", "soon"),
        ("REDIS_MODE", "sentinel"),
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
fn a_bad_cluster_seed_list_stops_start_up_naming_redis_url_and_no_password() {
    for seeds in ["redis://:hunter2@127.0.0.1:7000,redis+unix:///run/redis.sock", "redis://:hunter2@host:port"] {
        let out = command().env("REDIS_MODE", "cluster").env("REDIS_URL", seeds).output().expect("the binary runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{seeds}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{seeds}: not one line: {stderr}");
        assert!(stderr.contains("REDIS_URL") && !stderr.contains("hunter2"), "{seeds}: {stderr}");
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
        "REDIS_MODE",
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
        "ACCESS_LOG",
        "HTTP_IDLE_TIMEOUT_MS",
        "SHUTDOWN_DELAY_MS",
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
    let listening = support::until_listening(&mut lines, |line| log.push(line));
    let log = std::thread::spawn(move || {
        log.extend(lines.map_while(Result::ok));
        log
    });
    (child, listening, log)
}

/// Sends SIGTERM and waits for the exit, at most 15 s.
fn stop(child: &mut Child) -> std::process::ExitStatus {
    terminate(child);
    exit_within(child, Duration::from_secs(15)).unwrap_or_else(|| panic!("still running 15 s after SIGTERM"))
}

/// Sends SIGTERM.
fn terminate(child: &Child) {
    let terminated = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill runs");
    assert!(terminated.success());
}

/// Waits for the exit for at most `limit`; `None` if still running.
fn exit_within(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("waitable") {
            return Some(status);
        }
        if started.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One HTTP/1.1 request on an open keep-alive connection, its answer read
/// by its `Content-Length`; the status and the response head.
fn keep_alive_get(stream: &mut TcpStream, path: &str) -> (u16, String) {
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout set");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("request sent");
    let mut read = Vec::new();
    let mut chunk = [0_u8; 4096];
    loop {
        let n = stream.read(&mut chunk).expect("readable");
        assert!(n > 0, "closed before answering: {}", String::from_utf8_lossy(&read));
        read.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&read).into_owned();
        let Some((head, body)) = text.split_once("\r\n\r\n") else { continue };
        let length: usize = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().ok()))
            .flatten()
            .expect("a Content-Length");
        if body.len() >= length {
            let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status");
            return (status, head.to_owned());
        }
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

/// The requests an upstream received: each one's request line and header
/// lines, as sent.
type Received = std::sync::Arc<std::sync::Mutex<Vec<Vec<String>>>>;

/// The value of header `name` (as hyper sends it, lower case) in one
/// received request.
fn received_header<'a>(head: &'a [String], name: &str) -> Option<&'a str> {
    head.iter().find_map(|h| h.strip_prefix(name)?.strip_prefix(": ")).map(str::trim_end)
}

/// A plain HTTP/1.1 upstream on its own threads: wallet `…01` answers 500,
/// `…02` a body that is not positions, `…03` never answers; anything else
/// an empty list. It records each request's head.
fn scripted_upstream() -> (String, Received) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address").to_string();
    let received: Received = std::sync::Arc::default();
    let seen = std::sync::Arc::clone(&received);
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
                let Some(request_line) = head.first().cloned() else { return };
                seen.lock().expect("lock").push(head);
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
    (addr, received)
}

#[test]
fn no_upstream_credential_or_address_reaches_a_client_or_the_log() {
    let (upstream, received) = scripted_upstream();
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
    let received = received.lock().expect("lock");
    let authorizations: Vec<&str> = received.iter().filter_map(|head| received_header(head, "authorization")).collect();
    assert!(!authorizations.is_empty(), "the upstream was asked");
    assert!(authorizations.iter().all(|a| *a == "Basic YXBwOmh1bnRlcjI="), "credentials are sent: {authorizations:?}");
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

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// The JSON log lines of target `access`.
fn access_lines(log: &[String]) -> Vec<serde_json::Value> {
    log.iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["target"] == "access")
        .collect()
}

const WALLET: &str = "/v4/positions/0x52908400098527886e0f7030069857d2e4169ee7";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn an_invalid_rust_log_stops_start_up_with_one_line_and_exit_code_2() {
    let out = command().env("RUST_LOG", "positions_api=loud").output().expect("the binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "not one line: {stderr}");
    assert!(stderr.contains("RUST_LOG"), "{stderr}");
    // A valid one starts.
    let (mut child, addr) = start(&[("RUST_LOG", "warn,positions_api=info")]);
    assert_eq!(get(&addr, "/livez").0, 200);
    assert!(stop(&mut child).success());
}

#[test]
fn the_json_access_log_has_one_line_per_request_with_json_values() {
    let (mut child, listening, log) = start_logged(&[("ACCESS_LOG", "true"), ("ADMIN_TOKEN", "t0ken")]);
    let addr = listening["addr"].as_str().expect("an address").to_owned();
    let (status, headers, _) = exchange(&addr, "GET", WALLET, &[("X-Request-Id", "client-id-1")]);
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "x-request-id"), Some("client-id-1"), "the client's id is echoed");
    let (status, headers, body) = exchange(&addr, "GET", WALLET, &[("X-Request-Id", "bad id with spaces")]);
    assert_eq!(status, 200);
    let generated = header(&headers, "x-request-id").expect("an id is generated").to_owned();
    assert!(generated != "bad id with spaces" && !generated.is_empty());
    assert_eq!(exchange(&addr, "GET", "/nowhere", &[]).0, 404);
    // HEAD: the same headers as a GET, without the binary body.
    let (status, headers, _) = exchange(&addr, "HEAD", WALLET, &[("Accept-Encoding", "gzip")]);
    assert_eq!((status, header(&headers, "content-encoding")), (200, Some("gzip")));
    let gzip_length: u64 = header(&headers, "content-length").and_then(|v| v.parse().ok()).expect("a length");
    // A line logged while handling a request carries its id.
    let authorization = ("Authorization", "Bearer t0ken");
    assert_eq!(exchange(&addr, "DELETE", WALLET, &[authorization, ("X-Request-Id", "admin-7")]).0, 200);
    assert!(stop(&mut child).success());
    let log = log.join().expect("log reader");

    let access = access_lines(&log);
    assert_eq!(access.len(), 5, "one line per request: {log:#?}");
    let first = &access[0];
    assert_eq!(first["method"], "GET");
    assert_eq!(first["route"], "/v4/positions/{wallet}");
    assert_eq!(first["status"], 200, "a JSON number");
    assert_eq!(first["cache"], "miss");
    assert_eq!(first["request_id"], "client-id-1");
    assert!(first["duration_ms"].is_f64() && first["bytes"].as_u64().is_some_and(|b| b > 100), "{first}");
    let second = &access[1];
    assert_eq!((&second["cache"], &second["request_id"]), (&serde_json::json!("hit"), &serde_json::json!(generated)));
    assert_eq!(second["bytes"].as_u64(), Some(body.len() as u64));
    assert_eq!(
        (&first["encoding"], &second["encoding"]),
        (&serde_json::json!("identity"), &serde_json::json!("identity"))
    );
    assert_eq!(
        (&access[2]["route"], &access[2]["status"], &access[2]["cache"]),
        (&serde_json::json!("unmatched"), &serde_json::json!(404), &serde_json::json!("none"))
    );
    // The coding the answer went out in, and the size as sent.
    assert_eq!((&access[3]["encoding"], access[3]["bytes"].as_u64()), (&serde_json::json!("gzip"), Some(gzip_length)));
    let invalidated = log
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|event| event["message"] == "wallet invalidated")
        .expect("the DELETE is logged");
    assert_eq!(invalidated["span"]["request_id"], "admin-7", "{invalidated}");
    // Nothing is Rust Debug text.
    let drained = log.iter().find(|l| l.contains("loads drained")).expect("a drain line");
    let drained: serde_json::Value = serde_json::from_str(drained).expect("JSON");
    assert!(drained["finished"].is_u64() && drained["abandoned"].is_u64(), "{drained}");
    assert_eq!(listening["source"], "sample");
}

#[test]
fn without_access_log_there_is_no_access_line_but_the_id_is_echoed_and_logged() {
    let (mut child, listening, log) = start_logged(&[("ADMIN_TOKEN", "t0ken")]);
    let addr = listening["addr"].as_str().expect("an address").to_owned();
    let (status, headers, _) = exchange(&addr, "GET", WALLET, &[]);
    assert_eq!(status, 200);
    assert!(header(&headers, "x-request-id").is_some_and(|id| !id.is_empty()));
    let authorization = ("Authorization", "Bearer t0ken");
    assert_eq!(exchange(&addr, "DELETE", WALLET, &[authorization, ("X-Request-Id", "admin-8")]).0, 200);
    assert!(stop(&mut child).success());
    let log = log.join().expect("log reader");
    assert!(access_lines(&log).is_empty());
    // A line the request writes carries its id without the request span.
    let invalidated = log
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|event| event["message"] == "wallet invalidated")
        .expect("the DELETE is logged");
    assert_eq!(invalidated["request_id"], "admin-8", "{invalidated}");
}

#[test]
fn the_text_access_log_is_one_line_per_request() {
    let mut child = command()
        .env("POSITIONS_BIND", "127.0.0.1:0")
        .env("ACCESS_LOG", "true")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let mut lines = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
    let addr = loop {
        let line = lines.next().expect("a log line before exiting").expect("readable log");
        if line.contains("listening") {
            let addr = line.split("addr=").nth(1).and_then(|rest| rest.split(' ').next()).expect("an addr field");
            break addr.to_owned();
        }
    };
    let reader = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    assert_eq!(exchange(&addr, "GET", WALLET, &[("X-Request-Id", "text-1")]).0, 200);
    assert!(stop(&mut child).success());
    let log = reader.join().expect("log reader");
    let access: Vec<&String> = log.iter().filter(|l| l.contains(" access: ")).collect();
    assert_eq!(access.len(), 1, "{log:#?}");
    for field in [
        "method=\"GET\"",
        "route=\"/v4/positions/{wallet}\"",
        "status=200",
        "cache=\"miss\"",
        "duration_ms=",
        "bytes=",
        "encoding=\"identity\"",
        "request_id=\"text-1\"",
    ] {
        assert!(access[0].contains(field), "no {field} in {}", access[0]);
    }
}

#[test]
fn the_upstream_gets_the_request_id_and_trace_context_of_the_request_that_loaded() {
    let (upstream, received) = scripted_upstream();
    let source = format!("http://{upstream}/");
    let (mut child, listening, _log) = start_logged(&[("POSITIONS_SOURCE", source.as_str())]);
    let addr = listening["addr"].as_str().expect("an address").to_owned();
    let traced = [("X-Request-Id", "caller-42"), ("traceparent", TRACEPARENT), ("tracestate", "vendor=1")];
    assert_eq!(exchange(&addr, "GET", &format!("/v4/positions/0x{:040x}", 10), &traced).0, 200);
    let (status, headers, _) = exchange(&addr, "GET", &format!("/v4/positions/0x{:040x}", 11), &[]);
    assert_eq!(status, 200);
    let generated = header(&headers, "x-request-id").expect("a generated id").to_owned();
    let bad_trace = [("traceparent", "00-00000000000000000000000000000000-00f067aa0ba902b7-01")];
    assert_eq!(exchange(&addr, "GET", &format!("/v4/positions/0x{:040x}", 12), &bad_trace).0, 200);
    child.kill().expect("killed");
    child.wait().expect("reaped");

    let received = received.lock().expect("lock");
    let for_wallet = |n: u8| {
        let wallet = format!("0x{n:040x}");
        received.iter().find(|head| head[0].contains(&wallet)).unwrap_or_else(|| panic!("no load of {wallet}"))
    };
    let first = for_wallet(10);
    assert_eq!(received_header(first, "x-request-id"), Some("caller-42"));
    assert_eq!(received_header(first, "traceparent"), Some(TRACEPARENT));
    assert_eq!(received_header(first, "tracestate"), Some("vendor=1"));
    let second = for_wallet(11);
    assert_eq!(received_header(second, "x-request-id"), Some(generated.as_str()));
    assert_eq!(received_header(second, "traceparent"), None);
    assert_eq!(received_header(for_wallet(12), "traceparent"), None, "an invalid traceparent is not forwarded");
}

#[test]
fn metrics_show_the_build_the_process_and_answers_by_cache_outcome() {
    let (mut child, addr) = start(&[]);
    // Before any load: the source histogram is there, at zero.
    let (_, before) = get(&addr, "/metrics");
    assert!(
        before.contains("\nposition_source_fetch_duration_seconds_count{source=\"ledger\",outcome=\"ok\"} 0\n"),
        "{before}"
    );
    assert_eq!(get(&addr, WALLET).0, 200);
    assert_eq!(get(&addr, WALLET).0, 200);
    assert_eq!(get(&addr, "/v4/positions/not-a-wallet").0, 400);
    let (status, text) = get(&addr, "/metrics");
    assert_eq!(status, 200);
    let sample = |series: &str| {
        text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')).map(|v| v.parse::<f64>().expect("a float"))
    };
    let route = "route=\"/v4/positions/{wallet}\",method=\"GET\"";
    for (labels, count) in [
        ("status=\"200\",cache=\"miss\"", 1.0),
        ("status=\"200\",cache=\"hit\"", 1.0),
        ("status=\"400\",cache=\"none\"", 1.0),
    ] {
        let series = format!("http_request_duration_seconds_count{{{route},{labels}}}");
        assert_eq!(sample(&series), Some(count), "{series}\n{text}");
    }
    let build = text.lines().find(|l| l.starts_with("positions_api_build_info{")).expect("build info");
    let revision = build.split("revision=\"").nth(1).and_then(|r| r.split('"').next()).expect("a revision");
    assert!(revision == "unknown" || revision.bytes().all(|b| b.is_ascii_hexdigit()), "{build}");
    assert!(build.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))), "{build}");
    if cfg!(target_os = "linux") {
        let started = sample("process_start_time_seconds").expect("a start time");
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs_f64();
        assert!(started <= now + 1.0 && started > now - 3600.0, "started {started}, now {now}");
        for name in ["process_resident_memory_bytes", "process_open_fds", "process_cpu_seconds_total"] {
            assert!(sample(name).is_some(), "no {name}");
        }
    }
    assert!(sample("tokio_runtime_workers").is_some_and(|w| w >= 1.0), "{text}");
    assert!(stop(&mut child).success());
}

#[test]
fn on_sigterm_readyz_fails_at_once_while_every_request_is_served_through_the_delay() {
    const DELAY: Duration = Duration::from_secs(4);
    const GRACE: Duration = Duration::from_secs(2);
    let (delay, grace) = (DELAY.as_millis().to_string(), GRACE.as_millis().to_string());
    let (mut child, addr) = start(&[("SHUTDOWN_DELAY_MS", delay.as_str()), ("SHUTDOWN_GRACE_MS", grace.as_str())]);
    assert_eq!(get(&addr, "/readyz").0, 200);
    let mut pooled = TcpStream::connect(&addr).expect("connects");
    let (status, head) = keep_alive_get(&mut pooled, "/livez");
    assert!(status == 200 && !head.to_ascii_lowercase().contains("connection: close"), "{head}");

    // A client asking steadily, each request on a new connection, as a
    // load balancer's would arrive, from before the signal until half-way
    // through the delay (after which the listener may close).
    let stop_asking = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let asking = std::thread::spawn({
        let (addr, stop_asking) = (addr.clone(), std::sync::Arc::clone(&stop_asking));
        move || {
            let mut outcomes = Vec::new();
            while !stop_asking.load(std::sync::atomic::Ordering::Relaxed) {
                outcomes.push(try_get(&addr, "/v4/positions/0x52908400098527886e0f7030069857d2e4169ee7"));
            }
            outcomes
        }
    });
    let some_answered = Instant::now() + Duration::from_millis(200);
    while Instant::now() < some_answered {
        std::thread::sleep(Duration::from_millis(20));
    }
    terminate(&child);
    let signalled = Instant::now();

    // Unready at once: the first answer that is not 200 is 503, and it
    // comes while the listener still serves.
    let mut readyz = Vec::new();
    loop {
        let (status, body) = try_get(&addr, "/readyz").unwrap_or_else(|e| panic!("/readyz during the delay: {e}"));
        readyz.push(status);
        if status != 200 {
            assert_eq!(status, 503, "{body}");
            break;
        }
        assert!(signalled.elapsed() < DELAY / 2, "/readyz still answers 200 well into the delay");
    }
    // A pooled keep-alive connection is served, and told to close, so its
    // client reconnects through the balancer rather than being cut by the
    // drain.
    let (status, head) = keep_alive_get(&mut pooled, "/livez");
    assert!(status == 200 && head.to_ascii_lowercase().contains("connection: close"), "{head}");
    while signalled.elapsed() < DELAY / 2 {
        let (status, _) = try_get(&addr, "/readyz").unwrap_or_else(|e| panic!("/readyz during the delay: {e}"));
        assert_eq!(status, 503, "/readyz turned ready again during the delay");
        std::thread::sleep(Duration::from_millis(20));
    }
    stop_asking.store(true, std::sync::atomic::Ordering::Relaxed);
    let outcomes = asking.join().expect("the client ran");
    let failed: Vec<_> = outcomes.iter().filter(|o| !matches!(o, Ok((200, _)))).collect();
    assert!(outcomes.len() > 10, "too few requests to tell: {}", outcomes.len());
    assert!(
        failed.is_empty(),
        "{} of {} requests failed during the delay: {:?}",
        failed.len(),
        outcomes.len(),
        &failed[..failed.len().min(5)]
    );

    // It exits within the delay plus the grace.
    let limit = (DELAY + GRACE + Duration::from_secs(1)).saturating_sub(signalled.elapsed());
    let status = exit_within(&mut child, limit)
        .unwrap_or_else(|| panic!("still running {limit:?} after the delay plus the grace"));
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

#[test]
fn connections_and_loads_share_one_shutdown_deadline() {
    const GRACE: Duration = Duration::from_secs(2);
    // An upstream that accepts and never answers: a load that outlasts
    // the grace.
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let source = format!("http://{}/", upstream.local_addr().expect("address"));
    let (accepted, asked) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in upstream.incoming() {
            let _ = accepted.send(());
            std::mem::forget(stream);
        }
    });
    let grace = GRACE.as_millis().to_string();
    let (mut child, addr) = start(&[
        ("POSITIONS_SOURCE", source.as_str()),
        ("REFRESH_TIMEOUT_MS", "60000"),
        ("SHUTDOWN_GRACE_MS", grace.as_str()),
    ]);
    let waiting = std::thread::spawn({
        let addr = addr.clone();
        move || try_get(&addr, &format!("/v4/positions/0x{:040x}", 3))
    });
    asked.recv_timeout(Duration::from_secs(10)).expect("the load reached the upstream");
    terminate(&child);
    // Connections drain for the grace, then loads for what is left of it,
    // not for a second grace.
    let limit = GRACE + GRACE / 2;
    let status = exit_within(&mut child, limit).unwrap_or_else(|| panic!("still running {limit:?} after SIGTERM"));
    assert!(status.success(), "exit status after SIGTERM: {status}");
    drop(waiting.join());
}

#[test]
fn bind_settings_take_host_names() {
    let (mut child, listening, _log) =
        start_logged(&[("POSITIONS_BIND", "localhost:0"), ("ADMIN_BIND", "localhost:0")]);
    let public = listening["addr"].as_str().expect("an address").to_owned();
    let admin = listening["admin_addr"].as_str().expect("the admin address is logged").to_owned();
    assert!(public.starts_with("127.0.0.1:") && admin.starts_with("127.0.0.1:"), "{public} {admin}");
    assert_eq!(get(&public, "/livez").0, 200);
    assert!(stop(&mut child).success());
}
