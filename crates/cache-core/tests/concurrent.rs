//! Many threads on one cache: every operation mixed, the bounds held, no
//! value torn or lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use cache_core::{Cache, ManualClock, Policy};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const THREADS: u64 = 4;

/// A value that says which key it belongs to in every word, so that a torn
/// or misplaced value cannot pass the check.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamped {
    key: u64,
    version: u64,
    words: [u64; 6],
}

impl Stamped {
    fn new(key: u64, version: u64) -> Self {
        Self { key, version, words: [key ^ version; 6] }
    }

    fn is_whole_for(&self, key: u64) -> bool {
        self.key == key && self.words.iter().all(|w| *w == key ^ self.version)
    }
}

#[test]
fn mixed_operations_keep_bounds_and_values_whole() {
    let clock = ManualClock::starting_now();
    let policy = Policy::new(Duration::from_secs(10))
        .stale_while_revalidate(Duration::from_secs(10))
        .stale_if_error(Duration::from_secs(30));
    let capacity = 256;
    let cache: Arc<Cache<u64, Arc<Stamped>>> =
        Arc::new(Cache::builder(capacity).shards(4).policy(policy).clock(clock.clone()).build());
    let done = Arc::new(AtomicBool::new(false));

    // A watcher samples the length throughout.
    let watcher = {
        let (cache, done) = (Arc::clone(&cache), Arc::clone(&done));
        thread::spawn(move || {
            let mut samples = 0_u64;
            let mut worst = 0;
            while !done.load(Ordering::Relaxed) || samples == 0 {
                worst = worst.max(cache.len());
                samples += 1;
            }
            (worst, samples)
        })
    };

    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (cache, clock) = (Arc::clone(&cache), clock.clone());
            thread::spawn(move || {
                let mut rng = SmallRng::seed_from_u64(t);
                let (mut served, mut reads) = (0_u64, 0_u64);
                for i in 0..40_000_u64 {
                    let key = rng.random_range(0..1_024);
                    match rng.random_range(0..100) {
                        0..40 => {
                            reads += 1;
                            if let Some(e) = cache.get(&key) {
                                assert!(e.value().is_whole_for(key), "torn or misplaced value for {key}");
                                served += 1;
                            }
                        }
                        40..50 => {
                            reads += 1;
                            if let Some(e) = cache.get_fail_safe(&key) {
                                assert!(e.value().is_whole_for(key));
                            }
                        }
                        50..55 => {
                            if let Some(e) = cache.peek(&key) {
                                assert!(e.value().is_whole_for(key));
                            }
                        }
                        55..90 => cache.insert(key, Arc::new(Stamped::new(key, i))),
                        90..95 => {
                            cache.invalidate(&key);
                        }
                        95..97 => {
                            cache.invalidate_if(|k, v| k % 97 == key % 97 && v.version % 2 == 0);
                        }
                        97 => {
                            cache.purge_expired();
                        }
                        98 => clock.advance(Duration::from_millis(rng.random_range(0..2_000))),
                        _ => {
                            cache.for_each(|k, e| assert!(e.value().is_whole_for(*k)));
                        }
                    }
                }
                (served, reads)
            })
        })
        .collect();

    let (mut served, mut reads) = (0, 0);
    for worker in workers {
        let (s, r) = worker.join().expect("worker panicked");
        served += s;
        reads += r;
    }
    done.store(true, Ordering::Relaxed);
    let (worst, samples) = watcher.join().expect("watcher panicked");

    assert!(worst <= capacity, "length reached {worst} above the capacity {capacity} ({samples} samples)");
    assert!(served > 0, "the workload must actually hit");
    let stats = cache.stats();
    assert!(stats.len <= capacity);
    assert_eq!(stats.hits + stats.stale_hits + stats.misses, reads, "every read counted exactly once");
}

