//! The server side of an RTMP connection: handshake, connect, publish and play (RTMP 1.0 §7.2),
//! with the replies OBS, FFmpeg and GStreamer expect (protocol-notes §4.4–4.6).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use onair_amf::Value;
use onair_media::MediaKind;
use tracing::{debug, trace};

use super::{
    CSID_COMMAND, CSID_CONTROL, CSID_STREAM, Link, Queued, Reject, RequestId, SessionError,
    TYPE_AGGREGATE, TYPE_AUDIO, TYPE_DATA_AMF0, TYPE_DATA_AMF3, TYPE_VIDEO, media_raw_message,
    metadata_body, status_object,
};
use crate::chunk::{RawMessage, encode_standalone};
use crate::handshake::{HandshakeKind, ServerHandshake};
use crate::limits::RtmpLimits;
use crate::message::{LimitType, Message, UserControl, split_aggregate};

/// The `fmsVer` we announce. Clients only log it; FMS 3.5 is what SRS and nginx-rtmp claim.
const FMS_VERSION: &str = "FMS/3,5,7,7009";
/// E-RTMP `CanForward` (enhanced-rtmp-v2 "FourCcInfoMask"): we pass every codec through.
const FOURCC_CAN_FORWARD: f64 = 4.0;
/// E-RTMP capsEx bits we can honour by forwarding payloads untouched: Multitrack (2), ModEx (4)
/// and TimestampNanoOffset (8). Not Reconnect (1): we never send a ReconnectRequest.
const CAPS_EX_FORWARDABLE: u32 = 2 | 4 | 8;
/// Streams with a publish or play in progress, per connection. A real client uses one; the bound
/// keeps a peer from growing the table with publish commands.
// TODO(limits): belongs in RtmpLimits, which this module does not own.
const MAX_ACTIVE_STREAMS: usize = 16;

/// Settings for a [`ServerSession`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Our outgoing chunk size, announced before the connect `_result` (SRS does this "to make OBS
    /// happy", protocol-notes §4.3). The driver must chunk shared media with the same size.
    pub chunk_size: u32,
    /// The Window Acknowledgement Size we ask the peer to ack by.
    pub window_ack_size: u32,
    /// The Set Peer Bandwidth we announce (limit type dynamic). OBS acks every tenth of it.
    pub peer_bandwidth: u32,
    /// Bounds on the peer's chunk stream.
    pub limits: RtmpLimits,
    /// How often to send a User Control PingRequest once the handshake is done; zero disables.
    pub ping_interval: Duration,
    /// A peer that sends nothing for this long is dead ([`SessionError::TimedOut`]); zero disables.
    pub idle_timeout: Duration,
    /// The handshake and the `connect` command must arrive within this from the start
    /// ([`SessionError::HandshakeTimedOut`]), so a peer cannot hold a connection (and its
    /// buffers) without ever saying who it is; zero disables.
    pub handshake_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            chunk_size: 4096,
            window_ack_size: 2_500_000,
            peer_bandwidth: 2_500_000,
            limits: RtmpLimits::default(),
            ping_interval: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// What a [`ServerSession`] asks its driver to do.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerOutput {
    /// Bytes to write to the peer, in order. Never empty.
    Transmit(Bytes),
    /// Something happened the driver must act on.
    Event(ServerEvent),
}

