//! The semantics table of `cache_swr`, row by row, and every public method,
//! through the public API alone: a real Tokio runtime, a `ManualClock` for
//! the ages of values, and loads held at gates so that each test decides
//! when a load finishes. Nothing sleeps to wait: tests wait on conditions,
//! with a deadline.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cache_core::{Cache, Clock, ManualClock, Policy};
use cache_swr::{
    BoxFuture, Builder, EagerRefresh, Got, KeyRule, LoadError, Loaded, Lookup, Observer, Origin, Priority, Refresh,
    SecondTier, Stats, SwrCache, TierRead,
};
use refresh::SkipReason;
use tokio::sync::{Semaphore, watch};

const TTL: Duration = Duration::from_secs(60);
const SWR: Duration = Duration::from_secs(60);
const SIE: Duration = Duration::from_secs(600);
/// How long a test waits for anything; also the loader's timeouts, so that
/// a load held at a gate never times out while the test holds it.
const PATIENCE: Duration = Duration::from_secs(30);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn k(key: &str) -> String {
    key.to_owned()
}

/// The clock's start: a boundary of the demand half-life (about 2^42 ns),
/// so that no test's reads straddle a halving of the demand counts.
fn start() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1 << 42)
}

/// The time `by` before the clock's reading.
fn ago(clock: &ManualClock, by: Duration) -> SystemTime {
    clock.now().checked_sub(by).unwrap()
}

/// The source's one error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SourceDown;

impl fmt::Display for SourceDown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("source down")
    }
}

/// The slow source behind the cache: counts its calls per key, answers
/// `"{key}#{n}"` for the n-th call of a key, and can be held at a gate per
/// key or made to fail.
#[derive(Debug)]
struct Source {
    calls: Mutex<HashMap<String, usize>>,
    total: watch::Sender<usize>,
    gates: Mutex<HashMap<String, Arc<Semaphore>>>,
    failing: AtomicBool,
}

impl Source {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            calls: Mutex::default(),
            total: watch::Sender::new(0),
            gates: Mutex::default(),
            failing: AtomicBool::new(false),
        })
    }

    async fn fetch(&self, key: String) -> Result<String, SourceDown> {
        let n = {
            let mut calls = self.calls.lock().unwrap();
            let n = calls.entry(key.clone()).or_default();
            *n += 1;
            *n
        };
        self.total.send_modify(|total| *total += 1);
        let gate = self.gates.lock().unwrap().get(&key).cloned();
        if let Some(gate) = gate {
            // Closed when released: every waiter passes.
            let _released = gate.acquire().await;
        }
        if self.failing.load(Ordering::SeqCst) { Err(SourceDown) } else { Ok(format!("{key}#{n}")) }
    }

    /// Holds every call of `key` until [`release`](Self::release).
    fn hold(&self, key: &str) {
        self.gates.lock().unwrap().insert(k(key), Arc::new(Semaphore::new(0)));
    }

    fn release(&self, key: &str) {
        let gate = self.gates.lock().unwrap().remove(key);
        gate.expect("the key was held").close();
    }

    fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    fn calls(&self, key: &str) -> usize {
        self.calls.lock().unwrap().get(key).copied().unwrap_or(0)
    }

    fn total(&self) -> usize {
        *self.total.borrow()
    }

    /// Waits until the source has been called `total` times in all.
    async fn called(&self, total: usize) {
        let mut calls = self.total.subscribe();
        let waited = tokio::time::timeout(PATIENCE, calls.wait_for(|&calls| calls >= total)).await;
        assert!(waited.is_ok(), "the source was called {} times, not {total}", self.total());
    }
}

/// Waits until `done` holds, checking every millisecond, for at most
/// [`PATIENCE`].
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Polls `future` once, with a waker that does nothing: it must be ready.
fn first_poll<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("not answered on the first poll"),
    }
}

fn got(value: &str, age: Duration, stale: bool, origin: Origin) -> Got<String> {
    Got { value: value.to_owned(), age, stale, origin }
}

type Swr = SwrCache<String, String, SourceDown>;

fn memory(clock: &ManualClock) -> Cache<String, String> {
    Cache::builder(1_000)
        .policy(Policy::new(TTL).stale_while_revalidate(SWR).stale_if_error(SIE))
        .demand_half_life(secs(3_600))
        .clock(clock.clone())
        .build()
}

fn limits() -> refresh::Config {
    refresh::Config {
        timeout: PATIENCE,
        queue_timeout: PATIENCE,
        promote_after: PATIENCE,
        ..refresh::Config::default()
    }
}

fn builder(clock: &ManualClock) -> Builder<String, String, SourceDown> {
    SwrCache::builder(memory(clock)).loader_config(limits())
}

fn build(builder: Builder<String, String, SourceDown>, source: &Arc<Source>) -> Swr {
    let source = Arc::clone(source);
    builder.build(move |key| {
        let source = Arc::clone(&source);
        async move { source.fetch(key).await }
    })
}

fn setup() -> (ManualClock, Arc<Source>, Swr) {
    let clock = ManualClock::new(start());
    let source = Source::new();
    let cache = build(builder(&clock), &source);
    (clock, source, cache)
}

/// Waits until no load or refresh is running.
async fn settled(cache: &Swr) {
    eventually("the loads to finish", || cache.in_flight() == 0).await;
}

fn held(cache: &Swr, key: &str) -> Option<String> {
    cache.memory().peek(key).map(cache_core::Entry::into_value)
}

/// Everything the cache tells its observer.
#[derive(Debug, Default)]
struct Heard {
    lookups: Mutex<Vec<(String, Lookup)>>,
    eager: Mutex<Vec<String>>,
    fail_safe: Mutex<Vec<(String, String, Duration)>>,
}

