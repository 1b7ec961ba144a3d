//! `/metrics`, `/health`, `/livez` and `/readyz`.

use std::sync::Arc;

use system_tests::{FakeSource, TestService};

use crate::PATH;

#[tokio::test]
async fn metrics_are_valid_openmetrics_with_the_report_counters() {
    let service = TestService::with_source(Arc::new(FakeSource::new())).await;
    let client = service.client();
    client.get(PATH).await;
    client.get(PATH).await;
    client.get("/nowhere").await;

    // What Prometheus asks for; without it the answer is the classic text
    // format (tested with promtool in crates/positions-api/tests/deploy.rs).
    let accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let reply = client.send(http::Method::GET, "/metrics", &[("accept", accept)]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), telemetry::CONTENT_TYPE);
    let text = reply.text();
    telemetry::exposition::check(&text).unwrap_or_else(|e| panic!("invalid OpenMetrics: {e}\n{text}"));
    for counter in [
        "position_cache_hits_total 1",
        "position_cache_misses_total 1",
        "position_cache_evictions_total 0",
        "position_cache_refresh_errors_total 0",
        "position_cache_stale_serves_total 0",
        "position_cache_refresh_triggers_total 0",
    ] {
        assert!(text.lines().any(|l| l == counter), "missing `{counter}` in\n{text}");
    }
    assert!(text.lines().any(|l| l == "position_cache_entries 1"), "{text}");
    for cache in ["miss", "hit"] {
        let series = format!(
            r#"http_requests_total{{route="/v4/positions/{{wallet}}",method="GET",status="200",cache="{cache}"}} 1"#
        );
        assert!(text.contains(&series), "no {series} in\n{text}");
    }
    assert!(
        text.contains(r#"http_requests_total{route="unmatched",method="GET",status="404",cache="none"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"position_source_fetch_duration_seconds_count{source="ledger",outcome="ok"} 1"#), "{text}");
    service.stop().await;
}

#[tokio::test]
async fn health_reports_the_cache() {
    let service = TestService::with_source(Arc::new(FakeSource::new())).await;
    let client = service.client();
    client.get(PATH).await;
    client.get(PATH).await;
    client.get(PATH).await;
    client.get(PATH).await;
    let health = client.get("/health").await;
    assert_eq!(health.status, 200);
    let body = health.json();
    assert_eq!(body["status"], "ok");
    let stats = &body["cache_stats"];
    assert_eq!(stats["enabled"], true);
    assert_eq!(stats["backend"], "memory");
    assert_eq!(stats["hit_rate_pct"], 75.0);
    assert_eq!(stats["lru_size"], 1);
    assert_eq!(stats["active_refresh_tasks"], 0);
    service.stop().await;
}

#[tokio::test]
async fn liveness_and_readiness() {
    let service = TestService::with_source(Arc::new(FakeSource::new())).await;
    let client = service.client();
    assert_eq!(client.get("/livez").await.json()["status"], "ok");
    assert_eq!(client.get("/readyz").await.status, 200);
    service.app.set_ready(false);
    let unready = client.get("/readyz").await;
    assert_eq!(unready.status, 503);
    assert_eq!(client.get("/livez").await.status, 200, "alive while not ready");
    service.stop().await;
}
