//! The real `onair` binary, for tests that run it as a process (the CLI clients, first start,
//! the operator commands against a running server), and temporary directories for its data.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;

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
