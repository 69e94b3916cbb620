//! The web app, served by the real server: client routes get the app's index (no-cache),
//! hashed assets are immutable, and the server's own paths (API, FLV, HLS, replays) answer as
//! they always did, never with the app's HTML. Then the app itself in Debian's headless
//! Chromium, driven by `tests/browser/web.mjs` (playwright-core), with ffmpeg publishing a
//! test pattern: the watch page plays, chat and danmaku cross between two browser contexts,
//! likes and gifts move the counters and the balance, `?player=hls` plays the live HLS
//! playlist and never the HTTP-FLV, an offline page turns live by itself,
//! a recorded live's replay page keeps its danmaku in step with seek and pause, the home
//! page's search, category chips, tag buttons and "Load more" ask the server, and a finished
//! live's video is on the videos page, plays, counts a view, takes a comment and its owner's edit.
//!
//! The browser tests need `/usr/bin/chromium`, `node` and `tests/browser/node_modules`
//! (`npm ci --prefix tests/browser`); skipped without them on a developer machine, failed
//! under `CI=true`. Screenshots go to `target/web-screenshots/`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use onair::config::Config;
use onair_e2e::ffmpeg::TEST_PATTERN_FPS as FPS;
use onair_e2e::http::request;
use onair_e2e::{Ffmpeg, TestServer, require, require_ffmpeg, wait_until_async};
use onair_store::{NewChannel, Page, RecordingState, Role, Visibility};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio_tungstenite::tungstenite::Message;

const T: Duration = Duration::from_secs(5);

async fn get(server: &TestServer, path: &str) -> (u16, Option<String>, Option<String>, String) {
    let r = request("GET", &server.http_url(path), &[], T)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = r.status;
    let content_type = r.header("content-type").map(str::to_owned);
    let cache = r.header("cache-control").map(str::to_owned);
    let body = r.text(T).await.unwrap_or_default();
    (status, content_type, cache, body)
}

