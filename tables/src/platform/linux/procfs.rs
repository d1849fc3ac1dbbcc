//! Linux processes from procfs: `/proc/<pid>/{stat,exe,cgroup}`.

use std::fs;
use std::os::unix::fs::MetadataExt;

use crate::observation::ProcessObs;
use crate::platform::parse::{parse_boot_time, parse_proc_stat, systemd_unit_from_cgroup};

fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// Boot time and clock ticks per second: what turns `/proc/<pid>/stat` ticks into epoch times.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub boot: u64,
    pub hz: f64,
}

impl Clock {
    pub fn read() -> Result<Clock, String> {
        let boot = parse_boot_time(
            &fs::read_to_string("/proc/stat").map_err(|e| format!("/proc/stat: {e}"))?,
        )
        .map_err(|e| format!("/proc/stat: {e}"))?;
        Ok(Clock {
            boot,
            hz: clock_ticks_per_second() as f64,
        })
    }

    /// Rounded to 10 ms: the tick resolution, so two readings agree on the instance key.
    pub fn start_time(&self, start_ticks: u64) -> f64 {
        ((self.boot as f64 + start_ticks as f64 / self.hz) * 100.0).round() / 100.0
    }
}

/// Everything procfs says about one process now; `None` when it is gone (or unreadable).
/// `/proc/<pid>/cgroup` is read only when `with_unit`: callers cache the unit per instance.
pub fn process_facts(pid: i64, now: f64, clock: &Clock, with_unit: bool) -> Option<ProcessObs> {
    let dir = std::path::PathBuf::from(format!("/proc/{pid}"));
    let stat = parse_proc_stat(&read_small(&dir.join("stat"))?).ok()?;
    let uid = fs::metadata(&dir).ok().map(|m| m.uid() as i64);
    let path = fs::read_link(dir.join("exe"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned());
    let unit = if with_unit {
        read_small(&dir.join("cgroup")).and_then(|t| systemd_unit_from_cgroup(&t))
    } else {
        None
    };
    Some(ProcessObs {
        ts: now,
        pid,
        start_time: clock.start_time(stat.start_ticks),
        ppid: Some(stat.ppid),
        pgid: Some(stat.pgrp),
        uid,
        path,
        name: Some(stat.comm),
        cpu_time: stat.cpu_ticks as f64 / clock.hz,
        label_source: unit.as_ref().map(|_| "cgroup".to_string()),
        launchd_label: unit,
        responsible_pid: None,
    })
}

/// A small procfs file in as few reads as the kernel allows: one, for a stat line (the
/// kernel renders it whole on the first read). `read_to_string` probes first and reads to an
/// empty read, three calls where one does; on a host of thousands of processes that is most
/// of the walk's system calls.
fn read_small(path: &std::path::Path) -> Option<String> {
    use std::io::Read;
    let mut f = fs::File::open(path).ok()?;
    let mut buf = vec![0u8; 1024];
    let mut len = 0;
    loop {
        let n = f.read(&mut buf[len..]).ok()?;
        len += n;
        if n == 0 || len < buf.len() {
            // A short read of a seq_file is the whole rendering.
            break;
        }
        buf.resize(buf.len() * 2, 0);
    }
    buf.truncate(len);
    String::from_utf8(buf).ok()
}

/// What one process instance's walk remembers between walks: read once per (pid, start
/// time), or again when the instance may have exec'd.
#[derive(Debug, Clone, Default)]
struct KnownInstance {
    unit: Option<String>,
    uid: Option<i64>,
    path: Option<String>,
    /// The name at the last full read: a different name now means an exec.
    comm: String,
}

/// Per-instance facts kept between process walks.
#[derive(Debug, Default)]
pub struct WalkCache {
    known: std::collections::HashMap<(i64, u64), KnownInstance>,
    /// Pids whose executable and uid must be read again on the next walk (the kernel events
    /// saw them exec or fork).
    stale: std::collections::HashSet<i64>,
    /// Whether a known instance's executable and uid may be taken from the cache: only while
    /// exec events are followed (else an exec that keeps the name would go unseen).
    pub trust_known: bool,
}

impl WalkCache {
    /// The next walk reads `pid`'s executable and uid again.
    pub fn mark_stale(&mut self, pid: i64) {
        self.stale.insert(pid);
    }
}

/// Every process instance now. `/proc/<pid>/stat` is read for every process (CPU time,
/// parent, name, and the start time that keys the instance); the executable and uid only
/// for instances not seen before, whose name changed, or that the kernel events flagged —
/// unless `cache.trust_known` is off, when they are read every time. The systemd unit is
/// read once per instance.
pub fn processes_cached(now: f64, cache: &mut WalkCache) -> Result<Vec<ProcessObs>, String> {
    let clock = Clock::read()?;
    let mut out = Vec::with_capacity(cache.known.len());
    let mut live = std::collections::HashMap::with_capacity(cache.known.len());
    for entry in fs::read_dir("/proc")
        .map_err(|e| format!("/proc: {e}"))?
        .flatten()
    {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<i64>().ok()) else {
            continue;
        };
        let dir = format!("/proc/{pid}");
        // The process may exit between readdir and here: skip it.
        let Some(stat) = read_small(std::path::Path::new(&format!("{dir}/stat")))
            .and_then(|t| parse_proc_stat(&t).ok())
        else {
            continue;
        };
        let start_time = clock.start_time(stat.start_ticks);
        let key = (pid, (start_time * 100.0) as u64);
        let known = cache.known.remove(&key);
        let reuse = cache.trust_known
            && !cache.stale.contains(&pid)
            && known.as_ref().is_some_and(|k| k.comm == stat.comm);
        let k = match known {
            Some(k) if reuse => k,
            known => KnownInstance {
                unit: match known {
                    Some(k) => k.unit,
                    None => read_small(std::path::Path::new(&format!("{dir}/cgroup")))
                        .and_then(|t| systemd_unit_from_cgroup(&t)),
                },
                uid: fs::metadata(&dir).ok().map(|m| m.uid() as i64),
                path: fs::read_link(format!("{dir}/exe"))
                    .ok()
                    .map(|p| p.to_string_lossy().into_owned()),
                comm: stat.comm.clone(),
            },
        };
        out.push(ProcessObs {
            ts: now,
            pid,
            start_time,
            ppid: Some(stat.ppid),
            pgid: Some(stat.pgrp),
            uid: k.uid,
            path: k.path.clone(),
            name: Some(stat.comm),
            cpu_time: stat.cpu_ticks as f64 / clock.hz,
            label_source: k.unit.as_ref().map(|_| "cgroup".to_string()),
            launchd_label: k.unit.clone(),
            responsible_pid: None,
        });
        live.insert(key, k);
    }
    // Instances gone from /proc are forgotten; the flags were all served by this walk.
    cache.known = live;
    cache.stale.clear();
    Ok(out)
}