impl Observer<String, SourceDown> for Heard {
    fn lookup(&self, key: &String, lookup: Lookup) {
        self.lookups.lock().unwrap().push((key.clone(), lookup));
    }

    fn eager_refresh(&self, key: &String) {
        self.eager.lock().unwrap().push(key.clone());
    }

    fn fail_safe(&self, key: &String, error: &LoadError<SourceDown>, age: Duration) {
        self.fail_safe.lock().unwrap().push((key.clone(), error.to_string(), age));
    }
}

// --- Within the TTL -------------------------------------------------------

#[tokio::test]
async fn a_fresh_value_is_answered_from_memory_on_the_first_poll_without_a_load() {
    let (clock, source, cache) = setup();
    let first = cache.get_or_load(&k("a")).await.unwrap();
    assert_eq!(first, got("a#1", Duration::ZERO, false, Origin::Loaded));
    assert!(!first.cached());

    // A load now would never finish: the hit must not start one.
    source.hold("a");
    clock.advance(TTL);
    let hit = first_poll(cache.get_or_load(&k("a"))).unwrap();
    assert_eq!(hit, got("a#1", TTL, false, Origin::Memory), "fresh up to the TTL itself");
    assert!(hit.cached());
    assert_eq!(cache.get_if_present(&k("a")), Some(got("a#1", TTL, false, Origin::Memory)));
    assert_eq!(cache.get_if_present(&k("b")), None, "nothing in memory: no answer, and no load");

    assert_eq!((source.total(), cache.in_flight(), cache.active_refreshes()), (1, 0, 0));
    assert_eq!(cache.stats(), Stats { hits: 2, misses: 1, ..Stats::default() });
}

// --- Within the stale-while-revalidate window -----------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_value_is_answered_at_once_and_refreshed_once_for_many_readers() {
    let (clock, source, cache) = setup();
    cache.get_or_load(&k("a")).await.unwrap();
    clock.advance(TTL + secs(30));
    source.hold("a");

    let first = first_poll(cache.get_or_load(&k("a"))).unwrap();
    assert_eq!(first, got("a#1", secs(90), true, Origin::Memory));
    let readers: Vec<_> = (0..32)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.get_or_load(&k("a")).await })
        })
        .collect();
    for reader in readers {
        assert_eq!(reader.await.unwrap().unwrap(), got("a#1", secs(90), true, Origin::Memory));
    }
    source.called(2).await;
    assert_eq!(cache.active_refreshes(), 1);
    assert_eq!(cache.stats().stale_hits, 33);

    source.release("a");
    settled(&cache).await;
    assert_eq!(source.calls("a"), 2, "one load, then one refresh for 33 stale reads");
    assert_eq!(cache.get_or_load(&k("a")).await.unwrap(), got("a#2", Duration::ZERO, false, Origin::Memory));
    assert_eq!(cache.stats(), Stats { hits: 1, stale_hits: 33, misses: 1, ..Stats::default() });
}

#[tokio::test]
async fn a_failing_background_refresh_leaves_the_stale_value_in_place() {
    let (clock, source, cache) = setup();
    cache.get_or_load(&k("a")).await.unwrap();
    clock.advance(TTL + secs(30));
    source.fail(true);

    assert_eq!(cache.get_or_load(&k("a")).await.unwrap(), got("a#1", secs(90), true, Origin::Memory));
    settled(&cache).await;
    assert_eq!(source.calls("a"), 2);
    assert_eq!(held(&cache, "a").as_deref(), Some("a#1"));

    // Still served stale, and the next read tries again.
    assert_eq!(cache.get_or_load(&k("a")).await.unwrap(), got("a#1", secs(90), true, Origin::Memory));
    settled(&cache).await;
    assert_eq!(source.calls("a"), 3);
    assert_eq!(cache.stats().errors, 0, "every read had an answer");

    source.fail(false);
    cache.get_or_load(&k("a")).await.unwrap();
    settled(&cache).await;
    assert_eq!(held(&cache, "a").as_deref(), Some("a#4"));
}

// --- Older, or absent: one load per key -----------------------------------

#[tokio::test]
async fn concurrent_misses_of_one_key_share_one_load_and_keys_load_independently() {
    let (_clock, source, cache) = setup();
    source.hold("a");
    let readers: Vec<_> = (0..50)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.get_or_load(&k("a")).await })
        })
        .collect();
    // On this one-thread runtime, a read that has counted its miss has also
    // joined or started the load: both happen in its first poll.
    eventually("all 50 reads to miss", || cache.stats().misses == 50).await;
    source.called(1).await;
    assert_eq!(cache.in_flight(), 1);

    // Another key loads while the first is held.
    source.hold("slow");
    let slow = tokio::spawn({
        let cache = cache.clone();
        async move { cache.get_or_load(&k("slow")).await }
    });
    source.called(2).await;
    assert_eq!(cache.get_or_load(&k("b")).await.unwrap(), got("b#1", Duration::ZERO, false, Origin::Loaded));
    assert_eq!(cache.in_flight(), 2, "`a` and `slow` are still loading");

    source.release("a");
    for reader in readers {
        assert_eq!(reader.await.unwrap().unwrap(), got("a#1", Duration::ZERO, false, Origin::Loaded));
    }
    source.release("slow");
    assert_eq!(slow.await.unwrap().unwrap().value, "slow#1");
    assert_eq!((source.calls("a"), source.calls("b"), source.calls("slow")), (1, 1, 1));
}

