//! `launchwatch query` end to end: output formats, errors, replay and constraint pushdown
//! through the embedded SQLite host.

use std::io::Write;

use launchwatch_e2e::{json_rows, launchwatch, stderr, stdout};

#[test]
fn status_prints_one_row_of_strings() {
    let state = tempfile::tempdir().unwrap();
    let out = launchwatch(
        &["query", "--json", "SELECT * FROM launchwatch_status"],
        state.path(),
    );
    let rows = json_rows(&out);
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    for col in [
        "version",
        "uptime_seconds",
        "samples",
        "sample_cost_ms",
        "observations_stored",
        "store_bytes",
        "capture_enabled",
        "errors",
    ] {
        assert!(row[col].is_string(), "{col} is a string: {row:?}");
    }
    assert_eq!(row["version"], env!("CARGO_PKG_VERSION"));
    // Live mode takes two fresh samples so rates are real.
    assert_eq!(row["samples"], "2");
    assert!(
        row["observations_stored"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 2
    );
    // A live query names the history it read: this test's own state directory.
    assert_eq!(
        row["store_path"],
        state.path().join("store/launchwatch.db").to_str().unwrap()
    );
    // osqueryi's shape: one object per line.
    let text = stdout(&out);
    assert!(
        text.starts_with("[\n  {") && text.ends_with("}\n]\n"),
        "{text}"
    );
}

#[test]
fn text_output_is_an_aligned_table() {
    let state = tempfile::tempdir().unwrap();
    let out = launchwatch(
        &[
            "query",
            "SELECT version, capture_enabled FROM launchwatch_status",
        ],
        state.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(lines[1].starts_with("| version") && lines[1].contains("| capture_enabled |"));
    assert!(lines.iter().all(|l| l.len() == lines[0].len()));
}

#[test]
fn bad_sql_and_unknown_tables_are_one_clear_line() {
    let state = tempfile::tempdir().unwrap();
    for (sql, needle) in [
        ("SELEC 1", "syntax error"),
        ("SELECT * FROM launchd", "no such table: launchd"),
    ] {
        let out = launchwatch(&["query", sql], state.path());
        assert!(!out.status.success());
        assert!(stdout(&out).is_empty(), "nothing half-written");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{err}");
    }
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn replay_loads_observations_into_memory() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "obs.jsonl",
        r#"{"kind":"process","ts":1700000000,"pid":5,"start_time":1699999000,"cpu_time":3.5,"path":"/usr/libexec/agent"}
{"kind":"flow","start":1700000001,"end":1700000100,"path":"/usr/libexec/agent","protocol":"tcp","remote_address":"203.0.113.9","remote_port":443,"bytes_sent":10}
{"kind":"dns","ts":1700000000,"name":"example.com","address":"203.0.113.9"}
{"kind":"future-kind","x":1}
"#,
    );
    let out = launchwatch(
        &[
            "query",
            "--json",
            "--replay",
            &file,
            "SELECT samples, observations_stored, store_path FROM launchwatch_status",
        ],
        dir.path(),
    );
    let rows = json_rows(&out);
    assert_eq!(rows[0]["observations_stored"], "3");
    assert_eq!(rows[0]["samples"], "0", "a replay takes no live samples");
    assert!(
        stderr(&out).contains("obs.jsonl:4: unknown kind \"future-kind\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn malformed_replay_names_file_and_line_and_loads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(
        dir.path(),
        "good.jsonl",
        "{\"kind\":\"dns\",\"ts\":1,\"name\":\"a\",\"address\":\"b\"}\n",
    );
    let bad = write(dir.path(), "bad.jsonl", "{\"kind\":\"dns\",\"ts\":1,\"name\":\"a\",\"address\":\"b\"}\n{\"kind\":\"flow\",\"start\":1}\n");
    let out = launchwatch(
        &[
            "query",
            "--json",
            "--replay",
            &good,
            "--replay",
            &bad,
            "SELECT * FROM launchwatch_status",
        ],
        dir.path(),
    );
    assert!(!out.status.success());
    assert!(stdout(&out).is_empty());
    let err = stderr(&out);
    assert!(err.contains("bad.jsonl:2: flow: missing field"), "{err}");
    assert_eq!(err.lines().count(), 1);
    let missing = launchwatch(
        &["query", "--replay", "/nonexistent/x.jsonl", "SELECT 1"],
        dir.path(),
    );
    assert!(!missing.status.success() && stderr(&missing).contains("/nonexistent/x.jsonl"));
}

#[test]
fn bad_config_is_refused_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "c.toml", "[sampler]\nprocess_intreval = 3\n");
    let out = launchwatch(&["query", "--config", &config, "SELECT 1"], dir.path());
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("process_intreval"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn standalone_host_pushes_constraints_like_osqueryd() {
    let dir = tempfile::tempdir().unwrap();
    let out = launchwatch_e2e::command(dir.path())
        .args([
            "query",
            "--json",
            "SELECT constraints FROM launchwatch_test_fault WHERE mode = 'ok' AND sleep_ms > 3 AND sleep_ms != 9 LIMIT 1 OFFSET 0",
        ])
        .env("LAUNCHWATCH_TEST_TABLES", "1")
        .output()
        .unwrap();
    let rows = json_rows(&out);
    // sleep_ms is 0 in the row, so SQLite's own re-check filters it out: constraints are
    // advisory, exactly as in osqueryd. Ask again without the numeric filter to see them.
    assert!(
        rows.is_empty(),
        "SQLite re-checks every constraint: {rows:?}"
    );
    let out = launchwatch_e2e::command(dir.path())
        .args(["query", "--json", "SELECT constraints FROM launchwatch_test_fault WHERE mode = 'ok' AND sleep_ms != 9 LIMIT 1 OFFSET 0"])
        .env("LAUNCHWATCH_TEST_TABLES", "1")
        .output()
        .unwrap();
    let rows = json_rows(&out);
    let seen: Vec<String> = serde_json::from_str(rows[0]["constraints"].as_str().unwrap()).unwrap();
    assert!(seen.contains(&"mode:2:ok".to_string()), "{seen:?}");
    assert!(seen.contains(&"sleep_ms:68:9".to_string()), "{seen:?}");
    assert!(seen.contains(&"limit:1".to_string()), "{seen:?}");
}

#[test]
fn or_queries_do_not_lose_rows_to_rowid_merging() {
    // SQLite may answer `a = x OR b = y` on a virtual table with one scan per term merged by
    // rowid; rows from different scans must not collide. Two test-fault rows differ by mode.
    let dir = tempfile::tempdir().unwrap();
    let out = launchwatch_e2e::command(dir.path())
        .args(["query", "--json", "SELECT mode, sleep_ms FROM launchwatch_test_fault WHERE mode = 'ok' OR mode = 'null' OR sleep_ms = 5 ORDER BY mode, sleep_ms"])
        .env("LAUNCHWATCH_TEST_TABLES", "1")
        .output()
        .unwrap();
    let rows = json_rows(&out);
    // The fault table echoes the constraints it gets, so each OR term's scan yields its own
    // row: (ok, 0) for mode = 'ok', (null, NULL) for mode = 'null', (ok, 5) for sleep_ms = 5.
    let got: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r["mode"].as_str().unwrap(), r["sleep_ms"].as_str().unwrap()))
        .collect();
    assert_eq!(got, [("null", ""), ("ok", "0"), ("ok", "5")], "{rows:?}");
}

