//! The client subcommands: `onair publish FILE.flv URL` and `onair play URL`.
//!
//! Both speak RTMP through [`onair::client::RtmpClient`]. Progress, the summary and errors go
//! to stderr, never stdout: `onair play … -o -` writes the FLV stream there. Publish URLs are
//! printed as `rtmp://host:port/app/[redacted]`, so a key never reaches a terminal log or a
//! CI transcript.

pub mod play;
pub mod publish;

use std::time::Duration;

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
