//! The global limit on loads and the bounded line in front of it, served
//! by priority.
//!
//! A new flight either takes a free permit at once or takes a place in line;
//! when the line is full it is refused, which is what lets the service
//! answer "overloaded" at once instead of letting waits grow without bound.
//! Background refreshes give way: they may only join the line while it is
//! shorter than [`Config::max_queued_background`], so they can never hold
//! more than that many of its places.
//!
//! The line is bounded in time as well as in length: a flight that has not
//! got a permit within [`Config::queue_timeout`] leaves it. Without that, a
//! hung source would hold every caller in line for as many load timeouts as
//! there are flights ahead of it.
//!
//! Every flight has a [`Priority`] class. A permit that comes free goes to
//! the waiting flight of the highest class, and within a class to the
//! highest rank (the caller's say: demand, or a wallet listed as valuable),
//! then to the longest waiting. Two rules keep the classes from hurting
//! each other:
//!
//! - **Shares.** A class may hold at most its share of the permits at once
//!   ([`Priority::share_pct`], at least one permit): however long the
//!   backlog of refreshes, a quarter of the permits are never held by
//!   them, so a user's load starts as soon as one of those is free; warm-up
//!   loads hold at most a quarter.
//! - **Age.** A flight that has waited [`Config::promote_after`] is served
//!   as if it were of the highest class (still within its own share), so a
//!   flood of users' loads slows lower classes down but never stops them.
//!
//! A flight whose class rises while it waits (a user joins a queued
//! refresh) is moved up ([`Queue::raise`]).
//!
//! This counts flights, not callers: joining a flight already started
//! costs no permit and no place.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::config::Config;
use crate::observer::FlightKind;

/// A load's class in the line, highest first.
///
/// # Examples
///
/// ```
/// use refresh::Priority;
///
/// assert!(Priority::Waiting < Priority::Stale);
/// assert_eq!(Priority::WarmUp.share_pct(), 25);
/// assert_eq!(Priority::ALL.map(Priority::as_str), ["waiting", "stale", "eager", "warm_up"]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// A load a user is waiting for: a cold miss, a forced refresh.
    Waiting,
    /// A background refresh of an entry already served stale.
    Stale,
    /// A refresh started early, before the entry goes stale.
    Eager,
    /// A load that fills the cache after a start, for no one in particular.
    WarmUp,
}

impl Priority {
    /// Every class, highest first.
    pub const ALL: [Self; 4] = [Self::Waiting, Self::Stale, Self::Eager, Self::WarmUp];

