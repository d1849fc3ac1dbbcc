//! `launchwatch_egress`: long-lived or heavy uploads per (program identity, destination),
//! external destinations only (AN0082). L scores cumulative duration on RITA's long-connection
//! buckets; V scores the heaviest of this and the last hour's bytes out against the identity's own hourly history (robust
//! z) with absolute floors; N scores an unsigned or ad-hoc program's first heavy upload to a
//! destination it never used before, which needs no baseline (a new implant has none); the
//! upload ratio boosts exfiltration-shaped traffic; the signer class is the context
//! (Apple-signed code counts for a fifth).

use std::collections::{BTreeSet, HashMap};

use crate::analytics::history::{flows, signers};
use crate::analytics::signer_multiplier;
use crate::analytics::stats::{clamp01, mad, median};
use crate::env::TableEnv;
use crate::framework::column::{bigint, double, integer, text};
use crate::framework::{Column, QueryContext, Row, Table, TableError, Value};
use crate::tables::beacons::by_key;

pub struct Egress;

const COLUMNS: &[Column] = &[
    text("path", "Program path"),
    text("identity", "Program identity").index(),
    text("signer_class", "Signer class of the program"),
    text("parent_path", "Executable of the process that started the program's latest process seen on a connection (triage context; a path, never a pid, so it holds across samples)"),
    text("parent_name", "That parent's process name"),
    text("remote", "Destination key").index(),
    integer("remote_port", "Remote port"),
    text("protocol", "tcp or udp"),
    bigint("flows", "Connections in the window"),
    double("total_duration_seconds", "Cumulative duration of the connections (RITA's long-connection measure)"),
    double("longest_flow_seconds", "Longest single connection"),
    text("duration_band", "Longest connection's band: <10m, 10m, 30m, 1h, 12h, 24h, 3d (Zeek long-connection thresholds)"),
    bigint("bytes_sent", "Bytes out in the window (kernel counting, see launchwatch_sockets)"),
    bigint("bytes_received", "Bytes in in the window"),
    double("upload_ratio", "bytes_sent / (bytes_sent + bytes_received)"),
    double("bytes_sent_per_hour_z", "Robust z, (x − median)/max(1.4826·MAD, 256 KiB), of the heavier of this hour's and the last hour's bytes out (the pack runs hourly, so each hour is judged whole at least once) against the identity's older hourly history (7 days); NULL with under 24 hours of history"),
    double("duration_score", "L: 0 under 1 h cumulative, 0.2→0.8 over 1–12 h"),
    double("volume_score", "V: clamp((z − 3)/5), at least 0.5 from 25 MB/h and 1 from 500 MB/h; times this destination's share of the program's top destination's bytes out"),
    integer("new_destination", "1 when the program's first contact with this destination (any port, from the long-lived summaries) falls inside the window"),
    double("first_upload_score", "N: for an unsigned, ad-hoc or invalidly signed program and a new destination, bytes out in the window / 1 GB, at most 1; else 0. Needs no history"),
    double("egress_score", "max(L, V, N) × 1.2 when upload_ratio ≥ 0.8, × signer context, clamped to [0, 1]"),
    integer("allowlisted", "1 when the config's [allowlist] names this path, identity, destination or launchd label"),
];

/// RITA-style bucketing of cumulative duration (base 1 h, low 4 h, medium 8 h, high 12 h).
pub fn duration_score(total: f64) -> f64 {
    let h = total / 3600.0;
    let lerp = |x: f64, x0: f64, x1: f64, y0: f64, y1: f64| y0 + (y1 - y0) * ((x - x0) / (x1 - x0));
    match h {
        h if h < 1.0 => 0.0,
        h if h < 4.0 => lerp(h, 1.0, 4.0, 0.2, 0.4),
        h if h < 8.0 => lerp(h, 4.0, 8.0, 0.4, 0.6),
        h if h < 12.0 => lerp(h, 8.0, 12.0, 0.6, 0.8),
        _ => 0.8,
    }
}

/// Volume score from the robust z and the absolute floors.
pub fn volume_score(z: Option<f64>, bytes_this_hour: f64) -> f64 {
    let mut v = z.map_or(0.0, |z| clamp01((z - 3.0) / 5.0));
    if bytes_this_hour >= 25e6 {
        v = v.max(0.5);
    }
    if bytes_this_hour >= 500e6 {
        v = 1.0;
    }
    v
}

/// Bytes out to a new destination at which an unsigned or ad-hoc program's first upload scores 1.
pub const FIRST_UPLOAD_FULL_BYTES: f64 = 1e9;

