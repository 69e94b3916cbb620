//! Viewers: many light clients on one thread, each reading with a 64 KiB buffer and timing
//! every probe it receives.
//!
//! RTMP viewers drive the handshake and `ChunkDecoder` directly rather than a full
//! `ClientSession`: the session copies every read into its own buffer, one more copy per byte
//! than the load core can afford at thousands of viewers. HTTP-FLV viewers speak just enough
//! HTTP/1.1 to send a GET and undo the chunked transfer encoding, then feed `FlvDemuxer`.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use bytes::{Buf, BytesMut};
use onair_amf::Value;
use onair_flv::FlvDemuxer;
use onair_media::MediaKind;
use onair_rtmp::chunk::{ChunkDecoder, ChunkEncoder, RawMessage};
use onair_rtmp::handshake::{ClientHandshake, ClientHandshakeKind};
use onair_rtmp::limits::RtmpLimits;
use onair_rtmp::message::{Message, UserControl, split_aggregate};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Protocol;
use crate::histogram::Histogram;
use crate::publisher::CHANNEL;
use crate::stream::{Window, probe};

/// Each viewer reads up to this much per call.
const READ_BUF: usize = 64 * 1024;
/// Errors kept for the report.
const MAX_ERRORS: usize = 5;

/// What all viewers of one run share.
#[derive(Debug)]
pub struct Shared {
    /// The clock the publisher stamps probes with.
    pub epoch: Instant,
    /// Which probes count.
    pub window: std::sync::Arc<Window>,
    /// Receive time minus send time of every probe sent inside the window.
    pub latency: Histogram,
    /// Viewers that received their first video frame or failed: the ramp waits on it.
    pub settled: AtomicUsize,
    /// The first few reasons viewers ended.
    pub errors: Mutex<Vec<String>>,
}

impl Shared {
    /// Shared state for a run whose probes are stamped against `epoch`.
    pub fn new(epoch: Instant, window: std::sync::Arc<Window>) -> Shared {
        Shared {
            epoch,
            window,
            latency: Histogram::new(),
            settled: AtomicUsize::new(0),
            errors: Mutex::new(Vec::new()),
        }
    }

    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
}

/// One viewer's figures.
#[derive(Debug, Default)]
pub struct ViewerStats {
    /// Nanoseconds from starting to connect to the first video frame; 0 until then.
    pub ttff_ns: AtomicU64,
    /// The first video frame was not a keyframe.
    pub first_not_key: AtomicBool,
    /// Payload bytes received whose probe was sent inside the window.
    pub window_bytes: AtomicU64,
    /// The connection ended (or never started) before the run did.
    pub disconnected: AtomicBool,
    /// Send time of the newest probe received (any time, not only in the window).
    pub newest_sent_ns: AtomicU64,
    /// Frames the server never sent this viewer (gaps in the publisher's sequence numbers):
    /// what skips to the newest keyframe passed over.
    pub skipped: AtomicU64,
    /// Why the connection ended, once it has.
    pub ended: Mutex<Option<String>>,
}

/// A viewer on a slow link: its socket holds little in flight (a small receive buffer and
/// an Ethernet-sized segment) and it reads at a set byte rate.
#[derive(Debug, Clone, Copy)]
pub struct Slow {
    /// Bytes a second it reads.
    pub rate: f64,
}

/// The slow viewer's receive buffer (the kernel doubles it).
const SLOW_RCVBUF: u32 = 8 * 1024;

/// Reads at a [`Slow`] rate on average: after each read, sleeps until the bytes so far are due.
struct Pace {
    rate: f64,
    start: tokio::time::Instant,
    bytes: u64,
}

impl Pace {
    async fn took(&mut self, n: usize) {
        self.bytes += n as u64;
        let due = self.start + std::time::Duration::from_secs_f64(self.bytes as f64 / self.rate);
        tokio::time::sleep_until(due).await;
    }
}

async fn connect(addr: SocketAddr, slow: Option<Slow>) -> anyhow::Result<TcpStream> {
    let Some(_) = slow else {
        return Ok(TcpStream::connect(addr).await?);
    };
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(SLOW_RCVBUF)?;
    // With loopback's 64 KiB segments a buffer this small never opens a window worth one.
    socket2::SockRef::from(&socket).set_tcp_mss(1448)?;
    Ok(socket.connect(addr).await?)
}

