//! The fleet's message channel: replicas sharing one Redis tell each other
//! what they deleted and stored, so that every replica's memory tier can
//! follow.
//!
//! - [`message`]: what crosses the channel, a [`Message`] (kind, wallet or
//!   pattern, time, sender) in a small versioned encoding;
//! - `subscriber`: the task that keeps a dedicated connection
//!   subscribed and hands other instances' messages to the caller;
//! - this file: [`Bus`], which publishes and owns the subscriber.
//!
//! **The channel** is `{namespace}:positions:events:v1` (see
//! [`channel`]); `v1` is the version of the channel's name and purpose,
//! independent of the message format's [`VERSION`]. It is a pub/sub channel,
//! not a key: it takes no memory in Redis and nothing of the key space.
//!
//! **On a Redis Cluster** the bus keeps working unchanged in its rules. A
//! classic `PUBLISH` is forwarded by the node that receives it to every
//! other node over the cluster bus, so a subscriber connected to any one
//! node, primary or replica, hears every message; the subscriber connects
//! to one seed node and, when that subscription is lost (the node died,
//! was removed, or the connection broke), to the next seed, a gap like any
//! other, reported as one. Sharded pub/sub (`SPUBLISH`/`SSUBSCRIBE`, Redis
//! 7) would send each message to one shard's nodes only, which saves the
//! cluster bus traffic of a broadcast, but the channel is one channel of
//! a few messages per invalidation, and every replica must hear all of
//! them: a sharded channel would live on one shard, whose failover would
//! be a gap for every subscriber at once, and needs Redis 7 everywhere.
//! Broadcast costs little here and works on every cluster version. What
//! `PUBLISH` answers in a cluster counts the subscribers of the node that
//! took it only.
//!
//! **Delivery is at most once.** Redis pub/sub keeps nothing: a message
//! published while a subscriber is disconnected (Redis restarted, the
//! connection killed or silent) is lost for it, and nothing says which.
//! What the bus guarantees instead is that every such gap is reported: an
//! [`Event::Lost`] when the subscription breaks (or the first attempt
//! fails) and an [`Event::Resubscribed`] when it is back, after which
//! messages flow again. A caller that keeps a cache must then treat every
//! entry it got before the end of the gap as possibly invalidated
//! (revalidate it, or drop it). Within a connection, messages arrive in the
//! order Redis received them; an instance never hears its own.
//!
//! What it is not: a queue, a lock or a source of truth. Correctness of
//! what is stored comes from the tier's writes; the bus only makes other
//! replicas find out sooner.
//!
//! # Examples
//!
//! ```
//! # #[cfg(feature = "testing")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), cache_redis::Error> {
//! use std::time::{Duration, SystemTime};
//! use cache_redis::bus::{Bus, Event, Kind};
//! use cache_redis::{Config, RedisTier, testing::RedisServer};
//!
//! let server = RedisServer::start();
//! let config = Config::new(server.url());
//! let (a, _a_events) = Bus::start(RedisTier::new(config.clone())?, &config)?;
//! let (b, mut b_events) = Bus::start(RedisTier::new(config.clone())?, &config)?;
//! while !(a.is_subscribed() && b.is_subscribed()) {
//!     tokio::task::yield_now().await;
//! }
//!
//! let heard_by = a.publish(&a.message(Kind::Deleted, "0xabc", SystemTime::now())).await?;
//! assert_eq!(heard_by, 2, "both subscribers; a ignores its own");
//! match b_events.recv().await {
//!     Some(Event::Message(message)) => assert_eq!((message.kind, message.subject.as_str()), (Kind::Deleted, "0xabc")),
//!     other => panic!("{other:?}"),
//! }
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "testing"))]
//! # fn main() {}
//! ```

pub mod message;
mod subscriber;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use deadpool_redis::redis;
use tokio::sync::mpsc;

pub use message::{DecodeError, HEADER_LEN, InstanceId, Kind, MAGIC, Message, VERSION, decode, encode};

use crate::config::{Config, Mode};
use crate::error::Error;
use crate::tier::RedisTier;

/// The first pause before subscribing again after an attempt failed.
pub const FIRST_RESUBSCRIBE_PAUSE: Duration = Duration::from_millis(50);

/// The longest pause between attempts to subscribe: each failed attempt
/// doubles the pause, up to this.
pub const MAX_RESUBSCRIBE_PAUSE: Duration = Duration::from_secs(2);

/// How many events may wait for the caller before the subscriber stops
/// reading (Redis then buffers for it, up to its `client-output-buffer-limit
/// pubsub`, past which it drops the connection: a gap, reported as one).
pub const EVENT_QUEUE: usize = 1024;

/// What the channel's subscriber tells its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A message from another instance.
    Message(Message),
    /// The subscription is down, and messages published from now on are
    /// lost until [`Resubscribed`](Self::Resubscribed). `since`: when it
    /// was last known to work (its last message or answered `PING`), or
    /// when the bus started if its first attempt failed.
    Lost {
        /// When the subscription was last known to work.
        since: SystemTime,
    },
    /// The subscription is back after a gap that began at `since` (as in
    /// the [`Lost`](Self::Lost) before it) and ended at `until`, when
    /// Redis confirmed the new subscription. Messages published in the gap
    /// are lost: anything cached before `until` may be out of date.
    Resubscribed {
        /// When the subscription was last known to work before the gap.
        since: SystemTime,
        /// When it was confirmed again.
        until: SystemTime,
    },
}

