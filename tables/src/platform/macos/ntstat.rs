//! The NetworkStatistics client: a subscriber to xnu's `com.apple.network.statistics` kernel
//! control, the event source nettop and Activity Monitor use. It learns of every TCP and UDP
//! socket (kernel sockets and Skywalk userland flows, QUIC included) when it is created, with
//! the process (pid, effective pid, unique pid, name, executable UUID), both addresses and the
//! kernel's own creation time, and of its end with its final counters: connections that open
//! and close between two pcblist_n polls are no longer missed.
//!
//! Protocol (facts from xnu `bsd/net/ntstat.h` and `ntstat.c`; message layouts in
//! [`super::ntstat_wire`]):
//! 1. `ADD_ALL_SRCS` per provider (TCP kernel and userland, UDP kernel and userland, QUIC
//!    userland). The kernel answers `SUCCESS` (or `ERROR` with an errno) and sends `SRC_ADDED`
//!    for every existing and future source. On macOS these providers need no privilege
//!    (`nstat_privcheck` is 0 there); the two providers that always need
//!    `PRIV_NET_PRIVILEGED_NETWORK_STATISTICS` (connection and UDP-subflow) are not asked for.
//! 2. `SRC_ADDED` → `GET_SRC_DESC` → `SRC_DESC`: who owns the new flow, asked at once so a
//!    short-lived process is still there to be identified.
//! 3. A periodic `GET_UPDATE` for all sources → `SRC_UPDATE` (counters and descriptor) per
//!    source. Answers to any all-sources poll may come in fragments: the closing `SUCCESS`
//!    carries `CONTINUATION` and the client asks again with the same context until one
//!    does not. Asking for updates also makes the kernel say goodbye with an update.
//! 4. When a source goes, the kernel sends its final `SRC_UPDATE` (or `SRC_COUNTS` and
//!    `SRC_DESC`) flagged `CLOSING`, then `SRC_REMOVED`; `CLOSED_AFTER_DROP` on the removal says
//!    the final counters were lost (counted as a drop, the flow still closes).
//!
//! `start_timestamp` is Mach continuous time (ticks since boot, sleep included) at socket
//! creation; [`TimeRef`] converts it against a (ticks, wall clock) pair read together, with
//! the tick rate from `hw.tbfrequency` (Rosetta reports a 1/1 timebase while the kernel counts
//! native ticks).
//!
//! Everything above the socket is platform-independent and tested here over a
//! `UnixDatagram` pair standing in for the kernel ([`Datagrams`] is the seam). Only a Mac can
//! prove: that the kernel accepts these requests and sends these layouts on each release
//! (mirrored for macOS 11, 12–13 and 14–15 from the xnu tags; macOS 26 has no published tag, so
//! it falls back to pcblist_n polling and `launchwatch_status.sources` says why); that the
//! providers stay unprivileged for a non-root osqueryd; what the counters count per provider;
//! and that Mach continuous time converts as computed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::ntstat_wire::{self as wire, Counts, Descriptor, Layout, Msg, Provider};

/// A datagram socket the client talks through: the kernel control on a Mac, one end of a
/// socket pair in tests.
pub trait Datagrams {
    fn send(&mut self, msg: &[u8]) -> std::io::Result<()>;
    /// One datagram into `buf`; `Ok(None)` when the socket's read timeout passed first.
    fn recv(&mut self, buf: &mut [u8]) -> std::io::Result<Option<usize>>;
}

impl Datagrams for std::os::unix::net::UnixDatagram {
    fn send(&mut self, msg: &[u8]) -> std::io::Result<()> {
        std::os::unix::net::UnixDatagram::send(self, msg).map(|_| ())
    }
    fn recv(&mut self, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
        match std::os::unix::net::UnixDatagram::recv(self, buf) {
            Ok(n) => Ok(Some(n)),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// Mach continuous time and the wall clock read at the same moment, and the tick rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeRef {
    pub ticks: u64,
    pub wall: f64,
    pub ticks_per_second: u64,
}

impl TimeRef {
    /// The wall-clock time (epoch seconds) of a Mach continuous timestamp.
    pub fn wall_of(&self, ticks: u64) -> f64 {
        let tps = self.ticks_per_second;
        if ticks <= self.ticks {
            self.wall - crate::platform::parse::mach_ticks_to_seconds(self.ticks - ticks, tps)
        } else {
            self.wall + crate::platform::parse::mach_ticks_to_seconds(ticks - self.ticks, tps)
        }
    }
}

/// Executable path and process start time of a pid, looked up while the flow is new.
pub type Identify = Box<dyn FnMut(u32) -> Option<(Option<String>, Option<f64>)> + Send>;

/// One flow as the kernel described it (platform facts; the sampler turns them into rows).
#[derive(Debug, Clone, PartialEq)]
pub struct NtstatFlow {
    pub srcref: u64,
    pub provider: Provider,
    pub protocol: &'static str,
    /// The last process to use the socket, and the one it acts for (`epid`; equal when not
    /// delegated).
    pub pid: u32,
    pub epid: u32,
    /// Unique pids (never reused while the system runs).
    pub upid: u64,
    pub eupid: u64,
    pub process_name: String,
    /// The executable's Mach-O UUID and the effective one.
    pub uuid: [u8; 16],
    pub euuid: [u8; 16],
    /// macOS 14 on.
    pub uid: Option<u32>,
    pub local: IpAddr,
    pub local_port: u16,
    pub remote: IpAddr,
    pub remote_port: u16,
    /// `tcp_fsm.h` state (TCP only).
    pub state: Option<u32>,
    pub counts: Counts,
    /// Epoch seconds of socket creation (the kernel's own timestamp) and of its removal.
    pub start: f64,
    pub end: Option<f64>,
    /// Executable path and process start, looked up when the flow was first described.
    pub path: Option<String>,
    pub process_start: Option<f64>,
    /// The same for `epid` when it differs (a delegated socket), else `None`.
    pub effective_path: Option<String>,
    pub effective_start: Option<f64>,
}

/// Whom a flow is attributed to: the process it acts for when the socket was delegated
/// (`epid`, as nsurlsessiond does for apps) and that process already ran when the flow
/// started (a later start means the pid was reused), else the socket's last user. The other
/// pid is kept as the acting one, as the poller keeps `so_e_pid`.
struct Attribution<'a> {
    pid: u32,
    path: Option<&'a String>,
    process_start: Option<f64>,
    acting_pid: Option<u32>,
}

fn attribution(f: &NtstatFlow) -> Attribution<'_> {
    match f.effective_start {
        Some(st) if f.epid > 0 && f.epid != f.pid && st <= f.start => Attribution {
            pid: f.epid,
            path: f.effective_path.as_ref(),
            process_start: Some(st),
            acting_pid: Some(f.pid).filter(|p| *p > 0),
        },
        _ => Attribution {
            pid: f.pid,
            path: f.path.as_ref(),
            process_start: f.process_start,
            acting_pid: None,
        },
    }
}