#[tokio::test]
async fn a_value_past_the_stale_window_is_loaded_again() {
    let (clock, source, cache) = setup();
    cache.get_or_load(&k("a")).await.unwrap();
    clock.advance(TTL + SWR + secs(1));
    assert_eq!(cache.get_if_present(&k("a")), None);
    assert_eq!(cache.get_or_load(&k("a")).await.unwrap(), got("a#2", Duration::ZERO, false, Origin::Loaded));
    assert_eq!((cache.stats().misses, source.calls("a")), (2, 2));
}

// --- The load fails -------------------------------------------------------

#[tokio::test]
async fn a_failed_load_answers_the_value_within_stale_if_error_and_nothing_beyond() {
    let clock = ManualClock::new(start());
    let source = Source::new();
    let heard = Arc::new(Heard::default());
    let cache = build(builder(&clock).observer(heard.clone()), &source);
    cache.get_or_load(&k("a")).await.unwrap();

    clock.advance(TTL + SWR + secs(30));
    source.fail(true);
    assert_eq!(cache.get_if_present(&k("a")), None, "past the stale-while-revalidate window");
    assert_eq!(cache.get_or_load(&k("a")).await.unwrap(), got("a#1", secs(150), true, Origin::FailSafe));
    assert_eq!(source.calls("a"), 2);
    assert_eq!(*heard.fail_safe.lock().unwrap(), [(k("a"), "source failed: source down".to_owned(), secs(150))]);
    assert_eq!((cache.stats().fail_safe, cache.stats().errors), (1, 0));

    // Past stale-if-error: the load's error.
    clock.set(start() + TTL + SIE + secs(1));
    let error = cache.get_or_load(&k("a")).await.unwrap_err();
    assert!(matches!(&error, LoadError::Source(source) if **source == SourceDown), "{error:?}");
    assert_eq!((cache.stats().fail_safe, cache.stats().errors), (1, 1));
    assert_eq!(heard.fail_safe.lock().unwrap().len(), 1);

    // A failed load caches nothing: the next read asks the source again.
    assert!(matches!(cache.get_or_load(&k("b")).await, Err(LoadError::Source(_))));
    assert!(cache.memory().is_empty(), "{} entries", cache.memory().len());
    source.fail(false);
    assert_eq!(cache.get_or_load(&k("b")).await.unwrap(), got("b#2", Duration::ZERO, false, Origin::Loaded));
}

// --- Forced loads ---------------------------------------------------------

#[tokio::test]
async fn reload_loads_even_a_fresh_key_and_joins_a_running_load() {
    let (clock, source, cache) = setup();
    cache.get_or_load(&k("a")).await.unwrap();
    clock.advance(secs(1));
    assert_eq!(cache.get_if_present(&k("a")).map(|got| got.stale), Some(false));
    assert_eq!(cache.reload(&k("a")).await.unwrap(), got("a#2", Duration::ZERO, false, Origin::Loaded));
    assert_eq!(cache.get_or_load(&k("a")).await.unwrap(), got("a#2", Duration::ZERO, false, Origin::Memory));

    clock.advance(secs(1));
    source.hold("a");
    let first = tokio::spawn({
        let cache = cache.clone();
        async move { cache.reload(&k("a")).await }
    });
    source.called(3).await;
    let second = tokio::spawn({
        let cache = cache.clone();
        async move { cache.reload(&k("a")).await }
    });
    eventually("the second reload to ask", || cache.stats().misses == 4).await;
    source.release("a");
    assert_eq!(first.await.unwrap().unwrap().value, "a#3");
    assert_eq!(second.await.unwrap().unwrap().value, "a#3");
    assert_eq!(source.calls("a"), 3, "the second reload joined the first");

    // A reload that fails falls back as a miss would.
    source.fail(true);
    clock.advance(secs(5));
    assert_eq!(cache.reload(&k("a")).await.unwrap(), got("a#3", secs(5), false, Origin::FailSafe));
}

#[tokio::test]
async fn get_if_younger_than_answers_only_a_young_enough_value() {
    let (clock, source, cache) = setup();
    cache.get_or_load(&k("a")).await.unwrap();
    clock.advance(secs(10));
    assert_eq!(cache.get_if_younger_than(&k("a"), secs(30)), Some(got("a#1", secs(10), false, Origin::Memory)));
    assert_eq!(cache.get_if_younger_than(&k("a"), secs(10)), None);
    assert_eq!(cache.get_if_younger_than(&k("b"), secs(30)), None);

    // A stale one is answered stale and refreshed, as a read would.
    clock.advance(TTL);
    assert_eq!(cache.get_if_younger_than(&k("a"), secs(600)), Some(got("a#1", secs(70), true, Origin::Memory)));
    settled(&cache).await;
    assert_eq!((source.calls("a"), held(&cache, "a").as_deref()), (2, Some("a#2")));
}

#[tokio::test]
async fn refresh_starts_one_background_load_and_reports_one_running() {
    let (clock, source, cache) = setup();
    source.hold("a");
    assert_eq!(cache.refresh(&k("a")), Refresh::Started);
    assert_eq!(cache.refresh(&k("a")), Refresh::AlreadyRunning);
    assert_eq!((cache.active_refreshes(), cache.in_flight()), (1, 1));

    // A read that misses meanwhile joins the refresh.
    let reader = tokio::spawn({
        let cache = cache.clone();
        async move { cache.get_or_load(&k("a")).await }
    });
    eventually("the read to miss", || cache.stats().misses == 1).await;
    source.release("a");
    assert_eq!(reader.await.unwrap().unwrap().value, "a#1");
    settled(&cache).await;
    assert_eq!((source.calls("a"), held(&cache, "a").as_deref()), (1, Some("a#1")));

    clock.advance(secs(1));
    assert_eq!(cache.refresh_with(&k("a"), Priority::Eager, 7), Refresh::Started);
    settled(&cache).await;
    assert_eq!(held(&cache, "a").as_deref(), Some("a#2"));
    assert_eq!(cache.active_refreshes(), 0);
}

