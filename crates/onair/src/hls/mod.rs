//! HLS: every live channel is segmented into MPEG-TS (the sans-IO `onair-hls` crate does the
//! muxing and the playlists), served as a live sliding window at `/live/{channel}/index.m3u8`,
//! and kept as a replay at `/replays/{id}/index.m3u8`. Every video of the catalogue (a replay
//! or an upload) is also served by its video id, over HLS and as progressive FLV
//! (`/videos/{id}/index.m3u8`, `/videos/{id}.flv`).
//!
//! | piece | what it owns |
//! | --- | --- |
//! | [`Hls`] (here) | which channel is recorded where; starts a recorder when a publish starts; crash recovery at start-up |
//! | `recorder.rs` | one task per live: a hub subscriber ([`Protocol::Internal`]) → `Segmenter` → files and store rows |
//! | `files.rs` | the on-disk layout, atomic writes, strict names, finalising a directory a crash left open |
//! | `http.rs` | the live, replay and video routes: content types, Range, validators, cache headers |
//! | `videos.rs` | videos by id: their HLS, their `media.flv` (Range) and `?start=` FLV streams |
//! | `retention.rs` | the background task that deletes replays past the retention policy |
//!
//! The recorder is a subscriber like any viewer: the hub never waits for it. If file writes
//! fall behind by more than `hub.max_lag`, the hub moves it forward and the replay gets an
//! `EXT-X-DISCONTINUITY` where media is missing.
//!
//! Lives published with a `[dev]` key have no channel row, so they cannot have a recording
//! row either: they get live HLS, and their files are deleted shortly after the live ends
//! (and at the next start, after a crash). Only lives with a stored key become replays.

pub mod catalogue;
pub mod files;
pub mod http;
mod recorder;
pub mod retention;
mod videos;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use onair_hub::{Hub, Protocol};
use onair_store::RecordingState;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::{Config, HlsConfig};
use crate::platform::Platform;

/// How long the live playlist of a live that ended stays served (with ENDLIST), so players
/// that are still polling see the end instead of an error.
const ENDED_LIVE_KEPT: Duration = Duration::from_secs(30);

/// The HLS side of the server. Cheap to share.
#[derive(Debug)]
pub struct Hls {
    config: HlsConfig,
    root: PathBuf,
    republish_grace: Duration,
    hub: Arc<Hub>,
    platform: Arc<Platform>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    lives: Mutex<Lives>,
    /// When this server started: recordings begun since are this server's own, never a
    /// crash's leftovers.
    started_at: chrono::DateTime<Utc>,
    /// Recordings ended with at least one segment on disk, since start (for `/metrics`).
    recordings_written: AtomicU64,
}

#[derive(Debug, Default)]
struct Lives {
    next_generation: u64,
    by_channel: HashMap<String, LiveDir>,
}

/// Where a channel's current (or just ended) live is being written.
#[derive(Debug, Clone)]
struct LiveDir {
    dir: PathBuf,
    generation: u64,
    ended_at: Option<tokio::time::Instant>,
    /// Hands the running recorder the live-session row of a publisher that came back within
    /// the republish grace, so that session's danmaku find their place in the replay.
    continued: tokio::sync::mpsc::UnboundedSender<crate::lives::SessionRow>,
}

impl Hls {
    /// Recordings ended with at least one segment written, since start.
    pub fn recordings_written(&self) -> u64 {
        self.recordings_written.load(Ordering::Relaxed)
    }

    pub(super) fn note_recording_written(&self) {
        self.recordings_written.fetch_add(1, Ordering::Relaxed);
    }

    /// The HLS service for `config`; records nothing until [`Hls::publish_started`].
    pub fn new(
        config: &Config,
        hub: Arc<Hub>,
        platform: Arc<Platform>,
        tasks: TaskTracker,
        shutdown: CancellationToken,
    ) -> Arc<Hls> {
        Arc::new(Hls {
            config: config.hls.clone(),
            root: config.recordings_dir(),
            republish_grace: config.hub.republish_grace,
            hub,
            platform,
            tasks,
            shutdown,
            lives: Mutex::new(Lives::default()),
            started_at: Utc::now(),
            recordings_written: AtomicU64::new(0),
        })
    }

    /// The store the recordings' rows are kept in.
    pub fn store(&self) -> &onair_store::Store {
        self.platform.store()
    }

    /// The directory recordings are written under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether HLS is on.
    pub fn is_enabled(&self) -> bool {
        self.config.enabled
    }

