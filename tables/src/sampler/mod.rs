//! The sampler: takes live observations from the platform collectors and writes them to the
//! store, one transaction per tick. The extension runs it on its own thread; `query` takes two
//! ticks a short window apart so rates are real; `record` runs it for a while and exports.
//!
//! Sockets become flows here: a flow is one connection (5-tuple plus the kernel's socket id)
//! from first sight to disappearance. Its counters are re-read every socket tick; when it
//! vanishes it is written once more as `CLOSED` with its last counters, so a connection that
//! closed between queries still has its bytes. Linux TIME_WAIT sockets have no inode and no
//! `tcp_info`: they are matched to the flow by 5-tuple and keep its owner and bytes.

mod live_flows;

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::attribution::{attribute, ProcessTree};
use crate::env::{wall_clock, TableEnv};
use crate::facts::KernelFlow;
use crate::observation::{FlowObs, Observation, ProcessObs};
use crate::platform::{self, KernelSource, SocketCollector, SocketSample};
pub use live_flows::WritePolicy;
use live_flows::{
    ip_proto, with_prev, FastMap, FlowKey, FlowWrite, Owner, SocketReading, Source, Tracked,
};

/// How soon a connection the kernel events saw end is committed: a kill -9 loses only the
/// ones that ended within this long before it.
const CLOSED_FLUSH: Duration = Duration::from_secs(1);

/// Prune at most this often: deleting is cheap but not free.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Observations per store transaction: a first tick on a host with tens of thousands of
/// sockets is written in bounded pieces, so it never holds them all as observations at once.
const WRITE_CHUNK: usize = 1000;

/// IP protocol number of TCP (the first field of a flow key).
const TCP: u8 = 6;

/// Tick timing jitter tolerated when an interval is compared: ticks `socket_interval` apart
/// must not miss a full scan by microseconds.
const TICK_SLACK: f64 = 0.25;

/// What one tick saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct TickReport {
    pub processes: usize,
    pub sockets: usize,
    pub closed: usize,
    pub cost: Duration,
}

/// The last reading of one process instance: (time, cpu) written, and the latest unwritten.
#[derive(Debug, Clone, Copy)]
struct ProcessWritten {
    written: (f64, f64),
    unwritten: Option<(f64, f64)>,
}

/// How long a tuple the kernel events closed stays known, so the poller's later sighting of
/// its TIME_WAIT remnant (no inode, no counters, no owner) is not taken for a new flow.
const KERNEL_CLOSED_MEMORY_S: f64 = 180.0;

pub struct Sampler {
    sockets: SocketCollector,
    kernel: KernelSource,
    flows: FastMap<FlowKey, Tracked>,
    owners: FastMap<i64, Arc<Owner>>,
    kernel_closed: FastMap<FlowKey, f64>,
    processes: HashMap<(i64, u64), ProcessWritten>,
    /// Executables whose verified signing facts were already asked for.
    signed: std::collections::HashSet<String>,
    process_collector: platform::ProcessCollector,
    pub policy: WritePolicy,
    /// Every process instance seen lately: children of a job inherit its label from here.
    tree: ProcessTree,
    resumed: bool,
    /// Counts socket samples (see `Tracked::generation`).
    generation: u32,
    /// Process instances the kernel events reported, not yet written.
    kernel_procs: Vec<ProcessObs>,
    /// The kernel events' drop count at the last process walk.
    kernel_drops: u64,
    pub scan: ScanPolicy,
    /// When the last socket sample that read every socket ran, and the kernel events' drop
    /// count then: a tick between full scans relies on the events having missed nothing.
    last_full_scan: Option<(f64, u64)>,
    /// When the last socket sample ran.
    last_socket_tick: f64,
}

/// How often every socket is read, and which connections are read in between.
#[derive(Debug, Clone, Copy)]
pub struct ScanPolicy {
    pub full_every: f64,
    pub busy_window: f64,
}

impl From<&crate::config::SamplerConfig> for ScanPolicy {
    fn from(c: &crate::config::SamplerConfig) -> ScanPolicy {
        ScanPolicy {
            full_every: c.full_scan_interval,
            busy_window: c.busy_window,
        }
    }
}

/// One connection read by tuple costs about what this many sockets of a full dump cost (two
/// requests for an IPv4 tuple, ~15 µs each, against ~1.3 µs a socket in a dump): past this
/// ratio a full scan is the cheaper tick.
const EXACT_READ_COST: usize = 20;

impl Default for Sampler {
    fn default() -> Sampler {
        Sampler::new()
    }
}

/// A process instance not seen for this long leaves the attribution tree.
const TREE_MEMORY_SECONDS: f64 = 3600.0;

/// Which collectors a tick runs.
#[derive(Debug, Clone, Copy)]
pub struct Due {
    pub processes: bool,
    pub sockets: bool,
}

impl Due {
    pub const ALL: Due = Due {
        processes: true,
        sockets: true,
    };
}

impl Sampler {
    /// A sampler that polls only and writes every reading (what `query`'s short window uses:
    /// its two readings a second apart are what its rates come from).
    pub fn new() -> Sampler {
        let mut s = Sampler::with_kernel(KernelSource::off("not started for a one-off query"));
        s.policy = WritePolicy::EVERY_SAMPLE;
        s
    }

    /// A sampler that also follows the kernel's connection events where the platform and
    /// privileges allow (the extension and `record`).
    pub fn with_kernel_events() -> Sampler {
        Sampler::with_kernel(KernelSource::start())
    }

    fn with_kernel(kernel: KernelSource) -> Sampler {
        Sampler {
            sockets: SocketCollector::default(),
            kernel,
            flows: FastMap::default(),
            owners: FastMap::default(),
            kernel_closed: FastMap::default(),
            tree: ProcessTree::new(platform::LABEL_SOURCE),
            processes: HashMap::new(),
            signed: std::collections::HashSet::new(),
            process_collector: platform::ProcessCollector::default(),
            policy: WritePolicy::default(),
            resumed: false,
            generation: 0,
            kernel_procs: Vec::new(),
            kernel_drops: 0,
            scan: ScanPolicy::from(&crate::config::SamplerConfig::default()),
            last_full_scan: None,
            last_socket_tick: f64::NEG_INFINITY,
        }
    }

