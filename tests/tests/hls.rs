//! HLS end to end with real ffmpeg: the live sliding window while a publish is on, the replay
//! once it ends (EVENT → VOD), a republish inside the grace (one recording with a
//! discontinuity), audio-only streams, strict names (no path traversal), and crash recovery
//! of the real `onair` binary after `kill -9`.
//!
//! The live-latency figures (glass to segment availability) are printed by
//! `live_hls_plays_and_the_replay_is_complete`; they are not asserted.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use onair::config::Config;
use onair::platform::Platform;
use onair_e2e::binary::{TempDir, onair_binary};
use onair_e2e::http::{Response, request};
use onair_e2e::{
    Ffmpeg, TestServer, Tracks, ffprobe, random_name, require_ffmpeg, wait_until_async,
};
use onair_hls::{Playlist, PlaylistKind};
use onair_store::{NewChannel, Page, RecordingState, Role};

/// Longest any one wait may take; generous for a loaded CI machine.
const STEP: Duration = Duration::from_secs(40);

/// A channel row, its owner and a stored stream key, so the live is recorded as a replay
/// (`[dev]` keys get live HLS only).
async fn stored_channel(platform: &Platform) -> (String, String, i64) {
    let slug = random_name("rec");
    let owner = platform
        .create_user(
            &random_name("owner"),
            "correct horse battery staple",
            Role::Streamer,
        )
        .await
        .expect("creating the owner");
    let channel = platform
        .store()
        .create_channel(NewChannel {
            slug: slug.clone(),
            title: "Replay test".into(),
            owner_id: owner.id,
            category: String::new(),
            tags: vec![],
        })
        .await
        .expect("creating the channel");
    let key = platform
        .issue_stream_key(channel.id, "hls test", None)
        .await
        .expect("issuing a key");
    (slug, key.token.expose().to_owned(), channel.id)
}

async fn try_get(url: &str, headers: &[(&str, &str)]) -> anyhow::Result<(Response, Vec<u8>)> {
    let mut response = request("GET", url, headers, STEP).await?;
    let mut body = BytesMut::new();
    tokio::time::timeout(STEP, async {
        while let Some(b) = response.body.next().await? {
            body.extend_from_slice(&b);
        }
        anyhow::Ok(())
    })
    .await??;
    Ok((response, body.to_vec()))
}

async fn get(url: &str, headers: &[(&str, &str)]) -> (Response, Vec<u8>) {
    try_get(url, headers)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e:#}"))
}

/// The playlist at `url` if the server answers 200 with one that parses.
async fn playlist(url: &str) -> Option<Playlist> {
    let (response, body) = try_get(url, &[]).await.ok()?;
    if response.status != 200 {
        return None;
    }
    Playlist::parse(&String::from_utf8_lossy(&body), 6).ok()
}