#[tokio::test]
async fn the_server_serves_the_app_beside_its_own_routes() {
    let server = TestServer::start(|_| {}).await;

    let mut asset = None;
    for path in [
        "/",
        "/watch/demo",
        "/replays/7",
        "/videos/7",
        "/dashboard",
        "/admin",
        "/login",
    ] {
        let (status, content_type, cache, body) = get(&server, path).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(
            content_type.as_deref(),
            Some("text/html; charset=utf-8"),
            "{path}"
        );
        assert_eq!(cache.as_deref(), Some("no-cache"), "{path}");
        assert!(body.contains("<div id=\"app\">"), "{path}: {body}");
        asset = body
            .split('"')
            .find(|s| s.starts_with("/assets/") && s.ends_with(".js"))
            .map(str::to_owned);
    }
    let asset = asset.expect("the index names a hashed script");
    let (status, content_type, cache, _) = get(&server, &asset).await;
    assert_eq!(status, 200, "{asset}");
    assert_eq!(
        content_type.as_deref(),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(
        cache.as_deref(),
        Some("public, max-age=31536000, immutable")
    );

    // The server's own paths: what they answered before the app existed.
    let (status, content_type, _, _) = get(&server, "/api/v1/no-such-thing").await;
    assert_eq!(status, 404);
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    let (status, content_type, _, body) = get(&server, "/api/v1/channels?live=true").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(content_type.as_deref(), Some("application/json"));
    let (status, _, _, body) = get(&server, "/api/openapi.json").await;
    assert_eq!(status, 200);
    assert!(body.contains("\"openapi\""));
    for path in [
        "/live/nobody.flv",
        "/live/nobody/index.m3u8",
        "/replays/7/index.m3u8",
        "/replays/7/0.ts",
        "/replays/7/x/y",
        "/videos/7.flv",
        "/videos/7/index.m3u8",
        "/videos/7/x/y",
        "/assets/gone-00000000.js",
    ] {
        let (status, content_type, _, body) = get(&server, path).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_ne!(
            content_type.as_deref(),
            Some("text/html; charset=utf-8"),
            "{path} must never get the app"
        );
    }
    let (status, _, _, body) = get(&server, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    server.shutdown().await;
}

const CHROMIUM: &str = "/usr/bin/chromium";
/// Longer than any run: ffmpeg is killed when the test ends.
const PUBLISH_SECONDS: u32 = 180;
const LIVE_TIMEOUT: Duration = Duration::from_secs(15);
/// web.mjs's bound for each wait (ms), and the whole run's.
const STEP_TIMEOUT_MS: u64 = 20_000;
const NODE_TIMEOUT: Duration = Duration::from_secs(120);
const PASSWORD: &str = "password-123";

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// Where the screenshots go: a test artefact folder of the build's target directory.
fn screenshots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    target.join("web-screenshots")
}

fn browser_ready() -> bool {
    let ffmpeg = require_ffmpeg();
    let chromium = require("chromium", "", Path::new(CHROMIUM).exists());
    let node = require(
        "node",
        "",
        std::process::Command::new("node")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
    );
    let modules = require(
        "tests/browser/node_modules",
        " (run npm ci in tests/browser)",
        browser_dir().join("node_modules/playwright-core").is_dir(),
    );
    ffmpeg && chromium && node && modules
}

/// A live channel with a stored key, accounts to watch it with, and ffmpeg publishing.
struct Stage {
    server: TestServer,
    slug: String,
    channel_id: i64,
    key: String,
}

impl Stage {
    async fn new() -> Stage {
        Stage::with(|_| {}).await
    }

    async fn with(configure: impl FnOnce(&mut Config)) -> Stage {
        let server = TestServer::start(|c: &mut Config| {
            // A database file, as a real install has, rather than the harness's in-memory
            // one, which lives in one connection and is gone (every later query a 500) if
            // the pool ever replaces it: the suspected cause, not proven, of the 500s two
            // scenarios met in 2 of 4 loaded runs. Kept in the recordings directory the
            // server owns, so it goes with it.
            let dir = c
                .hls
                .recordings_dir
                .clone()
                .expect("the harness gives each server its own recordings directory");
            std::fs::create_dir_all(&dir).expect("creating the recordings directory");
            let db = dir.join(".web-test.db");
            c.storage.database_url = Some(onair::secret::SecretText::new(format!(
                "sqlite://{}?mode=rwc",
                db.display()
            )));
            configure(c);
        })
        .await;
        let platform = server.platform();
        let host = platform
            .create_user("host", PASSWORD, Role::Streamer)
            .await
            .expect("create the streamer");
        let slug = "studio".to_owned();
        let channel = platform
            .store()
            .create_channel(NewChannel {
                slug: slug.clone(),
                title: "Studio test pattern".into(),
                owner_id: host.id,
                category: "tests".into(),
                tags: vec!["pattern".into()],
            })
            .await
            .expect("create the channel");
        let key = platform
            .issue_stream_key(channel.id, "OBS", None)
            .await
            .expect("issue a key")
            .token
            .expose()
            .to_owned();
        for (name, coins) in [("viewer", 100), ("fan", 0)] {
            let user = platform
                .create_user(name, PASSWORD, Role::Viewer)
                .await
                .expect("create a viewer");
            if coins > 0 {
                platform
                    .store()
                    .credit_wallet(user.id, coins, None, "test")
                    .await
                    .expect("credit the wallet");
            }
        }
        platform
            .create_user("root", PASSWORD, Role::Admin)
            .await
            .expect("create the admin");
        Stage {
            server,
            slug,
            channel_id: channel.id,
            key,
        }
    }

    fn publish(&self) -> Ffmpeg {
        Ffmpeg::publish_test_pattern(&self.server.publish_url(&self.key), PUBLISH_SECONDS)
    }
}

/// Publishes and waits for the channel to be live.
async fn live_stage() -> (Stage, Ffmpeg) {
    let stage = Stage::new().await;
    let ffmpeg = stage.publish();
    assert!(
        stage.server.wait_live(&stage.slug, LIVE_TIMEOUT).await,
        "the channel did not go live; ffmpeg said:\n{}",
        ffmpeg.stderr()
    );
    (stage, ffmpeg)
}

/// Runs one web.mjs scenario; `on_event` sees each event line as it comes (to start a publish
/// when the page is ready for it). Returns the final result line.
async fn scenario(stage: &Stage, name: &str, on_event: impl FnMut(&Value)) -> (bool, Value) {
    scenario_with(stage, name, &[], on_event).await
}

/// [`scenario`] with more `--name value` arguments for web.mjs.
async fn scenario_with(
    stage: &Stage,
    name: &str,
    extra: &[&str],
    mut on_event: impl FnMut(&Value),
) -> (bool, Value) {
    let out = screenshots_dir();
    let mut child = Command::new("node")
        .arg(browser_dir().join("web.mjs"))
        .args(["--base", &stage.server.http_url("")])
        .args(["--scenario", name, "--slug", &stage.slug])
        .args(extra)
        .arg("--out")
        .arg(&out)
        .args(["--user", &format!("viewer:{PASSWORD}")])
        .args(["--user2", &format!("fan:{PASSWORD}")])
        .args(["--streamer", &format!("host:{PASSWORD}")])
        .args(["--admin", &format!("root:{PASSWORD}")])
        .args(["--chromium", CHROMIUM, "--timeout"])
        .arg(STEP_TIMEOUT_MS.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start node");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut last = None;
    let mut seen = Vec::new();
    let read = async {
        while let Ok(Some(line)) = lines.next_line().await {
            seen.push(line.clone());
            let Ok(value) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if value.get("done").is_some() {
                last = Some(value);
            } else {
                on_event(&value);
            }
        }
    };
    if tokio::time::timeout(NODE_TIMEOUT, read).await.is_err() {
        panic!(
            "web.mjs {name} still running after {NODE_TIMEOUT:?}; it printed:\n{}",
            seen.join("\n")
        );
    }
    let output = child.wait_with_output().await.expect("node runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let result = last.unwrap_or_else(|| {
        panic!(
            "web.mjs {name} printed no result\nstdout:\n{}\nstderr:\n{stderr}",
            seen.join("\n")
        )
    });
    (output.status.success(), result)
}

fn number(v: &Value, path: &[&str]) -> f64 {
    let mut v = v;
    for p in path {
        v = &v[*p];
    }
    v.as_f64().unwrap_or(f64::NAN)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_page_plays_and_carries_chat_danmaku_likes_and_gifts() {
    if !browser_ready() {
        return;
    }
    let stage = Stage::new().await;
    let ffmpeg = stage.publish();
    assert!(
        stage.server.wait_live(&stage.slug, LIVE_TIMEOUT).await,
        "the channel did not go live; ffmpeg said:\n{}",
        ffmpeg.stderr()
    );
    let (exited_ok, r) = scenario(&stage, "watch", |e| println!("event: {e}")).await;
    println!("watch: {r}");
    assert!(
        exited_ok && r["ok"] == true,
        "the watch scenario failed: {r}"
    );
    assert!(number(&r, &["playback", "currentTime"]) > 3.0, "{r}");
    assert!(number(&r, &["playback", "decodedFrames"]) > 60.0, "{r}");
    assert_eq!(number(&r, &["playback", "width"]), 320.0, "{r}");
    assert_eq!(r["tech"], "http-flv", "HTTP-FLV where MSE plays it: {r}");
    assert_eq!(r["chat_seen"], true, "{r}");
    assert_eq!(r["danmaku_over_video"], true, "{r}");
    assert!(number(&r, &["likes_seen_by_other"]) >= 3.0, "{r}");
    assert_eq!(number(&r, &["balance_before"]), 100.0, "{r}");
    assert_eq!(number(&r, &["balance_after"]), 95.0, "a rose costs 5: {r}");
    assert_eq!(r["gift_seen_by_other"], true, "{r}");
    assert_eq!(r["errors"], Value::Array(vec![]), "page errors: {r}");
    assert_eq!(r["console"], Value::Array(vec![]), "console errors: {r}");
    println!(
        "watch page: first frame {} ms after navigation start (HTTP-FLV, target < 1000 ms); \
         currentTime > 3 s {} ms after load; stats shown: {}",
        r["first_frame_ms"], r["wall_ms_to_3s"], r["stats_text"]
    );
    drop(ffmpeg);
    stage.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_page_with_player_hls_plays_the_live_hls_playlist() {
    if !browser_ready() {
        return;
    }
    let (stage, ffmpeg) = live_stage().await;
    let playlist = stage
        .server
        .http_url(&format!("/live/{}/index.m3u8", stage.slug));
    // hls.js starts a few segments back from the live edge; with fewer listed it would wait
    // for more, and the page's first frame would measure our segmenter instead of the page.
    let ready = wait_until_async(LIVE_TIMEOUT, || async {
        onair_e2e::http::get_text(&playlist, T)
            .await
            .is_ok_and(|t| t.matches("#EXTINF").count() >= 3)
    })
    .await;
    assert!(
        ready,
        "the live playlist never listed 3 segments; ffmpeg said:\n{}",
        ffmpeg.stderr()
    );
    let (exited_ok, r) = scenario(&stage, "watch-hls", |e| println!("event: {e}")).await;
    println!("watch-hls: {r}");
    assert!(
        exited_ok && r["ok"] == true,
        "the watch page did not play HLS: {r}"
    );
    assert_eq!(r["tech"], "hls.js", "{r}");
    assert!(number(&r, &["advanced_s"]) > 3.0, "{r}");
    assert!(number(&r, &["playback", "decodedFrames"]) > 60.0, "{r}");
    assert_eq!(number(&r, &["playback", "width"]), 320.0, "{r}");
    assert_eq!(
        r["playlists"],
        json!([format!("/live/{}/index.m3u8", stage.slug)]),
        "{r}"
    );
    assert!(number(&r, &["segments"]) >= 1.0, "{r}");
    assert_eq!(
        r["flv_requests"],
        Value::Array(vec![]),
        "?player=hls never asks for HTTP-FLV: {r}"
    );
    assert!(
        r["stats_text"].as_str().is_some_and(|t| t.contains("HLS")),
        "the stats say HLS: {r}"
    );
    assert_eq!(r["errors"], Value::Array(vec![]), "page errors: {r}");
    assert_eq!(r["console"], Value::Array(vec![]), "console errors: {r}");
    println!(
        "watch page over HLS: first frame {} ms after navigation start, at {} s into the \
         playlist; 3 s more played {} ms after load; {} segments fetched; stats shown: {}",
        r["first_frame_ms"], r["start_s"], r["wall_ms_to_3s"], r["segments"], r["stats_text"]
    );
    drop(ffmpeg);
    stage.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_watch_page_turns_live_by_itself_when_publishing_starts() {
    if !browser_ready() {
        return;
    }
    let stage = Stage::new().await;
    let mut ffmpeg = None;
    let (exited_ok, r) = scenario(&stage, "offline", |e| {
        println!("event: {e}");
        if e["event"] == "offline" && ffmpeg.is_none() {
            ffmpeg = Some(stage.publish());
        }
    })
    .await;
    println!("offline: {r}");
    assert!(ffmpeg.is_some(), "the page never showed offline: {r}");
    assert!(
        exited_ok && r["ok"] == true,
        "the page did not turn live: {r}"
    );
    assert!(number(&r, &["playback", "currentTime"]) > 1.0, "{r}");
    assert_eq!(r["errors"], Value::Array(vec![]), "page errors: {r}");
    assert_eq!(r["console"], Value::Array(vec![]), "console errors: {r}");
    println!(
        "offline -> live: playing {} ms after publishing was started",
        r["live_after_ms"]
    );
    drop(ffmpeg);
    stage.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_live_and_a_rotated_key_stops_the_old_publish() {
    if !browser_ready() {
        return;
    }
    let (stage, ffmpeg) = live_stage().await;
    let (exited_ok, r) = scenario(&stage, "dashboard", |e| println!("event: {e}")).await;
    println!("dashboard: {r}");
    assert!(
        exited_ok && r["ok"] == true,
        "the dashboard scenario failed: {r}"
    );
    assert_eq!(r["key_hidden"], true, "the new key starts hidden: {r}");
    assert_eq!(r["key_revealed"], true, "{r}");
    assert_eq!(r["old_publish_stopped"], true, "{r}");
    assert!(
        !stage.server.hub().is_live(&stage.slug),
        "the old key's publish still runs after the rotation"
    );
    assert_eq!(r["errors"], Value::Array(vec![]), "page errors: {r}");
    assert_eq!(r["console"], Value::Array(vec![]), "console errors: {r}");
    drop(ffmpeg);
    stage.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_console_kicks_a_publisher_and_the_watch_page_shows_offline() {
    if !browser_ready() {
        return;
    }
    let (stage, ffmpeg) = live_stage().await;
    let (exited_ok, r) = scenario(&stage, "admin", |e| println!("event: {e}")).await;
    println!("admin: {r}");
    assert!(
        exited_ok && r["ok"] == true,
        "the admin scenario failed: {r}"
    );
    assert_eq!(r["viewer_offline"], true, "{r}");
    assert_eq!(r["audit_shows_kick"], true, "{r}");
    assert_eq!(r["errors"], Value::Array(vec![]), "page errors: {r}");
    assert_eq!(r["console"], Value::Array(vec![]), "console errors: {r}");
    drop(ffmpeg);
    stage.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_is_refused_with_a_wrong_password_kept_across_reloads_and_ended_by_logout() {
    if !browser_ready() {
        return;
    }
    let stage = Stage::new().await;
    let (exited_ok, r) = scenario(&stage, "auth", |e| println!("event: {e}")).await;
    println!("auth: {r}");
    assert!(
        exited_ok && r["ok"] == true,
        "the auth scenario failed: {r}"
    );
    assert_eq!(r["wrong_password_refused"], true, "{r}");
    assert_eq!(r["signed_in_as"], "Vviewer", "avatar initial and name: {r}");
    assert_eq!(r["kept_after_reload"], true, "{r}");
    assert_eq!(r["signed_out_after_reload"], true, "{r}");
    assert_eq!(r["errors"], Value::Array(vec![]), "page errors: {r}");
    stage.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_fits_a_phone_width_without_horizontal_scroll() {
    if !browser_ready() {
        return;
    }
    let (stage, ffmpeg) = live_stage().await;
    let (exited_ok, r) = scenario(&stage, "phone", |e| println!("event: {e}")).await;
    println!("phone: {r}");
    let pages = r["pages"].as_object().cloned().unwrap_or_default();
    for (name, p) in &pages {
        println!(
            "phone {name}: scrollWidth {} / clientWidth {} ({})",
            p["scroll"], p["client"], p["screenshot"]
        );
    }
    assert!(pages.len() >= 7, "every page was visited: {r}");
    assert!(
        exited_ok && r["ok"] == true,
        "a page scrolls sideways at 375 px: {r}"
    );
    assert_eq!(r["errors"], Value::Array(vec![]), "page errors: {r}");
    drop(ffmpeg);
    stage.server.shutdown().await;
}

/// `POST` of `body` to the API at `path` as `token` (none: anonymous); the status and body.
async fn post_api(stage: &Stage, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    let (status, _, text) = onair_e2e::http::post_json_from(
        std::net::Ipv4Addr::LOCALHOST,
        stage.server.http_addr,
        path,
        &body.to_string(),
        &headers,
        T,
    )
    .await
    .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_home_page_searches_filters_and_pages_on_the_server() {
    if !browser_ready() {
        return;
    }
    let stage = Stage::new().await;
    let (status, login) = post_api(
        &stage,
        "/api/v1/auth/login",
        None,
        &json!({ "username": "host", "password": PASSWORD }),
    )
    .await;
    assert_eq!(status, 200, "{login}");
    let token = login["access_token"].as_str().expect("a token").to_owned();
    let mut channels = vec![
        json!({ "slug": "chess-club", "title": "Sunday blitz", "category": "Board Games", "tags": ["chess"] }),
        json!({ "slug": "lofi-radio", "title": "Beats to study to", "category": "Music", "tags": ["chill"] }),
        json!({ "slug": "speedrun-zone", "title": "Any% attempts", "category": "Games", "tags": ["speedrun", "en"] }),
    ];
    // More matches of one search than a page holds: 24 cards, then "Load more".
    for n in 0..26 {
        channels
            .push(json!({ "slug": format!("bulk-{n:02}"), "title": format!("Bulk channel {n}") }));
    }
    for channel in &channels {
        let (status, body) = post_api(&stage, "/api/v1/me/channels", Some(&token), channel).await;
        assert_eq!(status, 201, "{body}");
    }
    let bulk: Vec<String> = (0..26).map(|n| format!("bulk-{n:02}")).collect();
    let more_shows = bulk.join(",");
    let (exited_ok, r) = scenario_with(
        &stage,
        "search",
        &[
            "--query",
            "BLITZ",
            "--query-shows",
            "chess-club",
            "--category",
            "Music",
            "--category-shows",
            "lofi-radio",
            "--tag",
            "speedrun",
            "--tag-shows",
            "speedrun-zone",
            "--more",
            "bulk",
            "--more-first",
            "24",
            "--more-shows",
            &more_shows,
        ],
        |e| println!("event: {e}"),
    )
    .await;
    println!("search: {r}");
    assert!(
        exited_ok && r["ok"] == true,
        "the search scenario failed: {r}"
    );
    assert_eq!(r["query"], json!(["chess-club"]), "typed text: {r}");
    assert_eq!(r["category"], json!(["lofi-radio"]), "category chip: {r}");
    assert_eq!(r["category_pressed"], "true", "{r}");
    assert_eq!(r["tag"], json!(["speedrun-zone"]), "tag button: {r}");
    assert_eq!(r["tag_box"], "#speedrun", "{r}");
    assert_eq!(r["tag_url"], "?tag=speedrun", "{r}");
    assert_eq!(
        r["tag_reloaded"],
        json!(["speedrun-zone"]),
        "after a reload: {r}"
    );
    assert_eq!(r["tag_box_reloaded"], "#speedrun", "{r}");
    assert_eq!(r["browse_box"], "", "Browse clears the search: {r}");
    assert!(
        r["no_match"]
            .as_str()
            .is_some_and(|t| t.contains("nothing-is-called-this")),
        "{r}"
    );
    assert_eq!(r["more_first"], 24, "{r}");
    assert_eq!(r["more"], json!(bulk), "load more, oldest first: {r}");
    assert_eq!(r["more_button_left"], 0, "{r}");
    assert_eq!(r["errors"], Value::Array(vec![]), "page errors: {r}");
    assert_eq!(r["console"], Value::Array(vec![]), "console errors: {r}");
    stage.server.shutdown().await;
}

/// Sends danmaku over the chat WebSocket as `user`, each acknowledged by its broadcast.
struct DanmakuSender(
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
);

impl DanmakuSender {
    async fn signed_in(stage: &Stage, user: &str) -> DanmakuSender {
        let platform = stage.server.platform();
        let user = platform
            .create_user(user, PASSWORD, Role::Viewer)
            .await
            .expect("create the danmaku sender");
        let (token, _) = platform
            .issue_access_token(&user)
            .await
            .expect("issue an access token");
        let url = format!(
            "ws://{}/api/v1/channels/{}/chat",
            stage.server.http_addr, stage.slug
        );
        let (socket, _) = tokio::time::timeout(T, tokio_tungstenite::connect_async(url))
            .await
            .expect("the chat socket connects within 5 s")
            .expect("the chat socket opens");
        let mut sender = DanmakuSender(socket);
        sender
            .send(json!({"type": "auth", "v": 1, "token": token.expose()}))
            .await;
        sender.next_of("ack").await;
        sender
    }

    async fn send(&mut self, frame: Value) {
        self.0
            .send(Message::text(frame.to_string()))
            .await
            .expect("the chat socket takes a frame");
    }

    async fn next_of(&mut self, kind: &str) -> Value {
        let wait = async {
            loop {
                let msg = self
                    .0
                    .next()
                    .await
                    .expect("the chat socket stays open")
                    .expect("no chat socket error");
                if let Message::Text(text) = msg {
                    let v: Value = serde_json::from_str(&text).expect("chat frames are JSON");
                    if v["type"] == kind {
                        return v;
                    }
                }
            }
        };
        tokio::time::timeout(T, wait)
            .await
            .unwrap_or_else(|_| panic!("no {kind} frame within {T:?}"))
    }

    /// Sends one danmaku and returns it as broadcast (with its offset into the live).
    async fn danmaku(&mut self, text: &str) -> Value {
        self.send(json!({"type": "danmaku", "v": 1, "text": text}))
            .await;
        let d = self.next_of("danmaku").await;
        assert_eq!(d["text"], text);
        d
    }
}

/// The live's length: long enough for three danmaku a few seconds apart and for playback to
/// reach the last one.
const REPLAY_PUBLISH_SECONDS: u32 = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replay_page_plays_and_its_danmaku_follow_seek_and_pause() {
    if !browser_ready() {
        return;
    }
    // A short grace, so the recording is finished soon after the publish ends.
    let stage = Stage::with(|c| c.hub.republish_grace = Duration::from_secs(1)).await;
    let mut ffmpeg = Ffmpeg::publish_test_pattern(
        &stage.server.publish_url(&stage.key),
        REPLAY_PUBLISH_SECONDS,
    );
    assert!(
        stage.server.wait_live(&stage.slug, LIVE_TIMEOUT).await,
        "the channel did not go live; ffmpeg said:\n{}",
        ffmpeg.stderr()
    );
    let mut chat = DanmakuSender::signed_in(&stage, "commenter").await;
    // Spread over the live by the media itself: the page seeks between the first two and
    // plays on to the last.
    let mut sent = Vec::new();
    for (text, after) in [
        ("early danmaku", Duration::from_millis(2500)),
        ("middle danmaku", Duration::from_secs(3)),
        ("late danmaku", Duration::from_millis(2500)),
    ] {
        assert!(
            stage
                .server
                .wait_media(&stage.slug, after, FPS, LIVE_TIMEOUT)
                .await,
            "the live did not move on; ffmpeg said:\n{}",
            ffmpeg.stderr()
        );
        sent.push(chat.danmaku(text).await);
    }
    let status = ffmpeg
        .wait(Duration::from_secs(u64::from(REPLAY_PUBLISH_SECONDS) + 30))
        .await
        .expect("ffmpeg ends");
    assert!(status.success(), "ffmpeg failed:\n{}", ffmpeg.stderr());

    let store = stage.server.platform().store().clone();
    let channel_id = stage.channel_id;
    let finished = wait_until_async(Duration::from_secs(30), || {
        let store = store.clone();
        async move {
            store
                .list_recordings(channel_id, Page::default())
                .await
                .is_ok_and(|(rows, _)| rows.iter().any(|r| r.state == RecordingState::Finished))
        }
    })
    .await;
    assert!(finished, "the recording was never finished");
    let (rows, _) = store
        .list_recordings(channel_id, Page::default())
        .await
        .expect("list the recordings");
    let replay = rows[0].id.to_string();
    println!(
        "replay {replay}: {} ms; danmaku offsets as broadcast: {:?}",
        rows[0].duration_ms,
        sent.iter()
            .map(|d| (d["text"].as_str().unwrap_or("?"), d["offset_ms"].as_i64()))
            .collect::<Vec<_>>()
    );

    let (exited_ok, r) = scenario_with(&stage, "replay", &["--replay", &replay], |e| {
        println!("event: {e}")
    })
    .await;
    println!("replay: {r}");
    assert!(
        exited_ok && r["ok"] == true,
        "the replay scenario failed: {r}"
    );
    let texts: Vec<_> = r["danmaku"]
        .as_array()
        .map(|a| a.iter().filter_map(|d| d["text"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        texts,
        ["early danmaku", "middle danmaku", "late danmaku"],
        "the replay's danmaku, in offset order: {r}"
    );
    assert_eq!(r["danmaku_count_text"], "3", "the page counts them: {r}");
    let early = r["danmaku"][0]["offset_ms"].as_f64().unwrap_or(f64::NAN);
    let middle = r["danmaku"][1]["offset_ms"].as_f64().unwrap_or(f64::NAN);
    let late = r["danmaku"][2]["offset_ms"].as_f64().unwrap_or(f64::NAN);

    // Playback from the start, then the seek from before the first danmaku to between it and
    // the second.
    assert!(number(&r, &["advanced_ms"]) > 0.0, "the video plays: {r}");
    assert!(number(&r, &["seek_from_ms"]) < early, "{r}");
    let seek_to = number(&r, &["seek_to_ms"]);
    assert!(early < seek_to && seek_to < middle, "{r}");
    assert_eq!(
        r["shown_before_seek"],
        Value::Array(vec![]),
        "nothing is due before the first danmaku: {r}"
    );

    let shown = r["shown"].as_array().cloned().unwrap_or_default();
    let at = |text: &str| {
        shown
            .iter()
            .find(|s| s["text"] == text)
            .and_then(|s| s["at_ms"].as_f64())
    };
    assert_eq!(
        at("early danmaku"),
        None,
        "a danmaku the seek jumped over is not replayed: {r}"
    );
    let middle_at = at("middle danmaku").unwrap_or(f64::NAN);
    assert!(
        middle <= middle_at && middle_at < late,
        "the danmaku after the seek point appears when playback reaches it: {r}"
    );
    let late_at = at("late danmaku").unwrap_or(f64::NAN);
    assert!(late <= late_at, "{r}");
    assert_eq!(shown.len(), 2, "each danmaku shown once: {r}");

    // Paused: the video and the danmaku on screen stand still, and nothing new comes.
    let held = &r["paused"];
    assert_eq!(held["on_screen"], true, "{r}");
    assert_eq!(held["play_states"], json!(["paused"]), "{r}");
    assert_eq!(held["anim_before"], held["anim_after"], "{r}");
    assert_eq!(held["x_before"], held["x_after"], "{r}");
    assert_eq!(held["video_before"], held["video_after"], "{r}");
    assert_eq!(held["shown_during"], json!(0), "{r}");
    assert_eq!(r["resumed_play_states"], json!(["running"]), "{r}");
    assert_eq!(r["errors"], Value::Array(vec![]), "page errors: {r}");
    assert_eq!(r["console"], Value::Array(vec![]), "console errors: {r}");
    println!(
        "replay page: played {} ms of media from the start; seeked {} -> {} ms (danmaku at \
         {early}, {middle}, {late} ms); shown: middle at {middle_at} ms, late at {late_at} ms, \
         early never; paused at {} ms for {} animation frames: danmaku x {} -> {}",
        r["advanced_ms"],
        r["seek_from_ms"],
        seek_to,
        held["video_before"],
        held["frames"],
        held["x_before"],
        held["x_after"]
    );
    stage.server.shutdown().await;
}

/// The live behind the catalogue test's video: long enough for a second of playback.
const VIDEO_PUBLISH_SECONDS: u32 = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_videos_page_lists_a_finished_replay_that_plays_takes_comments_and_the_owners_edit() {
    if !browser_ready() {
        return;
    }
    // A short grace, so the recording (and with it the video) is finished soon after the
    // publish; one comment per account per minute, so the page's second one meets the 429.
    let stage = Stage::with(|c| {
        c.hub.republish_grace = Duration::from_secs(1);
        c.chat.user_messages = 1;
        c.chat.user_window = Duration::from_secs(60);
    })
    .await;
    let mut ffmpeg =
        Ffmpeg::publish_test_pattern(&stage.server.publish_url(&stage.key), VIDEO_PUBLISH_SECONDS);
    let status = ffmpeg
        .wait(Duration::from_secs(u64::from(VIDEO_PUBLISH_SECONDS) + 30))
        .await
        .expect("ffmpeg ends");
    assert!(status.success(), "ffmpeg failed:\n{}", ffmpeg.stderr());

    // The catalogue adds the video (and its thumbnail) once the recording is finished.
    let server = &stage.server;
    let found = wait_until_async(Duration::from_secs(30), || async move {
        let (status, _, _, body) = get(server, "/api/v1/videos").await;
        let listed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        status == 200 && listed["items"][0]["thumbnail"].is_string()
    })
    .await;
    let (_, _, _, body) = get(server, "/api/v1/videos").await;
    let listed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    assert!(
        found,
        "no video with a thumbnail in the catalogue: {listed}"
    );
    let video = &listed["items"][0];
    let id = video["id"].as_i64().expect("a video id").to_string();
    println!("video {id}: {video}");
    let old_title = video["title"].as_str().unwrap_or_default().to_owned();
    let new_title = "Retitled by its owner";

    let (exited_ok, r) = scenario_with(
        &stage,
        "videos",
        &["--video", &id, "--title", new_title],
        |e| println!("event: {e}"),
    )
    .await;
    println!("videos: {r}");
    assert!(
        exited_ok && r["ok"] == true,
        "the videos scenario failed: {r}"
    );
    let card = r["card_text"].as_str().unwrap_or_default();
    assert!(
        card.contains(&old_title) && card.contains(&stage.slug) && card.contains("0 views"),
        "the card names the title, channel and views: {r}"
    );
    assert!(
        number(&r, &["thumbnail_shown", "width"]) > 0.0,
        "the card shows the thumbnail the API names: {r}"
    );
    assert_eq!(r["title_before"], Value::String(old_title), "{r}");
    assert!(
        number(&r, &["played", "currentTime"]) > 1.0 && number(&r, &["played", "width"]) > 0.0,
        "the video page plays the replay: {r}"
    );
    assert_eq!(r["view_count_text"], "1", "playing counts one view: {r}");
    assert!(r["comment_seen"].is_string(), "{r}");
    assert!(
        r["rate_limited"]
            .as_str()
            .is_some_and(|t| t.starts_with("Slow down: too many comments")),
        "a comment past the rate limit says so: {r}"
    );
    assert_eq!(
        r["viewer_sees_edit"], 0,
        "a viewer is not offered the edit: {r}"
    );
    assert_eq!(r["owner_may_delete_comment"], 1, "{r}");
    assert_eq!(r["title_after"], new_title, "{r}");
    for (name, p) in r["pages"].as_object().cloned().unwrap_or_default() {
        println!(
            "phone {name}: scrollWidth {} / clientWidth {} ({})",
            p["scroll"], p["client"], p["screenshot"]
        );
    }
    assert_eq!(r["errors"], Value::Array(vec![]), "page errors: {r}");

    assert!(
        number(&r, &["private_played", "currentTime"]) > 0.5,
        "the owner plays their private video: {r}"
    );

    // The API agrees with what the pages showed; private now, the video and its playlist are
    // hidden from anyone signed out.
    let store = stage.server.platform().store().clone();
    let after = store
        .video_by_id(id.parse().expect("a numeric id"))
        .await
        .expect("read the video")
        .expect("the video exists");
    assert_eq!(after.title, new_title, "{after:?}");
    // The viewer's play and the owner's.
    assert_eq!(after.view_count, 2, "{after:?}");
    assert_eq!(after.visibility, Visibility::Private, "{after:?}");
    for path in [
        format!("/api/v1/videos/{id}"),
        format!("/replays/{}/index.m3u8", video["replay_id"]),
        format!("/videos/{id}/index.m3u8"),
    ] {
        let (status, _, _, _) = get(&stage.server, &path).await;
        assert_eq!(status, 404, "{path} for anyone signed out");
    }
    let (_, login) = post_api(
        &stage,
        "/api/v1/auth/login",
        None,
        &json!({ "username": "host", "password": PASSWORD }),
    )
    .await;
    let bearer = format!(
        "Bearer {}",
        login["access_token"].as_str().unwrap_or_default()
    );
    let reply = request(
        "GET",
        &stage
            .server
            .http_url(&format!("/api/v1/videos/{id}/comments")),
        &[("Authorization", bearer.as_str())],
        T,
    )
    .await
    .expect("GET the comments");
    assert_eq!(reply.status, 200);
    let comments: Value =
        serde_json::from_str(&reply.text(T).await.unwrap_or_default()).unwrap_or(Value::Null);
    assert_eq!(
        comments["items"][0]["text"], r["comment_seen"],
        "{comments}"
    );
    assert_eq!(comments["items"][0]["username"], "viewer", "{comments}");
    stage.server.shutdown().await;
}
