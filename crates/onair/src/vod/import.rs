//! Importing an uploaded file (MP4 or FLV) into a video directory: the same files a finished
//! live leaves, so every reader of replays serves it unchanged.
//!
//! Blocking: run [`import_file`] on `spawn_blocking`. The thumbnail is not made here; the
//! caller makes it afterwards with `hls::catalogue::make_thumbnail`.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write as _};
use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use onair_flv::IndexedFlvWriter;
use onair_hls::{
    Output, Playlist, PlaylistKind, SegmentEntry, Segmenter, SegmenterConfig, UnsupportedCodec,
    UriPattern,
};
use onair_media::{Frame, MediaKind, VideoCodec};

use super::flv_source::FlvSource;
use super::media_flv;
use super::mp4_source::Mp4Source;

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
///
/// `dest` must not exist yet; its parent is created if needed.
pub fn import_file(
    source: &Path,
    dest: &Path,
    config: &ImportConfig,
) -> Result<Imported, ImportError> {
    let (Some(parent), Some(name)) = (dest.parent(), dest.file_name()) else {
        return Err(ImportError::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} cannot be a video directory", dest.display()),
        )));
    };
    fs::create_dir_all(parent)?;
    if dest.exists() {
        return Err(ImportError::Io(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists already", dest.display()),
        )));
    }
    // Hidden, so no listing of video directories ever takes a half-imported one.
    let tmp = parent.join(format!(
        ".{}.{IMPORTING}{:016x}",
        name.to_string_lossy(),
        rand::random::<u64>()
    ));
    fs::create_dir(&tmp)?;
    let result = import_into(source, &tmp, config).and_then(|imported| {
        fs::rename(&tmp, dest)?;
        Ok(imported)
    });
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result
}

/// Part of the name of an import's temporary directory (`.{dest}.importing-{random}`).
pub const IMPORTING: &str = "importing-";

/// Removes the temporary directories of imports a crash cut short, in `root` and one level
/// below it (`{root}/{channel}/.{dir}.importing-…`). Call it at start-up, before any import
/// runs. Returns how many were removed.
pub fn remove_leftovers(root: &Path) -> io::Result<usize> {
    fn sweep(dir: &Path, depth: u8, removed: &mut usize) -> io::Result<()> {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            if !entry.file_type()?.is_dir() {
                continue;
            }
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') && name.contains(&format!(".{IMPORTING}")) {
                fs::remove_dir_all(entry.path())?;
                *removed += 1;
            } else if depth > 0 && !name.starts_with('.') {
                sweep(&entry.path(), depth - 1, removed)?;
            }
        }
        Ok(())
    }
    let mut removed = 0;
    sweep(root, 1, &mut removed)?;
    Ok(removed)
}

/// ISO BMFF box types a file starts with (ISO/IEC 14496-12 §4.3; `wide`/`free`/`skip` before
/// `mdat` in QuickTime files; `styp`/`sidx`/`moof` for segments).
const MP4_FIRST_BOXES: [&[u8; 4]; 9] = [
    b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"styp", b"sidx", b"moof",
];

enum Source {
    // Boxed: its tables and file handle are far larger than the FLV reader's state.
    Mp4(Box<Mp4Source>),
    Flv(FlvSource),
}

fn import_into(source: &Path, dir: &Path, config: &ImportConfig) -> Result<Imported, ImportError> {
    let file = File::open(source)?;
    let mut magic = [0u8; 8];
    let mut got = 0;
    while got < magic.len() {
        match file.read_at(&mut magic[got..], got as u64)? {
            0 => break,
            n => got += n,
        }
    }
    let mut source = if got >= 3 && &magic[..3] == b"FLV" {
        Source::Flv(FlvSource::open(file, config.max_frame_bytes))
    } else if got == 8 && MP4_FIRST_BOXES.iter().any(|b| &magic[4..8] == *b) {
        Source::Mp4(Box::new(Mp4Source::open(file, config.max_frame_bytes)?))
    } else {
        return Err(ImportError::UnknownContainer);
    };
    let mut sink = Sink::new(dir, config)?;
    if let Source::Mp4(mp4) = &source
        && let (Some(w), Some(h)) = (mp4.facts.width, mp4.facts.height)
    {
        sink.flv.set_dimensions(w, h);
        sink.size = (Some(w), Some(h));
    }
    loop {
        let frame = match &mut source {
            Source::Mp4(s) => s.next_frame()?,
            Source::Flv(s) => s.next_frame()?,
        };
        let Some(frame) = frame else { break };
        sink.push(&frame)?;
    }
    let (video_codec, audio_codec) = match &source {
        Source::Mp4(s) => (
            s.facts.video_codec.to_owned(),
            s.facts.audio_codec.map(str::to_owned),
        ),
        Source::Flv(s) => {
            let video = match s.video_codec {
                Some(VideoCodec::Hevc) => "HEVC",
                Some(_) => "H.264",
                None => return Err(ImportError::NoVideoTrack),
            };
            (video.to_owned(), s.audio_codec.map(|_| "AAC".to_owned()))
        }
    };
    sink.finish(video_codec, audio_codec)
}

/// Frames in; segments, the playlist and the FLV body out, into the import's directory.
struct Sink<'a> {
    dir: &'a Path,
    segmenter: Segmenter,
    playlist: Playlist,
    pending: Vec<Bytes>,
    flv: IndexedFlvWriter,
    body: BufWriter<File>,
    written: u64,
    video_frames: u64,
    size: (Option<u32>, Option<u32>),
}