/// What the client saw happen.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Opened(NtstatFlow),
    Closed(NtstatFlow),
}

/// Counters for `launchwatch_status.sources`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub messages: u64,
    /// Events the kernel says it dropped (final counters lost, earlier events discarded) and
    /// sources removed before we learned who owned them.
    pub drops: u64,
    /// Messages that could not be parsed (each skipped; the rest of the datagram is kept).
    pub malformed: u64,
    pub last_error: Option<String>,
    /// Providers the kernel accepted, and the ones it refused with their errno.
    pub subscribed: Vec<Provider>,
    pub refused: Vec<(Provider, u32)>,
}

struct Source {
    provider: Provider,
    /// Wall-clock start, converted once so every report of the flow agrees on it.
    start: Option<f64>,
    desc: Option<Descriptor>,
    counts: Counts,
    owner: Option<(Option<String>, Option<f64>)>,
    /// The process a delegated socket acts for (`epid`), looked up at the same moment.
    effective_owner: Option<(Option<String>, Option<f64>)>,
}

/// The protocol state: bytes in, requests and events out. No I/O of its own.
pub struct Client {
    layout: &'static Layout,
    pub time: TimeRef,
    identify: Identify,
    next_context: u64,
    sources: HashMap<u64, Source>,
    /// Context of ADD_ALL_SRCS requests still unanswered.
    adding: HashMap<u64, Provider>,
    /// Context of the all-sources poll in progress.
    polling: Option<u64>,
    events: Vec<Event>,
    pub stats: Stats,
}

impl Client {
    pub fn new(layout: &'static Layout, time: TimeRef, identify: Identify) -> Client {
        Client {
            layout,
            time,
            identify,
            next_context: 1,
            sources: HashMap::new(),
            adding: HashMap::new(),
            polling: None,
            events: Vec::new(),
            stats: Stats::default(),
        }
    }

    fn context(&mut self) -> u64 {
        let c = self.next_context;
        self.next_context += 1;
        c
    }

    /// The ADD_ALL_SRCS requests, one per provider.
    pub fn subscribe(&mut self) -> Vec<Vec<u8>> {
        Provider::ALL
            .into_iter()
            .map(|p| {
                let c = self.context();
                self.adding.insert(c, p);
                wire::add_all_srcs(c, p)
            })
            .collect()
    }

    /// A GET_UPDATE of every source, unless one is still being answered.
    pub fn poll(&mut self) -> Option<Vec<u8>> {
        if self.polling.is_some() {
            return None;
        }
        let c = self.context();
        self.polling = Some(c);
        Some(wire::src_request(
            c,
            wire::MSG_GET_UPDATE,
            wire::SRC_REF_ALL,
            wire::FLAG_CONTINUATION,
        ))
    }

    /// Whether the subscription was answered for every provider and at least one took it.
    pub fn subscribed(&self) -> bool {
        self.adding.is_empty() && !self.stats.subscribed.is_empty()
    }

    fn error(&mut self, e: String) {
        self.stats.malformed += 1;
        self.stats.last_error = Some(e);
    }

    /// Handles one datagram from the kernel; returns the requests to send back.
    pub fn handle(&mut self, datagram: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let (msgs, err) = wire::split_datagram(datagram);
        if let Some(e) = err {
            self.error(e);
        }
        for m in msgs {
            self.stats.messages += 1;
            match wire::parse_message(m, self.layout) {
                Ok(msg) => self.on_message(msg, &mut out),
                Err(e) => self.error(e),
            }
        }
        out
    }

    fn on_message(&mut self, msg: Msg, out: &mut Vec<Vec<u8>>) {
        match msg {
            Msg::Success { context, flags } => {
                if let Some(p) = self.adding.remove(&context) {
                    self.stats.subscribed.push(p);
                } else if self.polling == Some(context) {
                    if flags & wire::FLAG_CONTINUATION != 0 {
                        // More sources to report: ask for the next fragment, same context.
                        out.push(wire::src_request(
                            context,
                            wire::MSG_GET_UPDATE,
                            wire::SRC_REF_ALL,
                            wire::FLAG_CONTINUATION,
                        ));
                    } else {
                        self.polling = None;
                    }
                }
            }
            Msg::Error { context, errno } => {
                if let Some(p) = self.adding.remove(&context) {
                    self.stats.refused.push((p, errno));
                } else if self.polling == Some(context) {
                    self.polling = None;
                }
                self.stats.last_error =
                    Some(format!("ntstat: request {context} failed: errno {errno}"));
            }
            Msg::SrcAdded { srcref, provider } => {
                let Some(provider) = Provider::from_id(provider) else {
                    return;
                };
                self.sources.insert(
                    srcref,
                    Source {
                        provider,
                        start: None,
                        desc: None,
                        counts: Counts::default(),
                        owner: None,
                        effective_owner: None,
                    },
                );
                let c = self.context();
                out.push(wire::src_request(c, wire::MSG_GET_SRC_DESC, srcref, 0));
            }
            Msg::SrcDesc {
                srcref,
                provider,
                event_flags,
                desc,
                ..
            } => {
                self.note_discards(event_flags);
                if let Some(desc) = desc {
                    self.describe(srcref, provider, desc, None);
                }
            }
            Msg::SrcCounts {
                srcref,
                event_flags,
                counts,
                ..
            } => {
                self.note_discards(event_flags);
                if let Some(s) = self.sources.get_mut(&srcref) {
                    s.counts = counts;
                }
            }
            Msg::SrcUpdate {
                srcref,
                provider,
                event_flags,
                counts,
                desc,
                ..
            } => {
                self.note_discards(event_flags);
                if let Some(desc) = desc {
                    self.describe(srcref, provider, desc, Some(counts));
                }
            }
            Msg::SrcRemoved { srcref, flags } => {
                if flags & wire::FLAG_CLOSED_AFTER_DROP != 0 {
                    self.stats.drops += 1;
                }
                match self.sources.remove(&srcref) {
                    Some(s) if s.desc.is_some() => {
                        let end = self.time.wall;
                        if let Some(mut f) = self.flow(srcref, &s) {
                            f.end = Some(end.max(f.start));
                            self.events.push(Event::Closed(f));
                        }
                    }
                    // Gone before its description arrived: the owner is unknown.
                    Some(_) => self.stats.drops += 1,
                    None => {}
                }
            }
            Msg::Other { .. } => {}
        }
    }

