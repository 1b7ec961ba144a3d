//! How to reach Redis and how long to wait for it: the URL, the key
//! namespace, the pool size, the operation timeout, the health probe's
//! interval, the largest value read, and the breaker.
//!
//! This is plain data, usually filled from the service's environment
//! (`REDIS_URL`, `REDIS_MODE`, `REDIS_TIMEOUT_MS`,
//! `REDIS_HEALTH_INTERVAL_MS`, `REDIS_MAX_VALUE_BYTES`); the URL is checked
//! when the tier is built, not here. Its `Debug` output redacts the URL's
//! password (every seed's, in cluster mode).

use std::fmt;
use std::num::NonZeroUsize;
use std::str::FromStr;
use std::time::Duration;

use deadpool_redis::redis::{self, ConnectionInfo, IntoConnectionInfo};

use crate::breaker::BreakerConfig;
use crate::error::Error;
use crate::redact::{Secrets, redact_url};

/// The key namespace by default: keys are `poscache:positions:v2:{<id>}`.
pub const DEFAULT_NAMESPACE: &str = "poscache";

/// The pool's size by default: a ceiling the tier does not reach, since it
/// keeps one connection at a time (see [`Config::pool_size`]).
pub const DEFAULT_POOL_SIZE: NonZeroUsize = NonZeroUsize::new(16).unwrap();

/// How long one operation may take by default, getting a connection
/// included (`REDIS_TIMEOUT_MS`).
pub const DEFAULT_OP_TIMEOUT: Duration = Duration::from_millis(100);

/// How often the tier pings Redis in the background by default
/// (`REDIS_HEALTH_INTERVAL_MS`).
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(1);

/// The largest value a `get` reads by default (`REDIS_MAX_VALUE_BYTES`):
/// 1 MiB, hundreds of times a wallet with many positions.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 1 << 20;

/// Whether the tier talks to one Redis or to a Redis Cluster
/// (`REDIS_MODE`).
///
/// The rest of the tier's API is the same in both: the mode decides how
/// [`Config::url`] is read, how commands are routed, how a pattern
/// deletion walks the keyspace and how health is probed.
///
/// # Examples
///
/// ```
/// use cache_redis::Mode;
///
/// assert_eq!("cluster".parse::<Mode>(), Ok(Mode::Cluster));
/// assert_eq!(Mode::default(), Mode::Standalone);
/// assert_eq!(Mode::Cluster.as_str(), "cluster");
/// assert!("sentinel".parse::<Mode>().is_err());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Mode {
    /// One Redis (a primary, or a proxy in front of several): `url` is
    /// one URL.
    #[default]
    Standalone,
    /// Redis Cluster (or a managed equivalent in cluster mode): `url` is
    /// a comma-separated list of seed nodes, from which the client learns
    /// the whole cluster and follows it (`MOVED`, `ASK`, failovers).
    Cluster,
}

