//! Linux backends: procfs for processes.

use std::fs;
use std::os::unix::fs::MetadataExt;

use super::parse::{parse_boot_time, parse_proc_stat, systemd_unit_from_cgroup};
use crate::observation::ProcessObs;

fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

pub fn processes(now: f64) -> Result<Vec<ProcessObs>, String> {
    let boot =
        parse_boot_time(&fs::read_to_string("/proc/stat").map_err(|e| format!("/proc/stat: {e}"))?)
            .map_err(|e| format!("/proc/stat: {e}"))?;
    let hz = clock_ticks_per_second() as f64;
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc")
        .map_err(|e| format!("/proc: {e}"))?
        .flatten()
    {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<i64>().ok()) else {
            continue;
        };
        let dir = entry.path();
        // The process may exit between readdir and here: skip it.
        let Ok(stat_text) = fs::read_to_string(dir.join("stat")) else {
            continue;
        };
        let Ok(stat) = parse_proc_stat(&stat_text) else {
            continue;
        };
        let uid = fs::metadata(&dir).ok().map(|m| m.uid() as i64);
        let path = fs::read_link(dir.join("exe"))
            .ok()
            .map(|p| p.to_string_lossy().into_owned());
        let unit = fs::read_to_string(dir.join("cgroup"))
            .ok()
            .and_then(|t| systemd_unit_from_cgroup(&t));
        out.push(ProcessObs {
            ts: now,
            pid,
            // Rounded to 10 ms: the tick resolution, so two samples agree on the instance key.
            start_time: ((boot as f64 + stat.start_ticks as f64 / hz) * 100.0).round() / 100.0,
            ppid: Some(stat.ppid),
            uid,
            path,
            name: Some(stat.comm),
            cpu_time: stat.cpu_ticks as f64 / hz,
            launchd_label: unit,
        });
    }
    Ok(out)
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
