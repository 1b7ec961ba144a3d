//! A browser's view of compressed answers: headless Chromium (Debian's
//! `chromium` package, which `cargo xtask ci` installs) fetches a wallet
//! from the real binary, and the text it decodes must equal, byte for
//! byte, the identity body curl gets for the same entry.
//!
//! What coding Chromium gets is proved twice: the test first lets Chromium
//! fetch from a listener of its own and reads the `Accept-Encoding` it
//! sends, works out from it what the service must choose
//! ([`positions_api::encoding::negotiate`]), and requires that to be a
//! compressed coding; then the service's access log (`encoding` field)
//! must name that coding for Chromium's request. Chromium 156 offers
//! `gzip, deflate, br, zstd` over plain `http://127.0.0.1` (a loopback
//! origin counts as secure for it), so there it is answered `br`; a build
//! that offers no `br` over plain HTTP is answered `gzip`, and the test
//! holds it to that instead. gzip is also decoded by curl and Python in
//! `tests/tests/service/conditional.rs`.
//!
//! Chromium shows a JSON answer as the text of a `<pre>` element;
//! `--dump-dom` prints the page's HTML, from which the text is taken back
//! by undoing the HTML serializer's escapes (`&amp;`, `&lt;`, `&gt;`,
//! `&nbsp;`), which map back one to one.
//!
//! An answer's body ends with `age_seconds`, which ticks while Chromium
//! starts. So curl fetches the identity body just before and just after
//! Chromium: when their ages are at most one second apart, Chromium's age
//! was one of the two, and its text must equal one of those bodies; when
//! Chromium took longer, the round is done again.
//!
//! Where `chromium` is not installed the test is skipped with a note,
//! except in CI (`CI` set), where that is a failure.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{Running, Scratch};

use http::header::ACCEPT_ENCODING;
use http::{HeaderMap, HeaderValue};
use positions_api::encoding::{Encoding, negotiate};

const BINARY: &str = env!("CARGO_BIN_EXE_positions-api");
const WALLET: &str = "/v4/positions/0x52908400098527886e0f7030069857d2e4169ee7";
/// The longest Chromium may take to start, fetch and print a page.
const CHROMIUM_DEADLINE: Duration = Duration::from_secs(60);
/// How many times the curl–Chromium–curl round may be done again because
/// Chromium took longer than a second.
const ROUNDS: usize = 5;

/// Whether this runs under CI, where a missing tool is a failure.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Whether `chromium` is on `PATH`.
fn chromium_installed() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join("chromium").is_file()))
}

/// `chromium --headless … --dump-dom URL`: the page's HTML as Chromium
/// rendered it, with a fresh profile in `dir`.
fn dump_dom(dir: &Path, url: &str) -> String {
    let profile = dir.join(format!("profile-{}", next_run()));
    let errors = dir.join("chromium.err");
    let mut child = Running(
        Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(["--dump-dom", url])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&errors).expect("chromium's error file"))
            .spawn()
            .expect("chromium starts"),
    );
    let mut stdout = child.0.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("waitable") {
            break status;
        }
        assert!(
            started.elapsed() < CHROMIUM_DEADLINE,
            "chromium did not finish {url} within {CHROMIUM_DEADLINE:?}; its errors: {}",
            std::fs::read_to_string(&errors).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = reader.join().expect("stdout reader");
    assert!(
        status.success(),
        "chromium failed ({status}) on {url}: {}",
        std::fs::read_to_string(&errors).unwrap_or_default()
    );
    out
}

/// A per-call number, so that each Chromium run gets its own profile.
fn next_run() -> u64 {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The text of the first `<pre>` of `html`, with the HTML serializer's
/// escapes undone.
fn pre_text(html: &str) -> String {
    let start = html.find("<pre").unwrap_or_else(|| panic!("no <pre> in what chromium rendered: {html}"));
    let open_end = start + html[start..].find('>').expect("the <pre> tag closes") + 1;
    let close = open_end + html[open_end..].find("</pre>").expect("a </pre>");
    html[open_end..close].replace("&lt;", "<").replace("&gt;", ">").replace("&nbsp;", "\u{a0}").replace("&amp;", "&")
}

/// The `Accept-Encoding` Chromium sends for a page: it loads one from a
/// listener of the test's, which answers `{}` to every request.
fn chromium_accept_encoding(dir: &Path) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/probe.json", listener.local_addr().expect("address"));
    let (sender, heads) = mpsc::channel::<Vec<String>>();
    // Detached: it serves until the test process ends (Chromium may open a
    // connection it never uses, or ask for a favicon).
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let sender = sender.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut head = Vec::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    head.push(line.trim_end().to_owned());
                }
                if head.is_empty() {
                    return;
                }
                let _ = sender.send(head);
                let _ = reader.into_inner().write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
                );
            });
        }
    });
    assert_eq!(pre_text(&dump_dom(dir, &url)), "{}", "chromium shows a JSON answer as the text of a <pre>");
    let head = heads
        .iter()
        .find(|head| head.first().is_some_and(|line| line.starts_with("GET /probe.json ")))
        .expect("chromium asked for the page");
    head.iter()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("accept-encoding").then(|| value.trim().to_owned())
        })
        .unwrap_or_default()
}

