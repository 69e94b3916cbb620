//! Playing a catalogue video: `play` on the [`VOD_APP`] application with the video id as
//! the stream name (`?token=ACCESS_TOKEN` for a private video's owner or an admin).
//!
//! Frames come from the [`VodLibrary`](crate::vod::VodLibrary)'s shared blocks and are paced
//! against a clock: at a start, seek or unpause [`BURST`] of media goes at once so a player
//! shows a picture quickly, then media runs at most [`LEAD`] + [`TICK`] ahead of wall time.
//! Keeping the lead small is what makes `pause` stop the flow at once: nothing is queued
//! beyond what the last wake-up wrote. Unpause continues from the frame after the last one
//! written (not from the keyframe before it): the player still has everything up to there.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use onair_media::MediaKind;
use onair_rtmp::session::{Reject, RequestId};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{Span, debug, info, warn};

use super::SHARED_STREAM_ID;
use super::connection::{Connection, Role};
use crate::channel::split_query;
use crate::vod::{Loaded, VodFrame, VodHandle, VodRefusal};

/// The RTMP application of catalogue videos: `rtmp://host/vod/{video_id}`.
pub(super) const VOD_APP: &str = "vod";

/// Media sent at once after a start, seek or unpause (ms).
const BURST: u32 = 400;
/// How far media may run ahead of wall time once the burst is spent (ms).
const LEAD: u32 = 60;
/// A wake-up waits this long past the first frame that was not yet due, so each one writes
/// a few frames instead of one: the lead stays within `LEAD..LEAD + TICK`.
const TICK: Duration = Duration::from_millis(40);

/// What goes out before the next frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prelude {
    Nothing,
    /// After a seek: the sequence headers again.
    Headers,
    /// At the start: `onMetaData` and the sequence headers.
    MetadataAndHeaders,
}

pub(super) struct VodPlaying {
    handle: VodHandle,
    pub(super) stream: u32,
    /// The block being played and the next frame in it.
    block: usize,
    next: usize,
    frames: Option<Arc<Vec<VodFrame>>>,
    /// The read of `block`, while it is not in `frames` yet.
    pending: Option<watch::Receiver<Option<Loaded>>>,
    prelude: Prelude,
    /// Wall time and media time of the first frame since the last (re)start.
    clock: Option<(Instant, u32)>,
    /// When the next frame is due; `None` while waiting for a block, paused or ended.
    wake_at: Option<Instant>,
    paused: bool,
    ended: bool,
    /// `play`'s duration (ms), and the media time it ends at.
    duration: Option<u32>,
    stop_at: Option<u32>,
    audio: bool,
    video: bool,
    video_needs_keyframe: bool,
}

/// What woke a VOD viewer.
pub(super) enum VodWake {
    /// A frame is due.
    Tick,
    /// The block it waited for was read (or not).
    Loaded(Loaded),
}

impl VodPlaying {
    pub(super) fn video_id(&self) -> i64 {
        self.handle.video().id
    }

    /// Cancel-safe: nothing changes until the wait is over.
    pub(super) async fn wait(&mut self) -> VodWake {
        if self.paused || self.ended {
            return std::future::pending().await;
        }
        if let Some(rx) = &mut self.pending {
            let loaded = match rx.wait_for(Option::is_some).await {
                Ok(value) => value.clone().unwrap_or_else(|| Err(Arc::from("no block"))),
                // The reading task is gone without an answer (it panicked).
                Err(_) => Err(Arc::from("the read was abandoned")),
            };
            self.pending = None;
            return VodWake::Loaded(loaded);
        }
        match self.wake_at {
            Some(at) => {
                tokio::time::sleep_until(at).await;
                VodWake::Tick
            }
            None => std::future::pending().await,
        }
    }

    /// Starts again at `position_ms` (the keyframe at or before it).
    fn restart_at(&mut self, position_ms: u32) {
        self.block = self.handle.video().index.block_for(position_ms);
        self.next = 0;
        self.frames = None;
        self.pending = None;
        self.clock = None;
        self.ended = false;
        self.video_needs_keyframe = false;
        self.stop_at = self.duration.map(|d| position_ms.saturating_add(d));
        self.wake_at = Some(Instant::now());
    }
}

