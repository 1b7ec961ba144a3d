//! Writes from several replicas in any order: the newest entry wins, a
//! delete is final for loads that started before it, tombstones and load
//! locks expire, and a lock is released only by its holder.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cache_redis::testing::RedisServer;
use cache_redis::{RedisTier, WriteOutcome};
use proptest::prelude::*;

use crate::support::{Counts, pttl, tier, wait_until};

const WALLET: &str = "0x52908400098527886e0f7030069857d2e4169ee7";
const EXPIRY: Duration = Duration::from_secs(60);

/// A time `secs` (and `nanos`) after a fixed start, so runs repeat.
fn at(secs: u64, nanos: u32) -> SystemTime {
    UNIX_EPOCH + Duration::new(1_764_000_000 + secs, nanos)
}

async fn stored(tier: &RedisTier) -> Option<(String, SystemTime)> {
    tier.get::<String>(WALLET).await.unwrap().map(|s| (s.value, s.fetched_at))
}

async fn write(tier: &RedisTier, value: &str, fetched_at: SystemTime, started_at: SystemTime) -> WriteOutcome {
    tier.set_if_newer(WALLET, value, fetched_at, started_at, EXPIRY).await.unwrap()
}

#[tokio::test]
async fn an_older_entry_never_replaces_a_newer_one_in_either_order() {
    let server = RedisServer::start();
    let (tier, counts) = tier(&server.url());
    let (older, newer) = (at(10, 999_999_999), at(11, 0));

    // Older first: the newer replaces it.
    assert_eq!(write(&tier, "older", older, at(9, 0)).await, WriteOutcome::Stored);
    assert_eq!(write(&tier, "newer", newer, at(9, 0)).await, WriteOutcome::Stored);
    assert_eq!(stored(&tier).await, Some(("newer".to_owned(), newer)));

    // Newer first (another wallet's history, same rules): the older is refused.
    assert!(tier.delete(WALLET).await.unwrap());
    assert_eq!(write(&tier, "newer", newer, at(9, 0)).await, WriteOutcome::Stored);
    assert_eq!(write(&tier, "older", older, at(9, 0)).await, WriteOutcome::Older);
    assert_eq!(stored(&tier).await, Some(("newer".to_owned(), newer)));
    // One nanosecond and one whole byte apart in the header: compared as
    // times, not as strings of the server's locale.
    assert_eq!(write(&tier, "older", at(11, 0) - Duration::from_nanos(1), at(9, 0)).await, WriteOutcome::Older);
    assert_eq!(Counts::get(&counts.refused_older), 2);
    assert_eq!(counts.errors(), 0);

    // The expiry is the caller's, as for `set`.
    let left = pttl(&server, &format!("poscache:positions:v2:{{{WALLET}}}")).await;
    assert!((59_000..=60_000).contains(&left), "PTTL {left} ms for a 60 s expiry");
}

#[tokio::test]
async fn equal_fetched_at_keeps_the_first_write() {
    let server = RedisServer::start();
    let (tier, _) = tier(&server.url());
    assert_eq!(write(&tier, "first", at(5, 5), at(4, 0)).await, WriteOutcome::Stored);
    assert_eq!(write(&tier, "second", at(5, 5), at(4, 0)).await, WriteOutcome::Older);
    assert_eq!(stored(&tier).await, Some(("first".to_owned(), at(5, 5))));
}

#[tokio::test]
async fn what_is_not_an_envelope_of_this_version_is_replaced() {
    let server = RedisServer::start();
    let (tier, _) = tier(&server.url());
    let key = format!("poscache:positions:v2:{{{WALLET}}}");
    // Garbage, then another envelope version claiming a far later time.
    for planted in [b"garbage".to_vec(), {
        let mut other = cache_redis::envelope::encode("x", at(1000, 0)).unwrap();
        other[4] = 9;
        other
    }] {
        server.set_raw(&key, &planted).await;
        assert_eq!(write(&tier, "fresh", at(1, 0), at(0, 0)).await, WriteOutcome::Stored);
        assert_eq!(stored(&tier).await, Some(("fresh".to_owned(), at(1, 0))));
    }
}

