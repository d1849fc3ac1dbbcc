//! launchd job discovery under `--root`: which plists exist, in which domain, and the file
//! facts about each. Interpretation of a plist's keys is in [`job`], calendar maths in
//! [`calendar`].

pub mod btm;
pub mod calendar;
pub mod job;

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Plists larger than this are not read: a job plist is a few KiB.
pub const MAX_PLIST_BYTES: u64 = 1 << 20;

/// Where job plists live, relative to the root, with their domain (docs/design.md, "launchd").
pub const SYSTEM_DIRS: &[(&str, &str)] = &[
    ("System/Library/LaunchDaemons", "apple_daemon"),
    ("System/Library/LaunchAgents", "apple_agent"),
    ("Library/Apple/System/Library/LaunchDaemons", "apple_daemon"),
    ("Library/Apple/System/Library/LaunchAgents", "apple_agent"),
    ("Library/LaunchDaemons", "system_daemon"),
    ("Library/LaunchAgents", "system_agent"),
];

/// Directories holding home directories (macOS, then Linux).
const HOME_PARENTS: &[&str] = &["Users", "home"];

/// Where apps live whose bundles may carry SMAppService job plists (macOS 13+): the plist stays
/// in `<app>.app/Contents/Library/LaunchDaemons|LaunchAgents` and only the Background Task
/// Management database records the registration.
const APP_PARENTS: &[&str] = &["Applications", "Applications/Utilities"];

/// Whether a file name is a job plist as launchctl matches it (`*.plist`, any case).
pub fn is_plist_name(name: &str) -> bool {
    name.len() > 6 && name[name.len() - 6..].eq_ignore_ascii_case(".plist")
}

/// The launchd override databases, relative to the root.
pub const OVERRIDE_DIR: &str = "var/db/com.apple.xpc.launchd";

/// A directory scanned for plists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobDir {
    /// Host path (as it appears in rows), e.g. `/Users/alice/Library/LaunchAgents`.
    pub path: String,
    pub domain: &'static str,
    /// For user agents: the home's user name and owner uid.
    pub user: Option<(String, u32)>,
}

/// One plist file to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub path: String,
    pub dir: usize,
}

/// Joins a host path onto the root.
pub fn under_root(root: &Path, host_path: &str) -> PathBuf {
    root.join(host_path.trim_start_matches('/'))
}

/// Every job directory that exists under `root`.
pub fn job_dirs(root: &Path) -> Vec<JobDir> {
    let mut dirs: Vec<JobDir> = SYSTEM_DIRS
        .iter()
        .filter(|(rel, _)| root.join(rel).is_dir())
        .map(|(rel, domain)| JobDir {
            path: format!("/{rel}"),
            domain,
            user: None,
        })
        .collect();
    for parent in HOME_PARENTS {
        let Ok(homes) = std::fs::read_dir(root.join(parent)) else {
            continue;
        };
        let mut homes: Vec<_> = homes.flatten().collect();
        homes.sort_by_key(|e| e.file_name());
        for home in homes {
            let agents = home.path().join("Library/LaunchAgents");
            let Ok(meta) = std::fs::metadata(home.path()) else {
                continue;
            };
            if !meta.is_dir() || !agents.is_dir() {
                continue;
            }
            let name = home.file_name().to_string_lossy().into_owned();
            dirs.push(JobDir {
                path: format!("/{parent}/{name}/Library/LaunchAgents"),
                domain: "user_agent",
                user: Some((name, meta.uid())),
            });
        }
    }
    let mut app_parents: Vec<String> = APP_PARENTS.iter().map(|p| p.to_string()).collect();
    if let Ok(homes) = std::fs::read_dir(root.join("Users")) {
        let mut homes: Vec<_> = homes.flatten().collect();
        homes.sort_by_key(|e| e.file_name());
        app_parents.extend(
            homes
                .iter()
                .map(|h| format!("Users/{}/Applications", h.file_name().to_string_lossy())),
        );
    }
    for parent in app_parents {
        let Ok(apps) = std::fs::read_dir(root.join(&parent)) else {
            continue;
        };
        let mut apps: Vec<String> = apps
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".app"))
            .collect();
        apps.sort();
        for app in apps {
            for kind in ["LaunchDaemons", "LaunchAgents"] {
                let rel = format!("{parent}/{app}/Contents/Library/{kind}");
                if root.join(&rel).is_dir() {
                    dirs.push(JobDir {
                        path: format!("/{rel}"),
                        domain: "app_bundle",
                        user: None,
                    });
                }
            }
        }
    }
    dirs
}

