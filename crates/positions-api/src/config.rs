//! Configuration: flags with environment fallbacks, validated at start-up.
//!
//! Every setting is a flag and an environment variable (the variable names
//! are the contract; the flags are for trying things out). A bad value
//! stops start-up with one line that names the variable, and exit code 2,
//! before anything is bound or loaded.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{CommandFactory, Parser, ValueEnum};

use crate::source::http::{CaBundle, without_userinfo};

/// The service's settings.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "positions-api",
    version,
    about = "Serves per-wallet crypto positions from a two-tier cache in front of a slow source",
    long_about = "Serves per-wallet crypto positions from a two-tier cache in front of a slow source.\n\n\
        Every setting can be given as a flag or as the environment variable shown. With no settings at all the \
        service serves the bundled sample ledger from memory on 127.0.0.1:8080."
)]
#[expect(clippy::struct_excessive_bools, reason = "one field per on/off setting, as the environment names them")]
pub struct Config {
    /// Whether to cache at all; with `false` every request loads from the source (concurrent requests for one
    /// wallet still share one load).
    #[arg(long = "cache-enabled", env = "POSITION_CACHE_ENABLED", default_value = "true", value_name = "BOOL",
          value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub cache_enabled: bool,

    /// Seconds an entry is fresh.
    #[arg(long = "ttl-sec", env = "POSITION_CACHE_TTL_SEC", default_value_t = 900, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub ttl_sec: u64,

    /// Wallets held in the memory tier; the least recently used go first.
    #[arg(long = "max", env = "POSITION_CACHE_MAX", default_value_t = 2000, value_name = "WALLETS",
          value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub max_wallets: u64,

