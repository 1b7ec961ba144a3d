//! Conditional requests and compressed answers, checked with this crate's
//! client, with curl and with Python: an `ETag` that names what the answer
//! says, `304` for a client that holds it, and gzip or br bodies that
//! decode to the identity body byte for byte. A browser's decoding is
//! checked by `crates/positions-api/tests/browser.rs` (headless Chromium).

use std::io::Read;
use std::process::Command;
use std::sync::Arc;

use http::Method;
use system_tests::{FakeSource, Reply, TestService};

use crate::PATH;

async fn get(service: &TestService, headers: &[(&str, &str)]) -> Reply {
    service.client().send(Method::GET, PATH, headers).await
}

/// Runs a command to the end off the runtime's threads; its stdout.
async fn run(program: &str, args: Vec<String>) -> Vec<u8> {
    let shown = format!("{program} {}", args.join(" "));
    let output = tokio::task::spawn_blocking({
        let program = program.to_owned();
        move || Command::new(program).args(args).output()
    })
    .await
    .expect("command task")
    .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    assert!(output.status.success(), "{shown}: {}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

#[tokio::test]
async fn an_etag_names_the_entry_and_if_none_match_answers_304() {
    let service = TestService::with_source(Arc::new(FakeSource::new())).await;
    let first = get(&service, &[]).await;
    let etag = first.header("etag").to_owned();
    assert!(etag.starts_with("W/\"") && etag.ends_with('"'), "{etag}");
    assert_eq!(first.header("vary"), "accept-encoding");
    service.clock.advance(std::time::Duration::from_secs(3));
    let later = get(&service, &[]).await;
    assert_eq!(later.header("etag"), etag, "the age is not part of it");
    assert_ne!(later.json()["age_seconds"], first.json()["age_seconds"]);

    let strong = etag.trim_start_matches("W/");
    for condition in [etag.clone(), strong.to_owned(), "*".to_owned(), format!("\"other\", {etag}")] {
        let reply = get(&service, &[("if-none-match", &condition)]).await;
        assert_eq!(reply.status, 304, "{condition}");
        assert!(reply.body.is_empty(), "{condition}");
        assert_eq!(reply.header("etag"), etag);
        for header in ["age", "cache-control", "cache-status"] {
            assert!(!reply.header(header).is_empty(), "{condition}: no {header}");
        }
    }
    let other = get(&service, &[("if-none-match", "W/\"0123\"")]).await;
    assert_eq!(other.status, 200);

    // A new entry, a new tag: a client holding the old one gets the body.
    let forced = service.client().get(&format!("{PATH}?refresh=true")).await;
    assert_ne!(forced.header("etag"), etag);
    let changed = get(&service, &[("if-none-match", &etag)]).await;
    assert_eq!((changed.status.as_u16(), changed.header("etag")), (200, forced.header("etag")));
    let metrics = service.client().get("/metrics").await.text();
    assert!(
        metrics.lines().any(|l| l.starts_with("http_requests_total{") && l.contains("status=\"304\"")),
        "{metrics}"
    );
    service.stop().await;
}

#[tokio::test]
async fn bodies_are_compressed_as_asked_and_decode_to_the_identity_body() {
    let service = TestService::with_source(Arc::new(FakeSource::new())).await;
    get(&service, &[]).await;
    // Every answer from now on is this cached one (the clock stands still).
    let identity = get(&service, &[]).await;
    assert_eq!((identity.header("content-encoding"), identity.json()["cached"].as_bool()), ("", Some(true)));

    for (accept, coding) in [
        ("gzip", "gzip"),
        ("br", "br"),
        ("gzip, deflate, br", "br"),
        ("br;q=0.5, gzip", "gzip"),
        ("identity;q=0, gzip;q=0.2", "gzip"),
        ("br;q=0, gzip;q=0", ""),
        ("compress", ""),
    ] {
        let reply = get(&service, &[("accept-encoding", accept)]).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("content-encoding"), coding, "{accept}");
        assert_eq!(reply.header("content-length"), reply.body.len().to_string(), "{accept}: exact length");
        let mut decoded = Vec::new();
        match coding {
            "gzip" => drop(flate2::read::GzDecoder::new(&reply.body[..]).read_to_end(&mut decoded).expect("gzip")),
            "br" => drop(brotli::Decompressor::new(&reply.body[..], 4096).read_to_end(&mut decoded).expect("br")),
            _ => decoded = reply.body.to_vec(),
        }
        assert_eq!(decoded, identity.body, "{accept}: byte for byte");
        if !coding.is_empty() {
            assert!(reply.body.len() < identity.body.len(), "{accept}: smaller");
        }
    }

    // curl decodes both codings itself, and Python's gzip module decodes
    // what curl saved raw.
    let url = format!("{}{PATH}", service.base);
    for coding in ["gzip", "br"] {
        let args =
            vec!["-sS".into(), "--compressed".into(), "-H".into(), format!("accept-encoding: {coding}"), url.clone()];
        assert_eq!(run("curl", args).await, identity.body, "curl --compressed, {coding}");
    }
    let raw = run("curl", vec!["-sS".into(), "-H".into(), "accept-encoding: gzip".into(), url.clone()]).await;
    let script = "import gzip, sys; sys.stdout.buffer.write(gzip.decompress(sys.stdin.buffer.read()))";
    let decoded = tokio::task::spawn_blocking(move || {
        let mut child = Command::new("python3")
            .args(["-c", script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3");
        std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), &raw).expect("write");
        child.wait_with_output().expect("python3 output")
    })
    .await
    .expect("python task");
    assert!(decoded.status.success());
    assert_eq!(decoded.stdout, identity.body, "python3 gzip.decompress");
    service.stop().await;
}

#[tokio::test]
async fn curl_revalidates_with_the_etag_it_saved() {
    let service = TestService::with_source(Arc::new(FakeSource::new())).await;
    let dir = std::env::temp_dir().join(format!("etag-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let saved = dir.join("etag").display().to_string();
    let url = format!("{}{PATH}", service.base);
    let status = |extra: &[&str]| {
        let mut args: Vec<String> = ["-sS", "-o", "/dev/null", "-w", "%{http_code}"].map(String::from).to_vec();
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args.push(url.clone());
        args
    };
    assert_eq!(run("curl", status(&["--etag-save", &saved])).await, b"200");
    assert_eq!(run("curl", status(&["--etag-compare", &saved])).await, b"304");
    service.clock.advance(std::time::Duration::from_millis(1));
    service.client().get(&format!("{PATH}?refresh=true")).await;
    assert_eq!(run("curl", status(&["--etag-compare", &saved])).await, b"200", "a new entry");
    let _ = std::fs::remove_dir_all(&dir);
    service.stop().await;
}
