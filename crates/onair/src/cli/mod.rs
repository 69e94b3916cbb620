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
