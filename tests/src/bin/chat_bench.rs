//! `onair-chat-bench`: chat fan-out benchmark of one OnAir server process.
//!
//! K WebSocket clients join one room (`demo`); a few signed-in senders send M chat messages
//! per second between them. Every message's text carries its sequence number and send time,
//! so each client measures the delivery latency (receive time − send time) of every message.
//! For each K the bench prints the delivered fraction (messages received by the K clients ÷
//! K × messages sent inside the window), latency p50/p99/max, how long K clients took to
//! connect and get their `history` frame, clients the server dropped, and the server's CPU
//! (from `/proc/PID/stat`) and the bench's own (near 100 % means the load generator, not the
//! server, is the limit).
//!
//! The server runs as the release binary pinned to one core (`taskset`), the clients on the
//! other, as `onair-bench` does. Each run starts a fresh server with its own SQLite database
//! in a temp directory, with registration on and the per-user message limit raised so a few
//! senders can carry the whole rate (the limits are not what is measured).
//!
//! ```text
//! cargo build --release -p onair -p onair-e2e --bin onair --bin onair-chat-bench
//! target/release/onair-chat-bench --clients 1000,5000 --rate 200
//! ```
//!
//! Receivers speak just enough WebSocket (RFC 6455) to read unfragmented server frames and
//! answer pings: a full client per connection costs the load core more than the server.

#[path = "bench/histogram.rs"]
mod histogram;
// Shared with `onair-bench`; this bench uses only part of it.
#[allow(dead_code)]
#[path = "bench/server.rs"]
mod server;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::{Buf, BytesMut};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::histogram::{Histogram, quantile_of};
use crate::server::ServerProcess;

/// The room every client joins: the bootstrap's channel.
const CHANNEL: &str = "demo";
/// Text that starts a bench message, rare enough never to occur elsewhere in a frame.
const MARKER: &[u8] = b"\"~b ";
/// How long one batch of clients may take to get their `history` frame.
const BATCH_LIMIT: Duration = Duration::from_secs(20);
/// After the window closes, messages sent inside it may still be on their way.
const DRAIN: Duration = Duration::from_secs(3);
const READ_BUF: usize = 64 * 1024;

/// Chat fan-out benchmark: K clients in one room, M messages per second.
#[derive(Debug, Parser)]
#[command(name = "onair-chat-bench")]
struct Cli {
    /// Client counts to run, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1000,5000")]
    clients: Vec<usize>,
    /// Messages per second, over all senders.
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// Signed-in sender connections (besides the K clients).
    #[arg(long, default_value_t = 10)]
    senders: usize,
    /// Time between the senders starting and the measurement window.
    #[arg(long, default_value = "3", value_parser = parse_secs)]
    warmup: Duration,
    /// Length of the measurement window.
    #[arg(long, default_value = "10", value_parser = parse_secs)]
    measure: Duration,
    /// The `onair` server binary [default: `onair` next to this executable].
    #[arg(long)]
    server: Option<PathBuf>,
    /// Core the server is pinned to.
    #[arg(long, default_value_t = 0)]
    server_core: usize,
    /// Core the clients are pinned to.
    #[arg(long, default_value_t = 1)]
    load_core: usize,
    /// Do not pin anything (no `taskset`).
    #[arg(long)]
    no_pin: bool,
    /// Clients connected at a time during the ramp.
    #[arg(long, default_value_t = 250)]
    batch: usize,
}

/// What every client of a run shares.
struct Shared {
    epoch: Instant,
    /// Send times (ns since `epoch`) inside `[start, end)` count.
    window: (AtomicU64, AtomicU64),
    latency: Histogram,
    /// Counted messages received, over all clients.
    received: AtomicU64,
    /// Clients that got their `history` frame or failed: the ramp waits on it.
    settled: AtomicUsize,
    joined: AtomicUsize,
    /// Clients whose socket ended before the bench stopped them.
    ended: AtomicUsize,
    /// Time to `history`, per client.
    join_times: std::sync::Mutex<Vec<Duration>>,
    errors: std::sync::Mutex<Vec<String>>,
}

