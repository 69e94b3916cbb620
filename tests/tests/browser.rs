//! A real browser: mpegts.js in headless Chromium plays HTTP-FLV (cross-origin, so through
//! CORS) and WS-FLV from a page served on a port other than OnAir's, and the video advances;
//! flv.js plays the same HTTP-FLV; hls.js in the same browser plays the live HLS playlist,
//! cross-origin too.
//!
//! Needs `/usr/bin/chromium`, `node` and `tests/browser/node_modules`
//! (`npm ci --prefix tests/browser`); skipped without them on a developer machine, failed under
//! `CI=true`. `tests/browser/play.mjs` drives the browser and prints one JSON line per stream.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use onair_e2e::{Ffmpeg, TestServer, require, require_ffmpeg};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::process::Command;

const CHROMIUM: &str = "/usr/bin/chromium";
/// Longer than any run: ffmpeg is killed when the test ends.
const PUBLISH_SECONDS: u32 = 120;
const LIVE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long play.mjs waits for 1 s of playback (ms), and its own overall bound.
const PLAY_TIMEOUT_MS: u64 = 15_000;
const NODE_TIMEOUT: Duration = Duration::from_secs(60);
/// The pattern is 25 fps with a keyframe every second and the GOP cache sends the last one at
/// once, so the first frame should come well within this (measured: a few hundred ms).
const FIRST_FRAME_MAX_MS: f64 = 5_000.0;

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

fn has_node() -> bool {
    std::process::Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Serves the test pages and their players (mpegts.js, flv.js, hls.js) from `tests/browser` on
/// `127.0.0.1:0`: a second origin.
async fn serve_page() -> String {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the page server");
    let addr = listener.local_addr().expect("page server address");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16_384 {
                    match tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buf)).await
                    {
                        Ok(Ok(n)) if n > 0 => request.extend_from_slice(&buf[..n]),
                        _ => return,
                    }
                }
                let text = String::from_utf8_lossy(&request);
                let path = text.split(' ').nth(1).unwrap_or("/");
                let path = path.split('?').next().unwrap_or(path);
                let file = match path {
                    "/" | "/index.html" => Some(("index.html", "text/html; charset=utf-8")),
                    "/mpegts.js" => Some((
                        "node_modules/mpegts.js/dist/mpegts.js",
                        "text/javascript; charset=utf-8",
                    )),
                    "/flv.html" => Some(("flv.html", "text/html; charset=utf-8")),
                    "/flv.js" => Some((
                        "node_modules/flv.js/dist/flv.js",
                        "text/javascript; charset=utf-8",
                    )),
                    "/hls.html" => Some(("hls.html", "text/html; charset=utf-8")),
                    "/hls.js" => Some((
                        "node_modules/hls.js/dist/hls.js",
                        "text/javascript; charset=utf-8",
                    )),
                    _ => None,
                };
                let response = match file.map(|(f, t)| (std::fs::read(browser_dir().join(f)), t)) {
                    Some((Ok(body), content_type)) => {
                        let mut r = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n\
                             Content-Length: {}\r\nCache-Control: no-store\r\n\
                             Connection: close\r\n\r\n",
                            body.len()
                        )
                        .into_bytes();
                        r.extend_from_slice(&body);
                        r
                    }
                    _ => {
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_vec()
                    }
                };
                let _ = socket.write_all(&response).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    format!("http://{addr}/index.html")
}

/// Runs play.mjs for `url` and returns its JSON line (and whether it exited 0).
async fn play(page: &str, url: &str) -> (bool, Value) {
    play_for(page, url, 1).await
}

/// [`play`], waiting for `seconds` of playback before the "keeps moving" check.
async fn play_for(page: &str, url: &str, seconds: u32) -> (bool, Value) {
    let script = browser_dir().join("play.mjs");
    let child = Command::new("node")
        .arg(&script)
        .args(["--page", page, "--url", url])
        .args(["--play", &seconds.to_string()])
        .args(["--chromium", CHROMIUM, "--timeout"])
        .arg(PLAY_TIMEOUT_MS.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start node");
    let output = tokio::time::timeout(NODE_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("play.mjs still running after {NODE_TIMEOUT:?} for {url}"))
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stdout.lines().rev().find(|l| l.starts_with('{'));
    let json = line
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!("play.mjs printed no JSON for {url}\nstdout:\n{stdout}\nstderr:\n{stderr}")
        });
    (output.status.success(), json)
}

