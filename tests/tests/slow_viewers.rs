//! Slow viewers (issue 16): a player whose link is a tenth of the stream's rate is kept near
//! live by skips to the newest keyframe, its stream still decodes, and one the server gives up
//! on is told why and closed cleanly (no reset).
//!
//! The slow link is a real socket: a small receive buffer (what a slow link has in flight, not
//! the megabytes a loopback connection grows to) read at a fixed byte rate. A fast HTTP-FLV
//! viewer of the same channel gives the live edge: every protocol carries the channel's one
//! timeline, so the lag is the fast viewer's newest timestamp minus the slow one's.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_util::StreamExt;
use onair_e2e::{Ffmpeg, FlvReader, TestServer, Tracks, ffprobe, http, require_ffmpeg};
use onair_flv::{FlvDemuxer, FlvHeader, FlvLimits};
use onair_media::{MediaKind, Timestamp};
use onair_rtmp::session::{ClientConfig, ClientEvent, ClientOutput, ClientSession};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// The test pattern runs at about 100 KB/s; the slow link takes a tenth of that.
const SLOW_RATE: usize = 10 * 1024;
/// The slow socket's receive buffer (the kernel doubles it): little, as a real slow link holds
/// little in flight. Much smaller and loopback's accounting drops segments until the
/// connection times out.
const SLOW_RCVBUF: u32 = 8 * 1024;
/// How long the slow viewer watches.
const WATCH: Duration = Duration::from_secs(16);
/// The publish outlasts the watch.
const PUBLISH_SECONDS: u32 = 40;
/// `hub.max_lag` (2 s) plus one GOP of the test pattern (1 s), plus what the viewer has been
/// sent and acknowledged but not read when the watch ends: its receive buffer (16 KiB as
/// doubled), over a second and a half at 10 KiB/s. What the server's socket holds unsent or
/// in flight counts toward `max_lag` (the hub is told it), so it adds nothing here.
const MAX_LAG_MS: u32 = 7000;
const LIVE_TIMEOUT: Duration = Duration::from_secs(15);
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    Rtmp,
    HttpFlv,
    WsFlv,
}

/// What a slow viewer got.
#[derive(Debug, Default)]
struct Received {
    /// What it received, as an FLV file.
    flv: Vec<u8>,
    /// Its media frames: kind, timestamp, keyframe.
    frames: Vec<(MediaKind, u32, bool)>,
    /// How the server ended it, if it did: a status, a close frame, EOF or a reset.
    ended: Option<String>,
    /// The connection ended with a reset (or another socket error) rather than a FIN.
    reset: bool,
}

impl Received {
    fn newest(&self) -> Option<u32> {
        self.frames.iter().map(|f| f.1).max()
    }

    /// Timestamps of each track never go back.
    fn assert_monotonic(&self, what: &str) {
        for kind in [MediaKind::Audio, MediaKind::Video] {
            let ts: Vec<u32> = self
                .frames
                .iter()
                .filter(|f| f.0 == kind)
                .map(|f| f.1)
                .collect();
            assert!(
                ts.windows(2).all(|w| w[1] >= w[0]),
                "{what}: {kind:?} timestamps went back: {ts:?}"
            );
        }
    }

    /// Forward jumps of the video track bigger than a skip's worth (what the hub skipped).
    fn video_jumps(&self) -> usize {
        let ts: Vec<u32> = self
            .frames
            .iter()
            .filter(|f| f.0 == MediaKind::Video)
            .map(|f| f.1)
            .collect();
        ts.windows(2).filter(|w| w[1] - w[0] > 500).count()
    }
}

/// Reads at [`SLOW_RATE`] on average: after each read, sleeps until the bytes so far are due.
struct Pace {
    start: Instant,
    bytes: usize,
}

impl Pace {
    fn new() -> Pace {
        Pace {
            start: Instant::now(),
            bytes: 0,
        }
    }

