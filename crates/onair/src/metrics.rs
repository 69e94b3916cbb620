//! Process-wide counters and the Prometheus text that `/metrics` serves.
//!
//! Counters are relaxed atomics the drivers add to where the event happens (media bytes once
//! per write batch, not per frame per viewer); gauges and the hub's, chat's, store's and
//! recorder's own figures are read when `/metrics` is scraped. Label values come from fixed
//! sets (protocol, reason, route template), never from a request, so the series stay few.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use onair_chat::ChatService;
use onair_hub::Hub;
use parking_lot::Mutex;

/// How a client is served, for the per-protocol series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// RTMP, publish or play.
    Rtmp,
    /// HTTP-FLV.
    HttpFlv,
    /// WebSocket-FLV.
    WsFlv,
    /// HLS playlists and segments (a request each: HLS has no connection of its own).
    Hls,
    /// The chat WebSocket.
    Chat,
}

impl Wire {
    /// Every protocol, in label order.
    pub const ALL: [Wire; 5] = [
        Wire::Rtmp,
        Wire::HttpFlv,
        Wire::WsFlv,
        Wire::Hls,
        Wire::Chat,
    ];

    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            Wire::Rtmp => "rtmp",
            Wire::HttpFlv => "http-flv",
            Wire::WsFlv => "ws-flv",
            Wire::Hls => "hls",
            Wire::Chat => "chat",
        }
    }

    /// The protocol of a hub viewer.
    pub fn of_viewer(p: onair_hub::Protocol) -> Option<Wire> {
        match p {
            onair_hub::Protocol::Rtmp => Some(Wire::Rtmp),
            onair_hub::Protocol::HttpFlv => Some(Wire::HttpFlv),
            onair_hub::Protocol::WsFlv => Some(Wire::WsFlv),
            onair_hub::Protocol::Internal
            | onair_hub::Protocol::Relay
            | onair_hub::Protocol::Restream => None,
        }
    }
}

/// One counter per [`Wire`].
#[derive(Debug, Default)]
pub struct PerWire([AtomicU64; 5]);

impl PerWire {
    /// Adds `n` to `wire`'s counter.
    pub fn add(&self, wire: Wire, n: u64) {
        self.0[wire as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// Takes one from `wire`'s gauge.
    pub fn sub_one(&self, wire: Wire) {
        self.0[wire as usize].fetch_sub(1, Ordering::Relaxed);
    }

    /// `wire`'s value.
    pub fn get(&self, wire: Wire) -> u64 {
        self.0[wire as usize].load(Ordering::Relaxed)
    }
}

/// Why a publish was refused, the `reason` label of `onair_publish_refusals_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishRefusal {
    /// No channel has this key.
    UnknownKey,
    /// Not a key we issued.
    InvalidKey,
    /// The key expired.
    Expired,
    /// The key was revoked.
    Revoked,
    /// The key's channel is gone.
    NoChannel,
    /// The owner is banned.
    Banned,
    /// The owner may not stream.
    NotStreamer,
    /// Not our application name.
    UnknownApp,
    /// Not a valid channel name (open mode).
    InvalidName,
    /// The key could not be checked (store down).
    Unavailable,
    /// The channel already has a publisher.
    AlreadyLive,
    /// The server is shutting down.
    ShuttingDown,
    /// The connection already publishes or plays.
    Busy,
    /// A reason newer than this list.
    Other,
}

impl PublishRefusal {
    /// Every reason, in label order.
    pub const ALL: [PublishRefusal; 14] = [
        Self::UnknownKey,
        Self::InvalidKey,
        Self::Expired,
        Self::Revoked,
        Self::NoChannel,
        Self::Banned,
        Self::NotStreamer,
        Self::UnknownApp,
        Self::InvalidName,
        Self::Unavailable,
        Self::AlreadyLive,
        Self::ShuttingDown,
        Self::Busy,
        Self::Other,
    ];

    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            Self::UnknownKey => "unknown_key",
            Self::InvalidKey => "invalid_key",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::NoChannel => "no_channel",
            Self::Banned => "banned",
            Self::NotStreamer => "not_streamer",
            Self::UnknownApp => "unknown_app",
            Self::InvalidName => "invalid_name",
            Self::Unavailable => "unavailable",
            Self::AlreadyLive => "already_live",
            Self::ShuttingDown => "shutting_down",
            Self::Busy => "connection_busy",
            Self::Other => "other",
        }
    }
}