#[test]
fn concurrent_writers_lose_nothing() {
    // Room for exactly every key: nothing may disappear, and each key must
    // end with the last version its one writer stored.
    let keys_per_thread = 2_000_u64;
    let rounds = 5_u64;
    let cache: Arc<Cache<u64, Stamped>> = Arc::new(
        Cache::builder(usize::try_from(THREADS * keys_per_thread).expect("fits"))
            .shards(16)
            .policy(Policy::never_stale())
            .build(),
    );

    let writers: Vec<_> = (0..THREADS)
        .map(|t| {
            let cache = Arc::clone(&cache);
            thread::spawn(move || {
                let keys = t * keys_per_thread..(t + 1) * keys_per_thread;
                for round in 0..rounds {
                    for key in keys.clone() {
                        cache.insert(key, Stamped::new(key, round));
                        // Read someone else's key too, to mix reads in.
                        let other = (key + keys_per_thread) % (THREADS * keys_per_thread);
                        if let Some(e) = cache.get(&other) {
                            assert!(e.value().is_whole_for(other));
                        }
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer panicked");
    }

    for key in 0..THREADS * keys_per_thread {
        let entry = cache.peek(&key).unwrap_or_else(|| panic!("key {key} was lost"));
        assert_eq!(*entry.value(), Stamped::new(key, rounds - 1));
    }
    let stats = cache.stats();
    assert_eq!(stats.insertions, THREADS * keys_per_thread * rounds);
    assert_eq!(stats.evictions, 0);
    assert_eq!(stats.len as u64, THREADS * keys_per_thread);
}

/// Hashes a `u64` key `k` so that it lands in shard `k % shards`.
#[derive(Debug, Clone, Copy, Default)]
struct ShardByKey;

#[derive(Debug, Default)]
struct KeyHasher(u64);

impl std::hash::BuildHasher for ShardByKey {
    type Hasher = KeyHasher;
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher::default()
    }
}

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        // The cache picks the shard from the upper half.
        self.0 = (n << 32) | n;
    }
}

/// The scheduler state of this process's thread named `name`, from `/proc`.
#[cfg(target_os = "linux")]
fn thread_state(name: &str) -> Option<char> {
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = task.ok()?.path();
        if std::fs::read_to_string(dir.join("comm")).ok()?.trim_end() != name {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
        return stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next());
    }
    None
}

#[cfg(target_os = "linux")]
#[test]
fn stats_waiting_on_a_busy_shard_holds_no_other() {
    use std::sync::mpsc;
    use std::time::Instant;

    const STATS_THREAD: &str = "stats-caller";
    let cache: Arc<Cache<u64, u64, ShardByKey>> =
        Arc::new(Cache::builder(64).hasher(ShardByKey).shards(4).policy(Policy::never_stale()).build());
    for k in 0..4 {
        cache.insert(k, k);
    }

    // A predicate that stops in the last shard and waits there, holding it.
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let busy = {
        let cache = Arc::clone(&cache);
        thread::spawn(move || {
            cache.invalidate_if(|k, _| {
                if *k == 3 {
                    entered_tx.send(()).expect("test alive");
                    release_rx.recv().expect("released");
                }
                false
            })
        })
    };
    entered_rx.recv_timeout(Duration::from_secs(10)).expect("the predicate reached shard 3");

    // Stats must wait for shard 3; wait until it is asleep doing so.
    let stats = {
        let cache = Arc::clone(&cache);
        thread::Builder::new().name(STATS_THREAD.to_owned()).spawn(move || cache.stats()).expect("spawns")
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut asleep_in_a_row = 0;
    while asleep_in_a_row < 20 {
        assert!(Instant::now() < deadline, "stats never blocked on the busy shard");
        asleep_in_a_row = if thread_state(STATS_THREAD) == Some('S') { asleep_in_a_row + 1 } else { 0 };
        thread::sleep(Duration::from_millis(5));
    }

    // Meanwhile every other shard answers.
    let (done_tx, done_rx) = mpsc::channel();
    let other = {
        let cache = Arc::clone(&cache);
        thread::spawn(move || {
            for k in 0..3 {
                assert_eq!(cache.get(&k).map(cache_core::Entry::into_value), Some(k));
                cache.insert(k + 4, k);
            }
            done_tx.send(()).expect("test alive");
        })
    };
    let answered = done_rx.recv_timeout(Duration::from_secs(10));
    release_tx.send(()).expect("predicate waiting");
    busy.join().expect("invalidate_if finished");
    let stats = stats.join().expect("stats finished");
    other.join().expect("reads finished");
    answered.expect("shards 0 to 2 answered while stats waited on shard 3");
    assert_eq!(stats.hits, 0, "read before the other thread's hits");
    assert_eq!(cache.stats().hits, 3);
}