/// The plists to read. With `paths`, only those (and only when they lie directly in a job
/// directory and end in `.plist`); otherwise every `*.plist` entry, hidden ones included.
pub fn candidates(root: &Path, dirs: &[JobDir], paths: &[&str]) -> Vec<Candidate> {
    let mut out = Vec::new();
    if !paths.is_empty() {
        for p in paths {
            let Some((parent, name)) = p.rsplit_once('/') else {
                continue;
            };
            if !is_plist_name(name) {
                continue;
            }
            if let Some(dir) = dirs.iter().position(|d| d.path == parent) {
                if std::fs::symlink_metadata(under_root(root, p)).is_ok()
                    && !out.iter().any(|c: &Candidate| c.path == *p)
                {
                    out.push(Candidate {
                        path: p.to_string(),
                        dir,
                    });
                }
            }
        }
        return out;
    }
    for (i, d) in dirs.iter().enumerate() {
        let Ok(entries) = std::fs::read_dir(under_root(root, &d.path)) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| is_plist_name(n))
            .collect();
        names.sort();
        out.extend(names.into_iter().map(|n| Candidate {
            path: format!("{}/{n}", d.path),
            dir: i,
        }));
    }
    out
}

/// Every job under `root` that reads and parses, with its plist's host path. Jobs that fail
/// are skipped here; `launchwatch_launchd` is where their errors are reported.
pub fn parsed_jobs(root: &Path) -> Vec<(String, job::Job)> {
    if !root.is_dir() {
        return Vec::new();
    }
    let dirs = job_dirs(root);
    candidates(root, &dirs, &[])
        .into_iter()
        .filter_map(|c| {
            let file = read_plist(root, &c.path).ok()?;
            let job = parse_plist(&file.bytes)
                .and_then(|v| job::interpret(&v))
                .ok()?;
            Some((c.path, job))
        })
        .collect()
}

/// A plist file as read: its bytes and the facts about the file itself.
#[derive(Debug)]
pub struct PlistFile {
    pub bytes: Vec<u8>,
    pub mtime: i64,
    pub uid: u32,
    pub sha256: String,
}

