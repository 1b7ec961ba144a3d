//! The circuit breaker: after repeated failures, stop calling Redis for a
//! while and fail at once, so that an outage costs callers nothing but a
//! miss.
//!
//! | state | an operation… | when it succeeds | when it fails |
//! | --- | --- | --- | --- |
//! | closed, `n` failures in a row | goes to Redis | `n` = 0 | `n` + 1; at the threshold → open, pause = base |
//! | open, pause not over | fails at once with [`Error::Unavailable`] | | |
//! | open, pause over | goes to Redis as the one trial; → half-open | | |
//! | half-open (trial under way) | fails at once with [`Error::Unavailable`] | the trial: → closed, pause reset | the trial: → open, pause doubled, capped |
//!
//! Defaults: threshold 3 consecutive failures, first pause 250 ms, doubling
//! on each failed trial up to 2 s, so Redis is tried at least every 2 s and
//! recovery after an outage is seen within about 2 s. The trial is usually
//! the tier's prober's `PING` (see [`RedisTier`](crate::RedisTier)), but
//! any operation that comes first may be it. A trial abandoned midway (its
//! caller went away) proves nothing: the breaker goes back to Open with the
//! same pause, already due, so the next operation tries again.
//!
//! Outcomes are tied to the state that let the operation through: a
//! success or failure of an operation admitted before the breaker last
//! changed state is ignored, so a burst of slow failures that started
//! while Closed cannot lengthen a pause, and a straggler that succeeds
//! cannot close an open breaker. Timing uses tokio's clock, so tests can
//! pause and advance it.
//!
//! Only outages count: an error reply to one command (`OOM`, `READONLY`,
//! `WRONGTYPE`) says Redis is up, and the tier reports it as a success
//! here (see [`Error`]).
//!
//! What it is not: a retry policy, or a health check. It counts what
//! operations report; it never calls Redis itself.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::Error;
use crate::observer::Observer;

/// Consecutive failures that open the breaker by default.
pub const DEFAULT_FAILURE_THRESHOLD: NonZeroU32 = NonZeroU32::new(3).unwrap();

/// The breaker's first pause by default.
pub const DEFAULT_BASE_PAUSE: Duration = Duration::from_millis(250);

/// The longest pause by default: the longest Redis goes untried.
pub const DEFAULT_MAX_PAUSE: Duration = Duration::from_secs(2);

/// When the breaker opens and for how long.
///
/// # Examples
///
/// ```
/// use std::num::NonZeroU32;
/// use std::time::Duration;
/// use cache_redis::BreakerConfig;
///
/// let config = BreakerConfig { failure_threshold: NonZeroU32::new(5).unwrap(), ..BreakerConfig::default() };
/// assert_eq!(config.base_pause, Duration::from_millis(250));
/// assert_eq!(config.max_pause, Duration::from_secs(2));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker; 3 by default.
    pub failure_threshold: NonZeroU32,
    /// The pause after the breaker first opens; 250 ms by default.
    pub base_pause: Duration,
    /// The cap on the pause, which doubles after each failed trial; 2 s by
    /// default. A cap below `base_pause` caps the first pause too.
    pub max_pause: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: DEFAULT_FAILURE_THRESHOLD,
            base_pause: DEFAULT_BASE_PAUSE,
            max_pause: DEFAULT_MAX_PAUSE,
        }
    }
}

/// Where the circuit breaker is.
///
/// # Examples
///
/// ```
/// use cache_redis::BreakerState;
///
/// assert_eq!(BreakerState::default(), BreakerState::Closed);
/// assert_eq!(BreakerState::HalfOpen.as_str(), "half_open");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BreakerState {
    /// Operations go to Redis.
    #[default]
    Closed,
    /// One trial operation is under way; the others fail at once.
    HalfOpen,
    /// Operations fail at once until the pause ends.
    Open,
}

impl BreakerState {
    /// The state in lower snake case, fit for a log field or a label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::HalfOpen => "half_open",
            Self::Open => "open",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Closed { failures: u32 },
    Open { until: Instant, pause: Duration },
    HalfOpen { pause: Duration },
}

