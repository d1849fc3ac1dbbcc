//! Passive capture: the first client and first server payload of each new flow, classified,
//! and the names a flow claims — DNS answers, TLS SNI (and whether ECH hid it), HTTP Host,
//! QUIC Initial SNI — as `payload` and `dns` observations, like every other collector.
//!
//! Everything here is a pure function of bytes or plain state, tested on synthetic packets; the
//! libpcap source lives behind the platform seam (`platform::capture_pcap`). The payload bytes
//! themselves are dropped once classified unless `[capture] store_bytes` (a debug switch) says
//! otherwise.

pub mod dns;
pub mod flows;
pub mod frame;
pub mod http;
pub mod live;
pub mod pktap;
pub mod quic;
pub mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::analytics::payload::{classify, entropy};
use crate::observation::{DnsObs, Observation, PayloadObs};
use flows::{FinishedFlow, FlowLimits, FlowTable, NameCache};
use frame::{LinkType, Packet, Transport};

/// `[capture]` in the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    /// Off unless set; capture also needs root.
    pub enabled: bool,
    /// libpcap device: default `any` on Linux, `pktap,all` on macOS (every interface, with
    /// per-packet process facts).
    pub device: Option<String>,
    /// Bytes captured per packet: link + IP + TCP headers and the start of the payload (a
    /// ClientHello longer than what fits keeps its class but may lose its SNI).
    pub snaplen: u32,
    /// Kernel buffer, MiB.
    pub buffer_mib: u32,
    /// Flows tracked at once; beyond this the oldest are classified early.
    pub max_flows: usize,
    /// Seconds a flow waits for the other side's first payload.
    pub pending_seconds: f64,
    /// UDP ports whose answers are read as DNS.
    pub dns_ports: Vec<u16>,
    /// Debug only: keep the first bytes (base64) in payload rows.
    pub store_bytes: bool,
}

impl Default for CaptureConfig {
    fn default() -> CaptureConfig {
        CaptureConfig {
            enabled: false,
            device: None,
            snaplen: 2048,
            buffer_mib: 8,
            max_flows: 16384,
            pending_seconds: 5.0,
            dns_ports: vec![53, 5353],
            store_bytes: false,
        }
    }
}

impl CaptureConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(128..=65535).contains(&self.snaplen) {
            return Err("capture.snaplen must be between 128 and 65535".into());
        }
        if self.max_flows == 0 || !(self.pending_seconds > 0.0 && self.pending_seconds.is_finite())
        {
            return Err("capture.max_flows and capture.pending_seconds must be positive".into());
        }
        if !(1..=1024).contains(&self.buffer_mib) {
            return Err("capture.buffer_mib must be between 1 and 1024".into());
        }
        Ok(())
    }
}

/// What `launchwatch_status` says about capture (live figures, shared with the capture thread).
#[derive(Debug, Default)]
pub struct CaptureFigures {
    pub running: AtomicBool,
    pub reason: Mutex<Option<String>>,
    pub device: Mutex<Option<String>>,
    pub packets: AtomicU64,
    pub flows_classified: AtomicU64,
    pub dns_answers: AtomicU64,
    /// Packets the kernel dropped (buffer full) or the interface dropped.
    pub kernel_drops: AtomicU64,
    /// Flows classified early because the table was full.
    pub evicted_flows: AtomicU64,
    /// First payloads lost to a gap or snaplen.
    pub missed_payloads: AtomicU64,
    pub malformed_packets: AtomicU64,
    /// CPU seconds the capture thread used (where the OS tells).
    pub cpu_seconds_milli: AtomicU64,
}

/// A snapshot of [`CaptureFigures`] as one JSON object (a `sources` entry).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaptureStatus {
    pub running: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    pub packets: u64,
    pub flows_classified: u64,
    pub dns_answers: u64,
    pub drops: u64,
    pub evicted_flows: u64,
    pub missed_payloads: u64,
    pub malformed_packets: u64,
    pub cpu_seconds: f64,
}

