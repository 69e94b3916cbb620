//! Videos by id with real players: a 60 s video (made by ffmpeg, a keyframe every 2 s, as
//! the recorder and the upload pipeline leave it: `media.flv` with a `keyframes` index, and
//! VOD HLS) played over HLS with ffprobe, over progressive FLV with ffprobe seeking to 30 s
//! (which it does by byte ranges, using the index), and from `?start=30`; a private video
//! refused on every path to everyone but its owner and admins.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use bytes::BytesMut;
use onair::config::Config;
use onair_e2e::http::request;
use onair_e2e::vod::{first_video_pts_after_seek, rtmp_first_picture};
use onair_e2e::{TestServer, random_name, require_ffmpeg};
use onair_flv::{FlvDemuxer, classify};
use onair_media::MediaKind;
use onair_store::{NewChannel, NewVideo, Role, VideoUpdate, Visibility};
use tokio::process::Command;

/// Longest any one step may take; generous for a loaded CI machine.
const STEP: Duration = Duration::from_secs(60);
/// The test video's keyframe interval, in seconds (`-g 50` at 25 fps).
const GOP: f64 = 2.0;

/// GETs `url` with `headers`: status, headers as (lower-case name, value), body.
async fn get(url: &str, headers: &[(&str, &str)]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut response = request("GET", url, headers, STEP)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e:#}"));
    let mut body = BytesMut::new();
    while let Some(b) = response.body.next().await.expect("reading the body") {
        body.extend_from_slice(&b);
    }
    let names = [
        "content-type",
        "content-length",
        "content-range",
        "accept-ranges",
        "cache-control",
        "etag",
        "last-modified",
    ];
    let headers = names
        .iter()
        .filter_map(|n| response.header(n).map(|v| (n.to_string(), v.to_owned())))
        .collect();
    (response.status, headers, body.to_vec())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Runs a tool to completion within [`STEP`]: (success, stdout, stderr).
async fn run(program: &str, args: &[&str]) -> (bool, String, String) {
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    let out = tokio::time::timeout(STEP, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} still running after {STEP:?}"))
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes a 60 s test pattern with a tone into `dir`: `media.flv` (keyframe index in its
/// `onMetaData`) and, remuxed from it, `index.m3u8` with `{n}.ts`.
async fn make_video(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let flv = dir.join("media.flv");
    let (ok, _, err) = run(
        "ffmpeg",
        &[
            "-hide_banner",
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=25",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=44100",
            "-t",
            "60",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "50",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-flvflags",
            "add_keyframe_index",
            flv.to_str().unwrap(),
        ],
    )
    .await;
    assert!(ok, "ffmpeg could not make media.flv:\n{err}");
    let segments = dir.join("%d.ts");
    let (ok, _, err) = run(
        "ffmpeg",
        &[
            "-hide_banner",
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-i",
            flv.to_str().unwrap(),
            "-c",
            "copy",
            "-f",
            "hls",
            "-hls_time",
            "2",
            "-hls_playlist_type",
            "vod",
            "-hls_segment_filename",
            segments.to_str().unwrap(),
            dir.join("index.m3u8").to_str().unwrap(),
        ],
    )
    .await;
    assert!(ok, "ffmpeg could not make the HLS files:\n{err}");
}

/// ffprobe's JSON for `args`, which must succeed.
async fn probe_json(args: &[&str]) -> serde_json::Value {
    let (ok, out, err) = run("ffprobe", args).await;
    assert!(ok, "ffprobe {args:?} failed:\n{err}");
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("ffprobe output is not JSON ({e}):\n{out}"))
}

/// (timestamp, keyframe) of the first coded video frame of an FLV stream.
fn first_video_frame(flv: &[u8]) -> (u32, bool) {
    let mut demuxer = FlvDemuxer::default();
    let mut buf = BytesMut::from(flv);
    while let Some(tag) = demuxer.decode(&mut buf).expect("a valid FLV stream") {
        let class = classify(tag.kind, &tag.body);
        if tag.kind == MediaKind::Video && !class.sequence_header {
            return (tag.timestamp.as_millis(), class.keyframe);
        }
    }
    panic!("no video frame in {} bytes", flv.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_plays_over_hls_and_seeks_over_progressive_flv() {
    if !require_ffmpeg() {
        return;
    }
    let server = TestServer::start(|_: &mut Config| {}).await;
    let platform = server.platform();
    let store = platform.store();
    let password = "correct horse battery staple";
    let owner = platform
        .create_user(&random_name("owner"), password, Role::Streamer)
        .await
        .unwrap();
    let stranger = platform
        .create_user(&random_name("viewer"), password, Role::Viewer)
        .await
        .unwrap();
    let admin = platform
        .create_user(&random_name("admin"), password, Role::Admin)
        .await
        .unwrap();
    let channel = store
        .create_channel(NewChannel {
            slug: random_name("vod"),
            title: "FLV seeking".into(),
            owner_id: owner.id,
            category: String::new(),
            tags: vec![],
        })
        .await
        .unwrap();
    let relative = format!("{}/upload", channel.slug);
    let dir = server.recordings_dir.join(&relative);
    make_video(&dir).await;
    let file = std::fs::read(dir.join("media.flv")).unwrap();
    // An upload's row: no recording behind it.
    let video = store
        .create_video(NewVideo {
            channel_id: channel.id,
            recording_id: None,
            path: relative,
            title: "sixty seconds".into(),
            duration_ms: 60_000,
            size_bytes: file.len() as u64,
            ..NewVideo::default()
        })
        .await
        .unwrap();
    let id = video.id;
    let hls = server.http_url(&format!("/videos/{id}/index.m3u8"));
    let flv = server.http_url(&format!("/videos/{id}.flv"));

    // HLS: the whole minute, both tracks.
    let json = probe_json(&[
        "-v",
        "error",
        "-show_entries",
        "format=duration:stream=codec_name",
        "-of",
        "json",
        &hls,
    ])
    .await;
    let duration: f64 = json["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (59.0..=61.0).contains(&duration),
        "HLS duration {duration}: {json}"
    );
    let mut codecs: Vec<&str> = json["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["codec_name"].as_str())
        .collect();
    codecs.sort_unstable();
    assert_eq!(codecs, ["aac", "h264"], "{json}");

    // Progressive FLV: ffprobe seeks to 30 s by byte range and starts within one GOP of it.
    let pts = first_video_pts_after_seek(&flv, 30).await;
    assert!(
        (pts - 30.0).abs() <= GOP,
        "first video packet at {pts} s after seeking to 30 s"
    );

    // Ranges, byte for byte; past the end, 416.
    let (status, headers, body) = get(&flv, &[("Range", "bytes=1000-4999")]).await;
    assert_eq!(status, 206);
    assert_eq!(body, &file[1000..5000]);
    assert_eq!(
        header(&headers, "content-range"),
        Some(format!("bytes 1000-4999/{}", file.len()).as_str())
    );
    assert!(header(&headers, "etag").is_some() && header(&headers, "last-modified").is_some());
    let past = format!("bytes={}-", file.len());
    let (status, headers, _) = get(&flv, &[("Range", past.as_str())]).await;
    assert_eq!(status, 416);
    assert_eq!(
        header(&headers, "content-range"),
        Some(format!("bytes */{}", file.len()).as_str())
    );
    let (status, headers, body) = get(&flv, &[]).await;
    assert_eq!((status, body.len()), (200, file.len()));
    assert_eq!(header(&headers, "accept-ranges"), Some("bytes"));

    // `?start=30`: starts on a keyframe within a GOP of 30 000 ms, and decodes cleanly.
    let asked = std::time::Instant::now();
    let (status, headers, seeked) = get(&format!("{flv}?start=30"), &[]).await;
    let took = asked.elapsed();
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), Some("video/x-flv"));
    assert_eq!(
        header(&headers, "content-length"),
        Some(seeked.len().to_string().as_str())
    );
    let (ts, keyframe) = first_video_frame(&seeked);
    assert!(keyframe, "the stream does not start on a keyframe");
    assert!(
        (f64::from(ts) - 30_000.0).abs() <= GOP * 1000.0,
        "first video frame at {ts} ms for start=30"
    );
    assert!(
        seeked.len() < file.len() * 2 / 3,
        "{} of {} bytes",
        seeked.len(),
        file.len()
    );
    let out = std::env::temp_dir().join(format!("{}.flv", random_name("onair-seeked")));
    std::fs::write(&out, &seeked).unwrap();
    let (ok, _, err) = run(
        "ffmpeg",
        &[
            "-hide_banner",
            "-nostdin",
            "-v",
            "error",
            "-i",
            out.to_str().unwrap(),
            "-f",
            "null",
            "-",
        ],
    )
    .await;
    assert!(
        ok && err.trim().is_empty(),
        "the ?start= stream does not decode cleanly:\n{err}"
    );
    let json = probe_json(&[
        "-v",
        "error",
        "-show_entries",
        "format=start_time,duration:stream=codec_name",
        "-of",
        "json",
        out.to_str().unwrap(),
    ])
    .await;
    let start: f64 = json["format"]["start_time"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((start - 30.0).abs() <= GOP, "start_time {start}: {json}");
    assert_eq!(json["streams"].as_array().map(Vec::len), Some(2), "{json}");
    let _ = std::fs::remove_file(&out);
    println!(
        "60 s video, {} bytes: seek to 30 s over Range: first video packet at {pts} s; \
         ?start=30: first frame at {ts} ms, {} bytes in {took:?}",
        file.len(),
        seeked.len()
    );
    // And ffprobe reads it over HTTP too, from 30 s on.
    let json = probe_json(&[
        "-v",
        "error",
        "-show_entries",
        "format=start_time",
        "-of",
        "json",
        &format!("{flv}?start=30"),
    ])
    .await;
    let start: f64 = json["format"]["start_time"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((start - 30.0).abs() <= GOP, "start_time {start} over HTTP");
    let (status, _, body) = get(&format!("{flv}?start=61"), &[]).await;
    assert_eq!(status, 416, "{}", String::from_utf8_lossy(&body));
    let (status, _, body) = get(&format!("{flv}?start=half"), &[]).await;
    assert_eq!(status, 400);
    let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(problem["errors"][0]["field"], "start", "{problem}");

    // Private: a 404 on every path to nobody and to another user; the owner and an admin
    // play it, and no shared cache may keep it.
    store
        .update_video(
            id,
            VideoUpdate {
                visibility: Some(Visibility::Private),
                ..VideoUpdate::default()
            },
        )
        .await
        .unwrap();
    let token = |user| async move {
        let (token, _) = platform.issue_access_token(user).await.unwrap();
        format!("Bearer {}", token.expose())
    };
    let (owner_auth, admin_auth, stranger_auth) = (
        token(&owner).await,
        token(&admin).await,
        token(&stranger).await,
    );
    let paths = [
        hls.clone(),
        server.http_url(&format!("/videos/{id}/0.ts")),
        flv.clone(),
        format!("{flv}?start=30"),
    ];
    for url in &paths {
        for auth in [None, Some(stranger_auth.as_str())] {
            let headers: Vec<(&str, &str)> =
                auth.map(|a| ("Authorization", a)).into_iter().collect();
            let (status, _, _) = get(url, &headers).await;
            assert_eq!(
                status,
                404,
                "{url} with {:?}",
                auth.map(|_| "a stranger's token")
            );
        }
        for auth in [&owner_auth, &admin_auth] {
            let (status, headers, body) = get(url, &[("Authorization", auth.as_str())]).await;
            assert_eq!(status, 200, "{url}");
            assert!(!body.is_empty(), "{url}");
            assert_eq!(
                header(&headers, "cache-control"),
                Some("private, no-cache"),
                "{url}"
            );
        }
    }
    // The owner's player seeks it as anyone's would.
    let probe_auth = format!("Authorization: {owner_auth}\r\n");
    let json = probe_json(&[
        "-v",
        "error",
        "-headers",
        &probe_auth,
        "-select_streams",
        "v",
        "-show_entries",
        "packet=pts_time",
        "-read_intervals",
        "30%+#1",
        "-of",
        "json",
        &flv,
    ])
    .await;
    let pts: f64 = json["packets"][0]["pts_time"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((pts - 30.0).abs() <= GOP, "{json}");
    server.shutdown().await;
}

/// A real live, recorded by the server: once it ends, its video plays at `/videos/{id}.flv`
/// and seeks there as an upload's does (the recorder's `media.flv` and its index).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_live_seeks_over_progressive_flv() {
    if !require_ffmpeg() {
        return;
    }
    let server = TestServer::start(|c: &mut Config| {
        c.hub.republish_grace = Duration::from_millis(500);
    })
    .await;
    let platform = server.platform();
    let store = platform.store().clone();
    let owner = platform
        .create_user(
            &random_name("owner"),
            "correct horse battery staple",
            Role::Streamer,
        )
        .await
        .unwrap();
    let channel = store
        .create_channel(NewChannel {
            slug: random_name("live"),
            title: "a live to seek in".into(),
            owner_id: owner.id,
            category: String::new(),
            tags: vec![],
        })
        .await
        .unwrap();
    let key = platform
        .issue_stream_key(channel.id, "vod flv test", None)
        .await
        .unwrap();
    // 12 s at 25 fps with a keyframe every 25 frames: a GOP of 1 s.
    let mut ffmpeg =
        onair_e2e::Ffmpeg::publish_test_pattern(&server.publish_url(key.token.expose()), 12);
    let status = ffmpeg.wait(STEP).await.expect("ffmpeg finished");
    assert!(status.success(), "ffmpeg failed:\n{}", ffmpeg.stderr());
    let search = onair_store::VideoSearch {
        channel_id: Some(channel.id),
        ..onair_store::VideoSearch::default()
    };
    let found = onair_e2e::wait_until_async(STEP, || {
        let (store, search) = (store.clone(), search.clone());
        async move {
            store
                .search_videos(&search, onair_store::Page::default())
                .await
                .is_ok_and(|(rows, _)| !rows.is_empty())
        }
    })
    .await;
    assert!(found, "the live never became a video");
    let (videos, _) = store
        .search_videos(&search, onair_store::Page::default())
        .await
        .unwrap();
    let id = videos[0].id;
    let flv = server.http_url(&format!("/videos/{id}.flv"));
    let gop = 1.0;

    let json = probe_json(&[
        "-v",
        "error",
        "-show_entries",
        "format=duration:stream=codec_name",
        "-of",
        "json",
        &flv,
    ])
    .await;
    let duration: f64 = json["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (10.0..=14.0).contains(&duration),
        "FLV duration {duration}: {json}"
    );
    let pts = first_video_pts_after_seek(&flv, 6).await;
    assert!(
        (pts - 6.0).abs() <= gop,
        "first video packet at {pts} s after seeking to 6 s"
    );
    let (status, _, seeked) = get(&format!("{flv}?start=6"), &[]).await;
    assert_eq!(status, 200);
    let (ts, keyframe) = first_video_frame(&seeked);
    assert!(keyframe, "?start=6 does not start on a keyframe");
    assert!(
        (f64::from(ts) - 6000.0).abs() <= gop * 1000.0,
        "first video frame at {ts} ms for start=6"
    );
    // The same replay over RTMP VOD, from the same `media.flv`.
    let (rtmp_ts, rtmp_key) = rtmp_first_picture(server.rtmp_addr, id, None, 6000).await;
    assert!(
        rtmp_key && (5000..=6000).contains(&rtmp_ts),
        "RTMP VOD play from 6 s: first picture at {rtmp_ts} ms, keyframe {rtmp_key}"
    );
    println!(
        "live replay: {duration:.2} s; seek to 6 s over Range: first video packet at {pts} s; \
         ?start=6: first frame at {ts} ms, {} bytes; RTMP VOD from 6 s: first picture at \
         {rtmp_ts} ms",
        seeked.len()
    );
    server.shutdown().await;
}
