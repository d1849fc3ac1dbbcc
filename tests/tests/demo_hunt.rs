//! The demo host end to end: `simulate --host` writes a Mac's day (plists, executables,
//! observations), `hunt` runs the bundled pack on it, and each of the five analytics reports
//! its positive and none of the benign lookalikes.

use launchwatch_e2e::{launchwatch, stderr, stdout};
use serde_json::Value;

/// (analytic, the program that must be reported for it).
const POSITIVES: &[(&str, &str)] = &[
    (
        "AN1120",
        "/Users/alice/Library/Application Support/.syncd/syncd",
    ),
    ("AN1378", "/Library/Application Support/.dsync/dsyncd"),
    ("AN0743", "/Users/Shared/.cache/kcached"),
    (
        "AN0402",
        "/Users/alice/Library/Application Support/.vault/vaultd",
    ),
    ("AN0082", "/Users/alice/Library/Caches/.u/archiver"),
];

/// Benign programs that look like a positive to a naive rule; none may be reported at all.
const LOOKALIKES: &[&str] = &[
    "/usr/libexec/softwareupdate_check",
    "/usr/libexec/timed",
    "/Library/Application Support/Acme/AcmeUpdater",
    "/Applications/Chatter.app/Contents/MacOS/Chatter",
    "/Applications/Meet.app/Contents/MacOS/Meet",
    "/System/Library/PrivateFrameworks/PhotoAnalysis.framework/Versions/A/Support/photoanalysisd",
    "/System/Library/CoreServices/backupd.bundle/Contents/Resources/backupd",
    "/Applications/Streamer.app/Contents/MacOS/Streamer",
];

fn hunt_demo(json: bool) -> (std::process::Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().join("demo");
    let host_s = host.to_str().unwrap();
    let sim = launchwatch(&["simulate", "--host", host_s], dir.path());
    assert!(sim.status.success(), "{}", stderr(&sim));
    // One line on success that says what was written and what to run next.
    let said = stderr(&sim);
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(said.contains("launchwatch hunt --replay"), "{said}");
    for plist in [
        "root/Users/alice/Library/LaunchAgents/com.syncd.agent.plist",
        "root/Library/LaunchDaemons/com.kcache.daemon.plist",
        "root/System/Library/LaunchDaemons/com.apple.softwareupdate.check.plist",
    ] {
        assert!(host.join(plist).is_file(), "{plist}");
    }
    let obs = host.join("observations.jsonl");
    let root = host.join("root");
    let mut args = vec![
        "hunt",
        "--replay",
        obs.to_str().unwrap(),
        "--root",
        root.to_str().unwrap(),
    ];
    if json {
        args.push("--json");
    }
    let out = launchwatch(&args, dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    (out, dir)
}

#[test]
fn every_analytic_reports_its_positive_and_no_lookalike() {
    let (out, _dir) = hunt_demo(true);
    let detections: Value = serde_json::from_slice(&out.stdout).expect("hunt --json is JSON");
    let detections = detections.as_array().unwrap();
    assert_eq!(
        detections.len(),
        5,
        "the five detections, not the status query"
    );
    for (mitre, positive) in POSITIVES {
        let d = detections
            .iter()
            .find(|d| d["mitre"] == *mitre)
            .unwrap_or_else(|| panic!("{mitre} ran"));
        assert!(d["query"].as_str().unwrap().starts_with("launchwatch_an"));
        let findings = d["findings"].as_array().unwrap();
        let hit = findings
            .iter()
            .find(|f| f["finding"]["path"] == *positive)
            .unwrap_or_else(|| panic!("{mitre} reports {positive}: {findings:#?}"));
        // Joined with the analytic table's reasons and the program's signer.
        let reasons = hit["reasons"].as_object().unwrap();
        let score_column = match *mitre {
            "AN1120" => "beacon_score",
            "AN1378" => "score",
            "AN0743" => "high_cpu_seconds",
            "AN0402" => "entropy",
            _ => "egress_score",
        };
        assert!(reasons.contains_key(score_column), "{mitre}: {reasons:?}");
        assert!(
            matches!(reasons["signer"].as_str(), Some("unsigned" | "adhoc")),
            "{mitre}: {reasons:?}"
        );
        for f in findings {
            let text = f.to_string();
            for benign in LOOKALIKES {
                assert!(
                    !text.contains(benign),
                    "{mitre} reported the lookalike {benign}: {f}"
                );
            }
        }
    }
    let an1120 = detections.iter().find(|d| d["mitre"] == "AN1120").unwrap();
    let beacon = an1120["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["finding"]["path"] == POSITIVES[0].1)
        .unwrap();
    assert_eq!(
        beacon["finding"]["plist"],
        "/Users/alice/Library/LaunchAgents/com.syncd.agent.plist"
    );
    let period: f64 = beacon["reasons"]["period_seconds"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((60.0..=300.0).contains(&period), "{period}");
    let an0743 = detections.iter().find(|d| d["mitre"] == "AN0743").unwrap();
    assert_eq!(
        an0743["findings"][0]["reasons"]["payload_classes"], "stratum",
        "{an0743}"
    );
}

#[test]
fn hunt_text_groups_findings_by_analytic() {
    let (out, _dir) = hunt_demo(false);
    let text = stdout(&out);
    for (mitre, positive) in POSITIVES {
        let start = text
            .find(&format!("{mitre} launchwatch_"))
            .unwrap_or_else(|| panic!("{mitre} heading: {text}"));
        let section = &text[start..];
        let section = &section[..section.find("\n\n").unwrap_or(section.len())];
        assert!(section.contains(positive), "{mitre}: {section}");
        assert!(section.contains("reasons: "), "{section}");
    }
    assert!(
        text.trim_end().ends_with("detections of the bundled pack"),
        "{text}"
    );
}

#[test]
fn hunt_runs_live_on_this_host() {
    let dir = tempfile::tempdir().unwrap();
    let out = launchwatch(&["hunt", "--json"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 5);
}
