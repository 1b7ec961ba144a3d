//! [`SwrCache`]: the semantics table, in one place.

use std::fmt;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use cache_core::{Cache, Entry, Freshness};
use refresh::{DrainReport, LoadError, Loader, Priority, Refresh};

use crate::builder::{Builder, Rules};
use crate::got::{Got, Loaded, Origin};
use crate::guard::Guard;
use crate::observer::{Count, Counters, Lookup, Observer, Stats};
use crate::rules::{EagerRefresh, KeyRule};
use crate::tier::{BoxFuture, SecondTier, TierRead};

/// The load function, once boxed.
type BoxedLoad<K, V, E, C> =
    Arc<dyn Fn(K, C) -> Pin<Box<dyn Future<Output = Result<Loaded<V>, E>> + Send>> + Send + Sync>;

/// What [`Builder::build_with`] hands over.
pub(crate) struct Parts<K, V, E, C, F> {
    pub(crate) builder: Builder<K, V, E>,
    pub(crate) capture: Arc<dyn Fn() -> C + Send + Sync>,
    pub(crate) load: Arc<F>,
}

/// Why [`SwrCache::try_get`] did not answer, for
/// [`SwrCache::complete`]: whether memory was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "pass it to `complete` to finish the read"]
pub struct Pending {
    looked: bool,
}

/// The future of [`SwrCache::get_or_load`]. Its first poll reads memory
/// (in the caller's task, so a context captured for a load is the
/// poller's): a hit is ready there, with nothing allocated; only a miss
/// builds the boxed future that reads the second tier and loads.
#[must_use = "futures do nothing unless polled"]
pub struct GetOrLoad<'a, K, V, E, C> {
    cache: &'a SwrCache<K, V, E, C>,
    key: &'a K,
    /// The rest of a read that memory could not answer.
    rest: Option<BoxFuture<'a, Answer<V, E>>>,
}

/// What a read answers.
type Answer<V, E> = Result<Got<V>, LoadError<E>>;

impl<K, V, E, C> Future for GetOrLoad<'_, K, V, E, C>
where
    K: Hash + Eq + Clone + Send + Sync + fmt::Debug + 'static,
    V: Clone + Send + Sync + 'static,
    E: fmt::Display + Send + Sync + 'static,
    C: Clone + Send + Sync + 'static,
{
    type Output = Answer<V, E>;

    #[inline(always)]
    #[expect(
        clippy::inline_always,
        reason = "the hit path: inlined into the caller, the answer is built in place instead of moved through three frames (measured: 56 -> 44 ns per hit, `cargo bench -p cache-swr --bench swr`)"
    )]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Unpin: two references and a box.
        let this = self.get_mut();
        if let Some(rest) = &mut this.rest {
            return rest.as_mut().poll(cx);
        }
        match this.cache.try_get(this.key) {
            Ok(got) => Poll::Ready(Ok(got)),
            Err(pending) => this.rest.insert(Box::pin(this.cache.complete(this.key, pending))).as_mut().poll(cx),
        }
    }
}

impl<K, V, E, C> fmt::Debug for GetOrLoad<'_, K, V, E, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GetOrLoad").field("missed", &self.rest.is_some()).finish_non_exhaustive()
    }
}

/// Deletes from a [`SwrCache`]'s memory, final for the loads and
/// second-tier reads that started before: see [`SwrCache::invalidator`].
pub struct Invalidator<K, V> {
    cache: Arc<Cache<K, V>>,
    guard: Arc<Guard<K>>,
}

impl<K, V> Clone for Invalidator<K, V> {
    fn clone(&self) -> Self {
        Self { cache: Arc::clone(&self.cache), guard: Arc::clone(&self.guard) }
    }
}

impl<K, V> fmt::Debug for Invalidator<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Invalidator").finish_non_exhaustive()
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Invalidator<K, V> {
    /// As [`SwrCache::invalidate`].
    pub fn invalidate(&self, key: &K) -> bool {
        self.guard.delete(key, || self.cache.invalidate(key))
    }

    /// As [`SwrCache::invalidate_all`].
    pub fn invalidate_all(&self) -> usize {
        self.guard.delete_all(|| self.cache.clear())
    }

    /// Drops every key matching the glob `pattern` from memory
    /// ([`Cache::invalidate_matching`]); returns how many went. Every load
    /// and second-tier read that started before now stores nothing, of any
    /// key: a pattern is not recorded key by key, so the guard is as broad
    /// as [`invalidate_all`](Self::invalidate_all)'s (those values are read
    /// again on their next miss).
    ///
    /// # Errors
    ///
    /// A malformed pattern; nothing is dropped.
    pub fn invalidate_matching(&self, pattern: &str) -> Result<usize, cache_core::glob::PatternError>
    where
        K: std::borrow::Borrow<str>,
    {
        cache_core::glob::Pattern::new(pattern)?;
        self.guard.delete_all(|| self.cache.invalidate_matching(pattern))
    }
}

