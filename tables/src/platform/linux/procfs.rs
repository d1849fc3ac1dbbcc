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
        fs::read_to_string(dir.join("cgroup"))
            .ok()
            .and_then(|t| systemd_unit_from_cgroup(&t))
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

/// Every process instance now. The systemd unit is read once per (pid, start time): `units`
/// carries it between calls (and forgets instances that are gone).
pub fn processes_cached(
    now: f64,
    units: &mut std::collections::HashMap<(i64, u64), Option<String>>,
) -> Result<Vec<ProcessObs>, String> {
    let clock = Clock::read()?;
    let mut out = Vec::new();
    let mut live = std::collections::HashMap::with_capacity(units.len());
    for entry in fs::read_dir("/proc")
        .map_err(|e| format!("/proc: {e}"))?
        .flatten()
    {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<i64>().ok()) else {
            continue;
        };
        // The process may exit between readdir and here: skip it.
        let Some(mut p) = process_facts(pid, now, &clock, false) else {
            continue;
        };
        let key = (pid, (p.start_time * 100.0) as u64);
        let unit = match units.get(&key) {
            Some(u) => u.clone(),
            None => fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .ok()
                .and_then(|t| systemd_unit_from_cgroup(&t)),
        };
        p.label_source = unit.as_ref().map(|_| "cgroup".to_string());
        p.launchd_label = unit.clone();
        live.insert(key, unit);
        out.push(p);
    }
    *units = live;
    Ok(out)
}

pub fn processes(now: f64) -> Result<Vec<ProcessObs>, String> {
    processes_cached(now, &mut Default::default())
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
