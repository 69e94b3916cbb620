//! The RTMP chunk stream (rtmp-v1-0-spec §5.3): splitting messages into chunks and putting them
//! back together.
//!
//! [`ChunkDecoder`] is sans-IO and keeps tokio-util's `Decoder` contract: it reads from a
//! [`BytesMut`] the caller appends to, returns `Ok(None)` when it needs more bytes (leaving the
//! bytes of an incomplete chunk in the buffer), and an error ends the connection.
//! [`ChunkEncoder`] keeps one connection's header-compression state; [`encode_standalone`] chunks a
//! message independently of any peer's state so that one encoding can be shared by many players.
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use onair_rtmp::chunk::{ChunkDecoder, ChunkEncoder, RawMessage};
//! use onair_rtmp::limits::RtmpLimits;
//!
//! let msg = RawMessage {
//!     csid: 6,
//!     timestamp: 40,
//!     type_id: 9,
//!     message_stream_id: 1,
//!     payload: Bytes::from(vec![0x17; 300]),
//! };
//! let mut wire = BytesMut::new();
//! ChunkEncoder::new().encode(&msg, &mut wire);
//!
//! let mut decoder = ChunkDecoder::new(RtmpLimits::default());
//! assert_eq!(decoder.decode(&mut wire).unwrap(), Some(msg));
//! assert_eq!(decoder.decode(&mut wire).unwrap(), None);
//! ```

use std::collections::HashMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::limits::RtmpLimits;

/// The chunk size both directions start with (§5.4.1).
pub const DEFAULT_CHUNK_SIZE: u32 = 128;

/// Chunk sizes above this behave as this: no message is longer than the 24-bit length field, so a
/// larger chunk never holds more (§5.4.1).
pub const MAX_EFFECTIVE_CHUNK_SIZE: u32 = 0xFF_FFFF;

/// Largest chunk stream id the 3-byte basic header can express (§5.3.1.1).
pub const MAX_CSID: u32 = 65599;

/// A timestamp or delta field holding this value announces a 4-byte extended timestamp (§5.3.1.3).
const EXTENDED_MARKER: u32 = 0xFF_FFFF;

/// Message header length by chunk format 0..=3 (§5.3.1.2).
const MESSAGE_HEADER_LEN: [usize; 4] = [11, 7, 3, 0];

/// One complete message as carried by the chunk stream, before its payload is interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    /// Chunk stream the message arrived on (or is to be sent on), 2..=65599.
    pub csid: u32,
    /// Absolute timestamp in milliseconds; wraps at 2^32.
    pub timestamp: u32,
    /// Message type id (§5.4, §6.2, §7.1).
    pub type_id: u8,
    /// Message stream id (0 for NetConnection traffic).
    pub message_stream_id: u32,
    /// The message body: a slice of the read buffer when it arrived in a single chunk.
    pub payload: Bytes,
}

/// Why the chunk stream cannot continue. Every variant ends the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkError {
    /// A type 1, 2 or 3 chunk on a chunk stream that never had a type-0 header (§5.3.1.2.1: type 0
    /// MUST start a chunk stream).
    #[error("chunk stream {csid}: type-{fmt} header with no preceding type-0 header")]
    NoPreviousHeader {
        /// The chunk stream id.
        csid: u32,
        /// The chunk format (1, 2 or 3).
        fmt: u8,
    },
    /// A header announced a message longer than [`RtmpLimits::max_message_len`].
    #[error("chunk stream {csid}: message length {length} exceeds the limit of {max} bytes")]
    MessageTooLong {
        /// The chunk stream id.
        csid: u32,
        /// The announced length.
        length: u32,
        /// The limit.
        max: u32,
    },
    /// A new chunk stream would exceed [`RtmpLimits::max_chunk_streams`].
    #[error("chunk stream {csid}: more than {max} chunk streams in use")]
    TooManyChunkStreams {
        /// The chunk stream id that would have been added.
        csid: u32,
        /// The limit.
        max: usize,
    },
    /// Starting to reassemble a message would exceed [`RtmpLimits::max_partial_bytes`].
    #[error(
        "chunk stream {csid}: reassembling {length} more bytes would exceed the partial-message \
         budget ({in_use} of {max} bytes in use)"
    )]
    PartialBudgetExceeded {
        /// The chunk stream id.
        csid: u32,
        /// Length of the message being started.
        length: u32,
        /// Bytes already reserved by other partial messages.
        in_use: usize,
        /// The limit.
        max: usize,
    },
    /// A chunk size of 0 or with bit 31 set: §5.4.1 allows 1 to 0x7FFFFFFF ("bit 0 MUST be
    /// zero").
    #[error("invalid chunk size {size:#x}: must be 1..=0x7fffffff")]
    InvalidChunkSize {
        /// The rejected value.
        size: u32,
    },
    /// A chunk size above [`RtmpLimits::max_chunk_size`].
    #[error("chunk size {size} exceeds the limit of {max}")]
    ChunkSizeTooLarge {
        /// The rejected value.
        size: u32,
        /// The limit.
        max: u32,
    },
}

/// Header state of one incoming chunk stream (§5.3.1.2: later headers inherit from it).
#[derive(Debug)]
struct InStream {
    timestamp: u32,
    /// Delta applied by a type-3 chunk that starts a new message. After a type-0 header this is
    /// that header's absolute timestamp (§5.3.1.2.4).
    delta: u32,
    length: u32,
    type_id: u8,
    message_stream_id: u32,
    /// Whether the most recent type 0/1/2 header used an extended timestamp, which makes the
    /// 4-byte field present on type-3 chunks too (§5.3.1.3).
    extended: bool,
    /// The value of that extended field, to recognise it when repeated on type-3 chunks.
    extended_value: u32,
    /// A message being reassembled; its capacity is the message length.
    partial: Option<BytesMut>,
}

