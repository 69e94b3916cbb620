//! The RTMP driver: one task per connection runs a sans-IO [`ServerSession`] over a TCP
//! socket, publishing into the hub or playing out of it.
//!
//! Each wake-up reads what the socket has, feeds the session, and writes everything that
//! became ready (session output and hub frames) with one `writev`. Media for players is the
//! hub entry's shared RTMP encoding, so a frame is chunked once for every RTMP viewer.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use onair_hub::{
    Delivery, Encoding, Entry, Protocol, PublishError, PublishOptions, Publisher, RecvError,
    Subscriber,
};
use onair_media::{Frame, MediaKind, Timestamp};
use onair_rtmp::chunk::encode_standalone;
use onair_rtmp::session::{
    Reject, RequestId, ServerConfig, ServerEvent, ServerOutput, ServerSession, SessionError,
    media_raw_message,
};
use tokio::io::AsyncReadExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tracing::{Instrument, Span, debug, field, info, info_span, warn};

use crate::auth::{PublishRequest, Refusal};
use crate::channel::{is_valid_name, split_query};
use crate::lives::{LiveId, LiveStart, SessionRow};
use crate::net::write_all_queued_within;
use crate::secret::StreamKey;
use crate::server::{AppState, Metrics};

/// The message stream id players get from their first `createStream`; shared media chunks
/// are encoded for it.
const SHARED_STREAM_ID: u32 = 1;

/// Reads codecs and picture size from a sequence header or the stream's metadata.
fn note_media(media: &mut crate::lives::MediaInfo, frame: &Frame) {
    match frame.kind {
        MediaKind::Script => {
            if let Ok(meta) = onair_flv::parse_metadata(&frame.data) {
                if let Some(v) = meta.video_codec {
                    media.video_codec.get_or_insert_with(|| v.to_string());
                }
                if let Some(a) = meta.audio_codec {
                    media.audio_codec.get_or_insert_with(|| a.to_string());
                }
                let px =
                    |v: Option<f64>| v.filter(|v| (1.0..=65535.0).contains(v)).map(|v| v as u32);
                media.width = media.width.or(px(meta.width));
                media.height = media.height.or(px(meta.height));
                media.encoder = meta.encoder.or(media.encoder.take());
            }
        }
        MediaKind::Video => {
            let class = onair_flv::classify(MediaKind::Video, &frame.data);
            if let Some(codec) = class.video {
                media.video_codec = Some(codec.to_string());
            }
            // Legacy AVC: the 5-byte tag header, then the AVCDecoderConfigurationRecord.
            if class.video == Some(onair_media::VideoCodec::H264)
                && let Some(record) = frame.data.get(5..)
                && let Ok(avc) = onair_flv::parse_avc_config(record)
                && let (Some(w), Some(h)) = (avc.width, avc.height)
            {
                media.width = Some(w);
                media.height = Some(h);
            }
        }
        MediaKind::Audio => {
            if let Some(codec) = onair_flv::classify(MediaKind::Audio, &frame.data).audio {
                media.audio_codec = Some(codec.to_string());
            }
        }
    }
}

