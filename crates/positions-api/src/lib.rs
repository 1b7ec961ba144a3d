//! The positions cache HTTP service: per-wallet crypto positions served
//! from a two-tier cache in front of a slow source.
//!
//! The binary (`src/main.rs`) reads a [`config::Config`], builds the
//! application with [`startup::build`] and serves it with [`startup::run`]
//! until SIGINT or SIGTERM. The library exposes the same pieces so that
//! tests and other programs can assemble the service around a source of
//! their own and serve it on any listener:
//!
//! - [`Service`]: the cache semantics (fresh, stale-while-revalidate,
//!   single-flight loads, stale-if-error) over a [`source::Source`];
//! - [`App`]: the HTTP routes around a service; [`serve`]: the server;
//! - [`Wallet`], [`Positions`], [`Snapshot`]: the data model.
//!
//! What it is not: the cache itself (`cache-core`), the load scheduling
//! (`refresh`) or the metrics registry (`telemetry`) — those are libraries of
//! their own, wired together here.
//!
//! # Examples
//!
//! Serve the bundled sample ledger on an ephemeral port and ask it for a
//! wallet:
//!
//! ```
//! use std::sync::Arc;
//! use positions_api::{App, ServerOptions, Service, source::ledger::Ledger};
//! use positions_api::config::Config;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let config = Config::from_args(["positions-api"]).unwrap();
//! let metrics = Arc::new(telemetry::Metrics::new());
//! let service = Service::new(
//!     &positions_api::startup::service_options(&config),
//!     Arc::new(Ledger::sample()),
//!     Arc::clone(&metrics),
//!     Arc::new(cache_core::SystemClock),
//!     None, // no Redis
//! );
//! let app = Arc::new(App::new(service, metrics, None));
//!
//! let wallet = "0x52908400098527886e0f7030069857d2e4169ee7".parse().unwrap();
//! let answer = app.service().positions(&wallet, false).await.unwrap();
//! assert!(!answer.cached && !answer.snapshot.is_empty());
//! let again = app.service().positions(&wallet, false).await.unwrap();
//! assert!(again.cached);
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! let stop = async {}; // a real server waits for a signal here
//! positions_api::serve(listener, app, ServerOptions::default(), stop).await;
//! # }
//! ```

#![warn(missing_docs)]

mod body;
pub mod config;
pub mod encoding;
mod error;
mod model;
mod observers;
pub mod priority;
mod request_context;
mod routes;
mod server;
mod service;
pub mod source;
pub mod startup;
mod tombstones;
mod wallet;

pub use body::Body;
pub use error::ApiError;
pub use model::{Confidence, Position, Positions, Snapshot, StoredSnapshot, parse_timestamp, rfc3339};
pub use routes::{App, RouteSet};
pub use rust_decimal::Decimal;
pub use server::{Listeners, ServerOptions, connection_cap, serve};
pub use service::{
    Answer, EagerRefresh, Fleet, Health, Looked, Origin, Service, ServiceOptions, Tier2, WarmOptions, WarmReport,
};
pub use wallet::{InvalidWallet, Wallet};