/// The channel's name for `namespace`: `{namespace}:positions:events:v1`.
///
/// # Examples
///
/// ```
/// assert_eq!(cache_redis::bus::channel("poscache"), "poscache:positions:events:v1");
/// ```
pub fn channel(namespace: &str) -> String {
    format!("{namespace}:positions:events:v1")
}

/// One instance's end of the fleet's channel: publishes through a tier's
/// pooled connection, and subscribes on a connection of its own.
///
/// Built with [`start`](Self::start), which returns the receiver of the
/// subscriber's [`Event`]s. Dropping the bus (or the receiver) stops the
/// subscriber and closes its connection. A process should have one bus:
/// its [`instance`](Self::instance) id is how the others tell its
/// messages, and how it ignores its own.
pub struct Bus {
    tier: RedisTier,
    channel: String,
    instance: InstanceId,
    subscribed: Arc<AtomicBool>,
    _subscriber: subscriber::Guard,
}

impl Bus {
    /// Starts a bus for the tier's namespace, with a fresh random
    /// instance id. `config` is the one the tier was built from: the
    /// subscriber connects to its URL (any URL the tier takes,
    /// `redis+unix://` included), gives each connection attempt and `PING`
    /// its op timeout, and checks a silent connection every health
    /// interval. Must be called within a tokio runtime; it does not wait
    /// for the subscription ([`is_subscribed`](Self::is_subscribed) says
    /// when it is up).
    ///
    /// Messages published before the first subscription is confirmed are
    /// not heard, and that is not reported as a gap unless the first
    /// attempt fails: start the bus before caching anything, and serve
    /// from memory once it is subscribed (or treat the first
    /// [`Event::Resubscribed`] as the end of a gap that began at start).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUrl`] if the URL does not parse.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn start(tier: RedisTier, config: &Config) -> Result<(Self, mpsc::Receiver<Event>), Error> {
        let redacted_url = config.redacted_url();
        let (infos, secrets) = match config.mode {
            Mode::Standalone => config.connection_info().map(|(info, secrets)| (vec![info], secrets))?,
            Mode::Cluster => config.seed_infos()?,
        };
        let clients = infos
            .into_iter()
            .map(|info| redis::Client::open(info).map_err(|e| config.invalid_url(secrets.scrub(e))))
            .collect::<Result<Vec<_>, Error>>()?;

        let channel = channel(tier.namespace());
        let instance = InstanceId::random();
        let subscribed = Arc::new(AtomicBool::new(false));
        let (events, receiver) = mpsc::channel(EVENT_QUEUE);
        let worker = subscriber::Subscriber {
            clients,
            channel: channel.clone(),
            instance,
            events,
            subscribed: Arc::clone(&subscribed),
            observer: Arc::clone(tier.observer()),
            op_timeout: config.op_timeout,
            keepalive: config.health_interval,
            redacted_url,
            secrets,
        };
        let guard = worker.start(&tokio::runtime::Handle::current());
        Ok((Self { tier, channel, instance, subscribed, _subscriber: guard }, receiver))
    }

    /// A message from this instance, to [`publish`](Self::publish).
    pub fn message(&self, kind: Kind, subject: impl Into<String>, at: SystemTime) -> Message {
        Message { kind, subject: subject.into(), at, sender: self.instance }
    }

    /// Publishes `message` (`PUBLISH`) through the tier, like any of its
    /// operations: behind its breaker, within its op timeout, on its
    /// shared connection; how many subscribers Redis handed it to (this
    /// instance's own included). A connection that turns out dropped may
    /// make it send the message twice, which every kind tolerates.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] if `message.at` is out of the encoding's range
    /// (nothing is sent); otherwise a Redis error as for
    /// [`RedisTier::get`]. A failed publish is a message lost: the others
    /// find out when their entries expire.
    pub async fn publish(&self, message: &Message) -> Result<u64, Error> {
        let bytes = encode(message)?;
        let receivers = self.tier.publish(&self.channel, &bytes).await?;
        self.tier.observer().bus_sent(message.kind);
        Ok(receivers)
    }

    /// Whether the subscriber is subscribed now: `false` until the first
    /// subscription is confirmed, and during every gap.
    pub fn is_subscribed(&self) -> bool {
        self.subscribed.load(Ordering::Relaxed)
    }

    /// This instance's id, the sender of its messages.
    pub fn instance(&self) -> InstanceId {
        self.instance
    }

    /// The channel's name.
    pub fn channel(&self) -> &str {
        &self.channel
    }
}

impl fmt::Debug for Bus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bus")
            .field("url", &self.tier.redacted_url())
            .field("channel", &self.channel)
            .field("instance", &self.instance)
            .field("subscribed", &self.is_subscribed())
            .finish_non_exhaustive()
    }
}
