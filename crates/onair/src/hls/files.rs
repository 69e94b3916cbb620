//! The recordings directory on disk: where a live's segments and playlists go, how they are
//! written so a reader never sees half a file, which names may be served, and how a recording
//! left unfinished by a crash is turned into a valid VOD playlist.
//!
//! ```text
//! {recordings_dir}/{channel}/{20261121T212415123Z}/   a live with a channel row (a replay)
//! {recordings_dir}/{channel}/dev-{…}/                 a [dev]-key live: live HLS only, deleted after
//!     0.ts 1.ts …        segments, named by media sequence number
//!     index.m3u8         the replay: EVENT while live, VOD + ENDLIST once finished
//!     live.m3u8          the live sliding window
//!     media.flv          the replay as one seekable FLV, composed at the end (`vod::media_flv`)
//!     .media.flv.body    its tags while live (made into media.flv by recovery)
//!     .*.tmp             a write in progress (removed by recovery)
//! ```
//!
//! Everything here is blocking file I/O: callers run it on `spawn_blocking`.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use onair_hls::{Playlist, UriPattern};

/// The replay playlist's file name, as served at `/replays/{id}/index.m3u8`.
pub const REPLAY_PLAYLIST: &str = crate::vod::PLAYLIST;
/// The live window's file name, served at `/live/{channel}/index.m3u8`.
pub const LIVE_PLAYLIST: &str = "live.m3u8";
/// How segment files are named: the media sequence number, so names are digits only.
pub const SEGMENT_PATTERN: &str = crate::vod::SEGMENT_PATTERN;
/// Directory names of `[dev]`-key lives start with this; they are never kept.
pub const DEV_PREFIX: &str = "dev-";

/// The pattern for segment URIs in playlists (relative, so one file serves both the live and
/// the replay URL).
pub fn segment_pattern() -> UriPattern {
    // Invariant: the constant has one `{sequence}` and no line break.
    UriPattern::new(SEGMENT_PATTERN).expect("SEGMENT_PATTERN is a valid pattern")
}

/// A file a client may ask for inside a recording directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServedFile {
    /// `index.m3u8`.
    Playlist,
    /// `{sequence}.ts`.
    Segment(u64),
}

impl ServedFile {
    /// Parses a requested name strictly: `index.m3u8` or 1–20 ASCII digits then `.ts`.
    /// Anything else (`..`, `%2e`, separators, other files in the directory) is refused, so
    /// only these names can ever be joined onto a recording directory.
    pub fn parse(name: &str) -> Option<ServedFile> {
        if name == REPLAY_PLAYLIST {
            return Some(ServedFile::Playlist);
        }
        let digits = name.strip_suffix(".ts")?;
        if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok().map(ServedFile::Segment)
    }

    /// The segment's file name (`{n}.ts`), or the playlist file that serves this URL.
    pub fn file_name(self, live: bool) -> String {
        match self {
            ServedFile::Playlist if live => LIVE_PLAYLIST.to_owned(),
            ServedFile::Playlist => REPLAY_PLAYLIST.to_owned(),
            ServedFile::Segment(n) => segment_pattern().uri(n),
        }
    }
}

/// A recording's directory relative to the recordings root: `{channel}/{UTC start}`, with
/// [`DEV_PREFIX`] for lives that have no channel row. Milliseconds keep two lives of one
/// channel apart; the store's unique `path` catches the rest.
pub fn recording_path(channel: &str, started_at: DateTime<Utc>, dev: bool) -> String {
    let stamp = started_at.format("%Y%m%dT%H%M%S%3fZ");
    let prefix = if dev { DEV_PREFIX } else { "" };
    format!("{channel}/{prefix}{stamp}")
}

/// Joins a stored relative path onto the root, refusing anything but plain names (no `..`,
/// no absolute paths): a row's path can only ever point inside the root.
pub fn resolve(root: &Path, relative: &str) -> Option<PathBuf> {
    let rel = Path::new(relative);
    let plain =
        rel.components().count() > 0 && rel.components().all(|c| matches!(c, Component::Normal(_)));
    plain.then(|| root.join(rel))
}

/// Writes `parts` to `dir/name` through a temporary file and a rename, so a reader sees either
/// the old file or the whole new one (rename is atomic within a directory on POSIX).
pub fn write_atomic(dir: &Path, name: &str, parts: &[Bytes]) -> io::Result<u64> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut file = fs::File::create(&tmp)?;
    let mut written = 0u64;
    for part in parts {
        file.write_all(part)?;
        written += part.len() as u64;
    }
    // No fsync: after a power cut a half-flushed segment is as good as none, and recovery
    // drops listed segments whose files are missing or empty. A process crash loses nothing
    // once rename returns.
    drop(file);
    fs::rename(&tmp, dir.join(name))?;
    Ok(written)
}

