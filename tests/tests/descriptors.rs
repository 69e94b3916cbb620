//! 2000 idle HTTP connections against the real binary started under a 1024 open-file soft
//! limit (issue #18: 1100 were enough to stop all HTTP and lose replay segments). The server
//! raises its soft limit towards the hard one and says so; whether it can or not, `/healthz`
//! answers, an HTTP-FLV viewer keeps playing and a new one starts, and the recorder writes
//! every segment, because idle connections make room for new ones and connections never
//! take the descriptors kept for recordings.
//!
//! The child gets its limit from util-linux's `prlimit`; the test process raises its own
//! soft limit to hold the 2000 client sockets.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use onair_e2e::binary::{Launch, OnairProcess, TempDir, parse_bootstrap};
use onair_e2e::flv::End;
use onair_e2e::{Ffmpeg, FlvReader, http, require_ffmpeg, require_program, wait_until_async};
use tokio::net::TcpStream;

const IDLE_CONNECTIONS: usize = 2000;
/// Client addresses the idle connections come from: 200 each, under the per-address cap.
const ADDRESSES: u8 = 10;
const LIVE_TIMEOUT: Duration = Duration::from_secs(20);
const BOUND: Duration = Duration::from_secs(30);

/// The live playlist's newest segment name.
async fn newest_segment(server: &OnairProcess) -> Option<String> {
    let text = http::get_text(&server.http_url("/live/demo/index.m3u8"), BOUND)
        .await
        .ok()?;
    text.lines()
        .rev()
        .find(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(str::to_owned)
}

async fn metric(server: &OnairProcess, name: &str) -> f64 {
    let text = http::get_text(&server.http_url("/metrics"), BOUND)
        .await
        .expect("/metrics answers");
    onair_e2e::server::parse_metric(&text, name).unwrap_or(0.0)
}

/// The `fields` of the first JSON log line whose message is `message`.
fn log_fields(stderr: &str, message: &str) -> Option<serde_json::Value> {
    stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == message)
        .map(|v| v["fields"].clone())
}

async fn idle_flood_leaves_http_playback_and_recording_working(soft: u64, hard: u64) {
    if !require_ffmpeg() || require_program("prlimit", "--version").is_none() {
        return;
    }
    let own = onair::descriptors::raise_limit();
    assert!(
        own.soft >= 2 * IDLE_CONNECTIONS as u64 + 1000,
        "this test holds {IDLE_CONNECTIONS} sockets per case: its own open-file limit is {} (hard {})",
        own.soft,
        own.hard
    );
    let data = TempDir::new("idle-flood");
    let server = OnairProcess::launch(data.path(), &Launch::default().nofile(soft, hard)).await;
    let (_, key) = parse_bootstrap(&server.bootstrap_block().await);

    // The server saw the limit it was given and raised it where it could.
    let stderr = server.stderr();
    if hard > soft {
        let raised = log_fields(&stderr, "raised the open-file limit")
            .unwrap_or_else(|| panic!("no 'raised the open-file limit' line:\n{stderr}"));
        assert_eq!(raised["from"], soft, "{raised}");
        assert_eq!(raised["to"], hard, "{raised}");
    } else {
        let kept = log_fields(&stderr, "open-file limit")
            .unwrap_or_else(|| panic!("no 'open-file limit' line:\n{stderr}"));
        assert_eq!(kept["limit"], soft, "{kept}");
    }

    let mut ffmpeg = Ffmpeg::publish_test_pattern(&server.publish_url(&key), 120);
    let flv = server.flv_url("demo");
    let live = wait_until_async(LIVE_TIMEOUT, || {
        let flv = flv.clone();
        async move {
            http::request("GET", &flv, &[], BOUND)
                .await
                .is_ok_and(|r| r.status == 200)
        }
    })
    .await;
    assert!(live, "demo is not live; ffmpeg said:\n{}", ffmpeg.stderr());
    let (_, _, mut first_viewer) = FlvReader::http(&flv, BOUND).await.unwrap();
    let tags = Arc::new(AtomicUsize::new(0));
    let counted = tags.clone();
    let first = tokio::spawn(async move {
        while let Ok(Some(_)) = first_viewer.next_tag().await {
            counted.fetch_add(1, Ordering::Relaxed);
        }
    });
    let s = &server;
    let recorded = wait_until_async(
        LIVE_TIMEOUT,
        || async move { newest_segment(s).await.is_some() },
    )
    .await;
    assert!(recorded, "no live HLS segment");

    // The flood: connections that never send a byte.
    let http_addr: SocketAddr = server.http_addr.parse().unwrap();
    let mut idle: Vec<TcpStream> = Vec::with_capacity(IDLE_CONNECTIONS);
    for n in 0..IDLE_CONNECTIONS {
        let from = Ipv4Addr::new(127, 0, 0, 2 + (n % usize::from(ADDRESSES)) as u8);
        idle.push(
            http::connect_from(from, http_addr)
                .await
                .expect("the kernel accepts the connection into the backlog"),
        );
    }

    // With all of them held: health, a viewer already playing, a new viewer, recording.
    for _ in 0..6 {
        let response = http::request("GET", &server.http_url("/healthz"), &[], BOUND)
            .await
            .expect("/healthz answers during the flood");
        assert_eq!(response.status, 200);
    }
    let before = tags.load(Ordering::Relaxed);
    let (_, _, mut second_viewer) = FlvReader::http(&flv, BOUND)
        .await
        .expect("a new HTTP-FLV viewer starts during the flood");
    let reading = second_viewer
        .read_media(Duration::from_secs(2), BOUND)
        .await;
    assert_eq!(reading.end, End::Done, "the new viewer's stream stalled");
    assert!(
        tags.load(Ordering::Relaxed) > before + 25,
        "the first viewer's stream stalled"
    );
    let mut seen = newest_segment(&server).await;
    for _ in 0..2 {
        let last = seen.clone();
        let moved = wait_until_async(BOUND, || {
            let last = last.clone();
            async move {
                let now = newest_segment(s).await;
                now.is_some() && now != last
            }
        })
        .await;
        assert!(moved, "the live playlist stopped gaining segments");
        seen = newest_segment(&server).await;
    }
    let evicted = metric(&server, "onair_http_connections_evicted_total").await;
    let open = metric(&server, "onair_http_connections_open").await;
    println!(
        "limit {soft}:{hard}: {IDLE_CONNECTIONS} idle connections made, {evicted} evicted, {open} open"
    );
    assert!(
        evicted > 0.0,
        "2000 idle connections fit the budget: nothing was tested"
    );

    drop(idle);
    ffmpeg.kill().await;
    first.abort();
    let (_, stderr) = server.stop().await;
    for bad in [
        "cannot write segment",
        "cannot write the playlists",
        "http accept failed",
        "rtmp accept failed",
    ] {
        assert!(
            !stderr.contains(bad),
            "the server logged {bad:?}:\n{stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_under_a_1024_soft_limit_the_server_raises() {
    idle_flood_leaves_http_playback_and_recording_working(1024, 4096).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_under_a_1024_limit_that_cannot_be_raised() {
    idle_flood_leaves_http_playback_and_recording_working(1024, 1024).await;
}