/// Events from a [`ServerSession`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// The peer connected to `app`; the success reply is already queued.
    Connected {
        /// The application (`live` in `rtmp://host/live/key`).
        app: String,
        /// The `tcUrl` the client used; it may contain a query with secrets, do not log it.
        tc_url: Option<String>,
        /// The client's `flashVer` (`FMLE/3.0 (compatible; FMSc/1.0)` for OBS, `LNX 9,0,124,2`
        /// for FFmpeg).
        flash_ver: Option<String>,
        /// The client's `objectEncoding` (0 = AMF0, 3 = AMF3), echoed in the reply.
        object_encoding: f64,
        /// E-RTMP `fourCcList` the client offered (empty for a legacy client).
        four_cc_list: Vec<String>,
        /// E-RTMP `capsEx` the client offered.
        caps_ex: Option<u32>,
    },
    /// The peer wants to publish; answer with [`ServerSession::accept_publish`] or
    /// [`ServerSession::reject_publish`]. Nothing is sent to the peer until then.
    PublishRequested {
        /// Pass back to accept or reject.
        request: RequestId,
        /// The message stream id the media will arrive on.
        stream: u32,
        /// The app from `connect`.
        app: String,
        /// The raw publish name, query string included (it carries the stream key: do not log it).
        key: String,
        /// The publishing type: `live` (the default), `record` or `append`.
        mode: String,
    },
    /// The peer wants to play; answer with [`ServerSession::accept_play`] or
    /// [`ServerSession::reject_play`].
    PlayRequested {
        /// Pass back to accept or reject.
        request: RequestId,
        /// The message stream id to send media on.
        stream: u32,
        /// The app from `connect`.
        app: String,
        /// The stream name to play.
        name: String,
        /// -2 (live, else recorded; the default), -1 (live only) or a start position in ms.
        start: f64,
        /// -1 (until the end; the default), 0 (one frame) or a duration in ms.
        duration: f64,
        /// Whether the client asked to flush previous playlists (defaults to true).
        reset: bool,
    },
    /// An audio or video message on an accepted publishing stream (aggregates already split).
    Media {
        /// The publishing stream.
        stream: u32,
        /// [`MediaKind::Audio`] or [`MediaKind::Video`].
        kind: MediaKind,
        /// The message timestamp (ms, wrapping at 2^32).
        timestamp: u32,
        /// The FLV tag body, a slice of the input.
        payload: Bytes,
    },
    /// Stream metadata on an accepted publishing stream.
    Metadata {
        /// The publishing stream.
        stream: u32,
        /// The message timestamp.
        timestamp: u32,
        /// AMF0 `"onMetaData"` followed by the object, `@setDataFrame` stripped.
        payload: Bytes,
    },
    /// The publisher stopped (`FCUnpublish`, `deleteStream` or `closeStream`).
    PublishStopped {
        /// The stream that was publishing.
        stream: u32,
    },
    /// The player stopped (`deleteStream` or `closeStream`).
    PlayStopped {
        /// The stream that was playing.
        stream: u32,
    },
    /// The player paused or resumed (`NetStream.Pause.Notify`/`Unpause.Notify` already sent).
    Paused {
        /// The play stream.
        stream: u32,
        /// True to pause, false to resume.
        paused: bool,
        /// The position the client reported.
        position_ms: f64,
    },
    /// The player seeked (`NetStream.Seek.Notify` already sent); on a live stream restart it
    /// from the latest keyframe.
    Seek {
        /// The play stream.
        stream: u32,
        /// The requested position.
        position_ms: f64,
    },
    /// The player turned audio on or off.
    ReceiveAudio {
        /// The play stream.
        stream: u32,
        /// Whether to send audio.
        enabled: bool,
    },
    /// The player turned video on or off.
    ReceiveVideo {
        /// The play stream.
        stream: u32,
        /// Whether to send video.
        enabled: bool,
    },
    /// The player announced its buffer length (User Control SetBufferLength).
    BufferLength {
        /// The stream it applies to.
        stream: u32,
        /// The client's buffer in ms.
        buffer_ms: u32,
    },
}

/// What a message stream is doing.
#[derive(Debug)]
enum Role {
    PublishPending {
        request: RequestId,
    },
    Publishing,
    PlayPending {
        request: RequestId,
        name: String,
        reset: bool,
    },
    Playing,
}

/// The sans-IO server side of one RTMP connection.
///
/// ```
/// use std::time::Instant;
/// use onair_rtmp::session::{ServerConfig, ServerSession};
///
/// let now = Instant::now();
/// let mut server = ServerSession::new(ServerConfig::default(), now, [7; 1528]);
/// assert!(server.poll_output().is_none()); // nothing to say until C0+C1 arrive
/// assert_eq!(server.poll_timeout(), Some(now + ServerConfig::default().handshake_timeout));
/// ```
pub struct ServerSession {
    config: ServerConfig,
    handshake: ServerHandshake,
    handshake_done: bool,
    link: Link<ServerEvent>,
    started: Instant,
    last_input: Instant,
    next_ping: Option<Instant>,
    failed: bool,
    app: Option<String>,
    /// The client sent `FCPublish`: `onFCPublish` is owed when the publish is accepted (SRS).
    fc_publish: bool,
    next_stream_id: u32,
    next_request: u64,
    streams: BTreeMap<u32, Role>,
    /// Whether we already logged dropping media of a stream that is not publishing.
    logged_stray_media: bool,
}

impl std::fmt::Debug for ServerSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSession")
            .field("handshake_done", &self.handshake_done)
            .field("failed", &self.failed)
            .field("app", &self.app)
            .field("streams", &self.streams)
            .field("link", &self.link)
            .finish_non_exhaustive()
    }
}

impl ServerSession {
    /// A session for a freshly accepted connection. `random` fills the S1/S2 bodies of the
    /// handshake (draw it from a CSPRNG in the driver).
    pub fn new(config: ServerConfig, now: Instant, random: [u8; 1528]) -> Self {
        ServerSession {
            link: Link::new(config.limits.clone()),
            config,
            // The S1 time field is our epoch: 0 at the start of the session; pings count from it.
            handshake: ServerHandshake::new(random, 0),
            handshake_done: false,
            started: now,
            last_input: now,
            next_ping: None,
            failed: false,
            app: None,
            fc_publish: false,
            next_stream_id: 1,
            next_request: 0,
            streams: BTreeMap::new(),
            logged_stray_media: false,
        }
    }

    /// Feeds bytes read from the peer; any split of the stream works. On `Err` close the
    /// connection (after writing what [`poll_output`](Self::poll_output) still returns, if you
    /// like) and do not call the session again.
    pub fn handle_input(&mut self, now: Instant, buf: &[u8]) -> Result<(), SessionError> {
        if self.failed {
            return Err(SessionError::Closed);
        }
        let result = self.handle_input_inner(now, buf);
        self.failed = result.is_err();
        result
    }

