//! The open connections, each with whether it is serving a request and
//! since when it has been idle, so that the server can hold a cap on them
//! and, at the cap, close the one that has waited longest for a request.
//!
//! It knows nothing of HTTP: a connection is idle while no request is being
//! handled on it, whether it is waiting for its first bytes, between
//! keep-alive requests, or an HTTP/2 connection with no open stream. It
//! also notes when bytes first arrived on an idle connection, which for
//! HTTP/1 is when the next request began to arrive (see [`Noticing`]).

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Every open connection, by id.
#[derive(Debug)]
pub(super) struct Registry {
    open: Mutex<HashMap<u64, Arc<Connection>>>,
    next_id: AtomicU64,
    /// Wakes the accept loop when a connection ends or turns idle.
    changed: Arc<Notify>,
    /// What `idle_since` counts from.
    epoch: Instant,
    cap: usize,
}

/// One open connection's state, shared by its task and the registry.
#[derive(Debug)]
pub(super) struct Connection {
    epoch: Instant,
    /// The registry's [`Registry::changed`].
    changed: Arc<Notify>,
    /// Requests being handled on it.
    busy: AtomicUsize,
    /// Milliseconds from the registry's epoch at which `busy` last fell to
    /// zero (or the connection was accepted).
    idle_since_ms: AtomicU64,
    /// Milliseconds from the epoch at which bytes first arrived while it
    /// was idle, [`NOTHING_ARRIVED`] if none have since its last request
    /// began.
    arrived_ms: AtomicU64,
    /// Set by its first request.
    served: AtomicBool,
    /// Set once the connection has been asked to close.
    closing: AtomicBool,
    close: Notify,
}

/// [`Connection::arrived_ms`] when nothing has arrived.
const NOTHING_ARRIVED: u64 = u64::MAX;

/// A registered connection; dropping it unregisters it.
#[derive(Debug)]
pub(super) struct Registration {
    registry: Arc<Registry>,
    id: u64,
    connection: Arc<Connection>,
}

/// Held while one request is handled; dropping it marks the end.
#[derive(Debug)]
pub(super) struct Busy {
    connection: Arc<Connection>,
}

impl Registry {
    /// A registry that lets at most `cap` connections be open (at least one).
    pub(super) fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            open: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            changed: Arc::new(Notify::new()),
            epoch: Instant::now(),
            cap: cap.max(1),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<Connection>>> {
        // The map stays consistent even if a holder panicked: every change
        // is a single insert or remove.
        self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Connections open now.
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Registers a connection accepted now, idle from this moment.
    pub(super) fn register(self: &Arc<Self>) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let connection = Arc::new(Connection {
            epoch: self.epoch,
            changed: Arc::clone(&self.changed),
            busy: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(millis_since(self.epoch)),
            arrived_ms: AtomicU64::new(NOTHING_ARRIVED),
            served: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            close: Notify::new(),
        });
        self.lock().insert(id, Arc::clone(&connection));
        Registration { registry: Arc::clone(self), id, connection }
    }

    /// Returns once a new connection may be accepted. At the cap it asks
    /// the longest-idle connection to close and waits for one to end; when
    /// every connection is serving a request it waits for one to end or
    /// turn idle, leaving new clients in the listen backlog.
    pub(super) async fn room(&self) {
        loop {
            let changed = self.changed.notified();
            {
                let open = self.lock();
                if open.len() < self.cap {
                    return;
                }
                // Connections already asked to close count as going: asking
                // another for each accept would close more than needed.
                let closing = open.values().filter(|c| c.closing.load(Ordering::Relaxed)).count();
                if open.len() - closing >= self.cap
                    && let Some(idlest) = open
                        .values()
                        .filter(|c| !c.closing.load(Ordering::Relaxed) && c.is_idle())
                        .min_by_key(|c| c.idle_since_ms.load(Ordering::Relaxed))
                {
                    tracing::debug!(open = open.len(), "connection cap reached; closing the longest-idle connection");
                    idlest.request_close();
                }
            }
            changed.await;
        }
    }
}

impl Registration {
    /// The connection's shared state.
    pub(super) fn connection(&self) -> &Arc<Connection> {
        &self.connection
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
        self.registry.changed.notify_one();
    }
}

