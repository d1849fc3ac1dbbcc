//! The analytic tables end to end through `--replay`: a generated host-day, a hand-built
//! fallback scenario (and its benign twin), egress against an identity's own history, novelty,
//! and the four tables answering on this live host.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use launchwatch_e2e::{json_rows, launchwatch, run};
use serde_json::{Map, Value};

fn query(args: &[&str], sql: &str) -> Vec<Map<String, Value>> {
    let mut all = vec!["query", "--json"];
    all.extend_from_slice(args);
    all.push(sql);
    json_rows(&run(&all))
}

fn f(row: &Map<String, Value>, col: &str) -> f64 {
    row[col]
        .as_str()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("{col} = {:?}", row[col]))
}

#[allow(clippy::too_many_arguments)] // one flow line, every field named at the call
fn flow(
    out: &mut String,
    path: &str,
    start: f64,
    dur: f64,
    name: &str,
    ip: &str,
    port: u16,
    sent: i64,
) {
    writeln!(
        out,
        r#"{{"kind":"flow","start":{start},"end":{},"path":"{path}","protocol":"tcp","remote_address":"{ip}","remote_port":{port},"remote_name":"{name}","bytes_sent":{sent},"bytes_received":400,"state":"CLOSED"}}"#,
        start + dur
    )
    .unwrap();
}

#[test]
fn a_generated_beacon_tops_the_table_and_apple_timers_are_suppressed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sim.jsonl");
    let st = launchwatch(
        &["simulate", "--seed", "8", "--out", file.to_str().unwrap()],
        dir.path(),
    );
    assert!(st.status.success());
    let rows = query(
        &["--replay", file.to_str().unwrap()],
        "SELECT * FROM launchwatch_beacons ORDER BY beacon_score DESC",
    );
    assert!(rows.len() >= 5, "{rows:?}");
    let top = &rows[0];
    assert!(
        top["identity"]
            .as_str()
            .unwrap()
            .starts_with("/Users/Shared/."),
        "the implant ranks first: {top:?}"
    );
    assert!(f(top, "beacon_score") > 0.9 && top["confidence"] == "normal");
    assert!(matches!(
        top["signer_class"].as_str().unwrap(),
        "adhoc" | "unsigned"
    ));
    let apple = rows
        .iter()
        .find(|r| {
            r["identity"]
                .as_str()
                .unwrap()
                .contains("launchd_exact.app")
        })
        .expect("apple timer row");
    assert!(
        f(apple, "raw_score") > 0.9,
        "behaviour alone cannot tell a timer from a beacon"
    );
    assert!(f(apple, "beacon_score") < 0.3, "context does: {apple:?}");
    for r in &rows {
        let s = f(r, "beacon_score");
        assert!((0.0..=1.0).contains(&s));
    }
}

/// An unsigned agent beacons to its primary for 4 hours, then goes quiet while the host keeps
/// talking; `second` is where it turns up next.
fn fallback_scenario(dir: &Path, second: (&str, &str)) -> String {
    let t0 = 1_700_000_000.0;
    let mut s = String::from("{\"kind\":\"signing\",\"path\":\"/Users/Shared/.x/agent\",\"signer_class\":\"unsigned\"}\n");
    for i in 0..48 {
        flow(
            &mut s,
            "/Users/Shared/.x/agent",
            t0 + i as f64 * 300.0 + (i % 3) as f64,
            1.0,
            "c2a.evil-one.net",
            "198.51.100.7",
            443,
            500,
        );
    }
    let silent_since = t0 + 47.0 * 300.0;
    // The rest of the host stays online.
    for i in 0..400 {
        flow(
            &mut s,
            "/Applications/Mail.app/Contents/MacOS/Mail",
            t0 + i as f64 * 60.0,
            2.0,
            "imap.mail.example",
            "203.0.113.5",
            993,
            800,
        );
    }
    // Silence threshold: max(3 × p95 gap (≈ 302 s), 300 s) ≈ 906 s. Fallback 200 s after that.
    for i in 0..4 {
        flow(
            &mut s,
            "/Users/Shared/.x/agent",
            silent_since + 1100.0 + i as f64 * 300.0,
            1.0,
            second.0,
            second.1,
            8443,
            500,
        );
    }
    let file = dir.join("fallback.jsonl");
    std::fs::write(&file, s).unwrap();
    file.to_string_lossy().into_owned()
}

