//! The server under test as a child process pinned to its own core, and what `/proc` says
//! about it (and about us).

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A running `onair` server.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    /// Its process id (`taskset` execs the server, so this is the server itself).
    pub pid: u32,
    /// The RTMP listener.
    pub rtmp: SocketAddr,
    /// The HTTP listener.
    pub http: SocketAddr,
    /// Where its stderr goes.
    pub log: PathBuf,
}

impl ServerProcess {
    /// Starts `binary` on free loopback ports, pinned to `core` when given, with these
    /// `ONAIR_*` settings, and waits until both listeners accept connections.
    pub fn start_with(
        binary: &Path,
        core: Option<usize>,
        log: PathBuf,
        env: &[(&str, &str)],
    ) -> anyhow::Result<ServerProcess> {
        Self::start_at(
            binary,
            Listen::free_on(Ipv4Addr::LOCALHOST)?,
            core.map(|c| c.to_string()).as_deref(),
            log,
            env,
        )
    }

    /// [`ServerProcess::start_with`] on addresses chosen beforehand (a cluster node's
    /// settings name its own HTTP address), pinned to `cpus` (a `taskset -c` list) when
    /// given.
    pub fn start_at(
        binary: &Path,
        listen: Listen,
        cpus: Option<&str>,
        log: PathBuf,
        env: &[(&str, &str)],
    ) -> anyhow::Result<ServerProcess> {
        let Listen { rtmp, http } = listen;
        let mut command = match cpus {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpus).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        // Only the variables we mean: an operator's ONAIR_CONFIG must not change the run.
        for (var, _) in std::env::vars().filter(|(v, _)| v.starts_with("ONAIR_")) {
            command.env_remove(var);
        }
        let stderr =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        // Every load connection comes from one address: lift the per-address cap (256 by
        // default) first, so a bench's own settings can still set it.
        command.env("ONAIR_HTTP_MAX_CONNECTIONS_PER_ADDRESS", "1000000");
        command.envs(env.iter().copied());
        let child = command
            .env("ONAIR_RTMP_LISTEN", rtmp.to_string())
            .env("ONAIR_HTTP_LISTEN", http.to_string())
            .env("ONAIR_DEV_OPEN", "true")
            .env("ONAIR_SHUTDOWN_GRACE", "1s")
            .env("ONAIR_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let pid = child.id();
        let mut server = ServerProcess {
            child,
            pid,
            rtmp,
            http,
            log,
        };
        server.wait_ready(Duration::from_secs(10))?;
        Ok(server)
    }

    fn wait_ready(&mut self, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the server exited at start ({status}); see {}",
                    self.log.display()
                );
            }
            let up = |addr| {
                std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok()
            };
            if up(self.rtmp) && up(self.http) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "the server did not listen within {limit:?}; see {}",
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills it and reaps it.
    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Where a server listens.
#[derive(Debug, Clone, Copy)]
pub struct Listen {
    /// RTMP.
    pub rtmp: SocketAddr,
    /// HTTP.
    pub http: SocketAddr,
}

impl Listen {
    /// Two ports on `ip` (a loopback address) nobody listens on right now.
    pub fn free_on(ip: Ipv4Addr) -> anyhow::Result<Listen> {
        Ok(Listen {
            rtmp: free_port(ip)?,
            http: free_port(ip)?,
        })
    }
}

fn free_port(ip: Ipv4Addr) -> anyhow::Result<SocketAddr> {
    let listener =
        TcpListener::bind(SocketAddr::from((ip, 0))).context("binding a probe socket")?;
    Ok(listener.local_addr()?)
}

/// CPU time (user + system) a process has used, from `/proc/<pid>/stat`.
pub fn cpu_time(pid: Option<u32>) -> anyhow::Result<Duration> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // The command name may contain spaces and parentheses; the fields after the last ')'
    // are fixed: state is field 3, utime 14 and stime 15 (proc(5)).
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks =
        |i: usize| -> anyhow::Result<u64> { Ok(fields.get(i).context("short stat")?.parse()?) };
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_secs_f64(total as f64 / clock_ticks() as f64))
}

/// System calls that wrote (`syscw` in `/proc/{pid}/io`): every `write`, `writev` and
/// `sendmsg` of the process, so over a window and per viewer, the writes each one cost.
pub fn write_calls(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("syscw:"))?
        .trim()
        .parse()
        .ok()
}

/// `getconf CLK_TCK`, 100 when it cannot be asked.
fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    })
}

/// Resident set size now and at its peak (`VmRSS`, `VmHWM`), in bytes.
pub fn memory(pid: u32) -> anyhow::Result<(u64, u64)> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("no {name} in {path}"))?;
        let kb: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()?;
        Ok(kb * 1024)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// The server binary a bench runs: `explicit` (`--server`), else the `onair` built beside the
/// bench (`target/release/onair` next to `target/release/onair-bench`).
pub fn server_binary(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    let binary = match explicit {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe()?
            .parent()
            .context("the bench has no parent directory")?
            .join("onair"),
    };
    if !binary.exists() {
        bail!(
            "no server binary at {} (build it with cargo build --release -p onair, or pass --server)",
            binary.display()
        );
    }
    Ok(binary)
}

/// Pins every thread of this process to `core` (only the main thread exists when this runs,
/// and the threads it starts later inherit the mask).
pub fn pin_self(core: usize) -> anyhow::Result<()> {
    let status = Command::new("taskset")
        .args([
            "-a",
            "-p",
            "-c",
            &core.to_string(),
            &std::process::id().to_string(),
        ])
        .stdout(Stdio::null())
        .status()
        .context("running taskset")?;
    if !status.success() {
        bail!("taskset -p -c {core} failed: {status}");
    }
    Ok(())
}

/// Time one core spent so far, from `/proc/stat` (in clock ticks).
#[derive(Debug, Clone, Copy)]
pub struct CoreTicks {
    busy: u64,
    softirq: u64,
    total: u64,
}

impl CoreTicks {
    /// Reads the counters of `core`.
    pub fn read(core: usize) -> anyhow::Result<CoreTicks> {
        let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
        let name = format!("cpu{core}");
        let line = stat
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name.as_str()))
            .with_context(|| format!("no {name} in /proc/stat"))?;
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        let at = |i: usize| v.get(i).copied().unwrap_or(0);
        // user nice system idle iowait irq softirq steal (guest time is already in user).
        let total: u64 = (0..8).map(at).sum();
        Ok(CoreTicks {
            busy: total - at(3) - at(4),
            softirq: at(6),
            total,
        })
    }

    /// Busy and softirq percentages of the core between `self` and a later sample.
    ///
    /// Softirq matters on loopback: the receiving side of TCP runs on the sending core, and
    /// the kernel charges it to no process.
    pub fn percent_until(self, later: CoreTicks) -> (f64, f64) {
        let total = later.total.saturating_sub(self.total);
        if total == 0 {
            return (0.0, 0.0);
        }
        let pct = |a: u64, b: u64| b.saturating_sub(a) as f64 / total as f64 * 100.0;
        (pct(self.busy, later.busy), pct(self.softirq, later.softirq))
    }
}

/// `TcpExt: ListenOverflows` from `/proc/net/netstat`: connections dropped because a listener's
/// accept queue was full (system-wide).
pub fn listen_overflows() -> Option<u64> {
    let netstat = std::fs::read_to_string("/proc/net/netstat").ok()?;
    let mut lines = netstat.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (lines.next()?, lines.next()?);
    let i = names
        .split_whitespace()
        .position(|n| n == "ListenOverflows")?;
    values.split_whitespace().nth(i)?.parse().ok()
}
