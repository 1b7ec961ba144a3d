//! Rate-limiting repeated log lines: one line per cause per interval, with a
//! count of the lines held back.
//!
//! When a dependency dies, every request fails the same way, and a warning
//! per failure buries everything else in the log (and costs as much as the
//! request). A [`LogThrottle`] lets the first line of a cause through,
//! holds back the repeats for an interval, and hands the count of held-back
//! lines to the next line it lets through, so the log stays short and still
//! says how often it happened. The metrics keep the exact counts.
//!
//! What it is not: a logger. It decides whether to log and the caller logs,
//! with whatever level, message and fields it likes. It keeps no background
//! task, so a cause that stops recurring never reports its last count;
//! metrics have it.
//!
//! Memory is bounded: it remembers at most [`LogThrottle::MAX_CAUSES`]
//! causes. A cause that finds no room shares one overflow window with every
//! other such cause, so however many distinct causes arrive, at most
//! `MAX_CAUSES + 1` lines get through per interval.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Lets one log line per cause through per interval, and counts the rest.
///
/// Time is tokio's clock ([`tokio::time::Instant`]), so paused test time
/// moves it; outside a paused runtime it is the system's monotonic clock.
/// It may be shared between threads; each call takes a short lock and
/// allocates only to remember a new cause.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use refresh::LogThrottle;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let throttle = LogThrottle::new(Duration::from_secs(10));
/// let mut lines = Vec::new();
/// // A dead upstream fails 20 requests a second for 50 seconds.
/// for _ in 0..1_000 {
///     tokio::time::sleep(Duration::from_millis(50)).await;
///     if let Some(suppressed) = throttle.allow("upstream answered 500") {
///         tracing::warn!(suppressed, "source failed; serving stale data");
///         lines.push(suppressed);
///     }
/// }
/// // One line every 10 s, each saying how many were held back since the
/// // last.
/// assert_eq!(lines, [0, 199, 199, 199, 199]);
/// // Another cause is not held back by the first.
/// assert_eq!(throttle.allow("upstream timed out"), Some(0));
/// # }
/// ```
#[derive(Debug)]
pub struct LogThrottle {
    interval: Duration,
    causes: Mutex<Causes>,
}

/// The causes remembered, and the window shared by those that found no
/// room.
#[derive(Debug, Default)]
struct Causes {
    known: Vec<Cause>,
    overflow: Option<Window>,
}

/// One remembered cause.
#[derive(Debug)]
struct Cause {
    text: Box<str>,
    window: Window,
}

/// When a line last got through, and how many were held back since.
#[derive(Debug, Clone, Copy)]
struct Window {
    opened: Instant,
    suppressed: u64,
}

impl Window {
    fn open(now: Instant) -> Self {
        Self { opened: now, suppressed: 0 }
    }

    fn expired(&self, now: Instant, interval: Duration) -> bool {
        now.saturating_duration_since(self.opened) >= interval
    }

    /// Lets a line through if the window has expired (opening the next one
    /// and handing over the count), or counts it as held back.
    fn admit(&mut self, now: Instant, interval: Duration) -> Option<u64> {
        if self.expired(now, interval) {
            let suppressed = self.suppressed;
            *self = Self::open(now);
            Some(suppressed)
        } else {
            self.suppressed += 1;
            None
        }
    }
}

impl LogThrottle {
    /// The interval of [`Default`]: long enough that a failure on every
    /// request makes a handful of lines a minute, short enough that a new
    /// outbreak of an old cause shows within seconds.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

    /// How many distinct causes are remembered at once. Causes are meant to
    /// be classes of failure ("upstream answered 500"), of which there are
    /// few; this bounds memory if a caller's causes turn out to embed
    /// something unbounded, such as a wallet.
    pub const MAX_CAUSES: usize = 32;

    /// A throttle that lets one line per cause through every `interval`.
    pub fn new(interval: Duration) -> Self {
        Self { interval, causes: Mutex::new(Causes::default()) }
    }

    /// The interval between two lines of one cause.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Whether to log a line of `cause` now: `Some(n)` if so, where `n` is
    /// how many lines of that cause were held back since its last line
    /// (zero for the first), or `None` if this one should be held back.
    ///
    /// The first line of a cause always gets through; then one per
    /// `interval`. A cause that finds all [`MAX_CAUSES`](Self::MAX_CAUSES)
    /// places taken by causes seen within the interval shares an overflow
    /// window with every other such cause, and its count is theirs too.
    #[must_use = "the answer says whether to log"]
    pub fn allow(&self, cause: &str) -> Option<u64> {
        self.allow_at(cause, Instant::now())
    }

