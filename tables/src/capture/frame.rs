//! Link, network and transport framing of one captured frame, from bytes only.
//!
//! Link types are libpcap's DLT values: `DLT_NULL` 0 and `DLT_LOOP` 108 (a 4-byte address
//! family, host or network order, before the IP header), `DLT_EN10MB` 1 (Ethernet II, up to two
//! VLAN tags), `DLT_RAW` 12/14 and `LINKTYPE_RAW` 101, `DLT_IPV4` 228 / `DLT_IPV6` 229,
//! `DLT_LINUX_SLL` 113 (16-byte cooked header, protocol at 14) and `DLT_LINUX_SLL2` 276 (20-byte
//! header, protocol at 0), and pktap (149 on Darwin, 258 upstream; see [`super::pktap`]).
//! IPv4 (RFC 791) and IPv6 (RFC 8200, with hop-by-hop, routing, fragment and destination-option
//! headers skipped), TCP (RFC 9293) and UDP (RFC 768).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::pktap::{self, PktapLayout, PktapMeta};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    /// DLT_NULL / DLT_LOOP: a 4-byte address family, then IP.
    Null,
    Ethernet,
    /// IP with no link header.
    Raw,
    LinuxSll,
    LinuxSll2,
    /// Darwin's pktap header (per-packet process facts), then the frame of `pth_dlt`.
    Pktap(PktapLayout),
}

impl LinkType {
    /// The link type for a libpcap DLT, `None` when this parser does not read it. `layout`
    /// says which pktap header the running kernel writes.
    pub fn from_dlt(dlt: i32, layout: PktapLayout) -> Option<LinkType> {
        Some(match dlt {
            0 | 108 => LinkType::Null,
            1 => LinkType::Ethernet,
            12 | 14 | 101 | 228 | 229 => LinkType::Raw,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            pktap::DLT_PKTAP | pktap::LINKTYPE_PKTAP => LinkType::Pktap(layout),
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    Tcp,
    Udp,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }
}

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

/// One TCP segment or UDP datagram.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet<'a> {
    pub transport: Transport,
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
    /// TCP flags (0 for UDP).
    pub flags: u8,
    /// TCP sequence number (0 for UDP).
    pub seq: u32,
    /// The payload bytes that were captured (snaplen may cut them short).
    pub payload: &'a [u8],
    /// The payload's length on the wire, from the IP and transport headers.
    pub payload_len: usize,
    /// Process facts from a pktap header.
    pub meta: Option<PktapMeta>,
}

impl Packet<'_> {
    /// True when snaplen cut the payload.
    pub fn truncated(&self) -> bool {
        self.payload.len() < self.payload_len
    }
}

/// Why a frame was not a TCP or UDP packet this parser reads. Expected for ARP, ICMP, non-first
/// fragments and the like; only `Malformed` means the bytes contradict themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// Not IP, not TCP/UDP, or a later fragment.
    NotTcpUdp,
    /// Too short for the headers it announces, or inconsistent lengths.
    Malformed(&'static str),
}

fn be16(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(o)?, *b.get(o + 1)?]))
}

fn be32(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(o..o + 4)?.try_into().ok()?))
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;

/// Parses one captured frame of link type `link`.
pub fn parse(link: LinkType, frame: &[u8]) -> Result<Packet<'_>, Skip> {
    match link {
        LinkType::Null => ip(frame
            .get(4..)
            .ok_or(Skip::Malformed("short loopback header"))?),
        LinkType::Raw => ip(frame),
        LinkType::Ethernet => {
            let mut off = 12;
            let mut ethertype = be16(frame, off).ok_or(Skip::Malformed("short Ethernet header"))?;
            // 802.1Q / 802.1ad tags, at most two.
            for _ in 0..2 {
                if ethertype == 0x8100 || ethertype == 0x88a8 {
                    off += 4;
                    ethertype = be16(frame, off).ok_or(Skip::Malformed("short VLAN tag"))?;
                }
            }
            by_ethertype(ethertype, &frame[off + 2..])
        }
        LinkType::LinuxSll => {
            let proto = be16(frame, 14).ok_or(Skip::Malformed("short SLL header"))?;
            by_ethertype(proto, &frame[16..])
        }
        LinkType::LinuxSll2 => {
            let proto = be16(frame, 0).ok_or(Skip::Malformed("short SLL2 header"))?;
            by_ethertype(
                proto,
                frame
                    .get(20..)
                    .ok_or(Skip::Malformed("short SLL2 header"))?,
            )
        }
        LinkType::Pktap(layout) => {
            let (meta, inner) =
                pktap::parse(frame, layout).map_err(|_| Skip::Malformed("bad pktap header"))?;
            let inner_link = LinkType::from_dlt(meta.dlt as i32, layout)
                .filter(|l| !matches!(l, LinkType::Pktap(_)))
                .ok_or(Skip::NotTcpUdp)?;
            let mut p = parse(inner_link, inner)?;
            p.meta = Some(meta);
            Ok(p)
        }
    }
}