/// N: a first heavy upload by code nobody vouches for, scored on its size alone.
pub fn first_upload_score(signer_class: &str, new_destination: bool, bytes_sent: f64) -> f64 {
    if !new_destination || !matches!(signer_class, "unsigned" | "adhoc" | "invalid") {
        return 0.0;
    }
    clamp01(bytes_sent / FIRST_UPLOAD_FULL_BYTES)
}

/// The smallest spread the robust z divides by: a program that usually sends nothing is not
/// "a billion sigmas" out because it sent 2 KB (256 KiB an hour).
pub const MIN_HOURLY_SCALE: f64 = 262_144.0;

/// Robust z of `x` against `history`: (x − median) / max(1.4826·MAD, 256 KiB). `None` with
/// under 24 hours of history.
pub fn robust_z(x: f64, history: &[f64]) -> Option<f64> {
    if history.len() < 24 {
        return None;
    }
    let m = median(history)?;
    let s = (1.4826 * mad(history)?).max(MIN_HOURLY_SCALE);
    Some((x - m) / s)
}

fn band(seconds: f64) -> &'static str {
    match seconds {
        s if s >= 3.0 * 86400.0 => "3d",
        s if s >= 86400.0 => "24h",
        s if s >= 12.0 * 3600.0 => "12h",
        s if s >= 3600.0 => "1h",
        s if s >= 1800.0 => "30m",
        s if s >= 600.0 => "10m",
        _ => "<10m",
    }
}