#[test]
fn a_silent_beacon_then_a_new_destination_is_a_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let file = fallback_scenario(dir.path(), ("relay.evil-two.org", "192.0.2.200"));
    let rows = query(&["--replay", &file], "SELECT * FROM launchwatch_fallbacks");
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    assert_eq!(
        (
            r["primary_remote"].as_str().unwrap(),
            r["fallback_remote"].as_str().unwrap()
        ),
        ("evil-one.net", "evil-two.org")
    );
    assert_eq!(r["fallback_protocol"], "tcp/8443");
    assert!(
        f(r, "score") >= 0.8,
        "new destination, same period, soon after: {r:?}"
    );
    assert!((295.0..=305.0).contains(&f(r, "period_seconds")), "{r:?}");
}

#[test]
fn a_new_ip_under_the_same_domain_is_not_a_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let file = fallback_scenario(dir.path(), ("c2b.evil-one.net", "198.51.100.99"));
    let rows = query(&["--replay", &file], "SELECT * FROM launchwatch_fallbacks WHERE fallback_remote = 'evil-one.net' AND fallback_protocol = 'tcp/443'");
    assert!(rows.is_empty(), "{rows:?}");
}

#[test]
fn heavy_unsigned_upload_scores_against_its_own_history() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = 1_700_000_000.0 - (1_700_000_000.0 % 3600.0);
    let mut s = String::new();
    for (path, signer) in [
        ("/tmp/uploader", "unsigned"),
        ("/usr/libexec/apple-sync", "apple"),
    ] {
        writeln!(
            s,
            r#"{{"kind":"signing","path":"{path}","signer_class":"{signer}","identifier":"{}"}}"#,
            path.rsplit('/').next().unwrap()
        )
        .unwrap();
        // Two quiet days: 20 kB an hour.
        for h in 0..48 {
            flow(
                &mut s,
                path,
                t0 + h as f64 * 3600.0 + 10.0,
                5.0,
                "files.example.com",
                "203.0.113.40",
                443,
                20_000,
            );
        }
        // Then 5 hours of one connection moving 600 MB out, in the current hour.
        flow(
            &mut s,
            path,
            t0 + 48.0 * 3600.0 + 60.0,
            5.0 * 3600.0,
            "files.example.com",
            "203.0.113.40",
            443,
            600_000_000,
        );
    }
    let file = dir.path().join("egress.jsonl");
    std::fs::write(&file, s).unwrap();
    let now = (t0 + 53.0 * 3600.0 + 120.0).to_string();
    let rows = query(
        &["--replay", file.to_str().unwrap(), "--now", &now],
        "SELECT * FROM launchwatch_egress",
    );
    let up = rows
        .iter()
        .find(|r| r["identity"] == "/tmp/uploader")
        .expect("uploader row");
    // The 600 MB are counted over the five hours they took, as a live sampler would: hour 53
    // holds the flow's last minute (2 MB), still far out against 48 quiet hours.
    assert!(f(up, "bytes_sent_per_hour_z") > 5.0, "{up:?}");
    assert_eq!(up["duration_band"], "1h");
    assert!(f(up, "egress_score") >= 0.99, "{up:?}");
    let apple = rows
        .iter()
        .find(|r| r["signer_class"] == "apple")
        .expect("apple row");
    // Apple-signed counts for a fifth (here 1.0 × 1.2 upload boost × 0.2).
    assert!(f(apple, "egress_score") <= 0.25, "{apple:?}");
}