    /// A publish on `channel` was accepted by the hub: start recording it, unless this
    /// channel's recorder is still running (a publisher that reconnected within the grace
    /// continues the same recording; the recorder sees the return in its subscription).
    /// `channel_id` is the channel's row; `None` (a `[dev]` key) records live HLS only.
    /// `live_session` is the publish's live-session row, which the recording links to; a
    /// publish that continues a recording adds its session as a part of that recording.
    ///
    /// Call it after `Hub::publish` succeeded and before the first frame is pushed, so the
    /// recording starts with the publish's first frame.
    pub fn publish_started(
        self: &Arc<Self>,
        channel: &str,
        channel_id: Option<i64>,
        live_session: Option<crate::lives::SessionRow>,
    ) {
        if !self.config.enabled {
            return;
        }
        let mut lives = self.lives.lock();
        if let Some(live) = lives
            .by_channel
            .get(channel)
            .filter(|l| l.ended_at.is_none())
        {
            if let Some(row) = live_session {
                // Dropped only by a recorder that is shutting down.
                let _ = live.continued.send(row);
            }
            return;
        }
        let (continued, continued_rx) = tokio::sync::mpsc::unbounded_channel();
        lives.next_generation += 1;
        let generation = lives.next_generation;
        let started_at = Utc::now();
        let relative = files::recording_path(channel, started_at, channel_id.is_none());
        let dir = self.root.join(&relative);
        lives.by_channel.insert(
            channel.to_owned(),
            LiveDir {
                dir: dir.clone(),
                generation,
                ended_at: None,
                continued,
            },
        );
        // Subscribed here, before the publisher's first push, so nothing is missed.
        let subscriber = self.hub.subscribe(channel, Protocol::Internal);
        let recorder = recorder::Recorder::new(
            self.clone(),
            recorder::Target {
                channel: channel.to_owned(),
                channel_id,
                live_session,
                relative,
                dir,
                generation,
                started_at,
            },
            subscriber,
            continued_rx,
        );
        self.tasks.spawn(recorder.run());
    }

    /// The directory of `channel`'s live, while it is live or ended less than 30 s ago.
    pub fn live_dir(&self, channel: &str) -> Option<PathBuf> {
        let mut lives = self.lives.lock();
        let live = lives.by_channel.get(channel)?;
        if live
            .ended_at
            .is_some_and(|at| at.elapsed() > ENDED_LIVE_KEPT)
        {
            lives.by_channel.remove(channel);
            return None;
        }
        Some(live.dir.clone())
    }

    /// Called by a recorder whose publisher did not return within the grace: unless the
    /// channel went live again meanwhile, the live is over. Checked under the registry's lock
    /// so a publish that arrives at this moment either keeps this recorder (it is live
    /// already) or starts a new one (this one is marked ended first).
    fn try_end(&self, channel: &str, generation: u64) -> bool {
        let mut lives = self.lives.lock();
        if self.hub.is_live(channel) {
            return false;
        }
        Self::end_locked(&mut lives, channel, generation);
        true
    }

    /// The live of `generation` is over (shutdown, or it could not start).
    fn mark_ended(&self, channel: &str, generation: u64) {
        Self::end_locked(&mut self.lives.lock(), channel, generation);
    }

    fn end_locked(lives: &mut Lives, channel: &str, generation: u64) {
        if let Some(live) = lives.by_channel.get_mut(channel)
            && live.generation == generation
        {
            live.ended_at = Some(tokio::time::Instant::now());
        }
    }

    /// Forgets a live whose files were removed (a `[dev]` live), unless a newer one replaced it.
    fn forget(&self, channel: &str, generation: u64) {
        let mut lives = self.lives.lock();
        if lives
            .by_channel
            .get(channel)
            .is_some_and(|l| l.generation == generation)
        {
            lives.by_channel.remove(channel);
        }
    }