/// A play argument in ms as a position: negative (live/any) and NaN are 0.
fn position(ms: f64) -> u32 {
    if ms.is_nan() || ms <= 0.0 {
        0
    } else {
        ms.min(f64::from(u32::MAX)) as u32
    }
}

impl Connection {
    /// `play` on [`VOD_APP`]. Refused with `NetStream.Play.StreamNotFound` alike for an
    /// unknown id, a malformed name and a private video the token does not open.
    pub(super) async fn on_vod_play(
        &mut self,
        request: RequestId,
        stream: u32,
        name: &str,
        start: f64,
        duration: f64,
    ) {
        if !matches!(self.role, Role::Idle) {
            self.session.reject_play(
                request,
                Reject::BadName("this connection is already publishing or playing".into()),
            );
            return;
        }
        let (id, query) = split_query(name);
        let token = query.and_then(|q| {
            q.split('&')
                .find_map(|pair| pair.strip_prefix("token="))
                .filter(|t| !t.is_empty())
        });
        let Some(id) = id.parse::<i64>().ok().filter(|&id| id > 0) else {
            // Not logged: the name may be a key typed into the wrong field.
            debug!("vod play refused: the stream name is not a video id");
            self.session
                .reject_play(request, Reject::NotFound(VodRefusal::NotFound.to_string()));
            return;
        };
        let handle = match self.ctx.vod.open(id, token).await {
            Ok(h) => h,
            Err(refusal) => {
                info!(video = id, reason = %refusal, "vod play refused");
                let reject = match refusal {
                    VodRefusal::NotFound | VodRefusal::HlsOnly(_) => {
                        Reject::NotFound(refusal.to_string())
                    }
                    VodRefusal::Unavailable | VodRefusal::Broken { .. } => {
                        Reject::Failed(refusal.to_string())
                    }
                };
                self.session.reject_play(request, reject);
                return;
            }
        };
        if !self.session.accept_play(request) {
            debug!(video = id, "vod play withdrawn before it was accepted");
            return;
        }
        Span::current().record("channel", format!("vod/{id}"));
        info!(video = id, start, duration, "rtmp vod viewer joined");
        let duration = (duration >= 0.0).then(|| position(duration));
        let mut playing = VodPlaying {
            handle,
            stream,
            block: 0,
            next: 0,
            frames: None,
            pending: None,
            prelude: Prelude::MetadataAndHeaders,
            clock: None,
            wake_at: None,
            paused: false,
            ended: false,
            duration,
            stop_at: None,
            audio: true,
            video: true,
            video_needs_keyframe: false,
        };
        playing.restart_at(position(start));
        self.role = Role::Vod(playing);
    }

    pub(super) fn on_vod_wake(&mut self, wake: VodWake) {
        let Role::Vod(v) = &mut self.role else {
            return;
        };
        match wake {
            VodWake::Tick => {}
            VodWake::Loaded(Ok(frames)) => v.frames = Some(frames),
            VodWake::Loaded(Err(e)) => {
                warn!(video = v.video_id(), error = %e, "vod: cannot read the video");
                let stream = v.stream;
                self.session
                    .fail_play(stream, &format!("cannot read the video: {e}"));
                self.role = Role::Idle;
                self.closing = true;
                return;
            }
        }
        self.vod_pump();
    }

    pub(super) fn on_vod_pause(&mut self, paused: bool) {
        if let Role::Vod(v) = &mut self.role {
            v.paused = paused;
            if !paused {
                v.clock = None;
                v.wake_at = Some(Instant::now());
            }
        }
    }

    pub(super) fn on_vod_seek(&mut self, position_ms: f64) {
        if let Role::Vod(v) = &mut self.role {
            let target = position(position_ms);
            v.restart_at(target);
            v.prelude = v.prelude.max_with(Prelude::Headers);
            let stream = v.stream;
            let id = v.video_id();
            self.session.restart_play(
                stream,
                &format!("Started playing video {id} at {target} ms."),
            );
        }
    }

