//! What an operation sends on, whichever Redis the tier talks to: one
//! server through a leased multiplexed connection, or a cluster through a
//! leased cluster connection ([`Connections`]); and the one round trip's
//! worth of [`Request`] it sends.
//!
//! The tier's steps (breaker, timeout, classification, recording) are the
//! same in both modes; only the sending differs, and it is all here. In a
//! cluster, a command on a key goes to the primary that serves the key's
//! slot (redis-rs follows `MOVED` and `ASK`); a pipeline's commands must
//! share one slot, as the tier's do (each touches one wallet's keys);
//! [`Request::OnNode`] sends a pipeline to one named primary (a pattern
//! deletion's walk of that primary), and [`Request::AllPrimaries`] one
//! command to every primary (the health probe).
//!
//! What it is not: a retry policy. The cluster client retries a command
//! whose node moved or went away for as long as the op timeout around it
//! lets it; the tier decides nothing more here.

use deadpool_redis::PoolError;
use deadpool_redis::redis::aio::MultiplexedConnection;
use deadpool_redis::redis::cluster_async::ClusterConnection;
use deadpool_redis::redis::cluster_routing::{
    MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo, SingleNodeRoutingInfo,
};
use deadpool_redis::redis::{self, FromRedisValue};

use crate::lease::{Lease, Ticket};

/// One round trip's worth of request.
pub(crate) enum Request<'a> {
    /// One command, to the server (or the slot's primary).
    Command(&'a redis::Cmd),
    /// Commands in one round trip, to the server (or the primary of the
    /// slot they share).
    Pipeline(&'a redis::Pipeline),
    /// Commands in one round trip to the primary at this address; in
    /// standalone mode, to the server.
    OnNode(&'a redis::Pipeline, &'a NodeAddress),
    /// One command to every primary, every one of which must answer; in
    /// standalone mode, to the server.
    AllPrimaries(&'a redis::Cmd),
}

/// Where a cluster node listens, as the cluster names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeAddress {
    pub(crate) host: String,
    pub(crate) port: u16,
}

/// The tier's leased connection, to one server or to a cluster.
pub(crate) enum Connections {
    Single(Lease<deadpool_redis::Pool>),
    Cluster(Lease<deadpool_redis::cluster::Pool>),
}

/// A connection to send one request on.
pub(crate) enum Link {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl Connections {
    pub(crate) async fn get(&self) -> Result<(Ticket, Link), PoolError> {
        match self {
            Self::Single(lease) => lease.get().await.map(|(ticket, connection)| (ticket, Link::Single(connection))),
            Self::Cluster(lease) => lease.get().await.map(|(ticket, connection)| (ticket, Link::Cluster(connection))),
        }
    }

    /// Ends the lease `ticket` came from if it is a single server's (see
    /// [`Lease::discard`]). A cluster connection is kept: it is one
    /// connection per node, it reconnects a node that failed and re-reads
    /// the slot map by itself, and a failure of one node (a timeout, a
    /// reset) says nothing about the others; a new one would have to learn
    /// the cluster again, from seeds that may include the failed node.
    pub(crate) fn discard(&self, ticket: Ticket) {
        match self {
            Self::Single(lease) => {
                lease.discard(ticket);
            }
            Self::Cluster(_) => {}
        }
    }

    /// Whether no operation has leased a connection or started to.
    pub(crate) fn is_untouched(&self) -> bool {
        match self {
            Self::Single(lease) => lease.is_untouched(),
            Self::Cluster(lease) => lease.is_untouched(),
        }
    }
}

impl Link {
    pub(crate) async fn send<R: FromRedisValue>(&mut self, request: &Request<'_>) -> redis::RedisResult<R> {
        match (self, request) {
            (Self::Single(connection), Request::Command(command) | Request::AllPrimaries(command)) => {
                command.query_async(connection).await
            }
            (Self::Single(connection), Request::Pipeline(pipeline) | Request::OnNode(pipeline, _)) => {
                pipeline.query_async(connection).await
            }
            (Self::Cluster(connection), Request::Command(command)) => command.query_async(connection).await,
            (Self::Cluster(connection), Request::Pipeline(pipeline)) => pipeline.query_async(connection).await,
            (Self::Cluster(connection), Request::OnNode(pipeline, node)) => {
                let count = pipeline.cmd_iter().count();
                let route = SingleNodeRoutingInfo::ByAddress { host: node.host.clone(), port: node.port };
                let replies = connection.route_pipeline((*pipeline).clone(), 0, count, route).await?;
                Ok(redis::from_redis_value(redis::Value::Array(replies))?)
            }
            (Self::Cluster(connection), Request::AllPrimaries(command)) => {
                let routing =
                    RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, Some(ResponsePolicy::AllSucceeded)));
                let reply = connection.route_command((*command).clone(), routing).await?;
                Ok(redis::from_redis_value(reply)?)
            }
        }
    }
}
