//! A concurrent in-memory LRU cache whose entries go stale with age.
//!
//! `cache-core` is the memory tier of the positions cache, and a library in
//! its own right. It keeps at most a fixed number of entries (and optionally
//! a bounded total weight), evicts the least recently used in O(1), and
//! remembers for every entry when its value was fetched. A read classifies
//! the entry by age against a [`Policy`] with three windows:
//!
//! - **fresh** for the TTL;
//! - **stale-while-revalidate**: still returned by [`Cache::get`], marked
//!   [`Freshness::Stale`], so the caller can serve it at once and refresh it
//!   in the background;
//! - **stale-if-error**: how long past the TTL [`Cache::get_fail_safe`]
//!   returns an entry, for when a fresh load has failed and old data beats
//!   an error.
//!
//! Each read keeps to its own window (a stale-if-error of zero means a
//! failed load gets nothing stale, however long stale-while-revalidate is),
//! and an entry is stale exactly when its age is past the TTL or its owner
//! has marked it stale until replaced ([`Cache::mark_stale_before`], for
//! when invalidations may have been missed). A mark changes no window and no
//! age: those always go by the entry's real `fetched_at`.
//!
//! `fetched_at` is wall-clock time, so an entry keeps its true age when it
//! travels through a shared tier to another process. Time comes from a
//! [`Clock`]; tests use [`ManualClock`] and never sleep.
//!
//! Each entry also keeps a cheap estimate of its demand: a count of the
//! reads that touched it, halved once per half-life
//! ([`Entry::demand`]), changed under the lock a read already holds. It lets
//! the layer above tell the keys in demand from the rest (to refresh them
//! early, or to remember them across a restart) without a second map.
//!
//! Everything the cache does is counted ([`CacheStats`]) and can be heard as
//! it happens through an [`Observer`], which is how a metrics exporter hooks
//! in without this crate depending on one.
//!
//! What it is not: it does no I/O, spawns no thread or task, and knows
//! nothing of async runtimes, Redis or metrics libraries. Loading values,
//! refreshing stale ones and sharing a load between concurrent callers
//! belong to the layer above.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use cache_core::{Cache, ManualClock, Policy};
//!
//! let clock = ManualClock::starting_now();
//! let cache = Cache::builder(2)
//!     .policy(Policy::new(Duration::from_secs(60)).stale_while_revalidate(Duration::from_secs(60)))
//!     .shards(1)
//!     .clock(clock.clone())
//!     .build();
//!
//! cache.insert("a", 1);
//! cache.insert("b", 2);
//! cache.get("a"); // "a" is now the most recently used
//! cache.insert("c", 3); // evicts "b"
//! assert!(cache.get("b").is_none());
//!
//! clock.advance(Duration::from_secs(61));
//! let a = cache.get("a").unwrap();
//! assert!(a.is_stale());
//!
//! let stats = cache.stats();
//! assert_eq!((stats.hits, stats.stale_hits, stats.misses, stats.evictions), (1, 1, 1, 1));
//! ```

#![warn(missing_docs)]

mod bounds;
mod builder;
mod cache;
mod clock;
mod demand;
mod entry;
pub mod glob;
mod lock;
mod lru_table;
mod policy;
mod shard;
mod stats;

pub use builder::{CacheBuilder, DEFAULT_DEMAND_HALF_LIFE};
pub use cache::Cache;
pub use clock::{Clock, ManualClock, SystemClock};
pub use entry::Entry;
pub use policy::{Freshness, Policy};
pub use stats::{CacheStats, Event, Observer};
