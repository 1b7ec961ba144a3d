//! The `http` source against a real upstream over HTTP and HTTPS.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use positions_api::source::http::{CaBundle, HttpSource};
use system_tests::service::default_options;
use system_tests::upstream::unrelated_ca_pem;
use system_tests::{TestService, Upstream};

use crate::PATH;

const BODY: &str = r#"{"computed_at":"2026-11-24T11:00:00","positions":[{"token":"0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48",
"symbol":"USDC","quantity":1520.250000000000000001,"avg_cost":"0.9998","cost_basis":"1519.945950","price":1.0001,
"market_value":"1520.402025","unrealized_pnl":"0.456075","realized_pnl":"12.50","confidence":"High",
"price_updated_at":"2026-11-24T10:59:30","unknown":"ignored"}]}"#;

async fn service_over(upstream: &Upstream, timeout: Duration) -> TestService {
    let mut options = default_options();
    options.refresh.timeout = timeout * 2;
    let source = HttpSource::new(&upstream.base, timeout).expect("valid base URL");
    TestService::start(options, Arc::new(source), None).await
}

#[tokio::test]
async fn an_upstreams_positions_are_served_with_every_digit() {
    let upstream = Upstream::start(BODY).await;
    let service = service_over(&upstream, Duration::from_secs(2)).await;
    let reply = service.client().get(PATH).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["computed_at"], "2026-11-24T11:00:00Z", "the upstream's own timestamp, read as UTC");
    let p = &body["positions"][0];
    assert_eq!(p["quantity"], "1520.250000000000000001", "a JSON number kept every digit");
    assert_eq!(p["price"], "1.0001");
    assert_eq!(p["confidence"], "high");
    assert_eq!(p["price_updated_at"], "2026-11-24T10:59:30Z");
    assert_eq!(upstream.requests(), 1);
    service.stop().await;
}

#[tokio::test]
async fn upstream_failures_map_to_gateway_errors() {
    let upstream = Upstream::start(BODY).await;
    let service = service_over(&upstream, Duration::from_millis(300)).await;
    let client = service.client();

    upstream.answer(404, "no such wallet");
    let empty = client.get(PATH).await.json();
    assert_eq!(empty["positions"], serde_json::json!([]), "404 means no positions");

    let other = "/v4/positions/0x0000000000000000000000000000000000000009";
    upstream.answer(500, "boom");
    let failed = client.get(other).await;
    assert_eq!(failed.status, 502);
    assert!(failed.json()["message"].as_str().is_some_and(|m| m.contains("500")), "{}", failed.text());

    upstream.answer(200, "{\"positions\": [{\"token\": 1}]}");
    let garbage = client.get(other).await;
    assert_eq!(garbage.status, 502);
    assert!(garbage.text().contains("upstream body invalid: invalid type"), "{}", garbage.text());

    upstream.answer(200, BODY);
    upstream.delay(Duration::from_secs(5));
    let slow = client.get(other).await;
    assert_eq!(slow.status, 504, "{}", slow.text());
    assert_eq!(slow.json()["error"], "source_timeout");
    service.stop().await;
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_502_with_the_cause() {
    // Bind and drop, so that nothing listens on the port.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let source = HttpSource::new(&format!("http://127.0.0.1:{port}"), Duration::from_secs(1)).expect("valid");
    let service = TestService::with_source(Arc::new(source)).await;
    let reply = service.client().get(PATH).await;
    assert_eq!(reply.status, 502);
    assert!(reply.json()["message"].as_str().is_some_and(|m| m.contains("upstream unreachable")), "{}", reply.text());
    assert!(!reply.text().contains(&port.to_string()), "the body names the upstream: {}", reply.text());
    service.stop().await;
}

#[tokio::test]
async fn numbers_are_exact_or_a_502_and_impossible_years_are_a_502_not_a_panic() {
    let upstream = Upstream::start(&BODY.replace("1520.250000000000000001", "1.5e3")).await;
    let service = service_over(&upstream, Duration::from_secs(2)).await;
    let client = service.client();
    let reply = client.get(PATH).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["positions"][0]["quantity"], "1500", "an exponent read exactly");

    let cases = [
        (BODY.replace("1520.250000000000000001", "1.234567890123456789012345678901234567890e9"), "invalid decimal"),
        (BODY.replace("1520.250000000000000001", "1234567890.123456789012345678901234567890"), "invalid decimal"),
        (BODY.replace("2026-11-24T10:59:30", "-0001-01-01T00:00:00"), "invalid timestamp"),
        (BODY.replace("2026-11-24T10:59:30", "+10000-01-01T00:00:00Z"), "invalid timestamp"),
    ];
    for (n, (body, cause)) in cases.iter().enumerate() {
        upstream.answer(200, body);
        let reply = client.get(&format!("/v4/positions/0x{:040x}", n + 1)).await;
        assert_eq!(reply.status, 502, "{cause}: {}", reply.text());
        let message = reply.json()["message"].as_str().unwrap_or_default().to_owned();
        assert!(message.contains("upstream body invalid") && message.contains(cause), "{message}");
    }
    service.stop().await;
}

#[tokio::test]
async fn an_https_upstream_is_trusted_through_its_ca_file_and_no_other() {
    let (upstream, ca_pem) = Upstream::start_tls(BODY).await;
    let ca = CaBundle::from_pem(Path::new("ca.pem"), ca_pem.as_bytes()).expect("a valid CA");
    let source = HttpSource::with_ca(&upstream.base, Duration::from_secs(2), &ca).expect("valid");
    let service = TestService::with_source(Arc::new(source)).await;
    let reply = service.client().get(PATH).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["positions"][0]["quantity"], "1520.250000000000000001");
    service.stop().await;

    let wrong = CaBundle::from_pem(Path::new("wrong.pem"), unrelated_ca_pem().as_bytes()).expect("a valid CA");
    let sources = [
        ("the webpki roots", HttpSource::new(&upstream.base, Duration::from_secs(2)).expect("valid")),
        ("a wrong CA", HttpSource::with_ca(&upstream.base, Duration::from_secs(2), &wrong).expect("valid")),
    ];
    for (trust, source) in sources {
        let service = TestService::with_source(Arc::new(source)).await;
        let reply = service.client().get(PATH).await;
        assert_eq!(reply.status, 502, "{trust}: {}", reply.text());
        let message = reply.json()["message"].as_str().unwrap_or_default().to_owned();
        assert!(message.contains("upstream TLS handshake failed: invalid peer certificate"), "{trust}: {message}");
        assert!(!message.contains(&upstream.addr.to_string()) && !message.contains("127.0.0.1"), "{message}");
        service.stop().await;
    }
    assert_eq!(upstream.requests(), 1, "only the trusted source got through");
}
