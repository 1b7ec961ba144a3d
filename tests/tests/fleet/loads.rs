//! One load per wallet across the fleet: a cold stampede over three
//! replicas, and a wallet gone stale on all three.

use system_tests::eventually;

use crate::{Backing, DEADLINE, Fleet, PATH, call_of};

#[tokio::test]
async fn three_hundred_cold_requests_on_each_of_three_replicas_make_one_source_call() {
    cold_requests_on_three_replicas_make_one_source_call(Backing::Standalone).await;
}

/// 300 cold requests for one wallet on each of three replicas on
/// `backing`: one source call, one copy.
pub(crate) async fn cold_requests_on_three_replicas_make_one_source_call(backing: Backing) {
    let fleet = Fleet::start_on(backing).await;
    fleet.source.hold();
    let requests: Vec<_> = (0..900)
        .map(|n| {
            let client = fleet.client(n % 3);
            tokio::spawn(async move { client.get(PATH).await })
        })
        .collect();
    // Every request counts its miss before it joins its replica's load, and
    // the replicas that did not get the lease wait for the one that did.
    eventually("all 900 requests to miss and wait", DEADLINE, || async {
        fleet.total("position_cache_misses_total") == 900
            && fleet.total("position_cache_fleet_leases_total{event=\"contended\"}") == 2
    })
    .await;
    assert_eq!(fleet.source.calls(), 1);
    fleet.source.release();

    let mut computed_at = Vec::new();
    for request in requests {
        let reply = request.await.expect("request task");
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(call_of(&reply), "1", "every answer is the one load's");
        computed_at.push(reply.json()["computed_at"].clone());
    }
    computed_at.dedup();
    assert_eq!(computed_at.len(), 1, "one copy: {computed_at:?}");
    assert_eq!(fleet.source.calls(), 1, "900 requests over three replicas, one source call");
    assert_eq!(fleet.total("position_cache_fleet_leases_total{event=\"acquired\"}"), 1);
    assert_eq!(fleet.total("position_cache_fleet_adopted_loads_total"), 2, "the others took its result");
    fleet.stop().await;
}

#[tokio::test]
async fn a_wallet_stale_on_every_replica_is_refreshed_once_and_then_all_agree() {
    a_stale_wallet_is_refreshed_once_and_then_all_agree(Backing::Standalone).await;
}

/// A wallet stale on three replicas on `backing`: one refresh, one copy.
pub(crate) async fn a_stale_wallet_is_refreshed_once_and_then_all_agree(backing: Backing) {
    let fleet = Fleet::start_on(backing).await;
    fleet.warm(PATH).await;
    assert_eq!(fleet.source.calls(), 1);
    fleet.clock.advance(system_tests::service::TTL + std::time::Duration::from_secs(1));

    fleet.source.hold();
    for i in 0..3 {
        let reply = fleet.client(i).get(PATH).await;
        assert_eq!((reply.json()["stale"].as_bool(), call_of(&reply).as_str()), (Some(true), "1"), "replica {i}");
    }
    // Each replica started its one background refresh; one holds the lease
    // and calls the source, the two others wait for its result.
    eventually("two replicas to wait for the lease holder", DEADLINE, || async {
        fleet.total("position_cache_fleet_leases_total{event=\"contended\"}") == 2
    })
    .await;
    fleet.source.release();

    for i in 0..3 {
        eventually(&format!("replica {i} to serve the refreshed copy"), DEADLINE, || async {
            let reply = fleet.client(i).get(PATH).await;
            reply.json()["stale"] == false && call_of(&reply) == "2"
        })
        .await;
    }
    assert_eq!(fleet.source.calls(), 2, "one refresh for the three replicas");
    let computed_at: Vec<_> =
        one_answer_each(&fleet).await.into_iter().map(|reply| reply.json()["computed_at"].clone()).collect();
    assert!(computed_at.windows(2).all(|pair| pair[0] == pair[1]), "{computed_at:?}");
    fleet.stop().await;
}

/// One answer from each replica.
async fn one_answer_each(fleet: &Fleet) -> Vec<system_tests::Reply> {
    let mut replies = Vec::new();
    for i in 0..3 {
        replies.push(fleet.client(i).get(PATH).await);
    }
    replies
}
