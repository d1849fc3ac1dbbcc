//! `launchwatch_beacons`: which programs contact the same destination on a timer (AN1120).
//! One row per (program identity, destination key, port, protocol, check-in kind) over the
//! analysis window — connection starts, or bursts inside one long-lived connection — scored by
//! timing, size and presence (`raw_score`), then by context: signer class, novelty
//! of the destination and whether the job's own launchd timer explains the period.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::analytics::beacon::{in_connection_checkins, score, BeaconScore, Conn, Presence};
use crate::analytics::history::{active_hours, analysed, flow_readings, flows, Flow};
use crate::env::TableEnv;
use crate::framework::column::{bigint, double, integer, text};
use crate::framework::{Column, QueryContext, Row, Table, TableError, Value};
use crate::jobs::{trust_multiplier, Trust};

pub struct Beacons;

const COLUMNS: &[Column] = &[
    text("path", "Program path (the most recent one for this identity)"),
    text("identity", "Program identity: team_id:identifier, the identifier for Apple, else the path (#cdhash when known)").index(),
    text("launchd_label", "launchd job (or systemd unit) the connections came from, inherited by the job's whole process tree"),
    text("label_source", "How the label was learned: launchctl, parent (inherited along the process tree), responsible, cgroup or replay"),
    text("job_class", "The job behind the connections: apple, third_party, user, app_bundle, vendor or none (docs/job-trust.md)"),
    text("job_file", "The job's plist (or systemd unit) path"),
    text("parent_path", "Executable of the process that started the program's latest process seen on a connection (triage context; a path, never a pid, so it holds across samples)"),
    text("parent_name", "That parent's process name"),
    integer("interpreter", "1 when the program is an interpreter or downloader (curl, python3, osascript, sh, …): the job, not the binary's signer, is the identity"),
    integer("masquerading", "1 when the job wears a com.apple. label outside Apple's directories"),
    text("signer_class", "Signer class of the program (launchwatch_signing)"),
    text("remote", "Destination key: registrable domain when a name is known, else the IP").index(),
    text("remote_addresses", "JSON array of the IP addresses seen under this key"),
    integer("remote_port", "Remote port"),
    text("protocol", "tcp or udp"),
    text("checkin_kind", "What was timed: connection (connection starts) or in_connection (bursts of bytes sent inside one long-lived connection, from its counter readings; one row per kind)"),
    bigint("sessions", "Check-ins: connection starts (or bursts inside a connection) within 2 s merged, at most a quarter of the key's rough period"),
    double("period_seconds", "Median interval between sessions"),
    double("dispersion", "MAD / median of the intervals (0 = exact timer; Poisson ≈ 0.69)"),
    double("jitter", "Implied one-sided jitter fraction, 4r/(1+2r)"),
    double("timing_score", "Timing regularity T in [0, 1]"),
    double("size_score", "Payload-size regularity S in [0, 1]"),
    double("presence_score", "Presence over the hours the host was online H in [0, 1]"),
    double("raw_score", "0.6·T + 0.2·S + 0.2·H: behaviour only"),
    double("context", "Product of the context multipliers: the weaker of signer class and job_class, novelty, explained schedule"),
    double("beacon_score", "raw_score × context, clamped to [0, 1]"),
    text("confidence", "low (4–5 sessions) or normal"),
    integer("known_service", "1 when the destination is well-known periodic infrastructure (NTP, push, connectivity and update checks: tables/data/periodic-services.txt and [beacons] known_services), by resolved name and port"),
    integer("explained_by_launchd", "1 when the job's StartInterval or calendar period matches within max(2 s, 5 %); only for root-only jobs running an Apple or Developer ID program that is not an interpreter, else NULL"),
    double("history_days", "Days of connection history the store holds (oldest first contact to now); novelty is neutral while this is below [analytics] baseline_days"),
    bigint("first_seen", "First check-in, Unix epoch"),
    bigint("last_seen", "Last check-in, Unix epoch"),
    integer("allowlisted", "1 when the config's [allowlist] names this path, identity, destination or launchd label (pack queries skip these)"),
];

/// The sessions the beacon and fallback analyses look at: flows that started within the
/// window, and the hours in which the host had any traffic.
pub fn window_flows(env: &TableEnv) -> Result<(Vec<Flow>, Vec<i64>), TableError> {
    let since = env.now() - env.config.analytics.window_hours * 3600.0;
    let all: Vec<Flow> = flows(env, since)?
        .into_iter()
        .filter(|f| f.start >= since)
        .collect();
    let hours = active_hours(&all);
    Ok((all, hours))
}

pub type Key = (String, String, i64, String);

/// Groups analysed flows by (identity, destination key, port, protocol).
pub fn by_key(flows: &[Flow], include_internal: bool) -> BTreeMap<Key, Vec<&Flow>> {
    let mut keys: BTreeMap<Key, Vec<&Flow>> = BTreeMap::new();
    // Sockets whose owner was never learned (a TIME_WAIT first seen) belong to no program.
    for f in flows
        .iter()
        .filter(|f| analysed(f, include_internal) && !f.path.is_empty())
    {
        keys.entry((
            f.identity.clone(),
            f.remote.clone(),
            f.remote_port,
            f.protocol.clone(),
        ))
        .or_default()
        .push(f);
    }
    keys
}

