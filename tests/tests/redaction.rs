//! Keys never reach the logs (after str0m's `tests/pii.rs`): every line any crate logs, at
//! TRACE, during an accepted publish with a watched stream, a refused publish with a wrong
//! key and `/metrics` scrapes with the right and a wrong bearer token, is searched for both
//! keys and both tokens; an RTMP VOD play with an access token in its name is searched for
//! that token.
//!
//! The capture is the process's global subscriber, shared by the tests of this binary; each
//! test searches for its own random keys only, so they may run in parallel.

use std::time::Duration;

use onair_e2e::flv::End;
use onair_e2e::{Ffmpeg, FlvReader, TestServer, ffprobe, http, logs, random_name, require_ffmpeg};

const LIVE_TIMEOUT: Duration = Duration::from_secs(15);
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);
const IO_TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_stream_key_reaches_the_logs() {
    if !require_ffmpeg() {
        return;
    }
    let captured = logs::capture();
    let metrics_token = random_name("metrics-token");
    let server = TestServer::start(|c| {
        c.hub.republish_grace = Duration::from_secs(1);
        c.http.metrics_token = Some(onair::secret::SecretText::new(metrics_token.clone()));
    })
    .await;
    let key = server.key.clone();
    let wrong_key = random_name("key");
    // A scrape with the metrics token and one with a wrong one: neither may be logged.
    let wrong_token = random_name("metrics-token");
    for (token, status) in [(&metrics_token, 200), (&wrong_token, 401)] {
        let auth = format!("Bearer {token}");
        let response = http::request(
            "GET",
            &server.http_url("/metrics"),
            &[("Authorization", &auth)],
            IO_TIMEOUT,
        )
        .await
        .expect("GET /metrics answers");
        assert_eq!(response.status, status);
    }

    let mut publisher = Ffmpeg::publish_test_pattern(&server.publish_url(&key), 4);
    assert!(
        server.wait_live(&server.channel, LIVE_TIMEOUT).await,
        "not live; ffmpeg said:\n{}",
        publisher.stderr()
    );
    let (_, _, mut viewer) = FlvReader::http(&server.flv_url(&server.channel), IO_TIMEOUT)
        .await
        .expect("http-flv");
    let watching =
        tokio::spawn(async move { viewer.read_until(Duration::from_secs(30), |_| false).await });

    let mut refused = Ffmpeg::publish_test_pattern(&server.publish_url(&wrong_key), 2);
    let status = refused
        .wait(EXIT_TIMEOUT)
        .await
        .expect("the refused ffmpeg exits");
    assert!(
        !status.success(),
        "the wrong key must be refused:\n{}",
        refused.stderr()
    );

    let status = publisher
        .wait(EXIT_TIMEOUT)
        .await
        .expect("the publisher finishes");
    assert!(status.success(), "{}", publisher.stderr());
    let reading = watching.await.expect("viewer task");
    assert_eq!(reading.end, End::Closed);
    let channel = server.channel.clone();
    server.shutdown().await;

    let lines = captured.lines();
    // The capture must have seen the server at work, or finding no key would prove nothing.
    for expected in [
        "publish started",
        "publish refused",
        "http-flv viewer joined",
        "publish stopped",
    ] {
        assert!(
            lines.iter().any(|l| l.contains(expected)),
            "no {expected:?} line was captured"
        );
    }
    assert!(
        lines.iter().any(|l| l.contains(&channel)),
        "logs name the channel"
    );
    for secret in [&key, &wrong_key, &metrics_token, &wrong_token] {
        let leaks = captured.containing(secret);
        assert!(
            leaks.is_empty(),
            "a stream key or metrics token reached the logs in {} line(s):\n{}",
            leaks.len(),
            leaks.join("\n")
        );
    }
}

/// Streamers paste their key where the play name goes (a player URL, `ffplay
/// rtmp://…/live/KEY`). The key is still a secret then: the HTTP request line and the RTMP
/// play name must not be logged verbatim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_used_as_a_play_name_stays_out_of_the_logs() {
    if !require_ffmpeg() {
        return;
    }
    let captured = logs::capture();
    let server = TestServer::start(|c| c.hub.wait_for_publisher = Duration::from_secs(1)).await;
    let key = server.key.clone();

    let response = http::request("GET", &server.flv_url(&key), &[], IO_TIMEOUT)
        .await
        .expect("GET answers");
    assert_eq!(response.status, 404, "a key is not a playable channel");
    // A key is refused as a play name (NetStream.Play.StreamNotFound), which ends ffprobe.
    let probe = ffprobe(&server.play_url(&key), 1, Duration::from_secs(15)).await;
    assert_eq!(probe.video_packets + probe.audio_packets, 0, "{probe:#?}");
    server.shutdown().await;

    let lines = captured.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("play refused: the play name is a stream key")),
        "the capture saw the RTMP play refused"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("http play refused: the name is a stream key")),
        "the capture saw the HTTP play refused"
    );
    let leaks = captured.containing(&key);
    assert!(
        leaks.is_empty(),
        "a stream key used as a play name reached the logs in {} line(s):\n{}",
        leaks.len(),
        leaks.join("\n")
    );
}