impl Shared {
    fn counts(&self, sent_ns: u64) -> bool {
        let start = self.window.0.load(Ordering::Relaxed);
        let end = self.window.1.load(Ordering::Relaxed);
        start != 0 && (start..end).contains(&sent_ns)
    }

    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn error(&self, e: String) {
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        if errors.len() < 5 {
            errors.push(e);
        }
    }
}

#[derive(Debug, Default)]
struct SenderStats {
    sent: AtomicU64,
    acked: AtomicU64,
    refused: AtomicU64,
}

struct RunResult {
    clients: usize,
    joined: usize,
    connect: Duration,
    join_p50: Option<Duration>,
    join_p99: Option<Duration>,
    sent: u64,
    /// Length of the window.
    secs: f64,
    refused: u64,
    delivered: f64,
    p50: Option<Duration>,
    p99: Option<Duration>,
    max: Option<Duration>,
    server_cpu: f64,
    server_rss: u64,
    client_cpu: f64,
    ended: usize,
    server_alive: bool,
    errors: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let server = server::server_binary(cli.server.as_deref())?;
    if !cli.no_pin {
        server::pin_self(cli.load_core)
            .context("pinning the bench to the load core (use --no-pin to skip)")?;
    }
    println!(
        "onair-chat-bench: server {} on core {}, clients on core {}; {} msg/s from {} senders; warm-up {:?}, window {:?}",
        server.display(),
        if cli.no_pin {
            "any".into()
        } else {
            cli.server_core.to_string()
        },
        if cli.no_pin {
            "any".into()
        } else {
            cli.load_core.to_string()
        },
        cli.rate,
        cli.senders,
        cli.warmup,
        cli.measure,
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut rows = Vec::new();
    for &k in &cli.clients {
        match runtime.block_on(run_one(&cli, &server, k)) {
            Ok(r) => {
                println!("{}", row(&r));
                rows.push(r);
            }
            Err(e) => println!("{k:>6} clients: failed: {e:#}"),
        }
    }
    println!("\nresults (latency = receive time − send time of the same message, ms)");
    println!("{}", header());
    for r in &rows {
        println!("{}", row(r));
        for e in &r.errors {
            println!("    client ended: {e}");
        }
    }
    Ok(())
}

async fn run_one(cli: &Cli, binary: &Path, k: usize) -> anyhow::Result<RunResult> {
    let data = std::env::temp_dir().join(format!("onair-chat-bench-{}-{k}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data)?;
    let log = std::env::temp_dir().join(format!("onair-chat-bench-server-{k}.log"));
    let core = (!cli.no_pin).then_some(cli.server_core);
    let data_dir = data.display().to_string();
    let mut server = ServerProcess::start_with(
        binary,
        core,
        log,
        &[
            ("ONAIR_STORAGE_DATA_DIR", &data_dir),
            ("ONAIR_HLS_ENABLED", "false"),
            ("ONAIR_AUTH_REGISTRATION", "true"),
            ("ONAIR_AUTH_LOGIN_ATTEMPTS_PER_MINUTE", "100000"),
            ("ONAIR_CHAT_USER_MESSAGES", "1000000"),
            ("ONAIR_CHAT_FLOOD_FRAMES_PER_SECOND", "100000"),
            // Every client comes from 127.0.0.1, past the per-address cap (256).
            ("ONAIR_HTTP_MAX_CONNECTIONS_PER_ADDRESS", "100000"),
        ],
    )?;
    let result = measure(cli, &mut server, k).await;
    server.stop();
    let _ = std::fs::remove_dir_all(&data);
    result
}

async fn measure(cli: &Cli, server: &mut ServerProcess, k: usize) -> anyhow::Result<RunResult> {
    let http = server.http;
    let mut tokens = Vec::new();
    for i in 0..cli.senders.max(1) {
        tokens.push(register(http, &format!("sender{i}")).await?);
    }
    let shared = Arc::new(Shared {
        epoch: Instant::now(),
        window: (AtomicU64::new(0), AtomicU64::new(0)),
        latency: Histogram::new(),
        received: AtomicU64::new(0),
        settled: AtomicUsize::new(0),
        joined: AtomicUsize::new(0),
        ended: AtomicUsize::new(0),
        join_times: std::sync::Mutex::new(Vec::with_capacity(k)),
        errors: std::sync::Mutex::new(Vec::new()),
    });
    let (stop_tx, stop_rx) = watch::channel(false);

    let ramp_start = Instant::now();
    let mut tasks = Vec::with_capacity(k + tokens.len());
    while tasks.len() < k {
        let batch = cli.batch.max(1).min(k - tasks.len());
        for _ in 0..batch {
            let (shared, stop) = (shared.clone(), stop_rx.clone());
            tasks.push(tokio::spawn(async move {
                if let Err(e) = receive(http, &shared, stop).await {
                    shared.error(format!("{e:#}"));
                }
            }));
        }
        let deadline = Instant::now() + BATCH_LIMIT;
        while shared.settled.load(Ordering::Relaxed) < tasks.len() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let connect = ramp_start.elapsed();

    let senders = Arc::new(SenderStats::default());
    let per_sender = Duration::from_secs_f64(tokens.len() as f64 / f64::from(cli.rate.max(1)));
    for (i, token) in tokens.into_iter().enumerate() {
        let (shared, stats, stop) = (shared.clone(), senders.clone(), stop_rx.clone());
        // Staggered so the senders' ticks spread over each interval instead of bunching.
        let offset = per_sender.mul_f64(i as f64 / cli.senders.max(1) as f64);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(offset).await;
            if let Err(e) = send(http, token, per_sender, &shared, &stats, stop).await {
                shared.error(format!("sender: {e:#}"));
            }
        }));
    }

    let start = shared.epoch.elapsed() + cli.warmup;
    let end = start + cli.measure;
    tokio::time::sleep_until((shared.epoch + start).into()).await;
    let sent0 = senders.sent.load(Ordering::Relaxed);
    let refused0 = senders.refused.load(Ordering::Relaxed);
    shared
        .window
        .1
        .store(end.as_nanos() as u64, Ordering::Relaxed);
    shared
        .window
        .0
        .store(start.as_nanos() as u64, Ordering::Relaxed);
    let (server_cpu0, client_cpu0) = (server::cpu_time(Some(server.pid))?, server::cpu_time(None)?);
    tokio::time::sleep_until((shared.epoch + end).into()).await;
    let (server_cpu1, client_cpu1) = (server::cpu_time(Some(server.pid))?, server::cpu_time(None)?);
    let sent = senders.sent.load(Ordering::Relaxed) - sent0;
    let refused = senders.refused.load(Ordering::Relaxed) - refused0;
    let (server_rss, _) = server::memory(server.pid)?;
    tokio::time::sleep(DRAIN).await;
    let server_alive = server.is_running();
    let ended = shared.ended.load(Ordering::Relaxed);
    let _ = stop_tx.send(true);
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        let _ = t.await;
    }

