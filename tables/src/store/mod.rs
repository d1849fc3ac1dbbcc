//! The bounded, persisted observation store: bundled SQLite under `--state-dir`.
//!
//! * WAL with `synchronous=NORMAL`: every batch is one transaction, so a kill at any moment
//!   loses at most the batch being written, never the file (power loss may lose the last few
//!   committed batches, which is fine for telemetry).
//! * Retention: raw observations by age and by size, summaries by their own (longer) age.
//! * `--replay` and `query` use an in-memory store with the same schema.

pub mod schema;

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension};

use crate::config::StoreConfig;
use crate::observation::{
    DnsObs, FlowObs, FlowSnapshot, Observation, PayloadObs, ProcessObs, SigningObs,
};
use schema::{ALL_TABLES, MIGRATIONS, RAW_TABLES, SCHEMA_VERSION, SUMMARY_TABLES};

pub const STORE_FILE: &str = "launchwatch.db";

#[derive(Debug)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for StoreError {}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError(format!("store: {e}"))
    }
}

type Result<T> = std::result::Result<T, StoreError>;

/// Counts of what a prune removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub by_age: u64,
    pub by_size: u64,
    pub summaries: u64,
}

pub struct Store {
    conn: Mutex<Connection>,
    /// The database file when persisted; `None` for in-memory stores.
    file: Option<PathBuf>,
    /// Where `store_bytes` is measured: the file itself, or the history a `query` copied in.
    size_source: Option<PathBuf>,
    limits: StoreConfig,
    /// Process instance row ids already written (locked after `conn`, never before).
    instance_ids: Mutex<InstanceIds>,
    /// Which flow rows may exist, so a new flow skips the lookup (locked after `conn`).
    flow_keys: Mutex<FlowKeys>,
    /// Whether flow writes also fold into `destination_summary` and `hourly_bytes`. Always
    /// for a persisted store; a one-off `query` whose statement reads no table built on them
    /// skips the work.
    summaries: std::sync::atomic::AtomicBool,
}

impl Store {
    /// Opens (creating if needed) the store in `dir`, migrating an older schema.
    pub fn open(dir: &Path, limits: StoreConfig) -> Result<Store> {
        configure_sqlite();
        create_private_dir(dir)?;
        let file = dir.join(STORE_FILE);
        let conn = Connection::open(&file)
            .map_err(|e| StoreError(format!("cannot open {}: {e}", file.display())))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // auto_vacuum must be chosen before the first table exists; it lets pruning give space back.
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError(format!(
                "{}: WAL not available (journal_mode={mode})",
                file.display()
            )));
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // A checkpoint copies each page the WAL holds once, however often it changed since
        // the last one; the default (every 1,000 pages) checkpointed several times during a
        // first write of 20,000 flows (a tenth of its cost). 4,096 pages is a 16 MiB WAL at
        // most, and pruning still truncates it.
        conn.pragma_update(None, "wal_autocheckpoint", 4096)?;
        migrate(&conn, &file.display().to_string())?;
        tune(&conn);
        let flow_keys = Mutex::new(FlowKeys::load(&conn));
        Ok(Store {
            conn: Mutex::new(conn),
            size_source: Some(file.clone()),
            file: Some(file),
            limits,
            instance_ids: Mutex::default(),
            flow_keys,
            summaries: std::sync::atomic::AtomicBool::new(true),
        })
    }

    pub fn in_memory(limits: StoreConfig) -> Result<Store> {
        configure_sqlite();
        let conn = Connection::open_in_memory()?;
        migrate(&conn, "in-memory store")?;
        tune(&conn);
        let flow_keys = Mutex::new(FlowKeys::load(&conn));
        Ok(Store {
            conn: Mutex::new(conn),
            file: None,
            size_source: None,
            limits,
            instance_ids: Mutex::default(),
            flow_keys,
            summaries: std::sync::atomic::AtomicBool::new(true),
        })
    }

    /// Copies a running extension's history (read-only, never disturbing its writer) into this
    /// in-memory store. Returns `Ok(false)` when there is no history at `dir`.
    pub fn import_history(&mut self, dir: &Path) -> Result<bool> {
        let file = dir.join(STORE_FILE);
        if !file.exists() {
            return Ok(false);
        }
        let uri = format!("file:{}?mode=ro", percent_encode_path(&file));
        let conn = self.lock();
        conn.execute("ATTACH DATABASE ?1 AS history", [uri])
            .map_err(|e| StoreError(format!("cannot read history {}: {e}", file.display())))?;
        let outcome = (|| -> Result<()> {
            let version: i64 = conn.query_row("PRAGMA history.user_version", [], |r| r.get(0))?;
            if version != SCHEMA_VERSION {
                return Err(StoreError(format!(
                    "history {} has schema version {version}, this launchwatch uses {SCHEMA_VERSION}; \
                     run the matching launchwatch or point --state-dir elsewhere",
                    file.display()
                )));
            }
            conn.execute_batch("BEGIN")?;
            for table in ALL_TABLES {
                conn.execute(
                    &format!("INSERT OR REPLACE INTO main.{table} SELECT * FROM history.{table}"),
                    [],
                )?;
            }
            conn.execute_batch("COMMIT")?;
            Ok(())
        })();
        if outcome.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        conn.execute("DETACH DATABASE history", [])?;
        // The copied rows may include ownerless flows (or anything, after a failure).
        *self.flow_keys() = FlowKeys::load(&conn);
        outcome?;
        drop(conn);
        self.size_source = Some(file);
        Ok(true)
    }

    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Stops (or resumes) folding flow writes into the summaries: for an in-memory store whose
    /// readers never look at them. A persisted store always keeps them.
    pub fn keep_summaries(&self, keep: bool) {
        if self.file.is_none() {
            self.summaries
                .store(keep, std::sync::atomic::Ordering::Relaxed);
        }
    }

    pub fn limits(&self) -> &StoreConfig {
        &self.limits
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half transaction behind (SQLite rolls
        // back on the next BEGIN), so a poisoned lock is still safe to use.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` with the connection (for analytics and tables that read).
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        Ok(f(&self.lock())?)
    }

    /// Writes one batch atomically, and counts `samples` completed sampler ticks with it.
    pub fn write_batch(&self, observations: &[Observation], samples: u64) -> Result<()> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        // Names first (DNS answers, payload rows with SNI/Host), so flows in the same batch
        // are keyed by them.
        for obs in observations {
            match obs {
                Observation::Payload(p) => insert_payload(&tx, p)?,
                Observation::Dns(d) => upsert_dns(&tx, d)?,
                _ => {}
            }
        }
        let summaries = self.summaries.load(std::sync::atomic::Ordering::Relaxed);
        let mut summary = summaries.then(BatchSummaries::default);
        let mut ids = self.instance_ids();
        let mut fresh = InstanceIds::new();
        let mut flow_keys = self.flow_keys();
        flow_keys.catch_up(&tx);
        for obs in observations {
            match obs {
                Observation::Process(p) => insert_process(&tx, p, &ids, &mut fresh)?,
                Observation::Flow(f) => upsert_flow(
                    &tx,
                    f,
                    self.limits.snapshot_min_age,
                    &mut flow_keys,
                    summary.as_mut(),
                )?,
                Observation::Signing(s) => upsert_signing(&tx, s, None)?,
                Observation::Payload(_) | Observation::Dns(_) => {}
            }
        }
        if let Some(summary) = summary {
            summary.write(&tx)?;
        }
        if samples > 0 {
            tx.execute(
                "INSERT INTO meta(key, value) VALUES('samples', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = value + excluded.value",
                [samples as i64],
            )?;
        }
        tx.commit()?;
        ids.extend(fresh);
        Ok(())
    }

    fn instance_ids(&self) -> MutexGuard<'_, InstanceIds> {
        self.instance_ids.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn flow_keys(&self) -> MutexGuard<'_, FlowKeys> {
        self.flow_keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes every raw observation as JSON Lines (what `record` produces): process samples in
    /// time order, one line per flow, DNS answers, payloads and signing facts.
    pub fn export(&self, out: &mut dyn std::io::Write) -> Result<usize> {
        let conn = self.lock();
        let mut n = 0usize;
        let mut emit = |o: Observation| -> rusqlite::Result<()> {
            writeln!(out, "{}", o.to_json_line())
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
            n += 1;
            Ok(())
        };
        let mut stmt = conn.prepare(
            "SELECT ts, pid, start_time, ppid, uid, path, name, cpu_time, launchd_label, pgid, label_source FROM process_samples ORDER BY ts, pid",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            emit(Observation::Process(ProcessObs {
                ts: r.get(0)?,
                pid: r.get(1)?,
                start_time: r.get(2)?,
                ppid: r.get(3)?,
                uid: r.get(4)?,
                path: r.get(5)?,
                name: r.get(6)?,
                cpu_time: r.get(7)?,
                launchd_label: r.get(8)?,
                pgid: r.get(9)?,
                label_source: r.get(10)?,
                responsible_pid: None,
            }))?;
        }
        // Every flow's readings first, in one pass of their (flow_id, ts) index: only flows
        // that lived long and moved have any, and a lookup per flow cost more than the rows.
        // (Joining them to the flows instead makes the sort by start carry every column.)
        let mut snapshots: HashMap<i64, Vec<FlowSnapshot>> = HashMap::new();
        let mut stmt = conn.prepare(
            "SELECT flow_id, ts, bytes_sent, bytes_received FROM flow_snapshots ORDER BY flow_id, ts",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            snapshots.entry(r.get(0)?).or_default().push(FlowSnapshot {
                ts: r.get(1)?,
                bytes_sent: r.get(2)?,
                bytes_received: r.get(3)?,
            });
        }
        let mut stmt = conn.prepare(
            "SELECT start, end, pid, process_start, path, launchd_label, protocol, local_address, local_port,
                    remote_address, remote_port, remote_name, bytes_sent, bytes_received, state, last_seen,
                    prev_seen, prev_bytes_sent, prev_bytes_received, label_source, source, acting_pid, id FROM flows ORDER BY start, id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(22)?;
            emit(Observation::Flow(FlowObs {
                snapshots: snapshots.remove(&id),
                start: r.get(0)?,
                end: r.get(1)?,
                pid: r.get(2)?,
                process_start: r.get(3)?,
                path: r.get(4)?,
                launchd_label: r.get(5)?,
                protocol: r.get(6)?,
                local_address: r.get(7)?,
                local_port: r.get(8)?,
                remote_address: r.get(9)?,
                remote_port: r.get(10)?,
                remote_name: r.get(11)?,
                bytes_sent: r.get(12)?,
                bytes_received: r.get(13)?,
                state: r.get(14)?,
                last_seen: r.get(15)?,
                prev_seen: r.get(16)?,
                prev_bytes_sent: r.get(17)?,
                prev_bytes_received: r.get(18)?,
                label_source: r.get(19)?,
                source: r.get(20)?,
                acting_pid: r.get(21)?,
            }))?;
        }
        let mut stmt = conn.prepare(
            "SELECT name, address, first_seen, last_seen, ttl FROM dns ORDER BY first_seen",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let (name, address, first, last, ttl): (String, String, f64, f64, Option<i64>) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
            emit(Observation::Dns(DnsObs {
                ts: first,
                name: name.clone(),
                address: address.clone(),
                ttl,
            }))?;
            if last > first {
                emit(Observation::Dns(DnsObs {
                    ts: last,
                    name,
                    address,
                    ttl,
                }))?;
            }
        }
        let mut stmt = conn.prepare(
            "SELECT ts, pid, path, protocol, remote_address, remote_port, direction, first_bytes, payload_class, entropy,
                    bytes_seen, process_start, local_address, local_port, server_first_bytes, server_payload_class,
                    server_entropy, server_bytes_seen, sni, ech, http_host, resolved_name FROM payloads ORDER BY ts",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            emit(Observation::Payload(PayloadObs {
                ts: r.get(0)?,
                pid: r.get(1)?,
                path: r.get(2)?,
                protocol: r.get(3)?,
                remote_address: r.get(4)?,
                remote_port: r.get(5)?,
                direction: r.get(6)?,
                first_bytes: r.get(7)?,
                payload_class: r.get(8)?,
                entropy: r.get(9)?,
                bytes_seen: r.get(10)?,
                process_start: r.get(11)?,
                local_address: r.get(12)?,
                local_port: r.get(13)?,
                server_first_bytes: r.get(14)?,
                server_payload_class: r.get(15)?,
                server_entropy: r.get(16)?,
                server_bytes_seen: r.get(17)?,
                sni: r.get(18)?,
                ech: r.get(19)?,
                http_host: r.get(20)?,
                resolved_name: r.get(21)?,
            }))?;
        }
        let mut stmt = conn.prepare("SELECT path, signer_class, status, team_id, identifier, notarized FROM signing ORDER BY path")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            emit(Observation::Signing(SigningObs {
                path: r.get(0)?,
                signer_class: r.get(1)?,
                status: r.get(2)?,
                team_id: r.get(3)?,
                identifier: r.get(4)?,
                notarized: r.get(5)?,
            }))?;
        }
        Ok(n)
    }

    /// Completed sampler ticks over the store's life.
    pub fn samples(&self) -> Result<u64> {
        let conn = self.lock();
        let v: Option<i64> = conn
            .query_row("SELECT value FROM meta WHERE key = 'samples'", [], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(v.unwrap_or(0).max(0) as u64)
    }

    /// Raw observations currently held (summaries not counted).
    pub fn observations_stored(&self) -> Result<u64> {
        let conn = self.lock();
        let mut total = 0i64;
        for (table, _) in RAW_TABLES.iter().chain([("signing", "")].iter()) {
            total += conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
                r.get::<_, i64>(0)
            })?;
        }
        Ok(total as u64)
    }

    /// Bytes on disk: the database file plus its WAL (and shared-memory index). For an
    /// in-memory store with no history behind it, the pages it holds.
    pub fn size_bytes(&self) -> Result<u64> {
        match &self.size_source {
            Some(file) => Ok(disk_bytes(file)),
            None => Ok(self.live_bytes()?),
        }
    }

    /// Bytes of pages holding data (excludes the free list): what size retention bounds.
    pub fn live_bytes(&self) -> Result<u64> {
        let conn = self.lock();
        live_bytes(&conn)
    }

    /// Applies retention at `now`: raw rows by age then size, summaries by their own age.
    pub fn prune(&self, now: f64) -> Result<Pruned> {
        let mut out = Pruned::default();
        let mut conn = self.lock();
        let raw_cutoff = now - self.limits.max_age_hours * 3600.0;
        let summary_cutoff = now - self.limits.summary_days * 86400.0;
        let tx = conn.transaction()?;
        for (table, col) in RAW_TABLES {
            out.by_age += tx.execute(
                &format!("DELETE FROM {table} WHERE {col} < ?1"),
                [raw_cutoff],
            )? as u64;
        }
        forget_instances_without_readings(&tx, &mut self.instance_ids())?;
        out.by_age += delete_orphan_snapshots(&tx)?;
        for (table, col) in SUMMARY_TABLES {
            out.summaries += tx.execute(
                &format!("DELETE FROM {table} WHERE {col} < ?1"),
                [summary_cutoff],
            )? as u64;
        }
        tx.commit()?;
        // Size: drop the oldest tenth of the raw rows until the live pages fit. Bounded rounds,
        // so a pathological store cannot keep the sampler busy forever.
        let max_bytes = (self.limits.max_mib * 1024.0 * 1024.0) as u64;
        // A few rounds per call (it runs every minute): never most of the history at once.
        for _ in 0..3 {
            if live_bytes(&conn)? <= max_bytes {
                break;
            }
            let tx = conn.transaction()?;
            let mut removed = 0u64;
            for (table, col) in RAW_TABLES {
                // process_cpu has no rowid: its oldest tenth is everything up to a cut-off time.
                let oldest_tenth = if *table == "process_cpu" {
                    format!(
                        "DELETE FROM {table} WHERE {col} <= (SELECT {col} FROM {table} ORDER BY {col}
                         LIMIT 1 OFFSET (SELECT (count(*) + 9) / 10 - 1 FROM {table}))"
                    )
                } else {
                    format!(
                        "DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} ORDER BY {col} LIMIT
                         (SELECT (count(*) + 9) / 10 FROM {table}))"
                    )
                };
                removed += tx.execute(&oldest_tenth, [])? as u64;
            }
            forget_instances_without_readings(&tx, &mut self.instance_ids())?;
            removed += delete_orphan_snapshots(&tx)?;
            tx.commit()?;
            out.by_size += removed;
            if removed == 0 {
                break;
            }
        }
        if out.by_age + out.by_size > 0 {
            self.flow_keys().after_prune(&conn);
        }
        if out.by_age + out.by_size + out.summaries > 0 && self.file.is_some() {
            conn.execute_batch("PRAGMA incremental_vacuum")?;
            // Keep the WAL from growing past what one batch needs.
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
        Ok(out)
    }
}