    /// Seconds past the TTL during which stale data is served at once while one background refresh runs.
    #[arg(
        long = "max-stale-sec",
        env = "POSITION_CACHE_MAX_STALE_SEC",
        default_value_t = 3600,
        value_name = "SECONDS"
    )]
    pub max_stale_sec: u64,

    /// Seconds past the TTL during which stale data is served when the source fails.
    #[arg(
        long = "stale-if-error-sec",
        env = "POSITION_CACHE_STALE_IF_ERROR_SEC",
        default_value_t = 86_400,
        value_name = "SECONDS"
    )]
    pub stale_if_error_sec: u64,

    /// Whether wallets in demand are refreshed early: a read of a fresh entry past `--eager-refresh-at-pct` of its
    /// TTL, for a wallet read at least `--eager-refresh-min-reads` times lately, starts its one background refresh
    /// then, so its next reads find it fresh instead of stale. Wallets read less are never refreshed early.
    #[arg(long = "eager-refresh", env = "POSITION_CACHE_EAGER_REFRESH", default_value = "true", value_name = "BOOL",
          value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub eager_refresh: bool,

    /// How far into its TTL, in percent, a read of a wallet in demand starts its refresh early.
    #[arg(long = "eager-refresh-at-pct", env = "POSITION_CACHE_EAGER_REFRESH_AT_PCT", default_value_t = 90,
          value_name = "PERCENT", value_parser = clap::value_parser!(u8).range(1..=99))]
    pub eager_refresh_at_pct: u8,

    /// Reads a wallet needs lately (a count halved once per TTL) to be refreshed early. Default: enough to expect
    /// one read inside the early window, 100 / (100 - `--eager-refresh-at-pct`), rounded up.
    #[arg(long = "eager-refresh-min-reads", env = "POSITION_CACHE_EAGER_REFRESH_MIN_READS", value_name = "READS",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub eager_refresh_min_reads: Option<u16>,

    /// File of high-value wallets: one wallet or prefix (ending in `*`) per line, a class (`high`: its
    /// refreshes go to the front of their class in the load queue; `normal`) and optionally its own TTL in
    /// seconds, shorter than the TTL. Read once at start-up.
    #[arg(long = "priority-file", env = "POSITION_PRIORITY_FILE", value_name = "FILE")]
    pub priority_file: Option<PathBuf>,

    /// How many of the wallets most in demand are remembered for a warm start: kept in Redis with `REDIS_URL`,
    /// else in `--snapshot-path`; 0 turns warm start off.
    #[arg(long = "warm-keys", env = "POSITION_WARM_KEYS", default_value_t = 2000, value_name = "WALLETS",
          value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub warm_keys: u64,

    /// Without Redis: the file the wallets most in demand and their entries are written to, every minute and at
    /// shutdown (atomically), and read from at start.
    #[arg(long = "snapshot-path", env = "POSITION_CACHE_SNAPSHOT_PATH", value_name = "FILE")]
    pub snapshot_path: Option<PathBuf>,

    /// Longest time, in milliseconds, `/readyz` answers 503 while the memory tier warms up after a start.
    #[arg(long = "warm-timeout-ms", env = "POSITION_WARM_TIMEOUT_MS", default_value_t = 5000, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub warm_timeout_ms: u64,

    /// The parsed `priority_file`.
    #[arg(skip)]
    pub priority: crate::priority::PriorityList,

    /// Redis URL for the shared second tier (`redis://[user:password@]host:port[/db]`); unset means memory only.
    /// With `REDIS_MODE=cluster`, a comma-separated list of seed nodes (`redis://host:port,redis://host:port`).
    #[arg(long = "redis-url", env = "REDIS_URL", hide_env_values = true, value_name = "URL", value_parser = parse_redis_url)]
    pub redis_url: Option<String>,

    /// `standalone` (one Redis, or a proxy in front of several) or `cluster` (Redis Cluster, or a managed
    /// equivalent in cluster mode: `REDIS_URL` lists seed nodes, and the client follows the cluster).
    #[arg(long = "redis-mode", env = "REDIS_MODE", default_value = "standalone", value_name = "MODE",
          value_parser = parse_redis_mode)]
    pub redis_mode: cache_redis::Mode,

    /// Prefix of every Redis key: `<namespace>:positions:v2:{<wallet>}` (the braces are a hash tag).
    #[arg(long = "redis-namespace", env = "REDIS_NAMESPACE", default_value = "poscache", value_name = "NAME",
          value_parser = parse_namespace)]
    pub redis_namespace: String,

    /// Milliseconds any one Redis operation may take before it counts as failed (a hung Redis never holds a
    /// request longer).
    #[arg(long = "redis-timeout-ms", env = "REDIS_TIMEOUT_MS", default_value_t = 100, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub redis_timeout_ms: u64,

    /// Most connections the Redis pool may open. The tier shares one multiplexed connection between all
    /// operations and opens another only to replace a broken one, so this is a ceiling, rarely reached.
    #[arg(long = "redis-pool-size", env = "REDIS_POOL_SIZE", default_value_t = 16, value_name = "CONNECTIONS",
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub redis_pool_size: u64,

    /// Milliseconds between background PINGs to Redis (each under the Redis timeout), skipped while requests reach
    /// Redis anyway; `/health` and `position_cache_redis_up` follow them, with or without traffic.
    #[arg(long = "redis-health-interval-ms", env = "REDIS_HEALTH_INTERVAL_MS", default_value_t = 1000,
          value_name = "MS", value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub redis_health_interval_ms: u64,

    /// Largest value, in bytes, read from Redis; a larger one is a miss, counted, and never fetched whole.
    #[arg(long = "redis-max-value-bytes", env = "REDIS_MAX_VALUE_BYTES", default_value_t = 1 << 20,
          value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1024..=536_870_912))]
    pub redis_max_value_bytes: u64,

    /// Where fresh positions come from: `ledger:DIR` (trades.csv and prices.csv in DIR), an `http://` or
    /// `https://` upstream base URL (credentials in it are sent as Basic authorization), or `sample` for the
    /// ledger bundled in the binary.
    #[arg(long = "source", env = "POSITIONS_SOURCE", default_value = "sample", value_name = "SOURCE",
          hide_env_values = true, value_parser = parse_source)]
    pub source: SourceSpec,

    /// PEM bundle of the certificate authorities an `https://` source's certificate must chain to, instead of
    /// the built-in Mozilla roots. Read and checked at start-up.
    #[arg(long = "source-ca-file", env = "POSITIONS_SOURCE_CA_FILE", value_name = "FILE", value_parser = parse_ca_file)]
    pub source_ca_file: Option<CaBundle>,

    /// Address to listen on: `IP:PORT` (`0.0.0.0:8080`, `[::]:8080`) or `HOST:PORT`, a host name resolved once
    /// at start-up to its first IPv4 address, or its first address if it has none (`localhost:8080` listens on
    /// 127.0.0.1).
    #[arg(long = "bind", env = "POSITIONS_BIND", default_value = "127.0.0.1:8080", value_name = "ADDR",
          value_parser = parse_bind)]
    pub bind: SocketAddr,

    /// Loads from the source in flight at once, across all wallets.
    #[arg(long = "refresh-concurrency", env = "REFRESH_CONCURRENCY", default_value_t = 32, value_name = "LOADS",
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub refresh_concurrency: u64,

    /// Milliseconds one call to the source may take before it fails (504).
    #[arg(long = "refresh-timeout-ms", env = "REFRESH_TIMEOUT_MS", default_value_t = 5000, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub refresh_timeout_ms: u64,

    /// Milliseconds a load may wait for a free slot before it gives up: its requests get 503, a background
    /// refresh is dropped.
    #[arg(long = "refresh-queue-timeout-ms", env = "REFRESH_QUEUE_TIMEOUT_MS", default_value_t = 1000,
          value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub refresh_queue_timeout_ms: u64,

    /// Loads that may wait for a free slot; past this, requests that need a load are refused with 503.
    #[arg(long = "refresh-queue-max", env = "REFRESH_QUEUE_MAX", default_value_t = 1024, value_name = "LOADS",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub refresh_queue_max: u64,

    /// Milliseconds after a wallet was fetched during which `?refresh=true` answers the entry already held
    /// instead of loading again, so that anonymous clients cannot drive the source; 0 lets every forced refresh
    /// load.
    #[arg(long = "force-refresh-min-interval-ms", env = "FORCE_REFRESH_MIN_INTERVAL_MS", default_value_t = 1000,
          value_name = "MS", value_parser = clap::value_parser!(u64).range(0..=86_400_000))]
    pub force_refresh_min_interval_ms: u64,

    /// With Redis: whether the replicas sharing it act as one cache. `true` takes a per-wallet lease in Redis so
    /// that one replica loads a wallet while the others wait for its result, and tells every replica over a
    /// pub/sub channel what was deleted or stored, so their memory tiers follow within milliseconds. `false`: each
    /// replica loads for itself and its memory tier learns of changes elsewhere only when its entries expire
    /// (tier-2 writes stay conditional and deletions still leave tombstones either way).
    #[arg(long = "fleet-coordination", env = "FLEET_COORDINATION", default_value = "true", value_name = "BOOL",
          value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub fleet_coordination: bool,

    /// Milliseconds a replica's per-wallet load lease lives if the replica dies holding it; must exceed the load
    /// timeout (--refresh-timeout-ms). Default: the load timeout plus one second.
    #[arg(long = "fleet-lease-ms", env = "FLEET_LEASE_MS", value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub fleet_lease_ms: Option<u64>,

    /// Bearer token that enables DELETE; without it DELETE is disabled.
    #[arg(long = "admin-token", env = "ADMIN_TOKEN", hide_env_values = true, value_name = "TOKEN",
          value_parser = parse_token)]
    pub admin_token: Option<String>,

    /// Log format: `text` for people, `json` for log pipelines. The level comes from `RUST_LOG` (default `info`;
    /// an invalid filter stops start-up).
    #[arg(long = "log-format", env = "LOG_FORMAT", default_value = "text", value_name = "FORMAT")]
    pub log_format: LogFormat,

    /// One log line per request (target `access`): method, route template, status, cache outcome, duration, body
    /// bytes and request id; every line logged while handling a request then carries its id.
    #[arg(long = "access-log", env = "ACCESS_LOG", default_value = "false", value_name = "BOOL",
          value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub access_log: bool,

    /// Milliseconds a client may take to send its first bytes after connecting, or a request's headers from their
    /// first byte, before the connection is closed.
    #[arg(long = "header-timeout-ms", env = "HTTP_HEADER_TIMEOUT_MS", default_value_t = 10_000, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub header_timeout_ms: u64,

    /// Milliseconds a connection that has served a request may wait for the next one (HTTP/1.1 keep-alive, HTTP/2
    /// with no open stream) before it is closed. Keep it above the idle timeout of any load balancer in front (AWS
    /// ALB: 60 s by default), so that the balancer closes first and never reuses a connection being closed (a 502).
    #[arg(long = "idle-timeout-ms", env = "HTTP_IDLE_TIMEOUT_MS", default_value_t = 75_000, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
    pub idle_timeout_ms: u64,

    /// Most client connections open at once, over both listeners; lowered at start-up to fit the open-file limit
    /// (`RLIMIT_NOFILE`) less room for other descriptors. At the cap the connection idle longest is closed to make
    /// room; one serving a request is never cut.
    #[arg(long = "max-connections", env = "HTTP_MAX_CONNECTIONS", default_value_t = 10_000, value_name = "CONNECTIONS",
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub max_connections: u64,

    /// A second listen address that alone serves the admin routes (DELETE and /metrics); the main listener then
    /// answers them 404. Written as `POSITIONS_BIND`. Unset: every route is on `POSITIONS_BIND`.
    #[arg(long = "admin-bind", env = "ADMIN_BIND", value_name = "ADDR", value_parser = parse_bind)]
    pub admin_bind: Option<SocketAddr>,

    /// Milliseconds between SIGINT or SIGTERM and closing the listeners, during which `/readyz` answers 503 and
    /// requests are still served, so that load balancers see the instance leave before it stops accepting: the
    /// time they take to stop sending new connections (a Kubernetes endpoint update reaching every node).
    #[arg(long = "shutdown-delay-ms", env = "SHUTDOWN_DELAY_MS", default_value_t = 0, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    pub shutdown_delay_ms: u64,

    /// Milliseconds to let open requests and loads finish once the listeners close (after `SHUTDOWN_DELAY_MS`):
    /// one deadline for both, so the process exits within the delay plus this.
    #[arg(long = "shutdown-grace-ms", env = "SHUTDOWN_GRACE_MS", default_value_t = 10_000, value_name = "MS")]
    pub shutdown_grace_ms: u64,
}

