//! The hit ratio against theory: a seeded independent-reference Zipf
//! workload replayed through the cache must hit as often as Che's
//! approximation says an LRU of that size does.
//!
//! Che's approximation: an LRU of capacity C under independent requests
//! with probabilities pᵢ behaves as if each key stayed for a characteristic
//! time T, the root of Σᵢ (1 − e^(−pᵢT)) = C; its hit ratio is then
//! H = Σᵢ pᵢ (1 − e^(−pᵢT)). It is known to be accurate to a fraction of a
//! percentage point at these sizes, so a larger gap means the cache is not
//! the LRU it claims to be.

use cache_core::{Cache, Policy};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand_distr::{Distribution, Zipf};

const KEYS: u64 = 100_000;
const WARM_UP: usize = 500_000;
const MEASURED: usize = 1_000_000;

/// Che's approximation of an LRU's hit ratio.
fn che_hit_ratio(alpha: f64, keys: u64, capacity: usize) -> f64 {
    let weights: Vec<f64> = (1..=keys).map(|i| (i as f64).powf(-alpha)).collect();
    let total: f64 = weights.iter().sum();
    let p: Vec<f64> = weights.iter().map(|w| w / total).collect();
    let occupancy = |t: f64| p.iter().map(|pi| 1.0 - (-pi * t).exp()).sum::<f64>();

    // Occupancy grows monotonically with T: bracket the root, then bisect.
    let target = capacity as f64;
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    while occupancy(hi) < target {
        hi *= 2.0;
    }
    for _ in 0..200 {
        let mid = f64::midpoint(lo, hi);
        if occupancy(mid) < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let t = f64::midpoint(lo, hi);
    p.iter().map(|pi| pi * (1.0 - (-pi * t).exp())).sum()
}

/// Replays the workload through `cache` and returns the measured hit ratio.
fn replay(cache: &Cache<u64, u64>, alpha: f64, seed: u64) -> f64 {
    let zipf = Zipf::new(KEYS as f64, alpha).expect("valid Zipf parameters");
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut request = || rank(zipf.sample(&mut rng));
    let access = |key: u64| {
        let hit = cache.get(&key).is_some();
        if !hit {
            cache.insert(key, key);
        }
        hit
    };
    for _ in 0..WARM_UP {
        access(request());
    }
    let hits = (0..MEASURED).filter(|_| access(request())).count();
    hits as f64 / MEASURED as f64
}

#[test]
fn lru_hit_ratio_matches_ches_approximation() {
    let mut report = Vec::new();
    for (alpha, capacity) in [(0.8, 1_000), (0.8, 10_000), (1.0, 1_000), (1.0, 10_000)] {
        let theory = che_hit_ratio(alpha, KEYS, capacity);
        let exact: Cache<u64, u64> = Cache::builder(capacity).shards(1).policy(Policy::never_stale()).build();
        let sharded: Cache<u64, u64> = Cache::builder(capacity).policy(Policy::never_stale()).build();
        let one_shard = replay(&exact, alpha, 42);
        let default = replay(&sharded, alpha, 42);
        report.push(format!(
            "alpha {alpha}, capacity {capacity}: Che {:.2}%, one shard {:.2}%, {} shards {:.2}%",
            theory * 100.0,
            one_shard * 100.0,
            sharded.shard_count(),
            default * 100.0
        ));
        assert!(
            (one_shard - theory).abs() <= 0.015,
            "one-shard LRU hit {:.2}% where Che predicts {:.2}% (alpha {alpha}, capacity {capacity})",
            one_shard * 100.0,
            theory * 100.0
        );
        assert!(
            (default - one_shard).abs() <= 0.02,
            "{} shards hit {:.2}% against {:.2}% for one shard (alpha {alpha}, capacity {capacity})",
            sharded.shard_count(),
            default * 100.0,
            one_shard * 100.0
        );
    }
    // Shown with --nocapture, and quoted in docs/benchmarks.md.
    println!("{}", report.join("\n"));
}

#[test]
fn che_approximation_has_the_known_limits() {
    // A cache holding every key hits on every request; the approximation
    // must say nearly so, and must grow with the capacity.
    let small = che_hit_ratio(0.8, 1_000, 10);
    let large = che_hit_ratio(0.8, 1_000, 500);
    let all = che_hit_ratio(0.8, 1_000, 999);
    assert!(small < large && large < all, "{small} < {large} < {all}");
    assert!(all > 0.99, "{all}");
}

/// A Zipf sample as the key it names.
#[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "samples are whole numbers in 1..=n")]
fn rank(sample: f64) -> u64 {
    sample as u64
}