#[tokio::test]
async fn a_tombstone_refuses_loads_started_before_the_delete_and_accepts_later_ones() {
    let server = RedisServer::start();
    let (tier, counts) = tier(&server.url());
    let deleted_at = at(20, 0);
    assert_eq!(write(&tier, "before", at(19, 0), at(18, 0)).await, WriteOutcome::Stored);
    assert!(tier.delete_with_tombstone(WALLET, deleted_at, EXPIRY).await.unwrap());
    assert_eq!(stored(&tier).await, None);
    assert!(!tier.delete_with_tombstone(WALLET, deleted_at, EXPIRY).await.unwrap(), "nothing left to drop");

    // A load that started before the delete, or at the same instant,
    // stores nothing, however new its value.
    assert_eq!(write(&tier, "stale load", at(25, 0), at(19, 999_999_999)).await, WriteOutcome::Deleted);
    assert_eq!(write(&tier, "same instant", at(25, 0), deleted_at).await, WriteOutcome::Deleted);
    assert_eq!(stored(&tier).await, None);
    assert_eq!(Counts::get(&counts.stopped_by_tombstone), 2);

    // An earlier delete does not move the tombstone back.
    assert!(!tier.delete_with_tombstone(WALLET, at(10, 0), EXPIRY).await.unwrap());
    assert_eq!(write(&tier, "stale load", at(25, 0), at(15, 0)).await, WriteOutcome::Deleted);

    // A load that started after it stores.
    assert_eq!(write(&tier, "after", at(21, 0), at(20, 1)).await, WriteOutcome::Stored);
    assert_eq!(stored(&tier).await, Some(("after".to_owned(), at(21, 0))));
    assert_eq!(counts.errors(), 0);
}

#[tokio::test]
async fn tombstones_expire() {
    let server = RedisServer::start();
    let (tier, _) = tier(&server.url());
    let tombstone = format!("poscache:tombstone:v2:{{{WALLET}}}");
    tier.delete_with_tombstone(WALLET, at(20, 0), Duration::from_millis(200)).await.unwrap();
    assert_eq!(server.get_raw(&tombstone).await.as_deref(), Some(&1_764_000_020_000_000_000_u64.to_be_bytes()[..]));
    let left = pttl(&server, &tombstone).await;
    assert!((1..=200).contains(&left), "PTTL {left} ms for a 200 ms tombstone");

    wait_until("the tombstone expires", Duration::from_secs(5), || async {
        server.get_raw(&tombstone).await.is_none()
    })
    .await;
    assert_eq!(write(&tier, "stale load", at(25, 0), at(19, 0)).await, WriteOutcome::Stored);
}

#[tokio::test]
async fn the_load_lock_is_exclusive_released_only_by_its_token_and_expires() {
    let server = RedisServer::start();
    let (a, _) = tier(&server.url());
    let (b, _) = tier(&server.url());
    let lock = format!("poscache:loadlock:v2:{{{WALLET}}}");

    let held = a.try_lock_load(WALLET, EXPIRY).await.unwrap().expect("free");
    assert_eq!(b.try_lock_load(WALLET, EXPIRY).await.unwrap(), None, "exclusive across tiers");
    assert_eq!(a.try_lock_load(WALLET, EXPIRY).await.unwrap(), None, "and not reentrant");
    assert!(b.try_lock_load("0xother", EXPIRY).await.unwrap().is_some(), "per id");
    let left = pttl(&server, &lock).await;
    assert!((59_000..=60_000).contains(&left), "PTTL {left} ms for a 60 s lock");

    // A token from another holding (of another id) releases nothing.
    let other = b.try_lock_load("0xthird", EXPIRY).await.unwrap().unwrap();
    assert!(!b.unlock_load(WALLET, &other).await.unwrap());
    assert!(server.get_raw(&lock).await.is_some());
    assert_eq!(b.try_lock_load(WALLET, EXPIRY).await.unwrap(), None);

    assert!(a.unlock_load(WALLET, &held).await.unwrap());
    assert!(!a.unlock_load(WALLET, &held).await.unwrap(), "released once");
    let again = b.try_lock_load(WALLET, Duration::from_millis(100)).await.unwrap().expect("free again");

    // It expires, and the old holder's late release leaves the new lock.
    wait_until("the lock expires", Duration::from_secs(5), || async { server.get_raw(&lock).await.is_none() }).await;
    let third = a.try_lock_load(WALLET, EXPIRY).await.unwrap().expect("free after expiry");
    assert!(!b.unlock_load(WALLET, &again).await.unwrap());
    assert_eq!(b.try_lock_load(WALLET, EXPIRY).await.unwrap(), None);
    assert!(a.unlock_load(WALLET, &third).await.unwrap());
}

/// One step of two replicas' traffic: a write, or a delete.
#[derive(Debug, Clone)]
enum Step {
    /// A load on `replica` that started at `started` and fetched at
    /// `started + took`.
    Write { replica: usize, started: u8, took: u8 },
    /// A delete on `replica` at `at`.
    Delete { replica: usize, at: u8 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..2_usize, 0..20_u8, 0..4_u8).prop_map(|(replica, started, took)| Step::Write { replica, started, took }),
        1 => (0..2_usize, 0..24_u8).prop_map(|(replica, at)| Step::Delete { replica, at }),
    ]
}

/// The rules, naively: what is stored (fetched at, and by which step) and
/// the latest deletion.
#[derive(Debug, Default)]
struct Model {
    entry: Option<(u8, usize)>,
    deleted_at: Option<u8>,
}

impl Model {
    fn write(&mut self, index: usize, started: u8, fetched: u8) -> WriteOutcome {
        if self.deleted_at.is_some_and(|deleted| deleted >= started) {
            WriteOutcome::Deleted
        } else if self.entry.is_some_and(|(stored, _)| stored >= fetched) {
            WriteOutcome::Older
        } else {
            self.entry = Some((fetched, index));
            WriteOutcome::Stored
        }
    }

