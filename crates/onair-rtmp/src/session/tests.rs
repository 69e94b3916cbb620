//! Scenario tests: a simulated [`Pair`] (a [`ServerSession`] and a [`ClientSession`] joined in
//! memory with fake time, after quinn's and str0m's harnesses) and a [`RawPeer`] that speaks to a
//! server with hand-encoded messages, for the orders and corner cases our client never produces.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use onair_amf::Value;
use onair_media::MediaKind;

use super::*;
use crate::chunk::{ChunkDecoder, ChunkEncoder, RawMessage, encode_standalone};
use crate::handshake::HandshakeKind;
use crate::message::{LimitType, Message, UserControl};

const HANDSHAKE_BYTES: usize = 1 + 2 * 1536;

/// Decodes one direction of the wire for assertions: skips the handshake and follows Set Chunk
/// Size like a peer would.
struct Tap {
    skip: usize,
    decoder: ChunkDecoder,
    buf: BytesMut,
    messages: Vec<(RawMessage, Message)>,
}

impl Tap {
    fn new() -> Self {
        Tap {
            skip: HANDSHAKE_BYTES,
            decoder: ChunkDecoder::new(RtmpLimits::default()),
            buf: BytesMut::new(),
            messages: Vec::new(),
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        let n = self.skip.min(bytes.len());
        self.skip -= n;
        self.buf.extend_from_slice(&bytes[n..]);
        while let Some(raw) = self
            .decoder
            .decode(&mut self.buf)
            .expect("tap: valid chunk stream")
        {
            let message = Message::decode(&raw).expect("tap: valid message");
            if let Message::SetChunkSize(size) = message {
                self.decoder
                    .set_chunk_size(size)
                    .expect("tap: valid chunk size");
            }
            self.messages.push((raw, message));
        }
    }

    fn take(&mut self) -> Vec<(RawMessage, Message)> {
        std::mem::take(&mut self.messages)
    }
}

/// A command or status seen on the wire, flattened for assertions.
#[derive(Debug, Clone, PartialEq)]
struct Cmd {
    name: String,
    transaction_id: f64,
    stream: u32,
    command_object: Value,
    args: Vec<Value>,
}

impl Cmd {
    fn info(&self, key: &str) -> Option<&str> {
        self.args.first()?.get(key)?.as_str()
    }

    fn code(&self) -> Option<&str> {
        self.info("code")
    }
}

fn commands(messages: &[(RawMessage, Message)]) -> Vec<Cmd> {
    messages
        .iter()
        .filter_map(|(raw, message)| match message {
            Message::Command {
                name,
                transaction_id,
                command_object,
                args,
                ..
            } => Some(Cmd {
                name: name.clone(),
                transaction_id: *transaction_id,
                stream: raw.message_stream_id,
                command_object: command_object.clone(),
                args: args.clone(),
            }),
            _ => None,
        })
        .collect()
}

fn status_codes(messages: &[(RawMessage, Message)]) -> Vec<String> {
    commands(messages)
        .iter()
        .filter_map(|c| c.code().map(str::to_owned))
        .collect()
}

fn amf(values: &[Value]) -> Bytes {
    onair_amf::encode_all(values)
}

fn on_metadata() -> Bytes {
    amf(&[
        "onMetaData".into(),
        Value::EcmaArray(vec![
            ("width".to_owned(), 1280.0.into()),
            ("height".to_owned(), 720.0.into()),
            ("encoder".to_owned(), "obs-output module".into()),
        ]),
    ])
}

/// A ServerSession and a ClientSession joined in memory. Bytes go through [`Tap`]s so tests can
/// assert on the wire, and may be delivered in pieces of `split` bytes.
struct Pair {
    now: Instant,
    server: ServerSession,
    client: ClientSession,
    server_events: Vec<ServerEvent>,
    client_events: Vec<ClientEvent>,
    to_server: Tap,
    to_client: Tap,
    split: usize,
}

impl Pair {
    fn new() -> Self {
        Self::with(ServerConfig::default(), ClientConfig::default())
    }

    fn with(server: ServerConfig, client: ClientConfig) -> Self {
        let now = Instant::now();
        Pair {
            now,
            server: ServerSession::new(server, now, [0x5A; 1528]),
            client: ClientSession::new(client, now, [0xA5; 1528]),
            server_events: Vec::new(),
            client_events: Vec::new(),
            to_server: Tap::new(),
            to_client: Tap::new(),
            split: usize::MAX,
        }
    }

    /// Moves bytes both ways until neither side has anything to say.
    fn drive(&mut self) {
        loop {
            let mut progress = false;
            while let Some(out) = self.client.poll_output() {
                progress = true;
                match out {
                    ClientOutput::Transmit(bytes) => {
                        assert!(!bytes.is_empty(), "empty client transmit");
                        self.to_server.feed(&bytes);
                        for piece in bytes.chunks(self.split) {
                            self.server
                                .handle_input(self.now, piece)
                                .expect("server accepts client bytes");
                        }
                    }
                    ClientOutput::Event(event) => self.client_events.push(event),
                }
            }
            while let Some(out) = self.server.poll_output() {
                progress = true;
                match out {
                    ServerOutput::Transmit(bytes) => {
                        assert!(!bytes.is_empty(), "empty server transmit");
                        self.deliver_to_client(&bytes);
                    }
                    ServerOutput::Event(event) => self.server_events.push(event),
                }
            }
            if !progress {
                return;
            }
        }
    }

    /// What the driver does with shared media bytes: write them straight to the player.
    fn deliver_to_client(&mut self, bytes: &[u8]) {
        self.to_client.feed(bytes);
        for piece in bytes.chunks(self.split) {
            self.client
                .handle_input(self.now, piece)
                .expect("client accepts server bytes");
        }
    }

    fn take_server_events(&mut self) -> Vec<ServerEvent> {
        std::mem::take(&mut self.server_events)
    }

    fn take_client_events(&mut self) -> Vec<ClientEvent> {
        std::mem::take(&mut self.client_events)
    }

    fn connect(&mut self) {
        self.drive();
        assert_eq!(self.take_client_events(), vec![ClientEvent::Connected]);
        assert!(matches!(
            self.take_server_events()[..],
            [ServerEvent::Connected { .. }]
        ));
    }

    /// Connects and asks to publish `key`, returning the pending request and stream.
    fn request_publish(&mut self, key: &str) -> (RequestId, u32) {
        self.connect();
        self.client.publish(key);
        self.drive();
        match self.take_server_events()[..] {
            [
                ServerEvent::PublishRequested {
                    request, stream, ..
                },
            ] => (request, stream),
            ref other => panic!("expected PublishRequested, got {other:?}"),
        }
    }

    fn publishing(&mut self, key: &str) -> u32 {
        let (request, stream) = self.request_publish(key);
        assert!(self.server.accept_publish(request));
        self.drive();
        assert_eq!(self.take_client_events(), vec![ClientEvent::PublishStarted]);
        stream
    }

    fn playing(&mut self, name: &str) -> u32 {
        self.connect();
        self.client.play(name);
        self.drive();
        let request = match self.take_server_events()[..] {
            [
                ServerEvent::PlayRequested { request, .. },
                ServerEvent::BufferLength { .. },
            ] => request,
            ref other => panic!("expected PlayRequested, got {other:?}"),
        };
        assert!(self.server.accept_play(request));
        self.drive();
        self.server.media_stream_id().expect("a play stream")
    }

    /// Runs the server's timers up to `now + d` the way a driver's `select!` would.
    fn advance(&mut self, d: Duration) -> Result<(), SessionError> {
        let target = self.now + d;
        while let Some(at) = self.server.poll_timeout().filter(|&at| at <= target) {
            self.now = at;
            self.server.handle_timeout(at)?;
            self.drive();
        }
        self.now = target;
        Ok(())
    }
}

/// A hand-driven client: simple handshake, then messages we encode ourselves, so tests control
/// every byte order and header.
struct RawPeer {
    now: Instant,
    server: ServerSession,
    encoder: ChunkEncoder,
    tap: Tap,
    events: Vec<ServerEvent>,
    sent: u64,
}

impl RawPeer {
    fn new(config: ServerConfig) -> Self {
        let now = Instant::now();
        let mut peer = RawPeer {
            now,
            server: ServerSession::new(config, now, [1; 1528]),
            encoder: ChunkEncoder::new(),
            tap: Tap::new(),
            events: Vec::new(),
            sent: 0,
        };
        let mut c0c1c2 = vec![3u8];
        c0c1c2.resize(HANDSHAKE_BYTES, 0);
        peer.feed(&c0c1c2).expect("handshake");
        peer
    }