impl Table for Egress {
    fn name(&self) -> &'static str {
        "launchwatch_egress"
    }
    fn description(&self) -> &'static str {
        "Long-lived and heavy egress per (program identity, external destination), scored against the program's own hourly history and its signer."
    }
    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn generate(&self, env: &TableEnv, ctx: &QueryContext) -> Result<Vec<Row>, TableError> {
        let a = &env.config.analytics;
        let now = env.now();
        let since = now - a.window_hours * 3600.0;
        let all = flows(env, since)?;
        // Hourly bytes out per identity over the baseline, from the long-lived summary.
        let hourly: Vec<(String, i64, f64)> = env.store.read(|c| {
            let mut stmt = c.prepare(
                "SELECT path, hour_start, bytes_sent FROM hourly_bytes WHERE hour_start >= ?1",
            )?;
            let rows = stmt.query_map([now - a.egress_baseline_days * 86400.0], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as f64))
            })?;
            rows.collect()
        })?;
        // First contact per (path, destination), from the summaries that outlive raw flows.
        let contacts: Vec<(String, String, f64)> = env.store.read(|c| {
            let mut stmt =
                c.prepare("SELECT path, remote, min(first_seen) FROM destination_summary GROUP BY path, remote")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect()
        })?;
        let mut paths: BTreeSet<String> = hourly.iter().map(|h| h.0.clone()).collect();
        paths.extend(contacts.iter().map(|c| c.0.clone()));
        let signer_of = signers(env, &paths);
        let mut per_identity: HashMap<String, std::collections::BTreeMap<i64, f64>> =
            HashMap::new();
        for (path, hour, bytes) in hourly {
            let id = signer_of
                .get(&path)
                .map(|s| s.identity.clone())
                .unwrap_or(path);
            *per_identity
                .entry(id)
                .or_default()
                .entry(hour)
                .or_insert(0.0) += bytes;
        }
        let mut first_contact: HashMap<(String, String), f64> = HashMap::new();
        for (path, remote, first) in contacts {
            let id = signer_of
                .get(&path)
                .map(|s| s.identity.clone())
                .unwrap_or(path);
            let is_ip = remote.parse::<std::net::IpAddr>().is_ok();
            let key =
                crate::analytics::destination_key((!is_ip).then_some(remote.as_str()), &remote);
            let e = first_contact.entry((id, key)).or_insert(first);
            *e = e.min(first);
        }
        let this_hour = (now / 3600.0).floor() as i64 * 3600;
        let identities = ctx.equals("identity");
        let mut rows = Vec::new();
        let mut parents = crate::analytics::parents::ByProgram::default();
        let keys = by_key(&all, false);
        // The hour's volume is the program's; a destination gets it in proportion to what it
        // carried, so the heavy destination scores and the others do not inherit it.
        let mut top_sent: HashMap<String, f64> = HashMap::new();
        for ((identity, _, _, _), fl) in &keys {
            let sent: f64 = fl.iter().map(|f| f.bytes_sent).sum();
            let e = top_sent.entry(identity.clone()).or_insert(0.0);
            *e = e.max(sent);
        }
        // External only, whatever analytics.include_internal says: egress means leaving.
        for ((identity, remote, port, protocol), fl) in keys {
            if !identities.is_empty() && !identities.contains(&identity.as_str()) {
                continue;
            }
            // Cumulative time inside the window; the longest flow is reported whole.
            let total: f64 = fl
                .iter()
                .map(|f| (f.end.min(now) - f.start.max(since)).max(0.0))
                .sum();
            let longest = fl.iter().map(|f| f.end - f.start).fold(0.0, f64::max);
            let sent: f64 = fl.iter().map(|f| f.bytes_sent).sum();
            let received: f64 = fl.iter().map(|f| f.bytes_received).sum();
            let ratio = if sent + received > 0.0 {
                sent / (sent + received)
            } else {
                0.0
            };
            let hours = per_identity.get(&identity);
            // The current hour is partial when the query runs: an upload that filled the last
            // hour between two hourly runs would otherwise never be judged.
            let last_hour = this_hour - 3600;
            let current = hours
                .map(|h| {
                    let at = |k| h.get(&k).copied().unwrap_or(0.0);
                    at(this_hour).max(at(last_hour))
                })
                .unwrap_or(0.0);
            let history: Vec<f64> = hours
                .map(|h| {
                    h.iter()
                        .filter(|(k, _)| **k < last_hour)
                        .map(|(_, v)| *v)
                        .collect()
                })
                .unwrap_or_default();
            let z = robust_z(current, &history);
            let l = duration_score(total);
            let share = top_sent
                .get(&identity)
                .filter(|t| **t > 0.0)
                .map_or(0.0, |t| sent / t);
            let v = volume_score(z, current) * share;
            let last = fl[fl.len() - 1];
            let first_seen = first_contact
                .get(&(identity.clone(), remote.clone()))
                .copied()
                .unwrap_or(fl[0].start);
            let new_destination = first_seen >= since;
            let n = first_upload_score(&last.signer_class, new_destination, sent);
            let boost = if ratio >= 0.8 { 1.2 } else { 1.0 };
            let score = clamp01(
                l.max(v).max(n) * boost * signer_multiplier(&last.signer_class, last.notarized),
            );
            let [parent_path, parent_name] = parents.get(env, &last.path)?.values();
            rows.push(vec![
                Value::from(last.path.as_str()),
                Value::from(identity.as_str()),
                Value::from(last.signer_class.as_str()),
                parent_path,
                parent_name,
                Value::from(remote.as_str()),
                Value::from(port),
                Value::from(protocol.as_str()),
                Value::from(fl.len() as i64),
                Value::Double(total),
                Value::Double(longest),
                Value::from(band(longest)),
                Value::from(sent as i64),
                Value::from(received as i64),
                Value::Double(ratio),
                Value::from(z),
                Value::Double(l),
                Value::Double(v),
                Value::from(new_destination),
                Value::Double(n),
                Value::Double(score),
                Value::from(env.config.allowlist.matches(
                    &last.path,
                    &identity,
                    &remote,
                    last.launchd_label.as_deref(),
                )),
            ]);
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_buckets_follow_rita() {
        assert_eq!(duration_score(3599.0), 0.0);
        assert!((duration_score(3600.0) - 0.2).abs() < 1e-12);
        assert!((duration_score(6.0 * 3600.0) - 0.5).abs() < 1e-12);
        assert_eq!(duration_score(13.0 * 3600.0), 0.8);
    }

    #[test]
    fn volume_uses_robust_z_and_floors() {
        let history: Vec<f64> = (0..48).map(|i| 1000.0 + (i % 5) as f64 * 10.0).collect();
        // A flat history: 2 KB more is nothing; 60 MB more is far out.
        assert!(robust_z(3000.0, &history).unwrap() < 0.01);
        let z = robust_z(60e6, &history).unwrap();
        assert!(z > 200.0, "{z}");
        assert_eq!(volume_score(Some(z), 60e6), 1.0);
        assert_eq!(volume_score(Some(0.5), 30e6), 0.5, "25 MB/h floor");
        assert_eq!(volume_score(None, 600e6), 1.0);
        assert_eq!(
            robust_z(1.0, &history[..10]),
            None,
            "under 24 hours of history"
        );
    }

    #[test]
    fn a_first_heavy_upload_needs_no_history_but_a_new_destination_and_no_vouching_signer() {
        assert_eq!(first_upload_score("unsigned", true, 4e9), 1.0);
        assert!((first_upload_score("adhoc", true, 5e8) - 0.5).abs() < 1e-12);
        assert_eq!(
            first_upload_score("unsigned", false, 4e9),
            0.0,
            "known destination"
        );
        assert_eq!(first_upload_score("developer_id", true, 4e9), 0.0);
        assert_eq!(first_upload_score("apple", true, 4e9), 0.0);
    }
}
