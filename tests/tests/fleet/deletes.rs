//! A `DELETE` on one replica empties every replica's memory, and no load
//! that started before it stores its result, on any replica or tier.

use std::time::Duration;

use system_tests::eventually;

use crate::{Backing, DEADLINE, Fleet, PATH, TOKEN, WALLET, call_of};

/// Deletes on replica 0 (`path` is the DELETE's path) and checks that
/// replicas 1 and 2 stop serving the copy they held: each soon answers a
/// fresh load instead.
pub(crate) async fn a_delete_reaches_the_other_replicas(backing: Backing, delete_path: &str) {
    let fleet = Fleet::start_on(backing).await;
    fleet.warm(PATH).await;
    fleet.clock.advance(Duration::from_millis(1));

    let deleted = fleet.client(0).delete(delete_path, Some(TOKEN)).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    assert_eq!(fleet.redis.get_raw(&fleet.key()).await, None);
    for i in 1..3 {
        eventually(&format!("replica {i} to drop the deleted copy"), DEADLINE, || async {
            call_of(&fleet.client(i).get(PATH).await) != "1"
        })
        .await;
    }
    assert_eq!(
        fleet.total("position_cache_fleet_messages_received_total{kind=\"deleted\"}")
            + fleet.total("position_cache_fleet_messages_received_total{kind=\"pattern_deleted\"}"),
        2
    );
    fleet.stop().await;
}

#[tokio::test]
async fn a_delete_on_one_replica_reaches_the_others() {
    a_delete_reaches_the_other_replicas(Backing::Standalone, PATH).await;
}

#[tokio::test]
async fn a_pattern_delete_on_one_replica_reaches_the_others() {
    a_delete_reaches_the_other_replicas(Backing::Standalone, "/v4/positions?pattern=0x5290*").await;
}

/// Starts a load on replica 0 with the source held, deletes on replica 1,
/// then lets the load finish: its requester gets the data, but nothing is
/// stored, and the next read anywhere loads afresh.
pub(crate) async fn a_load_started_before_a_delete_stores_nothing(backing: Backing, delete_path: &str) {
    let fleet = Fleet::start_on(backing).await;
    fleet.source.hold();
    let client = fleet.client(0);
    let in_flight = tokio::spawn(async move { client.get(PATH).await });
    eventually("the load to reach the source", DEADLINE, || async { fleet.source.calls() == 1 }).await;

    fleet.clock.advance(Duration::from_millis(1));
    let deleted = fleet.client(1).delete(delete_path, Some(TOKEN)).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    fleet.source.release();
    let answered = in_flight.await.expect("request task");
    assert_eq!((answered.status.as_u16(), call_of(&answered).as_str()), (200, "1"), "its requester is answered");

    assert_eq!(fleet.redis.get_raw(&fleet.key()).await, None, "nothing in Redis");
    assert_eq!(
        fleet.total("position_cache_fleet_writes_refused_total{reason=\"deleted\"}")
            + fleet.total("position_cache_fleet_memory_stores_stopped_total"),
        1,
        "the store was stopped once"
    );
    fleet.clock.advance(Duration::from_millis(1));
    let reply = fleet.client(0).get(PATH).await;
    assert_eq!(reply.json()["cached"], false, "the loading replica kept nothing of its load");
    assert_eq!(call_of(&reply), "2", "the next read loads afresh");
    for i in 1..3 {
        assert_eq!(call_of(&fleet.client(i).get(PATH).await), "2", "replica {i} never serves the deleted load");
    }
    assert_eq!(fleet.source.calls(), 2);
    fleet.stop().await;
}

#[tokio::test]
async fn a_load_that_started_before_a_delete_stores_nothing_anywhere() {
    a_load_started_before_a_delete_stores_nothing(Backing::Standalone, PATH).await;
}

#[tokio::test]
async fn a_load_that_started_before_a_pattern_delete_stores_nothing_anywhere() {
    a_load_started_before_a_delete_stores_nothing(
        Backing::Standalone,
        &format!("/v4/positions?pattern={}*", &WALLET[..10]),
    )
    .await;
}