    fn handle_input_inner(&mut self, now: Instant, buf: &[u8]) -> Result<(), SessionError> {
        if buf.is_empty() {
            return Ok(());
        }
        self.last_input = now;
        self.link.count_received(buf.len());
        let mut rest = buf;
        if !self.handshake_done {
            match self.link.feed_handshake(&mut self.handshake, rest)? {
                Some(after) => rest = after,
                None => return Ok(()),
            }
            self.handshake_done = true;
            self.next_ping = self.after(now, self.config.ping_interval);
        }
        self.link.inbuf.extend_from_slice(rest);
        while let Some(raw) = self.link.decoder.decode(&mut self.link.inbuf)? {
            self.handle_message(raw)?;
        }
        self.link.ack_if_due();
        Ok(())
    }

    /// The next output, if any. Drain it after every call that takes `&mut self`.
    pub fn poll_output(&mut self) -> Option<ServerOutput> {
        self.link.poll().map(|out| match out {
            Queued::Transmit(bytes) => ServerOutput::Transmit(bytes),
            Queued::Event(event) => ServerOutput::Event(event),
        })
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next: the handshake deadline, the
    /// next ping or the idle deadline, whichever is first.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.failed {
            return None;
        }
        let handshake = if self.introduced() {
            None
        } else {
            self.after(self.started, self.config.handshake_timeout)
        };
        [
            handshake,
            self.after(self.last_input, self.config.idle_timeout),
            self.next_ping,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs the timers: sends a PingRequest when one is due, and fails with
    /// [`SessionError::HandshakeTimedOut`] or [`SessionError::TimedOut`] when the peer is late.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), SessionError> {
        if self.failed {
            return Err(SessionError::Closed);
        }
        if !self.introduced()
            && self
                .after(self.started, self.config.handshake_timeout)
                .is_some_and(|deadline| now >= deadline)
        {
            self.failed = true;
            return Err(SessionError::HandshakeTimedOut {
                after: self.config.handshake_timeout,
            });
        }
        if self
            .after(self.last_input, self.config.idle_timeout)
            .is_some_and(|deadline| now >= deadline)
        {
            self.failed = true;
            return Err(SessionError::TimedOut {
                idle: self.config.idle_timeout,
            });
        }
        if self.next_ping.is_some_and(|at| now >= at) {
            // The ping carries our session time in ms (RTMP 1.0 §7.1.7); wrapping is fine, the
            // peer only echoes it.
            let millis = now.saturating_duration_since(self.started).as_millis() as u32;
            self.link.send_message(
                CSID_CONTROL,
                0,
                &Message::UserControl(UserControl::PingRequest(millis)),
            );
            self.next_ping = self.after(now, self.config.ping_interval);
        }
        Ok(())
    }

    /// Whether the peer finished the handshake and sent `connect`.
    fn introduced(&self) -> bool {
        self.handshake_done && self.app.is_some()
    }

    /// `base + d`, or `None` when `d` is zero (the timer is disabled) or out of range.
    fn after(&self, base: Instant, d: Duration) -> Option<Instant> {
        if d.is_zero() {
            None
        } else {
            base.checked_add(d)
        }
    }

    /// Accepts a publish: sends `onFCPublish` (if the client sent `FCPublish`) and
    /// `onStatus NetStream.Publish.Start` on the publish stream, after which media flows as
    /// [`ServerEvent::Media`]. Returns false (and sends nothing) if the request is no longer
    /// pending: the client deleted the stream meanwhile, possibly in the same read that produced
    /// the [`ServerEvent::PublishRequested`]. Then do not register the publisher.
    pub fn accept_publish(&mut self, request: RequestId) -> bool {
        let Some(stream) = self.find_request(request, true) else {
            debug!(?request, "accept_publish: request no longer pending");
            return false;
        };
        self.streams.insert(stream, Role::Publishing);
        if std::mem::take(&mut self.fc_publish) {
            // SRS sends onFCPublish on the connection; librtmp and FFmpeg only log it.
            self.link.send_command(
                CSID_COMMAND,
                0,
                &[
                    "onFCPublish".into(),
                    0.0.into(),
                    Value::Null,
                    status_object("status", "NetStream.Publish.Start", "Publishing started."),
                ],
            );
        }
        self.send_status(
            stream,
            "status",
            "NetStream.Publish.Start",
            "Publishing started.",
        );
        true
    }

    /// Refuses a publish with an error `onStatus` whose description is the reason (OBS shows
    /// it). The connection stays up; close it when the reply is written. Returns false if the
    /// request is no longer pending.
    pub fn reject_publish(&mut self, request: RequestId, reject: Reject) -> bool {
        let Some(stream) = self.find_request(request, true) else {
            debug!(?request, "reject_publish: request no longer pending");
            return false;
        };
        self.streams.remove(&stream);
        self.send_status(stream, "error", reject.publish_code(), reject.description());
        true
    }

