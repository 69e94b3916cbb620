//! `onair publish` and `onair play` as real processes when the connection goes wrong: a
//! kicked publisher coming back with `--reconnect` and going on from where its file was, a
//! refused connect retried until the server is up, a bad key that stops without a retry, a
//! player that writes one clean FLV across a publisher restart (ffmpeg publishing, ffprobe
//! reading), and a frozen server (a `FreezableProxy` in between) noticed within `--timeout`.
//! Then the VOD controls against the server's RTMP VOD (`rtmp://host/vod/{id}`): `--seek`
//! with `--duration` ending at Play.Complete, and `--pause-after`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use onair_amf::Value;
use onair_client::{ClientOptions, RtmpClient, RtmpUrl};
use onair_e2e::binary::{TempDir, onair_binary};
use onair_e2e::proxy::FreezableProxy;
use onair_e2e::vod::shared_media_flv;
use onair_e2e::{Ffmpeg, TestServer, random_name, require_ffmpeg, wait_until};
use onair_flv::{FlvDemuxer, FlvHeader};
use onair_media::{MediaKind, Timestamp};
use onair_rtmp::session::ClientEvent;
use onair_store::{NewChannel, NewVideo, Role, Visibility};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::{Instant, timeout};

/// Longest any one step may take; generous for a loaded CI machine, never needed in a
/// passing run.
const STEP: Duration = Duration::from_secs(60);

/// One `onair` process with its stderr kept as it arrives.
struct Cli {
    child: Child,
    stderr: Arc<Mutex<String>>,
    reader: Option<tokio::task::JoinHandle<()>>,
}