/// Sans-IO decoder for the incoming chunk stream of one connection.
#[derive(Debug)]
pub struct ChunkDecoder {
    limits: RtmpLimits,
    chunk_size: u32,
    streams: HashMap<u32, InStream>,
    /// Sum of the lengths of all partial messages, bounded by `limits.max_partial_bytes`.
    partial_bytes: usize,
    bytes_received: u64,
}

/// Outcome of decoding one chunk.
enum Step {
    NeedMore,
    Chunk,
    Message(RawMessage),
}

/// A header parsed from the front of the buffer, not yet applied to any state.
struct ParsedHeader {
    fmt: u8,
    csid: u32,
    /// Basic header + message header + extended timestamp bytes to consume.
    header_len: usize,
    /// Timestamp (fmt 0) or delta (fmt 1/2) field, already resolved through the extended field.
    time_field: u32,
    extended: bool,
    length: u32,
    type_id: u8,
    message_stream_id: u32,
}

fn read_u24(b: &[u8]) -> u32 {
    u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2])
}

fn read_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl ChunkDecoder {
    /// A decoder in the initial state: chunk size 128, no chunk streams.
    pub fn new(limits: RtmpLimits) -> Self {
        Self {
            limits,
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: HashMap::new(),
            partial_bytes: 0,
            bytes_received: 0,
        }
    }

    /// Applies the peer's Set Chunk Size, effective from the next chunk (§5.4.1; applying it
    /// immediately is what OBS, FFmpeg and SRS agree on — rust-media-libs PR #31, SRS #926).
    ///
    /// Sizes above `0xFF_FFFF` behave as `0xFF_FFFF`.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        if size == 0 || size & 0x8000_0000 != 0 {
            return Err(ChunkError::InvalidChunkSize { size });
        }
        if size > self.limits.max_chunk_size {
            return Err(ChunkError::ChunkSizeTooLarge {
                size,
                max: self.limits.max_chunk_size,
            });
        }
        self.chunk_size = size.min(MAX_EFFECTIVE_CHUNK_SIZE);
        Ok(())
    }

    /// The chunk size in effect for incoming chunks (after clamping to `0xFF_FFFF`).
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Total bytes consumed from the input so far; the session reports it, truncated to a
    /// wrapping `u32`, in Acknowledgements (§5.4.3, SRS #730).
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// Discards the partial message on `csid` (Abort Message, §5.4.2). Unknown csids are ignored.
    pub fn abort(&mut self, csid: u32) {
        if let Some(stream) = self.streams.get_mut(&csid)
            && let Some(partial) = stream.partial.take()
        {
            tracing::debug!(
                csid,
                discarded = partial.len(),
                "abort: partial message dropped"
            );
            self.partial_bytes -= stream.length as usize;
        }
    }

    /// Decodes chunks from the front of `buf` until a message completes.
    ///
    /// Returns `Ok(None)` when `buf` ends inside a chunk; the bytes of that chunk stay in `buf`,
    /// so the caller appends more and calls again. Complete chunks that do not finish a message
    /// are consumed and kept as partial state.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<RawMessage>, ChunkError> {
        loop {
            match self.decode_chunk(buf)? {
                Step::NeedMore => return Ok(None),
                Step::Chunk => {}
                Step::Message(msg) => return Ok(Some(msg)),
            }
        }
    }

    fn parse_header(&self, b: &[u8]) -> Result<Option<ParsedHeader>, ChunkError> {
        let Some(&first) = b.first() else {
            return Ok(None);
        };
        let fmt = first >> 6;
        let (csid, mut pos) = match first & 0x3f {
            0 => match b.get(1) {
                Some(&b1) => (u32::from(b1) + 64, 2),
                None => return Ok(None),
            },
            1 => match b.get(1..3) {
                Some(ids) => (u32::from(ids[0]) + u32::from(ids[1]) * 256 + 64, 3),
                None => return Ok(None),
            },
            id => (u32::from(id), 1),
        };
        let previous = self.streams.get(&csid);
        let Some(previous) = previous else {
            if fmt != 0 {
                return Err(ChunkError::NoPreviousHeader { csid, fmt });
            }
            // Check the stream count before the header is complete: the error is the same
            // whatever arrives next.
            if self.streams.len() >= self.limits.max_chunk_streams {
                return Err(ChunkError::TooManyChunkStreams {
                    csid,
                    max: self.limits.max_chunk_streams,
                });
            }
            return self.parse_message_header(b, fmt, csid, pos, None);
        };
        if fmt != 3 {
            return self.parse_message_header(b, fmt, csid, pos, Some(previous));
        }
        let mut header = ParsedHeader {
            fmt,
            csid,
            header_len: pos,
            time_field: previous.delta,
            extended: previous.extended,
            length: previous.length,
            type_id: previous.type_id,
            message_stream_id: previous.message_stream_id,
        };
        if previous.extended {
            let Some(field) = b.get(pos..pos + 4) else {
                return Ok(None);
            };
            let field = read_u32(field);
            if previous.partial.is_none() {
                // A type-3 chunk starting a message carries the field (§5.3.1.3); librtmp always
                // wrote it there, so take it as this message's delta.
                header.time_field = field;
                pos += 4;
            } else if field == previous.extended_value {
                pos += 4;
            } else {
                // Continuation chunk without the repeated extended timestamp: OBS's librtmp
                // omitted it until 2024 (obs-studio PR #10097). Like SRS
                // (srs_protocol_rtmp_stack.cpp, 1113-1145) we consume the four bytes only when
                // they equal the expected value and otherwise read them as payload. A payload
                // that happens to start with exactly that value is misread; no better test
                // exists without the sender's help.
                tracing::trace!(csid, "type-3 chunk without repeated extended timestamp");
            }
        }
        header.header_len = pos;
        Ok(Some(header))
    }

    fn parse_message_header(
        &self,
        b: &[u8],
        fmt: u8,
        csid: u32,
        pos: usize,
        previous: Option<&InStream>,
    ) -> Result<Option<ParsedHeader>, ChunkError> {
        let header_len = MESSAGE_HEADER_LEN[usize::from(fmt)];
        let Some(h) = b.get(pos..pos + header_len) else {
            return Ok(None);
        };
        let mut header = ParsedHeader {
            fmt,
            csid,
            header_len: pos + header_len,
            time_field: read_u24(&h[0..3]),
            extended: false,
            length: 0,
            type_id: 0,
            message_stream_id: 0,
        };
        match (fmt, previous) {
            (0, _) => {
                header.length = read_u24(&h[3..6]);
                header.type_id = h[6];
                header.message_stream_id = u32::from_le_bytes([h[7], h[8], h[9], h[10]]);
            }
            (1, Some(prev)) => {
                header.length = read_u24(&h[3..6]);
                header.type_id = h[6];
                header.message_stream_id = prev.message_stream_id;
            }
            (_, Some(prev)) => {
                header.length = prev.length;
                header.type_id = prev.type_id;
                header.message_stream_id = prev.message_stream_id;
            }
            // parse_header only passes `None` for fmt 0.
            (_, None) => return Err(ChunkError::NoPreviousHeader { csid, fmt }),
        }
        if header.length > self.limits.max_message_len {
            return Err(ChunkError::MessageTooLong {
                csid,
                length: header.length,
                max: self.limits.max_message_len,
            });
        }
        if header.time_field == EXTENDED_MARKER {
            let Some(ext) = b.get(header.header_len..header.header_len + 4) else {
                return Ok(None);
            };
            header.time_field = read_u32(ext);
            header.extended = true;
            header.header_len += 4;
        }
        Ok(Some(header))
    }

    fn decode_chunk(&mut self, buf: &mut BytesMut) -> Result<Step, ChunkError> {
        let Some(header) = self.parse_header(buf)? else {
            return Ok(Step::NeedMore);
        };
        let csid = header.csid;
        let in_progress = self.streams.get(&csid).and_then(|stream| {
            let partial = stream.partial.as_ref()?;
            Some((partial.len(), stream.length as usize))
        });
        let (continuing, received, length) = match in_progress {
            Some((received, length)) if header.fmt == 3 => (true, received, length),
            _ => (false, 0, header.length as usize),
        };
        let payload_len = (length - received).min(self.chunk_size as usize);
        if buf.len() < header.header_len + payload_len {
            return Ok(Step::NeedMore);
        }
        let starts_partial = !continuing && payload_len < length;
        // A new header while a message is partial abandons it; its reservation is released first.
        let released = match in_progress {
            Some((_, abandoned)) if !continuing => abandoned,
            _ => 0,
        };
        if starts_partial {
            let in_use = self.partial_bytes - released;
            if in_use + length > self.limits.max_partial_bytes {
                return Err(ChunkError::PartialBudgetExceeded {
                    csid,
                    length: header.length,
                    in_use,
                    max: self.limits.max_partial_bytes,
                });
            }
        }

        // Commit: from here on the chunk is consumed.
        buf.advance(header.header_len);
        self.bytes_received += (header.header_len + payload_len) as u64;
        self.partial_bytes -= released;
        if released != 0 {
            tracing::debug!(
                csid,
                fmt = header.fmt,
                "new header abandons a partial message"
            );
        }
        let stream = self.streams.entry(csid).or_insert_with(|| InStream {
            timestamp: 0,
            delta: 0,
            length: 0,
            type_id: 0,
            message_stream_id: 0,
            extended: false,
            extended_value: 0,
            partial: None,
        });
        if !continuing {
            stream.partial = None;
            match header.fmt {
                0 => {
                    stream.timestamp = header.time_field;
                    stream.delta = header.time_field;
                }
                _ => {
                    stream.timestamp = stream.timestamp.wrapping_add(header.time_field);
                    stream.delta = header.time_field;
                }
            }
            if header.fmt != 3 {
                stream.extended = header.extended;
            }
            if stream.extended {
                stream.extended_value = header.time_field;
            }
            stream.length = header.length;
            stream.type_id = header.type_id;
            stream.message_stream_id = header.message_stream_id;
        }

        let chunk = buf.split_to(payload_len);
        // `stream.partial` is `Some` exactly when this chunk continues a message: it was cleared
        // above for every other header.
        let payload = if let Some(partial) = stream.partial.as_mut() {
            partial.extend_from_slice(&chunk);
            if partial.len() < length {
                return Ok(Step::Chunk);
            }
            self.partial_bytes -= length;
            stream
                .partial
                .take()
                .map(BytesMut::freeze)
                .unwrap_or_default()
        } else if starts_partial {
            let mut partial = BytesMut::with_capacity(length);
            partial.extend_from_slice(&chunk);
            stream.partial = Some(partial);
            self.partial_bytes += length;
            return Ok(Step::Chunk);
        } else {
            // The whole message is in this chunk: hand out a slice of the read buffer.
            chunk.freeze()
        };
        Ok(Step::Message(RawMessage {
            csid,
            timestamp: stream.timestamp,
            type_id: stream.type_id,
            message_stream_id: stream.message_stream_id,
            payload,
        }))
    }
}

