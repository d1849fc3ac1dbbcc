//! Flow history as the analytic tables need it: each flow with its program identity, signer
//! class and destination key, and the hours in which the host had any traffic.

use std::collections::{BTreeSet, HashMap};

use super::{destination_key, program_identity};
use crate::env::TableEnv;
use crate::net::scope;
use crate::tables::signing::static_facts;

#[derive(Debug, Clone)]
pub struct Flow {
    /// The store's row id: joins the flow's counter readings (`flow_readings`).
    pub id: i64,
    pub path: String,
    pub identity: String,
    pub signer_class: String,
    pub notarized: bool,
    pub launchd_label: Option<String>,
    pub protocol: String,
    pub remote: String,
    /// The full name the destination was resolved from (DNS answer, else the flow's own).
    pub remote_name: Option<String>,
    pub remote_address: String,
    pub remote_port: i64,
    pub scope: &'static str,
    pub start: f64,
    pub end: f64,
    pub bytes_sent: f64,
    pub bytes_received: f64,
    /// How the label was learned (spec.md `label_source`).
    pub label_source: Option<String>,
    /// The job behind the flow (spec.md `job_class`), `none` without one.
    pub job_class: &'static str,
    /// The program is an interpreter or downloader: the job is the identity.
    pub interpreter: bool,
    /// The job wears an Apple label outside Apple's directories.
    pub masquerading: bool,
    /// The job's launchd timer may explain a period (root-only job, Apple or Developer ID
    /// program, not an interpreter), and its period.
    pub explainable_period: Option<i64>,
    /// The job's plist or unit file.
    pub job_file: Option<String>,
}

impl Flow {
    /// The connection as the beacon scorer sees it.
    pub fn conn(&self) -> super::beacon::Conn {
        super::beacon::Conn {
            start: self.start,
            bytes_out: self.bytes_sent,
            bytes_in: self.bytes_received,
        }
    }
}

/// Who signed a path, as best this host can tell: a signing observation (replayed, or what the
/// sampler got from Security.framework on a live Mac), else the file's own bytes, else unknown.
#[derive(Debug, Clone)]
pub struct Signer {
    pub class: String,
    pub notarized: bool,
    pub identity: String,
    /// The code directory hash, when the file was read here.
    pub cdhash: Option<String>,
}

pub fn signers(env: &TableEnv, paths: &BTreeSet<String>) -> HashMap<String, Signer> {
    let observed: HashMap<String, (String, Option<String>, Option<String>, bool)> = env
        .store
        .read(|c| {
            let mut stmt = c.prepare(
                "SELECT path, signer_class, team_id, identifier, ifnull(notarized, 0) FROM signing",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    (r.get(1)?, r.get(2)?, r.get(3)?, r.get::<_, i64>(4)? != 0),
                ))
            })?;
            rows.collect()
        })
        .unwrap_or_default();
    paths
        .iter()
        .map(|p| {
            let signer = if let Some((class, team, ident, notarized)) = observed.get(p) {
                Signer {
                    identity: program_identity(
                        p,
                        Some(class),
                        team.as_deref(),
                        ident.as_deref(),
                        None,
                    ),
                    class: class.clone(),
                    notarized: *notarized,
                    cdhash: None,
                }
            } else {
                let facts = env.binaries.get(&env.root, p);
                match facts.as_ref() {
                    Ok(b) => {
                        // Verified facts arrive as signing observations (the sampler asks the
                        // platform); analytics read only the store and the bytes.
                        let f = static_facts(b);
                        Signer {
                            identity: program_identity(
                                p,
                                Some(&f.signer_class),
                                f.team_id.as_deref(),
                                f.identifier.as_deref(),
                                f.cdhash.as_deref(),
                            ),
                            cdhash: f.cdhash.clone(),
                            class: f.signer_class,
                            notarized: f.notarized.unwrap_or(false),
                        }
                    }
                    Err(_) => Signer {
                        identity: p.clone(),
                        class: "unknown".into(),
                        notarized: false,
                        cdhash: None,
                    },
                }
            };
            (p.clone(), signer)
        })
        .collect()
}

