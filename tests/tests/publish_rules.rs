//! Who may publish, and what viewers see when publishers come, collide and go: a second
//! publisher is refused while the first keeps streaming, a wrong key makes nothing playable,
//! an RTMP viewer that arrives first waits for the publisher, and a viewer stays with a
//! channel through a republish with every track's timestamps still monotonic.

use std::time::Duration;

use onair_e2e::flv::{End, Reading, first_step_back, largest_gap};
use onair_e2e::{
    Ffmpeg, FlvReader, TagSummary, TestServer, ffprobe, http, require_ffmpeg, wait_until,
};
use onair_hub::Protocol;
use onair_media::MediaKind;
use tokio::task::JoinHandle;
use tokio::time::Instant;

const LIVE_TIMEOUT: Duration = Duration::from_secs(15);
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a whole viewer session in these tests may take.
const VIEW_TIMEOUT: Duration = Duration::from_secs(40);
/// The largest step between consecutive video timestamps of a viewer that lost nothing:
/// frames are 40 ms apart at 25 fps.
const MAX_VIDEO_STEP_MS: u32 = 120;

/// Plays HTTP-FLV until the server ends the stream (bounded by [`VIEW_TIMEOUT`]).
async fn view_until_end(url: String) -> JoinHandle<Reading> {
    let (_, _, mut reader) = FlvReader::http(&url, IO_TIMEOUT)
        .await
        .expect("http-flv opens");
    tokio::spawn(async move { reader.read_until(VIEW_TIMEOUT, |_| false).await })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_publisher_is_refused_and_the_first_keeps_streaming() {
    if !require_ffmpeg() {
        return;
    }
    let server = TestServer::start(|c| c.hub.republish_grace = Duration::from_secs(1)).await;
    let url = server.publish_url(&server.key);
    let mut first = Ffmpeg::publish_test_pattern(&url, 6);
    assert!(
        server.wait_live(&server.channel, LIVE_TIMEOUT).await,
        "not live; ffmpeg said:\n{}",
        first.stderr()
    );
    let viewer = view_until_end(server.flv_url(&server.channel)).await;

    let mut second = Ffmpeg::publish_test_pattern(&url, 3);
    let status = second
        .wait(EXIT_TIMEOUT)
        .await
        .expect("the refused ffmpeg exits");
    let refused_at = Instant::now();
    let said = second.stderr();
    assert!(
        !status.success(),
        "the second publish must fail; ffmpeg said:\n{said}"
    );
    assert!(
        said.contains("already live"),
        "ffmpeg should show why (the BadName description):\n{said}"
    );
    assert!(
        first.is_running(),
        "the first publisher must keep going; it said:\n{}",
        first.stderr()
    );
    assert_eq!(
        server.metric("onair_publishes_refused_total").await,
        Some(1.0)
    );

    let status = first
        .wait(EXIT_TIMEOUT)
        .await
        .expect("the first ffmpeg finishes");
    assert!(
        status.success(),
        "the first publish must end normally; ffmpeg said:\n{}",
        first.stderr()
    );
    let reading = viewer.await.expect("viewer task");
    assert_eq!(
        reading.end,
        End::Closed,
        "the stream ends after the publisher and the grace"
    );
    let after: Vec<_> = reading
        .tags
        .iter()
        .filter(|t| t.received > refused_at)
        .cloned()
        .collect();
    let summary = TagSummary::of(&after);
    assert!(
        summary.video_frames >= 40,
        "the viewer must keep receiving after the refusal: {summary:?}"
    );
    assert!(
        largest_gap(&reading.tags, MediaKind::Video) <= MAX_VIDEO_STEP_MS,
        "the viewer lost video frames around the refusal"
    );
    let whole = TagSummary::of(&reading.tags);
    assert_eq!(
        whole.video_headers, 1,
        "one publish only reached the viewer: {whole:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_refused_and_nothing_becomes_playable() {
    if !require_ffmpeg() {
        return;
    }
    let server = TestServer::start(|_| {}).await;
    let wrong_key = onair_e2e::random_name("key");
    let mut ffmpeg = Ffmpeg::publish_test_pattern(&server.publish_url(&wrong_key), 3);
    let status = ffmpeg
        .wait(EXIT_TIMEOUT)
        .await
        .expect("the refused ffmpeg exits");
    let said = ffmpeg.stderr();
    assert!(
        !status.success(),
        "a wrong key must be refused; ffmpeg said:\n{said}"
    );
    assert!(
        said.contains("unknown stream key"),
        "ffmpeg should show why:\n{said}"
    );

    assert!(
        server.hub().live_channels().is_empty(),
        "{:?}",
        server.hub().live_channels()
    );
    for name in [server.channel.as_str(), wrong_key.as_str()] {
        let response = http::request("GET", &server.flv_url(name), &[], IO_TIMEOUT)
            .await
            .expect("GET answers");
        assert_eq!(response.status, 404, "{name} must not be playable");
    }
    assert_eq!(
        server.metric("onair_publishes_refused_total").await,
        Some(1.0)
    );
    assert_eq!(server.metric("onair_channels_live").await, Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rtmp_viewer_that_arrives_before_the_publisher_gets_the_stream() {
    if !require_ffmpeg() {
        return;
    }
    let server = TestServer::start(|c| c.hub.wait_for_publisher = Duration::from_secs(20)).await;
    let play_url = server.play_url(&server.channel);
    let probe = tokio::spawn(async move { ffprobe(&play_url, 3, Duration::from_secs(40)).await });
    // ffprobe's play subscribes to the idle channel, which creates its hub entry.
    assert!(
        wait_until(LIVE_TIMEOUT, || server.hub().channel_count() == 1).await,
        "ffprobe never started waiting on the channel"
    );
    assert!(!server.hub().is_live(&server.channel));

    let ffmpeg = Ffmpeg::publish_test_pattern(&server.publish_url(&server.key), 6);
    let probe = probe.await.expect("ffprobe task");
    assert!(
        probe.success,
        "ffprobe failed: {probe:#?}\nffmpeg said:\n{}",
        ffmpeg.stderr()
    );
    assert_eq!(
        (probe.video_codec.as_deref(), probe.audio_codec.as_deref()),
        (Some("h264"), Some("aac"))
    );
    assert!(
        probe.video_packets >= 60 && probe.audio_packets >= 90,
        "{probe:#?}"
    );
    assert_eq!(probe.first_video_packet_keyframe, Some(true), "{probe:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_stays_through_a_republish_with_monotonic_timestamps() {
    if !require_ffmpeg() {
        return;
    }
    let server = TestServer::start(|c| c.hub.republish_grace = Duration::from_secs(4)).await;
    let url = server.publish_url(&server.key);
    let mut first = Ffmpeg::publish_test_pattern(&url, 4);
    assert!(
        server.wait_live(&server.channel, LIVE_TIMEOUT).await,
        "not live; ffmpeg said:\n{}",
        first.stderr()
    );
    let viewer = view_until_end(server.flv_url(&server.channel)).await;
    assert!(
        wait_until(IO_TIMEOUT, || server
            .viewers(&server.channel, Protocol::HttpFlv)
            == 1)
        .await
    );

    let status = first
        .wait(EXIT_TIMEOUT)
        .await
        .expect("the first publish finishes");
    assert!(
        status.success(),
        "first publish failed:\n{}",
        first.stderr()
    );
    assert!(
        wait_until(IO_TIMEOUT, || !server.hub().is_live(&server.channel)).await,
        "the channel must go idle when its publisher leaves"
    );
    let mut second = Ffmpeg::publish_test_pattern(&url, 4);
    assert!(
        server.wait_live(&server.channel, LIVE_TIMEOUT).await,
        "not live again; ffmpeg said:\n{}",
        second.stderr()
    );
    assert_eq!(
        server.viewers(&server.channel, Protocol::HttpFlv),
        1,
        "the viewer must still be there when the publisher returns"
    );
    let status = second
        .wait(EXIT_TIMEOUT)
        .await
        .expect("the second publish finishes");
    assert!(
        status.success(),
        "second publish failed:\n{}",
        second.stderr()
    );

    let reading = viewer.await.expect("viewer task");
    assert_eq!(
        reading.end,
        End::Closed,
        "the stream ends after the second publish and the grace"
    );
    let summary = TagSummary::of(&reading.tags);
    assert_eq!(
        (summary.video_headers, summary.audio_headers),
        (2, 2),
        "both publishes, each with its own sequence headers, reach the viewer: {summary:?}"
    );
    for kind in [MediaKind::Video, MediaKind::Audio] {
        assert_eq!(
            first_step_back(&reading.tags, kind),
            None,
            "{kind:?} timestamps went back across the republish"
        );
    }
    let second_header = reading
        .tags
        .iter()
        .rposition(|t| t.kind == MediaKind::Video && t.sequence_header)
        .expect("a second video sequence header");
    let after = TagSummary::of(&reading.tags[second_header..]);
    assert!(
        after.video_frames >= 60,
        "the second publish's frames reached the viewer: {after:?}"
    );
    assert_eq!(after.first_video_keyframe, Some(true), "{after:?}");
}