impl CaptureFigures {
    pub fn not_running(&self, why: &str) {
        self.running.store(false, Ordering::Relaxed);
        *self.reason.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.to_string());
    }

    pub fn status(&self) -> CaptureStatus {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CaptureStatus {
            running: self.running.load(Ordering::Relaxed),
            reason: self
                .reason
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            device: self
                .device
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            packets: get(&self.packets),
            flows_classified: get(&self.flows_classified),
            dns_answers: get(&self.dns_answers),
            drops: get(&self.kernel_drops),
            evicted_flows: get(&self.evicted_flows),
            missed_payloads: get(&self.missed_payloads),
            malformed_packets: get(&self.malformed_packets),
            cpu_seconds: get(&self.cpu_seconds_milli) as f64 / 1000.0,
        }
    }
}

/// The process behind one end of a flow.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowOwner {
    pub pid: i64,
    pub process_start: Option<f64>,
    pub path: Option<String>,
}

/// The answer of a [`FlowOwners`] lookup.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    Found(FlowOwner),
    /// No local socket had these endpoints when the source last looked (after `ts`).
    NotFound,
    /// The source has not looked since `ts`; ask again on a later tick.
    Pending,
}

/// Who owned a flow's local end: the seam for packet attribution where packets carry no pid
/// (Linux). Implemented today over the socket table (sock_diag inode → `/proc/*/fd`); a
/// kernel-event flow table (4-tuple + time → pid) implements the same trait.
pub trait FlowOwners: Send {
    /// The process whose socket had local address `local` and peer `remote` at time `ts`.
    fn lookup(
        &mut self,
        transport: Transport,
        local: SocketAddr,
        remote: SocketAddr,
        ts: f64,
    ) -> Lookup;

    /// Path and start time of a pid the packets named (pktap).
    fn process(&mut self, pid: i64) -> FlowOwner {
        FlowOwner {
            pid,
            process_start: None,
            path: None,
        }
    }
}

/// Kernel events first, then a fallback: the kernel-event flow table (Linux tracepoints) names
/// the process of a connection however short, even after it closed; the fallback (the socket
/// table) covers what the events do not see (UDP, accepted connections, no root).
pub struct KernelFirst<O: FlowOwners> {
    pub table: Option<std::sync::Arc<crate::facts::FlowTable>>,
    pub fallback: O,
}

impl<O: FlowOwners> FlowOwners for KernelFirst<O> {
    fn lookup(
        &mut self,
        transport: Transport,
        local: SocketAddr,
        remote: SocketAddr,
        ts: f64,
    ) -> Lookup {
        if let (Some(table), Transport::Tcp) = (&self.table, transport) {
            let tuple = (6u8, local.ip(), local.port(), remote.ip(), remote.port());
            if let Some(o) = table.lookup_directed(tuple, ts) {
                return Lookup::Found(FlowOwner {
                    pid: o.pid,
                    process_start: o.process_start,
                    path: o.path,
                });
            }
        }
        self.fallback.lookup(transport, local, remote, ts)
    }

    fn process(&mut self, pid: i64) -> FlowOwner {
        self.fallback.process(pid)
    }
}

/// For hosts and tests with no way to attribute: every lookup is `NotFound`.
pub struct NoOwners;

impl FlowOwners for NoOwners {
    fn lookup(&mut self, _: Transport, _: SocketAddr, _: SocketAddr, _: f64) -> Lookup {
        Lookup::NotFound
    }
}

/// A finished flow waits at most this long for its owner lookup.
const OWNER_WAIT_SECONDS: f64 = 3.0;

/// Packets in, observations out.
pub struct Engine<O: FlowOwners> {
    pub flows: FlowTable,
    names: NameCache,
    pub owners: O,
    dns_ports: Vec<u16>,
    store_bytes: bool,
    link: LinkType,
    finished: Vec<FinishedFlow>,
    waiting: Vec<(FinishedFlow, f64)>,
    /// Owners looked up when flows started (sockets still exist then), and flows whose lookup
    /// is pending.
    early: HashMap<flows::FlowKey, Option<(FlowOwner, bool)>>,
    unattributed: Vec<(flows::FlowKey, f64)>,
    out: Vec<Observation>,
    pub figures: std::sync::Arc<CaptureFigures>,
}

