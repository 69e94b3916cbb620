//! Fuzz entry point for the sessions (`fuzz/fuzz_targets/rtmp_session.rs`).

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use onair_amf::Value;
use onair_media::MediaKind;

use crate::chunk::{ChunkDecoder, ChunkEncoder, RawMessage};
use crate::handshake::HANDSHAKE_SIZE;
use crate::limits::RtmpLimits;
use crate::message::Message;
use crate::session::{
    ClientConfig, ClientEvent, ClientOutput, ClientSession, Reject, ServerConfig, ServerEvent,
    ServerOutput, ServerSession,
};

/// Small budgets, so the fuzzer reaches the limit errors instead of allocating megabytes.
const LIMITS: RtmpLimits = RtmpLimits {
    max_message_len: 0xFF_FFFF,
    max_chunk_size: 0x7FFF_FFFF,
    max_chunk_streams: 16,
    max_partial_bytes: 1 << 20,
};
/// The longest chunk header: 3-byte basic header, 11-byte type-0 header, extended timestamp.
const MAX_CHUNK_HEADER: usize = 3 + 11 + 4;
/// C0 + C1 + C2 (or S0 + S1 + S2).
const HANDSHAKE_BYTES: usize = 1 + 2 * HANDSHAKE_SIZE;

/// Feeds `data[1..]` to three sessions and asserts the invariants that hold for any peer:
///
/// 1. a [`ServerSession`] after a valid handshake and `connect` (so the bytes reach the command
///    and media layers), with publish and play requests accepted or rejected as they come;
/// 2. a [`ServerSession`] from its first byte (the handshake itself);
/// 3. a [`ClientSession`] after a valid server handshake, publishing or playing.
///
/// `data[0]` picks how the bytes are split and how far fake time moves from `base` between
/// pieces, so the timers run too. `base` is any instant the caller has: the fuzz target reads
/// the clock once per input, this crate never does. For every session: no panic; every
/// `Transmit` is non-empty and, together with the media the driver would interleave, decodes
/// as a valid chunk stream of valid messages; events respect the limits (`Media` no longer
/// than the message limit, `Metadata` starting with `onMetaData`); after an `Err` the session
/// is never fed again, answers `Closed` if poked, and arms no timer; the bytes it holds stay
/// within one chunk.
pub fn session(base: Instant, data: &[u8]) {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let piece = match selector & 3 {
        0 => usize::MAX,
        1 => 1,
        2 => 7,
        _ => 64,
    };
    let step = Duration::from_millis(u64::from(selector >> 2) * 331);

    let mut connected = ServerHarness::new(base);
    connected.feed(&client_prefix());
    assert!(!connected.failed, "the valid prefix must be accepted");
    connected.run(input, piece, step);

    let mut raw = ServerHarness::new(base);
    raw.run(input, piece, step);

    let mut client = ClientHarness::new(base, selector & 4 != 0);
    client.feed(&server_handshake());
    assert!(!client.failed, "a valid server handshake must be accepted");
    client.run(input, piece);
}

/// C0+C1+C2 of a simple handshake, Set Chunk Size, `connect` and `createStream`.
fn client_prefix() -> Vec<u8> {
    let mut out = vec![3u8];
    out.resize(HANDSHAKE_BYTES, 0);
    let mut encoder = ChunkEncoder::new();
    let mut chunks = BytesMut::new();
    let mut send = |encoder: &mut ChunkEncoder, csid, type_id, payload: Bytes| {
        let raw = RawMessage {
            csid,
            timestamp: 0,
            type_id,
            message_stream_id: 0,
            payload,
        };
        encoder.encode(&raw, &mut chunks);
    };
    send(&mut encoder, 2, 1, Bytes::from_static(&[0, 0, 0x10, 0]));
    encoder.set_chunk_size(4096);
    let connect = onair_amf::encode_all(&[
        "connect".into(),
        1.0.into(),
        Value::object([
            ("app", Value::from("live")),
            ("tcUrl", "rtmp://127.0.0.1/live".into()),
        ]),
    ]);
    send(&mut encoder, 3, 20, connect);
    let create = onair_amf::encode_all(&["createStream".into(), 2.0.into(), Value::Null]);
    send(&mut encoder, 3, 20, create);
    out.extend_from_slice(&chunks);
    out
}

/// S0+S1+S2 of a simple handshake.
fn server_handshake() -> Vec<u8> {
    let mut out = vec![3u8];
    out.resize(HANDSHAKE_BYTES, 0);
    out
}

/// Decodes what a session writes, the way its peer would, asserting it is valid.
struct Wire {
    skip: usize,
    decoder: ChunkDecoder,
    buf: BytesMut,
}