    fn note_discards(&mut self, event_flags: u64) {
        if event_flags & wire::EVENT_PREV_DISCARDED != 0 {
            self.stats.drops += 1;
        }
    }

    /// A description (alone or in an update) of a source: the first one opens the flow.
    fn describe(&mut self, srcref: u64, provider: u32, desc: Descriptor, counts: Option<Counts>) {
        let Some(provider) = Provider::from_id(provider) else {
            return;
        };
        let start = self.time.wall_of(desc.start_timestamp);
        let s = self.sources.entry(srcref).or_insert(Source {
            provider,
            start: None,
            desc: None,
            counts: Counts::default(),
            owner: None,
            effective_owner: None,
        });
        if let Some(c) = counts {
            s.counts = c;
        }
        let first = s.desc.is_none();
        s.start.get_or_insert(start);
        // Once, while the flow is new: asking again later could name a reused pid.
        if first {
            s.owner = (self.identify)(desc.pid);
            if desc.epid > 0 && desc.epid != desc.pid {
                s.effective_owner = (self.identify)(desc.epid);
            }
        }
        s.desc = Some(desc);
        if first {
            let s = &self.sources[&srcref];
            if let Some(f) = self.flow(srcref, s) {
                self.events.push(Event::Opened(f));
            }
        }
    }

    /// The flow of a described source; `None` for one without a remote end (a listener or
    /// an unconnected UDP socket is no flow, as in the poller).
    fn flow(&self, srcref: u64, s: &Source) -> Option<NtstatFlow> {
        let d = s.desc.as_ref()?;
        let (local, local_port) = d.local?;
        let (remote, remote_port) = d.remote?;
        if remote.is_unspecified() || remote_port == 0 {
            return None;
        }
        let (path, process_start) = s.owner.clone().unwrap_or((None, None));
        let (effective_path, effective_start) = s.effective_owner.clone().unwrap_or((None, None));
        Some(NtstatFlow {
            srcref,
            provider: s.provider,
            protocol: s.provider.protocol(),
            pid: d.pid,
            epid: d.epid,
            upid: d.upid,
            eupid: d.eupid,
            process_name: d.pname.clone(),
            uuid: d.uuid,
            euuid: d.euuid,
            uid: d.uid,
            local,
            local_port,
            remote,
            remote_port,
            state: d.state,
            counts: s.counts,
            start: s
                .start
                .unwrap_or_else(|| self.time.wall_of(d.start_timestamp)),
            end: None,
            path,
            process_start,
            effective_path,
            effective_start,
        })
    }

    /// Opened and closed flows since the last call.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Every described flow still open, with its latest counters.
    pub fn open_flows(&self) -> Vec<NtstatFlow> {
        self.sources
            .iter()
            .filter_map(|(r, s)| self.flow(*r, s))
            .collect()
    }
}

/// The read loop: subscribes, then receives and answers until `stop`, polling every source's
/// counters every `poll_every`. The client lock is held only while a datagram is handled, so
/// readers of its state never wait for the socket. An I/O error ends the loop with it.
pub fn run<D: Datagrams>(
    io: &mut D,
    client: &Mutex<Client>,
    stop: &AtomicBool,
    poll_every: Duration,
    clock: &dyn Fn() -> TimeRef,
) -> Result<(), String> {
    let lock = || client.lock().unwrap_or_else(|p| p.into_inner());
    for req in lock().subscribe() {
        io.send(&req)
            .map_err(|e| format!("ntstat: subscribe: {e}"))?;
    }
    let mut buf = vec![0u8; 64 * 1024];
    let mut last_poll: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        if last_poll.is_none_or(|t| t.elapsed() >= poll_every) {
            let req = {
                let mut c = lock();
                c.subscribed().then(|| c.poll()).flatten()
            };
            if let Some(req) = req {
                last_poll = Some(Instant::now());
                io.send(&req).map_err(|e| format!("ntstat: poll: {e}"))?;
            }
        }
        let Some(n) = io
            .recv(&mut buf)
            .map_err(|e| format!("ntstat: receive: {e}"))?
        else {
            continue;
        };
        let replies = {
            let mut c = lock();
            c.time = clock();
            c.handle(&buf[..n])
        };
        for r in replies {
            io.send(&r).map_err(|e| format!("ntstat: request: {e}"))?;
        }
    }
    Ok(())
}

/// The flow as the facts the sampler takes from every kernel-event collector: a connection
/// that ended, with its final counters and the process seen while it lived.
pub fn kernel_flow(f: &NtstatFlow) -> crate::facts::KernelFlow {
    let who = attribution(f);
    // The descriptor's name and uid are the last user's: kept only for that process.
    let own = who.acting_pid.is_none();
    let owner = who
        .process_start
        .map(|start| crate::observation::ProcessObs {
            ts: f.start,
            pid: i64::from(who.pid),
            start_time: start,
            ppid: None,
            uid: f.uid.filter(|_| own).map(i64::from),
            path: who.path.cloned(),
            name: own.then(|| f.process_name.clone()),
            cpu_time: 0.0,
            launchd_label: None,
            pgid: None,
            label_source: None,
            responsible_pid: None,
        });
    crate::facts::KernelFlow {
        owner,
        protocol: f.protocol,
        source: "ntstat",
        pid: i64::from(who.pid),
        acting_pid: who.acting_pid.map(i64::from),
        local: f.local,
        local_port: f.local_port,
        remote: f.remote,
        remote_port: f.remote_port,
        start: f.start,
        end: f.end,
        state: f.state.map(|s| s as i32).unwrap_or(0),
        bytes_sent: i64::try_from(f.counts.tx_bytes).ok(),
        bytes_received: i64::try_from(f.counts.rx_bytes).ok(),
        peer_fin: false,
    }
}