    fn feed(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        self.sent += bytes.len() as u64;
        let result = self.server.handle_input(self.now, bytes);
        self.drain();
        result
    }

    fn drain(&mut self) {
        while let Some(out) = self.server.poll_output() {
            match out {
                ServerOutput::Transmit(bytes) => {
                    assert!(!bytes.is_empty());
                    self.tap.feed(&bytes);
                }
                ServerOutput::Event(event) => self.events.push(event),
            }
        }
    }

    fn encode(
        &mut self,
        csid: u32,
        stream: u32,
        timestamp: u32,
        type_id: u8,
        payload: Bytes,
    ) -> BytesMut {
        let mut out = BytesMut::new();
        self.encoder.encode(
            &RawMessage {
                csid,
                timestamp,
                type_id,
                message_stream_id: stream,
                payload,
            },
            &mut out,
        );
        out
    }

    fn send(
        &mut self,
        csid: u32,
        stream: u32,
        timestamp: u32,
        type_id: u8,
        payload: Bytes,
    ) -> Result<(), SessionError> {
        let bytes = self.encode(csid, stream, timestamp, type_id, payload);
        self.feed(&bytes)
    }

    fn command_bytes(&mut self, stream: u32, name: &str, tx: f64, args: &[Value]) -> BytesMut {
        let mut values = vec![Value::from(name), tx.into()];
        values.extend_from_slice(args);
        let csid = if stream == 0 { 3 } else { 8 };
        self.encode(csid, stream, 0, 20, amf(&values))
    }

    fn command(&mut self, stream: u32, name: &str, tx: f64, args: &[Value]) {
        let bytes = self.command_bytes(stream, name, tx, args);
        self.feed(&bytes).expect("command accepted");
    }

    fn connect_with(&mut self, extra: Vec<(String, Value)>) {
        let mut props = vec![
            ("app".to_owned(), Value::from("live")),
            ("tcUrl".to_owned(), "rtmp://127.0.0.1/live".into()),
            ("flashVer".to_owned(), "LNX 9,0,124,2".into()),
        ];
        props.extend(extra);
        self.command(0, "connect", 1.0, &[Value::Object(props)]);
    }

    fn connect(&mut self) {
        self.connect_with(Vec::new());
        self.tap.take();
        assert!(matches!(
            self.take_events()[..],
            [ServerEvent::Connected { .. }]
        ));
    }

    fn take_events(&mut self) -> Vec<ServerEvent> {
        std::mem::take(&mut self.events)
    }