impl Phase {
    fn state(self) -> BreakerState {
        match self {
            Self::Closed { .. } => BreakerState::Closed,
            Self::Open { .. } => BreakerState::Open,
            Self::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

#[derive(Debug)]
struct Inner {
    phase: Phase,
    /// Bumped on every change of state; a permit remembers the one it was
    /// granted in.
    generation: u64,
}

/// The breaker of one tier.
#[derive(Debug)]
pub(crate) struct Breaker {
    config: BreakerConfig,
    inner: Mutex<Inner>,
    changes: watch::Sender<BreakerState>,
    observer: Arc<dyn Observer>,
    /// Which Redis this is, password redacted, for the logs.
    label: String,
}

/// Leave to make one call; report how it went with
/// [`succeeded`](Self::succeeded) or [`failed`](Self::failed).
#[derive(Debug)]
pub(crate) struct Permit<'a> {
    breaker: &'a Breaker,
    generation: u64,
    trial: bool,
    settled: bool,
}

impl Breaker {
    pub(crate) fn new(config: BreakerConfig, observer: Arc<dyn Observer>, label: String) -> Self {
        Self {
            config,
            inner: Mutex::new(Inner { phase: Phase::Closed { failures: 0 }, generation: 0 }),
            changes: watch::Sender::new(BreakerState::Closed),
            observer,
            label,
        }
    }

    pub(crate) fn state(&self) -> BreakerState {
        self.lock().phase.state()
    }

    /// When an open breaker's pause ends; `None` unless it is open.
    pub(crate) fn reopens_at(&self) -> Option<Instant> {
        match self.lock().phase {
            Phase::Open { until, .. } => Some(until),
            Phase::Closed { .. } | Phase::HalfOpen { .. } => None,
        }
    }

    /// A receiver that is told of every change of state.
    pub(crate) fn subscribe(&self) -> watch::Receiver<BreakerState> {
        self.changes.subscribe()
    }

    /// Lets an operation through, or refuses it with
    /// [`Error::Unavailable`].
    pub(crate) fn admit(&self) -> Result<Permit<'_>, Error> {
        self.admit_unless_paused(true)
    }

    /// Lets the health prober's `PING` through: as [`admit`](Self::admit),
    /// except that an open breaker lets it through as the trial even
    /// before its pause is over. The pause spares callers the cost of
    /// failing calls; one `PING` per health interval costs no caller
    /// anything, and lets recovery be seen within an interval even when
    /// the pause is longer.
    pub(crate) fn admit_probe(&self) -> Result<Permit<'_>, Error> {
        self.admit_unless_paused(false)
    }

