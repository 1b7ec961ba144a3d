//! The memory tier's tombstones: a deletion is final for the loads that
//! started before it.
//!
//! A load takes hundreds of milliseconds; a `DELETE` (on this replica, or on
//! another one and heard over the fleet channel) that lands meanwhile must
//! not be undone when the load finishes and stores what it fetched before.
//! So every deletion leaves a tombstone here, of the wallet or of the glob
//! pattern, recording when it happened; a load stores its result in memory
//! only if no tombstone that matches its wallet records a deletion at or
//! after the time the load started. Redis keeps its own tombstones for the
//! same rule in tier 2 (see `cache_redis::conditional`).
//!
//! Recording a deletion and dropping the entry happen in one critical
//! section, and so do checking for a tombstone and storing: a deletion can
//! never fall between a load's check and its store. Loads and deletions are
//! rare next to reads (hundreds a second at most), and reads never come
//! here.
//!
//! A tombstone lives for `lifetime` (at least the longest a load can run,
//! lease wait included: see `Service::new`), measured on the monotonic
//! clock, and is swept when tombstones are recorded. The times compared are
//! wall-clock times from the service's clock, possibly another replica's:
//! the same skew rule as Redis's tombstones applies.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use cache_core::glob::Pattern;
use parking_lot::Mutex;

use crate::wallet::Wallet;

/// Every live tombstone of one replica.
#[derive(Debug)]
pub(crate) struct Tombstones {
    lifetime: Duration,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// When each wallet was last deleted, and when that tombstone expires.
    wallets: HashMap<Wallet, (SystemTime, Instant)>,
    /// Pattern deletions, oldest first.
    patterns: Vec<(Pattern, SystemTime, Instant)>,
}

impl Tombstones {
    pub(crate) fn new(lifetime: Duration) -> Self {
        Self { lifetime, inner: Mutex::new(Inner::default()) }
    }

    /// Records that `wallet` was deleted at `at`, and runs `drop` (which
    /// removes it from memory) before any load can store it again.
    pub(crate) fn delete<R>(&self, wallet: &Wallet, at: SystemTime, drop: impl FnOnce() -> R) -> R {
        let mut inner = self.inner.lock();
        let now = Instant::now();
        inner.sweep(now);
        let expires = now + self.lifetime;
        let slot = inner.wallets.entry(wallet.clone()).or_insert((at, expires));
        *slot = (slot.0.max(at), expires);
        drop()
    }

    /// Records that every wallet `pattern` matches was deleted at `at`, and
    /// runs `drop`, as [`delete`](Self::delete) does.
    pub(crate) fn delete_matching<R>(&self, pattern: Pattern, at: SystemTime, drop: impl FnOnce() -> R) -> R {
        let mut inner = self.inner.lock();
        let now = Instant::now();
        inner.sweep(now);
        inner.patterns.push((pattern, at, now + self.lifetime));
        drop()
    }

    /// Runs `store` unless a tombstone of `wallet` records a deletion at or
    /// after `load_started_at`; whether it ran.
    pub(crate) fn store_unless_deleted(
        &self,
        wallet: &Wallet,
        load_started_at: SystemTime,
        store: impl FnOnce(),
    ) -> bool {
        let inner = self.inner.lock();
        if inner.deleted_since(wallet, load_started_at, Instant::now()) {
            return false;
        }
        store();
        true
    }

    /// Whether a tombstone of `wallet` records a deletion at or after
    /// `since`.
    #[cfg(test)]
    fn deleted_since(&self, wallet: &Wallet, since: SystemTime) -> bool {
        self.inner.lock().deleted_since(wallet, since, Instant::now())
    }

    /// How many tombstones are live (for tests and the debug log).
    #[cfg(test)]
    fn len(&self) -> usize {
        let mut inner = self.inner.lock();
        inner.sweep(Instant::now());
        inner.wallets.len() + inner.patterns.len()
    }
}

impl Inner {
    fn deleted_since(&self, wallet: &Wallet, since: SystemTime, now: Instant) -> bool {
        let by_id = self.wallets.get(wallet).is_some_and(|&(at, expires)| expires > now && at >= since);
        by_id
            || self
                .patterns
                .iter()
                .any(|(pattern, at, expires)| *expires > now && *at >= since && pattern.matches(wallet.as_str()))
    }

    fn sweep(&mut self, now: Instant) {
        self.wallets.retain(|_, &mut (_, expires)| expires > now);
        self.patterns.retain(|&(_, _, expires)| expires > now);
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_764_000_000 + secs)
    }

    fn wallet(s: &str) -> Wallet {
        Wallet::parse(s).unwrap()
    }

    const A: &str = "0x52908400098527886e0f7030069857d2e4169ee7";
    const B: &str = "0x8617e340b3d01fa5f11f306f4090fd50e238070d";

    #[test]
    fn a_deletion_stops_loads_started_before_it_or_at_the_same_instant() {
        let tombstones = Tombstones::new(Duration::from_secs(60));
        assert!(tombstones.delete(&wallet(A), at(20), || true));
        let mut stored = 0;
        assert!(!tombstones.store_unless_deleted(&wallet(A), at(19), || stored += 1));
        assert!(!tombstones.store_unless_deleted(&wallet(A), at(20), || stored += 1));
        assert!(tombstones.store_unless_deleted(&wallet(A), at(21), || stored += 1));
        assert!(tombstones.store_unless_deleted(&wallet(B), at(19), || stored += 1), "another wallet");
        assert_eq!(stored, 2);
        // An earlier deletion heard late does not move the tombstone back.
        tombstones.delete(&wallet(A), at(10), || ());
        assert!(tombstones.deleted_since(&wallet(A), at(15)));
    }

    #[test]
    fn a_pattern_deletion_stops_the_wallets_it_matches() {
        let tombstones = Tombstones::new(Duration::from_secs(60));
        tombstones.delete_matching(Pattern::new("0x5290*").unwrap(), at(20), || ());
        assert!(tombstones.deleted_since(&wallet(A), at(19)));
        assert!(!tombstones.deleted_since(&wallet(A), at(21)));
        assert!(!tombstones.deleted_since(&wallet(B), at(19)));
    }

    #[test]
    fn tombstones_expire_after_their_lifetime() {
        let tombstones = Tombstones::new(Duration::ZERO);
        tombstones.delete(&wallet(A), at(20), || ());
        tombstones.delete_matching(Pattern::new("*").unwrap(), at(20), || ());
        assert!(!tombstones.deleted_since(&wallet(A), at(19)));
        assert_eq!(tombstones.len(), 0);
    }
}