// --- Deletions ------------------------------------------------------------

#[tokio::test]
async fn invalidate_is_final_for_the_loads_that_started_before_it() {
    let (clock, source, cache) = setup();
    cache.get_or_load(&k("a")).await.unwrap();
    assert!(cache.invalidate(&k("a")));
    assert!(!cache.invalidate(&k("a")));
    assert_eq!((held(&cache, "a"), cache.get_if_present(&k("a"))), (None, None));

    source.hold("a");
    let reader = tokio::spawn({
        let cache = cache.clone();
        async move { cache.get_or_load(&k("a")).await }
    });
    source.called(2).await;
    clock.advance(secs(1));
    assert!(!cache.invalidate(&k("a")), "nothing in memory, but the deletion counts");
    source.release("a");
    let answer = reader.await.unwrap().unwrap();
    assert_eq!((answer.value.as_str(), answer.origin), ("a#2", Origin::Loaded), "its caller still gets the value");
    assert_eq!(held(&cache, "a"), None, "the load that started before the deletion stored nothing");

    // A load that starts after the deletion stores its value.
    assert_eq!(cache.get_or_load(&k("a")).await.unwrap().value, "a#3");
    assert_eq!(held(&cache, "a").as_deref(), Some("a#3"));
    assert_eq!(cache.get_or_load(&k("a")).await.unwrap().origin, Origin::Memory);
}

#[tokio::test]
async fn invalidate_all_is_final_for_the_loads_that_started_before_it() {
    let (clock, source, cache) = setup();
    cache.get_or_load(&k("a")).await.unwrap();
    cache.get_or_load(&k("b")).await.unwrap();
    assert_eq!(cache.invalidate_all(), 2);
    assert!(cache.memory().is_empty());

    source.hold("a");
    let reader = tokio::spawn({
        let cache = cache.clone();
        async move { cache.get_or_load(&k("a")).await }
    });
    source.called(3).await;
    clock.advance(secs(1));
    assert_eq!(cache.invalidate_all(), 0);
    source.release("a");
    assert_eq!(reader.await.unwrap().unwrap().value, "a#2");
    assert!(cache.memory().is_empty(), "the load that started before the deletion stored nothing");

    assert_eq!(cache.get_or_load(&k("a")).await.unwrap().value, "a#3");
    assert_eq!(cache.get_or_load(&k("b")).await.unwrap().value, "b#2");
    assert_eq!(cache.memory().len(), 2, "loads that started after the deletion store");
}

// --- The second tier ------------------------------------------------------

/// A second tier over a map, which can be taken down or stop trusting memory.
#[derive(Debug, Default)]
struct Tier {
    values: Mutex<HashMap<String, (String, SystemTime)>>,
    down: AtomicBool,
    distrusted: AtomicBool,
    reads: AtomicUsize,
    /// Holds every read after it has looked its value up, until released.
    gate: Mutex<Option<Arc<Semaphore>>>,
}

impl Tier {
    fn put(&self, key: &str, value: &str, fetched_at: SystemTime) {
        self.values.lock().unwrap().insert(k(key), (value.to_owned(), fetched_at));
    }

    fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
}

impl SecondTier<String, String> for Tier {
    fn read<'a>(&'a self, key: &'a String) -> BoxFuture<'a, TierRead<String>> {
        Box::pin(async move {
            if self.down.load(Ordering::SeqCst) {
                self.reads.fetch_add(1, Ordering::SeqCst);
                return TierRead::Unavailable;
            }
            let read = match self.values.lock().unwrap().get(key) {
                Some((value, fetched_at)) => TierRead::Found(value.clone(), *fetched_at),
                None => TierRead::Absent,
            };
            self.reads.fetch_add(1, Ordering::SeqCst);
            let gate = self.gate.lock().unwrap().clone();
            if let Some(gate) = gate {
                let _released = gate.acquire().await;
            }
            read
        })
    }

    fn trusts_memory(&self) -> bool {
        !self.distrusted.load(Ordering::SeqCst)
    }
}

fn tiered() -> (ManualClock, Arc<Source>, Arc<Tier>, Swr) {
    let clock = ManualClock::new(start());
    let source = Source::new();
    let tier = Arc::new(Tier::default());
    let cache = build(builder(&clock).second_tier(tier.clone()), &source);
    (clock, source, tier, cache)
}

#[tokio::test]
async fn a_fresh_second_tier_value_answers_and_fills_memory_with_its_age() {
    let (clock, source, tier, cache) = tiered();
    let fetched_at = ago(&clock, secs(10));
    tier.put("a", "a@tier", fetched_at);
    assert_eq!(cache.get_or_load(&k("a")).await.unwrap(), got("a@tier", secs(10), false, Origin::SecondTier));
    assert_eq!(cache.memory().peek("a").map(|entry| entry.fetched_at()), Some(fetched_at));

    clock.advance(secs(5));
    assert_eq!(cache.get_or_load(&k("a")).await.unwrap(), got("a@tier", secs(15), false, Origin::Memory));
    assert_eq!((tier.reads(), source.total()), (1, 0), "memory answered the second read");
    assert_eq!(cache.stats(), Stats { hits: 2, second_tier_hits: 1, ..Stats::default() });
}

