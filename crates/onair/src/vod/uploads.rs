//! Resumable uploads: the server side of tus 1.0.0 without its HTTP (that is `api/uploads.rs`).
//!
//! | step | what happens |
//! | --- | --- |
//! | create | an `uploads` row (migration 0009) and an empty `{recordings_dir}/.uploads/{id}.part` |
//! | append | bytes at the row's offset go to the end of the `.part` as they arrive; the row's offset is saved every [`SAVE_EVERY`] bytes and when the request ends, however it ends |
//! | last byte | the same write moves the row to `processing`; a task imports the file ([`import_file`]) into `{channel}/upload-{UTC start}-{id}`, makes the thumbnail, then adds the video row and marks the upload `ready` in one transaction; the `.part` is removed |
//! | refused file | `failed` with the import's reason (the codec it found, where it is truncated); the `.part` and any destination removed, no video row |
//! | sweep | every [`SWEEP_EVERY`]: expired rows and their `.part` files, and `.part` files no row owns |
//! | start-up | uploads a stop left `processing` are imported again (the `.part` is still there) |
//!
//! The row is the truth about how many bytes count: the `.part` may hold more (a write that
//! was cut before its offset was saved), and the next append truncates it back first.
//!
//! `.part` files live under the recordings root, not in a temporary directory: the root is
//! the volume sized for videos (a temporary directory is often a small tmpfs) and the one
//! the import writes its destination to, so a 4 GiB upload needs room in one place only.

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};
use onair_store::{NewUpload, NewVideo, Store, StoreError, Upload, UploadState, Visibility};
use parking_lot::Mutex;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::import::{ImportConfig, ImportError, Imported, import_file};
use crate::config::Config;

/// The directory under the recordings root that holds the `.part` files.
pub const PARTS_DIR: &str = ".uploads";

/// Bytes appended between two saves of the offset within one request: what a crash of the
/// server mid-request can make the client send again.
pub const SAVE_EVERY: u64 = 8 << 20;

/// How often expired uploads are swept.
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Writes to a `.part` are gathered to this size before they reach the file, so a body
/// arriving in small frames costs few blocking-pool trips.
const WRITE_BUFFER: usize = 256 * 1024;

/// Imports at once: each reads and writes a whole video on the blocking pool, beside the
/// live recorders; one at a time keeps them from starving lives of disk and cores.
const IMPORTS_AT_ONCE: usize = 1;

/// Expired rows swept per query.
const SWEEP_BATCH: u32 = 100;

/// Makes a video directory's thumbnail; `Some(file name)` inside the directory when one was
/// made. Given by the server (`hls::catalogue::make_thumbnail`), which owns the ffmpeg call.
pub type Thumbnailer =
    Arc<dyn Fn(PathBuf) -> Pin<Box<dyn Future<Output = Option<String>> + Send>> + Send + Sync>;

/// What an upload is for, from the client's `Upload-Metadata`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadMeta {
    /// The video's title.
    pub title: String,
    /// The client's file name, for display.
    pub filename: String,
    /// The video's visibility.
    pub visibility: Visibility,
}