    /// The kernel-event collector's connection table (4-tuple → owner), when it runs: what
    /// packet capture asks to attribute a packet.
    pub fn flow_table(&self) -> Option<std::sync::Arc<crate::facts::FlowTable>> {
        self.kernel.table()
    }

    /// How each collector is doing (for `launchwatch_status.sources`).
    pub fn sources(&self) -> Vec<crate::facts::SourceStatus> {
        let mut v = self.kernel.status();
        v.push(crate::facts::SourceStatus {
            name: platform::SOCKET_SOURCE.into(),
            running: true,
            reason: self.sockets.owner_fallback(),
            events_per_s: 0.0,
            drops: 0,
        });
        v
    }

    /// Picks up flows the store still has open (a restarted extension, or history a `query`
    /// imported), so they keep their start time, and close the ones that are gone.
    fn resume(&mut self, env: &TableEnv) {
        self.resumed = true;
        let open: Vec<FlowObs> = env
            .store
            .read(|c| {
                let mut stmt = c.prepare(
                    "SELECT start, pid, process_start, path, launchd_label, protocol, local_address, local_port,
                            remote_address, remote_port, bytes_sent, bytes_received, state, last_seen
                     FROM flows WHERE end IS NULL",
                )?;
                let rows = stmt.query_map([], |r| {
                    Ok(FlowObs {
                        start: r.get(0)?,
                        end: None,
                        pid: r.get(1)?,
                        process_start: r.get(2)?,
                        path: r.get(3)?,
                        launchd_label: r.get(4)?,
                        label_source: None,
                        source: None,
                        acting_pid: None,
                        protocol: r.get(5)?,
                        local_address: r.get(6)?,
                        local_port: r.get(7)?,
                        remote_address: r.get(8)?,
                        remote_port: r.get(9)?,
                        remote_name: None,
                        bytes_sent: r.get(10)?,
                        bytes_received: r.get(11)?,
                        state: r.get(12)?,
                        last_seen: r.get(13)?,
                        prev_seen: None,
                        prev_bytes_sent: None,
                        prev_bytes_received: None,
                        snapshots: None,
                    })
                })?;
                rows.collect()
            })
            .unwrap_or_default();
        for f in open {
            let (Ok(local), Ok(remote)) = (
                f.local_address.as_deref().unwrap_or("").parse(),
                f.remote_address.parse(),
            ) else {
                continue;
            };
            let key = (
                ip_proto(&f.protocol),
                local,
                f.local_port.unwrap_or(0),
                remote,
                f.remote_port,
            );
            self.flows.insert(key, Tracked::resumed(&f));
        }
    }

    /// Who `pid` is: from the last process walk, else asked of the platform now.
    fn owner(&mut self, pid: i64) -> Arc<Owner> {
        if let Some(o) = self.owners.get(&pid) {
            return o.clone();
        }
        let o = Arc::new(
            platform::process_identity(pid)
                .map(|(path, start)| Owner {
                    path,
                    start,
                    label: None,
                    label_source: None,
                })
                .unwrap_or_default(),
        );
        self.owners.insert(pid, o.clone());
        o
    }

