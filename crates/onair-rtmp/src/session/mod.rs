//! Sans-IO RTMP sessions: a [`ServerSession`] for ingest and play, a [`ClientSession`] for the
//! CLI and the tests.
//!
//! Both take bytes and the current time in (`handle_input(now, &buf)`) and give bytes and events
//! out (`poll_output()`); neither reads the clock, owns a socket or draws randomness. The caller
//! drains `poll_output` after every mutation (input, timeout, `accept_*`, `send_*`).
//!
//! # Chunk stream ids
//!
//! The server's own messages use csid 2 (protocol control, RTMP 1.0 §5.4), 3 (NetConnection
//! commands) and 4 (NetStream commands and `|RtmpSampleAccess`). Media to players goes out on
//! [`MEDIA_CSID_AUDIO`], [`MEDIA_CSID_VIDEO`] and [`MEDIA_CSID_DATA`], which a session never uses
//! for anything else. That lets the driver write media that was chunked **once** for every
//! viewer with [`encode_standalone`](crate::chunk::encode_standalone): those chunks always start
//! with a type-0 header, so they neither depend on nor disturb this session's header
//! compression, as long as no compressed (type 1–3) header is ever sent on the same csid.
//! [`ServerSession::encode_media`] keeps that rule too (it also writes type-0 headers), so shared
//! and per-session media may be interleaved freely — but only at message boundaries, and only
//! while [`ServerSession::chunk_size_out`] equals the chunk size the shared bytes were cut with.

mod client;
mod server;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use onair_amf::Value;
use onair_media::MediaKind;

use crate::chunk::{ChunkDecoder, ChunkEncoder, ChunkError, RawMessage};
use crate::handshake::HandshakeError;
use crate::limits::RtmpLimits;
use crate::message::{Message, MessageError};

pub use client::{ClientConfig, ClientEvent, ClientOutput, ClientSession};
pub use server::{ServerConfig, ServerEvent, ServerOutput, ServerSession};

/// Chunk stream id of audio messages sent to players (shared, pre-chunked bytes).
pub const MEDIA_CSID_AUDIO: u32 = 6;
/// Chunk stream id of video messages sent to players (shared, pre-chunked bytes).
pub const MEDIA_CSID_VIDEO: u32 = 7;
/// Chunk stream id of data messages (`onMetaData`) sent to players (shared, pre-chunked bytes).
pub const MEDIA_CSID_DATA: u32 = 5;

/// Protocol control messages travel on chunk stream 2, message stream 0 (RTMP 1.0 §5.4).
pub(crate) const CSID_CONTROL: u32 = 2;
/// NetConnection commands (`connect`, `createStream`, their `_result`s).
pub(crate) const CSID_COMMAND: u32 = 3;
/// NetStream commands and status (`publish`, `play`, `onStatus`, `|RtmpSampleAccess`). Kept apart
/// from the media csids so shared type-0 media chunks never meet our compressed headers.
pub(crate) const CSID_STREAM: u32 = 4;

/// The chunk stream id media of `kind` uses; see the [module docs](self).
pub fn media_csid(kind: MediaKind) -> u32 {
    match kind {
        MediaKind::Audio => MEDIA_CSID_AUDIO,
        MediaKind::Video => MEDIA_CSID_VIDEO,
        MediaKind::Script => MEDIA_CSID_DATA,
    }
}

/// The message the driver and the session agree on for one media frame sent to a player:
/// the csid for `kind`, type id = the FLV tag type (8, 9 or 18), message stream id = `stream`
/// (the play stream, [`ServerSession::media_stream_id`]).
///
/// Chunk it once per frame with [`encode_standalone`](crate::chunk::encode_standalone) and
/// [`ServerSession::chunk_size_out`], and share the bytes among players.
///
/// ```
/// use bytes::Bytes;
/// use onair_media::MediaKind;
/// use onair_rtmp::session::{media_raw_message, MEDIA_CSID_VIDEO};
///
/// let raw = media_raw_message(MediaKind::Video, 40, 1, Bytes::from_static(&[0x17, 1, 0, 0, 0]));
/// assert_eq!((raw.csid, raw.type_id, raw.message_stream_id), (MEDIA_CSID_VIDEO, 9, 1));
/// ```
pub fn media_raw_message(
    kind: MediaKind,
    timestamp: u32,
    stream: u32,
    payload: Bytes,
) -> RawMessage {
    RawMessage {
        csid: media_csid(kind),
        timestamp,
        type_id: kind.tag_type(),
        message_stream_id: stream,
        payload,
    }
}

