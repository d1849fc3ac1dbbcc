//! launchd's live state from `launchctl` (its text output is not API: the parser skips what
//! it does not recognise). Every run is bounded by a timeout, so a hung launchctl cannot hold
//! the label cache's lock for ever.

/// How long one launchctl run may take (a wedged launchd must not stall sampling).
const LAUNCHCTL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// pid → launchd label, from `launchctl list` of the system domain and of every user domain
/// that owns a running process; refreshed at most once a minute (each refresh forks launchctl
/// once per domain).
pub fn pid_labels(uids: &[u32]) -> std::collections::HashMap<i64, String> {
    use std::sync::Mutex;
    use std::time::{Duration, Instant};
    static CACHE: Mutex<Option<(Instant, std::collections::HashMap<i64, String>)>> =
        Mutex::new(None);
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((at, map)) = cache.as_ref() {
        if at.elapsed() < Duration::from_secs(60) {
            return map.clone();
        }
    }
    let live = launchd_live(uids);
    let mut map = std::collections::HashMap::new();
    for list in live.system.iter().chain(live.per_uid.values()) {
        for (label, job) in list {
            if let Some(pid) = job.pid {
                map.entry(pid).or_insert_with(|| label.clone());
            }
        }
    }
    *cache = Some((Instant::now(), map.clone()));
    map
}

/// `launchctl print system` (as root) and `launchctl print gui/<uid>` for each user domain,
/// falling back to `launchctl list` / `launchctl asuser UID launchctl list`. launchctl is the
/// most robust public route: `launch_msg` and `SMCopyAllJobDictionaries` are deprecated and see
/// only the caller's domain; the XPC routines launchctl uses are private. As uid 0 the last
/// open-source launchctl forced the system context unless `asuser` set LaunchKeepContext
/// (launchd-842 `support/launchctl.c`), so a per-user list that equals the system one is
/// thrown away rather than believed. Its text is not API, so the parsers skip what they do not
/// recognise. Unverified here: needs a Mac (and root for other users' domains).
pub fn launchd_live(uids: &[u32]) -> crate::platform::LaunchdLive {
    use std::process::Command;
    // Bounded: pid_labels holds its cache lock while this runs.
    let run = |cmd: &mut Command| -> Option<String> {
        crate::platform::run_bounded(cmd, LAUNCHCTL_TIMEOUT).ok()
    };
    let mut live = crate::platform::LaunchdLive::default();
    // SAFETY: no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    use crate::platform::parse::{is_really_per_user, parse_launchctl_list, parse_launchctl_print};
    let print = |domain: &str| {
        run(Command::new("/bin/launchctl").args(["print", domain]))
            .map(|t| parse_launchctl_print(&t))
            .filter(|m| !m.is_empty())
    };
    if root {
        live.system = print("system").or_else(|| {
            run(Command::new("/bin/launchctl").arg("list")).map(|t| parse_launchctl_list(&t))
        });
    }
    for &uid in uids {
        let mine = uid == unsafe { libc::geteuid() };
        let list = if root || mine {
            print(&format!("gui/{uid}"))
                .or_else(|| print(&format!("user/{uid}")))
                .or_else(|| {
                    let text = if root {
                        run(Command::new("/bin/launchctl").args([
                            "asuser",
                            &uid.to_string(),
                            "/bin/launchctl",
                            "list",
                        ]))
                    } else {
                        run(Command::new("/bin/launchctl").arg("list"))
                    };
                    text.map(|t| parse_launchctl_list(&t))
                })
        } else {
            None
        };
        if let Some(list) = list.filter(|l| is_really_per_user(l, live.system.as_ref())) {
            live.per_uid.insert(uid, list);
        }
    }
    live
}
