//! What a read answers ([`Got`]) and what a load produces ([`Loaded`]).

use std::time::{Duration, SystemTime};

/// A value as a read answers it: the value, how old it is, and where it
/// came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Got<V> {
    /// The value.
    pub value: V,
    /// How long ago it was fetched from the source.
    pub age: Duration,
    /// Whether it is past its TTL. A stale value read from the cache has
    /// started a background refresh (unless one was running).
    pub stale: bool,
    /// Where it came from.
    pub origin: Origin,
}

impl<V> Got<V> {
    /// Whether the value came from a cache tier rather than from a load
    /// this read waited for.
    pub fn cached(&self) -> bool {
        !matches!(self.origin, Origin::Loaded)
    }

    /// The same answer with its value changed by `f`.
    pub fn map<W>(self, f: impl FnOnce(V) -> W) -> Got<W> {
        Got { value: f(self.value), age: self.age, stale: self.stale, origin: self.origin }
    }
}

/// Where a [`Got`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// The memory tier, within the TTL or the stale-while-revalidate
    /// window.
    Memory,
    /// The second tier ([`SecondTier`](crate::SecondTier)), within the TTL
    /// or the stale-while-revalidate window; it now fills the memory tier.
    SecondTier,
    /// A load that this read waited for (a miss, or a forced reload).
    Loaded,
    /// The memory tier, past the normal windows but within
    /// stale-if-error, because the load failed.
    FailSafe,
}

/// What a load function produces: the value and when it was fetched.
///
/// The [`SwrCache`](crate::SwrCache) stores a loaded value in its memory
/// tier itself ([`Loaded::new`]), unless a [`SwrCache::invalidate`](crate::SwrCache::invalidate)
/// landed while the load ran: a deletion is never undone by a load that
/// started before it. A load function that writes a second tier does so
/// and still returns [`Loaded::new`]: memory is the cache's to fill. Only a
/// load function that keeps memory by rules of its own (deletions heard
/// from other processes, with tombstones of its own) stores the value
/// itself and says so with [`Loaded::stored_by_loader`]; the cache's
/// guarantee that a deletion is final then rests on those rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded<V> {
    pub(crate) value: V,
    pub(crate) fetched_at: SystemTime,
    pub(crate) store: bool,
}

impl<V> Loaded<V> {
    /// `value`, fetched at `fetched_at`, for the cache to store.
    pub fn new(value: V, fetched_at: SystemTime) -> Self {
        Self { value, fetched_at, store: true }
    }

    /// `value`, fetched at `fetched_at`, which the load function has
    /// already stored where it belongs (or chose not to store): the cache
    /// only hands it to the callers.
    pub fn stored_by_loader(value: V, fetched_at: SystemTime) -> Self {
        Self { value, fetched_at, store: false }
    }

    /// The value.
    pub fn value(&self) -> &V {
        &self.value
    }

    /// When it was fetched.
    pub fn fetched_at(&self) -> SystemTime {
        self.fetched_at
    }
}