/// Identifies a publish or play request awaiting the driver's `accept_*` / `reject_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(u64);

/// Why the driver refuses a publish or play request. The text is sent to the peer as the
/// `description` of the error `onStatus`, which OBS and FFmpeg print for the user — say what
/// went wrong, never echo the key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reject {
    /// The stream name or key is not valid (publish: `NetStream.Publish.BadName`).
    BadName(String),
    /// The key is valid but publishing/playing is not allowed now, e.g. the channel is banned or
    /// already live (publish: `NetStream.Publish.Denied`).
    Denied(String),
    /// The key is unknown, expired or revoked. There is no standard "unauthorized" NetStream
    /// code; `NetStream.Publish.Rejected` is the one OBS's librtmp recognises and stops on.
    Unauthorized(String),
    /// Nothing is published under that name (play: `NetStream.Play.StreamNotFound`).
    NotFound(String),
    /// Any other failure (`NetStream.Publish.Rejected` / `NetStream.Play.Failed`).
    Failed(String),
}

impl Reject {
    /// The human description sent with the status.
    pub fn description(&self) -> &str {
        match self {
            Reject::BadName(d)
            | Reject::Denied(d)
            | Reject::Unauthorized(d)
            | Reject::NotFound(d)
            | Reject::Failed(d) => d,
        }
    }

    /// The `onStatus` code used when refusing a publish.
    pub fn publish_code(&self) -> &'static str {
        match self {
            Reject::BadName(_) | Reject::NotFound(_) => "NetStream.Publish.BadName",
            Reject::Denied(_) => "NetStream.Publish.Denied",
            Reject::Unauthorized(_) | Reject::Failed(_) => "NetStream.Publish.Rejected",
        }
    }

    /// The `onStatus` code used when refusing a play.
    pub fn play_code(&self) -> &'static str {
        match self {
            Reject::NotFound(_) | Reject::BadName(_) => "NetStream.Play.StreamNotFound",
            Reject::Denied(_) | Reject::Unauthorized(_) | Reject::Failed(_) => {
                "NetStream.Play.Failed"
            }
        }
    }
}

/// Why a session stopped. Every variant is fatal: the driver closes the connection and does not
/// feed the session again (a session that failed answers [`SessionError::Closed`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The handshake bytes were invalid.
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    /// The chunk stream was invalid or went past an [`RtmpLimits`] bound.
    #[error("chunk stream: {0}")]
    Chunk(#[from] ChunkError),
    /// A message could not be decoded.
    #[error("message type {type_id} on chunk stream {csid}: {source}")]
    Message {
        /// The message type id.
        type_id: u8,
        /// The chunk stream it arrived on.
        csid: u32,
        /// What was wrong with it.
        #[source]
        source: MessageError,
    },
    /// The peer's Set Chunk Size carried a value the decoder refuses (0 or bit 31 set).
    #[error("peer's Set Chunk Size {size}: {source}")]
    ChunkSize {
        /// The size the peer asked for.
        size: u32,
        /// Why the decoder refused it.
        #[source]
        source: ChunkError,
    },
    /// No byte arrived from the peer for `idle` (it answers neither pings nor acks).
    #[error("no bytes from the peer for {idle:?}")]
    TimedOut {
        /// The configured idle timeout.
        idle: Duration,
    },
    /// The handshake and `connect` did not both arrive within `after`.
    #[error("handshake and connect not finished within {after:?}")]
    HandshakeTimedOut {
        /// The configured handshake timeout.
        after: Duration,
    },
    /// [`ClientSession::send_media`] was called before the server started the publish.
    #[error("cannot send {kind:?} before the server answered NetStream.Publish.Start")]
    NotPublishing {
        /// The kind of media that was refused.
        kind: MediaKind,
    },
    /// The session already returned an error; it takes no more input.
    #[error("the session already failed and takes no more input")]
    Closed,
}

/// What the sessions need of either side's handshake.
trait HandshakeIo {
    fn handle_input(&mut self, buf: &[u8]) -> Result<usize, HandshakeError>;
    fn poll_transmit(&mut self) -> Option<Bytes>;
    fn is_done(&self) -> bool;
}

