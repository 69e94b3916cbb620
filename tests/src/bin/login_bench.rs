//! `onair-login-bench`: login throughput and memory of one OnAir server process under a
//! login flood (issue #18).
//!
//! For each concurrency C, a fresh server (its own SQLite file, the default Argon2id cost
//! and hashing threads unless `--env` says otherwise) gets C logins in flight at all times
//! for the window, each a new connection naming an account nobody has (the issue's flood:
//! every one costs a full hash), from 30 loopback addresses. Meanwhile one signed-in client
//! asks `GET /api/v1/auth/me` every 100 ms. The bench prints, per C: answered logins per second, how many were 401
//! (checked) and 503 (no hashing thread came free in `auth.password_hash_wait`), login
//! latency p50/p99, the signed-in request's latency p50/p99/max, the server's CPU, and its
//! peak and final RSS (`VmHWM`, `VmRSS`). The per-address login limit is lifted for the run
//! so the hashing is what is measured.
//!
//! ```text
//! cargo build --release -p onair -p onair-e2e --bin onair --bin onair-login-bench
//! target/release/onair-login-bench
//! target/release/onair-login-bench --concurrency 10,100,300 --window 10s
//! ```

// Shared with `onair-bench`; this bench uses only part of them.
#[allow(dead_code)]
#[path = "bench/histogram.rs"]
mod histogram;
#[allow(dead_code)]
#[path = "bench/server.rs"]
mod server;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::histogram::quantile_of;
use crate::server::ServerProcess;

/// One login may take this long before the bench counts it as lost.
const LOGIN_LIMIT: Duration = Duration::from_secs(30);

/// Login flood benchmark: C logins in flight, one server core.
#[derive(Debug, Parser)]
#[command(name = "onair-login-bench")]
struct Cli {
    /// Concurrent logins to run, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10,100,300")]
    concurrency: Vec<usize>,
    /// Length of each run.
    #[arg(long, default_value = "10s", value_parser = parse_secs)]
    window: Duration,
    /// The `onair` server binary [default: `onair` next to this executable].
    #[arg(long)]
    server: Option<PathBuf>,
    /// Core the server is pinned to (the hashing threads included).
    #[arg(long, default_value_t = 0)]
    server_core: usize,
    /// Core the bench is pinned to.
    #[arg(long, default_value_t = 1)]
    load_core: usize,
    /// Do not pin anything (no `taskset`): the server's hashing threads get every core.
    #[arg(long)]
    no_pin: bool,
    /// More server settings, e.g. `--env ONAIR_AUTH_PASSWORD_HASH_KIB=9216`.
    #[arg(long, value_parser = parse_env)]
    env: Vec<(String, String)>,
    /// Loopback addresses the logins come from (127.0.0.2 on), round robin: one address
    /// would meet `http.max_connections_per_address` before the hashing.
    #[arg(long, default_value_t = 30)]
    addresses: u8,
}

