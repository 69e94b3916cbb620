//! The committed seed corpus (`fuzz/corpus/rtmp_*`) through the fuzz harnesses, so the
//! harnesses run in every `cargo test`, with or without the nightly toolchain cargo-fuzz
//! needs; and the seeds generated here, which must be in that corpus as generated. After
//! changing a generator: `ONAIR_WRITE_CORPUS=1 cargo test -p onair-rtmp --test fuzz_corpus`.

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use onair_amf::{Value, encode_all};
use onair_media::MediaKind;
use onair_rtmp::chunk::{ChunkDecoder, ChunkEncoder, RawMessage, encode_standalone};
use onair_rtmp::fuzzing::{chunk, handshake, session};
use onair_rtmp::handshake::{ClientHandshake, ClientHandshakeKind, RANDOM_SIZE, ServerHandshake};
use onair_rtmp::message::Message;
use onair_rtmp::{
    ClientConfig, ClientEvent, ClientOutput, ClientSession, RtmpLimits, ServerConfig, ServerEvent,
    ServerOutput, ServerSession,
};

#[path = "../../../fuzz/seed_corpus.rs"]
mod seed_corpus;
use seed_corpus::{check_seeds, run_corpus};

/// C0+C1+C2 (or S0+S1+S2).
const HANDSHAKE_BYTES: usize = 1 + 2 * 1536;

#[test]
fn rtmp_chunk_corpus_keeps_the_invariants() {
    run_corpus("rtmp_chunk", chunk::chunk);
}

#[test]
fn rtmp_handshake_corpus_keeps_the_invariants() {
    run_corpus("rtmp_handshake", handshake::handshake);
}

#[test]
fn rtmp_session_corpus_keeps_the_invariants() {
    let base = Instant::now();
    run_corpus("rtmp_session", |data| session::session(base, data));
}

#[test]
fn rtmp_chunk_corpus_holds_the_generated_seeds() {
    check_seeds("rtmp_chunk", chunk_seeds(), chunk::chunk);
}

#[test]
fn rtmp_handshake_corpus_holds_the_generated_seeds() {
    check_seeds("rtmp_handshake", handshake_seeds(), handshake::handshake);
}

#[test]
fn rtmp_session_corpus_holds_the_generated_seeds() {
    let base = Instant::now();
    check_seeds("rtmp_session", session_seeds(), |data| {
        session::session(base, data)
    });
}

// ---- what the seeds are made of ----

const TYPE_SET_CHUNK_SIZE: u8 = 1;
const TYPE_ABORT: u8 = 2;
const TYPE_ACK: u8 = 3;
const TYPE_USER_CONTROL: u8 = 4;
const TYPE_WINDOW_ACK_SIZE: u8 = 5;
const TYPE_SET_PEER_BANDWIDTH: u8 = 6;
const TYPE_AUDIO: u8 = 8;
const TYPE_VIDEO: u8 = 9;
const TYPE_DATA_AMF3: u8 = 15;
const TYPE_COMMAND_AMF3: u8 = 17;
const TYPE_DATA: u8 = 18;
const TYPE_SHARED_OBJECT: u8 = 19;
const TYPE_COMMAND: u8 = 20;
const TYPE_AGGREGATE: u8 = 22;

/// An AVC sequence header: FLV video tag header, then an avcC with one SPS and one PPS.
const AVC_CONFIG: &[u8] = &[
    0x17, 0, 0, 0, 0, 0x01, 0x64, 0x00, 0x1F, 0xFF, 0xE1, 0x00, 0x04, 0x67, 0x64, 0x00, 0x1F, 0x01,
    0x00, 0x04, 0x68, 0xEB, 0xE3, 0xCB,
];
/// An AAC-LC 48 kHz stereo sequence header.
const AAC_CONFIG: &[u8] = &[0xAF, 0x00, 0x11, 0x90];

fn raw(csid: u32, stream: u32, timestamp: u32, type_id: u8, payload: Bytes) -> RawMessage {
    RawMessage {
        csid,
        timestamp,
        type_id,
        message_stream_id: stream,
        payload,
    }
}

