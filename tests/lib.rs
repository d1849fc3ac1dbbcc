//! Helpers for end-to-end tests that run the real `launchwatch` binary.

use std::path::PathBuf;
use std::process::{Command, Output};

/// The binary under test: `$LAUNCHWATCH_BIN`, else the workspace's debug build (`tests/run`
/// builds it before running the tests).
pub fn bin() -> PathBuf {
    if let Some(p) = std::env::var_os("LAUNCHWATCH_BIN") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/launchwatch");
    assert!(
        p.exists(),
        "{} not built: run `cargo build -p launchwatch` (tests/run does) or set LAUNCHWATCH_BIN",
        p.display()
    );
    p
}

/// Runs `launchwatch ARGS` with a private state directory and no system config.
pub fn launchwatch(args: &[&str], state: &std::path::Path) -> Output {
    Command::new(bin())
        .args(args)
        .env("XDG_STATE_HOME", state)
        .env("HOME", state)
        .env("TZ", "UTC")
        .output()
        .expect("launchwatch runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Parses `--json` output into rows of column → string.
pub fn json_rows(o: &Output) -> Vec<serde_json::Map<String, serde_json::Value>> {
    assert!(o.status.success(), "launchwatch failed: {}", stderr(o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("--json prints JSON");
    v.as_array()
        .expect("an array")
        .iter()
        .map(|r| r.as_object().expect("objects").clone())
        .collect()
}

/// For tests that need root (to chown files to another user, or because the behaviour under
/// test only applies to root). CI runs as root, so with `CI=true` a missing root fails the test
/// instead of skipping it.
pub fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "this test needs root, and CI=true: refusing to skip"
    );
    eprintln!("skipped: needs root");
    false
}
