//! The `http` source against a real upstream over HTTP.

use std::sync::Arc;
use std::time::Duration;

use positions_api::source::http::HttpSource;
use system_tests::service::default_options;
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
    assert!(garbage.text().contains("not positions"), "{}", garbage.text());

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
    assert!(reply.json()["message"].as_str().is_some_and(|m| m.contains("failed")), "{}", reply.text());
    service.stop().await;
}