fn command(stream: u32, values: &[Value]) -> RawMessage {
    let csid = if stream == 0 { 3 } else { 8 };
    raw(csid, stream, 0, TYPE_COMMAND, encode_all(values))
}

fn control(type_id: u8, payload: &[u8]) -> RawMessage {
    raw(2, 0, 0, type_id, Bytes::copy_from_slice(payload))
}

/// A coded AVC frame of `len` bytes: keyframe or inter frame, one NAL unit.
fn avc_frame(key: bool, len: usize) -> Bytes {
    let nal_len = len - 9;
    let mut body = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0x21];
    body.extend_from_slice(&(nal_len as u32).to_be_bytes());
    body.push(if key { 0x65 } else { 0x41 });
    body.extend((1..nal_len).map(|i| (i * 31 % 251) as u8));
    body.into()
}

fn aac_frame(len: usize) -> Bytes {
    let mut body = vec![0xAF, 0x01];
    body.extend((2..len).map(|i| (i * 17 % 253) as u8));
    body.into()
}

fn metadata(wrapped: bool) -> Bytes {
    let mut values = vec![
        Value::from("onMetaData"),
        Value::EcmaArray(vec![
            ("duration".into(), 0.0.into()),
            ("width".into(), 1280.0.into()),
            ("height".into(), 720.0.into()),
            ("framerate".into(), 30.0.into()),
            ("videocodecid".into(), 7.0.into()),
            ("audiocodecid".into(), 10.0.into()),
            ("audiosamplerate".into(), 48000.0.into()),
            ("stereo".into(), true.into()),
            ("encoder".into(), "onair corpus".into()),
        ]),
    ];
    if wrapped {
        values.insert(0, Value::from("@setDataFrame"));
    }
    encode_all(&values)
}

/// A chunk stream as one sender writes it: one encoder (so headers compress across
/// messages), and Set Chunk Size announced before the encoder switches.
struct Wire {
    encoder: ChunkEncoder,
    out: BytesMut,
}

impl Wire {
    fn new(chunk_size: u32) -> Self {
        let mut encoder = ChunkEncoder::new();
        encoder.set_chunk_size(chunk_size);
        Wire {
            encoder,
            out: BytesMut::new(),
        }
    }

    fn send(&mut self, message: RawMessage) -> &mut Self {
        self.encoder.encode(&message, &mut self.out);
        self
    }

    fn set_chunk_size(&mut self, size: u32) -> &mut Self {
        self.send(control(TYPE_SET_CHUNK_SIZE, &size.to_be_bytes()));
        self.encoder.set_chunk_size(size);
        self
    }

    fn bytes(&self) -> Vec<u8> {
        self.out.to_vec()
    }
}

fn with_selector(selector: u8, input: &[u8]) -> Vec<u8> {
    let mut data = vec![selector];
    data.extend_from_slice(input);
    data
}

// ---- rtmp_chunk: data[0] picks the initial chunk size, data[1..] is a chunk stream ----

fn chunk_seeds() -> Vec<(&'static str, Vec<u8>)> {
    // (name, selector, initial chunk size the selector picks, stream, messages in it)
    let seeds = [
        ("obs-publish.bin", 0, 128, obs_publish(), 24),
        ("extended-timestamps.bin", 0, 128, extended_timestamps(), 10),
        (
            "type3-without-extended-timestamp.bin",
            0,
            128,
            type3_without_extended_timestamp(),
            2,
        ),
        (
            "abort-at-chunk-size-1.bin",
            1,
            1,
            abort_at_chunk_size_1(),
            2,
        ),
        (
            "aggregate-and-controls.bin",
            3,
            65536,
            aggregate_and_controls(),
            10,
        ),
        // Selector 13 picks a chunk size of 13, so every message spans chunks.
        ("wide-csids.bin", 13, 13, wide_csids(13), 12),
    ];
    seeds
        .into_iter()
        .map(|(name, selector, chunk_size, stream, messages)| {
            // A seed is only worth its bytes if it gets past the chunk decoder.
            assert_eq!(decode(chunk_size, &stream).len(), messages, "{name}");
            (name, with_selector(selector, &stream))
        })
        .collect()
}