    /// Takes one sample of what is due and stores it. A collector error is counted and
    /// reported; the tick still stores what the other collectors saw.
    pub fn tick(&mut self, env: &TableEnv, due: Due) -> Result<TickReport, String> {
        let started = Instant::now();
        let now = wall_clock();
        let mut report = TickReport::default();
        let mut observations = Vec::new();
        let mut errors = Vec::new();
        // Kernel events first: connections that already ended, with their owners, and the
        // processes seen exec or fork (which the walk below then describes afresh). They are
        // drained on every wake (about once a second), not only on socket ticks, so a kill
        // never loses a connection that closed more than a moment before it.
        let (ended, procs) = self.kernel.drain();
        for p in &procs {
            self.process_collector.stale(p.pid);
        }
        self.kernel_procs.extend(procs);
        if due.processes {
            // Known instances are taken from the walk's cache only while the events are
            // followed without loss: a dropped exec would leave a stale executable.
            let drops: u64 = self.kernel.status().iter().map(|s| s.drops).sum();
            self.process_collector
                .events_followed(self.kernel.running() && drops == self.kernel_drops);
            self.kernel_drops = drops;
            match self.process_collector.sample(now) {
                Ok(mut procs) => {
                    // Labels first: a job's children inherit its label, so their flows do too.
                    for p in &procs {
                        self.tree.observe(p);
                    }
                    self.tree.forget_before(now - TREE_MEMORY_SECONDS);
                    for p in procs.iter_mut() {
                        if let Some(a) = self.tree.attribute(p.pid, Some(p.start_time), now) {
                            p.launchd_label = Some(a.label);
                            p.label_source = Some(a.source);
                        }
                    }
                    self.owners = procs
                        .iter()
                        .map(|p| (p.pid, Arc::new(owner_of(p))))
                        .collect();
                    report.processes = procs.len();
                    let procs = self.processes_to_write(procs);
                    observations.extend(self.signing_of_new_paths(&procs));
                    observations.extend(procs.into_iter().map(Observation::Process));
                }
                Err(e) => errors.push(format!("processes: {e}")),
            }
        }
        if (due.sockets || self.kernel.running()) && !self.resumed {
            self.resume(env);
        }
        if !due.processes && !due.sockets && ended.is_empty() {
            // Processes the events saw start wait for the next tick's write (at most a socket
            // interval), like every other reading: a wake writes only for ended connections.
            return Ok(report);
        }
        observations.extend(
            std::mem::take(&mut self.kernel_procs)
                .into_iter()
                .map(Observation::Process),
        );
        let ended = self.apply_kernel(ended, now);
        report.closed += ended.len();
        observations.extend(ended.into_iter().map(Observation::Flow));
        let mut flow_writes = Vec::new();
        if due.sockets {
            let partial = self.between_full_scans(now);
            let read = match &partial {
                Some(targets) => self.sockets.sample_connections(targets),
                None => {
                    // Connections the kernel events attributed need no descriptor scan.
                    let table = self.kernel.table();
                    let attributed = |t: crate::facts::FlowTuple| {
                        table
                            .as_ref()
                            .is_some_and(|tb| tb.lookup_directed(t, now).is_some())
                    };
                    self.sockets.sample_with(&attributed)
                }
            };
            if partial.is_none() && read.is_ok() {
                let drops = self.kernel.status().iter().map(|s| s.drops).sum();
                self.last_full_scan = Some((now, drops));
            }
            self.last_socket_tick = now;
            match read {
                Ok(sample) => {
                    // Kernel-first: flows the event source follows take its owner and
                    // counters; polled sockets fill in what it lacks.
                    let sample = self.kernel.merge_polled(sample);
                    if let Some(w) = self.sockets.take_warning() {
                        errors.push(format!("sockets (partial): {w}"));
                    }
                    let (writes, open, closed) = self.track(sample, now, partial.is_some());
                    report.sockets = open;
                    report.closed += closed;
                    flow_writes = writes;
                    // In the store's identity-index order: a big tick (a host's first scan)
                    // is written in pieces, and unsorted each piece would touch most of the
                    // index's pages again. Closes keep their order, after the rest.
                    flow_writes.sort_by_key(|w| match w {
                        FlowWrite::Open { key, .. } => (false, Some(*key)),
                        FlowWrite::Closed(_) => (true, None),
                    });
                }
                Err(e) => errors.push(format!("sockets: {e}")),
            }
            if let Ok(mut s) = env.sampler.sources.lock() {
                *s = self.sources();
            }
        }
        // A wake only for ended connections is not a sample.
        let sampled = u64::from(due.processes || due.sockets);
        let mut writes = flow_writes.into_iter().peekable();
        loop {
            while observations.len() < WRITE_CHUNK {
                let Some(w) = writes.next() else { break };
                observations.push(Observation::Flow(self.flow_obs(w)));
            }
            let last = writes.peek().is_none();
            // Flows of processes born and gone between process ticks still find their job
            // through the parent the tree remembers.
            attribute(&mut observations, &mut self.tree);
            let batch_samples = if last { sampled } else { 0 };
            if let Err(e) = env.store.write_batch(&observations, batch_samples) {
                errors.push(e.to_string());
            }
            observations.clear();
            if last {
                break;
            }
        }
        report.cost = started.elapsed();
        env.sampler.record(report.cost, errors.is_empty());
        if !errors.is_empty() {
            *env.sampler
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(errors.join("; "));
        }
        if errors.is_empty() {
            Ok(report)
        } else {
            Err(errors.join("; "))
        }
    }

    /// Connections the kernel events saw end: the poller's flow for the same tuple (if it saw
    /// one) is closed with the final counters, else a new closed flow is made.
    fn apply_kernel(&mut self, ended: Vec<KernelFlow>, now: f64) -> Vec<FlowObs> {
        let mut out = Vec::new();
        for k in ended {
            let key: FlowKey = (
                ip_proto(k.protocol),
                k.local,
                k.local_port,
                k.remote,
                k.remote_port,
            );
            self.kernel_closed.insert(key, now);
            let owner = k.owner.as_ref();
            let mut f = match self.flows.remove(&key) {
                Some(t) => t.observation(&key),
                None => FlowObs {
                    start: k.start,
                    protocol: k.protocol.into(),
                    local_address: Some(k.local.to_string()),
                    local_port: Some(k.local_port),
                    remote_address: k.remote.to_string(),
                    remote_port: k.remote_port,
                    ..FlowObs::default()
                },
            };
            // The event's facts were read while the process lived: they win. The start stays
            // what the store already has (it is part of the row's identity).
            f.pid = Some(k.pid);
            f.acting_pid = k.acting_pid.or(f.acting_pid);
            if let Some(o) = owner {
                f.process_start = Some(o.start_time);
                if let Some(p) = &o.path {
                    f.path = p.clone();
                }
                if o.launchd_label.is_some() {
                    f.launchd_label = o.launchd_label.clone();
                    f.label_source = o.label_source.clone();
                }
            }
            f.bytes_sent = k.bytes_sent.or(f.bytes_sent);
            f.bytes_received = k.bytes_received.or(f.bytes_received);
            f.source = Some(k.source.into());
            let end = k.end.unwrap_or(k.start);
            f.end = Some(end);
            f.last_seen = Some(end.max(f.start));
            f.state = Some("CLOSED".into());
            out.push(f);
        }
        self.kernel_closed
            .retain(|_, at| now - *at < KERNEL_CLOSED_MEMORY_S);
        out
    }

