//! The pack's own SQL on replays built here, for the cases a user found wrong (issue 12):
//! a fallback an hour after the silence, a CPU-heavy job that only syncs time with an NTP pool,
//! an unsigned program's first heavy upload, and a replay longer than the raw retention.

use std::fmt::Write as _;
use std::path::Path;

use launchwatch_e2e::{json_rows, launchwatch, stderr};
use serde_json::{Map, Value};

const HOUR: f64 = 3600.0;
/// An hour boundary, so "the current hour" is easy to reason about.
const T0: f64 = 1_764_000_000.0 - (1_764_000_000.0 % 3600.0);

#[allow(clippy::too_many_arguments)] // one flow line, every field named at the call
fn flow(
    out: &mut String,
    path: &str,
    label: Option<&str>,
    start: f64,
    seconds: f64,
    (ip, port, name): (&str, u16, &str),
    protocol: &str,
    sent: i64,
) {
    let label = label.map_or(String::new(), |l| format!(r#""launchd_label":"{l}","#));
    writeln!(
        out,
        r#"{{"kind":"flow","start":{start},"end":{},"path":"{path}",{label}"protocol":"{protocol}","remote_address":"{ip}","remote_port":{port},"remote_name":"{name}","bytes_sent":{sent},"bytes_received":600}}"#,
        start + seconds
    )
    .unwrap();
}

fn signing(out: &mut String, path: &str, class: &str) {
    writeln!(
        out,
        r#"{{"kind":"signing","path":"{path}","signer_class":"{class}"}}"#
    )
    .unwrap();
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let file = dir.join(name);
    std::fs::write(&file, text).unwrap();
    file.to_string_lossy().into_owned()
}

/// `hunt --json` on a replay: the detections with their findings.
fn hunt(dir: &Path, replay: &str, now: f64) -> Vec<Value> {
    let now = now.to_string();
    let out = launchwatch(&["hunt", "--json", "--replay", replay, "--now", &now], dir);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("hunt --json is JSON");
    v.as_array().unwrap().clone()
}

fn findings<'a>(detections: &'a [Value], mitre: &str) -> Vec<&'a Value> {
    detections
        .iter()
        .find(|d| d["mitre"] == mitre)
        .unwrap_or_else(|| panic!("{mitre} ran"))["findings"]
        .as_array()
        .unwrap()
        .iter()
        .collect()
}

fn reported(detections: &[Value], mitre: &str, path: &str) -> bool {
    findings(detections, mitre)
        .iter()
        .any(|f| f["finding"]["path"] == path)
}

fn query(dir: &Path, replay: &str, now: f64, sql: &str) -> Vec<Map<String, Value>> {
    let now = now.to_string();
    json_rows(&launchwatch(
        &["query", "--json", "--replay", replay, "--now", &now, sql],
        dir,
    ))
}

fn num(row: &Map<String, Value>, col: &str) -> Option<f64> {
    row[col].as_str().and_then(|s| s.parse().ok())
}

const IMPLANT: &str = "/Library/Application Support/.dsync/dsyncd";

/// An ad-hoc daemon beacons every 5 minutes for 8 hours, falls silent, and `delay` seconds
/// after its last check-in starts beaconing to a new destination on another port. Mail keeps
/// the host online throughout.
fn fallback_replay(dir: &Path, delay: f64) -> (String, f64) {
    let mut s = String::new();
    signing(&mut s, IMPLANT, "adhoc");
    let label = Some("com.dsync.daemon");
    let mut last = T0;
    for i in 0..96 {
        last = T0 + i as f64 * 300.0 + (i % 4) as f64;
        flow(
            &mut s,
            IMPLANT,
            label,
            last,
            1.0,
            ("203.0.113.77", 443, "relay.dsync-primary.test"),
            "tcp",
            420,
        );
    }
    for i in 0..12 {
        let t = last + delay + i as f64 * 300.0 + (i % 3) as f64;
        flow(
            &mut s,
            IMPLANT,
            label,
            t,
            1.0,
            ("192.0.2.78", 8443, "cdn.other-relay.example"),
            "tcp",
            420,
        );
    }
    let now = last + delay + 12.0 * 300.0;
    let mut t = T0;
    while t < now {
        flow(
            &mut s,
            "/Applications/Mail.app/Contents/MacOS/Mail",
            None,
            t,
            2.0,
            ("198.51.100.5", 993, "imap.mail.example"),
            "tcp",
            800,
        );
        t += 60.0;
    }
    (write(dir, &format!("fallback-{delay}.jsonl"), &s), now)
}

