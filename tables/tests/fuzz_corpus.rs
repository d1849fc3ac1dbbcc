//! The fuzz corpus as regression tests: every input committed under `fuzz/corpus/<target>/`
//! (seeds and every input that once crashed a target) goes through the same function the fuzz
//! target calls (`fuzz/harness.rs`), without cargo-fuzz. CI also fuzzes each target for a short
//! while (`.ci/fuzz`); this keeps the found crashes fixed between those runs.

#[path = "../../fuzz/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The `[[bin]]` names in fuzz/Cargo.toml: what `cargo fuzz list` and CI run.
fn fuzz_targets() -> Vec<String> {
    let text = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    let manifest: toml::Table = toml::from_str(&text).unwrap();
    manifest["bin"]
        .as_array()
        .expect("fuzz/Cargo.toml has [[bin]] targets")
        .iter()
        .map(|b| b["name"].as_str().unwrap().to_string())
        .collect()
}

fn corpus_files(target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join("corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_fuzz_target_has_a_harness_and_a_seed_corpus() {
    let targets = fuzz_targets();
    assert!(targets.len() >= 7, "{targets:?}");
    for t in &targets {
        assert!(
            harness::TARGETS.iter().any(|(name, _)| name == t),
            "fuzz target {t} has no entry in fuzz/harness.rs TARGETS, so its corpus is never replayed"
        );
        assert!(
            !corpus_files(t).is_empty(),
            "fuzz target {t} has no seed corpus under fuzz/corpus/{t}/"
        );
    }
    for entry in std::fs::read_dir(fuzz_dir().join("corpus")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            targets.contains(&name),
            "fuzz/corpus/{name}/ belongs to no fuzz target"
        );
    }
}

#[test]
fn every_corpus_input_replays_without_a_panic() {
    let mut failed = Vec::new();
    let mut inputs = 0;
    for (target, run) in harness::TARGETS {
        for file in corpus_files(target) {
            let data = std::fs::read(&file).unwrap();
            inputs += 1;
            if std::panic::catch_unwind(|| run(&data)).is_err() {
                failed.push(file.display().to_string());
            }
        }
    }
    assert!(failed.is_empty(), "these corpus inputs panic: {failed:#?}");
    assert!(inputs >= 30, "only {inputs} corpus inputs");
}
