//! When a value is refreshed: early for values in demand
//! ([`EagerRefresh`]), and by per-key rules ([`KeyRule`]).

use std::time::Duration;

use cache_core::Entry;

/// The eager refresh rule: a read of a fresh memory entry at least
/// `at_pct` percent into its TTL, for a key read at least `min_reads` times
/// lately, starts the key's one background refresh early, so that a key in
/// demand is refreshed before anyone is served it stale.
///
/// Why a fixed fraction of the TTL (as `FusionCache`'s eager refresh and
/// Caffeine's `refreshAfterWrite`) and not probabilistic early expiration
/// (`XFetch`, Vattani et al. 2015): `XFetch` recomputes ahead of expiry by a
/// random multiple of the load time, a fraction of a second to a few
/// seconds, against TTLs of minutes. A key is then refreshed early only if
/// it is read in those last seconds, which only the very hottest are. A
/// fixed fraction gives a window of `(100 - at_pct)%` of the TTL in which
/// any read starts the refresh, it is deterministic, and its cost is
/// bounded: a key refreshed eagerly is fetched at most once per `at_pct%`
/// of the TTL instead of once per TTL, so `at_pct = 90` costs at most 11%
/// more fetches of the keys it applies to. `XFetch`'s strength, spreading
/// the recomputations of one key across many uncoordinated readers, the
/// single flight per key already gives.
///
/// "In demand" is the memory entry's read count
/// ([`cache_core::Entry::demand`]), which halves once per the cache's
/// demand half-life: set that to the TTL
/// ([`cache_core::CacheBuilder::demand_half_life`]) and `min_reads` reads
/// "per TTL". Keys read less are never refreshed early: for them an early
/// refresh would mostly be a fetch no one reads before it goes stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EagerRefresh {
    /// How far into the TTL, in percent (1 to 99), the early window opens.
    pub at_pct: u8,
    /// Reads lately (see [`Entry::demand`]) that make a key in demand.
    pub min_reads: u16,
}

impl EagerRefresh {
    /// Whether an entry read now, fresh under `ttl`, is due for an early
    /// refresh.
    pub fn is_due<V>(self, entry: &Entry<V>, ttl: Duration) -> bool {
        entry.demand() >= self.min_reads && entry.age().as_nanos() * 100 >= ttl.as_nanos() * u128::from(self.at_pct)
    }
}

/// What one key's rule says, from
/// [`Builder::key_rules`](crate::Builder::key_rules).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyRule {
    /// A TTL of its own, shorter than the cache's: the key is served stale
    /// (and refreshed) once it is older. A longer one has no effect: the
    /// memory tier's windows still apply.
    pub ttl: Option<Duration>,
    /// Whether the key's refreshes go to the front of their class in the
    /// load queue, ahead of keys ranked by demand.
    pub high: bool,
}

impl KeyRule {
    /// A refresh's rank in its class of the load queue: the front for a
    /// `high` key, else the key's `demand`.
    pub(crate) fn rank(self, demand: u16) -> u16 {
        if self.high { u16::MAX } else { demand }
    }
}
