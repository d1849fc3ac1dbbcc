//! `launchwatch_fallbacks`: an established beacon goes silent while the host is still online,
//! and later the same program reaches a destination or protocol new to it (AN1378). Implants
//! often retry their primary for an hour or more before failing over, so there is no cutoff
//! near the silence: proximity halves with every [`proximity_half_life`] of delay, up to a day.
//! Score F = 0.4·novelty + 0.3·timing similarity + 0.3·proximity (docs/design.md, "Fallback channels").

use std::collections::BTreeMap;

use crate::analytics::beacon::{score, sessionize, Conn, Presence};
use crate::analytics::history::{analysed, Flow};
use crate::analytics::signer_multiplier;
use crate::analytics::stats::{clamp01, median};
use crate::env::TableEnv;
use crate::framework::column::{bigint, double, integer, text};
use crate::framework::{Column, QueryContext, Row, Table, TableError, Value};
use crate::tables::beacons::{by_key, window_flows};

pub struct Fallbacks;

/// How long after the silence onset a new channel can still be the fallback.
pub const FALLBACK_HORIZON_SECONDS: f64 = 86_400.0;

/// Proximity halves every this many seconds of delay: the fallback window, at least an hour.
pub fn proximity_half_life(window: f64) -> f64 {
    window.max(3600.0)
}

/// 1 at (or before) the silence onset, halving with every half-life of delay: a fallback an
/// hour late still counts, one half a day late barely adds to the score.
pub fn proximity(delay_seconds: f64, window: f64) -> f64 {
    clamp01(0.5f64.powf(delay_seconds.max(0.0) / proximity_half_life(window)))
}

const COLUMNS: &[Column] = &[
    text("path", "Program path"),
    text("identity", "Program identity").index(),
    text("launchd_label", "launchd job (or systemd unit)"),
    text("parent_path", "Executable of the process that started the program's latest process seen on a connection (triage context; a path, never a pid, so it holds across samples)"),
    text("parent_name", "That parent's process name"),
    text("primary_remote", "The established beacon's destination key"),
    bigint(
        "primary_silent_since",
        "Last check-in of the primary channel, Unix epoch",
    ),
    text(
        "fallback_remote",
        "The destination key contacted after the silence, new to this program",
    ),
    text("fallback_protocol", "protocol/port of the fallback channel"),
    bigint(
        "fallback_first_seen",
        "First contact with the fallback, Unix epoch",
    ),
    double("period_seconds", "The primary channel's period"),
    double(
        "score",
        "0.4·novelty + 0.3·timing similarity + 0.3·proximity (halving every max(window, 1 h) after the silence onset), × the signer context, in [0, 1]",
    ),
    integer("allowlisted", "1 when the config's [allowlist] names this path, identity, either destination or the label"),
];