/// One flow row as read: id, path, label, protocol, address, port, name, start, end, last seen,
/// bytes sent, bytes received, label source.
type RawFlow = (
    i64,
    String,
    Option<String>,
    String,
    String,
    i64,
    Option<String>,
    f64,
    Option<f64>,
    f64,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

/// Flows active at or after `since`: started in the window, still open, or last seen in it
/// (a tunnel opened before the window still counts for egress). All scopes; callers filter.
pub fn flows(env: &TableEnv, since: f64) -> Result<Vec<Flow>, crate::store::StoreError> {
    let raw: Vec<RawFlow> = env.store.read(|c| {
        let mut stmt = c.prepare(
            &format!(
                "SELECT f.id, f.path, f.launchd_label, f.protocol, f.remote_address, f.remote_port, {},
                        f.start, f.end, f.last_seen, f.bytes_sent, f.bytes_received, f.label_source
                 FROM flows f WHERE f.start >= ?1 OR f.last_seen >= ?1 OR f.end IS NULL ORDER BY f.start",
                super::FLOW_NAME_SQL
            ),
        )?;
        let rows = stmt.query_map([since], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?, r.get(10)?, r.get(11)?, r.get(12)?))
        })?;
        rows.collect()
    })?;
    let paths: BTreeSet<String> = raw.iter().map(|r| r.1.clone()).collect();
    let signers = signers(env, &paths);
    let jobs = crate::jobs::inventory(&env.root, env.now() as i64);
    let internal = env.config.internal_networks();
    Ok(raw
        .into_iter()
        .map(
            |(
                id,
                path,
                label,
                protocol,
                remote_address,
                remote_port,
                name,
                start,
                end,
                last_seen,
                sent,
                received,
                label_source,
            )| {
                let s = signers.get(&path).cloned().unwrap_or(Signer {
                    class: "unknown".into(),
                    notarized: false,
                    identity: path.clone(),
                    cdhash: None,
                });
                let job = label.as_deref().and_then(|l| jobs.get(l));
                let interpreter = crate::jobs::is_interpreter(&path);
                // An interpreter run by a job is that job: its label and what it runs.
                let identity = match (&label, interpreter) {
                    (Some(l), true) if crate::attribution::is_job_label(l) => {
                        crate::jobs::job_identity(
                            l,
                            job.map(|j| j.arguments.as_slice()).unwrap_or(&[]),
                        )
                    }
                    _ => s.identity,
                };
                Flow {
                    id,
                    identity,
                    job_class: job.map_or("none", |j| j.class(Some(&s.class))),
                    interpreter,
                    masquerading: job.is_some_and(|j| j.masquerading),
                    explainable_period: job
                        .filter(|j| crate::jobs::timer_may_explain(j, &s.class, interpreter))
                        .and_then(|j| j.period),
                    job_file: job.map(|j| j.file.clone()),
                    label_source,
                    signer_class: s.class,
                    notarized: s.notarized,
                    launchd_label: label,
                    remote: destination_key(name.as_deref(), &remote_address),
                    remote_name: name.clone(),
                    scope: scope(&remote_address, &internal),
                    remote_address,
                    remote_port,
                    protocol,
                    start,
                    end: end.unwrap_or(last_seen).max(start),
                    bytes_sent: sent.unwrap_or(0) as f64,
                    bytes_received: received.unwrap_or(0) as f64,
                    path,
                }
            },
        )
        .collect())
}

/// Counter readings of long-lived flows taken at or after `since`, by flow id, ascending.
pub fn flow_readings(
    env: &TableEnv,
    since: f64,
) -> Result<HashMap<i64, Vec<super::beacon::Reading>>, crate::store::StoreError> {
    let rows: Vec<(i64, f64, i64, i64)> = env.store.read(|c| {
        let mut stmt = c.prepare(
            "SELECT flow_id, ts, bytes_sent, bytes_received FROM flow_snapshots WHERE ts >= ?1 ORDER BY flow_id, ts",
        )?;
        let rows = stmt.query_map([since], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        rows.collect()
    })?;
    let mut out: HashMap<i64, Vec<super::beacon::Reading>> = HashMap::new();
    for (id, ts, sent, received) in rows {
        out.entry(id).or_default().push(super::beacon::Reading {
            ts,
            sent: sent as f64,
            received: received as f64,
        });
    }
    Ok(out)
}

/// Hours (epoch / 3600) in which the host started any flow: the hours it was awake and online.
pub fn active_hours(flows: &[Flow]) -> Vec<i64> {
    let set: BTreeSet<i64> = flows
        .iter()
        .map(|f| (f.start / 3600.0).floor() as i64)
        .collect();
    set.into_iter().collect()
}

/// Whether analytics look at this flow: external destinations, plus internal ones when the
/// config asks for them.
pub fn analysed(f: &Flow, include_internal: bool) -> bool {
    match f.scope {
        "external" => true,
        "private" | "link_local" => include_internal,
        _ => false,
    }
}
