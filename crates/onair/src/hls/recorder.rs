//! One live's recorder: a hub subscription fed through the segmenter into segment files, the
//! live window, the replay playlist and the recording row.
//!
//! File writes run on the blocking pool, one batch per finished segment (the segment, then
//! the two playlists), and the recorder awaits them: while it does, the hub keeps its frames
//! for it like for any slow viewer, and moves it forward (a discontinuity in the replay) only
//! if the disk stalls for longer than `hub.max_lag`.
//!
//! The same frames go to the replay's `media.flv` (`vod::media_flv`): their FLV tags are
//! appended to its body in the segment's batch, and the file is composed when the live ends,
//! before the row says finished (so a crash in between leaves it to start-up recovery).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use onair_hls::{
    Output, Playlist, PlaylistKind, SegmentEntry, Segmenter, SegmenterConfig, UriPattern,
};
use onair_hub::{Delivery, Protocol, RecvError, Subscriber};
use onair_store::{NewRecording, RecordingState};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, info, info_span, warn};

use super::Hls;
use super::files::{self, LIVE_PLAYLIST, REPLAY_PLAYLIST};
use crate::lives::SessionRow;
use crate::vod::media_flv::{self, FlvRecording};

/// How often the recording row's duration and size are brought up to date while live.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(10);

/// What a recorder writes where.
#[derive(Debug)]
pub(super) struct Target {
    pub channel: String,
    pub channel_id: Option<i64>,
    /// The live-session row the recording belongs to, once written.
    pub live_session: Option<crate::lives::SessionRow>,
    /// Relative to the recordings root, as stored in the row.
    pub relative: String,
    pub dir: PathBuf,
    pub generation: u64,
    pub started_at: DateTime<Utc>,
}

#[derive(Debug)]
enum Row {
    /// A `[dev]` live: no row.
    None,
    Creating(JoinHandle<Option<i64>>),
    Ready(i64),
    /// The store refused or was down; the files are kept, unlisted.
    Lost,
}

pub(super) struct Recorder {
    hls: Arc<Hls>,
    target: Target,
    subscriber: Subscriber,
    segmenter: Segmenter,
    live: Playlist,
    replay: Playlist,
    /// Live playlist URIs carry the live's directory name, so a segment URL is never reused
    /// by a later live of the channel and may be cached as immutable.
    live_names: UriPattern,
    /// The open segment's bytes, written when it is finished.
    pending: Vec<Bytes>,
    /// The replay's `media.flv`; `None` for a `[dev]` live (never kept) or once a write of
    /// its body failed (the replay then plays over HLS only).
    flv: Option<FlvRecording>,
    skipped: u64,
    row: Row,
    size_bytes: u64,
    /// A write failed: the next listed segment follows a hole.
    hole: bool,
    progress_at: tokio::time::Instant,
    progress: Option<JoinHandle<()>>,
    /// Live-session rows of publishers that came back within the grace.
    continued: UnboundedReceiver<SessionRow>,
    /// Sessions that came before this recorder handled their predecessor's leaving (a
    /// takeover switches publishers at once): their part begins after that flush.
    awaiting_left: Vec<SessionRow>,
    /// A publisher left and no later session has claimed that point yet.
    left_unclaimed: bool,
    /// Sessions and where in the replay each begins, until the row is there to link them to.
    parts: Vec<(SessionRow, u64)>,
}

impl Recorder {
    pub(super) fn new(
        hls: Arc<Hls>,
        target: Target,
        subscriber: Subscriber,
        continued: UnboundedReceiver<SessionRow>,
    ) -> Recorder {
        let segmenter = Segmenter::new(SegmenterConfig {
            target_duration: hls.config.target_duration,
            first_sequence: 0,
        });
        let target_secs = hls.config.target_duration.as_millis().div_ceil(1000) as u64;
        let mut live = Playlist::new(PlaylistKind::Live {
            window: hls.config.live_window,
        });
        let mut replay = Playlist::new(PlaylistKind::Event);
        // A steady EXT-X-TARGETDURATION from the first playlist on (RFC 8216 §6.2.1); only a
        // GOP longer than the target raises it.
        live.set_min_target_duration(target_secs);
        replay.set_min_target_duration(target_secs);
        let prefix = super::files::live_segment_prefix(&target.dir).unwrap_or_default();
        // Invariant: directory names are `[0-9A-Za-z-]` (see `files::recording_path`), so the
        // pattern has one placeholder and no line break.
        let live_names = UriPattern::new(&format!("{prefix}-{{sequence}}.ts"))
            .expect("a live's directory name makes a valid pattern");
        let flv = target.channel_id.map(|_| FlvRecording::new());
        Recorder {
            hls,
            target,
            subscriber,
            segmenter,
            live,
            replay,
            live_names,
            pending: Vec::new(),
            flv,
            skipped: 0,
            row: Row::None,
            size_bytes: 0,
            hole: false,
            progress_at: tokio::time::Instant::now(),
            progress: None,
            continued,
            awaiting_left: Vec::new(),
            left_unclaimed: false,
            parts: Vec::new(),
        }
    }

