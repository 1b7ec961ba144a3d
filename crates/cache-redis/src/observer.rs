//! Hearing what the Redis tier does, so a metrics exporter can count it
//! without this crate depending on one.
//!
//! The service adapts this trait to its Prometheus families (tier-2 hits,
//! misses, errors by operation, undecodable values, up/down, breaker
//! state). Every method does nothing by default, so an implementation picks
//! what it counts.

use std::fmt;

use crate::breaker::BreakerState;
use crate::bus::Kind;
use crate::error::ErrorReply;
use crate::op::Op;

/// Hears a [`RedisTier`](crate::RedisTier)'s events as they happen.
///
/// Methods are called from whichever task caused the event, never under a
/// lock; they should be quick and must not block or call back into the
/// tier.
///
/// What is heard, per operation:
///
/// - a [`get`](crate::RedisTier::get) that answers is heard as one
///   [`hit`](Self::hit) or one [`miss`](Self::miss); a value that does not
///   decode is heard as [`corrupt_value`](Self::corrupt_value) *and* a miss,
///   one larger than the configured limit as
///   [`oversized_value`](Self::oversized_value) (once per round trip, which
///   concurrent gets of one id share) *and* a miss (once per get);
/// - an operation that fails is heard once as [`error`](Self::error), with
///   the step that failed ([`Op::Connect`] when no connection was had),
///   except that one refused by the open breaker is heard as
///   [`rejected`](Self::rejected) instead (it did not reach Redis), and a
///   malformed deletion pattern is heard as nothing (it is the caller's
///   mistake, reported to the caller); an error reply from Redis is heard
///   as [`error`](Self::error) *and* [`error_reply`](Self::error_reply)
///   with its kind (concurrent gets of one id share one round trip, so one
///   failure is heard once however many callers shared it);
/// - a [`set_if_newer`](crate::RedisTier::set_if_newer) that writes
///   nothing is heard as [`refused_older`](Self::refused_older) or
///   [`stopped_by_tombstone`](Self::stopped_by_tombstone) (it is not an
///   error);
/// - [`up_changed`](Self::up_changed) and
///   [`breaker_changed`](Self::breaker_changed) are heard on transitions
///   only.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
/// use cache_redis::{Config, Observer, Op, RedisTier};
///
/// #[derive(Debug, Default)]
/// struct Counts {
///     errors: AtomicU64,
///     up: AtomicBool,
/// }
///
/// impl Observer for Counts {
///     fn error(&self, _op: Op) {
///         self.errors.fetch_add(1, Ordering::Relaxed);
///     }
///     fn up_changed(&self, up: bool) {
///         self.up.store(up, Ordering::Relaxed);
///     }
/// }
///
/// let counts = Arc::new(Counts::default());
/// let tier = RedisTier::with_observer(Config::new("redis://127.0.0.1:6379"), counts.clone()).unwrap();
/// # drop(tier);
/// ```
pub trait Observer: Send + Sync + fmt::Debug {
    /// A `get` found a value that decoded.
    fn hit(&self) {}

    /// A `get` found no value, or one that did not decode.
    fn miss(&self) {}

    /// An operation failed at `op` (timeout, connection or server error, or
    /// a value that would not encode).
    fn error(&self, _op: Op) {}

    /// An operation was refused at once by the circuit breaker, without
    /// calling Redis.
    fn rejected(&self, _op: Op) {}

    /// Redis answered `op` with an error reply of `kind` (also heard as
    /// [`error`](Self::error)): the operation failed, but Redis is up, and
    /// neither the breaker nor [`up_changed`](Self::up_changed) heard of
    /// it.
    fn error_reply(&self, _op: Op, _kind: ErrorReply) {}

    /// A `get` found a value larger than
    /// [`Config::max_value_bytes`](crate::Config::max_value_bytes); it was
    /// reported as a miss without being read whole.
    fn oversized_value(&self) {}

    /// A `get` found bytes that are not a value this version can read (see
    /// [`envelope`](crate::envelope)); it was reported as a miss.
    fn corrupt_value(&self) {}

    /// A [`set_if_newer`](crate::RedisTier::set_if_newer) wrote nothing:
    /// Redis held an entry fetched at the same time or later.
    fn refused_older(&self) {}

    /// A [`set_if_newer`](crate::RedisTier::set_if_newer) wrote nothing:
    /// a tombstone recorded a deletion at or after the load's start.
    fn stopped_by_tombstone(&self) {}

    /// The circuit breaker moved to `state`.
    fn breaker_changed(&self, _state: BreakerState) {}

    /// Redis became reachable (`true`: a round trip succeeded after one
    /// failed, or for the first time) or unreachable (`false`: a round trip
    /// failed after one succeeded, or for the first time).
    fn up_changed(&self, _up: bool) {}

    /// A [`Bus`](crate::bus::Bus) published a message of `kind` (Redis
    /// took it; a failed publish is heard as an [`error`](Self::error) of
    /// [`Op::Set`]).
    fn bus_sent(&self, _kind: Kind) {}

    /// A bus's subscriber got a message of `kind` from another instance
    /// and handed it on.
    fn bus_received(&self, _kind: Kind) {}

    /// A bus's subscriber got bytes on the channel that are not a message
    /// this version reads (garbage, or another format version), and
    /// ignored them.
    fn bus_undecodable(&self) {}

    /// A bus's subscription came up (`true`) or went down (`false`).
    fn bus_subscribed_changed(&self, _subscribed: bool) {}
}

/// The observer of a tier built without one.
#[derive(Debug)]
pub(crate) struct Silent;

impl Observer for Silent {}
