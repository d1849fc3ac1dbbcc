//! macOS `net.inet.{tcp,udp}.pcblist_n` (the sysctl Apple's `netstat -b` reads), parsed from
//! bytes by a pure function so it is tested here on fixtures built from the xnu layouts.
//!
//! Layouts: xnu `bsd/netinet/in_pcb.h` (xinpgen, xinpcb_n), `bsd/sys/socketvar.h` (xsocket_n,
//! xsockbuf_n, xsockstat_n, data_stats), `bsd/netinet/tcp_var.h` (xtcpcb_n), all under
//! `#pragma pack(4)`; sizes and offsets as verified across xnu-7195 … xnu-11417.121.6
//! (docs/design.md, "Collectors"). The structs below mirror them (tails we do not
//! read are padding) and the assertions pin every number we rely on.
//!
//! Framing: an `xinpgen` header, then per socket a run of records each tagged by
//! `{u32 len; u32 kind}` and padded to 8 bytes (xinpcb_n, xsocket_n, two xsockbuf_n,
//! xsockstat_n, and xtcpcb_n for TCP), then an `xinpgen` trailer (absent when no sockets).
//! Always advance by the record's own length: `xsocket_n` is 76 bytes up to macOS 12 and 104
//! from macOS 13.
//!
//! Byte counters (`xst_tc_stats`): up to macOS 14 (Darwin ≤ 23) four traffic-class entries
//! that must be summed; from macOS 15 (Darwin ≥ 24) entry 0 is data and entry 1 drops. What they
//! count also differs (≤ 14: per packet with headers and retransmissions, loopback TCP sends not
//! counted; 15+: payload sent, received possibly counted twice). Only a Mac can confirm the
//! counting; the layout is what this module proves.

use std::mem::{offset_of, size_of};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const XSO_SOCKET: u32 = 0x001;
pub const XSO_RCVBUF: u32 = 0x002;
pub const XSO_SNDBUF: u32 = 0x004;
pub const XSO_STATS: u32 = 0x008;
pub const XSO_INPCB: u32 = 0x010;
pub const XSO_TCPCB: u32 = 0x020;
const ALL_INP: u32 = XSO_SOCKET | XSO_RCVBUF | XSO_SNDBUF | XSO_STATS | XSO_INPCB;
const ALL_TCP: u32 = ALL_INP | XSO_TCPCB;
const INP_IPV4: u8 = 0x1;

/// `struct xinpgen` (in_pcb.h): 24 bytes.
#[repr(C, packed(4))]
pub struct XInpGen {
    pub xig_len: u32,
    pub xig_count: u32,
    pub xig_gen: u64,
    pub xig_sogen: u64,
}
const _: () = assert!(size_of::<XInpGen>() == 24);
const _: () = assert!(offset_of!(XInpGen, xig_gen) == 8);

/// `struct xinpcb_n` (in_pcb.h): 104 bytes. Addresses are `in_addr_4in6` unions: IPv4 sits in
/// the last 4 of the 16 bytes.
#[repr(C, packed(4))]
pub struct XInpcbN {
    pub xi_len: u32,
    pub xi_kind: u32,
    pub xi_inpp: u64,
    pub inp_fport: u16,
    pub inp_lport: u16,
    pub inp_ppcb: u64,
    pub inp_gencnt: u64,
    pub inp_flags: i32,
    pub inp_flow: u32,
    pub inp_vflag: u8,
    pub inp_ip_ttl: u8,
    pub inp_ip_p: u8,
    pub _pad: u8,
    pub inp_dependfaddr: [u8; 16],
    pub inp_dependladdr: [u8; 16],
    pub inp_ip_tos: u8,
    pub _pad2: [u8; 3],
    pub inp_depend6: [u8; 12],
    pub inp_flowhash: u32,
    pub inp_flags2: u32,
}
const _: () = assert!(size_of::<XInpcbN>() == 104);
const _: () = assert!(offset_of!(XInpcbN, inp_fport) == 16);
const _: () = assert!(offset_of!(XInpcbN, inp_lport) == 18);
const _: () = assert!(offset_of!(XInpcbN, inp_ppcb) == 20);
const _: () = assert!(offset_of!(XInpcbN, inp_gencnt) == 28);
const _: () = assert!(offset_of!(XInpcbN, inp_vflag) == 44);
const _: () = assert!(offset_of!(XInpcbN, inp_dependfaddr) == 48);
const _: () = assert!(offset_of!(XInpcbN, inp_dependladdr) == 64);
const _: () = assert!(offset_of!(XInpcbN, inp_depend6) == 84);
const _: () = assert!(offset_of!(XInpcbN, inp_flowhash) == 96);

