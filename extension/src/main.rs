//! `launchwatch`: the osquery extension (when osqueryd starts it with `--socket`), the
//! standalone `query` host, and `record`.

mod hunt;
mod logger;
mod osquery;
mod standalone;
mod testing;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use launchwatch_tables::config::{Config, LoadError};
use launchwatch_tables::env::TableEnv;
use launchwatch_tables::framework::TableSet;
use launchwatch_tables::observation::{read_jsonl, Loaded, Observation};
use launchwatch_tables::sampler::{self, Due, Sampler, StopSignal};
use launchwatch_tables::store::{Store, STORE_FILE};
use launchwatch_tables::trust::StateDir;

/// `launchwatch --version`: what a fleet operator needs to match a binary to a release.
const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("LAUNCHWATCH_GIT_COMMIT"),
    ", ",
    env!("LAUNCHWATCH_TARGET"),
    ")"
);

#[derive(Parser)]
#[command(
    name = "launchwatch",
    version = LONG_VERSION,
    propagate_version = true,
    about = "osquery extension: launchd beaconing, fallback channels, background mining, custom crypto and unusual egress",
    after_help = "osqueryd starts the extension as: launchwatch --socket PATH --timeout S --interval S [--verbose]"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    /// osqueryd's extension manager socket (extension mode).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Seconds to wait for the manager socket before giving up (read as osquery reads it:
    /// a leading number, so "3s" is 3).
    #[arg(long, value_name = "S", default_value = "3", value_parser = osquery_seconds)]
    timeout: f64,
    /// Seconds between checks that osqueryd is alive and still lists this extension.
    #[arg(long, value_name = "S", default_value = "3", value_parser = osquery_seconds)]
    interval: f64,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Args)]
