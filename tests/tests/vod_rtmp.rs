//! RTMP VOD end to end (`rtmp://host/vod/{video_id}`): a catalogue video's `media.flv` played
//! with our client (seek, pause, duration, receiveVideo, the end) and with ffmpeg, and a
//! private video refused without its owner's token.

use std::time::{Duration, Instant};

use onair::config::Config;
use onair_client::{ClientError, ClientOptions, RtmpClient, RtmpUrl};
use onair_e2e::vod::shared_media_flv;
use onair_e2e::{Ffmpeg, TestServer, random_name, require_ffmpeg};
use onair_media::MediaKind;
use onair_rtmp::session::ClientEvent;
use onair_store::{NewChannel, NewVideo, Role, User, Visibility};

/// Longest any one wait may take; generous for a loaded CI machine.
const STEP: Duration = Duration::from_secs(20);
/// The fixture's keyframe interval (`-g 50` at 25 fps).
const GOP_MS: u32 = 2000;

struct Vod {
    server: TestServer,
    owner: User,
}

impl Vod {
    async fn start() -> Vod {
        let server = TestServer::start(|_: &mut Config| {}).await;
        let owner = server
            .platform()
            .create_user(
                &random_name("owner"),
                "correct horse battery staple",
                Role::Streamer,
            )
            .await
            .expect("creating the owner");
        Vod { server, owner }
    }

    /// A video of the owner's new channel; with `media`, the shared 60 s `media.flv` in its
    /// directory.
    async fn video(&self, visibility: Visibility, media: bool) -> i64 {
        let store = self.server.platform().store();
        let channel = store
            .create_channel(NewChannel {
                slug: random_name("vodch"),
                title: "VOD".into(),
                owner_id: self.owner.id,
                category: String::new(),
                tags: vec![],
            })
            .await
            .expect("creating the channel");
        let path = format!("{}/upload", channel.slug);
        let dir = self.server.recordings_dir.join(&path);
        std::fs::create_dir_all(&dir).expect("creating the video directory");
        if media {
            std::fs::copy(shared_media_flv(), dir.join("media.flv")).expect("copying media.flv");
        }
        store
            .create_video(NewVideo {
                channel_id: channel.id,
                path,
                title: "test pattern".into(),
                visibility,
                duration_ms: 60_000,
                ..NewVideo::default()
            })
            .await
            .expect("creating the video")
            .id
    }

    fn url(&self, name: &str) -> RtmpUrl {
        RtmpUrl::parse(&format!("rtmp://{}/vod/{name}", self.server.rtmp_addr))
            .expect("a valid URL")
    }

    async fn connect(&self, name: &str) -> RtmpClient {
        RtmpClient::connect(&self.url(name), &ClientOptions::default())
            .await
            .expect("connecting")
    }
}

/// The refusal of a play of `name`.
async fn refusal(vod: &Vod, name: String) -> (String, String) {
    let mut client = vod.connect(&name).await;
    match client.play_range(0.0, -1.0).await {
        Err(ClientError::Rejected { code, description }) => (code, description),
        other => panic!("{name}: expected a refusal, got {other:?}"),
    }
}

/// The next event within `limit`; `None` if none came (or the connection closed).
async fn event_within(client: &mut RtmpClient, limit: Duration) -> Option<ClientEvent> {
    tokio::time::timeout(limit, client.next_event())
        .await
        .ok()
        .and_then(|e| e.expect("the connection works"))
}

/// Events until `done` matches one (returned with it), within [`STEP`].
async fn events_until(
    client: &mut RtmpClient,
    done: impl Fn(&ClientEvent) -> bool,
) -> Vec<ClientEvent> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(e) = event_within(client, left).await else {
            panic!(
                "no matching event within {STEP:?}; saw {} events, last {:?}",
                seen.len(),
                seen.last()
            );
        };
        let stop = done(&e);
        seen.push(e);
        if stop {
            return seen;
        }
    }
}

fn is_status(e: &ClientEvent, wanted: &str) -> bool {
    matches!(e, ClientEvent::Status { code, .. } if code == wanted)
}

