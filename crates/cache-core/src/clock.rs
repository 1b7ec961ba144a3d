//! Where the cache gets "now" from.
//!
//! Entries carry wall-clock time (`SystemTime`), not a monotonic instant,
//! because an entry's `fetched_at` must mean the same thing on another
//! machine after a trip through a shared tier. The cache reads the clock on
//! every lookup, so the default clock is built for speed: on Linux it reads
//! `CLOCK_REALTIME_COARSE` (a few nanoseconds, millisecond resolution) rather
//! than `SystemTime::now()` (about thirty nanoseconds here). Millisecond
//! resolution is ample for windows measured in seconds. rustix finds the
//! vDSO through libc's aux vector (its `use-libc-auxv` feature), which is
//! what lets the service run under valgrind: there the read falls back to
//! the system call instead of faulting.
//!
//! Tests use [`ManualClock`] and move time by hand instead of sleeping.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time for a [`Cache`](crate::Cache).
///
/// Implementations must be cheap: the cache calls [`Clock::now`] on every
/// read and write.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
/// use cache_core::Clock;
///
/// /// A clock stuck at one instant, for illustration.
/// #[derive(Debug)]
/// struct Frozen(SystemTime);
///
/// impl Clock for Frozen {
///     fn now(&self) -> SystemTime {
///         self.0
///     }
/// }
///
/// let clock = Frozen(UNIX_EPOCH + Duration::from_secs(1_000));
/// assert_eq!(clock.now(), UNIX_EPOCH + Duration::from_secs(1_000));
/// ```
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current wall-clock time.
    fn now(&self) -> SystemTime;

    /// The current wall-clock time in nanoseconds since the Unix epoch, zero
    /// before it. The cache calls this one on its hot paths; override it
    /// when the clock can answer without building a `SystemTime`.
    fn unix_nanos(&self) -> u64 {
        to_unix_nanos(self.now())
    }
}

/// The system's wall clock, read the cheapest way the platform allows.
///
/// On Linux, Android and FreeBSD this is the coarse real-time clock (updated
/// every tick, typically every 1 to 4 ms); elsewhere it is
/// [`SystemTime::now`].
///
/// # Examples
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use cache_core::{Clock, SystemClock};
///
/// let coarse = SystemClock.now();
/// let precise = SystemTime::now();
/// let apart = precise.duration_since(coarse).unwrap_or_else(|e| e.duration());
/// assert!(apart < Duration::from_secs(1));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        from_unix_nanos(self.unix_nanos())
    }

    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    #[inline]
    fn unix_nanos(&self) -> u64 {
        use rustix::time::{ClockId, clock_gettime};
        let ts = clock_gettime(ClockId::RealtimeCoarse);
        // A clock set before 1970 reads as the epoch itself.
        let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
        let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
        secs.saturating_mul(1_000_000_000).saturating_add(nanos)
    }

    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    #[inline]
    fn unix_nanos(&self) -> u64 {
        to_unix_nanos(SystemTime::now())
    }
}

/// A clock that moves only when told to; for tests and simulations.
///
/// Clones share one time, so a test can keep a handle while the cache owns
/// another.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use cache_core::{Clock, ManualClock};
///
/// let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(100));
/// let handle = clock.clone();
/// handle.advance(Duration::from_secs(5));
/// assert_eq!(clock.now(), UNIX_EPOCH + Duration::from_secs(105));
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    nanos_since_epoch: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock that reads `start` until it is advanced or set.
    pub fn new(start: SystemTime) -> Self {
        Self { nanos_since_epoch: Arc::new(AtomicU64::new(to_unix_nanos(start))) }
    }

    /// A clock that starts at the real current time.
    pub fn starting_now() -> Self {
        Self::new(SystemTime::now())
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.nanos_since_epoch.fetch_add(duration_nanos(by), Ordering::SeqCst);
    }

    /// Sets the clock to `to`, which may be earlier than its current reading.
    pub fn set(&self, to: SystemTime) {
        self.nanos_since_epoch.store(to_unix_nanos(to), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        from_unix_nanos(self.unix_nanos())
    }

    fn unix_nanos(&self) -> u64 {
        self.nanos_since_epoch.load(Ordering::SeqCst)
    }
}

/// The clock a cache reads: the system clock by static dispatch (an
/// indirect call costs a measurable share of a get), or any other through a
/// trait object.
#[derive(Debug, Clone)]
pub(crate) enum ClockSource {
    System,
    Custom(Arc<dyn Clock>),
}

impl ClockSource {
    #[inline]
    pub(crate) fn unix_nanos(&self) -> u64 {
        match self {
            Self::System => SystemClock.unix_nanos(),
            Self::Custom(clock) => clock.unix_nanos(),
        }
    }
}

/// Nanoseconds since the Unix epoch; times before it count as zero and
/// times past the year 2554 saturate.
#[inline]
pub(crate) fn to_unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, duration_nanos)
}

/// The inverse of [`to_unix_nanos`].
#[inline]
pub(crate) fn from_unix_nanos(nanos: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(nanos)
}

/// A duration in nanoseconds, saturating at `u64::MAX` (about 584 years).
#[inline]
pub(crate) fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_nanos_round_trip_and_clamp() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        assert_eq!(from_unix_nanos(to_unix_nanos(t)), t);
        assert_eq!(to_unix_nanos(UNIX_EPOCH - Duration::from_secs(1)), 0);
        assert_eq!(duration_nanos(Duration::MAX), u64::MAX);
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = UNIX_EPOCH + Duration::from_secs(10);
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(Duration::from_millis(1500));
        assert_eq!(clock.now(), start + Duration::from_millis(1500));
        clock.set(start - Duration::from_secs(5));
        assert_eq!(clock.now(), start - Duration::from_secs(5));
    }

    #[test]
    fn both_readings_of_a_clock_agree() {
        let clock = ManualClock::new(UNIX_EPOCH + Duration::new(42, 7));
        assert_eq!(clock.unix_nanos(), 42_000_000_007);
        assert_eq!(from_unix_nanos(clock.unix_nanos()), clock.now());
        let (a, b) = (SystemClock.unix_nanos(), to_unix_nanos(SystemClock.now()));
        assert!(b >= a && b - a < 1_000_000_000, "{a} vs {b}");
    }

    #[test]
    fn system_clock_tracks_the_precise_clock() {
        let precise = SystemTime::now();
        let coarse = SystemClock.now();
        let apart = match precise.duration_since(coarse) {
            Ok(d) => d,
            Err(e) => e.duration(),
        };
        assert!(apart < Duration::from_millis(100), "clocks {apart:?} apart");
    }
}