    /// Accepts a play: User Control StreamBegin, `NetStream.Play.Reset` (if asked),
    /// `NetStream.Play.Start` and `|RtmpSampleAccess`, in the order SRS sends them. No
    /// `NetStream.Data.Start` (FFmpeg then reports an empty data stream). After this, write
    /// metadata, sequence headers and media on [`media_stream_id`](Self::media_stream_id).
    /// Returns false if the request is no longer pending.
    pub fn accept_play(&mut self, request: RequestId) -> bool {
        let Some(stream) = self.find_request(request, false) else {
            debug!(?request, "accept_play: request no longer pending");
            return false;
        };
        let (name, reset) = match self.streams.insert(stream, Role::Playing) {
            Some(Role::PlayPending { name, reset, .. }) => (name, reset),
            // find_request(_, false) only returns streams in PlayPending.
            _ => return false,
        };
        // The descriptions echo the name without its query: `?token=…` and the like carry
        // secrets, and players print these descriptions.
        let name = name.split('?').next().unwrap_or_default();
        self.send_user_control(UserControl::StreamBegin(stream));
        if reset {
            self.send_status(
                stream,
                "status",
                "NetStream.Play.Reset",
                &format!("Playing and resetting {name}."),
            );
        }
        self.send_status(
            stream,
            "status",
            "NetStream.Play.Start",
            &format!("Started playing {name}."),
        );
        self.link.send_raw(
            CSID_STREAM,
            stream,
            0,
            TYPE_DATA_AMF0,
            onair_amf::encode_all(&["|RtmpSampleAccess".into(), true.into(), true.into()]),
        );
        true
    }

    /// Refuses a play (`NetStream.Play.StreamNotFound` or `NetStream.Play.Failed`). Returns false
    /// if the request is no longer pending.
    pub fn reject_play(&mut self, request: RequestId, reject: Reject) -> bool {
        let Some(stream) = self.find_request(request, false) else {
            debug!(?request, "reject_play: request no longer pending");
            return false;
        };
        self.streams.remove(&stream);
        self.send_status(stream, "error", reject.play_code(), reject.description());
        true
    }

    /// Tells a player the publisher went away: `NetStream.Play.UnpublishNotify` and StreamEOF.
    /// FFmpeg and OBS stop on these, so send them only when the stream really ends.
    pub fn notify_unpublished(&mut self, stream: u32) {
        self.send_status(
            stream,
            "status",
            "NetStream.Play.UnpublishNotify",
            "The stream is no longer published.",
        );
        self.send_user_control(UserControl::StreamEof(stream));
    }

    /// Ends a play from our side (the viewer fell too far behind, too often): an error-level
    /// `onStatus NetStream.Play.Failed` with `reason` as description, then StreamEOF, so the
    /// player can show why it stopped. Close the connection after writing them.
    pub fn fail_play(&mut self, stream: u32, reason: &str) {
        if matches!(self.streams.get(&stream), Some(Role::Playing)) {
            self.streams.remove(&stream);
        }
        self.send_status(stream, "error", "NetStream.Play.Failed", reason);
        self.send_user_control(UserControl::StreamEof(stream));
    }

    /// A recorded play restarts at a new position (after [`ServerEvent::Seek`], whose
    /// `NetStream.Seek.Notify` is already sent): User Control StreamBegin (a play that had
    /// reached its end got StreamEOF) and `NetStream.Play.Start`, as FMS sends them, so
    /// Flash-style players leave their seeking state. Write sequence headers and media from
    /// the new position after it.
    pub fn restart_play(&mut self, stream: u32, description: &str) {
        self.send_user_control(UserControl::StreamBegin(stream));
        self.send_status(stream, "status", "NetStream.Play.Start", description);
    }

    /// A recorded play reached its end (of the file, or of the requested duration):
    /// `onStatus NetStream.Play.Stop`, `onPlayStatus NetStream.Play.Complete` (a data
    /// message, as FMS sends it) and User Control StreamEOF, in that order. The stream stays
    /// a play stream: a `seek` or `pause(false)` may still follow, and so may a new `play`
    /// on another stream.
    pub fn complete_play(&mut self, stream: u32, description: &str) {
        self.send_status(stream, "status", "NetStream.Play.Stop", description);
        let info = Value::object([
            ("level", Value::from("status")),
            ("code", Value::from("NetStream.Play.Complete")),
        ]);
        self.link.send_raw(
            CSID_STREAM,
            stream,
            0,
            TYPE_DATA_AMF0,
            onair_amf::encode_all(&["onPlayStatus".into(), info]),
        );
        self.send_user_control(UserControl::StreamEof(stream));
    }

    /// Tells a player a publisher is back: StreamBegin and `NetStream.Play.PublishNotify`.
    pub fn notify_republished(&mut self, stream: u32) {
        self.send_user_control(UserControl::StreamBegin(stream));
        self.send_status(
            stream,
            "status",
            "NetStream.Play.PublishNotify",
            "The stream is published.",
        );
    }

    /// Ends a publish from our side (kicked, key revoked): `onStatus NetStream.Unpublish.Success`
    /// with `reason` as description, and media on the stream is dropped from now on. No
    /// [`ServerEvent::PublishStopped`] follows (the driver decided this). Close the connection
    /// after writing the reply: OBS reconnects, and a revoked key is then refused.
    pub fn stop_publish(&mut self, stream: u32, reason: &str) {
        if matches!(self.streams.get(&stream), Some(Role::Publishing)) {
            self.streams.remove(&stream);
        }
        self.send_status(stream, "status", "NetStream.Unpublish.Success", reason);
    }

