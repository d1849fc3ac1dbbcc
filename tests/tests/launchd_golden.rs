//! `launchwatch_launchd` against a fixture tree: every row compared with hand-written golden
//! values (tests/fixtures/launchd/expected.json, launchd.plist(5) semantics, committed before the
//! code that computes them). Binary plists were written by Python's plistlib
//! (tests/fixtures/launchd/make_tree.py). The test sets modes, mtimes and ownership itself and
//! makes the inputs git cannot hold well: a 2 MiB plist, a symlink out of the root and a
//! directory named like a plist.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use launchwatch_e2e::{bin, json_rows, stderr};
use serde_json::Value;

const NOW: &str = "1709163000"; // 2024-02-28T23:30:00Z, a Wednesday
const MTIME: i64 = 1_704_067_200; // 2024-01-01T00:00:00Z

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/launchd")
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

fn walk(dir: &Path, f: &mut dyn FnMut(&Path, bool)) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let is_dir = entry.file_type().unwrap().is_dir();
        if is_dir {
            walk(&entry.path(), f);
        }
        f(&entry.path(), is_dir);
    }
}

fn set_mtime(path: &Path, epoch: i64) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    let t = libc::timespec {
        tv_sec: epoch as libc::time_t,
        tv_nsec: 0,
    };
    let times = [t, t];
    // SAFETY: valid path and two timespecs; AT_SYMLINK_NOFOLLOW so links are not followed.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(rc, 0, "utimensat {}", path.display());
}

fn chown(path: &Path, uid: u32, gid: u32) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: valid NUL-terminated path.
    assert_eq!(
        unsafe { libc::lchown(c.as_ptr(), uid, gid) },
        0,
        "chown {}",
        path.display()
    );
}

fn is_root() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Builds the tree under `root` with the modes, times and owners the golden rows assume.
fn build_tree(root: &Path) {
    copy_tree(&fixtures().join("tree"), root);
    let daemons = root.join("Library/LaunchDaemons");
    let mut huge = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\"><dict><key>Label</key><string>");
    huge.push_str(&"SECRETSECRET".repeat(2 * 1024 * 1024 / 12));
    huge.push_str("</string></dict></plist>\n");
    std::fs::write(daemons.join("com.example.huge.plist"), huge).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", daemons.join("com.example.escape.plist")).unwrap();
    std::fs::create_dir(daemons.join("com.example.directory.plist")).unwrap();
    walk(root, &mut |p, is_dir| {
        if p.is_symlink() {
            return;
        }
        std::fs::set_permissions(
            p,
            std::fs::Permissions::from_mode(if is_dir { 0o755 } else { 0o644 }),
        )
        .unwrap();
        if is_root() {
            chown(p, 0, 0);
        }
        if !is_dir {
            set_mtime(p, MTIME);
        }
    });
    std::fs::set_permissions(
        daemons.join("com.example.hourly.plist"),
        std::fs::Permissions::from_mode(0o646),
    )
    .unwrap();
    std::fs::set_permissions(root.join("bin/sh"), std::fs::Permissions::from_mode(0o777)).unwrap();
    if is_root() {
        for (user, uid) in [("alice", 501), ("bob", 502)] {
            let home = root.join("Users").join(user);
            chown(&home, uid, 20);
            walk(&home, &mut |p, _| chown(p, uid, 20));
        }
    }
}

fn sha256sum(path: &Path) -> Option<String> {
    let out = Command::new("sha256sum").arg(path).output().ok()?;
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string()
    })
}

fn query(root: &Path, sql: &str) -> std::process::Output {
    let state = root.parent().unwrap().join("state");
    Command::new(bin())
        .args(["query", "--json", "--root"])
        .arg(root)
        .args(["--now", NOW, "--state-dir"])
        .arg(&state)
        .arg(sql)
        .env("TZ", "UTC")
        .output()
        .unwrap()
}

/// Structured columns are compared as JSON so key order does not matter.
const JSON_COLUMNS: &[&str] = &[
    "program_arguments",
    "calendar",
    "keep_alive",
    "watch_paths",
    "queue_directories",
    "launch_events",
];

