//! Every TCP connection this host opens, however short, from the kernel's own events:
//! the `sock:inet_sock_set_state` tracepoint plus `sched:sched_process_fork`/`exec`, read
//! through `perf_event_open` ring buffers, and sock_diag destroy notifications
//! (`SKNLGRP_INET_TCP_DESTROY`) for each connection's final `tcp_info` counters.
//!
//! How the pieces join (linux/include/trace/events/sock.h, net/ipv4/tcp.c):
//! * `CLOSE → SYN_SENT` fires inside `connect(2)`, in the connecting process: its pid is the
//!   owner. The source port is still 0 there.
//! * Later transitions fire in softirq context (their pid means nothing) but carry the full
//!   4-tuple; all are joined on `skaddr`, the socket's kernel address.
//! * The destroy notification arrives when the socket is freed, with `tcp_info`; it is joined
//!   on the 4-tuple.
//! * Process facts (path, start time, cgroup unit) are read from procfs at fork/exec and at
//!   connect time, while the process lives.
//!
//! Only active opens are attributed here: an accepted connection's events all run in softirq,
//! so its owner comes from the socket poller. Everything in this file above `mod live` is a
//! pure function of bytes, tested with fixtures on any host.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::facts::{canonical_ip, FlowOwner, FlowTable, FlowTuple, KernelFlow};
use crate::observation::ProcessObs;
use crate::platform::linux::sock_diag::DiagSocket;

// Kernel TCP states (include/net/tcp_states.h).
pub const TCP_ESTABLISHED: i32 = 1;
pub const TCP_SYN_SENT: i32 = 2;
pub const TCP_FIN_WAIT1: i32 = 4;
pub const TCP_FIN_WAIT2: i32 = 5;
pub const TCP_CLOSE: i32 = 7;
pub const TCP_CLOSE_WAIT: i32 = 8;
pub const TCP_CLOSING: i32 = 11;
const IPPROTO_TCP: u16 = 6;

/// Offsets of one tracepoint's fields, from its tracefs `format` file.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceFormat {
    pub id: u16,
    fields: HashMap<String, (usize, usize)>,
}

impl TraceFormat {
    fn field(&self, name: &str, size: Option<usize>) -> Result<usize, String> {
        let &(offset, got) = self
            .fields
            .get(name)
            .ok_or_else(|| format!("tracepoint format has no field `{name}`"))?;
        if let Some(want) = size {
            if got != want {
                return Err(format!("field `{name}` is {got} bytes, expected {want}"));
            }
        }
        Ok(offset)
    }
}

/// Parses a tracefs `format` file ("ID: n" and "field:TYPE NAME; offset:N; size:M; …" lines).
pub fn parse_format(text: &str) -> Result<TraceFormat, String> {
    let mut id = None;
    let mut fields = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(v) = line.strip_prefix("ID:") {
            id = Some(
                v.trim()
                    .parse::<u16>()
                    .map_err(|_| format!("bad tracepoint ID {v:?}"))?,
            );
        } else if let Some(rest) = line.strip_prefix("field:") {
            let mut decl = None;
            let (mut offset, mut size) = (None, None);
            for part in rest.split(';') {
                let part = part.trim();
                if let Some(v) = part.strip_prefix("offset:") {
                    offset = v.parse::<usize>().ok();
                } else if let Some(v) = part.strip_prefix("size:") {
                    size = v.parse::<usize>().ok();
                } else if decl.is_none() && !part.is_empty() && !part.contains(':') {
                    decl = Some(part);
                }
            }
            let decl = decl.unwrap_or(rest.split(';').next().unwrap_or(""));
            let name = decl
                .split_whitespace()
                .last()
                .unwrap_or("")
                .split('[')
                .next()
                .unwrap_or("");
            match (name.is_empty(), offset, size) {
                (false, Some(o), Some(s)) => {
                    fields.insert(name.to_string(), (o, s));
                }
                _ => return Err(format!("unreadable field line {line:?}")),
            }
        }
    }
    Ok(TraceFormat {
        id: id.ok_or("tracepoint format has no ID line")?,
        fields,
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct SockLayout {
    id: u16,
    skaddr: usize,
    oldstate: usize,
    newstate: usize,
    sport: usize,
    dport: usize,
    family: usize,
    protocol: usize,
    saddr: usize,
    daddr: usize,
    saddr_v6: usize,
    daddr_v6: usize,
}

/// Where the fields we read sit, for the three tracepoints, checked against their sizes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Layouts {
    sock: SockLayout,
    exec_id: u16,
    exec_filename: usize,
    exec_pid: usize,
    fork_id: u16,
    fork_parent: usize,
    fork_child: usize,
}

impl Layouts {
    pub fn new(sock: &TraceFormat, exec: &TraceFormat, fork: &TraceFormat) -> Result<Self, String> {
        Ok(Layouts {
            sock: SockLayout {
                id: sock.id,
                skaddr: sock.field("skaddr", Some(8))?,
                oldstate: sock.field("oldstate", Some(4))?,
                newstate: sock.field("newstate", Some(4))?,
                sport: sock.field("sport", Some(2))?,
                dport: sock.field("dport", Some(2))?,
                family: sock.field("family", Some(2))?,
                protocol: sock.field("protocol", Some(2))?,
                saddr: sock.field("saddr", Some(4))?,
                daddr: sock.field("daddr", Some(4))?,
                saddr_v6: sock.field("saddr_v6", Some(16))?,
                daddr_v6: sock.field("daddr_v6", Some(16))?,
            },
            exec_id: exec.id,
            exec_filename: exec.field("filename", Some(4))?,
            exec_pid: exec.field("pid", Some(4))?,
            fork_id: fork.id,
            fork_parent: fork.field("parent_pid", Some(4))?,
            fork_child: fork.field("child_pid", Some(4))?,
        })
    }
}

/// One decoded kernel event. Times are nanoseconds: CLOCK_MONOTONIC as the ring holds them,
/// epoch once the live reader has shifted them (see `live::to_wall`).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    SockState {
        time_ns: u64,
        /// The thread group that was running: the owner only for `CLOSE → SYN_SENT`.
        pid: u32,
        skaddr: u64,
        old: i32,
        new: i32,
        protocol: u16,
        local: IpAddr,
        local_port: u16,
        remote: IpAddr,
        remote_port: u16,
    },
    Exec {
        time_ns: u64,
        pid: u32,
        filename: String,
    },
    Fork {
        time_ns: u64,
        parent: u32,
        child: u32,
    },
}

impl Event {
    pub fn time_ns(&self) -> u64 {
        match self {
            Event::SockState { time_ns, .. }
            | Event::Exec { time_ns, .. }
            | Event::Fork { time_ns, .. } => *time_ns,
        }
    }
}

// perf_event record layout (include/uapi/linux/perf_event.h).
pub const PERF_SAMPLE_TID: u64 = 1 << 1;
pub const PERF_SAMPLE_TIME: u64 = 1 << 2;
pub const PERF_SAMPLE_RAW: u64 = 1 << 10;
/// What each sample carries, in this order: `{u32 pid, tid; u64 time; u32 size; u8 raw[size]}`.
pub const SAMPLE_TYPE: u64 = PERF_SAMPLE_TID | PERF_SAMPLE_TIME | PERF_SAMPLE_RAW;
pub const PERF_RECORD_LOST: u32 = 2;
pub const PERF_RECORD_SAMPLE: u32 = 9;

