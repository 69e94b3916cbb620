//! `onair-bench`: fan-out benchmark of one OnAir server process.
//!
//! One publisher sends a synthetic ~2.6 Mbps H.264/AAC-shaped stream over RTMP; N viewers
//! (RTMP or HTTP-FLV) play it over loopback. The server runs pinned to one core
//! (`taskset`), the publisher and viewers on another. Every media payload carries its send
//! time, so each viewer measures the latency the server added to every frame. For each
//! protocol and N the bench prints delivered throughput (% of N × what the publisher sent in
//! the window), added latency p50/p99, time to first frame p50/p99, server CPU and RSS, and
//! its own CPU (near 100 % means the load generator, not the server, is the limit).
//!
//! ```text
//! cargo build --release -p onair -p onair-e2e --bin onair --bin onair-bench
//! target/release/onair-bench --quick
//! target/release/onair-bench --viewers 1000,2000,4000,8000 --protocol rtmp,http-flv
//! ```
//!
//! `--slow M` adds M viewers on a slow link (`--slow-rate`, a tenth of the stream by
//! default) after the normal ones, and prints how far behind live they are at the end of the
//! window, the frames skipped for them, which were dropped and why, and the server's RSS
//! over the window:
//!
//! ```text
//! target/release/onair-bench --viewers 500 --slow 20 --warmup 5s --measure 60s
//! ```
//!
//! `--vod` runs the RTMP VOD benchmark instead: `--vod-viewers` (200) viewers of one
//! video from `--vod-positions` (seconds, spread round-robin) for `--measure`, printing
//! server CPU, RSS, bytes/s, late frames and the block cache's hit rate:
//!
//! ```text
//! target/release/onair-bench --vod --warmup 3s --measure 20s
//! ```
//!
//! `--edges N` runs a cluster instead of one server (issue 14): the origin on 127.0.0.1 and N
//! edges on 127.0.0.2, 127.0.0.3, …, each its own `onair` process with `[cluster]` set, all
//! sharing NATS and a PostgreSQL database made for the run (and dropped after). The
//! publisher pushes to the origin; the viewers go round-robin over every node, or over the
//! edges only with `--viewers-on edges`. Under each run's row the bench prints every node's
//! viewers, delivered %, latency (through the edge's pull for an edge), TTFF, CPU and RSS;
//! the row's server CPU is the origin's. All servers share the server core:
//!
//! ```text
//! target/release/onair-bench --viewers 600 --protocol http-flv --measure 20s --edges 0
//! target/release/onair-bench --viewers 600 --protocol http-flv --measure 20s --edges 2
//! ```
//!
//! Every phase is bounded in time and every connection goes to a loopback address.

// `serde_json::json!` of a run row nests deeper than the default allows.
#![recursion_limit = "256"]

#[path = "bench/cluster.rs"]
mod cluster;
#[path = "bench/histogram.rs"]
mod histogram;
#[path = "bench/publisher.rs"]
mod publisher;
#[path = "bench/server.rs"]
mod server;
#[path = "bench/stream.rs"]
mod stream;
#[path = "bench/viewer.rs"]
mod viewer;
#[path = "bench/vod.rs"]
mod vod;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use tokio::sync::watch;

use crate::cluster::{Cluster, ClusterArgs, Node, Servers};
use crate::histogram::{Histogram, quantile_of};
use crate::publisher::PublisherStats;
use crate::server::{CoreTicks, ServerProcess};
use crate::stream::{Shape, Window};
use crate::viewer::{Shared, ViewerStats};

/// How long the ramp may take in all; viewers not settled by then are reported, not waited for.
const RAMP_LIMIT: Duration = Duration::from_secs(90);
/// How long one batch of viewers may take to get its first frames.
const BATCH_LIMIT: Duration = Duration::from_secs(10);
/// After the window closes, probes sent inside it may still be on their way.
const DRAIN: Duration = Duration::from_secs(1);

