//! Why a Redis tier operation gave no answer: the crate's one error type.
//!
//! Every variant is something the service turns into "behave as a miss"
//! (or "skip the store"); none of them is meant for a user. Messages never
//! contain the Redis password: causes that come from the Redis client or
//! the pool are scrubbed before they are stored here, and URLs are
//! redacted. Deciding what an error means for an HTTP response belongs to
//! the service, not here.
//!
//! Two kinds of Redis failure are told apart. An *outage* (no connection,
//! a timeout, a server that is loading or has lost its primary) means Redis
//! cannot help anyone for now: it counts towards the circuit breaker and
//! marks Redis down. An *error reply* to one command (`OOM` under
//! `maxmemory` with `noeviction`, `READONLY` on a replica, `WRONGTYPE` on a
//! key of another type) means Redis answered and refused that command
//! only: it fails that operation, is counted by [`ErrorReply`] kind, and
//! leaves the breaker and the up flag alone, so reads that still work keep
//! working.

use std::time::Duration;

use cache_core::glob::PatternError;

use crate::envelope::{DecodeError, EncodeError};
use crate::op::Op;

/// Why a [`RedisTier`](crate::RedisTier) operation failed.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use cache_redis::{Error, Op};
///
/// let error = Error::Timeout(Op::Get, Duration::from_millis(100));
/// assert_eq!(error.to_string(), "redis get timed out after 100ms");
/// assert!(error.is_unavailability());
///
/// // A bad URL is refused at construction, with the password hidden.
/// let config = cache_redis::Config::new("redis://:hunter2@host:port");
/// let error = cache_redis::RedisTier::new(config).unwrap_err();
/// assert!(matches!(error, Error::InvalidUrl { .. }));
/// assert!(!error.to_string().contains("hunter2"), "{error}");
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The circuit breaker is open (or a trial request is already under
    /// way): Redis was not called, and the operation failed at once.
    #[error("redis is unavailable: circuit breaker open")]
    Unavailable,
    /// The operation (getting a connection included) took longer than the
    /// op timeout, carried here; it was abandoned. The operation named is
    /// the step that was under way: [`Op::Connect`] while waiting for a
    /// connection.
    #[error("redis {0} timed out after {1:?}")]
    Timeout(Op, Duration),
    /// Redis, or the connection to it, failed: refused, reset, a reply
    /// that is not what the command returns, or an error reply that says
    /// the server cannot serve anyone now (`LOADING`, `BUSY`, `MASTERDOWN`,
    /// `CLUSTERDOWN`, `TRYAGAIN`, `NOAUTH`). `op` is [`Op::Connect`] when no
    /// connection could be made.
    #[error("redis {op} failed: {cause}")]
    Redis {
        /// The step that failed.
        op: Op,
        /// The client's message, with the password scrubbed out.
        cause: String,
    },
    /// Redis answered this one command with an error reply of `kind` (out
    /// of memory, read-only, wrong type…): the operation failed, but Redis
    /// is up, and the breaker is not told (see the module docs).
    #[error("redis refused {op}: {cause}")]
    Reply {
        /// The operation refused.
        op: Op,
        /// What kind of refusal.
        kind: ErrorReply,
        /// Redis's message, with the password scrubbed out.
        cause: String,
    },
    /// The connection pool itself failed (it was closed, or misbuilt),
    /// rather than Redis; the cause is scrubbed like [`Error::Redis`]'s.
    #[error("redis connection pool failed: {0}")]
    Pool(String),
    /// The value could not be turned into bytes; nothing was stored.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// Stored bytes are not a value this version can read. The tier's
    /// [`get`](crate::RedisTier::get) never returns this (it reports such a
    /// value as a miss); [`envelope::decode`](crate::envelope::decode)
    /// does.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The Redis URL was refused at construction.
    #[error("invalid redis url {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given, password redacted.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A pattern deletion on a Redis Cluster walked some primaries to the
    /// end but not all of them (one was failing, or failed midway, or the
    /// slots moved during the walk): `removed` entries went, and some that
    /// match may be left. Running it again finishes the job.
    #[error(
        "redis pattern deletion was partial: {removed} removed, {unreached} of {primaries} primaries not walked to the end: {cause}"
    )]
    Partial {
        /// How many entries it removed.
        removed: u64,
        /// How many primaries it could not walk to the end (0 if all were
        /// walked but the slots moved meanwhile).
        unreached: usize,
        /// How many primaries the cluster had when it started.
        primaries: usize,
        /// What went wrong, scrubbed like [`Error::Redis`]'s.
        cause: String,
    },
    /// A deletion pattern is malformed; nothing was deleted.
    #[error(transparent)]
    InvalidPattern(#[from] PatternError),
}

