//! `media.flv`, the seekable FLV every video directory holds beside its HLS files, for the
//! readers that play a video over RTMP or progressive HTTP-FLV.
//!
//! It is written in two parts. While a live records (or an upload imports), the media tags
//! go to [`FLV_BODY`] as they come and an [`IndexedFlvWriter`] keeps the keyframe index; at
//! the end, [`compose`] writes the head (header and `onMetaData` with the index) and the
//! body into a temporary file and renames it to [`MEDIA_FLV`], so a reader sees the whole
//! file or none. A crash leaves the body, from which [`recover`] rebuilds the index.
//! Replays recorded before this file existed get one from `ffmpeg` ([`remux_with_ffmpeg`]).
//!
//! Blocking file I/O, except [`remux_with_ffmpeg`]: callers run it on `spawn_blocking`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read as _, Write as _};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use onair_flv::{FlvDemuxer, FlvHeader, FlvLimits, IndexedFlvWriter};
use onair_media::Frame;

/// The file readers open.
pub const MEDIA_FLV: &str = "media.flv";
/// The media tags written so far; no `.tmp` suffix, so finalising a crashed recording
/// (which removes temporaries) leaves it for [`recover`].
pub const FLV_BODY: &str = ".media.flv.body";
/// Where [`compose`] writes before its rename; a crash's leftover is a temporary like any.
const COMPOSING: &str = ".media.flv.tmp";

/// The longest an `ffmpeg` remux of one replay may take before it is killed.
const FFMPEG_DEADLINE: Duration = Duration::from_secs(600);

/// A recording's FLV side, kept by the recorder on the async task: frames in, batches of
/// body bytes out for the blocking pool. The frames' bytes are shared, not copied; the tag
/// headers go into one growing buffer between them.
#[derive(Debug, Default)]
pub struct FlvRecording {
    writer: IndexedFlvWriter,
    framing: BytesMut,
    parts: Vec<Bytes>,
}

impl FlvRecording {
    /// Nothing recorded yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one frame (script frames only inform the metadata). A frame FLV cannot carry (a
    /// body over 16 MiB) is left out and reported.
    pub fn push(&mut self, frame: &Frame) -> Result<(), onair_flv::FlvError> {
        let Some(framing) = self
            .writer
            .push_framing(frame.kind, frame.timestamp, &frame.data)?
        else {
            return Ok(());
        };
        self.framing.extend_from_slice(&framing.header);
        self.parts.push(self.framing.split().freeze());
        self.parts.push(frame.data.clone());
        self.framing.extend_from_slice(&framing.previous_tag_size);
        Ok(())
    }

    /// The body bytes pushed since the last call, to append to [`FLV_BODY`] in order.
    pub fn take_batch(&mut self) -> Vec<Bytes> {
        if !self.framing.is_empty() {
            self.parts.push(self.framing.split().freeze());
        }
        std::mem::take(&mut self.parts)
    }

    /// The file's head, once any media was pushed.
    pub fn head(&self) -> Option<Bytes> {
        (!self.writer.is_empty()).then(|| self.writer.head())
    }
}

/// Appends `parts` to the body in `dir`. Returns the bytes written.
pub fn append_body(dir: &Path, parts: &[Bytes]) -> io::Result<u64> {
    if parts.is_empty() {
        return Ok(0);
    }
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(FLV_BODY))?;
    let mut written = 0u64;
    for part in parts {
        file.write_all(part)?;
        written += part.len() as u64;
    }
    Ok(written)
}