#[tokio::test]
async fn a_stale_second_tier_value_answers_stale_with_one_refresh() {
    let (clock, source, tier, cache) = tiered();
    tier.put("a", "a@tier", ago(&clock, secs(90)));
    source.hold("a");
    assert_eq!(cache.get_or_load(&k("a")).await.unwrap(), got("a@tier", secs(90), true, Origin::SecondTier));
    assert_eq!(cache.get_or_load(&k("a")).await.unwrap(), got("a@tier", secs(90), true, Origin::Memory));
    source.called(1).await;
    assert_eq!(cache.active_refreshes(), 1);
    source.release("a");
    settled(&cache).await;
    assert_eq!(source.calls("a"), 1);
    assert_eq!(cache.get_or_load(&k("a")).await.unwrap(), got("a#1", Duration::ZERO, false, Origin::Memory));
    assert_eq!((cache.stats().stale_hits, cache.stats().second_tier_hits), (2, 1));
}

#[tokio::test]
async fn an_expired_second_tier_value_is_loaded_again_and_kept_as_a_fail_safe() {
    let (clock, source, tier, cache) = tiered();
    tier.put("a", "a@tier", ago(&clock, TTL + SWR + secs(80)));
    source.fail(true);
    assert_eq!(cache.get_or_load(&k("a")).await.unwrap(), got("a@tier", secs(200), true, Origin::FailSafe));
    source.fail(false);
    assert_eq!(cache.get_or_load(&k("a")).await.unwrap(), got("a#2", Duration::ZERO, false, Origin::Loaded));
    assert_eq!((tier.reads(), source.calls("a")), (2, 2));
    assert_eq!(cache.stats().second_tier_hits, 0);
}

#[tokio::test]
async fn an_absent_or_unavailable_second_tier_means_a_load() {
    let (_clock, source, tier, cache) = tiered();
    assert_eq!(cache.get_or_load(&k("a")).await.unwrap(), got("a#1", Duration::ZERO, false, Origin::Loaded));
    tier.down.store(true, Ordering::SeqCst);
    assert_eq!(cache.get_or_load(&k("b")).await.unwrap(), got("b#1", Duration::ZERO, false, Origin::Loaded));
    assert_eq!(tier.reads(), 2);
    assert_eq!(cache.get_or_load(&k("a")).await.unwrap().origin, Origin::Memory);
    assert_eq!((tier.reads(), source.total()), (2, 2), "trusted memory answers alone");
}

#[tokio::test]
async fn untrusted_memory_answers_only_when_the_second_tier_is_unavailable() {
    let (clock, source, tier, cache) = tiered();
    cache.get_or_load(&k("a")).await.unwrap();
    tier.distrusted.store(true, Ordering::SeqCst);
    clock.advance(secs(1));
    assert_eq!(cache.get_if_present(&k("a")), None, "memory may hold what was deleted elsewhere");
    assert_eq!(cache.get_if_younger_than(&k("a"), secs(60)), None, "nor does it answer a forced reload alone");

    tier.down.store(true, Ordering::SeqCst);
    assert_eq!(cache.get_or_load(&k("a")).await.unwrap(), got("a#1", secs(1), false, Origin::Memory));
    assert_eq!((tier.reads(), source.calls("a")), (2, 1));

    tier.down.store(false, Ordering::SeqCst);
    assert_eq!(cache.get_or_load(&k("a")).await.unwrap(), got("a#2", Duration::ZERO, false, Origin::Loaded));
    assert_eq!((tier.reads(), source.calls("a")), (3, 2), "the tier does not hold it: it was deleted");

    clock.advance(secs(1));
    tier.put("a", "a@elsewhere", clock.now());
    assert_eq!(
        cache.get_or_load(&k("a")).await.unwrap(),
        got("a@elsewhere", Duration::ZERO, false, Origin::SecondTier)
    );
    assert_eq!(source.calls("a"), 2);
}

#[tokio::test]
async fn a_second_tier_read_that_began_before_an_invalidate_puts_nothing_back() {
    let (clock, source, tier, cache) = tiered();
    tier.put("a", "a@tier", ago(&clock, secs(10)));
    let gate = Arc::new(Semaphore::new(0));
    *tier.gate.lock().unwrap() = Some(Arc::clone(&gate));
    let reader = tokio::spawn({
        let cache = cache.clone();
        async move { cache.get_or_load(&k("a")).await }
    });
    eventually("the tier to be read", || tier.reads() == 1).await;
    // Deleted everywhere while the read is in flight with the old value.
    tier.values.lock().unwrap().clear();
    assert!(!cache.invalidate(&k("a")), "memory did not hold it yet");
    *tier.gate.lock().unwrap() = None;
    gate.close();
    let answer = reader.await.unwrap().unwrap();
    assert_eq!(answer, got("a#1", Duration::ZERO, false, Origin::Loaded), "the deleted value is not answered");
    assert_eq!(held(&cache, "a").as_deref(), Some("a#1"), "nor put back in memory");
    assert_eq!(source.calls("a"), 1);
}