impl Mode {
    /// `standalone` or `cluster`, as `REDIS_MODE` spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Standalone => "standalone",
            Self::Cluster => "cluster",
        }
    }
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        match value {
            "standalone" => Ok(Self::Standalone),
            "cluster" => Ok(Self::Cluster),
            other => Err(format!("unknown redis mode {other:?}: expected standalone or cluster")),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a [`RedisTier`](crate::RedisTier) reaches Redis.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use cache_redis::Config;
///
/// let config = Config {
///     namespace: "staging".to_owned(),
///     op_timeout: Duration::from_millis(50),
///     ..Config::new("redis://app:hunter2@redis.internal:6379/0")
/// };
/// assert_eq!(config.redacted_url(), "redis://app:***@redis.internal:6379/0");
/// assert!(!format!("{config:?}").contains("hunter2"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// `redis://[user:password@]host:port[/db]` (also `rediss://` where the
    /// client supports TLS, and `redis+unix:///path?db=N&pass=…`). In
    /// [`Mode::Cluster`], a comma-separated list of such URLs (TCP ones,
    /// database 0), the seed nodes: any one that answers is enough to learn
    /// the cluster, so list several. A password containing a comma must be
    /// percent-encoded there (`%2C`).
    pub url: String,
    /// One Redis or a cluster; [`Mode::Standalone`] by default.
    pub mode: Mode,
    /// The first part of every key; glob characters in it are escaped
    /// wherever it goes into a pattern. `poscache` by default.
    pub namespace: String,
    /// The most connections the tier's pool may hold; 16 by default.
    ///
    /// It matters less than the name suggests: the tier checks one
    /// connection out of the pool, keeps it, and shares it between all
    /// operations (see [`RedisTier`](crate::RedisTier): a multiplexed
    /// connection pipelines concurrent requests, and on a 2-core machine one
    /// carried more gets per second than two or four). A connection that
    /// fails is taken out of the pool before the next is checked out, so
    /// the pool never holds more than one, and any size behaves the same.
    /// It stays the pool's ceiling, and a setting existing configurations
    /// may give.
    pub pool_size: NonZeroUsize,
    /// The longest one operation may hold its caller: getting a connection
    /// (checking one out of the pool, and opening it, if the tier has none)
    /// plus the command. 100 ms by default. The pool's wait, create and
    /// recycle timeouts and the connection's connect and response timeouts
    /// are all set to it too, so nothing underneath waits longer. A pattern
    /// deletion gives it to each of its round trips, not to the whole
    /// deletion.
    pub op_timeout: Duration,
    /// How often the tier's prober sends a `PING` (under the op timeout)
    /// to learn whether Redis answers, when no operation has told it since
    /// the last one; 1 s by default. So [`is_up`](crate::RedisTier::is_up)
    /// turns false within two intervals of Redis dying, and true within two
    /// intervals of its return, with no traffic at all, as long as the op
    /// timeout is shorter than the interval.
    pub health_interval: Duration,
    /// The largest stored value, in bytes, that a
    /// [`get`](crate::RedisTier::get) reads: a larger one is a miss
    /// (reported as [`oversized_value`](crate::Observer::oversized_value))
    /// and is read no further than this many bytes plus one. 1 MiB by
    /// default.
    pub max_value_bytes: usize,
    /// When the circuit breaker opens and for how long.
    pub breaker: BreakerConfig,
}

