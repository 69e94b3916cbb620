//! One RTMP connection's loop: reads feed the session, session output and hub deliveries
//! are written with one `writev` per wake-up, and events go to publish or play.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use onair_hub::{Delivery, Entry, Publisher, RecvError, Subscriber};
use onair_media::MediaKind;
use onair_rtmp::session::{Reject, ServerConfig, ServerEvent, ServerOutput, ServerSession};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::{debug, info};

use super::vod::{VOD_APP, VodPlaying, VodWake};
use super::{ConnError, Ingest};
use crate::lives::{LiveId, SessionRow};
use crate::metrics::{Metrics, Wire};
use crate::net::{SocketFd, Unacknowledged, write_all_queued_within};

/// How long a connection we close waits for the peer to close its side (see
/// [`Connection::close_cleanly`]).
const CLOSE_LINGER: std::time::Duration = std::time::Duration::from_secs(2);

pub(super) enum Role {
    /// Handshake, connect, createStream: not publishing or playing yet.
    Idle,
    Publishing(Publishing),
    Playing(Playing),
    /// Playing a catalogue video (`vod` application).
    Vod(VodPlaying),
}

pub(super) struct Publishing {
    pub(super) publisher: Publisher,
    pub(super) stream: u32,
    pub(super) channel: String,
    pub(super) live: LiveId,
    /// The live-session row being written, when the key came from the store.
    pub(super) session_row: Option<SessionRow>,
    pub(super) started: Instant,
    pub(super) bytes: u64,
    pub(super) video_frames: u64,
    pub(super) audio_frames: u64,
}

pub(super) struct Playing {
    pub(super) subscriber: Subscriber,
    pub(super) stream: u32,
    pub(super) batch: Vec<Arc<Entry>>,
    pub(super) audio: bool,
    pub(super) video: bool,
    /// Video was switched back on (`receiveVideo`): hold it until a keyframe, which is the
    /// first frame a decoder can use.
    pub(super) video_needs_keyframe: bool,
    /// When the viewer gives up waiting for a publisher: set while the channel is not live.
    pub(super) give_up_at: Option<tokio::time::Instant>,
    /// The media written to the socket that the player has not acknowledged yet.
    pub(super) unacknowledged: Unacknowledged,
}

/// The socket's read half: a TCP stream's, or a TLS stream's for RTMPS. Boxed rather than a
/// type parameter so publish and play stay one non-generic code path; the indirection costs
/// nothing next to a system call.
pub(super) type Reader = Box<dyn AsyncRead + Send + Unpin>;
/// The write half, as [`Reader`].
pub(super) type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// What woke the connection besides its own socket.
pub(super) enum Wake {
    Delivery(Result<Delivery, RecvError>),
    Kicked,
    GiveUp,
    Vod(VodWake),
}

pub(super) struct Connection {
    pub(super) ctx: Arc<Ingest>,
    reader: Reader,
    writer: Writer,
    pub(super) peer: SocketAddr,
    pub(super) session: ServerSession,
    pub(super) out: VecDeque<Bytes>,
    pub(super) role: Role,
    pub(super) closing: bool,
    /// Set on a connection past a connection cap: its publish or play is refused with this
    /// reason, and then it is closed.
    pub(super) refusal: Option<String>,
    /// The TCP socket under the reader and writer, for its send-queue length; `None` where
    /// the connection is not one of ours (tests).
    pub(super) socket: Option<SocketFd>,
}

