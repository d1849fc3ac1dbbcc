//! `launchwatch_destinations`: first and last contact per (program identity, destination)
//! from the long-lived summaries (30 days by default), so novelty survives raw retention.

use std::collections::{BTreeMap, BTreeSet};

use crate::analytics::destination_key;
use crate::analytics::history::signers;
use crate::env::TableEnv;
use crate::framework::column::{bigint, integer, text};
use crate::framework::{Column, QueryContext, Row, Table, TableError, Value};
use crate::net::scope;

pub struct Destinations;

const COLUMNS: &[Column] = &[
    text("path", "Program path (one of them when an identity has several)"),
    text("identity", "Program identity").index(),
    text("remote", "Destination key: registrable domain when a name is known, else the IP").index(),
    integer("remote_port", "Remote port"),
    text("protocol", "tcp or udp"),
    bigint("first_seen", "First contact, Unix epoch"),
    bigint("last_seen", "Latest contact, Unix epoch"),
    bigint("flows", "Connections counted"),
    integer("is_new", "1 when first seen within analytics.baseline_days (default 14) of now"),
    bigint("baseline_seconds", "How much history this identity really has (now − its earliest contact): is_new means little when this is short"),
];

impl Table for Destinations {
    fn name(&self) -> &'static str {
        "launchwatch_destinations"
    }
    fn description(&self) -> &'static str {
        "First and last contact per (program identity, destination), with novelty against a baseline."
    }
    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn generate(&self, env: &TableEnv, ctx: &QueryContext) -> Result<Vec<Row>, TableError> {
        let a = &env.config.analytics;
        let now = env.now();
        let rows: Vec<(String, String, i64, String, f64, f64, i64)> = env.store.read(|c| {
            let mut stmt = c.prepare("SELECT path, remote, remote_port, protocol, first_seen, last_seen, flows FROM destination_summary")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)))?;
            rows.collect()
        })?;
        let paths: BTreeSet<String> = rows.iter().map(|r| r.0.clone()).collect();
        let signers = signers(env, &paths);
        let internal = env.config.internal_networks();
        type Acc = (String, f64, f64, i64);
        let mut keys: BTreeMap<(String, String, i64, String), Acc> = BTreeMap::new();
        let mut earliest: BTreeMap<String, f64> = BTreeMap::new();
        for (path, remote, port, protocol, first, last, n) in rows {
            let is_ip = remote.parse::<std::net::IpAddr>().is_ok();
            if is_ip
                && !matches!(scope(&remote, &internal), "external")
                && !(a.include_internal && scope(&remote, &internal) != "loopback")
            {
                continue;
            }
            let identity = signers
                .get(&path)
                .map(|s| s.identity.clone())
                .unwrap_or_else(|| path.clone());
            let key = destination_key(if is_ip { None } else { Some(&remote) }, &remote);
            let e = earliest.entry(identity.clone()).or_insert(first);
            *e = e.min(first);
            let acc = keys
                .entry((identity, key, port, protocol))
                .or_insert((path, first, last, 0));
            acc.1 = acc.1.min(first);
            acc.2 = acc.2.max(last);
            acc.3 += n;
        }
        let identities = ctx.equals("identity");
        let remotes = ctx.equals("remote");
        Ok(keys
            .into_iter()
            .filter(|((id, remote, _, _), _)| {
                (identities.is_empty() || identities.contains(&id.as_str()))
                    && (remotes.is_empty() || remotes.contains(&remote.as_str()))
            })
            .map(
                |((identity, remote, port, protocol), (path, first, last, n))| {
                    let baseline = now - earliest.get(&identity).copied().unwrap_or(first);
                    vec![
                        Value::from(path),
                        Value::from(identity),
                        Value::from(remote),
                        Value::from(port),
                        Value::from(protocol),
                        Value::from(first.floor() as i64),
                        Value::from(last.floor() as i64),
                        Value::from(n),
                        Value::from(first >= now - a.baseline_days * 86400.0),
                        Value::from(baseline.max(0.0).floor() as i64),
                    ]
                },
            )
            .collect())
    }
}