/// Where positions come from. Its `Debug` output leaves out credentials in
/// an upstream URL.
#[derive(Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// The ledger bundled in the binary.
    Sample,
    /// A ledger directory.
    Ledger(PathBuf),
    /// An upstream service's base URL.
    Http(String),
}

impl std::fmt::Debug for SourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sample => f.write_str("Sample"),
            Self::Ledger(dir) => f.debug_tuple("Ledger").field(dir).finish(),
            Self::Http(url) => f.debug_tuple("Http").field(&without_userinfo(url).0).finish(),
        }
    }
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// An `IP:PORT`, or a `HOST:PORT` resolved now (start-up) to its first
/// IPv4 address, or its first address if it has no IPv4 one: binding one
/// address keeps a single listener, and `localhost` then means 127.0.0.1
/// whichever order the resolver lists it in.
fn parse_bind(value: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let Some((host, port)) = value.rsplit_once(':') else {
        return Err("expected IP:PORT or HOST:PORT".into());
    };
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err("expected IP:PORT or HOST:PORT".into());
    }
    let resolved: Vec<SocketAddr> =
        std::net::ToSocketAddrs::to_socket_addrs(value).map_err(|e| format!("cannot resolve {host:?}: {e}"))?.collect();
    resolved
        .iter()
        .find(|addr| addr.is_ipv4())
        .or_else(|| resolved.first())
        .copied()
        .ok_or_else(|| format!("{host:?} resolves to no address"))
}

