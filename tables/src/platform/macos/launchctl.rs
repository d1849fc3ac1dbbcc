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

/// `launchctl list` for the system domain (as root) and `launchctl asuser UID launchctl list`
/// for each user domain. launchctl is the most robust public route: `launch_msg` and
/// `SMCopyAllJobDictionaries` are deprecated and see only the caller's domain; the XPC routines
/// launchctl uses are private. Its text is not API, so the parser skips what it does not
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
    if root {
        live.system = run(Command::new("/bin/launchctl").arg("list"))
            .map(|t| crate::platform::parse::parse_launchctl_list(&t));
    }
    for &uid in uids {
        let text = if root {
            run(Command::new("/bin/launchctl").args([
                "asuser",
                &uid.to_string(),
                "/bin/launchctl",
                "list",
            ]))
        } else if uid == unsafe { libc::geteuid() } {
            run(Command::new("/bin/launchctl").arg("list"))
        } else {
            None
        };
        if let Some(t) = text {
            live.per_uid
                .insert(uid, crate::platform::parse::parse_launchctl_list(&t));
        }
    }
    live
}
