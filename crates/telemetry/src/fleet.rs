//! The fleet's families: what replicas sharing one Redis tell each other,
//! and how their per-wallet leases and conditional writes went.
//!
//! Every counter exists at zero from the start (with and without Redis: a
//! single replica simply never moves them); the subscription gauge appears
//! when the service starts a fleet channel, like the Redis gauges.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::tier2::ConfiguredGauge;

/// What a fleet message says happened, as the `kind` label.
///
/// # Examples
///
/// ```
/// use telemetry::FleetMessage;
///
/// assert_eq!(FleetMessage::PatternDeleted.as_str(), "pattern_deleted");
/// assert_eq!(FleetMessage::ALL.len(), 3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FleetMessage {
    /// A wallet was deleted.
    Deleted,
    /// The wallets a glob pattern matches were deleted.
    PatternDeleted,
    /// A newer entry for a wallet was stored.
    Stored,
}

impl FleetMessage {
    /// Every kind, in declaration order.
    pub const ALL: [Self; 3] = [Self::Deleted, Self::PatternDeleted, Self::Stored];

    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Deleted => "deleted",
            Self::PatternDeleted => "pattern_deleted",
            Self::Stored => "stored",
        }
    }
}

label_value_by_as_str!(FleetMessage);

/// What happened to a per-wallet load lease, as the `event` label.
///
/// # Examples
///
/// ```
/// use telemetry::LeaseEvent;
///
/// assert_eq!(LeaseEvent::TakenOver.as_str(), "taken_over");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeaseEvent {
    /// This replica took a free lease and loads the wallet.
    Acquired,
    /// Another replica held it: this one waits for that replica's result.
    Contended,
    /// This replica took a lease it had found held, after the holder
    /// released it without a usable result or died and the lease expired.
    TakenOver,
}

impl LeaseEvent {
    /// Every event, in declaration order.
    pub const ALL: [Self; 3] = [Self::Acquired, Self::Contended, Self::TakenOver];

    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Acquired => "acquired",
            Self::Contended => "contended",
            Self::TakenOver => "taken_over",
        }
    }
}

label_value_by_as_str!(LeaseEvent);

/// Why a store did not happen, as the `reason` label.
///
/// # Examples
///
/// ```
/// use telemetry::StoreRefusal;
///
/// assert_eq!(StoreRefusal::Deleted.as_str(), "deleted");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreRefusal {
    /// Redis held an entry fetched at the same time or later.
    Older,
    /// A tombstone recorded a deletion at or after the load's start.
    Deleted,
}

impl StoreRefusal {
    /// Every reason, in declaration order.
    pub const ALL: [Self; 2] = [Self::Older, Self::Deleted];

    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Older => "older",
            Self::Deleted => "deleted",
        }
    }
}

label_value_by_as_str!(StoreRefusal);