fn parse_source(value: &str) -> Result<SourceSpec, String> {
    if value == "sample" {
        Ok(SourceSpec::Sample)
    } else if let Some(dir) = value.strip_prefix("ledger:") {
        if dir.is_empty() {
            return Err("expected ledger:DIR with a directory".into());
        }
        Ok(SourceSpec::Ledger(PathBuf::from(dir)))
    } else if value.starts_with("http://") || value.starts_with("https://") {
        Ok(SourceSpec::Http(value.to_owned()))
    } else {
        Err("expected ledger:DIR, an http(s):// URL, or sample".into())
    }
}

fn parse_ca_file(value: &str) -> Result<CaBundle, String> {
    CaBundle::load(std::path::Path::new(value)).map_err(|e| e.to_string())
}

fn parse_redis_url(value: &str) -> Result<String, String> {
    if value.starts_with("redis://") || value.starts_with("rediss://") || value.starts_with("redis+unix://") {
        Ok(value.to_owned())
    } else {
        // The value may hold a password: never echo it.
        Err("expected redis://[user:password@]host:port[/db]".into())
    }
}

fn parse_redis_mode(value: &str) -> Result<cache_redis::Mode, String> {
    value.parse()
}

fn parse_namespace(value: &str) -> Result<String, String> {
    if value.is_empty() || value.contains(char::is_whitespace) {
        Err("expected a non-empty name without spaces".into())
    } else {
        Ok(value.to_owned())
    }
}