    fn delete(&mut self, at: u8) -> bool {
        self.deleted_at = self.deleted_at.max(Some(at));
        self.entry.take().is_some()
    }
}

fn tick(n: u8) -> SystemTime {
    at(u64::from(n), 0)
}

proptest! {
    // Each case starts a server and talks to it: few cases, each a few
    // dozen steps.
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn interleaved_writes_and_deletes_from_two_replicas_follow_the_rules(steps in prop::collection::vec(step(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let server = RedisServer::start();
            let replicas = [tier(&server.url()).0, tier(&server.url()).0];
            let mut model = Model::default();
            for (index, step) in steps.iter().enumerate() {
                match *step {
                    Step::Write { replica, started, took } => {
                        let fetched = started + took;
                        let outcome = replicas[replica]
                            .set_if_newer(WALLET, &index, tick(fetched), tick(started), EXPIRY)
                            .await
                            .unwrap();
                        assert_eq!(outcome, model.write(index, started, fetched), "step {index}: {step:?}");
                    }
                    Step::Delete { replica, at } => {
                        let removed = replicas[replica].delete_with_tombstone(WALLET, tick(at), EXPIRY).await.unwrap();
                        assert_eq!(removed, model.delete(at), "step {index}: {step:?}");
                    }
                }
                let reader = &replicas[index % 2];
                let seen = reader.get::<usize>(WALLET).await.unwrap().map(|s| (s.fetched_at, s.value));
                let expected = model.entry.map(|(fetched, by)| (tick(fetched), by));
                assert_eq!(seen, expected, "after step {index}: {step:?}");
            }
        });
    }
}

#[tokio::test]
async fn a_pattern_deletion_drops_entries_only_and_leaves_tombstones_and_locks() {
    let server = RedisServer::start();
    let (tier, _) = tier(&server.url());
    for id in ["0xab1", "0xab2", "0xcd1"] {
        tier.set(id, &1_u8, SystemTime::now(), EXPIRY).await.unwrap();
    }
    tier.delete_with_tombstone("0xab3", at(1, 0), EXPIRY).await.unwrap();
    let lock = tier.try_lock_load("0xab4", EXPIRY).await.unwrap().unwrap();

    assert_eq!(tier.delete_matching("0xab*").await.unwrap(), 2);
    assert!(tier.get::<u8>("0xcd1").await.unwrap().is_some());
    assert!(server.get_raw("poscache:tombstone:v2:{0xab3}").await.is_some());
    assert!(tier.unlock_load("0xab4", &lock).await.unwrap(), "the lock was left alone");
}

#[tokio::test]
async fn a_pattern_deletion_with_tombstones_stops_the_loads_it_can_name() {
    let server = RedisServer::start();
    let (tier, _) = tier(&server.url());
    let deleted_at = at(20, 0);
    for id in ["0xab1", "0xab2", "0xcd1"] {
        assert_eq!(tier.set_if_newer(id, "old", at(10, 0), at(9, 0), EXPIRY).await.unwrap(), WriteOutcome::Stored);
    }
    // A load of 0xab3 is in flight under its lock; nothing is stored yet.
    let lock = tier.try_lock_load("0xab3", EXPIRY).await.unwrap().expect("free");
    let other = tier.try_lock_load("0xcd2", EXPIRY).await.unwrap().expect("free");

    assert_eq!(tier.delete_matching_with_tombstones("0xab*", deleted_at, EXPIRY).await.unwrap(), 2);
    assert!(tier.get::<String>("0xab1").await.unwrap().is_none());
    assert!(tier.get::<String>("0xcd1").await.unwrap().is_some(), "not matched");

    // Loads that started before the deletion store nothing, stored or in
    // flight; one that started after stores; other wallets are untouched.
    for id in ["0xab1", "0xab3"] {
        let outcome = tier.set_if_newer(id, "late", at(25, 0), at(19, 0), EXPIRY).await.unwrap();
        assert_eq!(outcome, WriteOutcome::Deleted, "{id}");
    }
    assert_eq!(tier.set_if_newer("0xab3", "new", at(25, 0), at(21, 0), EXPIRY).await.unwrap(), WriteOutcome::Stored);
    assert_eq!(tier.set_if_newer("0xcd2", "late", at(25, 0), at(19, 0), EXPIRY).await.unwrap(), WriteOutcome::Stored);
    assert!(server.get_raw("poscache:tombstone:v2:{0xcd1}").await.is_none());
    assert!(tier.unlock_load("0xab3", &lock).await.unwrap() && tier.unlock_load("0xcd2", &other).await.unwrap());

    let error = tier.delete_matching_with_tombstones("0x[ab", deleted_at, EXPIRY).await.unwrap_err();
    assert!(matches!(error, cache_redis::Error::InvalidPattern(_)), "{error}");
}
