//! Misbehaving peers next to a live stream: garbage on the RTMP port, a handshake that stalls,
//! a message length over the configured limit, and an HTTP-FLV viewer that never reads. The
//! server must close each bad connection within its configured timeout, count the RTMP ones
//! as peer errors in `/metrics`, and never disturb the healthy viewer watching at the same
//! time (house style: "a peer's bytes never cause a panic"; protocol notes #11, #12).

use std::time::Duration;

use onair::config::Config;
use onair_e2e::flv::{End, Reading, first_step_back, largest_gap};
use onair_e2e::rtmp::{self, Closed, read_until_closed};
use onair_e2e::{
    Ffmpeg, FlvReader, TagSummary, TestServer, http, require_ffmpeg, wait_until, wait_until_async,
};
use onair_hub::Protocol;
use onair_media::MediaKind;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;

const PUBLISH_SECONDS: u32 = 6;
const LIVE_TIMEOUT: Duration = Duration::from_secs(15);
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Slack on top of a configured timeout before the test calls a connection "left open".
const SLACK: Duration = Duration::from_secs(3);
/// Frames are 40 ms apart; a healthy viewer loses none.
const MAX_VIDEO_STEP_MS: u32 = 120;
/// A viewer served at the normal rate never waits this long for the next video frame. It
/// detects a server that stalls; it does not measure latency.
const MAX_STALL: Duration = Duration::from_secs(2);

/// A live channel with a healthy HTTP-FLV viewer reading until the stream ends.
struct Live {
    server: TestServer,
    ffmpeg: Ffmpeg,
    viewer: JoinHandle<Reading>,
}

impl Live {
    async fn start(publish_seconds: u32, configure: impl FnOnce(&mut Config)) -> Option<Live> {
        if !require_ffmpeg() {
            return None;
        }
        let server = TestServer::start(|c| {
            c.hub.republish_grace = Duration::from_secs(1);
            configure(c);
        })
        .await;
        let ffmpeg =
            Ffmpeg::publish_test_pattern(&server.publish_url(&server.key), publish_seconds);
        assert!(
            server.wait_live(&server.channel, LIVE_TIMEOUT).await,
            "not live; ffmpeg said:\n{}",
            ffmpeg.stderr()
        );
        let (_, _, mut reader) = FlvReader::http(&server.flv_url(&server.channel), IO_TIMEOUT)
            .await
            .expect("http-flv");
        let viewer =
            tokio::spawn(
                async move { reader.read_until(Duration::from_secs(40), |_| false).await },
            );
        Some(Live {
            server,
            ffmpeg,
            viewer,
        })
    }

    async fn peer_errors(&self) -> Option<f64> {
        self.server.metric("onair_peer_errors_total").await
    }

    /// Waits for the bad connection's task to end: only the publisher's connection stays
    /// open (protocol notes #12: closed sockets must end their tasks).
    async fn wait_only_publisher_connected(&self) {
        let open = || self.server.metric("onair_rtmp_connections_open");
        let settled = wait_until_async(IO_TIMEOUT, || async { open().await == Some(1.0) }).await;
        assert!(
            settled,
            "onair_rtmp_connections_open should fall back to 1, is {:?}",
            open().await
        );
    }

    async fn wait_peer_errors(&self, n: f64) {
        let reached =
            wait_until_async(IO_TIMEOUT, || async { self.peer_errors().await >= Some(n) }).await;
        assert!(
            reached,
            "onair_peer_errors_total should reach {n}, is {:?}",
            self.peer_errors().await
        );
    }