fn by_ethertype(ethertype: u16, rest: &[u8]) -> Result<Packet<'_>, Skip> {
    match ethertype {
        ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => ip(rest),
        _ => Err(Skip::NotTcpUdp),
    }
}

/// An IPv4 or IPv6 packet, by its version nibble.
pub fn ip(b: &[u8]) -> Result<Packet<'_>, Skip> {
    match b.first().map(|v| v >> 4) {
        Some(4) => ipv4(b),
        Some(6) => ipv6(b),
        Some(_) => Err(Skip::NotTcpUdp),
        None => Err(Skip::Malformed("empty packet")),
    }
}

fn ipv4(b: &[u8]) -> Result<Packet<'_>, Skip> {
    let ihl = usize::from(b[0] & 0x0f) * 4;
    if ihl < 20 || b.len() < ihl {
        return Err(Skip::Malformed("IPv4 header length"));
    }
    let total = usize::from(be16(b, 2).ok_or(Skip::Malformed("short IPv4"))?);
    if total < ihl {
        return Err(Skip::Malformed("IPv4 total length"));
    }
    // Segmentation offload can hand the tap a 0 total length for a large packet: trust the frame.
    let total = if total == 0 { b.len() } else { total };
    let frag = be16(b, 6).ok_or(Skip::Malformed("short IPv4"))?;
    if frag & 0x1fff != 0 {
        return Err(Skip::NotTcpUdp);
    }
    let src = IpAddr::V4(Ipv4Addr::new(b[12], b[13], b[14], b[15]));
    let dst = IpAddr::V4(Ipv4Addr::new(b[16], b[17], b[18], b[19]));
    let l4_len = total - ihl;
    transport(b[9], src, dst, &b[ihl..], l4_len)
}

fn ipv6(b: &[u8]) -> Result<Packet<'_>, Skip> {
    if b.len() < 40 {
        return Err(Skip::Malformed("short IPv6 header"));
    }
    let payload_len = usize::from(be16(b, 4).ok_or(Skip::Malformed("short IPv6"))?);
    let src = IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&b[8..24]).expect("16")));
    let dst = IpAddr::V6(Ipv6Addr::from(
        <[u8; 16]>::try_from(&b[24..40]).expect("16"),
    ));
    // Jumbograms and offload show 0: trust the frame.
    let mut remaining = if payload_len == 0 {
        b.len() - 40
    } else {
        payload_len
    };
    let mut next = b[6];
    let mut off = 40;
    for _ in 0..8 {
        match next {
            0 | 43 | 60 => {
                let hdr_len =
                    (usize::from(*b.get(off + 1).ok_or(Skip::Malformed("short IPv6 option"))?) + 1)
                        * 8;
                next = b[off];
                off += hdr_len;
                remaining = remaining
                    .checked_sub(hdr_len)
                    .ok_or(Skip::Malformed("IPv6 option length"))?;
            }
            44 => {
                let frag = be16(b, off + 2).ok_or(Skip::Malformed("short IPv6 fragment header"))?;
                if frag & 0xfff8 != 0 {
                    return Err(Skip::NotTcpUdp);
                }
                next = b[off];
                off += 8;
                remaining = remaining
                    .checked_sub(8)
                    .ok_or(Skip::Malformed("IPv6 fragment length"))?;
            }
            _ => break,
        }
    }
    let rest = b
        .get(off..)
        .ok_or(Skip::Malformed("IPv6 headers past the frame"))?;
    transport(next, src, dst, rest, remaining)
}

