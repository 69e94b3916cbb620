//! The seed-corpus walker the protocol crates' `tests/fuzz_corpus.rs` share: each includes
//! this file with `#[path]`, so the four run their harnesses over `fuzz/corpus/<target>` and
//! check their generated seeds the same way. It sits beside the corpus it reads; it is no
//! target of the fuzz workspace.

use std::path::PathBuf;

/// Seeds stay small: libFuzzer mutates them by the thousand per second.
pub const MAX_SEED: usize = 16 * 1024;

/// `fuzz/corpus/<target>` of the workspace, from the including crate's directory.
pub fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

/// Every file of `target`'s corpus through `harness`. A missing or empty directory fails: the
/// harness would then check nothing.
pub fn run_corpus(target: &str, harness: impl Fn(&[u8])) {
    let dir = corpus_dir(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("corpus directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: no corpus files", dir.display());
    for path in files {
        let data = std::fs::read(&path).expect("corpus file is readable");
        // Printed only when the harness panics: which file broke it.
        eprintln!("{}", path.display());
        harness(&data);
    }
}

/// With `ONAIR_WRITE_CORPUS=1`, writes each seed that passes `harness`; otherwise asserts that
/// each is committed exactly as generated (the corpus may hold more files than these).
pub fn check_seeds(target: &str, seeds: Vec<(&str, Vec<u8>)>, harness: impl Fn(&[u8])) {
    let dir = corpus_dir(target);
    let write = std::env::var_os("ONAIR_WRITE_CORPUS").is_some_and(|v| v == "1");
    for (name, data) in seeds {
        let path = dir.join(name);
        assert!(
            data.len() <= MAX_SEED,
            "{}: {} bytes",
            path.display(),
            data.len()
        );
        if write {
            harness(&data);
            std::fs::create_dir_all(&dir).expect("corpus directory can be created");
            std::fs::write(&path, &data).expect("seed can be written");
            continue;
        }
        let committed = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; ONAIR_WRITE_CORPUS=1 writes the seeds",
                path.display()
            )
        });
        assert!(
            committed == data,
            "{} is not what its generator makes; ONAIR_WRITE_CORPUS=1 rewrites it",
            path.display()
        );
    }
}