fn parse_token(value: &str) -> Result<String, String> {
    if value.trim().is_empty() {
        Err("must not be empty (unset it to disable DELETE)".into())
    } else {
        Ok(value.to_owned())
    }
}

impl Config {
    /// Reads the settings from `args` and the environment.
    ///
    /// # Errors
    ///
    /// [`ConfigError`]: help or version was asked for (exit 0 after printing
    /// it), or a setting was bad (exit 2 after printing one line).
    pub fn from_args<I, T>(args: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let config = Self::try_parse_from(args).map_err(|e| match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                ConfigError::Info(e.render().to_string())
            }
            _ => ConfigError::Invalid(one_line(&e)),
        })?;
        if let Some(lease) = config.fleet_lease_ms
            && lease <= config.refresh_timeout_ms
        {
            return Err(ConfigError::Invalid(format!(
                "invalid \"{lease}\" for FLEET_LEASE_MS (--fleet-lease-ms): must exceed REFRESH_TIMEOUT_MS ({}), \
                 or a living holder's lease could expire mid-load",
                config.refresh_timeout_ms
            )));
        }
        let mut config = config;
        if let Some(path) = &config.priority_file {
            config.priority = crate::priority::PriorityList::load(path, config.ttl())
                .map_err(|e| ConfigError::Invalid(format!("invalid POSITION_PRIORITY_FILE (--priority-file): {e}")))?;
        }
        Ok(config)
    }

    /// How long a per-wallet load lease lives: `FLEET_LEASE_MS`, or the
    /// load timeout plus one second.
    pub fn fleet_lease(&self) -> Duration {
        self.fleet_lease_ms.map_or(self.refresh_timeout() + Duration::from_secs(1), Duration::from_millis)
    }

    /// The fresh window.
    pub fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl_sec)
    }

    /// The stale-while-revalidate window.
    pub fn max_stale(&self) -> Duration {
        Duration::from_secs(self.max_stale_sec)
    }

    /// The stale-if-error window.
    pub fn stale_if_error(&self) -> Duration {
        Duration::from_secs(self.stale_if_error_sec)
    }

    /// The warm-start settings.
    pub fn warm(&self) -> crate::service::WarmOptions {
        crate::service::WarmOptions {
            keys: usize::try_from(self.warm_keys).unwrap_or(usize::MAX),
            snapshot_path: self.snapshot_path.clone(),
            timeout: Duration::from_millis(self.warm_timeout_ms),
        }
    }

    /// The eager refresh rule, if it is on.
    pub fn eager_refresh(&self) -> Option<crate::service::EagerRefresh> {
        let pct = u16::from(self.eager_refresh_at_pct);
        let min_reads = self.eager_refresh_min_reads.unwrap_or_else(|| 100_u16.div_ceil(100 - pct));
        self.eager_refresh.then_some(crate::service::EagerRefresh { at_pct: self.eager_refresh_at_pct, min_reads })
    }

    /// One load's limit.
    pub fn refresh_timeout(&self) -> Duration {
        Duration::from_millis(self.refresh_timeout_ms)
    }

    /// How recently a wallet may have been fetched for a forced refresh to
    /// answer the entry held.
    pub fn force_refresh_min_interval(&self) -> Duration {
        Duration::from_millis(self.force_refresh_min_interval_ms)
    }

    /// The longest wait for a load's turn at the source.
    pub fn refresh_queue_timeout(&self) -> Duration {
        Duration::from_millis(self.refresh_queue_timeout_ms)
    }

    /// The limit on one Redis operation.
    pub fn redis_timeout(&self) -> Duration {
        Duration::from_millis(self.redis_timeout_ms)
    }

    /// How often the Redis tier's health probe runs.
    pub fn redis_health_interval(&self) -> Duration {
        Duration::from_millis(self.redis_health_interval_ms)
    }

    /// The limit on a request's headers.
    pub fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms)
    }

    /// The connection cap as configured (before fitting it to the
    /// descriptor limit: see [`crate::connection_cap`]).
    pub fn max_connections(&self) -> usize {
        usize::try_from(self.max_connections).unwrap_or(usize::MAX)
    }

    /// How long a connection may wait for its next request.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }

    /// How long the listeners stay open, unready, after a shutdown signal.
    pub fn shutdown_delay(&self) -> Duration {
        Duration::from_millis(self.shutdown_delay_ms)
    }

    /// How long shutdown waits for open work.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}