#[test]
fn a_fallback_an_hour_after_the_silence_is_found_and_later_ones_score_lower() {
    let dir = tempfile::tempdir().unwrap();
    // Silence onset is ~15 min after the last check-in (3 × the 95th-percentile gap); the
    // fallback comes 90 minutes after the last check-in, over an hour after the onset.
    let (replay, now) = fallback_replay(dir.path(), 90.0 * 60.0);
    let d = hunt(dir.path(), &replay, now);
    assert!(
        reported(&d, "AN1378", IMPLANT),
        "an hour-late fallback: {:#?}",
        findings(&d, "AN1378")
    );
    // Proximity lowers the score gradually: 17 minutes > 90 minutes > 5 hours, none cut off.
    let score = |delay_minutes: f64| {
        let (replay, now) = fallback_replay(dir.path(), delay_minutes * 60.0);
        let rows = query(
            dir.path(),
            &replay,
            now,
            "SELECT score FROM launchwatch_fallbacks",
        );
        assert_eq!(rows.len(), 1, "{delay_minutes} min: {rows:?}");
        num(&rows[0], "score").unwrap()
    };
    let (soon, late, later) = (score(17.0), score(90.0), score(300.0));
    assert!(soon > late && late > later, "{soon} {late} {later}");
    assert!(
        late >= 0.6 && later >= 0.6,
        "no cutoff: {soon} {late} {later}"
    );
}

const JOB: &str = "/Library/Application Support/Render/renderd";

/// A background job at ~95 % of a core for 30 minutes, with one connection `dest`.
fn busy_job_replay(
    dir: &Path,
    name: &str,
    dest: (&str, u16, &str),
    protocol: &str,
) -> (String, f64) {
    let now = T0 + 2.0 * HOUR;
    let (pid, started) = (4321, now - HOUR);
    let mut s = String::new();
    signing(&mut s, JOB, "unsigned");
    let mut t = now - 1800.0;
    let mut cpu = 100.0;
    while t <= now {
        writeln!(
            s,
            r#"{{"kind":"process","ts":{t},"pid":{pid},"start_time":{started},"ppid":1,"uid":0,"path":"{JOB}","name":"renderd","cpu_time":{cpu},"launchd_label":"com.render.daemon"}}"#
        )
        .unwrap();
        cpu += 9.5;
        t += 10.0;
    }
    writeln!(
        s,
        r#"{{"kind":"flow","start":{},"pid":{pid},"process_start":{started},"path":"{JOB}","launchd_label":"com.render.daemon","protocol":"{protocol}","remote_address":"{}","remote_port":{},"remote_name":"{}","bytes_sent":4800,"bytes_received":4800,"last_seen":{now}}}"#,
        now - 1500.0,
        dest.0,
        dest.1,
        dest.2
    )
    .unwrap();
    (write(dir, name, &s), now)
}

#[test]
fn a_busy_job_syncing_time_with_an_ntp_pool_is_not_mining() {
    let dir = tempfile::tempdir().unwrap();
    for (dest, protocol, mining) in [
        // NTP's pool: "pool" in the name, port 123. Time, not mining.
        (("203.0.113.123", 123, "2.pool.ntp.org"), "udp", false),
        // A pool-like name on an ordinary port: a name alone is not enough.
        (
            ("203.0.113.124", 443, "pool.render-farm.example"),
            "tcp",
            false,
        ),
        // A mining-pool port and a pool's name: mining, without seeing a payload.
        (
            ("203.0.113.125", 3333, "xmr-eu1.nanopool.example"),
            "tcp",
            true,
        ),
    ] {
        let (replay, now) =
            busy_job_replay(dir.path(), &format!("{}.jsonl", dest.2), dest, protocol);
        let d = hunt(dir.path(), &replay, now);
        assert_eq!(
            reported(&d, "AN0743", JOB),
            mining,
            "{dest:?}: {:#?}",
            findings(&d, "AN0743")
        );
    }
}

