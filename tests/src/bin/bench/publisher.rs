//! The publisher: our own `ClientSession` over a socket, sending the synthetic stream on a
//! fixed schedule from its own thread.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::{Bytes, BytesMut};
use onair_media::MediaKind;
use onair_rtmp::session::{ClientConfig, ClientEvent, ClientOutput, ClientSession};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::watch;

use crate::stream::{self, AUDIO_FRAME, FPS, GOP, Shape, Window};

/// The stream key; with `dev.open` it is also the channel name.
pub const CHANNEL: &str = "bench";

/// What the publisher did, read by the orchestrator.
#[derive(Debug, Default)]
pub struct PublisherStats {
    /// The server answered `NetStream.Publish.Start`.
    pub started: AtomicBool,
    /// Payload bytes sent inside the measurement window.
    pub window_bytes: AtomicU64,
    /// Audio and video frames sent.
    pub frames: AtomicU64,
    /// The latest a frame left after its scheduled time, in nanoseconds: large values mean
    /// the load core was too busy to keep the publisher on time.
    pub max_late_ns: AtomicU64,
}

/// Runs the publisher on its own thread until `stop` turns true or the connection fails.
pub fn spawn(
    addr: SocketAddr,
    shape: Shape,
    epoch: Instant,
    window: Arc<Window>,
    stats: Arc<PublisherStats>,
    stop: watch::Receiver<bool>,
) -> std::thread::JoinHandle<anyhow::Result<()>> {
    std::thread::Builder::new()
        .name("publisher".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(publish(addr, shape, epoch, &window, &stats, stop))
        })
        .expect("spawning the publisher thread")
}

async fn publish(
    addr: SocketAddr,
    shape: Shape,
    epoch: Instant,
    window: &Window,
    stats: &PublisherStats,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let socket = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .context("connecting the publisher: timed out")?
        .context("connecting the publisher")?;
    socket.set_nodelay(true)?;
    let (mut reader, mut writer) = socket.into_split();
    let config = ClientConfig {
        tc_url: format!("rtmp://{addr}/live"),
        ..ClientConfig::default()
    };
    let mut session = ClientSession::new(config, Instant::now(), rand::random());
    session.publish(CHANNEL);
    let mut buf = BytesMut::with_capacity(64 * 1024);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !flush(&mut session, &mut writer).await? {
        buf.clear();
        let n = tokio::time::timeout_at(deadline, reader.read_buf(&mut buf))
            .await
            .context("the server did not start the publish within 10 s")??;
        if n == 0 {
            bail!("the server closed the publisher's connection during set-up");
        }
        session.handle_input(Instant::now(), &buf)?;
    }
    stats.started.store(true, Ordering::Release);

    session.send_metadata(stream::metadata(&shape));
    session.send_media(MediaKind::Video, 0, stream::avc_sequence_header())?;
    session.send_media(MediaKind::Audio, 0, stream::aac_sequence_header())?;
    flush(&mut session, &mut writer).await?;

    let start = tokio::time::Instant::now();
    let video_interval = Duration::from_secs(1) / FPS;
    let (mut video_n, mut audio_n, mut seq) = (0u32, 0u32, 0u64);
    loop {
        let next_video = start + video_interval * video_n;
        let next_audio = start + AUDIO_FRAME * audio_n;
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            read = reader.read_buf(&mut buf) => {
                if read? == 0 {
                    bail!("the server closed the publisher's connection");
                }
                session.handle_input(Instant::now(), &buf)?;
                buf.clear();
            }
            _ = tokio::time::sleep_until(next_video.min(next_audio)) => {
                // Deadlines are computed from the start, so a late wake-up sends what is due
                // and the schedule never drifts.
                let now = tokio::time::Instant::now();
                let mut send = |kind: MediaKind, due: tokio::time::Instant, payload: &dyn Fn(u64, u64) -> Bytes| {
                    let sent_ns = epoch.elapsed().as_nanos() as u64;
                    let late = now.saturating_duration_since(due).as_nanos() as u64;
                    stats.max_late_ns.fetch_max(late, Ordering::Relaxed);
                    let body = payload(sent_ns, seq);
                    seq += 1;
                    if window.contains(sent_ns) {
                        stats.window_bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                    }
                    stats.frames.fetch_add(1, Ordering::Relaxed);
                    let timestamp = due.duration_since(start).as_millis() as u32;
                    session.send_media(kind, timestamp, body)
                };
                while start + video_interval * video_n <= now {
                    let due = start + video_interval * video_n;
                    let keyframe = u64::from(video_n) % GOP == 0;
                    let size = if keyframe { shape.key } else { shape.inter };
                    send(MediaKind::Video, due, &|t, s| stream::video_payload(keyframe, size, t, s))?;
                    video_n += 1;
                }
                while start + AUDIO_FRAME * audio_n <= now {
                    let due = start + AUDIO_FRAME * audio_n;
                    send(MediaKind::Audio, due, &|t, s| stream::audio_payload(shape.audio, t, s))?;
                    audio_n += 1;
                }
            }
        }
        flush(&mut session, &mut writer).await?;
    }
    session.close();
    flush(&mut session, &mut writer).await?;
    Ok(())
}

/// Writes what the session has queued; `true` once the publish has started.
async fn flush(session: &mut ClientSession, writer: &mut OwnedWriteHalf) -> anyhow::Result<bool> {
    let mut started = false;
    while let Some(out) = session.poll_output() {
        match out {
            ClientOutput::Transmit(bytes) => writer.write_all(&bytes).await?,
            ClientOutput::Event(ClientEvent::PublishStarted) => started = true,
            ClientOutput::Event(ClientEvent::Rejected { code, description }) => {
                bail!("the server refused the publish: {code} ({description})")
            }
            ClientOutput::Event(_) => {}
        }
    }
    Ok(started)
}