/// `struct xsocket_n` (socketvar.h), macOS 13+ layout: 104 bytes. Up to macOS 12 it ends
/// after `so_e_pid` (76 bytes).
#[repr(C, packed(4))]
pub struct XSocketN {
    pub xso_len: u32,
    pub xso_kind: u32,
    pub xso_so: u64,
    pub so_type: i16,
    pub _pad: i16,
    pub so_options: u32,
    pub so_linger: i16,
    pub so_state: i16,
    pub so_pcb: u64,
    pub xso_protocol: i32,
    pub xso_family: i32,
    pub so_qlen: i16,
    pub so_incqlen: i16,
    pub so_qlimit: i16,
    pub so_timeo: i16,
    pub so_error: u16,
    pub _pad2: u16,
    pub so_pgid: i32,
    pub so_oobmark: u32,
    pub so_uid: u32,
    pub so_last_pid: i32,
    pub so_e_pid: i32,
    // macOS 13+:
    pub so_gencnt: u64,
    pub so_flags: u32,
    pub so_flags1: u32,
    pub so_usecount: i32,
    pub so_retaincnt: i32,
    pub xso_filter_flags: u32,
}
const _: () = assert!(size_of::<XSocketN>() == 104);
const _: () = assert!(offset_of!(XSocketN, xso_so) == 8);
const _: () = assert!(offset_of!(XSocketN, so_options) == 20);
const _: () = assert!(offset_of!(XSocketN, so_pcb) == 28);
const _: () = assert!(offset_of!(XSocketN, xso_protocol) == 36);
const _: () = assert!(offset_of!(XSocketN, xso_family) == 40);
const _: () = assert!(offset_of!(XSocketN, so_error) == 52);
const _: () = assert!(offset_of!(XSocketN, so_uid) == 64);
const _: () = assert!(offset_of!(XSocketN, so_last_pid) == 68);
const _: () = assert!(offset_of!(XSocketN, so_e_pid) == 72);
const _: () = assert!(offset_of!(XSocketN, so_gencnt) == 76);
const _: () = assert!(offset_of!(XSocketN, xso_filter_flags) == 100);
/// `xsocket_n` length up to macOS 12.
pub const XSOCKET_N_LEN_V12: usize = 76;

/// `struct xsockbuf_n`: 32 bytes.
#[repr(C, packed(4))]
pub struct XSockbufN {
    pub xsb_len: u32,
    pub xsb_kind: u32,
    pub sb_cc: u32,
    pub sb_hiwat: u32,
    pub sb_mbcnt: u32,
    pub sb_mbmax: u32,
    pub sb_lowat: i32,
    pub sb_flags: i16,
    pub sb_timeo: i16,
}
const _: () = assert!(size_of::<XSockbufN>() == 32);

/// `struct data_stats`: 32 bytes.
#[repr(C)]
pub struct DataStats {
    pub rxpackets: u64,
    pub rxbytes: u64,
    pub txpackets: u64,
    pub txbytes: u64,
}
const _: () = assert!(size_of::<DataStats>() == 32);

/// `struct xsockstat_n`: 136 bytes, `xst_tc_stats[SO_TC_STATS_MAX = 4]` at 8.
#[repr(C, packed(4))]
pub struct XSockStatN {
    pub xst_len: u32,
    pub xst_kind: u32,
    pub xst_tc_stats: [DataStats; 4],
}
const _: () = assert!(size_of::<XSockStatN>() == 136);
const _: () = assert!(offset_of!(XSockStatN, xst_tc_stats) == 8);
const _: () = assert!(offset_of!(DataStats, rxbytes) == 8);
const _: () = assert!(offset_of!(DataStats, txbytes) == 24);