impl Connection {
    /// Marks a request as being handled until the returned guard drops.
    pub(super) fn start_request(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::AcqRel);
        self.served.store(true, Ordering::Relaxed);
        self.arrived_ms.store(NOTHING_ARRIVED, Ordering::Relaxed);
        Busy { connection: Arc::clone(self) }
    }

    /// Whether no request is being handled.
    pub(super) fn is_idle(&self) -> bool {
        self.busy.load(Ordering::Acquire) == 0
    }

    /// Whether a request has ever been handled on it.
    pub(super) fn has_served(&self) -> bool {
        self.served.load(Ordering::Relaxed)
    }

    /// When the connection last became idle (meaningful while it is).
    pub(super) fn idle_since(&self) -> Instant {
        self.epoch + Duration::from_millis(self.idle_since_ms.load(Ordering::Relaxed))
    }

    /// Notes that bytes arrived now: the start of the next request if the
    /// connection is idle and nothing had arrived since its last request
    /// began. Bytes arriving while a request is handled (a request body, or
    /// the next request of a pipelining client) are not noted.
    pub(super) fn note_arrival(&self) {
        if self.is_idle() {
            let _ = self.arrived_ms.compare_exchange(
                NOTHING_ARRIVED,
                millis_since(self.epoch),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// When bytes first arrived on the idle connection, if they have since
    /// its last request began.
    pub(super) fn arrived_at(&self) -> Option<Instant> {
        match self.arrived_ms.load(Ordering::Relaxed) {
            NOTHING_ARRIVED => None,
            ms => Some(self.epoch + Duration::from_millis(ms)),
        }
    }

    /// Asks the connection's task to close it. The task decides how: a
    /// request being handled is always finished first.
    pub(super) fn request_close(&self) {
        if !self.closing.swap(true, Ordering::AcqRel) {
            // `notify_one` keeps a permit, so a task not yet waiting still
            // sees the request.
            self.close.notify_one();
        }
    }

    /// Completes once [`request_close`](Self::request_close) has been
    /// called.
    pub(super) async fn close_requested(&self) {
        self.close.notified().await;
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let connection = &self.connection;
        // Stamp first, so that whoever sees the count at zero sees the new
        // time (or a later one).
        connection.idle_since_ms.store(millis_since(connection.epoch), Ordering::Relaxed);
        if connection.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            // An accept waiting at the cap may now close this one.
            connection.changed.notify_one();
        }
    }
}

/// A connection's stream that notes every read that brings bytes on the
/// connection's state ([`Connection::note_arrival`]).
#[derive(Debug)]
pub(super) struct Noticing<S> {
    stream: S,
    connection: Arc<Connection>,
}

impl<S> Noticing<S> {
    /// `stream`, reporting to `connection`.
    pub(super) fn new(stream: S, connection: Arc<Connection>) -> Self {
        Self { stream, connection }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Noticing<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.connection.note_arrival();
        }
        polled
    }
}

forward_async_write!(Noticing<S>, S: AsyncWrite);

fn millis_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn at_the_cap_the_longest_idle_connection_is_asked_to_close() {
        let registry = Registry::new(3);
        let oldest = registry.register();
        tokio::time::advance(Duration::from_secs(1)).await;
        let busy = registry.register();
        let _request = busy.connection().start_request();
        tokio::time::advance(Duration::from_secs(1)).await;
        let newest = registry.register();
        assert_eq!(registry.len(), 3);

        let room = registry.room();
        tokio::pin!(room);
        // Nothing frees a slot until the asked connection goes.
        assert!(futures_poll_once(room.as_mut()).await.is_none());
        assert!(oldest.connection().closing.load(Ordering::Relaxed), "the longest-idle one was asked");
        assert!(!busy.connection().closing.load(Ordering::Relaxed), "a connection mid-request is never asked");
        assert!(!newest.connection().closing.load(Ordering::Relaxed));
        oldest.connection().close_requested().await;
        drop(oldest);
        room.await;
        assert_eq!(registry.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn with_every_connection_busy_room_waits_for_one_to_turn_idle() {
        let registry = Registry::new(1);
        let only = registry.register();
        let request = only.connection().start_request();
        let room = registry.room();
        tokio::pin!(room);
        assert!(futures_poll_once(room.as_mut()).await.is_none());
        assert!(!only.connection().closing.load(Ordering::Relaxed));
        // Once its request ends it is idle, and the waiting accept asks it
        // to close.
        drop(request);
        assert!(futures_poll_once(room.as_mut()).await.is_none());
        assert!(only.connection().closing.load(Ordering::Relaxed));
        drop(only);
        room.await;
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_arriving_on_an_idle_connection_are_noted_until_its_next_request() {
        let registry = Registry::new(1);
        let only = registry.register();
        let connection = only.connection();
        assert_eq!(connection.arrived_at(), None);
        tokio::time::advance(Duration::from_secs(1)).await;
        let first = Instant::now();
        connection.note_arrival();
        tokio::time::advance(Duration::from_secs(1)).await;
        connection.note_arrival();
        assert_eq!(connection.arrived_at(), Some(first), "the first arrival counts");
        let request = connection.start_request();
        assert_eq!(connection.arrived_at(), None, "a request began");
        connection.note_arrival();
        assert_eq!(connection.arrived_at(), None, "bytes during a request are its own");
        drop(request);
        assert_eq!(connection.arrived_at(), None);
    }

    /// Polls a future once; `None` if it is pending.
    async fn futures_poll_once<F: std::future::Future + Unpin>(future: F) -> Option<F::Output> {
        tokio::select! {
            biased;
            output = future => Some(output),
            () = std::future::ready(()) => None,
        }
    }
}