impl Cli {
    async fn start(args: &[&str]) -> Cli {
        let mut child = Command::new(onair_binary().await)
            .args(args)
            .env("ONAIR_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawning onair");
        let stderr = Arc::new(Mutex::new(String::new()));
        let kept = stderr.clone();
        let pipe = child.stderr.take().expect("piped stderr");
        let reader = tokio::spawn(async move {
            let mut lines = BufReader::new(pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut all = kept.lock().expect("stderr lock");
                all.push_str(&line);
                all.push('\n');
            }
        });
        Cli {
            child,
            stderr,
            reader: Some(reader),
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lock").clone()
    }

    /// How many times `needle` has been printed so far.
    fn count(&self, needle: &str) -> usize {
        self.stderr().matches(needle).count()
    }

    /// Waits until `needle` has been printed `times` times.
    async fn wait_for(&self, needle: &str, times: usize, within: Duration) -> bool {
        wait_until(within, || self.count(needle) >= times).await
    }

    async fn exit(&mut self, within: Duration) -> (ExitStatus, String) {
        let status = timeout(within, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("onair did not exit; stderr:\n{}", self.stderr()))
            .expect("waiting for onair");
        // The reader has the last lines once the pipe closes.
        if let Some(reader) = self.reader.take() {
            let _ = timeout(STEP, reader).await;
        }
        (status, self.stderr())
    }

    /// SIGINT, as Ctrl-C sends it: the clean way to stop a player or a looping publisher.
    fn interrupt(&self) {
        let pid = self.child.id().expect("still running");
        let status = std::process::Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .expect("running kill");
        assert!(status.success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kicked_publisher_comes_back_and_goes_on_from_where_the_file_was() {
    let dir = TempDir::new("kick");
    let file = dir.path().join("numbered.flv");
    std::fs::write(&file, numbered_flv(60)).expect("writing the input FLV");
    let server = TestServer::start(|_| {}).await;
    let url = server.publish_url(&server.key);
    // A short --timeout: our server pings only every 10 s, so only answered keep-alives
    // keep this publisher from declaring it dead.
    let mut publisher = Cli::start(&[
        "publish",
        path_str(&file),
        &url,
        "--reconnect",
        "--timeout",
        "2s",
    ])
    .await;
    assert!(
        server.wait_live(&server.channel, STEP).await,
        "never live:\n{}",
        publisher.stderr()
    );
    let mut viewer = Viewer::play(&server.play_url(&server.channel)).await;
    let before = viewer.video_until(|frames| frames.len() >= 75).await;
    assert!(
        publisher.count("sent nothing") == 0,
        "the keep-alive was not answered:\n{}",
        publisher.stderr()
    );

    let kicked = Instant::now();
    assert!(
        server.hub().kick(&server.channel),
        "the kick found the publisher"
    );
    assert!(
        publisher.wait_for(" again, from media time", 1, STEP).await,
        "the publisher did not come back:\n{}",
        publisher.stderr()
    );
    let back = kicked.elapsed();
    let stderr = publisher.stderr();
    assert!(
        stderr.contains("NetStream.Unpublish.Success") && stderr.contains("reconnecting in 0."),
        "the first retry comes within the first back-off step (0.5 s less jitter):\n{stderr}"
    );
    eprintln!("kicked publisher publishing again after {back:?}");
    assert!(back < Duration::from_secs(5), "back after {back:?}");

    // The viewer, still subscribed through the republish grace, sees the file go on: frame
    // numbers and timestamps increase across the republish.
    let last_before = *before.last().expect("frames before the kick");
    let after = viewer
        .video_until(|frames| {
            frames
                .iter()
                .position(|f| f.after_republish)
                .is_some_and(|i| frames.len() - i >= 50)
        })
        .await;
    let all: Vec<VideoFrame> = before.iter().chain(&after).copied().collect();
    for pair in all.windows(2) {
        assert!(
            pair[1].number > pair[0].number,
            "frame numbers went back or repeated: {pair:?}"
        );
        assert!(
            pair[1].timestamp > pair[0].timestamp,
            "the viewer's timestamps went back: {pair:?}"
        );
    }
    // Pacing starts over on the new connection, so the file goes on from the tag after the
    // last one sent, video from the next keyframe: at most a GOP (25 frames) is skipped.
    let republished = after
        .iter()
        .position(|f| f.after_republish)
        .expect("the viewer was told the publisher is back");
    let (last, first) = match republished {
        0 => (last_before, after[0]),
        i => (after[i - 1], after[i]),
    };
    assert!(
        first.keyframe,
        "the new publish starts on a keyframe: {first:?}"
    );
    assert!(
        first.number > last.number && first.number <= last.number + 26,
        "resumed from where the file was, not from its start or far beyond: {last:?} then {first:?}"
    );

    publisher.interrupt();
    let (status, stderr) = publisher.exit(STEP).await;
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains(", 1 reconnect"),
        "the summary counts it:\n{stderr}"
    );
    assert!(!stderr.contains(&server.key), "the key leaked:\n{stderr}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connect_is_retried_until_the_server_is_up_and_reconnect_max_gives_up() {
    let dir = TempDir::new("refused-connect");
    let file = dir.path().join("numbered.flv");
    std::fs::write(&file, numbered_flv(20)).expect("writing the input FLV");

    // Nothing listens on the port yet.
    let addr = free_port();
    let key = "sk-reconnect-later-4a1f";
    let url = format!("rtmp://{addr}/live/{key}");
    let mut publisher = Cli::start(&["publish", path_str(&file), &url, "--reconnect"]).await;
    assert!(
        publisher.wait_for("reconnecting in", 3, STEP).await,
        "{}",
        publisher.stderr()
    );
    let server = TestServer::start(|config| {
        config.rtmp.listen = addr;
        config.dev.keys[0].key = onair::secret::StreamKey::new(key.into());
    })
    .await;
    assert!(
        server.wait_live(&server.channel, STEP).await,
        "the publisher never came:\n{}",
        publisher.stderr()
    );
    let stderr = publisher.stderr();
    for (n, delay) in [(1, "0.5"), (2, "1.0"), (3, "2.0")] {
        // Jitter takes up to a quarter off: 0.4–0.5, 0.8–1.0, 1.5–2.0 s.
        let line = stderr
            .lines()
            .find(|l| l.contains(&format!("(attempt {n})")))
            .unwrap_or_else(|| panic!("no attempt {n}:\n{stderr}"));
        assert!(
            line.contains("connection to rtmp://") && line.contains(" failed: "),
            "{line}"
        );
        let secs: f64 = line
            .split("reconnecting in ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no delay in {line}"));
        let full: f64 = delay.parse().expect("literal");
        assert!(
            secs <= full && secs >= full * 0.74,
            "attempt {n} waited {secs} s, the schedule says {full} s less jitter"
        );
    }
    assert!(!stderr.contains(key), "the key leaked:\n{stderr}");
    publisher.interrupt();
    let (status, _) = publisher.exit(STEP).await;
    assert!(status.success());
    server.shutdown().await;

    // With --reconnect-max, a server that never comes is given up on after that many tries.
    let mut publisher = Cli::start(&[
        "publish",
        path_str(&file),
        &format!("rtmp://{}/live/{key}", free_port()),
        "--reconnect",
        "--reconnect-max",
        "2",
    ])
    .await;
    let (status, stderr) = publisher.exit(STEP).await;
    assert!(!status.success(), "{stderr}");
    assert_eq!(publisher.count("reconnecting in"), 2, "{stderr}");
    assert!(
        stderr.contains("(attempt 2 of 2)") && stderr.contains("after 2 reconnect attempts"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_key_stops_without_retrying_and_says_why() {
    let dir = TempDir::new("bad-key");
    let file = dir.path().join("numbered.flv");
    std::fs::write(&file, numbered_flv(5)).expect("writing the input FLV");
    let server = TestServer::start(|_| {}).await;
    let wrong_key = "sk-not-a-real-key-9c41";
    let url = server.publish_url(wrong_key);
    onair_binary().await;
    let started = Instant::now();
    let mut publisher = Cli::start(&["publish", path_str(&file), &url, "--reconnect"]).await;
    let (status, stderr) = publisher.exit(STEP).await;
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("not reconnecting")
            && stderr.contains("NetStream.Publish.Rejected")
            && stderr.contains("unknown stream key"),
        "the refusal and why there is no retry:\n{stderr}"
    );
    assert!(!stderr.contains("reconnecting in"), "it retried:\n{stderr}");
    assert_eq!(publisher.count("connecting to"), 1, "{stderr}");
    assert!(!stderr.contains(wrong_key), "the key leaked:\n{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn play_with_reconnect_writes_one_clean_flv_across_a_publisher_restart() {
    if !require_ffmpeg() {
        return;
    }
    let server = TestServer::start(|config| {
        // The server ends the viewer soon after the publisher leaves, so the player has to
        // reconnect and wait for the next publish.
        config.hub.republish_grace = Duration::from_millis(300);
    })
    .await;
    let dir = TempDir::new("play-reconnect");
    let output = dir.path().join("out.flv");
    let play_url = server.play_url(&server.channel);
    let mut player = Cli::start(&["play", &play_url, "-o", path_str(&output), "--reconnect"]).await;
    assert!(
        player.wait_for("playing ", 1, STEP).await,
        "{}",
        player.stderr()
    );

    let publish_url = server.publish_url(&server.key);
    for (round, seconds) in [(1, 4), (2, 4)] {
        let mut ffmpeg = Ffmpeg::publish_test_pattern(&publish_url, seconds);
        let status = ffmpeg
            .wait(STEP)
            .await
            .unwrap_or_else(|| panic!("ffmpeg {round} did not finish"));
        assert!(status.success(), "ffmpeg {round}:\n{}", ffmpeg.stderr());
        // The server ends the viewer after the grace; the player reconnects and waits.
        assert!(
            player.wait_for(" again, into the same ", round, STEP).await,
            "the player did not reconnect after publish {round}:\n{}",
            player.stderr()
        );
    }
    player.interrupt();
    let (status, stderr) = player.exit(STEP).await;
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("reconnects"), "{stderr}");

    let bytes = std::fs::read(&output).expect("the output file");
    let (header, tags) = demux(&bytes);
    assert_eq!(
        header,
        FlvHeader {
            has_audio: true,
            has_video: true
        }
    );
    for kind in [MediaKind::Video, MediaKind::Audio] {
        let ts: Vec<u32> = tags.iter().filter(|t| t.0 == kind).map(|t| t.1).collect();
        assert!(
            ts.windows(2).all(|w| w[1] >= w[0]),
            "{kind:?} timestamps go back: {:?}",
            ts.windows(2).find(|w| w[1] < w[0])
        );
        // Both publishes' media is there: 8 s in all, less the first one's live join.
        let span = ts.last().copied().unwrap_or(0) - ts.first().copied().unwrap_or(0);
        assert!(span >= 6_000, "{kind:?} spans only {span} ms");
    }
    let video_headers = tags
        .iter()
        .filter(|t| t.0 == MediaKind::Video && onair_flv::classify(t.0, &t.2).sequence_header)
        .count();
    assert!(
        (1..=2).contains(&video_headers),
        "a video sequence header per distinct configuration, not per session: {video_headers}"
    );

    // ffprobe reads it without a complaint, and its packets' times never go back.
    let probe = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "packet=stream_index,dts_time",
            "-of",
            "csv=p=0",
        ])
        .arg(&output)
        .output()
        .expect("running ffprobe");
    let errors = String::from_utf8_lossy(&probe.stderr);
    assert!(
        probe.status.success() && errors.trim().is_empty(),
        "ffprobe:\n{errors}"
    );
    let packets = String::from_utf8_lossy(&probe.stdout);
    let mut last = [f64::MIN; 2];
    let mut count = 0;
    for line in packets.lines() {
        let mut fields = line.split(',');
        let (Some(stream), Some(Ok(dts))) = (fields.next(), fields.next().map(str::parse::<f64>))
        else {
            continue;
        };
        let i = usize::from(stream == "1");
        assert!(
            dts >= last[i],
            "stream {stream}: dts {dts} after {}",
            last[i]
        );
        last[i] = dts;
        count += 1;
    }
    assert!(count > 300, "ffprobe saw {count} packets");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server_is_noticed_within_the_timeout_by_player_and_publisher() {
    let dir = TempDir::new("frozen");
    let file = dir.path().join("numbered.flv");
    std::fs::write(&file, numbered_flv(60)).expect("writing the input FLV");
    let server = TestServer::start(|_| {}).await;

    // The player goes through the proxy; the publisher straight to the server.
    let publisher =
        Cli::start(&["publish", path_str(&file), &server.publish_url(&server.key)]).await;
    assert!(
        server.wait_live(&server.channel, STEP).await,
        "{}",
        publisher.stderr()
    );
    let proxy = FreezableProxy::start(server.rtmp_addr).await;
    let play_url = format!("rtmp://{}/live/{}", proxy.addr(), server.channel);
    let dir_out = dir.path().join("frozen.flv");
    let mut player = Cli::start(&[
        "play",
        &play_url,
        "-o",
        path_str(&dir_out),
        "--timeout",
        "3s",
    ])
    .await;
    assert!(
        player.wait_for("playing ", 1, STEP).await,
        "{}",
        player.stderr()
    );
    assert!(
        server
            .wait_media(&server.channel, Duration::from_secs(1), 25, STEP)
            .await
    );
    proxy.freeze();
    let frozen = Instant::now();
    let (status, stderr) = player.exit(STEP).await;
    let noticed = frozen.elapsed();
    eprintln!("player behind a frozen proxy (--timeout 3s) exited after {noticed:?}");
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("the server sent nothing for 3s"),
        "the player says why:\n{stderr}"
    );
    assert!(
        noticed <= Duration::from_secs(4) && noticed >= Duration::from_millis(2500),
        "noticed after {noticed:?}, --timeout was 3 s"
    );
    drop(publisher);
    proxy.thaw();

    // A publisher whose server stops reading blocks in a write: it must notice too.
    assert!(
        wait_until(STEP, || !server.hub().is_live(&server.channel)).await,
        "the first publisher is gone"
    );
    let proxy = FreezableProxy::start(server.rtmp_addr).await;
    let url = format!("rtmp://{}/live/{}", proxy.addr(), server.key);
    let mut publisher = Cli::start(&[
        "publish",
        path_str(&file),
        &url,
        "--no-pace",
        "--loop",
        "--timeout",
        "3s",
    ])
    .await;
    assert!(
        server.wait_live(&server.channel, STEP).await,
        "{}",
        publisher.stderr()
    );
    proxy.freeze();
    let frozen = Instant::now();
    let (status, stderr) = publisher.exit(STEP).await;
    let noticed = frozen.elapsed();
    eprintln!("publisher behind a frozen proxy (--timeout 3s) exited after {noticed:?}");
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("the server sent nothing for 3s"),
        "the publisher says why:\n{stderr}"
    );
    assert!(
        noticed <= Duration::from_secs(4),
        "noticed after {noticed:?}"
    );
    assert!(!stderr.contains(&server.key), "the key leaked:\n{stderr}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn play_seek_30_duration_10_gets_30_to_40_s_and_ends_at_play_complete() {
    if !require_ffmpeg() {
        return;
    }
    let server = TestServer::start(|_| {}).await;
    let url = vod_url(&server).await;
    let dir = TempDir::new("vod-seek");
    let output = dir.path().join("vod.flv");
    let mut player = Cli::start(&[
        "play",
        &url,
        "--seek",
        "30",
        "--duration",
        "10s",
        "-o",
        path_str(&output),
    ])
    .await;
    let (status, stderr) = player.exit(STEP).await;
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("the VOD ended") && stderr.contains("NetStream.Play.Complete"),
        "{stderr}"
    );
    let (_, tags) = demux(&std::fs::read(&output).expect("the output"));
    let video: Vec<u32> = tags
        .iter()
        .filter(|t| t.0 == MediaKind::Video && !onair_flv::classify(t.0, &t.2).sequence_header)
        .map(|t| t.1)
        .collect();
    let (first, last) = (video[0], *video.last().expect("video"));
    eprintln!(
        "--seek 30 --duration 10s: video {first}..{last} ms, {} frames",
        video.len()
    );
    assert!(first.abs_diff(30_000) <= 2000, "first video at {first} ms");
    assert!(last.abs_diff(40_000) <= 500, "last video at {last} ms");
    // Sequence headers may carry 0; every frame is from the seek's keyframe on.
    assert!(
        tags.iter()
            .filter(|t| t.0 != MediaKind::Script && !onair_flv::classify(t.0, &t.2).sequence_header)
            .all(|t| t.1 + 500 >= first),
        "nothing from before the keyframe the seek starts at ({first} ms)"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn play_pause_after_2_1_pauses_for_a_second_and_goes_on_where_it_stopped() {
    if !require_ffmpeg() {
        return;
    }
    let server = TestServer::start(|_| {}).await;
    let url = vod_url(&server).await;
    let dir = TempDir::new("vod-pause");
    let output = dir.path().join("vod.flv");
    onair_binary().await;
    let started = Instant::now();
    let mut player = Cli::start(&[
        "play",
        &url,
        "--seek",
        "10",
        "--duration",
        "5s",
        "--pause-after",
        "2:1",
        "-o",
        path_str(&output),
    ])
    .await;
    let (status, stderr) = player.exit(STEP).await;
    let took = started.elapsed();
    assert!(status.success(), "{stderr}");
    eprintln!("--pause-after 2:1 took {took:?}:\n{stderr}");
    let number_after = |needle: &str| -> u32 {
        let line = stderr
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} line:\n{stderr}"));
        line.rsplit(": ")
            .next()
            .and_then(|t| t.trim_end_matches(" ms").parse().ok())
            .unwrap_or_else(|| panic!("no timestamp in {line:?}"))
    };
    assert!(
        stderr.contains("paused after 2.0 s of playback"),
        "{stderr}"
    );
    assert!(stderr.contains("resumed after 1.0 s paused"), "{stderr}");
    let before = number_after("last timestamp received");
    let after = number_after("first timestamp after the pause");
    assert!(
        after > before && after - before < 1000,
        "the media goes on where it stopped: {before} then {after} ms"
    );
    assert!(
        took >= Duration::from_secs(6),
        "5 s of media and a 1 s pause in {took:?}"
    );
    // In the file the pause leaves no gap: media time only stood still on the wall clock.
    let (_, tags) = demux(&std::fs::read(&output).expect("the output"));
    let video: Vec<u32> = tags
        .iter()
        .filter(|t| t.0 == MediaKind::Video && !onair_flv::classify(t.0, &t.2).sequence_header)
        .map(|t| t.1)
        .collect();
    let gap = video.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    assert!(gap <= 100, "a {gap} ms hole in the video");
    server.shutdown().await;
}

/// `rtmp://…/vod/{id}` of a new catalogue video whose `media.flv` is the shared 60 s test
/// pattern (a keyframe every 2 s).
async fn vod_url(server: &TestServer) -> String {
    let store = server.platform().store();
    let owner = server
        .platform()
        .create_user(
            &random_name("owner"),
            "correct horse battery staple",
            Role::Streamer,
        )
        .await
        .expect("creating the owner");
    let channel = store
        .create_channel(NewChannel {
            slug: random_name("vodch"),
            title: "VOD".into(),
            owner_id: owner.id,
            category: String::new(),
            tags: vec![],
        })
        .await
        .expect("creating the channel");
    let path = format!("{}/upload", channel.slug);
    let dir = server.recordings_dir.join(&path);
    std::fs::create_dir_all(&dir).expect("creating the video directory");
    std::fs::copy(shared_media_flv(), dir.join("media.flv")).expect("copying media.flv");
    let id = store
        .create_video(NewVideo {
            channel_id: channel.id,
            path,
            title: "test pattern".into(),
            visibility: Visibility::Public,
            duration_ms: 60_000,
            ..NewVideo::default()
        })
        .await
        .expect("creating the video")
        .id;
    format!("rtmp://{}/vod/{id}", server.rtmp_addr)
}

/// An RTMP viewer through our client library, for the frames' payloads.
struct Viewer {
    client: RtmpClient,
}

/// A video frame of [`numbered_flv`] as a viewer got it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct VideoFrame {
    number: u32,
    timestamp: u32,
    keyframe: bool,
    /// The first frame after `NetStream.Play.PublishNotify`.
    after_republish: bool,
}

impl Viewer {
    async fn play(url: &str) -> Viewer {
        let url = RtmpUrl::parse(url).expect("play URL");
        let mut client = RtmpClient::connect(&url, &ClientOptions::default())
            .await
            .expect("viewer connects");
        client.play().await.expect("viewer plays");
        Viewer { client }
    }

    /// Coded video frames (numbered ones) until `done` holds of them.
    async fn video_until(&mut self, done: impl Fn(&[VideoFrame]) -> bool) -> Vec<VideoFrame> {
        let mut frames = Vec::new();
        let mut republished = false;
        let read = async {
            while !done(&frames) {
                match self.client.next_event().await.expect("viewer reads") {
                    Some(ClientEvent::Media {
                        kind: MediaKind::Video,
                        timestamp,
                        payload,
                    }) => {
                        if let Some(number) = frame_number(&payload) {
                            frames.push(VideoFrame {
                                number,
                                timestamp,
                                keyframe: payload[0] >> 4 == 1,
                                after_republish: std::mem::take(&mut republished),
                            });
                        }
                    }
                    Some(ClientEvent::Status { code, .. })
                        if code == "NetStream.Play.PublishNotify" =>
                    {
                        republished = true;
                    }
                    Some(_) => {}
                    None => panic!("the server closed the viewer"),
                }
            }
        };
        timeout(STEP, read).await.expect("frames in time");
        frames
    }
}

/// The frame number [`numbered_flv`] put in a coded AVC frame.
fn frame_number(body: &Bytes) -> Option<u32> {
    let class = onair_flv::classify(MediaKind::Video, body);
    if class.sequence_header || body.len() < 9 {
        return None;
    }
    Some(u32::from_be_bytes(body[5..9].try_into().ok()?))
}

/// `seconds` of 25 fps AVC (a keyframe every second) and AAC every 20 ms, whose video
/// payloads carry their frame number: metadata, both sequence headers, then frames.
fn numbered_flv(seconds: u32) -> Vec<u8> {
    let mut out = FlvHeader {
        has_audio: true,
        has_video: true,
    }
    .encode()
    .to_vec();
    let mut tag = |kind: MediaKind, ts: u32, body: &[u8]| {
        out.extend_from_slice(&onair_flv::encode_tag(
            kind,
            Timestamp::from_millis(ts),
            body,
        ));
    };
    let metadata = onair_amf::encode_all(&[
        "onMetaData".into(),
        Value::EcmaArray(vec![
            ("width".into(), Value::Number(320.0)),
            ("height".into(), Value::Number(240.0)),
            ("videocodecid".into(), Value::Number(7.0)),
            ("audiocodecid".into(), Value::Number(10.0)),
        ]),
    ]);
    tag(MediaKind::Script, 0, &metadata);
    tag(
        MediaKind::Video,
        0,
        &[
            0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 4, 0x67, 0x64, 0, 0x1f, 1, 0, 2,
            0x68, 0xeb,
        ],
    );
    tag(MediaKind::Audio, 0, &[0xaf, 0, 0x11, 0x90]);
    let end = seconds * 1000;
    let (mut video, mut audio, mut frame) = (0u32, 0u32, 0u32);
    while video < end || audio < end {
        if video <= audio && video < end {
            let frame_type: u8 = if frame.is_multiple_of(25) { 1 } else { 2 };
            let mut body = vec![frame_type << 4 | 7, 1, 0, 0, 0];
            body.extend_from_slice(&frame.to_be_bytes());
            body.resize(if frame_type == 1 { 3000 } else { 600 }, 0x42);
            tag(MediaKind::Video, video, &body);
            video += 40;
            frame += 1;
        } else {
            tag(MediaKind::Audio, audio, &[0xaf, 1, 0x21, 0x10, 0x04]);
            audio += 20;
        }
    }
    out
}

/// The FLV's header and (kind, timestamp, body) per tag.
fn demux(bytes: &[u8]) -> (FlvHeader, Vec<(MediaKind, u32, Bytes)>) {
    let mut demuxer = FlvDemuxer::default();
    let mut buf = bytes::BytesMut::from(bytes);
    let mut tags = Vec::new();
    while let Some(tag) = demuxer.decode(&mut buf).expect("one valid FLV") {
        tags.push((tag.kind, tag.timestamp.as_millis(), tag.body));
    }
    assert!(buf.is_empty(), "{} bytes after the last tag", buf.len());
    (demuxer.header().expect("an FLV header"), tags)
}

/// A loopback address nothing listens on (bound and released at once).
fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding port 0");
    listener.local_addr().expect("its address")
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}
