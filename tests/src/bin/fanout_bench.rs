//! `onair-fanout-bench`: what one core pays to fan one stream's bytes out to N loopback
//! sockets, by writer design, with nothing else of the server in the way (issue 13).
//!
//! The server's figures mix the kernel's share of a write (TCP, and on loopback the
//! receiving side too, which runs on the sending core) with everything around it: the hub,
//! RTMP, tokio's task machinery. This bench keeps only the writes. A writer process, pinned
//! to one core, connects N sockets to this process (pinned to the other core, reading
//! everything) and every `1 / --writes` s writes one shared buffer of
//! `bitrate / 8 / writes` bytes to each socket, by one of three designs:
//!
//! - `tasks`: a task per socket, woken per write through a broadcast channel, writing with
//!   tokio (the shape of OnAir's viewers today: one task woken per viewer per write);
//! - `direct`: one thread walks the sockets and writes each one with a non-blocking `write`
//!   (the shape of the chat's room-written wire, and of a per-channel media fan-out);
//! - `uring`: one thread queues one `SEND` per socket on an io_uring and submits them all
//!   with one `io_uring_enter` (the io_uring fan-out the issue asks to try).
//!
//! A socket that has not taken the last write whole gets the rest first and skips the
//! new one (counted). Per design and N it prints the writer core's busy and softirq %, the
//! writer process's CPU, Gbit/s delivered, writes a second, and core µs per write.
//!
//! ```text
//! cargo build --release -p onair-e2e --bin onair-fanout-bench
//! target/release/onair-fanout-bench --sockets 2000,4000 --modes tasks,direct,uring
//! ```

#[path = "bench/server.rs"]
#[allow(dead_code)]
mod server;

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::server::{CoreTicks, cpu_time, pin_self};

#[derive(Parser, Debug)]
#[command(name = "onair-fanout-bench")]
struct Cli {
    /// Socket counts to run, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "2000,4000")]
    sockets: Vec<usize>,
    /// Writer designs to run, comma-separated: tasks, direct, uring.
    #[arg(long, value_delimiter = ',', default_value = "tasks,direct,uring")]
    modes: Vec<Mode>,
    /// Writes a second to each socket (OnAir's paced viewers make about 40).
    #[arg(long, default_value_t = 40)]
    writes: u32,
    /// The stream's rate, kbit/s, spread over the writes.
    #[arg(long, default_value_t = 2600)]
    bitrate: u64,
    /// Seconds measured, after a 2 s warm-up.
    #[arg(long, default_value_t = 10)]
    measure: u64,
    /// Core of the writer process.
    #[arg(long, default_value_t = 0)]
    writer_core: usize,
    /// Core of this process, the readers.
    #[arg(long, default_value_t = 1)]
    reader_core: usize,
    /// Internal: run as the writer, connecting to this address.
    #[arg(long, hide = true)]
    writer_to: Option<SocketAddr>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    Tasks,
    Direct,
    Uring,
}

const WARMUP: Duration = Duration::from_secs(2);

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(to) = cli.writer_to {
        return writer(&cli, to);
    }
    pin_self(cli.reader_core)?;
    println!(
        "onair-fanout-bench: writer on core {}, readers on core {}; {} writes/s per socket of {} bytes ({} kbit/s)",
        cli.writer_core,
        cli.reader_core,
        cli.writes,
        chunk_len(&cli),
        cli.bitrate
    );
    println!(
        "{:>7} {:>7} {:>9} {:>9} {:>9} {:>9} {:>10} {:>9} {:>8} {:>7}",
        "mode",
        "sockets",
        "core %",
        "softirq %",
        "proc %",
        "Gbit/s",
        "writes/s",
        "µs/write",
        "Gb/s/cor",
        "skips"
    );
    for &n in &cli.sockets {
        for &mode in &cli.modes {
            let r = run(&cli, mode, n)?;
            println!(
                "{:>7} {:>7} {:>9.1} {:>9.1} {:>9.1} {:>9.2} {:>10.0} {:>9.2} {:>8.1} {:>7}",
                format!("{mode:?}").to_lowercase(),
                n,
                r.core,
                r.softirq,
                r.process,
                r.gbits,
                r.writes,
                r.core / 100.0 * 1e6 / r.writes.max(1.0),
                r.gbits / (r.core / 100.0).max(0.01),
                r.skips
            );
        }
    }
    Ok(())
}

fn chunk_len(cli: &Cli) -> usize {
    (cli.bitrate * 1000 / 8 / u64::from(cli.writes.max(1))) as usize
}

struct Figures {
    core: f64,
    softirq: f64,
    process: f64,
    gbits: f64,
    writes: f64,
    skips: u64,
}

