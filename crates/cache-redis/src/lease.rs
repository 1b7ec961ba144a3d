//! The connection the tier checks out of its pool once and shares between
//! all operations, so that an operation costs one round trip, not two.
//!
//! **Why not a checkout per operation.** deadpool-redis checks every
//! connection it hands out with a pipelined `UNWATCH` + `PING`
//! (`Manager::recycle`), so checking one out per operation doubles its
//! round trips: a `get` of a 2 KB value took 127 µs at the median on
//! loopback, against 61 µs for a bare `GET`. A redis-rs
//! `MultiplexedConnection` does not need exclusive use: it is `Clone`, and
//! its driver task pipelines the concurrent requests of all clones over one
//! socket. So the tier checks a connection out once and keeps it (the
//! *lease*), and each operation sends on a clone of it: no checkout, no
//! check.
//!
//! **One lease, not several.** Measured on the 2-core machine this runs on
//! (`examples/get_latency.rs`, 32 tasks getting concurrently), one leased
//! connection carried 124,000 gets/s against 97,000 and 99,000 for two and
//! four taken in turn (medians of five runs), and sequential latency was
//! the same: the driver batches
//! the requests of many operations into one write and one read, and more
//! connections split the batches.
//!
//! **What replaces the check** is the outcome of the operations themselves,
//! since a connection that broke keeps failing until it is replaced. The
//! tier [`discard`](Lease::discard)s the lease after an I/O-level error or
//! a timeout: the connection is detached from the pool
//! (`Connection::take`), so no one gets it back, and the next operation
//! checks out another, recycled or new, under its own op timeout. Each
//! lease has a generation number and a failure ends only the lease it
//! happened on, so a burst of failures on one broken connection replaces
//! it once; and operations that find no lease wait for one refill, each
//! under its own op timeout, instead of each opening a connection.
//!
//! **In cluster mode** the lease is a redis-rs `ClusterConnection` from
//! deadpool-redis's cluster pool: one handle, itself multiplexed over one
//! connection per node, which follows `MOVED` and `ASK`, reconnects to a
//! node that went away and re-reads the slot map when the topology
//! changes. The tier never discards it (see `Connections::discard` in the
//! tier): one node failing says nothing about the handle, and a fresh one
//! would have to learn the whole cluster again.
//!
//! What it is not: a retry policy or a health check. It never sends a
//! command of its own; the tier decides what counts as broken.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use deadpool_redis::PoolError;
use deadpool_redis::redis::aio::MultiplexedConnection;
use deadpool_redis::redis::cluster_async::ClusterConnection;

/// A pool a lease checks connections out of: deadpool-redis's, for one
/// Redis or for a cluster.
pub(crate) trait Checkout: Send + Sync + 'static {
    /// What the pool hands out.
    type Held: Send;
    /// A cheap clone of it to send on.
    type Handle: Clone + Send;

    fn checkout(&self) -> impl Future<Output = Result<Self::Held, PoolError>> + Send;

    fn handle(held: &Self::Held) -> Self::Handle;

    /// Takes `held` out of the pool for good.
    fn detach(held: Self::Held);
}

impl Checkout for deadpool_redis::Pool {
    type Held = deadpool_redis::Connection;
    type Handle = MultiplexedConnection;

    fn checkout(&self) -> impl Future<Output = Result<Self::Held, PoolError>> + Send {
        self.get()
    }

    fn handle(held: &Self::Held) -> MultiplexedConnection {
        MultiplexedConnection::clone(held)
    }

    fn detach(held: Self::Held) {
        drop(deadpool_redis::Connection::take(held));
    }
}

impl Checkout for deadpool_redis::cluster::Pool {
    type Held = deadpool_redis::cluster::Connection;
    type Handle = ClusterConnection;

    fn checkout(&self) -> impl Future<Output = Result<Self::Held, PoolError>> + Send {
        self.get()
    }

    fn handle(held: &Self::Held) -> ClusterConnection {
        ClusterConnection::clone(held)
    }

    fn detach(held: Self::Held) {
        drop(deadpool_redis::cluster::Connection::take(held));
    }
}

/// The tier's leased connection, if it has one, and the pool it comes
/// from.
pub(crate) struct Lease<P: Checkout> {
    pool: P,
    current: Mutex<Option<Leased<P::Held>>>,
    /// Held by the one operation that checks a connection out.
    refill: tokio::sync::Mutex<()>,
    /// The next lease's generation.
    generations: AtomicU64,
}

/// A connection checked out of the pool for as long as it works.
struct Leased<H> {
    generation: u64,
    connection: H,
}

/// Which lease an operation's connection came from, to end that lease (and
/// no later one) if the connection fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticket {
    generation: u64,
    /// Whether the lease was already there when the operation asked, rather
    /// than made (or waited for) by it: such a connection may have broken
    /// while idle, unnoticed.
    pub(crate) reused: bool,
}

impl<P: Checkout> Lease<P> {
    /// No connection yet: the first operation checks one out.
    pub(crate) fn new(pool: P) -> Self {
        Self { pool, current: Mutex::new(None), refill: tokio::sync::Mutex::new(()), generations: AtomicU64::new(0) }
    }

