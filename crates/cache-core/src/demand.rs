//! A per-entry demand estimate: a count of reads that halves every
//! half-life, kept in four bytes beside the entry.
//!
//! The count is stamped with the half-life period ("epoch") in which it was
//! last brought up to date, so decay costs nothing until the entry is read
//! again: a read first halves the count once for every period that passed
//! since its stamp, then adds itself. No pass over the entries, no clock
//! read of its own, no atomic: it changes under the shard's lock, which a
//! read holds anyway to move the entry to the front of the recency list.
//!
//! What it is not: an exact rate. With a half-life `h`, a key read steadily
//! `r` times a second settles between about `r·h` and `2·r·h` (the count
//! halves all at once at each period's boundary), and a key read once
//! reads as 1 until its count has halved to 0 a period or so later. That is
//! enough to tell the keys in demand from the rest and to rank them.
//!
//! Epochs are 16 bits and wrap: a count last updated exactly a multiple of
//! 65,536 half-lives ago reads as if updated now. Entries rarely live that
//! long (an hour's half-life wraps after seven years), and the error is
//! only an entry looking more in demand than it is, once.

/// A decayed read count: the count, and the epoch it was last decayed to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Demand {
    epoch: u16,
    count: u16,
}

impl Demand {
    /// No reads yet, as of `epoch`.
    #[inline]
    pub(crate) const fn new(epoch: u16) -> Self {
        Self { epoch, count: 0 }
    }

    /// The count decayed to `epoch`, without changing it.
    #[inline]
    pub(crate) const fn at(self, epoch: u16) -> u16 {
        let periods = epoch.wrapping_sub(self.epoch);
        if periods >= 16 { 0 } else { self.count >> periods }
    }

    /// Counts one read in `epoch`; returns the count with it.
    #[inline]
    pub(crate) fn bump(&mut self, epoch: u16) -> u16 {
        let count = self.at(epoch).saturating_add(1);
        *self = Self { epoch, count };
        count
    }
}

/// Turns clock readings into demand epochs: nanoseconds since the epoch
/// divided by the half-life, truncated to 16 bits.
///
/// The half-life is rounded to the nearest power of two nanoseconds (so
/// within a factor of 1.42 of the one asked for), which makes the division
/// a shift: every read computes an epoch, and a 64-bit division would cost
/// more than the rest of the count's upkeep.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HalfLife {
    shift: u32,
}

impl HalfLife {
    /// A half-life of about `nanos` nanoseconds: the nearest power of two.
    pub(crate) const fn from_nanos(nanos: u64) -> Self {
        if nanos <= 1 {
            return Self { shift: 0 };
        }
        let below = u64::BITS - 1 - nanos.leading_zeros();
        // Past the midpoint between 2^below and 2^(below+1), round up;
        // the midpoint in log terms is 2^below * sqrt(2).
        let above = (nanos as u128) * (nanos as u128) > 2 * (1_u128 << (2 * below));
        Self { shift: if above && below < 63 { below + 1 } else { below } }
    }

    /// The epoch `now` (nanoseconds since the Unix epoch) falls in.
    #[inline]
    pub(crate) const fn epoch(self, now: u64) -> u16 {
        #[expect(clippy::cast_possible_truncation, reason = "epochs wrap by design: see the module's docs")]
        let epoch = (now >> self.shift) as u16;
        epoch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_count_and_halve_once_per_period() {
        let mut d = Demand::new(10);
        assert_eq!(d.at(10), 0);
        for n in 1..=8 {
            assert_eq!(d.bump(10), n);
        }
        assert_eq!((d.at(10), d.at(11), d.at(12), d.at(13)), (8, 4, 2, 1));
        assert_eq!(d.at(14), 0);
        assert_eq!(d.bump(12), 3, "two periods halve twice, then the read counts");
        assert_eq!(d.at(12), 3, "reading the count changes nothing");
    }

    #[test]
    fn long_silences_and_wrapped_epochs_decay_to_nothing() {
        let mut d = Demand::new(u16::MAX - 1);
        for _ in 0..1_000 {
            d.bump(u16::MAX - 1);
        }
        assert_eq!(d.at(u16::MAX), 500);
        assert_eq!(d.at(3), 1_000 >> 5, "the epoch wrapped between the two");
        assert_eq!(d.at(40), 0, "16 periods or more leave nothing");
    }

    #[test]
    fn the_count_saturates() {
        let mut d = Demand { epoch: 0, count: u16::MAX };
        assert_eq!(d.bump(0), u16::MAX);
    }

    #[test]
    fn epochs_follow_the_half_life_rounded_to_a_power_of_two() {
        let h = HalfLife::from_nanos(1_000);
        assert_eq!(h.shift, 10, "1,000 ns is nearest 1,024");
        assert_eq!((h.epoch(0), h.epoch(1_023), h.epoch(1_024), h.epoch(65_536 * 1_024)), (0, 0, 1, 0));
        assert_eq!(HalfLife::from_nanos(0).epoch(5), 5, "a zero half-life is one nanosecond");
        assert_eq!(HalfLife::from_nanos(1_400).shift, 10, "below 1,024 * 1.414");
        assert_eq!(HalfLife::from_nanos(1_500).shift, 11, "above it");
        let minute = HalfLife::from_nanos(60_000_000_000).shift;
        assert_eq!(minute, 36, "a minute is nearest 2^36 ns, 68.7 s");
        assert_eq!(HalfLife::from_nanos(u64::MAX).shift, 63);
        assert_eq!(size_of::<Demand>(), 4);
    }
}