impl HandshakeIo for crate::handshake::ServerHandshake {
    fn handle_input(&mut self, buf: &[u8]) -> Result<usize, HandshakeError> {
        crate::handshake::ServerHandshake::handle_input(self, buf)
    }
    fn poll_transmit(&mut self) -> Option<Bytes> {
        crate::handshake::ServerHandshake::poll_transmit(self)
    }
    fn is_done(&self) -> bool {
        crate::handshake::ServerHandshake::is_done(self)
    }
}

impl HandshakeIo for crate::handshake::ClientHandshake {
    fn handle_input(&mut self, buf: &[u8]) -> Result<usize, HandshakeError> {
        crate::handshake::ClientHandshake::handle_input(self, buf)
    }
    fn poll_transmit(&mut self) -> Option<Bytes> {
        crate::handshake::ClientHandshake::poll_transmit(self)
    }
    fn is_done(&self) -> bool {
        crate::handshake::ClientHandshake::is_done(self)
    }
}

/// One item of a session's output queue.
#[derive(Debug)]
enum Queued<E> {
    Transmit(Bytes),
    Event(E),
}

/// The part both sessions share once the handshake is done: chunk codec, the input buffer, the
/// coalescing output buffer and the acknowledgement window (RTMP 1.0 §5.4.3–5.4.4).
struct Link<E> {
    decoder: ChunkDecoder,
    encoder: ChunkEncoder,
    /// Undecoded input. The decoder splits messages off it, so payloads are slices of it.
    inbuf: BytesMut,
    /// Encoded messages not yet handed out: consecutive transmits become one `Bytes`.
    tx: BytesMut,
    queue: VecDeque<Queued<E>>,
    /// Total bytes received, wrapping at 2^32 like the Acknowledgement sequence number
    /// (ossrs/srs #730: encoders stall when servers get the wrap wrong).
    received: u32,
    /// `received` when we last acknowledged.
    acked: u32,
    /// The peer's Window Acknowledgement Size; 0 until it sends one (then we never ack).
    peer_window: u32,
}

impl<E> std::fmt::Debug for Link<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("buffered", &self.inbuf.len())
            .field("received", &self.received)
            .field("peer_window", &self.peer_window)
            .field("chunk_size_out", &self.encoder.chunk_size())
            .finish_non_exhaustive()
    }
}

impl<E> Link<E> {
    fn new(limits: RtmpLimits) -> Self {
        Link {
            decoder: ChunkDecoder::new(limits),
            encoder: ChunkEncoder::new(),
            inbuf: BytesMut::new(),
            tx: BytesMut::new(),
            queue: VecDeque::new(),
            received: 0,
            acked: 0,
            peer_window: 0,
        }
    }

    /// Counts `n` received bytes. Truncating `n` to 32 bits is the wrap the sequence number does.
    fn count_received(&mut self, n: usize) {
        self.received = self.received.wrapping_add(n as u32);
    }

    /// Queues an Acknowledgement if at least one window of bytes arrived since the last one.
    ///
    /// The sequence number is the total received so far, not the bytes since the last ack
    /// (RTMP 1.0 §5.4.3; the delta variant was a known rml_rtmp bug). One ack per input call
    /// covers every window that call crossed.
    fn ack_if_due(&mut self) {
        if self.peer_window != 0 && self.received.wrapping_sub(self.acked) >= self.peer_window {
            self.acked = self.received;
            let sequence_number = self.received;
            self.send_message(
                CSID_CONTROL,
                0,
                &Message::Acknowledgement { sequence_number },
            );
        }
    }

    fn send_raw(
        &mut self,
        csid: u32,
        message_stream_id: u32,
        timestamp: u32,
        type_id: u8,
        payload: Bytes,
    ) {
        let raw = RawMessage {
            csid,
            timestamp,
            type_id,
            message_stream_id,
            payload,
        };
        self.encoder.encode(&raw, &mut self.tx);
    }

    fn send_message(&mut self, csid: u32, message_stream_id: u32, message: &Message) {
        self.send_raw(
            csid,
            message_stream_id,
            0,
            message.type_id(),
            message.encode_payload(),
        );
    }

    /// Sends an AMF0 command (type 20). Replies are AMF0 whatever `objectEncoding` the peer
    /// announced: every client accepts them (SRS and nginx-rtmp do the same).
    fn send_command(&mut self, csid: u32, message_stream_id: u32, values: &[Value]) {
        self.send_raw(
            csid,
            message_stream_id,
            0,
            TYPE_COMMAND_AMF0,
            onair_amf::encode_all(values),
        );
    }

