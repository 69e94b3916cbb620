//! End-to-end harness for OnAir: the real server in-process on port 0, real clients (ffmpeg,
//! ffprobe, a hand-rolled HTTP/1.1 client, a WebSocket client) and the small readers the tests
//! share.
//!
//! | piece | what it is for |
//! | --- | --- |
//! | [`TestServer`] | the server on `127.0.0.1:0`, one random dev key per test, URL helpers |
//! | [`require_tool`], [`require_program`] | skip on a developer machine without ffmpeg (or curl, jq); fail under `CI=true` |
//! | [`Ffmpeg`], [`ffprobe`] | publish a test pattern; play back and count packets and frames |
//! | [`http`] | HTTP/1.1 requests with chunked decoding, from any loopback address (no reqwest in this crate) |
//! | [`FlvReader`] | HTTP-FLV and WS-FLV playback, demuxed with `onair_flv::FlvDemuxer` |
//! | [`rtmp`] | raw RTMP bytes for misbehaving-peer tests |
//! | [`logs`] | a global tracing subscriber that keeps every line, for the redaction test |
//! | [`proxy`] | a TCP proxy that freezes on demand: a database that hangs instead of refusing |
//! | [`tls`] | a test CA issuing PEM certificate files, and a rustls client that trusts only a given root |
//! | [`binary`] | the real `onair` binary (built when stale), [`binary::OnairProcess`] to run it as a server (optionally under an `RLIMIT_NOFILE` set with `prlimit`), temporary data directories |
//!
//! Every wait is bounded: [`wait_until`] polls a condition up to a deadline, readers take a
//! timeout, and child processes are killed when their handle drops.
//!
//! ```no_run
//! # async fn demo() {
//! use onair_e2e::{Ffmpeg, TestServer, require_tool, wait_until};
//! use std::time::Duration;
//! if require_tool("ffmpeg").is_none() {
//!     return;
//! }
//! let server = TestServer::start(|_config| {}).await;
//! let _ffmpeg = Ffmpeg::publish_test_pattern(&server.publish_url(&server.key), 5);
//! let channel = server.channel.clone();
//! assert!(wait_until(Duration::from_secs(10), || server.hub().is_live(&channel)).await);
//! # }
//! ```
#![deny(missing_docs)]

pub mod binary;
pub mod ffmpeg;
pub mod flv;
pub mod http;
pub mod logs;
pub mod proxy;
pub mod rtmp;
pub mod server;
pub mod tls;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

pub use ffmpeg::{Ffmpeg, Probe, Tracks, ffprobe};
pub use flv::{FlvReader, Tag, TagSummary};
pub use server::TestServer;

/// How often [`wait_until`] re-checks its condition.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Whether this run is CI, where a missing tool fails the run instead of skipping
/// (house style, "Tests": CI never skips).
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Finds `tool` (`ffmpeg`, `ffprobe`) on `PATH` by running `tool -version`.
///
/// When it is missing, prints `skipped: {tool} missing` and returns `None` on a developer
/// machine, so the README's test command passes there.
///
/// # Panics
///
/// When the tool is missing and `CI=true`: CI never skips.
pub fn require_tool(tool: &str) -> Option<PathBuf> {
    require_program(tool, "-version")
}

/// [`require_tool`] for a program that answers `version_flag` (curl's and jq's `--version`)
/// rather than ffmpeg's `-version`.
///
/// # Panics
///
/// When the program is missing and `CI=true`: CI never skips.
pub fn require_program(tool: &str, version_flag: &str) -> Option<PathBuf> {
    let found = std::process::Command::new(tool)
        .arg(version_flag)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return Some(PathBuf::from(tool));
    }
    if is_ci() {
        panic!("{tool} missing, and CI=true: install {tool}; CI never skips a test");
    }
    println!("skipped: {tool} missing");
    None
}

/// `present`, or skip (developer machine: prints `skipped: {what} missing{hint}`, returns
/// `false`) for something that is not a program on `PATH` (a browser at a fixed path, npm
/// packages). `hint` says how to get it, starting with its own separator.
///
/// # Panics
///
/// When it is missing and `CI=true`: CI never skips.
pub fn require(what: &str, hint: &str, present: bool) -> bool {
    if present {
        return true;
    }
    if is_ci() {
        panic!("{what} missing{hint}, and CI=true: CI never skips a test");
    }
    println!("skipped: {what} missing{hint}");
    false
}

/// The URL of the NATS server the cluster tests use (`ONAIR_TEST_NATS`, by default
/// `nats://127.0.0.1:4222`), if it accepts a connection; else skips as [`require`] does.
///
/// # Panics
///
/// When it does not answer and `CI=true`.
pub fn require_nats() -> Option<String> {
    let url = std::env::var("ONAIR_TEST_NATS")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "nats://127.0.0.1:4222".into());
    let address = url
        .split_once("://")
        .map_or(url.as_str(), |(_, rest)| rest)
        .rsplit('@')
        .next()
        .unwrap_or_default()
        .to_owned();
    let reachable = std::net::ToSocketAddrs::to_socket_addrs(&address)
        .ok()
        .and_then(|mut addrs| addrs.next())
        .is_some_and(|addr| {
            std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2)).is_ok()
        });
    require(
        &format!("NATS at {address}"),
        " (nats-server -js -a 127.0.0.1 -p 4222, or set ONAIR_TEST_NATS)",
        reachable,
    )
    .then_some(url)
}

/// [`require_tool`] for ffmpeg and ffprobe together: `true` when both are present.
pub fn require_ffmpeg() -> bool {
    // Check both so the skip line names every missing tool.
    let ffmpeg = require_tool("ffmpeg").is_some();
    let ffprobe = require_tool("ffprobe").is_some();
    ffmpeg && ffprobe
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes; returns whether it held.
/// The only way the harness waits for the server to reach a state.
pub async fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// [`wait_until`] for a condition that must itself await (an HTTP request to `/metrics`).
/// Each check is also bounded by what is left of `timeout`.
pub async fn wait_until_async<F, Fut>(timeout: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Ok(true) = tokio::time::timeout_at(deadline, condition()).await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// A fresh random string of `[a-z0-9-]` starting with `prefix`, for keys and channel names.
pub fn random_name(prefix: &str) -> String {
    format!("{prefix}-{:024x}", rand::random::<u128>() >> 32)
}