/// `struct xtcpcb_n`: 204 bytes; only `t_state` (36) and `t_starttime` (116) are read.
#[repr(C, packed(4))]
pub struct XTcpcbN {
    pub xt_len: u32,
    pub xt_kind: u32,
    pub _head: [u8; 28],
    pub t_state: i32,
    pub _mid: [u8; 76],
    pub t_starttime: u32,
    pub _tail: [u8; 84],
}
const _: () = assert!(size_of::<XTcpcbN>() == 204);
const _: () = assert!(offset_of!(XTcpcbN, t_state) == 36);
const _: () = assert!(offset_of!(XTcpcbN, t_starttime) == 116);

/// One socket of a pcblist_n dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcbSocket {
    /// Kernel address hash of the socket; equals `soi_so` from proc_pidfdinfo. 0 for
    /// userland (Skywalk) flows.
    pub so_handle: u64,
    /// Unique per socket from macOS 13; `None` on 12.
    pub so_gencnt: Option<u64>,
    pub protocol: i32,
    pub uid: u32,
    pub last_pid: i32,
    /// Delegated ("effective") pid, 0 when not delegated.
    pub e_pid: i32,
    pub local: IpAddr,
    pub local_port: u16,
    pub remote: IpAddr,
    pub remote_port: u16,
    /// Interface index the kernel embedded in a link-local address (see [`kernel_ipv6`]).
    pub local_scope: Option<u16>,
    pub remote_scope: Option<u16>,
    /// Summed per the Darwin version (see module docs).
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub tcp_state: Option<i32>,
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_ne_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}
fn i32_at(b: &[u8], o: usize) -> i32 {
    i32::from_ne_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_ne_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}

fn roundup64(n: usize) -> usize {
    if n == 0 {
        8
    } else {
        (n + 7) & !7
    }
}

fn address(b: &[u8], off: usize, vflag: u8) -> (IpAddr, Option<u16>) {
    if vflag & INP_IPV4 != 0 {
        (
            IpAddr::V4(Ipv4Addr::new(
                b[off + 12],
                b[off + 13],
                b[off + 14],
                b[off + 15],
            )),
            None,
        )
    } else {
        kernel_ipv6(<[u8; 16]>::try_from(&b[off..off + 16]).expect("16 bytes"))
    }
}

/// An IPv6 address as xnu stores it in a PCB. Link-local unicast (fe80::/10) and interface- or
/// link-local multicast (ff01::/16, ff02::/16) carry the interface index in bytes 2–3 (KAME's
/// embedded scope, xnu bsd/netinet6/scope6.c; Apple's netstat clears them before printing):
/// returned separately, with those bytes zeroed. `::ffff:a.b.c.d` (a dual-stack socket
/// talking IPv4) becomes the IPv4 address.
pub fn kernel_ipv6(mut raw: [u8; 16]) -> (IpAddr, Option<u16>) {
    let v6 = Ipv6Addr::from(raw);
    if let Some(v4) = v6.to_ipv4_mapped() {
        return (IpAddr::V4(v4), None);
    }
    let link_local = raw[0] == 0xfe && raw[1] & 0xc0 == 0x80;
    let scoped_multicast = raw[0] == 0xff && (raw[1] == 0x01 || raw[1] == 0x02);
    if link_local || scoped_multicast {
        let scope = u16::from_be_bytes([raw[2], raw[3]]);
        raw[2] = 0;
        raw[3] = 0;
        return (
            IpAddr::V6(Ipv6Addr::from(raw)),
            (scope != 0).then_some(scope),
        );
    }
    (IpAddr::V6(v6), None)
}