/// Fan-out benchmark: one publisher, N viewers, one server core (one server, or an origin
/// and its edges).
#[derive(Debug, Parser)]
#[command(name = "onair-bench")]
struct Cli {
    /// Viewer counts to run, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1000,2000,4000,8000")]
    viewers: Vec<usize>,
    /// Playback protocols to run, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "rtmp,http-flv")]
    protocol: Vec<Protocol>,
    /// Time between the last viewer joining and the measurement window.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    warmup: Duration,
    /// Length of the measurement window.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    measure: Duration,
    /// Total stream bitrate (video + 128 kbps audio), e.g. 2600k or 2.6M.
    #[arg(long, default_value = "2600k", value_parser = parse_bitrate)]
    bitrate: u64,
    /// The `onair` server binary [default: `onair` next to this executable].
    #[arg(long)]
    server: Option<PathBuf>,
    /// Core the server is pinned to.
    #[arg(long, default_value_t = 0)]
    server_core: usize,
    /// CPUs the server may run on, as a `taskset -c` list (`0`, `0,1`); overrides
    /// `--server-core` for the server (the core figures still read `--server-core`).
    #[arg(long)]
    server_cpus: Option<String>,
    /// The server's worker threads (`worker_threads`) [default: the server's, one per CPU
    /// it may run on].
    #[arg(long)]
    server_threads: Option<usize>,
    /// Budgets to sweep (`hub.max_write_delay`), comma-separated, e.g. `0ms,10ms,20ms,50ms`
    /// [default: the server's default only].
    #[arg(long, value_delimiter = ',', value_parser = parse_duration)]
    max_write_delay: Vec<Duration>,
    /// Core the publisher and viewers are pinned to.
    #[arg(long, default_value_t = 1)]
    load_core: usize,
    /// Do not pin anything (no `taskset`).
    #[arg(long)]
    no_pin: bool,
    /// Viewers connected at a time during the ramp.
    #[arg(long, default_value_t = 200)]
    batch: usize,
    /// A smoke run: 50 viewers, 1 s warm-up, 3 s window.
    #[arg(long)]
    quick: bool,
    /// Also print the results as JSON.
    #[arg(long)]
    json: bool,
    /// Slow viewers joining after the normal ones: each reads through a slow link (a small
    /// receive buffer, read at `--slow-rate` of the stream's rate).
    #[arg(long, default_value_t = 0)]
    slow: usize,
    /// The slow viewers' read rate, as a fraction of the stream's bitrate.
    #[arg(long, default_value_t = 0.1)]
    slow_rate: f64,
    /// Run the RTMP VOD benchmark instead of the live fan-out.
    #[arg(long)]
    vod: bool,
    /// VOD viewers of the one video.
    #[arg(long, default_value_t = 200)]
    vod_viewers: usize,
    /// Start positions of the VOD viewers in seconds, comma-separated, given out in turn.
    #[arg(long, value_delimiter = ',', default_value = "0,10,20,30")]
    vod_positions: Vec<u32>,
    /// The `media.flv` to play [default: 60 s of test pattern made with ffmpeg].
    #[arg(long)]
    vod_file: Option<PathBuf>,
    /// Edges besides the origin (issue 14): each a server process on its own loopback
    /// address (127.0.0.2, 127.0.0.3, …) pulling the channel from the origin, all sharing a
    /// fresh PostgreSQL database and NATS; 0 runs the one server on its own.
    #[arg(long, default_value_t = 0)]
    edges: usize,
    /// Which nodes the viewers play from (round-robin), when there are edges.
    #[arg(long, value_enum, default_value = "all")]
    viewers_on: ViewersOn,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// Where the viewers of a cluster run connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ViewersOn {
    /// The origin and every edge, in turn.
    All,
    /// Only the edges, in turn: the origin serves only their pulls.
    Edges,
}

/// The slow viewers' figures at the end of a run.
#[derive(Debug, Default)]
struct SlowResult {
    viewers: usize,
    /// How far behind live each still-connected one was at the end: now minus the send time
    /// of the newest frame it had read.
    lag_p50: Option<Duration>,
    lag_max: Option<Duration>,
    /// Frames the server skipped for them, in all.
    skipped: u64,
    /// Why the ones that ended did, with how many.
    dropped: Vec<(String, usize)>,
}

/// A playback protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    /// RTMP play.
    Rtmp,
    /// HTTP-FLV (`GET /live/{channel}.flv`).
    HttpFlv,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Rtmp => "rtmp",
            Protocol::HttpFlv => "http-flv",
        }
    }
}

/// The figures of one (protocol, budget, N) run.
#[derive(Debug)]
struct RunResult {
    protocol: Protocol,
    /// `hub.max_write_delay` of the run; `None`: the server's default.
    budget: Option<Duration>,
    viewers: usize,
    /// Bits delivered to all viewers per second of the window, per core of server CPU time.
    gbps_per_core: Option<f64>,
    /// The server's writing system calls in the window, per viewer per second.
    writes_per_viewer_s: Option<f64>,
    /// Wakes of the channel's viewers per second (`onair_hub_wakes_total`).
    wakes_per_s: Option<f64>,
    /// Viewers that received a first video frame.
    started: usize,
    delivered: f64,
    latency_p50: Option<Duration>,
    latency_p99: Option<Duration>,
    latency_max: Option<Duration>,
    ttff_p50: Option<Duration>,
    ttff_p99: Option<Duration>,
    server_cpu: f64,
    server_rss: u64,
    server_hwm: u64,
    client_cpu: f64,
    disconnected: usize,
    first_not_key: usize,
    publisher_kbps: f64,
    publisher_max_late: Duration,
    ramp: Duration,
    server_dropped_slow: Option<u64>,
    server_alive: bool,
    /// Busy % of the server's and the load's core in the window (all processes and the
    /// kernel), and the softirq part of each.
    server_core_busy: Option<(f64, f64)>,
    load_core_busy: Option<(f64, f64)>,
    /// Accept-queue overflows (system-wide) from the server's start to the end of the ramp.
    listen_overflows: Option<u64>,
    errors: Vec<String>,
    /// Server RSS when the window opened.
    server_rss_start: u64,
    slow: Option<SlowResult>,
    /// Each node's figures (one entry for a single server).
    nodes: Vec<NodeResult>,
}

