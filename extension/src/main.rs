//! `launchwatch`: the osquery extension (when osqueryd starts it with `--socket`), the
//! standalone `query` host, and `record`.

mod osquery;
mod standalone;
mod testing;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use launchwatch_tables::config::Config;
use launchwatch_tables::env::TableEnv;
use launchwatch_tables::framework::TableSet;
use launchwatch_tables::observation::{read_jsonl, Loaded, Observation};
use launchwatch_tables::sampler::{self, Due, Sampler, StopSignal};
use launchwatch_tables::store::Store;

#[derive(Parser)]
#[command(
    name = "launchwatch",
    version,
    about = "osquery extension: launchd beaconing, fallback channels, background mining, custom crypto and unusual egress",
    after_help = "osqueryd starts the extension as: launchwatch --socket PATH --timeout S --interval S [--verbose]"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    /// osqueryd's extension manager socket (extension mode).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Seconds to wait for the manager socket before giving up.
    #[arg(long, value_name = "S", default_value = "3")]
    timeout: f64,
    /// Seconds between checks that osqueryd is alive and still lists this extension.
    #[arg(long, value_name = "S", default_value = "3")]
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
    /// Write live observations as JSON Lines.
    Record {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Seconds to record; default: until SIGINT/SIGTERM.
        #[arg(long, value_name = "S")]
        duration: Option<f64>,
    },
    /// Write seeded, labelled synthetic host-days as JSON Lines observations (for --replay).
    Simulate {
        #[arg(long, default_value = "1")]
        seed: u64,
        #[arg(long, default_value = "1")]
        days: u64,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Regenerate the table reference docs into DIR.
    #[command(hide = true)]
    GenDocs { dir: PathBuf },
    /// Regenerate the osquery and Fleet pack files from DIR/queries/*.sql.
    #[command(hide = true)]
    GenPacks { dir: PathBuf },
}

fn main() -> ExitCode {
    // One line per panic: the table door turns a table's panic into an error for that call, and
    // osqueryd's log is no place for a backtrace.
    std::panic::set_hook(Box::new(|info| eprintln!("launchwatch: panic: {info}")));
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Query { json, ref replay, no_sample, ref sql }) => query(&cli.global, json, replay, no_sample, sql),
        Some(Command::Record { ref out, duration }) => record(&cli.global, out, duration),
        Some(Command::GenPacks { ref dir }) => launchwatch_tables::pack::write_all(dir).map(|_| ExitCode::SUCCESS),
        Some(Command::Simulate { seed, days, ref out }) => simulate(seed, days, out),
        Some(Command::GenDocs { ref dir }) => launchwatch_tables::docs::write_all(dir, &launchwatch_tables::tables::all())
            .map(|_| ExitCode::SUCCESS)
            .map_err(|e| format!("{}: {e}", dir.display())),
        None => match cli.socket.clone() {
            Some(socket) => extension(&cli, socket),
            None => Err("nothing to do: pass --socket (extension mode) or a command (query, record); see --help".into()),
        },
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("launchwatch: {e}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(global: &Global) -> Result<Config, String> {
    match &global.config {
        Some(path) => Config::load(path),
        None => {
            // LAUNCHWATCH_CONFIG names another default (tests point it at an empty file so a
            // host's own config cannot change their thresholds).
            let default = std::env::var_os("LAUNCHWATCH_CONFIG")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/etc/launchwatch.toml"));
            let default = default.as_path();
            if default.exists() {
                Config::load(default)
            } else {
                Ok(Config::default())
            }
        }
    }
}