    /// Lets the publish run to its end and checks the healthy viewer saw all of it.
    async fn assert_viewer_undisturbed(mut self) {
        let status = self
            .ffmpeg
            .wait(EXIT_TIMEOUT)
            .await
            .expect("the publisher finishes");
        assert!(
            status.success(),
            "the publisher was disturbed; ffmpeg said:\n{}",
            self.ffmpeg.stderr()
        );
        let reading = self.viewer.await.expect("viewer task");
        assert_eq!(
            reading.end,
            End::Closed,
            "the healthy viewer's stream ends with the publish"
        );
        let summary = TagSummary::of(&reading.tags);
        assert!(
            summary.video_frames >= 75,
            "the healthy viewer got too few frames: {summary:?}"
        );
        assert_eq!(summary.first_video_keyframe, Some(true));
        assert!(
            largest_gap(&reading.tags, MediaKind::Video) <= MAX_VIDEO_STEP_MS,
            "the healthy viewer lost frames"
        );
        assert_eq!(first_step_back(&reading.tags, MediaKind::Video), None);
        let video: Vec<_> = reading
            .tags
            .iter()
            .filter(|t| t.is_media_frame(MediaKind::Video))
            .collect();
        let stall = video
            .windows(2)
            .map(|w| w[1].received - w[0].received)
            .max()
            .unwrap_or_default();
        assert!(
            stall < MAX_STALL,
            "the healthy viewer waited {stall:?} for a frame"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_rtmp_port_is_closed_and_counted() {
    let Some(live) = Live::start(PUBLISH_SECONDS, |c| {
        c.rtmp.handshake_timeout = Duration::from_secs(2)
    })
    .await
    else {
        return;
    };
    let mut socket = TcpStream::connect(live.server.rtmp_addr)
        .await
        .expect("connect");
    // Someone pointed a browser at the RTMP port, then kept sending noise.
    let mut garbage = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    garbage.extend((0..8192).map(|_| rand::random::<u8>()));
    // The server may close before it has read everything; a failed write is fine.
    let _ = socket.write_all(&garbage).await;
    let closed = read_until_closed(&mut socket, Duration::from_secs(2) + SLACK).await;
    assert!(
        closed.is_some(),
        "the server left a connection sending garbage open"
    );
    live.wait_peer_errors(1.0).await;
    live.wait_only_publisher_connected().await;
    assert_eq!(
        live.peer_errors().await,
        Some(1.0),
        "only the garbage connection is a peer error"
    );
    live.assert_viewer_undisturbed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_handshake_is_closed_after_the_handshake_timeout() {
    let handshake_timeout = Duration::from_secs(1);
    let Some(live) = Live::start(PUBLISH_SECONDS, |c| {
        c.rtmp.handshake_timeout = handshake_timeout
    })
    .await
    else {
        return;
    };
    let mut socket = TcpStream::connect(live.server.rtmp_addr)
        .await
        .expect("connect");
    let mut partial = vec![3u8];
    partial.extend_from_slice(&rtmp::c1()[..rtmp::HANDSHAKE_LEN / 2]);
    socket.write_all(&partial).await.expect("C0 and half of C1");
    let closed = read_until_closed(&mut socket, handshake_timeout + SLACK).await;
    let (how, bytes) = closed.expect("the server must drop a handshake that stalls");
    assert_eq!(bytes, 0, "nothing is answered before C1 is complete");
    assert!(matches!(how, Closed::Eof | Closed::Reset));
    live.wait_peer_errors(1.0).await;
    live.wait_only_publisher_connected().await;
    live.assert_viewer_undisturbed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_longer_than_the_limit_is_refused_at_its_header() {
    let Some(live) = Live::start(PUBLISH_SECONDS, |c| c.rtmp.max_message_size = 64 * 1024).await
    else {
        return;
    };
    let mut socket = TcpStream::connect(live.server.rtmp_addr)
        .await
        .expect("connect");
    rtmp::handshake(&mut socket, IO_TIMEOUT)
        .await
        .expect("handshake");
    // A command message that claims 16 MiB - 1 bytes: the header alone must be enough to
    // refuse it, before the server buffers anything.
    socket
        .write_all(&rtmp::chunk_type0(20, 0xFF_FFFF, &[0x02; 64]))
        .await
        .expect("write the chunk");
    let closed = read_until_closed(&mut socket, IO_TIMEOUT).await;
    assert!(
        closed.is_some(),
        "the server kept a connection that claimed an oversized message"
    );
    live.wait_peer_errors(1.0).await;
    live.wait_only_publisher_connected().await;
    live.assert_viewer_undisturbed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_that_never_reads_is_dropped_and_others_keep_playing() {
    let write_timeout = Duration::from_secs(2);
    let Some(live) = Live::start(8, |c| c.hub.write_timeout = write_timeout).await else {
        return;
    };
    let server = &live.server;
    assert!(
        wait_until(IO_TIMEOUT, || server
            .viewers(&server.channel, Protocol::HttpFlv)
            == 1)
        .await
    );

    let socket = TcpSocket::new_v4().expect("socket");
    // A tiny receive window fills at once, so the server's writes stall.
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let stream = socket.connect(server.http_addr).await.expect("connect");
    let path = format!("/live/{}.flv", server.channel);
    let authority = server.http_addr.to_string();
    let response = http::request_on(stream, "GET", &authority, &path, &[], IO_TIMEOUT)
        .await
        .expect("response head");
    assert_eq!(response.status, 200);
    assert!(
        wait_until(IO_TIMEOUT, || server
            .viewers(&server.channel, Protocol::HttpFlv)
            == 2)
        .await
    );

    // Never read. The server must notice within its write timeout (after the socket buffers
    // fill) and let the viewer go while the channel is still live.
    let dropped = wait_until(Duration::from_secs(8), || {
        server.viewers(&server.channel, Protocol::HttpFlv) == 1
    })
    .await;
    assert!(dropped, "the stalled viewer is still subscribed");
    assert!(
        server.hub().is_live(&server.channel),
        "the stalled viewer must be dropped during the publish"
    );
    let mut stream = response.body.into_stream();
    let closed = read_until_closed(&mut stream, write_timeout + SLACK).await;
    assert!(
        closed.is_some(),
        "the server left the stalled viewer's connection open"
    );
    live.assert_viewer_undisturbed().await;
}