impl Error {
    /// Whether this error says Redis could not be used (breaker open,
    /// timeout, connection or server failure), as opposed to a problem with
    /// the request itself (a value that does not encode, a bad pattern or
    /// URL) or a refusal of this one command by a Redis that is up
    /// ([`Error::Reply`]). The service counts the first kind as "Redis
    /// down".
    pub fn is_unavailability(&self) -> bool {
        matches!(
            self,
            Self::Unavailable | Self::Timeout(..) | Self::Redis { .. } | Self::Pool(_) | Self::Partial { .. }
        )
    }
}

/// The kind of an error reply from Redis, as [`Error::Reply`] carries it
/// and the [`Observer`](crate::Observer) hears it: a closed set, fit for a
/// metric label.
///
/// # Examples
///
/// ```
/// use cache_redis::ErrorReply;
///
/// assert_eq!(ErrorReply::from_code("OOM"), ErrorReply::Oom);
/// assert_eq!(ErrorReply::from_code("NOPERM"), ErrorReply::Other);
/// assert_eq!(ErrorReply::WrongType.as_str(), "wrongtype");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorReply {
    /// `OOM`: Redis is at `maxmemory` and may not evict (`noeviction`), so
    /// it refuses writes. Reads still work.
    Oom,
    /// `READONLY`: the server is a replica (after a failover, say) and
    /// refuses writes. Reads still work.
    ReadOnly,
    /// `WRONGTYPE`: the key holds another type of value (something else
    /// wrote it); a store replaces it.
    WrongType,
    /// Any other error reply (`ERR …`, `NOPERM`, …).
    Other,
}

impl ErrorReply {
    /// Every kind, in declaration order.
    pub const ALL: [Self; 4] = [Self::Oom, Self::ReadOnly, Self::WrongType, Self::Other];

    /// The kind of an error reply whose code (its first word) is `code`.
    pub fn from_code(code: &str) -> Self {
        match code {
            "OOM" => Self::Oom,
            "READONLY" => Self::ReadOnly,
            "WRONGTYPE" => Self::WrongType,
            _ => Self::Other,
        }
    }

    /// The kind in lower case, fit for a metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Oom => "oom",
            Self::ReadOnly => "readonly",
            Self::WrongType => "wrongtype",
            Self::Other => "other",
        }
    }
}

impl std::fmt::Display for ErrorReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error-reply codes that say the server cannot serve anyone for now,
/// rather than refusing one command: they count as an outage.
pub(crate) const OUTAGE_CODES: [&str; 6] = ["LOADING", "BUSY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "NOAUTH"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lower_case_without_a_trailing_period() {
        let errors = [
            Error::Unavailable,
            Error::Timeout(Op::Connect, Duration::from_millis(250)),
            Error::Redis { op: Op::Set, cause: "Connection refused (os error 111)".to_owned() },
            Error::Pool("pool has been closed".to_owned()),
            Error::Reply { op: Op::Set, kind: ErrorReply::Oom, cause: "OOM: command not allowed".to_owned() },
            Error::Encode(EncodeError::FetchedAtOutOfRange),
            Error::Decode(DecodeError::UnknownVersion(9)),
            Error::InvalidUrl { url: "redis://:***@host:x".to_owned(), reason: "invalid port".to_owned() },
            Error::InvalidPattern(cache_core::glob::Pattern::new("[ab").unwrap_err()),
        ];
        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                "redis is unavailable: circuit breaker open",
                "redis connect timed out after 250ms",
                "redis set failed: Connection refused (os error 111)",
                "redis connection pool failed: pool has been closed",
                "redis refused set: OOM: command not allowed",
                "cannot encode value: fetched_at is before 1970 or after 2554",
                "cannot decode value: unknown envelope version 9",
                "invalid redis url \"redis://:***@host:x\": invalid port",
                "invalid pattern \"[ab\": a [ is never closed",
            ]
        );
        for message in &messages {
            assert!(message.starts_with(|c: char| c.is_lowercase()) && !message.ends_with('.'), "{message}");
        }
    }

    #[test]
    fn unavailability_is_told_apart_from_bad_requests() {
        assert!(Error::Unavailable.is_unavailability());
        assert!(Error::Pool(String::new()).is_unavailability());
        assert!(!Error::Decode(DecodeError::Truncated).is_unavailability());
        assert!(!Error::Encode(EncodeError::FetchedAtOutOfRange).is_unavailability());
        let refused = Error::Reply { op: Op::Set, kind: ErrorReply::ReadOnly, cause: String::new() };
        assert!(!refused.is_unavailability(), "redis answered: it is up");
    }

    #[test]
    fn reply_kinds_are_distinct_lower_case_words() {
        let labels: Vec<&str> = ErrorReply::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(labels, ["oom", "readonly", "wrongtype", "other"]);
        for kind in ErrorReply::ALL {
            assert_eq!(ErrorReply::ALL[kind as usize], kind, "ALL is in declaration order");
        }
    }
}
