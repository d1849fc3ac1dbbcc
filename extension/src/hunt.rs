//! `launchwatch hunt`: every detection of the bundled pack, run once with its shipped SQL
//! verbatim (what `osqueryi --pack` would return), each finding joined with the analytic
//! table's own reasons — scores, period, signer, launchd job and plist — for triage.

use rusqlite::types::Value as SqlValue;
use rusqlite::Connection;

use launchwatch_tables::pack::{bundled, PackQuery};

use crate::standalone::{run_sql, sql_error};

/// Extra columns per analytic, looked up with the finding's own columns as `:name` parameters.
fn reasons_sql(mitre: &str) -> Option<&'static str> {
    Some(match mitre {
        "AN1120" => {
            "SELECT b.beacon_score, b.raw_score, b.context, b.period_seconds, b.dispersion, b.sessions,
                    b.confidence, d.is_new AS new_destination, d.first_seen AS destination_first_seen
             FROM launchwatch_beacons AS b
             LEFT JOIN launchwatch_destinations AS d
               ON d.identity = b.identity AND d.remote = b.remote AND d.remote_port = b.remote_port AND d.protocol = b.protocol
             WHERE b.identity = :identity AND b.remote = :remote AND b.remote_port = :remote_port AND b.protocol = :protocol"
        }
        "AN1378" => {
            "SELECT score, period_seconds, primary_silent_since, fallback_first_seen
             FROM launchwatch_fallbacks
             WHERE identity = :identity AND primary_remote = :primary_remote
               AND fallback_remote = :fallback_remote AND fallback_protocol = :fallback_protocol"
        }
        "AN0743" => {
            "SELECT c.cpu_pct_5m, c.cpu_pct_15m, c.high_cpu_seconds, c.window_seconds,
                    (SELECT group_concat(DISTINCT p.payload_class) FROM launchwatch_payloads AS p WHERE p.pid = c.pid) AS payload_classes
             FROM launchwatch_process_cpu AS c WHERE c.pid = :pid"
        }
        "AN0402" => {
            "SELECT payload_class, entropy, expected_entropy, bytes_seen, direction
             FROM launchwatch_payloads
             WHERE path = :path AND remote_address = :remote_address AND remote_port = :remote_port AND protocol = :protocol
             LIMIT 1"
        }
        "AN0082" => {
            "SELECT egress_score, duration_score, volume_score, bytes_sent, bytes_received, upload_ratio,
                    longest_flow_seconds, bytes_sent_per_hour_z, flows
             FROM launchwatch_egress
             WHERE identity = :identity AND remote = :remote AND remote_port = :remote_port AND protocol = :protocol"
        }
        _ => return None,
    })
}

/// Who signed the program and which launchd job (plist) starts it: asked for every finding.
const SIGNER_SQL: &str = "SELECT signer_class AS signer, team_id, identifier AS signing_identifier
     FROM launchwatch_signing WHERE path = :path";
const JOB_SQL: &str =
    "SELECT label AS job, path AS plist, domain AS job_domain, schedule_kind, user_writable
     FROM launchwatch_launchd WHERE label = :launchd_label OR program = :path
     ORDER BY label = :launchd_label DESC LIMIT 1";

pub struct Finding {
    pub columns: Vec<(String, String)>,
    pub reasons: Vec<(String, String)>,
}

pub struct Detection {
    pub query: PackQuery,
    pub findings: Vec<Finding>,
}

/// Runs every detection (status is not one) once on `conn`.
pub fn run(conn: &Connection) -> Result<Vec<Detection>, String> {
    let mut out = Vec::new();
    let mut queries: Vec<PackQuery> = bundled()
        .into_iter()
        .filter(|q| q.mitre != "none")
        .collect();
    // The analytics' usual order (README, pack): beacons first, egress last.
    let rank = |m: &str| {
        ["AN1120", "AN1378", "AN0743", "AN0402", "AN0082"]
            .iter()
            .position(|x| *x == m)
            .unwrap_or(usize::MAX)
    };
    queries.sort_by_key(|q| (rank(&q.mitre), q.name.clone()));
    for query in queries {
        let rs = run_sql(conn, &query.sql).map_err(|e| format!("{}: {e}", query.name))?;
        let mut findings = Vec::new();
        for row in &rs.rows {
            let columns: Vec<(String, String)> = rs
                .columns
                .iter()
                .zip(row)
                .map(|(c, v)| (c.clone(), v.clone().unwrap_or_default()))
                .collect();
            let mut reasons = Vec::new();
            for sql in reasons_sql(&query.mitre)
                .into_iter()
                .chain([SIGNER_SQL, JOB_SQL])
            {
                let extra = lookup(conn, sql, &columns)
                    .map_err(|e| format!("{}: reasons: {e}", query.name))?;
                for (c, v) in extra {
                    if !columns.iter().any(|(k, _)| *k == c)
                        && !reasons.iter().any(|(k, _): &(String, String)| *k == c)
                    {
                        reasons.push((c, v));
                    }
                }
            }
            findings.push(Finding { columns, reasons });
        }
        out.push(Detection { query, findings });
    }
    Ok(out)
}