impl Wire {
    fn new(skip: usize) -> Self {
        Wire {
            skip,
            decoder: ChunkDecoder::new(RtmpLimits::default()),
            buf: BytesMut::new(),
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        assert!(!bytes.is_empty(), "empty transmit");
        let n = self.skip.min(bytes.len());
        self.skip -= n;
        self.buf.extend_from_slice(&bytes[n..]);
        while let Some(raw) = self
            .decoder
            .decode(&mut self.buf)
            .expect("session output is a valid chunk stream")
        {
            let message = Message::decode(&raw).expect("session output decodes");
            if let Message::SetChunkSize(size) = message {
                self.decoder
                    .set_chunk_size(size)
                    .expect("session announces a valid chunk size");
            }
        }
    }
}

struct ServerHarness {
    now: Instant,
    server: ServerSession,
    wire: Wire,
    fed: usize,
    failed: bool,
    decisions: u64,
}

impl ServerHarness {
    fn new(now: Instant) -> Self {
        let config = ServerConfig {
            limits: LIMITS,
            ..ServerConfig::default()
        };
        ServerHarness {
            now,
            server: ServerSession::new(config, now, [0x42; 1528]),
            wire: Wire::new(HANDSHAKE_BYTES),
            fed: 0,
            failed: false,
            decisions: 0,
        }
    }

    fn run(&mut self, input: &[u8], piece: usize, step: Duration) {
        for bytes in input.chunks(piece) {
            if self.failed {
                return;
            }
            self.now += step;
            self.timers();
            if !self.failed {
                self.feed(bytes);
            }
        }
    }

    fn timers(&mut self) {
        while let Some(at) = self.server.poll_timeout().filter(|&at| at <= self.now) {
            let result = self.server.handle_timeout(at);
            self.drain();
            if result.is_err() {
                self.fail();
                return;
            }
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        assert!(!self.failed, "fed after an error");
        self.fed += bytes.len();
        let result = self.server.handle_input(self.now, bytes);
        self.drain();
        if result.is_err() {
            self.fail();
            return;
        }
        let held = self.server.buffered_len();
        assert!(held <= self.fed, "holds {held} bytes of {} fed", self.fed);
        assert!(
            held <= MAX_CHUNK_HEADER + LIMITS.max_message_len as usize,
            "holds {held} bytes: more than one chunk"
        );
    }

    fn fail(&mut self) {
        self.failed = true;
        assert!(
            matches!(
                self.server.handle_input(self.now, &[0]),
                Err(crate::session::SessionError::Closed)
            ),
            "a failed session must refuse input"
        );
        assert_eq!(
            self.server.poll_timeout(),
            None,
            "a failed session arms no timer"
        );
        assert!(self.server.poll_output().is_none());
    }

    fn drain(&mut self) {
        while let Some(out) = self.server.poll_output() {
            match out {
                ServerOutput::Transmit(bytes) => self.wire.feed(&bytes),
                ServerOutput::Event(event) => self.on_event(event),
            }
        }
    }

    fn on_event(&mut self, event: ServerEvent) {
        self.decisions += 1;
        match event {
            // A request may already be gone when its event is read (publish and deleteStream in
            // one read), so the answers' return values are not asserted.
            ServerEvent::PublishRequested { request, .. } => {
                if self.decisions.is_multiple_of(3) {
                    self.server
                        .reject_publish(request, Reject::BadName("fuzz".into()));
                } else {
                    self.server.accept_publish(request);
                }
            }
            ServerEvent::PlayRequested {
                request, stream, ..
            } => {
                self.server.accept_play(request);
                // The driver interleaves media chunked outside the session's encoder; the
                // peer must still decode everything.
                let media = self.server.encode_media(
                    stream,
                    MediaKind::Video,
                    0xFF_FFFF,
                    Bytes::from_static(&[0x17; 300]),
                );
                self.wire.feed(&media);
                self.server.notify_unpublished(stream);
            }
            ServerEvent::Media { payload, .. } => {
                assert!(payload.len() <= LIMITS.max_message_len as usize);
            }
            ServerEvent::Metadata { payload, .. } => {
                let first = onair_amf::Decoder::new(&payload).next_value();
                assert!(
                    matches!(first, Ok(Some(Value::String(ref name))) if name == "onMetaData"),
                    "metadata must start with onMetaData: {first:?}"
                );
            }
            _ => {}
        }
    }
}

struct ClientHarness {
    now: Instant,
    client: ClientSession,
    wire: Wire,
    failed: bool,
}

impl ClientHarness {
    fn new(now: Instant, publish: bool) -> Self {
        let config = ClientConfig {
            limits: LIMITS,
            digest_handshake: false,
            ..ClientConfig::default()
        };
        let mut client = ClientSession::new(config, now, [0x24; 1528]);
        if publish {
            client.publish("key");
        } else {
            client.play("chan");
        }
        let mut harness = ClientHarness {
            now,
            client,
            wire: Wire::new(HANDSHAKE_BYTES),
            failed: false,
        };
        harness.drain();
        harness
    }

