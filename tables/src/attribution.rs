//! Which launchd job (or systemd unit) a process belongs to.
//!
//! launchd names only a job's main process (`launchctl list` and `print` show one pid per job),
//! so a `sh` wrapper's `curl`, a helper a daemon forks, or a grandchild re-parented to launchd
//! would carry no label. Here every process instance inherits the label of the nearest ancestor
//! that has one: along the ppid chain, then — when the chain is broken by re-parenting to
//! launchd (pid 1) or by a parent that was never seen — through the process-group leader, which
//! survives re-parenting, and on macOS through the responsible process.
//!
//! Not jobs: `application.<bundle-id>.<n>.<n>` entries that launchd lists for app instances
//! (a Terminal and everything typed in it), and systemd `.scope` units (login sessions,
//! terminal tabs). Inheritance stops there, so a user's interactive `curl` carries no label.
//!
//! Pure: a [`ProcessTree`] is fed process observations (live each tick, or a whole replay) and
//! answers for any (pid, start time). Live and `--replay` share it.

use std::collections::HashMap;

use crate::observation::{Observation, ProcessObs};

/// At most this many hops up the tree: a pid cycle in hostile data must not hang a query.
const MAX_DEPTH: usize = 64;

/// A process instance's start may be rounded differently by two collectors (10 ms ticks on
/// Linux, microseconds on macOS): two starts this close are one instance.
const SAME_START: f64 = 0.05;

/// The label values that name an app instance or a login session rather than a job.
pub fn is_job_label(label: &str) -> bool {
    !(label.is_empty() || label.starts_with("application.") || label.ends_with(".scope"))
}

#[derive(Debug, Clone)]
struct Instance {
    start_time: f64,
    ppid: Option<i64>,
    pgid: Option<i64>,
    responsible_pid: Option<i64>,
    /// The label the collector itself reported for this process (not an inherited one).
    own_label: Option<String>,
    own_source: Option<String>,
    last_seen: f64,
}

/// How a label was learned (spec.md `label_source`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribution {
    pub label: String,
    pub source: String,
}

/// Every process instance seen, by pid, oldest first.
#[derive(Debug, Default)]
pub struct ProcessTree {
    by_pid: HashMap<i64, Vec<Instance>>,
    /// The label source used for a collector's own labels when the observation names none.
    default_source: &'static str,
}

impl ProcessTree {
    /// `default_source`: what a process's own label means when its observation does not say
    /// (`launchctl` on macOS, `cgroup` on Linux, `replay` for replayed files).
    pub fn new(default_source: &'static str) -> ProcessTree {
        ProcessTree {
            by_pid: HashMap::new(),
            default_source,
        }
    }

    /// Records a process observation. A label that was itself inherited (`parent`,
    /// `responsible`) is not taken as the process's own, so re-feeding attributed observations
    /// is harmless.
    pub fn observe(&mut self, p: &ProcessObs) {
        let inherited = matches!(
            p.label_source.as_deref(),
            Some("parent") | Some("responsible")
        );
        let own_label = p.launchd_label.clone().filter(|_| !inherited);
        let own_source = own_label.as_ref().and(p.label_source.clone());
        let list = self.by_pid.entry(p.pid).or_default();
        match list
            .iter_mut()
            .find(|i| (i.start_time - p.start_time).abs() <= SAME_START)
        {
            Some(i) => {
                i.last_seen = i.last_seen.max(p.ts);
                i.ppid = p.ppid.or(i.ppid);
                i.pgid = p.pgid.or(i.pgid);
                i.responsible_pid = p.responsible_pid.or(i.responsible_pid);
                if own_label.is_some() {
                    i.own_label = own_label;
                    i.own_source = own_source;
                }
            }
            None => {
                list.push(Instance {
                    start_time: p.start_time,
                    ppid: p.ppid,
                    pgid: p.pgid,
                    responsible_pid: p.responsible_pid,
                    own_label,
                    own_source,
                    last_seen: p.ts,
                });
                list.sort_by(|a, b| a.start_time.total_cmp(&b.start_time));
            }
        }
    }

    /// The instance of `pid` alive at `at`: the latest one started by then.
    fn instance_at(&self, pid: i64, at: f64) -> Option<&Instance> {
        self.by_pid
            .get(&pid)?
            .iter()
            .rev()
            .find(|i| i.start_time <= at + SAME_START)
    }