    fn publishing(&mut self) -> u32 {
        self.connect();
        self.command(0, "createStream", 2.0, &[Value::Null]);
        self.command(
            1,
            "publish",
            0.0,
            &[Value::Null, "key".into(), "live".into()],
        );
        let request = match self.take_events()[..] {
            [ServerEvent::PublishRequested { request, .. }] => request,
            ref other => panic!("expected PublishRequested, got {other:?}"),
        };
        assert!(self.server.accept_publish(request));
        self.drain();
        self.tap.take();
        1
    }
}

#[test]
fn connect_replies_control_before_result() {
    let mut peer = RawPeer::new(ServerConfig::default());
    peer.connect_with(vec![("objectEncoding".to_owned(), 3.0.into())]);
    let messages = peer.tap.take();
    let kinds: Vec<&Message> = messages.iter().map(|(_, m)| m).collect();
    assert_eq!(kinds[0], &Message::WindowAckSize(2_500_000));
    assert_eq!(
        kinds[1],
        &Message::SetPeerBandwidth {
            size: 2_500_000,
            limit_type: LimitType::Dynamic
        }
    );
    assert_eq!(kinds[2], &Message::SetChunkSize(4096));
    assert!(
        messages[..3]
            .iter()
            .all(|(raw, _)| raw.csid == 2 && raw.message_stream_id == 0)
    );
    let result = &commands(&messages)[0];
    assert_eq!(
        (result.name.as_str(), result.transaction_id),
        ("_result", 1.0)
    );
    assert_eq!(
        result.command_object.get("fmsVer").and_then(Value::as_str),
        Some("FMS/3,5,7,7009")
    );
    assert_eq!(
        result.command_object.get("capabilities"),
        Some(&Value::Number(255.0))
    );
    assert_eq!(result.command_object.get("mode"), Some(&Value::Number(1.0)));
    assert_eq!(
        result.command_object.get("fourCcList"),
        None,
        "legacy client: no E-RTMP caps"
    );
    assert_eq!(result.code(), Some("NetConnection.Connect.Success"));
    assert_eq!(result.info("level"), Some("status"));
    assert_eq!(
        result.args[0].get("objectEncoding"),
        Some(&Value::Number(3.0))
    );
    assert_eq!(messages.len(), 4);
    assert_eq!(peer.server.chunk_size_out(), 4096);
    match &peer.take_events()[..] {
        [
            ServerEvent::Connected {
                app,
                tc_url,
                flash_ver,
                object_encoding,
                four_cc_list,
                caps_ex,
            },
        ] => {
            assert_eq!(app, "live");
            assert_eq!(tc_url.as_deref(), Some("rtmp://127.0.0.1/live"));
            assert_eq!(flash_ver.as_deref(), Some("LNX 9,0,124,2"));
            assert_eq!(*object_encoding, 3.0);
            assert!(four_cc_list.is_empty());
            assert_eq!(*caps_ex, None);
        }
        other => panic!("expected Connected, got {other:?}"),
    }
}

#[test]
fn transmits_are_coalesced_into_one_write() {
    let mut peer = RawPeer::new(ServerConfig::default());
    let bytes = peer.command_bytes(
        0,
        "connect",
        1.0,
        &[Value::object([("app", Value::from("live"))])],
    );
    peer.server.handle_input(peer.now, &bytes).expect("connect");
    let mut transmits = 0;
    while let Some(out) = peer.server.poll_output() {
        if let ServerOutput::Transmit(bytes) = out {
            transmits += 1;
            peer.tap.feed(&bytes);
        }
    }
    assert_eq!(transmits, 1, "four replies, one Bytes");
    assert_eq!(peer.tap.take().len(), 4);
}

#[test]
fn publish_is_not_answered_until_accepted() {
    let mut pair = Pair::new();
    pair.connect();
    pair.to_client.take();
    pair.client.publish("chan?key=secret");
    pair.drive();
    let (request, stream) = match &pair.take_server_events()[..] {
        [
            ServerEvent::PublishRequested {
                request,
                stream,
                app,
                key,
                mode,
            },
        ] => {
            assert_eq!(
                (app.as_str(), key.as_str(), mode.as_str()),
                ("live", "chan?key=secret", "live")
            );
            (*request, *stream)
        }
        other => panic!("expected PublishRequested, got {other:?}"),
    };
    assert_eq!(stream, 1);
    let before = commands(&pair.to_client.take());
    assert!(
        before.iter().all(|c| c.name == "_result"),
        "only results before accept: {before:?}"
    );
    assert!(pair.take_client_events().is_empty());
    assert_eq!(
        pair.client
            .send_media(MediaKind::Video, 0, Bytes::from_static(b"x"))
            .map_err(|e| e.to_string()),
        Err("cannot send Video before the server answered NetStream.Publish.Start".to_owned())
    );

    // Commands after the publish are still processed while the driver decides.
    pair.client.close();
    pair.drive();
    assert!(
        pair.take_server_events().is_empty(),
        "nothing was publishing yet"
    );
    assert!(
        !pair.server.accept_publish(request),
        "the stream is gone: a late accept is a no-op"
    );
    pair.drive();
    assert!(status_codes(&pair.to_client.take()).is_empty());
}

#[test]
fn accept_publish_sends_fc_publish_and_start_on_the_stream() {
    let mut pair = Pair::new();
    let (request, stream) = pair.request_publish("key");
    pair.to_client.take();
    assert!(pair.server.accept_publish(request));
    pair.drive();
    let replies = commands(&pair.to_client.take());
    assert_eq!(replies.len(), 2);
    assert_eq!(
        (replies[0].name.as_str(), replies[0].code()),
        ("onFCPublish", Some("NetStream.Publish.Start"))
    );
    assert_eq!(
        (replies[1].name.as_str(), replies[1].stream),
        ("onStatus", stream)
    );
    assert_eq!(replies[1].code(), Some("NetStream.Publish.Start"));
    assert_eq!(pair.take_client_events(), vec![ClientEvent::PublishStarted]);

    pair.client
        .send_media(
            MediaKind::Video,
            0,
            Bytes::from_static(&[0x17, 0, 0, 0, 0, 1]),
        )
        .unwrap();
    pair.client
        .send_media(
            MediaKind::Audio,
            23,
            Bytes::from_static(&[0xAF, 0, 0x12, 0x10]),
        )
        .unwrap();
    pair.drive();
    assert_eq!(
        pair.take_server_events(),
        vec![
            ServerEvent::Media {
                stream,
                kind: MediaKind::Video,
                timestamp: 0,
                payload: Bytes::from_static(&[0x17, 0, 0, 0, 0, 1])
            },
            ServerEvent::Media {
                stream,
                kind: MediaKind::Audio,
                timestamp: 23,
                payload: Bytes::from_static(&[0xAF, 0, 0x12, 0x10])
            },
        ]
    );

    pair.client.close();
    pair.drive();
    assert_eq!(
        pair.take_server_events(),
        vec![ServerEvent::PublishStopped { stream }],
        "one stop for FCUnpublish + deleteStream"
    );
    assert!(
        status_codes(&pair.to_client.take()).contains(&"NetStream.Unpublish.Success".to_owned())
    );
}

#[test]
fn obs_pipelined_commands_before_results() {
    // OBS writes connect, then releaseStream/FCPublish/createStream without reading a reply; the
    // worst case is all of it, plus the publish, in one read.
    let mut peer = RawPeer::new(ServerConfig::default());
    let mut burst = BytesMut::new();
    burst.extend_from_slice(&peer.command_bytes(
        0,
        "connect",
        1.0,
        &[Value::object([("app", Value::from("live"))])],
    ));
    burst.extend_from_slice(&peer.command_bytes(
        0,
        "releaseStream",
        2.0,
        &[Value::Null, "key".into()],
    ));
    burst.extend_from_slice(&peer.command_bytes(0, "FCPublish", 3.0, &[Value::Null, "key".into()]));
    burst.extend_from_slice(&peer.command_bytes(0, "createStream", 4.0, &[Value::Null]));
    burst.extend_from_slice(&peer.command_bytes(
        1,
        "publish",
        5.0,
        &[Value::Null, "key".into(), "live".into()],
    ));
    peer.feed(&burst).unwrap();
    let replies = commands(&peer.tap.take());
    let results: Vec<(f64, Value)> = replies[1..]
        .iter()
        .map(|c| (c.transaction_id, c.args[0].clone()))
        .collect();
    assert_eq!(replies[0].name, "_result");
    assert_eq!(
        results,
        vec![
            (2.0, Value::Undefined),
            (3.0, Value::Undefined),
            (4.0, Value::Number(1.0))
        ]
    );
    assert!(replies.iter().all(|c| c.name == "_result"));
    let request = match &peer.take_events()[..] {
        [
            ServerEvent::Connected { .. },
            ServerEvent::PublishRequested {
                request,
                stream: 1,
                key,
                ..
            },
        ] => {
            assert_eq!(key, "key");
            *request
        }
        other => panic!("unexpected events {other:?}"),
    };
    assert!(peer.server.accept_publish(request));
    peer.drain();
    let replies = commands(&peer.tap.take());
    assert_eq!(
        replies.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["onFCPublish", "onStatus"]
    );
}

#[test]
fn create_stream_then_publish_without_fc_commands() {
    // GStreamer and Haivision encoders skip releaseStream/FCPublish (protocol-notes §4.5).
    let mut peer = RawPeer::new(ServerConfig::default());
    peer.connect();
    peer.command(0, "createStream", 2.0, &[Value::Null]);
    peer.command(0, "createStream", 3.0, &[Value::Null]);
    let ids: Vec<Value> = commands(&peer.tap.take())
        .iter()
        .map(|c| c.args[0].clone())
        .collect();
    assert_eq!(ids, [Value::Number(1.0), Value::Number(2.0)]);
    peer.command(2, "publish", 0.0, &[Value::Null, "gst".into()]);
    let request = match &peer.take_events()[..] {
        [
            ServerEvent::PublishRequested {
                request,
                stream: 2,
                mode,
                ..
            },
        ] => {
            assert_eq!(mode, "live", "publishing type defaults to live");
            *request
        }
        other => panic!("unexpected events {other:?}"),
    };
    assert!(peer.server.accept_publish(request));
    peer.drain();
    let replies = commands(&peer.tap.take());
    assert_eq!(
        replies.len(),
        1,
        "no onFCPublish without FCPublish: {replies:?}"
    );
    assert_eq!(
        (replies[0].stream, replies[0].code()),
        (2, Some("NetStream.Publish.Start"))
    );
}

#[test]
fn reject_publish_sends_badname_with_reason() {
    for (reject, code) in [
        (
            Reject::BadName("stream key revoked".into()),
            "NetStream.Publish.BadName",
        ),
        (
            Reject::Denied("channel is banned".into()),
            "NetStream.Publish.Denied",
        ),
        (
            Reject::Unauthorized("unknown stream key".into()),
            "NetStream.Publish.Rejected",
        ),
    ] {
        let mut pair = Pair::new();
        let (request, stream) = pair.request_publish("bad");
        pair.to_client.take();
        assert!(pair.server.reject_publish(request, reject.clone()));
        pair.drive();
        let replies = commands(&pair.to_client.take());
        assert_eq!(replies.len(), 1);
        assert_eq!(
            (replies[0].name.as_str(), replies[0].stream),
            ("onStatus", stream)
        );
        assert_eq!(replies[0].info("level"), Some("error"));
        assert_eq!(replies[0].code(), Some(code));
        assert_eq!(replies[0].info("description"), Some(reject.description()));
        assert_eq!(
            pair.take_client_events(),
            vec![ClientEvent::Rejected {
                code: code.to_owned(),
                description: reject.description().to_owned()
            }]
        );
        assert!(!pair.server.accept_publish(request), "answered once");
    }
}

#[test]
fn media_before_publish_is_dropped() {
    let mut peer = RawPeer::new(ServerConfig::default());
    // Before connect, before createStream, on stream 0: dropped, never a panic.
    peer.send(6, 0, 0, 9, Bytes::from_static(&[0x17, 0, 0, 0, 0]))
        .unwrap();
    peer.send(4, 1, 0, 8, Bytes::new()).unwrap();
    peer.connect();
    peer.command(0, "createStream", 2.0, &[Value::Null]);
    peer.send(6, 1, 0, 9, Bytes::from_static(&[0x17, 1]))
        .unwrap();
    peer.send(
        5,
        1,
        0,
        18,
        amf(&["@setDataFrame".into(), "onMetaData".into(), Value::Null]),
    )
    .unwrap();
    peer.command(1, "publish", 0.0, &[Value::Null, "key".into()]);
    let request = match &peer.take_events()[..] {
        [ServerEvent::PublishRequested { request, .. }] => *request,
        other => panic!("unexpected events {other:?}"),
    };
    // Still pending: dropped.
    peer.send(6, 1, 40, 9, Bytes::from_static(&[0x27, 1]))
        .unwrap();
    assert!(peer.take_events().is_empty());
    assert!(peer.server.accept_publish(request));
    peer.send(6, 1, 80, 9, Bytes::from_static(&[0x27, 2]))
        .unwrap();
    // Media on another stream than the accepted one is dropped too.
    peer.send(6, 2, 80, 9, Bytes::from_static(&[0x27, 3]))
        .unwrap();
    assert_eq!(
        peer.take_events(),
        vec![ServerEvent::Media {
            stream: 1,
            kind: MediaKind::Video,
            timestamp: 80,
            payload: Bytes::from_static(&[0x27, 2])
        }]
    );
}

#[test]
fn metadata_strips_set_data_frame() {
    let mut pair = Pair::new();
    let stream = pair.publishing("key");
    pair.client.send_metadata(on_metadata());
    pair.drive();
    let (raw, _) = pair.to_server.take().pop().expect("metadata on the wire");
    assert_eq!(
        onair_amf::decode_all(&raw.payload).unwrap()[..2],
        [Value::from("@setDataFrame"), Value::from("onMetaData")]
    );
    assert_eq!(
        pair.take_server_events(),
        vec![ServerEvent::Metadata {
            stream,
            timestamp: 0,
            payload: on_metadata()
        }]
    );

    // Plain onMetaData passes unchanged; AMF3 data (type 15, format byte 0) is re-encoded as
    // AMF0; other data messages are not metadata.
    let mut peer = RawPeer::new(ServerConfig::default());
    let stream = peer.publishing();
    peer.send(5, stream, 10, 18, on_metadata()).unwrap();
    let mut amf3 = vec![0u8];
    amf3.extend_from_slice(&amf(&["@setDataFrame".into()]));
    amf3.extend_from_slice(&on_metadata());
    peer.send(5, stream, 20, 15, Bytes::from(amf3)).unwrap();
    peer.send(5, stream, 30, 18, amf(&["onTextData".into(), Value::Null]))
        .unwrap();
    peer.send(5, stream, 40, 18, Bytes::from_static(&[0xFF, 0xFF]))
        .unwrap();
    assert_eq!(
        peer.take_events(),
        vec![
            ServerEvent::Metadata {
                stream,
                timestamp: 10,
                payload: on_metadata()
            },
            ServerEvent::Metadata {
                stream,
                timestamp: 20,
                payload: on_metadata()
            },
        ]
    );
}

#[test]
fn aggregate_message_is_split() {
    // RTMP 1.0 §7.1.6: [11-byte tag header, body, back pointer]*; sub-message timestamps are
    // rebased onto the aggregate's, and the aggregate's stream id wins.
    fn tag(type_id: u8, timestamp: u32, body: &[u8]) -> Vec<u8> {
        let mut out = vec![type_id];
        out.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        out.extend_from_slice(&(timestamp & 0xFF_FFFF).to_be_bytes()[1..]);
        out.push((timestamp >> 24) as u8);
        out.extend_from_slice(&[0, 0, 9]);
        out.extend_from_slice(body);
        out.extend_from_slice(&(11 + body.len() as u32).to_be_bytes());
        out
    }
    let mut peer = RawPeer::new(ServerConfig::default());
    let stream = peer.publishing();
    let mut body = tag(9, 100, &[0x17, 1, 0, 0, 0, 0xAA]);
    body.extend(tag(8, 120, &[0xAF, 1, 0xBB]));
    body.extend(tag(9, 140, &[0x27, 1, 0, 0, 0, 0xCC]));
    peer.send(7, stream, 1000, 22, Bytes::from(body)).unwrap();
    assert_eq!(
        peer.take_events(),
        vec![
            ServerEvent::Media {
                stream,
                kind: MediaKind::Video,
                timestamp: 1000,
                payload: Bytes::from_static(&[0x17, 1, 0, 0, 0, 0xAA])
            },
            ServerEvent::Media {
                stream,
                kind: MediaKind::Audio,
                timestamp: 1020,
                payload: Bytes::from_static(&[0xAF, 1, 0xBB])
            },
            ServerEvent::Media {
                stream,
                kind: MediaKind::Video,
                timestamp: 1040,
                payload: Bytes::from_static(&[0x27, 1, 0, 0, 0, 0xCC])
            },
        ]
    );
}

#[test]
fn play_sequence_order() {
    let mut pair = Pair::new();
    pair.connect();
    pair.to_client.take();
    pair.client.play("chan");
    pair.drive();
    let request = match &pair.take_server_events()[..] {
        [
            ServerEvent::PlayRequested {
                request,
                stream: 1,
                app,
                name,
                start,
                duration,
                reset,
            },
            ServerEvent::BufferLength {
                stream: 1,
                buffer_ms: 3000,
            },
        ] => {
            assert_eq!((app.as_str(), name.as_str()), ("live", "chan"));
            assert_eq!((*start, *duration, *reset), (-2.0, -1.0, true));
            *request
        }
        other => panic!("unexpected events {other:?}"),
    };
    pair.to_client.take();
    assert!(pair.server.accept_play(request));
    pair.drive();
    let wire = pair.to_client.take();
    let seen: Vec<String> = wire
        .iter()
        .map(|(raw, message)| match message {
            Message::UserControl(UserControl::StreamBegin(s)) => format!("StreamBegin({s})"),
            Message::Command { name, args, .. } => format!(
                "{name} {}@{}",
                args.first()
                    .and_then(|a| a.get("code"))
                    .and_then(Value::as_str)
                    .unwrap_or(""),
                raw.message_stream_id
            ),
            Message::Data { values, .. } => format!("data {values:?}@{}", raw.message_stream_id),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        seen,
        [
            "StreamBegin(1)",
            "onStatus NetStream.Play.Reset@1",
            "onStatus NetStream.Play.Start@1",
            "data [String(\"|RtmpSampleAccess\"), Boolean(true), Boolean(true)]@1",
        ]
    );
    assert!(
        wire.iter().all(
            |(raw, _)| ![MEDIA_CSID_AUDIO, MEDIA_CSID_VIDEO, MEDIA_CSID_DATA].contains(&raw.csid)
        ),
        "the media csids stay free for shared chunks"
    );
    assert_eq!(
        pair.take_client_events(),
        vec![
            ClientEvent::Status {
                level: "status".into(),
                code: "NetStream.Play.Reset".into(),
                description: "Playing and resetting chan.".into()
            },
            ClientEvent::PlayStarted
        ]
    );
    assert_eq!(pair.server.media_stream_id(), Some(1));
}

#[test]
fn shared_and_per_session_media_interleave() {
    let mut pair = Pair::new();
    let stream = pair.playing("chan");
    pair.take_client_events();
    let chunk_size = pair.server.chunk_size_out();
    let metadata = encode_standalone(
        &media_raw_message(MediaKind::Script, 0, stream, on_metadata()),
        chunk_size,
    );
    pair.deliver_to_client(&metadata);
    let big = Bytes::from(vec![0x17; 10_000]);
    for ts in [0, 33, 66] {
        let shared = encode_standalone(
            &media_raw_message(MediaKind::Video, ts, stream, big.clone()),
            chunk_size,
        );
        pair.deliver_to_client(&shared);
        let own = pair.server.encode_media(
            stream,
            MediaKind::Audio,
            ts + 1,
            Bytes::from_static(&[0xAF, 1]),
        );
        pair.deliver_to_client(&own);
        // The session's own control traffic in between must not disturb the media csids.
        pair.server.notify_republished(stream);
        pair.drive();
    }
    let events = pair.take_client_events();
    assert_eq!(
        events[0],
        ClientEvent::Metadata {
            timestamp: 0,
            payload: on_metadata()
        }
    );
    let media: Vec<(MediaKind, u32, usize)> = events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Media {
                kind,
                timestamp,
                payload,
            } => Some((*kind, *timestamp, payload.len())),
            _ => None,
        })
        .collect();
    assert_eq!(
        media,
        [
            (MediaKind::Video, 0, 10_000),
            (MediaKind::Audio, 1, 2),
            (MediaKind::Video, 33, 10_000),
            (MediaKind::Audio, 34, 2),
            (MediaKind::Video, 66, 10_000),
            (MediaKind::Audio, 67, 2)
        ]
    );
}

