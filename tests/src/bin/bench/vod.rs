//! `onair-bench --vod`: N RTMP VOD viewers of one video, spread over a few start positions.
//!
//! The video is a catalogue row written into a fresh SQLite data directory before the server
//! starts, pointing at a `media.flv` (`--vod-file`, or 60 s of test pattern made with
//! ffmpeg). Each viewer plays `rtmp://…/vod/{id}` from its position and checks the pacing:
//! a frame is late when it arrives after its due time, the wall time of the viewer's first
//! frame plus the media time since it (the server sends ahead by its lead, so on time means
//! early). The window prints server CPU, RSS at its start and the peak, bytes per second
//! delivered, late frames and the block cache's hit rate from `/metrics`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use onair_client::{ClientOptions, RtmpClient, RtmpUrl};
use onair_rtmp::session::ClientEvent;
use tokio::sync::watch;

use crate::server::{ServerProcess, cpu_time, memory};

/// What the viewers add up while they play.
#[derive(Debug, Default)]
pub struct Counters {
    bytes: AtomicU64,
    frames: AtomicU64,
    late: AtomicU64,
    /// The latest a frame arrived after its due time, in µs.
    worst_late_us: AtomicU64,
    started: AtomicU64,
    ended: AtomicU64,
}

/// How the run goes.
#[derive(Debug, Clone)]
pub struct VodRun {
    pub viewers: usize,
    pub positions_s: Vec<u32>,
    pub warmup: Duration,
    pub measure: Duration,
    pub file: Option<PathBuf>,
    pub server_core: Option<usize>,
}

/// Writes the user, channel and video rows into a fresh data directory and puts the media
/// file in place; returns the video id.
async fn prepare(data: &Path, media: Option<&Path>) -> anyhow::Result<i64> {
    let recordings = data.join("recordings");
    let dir = recordings.join("bench/video");
    std::fs::create_dir_all(&dir)?;
    let target = dir.join("media.flv");
    match media {
        Some(file) => {
            std::fs::copy(file, &target).with_context(|| format!("copying {}", file.display()))?;
        }
        None => {
            let target = target.clone();
            tokio::task::spawn_blocking(move || onair_e2e::vod::make_media_flv(&target, 60))
                .await?;
        }
    }
    let storage = onair::config::StorageConfig {
        database_url: None,
        data_dir: data.to_path_buf(),
    };
    let platform = onair::platform::Platform::open(&storage, &onair::config::AuthConfig::default())
        .await
        .context("opening the bench database")?;
    let owner = platform
        .create_user(
            "bench",
            "correct horse battery staple",
            onair_store::Role::Streamer,
        )
        .await?;
    let store = platform.store();
    let channel = store
        .create_channel(onair_store::NewChannel {
            slug: "bench".into(),
            title: "bench".into(),
            owner_id: owner.id,
            category: String::new(),
            tags: vec![],
        })
        .await?;
    let video = store
        .create_video(onair_store::NewVideo {
            channel_id: channel.id,
            path: "bench/video".into(),
            title: "bench".into(),
            visibility: onair_store::Visibility::Public,
            ..onair_store::NewVideo::default()
        })
        .await?;
    Ok(video.id)
}