/// Header state of one outgoing chunk stream.
#[derive(Debug, Clone, Copy)]
struct OutStream {
    timestamp: u32,
    /// Delta a type-3 header would imply; `None` right after a type-0 header (see `encode`).
    delta: Option<u32>,
    length: u32,
    type_id: u8,
    message_stream_id: u32,
}

/// Per-connection chunk encoder with header compression (§5.3.1.2).
#[derive(Debug)]
pub struct ChunkEncoder {
    chunk_size: u32,
    streams: HashMap<u32, OutStream>,
}

impl Default for ChunkEncoder {
    fn default() -> Self {
        Self::new()
    }
}

/// Length of the basic header for `csid` (§5.3.1.1).
fn basic_header_len(csid: u32) -> usize {
    match csid {
        0..=63 => 1,
        64..=319 => 2,
        _ => 3,
    }
}

fn put_basic_header(out: &mut impl BufMut, fmt: u8, csid: u32) {
    match csid {
        0..=63 => out.put_u8(fmt << 6 | csid as u8),
        64..=319 => {
            out.put_u8(fmt << 6);
            out.put_u8((csid - 64) as u8);
        }
        _ => {
            let id = csid - 64;
            out.put_u8(fmt << 6 | 1);
            out.put_u8(id as u8);
            out.put_u8((id >> 8) as u8);
        }
    }
}