/// Timestamp and keyframe flag of a video message that carries a picture (not the
/// sequence header).
fn picture(e: &ClientEvent) -> Option<(u32, bool)> {
    match e {
        ClientEvent::Media {
            kind: MediaKind::Video,
            timestamp,
            payload,
        } if payload.get(1) == Some(&1) => Some((*timestamp, payload[0] >> 4 == 1)),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seek_to_30_s_starts_at_the_keyframe_before_it() {
    if !require_ffmpeg() {
        return;
    }
    let vod = Vod::start().await;
    let id = vod.video(Visibility::Public, true).await;

    // play(start = 30 s).
    let mut client = vod.connect(&id.to_string()).await;
    client.play_range(30_000.0, -1.0).await.expect("playing");
    let seen = events_until(&mut client, |e| picture(e).is_some()).await;
    assert!(
        seen.iter()
            .any(|e| matches!(e, ClientEvent::Metadata { .. })),
        "onMetaData came first: {seen:?}"
    );
    let (ts, key) = picture(seen.last().unwrap()).unwrap();
    println!("play(start 30000): first picture at {ts} ms, keyframe {key}");
    assert!(key, "the first picture is a keyframe");
    assert!(
        (30_000 - GOP_MS..=30_000).contains(&ts),
        "first picture at {ts} ms, not within a GOP before 30 s"
    );

    // seek(30 s) during a play from 0.
    let mut client = vod.connect(&id.to_string()).await;
    client.play_range(0.0, -1.0).await.expect("playing");
    let first = events_until(&mut client, |e| picture(e).is_some()).await;
    assert!(picture(first.last().unwrap()).is_some_and(|(ts, key)| key && ts < GOP_MS));
    client.seek(30_000.0).await.expect("seeking");
    let seen = events_until(&mut client, |e| is_status(e, "NetStream.Seek.Notify")).await;
    assert!(
        seen.iter()
            .all(|e| picture(e).is_none_or(|(ts, _)| ts < 5_000))
    );
    let seen = events_until(&mut client, |e| picture(e).is_some()).await;
    assert!(
        seen.iter().any(|e| matches!(e, ClientEvent::PlayStarted)),
        "Play.Start after the seek: {seen:?}"
    );
    let (ts, key) = picture(seen.last().unwrap()).unwrap();
    println!("seek(30000): first picture at {ts} ms, keyframe {key}");
    assert!(
        key && (30_000 - GOP_MS..=30_000).contains(&ts),
        "{ts} {key}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_stops_the_flow_and_unpause_continues_where_it_stopped() {
    if !require_ffmpeg() {
        return;
    }
    let vod = Vod::start().await;
    let id = vod.video(Visibility::Public, true).await;
    let mut client = vod.connect(&id.to_string()).await;
    client.play_range(10_000.0, -1.0).await.expect("playing");
    // A second of media, so the start's burst is spent and pacing rules.
    let mut last_ts = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(1) {
        if let Some(ClientEvent::Media { timestamp, .. }) = event_within(&mut client, STEP).await {
            last_ts = last_ts.max(timestamp);
        }
    }
    let paused_at = Instant::now();
    client
        .pause(true, f64::from(last_ts))
        .await
        .expect("pausing");
    let mut last_media_at = None;
    loop {
        let e = event_within(&mut client, STEP).await.expect("Pause.Notify");
        if is_status(&e, "NetStream.Pause.Notify") {
            break;
        }
        if let ClientEvent::Media { timestamp, .. } = e {
            last_ts = last_ts.max(timestamp);
            last_media_at = Some(Instant::now());
        }
    }
    let bytes_at_notify = client.bytes_read();
    // Nothing after the notify: a second of silence, not one media message.
    let after = event_within(&mut client, Duration::from_secs(1)).await;
    assert!(after.is_none(), "sent after Pause.Notify: {after:?}");
    assert_eq!(
        client.bytes_read(),
        bytes_at_notify,
        "bytes after Pause.Notify"
    );
    let stopped_within = last_media_at.map_or(Duration::ZERO, |t| t - paused_at);
    println!(
        "pause: last media {stopped_within:?} after pause was sent (media up to {last_ts} ms)"
    );

    client
        .pause(false, f64::from(last_ts))
        .await
        .expect("resuming");
    let seen = events_until(&mut client, |e| matches!(e, ClientEvent::Media { .. })).await;
    assert!(
        seen.iter()
            .any(|e| is_status(e, "NetStream.Unpause.Notify"))
    );
    let Some(ClientEvent::Media { timestamp, .. }) = seen.last() else {
        unreachable!()
    };
    println!("unpause: media resumed at {timestamp} ms after {last_ts} ms");
    assert!(
        (last_ts..=last_ts + 100).contains(timestamp),
        "resumed at {timestamp} ms, not right after {last_ts} ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duration_ends_with_stop_complete_and_eof_and_the_play_can_seek_on() {
    if !require_ffmpeg() {
        return;
    }
    let vod = Vod::start().await;
    let id = vod.video(Visibility::Public, true).await;
    let mut client = vod.connect(&id.to_string()).await;
    client.play_range(40_000.0, 3_000.0).await.expect("playing");
    let seen = events_until(&mut client, |e| matches!(e, ClientEvent::StreamEof)).await;
    let last_media = seen
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Media { timestamp, .. } => Some(*timestamp),
            _ => None,
        })
        .max()
        .expect("media before the end");
    println!("duration 3000 from 40000: media up to {last_media} ms");
    assert!((42_000..=43_000).contains(&last_media), "{last_media}");
    let ends: Vec<_> = seen
        .iter()
        .filter(|e| !matches!(e, ClientEvent::Media { .. } | ClientEvent::Metadata { .. }))
        .skip_while(|e| !is_status(e, "NetStream.Play.Stop"))
        .collect();
    assert!(
        matches!(
            ends[..],
            [
                ClientEvent::Status { .. },
                ClientEvent::PlayStatus { code, .. },
                ClientEvent::StreamEof
            ] if code == "NetStream.Play.Complete"
        ),
        "{ends:?}"
    );
    // The connection stays: seek to near the end plays on to the end of the file.
    client.seek(57_000.0).await.expect("seeking");
    let seen = events_until(
        &mut client,
        |e| matches!(e, ClientEvent::PlayStatus { code, .. } if code == "NetStream.Play.Complete"),
    )
    .await;
    let pictures: Vec<_> = seen.iter().filter_map(picture).collect();
    assert!(
        pictures
            .first()
            .is_some_and(|&(ts, key)| key && (57_000 - GOP_MS..=57_000).contains(&ts)),
        "{pictures:?}"
    );
    let last = pictures.last().expect("pictures").0;
    println!(
        "seek 57000 after the end: pictures {}..={last} ms, then Play.Complete",
        pictures[0].0
    );
    assert!(last >= 59_900, "the file's end, not {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_video_false_sends_only_audio() {
    if !require_ffmpeg() {
        return;
    }
    let vod = Vod::start().await;
    let id = vod.video(Visibility::Public, true).await;
    let mut client = vod.connect(&id.to_string()).await;
    client.play_range(0.0, -1.0).await.expect("playing");
    client.receive_video(false).await.expect("receiveVideo");
    // Commands are handled in order: everything after this seek's notify is audio only.
    client.seek(20_000.0).await.expect("seeking");
    events_until(&mut client, |e| is_status(e, "NetStream.Seek.Notify")).await;
    let (mut audio, mut video) = (0, 0);
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1500) {
        match event_within(&mut client, STEP).await {
            Some(ClientEvent::Media {
                kind: MediaKind::Audio,
                ..
            }) => audio += 1,
            Some(ClientEvent::Media {
                kind: MediaKind::Video,
                ..
            }) => video += 1,
            _ => {}
        }
    }
    println!("receiveVideo(false): {audio} audio, {video} video messages in 1.5 s");
    assert!(audio > 20, "{audio} audio messages");
    assert_eq!(video, 0);
    // Back on: the video sequence header, then a keyframe.
    client.receive_video(true).await.expect("receiveVideo");
    let seen = events_until(&mut client, |e| picture(e).is_some()).await;
    assert!(
        picture(seen.last().unwrap()).unwrap().1,
        "video resumes on a keyframe"
    );
    assert!(seen.iter().any(|e| matches!(
        e,
        ClientEvent::Media { kind: MediaKind::Video, payload, .. } if payload.get(1) == Some(&0)
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_videos_play_only_with_the_owners_token() {
    if !require_ffmpeg() {
        return;
    }
    let vod = Vod::start().await;
    let private = vod.video(Visibility::Private, true).await;
    let platform = vod.server.platform();
    let (owner_token, _) = platform
        .issue_access_token(&vod.owner)
        .await
        .expect("a token");
    let other = platform
        .create_user(
            &random_name("other"),
            "correct horse battery staple",
            Role::Viewer,
        )
        .await
        .expect("another user");
    let (other_token, _) = platform.issue_access_token(&other).await.expect("a token");

    let unknown = refusal(&vod, "999999".into()).await;
    assert_eq!(unknown.0, "NetStream.Play.StreamNotFound");
    for name in [
        private.to_string(),
        format!("{private}?token={}", other_token.expose()),
        format!("{private}?token=not-a-token"),
    ] {
        assert_eq!(
            refusal(&vod, name).await,
            unknown,
            "a private video answers as an unknown id"
        );
    }
    let mut client = vod
        .connect(&format!("{private}?token={}", owner_token.expose()))
        .await;
    client
        .play_range(0.0, -1.0)
        .await
        .expect("the owner plays it");
    let seen = events_until(&mut client, |e| picture(e).is_some()).await;
    assert!(picture(seen.last().unwrap()).is_some_and(|(ts, key)| key && ts < GOP_MS));

    let hls_only = vod.video(Visibility::Public, false).await;
    let (code, description) = refusal(&vod, hls_only.to_string()).await;
    assert_eq!(code, "NetStream.Play.StreamNotFound");
    assert!(description.contains("HLS only"), "{description}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_seeks_to_30_s_and_gets_the_gop_there() {
    if !require_ffmpeg() {
        return;
    }
    let vod = Vod::start().await;
    let id = vod.video(Visibility::Public, true).await;
    let out = vod.server.recordings_dir.join("ffmpeg-seek.flv");
    let url = format!("rtmp://{}/vod/{id}", vod.server.rtmp_addr);
    let args: Vec<String> = [
        "-hide_banner",
        "-loglevel",
        "error",
        "-nostdin",
        "-y",
        "-ss",
        "30",
        "-i",
        &url,
        // With -copyts the output keeps the file's timestamps, so the end is a position.
        "-to",
        "32",
        "-copyts",
        "-c",
        "copy",
        "-f",
        "flv",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([out.display().to_string()])
    .collect();
    let mut ffmpeg = Ffmpeg::spawn("ffmpeg", &args);
    let status = ffmpeg
        .wait(Duration::from_secs(60))
        .await
        .expect("ffmpeg ends");
    assert!(status.success(), "ffmpeg failed:\n{}", ffmpeg.stderr());
    let probe = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v",
            "-show_entries",
            "packet=pts_time,flags",
        ])
        .args(["-of", "csv=p=0"])
        .arg(&out)
        .output()
        .expect("ffprobe runs");
    let text = String::from_utf8_lossy(&probe.stdout);
    let first = text.lines().next().unwrap_or_else(|| {
        panic!(
            "no video packets in what ffmpeg received: {}\nffmpeg: {}",
            String::from_utf8_lossy(&probe.stderr),
            ffmpeg.stderr()
        )
    });
    let (pts, flags) = first.split_once(',').expect("pts,flags");
    let pts: f64 = pts.parse().expect("a pts");
    println!("ffmpeg -ss 30: first video packet at {pts} s, flags {flags}");
    assert!(
        flags.starts_with('K'),
        "first packet is a keyframe: {first}"
    );
    assert!((28.0..=30.0).contains(&pts), "first video pts {pts}");
}