async fn viewer(
    url: RtmpUrl,
    start_ms: f64,
    counters: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let options = ClientOptions {
        timeout: Duration::from_secs(20),
        ..ClientOptions::default()
    };
    let mut client = RtmpClient::connect(&url, &options).await?;
    client.play_range(start_ms, -1.0).await?;
    counters.started.fetch_add(1, Ordering::Relaxed);
    let mut clock: Option<(Instant, u32)> = None;
    let mut read = client.bytes_read();
    loop {
        let event = tokio::select! {
            _ = stop.changed() => break,
            e = client.next_event() => e?,
        };
        let now = client.bytes_read();
        counters.bytes.fetch_add(now - read, Ordering::Relaxed);
        read = now;
        match event {
            Some(ClientEvent::Media { timestamp, .. }) => {
                let arrived = Instant::now();
                let (t0, ts0) = *clock.get_or_insert((arrived, timestamp));
                let due = t0 + Duration::from_millis(u64::from(timestamp.saturating_sub(ts0)));
                counters.frames.fetch_add(1, Ordering::Relaxed);
                if arrived > due {
                    counters.late.fetch_add(1, Ordering::Relaxed);
                    let us = (arrived - due).as_micros() as u64;
                    counters.worst_late_us.fetch_max(us, Ordering::Relaxed);
                }
            }
            Some(ClientEvent::PlayStatus { .. }) | None => break,
            Some(_) => {}
        }
    }
    counters.ended.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Values from the server's `/metrics` (`None` for a name it does not give), within 2 s.
pub async fn scrape(http: std::net::SocketAddr, names: &[&str]) -> Vec<Option<f64>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fetch = async {
        let mut s = tokio::net::TcpStream::connect(http).await.ok()?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut body = Vec::new();
        s.read_to_end(&mut body).await.ok()?;
        Some(String::from_utf8_lossy(&body).into_owned())
    };
    let text = tokio::time::timeout(Duration::from_secs(2), fetch)
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    names
        .iter()
        .map(|n| onair_e2e::server::parse_metric(&text, n))
        .collect()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Runs the VOD benchmark and prints its figures.
pub async fn run(binary: &Path, run: VodRun) -> anyhow::Result<()> {
    let data = std::env::temp_dir().join(format!("onair-bench-vod-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let id = prepare(&data, run.file.as_deref()).await?;
    let data_dir = data.display().to_string();
    let recordings = data.join("recordings").display().to_string();
    let server = ServerProcess::start_with(
        binary,
        run.server_core,
        data.join("server.log"),
        &[
            ("ONAIR_STORAGE_DATA_DIR", &data_dir),
            ("ONAIR_HLS_RECORDINGS_DIR", &recordings),
            ("ONAIR_AUTH_BOOTSTRAP", "false"),
        ],
    )?;
    let url = RtmpUrl::parse(&format!("rtmp://{}/vod/{id}", server.rtmp))?;
    let counters = Arc::new(Counters::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let rss_idle = memory(server.pid)?.0;
    println!(
        "vod: {} viewers of video {id} from {:?} s, warm-up {:?}, window {:?}; load average {}",
        run.viewers,
        run.positions_s,
        run.warmup,
        run.measure,
        load_average()
    );
    let ramp = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..run.viewers {
        let start = f64::from(run.positions_s[i % run.positions_s.len()]) * 1000.0;
        tasks.spawn(viewer(
            url.clone(),
            start,
            counters.clone(),
            stop_rx.clone(),
        ));
        // A few connections at a time, as players arrive.
        if i % 20 == 19 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let all_started = tokio::time::timeout(Duration::from_secs(60), async {
        while counters.started.load(Ordering::Relaxed) < run.viewers as u64 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .is_ok();
    println!(
        "ramp: {} of {} playing after {:?}",
        counters.started.load(Ordering::Relaxed),
        run.viewers,
        ramp.elapsed()
    );
    if !all_started {
        println!("not every viewer started; measuring those that did");
    }
    tokio::time::sleep(run.warmup).await;

    let names = ["onair_vod_cache_hits_total", "onair_vod_cache_misses_total"];
    let before = scrape(server.http, &names).await;
    let cpu0 = cpu_time(Some(server.pid))?;
    let (rss_start, _) = memory(server.pid)?;
    let bytes0 = counters.bytes.load(Ordering::Relaxed);
    let frames0 = counters.frames.load(Ordering::Relaxed);
    let late0 = counters.late.load(Ordering::Relaxed);
    counters.worst_late_us.store(0, Ordering::Relaxed);
    let t0 = Instant::now();
    let mut rss_max = rss_start;
    while t0.elapsed() < run.measure {
        tokio::time::sleep(Duration::from_millis(250)).await;
        rss_max = rss_max.max(memory(server.pid)?.0);
    }
    let window = t0.elapsed();
    let cpu = (cpu_time(Some(server.pid))? - cpu0).as_secs_f64() / window.as_secs_f64() * 100.0;
    let bytes = counters.bytes.load(Ordering::Relaxed) - bytes0;
    let frames = counters.frames.load(Ordering::Relaxed) - frames0;
    let late = counters.late.load(Ordering::Relaxed) - late0;
    let worst = Duration::from_micros(counters.worst_late_us.load(Ordering::Relaxed));
    let after = scrape(server.http, &names).await;
    let (_, hwm) = memory(server.pid)?;
    let _ = stop_tx.send(true);
    let ended = counters.ended.load(Ordering::Relaxed);
    let delta = |i: usize| match (before[i], after[i]) {
        (Some(b), Some(a)) => Some(a - b),
        _ => None,
    };
    let all = (after[0], after[1]);
    let hit_rate = |h: Option<f64>, m: Option<f64>| match (h, m) {
        (Some(h), Some(m)) if h + m > 0.0 => format!("{:.1} %", h / (h + m) * 100.0),
        _ => "-".into(),
    };
    println!(
        "window {:.1} s: server CPU {cpu:.1} % of one core; RSS idle {} MiB, window start {} MiB, window max {} MiB (peak {} MiB)",
        window.as_secs_f64(),
        rss_idle / (1024 * 1024),
        rss_start / (1024 * 1024),
        rss_max / (1024 * 1024),
        hwm / (1024 * 1024)
    );
    println!(
        "delivered {:.1} MB/s ({:.2} Mbit/s per viewer), {frames} media messages, {late} late ({:.2} %), latest {:.0} ms; viewers that ended early {ended}",
        bytes as f64 / window.as_secs_f64() / 1e6,
        bytes as f64 * 8.0 / window.as_secs_f64() / 1e6 / run.viewers.max(1) as f64,
        if frames > 0 {
            late as f64 / frames as f64 * 100.0
        } else {
            0.0
        },
        worst.as_secs_f64() * 1000.0
    );
    println!(
        "block cache: hit rate {} in the window, {} since start ({} reads for {} viewers); load average {}",
        hit_rate(delta(0), delta(1)),
        hit_rate(all.0, all.1),
        all.1.unwrap_or(0.0),
        run.viewers,
        load_average()
    );
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(r) = tasks.join_next().await {
            if let Ok(Err(e)) = r {
                println!("    viewer failed: {e:#}");
            }
        }
    })
    .await;
    if drained.is_err() {
        tasks.abort_all();
    }
    server.stop();
    let _ = std::fs::remove_dir_all(&data);
    Ok(())
}