/// One design at one socket count: the readers here, the writer in a process of its own.
fn run(cli: &Cli, mode: Mode, n: usize) -> anyhow::Result<Figures> {
    // A deep accept queue: the writer connects all N before the readers take the first.
    let listener = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    listener.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    listener.listen(4096)?;
    let listener: TcpListener = listener.into();
    let addr = listener.local_addr()?;
    let me = std::env::current_exe()?;
    let child = Command::new("taskset")
        .arg("-c")
        .arg(cli.writer_core.to_string())
        .arg(me)
        .arg("--writer-to")
        .arg(addr.to_string())
        .arg("--sockets")
        .arg(n.to_string())
        .arg("--modes")
        .arg(format!("{mode:?}").to_lowercase())
        .arg("--writes")
        .arg(cli.writes.to_string())
        .arg("--bitrate")
        .arg(cli.bitrate.to_string())
        .arg("--measure")
        .arg(cli.measure.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the writer")?;
    let pid = child.id();
    let received = Arc::new(AtomicU64::new(0));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let readers = {
        let received = received.clone();
        runtime.block_on(async move {
            listener.set_nonblocking(true)?;
            let listener = tokio::net::TcpListener::from_std(listener)?;
            let mut readers = Vec::with_capacity(n);
            for _ in 0..n {
                let (mut socket, _) =
                    tokio::time::timeout(Duration::from_secs(30), listener.accept())
                        .await
                        .context("the writer did not connect in time")??;
                let received = received.clone();
                readers.push(tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(got) = socket.read(&mut buf).await {
                        if got == 0 {
                            break;
                        }
                        received.fetch_add(got as u64, Ordering::Relaxed);
                    }
                }));
            }
            anyhow::Ok(readers)
        })?
    };
    let (core0, cpu0, bytes0, begun) = runtime.block_on(async {
        tokio::time::sleep(WARMUP).await;
        anyhow::Ok((
            CoreTicks::read(cli.writer_core)?,
            cpu_time(Some(pid))?,
            received.load(Ordering::Relaxed),
            Instant::now(),
        ))
    })?;
    let (core1, cpu1, bytes1, secs) = runtime.block_on(async {
        tokio::time::sleep(Duration::from_secs(cli.measure)).await;
        anyhow::Ok((
            CoreTicks::read(cli.writer_core)?,
            cpu_time(Some(pid))?,
            received.load(Ordering::Relaxed),
            begun.elapsed().as_secs_f64(),
        ))
    })?;
    let output = child.wait_with_output()?;
    drop(readers);
    if !output.status.success() {
        bail!("the writer failed: {}", output.status);
    }
    // The writer's last line: writes made and skipped inside the window.
    let report = String::from_utf8_lossy(&output.stdout);
    let mut fields = report
        .lines()
        .last()
        .context("the writer said nothing")?
        .split_whitespace()
        .map(|f| f.parse::<u64>().unwrap_or(0));
    let (writes, skips) = (fields.next().unwrap_or(0), fields.next().unwrap_or(0));
    let (core, softirq) = core0.percent_until(core1);
    Ok(Figures {
        core,
        softirq,
        process: (cpu1.saturating_sub(cpu0)).as_secs_f64() / secs * 100.0,
        gbits: (bytes1 - bytes0) as f64 * 8.0 / secs / 1e9,
        writes: writes as f64 / cli.measure as f64,
        skips,
    })
}

/// Per socket: bytes of the last buffer not yet written.
struct Pending {
    left: usize,
}

/// The writer process: connects, writes for the warm-up and the window, then prints the
/// window's writes and skips.
fn writer(cli: &Cli, to: SocketAddr) -> anyhow::Result<()> {
    let n = cli.sockets.first().copied().unwrap_or(1);
    let mode = cli.modes.first().copied().unwrap_or(Mode::Direct);
    let mut sockets = Vec::with_capacity(n);
    for _ in 0..n {
        let s = TcpStream::connect(to)?;
        s.set_nodelay(true)?;
        sockets.push(s);
    }
    let chunk = Bytes::from(vec![0x5a; chunk_len(cli)]);
    let every = Duration::from_secs(1) / cli.writes.max(1);
    let warm_until = Instant::now() + WARMUP;
    let end = warm_until + Duration::from_secs(cli.measure);
    let (writes, skips) = match mode {
        Mode::Tasks => tasks(sockets, chunk, every, warm_until, end)?,
        Mode::Direct => direct(&sockets, &chunk, every, warm_until, end)?,
        Mode::Uring => uring(&sockets, &chunk, every, warm_until, end)?,
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{writes} {skips}")?;
    Ok(())
}

/// Ticks every `every` from now until `end`, calling `tick(in_window)`.
fn ticks(every: Duration, warm_until: Instant, end: Instant, mut tick: impl FnMut(bool)) {
    let mut next = Instant::now();
    while next < end {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        tick(next >= warm_until);
        next += every;
    }
}

fn direct(
    sockets: &[TcpStream],
    chunk: &Bytes,
    every: Duration,
    warm_until: Instant,
    end: Instant,
) -> anyhow::Result<(u64, u64)> {
    for s in sockets {
        s.set_nonblocking(true)?;
    }
    let mut pending: Vec<Pending> = sockets.iter().map(|_| Pending { left: 0 }).collect();
    let (mut writes, mut skips) = (0u64, 0u64);
    ticks(every, warm_until, end, |counted| {
        for (s, p) in sockets.iter().zip(pending.iter_mut()) {
            let skipped = p.left > 0;
            let from = if skipped { chunk.len() - p.left } else { 0 };
            match (&*s).write(&chunk[from..]) {
                Ok(n) => p.left = chunk.len() - from - n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    p.left = chunk.len() - from;
                }
                Err(_) => p.left = 0,
            }
            if counted {
                writes += 1;
                skips += u64::from(skipped);
            }
        }
    });
    Ok((writes, skips))
}

