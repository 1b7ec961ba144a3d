//! The loader's contract, checked from outside against a scripted fake
//! source: single flight, background refresh, limits, timeouts, panics,
//! cancellation, shutdown and the observer.
//!
//! Time is tokio's paused clock: a test never sleeps, and a source that
//! "takes" a while only moves virtual time. Tests wait for conditions by
//! yielding to the other tasks, a bounded number of times.

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use refresh::{Config, DrainReport, FlightKind, LoadError, Loader, Observer, Outcome, Refresh, SkipReason};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// What the fake source does on one call.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Stores and returns `"{key}#{call}"`.
    Answer,
    /// Waits for a permit of the gate, then answers.
    Gate,
    /// Waits this long (virtual time), then answers.
    Take(Duration),
    /// Returns an error.
    Fail,
    /// Panics inside its future.
    Panic,
    /// Panics in the load function itself, before making a future.
    PanicAtCall,
}

#[derive(Debug)]
struct SourceError(String);

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

type Plan = Box<dyn Fn(u32, usize) -> Step + Send + Sync>;

/// A slow source and the cache it fills, with counters a test can read.
struct Source {
    /// What call number `n` (from 1) for a key does.
    plan: Plan,
    calls: AtomicUsize,
    running: AtomicUsize,
    most_running: AtomicUsize,
    gate: Semaphore,
    stored: Mutex<HashMap<u32, String>>,
}

type TestLoader = Loader<u32, String, SourceError>;

impl Source {
    fn new(plan: impl Fn(u32, usize) -> Step + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Self {
            plan: Box::new(plan),
            calls: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            most_running: AtomicUsize::new(0),
            gate: Semaphore::new(0),
            stored: Mutex::new(HashMap::new()),
        })
    }

    fn always(step: Step) -> Arc<Self> {
        Self::new(move |_, _| step)
    }

    fn loader(self: &Arc<Self>, config: Config) -> TestLoader {
        self.observed_loader(config, Arc::new(Recorder::default()))
    }

    fn observed_loader(self: &Arc<Self>, config: Config, observer: Arc<dyn Observer>) -> TestLoader {
        let source = Arc::clone(self);
        Loader::with_observer(config, observer, move |key| {
            let call = source.calls.fetch_add(1, Ordering::SeqCst) + 1;
            let step = (source.plan)(key, call);
            assert!(!matches!(step, Step::PanicAtCall), "source broke before loading {key}");
            Arc::clone(&source).fetch(key, call, step)
        })
    }

    async fn fetch(self: Arc<Self>, key: u32, call: usize, step: Step) -> Result<String, SourceError> {
        let _running = Running::enter(&self);
        match step {
            Step::Answer | Step::PanicAtCall => {}
            Step::Gate => drop(self.gate.acquire().await.unwrap()),
            Step::Take(time) => tokio::time::sleep(time).await,
            Step::Fail => return Err(SourceError(format!("no positions for wallet {key}: upstream answered 500"))),
            Step::Panic => panic!("source crashed on wallet {key}"),
        }
        let value = format!("{key}#{call}");
        self.stored.lock().unwrap().insert(key, value.clone());
        Ok(value)
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn stored(&self, key: u32) -> Option<String> {
        self.stored.lock().unwrap().get(&key).cloned()
    }

    /// Lets `calls` gated calls through.
    fn open(&self, calls: usize) {
        self.gate.add_permits(calls);
    }
}

/// Counts a running call until it ends, however it ends.
struct Running(Arc<Source>);

