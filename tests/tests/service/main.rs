//! The service over real HTTP on an ephemeral port, with scripted sources
//! and upstreams: the cache semantics, stampedes, failures, bad input and
//! the operational routes.

mod admin;
mod admin_listener;
mod conditional;
mod connections;
mod counting;
mod eager;
mod failures;
mod input;
mod observability;
mod overload;
mod priority;
mod stale;
mod stampede;
mod upstream;
mod warm;

/// An EVM wallet, as every test uses it.
pub(crate) const WALLET: &str = "0x52908400098527886e0f7030069857d2e4169ee7";
/// Its path.
pub(crate) const PATH: &str = "/v4/positions/0x52908400098527886e0f7030069857d2e4169ee7";
