//! `onair-chat-bench`: chat fan-out benchmark of one OnAir server process, or of several
//! as one cluster.
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
//! `--nodes N` (issue 14) runs N server processes instead, node `i` on 127.0.0.`i`, sharing
//! NATS and a PostgreSQL database made for the run (dropped after); clients and senders go
//! round-robin over the nodes. Under each run's row the bench prints every node's delivered
//! %, latency, CPU and RSS, and whether every client saw the window's messages in one order:
//! each client folds the ids it received (the room's order) into a digest, and counts an id
//! that is not above the one before it.
//!
//! ```text
//! target/release/onair-chat-bench --clients 600 --rate 50 --measure 20 --nodes 3
//! ```
//!
//! Receivers speak just enough WebSocket (RFC 6455) to read unfragmented server frames and
//! answer pings: a full client per connection costs the load core more than the server.

// Shared with `onair-bench`, which also waits for edges to serve a channel.
#[allow(dead_code)]
#[path = "bench/cluster.rs"]
mod cluster;
#[path = "bench/histogram.rs"]
mod histogram;
// Shared with `onair-bench`; this bench uses only part of it.
#[allow(dead_code)]
#[path = "bench/server.rs"]
mod server;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
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

use crate::cluster::{Cluster, ClusterArgs, Node, Servers};
use crate::histogram::{Histogram, quantile_of};
use crate::server::ServerProcess;

/// The room every client joins: the bootstrap's channel.
const CHANNEL: &str = "demo";
/// How a chat frame starts, up to its id (`ServerFrame::to_json` puts `v`, `type` and `id`
/// first).
const CHAT_PREFIX: &[u8] = b"{\"v\":1,\"type\":\"chat\",\"id\":";
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
    /// Server processes (issue 14): more than 1 runs node `i` on 127.0.0.`i`, all sharing
    /// NATS and a PostgreSQL database made for the run, clients and senders round-robin over
    /// them; 1 runs one server on SQLite.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// A setting for every server, as its environment variable, e.g.
    /// `--env ONAIR_CHAT_BROADCAST_WINDOW=25ms` (repeatable). The bench's own
    /// environment never reaches the server.
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    server_env: Vec<(String, String)>,
    #[command(flatten)]
    cluster: ClusterArgs,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((key, value)) if key.starts_with("ONAIR_") => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{s:?} is not ONAIR_KEY=VALUE")),
    }
}