/// Parses a pcblist_n buffer. `darwin_major` picks how `xst_tc_stats` is read (≤ 23: sum the
/// four traffic classes; ≥ 24: entry 0). Truncated or lying records are an error, never a
/// panic or an out-of-bounds read.
pub fn parse(buf: &[u8], is_tcp: bool, darwin_major: u32) -> Result<Vec<PcbSocket>, String> {
    let gen_len = size_of::<XInpGen>();
    if buf.len() < gen_len {
        return if buf.is_empty() {
            Ok(vec![])
        } else {
            Err(format!(
                "pcblist_n: {} bytes, shorter than xinpgen",
                buf.len()
            ))
        };
    }
    let head_len = u32_at(buf, 0) as usize;
    if head_len < gen_len {
        return Err(format!("pcblist_n: xinpgen length {head_len}"));
    }
    let generation = u64_at(buf, offset_of!(XInpGen, xig_gen));
    let want = if is_tcp { ALL_TCP } else { ALL_INP };
    let mut out = Vec::new();
    let mut next = roundup64(head_len);
    let (mut which, mut so, mut st, mut inp, mut tp) =
        (0u32, 0usize, 0usize, 0usize, None::<usize>);
    while next + 8 <= buf.len() {
        let len = u32_at(buf, next) as usize;
        let kind = u32_at(buf, next + 4);
        if len <= gen_len {
            break; // the trailing xinpgen
        }
        if next + len > buf.len() {
            return Err(format!(
                "pcblist_n: record of {len} bytes at {next} runs past the {}-byte buffer",
                buf.len()
            ));
        }
        let min = match kind {
            XSO_SOCKET => XSOCKET_N_LEN_V12,
            XSO_RCVBUF | XSO_SNDBUF => size_of::<XSockbufN>(),
            XSO_STATS => size_of::<XSockStatN>(),
            XSO_INPCB => size_of::<XInpcbN>(),
            XSO_TCPCB => size_of::<XTcpcbN>(),
            _ => 0,
        };
        if len < min {
            return Err(format!(
                "pcblist_n: kind {kind:#x} record of {len} bytes, needs {min}"
            ));
        }
        // Only the exact kinds we know take a slot. A record whose kind has several bits set (or
        // an unknown one) must not mark a slot as filled: the slot's offset would be stale.
        let known = matches!(
            kind,
            XSO_SOCKET | XSO_RCVBUF | XSO_SNDBUF | XSO_STATS | XSO_INPCB | XSO_TCPCB
        );
        if known && which & kind == 0 {
            which |= kind;
            match kind {
                XSO_SOCKET => so = next,
                XSO_STATS => st = next,
                XSO_INPCB => inp = next,
                XSO_TCPCB => tp = Some(next),
                _ => {}
            }
        }
        next += roundup64(len);
        if which & want != want {
            continue;
        }
        which = 0;
        // Freed while the kernel copied the list out.
        if u64_at(buf, inp + offset_of!(XInpcbN, inp_gencnt)) > generation {
            tp = None;
            continue;
        }
        let so_len = u32_at(buf, so) as usize;
        let vflag = buf[inp + offset_of!(XInpcbN, inp_vflag)];
        let stats = st + offset_of!(XSockStatN, xst_tc_stats);
        let entries = if darwin_major >= 24 { 1 } else { 4 };
        let (mut rx, mut tx) = (0u64, 0u64);
        for i in 0..entries {
            let e = stats + i * size_of::<DataStats>();
            rx = rx.saturating_add(u64_at(buf, e + offset_of!(DataStats, rxbytes)));
            tx = tx.saturating_add(u64_at(buf, e + offset_of!(DataStats, txbytes)));
        }
        let port = |o: usize| u16::from_be_bytes([buf[inp + o], buf[inp + o + 1]]);
        let (local, local_scope) = address(buf, inp + offset_of!(XInpcbN, inp_dependladdr), vflag);
        let (remote, remote_scope) =
            address(buf, inp + offset_of!(XInpcbN, inp_dependfaddr), vflag);
        out.push(PcbSocket {
            so_handle: u64_at(buf, so + offset_of!(XSocketN, xso_so)),
            so_gencnt: (so_len >= offset_of!(XSocketN, so_gencnt) + 8)
                .then(|| u64_at(buf, so + offset_of!(XSocketN, so_gencnt))),
            protocol: i32_at(buf, so + offset_of!(XSocketN, xso_protocol)),
            uid: u32_at(buf, so + offset_of!(XSocketN, so_uid)),
            last_pid: i32_at(buf, so + offset_of!(XSocketN, so_last_pid)),
            e_pid: i32_at(buf, so + offset_of!(XSocketN, so_e_pid)),
            local,
            local_port: port(offset_of!(XInpcbN, inp_lport)),
            remote,
            remote_port: port(offset_of!(XInpcbN, inp_fport)),
            local_scope,
            remote_scope,
            rx_bytes: rx,
            tx_bytes: tx,
            tcp_state: tp
                .take()
                .map(|t| i32_at(buf, t + offset_of!(XTcpcbN, t_state))),
        });
    }
    Ok(out)
}