    pub(super) async fn run(self) {
        let span = info_span!("hls", channel = %self.target.channel);
        self.record().instrument(span).await;
    }

    async fn record(mut self) {
        let dir = self.target.dir.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || std::fs::create_dir_all(dir))
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r)
        {
            warn!(error = %e, "cannot create the recording directory; this live has no HLS");
            self.hls
                .mark_ended(&self.target.channel, self.target.generation);
            return;
        }
        if let Some(channel_id) = self.target.channel_id {
            self.row = Row::Creating(self.spawn_create_row(channel_id));
        }
        info!(path = self.target.relative, "hls recording started");
        let grace = self.hls.republish_grace;
        let mut batch = Vec::new();
        let mut grace_until: Option<tokio::time::Instant> = None;
        loop {
            let delivery = tokio::select! {
                // First: the new session is sent before the returning publisher's first frame
                // is pushed, and its part begins before that frame.
                biased;
                Some(session) = self.continued.recv() => {
                    if std::mem::take(&mut self.left_unclaimed) {
                        self.add_part(session);
                    } else {
                        self.awaiting_left.push(session);
                    }
                    continue;
                }
                d = self.subscriber.recv(&mut batch) => d,
                () = sleep_until_opt(grace_until) => {
                    if self.hls.try_end(&self.target.channel, self.target.generation) {
                        break;
                    }
                    grace_until = None;
                    continue;
                }
            };
            match delivery {
                Ok(Delivery::Frames) => {
                    let skipped = self.subscriber.skipped();
                    if skipped != self.skipped {
                        self.skipped = skipped;
                        warn!("hls recorder fell behind and skipped ahead; the replay has a gap");
                        self.segmenter.mark_discontinuity();
                        self.drain().await;
                    }
                    let now = unix_ms();
                    for entry in &batch {
                        if let Err(e) = self.segmenter.handle_frame(now, entry.frame()) {
                            debug!(error = %e, "frame not segmented");
                        }
                        if let Some(flv) = &mut self.flv
                            && let Err(e) = flv.push(entry.frame())
                        {
                            debug!(error = %e, "frame left out of media.flv");
                        }
                        self.drain().await;
                    }
                }
                Ok(Delivery::PublisherLeft) => {
                    // The open segment is written now; a returning publisher continues the
                    // recording after an EXT-X-DISCONTINUITY.
                    self.segmenter.mark_discontinuity();
                    self.drain().await;
                    grace_until = Some(tokio::time::Instant::now() + grace);
                    if self.awaiting_left.is_empty() {
                        self.left_unclaimed = true;
                    } else {
                        let session = self.awaiting_left.remove(0);
                        self.add_part(session);
                    }
                }
                Ok(Delivery::PublisherBack) => grace_until = None,
                Err(RecvError::Closed) => {
                    self.hls
                        .mark_ended(&self.target.channel, self.target.generation);
                    break;
                }
                Err(e) => {
                    warn!(error = %e, "hls recorder dropped by the hub; resubscribing");
                    self.subscriber = self
                        .hls
                        .hub
                        .subscribe(&self.target.channel, Protocol::Internal);
                    self.skipped = 0;
                    self.segmenter.mark_discontinuity();
                    self.drain().await;
                }
            }
        }
        self.finish().await;
    }

    fn spawn_create_row(&self, channel_id: i64) -> JoinHandle<Option<i64>> {
        let store = self.hls.platform.store().clone();
        let path = self.target.relative.clone();
        let started_at = self.target.started_at;
        let live_session = self.target.live_session.clone();
        self.hls.tasks.spawn(
            async move {
                // Replay danmaku are looked up through the session, so wait for its row; a
                // store too slow for that still gets the recording, unlinked.
                let live_session_id = match live_session {
                    Some(row) => tokio::time::timeout(Duration::from_secs(10), row)
                        .await
                        .ok()
                        .flatten(),
                    None => None,
                };
                let title = match store.channel_by_id(channel_id).await {
                    Ok(Some(c)) => c.title,
                    Ok(None) => String::new(),
                    Err(e) => {
                        warn!(error = %e, "cannot record the replay's row; its files are kept unlisted");
                        return None;
                    }
                };
                let new = NewRecording {
                    channel_id,
                    live_session_id,
                    title,
                    path,
                    started_at,
                };
                match store.create_recording(new).await {
                    Ok(rec) => Some(rec.id),
                    Err(e) => {
                        warn!(error = %e, "cannot record the replay's row; its files are kept unlisted");
                        None
                    }
                }
            }
            .in_current_span(),
        )
    }

    /// A returning publisher's session begins a part here: after everything its predecessor
    /// left in the replay.
    fn add_part(&mut self, session: SessionRow) {
        let offset = self.replay.duration().as_millis() as u64;
        self.parts.push((session, offset));
        self.link_parts();
    }

    /// Links the sessions of returning publishers to the recording's row, off this task,
    /// once the row is there (it is written while the first part plays, so it almost always
    /// is). A part whose session row never came, or a store that refuses, loses only the
    /// placing of that part's danmaku.
    fn link_parts(&mut self) {
        let Row::Ready(id) = self.row else { return };
        for (session, offset) in self.parts.drain(..) {
            let store = self.hls.platform.store().clone();
            self.hls.tasks.spawn(
                async move {
                    let Ok(Some(session)) =
                        tokio::time::timeout(Duration::from_secs(10), session).await
                    else {
                        return;
                    };
                    if let Err(e) = store.add_recording_part(id, session, offset).await {
                        warn!(error = %e, recording = id, session, "cannot link the republished session to the recording; its danmaku are not placed in the replay");
                    }
                }
                .in_current_span(),
            );
        }
    }

    async fn drain(&mut self) {
        while let Some(output) = self.segmenter.poll_output() {
            match output {
                Output::SegmentStarted { .. } => self.pending.clear(),
                Output::Data(bytes) => self.pending.push(bytes),
                Output::SegmentFinished(info) => {
                    let name = files::segment_pattern().uri(info.sequence);
                    let parts = std::mem::take(&mut self.pending);
                    let flv_parts = self.flv.as_mut().map(FlvRecording::take_batch);
                    let dir = self.target.dir.clone();
                    let (written, flv_written) = tokio::task::spawn_blocking(move || {
                        let written = files::write_atomic(&dir, &name, &parts);
                        let flv = flv_parts.map(|p| media_flv::append_body(&dir, &p));
                        (written, flv)
                    })
                    .await
                    .unwrap_or_else(|e| (Err(std::io::Error::other(e)), None));
                    if let Some(Err(e)) = flv_written {
                        self.abandon_flv(&e).await;
                    }
                    match written {
                        Ok(bytes) => {
                            self.size_bytes += bytes;
                            let mut entry =
                                SegmentEntry::from_segment(&info, &files::segment_pattern());
                            if !self.replay.segments().is_empty() {
                                // Sequence numbers step by one even past a segment that could
                                // not be written; the URI keeps the file's own number.
                                entry.sequence = self.replay.next_sequence();
                            }
                            entry.discontinuity |= std::mem::take(&mut self.hole);
                            self.list(entry, info.sequence).await;
                        }
                        Err(e) => {
                            warn!(error = %e, segment = info.sequence, "cannot write segment; the replay skips it");
                            self.hole = true;
                        }
                    }
                }
                Output::UnsupportedCodec(codec) => {
                    warn!(
                        ?codec,
                        "codec cannot be carried in HLS over MPEG-TS; its frames are left out"
                    );
                }
                _ => {}
            }
        }
    }

    /// A write of the FLV body failed, so its tags no longer match the index: this replay
    /// gets no `media.flv` (it still plays over HLS).
    async fn abandon_flv(&mut self, error: &std::io::Error) {
        warn!(error = %error, "cannot write media.flv; this replay plays over HLS only");
        self.flv = None;
        let dir = self.target.dir.clone();
        let _ = tokio::task::spawn_blocking(move || media_flv::discard_body(&dir)).await;
    }

    /// Writes what is left of the FLV body and composes `media.flv` (or removes a body that
    /// holds no media).
    async fn finish_flv(&mut self) {
        let Some(mut flv) = self.flv.take() else {
            return;
        };
        let parts = flv.take_batch();
        let head = flv.head();
        let dir = self.target.dir.clone();
        let done = tokio::task::spawn_blocking(move || {
            media_flv::append_body(&dir, &parts)?;
            match head {
                Some(head) => media_flv::compose(&dir, &head).map(Some),
                None => media_flv::discard_body(&dir).map(|()| None),
            }
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r);
        match done {
            Ok(Some(bytes)) => debug!(bytes, "media.flv written"),
            Ok(None) => {}
            Err(e) => warn!(error = %e, "cannot write media.flv; this replay plays over HLS only"),
        }
    }

    /// Adds a written segment to both playlists and rewrites them.
    async fn list(&mut self, entry: SegmentEntry, file_number: u64) {
        let live_entry = SegmentEntry {
            uri: self.live_names.uri(file_number),
            ..entry.clone()
        };
        if let Err(e) = self.live.push(live_entry) {
            warn!(error = %e, "live playlist refused a segment");
        }
        if let Err(e) = self.replay.push(entry) {
            warn!(error = %e, "replay playlist refused a segment");
        }
        self.write_playlists().await;
        self.note_progress().await;
    }

    async fn write_playlists(&self) {
        let live = Bytes::from(self.live.to_string());
        let replay = Bytes::from(self.replay.to_string());
        let dir = self.target.dir.clone();
        // The live window first: that is what players are polling for right now.
        let result = tokio::task::spawn_blocking(move || {
            files::write_atomic(&dir, LIVE_PLAYLIST, &[live])?;
            files::write_atomic(&dir, REPLAY_PLAYLIST, &[replay])
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r);
        if let Err(e) = result {
            warn!(error = %e, "cannot write the playlists");
        }
    }

    /// Brings the row's duration and size up to date every [`PROGRESS_INTERVAL`], off this
    /// task, skipping a beat while the previous update is still running.
    async fn note_progress(&mut self) {
        if let Row::Creating(handle) = &self.row
            && handle.is_finished()
            && let Row::Creating(handle) = std::mem::replace(&mut self.row, Row::Lost)
        {
            // Finished, so this await returns at once.
            if let Ok(Some(id)) = handle.await {
                self.row = Row::Ready(id);
                self.link_parts();
            }
        }
        if self.progress_at.elapsed() < PROGRESS_INTERVAL
            || self.progress.as_ref().is_some_and(|p| !p.is_finished())
        {
            return;
        }
        let Row::Ready(id) = self.row else { return };
        self.progress_at = tokio::time::Instant::now();
        let store = self.hls.platform.store().clone();
        let duration = self.replay.duration().as_millis() as u64;
        let size = self.size_bytes;
        self.progress = Some(
            self.hls.tasks.spawn(
                async move {
                    if let Err(e) = store.update_recording_progress(id, duration, size).await {
                        debug!(error = %e, "cannot update the recording's progress");
                    }
                }
                .in_current_span(),
            ),
        );
    }

    async fn finish(mut self) {
        self.segmenter.finish();
        self.drain().await;
        self.live.end();
        self.replay.end();
        let segments = self.replay.segments().len();
        if segments > 0 {
            self.write_playlists().await;
            self.hls.note_recording_written();
        }
        self.finish_flv().await;
        let duration = self.replay.duration();
        info!(
            path = self.target.relative,
            segments,
            duration_s = format!("{:.1}", duration.as_secs_f64()),
            bytes = self.size_bytes,
            "hls recording ended"
        );
        let row = match std::mem::replace(&mut self.row, Row::None) {
            Row::Creating(handle) => handle.await.ok().flatten(),
            Row::Ready(id) => Some(id),
            Row::None | Row::Lost => None,
        };
        if let Some(id) = row {
            self.row = Row::Ready(id);
            self.link_parts();
            let state = if segments > 0 {
                RecordingState::Finished
            } else {
                RecordingState::Failed
            };
            if let Some(p) = self.progress.take() {
                let _ = p.await;
            }
            if let Err(e) = self
                .hls
                .platform
                .store()
                .finish_recording(
                    id,
                    state,
                    Utc::now(),
                    duration.as_millis() as u64,
                    self.size_bytes,
                )
                .await
            {
                warn!(error = %e, recording = id, "cannot mark the recording finished; the next start will");
            } else if state == RecordingState::Finished && self.target.channel_id.is_some() {
                self.hls.catalogue(id, &self.target.relative).await;
            }
        }
        if self.target.channel_id.is_none() {
            self.remove_dev_files().await;
        }
    }

    /// A `[dev]` live is not kept: its files go once players had time to see the end.
    async fn remove_dev_files(&self) {
        tokio::select! {
            () = tokio::time::sleep(super::ENDED_LIVE_KEPT) => {}
            () = self.hls.shutdown.cancelled() => {}
        }
        let root = self.hls.root.clone();
        let relative = self.target.relative.clone();
        let removed =
            tokio::task::spawn_blocking(move || files::remove_recording(&root, &relative)).await;
        if let Ok(Err(e)) = removed {
            warn!(error = %e, "cannot remove a dev-key live's files");
        }
        self.hls
            .forget(&self.target.channel, self.target.generation);
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
