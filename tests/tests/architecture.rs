//! Architecture invariants that code review alone would let slip: the protocol crates stay
//! sans-IO (no tokio, sockets, files or clock), so they remain fuzzable and reusable, and
//! depend on nothing above them; the hub knows nothing of storage, chat or accounts; the
//! service crates keep to the arrows of the style guide (auth and store know nothing of HTTP,
//! chat knows nothing of HTTP, WebSockets or the hub); the fuzzing harnesses stay out of the
//! server's build; and inside the binary crate the modules import no cycle, services import
//! only services, and drivers reach into each other only where the list says.

use std::collections::{BTreeMap, BTreeSet};
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
const SERVICE_BOUNDARIES: [(&str, &[&str]); 4] = [
    // The web app's assets know nothing of the server: files in, a router out.
    (
        "onair-web",
        &["onair", "onair-store", "onair-hub", "onair-chat", "sqlx"],
    ),
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
    normal_tree_formatted(krate, "{p}")
}

/// [`normal_tree`] with each line in `format` (`cargo tree -f`).
fn normal_tree_formatted(krate: &str, format: &str) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(&cargo)
        .args([
            "tree",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
            "-f",
            format,
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
            // Test modules are not the code that ships. The fuzzing harnesses are held to the
            // same rule as the code they drive: a fuzz run is the same for every clock.
            let name = file.to_string_lossy();
            if name.ends_with("/tests.rs") {
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

/// What the hub must not pull in (normal dependencies): it fans frames out and knows nothing
/// of storage, chat or accounts, so ingest and playback never wait on a database.
const HUB_BANNED: [&str; 4] = ["onair-store", "onair-chat", "onair-auth", "sqlx"];

#[test]
fn the_hub_knows_nothing_of_storage_chat_or_auth() {
    let tree = normal_tree("onair-hub");
    let names = package_names(&tree);
    assert_eq!(
        names.first(),
        Some(&"onair-hub"),
        "unexpected tree root:\n{tree}"
    );
    for dep in HUB_BANNED {
        assert!(
            !names[1..].contains(&dep),
            "onair-hub depends on {dep}; the hub sits below the services:\n{tree}"
        );
    }
}

/// The crates above the protocols: a protocol crate that reached one would no longer be a
/// reusable, fuzzable library.
const ABOVE_THE_PROTOCOLS: [&str; 5] = [
    "onair-hub",
    "onair-store",
    "onair-chat",
    "onair-auth",
    "onair",
];

#[test]
fn protocol_crates_never_depend_on_the_server_crates() {
    for krate in PROTOCOL_CRATES {
        let tree = normal_tree(krate);
        let names = package_names(&tree);
        assert_eq!(names.first(), Some(&krate), "unexpected tree root:\n{tree}");
        for dep in ABOVE_THE_PROTOCOLS {
            assert!(
                !names[1..].contains(&dep),
                "{krate} depends on {dep}; protocol crates depend only on each other:\n{tree}"
            );
        }
    }
}

/// Each package of `cargo tree -f '{p}|{f}'` with the features enabled on it.
fn features_by_package(tree: &str) -> Vec<(&str, Vec<&str>)> {
    tree.lines()
        .filter_map(|line| {
            // `(*)` marks a package already printed above; its features are the same.
            let (package, features) = line.trim_end_matches(" (*)").rsplit_once('|')?;
            let name = package.split_whitespace().next()?;
            let features = features.split(',').filter(|f| !f.is_empty()).collect();
            Some((name, features))
        })
        .collect()
}

#[test]
fn features_are_read_from_the_tree() {
    let tree = "onair v0.1.0 (/w/crates/onair)|default\n\
                onair-rtmp v0.1.0 (/w/crates/onair-rtmp)|fuzzing,extra\n\
                onair-amf v0.1.0 (/w/crates/onair-amf)|\n\
                onair-rtmp v0.1.0 (/w/crates/onair-rtmp)|fuzzing,extra (*)\n";
    assert_eq!(
        features_by_package(tree),
        [
            ("onair", vec!["default"]),
            ("onair-rtmp", vec!["fuzzing", "extra"]),
            ("onair-amf", vec![]),
            ("onair-rtmp", vec!["fuzzing", "extra"]),
        ]
    );
}

/// The harnesses behind each protocol crate's `fuzzing` feature never reach the server: only
/// the fuzz targets and the crates' own tests turn it on.
#[test]
fn the_server_is_built_without_the_fuzzing_harnesses() {
    let tree = normal_tree_formatted("onair", "{p}|{f}");
    let packages = features_by_package(&tree);
    for krate in PROTOCOL_CRATES {
        let mut seen = packages
            .iter()
            .filter(|(name, _)| *name == krate)
            .peekable();
        assert!(
            seen.peek().is_some(),
            "{krate} is not in the server's tree:\n{tree}"
        );
        for (_, features) in seen {
            assert!(
                !features.contains(&"fuzzing"),
                "{krate} is built with its fuzzing feature in the server:\n{tree}"
            );
        }
    }
}

/// The binary's top-level modules, by role. Composition builds the server from the rest;
/// services are what drivers share; drivers each serve one protocol or surface.
const COMPOSITION: [&str; 3] = ["server", "state", "http"];
const SERVICES: [&str; 16] = [
    "auth",
    "channel",
    "cluster",
    "config",
    "descriptors",
    "lives",
    "metrics",
    "net",
    "passwords",
    "platform",
    "problem",
    "relay",
    "restream",
    "secret",
    "tls",
    "vod",
];
const DRIVERS: [&str; 5] = ["ingest", "flv", "hls", "api", "chat"];

/// The only places a driver reaches into another, each with its reason: a publish starts
/// its HLS recorder; the API deletes replay files and sets the retention policy; the chat
/// route hands its socket to the chat adapter.
const DRIVER_EDGES: [(&str, &str); 7] = [
    ("ingest", "hls::Hls"),
    ("api", "hls::Hls"),
    ("api", "hls::retention"),
    ("api", "chat::serve_socket"),
    // The chat socket's own handshake, whose upgrade `serve_socket` then drives.
    ("api", "chat::accept"),
    ("api", "chat::MAX_FRAME_BYTES"),
    ("api", "chat::READ_BUFFER_BYTES"),
];

/// Every `crate::…` path each top-level module of `src` names in its non-test code, as
/// (module, path after `crate::`). Comments are skipped (a doc link is not a dependency), and
/// a file's code ends at its first top-level `#[cfg(test)]`, where house style puts the
/// tests; the `api/tests/` tree and the binary's `main.rs`/`cli/` (which use `onair::`) are
/// left out.
fn crate_paths(src: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("src is readable") {
            let path = entry.expect("a directory entry").path();
            let rel = path.strip_prefix(src).expect("under src").to_path_buf();
            let rel_text = rel.to_string_lossy().replace('\\', "/");
            if path.is_dir() {
                if rel_text != "api/tests" && rel_text != "cli" {
                    stack.push(path);
                }
                continue;
            }
            if !rel_text.ends_with(".rs") || rel_text == "lib.rs" || rel_text == "main.rs" {
                continue;
            }
            let module = rel_text
                .split('/')
                .next()
                .expect("a first component")
                .trim_end_matches(".rs")
                .to_owned();
            let text = std::fs::read_to_string(&path).expect("a readable source file");
            for path in paths_in(&text) {
                if path.split("::").next() != Some(module.as_str()) {
                    out.push((module.clone(), path));
                }
            }
        }
    }
    out
}

/// The `crate::` paths in one file's code, with `use crate::{a, b::c}` groups expanded.
fn paths_in(text: &str) -> Vec<String> {
    let code: String = text
        .lines()
        .take_while(|l| !l.starts_with("#[cfg(test)]"))
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            out.extend(
                group[..end]
                    .split(',')
                    .map(|p| p.split_whitespace().next().unwrap_or("").to_owned())
                    .filter(|p| !p.is_empty()),
            );
            continue;
        }
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        let path = rest[..end].trim_end_matches(':');
        if !path.is_empty() {
            out.push(path.to_owned());
        }
    }
    out
}

