//! The on-disk form of a video, and videos that were not lives: the import of an uploaded
//! MP4 or FLV file into that form.
//!
//! ```text
//! {recordings_dir}/{channel}/{dir}/
//!     0.ts 1.ts …      HLS segments           written by the recorder (hls/) or import.rs
//!     index.m3u8       the VOD playlist       read by /replays/{id}/, the web player
//!     media.flv        seekable FLV           read by RTMP VOD and progressive HTTP-FLV
//!     thumb.jpg        the thumbnail          made by hls::catalogue from index.m3u8
//!     .media.flv.body  media.flv's tags while a live records (media_flv.rs)
//! ```
//!
//! Everything here is blocking file I/O, meant for `spawn_blocking`, except the `ffmpeg`
//! remux of old replays and `uploads` (resumable uploads over tus, which end in an import),
//! which is async and runs imports there.
//!
//! | file | owns |
//! | --- | --- |
//! | `import.rs`, `mp4_source.rs`, `flv_source.rs` | an uploaded file into the form above |
//! | `media_flv.rs` | writing `media.flv` (recorder and import), the remux of old replays |
//! | `uploads.rs` | resumable uploads (tus) and their import |
//! | `mod.rs` | [`VodLibrary`]: who may play a video, its open [`VodIndex`] (one scan per video, kept while played and for `vod.linger` after), [`VodHandle`] |
//! | `index.rs` | the scan of `media.flv` into blocks, one positional read per block, frames with a shared RTMP encoding |
//! | `cache.rs` | [`BlockCache`](cache::BlockCache): blocks shared by viewers, LRU within `vod.cache_bytes` |
//!
//! [`VodLibrary`] serves catalogue videos over RTMP (`rtmp://host/vod/{video_id}`) from their
//! `media.flv`, shared by every viewer. The RTMP driver (`ingest`) paces the frames; this
//! service knows nothing of sessions.

mod cache;
mod flv_source;
pub mod import;
mod index;
pub mod media_flv;
mod mp4_source;
pub mod uploads;

/// The VOD playlist of a video (and the EVENT playlist of a live being recorded).
pub const PLAYLIST: &str = "index.m3u8";
/// How segment files are named: the media sequence number, so names are digits only.
pub const SEGMENT_PATTERN: &str = "{sequence}.ts";

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use onair_store::{Role, Visibility};
use tokio::sync::{OnceCell, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use self::cache::BlockCache;
pub use self::cache::Loaded;
pub use self::index::{BlockInfo, IndexError, MEDIA_FILE, VodFrame, VodIndex};
use crate::metrics::Metrics;
use crate::platform::Platform;

/// Why a video is not played.
#[derive(Debug, thiserror::Error)]
pub enum VodRefusal {
    /// No such video, or a private one the caller may not see: the same answer, so ids
    /// cannot be probed.
    #[error("no such video")]
    NotFound,
    /// The video has no `media.flv` (a replay recorded before it existed, on a machine
    /// without ffmpeg to remux it): HLS only.
    #[error("video {0} plays over HLS only: it has no {MEDIA_FILE}")]
    HlsOnly(i64),
    /// The store did not answer.
    #[error("the catalogue is unavailable; retry later")]
    Unavailable,
    /// The file is there but cannot be played.
    #[error("video {id} cannot be played: {source}")]
    Broken {
        /// The video.
        id: i64,
        /// What is wrong with its file.
        #[source]
        source: IndexError,
    },
}

/// One video being played (or recently): its file, index and viewer count.
pub struct OpenVideo {
    /// The video id.
    pub id: i64,
    generation: u64,
    file: std::fs::File,
    /// What the scan learnt.
    pub index: VodIndex,
    viewers: AtomicUsize,
}

impl std::fmt::Debug for OpenVideo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenVideo")
            .field("id", &self.id)
            .field("blocks", &self.index.blocks.len())
            .finish_non_exhaustive()
    }
}

type Opening = Arc<OnceCell<Arc<OpenVideo>>>;

