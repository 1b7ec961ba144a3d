//! Several replicas on one Redis, acting as one cache.
//!
//! The rules (see `docs/ARCHITECTURE.md`, "The fleet"):
//!
//! - **Newest wins**: tier-2 writes are conditional on `fetched_at`
//!   (`RedisTier::set_if_newer`), tier-1 inserts too (`insert_if_newer`).
//! - **A delete is final** for the loads that started before it:
//!   tombstones in both tiers (`crate::tombstones`, `cache_redis::conditional`).
//! - **Every replica hears** deletions and stores over the bus
//!   ([`cache_redis::bus`]): [`hear`] drops what they make obsolete from
//!   tier 1. While the channel is down, tier 1 is checked against tier 2
//!   before it answers; when it is back, every entry fetched before the end
//!   of the gap is marked stale, so it is revalidated before it is served
//!   as fresh again.
//! - **One load per wallet across the fleet** ([`Fleet::load`]): the
//!   wallet's lease in Redis, then tier 2 (another replica may have loaded
//!   the wallet meanwhile), then the source; a replica that finds the lease held waits for the
//!   holder's result, woken by its `stored` message or a poll of tier 2,
//!   until the lease is released or expires (a dead holder), and then takes
//!   it over; if another waiter took it over first, it waits for that one's
//!   result in turn, up to one more source call's time. With Redis unreachable each replica loads alone, under its
//!   own single flight. No wait is unbounded: see [`Fleet::load_limit`].

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use cache_core::Freshness;
use cache_core::glob::Pattern;
use cache_redis::bus::{Bus, Event, Kind};
use cache_redis::{Config, RedisTier};
use telemetry::LeaseEvent;
use time::OffsetDateTime;
use tokio::sync::{Notify, mpsc};

use super::{Fetched, Job, Shared};
use crate::model::StoredSnapshot;
use crate::source::{Source, SourceError};
use crate::wallet::Wallet;

/// The first pause between two looks at tier 2 while another replica holds
/// a wallet's lease; each look doubles it, up to [`MAX_POLL`]. A `stored`
/// message ends a pause at once: the polls only cover a lost message.
const FIRST_POLL: Duration = Duration::from_millis(10);

/// The longest pause between two looks at tier 2 while waiting.
const MAX_POLL: Duration = Duration::from_millis(200);

/// Redis as the service uses it: the tier, and the fleet's channel if the
/// replicas coordinate (`FLEET_COORDINATION`, on by default).
#[derive(Debug)]
pub struct Tier2 {
    pub(super) tier: RedisTier,
    pub(super) fleet: Option<(Fleet, mpsc::Receiver<Event>)>,
}

impl Tier2 {
    /// Redis as a shared tier only: conditional writes and tombstones, no
    /// channel and no leases.
    pub fn alone(tier: RedisTier) -> Self {
        Self { tier, fleet: None }
    }

    /// Redis as the fleet's meeting point: starts the channel's subscriber
    /// (it does not wait for it) and takes leases that live `lease` (longer
    /// than a load's limit). `config` is the one the tier was built from.
    ///
    /// # Errors
    ///
    /// [`cache_redis::Error::InvalidUrl`] if the URL does not parse.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn coordinated(tier: RedisTier, config: &Config, lease: Duration) -> Result<Self, cache_redis::Error> {
        let (bus, events) = Bus::start(tier.clone(), config)?;
        Ok(Self { tier, fleet: Some((Fleet { bus, lease, news: Notify::new() }, events)) })
    }

    /// The tier.
    pub fn tier(&self) -> &RedisTier {
        &self.tier
    }
}

impl From<RedisTier> for Tier2 {
    fn from(tier: RedisTier) -> Self {
        Self::alone(tier)
    }
}

/// One replica's part in the fleet: its end of the channel, and how long
/// its leases live.
#[derive(Debug)]
pub struct Fleet {
    bus: Bus,
    lease: Duration,
    /// Woken by every message heard: a replica waiting for a lease holder's
    /// result looks at tier 2 again.
    news: Notify,
}

impl Fleet {
    /// Whether the channel is up, so that tier 1 hears every change.
    pub(super) fn is_listening(&self) -> bool {
        self.bus.is_subscribed()
    }

    /// How long a replica waits for other replicas' result before it loads
    /// alone: the lease's life (by then its holder has released it, or is
    /// dead and it expired) and one source call more, for the replica that
    /// takes a dead holder's lease over to load. Every replica that waited
    /// for the dead holder then waits for that one, instead of each calling
    /// the source.
    fn wait_limit(&self, source_timeout: Duration) -> Duration {
        self.lease + source_timeout
    }

    /// The loader's limit with coordination: the wait for other replicas
    /// ([`wait_limit`](Self::wait_limit)), then a source call of its own
    /// (at most `source_timeout`), and the few Redis round trips around
    /// them, each at most `op_timeout`.
    pub(super) fn load_limit(&self, source_timeout: Duration, op_timeout: Duration) -> Duration {
        self.wait_limit(source_timeout) + source_timeout + op_timeout * 6
    }

    /// Publishes what happened to `subject` at `at`.
    pub(super) async fn publish(&self, kind: Kind, subject: &str, at: SystemTime) -> Result<(), cache_redis::Error> {
        self.bus.publish(&self.bus.message(kind, subject, at)).await.map(drop)
    }