/// The fleet's families.
///
/// Reached as [`Metrics::fleet`](crate::Metrics::fleet). Clones share the
/// same series.
///
/// # Examples
///
/// ```
/// use telemetry::{FleetMessage, LeaseEvent, Metrics};
///
/// let metrics = Metrics::new();
/// metrics.fleet.record_sent(FleetMessage::Stored);
/// metrics.fleet.record_lease(LeaseEvent::Contended);
/// metrics.fleet.set_subscribed(true);
///
/// let text = metrics.encode();
/// assert!(text.contains("\nposition_cache_fleet_messages_sent_total{kind=\"stored\"} 1\n"));
/// assert!(text.contains("\nposition_cache_fleet_leases_total{event=\"contended\"} 1\n"));
/// assert!(text.contains("\nposition_cache_fleet_subscribed 1\n"));
/// ```
#[derive(Debug, Clone)]
pub struct FleetMetrics {
    sent: [Counter; FleetMessage::ALL.len()],
    received: [Counter; FleetMessage::ALL.len()],
    undecodable: Counter,
    subscribed: ConfiguredGauge,
    resubscriptions: Counter,
    revalidations: Counter,
    leases: [Counter; LeaseEvent::ALL.len()],
    adopted: Counter,
    refused: [Counter; StoreRefusal::ALL.len()],
    memory_stores_stopped: Counter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabels {
    kind: FleetMessage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EventLabels {
    event: LeaseEvent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabels {
    reason: StoreRefusal,
}

impl FleetMetrics {
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let sent_family = Family::<KindLabels, Counter>::default();
        let received_family = Family::<KindLabels, Counter>::default();
        let leases_family = Family::<EventLabels, Counter>::default();
        let refused_family = Family::<ReasonLabels, Counter>::default();
        let metrics = Self {
            sent: FleetMessage::ALL.map(|kind| sent_family.get_or_create_owned(&KindLabels { kind })),
            received: FleetMessage::ALL.map(|kind| received_family.get_or_create_owned(&KindLabels { kind })),
            undecodable: Counter::default(),
            subscribed: ConfiguredGauge::default(),
            resubscriptions: Counter::default(),
            revalidations: Counter::default(),
            leases: LeaseEvent::ALL.map(|event| leases_family.get_or_create_owned(&EventLabels { event })),
            adopted: Counter::default(),
            refused: StoreRefusal::ALL.map(|reason| refused_family.get_or_create_owned(&ReasonLabels { reason })),
            memory_stores_stopped: Counter::default(),
        };
        registry.register(
            "position_cache_fleet_messages_sent",
            "Fleet messages this replica published, by kind",
            sent_family,
        );
        registry.register(
            "position_cache_fleet_messages_received",
            "Fleet messages this replica heard from other replicas, by kind",
            received_family,
        );
        registry.register(
            "position_cache_fleet_messages_undecodable",
            "Bytes on the fleet channel that were not a message this version reads, ignored",
            metrics.undecodable.clone(),
        );
        registry.register(
            "position_cache_fleet_subscribed",
            "Whether the fleet channel's subscription is up: 1 up, 0 down (messages published meanwhile are lost to this replica); absent without fleet coordination",
            metrics.subscribed.clone(),
        );
        registry.register(
            "position_cache_fleet_resubscriptions",
            "Gaps in the fleet channel's subscription that ended: after each, memory entries fetched before it are revalidated",
            metrics.resubscriptions.clone(),
        );
        registry.register(
            "position_cache_fleet_revalidations",
            "Memory entries marked stale after a subscription gap, to be revalidated against Redis or the source",
            metrics.revalidations.clone(),
        );
        registry.register(
            "position_cache_fleet_leases",
            "Per-wallet load leases in Redis: acquired, found held by another replica (contended), or taken over after the holder let go or died",
            leases_family,
        );
        registry.register(
            "position_cache_fleet_adopted_loads",
            "Loads answered by a newer entry another replica had stored in Redis, instead of a source call",
            metrics.adopted.clone(),
        );
        registry.register(
            "position_cache_fleet_writes_refused",
            "Conditional Redis writes that stored nothing: Redis held a newer entry (older), or the wallet was deleted after the load started (deleted)",
            refused_family,
        );
        registry.register(
            "position_cache_fleet_memory_stores_stopped",
            "Loads whose result a deletion's tombstone kept out of this replica's memory tier (and out of Redis)",
            metrics.memory_stores_stopped.clone(),
        );
        metrics
    }

    /// Counts a message published.
    pub fn record_sent(&self, kind: FleetMessage) {
        self.sent[kind as usize].inc();
    }

    /// Counts a message heard from another replica.
    pub fn record_received(&self, kind: FleetMessage) {
        self.received[kind as usize].inc();
    }

    /// Counts bytes on the channel that were not a message.
    pub fn record_undecodable(&self) {
        self.undecodable.inc();
    }

    /// Sets whether the subscription is up. The gauge appears at the first
    /// call.
    pub fn set_subscribed(&self, subscribed: bool) {
        self.subscribed.set(i64::from(subscribed));
    }

    /// Counts the end of a subscription gap and the memory entries it made
    /// stale.
    pub fn record_resubscribed(&self, revalidations: u64) {
        self.resubscriptions.inc();
        self.revalidations.inc_by(revalidations);
    }

    /// Counts a lease event.
    pub fn record_lease(&self, event: LeaseEvent) {
        self.leases[event as usize].inc();
    }

    /// Counts a load answered by another replica's entry.
    pub fn record_adopted(&self) {
        self.adopted.inc();
    }

    /// Counts a conditional write that stored nothing.
    pub fn record_refused(&self, reason: StoreRefusal) {
        self.refused[reason as usize].inc();
    }

    /// Counts a load's result kept out of the memory tier by a tombstone.
    pub fn record_memory_store_stopped(&self) {
        self.memory_stores_stopped.inc();
    }
}

#[cfg(test)]
mod tests {
    use crate::Metrics;

    use super::*;

    #[test]
    fn every_labelled_series_exists_at_zero_and_the_gauge_waits_for_a_channel() {
        let text = Metrics::new().encode();
        for kind in FleetMessage::ALL {
            let kind = kind.as_str();
            assert!(text.contains(&format!("position_cache_fleet_messages_sent_total{{kind=\"{kind}\"}} 0\n")));
            assert!(text.contains(&format!("position_cache_fleet_messages_received_total{{kind=\"{kind}\"}} 0\n")));
        }
        for event in LeaseEvent::ALL {
            assert!(text.contains(&format!("position_cache_fleet_leases_total{{event=\"{}\"}} 0\n", event.as_str())));
        }
        for reason in StoreRefusal::ALL {
            let line = format!("position_cache_fleet_writes_refused_total{{reason=\"{}\"}} 0\n", reason.as_str());
            assert!(text.contains(&line));
        }
        assert!(!text.contains("position_cache_fleet_subscribed"), "absent until a channel starts");
    }

    #[test]
    fn each_event_moves_its_own_series() {
        let metrics = Metrics::new();
        metrics.fleet.record_received(FleetMessage::Deleted);
        metrics.fleet.record_refused(StoreRefusal::Older);
        metrics.fleet.record_memory_store_stopped();
        metrics.fleet.record_resubscribed(7);
        metrics.fleet.set_subscribed(false);
        let text = metrics.encode();
        for line in [
            "position_cache_fleet_messages_received_total{kind=\"deleted\"} 1",
            "position_cache_fleet_messages_received_total{kind=\"stored\"} 0",
            "position_cache_fleet_writes_refused_total{reason=\"older\"} 1",
            "position_cache_fleet_writes_refused_total{reason=\"deleted\"} 0",
            "position_cache_fleet_memory_stores_stopped_total 1",
            "position_cache_fleet_resubscriptions_total 1",
            "position_cache_fleet_revalidations_total 7",
            "position_cache_fleet_subscribed 0",
        ] {
            assert!(text.contains(&format!("\n{line}\n")), "{line}");
        }
    }
}
