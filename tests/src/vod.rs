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

/// The `pts_time` of the first video packet ffprobe reads after seeking `url` to `seconds`,
/// asserting it is a keyframe: how a player seeks a progressive FLV (by byte ranges, with
/// the file's `keyframes` index).
///
/// # Panics
///
/// If ffprobe fails, finds no video packet, or the first is not a keyframe.
pub async fn first_video_pts_after_seek(url: &str, seconds: u32) -> f64 {
    let interval = format!("{seconds}%+#5");
    let output = tokio::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v"])
        .args(["-show_entries", "packet=pts_time,flags", "-of", "json"])
        .args(["-read_intervals", &interval, url])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(60), output)
        .await
        .unwrap_or_else(|_| panic!("ffprobe {url} still running after 60 s"))
        .expect("ffprobe runs");
    assert!(
        output.status.success(),
        "ffprobe {url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("ffprobe prints JSON");
    let first = &json["packets"][0];
    assert!(
        first["flags"].as_str().is_some_and(|f| f.starts_with('K')),
        "the first packet after a seek is not a keyframe: {json}"
    );
    first["pts_time"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no video packet after seeking to {seconds} s: {json}"))
}

/// Plays video `id` over RTMP VOD from `start_ms` with our client and returns the first
/// picture's (timestamp, keyframe), as a player that asked for `start_ms` sees it. A
/// private video needs its owner's `token`.
///
/// # Panics
///
/// If the play is refused or no picture arrives within 20 s.
pub async fn rtmp_first_picture(
    rtmp: std::net::SocketAddr,
    id: i64,
    token: Option<&str>,
    start_ms: u32,
) -> (u32, bool) {
    use onair_client::{ClientOptions, RtmpClient, RtmpUrl};
    use onair_rtmp::session::ClientEvent;
    let name = match token {
        Some(t) => format!("{id}?token={t}"),
        None => id.to_string(),
    };
    let url = RtmpUrl::parse(&format!("rtmp://{rtmp}/vod/{name}")).expect("a valid URL");
    let mut client = RtmpClient::connect(&url, &ClientOptions::default())
        .await
        .expect("connecting");
    client
        .play_range(f64::from(start_ms), -1.0)
        .await
        .expect("the VOD play is accepted");
    let picture = async {
        loop {
            match client.next_event().await.expect("the connection works") {
                // A coded picture, not the sequence header (AVC packet type 1).
                Some(ClientEvent::Media {
                    kind: onair_media::MediaKind::Video,
                    timestamp,
                    payload,
                }) if payload.get(1) == Some(&1) => {
                    return (timestamp, payload[0] >> 4 == 1);
                }
                Some(_) => {}
                None => panic!("the server closed video {id} before a picture"),
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), picture)
        .await
        .unwrap_or_else(|_| panic!("no picture of video {id} within 20 s"))
}
