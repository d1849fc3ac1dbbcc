//! Pure parsers of what the kernels hand back. No I/O here: tests feed fixtures.

/// The fields of `/proc/<pid>/stat` the sampler needs (proc(5)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: i64,
    pub comm: String,
    /// The state letter (field 3): `Z` for a zombie, which no longer parents anything alive.
    pub state: u8,
    pub ppid: i64,
    /// Process group (field 5).
    pub pgrp: i64,
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
    /// Threads in the group (field 20): while there is one, its scheduler runtime stands
    /// for the whole process's CPU.
    pub threads: i64,
    /// Process start, clock ticks after boot.
    pub start_ticks: u64,
}

/// Parses `/proc/<pid>/stat`. `comm` may hold spaces and parentheses, so the fields after it are
/// found from the *last* `)`.
pub fn parse_proc_stat(text: &str) -> Result<ProcStat, String> {
    let open = text.find('(').ok_or("no '(' before comm")?;
    let close = text.rfind(')').ok_or("no ')' after comm")?;
    if close < open {
        return Err("')' before '('".into());
    }
    let pid = text[..open]
        .trim()
        .parse()
        .map_err(|_| "pid is not a number")?;
    let comm = text[open + 1..close].to_string();
    // Fields after comm start at field 3 (state). Walked once, without collecting them: this
    // runs for every process on every walk.
    let mut fields = text[close + 1..].split_ascii_whitespace();
    let mut at = 2;
    let mut field = |n: usize| -> Result<&str, String> {
        let f = fields
            .nth(n - at - 1)
            .ok_or_else(|| format!("truncated: no field {n}"))?;
        at = n;
        Ok(f)
    };
    fn num<T: std::str::FromStr>(n: usize, f: &str) -> Result<T, String> {
        f.parse().map_err(|_| format!("field {n} is not a number"))
    }
    // In field order: each read moves past the ones before it.
    let state = *field(3)?.as_bytes().first().ok_or("field 3 is empty")?;
    let ppid: i64 = num(4, field(4)?)?;
    let pgrp: i64 = num(5, field(5)?)?;
    let utime: u64 = num(14, field(14)?)?;
    let stime: u64 = num(15, field(15)?)?;
    let threads = num(20, field(20)?)?;
    let start_ticks = num(22, field(22)?)?;
    Ok(ProcStat {
        pid,
        comm,
        state,
        ppid,
        pgrp,
        cpu_ticks: utime.saturating_add(stime),
        threads,
        start_ticks,
    })
}

/// The first figure of `/proc/<pid>/schedstat`: nanoseconds the task (the thread, not its
/// group) has run. It changes whenever the task has run since it was last read, which makes
/// it a cheap test of whether the costlier `stat` line can have changed.
pub fn parse_schedstat_runtime(text: &[u8]) -> Option<u64> {
    let end = text
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(text.len());
    if end == 0 || text.get(end).is_some_and(|b| *b != b' ' && *b != b'\n') {
        return None;
    }
    std::str::from_utf8(&text[..end]).ok()?.parse().ok()
}

/// `btime` (boot time, epoch seconds) from `/proc/stat`.
pub fn parse_boot_time(proc_stat: &str) -> Result<u64, String> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .ok_or("no btime line")?
        .trim()
        .parse()
        .map_err(|_| "btime is not a number".to_string())
}

/// The systemd unit a process belongs to, from `/proc/<pid>/cgroup` (v2 `0::/…` or the v1
/// `name=systemd` hierarchy): the innermost `*.service` (or `.scope`/`.timer`) component.
pub fn systemd_unit_from_cgroup(text: &str) -> Option<String> {
    let line = text
        .lines()
        .find(|l| l.starts_with("0::"))
        .or_else(|| text.lines().find(|l| l.contains(":name=systemd:")))?;
    let path = line.splitn(3, ':').nth(2)?;
    path.rsplit('/')
        .find(|c| c.ends_with(".service") || c.ends_with(".scope"))
        .map(str::to_string)
}

/// Converts Mach absolute-time ticks to seconds given the timebase frequency in ticks per
/// second (`hw.tbfrequency`: 24 MHz on Apple Silicon, 1 GHz on Intel).
pub fn mach_ticks_to_seconds(ticks: u64, ticks_per_second: u64) -> f64 {
    if ticks_per_second == 0 {
        return 0.0;
    }
    let whole = ticks / ticks_per_second;
    let frac = ticks % ticks_per_second;
    whole as f64 + frac as f64 / ticks_per_second as f64
}