/// The figures of one run.
#[derive(Debug)]
struct RunResult {
    concurrency: usize,
    window: Duration,
    checked: usize,
    busy: usize,
    refused: usize,
    other: Vec<String>,
    login: Vec<Duration>,
    signed_in: Vec<Duration>,
    signed_in_failed: usize,
    server_cpu: f64,
    peak_rss: u64,
    rss: u64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let binary = server::server_binary(cli.server.as_deref())?;
    if !cli.no_pin {
        server::pin_self(cli.load_core)
            .context("pinning the bench to the load core (use --no-pin to skip)")?;
    }
    println!(
        "onair-login-bench: server {} on core {}, bench on core {}; window {:?}; logins for unknown names, each on a new connection",
        binary.display(),
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
        cli.window,
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut rows = Vec::new();
    for &c in &cli.concurrency {
        match runtime.block_on(run_one(&cli, &binary, c)) {
            Ok(r) => {
                println!("{}", row(&r));
                rows.push(r);
            }
            Err(e) => println!("{c:>5} concurrent: failed: {e:#}"),
        }
    }
    println!("\nresults (latency from the request's first byte to the whole answer)");
    println!("{}", header());
    for r in &rows {
        println!("{}", row(r));
        for e in &r.other {
            println!("    unexpected: {e}");
        }
    }
    Ok(())
}

async fn run_one(cli: &Cli, binary: &Path, c: usize) -> anyhow::Result<RunResult> {
    let data = std::env::temp_dir().join(format!("onair-login-bench-{}-{c}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data)?;
    let log = std::env::temp_dir().join(format!("onair-login-bench-server-{c}.log"));
    let core = (!cli.no_pin).then_some(cli.server_core);
    let data_dir = data.display().to_string();
    let mut env: Vec<(&str, &str)> = vec![
        ("ONAIR_STORAGE_DATA_DIR", &data_dir),
        ("ONAIR_HLS_ENABLED", "false"),
        ("ONAIR_AUTH_REGISTRATION", "true"),
        ("ONAIR_AUTH_LOGIN_ATTEMPTS_PER_MINUTE", "100000000"),
    ];
    env.extend(cli.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let mut server = ServerProcess::start_with(binary, core, log, &env)?;
    let result = measure(cli, &server, c).await;
    let alive = server.is_running();
    server.stop();
    let _ = std::fs::remove_dir_all(&data);
    let mut result = result?;
    if !alive {
        result.other.push("the server died".into());
    }
    Ok(result)
}

async fn measure(cli: &Cli, server: &ServerProcess, c: usize) -> anyhow::Result<RunResult> {
    let http = server.http;
    let token = register(http, "bench-viewer").await?;
    let cpu_before = server::cpu_time(Some(server.pid))?;
    let started = Instant::now();
    let end = started + cli.window;
    let addresses = cli.addresses;
    let local = tokio::task::LocalSet::new();
    let outcome = local
        .run_until(async move {
            let results = Rc::new(std::cell::RefCell::new(Logins::default()));
            let mut workers = Vec::new();
            let addresses = usize::from(addresses.max(1));
            for w in 0..c {
                let results = results.clone();
                let from = std::net::Ipv4Addr::new(127, 0, 0, 2 + (w % addresses) as u8);
                workers.push(tokio::task::spawn_local(async move {
                    let mut n = 0u64;
                    while Instant::now() < end {
                        let name = format!("nobody-{w}-{n}");
                        n += 1;
                        let sent = Instant::now();
                        let answer =
                            tokio::time::timeout(LOGIN_LIMIT, login(http, from, &name)).await;
                        let took = sent.elapsed();
                        let mut r = results.borrow_mut();
                        match answer {
                            Ok(Ok((401, _))) => {
                                r.checked += 1;
                                r.latency.push(took);
                            }
                            // The hashing threads were busy for the whole wait.
                            Ok(Ok((503, body))) if body.contains("passwords") => r.busy += 1,
                            // Refused at accept: the connection caps.
                            Ok(Ok((503, _))) => r.refused += 1,
                            Ok(Ok((status, _))) => r.other.push(format!("status {status}")),
                            Ok(Err(e)) => r.other.push(format!("{e:#}")),
                            Err(_) => r.other.push("no answer within 30 s".into()),
                        }
                    }
                }));
            }
            let mut signed_in = Vec::new();
            let mut signed_in_failed = 0;
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            while Instant::now() < end {
                tick.tick().await;
                let sent = Instant::now();
                match tokio::time::timeout(LOGIN_LIMIT, me(http, &token)).await {
                    Ok(Ok(200)) => signed_in.push(sent.elapsed()),
                    _ => signed_in_failed += 1,
                }
            }
            for w in workers {
                let _ = w.await;
            }
            let logins = std::mem::take(&mut *results.borrow_mut());
            (logins, signed_in, signed_in_failed)
        })
        .await;
    let (logins, signed_in, signed_in_failed) = outcome;
    let elapsed = started.elapsed();
    let cpu = server::cpu_time(Some(server.pid))?.saturating_sub(cpu_before);
    let (rss, peak_rss) = server::memory(server.pid)?;
    Ok(RunResult {
        concurrency: c,
        window: elapsed,
        checked: logins.checked,
        busy: logins.busy,
        refused: logins.refused,
        other: dedupe(logins.other),
        login: logins.latency,
        signed_in,
        signed_in_failed,
        server_cpu: cpu.as_secs_f64() / elapsed.as_secs_f64(),
        peak_rss,
        rss,
    })
}

#[derive(Debug, Default)]
struct Logins {
    checked: usize,
    busy: usize,
    refused: usize,
    other: Vec<String>,
    latency: Vec<Duration>,
}

/// Each distinct message once, with how often it came.
fn dedupe(messages: Vec<String>) -> Vec<String> {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for m in messages {
        match counts.iter_mut().find(|(seen, _)| *seen == m) {
            Some((_, n)) => *n += 1,
            None => counts.push((m, 1)),
        }
    }
    counts
        .into_iter()
        .map(|(m, n)| format!("{n} × {m}"))
        .collect()
}

/// One HTTP/1.1 exchange on a new connection from `from`: the status and the body.
async fn exchange_from(
    http: SocketAddr,
    from: std::net::Ipv4Addr,
    request: String,
) -> anyhow::Result<(u16, String)> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((from, 0)))?;
    let mut s = socket.connect(http).await?;
    s.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").context("no HTTP response")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status")?;
    Ok((status, body.to_owned()))
}

/// [`exchange_from`] 127.0.0.1.
async fn exchange(http: SocketAddr, request: String) -> anyhow::Result<(u16, String)> {
    exchange_from(http, std::net::Ipv4Addr::LOCALHOST, request).await
}

async fn login(
    http: SocketAddr,
    from: std::net::Ipv4Addr,
    name: &str,
) -> anyhow::Result<(u16, String)> {
    let body = json!({"username": name, "password": "not the password"}).to_string();
    let request = format!(
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: bench\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    exchange_from(http, from, request).await
}

async fn me(http: SocketAddr, token: &str) -> anyhow::Result<u16> {
    let request = format!(
        "GET /api/v1/auth/me HTTP/1.1\r\nHost: bench\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    Ok(exchange(http, request).await?.0)
}

/// Registers `name` and returns its access token.
async fn register(http: SocketAddr, name: &str) -> anyhow::Result<String> {
    let body = json!({"username": name, "password": "bench-password-1"}).to_string();
    let request = format!(
        "POST /api/v1/auth/register HTTP/1.1\r\nHost: bench\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (status, body) = tokio::time::timeout(LOGIN_LIMIT, exchange(http, request))
        .await
        .context("registering took over 30 s")??;
    if status != 201 {
        bail!("registering {name}: {status} {body}");
    }
    let v: Value = serde_json::from_str(&body).context("registration answer")?;
    v["access_token"]
        .as_str()
        .map(str::to_owned)
        .context("no access_token")
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".into(),
        |d| format!("{:.0}", d.as_secs_f64() * 1000.0),
    )
}

fn header() -> String {
    format!(
        "| {:>10} | {:>8} | {:>7} | {:>9} | {:>16} | {:>22} | {:>10} | {:>8} | {:>8} |\n| {} |",
        "concurrent",
        "logins/s",
        "401",
        "503 busy",
        "login p50/p99 ms",
        "signed-in p50/p99/max",
        "server CPU",
        "peak RSS",
        "RSS",
        ["---"; 9].join(" | ")
    )
}

fn row(r: &RunResult) -> String {
    let mut login = r.login.clone();
    let mut signed_in = r.signed_in.clone();
    let answered = r.checked + r.busy;
    let failed = if r.signed_in_failed > 0 {
        format!(" ({} failed)", r.signed_in_failed)
    } else {
        String::new()
    };
    let busy = if r.refused > 0 {
        format!("{} (+{} refused)", r.busy, r.refused)
    } else {
        r.busy.to_string()
    };
    format!(
        "| {:>10} | {:>8.1} | {:>7} | {:>9} | {:>16} | {:>22} | {:>9.0}% | {:>5} MB | {:>5} MB |",
        r.concurrency,
        answered as f64 / r.window.as_secs_f64(),
        r.checked,
        busy,
        format!(
            "{} / {}",
            ms(quantile_of(&mut login, 0.5)),
            ms(quantile_of(&mut login, 0.99))
        ),
        format!(
            "{} / {} / {} ms{failed}",
            ms(quantile_of(&mut signed_in, 0.5)),
            ms(quantile_of(&mut signed_in, 0.99)),
            ms(signed_in.iter().max().copied())
        ),
        r.server_cpu * 100.0,
        r.peak_rss / (1024 * 1024),
        r.rss / (1024 * 1024),
    )
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (n, unit) = match s.strip_suffix("ms") {
        Some(n) => (n, 0.001),
        None => (s.strip_suffix('s').unwrap_or(s), 1.0),
    };
    n.parse::<f64>()
        .map(|v| Duration::from_secs_f64(v * unit))
        .map_err(|e| format!("{s}: {e}"))
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s}: expected NAME=VALUE"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_parse() {
        assert_eq!(parse_secs("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_secs("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(
            parse_env("ONAIR_AUTH_PASSWORD_HASH_KIB=9216").unwrap(),
            ("ONAIR_AUTH_PASSWORD_HASH_KIB".into(), "9216".into())
        );
        assert!(parse_env("nothing").is_err());
        assert_eq!(
            dedupe(vec!["a".into(), "b".into(), "a".into()]),
            ["2 × a", "1 × b"]
        );
    }
}
