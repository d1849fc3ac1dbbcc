//! The query pack: one `.sql` file per query under `packs/queries/`, with a header of
//! `-- key: value` lines (name, mitre, description, platform, interval, logging), rendered as
//! an osquery pack (`packs/launchwatch.conf`) and Fleet GitOps reports
//! (`packs/fleet/launchwatch.yml`). A test fails when the rendered files drift from the sources.

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
    pub sql: String,
}

/// Parses one source file; the error names the file and what is missing.
pub fn parse(file: &str, text: &str) -> Result<PackQuery, String> {
    let mut q = PackQuery {
        name: String::new(),
        mitre: String::new(),
        description: String::new(),
        platform: String::new(),
        interval: 0,
        logging: String::new(),
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
    ("status.sql", include_str!("../../packs/queries/status.sql")),
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
            json(&q.description),
            json(&format!("MITRE ATT&CK analytic {}", q.mitre)),
            if i + 1 < queries.len() { "," } else { "" }
        );
    }
    out.push_str("  }\n}\n");
    out
}

/// Fleet GitOps `reports:` (every string JSON-quoted, which YAML reads as-is).
pub fn fleet_reports(queries: &[PackQuery]) -> String {
    let mut out = String::from("# Generated from packs/queries/*.sql by `launchwatch gen-packs packs`; do not edit.\nreports:\n");
    for q in queries {
        let _ = write!(
            out,
            "  - name: {}\n    description: {}\n    query: {}\n    platform: {}\n    interval: {}\n    automations_enabled: true\n    logging: {}\n    observer_can_run: false\n    discard_data: {}\n",
            json(&q.name),
            json(&q.description),
            json(&q.sql),
            json(&q.platform),
            q.interval,
            q.logging,
            q.logging != "snapshot"
        );
    }
    out
}

/// Writes both renderings under `packs_dir`.
pub fn write_all(packs_dir: &Path) -> Result<(), String> {
    let queries = load(&packs_dir.join("queries"))?;
    std::fs::create_dir_all(packs_dir.join("fleet")).map_err(|e| e.to_string())?;
    std::fs::write(packs_dir.join("launchwatch.conf"), osquery_pack(&queries))
        .map_err(|e| e.to_string())?;
    std::fs::write(
        packs_dir.join("fleet/launchwatch.yml"),
        fleet_reports(&queries),
    )
    .map_err(|e| e.to_string())
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
        let queries = load(&packs().join("queries")).unwrap();
        let conf = std::fs::read_to_string(packs().join("launchwatch.conf")).unwrap_or_default();
        let fleet =
            std::fs::read_to_string(packs().join("fleet/launchwatch.yml")).unwrap_or_default();
        assert!(
            conf == osquery_pack(&queries) && fleet == fleet_reports(&queries),
            "packs drifted: run `cargo run -p launchwatch -- gen-packs packs`"
        );
        let parsed: serde_json::Value = serde_json::from_str(&conf).unwrap();
        assert_eq!(parsed["queries"].as_object().unwrap().len(), queries.len());
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
    fn bad_headers_are_named() {
        assert!(parse("x.sql", "-- name: a\n-- description: d\n-- platform: darwin\n-- interval: 0\n-- logging: differential\nSELECT 1;").unwrap_err().contains("interval"));
        assert!(parse("x.sql", "-- nme: a\nSELECT 1;")
            .unwrap_err()
            .contains("unknown header"));
        assert!(parse("x.sql", "-- name: a\n-- description: d\n-- platform: darwin\n-- interval: 60\n-- logging: sometimes\nSELECT 1;").unwrap_err().contains("logging"));
    }
}
