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

/// Waits until `condition` holds, polling every few milliseconds, or
/// panics naming `what` after `deadline`.
///
/// # Panics
///
/// When the deadline passes first.
pub async fn eventually(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
    let started = tokio::time::Instant::now();
    while !condition() {
        assert!(started.elapsed() < deadline, "timed out after {deadline:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Like [`eventually`], for a condition that must be awaited (a Redis
/// read, an HTTP request).
///
/// # Panics
///
/// When the deadline passes first.
pub async fn eventually_async<F, Fut>(what: &str, deadline: Duration, mut condition: F)
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
