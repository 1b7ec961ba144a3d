//! Loading values from a slow source without piling onto it: one load per
//! key at a time, shared by everyone who wants that key, within a global
//! concurrency limit, a bounded queue and a timeout.
//!
//! `refresh` is the layer the positions service puts between its cache and
//! the slow per-wallet calculation, and a library in its own right. A
//! [`Loader`] is built from a [`Config`] and a load function, and offers
//! two ways in:
//!
//! - [`Loader::load`] waits for the value (a cache miss, or `?refresh=true`);
//! - [`Loader::refresh`] starts a background load and returns at once (a
//!   stale hit).
//!
//! Both run the same kind of **flight**: a spawned task that calls the load
//! function once. While a flight for a key runs, every `load` and `refresh`
//! of that key joins it, and every waiter gets its value or the same error,
//! shared as an `Arc` ([`LoadError::Source`]). A flight runs to its end even
//! if all its callers go away, so a value paid for is never thrown away; a
//! call after a flight has finished starts a new one.
//!
//! Limits protect the source, and bound every wait: at most
//! [`Config::concurrency`] load function calls at once, at most
//! [`Config::max_queued`] flights waiting for a turn (beyond that a load
//! fails at once with [`LoadError::Overloaded`]), each for at most
//! [`Config::queue_timeout`] ([`LoadError::QueueTimeout`]), and
//! [`Config::timeout`] per call ([`LoadError::Timeout`]). Background
//! refreshes give way to users: they are skipped once the queue is half
//! full, and dropped when their wait runs out. The line is served by
//! [`Priority`] class (users' loads, stale refreshes, eager refreshes,
//! warm-up loads), each class holding at most its share of the permits,
//! and a flight that has waited [`Config::promote_after`] goes first, so no
//! class starves ([`Loader::refresh_with`]). A panicking load function
//! becomes [`LoadError::Panicked`] for its callers and nothing worse.
//! [`Loader::shutdown`] drains flights until a deadline and aborts the
//! rest. An [`Observer`] hears every event for metrics.
//!
//! Failures are logged with `tracing`, through a [`LogThrottle`]: one line
//! per kind of failure every ten seconds, with a count of the lines held
//! back, so a dead source does not turn every request into a warning. The
//! throttle is public for callers that log failures of their own.
//!
//! What it is not: a cache. The loader stores nothing; the load function
//! stores what it fetched (the service's writes both cache tiers), so a
//! failed load leaves the old value in place by doing nothing. It knows
//! nothing of HTTP, Redis or Prometheus, and it decides nothing about
//! staleness: the caller decides when to `load` and when to `refresh`.
//!
//! # Examples
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::time::Duration;
//! use refresh::{Config, Loader, LoadError};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let calls = Arc::new(AtomicUsize::new(0));
//! let counter = Arc::clone(&calls);
//! let loader = Loader::new(Config::default(), move |wallet: String| {
//!     counter.fetch_add(1, Ordering::Relaxed);
//!     async move {
//!         if wallet.starts_with("0x") { Ok(vec![wallet.len()]) } else { Err(format!("no such wallet {wallet:?}")) }
//!     }
//! });
//!
//! // Three concurrent requests for one wallet: one call of the source.
//! let (a, b, c) = tokio::join!(
//!     loader.load("0xabc".to_owned()),
//!     loader.load("0xabc".to_owned()),
//!     loader.load("0xabc".to_owned()),
//! );
//! assert_eq!((a.unwrap(), b.unwrap(), c.unwrap()), (vec![5], vec![5], vec![5]));
//! assert_eq!(calls.load(Ordering::Relaxed), 1);
//!
//! // The source's error reaches the caller, shared rather than copied.
//! let Err(LoadError::Source(error)) = loader.load("abc".to_owned()).await else { panic!() };
//! assert_eq!(error.as_str(), "no such wallet \"abc\"");
//!
//! let report = loader.shutdown(Duration::from_secs(5)).await;
//! assert_eq!((report.finished, report.abandoned), (0, 0));
//! # }
//! ```

#![warn(missing_docs)]

mod config;
mod error;
mod flight;
mod loader;
mod log_throttle;
mod observer;
mod queue;
mod shutdown;

pub use config::{
    Config, DEFAULT_CONCURRENCY, DEFAULT_MAX_QUEUED, DEFAULT_PROMOTE_AFTER, DEFAULT_QUEUE_TIMEOUT, DEFAULT_TIMEOUT,
};
pub use error::LoadError;
pub use loader::{Loader, Refresh, SkipReason};
pub use log_throttle::LogThrottle;
pub use observer::{FlightKind, Observer, Outcome};
pub use queue::Priority;
pub use shutdown::DrainReport;
