//! A launchd job plist, interpreted (launchd.plist(5)): pure functions from a parsed plist to
//! the facts the table reports. Wrong-typed keys are reported and ignored, never fatal.

use std::collections::BTreeMap;

use plist::Value as Plist;
use serde_json::Value as Json;

use super::calendar::{entry_from_fields, firings, CalendarEntry, LocalClock, RawField};

#[derive(Debug, Clone, PartialEq)]
pub enum KeepAlive {
    Bool(bool),
    /// The condition dict (SuccessfulExit, NetworkState, PathState, OtherJobEnabled, Crashed…).
    Conditions(Json),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Job {
    pub label: Option<String>,
    pub program: Option<String>,
    pub program_arguments: Option<Vec<String>>,
    pub bundle_program: Option<String>,
    pub user_name: Option<String>,
    pub disabled: Option<bool>,
    pub start_interval: Option<i64>,
    pub calendar: Option<Vec<CalendarEntry>>,
    /// The effective calendar as JSON: an array of entries, wildcards omitted.
    pub calendar_json: Option<Json>,
    pub keep_alive: Option<KeepAlive>,
    pub run_at_load: bool,
    pub watch_paths: Vec<String>,
    pub queue_directories: Vec<String>,
    pub start_on_mount: bool,
    /// Event stream names under LaunchEvents.
    pub launch_events: Vec<String>,
    /// The shortest repeating `com.apple.xpc.activity` Interval, seconds.
    pub xpc_activity_interval: Option<i64>,
    pub process_type: Option<String>,
    pub nice: Option<i64>,
    pub low_priority_io: bool,
    pub low_priority_background_io: bool,
    pub problems: Vec<String>,
}

/// The first rule that applies (the value list in docs/tables.md, in this order).
pub fn schedule_kind(job: &Job) -> &'static str {
    let keep_alive = match &job.keep_alive {
        Some(KeepAlive::Bool(b)) => *b,
        Some(KeepAlive::Conditions(c)) => c.as_object().is_some_and(|o| !o.is_empty()),
        None => false,
    };
    if job.start_interval.is_some() {
        "interval"
    } else if job.calendar.as_ref().is_some_and(|c| !c.is_empty()) {
        "calendar"
    } else if keep_alive {
        "keep_alive"
    } else if !job.watch_paths.is_empty() || !job.queue_directories.is_empty() || job.start_on_mount
    {
        "watch"
    } else if !job.launch_events.is_empty() {
        "launch_events"
    } else if job.run_at_load {
        "run_at_load"
    } else {
        "on_demand"
    }
}

/// Low-profile signals: Background or Adaptive process type, low-priority I/O, positive nice.
pub fn is_background(job: &Job) -> bool {
    matches!(job.process_type.as_deref(), Some("Background" | "Adaptive"))
        || job.low_priority_io
        || job.low_priority_background_io
        || job.nice.is_some_and(|n| n > 0)
}

/// The job's timer: (period seconds, next run epoch). StartInterval has no knowable next run
/// (it counts from when the job was loaded); calendar periods are the mean gap over the next
/// 366 days; a repeating XPC activity's Interval is a period too.
pub fn timer(job: &Job, now: i64, clock: &dyn LocalClock) -> (Option<i64>, Option<i64>) {
    if let Some(i) = job.start_interval {
        return (Some(i), None);
    }
    if let Some(entries) = job.calendar.as_ref().filter(|c| !c.is_empty()) {
        let f = firings(entries, now, 366, clock);
        return (f.mean_gap.map(|g| g.round() as i64), f.next);
    }
    (job.xpc_activity_interval, None)
}

fn type_name(v: &Plist) -> &'static str {
    match v {
        Plist::Array(_) => "an array",
        Plist::Dictionary(_) => "a dictionary",
        Plist::Boolean(_) => "a boolean",
        Plist::Data(_) => "data",
        Plist::Date(_) => "a date",
        Plist::Real(_) => "a real",
        Plist::Integer(_) => "an integer",
        Plist::String(_) => "a string",
        _ => "an unknown type",
    }
}

