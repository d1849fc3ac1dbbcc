//! `launchwatch_status`: one row about the extension itself, so an operator can see from Fleet
//! that it samples, what a sample costs and how big its history is.

use std::sync::atomic::Ordering;

use crate::env::TableEnv;
use crate::framework::column::{bigint, double, integer, text};
use crate::framework::{Column, QueryContext, Row, Table, TableError, Value};
use crate::store::schema::SCHEMA_VERSION;

pub struct Status;

const COLUMNS: &[Column] = &[
    text("version", "launchwatch version (the extension's registered version)"),
    bigint("uptime_seconds", "Seconds since this launchwatch process started"),
    bigint("samples", "Completed sampler ticks recorded in the store over its life"),
    double("sample_cost_ms", "Wall-clock cost of the most recent sample, milliseconds (NULL before the first)"),
    bigint("observations_stored", "Raw observations currently held (process samples, flows, payloads, DNS answers, signing facts)"),
    bigint("store_bytes", "Bytes the store occupies on disk, database plus WAL and shared-memory files; for a replay, the in-memory pages"),
    integer("capture_enabled", "1 when first-payload capture is running in this process, else 0"),
    bigint("errors", "Table calls and samples that failed since start"),
    text("store_path", "The store's database file (for a live `launchwatch query`, the history it read); NULL for a replay"),
    integer("schema_version", "Store schema version"),
    text("platform", "Operating system this build runs on (darwin, linux)"),
    text(
        "capture",
        "First-payload capture as JSON: running, reason (why not), device, packets, flows_classified, dns_answers, drops (kernel), evicted_flows, missed_payloads, malformed_packets, cpu_seconds",
    ),
    text(
        "sources",
        "JSON array, one object per collector: name (tracepoint, sock_diag_destroy, sock_diag, ntstat, pcblist, capture), running, reason (why not, or what it fell back to), events_per_s, drops",
    ),
    text(
        "last_error",
        "The latest problem: a start-up one (bad config, unusable state directory: the extension then runs with defaults or in memory) or the last failed sample",
    ),
    text("config_path", "The config file read or refused (--config, LAUNCHWATCH_CONFIG or /etc/launchwatch.toml); NULL when there is none"),
    text("config_sha256", "SHA-256 of the config in effect; NULL when defaults apply"),
    integer("config_rejected", "1 when config_path was refused and defaults (no allowlist) apply: invalid, or, running as root, writable or owned by another user (the reason is in last_error)"),
    integer("allowlist_entries", "Entries in the [allowlist] in effect, over paths, identities, remotes and launchd_labels"),
];

/// The collectors as the sampler last saw them; before the first tick (or in `query`,
/// which does not run the sampler thread) what this process would use.
fn sources_json(env: &TableEnv) -> String {
    let sources = env
        .sampler
        .sources
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let mut sources = sources;
    // Packet capture is a collector too: its detail stays in the `capture` column.
    let c = env.capture.status();
    let uptime = env.started.elapsed().as_secs_f64().max(1.0);
    sources.push(crate::facts::SourceStatus {
        name: "capture".into(),
        running: c.running,
        reason: c.reason,
        events_per_s: ((c.packets as f64 / uptime) * 100.0).round() / 100.0,
        drops: c.drops,
    });
    serde_json::to_string(&sources).unwrap_or_else(|_| "[]".into())
}

impl Table for Status {
    fn name(&self) -> &'static str {
        "launchwatch_status"
    }
    fn description(&self) -> &'static str {
        "Health of the launchwatch extension: version, sampling, store size and errors (one row)."
    }
    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }
    fn generate(&self, env: &TableEnv, _ctx: &QueryContext) -> Result<Vec<Row>, TableError> {
        let store = &env.store;
        let origin = &env.config.origin;
        let cost_us = env.sampler.last_cost_us.load(Ordering::Relaxed);
        let errors = env.metrics.table_errors.load(Ordering::Relaxed)
            + env.sampler.errors.load(Ordering::Relaxed)
            + env.startup_errors.len() as u64;
        Ok(vec![vec![
            Value::from(env!("CARGO_PKG_VERSION")),
            Value::from(env.started.elapsed().as_secs()),
            Value::from(store.samples()?),
            if cost_us == 0 {
                Value::Null
            } else {
                Value::Double(cost_us as f64 / 1000.0)
            },
            Value::from(store.observations_stored()?),
            Value::from(store.size_bytes()?),
            Value::from(env.capture.running.load(Ordering::Relaxed)),
            Value::from(errors),
            Value::from(
                store
                    .file()
                    .or(env.history_path.as_deref())
                    .map(|p| p.display().to_string()),
            ),
            Value::from(SCHEMA_VERSION),
            Value::from(std::env::consts::OS.replace("macos", "darwin")),
            Value::from(serde_json::to_string(&env.capture.status()).unwrap_or_default()),
            Value::from(sources_json(env)),
            Value::from(
                env.sampler
                    .last_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone()
                    .or_else(|| env.startup_errors.last().cloned()),
            ),
            Value::from(origin.path.as_ref().map(|p| p.display().to_string())),
            Value::from(origin.sha256.clone()),
            Value::from(origin.rejected),
            Value::from(env.config.allowlist.entries() as u64),
        ]])
    }
}
