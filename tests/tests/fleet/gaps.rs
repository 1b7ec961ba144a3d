//! Pub/sub is at-most-once: a replica whose subscription is down must not
//! go on serving what a lost message would have removed. And with Redis
//! gone altogether, each replica serves alone, then the fleet coordinates
//! again.

use std::time::Duration;

use system_tests::eventually;

use crate::{Backing, DEADLINE, Fleet, PATH, TOKEN, call_of, metric};

const OTHER: &str = "/v4/positions/0x8617e340b3d01fa5f11f306f4090fd50e238070d";
const OTHER_KEY: &str = "poscache:positions:v2:{0x8617e340b3d01fa5f11f306f4090fd50e238070d}";

#[tokio::test]
async fn a_replica_whose_subscription_was_cut_does_not_serve_what_it_missed_as_fresh() {
    let fleet = Fleet::start().await;
    fleet.warm(PATH).await;
    fleet.warm(OTHER).await;
    let held = call_of(&fleet.client(2).get(OTHER).await);

    // Cut every subscription, and keep them down: no one may subscribe.
    cut_subscriptions(&fleet).await;
    fleet.clock.advance(Duration::from_millis(1));

    // A delete during the gap: its message reaches no one. Replica 1 still
    // holds the wallet in memory, but while deaf it asks Redis first, which
    // no longer has it, so it loads instead of serving the deleted copy.
    let deleted = fleet.client(0).delete(PATH, Some(TOKEN)).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    let reply = fleet.client(1).get(PATH).await;
    assert_eq!(reply.json()["cached"], false, "{}", reply.text());
    assert_ne!(call_of(&reply), "1");

    // Another change that a lost message would have announced: the other
    // wallet is gone from Redis behind the replicas' backs.
    fleet.redis.command(&["UNLINK", OTHER_KEY]).await;
    fleet.redis.command(&["ACL", "SETUSER", "default", "+subscribe"]).await;
    fleet.wait_subscribed().await;
    eventually("replica 2 to revalidate what it held", DEADLINE, || async {
        metric(&fleet.replicas[2], "position_cache_fleet_resubscriptions_total") >= 1
    })
    .await;
    assert!(metric(&fleet.replicas[2], "position_cache_fleet_revalidations_total") >= 1);

    // Back on the channel, replica 2 serves what it held from before the
    // gap as stale (once, while it revalidates), never as fresh.
    let after = fleet.client(2).get(OTHER).await;
    assert_eq!((after.json()["stale"].as_bool(), call_of(&after)), (Some(true), held.clone()), "{}", after.text());
    eventually("replica 2 to serve a revalidated copy", DEADLINE, || async {
        let reply = fleet.client(2).get(OTHER).await;
        reply.json()["stale"] == false && call_of(&reply) != held
    })
    .await;
    fleet.stop().await;
}

/// Cuts every replica's subscription and keeps it down.
async fn cut_subscriptions(fleet: &Fleet) {
    fleet.redis.command(&["ACL", "SETUSER", "default", "-subscribe"]).await;
    fleet.redis.command(&["CLIENT", "KILL", "TYPE", "pubsub"]).await;
    for (i, replica) in fleet.replicas.iter().enumerate() {
        eventually(&format!("replica {i} to notice"), DEADLINE, || async {
            metric(replica, "position_cache_fleet_subscribed") == 0
        })
        .await;
    }
}

#[tokio::test]
async fn while_deaf_a_forced_refresh_answers_a_young_entry_only_while_redis_still_holds_it() {
    let fleet = Fleet::start_with(Backing::Standalone, |options| {
        options.force_refresh_min_interval = Duration::from_secs(60);
    })
    .await;
    fleet.warm(PATH).await;
    let held = call_of(&fleet.client(1).get(PATH).await);
    cut_subscriptions(&fleet).await;
    fleet.clock.advance(Duration::from_millis(1));
    let forced = format!("{PATH}?refresh=true");

    // Young, and Redis still holds it: the forced refresh is answered from
    // memory, so anonymous clients cannot drive the source during a gap.
    let reply = fleet.client(1).get(&forced).await;
    assert_eq!((reply.json()["cached"].as_bool(), call_of(&reply)), (Some(true), held.clone()), "{}", reply.text());

    // Deleted on another replica during the gap: Redis no longer has it,
    // so the young copy is not answered; the replica loads.
    let deleted = fleet.client(0).delete(PATH, Some(TOKEN)).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    let reply = fleet.client(1).get(&forced).await;
    assert_eq!(reply.json()["cached"], false, "{}", reply.text());
    assert_ne!(call_of(&reply), held);
    fleet.stop().await;
}

#[tokio::test]
async fn with_redis_killed_under_load_every_replica_serves_alone_then_coordinates_again() {
    let mut fleet = Fleet::start().await;
    let wallets: Vec<String> = (1..=20).map(|i| format!("/v4/positions/0x{i:040x}")).collect();
    for wallet in &wallets {
        fleet.warm(wallet).await;
    }

    // Traffic on every replica, all the time.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..3)
        .map(|i| {
            let (client, wallets, stop) = (fleet.client(i), wallets.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut answered, mut failed) = (0_u32, Vec::new());
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    for wallet in &wallets {
                        match client.try_send(http::Method::GET, wallet, &[]).await {
                            Ok(reply) if reply.status == 200 => answered += 1,
                            Ok(reply) => failed.push(format!("{}: {}", reply.status, reply.text())),
                            Err(e) => failed.push(e),
                        }
                    }
                }
                (answered, failed)
            })
        })
        .collect();

    fleet.redis.kill();
    for (i, replica) in fleet.replicas.iter().enumerate() {
        eventually(&format!("replica {i} to lose the channel"), DEADLINE, || async {
            metric(replica, "position_cache_fleet_subscribed") == 0
        })
        .await;
    }
    // Alone: a cold wallet asked of each replica is loaded by each, with
    // no lease to wait for.
    let calls = fleet.source.calls();
    let cold = "/v4/positions/0x00000000000000000000000000000000000000ff";
    for i in 0..3 {
        let reply = fleet.client(i).get(cold).await;
        assert_eq!((reply.status.as_u16(), reply.json()["cached"].as_bool()), (200, Some(false)), "replica {i}");
    }
    assert_eq!(fleet.source.calls(), calls + 3, "each replica loaded it alone");

    fleet.redis.restart();
    fleet.wait_subscribed().await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in load {
        let (answered, failed) = task.await.expect("load task");
        assert!(answered > 0 && failed.is_empty(), "{answered} answered; failed: {failed:?}");
    }

    // Coordinated again: a delete on one replica reaches the others.
    fleet.warm(PATH).await;
    let before = call_of(&fleet.client(1).get(PATH).await);
    fleet.clock.advance(Duration::from_millis(1));
    assert_eq!(fleet.client(0).delete(PATH, Some(TOKEN)).await.status, 200);
    for i in 1..3 {
        eventually(&format!("replica {i} to hear the delete"), DEADLINE, || async {
            call_of(&fleet.client(i).get(PATH).await) != before
        })
        .await;
    }
    fleet.stop().await;
}