/// The messages of a chunk stream, applying Set Chunk Size and Abort as a session does;
/// panics on a decode error.
fn decode(chunk_size: u32, stream: &[u8]) -> Vec<RawMessage> {
    let mut decoder = ChunkDecoder::new(RtmpLimits::default());
    decoder
        .set_chunk_size(chunk_size)
        .expect("valid chunk size");
    let mut buf = BytesMut::from(stream);
    let mut messages = Vec::new();
    while let Some(message) = decoder.decode(&mut buf).expect("the seed decodes") {
        match Message::decode(&message) {
            Ok(Message::SetChunkSize(size)) => decoder.set_chunk_size(size).expect("valid size"),
            Ok(Message::Abort { csid }) => decoder.abort(csid),
            _ => {}
        }
        messages.push(message);
    }
    assert!(buf.is_empty(), "the seed ends on a message boundary");
    messages
}

/// What OBS sends after the handshake: connect, the publish preamble, a larger chunk size,
/// publish, metadata, sequence headers and a GOP.
fn obs_publish() -> Vec<u8> {
    let mut wire = Wire::new(128);
    wire.send(command(
        0,
        &[
            "connect".into(),
            1.0.into(),
            Value::object([
                ("app", Value::from("live")),
                ("type", "nonprivate".into()),
                ("flashVer", "FMLE/3.0 (compatible; FMSc/1.0)".into()),
                ("tcUrl", "rtmp://127.0.0.1:1935/live".into()),
            ]),
        ],
    ))
    .set_chunk_size(4096)
    .send(command(
        0,
        &[
            "releaseStream".into(),
            2.0.into(),
            Value::Null,
            "key".into(),
        ],
    ))
    .send(command(
        0,
        &["FCPublish".into(), 3.0.into(), Value::Null, "key".into()],
    ))
    .send(command(
        0,
        &["createStream".into(), 4.0.into(), Value::Null],
    ))
    .send(command(
        1,
        &[
            "publish".into(),
            5.0.into(),
            Value::Null,
            "key".into(),
            "live".into(),
        ],
    ))
    .send(raw(5, 1, 0, TYPE_DATA, metadata(true)))
    .send(raw(6, 1, 0, TYPE_VIDEO, Bytes::from_static(AVC_CONFIG)))
    .send(raw(4, 1, 0, TYPE_AUDIO, Bytes::from_static(AAC_CONFIG)))
    .send(raw(6, 1, 0, TYPE_VIDEO, avc_frame(true, 5000)));
    for i in 1..8u32 {
        wire.send(raw(4, 1, i * 21, TYPE_AUDIO, aac_frame(40)))
            .send(raw(6, 1, i * 33, TYPE_VIDEO, avc_frame(false, 300)));
    }
    wire.bytes()
}

/// Timestamps at and past the 24-bit field (extended timestamps, repeated on every type-3
/// continuation) and across the u32 wrap.
fn extended_timestamps() -> Vec<u8> {
    let mut wire = Wire::new(128);
    for (i, ts) in [0xFF_FFF0u32, 0xFF_FFFF, 0x0100_0010, 0x0100_0031]
        .into_iter()
        .enumerate()
    {
        wire.send(raw(6, 1, ts, TYPE_VIDEO, avc_frame(i == 0, 300)));
    }
    for ts in [0xFFFF_FFC0u32, 0xFFFF_FFF0, 0x10, 0x25] {
        wire.send(raw(4, 1, ts, TYPE_AUDIO, aac_frame(30)));
    }
    let mut standalone = raw(7, 1, 0x7FFF_0000, TYPE_VIDEO, avc_frame(true, 400));
    wire.out
        .extend_from_slice(&encode_standalone(&standalone, 128));
    standalone.timestamp = 0x7FFF_0021;
    wire.out
        .extend_from_slice(&encode_standalone(&standalone, 128));
    wire.bytes()
}