/// Writes `media.flv` = `head` + the body, through a temporary file and a rename, then
/// removes the body. Returns the file's size.
pub fn compose(dir: &Path, head: &[u8]) -> io::Result<u64> {
    let tmp = dir.join(COMPOSING);
    let body = dir.join(FLV_BODY);
    let result = (|| {
        let mut out = File::create(&tmp)?;
        out.write_all(head)?;
        let copied = io::copy(&mut File::open(&body)?, &mut out)?;
        drop(out);
        fs::rename(&tmp, dir.join(MEDIA_FLV))?;
        Ok(head.len() as u64 + copied)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    fs::remove_file(&body)?;
    result
}

/// Removes a body that will never become a file (a recording with no media, or whose
/// writes failed).
pub fn discard_body(dir: &Path) -> io::Result<()> {
    match fs::remove_file(dir.join(FLV_BODY)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// What [`recover`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovered {
    /// No body: nothing to do.
    NoBody,
    /// `media.flv` was written from the body; a cut last tag was dropped.
    Composed {
        /// The file's size.
        size_bytes: u64,
        /// Bytes of a partial (or unreadable) tail that were cut off.
        dropped_bytes: u64,
    },
    /// The body held no whole media tag; it was removed.
    Empty,
}

/// Rebuilds `media.flv` from a body a crash left in `dir`: every whole tag is indexed again,
/// a tag cut by the crash (or anything unreadable from there on) is cut off, and the file is
/// composed. Running it again finds no body.
pub fn recover(dir: &Path) -> io::Result<Recovered> {
    let path = dir.join(FLV_BODY);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Recovered::NoBody),
        Err(e) => return Err(e),
    };
    let total = file.metadata()?.len();
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut writer = IndexedFlvWriter::new();
    // The body has no file header; the demuxer wants one.
    let mut buf = BytesMut::from(&FlvHeader::default().encode()[..]);
    let mut demuxer = FlvDemuxer::new(FlvLimits::default());
    let mut chunk = vec![0u8; 1 << 16];
    let mut valid = 0u64;
    'read: loop {
        loop {
            match demuxer.decode(&mut buf) {
                Ok(Some(tag)) => {
                    let len = (onair_flv::TAG_HEADER_LEN
                        + tag.body.len()
                        + onair_flv::PREVIOUS_TAG_SIZE_LEN) as u64;
                    if writer.note(tag.kind, tag.timestamp, &tag.body).is_err() {
                        break 'read;
                    }
                    valid += len;
                }
                Ok(None) => break,
                Err(_) => break 'read,
            }
        }
        let n = reader.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    drop(reader);
    if writer.is_empty() {
        fs::remove_file(&path)?;
        return Ok(Recovered::Empty);
    }
    if valid < total {
        OpenOptions::new().write(true).open(&path)?.set_len(valid)?;
    }
    let size_bytes = compose(dir, &writer.head())?;
    Ok(Recovered::Composed {
        size_bytes,
        dropped_bytes: total - valid,
    })
}

/// What [`remux_with_ffmpeg`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Remux {
    /// `media.flv` is written.
    Made,
    /// No `ffmpeg` on `PATH`.
    NoFfmpeg,
    /// ffmpeg ran and failed; why, in a line.
    Failed(String),
}

/// Makes `media.flv` for a replay recorded before the file existed: `ffmpeg` copies the HLS
/// playlist's streams into an FLV with its own keyframe index (the same convention), to a
/// temporary name that is renamed when whole.
pub async fn remux_with_ffmpeg(program: &str, dir: &Path) -> Remux {
    let tmp = dir.join(COMPOSING);
    let mut command = tokio::process::Command::new(program);
    command
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i"])
        .arg(dir.join(super::PLAYLIST))
        .args(["-c", "copy", "-flvflags", "add_keyframe_index", "-f", "flv"])
        .arg(&tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = match command.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Remux::NoFfmpeg,
        Err(e) => return Remux::Failed(format!("cannot start ffmpeg: {e}")),
    };
    let output = tokio::time::timeout(FFMPEG_DEADLINE, child.wait_with_output()).await;
    let failed = match output {
        Ok(Ok(out)) if out.status.success() => None,
        Ok(Ok(out)) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let reason = stderr.lines().last().unwrap_or("no output").trim();
            Some(format!("ffmpeg {}: {reason}", out.status))
        }
        Ok(Err(e)) => Some(format!("ffmpeg: {e}")),
        Err(_) => Some(format!(
            "ffmpeg took longer than {} s",
            FFMPEG_DEADLINE.as_secs()
        )),
    };
    if let Some(reason) = failed {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Remux::Failed(reason);
    }
    match tokio::fs::rename(&tmp, dir.join(MEDIA_FLV)).await {
        Ok(()) => Remux::Made,
        Err(e) => Remux::Failed(format!("cannot move media.flv into place: {e}")),
    }
}