/// An instance row whose last CPU reading was pruned goes too (and leaves the id cache).
fn forget_instances_without_readings(tx: &Connection, ids: &mut InstanceIds) -> Result<()> {
    let gone = tx.execute(
        "DELETE FROM process_instances
         WHERE NOT EXISTS (SELECT 1 FROM process_cpu WHERE process_cpu.instance = process_instances.id)",
        [],
    )?;
    if gone > 0 {
        ids.clear();
    }
    Ok(())
}

/// Readings of flows that are gone: a flow id can be reused once its row is pruned.
fn delete_orphan_snapshots(tx: &Connection) -> rusqlite::Result<u64> {
    Ok(tx.execute(
        "DELETE FROM flow_snapshots WHERE flow_id NOT IN (SELECT id FROM flows)",
        [],
    )? as u64)
}

fn live_bytes(conn: &Connection) -> Result<u64> {
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    Ok(((pages - free).max(0) * size) as u64)
}

/// The database file plus `-wal` and `-shm`, as `du` would count them for the state dir.
pub fn disk_bytes(file: &Path) -> u64 {
    let mut total = 0;
    for suffix in ["", "-wal", "-shm"] {
        let mut p = file.as_os_str().to_owned();
        p.push(suffix);
        total += std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
    }
    total
}

/// Process-wide SQLite settings, before the first connection exists (SQLite refuses them
/// later, harmlessly): no memory statistics, which take one global mutex on every SQLite
/// allocation and free, shared by every thread's connections (the sampler's writes, the
/// tables' queries). Nothing here reads `sqlite3_memory_used`.
fn configure_sqlite() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: SQLITE_CONFIG_MEMSTATUS takes one int; SQLite checks it is not yet initialized.
        unsafe {
            rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS, 0 as libc::c_int);
        }
    });
}

/// Per-connection settings: room for every statement the writer and the tables keep prepared
/// (the default 16 evicts some, and FLOW_NAME_SQL is costly to prepare).
fn tune(conn: &Connection) {
    conn.set_prepared_statement_cache_capacity(64);
}

fn migrate(conn: &Connection, what: &str) -> Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError(format!(
            "{what} has schema version {version}, newer than this launchwatch knows ({SCHEMA_VERSION}); \
             upgrade launchwatch or move the state directory away"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let next = i as i64 + 1;
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {sql}; PRAGMA user_version = {next}; COMMIT;"
        ))
        .map_err(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            StoreError(format!(
                "{what}: migration to schema version {next} failed: {e}"
            ))
        })?;
    }
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| {
        StoreError(format!(
            "cannot create state directory {}: {e}",
            dir.display()
        ))
    })
}

/// SQLite URI filenames need `%`, `?` and `#` escaped.
fn percent_encode_path(path: &Path) -> String {
    let mut out = String::new();
    for b in path.to_string_lossy().bytes() {
        match b {
            b'%' | b'?' | b'#' => out.push_str(&format!("%{b:02X}")),
            _ => out.push(b as char),
        }
    }
    out
}

/// What a process instance row holds besides its key: a change (an exec, a label learned
/// later) makes a new instance row, so the `process_samples` view returns what was sampled.
#[derive(Debug, Clone, PartialEq)]
struct InstanceFacts {
    ppid: Option<i64>,
    uid: Option<i64>,
    path: Option<String>,
    name: Option<String>,
    launchd_label: Option<String>,
    pgid: Option<i64>,
    label_source: Option<String>,
}

impl InstanceFacts {
    fn of(p: &ProcessObs) -> InstanceFacts {
        InstanceFacts {
            ppid: p.ppid,
            uid: p.uid,
            path: p.path.clone(),
            name: p.name.clone(),
            launchd_label: p.launchd_label.clone(),
            pgid: p.pgid,
            label_source: p.label_source.clone(),
        }
    }

    fn matches(&self, p: &ProcessObs) -> bool {
        self.ppid == p.ppid
            && self.uid == p.uid
            && self.path == p.path
            && self.name == p.name
            && self.launchd_label == p.launchd_label
            && self.pgid == p.pgid
            && self.label_source == p.label_source
    }
}

/// Instance row ids by (pid, start time bits), with the facts that row holds: a reading of a
/// known instance is one small insert, no lookup.
type InstanceIds = HashMap<(i64, u64), (i64, InstanceFacts)>;