/// First time each (program path, destination key) was seen, from the long-lived summaries.
/// Keyed by path, not identity: a job's identity (label and arguments) is not in the summary,
/// and the first time its program reached a destination is what novelty asks.
pub fn first_seen_by_destination(env: &TableEnv) -> HashMap<(String, String), f64> {
    let rows: Vec<(String, String, f64)> = env
        .store
        .read(|c| {
            let mut stmt = c.prepare("SELECT path, remote, min(first_seen) FROM destination_summary GROUP BY path, remote")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect()
        })
        .unwrap_or_default();
    let mut out: HashMap<(String, String), f64> = HashMap::new();
    for (path, remote, first) in rows {
        let key = crate::analytics::destination_key(
            Some(&remote)
                .filter(|r| r.parse::<std::net::IpAddr>().is_err())
                .map(|s| s.as_str()),
            &remote,
        );
        let e = out.entry((path, key)).or_insert(first);
        *e = e.min(first);
    }
    out
}

/// Days of history the store holds: from the oldest first contact it remembers to `now`.
pub fn history_days(
    first_seen: &HashMap<(String, String), f64>,
    window_start: f64,
    now: f64,
) -> f64 {
    let oldest = first_seen.values().copied().fold(window_start, f64::min);
    ((now - oldest) / 86_400.0).max(0.0)
}

/// The earliest first contact of any of the key's programs with its destination.
pub fn key_first_seen(
    first_seen: &HashMap<(String, String), f64>,
    flows: &[&Flow],
    remote: &str,
) -> Option<f64> {
    let paths: BTreeSet<&str> = flows.iter().map(|f| f.path.as_str()).collect();
    paths
        .into_iter()
        .filter_map(|p| {
            first_seen
                .get(&(p.to_string(), remote.to_string()))
                .copied()
        })
        .reduce(f64::min)
}

impl Table for Beacons {
    fn name(&self) -> &'static str {
        "launchwatch_beacons"
    }
    fn description(&self) -> &'static str {
        "Beaconing per (program identity, destination): timing, size and presence scores with signer, novelty and launchd-schedule context."
    }
    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn generate(&self, env: &TableEnv, ctx: &QueryContext) -> Result<Vec<Row>, TableError> {
        let a = &env.config.analytics;
        let now = env.now();
        let since = now - a.window_hours * 3600.0;
        // Connection starts count from flows that started in the window; check-ins inside a
        // connection from readings in the window, whenever the connection opened.
        let (all, older): (Vec<Flow>, Vec<Flow>) = flows(env, since)?
            .into_iter()
            .partition(|f| f.start >= since);
        let hours = active_hours(&all);
        let readings = flow_readings(env, since)?;
        let long_lived: Vec<Flow> = all
            .iter()
            .chain(&older)
            .filter(|f| readings.contains_key(&f.id))
            .cloned()
            .collect();
        // The host was online whenever a connection's counters moved, too.
        let mut reading_hours: BTreeSet<i64> = hours.iter().copied().collect();
        reading_hours.extend(
            readings
                .values()
                .flatten()
                .map(|r| (r.ts / 3600.0).floor() as i64),
        );
        let reading_hours: Vec<i64> = reading_hours.into_iter().collect();
        let identities = ctx.equals("identity");
        let remotes = ctx.equals("remote");
        let first_seen = first_seen_by_destination(env);
        let window_start = all.iter().map(|f| f.start).fold(now, f64::min);
        let history = history_days(&first_seen, window_start, now);
        let wanted = |(identity, remote, _, _): &Key| {
            (identities.is_empty() || identities.contains(&identity.as_str()))
                && (remotes.is_empty() || remotes.contains(&remote.as_str()))
        };
        let mut scored: BTreeMap<(Key, CheckinKind), Scored<'_>> = BTreeMap::new();
        for (key, fl) in by_key(&all, a.include_internal) {
            if !wanted(&key) {
                continue;
            }
            let conns: Vec<Conn> = fl.iter().map(|f| f.conn()).collect();
            let presence = Presence {
                active_hours: &hours,
            };
            if let Some(s) = score(&conns, &presence, &env.config.beacons) {
                let (first, last) = (fl[0].start, fl[fl.len() - 1].start);
                scored.insert((key, CheckinKind::Connection), (s, fl, first, last));
            }
        }
        for (key, fl) in by_key(&long_lived, a.include_internal) {
            if !wanted(&key) {
                continue;
            }
            let checkins: Vec<Conn> = fl
                .iter()
                .flat_map(|f| in_connection_checkins(readings.get(&f.id).map_or(&[], |r| r)))
                .collect();
            let presence = Presence {
                active_hours: &reading_hours,
            };
            if let Some(s) = score(&checkins, &presence, &env.config.beacons) {
                let first = checkins
                    .iter()
                    .map(|c| c.start)
                    .fold(f64::INFINITY, f64::min);
                let last = checkins
                    .iter()
                    .map(|c| c.start)
                    .fold(f64::NEG_INFINITY, f64::max);
                scored.insert((key, CheckinKind::InConnection), (s, fl, first, last));
            }
        }
        let context = Context {
            env,
            first_seen: &first_seen,
            // Every destination is "new" to a store that is days old: novelty only speaks once
            // the history covers the baseline.
            novelty_known: history >= a.baseline_days,
            services: crate::analytics::beacon::known_services(&env.config.beacons.known_services)
                .map_err(TableError)?,
            history,
        };
        let mut parents = crate::analytics::parents::ByProgram::default();
        let mut rows = Vec::with_capacity(scored.len());
        for ((key, kind), (s, fl, first, last)) in scored {
            let parent = parents.get(env, &fl[fl.len() - 1].path)?.values();
            rows.push(context.row(key, kind, &s, &fl, (first, last), parent));
        }
        Ok(rows)
    }
}