/// plist → JSON for structured columns (KeepAlive conditions). Data and dates become strings.
pub fn to_json(v: &Plist) -> Json {
    match v {
        Plist::Array(a) => Json::Array(a.iter().map(to_json).collect()),
        Plist::Dictionary(d) => {
            Json::Object(d.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
        Plist::Boolean(b) => Json::Bool(*b),
        Plist::Integer(i) => i
            .as_signed()
            .map(Json::from)
            .or_else(|| i.as_unsigned().map(Json::from))
            .unwrap_or(Json::Null),
        Plist::Real(r) => serde_json::Number::from_f64(*r)
            .map(Json::Number)
            .unwrap_or(Json::Null),
        Plist::String(s) => Json::String(s.clone()),
        Plist::Date(d) => Json::String(d.to_xml_format()),
        Plist::Data(d) => Json::String(format!("<{} bytes>", d.len())),
        _ => Json::Null,
    }
}

struct Reader<'a> {
    dict: &'a plist::Dictionary,
    problems: Vec<String>,
}

impl<'a> Reader<'a> {
    fn get(&self, key: &str) -> Option<&'a Plist> {
        self.dict.get(key)
    }
    fn wrong(&mut self, key: &str, want: &str, got: &Plist) {
        self.problems
            .push(format!("{key} is {} (expected {want})", type_name(got)));
    }
    fn string(&mut self, key: &str) -> Option<String> {
        match self.get(key)? {
            Plist::String(s) => Some(s.clone()),
            other => {
                let other = other.clone();
                self.wrong(key, "a string", &other);
                None
            }
        }
    }
    fn boolean(&mut self, key: &str) -> Option<bool> {
        match self.get(key)? {
            Plist::Boolean(b) => Some(*b),
            other => {
                let other = other.clone();
                self.wrong(key, "a boolean", &other);
                None
            }
        }
    }
    fn integer(&mut self, key: &str) -> Option<i64> {
        match self.get(key)? {
            Plist::Integer(i) => i.as_signed().or_else(|| {
                self.problems.push(format!("{key} is out of range"));
                None
            }),
            other => {
                let other = other.clone();
                self.wrong(key, "an integer", &other);
                None
            }
        }
    }
    fn strings(&mut self, key: &str) -> Option<Vec<String>> {
        match self.get(key)? {
            Plist::Array(items) => {
                let strings: Option<Vec<String>> = items
                    .iter()
                    .map(|v| v.as_string().map(String::from))
                    .collect();
                if strings.is_none() {
                    self.problems.push(format!("{key} holds a non-string"));
                }
                strings
            }
            // launchd accepts a single string for some path lists; keep it.
            Plist::String(s) => Some(vec![s.clone()]),
            other => {
                let other = other.clone();
                self.wrong(key, "an array of strings", &other);
                None
            }
        }
    }
}

/// Interprets a parsed plist as a job. `Err` only when the top level is not a dictionary.
pub fn interpret(value: &Plist) -> Result<Job, String> {
    let dict = value
        .as_dictionary()
        .ok_or_else(|| format!("top level is {}, not a dictionary", type_name(value)))?;
    let mut r = Reader {
        dict,
        problems: Vec::new(),
    };
    let mut job = Job {
        label: r.string("Label"),
        ..Job::default()
    };
    if job.label.is_none() && r.get("Label").is_none() {
        r.problems.push("no Label".into());
    }
    job.program = r.string("Program");
    job.program_arguments = r.strings("ProgramArguments");
    job.bundle_program = r.string("BundleProgram");
    job.user_name = r.string("UserName");
    job.disabled = r.boolean("Disabled");
    job.start_interval = r.integer("StartInterval");
    if job.start_interval.is_some_and(|i| i <= 0) {
        r.problems.push("StartInterval is not positive".into());
        job.start_interval = None;
    }
    job.run_at_load = r.boolean("RunAtLoad").unwrap_or(false);
    job.watch_paths = r.strings("WatchPaths").unwrap_or_default();
    job.queue_directories = r.strings("QueueDirectories").unwrap_or_default();
    job.start_on_mount = r.boolean("StartOnMount").unwrap_or(false);
    job.process_type = r.string("ProcessType");
    job.nice = r.integer("Nice");
    job.low_priority_io = r.boolean("LowPriorityIO").unwrap_or(false);
    job.low_priority_background_io = r.boolean("LowPriorityBackgroundIO").unwrap_or(false);
    job.keep_alive = match r.get("KeepAlive") {
        None => None,
        Some(Plist::Boolean(b)) => Some(KeepAlive::Bool(*b)),
        Some(Plist::Dictionary(d)) => Some(KeepAlive::Conditions(to_json(&Plist::Dictionary(
            d.clone(),
        )))),
        Some(other) => {
            let other = other.clone();
            r.wrong("KeepAlive", "a boolean or a dictionary", &other);
            None
        }
    };
    // Obsolete OnDemand=false means KeepAlive=true.
    if job.keep_alive.is_none() && r.boolean("OnDemand") == Some(false) {
        job.keep_alive = Some(KeepAlive::Bool(true));
    }
    read_calendar(&mut r, &mut job);
    read_launch_events(&mut r, &mut job);
    job.problems = r.problems;
    Ok(job)
}