#[test]
fn an_upload_between_two_hourly_runs_is_judged_at_the_next_run() {
    // The pack runs AN0082 hourly and the current hour is partial when it does: a signed
    // program's 1 GB burst that filled the last hour must still be scored at the next run.
    let dir = tempfile::tempdir().unwrap();
    let t0 = 1_700_000_000.0 - (1_700_000_000.0 % 3600.0);
    let path = "/Applications/Sync.app/Contents/MacOS/Sync";
    let mut s = format!(
        r#"{{"kind":"signing","path":"{path}","signer_class":"developer_id","team_id":"SYNC123456","identifier":"com.sync"}}"#
    );
    s.push('\n');
    for h in 0..48 {
        let start = t0 + h as f64 * 3600.0 + 10.0;
        flow(
            &mut s,
            path,
            start,
            5.0,
            "api.sync.example",
            "203.0.113.40",
            443,
            20_000,
        );
    }
    // 1 GB in 40 minutes of hour 48; the query runs five minutes into hour 49.
    let burst = t0 + 48.0 * 3600.0 + 600.0;
    flow(
        &mut s,
        path,
        burst,
        2400.0,
        "api.sync.example",
        "203.0.113.40",
        443,
        1_000_000_000,
    );
    let file = dir.path().join("burst.jsonl");
    std::fs::write(&file, s).unwrap();
    let now = (t0 + 49.0 * 3600.0 + 300.0).to_string();
    let rows = query(
        &["--replay", file.to_str().unwrap(), "--now", &now],
        "SELECT * FROM launchwatch_egress",
    );
    let row = rows
        .iter()
        .find(|r| r["path"] == path)
        .expect("the sync client's row");
    assert!(f(row, "bytes_sent_per_hour_z") > 100.0, "{row:?}");
    assert_eq!(f(row, "volume_score"), 1.0, "{row:?}");
    assert!(f(row, "egress_score") >= 0.6, "{row:?}");
}

#[test]
fn destinations_know_how_much_baseline_they_had() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = String::new();
    let day = 86400.0;
    let t0 = 1_700_000_000.0;
    flow(
        &mut s,
        "/bin/app",
        t0,
        1.0,
        "old.example.com",
        "203.0.113.1",
        443,
        1,
    );
    flow(
        &mut s,
        "/bin/app",
        t0 + 20.0 * day,
        1.0,
        "old.example.com",
        "203.0.113.1",
        443,
        1,
    );
    flow(
        &mut s,
        "/bin/app",
        t0 + 20.0 * day,
        1.0,
        "new.example.net",
        "203.0.113.2",
        443,
        1,
    );
    flow(
        &mut s,
        "/bin/app",
        t0 + 20.0 * day,
        1.0,
        "",
        "127.0.0.1",
        8080,
        1,
    );
    let file = dir.path().join("d.jsonl");
    std::fs::write(&file, s).unwrap();
    let rows = query(&["--replay", file.to_str().unwrap()], "SELECT remote, is_new, baseline_seconds, flows FROM launchwatch_destinations ORDER BY remote");
    assert_eq!(rows.len(), 2, "loopback is not a destination: {rows:?}");
    assert_eq!(
        (
            rows[0]["remote"].as_str().unwrap(),
            rows[0]["is_new"].as_str().unwrap(),
            rows[0]["flows"].as_str().unwrap()
        ),
        ("example.com", "0", "2")
    );
    assert_eq!(
        (
            rows[1]["remote"].as_str().unwrap(),
            rows[1]["is_new"].as_str().unwrap()
        ),
        ("example.net", "1")
    );
    assert_eq!(f(&rows[1], "baseline_seconds").round(), 20.0 * day + 1.0);
}

#[test]
fn the_analytic_tables_answer_on_this_live_host() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    for table in [
        "launchwatch_beacons",
        "launchwatch_destinations",
        "launchwatch_fallbacks",
        "launchwatch_egress",
    ] {
        let rows = query(
            &["--state-dir", state.to_str().unwrap()],
            &format!("SELECT count(*) AS n FROM {table}"),
        );
        assert_eq!(rows.len(), 1, "{table}");
    }
}

