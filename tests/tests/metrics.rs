//! `/metrics` as Prometheus scrapes it (parsed with a Prometheus text-format parser): counters
//! move with real traffic, the bearer token is enforced, the dashboard queries only metrics
//! that exist; viewer caps and RTMP connection caps refuse clearly; SIGTERM mid-live ends the
//! replay and closes its rows.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use onair_client::{ClientError, ClientOptions, RtmpClient, RtmpUrl};
use onair_e2e::binary::{Launch, OnairProcess, TempDir, parse_bootstrap};
use onair_e2e::flv::End;
use onair_e2e::{Ffmpeg, FlvReader, TestServer, http, require_ffmpeg, wait_until_async};
use prometheus_parse::{Sample, Scrape, Value};

const LIVE_TIMEOUT: Duration = Duration::from_secs(20);
const IO_TIMEOUT: Duration = Duration::from_secs(5);
const TOKEN: &str = "metrics-token-for-the-test-0123456789";

/// One scrape of `/metrics` with `token`, parsed.
async fn scrape(server: &TestServer, token: Option<&str>) -> Scrape {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    let response = http::request("GET", &server.http_url("/metrics"), &headers, IO_TIMEOUT)
        .await
        .expect("GET /metrics answers");
    assert_eq!(response.status, 200, "/metrics with the token");
    let text = response.text(IO_TIMEOUT).await.expect("the metrics text");
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text format")
}

/// The value of the sample `name` whose labels include `labels`; a histogram gives its count.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(sample_value)
}

fn sample_value(s: &Sample) -> f64 {
    match &s.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        Value::Histogram(buckets) => buckets
            .iter()
            .find(|b| b.less_than.is_infinite())
            .map_or(0.0, |b| b.count),
        Value::Summary(_) => f64::NAN,
    }
}