fn read_calendar(r: &mut Reader<'_>, job: &mut Job) {
    let dicts: Vec<&plist::Dictionary> = match r.get("StartCalendarInterval") {
        None => return,
        Some(Plist::Dictionary(d)) => vec![d],
        Some(Plist::Array(items)) => {
            let dicts: Vec<_> = items.iter().filter_map(Plist::as_dictionary).collect();
            if dicts.len() != items.len() {
                r.problems
                    .push("StartCalendarInterval holds a non-dictionary".into());
            }
            dicts
        }
        Some(other) => {
            let other = other.clone();
            r.wrong("StartCalendarInterval", "a dictionary or an array", &other);
            return;
        }
    };
    let mut entries = Vec::new();
    let mut json = Vec::new();
    for d in dicts {
        let fields: BTreeMap<String, RawField> = d
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_signed_integer().map_or(RawField::Other, RawField::Int),
                )
            })
            .collect();
        let (entry, entry_json, problems) = entry_from_fields(&fields);
        r.problems.extend(problems);
        let Some(entry) = entry else {
            continue;
        };
        entries.push(entry);
        json.push(Json::Object(
            entry_json
                .into_iter()
                .map(|(k, v)| (k, Json::from(v)))
                .collect(),
        ));
    }
    job.calendar = Some(entries);
    job.calendar_json = Some(Json::Array(json));
}

fn read_launch_events(r: &mut Reader<'_>, job: &mut Job) {
    let Some(events) = r.get("LaunchEvents") else {
        return;
    };
    let Some(events) = events.as_dictionary() else {
        let other = events.clone();
        r.wrong("LaunchEvents", "a dictionary", &other);
        return;
    };
    job.launch_events = events.keys().cloned().collect();
    let activities = events
        .get("com.apple.xpc.activity")
        .and_then(Plist::as_dictionary);
    for activity in activities
        .into_iter()
        .flat_map(|a| a.values())
        .filter_map(Plist::as_dictionary)
    {
        let repeating = activity
            .get("Repeating")
            .and_then(Plist::as_boolean)
            .unwrap_or(false);
        let interval = activity
            .get("Interval")
            .and_then(Plist::as_signed_integer)
            .filter(|i| *i > 0);
        if let (true, Some(i)) = (repeating, interval) {
            job.xpc_activity_interval = Some(job.xpc_activity_interval.map_or(i, |j| j.min(i)));
        }
    }
}

/// `_PATH_STDPATH`: where launchd looks up a bare `ProgramArguments[0]`.
pub const STD_PATH: &[&str] = &["/usr/bin", "/bin", "/usr/sbin", "/sbin"];