    /// Turns a socket sample into the flow writes due: every open flow whose counters or state
    /// the store should get now, and every flow that vanished (or whose 5-tuple now belongs to a
    /// new socket) as CLOSED. Flows are updated in place: a socket that did not change costs a
    /// hash lookup and a few comparisons, no allocation.
    /// A `partial` sample read only some TCP connections (and every UDP socket): a TCP flow it
    /// did not read is not gone.
    fn track(
        &mut self,
        sample: Vec<SocketSample>,
        now: f64,
        partial: bool,
    ) -> (Vec<FlowWrite>, usize, usize) {
        let mut out = Vec::new();
        let mut closed = 0;
        // A host's first scan adds tens of thousands of flows: grown one doubling at a time,
        // the table would copy itself over and over.
        self.flows
            .reserve(sample.len().saturating_sub(self.flows.len()));
        self.generation = self.generation.wrapping_add(1);
        let generation = self.generation;
        let policy = self.policy;
        for s in sample {
            if !platform::is_connection(s.listening, s.remote, s.remote_port) {
                continue;
            }
            let key = (
                ip_proto(s.protocol),
                s.local,
                s.local_port,
                s.remote,
                s.remote_port,
            );
            let reading = SocketReading {
                socket_id: s.socket_id,
                state: s.state,
                bytes_sent: s.bytes_sent,
                bytes_received: s.bytes_received,
            };
            let remnant = s.socket_id == 0 || s.state == Some("CLOSE");
            if remnant && self.kernel_closed.contains_key(&key) {
                // What is left of a connection the kernel events already closed: its
                // TIME_WAIT entry, or the socket itself while its program still holds the
                // descriptor (reset, say). Taken for a flow, it would reopen the closed row.
                continue;
            }
            // The common case: the same socket, its owner known. One lookup, no allocation.
            let continues = match self.flows.get_mut(&key) {
                Some(t) => {
                    let same = t.socket_id == 0 || s.socket_id == 0 || t.socket_id == s.socket_id;
                    if same && t.pid.is_some() {
                        if let Some(prev) = t.refresh(&policy, reading, now, generation) {
                            out.push(FlowWrite::Open { key, prev });
                        }
                        continue;
                    }
                    Some(same)
                }
                None => None,
            };
            if continues != Some(true) {
                if continues == Some(false) {
                    if let Some(old) = self.flows.remove(&key) {
                        out.push(FlowWrite::Closed(Box::new(old.closed(&key))));
                        closed += 1;
                    }
                }
                let fresh = self.new_flow(&s, now);
                self.flows.insert(key, fresh);
            }
            // A socket that lost its owner (TIME_WAIT) keeps the one history knew; one with no
            // owner yet may find it in the process table or the kernel events.
            let needs_owner = self.flows.get(&key).is_some_and(|t| t.pid.is_none());
            let owner = match (needs_owner, s.pid) {
                (true, Some(pid)) => Some((pid, self.owner(pid), None)),
                (true, None) => self.kernel_owner(&s, now).map(|o| {
                    let owner = Owner {
                        path: o.path,
                        start: o.process_start,
                        label: o.launchd_label,
                        label_source: o.label_source,
                    };
                    (o.pid, Arc::new(owner), Some(Source::Kernel))
                }),
                _ => None,
            };
            let Some(tracked) = self.flows.get_mut(&key) else {
                continue;
            };
            if let Some((pid, owner, source)) = owner {
                tracked.pid = Some(pid);
                tracked.owner = owner;
                if let Some(source) = source {
                    tracked.source = source;
                }
            }
            if let Some(prev) = tracked.refresh(&policy, reading, now, generation) {
                out.push(FlowWrite::Open { key, prev });
            }
        }
        let gone: Vec<FlowKey> = self
            .flows
            .iter()
            .filter(|(k, t)| t.generation != generation && !(partial && k.0 == TCP))
            .map(|(k, _)| *k)
            .collect();
        for key in gone {
            if let Some(t) = self.flows.remove(&key) {
                out.push(FlowWrite::Closed(Box::new(t.closed(&key))));
                closed += 1;
            }
        }
        let open = self.flows.len();
        (out, open, closed)
    }

    /// The TCP connections a socket tick between full scans reads, or `None` when this tick
    /// must read every socket: the first, one `full_every` after the last full scan, when the
    /// platform cannot read connections by tuple, when the kernel events are not followed (or
    /// lost some since the last full scan: a connection they missed would go unseen), or
    /// when so many connections are busy that a full dump is cheaper. The others: flows busy
    /// within `busy_window` and connections the events saw open since the last tick.
    fn between_full_scans(&self, now: f64) -> Option<Vec<FlowKey>> {
        if !platform::PARTIAL_SOCKET_SAMPLES || !self.kernel.running() {
            return None;
        }
        let (at, drops_then) = self.last_full_scan?;
        let drops: u64 = self.kernel.status().iter().map(|s| s.drops).sum();
        if now - at >= self.scan.full_every - TICK_SLACK || drops != drops_then {
            return None;
        }
        let mut targets: Vec<FlowKey> = self
            .flows
            .iter()
            .filter(|(k, t)| k.0 == TCP && t.busy(now, self.scan.busy_window))
            .map(|(k, _)| *k)
            .collect();
        // A little slack: event and wall clocks are read at different moments.
        let opened = self
            .kernel
            .table()?
            .opened_since(self.last_socket_tick - 1.0);
        targets.extend(
            opened
                .into_iter()
                .filter(|k| k.0 == TCP && !self.flows.contains_key(k)),
        );
        (targets.len() * EXACT_READ_COST <= self.flows.len()).then_some(targets)
    }

    /// The observation a flow write stands for, built now from the live table.
    fn flow_obs(&self, w: FlowWrite) -> FlowObs {
        match w {
            FlowWrite::Closed(f) => *f,
            FlowWrite::Open { key, prev } => match self.flows.get(&key) {
                Some(t) => with_prev(t.observation(&key), prev),
                // Not reachable: a flow leaves the table only as a Closed write.
                None => FlowObs::default(),
            },
        }
    }

    /// A flow first seen now, with its owner (a delegated pid only if that process already
    /// ran when the flow appeared: so_e_pid may name an exited process or a reused pid).
    fn new_flow(&mut self, s: &SocketSample, now: f64) -> Tracked {
        let pid = match s.delegate_pid {
            Some(e) if self.owner(e).start.is_some_and(|st| st <= now) => Some(e),
            _ => s.pid,
        };
        let owner = pid.map(|p| self.owner(p)).unwrap_or_default();
        let mut source = Source::Socket;
        // A connection the kernel events saw open: its real start time.
        let start = match self.kernel_owner(s, now) {
            Some(o) if o.start <= now => {
                source = Source::Kernel;
                o.start
            }
            _ => now,
        };
        let mut t = Tracked::new(s.socket_id, start, pid, owner);
        t.source = source;
        if source == Source::Kernel {
            // Seen opening: busy from the start (a scan's first sight of an old connection
            // is not).
            t.moved_at = start;
        }
        // Both pids of a delegated socket: the daemon that used it stays.
        t.acting_pid = s.pid.filter(|p| pid != Some(*p));
        t
    }
}

