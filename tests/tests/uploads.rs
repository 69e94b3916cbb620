//! Uploading videos with tus over real sockets to a real server, files made by ffmpeg:
//! an H.264/AAC MP4 in three PATCHes becomes a video that plays over HLS (ffprobe), seeks over
//! progressive FLV (ffprobe) and over RTMP VOD (our client); a PATCH whose
//! connection is dropped keeps what arrived and the upload resumes to the same bytes; a
//! restart between PATCHes resumes; a VP9 file and a truncated MP4 are refused with the
//! reason and leave no video and no file behind.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use onair::config::Config;
use onair_e2e::http::{request_with_body_on, split_url};
use onair_e2e::vod::{first_video_pts_after_seek, rtmp_first_picture};
use onair_e2e::{TestServer, random_name, require_ffmpeg};
use onair_store::{NewChannel, Role};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Longest any one wait may take; generous for a loaded CI machine.
const STEP: Duration = Duration::from_secs(60);

/// An account with a channel and a token for it, on `server`.
async fn streamer(server: &TestServer) -> (String, String) {
    let platform = server.platform();
    let user = platform
        .create_user(
            &random_name("up"),
            "correct horse battery staple",
            Role::Streamer,
        )
        .await
        .expect("creating the uploader");
    let slug = random_name("up");
    platform
        .store()
        .create_channel(NewChannel {
            slug: slug.clone(),
            title: "uploads".into(),
            owner_id: user.id,
            category: String::new(),
            tags: vec![],
        })
        .await
        .expect("creating the channel");
    let (token, _) = platform
        .issue_access_token(&user)
        .await
        .expect("an access token");
    (slug, token.expose().to_owned())
}

/// One request on its own connection: status, headers, body text.
async fn call(
    server: &TestServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, String) {
    let url = server.http_url(path);
    let (authority, path) = split_url(&url).unwrap();
    let stream = TcpStream::connect(authority).await.unwrap();
    let response = request_with_body_on(stream, method, authority, path, headers, body, STEP)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e:#}"));
    let status = response.status;
    let headers = response.headers.clone();
    let text = if method == "HEAD" {
        String::new()
    } else {
        response.text(STEP).await.unwrap()
    };
    (status, headers, text)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Creates an upload of `length` bytes into `slug`; its path.
async fn create(server: &TestServer, token: &str, slug: &str, length: usize) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let meta = format!(
        "channel {},title {},filename {}",
        b64(slug),
        b64("An uploaded clip"),
        b64("clip.mp4")
    );
    let auth = format!("Bearer {token}");
    let length = length.to_string();
    let (status, headers, text) = call(
        server,
        "POST",
        "/api/v1/uploads",
        &[
            ("Authorization", &auth),
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Length", &length),
            ("Upload-Metadata", &meta),
        ],
        b"",
    )
    .await;
    assert_eq!(status, 201, "{text}");
    assert_eq!(header(&headers, "tus-resumable"), Some("1.0.0"));
    header(&headers, "location").unwrap().to_owned()
}

async fn patch(
    server: &TestServer,
    token: &str,
    location: &str,
    offset: usize,
    bytes: &[u8],
) -> u64 {
    let auth = format!("Bearer {token}");
    let offset = offset.to_string();
    let (status, headers, text) = call(
        server,
        "PATCH",
        location,
        &[
            ("Authorization", &auth),
            ("Tus-Resumable", "1.0.0"),
            ("Content-Type", "application/offset+octet-stream"),
            ("Upload-Offset", &offset),
        ],
        bytes,
    )
    .await;
    assert_eq!(status, 204, "{text}");
    header(&headers, "upload-offset").unwrap().parse().unwrap()
}

/// The upload's offset by HEAD, once no PATCH holds it (a cut one may still be ending).
async fn offset(server: &TestServer, token: &str, location: &str) -> u64 {
    let auth = format!("Bearer {token}");
    let (status, headers, _) = call(
        server,
        "HEAD",
        location,
        &[("Authorization", &auth), ("Tus-Resumable", "1.0.0")],
        b"",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "cache-control"), Some("no-store"));
    header(&headers, "upload-offset").unwrap().parse().unwrap()
}