fn main() -> anyhow::Result<()> {
    let mut cli = Cli::parse();
    if cli.quick {
        cli.viewers = vec![50];
        cli.warmup = Duration::from_secs(1);
        cli.measure = Duration::from_secs(3);
    }
    let server = server::server_binary(cli.server.as_deref())?;
    if !cli.no_pin {
        // Before any thread exists, so the runtime's and the publisher's threads inherit it.
        server::pin_self(cli.load_core)
            .context("pinning the bench to the load core (use --no-pin to skip)")?;
    }
    if cli.vod {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let run = vod::VodRun {
            viewers: cli.vod_viewers,
            positions_s: if cli.vod_positions.is_empty() {
                vec![0]
            } else {
                cli.vod_positions.clone()
            },
            warmup: cli.warmup,
            measure: cli.measure,
            file: cli.vod_file.clone(),
            server_core: (!cli.no_pin).then_some(cli.server_core),
        };
        return runtime.block_on(vod::run(&server, run));
    }
    let shape = Shape::for_bitrate(cli.bitrate);
    let servers = if cli.edges == 0 {
        "server".to_owned()
    } else {
        format!(
            "origin and {} edges (viewers on {})",
            cli.edges,
            match cli.viewers_on {
                ViewersOn::All => "all nodes",
                ViewersOn::Edges => "the edges",
            }
        )
    };
    println!(
        "onair-bench: {servers} {} pinned to core {}, publisher and viewers pinned to core {}; stream {:.0} kbps (video {} B inter / {} B key at {} fps, audio {} B every {:.1} ms)",
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
        shape.bitrate() / 1000.0,
        shape.inter,
        shape.key,
        stream::FPS,
        shape.audio,
        stream::AUDIO_FRAME.as_secs_f64() * 1000.0,
    );
    println!(
        "warm-up {:?}, window {:?}, ramp batches of {}",
        cli.warmup, cli.measure, cli.batch
    );
    println!("{}", header());

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut results = Vec::new();
    let budgets: Vec<Option<Duration>> = if cli.max_write_delay.is_empty() {
        vec![None]
    } else {
        cli.max_write_delay.iter().copied().map(Some).collect()
    };
    let mut runs = Vec::new();
    for &p in &cli.protocol {
        for &b in &budgets {
            runs.extend(cli.viewers.iter().map(|&n| (p, b, n)));
        }
    }
    for (protocol, budget, n) in runs {
        match runtime.block_on(run_one(&cli, &server, shape, protocol, budget, n)) {
            Ok(r) => {
                println!("{}", row(&r));
                if r.nodes.len() > 1 {
                    println!("{}", node_rows(&r));
                }
                println!("{}", slow_row(&r, cli.measure));
                for e in &r.errors {
                    println!("    viewer ended: {e}");
                }
                results.push(r);
            }
            Err(e) => println!(
                "{:<9} {:>6} {:>6}  failed: {e:#}",
                protocol.name(),
                budget_name(budget),
                n
            ),
        }
    }
    println!("\n{}", table(&results));
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&json(&results))?);
    }
    Ok(())
}

async fn run_one(
    cli: &Cli,
    binary: &std::path::Path,
    shape: Shape,
    protocol: Protocol,
    budget: Option<Duration>,
    n: usize,
) -> anyhow::Result<RunResult> {
    let core = (!cli.no_pin).then_some(cli.server_core);
    let overflows0 = server::listen_overflows();
    let budget_setting = budget.map(|b| format!("{}ms", b.as_millis()));
    let threads_setting = cli.server_threads.map(|t| t.to_string());
    let mut settings: Vec<(&str, &str)> = Vec::new();
    if let Some(b) = &budget_setting {
        settings.push(("ONAIR_HUB_MAX_WRITE_DELAY", b));
    }
    if let Some(t) = &threads_setting {
        settings.push(("ONAIR_WORKER_THREADS", t));
    }
    let servers = if cli.edges == 0 {
        let log =
            std::env::temp_dir().join(format!("onair-bench-server-{}-{n}.log", protocol.name()));
        let cpus = match (&cli.server_cpus, core) {
            _ if cli.no_pin => None,
            (Some(list), _) => Some(list.clone()),
            (None, core) => core.map(|c| c.to_string()),
        };
        Servers::Single(Node {
            name: "server".into(),
            process: ServerProcess::start_at(
                binary,
                server::Listen::free_on(std::net::Ipv4Addr::LOCALHOST)?,
                cpus.as_deref(),
                log,
                &settings,
            )?,
        })
    } else {
        let names: Vec<String> = std::iter::once("origin".to_owned())
            .chain((1..=cli.edges).map(|i| format!("edge-{i}")))
            .collect();
        let cluster = Cluster::start(&cli.cluster, binary, &names, core, &settings).await?;
        println!("    {}", cluster.describe());
        Servers::Cluster(cluster)
    };
    let mut servers = servers;
    let result = measure(cli, &mut servers, shape, protocol, n, overflows0)
        .await
        .map(|r| RunResult { budget, ..r });
    servers.stop().await;
    result
}

