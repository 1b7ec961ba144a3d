//! One flight: the spawned task that waits for a permit (for at most the
//! queue timeout), calls the load function under a timeout, and delivers
//! the result to every waiter.
//!
//! The flight runs as its own task so that it finishes, and the load
//! function gets to store its value, even when every caller has gone away.
//! Its [`FlightGuard`] makes two promises that hold however the task ends
//! (finished, timed out, panicked, aborted at shutdown, or dropped with the
//! runtime): the key is freed for the next flight, and every waiter is
//! woken with a result.
//!
//! The order of those two steps is what makes joining safe. The key leaves
//! the map first, under the loader's lock; the result is sent after. A
//! caller that found the key in the map holds a receiver that is bound to
//! get the result; a caller that comes after the removal starts a fresh
//! flight rather than joining a finished one. Nobody can subscribe to a
//! flight that has already sent its result and gone.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::error::LoadError;
use crate::loader::Shared;
use crate::observer::{FlightKind, Outcome};
use crate::queue::{NoPermit, Place, Priority};

/// What a flight's waiters watch: nothing yet, then its result.
pub(crate) type Delivery<V, E> = Option<Result<V, LoadError<E>>>;

/// Starts the task of a flight already entered in the loader's map.
pub(crate) fn spawn<K, V, E>(
    shared: Arc<Shared<K, V, E>>,
    key: K,
    id: u64,
    (kind, class): (FlightKind, Priority),
    place: Place,
    sender: watch::Sender<Delivery<V, E>>,
) -> AbortHandle
where
    K: Hash + Eq + Clone + Send + Sync + fmt::Debug + 'static,
    V: Clone + Send + Sync + 'static,
    E: fmt::Display + Send + Sync + 'static,
{
    // The guard is built before the task exists, so even a task that never
    // runs (spawned on a runtime that is shutting down) frees its key.
    let guard = FlightGuard { shared, key, id, kind, sender: Some(sender), started: None };
    tokio::spawn(run(guard, place, class)).abort_handle()
}

/// The body of a flight's task.
async fn run<K, V, E>(mut guard: FlightGuard<K, V, E>, place: Place, class: Priority)
where
    K: Hash + Eq + Clone + Send + Sync + fmt::Debug + 'static,
    V: Clone + Send + Sync + 'static,
    E: fmt::Display + Send + Sync + 'static,
{
    let shared = Arc::clone(&guard.shared);
    let patience = shared.config.queue_timeout;
    let permit = match place.into_permit(patience).await {
        Ok((permit, waited)) => {
            shared.observer.started(permit.class(), waited);
            permit
        }
        Err(NoPermit::TimedOut) => {
            shared.observer.queue_timed_out(guard.kind);
            shared.observer.dropped(class);
            let kind = guard.kind.as_str();
            if let Some(suppressed) = shared.log.allow(&format!("{kind} queue timeout")) {
                tracing::warn!(key = ?guard.key, kind, waited_s = patience.as_secs_f64(), suppressed, "load gave up waiting for a permit");
            }
            guard.finish(Err(LoadError::QueueTimeout(patience)));
            return;
        }
        Err(NoPermit::Closed) => {
            guard.finish(Err(LoadError::ShuttingDown));
            return;
        }
    };
    let started = Instant::now();
    guard.started = Some(started);
    shared.observer.load_started(guard.kind);
    let result = call(&shared, guard.key.clone()).await;
    // The next flight in line may start while this one tells its waiters.
    drop(permit);
    let elapsed = started.elapsed();
    let outcome = Outcome::of(&result);
    shared.observer.load_finished(guard.kind, outcome, elapsed);
    let kind = guard.kind.as_str();
    match &result {
        Ok(_) => tracing::debug!(key = ?guard.key, kind, elapsed_s = elapsed.as_secs_f64(), "load finished"),
        // A dead source fails every load, and a line per load would bury
        // the log, so failures are throttled. By kind and outcome, not by
        // the error's text: a source's error usually names the key (the
        // service's name the wallet's URL), which would make every key a
        // cause of its own. The line shows the latest error in full.
        Err(error) => {
            if let Some(suppressed) = shared.log.allow(&format!("{kind} {}", outcome.as_str())) {
                if matches!(error, LoadError::Panicked(_)) {
                    tracing::error!(key = ?guard.key, kind, elapsed_s = elapsed.as_secs_f64(), %error, suppressed, "load failed");
                } else {
                    tracing::warn!(key = ?guard.key, kind, elapsed_s = elapsed.as_secs_f64(), %error, suppressed, "load failed");
                }
            }
        }
    }
    guard.finish(result);
}