    async fn took(&mut self, n: usize) {
        self.bytes += n;
        let due = self.start + Duration::from_secs_f64(self.bytes as f64 / SLOW_RATE as f64);
        tokio::time::sleep_until(due.into()).await;
    }
}

async fn slow_socket(addr: std::net::SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .set_recv_buffer_size(SLOW_RCVBUF)
        .expect("receive buffer");
    // An Ethernet-sized segment, as a real link has: with loopback's 64 KiB one, a receive
    // buffer this small never opens a window worth a segment, and the connection stalls.
    socket2::SockRef::from(&socket)
        .set_tcp_mss(1448)
        .expect("segment size");
    socket.connect(addr).await.expect("connect")
}

/// Collects FLV bytes and demuxes them into frames as they come.
struct Collector {
    received: Received,
    demuxer: FlvDemuxer,
    buf: BytesMut,
}

impl Collector {
    fn new() -> Collector {
        Collector {
            received: Received::default(),
            demuxer: FlvDemuxer::new(FlvLimits::default()),
            buf: BytesMut::new(),
        }
    }

    fn flv(&mut self, bytes: &[u8]) {
        self.received.flv.extend_from_slice(bytes);
        self.buf.extend_from_slice(bytes);
        while let Ok(Some(tag)) = self.demuxer.decode(&mut self.buf) {
            let f = tag.into_frame();
            if f.kind != MediaKind::Script && !f.sequence_header {
                self.received
                    .frames
                    .push((f.kind, f.timestamp.as_millis(), f.keyframe));
            }
        }
    }
}

/// Plays over `wire` through a slow link for `watch` (or until the server ends it).
async fn slow_viewer(server: &TestServer, wire: Wire, watch: Duration) -> Received {
    let mut c = Collector::new();
    let deadline = tokio::time::Instant::now() + watch;
    let read = async {
        match wire {
            Wire::HttpFlv => http_flv(server, &mut c).await,
            Wire::WsFlv => ws_flv(server, &mut c).await,
            Wire::Rtmp => rtmp(server, &mut c).await,
        }
    };
    let _ = tokio::time::timeout_at(deadline, read).await;
    c.received
}

async fn http_flv(server: &TestServer, c: &mut Collector) {
    let socket = slow_socket(server.http_addr).await;
    let path = format!("/live/{}.flv", server.channel);
    let authority = server.http_addr.to_string();
    let response = http::request_on(
        socket,
        "GET",
        &authority,
        &path,
        &[],
        Duration::from_secs(5),
    )
    .await
    .expect("http-flv answers");
    assert_eq!(response.status, 200);
    let mut body = response.body;
    let mut pace = Pace::new();
    loop {
        match body.next().await {
            Ok(Some(b)) => {
                c.flv(&b);
                pace.took(b.len()).await;
            }
            Ok(None) => {
                c.received.ended = Some("the body ended".into());
                return;
            }
            Err(e) => {
                c.received.ended = Some(format!("{e:#}"));
                c.received.reset = true;
                return;
            }
        }
    }
}

async fn ws_flv(server: &TestServer, c: &mut Collector) {
    let socket = slow_socket(server.http_addr).await;
    let url = server.ws_url(&server.channel);
    let (mut ws, _) = tokio_tungstenite::client_async(url.as_str(), socket)
        .await
        .expect("ws-flv opens");
    let mut pace = Pace::new();
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => {
                c.flv(&b);
                pace.took(b.len()).await;
            }
            Some(Ok(Message::Close(frame))) => {
                c.received.ended = Some(match frame {
                    Some(f) => format!("close {} {}", u16::from(f.code), f.reason),
                    None => "close".into(),
                });
                // Answer the close, then see the server's FIN.
                let _ = ws.close(None).await;
                while let Some(m) = ws.next().await {
                    if let Err(e) = m {
                        c.received.reset = is_reset(&e.to_string());
                        break;
                    }
                }
                return;
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                c.received.ended = Some(format!("{e}"));
                c.received.reset = true;
                return;
            }
            None => {
                c.received.ended = Some("eof without a close frame".into());
                return;
            }
        }
    }
}