/// The viewers of one run on one node.
struct NodeViewers {
    /// Index into the run's nodes.
    node: usize,
    addr: SocketAddr,
    shared: Arc<Shared>,
    stats: Vec<Arc<ViewerStats>>,
}

async fn measure(
    cli: &Cli,
    servers: &mut Servers,
    shape: Shape,
    protocol: Protocol,
    n: usize,
    overflows0: Option<u64>,
) -> anyhow::Result<RunResult> {
    let origin = &servers.nodes()[0].process;
    let epoch = Instant::now();
    let window = Arc::new(Window::unset());

    let (stop_tx, stop_rx) = watch::channel(false);
    let publisher_stats = Arc::new(PublisherStats::default());
    let publisher = publisher::spawn(
        origin.rtmp,
        shape,
        epoch,
        window.clone(),
        publisher_stats.clone(),
        stop_rx,
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while !publisher_stats.started.load(Ordering::Acquire) {
        if publisher.is_finished() || Instant::now() > deadline {
            let _ = stop_tx.send(true);
            return match publisher.join() {
                Ok(Err(e)) => Err(e.context("publisher")),
                _ => bail!("the publisher did not start within 15 s"),
            };
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Let the metadata, sequence headers and first keyframe reach the hub: HTTP-FLV answers
    // 404 for a channel that is not live yet.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // An edge answers 404 until the origin's announce reaches it; waiting for one answer
    // also starts its pull, so the first viewers' TTFF is not the pull's start-up.
    for node in &servers.nodes()[1..] {
        let path = format!("/live/{}.flv", publisher::CHANNEL);
        if let Err(e) = cluster::wait_serving(node.process.http, &path).await {
            let _ = stop_tx.send(true);
            let _ = publisher.join();
            return Err(e.context(format!("{} never served the channel", node.name)));
        }
    }

    let first_target = match cli.viewers_on {
        ViewersOn::All => 0,
        ViewersOn::Edges if servers.nodes().len() > 1 => 1,
        ViewersOn::Edges => bail!("--viewers-on edges needs --edges 1 or more"),
    };
    let mut targets: Vec<NodeViewers> = servers.nodes()[first_target..]
        .iter()
        .enumerate()
        .map(|(i, node)| NodeViewers {
            node: first_target + i,
            addr: match protocol {
                Protocol::Rtmp => node.process.rtmp,
                Protocol::HttpFlv => node.process.http,
            },
            shared: Arc::new(Shared::new(epoch, window.clone())),
            stats: Vec::with_capacity(n.div_ceil(servers.nodes().len())),
        })
        .collect();
    let mut tasks = Vec::with_capacity(n);
    let ramp_start = Instant::now();
    let ramp_deadline = ramp_start + RAMP_LIMIT;
    let settled = |targets: &[NodeViewers]| -> usize {
        targets
            .iter()
            .map(|t| t.shared.settled.load(Ordering::Relaxed))
            .sum()
    };
    while tasks.len() < n && Instant::now() < ramp_deadline {
        let batch = cli.batch.max(1).min(n - tasks.len());
        for _ in 0..batch {
            let i = tasks.len() % targets.len();
            let target = &mut targets[i];
            let s = Arc::new(ViewerStats::default());
            let (shared, s2, addr) = (target.shared.clone(), s.clone(), target.addr);
            tasks.push(tokio::spawn(async move {
                viewer::run(protocol, addr, &shared, &s2, None).await
            }));
            target.stats.push(s);
        }
        let batch_deadline = (Instant::now() + BATCH_LIMIT).min(ramp_deadline);
        while settled(&targets) < tasks.len() && Instant::now() < batch_deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let ramp = ramp_start.elapsed();
    let viewers = tasks.len();
    // The slow viewers get their own figures: their latency is not the normal viewers'.
    let slow_shared = Arc::new(Shared::new(epoch, window.clone()));
    let slow = viewer::Slow {
        rate: shape.bitrate() / 8.0 * cli.slow_rate,
    };
    let slow_addr = targets[0].addr;
    let mut slow_stats = Vec::with_capacity(cli.slow);
    for _ in 0..cli.slow {
        let s = Arc::new(ViewerStats::default());
        let (shared, s2) = (slow_shared.clone(), s.clone());
        tasks.push(tokio::spawn(async move {
            viewer::run(protocol, slow_addr, &shared, &s2, Some(slow)).await
        }));
        slow_stats.push(s);
    }
    let listen_overflows = overflows0
        .zip(server::listen_overflows())
        .map(|(a, b)| b.saturating_sub(a));

    let pids: Vec<u32> = servers.nodes().iter().map(|n| n.process.pid).collect();
    let cpu_times = || -> anyhow::Result<Vec<Duration>> {
        pids.iter()
            .map(|&pid| server::cpu_time(Some(pid)))
            .collect()
    };
    let start = epoch.elapsed() + cli.warmup;
    let end = start + cli.measure;
    window.set(start.as_nanos() as u64, end.as_nanos() as u64);
    tokio::time::sleep_until((epoch + start).into()).await;
    let (server_cpu0, client_cpu0) = (cpu_times()?, server::cpu_time(None)?);
    let writes0 = server::write_calls(pids[0]);
    let wakes0 = scrape_metric(origin.http, "onair_hub_wakes_total").await;
    let cores0 = (
        CoreTicks::read(cli.server_core).ok(),
        CoreTicks::read(cli.load_core).ok(),
    );
    publisher_stats.max_late_ns.store(0, Ordering::Relaxed);
    let (server_rss_start, _) = server::memory(pids[0])?;
    tokio::time::sleep_until((epoch + end).into()).await;
    let slow_result = (cli.slow > 0).then(|| slow_figures(&slow_shared, &slow_stats));
    let (server_cpu1, client_cpu1) = (cpu_times()?, server::cpu_time(None)?);
    let writes1 = server::write_calls(pids[0]);
    let wakes1 = scrape_metric(servers.nodes()[0].process.http, "onair_hub_wakes_total").await;
    let memories = pids
        .iter()
        .map(|&pid| server::memory(pid))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let max_late_ns = publisher_stats.max_late_ns.load(Ordering::Relaxed);
    let cores1 = (
        CoreTicks::read(cli.server_core).ok(),
        CoreTicks::read(cli.load_core).ok(),
    );
    let busy =
        |a: Option<CoreTicks>, b: Option<CoreTicks>| a.zip(b).map(|(a, b)| a.percent_until(b));
    let pinned = !cli.no_pin;
    tokio::time::sleep(DRAIN).await;

    let alive: Vec<bool> = servers
        .nodes_mut()
        .iter_mut()
        .map(|n| n.process.is_running())
        .collect();
    let mut server_dropped_slow = None;
    for node in servers.nodes() {
        if let Some(d) = scrape_metric(node.process.http, "onair_viewers_dropped_slow_total").await
        {
            *server_dropped_slow.get_or_insert(0) += d;
        }
    }
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        let _ = t.await;
    }
    let _ = stop_tx.send(true);
    match publisher.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("publisher: {e:#}"),
        Err(_) => eprintln!("publisher thread panicked"),
    }

    let secs = cli.measure.as_secs_f64();
    let sent = publisher_stats.window_bytes.load(Ordering::Relaxed);
    let cpu = |i: usize| server_cpu1[i].saturating_sub(server_cpu0[i]).as_secs_f64() / secs * 100.0;
    let nodes: Vec<NodeResult> = servers
        .nodes()
        .iter()
        .enumerate()
        .map(|(i, node)| {
            let figures = targets
                .iter()
                .find(|t| t.node == i)
                .map(|t| ViewerFigures::of(&t.stats, &t.shared.latency, sent));
            NodeResult {
                name: node.name.clone(),
                viewers: figures.unwrap_or_default(),
                cpu: cpu(i),
                rss: memories[i].0,
                alive: alive[i],
            }
        })
        .collect();
    let all_stats: Vec<Arc<ViewerStats>> = targets
        .iter()
        .flat_map(|t| t.stats.iter().cloned())
        .collect();
    let latency = Histogram::new();
    for t in &targets {
        latency.add(&t.shared.latency);
    }
    let all = ViewerFigures::of(&all_stats, &latency, sent);
    let delivered_bits = sent as f64 * 8.0 / secs * viewers as f64 * all.delivered / 100.0;
    let per_viewer_s = |a: Option<u64>, b: Option<u64>| {
        a.zip(b)
            .filter(|_| viewers > 0)
            .map(|(a, b)| b.saturating_sub(a) as f64 / viewers as f64 / secs)
    };
    let mut errors = Vec::new();
    for t in &targets {
        errors.append(&mut t.shared.errors.lock().unwrap_or_else(|e| e.into_inner()));
    }
    Ok(RunResult {
        protocol,
        budget: None,
        viewers,
        gbps_per_core: (cpu(0) > 0.0).then(|| delivered_bits / 1e9 / (cpu(0) / 100.0)),
        writes_per_viewer_s: per_viewer_s(writes0, writes1),
        wakes_per_s: wakes0
            .zip(wakes1)
            .map(|(a, b)| b.saturating_sub(a) as f64 / secs),
        started: all.started,
        delivered: all.delivered,
        latency_p50: all.latency_p50,
        latency_p99: all.latency_p99,
        latency_max: latency.quantile(1.0),
        ttff_p50: all.ttff_p50,
        ttff_p99: all.ttff_p99,
        server_cpu: cpu(0),
        server_rss: memories[0].0,
        server_hwm: memories[0].1,
        client_cpu: (client_cpu1.saturating_sub(client_cpu0)).as_secs_f64() / secs * 100.0,
        disconnected: all_stats
            .iter()
            .filter(|s| s.disconnected.load(Ordering::Relaxed))
            .count(),
        first_not_key: all_stats
            .iter()
            .filter(|s| s.first_not_key.load(Ordering::Relaxed))
            .count(),
        publisher_kbps: sent as f64 * 8.0 / secs / 1000.0,
        publisher_max_late: Duration::from_nanos(max_late_ns),
        ramp,
        server_dropped_slow,
        server_alive: alive.iter().all(|&a| a),
        server_core_busy: busy(cores0.0, cores1.0).filter(|_| pinned),
        load_core_busy: busy(cores0.1, cores1.1).filter(|_| pinned),
        listen_overflows,
        errors,
        server_rss_start,
        slow: slow_result,
        nodes,
    })
}

/// What a set of viewers got in the window.
#[derive(Debug, Default, Clone)]
struct ViewerFigures {
    viewers: usize,
    /// Viewers that received a first video frame.
    started: usize,
    /// Received bytes ÷ (viewers × bytes the publisher sent), in %.
    delivered: f64,
    latency_p50: Option<Duration>,
    latency_p99: Option<Duration>,
    ttff_p50: Option<Duration>,
    ttff_p99: Option<Duration>,
}

impl ViewerFigures {
    fn of(stats: &[Arc<ViewerStats>], latency: &Histogram, sent: u64) -> ViewerFigures {
        let received: u64 = stats
            .iter()
            .map(|s| s.window_bytes.load(Ordering::Relaxed))
            .sum();
        let mut ttffs: Vec<Duration> = stats
            .iter()
            .map(|s| s.ttff_ns.load(Ordering::Relaxed))
            .filter(|&ns| ns != 0)
            .map(Duration::from_nanos)
            .collect();
        ViewerFigures {
            viewers: stats.len(),
            started: ttffs.len(),
            delivered: if sent == 0 || stats.is_empty() {
                0.0
            } else {
                received as f64 / (stats.len() as f64 * sent as f64) * 100.0
            },
            latency_p50: latency.quantile(0.5),
            latency_p99: latency.quantile(0.99),
            ttff_p50: quantile_of(&mut ttffs, 0.5),
            ttff_p99: quantile_of(&mut ttffs, 0.99),
        }
    }
}

/// One node's figures in a cluster run: its viewers' and its own CPU and memory.
#[derive(Debug)]
struct NodeResult {
    name: String,
    viewers: ViewerFigures,
    cpu: f64,
    rss: u64,
    alive: bool,
}

/// The slow viewers as they stand now, at the end of the window.
fn slow_figures(shared: &Shared, stats: &[Arc<ViewerStats>]) -> SlowResult {
    let now = shared.epoch.elapsed().as_nanos() as u64;
    let mut lags = Vec::new();
    let mut dropped: Vec<(String, usize)> = Vec::new();
    for s in stats {
        let ended = s.ended.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match ended {
            Some(reason) => match dropped.iter_mut().find(|(r, _)| *r == reason) {
                Some((_, n)) => *n += 1,
                None => dropped.push((reason, 1)),
            },
            None => {
                let newest = s.newest_sent_ns.load(Ordering::Relaxed);
                if newest != 0 {
                    lags.push(Duration::from_nanos(now.saturating_sub(newest)));
                }
            }
        }
    }
    SlowResult {
        viewers: stats.len(),
        lag_p50: quantile_of(&mut lags, 0.5),
        lag_max: quantile_of(&mut lags, 1.0),
        skipped: stats
            .iter()
            .map(|s| s.skipped.load(Ordering::Relaxed))
            .sum(),
        dropped,
    }
}

/// The slow viewers' line under a run's row, and the server's memory over the window.
fn slow_row(r: &RunResult, measure: Duration) -> String {
    let growth = r.server_rss as f64 - r.server_rss_start as f64;
    let mut s = format!(
        "    server RSS {:.1} -> {:.1} MiB over the window ({:+.3} MiB/s)",
        r.server_rss_start as f64 / 1048576.0,
        r.server_rss as f64 / 1048576.0,
        growth / 1048576.0 / measure.as_secs_f64()
    );
    if let Some(slow) = &r.slow {
        let connected = slow.viewers - slow.dropped.iter().map(|(_, n)| n).sum::<usize>();
        let _ = write!(
            s,
            "\n    slow viewers: {connected} of {} connected at the end, behind live p50 {} ms / max {} ms; {} frames skipped for them",
            slow.viewers,
            ms(slow.lag_p50),
            ms(slow.lag_max),
            slow.skipped
        );
        for (reason, n) in &slow.dropped {
            let _ = write!(s, "\n    slow viewers ended: {n} x {reason}");
        }
    }
    s
}

/// A counter from the server's `/metrics`, if it answers within 2 s.
async fn scrape_metric(http: std::net::SocketAddr, name: &str) -> Option<u64> {
    let value = vod::scrape(http, &[name]).await.pop().flatten()?;
    // Counters are whole numbers in the exposition, written as such.
    Some(value as u64)
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".into(),
        |d| format!("{:.1}", d.as_secs_f64() * 1000.0),
    )
}

fn mb(bytes: u64) -> String {
    format!("{:.0}", bytes as f64 / (1024.0 * 1024.0))
}

/// A run's budget as the tables show it.
fn budget_name(budget: Option<Duration>) -> String {
    budget.map_or_else(|| "dflt".into(), |b| format!("{}ms", b.as_millis()))
}

fn opt1(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.1}"))
}

