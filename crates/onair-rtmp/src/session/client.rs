//! The client side of an RTMP connection, publishing like OBS or playing like FFmpeg
//! (protocol-notes §4.5–4.6). Used by the `onair publish` / `onair play` CLI and the tests.

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use onair_amf::Value;
use onair_media::MediaKind;
use tracing::{debug, trace};

use super::{
    CSID_COMMAND, CSID_CONTROL, CSID_STREAM, Link, Queued, SessionError, TYPE_AGGREGATE,
    TYPE_AUDIO, TYPE_DATA_AMF0, TYPE_DATA_AMF3, TYPE_VIDEO, media_csid, metadata_body,
    status_fields,
};
use crate::chunk::RawMessage;
use crate::handshake::{ClientHandshake, ClientHandshakeKind};
use crate::limits::RtmpLimits;
use crate::message::{Message, UserControl, split_aggregate};

/// The transaction id of `connect` (RTMP 1.0 §7.2.1.1: "Always set to 1").
const CONNECT_TRANSACTION: f64 = 1.0;
/// The buffer we announce when playing, as FFmpeg's default `rtmp_buffer` (3 s).
const PLAY_BUFFER_MS: u32 = 3000;

/// Settings for a [`ClientSession`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// The application, `live` in `rtmp://host/live/key`.
    pub app: String,
    /// The URL of the application, `rtmp://host/live`.
    pub tc_url: String,
    /// Our outgoing chunk size, announced right after the handshake.
    pub chunk_size: u32,
    /// Bounds on the server's chunk stream.
    pub limits: RtmpLimits,
    /// The `flashVer` we announce.
    pub flash_ver: String,
    /// Use the digest (Flash Player 9) handshake, as OBS and FFmpeg do, instead of the simple one.
    pub digest_handshake: bool,
    /// Send a User Control PingRequest after this long without a byte from the server, so a
    /// quiet but live server proves it is there (ours, nginx-rtmp and SRS answer); zero
    /// disables. Keep it well under `idle_timeout`.
    pub keepalive: Duration,
    /// A server that sends nothing at all for this long is gone ([`SessionError::TimedOut`]
    /// from [`ClientSession::handle_timeout`]); zero disables.
    pub idle_timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            app: "live".to_owned(),
            tc_url: "rtmp://127.0.0.1:1935/live".to_owned(),
            chunk_size: 4096,
            limits: RtmpLimits::default(),
            // What OBS sends; servers use it to recognise encoders.
            flash_ver: "FMLE/3.0 (compatible; FMSc/1.0)".to_owned(),
            digest_handshake: true,
            // A third of the idle timeout: a ping and its answer get two chances to cross a
            // congested link before the connection is declared dead.
            keepalive: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(10),
        }
    }
}

/// What a [`ClientSession`] asks its driver to do.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientOutput {
    /// Bytes to write to the server, in order. Never empty.
    Transmit(Bytes),
    /// Something happened.
    Event(ClientEvent),
}

/// Events from a [`ClientSession`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The server accepted `connect`; [`ClientSession::publish`] or [`ClientSession::play`] now.
    Connected,
    /// `NetStream.Publish.Start`: [`ClientSession::send_media`] may be used.
    PublishStarted,
    /// `NetStream.Play.Start`: media follows.
    PlayStarted,
    /// Any other status the server sent (`NetStream.Play.Reset`, `NetStream.Unpublish.Success`, …).
    Status {
        /// `status` or `warning`.
        level: String,
        /// The status code.
        code: String,
        /// The server's description.
        description: String,
    },
    /// The server refused connect, publish or play (an error-level status or `_error`).
    Rejected {
        /// The status code, e.g. `NetStream.Publish.BadName`.
        code: String,
        /// The server's reason.
        description: String,
    },
    /// An audio or video message from the server.
    Media {
        /// Audio or video.
        kind: MediaKind,
        /// The message timestamp.
        timestamp: u32,
        /// The FLV tag body.
        payload: Bytes,
    },
    /// `onMetaData` from the server (`@setDataFrame` stripped if present).
    Metadata {
        /// The message timestamp.
        timestamp: u32,
        /// AMF0 `"onMetaData"` followed by the object.
        payload: Bytes,
    },
    /// User Control StreamEOF: the server stopped sending the stream.
    StreamEof,
    /// An `onPlayStatus` data message, e.g. `NetStream.Play.Complete` at the end of a
    /// recorded stream (FMS sends it as data, not as an `onStatus` command).
    PlayStatus {
        /// `status` or `warning`.
        level: String,
        /// The status code.
        code: String,
    },
    /// `NetStream.Play.UnpublishNotify`: the publisher went away.
    UnpublishNotify,
}

