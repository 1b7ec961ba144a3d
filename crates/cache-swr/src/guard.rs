//! Deletions are final for the loads that started before them.
//!
//! A load runs for a while; an [`invalidate`](crate::SwrCache::invalidate)
//! that lands meanwhile must not be undone when the load finishes and
//! stores what it fetched before the deletion. So each deletion is
//! recorded with its number in the order of deletions, a load takes the
//! number of the latest deletion when it starts ([`Guard::started`]), and
//! it stores its value only if no deletion of its key (or of everything)
//! came after that. Numbers rather than times: a deletion and a load that
//! starts after it may read the same time (a coarse or a manual clock), and
//! the load must still store. Recording a deletion and dropping the entry
//! share one critical section, and so do checking and storing: a deletion
//! never falls between a load's check and its store. Only loads and
//! deletions come here, never reads.
//!
//! A record is kept for `lifetime` (at least the longest a load can run),
//! by the time it was made, and swept, at most twice per lifetime, when
//! deletions are recorded.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The deletions that loads in flight must respect.
#[derive(Debug)]
pub(crate) struct Guard<K> {
    lifetime: Duration,
    inner: Mutex<Inner<K>>,
}

#[derive(Debug)]
struct Inner<K> {
    /// The number of the latest deletion.
    latest: u64,
    /// The number of each key's latest deletion, and when it was made (on
    /// the monotonic clock: a wall clock that jumps must not sweep a record
    /// early).
    keys: HashMap<K, (u64, Instant)>,
    /// The number of the latest deletion of everything.
    all: Option<u64>,
    /// When `keys` is next swept.
    next_sweep: Option<Instant>,
}

impl<K: Hash + Eq + Clone> Guard<K> {
    pub(crate) fn new(lifetime: Duration) -> Self {
        Self { lifetime, inner: Mutex::new(Inner { latest: 0, keys: HashMap::new(), all: None, next_sweep: None }) }
    }

    /// What a load takes as it starts, for
    /// [`store_unless_deleted`](Self::store_unless_deleted): the number of
    /// the latest deletion.
    pub(crate) fn started(&self) -> u64 {
        self.inner.lock().latest
    }

    /// Records that `key` was deleted, and runs `drop` (which removes it
    /// from memory) before any load can store it again.
    pub(crate) fn delete<R>(&self, key: &K, drop: impl FnOnce() -> R) -> R {
        self.delete_at(key, Instant::now(), drop)
    }

    fn delete_at<R>(&self, key: &K, at: Instant, drop: impl FnOnce() -> R) -> R {
        let mut inner = self.inner.lock();
        self.sweep(&mut inner, at);
        inner.latest += 1;
        let latest = inner.latest;
        inner.keys.insert(key.clone(), (latest, at));
        drop()
    }

    /// Records that everything was deleted, and runs `drop`.
    pub(crate) fn delete_all<R>(&self, drop: impl FnOnce() -> R) -> R {
        let mut inner = self.inner.lock();
        inner.latest += 1;
        inner.all = Some(inner.latest);
        inner.keys.clear();
        drop()
    }

    /// Runs `store` unless `key` was deleted after the load that took
    /// `started` ([`started`](Self::started)) began; returns whether it ran.
    pub(crate) fn store_unless_deleted(&self, key: &K, started: u64, store: impl FnOnce()) -> bool {
        let inner = self.inner.lock();
        let deleted = inner.all.is_some_and(|all| all > started)
            || inner.keys.get(key).is_some_and(|&(deleted, _)| deleted > started);
        if !deleted {
            store();
        }
        !deleted
    }

    fn sweep(&self, inner: &mut Inner<K>, now: Instant) {
        if inner.next_sweep.is_some_and(|next| now < next) {
            return;
        }
        let lifetime = self.lifetime;
        inner.keys.retain(|_, (_, deleted)| now.saturating_duration_since(*deleted) <= lifetime);
        inner.next_sweep = Some(now + lifetime / 2);
    }

    #[cfg(test)]
    fn recorded(&self) -> usize {
        self.inner.lock().keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, secs: u64) -> Instant {
        t0 + Duration::from_secs(secs)
    }

    #[test]
    fn a_load_started_before_a_deletion_does_not_store() {
        let guard = Guard::new(Duration::from_secs(60));
        let before = guard.started();
        assert!(guard.delete(&"a", || true));
        assert!(!guard.store_unless_deleted(&"a", before, || panic!("must not store")));
        let mut stored = false;
        assert!(guard.store_unless_deleted(&"a", guard.started(), || stored = true));
        assert!(stored, "a load started after the deletion stores, at the same time too");
        assert!(guard.store_unless_deleted(&"b", before, || {}), "another key is untouched");
    }

    #[test]
    fn deleting_everything_stops_every_older_load() {
        let guard: Guard<&str> = Guard::new(Duration::from_secs(60));
        let before = guard.started();
        assert_eq!(guard.delete_all(|| 3), 3);
        assert!(!guard.store_unless_deleted(&"x", before, || panic!("must not store")));
        assert!(guard.store_unless_deleted(&"x", guard.started(), || {}));
    }

    #[test]
    fn records_older_than_the_lifetime_are_swept() {
        let guard = Guard::new(Duration::from_secs(10));
        let t0 = Instant::now();
        guard.delete_at(&"old", t0, || ());
        let before = guard.started();
        guard.delete_at(&"new", at(t0, 20), || ());
        assert_eq!(guard.recorded(), 1, "the record of `old` outlived every load");
        assert!(!guard.store_unless_deleted(&"new", before, || {}));
    }
}
