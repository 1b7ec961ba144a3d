//! The positions cache HTTP service (being written).

pub mod config;
mod error;
mod model;
mod routes;
mod server;
mod service;
pub mod source;
pub mod startup;
mod wallet;

pub use error::ApiError;
pub use model::{Confidence, Position, Positions, Snapshot, parse_timestamp, rfc3339};
pub use routes::App;
pub use rust_decimal::Decimal;
pub use server::{ServerOptions, serve};
pub use service::{Answer, Health, Origin, Service, ServiceOptions};
pub use wallet::{InvalidWallet, Wallet};
