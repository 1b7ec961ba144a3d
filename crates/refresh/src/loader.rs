//! The [`Loader`] handle: starting flights, joining them, and counting them.
//!
//! All flights live in one map from key to flight, behind one mutex that is
//! never held across an `await` or while calling out (to tokio's spawner,
//! the observer or the load function). The map is the single source of
//! truth for "is this key loading": a foreground load and a background
//! refresh of one key look it up the same way and therefore share one
//! flight, whichever came first.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;
use tokio::task::AbortHandle;

use crate::config::Config;
use crate::error::LoadError;
use crate::flight::{self, Delivery};
use crate::log_throttle::LogThrottle;
use crate::observer::{FlightKind, Observer, Silent};
use crate::queue::{Place, Priority, Queue};

/// The load function, boxed once so the loader has one concrete type.
type BoxedLoad<K, V, E> = Box<dyn Fn(K) -> Pin<Box<dyn Future<Output = Result<V, E>> + Send>> + Send + Sync>;

/// Loads values for keys from a slow source: one call per key at a time,
/// shared by every caller, within a global concurrency limit, a queue
/// bounded in length and in time, and a timeout.
///
/// Cloning is cheap and every clone drives the same flights. The load
/// function is where values get stored: the loader hands results to its
/// callers and keeps nothing.
///
/// `load` and `refresh` spawn tasks, so they must be called within a Tokio
/// runtime. Dropping every clone does not stop flights already running
/// (they hold what they need); [`shutdown`](Self::shutdown) does.
///
/// # Examples
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::{Arc, Mutex};
/// use refresh::{Config, Loader, Refresh};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = Arc::new(Mutex::new(HashMap::new()));
/// let store = Arc::clone(&cache);
/// let loader = Loader::new(Config::default(), move |wallet: String| {
///     let store = Arc::clone(&store);
///     async move {
///         let positions = vec![format!("positions of {wallet}")];
///         store.lock().unwrap().insert(wallet, positions.clone());
///         Ok::<_, std::io::Error>(positions)
///     }
/// });
///
/// // A stale entry is refreshed in the background; a user asking meanwhile
/// // joins that refresh instead of loading a second time.
/// assert_eq!(loader.refresh("0xabc".to_owned()), Refresh::Started);
/// assert_eq!(loader.refresh("0xabc".to_owned()), Refresh::AlreadyRunning);
/// assert_eq!(loader.active_refreshes(), 1);
/// let positions = loader.load("0xabc".to_owned()).await.unwrap();
/// assert_eq!(positions, ["positions of 0xabc"]);
/// assert_eq!(cache.lock().unwrap()["0xabc"], positions);
/// assert_eq!(loader.active_refreshes(), 0);
/// # }
/// ```
pub struct Loader<K, V, E> {
    pub(crate) shared: Arc<Shared<K, V, E>>,
}

/// What every clone of a [`Loader`] and every flight task share.
pub(crate) struct Shared<K, V, E> {
    pub(crate) config: Config,
    pub(crate) load: BoxedLoad<K, V, E>,
    pub(crate) observer: Arc<dyn Observer>,
    pub(crate) queue: Queue,
    /// Throttles the flights' failure warnings.
    pub(crate) log: LogThrottle,
    state: Mutex<State<K, V, E>>,
}

/// The loader's mutable state, all behind one lock.
pub(crate) struct State<K, V, E> {
    pub(crate) phase: Phase,
    /// Flights started and not yet delivered, by key.
    pub(crate) flights: HashMap<K, Flight<V, E>>,
    /// How many of `flights` are background refreshes.
    background: usize,
    /// Tells a flight from a later one of the same key.
    next_id: u64,
}

/// Where the loader is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Starting and joining flights.
    Open,
    /// Refusing new calls, waiting for running flights to finish.
    Draining,
    /// Refusing new calls; flights still running have been aborted.
    Closed,
}

/// A flight as the map knows it.
pub(crate) struct Flight<V, E> {
    id: u64,
    kind: FlightKind,
    /// Its class in the line, raised when a higher one joins.
    class: Priority,
    /// Its number in the line while it waits there, for [`Queue::raise`].
    seq: Option<u64>,
    /// Cloned by every caller who joins.
    pub(crate) result: watch::Receiver<Delivery<V, E>>,
    /// Set just after the task is spawned; see [`Shared::admit`].
    pub(crate) task: Option<AbortHandle>,
}