impl Config {
    /// The defaults, with `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            mode: Mode::Standalone,
            namespace: DEFAULT_NAMESPACE.to_owned(),
            pool_size: DEFAULT_POOL_SIZE,
            op_timeout: DEFAULT_OP_TIMEOUT,
            health_interval: DEFAULT_HEALTH_INTERVAL,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            breaker: BreakerConfig::default(),
        }
    }

    /// The cluster mode with `seeds` (comma-separated), the other settings
    /// the defaults.
    pub fn cluster(seeds: impl Into<String>) -> Self {
        Self { mode: Mode::Cluster, ..Self::new(seeds) }
    }

    /// The URL with its password replaced by `***`, fit for logs (each
    /// seed's, in cluster mode).
    pub fn redacted_url(&self) -> String {
        match self.mode {
            Mode::Standalone => redact_url(&self.url),
            Mode::Cluster => self.seeds().map(redact_url).collect::<Vec<_>>().join(","),
        }
    }

    /// The URL as redis-rs reads it, with the secrets to scrub from any
    /// error that may quote it: the one place the URL is parsed, for the
    /// tier's pool and the bus's own connection alike.
    pub(crate) fn connection_info(&self) -> Result<(ConnectionInfo, Secrets), Error> {
        let info = self
            .url
            .as_str()
            .into_connection_info()
            .map_err(|e| self.invalid_url(Secrets::new(&self.url, None).scrub(e)))?;
        let secrets = Secrets::new(&self.url, info.redis_settings().password());
        Ok((info, secrets))
    }

    /// In cluster mode: every seed as redis-rs reads it, and the secrets of
    /// all of them. An empty list, or a seed that is not a TCP URL, is
    /// refused.
    pub(crate) fn seed_infos(&self) -> Result<(Vec<ConnectionInfo>, Secrets), Error> {
        let mut secrets = Secrets::default();
        for seed in self.seeds() {
            secrets.extend(Secrets::new(seed, None));
        }
        let mut infos = Vec::new();
        for seed in self.seeds() {
            let info = seed.into_connection_info().map_err(|e| self.invalid_url(secrets.scrub(e)))?;
            if !matches!(info.addr(), redis::ConnectionAddr::Tcp(..) | redis::ConnectionAddr::TcpTls { .. }) {
                return Err(self.invalid_url("a cluster seed must be a redis:// or rediss:// URL".to_owned()));
            }
            secrets.extend(Secrets::new(seed, info.redis_settings().password()));
            infos.push(info);
        }
        if infos.is_empty() {
            return Err(self.invalid_url("no seed node given".to_owned()));
        }
        Ok((infos, secrets))
    }

    /// The seeds of a cluster URL list, blanks around commas ignored.
    fn seeds(&self) -> impl Iterator<Item = &str> {
        self.url.split(',').map(str::trim).filter(|seed| !seed.is_empty())
    }

    /// An [`Error::InvalidUrl`] naming this URL, redacted, and `reason`
    /// (already scrubbed of secrets).
    pub(crate) fn invalid_url(&self, reason: String) -> Error {
        Error::InvalidUrl { url: self.redacted_url(), reason }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("url", &self.redacted_url())
            .field("mode", &self.mode)
            .field("namespace", &self.namespace)
            .field("pool_size", &self.pool_size)
            .field("op_timeout", &self.op_timeout)
            .field("health_interval", &self.health_interval)
            .field("max_value_bytes", &self.max_value_bytes)
            .field("breaker", &self.breaker)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_specification() {
        let config = Config::new("redis://127.0.0.1:6379");
        assert_eq!(config.namespace, "poscache");
        assert_eq!(config.op_timeout, Duration::from_millis(100), "REDIS_TIMEOUT_MS default");
        assert_eq!(config.pool_size.get(), 16);
        assert_eq!(config.health_interval, Duration::from_secs(1), "REDIS_HEALTH_INTERVAL_MS default");
        assert_eq!(config.max_value_bytes, 1 << 20, "REDIS_MAX_VALUE_BYTES default");
        assert_eq!(config.breaker, BreakerConfig::default());
    }

    #[test]
    fn debug_output_redacts_the_password() {
        let config = Config::new("redis://:hunter2@127.0.0.1:6379/3");
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("redis://:***@127.0.0.1:6379/3"), "{debug}");
        let pretty = format!("{config:#?}");
        assert!(!pretty.contains("hunter2"), "{pretty}");
    }

    #[test]
    fn cluster_seeds_are_each_redacted_and_read() {
        let config = Config::cluster("redis://:hunter2@10.0.0.1:7000, redis://u:hunter2@10.0.0.2:7000,");
        assert_eq!(config.redacted_url(), "redis://:***@10.0.0.1:7000,redis://u:***@10.0.0.2:7000");
        assert!(!format!("{config:?}").contains("hunter2"));
        let (infos, secrets) = config.seed_infos().unwrap();
        assert_eq!(infos.len(), 2);
        assert_eq!(secrets.scrub("auth hunter2"), "auth ***");

        for bad in ["", " , ", "redis+unix:///tmp/r.sock", "redis://:hunter2@host:port"] {
            let error = Config::cluster(bad).seed_infos().unwrap_err();
            assert!(matches!(error, Error::InvalidUrl { .. }), "{bad}: {error}");
            assert!(!error.to_string().contains("hunter2"), "{error}");
        }
    }
}
