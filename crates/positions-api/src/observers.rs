//! Adapters from the libraries' event hooks to the service's metrics:
//! `refresh`'s loader and `cache-redis`'s tier report through small traits
//! of their own, and these turn the events into `telemetry` counters, so
//! that neither library depends on a metrics crate.
//! (`cache-core`'s adapter lives in `telemetry` itself.)

use std::sync::Arc;
use std::time::Duration;

use refresh::{FlightKind, LoadError, Outcome, Priority, Refresh};
use telemetry::{BreakerState, FleetMessage, Metrics, RedisErrorReply, RedisOp, StoreRefusal};

use crate::source::SourceError;
use crate::wallet::Wallet;

/// Counts the loader's events.
#[derive(Debug)]
pub(crate) struct LoaderMetrics {
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) source: telemetry::Source,
}

impl refresh::Observer for LoaderMetrics {
    fn refresh_requested(&self, refresh: Refresh) {
        if refresh == Refresh::Started {
            self.metrics.cache.record_refresh_started();
        }
    }

    fn load_finished(&self, _kind: FlightKind, outcome: Outcome, elapsed: Duration) {
        let outcome = match outcome {
            Outcome::Ok => telemetry::Outcome::Ok,
            Outcome::Timeout => telemetry::Outcome::Timeout,
            Outcome::Panicked => telemetry::Outcome::Panicked,
            Outcome::Error | Outcome::Abandoned => telemetry::Outcome::Error,
        };
        if outcome != telemetry::Outcome::Ok {
            self.metrics.cache.record_load_failed();
        }
        self.metrics.source.observe(self.source, outcome, elapsed);
    }

    fn overloaded(&self) {
        self.metrics.cache.record_overload_rejection();
    }

    fn queue_timed_out(&self, kind: FlightKind) {
        let kind = match kind {
            FlightKind::Foreground => telemetry::LoadKind::Foreground,
            FlightKind::Background => telemetry::LoadKind::Background,
        };
        self.metrics.cache.record_queue_timeout(kind);
    }

    fn queued(&self, class: Priority) {
        self.metrics.cache.record_load_queued(load_class(class));
    }

    fn started(&self, class: Priority, waited: Duration) {
        self.metrics.cache.record_load_started(load_class(class), waited);
    }

    fn dropped(&self, class: Priority) {
        self.metrics.cache.record_load_dropped(load_class(class));
    }
}

/// The loader's class as the metrics' label.
const fn load_class(class: Priority) -> telemetry::LoadClass {
    match class {
        Priority::Waiting => telemetry::LoadClass::Waiting,
        Priority::Stale => telemetry::LoadClass::Stale,
        Priority::Eager => telemetry::LoadClass::Eager,
        Priority::WarmUp => telemetry::LoadClass::WarmUp,
    }
}

/// Counts the Redis tier's events, and logs its state changes: an operator
/// wants to see in the log when Redis went away and when it came back.
#[derive(Debug)]
pub(crate) struct RedisMetrics {
    pub(crate) metrics: Arc<Metrics>,
}

impl cache_redis::Observer for RedisMetrics {
    fn hit(&self) {
        self.metrics.tier2.record_hit();
    }

    fn miss(&self) {
        self.metrics.tier2.record_miss();
    }

    fn error(&self, op: cache_redis::Op) {
        let op = match op {
            cache_redis::Op::Get => RedisOp::Get,
            cache_redis::Op::Set => RedisOp::Set,
            cache_redis::Op::Delete => RedisOp::Delete,
            cache_redis::Op::Scan => RedisOp::Scan,
            cache_redis::Op::Connect => RedisOp::Connect,
            cache_redis::Op::Ping => RedisOp::Ping,
        };
        self.metrics.tier2.record_error(op);
    }

    fn error_reply(&self, _op: cache_redis::Op, kind: cache_redis::ErrorReply) {
        let kind = match kind {
            cache_redis::ErrorReply::Oom => RedisErrorReply::Oom,
            cache_redis::ErrorReply::ReadOnly => RedisErrorReply::ReadOnly,
            cache_redis::ErrorReply::WrongType => RedisErrorReply::WrongType,
            cache_redis::ErrorReply::Other => RedisErrorReply::Other,
        };
        self.metrics.tier2.record_error_reply(kind);
    }