/// Runs one viewer until its connection ends or the task is aborted.
pub async fn run(
    protocol: Protocol,
    addr: SocketAddr,
    shared: &Shared,
    stats: &ViewerStats,
    slow: Option<Slow>,
) {
    let mut probes = Probes {
        shared,
        stats,
        start_ns: shared.now_ns(),
        seen_video: false,
        last_seq: None,
        slow,
        pace: slow.map(|s| Pace {
            rate: s.rate,
            start: tokio::time::Instant::now(),
            bytes: 0,
        }),
    };
    let ended = match protocol {
        Protocol::Rtmp => rtmp(addr, &mut probes).await,
        Protocol::HttpFlv => http_flv(addr, &mut probes).await,
    };
    stats.disconnected.store(true, Ordering::Relaxed);
    if !probes.seen_video {
        shared.settled.fetch_add(1, Ordering::Relaxed);
    }
    let reason = match ended {
        Ok(()) => "the server ended the stream".to_owned(),
        Err(e) => format!("{e:#}"),
    };
    *stats.ended.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason.clone());
    let mut errors = shared.errors.lock().unwrap_or_else(|e| e.into_inner());
    if errors.len() < MAX_ERRORS {
        errors.push(reason);
    }
}

/// Reads the probes of one viewer's media.
struct Probes<'a> {
    shared: &'a Shared,
    stats: &'a ViewerStats,
    start_ns: u64,
    seen_video: bool,
    last_seq: Option<u64>,
    slow: Option<Slow>,
    pace: Option<Pace>,
}

impl Probes<'_> {
    /// After `n` bytes were read: a slow viewer waits until its link would have carried them.
    async fn read(&mut self, n: usize) {
        if let Some(pace) = &mut self.pace {
            pace.took(n).await;
        }
    }

    fn on_media(&mut self, kind: MediaKind, body: &[u8], received_ns: u64) {
        let Some(p) = probe(kind, body) else { return };
        self.stats
            .newest_sent_ns
            .fetch_max(p.sent_ns, Ordering::Relaxed);
        if let Some(last) = self.last_seq
            && p.seq > last + 1
        {
            self.stats
                .skipped
                .fetch_add(p.seq - last - 1, Ordering::Relaxed);
        }
        self.last_seq = Some(self.last_seq.map_or(p.seq, |l| l.max(p.seq)));
        if kind == MediaKind::Video && !self.seen_video {
            self.seen_video = true;
            self.stats.ttff_ns.store(
                received_ns.saturating_sub(self.start_ns).max(1),
                Ordering::Relaxed,
            );
            if !p.keyframe {
                self.stats.first_not_key.store(true, Ordering::Relaxed);
            }
            self.shared.settled.fetch_add(1, Ordering::Relaxed);
        }
        if self.shared.window.contains(p.sent_ns) {
            self.stats
                .window_bytes
                .fetch_add(body.len() as u64, Ordering::Relaxed);
            self.shared
                .latency
                .record(received_ns.saturating_sub(p.sent_ns));
        }
    }
}

/// Reads more bytes into `buf`; an orderly close is an error here because viewers never
/// expect the stream to end during a run.
async fn read_more(socket: &mut TcpStream, buf: &mut BytesMut) -> anyhow::Result<usize> {
    if buf.capacity() - buf.len() < READ_BUF / 4 {
        buf.reserve(READ_BUF);
    }
    let n = socket.read_buf(buf).await?;
    if n == 0 {
        bail!("the server closed the connection");
    }
    Ok(n)
}

