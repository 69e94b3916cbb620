//! OnAir, the server: configuration, the RTMP driver, HTTP-FLV/WS-FLV, HLS, the REST API and
//! chat socket, the platform (accounts, channels, stream keys over the store) and the
//! operator commands. The protocol work lives in the `onair-*` library crates (the RTMP
//! client of `onair publish`/`onair play` in `onair-client`); this crate wires them to
//! sockets, clocks and the operator.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use onair::{config::Config, platform::Platform, server::RunningServer};
//! let config = Config::load(None, std::env::vars())?;
//! let platform = Platform::open(&config.storage, &config.auth).await?;
//! let server = RunningServer::start(config, platform).await?;
//! println!("rtmp on {}, http on {}", server.rtmp_addr, server.http_addr);
//! server.run_until_signal(|_| {}).await;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod api;
pub mod auth;
pub mod channel;
pub mod chat;
pub mod cluster;
pub mod config;
pub mod descriptors;
mod flv;
pub mod hls;
pub mod http;
mod ingest;
pub mod lives;
pub mod metrics;
pub mod net;
pub mod passwords;
pub mod platform;
pub mod problem;
pub mod relay;
pub mod restream;
pub mod secret;
pub mod server;
pub mod state;
pub mod tls;
pub mod vod;
