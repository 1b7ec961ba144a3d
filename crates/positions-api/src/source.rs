//! Where fresh positions come from: one trait, two implementations.
//!
//! - [`ledger`]: the embedded default; positions computed from trade and
//!   price files by the average-cost method, so the service runs with no
//!   other service;
//! - [`http`]: an upstream analytics service at a base URL.
//!
//! A source is slow by assumption (hundreds of milliseconds per wallet is
//! the case this service exists for); everything above it exists to call it
//! rarely. It reports failures as [`SourceError`], always with a cause.

pub mod http;
pub mod ledger;

use std::future::Future;
use std::pin::Pin;

use crate::model::Positions;
use crate::wallet::Wallet;

/// A boxed, sendable future: what [`Source::fetch`] returns, so that the
/// source can be chosen at run time.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Computes one wallet's positions.
pub trait Source: Send + Sync + std::fmt::Debug + 'static {
    /// A short name for logs and metrics labels: `ledger` or `http`.
    fn name(&self) -> &'static str;

    /// Fetches `wallet`'s positions. A wallet the source does not know has
    /// no positions: that is `Ok` with an empty list, not an error.
    fn fetch<'a>(&'a self, wallet: &'a Wallet) -> BoxFuture<'a, Result<Positions, SourceError>>;
}

/// Why a source could not produce positions.
///
/// The message names the failure class and its cause, and is what a client
/// reads in a 502 body, so it never names the upstream's URL or host, nor
/// its credentials. Causes from the HTTP client and the TLS library are
/// therefore kept as text, with the upstream's address scrubbed out, rather
/// than as `source()` chains: a certificate error names the host it
/// expected, and a chain would hand that to whoever renders it.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source did not answer in time.
    #[error("upstream timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// No connection could be made: the name did not resolve, nothing
    /// listened, or connecting took too long.
    #[error("upstream unreachable: {0}")]
    Unreachable(String),
    /// The connection was made, the TLS handshake failed: the certificate
    /// did not chain to a trusted authority, did not name the upstream, or
    /// the peer does not speak TLS.
    #[error("upstream TLS handshake failed: {0}")]
    Tls(String),
    /// The exchange broke off after connecting.
    #[error("upstream connection failed: {0}")]
    Transport(String),
    /// The upstream answered with a status that is neither success nor 404.
    #[error("upstream answered {0}")]
    Status(u16),
    /// The upstream's answer could not be read as positions.
    #[error("upstream body invalid: {0}")]
    BadBody(String),
    /// The ledger could not compute the wallet's positions.
    #[error("ledger: {0}")]
    Ledger(String),
}

impl SourceError {
    /// Whether the failure was a timeout (the API answers 504 rather than
    /// 502).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout(_))
    }
}