/// The flow table key and owner of a flow (what packet capture and the poller ask).
pub fn table_entry(f: &NtstatFlow) -> (crate::facts::FlowTuple, crate::facts::FlowOwner) {
    let proto = if f.protocol == "udp" { 17 } else { 6 };
    let who = attribution(f);
    (
        (proto, f.local, f.local_port, f.remote, f.remote_port),
        crate::facts::FlowOwner {
            pid: i64::from(who.pid),
            process_start: who.process_start,
            path: who.path.cloned(),
            launchd_label: None,
            label_source: None,
            start: f.start,
            end: f.end,
        },
    )
}

/// An open flow as a socket sample: the owner is the last user, the effective pid the one
/// it acts for (as pcblist_n reports them). `socket_id` 0: matched to history by 5-tuple.
pub fn socket_sample(f: &NtstatFlow) -> crate::platform::SocketSample {
    let tcp = f.protocol == "tcp";
    crate::platform::SocketSample {
        protocol: f.protocol,
        local: f.local,
        local_port: f.local_port,
        remote: f.remote,
        remote_port: f.remote_port,
        state: if tcp {
            f.state
                .and_then(|s| super::pcblist::tcp_state_name(s as i32))
        } else {
            None
        },
        listening: tcp && f.state == Some(1),
        pid: (f.pid > 0).then_some(f.pid as i64),
        delegate_pid: (f.epid > 0 && f.epid != f.pid).then_some(f.epid as i64),
        socket_id: 0,
        bytes_sent: i64::try_from(f.counts.tx_bytes).ok(),
        bytes_received: i64::try_from(f.counts.rx_bytes).ok(),
    }
}

