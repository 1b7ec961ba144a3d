//! The async runtime's gauges: worker threads, tasks alive, and tasks
//! waiting in the global queue.
//!
//! This crate depends on no async runtime: the service reads the figures
//! from its runtime just before a scrape and sets them here. Until then
//! the gauges are left out, so a program that never sets them shows none.

use prometheus_client::registry::Registry;

use crate::tier2::ConfiguredGauge;

/// The runtime gauges: `tokio_runtime_workers`,
/// `tokio_runtime_alive_tasks` and `tokio_runtime_global_queue_depth`.
///
/// Reached as [`Metrics::runtime`](crate::Metrics::runtime).
///
/// # Examples
///
/// ```
/// let metrics = telemetry::Metrics::new();
/// metrics.runtime.set(2, 17, 0);
/// let text = metrics.encode();
/// assert!(text.contains("\ntokio_runtime_workers 2\n"));
/// assert!(text.contains("\ntokio_runtime_alive_tasks 17\n"));
/// ```
#[derive(Debug, Clone)]
pub struct RuntimeMetrics {
    workers: ConfiguredGauge,
    alive_tasks: ConfiguredGauge,
    global_queue_depth: ConfiguredGauge,
}

impl RuntimeMetrics {
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            workers: ConfiguredGauge::default(),
            alive_tasks: ConfiguredGauge::default(),
            global_queue_depth: ConfiguredGauge::default(),
        };
        registry.register(
            "tokio_runtime_workers",
            "Worker threads of the async runtime that serves requests",
            metrics.workers.clone(),
        );
        registry.register(
            "tokio_runtime_alive_tasks",
            "Tasks alive in the async runtime: connections, loads, background work",
            metrics.alive_tasks.clone(),
        );
        registry.register(
            "tokio_runtime_global_queue_depth",
            "Tasks waiting in the async runtime's global queue for a worker",
            metrics.global_queue_depth.clone(),
        );
        metrics
    }

    /// Sets the three gauges, as read from the runtime now.
    pub fn set(&self, workers: usize, alive_tasks: usize, global_queue_depth: usize) {
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.workers.set(gauge(workers));
        self.alive_tasks.set(gauge(alive_tasks));
        self.global_queue_depth.set(gauge(global_queue_depth));
    }
}
