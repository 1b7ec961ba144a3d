//! Every replica serves the newest copy: a store on one makes the others
//! drop their older one.

use std::time::Duration;

use system_tests::eventually;

use crate::{DEADLINE, Fleet, PATH, call_of};

#[tokio::test]
async fn a_forced_refresh_on_one_replica_is_what_the_others_serve() {
    let fleet = Fleet::start().await;
    fleet.warm(PATH).await;
    fleet.clock.advance(Duration::from_millis(1));
    let heard = fleet.total("position_cache_fleet_messages_received_total{kind=\"stored\"}");

    let forced = fleet.client(0).get(&format!("{PATH}?refresh=true")).await;
    assert_eq!((forced.json()["cached"].as_bool(), call_of(&forced).as_str()), (Some(false), "2"));
    for i in 1..3 {
        eventually(&format!("replica {i} to serve the forced copy"), DEADLINE, || async {
            let reply = fleet.client(i).get(PATH).await;
            call_of(&reply) == "2" && reply.json()["computed_at"] == forced.json()["computed_at"]
        })
        .await;
    }
    assert_eq!(fleet.source.calls(), 2, "the others took it from Redis");
    let stored = fleet.total("position_cache_fleet_messages_received_total{kind=\"stored\"}");
    assert_eq!(stored - heard, 2, "both others heard of the store");
    fleet.stop().await;
}