/// A load as the loader keys it: the key, with the context of the read
/// that started it. Equal and hashed by the key alone, so that every read
/// of a key joins one flight whatever its context.
#[derive(Clone)]
struct Call<K, C> {
    key: K,
    context: C,
}

impl<K: PartialEq, C> PartialEq for Call<K, C> {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl<K: Eq, C> Eq for Call<K, C> {}

impl<K: Hash, C> Hash for Call<K, C> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}

impl<K: fmt::Debug, C> fmt::Debug for Call<K, C> {
    /// The key alone: the loader's log lines name the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.key.fmt(f)
    }
}

/// A stale-while-revalidate cache: a [`cache_core::Cache`] as its memory
/// tier, a [`refresh::Loader`] for its loads, and optionally a
/// [`SecondTier`], composed by one table (see the [crate](crate) docs).
///
/// Cloning is cheap; every clone is the same cache.
pub struct SwrCache<K, V, E, C = ()> {
    inner: Arc<Inner<K, V, E, C>>,
}

struct Inner<K, V, E, C> {
    cache: Arc<Cache<K, V>>,
    loader: Loader<Call<K, C>, Loaded<V>, E>,
    tier: Option<Arc<dyn SecondTier<K, V>>>,
    /// `None` when nobody listens: a hit then makes no call.
    observer: Option<Arc<dyn Observer<K, E>>>,
    counters: Counters,
    eager: Option<EagerRefresh>,
    rules: Option<Rules<K>>,
    capture: Arc<dyn Fn() -> C + Send + Sync>,
    guard: Arc<Guard<K>>,
}

impl<K, V, E, C> Clone for SwrCache<K, V, E, C> {
    fn clone(&self) -> Self {
        Self { inner: Arc::clone(&self.inner) }
    }
}

impl<K, V, E, C> fmt::Debug for SwrCache<K, V, E, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("SwrCache")
            .field("stats", &inner.counters.snapshot())
            .field("second_tier", &inner.tier.is_some())
            .finish_non_exhaustive()
    }
}

impl<K, V> SwrCache<K, V, std::convert::Infallible> {
    /// Starts building a cache over `memory`, the memory tier: its
    /// capacity, freshness windows and clock are the cache's.
    ///
    /// The error type is the load function's, fixed by
    /// [`build`](Builder::build).
    pub fn builder<E>(memory: impl Into<Arc<Cache<K, V>>>) -> Builder<K, V, E>
    where
        K: Hash + Eq + Clone + Send + Sync + fmt::Debug + 'static,
        V: Clone + Send + Sync + 'static,
        E: fmt::Display + Send + Sync + 'static,
    {
        Builder::new(memory.into())
    }
}