fn is_reset(error: &str) -> bool {
    error.contains("reset") || error.contains("Connection reset")
}

async fn rtmp(server: &TestServer, c: &mut Collector) {
    let socket = slow_socket(server.rtmp_addr).await;
    let (mut reader, mut writer) = socket.into_split();
    let config = ClientConfig {
        tc_url: format!("rtmp://{}/live", server.rtmp_addr),
        ..ClientConfig::default()
    };
    let mut session = ClientSession::new(config, Instant::now(), rand::random());
    session.play(&server.channel);
    c.flv(
        &FlvHeader {
            has_audio: true,
            has_video: true,
        }
        .encode(),
    );
    let mut pace = Pace::new();
    let mut buf = vec![0u8; 4096];
    loop {
        while let Some(out) = session.poll_output() {
            match out {
                ClientOutput::Transmit(bytes) => {
                    if writer.write_all(&bytes).await.is_err() {
                        c.received.reset = true;
                        return;
                    }
                }
                ClientOutput::Event(ClientEvent::Media {
                    kind,
                    timestamp,
                    payload,
                }) => c.flv(&onair_flv::encode_tag(
                    kind,
                    Timestamp::from_millis(timestamp),
                    &payload,
                )),
                ClientOutput::Event(ClientEvent::Metadata { timestamp, payload }) => {
                    c.flv(&onair_flv::encode_tag(
                        MediaKind::Script,
                        Timestamp::from_millis(timestamp),
                        &payload,
                    ))
                }
                ClientOutput::Event(ClientEvent::Rejected { code, description }) => {
                    c.received.ended = Some(format!("{code}: {description}"));
                }
                ClientOutput::Event(_) => {}
            }
        }
        match reader.read(&mut buf).await {
            Ok(0) => {
                c.received.ended.get_or_insert_with(|| "eof".into());
                return;
            }
            Ok(n) => {
                if session.handle_input(Instant::now(), &buf[..n]).is_err() {
                    c.received.ended.get_or_insert_with(|| "bad rtmp".into());
                    return;
                }
                pace.took(n).await;
            }
            Err(e) => {
                c.received.ended.get_or_insert_with(|| format!("{e}"));
                c.received.reset = true;
                return;
            }
        }
    }
}

/// A fast HTTP-FLV viewer: the newest video timestamp it has seen, kept up to date.
fn live_edge(server: &TestServer) -> (Arc<AtomicU32>, tokio::task::JoinHandle<()>) {
    let newest = Arc::new(AtomicU32::new(0));
    let url = server.flv_url(&server.channel);
    let n = newest.clone();
    let task = tokio::spawn(async move {
        let Ok((_, _, mut reader)) = FlvReader::http(&url, Duration::from_secs(5)).await else {
            return;
        };
        while let Ok(Some(tag)) = reader.next_tag().await {
            if tag.kind == MediaKind::Video && !tag.sequence_header {
                n.fetch_max(tag.timestamp, Ordering::Relaxed);
            }
        }
    });
    (newest, task)
}

async fn live(configure: impl FnOnce(&mut onair::config::Config)) -> Option<(TestServer, Ffmpeg)> {
    if !require_ffmpeg() {
        return None;
    }
    let server = TestServer::start(configure).await;
    let ffmpeg = Ffmpeg::publish(
        &server.publish_url(&server.key),
        PUBLISH_SECONDS,
        Tracks::Both,
    );
    assert!(
        server.wait_live(&server.channel, LIVE_TIMEOUT).await,
        "the channel did not go live; ffmpeg said:\n{}",
        ffmpeg.stderr()
    );
    Some((server, ffmpeg))
}

