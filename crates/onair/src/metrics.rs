//! Process-wide counters and the Prometheus text that `/metrics` serves.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use onair_chat::ChatService;
use onair_hub::Hub;

/// The media type of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Process-wide counters. The drivers hold an `Arc` of it; each counts its own events.
#[derive(Debug, Default)]
pub struct Metrics {
    /// RTMP connections accepted.
    pub rtmp_connections: AtomicU64,
    /// RTMP connections open now.
    pub rtmp_open: AtomicU64,
    /// Publishes refused (bad key, channel busy, …).
    pub publishes_refused: AtomicU64,
    /// Connections closed because the peer misbehaved (bad bytes, timeouts).
    pub peer_errors: AtomicU64,
    /// Viewers disconnected for being too slow.
    pub viewers_dropped_slow: AtomicU64,
    /// Media bytes received from publishers.
    pub bytes_in: AtomicU64,
    /// RTMP connections closed at once because the descriptor budget was spent.
    pub rtmp_refused: AtomicU64,
    /// HTTP connections accepted (admitted or refused).
    pub http_connections: AtomicU64,
    /// HTTP connections open now.
    pub http_open: AtomicU64,
    /// HTTP connections answered 503 at accept (per-address cap, or full with none idle).
    pub http_refused: AtomicU64,
    /// Idle HTTP connections closed to make room for a new one.
    pub http_evicted: AtomicU64,
    /// HTTP connections closed for a request head not complete within `http.header_timeout`.
    pub http_header_timeouts: AtomicU64,
    /// HTTP connections closed after `http.idle_timeout` without a request.
    pub http_idle_timeouts: AtomicU64,
    /// Request bodies that did not arrive within `http.body_timeout`.
    pub http_body_timeouts: AtomicU64,
}

impl Metrics {
    /// Adds one to a counter.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The Prometheus text of the counters, the chat's and the hub's per-channel gauges.
pub fn render(
    m: &Metrics,
    chat_service: &ChatService,
    hub: &Hub,
    hashing: &crate::passwords::HashingStats,
) -> String {
    let chat = chat_service.metrics();
    let mut out = String::new();
    let counters = [
        (
            "onair_rtmp_connections_total",
            "RTMP connections accepted",
            m.rtmp_connections.load(Ordering::Relaxed),
        ),
        (
            "onair_rtmp_connections_open",
            "RTMP connections open now",
            m.rtmp_open.load(Ordering::Relaxed),
        ),
        (
            "onair_publishes_refused_total",
            "publishes refused",
            m.publishes_refused.load(Ordering::Relaxed),
        ),
        (
            "onair_peer_errors_total",
            "connections closed for a peer's misbehaviour",
            m.peer_errors.load(Ordering::Relaxed),
        ),
        (
            "onair_viewers_dropped_slow_total",
            "viewers dropped for falling behind (HTTP-FLV viewers whose connection stalls are cut by the kernel's TCP user timeout and not counted)",
            m.viewers_dropped_slow.load(Ordering::Relaxed),
        ),
        (
            "onair_bytes_in_total",
            "media bytes received from publishers",
            m.bytes_in.load(Ordering::Relaxed),
        ),
        (
            "onair_rtmp_connections_refused_total",
            "RTMP connections closed at accept: the descriptor budget was spent",
            m.rtmp_refused.load(Ordering::Relaxed),
        ),
        (
            "onair_http_connections_total",
            "HTTP connections accepted",
            m.http_connections.load(Ordering::Relaxed),
        ),
        (
            "onair_http_connections_open",
            "HTTP connections open now (WebSockets included)",
            m.http_open.load(Ordering::Relaxed),
        ),
        (
            "onair_http_connections_refused_total",
            "HTTP connections answered 503 at accept (per-address cap, or full and none idle)",
            m.http_refused.load(Ordering::Relaxed),
        ),
        (
            "onair_http_connections_evicted_total",
            "idle HTTP connections closed to make room for a new one",
            m.http_evicted.load(Ordering::Relaxed),
        ),
        (
            "onair_http_header_timeouts_total",
            "HTTP connections closed for a request head not complete in http.header_timeout",
            m.http_header_timeouts.load(Ordering::Relaxed),
        ),
        (
            "onair_http_idle_timeouts_total",
            "HTTP connections closed after http.idle_timeout without a request",
            m.http_idle_timeouts.load(Ordering::Relaxed),
        ),
        (
            "onair_http_body_timeouts_total",
            "request bodies not complete within http.body_timeout (answered 408)",
            m.http_body_timeouts.load(Ordering::Relaxed),
        ),
        (
            "onair_chat_messages_total",
            "chat lines and danmaku stored and broadcast",
            chat.messages.load(Ordering::Relaxed),
        ),
        (
            "onair_chat_refused_total",
            "chat client frames answered with an error frame",
            chat.refused.load(Ordering::Relaxed),
        ),
        (
            "onair_chat_dropped_slow_total",
            "chat clients dropped for falling chat.client_queue frames behind",
            chat.dropped_slow.load(Ordering::Relaxed),
        ),
        (
            "onair_chat_clients",
            "chat connections open now, over every room",
            chat_service.members_total(),
        ),
        (
            "onair_password_hashes_total",
            "password hashes and checks done",
            hashing.done.load(Ordering::Relaxed),
        ),
        (
            "onair_password_hashes_queued",
            "logins and account changes waiting for a hashing thread now",
            hashing.queued.load(Ordering::Relaxed),
        ),
        (
            "onair_password_hash_busy_total",
            "requests answered 503 because no hashing thread came free in time",
            hashing.busy.load(Ordering::Relaxed),
        ),
    ];
    for (name, help, value) in counters {
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
    let live = hub.live_channels();
    let _ = writeln!(
        out,
        "# HELP onair_channels_live channels with a publisher\n# TYPE onair_channels_live gauge"
    );
    let _ = writeln!(out, "onair_channels_live {}", live.len());
    let _ = writeln!(
        out,
        "# HELP onair_channel_viewers viewers by channel and protocol\n# TYPE onair_channel_viewers gauge"
    );
    for c in &live {
        for (p, n) in &c.viewers {
            let _ = writeln!(
                out,
                "onair_channel_viewers{{channel=\"{}\",protocol=\"{p}\"}} {n}",
                c.channel
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP onair_channel_bitrate_bps recent media bitrate\n# TYPE onair_channel_bitrate_bps gauge"
    );
    for c in &live {
        let _ = writeln!(
            out,
            "onair_channel_bitrate_bps{{channel=\"{}\"}} {}",
            c.channel, c.recent_bitrate
        );
    }
    out
}