impl Connection {
    pub(super) fn new(ctx: Arc<Ingest>, reader: Reader, writer: Writer, peer: SocketAddr) -> Self {
        let c = &ctx.rtmp;
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
            ctx,
            reader,
            writer,
            peer,
            session,
            out: VecDeque::new(),
            role: Role::Idle,
            closing: false,
            refusal: None,
            socket: None,
        }
    }

    pub(super) async fn run(&mut self) -> Result<(), ConnError> {
        let mut buf = BytesMut::with_capacity(64 * 1024);
        let shutdown = self.ctx.shutdown.clone();
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
                self.close_cleanly().await;
                return Ok(());
            }
            if let (Role::Playing(p), Some(fd)) = (&mut self.role, self.socket) {
                // Everything queued is written: what the kernel still holds is all that
                // stands between the player and the ring.
                let media = p.unacknowledged.media(fd, 0);
                p.subscriber.set_unacknowledged(media);
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

    /// Ends a connection we decided to close: FIN, then what the peer still sends (acks,
    /// pings, its own close) is read and thrown away until it closes too or
    /// [`CLOSE_LINGER`] passes. Closing a socket with unread input makes the kernel answer
    /// with a reset, which players report as a network error instead of the status we sent.
    pub(super) async fn close_cleanly(&mut self) {
        let _ = tokio::time::timeout(CLOSE_LINGER, async {
            if self.writer.shutdown().await.is_err() {
                return;
            }
            let mut sink = [0u8; 4096];
            while matches!(self.reader.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
    }

    /// Writes whatever is queued; a peer that accepts nothing for `hub.write_timeout` is
    /// dropped (the hub has already moved it forward in the meantime).
    async fn flush(&mut self) -> Result<(), ConnError> {
        if self.out.is_empty() {
            return Ok(());
        }
        let limit = self.ctx.hub_config.write_timeout;
        // A player's writes are its media (and a few control messages): counted once per
        // batch, after the batch is written.
        let playing = matches!(self.role, Role::Playing(_) | Role::Vod(_));
        let batch: u64 = if playing {
            self.out.iter().map(|b| b.len() as u64).sum()
        } else {
            0
        };
        write_all_queued_within(&mut self.writer, &mut self.out, limit)
            .await
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::TimedOut {
                    if playing {
                        // Stuck rather than slow: skips cannot help a socket that takes nothing.
                        Metrics::inc(&self.ctx.metrics.viewers_dropped_slow);
                    }
                    ConnError::Peer(e.to_string())
                } else {
                    ConnError::Io(e)
                }
            })?;
        if playing {
            self.ctx.metrics.bytes_out.add(Wire::Rtmp, batch);
        }
        Ok(())
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
        if let Some(reason) = &self.refusal {
            match event {
                ServerEvent::PublishRequested { request, .. } => {
                    // Denied, the status OBS stops on rather than retrying at once.
                    self.session
                        .reject_publish(request, Reject::Denied(reason.clone()));
                    self.closing = true;
                }
                ServerEvent::PlayRequested { request, .. } => {
                    self.session
                        .reject_play(request, Reject::Failed(reason.clone()));
                    self.closing = true;
                }
                _ => {}
            }
            return Ok(());
        }
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
                start,
                duration,
                ..
            } => {
                if app == VOD_APP {
                    self.on_vod_play(request, stream, &name, start, duration)
                        .await;
                } else {
                    self.on_play(request, stream, &app, &name);
                }
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
                if let Role::Vod(v) = &self.role
                    && v.stream == stream
                {
                    info!(video = v.video_id(), "rtmp vod viewer left");
                    self.role = Role::Idle;
                }
                Ok(())
            }
            ServerEvent::ReceiveAudio { enabled, .. } => {
                if let Role::Playing(p) = &mut self.role {
                    p.audio = enabled;
                }
                self.on_vod_receive(MediaKind::Audio, enabled);
                Ok(())
            }
            ServerEvent::ReceiveVideo { enabled, .. } => {
                if let Role::Playing(p) = &mut self.role {
                    p.video_needs_keyframe |= enabled && !p.video;
                    p.video = enabled;
                }
                self.on_vod_receive(MediaKind::Video, enabled);
                Ok(())
            }
            ServerEvent::Paused { paused, .. } => {
                // Live has nothing to hold: a paused live viewer keeps receiving, as on SRS.
                self.on_vod_pause(paused);
                Ok(())
            }
            ServerEvent::Seek {
                stream,
                position_ms,
            } => {
                // Live has one position, the live edge: move forward to the newest keyframe
                // (never back: frames already sent must not be sent again).
                if let Role::Playing(p) = &mut self.role
                    && p.stream == stream
                {
                    p.subscriber.jump_to_live_edge();
                }
                if matches!(&self.role, Role::Vod(v) if v.stream == stream) {
                    self.on_vod_seek(position_ms);
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
            Wake::Vod(w) => {
                self.on_vod_wake(w);
                Ok(())
            }
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
            Role::Vod(v) => self.session.notify_unpublished(v.stream),
            Role::Idle => {}
        }
        while let Some(output) = self.session.poll_output() {
            if let ServerOutput::Transmit(b) = output {
                self.out.push_back(b);
            }
        }
    }

    pub(super) fn finish(&mut self) {
        self.end_publish("connection closed");
        match &self.role {
            Role::Playing(p) => info!(channel = p.subscriber.channel(), "rtmp viewer left"),
            Role::Vod(v) => info!(video = v.video_id(), "rtmp vod viewer left"),
            _ => {}
        }
        self.role = Role::Idle;
    }
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
        Role::Vod(v) => Wake::Vod(v.wait().await),
    }
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