/// Totals of a recording directory that was finalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finalized {
    /// Segments in the VOD playlist.
    pub segments: usize,
    /// Sum of their durations.
    pub duration: Duration,
    /// Bytes of their files.
    pub size_bytes: u64,
    /// When the last segment ended, by its program date-time, if the playlist dates them.
    pub ended_at: Option<DateTime<Utc>>,
}

/// Turns a recording directory into a finished replay: the EVENT playlist is read back, every
/// listed segment whose file exists is kept, temporary files are removed, the playlist is
/// rewritten as VOD with ENDLIST, and `media.flv` is composed from the body the live left
/// (`vod::media_flv::recover`). A directory with no playlist yet (a crash before the first
/// segment) finalises to zero segments. Running it twice gives the same result.
pub fn finalize(dir: &Path, live_window: usize) -> io::Result<Finalized> {
    remove_temporaries(dir)?;
    let text = match fs::read_to_string(dir.join(REPLAY_PLAYLIST)) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let parsed = if text.is_empty() {
        None
    } else {
        Some(
            Playlist::parse(&text, live_window)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?,
        )
    };
    let mut vod = Playlist::new(onair_hls::PlaylistKind::Event);
    let mut size_bytes = 0;
    let mut ended_at = None;
    let mut dropped_gap = false;
    if let Some(parsed) = &parsed {
        vod.set_min_target_duration(parsed.target_duration());
        for entry in parsed.segments() {
            let len = fs::metadata(dir.join(&entry.uri))
                .map(|m| m.len())
                .unwrap_or(0);
            if len == 0 || !is_segment_uri(&entry.uri) {
                // A listed segment that is gone leaves a hole the player must be told about.
                dropped_gap = true;
                continue;
            }
            let mut entry = entry.clone();
            let gap = std::mem::take(&mut dropped_gap);
            if !vod.segments().is_empty() {
                entry.discontinuity |= gap;
                // Media sequence numbers must step by one; the URI keeps the file's name.
                entry.sequence = vod.next_sequence();
            }
            size_bytes += len;
            ended_at = entry
                .program_date_time_ms
                .and_then(|ms| i64::try_from(ms + entry.duration.as_millis() as u64).ok())
                .and_then(DateTime::from_timestamp_millis);
            vod.push(entry)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        }
    }
    vod.end();
    let segments = vod.segments().len();
    if parsed.is_some() {
        write_atomic(dir, REPLAY_PLAYLIST, &[Bytes::from(vod.to_string())])?;
    }
    crate::vod::media_flv::recover(dir)?;
    Ok(Finalized {
        segments,
        duration: vod.duration(),
        size_bytes,
        ended_at,
    })
}

fn is_segment_uri(uri: &str) -> bool {
    matches!(ServedFile::parse(uri), Some(ServedFile::Segment(_)))
}

