//! `launchwatch_process_cpu`: CPU history per process instance (pid, start time), from the
//! sampler's cumulative CPU readings. What osquery only has as a snapshot, over 1, 5 and 15
//! minutes, with the time above a threshold — the sustained-load half of AN0743.

use std::collections::BTreeMap;

use crate::env::TableEnv;
use crate::framework::column::{bigint, double, text};
use crate::framework::{Column, QueryContext, Row, Table, TableError, Value};

pub struct ProcessCpu;

const COLUMNS: &[Column] = &[
    bigint("pid", "Process id").index(),
    bigint(
        "start_time",
        "Process start, Unix epoch (with pid, the instance key: a reused pid is another row)",
    ),
    text("path", "Executable path"),
    text("name", "Process name"),
    text(
        "launchd_label",
        "launchd job label (macOS) or systemd unit (Linux) the process belongs to, inherited by the job's whole process tree",
    ),
    text(
        "label_source",
        "How the label was learned: launchctl, parent (inherited along the process tree), responsible, cgroup or replay",
    ),
    text(
        "parent_path",
        "Executable of the process that started this instance, as the samples name it (triage context; a path, never a pid)",
    ),
    text("parent_name", "That parent's process name"),
    double(
        "window_seconds",
        "Seconds of history observed for this instance; every window is capped by it",
    ),
    double(
        "cpu_pct_1m",
        "Percent of one core used over the last minute observed",
    ),
    double(
        "cpu_pct_5m",
        "Percent of one core over the last 5 minutes observed",
    ),
    double(
        "cpu_pct_15m",
        "Percent of one core over the last 15 minutes observed",
    ),
    double(
        "cpu_pct_max",
        "Highest percent of one core over any single sampling interval",
    ),
    double(
        "cpu_pct_1m_normalized",
        "cpu_pct_1m divided by the core count (100 = every core busy)",
    ),
    double(
        "high_cpu_seconds",
        "Seconds of sampling intervals above cpu.high_pct (default 50 % of one core)",
    ),
    bigint("samples", "CPU readings held for this instance"),
    bigint("first_seen", "First reading, Unix epoch"),
    bigint("last_seen", "Latest reading, Unix epoch"),
];

/// Readings of one instance: (time, cumulative CPU seconds), in time order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuSummary {
    pub window_seconds: f64,
    pub pct_1m: Option<f64>,
    pub pct_5m: Option<f64>,
    pub pct_15m: Option<f64>,
    pub pct_max: Option<f64>,
    pub high_cpu_seconds: f64,
}

/// Cumulative CPU at time `t`, interpolated linearly between readings.
fn cpu_at(points: &[(f64, f64)], t: f64) -> f64 {
    match points.iter().position(|p| p.0 >= t) {
        None => points.last().map_or(0.0, |p| p.1),
        Some(0) => points[0].1,
        Some(i) => {
            let (a, b) = (points[i - 1], points[i]);
            if b.0 <= a.0 {
                b.1
            } else {
                a.1 + (b.1 - a.1) * (t - a.0) / (b.0 - a.0)
            }
        }
    }
}

/// Percent of one core over the last `window` seconds, or over what was observed when less.
fn pct_over(points: &[(f64, f64)], window: f64) -> Option<f64> {
    let (first, last) = (points.first()?, points.last()?);
    let start = (last.0 - window).max(first.0);
    let span = last.0 - start;
    (span > 0.0).then(|| (last.1 - cpu_at(points, start)).max(0.0) / span * 100.0)
}

pub fn summarize(points: &[(f64, f64)], high_pct: f64) -> CpuSummary {
    let mut s = CpuSummary::default();
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return s;
    };
    s.window_seconds = last.0 - first.0;
    s.pct_1m = pct_over(points, 60.0);
    s.pct_5m = pct_over(points, 300.0);
    s.pct_15m = pct_over(points, 900.0);
    for w in points.windows(2) {
        let dt = w[1].0 - w[0].0;
        if dt <= 0.0 {
            continue;
        }
        let pct = (w[1].1 - w[0].1).max(0.0) / dt * 100.0;
        s.pct_max = Some(s.pct_max.map_or(pct, |m: f64| m.max(pct)));
        if pct > high_pct {
            s.high_cpu_seconds += dt;
        }
    }
    s
}

struct Instance {
    path: Option<String>,
    name: Option<String>,
    label: Option<String>,
    label_source: Option<String>,
    points: Vec<(f64, f64)>,
}