struct Global {
    /// Configuration file (TOML). Default: /etc/launchwatch.toml when it exists.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// History store directory.
    #[arg(long, global = true, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Filesystem prefix for launchd plist discovery and file reads.
    #[arg(long, global = true, value_name = "DIR", default_value = "/")]
    root: PathBuf,
    /// Fixes "now" (Unix epoch seconds) for schedules and windows.
    #[arg(long, global = true, value_name = "EPOCH")]
    now: Option<f64>,
    /// Log calls and sampler activity to stderr.
    #[arg(long, global = true)]
    verbose: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run SQL over launchwatch's tables in-process (no osqueryd needed).
    // `launchwatch SUBCOMMAND --version` prints exactly what `launchwatch --version` does.
    #[command(display_name = "launchwatch")]
    Query {
        /// Print osqueryi-style JSON (every value a string, NULL as "").
        #[arg(long)]
        json: bool,
        /// Load observations from JSON Lines instead of sampling this host (repeatable).
        #[arg(long, value_name = "FILE")]
        replay: Vec<PathBuf>,
        /// Live mode without fresh samples: only the history in --state-dir.
        #[arg(long, conflicts_with = "replay")]
        no_sample: bool,
        /// The SQL statement.
        sql: String,
    },
    /// Run every detection of the bundled pack once (live or on a replay) and print the
    /// findings by analytic, each with the analytic table's reasons for triage.
    #[command(display_name = "launchwatch")]
    Hunt {
        /// Print JSON: one object per detection with its findings and their reasons.
        #[arg(long)]
        json: bool,
        /// Load observations from JSON Lines instead of sampling this host (repeatable).
        #[arg(long, value_name = "FILE")]
        replay: Vec<PathBuf>,
    },
    /// Write live observations as JSON Lines.
    #[command(display_name = "launchwatch")]
    Record {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Seconds to record; default: until SIGINT/SIGTERM.
        #[arg(long, value_name = "S")]
        duration: Option<f64>,
    },
    /// Write a demo host (--host DIR: plists, executables and a day of observations on which
    /// every detection fires once), or seeded beacon-evaluation host-days (--seed N --out FILE).
    #[command(display_name = "launchwatch")]
    Simulate {
        /// Write the demo host into DIR (DIR/root and DIR/observations.jsonl).
        #[arg(long, value_name = "DIR", conflicts_with_all = ["seed", "days", "out"], required_unless_present = "out")]
        host: Option<PathBuf>,
        /// Beacon-evaluation generator: the seed of the labelled host-days.
        #[arg(long, default_value = "1")]
        seed: u64,
        #[arg(long, default_value = "1")]
        days: u64,
        /// Beacon-evaluation generator: the JSON Lines file to write.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Regenerate the table reference docs into DIR.
    #[command(hide = true)]
    GenDocs { dir: PathBuf },
    /// Regenerate the osquery and Fleet pack files from DIR/queries/*.sql.
    #[command(hide = true)]
    GenPacks { dir: PathBuf },
}

/// `--timeout`/`--interval` as osqueryd reads its own flags (`atoi`): whatever osqueryd
/// accepts and passes on must not make the extension exit (osqueryd would restart it forever).
/// A plain number keeps its fraction; otherwise the leading integer counts ("3s" is 3, "x" is
/// 0); negative is 0.
fn osquery_seconds(text: &str) -> Result<f64, String> {
    if let Ok(v) = text.trim().parse::<f64>() {
        if v.is_finite() {
            return Ok(v.max(0.0));
        }
    }
    Ok(atoi(text).max(0) as f64)
}

/// C's `atoi`: leading whitespace, an optional sign, then decimal digits up to the first other
/// character; 0 when there are none. Saturates instead of overflowing.
fn atoi(text: &str) -> i64 {
    let t = text.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (sign, digits) = match t.as_bytes().first() {
        Some(b'-') => (-1, &t[1..]),
        Some(b'+') => (1, &t[1..]),
        _ => (1, t),
    };
    digits
        .bytes()
        .take_while(u8::is_ascii_digit)
        .fold(0i64, |n, d| {
            n.saturating_mul(10).saturating_add(i64::from(d - b'0'))
        })
        * sign
}

fn main() -> ExitCode {
    // One line per panic: the table door turns a table's panic into an error for that call, and
    // osqueryd's log is no place for a backtrace.
    logger::init();
    std::panic::set_hook(Box::new(|info| log::error!("panic: {info}")));
    let cli = Cli::parse();
    logger::set_verbose(cli.global.verbose);
    let result = match cli.command {
        Some(Command::Query { json, ref replay, no_sample, ref sql }) => query(&cli.global, json, replay, no_sample, sql),
        Some(Command::Record { ref out, duration }) => record(&cli.global, out, duration),
        Some(Command::GenPacks { ref dir }) => launchwatch_tables::pack::write_all(dir).map(|_| ExitCode::SUCCESS),
        Some(Command::Hunt { json, ref replay }) => hunt(&cli.global, json, replay),
        Some(Command::Simulate { ref host, seed, days, ref out }) => match (host, out) {
            (Some(dir), _) => simulate_host(dir),
            (None, Some(out)) => simulate(seed, days, out),
            (None, None) => Err("simulate: say what to write: --host DIR (the demo host) or --out FILE (beacon-evaluation days)".into()),
        },
        Some(Command::GenDocs { ref dir }) => launchwatch_tables::docs::write_all(dir, &launchwatch_tables::tables::all())
            .map(|_| ExitCode::SUCCESS)
            .map_err(|e| format!("{}: {e}", dir.display())),
        None => match cli.socket.clone() {
            Some(socket) => extension(&cli, socket),
            None => Err("nothing to do: pass --socket (extension mode) or a command (query, hunt, record, simulate); see --help".into()),
        },
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// The config in effect and the problems to report. A config another user could write is
/// never used by a root process (its allowlist would silence detections): defaults apply and
/// the reason is reported. An invalid config is an error for `query` and `record`; the
/// extension (`degrade`) runs with defaults instead of crash-looping under osqueryd.
fn load_config(global: &Global, degrade: bool) -> Result<(Config, Vec<String>), String> {
    let path = match &global.config {
        Some(path) => path.clone(),
        None => {
            // LAUNCHWATCH_CONFIG names another default (tests point it at /dev/null so a
            // host's own config cannot change their thresholds).
            match std::env::var_os("LAUNCHWATCH_CONFIG").map(PathBuf::from) {
                Some(named) => {
                    // Named explicitly, so a missing file is a mistake, not "no config".
                    // symlink_metadata: a dangling link in its place is still reported.
                    if std::fs::symlink_metadata(&named).is_err() {
                        let e = format!(
                            "LAUNCHWATCH_CONFIG names {}, which does not exist: fix the path or unset LAUNCHWATCH_CONFIG",
                            named.display()
                        );
                        return if degrade {
                            Ok((
                                Config::default(),
                                vec![format!("config ignored, running with defaults: {e}")],
                            ))
                        } else {
                            Err(e)
                        };
                    }
                    named
                }
                None => {
                    let default = PathBuf::from("/etc/launchwatch.toml");
                    if std::fs::symlink_metadata(&default).is_err() {
                        return Ok((Config::default(), Vec::new()));
                    }
                    default
                }
            }
        }
    };
    match Config::load(&path, launchwatch_tables::trust::enforced()) {
        // Accepted under an old key name: said at startup, and in launchwatch_status.
        Ok(config) => {
            let warnings = config.warnings.clone();
            Ok((config, warnings))
        }
        Err(e @ LoadError::Untrusted(_)) => Ok((
            Config::rejected(&path),
            vec![format!(
                "config ignored, running with defaults and no allowlist: {e}"
            )],
        )),
        Err(LoadError::Invalid(e)) if degrade => Ok((
            Config::rejected(&path),
            vec![format!("config ignored, running with defaults: {e}")],
        )),
        Err(LoadError::Invalid(e)) => Err(e),
    }
}

/// Running as root, a state directory another user could have written is not used: it is moved
/// aside and a fresh one made (the event is returned for reporting); `Err` when no directory
/// there can be trusted.
fn trusted_state_dir(dir: &Path) -> Result<Option<String>, String> {
    if !launchwatch_tables::trust::enforced() {
        return Ok(None);
    }
    let now = launchwatch_tables::env::wall_clock() as u64;
    launchwatch_tables::trust::prepare_state_dir(dir, STORE_FILE, now)
}

/// The documented defaults (README, "State"): a system directory for root, the XDG state
/// directory otherwise.
fn state_dir(global: &Global) -> PathBuf {
    if let Some(dir) = &global.state_dir {
        return dir.clone();
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from(if cfg!(target_os = "macos") {
            "/var/db/launchwatch"
        } else {
            "/var/lib/launchwatch"
        });
    }
    if let Some(xdg) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("launchwatch");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/state/launchwatch")
}

fn table_set(env: TableEnv) -> Arc<TableSet> {
    let mut tables = launchwatch_tables::tables::all();
    tables.extend(testing::tables_if_enabled());
    Arc::new(TableSet::new(tables, Arc::new(env)))
}

fn extension(cli: &Cli, socket: PathBuf) -> Result<ExitCode, String> {
    // Everything this process creates (store, socket) is private to its user.
    // SAFETY: umask has no preconditions.
    unsafe { libc::umask(0o077) };
    // osqueryd restarts an extension that exits, every few seconds and forever. A bad config or
    // an unusable state directory therefore degrades (defaults, in-memory history) and says so
    // on stderr and in launchwatch_status, rather than crash-looping with no tables at all.
    let (config, mut startup_errors) = load_config(&cli.global, true)?;
    let dir = state_dir(&cli.global);
    let store = trusted_state_dir(&dir)
        .map_err(|e| launchwatch_tables::store::StoreError(format!("state directory refused: {e}")))
        .and_then(|event| {
            startup_errors.extend(event);
            Store::open(&dir, config.store.clone())
        })
        .or_else(|e| {
            startup_errors.push(format!("history not persisted (in memory only): {e}"));
            Store::in_memory(config.store.clone())
        });
    let store = store.map_err(|e| e.to_string())?;
    for e in &startup_errors {
        log::error!("{e}");
    }
    let mut env = TableEnv::new(store, config, cli.global.root.clone(), cli.global.now);
    env.startup_errors = startup_errors;
    let tables = table_set(env);
    let stop = Arc::new(StopSignal::default());
    // Capture's lines are diagnostics: shown with --verbose.
    let log: fn(&str) = |m| log::debug!("{m}");
    // Its own thread; stops with the sampler.
    let _capture = launchwatch_tables::capture::live::start(tables.env.clone(), stop.clone(), log);
    {
        let tables = tables.clone();
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("sampler".into())
            .spawn(move || {
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    sampler::run(&tables.env, &stop, &|e| log::debug!("sample: {e}"))
                }));
                if ran.is_err() {
                    // Tables keep serving history; status says sampling stopped.
                    tables
                        .env
                        .sampler
                        .set_error("the sampler stopped after a panic; restart launchwatch");
                }
            })
            .map_err(|e| format!("cannot start the sampler: {e}"))?;
    }
    // osquery_seconds makes both finite and non-negative; the cap keeps from_secs_f64 whole.
    let seconds = |s: f64| Duration::from_secs_f64(s.clamp(0.0, 1e9));
    let opts = osquery::HostOptions {
        socket,
        timeout: seconds(cli.timeout),
        interval: seconds(cli.interval).max(Duration::from_millis(200)),
    };
    let code = osquery::run(tables, opts, || stop.stop());
    Ok(ExitCode::from(code as u8))
}