/// A failure is exactly one line on stderr, containing every needle, with nothing on stdout.
fn one_line_error(out: &std::process::Output, needles: &[&str]) {
    assert!(!out.status.success(), "must fail: {}", stdout(out));
    assert!(
        stdout(out).is_empty(),
        "nothing half-written: {}",
        stdout(out)
    );
    let err = stderr(out);
    assert_eq!(err.lines().count(), 1, "{err}");
    for n in needles {
        assert!(err.contains(n), "{n:?} in {err}");
    }
}

#[test]
fn empty_sql_says_the_statement_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    for sql in ["", "  ;  "] {
        let out = launchwatch(&["query", sql], dir.path());
        one_line_error(
            &out,
            &["SQL statement is empty", "launchwatch query \"SELECT"],
        );
    }
}

#[test]
fn statements_that_are_not_selects_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for sql in [
        "CREATE TABLE t(x)",
        "INSERT INTO launchwatch_status(version) VALUES ('x')",
    ] {
        let out = launchwatch(&["query", "--no-sample", sql], dir.path());
        one_line_error(&out, &["only SELECT statements run here"]);
    }
}

#[test]
fn osquery_core_tables_point_at_osqueryi() {
    let dir = tempfile::tempdir().unwrap();
    let out = launchwatch(
        &["query", "--no-sample", "SELECT * FROM processes"],
        dir.path(),
    );
    one_line_error(
        &out,
        &[
            "no such table: processes",
            "launchwatch_status",
            "osqueryi --extension",
        ],
    );
}