#[tokio::test]
async fn a_forced_reload_answers_a_young_value_unless_the_tier_says_it_is_gone() {
    let (clock, source, tier, cache) = tiered();
    let reload = |cache: &Swr| {
        let cache = cache.clone();
        async move { cache.reload_unless_younger_than(&k("a"), secs(5), ()).await.unwrap() }
    };
    cache.get_or_load(&k("a")).await.unwrap();
    clock.advance(secs(2));
    assert_eq!(reload(&cache).await, got("a#1", secs(2), false, Origin::Memory), "trusted and young: no load");
    assert_eq!(source.calls("a"), 1);

    // Memory not trusted: the tier decides.
    tier.distrusted.store(true, Ordering::SeqCst);
    tier.down.store(true, Ordering::SeqCst);
    assert_eq!(reload(&cache).await, got("a#1", secs(2), false, Origin::Memory), "the tier is down: still limited");
    tier.down.store(false, Ordering::SeqCst);
    tier.put("a", "a#1", ago(&clock, secs(2)));
    assert_eq!(reload(&cache).await, got("a#1", secs(2), false, Origin::Memory), "the tier holds the same value");
    assert_eq!(source.calls("a"), 1);
    tier.values.lock().unwrap().clear();
    assert_eq!(reload(&cache).await, got("a#2", Duration::ZERO, false, Origin::Loaded), "deleted elsewhere: a load");

    // Old enough: a load, whatever the tier holds.
    tier.distrusted.store(false, Ordering::SeqCst);
    clock.advance(secs(5));
    assert_eq!(reload(&cache).await, got("a#3", Duration::ZERO, false, Origin::Loaded));
    assert_eq!(source.calls("a"), 3);
}

#[tokio::test]
async fn an_invalidator_deletes_by_pattern_and_no_older_load_puts_a_match_back() {
    let (_clock, source, cache) = setup();
    for key in ["user:1", "user:2", "order:1"] {
        cache.get_or_load(&k(key)).await.unwrap();
    }
    let invalidator = cache.invalidator();
    source.hold("user:3");
    let loading = tokio::spawn({
        let cache = cache.clone();
        async move { cache.get_or_load(&k("user:3")).await }
    });
    source.called(4).await;
    assert_eq!(invalidator.invalidate_matching("user:*").unwrap(), 2);
    assert!(invalidator.invalidate_matching("user:[").is_err(), "a malformed pattern drops nothing");
    source.release("user:3");
    assert_eq!(loading.await.unwrap().unwrap().value, "user:3#1", "its caller still gets the value");
    assert_eq!((held(&cache, "user:1"), held(&cache, "user:3")), (None, None));
    assert_eq!(held(&cache, "order:1").as_deref(), Some("order:1#1"));
    assert!(invalidator.invalidate(&k("order:1")));
    assert_eq!(cache.memory().len(), 0);
}

#[test]
#[should_panic(expected = "at_pct must be within 1 to 99")]
fn an_eager_refresh_rule_outside_the_ttl_is_refused() {
    let clock = ManualClock::new(start());
    let _ = builder(&clock).eager_refresh(EagerRefresh { at_pct: 100, min_reads: 1 });
}

// --- What the load function decides ---------------------------------------

#[tokio::test]
async fn a_value_stored_by_the_loader_is_not_stored_by_the_cache() {
    let clock = ManualClock::new(start());
    let shelf: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let cache = builder(&clock).build_with(|| (), {
        let (clock, shelf, calls) = (clock.clone(), Arc::clone(&shelf), Arc::clone(&calls));
        move |key: String, ()| {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            let value = format!("{key}#{n}");
            shelf.lock().unwrap().insert(key, value.clone());
            let loaded = Loaded::stored_by_loader(value, clock.now());
            async move { Ok::<_, SourceDown>(loaded) }
        }
    });
    assert_eq!(cache.get_or_load(&k("a")).await.unwrap(), got("a#1", Duration::ZERO, false, Origin::Loaded));
    assert!(cache.memory().is_empty());
    assert_eq!(shelf.lock().unwrap().get("a").map(String::as_str), Some("a#1"));
    assert_eq!(cache.get_or_load(&k("a")).await.unwrap().value, "a#2", "memory held nothing to answer");
}

#[tokio::test]
async fn a_loaded_value_keeps_the_fetch_time_its_loader_gives() {
    let clock = ManualClock::new(start());
    let cache = builder(&clock).build_with(|| (), {
        let clock = clock.clone();
        move |key: String, ()| {
            let loaded = Loaded::new(format!("{key}!"), ago(&clock, secs(30)));
            assert_eq!((loaded.value().as_str(), loaded.fetched_at()), ("a!", ago(&clock, secs(30))));
            async move { Ok::<_, SourceDown>(loaded) }
        }
    });
    assert_eq!(cache.get_or_load(&k("a")).await.unwrap(), got("a!", secs(30), false, Origin::Loaded));
    assert_eq!(cache.memory().peek("a").map(|entry| entry.age()), Some(secs(30)));
    clock.advance(secs(40));
    assert_eq!(cache.get_if_present(&k("a")).map(|got| (got.age, got.stale)), Some((secs(70), true)));
}

tokio::task_local! {
    static REQUEST: u32;
}

#[tokio::test]
async fn the_context_of_the_read_that_starts_a_load_reaches_the_load_function() {
    let clock = ManualClock::new(start());
    let source = Source::new();
    let seen: Arc<Mutex<Vec<(String, u32)>>> = Arc::default();
    let cache = builder(&clock).build_with(|| REQUEST.try_with(|id| *id).unwrap_or(0), {
        let (clock, source, seen) = (clock.clone(), Arc::clone(&source), Arc::clone(&seen));
        move |key: String, request: u32| {
            seen.lock().unwrap().push((key.clone(), request));
            let (clock, source) = (clock.clone(), Arc::clone(&source));
            async move { source.fetch(key).await.map(|value| Loaded::new(value, clock.now())) }
        }
    });
    let read_in = |request: u32| {
        let cache = cache.clone();
        tokio::spawn(REQUEST.scope(request, async move { cache.get_or_load(&k("a")).await }))
    };

    source.hold("a");
    let first = read_in(1);
    source.called(1).await;
    let second = read_in(2);
    eventually("the second read to join", || cache.stats().misses == 2).await;
    source.release("a");
    assert_eq!(first.await.unwrap().unwrap().value, "a#1");
    assert_eq!(second.await.unwrap().unwrap().value, "a#1");
    assert_eq!(*seen.lock().unwrap(), [(k("a"), 1)], "the joining read's context is not used");

    clock.advance(secs(1));
    assert_eq!(cache.reload_in(&k("a"), 7).await.unwrap().value, "a#2");
    clock.advance(TTL + secs(1));
    assert!(REQUEST.scope(9, cache.get_or_load(&k("a"))).await.unwrap().stale);
    eventually("the refresh to finish", || cache.in_flight() == 0).await;
    assert_eq!(*seen.lock().unwrap(), [(k("a"), 1), (k("a"), 7), (k("a"), 9)]);
}