/// `base + d`, or `None` when `d` is zero (the timer is disabled) or out of range.
fn after(base: Instant, d: Duration) -> Option<Instant> {
    if d.is_zero() {
        None
    } else {
        base.checked_add(d)
    }
}

/// What the client was asked to do once connected.
#[derive(Debug, Clone)]
enum Intent {
    Publish(String),
    Play {
        name: String,
        start: f64,
        duration: f64,
    },
}

/// What the client's stream is doing.
#[derive(Debug)]
enum Role {
    Idle,
    /// createStream sent with this transaction id.
    Creating {
        transaction_id: f64,
        intent: Intent,
    },
    Publishing {
        stream: u32,
        key: String,
        started: bool,
    },
    Playing {
        stream: u32,
        started: bool,
    },
}

/// The sans-IO client side of one RTMP connection.
///
/// ```
/// use std::time::Instant;
/// use onair_rtmp::session::{ClientConfig, ClientOutput, ClientSession};
///
/// let mut client = ClientSession::new(ClientConfig::default(), Instant::now(), [3; 1528]);
/// client.publish("key"); // sent once the server accepted `connect`
/// match client.poll_output() {
///     Some(ClientOutput::Transmit(c0c1)) => assert_eq!(c0c1.len(), 1 + 1536),
///     other => panic!("expected C0+C1, got {other:?}"),
/// }
/// ```
pub struct ClientSession {
    config: ClientConfig,
    handshake: ClientHandshake,
    handshake_done: bool,
    link: Link<ClientEvent>,
    failed: bool,
    connected: bool,
    next_transaction: f64,
    intent: Option<Intent>,
    role: Role,
    /// The last Window Acknowledgement Size we sent (answering Set Peer Bandwidth, §5.4.5).
    window_sent: Option<u32>,
    /// When the session began: the epoch of our PingRequest timestamps.
    started: Instant,
    /// When the last byte from the server arrived (the start, before any).
    last_input: Instant,
    /// When we last sent a keep-alive PingRequest.
    last_ping: Option<Instant>,
}

impl std::fmt::Debug for ClientSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSession")
            .field("handshake_done", &self.handshake_done)
            .field("failed", &self.failed)
            .field("connected", &self.connected)
            .field("link", &self.link)
            .finish_non_exhaustive()
    }
}

impl ClientSession {
    /// A session for a freshly opened connection; [`poll_output`](Self::poll_output) yields
    /// C0+C1 at once. `random` fills the C1/C2 bodies.
    pub fn new(config: ClientConfig, now: Instant, random: [u8; 1528]) -> Self {
        let kind = if config.digest_handshake {
            ClientHandshakeKind::Digest
        } else {
            ClientHandshakeKind::Simple
        };
        let mut session = ClientSession {
            link: Link::new(config.limits.clone()),
            handshake: ClientHandshake::new(random, 0, kind),
            config,
            handshake_done: false,
            failed: false,
            connected: false,
            next_transaction: CONNECT_TRANSACTION + 1.0,
            intent: None,
            role: Role::Idle,
            window_sent: None,
            started: now,
            last_input: now,
            last_ping: None,
        };
        while let Some(bytes) = session.handshake.poll_transmit() {
            session.link.queue_bytes(bytes);
        }
        session
    }