/// An extended timestamp on the type-0 chunk but not on its type-3 continuation, which old
/// OBS versions wrote.
fn type3_without_extended_timestamp() -> Vec<u8> {
    let payload = avc_frame(true, 200);
    let mut out = vec![0x06]; // fmt 0, csid 6
    out.extend_from_slice(&[0xFF, 0xFF, 0xFF]); // timestamp: see the extended field
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.push(TYPE_VIDEO);
    out.extend_from_slice(&1u32.to_le_bytes()); // message stream id, little-endian
    out.extend_from_slice(&0x0123_4567u32.to_be_bytes());
    out.extend_from_slice(&payload[..128]);
    out.push(0xC6); // fmt 3, csid 6, and straight on with the payload
    out.extend_from_slice(&payload[128..]);
    // The next message on the same chunk stream, which does repeat it.
    let next = raw(6, 1, 0x0123_4588, TYPE_VIDEO, avc_frame(false, 200));
    out.extend_from_slice(&encode_standalone(&next, 128));
    out
}

/// At chunk size 1: a message cut off by Abort, then sent again whole.
fn abort_at_chunk_size_1() -> Vec<u8> {
    let big = raw(6, 1, 40, TYPE_VIDEO, avc_frame(true, 300));
    let standalone = encode_standalone(&big, 1);
    // The type-0 chunk (12 header bytes and 1 payload byte), then 60 one-byte continuations.
    let mut out = standalone[..13 + 60 * 2].to_vec();
    let mut wire = Wire::new(1);
    wire.send(control(TYPE_ABORT, &6u32.to_be_bytes()));
    out.extend_from_slice(&wire.out);
    out.extend_from_slice(&standalone);
    out
}

/// An aggregate of three tags, and every protocol control and user control message.
fn aggregate_and_controls() -> Vec<u8> {
    let mut body = Vec::new();
    for (type_id, ts, payload) in [
        (TYPE_VIDEO, 1000u32, avc_frame(true, 60)),
        (TYPE_AUDIO, 1010, aac_frame(20)),
        (TYPE_VIDEO, 1033, avc_frame(false, 40)),
    ] {
        body.push(type_id);
        body.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
        body.extend_from_slice(&ts.to_be_bytes()[1..]);
        body.push((ts >> 24) as u8);
        body.extend_from_slice(&[0, 0, 0]);
        body.extend_from_slice(&payload);
        body.extend_from_slice(&(11 + payload.len() as u32).to_be_bytes());
    }
    let mut wire = Wire::new(65536);
    wire.send(raw(6, 1, 500, TYPE_AGGREGATE, body.into()))
        .send(control(TYPE_ACK, &2_500_000u32.to_be_bytes()))
        .send(control(TYPE_WINDOW_ACK_SIZE, &5_000_000u32.to_be_bytes()))
        .send(control(TYPE_SET_PEER_BANDWIDTH, &[0, 0x26, 0x25, 0xA0, 2]))
        .send(control(TYPE_USER_CONTROL, &[0, 6, 0, 0, 0x30, 0x39]))
        .send(control(TYPE_USER_CONTROL, &[0, 7, 0, 0, 0x30, 0x39]))
        .send(control(
            TYPE_USER_CONTROL,
            &[0, 3, 0, 0, 0, 1, 0, 0, 0x0B, 0xB8],
        ))
        .send(control(TYPE_USER_CONTROL, &[0, 0, 0, 0, 0, 1]))
        .send(raw(3, 0, 0, 7, Bytes::from_static(b"type 7")))
        .send(raw(
            3,
            0,
            0,
            TYPE_SHARED_OBJECT,
            Bytes::from_static(&[0, 3, b'o', b'b', b'j']),
        ));
    wire.bytes()
}

/// One-, two- and three-byte basic headers (csid 2..63, 64..319, 320..65599).
fn wide_csids(chunk_size: u32) -> Vec<u8> {
    let mut wire = Wire::new(chunk_size);
    for (i, csid) in [3u32, 63, 64, 319, 320, 65599].into_iter().enumerate() {
        let ts = i as u32 * 10;
        wire.send(raw(csid, 1, ts, TYPE_AUDIO, aac_frame(40)));
        wire.send(raw(csid, 1, ts + 5, TYPE_AUDIO, aac_frame(40)));
    }
    wire.bytes()
}