/// Finished video directories under `root` (`{channel}/{dir}` with an ended playlist) that
/// have no `media.flv`, for the start-up backfill. Blocking.
pub fn missing_under(root: &Path) -> io::Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    let channels = match fs::read_dir(root) {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for channel in channels {
        let channel = channel?;
        if !channel.file_type()?.is_dir() {
            continue;
        }
        for video in fs::read_dir(channel.path())? {
            let video = video?;
            let dir = video.path();
            let hidden = video.file_name().to_string_lossy().starts_with('.');
            if hidden || !video.file_type()?.is_dir() || dir.join(MEDIA_FLV).exists() {
                continue;
            }
            // Only a finished replay: a live still recording has no ENDLIST yet.
            let ended = fs::read_to_string(dir.join(super::PLAYLIST))
                .is_ok_and(|text| text.contains("#EXT-X-ENDLIST"));
            if ended {
                out.push(dir);
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use onair_media::{MediaKind, Timestamp};

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "onair-media-flv-{name}-{}-{:x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn frames() -> Vec<Frame> {
        let avc = [
            0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 1, 0x67, 1, 0, 1, 0x68,
        ];
        let mut out = vec![
            Frame::new(
                MediaKind::Video,
                Timestamp::from_millis(900),
                Bytes::copy_from_slice(&avc),
            )
            .with_sequence_header(true),
            Frame::new(
                MediaKind::Audio,
                Timestamp::from_millis(900),
                Bytes::from_static(&[0xAF, 0, 0x12, 0x10]),
            )
            .with_sequence_header(true),
        ];
        for i in 0..40u32 {
            let key = i % 10 == 0;
            let body = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0, i as u8];
            out.push(
                Frame::new(
                    MediaKind::Video,
                    Timestamp::from_millis(1000 + i * 40),
                    Bytes::from(body),
                )
                .with_keyframe(key),
            );
            out.push(Frame::new(
                MediaKind::Audio,
                Timestamp::from_millis(1000 + i * 40),
                Bytes::from(vec![0xAF, 1, i as u8]),
            ));
        }
        out
    }

    /// Tags of a whole FLV file: (offset, type, ms).
    fn walk(file: &[u8]) -> Vec<(usize, u8, u32)> {
        let mut out = Vec::new();
        let mut pos = 13;
        while pos + 11 <= file.len() {
            let size =
                u32::from_be_bytes([0, file[pos + 1], file[pos + 2], file[pos + 3]]) as usize;
            let ts =
                u32::from_be_bytes([file[pos + 7], file[pos + 4], file[pos + 5], file[pos + 6]]);
            out.push((pos, file[pos], ts));
            pos += 15 + size;
        }
        assert_eq!(pos, file.len(), "the file ends on a tag boundary");
        out
    }

    fn record(dir: &Path, frames: &[Frame], batches: usize) -> FlvRecording {
        let mut rec = FlvRecording::new();
        for chunk in frames.chunks(frames.len().div_ceil(batches)) {
            for frame in chunk {
                rec.push(frame).unwrap();
            }
            append_body(dir, &rec.take_batch()).unwrap();
        }
        rec
    }

    #[test]
    fn batches_compose_into_the_file_the_writer_indexed() {
        let dir = temp_dir("compose");
        let frames = frames();
        let rec = record(&dir, &frames, 7);
        let head = rec.head().unwrap();
        let size = compose(&dir, &head).unwrap();
        let file = fs::read(dir.join(MEDIA_FLV)).unwrap();
        assert_eq!(size, file.len() as u64);
        assert!(!dir.join(FLV_BODY).exists() && !dir.join(COMPOSING).exists());
        let tags = walk(&file);
        assert_eq!(tags.len(), 1 + frames.len());
        assert_eq!(tags[1].2, 0, "the first media tag is at 0");
        let keyframes: Vec<_> = tags
            .iter()
            .filter(|(pos, kind, _)| *kind == 9 && file[pos + 11] == 0x17 && file[pos + 12] == 1)
            .map(|(pos, _, ts)| (*pos, *ts))
            .collect();
        assert_eq!(keyframes.len(), 4);
        let mut buf = BytesMut::from(&file[..]);
        let script = FlvDemuxer::default().decode(&mut buf).unwrap().unwrap();
        let meta = onair_flv::parse_metadata(&script.body).unwrap();
        let index = meta
            .properties
            .iter()
            .find(|(k, _)| k == "keyframes")
            .unwrap();
        let positions = index.1.get("filepositions").unwrap().clone();
        let want: Vec<_> = keyframes
            .iter()
            .map(|(pos, _)| onair_amf::Value::Number(*pos as f64))
            .collect();
        assert_eq!(positions, onair_amf::Value::StrictArray(want));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_body_cut_by_a_crash_is_recovered_up_to_its_last_whole_tag() {
        let dir = temp_dir("recover");
        let frames = frames();
        let rec = record(&dir, &frames, 3);
        let whole = fs::read(dir.join(FLV_BODY)).unwrap();
        // The crash cut the last tag (an audio tag of 3 + 15 bytes) in its middle.
        fs::write(dir.join(FLV_BODY), &whole[..whole.len() - 6]).unwrap();
        fs::write(dir.join(COMPOSING), b"half a file from an earlier try").unwrap();
        let done = recover(&dir).unwrap();
        let file = fs::read(dir.join(MEDIA_FLV)).unwrap();
        assert_eq!(
            done,
            Recovered::Composed {
                size_bytes: file.len() as u64,
                dropped_bytes: 18 - 6
            }
        );
        let tags = walk(&file);
        assert_eq!(
            tags.len(),
            frames.len(),
            "all but the cut tag, plus the metadata"
        );
        // The head has the same index as the one the live would have written.
        let mut buf = BytesMut::from(&file[..]);
        let script = FlvDemuxer::default().decode(&mut buf).unwrap().unwrap();
        let live_head = rec.head().unwrap();
        let mut live = BytesMut::from(&live_head[..]);
        let live_script = FlvDemuxer::default().decode(&mut live).unwrap().unwrap();
        let keyframes = |body: &[u8]| {
            let meta = onair_flv::parse_metadata(body).unwrap();
            meta.properties
                .into_iter()
                .find(|(k, _)| k == "keyframes")
                .unwrap()
                .1
        };
        assert_eq!(
            keyframes(&script.body).get("times"),
            keyframes(&live_script.body).get("times")
        );
        assert_eq!(recover(&dir).unwrap(), Recovered::NoBody);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_body_without_a_whole_tag_is_removed() {
        let dir = temp_dir("empty");
        fs::write(dir.join(FLV_BODY), [9u8, 0, 0]).unwrap();
        assert_eq!(recover(&dir).unwrap(), Recovered::Empty);
        assert!(!dir.join(FLV_BODY).exists() && !dir.join(MEDIA_FLV).exists());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn only_ended_replays_without_the_file_need_a_backfill() {
        let root = temp_dir("missing");
        for (name, playlist, flv) in [
            ("a/1", "#EXTM3U\n#EXT-X-ENDLIST\n", false),
            ("a/2", "#EXTM3U\n#EXT-X-ENDLIST\n", true),
            ("a/3", "#EXTM3U\n", false),
            ("b/.upload-1", "#EXTM3U\n#EXT-X-ENDLIST\n", false),
        ] {
            let dir = root.join(name);
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join(super::super::PLAYLIST), playlist).unwrap();
            if flv {
                fs::write(dir.join(MEDIA_FLV), b"FLV").unwrap();
            }
        }
        assert_eq!(missing_under(&root).unwrap(), vec![root.join("a/1")]);
        fs::remove_dir_all(root).unwrap();
    }

    #[tokio::test]
    async fn without_ffmpeg_no_file_is_made() {
        let dir = temp_dir("noffmpeg");
        assert_eq!(
            remux_with_ffmpeg("onair-no-such-ffmpeg", &dir).await,
            Remux::NoFfmpeg
        );
        assert!(!dir.join(MEDIA_FLV).exists());
        fs::remove_dir_all(dir).unwrap();
    }
}