    let secs = cli.measure.as_secs_f64();
    let received = shared.received.load(Ordering::Relaxed);
    let mut joins =
        std::mem::take(&mut *shared.join_times.lock().unwrap_or_else(|e| e.into_inner()));
    let errors = std::mem::take(&mut *shared.errors.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(RunResult {
        clients: k,
        joined: shared.joined.load(Ordering::Relaxed),
        connect,
        join_p50: quantile_of(&mut joins, 0.5),
        join_p99: quantile_of(&mut joins, 0.99),
        sent,
        secs,
        refused,
        delivered: if sent == 0 {
            0.0
        } else {
            received as f64 / (sent as f64 * k as f64) * 100.0
        },
        p50: shared.latency.quantile(0.5),
        p99: shared.latency.quantile(0.99),
        max: shared.latency.quantile(1.0),
        server_cpu: server_cpu1.saturating_sub(server_cpu0).as_secs_f64() / secs * 100.0,
        server_rss,
        client_cpu: client_cpu1.saturating_sub(client_cpu0).as_secs_f64() / secs * 100.0,
        ended,
        server_alive,
        errors,
    })
}

/// Registers `name` and returns its access token.
async fn register(http: SocketAddr, name: &str) -> anyhow::Result<String> {
    let body = json!({"username": name, "password": "bench-password-1"}).to_string();
    let mut s = TcpStream::connect(http).await?;
    let req = format!(
        "POST /api/v1/auth/register HTTP/1.1\r\nHost: bench\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .context("registering took over 10 s")??;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").context("no HTTP response")?;
    if !head.starts_with("HTTP/1.1 201") {
        bail!("registering {name}: {head} {body}");
    }
    let v: Value = serde_json::from_str(body).context("registration answer")?;
    v["access_token"]
        .as_str()
        .map(str::to_owned)
        .context("no access_token")
}

/// One sender: signs in, then sends a message every `every`, reading its socket in between.
async fn send(
    http: SocketAddr,
    token: String,
    every: Duration,
    shared: &Shared,
    stats: &SenderStats,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let url = format!("ws://{http}/api/v1/channels/{CHANNEL}/chat");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
    ws.send(Message::text(
        json!({"type": "auth", "v": 1, "token": token}).to_string(),
    ))
    .await?;
    let mut tick = tokio::time::interval(every);
    let mut seq = 0u64;
    loop {
        tokio::select! {
            _ = stop.changed() => return Ok(()),
            _ = tick.tick() => {
                seq += 1;
                let text = format!("~b {seq} {}", shared.now_ns());
                ws.send(Message::text(json!({"type": "chat", "v": 1, "text": text}).to_string())).await?;
                stats.sent.fetch_add(1, Ordering::Relaxed);
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    if t.as_str().starts_with("{\"v\":1,\"type\":\"ack\"") {
                        stats.acked.fetch_add(1, Ordering::Relaxed);
                    } else if t.as_str().contains("\"type\":\"error\"") {
                        stats.refused.fetch_add(1, Ordering::Relaxed);
                        shared.error(format!("sender refused: {}", t.as_str()));
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => bail!("sender socket: {e}"),
                None => bail!("the server closed a sender"),
            },
        }
    }
}

/// One client: joins, then times every bench message it receives until stopped.
async fn receive(
    http: SocketAddr,
    shared: &Shared,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let began = Instant::now();
    let mut settled = false;
    let result = async {
        let mut s = TcpStream::connect(http).await?;
        s.set_nodelay(true)?;
        s.write_all(
            format!(
                "GET /api/v1/channels/{CHANNEL}/chat HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            .as_bytes(),
        )
        .await?;
        let mut buf = BytesMut::with_capacity(READ_BUF);
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            if s.read_buf(&mut buf).await? == 0 {
                bail!("closed during the handshake");
            }
        };
        if !buf.starts_with(b"HTTP/1.1 101") {
            bail!(
                "handshake refused: {}",
                String::from_utf8_lossy(&buf[..head_end.min(80)])
            );
        }
        buf.advance(head_end);
        loop {
            while let Some((opcode, header, len)) = frame_at(&buf) {
                let payload = &buf[header..header + len];
                match opcode {
                    1 => {
                        if !settled {
                            settled = true;
                            shared.joined.fetch_add(1, Ordering::Relaxed);
                            shared.settled.fetch_add(1, Ordering::Relaxed);
                            shared
                                .join_times
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push(began.elapsed());
                        } else if let Some(sent) = sent_at(payload)
                            && shared.counts(sent)
                        {
                            shared.received.fetch_add(1, Ordering::Relaxed);
                            shared.latency.record(shared.now_ns().saturating_sub(sent));
                        }
                    }
                    8 => bail!("the server closed the socket: {}", close_reason(payload)),
                    9 => {
                        // A pong is masked like every client frame; a zero key is a valid key.
                        let mut pong = vec![0x8a, 0x80 | len as u8, 0, 0, 0, 0];
                        pong.extend_from_slice(payload);
                        s.write_all(&pong).await?;
                    }
                    _ => {}
                }
                buf.advance(header + len);
            }
            if buf.capacity() - buf.len() < 4096 {
                buf.reserve(READ_BUF);
            }
            tokio::select! {
                _ = stop.changed() => return Ok(()),
                n = s.read_buf(&mut buf) => if n? == 0 { bail!("the server closed the connection") },
            }
        }
    }
    .await;
    if !settled {
        shared.settled.fetch_add(1, Ordering::Relaxed);
    }
    if result.is_err() {
        shared.ended.fetch_add(1, Ordering::Relaxed);
    }
    result
}

/// The opcode, header length and payload length of a complete unmasked frame at the start of
/// `buf`, or `None` when more bytes are needed.
fn frame_at(buf: &[u8]) -> Option<(u8, usize, usize)> {
    let (b0, b1) = (*buf.first()?, *buf.get(1)?);
    let (header, len) = match b1 & 0x7f {
        126 => (
            4,
            u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?) as usize,
        ),
        127 => (
            10,
            u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize,
        ),
        n => (2, n as usize),
    };
    (buf.len() >= header + len).then_some((b0 & 0x0f, header, len))
}

/// The send time in a bench message's text (`~b <seq> <ns>`).
fn sent_at(payload: &[u8]) -> Option<u64> {
    let at = find(payload, MARKER)? + MARKER.len();
    let rest = &payload[at..];
    let space = rest.iter().position(|&b| b == b' ')?;
    let digits = &rest[space + 1..];
    let end = digits.iter().position(|b| !b.is_ascii_digit())?;
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}

fn close_reason(payload: &[u8]) -> String {
    payload
        .get(2..)
        .map(|r| String::from_utf8_lossy(r).into_owned())
        .unwrap_or_default()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".into(),
        |d| format!("{:.1}", d.as_secs_f64() * 1000.0),
    )
}