/// osquery's spelling of macOS TCP states (`tcp_fsm.h` order).
pub fn tcp_state_name(state: i32) -> Option<&'static str> {
    const NAMES: [&str; 11] = [
        "CLOSED",
        "LISTEN",
        "SYN_SENT",
        "SYN_RECEIVED",
        "ESTABLISHED",
        "CLOSE_WAIT",
        "FIN_WAIT_1",
        "CLOSING",
        "LAST_ACK",
        "FIN_WAIT_2",
        "TIME_WAIT",
    ];
    usize::try_from(state)
        .ok()
        .and_then(|i| NAMES.get(i).copied())
}

#[cfg(test)]
pub mod fixtures {
    //! Synthetic pcblist_n buffers written field by field at the header offsets.
    use super::*;

    pub struct Sock {
        pub v4: bool,
        pub local: [u8; 16],
        pub lport: u16,
        pub remote: [u8; 16],
        pub rport: u16,
        pub last_pid: i32,
        pub e_pid: i32,
        pub gencnt: u64,
        pub stats: [(u64, u64); 4],
        pub state: i32,
    }

    fn put(b: &mut [u8], o: usize, v: &[u8]) {
        b[o..o + v.len()].copy_from_slice(v);
    }

    fn record(buf: &mut Vec<u8>, len: usize, kind: u32, fill: impl FnOnce(&mut [u8])) {
        let mut r = vec![0u8; roundup64(len)];
        put(&mut r, 0, &(len as u32).to_ne_bytes());
        put(&mut r, 4, &kind.to_ne_bytes());
        fill(&mut r);
        buf.extend(r);
    }

    /// `macos13`: 104-byte xsocket_n (13+) or 76 (≤ 12).
    pub fn buffer(socks: &[Sock], tcp: bool, macos13: bool, generation: u64) -> Vec<u8> {
        let gen = |buf: &mut Vec<u8>| {
            let mut g = vec![0u8; 24];
            put(&mut g, 0, &24u32.to_ne_bytes());
            put(&mut g, 4, &(socks.len() as u32).to_ne_bytes());
            put(&mut g, 8, &generation.to_ne_bytes());
            buf.extend(g);
        };
        let mut buf = Vec::new();
        gen(&mut buf);
        for s in socks {
            record(&mut buf, 104, XSO_INPCB, |r| {
                put(r, 16, &s.rport.to_be_bytes());
                put(r, 18, &s.lport.to_be_bytes());
                put(r, 28, &(generation - 1).to_ne_bytes());
                r[44] = if s.v4 { INP_IPV4 } else { 0x2 };
                put(r, 48, &s.remote);
                put(r, 64, &s.local);
            });
            let so_len = if macos13 { 104 } else { 76 };
            record(&mut buf, so_len, XSO_SOCKET, |r| {
                put(r, 8, &0xdead_beef_u64.to_ne_bytes());
                put(r, 36, &(if tcp { 6i32 } else { 17 }).to_ne_bytes());
                put(r, 64, &501u32.to_ne_bytes());
                put(r, 68, &s.last_pid.to_ne_bytes());
                put(r, 72, &s.e_pid.to_ne_bytes());
                if macos13 {
                    put(r, 76, &s.gencnt.to_ne_bytes());
                }
            });
            record(&mut buf, 32, XSO_RCVBUF, |_| {});
            record(&mut buf, 32, XSO_SNDBUF, |_| {});
            record(&mut buf, 136, XSO_STATS, |r| {
                for (i, (rx, tx)) in s.stats.iter().enumerate() {
                    put(r, 8 + 32 * i + 8, &rx.to_ne_bytes());
                    put(r, 8 + 32 * i + 24, &tx.to_ne_bytes());
                }
            });
            if tcp {
                record(&mut buf, 204, XSO_TCPCB, |r| {
                    put(r, 36, &s.state.to_ne_bytes())
                });
            }
        }
        if !socks.is_empty() {
            gen(&mut buf);
        }
        buf
    }

