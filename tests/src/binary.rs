//! The real `onair` binary, for tests that run it as a process (the CLI clients, first start,
//! the operator commands against a running server, a server under an open-file limit):
//! [`onair_binary`] builds it, [`OnairProcess`] runs it as a server, and [`TempDir`] holds
//! its data.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

/// Building the binary, when a test has to, may compile the whole server.
const BUILD: Duration = Duration::from_secs(900);

/// The `onair` binary in this test's target directory, brought up to date (once per test
/// process) so it is never stale: `cargo test -p onair-e2e` does not build another package's
/// binaries. When the binary is fresh that is a no-op of a second or so.
///
/// The build is `cargo test --workspace --no-run --test cli_admin`, not `cargo build -p onair`:
/// it resolves features the way the README's `cargo test --workspace` does (dev-dependencies
/// turn on features such as tokio's `test-util` and bitflags' `std`), so it reuses that run's
/// artifacts. A `-p onair` build resolves them differently and compiles tokio, sqlx and
/// everything above them a second time, which once filled CI's disk. `cli_admin` is onair's own
/// integration test; selecting it is what makes cargo link the `onair` binary.
///
/// # Panics
///
/// If the build fails or the binary is not where the build puts it.
pub async fn onair_binary() -> PathBuf {
    static BUILT: tokio::sync::OnceCell<PathBuf> = tokio::sync::OnceCell::const_new();
    BUILT
        .get_or_init(|| async {
            let exe = std::env::current_exe().expect("the test's own path");
            // target/<profile>/deps/<test>-<hash>
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .expect("test binary in target/<profile>/deps");
            let target_dir = profile_dir.parent().expect("target/<profile>");
            let binary = profile_dir.join(format!("onair{}", std::env::consts::EXE_SUFFIX));
            let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("tests/ is in the workspace");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut build = Command::new(cargo);
            build
                .args([
                    "test",
                    "--workspace",
                    "--no-run",
                    "--quiet",
                    "--test",
                    "cli_admin",
                    "--target-dir",
                ])
                .arg(target_dir)
                .current_dir(workspace)
                .kill_on_drop(true);
            if profile_dir.file_name().is_some_and(|p| p == "release") {
                build.arg("--release");
            }
            let status = tokio::time::timeout(BUILD, build.status())
                .await
                .expect("building onair timed out")
                .expect("running cargo");
            assert!(status.success(), "building the onair binary failed");
            assert!(
                binary.exists(),
                "{} missing after the build",
                binary.display()
            );
            binary
        })
        .await
        .clone()
}

/// A directory under the system temp dir, removed when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `onair-e2e-{pid}-{name}-{n}` under the system temp dir.
    ///
    /// # Panics
    ///
    /// If the directory cannot be created.
    pub fn new(name: &str) -> TempDir {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("onair-e2e-{}-{name}-{n}", std::process::id()));
        std::fs::create_dir_all(&path).expect("creating a temp dir");
        TempDir(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How long the real binary may take to report its listeners or print its first-start block.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long it may take to exit after SIGTERM, or to fail a start.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the output readers may take to finish once the process has exited.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// How to start the real binary besides its data directory.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// More environment (`ONAIR_*`) on top of the defaults [`OnairProcess::start`] sets.
    pub env: Vec<(String, String)>,
    /// `RLIMIT_NOFILE` (soft, hard) for the child only, set with util-linux's `prlimit`.
    pub nofile: Option<(u64, u64)>,
}

impl Launch {
    /// Adds `var=value` to the environment.
    pub fn env(mut self, var: &str, value: impl ToString) -> Launch {
        self.env.push((var.to_owned(), value.to_string()));
        self
    }

    /// Runs the child under `RLIMIT_NOFILE` `soft`:`hard`.
    pub fn nofile(mut self, soft: u64, hard: u64) -> Launch {
        self.nofile = Some((soft, hard));
        self
    }

