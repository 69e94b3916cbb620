//! [`FlvFeed`]: one viewer's hub subscription turned into FLV bytes.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use onair_flv::FlvHeader;
use onair_hub::{Delivery, Encoding, Entry, RecvError, Subscriber};
use onair_media::MediaKind;
use tracing::{debug, info, warn};

use super::Feeds;
use crate::metrics::{Metrics, Wire};
use crate::net::{BytesSent, Unacknowledged};

/// How long the FLV header waits for a stream's second track to show itself when neither
/// metadata nor both sequence headers say what the publisher sends.
const TRACK_PROBE: Duration = Duration::from_millis(1000);

/// Turns a hub subscription into FLV bytes: the header (with track flags that match what
/// the publisher really sends), then one shared tag per frame.
pub(super) struct FlvFeed {
    subscriber: Subscriber,
    /// The protocol the bytes are counted under.
    wire: Option<Wire>,
    state: Arc<Feeds>,
    batch: Vec<Arc<Entry>>,
    pending: VecDeque<Bytes>,
    header_sent: bool,
    /// Frames held back while the header's track flags are still being worked out.
    held: Vec<Arc<Entry>>,
    /// When the header goes out with whatever tracks have shown themselves by then.
    probe_until: Option<tokio::time::Instant>,
    /// When the stream ends if the publisher has not come back.
    grace_until: Option<tokio::time::Instant>,
    ended: bool,
    /// The stream ended because the viewer was too slow.
    dropped: bool,
    /// HTTP-FLV: waits for hyper to write what it was given.
    gate: Option<Gate>,
    /// The connection's socket, whose send queue tells what the viewer has not received.
    watched: Option<BytesSent>,
    /// The tags handed out, for what of them the viewer has not acknowledged.
    unacknowledged: Unacknowledged,
}

/// What hyper may hold of an HTTP-FLV body beyond what it has written: the response head and
/// a piece or two. More is media the hub cannot see a slow viewer has not received.
const GATE_SLACK: u64 = 4 * 1024;
/// How often a gated feed looks whether hyper has written. Only a viewer whose socket is
/// full waits here: one at the live edge finds the bytes written after one yield.
const GATE_POLL: Duration = Duration::from_millis(10);

/// Tracks an HTTP-FLV body's pieces against the connection's written bytes.
struct Gate {
    sent: BytesSent,
    /// The connection's written bytes when the feed started (earlier requests on it).
    base: u64,
    /// Bytes handed to hyper, with the chunked encoding's framing of each piece.
    handed: u64,
}

impl Gate {
    fn handed(&mut self, len: usize) {
        // `{len:x}\r\n` before the piece, `\r\n` after it.
        let hex = (usize::BITS - len.leading_zeros()).div_ceil(4).max(1);
        self.handed += len as u64 + u64::from(hex) + 4;
    }

    fn behind(&self) -> bool {
        self.not_written() > GATE_SLACK
    }

    /// What hyper was given and has not written to the socket yet.
    fn not_written(&self) -> u64 {
        self.handed
            .saturating_sub(self.sent.get().saturating_sub(self.base))
    }

    async fn drained(&self) {
        if !self.behind() {
            return;
        }
        // Hyper asks for the next piece before writing the last one: given way once, it
        // writes it, and a viewer whose socket takes it goes on without a timer.
        tokio::task::yield_now().await;
        while self.behind() {
            tokio::time::sleep(GATE_POLL).await;
        }
    }
}

impl Drop for FlvFeed {
    fn drop(&mut self) {
        if let Some(w) = Wire::of_viewer(self.subscriber.protocol()) {
            self.state.metrics.open.sub_one(w);
        }
        info!(channel = self.subscriber.channel(), protocol = %self.subscriber.protocol(), "viewer left");
    }
}

impl FlvFeed {
    pub(super) fn new(mut subscriber: Subscriber, state: Arc<Feeds>) -> Self {
        subscriber.set_batch_bytes(crate::net::VIEWER_BATCH_BYTES);
        let wire = Wire::of_viewer(subscriber.protocol());
        if let Some(w) = wire {
            state.metrics.opened.add(w, 1);
            state.metrics.open.add(w, 1);
        }
        FlvFeed {
            wire,
            subscriber,
            state,
            batch: Vec::new(),
            pending: VecDeque::new(),
            header_sent: false,
            held: Vec::new(),
            probe_until: None,
            grace_until: None,
            ended: false,
            dropped: false,
            gate: None,
            watched: None,
            unacknowledged: Unacknowledged::default(),
        }
    }

    /// The next piece of the byte stream; `None` at the end.
    ///
    /// Cancel-safe (the WebSocket loop races it against the client's frames): all state lives
    /// in `self`, and each call awaits at most one hub delivery, handled without awaiting.
    pub(super) async fn next(&mut self) -> std::io::Result<Option<Bytes>> {
        loop {
            if let Some(b) = self.pending.pop_front() {
                if let Some(gate) = &mut self.gate {
                    gate.handed(b.len());
                }
                return Ok(Some(b));
            }
            if self.ended {
                return Ok(None);
            }
            if let Some(gate) = &self.gate {
                gate.drained().await;
            }
            self.count_unacknowledged();
            self.fill().await?;
        }
    }

    /// Makes the feed take nothing more from the hub while hyper holds more than
    /// [`GATE_SLACK`] of what it was given and has not written yet (see [`BytesSent`]).
    pub(super) fn gate_on(&mut self, sent: BytesSent) {
        self.watch(sent.clone());
        self.gate = Some(Gate {
            base: sent.get(),
            sent,
            handed: 0,
        });
    }

    /// Makes the hub's lag check count what the viewer has been handed but its socket has
    /// not delivered yet (see [`Unacknowledged`]).
    pub(super) fn watch(&mut self, sent: BytesSent) {
        self.watched = Some(sent);
    }