/// Why an upload operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// No such upload, or not the caller's, or expired.
    #[error("upload {0} not found")]
    NotFound(i64),
    /// The file is larger than `vod.max_upload_bytes`.
    #[error(
        "the file is {length} bytes; uploads may be at most {max} bytes (vod.max_upload_bytes)"
    )]
    TooLarge {
        /// The `Upload-Length` asked for.
        length: u64,
        /// The limit.
        max: u64,
    },
    /// The request carries more bytes than the upload has left.
    #[error("the request carries more than the {left} bytes the upload has left")]
    PastLength {
        /// Bytes the upload still takes.
        left: u64,
    },
    /// The caller has too many uploads receiving bytes.
    #[error(
        "you have {max} unfinished uploads (vod.max_unfinished_uploads): finish or delete one first"
    )]
    TooManyUnfinished {
        /// The limit.
        max: u32,
    },
    /// `Upload-Offset` is not where the upload is.
    #[error(
        "Upload-Offset is {given} but the upload has {expected} bytes: ask HEAD for the offset"
    )]
    OffsetMismatch {
        /// The upload's offset.
        expected: u64,
        /// The request's.
        given: u64,
    },
    /// Another request is appending to this upload now.
    #[error("another request is appending to upload {0}; wait for it to end")]
    Busy(i64),
    /// Every byte is in: nothing more can be appended.
    #[error("upload {id} is {state}: it takes no more bytes")]
    Complete {
        /// The upload.
        id: i64,
        /// Its state.
        state: UploadState,
    },
    /// The client's body ended in an error (a cut connection, a body timeout); what arrived
    /// before it is kept.
    #[error("the request body broke off after {kept} bytes of the upload")]
    BodyBroken {
        /// The upload's offset now.
        kept: u64,
        /// What the body's stream said.
        #[source]
        cause: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The `.part` file could not be written.
    #[error("upload file: {0}")]
    Io(#[from] io::Error),
}

/// The uploads of one server. Cheap to share.
pub struct Uploads {
    store: Store,
    max_upload_bytes: u64,
    expiry: chrono::Duration,
    max_unfinished: u32,
    root: PathBuf,
    parts: PathBuf,
    import: ImportConfig,
    thumbnailer: Thumbnailer,
    /// Uploads a request is appending to now: at most one at a time each.
    appending: Mutex<HashSet<i64>>,
    imports: Semaphore,
    tasks: TaskTracker,
}

impl fmt::Debug for Uploads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Uploads")
            .field("parts", &self.parts)
            .field("max_upload_bytes", &self.max_upload_bytes)
            .finish_non_exhaustive()
    }
}

/// Removes an upload from [`Uploads::appending`] when its request ends, however it ends.
struct Appending<'a> {
    uploads: &'a Uploads,
    id: i64,
}

impl Drop for Appending<'_> {
    fn drop(&mut self) {
        self.uploads.appending.lock().remove(&self.id);
    }
}

impl Uploads {
    /// The uploads service for `config`, its files under the recordings root.
    pub fn new(
        config: &Config,
        store: Store,
        thumbnailer: Thumbnailer,
        tasks: TaskTracker,
    ) -> Arc<Uploads> {
        let root = config.recordings_dir();
        Arc::new(Uploads {
            store,
            max_upload_bytes: config.vod.max_upload_bytes,
            expiry: chrono::Duration::from_std(config.vod.upload_expiry)
                .unwrap_or(chrono::Duration::MAX),
            max_unfinished: config.vod.max_unfinished_uploads,
            parts: root.join(PARTS_DIR),
            root,
            import: ImportConfig {
                target_duration: config.hls.target_duration,
                ..ImportConfig::default()
            },
            thumbnailer,
            appending: Mutex::new(HashSet::new()),
            imports: Semaphore::new(IMPORTS_AT_ONCE),
            tasks,
        })
    }

    /// `vod.max_upload_bytes`, the `Tus-Max-Size`.
    pub fn max_upload_bytes(&self) -> u64 {
        self.max_upload_bytes
    }

    /// Where an upload's bytes are kept.
    pub fn part_path(&self, id: i64) -> PathBuf {
        self.parts.join(format!("{id}.part"))
    }

