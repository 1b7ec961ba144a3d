//! `cache-swr` against the async caches a library user would otherwise
//! pick, in one run, in two parts.
//!
//! 1. `swr_hit` (criterion): one read of a present, fresh key, through each
//!    cache's async read-or-load call: ours `get_or_load`, moka's
//!    `future::Cache::get_with`, `quick_cache`'s `get_value_or_guard_async`.
//!    `u64` keys and values, 10,000 keys filled first, read in shuffled
//!    order. Beside them, for reference, our memory tier alone
//!    (`cache_core::Cache::get`, synchronous).
//! 2. The expiring workload (not a criterion statistic): a load function
//!    that sleeps 5 ms, a TTL of 200 ms that expires many times during the
//!    run, 16 tasks on a multi-thread runtime reading 100 keys with a Zipf
//!    skew for 3 s. Every read's latency goes into a histogram, and the
//!    load function counts its calls. Ours serves an expired value at once
//!    (stale-while-revalidate) and refreshes it in the background; moka,
//!    with the same `time_to_live`, makes the readers of an expired key
//!    wait for its load. `quick_cache` has no expiry, so it has no place
//!    here. One line per cache on stdout:
//!    `swr-workload name=.. reads=.. p50_us=.. p90_us=.. p99_us=.. p999_us=.. max_us=.. calls=..`.
//!
//! `QUICK=1` shortens both parts (criterion's own arguments still win).
//! Run through `cargo xtask bench --only library`, which turns the figures
//! into `docs/benchmarks.md`.

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use cache_core::{Cache, Policy};
use cache_swr::SwrCache;
use criterion::{Criterion, Throughput};
use hdrhistogram::Histogram;

/// Keys present for the hit path.
const ENTRIES: usize = 10_000;

/// The expiring workload's shape.
const LOAD_TIME: Duration = Duration::from_millis(5);
const TTL: Duration = Duration::from_millis(200);
const STALE_WINDOW: Duration = Duration::from_secs(60);
const TASKS: u64 = 16;
const KEYS: u64 = 100;
/// The skew of key popularity: Zipf with this exponent.
const ZIPF_S: f64 = 1.0;
/// Each task's pause between two reads (tokio's timer rounds it up to its
/// millisecond tick), so that readers arrive over time as requests do
/// rather than spinning two cores.
const PAUSE: Duration = Duration::from_micros(500);

/// Drives one read to its answer by polling it once with a waker that does
/// nothing, and panics if it was not ready.
///
/// Why not an executor: every call here is a hit, and a hit should complete
/// on its first poll without waiting for anything. A `block_on` per read
/// (criterion's `to_async` with a current-thread runtime) would add the
/// runtime's entry, budget and park bookkeeping to every iteration, the
/// same for all three, and dilute the cache's own cost that the ratio is
/// about. One poll measures the cache alone, and the assertion proves the
/// premise for each contender.
fn first_poll<F: Future>(who: &str, read: F) -> F::Output {
    let mut read = pin!(read);
    match read.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("{who}: a read of a present key did not complete on its first poll"),
    }
}

/// Keys `0..ENTRIES` in a fixed shuffled order, so that reads do not walk
/// memory in insertion order.
fn shuffled_keys() -> Vec<u64> {
    let mut keys: Vec<u64> = (0..ENTRIES as u64).collect();
    let mut rng = SplitMix(7);
    for i in (1..keys.len()).rev() {
        let j = usize::try_from(rng.below(i as u64 + 1)).expect("below the length");
        keys.swap(i, j);
    }
    keys
}

