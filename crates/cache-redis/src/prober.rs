//! The background prober: the task that makes the breaker's trial `PING`
//! when a pause ends, so that recovery after an outage does not wait for
//! user traffic.
//!
//! Why a task rather than only trying again in the next operation: a
//! replica with little or no traffic would otherwise keep its breaker open
//! and report Redis down (in `/health` and the `up` gauge) long after Redis
//! came back, and the user whose request happened to be the trial would pay
//! its timeout. The task costs nothing while the breaker is closed: it
//! sleeps on the breaker's change notifications and sends no traffic. The
//! lazy path remains (an operation that finds the pause over is the trial),
//! so the breaker recovers even where no task could be spawned.
//!
//! A worker with explicit state, a shutdown signal and a drop guard: the
//! [`Guard`] lives in the tier's clones, and dropping the last one stops the
//! task at its next await (at most one op timeout later, if it is in the
//! middle of a `PING`).

use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::breaker::BreakerState;
use crate::tier::Shared;

/// Stops the prober when dropped.
#[derive(Debug)]
pub(crate) struct Guard {
    shutdown: watch::Sender<bool>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

/// Spawns the prober for `shared` on the current tokio runtime; `None`
/// outside one.
pub(crate) fn start(shared: &Arc<Shared>) -> Option<Guard> {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::debug!("no tokio runtime: redis recovery will be probed by the next operation only");
        return None;
    };
    let (shutdown, stop) = watch::channel(false);
    let prober = Prober { changes: shared.breaker.subscribe(), shared: Arc::clone(shared), stop };
    runtime.spawn(prober.run());
    Some(Guard { shutdown })
}

struct Prober {
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    changes: watch::Receiver<BreakerState>,
}

impl Prober {
    async fn run(mut self) {
        // One PING at start, so that whether Redis answers is known (to
        // `is_up`, the observer and the breaker) before the first request;
        // unless a request has got there first, whose outcome tells the
        // same. A PING sent then would queue behind that request on the one
        // shared connection and finish after it, racing whatever its caller
        // does next (in the tests: freezing the server).
        if self.shared.connection.is_untouched() {
            tokio::select! {
                _ = self.shared.ping() => {}
                () = stopped(&mut self.stop) => return,
            }
        }
        loop {
            // Mark the current state seen before reading it, so that a
            // change between the read and the wait below wakes the wait.
            self.changes.borrow_and_update();
            let due = self.shared.breaker.reopens_at();
            tokio::select! {
                () = stopped(&mut self.stop) => return,
                changed = self.changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                () = sleep_until(due) => {
                    // The breaker lets this PING through as its trial; if an
                    // operation got there first, it is refused, and the next
                    // change of state wakes this loop again.
                    tokio::select! {
                        _ = self.shared.ping() => {}
                        () = stopped(&mut self.stop) => return,
                    }
                }
            }
        }
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the guard is gone, which is a stop too.
    let _ = stop.wait_for(|&stop| stop).await;
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