    /// The message stream of the accepted play, where the driver sends media.
    pub fn media_stream_id(&self) -> Option<u32> {
        self.streams
            .iter()
            .find(|(_, role)| matches!(role, Role::Playing))
            .map(|(&stream, _)| stream)
    }

    /// The chunk size we announced to the peer (and chunk with). Shared media bytes must be cut
    /// with this size; while the connect is not answered yet it is still the RTMP default 128.
    pub fn chunk_size_out(&self) -> u32 {
        self.link.encoder.chunk_size()
    }

    /// Per-session media path, for when the shared bytes cannot be used (a different chunk
    /// size): chunks one message for this session only. Uses type-0 headers on the media csids
    /// exactly like the shared path, so both may be interleaved at message boundaries. The bytes
    /// are returned, not queued: the driver writes them in its media order.
    pub fn encode_media(
        &mut self,
        stream: u32,
        kind: MediaKind,
        timestamp: u32,
        payload: Bytes,
    ) -> Bytes {
        encode_standalone(
            &media_raw_message(kind, timestamp, stream, payload),
            self.chunk_size_out(),
        )
    }

    /// Which handshake the client used (simple or digest), once C1 has arrived; worth a log line.
    pub fn handshake_kind(&self) -> Option<HandshakeKind> {
        self.handshake.kind()
    }

    /// Bytes of peer input held while waiting for the rest of a chunk (for memory accounting).
    pub fn buffered_len(&self) -> usize {
        self.link.buffered_len()
    }

    /// Whether a publish request is still waiting for [`accept_publish`](Self::accept_publish)
    /// or [`reject_publish`](Self::reject_publish): false once the client withdrew it
    /// (`deleteStream` during an asynchronous key check).
    pub fn is_publish_pending(&self, request: RequestId) -> bool {
        self.find_request(request, true).is_some()
    }

    /// The stream holding the pending publish (`publish = true`) or play request `request`.
    fn find_request(&self, request: RequestId, publish: bool) -> Option<u32> {
        self.streams.iter().find_map(|(&stream, role)| match role {
            Role::PublishPending { request: r } if publish && *r == request => Some(stream),
            Role::PlayPending { request: r, .. } if !publish && *r == request => Some(stream),
            _ => None,
        })
    }

    fn new_request(&mut self) -> RequestId {
        self.next_request += 1;
        RequestId(self.next_request)
    }

    fn send_user_control(&mut self, event: UserControl) {
        self.link
            .send_message(CSID_CONTROL, 0, &Message::UserControl(event));
    }

    fn send_status(&mut self, stream: u32, level: &str, code: &str, description: &str) {
        self.link.send_command(
            CSID_STREAM,
            stream,
            &[
                "onStatus".into(),
                0.0.into(),
                Value::Null,
                status_object(level, code, description),
            ],
        );
    }

    /// `_result(tx, null, value)`; nothing for transaction 0, which asks for no reply.
    fn send_result(&mut self, transaction_id: f64, value: Value) {
        if transaction_id != 0.0 {
            self.link.send_command(
                CSID_COMMAND,
                0,
                &["_result".into(), transaction_id.into(), Value::Null, value],
            );
        }
    }

    fn send_error(&mut self, transaction_id: f64, code: &str, description: &str) {
        if transaction_id != 0.0 {
            self.link.send_command(
                CSID_COMMAND,
                0,
                &[
                    "_error".into(),
                    transaction_id.into(),
                    Value::Null,
                    status_object("error", code, description),
                ],
            );
        }
    }

    fn handle_message(&mut self, raw: RawMessage) -> Result<(), SessionError> {
        match raw.type_id {
            TYPE_AUDIO | TYPE_VIDEO => {
                self.handle_media(raw);
                Ok(())
            }
            TYPE_DATA_AMF0 | TYPE_DATA_AMF3 => {
                self.handle_data(raw);
                Ok(())
            }
            TYPE_AGGREGATE => {
                let parts = split_aggregate(&raw).map_err(|source| SessionError::Message {
                    type_id: raw.type_id,
                    csid: raw.csid,
                    source,
                })?;
                for part in parts {
                    match part.type_id {
                        TYPE_AUDIO | TYPE_VIDEO => self.handle_media(part),
                        TYPE_DATA_AMF0 => self.handle_data(part),
                        other => trace!(type_id = other, "aggregate: ignoring sub-message"),
                    }
                }
                Ok(())
            }
            _ => {
                let message = Message::decode(&raw).map_err(|source| SessionError::Message {
                    type_id: raw.type_id,
                    csid: raw.csid,
                    source,
                })?;
                self.handle_decoded(&raw, message)
            }
        }
    }

