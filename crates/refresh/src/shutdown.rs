//! Stopping a loader: refuse new work, let running flights drain until a
//! deadline, abort the rest.
//!
//! Draining matters because a flight that finishes stores its value: a
//! replica going away should leave behind the loads it had paid for. The
//! deadline matters because a hung source must not hold up a deploy.

use std::fmt;
use std::hash::Hash;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::LoadError;
use crate::loader::{Loader, Phase};

/// What became of the flights that were running when
/// [`Loader::shutdown`] began.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// Flights that ended on their own before the deadline, whatever their
    /// outcome; their values, if any, were stored.
    pub finished: usize,
    /// Flights aborted at the deadline; their callers got
    /// [`LoadError::ShuttingDown`].
    pub abandoned: usize,
}

impl<K, V, E> Loader<K, V, E>
where
    K: Hash + Eq + Clone + Send + Sync + fmt::Debug + 'static,
    V: Clone + Send + Sync + 'static,
    E: fmt::Display + Send + Sync + 'static,
{
    /// Stops the loader: every new [`load`](Self::load) fails with
    /// [`LoadError::ShuttingDown`] and every new [`refresh`](Self::refresh)
    /// is skipped, in every clone. Flights already running, or waiting for a
    /// permit, may finish until `deadline` from now; those still running
    /// then are aborted and their callers get `ShuttingDown`.
    ///
    /// It returns once every flight has ended, so no load function is
    /// running afterwards. (An aborted flight ends at its next `.await`; a
    /// load function that blocks its thread forever would hold this up, as
    /// it would hold up the runtime.) Calling it again reports only the
    /// flights still running.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use refresh::{Config, DrainReport, Loader, LoadError};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let loader = Loader::new(Config::default(), |seconds: u64| async move {
    ///     tokio::time::sleep(Duration::from_secs(seconds)).await;
    ///     Ok::<_, String>(seconds)
    /// });
    /// let quick = loader.load(1);
    /// let slow = loader.load(4); // within the 5 s timeout, past the deadline
    /// let report = loader.shutdown(Duration::from_secs(2)).await;
    /// assert_eq!(report, DrainReport { finished: 1, abandoned: 1 });
    /// assert_eq!(quick.await.unwrap(), 1);
    /// assert!(matches!(slow.await, Err(LoadError::ShuttingDown)));
    /// assert!(matches!(loader.load(1).await, Err(LoadError::ShuttingDown)));
    /// # }
    /// ```
    pub async fn shutdown(&self, deadline: Duration) -> DrainReport {
        let began = Instant::now();
        let draining: Vec<_> = {
            let mut state = self.shared.lock();
            if state.phase == Phase::Open {
                state.phase = Phase::Draining;
            }
            state.flights.values().map(|flight| flight.result.clone()).collect()
        };
        if !draining.is_empty() {
            tracing::info!(
                flights = draining.len(),
                deadline_s = deadline.as_secs_f64(),
                "draining loads before shutdown"
            );
        }

        // Flights run on their own tasks, so waiting for them one after
        // another costs no more than waiting for the slowest.
        let mut report = DrainReport::default();
        let mut overdue = Vec::new();
        for mut result in draining {
            let left = deadline.saturating_sub(began.elapsed());
            // A flight that has delivered counts as finished even once the
            // deadline has passed: `timeout` polls before it checks the time.
            let delivered = tokio::time::timeout(left, result.wait_for(Option::is_some)).await.is_ok();
            if delivered {
                report.finished += 1;
            } else {
                overdue.push(result);
            }
        }

        let tasks: Vec<_> = {
            let mut state = self.shared.lock();
            state.phase = Phase::Closed;
            state.flights.values().filter_map(|flight| flight.task.clone()).collect()
        };
        for task in &tasks {
            task.abort();
        }
        for mut result in overdue {
            // An overdue flight may still have finished on its own between
            // the deadline and its abort; its result tells which.
            let abandoned = match result.wait_for(Option::is_some).await {
                Ok(delivered) => matches!(*delivered, Some(Err(LoadError::ShuttingDown))),
                Err(_closed) => true,
            };
            if abandoned {
                report.abandoned += 1;
            } else {
                report.finished += 1;
            }
        }
        if report.abandoned > 0 {
            tracing::warn!(finished = report.finished, abandoned = report.abandoned, "loads abandoned at shutdown");
        } else if report.finished > 0 {
            tracing::info!(finished = report.finished, "loads drained");
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[tokio::test(start_paused = true)]
    async fn shutting_down_an_idle_loader_reports_nothing_and_closes_it() {
        let loader = Loader::new(Config::default(), |key: u8| async move { Ok::<_, String>(key) });
        let began = Instant::now();
        assert_eq!(loader.shutdown(Duration::from_secs(30)).await, DrainReport::default());
        assert_eq!(began.elapsed(), Duration::ZERO, "nothing to wait for");
        assert!(format!("{loader:?}").contains("phase: Closed"));
        assert_eq!(loader.shutdown(Duration::from_secs(30)).await, DrainReport::default(), "a second call is harmless");
    }
}