impl Table for Fallbacks {
    fn name(&self) -> &'static str {
        "launchwatch_fallbacks"
    }
    fn description(&self) -> &'static str {
        "Fallback channels: an established beacon falls silent while the host stays online and the same program reaches a new destination or protocol."
    }
    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn generate(&self, env: &TableEnv, ctx: &QueryContext) -> Result<Vec<Row>, TableError> {
        let a = &env.config.analytics;
        let now = env.now();
        let (all, hours) = window_flows(env)?;
        let presence = Presence {
            active_hours: &hours,
        };
        let keys = by_key(&all, a.include_internal);
        let identities = ctx.equals("identity");
        // Every (identity, destination key, protocol/port) with its first contact.
        let mut first_contact: BTreeMap<(String, String, String), f64> = BTreeMap::new();
        for f in all.iter().filter(|f| analysed(f, a.include_internal)) {
            let e = first_contact
                .entry((
                    f.identity.clone(),
                    f.remote.clone(),
                    format!("{}/{}", f.protocol, f.remote_port),
                ))
                .or_insert(f.start);
            *e = e.min(f.start);
        }
        let mut rows = Vec::new();
        let mut parents = crate::analytics::parents::ByProgram::default();
        for ((identity, remote, port, protocol), fl) in &keys {
            let primary_proto = format!("{protocol}/{port}");
            if !identities.is_empty() && !identities.contains(&identity.as_str()) {
                continue;
            }
            let conns: Vec<Conn> = fl.iter().map(|f| f.conn()).collect();
            let Some(s) = score(&conns, &presence, &env.config.beacons) else {
                continue;
            };
            if s.raw < a.established_score {
                continue;
            }
            let last_checkin = sessionize(&conns, env.config.beacons.session_gap_seconds)
                .last()
                .map(|c| c.start)
                .unwrap_or(0.0);
            let silence = (a.silence_periods * s.p95_interval).max(a.min_silence_seconds);
            let onset = last_checkin + silence;
            if now < onset {
                continue; // still beating
            }
            // The host must still have been online: other flows after the primary went quiet.
            if !all.iter().any(|f| {
                f.start > last_checkin
                    && f.start <= now
                    && !(f.identity == *identity && f.remote == *remote)
            }) {
                continue;
            }
            let window = (a.window_periods * s.period).max(a.min_window_seconds);
            // A destination key (or protocol/port) this identity first used after the primary's
            // last check-in, up to a day after the silence onset.
            let candidate = first_contact
                .iter()
                .filter(|((id, r, p), first)| {
                    id == identity
                        && (r != remote || *p != primary_proto)
                        && **first > last_checkin
                        && **first <= onset + FALLBACK_HORIZON_SECONDS
                })
                .min_by(|a, b| a.1.total_cmp(b.1));
            let Some(((_, fb_remote, fb_proto), fb_first)) = candidate else {
                continue;
            };
            // A destination the identity used before the silence, on the same protocol and
            // port, is not new; a known destination on a new protocol or port half-counts.
            let used_before = |same_proto: bool| {
                all.iter().any(|f| {
                    f.identity == *identity
                        && f.remote == *fb_remote
                        && f.start <= last_checkin
                        && (!same_proto || format!("{}/{}", f.protocol, f.remote_port) == *fb_proto)
                })
            };
            if used_before(true) {
                continue;
            }
            let novelty = if used_before(false) || fb_remote == remote {
                0.7
            } else {
                1.0
            };
            let fb_flows: Vec<&Flow> = all
                .iter()
                .filter(|f| f.identity == *identity && f.remote == *fb_remote)
                .collect();
            let fb_sessions = sessionize(
                &fb_flows.iter().map(|f| f.conn()).collect::<Vec<_>>(),
                env.config.beacons.session_gap_seconds,
            );
            let timing_similarity = if fb_sessions.len() >= 3 {
                let d: Vec<f64> = fb_sessions
                    .windows(2)
                    .map(|w| w[1].start - w[0].start)
                    .collect();
                median(&d).map_or(0.5, |p_new| {
                    clamp01(1.0 - (p_new - s.period).abs() / s.period)
                })
            } else {
                0.5
            };
            let proximity = proximity(*fb_first - onset, window);
            let last = fl[fl.len() - 1];
            let f = clamp01(
                (0.4 * novelty + 0.3 * timing_similarity + 0.3 * proximity)
                    * signer_multiplier(&last.signer_class, last.notarized),
            );
            let label = fl.iter().rev().find_map(|f| f.launchd_label.clone());
            let allow = &env.config.allowlist;
            let allowlisted = allow.matches(&last.path, identity, remote, label.as_deref())
                || allow.matches(&last.path, identity, fb_remote, label.as_deref());
            let [parent_path, parent_name] = parents.get(env, &last.path)?.values();
            rows.push(vec![
                Value::from(last.path.as_str()),
                Value::from(identity.as_str()),
                Value::from(label),
                parent_path,
                parent_name,
                Value::from(remote.as_str()),
                Value::from(last_checkin.floor() as i64),
                Value::from(fb_remote.as_str()),
                Value::from(fb_proto.as_str()),
                Value::from(fb_first.floor() as i64),
                Value::Double(s.period),
                Value::Double(f),
                Value::from(allowlisted),
            ]);
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proximity_falls_gradually_with_no_cutoff() {
        assert_eq!(proximity(-10.0, 900.0), 1.0);
        assert!((proximity(3600.0, 900.0) - 0.5).abs() < 1e-12);
        assert!((proximity(7200.0, 900.0) - 0.25).abs() < 1e-12);
        let mut last = 1.0;
        for minutes in (5..=720).step_by(5) {
            let p = proximity(minutes as f64 * 60.0, 900.0);
            assert!(p < last && p > 0.0, "{minutes} min: {p}");
            last = p;
        }
    }
}