impl Sampler {
    /// Store by change for processes: a new instance at once, its CPU when it moved (at most
    /// every `process_age`), an idle one every `idle_refresh`. A change after an idle stretch
    /// also writes the held-back reading before it, so the burst is not spread over the gap.
    fn processes_to_write(&mut self, procs: Vec<ProcessObs>) -> Vec<ProcessObs> {
        let p = self.policy;
        let mut out = Vec::new();
        let mut live = HashMap::with_capacity(procs.len());
        for obs in procs {
            let key = (obs.pid, obs.start_time.to_bits());
            let state = match self.processes.get(&key).copied() {
                None => {
                    out.push(obs.clone());
                    ProcessWritten {
                        written: (obs.ts, obs.cpu_time),
                        unwritten: None,
                    }
                }
                Some(mut w) => {
                    let age = obs.ts - w.written.0;
                    let moved = obs.cpu_time != w.written.1;
                    if (moved && age >= p.process_age) || age >= p.idle_refresh {
                        if let Some((ts, cpu)) = w.unwritten.take() {
                            if moved && cpu == w.written.1 && ts > w.written.0 {
                                let mut before = obs.clone();
                                (before.ts, before.cpu_time) = (ts, cpu);
                                out.push(before);
                            }
                        }
                        w.written = (obs.ts, obs.cpu_time);
                        out.push(obs);
                    } else {
                        w.unwritten = Some((obs.ts, obs.cpu_time));
                    }
                    w
                }
            };
            live.insert(key, state);
        }
        self.processes = live;
        out
    }
}

/// Verified signing lookups per tick: the first tick on a Mac sees hundreds of executables.
const SIGNING_PER_TICK: usize = 32;

impl Sampler {
    /// Signing facts, as observations, for executables not asked about before (macOS:
    /// Security.framework; elsewhere the platform has none and this emits nothing). This is
    /// how verified facts reach the analytics, which never call the platform themselves.
    fn signing_of_new_paths(&mut self, procs: &[ProcessObs]) -> Vec<Observation> {
        let mut out = Vec::new();
        if !cfg!(target_os = "macos") {
            return out;
        }
        for path in procs.iter().filter_map(|p| p.path.as_deref()) {
            if out.len() >= SIGNING_PER_TICK || self.signed.contains(path) {
                continue;
            }
            self.signed.insert(path.to_string());
            if let Some(f) = platform::code_signing(path, false) {
                out.push(Observation::Signing(crate::observation::SigningObs {
                    path: path.to_string(),
                    signer_class: f.signer_class,
                    status: Some(f.status),
                    team_id: f.team_id,
                    identifier: f.identifier,
                    notarized: f.notarized.map(i64::from),
                }));
            }
        }
        out
    }
}

fn owner_of(p: &ProcessObs) -> Owner {
    Owner {
        path: p.path.clone(),
        start: Some(p.start_time),
        label: p.launchd_label.clone(),
        label_source: p.label_source.clone(),
    }
}

impl Sampler {
    /// Who the kernel events saw open this socket's connection, if they follow it.
    fn kernel_owner(&self, s: &SocketSample, now: f64) -> Option<crate::facts::FlowOwner> {
        let tuple = (
            ip_proto(s.protocol),
            s.local,
            s.local_port,
            s.remote,
            s.remote_port,
        );
        self.kernel.table()?.lookup_directed(tuple, now)
    }
}

/// A stop signal the sampler thread waits on between ticks, so shutdown never waits a full
/// interval.
#[derive(Default)]
pub struct StopSignal {
    stopped: Mutex<bool>,
    cv: Condvar,
}

impl StopSignal {
    pub fn stop(&self) {
        *self.stopped.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cv.notify_all();
    }