    fn expires_from_now(&self) -> DateTime<Utc> {
        Utc::now()
            .checked_add_signed(self.expiry)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// Starts an upload of `length` bytes by `user_id` into `channel_id`: its row, then its
    /// empty `.part`.
    pub async fn create(
        &self,
        user_id: i64,
        channel_id: i64,
        meta: UploadMeta,
        length: u64,
    ) -> Result<Upload, UploadError> {
        if length > self.max_upload_bytes {
            return Err(UploadError::TooLarge {
                length,
                max: self.max_upload_bytes,
            });
        }
        if self.store.count_unfinished_uploads(user_id).await? >= u64::from(self.max_unfinished) {
            return Err(UploadError::TooManyUnfinished {
                max: self.max_unfinished,
            });
        }
        let upload = self
            .store
            .create_upload(NewUpload {
                user_id,
                channel_id,
                title: meta.title,
                filename: meta.filename,
                visibility: meta.visibility,
                length_bytes: length,
                expires_at: self.expires_from_now(),
            })
            .await?;
        let made = async {
            tokio::fs::create_dir_all(&self.parts).await?;
            tokio::fs::File::create(self.part_path(upload.id)).await
        }
        .await;
        if let Err(e) = made {
            // Nothing half-made: without its file the row could only fail later.
            let _ = self.store.delete_upload(upload.id).await;
            return Err(e.into());
        }
        info!(
            upload = upload.id,
            channel = upload.channel_slug,
            length,
            "upload started"
        );
        Ok(upload)
    }

    /// The upload `id` if `viewer` (user id, admin?) may see it: its uploader or an admin,
    /// and not expired.
    pub async fn get(&self, id: i64, viewer: (i64, bool)) -> Result<Upload, UploadError> {
        let upload = self
            .store
            .upload_by_id(id)
            .await?
            .ok_or(UploadError::NotFound(id))?;
        let (user, admin) = viewer;
        if (upload.user_id != user && !admin) || upload.expires_at < Utc::now() {
            return Err(UploadError::NotFound(id));
        }
        Ok(upload)
    }

    /// Appends `body` to `upload` at `offset` (tus PATCH): written to the `.part` as it
    /// arrives, never held whole. A body that would pass the upload's length is refused
    /// whole (nothing of it kept). A body that breaks off keeps what arrived. The last byte
    /// starts the import. `declared` is the request's `Content-Length`, if it gave one.
    pub async fn append<S, E>(
        self: &Arc<Self>,
        upload: &Upload,
        offset: u64,
        declared: Option<u64>,
        body: S,
    ) -> Result<Upload, UploadError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let id = upload.id;
        if !self.appending.lock().insert(id) {
            return Err(UploadError::Busy(id));
        }
        let _appending = Appending { uploads: self, id };
        // Read again under the claim: the row seen before it may be stale.
        let upload = self
            .store
            .upload_by_id(id)
            .await?
            .ok_or(UploadError::NotFound(id))?;
        if upload.state != UploadState::Uploading {
            if offset == upload.received_bytes && declared.unwrap_or(0) == 0 {
                return Ok(upload);
            }
            return Err(UploadError::Complete {
                id,
                state: upload.state,
            });
        }
        if offset != upload.received_bytes {
            return Err(UploadError::OffsetMismatch {
                expected: upload.received_bytes,
                given: offset,
            });
        }
        let left = upload.length_bytes - upload.received_bytes;
        if declared.is_some_and(|n| n > left) {
            return Err(UploadError::PastLength { left });
        }
        let path = self.part_path(id);
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .await?;
        // Bytes past the saved offset are from a request that was cut before it could save:
        // the client sends them again from the offset it was told.
        file.set_len(offset).await?;
        file.seek(io::SeekFrom::Start(offset)).await?;
        let mut file = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, file);
        let mut received = offset;
        let mut saved = offset;
        let mut body = std::pin::pin!(body);
        let mut broken = None;
        while let Some(frame) = body.next().await {
            let chunk = match frame {
                Ok(chunk) => chunk,
                Err(e) => {
                    broken = Some(e.into());
                    break;
                }
            };
            if chunk.len() as u64 > upload.length_bytes - received {
                // Refused whole: what this request wrote so far goes too.
                drop(file);
                tokio::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .await?
                    .set_len(offset)
                    .await?;
                return Err(UploadError::PastLength { left });
            }
            file.write_all(&chunk).await?;
            received += chunk.len() as u64;
            if received - saved >= SAVE_EVERY && received < upload.length_bytes {
                // Flushed to the kernel first, so a saved offset never counts bytes still in
                // our buffer. No fsync: a process crash loses nothing the kernel has.
                file.flush().await?;
                self.store
                    .set_upload_received(id, received, self.expires_from_now())
                    .await?;
                saved = received;
            }
        }
        file.flush().await?;
        drop(file);
        let now = self
            .store
            .set_upload_received(id, received, self.expires_from_now())
            .await?
            .ok_or(UploadError::NotFound(id))?;
        if let Some(cause) = broken {
            debug!(upload = id, kept = received, %cause, "upload request broke off");
            return Err(UploadError::BodyBroken {
                kept: received,
                cause,
            });
        }
        if now.state == UploadState::Processing {
            info!(upload = id, bytes = received, "upload complete; importing");
            let uploads = self.clone();
            self.tasks.spawn(async move { uploads.process(id).await });
        }
        Ok(now)
    }

    /// Ends an upload (tus termination): its row and its `.part`. A video it became stays.
    pub async fn terminate(&self, upload: &Upload) -> Result<(), UploadError> {
        if !self.store.delete_upload(upload.id).await? {
            return Err(UploadError::NotFound(upload.id));
        }
        remove_file(&self.part_path(upload.id)).await;
        info!(upload = upload.id, "upload deleted");
        Ok(())
    }

    /// Imports upload `id`, which is `processing`, into a video.
    pub async fn process(self: Arc<Self>, id: i64) {
        let Ok(_permit) = self.imports.acquire().await else {
            return;
        };
        let upload = match self.store.upload_by_id(id).await {
            Ok(Some(u)) if u.state == UploadState::Processing => u,
            Ok(_) => return,
            Err(e) => {
                warn!(upload = id, error = %e, "cannot read the upload to import it; the next start will");
                return;
            }
        };
        let relative = format!(
            "{}/upload-{}-{id}",
            upload.channel_slug,
            Utc::now().format("%Y%m%dT%H%M%S%3fZ")
        );
        let dest = self.root.join(&relative);
        let source = self.part_path(id);
        let config = self.import.clone();
        let job = {
            let (source, dest) = (source.clone(), dest.clone());
            tokio::task::spawn_blocking(move || import_file(&source, &dest, &config))
        };
        let imported = match job.await {
            Ok(result) => result,
            Err(e) => Err(ImportError::Io(io::Error::other(format!(
                "the import task failed: {e}"
            )))),
        };
        match imported {
            Ok(imported) => self.add_video(&upload, &relative, &dest, imported).await,
            Err(e) => {
                // The import leaves nothing at `dest` on an error; removed anyway, so a
                // fault there cannot leave half a video.
                self.remove_video_dir(&dest).await;
                remove_file(&source).await;
                let reason = e.to_string();
                info!(upload = id, %reason, "upload refused");
                if let Err(e) = self
                    .store
                    .fail_upload(id, &reason, self.expires_from_now())
                    .await
                {
                    warn!(upload = id, error = %e, "cannot record why the upload failed");
                }
            }
        }
    }

    async fn add_video(&self, upload: &Upload, relative: &str, dest: &Path, imported: Imported) {
        let id = upload.id;
        let video = NewVideo {
            channel_id: upload.channel_id,
            recording_id: None,
            path: relative.to_owned(),
            title: upload.title.clone(),
            visibility: upload.visibility,
            duration_ms: imported.duration_ms,
            size_bytes: imported.size_bytes,
            video_codec: Some(imported.video_codec),
            audio_codec: imported.audio_codec,
            width: imported.width,
            height: imported.height,
        };
        // Made before the row, so a `ready` upload's video is whole when a client sees it.
        let thumbnail = (self.thumbnailer)(dest.to_path_buf())
            .await
            .map(|name| format!("{relative}/{name}"));
        let video = match self
            .store
            .complete_upload(id, video, thumbnail.as_deref(), self.expires_from_now())
            .await
        {
            Ok(video) => video,
            Err(e) => {
                // No row points at these files: they go.
                self.remove_video_dir(dest).await;
                if matches!(e, StoreError::NotFound { .. }) {
                    // Deleted while it was imported (or its channel was).
                    remove_file(&self.part_path(id)).await;
                    info!(
                        upload = id,
                        "upload deleted during its import; nothing kept"
                    );
                } else {
                    // The `.part` stays and the row stays `processing`: the next start
                    // imports it again.
                    warn!(upload = id, error = %e, "cannot add the uploaded video; the next start will try again");
                }
                return;
            }
        };
        remove_file(&self.part_path(id)).await;
        info!(
            upload = id,
            video = video.id,
            path = relative,
            "upload is a video"
        );
    }

    /// Removes a video directory no row owns, and its channel's directory if that is left
    /// empty.
    async fn remove_video_dir(&self, dest: &Path) {
        remove_dir(dest).await;
        if let Some(parent) = dest.parent()
            && parent != self.root
        {
            // Fails harmlessly when the channel has other videos.
            let _ = tokio::fs::remove_dir(parent).await;
        }
    }

    /// Start-up: imports again every upload a stop left `processing`.
    pub async fn resume(self: &Arc<Self>) {
        match self.store.uploads_in_state(UploadState::Processing).await {
            Ok(left) => {
                for upload in left {
                    info!(
                        upload = upload.id,
                        "importing an upload a stop left unfinished"
                    );
                    let uploads = self.clone();
                    self.tasks
                        .spawn(async move { uploads.process(upload.id).await });
                }
            }
            Err(e) => warn!(error = %e, "cannot list uploads left processing"),
        }
    }

    /// Removes expired uploads (row and `.part`) and `.part` files no row owns. Returns how
    /// many uploads and files went.
    pub async fn sweep(&self) -> Result<(usize, usize), StoreError> {
        let mut rows = 0;
        loop {
            let expired = self.store.expired_uploads(Utc::now(), SWEEP_BATCH).await?;
            let n = expired.len();
            for upload in expired {
                if self.appending.lock().contains(&upload.id) {
                    continue;
                }
                if self.store.delete_upload(upload.id).await? {
                    rows += 1;
                }
                remove_file(&self.part_path(upload.id)).await;
            }
            if n < SWEEP_BATCH as usize {
                break;
            }
        }
        // Files first, rows after: a row is made before its file, so a file listed here
        // whose row is missing below was never part of a live upload.
        let mut orphans = 0;
        for (path, id) in part_files(&self.parts).await {
            let owned = match id {
                Some(id) => matches!(
                    self.store.upload_by_id(id).await?,
                    Some(u) if matches!(u.state, UploadState::Uploading | UploadState::Processing)
                ),
                None => false,
            };
            if !owned {
                remove_file(&path).await;
                orphans += 1;
            }
        }
        Ok((rows, orphans))
    }

    /// The background task: resumes imports, then sweeps every [`SWEEP_EVERY`] until
    /// `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        self.resume().await;
        loop {
            match self.sweep().await {
                Ok((0, 0)) => {}
                Ok((rows, files)) => info!(rows, files, "swept expired uploads"),
                Err(e) => warn!(error = %e, "cannot sweep expired uploads"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(SWEEP_EVERY) => {}
            }
        }
    }
}

/// The files in the parts directory, with the upload id their name gives (`None` for a
/// name that is no `{id}.part`).
async fn part_files(dir: &Path) -> Vec<(PathBuf, Option<i64>)> {
    let mut out = Vec::new();
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
        return out;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        let name = entry.file_name();
        let id = name
            .to_str()
            .and_then(|n| n.strip_suffix(".part"))
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse().ok());
        if entry.file_type().await.is_ok_and(|t| t.is_file()) {
            out.push((entry.path(), id));
        }
    }
    out
}

async fn remove_file(path: &Path) {
    match tokio::fs::remove_file(path).await {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => warn!(path = %path.display(), error = %e, "cannot remove an upload file"),
    }
}

async fn remove_dir(path: &Path) {
    match tokio::fs::remove_dir_all(path).await {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            warn!(path = %path.display(), error = %e, "cannot remove an upload's video directory")
        }
    }
}