async fn assert_decodes(what: &str, flv: &[u8]) {
    let path = std::env::temp_dir().join(format!("onair-slow-{}-{}.flv", what, std::process::id()));
    std::fs::write(&path, flv).expect("write the received stream");
    let probe = ffprobe(&path.to_string_lossy(), 600, PROBE_TIMEOUT).await;
    let _ = std::fs::remove_file(&path);
    assert!(probe.success, "{what}: ffprobe failed: {probe:#?}");
    assert_eq!(probe.video_codec.as_deref(), Some("h264"), "{what}");
    assert!(
        probe.video_frames >= 3,
        "{what}: too few decoded frames: {probe:#?}"
    );
    assert_eq!(
        probe.first_video_frame_keyframe,
        Some(true),
        "{what}: {probe:#?}"
    );
}

async fn kept_near_live(wire: Wire) {
    let Some((server, _ffmpeg)) = live(|_| {}).await else {
        return;
    };
    let (edge, edge_task) = live_edge(&server);
    let got = slow_viewer(&server, wire, WATCH).await;
    let live_ts = edge.load(Ordering::Relaxed);
    edge_task.abort();
    let what = format!("{wire:?}");
    assert_eq!(got.ended, None, "{what}: the slow viewer was ended");
    let newest = got.newest().expect("the slow viewer got frames");
    let lag = live_ts.saturating_sub(newest);
    let bytes = got.flv.len();
    println!(
        "{what}: slow viewer {bytes} bytes in {WATCH:?}, {} frames, {} skips seen, {lag} ms behind live at the end",
        got.frames.len(),
        got.video_jumps()
    );
    assert!(
        bytes as f64 >= SLOW_RATE as f64 * WATCH.as_secs_f64() * 0.6,
        "{what}: the link was not used ({bytes} bytes)"
    );
    assert!(
        lag <= MAX_LAG_MS,
        "{what}: {lag} ms behind live (live {live_ts}, slow {newest})"
    );
    assert!(
        got.video_jumps() >= 1,
        "{what}: a tenth of the rate needs skips to stay near live"
    );
    got.assert_monotonic(&what);
    assert_decodes(&what, &got.flv).await;
    assert!(server.shutdown().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_rtmp_viewer_is_kept_near_live_and_decodes() {
    kept_near_live(Wire::Rtmp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_http_flv_viewer_is_kept_near_live_and_decodes() {
    kept_near_live(Wire::HttpFlv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_ws_flv_viewer_is_kept_near_live_and_decodes() {
    kept_near_live(Wire::WsFlv).await;
}

/// With `hub.max_skips` at 1 the second skip drops the viewer: it is told why and the
/// connection ends with a FIN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_slow_viewer_is_told_why_and_closed_cleanly() {
    let Some((server, _ffmpeg)) = live(|c| c.hub.max_skips = 1).await else {
        return;
    };
    let (rtmp, http_flv, ws_flv) = tokio::join!(
        slow_viewer(&server, Wire::Rtmp, Duration::from_secs(25)),
        slow_viewer(&server, Wire::HttpFlv, Duration::from_secs(25)),
        slow_viewer(&server, Wire::WsFlv, Duration::from_secs(25)),
    );
    let status = rtmp.ended.clone().unwrap_or_default();
    assert!(
        status.starts_with("NetStream.Play.Failed: ") && status.contains("too slow"),
        "rtmp: {status:?}"
    );
    assert!(!rtmp.reset, "rtmp: the connection was reset: {rtmp:?}");
    assert_eq!(http_flv.ended.as_deref(), Some("the body ended"));
    assert!(!http_flv.reset);
    assert_eq!(ws_flv.ended.as_deref(), Some("close 1008 too slow"));
    assert!(!ws_flv.reset, "ws-flv: {:?}", ws_flv.ended);
    for (what, got) in [
        ("rtmp", &rtmp),
        ("http-flv", &http_flv),
        ("ws-flv", &ws_flv),
    ] {
        assert_decodes(&format!("dropped-{what}"), &got.flv).await;
    }
    let dropped = server.metric("onair_viewers_dropped_slow_total").await;
    assert_eq!(dropped, Some(3.0));
    assert!(server.shutdown().await);
}