#[test]
fn an_unsigned_programs_first_heavy_upload_is_flagged_without_a_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let now = T0 + 30.0 * HOUR + 600.0;
    let mut s = String::new();
    let up = "/Users/alice/Library/Caches/.u/stage";
    let backup = "/Applications/Backup.app/Contents/MacOS/Backup";
    signing(&mut s, up, "unsigned");
    signing(&mut s, backup, "developer_id");
    // The first hour the store ever sees this program: 4 GB out in three hours to a
    // destination it never used, ending an hour before now (so "this hour" holds none of it).
    flow(
        &mut s,
        up,
        None,
        now - 4.0 * HOUR,
        3.0 * HOUR,
        ("203.0.113.150", 443, "put.files-drop.example"),
        "tcp",
        4_000_000_000,
    );
    // A backup client doing the same to its own, equally new, service: signed, not flagged.
    flow(
        &mut s,
        backup,
        None,
        now - 4.0 * HOUR,
        3.0 * HOUR,
        ("198.51.100.150", 443, "ingest.backup.example"),
        "tcp",
        4_000_000_000,
    );
    // The same unsigned program's small check-ins to a destination it has used for a day.
    for h in 0..30 {
        flow(
            &mut s,
            up,
            None,
            T0 + h as f64 * HOUR,
            2.0,
            ("198.51.100.9", 443, "api.known.example"),
            "tcp",
            2_000,
        );
    }
    let replay = write(dir.path(), "upload.jsonl", &s);
    let d = hunt(dir.path(), &replay, now);
    let an0082 = findings(&d, "AN0082");
    assert!(
        an0082
            .iter()
            .any(|f| f["finding"]["path"] == up && f["finding"]["remote"] == "files-drop.example"),
        "{an0082:#?}"
    );
    assert!(
        !an0082
            .iter()
            .any(|f| f["finding"]["path"] == backup || f["finding"]["remote"] == "known.example"),
        "{an0082:#?}"
    );
}

