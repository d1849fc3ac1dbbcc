//! `launchwatch_launchd`: every launchd job plist under `--root`, with its real schedule
//! (calendar maths included), background signals, override state, file facts and — on macOS —
//! whether launchd has it loaded.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value as Json;

use crate::env::TableEnv;
use crate::framework::column::{bigint, integer, text};
use crate::framework::{Column, QueryContext, Row, Table, TableError, Value};
use crate::launchd::calendar::SystemLocal;
use crate::launchd::job::{
    interpret, is_background, resolve_program, schedule_kind, timer, KeepAlive,
};
use crate::launchd::{
    candidates, file_sha256, job_dirs, parse_plist, read_plist, under_root, writable_by_non_root,
    Overrides,
};
use crate::platform::{launchd_live, LaunchdLive};

pub struct Launchd;

const COLUMNS: &[Column] = &[
    text("label", "The job's Label").index(),
    text("path", "The plist's path on the host").index(),
    text("domain", "system_daemon, system_agent, user_agent, apple_daemon, apple_agent (from the plist's directory), app_bundle (an SMAppService plist inside an app bundle, macOS 13+), or btm (a Background Task Management registration, one row each, where the database is readable: it needs Full Disk Access)"),
    text("username", "User the job runs as: the home's user for user agents, UserName or root for daemons; NULL for agents loaded for every user"),
    bigint("owner_uid", "uid owning the plist file"),
    text("program", "Executable launchd runs: Program, else ProgramArguments[0] (bare names looked up in /usr/bin:/bin:/usr/sbin:/sbin), else BundleProgram"),
    text("program_arguments", "ProgramArguments as a JSON array, credentials redacted (URL passwords, --password/--token-style values, Authorization headers, long random base64/hex) as [redacted KIND len=N sha256=…]; [redact] in the config"),
    integer("arguments_redacted", "How many secrets were redacted from program_arguments; 0 when none, NULL without ProgramArguments"),
    integer("program_exists", "1 when the program exists under --root"),
    text("schedule_kind", "interval, calendar, keep_alive, watch, launch_events, run_at_load or on_demand: the first that applies"),
    bigint("start_interval", "StartInterval, seconds"),
    text("calendar", "StartCalendarInterval as a JSON array of entries (wildcards omitted)"),
    bigint("period_seconds", "Timer period: StartInterval; for calendars the mean gap between firings over the next 366 days (local time); a repeating XPC activity's Interval; NULL without a timer"),
    bigint("next_run", "Next calendar firing after now (local time zone), Unix epoch; NULL for non-calendar jobs"),
    integer("run_at_load", "RunAtLoad"),
    text("keep_alive", "KeepAlive: 1 or 0 when a boolean, the condition dictionary as JSON otherwise; NULL when absent"),
    text("watch_paths", "WatchPaths as a JSON array"),
    text("queue_directories", "QueueDirectories as a JSON array"),
    integer("start_on_mount", "StartOnMount"),
    text("launch_events", "LaunchEvents stream names as a JSON array (com.apple.xpc.activity, com.apple.iokit.matching, …)"),
    bigint("xpc_activity_interval", "Shortest repeating com.apple.xpc.activity Interval, seconds"),
    text("process_type", "ProcessType"),
    integer("nice", "Nice"),
    integer("is_background", "1 when ProcessType is Background or Adaptive, LowPriorityIO or LowPriorityBackgroundIO is set, or Nice > 0"),
    integer("disabled", "Effective disabled state: the launchd override database wins over the plist's Disabled key"),
    text("disabled_source", "override (launchd's disabled*.plist database), plist (Disabled key) or NULL (default: enabled)"),
    integer("loaded", "1 when launchd lists the job in its domain (macOS, live host only); NULL where unknown"),
    bigint("pid", "pid of the running job (macOS, live host only)"),
    integer("last_exit_status", "Last exit status launchd recorded; negative: killed by that signal (macOS, live host only)"),
    bigint("plist_mtime", "The plist's modification time, Unix epoch"),
    text("plist_sha256", "SHA-256 of the plist file"),
    integer("user_writable", "1 when a non-root user can write the plist or its program (or their directories): a classic hijack"),
    text("job_class", "How far the job is trusted: apple (Apple's directories and an Apple-signed program), third_party (/Library, root-only), user (a user's agent, or anything a non-root user can change), app_bundle (docs/job-trust.md)"),
    integer("masquerading", "1 when a com.apple. label lives outside Apple's directories"),
    integer("interpreter", "1 when the program is an interpreter or downloader (curl, python3, osascript, sh, …)"),
    text("program_sha256", "SHA-256 of the program file (at most 256 MiB)"),
    text("program_cdhash", "The program's code directory hash, when signed"),
    text("signer_class", "Signer class of the program (launchwatch_signing)"),
    text("launchd_would_skip", "Why launchctl would refuse to load this plist (a dot-file, group- or world-writable, foreign owner); NULL when it would load it"),
    text("btm_type", "domain btm: the Background Task Management item's type (agent, daemon, login item, app, legacy daemon, …)"),
    text("btm_disposition", "domain btm: the user's decision as sfltool names it (enabled or disabled, allowed, hidden, notified)"),
    text("team_id", "domain btm: the registering app's team id"),
    text("developer_name", "domain btm: the developer name shown in Login Items"),
    text("parse_error", "Why the plist could not be read or what in it was ignored; never the file's content"),
];