    /// Feeds bytes read from the server; any split works. On `Err` close the connection.
    pub fn handle_input(&mut self, now: Instant, buf: &[u8]) -> Result<(), SessionError> {
        if self.failed {
            return Err(SessionError::Closed);
        }
        if !buf.is_empty() {
            self.last_input = now;
        }
        let result = self.handle_input_inner(buf);
        self.failed = result.is_err();
        result
    }

    fn handle_input_inner(&mut self, buf: &[u8]) -> Result<(), SessionError> {
        if buf.is_empty() {
            return Ok(());
        }
        self.link.count_received(buf.len());
        let mut rest = buf;
        if !self.handshake_done {
            match self.link.feed_handshake(&mut self.handshake, rest)? {
                Some(after) => rest = after,
                None => return Ok(()),
            }
            self.handshake_done = true;
            self.start_connect();
        }
        self.link.inbuf.extend_from_slice(rest);
        while let Some(raw) = self.link.decoder.decode(&mut self.link.inbuf)? {
            self.handle_message(raw)?;
        }
        self.link.ack_if_due();
        Ok(())
    }

    /// The next output, if any. Drain it after every call that takes `&mut self`.
    pub fn poll_output(&mut self) -> Option<ClientOutput> {
        self.link.poll().map(|out| match out {
            Queued::Transmit(bytes) => ClientOutput::Transmit(bytes),
            Queued::Event(event) => ClientOutput::Event(event),
        })
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next: the keep-alive ping or
    /// the idle deadline, whichever is first. `None` once the session failed or with both
    /// timers disabled.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.failed {
            return None;
        }
        [self.keepalive_due(), self.idle_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Runs the timers: a PingRequest when the server has been quiet for
    /// [`ClientConfig::keepalive`] (and again every `keepalive` while it stays quiet), and
    /// [`SessionError::TimedOut`] once it has sent nothing for
    /// [`ClientConfig::idle_timeout`]. After an `Err` close the connection.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), SessionError> {
        if self.failed {
            return Err(SessionError::Closed);
        }
        if self.idle_deadline().is_some_and(|deadline| now >= deadline) {
            self.failed = true;
            return Err(SessionError::TimedOut {
                idle: self.config.idle_timeout,
            });
        }
        // Before the handshake is done a ping would be bytes the server reads as C2.
        if self.handshake_done && self.keepalive_due().is_some_and(|at| now >= at) {
            // Our session time in ms (RTMP 1.0 §7.1.7); it wraps, the server only echoes it.
            let millis = now.saturating_duration_since(self.started).as_millis() as u32;
            self.link.send_message(
                CSID_CONTROL,
                0,
                &Message::UserControl(UserControl::PingRequest(millis)),
            );
            self.last_ping = Some(now);
        }
        Ok(())
    }

    fn idle_deadline(&self) -> Option<Instant> {
        after(self.last_input, self.config.idle_timeout)
    }

    /// `keepalive` after the later of the last input and the last ping, once the handshake
    /// is done.
    fn keepalive_due(&self) -> Option<Instant> {
        if !self.handshake_done {
            return None;
        }
        let base = self
            .last_ping
            .map_or(self.last_input, |p| p.max(self.last_input));
        after(base, self.config.keepalive)
    }

    /// Publishes `key` in `live` mode, the way OBS does: `releaseStream`, `FCPublish` and
    /// `createStream` pipelined, then `publish(key, "live")` on the new stream.
    /// [`ClientEvent::PublishStarted`] follows when the server accepts. Called before
    /// [`ClientEvent::Connected`], it runs once connected.
    pub fn publish(&mut self, key: &str) {
        self.start(Intent::Publish(key.to_owned()));
    }

