//! The per-flow state machine: which packets carry a flow's first client payload and first
//! server payload, and when a flow is finished.
//!
//! Classic BPF keeps no per-flow state, so the kernel hands over every matching packet (cut to
//! a small snaplen) and this table decides. A TCP flow counts only when its SYN (or SYN-ACK) was
//! seen, so "first payload" is never a guess from the middle of a stream; the first payload must
//! start at ISN + 1, else it was lost and that side is left unclassified. UDP: the first
//! datagram's sender is the client. Per side at most `max_packets` packets and `name_bytes`
//! bytes are kept (the ClientHello or request head the names come from), only until the flow is
//! classified; then it is a tombstone of a few bytes until idle, so later packets cost a lookup.
//! The table holds at most `max_flows` flows; when full, finished tombstones go first, then the
//! oldest pending flows are classified with what they have.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use super::frame::{Packet, Transport, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};
use super::quic::InitialCrypto;

#[derive(Debug, Clone)]
pub struct FlowLimits {
    /// Bytes of each first payload that are classified (spec: 256).
    pub classify_bytes: usize,
    /// Bytes of the client's first flight kept for names (ClientHello, request head).
    pub name_bytes: usize,
    /// Packets per side looked at before giving up on more.
    pub max_packets: u32,
    pub max_flows: usize,
    /// A flow is classified this long after its first payload even if the other side is silent.
    pub pending_seconds: f64,
    /// A classified flow's tombstone (and a flow that never carried data) is forgotten after
    /// this much silence.
    pub idle_seconds: f64,
}

impl Default for FlowLimits {
    fn default() -> FlowLimits {
        FlowLimits {
            classify_bytes: 256,
            name_bytes: 4096,
            max_packets: 8,
            max_flows: 16384,
            pending_seconds: 5.0,
            idle_seconds: 120.0,
        }
    }
}

/// A flow's endpoints, client first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub transport: Transport,
    pub client: SocketAddr,
    pub server: SocketAddr,
}

/// Lookup key independent of direction.
type Canon = (Transport, SocketAddr, SocketAddr);

fn canon(t: Transport, a: SocketAddr, b: SocketAddr) -> Canon {
    if a <= b {
        (t, a, b)
    } else {
        (t, b, a)
    }
}

#[derive(Debug, Default, Clone)]
struct Side {
    isn: Option<u32>,
    next_seq: Option<u32>,
    buf: Vec<u8>,
    packets: u32,
    first_ts: Option<f64>,
    /// The first payload was lost (a gap) or never came: nothing to classify.
    missed: bool,
    done: bool,
    /// Process facts from the first pktap-stamped packet this side sent.
    process: Option<(i32, String, bool)>,
}

#[derive(Debug, Clone)]
pub struct Flow {
    pub key: FlowKey,
    pub start: f64,
    pub last: f64,
    client: Side,
    server: Side,
    quic: Option<InitialCrypto>,
    /// Finished (handed out); later packets only refresh `last`.
    classified: bool,
    /// The owner lookup asked for later (see the engine).
    pub owner_wait_since: Option<f64>,
}