#[test]
fn a_config_value_of_the_wrong_type_names_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "c.toml",
        "[sampler]\nprocess_interval = \"ten\"\n",
    );
    let out = launchwatch(&["query", "--config", &config, "SELECT 1"], dir.path());
    one_line_error(
        &out,
        &["c.toml", "sampler.process_interval", "expected a number"],
    );
    assert!(!stderr(&out).contains("f64"), "{}", stderr(&out));
}

#[test]
fn launchwatch_config_naming_a_missing_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = launchwatch_e2e::command(dir.path())
        .args(["query", "--no-sample", "SELECT 1"])
        .env("LAUNCHWATCH_CONFIG", dir.path().join("missing.toml"))
        .output()
        .unwrap();
    one_line_error(
        &out,
        &["LAUNCHWATCH_CONFIG names", "missing.toml", "does not exist"],
    );
}

#[test]
fn a_directory_given_to_replay_is_called_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = launchwatch(&["query", "--replay", d, "SELECT 1"], dir.path());
    one_line_error(&out, &["is a directory", "JSON Lines file"]);
    assert!(
        !stderr(&out).contains(":1:"),
        "no line number for a directory"
    );
    // The demo host's folder: point at the file inside it.
    let host = dir.path().join("demo");
    assert!(
        launchwatch(&["simulate", "--host", host.to_str().unwrap()], dir.path())
            .status
            .success()
    );
    let out = launchwatch(&["hunt", "--replay", host.to_str().unwrap()], dir.path());
    one_line_error(&out, &["is a directory", "demo/observations.jsonl"]);
}