    pub fn v4(a: [u8; 4]) -> [u8; 16] {
        let mut x = [0u8; 16];
        x[12..].copy_from_slice(&a);
        x
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;

    #[test]
    fn link_local_scope_bytes_are_split_off_and_mapped_v4_is_v4() {
        // fe80::1 on interface 4, as xnu stores it: fe80:0004::1.
        let mut raw = [0u8; 16];
        raw[0] = 0xfe;
        raw[1] = 0x80;
        raw[3] = 4;
        raw[15] = 1;
        assert_eq!(kernel_ipv6(raw), ("fe80::1".parse().unwrap(), Some(4)));
        let mut mc = [0u8; 16];
        mc[0] = 0xff;
        mc[1] = 0x02;
        mc[3] = 7;
        mc[15] = 0xfb;
        assert_eq!(kernel_ipv6(mc), ("ff02::fb".parse().unwrap(), Some(7)));
        // Global addresses keep bytes 2-3; site multicast (ff05) is not interface-scoped.
        let g: std::net::Ipv6Addr = "2001:db8:4::1".parse().unwrap();
        assert_eq!(kernel_ipv6(g.octets()), (IpAddr::V6(g), None));
        let s: std::net::Ipv6Addr = "ff05:3::1".parse().unwrap();
        assert_eq!(kernel_ipv6(s.octets()).1, None);
        let m: std::net::Ipv6Addr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(
            kernel_ipv6(m.octets()),
            ("192.0.2.7".parse().unwrap(), None)
        );
    }
    use super::*;

    fn socks() -> Vec<Sock> {
        vec![
            Sock {
                v4: true,
                local: v4([192, 0, 2, 10]),
                lport: 50123,
                remote: v4([203, 0, 113, 9]),
                rport: 443,
                last_pid: 501,
                e_pid: 0,
                gencnt: 77,
                stats: [(100, 10), (200, 20), (300, 30), (400, 40)],
                state: 4,
            },
            Sock {
                v4: false,
                local: "2001:db8::1".parse::<Ipv6Addr>().unwrap().octets(),
                lport: 5353,
                remote: "2001:db8::2".parse::<Ipv6Addr>().unwrap().octets(),
                rport: 8443,
                last_pid: 88,
                e_pid: 1234,
                gencnt: 78,
                stats: [(1, 2), (1000, 1000), (0, 0), (0, 0)],
                state: 10,
            },
        ]
    }

    #[test]
    fn macos13_tcp_shape() {
        let buf = buffer(&socks(), true, true, 100);
        assert_eq!(
            buf.len(),
            24 + 2 * 616 + 24,
            "616-byte TCP items on macOS 13+"
        );
        let s = parse(&buf, true, 23).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].local, "192.0.2.10".parse::<IpAddr>().unwrap());
        assert_eq!((s[0].local_port, s[0].remote_port), (50123, 443));
        assert_eq!(s[0].remote, "203.0.113.9".parse::<IpAddr>().unwrap());
        assert_eq!(
            (s[0].rx_bytes, s[0].tx_bytes),
            (1000, 100),
            "macOS 14: four traffic classes summed"
        );
        assert_eq!(
            (s[0].so_gencnt, s[0].tcp_state, s[0].last_pid),
            (Some(77), Some(4), 501)
        );
        assert_eq!((s[1].e_pid, s[1].remote_port), (1234, 8443));
        assert_eq!(s[1].remote, "2001:db8::2".parse::<IpAddr>().unwrap());
        assert_eq!(tcp_state_name(s[1].tcp_state.unwrap()), Some("TIME_WAIT"));
        // macOS 15: entry 0 is data, entry 1 drops.
        let s = parse(&buf, true, 24).unwrap();
        assert_eq!((s[0].rx_bytes, s[0].tx_bytes), (100, 10));
        assert_eq!(
            (s[1].rx_bytes, s[1].tx_bytes),
            (1, 2),
            "drops are not bytes"
        );
    }

    #[test]
    fn macos12_shape_and_udp() {
        let buf = buffer(&socks(), true, false, 100);
        assert_eq!(
            buf.len(),
            24 + 2 * 592 + 24,
            "592-byte TCP items on macOS 12"
        );
        let s = parse(&buf, true, 21).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].so_gencnt, s[0].last_pid, s[0].tcp_state),
            (None, 501, Some(4))
        );
        let udp = buffer(&socks(), false, true, 100);
        assert_eq!(udp.len(), 24 + 2 * 408 + 24, "408-byte UDP items");
        let s = parse(&udp, false, 23).unwrap();
        assert_eq!((s.len(), s[0].protocol, s[0].tcp_state), (2, 17, None));
    }

    #[test]
    fn empty_lists_and_sockets_freed_during_copy() {
        assert!(
            parse(&buffer(&[], true, true, 5), true, 23)
                .unwrap()
                .is_empty(),
            "no trailer when empty"
        );
        assert!(parse(&[], true, 23).unwrap().is_empty());
        // A generation newer than the header's: the kernel freed it mid-copy.
        let mut buf = buffer(&socks()[..1], true, true, 100);
        buf[24 + 28..24 + 36].copy_from_slice(&200u64.to_ne_bytes());
        assert!(parse(&buf, true, 23).unwrap().is_empty());
    }

    #[test]
    fn fuzzer_found_inputs_never_panic() {
        // A record of kind 0x95 (several kind bits at once) once marked slots it never filled.
        let crash = include_bytes!("../../../../tests/fixtures/pcblist-fuzz-crash-1.bin");
        for darwin in [21, 23, 24] {
            let _ = parse(crash, true, darwin);
            let _ = parse(crash, false, darwin);
        }
    }

    #[test]
    fn truncated_and_corrupted_buffers_are_errors() {
        let buf = buffer(&socks(), true, true, 100);
        for cut in [1, 23, 24 + 50, 24 + 616 + 7, buf.len() - 30] {
            let r = parse(&buf[..cut], true, 23);
            assert!(
                r.is_err() || r.as_ref().unwrap().len() < 2,
                "cut {cut}: {r:?}"
            );
        }
        assert!(parse(&buf[..24 + 50], true, 23).is_err());
        let mut lying = buf.clone();
        lying[24..28].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(parse(&lying, true, 23).is_err());
        let mut short_kind = buf.clone();
        short_kind[24..28].copy_from_slice(&40u32.to_ne_bytes()); // an xinpcb_n of 40 bytes
        assert!(parse(&short_kind, true, 23)
            .unwrap_err()
            .contains("needs 104"));
        let mut bad_head = buf;
        bad_head[0..4].copy_from_slice(&3u32.to_ne_bytes());
        assert!(parse(&bad_head, true, 23).is_err());
    }
}

