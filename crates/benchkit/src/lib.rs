//! Benchmark-only programs and their testable parts, for `cargo xtask bench`.
//!
//! Three binaries, each run by the xtask as a separate process on loopback:
//!
//! - `ceiling`: the least an HTTP server built like `positions-api` can do
//!   per request (hyper-util's auto builder on tokio, `TCP_NODELAY`),
//!   answering every `GET` with one pre-serialized body from a file. What
//!   the service's cached path is measured against.
//! - `slow-upstream`: a stand-in for the analytics service that computes
//!   positions, answering `GET /positions/{wallet}` with deterministic
//!   positions after a delay drawn from a range (200 to 500 ms by default),
//!   and `GET /stats` with how many it was asked for.
//! - `load`: a load driver for what wrk cannot do: a stampede of concurrent
//!   requests released together, Zipf-distributed requests over many
//!   wallets at a fixed rate or in a closed loop, and a sweep that asks for
//!   each wallet of a list once. It prints one JSON object on stdout.
//!
//! The library holds what the binaries share and what can be tested without
//! a network: latency percentiles ([`latency`]), the upstream's positions
//! ([`positions`]), wallet lists ([`wallets`]), the server loop ([`serve`])
//! and the load driver's modes ([`drive`]).
//!
//! Random numbers come from `rand`'s `SmallRng`, seeded, so that a run asks
//! for the same wallets at the same times and gets the same delays and
//! positions as the last; Zipf popularity from `rand_distr::Zipf`. The same
//! generator and sampler as the cache's own benchmarks and tests, so the
//! workspace has one of each.
//!
//! What it is not: a benchmark harness. It measures nothing by itself, keeps
//! no targets and writes no report; the xtask starts these programs, reads
//! their output and writes `docs/benchmarks.md`. Nothing in the service
//! depends on it.

#![warn(missing_docs)]

pub mod drive;
pub mod latency;
pub mod positions;
pub mod serve;
pub mod wallets;
