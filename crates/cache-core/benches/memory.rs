//! What each entry costs in memory beyond its key and value, for
//! `cache-core` and the same peers as `benches/cache.rs`.
//!
//! Each contender runs in a fresh child process (this binary, re-executed),
//! fills a cache with `ENTRIES` `u64 -> u64` entries, and reports how much
//! its resident set grew. Resident memory is what an operator pays for: it
//! includes the allocator's per-allocation headers and rounding, which a
//! count of requested bytes would hide. The overhead is that growth per
//! entry held, less the 16 bytes of key and value.
//!
//! Prints one line per contender and writes them, tab-separated, to
//! `$BENCH_OUT` if set (`cargo xtask bench` reads that file).

use std::num::NonZeroUsize;
use std::process::Command;
use std::sync::Mutex;

use cache_core::{Cache, Policy};

const ENTRIES: usize = 1_000_000;
const KEY_AND_VALUE: f64 = 16.0;
const CONTENDERS: [&str; 5] = ["cache-core", "quick_cache", "moka", "lru+Mutex", "hashlink+Mutex"];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let name = args.get(i + 1).map_or("", String::as_str);
        child(name);
        return;
    }
    // Under `cargo test --benches` (criterion's test mode) there is nothing
    // to check; the measurement only means something in a bench run.
    if args.iter().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let exe = std::env::current_exe().expect("own path");
    let mut lines = Vec::new();
    for name in CONTENDERS {
        let out = Command::new(&exe).args(["--child", name]).output().expect("child ran");
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        println!("{line}");
        lines.push(line);
    }
    if let Some(path) = std::env::var_os("BENCH_OUT") {
        let header = "contender\tentries\tbytes_per_entry\toverhead_bytes\n";
        std::fs::write(path, header.to_owned() + &lines.join("\n") + "\n").expect("write BENCH_OUT");
    }
}

/// Fills one contender's cache and prints `name entries bytes/entry overhead`.
fn child(name: &str) {
    let before = resident_bytes();
    let held = match name {
        "cache-core" => {
            let c: Cache<u64, u64> = Cache::builder(ENTRIES).policy(Policy::never_stale()).build();
            fill(|k| c.insert(k, k));
            keep(c.len(), c)
        }
        "quick_cache" => {
            let c = quick_cache::sync::Cache::<u64, u64>::new(ENTRIES);
            fill(|k| c.insert(k, k));
            keep(c.len(), c)
        }
        "moka" => {
            let c = moka::sync::Cache::<u64, u64>::new(ENTRIES as u64);
            fill(|k| c.insert(k, k));
            c.run_pending_tasks();
            keep(usize::try_from(c.entry_count()).unwrap_or(usize::MAX), c)
        }
        "lru+Mutex" => {
            let c = Mutex::new(lru::LruCache::<u64, u64>::new(NonZeroUsize::new(ENTRIES).expect("non-zero")));
            fill(|k| {
                c.lock().expect("not poisoned").put(k, k);
            });
            let len = c.lock().expect("not poisoned").len();
            keep(len, c)
        }
        "hashlink+Mutex" => {
            let c = Mutex::new(hashlink::LruCache::<u64, u64>::new(ENTRIES));
            fill(|k| {
                c.lock().expect("not poisoned").insert(k, k);
            });
            let len = c.lock().expect("not poisoned").len();
            keep(len, c)
        }
        other => panic!("unknown contender {other:?}"),
    };
    let grown = resident_bytes().saturating_sub(before) as f64;
    let per_entry = grown / held as f64;
    println!("{name}\t{held}\t{per_entry:.1}\t{:.1}", per_entry - KEY_AND_VALUE);
}

fn fill(mut insert: impl FnMut(u64)) {
    // Spread keys so that no hasher gets an easy sequential pattern.
    for i in 0..ENTRIES as u64 {
        insert(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    }
}

/// Measures with the cache still alive, then lets it go.
fn keep<T>(len: usize, cache: T) -> usize {
    std::hint::black_box(&cache);
    std::mem::forget(cache);
    len
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).expect("resident pages");
    pages * rustix::param::page_size() as u64
}