    /// Feeds `input` to a handshake, queueing its replies. Returns the bytes that follow the
    /// handshake once it is done, `None` while it needs more.
    fn feed_handshake<'a>(
        &mut self,
        handshake: &mut impl HandshakeIo,
        mut input: &'a [u8],
    ) -> Result<Option<&'a [u8]>, HandshakeError> {
        loop {
            let consumed = handshake.handle_input(input)?;
            // The handshake reports what it used; it never claims more than it was given.
            input = input.get(consumed..).unwrap_or_default();
            while let Some(bytes) = handshake.poll_transmit() {
                self.queue_bytes(bytes);
            }
            if handshake.is_done() {
                return Ok(Some(input));
            }
            if input.is_empty() || consumed == 0 {
                return Ok(None);
            }
        }
    }

    /// Bytes that must go out before anything encoded later (the handshake reply).
    fn queue_bytes(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        self.flush_tx();
        self.queue.push_back(Queued::Transmit(bytes));
    }

    fn push_event(&mut self, event: E) {
        self.flush_tx();
        self.queue.push_back(Queued::Event(event));
    }

    fn flush_tx(&mut self) {
        if !self.tx.is_empty() {
            let bytes = self.tx.split().freeze();
            self.queue.push_back(Queued::Transmit(bytes));
        }
    }

    fn poll(&mut self) -> Option<Queued<E>> {
        if let Some(out) = self.queue.pop_front() {
            return Some(out);
        }
        if self.tx.is_empty() {
            return None;
        }
        Some(Queued::Transmit(self.tx.split().freeze()))
    }

    /// Bytes held by the session that came from the peer and are not yet a message.
    fn buffered_len(&self) -> usize {
        self.inbuf.len()
    }
}

/// Message type ids the sessions handle from raw bytes (RTMP 1.0 §7.1).
pub(crate) const TYPE_AUDIO: u8 = 8;
pub(crate) const TYPE_VIDEO: u8 = 9;
pub(crate) const TYPE_DATA_AMF3: u8 = 15;
pub(crate) const TYPE_DATA_AMF0: u8 = 18;
pub(crate) const TYPE_COMMAND_AMF0: u8 = 20;
pub(crate) const TYPE_AGGREGATE: u8 = 22;

/// An `onStatus` info object (RTMP 1.0 §7.2.2: level, code, description).
fn status_object(level: &str, code: &str, description: &str) -> Value {
    Value::object([
        ("level", Value::from(level)),
        ("code", Value::from(code)),
        ("description", Value::from(description)),
    ])
}

/// The status fields of an info object, with empty strings for what is missing.
fn status_fields(info: Option<&Value>) -> (String, String, String) {
    let field = |key: &str| {
        info.and_then(|v| v.get(key))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    (field("level"), field("code"), field("description"))
}

/// Extracts the `onMetaData` body of a data message, as an AMF0 payload starting with the
/// string `onMetaData`. `@setDataFrame` (how OBS and FFmpeg publish metadata, §4.5 step 4) is
/// stripped by slicing, so the result shares the input's memory. Type 15 (AMF3 data) is decoded
/// and re-encoded as AMF0. `None` for any other data message (`|RtmpSampleAccess`,
/// `onTextData`, `@clearDataFrame`, malformed bodies).
fn metadata_body(type_id: u8, payload: &Bytes) -> Option<Bytes> {
    if type_id == TYPE_DATA_AMF3 {
        let mut values = onair_amf::amf3::decode_command_payload(payload).ok()?;
        if values.first().and_then(Value::as_str) == Some("@setDataFrame") {
            values.remove(0);
        }
        return (values.first().and_then(Value::as_str) == Some("onMetaData"))
            .then(|| onair_amf::encode_all(&values));
    }
    let mut decoder = onair_amf::Decoder::new(payload);
    let first = decoder.next_value().ok()??;
    let body = match first.as_str()? {
        "onMetaData" => return Some(payload.clone()),
        "@setDataFrame" => payload.slice(payload.len() - decoder.remaining().len()..),
        _ => return None,
    };
    let mut check = onair_amf::Decoder::new(&body);
    match check.next_value() {
        Ok(Some(Value::String(name))) if name == "onMetaData" => Some(body),
        _ => None,
    }
}