fn header() -> String {
    format!(
        "{:>7} {:>7} {:>9} {:>9} {:>9} {:>7} {:>8} {:>8} {:>8} {:>8} {:>7} {:>8} {:>6}",
        "clients",
        "joined",
        "connect s",
        "join p50",
        "join p99",
        "msg/s",
        "deliv%",
        "lat p50",
        "lat p99",
        "lat max",
        "srv cpu%",
        "cli cpu%",
        "srv MB",
    )
}

fn row(r: &RunResult) -> String {
    let mut s = format!(
        "{:>7} {:>7} {:>9.1} {:>9} {:>9} {:>7.0} {:>8.2} {:>8} {:>8} {:>8} {:>7.1} {:>8.1} {:>6.0}",
        r.clients,
        r.joined,
        r.connect.as_secs_f64(),
        ms(r.join_p50),
        ms(r.join_p99),
        r.sent as f64 / r.secs,
        r.delivered,
        ms(r.p50),
        ms(r.p99),
        ms(r.max),
        r.server_cpu,
        r.client_cpu,
        r.server_rss as f64 / (1024.0 * 1024.0),
    );
    let mut notes = Vec::new();
    if r.ended > 0 {
        notes.push(format!("{} clients lost their socket", r.ended));
    }
    if r.refused > 0 {
        notes.push(format!("{} sends refused", r.refused));
    }
    if !r.server_alive {
        notes.push("the server died".into());
    }
    if r.client_cpu > 90.0 {
        notes.push("load core saturated: the server may do better than this".into());
    }
    if !notes.is_empty() {
        s.push_str("  (");
        s.push_str(&notes.join("; "));
        s.push(')');
    }
    s
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .trim()
        .trim_end_matches('s')
        .parse()
        .map_err(|_| format!("bad duration {s:?} (seconds)"))?;
    Duration::try_from_secs_f64(v).map_err(|e| format!("bad duration {s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_stamps_parse() {
        let text = br#"{"v":1,"type":"chat","id":3,"user":{"id":1,"name":"a"},"text":"~b 7 123456","at":"x"}"#;
        let mut frame = vec![0x81, 126, 0, text.len() as u8];
        frame.extend_from_slice(text);
        assert_eq!(frame_at(&frame), Some((1, 4, text.len())));
        assert_eq!(frame_at(&frame[..10]), None);
        assert_eq!(sent_at(text), Some(123456));
        assert_eq!(sent_at(br#"{"type":"viewers"}"#), None);
    }
}
