//! The limits a [`Loader`](crate::Loader) works within: how many loads may
//! call the source at once, how many may wait for their turn and for how
//! long, and how long one call may take.
//!
//! This is plain data, usually filled from the service's environment
//! (`REFRESH_CONCURRENCY`, `REFRESH_TIMEOUT_MS`, `REFRESH_QUEUE_TIMEOUT_MS`,
//! `REFRESH_QUEUE_MAX`); it does no parsing and no validation beyond what
//! its types already guarantee.

use std::num::NonZeroUsize;
use std::time::Duration;

/// Loads that call the source at once by default, across all keys.
pub const DEFAULT_CONCURRENCY: NonZeroUsize = NonZeroUsize::new(32).unwrap();

/// How long one call of the source may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a load may wait for a permit by default. About as long as a
/// user should wait for their turn before an honest "try again later"
/// serves them better; with the default timeout, no caller waits more than
/// six seconds in all.
pub const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(1);

/// Loads that may wait for a permit by default: eight per permit at the
/// default concurrency. The line is bounded twice: in length by this, in
/// time by [`DEFAULT_QUEUE_TIMEOUT`].
pub const DEFAULT_MAX_QUEUED: usize = 256;

/// How long a flight waits in line by default before it is served as if
/// it were of the highest class: half the default queue timeout, so a
/// background refresh behind a flood of users' loads still gets its turn
/// before it would give up.
pub const DEFAULT_PROMOTE_AFTER: Duration = Duration::from_millis(500);

/// The limits of a [`Loader`](crate::Loader).
///
/// # Examples
///
/// ```
/// use std::num::NonZeroUsize;
/// use std::time::Duration;
/// use refresh::Config;
///
/// let config = Config {
///     concurrency: NonZeroUsize::new(8).unwrap(),
///     timeout: Duration::from_millis(1_500),
///     ..Config::default()
/// };
/// assert_eq!(config.max_queued, 256);
/// // Nobody waits on a flight longer than its turn plus its call.
/// assert_eq!(config.longest_wait(), Duration::from_millis(2_500));
/// // Background refreshes may take at most half of the waiting places.
/// assert_eq!(config.max_queued_background(), 128);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// How many loads may call the source at once, all keys together
    /// (`REFRESH_CONCURRENCY`); 32 by default. Values above tokio's
    /// semaphore limit (`usize::MAX >> 3`) are lowered to it.
    pub concurrency: NonZeroUsize,
    /// How long one call of the source may take before it is given up with
    /// [`LoadError::Timeout`](crate::LoadError::Timeout)
    /// (`REFRESH_TIMEOUT_MS`); 5 s by default. Time spent waiting for a
    /// permit does not count: that wait has its own limit, `queue_timeout`.
    pub timeout: Duration,
    /// How long a flight may wait for a permit before it gives up
    /// (`REFRESH_QUEUE_TIMEOUT_MS`); 1 s by default. Its callers then get
    /// [`LoadError::QueueTimeout`](crate::LoadError::QueueTimeout), and a
    /// background refresh nobody waits for is dropped; either way the load
    /// function is not called and the key is free for the next flight.
    /// With `timeout`, it bounds how long anyone waits for a flight: see
    /// [`longest_wait`](Self::longest_wait). Zero means a flight runs at
    /// once or not at all.
    pub queue_timeout: Duration,
    /// How many new loads may wait for a permit when all are taken; a
    /// foreground load beyond that fails at once with
    /// [`LoadError::Overloaded`](crate::LoadError::Overloaded). 256 by
    /// default; zero means a load either runs at once or fails.
    pub max_queued: usize,
    /// How long a flight waits in line before it is served as if it were of
    /// the highest [`Priority`](crate::Priority) class (still within its
    /// class's share of the permits), so that no class starves; 500 ms by
    /// default.
    pub promote_after: Duration,
}

impl Config {
    /// How many loads may be waiting for a permit when a background refresh
    /// still joins the line: half of [`max_queued`](Self::max_queued),
    /// rounded down. At or past it, [`Loader::refresh`](crate::Loader::refresh)
    /// skips, so refreshes never hold more than half of the waiting places
    /// and a user's load always finds the other half open to it.
    pub fn max_queued_background(&self) -> usize {
        self.max_queued / 2
    }

    /// The longest a caller waits for a flight, from the moment the flight
    /// starts: its wait for a permit, then its call of the load function.
    /// (A caller who joins a flight later waits less.)
    pub fn longest_wait(&self) -> Duration {
        self.queue_timeout.saturating_add(self.timeout)
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            concurrency: DEFAULT_CONCURRENCY,
            timeout: DEFAULT_TIMEOUT,
            queue_timeout: DEFAULT_QUEUE_TIMEOUT,
            max_queued: DEFAULT_MAX_QUEUED,
            promote_after: DEFAULT_PROMOTE_AFTER,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_specification() {
        let config = Config::default();
        assert_eq!(config.concurrency.get(), 32, "REFRESH_CONCURRENCY default");
        assert_eq!(config.timeout, Duration::from_secs(5), "REFRESH_TIMEOUT_MS default");
        assert_eq!(config.queue_timeout, Duration::from_secs(1), "REFRESH_QUEUE_TIMEOUT_MS default");
        assert_eq!(config.max_queued, 256);
    }

    #[test]
    fn background_gets_half_the_queue_rounded_down() {
        let with = |max_queued| Config { max_queued, ..Config::default() }.max_queued_background();
        assert_eq!(with(0), 0);
        assert_eq!(with(1), 0);
        assert_eq!(with(5), 2);
        assert_eq!(with(256), 128);
    }
}