/// The first row of `sql` with `:name` bound to the finding's column `name` (NULL when the
/// finding has no such column); empty when nothing matches.
fn lookup(
    conn: &Connection,
    sql: &str,
    finding: &[(String, String)],
) -> Result<Vec<(String, String)>, String> {
    let mut stmt = conn.prepare(sql).map_err(|e| sql_error(&e))?;
    for i in 1..=stmt.parameter_count() {
        let name = stmt
            .parameter_name(i)
            .unwrap_or_default()
            .trim_start_matches(':')
            .to_string();
        let value = match finding.iter().find(|(c, _)| *c == name) {
            None => SqlValue::Null,
            Some((c, v)) if matches!(c.as_str(), "pid" | "remote_port") => {
                v.parse::<i64>().map_or(SqlValue::Null, SqlValue::Integer)
            }
            Some((_, v)) => SqlValue::Text(v.clone()),
        };
        stmt.raw_bind_parameter(i, value)
            .map_err(|e| sql_error(&e))?;
    }
    let names: Vec<String> = stmt.column_names().into_iter().map(String::from).collect();
    let mut rows = stmt.raw_query();
    let Some(row) = rows.next().map_err(|e| sql_error(&e))? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (i, name) in names.into_iter().enumerate() {
        let v = crate::standalone::cell(row.get_ref(i).map_err(|e| sql_error(&e))?);
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            out.push((name, v));
        }
    }
    Ok(out)
}

pub fn to_text(detections: &[Detection]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let total: usize = detections.iter().map(|d| d.findings.len()).sum();
    for d in detections {
        let q = &d.query;
        let _ = writeln!(
            out,
            "{} {} — {} finding{}",
            q.mitre,
            q.name,
            d.findings.len(),
            if d.findings.len() == 1 { "" } else { "s" }
        );
        let _ = writeln!(out, "  {}", q.description);
        for f in &d.findings {
            let pairs = |kv: &[(String, String)]| {
                kv.iter()
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(k, v)| format!("{k}={}", short(v)))
                    .collect::<Vec<_>>()
                    .join("  ")
            };
            let _ = writeln!(out, "  - finding: {}", pairs(&f.columns));
            let _ = writeln!(out, "    reasons: {}", pairs(&f.reasons));
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "{total} finding{} from {} detections of the bundled pack",
        if total == 1 { "" } else { "s" },
        detections.len()
    );
    out
}

/// A double shortened for reading (three decimals at most); anything else as it is. `--json`
/// keeps full values.
fn short(v: &str) -> String {
    match v.parse::<f64>() {
        Ok(x) if v.contains('.') && !v.contains('e') => {
            let s = format!("{x:.3}");
            let s = s.trim_end_matches('0');
            if s.ends_with('.') {
                format!("{s}0")
            } else {
                s.to_string()
            }
        }
        _ => v.to_string(),
    }
}

pub fn to_json(detections: &[Detection]) -> String {
    let obj = |kv: &[(String, String)]| {
        serde_json::Value::Object(
            kv.iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect(),
        )
    };
    let v: Vec<serde_json::Value> = detections
        .iter()
        .map(|d| {
            serde_json::json!({
                "mitre": d.query.mitre,
                "query": d.query.name,
                "description": d.query.description,
                "findings": d.findings.iter().map(|f| serde_json::json!({
                    "finding": obj(&f.columns),
                    "reasons": obj(&f.reasons),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut s = serde_json::to_string_pretty(&v).expect("JSON values serialise");
    s.push('\n');
    s
}
