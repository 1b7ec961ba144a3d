//! The background prober: the task that keeps the tier's view of Redis
//! current without traffic. It pings Redis every health interval unless an
//! operation got an answer since the last look, and makes the breaker's
//! trial `PING` while the breaker is open.
//!
//! In cluster mode the probe is a `PING` to every primary, made every
//! interval whatever the traffic: an answer from one node says nothing of
//! the others, so only the probe marks the cluster up (any failed
//! operation marks it down). So `is_up` is false while some slots have no
//! reachable primary, and true again within an interval of a failover.
//!
//! Why a task rather than only what operations report: a replica whose
//! requests are all answered from memory sends Redis nothing, so without a
//! probe it would report Redis up (in `/health` and the `up` gauge) long
//! after Redis died, and down long after it came back; and the user whose
//! request happened to be the breaker's trial would pay its timeout. Under
//! traffic the probe costs nothing: an answered operation says the same,
//! and the `PING` is skipped. The lazy path remains (an operation that
//! finds the pause over is the trial), so the breaker recovers even where
//! no task could be spawned.
//!
//! A worker with explicit state, a shutdown signal and a drop guard: the
//! [`Guard`] lives in the tier's clones, and dropping the last one stops the
//! task at its next await (at most one op timeout later, if it is in the
//! middle of a `PING`).

use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::breaker::BreakerState;
use crate::config::Mode;
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
        let untouched = self.shared.connection.is_untouched();
        tokio::select! {
            () = self.shared.connect_cluster() => {}
            () = stopped(&mut self.stop) => return,
        }
        if untouched {
            tokio::select! {
                _ = self.shared.ping() => {}
                () = stopped(&mut self.stop) => return,
            }
            self.shared.take_answered();
        }
        let interval = self.shared.health_interval;
        let mut next_probe = Instant::now() + interval;
        loop {
            // Mark the current state seen before reading it, so that a
            // change between the read and the wait below wakes the wait.
            self.changes.borrow_and_update();
            let trial_due = self.shared.breaker.reopens_at().filter(|&at| at < next_probe);
            tokio::select! {
                () = stopped(&mut self.stop) => return,
                changed = self.changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                () = tokio::time::sleep_until(trial_due.unwrap_or(next_probe)) => {
                    if trial_due.is_none() {
                        next_probe = Instant::now() + interval;
                    }
                    tokio::select! {
                        () = check(&self.shared, trial_due.is_some()) => {}
                        () = stopped(&mut self.stop) => return,
                    }
                }
            }
        }
    }
}

/// The breaker's trial when its pause ended (`trial`), or the periodic
/// probe. A trial refused because an operation got there first, or a probe
/// refused because a trial is under way, is fine: the outcome of that one
/// says the same.
async fn check(shared: &Shared, trial: bool) {
    shared.connect_cluster().await;
    if trial {
        shared.trial().await;
    } else if !shared.take_answered() || shared.mode == Mode::Cluster {
        let _ = shared.probe().await;
        // The probe's own answer is not traffic.
        shared.take_answered();
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the guard is gone, which is a stop too.
    let _ = stop.wait_for(|&stop| stop).await;
}