/// How many fresh samples a live `query` or `hunt` takes before it reads the tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Readings {
    None,
    /// Enough when no column the statement reads is a rate.
    One,
    /// Rates and CPU percentages need two readings a window apart.
    Two,
}

/// The tables a `query` or `hunt` runs on: a replay in memory, or this host's history (read
/// from the state directory into memory) plus `readings` fresh samples (none for a replay).
fn standalone_tables(
    global: &Global,
    replay: &[PathBuf],
    readings: Readings,
) -> Result<Arc<TableSet>, String> {
    let (config, mut problems) = load_config(global, false)?;
    let mut store = Store::in_memory(config.store.clone()).map_err(|e| e.to_string())?;
    let fixed_now;
    let live = replay.is_empty();
    let mut history = None;
    if live {
        fixed_now = global.now;
        let dir = state_dir(global);
        // Read-only here: a tampered history is left where it is, and not read.
        let trusted = if launchwatch_tables::trust::enforced() {
            match launchwatch_tables::trust::check_state_dir(&dir, STORE_FILE) {
                Ok(StateDir::Trusted) => Ok(()),
                Ok(StateDir::Tampered(e)) | Err(e) => {
                    Err(format!("history in {} not read: {e}", dir.display()))
                }
            }
        } else {
            Ok(())
        };
        // History is a bonus for a live query: say why it is missing and go on.
        match trusted.and_then(|_| store.import_history(&dir).map_err(|e| e.to_string())) {
            Ok(_) => {}
            Err(e) => problems.push(e),
        }
        history = Some(dir.join(launchwatch_tables::store::STORE_FILE));
    } else {
        let mut loaded = Loaded::default();
        for file in replay {
            if file.is_dir() {
                let inside = file.join("observations.jsonl");
                return Err(format!(
                    "--replay {}: is a directory; pass a JSON Lines file{}",
                    file.display(),
                    if inside.is_file() {
                        format!(", e.g. --replay {}", inside.display())
                    } else {
                        " (what record or simulate writes)".to_string()
                    }
                ));
            }
            read_jsonl(file, &mut loaded)?;
        }
        for w in &loaded.warnings {
            log::warn!("{w}");
        }
        fixed_now = global.now.or_else(|| {
            loaded
                .observations
                .iter()
                .filter_map(Observation::time)
                .reduce(f64::max)
        });
        // A process without a label inherits its parent's; flows and payloads follow their
        // process (spec.md), exactly as the live sampler attributes them.
        launchwatch_tables::attribution::attribute(
            &mut loaded.observations,
            &mut launchwatch_tables::attribution::ProcessTree::new("replay"),
        );
        // A replayed flow says so, unless the file recorded which collector saw it.
        for o in &mut loaded.observations {
            if let Observation::Flow(f) = o {
                f.source.get_or_insert_with(|| "replay".to_string());
            }
        }
        store
            .write_batch(&loaded.observations, 0)
            .map_err(|e| e.to_string())?;
    }
    for p in &problems {
        log::warn!("{p}");
    }
    let mut env = TableEnv::new(store, config, global.root.clone(), fixed_now);
    env.startup_errors = problems;
    env.history_path = history;
    env.capture
        .not_running("query does not capture (the extension and record do; their payload rows are in the history)");
    if !live {
        *env.sampler
            .sources
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = vec![launchwatch_tables::facts::SourceStatus {
            name: "replay".into(),
            running: true,
            reason: None,
            events_per_s: 0.0,
            drops: 0,
        }];
    }
    let tables = table_set(env);
    if live {
        sample_now(&tables, readings);
    }
    Ok(tables)
}