fn hit_path(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    // A hit starts nothing, but a runtime is entered in case one would.
    let _entered = runtime.enter();
    let keys = shuffled_keys();
    let mut group = c.benchmark_group("swr_hit");
    group.throughput(Throughput::Elements(1));

    {
        // The same TTL as moka's below; long enough that no read is stale.
        let policy = Policy::new(Duration::from_secs(900)).stale_while_revalidate(Duration::from_secs(3_600));
        // Twice the room, so that no shard overflows and every read hits.
        let memory = Cache::builder(2 * ENTRIES).policy(policy).build();
        let ours = SwrCache::builder(memory).build(|key: u64| async move { Ok::<_, Infallible>(key) });
        runtime.block_on(async {
            for key in 0..ENTRIES as u64 {
                ours.get_or_load(&key).await.expect("the load cannot fail");
            }
        });
        let got = first_poll("cache-swr", ours.get_or_load(&keys[0])).expect("a hit");
        assert!(got.cached() && !got.stale, "the hit path must read fresh values from memory");
        let mut i = 0;
        group.bench_function("cache-swr", |b| {
            b.iter(|| {
                i = (i + 1) % keys.len();
                black_box(first_poll("cache-swr", ours.get_or_load(black_box(&keys[i]))))
            });
        });
        // The memory tier alone, synchronously: what the composition adds
        // to a hit is the difference.
        let mut i = 0;
        group.bench_function("cache-core", |b| {
            b.iter(|| {
                i = (i + 1) % keys.len();
                black_box(ours.memory().get(black_box(&keys[i])).map(cache_core::Entry::into_value))
            });
        });
    }

    {
        let moka = moka::future::Cache::builder()
            .max_capacity(2 * ENTRIES as u64)
            .time_to_live(Duration::from_secs(900))
            .build();
        runtime.block_on(async {
            for key in 0..ENTRIES as u64 {
                moka.insert(key, key).await;
            }
        });
        let mut i = 0;
        group.bench_function("moka", |b| {
            b.iter(|| {
                i = (i + 1) % keys.len();
                let key = black_box(keys[i]);
                black_box(first_poll("moka", moka.get_with(key, async move { key })))
            });
        });
    }

    {
        let quick = quick_cache::sync::Cache::<u64, u64>::new(2 * ENTRIES);
        for key in 0..ENTRIES as u64 {
            quick.insert(key, key);
        }
        let mut i = 0;
        group.bench_function("quick_cache", |b| {
            b.iter(|| {
                i = (i + 1) % keys.len();
                let read = first_poll("quick_cache", quick.get_value_or_guard_async(black_box(&keys[i])));
                let Ok(value) = read else { panic!("quick_cache: a present key answered a placeholder guard") };
                black_box(value)
            });
        });
    }
    group.finish();
}

/// What one cache's expiring run measured.
struct Outcome {
    latency_ns: Histogram<u64>,
    calls: u64,
    /// Reads answered with a stale value (ours only).
    stale: Option<u64>,
}

impl Outcome {
    fn print(&self, name: &str) {
        let h = &self.latency_ns;
        let us = |ns: u64| ns as f64 / 1_000.0;
        let stale = self.stale.map_or_else(String::new, |n| format!(" stale={n}"));
        println!(
            "swr-workload name={name} reads={} p50_us={:.1} p90_us={:.1} p99_us={:.1} p999_us={:.1} max_us={:.1} calls={}{stale}",
            h.len(),
            us(h.value_at_quantile(0.5)),
            us(h.value_at_quantile(0.9)),
            us(h.value_at_quantile(0.99)),
            us(h.value_at_quantile(0.999)),
            us(h.max()),
            self.calls,
        );
    }
}

/// A cache under the expiring workload: how to read one key.
trait Reader: Clone + Send + Sync + 'static {
    fn read(&self, key: u64) -> impl Future<Output = u64> + Send;
}

#[derive(Clone)]
struct Ours(SwrCache<u64, u64, Infallible>);

impl Reader for Ours {
    async fn read(&self, key: u64) -> u64 {
        self.0.get_or_load(&key).await.expect("the load cannot fail").value
    }
}

#[derive(Clone)]
struct Moka {
    cache: moka::future::Cache<u64, u64>,
    calls: Arc<AtomicU64>,
}

impl Reader for Moka {
    async fn read(&self, key: u64) -> u64 {
        let calls = Arc::clone(&self.calls);
        self.cache.get_with(key, slow_load(calls, key)).await
    }
}

/// The source: 5 ms of real time per call, counted.
async fn slow_load(calls: Arc<AtomicU64>, key: u64) -> u64 {
    calls.fetch_add(1, Ordering::Relaxed);
    tokio::time::sleep(LOAD_TIME).await;
    key
}