fn put_u24(out: &mut impl BufMut, value: u32) {
    out.put_uint(u64::from(value & 0xFF_FFFF), 3);
}

/// Callers pass csids in 2..=65599; anything else is a programming error, caught in debug builds
/// and clamped in release so the output stays a valid chunk stream.
fn checked_csid(csid: u32) -> u32 {
    debug_assert!((2..=MAX_CSID).contains(&csid), "csid {csid} out of range");
    csid.clamp(2, MAX_CSID)
}

/// Number of chunks a message of `len` bytes needs; a zero-length message still has one header.
fn chunk_count(len: usize, chunk_size: usize) -> usize {
    len.div_ceil(chunk_size).max(1)
}

/// Writes the payload of `msg` as chunks, the first preceded by `first_header`, the rest by a
/// type-3 basic header and, when the timestamp field was extended, the repeated extended value
/// (§5.3.1.3).
fn put_chunks(
    out: &mut BytesMut,
    csid: u32,
    payload: &[u8],
    chunk_size: usize,
    extended: Option<u32>,
) {
    let mut chunks = payload.chunks(chunk_size);
    if let Some(first) = chunks.next() {
        out.put_slice(first);
    }
    for chunk in chunks {
        put_basic_header(out, 3, csid);
        if let Some(ext) = extended {
            out.put_u32(ext);
        }
        out.put_slice(chunk);
    }
}

impl ChunkEncoder {
    /// An encoder with chunk size 128 and no header state.
    pub fn new() -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: HashMap::new(),
        }
    }

    /// Sets the outgoing chunk size. Send Set Chunk Size with the same value *before* the next
    /// message this encoder produces. Values are clamped to `1..=0xFF_FFFF`, matching how a
    /// decoder treats them.
    pub fn set_chunk_size(&mut self, size: u32) {
        self.chunk_size = size.clamp(1, MAX_EFFECTIVE_CHUNK_SIZE);
    }

    /// The outgoing chunk size in effect.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Appends `msg` to `out` as chunks, choosing the smallest header the previous message on the
    /// same csid allows: type 0 for a new chunk stream, a different message stream id or a
    /// timestamp that goes backwards (§5.3.1.2.1); type 1 when length or type change; type 2
    /// when only the delta changes; type 3 when everything repeats.
    ///
    /// Timestamps compare as serial numbers, so a step across the u32 wrap is a small forward
    /// delta.
    pub fn encode(&mut self, msg: &RawMessage, out: &mut BytesMut) {
        let csid = checked_csid(msg.csid);
        let length = msg.payload.len().min(0xFF_FFFF) as u32;
        debug_assert_eq!(
            length as usize,
            msg.payload.len(),
            "message longer than 24 bits"
        );
        let payload = &msg.payload[..length as usize];
        let next = OutStream {
            timestamp: msg.timestamp,
            delta: None,
            length,
            type_id: msg.type_id,
            message_stream_id: msg.message_stream_id,
        };
        let (fmt, field) = match self.streams.get(&csid) {
            None => (0, msg.timestamp),
            Some(prev) => {
                let delta = msg.timestamp.wrapping_sub(prev.timestamp);
                if prev.message_stream_id != msg.message_stream_id || delta >= 0x8000_0000 {
                    (0, msg.timestamp)
                } else if prev.length != length || prev.type_id != msg.type_id {
                    (1, delta)
                } else if prev.delta == Some(delta) {
                    (3, delta)
                } else {
                    // Also taken right after a type-0 header: the spec makes a following type-3
                    // chunk reuse the type-0 timestamp as its delta (§5.3.1.2.4), a corner that
                    // decoders get wrong; three bytes of type 2 avoid it.
                    (2, delta)
                }
            }
        };
        self.streams.insert(
            csid,
            OutStream {
                delta: (fmt != 0).then_some(field),
                ..next
            },
        );

        let extended = (field >= EXTENDED_MARKER).then_some(field);
        let chunk_size = self.chunk_size as usize;
        let chunks = chunk_count(payload.len(), chunk_size);
        let ext_len = if extended.is_some() { 4 } else { 0 };
        out.reserve(
            MESSAGE_HEADER_LEN[usize::from(fmt)]
                + chunks * (basic_header_len(csid) + ext_len)
                + payload.len(),
        );
        put_basic_header(out, fmt, csid);
        if fmt < 3 {
            put_u24(out, field.min(EXTENDED_MARKER));
        }
        if fmt < 2 {
            put_u24(out, length);
            out.put_u8(msg.type_id);
        }
        if fmt == 0 {
            out.put_u32_le(msg.message_stream_id);
        }
        if let Some(ext) = extended {
            out.put_u32(ext);
        }
        put_chunks(out, csid, payload, chunk_size, extended);
    }
}

