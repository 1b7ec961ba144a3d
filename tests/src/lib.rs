//! Shared helpers for the system tests: the service on an ephemeral port,
//! scripted sources and upstreams, and an HTTP client that reports exactly
//! what came back.
//!
//! Everything here talks to real sockets; nothing is mocked below the
//! source trait.

#![warn(missing_docs)]

pub mod client;
pub mod fake_source;
pub mod fuzz_checks;
pub mod service;
pub mod upstream;

pub use client::{Client, Reply};
pub use fake_source::{Behavior, FakeSource};
pub use service::TestService;
pub use upstream::Upstream;

use std::future::Future;
use std::time::Duration;

/// Waits until `condition` holds, checking it every few milliseconds, or
/// panics naming `what` after `deadline`. The one wait of the system tests:
/// a plain check is written `|| async { source.calls() == 2 }`, one that
/// talks to a server awaits inside the block.
///
/// # Panics
///
/// When the deadline passes first.
pub async fn eventually<F, Fut>(what: &str, deadline: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = tokio::time::Instant::now();
    while !condition().await {
        assert!(started.elapsed() < deadline, "timed out after {deadline:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
