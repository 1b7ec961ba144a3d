//! The global limit on loads and the bounded line in front of it.
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
//! Once in line, flights are served first come, first served (tokio's
//! semaphore is fair). A stricter priority, letting users overtake
//! refreshes already waiting, would need a second line and gains little:
//! the refreshes ahead of a user are at most half the line.
//!
//! This counts flights, not callers: joining a flight already started
//! costs no permit and no place.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Config;
use crate::observer::FlightKind;

/// Permits for calling the source, and a count of flights waiting for one.
#[derive(Debug)]
pub(crate) struct Queue {
    permits: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    max_waiting: usize,
    max_waiting_background: usize,
}

/// Where an admitted flight stands.
#[derive(Debug)]
pub(crate) enum Place {
    /// It took a free permit and may call the source at once.
    Running(OwnedSemaphorePermit),
    /// It waits in line for a permit.
    Waiting(Ticket),
}

/// A place in line; giving it up (by drop or by getting a permit) makes room
/// for another flight.
#[derive(Debug)]
pub(crate) struct Ticket {
    permits: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
}

impl Queue {
    pub(crate) fn new(config: &Config) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(config.concurrency.get().min(Semaphore::MAX_PERMITS))),
            waiting: Arc::new(AtomicUsize::new(0)),
            max_waiting: config.max_queued,
            max_waiting_background: config.max_queued_background(),
        }
    }

    /// A permit if one is free, else a place in line if the line has room
    /// for a flight of this kind, else `None`.
    pub(crate) fn admit(&self, kind: FlightKind) -> Option<Place> {
        // With flights in line, tokio hands every released permit to the
        // first of them, so this never jumps the line.
        if let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() {
            return Some(Place::Running(permit));
        }
        let limit = match kind {
            FlightKind::Foreground => self.max_waiting,
            FlightKind::Background => self.max_waiting_background,
        };
        // Check and take a place in one step, so two flights admitted at
        // once cannot both take the last place.
        self.waiting.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < limit).then_some(n + 1)).ok()?;
        Some(Place::Waiting(Ticket { permits: Arc::clone(&self.permits), waiting: Arc::clone(&self.waiting) }))
    }

    /// Flights waiting for a permit now.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }
}

/// Why a flight in line got no permit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoPermit {
    /// None came free within the queue timeout.
    TimedOut,
    /// The semaphore was closed, which this crate never does.
    Closed,
}

impl Place {
    /// Waits for this flight's turn, at most `patience` if it is in line.
    /// Giving up leaves the line at once, so the flights behind move up.
    pub(crate) async fn into_permit(self, patience: Duration) -> Result<OwnedSemaphorePermit, NoPermit> {
        match self {
            Self::Running(permit) => Ok(permit),
            Self::Waiting(ticket) => {
                let turn = tokio::time::timeout(patience, Arc::clone(&ticket.permits).acquire_owned()).await;
                drop(ticket);
                match turn {
                    Ok(Ok(permit)) => Ok(permit),
                    Ok(Err(_closed)) => Err(NoPermit::Closed),
                    Err(_elapsed) => Err(NoPermit::TimedOut),
                }
            }
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.waiting.fetch_sub(1, Ordering::AcqRel);
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
        let places: Vec<Place> = (0..5).map_while(|_| queue.admit(FlightKind::Foreground)).collect();
        assert_eq!(places.len(), 5, "2 running and 3 waiting");
        assert!(matches!(places[..2], [Place::Running(_), Place::Running(_)]));
        assert!(places[2..].iter().all(|p| matches!(p, Place::Waiting(_))));
        assert_eq!(queue.waiting(), 3);
        assert!(queue.admit(FlightKind::Foreground).is_none(), "the line is full");
    }

    #[test]
    fn background_gives_way_at_half_the_line() {
        let queue = queue(1, 4);
        let _running = queue.admit(FlightKind::Background).expect("a free permit is always taken");
        let first = queue.admit(FlightKind::Background).expect("room below half the line");
        let _second = queue.admit(FlightKind::Background).expect("room below half the line");
        assert!(queue.admit(FlightKind::Background).is_none(), "half the line is waiting");
        let users: Vec<Place> = (0..2).map_while(|_| queue.admit(FlightKind::Foreground)).collect();
        assert_eq!(users.len(), 2, "users still get the other half");
        assert!(queue.admit(FlightKind::Foreground).is_none());
        drop(first);
        drop(users);
        assert_eq!(queue.waiting(), 1, "a dropped ticket gives its place back");
        assert!(queue.admit(FlightKind::Background).is_some());
    }

    #[test]
    fn no_line_means_run_now_or_never() {
        let queue = queue(1, 0);
        let _running = queue.admit(FlightKind::Foreground).unwrap();
        assert!(queue.admit(FlightKind::Foreground).is_none());
        assert!(queue.admit(FlightKind::Background).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_flight_gets_the_next_permit_and_leaves_the_line() {
        let queue = queue(1, 1);
        let Some(Place::Running(permit)) = queue.admit(FlightKind::Foreground) else { panic!("expected a permit") };
        let waiting = queue.admit(FlightKind::Foreground).unwrap();
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
        let Some(Place::Running(_permit)) = queue.admit(FlightKind::Foreground) else { panic!("expected a permit") };
        let waiting = queue.admit(FlightKind::Background).unwrap();
        let began = tokio::time::Instant::now();
        assert_eq!(waiting.into_permit(Duration::from_millis(1_500)).await.unwrap_err(), NoPermit::TimedOut);
        assert_eq!(began.elapsed(), Duration::from_millis(1_500));
        assert_eq!(queue.waiting(), 0, "its place is given back");
    }

    #[tokio::test(start_paused = true)]
    async fn a_running_flight_needs_no_patience() {
        let queue = queue(1, 0);
        let running = queue.admit(FlightKind::Foreground).unwrap();
        assert!(running.into_permit(Duration::ZERO).await.is_ok());
    }
}
