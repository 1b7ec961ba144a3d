//! The fleet's channel against a real `redis-server` on a Unix socket: a
//! message reaches the other instances and not its sender, garbage is
//! ignored and counted, and every gap in the subscription (a killed
//! connection, a restarted or frozen server, a server down at start) is
//! reported before messages flow again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use cache_redis::bus::{self, Bus, Event, Kind, Message};
use cache_redis::testing::RedisServer;
use cache_redis::{Config, Observer, RedisTier};
use deadpool_redis::redis;
use tokio::sync::mpsc;

use crate::support::wait_until;

/// How long anything here may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(10);

/// Counts what a bus reports.
#[derive(Debug, Default)]
struct BusCounts {
    sent: AtomicU64,
    received: AtomicU64,
    undecodable: AtomicU64,
    downs: AtomicU64,
}

impl Observer for BusCounts {
    fn bus_sent(&self, _kind: Kind) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }
    fn bus_received(&self, _kind: Kind) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }
    fn bus_undecodable(&self) {
        self.undecodable.fetch_add(1, Ordering::Relaxed);
    }
    fn bus_subscribed_changed(&self, subscribed: bool) {
        if !subscribed {
            self.downs.fetch_add(1, Ordering::Relaxed);
        }
    }
}

struct Instance {
    bus: Bus,
    events: mpsc::Receiver<Event>,
    counts: Arc<BusCounts>,
}

fn instance_with(config: &Config) -> Instance {
    let counts = Arc::new(BusCounts::default());
    let tier = RedisTier::with_observer(config.clone(), counts.clone()).expect("a valid configuration");
    let (bus, events) = Bus::start(tier, config).expect("a valid configuration");
    Instance { bus, events, counts }
}

async fn subscribed(instance: &Instance) {
    wait_until("the bus is subscribed", DEADLINE, || async { instance.bus.is_subscribed() }).await;
}

/// The next event, failing the test if none comes within the deadline.
async fn next_event(instance: &mut Instance) -> Event {
    tokio::time::timeout(DEADLINE, instance.events.recv())
        .await
        .expect("an event within the deadline")
        .expect("the subscriber runs")
}

async fn next_message(instance: &mut Instance) -> Message {
    match next_event(instance).await {
        Event::Message(message) => message,
        other => panic!("expected a message, got {other:?}"),
    }
}

/// Publishes until Redis takes it (the tier's connection may have to find
/// out that the server restarted), within the deadline.
async fn publish(from: &Instance, kind: Kind, subject: &str) -> Message {
    let message = from.bus.message(kind, subject, SystemTime::now());
    let started = tokio::time::Instant::now();
    loop {
        match from.bus.publish(&message).await {
            Ok(_) => return message,
            Err(error) => assert!(started.elapsed() < DEADLINE, "cannot publish: {error}"),
        }
        tokio::task::yield_now().await;
    }
}

/// A gap: `Lost`, then `Resubscribed` with the same `since`, ending after
/// it began.
async fn gap_reported(instance: &mut Instance) {
    let Event::Lost { since } = next_event(instance).await else { panic!("expected the subscription lost") };
    match next_event(instance).await {
        Event::Resubscribed { since: from, until } => {
            assert_eq!(from, since);
            assert!(until >= since, "{until:?} before {since:?}");
        }
        other => panic!("expected a resubscription, got {other:?}"),
    }
    assert!(instance.bus.is_subscribed());
}