    pub fn is_stopped(&self) -> bool {
        *self.stopped.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits up to `d`; true when stopped.
    pub fn wait(&self, d: Duration) -> bool {
        let guard = self.stopped.lock().unwrap_or_else(|p| p.into_inner());
        let (guard, _) = self
            .cv
            .wait_timeout_while(guard, d, |stopped| !*stopped)
            .unwrap_or_else(|p| p.into_inner());
        *guard
    }
}

/// Samples processes every `process_interval` and sockets every `socket_interval` until
/// stopped. `on_error` hears each failed tick.
pub fn run(env: &TableEnv, stop: &StopSignal, on_error: &dyn Fn(&str)) {
    let process_every = Duration::from_secs_f64(env.config.sampler.process_interval);
    let socket_every = Duration::from_secs_f64(env.config.sampler.socket_interval);
    let mut sampler = Sampler::with_kernel_events();
    sampler.policy = WritePolicy::from(&env.config.sampler);
    sampler.scan = ScanPolicy::from(&env.config.sampler);
    *env.sampler
        .flow_table
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = sampler.flow_table();
    let mut last_prune = Instant::now();
    let (mut next_process, mut next_socket) = (Instant::now(), Instant::now());
    loop {
        let now = Instant::now();
        let due = Due {
            processes: now >= next_process,
            sockets: now >= next_socket,
        };
        if due.processes {
            next_process = now + process_every;
        }
        if due.sockets {
            next_socket = now + socket_every;
        }
        if let Err(e) = sampler.tick(env, due) {
            on_error(&e);
        }
        if last_prune.elapsed() >= PRUNE_EVERY {
            last_prune = Instant::now();
            if let Err(e) = env.store.prune(wall_clock()) {
                on_error(&e.to_string());
            }
        }
        let mut wake = next_process.min(next_socket);
        if sampler.kernel.running() {
            wake = wake.min(Instant::now() + CLOSED_FLUSH);
        }
        if stop.wait(wake.saturating_duration_since(Instant::now())) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, StoreConfig};
    use crate::store::Store;

    fn env() -> TableEnv {
        TableEnv::new(
            Store::in_memory(StoreConfig::default()).unwrap(),
            Config::default(),
            "/".into(),
            None,
        )
    }

    impl Sampler {
        /// `track` with its writes built into observations.
        fn track_obs(
            &mut self,
            sample: Vec<SocketSample>,
            now: f64,
        ) -> (Vec<FlowObs>, usize, usize) {
            let (writes, open, closed) = self.track(sample, now, false);
            let obs = writes.into_iter().map(|w| self.flow_obs(w)).collect();
            (obs, open, closed)
        }
    }

    fn sock(
        id: u64,
        lport: u16,
        sent: Option<i64>,
        pid: Option<i64>,
        state: &'static str,
    ) -> SocketSample {
        SocketSample {
            protocol: "tcp",
            local: "127.0.0.1".parse().unwrap(),
            local_port: lport,
            remote: "127.0.0.1".parse().unwrap(),
            remote_port: 9000,
            state: Some(state),
            listening: false,
            pid,
            delegate_pid: None,
            socket_id: id,
            bytes_sent: sent,
            bytes_received: sent,
        }
    }

    #[test]
    fn a_delegated_socket_keeps_both_pids_and_trusts_only_an_older_effective_process() {
        // This test process stands for the app a daemon worked for: it started long before.
        let me = std::process::id() as i64;
        let daemon = 1;
        let mut s = Sampler::new();
        let mut delegated = sock(7, 40001, Some(10), Some(daemon), "ESTABLISHED");
        delegated.delegate_pid = Some(me);
        // so_e_pid naming a process that does not exist (exited, or never ours): not trusted.
        let mut stale = sock(8, 40002, Some(10), Some(daemon), "ESTABLISHED");
        stale.delegate_pid = Some(i32::MAX as i64 - 7);
        let (flows, _, _) = s.track_obs(vec![delegated, stale], crate::env::wall_clock());
        let by_port = |p: u16| flows.iter().find(|f| f.local_port == Some(p)).unwrap();
        assert_eq!(
            (by_port(40001).pid, by_port(40001).acting_pid),
            (Some(me), Some(daemon))
        );
        assert_eq!(
            (by_port(40002).pid, by_port(40002).acting_pid),
            (Some(daemon), None)
        );
    }

    #[test]
    fn a_udp_flow_a_kernel_source_closed_keeps_its_protocol_source_and_final_counters() {
        // macOS ntstat reports UDP and QUIC ends too, not only TCP.
        let mut s = Sampler::new();
        let now = crate::env::wall_clock();
        let mut polled = sock(0, 5353, Some(10), Some(88), "ESTABLISHED");
        (polled.protocol, polled.state) = ("udp", None);
        s.track_obs(vec![polled], now);
        let ended = KernelFlow {
            owner: None,
            protocol: "udp",
            source: "ntstat",
            pid: 88,
            acting_pid: Some(77),
            local: "127.0.0.1".parse().unwrap(),
            local_port: 5353,
            remote: "127.0.0.1".parse().unwrap(),
            remote_port: 9000,
            start: now - 5.0,
            end: Some(now),
            state: 0,
            bytes_sent: Some(300),
            bytes_received: Some(40),
            peer_fin: false,
        };
        let flows = s.apply_kernel(vec![ended], now);
        assert_eq!(flows.len(), 1);
        let f = &flows[0];
        assert_eq!(
            (f.protocol.as_str(), f.source.as_deref()),
            ("udp", Some("ntstat"))
        );
        assert_eq!(
            (f.bytes_sent, f.bytes_received, f.end),
            (Some(300), Some(40), Some(now))
        );
        assert_eq!((f.pid, f.acting_pid), (Some(88), Some(77)));
        assert!(
            s.flows.is_empty(),
            "the polled flow was the one that closed"
        );
    }

    #[test]
    fn what_is_left_of_a_connection_the_kernel_events_closed_does_not_reopen_it() {
        let mut s = Sampler::new();
        let now = crate::env::wall_clock();
        let ended = KernelFlow {
            owner: None,
            protocol: "tcp",
            source: "tracepoint",
            pid: 88,
            acting_pid: None,
            local: "127.0.0.1".parse().unwrap(),
            local_port: 40200,
            remote: "127.0.0.1".parse().unwrap(),
            remote_port: 9000,
            start: now - 2.0,
            end: Some(now - 1.0),
            state: 7,
            bytes_sent: Some(10),
            bytes_received: Some(10),
            peer_fin: false,
        };
        assert_eq!(s.apply_kernel(vec![ended], now).len(), 1);
        // Reset, its descriptor still open: the socket lingers in CLOSE; then TIME_WAIT.
        for remnant in [
            sock(31, 40200, Some(10), Some(88), "CLOSE"),
            sock(0, 40200, None, None, "TIME_WAIT"),
        ] {
            let (f, open, _) = s.track_obs(vec![remnant], now + 1.0);
            assert!(f.is_empty() && open == 0, "{f:?}");
        }
        // A new connection on the same tuple is a flow.
        let (f, open, _) = s.track_obs(
            vec![sock(32, 40200, Some(5), Some(88), "ESTABLISHED")],
            now + 2.0,
        );
        assert_eq!((f.len(), open), (1, 1));
    }

    #[test]
    fn ticks_count_and_store_processes() {
        let env = env();
        let mut s = Sampler::new();
        let report = s.tick(&env, Due::ALL).unwrap();
        s.tick(&env, Due::ALL).unwrap();
        assert!(report.processes >= 1);
        assert_eq!(env.store.samples().unwrap(), 2);
        assert!(
            env.sampler
                .last_cost_us
                .load(std::sync::atomic::Ordering::Relaxed)
                > 0
        );
    }

    #[test]
    fn a_connection_is_one_flow_until_it_closes_and_time_wait_keeps_its_owner() {
        let me = std::process::id() as i64;
        let mut s = Sampler::new();
        let (f, open, closed) = s.track_obs(
            vec![sock(7, 5000, Some(10), Some(me), "ESTABLISHED")],
            100.0,
        );
        assert_eq!((f.len(), open, closed), (1, 1, 0));
        assert_eq!(f[0].pid, Some(me));
        assert!(!f[0].path.is_empty(), "owner resolved from the pid");
        let (f, _, _) = s.track_obs(
            vec![sock(7, 5000, Some(50), Some(me), "ESTABLISHED")],
            105.0,
        );
        assert_eq!(
            (f[0].start, f[0].bytes_sent, f[0].last_seen),
            (100.0, Some(50), Some(105.0))
        );
        // TIME_WAIT: no inode, no counters, no pid.
        let (f, _, _) = s.track_obs(vec![sock(0, 5000, None, None, "TIME_WAIT")], 110.0);
        assert_eq!(
            (f[0].pid, f[0].bytes_sent, f[0].state.as_deref()),
            (Some(me), Some(50), Some("TIME_WAIT"))
        );
        // Gone: closed at its last sighting, with its bytes.
        let (f, open, closed) = s.track_obs(vec![], 115.0);
        assert_eq!((open, closed), (0, 1));
        assert_eq!(
            (f[0].end, f[0].state.as_deref(), f[0].bytes_sent, f[0].start),
            (Some(110.0), Some("CLOSED"), Some(50), 100.0)
        );
    }

    #[test]
    fn a_reused_tuple_with_a_new_socket_is_a_new_flow() {
        let mut s = Sampler::new();
        s.track_obs(vec![sock(7, 5000, Some(10), None, "ESTABLISHED")], 100.0);
        let (f, open, closed) =
            s.track_obs(vec![sock(8, 5000, Some(1), None, "ESTABLISHED")], 105.0);
        assert_eq!((open, closed), (1, 1));
        let old = f.iter().find(|f| f.end.is_some()).unwrap();
        let new = f.iter().find(|f| f.end.is_none()).unwrap();
        assert_eq!((old.start, old.bytes_sent), (100.0, Some(10)));
        assert_eq!((new.start, new.bytes_sent), (105.0, Some(1)));
    }

    #[test]
    fn store_by_change_writes_new_moved_and_closed_flows_only() {
        let mut s = Sampler::with_kernel(KernelSource::off("test"));
        s.policy = WritePolicy {
            flow_age: 5.0,
            flow_step: 1000,
            idle_refresh: 300.0,
            process_age: 9.0,
        };
        let est = |sent| vec![sock(7, 5000, Some(sent), None, "ESTABLISHED")];
        assert_eq!(s.track_obs(est(10), 100.0).0.len(), 1, "new: written");
        assert!(
            s.track_obs(est(10), 105.0).0.is_empty(),
            "unchanged: not rewritten"
        );
        // Moved a little, 7 s after the write at 100 s: written. Then held back 2 s later.
        assert_eq!(s.track_obs(est(20), 107.0).0.len(), 1);
        assert!(
            s.track_obs(est(25), 109.0).0.is_empty(),
            "moved, 2 s after the last write"
        );
        let (f, _, _) = s.track_obs(est(30), 112.5);
        assert_eq!(f.len(), 1, "moved and 5 s since the last write");
        // The rate starts at the held-back reading (109 s, 25 bytes), not the last write.
        assert_eq!(
            (f[0].prev_seen, f[0].prev_bytes_sent, f[0].bytes_sent),
            (Some(109.0), Some(25), Some(30))
        );
        assert_eq!(
            s.track_obs(est(5000), 113.0).0.len(),
            1,
            "a jump past the step"
        );
        assert!(s.track_obs(est(5000), 118.0).0.is_empty(), "unchanged");
        assert_eq!(s.track_obs(est(5000), 413.5).0.len(), 1, "idle refresh");
        let (f, _, closed) = s.track_obs(vec![], 414.0);
        assert_eq!(
            (f.len(), closed),
            (1, 1),
            "closed: written with its final counters"
        );
        assert_eq!(f[0].bytes_sent, Some(5000));

        let proc_at = |ts: f64, cpu: f64| ProcessObs {
            ts,
            pid: 42,
            start_time: 1.0,
            ppid: Some(1),
            pgid: Some(42),
            uid: None,
            path: None,
            name: None,
            cpu_time: cpu,
            launchd_label: None,
            label_source: None,
            responsible_pid: None,
        };
        assert_eq!(s.processes_to_write(vec![proc_at(10.0, 1.0)]).len(), 1);
        assert!(s.processes_to_write(vec![proc_at(20.0, 1.0)]).is_empty());
        assert!(s.processes_to_write(vec![proc_at(30.0, 1.0)]).is_empty());
        // Busy after idling: the held-back idle reading is written first.
        let w = s.processes_to_write(vec![proc_at(40.0, 6.0)]);
        assert_eq!(
            w.iter().map(|p| (p.ts, p.cpu_time)).collect::<Vec<_>>(),
            vec![(30.0, 1.0), (40.0, 6.0)]
        );
        assert_eq!(s.processes_to_write(vec![proc_at(50.0, 9.0)]).len(), 1);
        // A vanished instance is forgotten; the same pid with a new start is new.
        let mut reborn = proc_at(60.0, 0.0);
        reborn.start_time = 55.0;
        assert_eq!(s.processes_to_write(vec![reborn]).len(), 1);
    }

    #[test]
    fn a_partial_sample_closes_unread_udp_flows_but_not_unread_tcp_ones() {
        let mut s = Sampler::new();
        let mut udp = sock(3, 5353, Some(10), None, "ESTABLISHED");
        (udp.protocol, udp.state) = ("udp", None);
        let tcp = sock(4, 5000, Some(10), None, "ESTABLISHED");
        s.track_obs(vec![udp, tcp], 100.0);
        // Between full scans: UDP is read whole, TCP only where asked.
        let (w, open, closed) = s.track(vec![], 105.0, true);
        assert_eq!((open, closed, w.len()), (1, 1, 1));
        assert_eq!(s.flows.keys().map(|k| k.0).collect::<Vec<_>>(), vec![TCP]);
        // A full scan that does not see it: gone.
        assert_eq!(s.track(vec![], 110.0, false).2, 1);
    }

    #[test]
    fn listeners_and_unconnected_sockets_are_not_flows() {
        let mut s = Sampler::new();
        let mut l = sock(1, 80, None, None, "LISTEN");
        l.listening = true;
        let mut u = sock(2, 53, None, None, "");
        u.remote = "0.0.0.0".parse().unwrap();
        u.remote_port = 0;
        assert_eq!(s.track_obs(vec![l, u], 1.0).1, 0);
    }

    #[test]
    fn stop_wakes_a_waiting_sampler_at_once() {
        let stop = std::sync::Arc::new(StopSignal::default());
        let s2 = stop.clone();
        let t = std::thread::spawn(move || s2.wait(Duration::from_secs(30)));
        std::thread::sleep(Duration::from_millis(50));
        stop.stop();
        assert!(t.join().unwrap());
        assert!(stop.is_stopped());
    }
}

#[cfg(all(test, target_os = "linux"))]
mod live_tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    use super::*;
    use crate::config::{Config, StoreConfig};
    use crate::store::Store;

