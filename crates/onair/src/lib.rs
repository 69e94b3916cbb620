//! OnAir, the server: configuration, the RTMP driver, HTTP-FLV/WS-FLV, and the command-line
//! publish/play clients. The protocol work lives in the `onair-*` library crates; this crate
//! wires them to sockets, clocks and the operator.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use onair::{auth::DevAuth, config::Config, server::RunningServer};
//! let config = Config::load(None, std::env::vars())?;
//! let server = RunningServer::start(config.clone(), DevAuth::new(config.dev.clone())).await?;
//! println!("rtmp on {}, http on {}", server.rtmp_addr, server.http_addr);
//! server.run_until_signal().await;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod auth;
pub mod channel;
pub mod client;
pub mod config;
pub mod http;
mod ingest;
pub mod net;
pub mod secret;
pub mod server;