/// Sockets from `net.inet.{tcp,udp}.pcblist_n`: no privilege needed, every user's sockets,
/// byte counters included. The owner is the delegated pid when set, else the last pid that
/// used the socket. Only type-checked here: proving the counters needs a Mac.
#[cfg(target_os = "macos")]
pub mod collector {
    use super as pcblist;
    use crate::platform::SocketSample;

    fn sysctl_bytes(name: &std::ffi::CStr) -> Result<Vec<u8>, String> {
        for _ in 0..5 {
            let mut len: libc::size_t = 0;
            // SAFETY: a null buffer asks for the size.
            if unsafe {
                libc::sysctlbyname(
                    name.as_ptr(),
                    std::ptr::null_mut(),
                    &mut len,
                    std::ptr::null_mut(),
                    0,
                )
            } != 0
            {
                return Err(format!(
                    "{}: {}",
                    name.to_string_lossy(),
                    std::io::Error::last_os_error()
                ));
            }
            // Room for sockets created between the two calls.
            let mut buf = vec![0u8; len + len / 8 + 4096];
            let mut got = buf.len();
            // SAFETY: buf holds `got` bytes.
            let rc = unsafe {
                libc::sysctlbyname(
                    name.as_ptr(),
                    buf.as_mut_ptr().cast(),
                    &mut got,
                    std::ptr::null_mut(),
                    0,
                )
            };
            if rc == 0 {
                buf.truncate(got);
                return Ok(buf);
            }
            if std::io::Error::last_os_error().raw_os_error() != Some(libc::ENOMEM) {
                return Err(format!(
                    "{}: {}",
                    name.to_string_lossy(),
                    std::io::Error::last_os_error()
                ));
            }
        }
        Err(format!("{}: the list kept growing", name.to_string_lossy()))
    }

