//! Playback with real clients: ffmpeg publishes a test pattern over RTMP, and ffprobe (RTMP,
//! HTTP-FLV) or our own WS-FLV/HTTP-FLV reader plays it back. Checks codecs, frame counts,
//! a keyframe start, the HTTP contract flv.js and mpegts.js rely on (protocol notes §4.8),
//! and FLV header flags that match the tracks really published (§4.8, notes #8).

use std::time::Duration;

use onair_e2e::flv::End;
use onair_e2e::http;
use onair_e2e::{
    Ffmpeg, FlvReader, Probe, TagSummary, TestServer, Tracks, ffprobe, require_ffmpeg,
};
use onair_hub::PublishOptions;
use onair_media::MediaKind;

/// Seconds of test pattern each publish sends.
const PUBLISH_SECONDS: u32 = 6;
/// Seconds of media each player reads.
const PLAY_SECONDS: u32 = 3;
/// The pattern is 25 fps and AAC at 44.1 kHz is ~43 frames/s; allow for a start that is not
/// exactly at the read window's edge.
const MIN_VIDEO_PER_SECOND: usize = 20;
const MIN_AUDIO_PER_SECOND: usize = 30;
const LIVE_TIMEOUT: Duration = Duration::from_secs(15);
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A server with ffmpeg publishing `tracks` to its channel, once the channel is live.
async fn live(tracks: Tracks) -> Option<(TestServer, Ffmpeg)> {
    if !require_ffmpeg() {
        return None;
    }
    let server = TestServer::start(|_| {}).await;
    let ffmpeg = Ffmpeg::publish(&server.publish_url(&server.key), PUBLISH_SECONDS, tracks);
    assert!(
        server.wait_live(&server.channel, LIVE_TIMEOUT).await,
        "the channel did not go live; ffmpeg said:\n{}",
        ffmpeg.stderr()
    );
    Some((server, ffmpeg))
}