/// The wallet's body as curl gets it with no `Accept-Encoding` (identity),
/// the request tagged with `id`.
fn curl_identity(url: &str, id: &str) -> Vec<u8> {
    let out = Command::new("curl")
        .args(["-sS", "--fail", "-H", &format!("X-Request-Id: {id}"), url])
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "curl {url}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// `age_seconds` of an answer's body.
fn age(body: &[u8]) -> u64 {
    let json: serde_json::Value = serde_json::from_slice(body).expect("a JSON body");
    json["age_seconds"].as_u64().expect("an age")
}

/// The JSON log lines of target `access` in `log`.
fn access_lines(log: &[String]) -> Vec<serde_json::Value> {
    log.iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["target"] == "access")
        .collect()
}

/// Waits until the access log has a line with `request_id` `id`.
fn wait_for_access_line(log: &Mutex<Vec<String>>, id: &str) {
    let started = Instant::now();
    while !access_lines(&log.lock().expect("log")).iter().any(|line| line["request_id"] == id) {
        assert!(started.elapsed() < Duration::from_secs(10), "no access line for {id}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn chromium_decodes_a_compressed_answer_to_the_identity_body() {
    if !chromium_installed() {
        assert!(
            !in_ci(),
            "chromium is not installed, and CI must run this test: install Debian's `chromium` package \
             (`cargo xtask tools chromium`, or `cargo xtask ci`, which installs it)"
        );
        eprintln!("note: chromium is not installed; skipping (Debian's `chromium` package has it)");
        return;
    }
    let scratch = Scratch::new("browser");

    let offered = chromium_accept_encoding(&scratch.0);
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT_ENCODING, HeaderValue::from_str(&offered).expect("a header value"));
    let expected = negotiate(&headers).unwrap_or(Encoding::Identity);
    let expected_name = expected.header().unwrap_or_else(|| {
        panic!("chromium offers `Accept-Encoding: {offered}`, which gets no compressed answer from the service")
    });

    // The bundled sample, a day-long TTL (every answer after the first
    // from memory), and the access log.
    let mut child = Command::new(BINARY)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LOG_FORMAT", "json")
        .env("POSITIONS_BIND", "127.0.0.1:0")
        .env("POSITION_CACHE_TTL_SEC", "86400")
        .env("ACCESS_LOG", "true")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let mut lines = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
    let _service = Running(child);
    let addr = support::listening_addr(&support::until_listening(&mut lines, drop));
    let log = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&log);
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(|line| kept.lock().expect("log").push(line)));
    let url = format!("http://{addr}{WALLET}");

    // The load from the source; every later answer is from memory.
    let loaded = curl_identity(&url, "load");
    assert!(String::from_utf8_lossy(&loaded).contains("\"cached\":false"), "{}", String::from_utf8_lossy(&loaded));

    for round in 0..ROUNDS {
        let before = curl_identity(&url, &format!("before-{round}"));
        let decoded = pre_text(&dump_dom(&scratch.0, &url));
        let after = curl_identity(&url, &format!("after-{round}"));
        assert!(String::from_utf8_lossy(&before).contains("\"cached\":true"), "{}", String::from_utf8_lossy(&before));
        if age(&after) - age(&before) > 1 {
            eprintln!("round {round}: chromium took over a second; again");
            continue;
        }
        assert!(
            decoded.as_bytes() == before || decoded.as_bytes() == after,
            "chromium's decoded text is not the identity body:\nchromium: {decoded}\nidentity: {}\nidentity: {}",
            String::from_utf8_lossy(&before),
            String::from_utf8_lossy(&after)
        );

        // The access log: curl's answers went out as identity, Chromium's
        // (the wallet requests between this round's two curls) in the
        // coding its Accept-Encoding gets.
        wait_for_access_line(&log, &format!("after-{round}"));
        let access = access_lines(&log.lock().expect("log"));
        let position = |id: &str| access.iter().position(|line| line["request_id"] == id).expect("an access line");
        let (first, last) = (position(&format!("before-{round}")), position(&format!("after-{round}")));
        for line in [&access[first], &access[last]] {
            assert_eq!(line["encoding"], "identity", "curl asked for no coding: {line}");
        }
        let chromium: Vec<&serde_json::Value> =
            access[first + 1..last].iter().filter(|line| line["route"] == "/v4/positions/{wallet}").collect();
        assert!(!chromium.is_empty(), "no access line for chromium's request: {access:#?}");
        for line in chromium {
            assert_eq!(line["status"], 200, "{line}");
            assert_eq!(line["cache"], "hit", "{line}");
            assert_eq!(
                line["encoding"], expected_name,
                "chromium offered `Accept-Encoding: {offered}`, so the service must answer {expected_name}: {line}"
            );
        }
        return;
    }
    panic!("chromium took over a second in each of {ROUNDS} rounds");
}
