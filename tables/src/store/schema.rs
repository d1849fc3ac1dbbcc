//! The store's schema and its migrations. `PRAGMA user_version` carries the version; each entry
//! of [`MIGRATIONS`] takes the store from version `i` to `i + 1` inside one transaction, so a
//! kill during an upgrade leaves the old version intact.

/// Version this build writes. A store with a higher version is refused, never downgraded.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Raw observation tables, oldest-first pruning applies to these (name, time column).
pub const RAW_TABLES: &[(&str, &str)] = &[
    ("process_cpu", "ts"),
    ("flows", "last_seen"),
    ("payloads", "ts"),
    ("dns", "last_seen"),
    ("flow_snapshots", "ts"),
];

/// Long-lived summaries (name, time column): kept by `summary_max_age`, not by raw retention,
/// so novelty and egress baselines outlive the raw flows.
pub const SUMMARY_TABLES: &[(&str, &str)] = &[
    ("destination_summary", "last_seen"),
    ("hourly_bytes", "hour_start"),
];

/// Every table `query` copies from a running extension's store.
pub const ALL_TABLES: &[&str] = &[
    "meta",
    "process_instances",
    "process_cpu",
    "flows",
    "flow_snapshots",
    "payloads",
    "dns",
    "signing",
    "destination_summary",
    "hourly_bytes",
];