impl<K, V, E, C> SwrCache<K, V, E, C>
where
    K: Hash + Eq + Clone + Send + Sync + fmt::Debug + 'static,
    V: Clone + Send + Sync + 'static,
    E: fmt::Display + Send + Sync + 'static,
    C: Clone + Send + Sync + 'static,
{
    pub(crate) fn from_parts<F, Fut>(parts: Parts<K, V, E, C, F>) -> Self
    where
        F: Fn(K, C) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Loaded<V>, E>> + Send + 'static,
    {
        let Parts { builder, capture, load } = parts;
        let user: BoxedLoad<K, V, E, C> = Arc::new(move |key, context| Box::pin(load(key, context)));
        // A deletion must outlive every load that started before it.
        let guard = Arc::new(Guard::new(builder.config.timeout + builder.config.queue_timeout));
        let (cache, for_loads) = (Arc::clone(&builder.cache), Arc::clone(&guard));
        let load = move |call: Call<K, C>| {
            let (cache, guard, user) = (Arc::clone(&cache), Arc::clone(&for_loads), Arc::clone(&user));
            async move {
                let started = guard.started();
                let loaded = user(call.key.clone(), call.context).await?;
                if loaded.store {
                    guard.store_unless_deleted(&call.key, started, || {
                        cache.insert_if_newer(call.key.clone(), loaded.value.clone(), loaded.fetched_at);
                    });
                }
                Ok(loaded)
            }
        };
        let loader = match builder.loader_observer {
            Some(observer) => Loader::with_observer(builder.config, observer, load),
            None => Loader::new(builder.config, load),
        };
        let inner = Inner {
            cache: builder.cache,
            loader,
            tier: builder.tier,
            observer: builder.observer,
            counters: Counters::default(),
            eager: builder.eager,
            rules: builder.rules,
            capture,
            guard,
        };
        Self { inner: Arc::new(inner) }
    }

    /// The value of `key` by the semantics table: a fresh value from
    /// memory (or the second tier); a stale one at once, with one
    /// background refresh; otherwise a load, shared with every concurrent
    /// read of the key; if that load fails, a value within the
    /// stale-if-error window.
    ///
    /// A hit is ready on the first poll, with nothing allocated
    /// ([`GetOrLoad`]).
    ///
    /// # Errors
    ///
    /// The load's error ([`LoadError`]) when a load was needed and failed
    /// with nothing within stale-if-error to fall back on.
    #[inline]
    pub fn get_or_load<'a>(&'a self, key: &'a K) -> GetOrLoad<'a, K, V, E, C> {
        GetOrLoad { cache: self, key, rest: None }
    }

    /// The first, synchronous half of [`get_or_load`](Self::get_or_load):
    /// what memory alone answers, without creating a future. A server's
    /// hot path answers a hit from here and builds the rest of its answer
    /// only on a [`Pending`], which it hands to
    /// [`complete`](Self::complete).
    ///
    /// # Errors
    ///
    /// [`Pending`] when memory cannot answer alone: a miss, or a second
    /// tier that does not [trust memory](SecondTier::trusts_memory) now.
    #[inline(always)]
    #[expect(
        clippy::inline_always,
        reason = "the hit path: inlined into the caller, the answer is built in place instead of moved through three frames (measured: 56 -> 44 ns per hit, `cargo bench -p cache-swr --bench swr`)"
    )]
    pub fn try_get(&self, key: &K) -> Result<Got<V>, Pending> {
        let inner = &*self.inner;
        if inner.tier.as_ref().is_some_and(|tier| !tier.trusts_memory()) {
            return Err(Pending { looked: false });
        }
        match inner.cache.get(key) {
            Some(entry) => Ok(self.serve(key, entry)),
            None => Err(Pending { looked: true }),
        }
    }

    /// The second half of [`get_or_load`](Self::get_or_load), after
    /// [`try_get`](Self::try_get) gave `pending` for `key`: the second
    /// tier, then a load. Memory is not read again unless `pending` says
    /// it was not read.
    ///
    /// # Errors
    ///
    /// As [`get_or_load`](Self::get_or_load).
    pub async fn complete(&self, key: &K, pending: Pending) -> Result<Got<V>, LoadError<E>> {
        let inner = &*self.inner;
        if let Some(tier) = &inner.tier {
            // Memory was not trusted to answer alone: it answers only if
            // the tier cannot.
            let held = if pending.looked { None } else { inner.cache.get(key) };
            if let Some(got) = self.read_tier(&**tier, key, held).await {
                return Ok(got);
            }
        } else if !pending.looked
            && let Some(entry) = inner.cache.get(key)
        {
            return Ok(self.serve(key, entry));
        }
        self.load(key, (inner.capture)()).await
    }

    /// What memory alone answers for `key`, without waiting for anything,
    /// by the same table as [`get_or_load`](Self::get_or_load) (a stale
    /// value starts its background refresh); `None` when it cannot answer
    /// alone.
    pub fn get_if_present(&self, key: &K) -> Option<Got<V>> {
        self.try_get(key).ok()
    }

    /// What memory holds for `key` if it was fetched less than `max_age`
    /// ago, answered as [`get_if_present`](Self::get_if_present) would: a
    /// forced reload can answer this instead of loading again, so that
    /// clients cannot drive the source at will.
    pub fn get_if_younger_than(&self, key: &K, max_age: Duration) -> Option<Got<V>> {
        if self.inner.tier.as_ref().is_some_and(|tier| !tier.trusts_memory()) {
            return None;
        }
        let entry = self.inner.cache.peek(key).filter(|entry| entry.age() < max_age)?;
        Some(self.serve(key, entry))
    }

    /// A forced reload that answers what the cache holds instead if it was
    /// fetched less than `max_age` ago ([`get_if_younger_than`](Self::get_if_younger_than)),
    /// in `context` if it starts a load. While memory is not trusted, such
    /// a value answers only if the second tier still holds it (or
    /// something newer) or cannot be asked: the rate limit holds during an
    /// outage, and a deletion elsewhere is still final.
    ///
    /// # Errors
    ///
    /// As [`get_or_load`](Self::get_or_load).
    pub async fn reload_unless_younger_than(
        &self,
        key: &K,
        max_age: Duration,
        context: C,
    ) -> Result<Got<V>, LoadError<E>> {
        let inner = &*self.inner;
        if let Some(entry) = inner.cache.peek(key).filter(|entry| entry.age() < max_age) {
            match &inner.tier {
                Some(tier) if !tier.trusts_memory() => {
                    if let Some(got) = self.read_tier(&**tier, key, Some(entry)).await {
                        return Ok(got);
                    }
                }
                _ => return Ok(self.serve(key, entry)),
            }
        }
        self.load(key, context).await
    }

    /// Loads `key` now, whatever the cache holds, and answers the result
    /// (joining a load of it already running); falls back on a value
    /// within stale-if-error if the load fails.
    ///
    /// # Errors
    ///
    /// As [`get_or_load`](Self::get_or_load).
    pub async fn reload(&self, key: &K) -> Result<Got<V>, LoadError<E>> {
        self.load(key, (self.inner.capture)()).await
    }

    /// [`reload`](Self::reload) with a context of the caller's choosing
    /// rather than a captured one (used if this call starts the load).
    ///
    /// # Errors
    ///
    /// As [`get_or_load`](Self::get_or_load).
    pub async fn reload_in(&self, key: &K, context: C) -> Result<Got<V>, LoadError<E>> {
        self.load(key, context).await
    }

    /// Starts a background load of `key` unless one is running, as a stale
    /// read would; returns at once.
    pub fn refresh(&self, key: &K) -> Refresh {
        self.refresh_with(key, Priority::Stale, 0)
    }

    /// Starts a background load of `key` in the load queue's `class` at
    /// `rank` (higher first), unless one is running.
    pub fn refresh_with(&self, key: &K, class: Priority, rank: u16) -> Refresh {
        let call = Call { key: key.clone(), context: (self.inner.capture)() };
        self.inner.loader.refresh_with(call, class, rank)
    }

    /// Drops `key` from memory; returns whether it was there. A load of
    /// it, or a second-tier read, that started before now stores nothing.
    /// (A second tier is the caller's to clear.)
    pub fn invalidate(&self, key: &K) -> bool {
        self.invalidator().invalidate(key)
    }

    /// Drops every key from memory; returns how many went. Loads and
    /// second-tier reads that started before now store nothing.
    pub fn invalidate_all(&self) -> usize {
        self.invalidator().invalidate_all()
    }

    /// A handle that deletes from this cache's memory with the same
    /// guarantee as [`invalidate`](Self::invalidate), for code that must
    /// not hold the cache itself: a task hearing other processes'
    /// deletions, or a load function's own state (which the cache holds,
    /// so holding the cache there would be a cycle).
    pub fn invalidator(&self) -> Invalidator<K, V> {
        Invalidator { cache: Arc::clone(&self.inner.cache), guard: Arc::clone(&self.inner.guard) }
    }

    /// How reads were answered since the cache was built.
    pub fn stats(&self) -> Stats {
        self.inner.counters.snapshot()
    }

    /// The memory tier, for what the table does not cover: sizes, scans,
    /// pattern deletions, warm-up fills.
    pub fn memory(&self) -> &Cache<K, V> {
        &self.inner.cache
    }

    /// Background refreshes running or queued.
    pub fn active_refreshes(&self) -> usize {
        self.inner.loader.active_refreshes()
    }

    /// Loads running or queued, of every kind.
    pub fn in_flight(&self) -> usize {
        self.inner.loader.in_flight()
    }

    /// Stops starting loads and lets those in flight finish, for up to
    /// `grace`; the rest are aborted.
    pub async fn shutdown(&self, grace: Duration) -> DrainReport {
        self.inner.loader.shutdown(grace).await
    }

    /// Answers from a memory entry, starting a background refresh if it is
    /// stale, or early if the key is in demand near the end of its TTL.
    #[inline(always)]
    #[expect(
        clippy::inline_always,
        reason = "the hit path: inlined into the caller, the answer is built in place instead of moved through three frames (measured: 56 -> 44 ns per hit, `cargo bench -p cache-swr --bench swr`)"
    )]
    fn serve(&self, key: &K, entry: Entry<V>) -> Got<V> {
        let inner = &*self.inner;
        let rule = self.rule(key);
        let ttl = rule.ttl.unwrap_or_else(|| inner.cache.policy().ttl());
        let rank = |entry: &Entry<V>| rule.rank(entry.demand());
        let age = entry.age();
        let stale = entry.is_stale() || age > ttl;
        let lookup = if stale {
            self.refresh_with(key, Priority::Stale, rank(&entry));
            Lookup::Stale
        } else {
            if inner.eager.is_some_and(|eager| eager.is_due(&entry, ttl))
                && self.refresh_with(key, Priority::Eager, rank(&entry)) == Refresh::Started
            {
                inner.counters.add(Count::EagerRefresh);
                if let Some(observer) = &inner.observer {
                    observer.eager_refresh(key);
                }
            }
            Lookup::Hit
        };
        self.count(key, lookup);
        Got { value: entry.into_value(), age, stale, origin: Origin::Memory }
    }

    /// Reads the second tier after a memory miss, or to check `held`, the
    /// memory entry, while memory is not trusted. A value there fills
    /// memory with its own `fetched_at` and, within the stale-while-
    /// revalidate window, answers; an older one stays in memory as a
    /// fail-safe and the caller loads. An unavailable tier answers `held`,
    /// if any.
    ///
    /// A load may finish while the tier is read: memory then holds a newer
    /// value than the tier gave, which stays, and answers.
    async fn read_tier(&self, tier: &dyn SecondTier<K, V>, key: &K, held: Option<Entry<V>>) -> Option<Got<V>> {
        let inner = &*self.inner;
        let started = inner.guard.started();
        let (value, fetched_at) = match tier.read(key).await {
            TierRead::Found(value, fetched_at) => (value, fetched_at),
            TierRead::Absent => return None,
            TierRead::Unavailable => return held.map(|entry| self.serve(key, entry)),
        };
        // What the tier gave was read before any deletion since `started`:
        // it must not come back into memory, or answer.
        let mut newest = true;
        if !inner.guard.store_unless_deleted(key, started, || {
            newest = inner.cache.insert_if_newer(key.clone(), value.clone(), fetched_at);
        }) {
            return None;
        }
        if !newest && let Some(entry) = inner.cache.get(key) {
            return Some(self.serve(key, entry));
        }
        let age = inner.cache.current_time().duration_since(fetched_at).unwrap_or_default();
        // The key's own rule, as `serve` applies it to memory entries.
        let rule = self.rule(key);
        let stale = match inner.cache.policy().freshness(age) {
            Freshness::Fresh => rule.ttl.is_some_and(|ttl| age > ttl),
            Freshness::Stale => true,
            Freshness::Expired => return None,
        };
        if stale {
            // Not in memory before: no demand to rank by.
            self.refresh_with(key, Priority::Stale, rule.rank(0));
        }
        inner.counters.add(Count::SecondTierHit);
        self.count(key, if stale { Lookup::Stale } else { Lookup::Hit });
        Some(Got { value, age, stale, origin: Origin::SecondTier })
    }

    /// A load that the caller waits for, in `context` if it starts one;
    /// the stale-if-error value if it fails.
    async fn load(&self, key: &K, context: C) -> Result<Got<V>, LoadError<E>> {
        let inner = &*self.inner;
        self.count(key, Lookup::Miss);
        match inner.loader.load(Call { key: key.clone(), context }).await {
            Ok(loaded) => {
                let age = inner.cache.current_time().duration_since(loaded.fetched_at).unwrap_or_default();
                let stale = inner.cache.policy().freshness(age).is_stale();
                Ok(Got { value: loaded.value, age, stale, origin: Origin::Loaded })
            }
            Err(error) => {
                let Some(entry) = inner.cache.get_fail_safe(key) else {
                    inner.counters.add(Count::Error);
                    return Err(error);
                };
                inner.counters.add(Count::FailSafe);
                if let Some(observer) = &inner.observer {
                    observer.fail_safe(key, &error, entry.age());
                }
                let (age, stale) = (entry.age(), entry.is_stale());
                Ok(Got { value: entry.into_value(), age, stale, origin: Origin::FailSafe })
            }
        }
    }

    #[inline]
    /// `key`'s rule, or the default one when no rules were given.
    fn rule(&self, key: &K) -> KeyRule {
        self.inner.rules.as_ref().map_or_else(KeyRule::default, |rules| rules(key))
    }

    fn count(&self, key: &K, lookup: Lookup) {
        self.inner.counters.add(Count::Lookup(lookup));
        if let Some(observer) = &self.inner.observer {
            observer.lookup(key, lookup);
        }
    }
}