impl Running {
    fn enter(source: &Arc<Source>) -> Self {
        let now = source.running.fetch_add(1, Ordering::SeqCst) + 1;
        source.most_running.fetch_max(now, Ordering::SeqCst);
        Self(Arc::clone(source))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Something the observer heard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Heard {
    Refresh(Refresh),
    Started(FlightKind),
    Finished(FlightKind, Outcome, Duration),
    Overloaded,
    QueueTimedOut(FlightKind),
}

#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<Heard>>);

impl Recorder {
    fn heard(&self) -> Vec<Heard> {
        self.0.lock().unwrap().clone()
    }

    fn push(&self, heard: Heard) {
        self.0.lock().unwrap().push(heard);
    }
}

impl Observer for Recorder {
    fn refresh_requested(&self, refresh: Refresh) {
        self.push(Heard::Refresh(refresh));
    }

    fn load_started(&self, kind: FlightKind) {
        self.push(Heard::Started(kind));
    }

    fn load_finished(&self, kind: FlightKind, outcome: Outcome, elapsed: Duration) {
        self.push(Heard::Finished(kind, outcome, elapsed));
    }

    fn overloaded(&self) {
        self.push(Heard::Overloaded);
    }

    fn queue_timed_out(&self, kind: FlightKind) {
        self.push(Heard::QueueTimedOut(kind));
    }
}

fn config(concurrency: usize, max_queued: usize) -> Config {
    Config { concurrency: NonZeroUsize::new(concurrency).unwrap(), max_queued, ..Config::default() }
}

/// Yields to the other tasks until `condition` holds; gives up after a
/// bounded number of turns rather than hanging.
async fn until(what: &str, condition: impl Fn() -> bool) {
    for _ in 0..10_000 {
        if condition() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("gave up waiting until {what}");
}

/// Awaits every load in the set.
async fn results<T: 'static>(mut set: JoinSet<T>) -> Vec<T> {
    let mut all = Vec::with_capacity(set.len());
    while let Some(result) = set.join_next().await {
        all.push(result.expect("a waiting task failed"));
    }
    all
}

#[tokio::test(start_paused = true)]
async fn concurrent_loads_of_one_key_make_one_call_and_share_its_value() {
    let source = Source::always(Step::Gate);
    let loader = source.loader(Config::default());
    let mut waiters = JoinSet::new();
    for _ in 0..500 {
        waiters.spawn(loader.load(7));
    }
    until("the source is called", || source.calls() == 1).await;
    assert_eq!(loader.in_flight(), 1);
    source.open(1);
    let values = results(waiters).await;
    assert_eq!(values.len(), 500);
    assert!(values.iter().all(|v| v.as_deref().ok() == Some("7#1")), "{:?}", &values[..3]);
    assert_eq!(source.calls(), 1);
    assert_eq!(source.stored(7).as_deref(), Some("7#1"));
}

#[tokio::test(start_paused = true)]
async fn concurrent_loads_of_one_key_share_one_error() {
    let source = Source::always(Step::Fail);
    let loader = source.loader(Config::default());
    let mut waiters = JoinSet::new();
    for _ in 0..500 {
        waiters.spawn(loader.load(7));
    }
    let errors: Vec<Arc<SourceError>> = results(waiters)
        .await
        .into_iter()
        .map(|result| match result {
            Err(LoadError::Source(error)) => error,
            other => panic!("expected the source's error, got {other:?}"),
        })
        .collect();
    assert_eq!(errors.len(), 500);
    assert!(errors.iter().all(|e| Arc::ptr_eq(e, &errors[0])), "every waiter holds the same error");
    assert_eq!(errors[0].0, "no positions for wallet 7: upstream answered 500");
    assert_eq!(source.calls(), 1);
    assert_eq!(source.stored(7), None, "a failed load stores nothing");
}

#[tokio::test(start_paused = true)]
async fn a_load_after_a_finished_flight_calls_the_source_again() {
    // The first call fails, later ones answer: errors are not remembered.
    let source = Source::new(|_, call| if call == 1 { Step::Fail } else { Step::Answer });
    let loader = source.loader(Config::default());
    assert!(matches!(loader.load(7).await, Err(LoadError::Source(_))));
    assert_eq!(loader.load(7).await.unwrap(), "7#2");
    assert_eq!(loader.load(7).await.unwrap(), "7#3");
    assert_eq!(source.calls(), 3);
    assert_eq!(loader.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_refresh_runs_once_per_key_while_in_flight() {
    let source = Source::always(Step::Gate);
    let loader = source.loader(Config::default());
    assert_eq!(loader.refresh(1), Refresh::Started);
    for _ in 0..3 {
        assert_eq!(loader.refresh(1), Refresh::AlreadyRunning);
    }
    assert_eq!(loader.refresh(2), Refresh::Started);
    assert_eq!(loader.active_refreshes(), 2);
    until("both refreshes call the source", || source.calls() == 2).await;

    source.open(2);
    until("the refreshes finish", || loader.active_refreshes() == 0).await;
    assert_eq!(source.calls(), 2, "one call per key");
    assert_eq!((source.stored(1).as_deref(), source.stored(2).as_deref()), (Some("1#1"), Some("2#2")));
    assert_eq!(loader.in_flight(), 0);

    // A finished refresh is not joined: the next one calls the source anew.
    assert_eq!(loader.refresh(1), Refresh::Started);
    assert_eq!(loader.active_refreshes(), 1);
    source.open(1);
    until("the second refresh stores its value", || source.stored(1).as_deref() == Some("1#3")).await;
    until("the second refresh is done", || loader.active_refreshes() == 0).await;
}

#[tokio::test(start_paused = true)]
async fn a_user_load_joins_a_running_refresh() {
    let source = Source::always(Step::Gate);
    let loader = source.loader(Config::default());
    assert_eq!(loader.refresh(1), Refresh::Started);
    let user = loader.clone().load(1);
    until("the refresh calls the source", || source.calls() == 1).await;
    assert_eq!(loader.in_flight(), 1);
    assert_eq!(loader.active_refreshes(), 1, "joining leaves it a refresh");
    source.open(1);
    assert_eq!(user.await.unwrap(), "1#1");
    assert_eq!(source.calls(), 1);
    assert_eq!(loader.active_refreshes(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_refresh_or_a_forced_reload_joins_a_running_load() {
    let source = Source::always(Step::Gate);
    let loader = source.loader(Config::default());
    let first = loader.load(1);
    assert_eq!(loader.refresh(1), Refresh::AlreadyRunning);
    assert_eq!(loader.active_refreshes(), 0, "no refresh task was started");
    // `?refresh=true` is a plain load that skipped the cache read.
    let forced = loader.load(1);
    until("the load calls the source", || source.calls() == 1).await;
    source.open(1);
    assert_eq!((first.await.unwrap(), forced.await.unwrap()), ("1#1".to_owned(), "1#1".to_owned()));
    assert_eq!(source.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn no_more_than_the_concurrency_limit_call_the_source_at_once() {
    let source = Source::always(Step::Gate);
    let loader = source.loader(config(4, 256));
    let mut waiters = JoinSet::new();
    for key in 0..20 {
        waiters.spawn(loader.load(key));
    }
    until("four loads call the source", || source.calls() == 4).await;
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert_eq!(source.calls(), 4, "the others wait for a permit");
    assert_eq!((loader.in_flight(), loader.queued()), (20, 16));

    source.open(20);
    let values = results(waiters).await;
    assert!(values.iter().all(Result::is_ok));
    assert_eq!(source.calls(), 20);
    assert_eq!(source.most_running.load(Ordering::SeqCst), 4);
    assert_eq!((loader.in_flight(), loader.queued()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn past_the_queue_bound_a_new_load_fails_at_once() {
    let source = Source::always(Step::Gate);
    let loader = source.loader(config(1, 2));
    let running = loader.load(1);
    let queued = [loader.load(2), loader.load(3)];
    assert_eq!(loader.queued(), 2);

    let before = Instant::now();
    assert!(matches!(loader.load(4).await, Err(LoadError::Overloaded)));
    assert_eq!(before.elapsed(), Duration::ZERO, "refused without waiting");
    // Joining a queued flight costs no place, so it is never refused.
    let joined = loader.load(3);

    source.open(3);
    assert_eq!(running.await.unwrap(), "1#1");
    let [second, third] = queued;
    assert_eq!(
        (second.await.unwrap(), third.await.unwrap(), joined.await.unwrap()),
        ("2#2".into(), "3#3".into(), "3#3".into())
    );
    assert_eq!(source.calls(), 3, "the refused load never reached the source");
    source.open(1);
    assert_eq!(loader.load(4).await.unwrap(), "4#4", "room again once the queue drained");
}

#[tokio::test(start_paused = true)]
async fn refreshes_give_way_once_the_queue_is_half_full() {
    let source = Source::always(Step::Gate);
    let loader = source.loader(config(1, 4));
    let running = loader.load(1);
    assert_eq!(loader.refresh(2), Refresh::Started);
    assert_eq!(loader.refresh(3), Refresh::Started);
    assert_eq!(loader.refresh(4), Refresh::Skipped(SkipReason::Busy), "two of four places are taken");
    let users = [loader.load(5), loader.load(6)];
    assert_eq!(loader.queued(), 4, "users still get the other half");
    assert!(matches!(loader.load(7).await, Err(LoadError::Overloaded)));

    source.open(5);
    assert_eq!(running.await.unwrap(), "1#1");
    for user in users {
        assert!(user.await.is_ok());
    }
    assert_eq!(loader.active_refreshes(), 0);
    assert_eq!(source.calls(), 5, "the skipped refresh never called the source");
    assert_eq!(source.stored(4), None);
}

#[tokio::test(start_paused = true)]
async fn a_slow_load_times_out_and_frees_its_key() {
    let source = Source::new(|_, call| if call == 1 { Step::Take(Duration::from_secs(3_600)) } else { Step::Answer });
    let loader = source.loader(Config { timeout: Duration::from_secs(5), ..Config::default() });
    let before = Instant::now();
    let waiters = [loader.load(1), loader.load(1)];
    for waiter in waiters {
        assert!(matches!(waiter.await, Err(LoadError::Timeout(after)) if after == Duration::from_secs(5)));
    }
    assert_eq!(before.elapsed(), Duration::from_secs(5));
    assert_eq!(source.running.load(Ordering::SeqCst), 0, "the slow call was cancelled");
    assert_eq!(source.stored(1), None);
    assert_eq!(loader.in_flight(), 0);
    assert_eq!(loader.load(1).await.unwrap(), "1#2");
}

#[tokio::test(start_paused = true)]
async fn a_panicking_load_fails_every_waiter_and_the_loader_keeps_working() {
    let source = Source::new(|key, call| match (key, call) {
        (1, 1) => Step::Panic,
        (2, 2) => Step::PanicAtCall,
        _ => Step::Answer,
    });
    let loader = source.loader(Config::default());

    let mut waiters = JoinSet::new();
    for _ in 0..100 {
        waiters.spawn(loader.load(1));
    }
    for result in results(waiters).await {
        assert!(matches!(result, Err(LoadError::Panicked(message)) if message == "source crashed on wallet 1"));
    }
    let Err(LoadError::Panicked(message)) = loader.load(2).await else { panic!("expected a panic to be reported") };
    assert_eq!(message, "source broke before loading 2");

    assert_eq!(loader.in_flight(), 0);
    assert_eq!(loader.load(1).await.unwrap(), "1#3");
    assert_eq!(loader.load(2).await.unwrap(), "2#4");
    assert_eq!(source.running.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn dropping_every_waiter_does_not_cancel_the_load() {
    let source = Source::always(Step::Gate);
    let loader = source.loader(Config::default());
    let task = tokio::spawn(loader.load(1));
    let future = loader.load(1);
    until("the source is called", || source.calls() == 1).await;

    // The HTTP clients hang up.
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    drop(future);

    source.open(1);
    until("the load stores its value", || source.stored(1).is_some()).await;
    assert_eq!(source.stored(1).as_deref(), Some("1#1"));
    until("the flight ends", || loader.in_flight() == 0).await;
    assert_eq!(source.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn shutdown_waits_for_flights_that_finish_before_the_deadline() {
    let source = Source::new(|key, _| Step::Take(Duration::from_secs(u64::from(key))));
    let loader = source.loader(Config::default());
    let users = [loader.load(1), loader.load(2), loader.load(3)];
    assert_eq!(loader.refresh(4), Refresh::Started);

    let before = Instant::now();
    let report = loader.shutdown(Duration::from_secs(10)).await;
    assert_eq!(report, DrainReport { finished: 4, abandoned: 0 });
    assert_eq!(before.elapsed(), Duration::from_secs(4), "done when the last flight is, not at the deadline");
    for (user, key) in users.into_iter().zip(1..) {
        assert_eq!(user.await.unwrap(), format!("{key}#{key}"));
    }
    assert_eq!(source.stored(4).as_deref(), Some("4#4"), "the refresh stored its value");
    assert_eq!(loader.active_refreshes(), 0);
}

#[tokio::test(start_paused = true)]
async fn shutdown_refuses_new_work_and_abandons_flights_past_the_deadline() {
    let source = Source::new(|key, _| Step::Take(Duration::from_secs(u64::from(key))));
    let recorder = Arc::new(Recorder::default());
    let patient = Duration::from_secs(3_600);
    let config = Config { timeout: patient, queue_timeout: patient, ..config(1, 8) };
    let loader = source.observed_loader(config, recorder.clone());
    let quick = loader.load(1); // runs from 0 s to 1 s
    let slow = loader.load(600); // runs from 1 s, aborted at 10 s
    let queued = loader.load(601); // never gets the permit

    let before = Instant::now();
    let (report, ()) = tokio::join!(loader.shutdown(Duration::from_secs(10)), async {
        // Shutdown has begun: every new call is refused, joins included.
        assert!(matches!(loader.load(5).await, Err(LoadError::ShuttingDown)));
        assert!(matches!(loader.load(600).await, Err(LoadError::ShuttingDown)));
        assert_eq!(loader.refresh(5), Refresh::Skipped(SkipReason::ShuttingDown));
    });
    assert_eq!(report, DrainReport { finished: 1, abandoned: 2 });
    assert_eq!(before.elapsed(), Duration::from_secs(10));

    assert_eq!(quick.await.unwrap(), "1#1");
    assert!(matches!(slow.await, Err(LoadError::ShuttingDown)));
    assert!(matches!(queued.await, Err(LoadError::ShuttingDown)));
    assert_eq!((source.stored(600), source.stored(601)), (None, None), "abandoned loads store nothing");
    assert_eq!(source.calls(), 2, "the queued flight never reached the source");
    assert_eq!(source.running.load(Ordering::SeqCst), 0, "no call outlives shutdown");
    assert_eq!((loader.in_flight(), loader.queued()), (0, 0));
    assert!(matches!(loader.load(1).await, Err(LoadError::ShuttingDown)), "still refused afterwards");

    let fg = FlightKind::Foreground;
    assert_eq!(
        recorder.heard(),
        [
            Heard::Refresh(Refresh::Skipped(SkipReason::ShuttingDown)),
            Heard::Started(fg),
            Heard::Finished(fg, Outcome::Ok, Duration::from_secs(1)),
            Heard::Started(fg),
            Heard::Finished(fg, Outcome::Abandoned, Duration::from_secs(9)),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn the_observer_hears_refreshes_loads_and_overloads() {
    let source = Source::new(|key, _| match key {
        1 => Step::Take(Duration::from_secs(1)),
        3 => Step::Fail,
        4 => Step::Take(Duration::from_secs(3_600)),
        5 => Step::Panic,
        _ => Step::Answer,
    });
    let recorder = Arc::new(Recorder::default());
    let loader = source.observed_loader(config(1, 0), recorder.clone());

    assert_eq!(loader.refresh(1), Refresh::Started);
    assert_eq!(loader.refresh(1), Refresh::AlreadyRunning);
    assert_eq!(loader.refresh(2), Refresh::Skipped(SkipReason::Busy), "no permit free, no queue");
    assert!(matches!(loader.load(2).await, Err(LoadError::Overloaded)));
    assert_eq!(loader.load(1).await.unwrap(), "1#1");
    assert!(matches!(loader.load(3).await, Err(LoadError::Source(_))));
    assert!(matches!(loader.load(4).await, Err(LoadError::Timeout(_))));
    assert!(matches!(loader.load(5).await, Err(LoadError::Panicked(_))));

    let (fg, bg) = (FlightKind::Foreground, FlightKind::Background);
    assert_eq!(
        recorder.heard(),
        [
            Heard::Refresh(Refresh::Started),
            Heard::Refresh(Refresh::AlreadyRunning),
            Heard::Refresh(Refresh::Skipped(SkipReason::Busy)),
            Heard::Overloaded,
            Heard::Started(bg),
            Heard::Finished(bg, Outcome::Ok, Duration::from_secs(1)),
            Heard::Started(fg),
            Heard::Finished(fg, Outcome::Error, Duration::ZERO),
            Heard::Started(fg),
            Heard::Finished(fg, Outcome::Timeout, Duration::from_secs(5)),
            Heard::Started(fg),
            Heard::Finished(fg, Outcome::Panicked, Duration::ZERO),
        ]
    );
}

/// The one test on real threads: flights finish on one worker while loads
/// join on the other, again and again. A waiter caught between "the flight
/// finished" and "it joined" would hang here, so the test has a deadline;
/// a flight rejoined after it delivered would hand out an old value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_waiter_hangs_while_flights_finish_and_others_join() {
    let source = Source::always(Step::Answer);
    let loader = source.loader(Config::default());
    let mut tasks = JoinSet::new();
    for _ in 0..4 {
        let loader = loader.clone();
        tasks.spawn(async move {
            let mut last_call = 0;
            for _ in 0..1_000 {
                let value = loader.load(9).await.expect("an immediate source never fails");
                let call: usize = value.strip_prefix("9#").and_then(|n| n.parse().ok()).expect("a value of key 9");
                // One caller's loads follow one another, so each must get a
                // newer flight than the last: never a finished one rejoined.
                assert!(call > last_call, "load after call {last_call} got the value of call {call}");
                last_call = call;
            }
        });
    }
    tokio::time::timeout(Duration::from_secs(60), results(tasks)).await.expect("a waiter hung");
    assert!((1..=4_000).contains(&source.calls()));
    assert_eq!(loader.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn no_load_waits_longer_than_its_turn_plus_its_call() {
    let source = Source::always(Step::Take(Duration::from_secs(3_600)));
    let recorder = Arc::new(Recorder::default());
    let limits =
        Config { timeout: Duration::from_millis(400), queue_timeout: Duration::from_secs(1), ..config(1, 256) };
    let loader = source.observed_loader(limits, recorder.clone());
    let began = Instant::now();
    let mut waiters = JoinSet::new();
    for key in 0..50 {
        let load = loader.load(key);
        waiters.spawn(async move { (key, load.await, began.elapsed()) });
    }
    let mut answers = results(waiters).await;
    answers.sort_unstable_by_key(|(key, _, _)| *key);

    // One permit, a source that hangs: the first three flights get the
    // permit in turn (at 0, 0.4 and 0.8 s) and time out; the other 47 give
    // up waiting at 1 s. Nobody waits past the queue timeout plus the load
    // timeout, 1.4 s, where without a queue timeout the last would wait
    // 50 load timeouts.
    let ms = Duration::from_millis;
    for (key, result, waited) in &answers {
        let expected = match key {
            0..=2 => ms(400 * (u64::from(*key) + 1)),
            _ => ms(1_000),
        };
        assert_eq!(*waited, expected, "load of key {key}");
        assert!(*waited <= limits.longest_wait());
        match (key, result) {
            (0..=2, Err(LoadError::Timeout(after))) => assert_eq!(*after, ms(400)),
            (3.., Err(LoadError::QueueTimeout(after))) => assert_eq!(*after, ms(1_000)),
            (key, other) => panic!("load of key {key}: {other:?}"),
        }
    }
    assert_eq!(source.calls(), 3, "a flight that never got its turn never called the source");
    assert_eq!((loader.in_flight(), loader.queued()), (0, 0));
    let heard = recorder.heard();
    let queue_timeouts = heard.iter().filter(|h| **h == Heard::QueueTimedOut(FlightKind::Foreground)).count();
    assert_eq!(queue_timeouts, 47);

    // The keys are free again: a later load starts a new flight.
    let later = loader.load(49);
    until("the new flight calls the source", || source.calls() == 4).await;
    assert!(matches!(later.await, Err(LoadError::Timeout(_))));
}

#[tokio::test(start_paused = true)]
async fn a_refresh_that_waits_past_the_queue_timeout_is_dropped_and_heard() {
    let source = Source::new(|key, _| if key == 1 { Step::Gate } else { Step::Answer });
    let recorder = Arc::new(Recorder::default());
    let limits = Config { timeout: Duration::from_secs(3_600), queue_timeout: Duration::from_secs(1), ..config(1, 8) };
    let loader = source.observed_loader(limits, recorder.clone());
    let running = loader.load(1); // holds the only permit until the gate opens
    assert_eq!(loader.refresh(2), Refresh::Started);
    assert_eq!((loader.active_refreshes(), loader.queued()), (1, 1));

    tokio::time::sleep(Duration::from_millis(999)).await;
    assert_eq!((loader.active_refreshes(), loader.queued()), (1, 1), "still within its patience");
    tokio::time::sleep(Duration::from_millis(1)).await;
    until("the refresh is dropped", || loader.active_refreshes() == 0).await;
    assert_eq!((loader.in_flight(), loader.queued()), (1, 0), "only the running load is left");
    assert_eq!(source.calls(), 1, "the dropped refresh never called the source");

    let (fg, bg) = (FlightKind::Foreground, FlightKind::Background);
    assert_eq!(
        recorder.heard(),
        [Heard::Refresh(Refresh::Started), Heard::Started(fg), Heard::QueueTimedOut(bg)],
        "the observer hears the drop, and no load for it"
    );

    // Its key is free: the next refresh starts anew and, with the permit
    // back, stores its value.
    source.open(1);
    assert_eq!(running.await.unwrap(), "1#1");
    assert_eq!(loader.refresh(2), Refresh::Started);
    until("the new refresh stores its value", || source.stored(2).as_deref() == Some("2#2")).await;
}

#[tokio::test(start_paused = true)]
async fn callers_joining_a_flight_share_its_queue_timeout() {
    let source = Source::always(Step::Gate);
    let loader = source.loader(Config { queue_timeout: Duration::from_secs(2), ..config(1, 8) });
    let _running = loader.load(1);
    assert_eq!(loader.refresh(2), Refresh::Started);
    tokio::time::sleep(Duration::from_secs(1)).await;
    // A user joins the waiting refresh halfway through its wait.
    let before = Instant::now();
    let joined = loader.load(2);
    assert!(matches!(joined.await, Err(LoadError::QueueTimeout(after)) if after == Duration::from_secs(2)));
    assert_eq!(before.elapsed(), Duration::from_secs(1), "the flight's wait, not a new one");
    assert_eq!(loader.active_refreshes(), 0);
}

/// What a test subscriber saw of one event: its level, message, and the
/// count of lines the throttle held back before it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    level: tracing::Level,
    message: String,
    suppressed: Option<u64>,
}

/// A `tracing` subscriber that keeps every event's [`Line`].
#[derive(Debug, Default, Clone)]
struct Lines(Arc<Mutex<Vec<Line>>>);

impl Lines {
    /// The `(level, suppressed)` of each line with this message.
    fn of(&self, message: &str) -> Vec<(tracing::Level, Option<u64>)> {
        let lines = self.0.lock().unwrap();
        lines.iter().filter(|line| line.message == message).map(|line| (line.level, line.suppressed)).collect()
    }
}

impl tracing::Subscriber for Lines {
    fn enabled(&self, _metadata: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _span: &tracing::span::Id, _values: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _span: &tracing::span::Id, _follows: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        #[derive(Default)]
        struct Fields {
            message: String,
            suppressed: Option<u64>,
        }
        impl tracing::field::Visit for Fields {
            fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
                if field.name() == "suppressed" {
                    self.suppressed = Some(value);
                }
            }

            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
                if field.name() == "message" {
                    self.message = format!("{value:?}");
                }
            }
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let line = Line { level: *event.metadata().level(), message: fields.message, suppressed: fields.suppressed };
        self.0.lock().unwrap().push(line);
    }

    fn enter(&self, _span: &tracing::span::Id) {}

    fn exit(&self, _span: &tracing::span::Id) {}
}

#[tokio::test(start_paused = true)]
async fn a_failing_source_logs_one_warning_per_interval_with_a_count() {
    use tracing::Level;

    let lines = Lines::default();
    // Flights run on this thread (a current-thread runtime), so they log to
    // this subscriber.
    let _logging = tracing::subscriber::set_default(lines.clone());
    let source = Source::new(|key, _| if key < 1_000 { Step::Fail } else { Step::Take(Duration::from_secs(3_600)) });
    let loader = source.loader(Config::default());

    // A dead source: every load of every wallet fails the same way.
    for key in 0..100 {
        assert!(matches!(loader.load(key).await, Err(LoadError::Source(_))));
    }
    assert_eq!(lines.of("load failed"), [(Level::WARN, Some(0))], "one line, not a hundred");

    tokio::time::advance(refresh::LogThrottle::DEFAULT_INTERVAL).await;
    assert!(loader.load(100).await.is_err());
    assert_eq!(lines.of("load failed"), [(Level::WARN, Some(0)), (Level::WARN, Some(99))], "then one with the count");

    // A timeout is another cause, not held back by the errors.
    assert!(matches!(loader.load(1_000).await, Err(LoadError::Timeout(_))));
    assert!(matches!(loader.load(1_001).await, Err(LoadError::Timeout(_))));
    assert_eq!(lines.of("load failed").len(), 3);
}
