//! The query packs: one `.sql` file per query, with a header of `-- key: value` lines (name,
//! mitre, description, platform, interval, logging; `misses` for the core pack), each rendered
//! as an osquery pack and Fleet GitOps reports. A test fails when a rendering drifts.
//!
//! * The main pack, on the extension's tables: `packs/queries/` → `packs/launchwatch.conf`,
//!   `packs/fleet/launchwatch.yml`.
//! * The core pack, on osquery core tables only, for hosts that cannot load extensions:
//!   `packs/core/queries/` → `packs/core/launchwatch-core.conf`,
//!   `packs/core/fleet/launchwatch-core.yml`; every query says what it misses.

use std::fmt::Write;
use std::path::Path;

#[derive(Debug, Clone, PartialEq)]
pub struct PackQuery {
    pub name: String,
    pub mitre: String,
    pub description: String,
    pub platform: String,
    pub interval: u32,
    /// `differential` (detections: a row when a finding appears or goes) or `snapshot`.
    pub logging: String,
    /// What a core-only query cannot see compared with the extension (core pack only).
    pub misses: String,
    pub sql: String,
}

/// One pack: where its sources are and where its two renderings go, relative to `packs/`.
pub struct PackFiles {
    pub queries: &'static str,
    pub osquery: &'static str,
    pub fleet: &'static str,
}

pub const MAIN: PackFiles = PackFiles {
    queries: "queries",
    osquery: "launchwatch.conf",
    fleet: "fleet/launchwatch.yml",
};

pub const CORE: PackFiles = PackFiles {
    queries: "core/queries",
    osquery: "core/launchwatch-core.conf",
    fleet: "core/fleet/launchwatch-core.yml",
};

/// Parses one source file; the error names the file and what is missing.
pub fn parse(file: &str, text: &str) -> Result<PackQuery, String> {
    let mut q = PackQuery {
        name: String::new(),
        mitre: String::new(),
        description: String::new(),
        platform: String::new(),
        interval: 0,
        logging: String::new(),
        misses: String::new(),
        sql: String::new(),
    };
    let mut sql = Vec::new();
    for line in text.lines() {
        if let Some(header) = line.strip_prefix("-- ").filter(|_| sql.is_empty()) {
            let Some((key, value)) = header.split_once(':') else {
                continue;
            };
            let value = value.trim().to_string();
            match key.trim() {
                "name" => q.name = value,
                "mitre" => q.mitre = value,
                "description" => q.description = value,
                "platform" => q.platform = value,
                "interval" => {
                    q.interval = value
                        .parse()
                        .map_err(|_| format!("{file}: interval {value:?} is not a number"))?
                }
                "logging" => q.logging = value,
                "misses" => q.misses = value,
                other => return Err(format!("{file}: unknown header {other:?}")),
            }
        } else if !line.trim().is_empty() {
            sql.push(line.trim_end());
        }
    }
    q.sql = sql.join("\n");
    for (what, empty) in [
        ("name", q.name.is_empty()),
        ("description", q.description.is_empty()),
        ("platform", q.platform.is_empty()),
        ("sql", q.sql.is_empty()),
    ] {
        if empty {
            return Err(format!("{file}: no {what}"));
        }
    }
    if !(1..=604_800).contains(&q.interval) {
        return Err(format!(
            "{file}: interval must be 1..604800 seconds (osquery's limit)"
        ));
    }
    if !matches!(
        q.logging.as_str(),
        "differential" | "snapshot" | "differential_ignore_removals"
    ) {
        return Err(format!(
            "{file}: logging must be differential, differential_ignore_removals or snapshot"
        ));
    }
    Ok(q)
}

pub fn load(dir: &Path) -> Result<Vec<PackQuery>, String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            parse(&p.display().to_string(), &text)
        })
        .collect()
}

/// The shipped pack, compiled in: `hunt` runs exactly these statements with no checkout at hand
/// (a test holds the list equal to `packs/queries/`).
const BUNDLED: &[(&str, &str)] = &[
    (
        "an0082_unusual_egress.sql",
        include_str!("../../packs/queries/an0082_unusual_egress.sql"),
    ),
    (
        "an0402_custom_crypto_channel.sql",
        include_str!("../../packs/queries/an0402_custom_crypto_channel.sql"),
    ),
    (
        "an0743_background_mining.sql",
        include_str!("../../packs/queries/an0743_background_mining.sql"),
    ),
    (
        "an1120_launchd_periodic_transfer.sql",
        include_str!("../../packs/queries/an1120_launchd_periodic_transfer.sql"),
    ),
    (
        "an1378_fallback_channel.sql",
        include_str!("../../packs/queries/an1378_fallback_channel.sql"),
    ),
    (
        "launchd_job_inventory.sql",
        include_str!("../../packs/queries/launchd_job_inventory.sql"),
    ),
    ("status.sql", include_str!("../../packs/queries/status.sql")),
    (
        "status_config.sql",
        include_str!("../../packs/queries/status_config.sql"),
    ),
];