#[test]
fn replay_type_errors_speak_json_not_rust() {
    let dir = tempfile::tempdir().unwrap();
    for (line, needle) in [
        (r#"{"kind":"dns","ts":"x","name":"a","address":"b"}"#, "field `ts`: invalid type: string \"x\", expected a number"),
        (r#"{"kind":"flow","start":1,"path":"a","protocol":"tcp","remote_address":"b","remote_port":70000}"#, "field `remote_port`: invalid value: integer `70000`, expected an integer from 0 to 65535"),
        (r#"{"kind":"process","ts":1,"pid":1.5,"start_time":1,"cpu_time":1}"#, "expected an integer"),
    ] {
        let file = write(dir.path(), "t.jsonl", &format!("{line}\n"));
        let out = launchwatch(&["query", "--replay", &file, "SELECT 1"], dir.path());
        one_line_error(&out, &["t.jsonl:1:", needle]);
        for rust in ["i64", "u16", "f64"] {
            assert!(!stderr(&out).contains(rust), "{}", stderr(&out));
        }
    }
}

#[test]
fn out_into_a_missing_folder_names_the_users_path() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("no/such/folder/rec.jsonl");
    let out_s = out_file.to_str().unwrap();
    for args in [
        vec!["record", "--duration", "0", "--out", out_s],
        vec!["simulate", "--seed", "1", "--out", out_s],
    ] {
        let out = launchwatch(&args, dir.path());
        one_line_error(&out, &[out_s, "does not exist", "create it"]);
        assert!(!stderr(&out).contains(".partial"), "{}", stderr(&out));
    }
}

#[test]
fn record_and_simulate_say_what_they_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec.jsonl");
    let out = launchwatch(
        &[
            "record",
            "--duration",
            "0.5",
            "--out",
            rec.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    let done = err.lines().last().unwrap();
    assert!(
        done.contains("recorded")
            && done.contains(rec.to_str().unwrap())
            && done.contains("hunt --replay"),
        "{err}"
    );
    let n: usize = done.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert_eq!(
        n,
        std::fs::read_to_string(&rec).unwrap().lines().count(),
        "{done}"
    );
    let sim = dir.path().join("sim.jsonl");
    let out = launchwatch(
        &["simulate", "--seed", "2", "--out", sim.to_str().unwrap()],
        dir.path(),
    );
    assert!(out.status.success());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    let n: usize = err.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert_eq!(
        n,
        std::fs::read_to_string(&sim).unwrap().lines().count(),
        "{err}"
    );
}

#[test]
fn a_record_shorter_than_two_cpu_samples_says_cpu_will_be_null() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec.jsonl");
    let config = write(dir.path(), "c.toml", "[sampler]\nprocess_interval = 3\n");
    let out = launchwatch(
        &[
            "record",
            "--config",
            &config,
            "--duration",
            "1",
            "--out",
            rec.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.lines().any(|l| l.contains("warning")
            && l.contains("--duration 1 s")
            && l.contains("process_interval = 3 s")
            && l.contains("CPU figures will be NULL")
            && l.contains("at least 6 s")),
        "{err}"
    );
    // Long enough: no warning.
    let out = launchwatch(
        &[
            "record",
            "--config",
            &config,
            "--duration",
            "6",
            "--out",
            rec.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
}

#[test]
fn text_output_prints_doubles_as_osqueryi_does() {
    let dir = tempfile::tempdir().unwrap();
    let out = launchwatch(
        &[
            "query",
            "--no-sample",
            "SELECT 0.1 + 0.06 AS x, 2.0 AS y, 1e20 AS z",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("| 0.16 | 2.0 | 1e+20.0 |"), "{text}");
    assert!(!text.contains("0.16000000000000003"));
}
#[test]
fn a_flows_name_without_payloads_is_its_own_or_from_dns_alone() {
    // No payload rows (capture off): a flow's name is the one it was recorded with, else a DNS
    // answer for its address; with neither it has none.
    let dir = tempfile::tempdir().unwrap();
    let flows = r#"{"kind":"flow","start":1700000000,"end":1700000010,"pid":7,"path":"/opt/agent","protocol":"tcp","local_address":"10.0.0.5","local_port":41000,"remote_address":"203.0.113.20","remote_port":443,"remote_name":"own.example.net"}
{"kind":"flow","start":1700000020,"end":1700000030,"pid":7,"path":"/opt/agent","protocol":"tcp","local_address":"10.0.0.5","local_port":41001,"remote_address":"203.0.113.21","remote_port":443}
"#;
    let with_dns = write(
        dir.path(),
        "dns.jsonl",
        &format!(
            "{flows}{}\n",
            r#"{"kind":"dns","ts":1700000015,"name":"dns-only.example.org","address":"203.0.113.21"}"#
        ),
    );
    let without = write(dir.path(), "flows.jsonl", flows);
    let names = |file: &str| -> Vec<String> {
        json_rows(&launchwatch(
            &[
                "query",
                "--json",
                "--replay",
                file,
                "SELECT remote_name FROM launchwatch_sockets ORDER BY local_port",
            ],
            dir.path(),
        ))
        .iter()
        .map(|r| r["remote_name"].as_str().unwrap().to_string())
        .collect()
    };
    assert_eq!(
        names(&with_dns),
        ["own.example.net", "dns-only.example.org"]
    );
    assert_eq!(names(&without), ["own.example.net", ""]);
}

#[test]
fn a_flows_name_prefers_dns_over_what_it_claims_in_sockets_and_analytic_keys() {
    let dir = tempfile::tempdir().unwrap();
    // Flow 1 claims a fronting SNI but DNS resolved its address from another name; flow 2 has
    // only its SNI; flow 3 only an HTTP Host with a port.
    let file = write(
        dir.path(),
        "obs.jsonl",
        r#"{"kind":"flow","start":1700000000,"end":1700000010,"pid":7,"path":"/opt/agent","protocol":"tcp","local_address":"10.0.0.5","local_port":40000,"remote_address":"203.0.113.9","remote_port":443}
{"kind":"payload","ts":1700000000.5,"pid":7,"path":"/opt/agent","protocol":"tcp","local_address":"10.0.0.5","local_port":40000,"remote_address":"203.0.113.9","remote_port":443,"payload_class":"tls","bytes_seen":256,"sni":"front.cdn-example.net","resolved_name":"c2.evil-example.org"}
{"kind":"flow","start":1700000020,"end":1700000030,"pid":7,"path":"/opt/agent","protocol":"tcp","local_address":"10.0.0.5","local_port":40001,"remote_address":"203.0.113.10","remote_port":443}
{"kind":"payload","ts":1700000020.5,"pid":7,"path":"/opt/agent","protocol":"tcp","local_address":"10.0.0.5","local_port":40001,"remote_address":"203.0.113.10","remote_port":443,"payload_class":"tls","sni":"api.only-sni.example.com"}
{"kind":"flow","start":1700000040,"end":1700000050,"pid":7,"path":"/opt/agent","protocol":"tcp","local_address":"10.0.0.5","local_port":40002,"remote_address":"203.0.113.11","remote_port":8080}
{"kind":"payload","ts":1700000040.5,"pid":7,"path":"/opt/agent","protocol":"tcp","local_address":"10.0.0.5","local_port":40002,"remote_address":"203.0.113.11","remote_port":8080,"payload_class":"http","http_host":"www.host-example.org:8080"}
"#,
    );
    let q = |sql: &str| {
        json_rows(&launchwatch(
            &["query", "--json", "--replay", &file, sql],
            dir.path(),
        ))
    };
    let names: Vec<(String, String)> =
        q("SELECT local_port, remote_name FROM launchwatch_sockets ORDER BY local_port")
            .iter()
            .map(|r| {
                (
                    r["local_port"].as_str().unwrap().into(),
                    r["remote_name"].as_str().unwrap().into(),
                )
            })
            .collect();
    assert_eq!(
        names,
        [
            ("40000".to_string(), "c2.evil-example.org".to_string()),
            ("40001".into(), "api.only-sni.example.com".into()),
            ("40002".into(), "www.host-example.org".into()),
        ]
    );
    let remotes: Vec<String> = q("SELECT remote FROM launchwatch_destinations ORDER BY remote")
        .iter()
        .map(|r| r["remote"].as_str().unwrap().into())
        .collect();
    assert_eq!(
        remotes,
        ["evil-example.org", "example.com", "host-example.org"]
    );
    let p = q(
        "SELECT remote_name, sni, resolved_name FROM launchwatch_payloads WHERE local_port = 40000",
    );
    assert_eq!(
        (
            p[0]["remote_name"].as_str(),
            p[0]["sni"].as_str(),
            p[0]["resolved_name"].as_str()
        ),
        (
            Some("c2.evil-example.org"),
            Some("front.cdn-example.net"),
            Some("c2.evil-example.org")
        )
    );
}