    fn allow_at(&self, cause: &str, now: Instant) -> Option<u64> {
        // A panic under this lock cannot leave the windows inconsistent in
        // a way that matters: at worst one line too many or too few.
        let mut causes = self.causes.lock().unwrap_or_else(PoisonError::into_inner);
        let interval = self.interval;
        if let Some(known) = causes.known.iter_mut().find(|known| &*known.text == cause) {
            return known.window.admit(now, interval);
        }
        let fresh = Cause { text: cause.into(), window: Window::open(now) };
        if causes.known.len() < Self::MAX_CAUSES {
            causes.known.push(fresh);
            return Some(0);
        }
        // Full: take the place of the cause whose line is oldest, if it is
        // quiet long enough that its next line would get through anyway.
        // Its held-back count is lost; it was never going to be reported
        // unless the cause came back.
        let oldest = causes.known.iter_mut().min_by_key(|known| known.window.opened);
        if let Some(oldest) = oldest.filter(|oldest| oldest.window.expired(now, interval)) {
            *oldest = fresh;
            return Some(0);
        }
        if let Some(window) = &mut causes.overflow {
            window.admit(now, interval)
        } else {
            causes.overflow = Some(Window::open(now));
            Some(0)
        }
    }
}

impl Default for LogThrottle {
    /// A throttle with [`DEFAULT_INTERVAL`](Self::DEFAULT_INTERVAL).
    fn default() -> Self {
        Self::new(Self::DEFAULT_INTERVAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[tokio::test(start_paused = true)]
    async fn one_line_per_cause_per_interval_with_the_count_held_back() {
        let throttle = LogThrottle::new(10 * SECOND);
        assert_eq!(throttle.allow("refused"), Some(0), "the first line gets through");
        for _ in 0..5 {
            assert_eq!(throttle.allow("refused"), None);
        }
        assert_eq!(throttle.allow("timed out"), Some(0), "causes are throttled apart");
        tokio::time::advance(Duration::from_nanos(9_999_999_999)).await;
        assert_eq!(throttle.allow("refused"), None, "the interval has not passed");
        tokio::time::advance(Duration::from_nanos(1)).await;
        assert_eq!(throttle.allow("refused"), Some(6));
        assert_eq!(throttle.allow("refused"), None, "a new interval began");
        tokio::time::advance(60 * SECOND).await;
        assert_eq!(throttle.allow("refused"), Some(1), "a quiet spell loses no count");
        assert_eq!(throttle.allow("timed out"), Some(0));
    }

    #[test]
    fn memory_is_bounded_and_extra_causes_share_one_window() {
        let throttle = LogThrottle::new(10 * SECOND);
        let start = Instant::now();
        for n in 0..LogThrottle::MAX_CAUSES {
            assert_eq!(throttle.allow_at(&format!("cause {n}"), start), Some(0));
        }
        // Every place is taken by a cause seen within the interval: the
        // next new causes share the overflow window.
        let later = start + SECOND;
        assert_eq!(throttle.allow_at("wallet 0xa", later), Some(0));
        assert_eq!(throttle.allow_at("wallet 0xb", later), None);
        assert_eq!(throttle.allow_at("wallet 0xc", later), None);
        assert_eq!(throttle.causes.lock().unwrap().known.len(), LogThrottle::MAX_CAUSES);
        // Known causes are unaffected.
        assert_eq!(throttle.allow_at("cause 3", later), None);
        for n in 0..LogThrottle::MAX_CAUSES {
            let held_back = u64::from(n == 3);
            assert_eq!(throttle.allow_at(&format!("cause {n}"), start + 10 * SECOND), Some(held_back));
        }
        // Every place is busy again; the overflow's own interval is over.
        assert_eq!(throttle.allow_at("wallet 0xd", start + 11 * SECOND), Some(2), "the overflow's count");
    }

    #[test]
    fn a_quiet_cause_gives_its_place_to_a_new_one() {
        let throttle = LogThrottle::new(10 * SECOND);
        let start = Instant::now();
        for n in 0..LogThrottle::MAX_CAUSES {
            assert_eq!(
                throttle.allow_at(&format!("cause {n}"), start + Duration::from_millis(n.try_into().unwrap())),
                Some(0)
            );
        }
        // `cause 0` is the oldest and its interval is over.
        let later = start + 10 * SECOND;
        assert_eq!(throttle.allow_at("new", later), Some(0), "took a place rather than the overflow");
        assert_eq!(throttle.allow_at("new", later), None, "and is remembered");
        let causes = throttle.causes.lock().unwrap();
        assert!(causes.overflow.is_none());
        assert!(causes.known.iter().all(|known| &*known.text != "cause 0"));
    }

    #[test]
    fn default_interval_is_ten_seconds() {
        assert_eq!(LogThrottle::default().interval(), 10 * SECOND);
    }
}