fn transport(
    proto: u8,
    src: IpAddr,
    dst: IpAddr,
    b: &[u8],
    l4_len: usize,
) -> Result<Packet<'_>, Skip> {
    match proto {
        6 => {
            let doff = usize::from(*b.get(12).ok_or(Skip::Malformed("short TCP header"))? >> 4) * 4;
            if doff < 20 || b.len() < doff {
                return Err(Skip::Malformed("TCP header length"));
            }
            let payload_len = l4_len
                .checked_sub(doff)
                .ok_or(Skip::Malformed("TCP length"))?;
            let end = b.len().min(doff + payload_len);
            Ok(Packet {
                transport: Transport::Tcp,
                src,
                sport: be16(b, 0).expect("checked"),
                dst,
                dport: be16(b, 2).expect("checked"),
                flags: b[13],
                seq: be32(b, 4).expect("checked"),
                payload: &b[doff..end],
                payload_len,
                meta: None,
            })
        }
        17 => {
            if b.len() < 8 {
                return Err(Skip::Malformed("short UDP header"));
            }
            let udp_len = usize::from(be16(b, 4).expect("checked"));
            // 0 is legal for IPv6 jumbograms and seen with offload: fall back to the IP length.
            let udp_len = if udp_len == 0 { l4_len } else { udp_len };
            let payload_len = udp_len
                .checked_sub(8)
                .ok_or(Skip::Malformed("UDP length"))?;
            let end = b.len().min(8 + payload_len);
            Ok(Packet {
                transport: Transport::Udp,
                src,
                sport: be16(b, 0).expect("checked"),
                dst,
                dport: be16(b, 2).expect("checked"),
                flags: 0,
                seq: 0,
                payload: &b[8..end],
                payload_len,
                meta: None,
            })
        }
        _ => Err(Skip::NotTcpUdp),
    }
}

/// Builders of real frames for tests and benchmarks (checksums left zero: nothing here
/// verifies them, and a capture of locally sent packets sees them unfilled anyway).
pub mod build {
    use std::net::IpAddr;

    /// An IPv4 or IPv6 packet carrying TCP (`tcp = Some((flags, seq))`) or UDP.
    pub fn ip_packet(
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
        tcp: Option<(u8, u32)>,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut l4 = Vec::new();
        l4.extend_from_slice(&sport.to_be_bytes());
        l4.extend_from_slice(&dport.to_be_bytes());
        match tcp {
            Some((flags, seq)) => {
                l4.extend_from_slice(&seq.to_be_bytes());
                l4.extend_from_slice(&0u32.to_be_bytes());
                l4.push(5 << 4);
                l4.push(flags);
                l4.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
            }
            None => {
                l4.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
                l4.extend_from_slice(&[0, 0]);
            }
        }
        l4.extend_from_slice(payload);
        let proto = if tcp.is_some() { 6 } else { 17 };
        let mut p = Vec::new();
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                p.extend_from_slice(&[0x45, 0]);
                p.extend_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
                p.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
                p.extend_from_slice(&s.octets());
                p.extend_from_slice(&d.octets());
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                p.extend_from_slice(&[0x60, 0, 0, 0]);
                p.extend_from_slice(&(l4.len() as u16).to_be_bytes());
                p.extend_from_slice(&[proto, 64]);
                p.extend_from_slice(&s.octets());
                p.extend_from_slice(&d.octets());
            }
            _ => panic!("mixed address families"),
        }
        p.extend_from_slice(&l4);
        p
    }

    /// The packet in an Ethernet II frame (zero MACs, as Linux loopback shows them).
    pub fn ethernet(ip: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(if ip[0] >> 4 == 6 {
            &[0x86, 0xdd]
        } else {
            &[0x08, 0x00]
        });
        f.extend_from_slice(ip);
        f
    }
}

#[cfg(test)]
mod tests {
    use super::build::*;
    use super::*;

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ethernet_ipv4_tcp_with_payload() {
        let ip = ip_packet(
            v4("10.0.0.1"),
            50000,
            v4("10.0.0.2"),
            443,
            Some((TCP_ACK | 0x08, 1001)),
            b"hello",
        );
        let f = ethernet(&ip);
        let p = parse(LinkType::Ethernet, &f).unwrap();
        assert_eq!(
            (p.transport, p.sport, p.dport, p.seq, p.payload),
            (Transport::Tcp, 50000, 443, 1001, &b"hello"[..])
        );
        assert_eq!(
            (p.src, p.dst, p.payload_len, p.truncated()),
            (v4("10.0.0.1"), v4("10.0.0.2"), 5, false)
        );
        // Ethernet pads short frames: the IP length, not the frame, bounds the payload.
        let mut padded = f.clone();
        padded.extend_from_slice(&[0; 10]);
        assert_eq!(
            parse(LinkType::Ethernet, &padded).unwrap().payload,
            b"hello"
        );
        // snaplen cut: what was captured, and the length it had.
        let cut = parse(LinkType::Ethernet, &f[..f.len() - 2]).unwrap();
        assert_eq!(
            (cut.payload, cut.payload_len, cut.truncated()),
            (&b"hel"[..], 5, true)
        );
    }