/// Where a column sits, so rows are built by name.
fn col(name: &str) -> usize {
    COLUMNS
        .iter()
        .position(|c| c.name == name)
        .expect("known column")
}

fn json_list(items: &[String]) -> Value {
    if items.is_empty() {
        Value::Null
    } else {
        Value::Text(Json::from(items.to_vec()).to_string())
    }
}

impl Table for Launchd {
    fn name(&self) -> &'static str {
        "launchwatch_launchd"
    }
    fn description(&self) -> &'static str {
        "launchd jobs: every LaunchDaemon and LaunchAgent plist (system, Apple and every user's), its real schedule, background signals, disabled state, file facts and live state."
    }
    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn generate(&self, env: &TableEnv, ctx: &QueryContext) -> Result<Vec<Row>, TableError> {
        let root = env.root.as_path();
        if !root.is_dir() {
            return Err(TableError(format!(
                "--root {} is not a directory",
                root.display()
            )));
        }
        let dirs = job_dirs(root);
        let paths = ctx.equals("path");
        let labels: BTreeSet<&str> = ctx.equals("label").into_iter().collect();
        let overrides = Overrides::load(root);
        // launchctl forks: only ask when the query reads live columns, and only on the live host.
        let wants_live =
            ctx.is_used("loaded") || ctx.is_used("pid") || ctx.is_used("last_exit_status");
        let live = if wants_live && root == Path::new("/") {
            let uids: Vec<u32> = dirs
                .iter()
                .filter_map(|d| d.user.as_ref().map(|u| u.1))
                .collect();
            launchd_live(&uids)
        } else {
            None
        };
        let now = env.now() as i64;
        let mut rows = Vec::new();
        for c in candidates(root, &dirs, &paths) {
            let dir = &dirs[c.dir];
            let mut row: Row = vec![Value::Null; COLUMNS.len()];
            let mut set = |name: &str, v: Value| row[col(name)] = v;
            set("path", Value::from(c.path.as_str()));
            set("domain", Value::from(dir.domain));
            if let Some((user, _)) = &dir.user {
                set("username", Value::from(user.as_str()));
            }
            let file = match read_plist(root, &c.path) {
                Ok(f) => f,
                Err(e) => {
                    if !labels.is_empty() {
                        continue;
                    }
                    let regular = !(e.contains("outside --root")
                        || e == "not a regular file"
                        || e == "not found");
                    if regular {
                        if let Ok(meta) = std::fs::metadata(under_root(root, &c.path)) {
                            use std::os::unix::fs::MetadataExt;
                            set("plist_mtime", Value::from(meta.mtime()));
                            set("owner_uid", Value::from(meta.uid()));
                        }
                        set(
                            "plist_sha256",
                            Value::from(file_sha256(&under_root(root, &c.path), 64 << 20)),
                        );
                        set(
                            "user_writable",
                            Value::from(writable_by_non_root(root, &c.path)),
                        );
                    }
                    set("parse_error", Value::from(e));
                    rows.push(row);
                    continue;
                }
            };
            set("plist_mtime", Value::from(file.mtime));
            set("owner_uid", Value::from(file.uid));
            set("plist_sha256", Value::from(file.sha256.as_str()));
            let job = match parse_plist(&file.bytes).and_then(|v| interpret(&v)) {
                Ok(job) => job,
                Err(e) => {
                    if !labels.is_empty() {
                        continue;
                    }
                    set(
                        "user_writable",
                        Value::from(writable_by_non_root(root, &c.path)),
                    );
                    set("parse_error", Value::from(e));
                    rows.push(row);
                    continue;
                }
            };
            if !labels.is_empty() && !job.label.as_deref().is_some_and(|l| labels.contains(l)) {
                continue;
            }
            set("label", Value::from(job.label.clone()));
            if dir.user.is_none() && dir.domain.ends_with("daemon") {
                set(
                    "username",
                    Value::from(job.user_name.clone().unwrap_or_else(|| "root".into())),
                );
            }
            let exists = |p: &str| p.starts_with('/') && under_root(root, p).exists();
            let program = resolve_program(&job, &c.path, &exists);
            set(
                "program_exists",
                Value::from(program.as_deref().map(exists)),
            );
            let program_writable = program
                .as_deref()
                .filter(|p| exists(p))
                .and_then(|p| writable_by_non_root(root, p));
            let plist_writable = writable_by_non_root(root, &c.path);
            let row_writable = plist_writable.map(|w| w || program_writable.unwrap_or(false));
            set("user_writable", Value::from(row_writable));
            let row_program = program.clone();
            set("program", Value::from(program));
            if let Some(args) = &job.program_arguments {
                let redacted = crate::redact::command_line(args, &env.config.redact);
                set(
                    "program_arguments",
                    Value::Text(Json::from(redacted.args).to_string()),
                );
                set(
                    "arguments_redacted",
                    Value::from(redacted.redactions as i64),
                );
            }
            set("schedule_kind", Value::from(schedule_kind(&job)));
            set("start_interval", Value::from(job.start_interval));
            set(
                "calendar",
                Value::from(job.calendar_json.as_ref().map(Json::to_string)),
            );
            let (period, next) = timer(&job, now, &SystemLocal);
            set("period_seconds", Value::from(period));
            set("next_run", Value::from(next));
            set("run_at_load", Value::from(job.run_at_load));
            set(
                "keep_alive",
                match &job.keep_alive {
                    None => Value::Null,
                    Some(KeepAlive::Bool(b)) => Value::from(if *b { "1" } else { "0" }),
                    Some(KeepAlive::Conditions(c)) => Value::from(c.to_string()),
                },
            );
            set("watch_paths", json_list(&job.watch_paths));
            set("queue_directories", json_list(&job.queue_directories));
            set("start_on_mount", Value::from(job.start_on_mount));
            set("launch_events", json_list(&job.launch_events));
            set(
                "xpc_activity_interval",
                Value::from(job.xpc_activity_interval),
            );
            set("process_type", Value::from(job.process_type.clone()));
            set("nice", Value::from(job.nice));
            set("is_background", Value::from(is_background(&job)));
            let uid = dir.user.as_ref().map(|u| u.1);
            let label = job.label.as_deref().unwrap_or("");
            let (disabled, source) = match (overrides.lookup(dir.domain, uid, label), job.disabled)
            {
                (Some(o), _) => (o, Some("override")),
                (None, Some(p)) => (p, Some("plist")),
                (None, None) => (false, None),
            };
            set("disabled", Value::from(disabled));
            set("disabled_source", Value::from(source));
            if let Some(live) = &live {
                let (loaded, job_state) = live_state(live, dir.domain, uid, label);
                set("loaded", Value::from(loaded));
                if let Some(s) = job_state {
                    set("pid", Value::from(s.pid));
                    set("last_exit_status", Value::from(s.last_exit_status));
                }
            }
            if !job.problems.is_empty() {
                set("parse_error", Value::from(job.problems.join("; ")));
            }
            let masquerading =
                crate::jobs::is_apple_label(label) && !dir.domain.starts_with("apple_");
            set("masquerading", Value::from(masquerading));
            let program_path = row_program.clone();
            set(
                "interpreter",
                Value::from(program_path.as_deref().map(crate::jobs::is_interpreter)),
            );
            let existing = program_path.as_deref().filter(|p| exists(p));
            if ctx.is_used("program_sha256") {
                set(
                    "program_sha256",
                    Value::from(
                        existing.and_then(|p| file_sha256(&under_root(root, p), 256 << 20)),
                    ),
                );
            }
            let wants_signer = ctx.is_used("signer_class")
                || ctx.is_used("job_class")
                || ctx.is_used("program_cdhash");
            let signer = match existing.filter(|_| wants_signer) {
                Some(p) => {
                    let paths = std::iter::once(p.to_string()).collect();
                    crate::analytics::history::signers(env, &paths).remove(p)
                }
                None => None,
            };
            if let Some(s) = &signer {
                set("signer_class", Value::from(s.class.as_str()));
                set("program_cdhash", Value::from(s.cdhash.clone()));
            }
            let facts = crate::jobs::JobFacts {
                label: label.to_string(),
                file: c.path.clone(),
                domain: dir.domain,
                program: program_path.clone(),
                arguments: job.program_arguments.clone().unwrap_or_default(),
                user_writable: row_writable.unwrap_or(false),
                root_owned: file.uid == 0,
                period,
                masquerading,
            };
            set(
                "job_class",
                Value::from(facts.class(signer.as_ref().map(|s| s.class.as_str()))),
            );
            set(
                "launchd_would_skip",
                Value::from(crate::launchd::launchd_would_skip(root, dir, &c.path)),
            );
            rows.push(row);
        }
        if paths.is_empty() {
            rows.extend(btm_rows(root).into_iter().filter(|r| {
                labels.is_empty()
                    || matches!(&r[col("label")], Value::Text(l) if labels.contains(l.as_str()))
            }));
        }
        Ok(rows)
    }
}