/// A cycle in `edges` (module → modules it imports), as the modules along it, if any.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|n| visit(n, edges, &mut Vec::new(), &mut done))
}

fn module_edges(paths: &[(String, String)]) -> BTreeMap<String, BTreeSet<String>> {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, path) in paths {
        let to = path.split("::").next().unwrap_or(path).to_owned();
        edges.entry(from.clone()).or_default().insert(to);
    }
    edges
}

#[test]
fn the_binarys_modules_import_no_cycle_and_drivers_keep_to_their_own() {
    let src = workspace_root().join("crates/onair/src");
    let paths = crate_paths(&src);
    assert!(
        paths.len() > 50,
        "the scan found too few imports to be reading the code: {paths:?}"
    );
    let edges = module_edges(&paths);
    if let Some(cycle) = find_cycle(&edges) {
        panic!(
            "import cycle among crates/onair's modules: {}",
            cycle.join(" -> ")
        );
    }
    let known: Vec<&str> = COMPOSITION
        .iter()
        .chain(&SERVICES)
        .chain(&DRIVERS)
        .copied()
        .collect();
    let mut wrong = Vec::new();
    for (from, path) in &paths {
        let to = path.split("::").next().unwrap_or(path);
        for m in [from.as_str(), to] {
            if !known.contains(&m) {
                wrong.push(format!(
                    "{m}: a module with no role here; add it to COMPOSITION, SERVICES or DRIVERS"
                ));
            }
        }
        let allowed = if SERVICES.contains(&from.as_str()) {
            SERVICES.contains(&to)
        } else if DRIVERS.contains(&from.as_str()) {
            SERVICES.contains(&to)
                || DRIVER_EDGES
                    .iter()
                    .any(|(f, p)| f == from && (path == p || path.starts_with(&format!("{p}::"))))
        } else {
            true
        };
        if !allowed {
            wrong.push(format!("{from} uses crate::{path}"));
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(
        wrong.is_empty(),
        "module boundaries crossed:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_module_scan_reads_groups_skips_comments_and_finds_cycles() {
    let text = "use crate::{auth::PublishAuth, hls};\n// see crate::server::AppState\nlet x = crate::lives::kick_key(a);\n#[cfg(test)]\nuse crate::state::AppState;\n";
    assert_eq!(
        paths_in(text),
        ["auth::PublishAuth", "hls", "lives::kick_key"]
    );
    let edges = |pairs: &[(&str, &str)]| {
        module_edges(
            &pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(find_cycle(&edges(&[("a", "b"), ("b", "c")])), None);
    assert_eq!(
        find_cycle(&edges(&[("a", "b"), ("b", "c"), ("c", "a::X")])),
        Some(vec![
            "a".to_owned(),
            "b".to_owned(),
            "c".to_owned(),
            "a".to_owned()
        ])
    );
}
