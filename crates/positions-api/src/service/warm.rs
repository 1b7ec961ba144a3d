//! Warm start: a replica that starts fills its memory with the wallets most
//! in demand before it takes traffic, so a restart does not cost every
//! popular wallet a miss.
//!
//! The wallets most in demand are the `POSITION_WARM_KEYS` memory entries
//! with the highest demand counts ([`cache_core::Entry::demand`]). They are
//! kept periodically and at shutdown:
//!
//! - with Redis, as one list in Redis (`RedisTier::set_warm_list`); a
//!   starting replica reads it and then each wallet's entry from Redis,
//!   many reads at once on the multiplexed connection (which pipelines
//!   them), keeping each entry's `fetched_at`;
//! - without Redis, in a snapshot file (`POSITION_CACHE_SNAPSHOT_PATH`,
//!   [`snapshot`]) holding the entries themselves.
//!
//! Entries past every window are dropped; a wallet with nothing usable is
//! loaded from the source in the load queue's warm-up class, which holds at
//! most its share of the permits. `/readyz` answers 503 until this is done
//! or `POSITION_WARM_TIMEOUT_MS` has passed (the caller bounds it).

mod snapshot;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use self::snapshot::SavedEntry;
use super::{Service, Shared};
use crate::model::StoredSnapshot;
use crate::wallet::Wallet;

/// Reads of Redis in flight at once while warming.
const REDIS_READS_AT_ONCE: usize = 64;

/// How the service remembers and restores its wallets in demand.
#[derive(Debug, Clone, Default)]
pub struct WarmOptions {
    /// How many wallets to remember (`POSITION_WARM_KEYS`); zero turns warm
    /// start off.
    pub keys: usize,
    /// The snapshot file, used without Redis (`POSITION_CACHE_SNAPSHOT_PATH`).
    pub snapshot_path: Option<PathBuf>,
    /// The longest `/readyz` answers 503 while warming
    /// (`POSITION_WARM_TIMEOUT_MS`).
    pub timeout: Duration,
}

/// What a warm-up did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WarmReport {
    /// Wallets the saved state named.
    pub listed: usize,
    /// Entries put in memory from Redis or the snapshot.
    pub filled: usize,
    /// Wallets with nothing usable, given to the source as warm-up loads.
    pub loading: usize,
}

impl Service {
    /// Whether a start has anything to warm from: warm start is on, caching
    /// is on, and there is Redis or a snapshot file.
    pub fn can_warm(&self) -> bool {
        let shared = &self.shared;
        shared.warm.keys > 0 && shared.enabled && (shared.redis.is_some() || shared.warm.snapshot_path.is_some())
    }

    /// The `n` wallets in memory most in demand, most first.
    pub fn hottest(&self, n: usize) -> Vec<Wallet> {
        let mut all: Vec<(u16, Wallet)> = Vec::new();
        self.shared.cache.for_each(|wallet, entry| all.push((entry.demand(), wallet.clone())));
        let n = n.min(all.len());
        if n < all.len() {
            all.select_nth_unstable_by(n, |a, b| b.0.cmp(&a.0));
            all.truncate(n);
        }
        all.sort_by_key(|entry| std::cmp::Reverse(entry.0));
        all.into_iter().map(|(_, wallet)| wallet).collect()
    }

    /// Saves what a restart warms from: the list in Redis, or without
    /// Redis the snapshot file. Failures are logged, never raised.
    pub async fn save_warm_state(&self) {
        let shared = &self.shared;
        let keys = shared.warm.keys;
        if keys == 0 || !shared.enabled {
            return;
        }
        let hottest = self.hottest(keys);
        if let Some(redis) = &shared.redis {
            let ids: Vec<&str> = hottest.iter().map(Wallet::as_str).collect();
            if let Err(e) = redis.set_warm_list(&ids, shared.cache.policy().retention()).await {
                tracing::warn!(error = %e, "could not save the list of wallets in demand to redis");
            }
            return;
        }
        let Some(path) = shared.warm.snapshot_path.clone() else { return };
        let entries: Vec<SavedEntry> = hottest
            .iter()
            .filter_map(|wallet| {
                let entry = shared.cache.peek(wallet)?;
                Some(SavedEntry {
                    wallet: wallet.as_str().to_owned(),
                    value: entry.value().to_stored(),
                    fetched_at: entry.fetched_at(),
                })
            })
            .collect();
        let count = entries.len();
        let written = tokio::task::spawn_blocking(move || {
            snapshot::write_atomically(&path, &snapshot::encode(&entries)).map_err(|e| (path, e))
        })
        .await;
        match written {
            Ok(Ok(())) => tracing::debug!(wallets = count, "warm-start snapshot written"),
            Ok(Err((path, e))) => {
                tracing::warn!(path = %path.display(), error = %e, "could not write the warm-start snapshot");
            }
            Err(e) => tracing::warn!(error = %e, "writing the warm-start snapshot failed"),
        }
    }