    /// The command: `onair` with a clean environment (only what the test sets), on
    /// `data_dir`, both listeners on loopback port 0, JSON logs at info.
    async fn command(&self, data_dir: &Path) -> Command {
        let binary = onair_binary().await;
        let mut command = match self.nofile {
            Some((soft, hard)) => {
                let prlimit = find_in_path("prlimit")
                    .expect("prlimit (util-linux) is needed to run onair under an RLIMIT_NOFILE");
                let mut c = Command::new(prlimit);
                c.arg(format!("--nofile={soft}:{hard}"))
                    .arg("--")
                    .arg(binary);
                c
            }
            None => Command::new(binary),
        };
        command
            .env_clear()
            .env("ONAIR_STORAGE_DATA_DIR", data_dir)
            .env("ONAIR_RTMP_LISTEN", "127.0.0.1:0")
            .env("ONAIR_HTTP_LISTEN", "127.0.0.1:0")
            .env("ONAIR_SHUTDOWN_GRACE", "2s")
            .env("ONAIR_LOG_FORMAT", "json")
            .env("ONAIR_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }
}

/// `program` on this process's `PATH`.
fn find_in_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

/// The real `onair` server as a child process on its own data directory, as a new user runs
/// it: its stdout and stderr are kept as they come, and its listeners are read from its JSON
/// log. Killed when dropped.
#[derive(Debug)]
pub struct OnairProcess {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<tokio::task::JoinHandle<()>>,
    /// Where RTMP listens (`127.0.0.1:port`).
    pub rtmp_addr: String,
    /// Where HTTP listens.
    pub http_addr: String,
}

impl OnairProcess {
    /// Starts `onair` on `data_dir` with the defaults of [`Launch`].
    ///
    /// # Panics
    ///
    /// If it does not report its listeners within 30 s.
    pub async fn start(data_dir: &Path) -> OnairProcess {
        Self::launch(data_dir, &Launch::default()).await
    }

    /// Starts `onair` on `data_dir` as `launch` says and waits for its `listening` line.
    ///
    /// # Panics
    ///
    /// If it does not report its listeners within 30 s.
    pub async fn launch(data_dir: &Path, launch: &Launch) -> OnairProcess {
        let mut child = launch
            .command(data_dir)
            .await
            .spawn()
            .expect("spawning onair");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (out_tx, _) = watch::channel(0usize);
        let (err_tx, mut err_rx) = watch::channel(0usize);
        let readers = vec![
            tokio::spawn(keep(
                child.stdout.take().expect("piped"),
                stdout.clone(),
                out_tx,
            )),
            tokio::spawn(keep(
                child.stderr.take().expect("piped"),
                stderr.clone(),
                err_tx,
            )),
        ];
        let listening = tokio::time::timeout(START_TIMEOUT, async {
            loop {
                let found = stderr
                    .lock()
                    .expect("stderr lock")
                    .lines()
                    .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                    .find(|v| v["fields"]["message"] == "listening");
                if let Some(v) = found {
                    let addr = |k: &str| v["fields"][k].as_str().map(str::to_owned);
                    return addr("rtmp_addr").zip(addr("http_addr"));
                }
                if err_rx.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await;
        let Ok(Some((rtmp_addr, http_addr))) = listening else {
            panic!(
                "onair did not report its listeners; stderr:\n{}",
                stderr.lock().expect("stderr lock")
            );
        };
        OnairProcess {
            child,
            stdout,
            stderr,
            readers,
            rtmp_addr,
            http_addr,
        }
    }

    /// Runs `onair` on `data_dir` as `launch` says, expecting it to exit by itself (a start
    /// that fails): its status, stdout and stderr.
    ///
    /// # Panics
    ///
    /// If it is still running after 20 s.
    pub async fn run_to_exit(
        data_dir: &Path,
        launch: &Launch,
    ) -> (std::process::ExitStatus, String, String) {
        let output = tokio::time::timeout(EXIT_TIMEOUT, launch.command(data_dir).await.output())
            .await
            .expect("onair exits by itself")
            .expect("running onair");
        (
            output.status,
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// Its process id (`prlimit` execs the server, so this is the server itself).
    pub fn pid(&self) -> u32 {
        self.child.id().expect("onair is running")
    }

    /// Everything it printed on stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().expect("stdout lock").clone()
    }

    /// Everything it logged on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lock").clone()
    }

    /// `rtmp://{rtmp_addr}/live/{key}`.
    pub fn publish_url(&self, key: &str) -> String {
        format!("rtmp://{}/live/{key}", self.rtmp_addr)
    }

    /// `http://{http_addr}/live/{channel}.flv`.
    pub fn flv_url(&self, channel: &str) -> String {
        self.http_url(&format!("/live/{channel}.flv"))
    }

    /// `http://{http_addr}{path}`.
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http_addr)
    }

    /// Waits until the first-start block has been printed in full (it ends with a rule) and
    /// returns stdout.
    ///
    /// # Panics
    ///
    /// If the block is not complete within 30 s.
    pub async fn bootstrap_block(&self) -> String {
        let complete = crate::wait_until(START_TIMEOUT, || {
            self.stdout()
                .lines()
                .filter(|l| l.starts_with("====="))
                .count()
                >= 2
        })
        .await;
        assert!(
            complete,
            "no first-start block on stdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
        self.stdout()
    }

    /// SIGTERM, then waits for a clean exit; returns stdout and stderr.
    ///
    /// # Panics
    ///
    /// If it does not exit cleanly within 20 s.
    pub async fn stop(mut self) -> (String, String) {
        let pid = self.pid();
        let sent = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .expect("running kill");
        assert!(sent.success());
        let status = tokio::time::timeout(EXIT_TIMEOUT, self.child.wait())
            .await
            .expect("onair stops after SIGTERM")
            .expect("waiting for onair");
        assert!(status.success(), "onair exited with {status}");
        // The pipes close with the process, which ends the readers.
        for reader in std::mem::take(&mut self.readers) {
            tokio::time::timeout(IO_TIMEOUT, reader)
                .await
                .expect("the output readers end with the process")
                .expect("output reader");
        }
        (self.stdout(), self.stderr())
    }
}

/// Copies `pipe` into `into` line by line, bumping `lines` after each line.
async fn keep(pipe: impl AsyncRead + Unpin, into: Arc<Mutex<String>>, lines: watch::Sender<usize>) {
    let mut reader = BufReader::new(pipe).lines();
    while let Ok(Some(line)) = reader.next_line().await {
        if let Ok(mut text) = into.lock() {
            text.push_str(&line);
            text.push('\n');
        }
        lines.send_modify(|n| *n += 1);
    }
}

/// The admin password and the stream key from the first-start block.
///
/// # Panics
///
/// If the block lacks either line.
pub fn parse_bootstrap(block: &str) -> (String, String) {
    let value = |label: &str| {
        block
            .lines()
            .find_map(|l| l.trim().strip_prefix(label).map(|v| v.trim().to_owned()))
            .unwrap_or_else(|| panic!("no {label:?} line in:\n{block}"))
    };
    let login = value("admin login");
    let (user, password) = login
        .split_once(" / ")
        .unwrap_or_else(|| panic!("the login line is \"USER / PASSWORD\": {login:?}"));
    assert_eq!(user, "admin");
    (password.to_owned(), value("Stream Key"))
}