fn remove_temporaries(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(".tmp") {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Removes the directories of `[dev]`-key lives left behind by a crash: they are never kept
/// as replays. Returns how many were removed.
pub fn remove_dev_leftovers(root: &Path) -> io::Result<usize> {
    let channels = match fs::read_dir(root) {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for channel in channels {
        let channel = channel?;
        if !channel.file_type()?.is_dir() {
            continue;
        }
        for rec in fs::read_dir(channel.path())? {
            let rec = rec?;
            if rec.file_name().to_string_lossy().starts_with(DEV_PREFIX)
                && rec.file_type()?.is_dir()
            {
                fs::remove_dir_all(rec.path())?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// Deletes a recording's directory (and its channel directory, if that is left empty).
pub fn remove_recording(root: &Path, relative: &str) -> io::Result<()> {
    let Some(dir) = resolve(root, relative) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("recording path {relative:?} is not a plain relative path"),
        ));
    };
    match fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(parent) = dir.parent()
        && parent != root
    {
        // Fails harmlessly when another recording of the channel is still there.
        let _ = fs::remove_dir(parent);
    }
    Ok(())
}

/// What the live playlist puts before each segment number: the live's directory name.
pub fn live_segment_prefix(dir: &Path) -> Option<String> {
    dir.file_name()?.to_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use onair_hls::{PlaylistKind, SegmentEntry};

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "onair-hls-files-{}-{name}-{:x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn entry(sequence: u64, ms: u64, discontinuity: bool) -> SegmentEntry {
        SegmentEntry {
            sequence,
            duration: Duration::from_millis(ms),
            discontinuity,
            program_date_time_ms: Some(1_795_296_255_000 + sequence * 2000),
            uri: segment_pattern().uri(sequence),
        }
    }

    #[test]
    fn only_the_playlist_and_numbered_segments_can_be_named() {
        assert_eq!(ServedFile::parse("index.m3u8"), Some(ServedFile::Playlist));
        assert_eq!(ServedFile::parse("42.ts"), Some(ServedFile::Segment(42)));
        for bad in [
            "live.m3u8",
            "..",
            "../index.m3u8",
            ".ts",
            "-1.ts",
            "1.ts.tmp",
            ".1.ts.tmp",
            "%2e%2e",
            "1/2.ts",
            "1e3.ts",
            "99999999999999999999999.ts",
            "",
        ] {
            assert_eq!(ServedFile::parse(bad), None, "{bad:?}");
        }
        assert_eq!(ServedFile::Playlist.file_name(true), "live.m3u8");
        assert_eq!(ServedFile::Segment(7).file_name(false), "7.ts");
    }

    #[test]
    fn stored_paths_resolve_only_inside_the_root() {
        let root = Path::new("/srv/rec");
        assert_eq!(
            resolve(root, "demo/20261121T212415123Z"),
            Some(PathBuf::from("/srv/rec/demo/20261121T212415123Z"))
        );
        for bad in ["", "/etc", "../x", "demo/../../x", "./demo"] {
            assert_eq!(resolve(root, bad), None, "{bad:?}");
        }
        let at = DateTime::from_timestamp_millis(1_795_296_255_123).unwrap();
        assert_eq!(
            recording_path("demo", at, false),
            "demo/20261121T212415123Z"
        );
        assert_eq!(
            recording_path("demo", at, true),
            "demo/dev-20261121T212415123Z"
        );
    }

    #[test]
    fn atomic_writes_leave_no_temporary_and_replace_whole_files() {
        let dir = temp_dir("atomic");
        write_atomic(&dir, "a.m3u8", &[Bytes::from_static(b"one")]).unwrap();
        let n = write_atomic(
            &dir,
            "a.m3u8",
            &[Bytes::from_static(b"two "), Bytes::from_static(b"parts")],
        )
        .unwrap();
        assert_eq!(n, 9);
        assert_eq!(fs::read_to_string(dir.join("a.m3u8")).unwrap(), "two parts");
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.m3u8")]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_event_playlist_left_by_a_crash_becomes_vod_without_missing_segments() {
        let dir = temp_dir("finalize");
        let mut event = Playlist::new(PlaylistKind::Event);
        event.set_min_target_duration(2);
        for (seq, ms, disc) in [
            (0, 2000, false),
            (1, 2000, false),
            (2, 1500, true),
            (3, 2000, false),
        ] {
            event.push(entry(seq, ms, disc)).unwrap();
            if seq != 1 {
                fs::write(
                    dir.join(format!("{seq}.ts")),
                    vec![0x47u8; 188 * (seq as usize + 1)],
                )
                .unwrap();
            }
        }
        fs::write(dir.join(REPLAY_PLAYLIST), event.to_string()).unwrap();
        fs::write(dir.join(".4.ts.tmp"), b"half").unwrap();

        let done = finalize(&dir, 6).unwrap();
        assert_eq!(done.segments, 3);
        assert_eq!(done.duration, Duration::from_millis(5500));
        assert_eq!(done.size_bytes, 188 * (1 + 3 + 4));
        assert_eq!(
            done.ended_at.unwrap().timestamp_millis(),
            1_795_296_255_000 + 3 * 2000 + 2000
        );
        assert!(!dir.join(".4.ts.tmp").exists());
        let text = fs::read_to_string(dir.join(REPLAY_PLAYLIST)).unwrap();
        let vod = Playlist::parse(&text, 6).unwrap();
        assert_eq!(vod.kind(), PlaylistKind::Vod);
        assert!(vod.is_ended());
        let uris: Vec<_> = vod.segments().iter().map(|s| s.uri.as_str()).collect();
        assert_eq!(uris, ["0.ts", "2.ts", "3.ts"]);
        // The hole where 1.ts was is a discontinuity, as is the republish at 2.ts.
        let flags: Vec<_> = vod.segments().iter().map(|s| s.discontinuity).collect();
        assert_eq!(flags, [false, true, false]);
        assert!(text.ends_with("#EXT-X-ENDLIST\n"), "{text}");
        // Idempotent.
        assert_eq!(finalize(&dir, 6).unwrap(), done);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_crash_before_the_first_segment_finalizes_to_nothing() {
        let dir = temp_dir("empty");
        fs::write(dir.join(".0.ts.tmp"), b"x").unwrap();
        let done = finalize(&dir, 6).unwrap();
        assert_eq!(done.segments, 0);
        assert_eq!(done.size_bytes, 0);
        assert!(!dir.join(REPLAY_PLAYLIST).exists());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn dev_leftovers_are_removed_and_replays_kept() {
        let root = temp_dir("dev");
        fs::create_dir_all(root.join("demo/dev-20260101T000000000Z")).unwrap();
        fs::create_dir_all(root.join("demo/20260101T000000000Z")).unwrap();
        assert_eq!(remove_dev_leftovers(&root).unwrap(), 1);
        assert!(root.join("demo/20260101T000000000Z").exists());
        remove_recording(&root, "demo/20260101T000000000Z").unwrap();
        assert!(
            !root.join("demo").exists(),
            "the empty channel directory goes too"
        );
        assert!(remove_recording(&root, "../etc").is_err());
        fs::remove_dir_all(root).unwrap();
    }
}