async fn rtmp(addr: SocketAddr, probes: &mut Probes<'_>) -> anyhow::Result<()> {
    let mut socket = connect(addr, probes.slow).await.context("connecting")?;
    socket.set_nodelay(true)?;
    let mut buf = BytesMut::with_capacity(READ_BUF);

    // The simple handshake: the digest one only adds HMACs, which OnAir accepts either way.
    let mut handshake = ClientHandshake::new(rand::random(), 0, ClientHandshakeKind::Simple);
    while !handshake.is_done() {
        while let Some(bytes) = handshake.poll_transmit() {
            socket.write_all(&bytes).await?;
        }
        if handshake.is_done() {
            break;
        }
        read_more(&mut socket, &mut buf).await?;
        let consumed = handshake.handle_input(&buf)?;
        buf.advance(consumed);
    }
    while let Some(bytes) = handshake.poll_transmit() {
        socket.write_all(&bytes).await?;
    }

    // connect, createStream and play pipelined, as FFmpeg does with `-rtmp_live live`: the
    // server handles them in order, and the first createStream gives stream 1.
    let mut encoder = ChunkEncoder::new();
    let mut out = BytesMut::new();
    let tc_url = format!("rtmp://{addr}/live");
    let connect = Value::object([
        ("app", Value::from("live")),
        ("flashVer", "LNX 9,0,124,2".into()),
        ("tcUrl", tc_url.as_str().into()),
        ("fpad", false.into()),
        ("capabilities", 15.0.into()),
        ("audioCodecs", 4071.0.into()),
        ("videoCodecs", 252.0.into()),
        ("videoFunction", 1.0.into()),
        ("objectEncoding", 0.0.into()),
    ]);
    send(
        &mut encoder,
        &mut out,
        3,
        0,
        &command("connect", 1.0, connect, vec![]),
    );
    send(
        &mut encoder,
        &mut out,
        3,
        0,
        &command("createStream", 2.0, Value::Null, vec![]),
    );
    let play_args = vec![CHANNEL.into(), (-2.0).into(), (-1.0).into()];
    send(
        &mut encoder,
        &mut out,
        4,
        1,
        &command("play", 0.0, Value::Null, play_args),
    );
    let buffer = UserControl::SetBufferLength {
        stream_id: 1,
        buffer_ms: 3000,
    };
    send(&mut encoder, &mut out, 2, 0, &Message::UserControl(buffer));
    socket.write_all(&out).await?;
    out.clear();

    let mut decoder = ChunkDecoder::new(RtmpLimits::default());
    let (mut received, mut acked, mut window) = (0u32, 0u32, 0u32);
    let mut received_ns = probes.shared.now_ns();
    loop {
        while let Some(raw) = decoder.decode(&mut buf)? {
            match raw.type_id {
                8 => probes.on_media(MediaKind::Audio, &raw.payload, received_ns),
                9 => probes.on_media(MediaKind::Video, &raw.payload, received_ns),
                22 => {
                    for part in split_aggregate(&raw)? {
                        if let Some(kind) = MediaKind::from_tag_type(part.type_id) {
                            probes.on_media(kind, &part.payload, received_ns);
                        }
                    }
                }
                1 | 4 | 5 | 20 => match Message::decode(&raw)? {
                    Message::SetChunkSize(size) => decoder.set_chunk_size(size)?,
                    Message::WindowAckSize(size) => window = size,
                    Message::UserControl(UserControl::PingRequest(t)) => {
                        send(
                            &mut encoder,
                            &mut out,
                            2,
                            0,
                            &Message::UserControl(UserControl::PingResponse(t)),
                        );
                    }
                    Message::Command { name, args, .. } => check_status(&name, &args)?,
                    _ => {}
                },
                _ => {}
            }
        }
        // Acknowledge as RTMP 1.0 §5.4.3 asks: the total received, once per window.
        if window != 0 && received.wrapping_sub(acked) >= window {
            acked = received;
            send(
                &mut encoder,
                &mut out,
                2,
                0,
                &Message::Acknowledgement {
                    sequence_number: received,
                },
            );
        }
        if !out.is_empty() {
            socket.write_all(&out).await?;
            out.clear();
        }
        let n = read_more(&mut socket, &mut buf).await?;
        probes.read(n).await;
        received = received.wrapping_add(n as u32);
        received_ns = probes.shared.now_ns();
    }
}

fn command(name: &str, transaction_id: f64, command_object: Value, args: Vec<Value>) -> Message {
    Message::Command {
        amf3: false,
        name: name.to_owned(),
        transaction_id,
        command_object,
        args,
    }
}

fn send(
    encoder: &mut ChunkEncoder,
    out: &mut BytesMut,
    csid: u32,
    message_stream_id: u32,
    message: &Message,
) {
    let raw = RawMessage {
        csid,
        timestamp: 0,
        type_id: message.type_id(),
        message_stream_id,
        payload: message.encode_payload(),
    };
    encoder.encode(&raw, out);
}