/// A flow ready to classify: the bytes of each first payload and the client's first flight.
#[derive(Debug, Clone)]
pub struct FinishedFlow {
    pub key: FlowKey,
    pub start: f64,
    /// When the client's first payload was seen (else the flow's start).
    pub ts: f64,
    /// The client's first flight (up to `name_bytes`); its first `classify_bytes` are classified.
    pub client: Option<Vec<u8>>,
    pub server: Option<Vec<u8>>,
    pub quic: Option<InitialCrypto>,
    /// pid, comm and "sent by this host" from pktap, client side first.
    pub client_process: Option<(i32, String, bool)>,
    pub server_process: Option<(i32, String, bool)>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TableCounters {
    pub flows_started: u64,
    /// TCP packets of flows whose start was not seen (ignored).
    pub midstream_packets: u64,
    /// Flows classified early because the table was full.
    pub evicted: u64,
    /// First payloads lost to a gap (a dropped packet) or snaplen.
    pub missed_payloads: u64,
}

#[derive(Debug, Default)]
pub struct FlowTable {
    pub limits: FlowLimits,
    flows: HashMap<Canon, Flow>,
    pub counters: TableCounters,
    /// Flows started since the caller last took them (for attribution while sockets exist).
    pub started: Vec<(FlowKey, f64)>,
}

impl FlowTable {
    pub fn new(limits: FlowLimits) -> FlowTable {
        FlowTable {
            limits,
            flows: HashMap::new(),
            counters: TableCounters::default(),
            started: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Feeds one packet; flows it finishes are pushed to `out`.
    pub fn packet(&mut self, ts: f64, p: &Packet<'_>, out: &mut Vec<FinishedFlow>) {
        let src = SocketAddr::new(p.src, p.sport);
        let dst = SocketAddr::new(p.dst, p.dport);
        let key = canon(p.transport, src, dst);
        if !self.flows.contains_key(&key) {
            let client = match p.transport {
                Transport::Udp => src,
                Transport::Tcp if p.flags & (TCP_SYN | TCP_ACK) == TCP_SYN => src,
                Transport::Tcp if p.flags & (TCP_SYN | TCP_ACK) == TCP_SYN | TCP_ACK => dst,
                Transport::Tcp => {
                    self.counters.midstream_packets += 1;
                    return;
                }
            };
            if self.flows.len() >= self.limits.max_flows {
                self.make_room(out);
            }
            let server = if client == src { dst } else { src };
            self.counters.flows_started += 1;
            let flow_key = FlowKey {
                transport: p.transport,
                client,
                server,
            };
            if p.meta.is_none() {
                self.started.push((flow_key, ts));
            }
            self.flows.insert(
                key,
                Flow {
                    key: FlowKey {
                        transport: p.transport,
                        client,
                        server,
                    },
                    start: ts,
                    last: ts,
                    client: Side::default(),
                    server: Side::default(),
                    quic: None,
                    classified: false,
                    owner_wait_since: None,
                },
            );
        }
        let limits = &self.limits;
        let flow = self.flows.get_mut(&key).expect("present");
        flow.last = ts;
        if flow.classified {
            return;
        }
        let from_client = src == flow.key.client;
        let side = if from_client {
            &mut flow.client
        } else {
            &mut flow.server
        };
        if let (None, Some(meta)) = (&side.process, &p.meta) {
            if let Some((pid, comm)) = meta.process() {
                side.process = Some((pid, comm.to_string(), meta.outgoing()));
            }
        }
        if p.transport == Transport::Tcp && p.flags & TCP_SYN != 0 {
            side.isn = Some(p.seq);
        }
        if p.payload_len > 0 && !side.done {
            let missed_before = side.missed;
            take_payload(side, ts, p, from_client, limits, &mut flow.quic);
            if side.missed && !missed_before {
                self.counters.missed_payloads += 1;
            }
            // The server spoke after the client: the client's first flight is over.
            if !from_client && flow.client.first_ts.is_some() {
                flow.client.done = true;
            }
        }
        let ended = p.transport == Transport::Tcp && p.flags & (TCP_FIN | TCP_RST) != 0;
        if (flow.client.done && flow.server.done) || ended {
            let f = finish(flow);
            out.extend(f);
        }
    }

    /// Classifies flows whose first payload is older than `pending_seconds`, forgets idle
    /// tombstones and flows that never carried data.
    pub fn expire(&mut self, now: f64, out: &mut Vec<FinishedFlow>) {
        let limits = self.limits.clone();
        self.flows.retain(|_, f| {
            if f.classified || (f.client.first_ts.is_none() && f.server.first_ts.is_none()) {
                return now - f.last < limits.idle_seconds;
            }
            let first = f.client.first_ts.or(f.server.first_ts).expect("checked");
            if now - first >= limits.pending_seconds {
                out.extend(finish(f));
            }
            true
        });
    }

    /// Makes room for at least a tenth of the table: tombstones first, then the oldest flows.
    fn make_room(&mut self, out: &mut Vec<FinishedFlow>) {
        let target = self.limits.max_flows - (self.limits.max_flows / 10).max(1);
        self.flows.retain(|_, f| !f.classified);
        if self.flows.len() <= target {
            return;
        }
        let mut by_age: Vec<(f64, Canon)> = self.flows.iter().map(|(k, f)| (f.last, *k)).collect();
        by_age.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (_, k) in by_age.into_iter().take(self.flows.len() - target) {
            if let Some(mut f) = self.flows.remove(&k) {
                if let Some(done) = finish(&mut f) {
                    self.counters.evicted += 1;
                    out.push(done);
                }
            }
        }
    }

    /// A flow still tracked (for tests and the engine's owner lookups).
    pub fn get(&self, a: SocketAddr, b: SocketAddr, t: Transport) -> Option<&Flow> {
        self.flows.get(&canon(t, a, b))
    }
}

fn take_payload(
    side: &mut Side,
    ts: f64,
    p: &Packet<'_>,
    from_client: bool,
    limits: &FlowLimits,
    quic: &mut Option<InitialCrypto>,
) {
    side.packets += 1;
    let keep = if from_client {
        limits.name_bytes
    } else {
        limits.classify_bytes
    };
    match p.transport {
        Transport::Tcp => {
            let expected = side.next_seq.or(side.isn.map(|i| i.wrapping_add(1)));
            match expected {
                Some(e) if p.seq != e => {
                    // Before what we have: a retransmission, ignore. After: a gap.
                    if (p.seq.wrapping_sub(e) as i32) < 0 {
                        side.packets -= 1;
                        return;
                    }
                    if side.buf.is_empty() {
                        side.missed = true;
                    }
                    side.done = true;
                    return;
                }
                _ => {}
            }
            side.first_ts.get_or_insert(ts);
            let room = keep.saturating_sub(side.buf.len());
            side.buf
                .extend_from_slice(&p.payload[..p.payload.len().min(room)]);
            side.next_seq = Some(p.seq.wrapping_add(p.payload_len as u32));
            if p.truncated()
                || side.buf.len() >= keep
                || side.packets >= limits.max_packets
                || !from_client
                || !wants_more(&side.buf)
            {
                side.done = true;
            }
        }
        Transport::Udp => {
            if side.first_ts.is_none() {
                side.first_ts = Some(ts);
                side.buf
                    .extend_from_slice(&p.payload[..p.payload.len().min(keep)]);
            }
            // QUIC: Initial datagrams are read until the ClientHello is whole.
            let mut more = false;
            if from_client && p.payload.first().is_some_and(|b| b & 0xc0 == 0xc0) && !p.truncated()
            {
                let q = quic.get_or_insert_with(InitialCrypto::default);
                if q.add_datagram(p.payload).is_ok() {
                    more = matches!(q.client_hello(), Err(super::tls::HelloError::Incomplete));
                }
            }
            if !more || side.packets >= limits.max_packets {
                side.done = true;
            }
        }
    }
}

/// Whether the client's first flight so far is the start of something whose names come later:
/// a ClientHello not yet whole, or a request head without its blank line.
fn wants_more(buf: &[u8]) -> bool {
    if buf.first() == Some(&0x16) {
        return matches!(
            super::tls::client_hello_from_records(buf),
            Err(super::tls::HelloError::Incomplete)
        );
    }
    super::http::is_request(buf)
        && super::http::request_host(buf).is_none()
        && !buf.windows(4).any(|w| w == b"\r\n\r\n")
}

fn finish(f: &mut Flow) -> Option<FinishedFlow> {
    if f.classified {
        return None;
    }
    f.classified = true;
    let c = std::mem::take(&mut f.client);
    let s = std::mem::take(&mut f.server);
    let quic = f.quic.take();
    if c.first_ts.is_none() && s.first_ts.is_none() {
        return None;
    }
    Some(FinishedFlow {
        key: f.key,
        start: f.start,
        ts: c.first_ts.or(s.first_ts).unwrap_or(f.start),
        client: (!c.missed && c.first_ts.is_some()).then_some(c.buf),
        server: (!s.missed && s.first_ts.is_some()).then_some(s.buf),
        quic,
        client_process: c.process,
        server_process: s.process,
    })
}

/// An address that answers DNS names, bounded; the newest answer for an address wins.
#[derive(Debug, Default)]
pub struct NameCache {
    names: HashMap<IpAddr, (String, f64)>,
    max: usize,
}

impl NameCache {
    pub fn new(max: usize) -> NameCache {
        NameCache {
            names: HashMap::new(),
            max,
        }
    }

    pub fn insert(&mut self, address: IpAddr, name: &str, ts: f64) {
        if self.names.len() >= self.max && !self.names.contains_key(&address) {
            // Forget the older half at once, so this runs rarely.
            let mut times: Vec<f64> = self.names.values().map(|v| v.1).collect();
            times.sort_by(f64::total_cmp);
            let cut = times[times.len() / 2];
            self.names.retain(|_, v| v.1 > cut);
        }
        self.names.insert(address, (name.to_string(), ts));
    }

    /// The name `address` was last given by an answer seen at or before `ts`.
    pub fn name(&self, address: &IpAddr, ts: f64) -> Option<&str> {
        self.names
            .get(address)
            .filter(|(_, t)| *t <= ts + 1.0)
            .map(|(n, _)| n.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::frame::{build::ip_packet, ip};

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// Feeds a TCP segment between two endpoints.
    fn tcp(
        t: &mut FlowTable,
        ts: f64,
        from: &str,
        to: &str,
        flags: u8,
        seq: u32,
        payload: &[u8],
    ) -> Vec<FinishedFlow> {
        let (f, d) = (sa(from), sa(to));
        let bytes = ip_packet(
            f.ip(),
            f.port(),
            d.ip(),
            d.port(),
            Some((flags, seq)),
            payload,
        );
        let mut out = Vec::new();
        t.packet(ts, &ip(&bytes).unwrap(), &mut out);
        out
    }

    const C: &str = "10.0.0.1:40000";
    const S: &str = "10.0.0.2:443";

    #[test]
    fn first_client_and_server_payloads_of_a_tcp_flow() {
        let mut t = FlowTable::new(FlowLimits::default());
        assert!(tcp(&mut t, 1.0, C, S, TCP_SYN, 1000, b"").is_empty());
        tcp(&mut t, 1.0, S, C, TCP_SYN | TCP_ACK, 5000, b"");
        tcp(&mut t, 1.0, C, S, TCP_ACK, 1001, b"");
        let mut req = b"POST /x HTTP/1.1\r\nHost: api.example".to_vec();
        assert!(
            tcp(&mut t, 1.1, C, S, TCP_ACK, 1001, &req).is_empty(),
            "head not complete: wait"
        );
        // A retransmission of the same bytes changes nothing.
        tcp(&mut t, 1.15, C, S, TCP_ACK, 1001, &req);
        tcp(
            &mut t,
            1.2,
            C,
            S,
            TCP_ACK,
            1001 + req.len() as u32,
            b"\r\n\r\n",
        );
        let out = tcp(&mut t, 1.3, S, C, TCP_ACK, 5001, &[0xab; 600]);
        assert_eq!(out.len(), 1);
        let f = &out[0];
        req.extend_from_slice(b"\r\n\r\n");
        assert_eq!(f.client.as_deref(), Some(&req[..]));
        assert_eq!(
            f.server.as_ref().map(Vec::len),
            Some(256),
            "server side capped at 256"
        );
        assert_eq!(
            (f.key.client, f.key.server, f.start, f.ts),
            (sa(C), sa(S), 1.0, 1.1)
        );
        // Later packets of the flow are a tombstone lookup, not a second row.
        assert!(tcp(&mut t, 1.4, C, S, TCP_ACK, 2000, b"more").is_empty());
        assert!(tcp(&mut t, 1.5, C, S, TCP_FIN | TCP_ACK, 2004, b"").is_empty());
        assert_eq!(t.len(), 1);
        let mut out = Vec::new();
        t.expire(200.0, &mut out);
        assert!(out.is_empty() && t.is_empty());
    }

    #[test]
    fn a_flow_seen_midstream_is_ignored_and_a_gap_is_not_a_first_payload() {
        let mut t = FlowTable::new(FlowLimits::default());
        assert!(tcp(&mut t, 1.0, C, S, TCP_ACK, 77, b"data").is_empty());
        assert_eq!((t.len(), t.counters.midstream_packets), (0, 1));
        tcp(&mut t, 1.0, C, S, TCP_SYN, 1000, b"");
        // The segment at ISN+1 was dropped; this one starts 100 bytes later.
        tcp(&mut t, 1.1, C, S, TCP_ACK, 1101, &[1; 50]);
        let out = tcp(&mut t, 1.2, S, C, TCP_ACK, 9, &[2; 10]);
        assert_eq!(out.len(), 1);
        assert!(
            out[0].client.is_none(),
            "a lost first payload is not replaced by a later one"
        );
        assert_eq!(t.counters.missed_payloads, 1);
    }

    #[test]
    fn silence_fin_and_a_full_table_finish_flows() {
        let mut t = FlowTable::new(FlowLimits {
            max_flows: 10,
            ..FlowLimits::default()
        });
        tcp(&mut t, 1.0, C, S, TCP_SYN, 0, b"");
        tcp(&mut t, 1.1, C, S, TCP_ACK, 1, &[7; 40]);
        let mut out = Vec::new();
        t.expire(3.0, &mut out);
        assert!(out.is_empty());
        t.expire(6.2, &mut out);
        assert_eq!(
            out.len(),
            1,
            "the server never answered: classified after pending_seconds"
        );
        assert!(out[0].server.is_none());
        // FIN right after the request.
        tcp(&mut t, 7.0, "10.0.0.1:40001", S, TCP_SYN, 0, b"");
        tcp(&mut t, 7.1, "10.0.0.1:40001", S, TCP_ACK, 1, &[7; 40]);
        assert_eq!(
            tcp(&mut t, 7.2, "10.0.0.1:40001", S, TCP_FIN | TCP_ACK, 41, b"").len(),
            1
        );
        // Twenty new flows in a table of ten: the oldest are classified early, none is lost.
        let mut finished = 0;
        for i in 0..20u16 {
            let c = format!("10.0.1.1:{}", 50000 + i);
            tcp(&mut t, 10.0 + f64::from(i), &c, S, TCP_SYN, 0, b"");
            finished += tcp(&mut t, 10.0 + f64::from(i), &c, S, TCP_ACK, 1, &[9; 40]).len();
            assert!(t.len() <= 10);
        }
        let mut out = Vec::new();
        t.expire(1000.0, &mut out);
        assert_eq!(finished + t.counters.evicted as usize + out.len(), 20);
        assert!(t.counters.evicted > 0);
    }

    #[test]
    fn udp_first_datagram_each_way() {
        let mut t = FlowTable::new(FlowLimits::default());
        let q = ip_packet(
            sa("10.0.0.1:5555").ip(),
            5555,
            sa("10.0.0.53:53").ip(),
            53,
            None,
            &[1; 30],
        );
        let r = ip_packet(
            sa("10.0.0.53:53").ip(),
            53,
            sa("10.0.0.1:5555").ip(),
            5555,
            None,
            &[2; 80],
        );
        let mut out = Vec::new();
        t.packet(1.0, &ip(&q).unwrap(), &mut out);
        t.packet(1.01, &ip(&r).unwrap(), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].key.client, out[0].client.as_ref().unwrap().len()),
            (sa("10.0.0.1:5555"), 30)
        );
        assert_eq!(out[0].server.as_ref().unwrap().len(), 80);
    }

    #[test]
    fn names_are_bounded_and_the_newest_answer_wins() {
        let mut n = NameCache::new(4);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        n.insert(a, "old.example", 1.0);
        n.insert(a, "new.example", 2.0);
        assert_eq!(n.name(&a, 3.0), Some("new.example"));
        assert_eq!(
            n.name(&a, 0.5),
            None,
            "an answer after the flow did not name it"
        );
        for i in 0..10u8 {
            n.insert(IpAddr::from([10, 0, 0, i]), "x", 10.0 + f64::from(i));
        }
        assert!(n.names.len() <= 4);
    }
}