    /// Fills memory from the saved state, and starts warm-up loads for the
    /// wallets with nothing usable; returns once those loads have ended.
    /// The caller bounds it in time (`POSITION_WARM_TIMEOUT_MS`).
    pub async fn warm_up(&self) -> WarmReport {
        let shared = &self.shared;
        let mut report = WarmReport::default();
        if shared.warm.keys == 0 || !shared.enabled {
            return report;
        }
        let mut missing: Vec<Wallet> = Vec::new();
        if let Some(redis) = &shared.redis {
            let listed = match redis.warm_list().await {
                Ok(list) => list,
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the list of wallets in demand from redis");
                    Vec::new()
                }
            };
            let wallets: Vec<Wallet> =
                listed.iter().filter_map(|w| Wallet::parse(w).ok()).take(shared.warm.keys).collect();
            report.listed = wallets.len();
            for batch in wallets.chunks(REDIS_READS_AT_ONCE) {
                let mut reads = tokio::task::JoinSet::new();
                for wallet in batch {
                    let (redis, wallet) = (redis.clone(), wallet.clone());
                    reads.spawn(async move {
                        let stored = redis.get::<StoredSnapshot>(wallet.as_str()).await.ok().flatten();
                        (wallet, stored)
                    });
                }
                while let Some(Ok((wallet, stored))) = reads.join_next().await {
                    if stored.is_some_and(|stored| shared.fill(&wallet, stored.value, stored.fetched_at)) {
                        report.filled += 1;
                    } else {
                        missing.push(wallet);
                    }
                }
            }
        } else if let Some(path) = shared.warm.snapshot_path.clone() {
            let read = tokio::task::spawn_blocking({
                let path = path.clone();
                move || snapshot::read(&path)
            })
            .await;
            let entries = match read {
                Ok(Ok(Some(entries))) => entries,
                Ok(Ok(None)) => Vec::new(),
                Ok(Err(e)) => {
                    tracing::warn!(path = %path.display(), error = %e, "ignoring the warm-start snapshot");
                    Vec::new()
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading the warm-start snapshot failed");
                    Vec::new()
                }
            };
            for entry in entries.into_iter().take(shared.warm.keys) {
                let Ok(wallet) = Wallet::parse(&entry.wallet) else { continue };
                report.listed += 1;
                if shared.fill(&wallet, entry.value, entry.fetched_at) {
                    report.filled += 1;
                } else {
                    missing.push(wallet);
                }
            }
        }
        report.loading = missing.len();
        for wallet in &missing {
            self.swr.refresh_with(wallet, refresh::Priority::WarmUp, 0);
        }
        // The loads run in the background; wait for them to end (the
        // caller's timeout bounds this), checking now and then.
        while !missing.is_empty() && self.swr.active_refreshes() > 0 {
            missing.retain(|wallet| shared.cache.peek(wallet).is_none());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracing::info!(listed = report.listed, filled = report.filled, loading = report.loading, "warm-up done");
        report
    }
}

impl Shared {
    /// Puts a saved entry in memory unless it is past every window or
    /// memory holds one as new; returns whether it is now servable there.
    fn fill(&self, wallet: &Wallet, stored: StoredSnapshot, fetched_at: SystemTime) -> bool {
        let age = self.clock.now().duration_since(fetched_at).unwrap_or_default();
        let policy = self.cache.policy();
        if age > policy.ttl().saturating_add(policy.stale_while_revalidate_window()) {
            return false;
        }
        let Some(snapshot) = self.unstore(stored) else { return false };
        self.cache.insert_if_newer(wallet.clone(), Arc::new(snapshot), fetched_at);
        true
    }
}
