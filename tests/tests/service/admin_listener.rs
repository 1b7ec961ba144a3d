//! `ADMIN_BIND`: the admin routes (`DELETE`, `/metrics`) on a listener of
//! their own, and absent from the public one.

use std::sync::Arc;

use system_tests::{Client, FakeSource, TestService};

use crate::{PATH, WALLET};

const TOKEN: &str = "s3cret-admin-token";

#[tokio::test]
async fn with_an_admin_listener_the_public_one_answers_admin_routes_404() {
    let source = Arc::new(FakeSource::new());
    let service = TestService::builder(source.clone()).admin_token(TOKEN).admin_listener().start().await;
    let public = service.client();
    let admin = Client::new(service.admin_base.clone().expect("an admin listener"));
    assert_eq!(public.get(PATH).await.status, 200);

    for reply in [
        public.delete(PATH, Some(TOKEN)).await,
        public.delete("/v4/positions", Some(TOKEN)).await,
        public.delete("/v4/positions?pattern=*", Some(TOKEN)).await,
        public.get("/metrics").await,
    ] {
        assert_eq!(reply.status, 404, "{}", reply.text());
        assert_eq!(reply.json()["error"], "not_found");
    }
    assert_eq!(public.get(PATH).await.json()["cached"], true, "a refused delete removed nothing");
    for path in ["/health", "/livez", "/readyz"] {
        assert_eq!(public.get(path).await.status, 200, "{path} stays public");
    }

    let metrics = admin.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.text().contains("position_cache_hits_total"), "{}", metrics.text());
    assert_eq!(admin.delete(PATH, None).await.status, 401, "the admin listener still needs the token");
    let deleted = admin.delete(PATH, Some(TOKEN)).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    assert_eq!(deleted.json(), serde_json::json!({"wallet": WALLET, "removed": true}));
    assert_eq!(public.get(PATH).await.json()["cached"], false, "the delete on the admin listener took effect");
    assert_eq!(source.calls(), 2);
    service.stop().await;
}

#[tokio::test]
async fn without_an_admin_listener_every_route_is_public() {
    let service = TestService::builder(Arc::new(FakeSource::new())).admin_token(TOKEN).start().await;
    assert!(service.admin_base.is_none());
    let client = service.client();
    assert_eq!(client.get("/metrics").await.status, 200);
    client.get(PATH).await;
    assert_eq!(client.delete(PATH, Some(TOKEN)).await.status, 200);
    service.stop().await;
}