impl<O: FlowOwners> Engine<O> {
    pub fn new(
        config: &CaptureConfig,
        link: LinkType,
        owners: O,
        figures: std::sync::Arc<CaptureFigures>,
    ) -> Engine<O> {
        Engine {
            flows: FlowTable::new(FlowLimits {
                max_flows: config.max_flows,
                pending_seconds: config.pending_seconds,
                ..FlowLimits::default()
            }),
            names: NameCache::new(65536),
            owners,
            dns_ports: config.dns_ports.clone(),
            store_bytes: config.store_bytes,
            link,
            finished: Vec::new(),
            waiting: Vec::new(),
            early: HashMap::new(),
            unattributed: Vec::new(),
            out: Vec::new(),
            figures,
        }
    }

    /// One captured frame at wall-clock time `ts`.
    pub fn frame(&mut self, ts: f64, frame: &[u8]) {
        self.figures.packets.fetch_add(1, Ordering::Relaxed);
        match frame::parse(self.link, frame) {
            Ok(p) => self.packet(ts, &p),
            Err(frame::Skip::Malformed(_)) => {
                self.figures
                    .malformed_packets
                    .fetch_add(1, Ordering::Relaxed);
            }
            Err(frame::Skip::NotTcpUdp) => {}
        }
    }

    pub fn packet(&mut self, ts: f64, p: &Packet<'_>) {
        if p.transport == Transport::Udp && self.dns_ports.contains(&p.sport) && !p.truncated() {
            self.dns_answer(ts, p.payload);
        }
        self.flows.packet(ts, p, &mut self.finished);
        if !self.flows.started.is_empty() {
            let mut started = std::mem::take(&mut self.flows.started);
            self.unattributed.append(&mut started);
            self.attribute(ts);
        }
        if !self.finished.is_empty() {
            self.settle(ts);
        }
    }

    fn dns_answer(&mut self, ts: f64, payload: &[u8]) {
        let Ok(msg) = dns::parse(payload) else {
            return;
        };
        for r in dns::resolutions(&msg) {
            self.names.insert(r.address, &r.name, ts);
            self.figures.dns_answers.fetch_add(1, Ordering::Relaxed);
            self.out.push(Observation::Dns(DnsObs {
                ts,
                name: r.name,
                address: r.address.to_string(),
                ttl: Some(i64::from(r.ttl)),
            }));
        }
    }

    /// Looks up the owners of flows that started, while their sockets exist.
    fn attribute(&mut self, now: f64) {
        if self.early.len() > 65536 {
            self.early.clear();
        }
        let pending = std::mem::take(&mut self.unattributed);
        for (key, ts) in pending {
            match self.lookup(key, ts) {
                Some(found) => {
                    self.early.insert(key, found);
                }
                None if now - ts < OWNER_WAIT_SECONDS => self.unattributed.push((key, ts)),
                None => {}
            }
        }
    }

    /// `None` while pending; `Some(None)` when no local socket had the flow.
    #[allow(clippy::option_option)]
    fn lookup(&mut self, k: flows::FlowKey, ts: f64) -> Option<Option<(FlowOwner, bool)>> {
        match self.owners.lookup(k.transport, k.client, k.server, ts) {
            Lookup::Found(o) => Some(Some((o, true))),
            Lookup::Pending => None,
            Lookup::NotFound => match self.owners.lookup(k.transport, k.server, k.client, ts) {
                Lookup::Found(o) => Some(Some((o, false))),
                Lookup::Pending => None,
                Lookup::NotFound => Some(None),
            },
        }
    }

    /// Timeouts: flows silent long enough are classified, owner lookups retried.
    pub fn tick(&mut self, now: f64) {
        if !self.unattributed.is_empty() {
            self.attribute(now);
        }
        self.flows.expire(now, &mut self.finished);
        self.settle(now);
        let c = self.flows.counters;
        self.figures
            .evicted_flows
            .store(c.evicted, Ordering::Relaxed);
        self.figures
            .missed_payloads
            .store(c.missed_payloads, Ordering::Relaxed);
    }