/// Fresh samples for a live `query` or `hunt`: two a short window apart when rates or CPU
/// percentages are read, else one.
fn sample_now(tables: &TableSet, readings: Readings) {
    if readings == Readings::None {
        return;
    }
    let mut sampler = Sampler::new();
    let started = Instant::now();
    if let Err(e) = sampler.tick(&tables.env, Due::ALL) {
        log::warn!("sample: {e}");
    }
    if readings == Readings::Two {
        let window = Duration::from_secs_f64(tables.env.config.sampler.query_window);
        std::thread::sleep(window.saturating_sub(started.elapsed()));
        if let Err(e) = sampler.tick(&tables.env, Due::ALL) {
            log::warn!("sample: {e}");
        }
    }
}

fn print(text: &str) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush())
        .map_err(|e| format!("stdout: {e}"))
}

/// Turns SQLite's wording into one line that says what is wrong and what to do.
fn explain_sql_error(sql: &str, e: String, tables: &TableSet) -> String {
    if let Some(table) = e.strip_prefix("no such table: ") {
        let ours: Vec<&str> = tables.tables().map(|t| t.name()).collect();
        return if table.starts_with("launchwatch_") {
            format!(
                "query: no such table: {table}; launchwatch's tables are {}",
                ours.join(", ")
            )
        } else {
            format!(
                "query: no such table: {table}; launchwatch query has only launchwatch_* tables ({}); for osquery's own tables (processes, …) load the extension into osqueryi: osqueryi --extension PATH/launchwatch.ext",
                ours.join(", ")
            )
        };
    }
    if e.contains("syntax error") {
        return format!("query: {e} in {:?}; check the statement's SQL", sql.trim());
    }
    format!("query: {e}")
}