fn header() -> String {
    format!(
        "{:<9} {:>6} {:>6} {:>9} {:>7} {:>6} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>10} {:>8} {:>7} {:>5} {:>8}",
        "protocol",
        "budget",
        "viewers",
        "Gb/s/core",
        "wr/v/s",
        "wakes/s",
        "deliv%",
        "lat p50",
        "lat p99",
        "lat max",
        "ttff p50",
        "ttff p99",
        "srv cpu%",
        "srv MB",
        "srv peakMB",
        "cli cpu%",
        "discon",
        "!key",
        "pub kbps",
    )
}

fn row(r: &RunResult) -> String {
    let mut s = format!(
        "{:<9} {:>6} {:>6} {:>9} {:>7} {:>6} {:>7.2} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8.1} {:>8} {:>10} {:>8.1} {:>7} {:>5} {:>8.0}",
        r.protocol.name(),
        budget_name(r.budget),
        r.viewers,
        opt1(r.gbps_per_core),
        opt1(r.writes_per_viewer_s),
        opt1(r.wakes_per_s),
        r.delivered,
        ms(r.latency_p50),
        ms(r.latency_p99),
        ms(r.latency_max),
        ms(r.ttff_p50),
        ms(r.ttff_p99),
        r.server_cpu,
        mb(r.server_rss),
        mb(r.server_hwm),
        r.client_cpu,
        r.disconnected,
        r.first_not_key,
        r.publisher_kbps,
    );
    let mut notes = Vec::new();
    if r.started < r.viewers {
        notes.push(format!(
            "only {} of {} viewers got a first frame",
            r.started, r.viewers
        ));
    }
    if !r.server_alive {
        notes.push("the server died".into());
    }
    if let Some(d) = r.server_dropped_slow.filter(|&d| d > 0) {
        notes.push(format!("server dropped {d} slow viewers"));
    }
    if r.publisher_max_late > Duration::from_millis(20) {
        notes.push(format!(
            "publisher up to {} ms late in the window",
            ms(Some(r.publisher_max_late))
        ));
    }
    if r.client_cpu > 90.0 || r.load_core_busy.is_some_and(|(b, _)| b > 95.0) {
        notes.push("load core saturated: the server may do better than this".into());
    }
    // What the core did beyond the server's own CPU time and the kernel's softirq work:
    // other processes on a shared machine.
    let servers_cpu: f64 = r.nodes.iter().map(|n| n.cpu).sum();
    if let Some((busy, softirq)) = r.server_core_busy
        && busy - softirq - servers_cpu > 5.0
    {
        notes.push(format!(
            "other processes took ~{:.0}% of the server core",
            busy - softirq - servers_cpu
        ));
    }
    if let Some(o) = r.listen_overflows.filter(|&o| o > 0) {
        notes.push(format!("{o} accept-queue overflows during the ramp"));
    }
    let _ = write!(s, "  (ramp {:.1} s", r.ramp.as_secs_f64());
    if let (Some((srv, srv_si)), Some((load, load_si))) = (r.server_core_busy, r.load_core_busy) {
        let _ = write!(
            s,
            "; server core busy {srv:.0}% (softirq {srv_si:.0}%), load core {load:.0}% (softirq {load_si:.0}%)"
        );
    }
    for n in notes {
        let _ = write!(s, "; {n}");
    }
    s.push(')');
    s
}