/// What the clients of one node share.
struct Shared {
    epoch: Instant,
    /// Send times (ns since `epoch`) inside `[start, end)` count.
    window: (AtomicU64, AtomicU64),
    latency: Histogram,
    /// Counted messages received, over the node's clients.
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
    fn new(epoch: Instant, clients: usize) -> Shared {
        Shared {
            epoch,
            window: (AtomicU64::new(0), AtomicU64::new(0)),
            latency: Histogram::new(),
            received: AtomicU64::new(0),
            settled: AtomicUsize::new(0),
            joined: AtomicUsize::new(0),
            ended: AtomicUsize::new(0),
            join_times: std::sync::Mutex::new(Vec::with_capacity(clients)),
            errors: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Counts messages sent inside `[start, end)` (since `epoch`).
    fn open_window(&self, start: Duration, end: Duration) {
        self.window
            .1
            .store(end.as_nanos() as u64, Ordering::Relaxed);
        self.window
            .0
            .store(start.as_nanos() as u64, Ordering::Relaxed);
    }

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

    /// Adds another node's counts to these (the figures of all clients as one).
    fn add(&self, other: &Shared) {
        self.latency.add(&other.latency);
        for (a, b) in [
            (&self.settled, &other.settled),
            (&self.joined, &other.joined),
            (&self.ended, &other.ended),
        ] {
            a.fetch_add(b.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        self.received
            .fetch_add(other.received.load(Ordering::Relaxed), Ordering::Relaxed);
        let lock = |m: &std::sync::Mutex<Vec<Duration>>| {
            m.lock().unwrap_or_else(|e| e.into_inner()).clone()
        };
        self.join_times
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(lock(&other.join_times));
        for e in other
            .errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            self.error(e.clone());
        }
    }
}

/// The order one client received the window's messages in: the ids (the room's order on
/// every node) folded into an order-sensitive digest. Only that client's task writes it.
#[derive(Debug, Default)]
struct Order {
    count: AtomicU64,
    digest: AtomicU64,
    last_id: AtomicU64,
    /// An id came at or below the one before it.
    reordered: AtomicBool,
}

impl Order {
    fn see(&self, id: u64) {
        if id <= self.last_id.load(Ordering::Relaxed) {
            self.reordered.store(true, Ordering::Relaxed);
        }
        self.last_id.store(id, Ordering::Relaxed);
        // FNV-1a over the ids: two clients with every message agree only in the same order.
        let digest = (self.digest.load(Ordering::Relaxed) ^ id).wrapping_mul(0x0100_0000_01b3);
        self.digest.store(digest, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }
}

/// Whether every client saw the same order.
#[derive(Debug, Default)]
struct OrderSummary {
    /// Clients that received as many window messages as the most any client did.
    complete: usize,
    /// Distinct digests among those: 1 when they all saw one order.
    orders: usize,
    /// Clients that saw an id at or below the one before it.
    reordered: usize,
}

impl OrderSummary {
    fn of(orders: &[&Order]) -> OrderSummary {
        let most = orders
            .iter()
            .map(|o| o.count.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0);
        let mut digests: Vec<u64> = orders
            .iter()
            .filter(|o| o.count.load(Ordering::Relaxed) == most)
            .map(|o| o.digest.load(Ordering::Relaxed))
            .collect();
        let complete = digests.len();
        digests.sort_unstable();
        digests.dedup();
        OrderSummary {
            complete,
            orders: digests.len(),
            reordered: orders
                .iter()
                .filter(|o| o.reordered.load(Ordering::Relaxed))
                .count(),
        }
    }
}

#[derive(Debug, Default)]
struct SenderStats {
    sent: AtomicU64,
    /// Sent with a send time inside the measurement window: what every client should get.
    /// Not `sent` over the window, which may count a message stamped just before it.
    windowed: AtomicU64,
    acked: AtomicU64,
    refused: AtomicU64,
}

struct RunResult {
    clients: usize,
    connect: Duration,
    sent: u64,
    /// Length of the window.
    secs: f64,
    refused: u64,
    figures: Figures,
    /// Over all nodes.
    server_cpu: f64,
    server_rss: u64,
    client_cpu: f64,
    server_alive: bool,
    order: OrderSummary,
    errors: Vec<String>,
    nodes: Vec<NodeResult>,
}

/// What a set of clients got.
struct Figures {
    joined: usize,
    join_p50: Option<Duration>,
    join_p99: Option<Duration>,
    /// Messages received ÷ (clients × messages sent in the window), in %.
    delivered: f64,
    p50: Option<Duration>,
    p99: Option<Duration>,
    max: Option<Duration>,
    ended: usize,
}

impl Figures {
    fn of(shared: &Shared, sent: u64, clients: usize) -> Figures {
        let mut joins = shared
            .join_times
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let received = shared.received.load(Ordering::Relaxed);
        Figures {
            joined: shared.joined.load(Ordering::Relaxed),
            join_p50: quantile_of(&mut joins, 0.5),
            join_p99: quantile_of(&mut joins, 0.99),
            delivered: if sent == 0 || clients == 0 {
                0.0
            } else {
                received as f64 / (sent as f64 * clients as f64) * 100.0
            },
            p50: shared.latency.quantile(0.5),
            p99: shared.latency.quantile(0.99),
            max: shared.latency.quantile(1.0),
            ended: shared.ended.load(Ordering::Relaxed),
        }
    }
}

/// One node's clients and the node's own CPU and memory.
struct NodeResult {
    name: String,
    clients: usize,
    figures: Figures,
    reordered: usize,
    cpu: f64,
    rss: u64,
    alive: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let server = server::server_binary(cli.server.as_deref())?;
    if !cli.no_pin {
        server::pin_self(cli.load_core)
            .context("pinning the bench to the load core (use --no-pin to skip)")?;
    }
    let servers = if cli.nodes > 1 {
        format!(
            "{} nodes (clients and senders round-robin over them)",
            cli.nodes
        )
    } else {
        "server".to_owned()
    };
    println!(
        "onair-chat-bench: {servers} {} pinned to core {}, clients pinned to core {}; {} msg/s from {} senders; warm-up {:?}, window {:?}",
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
                if r.nodes.len() > 1 {
                    println!("{}", node_rows(&r));
                }
                rows.push(r);
            }
            Err(e) => println!("{k:>6} clients: failed: {e:#}"),
        }
    }
    println!(
        "\nresults (latency = receive time − send time of the same message, ms; srv = all nodes)"
    );
    println!("{}", header());
    for r in &rows {
        println!("{}", row(r));
        if r.nodes.len() > 1 {
            println!("{}", node_rows(r));
        }
        for e in &r.errors {
            println!("    client ended: {e}");
        }
    }
    Ok(())
}

async fn run_one(cli: &Cli, binary: &Path, k: usize) -> anyhow::Result<RunResult> {
    let core = (!cli.no_pin).then_some(cli.server_core);
    let mut chat_limits: Vec<(&str, &str)> = vec![
        ("ONAIR_HLS_ENABLED", "false"),
        ("ONAIR_AUTH_REGISTRATION", "true"),
        ("ONAIR_AUTH_LOGIN_ATTEMPTS_PER_MINUTE", "100000"),
        ("ONAIR_CHAT_USER_MESSAGES", "1000000"),
        ("ONAIR_CHAT_FLOOD_FRAMES_PER_SECOND", "100000"),
    ];
    // Later entries win: the operator's settings go last.
    chat_limits.extend(cli.server_env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    if cli.nodes > 1 {
        let names: Vec<String> = (1..=cli.nodes).map(|i| format!("node-{i}")).collect();
        let cluster = Cluster::start(&cli.cluster, binary, &names, core, &chat_limits).await?;
        println!("    {}", cluster.describe());
        let mut servers = Servers::Cluster(cluster);
        let result = measure(cli, &mut servers, k).await;
        servers.stop().await;
        return result;
    }
    let data = std::env::temp_dir().join(format!("onair-chat-bench-{}-{k}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data)?;
    let log = std::env::temp_dir().join(format!("onair-chat-bench-server-{k}.log"));
    let data_dir = data.display().to_string();
    let mut env = vec![("ONAIR_STORAGE_DATA_DIR", data_dir.as_str())];
    env.extend_from_slice(&chat_limits);
    let mut servers = Servers::Single(Node {
        name: "server".into(),
        process: ServerProcess::start_with(binary, core, log, &env)?,
    });
    let result = measure(cli, &mut servers, k).await;
    servers.stop().await;
    let _ = std::fs::remove_dir_all(&data);
    result
}

/// The clients of one node.
struct NodeClients {
    http: SocketAddr,
    shared: Arc<Shared>,
    orders: Vec<Arc<Order>>,
}

async fn measure(cli: &Cli, servers: &mut Servers, k: usize) -> anyhow::Result<RunResult> {
    // Tokens made on one node work on every node: they share the database and its key.
    let mut tokens = Vec::new();
    for i in 0..cli.senders.max(1) {
        tokens.push(register(servers.nodes()[0].process.http, &format!("sender{i}")).await?);
    }
    let epoch = Instant::now();
    let mut nodes: Vec<NodeClients> = servers
        .nodes()
        .iter()
        .map(|node| NodeClients {
            http: node.process.http,
            shared: Arc::new(Shared::new(epoch, k.div_ceil(servers.nodes().len()))),
            orders: Vec::new(),
        })
        .collect();
    let (stop_tx, stop_rx) = watch::channel(false);
    let settled = |nodes: &[NodeClients]| -> usize {
        nodes
            .iter()
            .map(|n| n.shared.settled.load(Ordering::Relaxed))
            .sum()
    };

    let ramp_start = Instant::now();
    let mut tasks = Vec::with_capacity(k + tokens.len());
    while tasks.len() < k {
        let batch = cli.batch.max(1).min(k - tasks.len());
        for _ in 0..batch {
            let i = tasks.len() % nodes.len();
            let node = &mut nodes[i];
            let order = Arc::new(Order::default());
            node.orders.push(order.clone());
            let (http, shared, stop) = (node.http, node.shared.clone(), stop_rx.clone());
            tasks.push(tokio::spawn(async move {
                if let Err(e) = receive(http, &shared, &order, stop).await {
                    shared.error(format!("{e:#}"));
                }
            }));
        }
        let deadline = Instant::now() + BATCH_LIMIT;
        while settled(&nodes) < tasks.len() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let connect = ramp_start.elapsed();

    let senders = Arc::new(SenderStats::default());
    let per_sender = Duration::from_secs_f64(tokens.len() as f64 / f64::from(cli.rate.max(1)));
    for (i, token) in tokens.into_iter().enumerate() {
        let http = nodes[i % nodes.len()].http;
        let (shared, stats, stop) = (nodes[0].shared.clone(), senders.clone(), stop_rx.clone());
        // Staggered so the senders' ticks spread over each interval instead of bunching.
        let offset = per_sender.mul_f64(i as f64 / cli.senders.max(1) as f64);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(offset).await;
            if let Err(e) = send(http, token, per_sender, &shared, &stats, stop).await {
                shared.error(format!("sender: {e:#}"));
            }
        }));
    }

    let pids: Vec<u32> = servers.nodes().iter().map(|n| n.process.pid).collect();
    let cpu_times = || -> anyhow::Result<Vec<Duration>> {
        pids.iter()
            .map(|&pid| server::cpu_time(Some(pid)))
            .collect()
    };
    let start = epoch.elapsed() + cli.warmup;
    let end = start + cli.measure;
    // Set before it starts: whether a message counts is then a matter of its send time
    // alone, for its sender and its receivers alike.
    for node in &nodes {
        node.shared.open_window(start, end);
    }
    tokio::time::sleep_until((epoch + start).into()).await;
    let sent0 = senders.sent.load(Ordering::Relaxed);
    let refused0 = senders.refused.load(Ordering::Relaxed);
    let (server_cpu0, client_cpu0) = (cpu_times()?, server::cpu_time(None)?);
    tokio::time::sleep_until((epoch + end).into()).await;
    let (server_cpu1, client_cpu1) = (cpu_times()?, server::cpu_time(None)?);
    let sent = senders.sent.load(Ordering::Relaxed) - sent0;
    let refused = senders.refused.load(Ordering::Relaxed) - refused0;
    let memories = pids
        .iter()
        .map(|&pid| server::memory(pid))
        .collect::<anyhow::Result<Vec<_>>>()?;
    tokio::time::sleep(DRAIN).await;
    let windowed = senders.windowed.load(Ordering::Relaxed);
    let alive: Vec<bool> = servers
        .nodes_mut()
        .iter_mut()
        .map(|n| n.process.is_running())
        .collect();
    let _ = stop_tx.send(true);
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        let _ = t.await;
    }

    let secs = cli.measure.as_secs_f64();
    let cpu = |i: usize| server_cpu1[i].saturating_sub(server_cpu0[i]).as_secs_f64() / secs * 100.0;
    let node_results: Vec<NodeResult> = servers
        .nodes()
        .iter()
        .zip(&nodes)
        .enumerate()
        .map(|(i, (node, clients))| NodeResult {
            name: node.name.clone(),
            clients: clients.orders.len(),
            figures: Figures::of(&clients.shared, windowed, clients.orders.len()),
            reordered: clients
                .orders
                .iter()
                .filter(|o| o.reordered.load(Ordering::Relaxed))
                .count(),
            cpu: cpu(i),
            rss: memories[i].0,
            alive: alive[i],
        })
        .collect();
    let all = Shared::new(epoch, k);
    for node in &nodes {
        all.add(&node.shared);
    }
    let orders: Vec<&Order> = nodes
        .iter()
        .flat_map(|n| n.orders.iter().map(|o| &**o))
        .collect();
    Ok(RunResult {
        clients: k,
        connect,
        sent,
        secs,
        refused,
        figures: Figures::of(&all, windowed, k),
        server_cpu: node_results.iter().map(|n| n.cpu).sum(),
        server_rss: node_results.iter().map(|n| n.rss).sum(),
        client_cpu: (client_cpu1.saturating_sub(client_cpu0)).as_secs_f64() / secs * 100.0,
        server_alive: alive.iter().all(|&a| a),
        order: OrderSummary::of(&orders),
        errors: std::mem::take(&mut *all.errors.lock().unwrap_or_else(|e| e.into_inner())),
        nodes: node_results,
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
                let stamp = shared.now_ns();
                let text = format!("~b {seq} {stamp}");
                ws.send(Message::text(json!({"type": "chat", "v": 1, "text": text}).to_string())).await?;
                stats.sent.fetch_add(1, Ordering::Relaxed);
                if shared.counts(stamp) {
                    stats.windowed.fetch_add(1, Ordering::Relaxed);
                }
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
    order: &Order,
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
                            if let Some(id) = message_id(payload) {
                                order.see(id);
                            }
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

/// The stored id of a chat frame (`{"v":1,"type":"chat","id":N,…}`): the room's order.
fn message_id(payload: &[u8]) -> Option<u64> {
    let rest = payload.strip_prefix(CHAT_PREFIX)?;
    let end = rest.iter().position(|b| !b.is_ascii_digit())?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
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
    let f = &r.figures;
    let mut s = format!(
        "{:>7} {:>7} {:>9.1} {:>9} {:>9} {:>7.0} {:>8.2} {:>8} {:>8} {:>8} {:>7.1} {:>8.1} {:>6.0}",
        r.clients,
        f.joined,
        r.connect.as_secs_f64(),
        ms(f.join_p50),
        ms(f.join_p99),
        r.sent as f64 / r.secs,
        f.delivered,
        ms(f.p50),
        ms(f.p99),
        ms(f.max),
        r.server_cpu,
        r.client_cpu,
        r.server_rss as f64 / (1024.0 * 1024.0),
    );
    let mut notes = Vec::new();
    if f.ended > 0 {
        notes.push(format!("{} clients lost their socket", f.ended));
    }
    if r.refused > 0 {
        notes.push(format!("{} sends refused", r.refused));
    }
    if !r.server_alive {
        notes.push("a server died".into());
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

/// Per node of a cluster run: its clients' figures, its CPU and RSS; then the order check.
fn node_rows(r: &RunResult) -> String {
    let mut s = format!(
        "    {:<8} {:>7} {:>7} {:>8} {:>8} {:>8} {:>8} {:>7} {:>6} {:>9}",
        "node",
        "clients",
        "joined",
        "deliv%",
        "lat p50",
        "lat p99",
        "lat max",
        "cpu%",
        "MB",
        "reordered"
    );
    for n in &r.nodes {
        let f = &n.figures;
        let _ = write!(
            s,
            "\n    {:<8} {:>7} {:>7} {:>8.2} {:>8} {:>8} {:>8} {:>7.1} {:>6.0} {:>9}",
            n.name,
            n.clients,
            f.joined,
            f.delivered,
            ms(f.p50),
            ms(f.p99),
            ms(f.max),
            n.cpu,
            n.rss as f64 / (1024.0 * 1024.0),
            n.reordered,
        );
        if !n.alive {
            s.push_str("  (died)");
        }
    }
    let o = &r.order;
    let _ = write!(
        s,
        "\n    order: {} clients saw an id out of order; {} of {} clients got every message any client got, in {} order{}{}",
        o.reordered,
        o.complete,
        r.clients,
        o.orders,
        if o.orders == 1 { "" } else { "s" },
        if o.reordered == 0 && o.orders == 1 {
            " (the same order on every node)"
        } else {
            " (NOT one order)"
        },
    );
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
        assert_eq!(message_id(text), Some(3));
        assert_eq!(message_id(br#"{"v":1,"type":"viewers","count":3}"#), None);
        assert_eq!(sent_at(br#"{"type":"viewers"}"#), None);
    }
}