    /// Plays `name` the way FFmpeg does: `createStream`, then `play(name, -2, -1)` and
    /// SetBufferLength. [`ClientEvent::PlayStarted`] follows.
    pub fn play(&mut self, name: &str) {
        self.play_range(name, -2.0, -1.0);
    }

    /// Plays `name` from `start` ms for `duration` ms (RTMP 1.0 §7.2.2.1: `start` -2 live or
    /// recorded, -1 live only, ≥ 0 a position in a recorded stream; `duration` -1 to the end).
    pub fn play_range(&mut self, name: &str, start: f64, duration: f64) {
        self.start(Intent::Play {
            name: name.to_owned(),
            start,
            duration,
        });
    }

    /// Pauses (`paused` true) or resumes the play at `position_ms`, the player's current
    /// position, as Flash's `NetStream.pause`/`resume` send it. The server answers
    /// `NetStream.Pause.Notify` / `NetStream.Unpause.Notify` (as [`ClientEvent::Status`]).
    /// Ignored when not playing.
    pub fn pause(&mut self, paused: bool, position_ms: f64) {
        self.stream_command("pause", &[paused.into(), position_ms.into()]);
    }

    /// Asks a recorded play to continue from `position_ms`: the server answers
    /// `NetStream.Seek.Notify` and `NetStream.Play.Start`, and media restarts at the keyframe
    /// at or before it. Ignored when not playing.
    pub fn seek(&mut self, position_ms: f64) {
        self.stream_command("seek", &[position_ms.into()]);
    }

    /// Turns audio of the play on or off (`receiveAudio`). Ignored when not playing.
    pub fn receive_audio(&mut self, enabled: bool) {
        self.stream_command("receiveAudio", &[enabled.into()]);
    }

    /// Turns video of the play on or off (`receiveVideo`); switched back on, video resumes at
    /// the next keyframe. Ignored when not playing.
    pub fn receive_video(&mut self, enabled: bool) {
        self.stream_command("receiveVideo", &[enabled.into()]);
    }

    /// A NetStream command on the play stream, transaction 0 as Flash sends these (no reply).
    fn stream_command(&mut self, name: &str, args: &[Value]) {
        let Role::Playing { stream, .. } = self.role else {
            debug!(name, "not playing: command dropped");
            return;
        };
        let mut values = vec![Value::from(name), 0.0.into(), Value::Null];
        values.extend_from_slice(args);
        self.link.send_command(CSID_STREAM, stream, &values);
    }

    /// Sends one audio or video message (or script data for [`MediaKind::Script`]) on the publish
    /// stream. Fails with [`SessionError::NotPublishing`] before
    /// [`ClientEvent::PublishStarted`].
    pub fn send_media(
        &mut self,
        kind: MediaKind,
        timestamp: u32,
        payload: Bytes,
    ) -> Result<(), SessionError> {
        if self.failed {
            return Err(SessionError::Closed);
        }
        let Role::Publishing {
            stream,
            started: true,
            ..
        } = self.role
        else {
            return Err(SessionError::NotPublishing { kind });
        };
        self.link.send_raw(
            media_csid(kind),
            stream,
            timestamp,
            kind.tag_type(),
            payload,
        );
        Ok(())
    }

    /// Sends stream metadata (`payload` = AMF0 `"onMetaData"` + object) as
    /// `@setDataFrame("onMetaData", …)`, as OBS and FFmpeg do. Dropped (debug log) before
    /// [`ClientEvent::PublishStarted`].
    pub fn send_metadata(&mut self, payload: Bytes) {
        let Role::Publishing {
            stream,
            started: true,
            ..
        } = self.role
        else {
            debug!("metadata before the publish started: dropped");
            return;
        };
        let prefix = Value::from("@setDataFrame");
        let mut body = BytesMut::with_capacity(prefix.encoded_len() + payload.len());
        let mut head = Vec::with_capacity(prefix.encoded_len());
        prefix.encode(&mut head);
        body.put_slice(&head);
        body.put_slice(&payload);
        self.link.send_raw(
            media_csid(MediaKind::Script),
            stream,
            0,
            TYPE_DATA_AMF0,
            body.freeze(),
        );
    }

