//! The subcommands besides `serve`.
//!
//! The clients, `onair publish FILE.flv URL` and `onair play URL`, speak RTMP through
//! [`onair_client::RtmpClient`]. Progress, the summary and errors go to stderr, never stdout:
//! `onair play … -o -` writes the FLV stream there. Publish URLs are printed as
//! `rtmp://host:port/app/[redacted]`, so a key never reaches a terminal log or a CI transcript.
//!
//! The operator commands (`onair migrate`, `onair user …`, `onair channel …`, `onair key …`)
//! open the database the server's configuration names and work on it directly, so a server
//! need not be running. Their stdout carries only what a script wants (a key or password alone
//! on its line, or a table); confirmations and hints go to stderr. Each change is recorded in
//! the audit log with no actor: the CLI acts as the operator of the machine.
//!
//! `onair config [check]` prints the configuration in effect ([`config`]); `onair
//! healthcheck` is the container's health check ([`healthcheck`]).

pub mod channel;
pub mod config;
pub mod healthcheck;
pub mod key;
pub mod migrate;
pub mod play;
pub mod publish;
pub mod user;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use onair::config::Config;
use onair::platform::Platform;
use onair_client::backoff::{Backoff, BackoffPolicy};
use onair_client::{ClientError, ClientOptions};

/// SIGINT (Ctrl-C) and, on Unix, SIGTERM: the signals that end a publish or play cleanly.
///
/// Installing the handlers replaces the default "terminate at once", so create this before
/// connecting: a Ctrl-C at any point then goes through the clean unpublish.
pub struct Interrupt {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Interrupt {
    /// Installs the handlers. Needs a running tokio runtime.
    pub fn new() -> std::io::Result<Interrupt> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Interrupt {
                int: signal(SignalKind::interrupt())?,
                term: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Interrupt {})
    }

    /// Completes when a signal arrives. Cancel-safe.
    pub async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// How `onair publish` and `onair play` hold their connection: the dead-server timeout and
/// `--reconnect`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectionArgs {
    /// Give up on a server that sends nothing for this long (e.g. 10s, 500ms); keep-alive
    /// pings go out after a third of it, so a quiet live server never trips it. Also the
    /// longest wait for each answer to connect, publish or play. 0 turns the dead-server
    /// check off, for a server that neither pings nor answers pings.
    #[arg(long, value_parser = parse_duration, default_value = "10s", value_name = "DURATION")]
    pub timeout: Duration,
    /// On a lost or dead connection, an unpublish or kick by the server, or a refused
    /// connect, connect again: after 0.5 s, doubling to 30 s, with jitter, starting over
    /// after a minute up. A refusal that retrying cannot fix (a bad key or name) still
    /// stops, saying why.
    #[arg(long)]
    pub reconnect: bool,
    /// With --reconnect: give up after this many attempts in a row (default: never).
    #[arg(long, value_name = "N", requires = "reconnect")]
    pub reconnect_max: Option<u32>,
}

impl ConnectionArgs {
    /// The client options these arguments ask for.
    pub fn options(&self, digest_handshake: bool) -> ClientOptions {
        let defaults = ClientOptions::default();
        ClientOptions {
            digest_handshake,
            timeout: if self.timeout.is_zero() {
                defaults.timeout
            } else {
                self.timeout
            },
            idle_timeout: (!self.timeout.is_zero()).then_some(self.timeout),
            ..defaults
        }
    }

    /// The reconnect loop's state, `None` without `--reconnect`.
    pub fn reconnector(&self) -> Option<Reconnector> {
        self.reconnect.then(|| Reconnector {
            backoff: Backoff::new(BackoffPolicy {
                max_attempts: self.reconnect_max,
                ..BackoffPolicy::default()
            }),
            reconnects: 0,
        })
    }
}

/// Whether `error` is a refusal that retrying cannot fix. `resuming`: the same name was
/// accepted by this server a moment ago, so a `BadName` now most likely means our own lost
/// connection still holds the stream until the server notices it is gone: worth a retry.
pub fn is_final(error: &anyhow::Error, resuming: bool) -> bool {
    error
        .chain()
        .filter_map(|cause| cause.downcast_ref::<ClientError>())
        .any(|e| match e {
            ClientError::Rejected { code, .. }
                if resuming && code == "NetStream.Publish.BadName" =>
            {
                false
            }
            e => e.is_final_refusal(),
        })
}

