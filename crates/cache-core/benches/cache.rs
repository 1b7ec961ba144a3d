//! `cache-core` against the caches an engineer would otherwise pick, in one
//! run: `quick_cache`, `moka`, `lru` in a `Mutex`, and one `hashlink`
//! `LruCache` in one `Mutex` (the single-lock baseline this crate shards).
//!
//! Three workloads, each over `u64` keys and values:
//! - `get_hit`: a get that hits, cycling over a shuffled set of present keys;
//! - `insert_evict`: an insert of a new key into a full cache;
//! - `zipf_mix/{1,2}_threads`: Zipf(0.99) keys, 90% gets and 10% inserts,
//!   measured as wall time for every thread to finish its share.
//!
//! Run through `cargo xtask bench`, which turns the medians into
//! `docs/benchmarks.md`.

use std::hint::black_box;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cache_core::{Cache, Policy};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};

/// Entries in the cache for the hit and eviction benchmarks.
const ENTRIES: usize = 10_000;
/// Distinct keys and capacity for the Zipf mix: the cache holds 10% of them.
const ZIPF_KEYS: u64 = 100_000;
const ZIPF_CAPACITY: usize = 10_000;
/// Length of the pregenerated request sequence (a power of two).
const SEQUENCE: usize = 1 << 20;

/// The operations every contender offers, in its own idiom.
trait Contender: Sync {
    const NAME: &'static str;
    fn with_capacity(capacity: usize) -> Self;
    fn get(&self, key: u64) -> Option<u64>;
    fn insert(&self, key: u64, value: u64);
}

impl Contender for Cache<u64, u64> {
    const NAME: &'static str = "cache-core";
    fn with_capacity(capacity: usize) -> Self {
        // A real policy, so that every get classifies freshness as the
        // service's do.
        let policy = Policy::new(Duration::from_secs(900)).stale_while_revalidate(Duration::from_secs(3_600));
        Cache::builder(capacity).policy(policy).build()
    }
    fn get(&self, key: u64) -> Option<u64> {
        Cache::get(self, &key).map(cache_core::Entry::into_value)
    }
    fn insert(&self, key: u64, value: u64) {
        Cache::insert(self, key, value);
    }
}

impl Contender for quick_cache::sync::Cache<u64, u64> {
    const NAME: &'static str = "quick_cache";
    fn with_capacity(capacity: usize) -> Self {
        quick_cache::sync::Cache::new(capacity)
    }
    fn get(&self, key: u64) -> Option<u64> {
        quick_cache::sync::Cache::get(self, &key)
    }
    fn insert(&self, key: u64, value: u64) {
        quick_cache::sync::Cache::insert(self, key, value);
    }
}

impl Contender for moka::sync::Cache<u64, u64> {
    const NAME: &'static str = "moka";
    fn with_capacity(capacity: usize) -> Self {
        moka::sync::Cache::new(capacity as u64)
    }
    fn get(&self, key: u64) -> Option<u64> {
        moka::sync::Cache::get(self, &key)
    }
    fn insert(&self, key: u64, value: u64) {
        moka::sync::Cache::insert(self, key, value);
    }
}

impl Contender for Mutex<lru::LruCache<u64, u64>> {
    const NAME: &'static str = "lru+Mutex";
    fn with_capacity(capacity: usize) -> Self {
        Mutex::new(lru::LruCache::new(NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN)))
    }
    fn get(&self, key: u64) -> Option<u64> {
        self.lock().ok()?.get(&key).copied()
    }
    fn insert(&self, key: u64, value: u64) {
        if let Ok(mut cache) = self.lock() {
            cache.put(key, value);
        }
    }
}

impl Contender for Mutex<hashlink::LruCache<u64, u64>> {
    const NAME: &'static str = "hashlink+Mutex";
    fn with_capacity(capacity: usize) -> Self {
        Mutex::new(hashlink::LruCache::new(capacity))
    }
    fn get(&self, key: u64) -> Option<u64> {
        self.lock().ok()?.get(&key).copied()
    }
    fn insert(&self, key: u64, value: u64) {
        if let Ok(mut cache) = self.lock() {
            cache.insert(key, value);
        }
    }
}

