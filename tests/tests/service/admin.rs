//! DELETE: off without a token, protected with one, and it really drops
//! the wallet.

use std::sync::Arc;
use std::time::Duration;

use system_tests::service::default_options;
use system_tests::{FakeSource, TestService};

use crate::{PATH, WALLET};

const TOKEN: &str = "s3cret-admin-token";

#[tokio::test]
async fn delete_is_disabled_without_an_admin_token() {
    let service = TestService::with_source(Arc::new(FakeSource::new())).await;
    let reply = service.client().delete(PATH, Some("anything")).await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.json()["error"], "admin_disabled");
    service.stop().await;
}

#[tokio::test]
async fn delete_needs_the_right_bearer_token() {
    let source = Arc::new(FakeSource::new());
    let service = TestService::start(default_options(), source.clone(), Some(TOKEN)).await;
    let client = service.client();
    client.get(PATH).await;

    let missing = client.delete(PATH, None).await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.header("www-authenticate"), "Bearer");
    assert_eq!(missing.json()["error"], "unauthorized");
    let wrong = client.delete(PATH, Some("not-the-token")).await;
    assert_eq!(wrong.status, 403);
    assert_eq!(wrong.json()["error"], "forbidden");
    assert_eq!(client.get(PATH).await.json()["cached"], true, "refused deletes removed nothing");

    let deleted = client.delete(PATH, Some(TOKEN)).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    assert_eq!(deleted.json(), serde_json::json!({"wallet": WALLET, "removed": true}));
    assert_eq!(client.get(PATH).await.json()["cached"], false, "the next read loads afresh");
    assert_eq!(source.calls(), 2);

    let invalid = client.delete("/v4/positions/nope", Some(TOKEN)).await;
    assert_eq!(invalid.status, 400);
    service.stop().await;
}

#[tokio::test]
async fn delete_by_pattern_drops_only_what_matches() {
    let source = Arc::new(FakeSource::new());
    let service = TestService::start(default_options(), source.clone(), Some(TOKEN)).await;
    let client = service.client();
    let wallets = [
        "0xab00000000000000000000000000000000000001",
        "0xab00000000000000000000000000000000000002",
        "0xcd00000000000000000000000000000000000003",
    ];
    for w in wallets {
        client.get(&format!("/v4/positions/{w}")).await;
    }
    let reply = client.delete("/v4/positions?pattern=0xab*", Some(TOKEN)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["removed"], 2);
    // Loads that start after the deletion store again; one that started at
    // its very instant counts as started before it (the tombstone's rule).
    service.clock.advance(Duration::from_millis(1));
    assert_eq!(client.get(&format!("/v4/positions/{}", wallets[2])).await.json()["cached"], true);
    assert_eq!(client.get(&format!("/v4/positions/{}", wallets[0])).await.json()["cached"], false);

    let bad = client.delete("/v4/positions?pattern=0x[ab", Some(TOKEN)).await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error"], "bad_request");
    let all = client.delete("/v4/positions", Some(TOKEN)).await;
    assert_eq!(all.json()["removed"], 2, "no pattern means every wallet");
    assert_eq!(service.app.service().health().lru_size, 0);
    service.stop().await;
}

#[tokio::test]
async fn the_bearer_scheme_is_matched_in_any_letter_case() {
    let source = Arc::new(FakeSource::new());
    let service = TestService::start(default_options(), source.clone(), Some(TOKEN)).await;
    let client = service.client();
    client.get(PATH).await;
    for scheme in ["bearer", "BEARER", "BeArEr"] {
        let auth = format!("{scheme} {TOKEN}");
        let reply = client.send(http::Method::DELETE, PATH, &[("authorization", &auth)]).await;
        assert_eq!(reply.status, 200, "{scheme}: {}", reply.text());
    }
    let basic = client.send(http::Method::DELETE, PATH, &[("authorization", &format!("Basic {TOKEN}"))]).await;
    assert_eq!(basic.status, 401, "another scheme is no bearer token");
    service.stop().await;
}

#[tokio::test]
async fn a_percent_encoded_pattern_is_decoded() {
    let source = Arc::new(FakeSource::new());
    let service = TestService::start(default_options(), source.clone(), Some(TOKEN)).await;
    let client = service.client();
    let wallets = ["0x5a00000000000000000000000000000000000001", "0x5b00000000000000000000000000000000000002"];
    for w in wallets {
        client.get(&format!("/v4/positions/{w}")).await;
    }
    // What `curl -G --data-urlencode 'pattern=0x5*'` sends.
    let reply = client.delete("/v4/positions?pattern=0x5%2A", Some(TOKEN)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json(), serde_json::json!({"pattern": "0x5*", "removed": 2, "partial": false}));

    let bad = client.delete("/v4/positions?pattern=0x5%2", Some(TOKEN)).await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error"], "bad_request");
    service.stop().await;
}

/// A load in flight when its wallet is deleted (by id or by pattern) still
/// answers the requests waiting for it, but stores nothing: the next read
/// loads afresh.
#[tokio::test]
async fn a_delete_is_final_for_a_load_already_in_flight() {
    for delete_path in [PATH.to_owned(), format!("/v4/positions?pattern={}*", &WALLET[..8])] {
        let source = Arc::new(FakeSource::new());
        let service = TestService::start(default_options(), source.clone(), Some(TOKEN)).await;
        source.hold();
        let client = service.client();
        let in_flight = tokio::spawn(async move { client.get(PATH).await });
        system_tests::eventually("the load to reach the source", Duration::from_secs(5), || async {
            source.calls() == 1
        })
        .await;
        service.clock.advance(Duration::from_millis(1));
        assert_eq!(service.client().delete(&delete_path, Some(TOKEN)).await.status, 200);
        source.release();
        let answered = in_flight.await.expect("request task");
        assert_eq!(answered.json()["positions"][0]["realized_pnl"], "1", "{delete_path}: its waiter is answered");
        assert_eq!(service.app.service().health().lru_size, 0, "{delete_path}: nothing was stored");

        service.clock.advance(Duration::from_millis(1));
        let next = service.client().get(PATH).await.json();
        assert_eq!((next["cached"].as_bool(), next["positions"][0]["realized_pnl"].as_str()), (Some(false), Some("2")));
        service.stop().await;
    }
}