pub const MIGRATIONS: &[&str] = &[
    // v1: observations, summaries, counters.
    r#"
    CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;

    -- One row per process instance per sample; cpu_time is cumulative.
    CREATE TABLE process_samples (
        ts REAL NOT NULL, pid INTEGER NOT NULL, start_time REAL NOT NULL,
        ppid INTEGER, uid INTEGER, path TEXT, name TEXT, cpu_time REAL NOT NULL, launchd_label TEXT
    );
    CREATE INDEX process_samples_ts ON process_samples(ts);
    CREATE INDEX process_samples_instance ON process_samples(pid, start_time, ts);

    -- One row per connection; live sampling updates it in place (counters are cumulative).
    CREATE TABLE flows (
        id INTEGER PRIMARY KEY,
        start REAL NOT NULL, end REAL, last_seen REAL NOT NULL,
        pid INTEGER, process_start REAL, path TEXT NOT NULL, launchd_label TEXT,
        protocol TEXT NOT NULL, local_address TEXT, local_port INTEGER,
        remote_address TEXT NOT NULL, remote_port INTEGER NOT NULL, remote_name TEXT,
        bytes_sent INTEGER, bytes_received INTEGER, state TEXT
    );
    CREATE UNIQUE INDEX flows_identity ON flows(
        protocol, ifnull(local_address, ''), ifnull(local_port, -1), remote_address, remote_port,
        ifnull(pid, -1), start);
    CREATE INDEX flows_last_seen ON flows(last_seen);
    CREATE INDEX flows_path ON flows(path);

    CREATE TABLE payloads (
        ts REAL NOT NULL, pid INTEGER, path TEXT, protocol TEXT NOT NULL,
        remote_address TEXT NOT NULL, remote_port INTEGER NOT NULL, direction TEXT,
        first_bytes TEXT, payload_class TEXT, entropy REAL, bytes_seen INTEGER
    );
    CREATE INDEX payloads_ts ON payloads(ts);

    CREATE TABLE dns (
        name TEXT NOT NULL, address TEXT NOT NULL, first_seen REAL NOT NULL,
        last_seen REAL NOT NULL, ttl INTEGER,
        PRIMARY KEY (name, address)
    );
    CREATE INDEX dns_last_seen ON dns(last_seen);
    CREATE INDEX dns_address ON dns(address);

    -- Latest known signing facts per path (replayed or computed).
    CREATE TABLE signing (
        path TEXT PRIMARY KEY, signer_class TEXT NOT NULL, status TEXT, team_id TEXT,
        identifier TEXT, notarized INTEGER, observed REAL
    ) WITHOUT ROWID;

    -- First/last seen per (program, destination): the 14-day novelty baseline.
    CREATE TABLE destination_summary (
        path TEXT NOT NULL, remote TEXT NOT NULL, remote_port INTEGER NOT NULL, protocol TEXT NOT NULL,
        first_seen REAL NOT NULL, last_seen REAL NOT NULL, flows INTEGER NOT NULL,
        PRIMARY KEY (path, remote, remote_port, protocol)
    ) WITHOUT ROWID;
    CREATE INDEX destination_summary_last_seen ON destination_summary(last_seen);

    -- Bytes per program per hour: the 7-day egress baseline.
    CREATE TABLE hourly_bytes (
        path TEXT NOT NULL, hour_start INTEGER NOT NULL,
        bytes_sent INTEGER NOT NULL, bytes_received INTEGER NOT NULL, flows INTEGER NOT NULL,
        PRIMARY KEY (path, hour_start)
    ) WITHOUT ROWID;
    "#,
    // v2: the counter reading before the last one, for per-interval rates.
    r#"
    ALTER TABLE flows ADD COLUMN prev_seen REAL;
    ALTER TABLE flows ADD COLUMN prev_bytes_sent INTEGER;
    ALTER TABLE flows ADD COLUMN prev_bytes_received INTEGER;
    "#,
    // v3: the program is part of a connection's identity. Replayed flows often carry no pid or
    // local port, and two programs reaching one server at the same second are two flows.
    r#"
    DROP INDEX flows_identity;
    CREATE UNIQUE INDEX flows_identity ON flows(
        protocol, ifnull(local_address, ''), ifnull(local_port, -1), remote_address, remote_port,
        ifnull(pid, -1), start, path);
    "#,
    // v4: how a row's launchd label was learned, which collector saw a flow, and the process
    // group that carries a job's label past re-parenting.
    r#"
    ALTER TABLE flows ADD COLUMN label_source TEXT;
    ALTER TABLE flows ADD COLUMN source TEXT;
    ALTER TABLE process_samples ADD COLUMN pgid INTEGER;
    ALTER TABLE process_samples ADD COLUMN label_source TEXT;
    "#,
    // Live capture: one payload row per flow carries both directions and the names the flow
    // claims. Only payload columns and an index: self-contained, so it can be renumbered.
    r#"
    ALTER TABLE payloads ADD COLUMN process_start REAL;
    ALTER TABLE payloads ADD COLUMN local_address TEXT;
    ALTER TABLE payloads ADD COLUMN local_port INTEGER;
    ALTER TABLE payloads ADD COLUMN server_first_bytes TEXT;
    ALTER TABLE payloads ADD COLUMN server_payload_class TEXT;
    ALTER TABLE payloads ADD COLUMN server_entropy REAL;
    ALTER TABLE payloads ADD COLUMN server_bytes_seen INTEGER;
    ALTER TABLE payloads ADD COLUMN sni TEXT;
    ALTER TABLE payloads ADD COLUMN ech INTEGER;
    ALTER TABLE payloads ADD COLUMN http_host TEXT;
    ALTER TABLE payloads ADD COLUMN resolved_name TEXT;
    CREATE INDEX payloads_flow ON payloads(remote_address, remote_port, local_port);
    "#,
    // v6: both pids of a delegated socket (macOS so_e_pid): the flow belongs to the process a
    // daemon worked for; the daemon that used the socket is kept beside it.
    r#"
    ALTER TABLE flows ADD COLUMN acting_pid INTEGER;
    "#,
    // Process instances: one row per (pid, start time) and what it was (a new row only when
    // those facts change, e.g. an exec or a label learned later), and its CPU as three numbers
    // per reading. The sampler writes a reading only when the CPU moved (or as an idle
    // refresh), so an idle host adds a few bytes, not a full row per process per sample.
    // `process_samples` stays, as a view with the old columns, so every reader and analytic
    // sees the same rows. Only process tables: self-contained, so it can be renumbered.
    r#"
    CREATE TABLE process_instances (
        id INTEGER PRIMARY KEY,
        pid INTEGER NOT NULL, start_time REAL NOT NULL,
        ppid INTEGER, uid INTEGER, path TEXT, name TEXT, launchd_label TEXT, pgid INTEGER,
        label_source TEXT
    );
    CREATE INDEX process_instances_pid ON process_instances(pid, start_time);
    -- Cumulative cpu_time of an instance at ts; one reading per instant.
    CREATE TABLE process_cpu (
        instance INTEGER NOT NULL, ts REAL NOT NULL, cpu_time REAL NOT NULL,
        PRIMARY KEY (instance, ts)
    ) WITHOUT ROWID;
    CREATE INDEX process_cpu_ts ON process_cpu(ts);
    INSERT INTO process_instances(pid, start_time, ppid, uid, path, name, launchd_label, pgid, label_source)
        SELECT pid, start_time, ppid, uid, path, name, launchd_label, pgid, label_source
        FROM process_samples
        GROUP BY pid, start_time, ppid, uid, path, name, launchd_label, pgid, label_source
        ORDER BY min(ts);
    INSERT OR REPLACE INTO process_cpu(instance, ts, cpu_time)
        SELECT i.id, s.ts, s.cpu_time FROM process_samples s JOIN process_instances i
          ON i.pid = s.pid AND i.start_time = s.start_time AND i.ppid IS s.ppid AND i.uid IS s.uid
         AND i.path IS s.path AND i.name IS s.name AND i.launchd_label IS s.launchd_label
         AND i.pgid IS s.pgid AND i.label_source IS s.label_source
        ORDER BY s.rowid;
    DROP TABLE process_samples;
    CREATE VIEW process_samples AS
        SELECT c.ts AS ts, i.pid AS pid, i.start_time AS start_time, i.ppid AS ppid, i.uid AS uid,
               i.path AS path, i.name AS name, c.cpu_time AS cpu_time,
               i.launchd_label AS launchd_label, i.pgid AS pgid, i.label_source AS label_source
        FROM process_cpu c JOIN process_instances i ON i.id = c.instance;
    "#,
    // Counter readings of long-lived flows where the counters moved, with the quiet reading
    // before, so check-ins inside one connection can be timed. Self-contained (one new table
    // keyed by the flow's id), so it can be renumbered beside other migrations.
    r#"
    CREATE TABLE flow_snapshots (
        flow_id INTEGER NOT NULL, ts REAL NOT NULL,
        bytes_sent INTEGER NOT NULL, bytes_received INTEGER NOT NULL,
        UNIQUE (flow_id, ts)
    );
    CREATE INDEX flow_snapshots_ts ON flow_snapshots(ts);
    "#,
];
