//! libpcap for the capture engine (`crate::capture`): Linux AF_PACKET (device `any`), macOS BPF
//! through the `pktap` pseudo-interface, which prefixes each packet with the pid and name of
//! the process that sent or received it (`want_pktap` must be set before activation, else the
//! kernel hides the pktap link type). Also the Linux attribution of flows to processes through
//! the socket table, until a kernel-event flow table replaces it.
//!
//! The kernel filter keeps what the flow table needs — SYN/FIN/RST, segments that carry
//! payload, UDP — and drops pure ACKs, half of a bulk transfer's packets. It cannot pick a
//! flow's first payload (classic BPF keeps no state): snaplen bounds the copy, the flow table
//! drops the rest.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::capture::frame::{LinkType, Transport};
use crate::capture::pktap::PktapLayout;
use crate::capture::{CaptureConfig, FlowOwner, FlowOwners, Lookup};
use crate::env::wall_clock;
use crate::platform::SocketCollector;

/// SYN/FIN/RST, any TCP segment with payload (IPv4; IPv6 without extension headers), and UDP.
const FILTER: &str = "(tcp[tcpflags] & (tcp-syn|tcp-fin|tcp-rst) != 0) \
    or (ip and tcp and (ip[2:2] - ((ip[0] & 0xf) << 2) - ((tcp[12] & 0xf0) >> 2)) != 0) \
    or (ip6 and tcp and (ip6[4:2] - ((ip6[52] & 0xf0) >> 2)) != 0) \
    or (ip6 and ip6[6] != 6) \
    or udp";

pub fn default_device() -> &'static str {
    if cfg!(target_os = "macos") {
        "pktap,all"
    } else {
        "any"
    }
}