// --- Eager refresh and key rules -------------------------------------------

#[tokio::test]
async fn a_key_in_demand_is_refreshed_early_and_a_cold_one_is_not() {
    let clock = ManualClock::new(start());
    let source = Source::new();
    let heard = Arc::new(Heard::default());
    let eager = EagerRefresh { at_pct: 50, min_reads: 3 };
    let cache = build(builder(&clock).eager_refresh(eager).observer(heard.clone()), &source);
    cache.get_or_load(&k("hot")).await.unwrap();
    cache.get_or_load(&k("cold")).await.unwrap();
    for _ in 0..3 {
        cache.get_or_load(&k("hot")).await.unwrap();
    }
    clock.advance(TTL * 48 / 100);
    assert!(!cache.get_or_load(&k("hot")).await.unwrap().stale);
    assert_eq!(cache.in_flight(), 0, "not yet {}% into the TTL", eager.at_pct);

    clock.advance(TTL * 4 / 100);
    assert_eq!(cache.get_or_load(&k("cold")).await.unwrap(), got("cold#1", TTL * 52 / 100, false, Origin::Memory));
    assert_eq!(cache.in_flight(), 0, "a key read once is not in demand");

    source.hold("hot");
    assert_eq!(cache.get_or_load(&k("hot")).await.unwrap(), got("hot#1", TTL * 52 / 100, false, Origin::Memory));
    assert_eq!(cache.active_refreshes(), 1);
    assert_eq!(cache.get_or_load(&k("hot")).await.unwrap().value, "hot#1", "answered while the refresh runs");
    assert_eq!((cache.stats().eager_refreshes, heard.eager.lock().unwrap().clone()), (1, vec![k("hot")]));
    source.release("hot");
    settled(&cache).await;
    assert_eq!((source.calls("hot"), source.calls("cold")), (2, 1));
    assert_eq!(cache.get_if_present(&k("hot")), Some(got("hot#2", Duration::ZERO, false, Origin::Memory)));
}

#[test]
fn eager_refresh_is_due_from_its_share_of_the_ttl_for_keys_in_demand() {
    let clock = ManualClock::new(start());
    let cache = memory(&clock);
    cache.insert(k("a"), k("x"));
    let rule = EagerRefresh { at_pct: 90, min_reads: 2 };
    clock.advance(TTL * 9 / 10);
    assert!(!rule.is_due(&cache.get("a").unwrap(), TTL), "one read");
    assert!(rule.is_due(&cache.get("a").unwrap(), TTL), "two reads, 90% into the TTL");
    assert!(!rule.is_due(&cache.get("a").unwrap(), TTL * 2), "45% into a longer TTL");
}

#[tokio::test]
async fn a_key_with_a_shorter_ttl_goes_stale_first() {
    let clock = ManualClock::new(start());
    let source = Source::new();
    let rules = |key: &String| {
        if key.starts_with("short") { KeyRule { ttl: Some(secs(10)), high: true } } else { KeyRule::default() }
    };
    let cache = build(builder(&clock).key_rules(rules), &source);
    cache.get_or_load(&k("short")).await.unwrap();
    cache.get_or_load(&k("long")).await.unwrap();
    clock.advance(secs(5));
    assert_eq!(cache.get_or_load(&k("short")).await.unwrap(), got("short#1", secs(5), false, Origin::Memory));

    clock.advance(secs(15));
    assert_eq!(cache.get_or_load(&k("long")).await.unwrap(), got("long#1", secs(20), false, Origin::Memory));
    assert_eq!(cache.get_or_load(&k("short")).await.unwrap(), got("short#1", secs(20), true, Origin::Memory));
    settled(&cache).await;
    assert_eq!((source.calls("short"), source.calls("long")), (2, 1));
    assert_eq!(cache.get_or_load(&k("short")).await.unwrap(), got("short#2", Duration::ZERO, false, Origin::Memory));
}

#[tokio::test]
async fn a_key_with_a_shorter_ttl_is_stale_when_the_second_tier_answers_it() {
    let clock = ManualClock::new(start());
    let source = Source::new();
    let tier = Arc::new(Tier::default());
    let rules = |key: &String| KeyRule { ttl: key.starts_with("short").then_some(secs(10)), high: false };
    let cache = build(builder(&clock).second_tier(tier.clone()).key_rules(rules), &source);
    tier.put("short", "short@tier", ago(&clock, secs(20)));
    tier.put("long", "long@tier", ago(&clock, secs(20)));
    assert_eq!(cache.get_or_load(&k("long")).await.unwrap(), got("long@tier", secs(20), false, Origin::SecondTier));
    assert_eq!(cache.get_or_load(&k("short")).await.unwrap(), got("short@tier", secs(20), true, Origin::SecondTier));
    settled(&cache).await;
    assert_eq!((source.calls("short"), source.calls("long")), (1, 0));
    assert_eq!(held(&cache, "short").as_deref(), Some("short#1"));
}