/// Polls the upload's JSON until it is `ready` or `failed`.
async fn outcome(server: &TestServer, token: &str, location: &str) -> Value {
    let auth = format!("Bearer {token}");
    let started = std::time::Instant::now();
    let mut last = Value::Null;
    let mut done = false;
    while !done && started.elapsed() < STEP {
        let (status, _, text) =
            call(server, "GET", location, &[("Authorization", &auth)], b"").await;
        assert_eq!(status, 200, "{text}");
        last = serde_json::from_str(&text).unwrap();
        done = last["state"] == "ready" || last["state"] == "failed";
        if !done {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert!(done, "the upload never finished: {last}");
    last
}

/// Makes a test clip with ffmpeg: `seconds` of a test pattern and a tone.
fn make_clip(dir: &Path, name: &str, video: &[&str], audio: &[&str], seconds: u32) -> Vec<u8> {
    let path = dir.join(name);
    let duration = seconds.to_string();
    let status = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args([
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc=size=320x240:rate=25:duration={duration}"),
        ])
        .args([
            "-f",
            "lavfi",
            "-i",
            &format!("sine=frequency=440:duration={duration}"),
        ])
        .args(video)
        .args(audio)
        .arg(&path)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success(), "ffmpeg could not make {name}");
    std::fs::read(&path).unwrap()
}

fn h264_mp4(dir: &Path) -> Vec<u8> {
    make_clip(
        dir,
        "clip.mp4",
        &[
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-pix_fmt",
            "yuv420p",
        ],
        &["-c:a", "aac", "-b:a", "64k"],
        4,
    )
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// ffprobe's format duration and stream codecs of `playlist`.
fn probe(playlist: &Path) -> (f64, Vec<String>) {
    let output = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration:stream=codec_name",
            "-of",
            "json",
        ])
        .arg(playlist)
        .output()
        .expect("ffprobe runs");
    assert!(
        output.status.success(),
        "ffprobe {}: {}",
        playlist.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    let duration = json["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0.0);
    let codecs = json["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["codec_name"].as_str().unwrap_or("").to_owned())
        .collect();
    (duration, codecs)
}

/// Checks a ready upload's video: in the API, and its HLS playable by ffprobe.
async fn check_video(server: &TestServer, token: &str, done: &Value) {
    assert_eq!(done["state"], "ready", "{done}");
    let id = done["video_id"]
        .as_i64()
        .expect("a ready upload names its video");
    let auth = format!("Bearer {token}");
    let (status, _, text) = call(
        server,
        "GET",
        &format!("/api/v1/videos/{id}"),
        &[("Authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let video: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(video["title"], "An uploaded clip");
    let row = server
        .platform()
        .store()
        .video_by_id(id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.recording_id, None);
    assert_eq!(
        row.thumbnail.as_deref(),
        Some(format!("{}/thumb.jpg", row.path).as_str()),
        "ffmpeg is on PATH, so the video has a thumbnail"
    );
    let (duration, codecs) = probe(&server.recordings_dir.join(&row.path).join("index.m3u8"));
    assert!((duration - 4.0).abs() < 0.5, "duration {duration}");
    assert!(codecs.contains(&"h264".to_owned()), "{codecs:?}");
    assert!(codecs.contains(&"aac".to_owned()), "{codecs:?}");
    // Every playback path serves it: HLS by video id, progressive FLV seeking by Range,
    // RTMP VOD from a start (the clip has a keyframe every second).
    let (duration, codecs) = probe(Path::new(
        &server.http_url(&format!("/videos/{id}/index.m3u8")),
    ));
    assert!(
        (duration - 4.0).abs() < 0.5,
        "HLS by id: duration {duration}"
    );
    assert!(codecs.contains(&"h264".to_owned()), "{codecs:?}");
    let flv = server.http_url(&format!("/videos/{id}.flv"));
    let pts = first_video_pts_after_seek(&flv, 2).await;
    assert!(
        (1.0..=2.1).contains(&pts),
        "FLV seek to 2 s: first video packet at {pts} s"
    );
    let (ts, key) = rtmp_first_picture(server.rtmp_addr, id, None, 2000).await;
    assert!(
        key && (1000..=2000).contains(&ts),
        "RTMP VOD from 2 s: first picture at {ts} ms, keyframe {key}"
    );
    println!(
        "uploaded MP4: HLS {duration:.2} s; FLV seek to 2 s at {pts} s; RTMP VOD from 2 s at {ts} ms"
    );
    // The bytes are gone once imported.
    let parts = files_under(&server.recordings_dir.join(".uploads"));
    assert!(parts.is_empty(), "{parts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mp4_in_three_patches_becomes_a_video_whose_hls_plays() {
    if !require_ffmpeg() {
        return;
    }
    let server = TestServer::start(|_: &mut Config| {}).await;
    let (slug, token) = streamer(&server).await;
    let scratch = std::env::temp_dir()
        .join(random_name("onair-clip"))
        .tap_mkdir();
    let clip = h264_mp4(&scratch);
    // Discovery through the whole server (its CORS layer answers every OPTIONS).
    let (_, headers, _) = call(&server, "OPTIONS", "/api/v1/uploads", &[], b"").await;
    assert_eq!(header(&headers, "tus-version"), Some("1.0.0"));
    assert_eq!(
        header(&headers, "tus-extension"),
        Some("creation,expiration,termination")
    );
    assert_eq!(header(&headers, "tus-max-size"), Some("4294967296"));
    let location = create(&server, &token, &slug, clip.len()).await;
    assert_eq!(offset(&server, &token, &location).await, 0);
    let third = clip.len() / 3;
    let mut at = 0;
    for piece in [&clip[..third], &clip[third..2 * third], &clip[2 * third..]] {
        at = patch(&server, &token, &location, at, piece).await as usize;
    }
    assert_eq!(at, clip.len());
    let done = outcome(&server, &token, &location).await;
    check_video(&server, &token, &done).await;
    let _ = std::fs::remove_dir_all(scratch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_cut_mid_body_keeps_what_arrived_and_resumes_to_the_same_bytes() {
    if !require_ffmpeg() {
        return;
    }
    let server = TestServer::start(|_: &mut Config| {}).await;
    let (slug, token) = streamer(&server).await;
    let scratch = std::env::temp_dir()
        .join(random_name("onair-clip"))
        .tap_mkdir();
    let clip = h264_mp4(&scratch);
    let location = create(&server, &token, &slug, clip.len()).await;
    let id: i64 = location.rsplit('/').next().unwrap().parse().unwrap();

    // The whole file announced, half of it sent, then the connection dropped.
    let half = clip.len() / 2;
    let url = server.http_url(&location);
    let (authority, path) = split_url(&url).unwrap();
    let mut stream = TcpStream::connect(authority).await.unwrap();
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {token}\r\n\
         Tus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n\
         Upload-Offset: 0\r\nContent-Length: {}\r\n\r\n",
        clip.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&clip[..half]).await.unwrap();
    stream.flush().await.unwrap();
    // A FIN after the bytes: the server reads them all, then the body's early end.
    drop(stream);
    let part = server
        .recordings_dir
        .join(".uploads")
        .join(format!("{id}.part"));

    // The cut PATCH may still be ending (its offset not saved yet) when HEAD first asks.
    let started = std::time::Instant::now();
    let mut kept = offset(&server, &token, &location).await as usize;
    while kept != half && started.elapsed() < STEP {
        tokio::time::sleep(Duration::from_millis(50)).await;
        kept = offset(&server, &token, &location).await as usize;
    }
    assert_eq!(
        kept, half,
        "HEAD's offset after the cut; {half} bytes were sent"
    );
    assert_eq!(
        std::fs::read(&part).unwrap(),
        &clip[..kept],
        "the kept bytes are the sent ones"
    );
    // A PATCH from a stale offset is refused; from HEAD's offset it completes.
    let auth = format!("Bearer {token}");
    let (status, _, _) = call(
        &server,
        "PATCH",
        &location,
        &[
            ("Authorization", &auth),
            ("Tus-Resumable", "1.0.0"),
            ("Content-Type", "application/offset+octet-stream"),
            ("Upload-Offset", "0"),
        ],
        &clip,
    )
    .await;
    assert_eq!(status, 409);
    let rest = &clip[kept..];
    let (first, second) = rest.split_at(rest.len() / 2);
    let at = patch(&server, &token, &location, kept, first).await as usize;
    assert_eq!(
        std::fs::read(&part).unwrap(),
        &clip[..at],
        "the resumed bytes are the file's"
    );
    assert_eq!(
        patch(&server, &token, &location, at, second).await as usize,
        clip.len()
    );
    let done = outcome(&server, &token, &location).await;
    check_video(&server, &token, &done).await;
    let _ = std::fs::remove_dir_all(scratch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_between_patches_resumes_the_upload() {
    if !require_ffmpeg() {
        return;
    }
    let dir = std::env::temp_dir()
        .join(random_name("onair-e2e-upload-restart"))
        .tap_mkdir();
    let recordings = dir.join("recordings");
    let database = format!("sqlite://{}?mode=rwc", dir.join("onair.db").display());
    let configure = |c: &mut Config| {
        c.hls.recordings_dir = Some(recordings.clone());
        c.storage.database_url = Some(onair::secret::SecretText::new(database.clone()));
    };
    let clip = h264_mp4(&dir);
    let server = TestServer::start(configure).await;
    let (slug, token) = streamer(&server).await;
    let location = create(&server, &token, &slug, clip.len()).await;
    let half = clip.len() / 2;
    assert_eq!(
        patch(&server, &token, &location, 0, &clip[..half]).await as usize,
        half
    );
    assert!(server.shutdown().await, "the first server stops cleanly");

    let server = TestServer::start(configure).await;
    let at = offset(&server, &token, &location).await as usize;
    assert_eq!(at, half, "the offset survives the restart");
    assert_eq!(
        patch(&server, &token, &location, at, &clip[at..]).await as usize,
        clip.len()
    );
    let done = outcome(&server, &token, &location).await;
    check_video(&server, &token, &done).await;
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vp9_file_and_a_truncated_mp4_are_refused_and_leave_nothing() {
    if !require_ffmpeg() {
        return;
    }
    let server = TestServer::start(|_: &mut Config| {}).await;
    let (slug, token) = streamer(&server).await;
    let scratch = std::env::temp_dir()
        .join(random_name("onair-clip"))
        .tap_mkdir();
    let vp9 = make_clip(
        &scratch,
        "vp9.mp4",
        &[
            "-c:v",
            "libvpx-vp9",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-b:v",
            "200k",
        ],
        &["-c:a", "libopus"],
        2,
    );
    let mp4 = h264_mp4(&scratch);
    // Cut in the middle of the media: `moov` (written after mdat without faststart) is gone.
    let truncated = mp4[..mp4.len() / 2].to_vec();
    for (file, names) in [(vp9, "VP9"), (truncated, "truncated")] {
        let location = create(&server, &token, &slug, file.len()).await;
        assert_eq!(
            patch(&server, &token, &location, 0, &file).await as usize,
            file.len()
        );
        let done = outcome(&server, &token, &location).await;
        assert_eq!(done["state"], "failed", "{done}");
        assert_eq!(done["video_id"], Value::Null);
        let detail = done["problem"]["detail"].as_str().unwrap();
        assert!(
            detail.to_lowercase().contains(&names.to_lowercase()),
            "{names}: {detail}"
        );
    }
    let videos = server
        .platform()
        .store()
        .search_videos(
            &onair_store::VideoSearch {
                admin: true,
                ..Default::default()
            },
            onair_store::Page::first(10),
        )
        .await
        .unwrap();
    assert_eq!(videos.1, 0, "no video row");
    let left = files_under(&server.recordings_dir);
    assert!(left.is_empty(), "files left: {left:?}");
    let dirs: Vec<_> = std::fs::read_dir(&server.recordings_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != ".uploads")
        .collect();
    assert!(dirs.is_empty(), "directories left: {dirs:?}");
    let _ = std::fs::remove_dir_all(scratch);
}

trait TapMkdir {
    fn tap_mkdir(self) -> Self;
}

impl TapMkdir for PathBuf {
    fn tap_mkdir(self) -> Self {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}