async fn wait_for_playlist(url: &str, ok: impl Fn(&Playlist) -> bool) -> Playlist {
    let deadline = Instant::now() + STEP;
    loop {
        if let Some(p) = playlist(url).await
            && ok(&p)
        {
            return p;
        }
        assert!(Instant::now() < deadline, "{url} never got there");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Remuxes a playlist to MP4 with `-c copy`, as a user downloading a replay would, and
/// returns ffmpeg's stderr; fails the test if ffmpeg fails or complains about timestamps.
async fn remux_cleanly(url: &str, out: &Path) -> String {
    let args: Vec<String> = [
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "warning",
        "-i",
        url,
        "-c",
        "copy",
        "-y",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([out.display().to_string()])
    .collect();
    let mut ffmpeg = Ffmpeg::spawn("ffmpeg", &args);
    let status = ffmpeg.wait(STEP).await.expect("ffmpeg remux finished");
    let stderr = ffmpeg.stderr();
    assert!(status.success(), "ffmpeg -c copy failed:\n{stderr}");
    for complaint in [
        "Non-monotonous",
        "non monotonically",
        "DTS",
        "discontinuity",
    ] {
        assert!(
            !stderr.contains(complaint),
            "ffmpeg complained about timestamps ({complaint}):\n{stderr}"
        );
    }
    stderr
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_hls_plays_and_the_replay_is_complete() {
    if !require_ffmpeg() {
        return;
    }
    let server = TestServer::start(|c: &mut Config| {
        c.hub.republish_grace = Duration::from_secs(2);
    })
    .await;
    let (channel, key, channel_id) = stored_channel(server.platform()).await;
    let mut ffmpeg = Ffmpeg::publish_test_pattern(&server.publish_url(&key), 20);
    let live_url = server.http_url(&format!("/live/{channel}/index.m3u8"));

    // Latency: note when each segment first shows up in the live playlist, against the wall
    // clock of its first frame's arrival (EXT-X-PROGRAM-DATE-TIME).
    let first = wait_for_playlist(&live_url, |p| !p.segments().is_empty()).await;
    let mut seen = std::collections::BTreeMap::new();
    let mut last_check = Instant::now();
    let mut probed = false;
    while ffmpeg.is_running() && last_check.elapsed() < STEP {
        let now = unix_ms();
        if let Some(p) = playlist(&live_url).await {
            for s in p.segments() {
                seen.entry(s.sequence).or_insert((now, s.clone()));
            }
            if !probed && p.segments().len() >= 3 {
                probed = true;
                check_live(&server, &channel, &p).await;
            }
        }
        last_check = Instant::now();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(probed, "the live playlist never listed 3 segments");
    assert_eq!(first.kind(), PlaylistKind::Live { window: 6 });
    // Skip the first segment: it was there before polling began.
    let mut after_first_frame: Vec<u64> = Vec::new();
    let mut after_last_frame: Vec<u64> = Vec::new();
    for (appeared, s) in seen.values().skip(1) {
        let start = s.program_date_time_ms.expect("segments are dated");
        let end = start + s.duration.as_millis() as u64;
        after_first_frame.push(appeared.saturating_sub(start));
        after_last_frame.push(appeared.saturating_sub(end));
    }
    after_first_frame.sort_unstable();
    after_last_frame.sort_unstable();
    println!(
        "live HLS latency, 2 s segments, {} segments: glass to availability of a segment's first frame p50 {} ms / max {} ms; after its end p50 {} ms / max {} ms",
        after_first_frame.len(),
        percentile(&after_first_frame, 0.5),
        after_first_frame.last().copied().unwrap_or(0),
        percentile(&after_last_frame, 0.5),
        after_last_frame.last().copied().unwrap_or(0),
    );

    let status = ffmpeg.wait(STEP).await.expect("ffmpeg finished");
    assert!(status.success(), "ffmpeg failed:\n{}", ffmpeg.stderr());

    // The replay: one row, finished after the grace, VOD with ENDLIST, ~20 s.
    let store = server.platform().store().clone();
    let finished = wait_until_async(STEP, || {
        let store = store.clone();
        async move {
            store
                .list_recordings(channel_id, Page::default())
                .await
                .is_ok_and(|(rows, _)| rows.iter().any(|r| r.state == RecordingState::Finished))
        }
    })
    .await;
    assert!(finished, "the recording was never finished");
    let (rows, total) = store
        .list_recordings(channel_id, Page::default())
        .await
        .unwrap();
    assert_eq!(total, 1, "one live, one recording: {rows:?}");
    let rec = &rows[0];
    assert_eq!(rec.title, "Replay test");
    let (sessions, _) = store
        .list_live_sessions(channel_id, Page::default())
        .await
        .unwrap();
    assert_eq!(
        rec.live_session_id,
        sessions.first().map(|s| s.id),
        "the replay links to its live session (replay danmaku are found through it)"
    );
    let replay_url = server.http_url(&format!("/replays/{}/index.m3u8", rec.id));
    let (response, body) = get(&replay_url, &[]).await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    assert_eq!(
        response.header("cache-control"),
        Some("public, max-age=3600")
    );
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"), "{text}");
    assert!(text.ends_with("#EXT-X-ENDLIST\n"), "{text}");
    let replay = Playlist::parse(&text, 6).unwrap();
    let total_ms = replay.duration().as_millis() as i64;
    assert!(
        (total_ms - 20_000).abs() <= 1000,
        "replay lasts {total_ms} ms for 20 s published:\n{text}"
    );
    assert_eq!(rec.duration_ms as i64, total_ms);
    assert!(rec.size_bytes > 100_000, "{rec:?}");
    assert!(!text.contains("#EXT-X-DISCONTINUITY\n"), "{text}");

    let dir = TempDir::new("hls-remux");
    remux_cleanly(&replay_url, &dir.path().join("replay.mp4")).await;
    let probe = ffprobe(
        &dir.path().join("replay.mp4").display().to_string(),
        30,
        STEP,
    )
    .await;
    assert!(probe.success, "{}", probe.stderr);
    assert!(probe.video_frames >= 19 * 25, "{probe:?}");
    assert!(probe.audio_frames > 19 * 43, "{probe:?}");
    check_media_flv(&server.recordings_dir.join(&rec.path), total_ms);

    // The live playlist shows the end for a while, then the channel has no live HLS.
    let ended = wait_for_playlist(&live_url, |p| p.is_ended()).await;
    assert!(!ended.segments().is_empty());
    server.shutdown().await;
}

/// While live: ffprobe plays the live playlist with both tracks decoding; every segment
/// lasts at most the target; headers, CORS and ranges are right.
async fn check_live(server: &TestServer, channel: &str, live: &Playlist) {
    let live_url = server.http_url(&format!("/live/{channel}/index.m3u8"));
    assert_eq!(live.target_duration(), 2);
    for s in live.segments() {
        assert!(
            s.duration <= Duration::from_millis(2100),
            "segment {} lasts {:?}",
            s.sequence,
            s.duration
        );
    }
    let probe = ffprobe(&live_url, 3, STEP).await;
    assert!(
        probe.success,
        "ffprobe of the live playlist: {}",
        probe.stderr
    );
    assert_eq!(probe.video_codec.as_deref(), Some("h264"), "{probe:?}");
    assert_eq!(probe.audio_codec.as_deref(), Some("aac"), "{probe:?}");
    assert!(
        probe.video_frames > 25 && probe.audio_frames > 40,
        "{probe:?}"
    );

    let (response, _) = get(&live_url, &[("Origin", "https://player.example")]).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("cache-control"), Some("no-cache"));
    assert_eq!(response.header("access-control-allow-origin"), Some("*"));

    let segment = &live.segments()[0].uri;
    let segment_url = server.http_url(&format!("/live/{channel}/{segment}"));
    let (response, whole) = get(&segment_url, &[]).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("video/mp2t"));
    assert_eq!(
        response.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(whole.len() % 188, 0);
    assert_eq!(whole[0], 0x47, "a segment starts with a TS sync byte");
    let (response, part) = get(&segment_url, &[("Range", "bytes=188-375")]).await;
    assert_eq!(response.status, 206);
    assert_eq!(
        response.header("content-range"),
        Some(format!("bytes 188-375/{}", whole.len()).as_str())
    );
    assert_eq!(part, whole[188..376]);
    let beyond = format!("bytes={}-", whole.len());
    let (response, _) = get(&segment_url, &[("Range", beyond.as_str())]).await;
    assert_eq!(response.status, 416);
    assert_eq!(
        response.header("content-range"),
        Some(format!("bytes */{}", whole.len()).as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_republish_inside_the_grace_continues_the_recording_after_a_discontinuity() {
    if !require_ffmpeg() {
        return;
    }
    let server = TestServer::start(|c: &mut Config| {
        c.hub.republish_grace = Duration::from_secs(5);
    })
    .await;
    let (channel, key, channel_id) = stored_channel(server.platform()).await;
    for _ in 0..2 {
        let mut ffmpeg = Ffmpeg::publish_test_pattern(&server.publish_url(&key), 6);
        let status = ffmpeg.wait(STEP).await.expect("ffmpeg finished");
        assert!(status.success(), "ffmpeg failed:\n{}", ffmpeg.stderr());
    }
    let store = server.platform().store().clone();
    let finished = wait_until_async(STEP, || {
        let store = store.clone();
        async move {
            store
                .list_recordings(channel_id, Page::default())
                .await
                .is_ok_and(|(rows, _)| {
                    rows.iter().all(|r| r.state == RecordingState::Finished) && !rows.is_empty()
                })
        }
    })
    .await;
    assert!(finished, "the recording was never finished");
    let (rows, total) = store
        .list_recordings(channel_id, Page::default())
        .await
        .unwrap();
    assert_eq!(
        total, 1,
        "two publishes inside the grace, one recording: {rows:?}"
    );
    let (sessions, _) = store
        .list_live_sessions(channel_id, Page::default())
        .await
        .unwrap();
    assert_eq!(sessions.len(), 2, "each publish is a live session");
    assert_eq!(
        rows[0].live_session_id,
        sessions.last().map(|s| s.id),
        "a recording continued after a republish keeps the first session"
    );
    let replay_url = server.http_url(&format!("/replays/{}/index.m3u8", rows[0].id));
    let (_, body) = get(&replay_url, &[]).await;
    let text = String::from_utf8(body).unwrap();
    assert_eq!(
        text.matches("#EXT-X-DISCONTINUITY\n").count(),
        1,
        "one discontinuity where the publisher came back:\n{text}"
    );
    let replay = Playlist::parse(&text, 6).unwrap();
    let total_ms = replay.duration().as_millis() as i64;
    assert!(
        (total_ms - 12_000).abs() <= 1500,
        "{total_ms} ms for two 6 s publishes:\n{text}"
    );
    let dir = TempDir::new("hls-republish");
    remux_cleanly(&replay_url, &dir.path().join("replay.mp4")).await;
    // Both publishes are in the one media.flv.
    check_media_flv(&server.recordings_dir.join(&rows[0].path), total_ms);
    // The live playlist followed the same recording: no restart of the media sequence.
    let live = playlist(&server.http_url(&format!("/live/{channel}/index.m3u8")))
        .await
        .expect("the ended live playlist is still served");
    assert!(live.is_ended());
    assert_eq!(
        live.segments().iter().filter(|s| s.discontinuity).count(),
        1,
        "the live window shows the same discontinuity"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audio_only_live_plays_over_hls() {
    if !require_ffmpeg() {
        return;
    }
    let server = TestServer::start(|_| {}).await;
    let _ffmpeg = Ffmpeg::publish(&server.publish_url(&server.key), 10, Tracks::AudioOnly);
    let live_url = server.http_url(&format!("/live/{}/index.m3u8", server.channel));
    let live = wait_for_playlist(&live_url, |p| p.segments().len() >= 2).await;
    for s in live.segments() {
        assert!(
            (Duration::from_millis(1900)..=Duration::from_millis(2100)).contains(&s.duration),
            "audio-only segments cut at the target: {:?}",
            s.duration
        );
    }
    let probe = ffprobe(&live_url, 2, STEP).await;
    assert!(probe.success, "{}", probe.stderr);
    assert_eq!(probe.audio_codec.as_deref(), Some("aac"), "{probe:?}");
    assert_eq!(probe.video_codec, None, "{probe:?}");
    assert!(probe.audio_frames > 40, "{probe:?}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_outside_the_recordings_are_refused() {
    let server = TestServer::start(|_| {}).await;
    // A file the server must never serve, next to the recordings.
    std::fs::create_dir_all(&server.recordings_dir).unwrap();
    std::fs::write(server.recordings_dir.join("secret.txt"), "no").unwrap();
    let ch = &server.channel;
    for path in [
        format!("/live/{ch}/index.m3u8"),
        format!("/live/{ch}/..%2F..%2Fsecret.txt"),
        format!("/live/{ch}/%2e%2e%2fsecret.txt"),
        format!("/live/{ch}/live.m3u8"),
        "/live/..%2F..%2Fetc/index.m3u8".to_owned(),
        "/live/a.b/index.m3u8".to_owned(),
        "/replays/1/index.m3u8".to_owned(),
        "/replays/0/index.m3u8".to_owned(),
        "/replays/-1/index.m3u8".to_owned(),
        "/replays/..%2F..%2Fsecret.txt/index.m3u8".to_owned(),
        "/replays/1/..%2F..%2Fsecret.txt".to_owned(),
        "/replays/1/0.ts.tmp".to_owned(),
        "/replays/abc/0.ts".to_owned(),
        "/live/../secret.txt".to_owned(),
        "/replays/../secret.txt".to_owned(),
    ] {
        let (response, body) = get(&server.http_url(&path), &[]).await;
        assert!(
            matches!(response.status, 400 | 404),
            "{path}: {} {}",
            response.status,
            String::from_utf8_lossy(&body)
        );
        assert_ne!(body, b"no", "{path} served a file outside the recordings");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_cut_by_kill_9_is_finalized_at_the_next_start() {
    if !require_ffmpeg() {
        return;
    }
    let data = TempDir::new("hls-crash");
    let (_, config_path) = write_crash_config(&data);
    let config = Config::load(Some(&config_path), std::iter::empty()).unwrap();
    // The channel and key, written to the server's own database file before it starts.
    let platform = Platform::open(&config.storage, &config.auth).await.unwrap();
    let (_, key, _) = stored_channel(&platform).await;
    platform.store().close().await;
    drop(platform);

    let binary = onair_binary().await;
    let (mut server, rtmp, base) = start_crash_server(&binary, &data, 1).await;
    let replay_url = format!("{base}/replays/1/index.m3u8");
    let _ffmpeg = Ffmpeg::publish_test_pattern(&format!("rtmp://127.0.0.1:{rtmp}/live/{key}"), 60);
    let before = wait_for_playlist(&replay_url, |p| p.segments().len() >= 3).await;
    assert_eq!(before.kind(), PlaylistKind::Event);
    assert!(!before.is_ended());

    server.start_kill().expect("kill -9");
    server.wait().await.expect("onair exited");
    drop(_ffmpeg);

    let (_server, _, base) = start_crash_server(&binary, &data, 2).await;
    let replay_url = format!("{base}/replays/1/index.m3u8");
    let after = wait_for_playlist(&replay_url, |p| p.is_ended()).await;
    assert_eq!(after.kind(), PlaylistKind::Vod);
    assert!(
        after.segments().len() >= before.segments().len(),
        "nothing written before the crash is lost: {} then {}",
        before.segments().len(),
        after.segments().len()
    );
    let (response, _) = get(&replay_url, &[]).await;
    assert_eq!(
        response.header("cache-control"),
        Some("public, max-age=3600"),
        "the row is finished"
    );
    remux_cleanly(&replay_url, &data.path().join("recovered.mp4")).await;
    // The body the live left is made into media.flv, as long as the recovered playlist.
    let channel_dirs = std::fs::read_dir(data.path().join("recordings")).unwrap();
    let dirs: Vec<_> = channel_dirs
        .flat_map(|c| std::fs::read_dir(c.unwrap().path()).unwrap())
        .map(|d| d.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    check_media_flv(&dirs[0], after.duration().as_millis() as i64);
    // The recovered replay enters the VOD catalogue, with a thumbnail.
    let videos_url = format!("{base}/api/v1/videos");
    let catalogued = wait_until_async(STEP, || {
        let url = videos_url.clone();
        async move {
            let Ok((_, body)) = try_get(&url, &[]).await else {
                return false;
            };
            serde_json::from_slice::<serde_json::Value>(&body).is_ok_and(|page| {
                page["items"][0]["replay_id"] == 1 && page["items"][0]["thumbnail"].is_string()
            })
        }
    })
    .await;
    assert!(
        catalogued,
        "the recovered replay never became a video with a thumbnail"
    );
}

/// A finished replay's `media.flv`: composed (no body left), as long as its playlist by
/// ffprobe, with a keyframe index through which a seek near the middle lands close.
fn check_media_flv(dir: &Path, total_ms: i64) {
    let flv = dir.join("media.flv");
    assert!(flv.is_file(), "no media.flv in {}", dir.display());
    assert!(!dir.join(".media.flv.body").exists());
    let probe = |args: &[&str]| {
        let out = std::process::Command::new("ffprobe")
            .args(["-v", "error", "-of", "csv=p=0"])
            .args(args)
            .arg(&flv)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let seconds: f64 = probe(&["-show_entries", "format=duration"])
        .trim()
        .parse()
        .unwrap();
    assert!(
        (seconds * 1000.0 - total_ms as f64).abs() <= 1000.0,
        "media.flv lasts {seconds} s, the playlist {total_ms} ms"
    );
    let file = std::fs::read(&flv).unwrap();
    let mut buf = BytesMut::from(&file[..]);
    let script = onair_flv::FlvDemuxer::default()
        .decode(&mut buf)
        .unwrap()
        .unwrap();
    let meta = onair_flv::parse_metadata(&script.body).unwrap();
    let keyframes = meta
        .properties
        .iter()
        .find(|(k, _)| k == "keyframes")
        .map(|(_, v)| v.clone())
        .expect("a keyframes index");
    let Some(onair_amf::Value::StrictArray(times)) = keyframes.get("times") else {
        panic!("keyframes.times: {keyframes:?}");
    };
    // The test pattern has a keyframe every second.
    assert!(
        times.len() as i64 >= total_ms / 1000 - 2,
        "{} keyframes",
        times.len()
    );
    let middle = total_ms as f64 / 2000.0;
    let first = probe(&[
        "-select_streams",
        "v",
        "-read_intervals",
        &format!("{middle}%+#1"),
        "-show_entries",
        "packet=dts_time",
    ]);
    let dts: f64 = first.lines().next().unwrap().trim().parse().unwrap();
    assert!(
        dts <= middle + 0.1 && dts >= middle - 1.5,
        "a seek to {middle} s starts at {dts} s"
    );
}

/// Writes the crash test's config with fresh ports; returns the RTMP port and the path.
fn write_crash_config(data: &TempDir) -> (u16, std::path::PathBuf) {
    let secret = "hls-crash-test-secret-0123456789abcdef";
    let (rtmp, http) = (free_port(), free_port());
    let config_path = data.path().join("onair.toml");
    std::fs::write(
        &config_path,
        format!(
            "[rtmp]\nlisten = \"127.0.0.1:{rtmp}\"\n[http]\nlisten = \"127.0.0.1:{http}\"\n\
             [storage]\ndata_dir = \"{}\"\n[auth]\nsecret = \"{secret}\"\nbootstrap = false\n",
            data.path().display()
        ),
    )
    .unwrap();
    (rtmp, config_path)
}

/// Starts the real binary on the crash test's data directory and waits for `/healthz`: the
/// child, its RTMP port and its HTTP base URL. A port picked free can be taken by another
/// socket before the server binds it; a server that exits before it is healthy is started
/// again on fresh ports (three tries), with what it said in the failure message.
async fn start_crash_server(
    binary: &std::path::Path,
    data: &TempDir,
    run: u32,
) -> (tokio::process::Child, u16, String) {
    let mut said = String::new();
    for attempt in 1..=3 {
        let (rtmp, config_path) = write_crash_config(data);
        let config = Config::load(Some(&config_path), std::iter::empty()).unwrap();
        let base = format!("http://{}", config.http.listen);
        let log_path = data.path().join(format!("onair-{run}-{attempt}.log"));
        let mut child = tokio::process::Command::new(binary)
            .arg("--config")
            .arg(&config_path)
            .env("ONAIR_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log_path).expect("a log file"))
            .kill_on_drop(true)
            .spawn()
            .expect("starting onair");
        let mut exited = None;
        let healthy = wait_until_async(STEP, || {
            exited = exited.or(child.try_wait().ok().flatten());
            let base = &base;
            let gone = exited.is_some();
            async move {
                gone || request(
                    "GET",
                    &format!("{base}/healthz"),
                    &[],
                    Duration::from_secs(1),
                )
                .await
                .is_ok_and(|r| r.status == 200)
            }
        })
        .await;
        said = std::fs::read_to_string(&log_path).unwrap_or_default();
        if healthy && exited.is_none() {
            return (child, rtmp, base);
        }
        eprintln!("onair start {run}, try {attempt}: exited {exited:?}; it said:\n{said}");
        if exited.is_none() {
            break;
        }
    }
    panic!("onair did not come up; it said:\n{said}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// CPU time this thread has used (Linux `/proc/thread-self/stat`: utime + stime, in clock
/// ticks of 10 ms); `None` elsewhere.
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Prints what recording one live channel costs: the segmenter, the TS muxing, the playlist
/// rendering and the atomic file writes of a minute of 720p30 H.264 at 2.5 Mbps with
/// 128 kbit/s AAC (OBS's defaults), on one thread. A figure, not an assertion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segmenter_cpu_per_live_channel() {
    if !require_ffmpeg() {
        return;
    }
    let dir = TempDir::new("hls-cpu");
    let flv = dir.path().join("in.flv");
    let args: Vec<String> = [
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=1280x720:rate=30",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        "10",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-b:v",
        "2500k",
        "-maxrate",
        "2500k",
        "-bufsize",
        "5000k",
        "-g",
        "60",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-b:a",
        "128k",
        "-f",
        "flv",
        "-y",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([flv.display().to_string()])
    .collect();
    let mut ffmpeg = Ffmpeg::spawn("ffmpeg", &args);
    let status = ffmpeg
        .wait(Duration::from_secs(120))
        .await
        .expect("ffmpeg finished");
    assert!(status.success(), "{}", ffmpeg.stderr());

    let bytes = std::fs::read(&flv).unwrap();
    let mut demuxer = onair_flv::FlvDemuxer::default();
    let mut buf = BytesMut::from(&bytes[..]);
    let mut tags = Vec::new();
    while let Some(tag) = demuxer.decode(&mut buf).expect("valid FLV") {
        tags.push(tag);
    }
    let out = dir.path().join("segments");
    std::fs::create_dir_all(&out).unwrap();
    let (cpu, wall, media, written, segments) = tokio::task::spawn_blocking(move || {
        use onair::hls::files::{segment_pattern, write_atomic};
        use onair_hls::{Output, SegmentEntry, Segmenter};
        let mut segmenter = Segmenter::default();
        let mut live = Playlist::new(PlaylistKind::Live { window: 6 });
        let mut replay = Playlist::new(PlaylistKind::Event);
        let names = segment_pattern();
        let mut pending = Vec::new();
        let (mut written, mut segments) = (0u64, 0usize);
        let (cpu0, wall0) = (thread_cpu(), Instant::now());
        // Six passes over the 10 s file, each 10 s later: one minute of media.
        for pass in 0..6u32 {
            for tag in &tags {
                let frame = tag.clone().into_frame();
                let frame = frame.at(onair_media::Timestamp::from_millis(
                    frame.timestamp.as_millis() + pass * 10_000,
                ));
                let _ = segmenter.handle_frame(1_795_296_255_000, &frame);
                while let Some(output) = segmenter.poll_output() {
                    match output {
                        Output::Data(b) => pending.push(b),
                        Output::SegmentFinished(info) => {
                            let name = names.uri(info.sequence);
                            written +=
                                write_atomic(&out, &name, &std::mem::take(&mut pending)).unwrap();
                            let entry = SegmentEntry::from_segment(&info, &names);
                            live.push(entry.clone()).unwrap();
                            replay.push(entry).unwrap();
                            let texts = [live.to_string(), replay.to_string()];
                            write_atomic(&out, "live.m3u8", &[texts[0].clone().into()]).unwrap();
                            write_atomic(&out, "index.m3u8", &[texts[1].clone().into()]).unwrap();
                            segments += 1;
                        }
                        _ => {}
                    }
                }
            }
        }
        let cpu = cpu0.zip(thread_cpu()).map(|(a, b)| b - a);
        (cpu, wall0.elapsed(), replay.duration(), written, segments)
    })
    .await
    .unwrap();
    let media_s = media.as_secs_f64();
    let cpu_text = cpu.map_or("n/a (no /proc)".to_owned(), |c| {
        format!(
            "{} ms CPU ({:.2} % of one core)",
            c.as_millis(),
            c.as_secs_f64() / media_s * 100.0
        )
    });
    println!(
        "hls segmenter per live channel (720p30 2.5 Mbit/s + AAC 128 kbit/s): {media_s:.0} s of media, {segments} segments, {:.1} MB written in {} ms wall, {cpu_text}",
        written as f64 / 1e6,
        wall.as_millis()
    );
    assert!(segments >= 25, "{segments} segments for {media_s} s");
}