    /// The job a process instance belongs to, and how that was learned. `start_time` `None`:
    /// the instance alive at `at`.
    pub fn attribute(&self, pid: i64, start_time: Option<f64>, at: f64) -> Option<Attribution> {
        let mut cur = match start_time {
            Some(s) => self.instance_at(pid, s)?,
            None => self.instance_at(pid, at)?,
        };
        let mut cur_pid = pid;
        let mut via: Option<&'static str> = None;
        for _ in 0..MAX_DEPTH {
            if let Some(label) = &cur.own_label {
                if !is_job_label(label) {
                    return None;
                }
                let source = match via {
                    Some(v) => v.to_string(),
                    None => cur
                        .own_source
                        .clone()
                        .unwrap_or_else(|| self.default_source.to_string()),
                };
                return Some(Attribution {
                    label: label.clone(),
                    source,
                });
            }
            // A child starts after its parent; the parent instance is the one alive then.
            let born = cur.start_time;
            let step = |p: Option<i64>| p.filter(|p| *p > 1 && *p != cur_pid);
            let next = step(cur.ppid)
                .and_then(|p| self.instance_at(p, born).map(|i| (p, i, "parent")))
                .or_else(|| {
                    step(cur.pgid).and_then(|p| self.instance_at(p, born).map(|i| (p, i, "parent")))
                })
                .or_else(|| {
                    step(cur.responsible_pid)
                        .and_then(|p| self.instance_at(p, born).map(|i| (p, i, "responsible")))
                });
            let (p, i, how) = next?;
            // Once any hop went through the responsible process, that is how it was learned.
            via = match (via, how) {
                (Some("responsible"), _) | (_, "responsible") => Some("responsible"),
                _ => Some("parent"),
            };
            cur_pid = p;
            cur = i;
        }
        None
    }

    /// Forgets instances not seen since `before`: the tree of a long-running host stays bounded.
    pub fn forget_before(&mut self, before: f64) {
        self.by_pid.retain(|_, list| {
            list.retain(|i| i.last_seen >= before);
            !list.is_empty()
        });
    }

    pub fn len(&self) -> usize {
        self.by_pid.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_pid.is_empty()
    }
}

/// Feeds a batch's process observations to `tree`, then gives every process, flow and payload
/// of the batch the label of its job (keeping labels a collector set itself) and says how it
/// was learned. Flows and payloads are matched by pid and process start, else by the instance
/// alive when they started.
pub fn attribute(observations: &mut [Observation], tree: &mut ProcessTree) {
    for o in observations.iter() {
        if let Observation::Process(p) = o {
            tree.observe(p);
        }
    }
    for o in observations.iter_mut() {
        match o {
            Observation::Process(p) => {
                let found = tree.attribute(p.pid, Some(p.start_time), p.ts);
                apply(&mut p.launchd_label, &mut p.label_source, found, tree);
            }
            Observation::Flow(f) => {
                let Some(pid) = f.pid else { continue };
                if f.launchd_label.is_some() && f.label_source.is_none() {
                    f.label_source = Some(tree.default_source.to_string());
                    continue;
                }
                let found = tree.attribute(pid, f.process_start, f.start);
                apply(&mut f.launchd_label, &mut f.label_source, found, tree);
            }
            Observation::Payload(_) | Observation::Dns(_) | Observation::Signing(_) => {}
        }
    }
}