    pub(super) fn on_vod_receive(&mut self, kind: MediaKind, enabled: bool) {
        if let Role::Vod(v) = &mut self.role {
            let was = match kind {
                MediaKind::Audio => std::mem::replace(&mut v.audio, enabled),
                _ => {
                    v.video_needs_keyframe |= enabled && !v.video;
                    std::mem::replace(&mut v.video, enabled)
                }
            };
            // A track switched on may never have had its sequence header (it was off at
            // the start): the headers go again before its next frame.
            if enabled && !was {
                v.prelude = v.prelude.max_with(Prelude::Headers);
            }
        }
    }

    /// Writes every frame that is due, asks for the next block when one runs out, and
    /// ends the play at the end of the file or of the requested duration.
    fn vod_pump(&mut self) {
        let Connection {
            role,
            session,
            out,
            ctx,
            ..
        } = self;
        let Role::Vod(v) = role else {
            return;
        };
        let now = Instant::now();
        v.wake_at = None;
        let shared =
            v.stream == SHARED_STREAM_ID && session.chunk_size_out() == ctx.rtmp.chunk_size;
        let chunk_size = ctx.rtmp.chunk_size;
        let stream = v.stream;
        let mut send = |frame: &VodFrame| -> Bytes {
            if shared {
                frame.shared_chunks(SHARED_STREAM_ID, chunk_size)
            } else {
                session.encode_media(stream, frame.kind, frame.timestamp, frame.data.clone())
            }
        };
        if v.paused || v.ended {
            return;
        }
        let index = &v.handle.video().index;
        if v.prelude != Prelude::Nothing {
            if v.prelude == Prelude::MetadataAndHeaders
                && let Some(metadata) = &index.metadata
            {
                out.push_back(send(metadata));
            }
            for header in &index.headers {
                let wanted = match header.kind {
                    MediaKind::Audio => v.audio,
                    _ => v.video,
                };
                if wanted {
                    out.push_back(send(header));
                }
            }
            v.prelude = Prelude::Nothing;
        }
        let mut end = false;
        loop {
            let Some(frames) = &v.frames else {
                if v.pending.is_none() {
                    match v.handle.block(v.block) {
                        Some(rx) => v.pending = Some(rx),
                        None => end = true,
                    }
                }
                break;
            };
            let Some(frame) = frames.get(v.next) else {
                v.block += 1;
                v.next = 0;
                v.frames = None;
                continue;
            };
            if v.stop_at.is_some_and(|stop| frame.timestamp > stop) {
                end = true;
                break;
            }
            let (wall0, media0) = *v.clock.get_or_insert((now, frame.timestamp));
            let ahead = frame.timestamp.saturating_sub(media0);
            let elapsed = u32::try_from(now.duration_since(wall0).as_millis()).unwrap_or(u32::MAX);
            if ahead > BURST.max(elapsed.saturating_add(LEAD)) {
                let due = Duration::from_millis(u64::from(ahead - LEAD));
                v.wake_at = Some(wall0 + due + TICK);
                break;
            }
            v.next += 1;
            let wanted = match frame.kind {
                MediaKind::Audio => v.audio,
                MediaKind::Video if v.video_needs_keyframe => {
                    let usable = frame.keyframe || frame.sequence_header;
                    v.video_needs_keyframe = !frame.keyframe;
                    usable
                }
                MediaKind::Video => v.video,
                MediaKind::Script => true,
            };
            if wanted {
                out.push_back(send(frame));
            }
        }
        if end {
            v.ended = true;
            let id = v.video_id();
            debug!(video = id, "vod: play complete");
            session.complete_play(stream, &format!("Stopped playing video {id}."));
        }
    }
}

impl Prelude {
    /// The stronger of two preludes owed (a seek before the start's prelude went out keeps
    /// the metadata).
    fn max_with(self, other: Prelude) -> Prelude {
        let rank = |p: Prelude| match p {
            Prelude::Nothing => 0,
            Prelude::Headers => 1,
            Prelude::MetadataAndHeaders => 2,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}
