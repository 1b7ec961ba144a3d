//! The second tier: a shared store (Redis, a database table, another
//! process) read after the memory tier misses.

use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

/// A boxed future, as [`SecondTier::read`] returns it.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a second tier answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TierRead<V> {
    /// A value, fetched from the source at the given time (by whichever
    /// process loaded it): the cache judges its freshness by that age.
    Found(V, SystemTime),
    /// The tier does not hold the key.
    Absent,
    /// The tier could not be asked (down, timed out): the cache answers
    /// what it can without it.
    Unavailable,
}

/// A shared tier behind the memory tier.
///
/// After a memory miss the cache reads the second tier before it loads. A
/// value found there fills the memory tier, keeping its `fetched_at`, and
/// answers by the same freshness rules as memory: fresh, or stale with one
/// background refresh; a value older than the stale-while-revalidate
/// window stays in memory as a fail-safe and the read loads.
///
/// The tier is only read here. Writing it belongs to the load function,
/// which knows the rules of the shared store (conditional writes,
/// deletions from other processes); it returns
/// [`Loaded::new`](crate::Loaded::new) as usual, and the cache fills
/// memory. A fill from the tier, like a load's store, is dropped if the
/// key was invalidated after the read began.
///
/// Reads of the second tier are not single-flight: every reader that
/// missed memory asks it (it is meant to be a fast shared store, and its
/// answer fills memory for the next reader).
pub trait SecondTier<K, V>: Send + Sync + 'static {
    /// Reads `key`. Must bound its own time: a slow tier makes every
    /// memory miss slow.
    fn read<'a>(&'a self, key: &'a K) -> BoxFuture<'a, TierRead<V>>;

    /// Whether the memory tier may answer on its own right now. A process
    /// that hears other processes' deletions over a channel says `false`
    /// while the channel is down: memory may then hold what was deleted
    /// elsewhere, so the cache asks the second tier first and falls back to
    /// memory only if the tier is [`Unavailable`](TierRead::Unavailable).
    fn trusts_memory(&self) -> bool {
        true
    }
}
