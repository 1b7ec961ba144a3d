//! Seeded pseudo-random numbers: `SplitMix64`.
//!
//! Benchmarks want the same sequence of wallets and delays on every run, so
//! that two runs differ only in what they measure; and they want it cheap
//! and without a dependency. `SplitMix64` is both, and good enough for picking
//! wallets and delays. It is not for anything that needs unpredictability.

/// `SplitMix64`'s increment: 2^64 divided by the golden ratio, made odd.
const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// Scrambles `x` into a well-mixed 64-bit value: `SplitMix64`'s output
/// function. A pure function, so that a shared counter can give a
/// reproducible sequence without a lock.
pub const fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(GOLDEN_GAMMA);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A `SplitMix64` generator.
///
/// # Examples
///
/// ```
/// use benchkit::rng::SplitMix64;
///
/// let mut a = SplitMix64::new(7);
/// let mut b = SplitMix64::new(7);
/// assert_eq!(a.next_u64(), b.next_u64());
/// let x = a.next_f64();
/// assert!((0.0..1.0).contains(&x));
/// ```
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose sequence depends on `seed` alone.
    pub const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        // `mix` adds the increment itself, so mixing the old state gives
        // the reference SplitMix64 sequence.
        let out = mix(self.state);
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        out
    }

    /// A uniform number in `[0, 1)`, from the top 53 bits.
    pub fn next_f64(&mut self) -> f64 {
        // 53 bits fit an f64's mantissa exactly.
        let top = (self.next_u64() >> 11) as f64;
        top * (1.0 / (1_u64 << 53) as f64)
    }

    /// A uniform integer in `lo..=hi` (`lo` if the range is empty).
    pub fn next_in(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        // The modulo bias is below 2^-40 for the small spans used here.
        lo + self.next_u64() % (hi - lo + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_sequence() {
        // The first outputs of SplitMix64 seeded with 0 (Vigna's reference).
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(rng.next_u64(), 0x6e78_9e6a_a1b9_65f4);
    }

    #[test]
    fn ranges_are_inclusive_and_bounded() {
        let mut rng = SplitMix64::new(3);
        let draws: Vec<u64> = (0..10_000).map(|_| rng.next_in(200, 202)).collect();
        assert!(draws.iter().all(|d| (200..=202).contains(d)));
        for value in 200..=202 {
            assert!(draws.contains(&value), "{value} never drawn");
        }
        assert_eq!(rng.next_in(5, 5), 5);
        assert_eq!(rng.next_in(9, 1), 9);
    }
}