/// Per node of a cluster run: its viewers' figures, its CPU and RSS; then the nodes' total.
fn node_rows(r: &RunResult) -> String {
    let mut s = format!(
        "    {:<8} {:>7} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "node", "viewers", "deliv%", "lat p50", "lat p99", "ttff p50", "ttff p99", "cpu%", "RSS MB"
    );
    for n in &r.nodes {
        let v = &n.viewers;
        let _ = write!(
            s,
            "\n    {:<8} {:>7} {:>9.2} {:>8} {:>8} {:>8} {:>8} {:>8.1} {:>8}",
            n.name,
            v.viewers,
            v.delivered,
            ms(v.latency_p50),
            ms(v.latency_p99),
            ms(v.ttff_p50),
            ms(v.ttff_p99),
            n.cpu,
            mb(n.rss),
        );
        if v.started < v.viewers {
            let _ = write!(s, "  (only {} got a first frame)", v.started);
        }
        if !n.alive {
            s.push_str("  (died)");
        }
    }
    let _ = write!(
        s,
        "\n    {:<8} {:>7} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8.1} {:>8}",
        "all",
        r.viewers,
        format!("{:.2}", r.delivered),
        ms(r.latency_p50),
        ms(r.latency_p99),
        ms(r.ttff_p50),
        ms(r.ttff_p99),
        r.nodes.iter().map(|n| n.cpu).sum::<f64>(),
        mb(r.nodes.iter().map(|n| n.rss).sum()),
    );
    s
}