fn get(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    value(scrape, name, labels).unwrap_or_else(|| panic!("no sample {name}{labels:?} in /metrics"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_with_traffic_behind_the_bearer_token() {
    if !require_ffmpeg() {
        return;
    }
    let server = TestServer::start(|c| {
        c.http.metrics_token = Some(onair::secret::SecretText::new(TOKEN.into()));
    })
    .await;
    let url = server.http_url("/metrics");
    for headers in [
        vec![],
        vec![("Authorization", "Bearer wrong-token")],
        vec![("Authorization", TOKEN)],
    ] {
        let response = http::request("GET", &url, &headers, IO_TIMEOUT)
            .await
            .unwrap();
        assert_eq!(
            response.status, 401,
            "without the right bearer token: {headers:?}"
        );
        assert!(
            response
                .header("www-authenticate")
                .is_some_and(|v| v.starts_with("Bearer"))
        );
    }

    let before = scrape(&server, Some(TOKEN)).await;
    assert_eq!(get(&before, "onair_channels_live", &[]), 0.0);

    // A refused publish, counted under its reason.
    let bad = RtmpUrl::parse(&server.publish_url("not-a-key-of-ours")).unwrap();
    let mut refused = RtmpClient::connect(&bad, &ClientOptions::default())
        .await
        .unwrap();
    assert!(matches!(
        refused.publish().await,
        Err(ClientError::Rejected { .. })
    ));

    let mut publisher = Ffmpeg::publish_test_pattern(&server.publish_url(&server.key), 60);
    assert!(
        server.wait_live(&server.channel, LIVE_TIMEOUT).await,
        "not live; ffmpeg said:\n{}",
        publisher.stderr()
    );
    let (_, _, mut viewer) = FlvReader::http(&server.flv_url(&server.channel), IO_TIMEOUT)
        .await
        .expect("http-flv opens");
    let read = viewer
        .read_until(LIVE_TIMEOUT, |tags| tags.len() >= 30)
        .await;
    assert_eq!(read.end, End::Done, "the viewer plays");
    // Store calls, timed at the store: the channel list reads the database.
    let channels = http::request("GET", &server.http_url("/api/v1/channels"), &[], IO_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(channels.status, 200);
    // A chat socket and an HLS request, counted under their protocols.
    let owner = server
        .platform()
        .create_user("metrics_owner", "password-123", onair_store::Role::Streamer)
        .await
        .unwrap();
    let room = server
        .platform()
        .store()
        .create_channel(onair_store::NewChannel {
            slug: "metrics-room".into(),
            title: "metrics".into(),
            owner_id: owner.id,
            category: String::new(),
            tags: vec![],
        })
        .await
        .unwrap();
    let chat_url = format!(
        "ws://{}/api/v1/channels/{}/chat",
        server.http_addr, room.slug
    );
    let (chat, _) = tokio::time::timeout(IO_TIMEOUT, tokio_tungstenite::connect_async(&chat_url))
        .await
        .expect("the chat socket opens in time")
        .expect("the chat socket opens");
    let hls = format!("/live/{}/index.m3u8", server.channel);
    http::request("GET", &server.http_url(&hls), &[], IO_TIMEOUT)
        .await
        .expect("the HLS playlist answers");

    let during = scrape(&server, Some(TOKEN)).await;
    let grew = |name: &str, labels: &[(&str, &str)]| {
        let (a, b) = (
            value(&before, name, labels).unwrap_or(0.0),
            get(&during, name, labels),
        );
        assert!(b > a, "{name}{labels:?} did not grow: {a} -> {b}");
    };
    assert_eq!(get(&during, "onair_channels_live", &[]), 1.0);
    assert_eq!(
        get(&during, "onair_viewers", &[("protocol", "http-flv")]),
        1.0
    );
    assert_eq!(
        get(
            &during,
            "onair_connections_open",
            &[("protocol", "http-flv")]
        ),
        1.0
    );
    assert!(get(&during, "onair_connections_open", &[("protocol", "rtmp")]) >= 1.0);
    grew("onair_bytes_in_total", &[]);
    grew("onair_bytes_out_total", &[("protocol", "http-flv")]);
    grew("onair_connections_total", &[("protocol", "http-flv")]);
    grew("onair_connections_total", &[("protocol", "rtmp")]);
    grew("onair_connections_total", &[("protocol", "chat")]);
    grew("onair_connections_total", &[("protocol", "hls")]);
    assert_eq!(
        get(&during, "onair_connections_open", &[("protocol", "chat")]),
        1.0
    );
    grew("onair_publish_refusals_total", &[("reason", "unknown_key")]);
    grew("onair_publishes_refused_total", &[]);
    grew(
        "onair_http_request_duration_seconds",
        &[("route", "/metrics")],
    );
    grew(
        "onair_http_request_duration_seconds",
        &[("route", "/api/v1/channels")],
    );
    grew("onair_store_call_duration_seconds", &[]);
    assert!(
        during
            .samples
            .iter()
            .filter(|s| s.metric == "onair_http_request_duration_seconds")
            .all(|s| !s
                .labels
                .get("route")
                .unwrap_or("")
                .contains(&server.channel)),
        "routes are templates, never raw paths"
    );

    // Every metric the Grafana dashboard queries is one /metrics serves.
    let dashboard = dashboard_metric_names();
    assert!(dashboard.len() >= 10, "the dashboard queries {dashboard:?}");
    let served: std::collections::HashSet<&str> =
        during.samples.iter().map(|s| s.metric.as_str()).collect();
    let missing: Vec<_> = dashboard
        .iter()
        .filter(|m| {
            let base = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|suffix| m.strip_suffix(suffix))
                .unwrap_or(m);
            !served.contains(m.as_str()) && !served.contains(base)
        })
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics /metrics lacks: {missing:?}"
    );

    drop((viewer, chat));
    publisher.kill().await;
    server.shutdown().await;
}

/// The metric names (`onair_…`) in the expressions of `deploy/grafana/onair.json`.
fn dashboard_metric_names() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana/onair.json");
    let text = std::fs::read_to_string(&path).expect("deploy/grafana/onair.json");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    collect_exprs(&doc, &mut exprs);
    let mut names: Vec<String> = exprs
        .iter()
        .flat_map(|e| {
            e.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("onair_"))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

fn collect_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(e)) => out.push(e.clone()),
                    _ => collect_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_past_the_channel_cap_are_refused_with_a_reason() {
    if !require_ffmpeg() {
        return;
    }
    let server = TestServer::start(|c| c.hub.max_viewers_per_channel = 1).await;
    let mut publisher = Ffmpeg::publish_test_pattern(&server.publish_url(&server.key), 60);
    assert!(
        server.wait_live(&server.channel, LIVE_TIMEOUT).await,
        "not live; ffmpeg said:\n{}",
        publisher.stderr()
    );
    let flv = server.flv_url(&server.channel);
    let (_, _, mut first) = FlvReader::http(&flv, IO_TIMEOUT)
        .await
        .expect("the first viewer");
    let read = first.read_until(LIVE_TIMEOUT, |tags| tags.len() >= 5).await;
    assert_eq!(read.end, End::Done);

    let second = http::request("GET", &flv, &[], IO_TIMEOUT).await.unwrap();
    assert_eq!(second.status, 503, "a second HTTP-FLV viewer is refused");
    let retry: u64 = second
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds");
    assert!(retry >= 1);
    let body = second.text(IO_TIMEOUT).await.unwrap();
    assert!(body.contains("full"), "the refusal says why: {body}");
    let ws = FlvReader::ws(&server.ws_url(&server.channel), IO_TIMEOUT).await;
    assert!(ws.is_err(), "a WS-FLV viewer is refused before the upgrade");

    let play = RtmpUrl::parse(&server.play_url(&server.channel)).unwrap();
    let mut rtmp = RtmpClient::connect(&play, &ClientOptions::default())
        .await
        .unwrap();
    match rtmp.play().await {
        Err(ClientError::Rejected { code, description }) => {
            assert_eq!(code, "NetStream.Play.Failed");
            assert!(description.contains("full"), "{description}");
        }
        other => panic!("an RTMP viewer past the cap is refused, not {other:?}"),
    }
    let scraped = scrape(&server, None).await;
    assert_eq!(
        get(
            &scraped,
            "onair_viewers_refused_total",
            &[("protocol", "http-flv")]
        ),
        1.0
    );
    assert_eq!(
        get(
            &scraped,
            "onair_viewers_refused_total",
            &[("protocol", "ws-flv")]
        ),
        1.0
    );
    assert_eq!(
        get(
            &scraped,
            "onair_viewers_refused_total",
            &[("protocol", "rtmp")]
        ),
        1.0
    );

    // A reload (SIGHUP's work) raises the cap at once, without a restart.
    let mut raised = server.state().config.clone();
    raised.hub.max_viewers_per_channel = 2;
    let reload = server.reload(&raised);
    assert!(
        reload.needs_restart.is_empty(),
        "the cap is applied live: {:?}",
        reload.needs_restart
    );
    let (_, _, _second) = FlvReader::http(&flv, IO_TIMEOUT)
        .await
        .expect("a second viewer gets in under the raised cap");
    let third = http::request("GET", &flv, &[], IO_TIMEOUT).await.unwrap();
    assert_eq!(third.status, 503, "a third is past the raised cap");

    // The first viewer leaving makes room.
    drop(first);
    let reopened = wait_until_async(LIVE_TIMEOUT, || {
        let flv = flv.clone();
        async move { FlvReader::http(&flv, IO_TIMEOUT).await.is_ok() }
    })
    .await;
    assert!(reopened, "a viewer gets in once the first one left");
    publisher.kill().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_connections_past_the_per_address_cap_are_refused_by_onstatus_and_counted() {
    let server = TestServer::start(|c| c.rtmp.max_connections_per_address = 1).await;
    let url = RtmpUrl::parse(&server.play_url(&server.channel)).unwrap();
    let options = ClientOptions::default();
    let _first = RtmpClient::connect(&url, &options)
        .await
        .expect("the first connection");
    // Past the cap a client is told why when it asks to play or publish, then closed.
    let mut second = RtmpClient::connect(&url, &options)
        .await
        .expect("a refused client still gets through connect");
    match second.play().await {
        Err(ClientError::Rejected { code, description }) => {
            assert_eq!(code, "NetStream.Play.Failed");
            assert!(
                description.contains("too many RTMP connections from your address")
                    && description.contains("maximum is 1"),
                "{description}"
            );
        }
        other => panic!("a play past the cap is refused, not {other:?}"),
    }
    let publish = RtmpUrl::parse(&server.publish_url(&server.key)).unwrap();
    let mut third = RtmpClient::connect(&publish, &options)
        .await
        .expect("connect");
    match third.publish().await {
        Err(ClientError::Rejected { code, description }) => {
            assert_eq!(code, "NetStream.Publish.Denied");
            assert!(description.contains("retry later"), "{description}");
        }
        other => panic!("a publish past the cap is refused, not {other:?}"),
    }
    assert!(
        !server.hub().is_live(&server.channel),
        "the refused publish never went live"
    );
    let scraped = scrape(&server, None).await;
    assert_eq!(
        get(
            &scraped,
            "onair_rtmp_connections_refused_total",
            &[("reason", "max_per_address")]
        ),
        2.0
    );
    assert_eq!(
        get(&scraped, "onair_connections_open", &[("protocol", "rtmp")]),
        1.0
    );
    server.shutdown().await;
}

/// SIGTERM to the real binary while a publisher is live and recording: the process exits
/// within `shutdown_grace`, the replay's playlist is ended, and the live-session and
/// recording rows are closed (read from its SQLite file once it has exited).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_live_ends_the_replay_and_closes_its_rows() {
    if !require_ffmpeg() {
        return;
    }
    let grace = Duration::from_secs(5);
    let data = TempDir::new("sigterm");
    let launch = Launch::default().env("ONAIR_SHUTDOWN_GRACE", "5s");
    let server = OnairProcess::launch(data.path(), &launch).await;
    let (_, key) = parse_bootstrap(&server.bootstrap_block().await);
    let mut publisher = Ffmpeg::publish_test_pattern(&server.publish_url(&key), 120);
    let playlist = server.http_url("/live/demo/index.m3u8");
    let s = &server;
    let recording = wait_until_async(LIVE_TIMEOUT, || {
        let playlist = playlist.clone();
        async move {
            http::get_text(&playlist, IO_TIMEOUT)
                .await
                .is_ok_and(|t| t.matches("#EXTINF").count() >= 2)
        }
    })
    .await;
    assert!(
        recording,
        "no live HLS segments; ffmpeg said:\n{}\nonair said:\n{}",
        publisher.stderr(),
        s.stderr()
    );

    let stopping = Instant::now();
    let (_, stderr) = server.stop().await;
    let took = stopping.elapsed();
    assert!(
        took < grace + Duration::from_secs(2),
        "onair took {took:?} to exit after SIGTERM (grace {grace:?}):\n{stderr}"
    );
    publisher.kill().await;

    let store = onair_store::Store::open_default(data.path())
        .await
        .expect("the data dir's database");
    assert!(
        store.open_live_sessions().await.unwrap().is_empty(),
        "every live-session row is ended"
    );
    let demo = store
        .channel_by_slug("demo")
        .await
        .unwrap()
        .expect("the demo channel");
    let (sessions, _) = store
        .list_live_sessions(
            demo.id,
            onair_store::Page {
                offset: 0,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        sessions.len(),
        1,
        "the publish had its session row: {sessions:?}"
    );
    let session = &sessions[0];
    assert!(
        session.ended_at.is_some() && session.bytes_in > 0,
        "the session row is closed with its figures: {session:?}"
    );
    assert!(
        store.unfinished_recordings().await.unwrap().is_empty(),
        "no recording is left unfinished"
    );
    let (recordings, _) = store
        .recent_recordings(onair_store::Page {
            offset: 0,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(recordings.len(), 1, "{recordings:?}");
    let rec = &recordings[0];
    assert_eq!(rec.state, onair_store::RecordingState::Finished, "{rec:?}");
    assert!(rec.ended_at.is_some() && rec.duration_ms > 0, "{rec:?}");
    let index = replay_index(data.path(), &rec.path);
    let text = std::fs::read_to_string(&index).unwrap_or_else(|e| panic!("{index:?}: {e}"));
    assert!(
        text.contains("#EXT-X-ENDLIST"),
        "the replay's playlist is ended:\n{text}"
    );
    assert!(text.contains("#EXTINF"), "{text}");
}

/// The replay playlist of the recording at `path` (relative to the recordings directory).
fn replay_index(data_dir: &Path, path: &str) -> PathBuf {
    data_dir.join("recordings").join(path).join("index.m3u8")
}