    /// Observations ready to store.
    pub fn drain(&mut self) -> Vec<Observation> {
        std::mem::take(&mut self.out)
    }

    /// Classifies finished flows whose owner is known (or given up on).
    fn settle(&mut self, now: f64) {
        let mut ready: Vec<(FinishedFlow, f64)> =
            self.finished.drain(..).map(|f| (f, now)).collect();
        ready.append(&mut self.waiting);
        for (f, since) in ready {
            match self.owner_of(&f) {
                Some(owner) => self.emit(f, owner),
                None if now - since >= OWNER_WAIT_SECONDS => self.emit(f, None),
                None => self.waiting.push((f, since)),
            }
        }
    }

    /// `None` while the lookup is pending; `Some(None)` when nobody local owned it.
    #[allow(clippy::option_option)]
    fn owner_of(&mut self, f: &FinishedFlow) -> Option<Option<(FlowOwner, bool)>> {
        if let Some((pid, _, _)) = &f.client_process {
            return Some(Some((self.owners.process(i64::from(*pid)), true)));
        }
        if let Some((pid, _, _)) = &f.server_process {
            return Some(Some((self.owners.process(i64::from(*pid)), false)));
        }
        match self.early.get(&f.key) {
            Some(Some(found)) => return Some(Some(found.clone())),
            // Looked up when it started and not found: a socket that is gone now won't be.
            Some(None) => return Some(None),
            None => {}
        }
        // Still being looked up since its start: wait for that.
        if self.unattributed.iter().any(|(k, _)| *k == f.key) {
            return None;
        }
        self.lookup(f.key, f.start)
    }