pub fn processes(now: f64) -> Result<Vec<ProcessObs>, String> {
    processes_cached(now, &mut WalkCache::default())
}

/// The executable and start time of one process (for socket owners not in the last process
/// sample).
pub fn process_identity(pid: i64) -> Option<(Option<String>, Option<f64>)> {
    let clock = Clock::read().ok()?;
    process_facts(pid, 0.0, &clock, false).map(|p| (p.path, Some(p.start_time)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The walk reads a known instance's executable again only when told to (kernel events
    /// saw an exec) or when it cannot trust the events at all.
    #[test]
    fn an_exec_that_keeps_the_name_is_seen_when_flagged_or_untrusted() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        for d in [&a, &b] {
            std::fs::create_dir(d).unwrap();
            std::fs::copy("/bin/sh", d.join("sh")).unwrap();
        }
        let (sh_a, sh_b) = (a.join("sh"), b.join("sh"));
        let go = dir.path().join("go");
        // Waits for the go file, then becomes b/sh (same name "sh"), which waits to be killed.
        let mut child = std::process::Command::new(&sh_a)
            .arg("-c")
            .arg(format!(
                "while [ ! -e {go} ]; do sleep 0.05; done; exec {b} -c 'sleep 30; true'",
                go = go.display(),
                b = sh_b.display()
            ))
            .spawn()
            .unwrap();
        let pid = child.id() as i64;
        let path_of = |cache: &mut WalkCache| {
            processes_cached(0.0, cache)
                .unwrap()
                .into_iter()
                .find(|p| p.pid == pid)
                .and_then(|p| p.path)
        };
        let mut trusting = WalkCache {
            trust_known: true,
            ..Default::default()
        };
        let mut untrusting = WalkCache::default();
        let want_a = Some(sh_a.to_string_lossy().into_owned());
        let want_b = Some(sh_b.to_string_lossy().into_owned());
        assert_eq!(path_of(&mut trusting), want_a);
        assert_eq!(path_of(&mut untrusting), want_a);
        std::fs::write(&go, b"").unwrap();
        let exe = format!("/proc/{pid}/exe");
        let t = std::time::Instant::now();
        while std::fs::read_link(&exe).ok() != Some(sh_b.clone()) {
            assert!(t.elapsed().as_secs() < 10, "the child never exec'd");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(
            path_of(&mut untrusting),
            want_b,
            "untrusted: read every walk"
        );
        assert_eq!(
            path_of(&mut trusting),
            want_a,
            "trusted and unflagged: cached"
        );
        trusting.mark_stale(pid);
        assert_eq!(path_of(&mut trusting), want_b, "flagged: read again");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn sees_itself_with_real_cpu_time() {
        // Burn a little CPU so cpu_time is measurably positive.
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed().as_millis() < 200 {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let me = std::process::id() as i64;
        let procs = processes(crate::env::wall_clock()).unwrap();
        let mine = procs
            .iter()
            .find(|p| p.pid == me)
            .expect("own process listed");
        assert!(mine.cpu_time >= 0.1, "cpu_time {}", mine.cpu_time);
        assert_eq!(
            mine.path.as_deref(),
            std::env::current_exe()
                .ok()
                .and_then(|p| p.to_str().map(String::from))
                .as_deref()
        );
        let age = crate::env::wall_clock() - mine.start_time;
        assert!((0.0..600.0).contains(&age), "started {age} s ago");
    }
}
