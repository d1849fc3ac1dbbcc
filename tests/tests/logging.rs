//! Diagnostics go through one logger: quiet by default, `--verbose` adds informational lines,
//! and no code writes to stderr behind its back.

use std::path::{Path, PathBuf};

use launchwatch_e2e::{launchwatch, stderr};

#[test]
fn verbose_adds_debug_lines_and_the_default_keeps_what_the_user_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let obs = dir.path().join("obs.jsonl");
    std::fs::write(
        &obs,
        "{\"kind\":\"dns\",\"ts\":1700000000,\"name\":\"a.example\",\"address\":\"192.0.2.1\"}\n",
    )
    .unwrap();
    let run = |verbose: bool| {
        let mut args = vec![
            "query",
            "--json",
            "--replay",
            obs.to_str().unwrap(),
            "SELECT name FROM launchwatch_dns",
        ];
        if verbose {
            args.insert(0, "--verbose");
        }
        launchwatch(&args, dir.path())
    };
    let quiet = run(false);
    assert!(quiet.status.success(), "{}", stderr(&quiet));
    assert_eq!(stderr(&quiet), "", "no diagnostics without --verbose");
    let loud = run(true);
    assert!(loud.status.success(), "{}", stderr(&loud));
    assert!(
        stderr(&loud).contains("launchwatch: query: 1 rows in "),
        "{}",
        stderr(&loud)
    );
    // What a command the user ran has done is said without --verbose.
    let out_file = dir.path().join("rec.jsonl");
    let rec = launchwatch(
        &[
            "record",
            "--duration",
            "0.3",
            "--out",
            out_file.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(rec.status.success(), "{}", stderr(&rec));
    assert!(
        stderr(&rec).contains("launchwatch: recorded "),
        "{}",
        stderr(&rec)
    );
}

#[test]
fn warnings_print_without_verbose() {
    let dir = tempfile::tempdir().unwrap();
    let obs = dir.path().join("obs.jsonl");
    std::fs::write(&obs, "{\"kind\":\"future-kind\"}\n").unwrap();
    let out = launchwatch(
        &[
            "query",
            "--json",
            "--replay",
            obs.to_str().unwrap(),
            "SELECT 1 AS x",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("launchwatch: warning: ") && stderr(&out).contains("future-kind"),
        "{}",
        stderr(&out)
    );
}

fn rust_files(dir: &Path, into: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

#[test]
fn no_direct_stderr_writes_outside_the_logger() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for crate_dir in [
        "extension/src",
        "tables/src",
        "tables/benches",
        "tables/examples",
    ] {
        rust_files(&repo.join(crate_dir), &mut files);
    }
    assert!(
        files.len() > 20,
        "source files not found under {}",
        repo.display()
    );
    // Spelled in pieces so this file does not match itself.
    let needles = [
        concat!("eprint", "ln!"),
        concat!("eprint", "!("),
        concat!("io::std", "err()"),
    ];
    let mut offenders = Vec::new();
    for f in files {
        if f.ends_with("extension/src/logger.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in text.lines().enumerate() {
            if needles.iter().any(|needle| line.contains(needle)) {
                offenders.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "write through the log facade instead:\n{}",
        offenders.join("\n")
    );
}