#[tokio::test]
async fn a_message_reaches_the_other_instance_and_not_its_sender() {
    let server = RedisServer::start();
    let config = Config::new(server.url());
    let (mut a, mut b) = (instance_with(&config), instance_with(&config));
    subscribed(&a).await;
    subscribed(&b).await;
    assert_ne!(a.bus.instance(), b.bus.instance());
    assert_eq!(a.bus.channel(), "poscache:positions:events:v1");

    let deleted = a.bus.message(Kind::Deleted, "0xabc", SystemTime::now());
    assert_eq!(a.bus.publish(&deleted).await.unwrap(), 2, "both subscribers got it");
    assert_eq!(next_message(&mut b).await, deleted);

    // What a hears first is b's message, published after its own: its own
    // was dropped, not merely late (one connection delivers in order).
    let stored = publish(&b, Kind::Stored, "0xdef").await;
    assert_eq!(next_message(&mut a).await, stored);
    let pattern = publish(&a, Kind::PatternDeleted, "0xab*").await;
    assert_eq!(next_message(&mut b).await, pattern);

    assert_eq!(a.counts.sent.load(Ordering::Relaxed), 2);
    assert_eq!(b.counts.received.load(Ordering::Relaxed), 2);
    assert_eq!(a.counts.received.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn garbage_on_the_channel_is_ignored_and_counted() {
    let server = RedisServer::start();
    let config = Config::new(server.url());
    let (a, mut b) = (instance_with(&config), instance_with(&config));
    subscribed(&b).await;

    let good = a.bus.message(Kind::Deleted, "0xabc", SystemTime::now());
    let mut newer = bus::encode(&good).unwrap();
    newer[4] = bus::VERSION + 1;
    let truncated = bus::encode(&good).unwrap()[..bus::HEADER_LEN].to_vec();
    let mut plain = server.connection().await;
    for garbage in [&b"hello"[..], &newer, &truncated, b""] {
        let _: u64 = redis::cmd("PUBLISH").arg(b.bus.channel()).arg(garbage).query_async(&mut plain).await.unwrap();
    }
    a.bus.publish(&good).await.unwrap();

    assert_eq!(next_message(&mut b).await, good, "the garbage before it was skipped");
    assert_eq!(b.counts.undecodable.load(Ordering::Relaxed), 4);
    assert!(b.bus.is_subscribed(), "garbage does not break the subscription");
}

#[tokio::test]
async fn a_killed_subscription_is_a_reported_gap_then_messages_flow_again() {
    let server = RedisServer::start();
    let config = Config::new(server.url());
    let (a, mut b) = (instance_with(&config), instance_with(&config));
    subscribed(&a).await;
    subscribed(&b).await;

    let mut plain = server.connection().await;
    let killed: u64 = redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("pubsub").query_async(&mut plain).await.unwrap();
    assert_eq!(killed, 2, "a's and b's subscriptions");

    gap_reported(&mut b).await;
    assert_eq!(b.counts.downs.load(Ordering::Relaxed), 1);
    let after = publish(&a, Kind::Deleted, "0xabc").await;
    assert_eq!(next_message(&mut b).await, after);
}

#[tokio::test]
async fn a_restarted_server_is_a_reported_gap_then_messages_flow_again() {
    let mut server = RedisServer::start();
    let config = Config::new(server.url());
    let (a, mut b) = (instance_with(&config), instance_with(&config));
    subscribed(&a).await;
    subscribed(&b).await;

    server.restart();
    gap_reported(&mut b).await;
    subscribed(&a).await;
    let after = publish(&a, Kind::Stored, "0xabc").await;
    assert_eq!(next_message(&mut b).await, after);
}

#[tokio::test]
async fn a_frozen_server_is_found_out_by_the_keepalive_and_reported_as_a_gap() {
    let server = RedisServer::start();
    let config = Config {
        health_interval: Duration::from_millis(50),
        op_timeout: Duration::from_millis(100),
        ..Config::new(server.url())
    };
    let mut b = instance_with(&config);
    subscribed(&b).await;

    // A frozen server keeps the connection open and answers nothing: only
    // an unanswered PING tells.
    server.freeze();
    let Event::Lost { .. } = next_event(&mut b).await else { panic!("expected the subscription lost") };
    assert!(!b.bus.is_subscribed());
    server.thaw();
    let Event::Resubscribed { .. } = next_event(&mut b).await else { panic!("expected a resubscription") };
}

#[tokio::test]
async fn a_bus_started_while_redis_is_down_reports_the_gap_once_subscribed() {
    let mut server = RedisServer::start();
    let config = Config::new(server.url());
    server.kill();
    let started = SystemTime::now();
    let mut b = instance_with(&config);
    let Event::Lost { since } = next_event(&mut b).await else { panic!("expected the subscription lost") };
    assert!(since >= started, "the gap starts with the bus");
    assert!(!b.bus.is_subscribed());

    server.restart();
    let Event::Resubscribed { since: from, .. } = next_event(&mut b).await else { panic!("expected a resubscription") };
    assert_eq!(from, since);
}

#[tokio::test]
async fn a_password_server_is_subscribed_to_with_the_password_of_the_url() {
    let server = RedisServer::start_with_password("hunter2");
    let config = Config::new(server.url());
    let (a, mut b) = (instance_with(&config), instance_with(&config));
    subscribed(&b).await;
    let message = publish(&a, Kind::Deleted, "0xabc").await;
    assert_eq!(next_message(&mut b).await, message);
    assert!(!format!("{:?}", b.bus).contains("hunter2"));
}

#[tokio::test]
async fn dropping_the_bus_closes_its_subscription() {
    let server = RedisServer::start();
    let Instance { bus, events, .. } = instance_with(&Config::new(server.url()));
    wait_until("the bus is subscribed", DEADLINE, || async { bus.is_subscribed() }).await;
    let channel = bus.channel().to_owned();
    assert_eq!(subscribers(&server, &channel).await, 1);

    drop(bus);
    wait_until("the subscription is closed", DEADLINE, || async { subscribers(&server, &channel).await == 0 }).await;
    drop(events);
}

#[tokio::test]
async fn dropping_the_event_receiver_closes_its_subscription() {
    let server = RedisServer::start();
    let Instance { bus, events, .. } = instance_with(&Config::new(server.url()));
    wait_until("the bus is subscribed", DEADLINE, || async { bus.is_subscribed() }).await;
    assert_eq!(subscribers(&server, bus.channel()).await, 1);

    drop(events);
    wait_until("the subscription is closed", DEADLINE, || async { subscribers(&server, bus.channel()).await == 0 })
        .await;
    wait_until("the bus says so", DEADLINE, || async { !bus.is_subscribed() }).await;
}

/// `PUBSUB NUMSUB channel`, on a connection of the test's own.
async fn subscribers(server: &RedisServer, channel: &str) -> u64 {
    let mut connection = server.connection().await;
    let (_, count): (String, u64) =
        redis::cmd("PUBSUB").arg("NUMSUB").arg(channel).query_async(&mut connection).await.expect("PUBSUB NUMSUB");
    count
}
