//! The HTTP listener's timeouts and connection caps, over real sockets (issue #18): a
//! half-sent request is closed after the header timeout, a silent connection after the idle
//! timeout, a trickled body answered 408; streams outlive every timeout; an address past its
//! cap is answered 503, and when the server is full the longest-idle connection makes room
//! while streams in progress are never touched.
//!
//! Each wait is for an event (a close, a status, a counter) with a generous bound; no
//! assertion is on how long anything took.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use onair_e2e::flv::End;
use onair_e2e::{Ffmpeg, FlvReader, TestServer, http, require_ffmpeg, wait_until_async};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bound on every wait for the server to act; a passing run takes a second or two.
const BOUND: Duration = Duration::from_secs(30);
const LIVE_TIMEOUT: Duration = Duration::from_secs(15);

fn from(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, n)
}

/// Reads until the server closes `stream`; `true` if it did within [`BOUND`]. Bytes the
/// server sent first (a response) are returned in the `Vec`.
async fn closed_by_server(stream: &mut TcpStream) -> (bool, Vec<u8>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(BOUND, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (closed, got)
}

/// `GET /healthz` on `stream` (kept alive); the status of the answer.
async fn healthz_on(stream: &mut TcpStream) -> Option<u16> {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .ok()?;
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(BOUND, async {
        while !got.ends_with(b"ok") {
            let n = stream.read(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            got.extend_from_slice(&buf[..n]);
        }
        Some(())
    })
    .await
    .ok()??;
    let text = String::from_utf8_lossy(&got);
    text.split_whitespace().nth(1)?.parse().ok()
}

async fn metric(server: &TestServer, name: &str) -> f64 {
    server.metric(name).await.unwrap_or(0.0)
}

#[tokio::test]
async fn a_half_sent_request_is_closed_after_the_header_timeout_and_an_idle_one_is_not() {
    let server = TestServer::start(|c| {
        c.http.header_timeout = Duration::from_secs(1);
        c.http.idle_timeout = Duration::from_secs(600);
    })
    .await;
    // Opened first and silent: only the idle timeout, far away, applies to it.
    let mut idle = TcpStream::connect(server.http_addr).await.unwrap();
    let mut half = TcpStream::connect(server.http_addr).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n")
        .await
        .unwrap();
    let (closed, answer) = closed_by_server(&mut half).await;
    assert!(closed, "the half-sent request is still open");
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    assert_eq!(
        metric(&server, "onair_http_header_timeouts_total").await,
        1.0
    );
    // The header timeout has passed for the idle connection too; it still serves, twice
    // (keep-alive).
    assert_eq!(healthz_on(&mut idle).await, Some(200));
    assert_eq!(healthz_on(&mut idle).await, Some(200));
    assert_eq!(metric(&server, "onair_http_idle_timeouts_total").await, 0.0);
    server.shutdown().await;
}

#[tokio::test]
async fn a_connection_without_a_request_is_closed_after_the_idle_timeout() {
    let server = TestServer::start(|c| c.http.idle_timeout = Duration::from_secs(1)).await;
    let mut silent = TcpStream::connect(server.http_addr).await.unwrap();
    let (closed, _) = closed_by_server(&mut silent).await;
    assert!(closed, "a silent connection is kept forever");
    // After a response, the idle timeout starts again.
    let mut kept = TcpStream::connect(server.http_addr).await.unwrap();
    assert_eq!(healthz_on(&mut kept).await, Some(200));
    let (closed, _) = closed_by_server(&mut kept).await;
    assert!(closed, "an idle keep-alive connection is kept forever");
    assert!(metric(&server, "onair_http_idle_timeouts_total").await >= 2.0);
    server.shutdown().await;
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_answered_408() {
    let server = TestServer::start(|c| c.http.body_timeout = Duration::from_secs(1)).await;
    let mut stream = TcpStream::connect(server.http_addr).await.unwrap();
    stream
        .write_all(
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"username\":",
        )
        .await
        .unwrap();
    let (closed, answer) = closed_by_server(&mut stream).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(closed);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("problems/request-timeout"), "{answer}");
    assert_eq!(metric(&server, "onair_http_body_timeouts_total").await, 1.0);
    server.shutdown().await;
}

#[tokio::test]
async fn an_address_past_its_cap_is_answered_503_and_others_are_not() {
    let server = TestServer::start(|c| c.http.max_connections_per_address = 3).await;
    let addr = server.http_addr;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(http::connect_from(from(5), addr).await.unwrap());
    }
    // The server counts a connection once it has accepted it: the three are served.
    for stream in &mut held {
        assert_eq!(healthz_on(stream).await, Some(200));
    }
    let mut fourth = http::connect_from(from(5), addr).await.unwrap();
    let (closed, answer) = closed_by_server(&mut fourth).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(closed);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    assert!(answer.contains("problems/busy"), "{answer}");
    let mut other = http::connect_from(from(6), addr).await.unwrap();
    assert_eq!(healthz_on(&mut other).await, Some(200));
    // A closed connection gives its place back.
    drop(held.pop());
    let came_back = wait_until_async(BOUND, || async {
        let Ok(mut again) = http::connect_from(from(5), addr).await else {
            return false;
        };
        healthz_on(&mut again).await == Some(200)
    })
    .await;
    assert!(came_back);
    assert!(metric(&server, "onair_http_connections_refused_total").await >= 1.0);
    server.shutdown().await;
}

/// A reload (SIGHUP's work) applies new HTTP caps and timeouts without a restart, to the
/// connections admitted next.
#[tokio::test]
async fn a_reload_applies_the_http_caps_and_timeouts_at_once() {
    let server = TestServer::start(|_| {}).await;
    let addr = server.http_addr;
    let mut first = http::connect_from(from(7), addr).await.unwrap();
    assert_eq!(healthz_on(&mut first).await, Some(200));
    let mut tighter = server.state().config.clone();
    tighter.http.max_connections_per_address = 1;
    // The default is 60 s: far past the bound below.
    tighter.http.idle_timeout = Duration::from_secs(1);
    let reload = server.reload(&tighter);
    assert!(
        reload.needs_restart.is_empty(),
        "applied live: {:?}",
        reload.needs_restart
    );
    let mut second = http::connect_from(from(7), addr).await.unwrap();
    let (closed, answer) = closed_by_server(&mut second).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(closed && answer.starts_with("HTTP/1.1 503"), "{answer}");
    let mut other = http::connect_from(from(8), addr).await.unwrap();
    assert_eq!(healthz_on(&mut other).await, Some(200));
    let (closed, _) = closed_by_server(&mut other).await;
    assert!(closed, "idle past the new timeout, within {BOUND:?}");
    assert!(metric(&server, "onair_http_idle_timeouts_total").await >= 1.0);
    server.shutdown().await;
}

/// The server full: idle connections make room, oldest first; streams are never evicted,
/// and with only streams open a newcomer gets 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_full_the_longest_idle_connection_makes_room_and_streams_are_kept() {
    if !require_ffmpeg() {
        return;
    }
    let server = TestServer::start(|c| c.http.max_connections = 4).await;
    let _ffmpeg = Ffmpeg::publish_test_pattern(&server.publish_url(&server.key), 60);
    assert!(server.wait_live(&server.channel, LIVE_TIMEOUT).await);
    let flv = server.flv_url(&server.channel);
    let (_, _, mut viewer_a) = FlvReader::http(&flv, LIVE_TIMEOUT).await.unwrap();
    let (_, _, mut viewer_b) = FlvReader::http(&flv, LIVE_TIMEOUT).await.unwrap();
    let mut oldest = TcpStream::connect(server.http_addr).await.unwrap();
    let mut newer = TcpStream::connect(server.http_addr).await.unwrap();
    assert_eq!(healthz_on(&mut newer).await, Some(200), "four open: full");

    // A fifth: the connection idle the longest is closed for it.
    let mut fifth = TcpStream::connect(server.http_addr).await.unwrap();
    assert_eq!(healthz_on(&mut fifth).await, Some(200));
    let (closed, _) = closed_by_server(&mut oldest).await;
    assert!(closed, "the longest-idle connection made room");
    // (Reading the metric takes a connection too, and makes room the same way.)
    assert!(metric(&server, "onair_http_connections_evicted_total").await >= 1.0);

    // Now make every place a stream: the idle ones go, the streams stay.
    let (_, _, mut viewer_c) = FlvReader::http(&flv, LIVE_TIMEOUT).await.unwrap();
    let (_, _, mut viewer_d) = FlvReader::http(&flv, LIVE_TIMEOUT).await.unwrap();
    let mut refused = TcpStream::connect(server.http_addr).await.unwrap();
    let (closed, answer) = closed_by_server(&mut refused).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(closed);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    for viewer in [&mut viewer_a, &mut viewer_b, &mut viewer_c, &mut viewer_d] {
        let reading = viewer.read_media(Duration::from_secs(1), BOUND).await;
        assert_eq!(reading.end, End::Done, "a stream was cut");
    }
    server.shutdown().await;
}