    /// Ends the publish (`FCUnpublish` + `deleteStream`) or play (`deleteStream`). Write the
    /// queued bytes, then close the connection.
    pub fn close(&mut self) {
        match std::mem::replace(&mut self.role, Role::Idle) {
            Role::Publishing { stream, key, .. } => {
                let tx = self.transaction();
                self.link.send_command(
                    CSID_COMMAND,
                    0,
                    &["FCUnpublish".into(), tx.into(), Value::Null, key.into()],
                );
                self.delete_stream(stream);
            }
            Role::Playing { stream, .. } => self.delete_stream(stream),
            Role::Idle | Role::Creating { .. } => {}
        }
        self.intent = None;
    }

    /// Bytes of server input held while waiting for the rest of a chunk.
    pub fn buffered_len(&self) -> usize {
        self.link.buffered_len()
    }

    fn delete_stream(&mut self, stream: u32) {
        let tx = self.transaction();
        self.link.send_command(
            CSID_STREAM,
            stream,
            &[
                "deleteStream".into(),
                tx.into(),
                Value::Null,
                f64::from(stream).into(),
            ],
        );
    }

    fn transaction(&mut self) -> f64 {
        let tx = self.next_transaction;
        self.next_transaction += 1.0;
        tx
    }

    fn start(&mut self, intent: Intent) {
        if self.connected && matches!(self.role, Role::Idle) {
            self.begin(intent);
        } else {
            self.intent = Some(intent);
        }
    }

    /// After the handshake: our chunk size first (the server applies it to the next chunk, and
    /// `connect` or metadata may exceed 128 bytes), then `connect`.
    fn start_connect(&mut self) {
        let chunk_size = self.config.chunk_size;
        self.link
            .send_message(CSID_CONTROL, 0, &Message::SetChunkSize(chunk_size));
        self.link.encoder.set_chunk_size(chunk_size);
        let object = Value::object([
            ("app", Value::from(self.config.app.as_str())),
            ("type", "nonprivate".into()),
            ("flashVer", self.config.flash_ver.as_str().into()),
            ("tcUrl", self.config.tc_url.as_str().into()),
            ("objectEncoding", 0.0.into()),
        ]);
        self.link.send_command(
            CSID_COMMAND,
            0,
            &["connect".into(), CONNECT_TRANSACTION.into(), object],
        );
    }

    fn begin(&mut self, intent: Intent) {
        if let Intent::Publish(key) = &intent {
            // OBS pipelines these without waiting for replies (protocol-notes §4.5 step 2).
            for name in ["releaseStream", "FCPublish"] {
                let tx = self.transaction();
                self.link.send_command(
                    CSID_COMMAND,
                    0,
                    &[name.into(), tx.into(), Value::Null, key.as_str().into()],
                );
            }
        }
        let transaction_id = self.transaction();
        self.link.send_command(
            CSID_COMMAND,
            0,
            &["createStream".into(), transaction_id.into(), Value::Null],
        );
        self.role = Role::Creating {
            transaction_id,
            intent,
        };
    }

    fn on_stream_created(&mut self, stream: u32, intent: Intent) {
        match intent {
            Intent::Publish(key) => {
                self.link.send_command(
                    CSID_STREAM,
                    stream,
                    &[
                        "publish".into(),
                        0.0.into(),
                        Value::Null,
                        key.as_str().into(),
                        "live".into(),
                    ],
                );
                self.role = Role::Publishing {
                    stream,
                    key,
                    started: false,
                };
            }
            Intent::Play {
                name,
                start,
                duration,
            } => {
                self.link.send_command(
                    CSID_STREAM,
                    stream,
                    &[
                        "play".into(),
                        0.0.into(),
                        Value::Null,
                        name.into(),
                        start.into(),
                        duration.into(),
                    ],
                );
                self.link.send_message(
                    CSID_CONTROL,
                    0,
                    &Message::UserControl(UserControl::SetBufferLength {
                        stream_id: stream,
                        buffer_ms: PLAY_BUFFER_MS,
                    }),
                );
                self.role = Role::Playing {
                    stream,
                    started: false,
                };
            }
        }
    }