fn table(results: &[RunResult]) -> String {
    let mut s = String::from(
        "results (latency = receive time − send time of the same tag, in ms; MB = MiB; srv = the server, or the origin of a cluster)\n",
    );
    s.push_str(&header());
    for r in results {
        s.push('\n');
        s.push_str(&row(r));
        if r.nodes.len() > 1 {
            s.push('\n');
            s.push_str(&node_rows(r));
        }
    }
    s
}

fn json(results: &[RunResult]) -> serde_json::Value {
    let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
    serde_json::Value::Array(
        results
            .iter()
            .map(|r| {
                serde_json::json!({
                    "protocol": r.protocol.name(),
                    "max_write_delay_ms": r.budget.map(|b| b.as_millis() as u64),
                    "viewers": r.viewers,
                    "gbit_per_s_per_core": r.gbps_per_core,
                    "writes_per_viewer_per_s": r.writes_per_viewer_s,
                    "wakes_per_s": r.wakes_per_s,
                    "viewers_started": r.started,
                    "delivered_percent": r.delivered,
                    "latency_p50_ms": ms(r.latency_p50),
                    "latency_p99_ms": ms(r.latency_p99),
                    "latency_max_ms": ms(r.latency_max),
                    "ttff_p50_ms": ms(r.ttff_p50),
                    "ttff_p99_ms": ms(r.ttff_p99),
                    "server_cpu_percent": r.server_cpu,
                    "server_rss_bytes": r.server_rss,
                    "server_peak_rss_bytes": r.server_hwm,
                    "client_cpu_percent": r.client_cpu,
                    "viewers_disconnected": r.disconnected,
                    "first_video_not_keyframe": r.first_not_key,
                    "publisher_kbps": r.publisher_kbps,
                    "publisher_max_late_ms": r.publisher_max_late.as_secs_f64() * 1000.0,
                    "ramp_s": r.ramp.as_secs_f64(),
                    "server_dropped_slow": r.server_dropped_slow,
                    "server_alive": r.server_alive,
                    "server_core_busy_percent": r.server_core_busy.map(|b| b.0),
                    "server_core_softirq_percent": r.server_core_busy.map(|b| b.1),
                    "load_core_busy_percent": r.load_core_busy.map(|b| b.0),
                    "load_core_softirq_percent": r.load_core_busy.map(|b| b.1),
                    "listen_overflows": r.listen_overflows,
                    "errors": r.errors,
                    "server_rss_start_bytes": r.server_rss_start,
                    "nodes": r.nodes.iter().map(|n| serde_json::json!({
                        "node": n.name,
                        "viewers": n.viewers.viewers,
                        "viewers_started": n.viewers.started,
                        "delivered_percent": n.viewers.delivered,
                        "latency_p50_ms": ms(n.viewers.latency_p50),
                        "latency_p99_ms": ms(n.viewers.latency_p99),
                        "ttff_p50_ms": ms(n.viewers.ttff_p50),
                        "ttff_p99_ms": ms(n.viewers.ttff_p99),
                        "cpu_percent": n.cpu,
                        "rss_bytes": n.rss,
                        "alive": n.alive,
                    })).collect::<Vec<_>>(),
                    "slow_viewers": r.slow.as_ref().map(|s| serde_json::json!({
                        "viewers": s.viewers,
                        "lag_p50_ms": ms(s.lag_p50),
                        "lag_max_ms": ms(s.lag_max),
                        "frames_skipped": s.skipped,
                        "ended": s.dropped.iter().map(|(r, n)| serde_json::json!({"reason": r, "viewers": n})).collect::<Vec<_>>(),
                    })),
                })
            })
            .collect(),
    )
}

/// `500ms`, `5s`, `2m` or a bare number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len()));
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "" | "s" => v,
        "ms" => v / 1000.0,
        "m" | "min" => v * 60.0,
        _ => return Err(format!("bad duration unit in {s:?} (ms, s, m)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("bad duration {s:?}: {e}"))
}

/// `2600k`, `2.6M`, `2600000`.
fn parse_bitrate(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 1e3),
        Some((i, 'm' | 'M')) => (&s[..i], 1e6),
        _ => (s, 1.0),
    };
    let v: f64 = num.parse().map_err(|_| format!("bad bitrate {s:?}"))?;
    if v.is_nan() || v <= 0.0 {
        return Err(format!("bitrate must be positive: {s:?}"));
    }
    Ok((v * mult) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_bitrates_parse() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("5h").is_err());
        assert_eq!(parse_bitrate("2600k"), Ok(2_600_000));
        assert_eq!(parse_bitrate("2.6M"), Ok(2_600_000));
        assert!(parse_bitrate("0").is_err());
    }
}
