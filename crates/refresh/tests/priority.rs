//! The line served by priority class: shares of the permits, rank within a
//! class, and the age bound that keeps lower classes moving.
//!
//! Time is tokio's paused clock: every load "takes" `LOAD` of virtual time,
//! and the tests read the order in which loads started.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use refresh::{Config, Loader, Priority, Refresh};

const LOAD: Duration = Duration::from_millis(100);

/// Keys in the order their loads started.
type Started = Arc<Mutex<Vec<u32>>>;

fn loader(concurrency: usize, promote_after: Duration) -> (Loader<u32, u32, String>, Started) {
    let started: Started = Arc::default();
    let log = Arc::clone(&started);
    let config = Config {
        concurrency: NonZeroUsize::new(concurrency).unwrap(),
        max_queued: 4_000,
        queue_timeout: Duration::from_secs(3_600),
        promote_after,
        ..Config::default()
    };
    let loader = Loader::new(config, move |key: u32| {
        log.lock().unwrap().push(key);
        async move {
            tokio::time::sleep(LOAD).await;
            Ok::<_, String>(key)
        }
    });
    (loader, started)
}

fn position(started: &Started, key: u32) -> Option<usize> {
    started.lock().unwrap().iter().position(|&k| k == key)
}

/// Lets every ready task run (virtual time does not move).
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_users_miss_starts_at_once_behind_a_backlog_of_refreshes() {
    let (loader, started) = loader(2, Duration::from_secs(3_600));
    for key in 0..500 {
        assert_eq!(loader.refresh(key), Refresh::Started);
    }
    settle().await;
    assert_eq!(started.lock().unwrap().len(), 1, "refreshes hold at most their share: one of two permits");
    let begun = tokio::time::Instant::now();
    assert_eq!(loader.load(9_999).await.ok(), Some(9_999));
    assert_eq!(position(&started, 9_999), Some(1), "the user's load started second, after the one refresh running");
    assert_eq!(begun.elapsed(), LOAD, "within one load time (virtual)");
    assert!(loader.queued() >= 497, "the backlog is still there, behind it: {}", loader.queued());
}

#[tokio::test(start_paused = true)]
async fn within_a_class_the_higher_rank_goes_first_and_classes_keep_their_order() {
    // One permit: every class may hold it, so only the order is seen
    // (with more, each class's share lets lower ones run beside).
    let (loader, started) = loader(1, Duration::from_secs(3_600));
    // A user's load takes the permit.
    let users = [loader.load(1)];
    settle().await;
    for key in 10..20 {
        loader.refresh_with(key, Priority::WarmUp, 0);
    }
    for key in 20..30 {
        loader.refresh_with(key, Priority::Eager, 5);
    }
    for key in 30..40 {
        loader.refresh_with(key, Priority::Stale, 1);
    }
    // A listed wallet: the front of its class.
    loader.refresh_with(99, Priority::Stale, u16::MAX);
    for user in users {
        user.await.unwrap();
    }
    settle().await;
    let order = started.lock().unwrap().clone();
    assert_eq!(order[1], 99, "the high-value wallet overtook the other stale refreshes: {order:?}");
    let class_of = |key: u32| match key {
        10..20 => 3,
        20..30 => 2,
        _ => 1,
    };
    // Run everything out, then check the classes came in order.
    while loader.in_flight() > 0 {
        tokio::time::sleep(LOAD).await;
    }
    let order = started.lock().unwrap().clone();
    let classes: Vec<u32> = order[1..].iter().map(|&k| class_of(k)).collect();
    assert!(classes.is_sorted(), "stale, then eager, then warm-up: {order:?}");
    assert_eq!(order.len(), 32);
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_users_loads_lets_a_waiting_refresh_through_within_the_age_bound() {
    let promote_after = Duration::from_millis(500);
    let (loader, started) = loader(2, promote_after);
    let mut users = Vec::new();
    for key in 1_000..1_002 {
        users.push(loader.load(key));
    }
    settle().await;
    assert_eq!(loader.refresh(7), Refresh::Started);
    // A flood: 200 users' loads, 10 s of work for two permits.
    for key in 2_000..2_200 {
        users.push(loader.load(key));
    }
    settle().await;
    let begun = tokio::time::Instant::now();
    while position(&started, 7).is_none() {
        tokio::time::sleep(LOAD).await;
        assert!(begun.elapsed() < Duration::from_secs(5), "the refresh starved: {:?}", started.lock().unwrap());
    }
    let waited = begun.elapsed();
    assert!(waited <= promote_after + LOAD, "started after {waited:?} (virtual), past the age bound and one load");
    for user in users {
        user.await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn a_user_joining_a_queued_refresh_moves_it_up() {
    let (loader, started) = loader(1, Duration::from_secs(3_600));
    let first = loader.load(1);
    settle().await;
    for key in 10..20 {
        loader.refresh_with(key, Priority::WarmUp, 0);
    }
    loader.refresh_with(19, Priority::WarmUp, 0);
    let user = loader.load(15);
    first.await.unwrap();
    assert_eq!(user.await.ok(), Some(15));
    assert_eq!(position(&started, 15), Some(1), "{:?}", started.lock().unwrap());
}