    /// A connection to send one request on: a clone of the leased one, or,
    /// if there is none, one checked out of the pool (which may mean
    /// opening it) and leased.
    ///
    /// Cancel-safe: an operation abandoned while it waits or checks out
    /// leaves things as they were, and the next one tries again.
    pub(crate) async fn get(&self) -> Result<(Ticket, P::Handle), PoolError> {
        if let Some(found) = self.clone_current(true) {
            return Ok(found);
        }
        // One operation at a time checks out; the others wait here and use
        // what it leased, rather than each opening a connection.
        let _refilling = self.refill.lock().await;
        if let Some(found) = self.clone_current(false) {
            return Ok(found);
        }
        let connection = self.pool.checkout().await?;
        let generation = self.generations.fetch_add(1, Ordering::Relaxed);
        let clone = P::handle(&connection);
        *self.lock() = Some(Leased { generation, connection });
        Ok((Ticket { generation, reused: false }, clone))
    }

    /// Ends the lease `ticket` came from, if it is still the current one:
    /// its connection leaves the pool for good (it closes once the last
    /// clone in flight is dropped), and the next operation leases another.
    /// Returns whether it ended one.
    pub(crate) fn discard(&self, ticket: Ticket) -> bool {
        let ended = {
            let mut current = self.lock();
            match &*current {
                Some(leased) if leased.generation == ticket.generation => current.take(),
                _ => None,
            }
        };
        match ended {
            Some(leased) => {
                // Detached rather than returned: returned, it would be
                // handed out again after a recycle check, which a broken
                // connection fails anyway and a stalled one waits out.
                P::detach(leased.connection);
                true
            }
            None => false,
        }
    }

    /// Whether no operation has leased a connection or started to: true
    /// from construction until the first operation asks for one.
    pub(crate) fn is_untouched(&self) -> bool {
        self.lock().is_none() && self.generations.load(Ordering::Relaxed) == 0 && self.refill.try_lock().is_ok()
    }

    fn clone_current(&self, reused: bool) -> Option<(Ticket, P::Handle)> {
        let current = self.lock();
        let leased = current.as_ref()?;
        let ticket = Ticket { generation: leased.generation, reused };
        Some((ticket, P::handle(&leased.connection)))
    }

    fn lock(&self) -> MutexGuard<'_, Option<Leased<P::Held>>> {
        // The lock guards one field that every path leaves consistent, so a
        // panic elsewhere while it was held does not make it unusable.
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use deadpool_redis::redis;
    use deadpool_redis::{Manager, Pool, Runtime};

    use super::*;
    use crate::testing::RedisServer;

    fn lease(server: &RedisServer) -> Lease<Pool> {
        let manager = Manager::new(server.url()).unwrap();
        Lease::new(Pool::builder(manager).max_size(4).runtime(Runtime::Tokio1).build().unwrap())
    }

    async fn ping(connection: &mut MultiplexedConnection) -> redis::RedisResult<String> {
        redis::cmd("PING").query_async(connection).await
    }

    #[tokio::test]
    async fn operations_share_one_leased_connection() {
        let server = RedisServer::start();
        let lease = lease(&server);
        let (first, mut connection) = lease.get().await.unwrap();
        assert!(!first.reused, "made by the first operation");
        assert_eq!(ping(&mut connection).await.unwrap(), "PONG");
        for _ in 0..5 {
            let (ticket, mut connection) = lease.get().await.unwrap();
            assert_eq!(ticket, Ticket { generation: first.generation, reused: true });
            assert_eq!(ping(&mut connection).await.unwrap(), "PONG");
        }
        let status = lease.pool.status();
        assert_eq!((status.size, status.available), (1, 0), "one connection, checked out");
    }

    #[tokio::test]
    async fn a_discarded_lease_leaves_the_pool_and_only_the_current_one_is_discarded() {
        let server = RedisServer::start();
        let lease = lease(&server);
        let (old, _) = lease.get().await.unwrap();
        assert!(lease.discard(old));
        assert!(!lease.discard(old), "already gone");
        assert_eq!(lease.pool.status().size, 0, "detached, not returned");

        let (new, mut connection) = lease.get().await.unwrap();
        assert_ne!(new.generation, old.generation);
        assert!(!lease.discard(old), "a late failure on the old lease leaves the new one alone");
        assert_eq!(ping(&mut connection).await.unwrap(), "PONG");
        assert_eq!(lease.get().await.unwrap().0.generation, new.generation);
        assert_eq!(lease.pool.status().size, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn operations_that_find_no_lease_wait_for_one_checkout() {
        let server = RedisServer::start();
        let lease = Arc::new(lease(&server));
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let lease = Arc::clone(&lease);
                tokio::spawn(async move { lease.get().await.map(|(ticket, _)| ticket.generation) })
            })
            .collect();
        let mut generations = Vec::new();
        for task in tasks {
            generations.push(task.await.unwrap().unwrap());
        }
        generations.dedup();
        assert_eq!(generations.len(), 1, "one lease for all: {generations:?}");
        assert_eq!(lease.pool.status().size, 1, "one connection opened");
    }
}