    fn handle_media(&mut self, raw: RawMessage) {
        if !matches!(
            self.streams.get(&raw.message_stream_id),
            Some(Role::Publishing)
        ) {
            if !self.logged_stray_media {
                self.logged_stray_media = true;
                debug!(
                    stream = raw.message_stream_id,
                    type_id = raw.type_id,
                    "dropping media on a stream that is not publishing"
                );
            }
            return;
        }
        let kind = if raw.type_id == TYPE_AUDIO {
            MediaKind::Audio
        } else {
            MediaKind::Video
        };
        self.link.push_event(ServerEvent::Media {
            stream: raw.message_stream_id,
            kind,
            timestamp: raw.timestamp,
            payload: raw.payload,
        });
    }

    fn handle_data(&mut self, raw: RawMessage) {
        if !matches!(
            self.streams.get(&raw.message_stream_id),
            Some(Role::Publishing)
        ) {
            debug!(
                stream = raw.message_stream_id,
                "dropping data on a stream that is not publishing"
            );
            return;
        }
        match metadata_body(raw.type_id, &raw.payload) {
            Some(payload) => self.link.push_event(ServerEvent::Metadata {
                stream: raw.message_stream_id,
                timestamp: raw.timestamp,
                payload,
            }),
            None => debug!(
                stream = raw.message_stream_id,
                "ignoring a data message that is not onMetaData"
            ),
        }
    }

    fn handle_decoded(&mut self, raw: &RawMessage, message: Message) -> Result<(), SessionError> {
        match message {
            Message::SetChunkSize(size) => {
                // Applies to the very next chunk (notes #23: apply immediately, per direction).
                self.link
                    .decoder
                    .set_chunk_size(size)
                    .map_err(|source| SessionError::ChunkSize { size, source })?;
            }
            Message::Abort { csid } => self.link.decoder.abort(csid),
            Message::Acknowledgement { .. } => {
                // We never throttle on the peer's acks (protocol-notes §4.4).
            }
            Message::WindowAckSize(size) => self.link.peer_window = size,
            Message::SetPeerBandwidth { .. } => {
                // Players send it; it limits what *they* would send, and we never throttle.
            }
            Message::UserControl(event) => self.handle_user_control(event),
            Message::Command {
                name,
                transaction_id,
                command_object,
                args,
                ..
            } => self.handle_command(
                raw.message_stream_id,
                &name,
                transaction_id,
                command_object,
                args,
            ),
            other => trace!(type_id = other.type_id(), "ignoring message"),
        }
        Ok(())
    }

    fn handle_user_control(&mut self, event: UserControl) {
        match event {
            UserControl::PingRequest(timestamp) => {
                self.send_user_control(UserControl::PingResponse(timestamp));
            }
            UserControl::SetBufferLength {
                stream_id,
                buffer_ms,
            } => {
                self.link.push_event(ServerEvent::BufferLength {
                    stream: stream_id,
                    buffer_ms,
                });
            }
            // A PingResponse proves liveness, which any input already does.
            other => trace!(?other, "ignoring user control event"),
        }
    }

    fn handle_command(
        &mut self,
        stream: u32,
        name: &str,
        transaction_id: f64,
        command_object: Value,
        args: Vec<Value>,
    ) {
        trace!(name, transaction_id, stream, "command");
        if name != "connect" && self.app.is_none() {
            debug!(name, "command before connect");
            self.send_error(
                transaction_id,
                "NetConnection.Call.Failed",
                "Connect first.",
            );
            return;
        }
        match name {
            "connect" => self.on_connect(transaction_id, &command_object),
            // OBS and FFmpeg pipeline releaseStream, FCPublish and createStream without waiting
            // (notes §4.5 step 2); SRS answers both FC commands with `_result(tx, null, undefined)`.
            "releaseStream" => self.send_result(transaction_id, Value::Undefined),
            "FCPublish" => {
                self.fc_publish = true;
                self.send_result(transaction_id, Value::Undefined);
            }
            "createStream" => self.on_create_stream(transaction_id),
            "publish" => self.on_publish(stream, transaction_id, &args),
            "play" => self.on_play(stream, transaction_id, &args),
            "FCUnpublish" => self.on_fc_unpublish(transaction_id),
            "deleteStream" => {
                let target = args
                    .first()
                    .and_then(Value::as_number)
                    .map_or(stream, |id| id as u32);
                self.end_stream(target);
            }
            "closeStream" => self.end_stream(stream),
            "pause" => {
                let paused = args.first().and_then(Value::as_bool).unwrap_or(true);
                let position_ms = args.get(1).and_then(Value::as_number).unwrap_or(0.0);
                if self.is_playing(stream) {
                    let code = if paused {
                        "NetStream.Pause.Notify"
                    } else {
                        "NetStream.Unpause.Notify"
                    };
                    self.send_status(
                        stream,
                        "status",
                        code,
                        if paused { "Paused." } else { "Unpaused." },
                    );
                    self.link.push_event(ServerEvent::Paused {
                        stream,
                        paused,
                        position_ms,
                    });
                }
            }
            "seek" => {
                let position_ms = args.first().and_then(Value::as_number).unwrap_or(0.0);
                if self.is_playing(stream) {
                    self.send_status(stream, "status", "NetStream.Seek.Notify", "Seeking.");
                    self.link.push_event(ServerEvent::Seek {
                        stream,
                        position_ms,
                    });
                }
            }
            "receiveAudio" | "receiveVideo" => {
                let enabled = args.first().and_then(Value::as_bool).unwrap_or(true);
                let event = if name == "receiveAudio" {
                    ServerEvent::ReceiveAudio { stream, enabled }
                } else {
                    ServerEvent::ReceiveVideo { stream, enabled }
                };
                self.link.push_event(event);
            }
            // FFmpeg asks for the length before playing; live streams have none (notes §4.6).
            "getStreamLength" => self.send_result(transaction_id, Value::Number(0.0)),
            "FCSubscribe" => {
                // Akamai-style CDNs' subscribe step: librtmp only logs onFCSubscribe.
                self.send_result(transaction_id, Value::Undefined);
                self.link.send_command(
                    CSID_COMMAND,
                    0,
                    &[
                        "onFCSubscribe".into(),
                        0.0.into(),
                        Value::Null,
                        status_object("status", "NetStream.Play.Start", "Subscribed."),
                    ],
                );
            }
            "FCUnsubscribe" => self.send_result(transaction_id, Value::Undefined),
            // Replies to nothing we asked; FFmpeg sends `_checkbw` only when told to.
            "_result" | "_error" | "onBWDone" | "_checkbw" => {}
            _ => {
                debug!(name, transaction_id, "unknown command");
                self.send_error(
                    transaction_id,
                    "NetConnection.Call.Failed",
                    &format!("Method not found ({name})."),
                );
            }
        }
    }