/// `MSG_DONTWAIT`: a full socket answers EAGAIN at once instead of the ring waiting on it.
const MSG_DONTWAIT: i32 = 0x40;

fn uring(
    sockets: &[TcpStream],
    chunk: &Bytes,
    every: Duration,
    warm_until: Instant,
    end: Instant,
) -> anyhow::Result<(u64, u64)> {
    use io_uring::{IoUring, opcode, types};
    let entries = sockets.len().next_power_of_two().clamp(8, 4096) as u32;
    let mut ring = IoUring::new(entries).context("io_uring_setup")?;
    let mut pending: Vec<Pending> = sockets.iter().map(|_| Pending { left: 0 }).collect();
    let (mut writes, mut skips) = (0u64, 0u64);
    let mut failed = None;
    ticks(every, warm_until, end, |counted| {
        let mut next = 0;
        while next < sockets.len() && failed.is_none() {
            let batch = (sockets.len() - next).min(entries as usize);
            for (i, s) in sockets.iter().enumerate().skip(next).take(batch) {
                let p = &pending[i];
                let from = if p.left > 0 { chunk.len() - p.left } else { 0 };
                let bytes = &chunk[from..];
                let send =
                    opcode::Send::new(types::Fd(s.as_raw_fd()), bytes.as_ptr(), bytes.len() as u32)
                        .flags(MSG_DONTWAIT)
                        .build()
                        .user_data(i as u64);
                // SAFETY: the buffer is `chunk`, which outlives the ring's use of it: every
                // entry pushed here completes (submit_and_wait below) before the tick ends.
                #[allow(unsafe_code)]
                let pushed = unsafe { ring.submission().push(&send) };
                if pushed.is_err() {
                    failed = Some("the submission queue is full");
                }
            }
            if let Err(e) = ring.submit_and_wait(batch) {
                failed = Some(if e.kind() == std::io::ErrorKind::Interrupted {
                    "interrupted"
                } else {
                    "io_uring_enter failed"
                });
            }
            for cqe in ring.completion() {
                let i = cqe.user_data() as usize;
                let p = &mut pending[i];
                let skipped = p.left > 0;
                let asked = if skipped { p.left } else { chunk.len() };
                let result = cqe.result();
                p.left = match result {
                    n if n >= 0 => asked - n as usize,
                    // -EAGAIN: the socket is full; the rest waits for the next tick.
                    -11 => asked,
                    _ => 0,
                };
                if counted {
                    writes += 1;
                    skips += u64::from(skipped);
                }
            }
            next += batch;
        }
    });
    if let Some(why) = failed {
        bail!("io_uring: {why}");
    }
    Ok((writes, skips))
}

fn tasks(
    sockets: Vec<TcpStream>,
    chunk: Bytes,
    every: Duration,
    warm_until: Instant,
    end: Instant,
) -> anyhow::Result<(u64, u64)> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let (tx, _) = tokio::sync::broadcast::channel::<(Bytes, bool)>(4);
        let writes = Arc::new(AtomicU64::new(0));
        let skips = Arc::new(AtomicU64::new(0));
        let mut handles = Vec::new();
        for s in sockets {
            s.set_nonblocking(true)?;
            let mut s = tokio::net::TcpStream::from_std(s)?;
            let mut rx = tx.subscribe();
            let (writes, skips) = (writes.clone(), skips.clone());
            handles.push(tokio::spawn(async move {
                loop {
                    match rx.recv().await {
                        Ok((chunk, counted)) => {
                            if s.write_all(&chunk).await.is_err() {
                                return;
                            }
                            if counted {
                                writes.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        // Behind: the writes missed are skips.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            skips.fetch_add(n, Ordering::Relaxed);
                        }
                        Err(_) => return,
                    }
                }
            }));
        }
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        while Instant::now() < end {
            tick.tick().await;
            let _ = tx.send((chunk.clone(), Instant::now() >= warm_until));
        }
        drop(tx);
        for h in handles {
            h.abort();
        }
        anyhow::Ok((
            writes.load(Ordering::Relaxed),
            skips.load(Ordering::Relaxed),
        ))
    })
}