/// A scored key: its score, its flows, and its first and last check-in.
type Scored<'a> = (BeaconScore, Vec<&'a Flow>, f64, f64);

/// What a beacons row timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CheckinKind {
    /// Connection starts.
    Connection,
    /// Bursts of bytes sent inside one long-lived connection (its counter readings).
    InConnection,
}

impl CheckinKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckinKind::Connection => "connection",
            CheckinKind::InConnection => "in_connection",
        }
    }
}

/// What every row's context is computed from.
struct Context<'a> {
    env: &'a TableEnv,
    first_seen: &'a HashMap<(String, String), f64>,
    novelty_known: bool,
    services: Vec<crate::analytics::beacon::KnownService>,
    history: f64,
}

impl Context<'_> {
    fn row(
        &self,
        (identity, remote, port, protocol): Key,
        kind: CheckinKind,
        s: &BeaconScore,
        fl: &[&Flow],
        (first_checkin, last_checkin): (f64, f64),
        parent: [Value; 2],
    ) -> Row {
        let env = self.env;
        let a = &env.config.analytics;
        let now = env.now();
        let last = fl[fl.len() - 1];
        let labelled = fl.iter().rev().find(|f| f.launchd_label.is_some());
        let label = labelled.and_then(|f| f.launchd_label.clone());
        // Only a job nobody but root can change, running an Apple or Developer ID program
        // that is not an interpreter, may explain its period away (docs/job-trust.md).
        let explained = last.explainable_period.map(|p| {
            let p = p as f64;
            (s.period - p).abs() <= (0.05 * p).max(2.0)
        });
        let mut context = trust_multiplier(&Trust {
            signer_class: &last.signer_class,
            notarized: last.notarized,
            job_class: last.job_class,
            interpreter: last.interpreter,
            masquerading: last.masquerading,
        });
        if let Some(first) =
            key_first_seen(self.first_seen, fl, &remote).filter(|_| self.novelty_known)
        {
            let age = now - first;
            if age <= a.new_days * 86400.0 {
                context *= a.new_multiplier;
            } else if age >= a.old_days * 86400.0 {
                context *= a.old_multiplier;
            }
        }
        if explained == Some(true) {
            context *= a.explained_multiplier;
        }
        // Time sync, push channels and connectivity checks are timers by design.
        let known_service = fl
            .iter()
            .rev()
            .find_map(|f| f.remote_name.as_deref())
            .is_some_and(|n| crate::analytics::beacon::is_known_service(&self.services, n, port));
        if known_service {
            context *= crate::analytics::beacon::known_service_multiplier(
                env.config.beacons.known_service_multiplier,
                &last.signer_class,
            );
        }
        let addresses: BTreeSet<&str> = fl.iter().map(|f| f.remote_address.as_str()).collect();
        let allowlisted =
            env.config
                .allowlist
                .matches(&last.path, &identity, &remote, label.as_deref());
        vec![
            Value::from(last.path.as_str()),
            Value::from(identity),
            Value::from(label),
            Value::from(labelled.and_then(|f| f.label_source.clone())),
            Value::from(last.job_class),
            Value::from(last.job_file.clone()),
            parent[0].clone(),
            parent[1].clone(),
            Value::from(last.interpreter),
            Value::from(last.masquerading),
            Value::from(last.signer_class.as_str()),
            Value::from(remote),
            Value::from(serde_json::to_string(&addresses).expect("strings")),
            Value::from(port),
            Value::from(protocol),
            Value::from(kind.as_str()),
            Value::from(s.sessions as i64),
            Value::Double(s.period),
            Value::Double(s.dispersion),
            Value::Double(s.jitter),
            Value::Double(s.timing),
            Value::Double(s.size),
            Value::Double(s.presence),
            Value::Double(s.raw),
            Value::Double(context),
            Value::Double((s.raw * context).clamp(0.0, 1.0)),
            Value::from(if s.low_confidence { "low" } else { "normal" }),
            Value::from(known_service),
            Value::from(explained),
            Value::Double((self.history * 100.0).round() / 100.0),
            Value::from(first_checkin.floor() as i64),
            Value::from(last_checkin.floor() as i64),
            Value::from(allowlisted),
        ]
    }
}