/// Why the settings could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Help or version text was asked for: print it and exit 0.
    #[error("{0}")]
    Info(String),
    /// A bad setting: print the one line and exit 2.
    #[error("{0}")]
    Invalid(String),
}

/// Boils a clap error down to one line naming the environment variable.
fn one_line(error: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};
    let rendered = error.render().to_string();
    let first = rendered.lines().next().unwrap_or("invalid configuration").trim_start_matches("error: ");
    let Some(ContextValue::String(arg)) = error.get(ContextKind::InvalidArg) else {
        return first.to_owned();
    };
    // `arg` reads like `--ttl-sec <SECONDS>`: find that flag's variable.
    let long = arg.trim_start_matches('-').split([' ', '=']).next().unwrap_or_default();
    let command = Config::command();
    let Some(argument) = command.get_arguments().find(|a| a.get_long() == Some(long)) else {
        return first.to_owned();
    };
    let Some(env) = argument.get_env() else {
        return first.to_owned();
    };
    // Secrets (the admin token, a Redis URL with its password) are never
    // echoed back.
    let value = match error.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(v)) if !argument.is_hide_env_values_set() => format!(" {v:?}"),
        _ => String::new(),
    };
    let cause = first.rsplit_once("': ").map_or(first, |(_, cause)| cause);
    format!("invalid{value} for {} (--{long}): {cause}", env.to_string_lossy())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses flags only, ignoring the test process's environment.
    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        Config::from_args(std::iter::once("positions-api").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_match_the_spec() {
        let c = parse(&[]).expect("defaults are valid");
        assert!(c.cache_enabled);
        assert_eq!((c.ttl_sec, c.max_wallets, c.max_stale_sec, c.stale_if_error_sec), (900, 2000, 3600, 86_400));
        assert_eq!(c.source, SourceSpec::Sample);
        assert_eq!(c.bind, "127.0.0.1:8080".parse().expect("address"));
        assert_eq!((c.refresh_concurrency, c.refresh_timeout_ms, c.refresh_queue_timeout_ms), (32, 5000, 1000));
        assert_eq!(c.admin_token, None);
        assert_eq!(c.redis_health_interval(), Duration::from_secs(1));
        assert!(c.fleet_coordination, "FLEET_COORDINATION default");
        assert_eq!(c.fleet_lease(), Duration::from_secs(6), "the load timeout plus a second");
        assert_eq!(parse(&["--fleet-lease-ms", "5001"]).unwrap().fleet_lease(), Duration::from_millis(5001));
        assert_eq!(c.redis_max_value_bytes, 1 << 20);
        assert_eq!((c.max_connections, c.admin_bind), (10_000, None));
        assert!(!c.access_log, "the access log is off by default");
        assert!(parse(&["--access-log", "true"]).expect("valid").access_log);
        assert_eq!((c.idle_timeout(), c.shutdown_delay()), (Duration::from_secs(75), Duration::ZERO));
        assert!(c.idle_timeout() > Duration::from_secs(60), "above AWS ALB's default idle timeout");
        let eager = c.eager_refresh().expect("eager refresh is on by default");
        assert_eq!((eager.at_pct, eager.min_reads), (90, 10), "one expected read in the last tenth of the TTL");
        let eager = parse(&["--eager-refresh-at-pct", "80"]).unwrap().eager_refresh().unwrap();
        assert_eq!(eager.min_reads, 5);
        let eager = parse(&["--eager-refresh-at-pct", "70", "--eager-refresh-min-reads", "2"]).unwrap();
        assert_eq!(eager.eager_refresh().unwrap().min_reads, 2);
        assert!(parse(&["--eager-refresh", "false"]).unwrap().eager_refresh().is_none());
        assert!(c.priority.is_empty());
        let warm = c.warm();
        assert_eq!((warm.keys, warm.snapshot_path, warm.timeout), (2000, None, Duration::from_secs(5)));
    }

    #[test]
    fn a_priority_file_is_read_at_start_up_and_a_bad_one_named() {
        let dir = std::env::temp_dir().join(format!("positions-api-priority-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let good = dir.join("good");
        std::fs::write(&good, "0xab* high 60\n").expect("written");
        let c = parse(&["--priority-file", good.to_str().expect("utf-8")]).expect("valid");
        assert!(c.priority.rule("0xabcd").is_some_and(|r| r.high));
        let bad = dir.join("bad");
        std::fs::write(&bad, "0xab* high 60\n0xcd* urgent\n").expect("written");
        for path in [bad, dir.join("missing")] {
            let Err(ConfigError::Invalid(line)) = parse(&["--priority-file", path.to_str().expect("utf-8")]) else {
                panic!("{} was accepted", path.display())
            };
            assert!(line.contains("POSITION_PRIORITY_FILE") && !line.contains('\n'), "{line}");
        }
        let Err(ConfigError::Invalid(line)) =
            parse(&["--priority-file", good.to_str().expect("utf-8"), "--ttl-sec", "30"])
        else {
            panic!("a TTL above the cache's was accepted")
        };
        assert!(line.contains("line 1"), "{line}");
        std::fs::remove_dir_all(&dir).expect("cleaned up");
    }

    #[test]
    fn bind_addresses_take_host_names_and_ipv6() {
        let bind = |value: &str| parse(&["--bind", value]).map(|c| c.bind);
        assert_eq!(bind("localhost:8080"), Ok("127.0.0.1:8080".parse().expect("address")));
        assert_eq!(bind("[::]:8080"), Ok("[::]:8080".parse().expect("address")));
        assert_eq!(bind("0.0.0.0:0"), Ok("0.0.0.0:0".parse().expect("address")));
        let admin = parse(&["--admin-bind", "localhost:9090"]).map(|c| c.admin_bind);
        assert_eq!(admin, Ok(Some("127.0.0.1:9090".parse().expect("address"))));
        for bad in ["localhost", "localhost:http", ":8080", "localhost:70000", "no-such-host.invalid:8080"] {
            let Err(ConfigError::Invalid(line)) = bind(bad) else { panic!("{bad} was accepted") };
            assert!(line.contains("POSITIONS_BIND") && !line.contains('\n'), "{bad}: {line}");
        }
    }

    #[test]
    fn sources_parse() {
        assert_eq!(parse(&["--source", "ledger:/data/l"]).expect("valid").source, SourceSpec::Ledger("/data/l".into()));
        assert_eq!(
            parse(&["--source", "http://up:9000"]).expect("valid").source,
            SourceSpec::Http("http://up:9000".into())
        );
        assert!(parse(&["--cache-enabled", "no"]).is_ok_and(|c| !c.cache_enabled));
    }

    #[test]
    fn an_upstream_urls_credentials_stay_out_of_debug_output() {
        let c = parse(&["--source", "https://app:hunter2@analytics:9000/api"]).expect("valid");
        let debug = format!("{c:?}");
        assert!(debug.contains("https://analytics:9000/api") && !debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn a_ca_file_is_checked_at_start_up() {
        let dir = std::env::temp_dir().join(format!("positions-api-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let not_pem = dir.join("not.pem");
        std::fs::write(&not_pem, "hello").expect("written");
        let missing = dir.join("missing.pem");
        for path in [&not_pem, &missing] {
            let Err(ConfigError::Invalid(line)) = parse(&["--source-ca-file", path.to_str().expect("utf-8")]) else {
                panic!("{} was accepted", path.display())
            };
            assert!(line.contains("POSITIONS_SOURCE_CA_FILE") && !line.contains('\n'), "{line}");
        }
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, params.self_signed(&key).expect("signed").pem()).expect("written");
        let c = parse(&["--source-ca-file", ca.to_str().expect("utf-8")]).expect("valid");
        assert_eq!(c.source_ca_file.map(|b| b.len()), Some(1));
        std::fs::remove_dir_all(&dir).expect("cleaned up");
    }

    #[test]
    fn a_bad_value_is_one_line_naming_the_variable() {
        let cases: [(&[&str], &str); 21] = [
            (&["--redis-mode", "sentinel"], "REDIS_MODE"),
            (&["--warm-keys=-1"], "POSITION_WARM_KEYS"),
            (&["--warm-timeout-ms", "x"], "POSITION_WARM_TIMEOUT_MS"),
            (&["--eager-refresh", "often"], "POSITION_CACHE_EAGER_REFRESH"),
            (&["--eager-refresh-at-pct", "100"], "POSITION_CACHE_EAGER_REFRESH_AT_PCT"),
            (&["--eager-refresh-at-pct", "0"], "POSITION_CACHE_EAGER_REFRESH_AT_PCT"),
            (&["--eager-refresh-min-reads", "0"], "POSITION_CACHE_EAGER_REFRESH_MIN_READS"),
            (&["--fleet-lease-ms", "5000"], "FLEET_LEASE_MS"),
            (&["--fleet-coordination", "sometimes"], "FLEET_COORDINATION"),
            (&["--ttl-sec", "abc"], "POSITION_CACHE_TTL_SEC"),
            (&["--ttl-sec", "0"], "POSITION_CACHE_TTL_SEC"),
            (&["--max=-5"], "POSITION_CACHE_MAX"),
            (&["--source", "ftp://x"], "POSITIONS_SOURCE"),
            (&["--bind", "nowhere"], "POSITIONS_BIND"),
            (&["--cache-enabled", "maybe"], "POSITION_CACHE_ENABLED"),
            (&["--refresh-queue-timeout-ms", "0"], "REFRESH_QUEUE_TIMEOUT_MS"),
            (&["--refresh-queue-timeout-ms", "3600001"], "REFRESH_QUEUE_TIMEOUT_MS"),
            (&["--redis-health-interval-ms", "0"], "REDIS_HEALTH_INTERVAL_MS"),
            (&["--redis-max-value-bytes", "10"], "REDIS_MAX_VALUE_BYTES"),
            (&["--max-connections", "0"], "HTTP_MAX_CONNECTIONS"),
            (&["--admin-bind", "nowhere"], "ADMIN_BIND"),
        ];
        for (args, var) in cases {
            let Err(ConfigError::Invalid(line)) = parse(args) else { panic!("{args:?} was accepted") };
            assert!(line.contains(var), "{args:?}: {line}");
            assert!(!line.contains('\n'), "{args:?}: more than one line: {line}");
        }
        let Err(ConfigError::Invalid(line)) = parse(&["--redis-url", "http://:hunter2@host"]) else {
            panic!("accepted")
        };
        assert!(line.contains("REDIS_URL") && !line.contains("hunter2"), "a secret was echoed: {line}");
        let Err(ConfigError::Invalid(line)) = parse(&["--source", "ftp://app:hunter2@host"]) else {
            panic!("accepted")
        };
        assert!(line.contains("POSITIONS_SOURCE") && !line.contains("hunter2"), "a secret was echoed: {line}");
        let Err(ConfigError::Invalid(line)) = parse(&["--ttl-sec", "abc"]) else { panic!("accepted") };
        assert_eq!(line, r#"invalid "abc" for POSITION_CACHE_TTL_SEC (--ttl-sec): invalid digit found in string"#);
    }
}