    fn handle_message(&mut self, raw: RawMessage) -> Result<(), SessionError> {
        match raw.type_id {
            TYPE_AUDIO | TYPE_VIDEO => self.on_media(raw),
            TYPE_DATA_AMF0 | TYPE_DATA_AMF3 => self.on_data(&raw),
            TYPE_AGGREGATE => {
                let parts = split_aggregate(&raw).map_err(|source| SessionError::Message {
                    type_id: raw.type_id,
                    csid: raw.csid,
                    source,
                })?;
                for part in parts {
                    match part.type_id {
                        TYPE_AUDIO | TYPE_VIDEO => self.on_media(part),
                        TYPE_DATA_AMF0 => self.on_data(&part),
                        other => trace!(type_id = other, "aggregate: ignoring sub-message"),
                    }
                }
            }
            _ => {
                let message = Message::decode(&raw).map_err(|source| SessionError::Message {
                    type_id: raw.type_id,
                    csid: raw.csid,
                    source,
                })?;
                self.on_message(message)?;
            }
        }
        Ok(())
    }

    fn on_media(&mut self, raw: RawMessage) {
        let kind = if raw.type_id == TYPE_AUDIO {
            MediaKind::Audio
        } else {
            MediaKind::Video
        };
        self.link.push_event(ClientEvent::Media {
            kind,
            timestamp: raw.timestamp,
            payload: raw.payload,
        });
    }

    fn on_data(&mut self, raw: &RawMessage) {
        if let Some((level, code)) = play_status(raw) {
            self.link
                .push_event(ClientEvent::PlayStatus { level, code });
        } else if let Some(payload) = metadata_body(raw.type_id, &raw.payload) {
            self.link.push_event(ClientEvent::Metadata {
                timestamp: raw.timestamp,
                payload,
            });
        } else {
            // `|RtmpSampleAccess` and friends.
            trace!("ignoring a data message that is not onMetaData");
        }
    }

    fn on_message(&mut self, message: Message) -> Result<(), SessionError> {
        match message {
            Message::SetChunkSize(size) => self
                .link
                .decoder
                .set_chunk_size(size)
                .map_err(|source| SessionError::ChunkSize { size, source })?,
            Message::Abort { csid } => self.link.decoder.abort(csid),
            Message::WindowAckSize(size) => self.link.peer_window = size,
            Message::SetPeerBandwidth { size, .. } => {
                // RTMP 1.0 §5.4.5: answer with our window if it differs from the last one sent.
                if self.window_sent != Some(size) {
                    self.window_sent = Some(size);
                    self.link
                        .send_message(CSID_CONTROL, 0, &Message::WindowAckSize(size));
                }
            }
            Message::UserControl(UserControl::PingRequest(timestamp)) => {
                self.link.send_message(
                    CSID_CONTROL,
                    0,
                    &Message::UserControl(UserControl::PingResponse(timestamp)),
                );
            }
            Message::UserControl(UserControl::StreamEof(_)) => {
                self.link.push_event(ClientEvent::StreamEof)
            }
            Message::Command {
                name,
                transaction_id,
                command_object,
                args,
                ..
            } => self.on_command(&name, transaction_id, command_object, args),
            other => trace!(type_id = other.type_id(), "ignoring message"),
        }
        Ok(())
    }

