//! The service with Redis as tier 2, against real `redis-server` processes
//! that the tests start, kill, restart and freeze, and that refuse what
//! they are asked; and on a Redis Cluster that loses a primary or moves
//! slots under load.

mod cluster;
mod faults;
mod health;
mod refusals;
mod sharing;

use std::sync::Arc;

use system_tests::FakeSource;

/// An EVM wallet whose path every test uses.
pub(crate) const PATH: &str = "/v4/positions/0x52908400098527886e0f7030069857d2e4169ee7";
/// Its Redis key under the default namespace.
pub(crate) const KEY: &str = "poscache:positions:v2:{0x52908400098527886e0f7030069857d2e4169ee7}";

/// The path of the `i`th of many test wallets.
pub(crate) fn wallet_path(i: usize) -> String {
    format!("/v4/positions/0x{i:040x}")
}

pub(crate) fn source() -> Arc<FakeSource> {
    Arc::new(FakeSource::new())
}
