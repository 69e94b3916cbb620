//! The VOD catalogue end to end: a real live (ffmpeg publishing a test pattern for a few
//! seconds) becomes, once it stops, a video in the catalogue with a thumbnail decoded by
//! ffmpeg, served by the API.

use std::time::Duration;

use bytes::BytesMut;
use onair::config::Config;
use onair_e2e::http::request;
use onair_e2e::{Ffmpeg, TestServer, random_name, require_ffmpeg, wait_until_async};
use onair_store::{NewChannel, Role, VideoSearch, Visibility};

/// Longest any one wait may take; generous for a loaded CI machine.
const STEP: Duration = Duration::from_secs(40);

/// GETs `url` and reads the whole body.
async fn get(url: &str) -> (u16, Vec<u8>) {
    let mut response = request("GET", url, &[], STEP)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e:#}"));
    let mut body = BytesMut::new();
    while let Some(b) = response.body.next().await.expect("reading the body") {
        body.extend_from_slice(&b);
    }
    (response.status, body.to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_live_is_a_video_with_a_thumbnail() {
    if !require_ffmpeg() {
        return;
    }
    let server = TestServer::start(|_: &mut Config| {}).await;
    let platform = server.platform();
    let owner = platform
        .create_user(
            &random_name("owner"),
            "correct horse battery staple",
            Role::Streamer,
        )
        .await
        .expect("creating the owner");
    let slug = random_name("vod");
    let channel = platform
        .store()
        .create_channel(NewChannel {
            slug: slug.clone(),
            title: "VOD test".into(),
            owner_id: owner.id,
            category: String::new(),
            tags: vec![],
        })
        .await
        .expect("creating the channel");
    let key = platform
        .issue_stream_key(channel.id, "vod test", None)
        .await
        .expect("issuing a key");

    let mut ffmpeg = Ffmpeg::publish_test_pattern(&server.publish_url(key.token.expose()), 5);
    let status = ffmpeg.wait(STEP).await.expect("ffmpeg finished");
    assert!(status.success(), "ffmpeg failed:\n{}", ffmpeg.stderr());

    // Finalisation adds the video, then ffmpeg decodes its thumbnail.
    let store = platform.store().clone();
    let search = VideoSearch {
        channel_id: Some(channel.id),
        ..VideoSearch::default()
    };
    let made = wait_until_async(STEP, || {
        let (store, search) = (store.clone(), search.clone());
        async move {
            store
                .search_videos(&search, onair_store::Page::default())
                .await
                .is_ok_and(|(rows, _)| rows.first().is_some_and(|v| v.thumbnail.is_some()))
        }
    })
    .await;
    assert!(made, "the replay never became a video with a thumbnail");
    let (videos, total) = store
        .search_videos(&search, onair_store::Page::default())
        .await
        .unwrap();
    assert_eq!(total, 1, "{videos:?}");
    let video = &videos[0];
    assert_eq!(video.visibility, Visibility::Public);
    assert_eq!(video.video_codec.as_deref(), Some("h264"));
    assert!(
        (4000..=7000).contains(&video.duration_ms),
        "{} ms for a 5 s publish",
        video.duration_ms
    );
    assert!(video.recording_id.is_some());

    // The API lists it and serves the thumbnail, a real JPEG.
    let (status, body) = get(&server.http_url(&format!("/api/v1/videos?channel={slug}"))).await;
    assert_eq!(status, 200);
    let page: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(page["items"][0]["id"], video.id);
    let thumbnail = page["items"][0]["thumbnail"]
        .as_str()
        .expect("a thumbnail URL");
    let (status, jpeg) = get(&server.http_url(thumbnail)).await;
    assert_eq!(status, 200);
    assert!(
        jpeg.starts_with(&[0xFF, 0xD8, 0xFF]),
        "not a JPEG: {} bytes",
        jpeg.len()
    );
    server.shutdown().await;
}
