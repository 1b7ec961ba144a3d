//! Single-flight reads: concurrent `get`s of one key share one round trip
//! to Redis and its raw answer; each caller decodes the bytes for itself.
//!
//! Why: a hot wallet that misses memory on many requests at once would
//! otherwise cost one `GET` per request, each copying the whole value into
//! Redis's output buffers and across the socket. Sharing the raw bytes
//! (not the decoded value) keeps the tier generic: callers may ask for
//! different types, and decoding is cheap next to a round trip.
//!
//! A flight is a [`tokio::sync::OnceCell`] in a map keyed by the Redis
//! key. The first caller's read fills it; the others wait on it. The read
//! takes its flight out of the map as soon as it has its answer, before
//! the waiters are woken, so a `get` that starts after the answer arrived
//! (after a `set` of the same key, say) makes a read of its own and sees
//! the new value. If the caller making the read is cancelled, one of the
//! waiters makes it instead (the cell lets the next one initialize it), so
//! no waiter is left without an answer.
//!
//! What it is not: a cache. Nothing outlives the flight.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::OnceCell;

use crate::error::Error;

/// What one round trip found under a key.
#[derive(Debug, Clone)]
pub(crate) enum Raw {
    /// Nothing (or an empty string, which nothing this crate writes is).
    Absent,
    /// A value larger than the configured limit, left unread past it.
    Oversized,
    /// The stored bytes, shared by every caller of the flight.
    Bytes(Arc<Vec<u8>>),
}

/// The flights in progress, by key.
#[derive(Debug, Default)]
pub(crate) struct Reads {
    flights: Mutex<HashMap<String, Flight>>,
    next_id: AtomicU64,
}

#[derive(Debug, Clone)]
struct Flight {
    /// Tells this flight from a later one under the same key.
    id: u64,
    answer: Arc<OnceCell<Result<Raw, Error>>>,
}

impl Reads {
    /// The answer for `key`: that of the flight in progress if there is
    /// one, else of a new one that calls `read`.
    pub(crate) async fn read<F, Fut>(&self, key: &str, read: F) -> Result<Raw, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Raw, Error>>,
    {
        let flight = self.join(key);
        let answer = flight.answer.get_or_init(|| async {
            let answer = read().await;
            self.land(key, flight.id);
            answer
        });
        answer.await.clone()
    }

    /// How many flights are in progress (for tests).
    #[cfg(test)]
    fn in_progress(&self) -> usize {
        self.lock().len()
    }

    fn join(&self, key: &str) -> Flight {
        let mut flights = self.lock();
        if let Some(flight) = flights.get(key) {
            return flight.clone();
        }
        let flight = Flight { id: self.next_id.fetch_add(1, Ordering::Relaxed), answer: Arc::default() };
        flights.insert(key.to_owned(), flight.clone());
        flight
    }

    /// Takes flight `id` out of the map, if it is still the one for `key`.
    fn land(&self, key: &str, id: u64) {
        let mut flights = self.lock();
        if flights.get(key).is_some_and(|flight| flight.id == id) {
            flights.remove(key);
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Flight>> {
        // The map is left consistent by every path (one insert or one
        // remove), so a panic elsewhere while it was held does no harm.
        self.flights.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use tokio::sync::Notify;

    use super::*;

    fn bytes(raw: &Raw) -> &[u8] {
        match raw {
            Raw::Bytes(bytes) => bytes,
            other => panic!("not bytes: {other:?}"),
        }
    }

    #[tokio::test]
    async fn concurrent_reads_of_one_key_share_one_answer() {
        let reads = Arc::new(Reads::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(Notify::new());
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (reads, calls, release) = (Arc::clone(&reads), Arc::clone(&calls), Arc::clone(&release));
                tokio::spawn(async move {
                    reads
                        .read("k", || async {
                            calls.fetch_add(1, Ordering::SeqCst);
                            release.notified().await;
                            Ok(Raw::Bytes(Arc::new(b"v".to_vec())))
                        })
                        .await
                })
            })
            .collect();
        // Every task has joined once the one read is under way and all are
        // parked; the read then waits for the release.
        while calls.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        release.notify_one();
        for task in tasks {
            assert_eq!(bytes(&task.await.unwrap().unwrap()), b"v");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one read for all");
        assert_eq!(reads.in_progress(), 0, "the flight has landed");
    }

    #[tokio::test]
    async fn a_read_after_an_answer_is_a_new_read_and_errors_are_shared_too() {
        let reads = Reads::default();
        let first = reads.read("k", || async { Ok(Raw::Absent) }).await.unwrap();
        assert!(matches!(first, Raw::Absent));
        let second = reads.read("k", || async { Err(Error::Unavailable) }).await;
        assert!(matches!(second, Err(Error::Unavailable)), "not the first flight's answer");
        assert_eq!(reads.in_progress(), 0);
    }

    #[tokio::test]
    async fn a_cancelled_reader_leaves_the_read_to_a_waiter() {
        let reads = Arc::new(Reads::default());
        let started = Arc::new(Notify::new());
        let leader = tokio::spawn({
            let (reads, started) = (Arc::clone(&reads), Arc::clone(&started));
            async move {
                reads
                    .read("k", || async move {
                        started.notify_one();
                        std::future::pending::<Result<Raw, Error>>().await
                    })
                    .await
            }
        });
        started.notified().await;
        let follower = tokio::spawn({
            let reads = Arc::clone(&reads);
            async move { reads.read("k", || async { Ok(Raw::Oversized) }).await }
        });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        leader.abort();
        assert!(matches!(follower.await.unwrap(), Ok(Raw::Oversized)), "the waiter read for itself");
    }
}