/// Kernel-first merge of one poll: a polled socket ntstat also follows takes ntstat's owner,
/// state and counters (keeping the poller's socket id); polled sockets it does not follow stay
/// as polled; flows only ntstat knows are added.
pub fn merge(
    polled: Vec<crate::platform::SocketSample>,
    ntstat: Vec<crate::platform::SocketSample>,
) -> Vec<crate::platform::SocketSample> {
    use crate::facts::canonical_ip;
    type Key = (&'static str, IpAddr, u16, IpAddr, u16);
    let key = |s: &crate::platform::SocketSample| -> Key {
        (
            s.protocol,
            canonical_ip(s.local),
            s.local_port,
            canonical_ip(s.remote),
            s.remote_port,
        )
    };
    let mut by_key: HashMap<Key, crate::platform::SocketSample> =
        ntstat.into_iter().map(|s| (key(&s), s)).collect();
    let mut out: Vec<_> = polled
        .into_iter()
        .map(|p| match by_key.remove(&key(&p)) {
            Some(mut n) => {
                n.socket_id = p.socket_id;
                // Keep the poller's spelling of the addresses (it is what history has).
                (n.local, n.remote) = (p.local, p.remote);
                n
            }
            None => p,
        })
        .collect();
    out.extend(by_key.into_values());
    out
}

/// The live client on a Mac: the kernel control socket (thin), a thread running [`run`], and
/// the facts it collected for the sampler. Only type-checked off a Mac (macos-check).
#[cfg(target_os = "macos")]
pub mod live {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use super::{Client, Datagrams, Event, TimeRef};
    use crate::facts::{FlowTable, KernelFlow, SourceStatus};
    use crate::platform::macos::ntstat_wire as wire;
    use crate::platform::SocketSample;

    extern "C" {
        fn mach_continuous_time() -> u64;
    }

    /// How often every source's counters are polled.
    const POLL_EVERY: Duration = Duration::from_secs(2);

    struct Kctl(OwnedFd);

    impl Datagrams for Kctl {
        fn send(&mut self, msg: &[u8]) -> std::io::Result<()> {
            // SAFETY: msg is a valid buffer of msg.len() bytes.
            let n = unsafe { libc::send(self.0.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
            if n < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        }
        fn recv(&mut self, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
            // SAFETY: buf is writable for buf.len() bytes.
            let n =
                unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n >= 0 {
                return Ok(Some(n as usize));
            }
            let e = std::io::Error::last_os_error();
            match e.kind() {
                std::io::ErrorKind::WouldBlock
                | std::io::ErrorKind::TimedOut
                | std::io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            }
        }
    }

    fn os_err(what: &str) -> String {
        format!("{what}: {}", std::io::Error::last_os_error())
    }

    /// `socket(PF_SYSTEM, SOCK_DGRAM, SYSPROTO_CONTROL)`, the control's id by name
    /// (`CTLIOCGINFO`), `connect` to it.
    fn open_control() -> Result<Kctl, String> {
        // SAFETY: plain syscall.
        let fd = unsafe { libc::socket(libc::PF_SYSTEM, libc::SOCK_DGRAM, libc::SYSPROTO_CONTROL) };
        if fd < 0 {
            return Err(os_err("ntstat: socket(PF_SYSTEM)"));
        }
        // SAFETY: fd is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: plain data, zeroed is valid.
        let mut info: libc::ctl_info = unsafe { std::mem::zeroed() };
        for (d, s) in info.ctl_name.iter_mut().zip(wire::CONTROL_NAME.bytes()) {
            *d = s as libc::c_char;
        }
        // SAFETY: info is a ctl_info, as CTLIOCGINFO expects.
        if unsafe { libc::ioctl(fd.as_raw_fd(), libc::CTLIOCGINFO, &mut info) } != 0 {
            return Err(os_err("ntstat: CTLIOCGINFO com.apple.network.statistics"));
        }
        // SAFETY: plain data, zeroed is valid.
        let mut addr: libc::sockaddr_ctl = unsafe { std::mem::zeroed() };
        addr.sc_len = std::mem::size_of::<libc::sockaddr_ctl>() as u8;
        addr.sc_family = libc::AF_SYSTEM as u8;
        addr.ss_sysaddr = libc::AF_SYS_CONTROL as u16;
        addr.sc_id = info.ctl_id;
        addr.sc_unit = 0;
        // SAFETY: addr is a sockaddr_ctl of the length given.
        let rc = unsafe {
            libc::connect(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ctl).cast(),
                std::mem::size_of::<libc::sockaddr_ctl>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(os_err("ntstat: connect"));
        }
        // A deep receive queue: the kernel drops what does not fit. Best effort.
        let rcvbuf: libc::c_int = 4 << 20;
        let timeout = libc::timeval {
            tv_sec: 0,
            tv_usec: 200_000,
        };
        // SAFETY: option values of the sizes given.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&rcvbuf as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
            if libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            ) != 0
            {
                return Err(os_err("ntstat: SO_RCVTIMEO"));
            }
        }
        Ok(Kctl(fd))
    }

    fn sysctl_string(name: &std::ffi::CStr) -> Option<String> {
        let mut buf = [0u8; 256];
        let mut len = buf.len();
        // SAFETY: buf holds len bytes.
        let rc = unsafe {
            libc::sysctlbyname(
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        (rc == 0).then(|| String::from_utf8_lossy(&buf[..len.min(buf.len())]).into_owned())
    }

    fn time_ref(tps: u64) -> TimeRef {
        // SAFETY: no preconditions.
        let ticks = unsafe { mach_continuous_time() };
        TimeRef {
            ticks,
            wall: crate::env::wall_clock(),
            ticks_per_second: tps,
        }
    }

    #[derive(Default)]
    struct Out {
        ended: Vec<KernelFlow>,
        error: Option<String>,
    }

    /// The running client and what it gathered.
    pub struct NtstatEvents {
        client: Arc<Mutex<Client>>,
        out: Arc<Mutex<Out>>,
        table: Arc<FlowTable>,
        stop: Arc<AtomicBool>,
        started: Instant,
        layout: &'static wire::Layout,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl NtstatEvents {
        /// Starts the client when this kernel's layout is known; otherwise says why not.
        pub fn start() -> Result<NtstatEvents, String> {
            let release = sysctl_string(c"kern.osrelease").unwrap_or_default();
            let layout = wire::layout_for_release(&release)?;
            let mut io = open_control()?;
            // hw.tbfrequency first: Rosetta reports a 1/1 timebase.
            let tps = crate::platform::macos::proc::ticks_per_second();
            let client = Arc::new(Mutex::new(Client::new(
                layout,
                time_ref(tps),
                Box::new(|pid| crate::platform::process_identity(pid as i64)),
            )));
            let out = Arc::new(Mutex::new(Out::default()));
            let table = Arc::new(FlowTable::default());
            let stop = Arc::new(AtomicBool::new(false));
            let thread = {
                let (client, out, table, stop) =
                    (client.clone(), out.clone(), table.clone(), stop.clone());
                std::thread::Builder::new()
                    .name("launchwatch-ntstat".into())
                    .spawn(move || {
                        let r = run_and_feed(&mut io, &client, &out, &table, &stop, tps);
                        if let Err(e) = r {
                            out.lock().unwrap_or_else(|p| p.into_inner()).error = Some(e);
                        }
                    })
                    .map_err(|e| format!("ntstat thread: {e}"))?
            };
            Ok(NtstatEvents {
                client,
                out,
                table,
                stop,
                started: Instant::now(),
                layout,
                thread: Some(thread),
            })
        }

        /// Connections that ended since the last call, with their final counters.
        pub fn drain(&self) -> Vec<KernelFlow> {
            std::mem::take(&mut self.out.lock().unwrap_or_else(|p| p.into_inner()).ended)
        }

        pub fn table(&self) -> Arc<FlowTable> {
            self.table.clone()
        }

        /// Open flows as socket samples, for the kernel-first merge with pcblist_n.
        pub fn open_samples(&self) -> Vec<SocketSample> {
            if !self.running() {
                return Vec::new();
            }
            let c = self.client.lock().unwrap_or_else(|p| p.into_inner());
            c.open_flows().iter().map(super::socket_sample).collect()
        }

        fn running(&self) -> bool {
            self.out
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .error
                .is_none()
        }

        pub fn status(&self) -> SourceStatus {
            let error = self
                .out
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .error
                .clone();
            let c = self.client.lock().unwrap_or_else(|p| p.into_inner());
            let secs = self.started.elapsed().as_secs_f64().max(1e-3);
            let mut notes = Vec::new();
            if !c.stats.refused.is_empty() {
                notes.push(format!("providers refused (errno): {:?}", c.stats.refused));
            }
            if c.stats.malformed > 0 {
                notes.push(format!(
                    "{} malformed messages, last: {}",
                    c.stats.malformed,
                    c.stats.last_error.as_deref().unwrap_or("")
                ));
            }
            let subscribed = !c.stats.subscribed.is_empty();
            let reason = match (&error, subscribed) {
                (Some(e), _) => Some(format!("{e}; sockets are polled (pcblist_n)")),
                (None, false) if !c.stats.refused.is_empty() => Some(format!(
                    "{}; sockets are polled (pcblist_n)",
                    notes.join("; ")
                )),
                _ if !notes.is_empty() => {
                    Some(format!("layout {}: {}", self.layout.name, notes.join("; ")))
                }
                _ => None,
            };
            SourceStatus {
                name: "ntstat".into(),
                running: error.is_none() && (subscribed || c.stats.refused.is_empty()),
                reason,
                events_per_s: c.stats.messages as f64 / secs,
                drops: c.stats.drops + c.stats.malformed,
            }
        }
    }

    impl Drop for NtstatEvents {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    /// [`super::run`], moving each batch of events into the table and the ended list.
    fn run_and_feed(
        io: &mut Kctl,
        client: &Arc<Mutex<Client>>,
        out: &Arc<Mutex<Out>>,
        table: &Arc<FlowTable>,
        stop: &Arc<AtomicBool>,
        tps: u64,
    ) -> Result<(), String> {
        // A feeder beside the loop: events are moved out every 100 ms.
        let feeding = Arc::new(AtomicBool::new(false));
        let feeder = {
            let (client, out, table, stop, feeding) = (
                client.clone(),
                out.clone(),
                table.clone(),
                stop.clone(),
                feeding.clone(),
            );
            std::thread::spawn(move || {
                let mut last_prune = Instant::now();
                while !stop.load(Ordering::Relaxed) && !feeding.load(Ordering::Relaxed) {
                    feed(&client, &out, &table);
                    if last_prune.elapsed() > Duration::from_secs(60) {
                        last_prune = Instant::now();
                        // Closed flows stay known a while for late packets and TIME_WAIT.
                        table.prune(crate::env::wall_clock() - 600.0);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                feed(&client, &out, &table);
            })
        };
        let r = super::run(io, client, stop, POLL_EVERY, &|| time_ref(tps));
        feeding.store(true, Ordering::Relaxed);
        let _ = feeder.join();
        r
    }

    fn feed(client: &Mutex<Client>, out: &Mutex<Out>, table: &FlowTable) {
        let events = client
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take_events();
        if events.is_empty() {
            return;
        }
        let mut ended = Vec::new();
        for e in events {
            match e {
                Event::Opened(f) => {
                    let (tuple, owner) = super::table_entry(&f);
                    table.insert(tuple, owner);
                }
                Event::Closed(f) => {
                    let (tuple, owner) = super::table_entry(&f);
                    table.insert(tuple, owner);
                    ended.push(super::kernel_flow(&f));
                }
            }
        }
        out.lock()
            .unwrap_or_else(|p| p.into_inner())
            .ended
            .extend(ended);
    }
}

#[cfg(test)]
mod tests {
    use super::super::ntstat_wire::fixtures::{self, *};
    use super::*;
    use std::os::unix::net::UnixDatagram;
    use std::sync::Arc;

    const TPS: u64 = 24_000_000;

    fn time() -> TimeRef {
        TimeRef {
            ticks: TPS * 200,
            wall: 1_700_000_200.0,
            ticks_per_second: TPS,
        }
    }

    #[test]
    fn mach_continuous_time_converts_against_its_reference() {
        let r = time();
        assert_eq!(r.wall_of(TPS * 100), 1_700_000_100.0);
        assert_eq!(r.wall_of(TPS * 200 + TPS / 2), 1_700_000_200.5);
        // The Rosetta pitfall: the 1/1 timebase an x86_64 process sees on Apple silicon would
        // make 100 s of native ticks look like 2.4 s.
        let rosetta = TimeRef {
            ticks_per_second: crate::platform::parse::timebase_ticks_per_second(1, 1),
            ..r
        };
        assert!((rosetta.wall_of(TPS * 100) - (1_700_000_200.0 - 2.4)).abs() < 1e-6);
    }

    /// The kernel's side of the socket pair.
    struct Kernel {
        sock: UnixDatagram,
    }

    impl Kernel {
        fn recv(&self) -> Vec<u8> {
            let mut b = vec![0u8; 4096];
            let n = self.sock.recv(&mut b).expect("a request from the client");
            b.truncate(n);
            b
        }
        fn send(&self, parts: &[Vec<u8>]) {
            self.sock.send(&parts.concat()).unwrap();
        }
        /// The next request: (context, type, flags, srcref or provider).
        fn request(&self) -> (u64, u32, u16, u64) {
            let r = self.recv();
            let kind = u32::from_ne_bytes(r[8..12].try_into().unwrap());
            let tail = if kind == wire::MSG_ADD_ALL_SRCS {
                u32::from_ne_bytes(r[32..36].try_into().unwrap()) as u64
            } else {
                u64::from_ne_bytes(r[16..24].try_into().unwrap())
            };
            (
                u64::from_ne_bytes(r[0..8].try_into().unwrap()),
                kind,
                u16::from_ne_bytes(r[14..16].try_into().unwrap()),
                tail,
            )
        }
    }

    fn wait_for<T>(client: &Mutex<Client>, mut f: impl FnMut(&mut Client) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(v) = f(&mut client.lock().unwrap()) {
                return v;
            }
            assert!(Instant::now() < deadline, "client never got there");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn flow(pid: u32, lport: u16, state: u32) -> Flow {
        Flow {
            pid,
            epid: pid,
            local: ("127.0.0.1".parse().unwrap(), lport),
            remote: ("127.0.0.1".parse().unwrap(), 8443),
            state,
            ..fixtures::sample_flow()
        }
    }

    #[test]
    fn the_read_loop_follows_a_kernel_over_a_socket_pair() {
        let layout = &wire::LAYOUT_MACOS_14_15;
        let (ours, theirs) = UnixDatagram::pair().unwrap();
        ours.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        theirs
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let kernel = Kernel { sock: theirs };
        let identified = Arc::new(Mutex::new(Vec::new()));
        let seen = identified.clone();
        let client = Arc::new(Mutex::new(Client::new(
            layout,
            time(),
            Box::new(move |pid| {
                seen.lock().unwrap().push(pid);
                Some((Some(format!("/usr/bin/p{pid}")), Some(1_699_999_000.0)))
            }),
        )));
        let stop = Arc::new(AtomicBool::new(false));
        let loop_thread = {
            let (client, stop) = (client.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut io = ours;
                run(&mut io, &client, &stop, Duration::from_secs(3600), &time)
            })
        };

        // 1. One ADD_ALL_SRCS per provider; TCP userland refused (as a MAC policy might).
        let mut providers = Vec::new();
        for _ in Provider::ALL {
            let (ctx, kind, _, provider) = kernel.request();
            assert_eq!(kind, wire::MSG_ADD_ALL_SRCS);
            providers.push(provider as u32);
            if provider == Provider::TcpUserland as u64 {
                kernel.send(&[error(ctx, 1)]);
            } else {
                kernel.send(&[success(ctx, 0)]);
            }
        }
        assert_eq!(providers, [2, 3, 4, 5, 8]);

        // 2. The first poll, answered in two fragments: the client must ask again with the
        // same context when the SUCCESS says CONTINUATION.
        let (poll_ctx, kind, flags, srcref) = kernel.request();
        assert_eq!(
            (kind, flags, srcref),
            (wire::MSG_GET_UPDATE, wire::FLAG_CONTINUATION, u64::MAX)
        );
        let c1 = Counts {
            rx_bytes: 10,
            tx_bytes: 20,
            ..Counts::default()
        };
        let d1 = descriptor_bytes(layout, Provider::TcpKernel, &flow(101, 40001, 4));
        kernel.send(&[
            src_update(poll_ctx, 1, Provider::TcpKernel, &c1, &d1, 0),
            success(poll_ctx, wire::FLAG_CONTINUATION),
        ]);
        let (again, kind, flags, _) = kernel.request();
        assert_eq!(
            (again, kind, flags),
            (poll_ctx, wire::MSG_GET_UPDATE, wire::FLAG_CONTINUATION)
        );
        let d2 = descriptor_bytes(layout, Provider::UdpKernel, &flow(102, 40002, 0));
        kernel.send(&[
            src_update(poll_ctx, 2, Provider::UdpKernel, &Counts::default(), &d2, 0),
            success(poll_ctx, 0),
        ]);
        wait_for(&client, |c| {
            (c.open_flows().len() == 2 && c.polling.is_none()).then_some(())
        });

        // 3. A new connection: added → the client asks for its description → counts.
        kernel.send(&[src_added(3, Provider::TcpKernel)]);
        let (desc_ctx, kind, _, srcref) = kernel.request();
        assert_eq!((kind, srcref), (wire::MSG_GET_SRC_DESC, 3));
        let mut f3 = flow(4242, 40003, 4);
        f3.start_timestamp = TPS * 150;
        kernel.send(&[src_desc(
            desc_ctx,
            3,
            Provider::TcpKernel,
            &descriptor_bytes(layout, Provider::TcpKernel, &f3),
            0,
        )]);
        kernel.send(&[src_counts(
            0,
            3,
            &Counts {
                tx_bytes: 100,
                ..Counts::default()
            },
            0,
        )]);

        // 4. It closes: the goodbye update with the final counters and the removal, in one
        // aggregated datagram; and a flow whose final counters the kernel dropped.
        let last = Counts {
            rx_bytes: 512,
            tx_bytes: 250,
            tx_packets: 3,
            ..Counts::default()
        };
        kernel.send(&[
            src_update(
                0,
                3,
                Provider::TcpKernel,
                &last,
                &descriptor_bytes(layout, Provider::TcpKernel, &flow(4242, 40003, 10)),
                wire::FLAG_CLOSING,
            ),
            src_removed(3, 0),
            src_removed(2, wire::FLAG_CLOSED_AFTER_DROP),
        ]);

        // 5. Garbage between good messages: one counted error, nothing else lost.
        let mut bad = src_added(9, Provider::UdpUserland);
        bad.extend_from_slice(&[0xff; 7]);
        kernel.send(&[bad]);
        let (_, kind, _, srcref) = kernel.request();
        assert_eq!(
            (kind, srcref),
            (wire::MSG_GET_SRC_DESC, 9),
            "the good message before the garbage was handled"
        );
        let mut wrong_size = src_desc(0, 9, Provider::UdpUserland, &[0u8; 272], 0);
        wrong_size.extend(src_removed(1, 0));
        kernel.send(&[wrong_size]);

        let events = wait_for(&client, |c| {
            let closed = c
                .events
                .iter()
                .filter(|e| matches!(e, Event::Closed(_)))
                .count();
            (closed == 3).then(|| c.take_events())
        });
        stop.store(true, Ordering::Relaxed);
        loop_thread.join().unwrap().unwrap();

        let opened: Vec<u64> = events
            .iter()
            .filter_map(|e| match e {
                Event::Opened(f) => Some(f.srcref),
                _ => None,
            })
            .collect();
        assert_eq!(opened, [1, 2, 3]);
        let closed: HashMap<u64, &NtstatFlow> = events
            .iter()
            .filter_map(|e| match e {
                Event::Closed(f) => Some((f.srcref, f)),
                _ => None,
            })
            .collect();
        let f = closed[&3];
        assert_eq!(
            (f.pid, f.process_name.as_str(), f.protocol),
            (4242, "curl", "tcp")
        );
        assert_eq!((f.local_port, f.remote_port), (40003, 8443));
        assert_eq!(
            (f.counts.tx_bytes, f.counts.rx_bytes),
            (250, 512),
            "final counters at close"
        );
        assert_eq!(f.state, Some(10), "the goodbye's state");
        assert_eq!(
            f.start, 1_700_000_150.0,
            "Mach continuous start time on the wall clock"
        );
        assert_eq!(f.end, Some(1_700_000_200.0));
        assert_eq!(f.path.as_deref(), Some("/usr/bin/p4242"));
        assert_eq!(
            (f.upid, f.uid, f.uuid),
            (fixtures::sample_flow().upid, Some(501), [7; 16])
        );
        assert_eq!(closed[&2].protocol, "udp");
        assert_eq!(closed[&1].counts, c1);
        assert!(identified.lock().unwrap().contains(&4242));

        let c = client.lock().unwrap();
        assert_eq!(c.stats.subscribed.len(), 4);
        assert_eq!(c.stats.refused, [(Provider::TcpUserland, 1)]);
        assert_eq!(c.stats.drops, 1, "the removal after a dropped goodbye");
        assert_eq!(
            c.stats.malformed, 2,
            "the stray bytes and the wrong-size descriptor"
        );
        assert!(
            c.stats
                .last_error
                .as_deref()
                .unwrap()
                .contains("descriptor of 272 bytes"),
            "{:?}",
            c.stats.last_error
        );
        assert!(c.open_flows().is_empty(), "source 9 was never described");
    }

    #[test]
    fn listeners_and_unconnected_sockets_are_no_flows() {
        let layout = &wire::LAYOUT_MACOS_12_13;
        let mut c = Client::new(layout, time(), Box::new(|_| None));
        let mut listener = fixtures::sample_flow();
        listener.remote = ("0.0.0.0".parse().unwrap(), 0);
        listener.state = 1;
        let d = descriptor_bytes(layout, Provider::TcpKernel, &listener);
        c.handle(
            &[
                src_added(1, Provider::TcpKernel),
                src_desc(0, 1, Provider::TcpKernel, &d, 0),
            ]
            .concat(),
        );
        assert!(c.open_flows().is_empty());
        c.handle(&src_removed(1, 0));
        assert!(c.take_events().is_empty());
        assert_eq!((c.stats.drops, c.stats.malformed), (0, 0));
    }

    #[test]
    fn a_delegated_socket_s_effective_process_is_identified_while_the_flow_is_new() {
        let layout = &wire::LAYOUT_MACOS_14_15;
        let mut c = Client::new(
            layout,
            time(),
            Box::new(|pid| Some((Some(format!("/bin/p{pid}")), Some(1_699_999_000.0)))),
        );
        let delegated = Flow {
            epid: 4242,
            ..flow(88, 40100, 4)
        };
        let d = descriptor_bytes(layout, Provider::TcpKernel, &delegated);
        c.handle(
            &[
                src_added(1, Provider::TcpKernel),
                src_desc(0, 1, Provider::TcpKernel, &d, 0),
            ]
            .concat(),
        );
        let Some(Event::Opened(f)) = c.take_events().pop() else {
            panic!("opened")
        };
        assert_eq!(
            (f.path.as_deref(), f.effective_path.as_deref()),
            (Some("/bin/p88"), Some("/bin/p4242"))
        );
        assert_eq!(
            (kernel_flow(&f).pid, kernel_flow(&f).acting_pid),
            (4242, Some(88))
        );
    }

    #[test]
    fn a_kernel_refusing_every_provider_leaves_the_client_unsubscribed() {
        let mut c = Client::new(&wire::LAYOUT_MACOS_12_13, time(), Box::new(|_| None));
        let reqs = c.subscribe();
        assert_eq!(reqs.len(), 5);
        for r in &reqs {
            let ctx = u64::from_ne_bytes(r[0..8].try_into().unwrap());
            c.handle(&error(ctx, 1));
        }
        assert!(!c.subscribed());
        assert_eq!(c.stats.refused.len(), 5);
        assert!(c.poll().is_some());
        assert!(c.poll().is_none(), "one poll at a time");
    }

    fn closed_flow() -> NtstatFlow {
        NtstatFlow {
            srcref: 3,
            provider: Provider::TcpKernel,
            protocol: "tcp",
            pid: 88,
            epid: 4242,
            upid: 1,
            eupid: 2,
            process_name: "nsurlsessiond".into(),
            uuid: [1; 16],
            euuid: [2; 16],
            uid: Some(501),
            local: "::ffff:127.0.0.1".parse().unwrap(),
            local_port: 50000,
            remote: "127.0.0.1".parse().unwrap(),
            remote_port: 8443,
            state: Some(4),
            counts: Counts {
                tx_bytes: 250,
                rx_bytes: 512,
                ..Counts::default()
            },
            start: 100.0,
            end: Some(101.0),
            path: Some("/usr/libexec/nsurlsessiond".into()),
            process_start: Some(50.0),
            effective_path: None,
            effective_start: None,
        }
    }

    #[test]
    fn a_delegated_flow_is_the_effective_process_s_when_it_predates_the_flow() {
        let mut f = closed_flow();
        (f.effective_path, f.effective_start) =
            (Some("/Applications/Up.app/Up".into()), Some(90.0));
        let k = kernel_flow(&f);
        assert_eq!((k.pid, k.acting_pid), (4242, Some(88)));
        let owner = k.owner.unwrap();
        assert_eq!(
            (
                owner.pid,
                owner.start_time,
                owner.path.as_deref(),
                owner.name,
                owner.uid
            ),
            (4242, 90.0, Some("/Applications/Up.app/Up"), None, None),
            "the descriptor's name and uid are nsurlsessiond's, not the app's"
        );
        let (_, o) = table_entry(&f);
        assert_eq!(
            (o.pid, o.path.as_deref()),
            (4242, Some("/Applications/Up.app/Up"))
        );
        // A process under that pid that started after the flow is not the one it acted for.
        f.effective_start = Some(100.5);
        let k = kernel_flow(&f);
        assert_eq!((k.pid, k.acting_pid), (88, None));
        assert_eq!(table_entry(&f).1.pid, 88);
    }

    #[test]
    fn flows_become_the_facts_every_kernel_collector_emits() {
        let f = closed_flow();
        let k = kernel_flow(&f);
        assert_eq!((k.protocol, k.source, k.pid), ("tcp", "ntstat", 88));
        assert_eq!(
            (k.bytes_sent, k.bytes_received, k.end),
            (Some(250), Some(512), Some(101.0))
        );
        let owner = k.owner.unwrap();
        assert_eq!(
            (owner.start_time, owner.name.as_deref()),
            (50.0, Some("nsurlsessiond"))
        );
        let (tuple, o) = table_entry(&f);
        assert_eq!((tuple.0, o.start, o.end), (6, 100.0, Some(101.0)));
        let s = socket_sample(&f);
        assert_eq!(
            (s.pid, s.delegate_pid, s.state),
            (Some(88), Some(4242), Some("ESTABLISHED"))
        );
        let mut quic = f.clone();
        (quic.provider, quic.protocol) = (Provider::QuicUserland, "udp");
        assert_eq!(
            (socket_sample(&quic).state, table_entry(&quic).0 .0),
            (None, 17)
        );
    }

    #[test]
    fn the_merge_prefers_ntstat_and_keeps_what_only_the_poll_has() {
        let f = closed_flow();
        let ours = socket_sample(&f);
        // pcblist saw the same connection (its IPv4 spelling), and one ntstat does not follow.
        let mut polled = ours.clone();
        (
            polled.local,
            polled.pid,
            polled.delegate_pid,
            polled.socket_id,
        ) = ("127.0.0.1".parse().unwrap(), Some(7), None, 991);
        polled.bytes_sent = Some(1);
        let mut other = polled.clone();
        other.local_port = 50001;
        let mut only_ntstat = ours.clone();
        only_ntstat.remote_port = 9999;
        let merged = merge(vec![polled, other.clone()], vec![ours, only_ntstat.clone()]);
        assert_eq!(merged.len(), 3);
        let same = merged
            .iter()
            .find(|s| s.local_port == 50000 && s.remote_port == 8443)
            .unwrap();
        assert_eq!(
            (same.pid, same.bytes_sent, same.socket_id),
            (Some(88), Some(250), 991)
        );
        assert_eq!(
            same.local,
            "127.0.0.1".parse::<IpAddr>().unwrap(),
            "the poller's spelling"
        );
        assert!(merged.contains(&other));
        assert!(merged.contains(&only_ntstat));
    }

    #[test]
    fn the_fuzz_seed_is_what_the_fixtures_build() {
        // fuzz/make_seeds.py writes these messages from the same header offsets: both builders
        // agree, or one of them is wrong.
        let seed = include_bytes!("../../../../fuzz/corpus/ntstat/aggregated_tcp_macos14.bin");
        let mut c = Client::new(&wire::LAYOUT_MACOS_14_15, time(), Box::new(|_| None));
        let replies = c.handle(seed);
        assert_eq!(replies.len(), 1, "a GET_SRC_DESC for the added source");
        assert_eq!(c.stats.malformed, 0, "{:?}", c.stats.last_error);
        let events = c.take_events();
        let Some(Event::Closed(f)) = events.last() else {
            panic!("{events:?}")
        };
        let want = descriptor_bytes(
            &wire::LAYOUT_MACOS_14_15,
            Provider::TcpKernel,
            &Flow {
                pid: 4242,
                epid: 4242,
                local: ("127.0.0.1".parse().unwrap(), 40003),
                remote: ("127.0.0.1".parse().unwrap(), 8443),
                ifnet_properties: 2,
                ..fixtures::sample_flow()
            },
        );
        // After the 32-byte SRC_ADDED and the 40-byte description header.
        assert_eq!(&seed[72..72 + 344], &want[..], "descriptor bytes");
        assert_eq!(
            (f.pid, f.uid, f.counts.tx_bytes, f.counts.rx_bytes),
            (4242, Some(501), 250, 512)
        );
        assert_eq!(f.start, 1_700_000_100.0);
    }
}
