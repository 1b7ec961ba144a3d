//! Zipf-distributed ranks over a finite set: the popularity of wallets.
//!
//! A few wallets are asked for very often and most rarely; Zipf's law with
//! exponent `alpha` (rank `k` drawn with probability proportional to
//! `1 / k^alpha`) is the usual model of such traffic, and what the cache's
//! hit-ratio tests use. The sampler keeps the cumulative distribution of
//! the `n` ranks and draws by binary search: exact for any `alpha`
//! (including 0, uniform, and 1, where rejection samplers for the
//! unbounded law are awkward), O(log n) per draw, 8 bytes per rank.

use crate::rng::SplitMix64;

/// A Zipf(`alpha`) distribution over the ranks `0..n` (rank 0 the most
/// frequent).
///
/// # Examples
///
/// ```
/// use benchkit::rng::SplitMix64;
/// use benchkit::zipf::Zipf;
///
/// let zipf = Zipf::new(10_000, 1.0);
/// let mut rng = SplitMix64::new(1);
/// let rank = zipf.sample(&mut rng);
/// assert!(rank < 10_000);
/// // Under Zipf(1.0) over 10,000 ranks, the first holds about 10% of draws.
/// assert!((zipf.probability(0) - 0.102).abs() < 0.001);
/// ```
#[derive(Debug, Clone)]
pub struct Zipf {
    /// `cumulative[k]`: the probability of a rank at most `k`; the last is 1.
    cumulative: Vec<f64>,
}

impl Zipf {
    /// The distribution over `n` ranks with exponent `alpha`.
    ///
    /// # Panics
    ///
    /// If `n` is 0 or `alpha` is negative or not finite.
    pub fn new(n: usize, alpha: f64) -> Self {
        assert!(n > 0, "a Zipf distribution needs at least one rank");
        assert!(alpha.is_finite() && alpha >= 0.0, "invalid Zipf exponent {alpha}: expected a finite number >= 0");
        let mut cumulative = Vec::with_capacity(n);
        let mut total = 0.0;
        for k in 1..=n {
            total += (k as f64).powf(-alpha);
            cumulative.push(total);
        }
        for c in &mut cumulative {
            *c /= total;
        }
        // Rounding could leave the last a hair below 1, and a draw of
        // 0.999... would then fall off the end.
        if let Some(last) = cumulative.last_mut() {
            *last = 1.0;
        }
        Self { cumulative }
    }

    /// How many ranks.
    pub fn len(&self) -> usize {
        self.cumulative.len()
    }

    /// Always false: there is at least one rank.
    pub fn is_empty(&self) -> bool {
        self.cumulative.is_empty()
    }

    /// The probability of `rank`.
    pub fn probability(&self, rank: usize) -> f64 {
        let below = if rank == 0 { 0.0 } else { self.cumulative[rank - 1] };
        self.cumulative[rank] - below
    }

    /// A rank drawn from the distribution.
    pub fn sample(&self, rng: &mut SplitMix64) -> usize {
        let u = rng.next_f64();
        // The first rank whose cumulative probability exceeds `u`.
        self.cumulative.partition_point(|&c| c <= u).min(self.cumulative.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frequencies(zipf: &Zipf, draws: usize, seed: u64) -> Vec<f64> {
        let mut rng = SplitMix64::new(seed);
        let mut counts = vec![0_u64; zipf.len()];
        for _ in 0..draws {
            counts[zipf.sample(&mut rng)] += 1;
        }
        counts.into_iter().map(|c| c as f64 / draws as f64).collect()
    }

    #[test]
    fn alpha_one_follows_one_over_rank() {
        let zipf = Zipf::new(100, 1.0);
        // H(100) = 5.187...; rank k has probability 1 / (k H).
        let harmonic: f64 = (1..=100).map(|k| 1.0 / f64::from(k)).sum();
        for (rank, expected) in [(0, 1.0 / harmonic), (1, 0.5 / harmonic), (9, 0.1 / harmonic)] {
            assert!((zipf.probability(rank) - expected).abs() < 1e-12, "rank {rank}");
        }
        let seen = frequencies(&zipf, 400_000, 11);
        for rank in [0, 1, 2, 9, 49] {
            let expected = zipf.probability(rank);
            // Within 5% of the expected share (many standard deviations at
            // this sample size, so the test is not flaky).
            assert!(
                (seen[rank] - expected).abs() < 0.05 * expected + 0.0005,
                "rank {rank}: {} vs {expected}",
                seen[rank]
            );
        }
    }

    #[test]
    fn alpha_zero_is_uniform() {
        let zipf = Zipf::new(10, 0.0);
        let seen = frequencies(&zipf, 200_000, 5);
        for share in seen {
            assert!((share - 0.1).abs() < 0.005, "{share}");
        }
    }

    #[test]
    fn every_draw_is_a_rank_and_one_rank_is_certain() {
        let one = Zipf::new(1, 1.0);
        let mut rng = SplitMix64::new(9);
        assert!((0..1_000).all(|_| one.sample(&mut rng) == 0));
        let zipf = Zipf::new(7, 2.5);
        assert!((0..10_000).all(|_| zipf.sample(&mut rng) < 7));
        let total: f64 = (0..7).map(|k| zipf.probability(k)).sum();
        assert!((total - 1.0).abs() < 1e-12);
    }

    #[test]
    fn the_same_seed_gives_the_same_ranks() {
        let zipf = Zipf::new(10_000, 1.0);
        let draw = |seed| {
            let mut rng = SplitMix64::new(seed);
            (0..100).map(|_| zipf.sample(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(draw(42), draw(42));
        assert_ne!(draw(42), draw(43));
    }
}
