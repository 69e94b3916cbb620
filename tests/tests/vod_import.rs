//! Importing uploads into a video directory (`onair::vod::import`): files made by a real
//! ffmpeg go in; the HLS files and `media.flv` that come out are read back by ffprobe and by
//! our own FLV demuxer. Bad uploads (unsupported codecs, cut files, garbage) get their error
//! and leave nothing behind.

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::BytesMut;
use onair::vod::import::{ImportConfig, ImportError, Imported, import_file};
use onair::vod::media_flv::MEDIA_FLV;
use onair_amf::Value;
use onair_e2e::require_ffmpeg;
use onair_flv::{FlvDemuxer, classify, parse_metadata};
use onair_media::MediaKind;
use serde_json::Value as Json;

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "onair-import-{name}-{}-{:x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(dir.join("videos")).unwrap();
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn dest(&self) -> PathBuf {
        self.0.join("videos/upload-1")
    }

    /// What the videos directory holds: after a failed import, nothing.
    fn videos(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.0.join("videos"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs ffmpeg with a lavfi test picture (and tone) of `seconds`, then `args`, into `out`.
fn make(out: &Path, seconds: u32, audio: bool, args: &[&str]) {
    let mut command = Command::new("ffmpeg");
    command.args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"]);
    command.args([
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc2=size=320x240:rate=25:duration={seconds}"),
    ]);
    if audio {
        command.args([
            "-f",
            "lavfi",
            "-i",
            &format!("sine=frequency=440:sample_rate=48000:duration={seconds}"),
        ]);
    }
    let status = command.args(args).arg(out).status().unwrap();
    assert!(status.success(), "ffmpeg made {}", out.display());
}

fn ffprobe(args: &[&str], input: &Path) -> Json {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-of", "json"])
        .args(args)
        .arg(input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        input.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn format_duration(input: &Path) -> f64 {
    let json = ffprobe(&["-show_format"], input);
    json["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn codecs(input: &Path) -> Vec<String> {
    let json = ffprobe(&["-show_entries", "stream=codec_name"], input);
    let mut names: Vec<String> = json["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["codec_name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// (pts, dts) in ms of the first `n` video packets ffprobe reads, from `seek` seconds on.
fn video_packets(input: &Path, seek: Option<&str>, n: usize) -> Vec<(i64, i64)> {
    let mut args = vec![
        "-select_streams",
        "v",
        "-show_entries",
        "packet=pts_time,dts_time",
    ];
    let interval;
    if let Some(at) = seek {
        interval = format!("{at}%+#{n}");
        args.extend(["-read_intervals", &interval]);
    }
    let json = ffprobe(&args, input);
    let ms = |v: &Json| (v.as_str().unwrap().parse::<f64>().unwrap() * 1000.0).round() as i64;
    json["packets"]
        .as_array()
        .unwrap()
        .iter()
        .take(n)
        .map(|p| (ms(&p["pts_time"]), ms(&p["dts_time"])))
        .collect()
}

/// Every tag of an FLV file by its offset: (offset, kind, ms, body).
fn tags(file: &[u8]) -> Vec<(u64, MediaKind, u32, bytes::Bytes)> {
    let mut demuxer = FlvDemuxer::default();
    let mut buf = BytesMut::from(file);
    let mut out = Vec::new();
    // Our files' header: 9 bytes and PreviousTagSize0.
    let mut offset = 13;
    while let Some(tag) = demuxer.decode(&mut buf).unwrap() {
        let len = 11 + tag.body.len() + 4;
        out.push((offset as u64, tag.kind, tag.timestamp.as_millis(), tag.body));
        offset += len;
    }
    assert!(buf.is_empty(), "media.flv ends on a tag boundary");
    assert_eq!(offset, file.len());
    out
}

/// Checks a `media.flv` the way its readers use it; returns its keyframe times.
fn check_media_flv(dir: &Path, duration_ms: u64) -> Vec<f64> {
    let path = dir.join(MEDIA_FLV);
    let file = std::fs::read(&path).unwrap();
    let tags = tags(&file);
    assert_eq!(tags[0].1, MediaKind::Script, "onMetaData comes first");
    let meta = parse_metadata(&tags[0].3).unwrap();
    let prop = |key: &str| {
        meta.properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("onMetaData has {key}"))
    };
    assert_eq!(prop("filesize").as_number(), Some(file.len() as f64));
    assert_eq!(prop("hasKeyframes").as_bool(), Some(true));
    let seconds = meta.duration.unwrap();
    assert!(
        (seconds * 1000.0 - duration_ms as f64).abs() < 500.0,
        "onMetaData duration {seconds} s for {duration_ms} ms"
    );
    // Sequence headers, then media, from 0.
    assert!(classify(tags[1].1, &tags[1].3).sequence_header);
    assert_eq!(tags[1].2, 0);
    let keyframes = prop("keyframes");
    let numbers = |name: &str| match keyframes.get(name) {
        Some(Value::StrictArray(items)) => items
            .iter()
            .map(|v| v.as_number().unwrap())
            .collect::<Vec<_>>(),
        other => panic!("keyframes.{name}: {other:?}"),
    };
    let (times, positions) = (numbers("times"), numbers("filepositions"));
    assert!(times.len() >= 2, "a keyframe every 2 s: {times:?}");
    assert_eq!(times.len(), positions.len());
    for (time, pos) in times.iter().zip(&positions) {
        let tag = tags
            .iter()
            .find(|t| t.0 as f64 == *pos)
            .unwrap_or_else(|| panic!("a tag starts at {pos}"));
        assert_eq!(tag.1, MediaKind::Video);
        assert!(
            classify(tag.1, &tag.3).keyframe,
            "the tag at {pos} is a keyframe"
        );
        assert_eq!(f64::from(tag.2) / 1000.0, *time);
    }
    times
}

fn check_hls(dir: &Path, seconds: f64, want_codecs: &[&str]) {
    let playlist = dir.join("index.m3u8");
    let text = std::fs::read_to_string(&playlist).unwrap();
    assert!(text.contains("#EXT-X-PLAYLIST-TYPE:VOD") && text.ends_with("#EXT-X-ENDLIST\n"));
    let got = format_duration(&playlist);
    assert!(
        (got - seconds).abs() < 0.5,
        "index.m3u8 lasts {got} s, not {seconds}"
    );
    assert_eq!(codecs(&playlist), want_codecs);
}

fn import(scratch: &Scratch, source: &Path) -> Result<Imported, ImportError> {
    import_file(source, &scratch.dest(), &ImportConfig::default())
}

#[test]
fn an_mp4_with_b_frames_becomes_hls_and_a_seekable_flv() {
    if !require_ffmpeg() {
        return;
    }
    let scratch = Scratch::new("mp4");
    let source = scratch.path("in.mp4");
    // moov at the end, as cameras and ffmpeg write by default; 2 B-frames between
    // references, so composition offsets (ctts) matter.
    make(
        &source,
        8,
        true,
        &[
            "-c:v", "libx264", "-preset", "veryfast", "-bf", "2", "-g", "50", "-pix_fmt",
            "yuv420p", "-c:a", "aac", "-b:a", "64k",
        ],
    );
    let imported = import(&scratch, &source).unwrap();
    let dest = scratch.dest();
    assert_eq!(
        scratch.videos(),
        ["upload-1"],
        "no temporary directory is left"
    );
    assert_eq!(imported.video_codec, "H.264");
    assert_eq!(imported.audio_codec.as_deref(), Some("AAC"));
    assert_eq!((imported.width, imported.height), (Some(320), Some(240)));
    assert!(
        imported.duration_ms.abs_diff(8000) < 500,
        "{}",
        imported.duration_ms
    );
    let on_disk: u64 = std::fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert_eq!(imported.size_bytes, on_disk);
    let mut names: Vec<String> = std::fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["0.ts", "1.ts", "2.ts", "3.ts", "index.m3u8", "media.flv"]
    );

    check_hls(&dest, 8.0, &["aac", "h264"]);
    let flv = dest.join(MEDIA_FLV);
    let times = check_media_flv(&dest, imported.duration_ms);
    assert_eq!(times, [0.0, 2.0, 4.0, 6.0]);
    assert_eq!(codecs(&flv), ["aac", "h264"]);
    let seconds = format_duration(&flv);
    assert!((seconds - 8.0).abs() < 0.5, "media.flv lasts {seconds} s");

    // Composition offsets survived: the same presentation order as the source, up to the
    // source's own start offset.
    let want = video_packets(&source, None, 30);
    let got = video_packets(&flv, None, 30);
    assert!(got.iter().any(|(pts, dts)| pts != dts), "B-frames: {got:?}");
    let shift = |p: &[(i64, i64)]| -> Vec<i64> { p.iter().map(|(pts, _)| pts - p[0].0).collect() };
    let (want, got) = (shift(&want), shift(&got));
    for (w, g) in want.iter().zip(&got) {
        assert!((w - g).abs() <= 1, "pts {got:?}, source {want:?}");
    }

    // A seek near the middle lands on the keyframe at 4 s, through the index.
    let seeked = video_packets(&flv, Some("4.5"), 1);
    assert_eq!(seeked.len(), 1);
    assert!(
        (seeked[0].1 - 4000).abs() <= 100,
        "a seek to 4.5 s starts at {seeked:?}"
    );
    let status = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-ss",
            "3",
            "-i",
        ])
        .arg(&flv)
        .args(["-frames:v", "5", "-f", "null", "-"])
        .status()
        .unwrap();
    assert!(status.success(), "ffmpeg -ss 3 decodes media.flv");
}

#[test]
fn a_faststart_mp4_and_an_flv_import_too() {
    if !require_ffmpeg() {
        return;
    }
    let scratch = Scratch::new("flv");
    let flv_source = scratch.path("in.flv");
    make(
        &flv_source,
        6,
        true,
        &[
            "-c:v", "libx264", "-preset", "veryfast", "-bf", "2", "-g", "50", "-c:a", "aac",
        ],
    );
    let imported = import(&scratch, &flv_source).unwrap();
    assert_eq!(imported.video_codec, "H.264");
    assert_eq!(imported.audio_codec.as_deref(), Some("AAC"));
    assert_eq!((imported.width, imported.height), (Some(320), Some(240)));
    check_hls(&scratch.dest(), 6.0, &["aac", "h264"]);
    check_media_flv(&scratch.dest(), imported.duration_ms);
    std::fs::remove_dir_all(scratch.dest()).unwrap();

    let mp4 = scratch.path("fast.mp4");
    make(
        &mp4,
        4,
        false,
        &[
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-g",
            "25",
            "-movflags",
            "+faststart",
        ],
    );
    let imported = import(&scratch, &mp4).unwrap();
    assert_eq!(imported.audio_codec, None);
    check_hls(&scratch.dest(), 4.0, &["h264"]);
    assert_eq!(
        check_media_flv(&scratch.dest(), imported.duration_ms).len(),
        4
    );
}

#[test]
fn hevc_in_mp4_imports_as_hevc() {
    if !require_ffmpeg() {
        return;
    }
    let scratch = Scratch::new("hevc");
    let source = scratch.path("in.mp4");
    make(
        &source,
        4,
        true,
        &[
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-x265-params",
            "keyint=50:log-level=error",
            "-tag:v",
            "hvc1",
            "-c:a",
            "aac",
        ],
    );
    let imported = import(&scratch, &source).unwrap();
    assert_eq!(imported.video_codec, "HEVC");
    assert_eq!((imported.width, imported.height), (Some(320), Some(240)));
    check_hls(&scratch.dest(), 4.0, &["aac", "hevc"]);
    // FFmpeg 5 reads no Enhanced RTMP FLV; our demuxer and the index are checked instead.
    let times = check_media_flv(&scratch.dest(), imported.duration_ms);
    // Times are decode times: x265's B-frames put the second keyframe's a frame early.
    assert_eq!(times.len(), 2, "{times:?}");
    assert!((times[1] - 2.0).abs() <= 0.1, "{times:?}");
}

#[test]
fn unsupported_codecs_are_named_and_leave_nothing() {
    if !require_ffmpeg() {
        return;
    }
    let scratch = Scratch::new("codecs");
    let cases: [(&str, bool, &[&str], &str); 4] = [
        (
            "vp9.mp4",
            true,
            &[
                "-c:v",
                "libvpx-vp9",
                "-deadline",
                "realtime",
                "-c:a",
                "libopus",
            ],
            "video codec VP9",
        ),
        (
            "mpeg4.mp4",
            false,
            &["-c:v", "mpeg4"],
            "video codec MPEG-4 Part 2 (mp4v)",
        ),
        (
            "opus.mp4",
            true,
            &["-c:v", "libx264", "-preset", "veryfast", "-c:a", "libopus"],
            "audio codec Opus",
        ),
        (
            "mp3.flv",
            true,
            &[
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-c:a",
                "libmp3lame",
            ],
            "audio codec MP3",
        ),
    ];
    for (name, audio, args, found) in cases {
        let source = scratch.path(name);
        make(&source, 1, audio, args);
        match import(&scratch, &source) {
            Err(e @ ImportError::UnsupportedCodec { .. }) => {
                let message = e.to_string();
                assert!(
                    message.starts_with(&format!("{found} is not supported")),
                    "{name}: {message}"
                );
                assert!(message.contains("H.264 or HEVC"), "{message}");
            }
            other => panic!("{name}: {other:?}"),
        }
        assert!(
            scratch.videos().is_empty(),
            "{name}: {:?}",
            scratch.videos()
        );
    }
}

/// The byte offset of the top-level box `kind`.
fn box_offset(file: &[u8], kind: &[u8; 4]) -> usize {
    let mut pos = 0;
    while pos + 8 <= file.len() {
        let size = u32::from_be_bytes(file[pos..pos + 4].try_into().unwrap()) as usize;
        if &file[pos + 4..pos + 8] == kind {
            return pos;
        }
        pos += size;
    }
    panic!("no {kind:?} box");
}

/// What a bad upload's error must be.
type Expected = fn(&ImportError) -> bool;

#[test]
fn cut_and_garbage_files_get_a_clear_error_and_leave_nothing() {
    if !require_ffmpeg() {
        return;
    }
    let scratch = Scratch::new("bad");
    let mp4 = scratch.path("in.mp4");
    make(
        &mp4,
        3,
        true,
        &["-c:v", "libx264", "-preset", "veryfast", "-c:a", "aac"],
    );
    let fast = scratch.path("fast.mp4");
    make(
        &fast,
        3,
        true,
        &[
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-c:a",
            "aac",
            "-movflags",
            "+faststart",
        ],
    );
    let flv = scratch.path("in.flv");
    make(
        &flv,
        3,
        true,
        &["-c:v", "libx264", "-preset", "veryfast", "-c:a", "aac"],
    );
    let audio_only = scratch.path("audio.mp4");
    let status = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-y",
            "-f",
            "lavfi",
        ])
        .args(["-i", "sine=duration=1", "-c:a", "aac"])
        .arg(&audio_only)
        .status()
        .unwrap();
    assert!(status.success());

    let whole = std::fs::read(&mp4).unwrap();
    let moov = box_offset(&whole, b"moov");
    let fast_whole = std::fs::read(&fast).unwrap();
    let flv_whole = std::fs::read(&flv).unwrap();
    let cases: Vec<(&str, Vec<u8>, Expected)> = vec![
        (
            "mp4 cut in mdat",
            whole[..moov / 2].to_vec(),
            |e| matches!(e, ImportError::Truncated { detail } if detail.contains("\"mdat\"")),
        ),
        (
            "mp4 cut before moov",
            whole[..moov].to_vec(),
            |e| matches!(e, ImportError::Truncated { detail } if detail.contains("no moov")),
        ),
        (
            "mp4 cut in moov",
            whole[..moov + 40].to_vec(),
            |e| matches!(e, ImportError::Truncated { detail } if detail.contains("\"moov\"")),
        ),
        (
            "faststart mp4 cut in mdat",
            fast_whole[..fast_whole.len() / 2].to_vec(),
            |e| matches!(e, ImportError::Truncated { detail } if detail.contains("\"mdat\"")),
        ),
        (
            "flv cut in a tag",
            flv_whole[..flv_whole.len() / 2].to_vec(),
            |e| matches!(e, ImportError::Truncated { .. }),
        ),
        (
            "garbage",
            b"this is not a video at all, just text".to_vec(),
            |e| matches!(e, ImportError::UnknownContainer),
        ),
        ("empty", Vec::new(), |e| {
            matches!(e, ImportError::UnknownContainer)
        }),
        ("audio only", std::fs::read(&audio_only).unwrap(), |e| {
            matches!(e, ImportError::NoVideoTrack)
        }),
    ];
    for (name, bytes, expected) in cases {
        let source = scratch.path("upload.bin");
        std::fs::write(&source, &bytes).unwrap();
        match import(&scratch, &source) {
            Err(e) if expected(&e) => println!("{name}: {e}"),
            other => panic!("{name}: {other:?}"),
        }
        assert!(
            scratch.videos().is_empty(),
            "{name}: {:?}",
            scratch.videos()
        );
    }
    // The FLV demuxer's errors are Corrupt, not a panic: a cut-off header, then garbage.
    let mut broken = flv_whole[..13].to_vec();
    broken.extend_from_slice(&[0xEE; 64]);
    std::fs::write(scratch.path("broken.flv"), &broken).unwrap();
    let err = import(&scratch, &scratch.path("broken.flv")).unwrap_err();
    println!("broken flv: {err}");
    assert!(scratch.videos().is_empty());
}

/// A replay recorded before `media.flv` existed (HLS files only) gets one from ffmpeg at the
/// server's start, in the background.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_replays_get_a_media_flv_at_start_up() {
    if !require_ffmpeg() {
        return;
    }
    let scratch = Scratch::new("backfill");
    let root = scratch.path("recordings");
    let old = root.join("demo/20250101T000000000Z");
    let unfinished = root.join("demo/20250102T000000000Z");
    for dir in [&old, &unfinished] {
        std::fs::create_dir_all(dir).unwrap();
        let segments = dir.join("%d.ts").display().to_string();
        make(
            &dir.join("index.m3u8"),
            6,
            true,
            &[
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-g",
                "25",
                "-c:a",
                "aac",
                "-f",
                "hls",
                "-hls_time",
                "2",
                "-hls_playlist_type",
                "vod",
                "-hls_segment_filename",
                &segments,
            ],
        );
    }
    // A live still recording has no ENDLIST: it is left alone.
    let text = std::fs::read_to_string(unfinished.join("index.m3u8")).unwrap();
    std::fs::write(
        unfinished.join("index.m3u8"),
        text.replace("#EXT-X-ENDLIST\n", "").replace("VOD", "EVENT"),
    )
    .unwrap();

    let server_root = root.clone();
    let server = onair_e2e::TestServer::start(move |c: &mut onair::config::Config| {
        c.hls.recordings_dir = Some(server_root.clone());
    })
    .await;
    let made = onair_e2e::wait_until(std::time::Duration::from_secs(60), || {
        old.join(MEDIA_FLV).exists()
    })
    .await;
    assert!(made, "the old replay never got a media.flv");
    let times = check_media_flv(&old, 6000);
    assert!(times.len() >= 5, "{times:?}");
    assert!(!unfinished.join(MEDIA_FLV).exists());
    let leftovers: Vec<_> = std::fs::read_dir(&old)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    server.shutdown().await;
}