/// The bundled pack's queries, parsed as `load` parses the files.
pub fn bundled() -> Vec<PackQuery> {
    BUNDLED
        .iter()
        .map(|(file, text)| parse(file, text).expect("the bundled pack parses (tested)"))
        .collect()
}

fn json(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialise")
}

/// The description operators see: a core query's limits travel with it.
fn description(q: &PackQuery) -> String {
    if q.misses.is_empty() {
        q.description.clone()
    } else {
        format!(
            "{} Misses, compared with the launchwatch extension: {}",
            q.description, q.misses
        )
    }
}

/// osquery pack JSON. `removed`/`snapshot` follow the logging mode.
pub fn osquery_pack(queries: &[PackQuery]) -> String {
    let mut out = String::from("{\n  \"platform\": \"darwin,linux\",\n  \"queries\": {\n");
    for (i, q) in queries.iter().enumerate() {
        let _ = write!(
            out,
            "    {}: {{\n      \"query\": {},\n      \"interval\": {},\n      \"platform\": {},\n      \"snapshot\": {},\n      \"removed\": {},\n      \"description\": {},\n      \"value\": {}\n    }}{}\n",
            json(&q.name),
            json(&q.sql),
            q.interval,
            json(&q.platform),
            q.logging == "snapshot",
            q.logging == "differential",
            json(&description(q)),
            json(&format!("MITRE ATT&CK analytic {}", q.mitre)),
            if i + 1 < queries.len() { "," } else { "" }
        );
    }
    out.push_str("  }\n}\n");
    out
}

/// Fleet GitOps `reports:` (every string JSON-quoted, which YAML reads as-is).
pub fn fleet_reports(files: &PackFiles, queries: &[PackQuery]) -> String {
    let mut out = format!(
        "# Generated from packs/{}/*.sql by `launchwatch gen-packs packs`; do not edit.\nreports:\n",
        files.queries
    );
    for q in queries {
        let _ = write!(
            out,
            "  - name: {}\n    description: {}\n    query: {}\n    platform: {}\n    interval: {}\n    automations_enabled: true\n    logging: {}\n    observer_can_run: false\n    discard_data: {}\n",
            json(&q.name),
            json(&description(q)),
            json(&q.sql),
            json(&q.platform),
            q.interval,
            q.logging,
            q.logging != "snapshot"
        );
    }
    out
}