/// Why an RTMP connection was closed at accept, the `reason` label of
/// `onair_rtmp_connections_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtmpRefusal {
    /// The descriptor budget was spent.
    Descriptors,
    /// `rtmp.max_connections` were open.
    Total,
    /// `rtmp.max_connections_per_address` were open from the client's address.
    PerAddress,
}

/// A fixed-bucket latency histogram: the store's, whose buckets suit HTTP requests as well
/// (time to the response head; a stream's body is not timed).
pub type Histogram = onair_store::CallTimes;

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
    /// Clients served, by protocol (RTMP's is `rtmp_connections`).
    pub opened: PerWire,
    /// HTTP-FLV and WS-FLV viewers connected now (RTMP's is `rtmp_open`).
    pub open: PerWire,
    /// Media bytes handed to viewers' sockets, by protocol.
    pub bytes_out: PerWire,
    /// Viewers turned away because their channel had `hub.max_viewers_per_channel`.
    pub viewers_refused: PerWire,
    /// Publishes refused, by [`PublishRefusal`] (their sum is `publishes_refused`).
    pub publish_refusals: [AtomicU64; PublishRefusal::ALL.len()],
    /// RTMP connections closed at accept for `rtmp.max_connections`/`_per_address`.
    pub rtmp_limited: [AtomicU64; 2],
    /// Relay feeds this node opened for edges pulling one of its channels (origin side).
    pub relays_served: AtomicU64,
    /// Pulls this node connected to another node's channel (edge side).
    pub relay_pulls: AtomicU64,
    /// Pull attempts that did not get a feed (origin unreachable, not live, refused).
    pub relay_pull_failures: AtomicU64,
    /// Restream connections that reached a destination and started publishing.
    pub restream_connects: AtomicU64,
    /// Restream connections that failed (refused, lost, too slow).
    pub restream_failures: AtomicU64,
    /// Media bytes sent to restream destinations.
    pub restream_bytes_out: AtomicU64,
    /// Restream pushes running now (connecting, live, retrying or failed until the live ends).
    pub restream_running: AtomicU64,
    /// HTTP requests by matched route template, to the response head.
    pub http_requests: Mutex<BTreeMap<String, Histogram>>,
    /// RTMP VOD block requests served from the cache (or from a read already under way).
    pub vod_cache_hits: AtomicU64,
    /// RTMP VOD block requests that started a file read.
    pub vod_cache_misses: AtomicU64,
    /// Bytes the VOD block cache holds now.
    pub vod_cache_bytes: AtomicU64,
    /// RTMP VOD viewers playing now.
    pub vod_viewers: AtomicU64,
}

impl Metrics {
    /// Adds one to a counter.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a refused publish under its reason.
    pub fn publish_refused(&self, why: PublishRefusal) {
        Self::inc(&self.publishes_refused);
        Self::inc(&self.publish_refusals[why as usize]);
    }

    /// Counts an RTMP connection closed at accept.
    pub fn rtmp_refused(&self, why: RtmpRefusal) {
        match why {
            RtmpRefusal::Descriptors => Self::inc(&self.rtmp_refused),
            RtmpRefusal::Total => Self::inc(&self.rtmp_limited[0]),
            RtmpRefusal::PerAddress => Self::inc(&self.rtmp_limited[1]),
        }
    }

    /// Counts one HTTP request to `route` (a route template such as `/live/{file}`, or
    /// `(unmatched)`) answered after `took`.
    pub fn http_request(&self, route: &str, took: Duration) {
        let mut routes = self.http_requests.lock();
        if let Some(h) = routes.get(route) {
            h.observe(took);
            return;
        }
        let h = Histogram::default();
        h.observe(took);
        routes.insert(route.to_owned(), h);
    }
}

/// What `/metrics` reads besides the counters.
#[derive(Debug, Clone, Copy)]
pub struct Sources<'a> {
    /// The drivers' counters.
    pub metrics: &'a Metrics,
    /// Chat rooms and their counters.
    pub chat: &'a ChatService,
    /// Channels, viewers, skips.
    pub hub: &'a Hub,
    /// The password hashing pool.
    pub hashing: &'a crate::passwords::HashingStats,
    /// How long store calls take.
    pub store: &'a onair_store::CallTimes,
    /// Recordings written.
    pub recordings_written: u64,
    /// The link to the other nodes; `None` on a single node, which prints no cluster series.
    pub cluster: Option<&'a crate::cluster::Cluster>,
}