    /// One load of `job`, coordinated with the other replicas (see the
    /// [module](self)).
    pub(super) async fn load(
        &self,
        shared: &Shared,
        redis: &RedisTier,
        source: &dyn Source,
        job: &Job,
        started_at: SystemTime,
    ) -> Result<Fetched, SourceError> {
        let wallet = &job.wallet;
        let held = shared.cache.peek(wallet).map(|entry| entry.fetched_at());
        let adopt = || adopt(shared, redis, job, held, started_at);
        // No look at tier 2 before the lease: a request that missed tier 1
        // has just read it, and the look under the lease below is the one
        // that counts (another replica may store and release in between).
        let mut contended_since: Option<Instant> = None;
        let mut pause = FIRST_POLL;
        loop {
            match redis.try_lock_load(wallet.as_str(), self.lease).await {
                Ok(Some(token)) => {
                    let event = if contended_since.is_some() { LeaseEvent::TakenOver } else { LeaseEvent::Acquired };
                    shared.metrics.fleet.record_lease(event);
                    // Another replica may have stored it between the look
                    // above and the lease.
                    let result = match adopt().await {
                        Some(found) => Ok(found),
                        None => shared.fetch_and_store(source, wallet, started_at).await,
                    };
                    if let Err(e) = redis.unlock_load(wallet.as_str(), &token).await {
                        tracing::debug!(%wallet, error = %e, "could not release a load lease; it expires");
                    }
                    return result;
                }
                Ok(None) => {
                    let since = *contended_since.get_or_insert_with(|| {
                        shared.metrics.fleet.record_lease(LeaseEvent::Contended);
                        Instant::now()
                    });
                    let limit = self.wait_limit(shared.source_timeout);
                    let Some(left) = limit.checked_sub(since.elapsed()).filter(|left| !left.is_zero()) else {
                        tracing::debug!(%wallet, "no result from the lease's holders in time; loading alone");
                        break;
                    };
                    let news = self.news.notified();
                    let _ = tokio::time::timeout(pause.min(left), news).await;
                    pause = (pause * 2).min(MAX_POLL);
                    if let Some(found) = adopt().await {
                        return Ok(found);
                    }
                }
                // Redis cannot say who loads: load alone, as a replica
                // without a fleet would.
                Err(_) => break,
            }
        }
        shared.fetch_and_store(source, wallet, started_at).await
    }
}

/// Takes the wallet's entry from tier 2 instead of loading it, if it is the
/// result the load is for: fresh, not older than what this replica held
/// (`held`; an equal time confirms an entry marked stale after a gap), and,
/// for a forced refresh, fetched after the request arrived. It fills tier 1
/// unless the wallet was deleted since the load started.
async fn adopt(
    shared: &Shared,
    redis: &RedisTier,
    job: &Job,
    held: Option<SystemTime>,
    started_at: SystemTime,
) -> Option<Fetched> {
    let wallet = &job.wallet;
    let stored = redis.get::<StoredSnapshot>(wallet.as_str()).await.ok()??;
    let age = shared.clock.now().duration_since(stored.fetched_at).unwrap_or_default();
    let usable = shared.cache.policy().freshness(age) == Freshness::Fresh
        && held.is_none_or(|held| stored.fetched_at >= held)
        && job.not_before.is_none_or(|not_before| stored.fetched_at >= not_before);
    if !usable {
        return None;
    }
    let fetched_at = stored.fetched_at;
    let snapshot = Arc::new(shared.unstore(stored.value)?);
    let kept = shared.tombstones.store_unless_deleted(wallet, started_at, || {
        shared.cache.insert_if_newer(wallet.clone(), Arc::clone(&snapshot), fetched_at);
    });
    if !kept {
        return None;
    }
    shared.metrics.fleet.record_adopted();
    Some(Fetched { snapshot, fetched_at })
}

/// Hears the other replicas until the service is dropped (its bus then
/// stops, and `events` ends).
pub(super) async fn hear(shared: Weak<Shared>, mut events: mpsc::Receiver<Event>) {
    while let Some(event) = events.recv().await {
        let Some(shared) = shared.upgrade() else { return };
        shared.hear(event);
    }
}

impl Shared {
    /// Follows one event of the fleet's channel.
    fn hear(&self, event: Event) {
        match event {
            Event::Message(message) => {
                match message.kind {
                    Kind::Deleted => {
                        if let Ok(wallet) = Wallet::parse(&message.subject) {
                            self.tombstones.delete(&wallet, message.at, || self.drop_from_memory(&wallet));
                        }
                    }
                    Kind::PatternDeleted => {
                        if let Ok(pattern) = Pattern::new(&message.subject) {
                            self.tombstones
                                .delete_matching(pattern, message.at, || {
                                    self.drop_matching_from_memory(&message.subject)
                                })
                                .ok();
                        }
                    }
                    Kind::Stored => {
                        if let Ok(wallet) = Wallet::parse(&message.subject)
                            && self.cache.peek(&wallet).is_some_and(|entry| entry.fetched_at() < message.at)
                        {
                            // The next read finds the newer entry in tier 2.
                            self.drop_from_memory(&wallet);
                        }
                    }
                }
                if let Some(fleet) = &self.fleet {
                    fleet.news.notify_waiters();
                }
            }
            Event::Lost { since } => {
                tracing::warn!(
                    since = crate::model::rfc3339(OffsetDateTime::from(since)),
                    "fleet channel lost; memory answers only after Redis confirms it, until the channel is back"
                );
            }
            Event::Resubscribed { since, until } => {
                let marked = self.cache.mark_stale_before(until);
                self.metrics.fleet.record_resubscribed(u64::try_from(marked).unwrap_or(u64::MAX));
                tracing::info!(
                    gap_s = until.duration_since(since).unwrap_or_default().as_secs_f64(),
                    revalidating = marked,
                    "fleet channel back; entries fetched before it are stale until revalidated"
                );
            }
        }
    }
}