    const SOCKETS: Due = Due {
        processes: false,
        sockets: true,
    };

    /// The client end's flow of a loopback connection to `port` from `local_port`.
    fn client_flow(s: &Sampler, local_port: u16, port: u16) -> Option<&Tracked> {
        s.flows
            .iter()
            .find(|(k, _)| k.0 == TCP && k.2 == local_port && k.4 == port)
            .map(|(_, t)| t)
    }

    #[test]
    fn between_full_scans_only_busy_and_new_connections_are_read() {
        // Connections older than the sampler: a scan finds them, the events never saw them.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (_idle_server, _) = listener.accept().unwrap();
        let idle_port = idle.local_addr().unwrap().port();
        // Enough other connections that reading a few by tuple is the cheaper tick, even
        // with connections other tests open at the same time (the events see the host).
        let crowd: Vec<_> = (0..150)
            .map(|_| {
                let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
                (c, listener.accept().unwrap().0)
            })
            .collect();
        let mut s = Sampler::with_kernel_events();
        if !s.kernel.running() {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "kernel events must run in CI (root)"
            );
            return;
        }
        let env = TableEnv::new(
            Store::in_memory(StoreConfig::default()).unwrap(),
            Config::default(),
            "/".into(),
            None,
        );
        // Every tick after the first full scan is a partial one until the test says.
        s.scan.full_every = 3600.0;
        s.tick(&env, SOCKETS).unwrap();
        assert!(
            s.last_full_scan.is_some(),
            "the first socket tick reads everything"
        );
        assert_eq!(
            client_flow(&s, idle_port, port).unwrap().bytes_sent,
            Some(1)
        );