fn origin(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mpegts_js_in_chromium_plays_http_flv_cross_origin_and_ws_flv() {
    let browser = browser_dir();
    // Check every requirement so the skip lines name everything missing.
    let ffmpeg = require_ffmpeg();
    let chromium = require("chromium", "", Path::new(CHROMIUM).exists());
    let node = require("node", "", has_node());
    let modules = require(
        "tests/browser/node_modules",
        " (run npm ci in tests/browser)",
        browser.join("node_modules/playwright-core").is_dir()
            && browser
                .join("node_modules/mpegts.js/dist/mpegts.js")
                .is_file(),
    );
    if !(ffmpeg && chromium && node && modules) {
        return;
    }

    let server = TestServer::start(|_| {}).await;
    let ffmpeg = Ffmpeg::publish_test_pattern(&server.publish_url(&server.key), PUBLISH_SECONDS);
    assert!(
        server.wait_live(&server.channel, LIVE_TIMEOUT).await,
        "the channel did not go live; ffmpeg said:\n{}",
        ffmpeg.stderr()
    );
    let page = serve_page().await;

    for (name, url) in [
        ("http-flv", server.flv_url(&server.channel)),
        ("ws-flv", server.ws_url(&server.channel)),
    ] {
        let (exited_ok, result) = play(&page, &url).await;
        println!("{name}: {result}");
        let number = |k: &str| result.get(k).and_then(Value::as_f64);
        let page_origin = result.get("page_origin").and_then(Value::as_str);
        assert_ne!(
            page_origin.map(|o| o.trim_start_matches("http://")),
            Some(origin(&url)),
            "{name}: the page must be on another origin than the stream"
        );
        assert!(
            exited_ok && result.get("ok") == Some(&Value::Bool(true)),
            "{name}: mpegts.js did not play {url}: {result}"
        );
        assert_eq!(number("video_width"), Some(320.0), "{name}: {result}");
        let advanced = number("advanced_s").unwrap_or(0.0);
        assert!(
            advanced > 1.0,
            "{name}: currentTime advanced {advanced}s in 2 s: {result}"
        );
        let first_frame = number("first_frame_after_load_ms").unwrap_or(f64::INFINITY);
        assert!(
            first_frame < FIRST_FRAME_MAX_MS,
            "{name}: first frame after {first_frame} ms: {result}"
        );
        println!(
            "{name}: first frame {} ms after navigation start, {first_frame} ms after player.load(); \
             currentTime advanced {advanced:.2} s in 2 s",
            number("first_frame_ms").unwrap_or(f64::NAN)
        );
    }
    drop(ffmpeg);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flv_js_in_chromium_plays_http_flv_cross_origin() {
    let browser = browser_dir();
    let ffmpeg = require_ffmpeg();
    let chromium = require("chromium", "", Path::new(CHROMIUM).exists());
    let node = require("node", "", has_node());
    let modules = require(
        "tests/browser/node_modules",
        " (run npm ci in tests/browser)",
        browser.join("node_modules/playwright-core").is_dir()
            && browser.join("node_modules/flv.js/dist/flv.js").is_file(),
    );
    if !(ffmpeg && chromium && node && modules) {
        return;
    }

    let server = TestServer::start(|_| {}).await;
    let ffmpeg = Ffmpeg::publish_test_pattern(&server.publish_url(&server.key), PUBLISH_SECONDS);
    assert!(
        server.wait_live(&server.channel, LIVE_TIMEOUT).await,
        "the channel did not go live; ffmpeg said:\n{}",
        ffmpeg.stderr()
    );
    let page = serve_page().await.replace("index.html", "flv.html");
    let url = server.flv_url(&server.channel);

    let (exited_ok, result) = play_for(&page, &url, 3).await;
    println!("flv.js: {result}");
    let number = |k: &str| result.get(k).and_then(Value::as_f64);
    assert_ne!(
        result
            .get("page_origin")
            .and_then(Value::as_str)
            .map(|o| o.trim_start_matches("http://")),
        Some(origin(&url)),
        "the page must be on another origin than the stream"
    );
    assert_eq!(
        result.get("mse_live_playback"),
        Some(&Value::Bool(true)),
        "flv.js found no MSE live playback in this Chromium: {result}"
    );
    assert!(
        exited_ok && result.get("ok") == Some(&Value::Bool(true)),
        "flv.js did not play {url}: {result}"
    );
    assert_eq!(number("video_width"), Some(320.0), "{result}");
    let played = number("current_time_after").unwrap_or(0.0);
    assert!(played > 3.0, "currentTime {played} s: {result}");
    let frames = number("decoded_frames").unwrap_or(0.0);
    assert!(frames > 60.0, "{frames} frames decoded: {result}");
    assert_eq!(result["errors"], Value::Array(vec![]), "{result}");
    println!(
        "flv.js: first frame {} ms after player.load(); currentTime {played:.2} s, {frames} frames \
         decoded, advanced {:.2} s in 2 s",
        number("first_frame_after_load_ms").unwrap_or(f64::NAN),
        number("advanced_s").unwrap_or(f64::NAN)
    );
    drop(ffmpeg);
    server.shutdown().await;
}

/// The page loads once three segments exist (hls.js starts three from the live edge), so the
/// first frame needs a playlist fetch, a segment fetch and a decode (measured: ~400 ms).
const HLS_FIRST_FRAME_MAX_MS: f64 = 12_000.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_js_in_chromium_plays_the_live_playlist_cross_origin() {
    let browser = browser_dir();
    let ffmpeg = require_ffmpeg();
    let chromium = require("chromium", "", Path::new(CHROMIUM).exists());
    let node = require("node", "", has_node());
    let modules = require(
        "tests/browser/node_modules",
        " (run npm ci in tests/browser)",
        browser.join("node_modules/playwright-core").is_dir()
            && browser.join("node_modules/hls.js/dist/hls.js").is_file(),
    );
    if !(ffmpeg && chromium && node && modules) {
        return;
    }

    let server = TestServer::start(|_| {}).await;
    let ffmpeg = Ffmpeg::publish_test_pattern(&server.publish_url(&server.key), PUBLISH_SECONDS);
    let url = server.http_url(&format!("/live/{}/index.m3u8", server.channel));
    // hls.js gives up on a playlist that is not there yet: wait for three segments, as many
    // as it holds back from the live edge.
    let ready = onair_e2e::wait_until_async(LIVE_TIMEOUT, || async {
        onair_e2e::http::get_text(&url, Duration::from_secs(2))
            .await
            .is_ok_and(|t| t.matches("#EXTINF").count() >= 3)
    })
    .await;
    assert!(
        ready,
        "the live playlist never listed 3 segments; ffmpeg said:\n{}",
        ffmpeg.stderr()
    );
    let page = serve_page().await.replace("index.html", "hls.html");

    let (exited_ok, result) = play(&page, &url).await;
    println!("hls: {result}");
    let number = |k: &str| result.get(k).and_then(Value::as_f64);
    assert_ne!(
        result
            .get("page_origin")
            .and_then(Value::as_str)
            .map(|o| o.trim_start_matches("http://")),
        Some(origin(&url)),
        "the page must be on another origin than the stream"
    );
    assert!(
        exited_ok && result.get("ok") == Some(&Value::Bool(true)),
        "hls.js did not play {url}: {result}"
    );
    assert_eq!(number("video_width"), Some(320.0), "{result}");
    let advanced = number("advanced_s").unwrap_or(0.0);
    assert!(
        advanced > 1.0,
        "currentTime advanced {advanced}s in 2 s: {result}"
    );
    let first_frame = number("first_frame_after_load_ms").unwrap_or(f64::INFINITY);
    assert!(
        first_frame < HLS_FIRST_FRAME_MAX_MS,
        "first frame after {first_frame} ms: {result}"
    );
    println!(
        "hls: first frame {first_frame} ms after hls.loadSource(); currentTime advanced {advanced:.2} s in 2 s"
    );
    drop(ffmpeg);
    server.shutdown().await;
}
