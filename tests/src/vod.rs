//! Catalogue videos with a `media.flv` for the RTMP VOD tests and the benchmark.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Encodes `seconds` of a test pattern (640x360, 25 fps, a keyframe every 2 s) with a sine
/// tone into `path` as FLV with ffmpeg's keyframe index in `onMetaData`: the file helper A's
/// recorder writes for every video. Blocking; fast (`ultrafast`) to spare a shared machine.
///
/// # Panics
///
/// If ffmpeg fails.
pub fn make_media_flv(path: &Path, seconds: u32) {
    let t = seconds.to_string();
    let output = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args(["-t", &t, "-c:v", "libx264", "-preset", "ultrafast"])
        .args(["-g", "50", "-keyint_min", "50", "-sc_threshold", "0"])
        .args(["-c:a", "aac", "-b:a", "96k"])
        .args(["-flvflags", "add_keyframe_index", "-f", "flv"])
        .arg(path)
        .output()
        .expect("ffmpeg runs");
    assert!(
        output.status.success(),
        "ffmpeg could not make {}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A 60 s `media.flv` made once per process and shared by its tests (copied into each
/// test's video directory).
pub fn shared_media_flv() -> PathBuf {
    static FILE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        let dir = std::env::temp_dir().join(crate::random_name("onair-vod-fixture"));
        std::fs::create_dir_all(&dir).expect("creating the fixture directory");
        let path = dir.join("media.flv");
        make_media_flv(&path, 60);
        path
    })
    .clone()
}