fn query(
    global: &Global,
    json: bool,
    replay: &[PathBuf],
    no_sample: bool,
    sql: &str,
) -> Result<ExitCode, String> {
    if sql.trim().trim_matches(';').trim().is_empty() {
        return Err("query: the SQL statement is empty; pass one, e.g. launchwatch query \"SELECT * FROM launchwatch_status\"".into());
    }
    // Sampled after planning: the plan says which columns the statement reads, and only a
    // rate needs a second reading.
    let tables = standalone_tables(global, replay, Readings::None)?;
    let (conn, used) = standalone::connection_recording(&tables).map_err(|e| e.to_string())?;
    // Writes are refused whether SQLite would prepare them (CREATE) or not (INSERT into a
    // launchwatch table): either way nothing could come of them.
    let first_word = sql
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    let writes = matches!(
        first_word.as_str(),
        "INSERT"
            | "UPDATE"
            | "DELETE"
            | "CREATE"
            | "DROP"
            | "ALTER"
            | "REPLACE"
            | "ATTACH"
            | "DETACH"
    );
    if writes || matches!(conn.prepare(sql).map(|s| s.readonly()), Ok(false)) {
        return Err(format!(
            "query: only SELECT statements run here ({:?} would change an in-memory database that is thrown away); ask with SELECT … FROM launchwatch_…",
            sql.trim()
        ));
    }
    if replay.is_empty() && !no_sample {
        // A statement SQLite cannot plan gets its error below, after one sample as before.
        let readings = match conn.prepare(sql) {
            Ok(_) => {
                let read = used.snapshot();
                // Summaries nobody reads are not built from the fresh samples.
                tables
                    .env
                    .store
                    .keep_summaries(tables.reads_summaries(&read));
                if tables.needs_two_readings(&read) {
                    Readings::Two
                } else {
                    Readings::One
                }
            }
            Err(_) => Readings::One,
        };
        log::debug!("query: {readings:?} fresh sample(s)");
        sample_now(&tables, readings);
    }
    let started = Instant::now();
    let rs = standalone::run_sql(&conn, sql).map_err(|e| explain_sql_error(sql, e, &tables))?;
    log::debug!(
        "query: {} rows in {:.1} ms",
        rs.rows.len(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    if rs.columns.is_empty() {
        return Err(format!(
            "query: {:?} returns no columns; ask with SELECT … FROM launchwatch_…",
            sql.trim()
        ));
    }
    print(&if json {
        standalone::to_json(&rs)
    } else {
        standalone::to_text(&rs)
    })?;
    Ok(ExitCode::SUCCESS)
}

fn hunt(global: &Global, json: bool, replay: &[PathBuf]) -> Result<ExitCode, String> {
    let tables = standalone_tables(global, replay, Readings::Two)?;
    let conn = standalone::connection(&tables).map_err(|e| e.to_string())?;
    let detections = hunt::run(&conn).map_err(|e| format!("hunt: {e}"))?;
    print(&if json {
        hunt::to_json(&detections)
    } else {
        hunt::to_text(&detections)
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Samples like the extension for a while, then writes everything observed as JSON Lines.
/// With an explicit `--state-dir` the samples also persist there (as a running extension's
/// would); otherwise they live in memory only.
fn record(global: &Global, out: &Path, duration: Option<f64>) -> Result<ExitCode, String> {
    let (config, mut problems) = load_config(global, false)?;
    let signalled = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, signalled.clone()).map_err(|e| e.to_string())?;
    }
    let store = match &global.state_dir {
        Some(dir) => {
            problems.extend(trusted_state_dir(dir)?);
            Store::open(dir, config.store.clone())
        }
        None => Store::in_memory(config.store.clone()),
    }
    .map_err(|e| e.to_string())?;
    for p in &problems {
        log::warn!("{p}");
    }
    // Fail on an unwritable target now, not after the recording.
    check_out_dir(out, "record")?;
    let tmp = out.with_extension("partial");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(|e| {
        format!(
            "record: cannot write next to --out {} ({e}); choose a writable place",
            out.display()
        )
    })?);
    let interval = config.sampler.process_interval;
    if let Some(d) = duration.filter(|d| *d < 2.0 * interval) {
        log::warn!(
            "record: --duration {d} s is shorter than two CPU samples ([sampler] process_interval = {interval} s), so CPU figures will be NULL; record at least {} s or lower process_interval",
            2.0 * interval
        );
    }
    let started = Instant::now();
    let env = Arc::new(TableEnv::new(store, config, global.root.clone(), None));
    let stop = Arc::new(StopSignal::default());
    // Capture's lines are diagnostics: shown with --verbose.
    let log: fn(&str) = |m| log::debug!("{m}");
    let capture = launchwatch_tables::capture::live::start(env.clone(), stop.clone(), log);
    let sampler_thread = {
        let (env, stop) = (env.clone(), stop.clone());
        std::thread::spawn(move || sampler::run(&env, &stop, &|e| log::debug!("sample: {e}")))
    };
    let until = duration.map(|d| Instant::now() + Duration::from_secs_f64(d.max(0.0)));
    while !signalled.load(std::sync::atomic::Ordering::SeqCst)
        && until.is_none_or(|u| Instant::now() < u)
    {
        // A quarter second is prompt enough for a signal and costs nothing on an idle host.
        let left = until.map_or(Duration::MAX, |u| {
            u.saturating_duration_since(Instant::now())
        });
        std::thread::sleep(left.min(Duration::from_millis(250)));
    }
    stop.stop();
    sampler_thread
        .join()
        .map_err(|_| "the sampler panicked".to_string())?;
    if let Some(c) = capture {
        c.join().map_err(|_| "the capture panicked".to_string())?;
    }
    let lines = env.store.export(&mut file).map_err(|e| e.to_string())?;
    file.flush().map_err(|e| e.to_string())?;
    drop(file);
    // Renamed only when complete: a reader never sees half a file.
    std::fs::rename(&tmp, out).map_err(|e| format!("{}: {e}", out.display()))?;
    log::info!(
        "recorded {lines} observations over {:.0} s to {}; look at them with: launchwatch hunt --replay {}",
        started.elapsed().as_secs_f64(),
        out.display(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// An output file's folder must exist: say so in the user's own terms, naming their path.
fn check_out_dir(out: &Path, command: &str) -> Result<(), String> {
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty());
    match parent {
        Some(dir) if !dir.is_dir() => Err(format!(
            "{command}: cannot write --out {}: the folder {} does not exist; create it or choose another path",
            out.display(),
            dir.display()
        )),
        _ if out.is_dir() => Err(format!(
            "{command}: --out {} is a directory; name a file inside it",
            out.display()
        )),
        _ => Ok(()),
    }
}

fn simulate(seed: u64, days: u64, out: &Path) -> Result<ExitCode, String> {
    use launchwatch_tables::analytics::simulate::{host_day, observations};
    check_out_dir(out, "simulate")?;
    let mut text = String::new();
    let mut lines = 0usize;
    for day in 0..days {
        for o in observations(&host_day(seed, day)) {
            text.push_str(&o.to_json_line());
            text.push('\n');
            lines += 1;
        }
    }
    std::fs::write(out, text).map_err(|e| format!("simulate: {}: {e}", out.display()))?;
    log::info!(
        "wrote {lines} observations (beacon-evaluation seed {seed}, {days} day{}) to {}; score them with: launchwatch query --replay {} \"SELECT * FROM launchwatch_beacons\"",
        if days == 1 { "" } else { "s" },
        out.display(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn simulate_host(dir: &Path) -> Result<ExitCode, String> {
    use launchwatch_tables::analytics::demo;
    if dir.exists() && !dir.is_dir() {
        return Err(format!(
            "simulate: --host {} is a file; name a folder to write the demo host into",
            dir.display()
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("simulate: --host {}: {e}", dir.display()))?;
    let w = demo::write_host(dir).map_err(|e| format!("simulate: {e}"))?;
    log::info!(
        "wrote a demo host: {} observations in {}, plists and programs under {}; hunt on it with: launchwatch hunt --replay {} --root {}",
        w.lines,
        w.observations.display(),
        w.root.display(),
        w.observations.display(),
        w.root.display()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_and_interval_accept_what_osquery_accepts() {
        for (text, want) in [
            ("3", 3.0),
            ("0.5", 0.5),
            ("3s", 3.0),
            (" 10 ", 10.0),
            ("10sec", 10.0),
            ("+4x", 4.0),
            ("", 0.0),
            ("abc", 0.0),
            ("-5", 0.0),
            ("inf", 0.0),
            ("99999999999999999999999", 1e23),
            ("9999999999999999999999x", i64::MAX as f64),
        ] {
            assert_eq!(osquery_seconds(text), Ok(want), "{text:?}");
        }
        let cli = Cli::try_parse_from([
            "launchwatch",
            "--socket",
            "/x",
            "--timeout",
            "3s",
            "--interval",
            "2sec",
        ])
        .expect("osqueryd's spellings parse");
        assert_eq!((cli.timeout, cli.interval), (3.0, 2.0));
    }
}