    fn admit_unless_paused(&self, respect_pause: bool) -> Result<Permit<'_>, Error> {
        let mut inner = self.lock();
        let (trial, change) = match inner.phase {
            Phase::Closed { .. } => (false, None),
            Phase::Open { until, pause } if !respect_pause || Instant::now() >= until => {
                (true, Some(Self::enter(&mut inner, Phase::HalfOpen { pause })))
            }
            Phase::Open { .. } | Phase::HalfOpen { .. } => return Err(Error::Unavailable),
        };
        let permit = Permit { breaker: self, generation: inner.generation, trial, settled: false };
        drop(inner);
        self.announce(change);
        Ok(permit)
    }

    fn settle(&self, generation: u64, outcome: Outcome) {
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        let next = match (inner.phase, outcome) {
            (Phase::Closed { .. } | Phase::HalfOpen { .. }, Outcome::Success) => Phase::Closed { failures: 0 },
            (Phase::Closed { failures }, Outcome::Failure) => {
                let failures = failures.saturating_add(1);
                if failures >= self.config.failure_threshold.get() {
                    let pause = self.config.base_pause.min(self.config.max_pause);
                    Phase::Open { until: Instant::now() + pause, pause }
                } else {
                    Phase::Closed { failures }
                }
            }
            (Phase::HalfOpen { pause }, Outcome::Failure) => {
                let pause = pause.saturating_mul(2).min(self.config.max_pause);
                Phase::Open { until: Instant::now() + pause, pause }
            }
            (Phase::HalfOpen { pause }, Outcome::Abandoned) => Phase::Open { until: Instant::now(), pause },
            // Only a trial can be abandoned, and no permit is granted while
            // open, so these leave the breaker as it is.
            (phase @ Phase::Closed { .. }, Outcome::Abandoned) | (phase @ Phase::Open { .. }, _) => phase,
        };
        let change = if next.state() == inner.phase.state() {
            inner.phase = next;
            None
        } else {
            Some(Self::enter(&mut inner, next))
        };
        drop(inner);
        self.announce(change);
    }

    /// Moves to `phase`, a different state, and returns what to announce.
    fn enter(inner: &mut Inner, phase: Phase) -> Phase {
        inner.phase = phase;
        inner.generation += 1;
        phase
    }

    /// Tells the world of a change, outside the lock.
    fn announce(&self, change: Option<Phase>) {
        let Some(phase) = change else { return };
        match phase {
            Phase::Open { pause, .. } => tracing::warn!(
                redis = %self.label,
                pause_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
                "redis circuit breaker open: operations fail at once until a trial succeeds",
            ),
            Phase::HalfOpen { .. } => {
                tracing::debug!(redis = %self.label, "redis circuit breaker half-open: one trial");
            }
            Phase::Closed { .. } => {
                tracing::info!(redis = %self.label, "redis circuit breaker closed: redis answers again");
            }
        }
        self.changes.send_replace(phase.state());
        self.observer.breaker_changed(phase.state());
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The lock guards plain data that every path leaves consistent, so
        // a panic elsewhere while it was held does not make it unusable.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Success,
    Failure,
    Abandoned,
}