/// The Prometheus text of the counters, the chat's and the hub's per-channel gauges.
pub fn render(src: Sources<'_>) -> String {
    let (m, chat_service, hub, hashing) = (src.metrics, src.chat, src.hub, src.hashing);
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
            "onair_relays_served_total",
            "relay feeds opened for edge nodes pulling a channel of this node",
            m.relays_served.load(Ordering::Relaxed),
        ),
        (
            "onair_relay_pulls_total",
            "pulls of another node's channel that got a feed (edge side)",
            m.relay_pulls.load(Ordering::Relaxed),
        ),
        (
            "onair_relay_pull_failures_total",
            "pull attempts of another node's channel that got no feed",
            m.relay_pull_failures.load(Ordering::Relaxed),
        ),
        (
            "onair_restream_connects_total",
            "restream connections that started publishing to a destination",
            m.restream_connects.load(Ordering::Relaxed),
        ),
        (
            "onair_restream_failures_total",
            "restream connections that failed (refused, lost, too slow)",
            m.restream_failures.load(Ordering::Relaxed),
        ),
        (
            "onair_restream_bytes_out_total",
            "media bytes sent to restream destinations",
            m.restream_bytes_out.load(Ordering::Relaxed),
        ),
        (
            "onair_restream_pushes",
            "restream pushes running now, in any state",
            m.restream_running.load(Ordering::Relaxed),
        ),
        (
            "onair_bytes_in_total",
            "media bytes received from publishers",
            m.bytes_in.load(Ordering::Relaxed),
        ),
        (
            "onair_vod_cache_hits_total",
            "RTMP VOD block requests served from the shared cache",
            m.vod_cache_hits.load(Ordering::Relaxed),
        ),
        (
            "onair_vod_cache_misses_total",
            "RTMP VOD block requests that read the file",
            m.vod_cache_misses.load(Ordering::Relaxed),
        ),
        (
            "onair_vod_cache_bytes",
            "bytes the RTMP VOD block cache holds now",
            m.vod_cache_bytes.load(Ordering::Relaxed),
        ),
        (
            "onair_vod_viewers",
            "RTMP VOD viewers playing now",
            m.vod_viewers.load(Ordering::Relaxed),
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
            "onair_chat_wire_offers_total",
            "chat frames and room batches written to a plain-TCP client's socket by the room itself, without waking the client's task",
            chat.wire_offers.load(Ordering::Relaxed),
        ),
        (
            "onair_chat_wire_kept_total",
            "of those, the ones its socket did not take whole at once, finished by the client's task",
            chat.wire_kept.load(Ordering::Relaxed),
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
        (
            "onair_viewer_skips_total",
            "times a viewer fell behind and was moved forward to the newest keyframe",
            hub.skip_totals().0,
        ),
        (
            "onair_frames_skipped_total",
            "frames viewers never got because they were moved forward for falling behind",
            hub.skip_totals().1,
        ),
        (
            "onair_hub_wakes_total",
            "times a channel's viewers were woken for new frames (each costs every viewer a \
             write; hub.max_write_delay batches them on a busy core)",
            hub.wakes(),
        ),
        (
            "onair_recordings_written_total",
            "HLS recordings ended with at least one segment written",
            src.recordings_written,
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
    if let Some(cluster) = src.cluster {
        let series = [
            (
                "onair_cluster_connected",
                "1 while NATS is reachable, 0 while this node serves its members alone",
                u64::from(cluster.connected()),
            ),
            (
                "onair_cluster_publish_failures_total",
                "events that did not reach NATS (not connected, queue full or publish error)",
                cluster.publish_failures(),
            ),
            (
                "onair_cluster_chat_gap_fetched_total",
                "chat messages read from the database to fill a gap in a room's order",
                chat.gap_fetched.load(Ordering::Relaxed),
            ),
            (
                "onair_cluster_chat_gap_skipped_total",
                "chat message numbers given up on (database away, or a catch-up too long)",
                chat.gap_skipped.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in series {
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
    }
    render_labelled(&mut out, src, &live);
    render_histograms(&mut out, src);
    out
}

/// The per-protocol and per-reason series.
fn render_labelled(out: &mut String, src: Sources<'_>, live: &[onair_hub::ChannelSnapshot]) {
    let m = src.metrics;
    let header = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    header(
        out,
        "onair_connections_total",
        "counter",
        "clients served by protocol (hls: playlist and segment requests; chat: sockets opened)",
    );
    for w in Wire::ALL {
        let n = match w {
            Wire::Rtmp => m.rtmp_connections.load(Ordering::Relaxed),
            _ => m.opened.get(w),
        };
        let _ = writeln!(
            out,
            "onair_connections_total{{protocol=\"{}\"}} {n}",
            w.name()
        );
    }
    header(
        out,
        "onair_connections_open",
        "gauge",
        "connections open now by protocol (HLS has none: it is request by request)",
    );
    for w in [Wire::Rtmp, Wire::HttpFlv, Wire::WsFlv, Wire::Chat] {
        let n = match w {
            Wire::Rtmp => m.rtmp_open.load(Ordering::Relaxed),
            Wire::Chat => src.chat.members_total(),
            _ => m.open.get(w),
        };
        let _ = writeln!(
            out,
            "onair_connections_open{{protocol=\"{}\"}} {n}",
            w.name()
        );
    }
    header(
        out,
        "onair_viewers",
        "gauge",
        "viewers of live channels by protocol, over every channel",
    );
    for w in [Wire::Rtmp, Wire::HttpFlv, Wire::WsFlv] {
        let n: usize = live
            .iter()
            .flat_map(|c| &c.viewers)
            .filter(|(p, _)| Wire::of_viewer(*p) == Some(w))
            .map(|(_, n)| n)
            .sum();
        let _ = writeln!(out, "onair_viewers{{protocol=\"{}\"}} {n}", w.name());
    }
    header(
        out,
        "onair_bytes_out_total",
        "counter",
        "media bytes written to viewers by protocol",
    );
    for w in [Wire::Rtmp, Wire::HttpFlv, Wire::WsFlv] {
        let n = m.bytes_out.get(w);
        let _ = writeln!(
            out,
            "onair_bytes_out_total{{protocol=\"{}\"}} {n}",
            w.name()
        );
    }
    header(
        out,
        "onair_viewers_refused_total",
        "counter",
        "viewers turned away because the channel had hub.max_viewers_per_channel",
    );
    for w in [Wire::Rtmp, Wire::HttpFlv, Wire::WsFlv] {
        let n = m.viewers_refused.get(w);
        let _ = writeln!(
            out,
            "onair_viewers_refused_total{{protocol=\"{}\"}} {n}",
            w.name()
        );
    }
    header(
        out,
        "onair_publish_refusals_total",
        "counter",
        "publishes refused by reason (their sum is onair_publishes_refused_total)",
    );
    for r in PublishRefusal::ALL {
        let n = m.publish_refusals[r as usize].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "onair_publish_refusals_total{{reason=\"{}\"}} {n}",
            r.name()
        );
    }
    header(
        out,
        "onair_rtmp_connections_refused_total",
        "counter",
        "RTMP connections closed at accept, by reason (the descriptor budget, rtmp.max_connections, rtmp.max_connections_per_address)",
    );
    for (reason, n) in [
        ("descriptors", &m.rtmp_refused),
        ("max_connections", &m.rtmp_limited[0]),
        ("max_per_address", &m.rtmp_limited[1]),
    ] {
        let n = n.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "onair_rtmp_connections_refused_total{{reason=\"{reason}\"}} {n}"
        );
    }
}

fn render_histograms(out: &mut String, src: Sources<'_>) {
    let _ = writeln!(
        out,
        "# HELP onair_http_request_duration_seconds HTTP requests by route template, to the response head\n# TYPE onair_http_request_duration_seconds histogram"
    );
    for (route, h) in src.metrics.http_requests.lock().iter() {
        let route = escape_label(route);
        let labels = format!("route=\"{route}\"");
        write_histogram(
            out,
            "onair_http_request_duration_seconds",
            &labels,
            &onair_store::CALL_BUCKETS,
            &h.cumulative(),
            h.count(),
            h.sum_seconds(),
        );
    }
    let _ = writeln!(
        out,
        "# HELP onair_store_call_duration_seconds database calls, acquiring a connection included\n# TYPE onair_store_call_duration_seconds histogram"
    );
    let store = src.store;
    write_histogram(
        out,
        "onair_store_call_duration_seconds",
        "",
        &onair_store::CALL_BUCKETS,
        &store.cumulative(),
        store.count(),
        store.sum_seconds(),
    );
}

/// One histogram's `_bucket`, `_sum` and `_count` lines; `labels` go before `le`.
fn write_histogram(
    out: &mut String,
    name: &str,
    labels: &str,
    bounds: &[f64],
    cumulative: &[u64],
    count: u64,
    sum: f64,
) {
    let sep = if labels.is_empty() { "" } else { "," };
    for (le, n) in bounds.iter().zip(cumulative) {
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
    let braces = |s: &str| {
        if s.is_empty() {
            String::new()
        } else {
            format!("{{{s}}}")
        }
    };
    let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
    let _ = writeln!(out, "{name}_count{} {count}", braces(labels));
}

/// A label value as the text format wants it: backslash, quote and newline escaped.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