    fn count_unacknowledged(&mut self) {
        let Some(fd) = self.watched.as_ref().and_then(BytesSent::socket) else {
            return;
        };
        let not_written = self.gate.as_ref().map_or(0, Gate::not_written);
        let not_written = usize::try_from(not_written).unwrap_or(usize::MAX);
        let media = self.unacknowledged.media(fd, not_written);
        self.subscriber.set_unacknowledged(media);
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        let deadline = match (self.probe_until, self.grace_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let delivery = match deadline {
            Some(at) => tokio::time::timeout_at(at, self.subscriber.recv(&mut self.batch))
                .await
                .ok(),
            None => Some(self.subscriber.recv(&mut self.batch).await),
        };
        let channel = self.subscriber.channel();
        match delivery {
            None => {
                let now = tokio::time::Instant::now();
                if self.grace_until.is_some_and(|t| t <= now) {
                    info!(channel, "publisher did not return; ending the stream");
                    self.ended = true;
                } else if self.probe_until.is_some_and(|t| t <= now) {
                    self.send_header();
                }
            }
            Some(Ok(Delivery::Frames)) => {
                self.grace_until = None;
                self.unacknowledged.skipped(self.subscriber.skipped());
                let batch = std::mem::take(&mut self.batch);
                if self.header_sent {
                    self.queue(&batch);
                } else {
                    self.held.extend_from_slice(&batch);
                    if Tracks::seen_in(&self.held).certain {
                        self.send_header();
                    } else if self.probe_until.is_none() {
                        self.probe_until = Some(tokio::time::Instant::now() + TRACK_PROBE);
                    }
                }
                self.batch = batch;
            }
            Some(Ok(Delivery::PublisherLeft)) => {
                let grace = self.state.hub_config.republish_grace;
                debug!(channel, "publisher left; viewer waits {grace:?}");
                self.grace_until = Some(tokio::time::Instant::now() + grace);
            }
            Some(Ok(Delivery::PublisherBack)) => {
                debug!(channel, "publisher is back");
                self.grace_until = None;
            }
            Some(Err(e)) => return self.lost(e),
        }
        Ok(())
    }

    /// Writes the FLV header with the tracks seen so far, then the frames held for it.
    fn send_header(&mut self) {
        let tracks = Tracks::seen_in(&self.held);
        self.pending.push_back(
            FlvHeader {
                has_audio: tracks.audio,
                has_video: tracks.video,
            }
            .encode(),
        );
        self.header_sent = true;
        self.probe_until = None;
        let held = std::mem::take(&mut self.held);
        self.queue(&held);
    }

    /// Queues the tags of `entries`, counted as sent with one add for the whole batch.
    fn queue(&mut self, entries: &[Arc<Entry>]) {
        let mut bytes = 0;
        for e in entries {
            let tag = e.encoded(Encoding::FlvTag, onair_flv::encode_frame);
            bytes += tag.len() as u64;
            // Without the chunk or WebSocket framing: a few bytes a tag, which only blurs
            // the count by that much, since it reaches back from the newest tag.
            self.unacknowledged
                .wrote(tag.len(), e.frame().timestamp.as_millis());
            self.pending.push_back(tag);
        }
        if let Some(w) = self.wire {
            self.state.metrics.bytes_out.add(w, bytes);
        }
    }

    /// The subscription ended. Either way the stream ends cleanly (the HTTP body with its
    /// last chunk, the WebSocket with a close frame that says why): a viewer that fell too far
    /// behind too often, after skips did not keep it near live, is told so rather than reset.
    fn lost(&mut self, e: RecvError) -> std::io::Result<()> {
        self.ended = true;
        if e != RecvError::Closed {
            Metrics::inc(&self.state.metrics.viewers_dropped_slow);
            warn!(channel = self.subscriber.channel(), error = %e, "viewer too slow; dropped");
            self.dropped = true;
        }
        Ok(())
    }

    /// Whether the stream ended because the viewer was dropped for being too slow.
    pub(super) fn dropped_slow(&self) -> bool {
        self.dropped
    }
}

/// Which tracks a stream has, and whether we know for sure.
#[derive(Debug, Default, PartialEq)]
struct Tracks {
    audio: bool,
    video: bool,
    certain: bool,
}

impl Tracks {
    /// Reads the tracks off metadata (`hasAudio`/`audiocodecid`, …) and the sequence headers
    /// and frames in `entries`. Metadata or both headers settle it; otherwise it is a guess.
    fn seen_in(entries: &[Arc<Entry>]) -> Tracks {
        let mut t = Tracks::default();
        let (mut audio_header, mut video_header, mut from_metadata) = (false, false, false);
        for e in entries {
            let f = e.frame();
            match f.kind {
                MediaKind::Audio => {
                    t.audio = true;
                    audio_header |= f.sequence_header;
                }
                MediaKind::Video => {
                    t.video = true;
                    video_header |= f.sequence_header;
                }
                MediaKind::Script => {
                    if let Ok(meta) = onair_flv::parse_metadata(&f.data) {
                        from_metadata = true;
                        let flag = |key: &str| {
                            meta.properties
                                .iter()
                                .find(|(k, _)| k == key)
                                .and_then(|(_, v)| v.as_bool())
                        };
                        t.audio |= flag("hasAudio").unwrap_or(
                            meta.audio_codec.is_some() || meta.audiosamplerate.is_some(),
                        );
                        t.video |= flag("hasVideo")
                            .unwrap_or(meta.video_codec.is_some() || meta.width.is_some());
                    }
                }
            }
        }
        t.certain = from_metadata || (audio_header && video_header);
        t
    }
}