/// Writes both renderings of both packs under `packs_dir`.
pub fn write_all(packs_dir: &Path) -> Result<(), String> {
    for files in [&MAIN, &CORE] {
        let queries = load(&packs_dir.join(files.queries))?;
        for (path, text) in [
            (files.osquery, osquery_pack(&queries)),
            (files.fleet, fleet_reports(files, &queries)),
        ] {
            let path = packs_dir.join(path);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packs() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../packs")
    }

    #[test]
    fn generated_pack_files_match_their_sources() {
        if std::env::var_os("LAUNCHWATCH_UPDATE_DOCS").is_some() {
            write_all(&packs()).unwrap();
        }
        for files in [&MAIN, &CORE] {
            let queries = load(&packs().join(files.queries)).unwrap();
            let conf = std::fs::read_to_string(packs().join(files.osquery)).unwrap_or_default();
            let fleet = std::fs::read_to_string(packs().join(files.fleet)).unwrap_or_default();
            assert!(
                conf == osquery_pack(&queries) && fleet == fleet_reports(files, &queries),
                "{} drifted: run `cargo run -p launchwatch -- gen-packs packs`",
                files.queries
            );
            let parsed: serde_json::Value = serde_json::from_str(&conf).unwrap();
            assert_eq!(parsed["queries"].as_object().unwrap().len(), queries.len());
        }
    }

    #[test]
    fn the_five_analytics_are_covered_and_detections_are_differential() {
        let queries = load(&packs().join("queries")).unwrap();
        for (id, name) in [
            ("AN1120", "launchwatch_an1120_launchd_periodic_transfer"),
            ("AN1378", "launchwatch_an1378_fallback_channel"),
            ("AN0743", "launchwatch_an0743_background_mining"),
            ("AN0402", "launchwatch_an0402_custom_crypto_channel"),
            ("AN0082", "launchwatch_an0082_unusual_egress"),
        ] {
            let q = queries
                .iter()
                .find(|q| q.name == name)
                .unwrap_or_else(|| panic!("{name}"));
            assert_eq!((q.mitre.as_str(), q.logging.as_str()), (id, "differential"));
            // Stable columns only: a changing value would log a row on every run.
            for unstable in [
                "last_seen",
                "_per_s",
                "raw_score",
                "uptime",
                "cpu_pct",
                "confidence",
                "duration_band",
                "sessions",
            ] {
                let select = q.sql.split("FROM").next().unwrap();
                assert!(!select.contains(unstable), "{name} selects {unstable}");
            }
        }
    }

    #[test]
    fn the_bundled_pack_is_the_shipped_pack() {
        assert_eq!(bundled(), load(&packs().join("queries")).unwrap());
    }

    #[test]
    fn the_config_health_query_logs_what_is_silenced_differentially() {
        let queries = load(&packs().join("queries")).unwrap();
        let q = queries
            .iter()
            .find(|q| q.name == "launchwatch_status_config")
            .unwrap();
        assert_eq!(q.logging, "differential");
        let select = q.sql.split("FROM").next().unwrap();
        let status = crate::tables::all()
            .into_iter()
            .find(|t| t.name() == "launchwatch_status")
            .unwrap();
        for col in [
            "config_path",
            "config_sha256",
            "config_rejected",
            "allowlist_entries",
        ] {
            assert!(select.contains(col), "selects {col}");
            assert!(status.columns().iter().any(|c| c.name == col), "{col}");
        }
        // Anything that changes on every run would log a row every run.
        for unstable in [
            "uptime",
            "samples",
            "cost",
            "observations",
            "bytes",
            "errors",
            "last_error",
        ] {
            assert!(!select.contains(unstable), "selects {unstable}");
        }
    }

    #[test]
    fn bad_headers_are_named() {
        assert!(parse("x.sql", "-- name: a\n-- description: d\n-- platform: darwin\n-- interval: 0\n-- logging: differential\nSELECT 1;").unwrap_err().contains("interval"));
        assert!(parse("x.sql", "-- nme: a\nSELECT 1;")
            .unwrap_err()
            .contains("unknown header"));
        assert!(parse("x.sql", "-- name: a\n-- description: d\n-- platform: darwin\n-- interval: 60\n-- logging: sometimes\nSELECT 1;").unwrap_err().contains("logging"));
    }

    /// osquery's core schema as `packs/core/osquery-schema.txt` states it: for `platform`, each
    /// table that exists there with its base and platform-only columns.
    fn core_schema(platform: &str) -> Vec<(String, Vec<String>)> {
        let text = std::fs::read_to_string(packs().join("core/osquery-schema.txt")).unwrap();
        let mut tables: Vec<(String, Vec<String>)> = Vec::new();
        for line in text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        {
            let (head, columns) = line.split_once(':').expect("table platforms: columns");
            let (table, platforms) = head.split_once(' ').expect("table platforms");
            let columns = columns.split(',').map(|c| c.trim().to_string());
            if let Some(only) = platforms.strip_prefix('+') {
                if only == platform {
                    let t = tables
                        .iter_mut()
                        .find(|(n, _)| n == table)
                        .expect("base first");
                    t.1.extend(columns);
                }
            } else if platforms.split(',').any(|p| p == platform) {
                tables.push((table.to_string(), columns.collect()));
            }
        }
        tables
    }

    fn core_db(platform: &str) -> rusqlite::Connection {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        for (table, columns) in core_schema(platform) {
            conn.execute_batch(&format!("CREATE TABLE {table} ({});", columns.join(", ")))
                .unwrap();
        }
        conn
    }

    #[test]
    fn every_core_query_prepares_against_osquerys_core_schema() {
        let queries = load(&packs().join(CORE.queries)).unwrap();
        assert!(core_schema("darwin")
            .iter()
            .any(|(t, c)| t == "processes" && c.contains(&"upid BIGINT".to_string())));
        for q in &queries {
            for platform in q.platform.split(',') {
                assert!(
                    matches!(platform, "darwin" | "linux"),
                    "{}: {platform}",
                    q.name
                );
                let conn = core_db(platform);
                let prepared = conn.prepare(&q.sql).map(|_| ());
                assert_eq!(prepared, Ok(()), "{} on {platform}", q.name);
            }
        }
        // The check can fail: a column osquery does not have, a table that is darwin-only.
        let conn = core_db("darwin");
        assert!(conn
            .prepare("SELECT bytes_sent FROM process_open_sockets")
            .is_err());
        assert!(
            conn.prepare("SELECT status FROM socket_events").is_err(),
            "linux-only column"
        );
        assert!(core_db("linux")
            .prepare("SELECT label FROM launchd")
            .is_err());
        assert!(conn.prepare("SELECT * FROM launchwatch_sockets").is_err());
    }

    #[test]
    fn the_core_pack_covers_the_five_analytics_and_says_what_it_misses() {
        let queries = load(&packs().join(CORE.queries)).unwrap();
        for id in ["AN1120", "AN1378", "AN0743", "AN0402", "AN0082"] {
            assert!(
                queries.iter().any(|q| q.mitre == id),
                "no core query for {id}"
            );
        }
        let main = load(&packs().join(MAIN.queries)).unwrap();
        for q in &queries {
            assert!(q.name.starts_with("launchwatch_core_"), "{}", q.name);
            assert!(!main.iter().any(|m| m.name == q.name));
            assert_eq!(q.logging, "differential", "{}", q.name);
            assert!(q.misses.len() > 40, "{}: say what it cannot see", q.name);
            // Stable columns only, as in the main pack: no times, CPU figures or counts.
            let select = q
                .sql
                .rsplit_once("\nFROM")
                .unwrap()
                .0
                .rsplit("SELECT")
                .next()
                .unwrap();
            for unstable in ["time", "count(", "start_time", "uptime", "cpu"] {
                assert!(!select.contains(unstable), "{} selects {unstable}", q.name);
            }
        }
        let conf: serde_json::Value = serde_json::from_str(&osquery_pack(&queries)).unwrap();
        let first = &conf["queries"][&queries[0].name];
        assert!(first["description"]
            .as_str()
            .unwrap()
            .contains("Misses, compared with the launchwatch extension:"));
        assert_eq!(first["removed"], true);
        assert!(fleet_reports(&CORE, &queries).contains("discard_data: true"));
    }

    /// Each core query against a small host in osquery's core tables: it reports the planted
    /// behaviour and not its benign twin.
    #[test]
    fn core_queries_find_the_planted_behaviour_and_not_its_benign_twin() {
        let queries = load(&packs().join(CORE.queries)).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let (old, day) = (now - 7200, now - 86_400);
        let conn = core_db("darwin");
        let host = format!(
            "
            INSERT INTO launchd (path, label, program, program_arguments, start_interval) VALUES
              ('/Library/LaunchAgents/com.evil.beacon.plist', 'com.evil.beacon', '', '/Users/Shared/beacon --quiet', '600'),
              ('/Library/LaunchDaemons/com.evil.fallback.plist', 'com.evil.fallback', '/usr/local/bin/fb', '', ''),
              ('/System/Library/LaunchDaemons/com.apple.x.plist', 'com.apple.x', '/usr/libexec/x', '', '3600'),
              ('/Library/LaunchAgents/com.vendor.update.plist', 'com.vendor.update', '/opt/vendor/update', '', '');
            INSERT INTO processes (pid, name, path, parent, start_time, user_time, system_time) VALUES
              (100, 'beacon', '/Users/Shared/beacon', 1, {old}, 10, 10),
              (101, 'x', '/usr/libexec/x', 1, {old}, 10, 10),
              (102, 'update', '/opt/vendor/update', 1, {old}, 10, 10),
              (200, 'miner', '/Users/Shared/miner', 1, {old}, 5000000, 1000000),
              (201, 'render', '/Applications/Render.app/render', 1, {old}, 5000000, 1000000),
              (202, 'idle', '/Users/Shared/idle', 1, {old}, 1000, 1000),
              (300, 'tool', '/opt/tool/tool', 55, {day}, 1, 1),
              (301, 'ls', '/bin/ls', 55, {day}, 1, 1),
              (302, 'fresh', '/opt/tool/fresh', 55, {now} - 60, 1, 1);
            INSERT INTO process_open_sockets (pid, protocol, remote_address, remote_port, local_port, state) VALUES
              (100, 6, '203.0.113.9', 443, 50001, 'ESTABLISHED'),
              (101, 6, '203.0.113.10', 443, 50002, 'ESTABLISHED'),
              (102, 6, '192.168.1.5', 443, 50003, 'ESTABLISHED'),
              (200, 6, '198.51.100.7', 3333, 50004, 'ESTABLISHED'),
              (201, 6, '198.51.100.8', 443, 50005, 'ESTABLISHED'),
              (202, 6, '198.51.100.9', 3333, 50006, 'ESTABLISHED'),
              (300, 6, '203.0.113.20', 7001, 50007, 'ESTABLISHED'),
              (301, 6, '203.0.113.21', 7001, 50008, 'ESTABLISHED'),
              (302, 6, '203.0.113.22', 443, 50009, 'ESTABLISHED'),
              (300, 6, '10.1.2.3', 7002, 50010, 'ESTABLISHED');
            INSERT INTO signature (path, signed, authority, team_identifier) VALUES
              ('/opt/tool/tool', 1, 'Developer ID Application: Tool Co (ABCDE12345)', 'ABCDE12345'),
              ('/bin/ls', 1, 'Software Signing', ''),
              ('/opt/tool/fresh', 0, '', '');
            INSERT INTO socket_events (action, path, remote_address, remote_port, protocol, time) VALUES
              ('connect', '/Users/Shared/beacon', '203.0.113.9', 443, 6, {now} - 1800),
              ('connect', '/Users/Shared/beacon', '203.0.113.9', 443, 6, {now} - 1200),
              ('connect', '/Users/Shared/beacon', '203.0.113.9', 443, 6, {now} - 600),
              ('connect', '/opt/vendor/update', '203.0.113.30', 443, 6, {now} - 600),
              ('connect', '/opt/vendor/update', '203.0.113.30', 443, 6, {now} - 300),
              ('connect', '/opt/vendor/update', '203.0.113.31', 443, 6, {now} - 100),
              ('connect', '/usr/local/bin/fb', '203.0.113.40', 443, 6, {now} - 800),
              ('connect', '/usr/local/bin/fb', '198.51.100.41', 53, 17, {now} - 100);
            "
        );
        conn.execute_batch(&host).unwrap();
        let found = |name: &str, column: &str| -> Vec<String> {
            let q = queries.iter().find(|q| q.name == name).unwrap();
            let mut stmt = conn.prepare(&q.sql).unwrap();
            let index = stmt.column_index(column).unwrap();
            let mut values: Vec<String> = stmt
                .query_map([], |r| r.get::<_, rusqlite::types::Value>(index))
                .unwrap()
                .map(|v| match v.unwrap() {
                    rusqlite::types::Value::Text(t) => t,
                    other => format!("{other:?}"),
                })
                .collect();
            values.sort();
            values.dedup();
            values
        };
        // Timer jobs: the third-party one with an external connection; not Apple's, not a job
        // without a timer, not a private destination.
        assert_eq!(
            found("launchwatch_core_an1120_launchd_timer_egress", "label"),
            ["com.evil.beacon"]
        );
        // Three connects to one destination; the updater's two-and-one are not a repeat.
        assert_eq!(
            found("launchwatch_core_an1120_launchd_repeat_connects", "label"),
            ["com.evil.beacon"]
        );
        // Two channels (443/TCP then 53/UDP); the updater stays on 443.
        assert_eq!(
            found(
                "launchwatch_core_an1378_launchd_multi_channel",
                "remote_address"
            ),
            ["198.51.100.41", "203.0.113.40"]
        );
        // Hot and on a pool port; not hot on 443, not idle on a pool port.
        assert_eq!(
            found("launchwatch_core_an0743_background_mining", "path"),
            ["/Users/Shared/miner"]
        );
        // Non-Apple on an odd port to an external address; not Apple's ls, not 443, not 10/8.
        assert_eq!(
            found(
                "launchwatch_core_an0402_unsigned_nonstandard_port",
                "remote_address"
            ),
            ["203.0.113.20"]
        );
        // Non-Apple, running for an hour or more; the minute-old unsigned process waits.
        assert_eq!(
            found(
                "launchwatch_core_an0082_unsigned_long_lived_egress",
                "remote_address"
            ),
            ["203.0.113.20"]
        );
    }
}