fn same(column: &str, expected: &str, actual: &str) -> bool {
    if column == "parse_error" && !expected.is_empty() {
        return actual.contains(expected);
    }
    if JSON_COLUMNS.contains(&column) && expected.starts_with(['[', '{']) {
        let (e, a): (Result<Value, _>, Result<Value, _>) =
            (serde_json::from_str(expected), serde_json::from_str(actual));
        return matches!((e, a), (Ok(e), Ok(a)) if e == a);
    }
    expected == actual
}

#[test]
fn every_row_matches_the_golden_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    build_tree(&root);
    let golden: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("expected.json")).unwrap())
            .unwrap();
    assert_eq!(golden["now"], NOW);
    let out = query(&root, "SELECT * FROM launchwatch_launchd");
    let rows = json_rows(&out);
    let mut failures = Vec::new();
    let expected_rows = golden["rows"].as_array().unwrap();
    assert!(expected_rows.len() >= 25);
    // Ownership-dependent values need the test to run as root (CI does, and fails without).
    let as_root = launchwatch_e2e::root_or_fail_in_ci("user_writable and per-user disabled");
    let owner_dependent = |path: &str, col: &str| {
        !as_root && (col == "user_writable" || (col == "disabled" && path.starts_with("/Users/")))
    };
    for exp in expected_rows {
        let path = exp["path"].as_str().unwrap();
        let Some(actual) = rows.iter().find(|r| r["path"] == path) else {
            failures.push(format!("{path}: no row"));
            continue;
        };
        for (col, want) in exp.as_object().unwrap() {
            if col.starts_with('_') || owner_dependent(path, col) {
                continue;
            }
            let want = want.as_str().unwrap();
            let got = actual
                .get(col)
                .and_then(Value::as_str)
                .unwrap_or("<missing column>");
            if !same(col, want, got) {
                failures.push(format!("{path}: {col}: expected {want:?}, got {got:?}"));
            }
        }
        let error = actual["parse_error"].as_str().unwrap_or("");
        assert!(
            !error.contains("SECRET"),
            "a parse_error never carries file content: {error}"
        );
        if actual["plist_mtime"] != "" {
            let on_disk = root.join(path.trim_start_matches('/'));
            if let Some(sum) = sha256sum(&on_disk) {
                if actual["plist_sha256"] != sum.as_str() {
                    failures.push(format!(
                        "{path}: plist_sha256 {} != sha256sum {sum}",
                        actual["plist_sha256"]
                    ));
                }
            }
        }
    }
    for r in &rows {
        if !expected_rows.iter().any(|e| e["path"] == r["path"]) {
            failures.push(format!("unexpected row {}", r["path"]));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn path_and_label_constraints_select_one_plist() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    build_tree(&root);
    let rows = json_rows(&query(
        &root,
        "SELECT label, period_seconds FROM launchwatch_launchd WHERE path = '/Library/LaunchDaemons/com.example.monthly.plist'",
    ));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["label"], "com.example.monthly");
    let rows = json_rows(&query(
        &root,
        "SELECT path FROM launchwatch_launchd WHERE label IN ('com.bob.cal', 'com.example.hidden')",
    ));
    let mut paths: Vec<&str> = rows.iter().map(|r| r["path"].as_str().unwrap()).collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        [
            "/Library/LaunchDaemons/.hidden.plist",
            "/Users/bob/Library/LaunchAgents/com.bob.cal.plist"
        ]
    );
    // A path outside the launchd directories is not a job, even if it is a plist.
    let rows = json_rows(&query(&root, "SELECT path FROM launchwatch_launchd WHERE path = '/var/db/com.apple.xpc.launchd/disabled.plist'"));
    assert!(rows.is_empty());
}

#[test]
fn a_missing_root_is_a_clear_error_not_an_empty_table() {
    let dir = tempfile::tempdir().unwrap();
    let out = query(
        &dir.path().join("nope"),
        "SELECT * FROM launchwatch_launchd",
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--root"), "{}", stderr(&out));
}
