//! Building a [`SwrCache`].

use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;

use cache_core::Cache;

use crate::got::Loaded;
use crate::observer::Observer;
use crate::rules::{EagerRefresh, KeyRule};
use crate::swr::{Parts, SwrCache};
use crate::tier::SecondTier;

/// Per-key rules, as [`Builder::key_rules`] takes them.
pub(crate) type Rules<K> = Arc<dyn Fn(&K) -> KeyRule + Send + Sync>;

/// Sets up a [`SwrCache`]: the memory tier it composes, the loader's
/// limits, and the optional parts. Made by [`SwrCache::builder`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use cache_core::{Cache, Policy};
/// use cache_swr::{EagerRefresh, SwrCache};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let policy = Policy::new(Duration::from_secs(60)).stale_while_revalidate(Duration::from_secs(600));
/// let mut limits = refresh::Config::default();
/// limits.timeout = Duration::from_secs(2);
/// let prices = SwrCache::builder(Cache::new(10_000, policy))
///     .loader_config(limits)
///     .eager_refresh(EagerRefresh { at_pct: 90, min_reads: 10 })
///     .build(|ticker: String| async move { Ok::<_, std::io::Error>(ticker.len() as u64) });
/// assert_eq!(prices.get_or_load(&"BTC".to_owned()).await.unwrap().value, 3);
/// # }
/// ```
pub struct Builder<K, V, E> {
    pub(crate) cache: Arc<Cache<K, V>>,
    pub(crate) config: refresh::Config,
    pub(crate) loader_observer: Option<Arc<dyn refresh::Observer>>,
    pub(crate) tier: Option<Arc<dyn SecondTier<K, V>>>,
    pub(crate) observer: Option<Arc<dyn Observer<K, E>>>,
    pub(crate) eager: Option<EagerRefresh>,
    pub(crate) rules: Option<Rules<K>>,
}

impl<K, V, E> Builder<K, V, E>
where
    K: Hash + Eq + Clone + Send + Sync + fmt::Debug + 'static,
    V: Clone + Send + Sync + 'static,
    E: fmt::Display + Send + Sync + 'static,
{
    pub(crate) fn new(cache: Arc<Cache<K, V>>) -> Self {
        Self {
            cache,
            config: refresh::Config::default(),
            loader_observer: None,
            tier: None,
            observer: None,
            eager: None,
            rules: None,
        }
    }

    /// The loader's limits: loads at once, queue length and wait, and the
    /// timeout of one load ([`refresh::Config`]; its defaults otherwise).
    #[must_use]
    pub fn loader_config(mut self, config: refresh::Config) -> Self {
        self.config = config;
        self
    }

    /// Hears every load's events, for metrics ([`refresh::Observer`]).
    #[must_use]
    pub fn loader_observer(mut self, observer: Arc<dyn refresh::Observer>) -> Self {
        self.loader_observer = Some(observer);
        self
    }

    /// A second tier, read after a memory miss ([`SecondTier`]).
    #[must_use]
    pub fn second_tier(mut self, tier: Arc<dyn SecondTier<K, V>>) -> Self {
        self.tier = Some(tier);
        self
    }

    /// Hears how reads are answered ([`Observer`]).
    #[must_use]
    pub fn observer(mut self, observer: Arc<dyn Observer<K, E>>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Refreshes values in demand before they go stale ([`EagerRefresh`]);
    /// off unless set.
    ///
    /// # Panics
    ///
    /// If `rule.at_pct` is not within 1 to 99: 0 would refresh a key in
    /// demand on every read, 100 or more never.
    #[must_use]
    pub fn eager_refresh(mut self, rule: EagerRefresh) -> Self {
        assert!((1..=99).contains(&rule.at_pct), "EagerRefresh::at_pct must be within 1 to 99, got {}", rule.at_pct);
        self.eager = Some(rule);
        self
    }

    /// Rules for some keys: a shorter TTL, or the front of the load queue
    /// ([`KeyRule`]). Called on every memory hit, so keep it cheap.
    #[must_use]
    pub fn key_rules(mut self, rules: impl Fn(&K) -> KeyRule + Send + Sync + 'static) -> Self {
        self.rules = Some(Arc::new(rules));
        self
    }

    /// The cache, loading a missing or stale key with `load`. A loaded
    /// value is stamped with the time `load` returned it.
    ///
    /// Must be called within a Tokio runtime only when reads start (loads
    /// spawn tasks); building needs none.
    pub fn build<F, Fut>(self, load: F) -> SwrCache<K, V, E>
    where
        F: Fn(K) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
    {
        let clock = Arc::clone(&self.cache);
        self.build_with(
            || (),
            move |key, ()| {
                let loading = load(key);
                let clock = Arc::clone(&clock);
                async move { loading.await.map(|value| Loaded::new(value, clock.current_time())) }
            },
        )
    }

    /// The cache, loading with `load`, which gets each key with a context
    /// `capture` took on the task that started its load (a request id for
    /// the load's logs, a deadline) and says when its value was fetched
    /// and who stores it ([`Loaded`]).
    ///
    /// Loads are single-flight per key: a read that joins a load already
    /// running gets its result, and the context of the read that started
    /// it is the one the load sees.
    pub fn build_with<C, Capture, F, Fut>(self, capture: Capture, load: F) -> SwrCache<K, V, E, C>
    where
        C: Clone + Send + Sync + 'static,
        Capture: Fn() -> C + Send + Sync + 'static,
        F: Fn(K, C) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Loaded<V>, E>> + Send + 'static,
    {
        SwrCache::from_parts(Parts { builder: self, capture: Arc::new(capture), load: Arc::new(load) })
    }
}

impl<K, V, E> fmt::Debug for Builder<K, V, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("config", &self.config)
            .field("second_tier", &self.tier.is_some())
            .field("eager", &self.eager)
            .field("key_rules", &self.rules.is_some())
            .finish_non_exhaustive()
    }
}
