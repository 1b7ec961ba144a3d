//! Redis's health is known without traffic: the prober's `PING` every
//! health interval sees Redis die and come back while no operation runs.

use std::time::Duration;

use cache_redis::testing::RedisServer;
use cache_redis::{BreakerState, Config};

use crate::support::{command_calls, tier_with, wait_until};

const INTERVAL: Duration = Duration::from_millis(200);

/// Two intervals, the promise, plus room for a loaded machine to schedule
/// the prober: a bound on the wait, not a measurement.
const WITHIN: Duration = Duration::from_millis(2 * 200 + 1000);

#[tokio::test]
async fn a_killed_redis_is_seen_down_and_a_restarted_one_up_with_no_traffic() {
    let mut server = RedisServer::start();
    let (tier, counts) = tier_with(Config { health_interval: INTERVAL, ..Config::new(server.url()) });
    wait_until("the first probe answers", WITHIN, || async { tier.is_up() }).await;

    // No operation from here on: only the prober talks to Redis.
    server.kill();
    let down = wait_until("redis is seen down", WITHIN, || async { !tier.is_up() }).await;
    println!("FIGURE no traffic: redis seen down {down:?} after it was killed ({INTERVAL:?} interval)");

    // Down long enough for the breaker to open, whose pause grows past the
    // interval: the probe does not wait for it.
    wait_until("the breaker opens", Duration::from_secs(10), || async { tier.state() == BreakerState::Open }).await;
    server.restart();
    let up = wait_until("redis is seen up again", WITHIN, || async { tier.is_up() && tier.is_available() }).await;
    println!("FIGURE no traffic: redis seen up {up:?} after it came back");
    assert_eq!(*counts.up.lock().unwrap(), [true, false, true]);
    assert_eq!(counts.rejected(), 0, "the prober alone did it");
}

#[tokio::test]
async fn the_probe_is_a_ping_per_interval_when_nothing_else_talks_to_redis() {
    let server = RedisServer::start();
    let (tier, _) = tier_with(Config { health_interval: INTERVAL, ..Config::new(server.url()) });
    let before = command_calls(&server, "ping").await;
    wait_until("three more probes", Duration::from_secs(10), || async {
        command_calls(&server, "ping").await >= before + 3
    })
    .await;
    assert!(tier.is_up());
}
