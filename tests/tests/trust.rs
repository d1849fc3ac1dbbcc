//! Trust boundaries of a root process, through the real binary: a config or state directory
//! that another user could write is not used, and `launchwatch_status` says so and why.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use launchwatch_e2e::{bin, json_rows, running_as_root, stderr};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// nobody, on Linux and macOS alike.
const OTHER_UID: u32 = 65534;

/// What the seeded simulation's top beacon is allowlisted by (the example).
const ALLOWLIST: &str =
    "[allowlist]\npaths = [\"/Users/Shared/*\"]\nremotes = [\"example.invalid\"]\n";

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .arg("query")
        .args(args)
        .env("TZ", "UTC")
        .output()
        .unwrap()
}

/// The status row and the top beacon's `allowlisted`, with `config`, over a seeded host-day.
fn status_and_allowlisted(dir: &Path, config: &Path) -> (Map<String, Value>, String) {
    let sim = dir.join("sim.jsonl");
    if !sim.exists() {
        let ok = Command::new(bin())
            .args(["simulate", "--seed", "8", "--out"])
            .arg(&sim)
            .status()
            .unwrap();
        assert!(ok.success());
    }
    let args = |sql: &'static str| {
        run(&[
            "--json",
            "--replay",
            sim.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            sql,
        ])
    };
    let out = args(
        "SELECT config_path, config_sha256, config_rejected, allowlist_entries, last_error FROM launchwatch_status",
    );
    let status = json_rows(&out).remove(0);
    let out =
        args("SELECT allowlisted FROM launchwatch_beacons ORDER BY beacon_score DESC LIMIT 1");
    let allowlisted = json_rows(&out)[0]["allowlisted"]
        .as_str()
        .unwrap()
        .to_string();
    (status, allowlisted)
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn a_safe_config_is_used_and_reported() {
    if !running_as_root() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let config = t.path().join("launchwatch.toml");
    std::fs::write(&config, ALLOWLIST).unwrap();
    chmod(&config, 0o644);
    let (status, allowlisted) = status_and_allowlisted(t.path(), &config);
    assert_eq!(status["config_path"], config.to_str().unwrap());
    assert_eq!(
        status["config_sha256"],
        sha256(ALLOWLIST.as_bytes()).as_str()
    );
    assert_eq!(status["config_rejected"], "0");
    assert_eq!(status["allowlist_entries"], "2");
    assert_eq!(status["last_error"], "", "{status:?}");
    assert_eq!(allowlisted, "1");
}

#[test]
fn a_config_another_user_could_write_is_ignored_with_the_reason() {
    if !running_as_root() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let open_dir = t.path().join("open");
    std::fs::create_dir(&open_dir).unwrap();
    chmod(&open_dir, 0o777);
    let under_open = open_dir.join("launchwatch.toml");
    std::fs::write(&under_open, ALLOWLIST).unwrap();
    chmod(&under_open, 0o644);
    let config = t.path().join("launchwatch.toml");
    std::fs::write(&config, ALLOWLIST).unwrap();

    // (what, file, its mode, its owner, the reason reported)
    let cases = [
        (
            "world-writable",
            &config,
            0o666,
            0,
            "writable by others (mode 0666)",
        ),
        (
            "group-writable",
            &config,
            0o620,
            0,
            "writable by its group (mode 0620)",
        ),
        (
            "another user's",
            &config,
            0o644,
            OTHER_UID,
            "owned by uid 65534, not root",
        ),
        (
            "under a writable directory",
            &under_open,
            0o644,
            0,
            "/open is writable by others (mode 0777)",
        ),
    ];
    for (what, path, mode, owner, reason) in cases {
        chmod(path, mode);
        std::os::unix::fs::lchown(path, Some(owner), None).unwrap();
        let (status, allowlisted) = status_and_allowlisted(t.path(), path);
        assert_eq!(status["config_rejected"], "1", "{what}: {status:?}");
        assert_eq!(status["config_path"], path.to_str().unwrap(), "{what}");
        assert_eq!(
            status["config_sha256"], "",
            "{what}: nothing of it is in effect"
        );
        assert_eq!(status["allowlist_entries"], "0", "{what}");
        let last_error = status["last_error"].as_str().unwrap();
        assert!(
            last_error.contains("config ignored") && last_error.contains(reason),
            "{what}: {last_error}"
        );
        assert_eq!(
            allowlisted, "0",
            "{what}: the allowlist must not silence anything"
        );
    }
}