#[test]
fn player_controls_are_answered() {
    let mut pair = Pair::new();
    let stream = pair.playing("chan");
    pair.to_client.take();
    let mut peer_side = ChunkEncoder::new();
    let mut send = |pair: &mut Pair, name: &str, args: Vec<Value>| {
        let mut values = vec![Value::from(name), 0.0.into(), Value::Null];
        values.extend(args);
        let mut out = BytesMut::new();
        let raw = RawMessage {
            csid: 8,
            timestamp: 0,
            type_id: 20,
            message_stream_id: stream,
            payload: amf(&values),
        };
        peer_side.encode(&raw, &mut out);
        pair.server.handle_input(pair.now, &out).unwrap();
        pair.drive();
    };
    send(&mut pair, "pause", vec![true.into(), 1500.0.into()]);
    send(&mut pair, "pause", vec![false.into(), 1500.0.into()]);
    send(&mut pair, "seek", vec![0.0.into()]);
    send(&mut pair, "receiveAudio", vec![false.into()]);
    send(&mut pair, "receiveVideo", vec![true.into()]);
    assert_eq!(
        pair.take_server_events(),
        vec![
            ServerEvent::Paused {
                stream,
                paused: true,
                position_ms: 1500.0
            },
            ServerEvent::Paused {
                stream,
                paused: false,
                position_ms: 1500.0
            },
            ServerEvent::Seek {
                stream,
                position_ms: 0.0
            },
            ServerEvent::ReceiveAudio {
                stream,
                enabled: false
            },
            ServerEvent::ReceiveVideo {
                stream,
                enabled: true
            },
        ]
    );
    assert_eq!(
        status_codes(&pair.to_client.take()),
        [
            "NetStream.Pause.Notify",
            "NetStream.Unpause.Notify",
            "NetStream.Seek.Notify"
        ]
    );

    let statuses = pair.take_client_events();
    assert!(
        statuses
            .iter()
            .all(|e| matches!(e, ClientEvent::Status { .. } | ClientEvent::PlayStarted)),
        "{statuses:?}"
    );
    pair.server.notify_unpublished(stream);
    pair.drive();
    assert_eq!(
        pair.take_client_events(),
        [ClientEvent::UnpublishNotify, ClientEvent::StreamEof]
    );
    pair.client.close();
    pair.drive();
    assert_eq!(
        pair.take_server_events(),
        vec![ServerEvent::PlayStopped { stream }]
    );
    assert_eq!(pair.server.media_stream_id(), None);
}