/// HTTP-FLV and WS-FLV run for longer than every timeout: a stream is a request in
/// progress, and a WebSocket belongs to its own protocol once upgraded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_outlive_the_header_body_and_idle_timeouts() {
    if !require_ffmpeg() {
        return;
    }
    let server = TestServer::start(|c| {
        c.http.header_timeout = Duration::from_millis(500);
        c.http.body_timeout = Duration::from_millis(500);
        c.http.idle_timeout = Duration::from_millis(500);
    })
    .await;
    let _ffmpeg = Ffmpeg::publish_test_pattern(&server.publish_url(&server.key), 60);
    assert!(server.wait_live(&server.channel, LIVE_TIMEOUT).await);
    let (_, _, mut http_flv) = FlvReader::http(&server.flv_url(&server.channel), LIVE_TIMEOUT)
        .await
        .unwrap();
    let mut ws_flv = FlvReader::ws(&server.ws_url(&server.channel), LIVE_TIMEOUT)
        .await
        .unwrap();
    // Four seconds of media: eight times every timeout.
    let (a, b) = tokio::join!(
        http_flv.read_media(Duration::from_secs(4), BOUND),
        ws_flv.read_media(Duration::from_secs(4), BOUND),
    );
    assert_eq!(a.end, End::Done, "HTTP-FLV was cut");
    assert_eq!(b.end, End::Done, "WS-FLV was cut");
    server.shutdown().await;
}

/// The peer address the API sees is the socket's: the login limit of one loopback address
/// does not touch another's.
#[tokio::test]
async fn each_client_address_has_its_own_login_allowance() {
    let server = TestServer::start(|c| c.auth.login_attempts_per_minute = 2).await;
    let addr: SocketAddr = server.http_addr;
    let body = r#"{"username": "nobody", "password": "whatever"}"#;
    let post = |n| http::post_json_from(from(n), addr, "/api/v1/auth/login", body, &[], BOUND);
    assert_eq!(post(20).await.unwrap().0, 401);
    assert_eq!(post(20).await.unwrap().0, 401);
    assert_eq!(post(20).await.unwrap().0, 429);
    assert_eq!(post(21).await.unwrap().0, 401);
    server.shutdown().await;
}