#[test]
fn dev_null_is_no_config() {
    // What tests/run passes through LAUNCHWATCH_CONFIG; a character device anyone may write.
    let t = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args(["query", "--json", "--no-sample", "--state-dir"])
        .arg(t.path().join("s"))
        .arg("SELECT config_path, config_rejected, allowlist_entries, last_error FROM launchwatch_status")
        .env("LAUNCHWATCH_CONFIG", "/dev/null")
        .output()
        .unwrap();
    let row = json_rows(&out).remove(0);
    assert_eq!(
        (
            &row["config_path"],
            &row["config_rejected"],
            &row["allowlist_entries"],
            &row["last_error"]
        ),
        (
            &Value::from("/dev/null"),
            &Value::from("0"),
            &Value::from("0"),
            &Value::from("")
        )
    );
}

/// A store written by `record`, then opened by root: trusted as made, refused once tampered.
#[test]
fn a_tampered_state_directory_is_refused() {
    if !running_as_root() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("state");
    let record = |out: &str| {
        Command::new(bin())
            .args([
                "record",
                "--duration",
                "0.3",
                "--config",
                "/dev/null",
                "--state-dir",
            ])
            .arg(&state)
            .arg("--out")
            .arg(t.path().join(out))
            .output()
            .unwrap()
    };
    let out = record("1.jsonl");
    assert!(out.status.success(), "{}", stderr(&out));
    let mode = std::fs::metadata(&state).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "created 0700");
    let status = |sql: &str| {
        let out = run(&[
            "--json",
            "--no-sample",
            "--config",
            "/dev/null",
            "--state-dir",
            state.to_str().unwrap(),
            sql,
        ]);
        json_rows(&out).remove(0)
    };
    let before = status("SELECT observations_stored, last_error FROM launchwatch_status");
    assert_ne!(before["observations_stored"], "0", "{before:?}");
    assert_eq!(before["last_error"], "");

    // Another user could now rewrite history.
    chmod(&state, 0o777);
    let after = status("SELECT observations_stored, last_error FROM launchwatch_status");
    assert_eq!(
        after["observations_stored"], "0",
        "tampered history is not read"
    );
    let e = after["last_error"].as_str().unwrap();
    assert!(
        e.contains("not read") && e.contains("writable by others"),
        "{e}"
    );
    assert!(
        state.join("launchwatch.db").exists(),
        "query only reads: nothing moved"
    );

    // A writer moves it aside and starts afresh beside it.
    let out = record("2.jsonl");
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("state directory") && err.contains("refused") && err.contains("moved to"),
        "{err}"
    );
    let aside: Vec<_> = std::fs::read_dir(t.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("state.rejected-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(
        t.path().join(&aside[0]).join("launchwatch.db").exists(),
        "kept for investigation"
    );
    let mode = std::fs::metadata(&state).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "the fresh one is 0700");
    let fresh = status("SELECT last_error FROM launchwatch_status");
    assert_eq!(fresh["last_error"], "");
}

/// The pack's config health query, run as written, logs exactly what identifies the config in
/// effect (its differential logging then emits a row whenever that changes).
#[test]
fn the_health_query_reports_the_config_in_effect() {
    if !running_as_root() {
        return;
    }
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packs/queries/status_config.sql");
    let sql: String = std::fs::read_to_string(source)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    let t = tempfile::tempdir().unwrap();
    let config = t.path().join("launchwatch.toml");
    let state = t.path().join("state");
    let run_with = |text: &str| {
        std::fs::write(&config, text).unwrap();
        let out = run(&[
            "--json",
            "--no-sample",
            "--config",
            config.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            &sql,
        ]);
        json_rows(&out).remove(0)
    };
    std::fs::write(&config, "").unwrap();
    chmod(&config, 0o644);
    let first = run_with(ALLOWLIST);
    let mut keys: Vec<_> = first.keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "allowlist_entries",
            "config_path",
            "config_rejected",
            "config_sha256",
            "version"
        ]
    );
    assert_eq!(first["allowlist_entries"], "2");
    // One more silenced path: a different row, so differential logging reports it.
    let second = run_with(&format!(
        "{ALLOWLIST}identities = [\"com.example.agent\"]\n"
    ));
    assert_eq!(second["allowlist_entries"], "3");
    assert_ne!(first["config_sha256"], second["config_sha256"]);
    assert_eq!(second["config_rejected"], "0");
}