/// Loads every key, then lets `TASKS` readers run for `length`; returns
/// every read's latency and the calls of the load function during the run
/// (the warm-up's not counted).
async fn run_readers<R: Reader>(reader: R, calls: &AtomicU64, length: Duration) -> (Histogram<u64>, u64) {
    let warm: Vec<_> = (0..KEYS)
        .map(|key| {
            let reader = reader.clone();
            tokio::spawn(async move { reader.read(key).await })
        })
        .collect();
    for task in warm {
        task.await.expect("warm-up read");
    }
    let calls_before = calls.load(Ordering::Relaxed);
    let zipf = ZipfTable::new(KEYS, ZIPF_S);
    let until = Instant::now() + length;
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (reader, zipf) = (reader.clone(), zipf.clone());
            tokio::spawn(async move {
                let mut latency = histogram();
                let mut rng = SplitMix(1_000 + t);
                while Instant::now() < until {
                    let key = zipf.sample(&mut rng);
                    let started = Instant::now();
                    black_box(reader.read(key).await);
                    latency.saturating_record(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));
                    tokio::time::sleep(PAUSE).await;
                }
                latency
            })
        })
        .collect();
    let mut all = histogram();
    for task in tasks {
        all.add(task.await.expect("reader task")).expect("same bounds");
    }
    (all, calls.load(Ordering::Relaxed) - calls_before)
}

/// Nanoseconds from 1 to a minute, three significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds")
}

fn expiring_workload(length: Duration) {
    let runtime = || tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");

    let calls = Arc::new(AtomicU64::new(0));
    let policy = Policy::new(TTL).stale_while_revalidate(STALE_WINDOW);
    let memory = Cache::builder(1_000).policy(policy).build();
    let counted = Arc::clone(&calls);
    let ours = SwrCache::builder(memory).build(move |key: u64| {
        let calls = Arc::clone(&counted);
        async move { Ok::<_, Infallible>(slow_load(calls, key).await) }
    });
    // The warm-up's reads are misses: every stale answer is the run's.
    let (latency_ns, calls_in_run) = runtime().block_on(run_readers(Ours(ours.clone()), &calls, length));
    Outcome { latency_ns, calls: calls_in_run, stale: Some(ours.stats().stale_hits) }.print("cache-swr");

    let calls = Arc::new(AtomicU64::new(0));
    let moka = Moka {
        cache: moka::future::Cache::builder().max_capacity(1_000).time_to_live(TTL).build(),
        calls: Arc::clone(&calls),
    };
    let (latency_ns, calls_in_run) = runtime().block_on(run_readers(moka, &calls, length));
    Outcome { latency_ns, calls: calls_in_run, stale: None }.print("moka");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = std::env::var("QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and
    // then criterion runs each benchmark once and the workload runs briefly.
    let benching = args.iter().any(|a| a == "--bench");
    let listing = args.iter().any(|a| a == "--list");

    let mut criterion = Criterion::default();
    if quick {
        criterion =
            criterion.warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(1)).sample_size(20);
    }
    let mut criterion = criterion.configure_from_args();
    hit_path(&mut criterion);
    criterion.final_summary();

    if listing {
        return;
    }
    let length = match (benching, quick) {
        (false, _) => Duration::from_millis(300),
        (true, true) => Duration::from_secs(1),
        (true, false) => Duration::from_secs(3),
    };
    expiring_workload(length);
}

/// A small seeded generator (SplitMix64): enough for picking keys.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (the modulo bias is negligible for small `n`).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1_u64 << 53) as f64
    }
}

/// Zipf-distributed keys `0..n` (key 0 the most popular), by inverting the
/// cumulative distribution.
#[derive(Clone)]
struct ZipfTable(Arc<[f64]>);

impl ZipfTable {
    fn new(n: u64, s: f64) -> Self {
        let weights: Vec<f64> = (1..=n).map(|rank| 1.0 / (rank as f64).powf(s)).collect();
        let total: f64 = weights.iter().sum();
        let cumulative = weights
            .iter()
            .scan(0.0, |sum, w| {
                *sum += w / total;
                Some(*sum)
            })
            .collect();
        Self(cumulative)
    }

    fn sample(&self, rng: &mut SplitMix) -> u64 {
        let u = rng.unit();
        let at = self.0.partition_point(|&c| c < u).min(self.0.len() - 1);
        at as u64
    }
}