fn assert_full_playback(what: &str, probe: &Probe) {
    let seconds = PLAY_SECONDS as usize;
    assert!(probe.success, "{what}: ffprobe failed: {probe:#?}");
    assert_eq!(
        probe.video_codec.as_deref(),
        Some("h264"),
        "{what}: {probe:#?}"
    );
    assert_eq!(
        probe.audio_codec.as_deref(),
        Some("aac"),
        "{what}: {probe:#?}"
    );
    assert!(
        probe.video_packets >= MIN_VIDEO_PER_SECOND * seconds,
        "{what}: too few video packets: {probe:#?}"
    );
    assert!(
        probe.audio_packets >= MIN_AUDIO_PER_SECOND * seconds,
        "{what}: too few audio packets: {probe:#?}"
    );
    assert!(
        probe.video_frames >= MIN_VIDEO_PER_SECOND * seconds,
        "{what}: too few decoded video frames: {probe:#?}"
    );
    assert!(
        probe.audio_frames >= MIN_AUDIO_PER_SECOND * seconds,
        "{what}: too few decoded audio frames: {probe:#?}"
    );
    assert_eq!(
        probe.first_video_packet_keyframe,
        Some(true),
        "{what}: playback must start on a keyframe: {probe:#?}"
    );
    assert_eq!(
        probe.first_video_frame_keyframe,
        Some(true),
        "{what}: {probe:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_playback_with_ffprobe_has_both_tracks_and_starts_on_a_keyframe() {
    let Some((server, _ffmpeg)) = live(Tracks::Both).await else {
        return;
    };
    let probe = ffprobe(
        &server.play_url(&server.channel),
        PLAY_SECONDS,
        PROBE_TIMEOUT,
    )
    .await;
    assert_full_playback("rtmp", &probe);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_flv_playback_with_ffprobe_has_both_tracks_and_starts_on_a_keyframe() {
    let Some((server, _ffmpeg)) = live(Tracks::Both).await else {
        return;
    };
    let probe = ffprobe(
        &server.flv_url(&server.channel),
        PLAY_SECONDS,
        PROBE_TIMEOUT,
    )
    .await;
    assert_full_playback("http-flv", &probe);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_flv_playback_has_both_tracks_and_starts_on_a_keyframe() {
    let Some((server, ffmpeg)) = live(Tracks::Both).await else {
        return;
    };
    let mut reader = FlvReader::ws(&server.ws_url(&server.channel), IO_TIMEOUT)
        .await
        .expect("ws-flv opens");
    let reading = reader
        .read_media(Duration::from_secs(PLAY_SECONDS.into()), PROBE_TIMEOUT)
        .await;
    assert_eq!(
        reading.end,
        End::Done,
        "ws-flv stopped early; ffmpeg said:\n{}",
        ffmpeg.stderr()
    );
    let header = reader.header().expect("an FLV header came first");
    assert!(header.has_audio && header.has_video, "{header:?}");
    let summary = TagSummary::of(&reading.tags);
    let seconds = PLAY_SECONDS as usize;
    assert_eq!(
        (summary.video_headers, summary.audio_headers),
        (1, 1),
        "{summary:?}"
    );
    assert!(
        summary.video_frames >= MIN_VIDEO_PER_SECOND * seconds,
        "{summary:?}"
    );
    assert!(
        summary.audio_frames >= MIN_AUDIO_PER_SECOND * seconds,
        "{summary:?}"
    );
    assert_eq!(summary.first_video_keyframe, Some(true), "{summary:?}");
    // Decoders need the configuration before the first frame of its track.
    let first_video = reading
        .tags
        .iter()
        .position(|t| t.kind == MediaKind::Video)
        .expect("video");
    assert!(
        reading.tags[first_video].sequence_header,
        "the first video tag is the AVC sequence header"
    );
    let first_audio = reading
        .tags
        .iter()
        .position(|t| t.kind == MediaKind::Audio)
        .expect("audio");
    assert!(
        reading.tags[first_audio].sequence_header,
        "the first audio tag is the AAC sequence header"
    );
    for kind in [MediaKind::Video, MediaKind::Audio] {
        assert_eq!(
            onair_e2e::flv::first_step_back(&reading.tags, kind),
            None,
            "{kind:?} timestamps go back"
        );
    }
}

/// The HTTP contract needs a live channel but not real media, so an in-process publisher
/// makes the channel live and the test runs without ffmpeg.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_flv_answers_with_flv_content_type_cors_and_404_when_not_live() {
    let server = TestServer::start(|c| c.http.cors_origins = vec!["*".into()]).await;
    let url = server.flv_url(&server.channel);

    let not_live = http::request("GET", &url, &[], IO_TIMEOUT)
        .await
        .expect("GET answers");
    assert_eq!(not_live.status, 404, "{:?}", not_live.headers);
    assert_eq!(
        not_live.header("content-type"),
        Some("application/problem+json")
    );
    let ws = tokio_tungstenite::connect_async(server.ws_url(&server.channel)).await;
    match ws {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 404),
        other => {
            panic!("WS-FLV of a channel that is not live must be refused with 404, got {other:?}")
        }
    }

    let _publisher = server
        .hub()
        .publish(&server.channel, PublishOptions::default())
        .expect("the channel is free");
    let origin = "https://player.example";
    let live = http::request("GET", &url, &[("Origin", origin)], IO_TIMEOUT)
        .await
        .expect("GET answers");
    assert_eq!(live.status, 200, "{:?}", live.headers);
    assert_eq!(
        live.header("content-type"),
        Some("video/x-flv"),
        "{:?}",
        live.headers
    );
    let allowed = live.header("access-control-allow-origin");
    assert!(
        allowed == Some("*") || allowed == Some(origin),
        "CORS origin: {:?}",
        live.headers
    );
    assert!(
        live.header("content-length").is_none(),
        "a live stream has no length: {:?}",
        live.headers
    );

    // flv.js fetches with a Range header from another origin, which needs a preflight.
    let preflight = http::request(
        "OPTIONS",
        &url,
        &[
            ("Origin", origin),
            ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Headers", "range"),
        ],
        IO_TIMEOUT,
    )
    .await
    .expect("OPTIONS answers");
    assert!(
        (200..300).contains(&preflight.status),
        "preflight status {}: {:?}",
        preflight.status,
        preflight.headers
    );
    let allowed = preflight.header("access-control-allow-origin");
    assert!(
        allowed == Some("*") || allowed == Some(origin),
        "{:?}",
        preflight.headers
    );
    let methods = preflight
        .header("access-control-allow-methods")
        .unwrap_or_default()
        .to_ascii_uppercase();
    assert!(
        methods.contains("GET"),
        "allow-methods: {:?}",
        preflight.headers
    );
    let headers = preflight
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        headers.contains("range") || headers == "*",
        "allow-headers: {:?}",
        preflight.headers
    );

    let other = http::request("GET", &server.flv_url("nobody-here"), &[], IO_TIMEOUT)
        .await
        .expect("GET answers");
    assert_eq!(other.status, 404);
}

async fn flv_header_of(tracks: Tracks) -> Option<(onair_flv::FlvHeader, TagSummary)> {
    let (server, ffmpeg) = live(tracks).await?;
    let (_, _, mut reader) = FlvReader::http(&server.flv_url(&server.channel), IO_TIMEOUT)
        .await
        .expect("http-flv opens");
    let reading = reader
        .read_media(Duration::from_secs(2), PROBE_TIMEOUT)
        .await;
    assert_eq!(
        reading.end,
        End::Done,
        "http-flv stopped early; ffmpeg said:\n{}",
        ffmpeg.stderr()
    );
    Some((
        reader.header().expect("an FLV header came first"),
        TagSummary::of(&reading.tags),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audio_only_publish_gets_an_audio_only_flv_header() {
    let Some((header, summary)) = flv_header_of(Tracks::AudioOnly).await else {
        return;
    };
    assert!(
        header.has_audio && !header.has_video,
        "flags must match the published tracks: {header:?}"
    );
    assert_eq!(
        (summary.video_headers, summary.video_frames),
        (0, 0),
        "{summary:?}"
    );
    assert!(
        summary.audio_frames >= MIN_AUDIO_PER_SECOND * 2,
        "{summary:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_only_publish_gets_a_video_only_flv_header() {
    let Some((header, summary)) = flv_header_of(Tracks::VideoOnly).await else {
        return;
    };
    assert!(
        !header.has_audio && header.has_video,
        "flags must match the published tracks: {header:?}"
    );
    assert_eq!(
        (summary.audio_headers, summary.audio_frames),
        (0, 0),
        "{summary:?}"
    );
    assert!(
        summary.video_frames >= MIN_VIDEO_PER_SECOND * 2,
        "{summary:?}"
    );
    assert_eq!(summary.first_video_keyframe, Some(true), "{summary:?}");
}