#[tokio::test]
async fn a_high_key_is_refreshed_ahead_of_keys_ranked_by_demand() {
    let clock = ManualClock::new(start());
    let source = Source::new();
    let order: Arc<Mutex<Vec<String>>> = Arc::default();
    let one_at_a_time = refresh::Config { concurrency: std::num::NonZeroUsize::MIN, ..limits() };
    let rules = |key: &String| KeyRule { ttl: None, high: key.starts_with("high") };
    let cache = builder(&clock).loader_config(one_at_a_time).key_rules(rules).build({
        let (source, order) = (Arc::clone(&source), Arc::clone(&order));
        move |key: String| {
            order.lock().unwrap().push(key.clone());
            let source = Arc::clone(&source);
            async move { source.fetch(key).await }
        }
    });
    for key in ["busy", "low", "high"] {
        cache.get_or_load(&k(key)).await.unwrap();
    }
    for _ in 0..10 {
        cache.get_or_load(&k("low")).await.unwrap();
    }
    clock.advance(TTL + secs(1));

    // The one permit is taken; both stale refreshes wait for it.
    source.hold("busy");
    let busy = tokio::spawn({
        let cache = cache.clone();
        async move { cache.reload(&k("busy")).await }
    });
    source.called(4).await;
    assert!(cache.get_or_load(&k("low")).await.unwrap().stale);
    assert!(cache.get_or_load(&k("high")).await.unwrap().stale);
    assert_eq!(cache.active_refreshes(), 2);
    source.release("busy");
    busy.await.unwrap().unwrap();
    settled(&cache).await;
    let order = order.lock().unwrap().clone();
    assert_eq!(
        order[3..],
        [k("busy"), k("high"), k("low")],
        "the high key first, though `low` was asked first and read more"
    );
}

// --- Observers, stats, shutdown --------------------------------------------

#[tokio::test]
async fn the_observer_hears_each_read_in_order_and_stats_count_them() {
    let clock = ManualClock::new(start());
    let source = Source::new();
    let heard = Arc::new(Heard::default());
    let cache = build(builder(&clock).observer(heard.clone()), &source);
    assert!(Stats::default().hit_ratio().abs() < f64::EPSILON, "no reads yet");

    cache.get_or_load(&k("a")).await.unwrap();
    cache.get_or_load(&k("a")).await.unwrap();
    clock.advance(TTL + secs(1));
    cache.get_or_load(&k("a")).await.unwrap();
    settled(&cache).await;
    let lookups = heard.lookups.lock().unwrap().clone();
    assert_eq!(lookups, [(k("a"), Lookup::Miss), (k("a"), Lookup::Hit), (k("a"), Lookup::Stale)]);
    let stats = cache.stats();
    assert_eq!(stats, Stats { hits: 1, stale_hits: 1, misses: 1, ..Stats::default() });
    assert!((stats.hit_ratio() - 2.0 / 3.0).abs() < 1e-9, "{}", stats.hit_ratio());
}

/// Counts the loads the loader starts.
#[derive(Debug, Default)]
struct Loads(AtomicUsize);

impl refresh::Observer for Loads {
    fn load_started(&self, _kind: refresh::FlightKind) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn the_loader_observer_hears_every_load() {
    let clock = ManualClock::new(start());
    let source = Source::new();
    let loads = Arc::new(Loads::default());
    let cache = build(builder(&clock).loader_observer(loads.clone()), &source);
    cache.get_or_load(&k("a")).await.unwrap();
    assert_eq!(cache.refresh(&k("b")), Refresh::Started);
    settled(&cache).await;
    assert_eq!(loads.0.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn after_shutdown_a_miss_fails_and_memory_still_answers() {
    let (_clock, source, cache) = setup();
    cache.get_or_load(&k("a")).await.unwrap();

    // A load running when shutdown begins may finish within the grace.
    source.hold("b");
    let reader = tokio::spawn({
        let cache = cache.clone();
        async move { cache.get_or_load(&k("b")).await }
    });
    source.called(2).await;
    // Its first poll begins the shutdown, which then waits for that load.
    let mut shutdown = pin!(cache.shutdown(PATIENCE));
    assert!(shutdown.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
    assert_eq!(cache.refresh(&k("x")), Refresh::Skipped(SkipReason::ShuttingDown));
    source.release("b");
    assert_eq!(reader.await.unwrap().unwrap().value, "b#1");
    let report = shutdown.await;
    assert_eq!((report.finished, report.abandoned), (1, 0));

    assert!(matches!(cache.get_or_load(&k("c")).await, Err(LoadError::ShuttingDown)));
    assert!(matches!(cache.reload(&k("c")).await, Err(LoadError::ShuttingDown)));
    assert_eq!(cache.get_or_load(&k("a")).await.unwrap().origin, Origin::Memory);
    assert_eq!(cache.stats().errors, 2);
    assert_eq!(source.total(), 2);
}

#[tokio::test]
async fn answers_map_and_the_cache_describes_itself() {
    let (_clock, _source, cache) = setup();
    let answer = cache.get_or_load(&k("abc")).await.unwrap().map(|value| value.len());
    assert_eq!(answer, Got { value: 5, age: Duration::ZERO, stale: false, origin: Origin::Loaded });
    let described = format!("{cache:?}");
    assert!(described.contains("misses: 1") && described.contains("second_tier: false"), "{described}");
    let clock = ManualClock::new(start());
    let described = format!("{:?}", builder(&clock).eager_refresh(EagerRefresh { at_pct: 90, min_reads: 1 }));
    assert!(described.contains("at_pct: 90") && described.contains("key_rules: false"), "{described}");
    let twin = cache.clone();
    twin.invalidate_all();
    assert!(cache.memory().is_empty(), "clones are one cache");
}
