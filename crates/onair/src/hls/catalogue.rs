//! A finished replay enters the VOD catalogue: its `videos` row, and a thumbnail decoded by
//! an `ffmpeg` subprocess when one is on `PATH`. ffmpeg is never a hard dependency: without
//! it (or when it fails) the video simply has no thumbnail (`thumbnail: null`).

use std::io;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;
use tracing::{debug, info, warn};

use onair_store::{Role, Visibility};

use super::Hls;
use super::files;
use crate::platform::PlatformError;

/// The thumbnail's file name inside a recording directory.
pub const THUMBNAIL: &str = "thumb.jpg";

/// The longest ffmpeg may take to decode one frame before it is killed.
const FFMPEG_DEADLINE: Duration = Duration::from_secs(30);

/// What [`make_thumbnail`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Thumbnail {
    /// `thumb.jpg` is written.
    Made,
    /// No `ffmpeg` on `PATH`: no thumbnail, by design.
    NoFfmpeg,
    /// ffmpeg ran but gave no image; why, in a line.
    Failed(String),
}

/// Decodes the first keyframe of the replay in `dir` (segments start on keyframes) into
/// `dir/thumb.jpg`, through a temporary name so a reader never sees half an image.
pub async fn make_thumbnail(dir: &Path) -> Thumbnail {
    thumbnail_with("ffmpeg", dir).await
}

/// [`make_thumbnail`] with the ffmpeg program named.
async fn thumbnail_with(program: &str, dir: &Path) -> Thumbnail {
    let playlist = dir.join(files::REPLAY_PLAYLIST);
    let partial = dir.join(".thumb.jpg.tmp");
    let mut command = Command::new(program);
    command
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(["-skip_frame", "nokey", "-i"])
        .arg(&playlist)
        .args(["-an", "-frames:v", "1", "-vf", "scale=-2:360", "-q:v", "4"])
        .args(["-f", "image2", "-c:v", "mjpeg"])
        .arg(&partial)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = match command.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Thumbnail::NoFfmpeg,
        Err(e) => return Thumbnail::Failed(format!("cannot start ffmpeg: {e}")),
    };
    let output = match tokio::time::timeout(FFMPEG_DEADLINE, child.wait_with_output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => {
            // It may have written part of an image before we lost it.
            let _ = tokio::fs::remove_file(&partial).await;
            return Thumbnail::Failed(format!("ffmpeg: {e}"));
        }
        Err(_) => {
            let _ = tokio::fs::remove_file(&partial).await;
            return Thumbnail::Failed(format!(
                "ffmpeg took longer than {} s",
                FFMPEG_DEADLINE.as_secs()
            ));
        }
    };
    let made = tokio::fs::metadata(&partial)
        .await
        .is_ok_and(|m| m.len() > 0);
    if !output.status.success() || !made {
        let _ = tokio::fs::remove_file(&partial).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        let reason = stderr.lines().last().unwrap_or("no image written").trim();
        return Thumbnail::Failed(format!("ffmpeg {}: {reason}", output.status));
    }
    match tokio::fs::rename(&partial, dir.join(THUMBNAIL)).await {
        Ok(()) => Thumbnail::Made,
        Err(e) => Thumbnail::Failed(format!("cannot move the thumbnail into place: {e}")),
    }
}

/// Whether a request may have a replay's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Not a private video: anyone.
    Open,
    /// A private video, and the caller is its owner or an admin.
    Allowed,
    /// A private video, and the caller is someone else or nobody.
    Refused,
}

impl Hls {
    /// Who may have the files of recording `recording_id`: everyone unless it is a private
    /// video, then only its owner and admins, named by the request's bearer token.
    pub async fn private_replay_allowed(
        &self,
        recording_id: i64,
        headers: &axum::http::HeaderMap,
    ) -> Result<Access, PlatformError> {
        let Some(video) = self
            .platform
            .store()
            .video_by_recording(recording_id)
            .await?
        else {
            return Ok(Access::Open);
        };
        self.video_access(&video, headers).await
    }

    /// Who may have `video`'s files: everyone unless it is private, then only its owner and
    /// admins, named by the request's bearer token (the `Authorization` header: players that
    /// play private videos set it, as the web app's hls.js does).
    pub async fn video_access(
        &self,
        video: &onair_store::Video,
        headers: &axum::http::HeaderMap,
    ) -> Result<Access, PlatformError> {
        if video.visibility != Visibility::Private {
            return Ok(Access::Open);
        }
        let viewer = self.platform.caller(headers).await?;
        let viewer = viewer.map(|s| (s.user.id, s.user.role == Role::Admin));
        Ok(if video.visible_to(viewer) {
            Access::Allowed
        } else {
            Access::Refused
        })
    }