/// What [`Loader::refresh`] did.
///
/// # Examples
///
/// ```
/// use refresh::{Config, Loader, Refresh, SkipReason};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let loader = Loader::new(Config::default(), |wallet: u64| async move { Ok::<_, String>(wallet * 2) });
/// assert_eq!(loader.refresh(1), Refresh::Started);
/// assert_eq!(loader.refresh(1), Refresh::AlreadyRunning);
/// loader.shutdown(Duration::from_secs(5)).await;
/// assert_eq!(loader.refresh(1), Refresh::Skipped(SkipReason::ShuttingDown));
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refresh {
    /// A new background flight started for the key.
    Started,
    /// A flight for the key, foreground or background, is already running;
    /// the refresh is that flight.
    AlreadyRunning,
    /// Nothing started, and nothing was running.
    Skipped(SkipReason),
}

/// Why [`Loader::refresh`] started nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// The queue already holds
    /// [`max_queued_background`](Config::max_queued_background) loads, so
    /// the refresh gives way to users' loads. A later read of the stale
    /// value will ask again.
    Busy,
    /// The loader is shutting down.
    ShuttingDown,
}

/// The result of trying to start or join a flight.
enum Admission<V, E> {
    Started(watch::Receiver<Delivery<V, E>>),
    Joined(watch::Receiver<Delivery<V, E>>),
    Full,
    ShuttingDown,
}

impl<K, V, E> Loader<K, V, E>
where
    K: Hash + Eq + Clone + Send + Sync + fmt::Debug + 'static,
    V: Clone + Send + Sync + 'static,
    E: fmt::Display + Send + Sync + 'static,
{
    /// A loader that calls `load` to get the value of a key.
    ///
    /// `load` should also store the value where readers will find it: the
    /// loader keeps nothing, and a flight runs to its end even when nobody
    /// waits for it any more. When `load` fails, times out or panics,
    /// nothing is stored, so whatever was stored before stays.
    pub fn new<F, Fut>(config: Config, load: F) -> Self
    where
        F: Fn(K) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
    {
        Self::with_observer(config, Arc::new(Silent), load)
    }

    /// Like [`new`](Self::new), with an observer that hears every event.
    pub fn with_observer<F, Fut>(config: Config, observer: Arc<dyn Observer>, load: F) -> Self
    where
        F: Fn(K) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
    {
        let load: BoxedLoad<K, V, E> = Box::new(move |key| Box::pin(load(key)));
        let state = State { phase: Phase::Open, flights: HashMap::new(), background: 0, next_id: 0 };
        let shared = Shared {
            queue: Queue::new(&config),
            config,
            load,
            observer,
            log: LogThrottle::default(),
            state: Mutex::new(state),
        };
        Self { shared: Arc::new(shared) }
    }

    /// Loads the value of `key`, sharing the work with every other caller
    /// loading or refreshing the same key at the same time.
    ///
    /// The flight is joined, or started, when `load` is called, not when
    /// the returned future is first polled. Dropping the future does not
    /// cancel the flight: it still runs to its end and its value is still
    /// stored by the load function.
    ///
    /// # Errors
    ///
    /// Every caller of one flight gets a clone of the same error:
    /// [`LoadError::Source`] when the load function returned an error,
    /// [`LoadError::Timeout`] when it ran past [`Config::timeout`],
    /// [`LoadError::Panicked`] when it panicked, and
    /// [`LoadError::QueueTimeout`] when the flight got no permit within
    /// [`Config::queue_timeout`], so that nobody waits longer than
    /// [`Config::longest_wait`]. A call that would start a
    /// flight fails at once with [`LoadError::Overloaded`] when
    /// [`Config::max_queued`] flights already wait for a permit (joining a
    /// running flight is never refused). After [`shutdown`](Self::shutdown)
    /// begins, every call fails with [`LoadError::ShuttingDown`], as do
    /// callers of a flight aborted at the drain deadline.
    ///
    /// # Panics
    ///
    /// If it has to start a flight outside a Tokio runtime.
    pub fn load(&self, key: K) -> impl Future<Output = Result<V, LoadError<E>>> + Send + 'static + use<K, V, E> {
        let admission = self.shared.admit(key, FlightKind::Foreground, Priority::Waiting, u16::MAX);
        if matches!(admission, Admission::Full) {
            self.shared.observer.overloaded();
        }
        async move {
            match admission {
                Admission::Started(result) | Admission::Joined(result) => wait(result).await,
                Admission::Full => Err(LoadError::Overloaded),
                Admission::ShuttingDown => Err(LoadError::ShuttingDown),
            }
        }
    }

    /// Starts a background load of `key` unless one, foreground or
    /// background, is already running, and returns at once without waiting
    /// for it.
    ///
    /// A refresh gives way to users' loads: it is skipped when the queue is
    /// half full (see [`Config::max_queued_background`]), and dropped if it
    /// waits longer than [`Config::queue_timeout`] for a permit. Its errors
    /// are logged (throttled) and reported to the observer; nobody else
    /// hears of them.
    ///
    /// # Panics
    ///
    /// If it has to start a flight outside a Tokio runtime.
    pub fn refresh(&self, key: K) -> Refresh {
        self.refresh_with(key, Priority::Stale, 0)
    }

    /// Like [`refresh`](Self::refresh), in the line's `class` and, within
    /// it, `rank` (higher goes first: the key's demand, or `u16::MAX` for a
    /// key that must go to the front of its class). A flight already
    /// running or waiting for the key is joined, and moved up if `class`
    /// is higher than its own.
    ///
    /// # Panics
    ///
    /// If it has to start a flight outside a Tokio runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// use refresh::{Config, Loader, Priority, Refresh};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let loader = Loader::new(Config::default(), |k: u64| async move { Ok::<_, String>(k) });
    /// assert_eq!(loader.refresh_with(1, Priority::Eager, 10), Refresh::Started);
    /// assert_eq!(loader.refresh_with(1, Priority::Stale, 10), Refresh::AlreadyRunning);
    /// # }
    /// ```
    pub fn refresh_with(&self, key: K, class: Priority, rank: u16) -> Refresh {
        let refresh = match self.shared.admit(key, FlightKind::Background, class, rank) {
            Admission::Started(_) => Refresh::Started,
            Admission::Joined(_) => Refresh::AlreadyRunning,
            Admission::Full => Refresh::Skipped(SkipReason::Busy),
            Admission::ShuttingDown => Refresh::Skipped(SkipReason::ShuttingDown),
        };
        self.shared.observer.refresh_requested(refresh);
        refresh
    }
}