    /// Darwin major version from `kern.osrelease` ("24.1.0" → 24).
    fn darwin_major() -> u32 {
        let mut buf = [0u8; 64];
        let mut len = buf.len();
        // SAFETY: buf holds len bytes.
        let rc = unsafe {
            libc::sysctlbyname(
                c"kern.osrelease".as_ptr(),
                buf.as_mut_ptr().cast(),
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        if rc != 0 {
            return 0;
        }
        String::from_utf8_lossy(&buf[..len.min(buf.len())])
            .trim_end_matches('\0')
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0)
    }

    #[derive(Default)]
    pub struct Collector {
        darwin: Option<u32>,
        warning: Option<String>,
    }

    /// The owner is the last pid that used the socket; a delegated ("effective") pid, as
    /// nsurlsessiond sets for the app it works for, is kept beside it for the sampler to
    /// check (it may name a process that exited or a reused pid).
    pub fn to_sample(s: pcblist::PcbSocket, tcp: bool) -> SocketSample {
        SocketSample {
            protocol: if tcp { "tcp" } else { "udp" },
            local: s.local,
            local_port: s.local_port,
            remote: s.remote,
            remote_port: s.remote_port,
            state: s.tcp_state.and_then(pcblist::tcp_state_name),
            listening: s.tcp_state == Some(1),
            pid: (s.last_pid > 0).then_some(s.last_pid as i64),
            delegate_pid: (s.e_pid > 0 && s.e_pid != s.last_pid).then_some(s.e_pid as i64),
            socket_id: s.so_gencnt.unwrap_or(s.so_handle),
            bytes_sent: i64::try_from(s.tx_bytes).ok(),
            bytes_received: i64::try_from(s.rx_bytes).ok(),
        }
    }

    impl Collector {
        /// pcblist has no per-connection read: every sample is a full one (the sampler reads
        /// [`crate::platform::PARTIAL_SOCKET_SAMPLES`] and never asks for fewer here).
        pub fn sample_connections(
            &mut self,
            _tcp: &[crate::facts::FlowTuple],
        ) -> Result<Vec<SocketSample>, String> {
            self.sample()
        }

        /// pcblist names each socket's pid itself: nothing to skip.
        pub fn sample_with(
            &mut self,
            _attributed: &dyn Fn(crate::facts::FlowTuple) -> bool,
        ) -> Result<Vec<SocketSample>, String> {
            self.sample()
        }

        /// The sockets of every protocol that could be read. One protocol failing (a UDP
        /// sysctl or parse error) does not discard the others: its error waits in
        /// [`Collector::take_warning`]. Only when every protocol fails is it an error.
        pub fn sample(&mut self) -> Result<Vec<SocketSample>, String> {
            let darwin = *self.darwin.get_or_insert_with(darwin_major);
            let reads = [
                (true, c"net.inet.tcp.pcblist_n"),
                (false, c"net.inet.udp.pcblist_n"),
            ]
            .into_iter()
            .map(|(tcp, name)| {
                sysctl_bytes(name)
                    .and_then(|buf| pcblist::parse(&buf, tcp, darwin))
                    .map(|socks| socks.into_iter().map(|s| to_sample(s, tcp)).collect())
            });
            let (out, warning) = crate::platform::keep_what_was_read(reads)?;
            self.warning = warning;
            Ok(out)
        }

        pub fn take_warning(&mut self) -> Option<String> {
            self.warning.take()
        }

        /// Owners come with each pcblist entry (`so_last_pid`): nothing to fall back from.
        pub fn owner_fallback(&self) -> Option<String> {
            None
        }
    }
}