/// The pktap header layout of the running macOS (never used elsewhere).
fn pktap_layout() -> PktapLayout {
    #[cfg(target_os = "macos")]
    {
        let mut buf = [0u8; 64];
        let mut len = buf.len();
        // SAFETY: the name is NUL-terminated and the buffer length is passed in and out.
        let rc = unsafe {
            libc::sysctlbyname(
                c"kern.osproductversion".as_ptr(),
                buf.as_mut_ptr().cast(),
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        if rc == 0 {
            let v = String::from_utf8_lossy(&buf[..len.min(buf.len())]);
            return PktapLayout::for_macos_version(v.trim_end_matches('\0'));
        }
        PktapLayout::From152
    }
    #[cfg(not(target_os = "macos"))]
    {
        PktapLayout::From152
    }
}

/// An open capture.
pub struct PcapSource {
    cap: pcap::Capture<pcap::Active>,
    pub link: LinkType,
    pub device: String,
}

/// Opens the configured device with the snaplen, buffer and filter above.
pub fn open(config: &CaptureConfig) -> Result<PcapSource, String> {
    let device = config
        .device
        .clone()
        .unwrap_or_else(|| default_device().to_string());
    let inactive = pcap::Capture::from_device(device.as_str())
        .map_err(|e| format!("{device}: {e}"))?
        .snaplen(config.snaplen as i32)
        .promisc(false)
        .immediate_mode(false)
        .buffer_size((config.buffer_mib as i32).saturating_mul(1 << 20))
        .timeout(200);
    #[cfg(target_os = "macos")]
    let inactive = inactive.want_pktap(true);
    // Non-blocking, with poll(2) for the wait: Linux TPACKET_V3 starts the read timeout only
    // at the first packet, so a blocking read on an idle device would never return.
    let mut cap = inactive
        .open()
        .and_then(|c| c.setnonblock())
        .map_err(|e| format!("{device}: {e}"))?;
    cap.filter(FILTER, true)
        .map_err(|e| format!("{device}: filter: {e}"))?;
    let dlt = cap.get_datalink().0;
    let link = LinkType::from_dlt(dlt, pktap_layout())
        .ok_or_else(|| format!("{device}: link type {dlt} is not one launchwatch reads"))?;
    Ok(PcapSource { cap, link, device })
}

impl PcapSource {
    /// Hands packets to `f` (wall-clock time, frame) for up to `max_wait`; returns how many.
    pub fn read(
        &mut self,
        max_wait: Duration,
        f: &mut dyn FnMut(f64, &[u8]),
    ) -> Result<usize, String> {
        let started = Instant::now();
        let mut n = 0usize;
        loop {
            match self.cap.next_packet() {
                Ok(p) => {
                    let ts = p.header.ts.tv_sec as f64 + p.header.ts.tv_usec as f64 / 1e6;
                    f(ts, p.data);
                    n += 1;
                    if n % 256 == 0 && started.elapsed() >= max_wait {
                        return Ok(n);
                    }
                }
                // Nothing buffered: wait for more, up to what is left of max_wait.
                Err(pcap::Error::TimeoutExpired) => {
                    let left = max_wait.saturating_sub(started.elapsed());
                    if left.is_zero() {
                        return Ok(n);
                    }
                    let mut pfd = libc::pollfd {
                        fd: std::os::fd::AsRawFd::as_raw_fd(&self.cap),
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd.
                    let rc =
                        unsafe { libc::poll(&mut pfd, 1, left.as_millis().max(1) as libc::c_int) };
                    if rc < 0
                        && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted
                    {
                        return Err(format!(
                            "{}: poll: {}",
                            self.device,
                            std::io::Error::last_os_error()
                        ));
                    }
                    if rc == 0 {
                        return Ok(n);
                    }
                }
                Err(e) => return Err(format!("{}: {e}", self.device)),
            }
        }
    }

    /// Packets the kernel (buffer full) or the interface dropped so far.
    pub fn drops(&mut self) -> u64 {
        self.cap
            .stats()
            .map(|s| u64::from(s.dropped) + u64::from(s.if_dropped))
            .unwrap_or(0)
    }
}

/// [`FlowOwners`] over the socket table: the sockets this host has (Linux sock_diag with owners
/// from `/proc/*/fd`; macOS pcblist), re-read at most every `min_interval` and only when a
/// lookup misses. A socket that closed before the next read is not found: short connections
/// need the kernel-event flow table.
pub struct SocketOwners {
    sockets: SocketCollector,
    exact: HashMap<(Transport, SocketAddr, SocketAddr), i64>,
    /// Unconnected UDP sockets (and wildcard binds) by local end.
    unconnected: HashMap<(Transport, SocketAddr), i64>,
    looked_at: f64,
    min_interval: f64,
    identities: HashMap<i64, FlowOwner>,
    pub refreshes: u64,
    /// Wall-clock seconds spent reading the socket table.
    pub refresh_seconds: f64,
}

impl SocketOwners {
    pub fn new(min_interval: Duration) -> SocketOwners {
        SocketOwners {
            sockets: SocketCollector::default(),
            exact: HashMap::new(),
            unconnected: HashMap::new(),
            looked_at: 0.0,
            min_interval: min_interval.as_secs_f64(),
            identities: HashMap::new(),
            refreshes: 0,
            refresh_seconds: 0.0,
        }
    }

    fn refresh(&mut self, now: f64) {
        self.looked_at = now;
        self.refreshes += 1;
        let started = Instant::now();
        let sample = self.sockets.sample();
        self.refresh_seconds += started.elapsed().as_secs_f64();
        let Ok(sample) = sample else {
            return;
        };
        self.exact.clear();
        self.unconnected.clear();
        for s in sample {
            let Some(pid) = s.pid else { continue };
            let t = if s.protocol == "udp" {
                Transport::Udp
            } else {
                Transport::Tcp
            };
            let local = SocketAddr::new(s.local, s.local_port);
            if s.remote_port == 0 || s.remote.is_unspecified() {
                // Unconnected UDP (sendto) only: a TCP listener is not the end of a flow.
                if t == Transport::Udp {
                    self.unconnected.insert((t, local), pid);
                }
            } else {
                self.exact
                    .insert((t, local, SocketAddr::new(s.remote, s.remote_port)), pid);
            }
        }
    }

    fn find(&self, t: Transport, local: SocketAddr, remote: SocketAddr) -> Option<i64> {
        let any = |ip: IpAddr| {
            if ip.is_ipv4() {
                IpAddr::from([0u8; 4])
            } else {
                IpAddr::from([0u16; 8])
            }
        };
        self.exact
            .get(&(t, local, remote))
            .or_else(|| self.unconnected.get(&(t, local)))
            .or_else(|| {
                self.unconnected
                    .get(&(t, SocketAddr::new(any(local.ip()), local.port())))
            })
            .copied()
    }
}

impl FlowOwners for SocketOwners {
    fn lookup(&mut self, t: Transport, local: SocketAddr, remote: SocketAddr, ts: f64) -> Lookup {
        if let Some(pid) = self.find(t, local, remote) {
            return Lookup::Found(self.process(pid));
        }
        if self.looked_at >= ts {
            return Lookup::NotFound;
        }
        let now = wall_clock();
        if now - self.looked_at < self.min_interval {
            return Lookup::Pending;
        }
        self.refresh(now);
        match self.find(t, local, remote) {
            Some(pid) => Lookup::Found(self.process(pid)),
            None => Lookup::NotFound,
        }
    }

    fn process(&mut self, pid: i64) -> FlowOwner {
        if let Some(o) = self.identities.get(&pid) {
            return o.clone();
        }
        let (path, start) = crate::platform::process_identity(pid).unwrap_or((None, None));
        let o = FlowOwner {
            pid,
            process_start: start,
            path,
        };
        if self.identities.len() > 4096 {
            self.identities.clear();
        }
        self.identities.insert(pid, o.clone());
        o
    }
}

/// CPU seconds this thread has used.
pub fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec out-pointer.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}