#[test]
fn reject_play_sends_stream_not_found() {
    let mut pair = Pair::new();
    pair.connect();
    pair.client.play("nobody");
    pair.drive();
    let request = match pair.take_server_events()[..] {
        [ServerEvent::PlayRequested { request, .. }, ..] => request,
        ref other => panic!("unexpected events {other:?}"),
    };
    assert!(
        !pair.server.accept_publish(request),
        "a play request is not a publish request"
    );
    assert!(
        pair.server
            .reject_play(request, Reject::NotFound("nothing live on nobody".into()))
    );
    pair.drive();
    assert_eq!(
        pair.take_client_events(),
        vec![ClientEvent::Rejected {
            code: "NetStream.Play.StreamNotFound".into(),
            description: "nothing live on nobody".into()
        }]
    );
}

#[test]
fn ack_sent_every_window_and_sequence_wraps() {
    let mut peer = RawPeer::new(ServerConfig::default());
    peer.connect();
    let window: u32 = 1000;
    let ack_of = |messages: Vec<(RawMessage, Message)>| -> Vec<u32> {
        messages
            .into_iter()
            .filter_map(|(_, m)| match m {
                Message::Acknowledgement { sequence_number } => Some(sequence_number),
                _ => None,
            })
            .collect()
    };
    let wab = peer.encode(2, 0, 0, 5, Bytes::copy_from_slice(&window.to_be_bytes()));
    peer.feed(&wab).unwrap();
    // The count starts with the handshake (librtmp counts every byte read), so the 3 KiB already
    // received are acknowledged at once.
    assert_eq!(ack_of(peer.tap.take()), [peer.sent as u32]);
    // 300-byte inputs: an ack each time the total crosses another window since the last ack,
    // carrying the total received so far.
    let mut acks = Vec::new();
    for _ in 0..20 {
        peer.send(9, 0, 0, 9, Bytes::from(vec![0u8; 288])).unwrap();
        for ack in ack_of(peer.tap.take()) {
            assert_eq!(
                ack, peer.sent as u32,
                "sequence number = total bytes received"
            );
            acks.push(ack);
        }
    }
    assert!(acks.len() >= 5, "acks: {acks:?}");
    for pair in acks.windows(2) {
        assert!(pair[1] - pair[0] >= window, "one ack per window: {acks:?}");
    }
    assert!(peer.sent as u32 - acks.last().unwrap() < window);

    // Near the 32-bit wrap (4 GiB received): the sequence number wraps, acks keep coming.
    peer.server.set_bytes_received(u32::MAX - 500);
    let mut acks = Vec::new();
    for _ in 0..10 {
        peer.send(9, 0, 0, 9, Bytes::from(vec![0u8; 288])).unwrap();
        acks.extend(ack_of(peer.tap.take()));
    }
    assert!(acks.len() >= 2, "acks across the wrap: {acks:?}");
    assert!(acks[0] > u32::MAX - 500 || acks[0] < 3000, "{acks:?}");
    assert!(acks.iter().any(|&a| a < 3000), "wrapped: {acks:?}");
    for pair in acks.windows(2) {
        assert!(pair[1].wrapping_sub(pair[0]) >= window, "{acks:?}");
    }

    // The client side acks the server per the server's window too.
    let mut pair = Pair::with(
        ServerConfig {
            window_ack_size: 5000,
            ..ServerConfig::default()
        },
        ClientConfig::default(),
    );
    pair.playing("chan");
    pair.client.set_bytes_received(u32::MAX - 10_000);
    pair.to_server.take();
    for ts in 0..10 {
        let shared = encode_standalone(
            &media_raw_message(MediaKind::Video, ts, 1, Bytes::from(vec![0; 4000])),
            4096,
        );
        pair.deliver_to_client(&shared);
        pair.drive();
    }
    let acks = ack_of(pair.to_server.take());
    assert!(acks.len() >= 4, "client acks: {acks:?}");
    assert!(acks.iter().any(|&a| a < 40_000), "wrapped: {acks:?}");
    for pair in acks.windows(2) {
        assert!(pair[1].wrapping_sub(pair[0]) >= 5000, "{acks:?}");
    }
}

#[test]
fn extended_timestamps_across_0xffffff() {
    // 0xFFFFFF ms is 4 h 39 min (protocol-notes #1): every chunk of a multi-chunk message must
    // carry the extended timestamp, in both directions, and deltas must cross the u32 wrap.
    let timestamps = [
        0xFF_FFF0,
        0xFF_FFFE,
        0xFF_FFFF,
        0x100_0000,
        0x100_0021,
        u32::MAX - 5,
        3,
        40,
    ];
    let mut publisher = Pair::new();
    let stream = publisher.publishing("key");
    let payload = Bytes::from((0..10_000u32).map(|i| i as u8).collect::<Vec<u8>>());
    for &ts in &timestamps {
        publisher
            .client
            .send_media(MediaKind::Video, ts, payload.clone())
            .unwrap();
        publisher
            .client
            .send_media(MediaKind::Audio, ts, Bytes::from_static(&[0xAF, 1, 2]))
            .unwrap();
    }
    publisher.drive();
    let got: Vec<(MediaKind, u32)> = publisher
        .take_server_events()
        .into_iter()
        .map(|e| match e {
            ServerEvent::Media {
                stream: s,
                kind,
                timestamp,
                payload: p,
            } => {
                assert_eq!(s, stream);
                if kind == MediaKind::Video {
                    assert_eq!(p, payload);
                }
                (kind, timestamp)
            }
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    let want: Vec<(MediaKind, u32)> = timestamps
        .iter()
        .flat_map(|&ts| [(MediaKind::Video, ts), (MediaKind::Audio, ts)])
        .collect();
    assert_eq!(got, want);

    let mut player = Pair::new();
    let stream = player.playing("chan");
    player.take_client_events();
    for &ts in &timestamps {
        let shared = encode_standalone(
            &media_raw_message(MediaKind::Video, ts, stream, payload.clone()),
            4096,
        );
        player.deliver_to_client(&shared);
    }
    player.drive();
    let got: Vec<u32> = player
        .take_client_events()
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::Media {
                timestamp,
                payload: p,
                ..
            } => {
                assert_eq!(p, payload);
                Some(timestamp)
            }
            _ => None,
        })
        .collect();
    assert_eq!(got, timestamps);
}

