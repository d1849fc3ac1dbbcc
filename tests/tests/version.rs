//! `--version` names the release, the git commit and the build target, at the top level and
//! after a subcommand, so an operator can match any deployed binary to its build.

use std::process::Command;

use launchwatch_e2e::{run, stderr, stdout};

fn version_line(args: &[&str]) -> String {
    let out = run(args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

fn head_commit() -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn version_names_release_commit_and_target() {
    let line = version_line(&["--version"]);
    let rest = line
        .strip_prefix(&format!(
            "launchwatch {} (commit ",
            env!("CARGO_PKG_VERSION")
        ))
        .unwrap_or_else(|| panic!("unexpected --version: {line:?}"));
    let (commit, target) = rest
        .trim_end()
        .strip_suffix(')')
        .and_then(|r| r.split_once(", "))
        .unwrap_or_else(|| panic!("unexpected --version: {line:?}"));
    // The test suite runs from a checkout: the binary carries the commit it was built from.
    if let Some(head) = head_commit() {
        assert_eq!(commit, head, "{line:?}");
    }
    assert!(
        commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit()),
        "{line:?}"
    );
    assert!(
        target.starts_with(std::env::consts::ARCH) && target.contains(std::env::consts::OS),
        "target {target:?} is not this {} {} host",
        std::env::consts::ARCH,
        std::env::consts::OS
    );
    assert_eq!(version_line(&["-V"]), line);
}

#[test]
fn version_works_after_a_subcommand() {
    let top = version_line(&["--version"]);
    for sub in ["query", "record", "simulate"] {
        assert_eq!(version_line(&[sub, "--version"]), top, "{sub} --version");
    }
}