    /// The class's name, as a metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Stale => "stale",
            Self::Eager => "eager",
            Self::WarmUp => "warm_up",
        }
    }

    /// The most of the concurrency limit, in percent, that flights of this
    /// class hold at once (rounded down, at least one permit): 100, 75, 50
    /// and 25, so each class below users leaves room for the ones above.
    pub const fn share_pct(self) -> usize {
        match self {
            Self::Waiting => 100,
            Self::Stale => 75,
            Self::Eager => 50,
            Self::WarmUp => 25,
        }
    }

    fn cap(self, concurrency: usize) -> usize {
        (concurrency.saturating_mul(self.share_pct()) / 100).max(1)
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// Permits for calling the source, and the line of flights waiting for one.
#[derive(Debug, Clone)]
pub(crate) struct Queue {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    line: Mutex<Line>,
    concurrency: usize,
    caps: [usize; 4],
    max_waiting: usize,
    max_waiting_background: usize,
    promote_after: Duration,
}

/// The line's state, all behind one lock.
#[derive(Debug, Default)]
struct Line {
    running: usize,
    running_by_class: [usize; 4],
    waiters: Vec<Waiter>,
    next_seq: u64,
}

#[derive(Debug)]
struct Waiter {
    seq: u64,
    class: Priority,
    rank: u16,
    since: Instant,
    turn: oneshot::Sender<Permit>,
}

/// The right to call the source, for one flight; given back on drop.
#[derive(Debug)]
pub(crate) struct Permit {
    /// `None` once disarmed: a permit that could not be handed over.
    inner: Option<Arc<Inner>>,
    class: Priority,
}

/// Where an admitted flight stands.
#[derive(Debug)]
pub(crate) enum Place {
    /// It took a free permit and may call the source at once.
    Running(Permit),
    /// It waits in line for a permit.
    Waiting(Ticket),
}

/// A place in line; giving it up (by drop or by getting a permit) makes room
/// for another flight.
#[derive(Debug)]
pub(crate) struct Ticket {
    inner: Arc<Inner>,
    seq: u64,
    since: Instant,
    turn: oneshot::Receiver<Permit>,
}

impl Queue {
    pub(crate) fn new(config: &Config) -> Self {
        let concurrency = config.concurrency.get();
        let inner = Inner {
            line: Mutex::new(Line::default()),
            concurrency,
            caps: Priority::ALL.map(|class| class.cap(concurrency)),
            max_waiting: config.max_queued,
            max_waiting_background: config.max_queued_background(),
            promote_after: config.promote_after,
        };
        Self { inner: Arc::new(inner) }
    }

    /// A permit if one is free to this class, else a place in line if the
    /// line has room for a flight of this kind, else `None`.
    pub(crate) fn admit(&self, kind: FlightKind, class: Priority, rank: u16) -> Option<Place> {
        let inner = &self.inner;
        let mut line = inner.lock();
        // Every change to the line hands out what it can at once, so a free
        // permit here means no waiter could take it: taking it jumps no one.
        if line.running < inner.concurrency && line.running_by_class[class.index()] < inner.caps[class.index()] {
            line.take(class);
            return Some(Place::Running(Permit { inner: Some(Arc::clone(inner)), class }));
        }
        let limit = match kind {
            FlightKind::Foreground => inner.max_waiting,
            FlightKind::Background => inner.max_waiting_background,
        };
        if line.waiters.len() >= limit {
            return None;
        }
        let seq = line.next_seq;
        line.next_seq += 1;
        let since = Instant::now();
        let (send, turn) = oneshot::channel();
        line.waiters.push(Waiter { seq, class, rank, since, turn: send });
        Some(Place::Waiting(Ticket { inner: Arc::clone(inner), seq, since, turn }))
    }

    /// Moves a waiting flight up to `class` (and `rank`) if that is higher
    /// than where it stands; nothing if it is no longer in line.
    pub(crate) fn raise(&self, seq: u64, class: Priority, rank: u16) {
        let mut line = self.inner.lock();
        if let Some(waiter) = line.waiters.iter_mut().find(|w| w.seq == seq) {
            if class < waiter.class {
                waiter.class = class;
                waiter.rank = rank;
            } else if class == waiter.class {
                waiter.rank = waiter.rank.max(rank);
            }
            self.inner.dispatch(&mut line);
        }
    }

    /// Flights waiting for a permit now.
    pub(crate) fn waiting(&self) -> usize {
        self.inner.lock().waiters.len()
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Line> {
        // Every critical section leaves the line consistent before anything
        // in it can panic.
        self.line.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands free permits to the best waiters that may take them.
    fn dispatch(self: &Arc<Self>, line: &mut Line) {
        let now = Instant::now();
        while line.running < self.concurrency {
            let best = line
                .waiters
                .iter()
                .enumerate()
                .filter(|(_, w)| line.running_by_class[w.class.index()] < self.caps[w.class.index()])
                .min_by_key(|(_, w)| {
                    // Flights past the age bound go first, oldest first;
                    // then by class, rank and age.
                    let promoted = now.saturating_duration_since(w.since) >= self.promote_after;
                    if promoted { (0, 0, w.seq) } else { (1 + w.class.index(), u16::MAX - w.rank, w.seq) }
                })
                .map(|(i, _)| i);
            let Some(i) = best else { break };
            let waiter = line.waiters.swap_remove(i);
            line.take(waiter.class);
            let permit = Permit { inner: Some(Arc::clone(self)), class: waiter.class };
            if let Err(mut unsent) = waiter.turn.send(permit) {
                // The waiter left (its ticket is being dropped): undo here,
                // under the lock already held, instead of in the permit's
                // drop, which would take it again.
                unsent.inner = None;
                line.give_back(waiter.class);
            }
        }
    }
}

impl Line {
    fn take(&mut self, class: Priority) {
        self.running += 1;
        self.running_by_class[class.index()] += 1;
    }

    fn give_back(&mut self, class: Priority) {
        self.running -= 1;
        self.running_by_class[class.index()] -= 1;
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            let mut line = inner.lock();
            line.give_back(self.class);
            inner.dispatch(&mut line);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut line = self.inner.lock();
        if let Some(i) = line.waiters.iter().position(|w| w.seq == self.seq) {
            line.waiters.swap_remove(i);
        }
        // A permit already sent to `turn` is dropped with it, after this,
        // and gives itself back then.
    }
}

/// Why a flight in line got no permit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoPermit {
    /// None came free within the queue timeout.
    TimedOut,
    /// The line was dropped, which this crate never does while a flight waits.
    Closed,
}

impl Place {
    /// The place's number in line, if it waits: for [`Queue::raise`].
    pub(crate) fn seq(&self) -> Option<u64> {
        match self {
            Self::Running(_) => None,
            Self::Waiting(ticket) => Some(ticket.seq),
        }
    }

    /// Waits for this flight's turn, at most `patience` if it is in line;
    /// returns the permit and how long it waited. Giving up leaves the line
    /// at once, so the flights behind move up.
    pub(crate) async fn into_permit(self, patience: Duration) -> Result<(Permit, Duration), NoPermit> {
        match self {
            Self::Running(permit) => Ok((permit, Duration::ZERO)),
            Self::Waiting(mut ticket) => {
                let turn = tokio::time::timeout(patience, &mut ticket.turn).await;
                let waited = ticket.since.elapsed();
                drop(ticket);
                match turn {
                    Ok(Ok(permit)) => Ok((permit, waited)),
                    Ok(Err(_closed)) => Err(NoPermit::Closed),
                    Err(_elapsed) => Err(NoPermit::TimedOut),
                }
            }
        }
    }
}

impl Permit {
    /// The class the permit was given to.
    pub(crate) fn class(&self) -> Priority {
        self.class
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;

    use super::*;

    fn queue(concurrency: usize, max_queued: usize) -> Queue {
        Queue::new(&Config { concurrency: NonZeroUsize::new(concurrency).unwrap(), max_queued, ..Config::default() })
    }

    #[test]
    fn foreground_runs_then_waits_then_is_refused() {
        let queue = queue(2, 3);
        let places: Vec<Place> =
            (0..5).map_while(|_| queue.admit(FlightKind::Foreground, Priority::Waiting, 0)).collect();
        assert_eq!(places.len(), 5, "2 running and 3 waiting");
        assert!(matches!(places[..2], [Place::Running(_), Place::Running(_)]));
        assert!(places[2..].iter().all(|p| matches!(p, Place::Waiting(_))));
        assert_eq!(queue.waiting(), 3);
        assert!(queue.admit(FlightKind::Foreground, Priority::Waiting, 0).is_none(), "the line is full");
    }

    #[test]
    fn background_gives_way_at_half_the_line() {
        let queue = queue(1, 4);
        let _running = queue.admit(FlightKind::Background, Priority::Stale, 0).expect("a free permit is always taken");
        let first = queue.admit(FlightKind::Background, Priority::Stale, 0).expect("room below half the line");
        let _second = queue.admit(FlightKind::Background, Priority::Stale, 0).expect("room below half the line");
        assert!(queue.admit(FlightKind::Background, Priority::Stale, 0).is_none(), "half the line is waiting");
        let users: Vec<Place> =
            (0..2).map_while(|_| queue.admit(FlightKind::Foreground, Priority::Waiting, 0)).collect();
        assert_eq!(users.len(), 2, "users still get the other half");
        assert!(queue.admit(FlightKind::Foreground, Priority::Waiting, 0).is_none());
        drop(first);
        drop(users);
        assert_eq!(queue.waiting(), 1, "a dropped ticket gives its place back");
        assert!(queue.admit(FlightKind::Background, Priority::Stale, 0).is_some());
    }

    #[test]
    fn no_line_means_run_now_or_never() {
        let queue = queue(1, 0);
        let _running = queue.admit(FlightKind::Foreground, Priority::Waiting, 0).unwrap();
        assert!(queue.admit(FlightKind::Foreground, Priority::Waiting, 0).is_none());
        assert!(queue.admit(FlightKind::Background, Priority::Stale, 0).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_flight_gets_the_next_permit_and_leaves_the_line() {
        let queue = queue(1, 1);
        let Some(Place::Running(permit)) = queue.admit(FlightKind::Foreground, Priority::Waiting, 0) else {
            panic!("expected a permit")
        };
        let waiting = queue.admit(FlightKind::Foreground, Priority::Waiting, 0).unwrap();
        let turn = tokio::spawn(waiting.into_permit(Duration::from_secs(1)));
        tokio::task::yield_now().await;
        assert!(!turn.is_finished(), "no permit is free yet");
        drop(permit);
        assert!(turn.await.unwrap().is_ok());
        assert_eq!(queue.waiting(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_flight_gives_up_after_its_patience_and_leaves_the_line() {
        let queue = queue(1, 2);
        let Some(Place::Running(_permit)) = queue.admit(FlightKind::Foreground, Priority::Waiting, 0) else {
            panic!("expected a permit")
        };
        let waiting = queue.admit(FlightKind::Background, Priority::Stale, 0).unwrap();
        let began = tokio::time::Instant::now();
        assert_eq!(waiting.into_permit(Duration::from_millis(1_500)).await.unwrap_err(), NoPermit::TimedOut);
        assert_eq!(began.elapsed(), Duration::from_millis(1_500));
        assert_eq!(queue.waiting(), 0, "its place is given back");
    }

    #[tokio::test(start_paused = true)]
    async fn a_running_flight_needs_no_patience() {
        let queue = queue(1, 0);
        let running = queue.admit(FlightKind::Foreground, Priority::Waiting, 0).unwrap();
        assert!(running.into_permit(Duration::ZERO).await.is_ok());
    }
}