/// spec.md's defaults: a system directory for root, the XDG state directory otherwise.
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
    let mut startup_errors = Vec::new();
    let config = load_config(&cli.global).unwrap_or_else(|e| {
        startup_errors.push(format!("config ignored, running with defaults: {e}"));
        Config::default()
    });
    let dir = state_dir(&cli.global);
    let store = Store::open(&dir, config.store.clone()).or_else(|e| {
        startup_errors.push(format!("history not persisted (in memory only): {e}"));
        Store::in_memory(config.store.clone())
    });
    let store = store.map_err(|e| e.to_string())?;
    for e in &startup_errors {
        eprintln!("launchwatch: {e}");
    }
    let mut env = TableEnv::new(store, config, cli.global.root.clone(), cli.global.now);
    env.startup_errors = startup_errors;
    let tables = table_set(env);
    let stop = Arc::new(StopSignal::default());
    {
        let tables = tables.clone();
        let stop = stop.clone();
        let verbose = cli.global.verbose;
        std::thread::Builder::new()
            .name("sampler".into())
            .spawn(move || {
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    sampler::run(&tables.env, &stop, &|e| {
                        if verbose {
                            eprintln!("launchwatch: sample: {e}")
                        }
                    })
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
    let seconds = |s: f64, what: &str| {
        if s.is_finite() && s >= 0.0 {
            Ok(Duration::from_secs_f64(s))
        } else {
            Err(format!("--{what} must be a non-negative number of seconds"))
        }
    };
    let opts = osquery::HostOptions {
        socket,
        timeout: seconds(cli.timeout, "timeout")?,
        interval: seconds(cli.interval, "interval")?.max(Duration::from_millis(200)),
        verbose: cli.global.verbose,
    };
    let code = osquery::run(tables, opts, || stop.stop());
    Ok(ExitCode::from(code as u8))
}

fn query(
    global: &Global,
    json: bool,
    replay: &[PathBuf],
    no_sample: bool,
    sql: &str,
) -> Result<ExitCode, String> {
    let config = load_config(global)?;
    let mut store = Store::in_memory(config.store.clone()).map_err(|e| e.to_string())?;
    let fixed_now;
    let live = replay.is_empty();
    if live {
        fixed_now = global.now;
        match store.import_history(&state_dir(global)) {
            Ok(_) => {}
            // History is a bonus for a live query: say why it is missing and go on.
            Err(e) => eprintln!("launchwatch: warning: {e}"),
        }
    } else {
        let mut loaded = Loaded::default();
        for file in replay {
            read_jsonl(file, &mut loaded)?;
        }
        for w in &loaded.warnings {
            eprintln!("launchwatch: warning: {w}");
        }
        fixed_now = global.now.or_else(|| {
            loaded
                .observations
                .iter()
                .filter_map(Observation::time)
                .reduce(f64::max)
        });
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
    let env = TableEnv::new(store, config, global.root.clone(), fixed_now);
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
    if live && !no_sample {
        // Two fresh samples a short window apart, so rates and CPU percentages are real.
        let window = Duration::from_secs_f64(tables.env.config.sampler.query_window);
        let mut sampler = Sampler::new();
        let started = Instant::now();
        if let Err(e) = sampler.tick(&tables.env, Due::ALL) {
            eprintln!("launchwatch: warning: sample: {e}");
        }
        std::thread::sleep(window.saturating_sub(started.elapsed()));
        if let Err(e) = sampler.tick(&tables.env, Due::ALL) {
            eprintln!("launchwatch: warning: sample: {e}");
        }
    }
    let conn = standalone::connection(&tables).map_err(|e| e.to_string())?;
    let rs = standalone::run_sql(&conn, sql)?;
    let text = if json {
        standalone::to_json(&rs)
    } else {
        standalone::to_text(&rs)
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush())
        .map_err(|e| format!("stdout: {e}"))?;
    Ok(ExitCode::SUCCESS)
}

/// Samples like the extension for a while, then writes everything observed as JSON Lines.
/// With an explicit `--state-dir` the samples also persist there (as a running extension's
/// would); otherwise they live in memory only.
fn record(global: &Global, out: &Path, duration: Option<f64>) -> Result<ExitCode, String> {
    let config = load_config(global)?;
    let signalled = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, signalled.clone()).map_err(|e| e.to_string())?;
    }
    let store = match &global.state_dir {
        Some(dir) => Store::open(dir, config.store.clone()),
        None => Store::in_memory(config.store.clone()),
    }
    .map_err(|e| e.to_string())?;
    // Fail on an unwritable target now, not after the recording.
    let tmp = out.with_extension("partial");
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?,
    );
    let env = Arc::new(TableEnv::new(store, config, global.root.clone(), None));
    let stop = Arc::new(StopSignal::default());
    let sampler_thread = {
        let (env, stop) = (env.clone(), stop.clone());
        let verbose = global.verbose;
        std::thread::spawn(move || {
            sampler::run(&env, &stop, &|e| {
                if verbose {
                    eprintln!("launchwatch: sample: {e}")
                }
            })
        })
    };
    let until = duration.map(|d| Instant::now() + Duration::from_secs_f64(d.max(0.0)));
    while !signalled.load(std::sync::atomic::Ordering::SeqCst)
        && until.is_none_or(|u| Instant::now() < u)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.stop();
    sampler_thread
        .join()
        .map_err(|_| "the sampler panicked".to_string())?;
    let lines = env.store.export(&mut file).map_err(|e| e.to_string())?;
    file.flush().map_err(|e| e.to_string())?;
    drop(file);
    // Renamed only when complete: a reader never sees half a file.
    std::fs::rename(&tmp, out).map_err(|e| format!("{}: {e}", out.display()))?;
    if global.verbose {
        eprintln!(
            "launchwatch: recorded {lines} observations to {}",
            out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn simulate(seed: u64, days: u64, out: &Path) -> Result<ExitCode, String> {
    use launchwatch_tables::analytics::simulate::{host_day, observations};
    let mut text = String::new();
    for day in 0..days {
        for o in observations(&host_day(seed, day)) {
            text.push_str(&o.to_json_line());
            text.push('\n');
        }
    }
    std::fs::write(out, text).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(ExitCode::SUCCESS)
}