/// Whether `error` says the connection itself is gone (silent, reset, closed or broken), so
/// a goodbye would only wait for a server that cannot hear it.
pub fn connection_gone(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|cause| cause.downcast_ref::<ClientError>())
        .any(|e| {
            matches!(
                e,
                ClientError::Silent { .. }
                    | ClientError::Io(_)
                    | ClientError::Closed { .. }
                    | ClientError::Session(_)
            )
        })
}

/// What the reconnect loop decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// The back-off has passed: connect again.
    Now,
    /// Ctrl-C or SIGTERM during the back-off.
    Interrupted,
}

/// `--reconnect`'s schedule and count.
#[derive(Debug)]
pub struct Reconnector {
    backoff: Backoff,
    /// Reconnect attempts so far.
    pub reconnects: u64,
}

impl Reconnector {
    /// After a failure: the error back when it is final or the attempts are used up;
    /// otherwise says on stderr what happened and when the next attempt comes (with `shown`,
    /// the URL as it may be printed), and waits for it. `up_for`: how long the connection
    /// that ended was publishing or playing, `None` if it never got there.
    pub async fn after_failure(
        &mut self,
        error: anyhow::Error,
        resuming: bool,
        up_for: Option<Duration>,
        shown: &str,
        interrupt: &mut Interrupt,
    ) -> anyhow::Result<Retry> {
        if is_final(&error, resuming) {
            return Err(error.context("not reconnecting: retrying cannot fix this refusal"));
        }
        let Some(retry) = self.backoff.next(up_for, rand::random::<f64>()) else {
            let tries = self.backoff.attempts();
            return Err(error.context(format!(
                "giving up on {shown} after {tries} reconnect attempt{}",
                if tries == 1 { "" } else { "s" }
            )));
        };
        let of = self
            .backoff
            .policy()
            .max_attempts
            .map_or(String::new(), |max| format!(" of {max}"));
        eprintln!(
            "connection to {shown} {}: {error:#}; reconnecting in {:.1} s (attempt {}{of})",
            if up_for.is_some() { "lost" } else { "failed" },
            retry.delay.as_secs_f64(),
            retry.attempt,
        );
        tokio::select! {
            _ = tokio::time::sleep(retry.delay) => {}
            _ = interrupt.recv() => return Ok(Retry::Interrupted),
        }
        self.reconnects += 1;
        Ok(Retry::Now)
    }
}

/// Opens the configured database (migrated and with its signing key, as the server would),
/// runs `command` on it, and closes it.
pub async fn with_platform<F, Fut>(config: &Config, command: F) -> anyhow::Result<()>
where
    F: FnOnce(Arc<Platform>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let platform = Platform::open(&config.storage, &config.auth)
        .await
        .with_context(|| format!("opening the {}", migrate::describe(&config.storage)))?;
    let result = command(platform.clone()).await;
    platform.store().close().await;
    result
}

/// Records an operator's action in the audit log. The action has happened by then, so a
/// failure to record it is reported, not treated as the action failing.
pub async fn audit(platform: &Platform, action: &str, target: String, detail: serde_json::Value) {
    if let Err(e) = platform
        .store()
        .record_audit(None, action, &target, &detail)
        .await
    {
        eprintln!("warning: {action} on {target} done, but not recorded in the audit log: {e:#}");
    }
}

/// A time as the tables show it, to the second, or `-`.
pub fn format_time(time: Option<DateTime<Utc>>) -> String {
    time.map_or_else(
        || "-".to_owned(),
        |t| t.format("%Y-%m-%d %H:%M:%SZ").to_string(),
    )
}

/// Prints `rows` under `header` on stdout in left-aligned columns.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i + 1 == widths.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
}

/// `1.5 MB`, `820 kB`, `312 B`.
pub fn format_bytes(bytes: u64) -> String {
    match bytes {
        b if b >= 1_000_000 => format!("{:.1} MB", b as f64 / 1e6),
        b if b >= 1_000 => format!("{:.0} kB", b as f64 / 1e3),
        b => format!("{b} B"),
    }
}

/// `12.3 s`.
pub fn format_secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Parses `--duration` values: `10s`, `250ms`, `2m`, `1h` or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    onair::config::parse_duration(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_well() {
        assert_eq!(format_bytes(312), "312 B");
        assert_eq!(format_bytes(820_400), "820 kB");
        assert_eq!(format_bytes(1_530_000), "1.5 MB");
        assert_eq!(format_secs(Duration::from_millis(12_340)), "12.3 s");
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("soon").is_err());
    }
}