fn get_hit<C: Contender>(c: &mut Criterion) {
    // Twice the room, so that no shard of a sharded cache overflows and
    // every get really hits.
    let cache = C::with_capacity(2 * ENTRIES);
    let mut keys: Vec<u64> = (0..ENTRIES as u64).collect();
    for &k in &keys {
        cache.insert(k, k);
    }
    keys.shuffle(&mut SmallRng::seed_from_u64(7));
    let mut group = c.benchmark_group("get_hit");
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function(C::NAME, |b| {
        b.iter(|| {
            i = (i + 1) % ENTRIES;
            black_box(cache.get(black_box(keys[i])))
        });
    });
    group.finish();
}

fn insert_evict<C: Contender>(c: &mut Criterion) {
    let cache = C::with_capacity(ENTRIES);
    for k in 0..ENTRIES as u64 {
        cache.insert(k, k);
    }
    let mut next = ENTRIES as u64;
    let mut group = c.benchmark_group("insert_evict");
    group.throughput(Throughput::Elements(1));
    group.bench_function(C::NAME, |b| {
        b.iter(|| {
            next += 1;
            cache.insert(black_box(next), next);
        });
    });
    group.finish();
}

/// A pregenerated Zipf(0.99) request sequence: the key and whether it is a
/// write (10%).
fn zipf_sequence() -> Vec<(u64, bool)> {
    let zipf = Zipf::new(ZIPF_KEYS as f64, 0.99).expect("valid Zipf parameters");
    let mut rng = SmallRng::seed_from_u64(99);
    (0..SEQUENCE).map(|_| (rank(zipf.sample(&mut rng)), rng.random_range(0..10) == 0)).collect()
}

fn zipf_mix<C: Contender>(c: &mut Criterion, sequence: &[(u64, bool)]) {
    let mut group = c.benchmark_group("zipf_mix");
    for threads in [1_usize, 2] {
        let cache = C::with_capacity(ZIPF_CAPACITY);
        for &(k, _) in &sequence[..SEQUENCE / 4] {
            cache.insert(k, k);
        }
        // One "element" is one operation on every thread.
        group.throughput(Throughput::Elements(threads as u64));
        group.bench_with_input(BenchmarkId::new(C::NAME, format!("{threads}_threads")), &threads, |b, &threads| {
            b.iter_custom(|iters| {
                let started = Instant::now();
                std::thread::scope(|s| {
                    for t in 0..threads {
                        let cache = &cache;
                        s.spawn(move || {
                            let mut at = t * SEQUENCE / threads;
                            for _ in 0..iters {
                                let (key, write) = sequence[at];
                                at = (at + 1) & (SEQUENCE - 1);
                                if write {
                                    cache.insert(key, key);
                                } else {
                                    black_box(cache.get(key));
                                }
                            }
                        });
                    }
                });
                started.elapsed()
            });
        });
    }
    group.finish();
}

fn all<C: Contender>(c: &mut Criterion, sequence: &[(u64, bool)]) {
    get_hit::<C>(c);
    insert_evict::<C>(c);
    zipf_mix::<C>(c, sequence);
}

fn benches(c: &mut Criterion) {
    let sequence = zipf_sequence();
    all::<Cache<u64, u64>>(c, &sequence);
    all::<quick_cache::sync::Cache<u64, u64>>(c, &sequence);
    all::<moka::sync::Cache<u64, u64>>(c, &sequence);
    all::<Mutex<lru::LruCache<u64, u64>>>(c, &sequence);
    all::<Mutex<hashlink::LruCache<u64, u64>>>(c, &sequence);
}

criterion_group!(cache, benches);
criterion_main!(cache);

/// A Zipf sample as the key it names.
#[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "samples are whole numbers in 1..=n")]
fn rank(sample: f64) -> u64 {
    sample as u64
}