/// See the [module docs](self).
pub struct VodLibrary {
    platform: Arc<Platform>,
    root: PathBuf,
    linger: Duration,
    cache: Arc<BlockCache>,
    open: Mutex<HashMap<i64, Opening>>,
    next_generation: AtomicU64,
    metrics: Arc<Metrics>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for VodLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VodLibrary")
            .field("root", &self.root)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl VodLibrary {
    /// A library over the videos under `root` (`hls.recordings_dir`).
    pub fn new(
        config: &crate::config::Config,
        platform: Arc<Platform>,
        metrics: Arc<Metrics>,
        tasks: TaskTracker,
        shutdown: CancellationToken,
    ) -> Arc<VodLibrary> {
        Arc::new(VodLibrary {
            platform,
            root: config.recordings_dir(),
            linger: config.vod.linger,
            cache: Arc::new(BlockCache::new(
                config.vod.cache_bytes,
                metrics.clone(),
                tasks.clone(),
            )),
            open: Mutex::default(),
            next_generation: AtomicU64::new(1),
            metrics,
            tasks,
            shutdown,
        })
    }

    /// Opens video `id` for a viewer whose access token, if any, is `token`. A private video
    /// plays only for its owner and admins ([`onair_store::Video::visible_to`], the rule the
    /// HLS replay routes apply); anyone else gets [`VodRefusal::NotFound`], as for an id that
    /// does not exist.
    pub async fn open(
        self: &Arc<Self>,
        id: i64,
        token: Option<&str>,
    ) -> Result<VodHandle, VodRefusal> {
        let store = self.platform.store();
        let video = match store.video_by_id(id).await {
            Ok(Some(v)) => v,
            Ok(None) => return Err(VodRefusal::NotFound),
            Err(e) => {
                warn!(video = id, error = %e, "vod: cannot read the catalogue");
                return Err(VodRefusal::Unavailable);
            }
        };
        if video.visibility == Visibility::Private {
            let viewer = match token {
                Some(token) => match self.platform.authenticate(token).await {
                    Ok(session) => session,
                    Err(e) => {
                        warn!(video = id, error = %e, "vod: cannot check the viewer's token");
                        return Err(VodRefusal::Unavailable);
                    }
                },
                None => None,
            };
            let viewer = viewer.map(|s| (s.user.id, s.user.role == Role::Admin));
            if !video.visible_to(viewer) {
                return Err(VodRefusal::NotFound);
            }
        }
        let Some(dir) = resolve(&self.root, &video.path) else {
            warn!(
                video = id,
                "vod: the video's path is not a plain relative path"
            );
            return Err(VodRefusal::HlsOnly(id));
        };
        let path = dir.join(MEDIA_FILE);
        let opening = self.lock().entry(id).or_default().clone();
        let generation = &self.next_generation;
        let video = opening
            .get_or_try_init(|| async {
                let scanned = self
                    .tasks
                    .spawn_blocking(move || index::scan(&path))
                    .await
                    .map_err(|e| VodRefusal::Broken {
                        id,
                        source: IndexError::Io(std::io::Error::other(e.to_string())),
                    })?;
                let (file, index) = scanned.map_err(|e| match e {
                    IndexError::Io(io) if io.kind() == std::io::ErrorKind::NotFound => {
                        VodRefusal::HlsOnly(id)
                    }
                    source => VodRefusal::Broken { id, source },
                })?;
                debug!(video = id, blocks = index.blocks.len(), "vod: video opened");
                Ok(Arc::new(OpenVideo {
                    id,
                    generation: generation.fetch_add(1, Ordering::Relaxed),
                    file,
                    index,
                    viewers: AtomicUsize::new(0),
                }))
            })
            .await?
            .clone();
        video.viewers.fetch_add(1, Ordering::Relaxed);
        self.metrics.vod_viewers.fetch_add(1, Ordering::Relaxed);
        Ok(VodHandle {
            library: self.clone(),
            video,
        })
    }

    /// Forgets video `id` if nobody played it for the linger.
    fn sweep(&self, id: i64) {
        let mut open = self.lock();
        let idle = open
            .get(&id)
            .and_then(|o| o.get())
            .map(|v| (v.viewers.load(Ordering::Relaxed) == 0, v.generation));
        if let Some((true, generation)) = idle {
            open.remove(&id);
            drop(open);
            self.cache.remove_generation(generation);
            debug!(video = id, "vod: video closed after its linger");
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Opening>> {
        // Every update is one insert or remove: a poisoned map is still consistent.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A viewer's hold on an open video; the last one dropped starts the linger.
#[derive(Debug)]
pub struct VodHandle {
    library: Arc<VodLibrary>,
    video: Arc<OpenVideo>,
}

impl VodHandle {
    /// The open video.
    pub fn video(&self) -> &OpenVideo {
        &self.video
    }

    /// Block `n`'s frames, from the cache or read for it (and for everyone else who asks
    /// meanwhile). Also starts the read of block `n + 1`, so a viewer moving on finds it.
    pub fn block(&self, n: usize) -> Option<watch::Receiver<Option<Loaded>>> {
        let rx = self.request(n)?;
        let _ = self.request(n + 1);
        Some(rx)
    }

    fn request(&self, n: usize) -> Option<watch::Receiver<Option<Loaded>>> {
        let info = *self.video.index.blocks.get(n)?;
        let video = self.video.clone();
        // Each block is held twice: its file bytes and, once a player asks, its chunks.
        let cost = 2 * info.len as usize;
        Some(
            self.library
                .cache
                .get((self.video.generation, n as u32), cost, move || {
                    index::read_block(&video.file, &info)
                        .map(Arc::new)
                        .map_err(|e| Arc::from(e.to_string()))
                }),
        )
    }
}

impl Drop for VodHandle {
    fn drop(&mut self) {
        self.library
            .metrics
            .vod_viewers
            .fetch_sub(1, Ordering::Relaxed);
        if self.video.viewers.fetch_sub(1, Ordering::Relaxed) != 1 {
            return;
        }
        let library = self.library.clone();
        let id = self.video.id;
        let linger = library.linger;
        let shutdown = library.shutdown.clone();
        self.library.tasks.spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(linger) => library.sweep(id),
                _ = shutdown.cancelled() => {}
            }
        });
    }
}

/// `relative` joined onto `root` if it is a plain relative path (no `..`, no root, no
/// prefix), so a stored path can never reach outside the recordings root.
fn resolve(root: &Path, relative: &str) -> Option<PathBuf> {
    let path = Path::new(relative);
    let plain =
        !relative.is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)));
    plain.then(|| root.join(path))
}