/// Calls the load function once, turning its error, its panic or its
/// slowness into a [`LoadError`].
async fn call<K, V, E>(shared: &Shared<K, V, E>, key: K) -> Result<V, LoadError<E>> {
    let timeout = shared.config.timeout;
    // The function may panic before it even returns its future.
    let future = match panic::catch_unwind(AssertUnwindSafe(|| (shared.load)(key))) {
        Ok(future) => future,
        Err(payload) => return Err(LoadError::Panicked(panic_message(payload.as_ref()))),
    };
    match tokio::time::timeout(timeout, CatchUnwind(future)).await {
        Ok(Ok(Ok(value))) => Ok(value),
        Ok(Ok(Err(error))) => Err(LoadError::Source(Arc::new(error))),
        Ok(Err(message)) => Err(LoadError::Panicked(message)),
        Err(_elapsed) => Err(LoadError::Timeout(timeout)),
    }
}

/// Frees the flight's key and wakes its waiters, on every path out of the
/// flight.
pub(crate) struct FlightGuard<K, V, E>
where
    K: Hash + Eq + fmt::Debug,
{
    shared: Arc<Shared<K, V, E>>,
    key: K,
    id: u64,
    kind: FlightKind,
    /// `None` once the result is delivered.
    sender: Option<watch::Sender<Delivery<V, E>>>,
    /// When the load function was called, if it was.
    started: Option<Instant>,
}

impl<K, V, E> FlightGuard<K, V, E>
where
    K: Hash + Eq + fmt::Debug,
{
    fn finish(mut self, result: Result<V, LoadError<E>>) {
        self.deliver(result);
    }

    fn deliver(&mut self, result: Result<V, LoadError<E>>) {
        let Some(sender) = self.sender.take() else { return };
        // First out of the map, then the result: see the module docs.
        self.shared.forget(&self.key, self.id);
        sender.send_replace(Some(result));
    }
}

impl<K, V, E> Drop for FlightGuard<K, V, E>
where
    K: Hash + Eq + fmt::Debug,
{
    fn drop(&mut self) {
        if self.sender.is_none() {
            return;
        }
        // Only an abort at the shutdown deadline, or the runtime going away,
        // drops a flight before it delivers.
        if let Some(started) = self.started {
            self.shared.observer.load_finished(self.kind, Outcome::Abandoned, started.elapsed());
        }
        let kind = self.kind.as_str();
        if let Some(suppressed) = self.shared.log.allow(&format!("{kind} abandoned")) {
            tracing::warn!(key = ?self.key, kind, suppressed, "load abandoned at shutdown");
        }
        self.deliver(Err(LoadError::ShuttingDown));
    }
}

impl<K, V, E> fmt::Debug for FlightGuard<K, V, E>
where
    K: Hash + Eq + fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlightGuard")
            .field("key", &self.key)
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("delivered", &self.sender.is_none())
            .finish_non_exhaustive()
    }
}

/// Turns a panic while polling the inner future into an error carrying the
/// panic's message.
///
/// futures-util has this as `FutureExt::catch_unwind`; a dozen lines here
/// spare the dependency. The inner future is `Unpin` (it is boxed), so no
/// pin projection is needed, and it is never polled again after a panic.
struct CatchUnwind<F>(F);

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match panic::catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(payload) => Poll::Ready(Err(panic_message(payload.as_ref()))),
        }
    }
}

/// The message a panic was raised with, when it was raised with one.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "panic payload is not a string".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages_are_recovered_from_either_string_type() {
        let caught = |f: fn()| panic_message(panic::catch_unwind(f).unwrap_err().as_ref());
        assert_eq!(caught(|| panic!("static message")), "static message");
        assert_eq!(caught(|| panic!("formatted {}", 42)), "formatted 42");
        assert_eq!(caught(|| panic::panic_any(7_u8)), "panic payload is not a string");
    }

    #[tokio::test(start_paused = true)]
    async fn catch_unwind_passes_values_and_catches_panics() {
        let fine: Pin<Box<dyn Future<Output = u8> + Send>> = Box::pin(async { 1 });
        assert_eq!(CatchUnwind(fine).await, Ok(1));
        let broken: Pin<Box<dyn Future<Output = u8> + Send>> = Box::pin(async {
            tokio::task::yield_now().await;
            panic!("after a yield")
        });
        assert_eq!(CatchUnwind(broken).await, Err("after a yield".to_owned()));
    }
}