#[test]
fn type_3_chunks_with_and_without_the_repeated_extended_timestamp() {
    // OBS's librtmp left the extended timestamp off type-3 chunks until 2024 (obs-studio PR
    // #10097); the spec repeats it. Hand-built: a 200-byte video message at ts 0x01000000,
    // chunked at the default 128.
    let body: Vec<u8> = (0..200u32).map(|i| (i % 251) as u8 + 1).collect();
    for repeated in [true, false] {
        let mut peer = RawPeer::new(ServerConfig::default());
        let stream = peer.publishing();
        let mut bytes = vec![
            0x06, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0xC8, 0x09, 1, 0, 0, 0, 0x01, 0, 0, 0,
        ];
        bytes.extend_from_slice(&body[..128]);
        bytes.push(0xC6);
        if repeated {
            bytes.extend_from_slice(&[0x01, 0, 0, 0]);
        }
        bytes.extend_from_slice(&body[128..]);
        peer.feed(&bytes).unwrap();
        assert_eq!(
            peer.take_events(),
            vec![ServerEvent::Media {
                stream,
                kind: MediaKind::Video,
                timestamp: 0x0100_0000,
                payload: Bytes::from(body.clone())
            }],
            "repeated: {repeated}"
        );
    }
}

#[test]
fn ping_heartbeat_and_idle_timeout() {
    let config = ServerConfig::default();
    let mut pair = Pair::with(config.clone(), ClientConfig::default());
    let start = pair.now;
    pair.connect();
    pair.to_client.take();
    pair.to_server.take();
    assert_eq!(
        pair.server.poll_timeout(),
        Some(start + config.ping_interval)
    );

    // Every ping_interval a PingRequest; the client answers, which keeps the connection alive.
    pair.advance(Duration::from_secs(35))
        .expect("a live client never times out");
    let pings: Vec<u32> = pair
        .to_client
        .take()
        .into_iter()
        .filter_map(|(_, m)| match m {
            Message::UserControl(UserControl::PingRequest(t)) => Some(t),
            _ => None,
        })
        .collect();
    assert_eq!(pings, [10_000, 20_000, 30_000]);
    let pongs: Vec<Message> = pair.to_server.take().into_iter().map(|(_, m)| m).collect();
    assert_eq!(
        pongs,
        pings
            .iter()
            .map(|&t| Message::UserControl(UserControl::PingResponse(t)))
            .collect::<Vec<_>>()
    );

    // The peer goes silent: pings continue until idle_timeout after its last byte.
    let last_input = pair.now - Duration::from_secs(5);
    let deadline = last_input + config.idle_timeout;
    let mut now = pair.now;
    let error = loop {
        let at = pair.server.poll_timeout().expect("a timer is armed");
        assert!(at <= deadline);
        now = now.max(at);
        match pair.server.handle_timeout(at) {
            Ok(()) => while pair.server.poll_output().is_some() {},
            Err(error) => break error,
        }
    };
    assert!(
        matches!(error, SessionError::TimedOut { idle } if idle == Duration::from_secs(30)),
        "{error}"
    );
    assert_eq!(now, deadline);
    assert_eq!(error.to_string(), "no bytes from the peer for 30s");
    assert!(matches!(
        pair.server.handle_input(now, b"x"),
        Err(SessionError::Closed)
    ));
    assert_eq!(pair.server.poll_timeout(), None);
}

#[test]
fn peer_ping_request_is_answered() {
    let mut peer = RawPeer::new(ServerConfig::default());
    peer.connect();
    peer.send(2, 0, 0, 4, Bytes::from_static(&[0, 6, 0, 0, 0x30, 0x39]))
        .unwrap();
    let replies: Vec<Message> = peer.tap.take().into_iter().map(|(_, m)| m).collect();
    assert_eq!(
        replies,
        [Message::UserControl(UserControl::PingResponse(12345))]
    );
}

/// Runs the client's timers up to `until` (the server's replies delivered by `drive`, or not
/// at all with `deliver` false); returns the PingRequest timestamps the client sent and the
/// error that stopped it, if any.
fn run_client_timers(
    pair: &mut Pair,
    until: Instant,
    deliver: bool,
) -> (Vec<u32>, Option<SessionError>) {
    pair.to_server.take();
    while let Some(at) = pair.client.poll_timeout().filter(|&at| at <= until) {
        pair.now = at;
        if let Err(e) = pair.client.handle_timeout(at) {
            return (pings_in(pair.to_server.take()), Some(e));
        }
        if deliver {
            pair.drive();
        } else {
            while let Some(out) = pair.client.poll_output() {
                if let ClientOutput::Transmit(bytes) = out {
                    pair.to_server.feed(&bytes);
                }
            }
        }
    }
    pair.now = until;
    (pings_in(pair.to_server.take()), None)
}

fn pings_in(messages: Vec<(RawMessage, Message)>) -> Vec<u32> {
    messages
        .into_iter()
        .filter_map(|(_, m)| match m {
            Message::UserControl(UserControl::PingRequest(t)) => Some(t),
            _ => None,
        })
        .collect()
}

#[test]
fn client_keepalive_pings_a_quiet_server_and_gives_up_on_a_silent_one() {
    // A server that never pings: only the client's keep-alive shows it is there.
    let server = ServerConfig {
        ping_interval: Duration::ZERO,
        ..ServerConfig::default()
    };
    let client = ClientConfig {
        keepalive: Duration::from_secs(3),
        idle_timeout: Duration::from_secs(10),
        ..ClientConfig::default()
    };
    let mut pair = Pair::with(server, client);
    let start = pair.now;
    assert_eq!(
        pair.client.poll_timeout(),
        Some(start + Duration::from_secs(10)),
        "before the handshake only the idle deadline runs: a ping would be read as C2"
    );
    pair.connect();
    let connected = pair.now;
    assert_eq!(
        pair.client.poll_timeout(),
        Some(connected + Duration::from_secs(3))
    );

    // The server answers each ping, which keeps the connection alive far past the timeout.
    let (pings, error) = run_client_timers(&mut pair, start + Duration::from_secs(31), true);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(
        pings,
        [
            3_000, 6_000, 9_000, 12_000, 15_000, 18_000, 21_000, 24_000, 27_000, 30_000
        ]
    );

    // Now it goes silent: pings every keepalive, then the timeout 10 s after its last byte.
    let last_input = start + Duration::from_secs(30);
    let (pings, error) = run_client_timers(&mut pair, start + Duration::from_secs(60), false);
    assert_eq!(pings, [33_000, 36_000, 39_000]);
    let error = error.expect("a silent server times out");
    assert!(
        matches!(error, SessionError::TimedOut { idle } if idle == Duration::from_secs(10)),
        "{error}"
    );
    assert_eq!(pair.now, last_input + Duration::from_secs(10));
    assert_eq!(pair.client.poll_timeout(), None);
    assert!(matches!(
        pair.client.handle_input(pair.now, b"x"),
        Err(SessionError::Closed)
    ));
}