impl<K, V, E> Loader<K, V, E>
where
    K: Hash + Eq,
{
    /// Flights running or waiting for a permit now, background refreshes
    /// included.
    pub fn in_flight(&self) -> usize {
        self.shared.lock().flights.len()
    }

    /// Background refreshes running or waiting for a permit now: the
    /// service's `active_refresh_tasks`.
    pub fn active_refreshes(&self) -> usize {
        self.shared.lock().background
    }

    /// Flights waiting for a permit now.
    pub fn queued(&self) -> usize {
        self.shared.queue.waiting()
    }

    /// The limits this loader was built with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }
}

impl<K, V, E> Shared<K, V, E>
where
    K: Hash + Eq,
{
    /// The state, even if a thread panicked while holding it: every
    /// critical section leaves the state consistent before anything in it
    /// can panic, so poisoning carries no information here.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State<K, V, E>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a finished flight out of the map, if it is still there.
    pub(crate) fn forget(&self, key: &K, id: u64) {
        let mut state = self.lock();
        let removed = match state.flights.get(key) {
            Some(flight) if flight.id == id => state.flights.remove(key),
            _ => None,
        };
        if removed.as_ref().is_some_and(|flight| flight.kind == FlightKind::Background) {
            state.background -= 1;
        }
        drop(state);
        // Dropped outside the lock: it holds a handle to a task.
        drop(removed);
    }
}

