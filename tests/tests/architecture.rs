//! Architecture invariants that code review alone would let slip: the protocol crates stay
//! sans-IO (no tokio, sockets, files or clock), so they remain fuzzable and reusable; the
//! service crates keep to the arrows of the style guide (auth and store know nothing of HTTP,
//! chat knows nothing of HTTP, WebSockets or the hub).

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

/// Service crates and what each must not pull in, normal dependencies only: the HTTP and
/// WebSocket stack belongs to the `onair` binary, and chat reaches the hub and live registry
/// only through its `ChatHost` trait.
const SERVICE_BOUNDARIES: [(&str, &[&str]); 3] = [
    ("onair-auth", &["sqlx", "axum", "hyper", "tower"]),
    ("onair-store", &["axum", "hyper", "tower", "onair-hub"]),
    (
        "onair-chat",
        &[
            "axum",
            "hyper",
            "tower",
            "tungstenite",
            "tokio-tungstenite",
            "onair-hub",
            "onair",
        ],
    ),
];

/// `cargo tree -e normal --prefix none -p krate`: one line per dependency, `name vX.Y.Z …`.
fn normal_tree(krate: &str) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
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
    let tree = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        tree.lines().count() > 1,
        "cargo tree printed nothing useful for {krate}: {tree}"
    );
    tree
}

/// The names of the packages in a [`normal_tree`], the root included.
fn package_names(tree: &str) -> Vec<&str> {
    tree.lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect()
}

#[test]
fn service_crates_keep_to_their_dependency_arrows() {
    for (krate, banned) in SERVICE_BOUNDARIES {
        let tree = normal_tree(krate);
        let names = package_names(&tree);
        assert_eq!(names.first(), Some(&krate), "unexpected tree root:\n{tree}");
        for dep in banned {
            assert!(
                !names[1..].contains(dep),
                "{krate} depends on {dep}, which the style guide's arrows forbid:\n{tree}"
            );
        }
    }
}

#[test]
fn dependency_names_are_read_from_the_tree() {
    let names = package_names(
        "onair-chat v0.1.0 (/w/crates/onair-chat)\naxum v0.8.9\nonair-store v0.1.0 (/w)\n",
    );
    assert_eq!(names, ["onair-chat", "axum", "onair-store"]);
    assert!(!names.contains(&"onair"), "prefix matches are not names");
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