/// Chunks `msg` with a type-0 first chunk and type-3 continuations (repeating the extended
/// timestamp when it is `>= 0xFF_FFFF`), independent of any peer's compression state, so one
/// encoding of a media message can be shared by every player with the same chunk size.
///
/// The result is one allocation of exactly the encoded size. `chunk_size` is clamped to
/// `1..=0xFF_FFFF`.
pub fn encode_standalone(msg: &RawMessage, chunk_size: u32) -> Bytes {
    let csid = checked_csid(msg.csid);
    let chunk_size = chunk_size.clamp(1, MAX_EFFECTIVE_CHUNK_SIZE) as usize;
    let length = msg.payload.len().min(0xFF_FFFF);
    debug_assert_eq!(length, msg.payload.len(), "message longer than 24 bits");
    let payload = &msg.payload[..length];
    let extended = (msg.timestamp >= EXTENDED_MARKER).then_some(msg.timestamp);
    let ext_len = if extended.is_some() { 4 } else { 0 };
    let capacity = MESSAGE_HEADER_LEN[0]
        + chunk_count(length, chunk_size) * (basic_header_len(csid) + ext_len)
        + length;
    let mut out = BytesMut::with_capacity(capacity);
    put_basic_header(&mut out, 0, csid);
    put_u24(&mut out, msg.timestamp.min(EXTENDED_MARKER));
    put_u24(&mut out, length as u32);
    out.put_u8(msg.type_id);
    out.put_u32_le(msg.message_stream_id);
    if let Some(ext) = extended {
        out.put_u32(ext);
    }
    put_chunks(&mut out, csid, payload, chunk_size, extended);
    debug_assert_eq!(out.len(), capacity);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn bytes(hex_str: &str) -> BytesMut {
        let clean: String = hex_str.split_whitespace().collect();
        BytesMut::from(&hex::decode(clean).expect("test vector is valid hex")[..])
    }

    fn msg(
        csid: u32,
        timestamp: u32,
        type_id: u8,
        message_stream_id: u32,
        payload: &[u8],
    ) -> RawMessage {
        RawMessage {
            csid,
            timestamp,
            type_id,
            message_stream_id,
            payload: Bytes::copy_from_slice(payload),
        }
    }

    /// Decodes everything in `buf`, applying Set Chunk Size messages the way a session does.
    fn decode_all(
        decoder: &mut ChunkDecoder,
        buf: &mut BytesMut,
    ) -> Result<Vec<RawMessage>, ChunkError> {
        let mut out = Vec::new();
        while let Some(m) = decoder.decode(buf)? {
            apply_set_chunk_size(decoder, &m)?;
            out.push(m);
        }
        Ok(out)
    }

    fn apply_set_chunk_size(decoder: &mut ChunkDecoder, m: &RawMessage) -> Result<(), ChunkError> {
        if m.type_id == 1 && m.csid == 2 && m.payload.len() == 4 {
            decoder.set_chunk_size(u32::from_be_bytes([
                m.payload[0],
                m.payload[1],
                m.payload[2],
                m.payload[3],
            ]))?;
        }
        Ok(())
    }

    fn decode_hex(hex_str: &str) -> Result<Vec<RawMessage>, ChunkError> {
        decode_all(
            &mut ChunkDecoder::new(RtmpLimits::default()),
            &mut bytes(hex_str),
        )
    }

    #[test]
    fn fmt0_chunk_decodes_to_set_chunk_size() {
        let got = decode_hex("02 000000 000004 01 00000000 00001000").unwrap();
        assert_eq!(got, vec![msg(2, 0, 1, 0, &[0, 0, 0x10, 0])]);
    }

    #[test]
    fn two_byte_basic_header_covers_csid_64_to_319() {
        let got =
            decode_hex("00 00 000010 000001 08 01000000 aa  00 ff 000020 000001 09 01000000 bb")
                .unwrap();
        assert_eq!(
            got,
            vec![msg(64, 0x10, 8, 1, &[0xaa]), msg(319, 0x20, 9, 1, &[0xbb])]
        );
    }

    #[test]
    fn three_byte_basic_header_is_little_endian_plus_64() {
        let got = decode_hex(
            "01 00 01 000000 000001 08 01000000 aa  01 ff ff 000000 000001 08 02000000 bb",
        )
        .unwrap();
        assert_eq!(
            got,
            vec![msg(320, 0, 8, 1, &[0xaa]), msg(65599, 0, 8, 2, &[0xbb])]
        );
    }

    #[test]
    fn encoder_uses_each_basic_header_form() {
        for (csid, header) in [
            (63, "3f"),
            (64, "0000"),
            (319, "00ff"),
            (320, "010001"),
            (65599, "01ffff"),
        ] {
            let wire = encode_standalone(&msg(csid, 0, 8, 1, &[]), 128);
            assert_eq!(
                hex::encode(&wire),
                format!("{header}0000000000000801000000")
            );
        }
    }

    fn extended_vector(repeat_on_type3: bool) -> String {
        let repeat = if repeat_on_type3 { "01000000" } else { "" };
        format!(
            "03 ffffff 0000c8 09 01000000 01000000 {} c3 {repeat} {}",
            "11".repeat(128),
            "11".repeat(72)
        )
    }

    #[test]
    fn extended_timestamp_repeated_on_type3_continuation() {
        let got = decode_hex(&extended_vector(true)).unwrap();
        assert_eq!(got, vec![msg(3, 0x0100_0000, 9, 1, &[0x11; 200])]);
    }

    #[test]
    fn extended_timestamp_missing_on_type3_continuation_like_old_obs() {
        let got = decode_hex(&extended_vector(false)).unwrap();
        assert_eq!(got, vec![msg(3, 0x0100_0000, 9, 1, &[0x11; 200])]);
    }

    #[test]
    fn type3_after_type0_uses_the_type0_timestamp_as_delta() {
        let got = decode_hex("04 000064 000001 08 01000000 aa  c4 bb  c4 cc").unwrap();
        let ts: Vec<u32> = got.iter().map(|m| m.timestamp).collect();
        assert_eq!(ts, vec![100, 200, 300]);
    }

    #[test]
    fn extended_delta_on_type2_and_following_type3() {
        let got =
            decode_hex("04 fffff0 000001 08 01000000 aa  84 ffffff 01000000 bb  c4 01000000 cc")
                .unwrap();
        let ts: Vec<u32> = got.iter().map(|m| m.timestamp).collect();
        assert_eq!(ts, vec![0xFF_FFF0, 0x01FF_FFF0, 0x02FF_FFF0]);
        assert_eq!(got[2].payload, Bytes::from_static(&[0xcc]));
    }

    #[test]
    fn type1_delta_wraps_around_u32() {
        let got = decode_hex("04 ffffff 000001 08 01000000 ffffff00 aa  44 000200 000002 09 bbbb")
            .unwrap();
        assert_eq!(got[1], msg(4, 0x100, 9, 1, &[0xbb, 0xbb]));
    }

    #[test]
    fn abort_discards_the_partial_message() {
        let mut decoder = ChunkDecoder::new(RtmpLimits {
            max_partial_bytes: 200,
            ..RtmpLimits::default()
        });
        let mut buf = bytes(&format!(
            "03 000000 0000c8 09 01000000 {}",
            "11".repeat(128)
        ));
        assert_eq!(decoder.decode(&mut buf).unwrap(), None);
        assert!(buf.is_empty());
        decoder.abort(3);
        // The budget is free again: a second 200-byte message can be reassembled.
        let mut buf = bytes(&format!("c3 {}  c3 {}", "22".repeat(128), "22".repeat(72)));
        assert_eq!(
            decode_all(&mut decoder, &mut buf).unwrap(),
            vec![msg(3, 0, 9, 1, &[0x22; 200])]
        );
    }

    #[test]
    fn chunk_size_change_applies_to_the_next_chunk() {
        let stream = format!(
            "02 000000 000004 01 00000000 000000c8  03 000000 0000c8 09 01000000 {}",
            "33".repeat(200)
        );
        let got = decode_hex(&stream).unwrap();
        assert_eq!(got[1], msg(3, 0, 9, 1, &[0x33; 200]));
    }

    #[test]
    fn incomplete_chunk_stays_in_the_buffer() {
        let full = bytes(&format!(
            "03 000000 0000c8 09 01000000 {}",
            "11".repeat(128)
        ));
        let mut decoder = ChunkDecoder::new(RtmpLimits::default());
        for cut in 0..full.len() {
            let mut buf = BytesMut::from(&full[..cut]);
            assert_eq!(decoder.decode(&mut buf).unwrap(), None);
            assert_eq!(&buf[..], &full[..cut]);
        }
        assert_eq!(decoder.bytes_received(), 0);
    }

    #[test]
    fn single_chunk_payload_is_a_slice_of_the_read_buffer() {
        let mut buf = bytes("04 000000 000003 08 01000000 aabbcc  04 000000 000001 08 01000000 dd");
        let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
        let mut decoder = ChunkDecoder::new(RtmpLimits::default());
        let first = decoder.decode(&mut buf).unwrap().unwrap();
        assert!(range.contains(&(first.payload.as_ptr() as usize)));
        assert_eq!(decoder.bytes_received(), 15);
    }

    #[test]
    fn continuation_without_type0_is_no_previous_header() {
        assert_eq!(
            decode_hex("43 000000 000001 08 aa"),
            Err(ChunkError::NoPreviousHeader { csid: 3, fmt: 1 })
        );
        assert_eq!(
            decode_hex("c5"),
            Err(ChunkError::NoPreviousHeader { csid: 5, fmt: 3 })
        );
    }

    #[test]
    fn limits_give_typed_errors() {
        let limits = RtmpLimits {
            max_message_len: 100,
            max_chunk_streams: 2,
            max_partial_bytes: 300,
            max_chunk_size: 1000,
        };
        let run =
            |hex_str: &str| decode_all(&mut ChunkDecoder::new(limits.clone()), &mut bytes(hex_str));
        assert_eq!(
            run("03 000000 000065 09 01000000"),
            Err(ChunkError::MessageTooLong {
                csid: 3,
                length: 101,
                max: 100
            })
        );
        assert_eq!(
            run("03 000000 000000 09 01000000  04 000000 000000 09 01000000  05"),
            Err(ChunkError::TooManyChunkStreams { csid: 5, max: 2 })
        );
        let mut decoder = ChunkDecoder::new(RtmpLimits {
            max_message_len: 1000,
            ..limits.clone()
        });
        let partial =
            |csid: u8| format!("{csid:02x} 000000 0000c8 09 01000000 {}", "11".repeat(128));
        assert_eq!(
            decode_all(
                &mut decoder,
                &mut bytes(&format!("{} {}", partial(3), partial(4)))
            ),
            Err(ChunkError::PartialBudgetExceeded {
                csid: 4,
                length: 200,
                in_use: 200,
                max: 300
            })
        );
        let mut decoder = ChunkDecoder::new(limits);
        assert_eq!(
            decoder.set_chunk_size(0),
            Err(ChunkError::InvalidChunkSize { size: 0 })
        );
        assert_eq!(
            decoder.set_chunk_size(0x8000_0000),
            Err(ChunkError::InvalidChunkSize { size: 0x8000_0000 })
        );
        assert_eq!(
            decoder.set_chunk_size(1001),
            Err(ChunkError::ChunkSizeTooLarge {
                size: 1001,
                max: 1000
            })
        );
        let mut decoder = ChunkDecoder::new(RtmpLimits::default());
        decoder.set_chunk_size(0x7FFF_FFFF).unwrap();
        assert_eq!(decoder.chunk_size(), 0xFF_FFFF);
    }

    #[test]
    fn encoder_compresses_headers() {
        let mut encoder = ChunkEncoder::new();
        let mut out = BytesMut::new();
        let mut step = |m: RawMessage| {
            out.clear();
            encoder.encode(&m, &mut out);
            hex::encode(&out)
        };
        let expect = |spaced: &str| spaced.replace(' ', "");
        assert_eq!(
            step(msg(4, 100, 8, 1, &[0xaa])),
            expect("04 000064 000001 08 01000000 aa")
        );
        // After type 0, a repeated delta still uses type 2 (see `encode`).
        assert_eq!(step(msg(4, 120, 8, 1, &[0xbb])), expect("84 000014 bb"));
        assert_eq!(step(msg(4, 140, 8, 1, &[0xcc])), expect("c4 cc"));
        assert_eq!(step(msg(4, 150, 8, 1, &[0xdd])), expect("84 00000a dd"));
        assert_eq!(
            step(msg(4, 160, 9, 1, &[0xee, 0xee])),
            expect("44 00000a 000002 09 eeee")
        );
        // Backwards in time, then a new message stream id: type 0 both times.
        assert_eq!(
            step(msg(4, 150, 9, 1, &[0xee, 0xee])),
            expect("04 000096 000002 09 01000000 eeee")
        );
        assert_eq!(
            step(msg(4, 150, 9, 2, &[0xee, 0xee])),
            expect("04 000096 000002 09 02000000 eeee")
        );
        // Across the u32 wrap is forward: a small delta.
        assert_eq!(
            step(msg(5, 0xFFFF_FFF0, 8, 1, &[])),
            expect("05 ffffff 000000 08 01000000 fffffff0")
        );
        assert_eq!(step(msg(5, 0x10, 8, 1, &[])), expect("85 000020"));
    }

    #[test]
    fn encoder_repeats_extended_timestamp_on_continuations() {
        let mut encoder = ChunkEncoder::new();
        let mut out = BytesMut::new();
        encoder.encode(&msg(3, 0x0100_0000, 9, 1, &[0x11; 200]), &mut out);
        assert_eq!(out, bytes(&extended_vector(true)));
        assert_eq!(
            encode_standalone(&msg(3, 0x0100_0000, 9, 1, &[0x11; 200]), 128),
            bytes(&extended_vector(true))
        );
    }

    #[test]
    fn encode_standalone_allocates_exactly() {
        let wire = encode_standalone(&msg(6, 0x0100_0000, 9, 1, &[7; 1000]), 128);
        // 12 B type-0 header + 4 B extended + 7 continuations of 1 + 4 bytes.
        assert_eq!(wire.len(), 12 + 4 + 7 * 5 + 1000);
        let mut buf = BytesMut::from(&wire[..]);
        let got = decode_all(&mut ChunkDecoder::new(RtmpLimits::default()), &mut buf).unwrap();
        assert_eq!(got, vec![msg(6, 0x0100_0000, 9, 1, &[7; 1000])]);
    }

    fn arb_csid() -> impl Strategy<Value = u32> {
        prop_oneof![
            2u32..64,
            64u32..320,
            320u32..=MAX_CSID,
            Just(63u32),
            Just(64u32),
            Just(319u32),
            Just(320u32),
            Just(MAX_CSID),
        ]
    }

    fn arb_chunk_size() -> impl Strategy<Value = u32> {
        prop_oneof![
            Just(1u32),
            Just(128),
            Just(4096),
            Just(65536),
            1u32..400,
            Just(0x7FFF_FFFF)
        ]
    }

    prop_compose! {
        /// Message sequences over a few csids with timestamps that cross 0xFFFFFF and the u32 wrap,
        /// step backwards and repeat deltas.
        fn arb_messages()(
            csids in prop::collection::vec(arb_csid(), 1..5),
            start in prop_oneof![Just(0u32), Just(0xFF_FFF0), Just(0xFFFF_FF00), any::<u32>()],
            items in prop::collection::vec(
                (
                    any::<prop::sample::Index>(),
                    0u32..3,
                    prop_oneof![4 => 0u32..50, 1 => Just(0xFF_FFFF), 1 => 0xFF_FFFFu32..0x110_0000, 1 => any::<u32>()],
                    prop_oneof![Just(8u8), Just(9u8), any::<u8>()],
                    prop::collection::vec(any::<u8>(), 0..600),
                ),
                1..16,
            ),
        ) -> Vec<RawMessage> {
            let mut ts = start;
            items
                .into_iter()
                .map(|(csid, message_stream_id, step, type_id, payload)| {
                    ts = ts.wrapping_add(step);
                    RawMessage {
                        csid: csids[csid.index(csids.len())],
                        timestamp: ts,
                        type_id,
                        message_stream_id,
                        payload: payload.into(),
                    }
                })
                .collect()
        }
    }

    fn encode_all(messages: &[RawMessage], chunk_size: u32) -> BytesMut {
        let mut encoder = ChunkEncoder::new();
        encoder.set_chunk_size(chunk_size);
        let mut out = BytesMut::new();
        for m in messages {
            encoder.encode(m, &mut out);
        }
        out
    }

    fn decoder_with_chunk_size(chunk_size: u32) -> ChunkDecoder {
        let mut decoder = ChunkDecoder::new(RtmpLimits::default());
        decoder
            .set_chunk_size(chunk_size)
            .expect("strategy yields valid sizes");
        decoder
    }

    proptest! {
        #[test]
        fn encoder_then_decoder_is_identity(messages in arb_messages(), chunk_size in arb_chunk_size()) {
            let mut wire = encode_all(&messages, chunk_size);
            let total = wire.len() as u64;
            let mut decoder = decoder_with_chunk_size(chunk_size);
            prop_assert_eq!(decode_all(&mut decoder, &mut wire).unwrap(), messages);
            prop_assert!(wire.is_empty());
            prop_assert_eq!(decoder.bytes_received(), total);
        }

        #[test]
        fn any_split_decodes_the_same_messages(
            messages in arb_messages(),
            chunk_size in arb_chunk_size(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..20),
        ) {
            let wire = encode_all(&messages, chunk_size);
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(wire.len() + 1)).collect();
            cuts.push(wire.len());
            cuts.sort_unstable();
            let mut decoder = decoder_with_chunk_size(chunk_size);
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            let mut from = 0;
            for cut in cuts {
                buf.extend_from_slice(&wire[from..cut]);
                from = cut;
                got.extend(decode_all(&mut decoder, &mut buf).unwrap());
            }
            prop_assert_eq!(got, messages);
        }

        #[test]
        fn encode_standalone_output_decodes(messages in arb_messages(), chunk_size in arb_chunk_size()) {
            let mut wire = BytesMut::new();
            for m in &messages {
                let one = encode_standalone(m, chunk_size);
                wire.extend_from_slice(&one);
            }
            let mut decoder = decoder_with_chunk_size(chunk_size);
            prop_assert_eq!(decode_all(&mut decoder, &mut wire).unwrap(), messages);
        }

        /// Old librtmp (OBS before PR #10097) omitted the extended timestamp on continuation
        /// chunks; the decoder must read both forms.
        #[test]
        fn continuations_without_repeated_extended_timestamp_decode(
            timestamp in 0xFF_FFFFu32..,
            payload in prop::collection::vec(any::<u8>(), 0..800),
            chunk_size in 1u32..300,
        ) {
            let m = RawMessage { csid: 6, timestamp, type_id: 9, message_stream_id: 1, payload: payload.into() };
            let ext = timestamp.to_be_bytes();
            // The heuristic cannot tell a payload chunk starting with the timestamp from the field.
            prop_assume!(m.payload.chunks(chunk_size as usize).skip(1).all(|c| c.len() < 4 || c[..4] != ext));
            let with = encode_standalone(&m, chunk_size);
            let mut without = BytesMut::from(&with[..16]);
            let mut chunks = m.payload.chunks(chunk_size as usize);
            if let Some(first) = chunks.next() {
                without.put_slice(first);
            }
            for c in chunks {
                without.put_u8(0xc6);
                without.put_slice(c);
            }
            // A trailing chunk shorter than 4 bytes needs the next bytes to decide; a following
            // message supplies them, as on a live connection.
            let next = RawMessage { csid: 7, timestamp: 0, type_id: 8, message_stream_id: 1, payload: Bytes::from_static(&[1, 2, 3, 4]) };
            without.extend_from_slice(&encode_standalone(&next, chunk_size));
            let mut decoder = decoder_with_chunk_size(chunk_size);
            prop_assert_eq!(decode_all(&mut decoder, &mut without).unwrap(), vec![m, next]);
        }

        #[test]
        fn message_length_limit_is_enforced(max in 0u32..400, len in 0usize..800, chunk_size in arb_chunk_size()) {
            let m = RawMessage { csid: 9, timestamp: 0, type_id: 9, message_stream_id: 1, payload: vec![0; len].into() };
            let mut decoder = ChunkDecoder::new(RtmpLimits { max_message_len: max, ..RtmpLimits::default() });
            decoder.set_chunk_size(chunk_size).unwrap();
            let got = decode_all(&mut decoder, &mut BytesMut::from(&encode_standalone(&m, chunk_size)[..]));
            if len as u32 <= max {
                prop_assert_eq!(got.unwrap(), vec![m]);
            } else {
                prop_assert_eq!(got, Err(ChunkError::MessageTooLong { csid: 9, length: len as u32, max }));
            }
        }

        #[test]
        fn chunk_stream_count_limit_is_enforced(max in 1usize..10, count in 1usize..20) {
            let messages: Vec<RawMessage> =
                (0..count as u32).map(|i| RawMessage { csid: 3 + i * 1000, timestamp: 0, type_id: 8, message_stream_id: 1, payload: Bytes::new() }).collect();
            let mut decoder = ChunkDecoder::new(RtmpLimits { max_chunk_streams: max, ..RtmpLimits::default() });
            let got = decode_all(&mut decoder, &mut encode_all(&messages, 128));
            if count <= max {
                prop_assert_eq!(got.unwrap(), messages);
            } else {
                prop_assert_eq!(got, Err(ChunkError::TooManyChunkStreams { csid: 3 + max as u32 * 1000, max }));
            }
        }

        #[test]
        fn partial_budget_limit_is_enforced(budget in 0usize..1000, a in 129usize..600, b in 129usize..600) {
            // Two messages interleaved chunk by chunk are both partial at once.
            let first = encode_standalone(&RawMessage { csid: 3, timestamp: 0, type_id: 9, message_stream_id: 1, payload: vec![1; a].into() }, 128);
            let second = encode_standalone(&RawMessage { csid: 4, timestamp: 0, type_id: 9, message_stream_id: 1, payload: vec![2; b].into() }, 128);
            let mut wire = BytesMut::new();
            wire.extend_from_slice(&first[..12 + 128]);
            wire.extend_from_slice(&second[..12 + 128]);
            wire.extend_from_slice(&first[12 + 128..]);
            wire.extend_from_slice(&second[12 + 128..]);
            let mut decoder = ChunkDecoder::new(RtmpLimits { max_partial_bytes: budget, ..RtmpLimits::default() });
            let got = decode_all(&mut decoder, &mut wire);
            if a > budget {
                prop_assert_eq!(got, Err(ChunkError::PartialBudgetExceeded { csid: 3, length: a as u32, in_use: 0, max: budget }));
            } else if a + b > budget {
                prop_assert_eq!(got, Err(ChunkError::PartialBudgetExceeded { csid: 4, length: b as u32, in_use: a, max: budget }));
            } else {
                prop_assert_eq!(got.unwrap().len(), 2);
            }
        }
    }
}