    fn on_connect(&mut self, transaction_id: f64, object: &Value) {
        if self.app.is_some() {
            debug!("second connect on one connection");
            self.send_error(
                transaction_id,
                "NetConnection.Connect.Rejected",
                "Already connected.",
            );
            return;
        }
        let text = |key: &str| object.get(key).and_then(Value::as_str).map(str::to_owned);
        let app = text("app").unwrap_or_default();
        let object_encoding = object
            .get("objectEncoding")
            .and_then(Value::as_number)
            .unwrap_or(0.0);
        let four_cc_list: Vec<String> = match object.get("fourCcList") {
            Some(Value::StrictArray(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        let caps_ex = object
            .get("capsEx")
            .and_then(Value::as_number)
            .map(|n| n as u32);
        let enhanced = object.get("fourCcList").is_some()
            || object.get("videoFourCcInfoMap").is_some()
            || object.get("audioFourCcInfoMap").is_some()
            || caps_ex.is_some();
        // Not the app: clients that leave it out (`rtmp://host/KEY`) send the key as the app.
        debug!(object_encoding, enhanced, "connect");

        // Protocol control before the `_result`, in SRS's order (notes §4.4): OBS must know our
        // chunk size before any reply longer than 128 bytes (notes #9).
        self.link.send_message(
            CSID_CONTROL,
            0,
            &Message::WindowAckSize(self.config.window_ack_size),
        );
        self.link.send_message(
            CSID_CONTROL,
            0,
            &Message::SetPeerBandwidth {
                size: self.config.peer_bandwidth,
                limit_type: LimitType::Dynamic,
            },
        );
        self.link.send_message(
            CSID_CONTROL,
            0,
            &Message::SetChunkSize(self.config.chunk_size),
        );
        self.link.encoder.set_chunk_size(self.config.chunk_size);

        let mut properties = vec![
            ("fmsVer".to_owned(), Value::from(FMS_VERSION)),
            ("capabilities".to_owned(), Value::Number(255.0)),
            ("mode".to_owned(), Value::Number(1.0)),
        ];
        if enhanced {
            // E-RTMP v2 "Enhancing NetConnection connect Command": the server states its support
            // in the `_result`. We forward any codec, so one wildcard entry says it all.
            let forward_all = || Value::object([("*", Value::Number(FOURCC_CAN_FORWARD))]);
            properties.push((
                "fourCcList".to_owned(),
                Value::StrictArray(vec!["*".into()]),
            ));
            properties.push(("videoFourCcInfoMap".to_owned(), forward_all()));
            properties.push(("audioFourCcInfoMap".to_owned(), forward_all()));
            properties.push((
                "capsEx".to_owned(),
                Value::Number(f64::from(caps_ex.unwrap_or(0) & CAPS_EX_FORWARDABLE)),
            ));
        }
        let info = Value::object([
            ("level", Value::from("status")),
            ("code", "NetConnection.Connect.Success".into()),
            ("description", "Connection succeeded.".into()),
            ("objectEncoding", object_encoding.into()),
        ]);
        self.link.send_command(
            CSID_COMMAND,
            0,
            &[
                "_result".into(),
                transaction_id.into(),
                Value::Object(properties),
                info,
            ],
        );
        self.app = Some(app.clone());
        self.link.push_event(ServerEvent::Connected {
            app,
            tc_url: text("tcUrl"),
            flash_ver: text("flashVer"),
            object_encoding,
            four_cc_list,
            caps_ex,
        });
    }

    fn on_create_stream(&mut self, transaction_id: f64) {
        let id = self.next_stream_id;
        // Stream ids are only counted, not stored: a peer calling createStream forever costs
        // nothing. Saturating keeps ids unique until 4 billion streams.
        self.next_stream_id = self.next_stream_id.saturating_add(1);
        self.send_result(transaction_id, Value::Number(f64::from(id)));
    }

    /// Whether a new publish or play may use `stream`; answers the peer when not.
    fn claim_stream(&mut self, stream: u32, kind: &str) -> bool {
        if self.streams.contains_key(&stream) {
            debug!(stream, kind, "stream already in use");
            let code = if kind == "publish" {
                "NetStream.Publish.BadName"
            } else {
                "NetStream.Play.Failed"
            };
            self.send_status(stream, "error", code, "The stream is already in use.");
            return false;
        }
        if self.streams.len() >= MAX_ACTIVE_STREAMS {
            debug!(stream, kind, "too many active streams");
            let code = if kind == "publish" {
                "NetStream.Publish.Rejected"
            } else {
                "NetStream.Play.Failed"
            };
            self.send_status(
                stream,
                "error",
                code,
                "Too many streams on this connection.",
            );
            return false;
        }
        true
    }

    fn on_publish(&mut self, stream: u32, transaction_id: f64, args: &[Value]) {
        let Some(key) = args.first().and_then(Value::as_str).map(str::to_owned) else {
            self.send_status(
                stream,
                "error",
                "NetStream.Publish.BadName",
                "No stream name given.",
            );
            return;
        };
        if !self.claim_stream(stream, "publish") {
            return;
        }
        let mode = args
            .get(1)
            .and_then(Value::as_str)
            .unwrap_or("live")
            .to_owned();
        let request = self.new_request();
        debug!(stream, transaction_id, mode, "publish requested");
        self.streams
            .insert(stream, Role::PublishPending { request });
        self.link.push_event(ServerEvent::PublishRequested {
            request,
            stream,
            app: self.app.clone().unwrap_or_default(),
            key,
            mode,
        });
    }

    fn on_play(&mut self, stream: u32, transaction_id: f64, args: &[Value]) {
        let Some(name) = args.first().and_then(Value::as_str).map(str::to_owned) else {
            self.send_status(
                stream,
                "error",
                "NetStream.Play.StreamNotFound",
                "No stream name given.",
            );
            return;
        };
        if !self.claim_stream(stream, "play") {
            return;
        }
        // RTMP 1.0 §7.2.2.1 defaults: start -2, duration -1; reset is sent by Flash only, and
        // SRS/nginx send Play.Reset regardless, so absent means true.
        let start = args.get(1).and_then(Value::as_number).unwrap_or(-2.0);
        let duration = args.get(2).and_then(Value::as_number).unwrap_or(-1.0);
        let reset = args.get(3).and_then(Value::as_bool).unwrap_or(true);
        let request = self.new_request();
        // The name is not logged: a streamer who pastes a key as a play name must not find
        // it in the server log.
        debug!(
            stream,
            transaction_id, start, duration, reset, "play requested"
        );
        self.streams.insert(
            stream,
            Role::PlayPending {
                request,
                name: name.clone(),
                reset,
            },
        );
        self.link.push_event(ServerEvent::PlayRequested {
            request,
            stream,
            app: self.app.clone().unwrap_or_default(),
            name,
            start,
            duration,
            reset,
        });
    }

    fn on_fc_unpublish(&mut self, transaction_id: f64) {
        self.send_result(transaction_id, Value::Undefined);
        let publishing: Vec<u32> = self
            .streams
            .iter()
            .filter(|(_, role)| matches!(role, Role::Publishing))
            .map(|(&stream, _)| stream)
            .collect();
        for stream in publishing {
            self.streams.remove(&stream);
            // SRS replies onFCUnpublish + onStatus Unpublish.Success (ossrs/srs #454).
            self.link.send_command(
                CSID_COMMAND,
                0,
                &[
                    "onFCUnpublish".into(),
                    0.0.into(),
                    Value::Null,
                    status_object("status", "NetStream.Unpublish.Success", "Unpublished."),
                ],
            );
            self.send_status(
                stream,
                "status",
                "NetStream.Unpublish.Success",
                "Unpublished.",
            );
            self.link.push_event(ServerEvent::PublishStopped { stream });
        }
    }

    /// `deleteStream` / `closeStream`: whatever the stream did ends. A pending request is
    /// forgotten, so a late accept is a no-op.
    fn end_stream(&mut self, stream: u32) {
        match self.streams.remove(&stream) {
            Some(Role::Publishing) => self.link.push_event(ServerEvent::PublishStopped { stream }),
            Some(Role::Playing) => self.link.push_event(ServerEvent::PlayStopped { stream }),
            Some(Role::PublishPending { .. } | Role::PlayPending { .. }) | None => {}
        }
    }

    fn is_playing(&self, stream: u32) -> bool {
        matches!(self.streams.get(&stream), Some(Role::Playing))
    }

    /// Test hook: pretend `received` bytes already arrived (and were acknowledged), to reach the
    /// 32-bit wrap of the sequence number without sending 4 GiB.
    #[cfg(test)]
    pub(crate) fn set_bytes_received(&mut self, received: u32) {
        self.link.received = received;
        self.link.acked = received;
    }
}
