//! Bad input: every malformed wallet, route and method gets its status and
//! a JSON error, and nothing reaches the source.

use std::sync::Arc;

use http::Method;
use system_tests::{FakeSource, TestService};

#[tokio::test]
async fn bad_wallets_routes_and_methods_get_json_errors() {
    let source = Arc::new(FakeSource::new());
    let service = TestService::with_source(source.clone()).await;
    let client = service.client();
    let cases: &[(Method, &str, u16, &str)] = &[
        (Method::GET, "/v4/positions/", 400, "invalid_wallet"),
        (Method::GET, &format!("/v4/positions/0x{}", "a".repeat(41)), 400, "invalid_wallet"),
        (Method::GET, &format!("/v4/positions/{}", "1".repeat(200)), 400, "invalid_wallet"),
        (Method::GET, "/v4/positions/0x52908400098527886e0f7030069857d2e4169zz7", 400, "invalid_wallet"),
        (Method::GET, "/v4/positions/*", 400, "invalid_wallet"),
        (Method::GET, "/v4/positions/..%2Fx", 400, "invalid_wallet"),
        (Method::GET, "/v4/positions/../x", 400, "invalid_wallet"),
        (Method::GET, "/v4/positions/%30x52908400098527886e0f7030069857d2e4169ee7", 400, "invalid_wallet"),
        (Method::GET, "/v4/positions/w%C3%A4llet1111111111111111111111111111111", 400, "invalid_wallet"),
        (Method::GET, "/v4/positions/0x52908400098527886e0f7030069857d2e4169ee7/extra", 400, "invalid_wallet"),
        (Method::GET, "/v4/positions/0x52908400098527886e0f7030069857d2e4169ee7?refresh=maybe", 400, "bad_request"),
        (Method::GET, "/v3/positions/0x52908400098527886e0f7030069857d2e4169ee7", 404, "not_found"),
        (Method::GET, "/", 404, "not_found"),
        (Method::GET, "/v4/positions", 405, "method_not_allowed"),
        (Method::POST, "/v4/positions/0x52908400098527886e0f7030069857d2e4169ee7", 405, "method_not_allowed"),
        (Method::PUT, "/health", 405, "method_not_allowed"),
        (Method::DELETE, "/metrics", 405, "method_not_allowed"),
    ];
    for (method, path, status, code) in cases {
        let reply = client.send(method.clone(), path, &[]).await;
        assert_eq!(reply.status, *status, "{method} {path}: {}", reply.text());
        assert_eq!(reply.header("content-type"), "application/json", "{method} {path}");
        let body = reply.json();
        assert_eq!(body["error"], *code, "{method} {path}: {body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{method} {path}: {body}");
        if *status == 405 {
            assert!(!reply.header("allow").is_empty(), "{method} {path}: a 405 says what is allowed");
        }
    }
    assert_eq!(source.calls(), 0, "no bad request reached the source");
    service.stop().await;
}

#[tokio::test]
async fn an_upper_case_evm_address_is_served_lower_case_from_one_entry() {
    let source = Arc::new(FakeSource::new());
    let service = TestService::with_source(source.clone()).await;
    let client = service.client();
    let upper = client.get("/v4/positions/0x52908400098527886E0F7030069857D2E4169EE7").await;
    assert_eq!(upper.status, 200);
    assert_eq!(upper.json()["wallet"], "0x52908400098527886e0f7030069857d2e4169ee7");
    let lower = client.get("/v4/positions/0x52908400098527886e0f7030069857d2e4169ee7").await;
    assert_eq!(lower.json()["cached"], true, "both spellings share one entry");
    assert_eq!(source.calls(), 1);
    let base58 = client.get("/v4/positions/DRpbCBMxVnDK7maPM5tGv6MvB3v1sRMC86PZ8okm21hy").await;
    assert_eq!(base58.json()["wallet"], "DRpbCBMxVnDK7maPM5tGv6MvB3v1sRMC86PZ8okm21hy", "base58 keeps its case");
    service.stop().await;
}

#[tokio::test]
async fn head_answers_like_get_without_a_body() {
    let service = TestService::with_source(Arc::new(FakeSource::new())).await;
    let reply = service.client().send(Method::HEAD, crate::PATH, &[]).await;
    assert_eq!(reply.status, 200);
    assert!(reply.body.is_empty());
    assert!(!reply.header("cache-status").is_empty());
    service.stop().await;
}