impl<K, V, E> Shared<K, V, E>
where
    K: Hash + Eq + Clone + Send + Sync + fmt::Debug + 'static,
    V: Clone + Send + Sync + 'static,
    E: fmt::Display + Send + Sync + 'static,
{
    /// Joins the flight of `key`, or starts one if the queue admits it.
    fn admit(self: &Arc<Self>, key: K, kind: FlightKind, class: Priority, rank: u16) -> Admission<V, E> {
        let mut state = self.lock();
        if state.phase != Phase::Open {
            return Admission::ShuttingDown;
        }
        if let Some(flight) = state.flights.get_mut(&key) {
            if class < flight.class {
                flight.class = class;
                if let Some(seq) = flight.seq {
                    self.queue.raise(seq, class, rank);
                }
            }
            return Admission::Joined(flight.result.clone());
        }
        let Some(place) = self.queue.admit(kind, class, rank) else {
            drop(state);
            self.observer.dropped(class);
            tracing::debug!(key = ?key, kind = kind.as_str(), "load not started: too many loads waiting");
            return Admission::Full;
        };
        let seq = place.seq();
        if matches!(place, Place::Waiting(_)) {
            self.observer.queued(class);
        }
        let id = state.next_id;
        state.next_id += 1;
        let (sender, result) = watch::channel(None);
        let flight_key = key.clone();
        state.flights.insert(key, Flight { id, kind, class, seq, result: result.clone(), task: None });
        if kind == FlightKind::Background {
            state.background += 1;
        }
        drop(state);

        // Spawned outside the lock: a runtime that is shutting down drops
        // the task at once, and the flight's guard takes the lock to free
        // the key. The task cannot deliver before it is entered above, and
        // if it has already delivered, its entry is gone and there is no
        // handle to set.
        let task = flight::spawn(Arc::clone(self), flight_key.clone(), id, (kind, class), place, sender);
        let mut state = self.lock();
        let aborted = state.phase == Phase::Closed;
        if let Some(flight) = state.flights.get_mut(&flight_key).filter(|flight| flight.id == id) {
            flight.task = Some(task.clone());
        }
        drop(state);
        if aborted {
            // Shutdown aborted the running flights while this one was being
            // spawned, before its handle was there to abort.
            task.abort();
        }
        Admission::Started(result)
    }
}

/// Waits for a flight's result.
async fn wait<V: Clone, E>(mut result: watch::Receiver<Delivery<V, E>>) -> Result<V, LoadError<E>> {
    match result.wait_for(Option::is_some).await {
        Ok(delivered) => (*delivered).clone().unwrap_or(Err(LoadError::ShuttingDown)),
        // The flight's guard delivers before dropping the sender, so this
        // would take a guard that never ran its destructor; even then, the
        // caller gets an answer rather than a hang.
        Err(_closed) => Err(LoadError::ShuttingDown),
    }
}

impl<K, V, E> Clone for Loader<K, V, E> {
    fn clone(&self) -> Self {
        Self { shared: Arc::clone(&self.shared) }
    }
}

impl<K, V, E> fmt::Debug for Loader<K, V, E>
where
    K: Hash + Eq,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        let (phase, in_flight, background) = (state.phase, state.flights.len(), state.background);
        drop(state);
        f.debug_struct("Loader")
            .field("config", &self.shared.config)
            .field("phase", &phase)
            .field("in_flight", &in_flight)
            .field("active_refreshes", &background)
            .field("queued", &self.shared.queue.waiting())
            .field("observer", &self.shared.observer)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn counting_loader() -> (Loader<u32, u32, String>, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&calls);
        let loader = Loader::new(Config::default(), move |key: u32| {
            let call = counter.fetch_add(1, Ordering::SeqCst) + 1;
            async move { Ok(key * 100 + u32::try_from(call).unwrap()) }
        });
        (loader, calls)
    }

    #[tokio::test(start_paused = true)]
    async fn the_key_is_free_before_the_waiters_wake() {
        let (loader, calls) = counting_loader();
        let first = loader.load(7).await.unwrap();
        // Straight from the first flight's wake-up, with no chance for
        // anything else to run: the key must already be free.
        assert_eq!(loader.in_flight(), 0);
        let second = loader.load(7).await.unwrap();
        assert_eq!((first, second), (701, 702));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_flight_is_joined_when_load_is_called_not_when_polled() {
        let (loader, calls) = counting_loader();
        let first = loader.load(1);
        let second = loader.load(1);
        assert_eq!(loader.in_flight(), 1);
        assert_eq!((second.await.unwrap(), first.await.unwrap()), (101, 101));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refresh_counts_as_active_until_delivered() {
        let (loader, _calls) = counting_loader();
        assert_eq!(loader.refresh(3), Refresh::Started);
        assert_eq!((loader.active_refreshes(), loader.in_flight()), (1, 1));
        assert_eq!(loader.load(3).await.unwrap(), 301);
        assert_eq!((loader.active_refreshes(), loader.in_flight()), (0, 0));
        let debug = format!("{loader:?}");
        assert!(debug.contains("phase: Open") && debug.contains("active_refreshes: 0"), "{debug}");
    }
}