impl Table for ProcessCpu {
    fn name(&self) -> &'static str {
        "launchwatch_process_cpu"
    }
    fn description(&self) -> &'static str {
        "CPU use per process instance over 1, 5 and 15 minutes from sampled history, with time spent above a threshold."
    }
    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    /// Raw flows and samples only.
    fn reads_summaries(&self) -> bool {
        false
    }

    fn generate(&self, env: &TableEnv, ctx: &QueryContext) -> Result<Vec<Row>, TableError> {
        let cfg = &env.config.cpu;
        let now = env.now();
        let recent_from = now - cfg.recent_seconds;
        let pids = ctx.equals_integer("pid");
        if pids.as_ref().is_some_and(Vec::is_empty) {
            // pid = 1.5 or pid = 'x': no process can match.
            return Ok(Vec::new());
        }
        let pids = pids.unwrap_or_default();
        let mut instances: BTreeMap<(i64, u64), Instance> = BTreeMap::new();
        env.store.read(|c| {
            let sql = format!(
                "SELECT pid, start_time, ts, cpu_time, path, name, launchd_label, label_source FROM process_samples
                 WHERE ts >= ?1 AND ts <= ?2 {} ORDER BY pid, start_time, ts",
                if pids.is_empty() { String::new() } else { format!("AND pid IN ({})", pids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")) }
            );
            let mut stmt = c.prepare(&sql)?;
            let mut rows = stmt.query(rusqlite::params![recent_from - 900.0, now])?;
            while let Some(r) = rows.next()? {
                let key = (r.get::<_, i64>(0)?, r.get::<_, f64>(1)?.to_bits());
                let inst = instances.entry(key).or_insert_with(|| Instance { path: None, name: None, label: None, label_source: None, points: Vec::new() });
                inst.points.push((r.get(2)?, r.get(3)?));
                inst.path = r.get::<_, Option<String>>(4)?.or(inst.path.take());
                inst.name = r.get::<_, Option<String>>(5)?.or(inst.name.take());
                if let Some(l) = r.get::<_, Option<String>>(6)? {
                    inst.label = Some(l);
                    inst.label_source = r.get::<_, Option<String>>(7)?;
                }
            }
            Ok(())
        })?;
        let cores = cfg.cores.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64)
        });
        let mut out = Vec::new();
        for ((pid, start_bits), inst) in instances {
            let (first, last) = (inst.points[0].0, inst.points[inst.points.len() - 1].0);
            if last < recent_from {
                continue;
            }
            let s = summarize(&inst.points, cfg.high_pct);
            let start = f64::from_bits(start_bits);
            let [parent_path, parent_name] = env
                .store
                .read(|c| crate::analytics::parents::of_instance(c, pid, Some(start), now))?
                .values();
            out.push(vec![
                Value::from(pid),
                Value::from(f64::from_bits(start_bits).floor() as i64),
                Value::from(inst.path),
                Value::from(inst.name),
                Value::from(inst.label),
                Value::from(inst.label_source),
                parent_path,
                parent_name,
                Value::Double(s.window_seconds),
                Value::from(s.pct_1m),
                Value::from(s.pct_5m),
                Value::from(s.pct_15m),
                Value::from(s.pct_max),
                Value::from(s.pct_1m.map(|p| p / cores)),
                Value::Double(s.high_cpu_seconds),
                Value::from(inst.points.len() as i64),
                Value::from(first.floor() as i64),
                Value::from(last.floor() as i64),
            ]);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_interpolate_and_cap_at_what_was_observed() {
        // 10 s samples: idle for 10 minutes, then one full core for 2 minutes.
        let mut points = Vec::new();
        let mut cpu = 0.0;
        for i in 0..=72 {
            let t = i as f64 * 10.0;
            if t > 600.0 {
                cpu += 10.0;
            }
            points.push((t, cpu));
        }
        let s = summarize(&points, 50.0);
        assert_eq!(s.window_seconds, 720.0);
        assert!((s.pct_1m.unwrap() - 100.0).abs() < 1e-9);
        assert!((s.pct_5m.unwrap() - 40.0).abs() < 1e-9, "{:?}", s.pct_5m);
        assert!(
            (s.pct_15m.unwrap() - 120.0 / 720.0 * 100.0).abs() < 1e-9,
            "capped at the 720 s observed"
        );
        assert_eq!(s.pct_max, Some(100.0));
        assert_eq!(s.high_cpu_seconds, 120.0);
    }

    #[test]
    fn one_reading_has_no_rate_and_a_window_start_between_readings_is_interpolated() {
        assert_eq!(summarize(&[(5.0, 1.0)], 50.0).pct_1m, None);
        // Readings 100 s apart at 50 %: the 60 s window starts inside the interval.
        let s = summarize(&[(0.0, 0.0), (100.0, 50.0)], 50.0);
        assert!((s.pct_1m.unwrap() - 50.0).abs() < 1e-9);
        assert_eq!(s.high_cpu_seconds, 0.0, "50 % is not above 50 %");
        // A counter that goes backwards never yields a negative rate.
        assert_eq!(
            summarize(&[(0.0, 5.0), (10.0, 1.0)], 50.0).pct_max,
            Some(0.0)
        );
    }
}
