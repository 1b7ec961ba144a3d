//! The shared second tier of the positions cache: values in Redis, read and
//! written under a short timeout, behind a circuit breaker.
//!
//! Several replicas of the service share one Redis, and a replica that
//! restarts finds warm data there. A [`RedisTier`] stores any
//! `T: Serialize + DeserializeOwned` under `<namespace>:positions:v2:{<id>}`
//! (the id in braces: a hash tag, see below) in a versioned [`envelope`]
//! that carries the time the value was fetched from its source, so every
//! replica agrees on its age. It offers five operations:
//!
//! - [`get`](RedisTier::get) one value, in one round trip, shared by
//!   concurrent gets of the same id, and never more than
//!   [`max_value_bytes`](Config::max_value_bytes) of it;
//! - [`set`](RedisTier::set) one value with an expiry (`SET … PX`);
//! - [`delete`](RedisTier::delete) one (`UNLINK`);
//! - [`delete_matching`](RedisTier::delete_matching) every id a glob
//!   matches (`SCAN` + `UNLINK`, never `KEYS`; on every primary of a
//!   cluster);
//! - [`ping`](RedisTier::ping).
//!
//! For a fleet of replicas on one Redis it adds writes that agree whatever
//! order they arrive in ([`conditional`]: the newest `fetched_at` wins, a
//! delete leaves a tombstone that is final for loads started before it)
//! and a per-id [`load_lock`] that lets one replica load while the others
//! wait. The three keys of one id (entry, tombstone, lock) share a hash
//! slot.
//!
//! **A Redis outage costs latency, never an error a user sees.** Building a
//! tier does not connect, so start-up never waits for Redis. Every
//! operation, getting a pooled connection included, ends within the op
//! timeout (100 ms by default). After repeated failures a
//! [circuit breaker](BreakerState) makes operations fail at once. A
//! background prober pings Redis every
//! [`health_interval`](Config::health_interval) (1 s by default) when no
//! operation has, so [`is_up`](RedisTier::is_up) follows Redis even with no
//! traffic, and notices when Redis is back. An error reply that refuses one
//! command (`OOM`, `READONLY`, `WRONGTYPE`) fails that operation only: it is
//! counted by [kind](ErrorReply), not taken for an outage. Every failure is
//! an [`Error`] the service turns into "behave as a miss"; a value that does
//! not decode (corrupt, or written by another format version) or is larger
//! than the limit is already reported as a miss. Events reach an [`Observer`], which is how metrics
//! hook in. The Redis password never appears in logs, `Debug` output or
//! errors ([`RedisTier::redacted_url`]).
//!
//! Replicas tell each other what they deleted and stored over a pub/sub
//! channel in the same Redis: the [`bus`] (at-most-once delivery, with
//! every gap in the subscription reported).
//!
//! **One Redis or a Redis Cluster**, with the same API ([`Mode`] in the
//! [`Config`]): in cluster mode the URL lists seed nodes, commands go to
//! the primary of their key's slot (`MOVED` and `ASK` followed by the
//! client), a pattern deletion walks every primary and says when it could
//! not ([`Error::Partial`]), health is a `PING` of every primary, and the
//! bus subscribes on any one node (a classic `PUBLISH` reaches them all).
//! The breaker and the op timeout are one for the cluster.
//!
//! What it is not: the cache policy. It knows nothing of HTTP, positions,
//! freshness windows, refreshes or Prometheus; it stores what it is given
//! and reads back what is there.
//!
//! # Examples
//!
//! The envelope needs no server:
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use cache_redis::envelope;
//!
//! let fetched_at = SystemTime::now();
//! let bytes = envelope::encode(&("USDC", 1520_u64), fetched_at).unwrap();
//! let stored = envelope::decode::<(String, u64)>(&bytes).unwrap();
//! assert_eq!(stored.value, ("USDC".to_owned(), 1520));
//! assert_eq!(stored.fetched_at, fetched_at);
//! ```
//!
//! The tier, against a throwaway server from `testing::RedisServer` (feature
//! `testing`):
//!
//! ```
//! # #[cfg(feature = "testing")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), cache_redis::Error> {
//! use std::time::{Duration, SystemTime};
//! use cache_redis::{Config, RedisTier, testing::RedisServer};
//!
//! let server = RedisServer::start();
//! let tier = RedisTier::new(Config::new(server.url()))?;
//!
//! let fetched_at = SystemTime::now();
//! // A slice is written as a sequence, so it reads back as a `Vec`. (An
//! // array would be written as a tuple, which does not read back as a
//! // `Vec`: the get would report it as an undecodable value, a miss.)
//! tier.set("0xabc", &["USDC", "WETH"][..], fetched_at, Duration::from_secs(900)).await?;
//! let stored = tier.get::<Vec<String>>("0xabc").await?.expect("just stored");
//! assert_eq!((stored.value, stored.fetched_at), (vec!["USDC".to_owned(), "WETH".to_owned()], fetched_at));
//!
//! assert_eq!(tier.delete_matching("0x*").await?, 1);
//! assert!(tier.get::<Vec<String>>("0xabc").await?.is_none());
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "testing"))]
//! # fn main() {}
//! ```

#![warn(missing_docs)]

mod breaker;
pub mod bus;
pub mod conditional;
mod config;
pub mod envelope;
mod error;
mod keys;
mod lease;
mod link;
pub mod load_lock;
mod observer;
mod op;
mod prober;
mod reads;
mod redact;
mod tier;
mod topology;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use breaker::{BreakerConfig, BreakerState, DEFAULT_BASE_PAUSE, DEFAULT_FAILURE_THRESHOLD, DEFAULT_MAX_PAUSE};
pub use conditional::WriteOutcome;
pub use config::{
    Config, DEFAULT_HEALTH_INTERVAL, DEFAULT_MAX_VALUE_BYTES, DEFAULT_NAMESPACE, DEFAULT_OP_TIMEOUT, DEFAULT_POOL_SIZE,
    Mode,
};
pub use envelope::Stored;
pub use error::{Error, ErrorReply};
pub use load_lock::LoadLockToken;
pub use observer::Observer;
pub use op::Op;
pub use tier::{FETCHED_AT_SKEW, RedisTier, SCAN_COUNT};