    /// Puts a finished recording into the catalogue and gives it a thumbnail when ffmpeg can
    /// make one. Failures are logged: the replay plays either way, and the next start's
    /// backfill adds a row that is missing.
    pub(super) async fn catalogue(&self, recording_id: i64, relative: &str) {
        let store = self.platform.store();
        let video = match store.ensure_replay_video(recording_id).await {
            Ok(Some(video)) => video,
            Ok(None) => return,
            Err(e) => {
                warn!(recording = recording_id, error = %e, "cannot add the replay to the catalogue; the next start will");
                return;
            }
        };
        if video.thumbnail.is_some() {
            return;
        }
        let Some(dir) = files::resolve(&self.root, relative) else {
            return;
        };
        match make_thumbnail(&dir).await {
            Thumbnail::Made => {
                let thumb = format!("{relative}/{THUMBNAIL}");
                let stored = async {
                    store.set_video_thumbnail(video.id, Some(&thumb)).await?;
                    store
                        .set_recording_thumbnail(recording_id, Some(&thumb))
                        .await
                };
                if let Err(e) = stored.await {
                    warn!(video = video.id, error = %e, "cannot record the thumbnail");
                } else {
                    debug!(video = video.id, "thumbnail made");
                }
            }
            Thumbnail::NoFfmpeg => {
                info!(
                    video = video.id,
                    "no ffmpeg on PATH: the video has no thumbnail"
                );
            }
            Thumbnail::Failed(reason) => {
                warn!(video = video.id, reason, "no thumbnail");
            }
        }
    }

    /// Whether the caller named by `headers` may have recording `recording_id`'s files and
    /// details ([`Hls::private_replay_allowed`] as a yes or no).
    pub async fn may_watch_replay(
        &self,
        recording_id: i64,
        headers: &axum::http::HeaderMap,
    ) -> Result<bool, PlatformError> {
        Ok(self.private_replay_allowed(recording_id, headers).await? != Access::Refused)
    }

    /// A stored path relative to the recordings root, joined onto it if it is a plain
    /// relative path ([`files::resolve`]).
    pub fn resolve(&self, relative: &str) -> Option<std::path::PathBuf> {
        files::resolve(&self.root, relative)
    }

    /// Deletes a video's directory that no recording row owns (an upload's).
    pub async fn remove_video_files(&self, relative: &str) {
        let root = self.root.clone();
        let path = relative.to_owned();
        match tokio::task::spawn_blocking(move || files::remove_recording(&root, &path)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(path = relative, error = %e, "cannot delete a video's files"),
            Err(e) => warn!(path = relative, error = %e, "video deletion task failed"),
        }
    }

    /// Start-up: every finished replay not yet in the catalogue goes in (those from before
    /// it existed, and any whose finalisation stopped short).
    pub(super) async fn backfill_catalogue(&self) {
        match self.platform.store().backfill_replay_videos().await {
            Ok(0) => {}
            Ok(n) => info!(n, "added finished replays to the video catalogue"),
            Err(e) => warn!(error = %e, "cannot add finished replays to the catalogue"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "onair-thumb-{name}-{}-{:x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[tokio::test]
    async fn without_ffmpeg_there_is_no_thumbnail_and_no_file() {
        let dir = temp_dir("none");
        assert_eq!(
            thumbnail_with("onair-no-such-ffmpeg", &dir).await,
            Thumbnail::NoFfmpeg
        );
        assert!(!dir.join(THUMBNAIL).exists());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_replay_ffmpeg_cannot_read_leaves_no_thumbnail_and_no_temporary() {
        if std::process::Command::new("ffmpeg")
            .arg("-version")
            .output()
            .is_err()
        {
            // CI has ffmpeg; a developer without it still gets the test above.
            let ci = matches!(std::env::var("CI").as_deref(), Ok("true" | "1"));
            assert!(!ci, "ffmpeg is required with CI=true");
            return;
        }
        let dir = temp_dir("broken");
        std::fs::write(dir.join(files::REPLAY_PLAYLIST), "not a playlist").unwrap();
        let made = make_thumbnail(&dir).await;
        assert!(matches!(made, Thumbnail::Failed(_)), "{made:?}");
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from(files::REPLAY_PLAYLIST)]);
        let _ = std::fs::remove_dir_all(dir);
    }
}