/// Ticks per second from a `mach_timebase_info` (numer/denom converts ticks to ns). Only the
/// fallback: under Rosetta it reports 1/1 while the kernel counts native ticks.
pub fn timebase_ticks_per_second(numer: u32, denom: u32) -> u64 {
    if numer == 0 {
        return 1_000_000_000;
    }
    (1_000_000_000u128 * denom as u128 / numer as u128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_with_hostile_comm() {
        // comm holds spaces and a ')' — the field split must start after the last ')'.
        let text = "4242 (evil) (x y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 123456 1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
        let s = parse_proc_stat(text).unwrap();
        assert_eq!(s.pid, 4242);
        assert_eq!(s.comm, "evil) (x y");
        assert_eq!(
            (
                s.state,
                s.ppid,
                s.pgrp,
                s.cpu_ticks,
                s.threads,
                s.start_ticks
            ),
            (b'S', 1, 4242, 300, 1, 123456)
        );
    }

    #[test]
    fn schedstat_runtime_is_the_first_figure() {
        assert_eq!(
            parse_schedstat_runtime(b"123456789 5000 17\n"),
            Some(123_456_789)
        );
        assert_eq!(parse_schedstat_runtime(b"0 72129 1\n"), Some(0));
        for bad in [
            &b""[..],
            b" 1 2 3",
            b"12x 3 4",
            b"-1 2 3",
            b"99999999999999999999999 1 1",
        ] {
            assert_eq!(parse_schedstat_runtime(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn proc_stat_truncated_or_garbage_is_an_error() {
        for bad in [
            "",
            "12 (a",
            "x (a) S 1",
            "12 (a) S 1 2 3",
            "12 (a) S one 1 1 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 5",
        ] {
            assert!(parse_proc_stat(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn boot_time_and_units() {
        assert_eq!(
            parse_boot_time("cpu 1 2 3\nbtime 1700000000\nprocesses 5\n").unwrap(),
            1_700_000_000
        );
        assert!(parse_boot_time("cpu 1\n").is_err());
        assert_eq!(
            systemd_unit_from_cgroup("0::/system.slice/cron.service\n").as_deref(),
            Some("cron.service")
        );
        assert_eq!(
            systemd_unit_from_cgroup("12:pids:/\n1:name=systemd:/system.slice/ssh.service\n")
                .as_deref(),
            Some("ssh.service")
        );
        assert_eq!(
            systemd_unit_from_cgroup("0::/user.slice/user-1000.slice/session-2.scope\n").as_deref(),
            Some("session-2.scope")
        );
        assert_eq!(systemd_unit_from_cgroup("0::/\n"), None);
    }

    #[test]
    fn mach_time_units() {
        // Apple Silicon: 24 MHz timebase (numer/denom 125/3). 24e6 ticks are one second.
        assert_eq!(timebase_ticks_per_second(125, 3), 24_000_000);
        assert_eq!(timebase_ticks_per_second(1, 1), 1_000_000_000);
        assert_eq!(mach_ticks_to_seconds(36_000_000, 24_000_000), 1.5);
        // No overflow or precision loss for a process that ran a year on Intel ticks.
        let year_ns = 365 * 86400 * 1_000_000_000u64;
        assert_eq!(
            mach_ticks_to_seconds(year_ns, 1_000_000_000),
            (365 * 86400) as f64
        );
        assert_eq!(mach_ticks_to_seconds(5, 0), 0.0);
    }
}

/// One job in `launchctl list` output: pid when running, last exit status (negative: killed by
/// that signal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaunchctlJob {
    pub pid: Option<i64>,
    pub last_exit_status: Option<i64>,
}

/// Parses `launchctl list`: a `PID\tStatus\tLabel` header, then one tab-separated line per
/// loaded job, `-` for "none". launchctl(1) says its output is not API, so anything that does
/// not fit is skipped rather than guessed at. Written from the documented format; unverified
/// against a real Mac.
pub fn parse_launchctl_list(text: &str) -> std::collections::BTreeMap<String, LaunchctlJob> {
    let mut jobs = std::collections::BTreeMap::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let [pid, status, label] = fields[..] else {
            continue;
        };
        if pid == "PID" && label == "Label" {
            continue;
        }
        let (Ok(pid), Ok(last_exit_status)) = (dash_or_int(pid), dash_or_int(status)) else {
            continue;
        };
        if label.is_empty() {
            continue;
        }
        jobs.insert(
            label.to_string(),
            LaunchctlJob {
                pid,
                last_exit_status,
            },
        );
    }
    jobs
}

/// A launchctl number column: `-` for none, else an integer.
fn dash_or_int(s: &str) -> Result<Option<i64>, ()> {
    match s.trim() {
        "-" => Ok(None),
        n => n.parse().map(Some).map_err(|_| ()),
    }
}

/// Parses the `services = { … }` block of `launchctl print system` or `print gui/<uid>`: one
/// line per service, `PID  LAST-EXIT  LABEL` separated by blanks, pid 0 (or `-`) when not
/// running, `-` for no exit status. launchctl 2 is closed source and says its output is not
/// API: lines that do not fit are skipped. Written from published output; only a Mac can
/// prove it against today's launchctl. `application.*` entries (app instances) are kept: they
/// are what stops attribution at a Terminal.
pub fn parse_launchctl_print(text: &str) -> std::collections::BTreeMap<String, LaunchctlJob> {
    let mut jobs = std::collections::BTreeMap::new();
    let mut inside = false;
    for line in text.lines() {
        let t = line.trim();
        if !inside {
            inside = t == "services = {";
            continue;
        }
        if t == "}" {
            break;
        }
        let fields: Vec<&str> = t.split_whitespace().collect();
        let [pid, status, label] = fields[..] else {
            continue;
        };
        // pid 0 is "not running" here; the exit status may be parenthesised.
        let pid = match dash_or_int(pid) {
            Ok(None | Some(0)) => None,
            Ok(Some(p)) if p > 0 => Some(p),
            _ => continue,
        };
        let Ok(last_exit_status) =
            dash_or_int(status.trim_start_matches('(').trim_end_matches(')'))
        else {
            continue;
        };
        jobs.insert(
            label.to_string(),
            LaunchctlJob {
                pid,
                last_exit_status,
            },
        );
    }
    jobs
}

/// A per-user list that names exactly the system domain's jobs is the system domain again
/// (as root, launchctl 1 forced the system context unless told to keep the caller's), not
/// that user's: such a list is not used.
pub fn is_really_per_user(
    user: &std::collections::BTreeMap<String, LaunchctlJob>,
    system: Option<&std::collections::BTreeMap<String, LaunchctlJob>>,
) -> bool {
    match system {
        Some(sys) if !user.is_empty() => !user.keys().eq(sys.keys()),
        _ => !user.is_empty(),
    }
}

#[cfg(test)]
mod launchctl_tests {
    use super::*;

    #[test]
    fn print_services_block_is_parsed_and_the_rest_ignored() {
        let text = "gui/501 = {\n\ttype = login\n\thandle = 501\n\tservices = {\n\t\t    0      -    \tcom.apple.SafariHistoryServiceAgent\n\t\t  633      -    \tcom.apple.Finder\n\t\t    0     -9    \tcom.example.killed\n\t\t  497      0    \tapplication.com.apple.Terminal.1234.5678\n\t\t  bad line here and more\n\t\t  x      0    \tcom.example.badpid\n\t}\n\tunmanaged processes = {\n\t\t  900      -    \tnot.a.service\n\t}\n}\n";
        let jobs = parse_launchctl_print(text);
        assert_eq!(jobs.len(), 4, "{jobs:?}");
        assert_eq!(
            jobs["com.apple.Finder"],
            LaunchctlJob {
                pid: Some(633),
                last_exit_status: None
            }
        );
        assert_eq!(jobs["com.apple.SafariHistoryServiceAgent"].pid, None);
        assert_eq!(
            jobs["com.example.killed"],
            LaunchctlJob {
                pid: None,
                last_exit_status: Some(-9)
            }
        );
        assert_eq!(
            jobs["application.com.apple.Terminal.1234.5678"].pid,
            Some(497)
        );
        assert!(!jobs.contains_key("not.a.service"));
        assert!(parse_launchctl_print("no services here").is_empty());
    }

    #[test]
    fn a_user_list_equal_to_the_system_list_is_refused() {
        let sys =
            parse_launchctl_list("PID\tStatus\tLabel\n1\t0\tcom.apple.a\n-\t0\tcom.apple.b\n");
        let same = sys.clone();
        let mut user = sys.clone();
        user.insert(
            "com.example.agent".into(),
            LaunchctlJob {
                pid: Some(5),
                last_exit_status: None,
            },
        );
        assert!(!is_really_per_user(&same, Some(&sys)));
        assert!(is_really_per_user(&user, Some(&sys)));
        assert!(is_really_per_user(&user, None));
        assert!(!is_really_per_user(&Default::default(), None));
    }

    #[test]
    fn launchctl_list_fixture() {
        // Shape per launchctl(1) `list`: PID (or -), last exit status, label; tab-separated.
        let text = "PID\tStatus\tLabel\n\
                    -\t0\tcom.apple.SafariHistoryServiceAgent\n\
                    412\t0\tcom.apple.Finder\n\
                    -\t-9\tcom.example.killed\n\
                    -\t78\tcom.example.failed\n\
                    garbage line\n\
                    x\t0\tcom.example.badpid\n\
                    501\t-\tcom.example.running\n";
        let jobs = parse_launchctl_list(text);
        assert_eq!(jobs.len(), 5);
        assert_eq!(
            jobs["com.apple.Finder"],
            LaunchctlJob {
                pid: Some(412),
                last_exit_status: Some(0)
            }
        );
        assert_eq!(
            jobs["com.example.killed"],
            LaunchctlJob {
                pid: None,
                last_exit_status: Some(-9)
            }
        );
        assert_eq!(jobs["com.example.running"].last_exit_status, None);
        assert!(!jobs.contains_key("com.example.badpid"));
        assert!(parse_launchctl_list("").is_empty());
    }
}