    fn run(&mut self, input: &[u8], piece: usize) {
        for bytes in input.chunks(piece) {
            if self.failed {
                return;
            }
            self.feed(bytes);
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        assert!(!self.failed, "fed after an error");
        let result = self.client.handle_input(self.now, bytes);
        self.drain();
        if result.is_err() {
            self.failed = true;
            assert!(self.client.handle_input(self.now, &[0]).is_err());
        }
    }

    fn drain(&mut self) {
        while let Some(out) = self.client.poll_output() {
            match out {
                ClientOutput::Transmit(bytes) => self.wire.feed(&bytes),
                ClientOutput::Event(ClientEvent::PublishStarted) => {
                    self.client
                        .send_media(MediaKind::Audio, 0, Bytes::from_static(&[0xAF, 1]))
                        .expect("publishing after PublishStarted");
                }
                ClientOutput::Event(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(data: &[u8]) {
        super::session(Instant::now(), data);
    }

    /// A deterministic generator for test inputs (xorshift64).
    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn encode(messages: &[(u32, u32, u32, u8, Bytes)]) -> Vec<u8> {
        let mut encoder = ChunkEncoder::new();
        encoder.set_chunk_size(4096);
        let mut out = BytesMut::new();
        for (csid, stream, timestamp, type_id, payload) in messages {
            let raw = RawMessage {
                csid: *csid,
                timestamp: *timestamp,
                type_id: *type_id,
                message_stream_id: *stream,
                payload: payload.clone(),
            };
            encoder.encode(&raw, &mut out);
        }
        out.to_vec()
    }

    /// A plausible continuation of the prefix: publish, metadata, media, play on a second
    /// stream, pause, an unknown command and a ping.
    fn publish_and_play() -> Vec<u8> {
        let amf = onair_amf::encode_all;
        encode(&[
            (
                8,
                1,
                0,
                20,
                amf(&[
                    "publish".into(),
                    0.0.into(),
                    Value::Null,
                    "k".into(),
                    "live".into(),
                ]),
            ),
            (
                5,
                1,
                0,
                18,
                amf(&[
                    "@setDataFrame".into(),
                    "onMetaData".into(),
                    Value::EcmaArray(vec![]),
                ]),
            ),
            (6, 1, 0, 9, Bytes::from(vec![0x17; 5000])),
            (4, 1, 0xFF_FFFF, 8, Bytes::from_static(&[0xAF, 1, 2])),
            (
                3,
                0,
                0,
                20,
                amf(&["createStream".into(), 3.0.into(), Value::Null]),
            ),
            (
                8,
                2,
                0,
                20,
                amf(&["play".into(), 0.0.into(), Value::Null, "c".into()]),
            ),
            (
                8,
                2,
                0,
                20,
                amf(&[
                    "pause".into(),
                    0.0.into(),
                    Value::Null,
                    true.into(),
                    5.0.into(),
                ]),
            ),
            (
                3,
                0,
                0,
                20,
                amf(&["whatever".into(), 9.0.into(), Value::Null]),
            ),
            (2, 0, 0, 4, Bytes::from_static(&[0, 6, 0, 0, 0, 1])),
            (
                8,
                1,
                0,
                20,
                amf(&["deleteStream".into(), 0.0.into(), Value::Null, 1.0.into()]),
            ),
        ])
    }

    #[test]
    fn runs_on_structured_and_random_inputs() {
        for selector in [0u8, 1, 2, 3, 0xFC, 0xFF] {
            let mut data = vec![selector];
            data.extend(publish_and_play());
            session(&data);
        }
        session(&[]);
        session(&[0]);
        for seed in 0..64u64 {
            let data = noise(seed, (seed as usize * 97) % 3000);
            session(&data);
        }
    }

    #[test]
    fn prefix_then_garbage_fails_cleanly() {
        // Valid messages followed by a type-3 chunk on an unknown csid: the session fails once
        // and the harness stops feeding it.
        let mut data = vec![1];
        data.extend(publish_and_play());
        data.extend([0xFF, 0xFF, 0xFF, 0xFF]);
        session(&data);
    }
}