#[test]
fn a_replay_longer_than_the_raw_retention_builds_the_hourly_baseline() {
    let dir = tempfile::tempdir().unwrap();
    // Nine days of a program holding one connection a day open for 20 hours, 2 MB an hour,
    // each replayed as one line, as a recording exports it. A live store sampling every minute
    // counts it in every one of those hours; the replay must too.
    let sync = "/Applications/Sync.app/Contents/MacOS/Sync";
    let mut s = String::new();
    signing(&mut s, sync, "developer_id");
    for day in 0..9 {
        let start = T0 + day as f64 * 86_400.0;
        flow(
            &mut s,
            sync,
            None,
            start,
            20.0 * HOUR,
            ("198.51.100.60", 443, "sync.example.net"),
            "tcp",
            40_000_000,
        );
    }
    let now = T0 + 8.0 * 86_400.0 + 19.5 * HOUR;
    let replay = write(dir.path(), "nine-days.jsonl", &s);
    let rows = query(
        dir.path(),
        &replay,
        now,
        "SELECT bytes_sent_per_hour_z FROM launchwatch_egress WHERE remote = 'example.net'",
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    let z = num(&rows[0], "bytes_sent_per_hour_z").expect("a baseline from the replayed days");
    // The hour is like every other hour of the baseline.
    assert!(z.abs() < 1.0, "{z}");
}

/// A shell (pid 600) started an unsigned program (pid 700) that beacons, mines on a pool port,
/// opens with random bytes while importing CommonCrypto, and uploads 2 GB to a new place.
/// `extra` seconds of later samples are appended (the next run of the pack).
fn child_of_a_shell_replay(dir: &Path, extra: f64) -> (String, String, f64) {
    const AGENT: &str = "/Users/Shared/.agent/agent";
    let root = dir.join("root");
    let program = root.join(AGENT.trim_start_matches('/'));
    std::fs::create_dir_all(program.parent().unwrap()).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/macho/crypto_x86_64");
    std::fs::copy(fixture, &program).unwrap();
    let now = T0 + 30.0 * HOUR + 600.0 + extra;
    let started = T0 + 20.0 * HOUR;
    let mut s = String::new();
    signing(&mut s, AGENT, "unsigned");
    let label = r#""launchd_label":"com.agent.job","label_source":"parent""#;
    // The shell and its child, sampled every 10 s over the last 30 minutes (plus `extra`).
    let mut t = now - 1800.0;
    let mut cpu = 100.0;
    while t <= now {
        writeln!(
            s,
            r#"{{"kind":"process","ts":{t},"pid":600,"start_time":{},"ppid":1,"uid":501,"path":"/bin/zsh","name":"zsh","cpu_time":{},{label}}}"#,
            T0,
            1.0 + (t - T0) / 1e4
        )
        .unwrap();
        writeln!(
            s,
            r#"{{"kind":"process","ts":{t},"pid":700,"start_time":{started},"ppid":600,"uid":501,"path":"{AGENT}","name":"agent","cpu_time":{cpu},{label}}}"#
        )
        .unwrap();
        cpu += 9.5;
        t += 10.0;
    }
    let flow = |s: &mut String,
                start: f64,
                end: f64,
                (ip, port, name): (&str, u16, &str),
                sent: i64| {
        writeln!(
            s,
            r#"{{"kind":"flow","start":{start},"end":{end},"pid":700,"process_start":{started},"path":"{AGENT}",{label},"protocol":"tcp","remote_address":"{ip}","remote_port":{port},"remote_name":"{name}","bytes_sent":{sent},"bytes_received":600,"last_seen":{end}}}"#
        )
        .unwrap();
    };
    let c2 = ("203.0.113.66", 8000, "c2.agent-relay.test");
    let mut b = started;
    while b < T0 + 30.0 * HOUR {
        flow(&mut s, b, b + 1.0, c2, 400);
        b += 120.0;
    }
    // 66 random-looking bytes, base64.
    let random =
        "iv8mYRMxS6yk0uC1dY7gqYfZ0gM2Vv5dQb9wN3hJeK4pLr6tXoA8sF1zU7mCqEjGHiB2nWlTyRcPdK0aZ5xV9fOg";
    writeln!(
        s,
        r#"{{"kind":"payload","ts":{started},"pid":700,"path":"{AGENT}","protocol":"tcp","remote_address":"{}","remote_port":{},"direction":"out","first_bytes":"{random}"}}"#,
        c2.0,
        c2.1,
    )
    .unwrap();
    flow(
        &mut s,
        now - 1500.0,
        now,
        ("203.0.113.99", 3333, "xmr.pool.test"),
        48_000,
    );
    flow(
        &mut s,
        T0 + 27.0 * HOUR,
        T0 + 29.0 * HOUR,
        ("203.0.113.150", 443, "put.drop.test"),
        2_000_000_000,
    );
    (
        write(dir, &format!("shell-{extra}.jsonl"), &s),
        root.to_string_lossy().into_owned(),
        now,
    )
}

#[test]
fn detections_name_the_parent_that_started_the_program_and_keep_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: f64| {
        let (replay, root, now) = child_of_a_shell_replay(dir.path(), extra);
        let now = now.to_string();
        let out = launchwatch(
            &[
                "hunt", "--json", "--replay", &replay, "--root", &root, "--now", &now,
            ],
            dir.path(),
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v.as_array().unwrap().clone()
    };
    let first = run(0.0);
    for mitre in ["AN1120", "AN0743", "AN0402", "AN0082"] {
        let f = findings(&first, mitre);
        let mine: Vec<_> = f
            .iter()
            .filter(|f| f["finding"]["path"] == "/Users/Shared/.agent/agent")
            .collect();
        assert!(!mine.is_empty(), "{mitre}: {f:#?}");
        for f in mine {
            assert_eq!(f["finding"]["parent_path"], "/bin/zsh", "{mitre}: {f:#}");
            assert_eq!(f["finding"]["parent_name"], "zsh", "{mitre}: {f:#}");
        }
    }
    // Five minutes and thirty samples later the findings are the same rows: differential
    // logging reports nothing new.
    let later = run(300.0);
    for mitre in ["AN1120", "AN0743", "AN0402"] {
        let rows = |d: &[Value]| {
            findings(d, mitre)
                .iter()
                .map(|f| f["finding"].to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(rows(&first), rows(&later), "{mitre}");
    }
}