    fn on_command(
        &mut self,
        name: &str,
        transaction_id: f64,
        command_object: Value,
        args: Vec<Value>,
    ) {
        match name {
            "_result" if transaction_id == CONNECT_TRANSACTION && !self.connected => {
                self.connected = true;
                self.link.push_event(ClientEvent::Connected);
                if let Some(intent) = self.intent.take() {
                    self.begin(intent);
                }
            }
            "_result" => {
                if let Role::Creating {
                    transaction_id: tx, ..
                } = self.role
                    && tx == transaction_id
                {
                    let Some(stream) = args.first().and_then(Value::as_number) else {
                        debug!("createStream result without a stream id");
                        self.role = Role::Idle;
                        self.link.push_event(ClientEvent::Rejected {
                            code: "NetConnection.Call.Failed".to_owned(),
                            description: "createStream returned no stream id".to_owned(),
                        });
                        return;
                    };
                    if let Role::Creating { intent, .. } =
                        std::mem::replace(&mut self.role, Role::Idle)
                    {
                        self.on_stream_created(stream as u32, intent);
                    }
                }
            }
            "_error" => {
                let (_, code, description) = status_fields(args.first());
                let ours = transaction_id == CONNECT_TRANSACTION && !self.connected
                    || matches!(self.role, Role::Creating { transaction_id: tx, .. } if tx == transaction_id);
                if ours {
                    self.role = Role::Idle;
                    self.link
                        .push_event(ClientEvent::Rejected { code, description });
                } else {
                    // releaseStream/FCPublish errors: nginx-rtmp and others may refuse them, and
                    // librtmp ignores that too.
                    debug!(transaction_id, code, "ignoring _error");
                }
            }
            "onStatus" => {
                let (level, code, description) =
                    status_fields(args.first().or(Some(&command_object)));
                self.on_status(level, code, description);
            }
            _ => trace!(name, "ignoring command"),
        }
    }

    fn on_status(&mut self, level: String, code: String, description: String) {
        match code.as_str() {
            // PublishStarted promises that send_media works, so a Publish.Start for a publish we
            // never asked for (before createStream's answer, or while playing) is only a status.
            "NetStream.Publish.Start" if matches!(self.role, Role::Publishing { .. }) => {
                if let Role::Publishing { started, .. } = &mut self.role {
                    *started = true;
                }
                self.link.push_event(ClientEvent::PublishStarted);
            }
            "NetStream.Play.Start" if matches!(self.role, Role::Playing { .. }) => {
                if let Role::Playing { started, .. } = &mut self.role {
                    *started = true;
                }
                self.link.push_event(ClientEvent::PlayStarted);
            }
            "NetStream.Play.UnpublishNotify" => self.link.push_event(ClientEvent::UnpublishNotify),
            _ if level == "error" => {
                if matches!(
                    self.role,
                    Role::Publishing { started: false, .. } | Role::Playing { started: false, .. }
                ) {
                    self.role = Role::Idle;
                }
                self.link
                    .push_event(ClientEvent::Rejected { code, description });
            }
            _ => self.link.push_event(ClientEvent::Status {
                level,
                code,
                description,
            }),
        }
    }

    /// Test hook: pretend `received` bytes already arrived and were acknowledged.
    #[cfg(test)]
    pub(crate) fn set_bytes_received(&mut self, received: u32) {
        self.link.received = received;
        self.link.acked = received;
    }
}

/// The level and code of an AMF0 `onPlayStatus` data message; `None` for any other.
fn play_status(raw: &RawMessage) -> Option<(String, String)> {
    if raw.type_id != TYPE_DATA_AMF0 {
        return None;
    }
    let mut decoder = onair_amf::Decoder::new(&raw.payload);
    if decoder.next_value().ok()??.as_str()? != "onPlayStatus" {
        return None;
    }
    let info = decoder.next_value().ok()??;
    let (level, code, _) = status_fields(Some(&info));
    Some((level, code))
}