    fn emit(&mut self, f: FinishedFlow, owner: Option<(FlowOwner, bool)>) {
        let k = f.key;
        self.early.remove(&k);
        let udp = k.transport == Transport::Udp;
        let classified = |bytes: &Option<Vec<u8>>, port: u16| {
            bytes.as_ref().map(|b| {
                let b = &b[..b.len().min(256)];
                (
                    classify(b, udp, port).name().to_string(),
                    entropy(b),
                    b.len() as i64,
                    b.to_vec(),
                )
            })
        };
        let client = classified(&f.client, k.server.port());
        let server = classified(&f.server, k.server.port());
        let (mut sni, mut ech, mut http_host) = (None, None, None);
        if let Some(c) = &f.client {
            if let Ok(h) = tls::client_hello_from_records(c) {
                sni = h.sni;
                ech = Some(h.ech);
            }
            http_host = http::request_host(c);
        }
        if let Some(q) = &f.quic {
            if let Ok(h) = q.client_hello() {
                sni = h.sni;
                ech = Some(h.ech);
            }
        }
        // Which end is this host's: the owner's; unknown → treat the server as remote.
        let (local, remote, direction) = match &owner {
            Some((_, false)) => (k.server, k.client, Some("in")),
            Some((_, true)) => (k.client, k.server, Some("out")),
            None => (k.client, k.server, None),
        };
        let resolved_name = self.names.name(&k.server.ip(), f.start).map(str::to_string);
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let (owner, _) = owner.unzip();
        self.figures
            .flows_classified
            .fetch_add(1, Ordering::Relaxed);
        self.out.push(Observation::Payload(PayloadObs {
            ts: f.ts,
            pid: owner.as_ref().map(|o| o.pid),
            path: owner.as_ref().and_then(|o| o.path.clone()),
            process_start: owner.as_ref().and_then(|o| o.process_start),
            protocol: k.transport.name().to_string(),
            local_address: Some(local.ip().to_string()),
            local_port: Some(local.port()),
            remote_address: remote.ip().to_string(),
            remote_port: remote.port(),
            direction: direction.map(str::to_string),
            first_bytes: client
                .as_ref()
                .filter(|_| self.store_bytes)
                .map(|c| b64(&c.3)),
            payload_class: client.as_ref().map(|c| c.0.clone()),
            entropy: client.as_ref().map(|c| c.1),
            bytes_seen: client.as_ref().map(|c| c.2),
            server_first_bytes: server
                .as_ref()
                .filter(|_| self.store_bytes)
                .map(|s| b64(&s.3)),
            server_payload_class: server.as_ref().map(|s| s.0.clone()),
            server_entropy: server.as_ref().map(|s| s.1),
            server_bytes_seen: server.as_ref().map(|s| s.2),
            sni,
            ech: ech.map(i64::from),
            http_host,
            resolved_name,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::dns::{build_response, RData};
    use crate::capture::frame::build::{ethernet, ip_packet};
    use crate::capture::frame::{TCP_ACK, TCP_SYN};
    use crate::capture::tls::{build_client_hello, record};

    struct Table(Vec<((SocketAddr, SocketAddr), FlowOwner)>, u32);

    impl FlowOwners for Table {
        fn lookup(
            &mut self,
            _: Transport,
            local: SocketAddr,
            remote: SocketAddr,
            _: f64,
        ) -> Lookup {
            // The first call for a flow is pending, as a source that has not looked yet says.
            self.1 += 1;
            if self.1 == 1 {
                return Lookup::Pending;
            }
            self.0
                .iter()
                .find(|(k, _)| *k == (local, remote))
                .map(|(_, o)| Lookup::Found(o.clone()))
                .unwrap_or(Lookup::NotFound)
        }
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn feed<O: FlowOwners>(
        e: &mut Engine<O>,
        ts: f64,
        from: &str,
        to: &str,
        tcp: Option<(u8, u32)>,
        payload: &[u8],
    ) {
        let (f, t) = (sa(from), sa(to));
        e.frame(
            ts,
            &ethernet(&ip_packet(f.ip(), f.port(), t.ip(), t.port(), tcp, payload)),
        );
    }

    #[test]
    fn a_resolved_name_sni_and_owner_end_up_on_one_row() {
        let owner = FlowOwner {
            pid: 4242,
            process_start: Some(10.0),
            path: Some("/usr/bin/agent".into()),
        };
        let owners = Table(
            vec![((sa("10.0.0.1:40000"), sa("203.0.113.9:443")), owner.clone())],
            0,
        );
        let figures = std::sync::Arc::new(CaptureFigures::default());
        let mut e = Engine::new(
            &CaptureConfig::default(),
            LinkType::Ethernet,
            owners,
            figures.clone(),
        );
        let answer = build_response(
            1,
            "api.example.com",
            &[(
                "api.example.com",
                RData::Address("203.0.113.9".parse().unwrap()),
            )],
        );
        feed(&mut e, 1.0, "10.0.0.53:53", "10.0.0.1:33333", None, &answer);
        feed(
            &mut e,
            2.0,
            "10.0.0.1:40000",
            "203.0.113.9:443",
            Some((TCP_SYN, 100)),
            b"",
        );
        feed(
            &mut e,
            2.0,
            "203.0.113.9:443",
            "10.0.0.1:40000",
            Some((TCP_SYN | TCP_ACK, 900)),
            b"",
        );
        let hello = record(&build_client_hello(
            Some("front.example.net"),
            false,
            &["h2"],
        ));
        feed(
            &mut e,
            2.1,
            "10.0.0.1:40000",
            "203.0.113.9:443",
            Some((TCP_ACK, 101)),
            &hello,
        );
        feed(
            &mut e,
            2.2,
            "203.0.113.9:443",
            "10.0.0.1:40000",
            Some((TCP_ACK, 901)),
            &[0x16, 3, 3, 0, 80, 2, 0, 0, 76, 3, 3],
        );
        e.tick(2.5);
        let out = e.drain();
        let [Observation::Dns(d), Observation::Payload(p)] = &out[..] else {
            panic!("{out:?}")
        };
        assert_eq!(
            (d.name.as_str(), d.address.as_str()),
            ("api.example.com", "203.0.113.9")
        );
        assert_eq!(
            (p.pid, p.path.as_deref(), p.direction.as_deref()),
            (Some(4242), Some("/usr/bin/agent"), Some("out"))
        );
        assert_eq!(
            (p.remote_address.as_str(), p.remote_port, p.local_port),
            ("203.0.113.9", 443, Some(40000))
        );
        assert_eq!(
            (
                p.payload_class.as_deref(),
                p.server_payload_class.as_deref()
            ),
            (Some("tls"), Some("tls"))
        );
        assert_eq!(
            (p.sni.as_deref(), p.ech, p.resolved_name.as_deref()),
            (Some("front.example.net"), Some(0), Some("api.example.com"))
        );
        assert_eq!(
            (p.bytes_seen, p.server_bytes_seen),
            (Some(hello.len().min(256) as i64), Some(11))
        );
        assert!(
            p.first_bytes.is_none() && p.server_first_bytes.is_none(),
            "bytes are not kept by default"
        );
        let s = figures.status();
        assert_eq!((s.packets, s.flows_classified, s.dns_answers), (5, 1, 1));
    }

    #[test]
    fn an_unowned_flow_waits_then_goes_without_owner_and_the_debug_switch_keeps_bytes() {
        let config = CaptureConfig {
            store_bytes: true,
            ..CaptureConfig::default()
        };
        let mut e = Engine::new(
            &config,
            LinkType::Ethernet,
            Table(vec![], 0),
            Default::default(),
        );
        let random: Vec<u8> = (0..300u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        feed(
            &mut e,
            1.0,
            "127.0.0.1:5000",
            "127.0.0.2:7000",
            Some((TCP_SYN, 0)),
            b"",
        );
        feed(
            &mut e,
            1.1,
            "127.0.0.1:5000",
            "127.0.0.2:7000",
            Some((TCP_ACK, 1)),
            &random,
        );
        e.tick(2.0);
        assert!(e.drain().is_empty(), "the server may still answer");
        e.tick(6.5); // pending_seconds passed; the owner lookup was pending once
        e.tick(7.0);
        let out = e.drain();
        let [Observation::Payload(p)] = &out[..] else {
            panic!("{out:?}")
        };
        assert_eq!(
            (p.pid, p.direction.as_deref(), p.payload_class.as_deref()),
            (None, None, Some("random"))
        );
        assert_eq!(p.bytes_seen, Some(256));
        let kept = base64::engine::general_purpose::STANDARD
            .decode(p.first_bytes.as_ref().unwrap())
            .unwrap();
        assert_eq!(kept, &random[..256]);
        assert!(p.server_payload_class.is_none());
    }

    #[test]
    fn status_says_why_capture_is_off_and_counts_when_on() {
        use crate::config::{Config, StoreConfig};
        let env = std::sync::Arc::new(crate::env::TableEnv::new(
            crate::store::Store::in_memory(StoreConfig::default()).unwrap(),
            Config::default(),
            "/".into(),
            None,
        ));
        let stop = std::sync::Arc::new(crate::sampler::StopSignal::default());
        assert!(live::start(env.clone(), stop, |_| {}).is_none());
        let s = env.capture.status();
        assert!(!s.running);
        assert!(
            s.reason
                .as_deref()
                .unwrap()
                .contains("[capture] enabled = true"),
            "{s:?}"
        );
        let json = serde_json::to_value(&s).unwrap();
        for key in ["running", "reason", "packets", "flows_classified", "drops"] {
            assert!(json.get(key).is_some(), "{key} in {json}");
        }
        // Counters move with the engine.
        let mut e = Engine::new(
            &CaptureConfig::default(),
            LinkType::Raw,
            NoOwners,
            env.capture.clone(),
        );
        e.frame(1.0, &[0x45, 0, 0]);
        e.frame(
            1.0,
            &ip_packet(
                sa("10.0.0.1:1").ip(),
                1,
                sa("10.0.0.2:2").ip(),
                2,
                None,
                b"x",
            ),
        );
        let s = env.capture.status();
        assert_eq!((s.packets, s.malformed_packets), (2, 1));
    }

    #[test]
    fn config_limits_are_checked() {
        assert!(CaptureConfig::default().validate().is_ok());
        assert!(CaptureConfig {
            snaplen: 10,
            ..CaptureConfig::default()
        }
        .validate()
        .is_err());
        assert!(CaptureConfig {
            pending_seconds: f64::NAN,
            ..CaptureConfig::default()
        }
        .validate()
        .is_err());
    }
}