        // A connection opened now, seen by the kernel events, is read at the next tick.
        let mut fresh = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (mut fresh_server, _) = listener.accept().unwrap();
        let fresh_port = fresh.local_addr().unwrap().port();
        fresh.write_all(&[1u8; 100]).unwrap();
        let mut got = [0u8; 100];
        fresh_server.read_exact(&mut got).unwrap();
        idle.write_all(&[2u8; 50]).unwrap();
        // The events' reader thread has the new connection (it reads every 200 ms).
        let tuple = (
            6,
            fresh.local_addr().unwrap().ip(),
            fresh_port,
            fresh.peer_addr().unwrap().ip(),
            port,
        );
        let table = s.kernel.table().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while table
            .lookup_directed(tuple, crate::env::wall_clock())
            .is_none()
        {
            assert!(Instant::now() < deadline, "the events never saw it open");
            std::thread::sleep(Duration::from_millis(20));
        }
        let full_at = s.last_full_scan.unwrap().0;
        s.tick(&env, SOCKETS).unwrap();
        assert_eq!(s.last_full_scan.unwrap().0, full_at, "a partial tick");
        let f = client_flow(&s, fresh_port, port).expect("the new connection is a flow");
        // tcpi_bytes_acked counts the connecting side's SYN.
        assert_eq!(f.bytes_sent, Some(101));
        assert_eq!(f.pid, Some(std::process::id() as i64));
        // The idle connection was not read (it was never seen moving), and not closed.
        let i = client_flow(&s, idle_port, port).expect("still open");
        assert_eq!(i.bytes_sent, Some(1));
        assert!(crowd
            .iter()
            .all(|(c, _)| { client_flow(&s, c.local_addr().unwrap().port(), port).is_some() }));

        // The next full scan reads it, and from then on it is busy.
        s.scan.full_every = 0.0;
        s.tick(&env, SOCKETS).unwrap();
        assert_eq!(
            client_flow(&s, idle_port, port).unwrap().bytes_sent,
            Some(51)
        );
        s.scan.full_every = 3600.0;
        idle.write_all(&[3u8; 20]).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        s.tick(&env, SOCKETS).unwrap();
        assert_eq!(
            client_flow(&s, idle_port, port).unwrap().bytes_sent,
            Some(71)
        );
        assert_ne!(s.last_full_scan.unwrap().0, full_at);
        drop(crowd);
    }
}