/// Fails on `_error` and on an error-level `onStatus` (play refused, stream not found).
fn check_status(name: &str, args: &[Value]) -> anyhow::Result<()> {
    let info = args.iter().find(|v| v.get("code").is_some());
    let field = |k: &str| {
        info.and_then(|v| v.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    if name == "_error" || (name == "onStatus" && field("level") == "error") {
        bail!(
            "the server refused: {name} {} ({})",
            field("code"),
            field("description")
        );
    }
    Ok(())
}

async fn http_flv(addr: SocketAddr, probes: &mut Probes<'_>) -> anyhow::Result<()> {
    let mut socket = connect(addr, probes.slow).await.context("connecting")?;
    socket.set_nodelay(true)?;
    let request = format!(
        "GET /live/{CHANNEL}.flv HTTP/1.1\r\nHost: {addr}\r\nAccept: */*\r\nUser-Agent: onair-bench\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).await?;

    let mut buf = BytesMut::with_capacity(READ_BUF);
    let head_len = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 16 * 1024 {
            bail!("response head longer than 16 KiB");
        }
        read_more(&mut socket, &mut buf).await?;
    };
    let head = String::from_utf8_lossy(&buf[..head_len]).into_owned();
    buf.advance(head_len);
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        bail!("the server answered {status:?}");
    }
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });

    let mut dechunk = Dechunk::Size;
    let mut flv = BytesMut::with_capacity(READ_BUF);
    let mut demuxer = FlvDemuxer::default();
    let mut received_ns = probes.shared.now_ns();
    loop {
        if chunked {
            if dechunk.feed(&mut buf, &mut flv)? {
                return Ok(());
            }
        } else {
            flv.extend_from_slice(&buf);
            buf.clear();
        }
        while let Some(tag) = demuxer.decode(&mut flv)? {
            probes.on_media(tag.kind, &tag.body, received_ns);
        }
        let n = read_more(&mut socket, &mut buf).await?;
        probes.read(n).await;
        received_ns = probes.shared.now_ns();
    }
}

/// Undoes `Transfer-Encoding: chunked` (RFC 9112 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dechunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside chunk data with this many bytes left.
    Data(usize),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// The last chunk arrived.
    Done,
}

impl Dechunk {
    /// Moves the data of complete or partial chunks from `input` to `out`; `true` once the
    /// last chunk arrived.
    fn feed(&mut self, input: &mut BytesMut, out: &mut BytesMut) -> anyhow::Result<bool> {
        loop {
            match *self {
                Dechunk::Size => {
                    let Some(eol) = input.windows(2).position(|w| w == b"\r\n") else {
                        if input.len() > 1024 {
                            bail!("chunk-size line longer than 1 KiB");
                        }
                        return Ok(false);
                    };
                    let line = std::str::from_utf8(&input[..eol])?;
                    let hex = line.split(';').next().unwrap_or_default().trim();
                    let size = usize::from_str_radix(hex, 16)
                        .with_context(|| format!("bad chunk size {line:?}"))?;
                    input.advance(eol + 2);
                    *self = if size == 0 {
                        Dechunk::Done
                    } else {
                        Dechunk::Data(size)
                    };
                }
                Dechunk::Data(left) => {
                    let take = left.min(input.len());
                    out.extend_from_slice(&input[..take]);
                    input.advance(take);
                    if take < left {
                        *self = Dechunk::Data(left - take);
                        return Ok(false);
                    }
                    *self = Dechunk::DataEnd;
                }
                Dechunk::DataEnd => {
                    if input.len() < 2 {
                        return Ok(false);
                    }
                    if &input[..2] != b"\r\n" {
                        bail!("chunk data not followed by CRLF");
                    }
                    input.advance(2);
                    *self = Dechunk::Size;
                }
                Dechunk::Done => return Ok(true),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dechunking_survives_any_split() {
        let body: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let mut wire = Vec::new();
        for part in body.chunks(70) {
            wire.extend_from_slice(format!("{:x};ext=1\r\n", part.len()).as_bytes());
            wire.extend_from_slice(part);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"0\r\n\r\n");
        for step in [1, 2, 3, 7, 64, wire.len()] {
            let (mut state, mut input, mut out, mut done) =
                (Dechunk::Size, BytesMut::new(), BytesMut::new(), false);
            for piece in wire.chunks(step) {
                input.extend_from_slice(piece);
                done = state.feed(&mut input, &mut out).unwrap();
            }
            assert!(done, "step {step}");
            assert_eq!(&out[..], &body[..], "step {step}");
        }
    }
}