fn u16_at(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(o..o + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(o..o + 4)?.try_into().ok()?))
}
fn i32_at(b: &[u8], o: usize) -> Option<i32> {
    Some(i32::from_ne_bytes(b.get(o..o + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(o..o + 8)?.try_into().ok()?))
}

/// Decodes the body of one `PERF_RECORD_SAMPLE` (after its 8-byte header). `Ok(None)` for a
/// tracepoint this build does not decode.
pub fn decode_sample(body: &[u8], l: &Layouts) -> Result<Option<Event>, String> {
    let short = || "sample shorter than its fields".to_string();
    let pid = u32_at(body, 0).ok_or_else(short)?;
    let time_ns = u64_at(body, 8).ok_or_else(short)?;
    let raw_len = u32_at(body, 16).ok_or_else(short)? as usize;
    let raw = body.get(20..20 + raw_len).ok_or_else(short)?;
    let common_type = u16_at(raw, 0).ok_or_else(short)?;
    if common_type == l.sock.id {
        let s = &l.sock;
        let family = u16_at(raw, s.family).ok_or_else(short)?;
        let (local, remote) = match family {
            2 => {
                let a: [u8; 4] = raw
                    .get(s.saddr..s.saddr + 4)
                    .ok_or_else(short)?
                    .try_into()
                    .unwrap();
                let b: [u8; 4] = raw
                    .get(s.daddr..s.daddr + 4)
                    .ok_or_else(short)?
                    .try_into()
                    .unwrap();
                (IpAddr::V4(Ipv4Addr::from(a)), IpAddr::V4(Ipv4Addr::from(b)))
            }
            10 => {
                let a: [u8; 16] = raw
                    .get(s.saddr_v6..s.saddr_v6 + 16)
                    .ok_or_else(short)?
                    .try_into()
                    .unwrap();
                let b: [u8; 16] = raw
                    .get(s.daddr_v6..s.daddr_v6 + 16)
                    .ok_or_else(short)?
                    .try_into()
                    .unwrap();
                (
                    canonical_ip(IpAddr::V6(Ipv6Addr::from(a))),
                    canonical_ip(IpAddr::V6(Ipv6Addr::from(b))),
                )
            }
            _ => return Ok(None),
        };
        return Ok(Some(Event::SockState {
            time_ns,
            pid,
            skaddr: u64_at(raw, s.skaddr).ok_or_else(short)?,
            old: i32_at(raw, s.oldstate).ok_or_else(short)?,
            new: i32_at(raw, s.newstate).ok_or_else(short)?,
            protocol: u16_at(raw, s.protocol).ok_or_else(short)?,
            // The tracepoint stores ports in host order.
            local_port: u16_at(raw, s.sport).ok_or_else(short)?,
            remote_port: u16_at(raw, s.dport).ok_or_else(short)?,
            local,
            remote,
        }));
    }
    if common_type == l.exec_id {
        // __data_loc: low 16 bits offset into the raw record, high 16 bits length.
        let loc = u32_at(raw, l.exec_filename).ok_or_else(short)?;
        let (off, len) = ((loc & 0xffff) as usize, (loc >> 16) as usize);
        let bytes = raw.get(off..off + len).ok_or_else(short)?;
        let bytes = bytes.split(|&b| b == 0).next().unwrap_or(bytes);
        return Ok(Some(Event::Exec {
            time_ns,
            pid: u32_at(raw, l.exec_pid).ok_or_else(short)?,
            filename: String::from_utf8_lossy(bytes).into_owned(),
        }));
    }
    if common_type == l.fork_id {
        return Ok(Some(Event::Fork {
            time_ns,
            parent: u32_at(raw, l.fork_parent).ok_or_else(short)?,
            child: u32_at(raw, l.fork_child).ok_or_else(short)?,
        }));
    }
    let _ = pid;
    Ok(None)
}

/// What one stretch of ring-buffer records held.
#[derive(Debug, Default, PartialEq)]
pub struct Decoded {
    pub events: Vec<Event>,
    /// Samples the kernel dropped because the ring was full (`PERF_RECORD_LOST`).
    pub lost: u64,
    /// Records that did not decode.
    pub malformed: u64,
}

/// Walks `{u32 type; u16 misc; u16 size; body}` records copied out of a ring buffer.
pub fn decode_records(data: &[u8], l: &Layouts, out: &mut Decoded) {
    let mut off = 0;
    while off + 8 <= data.len() {
        let kind = u32_at(data, off).unwrap_or(0);
        let size = u16_at(data, off + 6).unwrap_or(0) as usize;
        if size < 8 || off + size > data.len() {
            out.malformed += 1;
            return;
        }
        let body = &data[off + 8..off + size];
        match kind {
            PERF_RECORD_SAMPLE => match decode_sample(body, l) {
                Ok(Some(e)) => out.events.push(e),
                Ok(None) => {}
                Err(_) => out.malformed += 1,
            },
            PERF_RECORD_LOST => out.lost += u64_at(body, 8).unwrap_or(0),
            _ => {}
        }
        off += size;
    }
}

fn tuple(f: &KernelFlow) -> FlowTuple {
    (6, f.local, f.local_port, f.remote, f.remote_port)
}

fn owner_fact(f: &KernelFlow) -> FlowOwner {
    let o = f.owner.as_ref();
    FlowOwner {
        pid: f.pid,
        process_start: o.map(|p| p.start_time),
        path: o.and_then(|p| p.path.clone()),
        launchd_label: o.and_then(|p| p.launchd_label.clone()),
        label_source: o.and_then(|p| p.label_source.clone()),
        start: f.start,
        end: f.end,
    }
}

/// Payload bytes an active opener sent and had acknowledged, from its final `tcp_info`.
/// `tcpi_bytes_acked` counts the SYN (and the FIN once acked) as one byte each;
/// `tcpi_bytes_sent - tcpi_bytes_retrans` is payload put on the wire once. The smaller of
/// `acked - 1` and that is the acknowledged payload whether or not the FIN was acked.
pub fn acked_payload(d: &DiagSocket) -> Option<i64> {
    let acked = d.bytes_acked?.saturating_sub(1);
    let sent = match (d.bytes_sent, d.bytes_retrans) {
        (Some(s), Some(r)) => s.saturating_sub(r),
        _ => u64::MAX,
    };
    i64::try_from(acked.min(sent)).ok()
}

/// How long a closed connection waits for its destroy notification, and a destroy
/// notification for its connection, before giving up.
const JOIN_WAIT_S: f64 = 5.0;

/// Joins events into connections. Pure: the live collector feeds it events, destroy
/// notifications and process facts; tests feed it fixtures.
#[derive(Debug, Default)]
pub struct Tracker {
    by_sk: HashMap<u64, KernelFlow>,
    /// Closed connections whose socket address was reused before their destroy notification
    /// arrived: joined by 4-tuple.
    closing: Vec<KernelFlow>,
    pending_destroys: Vec<(f64, DiagSocket)>,
    finished: Vec<KernelFlow>,
    pub table: std::sync::Arc<FlowTable>,
}

impl Tracker {
    pub fn new(table: std::sync::Arc<FlowTable>) -> Tracker {
        Tracker {
            table,
            ..Tracker::default()
        }
    }

    /// Applies one socket event. `facts(pid)` is asked for the owner at connect time.
    pub fn on_event(&mut self, e: &Event, facts: &mut dyn FnMut(u32) -> Option<ProcessObs>) {
        let Event::SockState {
            time_ns,
            pid,
            skaddr,
            old,
            new,
            protocol,
            local,
            local_port,
            remote,
            remote_port,
        } = e
        else {
            return;
        };
        if *protocol != IPPROTO_TCP {
            return;
        }
        let t = *time_ns as f64 / 1e9;
        if *old == TCP_CLOSE && *new == TCP_SYN_SENT {
            if let Some(stale) = self.by_sk.remove(skaddr) {
                if stale.end.is_some() {
                    // Closed, its memory already reused by the next connection (back-to-back
                    // connects do that): it still waits for its destroy notification.
                    self.closing.push(stale);
                } else {
                    // The address was freed and reused without us seeing the end.
                    self.finish(stale);
                }
            }
            let owner = facts(*pid);
            self.by_sk.insert(
                *skaddr,
                KernelFlow {
                    owner,
                    protocol: "tcp",
                    source: "tracepoint",
                    pid: *pid as i64,
                    acting_pid: None,
                    local: *local,
                    local_port: *local_port,
                    remote: *remote,
                    remote_port: *remote_port,
                    start: t,
                    end: None,
                    state: *new,
                    bytes_sent: None,
                    bytes_received: None,
                    peer_fin: false,
                },
            );
            return;
        }
        let Some(f) = self.by_sk.get_mut(skaddr) else {
            return;
        };
        if f.end.is_some() {
            // A closed socket has no more transitions: this one is another socket in its
            // freed memory (an accepted server-side socket, say, whose first event is
            // SYN_RECV → ESTABLISHED). Taking its tuple would lose the closed connection's
            // destroy notification; it waits for that by its own tuple instead.
            let closed = self.by_sk.remove(skaddr).expect("just found");
            self.closing.push(closed);
            return;
        }
        let had_port = f.local_port != 0;
        if *local_port != 0 {
            (f.local, f.local_port, f.remote, f.remote_port) =
                (*local, *local_port, *remote, *remote_port);
        }
        // Transitions a FIN from the peer causes. FIN_WAIT → CLOSE is also what a reset does;
        // that rare case makes bytes_received one short.
        if *new == TCP_CLOSE_WAIT
            || *new == TCP_CLOSING
            || (*new == TCP_CLOSE && (*old == TCP_FIN_WAIT1 || *old == TCP_FIN_WAIT2))
        {
            f.peer_fin = true;
        }
        f.state = *new;
        if *new == TCP_CLOSE {
            f.end = Some(t);
        }
        if f.local_port != 0 && (!had_port || f.end.is_some()) {
            self.table.insert(tuple(f), owner_fact(f));
        }
    }

    /// A destroy notification: the socket's final counters.
    pub fn on_destroy(&mut self, d: DiagSocket, now: f64) {
        if !self.join_destroy(&d, true) {
            self.pending_destroys.push((now, d));
        }
    }

    /// Joins a destroy notification to its connection. The kernel frees a socket only after
    /// its move to CLOSE, so a notification read before that event (the ring and the netlink
    /// socket are read one after the other) waits for it, unless `closed_only` is off.
    fn join_destroy(&mut self, d: &DiagSocket, closed_only: bool) -> bool {
        let (local, remote) = (canonical_ip(d.local), canonical_ip(d.remote));
        let found = self
            .by_sk
            .iter()
            .filter(|(_, f)| {
                (f.end.is_some() || !closed_only)
                    && f.local_port == d.local_port
                    && f.remote_port == d.remote_port
                    && f.local == local
                    && f.remote == remote
            })
            .max_by(|a, b| a.1.start.total_cmp(&b.1.start))
            .map(|(k, _)| *k);
        let same_tuple = |f: &KernelFlow| {
            f.local_port == d.local_port
                && f.remote_port == d.remote_port
                && f.local == local
                && f.remote == remote
        };
        let mut f = match found {
            Some(sk) => self.by_sk.remove(&sk).expect("just found"),
            None => match self.closing.iter().position(same_tuple) {
                Some(i) => self.closing.swap_remove(i),
                None => return false,
            },
        };
        f.bytes_sent = acked_payload(d);
        f.bytes_received = d
            .bytes_received
            .map(|b| b.saturating_sub(u64::from(f.peer_fin)))
            .and_then(|b| i64::try_from(b).ok());
        self.finish(f);
        true
    }

    fn finish(&mut self, mut f: KernelFlow) {
        if f.end.is_none() {
            f.end = Some(f.start);
        }
        if f.local_port != 0 {
            self.table.insert(tuple(&f), owner_fact(&f));
        }
        self.finished.push(f);
    }

    /// Retries destroy notifications that arrived before their events, and gives up on
    /// joins older than a few seconds.
    pub fn settle(&mut self, now: f64) {
        let pending = std::mem::take(&mut self.pending_destroys);
        for (at, d) in pending {
            // After a second, the CLOSE event was lost (ring overflow): join anyway.
            if !self.join_destroy(&d, now - at < 1.0) && now - at < JOIN_WAIT_S {
                self.pending_destroys.push((at, d));
            }
        }
        self.stop_waiting(|end| now - end > JOIN_WAIT_S);
        self.table.prune(now - 600.0);
    }

    /// The kernel dropped destroy notifications (the socket's buffer overflowed): every
    /// closed connection still waiting may have lost its own, so each is finished now
    /// without counters (the poller's last reading stands) rather than after the wait,
    /// which a kill in between would lose.
    pub fn destroys_lost(&mut self) {
        self.stop_waiting(|_| true);
    }

    /// Finishes, without counters, every closed connection still waiting for its destroy
    /// notification whose close time `due` accepts.
    fn stop_waiting(&mut self, due: impl Fn(f64) -> bool) {
        let closed: Vec<u64> = self
            .by_sk
            .iter()
            .filter(|(_, f)| f.end.is_some_and(&due))
            .map(|(k, _)| *k)
            .collect();
        for k in closed {
            let f = self.by_sk.remove(&k).expect("listed");
            self.finish(f);
        }
        let (done, waiting): (Vec<KernelFlow>, Vec<KernelFlow>) = std::mem::take(&mut self.closing)
            .into_iter()
            .partition(|f| f.end.is_some_and(&due));
        self.closing = waiting;
        for f in done {
            self.finish(f);
        }
    }

    /// Connections that ended, with whatever final counters arrived.
    pub fn take_finished(&mut self) -> Vec<KernelFlow> {
        std::mem::take(&mut self.finished)
    }

    /// Connections in progress.
    pub fn open(&self) -> usize {
        self.by_sk.len()
    }
}

#[cfg(target_os = "linux")]
pub use live::KernelEvents;

/// The live collector: perf rings per CPU and a destroy-notification socket, read by one
/// thread that keeps a [`Tracker`].
#[cfg(target_os = "linux")]
mod live {
    use std::collections::HashMap;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::env::wall_clock;
    use crate::facts::SourceStatus;
    use crate::platform::linux::procfs::{process_facts, Clock};
    use crate::platform::linux::sock_diag::parse_dump;

    /// `struct perf_event_attr` up to `sig_data` (PERF_ATTR_SIZE_VER8 = 136 adds
    /// `config3`; VER7 = 128 is enough here and accepted by every kernel that knows it).
    #[repr(C)]
    #[derive(Default)]
    struct PerfEventAttr {
        kind: u32,
        size: u32,
        config: u64,
        sample_period: u64,
        sample_type: u64,
        read_format: u64,
        flags: u64,
        wakeup_events: u32,
        bp_type: u32,
        config1: u64,
        config2: u64,
        branch_sample_type: u64,
        sample_regs_user: u64,
        sample_stack_user: u32,
        clockid: i32,
        sample_regs_intr: u64,
        aux_watermark: u32,
        sample_max_stack: u16,
        reserved_2: u16,
        aux_sample_size: u32,
        reserved_3: u32,
        sig_data: u64,
    }
    // Offsets from include/uapi/linux/perf_event.h (PERF_ATTR_SIZE_VER7 = 128).
    const _: () = assert!(std::mem::size_of::<PerfEventAttr>() == 128);
    const _: () = assert!(std::mem::offset_of!(PerfEventAttr, sample_type) == 24);
    const _: () = assert!(std::mem::offset_of!(PerfEventAttr, flags) == 40);
    const _: () = assert!(std::mem::offset_of!(PerfEventAttr, wakeup_events) == 48);
    const _: () = assert!(std::mem::offset_of!(PerfEventAttr, clockid) == 92);
    const _: () = assert!(std::mem::offset_of!(PerfEventAttr, sig_data) == 120);

    const PERF_TYPE_TRACEPOINT: u32 = 2;
    const FLAG_USE_CLOCKID: u64 = 1 << 25;
    const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
    const PERF_EVENT_IOC_SET_OUTPUT: libc::c_ulong = 0x2405;
    // struct perf_event_mmap_page: data_head @1024, data_tail @1032, data_offset @1040,
    // data_size @1048 (include/uapi/linux/perf_event.h).
    const DATA_HEAD: usize = 1024;
    const DATA_TAIL: usize = 1032;
    const RING_PAGES: usize = 64;
    // linux/sock_diag.h: enum sknetlink_groups.
    const SKNLGRP_INET_TCP_DESTROY: u32 = 1;
    const SKNLGRP_INET6_TCP_DESTROY: u32 = 3;
    const SOL_NETLINK: libc::c_int = 270;
    const NETLINK_ADD_MEMBERSHIP: libc::c_int = 1;

    fn os_err(what: &str) -> String {
        format!("{what}: {}", std::io::Error::last_os_error())
    }

    /// The tracefs directory with `events/`, mounting a private one when none is mounted.
    struct TraceFs {
        dir: std::path::PathBuf,
        mounted_here: bool,
    }

    impl TraceFs {
        fn open() -> Result<TraceFs, String> {
            for d in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"] {
                let dir = std::path::PathBuf::from(d);
                if dir.join("events/sock/inet_sock_set_state/format").exists() {
                    return Ok(TraceFs {
                        dir,
                        mounted_here: false,
                    });
                }
            }
            let dir =
                std::env::temp_dir().join(format!("launchwatch-tracefs-{}", std::process::id()));
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let target = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
                .map_err(|_| "temp dir path holds NUL")?;
            // SAFETY: NUL-terminated strings; no data argument.
            let rc = unsafe {
                libc::mount(
                    c"nodev".as_ptr(),
                    target.as_ptr(),
                    c"tracefs".as_ptr(),
                    0,
                    std::ptr::null(),
                )
            };
            if rc != 0 {
                let e = os_err("mount tracefs");
                let _ = std::fs::remove_dir(&dir);
                return Err(e);
            }
            Ok(TraceFs {
                dir,
                mounted_here: true,
            })
        }

        fn format(&self, event: &str) -> Result<TraceFormat, String> {
            let p = self.dir.join("events").join(event).join("format");
            let text =
                std::fs::read_to_string(&p).map_err(|e| format!("tracepoint {event}: {e}"))?;
            parse_format(&text).map_err(|e| format!("tracepoint {event}: {e}"))
        }
    }

    impl Drop for TraceFs {
        fn drop(&mut self) {
            if self.mounted_here {
                if let Ok(c) = std::ffi::CString::new(self.dir.as_os_str().as_encoded_bytes()) {
                    // SAFETY: NUL-terminated path we mounted.
                    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
                }
                let _ = std::fs::remove_dir(&self.dir);
            }
        }
    }

    fn online_cpus() -> Vec<i32> {
        let text = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
        let mut cpus = Vec::new();
        for part in text.trim().split(',').filter(|p| !p.is_empty()) {
            let mut it = part.split('-');
            let a: i32 = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            let b: i32 = it.next().and_then(|s| s.parse().ok()).unwrap_or(a);
            cpus.extend(a..=b);
        }
        if cpus.is_empty() {
            cpus.push(0);
        }
        cpus
    }

    fn perf_open(id: u16, cpu: i32) -> Result<OwnedFd, String> {
        let attr = PerfEventAttr {
            kind: PERF_TYPE_TRACEPOINT,
            size: std::mem::size_of::<PerfEventAttr>() as u32,
            config: id as u64,
            sample_period: 1,
            sample_type: SAMPLE_TYPE,
            flags: FLAG_USE_CLOCKID,
            wakeup_events: 1,
            // CLOCK_REALTIME is refused for tracepoints (not NMI-safe); monotonic times are
            // turned into wall-clock times when read.
            clockid: libc::CLOCK_MONOTONIC,
            ..Default::default()
        };
        // SAFETY: attr is a valid perf_event_attr of the declared size.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_perf_event_open,
                &attr as *const PerfEventAttr,
                -1 as libc::pid_t,
                cpu,
                -1 as libc::c_int,
                PERF_FLAG_FD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(os_err("perf_event_open"));
        }
        // SAFETY: a fresh descriptor we own.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }

    /// One CPU's ring buffer.
    struct Ring {
        fd: OwnedFd,
        base: *mut u8,
        len: usize,
        page: usize,
        _others: Vec<OwnedFd>,
    }
    // SAFETY: the mapping is only touched by the collector thread that owns the Ring.
    unsafe impl Send for Ring {}

    impl Ring {
        fn new(fd: OwnedFd, others: Vec<OwnedFd>) -> Result<Ring, String> {
            // SAFETY: sysconf has no preconditions.
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
            let len = page * (1 + RING_PAGES);
            // SAFETY: mapping a perf fd as the man page describes.
            let base = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    fd.as_raw_fd(),
                    0,
                )
            };
            if base == libc::MAP_FAILED {
                return Err(os_err("mmap perf ring"));
            }
            for o in &others {
                // SAFETY: both are perf fds on the same CPU.
                if unsafe { libc::ioctl(o.as_raw_fd(), PERF_EVENT_IOC_SET_OUTPUT, fd.as_raw_fd()) }
                    != 0
                {
                    // SAFETY: unmapping what we mapped.
                    unsafe { libc::munmap(base, len) };
                    return Err(os_err("PERF_EVENT_IOC_SET_OUTPUT"));
                }
            }
            Ok(Ring {
                fd,
                base: base.cast(),
                len,
                page,
                _others: others,
            })
        }

        /// Copies out everything between tail and head and hands the space back.
        fn drain(&mut self, into: &mut Vec<u8>) {
            let size = self.len - self.page;
            // SAFETY: the header page is mapped; head/tail are naturally aligned u64s.
            let head_ptr = unsafe { self.base.add(DATA_HEAD) } as *const AtomicU64;
            let tail_ptr = unsafe { self.base.add(DATA_TAIL) } as *const AtomicU64;
            let (head, tail) = unsafe {
                (
                    (*head_ptr).load(Ordering::Acquire),
                    (*tail_ptr).load(Ordering::Relaxed),
                )
            };
            let avail = head.wrapping_sub(tail) as usize;
            if avail == 0 {
                return;
            }
            let avail = avail.min(size);
            let start = (tail as usize) % size;
            // SAFETY: data pages follow the header page; indices stay within `size`.
            let data = unsafe { std::slice::from_raw_parts(self.base.add(self.page), size) };
            let first = avail.min(size - start);
            into.extend_from_slice(&data[start..start + first]);
            into.extend_from_slice(&data[..avail - first]);
            // SAFETY: as above; releasing the space we read.
            unsafe { (*tail_ptr).store(head, Ordering::Release) };
        }
    }

    impl Drop for Ring {
        fn drop(&mut self) {
            // SAFETY: unmapping our own mapping.
            unsafe { libc::munmap(self.base.cast(), self.len) };
        }
    }

    fn destroy_socket() -> Result<OwnedFd, String> {
        // SAFETY: plain socket(2).
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                libc::NETLINK_SOCK_DIAG,
            )
        };
        if fd < 0 {
            return Err(os_err("netlink socket"));
        }
        // SAFETY: fresh fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let size: libc::c_int = 8 << 20;
        // SAFETY: valid option buffer. Root may force a larger buffer; failure keeps the default.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&size as *const libc::c_int).cast(),
                4,
            )
        };
        // Multicast delivery needs a bound socket (the kernel picks the port id).
        // SAFETY: sockaddr_nl is plain data; zeroed with the family set binds to any port.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: valid address of the stated length.
        if unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        } != 0
        {
            return Err(os_err("bind sock_diag socket"));
        }
        // Room for a burst of closes between two reads (200 ms apart): the default buffer
        // (net.core.rmem_default, about 200 KiB) holds roughly a thousand notifications.
        // FORCE lifts net.core.rmem_max for root; without it the plain option is capped.
        let bytes: libc::c_int = DESTROY_BUFFER_BYTES;
        for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
            // SAFETY: valid option buffer.
            let rc = unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&bytes as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if rc == 0 {
                break;
            }
        }
        for group in [SKNLGRP_INET_TCP_DESTROY, SKNLGRP_INET6_TCP_DESTROY] {
            // SAFETY: valid option buffer.
            let rc = unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    SOL_NETLINK,
                    NETLINK_ADD_MEMBERSHIP,
                    (&group as *const u32).cast(),
                    4,
                )
            };
            if rc != 0 {
                return Err(os_err("sock_diag destroy notifications"));
            }
        }
        Ok(fd)
    }

    const DESTROY_BUFFER_BYTES: libc::c_int = 4 << 20;

    #[derive(Default)]
    struct Counters {
        events: AtomicU64,
        lost: AtomicU64,
        destroys: AtomicU64,
        destroy_drops: AtomicU64,
        malformed: AtomicU64,
    }

    struct Shared {
        tracker: Mutex<Tracker>,
        processes: Mutex<Vec<ProcessObs>>,
        counters: Counters,
        stop: AtomicBool,
        error: Mutex<Option<String>>,
        started: Instant,
    }

    /// The running kernel-event collector. Dropping it stops its thread.
    pub struct KernelEvents {
        shared: Arc<Shared>,
        table: Arc<FlowTable>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl KernelEvents {
        /// Opens the tracepoints on every CPU and the destroy-notification socket, and starts
        /// the reader thread. An error says why (not root, no tracefs, …).
        pub fn start() -> Result<KernelEvents, String> {
            let tracefs = TraceFs::open()?;
            let sock = tracefs.format("sock/inet_sock_set_state")?;
            let exec = tracefs.format("sched/sched_process_exec")?;
            let fork = tracefs.format("sched/sched_process_fork")?;
            drop(tracefs);
            let layouts = Layouts::new(&sock, &exec, &fork)?;
            let mut rings = Vec::new();
            for cpu in online_cpus() {
                let main = perf_open(layouts.sock.id, cpu)?;
                let others = vec![
                    perf_open(layouts.exec_id, cpu)?,
                    perf_open(layouts.fork_id, cpu)?,
                ];
                rings.push(Ring::new(main, others)?);
            }
            let nl = destroy_socket()?;
            let clock = Clock::read()?;
            let table = Arc::new(FlowTable::default());
            let shared = Arc::new(Shared {
                tracker: Mutex::new(Tracker::new(table.clone())),
                processes: Mutex::new(Vec::new()),
                counters: Counters::default(),
                stop: AtomicBool::new(false),
                error: Mutex::new(None),
                started: Instant::now(),
            });
            let s2 = shared.clone();
            let thread = std::thread::Builder::new()
                .name("launchwatch-kernel-events".into())
                .spawn(move || run(s2, rings, nl, layouts, clock))
                .map_err(|e| format!("kernel events thread: {e}"))?;
            Ok(KernelEvents {
                shared,
                table,
                thread: Some(thread),
            })
        }

        /// Connections that ended since the last call, and process instances seen being
        /// created or connecting (so short-lived ones are recorded with their parents).
        pub fn drain(&self) -> (Vec<KernelFlow>, Vec<ProcessObs>) {
            let flows = self
                .shared
                .tracker
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take_finished();
            let procs = std::mem::take(
                &mut *self
                    .shared
                    .processes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()),
            );
            (flows, procs)
        }

        /// The 4-tuple → owner map (for the poller and packet capture).
        pub fn table(&self) -> Arc<FlowTable> {
            self.table.clone()
        }

        pub fn status(&self) -> Vec<SourceStatus> {
            let c = &self.shared.counters;
            let secs = self.shared.started.elapsed().as_secs_f64().max(1e-3);
            let error = self
                .shared
                .error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            vec![
                SourceStatus {
                    name: "tracepoint".into(),
                    running: error.is_none(),
                    reason: error.clone(),
                    events_per_s: c.events.load(Ordering::Relaxed) as f64 / secs,
                    drops: c.lost.load(Ordering::Relaxed) + c.malformed.load(Ordering::Relaxed),
                },
                SourceStatus {
                    name: "sock_diag_destroy".into(),
                    running: error.is_none(),
                    reason: error,
                    events_per_s: c.destroys.load(Ordering::Relaxed) as f64 / secs,
                    drops: c.destroy_drops.load(Ordering::Relaxed),
                },
            ]
        }
    }

    impl Drop for KernelEvents {
        fn drop(&mut self) {
            self.shared.stop.store(true, Ordering::Relaxed);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    /// The latest facts per pid; a fork or exec replaces them, so pid reuse is handled.
    struct ProcessCache {
        clock: Clock,
        by_pid: HashMap<u32, ProcessObs>,
        last_prune: Instant,
    }

    impl ProcessCache {
        fn refresh(&mut self, pid: u32, now: f64) -> Option<ProcessObs> {
            let p = process_facts(pid as i64, now, &self.clock, true)?;
            self.by_pid.insert(pid, p.clone());
            Some(p)
        }

        /// Facts at connect time: read afresh while the process lives (its cgroup may have
        /// changed since fork, as a service manager moves new processes), else the last known.
        fn get(&mut self, pid: u32, now: f64) -> Option<ProcessObs> {
            self.refresh(pid, now)
                .or_else(|| self.by_pid.get(&pid).cloned())
        }

        fn prune(&mut self) {
            if self.last_prune.elapsed() < Duration::from_secs(60) {
                return;
            }
            self.last_prune = Instant::now();
            self.by_pid
                .retain(|pid, _| std::path::Path::new(&format!("/proc/{pid}")).exists());
        }
    }

    /// Epoch ns minus CLOCK_MONOTONIC ns, now.
    fn wall_minus_monotonic_ns() -> i128 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: valid out-pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        let mono = ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128;
        (wall_clock() * 1e9) as i128 - mono
    }

    fn to_wall(e: &mut Event, shift: i128) {
        let t = match e {
            Event::SockState { time_ns, .. }
            | Event::Exec { time_ns, .. }
            | Event::Fork { time_ns, .. } => time_ns,
        };
        *t = (*t as i128 + shift).max(0) as u64;
    }

    fn run(shared: Arc<Shared>, mut rings: Vec<Ring>, nl: OwnedFd, layouts: Layouts, clock: Clock) {
        let mut procs = ProcessCache {
            clock,
            by_pid: HashMap::new(),
            last_prune: Instant::now(),
        };
        let mut bytes = Vec::with_capacity(64 << 10);
        let mut nlbuf = vec![0u8; 256 << 10];
        let mut pollfds: Vec<libc::pollfd> = rings
            .iter()
            .map(|r| r.fd.as_raw_fd())
            .chain([nl.as_raw_fd()])
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        while !shared.stop.load(Ordering::Relaxed) {
            // SAFETY: pollfds is a valid array of its length.
            unsafe { libc::poll(pollfds.as_mut_ptr(), pollfds.len() as libc::nfds_t, 200) };
            let now = wall_clock();
            let mut decoded = Decoded::default();
            for r in &mut rings {
                bytes.clear();
                r.drain(&mut bytes);
                decode_records(&bytes, &layouts, &mut decoded);
            }
            // Events of one socket may run on different CPUs: order them by time.
            decoded.events.sort_by_key(Event::time_ns);
            let shift = wall_minus_monotonic_ns();
            for e in &mut decoded.events {
                to_wall(e, shift);
            }
            let c = &shared.counters;
            c.events
                .fetch_add(decoded.events.len() as u64, Ordering::Relaxed);
            c.lost.fetch_add(decoded.lost, Ordering::Relaxed);
            c.malformed.fetch_add(decoded.malformed, Ordering::Relaxed);
            let mut new_procs = Vec::new();
            {
                let mut tracker = shared.tracker.lock().unwrap_or_else(|p| p.into_inner());
                for e in &decoded.events {
                    match e {
                        Event::Fork { child, .. } => {
                            new_procs.extend(procs.refresh(*child, now));
                        }
                        Event::Exec { pid, .. } => {
                            new_procs.extend(procs.refresh(*pid, now));
                        }
                        Event::SockState { .. } => {
                            tracker.on_event(e, &mut |pid| {
                                let p = procs.get(pid, now);
                                new_procs.extend(p.clone());
                                p
                            });
                        }
                    }
                }
                // Destroy notifications after the events they close.
                let mut lost = false;
                loop {
                    // SAFETY: nlbuf is valid for its length; the socket is non-blocking.
                    let n = unsafe {
                        libc::recv(nl.as_raw_fd(), nlbuf.as_mut_ptr().cast(), nlbuf.len(), 0)
                    };
                    if n < 0 {
                        if std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOBUFS) {
                            c.destroy_drops.fetch_add(1, Ordering::Relaxed);
                            lost = true;
                            continue;
                        }
                        break;
                    }
                    if n == 0 {
                        break;
                    }
                    match parse_dump(&nlbuf[..n as usize]) {
                        Ok(part) => {
                            for d in part.sockets {
                                c.destroys.fetch_add(1, Ordering::Relaxed);
                                tracker.on_destroy(d, now);
                            }
                        }
                        Err(_) => {
                            c.malformed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                if lost {
                    tracker.destroys_lost();
                }
                tracker.settle(now);
            }
            if !new_procs.is_empty() {
                shared
                    .processes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend(new_procs);
            }
            procs.prune();
        }
    }
}

/// The formats of this kernel family (6.x) as tracefs prints them: for tests, and for the fuzz
/// target that decodes hostile ring-buffer records against real layouts.
pub mod sample_formats {
    pub const SOCK_FORMAT: &str = "name: inet_sock_set_state
ID: 2287
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:const void * skaddr;\toffset:8;\tsize:8;\tsigned:0;
\tfield:int oldstate;\toffset:16;\tsize:4;\tsigned:1;
\tfield:int newstate;\toffset:20;\tsize:4;\tsigned:1;
\tfield:__u16 sport;\toffset:24;\tsize:2;\tsigned:0;
\tfield:__u16 dport;\toffset:26;\tsize:2;\tsigned:0;
\tfield:__u16 family;\toffset:28;\tsize:2;\tsigned:0;
\tfield:__u16 protocol;\toffset:30;\tsize:2;\tsigned:0;
\tfield:__u8 saddr[4];\toffset:32;\tsize:4;\tsigned:0;
\tfield:__u8 daddr[4];\toffset:36;\tsize:4;\tsigned:0;
\tfield:__u8 saddr_v6[16];\toffset:40;\tsize:16;\tsigned:0;
\tfield:__u8 daddr_v6[16];\toffset:56;\tsize:16;\tsigned:0;

print fmt: \"family=%s\"
";
    pub const EXEC_FORMAT: &str = "name: sched_process_exec
ID: 365
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;
\tfield:pid_t pid;\toffset:12;\tsize:4;\tsigned:1;
\tfield:pid_t old_pid;\toffset:16;\tsize:4;\tsigned:1;
";
    pub const FORK_FORMAT: &str = "name: sched_process_fork
ID: 366
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:__data_loc char[] parent_comm;\toffset:8;\tsize:4;\tsigned:0;
\tfield:pid_t parent_pid;\toffset:12;\tsize:4;\tsigned:1;
\tfield:__data_loc char[] child_comm;\toffset:16;\tsize:4;\tsigned:0;
\tfield:pid_t child_pid;\toffset:20;\tsize:4;\tsigned:1;
";
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::sample_formats::*;

    fn layouts() -> Layouts {
        Layouts::new(
            &parse_format(SOCK_FORMAT).unwrap(),
            &parse_format(EXEC_FORMAT).unwrap(),
            &parse_format(FORK_FORMAT).unwrap(),
        )
        .unwrap()
    }

    /// A PERF_RECORD_SAMPLE record (header + pid/tid/time/raw), padded to 8 bytes.
    fn record(pid: u32, time_ns: u64, raw: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&pid.to_ne_bytes());
        body.extend_from_slice(&pid.to_ne_bytes());
        body.extend_from_slice(&time_ns.to_ne_bytes());
        body.extend_from_slice(&(raw.len() as u32).to_ne_bytes());
        body.extend_from_slice(raw);
        while (body.len() + 8) % 8 != 0 {
            body.push(0);
        }
        let mut r = Vec::new();
        r.extend_from_slice(&PERF_RECORD_SAMPLE.to_ne_bytes());
        r.extend_from_slice(&0u16.to_ne_bytes());
        r.extend_from_slice(&((body.len() + 8) as u16).to_ne_bytes());
        r.extend_from_slice(&body);
        r
    }

    #[allow(clippy::too_many_arguments)]
    fn sock_raw(
        sk: u64,
        old: i32,
        new: i32,
        sport: u16,
        dport: u16,
        s: [u8; 4],
        d: [u8; 4],
    ) -> Vec<u8> {
        let mut raw = vec![0u8; 72];
        raw[0..2].copy_from_slice(&2287u16.to_ne_bytes());
        raw[8..16].copy_from_slice(&sk.to_ne_bytes());
        raw[16..20].copy_from_slice(&old.to_ne_bytes());
        raw[20..24].copy_from_slice(&new.to_ne_bytes());
        raw[24..26].copy_from_slice(&sport.to_ne_bytes());
        raw[26..28].copy_from_slice(&dport.to_ne_bytes());
        raw[28..30].copy_from_slice(&2u16.to_ne_bytes());
        raw[30..32].copy_from_slice(&6u16.to_ne_bytes());
        raw[32..36].copy_from_slice(&s);
        raw[36..40].copy_from_slice(&d);
        raw
    }

    fn exec_raw(pid: u32, file: &str) -> Vec<u8> {
        let mut raw = vec![0u8; 20];
        raw[0..2].copy_from_slice(&365u16.to_ne_bytes());
        let loc = ((file.len() as u32 + 1) << 16) | 20;
        raw[8..12].copy_from_slice(&loc.to_ne_bytes());
        raw[12..16].copy_from_slice(&pid.to_ne_bytes());
        raw.extend_from_slice(file.as_bytes());
        raw.push(0);
        raw
    }

    #[test]
    fn formats_parse_and_layouts_check_sizes() {
        let f = parse_format(SOCK_FORMAT).unwrap();
        assert_eq!(f.id, 2287);
        assert_eq!(f.field("daddr_v6", Some(16)).unwrap(), 56);
        assert!(
            f.field("skaddr", Some(4)).is_err(),
            "a size change is refused"
        );
        assert!(parse_format("format:\n").is_err());
        assert!(parse_format("ID: 1\n\tfield:int x;\toffset:zz;\tsize:4;\n").is_err());
        let mut no_field = parse_format(SOCK_FORMAT).unwrap();
        no_field.fields.remove("sport");
        let exec = parse_format(EXEC_FORMAT).unwrap();
        let fork = parse_format(FORK_FORMAT).unwrap();
        assert!(Layouts::new(&no_field, &exec, &fork)
            .unwrap_err()
            .contains("sport"));
    }

    #[test]
    fn records_decode_including_lost_and_truncated() {
        let l = layouts();
        let mut data = record(
            4242,
            1_700_000_000_500_000_000,
            &sock_raw(
                0xffff_8880_0000_1000,
                TCP_CLOSE,
                TCP_SYN_SENT,
                0,
                443,
                [127, 0, 0, 1],
                [10, 0, 0, 9],
            ),
        );
        data.extend(record(
            77,
            1_700_000_000_000_000_000,
            &exec_raw(77, "/usr/bin/curl"),
        ));
        // PERF_RECORD_LOST {u64 id; u64 lost}.
        data.extend_from_slice(&PERF_RECORD_LOST.to_ne_bytes());
        data.extend_from_slice(&0u16.to_ne_bytes());
        data.extend_from_slice(&24u16.to_ne_bytes());
        data.extend_from_slice(&0u64.to_ne_bytes());
        data.extend_from_slice(&3u64.to_ne_bytes());
        let mut d = Decoded::default();
        decode_records(&data, &l, &mut d);
        assert_eq!(d.lost, 3);
        assert_eq!(d.malformed, 0);
        assert_eq!(
            d.events[0],
            Event::SockState {
                time_ns: 1_700_000_000_500_000_000,
                pid: 4242,
                skaddr: 0xffff_8880_0000_1000,
                old: TCP_CLOSE,
                new: TCP_SYN_SENT,
                protocol: 6,
                local: "127.0.0.1".parse().unwrap(),
                local_port: 0,
                remote: "10.0.0.9".parse().unwrap(),
                remote_port: 443,
            }
        );
        assert_eq!(
            d.events[1],
            Event::Exec {
                time_ns: 1_700_000_000_000_000_000,
                pid: 77,
                filename: "/usr/bin/curl".into()
            }
        );
        // A record claiming more bytes than there are stops the walk, counted.
        let mut cut = Decoded::default();
        decode_records(&data[..data.len() - 4], &l, &mut cut);
        assert_eq!((cut.events.len(), cut.malformed), (2, 1));
        // A raw size beyond its record is malformed, not a panic.
        let mut bad = record(1, 1, &exec_raw(1, "/x"));
        bad[8 + 16..8 + 20].copy_from_slice(&5000u32.to_ne_bytes());
        let mut b = Decoded::default();
        decode_records(&bad, &l, &mut b);
        assert_eq!((b.events.len(), b.malformed), (0, 1));
    }

    fn destroy(lport: u16, acked: u64, sent: u64, retrans: u64, received: u64) -> DiagSocket {
        DiagSocket {
            family: 2,
            state: 7,
            local: "127.0.0.1".parse().unwrap(),
            local_port: lport,
            remote: "127.0.0.1".parse().unwrap(),
            remote_port: 9000,
            uid: 0,
            inode: 0,
            bytes_acked: Some(acked),
            bytes_received: Some(received),
            bytes_sent: Some(sent),
            bytes_retrans: Some(retrans),
        }
    }

    fn sock_event(t: u64, pid: u32, sk: u64, old: i32, new: i32, sport: u16) -> Event {
        Event::SockState {
            time_ns: t * 1_000_000_000,
            pid,
            skaddr: sk,
            old,
            new,
            protocol: 6,
            local: "127.0.0.1".parse().unwrap(),
            local_port: sport,
            remote: "127.0.0.1".parse().unwrap(),
            remote_port: 9000,
        }
    }

    /// `connect()` in pid 500 at `sk`, established from local port `port`.
    fn connected(t: &mut Tracker, sk: u64, port: u16) {
        t.on_event(
            &sock_event(100, 500, sk, TCP_CLOSE, TCP_SYN_SENT, 0),
            &mut facts,
        );
        t.on_event(
            &sock_event(100, 0, sk, TCP_SYN_SENT, TCP_ESTABLISHED, port),
            &mut facts,
        );
    }

    fn facts(pid: u32) -> Option<ProcessObs> {
        Some(ProcessObs {
            ts: 0.0,
            pid: pid as i64,
            start_time: 50.0,
            ppid: Some(1),
            pgid: Some(pid as i64),
            uid: Some(0),
            path: Some("/usr/bin/client".into()),
            name: Some("client".into()),
            cpu_time: 0.0,
            launchd_label: Some("client.service".into()),
            label_source: Some("cgroup".into()),
            responsible_pid: None,
        })
    }

    #[test]
    fn connect_pid_joins_later_tuple_and_final_counters() {
        let mut t = Tracker::default();
        let mut f = facts;
        // connect() in pid 500; the softirq events carry pid 0 and the real tuple.
        t.on_event(
            &sock_event(100, 500, 0xa, TCP_CLOSE, TCP_SYN_SENT, 0),
            &mut f,
        );
        t.on_event(
            &sock_event(100, 0, 0xa, TCP_SYN_SENT, TCP_ESTABLISHED, 40000),
            &mut f,
        );
        // The tuple is known to lookups while the connection is open.
        let tuple = (
            6,
            "127.0.0.1".parse().unwrap(),
            40000,
            "127.0.0.1".parse().unwrap(),
            9000,
        );
        assert_eq!(t.table.lookup(tuple, 100.5).unwrap().pid, 500);
        t.on_event(&sock_event(101, 0, 0xa, 1, TCP_FIN_WAIT1, 40000), &mut f);
        t.on_event(
            &sock_event(101, 0, 0xa, TCP_FIN_WAIT1, TCP_FIN_WAIT2, 40000),
            &mut f,
        );
        t.on_event(
            &sock_event(101, 0, 0xa, TCP_FIN_WAIT2, TCP_CLOSE, 40000),
            &mut f,
        );
        // A destroy for another connection waits, then expires.
        t.on_destroy(destroy(41000, 1, 0, 0, 0), 101.0);
        // Acked = SYN + 250 payload + FIN; sent 250 once; received 100 + the peer's FIN.
        t.on_destroy(destroy(40000, 252, 250, 0, 101), 101.0);
        let done = t.take_finished();
        assert_eq!(done.len(), 1);
        let k = &done[0];
        assert_eq!(
            (k.pid, k.local_port, k.start, k.end),
            (500, 40000, 100.0, Some(101.0))
        );
        assert_eq!((k.bytes_sent, k.bytes_received), (Some(250), Some(100)));
        assert_eq!(
            k.owner.as_ref().unwrap().path.as_deref(),
            Some("/usr/bin/client")
        );
        assert_eq!(t.table.lookup(tuple, 100.5).unwrap().end, Some(101.0));
        t.settle(110.0);
        assert!(t.pending_destroys.is_empty());
        assert!(t.take_finished().is_empty());
    }

    #[test]
    fn a_socket_address_reused_before_the_destroy_keeps_the_closed_connections_counters() {
        let mut t = Tracker::default();
        let mut f = facts;
        // Connection 1 closes; the next connect() reuses its freed memory (same skaddr)
        // before connection 1's destroy notification is read.
        connected(&mut t, 0xc, 40010);
        t.on_event(
            &sock_event(100, 0, 0xc, TCP_ESTABLISHED, TCP_CLOSE, 40010),
            &mut f,
        );
        connected(&mut t, 0xc, 40011);
        assert!(
            t.take_finished().is_empty(),
            "connection 1 still waits for its counters"
        );
        t.on_destroy(destroy(40010, 301, 300, 0, 0), 100.5);
        let done = t.take_finished();
        assert_eq!(
            done.iter()
                .map(|k| (k.local_port, k.bytes_sent))
                .collect::<Vec<_>>(),
            vec![(40010, Some(300))]
        );
        // One whose destroy never comes is given up on with the others, counters unknown.
        t.on_event(
            &sock_event(101, 0, 0xc, TCP_ESTABLISHED, TCP_CLOSE, 40011),
            &mut f,
        );
        t.on_event(
            &sock_event(101, 500, 0xc, TCP_CLOSE, TCP_SYN_SENT, 0),
            &mut f,
        );
        t.settle(103.0);
        assert!(t.take_finished().is_empty());
        t.settle(107.0);
        let done = t.take_finished();
        assert_eq!(
            done.iter()
                .map(|k| (k.local_port, k.bytes_sent))
                .collect::<Vec<_>>(),
            vec![(40011, None)]
        );
    }

    #[test]
    fn a_closed_sockets_memory_reused_by_an_accepted_socket_keeps_its_tuple_and_counters() {
        let mut t = Tracker::default();
        let mut f = facts;
        connected(&mut t, 0xd, 40020);
        t.on_event(
            &sock_event(100, 0, 0xd, TCP_FIN_WAIT2, TCP_CLOSE, 40020),
            &mut f,
        );
        // The server side of the next connection is allocated where the client was, and
        // its events are read before the client's destroy notification.
        const TCP_SYN_RECV: i32 = 3;
        let mut accepted = sock_event(100, 0, 0xd, TCP_SYN_RECV, TCP_ESTABLISHED, 9000);
        if let Event::SockState { remote_port, .. } = &mut accepted {
            *remote_port = 40021;
        }
        t.on_event(&accepted, &mut f);
        t.on_destroy(destroy(40020, 302, 300, 0, 1), 100.2);
        let done = t.take_finished();
        assert_eq!(
            done.iter()
                .map(|k| (k.pid, k.local_port, k.remote_port, k.bytes_sent))
                .collect::<Vec<_>>(),
            vec![(500, 40020, 9000, Some(300))],
            "the closed client keeps its own tuple and its final counters"
        );
        // The accepted socket was never followed: nothing is attributed to the client's pid.
        let server_side = (
            6,
            "127.0.0.1".parse().unwrap(),
            9000,
            "127.0.0.1".parse().unwrap(),
            40021,
        );
        assert!(t.table.lookup(server_side, 100.5).is_none());
        assert_eq!(t.open(), 0);
    }

    #[test]
    fn lost_destroy_notifications_finish_the_closed_connections_at_once() {
        let mut t = Tracker::default();
        let mut f = facts;
        connected(&mut t, 0xe1, 40030);
        connected(&mut t, 0xe2, 40031);
        t.on_event(
            &sock_event(101, 0, 0xe1, TCP_ESTABLISHED, TCP_CLOSE, 40030),
            &mut f,
        );
        t.destroys_lost();
        let done = t.take_finished();
        assert_eq!(
            done.iter()
                .map(|k| (k.local_port, k.end, k.bytes_sent))
                .collect::<Vec<_>>(),
            vec![(40030, Some(101.0), None)],
            "the closed one at once, without counters; the open one stays"
        );
        assert_eq!(t.open(), 1);
    }

    #[test]
    fn destroy_before_events_still_joins_and_lost_destroys_expire() {
        let mut t = Tracker::default();
        let mut f = facts;
        t.on_event(
            &sock_event(100, 500, 0xb, TCP_CLOSE, TCP_SYN_SENT, 0),
            &mut f,
        );
        t.on_destroy(destroy(40001, 11, 10, 0, 0), 100.0);
        t.on_event(
            &sock_event(100, 0, 0xb, TCP_SYN_SENT, TCP_ESTABLISHED, 40001),
            &mut f,
        );
        t.settle(100.5);
        // No CLOSE event yet: the notification waits for it (it may still be in the ring).
        assert!(t.take_finished().is_empty());
        // A second later the CLOSE event is taken as lost: joined anyway.
        t.settle(101.2);
        let done = t.take_finished();
        // FIN not acked: acked - SYN = 10 = sent.
        assert_eq!(done[0].bytes_sent, Some(10));
        // The usual race: the notification is read before the CLOSE event that precedes it.
        t.on_event(
            &sock_event(300, 502, 0xd, TCP_CLOSE, TCP_SYN_SENT, 0),
            &mut f,
        );
        t.on_event(
            &sock_event(300, 0, 0xd, TCP_SYN_SENT, TCP_ESTABLISHED, 40003),
            &mut f,
        );
        t.on_destroy(destroy(40003, 252, 250, 0, 101), 300.1);
        t.on_event(&sock_event(300, 0, 0xd, 1, TCP_FIN_WAIT1, 40003), &mut f);
        t.on_event(
            &sock_event(300, 0, 0xd, TCP_FIN_WAIT1, TCP_FIN_WAIT2, 40003),
            &mut f,
        );
        t.on_event(
            &sock_event(300, 0, 0xd, TCP_FIN_WAIT2, TCP_CLOSE, 40003),
            &mut f,
        );
        t.settle(300.2);
        let done = t.take_finished();
        assert_eq!(
            (done[0].pid, done[0].bytes_sent, done[0].bytes_received),
            (502, Some(250), Some(100)),
            "the peer's FIN is not payload"
        );
        // Closed but never destroyed: finished without counters after the wait.
        t.on_event(
            &sock_event(200, 501, 0xc, TCP_CLOSE, TCP_SYN_SENT, 0),
            &mut f,
        );
        t.on_event(
            &sock_event(200, 0, 0xc, TCP_SYN_SENT, TCP_CLOSE, 40002),
            &mut f,
        );
        t.settle(201.0);
        assert!(t.take_finished().is_empty());
        t.settle(206.0);
        let done = t.take_finished();
        assert_eq!((done[0].pid, done[0].bytes_sent), (501, None));
        // Retransmissions do not inflate the payload: acked bounds it.
        assert_eq!(acked_payload(&destroy(1, 101, 300, 200, 0)), Some(100));
    }
}

#[cfg(all(test, target_os = "linux"))]
mod live_tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::time::{Duration, Instant};

    use super::KernelEvents;

    #[test]
    fn a_short_connection_is_attributed_with_exact_final_counters() {
        let events = match KernelEvents::start() {
            Ok(e) => e,
            Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
                log::warn!("skipped: kernel events unavailable here ({e})");
                return;
            }
            Err(e) => panic!("kernel events must run in CI (root): {e}"),
        };
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 250];
            s.read_exact(&mut buf).unwrap();
            s.write_all(&[7u8; 100]).unwrap();
            let mut rest = Vec::new();
            s.read_to_end(&mut rest).unwrap();
        });
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let local_port = c.local_addr().unwrap().port();
        c.write_all(&[1u8; 250]).unwrap();
        let mut reply = [0u8; 100];
        c.read_exact(&mut reply).unwrap();
        drop(c);
        server.join().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut found = None;
        while found.is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            found = events
                .drain()
                .0
                .into_iter()
                .find(|f| f.local_port == local_port && f.remote_port == port);
        }
        let f = found.expect("the connection was reported as ended");
        assert_eq!(f.pid, std::process::id() as i64);
        assert_eq!((f.bytes_sent, f.bytes_received), (Some(250), Some(100)));
        let owner = f.owner.expect("owner facts");
        assert_eq!(
            owner.path,
            std::env::current_exe()
                .ok()
                .map(|p| p.to_string_lossy().into_owned())
        );
        assert!(f.end.unwrap() >= f.start);
        let status = events.status();
        assert!(status.iter().all(|s| s.running), "{status:?}");
    }
}
