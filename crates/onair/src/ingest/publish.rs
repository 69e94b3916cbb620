//! Publishing: the key is authorised, the channel claimed in the hub, frames pushed as they
//! arrive; the live-session row and the key's last use are written off the connection's task.

use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use onair_hub::{PublishError, PublishOptions};
use onair_media::{Frame, MediaKind, Timestamp};
use onair_rtmp::session::{Reject, RequestId};
use tracing::{Instrument, Span, debug, info, warn};

use super::ConnError;
use super::connection::{Connection, Publishing, Role};
use crate::auth::{PublishRequest, Refusal};
use crate::channel::split_query;
use crate::lives::{LiveStart, MediaInfo, SessionRow};
use crate::metrics::PublishRefusal;
use crate::secret::StreamKey;

impl Connection {
    pub(super) async fn on_publish(
        &mut self,
        request: RequestId,
        stream: u32,
        app: String,
        name: String,
    ) -> Result<(), ConnError> {
        if !matches!(self.role, Role::Idle) {
            self.ctx.metrics.publish_refused(PublishRefusal::Busy);
            self.session.reject_publish(
                request,
                Reject::BadName("this connection is already publishing or playing".into()),
            );
            return Ok(());
        }
        let (key, _query) = split_query(&name);
        if app != self.ctx.rtmp.app {
            self.refuse(request, Refusal::UnknownApp);
            return Ok(());
        }
        let req = PublishRequest {
            app,
            key: StreamKey::new(key.to_owned()),
            peer: self.peer,
        };
        let authorized = match self.ctx.auth.authorize(&req).await {
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
            takeover: self.ctx.hub_config.takeover,
        };
        match self.ctx.hub.publish(&channel, options) {
            Ok(publisher) => {
                if !self.session.accept_publish(request) {
                    // The peer withdrew the publish (deleteStream) while we were authorising.
                    debug!(channel, "publish withdrawn before it was accepted");
                    return Ok(());
                }
                info!(channel, "publish started");
                let live = self.ctx.lives.start(LiveStart {
                    channel: channel.clone(),
                    channel_id: authorized.channel_id,
                    key_jti: authorized.key_jti.clone(),
                    peer: self.peer,
                });
                let session_row = authorized.channel_id.map(|id| self.spawn_session_start(id));
                self.ctx
                    .hls
                    .publish_started(&channel, authorized.channel_id, session_row.clone());
                self.ctx
                    .restreams
                    .publish_started(&channel, authorized.channel_id);
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
                self.ctx.metrics.publish_refused(match e {
                    PublishError::AlreadyLive { .. } => PublishRefusal::AlreadyLive,
                    PublishError::Closed => PublishRefusal::ShuttingDown,
                    _ => PublishRefusal::Other,
                });
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
        let store = self.ctx.store.clone();
        let row = onair_store::NewLiveSession {
            channel_id,
            started_at: chrono::Utc::now(),
            publisher_addr: self.peer.to_string(),
            video_codec: None,
            audio_codec: None,
        };
        // The tracked task writes the row whether or not anyone waits for its id.
        let written = self.ctx.tasks.spawn(
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
        let store = self.ctx.store.clone();
        self.ctx.tasks.spawn(
            async move {
                if let Err(e) = store.touch_stream_key(&jti, chrono::Utc::now()).await {
                    debug!(error = %e, "cannot record the key's last use");
                }
            }
            .in_current_span(),
        );
    }

    fn refuse(&mut self, request: RequestId, refusal: Refusal) {
        self.ctx.metrics.publish_refused(match &refusal {
            Refusal::UnknownKey => PublishRefusal::UnknownKey,
            Refusal::InvalidName => PublishRefusal::InvalidName,
            Refusal::UnknownApp => PublishRefusal::UnknownApp,
            Refusal::InvalidKey(_) => PublishRefusal::InvalidKey,
            Refusal::Expired => PublishRefusal::Expired,
            Refusal::Revoked => PublishRefusal::Revoked,
            Refusal::NoChannel => PublishRefusal::NoChannel,
            Refusal::Banned => PublishRefusal::Banned,
            Refusal::NotStreamer => PublishRefusal::NotStreamer,
            Refusal::Unavailable(_) => PublishRefusal::Unavailable,
        });
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

    pub(super) fn on_media(
        &mut self,
        stream: u32,
        kind: MediaKind,
        timestamp: u32,
        payload: Bytes,
    ) {
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
        self.ctx
            .metrics
            .bytes_in
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
        let frame = onair_flv::frame_from_tag(kind, Timestamp::from_millis(timestamp), payload);
        if frame.sequence_header || frame.kind == MediaKind::Script {
            // Rare (once per stream, or on a change): worth a look for the live figures.
            let (lives, live) = (&self.ctx.lives, p.live);
            lives.update_media(&p.channel, live, |m| note_media(m, &frame));
        }
        match (frame.kind, frame.sequence_header) {
            (MediaKind::Video, false) => p.video_frames += 1,
            (MediaKind::Audio, false) => p.audio_frames += 1,
            _ => {}
        }
        p.publisher.push(frame);
    }

    pub(super) fn end_publish(&mut self, why: &str) {
        if let Role::Publishing(p) = std::mem::replace(&mut self.role, Role::Idle) {
            // `None` when a takeover already replaced this publish in the registry: its
            // session row must still be ended, only without the registry's figures.
            let ended = self.ctx.lives.end(&p.channel, p.live);
            if let Some(row) = p.session_row {
                let (media, peak_viewers) =
                    ended.map(|e| (e.media, e.peak_viewers)).unwrap_or_default();
                let store = self.ctx.store.clone();
                let bytes = p.bytes;
                self.ctx.tasks.spawn(
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
}

/// Reads codecs and picture size from a sequence header or the stream's metadata.
fn note_media(media: &mut MediaInfo, frame: &Frame) {
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