    fn corrupt_value(&self) {
        self.metrics.tier2.record_corrupt_value();
    }

    fn oversized_value(&self) {
        self.metrics.tier2.record_oversized_value();
    }

    fn breaker_changed(&self, state: cache_redis::BreakerState) {
        let state = match state {
            cache_redis::BreakerState::Closed => BreakerState::Closed,
            cache_redis::BreakerState::HalfOpen => BreakerState::HalfOpen,
            cache_redis::BreakerState::Open => BreakerState::Open,
        };
        self.metrics.tier2.set_breaker(state);
    }

    fn up_changed(&self, up: bool) {
        if up {
            tracing::info!("redis is reachable; using tier 2");
        } else {
            tracing::warn!("redis is unreachable; serving from memory and the source until it is back");
        }
        self.metrics.tier2.set_up(up);
    }

    fn refused_older(&self) {
        self.metrics.fleet.record_refused(StoreRefusal::Older);
    }

    fn stopped_by_tombstone(&self) {
        self.metrics.fleet.record_refused(StoreRefusal::Deleted);
    }

    fn bus_sent(&self, kind: cache_redis::bus::Kind) {
        self.metrics.fleet.record_sent(fleet_message(kind));
    }

    fn bus_received(&self, kind: cache_redis::bus::Kind) {
        self.metrics.fleet.record_received(fleet_message(kind));
    }

    fn bus_undecodable(&self) {
        self.metrics.fleet.record_undecodable();
    }

    fn bus_subscribed_changed(&self, subscribed: bool) {
        self.metrics.fleet.set_subscribed(subscribed);
    }
}

fn fleet_message(kind: cache_redis::bus::Kind) -> FleetMessage {
    match kind {
        cache_redis::bus::Kind::Deleted => FleetMessage::Deleted,
        cache_redis::bus::Kind::PatternDeleted => FleetMessage::PatternDeleted,
        cache_redis::bus::Kind::Stored => FleetMessage::Stored,
    }
}

/// Counts how reads were answered, and logs the fail-safe answers: one
/// "serving stale data" line per failure class per interval, since during
/// an outage every request for a cached wallet would log one.
#[derive(Debug)]
pub(crate) struct ReadMetrics {
    metrics: Arc<Metrics>,
    stale_if_error_log: refresh::LogThrottle,
}

impl ReadMetrics {
    pub(crate) fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics, stale_if_error_log: refresh::LogThrottle::default() }
    }
}

impl cache_swr::Observer<Wallet, SourceError> for ReadMetrics {
    fn lookup(&self, _wallet: &Wallet, lookup: cache_swr::Lookup) {
        self.metrics.cache.record_lookup(match lookup {
            cache_swr::Lookup::Hit => telemetry::Lookup::Hit,
            cache_swr::Lookup::Stale => telemetry::Lookup::Stale,
            cache_swr::Lookup::Miss => telemetry::Lookup::Miss,
        });
    }

    fn eager_refresh(&self, _wallet: &Wallet) {
        self.metrics.cache.record_eager_refresh();
    }

    fn fail_safe(&self, wallet: &Wallet, error: &LoadError<SourceError>, age: Duration) {
        if let Some(suppressed) = self.stale_if_error_log.allow(failure_class(error)) {
            tracing::warn!(
                %wallet,
                %error,
                age_s = age.as_secs_f64(),
                suppressed,
                request_id = crate::request_context::RequestContext::current_id(),
                "source failed; serving stale data"
            );
        }
    }
}

/// A failed load's class, as a log throttle's cause: few and fixed, unlike
/// the errors' texts, which name wallets.
fn failure_class(error: &LoadError<SourceError>) -> &'static str {
    match error {
        LoadError::Source(_) => "source error",
        LoadError::Timeout(_) => "source timeout",
        LoadError::QueueTimeout(_) | LoadError::Overloaded => "overloaded",
        LoadError::Panicked(_) => "panicked",
        LoadError::ShuttingDown => "shutting down",
    }
}