#[test]
fn client_keepalive_waits_while_the_server_talks_and_zero_disables_the_timers() {
    let mut pair = Pair::new();
    pair.connect();
    let t0 = pair.now;
    // Bytes from the server push the keep-alive back: the server's ping at 10 s (the client
    // ran no timers meanwhile) moves it to 3 s after that.
    pair.advance(Duration::from_secs(10))
        .expect("the server pings");
    assert_eq!(
        pair.client.poll_timeout(),
        Some(t0 + Duration::from_secs(13)),
        "the keep-alive counts from the last byte received"
    );

    let off = ClientConfig {
        keepalive: Duration::ZERO,
        idle_timeout: Duration::ZERO,
        ..ClientConfig::default()
    };
    let mut pair = Pair::with(ServerConfig::default(), off);
    pair.connect();
    assert_eq!(pair.client.poll_timeout(), None);
}

#[test]
fn handshake_timeout() {
    let config = ServerConfig::default();
    let start = Instant::now();
    let mut server = ServerSession::new(config.clone(), start, [0; 1528]);
    assert_eq!(server.poll_timeout(), Some(start + Duration::from_secs(10)));
    server
        .handle_input(start + Duration::from_secs(1), &[3; 700])
        .unwrap();
    assert!(
        server.poll_output().is_none(),
        "C1 incomplete: nothing to send yet"
    );
    assert_eq!(
        server.poll_timeout(),
        Some(start + Duration::from_secs(10)),
        "input does not extend the handshake deadline"
    );
    server
        .handle_timeout(start + Duration::from_secs(9))
        .unwrap();
    let error = server
        .handle_timeout(start + Duration::from_secs(10))
        .unwrap_err();
    assert!(
        matches!(error, SessionError::HandshakeTimedOut { after } if after == Duration::from_secs(10))
    );
    assert_eq!(
        error.to_string(),
        "handshake and connect not finished within 10s"
    );

    // A bad version byte is a typed error, and the session stays failed.
    let mut server = ServerSession::new(config, start, [0; 1528]);
    let error = server.handle_input(start, &[6; 1537]).unwrap_err();
    assert!(matches!(error, SessionError::Handshake(_)), "{error}");
    assert!(matches!(
        server.handle_input(start, &[3]),
        Err(SessionError::Closed)
    ));
}

#[test]
fn connect_must_arrive_within_the_handshake_timeout() {
    let mut peer = RawPeer::new(ServerConfig::default());
    let start = peer.now;
    assert_eq!(
        peer.server.poll_timeout(),
        Some(start + Duration::from_secs(10)),
        "after the handshake the deadline still stands until connect"
    );
    let error = peer
        .server
        .handle_timeout(start + Duration::from_secs(10))
        .unwrap_err();
    assert!(
        matches!(error, SessionError::HandshakeTimedOut { .. }),
        "{error}"
    );

    let mut peer = RawPeer::new(ServerConfig::default());
    peer.connect();
    peer.server
        .handle_timeout(peer.now + Duration::from_secs(10))
        .expect("a connected peer is not timed out by the handshake deadline");
}