impl Permit<'_> {
    /// Whether this permit is the half-open breaker's one trial.
    pub(crate) fn is_trial(&self) -> bool {
        self.trial
    }

    pub(crate) fn succeeded(mut self) {
        self.settled = true;
        self.breaker.settle(self.generation, Outcome::Success);
    }

    pub(crate) fn failed(mut self) {
        self.settled = true;
        self.breaker.settle(self.generation, Outcome::Failure);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        // An operation that ends without a verdict was cancelled by its
        // caller. That says nothing about Redis, except that a trial must
        // not hold the breaker half-open forever.
        if !self.settled && self.trial {
            self.breaker.settle(self.generation, Outcome::Abandoned);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Debug, Default)]
    struct Changes(Mutex<Vec<BreakerState>>, AtomicUsize);

    impl Observer for Changes {
        fn breaker_changed(&self, state: BreakerState) {
            self.0.lock().unwrap().push(state);
            self.1.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn breaker() -> (Breaker, Arc<Changes>) {
        let changes = Arc::new(Changes::default());
        (Breaker::new(BreakerConfig::default(), changes.clone(), "redis://test".to_owned()), changes)
    }

    fn fail(breaker: &Breaker) {
        breaker.admit().expect("admitted").failed();
    }

    fn succeed(breaker: &Breaker) {
        breaker.admit().expect("admitted").succeeded();
    }

    fn pause_of(breaker: &Breaker) -> Duration {
        match breaker.lock().phase {
            Phase::Open { pause, .. } => pause,
            other => panic!("not open: {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_the_threshold_of_consecutive_failures() {
        let (breaker, changes) = breaker();
        fail(&breaker);
        fail(&breaker);
        succeed(&breaker);
        fail(&breaker);
        fail(&breaker);
        assert_eq!(breaker.state(), BreakerState::Closed, "a success resets the count");
        fail(&breaker);
        assert_eq!(breaker.state(), BreakerState::Open);
        assert!(matches!(breaker.admit(), Err(Error::Unavailable)));
        assert_eq!(breaker.reopens_at(), Some(Instant::now() + DEFAULT_BASE_PAUSE));
        assert_eq!(*changes.0.lock().unwrap(), [BreakerState::Open]);
    }

    #[tokio::test(start_paused = true)]
    async fn one_trial_after_the_pause_closes_it_on_success() {
        let (breaker, changes) = breaker();
        (0..3).for_each(|_| fail(&breaker));
        tokio::time::advance(Duration::from_millis(249)).await;
        assert!(matches!(breaker.admit(), Err(Error::Unavailable)), "still paused");
        tokio::time::advance(Duration::from_millis(1)).await;

        let trial = breaker.admit().expect("the trial");
        assert!(trial.is_trial());
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        assert!(matches!(breaker.admit(), Err(Error::Unavailable)), "only one trial at a time");
        trial.succeeded();
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert!(!breaker.admit().unwrap().is_trial());
        assert_eq!(*changes.0.lock().unwrap(), [BreakerState::Open, BreakerState::HalfOpen, BreakerState::Closed]);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_trials_double_the_pause_up_to_the_cap() {
        let (breaker, _) = breaker();
        (0..3).for_each(|_| fail(&breaker));
        let mut pauses = vec![pause_of(&breaker)];
        for _ in 0..5 {
            tokio::time::advance(pause_of(&breaker)).await;
            fail(&breaker);
            pauses.push(pause_of(&breaker));
        }
        let ms: Vec<u128> = pauses.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [250, 500, 1000, 2000, 2000, 2000]);

        // Success resets the pause for the next outage.
        tokio::time::advance(DEFAULT_MAX_PAUSE).await;
        succeed(&breaker);
        (0..3).for_each(|_| fail(&breaker));
        assert_eq!(pause_of(&breaker), DEFAULT_BASE_PAUSE);
    }

    #[tokio::test(start_paused = true)]
    async fn outcomes_of_operations_admitted_before_a_change_are_ignored() {
        let (breaker, _) = breaker();
        let stragglers: Vec<_> = (0..5).map(|_| breaker.admit().unwrap()).collect();
        (0..3).for_each(|_| fail(&breaker));
        let until = breaker.reopens_at().unwrap();
        let mut stragglers = stragglers.into_iter();
        stragglers.next().unwrap().succeeded();
        assert_eq!(breaker.state(), BreakerState::Open, "a straggler's success does not close it");
        stragglers.for_each(Permit::failed);
        assert_eq!(breaker.reopens_at(), Some(until), "stragglers' failures do not lengthen the pause");
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_trial_lets_the_next_operation_try() {
        let (breaker, _) = breaker();
        (0..3).for_each(|_| fail(&breaker));
        tokio::time::advance(DEFAULT_BASE_PAUSE).await;
        drop(breaker.admit().unwrap());
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(pause_of(&breaker), DEFAULT_BASE_PAUSE, "no verdict, no longer pause");
        assert!(breaker.admit().unwrap().is_trial(), "due at once");
    }

    #[tokio::test(start_paused = true)]
    async fn subscribers_see_every_change() {
        let (breaker, _) = breaker();
        let mut changes = breaker.subscribe();
        (0..3).for_each(|_| fail(&breaker));
        assert!(changes.has_changed().unwrap());
        assert_eq!(*changes.borrow_and_update(), BreakerState::Open);
        assert!(!changes.has_changed().unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn the_health_probe_is_the_trial_before_the_pause_is_over() {
        let (breaker, _) = breaker();
        (0..3).for_each(|_| fail(&breaker));
        assert!(matches!(breaker.admit(), Err(Error::Unavailable)), "operations wait for the pause");
        let probe = breaker.admit_probe().expect("the probe is let through at once");
        assert!(probe.is_trial());
        assert!(matches!(breaker.admit_probe(), Err(Error::Unavailable)), "one trial at a time");
        probe.succeeded();
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert!(!breaker.admit_probe().unwrap().is_trial(), "closed: an ordinary permit");
    }

    #[test]
    fn a_cap_below_the_base_caps_the_first_pause() {
        let config = BreakerConfig {
            failure_threshold: NonZeroU32::MIN,
            base_pause: Duration::from_secs(5),
            max_pause: Duration::from_secs(1),
        };
        let breaker = Breaker::new(config, Arc::new(crate::observer::Silent), String::new());
        fail(&breaker);
        assert_eq!(pause_of(&breaker), Duration::from_secs(1));
    }
}