// ---- rtmp_handshake: one side's whole input stream ----

fn random(seed: u8) -> [u8; RANDOM_SIZE] {
    std::array::from_fn(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
}

/// C0+C1+C2 of a client of `kind`, answered by our server.
fn client_stream(kind: ClientHandshakeKind) -> (Vec<u8>, Vec<u8>) {
    let mut client = ClientHandshake::new(random(1), 1000, kind);
    let mut server = ServerHandshake::new(random(2), 2000);
    let c0c1 = client.poll_transmit().expect("C0+C1 queued on creation");
    assert_eq!(server.handle_input(&c0c1), Ok(c0c1.len()));
    let s0s1s2 = server.poll_transmit().expect("S0+S1+S2 after C0+C1");
    assert_eq!(client.handle_input(&s0s1s2), Ok(s0s1s2.len()));
    let c2 = client.poll_transmit().expect("C2 after S0+S1");
    assert!(client.is_done());
    let mut stream = c0c1.to_vec();
    stream.extend_from_slice(&c2);
    (stream, s0s1s2.to_vec())
}

fn handshake_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let (simple, simple_reply) = client_stream(ClientHandshakeKind::Simple);
    let (mut digest, digest_reply) = client_stream(ClientHandshakeKind::Digest);
    assert_eq!(simple.len(), HANDSHAKE_BYTES);
    assert_eq!(digest_reply.len(), HANDSHAKE_BYTES);
    // What a client sends right after C2: its first chunk, in the same read.
    digest.extend_from_slice(&Wire::new(128).set_chunk_size(4096).bytes());
    // RTMPE asks for version 6, which we do not speak.
    let mut rtmpe = simple[..1 + 1536].to_vec();
    rtmpe[0] = 6;
    vec![
        ("simple-client.bin", simple.clone()),
        ("simple-server-reply.bin", simple_reply),
        ("digest-client-then-chunk.bin", digest),
        ("digest-server-reply.bin", digest_reply),
        ("rtmpe-version-6.bin", rtmpe),
        ("half-c1.bin", simple[..700].to_vec()),
    ]
}

// ---- rtmp_session: data[0] picks splits and time steps; see `fuzzing::session` ----

fn session_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let publisher = converse(true);
    let player = converse(false);
    vec![
        // After the harness's own handshake, connect and createStream (stream 1).
        // Selector 3: 64-byte pieces, so the publish is accepted before its media arrives.
        (
            "publish-after-connect.bin",
            with_selector(3, &publish_after_connect()),
        ),
        // Selector 1: one byte per handle_input call.
        (
            "play-pause-seek-bytewise.bin",
            with_selector(1, &play_pause_seek()),
        ),
        // Selector 0xFE: 7-byte pieces, 20.9 s of fake time apart, so pings and the idle
        // timeout fire.
        ("slow-peer.bin", with_selector(0xFE, &slow_peer())),
        ("amf3-commands.bin", with_selector(2, &amf3_commands())),
        // For the server harness that starts from the first byte; selector 7: 64-byte pieces
        // 331 ms apart, so a ping goes out mid-stream.
        (
            "publisher-from-first-byte.bin",
            with_selector(7, &publisher.to_server),
        ),
        // For the client harness (bit 2 set: it publishes; clear: it plays), after the
        // server handshake it fakes.
        (
            "server-to-publisher.bin",
            with_selector(4, &publisher.to_client[HANDSHAKE_BYTES..]),
        ),
        (
            "server-to-player.bin",
            with_selector(0, &player.to_client[HANDSHAKE_BYTES..]),
        ),
    ]
}