#[test]
fn enhanced_rtmp_connect_caps_answered() {
    let mut peer = RawPeer::new(ServerConfig::default());
    peer.connect_with(vec![
        (
            "fourCcList".to_owned(),
            Value::StrictArray(vec!["av01".into(), "hvc1".into(), "avc1".into()]),
        ),
        (
            "videoFourCcInfoMap".to_owned(),
            Value::object([("hvc1", Value::Number(3.0))]),
        ),
        ("capsEx".to_owned(), 15.0.into()),
    ]);
    let result = commands(&peer.tap.take()).remove(0);
    let props = &result.command_object;
    assert_eq!(
        props.get("fourCcList"),
        Some(&Value::StrictArray(vec!["*".into()]))
    );
    assert_eq!(
        props.get("videoFourCcInfoMap"),
        Some(&Value::object([("*", Value::Number(4.0))]))
    );
    assert_eq!(
        props.get("audioFourCcInfoMap"),
        Some(&Value::object([("*", Value::Number(4.0))]))
    );
    assert_eq!(
        props.get("capsEx"),
        Some(&Value::Number(14.0)),
        "no Reconnect: we never ask for one"
    );
    match &peer.take_events()[..] {
        [
            ServerEvent::Connected {
                four_cc_list,
                caps_ex,
                ..
            },
        ] => {
            assert_eq!(four_cc_list, &["av01", "hvc1", "avc1"]);
            assert_eq!(*caps_ex, Some(15));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn unknown_command_gets_error() {
    let mut peer = RawPeer::new(ServerConfig::default());
    peer.command(0, "createStream", 7.0, &[Value::Null]);
    let replies = commands(&peer.tap.take());
    assert_eq!(
        (replies[0].name.as_str(), replies[0].code()),
        ("_error", Some("NetConnection.Call.Failed"))
    );
    peer.connect();
    peer.command(0, "someVendorCall", 5.0, &[Value::Null, "x".into()]);
    let replies = commands(&peer.tap.take());
    assert_eq!(replies.len(), 1);
    assert_eq!(
        (replies[0].name.as_str(), replies[0].transaction_id),
        ("_error", 5.0)
    );
    assert_eq!(replies[0].info("level"), Some("error"));
    assert_eq!(replies[0].code(), Some("NetConnection.Call.Failed"));
    peer.command(0, "someVendorCall", 0.0, &[Value::Null]);
    assert!(peer.tap.take().is_empty(), "transaction 0 wants no answer");
    // getStreamLength and FCSubscribe (players, §4.6) are known.
    peer.command(0, "getStreamLength", 8.0, &[Value::Null, "chan".into()]);
    peer.command(0, "FCSubscribe", 9.0, &[Value::Null, "chan".into()]);
    let replies = commands(&peer.tap.take());
    assert_eq!(
        (replies[0].transaction_id, &replies[0].args[0]),
        (8.0, &Value::Number(0.0))
    );
    assert_eq!(
        (replies[1].name.as_str(), replies[1].transaction_id),
        ("_result", 9.0)
    );
    assert_eq!(replies[2].name, "onFCSubscribe");
    assert!(peer.take_events().is_empty());
}

#[test]
fn peer_set_chunk_size_applies_immediately() {
    let mut peer = RawPeer::new(ServerConfig::default());
    let mut burst = BytesMut::new();
    burst.extend_from_slice(&peer.encode(2, 0, 0, 1, Bytes::from_static(&[0, 0, 0x10, 0])));
    peer.encoder.set_chunk_size(4096);
    let long_app = "a".repeat(1000);
    burst.extend_from_slice(&peer.command_bytes(
        0,
        "connect",
        1.0,
        &[Value::object([("app", Value::from(long_app.as_str()))])],
    ));
    peer.feed(&burst).unwrap();
    assert!(
        matches!(&peer.take_events()[..], [ServerEvent::Connected { app, .. }] if *app == long_app)
    );

    let bad = peer.encode(2, 0, 0, 1, Bytes::from_static(&[0, 0, 0, 0]));
    let error = peer.feed(&bad).unwrap_err();
    assert!(
        matches!(error, SessionError::ChunkSize { size: 0, .. }),
        "{error}"
    );
}

#[test]
fn client_digest_and_simple_handshakes() {
    for digest in [true, false] {
        let mut pair = Pair::with(
            ServerConfig::default(),
            ClientConfig {
                digest_handshake: digest,
                ..ClientConfig::default()
            },
        );
        pair.connect();
        let kind = pair.server.handshake_kind();
        assert_eq!(
            matches!(kind, Some(HandshakeKind::Digest { .. })),
            digest,
            "{kind:?}"
        );
        assert_eq!(
            matches!(kind, Some(HandshakeKind::Simple)),
            !digest,
            "{kind:?}"
        );
    }
}

fn publish_scenario(split: usize) -> (u32, Vec<ServerEvent>) {
    let mut pair = Pair::new();
    pair.split = split;
    let stream = pair.publishing("key");
    pair.client.send_metadata(on_metadata());
    for ts in [0, 0xFF_FFFF, 0x100_0000] {
        pair.client
            .send_media(MediaKind::Video, ts, Bytes::from(vec![7; 5000]))
            .unwrap();
    }
    pair.client.close();
    pair.drive();
    (stream, pair.take_server_events())
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    #[test]
    fn any_split_size_gives_the_same_events(split in 1usize..6000) {
        proptest::prop_assert_eq!(publish_scenario(split), publish_scenario(usize::MAX));
    }
}

#[test]
fn any_split_of_the_stream_gives_the_same_events() {
    let run = publish_scenario;
    let whole = run(usize::MAX);
    assert_eq!(whole.1.len(), 5);
    for split in [1, 2, 7, 128, 4097] {
        assert_eq!(run(split), whole, "split {split}");
    }
}

/// What FFmpeg writes when publishing (`ffmpeg -f flv rtmp://127.0.0.1:1935/live/key`), built by
/// hand from the spec: fmt-0 connect split at the default 128-byte chunk size with a type-3
/// continuation, then releaseStream/FCPublish/createStream with type-1 headers on csid 3, then
/// publish on csid 8, message stream 1.
#[test]
fn ffmpeg_like_bytes_are_understood() {
    let script = [
        // C0 + C1 + C2 (simple handshake: zero version field)
        &format!("03{}", "00".repeat(1536 * 2)),
        // connect(1, {app, type, flashVer, tcUrl}) — 138 bytes, chunked at 128
        "0300000000008a1400000000020007636f6e6e656374003ff00000000000000300036170700200046c6976650004\
         7479706502000a6e6f6e707269766174650008666c617368566572020023464d4c452f332e302028636f6d7061746962\
         6c653b204c61766636312e372e313030290005746355726c02001a72746d703a2f2f3132372e302e302e313a3139c333\
         352f6c697665000009",
        // releaseStream(2, null, "key"), FCPublish(3, null, "key"), createStream(4, null)
        "4300000000002014\
         02000d72656c6561736553747265616d004000000000000000050200036b6579",
        "430000000000 1c14\
         02000946435075626c697368004008000000000000050200036b6579",
        "4300000000001914\
         02000c63726561746553747265616d00401000000000000005",
        // publish(5, null, "key", "live") on message stream 1
        "0800000000002114010000000200077075626c697368004014000000000000050200036b65790200046c697665",
    ];
    let now = Instant::now();
    let mut server = ServerSession::new(ServerConfig::default(), now, [9; 1528]);
    let mut tap = Tap::new();
    let mut events = Vec::new();
    for step in script {
        let bytes = hex::decode(step.replace(' ', "")).expect("valid hex");
        server.handle_input(now, &bytes).expect("accepted");
        while let Some(out) = server.poll_output() {
            match out {
                ServerOutput::Transmit(bytes) => tap.feed(&bytes),
                ServerOutput::Event(event) => events.push(event),
            }
        }
    }
    assert_eq!(server.handshake_kind(), Some(HandshakeKind::Simple));
    match &events[..] {
        [
            ServerEvent::Connected { app, flash_ver, .. },
            ServerEvent::PublishRequested {
                stream: 1,
                key,
                mode,
                ..
            },
        ] => {
            assert_eq!(app, "live");
            assert_eq!(
                flash_ver.as_deref(),
                Some("FMLE/3.0 (compatible; Lavf61.7.100)")
            );
            assert_eq!((key.as_str(), mode.as_str()), ("key", "live"));
        }
        other => panic!("unexpected events {other:?}"),
    }
    let replies = commands(&tap.take());
    let txs: Vec<f64> = replies.iter().map(|c| c.transaction_id).collect();
    assert_eq!(txs, [1.0, 2.0, 3.0, 4.0]);
    assert_eq!(replies[3].args[0], Value::Number(1.0));
}

#[test]
fn peer_errors_are_typed_and_final() {
    // A chunk on an unknown csid with a type-3 header has no previous header to inherit.
    let mut peer = RawPeer::new(ServerConfig::default());
    let error = peer.feed(&[0xC9, 1, 2, 3]).unwrap_err();
    assert!(matches!(error, SessionError::Chunk(_)), "{error}");
    assert!(matches!(peer.feed(&[0]), Err(SessionError::Closed)));

    // A command whose name is not a string.
    let mut peer = RawPeer::new(ServerConfig::default());
    let error = peer.send(3, 0, 0, 20, amf(&[1.0.into()])).unwrap_err();
    assert!(
        matches!(
            error,
            SessionError::Message {
                type_id: 20,
                csid: 3,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn recorded_play_controls_from_our_client() {
    let mut pair = Pair::new();
    pair.connect();
    pair.client.play_range("vod-7", 30_000.0, 10_000.0);
    pair.drive();
    let request = match pair.take_server_events()[..] {
        [
            ServerEvent::PlayRequested {
                request,
                start,
                duration,
                ref name,
                ..
            },
            ServerEvent::BufferLength { .. },
        ] => {
            assert_eq!(
                (name.as_str(), start, duration),
                ("vod-7", 30_000.0, 10_000.0)
            );
            request
        }
        ref other => panic!("expected PlayRequested, got {other:?}"),
    };
    assert!(pair.server.accept_play(request));
    pair.drive();
    let stream = pair.server.media_stream_id().expect("a play stream");
    pair.take_client_events();

    pair.client.pause(true, 31_250.0);
    pair.client.pause(false, 31_250.0);
    pair.client.seek(45_000.0);
    pair.client.receive_audio(false);
    pair.client.receive_video(false);
    pair.drive();
    assert_eq!(
        pair.take_server_events(),
        vec![
            ServerEvent::Paused {
                stream,
                paused: true,
                position_ms: 31_250.0
            },
            ServerEvent::Paused {
                stream,
                paused: false,
                position_ms: 31_250.0
            },
            ServerEvent::Seek {
                stream,
                position_ms: 45_000.0
            },
            ServerEvent::ReceiveAudio {
                stream,
                enabled: false
            },
            ServerEvent::ReceiveVideo {
                stream,
                enabled: false
            },
        ]
    );
    pair.server
        .restart_play(stream, "Started playing vod-7 at 44000 ms.");
    pair.drive();
    let codes: Vec<_> = pair
        .take_client_events()
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::Status { code, .. } => Some(code),
            ClientEvent::PlayStarted => Some("started".to_owned()),
            _ => None,
        })
        .collect();
    assert_eq!(
        codes,
        [
            "NetStream.Pause.Notify",
            "NetStream.Unpause.Notify",
            "NetStream.Seek.Notify",
            "started"
        ]
    );

    pair.server.complete_play(stream, "Stopped playing vod-7.");
    pair.drive();
    assert_eq!(
        pair.take_client_events(),
        [
            ClientEvent::Status {
                level: "status".into(),
                code: "NetStream.Play.Stop".into(),
                description: "Stopped playing vod-7.".into()
            },
            ClientEvent::PlayStatus {
                level: "status".into(),
                code: "NetStream.Play.Complete".into()
            },
            ClientEvent::StreamEof,
        ]
    );
    // The play stream outlives its end: a seek back is still answered.
    pair.client.seek(0.0);
    pair.drive();
    assert_eq!(
        pair.take_server_events(),
        vec![ServerEvent::Seek {
            stream,
            position_ms: 0.0
        }]
    );
}

#[test]
fn stream_commands_before_a_play_are_not_sent() {
    let mut pair = Pair::new();
    pair.connect();
    pair.to_server.take();
    pair.client.pause(true, 0.0);
    pair.client.seek(1000.0);
    pair.drive();
    assert!(commands(&pair.to_server.take()).is_empty());
    assert!(pair.take_server_events().is_empty());
}

#[test]
fn play_statuses_do_not_echo_the_name_query() {
    let mut pair = Pair::new();
    pair.playing("7?token=s3cret");
    let descriptions: Vec<_> = status_codes(&pair.to_client.take());
    assert!(descriptions.contains(&"NetStream.Play.Start".to_owned()));
    let events = pair.take_client_events();
    let echoed: Vec<_> = events
        .iter()
        .filter(|e| format!("{e:?}").contains("s3cret"))
        .collect();
    assert!(echoed.is_empty(), "{echoed:?}");
    assert!(
        events.iter().any(|e| matches!(
            e,
            ClientEvent::Status { description, .. } if description == "Playing and resetting 7."
        )),
        "{events:?}"
    );
}