impl<'a> Sink<'a> {
    fn new(dir: &'a Path, config: &ImportConfig) -> Result<Sink<'a>, ImportError> {
        let mut playlist = Playlist::new(PlaylistKind::Event);
        playlist.set_min_target_duration(config.target_duration.as_millis().div_ceil(1000) as u64);
        Ok(Sink {
            dir,
            segmenter: Segmenter::new(SegmenterConfig {
                target_duration: config.target_duration,
                first_sequence: 0,
            }),
            playlist,
            pending: Vec::new(),
            flv: IndexedFlvWriter::new(),
            body: BufWriter::with_capacity(1 << 16, File::create(dir.join(media_flv::FLV_BODY))?),
            written: 0,
            video_frames: 0,
            size: (None, None),
        })
    }

    fn push(&mut self, frame: &Frame) -> Result<(), ImportError> {
        let at = || {
            format!(
                "{:?} frame at {} ms",
                frame.kind,
                frame.timestamp.as_millis()
            )
        };
        match frame.kind {
            MediaKind::Video if frame.sequence_header => self.note_video_config(&frame.data),
            MediaKind::Video => self.video_frames += 1,
            MediaKind::Script if self.size.0.is_none() => {
                if let Ok(meta) = onair_flv::parse_metadata(&frame.data) {
                    self.size = (meta.width.map(|w| w as u32), meta.height.map(|h| h as u32));
                }
            }
            _ => {}
        }
        self.segmenter
            .handle_frame(0, frame)
            .map_err(|e| ImportError::Corrupt {
                detail: format!("{}: {e}", at()),
            })?;
        self.drain()?;
        if let Some(tag) = self
            .flv
            .push_frame(frame)
            .map_err(|e| ImportError::Corrupt {
                detail: format!("{}: {e}", at()),
            })?
        {
            self.body.write_all(&tag)?;
        }
        Ok(())
    }

    fn note_video_config(&mut self, body: &[u8]) {
        if let Ok(info) = onair_flv::parse_video_tag(body)
            && let Some(record) = body.get(info.payload_offset..)
            && let Ok(config) = onair_flv::parse_avc_config(record)
            && config.width.is_some()
        {
            self.size = (config.width, config.height);
        }
    }

    fn drain(&mut self) -> Result<(), ImportError> {
        while let Some(output) = self.segmenter.poll_output() {
            match output {
                Output::SegmentStarted { .. } => self.pending.clear(),
                Output::Data(bytes) => self.pending.push(bytes),
                Output::SegmentFinished(info) => {
                    let pattern = segment_pattern();
                    let mut file =
                        BufWriter::new(File::create(self.dir.join(pattern.uri(info.sequence)))?);
                    for part in self.pending.drain(..) {
                        file.write_all(&part)?;
                        self.written += part.len() as u64;
                    }
                    file.flush()?;
                    let mut entry = SegmentEntry::from_segment(&info, &pattern);
                    // An upload has no wall-clock time of its own.
                    entry.program_date_time_ms = None;
                    self.playlist
                        .push(entry)
                        .map_err(|e| ImportError::Corrupt {
                            detail: format!("segment {}: {e}", info.sequence),
                        })?;
                }
                Output::UnsupportedCodec(codec) => {
                    let found = match codec {
                        UnsupportedCodec::Video(c) => format!("video codec {c}"),
                        UnsupportedCodec::Audio(c) => format!("audio codec {c}"),
                    };
                    return Err(ImportError::UnsupportedCodec { found });
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn finish(
        mut self,
        video_codec: String,
        audio_codec: Option<String>,
    ) -> Result<Imported, ImportError> {
        self.segmenter.finish();
        self.drain()?;
        if self.video_frames == 0 {
            return Err(ImportError::NoVideoTrack);
        }
        if self.playlist.segments().is_empty() {
            return Err(ImportError::Corrupt {
                detail: "no keyframe: nothing in the file can start playback".to_owned(),
            });
        }
        self.playlist.end();
        let text = self.playlist.to_string();
        fs::write(self.dir.join(super::PLAYLIST), &text)?;
        self.body.flush()?;
        drop(self.body);
        if let (Some(w), Some(h)) = self.size {
            self.flv.set_dimensions(w, h);
        }
        let flv = media_flv::compose(self.dir, &self.flv.head())?;
        Ok(Imported {
            duration_ms: self.playlist.duration().as_millis() as u64,
            size_bytes: self.written + text.len() as u64 + flv,
            video_codec,
            audio_codec,
            width: self.size.0,
            height: self.size.1,
        })
    }
}

fn segment_pattern() -> UriPattern {
    // Invariant: the constant has one `{sequence}` and no line break.
    UriPattern::new(super::SEGMENT_PATTERN).expect("SEGMENT_PATTERN is a valid pattern")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftovers_of_cut_imports_are_removed_and_videos_kept() {
        let root = std::env::temp_dir().join(format!(
            "onair-import-leftovers-{}-{:x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        for dir in [
            "demo/.upload-1.importing-00ff",
            "demo/upload-2",
            ".upload-3.importing-01",
            "demo/20260101T000000000Z",
        ] {
            fs::create_dir_all(root.join(dir).join("sub")).unwrap();
        }
        assert_eq!(remove_leftovers(&root).unwrap(), 2);
        assert!(root.join("demo/upload-2").is_dir());
        assert!(root.join("demo/20260101T000000000Z").is_dir());
        assert!(!root.join("demo/.upload-1.importing-00ff").exists());
        assert_eq!(remove_leftovers(&root.join("missing")).unwrap(), 0);
        fs::remove_dir_all(root).unwrap();
    }
}