    #[test]
    fn ipv6_udp_behind_a_vlan_tag_and_an_option_header() {
        let ip = ip_packet(v4("::1"), 5353, v4("::2"), 53, None, b"q");
        // Insert a hop-by-hop header (8 bytes) before UDP.
        let mut with_opt = ip[..40].to_vec();
        with_opt[6] = 0; // next = hop-by-hop
        let plen = u16::from_be_bytes([ip[4], ip[5]]) + 8;
        with_opt[4..6].copy_from_slice(&plen.to_be_bytes());
        with_opt.extend_from_slice(&[17, 0, 0, 0, 0, 0, 0, 0]);
        with_opt.extend_from_slice(&ip[40..]);
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x81, 0x00, 0, 5, 0x86, 0xdd]);
        f.extend_from_slice(&with_opt);
        let p = parse(LinkType::Ethernet, &f).unwrap();
        assert_eq!(
            (p.transport, p.sport, p.dport, p.payload),
            (Transport::Udp, 5353, 53, &b"q"[..])
        );
    }

    #[test]
    fn loopback_cooked_and_raw_headers() {
        let ip = ip_packet(v4("127.0.0.1"), 1, v4("127.0.0.2"), 2, None, b"x");
        let mut null = 2u32.to_ne_bytes().to_vec();
        null.extend_from_slice(&ip);
        assert_eq!(parse(LinkType::Null, &null).unwrap().dst, v4("127.0.0.2"));
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&[0x08, 0x00]);
        sll.extend_from_slice(&ip);
        assert_eq!(parse(LinkType::LinuxSll, &sll).unwrap().dport, 2);
        let mut sll2 = vec![0x08, 0x00];
        sll2.extend_from_slice(&[0; 18]);
        sll2.extend_from_slice(&ip);
        assert_eq!(parse(LinkType::LinuxSll2, &sll2).unwrap().sport, 1);
        assert_eq!(parse(LinkType::Raw, &ip).unwrap().payload, b"x");
    }

    #[test]
    fn what_is_not_tcp_or_udp_and_what_is_broken() {
        let mut arp = vec![0u8; 12];
        arp.extend_from_slice(&[0x08, 0x06, 0, 1]);
        assert_eq!(parse(LinkType::Ethernet, &arp), Err(Skip::NotTcpUdp));
        let mut icmp = ip_packet(v4("1.1.1.1"), 0, v4("2.2.2.2"), 0, None, b"");
        icmp[9] = 1;
        assert_eq!(parse(LinkType::Raw, &icmp), Err(Skip::NotTcpUdp));
        let mut later_fragment = ip_packet(v4("1.1.1.1"), 1, v4("2.2.2.2"), 2, None, b"abc");
        later_fragment[6..8].copy_from_slice(&[0, 10]);
        assert_eq!(parse(LinkType::Raw, &later_fragment), Err(Skip::NotTcpUdp));
        let tcp = ip_packet(v4("1.1.1.1"), 1, v4("2.2.2.2"), 2, Some((TCP_SYN, 0)), b"");
        assert!(matches!(
            parse(LinkType::Raw, &tcp[..30]),
            Err(Skip::Malformed(_))
        ));
        let mut bad_ihl = tcp.clone();
        bad_ihl[0] = 0x44;
        assert!(matches!(
            parse(LinkType::Raw, &bad_ihl),
            Err(Skip::Malformed(_))
        ));
        assert!(matches!(parse(LinkType::Raw, &[]), Err(Skip::Malformed(_))));
        assert!(matches!(
            parse(LinkType::LinuxSll2, &[0x08]),
            Err(Skip::Malformed(_))
        ));
    }
}
