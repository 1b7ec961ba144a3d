//! Hearing what the loader does, so a metrics exporter can count it without
//! this crate depending on one.
//!
//! The trait is deliberately small: refresh requests, loads started and
//! finished (with their outcome and duration), and the two ways a flight is
//! turned away for want of a permit (a full line, or too long a wait).
//! Gauges such as the number of running refreshes are read from the
//! [`Loader`](crate::Loader) instead, which is always exact.

use std::fmt;
use std::time::Duration;

use crate::error::LoadError;
use crate::loader::Refresh;
use crate::queue::Priority;

/// Who started a flight: a caller waiting for the value, or a background
/// refresh nobody waits for.
///
/// A flight keeps the kind it started with: a user's load that joins a
/// running refresh leaves it a [`Background`](Self::Background) flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlightKind {
    /// Started by [`Loader::load`](crate::Loader::load).
    Foreground,
    /// Started by [`Loader::refresh`](crate::Loader::refresh).
    Background,
}

impl FlightKind {
    /// A short lower-case name, fit for a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Foreground => "foreground",
            Self::Background => "background",
        }
    }
}

/// How one call of the load function ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// It returned a value.
    Ok,
    /// It returned an error ([`LoadError::Source`]).
    Error,
    /// It ran past the timeout and was cancelled.
    Timeout,
    /// It panicked.
    Panicked,
    /// It was still running at the shutdown deadline and was aborted.
    Abandoned,
}

impl Outcome {
    /// A short lower-case name, fit for a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::Timeout => "timeout",
            Self::Panicked => "panicked",
            Self::Abandoned => "abandoned",
        }
    }

    pub(crate) fn of<V, E>(result: &Result<V, LoadError<E>>) -> Self {
        match result {
            Ok(_) => Self::Ok,
            Err(LoadError::Source(_)) => Self::Error,
            Err(LoadError::Timeout(_)) => Self::Timeout,
            Err(LoadError::Panicked(_)) => Self::Panicked,
            // A call that was made cannot end in these three; an unfinished
            // one is reported by the flight's drop guard as abandoned.
            Err(LoadError::Overloaded | LoadError::QueueTimeout(_) | LoadError::ShuttingDown) => Self::Abandoned,
        }
    }
}

/// Hears a [`Loader`](crate::Loader)'s events as they happen.
///
/// Every method does nothing by default, so an implementation picks what it
/// counts. Methods are called from whichever task caused the event, never
/// under the loader's lock; they should be quick and must not block.
///
/// A call of the load function is heard twice: [`load_started`] once a
/// permit is granted, then [`load_finished`] exactly once, whatever the
/// outcome, so started minus finished is the number of calls running.
///
/// [`load_started`]: Self::load_started
/// [`load_finished`]: Self::load_finished
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::time::Duration;
/// use refresh::{Config, FlightKind, Loader, Observer, Outcome};
///
/// #[derive(Debug, Default)]
/// struct Failures(AtomicU64);
///
/// impl Observer for Failures {
///     fn load_finished(&self, _kind: FlightKind, outcome: Outcome, _elapsed: Duration) {
///         if outcome != Outcome::Ok {
///             self.0.fetch_add(1, Ordering::Relaxed);
///         }
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let failures = Arc::new(Failures::default());
/// let loader = Loader::with_observer(Config::default(), failures.clone(), |wallet: String| async move {
///     if wallet.starts_with("0x") { Ok(wallet.len()) } else { Err("not an EVM address") }
/// });
/// assert_eq!(loader.load("0xabc".to_owned()).await.unwrap(), 5);
/// assert!(loader.load("abc".to_owned()).await.is_err());
/// assert_eq!(failures.0.load(Ordering::Relaxed), 1);
/// # }
/// ```
pub trait Observer: Send + Sync + fmt::Debug {
    /// [`Loader::refresh`](crate::Loader::refresh) was called and did what
    /// `refresh` says: started a flight, found one running, or skipped.
    fn refresh_requested(&self, _refresh: Refresh) {}

    /// A flight got its permit and is about to call the load function.
    fn load_started(&self, _kind: FlightKind) {}

    /// A call of the load function ended, `elapsed` after it started (time
    /// waiting for a permit excluded).
    fn load_finished(&self, _kind: FlightKind, _outcome: Outcome, _elapsed: Duration) {}

    /// A foreground load was refused with
    /// [`LoadError::Overloaded`]. (A refresh that gives way is
    /// heard through [`refresh_requested`](Self::refresh_requested).)
    fn overloaded(&self) {}

    /// A flight of this kind waited [`Config::queue_timeout`] for a permit
    /// without getting one and was given up: its callers got
    /// [`LoadError::QueueTimeout`], and a background refresh nobody waited
    /// for was dropped. The load function was not called, so neither
    /// [`load_started`](Self::load_started) nor
    /// [`load_finished`](Self::load_finished) is heard for it.
    ///
    /// [`Config::queue_timeout`]: crate::Config::queue_timeout
    fn queue_timed_out(&self, _kind: FlightKind) {}

    /// A flight of `class` took a place in line (it found no free permit
    /// it may take).
    fn queued(&self, _class: Priority) {}

    /// A flight of `class` got its permit after waiting `waited` (zero if
    /// it took a free one at once), just before it calls the load function.
    fn started(&self, _class: Priority, _waited: Duration) {}

    /// A flight of `class` was dropped for want of a permit: refused with
    /// the line full, or gave up waiting.
    fn dropped(&self, _class: Priority) {}
}

/// The observer of a loader built without one.
#[derive(Debug)]
pub(crate) struct Silent;

impl Observer for Silent {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_follow_results() {
        let of = |result: Result<(), LoadError<&str>>| Outcome::of(&result);
        assert_eq!(of(Ok(())), Outcome::Ok);
        assert_eq!(of(Err(LoadError::Source(std::sync::Arc::new("down")))), Outcome::Error);
        assert_eq!(of(Err(LoadError::Timeout(Duration::from_secs(1)))), Outcome::Timeout);
        assert_eq!(of(Err(LoadError::Panicked("boom".to_owned()))), Outcome::Panicked);
        assert_eq!(of(Err(LoadError::ShuttingDown)), Outcome::Abandoned);
        assert_eq!(of(Err(LoadError::QueueTimeout(Duration::from_secs(1)))), Outcome::Abandoned);
    }

    #[test]
    fn labels_are_distinct_and_lower_case() {
        let outcomes = [Outcome::Ok, Outcome::Error, Outcome::Timeout, Outcome::Panicked, Outcome::Abandoned];
        let mut labels: Vec<&str> = outcomes.iter().map(|o| o.as_str()).collect();
        labels.extend([FlightKind::Foreground.as_str(), FlightKind::Background.as_str()]);
        let mut unique = labels.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), labels.len());
        assert!(labels.iter().all(|l| l.chars().all(|c| c.is_ascii_lowercase())));
    }
}