/// One CPU reading: the instance row once (found or made), then (instance, ts, cpu_time).
/// New ids go to `fresh`, taken into the cache only once the transaction commits.
fn insert_process(
    tx: &Connection,
    p: &ProcessObs,
    known: &InstanceIds,
    fresh: &mut InstanceIds,
) -> rusqlite::Result<()> {
    let key = (p.pid, p.start_time.to_bits());
    let cached = fresh
        .get(&key)
        .or_else(|| known.get(&key))
        .filter(|(_, facts)| facts.matches(p))
        .map(|(id, _)| *id);
    let id = match cached {
        Some(id) => id,
        None => {
            let found: Option<i64> = tx
                .prepare_cached(
                    "SELECT id FROM process_instances WHERE pid = ?1 AND start_time = ?2
                       AND ppid IS ?3 AND uid IS ?4 AND path IS ?5 AND name IS ?6
                       AND launchd_label IS ?7 AND pgid IS ?8 AND label_source IS ?9
                     ORDER BY id DESC LIMIT 1",
                )?
                .query_row(
                    params![
                        p.pid,
                        p.start_time,
                        p.ppid,
                        p.uid,
                        p.path,
                        p.name,
                        p.launchd_label,
                        p.pgid,
                        p.label_source
                    ],
                    |r| r.get(0),
                )
                .optional()?;
            let id = match found {
                Some(id) => id,
                None => {
                    tx.prepare_cached(
                        "INSERT INTO process_instances(pid, start_time, ppid, uid, path, name, launchd_label, pgid, label_source)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    )?
                    .execute(params![p.pid, p.start_time, p.ppid, p.uid, p.path, p.name, p.launchd_label, p.pgid, p.label_source])?;
                    tx.last_insert_rowid()
                }
            };
            fresh.insert(key, (id, InstanceFacts::of(p)));
            id
        }
    };
    tx.prepare_cached(
        "INSERT OR REPLACE INTO process_cpu(instance, ts, cpu_time) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![id, p.ts, p.cpu_time])?;
    Ok(())
}

fn insert_snapshot(
    tx: &Connection,
    flow_id: i64,
    ts: f64,
    sent: i64,
    received: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT OR IGNORE INTO flow_snapshots(flow_id, ts, bytes_sent, bytes_received) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![flow_id, ts, sent, received])?;
    Ok(())
}

/// When the flow's last kept reading is the previous one (`old_seen`) and the last two kept
/// intervals are of the same kind as the new one — bytes sent grew in all three, or in none —
/// the new reading replaces the last: the run's first reading (a check-in's start, or the
/// quiet before it) stays, its latest moves on. Returns whether it did.
fn extend_run(
    tx: &Connection,
    flow_id: i64,
    old_seen: f64,
    ts: f64,
    sent: i64,
    received: i64,
) -> rusqlite::Result<bool> {
    let recent: Vec<(i64, f64, i64)> = tx
        .prepare_cached(
            "SELECT rowid, ts, bytes_sent FROM flow_snapshots WHERE flow_id = ?1 ORDER BY ts DESC LIMIT 3",
        )?
        .query_map(params![flow_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let [(last_row, last_ts, last_sent), (_, _, mid_sent), (_, _, first_sent)] = recent[..] else {
        return Ok(false);
    };
    let grew = sent > last_sent;
    if last_ts != old_seen
        || ts <= last_ts
        || (last_sent > mid_sent) != grew
        || (mid_sent > first_sent) != grew
    {
        return Ok(false);
    }
    tx.prepare_cached(
        "UPDATE flow_snapshots SET ts = ?2, bytes_sent = ?3, bytes_received = ?4 WHERE rowid = ?1",
    )?
    .execute(params![last_row, ts, sent, received])?;
    Ok(true)
}

/// Flow rows the store may hold, known without asking SQLite: most flows a sampler writes are
/// new, and for those the lookup of a previous row is wasted work.
struct FlowKeys {
    /// [`tuple_key`]s of rows without an owner (pid NULL, path ''): the only rows an owned flow
    /// can match besides its own identity (an ownerless row is upgraded, not duplicated).
    /// `None` when they could not be read: then every flow looks.
    ownerless: Option<HashSet<u64>>,
    /// [`identity_key`]s this store wrote lately: those flows are probably there, so they look
    /// first instead of trying an insert first. A hint only; either order gives the same rows.
    written: HashSet<u64>,
    /// SQLite's count of commits by other connections when `ownerless` was read: another
    /// process writing the same file (a `record --state-dir` beside the extension) may add
    /// ownerless rows, so a change means reading them again.
    data_version: Option<i64>,
}

/// Past this many, the `written` hint starts over (bounds memory, about 1 MiB, on a host
/// with churn; a flow missing from it only tries its insert first).
const WRITTEN_HINTS_MAX: usize = 1 << 16;
/// Past this many, a prune re-reads the ownerless keys so deleted rows leave the set.
const OWNERLESS_REREAD_AT: usize = 4096;

impl FlowKeys {
    fn load(conn: &Connection) -> FlowKeys {
        // The version first: a commit after it and before the read makes the next batch read again.
        let data_version = data_version(conn);
        FlowKeys {
            ownerless: data_version.and(ownerless_keys(conn).ok()),
            written: HashSet::new(),
            data_version,
        }
    }

    /// Before a batch: re-reads the ownerless keys when another connection committed since.
    fn catch_up(&mut self, conn: &Connection) {
        let now = data_version(conn);
        if now.is_none() || now != self.data_version {
            *self = FlowKeys {
                written: std::mem::take(&mut self.written),
                ..FlowKeys::load(conn)
            };
        }
    }

    fn after_prune(&mut self, conn: &Connection) {
        if self
            .ownerless
            .as_ref()
            .is_none_or(|o| o.len() > OWNERLESS_REREAD_AT)
        {
            self.ownerless = ownerless_keys(conn).ok();
        }
    }

    /// Whether a row other than `f`'s own identity could be the same connection.
    fn may_upgrade(&self, f: &FlowObs, tuple: u64) -> bool {
        is_owned(f) && self.ownerless.as_ref().is_none_or(|o| o.contains(&tuple))
    }

    /// After `f` was written (inserted or merged into a row).
    fn wrote(&mut self, f: &FlowObs, tuple: u64, identity: u64) {
        if !is_owned(f) {
            if let Some(o) = &mut self.ownerless {
                o.insert(tuple);
            }
        }
        if self.written.len() >= WRITTEN_HINTS_MAX {
            // A new set, so the old one's memory goes back too.
            self.written = HashSet::new();
        }
        self.written.insert(identity);
    }
}

fn data_version(conn: &Connection) -> Option<i64> {
    conn.query_row("PRAGMA data_version", [], |r| r.get(0)).ok()
}

fn is_owned(f: &FlowObs) -> bool {
    f.pid.is_some() || !f.path.is_empty()
}

/// The keys of every ownerless row (found through the `flows_path` index).
fn ownerless_keys(conn: &Connection) -> rusqlite::Result<HashSet<u64>> {
    let mut stmt = conn.prepare(
        "SELECT protocol, local_address, local_port, remote_address, remote_port, start FROM flows
         WHERE path = '' AND pid IS NULL",
    )?;
    let mut rows = stmt.query([])?;
    let mut keys = HashSet::new();
    while let Some(r) = rows.next()? {
        keys.insert(tuple_key(
            &r.get::<_, String>(0)?,
            r.get::<_, Option<String>>(1)?.as_deref(),
            r.get::<_, Option<i64>>(2)?,
            &r.get::<_, String>(3)?,
            r.get(4)?,
            r.get(5)?,
        ));
    }
    Ok(keys)
}

/// A hash of what the previous-row lookup compares besides the owner: equal rows give equal
/// keys (NULL local address as '', as the lookup and the identity index treat it).
fn tuple_key(
    protocol: &str,
    local_address: Option<&str>,
    local_port: Option<i64>,
    remote_address: &str,
    remote_port: i64,
    start: f64,
) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    protocol.hash(&mut h);
    local_address.unwrap_or("").hash(&mut h);
    local_port.unwrap_or(-1).hash(&mut h);
    remote_address.hash(&mut h);
    remote_port.hash(&mut h);
    // SQL compares -0.0 and 0.0 equal.
    (start + 0.0).to_bits().hash(&mut h);
    h.finish()
}

fn flow_tuple_key(f: &FlowObs) -> u64 {
    tuple_key(
        &f.protocol,
        f.local_address.as_deref(),
        f.local_port.map(i64::from),
        &f.remote_address,
        i64::from(f.remote_port),
        f.start,
    )
}

fn identity_key(f: &FlowObs, tuple: u64) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    tuple.hash(&mut h);
    f.pid.unwrap_or(-1).hash(&mut h);
    f.path.hash(&mut h);
    h.finish()
}

type DestinationKey = (String, String, u16, String);

/// What a batch's flows add to the summaries, summed per key in memory and written once per
/// key at the end: min/max/sum give the same rows as one upsert per flow.
#[derive(Default)]
struct BatchSummaries {
    /// (path, remote, remote_port, protocol) → (first_seen, last_seen, new flows).
    destinations: HashMap<DestinationKey, (f64, f64, i64)>,
    /// (path, hour_start) → (bytes_sent, bytes_received, new flows).
    hours: HashMap<(String, i64), (i64, i64, i64)>,
    names: FlowNames,
}

impl BatchSummaries {
    fn add_destination(&mut self, f: &FlowObs, remote: &str, last_seen: f64, new_flow: i64) {
        let e = self
            .destinations
            .entry((
                f.path.clone(),
                remote.to_string(),
                f.remote_port,
                f.protocol.clone(),
            ))
            .or_insert((f.start, last_seen, 0));
        e.0 = e.0.min(f.start);
        e.1 = e.1.max(last_seen);
        e.2 += new_flow;
    }

    fn add_hour(&mut self, path: &str, hour_start: i64, sent: i64, received: i64, flows: i64) {
        let e = self
            .hours
            .entry((path.to_string(), hour_start))
            .or_default();
        e.0 += sent;
        e.1 += received;
        e.2 += flows;
    }

    fn write(self, tx: &Connection) -> rusqlite::Result<()> {
        let mut upsert = tx.prepare_cached(
            "INSERT INTO destination_summary(path, remote, remote_port, protocol, first_seen, last_seen, flows)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(path, remote, remote_port, protocol) DO UPDATE SET
               first_seen = min(first_seen, excluded.first_seen), last_seen = max(last_seen, excluded.last_seen),
               flows = flows + excluded.flows",
        )?;
        for ((path, remote, port, protocol), (first, last, flows)) in &self.destinations {
            upsert.execute(params![path, remote, port, protocol, first, last, flows])?;
        }
        let mut upsert = tx.prepare_cached(
            "INSERT INTO hourly_bytes(path, hour_start, bytes_sent, bytes_received, flows) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(path, hour_start) DO UPDATE SET bytes_sent = bytes_sent + excluded.bytes_sent,
               bytes_received = bytes_received + excluded.bytes_received, flows = flows + excluded.flows",
        )?;
        for ((path, hour_start), (sent, received, flows)) in &self.hours {
            upsert.execute(params![path, hour_start, sent, received, flows])?;
        }
        Ok(())
    }
}

/// Flow names for the summaries, with what a batch can share: the batch's DNS answers and
/// payload rows are written before its flows, so within it the name depends on the flow only
/// through its address when no payload row has that address.
#[derive(Default)]
struct FlowNames {
    /// Whether any payload row has this remote address.
    payloads: HashMap<String, bool>,
    /// The name FLOW_NAME_SQL gives a flow to this address with no name of its own and no
    /// payload rows: the latest DNS answer, if any.
    by_address: HashMap<String, Option<String>>,
}

impl FlowNames {
    /// The flow's name as the tables see it (FLOW_NAME_SQL: DNS-resolved first, then what it
    /// claimed), so _destinations and _beacons agree on keys.
    fn of(
        &mut self,
        tx: &Connection,
        f: &FlowObs,
        last_seen: f64,
    ) -> rusqlite::Result<Option<String>> {
        let claimed = f.remote_name.as_deref().filter(|n| !n.is_empty());
        let has_payloads = match self.payloads.get(&f.remote_address) {
            Some(known) => *known,
            None => {
                let any: bool = tx
                    .prepare_cached(
                        "SELECT EXISTS (SELECT 1 FROM payloads WHERE remote_address = ?1)",
                    )?
                    .query_row([&f.remote_address], |r| r.get(0))?;
                self.payloads.insert(f.remote_address.clone(), any);
                any
            }
        };
        if has_payloads {
            return flow_name_sql(tx, f, last_seen, claimed);
        }
        // Without payload rows, FLOW_NAME_SQL is the flow's own name, else the address's.
        if let Some(name) = claimed {
            return Ok(Some(name.to_string()));
        }
        if let Some(name) = self.by_address.get(&f.remote_address) {
            return Ok(name.clone());
        }
        let name = flow_name_sql(tx, f, last_seen, None)?;
        self.by_address
            .insert(f.remote_address.clone(), name.clone());
        Ok(name)
    }
}

fn flow_name_sql(
    tx: &Connection,
    f: &FlowObs,
    last_seen: f64,
    claimed: Option<&str>,
) -> rusqlite::Result<Option<String>> {
    tx.prepare_cached(&format!(
        "SELECT {} FROM (SELECT ?1 AS remote_address, ?2 AS remote_port, ?3 AS local_port, ?4 AS protocol,
                ?5 AS start, ?6 AS end, ?7 AS last_seen, ?8 AS remote_name) f",
        crate::analytics::FLOW_NAME_SQL
    ))?
    .query_row(
        params![
            f.remote_address,
            f.remote_port,
            f.local_port,
            f.protocol,
            f.start,
            f.end,
            last_seen,
            claimed
        ],
        |r| r.get(0),
    )
}

const INSERT_FLOW_SQL: &str =
    "INSERT INTO flows(start, end, last_seen, pid, process_start, path, launchd_label, protocol,
     local_address, local_port, remote_address, remote_port, remote_name, bytes_sent, bytes_received, state,
     prev_seen, prev_bytes_sent, prev_bytes_received, label_source, source, acting_pid)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)
     ON CONFLICT DO NOTHING";

/// Inserts `f` as a new row; `None` when its identity is already there.
fn insert_flow(tx: &Connection, f: &FlowObs, last_seen: f64) -> rusqlite::Result<Option<i64>> {
    let inserted = tx.prepare_cached(INSERT_FLOW_SQL)?.execute(params![
        f.start,
        f.end,
        last_seen,
        f.pid,
        f.process_start,
        f.path,
        f.launchd_label,
        f.protocol,
        f.local_address,
        f.local_port,
        f.remote_address,
        f.remote_port,
        f.remote_name,
        f.bytes_sent,
        f.bytes_received,
        f.state,
        f.prev_seen,
        f.prev_bytes_sent,
        f.prev_bytes_received,
        f.label_source,
        f.source,
        f.acting_pid
    ])?;
    Ok((inserted > 0).then(|| tx.last_insert_rowid()))
}