#[test]
fn every_pack_query_runs_and_the_allowlist_marks_rows() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sim.jsonl");
    assert!(launchwatch(
        &["simulate", "--seed", "8", "--out", file.to_str().unwrap()],
        dir.path()
    )
    .status
    .success());
    let queries = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../packs/queries");
    let mut n = 0;
    for entry in std::fs::read_dir(queries).unwrap().flatten() {
        let sql: String = std::fs::read_to_string(entry.path())
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        for args in [
            vec!["--replay", file.to_str().unwrap()],
            vec!["--state-dir", dir.path().join("s").to_str().unwrap()],
        ] {
            let mut all = vec!["query"];
            all.extend_from_slice(&args);
            all.push(&sql);
            let out = run(&all);
            assert!(
                out.status.success(),
                "{}: {}",
                entry.path().display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        n += 1;
    }
    assert!(n >= 6);
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "[allowlist]\npaths = [\"/Users/Shared/*\"]\n").unwrap();
    let rows = query(
        &[
            "--replay",
            file.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ],
        "SELECT identity, allowlisted FROM launchwatch_beacons ORDER BY beacon_score DESC LIMIT 1",
    );
    assert_eq!(rows[0]["allowlisted"], "1", "{rows:?}");
}

fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A real TLS ClientHello, made by Python's ssl module (OpenSSL) into a memory BIO.
fn client_hello() -> Vec<u8> {
    let script = "import ssl,sys\nc=ssl.create_default_context()\ni,o=ssl.MemoryBIO(),ssl.MemoryBIO()\ns=c.wrap_bio(i,o,server_hostname='example.com')\ntry:\n s.do_handshake()\nexcept ssl.SSLWantReadError:\n pass\nsys.stdout.buffer.write(o.read())\n";
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .output()
        .expect("python3");
    assert!(
        out.status.success() && out.stdout.len() > 100,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn first_payloads_are_classified_from_real_bytes() {
    let hello = client_hello();
    let mut random = Vec::new();
    let mut x: u64 = 0x1234_5678;
    for _ in 0..256 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        random.push((x >> 24) as u8);
    }
    let stratum = br#"{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"44AFF","pass":"x","agent":"XMRig/6.21.0"}}"#;
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("/bin/browser", hello, 443, "tls"),
        ("/tmp/implant", random, 8443, "random"),
        ("/tmp/miner", stratum.to_vec(), 3333, "stratum"),
        (
            "/usr/bin/ssh",
            b"SSH-2.0-OpenSSH_9.6\r\n".to_vec(),
            22,
            "ssh",
        ),
        (
            "/tmp/short",
            vec![0xde, 0xad, 0xbe, 0xef, 1, 2, 3],
            9000,
            "undetermined",
        ),
    ];
    let mut text = String::new();
    for (i, (path, bytes, port, _)) in cases.iter().enumerate() {
        writeln!(
            text,
            r#"{{"kind":"payload","ts":{},"pid":{},"path":"{path}","protocol":"tcp","remote_address":"203.0.113.{i}","remote_port":{port},"direction":"out","first_bytes":"{}"}}"#,
            1_700_000_000 + i,
            100 + i,
            b64(bytes)
        )
        .unwrap();
    }
    text.push_str(r#"{"kind":"payload","ts":1700000100,"path":"/tmp/live","protocol":"udp","remote_address":"203.0.113.9","remote_port":4500,"payload_class":"random","entropy":7.1,"bytes_seen":256}"#);
    text.push('\n');
    text.push_str(r#"{"kind":"payload","ts":1700000101,"path":"/tmp/bad","protocol":"tcp","remote_address":"203.0.113.9","remote_port":1,"first_bytes":"%%% not base64"}"#);
    text.push('\n');
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.jsonl");
    std::fs::write(&file, text).unwrap();
    let rows = query(&["--replay", file.to_str().unwrap()], "SELECT path, payload_class, entropy, expected_entropy, bytes_seen FROM launchwatch_payloads");
    let class = |p: &str| {
        rows.iter()
            .find(|r| r["path"] == p)
            .unwrap_or_else(|| panic!("{p} in {rows:?}"))["payload_class"]
            .as_str()
            .unwrap()
            .to_string()
    };
    for (path, _, _, want) in &cases {
        assert_eq!(class(path), *want, "{path}");
    }
    assert_eq!(class("/tmp/live"), "random", "a recorded class is kept");
    assert_eq!(class("/tmp/bad"), "undetermined");
    let implant = rows.iter().find(|r| r["path"] == "/tmp/implant").unwrap();
    assert!(
        f(implant, "entropy") > 7.0 && f(implant, "expected_entropy") > 7.1,
        "{implant:?}"
    );
}

#[test]
fn a_tunnel_opened_before_the_window_still_counts_as_egress() {
    let dir = tempfile::tempdir().unwrap();
    let now = 1_700_100_000.0;
    let mut s = String::from(
        "{\"kind\":\"signing\",\"path\":\"/tmp/tunnel\",\"signer_class\":\"unsigned\"}\n",
    );
    // Opened 30 hours ago, still running: last seen now, no end.
    writeln!(
        s,
        r#"{{"kind":"flow","start":{},"last_seen":{now},"path":"/tmp/tunnel","protocol":"tcp","remote_address":"203.0.113.77","remote_port":443,"remote_name":"relay.example.net","bytes_sent":900000,"bytes_received":100000,"state":"ESTABLISHED"}}"#,
        now - 30.0 * 3600.0
    )
    .unwrap();
    let file = dir.path().join("t.jsonl");
    std::fs::write(&file, s).unwrap();
    let rows = query(
        &[
            "--replay",
            file.to_str().unwrap(),
            "--now",
            &now.to_string(),
        ],
        "SELECT * FROM launchwatch_egress",
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    assert_eq!(r["duration_band"], "24h");
    assert!(
        (f(r, "total_duration_seconds") - 86400.0).abs() < 1.0,
        "cumulative time inside the 24 h window: {r:?}"
    );
    assert!(f(r, "duration_score") >= 0.8 - 1e-9);
}

#[test]
fn novelty_waits_for_a_history_as_long_as_the_baseline() {
    // An unsigned program beaconing every 5 minutes for a day to a new destination.
    let day = 1_733_011_200.0;
    let mut one_day = String::new();
    writeln!(
        one_day,
        r#"{{"kind":"signing","path":"/opt/a","signer_class":"unsigned"}}"#
    )
    .unwrap();
    for i in 0..280 {
        flow(
            &mut one_day,
            "/opt/a",
            day + 300.0 * i as f64,
            0.5,
            "c2.example.net",
            "198.51.100.9",
            443,
            300,
        );
    }
    // The same host, with 20 days of other history before it.
    let mut longer = one_day.clone();
    for d in 1..=20 {
        flow(
            &mut longer,
            "/usr/bin/other",
            day - 86_400.0 * d as f64,
            1.0,
            "news.example.org",
            "203.0.113.5",
            443,
            900,
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let mut rows = Vec::new();
    for (name, text) in [("one.jsonl", &one_day), ("long.jsonl", &longer)] {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        let r = query(
            &[
                "--replay",
                file.to_str().unwrap(),
                "--now",
                &format!("{}", day + 86_400.0),
            ],
            "SELECT history_days, context FROM launchwatch_beacons WHERE remote = 'example.net'",
        );
        assert_eq!(r.len(), 1, "{name}: {r:?}");
        rows.push((f(&r[0], "history_days"), f(&r[0], "context")));
    }
    // One day of history: every destination would be "new"; novelty stays neutral (trust only).
    assert!((rows[0].0 - 1.0).abs() < 0.01, "{rows:?}");
    assert!(
        (rows[0].1 - 1.1).abs() < 1e-9,
        "unsigned trust only: {rows:?}"
    );
    // 21 days: the destination is genuinely new, ×1.15.
    assert!(rows[1].0 >= 20.9, "{rows:?}");
    assert!((rows[1].1 - 1.1 * 1.15).abs() < 1e-9, "{rows:?}");
}

/// One persistent connection of a launchd job's agent, checking in every 60 s (±2 s) for three
/// hours, as counter readings: (ts, bytes sent, bytes received), the quiet reading before each
/// check-in and the one that saw it.
fn persistent_readings(t0: f64) -> Vec<(f64, i64, i64)> {
    let (mut sent, mut received) = (600, 4000);
    let mut out = vec![(t0 + 1.0, sent, received)];
    for i in 0..180 {
        let at = t0 + 30.0 + i as f64 * 60.0 + [0.0, 2.0, -2.0][i % 3];
        out.push((at - 3.0, sent, received));
        sent += 350;
        received += 500;
        out.push((at + 2.0, sent, received));
    }
    out
}

#[test]
fn check_ins_inside_one_persistent_connection_are_timed_from_either_replay_form() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = 1_700_000_000.0;
    let readings = persistent_readings(t0);
    let identity = r#""pid":4242,"path":"/Users/Shared/.p/agent","launchd_label":"com.example.persist","protocol":"tcp","local_address":"192.0.2.10","local_port":50500,"remote_address":"198.51.100.44","remote_port":443,"remote_name":"ws.persist-c2.example.net""#;
    let signing = "{\"kind\":\"signing\",\"path\":\"/Users/Shared/.p/agent\",\"signer_class\":\"unsigned\"}\n";
    // A benign twin in both files: a stream that sends in every interval is one burst.
    let mut stream = String::from(
        r#"{"kind":"flow","start":1700000000,"end":1700010000,"pid":4300,"path":"/Applications/Player.app/Contents/MacOS/Player","protocol":"tcp","local_port":50600,"remote_address":"203.0.113.60","remote_port":443,"remote_name":"media.stream.example","bytes_sent":2000000,"bytes_received":900000000,"snapshots":["#,
    );
    for i in 0..2000 {
        let _ = write!(
            stream,
            "{}{{\"ts\":{},\"bytes_sent\":{},\"bytes_received\":{}}}",
            if i == 0 { "" } else { "," },
            t0 + i as f64 * 5.0,
            i * 1000,
            i * 450_000
        );
    }
    stream.push_str("]}\n");
    // Form 1: the flow's one line carries its readings.
    let snaps: Vec<String> = readings
        .iter()
        .map(|(ts, s, r)| format!(r#"{{"ts":{ts},"bytes_sent":{s},"bytes_received":{r}}}"#))
        .collect();
    let last = readings.last().unwrap();
    let one_line = format!(
        "{signing}{stream}{{\"kind\":\"flow\",\"start\":{t0},\"end\":null,{identity},\"bytes_sent\":{},\"bytes_received\":{},\"snapshots\":[{}]}}\n",
        last.1,
        last.2,
        snaps.join(",")
    );
    // Form 2: a converter's lines, one per reading, of the same connection.
    let mut many_lines = format!("{signing}{stream}");
    for (ts, s, r) in &readings {
        let _ = writeln!(
            many_lines,
            "{{\"kind\":\"flow\",\"start\":{t0},\"end\":null,\"last_seen\":{ts},{identity},\"bytes_sent\":{s},\"bytes_received\":{r}}}"
        );
    }
    for (name, text) in [("one-line", one_line), ("many-lines", many_lines)] {
        let file = dir.path().join(format!("{name}.jsonl"));
        std::fs::write(&file, text).unwrap();
        let rows = query(
            &["--replay", file.to_str().unwrap()],
            "SELECT path, launchd_label, checkin_kind, sessions, period_seconds, beacon_score, first_seen FROM launchwatch_beacons ORDER BY beacon_score DESC",
        );
        let ours: Vec<_> = rows
            .iter()
            .filter(|r| r["path"] == "/Users/Shared/.p/agent")
            .collect();
        assert_eq!(ours.len(), 1, "{name}: one row, in_connection: {rows:?}");
        let r = ours[0];
        assert_eq!(r["checkin_kind"], "in_connection", "{name}: {r:?}");
        assert_eq!(r["launchd_label"], "com.example.persist", "{name}: {r:?}");
        assert!(f(r, "beacon_score") >= 0.7, "{name}: {r:?}");
        assert!(
            (f(r, "period_seconds") - 60.0).abs() <= 2.0,
            "{name}: {r:?}"
        );
        // The opening burst is the connection's start, not a check-in.
        assert!((178.0..=180.0).contains(&f(r, "sessions")), "{name}: {r:?}");
        assert_eq!(f(r, "first_seen"), t0 + 32.0, "{name}: {r:?}");
        assert!(
            rows.iter()
                .filter(|r| r["path"] != "/Users/Shared/.p/agent")
                .all(|r| f(r, "beacon_score") < 0.7),
            "{name}: the stream stays quiet: {rows:?}"
        );
    }
}