    /// Start-up: finalises every recording a crash left in state `recording` from the files
    /// on disk (VOD playlist, totals, `finished`, or `failed` with nothing playable), and
    /// removes `[dev]` live directories. Assumes this node is the only one writing
    /// recordings to this store.
    pub async fn recover(&self) {
        let root = self.root.clone();
        let imports = root.clone();
        match tokio::task::spawn_blocking(move || crate::vod::import::remove_leftovers(&imports))
            .await
        {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => info!(n, "removed the temporary files of imports cut by a crash"),
            Ok(Err(e)) => warn!(error = %e, "cannot clean cut imports"),
            Err(e) => warn!(error = %e, "import clean-up task failed"),
        }
        match tokio::task::spawn_blocking(move || files::remove_dev_leftovers(&root)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => info!(n, "removed the files of dev-key lives left by a crash"),
            Ok(Err(e)) => warn!(error = %e, "cannot clean dev-key live directories"),
            Err(e) => warn!(error = %e, "dev-key clean-up task failed"),
        }
        let store = self.platform.store();
        let unfinished = match store.unfinished_recordings().await {
            Ok(rows) => rows,
            Err(e) => {
                warn!(error = %e, "cannot list unfinished recordings; they stay unfinished until the next start");
                self.backfill_catalogue().await;
                return;
            }
        };
        // A publish may already be recording while this runs.
        for rec in unfinished
            .into_iter()
            .filter(|r| r.started_at < self.started_at)
        {
            let Some(dir) = files::resolve(&self.root, &rec.path) else {
                warn!(
                    recording = rec.id,
                    "recording path is not a plain relative path; marked failed"
                );
                let _ = store
                    .finish_recording(rec.id, RecordingState::Failed, Utc::now(), 0, 0)
                    .await;
                continue;
            };
            let window = self.config.live_window;
            let done = tokio::task::spawn_blocking(move || {
                if dir.is_dir() {
                    files::finalize(&dir, window).map(Some)
                } else {
                    Ok(None)
                }
            })
            .await;
            let (state, finalized) = match done {
                Ok(Ok(Some(f))) if f.segments > 0 => (RecordingState::Finished, Some(f)),
                Ok(Ok(f)) => (RecordingState::Failed, f),
                Ok(Err(e)) => {
                    warn!(recording = rec.id, error = %e, "cannot finalise recording; marked failed");
                    (RecordingState::Failed, None)
                }
                Err(e) => {
                    warn!(recording = rec.id, error = %e, "finalising task failed");
                    continue;
                }
            };
            let (duration, size, ended_at) = finalized.as_ref().map_or((0, 0, None), |f| {
                (f.duration.as_millis() as u64, f.size_bytes, f.ended_at)
            });
            let ended_at = ended_at.unwrap_or_else(Utc::now);
            match store
                .finish_recording(rec.id, state, ended_at, duration, size)
                .await
            {
                Ok(_) => info!(
                    recording = rec.id,
                    %state,
                    duration_ms = duration,
                    segments = finalized.map_or(0, |f| f.segments),
                    "recovered a recording left unfinished"
                ),
                Err(e) => {
                    warn!(recording = rec.id, error = %e, "cannot finish recovered recording")
                }
            }
            if state == RecordingState::Finished {
                self.catalogue(rec.id, &rec.path).await;
            }
        }
        self.backfill_catalogue().await;
        self.tasks
            .spawn(backfill_media_flv(self.root.clone(), self.shutdown.clone()));
    }
}

/// Start-up, in the background: replays finished before `media.flv` existed get one from
/// `ffmpeg` remuxing the HLS files, one at a time. Without ffmpeg, one line says those
/// videos play over HLS only.
async fn backfill_media_flv(root: PathBuf, shutdown: CancellationToken) {
    use crate::vod::media_flv::{self, Remux};
    let scan = root.clone();
    let dirs = match tokio::task::spawn_blocking(move || media_flv::missing_under(&scan)).await {
        Ok(Ok(dirs)) => dirs,
        Ok(Err(e)) => {
            warn!(error = %e, "cannot look for replays without media.flv");
            return;
        }
        Err(_) => return,
    };
    let (mut made, total) = (0usize, dirs.len());
    for dir in dirs {
        let path = dir
            .strip_prefix(&root)
            .unwrap_or(&dir)
            .display()
            .to_string();
        // A body means a recorder is composing the file right now (a live that ended just
        // after start-up): a crash's bodies were composed by recovery above.
        if dir.join(media_flv::FLV_BODY).exists() {
            continue;
        }
        let remux = tokio::select! {
            r = media_flv::remux_with_ffmpeg("ffmpeg", &dir) => r,
            () = shutdown.cancelled() => return,
        };
        match remux {
            Remux::Made => made += 1,
            Remux::NoFfmpeg => {
                info!(
                    videos = total - made,
                    "no ffmpeg on PATH: replays recorded before media.flv existed play over HLS only"
                );
                return;
            }
            Remux::Failed(reason) => {
                warn!(
                    path,
                    reason, "cannot make media.flv; this replay plays over HLS only"
                );
            }
        }
    }
    if made > 0 {
        info!(videos = made, "made media.flv for older replays");
    }
}