fn publish_after_connect() -> Vec<u8> {
    let mut wire = Wire::new(4096);
    wire.send(command(
        0,
        &["releaseStream".into(), 3.0.into(), Value::Null, "k".into()],
    ))
    .send(command(
        0,
        &["FCPublish".into(), 4.0.into(), Value::Null, "k".into()],
    ))
    .send(command(
        1,
        &[
            "publish".into(),
            5.0.into(),
            Value::Null,
            "k?token=1".into(),
            "live".into(),
        ],
    ))
    .send(raw(5, 1, 0, TYPE_DATA, metadata(true)))
    .send(raw(6, 1, 0, TYPE_VIDEO, Bytes::from_static(AVC_CONFIG)))
    .send(raw(4, 1, 0, TYPE_AUDIO, Bytes::from_static(AAC_CONFIG)))
    .send(raw(6, 1, 0, TYPE_VIDEO, avc_frame(true, 5000)));
    for i in 1..6u32 {
        wire.send(raw(4, 1, i * 21, TYPE_AUDIO, aac_frame(30)))
            .send(raw(6, 1, i * 33, TYPE_VIDEO, avc_frame(false, 200)));
    }
    wire.send(raw(5, 1, 200, TYPE_DATA, metadata(false)))
        .send(command(
            0,
            &["FCUnpublish".into(), 6.0.into(), Value::Null, "k".into()],
        ))
        .send(command(
            1,
            &["deleteStream".into(), 7.0.into(), Value::Null, 1.0.into()],
        ));
    wire.bytes()
}

fn play_pause_seek() -> Vec<u8> {
    let mut wire = Wire::new(4096);
    wire.send(control(
        TYPE_USER_CONTROL,
        &[0, 3, 0, 0, 0, 1, 0, 0, 0x0B, 0xB8],
    ))
    .send(command(
        1,
        &[
            "play".into(),
            3.0.into(),
            Value::Null,
            "chan".into(),
            (-2.0).into(),
            (-1.0).into(),
            true.into(),
        ],
    ))
    .send(command(
        1,
        &[
            "pause".into(),
            0.0.into(),
            Value::Null,
            true.into(),
            1500.0.into(),
        ],
    ))
    .send(command(
        1,
        &[
            "pause".into(),
            0.0.into(),
            Value::Null,
            false.into(),
            1500.0.into(),
        ],
    ))
    .send(command(
        1,
        &["seek".into(), 0.0.into(), Value::Null, 5000.0.into()],
    ))
    .send(command(
        1,
        &["receiveAudio".into(), 0.0.into(), Value::Null, false.into()],
    ))
    .send(control(TYPE_ACK, &4000u32.to_be_bytes()))
    .send(command(1, &["closeStream".into(), 0.0.into(), Value::Null]));
    wire.bytes()
}

fn slow_peer() -> Vec<u8> {
    let mut wire = Wire::new(4096);
    for i in 0..6u32 {
        wire.send(control(TYPE_USER_CONTROL, &[0, 7, 0, 0, 0, i as u8]))
            .send(control(TYPE_ACK, &(i * 1000).to_be_bytes()));
    }
    wire.bytes()
}

/// Types 17 and 15: a format byte 0, AMF0 values, one of them switched to AMF3 with 0x11.
fn amf3_commands() -> Vec<u8> {
    let amf3 = |values: &[Value], amf3_tail: &[u8]| {
        let mut payload = vec![0];
        payload.extend_from_slice(&encode_all(values));
        payload.extend_from_slice(amf3_tail);
        Bytes::from(payload)
    };
    let mut wire = Wire::new(4096);
    wire.send(raw(
        3,
        0,
        0,
        TYPE_COMMAND_AMF3,
        // createStream(3, null): the command object as an AMF3 null.
        amf3(&["createStream".into(), 3.0.into()], &[0x11, 0x01]),
    ))
    .send(raw(
        8,
        2,
        0,
        TYPE_COMMAND_AMF3,
        // publish(4, null, "k", "live"), the name as an AMF3 string.
        amf3(
            &["publish".into(), 4.0.into(), Value::Null],
            &[
                0x11, 0x06, 0x03, b'k', 0x02, 0x00, 0x04, b'l', b'i', b'v', b'e',
            ],
        ),
    ))
    .send(raw(
        5,
        2,
        0,
        TYPE_DATA_AMF3,
        // @setDataFrame("onMetaData", {width: 640}), the object in AMF3.
        amf3(
            &["@setDataFrame".into(), "onMetaData".into()],
            &[
                0x11, 0x0A, 0x0B, 0x01, 0x0B, b'w', b'i', b'd', b't', b'h', 0x04, 0x85, 0x00, 0x01,
            ],
        ),
    ))
    .send(raw(6, 2, 0, TYPE_VIDEO, Bytes::from_static(AVC_CONFIG)));
    wire.bytes()
}