/// Inserts a flow or updates the same connection seen again, and keeps the summaries in step:
/// a connection counts once, and only its byte growth is added to the hourly totals.
fn upsert_flow(
    tx: &Connection,
    f: &FlowObs,
    snapshot_min_age: f64,
    keys: &mut FlowKeys,
    summaries: Option<&mut BatchSummaries>,
) -> rusqlite::Result<()> {
    let last_seen = f.seen();
    let tuple = flow_tuple_key(f);
    let identity = identity_key(f, tuple);
    // A flow that cannot match an ownerless row and was not written lately is most likely
    // new: insert it, and look for its row only when the identity index says it is there.
    let look_first = keys.may_upgrade(f, tuple) || keys.written.contains(&identity);
    let inserted = if look_first {
        None
    } else {
        insert_flow(tx, f, last_seen)?
    };
    // The same connection, or the same one seen earlier without an owner (a socket first seen
    // in TIME_WAIT, say): that row is upgraded rather than duplicated.
    let previous: Option<(i64, i64, i64, f64, String)> = if inserted.is_some() {
        None
    } else {
        tx.prepare_cached(
            "SELECT id, ifnull(bytes_sent, 0), ifnull(bytes_received, 0), last_seen, path FROM flows
             WHERE protocol = ?1 AND ifnull(local_address, '') = ifnull(?2, '') AND ifnull(local_port, -1) = ifnull(?3, -1)
               AND remote_address = ?4 AND remote_port = ?5 AND start = ?7
               AND ((ifnull(pid, -1) = ifnull(?6, -1) AND path = ?8) OR (pid IS NULL AND path = ''))
             ORDER BY pid IS NULL LIMIT 1",
        )?
        .query_row(
            params![f.protocol, f.local_address, f.local_port, f.remote_address, f.remote_port, f.pid, f.start, f.path],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()?
    };
    keys.wrote(f, tuple, identity);
    let (sent, received) = (f.bytes_sent.unwrap_or(0), f.bytes_received.unwrap_or(0));
    let previous_seen = previous.as_ref().map(|p| p.3);
    let (new_flow, d_sent, d_received) = match previous {
        Some((id, old_sent, old_received, old_seen, old_path)) => {
            // The reading being replaced becomes the previous one (unless the observation says).
            let (prev_seen, prev_sent, prev_received) = if f.prev_seen.is_some() {
                (f.prev_seen, f.prev_bytes_sent, f.prev_bytes_received)
            } else if last_seen > old_seen {
                (Some(old_seen), Some(old_sent), Some(old_received))
            } else {
                (None, None, None)
            };
            tx.prepare_cached(
                "UPDATE flows SET end = ?2, last_seen = max(last_seen, ?3), bytes_sent = ?4, bytes_received = ?5,
                 state = ?6, remote_name = ifnull(?7, remote_name), launchd_label = ifnull(?8, launchd_label),
                 label_source = CASE WHEN ?8 IS NOT NULL THEN ifnull(?14, label_source) ELSE label_source END,
                 source = ifnull(?15, source),
                 path = CASE WHEN ?9 != '' THEN ?9 ELSE path END, pid = ifnull(?13, pid), prev_seen = ifnull(?10, prev_seen), prev_bytes_sent = ifnull(?11, prev_bytes_sent),
                 prev_bytes_received = ifnull(?12, prev_bytes_received), process_start = ifnull(?16, process_start),
                 acting_pid = ifnull(?17, acting_pid) WHERE id = ?1",
            )?
            .execute(params![
                id,
                f.end,
                last_seen,
                f.bytes_sent,
                f.bytes_received,
                f.state,
                f.remote_name,
                f.launchd_label,
                f.path,
                prev_seen,
                prev_sent,
                prev_received,
                f.pid,
                f.label_source,
                f.source,
                f.process_start,
                f.acting_pid
            ])?;
            // A long-lived connection's counters moved: keep the reading before (the quiet one,
            // when the sampler held it back) and this one, so check-ins inside it can be timed.
            let moved = sent != old_sent || received != old_received;
            let known = f.bytes_sent.is_some() || f.bytes_received.is_some();
            if moved && known && last_seen.max(old_seen) - f.start >= snapshot_min_age {
                let held_back = f.prev_seen.filter(|at| *at > old_seen && *at < last_seen);
                // Continuous traffic moves the run's latest reading instead of adding one per
                // sample: a stream costs a few rows, not one every socket_interval.
                let extended =
                    held_back.is_none() && extend_run(tx, id, old_seen, last_seen, sent, received)?;
                if !extended {
                    if !old_path.is_empty() {
                        insert_snapshot(tx, id, old_seen, old_sent, old_received)?;
                    }
                    if let Some(at) = held_back {
                        insert_snapshot(
                            tx,
                            id,
                            at,
                            f.prev_bytes_sent.unwrap_or(old_sent),
                            f.prev_bytes_received.unwrap_or(old_received),
                        )?;
                    }
                    insert_snapshot(tx, id, last_seen, sent, received)?;
                }
            }
            for s in f.snapshots.iter().flatten() {
                insert_snapshot(tx, id, s.ts, s.bytes_sent, s.bytes_received)?;
            }
            // A row that just learned its program counts as that program's flow from now on.
            let adopted = i64::from(old_path.is_empty() && !f.path.is_empty());
            (
                adopted,
                (sent - old_sent).max(0),
                (received - old_received).max(0),
            )
        }
        None => {
            let id = match inserted {
                Some(id) => id,
                // Looked and found nothing: the identity is free.
                None => insert_flow(tx, f, last_seen)?.ok_or_else(|| {
                    rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE),
                        Some("flows: a row with this identity exists but was not found".into()),
                    )
                })?,
            };
            for s in f.snapshots.iter().flatten() {
                insert_snapshot(tx, id, s.ts, s.bytes_sent, s.bytes_received)?;
            }
            (1, sent.max(0), received.max(0))
        }
    };
    let Some(summary) = summaries else {
        return Ok(());
    };
    let name = summary.names.of(tx, f, last_seen)?;
    let remote = name.as_deref().unwrap_or(&f.remote_address);
    summary.add_destination(f, remote, last_seen, new_flow);
    // The growth happened between the previous reading (or the start) and this one: spread
    // over those hours, as a sampler reading every minute would have counted it. A replayed
    // flow arrives as one line however many hours it lasted, and a connection first seen long
    // after it opened is not a spike in the hour it was noticed.
    let since = previous_seen.unwrap_or(f.start);
    for (i, (hour_start, s, r)) in spread_over_hours(since, last_seen, d_sent, d_received)
        .into_iter()
        .enumerate()
    {
        summary.add_hour(&f.path, hour_start, s, r, if i == 0 { new_flow } else { 0 });
    }
    Ok(())
}

/// The longest stretch one reading is spread over (31 days of hours): older growth is counted
/// in the oldest of those hours, beyond any summary's age anyway.
const MAX_SPREAD_HOURS: i64 = 31 * 24;

/// Splits the bytes counted between `from` and `to` over the hours they cover, in proportion
/// to each hour's share of the interval; the parts add up to the totals exactly. One part, in
/// `to`'s hour, when the interval is empty.
pub fn spread_over_hours(from: f64, to: f64, sent: i64, received: i64) -> Vec<(i64, i64, i64)> {
    // The hour holding the interval's last instant: growth ending on a boundary is not counted
    // in the next hour.
    let last_hour = if to > from {
        (to / 3600.0).ceil() as i64 - 1
    } else {
        (to / 3600.0).floor() as i64
    };
    let first_hour = ((from.min(to) / 3600.0).floor() as i64).max(last_hour - MAX_SPREAD_HOURS + 1);
    let from = from.max(first_hour as f64 * 3600.0);
    let span = to - from;
    if span <= 0.0 || first_hour == last_hour {
        return vec![(last_hour * 3600, sent, received)];
    }
    let mut out = Vec::new();
    let (mut given_sent, mut given_received) = (0i64, 0i64);
    for h in first_hour..=last_hour {
        let end = ((h + 1) as f64 * 3600.0).min(to);
        let covered = ((end - from) / span).clamp(0.0, 1.0);
        let (cum_sent, cum_received) = if h == last_hour {
            (sent, received)
        } else {
            (
                (sent as f64 * covered).round() as i64,
                (received as f64 * covered).round() as i64,
            )
        };
        out.push((
            h * 3600,
            cum_sent - given_sent,
            cum_received - given_received,
        ));
        (given_sent, given_received) = (cum_sent, cum_received);
    }
    out
}

fn insert_payload(tx: &Connection, p: &PayloadObs) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO payloads(ts, pid, path, protocol, remote_address, remote_port, direction, first_bytes,
         payload_class, entropy, bytes_seen, process_start, local_address, local_port, server_first_bytes,
         server_payload_class, server_entropy, server_bytes_seen, sni, ech, http_host, resolved_name)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)",
    )?
    .execute(params![
        p.ts,
        p.pid,
        p.path,
        p.protocol,
        p.remote_address,
        p.remote_port,
        p.direction,
        p.first_bytes,
        p.payload_class,
        p.entropy,
        p.bytes_seen,
        p.process_start,
        p.local_address,
        p.local_port,
        p.server_first_bytes,
        p.server_payload_class,
        p.server_entropy,
        p.server_bytes_seen,
        p.sni,
        p.ech,
        p.http_host,
        p.resolved_name
    ])?;
    Ok(())
}

fn upsert_dns(tx: &Connection, d: &DnsObs) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO dns(name, address, first_seen, last_seen, ttl) VALUES (lower(?1), ?2, ?3, ?3, ?4)
         ON CONFLICT(name, address) DO UPDATE SET first_seen = min(first_seen, excluded.first_seen),
           last_seen = max(last_seen, excluded.last_seen), ttl = ifnull(excluded.ttl, ttl)",
    )?
    .execute(params![d.name, d.address, d.ts, d.ttl])?;
    Ok(())
}

