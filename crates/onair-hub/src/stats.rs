//! What a channel reports about itself: viewers by protocol, bytes, frames, rates.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// How a subscriber watches, for the viewer counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// RTMP play.
    Rtmp,
    /// HTTP-FLV.
    HttpFlv,
    /// WebSocket-FLV.
    WsFlv,
    /// An internal consumer (segmenter, recorder); not counted as a viewer.
    Internal,
    /// Another node pulling the channel to serve its own viewers (an edge's relay); counted
    /// apart from viewers and never against their cap.
    Relay,
    /// A push of the channel to another server (a restream destination); counted apart from
    /// viewers and never against their cap.
    Restream,
}

impl Protocol {
    /// Every protocol, in a fixed order.
    pub const ALL: [Protocol; 6] = [
        Protocol::Rtmp,
        Protocol::HttpFlv,
        Protocol::WsFlv,
        Protocol::Internal,
        Protocol::Relay,
        Protocol::Restream,
    ];

    /// A short lower-case name, as used in metrics and the API.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Rtmp => "rtmp",
            Protocol::HttpFlv => "http-flv",
            Protocol::WsFlv => "ws-flv",
            Protocol::Internal => "internal",
            Protocol::Relay => "relay",
            Protocol::Restream => "restream",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Default)]
pub(crate) struct ViewerCounts([AtomicUsize; Protocol::ALL.len()]);

impl ViewerCounts {
    pub(crate) fn add(&self, p: Protocol) {
        self.0[p as usize].fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn remove(&self, p: Protocol) {
        self.0[p as usize].fetch_sub(1, Ordering::Relaxed);
    }
    pub(crate) fn get(&self, p: Protocol) -> usize {
        self.0[p as usize].load(Ordering::Relaxed)
    }
}

/// A channel as it is now.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelSnapshot {
    /// Channel name.
    pub channel: String,
    /// Time since the current publish started.
    pub uptime: Duration,
    /// Media bytes received in this publish.
    pub bytes_in: u64,
    /// Video frames received in this publish.
    pub video_frames: u64,
    /// Audio frames received in this publish.
    pub audio_frames: u64,
    /// Media bitrate over the frames the ring holds now, bits per second.
    pub recent_bitrate: u64,
    /// Video frame rate over the frames the ring holds now.
    pub recent_fps: f64,
    /// Subscribers by protocol (internal consumers and relays included).
    pub viewers: Vec<(Protocol, usize)>,
    /// Subscribers dropped for being too slow, in this channel's lifetime.
    pub dropped_slow: u64,
}

impl ChannelSnapshot {
    /// Viewers across the playback protocols (internal consumers, relays and restreams
    /// excluded).
    pub fn total_viewers(&self) -> usize {
        self.viewers
            .iter()
            .filter(|(p, _)| {
                !matches!(p, Protocol::Internal | Protocol::Relay | Protocol::Restream)
            })
            .map(|(_, n)| n)
            .sum()
    }
}