fn apply(
    label: &mut Option<String>,
    source: &mut Option<String>,
    found: Option<Attribution>,
    tree: &ProcessTree,
) {
    match found {
        Some(a) => {
            *label = Some(a.label);
            *source = Some(a.source);
        }
        None => {
            // An app instance's or a session's own label is kept as reported, but it names no
            // job, so nothing below it inherits it.
            if label.is_some() && source.is_none() {
                *source = Some(tree.default_source.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(pid: i64, start: f64, ppid: i64, label: Option<&str>) -> ProcessObs {
        ProcessObs {
            ts: start + 1.0,
            pid,
            start_time: start,
            ppid: Some(ppid),
            uid: Some(501),
            path: Some(format!("/bin/p{pid}")),
            name: None,
            cpu_time: 0.0,
            launchd_label: label.map(str::to_string),
            pgid: None,
            label_source: None,
            responsible_pid: None,
        }
    }

    fn tree(procs: &[ProcessObs]) -> ProcessTree {
        let mut t = ProcessTree::new("launchctl");
        for p in procs {
            t.observe(p);
        }
        t
    }

    fn label(t: &ProcessTree, pid: i64, start: f64) -> Option<(String, String)> {
        t.attribute(pid, Some(start), start)
            .map(|a| (a.label, a.source))
    }

    #[test]
    fn children_and_grandchildren_inherit_the_jobs_label() {
        // launchd(1) → sh (job main pid, labelled) → curl; sh → sh → python3.
        let t = tree(&[
            proc(1, 0.0, 0, None),
            proc(100, 10.0, 1, Some("com.example.job")),
            proc(101, 11.0, 100, None),
            proc(102, 12.0, 100, None),
            proc(103, 13.0, 102, None),
        ]);
        assert_eq!(
            label(&t, 100, 10.0),
            Some(("com.example.job".into(), "launchctl".into()))
        );
        for (pid, start) in [(101, 11.0), (103, 13.0)] {
            assert_eq!(
                label(&t, pid, start),
                Some(("com.example.job".into(), "parent".into())),
                "pid {pid}"
            );
        }
        // launchd itself and its unlabelled children belong to no job.
        assert_eq!(label(&t, 1, 0.0), None);
    }

    #[test]
    fn app_instances_and_sessions_are_not_jobs() {
        let t = tree(&[
            proc(
                200,
                5.0,
                1,
                Some("application.com.apple.Terminal.12345.67890"),
            ),
            proc(201, 6.0, 200, None), // login
            proc(202, 7.0, 201, None), // zsh
            proc(203, 8.0, 202, None), // curl typed by the user
            proc(300, 5.0, 1, Some("session-3.scope")),
            proc(301, 6.0, 300, None),
        ]);
        for (pid, start) in [(200, 5.0), (203, 8.0), (300, 5.0), (301, 6.0)] {
            assert_eq!(label(&t, pid, start), None, "pid {pid}");
        }
    }

    #[test]
    fn the_process_group_survives_reparenting() {
        // A daemon's worker double-forks: its ppid becomes 1, its group stays the job's.
        let mut worker = proc(401, 21.0, 1, None);
        worker.pgid = Some(400);
        let t = tree(&[proc(400, 20.0, 1, Some("com.example.daemon")), worker]);
        assert_eq!(
            label(&t, 401, 21.0),
            Some(("com.example.daemon".into(), "parent".into()))
        );
    }

    #[test]
    fn the_responsible_process_is_used_last_and_said() {
        let mut helper = proc(501, 31.0, 1, None);
        helper.responsible_pid = Some(500);
        let t = tree(&[proc(500, 30.0, 1, Some("com.example.app-agent")), helper]);
        assert_eq!(
            label(&t, 501, 31.0),
            Some(("com.example.app-agent".into(), "responsible".into()))
        );
    }

    #[test]
    fn pid_reuse_never_lends_a_label() {
        // pid 600 was a job's process that exited; a new, unrelated pid 600 started later and
        // forked 601. 601's parent is the new 600, which has no label.
        let t = tree(&[
            proc(600, 40.0, 1, Some("com.example.old")),
            proc(600, 90.0, 1, None),
            proc(601, 95.0, 600, None),
            proc(602, 50.0, 600, None),
        ]);
        assert_eq!(label(&t, 601, 95.0), None);
        assert_eq!(
            label(&t, 602, 50.0).map(|l| l.0),
            Some("com.example.old".into()),
            "a child born while the old instance lived"
        );
    }

    #[test]
    fn cycles_in_hostile_data_end() {
        let t = tree(&[proc(700, 1.0, 701, None), proc(701, 1.0, 700, None)]);
        assert_eq!(label(&t, 700, 1.0), None);
    }

    #[test]
    fn a_batch_labels_processes_and_flows_and_keeps_collector_labels() {
        let flow = |pid: i64, start: f64, label: Option<&str>| crate::observation::FlowObs {
            start,
            end: Some(start + 0.02),
            pid: Some(pid),
            process_start: None,
            path: "/usr/bin/curl".into(),
            launchd_label: label.map(str::to_string),
            protocol: "tcp".into(),
            local_address: None,
            local_port: None,
            remote_address: "203.0.113.9".into(),
            remote_port: 443,
            remote_name: None,
            bytes_sent: Some(250),
            bytes_received: Some(900),
            state: None,
            label_source: None,
            source: None,
            acting_pid: None,
            last_seen: None,
            prev_seen: None,
            prev_bytes_sent: None,
            prev_bytes_received: None,
            snapshots: None,
        };
        let mut batch = vec![
            Observation::Process(proc(100, 10.0, 1, Some("com.example.job"))),
            Observation::Process(proc(101, 11.0, 100, None)),
            Observation::Flow(flow(101, 11.5, None)),
            Observation::Flow(flow(999, 11.5, Some("com.given"))),
            Observation::Flow(flow(998, 11.5, None)),
        ];
        let mut t = ProcessTree::new("replay");
        attribute(&mut batch, &mut t);
        let got: Vec<(Option<String>, Option<String>)> = batch
            .iter()
            .map(|o| match o {
                Observation::Process(p) => (p.launchd_label.clone(), p.label_source.clone()),
                Observation::Flow(f) => (f.launchd_label.clone(), f.label_source.clone()),
                _ => unreachable!(),
            })
            .collect();
        let s = |a: &str, b: &str| (Some(a.to_string()), Some(b.to_string()));
        assert_eq!(
            got,
            vec![
                s("com.example.job", "replay"),
                s("com.example.job", "parent"),
                s("com.example.job", "parent"),
                s("com.given", "replay"),
                (None, None),
            ]
        );
        // Re-attributing is stable: inherited labels are not mistaken for own ones.
        attribute(&mut batch, &mut t);
        assert!(
            matches!(&batch[1], Observation::Process(p) if p.label_source.as_deref() == Some("parent"))
        );
    }
}
