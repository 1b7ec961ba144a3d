//! A stale-while-revalidate cache for async Rust: `get_or_load` that
//! serves a stale value at once and refreshes it once in the background,
//! loads a missing key once however many ask, and falls back on an old
//! value when the source fails.
//!
//! [`SwrCache`] composes two crates that stand on their own:
//! [`cache_core::Cache`], a synchronous sharded LRU whose entries know
//! their age against a [`Policy`](cache_core::Policy) of windows, and
//! [`refresh::Loader`], single-flight loading within limits. One table
//! decides what a read gets:
//!
//! | age of the value | what [`get_or_load`](SwrCache::get_or_load) answers |
//! | --- | --- |
//! | within the TTL | the value, `stale: false` ([`Origin::Memory`]) |
//! | within the stale-while-revalidate window | the value at once, `stale: true`; one background refresh of the key starts unless one is running |
//! | older, or absent | a load, shared by every concurrent read of the key ([`Origin::Loaded`]) |
//! | the load fails and a value within stale-if-error exists | that value ([`Origin::FailSafe`]) |
//! | the load fails, nothing servable | the load's error ([`refresh::LoadError`]); nothing is cached |
//!
//! On top of the table: [`refresh`](SwrCache::refresh) and
//! [`reload`](SwrCache::reload) (load now), [`invalidate`](SwrCache::invalidate)
//! (final for the loads that started before it), [`stats`](SwrCache::stats)
//! and an [`Observer`]; optionally a [`SecondTier`] read after a memory
//! miss, [`EagerRefresh`] of keys in demand before they go stale, and
//! [`KeyRule`]s for keys with a shorter TTL or a place at the front of the
//! load queue.
//!
//! What it does not do: write a second tier (the load function does, by
//! the store's own rules), or size values (set a weigher on the
//! [`cache_core::CacheBuilder`]).
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use cache_core::{Cache, ManualClock, Policy};
//! use cache_swr::{Origin, SwrCache};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let clock = ManualClock::starting_now();
//! let policy = Policy::new(Duration::from_secs(60))
//!     .stale_while_revalidate(Duration::from_secs(300))
//!     .stale_if_error(Duration::from_secs(3600));
//! let memory = Cache::builder(10_000).policy(policy).clock(clock.clone()).build();
//! let balances = SwrCache::builder(memory).build(|wallet: String| async move {
//!     // The slow source: a database, an upstream service.
//!     Ok::<_, std::io::Error>(wallet.len() as u64 * 100)
//! });
//!
//! let wallet = "0xabc".to_owned();
//! let first = balances.get_or_load(&wallet).await.unwrap();
//! assert_eq!((first.value, first.origin), (500, Origin::Loaded));
//!
//! clock.advance(Duration::from_secs(10));
//! let again = balances.get_or_load(&wallet).await.unwrap();
//! assert_eq!((again.origin, again.stale), (Origin::Memory, false));
//!
//! // Past the TTL: served at once, stale, while one refresh runs.
//! clock.advance(Duration::from_secs(60));
//! let stale = balances.get_or_load(&wallet).await.unwrap();
//! assert_eq!((stale.origin, stale.stale), (Origin::Memory, true));
//! assert_eq!(balances.stats().stale_hits, 1);
//! # }
//! ```

#![warn(missing_docs)]

mod builder;
mod got;
mod guard;
mod observer;
mod rules;
mod swr;
mod tier;

pub use builder::Builder;
pub use got::{Got, Loaded, Origin};
pub use observer::{Lookup, Observer, Stats};
pub use refresh::{LoadError, Priority, Refresh};
// The two crates it composes, for their types in this crate's API
// (`refresh::Config`, `refresh::Observer`, `cache_core::Policy`), so a user
// depends on this crate alone, at versions that match.
pub use rules::{EagerRefresh, KeyRule};
pub use swr::{GetOrLoad, Invalidator, Pending, SwrCache};
pub use tier::{BoxFuture, SecondTier, TierRead};
pub use {cache_core, refresh};
