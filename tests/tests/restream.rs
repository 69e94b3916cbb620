//! Restreaming with real parts: OnAir node A pushes a channel's live to a second OnAir node B
//! (its RTMP ingest with one of B's keys), as it would to a CDN. ffmpeg publishes to A, ffprobe
//! plays the channel on B; B is stopped and started again on the same port and the push
//! reconnects; a destination with a wrong key fails once, says why and is not retried.

use std::net::SocketAddr;
use std::time::Duration;

use onair::config::DevKey;
use onair::secret::StreamKey;
use onair_e2e::{
    Ffmpeg, TestServer, ffprobe, http, logs, random_name, require_ffmpeg, wait_until_async,
};
use onair_hub::Protocol;
use onair_store::{Channel, NewChannel, Role};
use serde_json::{Value, json};

const LIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Long enough for the back-off after B's restart (0.5 s, 1 s, 2 s, … between attempts).
const RECONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);
const PUBLISH_SECONDS: u32 = 120;

/// A streamer on A: the channel, a bearer token for the API, a stream key to publish with.
struct Streamer {
    channel: Channel,
    token: String,
    key: String,
}

async fn streamer(a: &TestServer) -> Streamer {
    let platform = a.platform();
    let owner = platform
        .create_user(&random_name("u"), "a good password", Role::Streamer)
        .await
        .expect("creating the streamer");
    let channel = platform
        .store()
        .create_channel(NewChannel {
            slug: random_name("ch"),
            title: "Restream test".into(),
            owner_id: owner.id,
            category: String::new(),
            tags: vec![],
        })
        .await
        .expect("creating the channel");
    let (token, _) = platform
        .issue_access_token(&owner)
        .await
        .expect("an access token");
    let key = platform
        .issue_stream_key(channel.id, "e2e", None)
        .await
        .expect("a stream key");
    Streamer {
        channel,
        token: token.expose().to_owned(),
        key: key.token.expose().to_owned(),
    }
}

/// One API call on `server`: the status and the JSON body (`Null` when there is none).
async fn api(
    server: &TestServer,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let stream = tokio::net::TcpStream::connect(server.http_addr)
        .await
        .expect("connect to A");
    let auth = format!("Bearer {token}");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let authority = server.http_addr.to_string();
    let response = http::request_with_body_on(
        stream,
        method,
        &authority,
        &format!("/api/v1{path}"),
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
        IO_TIMEOUT,
    )
    .await
    .expect("an answer");
    let status = response.status;
    let text = response.text(IO_TIMEOUT).await.expect("a body");
    let json = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    };
    (status, json)
}

fn restreams_path(s: &Streamer) -> String {
    format!("/channels/{}/restreams", s.channel.slug)
}