/// One row per Background Task Management item, or one row saying why the database could not
/// be read (it needs Full Disk Access, even as root).
fn btm_rows(root: &Path) -> Vec<Row> {
    use crate::launchd::btm;
    let Some(db) = btm::current_db(root) else {
        return Vec::new();
    };
    let host_path = format!("/{}", db.strip_prefix(root).unwrap_or(&db).display());
    let error_row = |e: String| {
        let mut row: Row = vec![Value::Null; COLUMNS.len()];
        row[col("path")] = Value::from(host_path.as_str());
        row[col("domain")] = Value::from("btm");
        row[col("parse_error")] = Value::from(e);
        vec![row]
    };
    let bytes = match std::fs::metadata(&db) {
        Ok(m) if m.len() > 64 << 20 => return error_row("larger than 64 MiB".into()),
        Ok(_) => match std::fs::read(&db) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return error_row(
                "unreadable: permission denied (Background Task Management needs Full Disk Access)"
                    .into(),
            ),
            Err(e) => return error_row(format!("unreadable: {}", e.kind())),
        },
        Err(e) => return error_row(format!("unreadable: {}", e.kind())),
    };
    let items = match btm::parse(&bytes) {
        Ok(items) => items,
        Err(e) => return error_row(e),
    };
    items
        .into_iter()
        .map(|item| {
            let mut row: Row = vec![Value::Null; COLUMNS.len()];
            // Identifiers carry the item type as a numeric prefix ("8.com.example.agent").
            let label = match item.identifier.split_once('.') {
                Some((n, rest)) if n.chars().all(|c| c.is_ascii_digit()) => rest.to_string(),
                _ => item.identifier.clone(),
            };
            let url_path = item
                .url
                .as_deref()
                .map(|u| u.strip_prefix("file://").unwrap_or(u).to_string());
            let program = match (&item.executable, &url_path) {
                (Some(e), _) if e.starts_with('/') => Some(e.clone()),
                (Some(e), Some(u)) => u
                    .find(".app/")
                    .map(|i| format!("{}/{}", &u[..i + 4], e.trim_start_matches('/'))),
                _ => None,
            };
            row[col("label")] = Value::from(label);
            row[col("path")] = Value::from(url_path.unwrap_or_else(|| host_path.clone()));
            row[col("domain")] = Value::from("btm");
            row[col("program")] = Value::from(program);
            row[col("btm_type")] = Value::from(item.item_type);
            row[col("btm_disposition")] = Value::from(item.disposition);
            row[col("team_id")] = Value::from(item.team_id);
            row[col("developer_name")] = Value::from(item.developer_name);
            row
        })
        .collect()
}

/// Whether the job's domain lists it: daemons in the system domain, a user's agents in that
/// user's domain, agents installed for everyone in any user's domain.
fn live_state(
    live: &LaunchdLive,
    domain: &str,
    uid: Option<u32>,
    label: &str,
) -> (Option<bool>, Option<crate::platform::LaunchctlJob>) {
    let lists: Vec<&std::collections::BTreeMap<String, crate::platform::LaunchctlJob>> =
        match domain {
            "system_daemon" | "apple_daemon" => live.system.iter().collect(),
            "user_agent" => uid.and_then(|u| live.per_uid.get(&u)).into_iter().collect(),
            _ => live.per_uid.values().collect(),
        };
    if lists.is_empty() {
        return (None, None);
    }
    let found = lists.iter().find_map(|l| l.get(label).copied());
    (Some(found.is_some()), found)
}
