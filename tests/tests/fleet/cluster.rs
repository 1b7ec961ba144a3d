//! The fleet's invalidation and one-load-per-wallet tests again, with the
//! three replicas on a Redis Cluster (`REDIS_MODE=cluster`, every node a
//! seed) instead of one `redis-server`: the same assertions, the same
//! helpers. The tests share one cluster, each fleet in a key namespace
//! (and so on a fleet channel) of its own.

use crate::deletes::{a_delete_reaches_the_other_replicas, a_load_started_before_a_delete_stores_nothing};
use crate::loads::{
    a_stale_wallet_is_refreshed_once_and_then_all_agree, cold_requests_on_three_replicas_make_one_source_call,
};
use crate::{Backing, PATH, WALLET};

#[tokio::test]
async fn on_a_cluster_a_delete_on_one_replica_reaches_the_others() {
    a_delete_reaches_the_other_replicas(Backing::Cluster, PATH).await;
}

#[tokio::test]
async fn on_a_cluster_a_pattern_delete_on_one_replica_reaches_the_others() {
    a_delete_reaches_the_other_replicas(Backing::Cluster, "/v4/positions?pattern=0x5290*").await;
}

#[tokio::test]
async fn on_a_cluster_a_load_that_started_before_a_pattern_delete_stores_nothing_anywhere() {
    a_load_started_before_a_delete_stores_nothing(
        Backing::Cluster,
        &format!("/v4/positions?pattern={}*", &WALLET[..10]),
    )
    .await;
}

#[tokio::test]
async fn on_a_cluster_cold_requests_on_three_replicas_make_one_source_call() {
    cold_requests_on_three_replicas_make_one_source_call(Backing::Cluster).await;
}

#[tokio::test]
async fn on_a_cluster_a_wallet_stale_on_every_replica_is_refreshed_once() {
    a_stale_wallet_is_refreshed_once_and_then_all_agree(Backing::Cluster).await;
}