fn upsert_signing(tx: &Connection, s: &SigningObs, observed: Option<f64>) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO signing(path, signer_class, status, team_id, identifier, notarized, observed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![s.path, s.signer_class, s.status, s.team_id, s.identifier, s.notarized, observed])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observation::parse_line;
    use crate::observation::Parsed;

    fn obs(line: &str) -> Observation {
        match parse_line(line).unwrap() {
            Parsed::Observation(o) => o,
            other => panic!("{other:?}"),
        }
    }

    fn flow(start: f64, end: Option<f64>, sent: i64) -> Observation {
        obs(&format!(
            r#"{{"kind":"flow","start":{start},"end":{},"pid":7,"path":"/bin/agent","protocol":"tcp","local_port":5000,"remote_address":"203.0.113.9","remote_port":443,"remote_name":"api.example.com","bytes_sent":{sent},"bytes_received":10}}"#,
            end.map(|e| e.to_string()).unwrap_or("null".into())
        ))
    }

    #[test]
    fn fresh_store_is_current_version_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        store.write_batch(&[flow(100.0, None, 5)], 1).unwrap();
        drop(store);
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        assert_eq!(store.samples().unwrap(), 1);
        assert_eq!(store.observations_stored().unwrap(), 1);
        let v: i64 = store
            .read(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
    }

    #[test]
    fn newer_schema_is_refused_with_a_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join(STORE_FILE)).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let err = Store::open(dir.path(), StoreConfig::default())
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("schema version 99, newer than this launchwatch knows"),
            "{err}"
        );
    }

    #[test]
    fn a_v6_store_gains_flow_snapshots_and_keeps_its_flows() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join(STORE_FILE)).unwrap();
        conn.execute_batch(&format!(
            "BEGIN; {}; PRAGMA user_version = 6; COMMIT;",
            MIGRATIONS[..6].join(";")
        ))
        .unwrap();
        conn.execute(
            "INSERT INTO flows(start, last_seen, pid, path, protocol, local_port, remote_address, remote_port, bytes_sent, bytes_received)
             VALUES (0, 5, 7, '/bin/agent', 'tcp', 5000, '203.0.113.9', 443, 100, 10)",
            [],
        )
        .unwrap();
        drop(conn);
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        let v: i64 = store
            .read(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        // The old row is the same connection: a later reading that moved its counters keeps
        // both readings as snapshots of it.
        store.write_batch(&[reading(60.0, 400, 30)], 1).unwrap();
        let (flows, snaps) = flows_and_snapshots(&store);
        assert_eq!(flows, 1);
        assert_eq!(snaps, vec![(5.0, 100, 10), (60.0, 400, 30)]);
    }

    fn reading(at: f64, sent: i64, received: i64) -> Observation {
        obs(&format!(
            r#"{{"kind":"flow","start":0,"end":null,"last_seen":{at},"pid":7,"path":"/bin/agent","protocol":"tcp","local_port":5000,"remote_address":"203.0.113.9","remote_port":443,"bytes_sent":{sent},"bytes_received":{received}}}"#
        ))
    }

    fn flows_and_snapshots(store: &Store) -> (i64, Vec<(f64, i64, i64)>) {
        store
            .read(|c| {
                let n = c.query_row("SELECT count(*) FROM flows", [], |r| r.get(0))?;
                let mut stmt = c.prepare(
                    "SELECT ts, bytes_sent, bytes_received FROM flow_snapshots ORDER BY flow_id, ts",
                )?;
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                Ok((n, rows.collect::<rusqlite::Result<Vec<_>>>()?))
            })
            .unwrap()
    }

    #[test]
    fn lines_of_one_connection_are_one_flow_with_its_readings_and_round_trip() {
        let store = Store::in_memory(StoreConfig::default()).unwrap();
        // Young and quiet readings cost nothing; once the connection is 30 s old
        // ([store] snapshot_min_age), each move
        // keeps the reading before it and its own. A held-back quiet reading (prev_seen, as the
        // sampler writes it) is kept too.
        store
            .write_batch(
                &[
                    reading(5.0, 100, 10),
                    reading(20.0, 150, 10),
                    reading(55.0, 150, 10),
                    reading(60.0, 400, 30),
                ],
                0,
            )
            .unwrap();
        let mut held = reading(120.0, 700, 40);
        if let Observation::Flow(f) = &mut held {
            (f.prev_seen, f.prev_bytes_sent, f.prev_bytes_received) =
                (Some(115.0), Some(400), Some(30));
        }
        store.write_batch(&[held], 0).unwrap();
        let (flows, snaps) = flows_and_snapshots(&store);
        assert_eq!(flows, 1, "several lines of one connection are one flow");
        let want = vec![
            (55.0, 150, 10),
            (60.0, 400, 30),
            (115.0, 400, 30),
            (120.0, 700, 40),
        ];
        assert_eq!(snaps, want);
        // `record` writes them on the flow's one line; replaying that line restores them.
        let mut out = Vec::new();
        store.export(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().filter(|l| l.contains("\"flow\"")).collect();
        assert_eq!(lines.len(), 1, "{text}");
        assert!(
            lines[0].contains(r#""snapshots":[{"ts":55.0,"bytes_sent":150,"bytes_received":10},"#),
            "{}",
            lines[0]
        );
        let again = Store::in_memory(StoreConfig::default()).unwrap();
        again.write_batch(&[obs(lines[0])], 0).unwrap();
        assert_eq!(flows_and_snapshots(&again), (1, want));
    }

    #[test]
    fn runs_of_like_readings_keep_their_ends_and_time_the_same_check_ins() {
        use crate::analytics::beacon::{in_connection_checkins, Reading};
        let store = Store::in_memory(StoreConfig {
            snapshot_min_age: 1.0,
            ..StoreConfig::default()
        })
        .unwrap();
        // Every 5 s for ten minutes: a stream that sends in every interval (40–200 s), quiet,
        // check-ins at 302 and 362 (the latter over two intervals), a download that only
        // receives (400–500 s), a check-in at 522.
        let (mut sent, mut received) = (600i64, 4000i64);
        let mut full = Vec::new();
        for i in 0..120 {
            let t = i as f64 * 5.0;
            if (40.0..200.0).contains(&t) || [305.0, 365.0, 370.0, 525.0].contains(&t) {
                sent += 100;
                received += 50;
            }
            if (400.0..500.0).contains(&t) {
                received += 100_000;
            }
            full.push((t, sent, received));
        }
        // Written as the sampler writes: each reading that moved, with the held-back quiet
        // reading before it.
        let mut written: Option<(i64, i64)> = None;
        let mut held: Option<(f64, i64, i64)> = None;
        for &(t, s, r) in &full {
            if written == Some((s, r)) {
                held = Some((t, s, r));
                continue;
            }
            let mut line = reading(t, s, r);
            if let (Observation::Flow(f), Some((at, hs, hr))) = (&mut line, held.take()) {
                (f.prev_seen, f.prev_bytes_sent, f.prev_bytes_received) =
                    (Some(at), Some(hs), Some(hr));
            }
            store.write_batch(&[line], 0).unwrap();
            written = Some((s, r));
        }
        let readings = |rows: &[(f64, i64, i64)]| -> Vec<Reading> {
            rows.iter()
                .map(|(ts, s, r)| Reading {
                    ts: *ts,
                    sent: *s as f64,
                    received: *r as f64,
                })
                .collect()
        };
        let (_, kept) = flows_and_snapshots(&store);
        assert!(kept.len() <= 16, "{} rows kept: {kept:?}", kept.len());
        let want = in_connection_checkins(&readings(&full));
        assert_eq!(
            want.iter().map(|c| c.start).collect::<Vec<_>>(),
            [40.0, 305.0, 365.0, 525.0]
        );
        assert_eq!(in_connection_checkins(&readings(&kept)), want);
    }

    #[test]
    fn snapshots_age_out_and_go_with_their_flows() {
        let store = Store::in_memory(StoreConfig::default()).unwrap();
        let line = |start: f64, port: u16| {
            obs(&format!(
                r#"{{"kind":"flow","start":{start},"end":{},"path":"/bin/agent","protocol":"tcp","local_port":{port},"remote_address":"203.0.113.9","remote_port":443,"bytes_sent":30,"bytes_received":3,
                   "snapshots":[{{"ts":{start},"bytes_sent":10,"bytes_received":1}},{{"ts":{},"bytes_sent":20.0,"bytes_received":2}},{{"ts":{},"bytes_sent":30,"bytes_received":3}}]}}"#,
                start + 90_000.0,
                start + 100.0,
                start + 90_000.0
            ))
        };
        // One connection lasting a day, one short-lived and long gone.
        store
            .write_batch(&[line(200_000.0, 1), line(10_000.0, 2)], 0)
            .unwrap();
        assert_eq!(flows_and_snapshots(&store).1.len(), 6);
        store.prune(300_000.0).unwrap();
        let (flows, snaps) = flows_and_snapshots(&store);
        assert_eq!(flows, 1);
        // The day-long connection keeps its readings inside the retention only; the gone
        // flow's readings went with it.
        assert_eq!(snaps, vec![(290_000.0, 30, 3)]);
        let orphans: i64 = store
            .read(|c| {
                c.query_row(
                    "SELECT count(*) FROM flow_snapshots WHERE flow_id NOT IN (SELECT id FROM flows)",
                    [],
                    |r| r.get(0),
                )
            })
            .unwrap();
        assert_eq!(orphans, 0);
    }

    #[test]
    fn a_v5_store_gains_the_acting_pid_and_keeps_its_flows() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join(STORE_FILE)).unwrap();
        let v5: Vec<&str> = MIGRATIONS[..5].to_vec();
        conn.execute_batch(&format!(
            "BEGIN; {}; PRAGMA user_version = 5; COMMIT;",
            v5.join(";")
        ))
        .unwrap();
        conn.execute(
            "INSERT INTO flows(start, last_seen, pid, path, protocol, remote_address, remote_port)
             VALUES (1, 2, 7, '/bin/x', 'tcp', '192.0.2.1', 443)",
            [],
        )
        .unwrap();
        drop(conn);
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        store
            .write_batch(
                &[obs(r#"{"kind":"flow","start":3,"pid":8,"acting_pid":91,"path":"/Applications/A.app/Contents/MacOS/A","protocol":"tcp","remote_address":"203.0.113.9","remote_port":443}"#)],
                1,
            )
            .unwrap();
        let mut out = Vec::new();
        store.export(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().filter(|l| l.contains("\"flow\"")).collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            !lines[0].contains("acting_pid"),
            "the old row has none: {}",
            lines[0]
        );
        assert!(lines[1].contains("\"acting_pid\":91"), "{}", lines[1]);
    }

    /// The process-instance migration wherever the lead numbers it: the store it starts from
    /// is every migration before it.
    fn process_instance_migration() -> usize {
        MIGRATIONS
            .iter()
            .position(|m| m.contains("CREATE TABLE process_instances"))
            .unwrap()
    }

    fn process_rows(c: &Connection) -> Vec<String> {
        let mut stmt = c
            .prepare(
                "SELECT ts, pid, start_time, ppid, uid, path, name, cpu_time, launchd_label, pgid, label_source
                 FROM process_samples ORDER BY ts, pid, path",
            )
            .unwrap();
        let rows = stmt
            .query_map([], |r| {
                let mut cells = Vec::new();
                for i in 0..11 {
                    cells.push(format!("{:?}", r.get_ref(i)?));
                }
                Ok(cells.join("|"))
            })
            .unwrap();
        rows.collect::<rusqlite::Result<_>>().unwrap()
    }

    #[test]
    fn process_samples_become_instances_plus_cpu_readings_with_every_row_kept() {
        let at = process_instance_migration();
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join(STORE_FILE)).unwrap();
        conn.execute_batch(&format!(
            "BEGIN; {}; PRAGMA user_version = {at}; COMMIT;",
            MIGRATIONS[..at].join(";")
        ))
        .unwrap();
        // An idle daemon sampled three times, a process that exec'd (same pid and start, new
        // path and name), one whose label was learned later, and NULLs where old rows had them.
        conn.execute_batch(
            "INSERT INTO process_samples(ts, pid, start_time, ppid, uid, path, name, cpu_time, launchd_label, pgid, label_source) VALUES
               (10, 100, 1.5, 1, 0, '/usr/sbin/d', 'd', 2.0, 'com.example.d', 100, 'cgroup'),
               (20, 100, 1.5, 1, 0, '/usr/sbin/d', 'd', 2.0, 'com.example.d', 100, 'cgroup'),
               (30, 100, 1.5, 1, 0, '/usr/sbin/d', 'd', 2.5, 'com.example.d', 100, 'cgroup'),
               (10, 200, 9.25, 100, 501, '/bin/sh', 'sh', 0.01, NULL, 200, NULL),
               (20, 200, 9.25, 100, 501, '/usr/bin/curl', 'curl', 0.2, NULL, 200, NULL),
               (20, 300, 12.0, 100, NULL, NULL, NULL, 0.0, NULL, NULL, NULL),
               (30, 300, 12.0, 100, NULL, NULL, NULL, 0.5, 'com.example.d', NULL, 'ppid');",
        )
        .unwrap();
        let before = process_rows(&conn);
        drop(conn);

        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        let (after, instances, readings) = store
            .read(|c| {
                Ok((
                    process_rows(c),
                    c.query_row("SELECT count(*) FROM process_instances", [], |r| {
                        r.get::<_, i64>(0)
                    })?,
                    c.query_row("SELECT count(*) FROM process_cpu", [], |r| {
                        r.get::<_, i64>(0)
                    })?,
                ))
            })
            .unwrap();
        assert_eq!(after, before, "the view gives back every sampled row");
        // d once, sh and curl (one exec), pid 300 before and after its label: 5 instance rows.
        assert_eq!((instances, readings), (5, 7));

        // New readings of a known instance add a reading, not an instance row.
        let reading = |ts: f64, cpu: f64| {
            obs(&format!(
                r#"{{"kind":"process","ts":{ts},"pid":100,"start_time":1.5,"ppid":1,"uid":0,"path":"/usr/sbin/d","name":"d","cpu_time":{cpu},"launchd_label":"com.example.d","pgid":100,"label_source":"cgroup"}}"#
            ))
        };
        store.write_batch(&[reading(40.0, 3.0)], 1).unwrap();
        store.write_batch(&[reading(50.0, 3.5)], 1).unwrap();
        let (instances, readings) = store
            .read(|c| {
                Ok((
                    c.query_row("SELECT count(*) FROM process_instances", [], |r| {
                        r.get::<_, i64>(0)
                    })?,
                    c.query_row("SELECT count(*) FROM process_cpu", [], |r| {
                        r.get::<_, i64>(0)
                    })?,
                ))
            })
            .unwrap();
        assert_eq!((instances, readings), (5, 9));
        // And they export like any sample did.
        let mut out = Vec::new();
        store.export(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text.lines().filter(|l| l.contains("\"process\"")).count(),
            9
        );
        assert!(
            text.contains(r#""ts":50.0,"pid":100,"start_time":1.5"#)
                || text.contains(r#""ts":50,"pid":100"#),
            "{text}"
        );
    }

    #[test]
    fn pruning_readings_drops_instances_left_without_any() {
        let store = Store::in_memory(StoreConfig {
            max_age_hours: 1.0,
            ..StoreConfig::default()
        })
        .unwrap();
        let p = |ts: f64, pid: i64| {
            obs(&format!(
                r#"{{"kind":"process","ts":{ts},"pid":{pid},"start_time":1,"path":"/bin/p{pid}","cpu_time":1}}"#
            ))
        };
        store
            .write_batch(&[p(100.0, 1), p(100.0, 2), p(7000.0, 2)], 1)
            .unwrap();
        store.prune(7200.0).unwrap();
        let left: Vec<(i64, i64)> = store
            .read(|c| {
                let mut stmt = c.prepare(
                    "SELECT i.pid, (SELECT count(*) FROM process_cpu WHERE instance = i.id) FROM process_instances i",
                )?;
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect()
            })
            .unwrap();
        assert_eq!(left, vec![(2, 1)]);
        // A reading of the pruned instance after the prune makes its row again.
        store.write_batch(&[p(7100.0, 1)], 1).unwrap();
        let n: i64 = store
            .read(|c| {
                c.query_row(
                    "SELECT count(*) FROM process_samples WHERE pid = 1",
                    [],
                    |r| r.get(0),
                )
            })
            .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn a_v3_store_is_migrated_to_v4_and_its_rows_export_with_the_new_fields() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join(STORE_FILE)).unwrap();
        // Exactly what a v3 build created: migrations 1-3.
        conn.execute_batch(&format!(
            "BEGIN; {}; {}; {}; PRAGMA user_version = 3; COMMIT;",
            MIGRATIONS[0], MIGRATIONS[1], MIGRATIONS[2]
        ))
        .unwrap();
        conn.execute(
            "INSERT INTO flows(start, last_seen, pid, path, protocol, remote_address, remote_port, bytes_sent)
             VALUES (1, 2, 7, '/bin/x', 'tcp', '192.0.2.1', 443, 99)",
            [],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO process_samples(ts, pid, start_time, ppid, path, cpu_time)
             VALUES (5, 7, 1, 1, '/bin/x', 0.5)",
            [],
        )
        .unwrap();
        drop(conn);
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        // Migrated through v4 to whatever is current.
        const { assert!(SCHEMA_VERSION >= 4) };
        // Old rows survive with the new columns NULL; new rows carry them.
        store
            .write_batch(
                &[
                    Observation::Process(ProcessObs {
                        ts: 6.0,
                        pid: 8,
                        start_time: 2.0,
                        ppid: Some(7),
                        pgid: Some(7),
                        uid: None,
                        path: Some("/bin/y".into()),
                        name: None,
                        cpu_time: 0.0,
                        launchd_label: Some("job".into()),
                        label_source: Some("cgroup".into()),
                        responsible_pid: None,
                    }),
                    obs(r#"{"kind":"flow","start":3,"end":8,"pid":8,"path":"/bin/y","protocol":"tcp","remote_address":"203.0.113.9","remote_port":443,"launchd_label":"job","label_source":"cgroup","source":"tracepoint"}"#),
                ],
                0,
            )
            .unwrap();
        let mut out = Vec::new();
        store.export(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines.iter().any(|l| l.contains("\"pid\":7")
                && l.contains("\"kind\":\"flow\"")
                && !l.contains("source")),
            "{text}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains("\"pgid\":7") && l.contains("\"label_source\":\"cgroup\"")),
            "{text}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains("\"source\":\"tracepoint\"")),
            "{text}"
        );
        // The round trip parses back to the same observations.
        for l in &lines {
            crate::observation::parse_line(l).unwrap();
        }
    }

    #[test]
    fn a_v1_store_is_migrated_and_keeps_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join(STORE_FILE)).unwrap();
        conn.execute_batch(&format!(
            "BEGIN; {}; PRAGMA user_version = 1; COMMIT;",
            MIGRATIONS[0]
        ))
        .unwrap();
        conn.execute(
            "INSERT INTO flows(start, last_seen, path, protocol, remote_address, remote_port, bytes_sent)
             VALUES (1, 2, '/bin/x', 'tcp', '192.0.2.1', 443, 99)",
            [],
        )
        .unwrap();
        drop(conn);
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        let (version, sent, prev): (i64, i64, Option<f64>) = store
            .read(|c| {
                c.query_row("SELECT (SELECT user_version FROM pragma_user_version), bytes_sent, prev_seen FROM flows", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
            })
            .unwrap();
        assert_eq!((version, sent, prev), (SCHEMA_VERSION, 99, None));
    }

    #[test]
    fn the_payload_migration_keeps_rows_and_adds_both_directions_and_names() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join(STORE_FILE)).unwrap();
        let previous = MIGRATIONS.len() - 1;
        for (i, sql) in MIGRATIONS[..previous].iter().enumerate() {
            conn.execute_batch(&format!(
                "BEGIN; {sql}; PRAGMA user_version = {}; COMMIT;",
                i + 1
            ))
            .unwrap();
        }
        conn.execute(
            "INSERT INTO payloads(ts, pid, path, protocol, remote_address, remote_port, direction, payload_class, entropy, bytes_seen)
             VALUES (5, 7, '/bin/x', 'tcp', '192.0.2.1', 443, 'out', 'random', 7.1, 256)",
            [],
        )
        .unwrap();
        drop(conn);
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        let (version, class, sni): (i64, String, Option<String>) = store
            .read(|c| {
                c.query_row(
                    "SELECT (SELECT user_version FROM pragma_user_version), payload_class, sni FROM payloads",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
            })
            .unwrap();
        assert_eq!(
            (version, class.as_str(), sni),
            (SCHEMA_VERSION, "random", None)
        );
        // A capture row round-trips through the new columns and the export.
        store
            .write_batch(
                &[obs(
                    r#"{"kind":"payload","ts":9,"pid":8,"protocol":"tcp","remote_address":"203.0.113.9","remote_port":443,"local_address":"10.0.0.1","local_port":40000,"payload_class":"tls","entropy":5.0,"bytes_seen":256,"server_payload_class":"tls","server_entropy":6.0,"server_bytes_seen":99,"sni":"a.example","ech":1,"http_host":"h.example","resolved_name":"r.example"}"#,
                )],
                0,
            )
            .unwrap();
        let mut out = Vec::new();
        store.export(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let line = text.lines().find(|l| l.contains("a.example")).unwrap();
        for needle in [
            r#""server_payload_class":"tls""#,
            r#""server_bytes_seen":99"#,
            r#""ech":1"#,
            r#""http_host":"h.example""#,
            r#""resolved_name":"r.example""#,
            r#""local_port":40000"#,
        ] {
            assert!(line.contains(needle), "{needle} in {line}");
        }
    }

    #[test]
    fn an_in_memory_store_told_to_skip_summaries_writes_flows_only_and_a_file_never_skips() {
        let counts = |store: &Store| -> (i64, i64, i64) {
            store
                .read(|c| {
                    c.query_row(
                        "SELECT (SELECT count(*) FROM flows), (SELECT count(*) FROM destination_summary),
                                (SELECT count(*) FROM hourly_bytes)",
                        [],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                })
                .unwrap()
        };
        let store = Store::in_memory(StoreConfig::default()).unwrap();
        store.keep_summaries(false);
        store.write_batch(&[flow(100.0, None, 10)], 1).unwrap();
        assert_eq!(counts(&store), (1, 0, 0));
        store.keep_summaries(true);
        store.write_batch(&[flow(200.0, None, 10)], 1).unwrap();
        assert_eq!(counts(&store), (2, 1, 1));

        let dir = tempfile::tempdir().unwrap();
        let file = Store::open(dir.path(), StoreConfig::default()).unwrap();
        file.keep_summaries(false);
        file.write_batch(&[flow(100.0, None, 10)], 1).unwrap();
        assert_eq!(counts(&file), (1, 1, 1));
    }

    #[test]
    fn a_flow_first_seen_without_owner_is_upgraded_not_duplicated() {
        let store = Store::in_memory(StoreConfig::default()).unwrap();
        let Observation::Flow(mut f) = flow(100.0, None, 10) else {
            unreachable!()
        };
        let (pid, path) = (f.pid.take(), std::mem::take(&mut f.path));
        store
            .write_batch(&[Observation::Flow(f.clone())], 0)
            .unwrap();
        f.pid = pid;
        f.path = path;
        f.bytes_sent = Some(30);
        f.last_seen = Some(105.0);
        store.write_batch(&[Observation::Flow(f)], 0).unwrap();
        let (rows, owner, sent, agent_flows): (i64, String, i64, i64) = store
            .read(|c| {
                c.query_row(
                    "SELECT count(*), max(path), max(bytes_sent),
                            (SELECT flows FROM destination_summary WHERE path = '/bin/agent') FROM flows",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
            })
            .unwrap();
        assert_eq!(
            (rows, owner.as_str(), sent, agent_flows),
            (1, "/bin/agent", 30, 1)
        );
    }

    #[test]
    fn the_previous_reading_is_kept_for_rates() {
        let store = Store::in_memory(StoreConfig::default()).unwrap();
        let mut f = match flow(100.0, None, 10) {
            Observation::Flow(f) => f,
            _ => unreachable!(),
        };
        f.last_seen = Some(105.0);
        store
            .write_batch(&[Observation::Flow(f.clone())], 0)
            .unwrap();
        f.last_seen = Some(110.0);
        f.bytes_sent = Some(60);
        store.write_batch(&[Observation::Flow(f)], 0).unwrap();
        let row: (f64, f64, i64, i64) = store
            .read(|c| {
                c.query_row(
                    "SELECT last_seen, prev_seen, bytes_sent, prev_bytes_sent FROM flows",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
            })
            .unwrap();
        assert_eq!(row, (110.0, 105.0, 60, 10));
    }

    #[test]
    fn a_failed_migration_leaves_the_old_version() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join(STORE_FILE)).unwrap();
        // A table the v1 migration wants to create already exists: the migration must fail whole.
        conn.execute_batch("CREATE TABLE flows(x)").unwrap();
        drop(conn);
        let err = Store::open(dir.path(), StoreConfig::default())
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("migration to schema version 1 failed"),
            "{err}"
        );
        let conn = Connection::open(dir.path().join(STORE_FILE)).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        let meta: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'meta'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!((v, meta), (0, 0));
    }

    #[test]
    fn a_connection_seen_again_counts_once_with_byte_growth_only() {
        let store = Store::in_memory(StoreConfig::default()).unwrap();
        store.write_batch(&[flow(3600.0, None, 100)], 1).unwrap();
        store
            .write_batch(&[flow(3600.0, Some(3700.0), 250)], 1)
            .unwrap();
        let (flows, sent, dest_flows): (i64, i64, i64) = store
            .read(|c| {
                c.query_row(
                    "SELECT (SELECT count(*) FROM flows), (SELECT sum(bytes_sent) FROM hourly_bytes),
                            (SELECT flows FROM destination_summary WHERE remote = 'api.example.com')",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
            })
            .unwrap();
        assert_eq!((flows, sent, dest_flows), (1, 250, 1));
        assert_eq!(store.samples().unwrap(), 2);
    }

    #[test]
    fn growth_is_spread_over_the_hours_it_covers() {
        // 1.5 h starting half-way through an hour: a quarter, half a quarter… exactly.
        let parts = spread_over_hours(1800.0, 7200.0, 3000, 301);
        assert_eq!(parts, vec![(0, 1000, 100), (3600, 2000, 201)]);
        assert_eq!(spread_over_hours(5000.0, 5000.0, 7, 8), vec![(3600, 7, 8)]);
        // Ten hours of one replayed line: ten hours of summary, summing to the total.
        let parts = spread_over_hours(0.0, 36_000.0, 1_000_003, 0);
        assert_eq!(parts.len(), 10);
        assert_eq!(parts.iter().map(|p| p.1).sum::<i64>(), 1_000_003);
        // Never more than 31 days of hours, whatever the start says.
        assert_eq!(spread_over_hours(0.0, 400.0 * 86400.0, 1, 1).len(), 31 * 24);
    }

    #[test]
    fn retention_by_age_keeps_summaries() {
        let store = Store::in_memory(StoreConfig::default()).unwrap();
        store
            .write_batch(
                &[
                    flow(1000.0, Some(1010.0), 1),
                    flow(90_000.0, Some(90_010.0), 1),
                ],
                0,
            )
            .unwrap();
        let pruned = store.prune(90_100.0).unwrap();
        assert_eq!(pruned.by_age, 1);
        let (flows, summaries): (i64, i64) = store
            .read(|c| {
                c.query_row(
                    "SELECT (SELECT count(*) FROM flows), (SELECT flows FROM destination_summary)",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
            })
            .unwrap();
        assert_eq!(
            (flows, summaries),
            (1, 2),
            "the summary remembers the pruned flow"
        );
        // 31 days later the summaries go too.
        let pruned = store.prune(90_100.0 + 31.0 * 86400.0).unwrap();
        assert!(pruned.summaries >= 2);
    }

    #[test]
    fn retention_by_size_bounds_live_pages_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let limits = StoreConfig {
            max_mib: 0.25,
            ..StoreConfig::default()
        };
        let store = Store::open(dir.path(), limits).unwrap();
        let batch: Vec<Observation> = (0..4000)
            .map(|i| {
                obs(&format!(
                    r#"{{"kind":"process","ts":{i},"pid":{i},"start_time":0,"cpu_time":1,"path":"/some/long/path/to/a/binary/{i}"}}"#
                ))
            })
            .collect();
        store.write_batch(&batch, 1).unwrap();
        assert!(store.live_bytes().unwrap() > 256 * 1024);
        // Each prune (the sampler runs one a minute) takes at most three tenths of the rows, so
        // a store whose summaries grew cannot lose most of its history in one call.
        let pruned = store.prune(4000.0).unwrap();
        assert!(pruned.by_size > 0 && pruned.by_size <= 1300, "{pruned:?}");
        for _ in 0..20 {
            store.prune(4000.0).unwrap();
        }
        assert!(store.live_bytes().unwrap() <= 256 * 1024);
        // The newest rows survive: oldest go first.
        let newest: i64 = store
            .read(|c| c.query_row("SELECT max(pid) FROM process_samples", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(newest, 3999);
        assert!(disk_bytes(store.file().unwrap()) < 1024 * 1024);
    }

    #[test]
    fn query_imports_history_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let disk = Store::open(dir.path(), StoreConfig::default()).unwrap();
        disk.write_batch(&[flow(100.0, None, 5)], 3).unwrap();
        let mut mem = Store::in_memory(StoreConfig::default()).unwrap();
        assert!(mem.import_history(dir.path()).unwrap());
        assert_eq!(mem.samples().unwrap(), 3);
        assert_eq!(mem.observations_stored().unwrap(), 1);
        assert_eq!(mem.size_bytes().unwrap(), disk_bytes(disk.file().unwrap()));
        let empty = tempfile::tempdir().unwrap();
        assert!(!mem.import_history(empty.path()).unwrap());
    }

    fn conn_flow(
        start: f64,
        pid: Option<i64>,
        path: &str,
        local_port: u16,
        remote: (&str, u16),
    ) -> FlowObs {
        FlowObs {
            start,
            pid,
            path: path.into(),
            protocol: "tcp".into(),
            local_address: Some("10.0.0.2".into()),
            local_port: Some(local_port),
            remote_address: remote.0.into(),
            remote_port: remote.1,
            ..FlowObs::default()
        }
    }

    fn reading_of(f: &FlowObs, at: f64, sent: i64, received: i64) -> FlowObs {
        FlowObs {
            last_seen: Some(at),
            bytes_sent: Some(sent),
            bytes_received: Some(received),
            ..f.clone()
        }
    }

    /// Every row of the tables a flow write touches, in a stable order.
    fn dump(store: &Store) -> Vec<String> {
        store
            .read(|c| {
                let mut out = Vec::new();
                for sql in [
                    "SELECT * FROM flows ORDER BY id",
                    "SELECT * FROM flow_snapshots ORDER BY flow_id, ts",
                    "SELECT * FROM destination_summary ORDER BY path, remote, remote_port, protocol",
                    "SELECT * FROM hourly_bytes ORDER BY path, hour_start",
                ] {
                    let mut stmt = c.prepare(sql)?;
                    let n = stmt.column_count();
                    let mut rows = stmt.query([])?;
                    while let Some(r) = rows.next()? {
                        let values: Vec<rusqlite::types::Value> =
                            (0..n).map(|i| r.get(i)).collect::<rusqlite::Result<_>>()?;
                        out.push(format!("{sql}: {values:?}"));
                    }
                }
                Ok(out)
            })
            .unwrap()
    }

    /// The store as it behaved before the in-memory keys: every owned flow looks for its row.
    fn always_looking(store: &Store) {
        store.flow_keys().ownerless = None;
    }

    /// A mix of everything the write path distinguishes: ownerless rows upgraded in the same
    /// batch and later, one connection several times in a batch, hours crossed, names from DNS,
    /// from the flow itself, from a payload's SNI, and none.
    fn mixed_observations() -> (Vec<Observation>, Vec<Observation>) {
        let names = vec![
            Observation::Dns(DnsObs {
                ts: 900.0,
                name: "cdn.example.net".into(),
                address: "198.51.100.7".into(),
                ttl: Some(60),
            }),
            Observation::Payload(PayloadObs {
                ts: 5_000.0,
                pid: Some(9),
                path: Some("/bin/tls".into()),
                protocol: "tcp".into(),
                remote_address: "203.0.113.5".into(),
                remote_port: 443,
                direction: None,
                first_bytes: None,
                payload_class: Some("tls".into()),
                entropy: None,
                bytes_seen: Some(300),
                process_start: None,
                local_address: None,
                local_port: Some(41_000),
                server_first_bytes: None,
                server_payload_class: None,
                server_entropy: None,
                server_bytes_seen: None,
                sni: Some("sni.example".into()),
                ech: None,
                http_host: None,
                resolved_name: None,
            }),
        ];
        let t1 = conn_flow(1_000.0, None, "", 40_001, ("198.51.100.7", 443));
        let t1_owned = conn_flow(
            1_000.0,
            Some(7),
            "/bin/agent",
            40_001,
            ("198.51.100.7", 443),
        );
        let long = conn_flow(
            3_000.0,
            Some(7),
            "/bin/agent",
            40_002,
            ("198.51.100.7", 443),
        );
        let tls = conn_flow(4_990.0, Some(9), "/bin/tls", 41_000, ("203.0.113.5", 443));
        let tls_other = conn_flow(4_990.0, Some(9), "/bin/tls", 41_001, ("203.0.113.5", 443));
        let named = FlowObs {
            remote_name: Some("api.example.com".into()),
            ..conn_flow(6_000.0, Some(8), "/bin/named", 40_003, ("192.0.2.9", 8443))
        };
        let t2 = conn_flow(7_000.0, None, "", 40_004, ("192.0.2.10", 80));
        // An owner known by path only still upgrades the ownerless row.
        let t2_path = conn_flow(7_000.0, None, "/bin/late", 40_004, ("192.0.2.10", 80));
        let first: Vec<FlowObs> = vec![
            reading_of(&t1, 1_005.0, 10, 5),
            reading_of(&long, 3_000.0, 100, 10),
            reading_of(&t1_owned, 1_010.0, 50, 20),
            reading_of(&long, 3_000.0 + 2.5 * 3600.0, 9_000, 700),
            reading_of(&tls, 5_000.0, 300, 900),
            reading_of(&tls_other, 5_001.0, 30, 90),
            reading_of(&named, 6_010.0, 1, 2),
            reading_of(&t2, 7_001.0, 0, 0),
            reading_of(&long, 3_000.0 + 3.0 * 3600.0, 9_500, 800),
        ];
        let second: Vec<FlowObs> = vec![
            reading_of(&t2_path, 7_030.0, 40, 40),
            FlowObs {
                end: Some(3_000.0 + 5.0 * 3600.0),
                state: Some("CLOSED".into()),
                ..reading_of(&long, 3_000.0 + 5.0 * 3600.0, 20_000, 900)
            },
            reading_of(&t1_owned, 1_100.0, 70, 20),
            reading_of(&named, 6_100.0, 9, 9),
        ];
        let flows = |v: Vec<FlowObs>| v.into_iter().map(Observation::Flow).collect::<Vec<_>>();
        let mut first = flows(first);
        first.splice(0..0, names);
        (first, flows(second))
    }

    #[test]
    fn batched_writes_hold_exactly_what_one_flow_at_a_time_holds() {
        let (first, second) = mixed_observations();
        let batched = Store::in_memory(StoreConfig::default()).unwrap();
        batched.write_batch(&first, 1).unwrap();
        batched.write_batch(&second, 1).unwrap();
        // Row by row, every owned flow looking for its row first, as the store did before.
        let single = Store::in_memory(StoreConfig::default()).unwrap();
        always_looking(&single);
        for o in first.iter().chain(&second) {
            single.write_batch(std::slice::from_ref(o), 0).unwrap();
            always_looking(&single);
        }
        let got = dump(&batched);
        assert_eq!(got, dump(&single));
        // And what that is: the ownerless rows were upgraded, not duplicated; the connection
        // written three times in one batch is one row counted once.
        let (rows, agent_flows, agent_bytes, late): (i64, i64, i64, i64) = batched
            .read(|c| {
                c.query_row(
                    "SELECT (SELECT count(*) FROM flows),
                            (SELECT sum(flows) FROM destination_summary WHERE path = '/bin/agent'),
                            (SELECT sum(bytes_sent) FROM hourly_bytes WHERE path = '/bin/agent'),
                            (SELECT count(*) FROM flows WHERE path = '/bin/late' AND pid IS NULL)",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
            })
            .unwrap();
        assert_eq!((rows, agent_flows, late), (6, 2, 1), "{got:#?}");
        // The owner's hours hold its growth after adoption plus the long flow's bytes.
        assert_eq!(agent_bytes, (70 - 10) + 20_000, "{got:#?}");
    }

    #[test]
    fn summary_names_are_the_names_the_tables_give_each_flow() {
        let (first, second) = mixed_observations();
        let store = Store::in_memory(StoreConfig::default()).unwrap();
        store.write_batch(&first, 1).unwrap();
        store.write_batch(&second, 1).unwrap();
        let (missing, names): (Vec<String>, Vec<String>) = store
            .read(|c| {
                let mut stmt = c.prepare(&format!(
                    "SELECT f.path || ' ' || coalesce({}, f.remote_address),
                            EXISTS (SELECT 1 FROM destination_summary d WHERE d.path = f.path
                                    AND d.remote = coalesce({0}, f.remote_address)
                                    AND d.remote_port = f.remote_port AND d.protocol = f.protocol)
                     FROM flows f WHERE f.path != '' ORDER BY f.id",
                    crate::analytics::FLOW_NAME_SQL
                ))?;
                let rows =
                    stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?)))?;
                let rows: Vec<(String, bool)> = rows.collect::<rusqlite::Result<_>>()?;
                Ok((
                    rows.iter().filter(|r| !r.1).map(|r| r.0.clone()).collect(),
                    rows.into_iter().map(|r| r.0).collect(),
                ))
            })
            .unwrap();
        assert!(missing.is_empty(), "no summary for {missing:?}");
        assert_eq!(
            names,
            [
                "/bin/agent cdn.example.net",
                "/bin/agent cdn.example.net",
                "/bin/tls sni.example",
                "/bin/tls 203.0.113.5",
                "/bin/named api.example.com",
                "/bin/late 192.0.2.10",
            ]
        );
    }

    #[test]
    fn an_ownerless_row_is_upgraded_across_batches_reopens_and_imports() {
        let t = conn_flow(500.0, None, "", 40_100, ("192.0.2.20", 443));
        let owned = conn_flow(500.0, Some(12), "/bin/owner", 40_100, ("192.0.2.20", 443));
        let rows = |store: &Store| -> Vec<(Option<i64>, String, i64)> {
            store
                .read(|c| {
                    let mut stmt =
                        c.prepare("SELECT pid, path, bytes_sent FROM flows ORDER BY id")?;
                    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                    rows.collect()
                })
                .unwrap()
        };
        let dir = tempfile::tempdir().unwrap();
        let disk = Store::open(dir.path(), StoreConfig::default()).unwrap();
        disk.write_batch(&[Observation::Flow(reading_of(&t, 501.0, 5, 5))], 1)
            .unwrap();
        drop(disk);
        // A new process learns of the ownerless row from the file.
        let disk = Store::open(dir.path(), StoreConfig::default()).unwrap();
        let mut mem = Store::in_memory(StoreConfig::default()).unwrap();
        assert!(mem.import_history(dir.path()).unwrap());
        for store in [&disk, &mem] {
            store
                .write_batch(&[Observation::Flow(reading_of(&owned, 510.0, 9, 9))], 1)
                .unwrap();
            assert_eq!(rows(store), [(Some(12), "/bin/owner".to_string(), 9)]);
        }
        // An ownerless sighting after the owned one is a row of its own (as before), and a
        // later owned reading goes to the owned row.
        disk.write_batch(&[Observation::Flow(reading_of(&t, 520.0, 11, 11))], 1)
            .unwrap();
        disk.write_batch(&[Observation::Flow(reading_of(&owned, 530.0, 13, 13))], 1)
            .unwrap();
        assert_eq!(
            rows(&disk),
            [
                (Some(12), "/bin/owner".to_string(), 13),
                (None, String::new(), 11)
            ]
        );
    }

    #[test]
    fn an_ownerless_row_another_writer_added_is_upgraded() {
        let t = conn_flow(600.0, None, "", 40_150, ("192.0.2.21", 443));
        let owned = conn_flow(600.0, Some(13), "/bin/owner", 40_150, ("192.0.2.21", 443));
        let dir = tempfile::tempdir().unwrap();
        let extension = Store::open(dir.path(), StoreConfig::default()).unwrap();
        let other = conn_flow(600.0, Some(13), "/bin/owner", 40_151, ("192.0.2.21", 443));
        extension
            .write_batch(&[Observation::Flow(reading_of(&other, 601.0, 1, 1))], 1)
            .unwrap();
        // A second writer on the same file (record --state-dir beside a running extension)
        // sees the connection first, without its owner.
        let recorder = Store::open(dir.path(), StoreConfig::default()).unwrap();
        recorder
            .write_batch(&[Observation::Flow(reading_of(&t, 601.0, 5, 5))], 1)
            .unwrap();
        extension
            .write_batch(&[Observation::Flow(reading_of(&owned, 610.0, 9, 9))], 1)
            .unwrap();
        let rows: Vec<(Option<i64>, String, i64)> = extension
            .read(|c| {
                let mut stmt = c.prepare(
                    "SELECT pid, path, bytes_sent FROM flows WHERE local_port = 40150 ORDER BY id",
                )?;
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                rows.collect()
            })
            .unwrap();
        assert_eq!(rows, [(Some(13), "/bin/owner".to_string(), 9)]);
    }

    #[test]
    fn a_connection_already_stored_by_an_earlier_process_is_updated_not_inserted() {
        let dir = tempfile::tempdir().unwrap();
        let f = conn_flow(800.0, Some(3), "/bin/svc", 40_200, ("192.0.2.30", 443));
        let disk = Store::open(dir.path(), StoreConfig::default()).unwrap();
        disk.write_batch(&[Observation::Flow(reading_of(&f, 805.0, 10, 1))], 1)
            .unwrap();
        drop(disk);
        // This process never wrote it: the insert meets the identity index, then it updates.
        let disk = Store::open(dir.path(), StoreConfig::default()).unwrap();
        disk.write_batch(&[Observation::Flow(reading_of(&f, 815.0, 30, 2))], 1)
            .unwrap();
        let row: (i64, i64, f64, i64, i64, i64) = disk
            .read(|c| {
                c.query_row(
                    "SELECT count(*), max(bytes_sent), max(prev_seen),
                            (SELECT flows FROM destination_summary), (SELECT sum(bytes_sent) FROM hourly_bytes),
                            (SELECT sum(flows) FROM hourly_bytes) FROM flows",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
                )
            })
            .unwrap();
        assert_eq!(row, (1, 30, 805.0, 1, 30, 1));
    }

    #[test]
    fn hourly_bytes_of_one_batch_spread_and_add_up_per_hour() {
        let store = Store::in_memory(StoreConfig::default()).unwrap();
        let a = conn_flow(37_800.0, Some(4), "/bin/h", 40_300, ("192.0.2.40", 443));
        let b = conn_flow(39_600.0, Some(4), "/bin/h", 40_301, ("192.0.2.40", 443));
        store
            .write_batch(
                &[
                    Observation::Flow(reading_of(&a, 43_200.0, 4_000, 0)),
                    Observation::Flow(reading_of(&b, 40_200.0, 100, 6)),
                ],
                1,
            )
            .unwrap();
        store
            .write_batch(&[Observation::Flow(reading_of(&a, 46_800.0, 7_600, 0))], 1)
            .unwrap();
        let hours: Vec<(i64, i64, i64, i64)> = store
            .read(|c| {
                let mut stmt = c.prepare(
                    "SELECT hour_start, bytes_sent, bytes_received, flows FROM hourly_bytes ORDER BY hour_start",
                )?;
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
                rows.collect()
            })
            .unwrap();
        // a: 4,000 bytes over 37,800–43,200 s, a third in hour 10; b: all in hour 11; then a's
        // 3,600 more in hour 12. Each connection counted once, in its first hour.
        assert_eq!(
            hours,
            [
                (36_000, 1_333, 0, 1),
                (39_600, 2_667 + 100, 6, 1),
                (43_200, 3_600, 0, 0)
            ]
        );
    }

    /// `export`'s flow lines as it made them before: one snapshot query per flow.
    fn flow_lines_one_query_per_flow(store: &Store) -> Vec<String> {
        store
            .read(|conn| {
                let mut stmt = conn.prepare("SELECT id FROM flows ORDER BY start, id")?;
                let ids: Vec<i64> = stmt
                    .query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                let mut lines = Vec::new();
                for id in ids {
                    let mut f: FlowObs = conn.query_row(
                        "SELECT start, end, pid, process_start, path, launchd_label, protocol, local_address, local_port,
                                remote_address, remote_port, remote_name, bytes_sent, bytes_received, state, last_seen,
                                prev_seen, prev_bytes_sent, prev_bytes_received, label_source, source, acting_pid
                         FROM flows WHERE id = ?1",
                        [id],
                        |r| {
                            Ok(FlowObs {
                                start: r.get(0)?,
                                end: r.get(1)?,
                                pid: r.get(2)?,
                                process_start: r.get(3)?,
                                path: r.get(4)?,
                                launchd_label: r.get(5)?,
                                protocol: r.get(6)?,
                                local_address: r.get(7)?,
                                local_port: r.get(8)?,
                                remote_address: r.get(9)?,
                                remote_port: r.get(10)?,
                                remote_name: r.get(11)?,
                                bytes_sent: r.get(12)?,
                                bytes_received: r.get(13)?,
                                state: r.get(14)?,
                                last_seen: r.get(15)?,
                                prev_seen: r.get(16)?,
                                prev_bytes_sent: r.get(17)?,
                                prev_bytes_received: r.get(18)?,
                                label_source: r.get(19)?,
                                source: r.get(20)?,
                                acting_pid: r.get(21)?,
                                snapshots: None,
                            })
                        },
                    )?;
                    let mut snaps = conn.prepare(
                        "SELECT ts, bytes_sent, bytes_received FROM flow_snapshots WHERE flow_id = ?1 ORDER BY ts",
                    )?;
                    let snapshots: Vec<FlowSnapshot> = snaps
                        .query_map([id], |s| {
                            Ok(FlowSnapshot {
                                ts: s.get(0)?,
                                bytes_sent: s.get(1)?,
                                bytes_received: s.get(2)?,
                            })
                        })?
                        .collect::<rusqlite::Result<_>>()?;
                    f.snapshots = Some(snapshots).filter(|s| !s.is_empty());
                    lines.push(Observation::Flow(f).to_json_line());
                }
                Ok(lines)
            })
            .unwrap()
    }

    #[test]
    fn export_in_one_pass_writes_what_a_query_per_flow_wrote_and_round_trips() {
        let store = Store::in_memory(StoreConfig::default()).unwrap();
        let (first, second) = mixed_observations();
        store.write_batch(&first, 1).unwrap();
        store.write_batch(&second, 1).unwrap();
        // Two flows with the same start, one with snapshots, one without; a flow with readings.
        let twin = |port: u16| conn_flow(1_000.0, Some(5), "/bin/twin", port, ("192.0.2.50", 22));
        let with_snapshots = FlowObs {
            snapshots: Some(vec![
                FlowSnapshot {
                    ts: 1_100.0,
                    bytes_sent: 5,
                    bytes_received: 1,
                },
                FlowSnapshot {
                    ts: 1_200.0,
                    bytes_sent: 9,
                    bytes_received: 2,
                },
            ]),
            ..reading_of(&twin(40_500), 1_300.0, 12, 3)
        };
        store
            .write_batch(
                &[
                    Observation::Flow(reading_of(&twin(40_501), 1_300.0, 1, 1)),
                    Observation::Flow(with_snapshots),
                    reading(5.0, 100, 10),
                    reading(55.0, 150, 10),
                    reading(60.0, 400, 30),
                    reading(90.0, 500, 30),
                ],
                1,
            )
            .unwrap();
        let old = flow_lines_one_query_per_flow(&store);
        let mut out = Vec::new();
        store.export(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let new: Vec<String> = text
            .lines()
            .filter(|l| l.contains(r#""kind":"flow""#))
            .map(str::to_string)
            .collect();
        assert_eq!(new, old);
        assert!(
            old.iter().filter(|l| l.contains("snapshots")).count() >= 2,
            "{old:#?}"
        );
        assert!(
            old.iter().filter(|l| !l.contains("snapshots")).count() >= 2,
            "{old:#?}"
        );
        // Replayed, the lines give the same flow lines back.
        let again = Store::in_memory(StoreConfig::default()).unwrap();
        let lines: Vec<Observation> = text.lines().map(obs).collect();
        again.write_batch(&lines, 0).unwrap();
        assert_eq!(flow_lines_one_query_per_flow(&again), old);
    }
}