/// Accepts RTMP connections until shutdown.
pub(crate) async fn serve(state: Arc<AppState>, listener: TcpListener) {
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    loop {
        let accepted = tokio::select! {
            _ = state.shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let (socket, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors and the like: back off instead of spinning.
                warn!(error = %e, "rtmp accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let span = info_span!("rtmp", %peer, conn = id, channel = field::Empty);
        state
            .tasks
            .spawn(connection(state.clone(), socket, peer).instrument(span));
    }
}

async fn connection(state: Arc<AppState>, socket: TcpStream, peer: SocketAddr) {
    Metrics::inc(&state.metrics.rtmp_connections);
    state.metrics.rtmp_open.fetch_add(1, Ordering::Relaxed);
    crate::net::configure(&socket, state.config.hub.write_timeout);
    let (reader, writer) = socket.into_split();
    let mut conn = Connection::new(state.clone(), reader, writer, peer);
    match conn.run().await {
        Ok(()) => debug!("connection closed"),
        Err(ConnError::Peer(reason)) => {
            Metrics::inc(&state.metrics.peer_errors);
            warn!(%reason, "connection closed");
        }
        Err(ConnError::Io(e)) => debug!(error = %e, "connection lost"),
    }
    conn.finish();
    state.metrics.rtmp_open.fetch_sub(1, Ordering::Relaxed);
}

/// Why a connection ended early.
#[derive(Debug, thiserror::Error)]
enum ConnError {
    /// The peer broke the protocol or a limit; logged as a warning with the reason.
    #[error("{0}")]
    Peer(String),
    /// The socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl From<SessionError> for ConnError {
    fn from(e: SessionError) -> Self {
        ConnError::Peer(e.to_string())
    }
}

enum Role {
    /// Handshake, connect, createStream: not publishing or playing yet.
    Idle,
    Publishing(Publishing),
    Playing(Playing),
}

struct Publishing {
    publisher: Publisher,
    stream: u32,
    channel: String,
    live: LiveId,
    /// The live-session row being written, when the key came from the store.
    session_row: Option<SessionRow>,
    started: Instant,
    bytes: u64,
    video_frames: u64,
    audio_frames: u64,
}

struct Playing {
    subscriber: Subscriber,
    stream: u32,
    batch: Vec<Arc<Entry>>,
    audio: bool,
    video: bool,
    /// Video was switched back on (`receiveVideo`): hold it until a keyframe, which is the
    /// first frame a decoder can use.
    video_needs_keyframe: bool,
    /// When the viewer gives up waiting for a publisher: set while the channel is not live.
    give_up_at: Option<tokio::time::Instant>,
}

/// What woke the connection besides its own socket.
enum Wake {
    Delivery(Result<Delivery, RecvError>),
    Kicked,
    GiveUp,
}

struct Connection {
    state: Arc<AppState>,
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    peer: SocketAddr,
    session: ServerSession,
    out: VecDeque<Bytes>,
    role: Role,
    closing: bool,
}

impl Connection {
    fn new(
        state: Arc<AppState>,
        reader: OwnedReadHalf,
        writer: OwnedWriteHalf,
        peer: SocketAddr,
    ) -> Self {
        let c = &state.config.rtmp;
        let config = ServerConfig {
            chunk_size: c.chunk_size,
            window_ack_size: c.window_ack_size,
            peer_bandwidth: c.window_ack_size,
            limits: onair_rtmp::limits::RtmpLimits {
                max_message_len: c.max_message_size,
                ..Default::default()
            },
            ping_interval: c.ping_interval,
            idle_timeout: c.idle_timeout,
            handshake_timeout: c.handshake_timeout,
        };
        let session = ServerSession::new(config, Instant::now(), rand::random());
        Connection {
            state,
            reader,
            writer,
            peer,
            session,
            out: VecDeque::new(),
            role: Role::Idle,
            closing: false,
        }
    }

    async fn run(&mut self) -> Result<(), ConnError> {
        let mut buf = BytesMut::with_capacity(64 * 1024);
        let shutdown = self.state.shutdown.clone();
        // Both live across iterations: registering a fresh timer or cancellation waiter on
        // every wake-up would cost each viewer two lock round-trips per frame.
        let cancelled = shutdown.cancelled();
        tokio::pin!(cancelled);
        let timer = tokio::time::sleep_until(tokio::time::Instant::now());
        tokio::pin!(timer);
        let mut timer_at = None;
        loop {
            self.drain().await?;
            self.flush().await?;
            if self.closing {
                return Ok(());
            }
            let next = self
                .session
                .poll_timeout()
                .map(tokio::time::Instant::from_std);
            if next != timer_at {
                if let Some(at) = next {
                    timer.as_mut().reset(at);
                }
                timer_at = next;
            }
            tokio::select! {
                _ = &mut cancelled => {
                    self.stop_for_shutdown();
                    self.flush().await?;
                    return Ok(());
                }
                read = self.reader.read_buf(&mut buf) => {
                    if read? == 0 {
                        return Ok(());
                    }
                    self.session.handle_input(Instant::now(), &buf)?;
                    buf.clear();
                }
                _ = &mut timer, if timer_at.is_some() => {
                    timer_at = None;
                    self.session.handle_timeout(Instant::now())?;
                }
                wake = wait_role(&mut self.role) => self.on_wake(wake)?,
            }
        }
    }

    /// Writes whatever is queued; a peer that accepts nothing for `hub.write_timeout` is
    /// dropped (the hub has already moved it forward in the meantime).
    async fn flush(&mut self) -> Result<(), ConnError> {
        if self.out.is_empty() {
            return Ok(());
        }
        let limit = self.state.config.hub.write_timeout;
        write_all_queued_within(&mut self.writer, &mut self.out, limit)
            .await
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::TimedOut {
                    ConnError::Peer(e.to_string())
                } else {
                    ConnError::Io(e)
                }
            })
    }

    /// Takes every output of the session, handling events as they come (an event may queue
    /// more output, which the loop picks up).
    async fn drain(&mut self) -> Result<(), ConnError> {
        while let Some(output) = self.session.poll_output() {
            match output {
                ServerOutput::Transmit(bytes) => self.out.push_back(bytes),
                ServerOutput::Event(event) => self.on_event(event).await?,
            }
        }
        Ok(())
    }

    async fn on_event(&mut self, event: ServerEvent) -> Result<(), ConnError> {
        match event {
            ServerEvent::PublishRequested {
                request,
                stream,
                app,
                key,
                ..
            } => self.on_publish(request, stream, app, key).await,
            ServerEvent::PlayRequested {
                request,
                stream,
                app,
                name,
                ..
            } => {
                self.on_play(request, stream, &app, &name);
                Ok(())
            }
            ServerEvent::Media {
                stream,
                kind,
                timestamp,
                payload,
            } => {
                self.on_media(stream, kind, timestamp, payload);
                Ok(())
            }
            ServerEvent::Metadata {
                stream,
                timestamp,
                payload,
            } => {
                self.on_media(stream, MediaKind::Script, timestamp, payload);
                Ok(())
            }
            ServerEvent::PublishStopped { stream } => {
                if matches!(&self.role, Role::Publishing(p) if p.stream == stream) {
                    self.end_publish("publisher stopped");
                }
                Ok(())
            }
            ServerEvent::PlayStopped { stream } => {
                if let Role::Playing(p) = &self.role
                    && p.stream == stream
                {
                    info!(channel = p.subscriber.channel(), "rtmp viewer left");
                    self.role = Role::Idle;
                }
                Ok(())
            }
            ServerEvent::ReceiveAudio { enabled, .. } => {
                if let Role::Playing(p) = &mut self.role {
                    p.audio = enabled;
                }
                Ok(())
            }
            ServerEvent::ReceiveVideo { enabled, .. } => {
                if let Role::Playing(p) = &mut self.role {
                    p.video_needs_keyframe |= enabled && !p.video;
                    p.video = enabled;
                }
                Ok(())
            }
            ServerEvent::Seek { stream, .. } => {
                // Live has one position, the live edge: move forward to the newest keyframe
                // (never back: frames already sent must not be sent again).
                if let Role::Playing(p) = &mut self.role
                    && p.stream == stream
                {
                    p.subscriber.jump_to_live_edge();
                }
                Ok(())
            }
            ServerEvent::Connected { .. } => {
                // The event's tcUrl and app may carry a key: log neither.
                debug!("client connected");
                Ok(())
            }
            other => {
                debug!(event = ?other, "session event");
                Ok(())
            }
        }
    }

    async fn on_publish(
        &mut self,
        request: RequestId,
        stream: u32,
        app: String,
        name: String,
    ) -> Result<(), ConnError> {
        if !matches!(self.role, Role::Idle) {
            self.session.reject_publish(
                request,
                Reject::BadName("this connection is already publishing or playing".into()),
            );
            return Ok(());
        }
        let (key, _query) = split_query(&name);
        if app != self.state.config.rtmp.app {
            self.refuse(request, Refusal::UnknownApp);
            return Ok(());
        }
        let req = PublishRequest {
            app,
            key: StreamKey::new(key.to_owned()),
            peer: self.peer,
        };
        let authorized = match self.state.auth.authorize(&req).await {
            Ok(a) => a,
            Err(refusal) => {
                self.refuse(request, refusal);
                return Ok(());
            }
        };
        let channel = authorized.channel.clone();
        Span::current().record("channel", channel.as_str());
        if !self.session.is_publish_pending(request) {
            // Withdrawn while the key was checked: claiming the channel now would reset it
            // (or, with takeover, kick its publisher) for nobody.
            debug!(channel, "publish withdrawn before it was accepted");
            return Ok(());
        }
        let options = PublishOptions {
            takeover: self.state.config.hub.takeover,
        };
        match self.state.hub.publish(&channel, options) {
            Ok(publisher) => {
                if !self.session.accept_publish(request) {
                    // The peer withdrew the publish (deleteStream) while we were authorising.
                    debug!(channel, "publish withdrawn before it was accepted");
                    return Ok(());
                }
                info!(channel, "publish started");
                let live = self.state.lives.start(LiveStart {
                    channel: channel.clone(),
                    channel_id: authorized.channel_id,
                    key_jti: authorized.key_jti.clone(),
                    peer: self.peer,
                });
                let session_row = authorized.channel_id.map(|id| self.spawn_session_start(id));
                self.state.hls.publish_started(
                    &channel,
                    authorized.channel_id,
                    session_row.clone(),
                );
                if let Some(jti) = &authorized.key_jti {
                    self.spawn_key_touch(jti.clone());
                }
                self.role = Role::Publishing(Publishing {
                    publisher,
                    stream,
                    channel,
                    live,
                    session_row,
                    started: Instant::now(),
                    bytes: 0,
                    video_frames: 0,
                    audio_frames: 0,
                });
            }
            Err(e) => {
                Metrics::inc(&self.state.metrics.publishes_refused);
                warn!(channel, reason = %e, "publish refused");
                let reject = match e {
                    PublishError::AlreadyLive { .. } => {
                        Reject::BadName(format!("{e}; stop the other publisher first"))
                    }
                    _ => Reject::Failed(e.to_string()),
                };
                self.session.reject_publish(request, reject);
            }
        }
        Ok(())
    }

    /// Writes the live-session row off the connection's task: a slow store must not hold up
    /// the media. A store outage costs the row, not the publish.
    fn spawn_session_start(&self, channel_id: i64) -> SessionRow {
        let store = self.state.platform.store().clone();
        let row = onair_store::NewLiveSession {
            channel_id,
            started_at: chrono::Utc::now(),
            publisher_addr: self.peer.to_string(),
            video_codec: None,
            audio_codec: None,
        };
        // The tracked task writes the row whether or not anyone waits for its id.
        let written = self.state.tasks.spawn(
            async move {
                match store.start_live_session(row).await {
                    Ok(id) => Some(id),
                    Err(e) => {
                        warn!(error = %e, "cannot record the live session");
                        None
                    }
                }
            }
            .in_current_span(),
        );
        futures_util::FutureExt::shared(futures_util::FutureExt::boxed(async move {
            written.await.ok().flatten()
        }))
    }

    /// Records the key's last use (for its owner's key list) off the connection's task.
    fn spawn_key_touch(&self, jti: String) {
        let store = self.state.platform.store().clone();
        self.state.tasks.spawn(
            async move {
                if let Err(e) = store.touch_stream_key(&jti, chrono::Utc::now()).await {
                    debug!(error = %e, "cannot record the key's last use");
                }
            }
            .in_current_span(),
        );
    }

    fn refuse(&mut self, request: RequestId, refusal: Refusal) {
        Metrics::inc(&self.state.metrics.publishes_refused);
        // The refusal never contains the key (see `Refusal`), so it is safe to log and send.
        warn!(reason = %refusal, "publish refused");
        let reject = match refusal {
            Refusal::UnknownKey
            | Refusal::InvalidKey(_)
            | Refusal::Expired
            | Refusal::Revoked
            | Refusal::NoChannel
            | Refusal::Banned
            | Refusal::NotStreamer => Reject::Unauthorized(refusal.to_string()),
            Refusal::Unavailable(_) => Reject::Failed(refusal.to_string()),
            _ => Reject::BadName(refusal.to_string()),
        };
        self.session.reject_publish(request, reject);
    }

    fn on_play(&mut self, request: RequestId, stream: u32, app: &str, name: &str) {
        let (channel, _query) = split_query(name);
        if self.state.auth.is_stream_key(channel) {
            warn!(
                "play refused: the play name is a stream key ([redacted]); play the channel name instead"
            );
            self.session.reject_play(
                request,
                Reject::NotFound("play the channel name, not the stream key".into()),
            );
            return;
        }
        if app != self.state.config.rtmp.app || !is_valid_name(channel) {
            // Neither name is logged: either may be a key typed into the wrong field.
            warn!("play refused: unknown application or invalid channel name");
            self.session
                .reject_play(request, Reject::NotFound("no such stream".into()));
            return;
        }
        if !matches!(self.role, Role::Idle) {
            self.session.reject_play(
                request,
                Reject::BadName("this connection is already publishing or playing".into()),
            );
            return;
        }
        Span::current().record("channel", channel);
        let subscriber = self.state.hub.subscribe(channel, Protocol::Rtmp);
        let give_up_at = (!subscriber.is_live())
            .then(|| tokio::time::Instant::now() + self.state.config.hub.wait_for_publisher);
        if !self.session.accept_play(request) {
            debug!(channel, "play withdrawn before it was accepted");
            return;
        }
        info!(channel, live = give_up_at.is_none(), "rtmp viewer joined");
        self.role = Role::Playing(Playing {
            subscriber,
            stream,
            batch: Vec::new(),
            audio: true,
            video: true,
            video_needs_keyframe: false,
            give_up_at,
        });
    }

    fn on_media(&mut self, stream: u32, kind: MediaKind, timestamp: u32, payload: Bytes) {
        let Role::Publishing(p) = &mut self.role else {
            debug!(
                ?kind,
                "media from a connection that is not publishing; dropped"
            );
            return;
        };
        if p.stream != stream {
            debug!(stream, "media on a stream that is not publishing; dropped");
            return;
        }
        p.bytes += payload.len() as u64;
        self.state
            .metrics
            .bytes_in
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
        let frame = onair_flv::frame_from_tag(kind, Timestamp::from_millis(timestamp), payload);
        if frame.sequence_header || frame.kind == MediaKind::Script {
            // Rare (once per stream, or on a change): worth a look for the live figures.
            let (lives, live) = (&self.state.lives, p.live);
            lives.update_media(&p.channel, live, |m| note_media(m, &frame));
        }
        match (frame.kind, frame.sequence_header) {
            (MediaKind::Video, false) => p.video_frames += 1,
            (MediaKind::Audio, false) => p.audio_frames += 1,
            _ => {}
        }
        p.publisher.push(frame);
    }

    fn on_wake(&mut self, wake: Wake) -> Result<(), ConnError> {
        match wake {
            Wake::Kicked => {
                if let Role::Publishing(p) = &self.role {
                    let stream = p.stream;
                    self.session
                        .stop_publish(stream, "the publish was ended by the server");
                    self.end_publish("kicked");
                    self.closing = true;
                }
                Ok(())
            }
            Wake::GiveUp => {
                if let Role::Playing(p) = &self.role {
                    info!(
                        channel = p.subscriber.channel(),
                        "no publisher came; closing the viewer"
                    );
                    self.session.notify_unpublished(p.stream);
                    self.closing = true;
                }
                Ok(())
            }
            Wake::Delivery(d) => self.on_delivery(d),
        }
    }

    fn on_delivery(&mut self, delivery: Result<Delivery, RecvError>) -> Result<(), ConnError> {
        let Role::Playing(p) = &mut self.role else {
            return Ok(());
        };
        match delivery {
            Ok(Delivery::Frames) => {
                p.give_up_at = None;
                let chunk_size = self.session.chunk_size_out();
                for entry in &p.batch {
                    let f = entry.frame();
                    let wanted = match f.kind {
                        MediaKind::Audio => p.audio,
                        MediaKind::Video if p.video_needs_keyframe => {
                            let usable = f.keyframe || f.sequence_header;
                            p.video_needs_keyframe = !f.keyframe;
                            usable
                        }
                        MediaKind::Video => p.video,
                        MediaKind::Script => true,
                    };
                    if !wanted {
                        continue;
                    }
                    let bytes = if p.stream == SHARED_STREAM_ID
                        && chunk_size == self.state.config.rtmp.chunk_size
                    {
                        entry.encoded(Encoding::RtmpChunks, |f| encode_shared(f, chunk_size))
                    } else {
                        self.session.encode_media(
                            p.stream,
                            f.kind,
                            f.timestamp.as_millis(),
                            f.data.clone(),
                        )
                    };
                    self.out.push_back(bytes);
                }
                p.batch.clear();
                Ok(())
            }
            Ok(Delivery::PublisherLeft) => {
                debug!("publisher left; viewer waits");
                p.give_up_at =
                    Some(tokio::time::Instant::now() + self.state.config.hub.republish_grace);
                Ok(())
            }
            Ok(Delivery::PublisherBack) => {
                p.give_up_at = None;
                self.session.notify_republished(p.stream);
                Ok(())
            }
            Err(RecvError::Closed) => {
                self.session.notify_unpublished(p.stream);
                self.closing = true;
                Ok(())
            }
            Err(e) => {
                Metrics::inc(&self.state.metrics.viewers_dropped_slow);
                Err(ConnError::Peer(format!("viewer too slow: {e}")))
            }
        }
    }

    fn end_publish(&mut self, why: &str) {
        if let Role::Publishing(p) = std::mem::replace(&mut self.role, Role::Idle) {
            // `None` when a takeover already replaced this publish in the registry: its
            // session row must still be ended, only without the registry's figures.
            let ended = self.state.lives.end(&p.channel, p.live);
            if let Some(row) = p.session_row {
                let (media, peak_viewers) =
                    ended.map(|e| (e.media, e.peak_viewers)).unwrap_or_default();
                let store = self.state.platform.store().clone();
                let bytes = p.bytes;
                self.state.tasks.spawn(
                    async move {
                        let Some(id) = row.await else { return };
                        let result = async {
                            store
                                .set_live_session_codecs(
                                    id,
                                    media.video_codec.as_deref(),
                                    media.audio_codec.as_deref(),
                                )
                                .await?;
                            store
                                .end_live_session(id, chrono::Utc::now(), bytes, peak_viewers)
                                .await
                        }
                        .await;
                        if let Err(e) = result {
                            warn!(error = %e, session = id, "cannot record the end of the live session");
                        }
                    }
                    .in_current_span(),
                );
            }
            let secs = p.started.elapsed().as_secs_f64().max(0.001);
            info!(
                channel = p.channel,
                why,
                duration_s = format!("{secs:.1}"),
                bytes = p.bytes,
                kbps = format!("{:.0}", p.bytes as f64 * 8.0 / secs / 1000.0),
                fps = format!("{:.1}", p.video_frames as f64 / secs),
                audio_frames = p.audio_frames,
                "publish stopped"
            );
        }
    }

    fn stop_for_shutdown(&mut self) {
        match &self.role {
            Role::Publishing(p) => {
                let stream = p.stream;
                self.session
                    .stop_publish(stream, "the server is shutting down");
                self.end_publish("server shutdown");
            }
            Role::Playing(p) => self.session.notify_unpublished(p.stream),
            Role::Idle => {}
        }
        while let Some(output) = self.session.poll_output() {
            if let ServerOutput::Transmit(b) = output {
                self.out.push_back(b);
            }
        }
    }

    fn finish(&mut self) {
        self.end_publish("connection closed");
        if let Role::Playing(p) = &self.role {
            info!(channel = p.subscriber.channel(), "rtmp viewer left");
        }
        self.role = Role::Idle;
    }
}

/// The frame as one complete RTMP message in fmt-0/fmt-3 chunks, for every viewer on the
/// shared stream id and chunk size.
fn encode_shared(frame: &Frame, chunk_size: u32) -> Bytes {
    let msg = media_raw_message(
        frame.kind,
        frame.timestamp.as_millis(),
        SHARED_STREAM_ID,
        frame.data.clone(),
    );
    encode_standalone(&msg, chunk_size)
}

async fn wait_role(role: &mut Role) -> Wake {
    match role {
        Role::Idle => std::future::pending().await,
        Role::Publishing(p) => {
            p.publisher.kicked().await;
            Wake::Kicked
        }
        Role::Playing(p) => {
            let give_up = sleep_until_opt(p.give_up_at);
            tokio::select! {
                d = p.subscriber.recv(&mut p.batch) => Wake::Delivery(d),
                _ = give_up => Wake::GiveUp,
            }
        }
    }
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