/// Reads one plist safely: it must resolve inside the root, be a regular file and be at most
/// [`MAX_PLIST_BYTES`]. The error is a short reason, never the file's content.
pub fn read_plist(root: &Path, host_path: &str) -> Result<PlistFile, String> {
    let path = under_root(root, host_path);
    let link = std::fs::symlink_metadata(&path).map_err(|e| short_io(&e))?;
    // The whole path must resolve inside the root: the file, or any directory on the way (an
    // image's `Users/bob/Library/LaunchAgents -> /etc`), may be a link pointing out.
    if link.file_type().is_symlink() || root != Path::new("/") {
        let target =
            std::fs::canonicalize(&path).map_err(|e| format!("symlink: {}", short_io(&e)))?;
        let root = std::fs::canonicalize(root).map_err(|e| short_io(&e))?;
        if !target.starts_with(&root) {
            return Err("symlink target is outside --root".into());
        }
    }
    let meta = std::fs::metadata(&path).map_err(|e| short_io(&e))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > MAX_PLIST_BYTES {
        return Err(format!("plist larger than {MAX_PLIST_BYTES} bytes"));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::fs::File::open(&path)
        .and_then(|f| f.take(MAX_PLIST_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| short_io(&e))?;
    if bytes.len() as u64 > MAX_PLIST_BYTES {
        return Err(format!("plist larger than {MAX_PLIST_BYTES} bytes"));
    }
    let sha256 = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(PlistFile {
        bytes,
        mtime: meta.mtime(),
        uid: meta.uid(),
        sha256,
    })
}

fn short_io(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "not found".into(),
        std::io::ErrorKind::PermissionDenied => "unreadable: permission denied".into(),
        _ => format!("unreadable: {}", e.kind()),
    }
}

/// Deeper nesting than this is refused before building a value: the plist crate builds values
/// recursively, and a 1 MiB file can nest a few hundred thousand levels.
pub const MAX_PLIST_DEPTH: usize = 64;

/// More values than this (after expanding shared references) is refused. A real job plist has
/// a few dozen.
pub const MAX_PLIST_EVENTS: usize = 100_000;

/// Parses plist bytes (XML, binary or ASCII). The error names the format, not the content.
pub fn parse_plist(bytes: &[u8]) -> Result<plist::Value, String> {
    let format = if bytes.starts_with(b"bplist") {
        "binary"
    } else {
        "XML"
    };
    let invalid = |e: plist::Error| {
        let why = if e.is_eof() { "truncated" } else { "malformed" };
        format!("invalid plist ({format}): {why}")
    };
    // The event reader keeps its own stack, so this pass is safe at any depth. It also bounds
    // the work: a binary plist can reference one object from many places, and the reader
    // expands every reference, so 300 bytes can stand for billions of values.
    let mut depth = 0usize;
    for (events, event) in plist::stream::Reader::new(std::io::Cursor::new(bytes)).enumerate() {
        if events > MAX_PLIST_EVENTS {
            return Err(format!(
                "invalid plist ({format}): more than {MAX_PLIST_EVENTS} values"
            ));
        }
        match event.map_err(invalid)? {
            plist::stream::Event::StartArray(_) | plist::stream::Event::StartDictionary(_) => {
                depth += 1;
                if depth > MAX_PLIST_DEPTH {
                    return Err(format!(
                        "invalid plist ({format}): nested deeper than {MAX_PLIST_DEPTH} levels"
                    ));
                }
            }
            plist::stream::Event::EndCollection => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    plist::Value::from_reader(std::io::Cursor::new(bytes)).map_err(invalid)
}

/// SHA-256 of a file, streamed (for plists too large to parse), up to `max` bytes.
pub fn file_sha256(path: &Path, max: u64) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > max {
        return None;
    }
    let mut f = std::fs::File::open(path).ok()?;
    let mut h = Sha256::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Some(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// `{label: disabled}` from one override database; missing or unreadable means no overrides.
pub fn read_overrides(path: &Path) -> BTreeMap<String, bool> {
    let Ok(meta) = std::fs::metadata(path) else {
        return BTreeMap::new();
    };
    if !meta.is_file() || meta.len() > MAX_PLIST_BYTES {
        return BTreeMap::new();
    }
    let Ok(bytes) = std::fs::read(path) else {
        return BTreeMap::new();
    };
    parse_overrides(&bytes)
}

pub fn parse_overrides(bytes: &[u8]) -> BTreeMap<String, bool> {
    let Ok(value) = parse_plist(bytes) else {
        return BTreeMap::new();
    };
    value
        .as_dictionary()
        .map(|d| {
            d.iter()
                .filter_map(|(k, v)| v.as_boolean().map(|b| (k.clone(), b)))
                .collect()
        })
        .unwrap_or_default()
}

/// The override databases under the root: the system one and one per uid.
#[derive(Debug, Default)]
pub struct Overrides {
    pub system: BTreeMap<String, bool>,
    pub per_uid: BTreeMap<u32, BTreeMap<String, bool>>,
}

impl Overrides {
    pub fn load(root: &Path) -> Overrides {
        let dir = root.join(OVERRIDE_DIR);
        let mut o = Overrides {
            system: read_overrides(&dir.join("disabled.plist")),
            per_uid: BTreeMap::new(),
        };
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let uid = name
                    .strip_prefix("disabled.")
                    .and_then(|r| r.strip_suffix(".plist"))
                    .and_then(|u| u.parse().ok());
                if let Some(uid) = uid {
                    o.per_uid.insert(uid, read_overrides(&e.path()));
                }
            }
        }
        o
    }

    /// The override for a job in `domain`: daemons use the system database, a user's agents
    /// that user's; agents installed for everyone count as overridden only when every user
    /// database that names them agrees.
    pub fn lookup(&self, domain: &str, uid: Option<u32>, label: &str) -> Option<bool> {
        match domain {
            "system_daemon" | "apple_daemon" => self.system.get(label).copied(),
            "user_agent" => uid
                .and_then(|u| self.per_uid.get(&u))
                .and_then(|m| m.get(label))
                .copied(),
            _ => {
                let votes: Vec<bool> = self
                    .per_uid
                    .values()
                    .filter_map(|m| m.get(label).copied())
                    .collect();
                match votes.first() {
                    Some(first) if votes.iter().all(|v| v == first) => Some(*first),
                    _ => None,
                }
            }
        }
    }
}

/// Why launchctl would refuse to load this plist, as launchd's loader checks it (launchd-842
/// `support/launchctl.c`, the path walk and `path_goodness_check`): a dot-file, a file that is
/// group- or world-writable, or one owned by someone other than root (or, for a user's agents,
/// that user). `None` when it would load it.
pub fn launchd_would_skip(root: &Path, dir: &JobDir, host_path: &str) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let name = host_path.rsplit('/').next().unwrap_or(host_path);
    if name.starts_with('.') {
        return Some("hidden file: launchctl skips dot-files".into());
    }
    let meta = std::fs::metadata(under_root(root, host_path)).ok()?;
    if meta.mode() & 0o022 != 0 {
        return Some("group- or world-writable: launchctl refuses it".into());
    }
    let owner_ok = meta.uid() == 0 || dir.user.as_ref().is_some_and(|u| u.1 == meta.uid());
    if !owner_ok && dir.domain != "app_bundle" {
        return Some(format!(
            "owned by uid {}, not root{}: launchctl refuses it",
            meta.uid(),
            if dir.user.is_some() {
                " or the user"
            } else {
                ""
            }
        ));
    }
    None
}

/// True when someone other than root could change `path` (under the root): a non-root owner
/// with write permission, a non-root group with write permission, or world-writable. The
/// parent directory counts too, since whoever can write it can replace the file.
pub fn writable_by_non_root(root: &Path, host_path: &str) -> Option<bool> {
    let path = under_root(root, host_path);
    let meta = std::fs::metadata(&path).ok()?;
    let check = |m: &std::fs::Metadata| {
        let mode = m.mode();
        (m.uid() != 0 && mode & 0o200 != 0)
            || (m.gid() != 0 && mode & 0o020 != 0)
            || mode & 0o002 != 0
    };
    let parent_writable = path
        .parent()
        .and_then(|p| std::fs::metadata(p).ok())
        .is_some_and(|m| {
            // A sticky directory only lets owners replace their own files.
            check(&m) && m.mode() & 0o1000 == 0
        });
    Some(check(&meta) || parent_writable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        for d in [
            "Library/LaunchDaemons",
            "Users/alice/Library/LaunchAgents",
            "Users/empty",
        ] {
            std::fs::create_dir_all(t.path().join(d)).unwrap();
        }
        for f in [
            "Library/LaunchDaemons/a.plist",
            "Library/LaunchDaemons/.h.plist",
            "Library/LaunchDaemons/notes.txt",
            "Users/alice/Library/LaunchAgents/b.plist",
        ] {
            std::fs::write(t.path().join(f), b"<plist/>").unwrap();
        }
        t
    }

    #[test]
    fn discovery_finds_system_and_user_dirs_and_hidden_plists() {
        let t = tree();
        let dirs = job_dirs(t.path());
        let names: Vec<_> = dirs.iter().map(|d| (d.path.as_str(), d.domain)).collect();
        assert_eq!(
            names,
            [
                ("/Library/LaunchDaemons", "system_daemon"),
                ("/Users/alice/Library/LaunchAgents", "user_agent")
            ]
        );
        assert_eq!(dirs[1].user.as_ref().unwrap().0, "alice");
        let all: Vec<_> = candidates(t.path(), &dirs, &[])
            .into_iter()
            .map(|c| c.path)
            .collect();
        assert_eq!(
            all,
            [
                "/Library/LaunchDaemons/.h.plist",
                "/Library/LaunchDaemons/a.plist",
                "/Users/alice/Library/LaunchAgents/b.plist"
            ]
        );
    }

    #[test]
    fn app_bundle_jobs_and_upper_case_plists_are_found() {
        let t = tree();
        for d in [
            "Applications/Helper.app/Contents/Library/LaunchAgents",
            "Applications/Utilities/Tool.app/Contents/Library/LaunchDaemons",
            "Users/alice/Applications/Mine.app/Contents/Library/LaunchAgents",
            "Applications/NotAnApp/Contents/Library/LaunchAgents",
        ] {
            std::fs::create_dir_all(t.path().join(d)).unwrap();
        }
        for f in [
            "Applications/Helper.app/Contents/Library/LaunchAgents/com.helper.agent.plist",
            "Applications/Utilities/Tool.app/Contents/Library/LaunchDaemons/com.tool.d.plist",
            "Users/alice/Applications/Mine.app/Contents/Library/LaunchAgents/m.plist",
            "Applications/NotAnApp/Contents/Library/LaunchAgents/x.plist",
            "Library/LaunchDaemons/UPPER.PLIST",
        ] {
            std::fs::write(t.path().join(f), b"<plist/>").unwrap();
        }
        let dirs = job_dirs(t.path());
        let found: Vec<(String, &str)> = candidates(t.path(), &dirs, &[])
            .into_iter()
            .map(|c| (c.path, dirs[c.dir].domain))
            .collect();
        for want in [
            ("/Library/LaunchDaemons/UPPER.PLIST", "system_daemon"),
            (
                "/Applications/Helper.app/Contents/Library/LaunchAgents/com.helper.agent.plist",
                "app_bundle",
            ),
            (
                "/Applications/Utilities/Tool.app/Contents/Library/LaunchDaemons/com.tool.d.plist",
                "app_bundle",
            ),
            (
                "/Users/alice/Applications/Mine.app/Contents/Library/LaunchAgents/m.plist",
                "app_bundle",
            ),
        ] {
            assert!(
                found.contains(&(want.0.to_string(), want.1)),
                "{want:?} in {found:?}"
            );
        }
        assert!(
            !found.iter().any(|f| f.0.contains("NotAnApp")),
            "only *.app bundles"
        );
    }

    #[test]
    fn plists_launchd_would_skip_are_named() {
        use std::os::unix::fs::PermissionsExt;
        let t = tree();
        let dirs = job_dirs(t.path());
        let daemons = &dirs[0];
        let set_mode = |f: &str, m: u32| {
            std::fs::set_permissions(t.path().join(f), std::fs::Permissions::from_mode(m)).unwrap()
        };
        set_mode("Library/LaunchDaemons/a.plist", 0o644);
        assert_eq!(
            launchd_would_skip(t.path(), daemons, "/Library/LaunchDaemons/a.plist"),
            None
        );
        assert!(
            launchd_would_skip(t.path(), daemons, "/Library/LaunchDaemons/.h.plist")
                .unwrap()
                .contains("dot-files")
        );
        set_mode("Library/LaunchDaemons/a.plist", 0o664);
        assert!(
            launchd_would_skip(t.path(), daemons, "/Library/LaunchDaemons/a.plist")
                .unwrap()
                .contains("writable")
        );
        set_mode("Library/LaunchDaemons/a.plist", 0o644);
        if unsafe { libc::geteuid() } == 0 {
            let f = t.path().join("Library/LaunchDaemons/a.plist");
            std::os::unix::fs::chown(&f, Some(4242), None).unwrap();
            assert!(
                launchd_would_skip(t.path(), daemons, "/Library/LaunchDaemons/a.plist")
                    .unwrap()
                    .contains("owned by uid 4242")
            );
        } else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI runs as root"
            );
        }
    }

    #[test]
    fn a_path_constraint_reads_exactly_one_plist() {
        let t = tree();
        let dirs = job_dirs(t.path());
        let one = candidates(t.path(), &dirs, &["/Library/LaunchDaemons/a.plist"]);
        assert_eq!(
            one,
            [Candidate {
                path: "/Library/LaunchDaemons/a.plist".into(),
                dir: 0
            }]
        );
        // Outside a job directory, not a plist, or absent: nothing is read.
        for p in [
            "/etc/passwd",
            "/Library/LaunchDaemons/notes.txt",
            "/Library/LaunchDaemons/zz.plist",
            "/Library/LaunchDaemons/../LaunchDaemons/a.plist",
            "relative.plist",
        ] {
            assert!(candidates(t.path(), &dirs, &[p]).is_empty(), "{p}");
        }
    }

    #[test]
    fn reading_refuses_escapes_directories_and_huge_files() {
        let t = tree();
        let d = t.path().join("Library/LaunchDaemons");
        std::os::unix::fs::symlink("/etc/hostname", d.join("out.plist")).unwrap();
        std::os::unix::fs::symlink("a.plist", d.join("in.plist")).unwrap();
        std::fs::create_dir(d.join("dir.plist")).unwrap();
        std::fs::write(
            d.join("big.plist"),
            vec![b' '; MAX_PLIST_BYTES as usize + 1],
        )
        .unwrap();
        assert!(read_plist(t.path(), "/Library/LaunchDaemons/out.plist")
            .unwrap_err()
            .contains("outside --root"));
        assert!(
            read_plist(t.path(), "/Library/LaunchDaemons/in.plist").is_ok(),
            "a link inside the root is fine"
        );
        // A directory on the way that links out of the root.
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("x.plist"), b"<plist/>").unwrap();
        std::fs::create_dir_all(t.path().join("Users/eve/Library")).unwrap();
        std::os::unix::fs::symlink(
            outside.path(),
            t.path().join("Users/eve/Library/LaunchAgents"),
        )
        .unwrap();
        assert!(
            read_plist(t.path(), "/Users/eve/Library/LaunchAgents/x.plist")
                .unwrap_err()
                .contains("outside --root")
        );
        assert_eq!(
            read_plist(t.path(), "/Library/LaunchDaemons/dir.plist").unwrap_err(),
            "not a regular file"
        );
        assert!(read_plist(t.path(), "/Library/LaunchDaemons/big.plist")
            .unwrap_err()
            .contains("larger than"));
        assert_eq!(
            read_plist(t.path(), "/Library/LaunchDaemons/gone.plist").unwrap_err(),
            "not found"
        );
    }

    #[test]
    fn hostile_plists_are_errors_not_crashes() {
        for bytes in [
            &b"bplist00"[..],
            b"bplist00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
            b"<?xml version=\"1.0\"?><plist><dict><key>a</key>",
            b"\x00\x01\x02",
        ] {
            assert!(parse_plist(bytes).is_err());
        }
        // Deep nesting within the size cap must not overflow the stack.
        let deep = format!(
            "<plist>{}{}</plist>",
            "<array>".repeat(50_000),
            "</array>".repeat(50_000)
        );
        assert!(parse_plist(deep.as_bytes())
            .unwrap_err()
            .contains("nested deeper than 64"));
        let ok = format!(
            "<plist>{}{}</plist>",
            "<array>".repeat(64),
            "</array>".repeat(64)
        );
        assert!(parse_plist(ok.as_bytes()).is_ok());
    }

    #[test]
    fn a_binary_plist_bomb_is_refused_quickly() {
        // 239 bytes that expand to 16^7 values (tests/fixtures/launchd/make_tree.py bomb()).
        let bomb = include_bytes!("../../../tests/fixtures/plist-bomb.bplist");
        let started = std::time::Instant::now();
        let err = parse_plist(bomb).unwrap_err();
        assert!(err.contains("more than"), "{err}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "stopped early, not after expanding"
        );
    }

    #[test]
    fn overrides_follow_the_domain() {
        let mut o = Overrides::default();
        o.system.insert("d".into(), true);
        o.per_uid.insert(501, [("a".to_string(), true)].into());
        o.per_uid.insert(
            502,
            [("a".to_string(), true), ("b".to_string(), false)].into(),
        );
        o.per_uid.insert(503, [("b".to_string(), true)].into());
        assert_eq!(o.lookup("system_daemon", None, "d"), Some(true));
        assert_eq!(o.lookup("user_agent", Some(502), "b"), Some(false));
        assert_eq!(o.lookup("user_agent", Some(501), "b"), None);
        assert_eq!(
            o.lookup("system_agent", None, "a"),
            Some(true),
            "every user that names it agrees"
        );
        assert_eq!(
            o.lookup("system_agent", None, "b"),
            None,
            "users disagree: the plist decides"
        );
    }
}