/// The destination `id` as A lists it.
async fn listed(a: &TestServer, s: &Streamer, id: i64) -> Value {
    let (status, list) = api(a, "GET", &restreams_path(s), &s.token, None).await;
    assert_eq!(status, 200, "{list}");
    list.as_array()
        .expect("a list")
        .iter()
        .find(|d| d["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("destination {id} not in {list}"))
}

async fn wait_state(a: &TestServer, s: &Streamer, id: i64, state: &str, within: Duration) -> Value {
    let last = std::sync::Mutex::new(Value::Null);
    let reached = wait_until_async(within, || {
        let last = &last;
        async move {
            let d = listed(a, s, id).await;
            let there = d["status"]["state"] == state;
            *last.lock().expect("not poisoned") = d;
            there
        }
    })
    .await;
    let last = last.into_inner().expect("not poisoned");
    assert!(reached, "destination {id} never {state}: {last}");
    last
}

/// B, an OnAir node taking the push on `channel` with `key` (a `[dev]` key), on `rtmp` (port
/// 0 for any).
async fn node_b(rtmp: SocketAddr, channel: &str, key: &str) -> TestServer {
    let (channel, key) = (channel.to_owned(), key.to_owned());
    TestServer::start(move |c| {
        c.rtmp.listen = rtmp;
        c.dev.keys = vec![DevKey {
            channel,
            key: StreamKey::new(key),
        }];
    })
    .await
}

fn assert_plays_from_a_keyframe(probe: &onair_e2e::Probe, what: &str) {
    println!(
        "{what}: {:?}/{:?}, {} video frames, {} audio frames, first video packet keyframe {:?}",
        probe.video_codec,
        probe.audio_codec,
        probe.video_frames,
        probe.audio_frames,
        probe.first_video_packet_keyframe
    );
    assert!(probe.success, "{what}: ffprobe failed: {}", probe.stderr);
    assert_eq!(probe.video_codec.as_deref(), Some("h264"), "{what}");
    assert_eq!(probe.audio_codec.as_deref(), Some("aac"), "{what}");
    assert!(
        probe.video_frames >= 25,
        "{what}: {} video frames",
        probe.video_frames
    );
    assert!(probe.audio_frames > 0, "{what}: no audio");
    assert_eq!(
        probe.first_video_packet_keyframe,
        Some(true),
        "{what}: starts on a keyframe"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_live_is_pushed_to_another_server_and_again_after_that_server_restarts() {
    if !require_ffmpeg() {
        return;
    }
    let captured = logs::capture();
    let b_channel = random_name("mirror");
    let b_key = random_name("b-key");
    let b = node_b(SocketAddr::from(([127, 0, 0, 1], 0)), &b_channel, &b_key).await;
    let b_rtmp = b.rtmp_addr;
    let a = TestServer::start(|c| c.restream.allow_private_addresses = true).await;
    let s = streamer(&a).await;

    let (status, created) = api(
        &a,
        "POST",
        &restreams_path(&s),
        &s.token,
        Some(json!({
            "name": "node B",
            "url": format!("rtmp://{b_rtmp}/live"),
            "stream_key": b_key,
        })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().expect("an id");
    let tail: String = b_key
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    assert_eq!(
        created["stream_key"],
        format!("****{tail}"),
        "only the key's end is shown"
    );
    assert_eq!(
        created["status"]["state"], "idle",
        "not live yet: {created}"
    );

    let mut ffmpeg = Ffmpeg::publish_test_pattern(&a.publish_url(&s.key), PUBLISH_SECONDS);
    assert!(
        a.wait_live(&s.channel.slug, LIVE_TIMEOUT).await,
        "A live: {}",
        ffmpeg.stderr()
    );
    assert!(
        b.wait_live(&b_channel, LIVE_TIMEOUT).await,
        "the push reaches B"
    );
    let live = wait_state(&a, &s, id, "live", LIVE_TIMEOUT).await;
    assert!(live["status"]["live_since"].is_string(), "{live}");
    assert_eq!(a.viewers(&s.channel.slug, Protocol::Restream), 1);
    assert_eq!(
        a.hub().viewer_count(&s.channel.slug),
        0,
        "a push is no viewer"
    );

    let probe = ffprobe(&b.play_url(&b_channel), 3, PROBE_TIMEOUT).await;
    assert_plays_from_a_keyframe(&probe, "B, first connection");
    let sent = listed(&a, &s, id).await["status"]["bytes_sent"]
        .as_u64()
        .expect("bytes_sent");
    assert!(sent > 10_000, "{sent} bytes sent");

    // B goes away: the push retries with the reason shown.
    assert!(b.shutdown().await, "B stops");
    let retrying = wait_state(&a, &s, id, "retrying", LIVE_TIMEOUT).await;
    let error = retrying["status"]["last_error"].as_str().expect("an error");
    assert!(!error.contains(&b_key), "the key is not in {error:?}");

    // B is back on the same port: the push reconnects by itself.
    let b = node_b(b_rtmp, &b_channel, &b_key).await;
    assert!(
        b.wait_live(&b_channel, RECONNECT_TIMEOUT).await,
        "the push reconnects to the new B"
    );
    wait_state(&a, &s, id, "live", LIVE_TIMEOUT).await;
    let probe = ffprobe(&b.play_url(&b_channel), 3, PROBE_TIMEOUT).await;
    assert_plays_from_a_keyframe(&probe, "B, after the reconnect");
    assert!(a.metric("onair_restream_connects_total").await >= Some(2.0));
    assert!(a.metric("onair_restream_failures_total").await >= Some(1.0));

    // A new URL for the same server while live: the push restarts, the old connection gone
    // before the new one publishes, so B never sees the key twice and refuses it.
    let connects = a
        .metric("onair_restream_connects_total")
        .await
        .expect("a count");
    let failures = a.metric("onair_restream_failures_total").await;
    let (status, moved) = api(
        &a,
        "PATCH",
        &format!("{}/{id}", restreams_path(&s)),
        &s.token,
        Some(json!({ "url": format!("rtmp://localhost:{}/live", b_rtmp.port()) })),
    )
    .await;
    assert_eq!(status, 200, "{moved}");
    assert!(
        wait_until_async(LIVE_TIMEOUT, || async {
            a.metric("onair_restream_connects_total").await > Some(connects)
        })
        .await,
        "the push publishes again"
    );
    wait_state(&a, &s, id, "live", LIVE_TIMEOUT).await;
    assert_eq!(
        a.metric("onair_restream_failures_total").await,
        failures,
        "no refusal"
    );
    assert!(b.hub().is_live(&b_channel));

    // Disabled while live: the push stops and B goes offline.
    let (status, patched) = api(
        &a,
        "PATCH",
        &format!("{}/{id}", restreams_path(&s)),
        &s.token,
        Some(json!({ "enabled": false })),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert!(
        onair_e2e::wait_until(LIVE_TIMEOUT, || !b.hub().is_live(&b_channel)).await,
        "B's live ends with the push"
    );
    wait_state(&a, &s, id, "idle", LIVE_TIMEOUT).await;
    assert_eq!(a.viewers(&s.channel.slug, Protocol::Restream), 0);

    ffmpeg.kill().await;
    assert!(
        captured.containing(&b_key).is_empty(),
        "the target key reached the logs: {:?}",
        captured.containing(&b_key)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_destination_that_refuses_the_key_fails_once_and_says_why() {
    if !require_ffmpeg() {
        return;
    }
    let b = node_b(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        &random_name("mirror"),
        &random_name("b-key"),
    )
    .await;
    let a = TestServer::start(|c| c.restream.allow_private_addresses = true).await;
    let s = streamer(&a).await;
    let mut ffmpeg = Ffmpeg::publish_test_pattern(&a.publish_url(&s.key), PUBLISH_SECONDS);
    assert!(
        a.wait_live(&s.channel.slug, LIVE_TIMEOUT).await,
        "A live: {}",
        ffmpeg.stderr()
    );

    // Added while A is live, so its push starts at once.
    let wrong = random_name("wrong-key");
    let (status, created) = api(
        &a,
        "POST",
        &restreams_path(&s),
        &s.token,
        Some(json!({
            "name": "wrong key",
            "url": format!("rtmp://{}/live", b.rtmp_addr),
            "stream_key": wrong,
        })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().expect("an id");
    let failed = wait_state(&a, &s, id, "failed", LIVE_TIMEOUT).await;
    let error = failed["status"]["last_error"].as_str().expect("an error");
    assert!(
        error.contains("NetStream.Publish"),
        "a clear reason: {error:?}"
    );
    assert!(!error.contains(&wrong), "the key is not in {error:?}");

    // No retry storm: after A has carried two more seconds of media, B has still refused
    // exactly one publish and A counted one failure.
    assert!(
        a.wait_media(&s.channel.slug, Duration::from_secs(2), 25, LIVE_TIMEOUT)
            .await,
        "A keeps going"
    );
    assert_eq!(b.metric("onair_publishes_refused_total").await, Some(1.0));
    assert_eq!(a.metric("onair_restream_failures_total").await, Some(1.0));
    assert_eq!(listed(&a, &s, id).await["status"]["state"], "failed");

    // Deleting it ends the failed push.
    let (status, _) = api(
        &a,
        "DELETE",
        &format!("{}/{id}", restreams_path(&s)),
        &s.token,
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert!(
        onair_e2e::wait_until(LIVE_TIMEOUT, || a
            .viewers(&s.channel.slug, Protocol::Restream)
            == 0)
        .await,
        "no push left"
    );
    ffmpeg.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_rtmps_destination_is_reached_over_tls_and_a_private_one_is_refused_by_default() {
    if !require_ffmpeg() {
        return;
    }
    let ca = onair_e2e::tls::TestCa::new();
    let dir = onair_e2e::binary::TempDir::new("onair-restream-tls");
    let cert = ca.issue(dir.path(), "b");
    let (b_channel, b_key) = (random_name("mirror"), random_name("b-key"));
    let files = cert.clone();
    let (channel, key) = (b_channel.clone(), b_key.clone());
    let b = TestServer::start(move |c| {
        c.tls.certificate = Some(files.certificate);
        c.tls.private_key = Some(files.private_key);
        c.dev.keys = vec![DevKey {
            channel,
            key: StreamKey::new(key),
        }];
    })
    .await;
    let rtmps = b.rtmps_addr.expect("B listens for RTMPS");
    // A trusts the test CA (the chain file holds it) and may reach loopback.
    let ca_file = cert.certificate.clone();
    let a = TestServer::start(move |c| {
        c.restream.allow_private_addresses = true;
        c.restream.ca_file = Some(ca_file);
    })
    .await;
    let s = streamer(&a).await;
    let (status, tls) = api(
        &a,
        "POST",
        &restreams_path(&s),
        &s.token,
        Some(json!({
            "name": "B over TLS",
            "url": format!("rtmps://localhost:{}/live", rtmps.port()),
            "stream_key": b_key,
        })),
    )
    .await;
    assert_eq!(status, 201, "{tls}");
    let mut ffmpeg = Ffmpeg::publish_test_pattern(&a.publish_url(&s.key), PUBLISH_SECONDS);
    assert!(
        a.wait_live(&s.channel.slug, LIVE_TIMEOUT).await,
        "A live: {}",
        ffmpeg.stderr()
    );
    assert!(
        b.wait_live(&b_channel, LIVE_TIMEOUT).await,
        "the push reaches B over RTMPS"
    );
    wait_state(&a, &s, tls["id"].as_i64().unwrap(), "live", LIVE_TIMEOUT).await;
    let probe = ffprobe(&b.play_url(&b_channel), 3, PROBE_TIMEOUT).await;
    assert_plays_from_a_keyframe(&probe, "B over RTMPS");
    ffmpeg.kill().await;

    // A server with the default configuration does not connect into its own network.
    let heard = b.metric("onair_rtmp_connections_total").await;
    let strict = TestServer::start(|_| {}).await;
    let s = streamer(&strict).await;
    let (status, private) = api(
        &strict,
        "POST",
        &restreams_path(&s),
        &s.token,
        Some(json!({
            "name": "loopback",
            "url": format!("rtmp://{}/live", b.rtmp_addr),
            "stream_key": random_name("k"),
        })),
    )
    .await;
    assert_eq!(status, 201, "{private}");
    let mut ffmpeg = Ffmpeg::publish_test_pattern(&strict.publish_url(&s.key), PUBLISH_SECONDS);
    assert!(
        strict.wait_live(&s.channel.slug, LIVE_TIMEOUT).await,
        "live: {}",
        ffmpeg.stderr()
    );
    let failed = wait_state(
        &strict,
        &s,
        private["id"].as_i64().unwrap(),
        "failed",
        LIVE_TIMEOUT,
    )
    .await;
    let error = failed["status"]["last_error"].as_str().expect("an error");
    assert!(
        error.contains("restream.allow_private_addresses"),
        "{error:?}"
    );
    assert_eq!(
        b.metric("onair_rtmp_connections_total").await,
        heard,
        "B heard nothing of the refused push"
    );
    ffmpeg.kill().await;
}