/// Both directions of a real exchange between our client and our server: handshake,
/// connect, createStream, then a publish with media or a play the server feeds media to.
struct Transcript {
    to_server: Vec<u8>,
    to_client: Vec<u8>,
}

fn converse(publish: bool) -> Transcript {
    // The sessions only compare instants, and no time passes here.
    let now = Instant::now();
    let mut server = ServerSession::new(ServerConfig::default(), now, [0x42; 1528]);
    let config = ClientConfig {
        digest_handshake: false,
        ..ClientConfig::default()
    };
    let mut client = ClientSession::new(config, now, [0x24; 1528]);
    if publish {
        client.publish("key");
    } else {
        client.play("chan");
    }
    let mut t = Transcript {
        to_server: Vec::new(),
        to_client: Vec::new(),
    };
    let mut media_received = 0;
    let mut started = false;
    for _round in 0..20 {
        let mut play_stream = None;
        while let Some(out) = client.poll_output() {
            match out {
                ClientOutput::Transmit(bytes) => {
                    t.to_server.extend_from_slice(&bytes);
                    server.handle_input(now, &bytes).expect("server accepts");
                }
                ClientOutput::Event(ClientEvent::PublishStarted) => {
                    started = true;
                    client.send_metadata(metadata(false));
                    let frames = [
                        (MediaKind::Video, 0, Bytes::from_static(AVC_CONFIG)),
                        (MediaKind::Audio, 0, Bytes::from_static(AAC_CONFIG)),
                        (MediaKind::Video, 0, avc_frame(true, 600)),
                        (MediaKind::Audio, 21, aac_frame(30)),
                        (MediaKind::Video, 33, avc_frame(false, 120)),
                    ];
                    for (kind, ts, payload) in frames {
                        client.send_media(kind, ts, payload).expect("publishing");
                    }
                }
                ClientOutput::Event(ClientEvent::Media { .. }) => media_received += 1,
                ClientOutput::Event(ClientEvent::PlayStarted) => started = true,
                ClientOutput::Event(_) => {}
            }
        }
        while let Some(out) = server.poll_output() {
            match out {
                ServerOutput::Transmit(bytes) => {
                    t.to_client.extend_from_slice(&bytes);
                    client.handle_input(now, &bytes).expect("client accepts");
                }
                ServerOutput::Event(ServerEvent::PublishRequested { request, .. }) => {
                    assert!(server.accept_publish(request));
                }
                ServerOutput::Event(ServerEvent::PlayRequested {
                    request, stream, ..
                }) => {
                    assert!(server.accept_play(request));
                    play_stream = Some(stream);
                }
                ServerOutput::Event(ServerEvent::Media { .. }) => media_received += 1,
                ServerOutput::Event(_) => {}
            }
        }
        // Media goes out after the replies to play, at a message boundary, as a driver
        // sends it.
        if let Some(stream) = play_stream {
            let frames = [
                (MediaKind::Script, 0, metadata(false)),
                (MediaKind::Video, 0, Bytes::from_static(AVC_CONFIG)),
                (MediaKind::Audio, 0, Bytes::from_static(AAC_CONFIG)),
                (MediaKind::Video, 0, avc_frame(true, 600)),
                (MediaKind::Audio, 21, aac_frame(30)),
                (MediaKind::Video, 33, avc_frame(false, 120)),
            ];
            for (kind, ts, payload) in frames {
                let bytes = server.encode_media(stream, kind, ts, payload);
                t.to_client.extend_from_slice(&bytes);
                client
                    .handle_input(now, &bytes)
                    .expect("client accepts media");
            }
        }
    }
    assert!(started, "the exchange reached publish or play");
    assert!(
        media_received >= 4,
        "media arrived: {media_received} messages"
    );
    t
}