/// The executable launchd runs: Program, else ProgramArguments[0] (a bare name looked up in
/// `_PATH_STDPATH` with `exists`), else BundleProgram relative to the app bundle that holds the
/// plist. Returns the host path (not `--root`-prefixed).
pub fn resolve_program(
    job: &Job,
    plist_path: &str,
    exists: &dyn Fn(&str) -> bool,
) -> Option<String> {
    if let Some(p) = &job.program {
        return Some(p.clone());
    }
    if let Some(arg0) = job.program_arguments.as_ref().and_then(|a| a.first()) {
        if arg0.contains('/') {
            return Some(arg0.clone());
        }
        return Some(
            STD_PATH
                .iter()
                .map(|dir| format!("{dir}/{arg0}"))
                .find(|p| exists(p))
                .unwrap_or_else(|| arg0.clone()),
        );
    }
    let bundle = job.bundle_program.as_ref()?;
    match plist_path.find(".app/Contents/") {
        Some(i) => Some(format!(
            "{}/{}",
            &plist_path[..i + 4],
            bundle.trim_start_matches('/')
        )),
        None => Some(bundle.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(xml: &str) -> Job {
        let text = format!(
            "<?xml version=\"1.0\"?><plist version=\"1.0\"><dict><key>Label</key><string>x</string>{xml}</dict></plist>"
        );
        interpret(&Plist::from_reader_xml(text.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn schedule_kind_takes_the_first_rule_that_applies() {
        assert_eq!(
            schedule_kind(&job(
                "<key>StartInterval</key><integer>5</integer><key>KeepAlive</key><true/>"
            )),
            "interval"
        );
        assert_eq!(
            schedule_kind(&job(
                "<key>StartCalendarInterval</key><dict/><key>KeepAlive</key><true/>"
            )),
            "calendar"
        );
        assert_eq!(
            schedule_kind(&job(
                "<key>KeepAlive</key><false/><key>RunAtLoad</key><true/>"
            )),
            "run_at_load"
        );
        assert_eq!(
            schedule_kind(&job(
                "<key>KeepAlive</key><dict/><key>RunAtLoad</key><true/>"
            )),
            "run_at_load"
        );
        assert_eq!(
            schedule_kind(&job("<key>OnDemand</key><false/>")),
            "keep_alive"
        );
        assert_eq!(
            schedule_kind(&job(
                "<key>QueueDirectories</key><array><string>/q</string></array>"
            )),
            "watch"
        );
        assert_eq!(
            schedule_kind(&job(
                "<key>LaunchEvents</key><dict><key>com.apple.iokit.matching</key><dict/></dict>"
            )),
            "launch_events"
        );
        assert_eq!(schedule_kind(&job("")), "on_demand");
    }

    #[test]
    fn background_signals() {
        assert!(!is_background(&job(
            "<key>ProcessType</key><string>Interactive</string><key>Nice</key><integer>0</integer>"
        )));
        assert!(is_background(&job("<key>Nice</key><integer>1</integer>")));
        assert!(!is_background(&job("<key>Nice</key><integer>-5</integer>")));
        assert!(is_background(&job("<key>LowPriorityIO</key><true/>")));
    }

    #[test]
    fn wrong_types_are_reported_and_ignored() {
        let j = job("<key>StartInterval</key><string>300</string><key>RunAtLoad</key><string>yes</string><key>Program</key><integer>1</integer>");
        assert_eq!(j.start_interval, None);
        assert!(!j.run_at_load);
        assert_eq!(j.problems.len(), 3, "{:?}", j.problems);
        assert!(
            j.problems[0].contains("Program is an integer"),
            "{:?}",
            j.problems
        );
        let top = Plist::Array(vec![]);
        assert!(interpret(&top).unwrap_err().contains("not a dictionary"));
    }

    #[test]
    fn xpc_activity_interval_is_the_shortest_repeating_one() {
        let j = job("<key>LaunchEvents</key><dict><key>com.apple.xpc.activity</key><dict>\
            <key>a</key><dict><key>Interval</key><integer>3600</integer><key>Repeating</key><true/></dict>\
            <key>b</key><dict><key>Interval</key><integer>60</integer></dict>\
            <key>c</key><dict><key>Interval</key><integer>900</integer><key>Repeating</key><true/></dict>\
            </dict></dict>");
        assert_eq!(j.xpc_activity_interval, Some(900), "b does not repeat");
        assert_eq!(j.launch_events, ["com.apple.xpc.activity"]);
    }

    #[test]
    fn program_resolution() {
        let none = |_: &str| false;
        let bin_sh = |p: &str| p == "/bin/sh";
        let j = job("<key>ProgramArguments</key><array><string>sh</string></array>");
        assert_eq!(
            resolve_program(&j, "/Library/LaunchDaemons/x.plist", &bin_sh).as_deref(),
            Some("/bin/sh")
        );
        assert_eq!(
            resolve_program(&j, "/Library/LaunchDaemons/x.plist", &none).as_deref(),
            Some("sh")
        );
        let j = job("<key>Program</key><string>/a</string><key>ProgramArguments</key><array><string>/b</string></array>");
        assert_eq!(resolve_program(&j, "", &none).as_deref(), Some("/a"));
        let j = job("<key>BundleProgram</key><string>Contents/MacOS/helper</string>");
        assert_eq!(
            resolve_program(
                &j,
                "/Applications/X.app/Contents/Library/LaunchDaemons/x.plist",
                &none
            )
            .as_deref(),
            Some("/Applications/X.app/Contents/MacOS/helper")
        );
        assert_eq!(resolve_program(&job(""), "", &none), None);
    }
}
