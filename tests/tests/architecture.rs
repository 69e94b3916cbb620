//! Architecture invariants that code review alone would let slip: the protocol crates stay
//! sans-IO (no tokio, sockets, files or clock), so they remain fuzzable and reusable.

use std::path::{Path, PathBuf};
use std::process::Command;

const PROTOCOL_CRATES: [&str; 5] = [
    "onair-media",
    "onair-amf",
    "onair-rtmp",
    "onair-flv",
    "onair-hls",
];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace root")
        .to_path_buf()
}

#[test]
fn protocol_crates_do_not_depend_on_tokio_or_io_crates() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    for krate in PROTOCOL_CRATES {
        let out = Command::new(&cargo)
            .args([
                "tree",
                "--offline",
                "-e",
                "normal",
                "--prefix",
                "none",
                "-p",
                krate,
            ])
            .current_dir(workspace_root())
            .output()
            .expect("cargo tree runs");
        assert!(
            out.status.success(),
            "cargo tree -p {krate} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let tree = String::from_utf8_lossy(&out.stdout);
        assert!(
            tree.lines().count() > 1,
            "cargo tree printed nothing useful for {krate}: {tree}"
        );
        for banned in ["tokio ", "mio ", "socket2 ", "async-std ", "hyper "] {
            assert!(
                !tree.lines().any(|l| l.starts_with(banned)),
                "{krate} depends on {} (protocol crates are sans-IO):\n{tree}",
                banned.trim()
            );
        }
    }
}

#[test]
fn protocol_crates_never_read_the_clock_or_touch_sockets_and_files() {
    let banned = [
        "Instant::now",
        "SystemTime::now",
        "std::net",
        "std::fs",
        "tokio::",
        "thread::sleep",
        "rand::",
        "getrandom",
    ];
    let mut checked = 0;
    for krate in PROTOCOL_CRATES {
        let src = workspace_root().join("crates").join(krate).join("src");
        for file in rust_files(&src) {
            // Test modules and the fuzzing harness (which needs one real time base) are not
            // the code that ships in a server.
            let name = file.to_string_lossy();
            if name.ends_with("/tests.rs") || name.contains("/fuzzing") {
                continue;
            }
            let text = std::fs::read_to_string(&file).expect("source is readable");
            // Tests may use whatever they like; the rule is for the code that ships.
            let shipped = text.split("#[cfg(test)]").next().unwrap_or("");
            // Doc examples may call the clock to show the caller's side of the loop.
            let code: Vec<&str> = shipped
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect();
            for word in banned {
                assert!(
                    !code.iter().any(|l| l.contains(word)),
                    "{} uses {word}: protocol crates take time and randomness as arguments",
                    file.display()
                );
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 10,
        "only {checked} source files found; is the layout still crates/<name>/src?"
    );
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("src directory exists") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}