/// A publisher that leaves the application out (`rtmp://host/KEY`) sends its key as the app
/// (ffmpeg and OBS split the path that way). The refusal must not echo it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_sent_as_the_application_stays_out_of_the_logs() {
    if !require_ffmpeg() {
        return;
    }
    let captured = logs::capture();
    let server = TestServer::start(|_| {}).await;
    let key = server.key.clone();
    let url = format!("rtmp://{}/{key}", server.rtmp_addr);
    let mut refused = Ffmpeg::publish_test_pattern(&url, 2);
    let status = refused
        .wait(EXIT_TIMEOUT)
        .await
        .expect("the refused ffmpeg exits");
    assert!(
        !status.success(),
        "a publish without the app is refused:\n{}",
        refused.stderr()
    );
    assert!(!server.hub().is_live(&server.channel));
    server.shutdown().await;

    assert!(
        captured
            .lines()
            .iter()
            .any(|l| l.contains("publish refused") && l.contains("unknown application")),
        "the capture saw the refusal"
    );
    let leaks = captured.containing(&key);
    assert!(
        leaks.is_empty(),
        "a key sent as the app reached the logs in {} line(s):\n{}",
        leaks.len(),
        leaks.join("\n")
    );
}

/// A private video is played over RTMP with the owner's access token in the stream name
/// (`rtmp://host/vod/ID?token=…`): neither that token nor a refused one reaches the logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_access_token_in_a_vod_play_name_stays_out_of_the_logs() {
    if !require_ffmpeg() {
        return;
    }
    let captured = logs::capture();
    let server = TestServer::start(|_| {}).await;
    let platform = server.platform();
    let owner = platform
        .create_user(
            &random_name("owner"),
            "correct horse battery staple",
            onair_store::Role::Streamer,
        )
        .await
        .expect("an owner");
    let channel = platform
        .store()
        .create_channel(onair_store::NewChannel {
            slug: random_name("vod"),
            title: "VOD".into(),
            owner_id: owner.id,
            category: String::new(),
            tags: vec![],
        })
        .await
        .expect("a channel");
    let path = format!("{}/v", channel.slug);
    let dir = server.recordings_dir.join(&path);
    std::fs::create_dir_all(&dir).expect("the video directory");
    std::fs::copy(onair_e2e::vod::shared_media_flv(), dir.join("media.flv")).expect("media.flv");
    let video = platform
        .store()
        .create_video(onair_store::NewVideo {
            channel_id: channel.id,
            path,
            title: "private".into(),
            visibility: onair_store::Visibility::Private,
            ..onair_store::NewVideo::default()
        })
        .await
        .expect("a video");
    let (token, _) = platform.issue_access_token(&owner).await.expect("a token");
    let wrong = random_name("not-a-token");
    let play = |secret: String| {
        let url = format!(
            "rtmp://{}/vod/{}?token={secret}",
            server.rtmp_addr, video.id
        );
        async move {
            let url = onair_client::RtmpUrl::parse(&url).expect("a URL");
            let options = onair_client::ClientOptions::default();
            let mut client = onair_client::RtmpClient::connect(&url, &options)
                .await
                .expect("connecting");
            client.play_range(0.0, -1.0).await
        }
    };
    assert!(
        play(token.expose().to_owned()).await.is_ok(),
        "the owner plays"
    );
    assert!(
        play(wrong.clone()).await.is_err(),
        "a wrong token is refused"
    );
    server.shutdown().await;

    assert!(
        captured
            .lines()
            .iter()
            .any(|l| l.contains("rtmp vod viewer joined")),
        "the capture saw the play"
    );
    for secret in [token.expose(), wrong.as_str()] {
        let leaks = captured.containing(secret);
        assert!(
            leaks.is_empty(),
            "a VOD play token reached the logs in {} line(s):\n{}",
            leaks.len(),
            leaks.join("\n")
        );
    }
}
