//! Linux `NETLINK_SOCK_DIAG` messages, built and parsed from bytes (no I/O here).
//!
//! Layouts from linux/netlink.h, linux/sock_diag.h and linux/inet_diag.h:
//! * `nlmsghdr { u32 len; u16 type; u16 flags; u32 seq; u32 pid }` — 16 bytes, host order;
//! * `inet_diag_req_v2 { u8 family, protocol, ext, pad; u32 states; inet_diag_sockid id }` — 56;
//! * the older `inet_diag_req { u8 family, src_len, dst_len, ext; inet_diag_sockid id;
//!   u32 states, dbs }` — 60, sent as `TCPDIAG_GETSOCK` (18): the kernel's compatibility path
//!   (`inet_diag_rcv_msg_compat` → `inet_diag_dump_compat` in net/ipv4/inet_diag.c) dumps
//!   with the family set to `AF_UNSPEC`, so one walk of the TCP hash tables returns both
//!   families, each reply an `inet_diag_msg` as below with that type;
//! * `inet_diag_sockid { be16 sport, dport; be32 src[4], dst[4]; u32 if; u32 cookie[2] }` — 48;
//! * `inet_diag_msg { u8 family, state, timer, retrans; sockid id; u32 expires, rqueue, wqueue,
//!   uid, inode }` — 72, followed by `rtattr { u16 len; u16 type }` attributes, 4-aligned.
//!
//! `INET_DIAG_INFO` (type 2) carries `struct tcp_info`, read with length checks so old kernels
//! with a shorter struct still work: `tcpi_bytes_acked` u64 @120 and `tcpi_bytes_received`
//! u64 @128 (Linux ≥ 4.1/4.2), `tcpi_bytes_sent` u64 @200 and `tcpi_bytes_retrans` u64 @208
//! (Linux ≥ 4.19).
//!
//! The same message arrives unasked, with `tcp_info`, on the `SKNLGRP_INET{,6}_TCP_DESTROY`
//! multicast groups when a TCP socket is freed: a connection's final counters.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const NLMSG_HDR_LEN: usize = 16;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// The pre-`SOCK_DIAG_BY_FAMILY` TCP request; its replies carry this type too.
pub const TCPDIAG_GETSOCK: u16 = 18;
pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_DUMP: u16 = 0x300;
pub const INET_DIAG_INFO: u16 = 2;
const INET_DIAG_MSG_LEN: usize = 72;
const REQ_LEN: usize = 56;
/// `tcp_states.h`: a listening socket (used by the Linux collector only).
#[cfg(target_os = "linux")]
const TCP_LISTEN: u8 = 10;
const COMPAT_REQ_LEN: usize = 60;
/// Every socket state a dump returns (TCP_ESTABLISHED 1 … TCP_NEW_SYN_RECV 12; UDP uses 1
/// and 7) but `TCP_BOUND_INACTIVE` (13, Linux ≥ 6.6, include/net/tcp_states.h): asking for
/// that one makes the kernel also walk the whole bind hash (tcp_diag_dump, formerly
/// inet_diag_dump_icsk) for sockets that are bound and nothing else, which are never flows.
/// LISTEN (shown) and TIME_WAIT (ends a flow) stay in.
pub const DUMP_STATES: u32 = ((1 << 13) - 1) & !1;
const TCPI_BYTES_ACKED: usize = 120;
const TCPI_BYTES_RECEIVED: usize = 128;
const TCPI_BYTES_SENT: usize = 200;
const TCPI_BYTES_RETRANS: usize = 208;

/// One socket from a dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiagSocket {
    pub family: u8,
    /// Kernel TCP state (1 ESTABLISHED … 10 LISTEN; 7 CLOSE for unconnected UDP).
    pub state: u8,
    pub local: IpAddr,
    pub local_port: u16,
    pub remote: IpAddr,
    pub remote_port: u16,
    pub uid: u32,
    /// 0 for sockets no file refers to any more (TIME_WAIT, orphans).
    pub inode: u32,
    pub bytes_acked: Option<u64>,
    pub bytes_received: Option<u64>,
    /// Payload bytes put on the wire, retransmissions included, and those retransmissions.
    pub bytes_sent: Option<u64>,
    pub bytes_retrans: Option<u64>,
}

fn request_header(kind: u16, flags: u16, body_len: usize, seq: u32) -> Vec<u8> {
    let len = NLMSG_HDR_LEN + body_len;
    let mut b = Vec::with_capacity(len);
    b.extend_from_slice(&(len as u32).to_ne_bytes());
    b.extend_from_slice(&kind.to_ne_bytes());
    b.extend_from_slice(&flags.to_ne_bytes());
    b.extend_from_slice(&seq.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes());
    b
}

/// The dump request for one family and protocol, every state of [`DUMP_STATES`], asking for
/// `tcp_info`.
pub fn dump_request(family: u8, protocol: u8, seq: u32) -> Vec<u8> {
    let mut b = request_header(
        SOCK_DIAG_BY_FAMILY,
        NLM_F_REQUEST | NLM_F_DUMP,
        REQ_LEN,
        seq,
    );
    b.extend_from_slice(&[family, protocol, 1 << (INET_DIAG_INFO - 1), 0]);
    b.extend_from_slice(&DUMP_STATES.to_ne_bytes());
    b.resize(NLMSG_HDR_LEN + REQ_LEN, 0); // a zero sockid: no filter
    b
}

/// The compatibility dump request: TCP sockets of both families in one walk, every state of
/// [`DUMP_STATES`], asking for `tcp_info`.
pub fn tcp_compat_dump_request(seq: u32) -> Vec<u8> {
    let mut b = request_header(
        TCPDIAG_GETSOCK,
        NLM_F_REQUEST | NLM_F_DUMP,
        COMPAT_REQ_LEN,
        seq,
    );
    // family (the kernel dumps AF_UNSPEC whatever is here), src_len, dst_len, ext
    b.extend_from_slice(&[0, 0, 0, 1 << (INET_DIAG_INFO - 1)]);
    b.extend_from_slice(&[0u8; 48]); // a zero sockid: no filter
    b.extend_from_slice(&DUMP_STATES.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes()); // idiag_dbs, unused
    b
}

/// `inet_diag_sockid.idiag_cookie` meaning "any socket with this tuple" (INET_DIAG_NOCOOKIE).
const NO_COOKIE: [u8; 8] = [0xff; 8];

/// A request for one connection by its tuple (no dump), asking for `tcp_info`. An IPv4 tuple
/// asked with `family` 10 is spelled as its IPv4-mapped address (a dual-stack socket).
pub fn exact_request(
    family: u8,
    protocol: u8,
    (local, local_port, remote, remote_port): (IpAddr, u16, IpAddr, u16),
    seq: u32,
) -> Vec<u8> {
    let mut b = request_header(SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, REQ_LEN, seq);
    b.extend_from_slice(&[family, protocol, 1 << (INET_DIAG_INFO - 1), 0]);
    b.extend_from_slice(&u32::MAX.to_ne_bytes());
    b.extend_from_slice(&local_port.to_be_bytes());
    b.extend_from_slice(&remote_port.to_be_bytes());
    for a in [local, remote] {
        let raw: [u8; 16] = match (family, a) {
            (2, IpAddr::V4(v4)) => {
                let mut r = [0u8; 16];
                r[..4].copy_from_slice(&v4.octets());
                r
            }
            (_, IpAddr::V4(v4)) => v4.to_ipv6_mapped().octets(),
            (_, IpAddr::V6(v6)) => v6.octets(),
        };
        b.extend_from_slice(&raw);
    }
    b.extend_from_slice(&0u32.to_ne_bytes()); // any interface
    b.extend_from_slice(&NO_COOKIE);
    debug_assert_eq!(b.len(), NLMSG_HDR_LEN + REQ_LEN);
    b
}

/// Replies to a batch of [`exact_request`]s: one message per request, a socket or an error.
#[derive(Debug, Default)]
pub struct ExactReplies {
    pub sockets: Vec<DiagSocket>,
    /// Requests answered (sockets, "no such socket", or another error).
    pub answered: usize,
    /// The first error other than "no such socket" (a connection that closed meanwhile).
    pub error: Option<String>,
}

/// Parses one buffer of replies to exact requests. Unlike a dump, an error message answers
/// one request and does not end the batch; malformed bytes are still an error.
pub fn parse_exact_replies(buf: &[u8], out: &mut ExactReplies) -> Result<(), String> {
    for message in messages(buf) {
        let (kind, body) = message?;
        match kind {
            NLMSG_ERROR => {
                out.answered += 1;
                let errno = errno_of(body);
                if errno != 0 && errno != libc::ENOENT && out.error.is_none() {
                    out.error = Some(format!(
                        "sock_diag: {}",
                        std::io::Error::from_raw_os_error(errno)
                    ));
                }
            }
            SOCK_DIAG_BY_FAMILY => {
                out.answered += 1;
                out.sockets.push(parse_inet_diag_msg(body)?);
            }
            _ => {}
        }
    }
    Ok(())
}

/// The (type, body) of each netlink message in a buffer, 4-aligned; a header or length that
/// does not fit is an error (and ends the walk), never a panic.
fn messages(buf: &[u8]) -> impl Iterator<Item = Result<(u16, &[u8]), String>> {
    let mut off = 0;
    std::iter::from_fn(move || {
        if off >= buf.len() {
            return None;
        }
        if buf.len() - off < NLMSG_HDR_LEN {
            off = buf.len();
            return Some(Err("truncated netlink header".into()));
        }
        let len = u32_ne(buf, off) as usize;
        let kind = u16_ne(buf, off + 4);
        if len < NLMSG_HDR_LEN || off + len > buf.len() {
            off = buf.len();
            return Some(Err(format!(
                "netlink message length {len} does not fit the buffer"
            )));
        }
        let body = &buf[off + NLMSG_HDR_LEN..off + len];
        off += (len + 3) & !3;
        Some(Ok((kind, body)))
    })
}

/// The errno of an `nlmsgerr` body (0 for an acknowledgement). It is a negated errno; a
/// hostile i32::MIN must not overflow.
fn errno_of(body: &[u8]) -> i32 {
    if body.len() >= 4 {
        (u32_ne(body, 0) as i32).saturating_neg()
    } else {
        0
    }
}

fn u16_ne(b: &[u8], o: usize) -> u16 {
    u16::from_ne_bytes([b[o], b[o + 1]])
}
fn u32_ne(b: &[u8], o: usize) -> u32 {
    u32::from_ne_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}
fn u64_ne(b: &[u8], o: usize) -> u64 {
    u64::from_ne_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}

fn addr(family: u8, raw: &[u8]) -> Result<IpAddr, String> {
    match family {
        2 => Ok(IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))),
        10 => {
            let v6 = Ipv6Addr::from(<[u8; 16]>::try_from(&raw[..16]).expect("16 bytes"));
            // Dual-stack sockets talking IPv4 show as ::ffff:a.b.c.d: report the IPv4 address.
            Ok(v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)))
        }
        f => Err(format!("unknown address family {f}")),
    }
}

/// What one receive buffer held.
#[derive(Debug, Default)]
pub struct DumpPart {
    pub sockets: Vec<DiagSocket>,
    /// NLMSG_DONE seen: the dump is complete.
    pub done: bool,
}

/// Parses one buffer of netlink messages. Truncated or inconsistent input is an error, never
/// a panic; a kernel error message becomes its errno text.
pub fn parse_dump(buf: &[u8]) -> Result<DumpPart, String> {
    let mut sockets = Vec::new();
    let done = parse_dump_each(buf, |s| sockets.push(s))?;
    Ok(DumpPart { sockets, done })
}

/// [`parse_dump`] handing each socket to `each` as it is parsed (no list per buffer);
/// returns whether the dump is complete. On an error some sockets may have been handed over.
pub fn parse_dump_each(buf: &[u8], mut each: impl FnMut(DiagSocket)) -> Result<bool, String> {
    for message in messages(buf) {
        let (kind, body) = message?;
        match kind {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => {
                let errno = errno_of(body);
                if errno == 0 {
                    // An acknowledgement, not an error.
                    return Ok(true);
                }
                return Err(format!(
                    "sock_diag: {}",
                    std::io::Error::from_raw_os_error(errno)
                ));
            }
            SOCK_DIAG_BY_FAMILY | TCPDIAG_GETSOCK => each(parse_inet_diag_msg(body)?),
            _ => {}
        }
    }
    Ok(false)
}

pub fn parse_inet_diag_msg(body: &[u8]) -> Result<DiagSocket, String> {
    if body.len() < INET_DIAG_MSG_LEN {
        return Err(format!(
            "inet_diag_msg of {} bytes (needs {INET_DIAG_MSG_LEN})",
            body.len()
        ));
    }
    let family = body[0];
    let mut s = DiagSocket {
        family,
        state: body[1],
        local_port: u16::from_be_bytes([body[4], body[5]]),
        remote_port: u16::from_be_bytes([body[6], body[7]]),
        local: addr(family, &body[8..24])?,
        remote: addr(family, &body[24..40])?,
        uid: u32_ne(body, 64),
        inode: u32_ne(body, 68),
        bytes_acked: None,
        bytes_received: None,
        bytes_sent: None,
        bytes_retrans: None,
    };
    let mut off = INET_DIAG_MSG_LEN;
    while off + 4 <= body.len() {
        let len = u16_ne(body, off) as usize;
        let kind = u16_ne(body, off + 2);
        if len < 4 || off + len > body.len() {
            return Err(format!("rtattr length {len} does not fit"));
        }
        if kind == INET_DIAG_INFO {
            let info = &body[off + 4..off + len];
            if info.len() >= TCPI_BYTES_ACKED + 8 {
                s.bytes_acked = Some(u64_ne(info, TCPI_BYTES_ACKED));
            }
            if info.len() >= TCPI_BYTES_RECEIVED + 8 {
                s.bytes_received = Some(u64_ne(info, TCPI_BYTES_RECEIVED));
            }
            if info.len() >= TCPI_BYTES_RETRANS + 8 {
                s.bytes_sent = Some(u64_ne(info, TCPI_BYTES_SENT));
                s.bytes_retrans = Some(u64_ne(info, TCPI_BYTES_RETRANS));
            }
        }
        off += (len + 3) & !3;
    }
    Ok(s)
}

/// osquery's spelling of Linux TCP states (`process_open_sockets`).
pub fn tcp_state_name(state: u8) -> Option<&'static str> {
    Some(match state {
        1 => "ESTABLISHED",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "FIN_WAIT1",
        5 => "FIN_WAIT2",
        6 => "TIME_WAIT",
        7 => "CLOSE",
        8 => "CLOSE_WAIT",
        9 => "LAST_ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        _ => return None,
    })
}

#[cfg(test)]
pub mod fixtures {
    /// Builds an `inet_diag_msg` netlink message as the kernel would.
    #[allow(clippy::too_many_arguments)]
    pub fn diag_msg(
        family: u8,
        state: u8,
        src: &[u8],
        sport: u16,
        dst: &[u8],
        dport: u16,
        inode: u32,
        tcp_info: Option<&[u8]>,
    ) -> Vec<u8> {
        let mut body = vec![family, state, 0, 0];
        body.extend_from_slice(&sport.to_be_bytes());
        body.extend_from_slice(&dport.to_be_bytes());
        let mut a = [0u8; 16];
        a[..src.len()].copy_from_slice(src);
        body.extend_from_slice(&a);
        let mut a = [0u8; 16];
        a[..dst.len()].copy_from_slice(dst);
        body.extend_from_slice(&a);
        body.extend_from_slice(&[0u8; 12]); // if, cookie
        body.extend_from_slice(&[0u8; 12]); // expires, rqueue, wqueue
        body.extend_from_slice(&1000u32.to_ne_bytes());
        body.extend_from_slice(&inode.to_ne_bytes());
        if let Some(info) = tcp_info {
            body.extend_from_slice(&((info.len() + 4) as u16).to_ne_bytes());
            body.extend_from_slice(&super::INET_DIAG_INFO.to_ne_bytes());
            body.extend_from_slice(info);
            while body.len() % 4 != 0 {
                body.push(0);
            }
        }
        nlmsg(super::SOCK_DIAG_BY_FAMILY, &body)
    }

    pub fn nlmsg(kind: u16, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((body.len() + 16) as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&2u16.to_ne_bytes());
        m.extend_from_slice(&[0u8; 8]);
        m.extend_from_slice(body);
        m
    }

    /// A `tcp_info` of `len` bytes with the two byte counters set.
    pub fn tcp_info(len: usize, acked: u64, received: u64) -> Vec<u8> {
        let mut info = vec![0u8; len];
        if len >= 128 {
            info[120..128].copy_from_slice(&acked.to_ne_bytes());
        }
        if len >= 136 {
            info[128..136].copy_from_slice(&received.to_ne_bytes());
        }
        info
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn request_is_well_formed() {
        let r = dump_request(2, 6, 7);
        assert_eq!(r.len(), 72);
        assert_eq!(u32_ne(&r, 0), 72);
        assert_eq!(u16_ne(&r, 4), SOCK_DIAG_BY_FAMILY);
        assert_eq!(u16_ne(&r, 6), NLM_F_REQUEST | NLM_F_DUMP);
        assert_eq!(&r[16..20], &[2, 6, 2, 0]);
        assert_eq!(u32_ne(&r, 20), DUMP_STATES);
        assert_eq!(&r[24..], &[0u8; 48], "no socket filter");
    }

    #[test]
    fn the_states_asked_for_are_every_real_one_but_bound_inactive() {
        // include/net/tcp_states.h: ESTABLISHED 1 … CLOSING 11, NEW_SYN_RECV 12, and the
        // inet_diag pseudo-state BOUND_INACTIVE 13.
        for state in 1..=12 {
            assert_ne!(DUMP_STATES & (1 << state), 0, "state {state}");
        }
        assert_eq!(
            DUMP_STATES & (1 << 13),
            0,
            "bound-inactive walks the bind hash"
        );
        assert_eq!(DUMP_STATES >> 13, 0);
        assert_eq!(DUMP_STATES & 1, 0, "there is no state 0");
    }

    #[test]
    fn compat_request_is_the_60_byte_inet_diag_req() {
        let r = tcp_compat_dump_request(9);
        assert_eq!(r.len(), 16 + 60);
        assert_eq!(u32_ne(&r, 0), 76);
        assert_eq!(u16_ne(&r, 4), TCPDIAG_GETSOCK);
        assert_eq!(u16_ne(&r, 6), NLM_F_REQUEST | NLM_F_DUMP);
        assert_eq!(u32_ne(&r, 8), 9);
        // family, src_len, dst_len, ext (tcp_info)
        assert_eq!(&r[16..20], &[0, 0, 0, 2]);
        assert_eq!(&r[20..68], &[0u8; 48], "no socket filter");
        assert_eq!(u32_ne(&r, 68), DUMP_STATES);
        assert_eq!(u32_ne(&r, 72), 0, "idiag_dbs");
    }

    #[test]
    fn compat_replies_parse_as_sockets_and_other_types_are_skipped() {
        let msg = diag_msg(
            10,
            1,
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            4000,
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            5000,
            9,
            Some(&tcp_info(232, 11, 22)),
        );
        let mut buf = msg.clone();
        buf[4..6].copy_from_slice(&TCPDIAG_GETSOCK.to_ne_bytes());
        let mut other = msg;
        other[4..6].copy_from_slice(&19u16.to_ne_bytes()); // DCCPDIAG_GETSOCK: not ours
        buf.extend(other);
        buf.extend(nlmsg(NLMSG_DONE, &[0, 0, 0, 0]));
        let mut seen = Vec::new();
        assert!(parse_dump_each(&buf, |s| seen.push(s)).unwrap());
        assert_eq!(seen.len(), 1);
        assert_eq!(
            (seen[0].family, seen[0].local_port, seen[0].remote_port),
            (10, 4000, 5000)
        );
        assert_eq!(seen[0].local, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(
            (seen[0].bytes_acked, seen[0].bytes_received),
            (Some(11), Some(22))
        );
        let part = parse_dump(&buf).unwrap();
        assert_eq!((part.sockets, part.done), (seen, true));
    }

    #[test]
    fn an_exact_request_names_the_tuple_in_network_order_and_any_cookie() {
        let tuple = (
            "127.0.0.1".parse().unwrap(),
            50000,
            "192.0.2.9".parse().unwrap(),
            443,
        );
        let r = exact_request(2, 6, tuple, 9);
        assert_eq!(r.len(), 72);
        assert_eq!(u16_ne(&r, 6), NLM_F_REQUEST, "not a dump");
        assert_eq!(u32_ne(&r, 8), 9);
        assert_eq!(&r[16..20], &[2, 6, 2, 0]);
        // sockid at 24: ports big-endian, then 16-byte addresses, interface, cookie.
        assert_eq!(&r[24..28], &[0xc3, 0x50, 0x01, 0xbb]);
        assert_eq!(&r[28..32], &[127, 0, 0, 1]);
        assert_eq!(&r[44..48], &[192, 0, 2, 9]);
        assert_eq!(&r[60..64], &[0; 4]);
        assert_eq!(&r[64..72], &[0xff; 8]);
        // The same IPv4 tuple asked of IPv6 sockets: the mapped address.
        let r6 = exact_request(10, 6, tuple, 10);
        assert_eq!(
            &r6[28..44],
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1]
        );
    }

    #[test]
    fn exact_replies_count_sockets_and_errors_and_keep_only_real_errors() {
        let errno = |e: i32| nlmsg(NLMSG_ERROR, &(-e).to_ne_bytes());
        let mut buf = diag_msg(
            2,
            1,
            &[127, 0, 0, 1],
            50000,
            &[127, 0, 0, 1],
            8080,
            42,
            Some(&tcp_info(280, 101, 7)),
        );
        buf.extend(errno(libc::ENOENT));
        let mut out = ExactReplies::default();
        parse_exact_replies(&buf, &mut out).unwrap();
        assert_eq!((out.answered, out.sockets.len()), (2, 1));
        assert_eq!(out.sockets[0].bytes_acked, Some(101));
        assert_eq!(
            out.error, None,
            "a connection that closed meanwhile is no error"
        );
        parse_exact_replies(&errno(libc::EPERM), &mut out).unwrap();
        assert_eq!(out.answered, 3);
        assert!(out.error.as_deref().unwrap().contains("not permitted"));
        // Truncated bytes are an error, not a panic.
        assert!(parse_exact_replies(&buf[..buf.len() - 3], &mut out).is_err());
        assert!(parse_exact_replies(&buf[..10], &mut out).is_err());
    }

    #[test]
    fn parses_v4_v6_mapped_and_old_kernels() {
        let mut buf = diag_msg(
            2,
            1,
            &[127, 0, 0, 1],
            50000,
            &[127, 0, 0, 1],
            8080,
            42,
            Some(&tcp_info(280, 1001, 2000)),
        );
        let mut mapped = [0u8; 16];
        mapped[10] = 0xff;
        mapped[11] = 0xff;
        mapped[12..].copy_from_slice(&[192, 0, 2, 1]);
        buf.extend(diag_msg(
            10,
            6,
            &mapped,
            443,
            &[0x20, 1, 0x0d, 0xb8],
            1234,
            0,
            None,
        ));
        // A 4.0-era kernel: tcp_info stops before the byte counters.
        buf.extend(diag_msg(
            2,
            1,
            &[10, 0, 0, 1],
            1,
            &[10, 0, 0, 2],
            2,
            7,
            Some(&tcp_info(104, 5, 5)),
        ));
        buf.extend(nlmsg(NLMSG_DONE, &[0, 0, 0, 0]));
        let part = parse_dump(&buf).unwrap();
        assert!(part.done);
        let s = &part.sockets;
        assert_eq!(s.len(), 3);
        assert_eq!(
            (s[0].local_port, s[0].remote_port, s[0].inode),
            (50000, 8080, 42)
        );
        assert_eq!(
            (s[0].bytes_acked, s[0].bytes_received),
            (Some(1001), Some(2000))
        );
        assert_eq!(
            s[1].local,
            "192.0.2.1".parse::<IpAddr>().unwrap(),
            "v4-mapped shown as v4"
        );
        assert_eq!(s[1].remote, "2001:db8::".parse::<IpAddr>().unwrap());
        assert_eq!((s[1].state, s[1].inode, s[1].bytes_acked), (6, 0, None));
        assert_eq!((s[2].bytes_acked, s[2].bytes_received), (None, None));
    }

    #[test]
    fn truncated_and_corrupt_buffers_are_errors() {
        let good = diag_msg(
            2,
            1,
            &[127, 0, 0, 1],
            1,
            &[127, 0, 0, 1],
            2,
            3,
            Some(&tcp_info(232, 1, 1)),
        );
        for cut in [1, 15, 17, 40, good.len() - 1] {
            assert!(parse_dump(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut lying = good.clone();
        lying[0..4].copy_from_slice(&10_000u32.to_ne_bytes());
        assert!(parse_dump(&lying).is_err());
        let mut zero = good.clone();
        zero[0..4].copy_from_slice(&0u32.to_ne_bytes());
        assert!(
            parse_dump(&zero).is_err(),
            "a zero length must not loop forever"
        );
        let mut bad_attr = good.clone();
        let attr = 16 + 72;
        bad_attr[attr..attr + 2].copy_from_slice(&2u16.to_ne_bytes());
        assert!(parse_dump(&bad_attr).is_err());
        let mut bad_family = good;
        bad_family[16] = 99;
        assert!(parse_dump(&bad_family).unwrap_err().contains("family"));
        let err = parse_dump(&nlmsg(NLMSG_ERROR, &(-13i32).to_ne_bytes())).unwrap_err();
        assert!(err.contains("denied"), "{err}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn descriptor_links_name_socket_inodes_and_nothing_else() {
        use super::collector::socket_inode;
        assert_eq!(socket_inode(b"socket:[123456]"), Some(123456));
        for other in [
            &b"pipe:[123]"[..],
            b"/dev/null",
            b"socket:[]",
            b"socket:[12",
            b"socket:[99999999999]",
            b"anon_inode:[eventfd]",
        ] {
            assert_eq!(socket_inode(other), None, "{other:?}");
        }
    }

    /// A connected loopback pair with `up` bytes sent by the client and `down` by the
    /// server, both read; the listener too.
    #[cfg(target_os = "linux")]
    fn exchanged(
        at: &str,
        up: usize,
        down: usize,
    ) -> std::io::Result<(
        std::net::TcpListener,
        std::net::TcpStream,
        std::net::TcpStream,
    )> {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind(at)?;
        let mut client = std::net::TcpStream::connect(listener.local_addr()?)?;
        let (mut server, _) = listener.accept()?;
        client.write_all(&vec![1u8; up])?;
        server.read_exact(&mut vec![0u8; up])?;
        server.write_all(&vec![2u8; down])?;
        client.read_exact(&mut vec![0u8; down])?;
        Ok((listener, client, server))
    }

    #[cfg(target_os = "linux")]
    fn find_socket(
        socks: &[DiagSocket],
        local: std::net::SocketAddr,
        remote: std::net::SocketAddr,
    ) -> Option<&DiagSocket> {
        socks.iter().find(|s| {
            (s.local, s.local_port, s.remote, s.remote_port)
                == (local.ip(), local.port(), remote.ip(), remote.port())
        })
    }

    /// The compatibility request dumps TCP of both families in one go, each socket as the
    /// per-family requests report it: family, addresses, ports, inode, state, and the byte
    /// counters (tcpi_bytes_acked counts the connecting side's SYN).
    #[cfg(target_os = "linux")]
    #[test]
    fn one_compat_dump_holds_both_families_as_the_per_family_dumps_do() {
        use super::collector::dump;
        use std::os::fd::AsRawFd;
        let v4 = exchanged("127.0.0.1:0", 1000, 300).unwrap();
        let v6 = match exchanged("[::1]:0", 2000, 600) {
            Ok(c) => c,
            Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
                log::warn!("skipped: no IPv6 loopback here ({e})");
                return;
            }
            Err(e) => panic!("CI has IPv6 loopback: {e}"),
        };
        let inode = |s: &std::net::TcpStream| {
            // SAFETY: fstat on an open descriptor into a zeroed struct.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            assert_eq!(unsafe { libc::fstat(s.as_raw_fd(), &mut st) }, 0);
            st.st_ino as u32
        };
        let want = |(l, c, s): &(
            std::net::TcpListener,
            std::net::TcpStream,
            std::net::TcpStream,
        ),
                    family: u8,
                    up: u64,
                    down: u64| {
            let (ca, sa) = (c.local_addr().unwrap(), s.local_addr().unwrap());
            [
                // The connecting side's tcpi_bytes_acked counts its SYN.
                (ca, sa, family, 1, inode(c), up + 1, down),
                (sa, ca, family, 1, inode(s), down, up),
                (
                    l.local_addr().unwrap(),
                    "0.0.0.0:0".parse().unwrap(),
                    family,
                    10,
                    0,
                    0,
                    0,
                ),
            ]
        };
        let expected: Vec<_> = want(&v4, 2, 1000, 300)
            .into_iter()
            .chain(want(&v6, 10, 2000, 600))
            .collect();
        // ACKs of the last bytes may still be in flight on the first try.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let compat = dump(&tcp_compat_dump_request(1)).expect("compat TCP dump");
            let mut per_family = dump(&dump_request(2, 6, 2)).unwrap();
            per_family.extend(dump(&dump_request(10, 6, 3)).unwrap());
            let mut mismatch = None;
            for &(local, remote, family, state, ino, acked, received) in &expected {
                let listener = state == 10;
                let find = |socks: &[DiagSocket]| {
                    if listener {
                        socks
                            .iter()
                            .find(|s| {
                                s.state == 10
                                    && s.local == local.ip()
                                    && s.local_port == local.port()
                            })
                            .copied()
                    } else {
                        find_socket(socks, local, remote).copied()
                    }
                };
                let (Some(c), Some(p)) = (find(&compat), find(&per_family)) else {
                    panic!("{local} -> {remote} missing from a dump");
                };
                assert_eq!(c.family, family, "{local}");
                assert_eq!(c.state, state, "{local}");
                if !listener {
                    assert_eq!(c.inode, ino, "{local}");
                    if (c.bytes_acked, c.bytes_received) != (Some(acked), Some(received)) || c != p
                    {
                        mismatch = Some(format!(
                            "{local}: compat {c:?} per-family {p:?}, want acked {acked} received {received}"
                        ));
                    }
                }
            }
            match mismatch {
                None => break,
                Some(m) if std::time::Instant::now() > deadline => panic!("{m}"),
                Some(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
            }
        }
        drop((v4, v6));
    }

    /// A socket that is only bound is not a flow and not asked for (the kernel would walk
    /// its whole bind hash for it); a listener and a TIME_WAIT socket still are.
    #[cfg(target_os = "linux")]
    #[test]
    fn bound_only_sockets_are_left_out_listeners_and_time_wait_kept() {
        use super::collector::dump;
        // SAFETY: plain socket/bind/getsockname on our own descriptor, closed at the end.
        let (fd, port) = unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            assert!(fd >= 0);
            let mut a: libc::sockaddr_in = std::mem::zeroed();
            a.sin_family = libc::AF_INET as libc::sa_family_t;
            a.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
            let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            assert_eq!(
                libc::bind(fd, (&a as *const libc::sockaddr_in).cast(), len),
                0
            );
            let mut got: libc::sockaddr_in = std::mem::zeroed();
            let mut glen = len;
            assert_eq!(
                libc::getsockname(fd, (&mut got as *mut libc::sockaddr_in).cast(), &mut glen),
                0
            );
            (fd, u16::from_be(got.sin_port))
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let (ca, sa) = (client.local_addr().unwrap(), server.local_addr().unwrap());
        // The side that closes first waits in TIME_WAIT.
        drop(client);
        drop(server);
        let local = |socks: &[DiagSocket], port: u16| {
            socks
                .iter()
                .filter(|s| s.local_port == port)
                .map(|s| s.state)
                .collect::<Vec<_>>()
        };
        // Every state, bound-inactive included: what the request used to ask for.
        let mut all = dump_request(2, 6, 1);
        all[20..24].copy_from_slice(&u32::MAX.to_ne_bytes());
        let everything = dump(&all).unwrap();
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        let mut v = release
            .split(['.', '-'])
            .map(|n| n.parse::<u32>().unwrap_or(0));
        if (v.next().unwrap_or(0), v.next().unwrap_or(0)) >= (6, 6) {
            assert_eq!(
                local(&everything, port),
                vec![7],
                "Linux ≥ 6.6 reports a bound socket as CLOSE under bound-inactive"
            );
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        for req in [tcp_compat_dump_request(2), dump_request(2, 6, 3)] {
            loop {
                let socks = dump(&req).unwrap();
                assert_eq!(
                    local(&socks, port),
                    Vec::<u8>::new(),
                    "bound only: left out"
                );
                let l = local(&socks, listener.local_addr().unwrap().port());
                assert!(l.contains(&10), "listener kept: {l:?}");
                let tw = find_socket(&socks, ca, sa).map(|s| (s.state, s.inode));
                if tw == Some((6, 0)) {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the closed client is in TIME_WAIT: {tw:?}"
                );
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        // SAFETY: our descriptor, closed once.
        unsafe { libc::close(fd) };
    }

    /// The collector's sample: TCP of both families and UDP, each with this process as owner,
    /// A connection the kernel events attributed is not looked for in every process's
    /// descriptors (its pid comes from the events); others are, once.
    #[cfg(target_os = "linux")]
    #[test]
    fn connections_the_events_attributed_cost_no_descriptor_scan() {
        let sock = |inode: u32, port: u16| DiagSocket {
            family: 2,
            state: 1,
            local: "10.0.0.1".parse().unwrap(),
            local_port: port,
            remote: "192.0.2.1".parse().unwrap(),
            remote_port: 443,
            uid: 0,
            inode,
            bytes_acked: None,
            bytes_received: None,
            bytes_sent: None,
            bytes_retrans: None,
        };
        let listener = |inode: u32| DiagSocket {
            state: super::TCP_LISTEN,
            remote: "0.0.0.0".parse().unwrap(),
            remote_port: 0,
            ..sock(inode, 8080)
        };
        let unconnected = |inode: u32| DiagSocket {
            state: 7,
            remote: "0.0.0.0".parse().unwrap(),
            remote_port: 0,
            ..sock(inode, 5353)
        };
        let raw = vec![
            (true, sock(11, 50001)),  // attributed by the events
            (true, sock(12, 50002)),  // unknown
            (false, sock(13, 50001)), // UDP: the events never attribute it
            (true, sock(14, 50003)),  // owner known
            (true, sock(15, 50004)),  // scanned for in vain before
            (true, sock(0, 50005)),   // TIME_WAIT: no inode
            (true, listener(16)),     // no flow: its owner is never needed
            (false, unconnected(17)), // no flow either
        ];
        let owner = [None, None, None, Some(7), None, None, None, None];
        let ownerless: std::collections::HashSet<u32, foldhash::fast::RandomState> =
            [15].into_iter().collect();
        let events = |t: crate::facts::FlowTuple| t.2 == 50001;
        let mut want: Vec<u32> = super::collector::to_scan_for(&raw, &owner, &ownerless, &events)
            .into_iter()
            .collect();
        want.sort_unstable();
        assert_eq!(want, vec![12, 13]);
        let none = |_: crate::facts::FlowTuple| false;
        assert_eq!(
            super::collector::to_scan_for(&raw, &owner, &ownerless, &none).len(),
            3
        );
    }

    /// whether TCP comes in one request or per family (the fallback).
    #[cfg(target_os = "linux")]
    #[test]
    fn a_sample_holds_tcp_and_udp_of_both_families_owned_by_this_process() {
        // Connected UDP sockets: an unconnected one is no flow, and its owner is not sought.
        let udp = |at: &str, peer: &str| -> std::io::Result<std::net::UdpSocket> {
            let u = std::net::UdpSocket::bind(at)?;
            u.connect(peer)?;
            Ok(u)
        };
        let v4 = exchanged("127.0.0.1:0", 10, 10).unwrap();
        let udp4 = udp("127.0.0.1:0", "127.0.0.1:9").unwrap();
        let six = exchanged("[::1]:0", 10, 10).and_then(|t| Ok((t, udp("[::1]:0", "[::1]:9")?)));
        let six = match six {
            Ok(s) => Some(s),
            Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
                log::warn!("IPv6 part skipped: no IPv6 loopback here ({e})");
                None
            }
            Err(e) => panic!("CI has IPv6 loopback: {e}"),
        };
        let me = std::process::id() as i64;
        let mut c = super::collector::Collector::default();
        let mut per_family = super::collector::Collector::per_family();
        for round in 0..4 {
            let c = if round < 2 { &mut c } else { &mut per_family };
            let sample = c.sample().unwrap();
            let has = |protocol: &str, a: std::net::SocketAddr| {
                sample.iter().any(|s| {
                    s.protocol == protocol
                        && s.local == a.ip()
                        && s.local_port == a.port()
                        && s.pid == Some(me)
                })
            };
            assert!(has("tcp", v4.1.local_addr().unwrap()), "round {round}");
            assert!(has("udp", udp4.local_addr().unwrap()), "round {round}");
            if let Some((t, u)) = &six {
                assert!(has("tcp", t.1.local_addr().unwrap()), "round {round}");
                assert!(has("udp", u.local_addr().unwrap()), "round {round}");
            }
            let (ca, sa) = (v4.1.local_addr().unwrap(), v4.2.local_addr().unwrap());
            let n = sample
                .iter()
                .filter(|s| {
                    (s.protocol, s.local, s.local_port, s.remote, s.remote_port)
                        == ("tcp", ca.ip(), ca.port(), sa.ip(), sa.port())
                })
                .count();
            assert_eq!(n, 1, "each socket once, whichever way TCP was dumped");
        }
        assert!(c.tcp_path().is_some(), "the TCP path was decided");
        assert_eq!(per_family.tcp_path(), Some(false));
    }

    /// The newest holder wins, and sockets not in the dump are not kept.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_shared_socket_goes_to_its_newest_holder() {
        use super::collector::newest_holder;
        let present = [1u32, 2].into_iter().collect();
        let mut found = Default::default();
        for (inode, pid) in [(1, 300), (1, 900), (1, 500), (2, 40), (3, 7)] {
            newest_holder(&mut found, &present, inode, pid);
        }
        let mut found: Vec<_> = found.into_iter().collect();
        found.sort();
        assert_eq!(found, [(1, 900), (2, 40)]);
    }

    /// A full sample as root: a connection this process holds and one only a child holds
    /// get their owners from the kernel's descriptor walk, and status has nothing to say.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_full_sample_owns_each_connection_by_its_holder() {
        use std::os::fd::OwnedFd;
        let ci = std::env::var("CI").as_deref() == Ok("true");
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            assert!(
                !ci,
                "CI runs as root: the descriptor iterator must be tested"
            );
            return;
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mine = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .stdin(OwnedFd::from(accepted))
            .spawn()
            .unwrap();
        let (me, them) = (i64::from(std::process::id()), i64::from(child.id()));
        let (port, server_port) = (
            mine.local_addr().unwrap().port(),
            listener.local_addr().unwrap().port(),
        );
        let mut c = super::collector::Collector::default();
        let owner_of = |samples: &[crate::platform::SocketSample], local: u16| {
            samples
                .iter()
                .find(|s| s.protocol == "tcp" && s.local_port == local && s.remote_port != 0)
                .and_then(|s| s.pid)
        };
        // Our copy of the accepted socket is gone once the child has exec'd.
        let started = std::time::Instant::now();
        let samples = loop {
            let samples = c.sample().unwrap();
            if owner_of(&samples, server_port) == Some(them) || started.elapsed().as_secs() >= 5 {
                break samples;
            }
            c = super::collector::Collector::default();
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(owner_of(&samples, port), Some(me));
        assert_eq!(owner_of(&samples, server_port), Some(them));
        let fallback = c.owner_fallback();
        assert!(!ci || fallback.is_none(), "{fallback:?}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn every_socket_this_process_holds_is_owned_by_it() {
        use std::os::fd::AsRawFd;
        let listeners: Vec<std::net::TcpListener> = (0..3)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let owners = super::collector::socket_owners();
        for l in &listeners {
            // SAFETY: fstat on an open descriptor into a zeroed struct.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            assert_eq!(unsafe { libc::fstat(l.as_raw_fd(), &mut st) }, 0);
            assert_eq!(
                owners.get(&(st.st_ino as u32)),
                Some(&(std::process::id() as i64)),
                "inode {}",
                st.st_ino
            );
        }
    }
}

/// Sockets from `NETLINK_SOCK_DIAG` (TCP with `tcp_info` byte counters, UDP without), owners
/// from `/proc/<pid>/fd`.
#[cfg(target_os = "linux")]
pub mod collector {
    use std::collections::HashMap;

    use super::{
        dump_request, exact_request, parse_dump_each, parse_exact_replies, tcp_compat_dump_request,
        tcp_state_name, DiagSocket, ExactReplies,
    };

    type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
    type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
    use crate::platform::SocketSample;

    struct Netlink(libc::c_int);

    impl Drop for Netlink {
        fn drop(&mut self) {
            // SAFETY: we own the descriptor.
            unsafe { libc::close(self.0) };
        }
    }

    /// A sock_diag netlink socket whose receives time out rather than hang.
    fn open_diag() -> Result<Netlink, String> {
        // SAFETY: plain socket(2); the fd is closed by Netlink's Drop.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_SOCK_DIAG,
            )
        };
        if fd < 0 {
            return Err(format!(
                "netlink socket: {}",
                std::io::Error::last_os_error()
            ));
        }
        let sock = Netlink(fd);
        let timeout = libc::timeval {
            tv_sec: 2,
            tv_usec: 0,
        };
        // SAFETY: valid fd and option buffer.
        unsafe {
            libc::setsockopt(
                sock.0,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        Ok(sock)
    }

    /// Sends netlink request bytes (one message or several) to the kernel.
    fn send_to_kernel(sock: &Netlink, req: &[u8]) -> Result<(), String> {
        // SAFETY: sockaddr_nl is plain data; zeroed then family set addresses the kernel.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: buffers and lengths are valid.
        let sent = unsafe {
            libc::sendto(
                sock.0,
                req.as_ptr().cast(),
                req.len(),
                0,
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(format!(
                "sock_diag request: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(())
    }

    /// Sends one dump request and hands every socket of the reply to `each`.
    fn dump_on(
        sock: &Netlink,
        req: &[u8],
        buf: &mut Vec<u8>,
        mut each: impl FnMut(DiagSocket),
    ) -> Result<(), String> {
        send_to_kernel(sock, req)?;
        // The kernel fills at most 32 KiB per read of a dump (netlink_recvmsg caps
        // max_recvmsg_len); twice that never truncates.
        buf.resize(64 * 1024, 0);
        // Bounded: a dump that never ends is an error, not a hang.
        for _ in 0..100_000 {
            // SAFETY: buf is valid for its length.
            let n = unsafe { libc::recv(sock.0, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(format!(
                    "sock_diag receive: {}",
                    std::io::Error::last_os_error()
                ));
            }
            if n == 0 {
                break;
            }
            if parse_dump_each(&buf[..n as usize], &mut each)? {
                return Ok(());
            }
        }
        Err("sock_diag dump did not end".into())
    }

    /// One dump request on a socket of its own (tests, benchmarks).
    pub fn dump(req: &[u8]) -> Result<Vec<DiagSocket>, String> {
        let mut out = Vec::new();
        dump_on(&open_diag()?, req, &mut Vec::new(), |s| out.push(s))?;
        Ok(out)
    }

    /// inode → pid, from every `/proc/<pid>/fd/*` that reads `socket:[inode]`.
    pub fn socket_owners() -> FastMap<u32, i64> {
        let mut owners = FastMap::default();
        owners_of(&mut owners, None);
        owners
    }

    /// (inode, pid) of every socket descriptor of these processes, from `/proc/<pid>/fd`.
    #[cfg(test)]
    pub(crate) fn socket_owners_of_pids(pids: &[i64]) -> Vec<(u32, i64)> {
        let mut out = Vec::new();
        for &pid in pids {
            for_each_socket_fd(pid, |inode| out.push((inode, pid)));
        }
        out
    }

    /// Adds to `owners` the pid of each socket inode found in `/proc/*/fd`, newest process
    /// first, stopping once every inode in `wanted` is found (all of them when `None`): a
    /// socket that appeared since the last scan most likely belongs to a recent process, and
    /// the scan is the costliest part of a sample on a host of thousands of processes.
    fn owners_of(owners: &mut FastMap<u32, i64>, wanted: Option<&FastSet<u32>>) {
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return;
        };
        let mut pids: Vec<i64> = procs
            .flatten()
            .filter_map(|p| p.file_name().to_str().and_then(|s| s.parse().ok()))
            .collect();
        pids.sort_unstable_by(|a, b| b.cmp(a));
        let mut missing = wanted.map(FastSet::len);
        for pid in pids {
            for_each_socket_fd(pid, |inode| {
                if let (Some(w), Some(n)) = (wanted, missing.as_mut()) {
                    if w.contains(&inode) && !owners.contains_key(&inode) {
                        *n -= 1;
                    }
                }
                owners.entry(inode).or_insert(pid);
            });
            if missing == Some(0) {
                return;
            }
        }
    }

    /// The socket inode behind each of `pid`'s descriptors. Each link is read relative to the
    /// open `fd` directory into a stack buffer: on a host of tens of thousands of sockets
    /// this walk is most of a sample, and a full path per link would be looked up from `/`.
    fn for_each_socket_fd(pid: i64, mut found: impl FnMut(u32)) {
        let Ok(dir_path) = std::ffi::CString::new(format!("/proc/{pid}/fd")) else {
            return;
        };
        // SAFETY: a NUL-terminated path; the result is checked.
        let fd = unsafe {
            libc::open(
                dir_path.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return;
        }
        // SAFETY: fd is an open directory; on success the DIR owns it (closedir closes it).
        let dir = unsafe { libc::fdopendir(fd) };
        if dir.is_null() {
            // SAFETY: fdopendir failed, so fd is still ours.
            unsafe { libc::close(fd) };
            return;
        }
        let mut target = [0u8; 64];
        loop {
            // SAFETY: dir is a valid DIR until closedir below.
            let entry = unsafe { libc::readdir(dir) };
            if entry.is_null() {
                break;
            }
            // SAFETY: readdir returned a valid dirent whose d_name is NUL-terminated.
            let name = unsafe { (*entry).d_name.as_ptr() };
            // SAFETY: valid dirfd, NUL-terminated name, buffer of the given length.
            let n = unsafe { libc::readlinkat(fd, name, target.as_mut_ptr().cast(), target.len()) };
            if n <= 0 {
                continue; // "." and "..", or a descriptor closed meanwhile
            }
            if let Some(inode) = socket_inode(&target[..n as usize]) {
                found(inode);
            }
        }
        // SAFETY: dir came from fdopendir and is closed once.
        unsafe { libc::closedir(dir) };
    }

    /// The inode of a descriptor link that reads `socket:[inode]`.
    pub(crate) fn socket_inode(link: &[u8]) -> Option<u32> {
        std::str::from_utf8(link.strip_prefix(b"socket:[")?.strip_suffix(b"]")?)
            .ok()?
            .parse()
            .ok()
    }

    /// Keeps the inode → pid map between samples; rescans only when an inode never seen
    /// before appears. An inode a scan found no owner for (a socket of another pid namespace,
    /// one being torn down) is remembered as ownerless until it leaves the dump, so it does
    /// not cost a full `/proc/*/fd` walk on every sample. The netlink socket and buffers are
    /// kept between samples too (the kernel sizes a dump's chunks by the largest read seen
    /// on the socket).
    #[derive(Default)]
    pub struct Collector {
        owners: FastMap<u32, i64>,
        ownerless: FastSet<u32>,
        seq: u32,
        warning: Option<String>,
        netlink: Option<Netlink>,
        buf: Vec<u8>,
        /// This sample's sockets, TCP or not.
        raw: Vec<(bool, DiagSocket)>,
        /// Whether the one-request TCP dump of both families works on this kernel: `None`
        /// until tried; after a first failure TCP is dumped per family, as UDP always is.
        tcp_compat: Option<bool>,
        /// The BPF descriptor iterator, once tried.
        owner_iter: OwnerIter,
    }

    /// Where socket owners come from: the kernel's descriptor tables through a BPF iterator
    /// where it loads (one walk inside the kernel), else every `/proc/<pid>/fd` link.
    #[derive(Default)]
    enum OwnerIter {
        #[default]
        Untried,
        /// With the number of scans in a row that failed (each falls back for its sample).
        Ready(crate::platform::linux::fd_iter::SocketOwnerIter, u32),
        /// Why not: said once in the log and in `launchwatch_status.sources`.
        Unavailable(String),
    }

    impl Collector {
        pub fn take_warning(&mut self) -> Option<String> {
            self.warning.take()
        }

        /// A collector that dumps TCP per family, as on a kernel without the compatibility
        /// request.
        #[cfg(test)]
        pub(crate) fn per_family() -> Self {
            Collector {
                tcp_compat: Some(false),
                ..Default::default()
            }
        }

        /// Whether TCP is dumped in one request for both families (`Some(true)`), per
        /// family (`Some(false)`), or not decided yet.
        pub fn tcp_path(&self) -> Option<bool> {
            self.tcp_compat
        }

        /// Runs one dump into `raw`. On failure what it added is taken back and the netlink
        /// socket closed (a fresh one next time: no half-read dump is left in it).
        fn dump_into(&mut self, req: &[u8], tcp: bool) -> Result<(), String> {
            self.read_into(tcp, |netlink, buf, each| dump_on(netlink, req, buf, each))
        }

        /// Runs one read on the kept netlink socket, its sockets into `raw`, with
        /// [`Collector::dump_into`]'s clean-up on failure.
        fn read_into(
            &mut self,
            tcp: bool,
            read: impl FnOnce(&Netlink, &mut Vec<u8>, &mut dyn FnMut(DiagSocket)) -> Result<(), String>,
        ) -> Result<(), String> {
            let kept = self.raw.len();
            let netlink = match self.netlink.take() {
                Some(n) => n,
                None => open_diag()?,
            };
            let raw = &mut self.raw;
            match read(&netlink, &mut self.buf, &mut |s| raw.push((tcp, s))) {
                Ok(()) => {
                    self.netlink = Some(netlink);
                    Ok(())
                }
                Err(e) => {
                    self.raw.truncate(kept);
                    Err(e)
                }
            }
        }

        fn next_seq(&mut self) -> u32 {
            self.seq = self.seq.wrapping_add(1);
            self.seq
        }

        /// Reads the given TCP connections one by one (batched requests, no dump) and every
        /// UDP socket: what a socket tick between full scans costs when only a few
        /// connections can have moved. Each asked-for connection costs about ten times what
        /// one socket of a dump costs (measured here: ~15 µs against ~1.3 µs), so the caller
        /// asks only for a few. An IPv4 tuple is also asked as IPv4-mapped IPv6 (a
        /// dual-stack socket); the one that does not exist answers "no such socket".
        /// Owners come from the inode map of the last full sample (a connection opened
        /// since is attributed by the kernel events).
        pub fn sample_connections(
            &mut self,
            tcp: &[crate::facts::FlowTuple],
        ) -> Result<Vec<SocketSample>, String> {
            self.raw.clear();
            let mut results = Vec::with_capacity(3);
            for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
                let seq = self.next_seq();
                results.push(
                    self.dump_into(&dump_request(family, libc::IPPROTO_UDP as u8, seq), false),
                );
            }
            let batches = exact_batches(tcp, &mut self.seq);
            results.push(self.read_into(true, |netlink, buf, each| {
                exact_on(netlink, &batches, buf, each)
            }));
            self.keep_what_was_read(results)?;
            Ok(self
                .raw
                .iter()
                .map(|&(tcp, s)| self.socket_sample(tcp, s))
                .collect())
        }

        /// One protocol or family failing does not discard the others (its error waits in
        /// take_warning); only all failing is an error.
        fn keep_what_was_read(&mut self, results: Vec<Result<(), String>>) -> Result<(), String> {
            let read_any = results.iter().any(Result::is_ok);
            let errors: Vec<String> = results.into_iter().filter_map(Result::err).collect();
            let warning = (!errors.is_empty()).then(|| errors.join("; "));
            if !read_any {
                return Err(warning.unwrap_or_else(|| "nothing to read".into()));
            }
            self.warning = warning;
            Ok(())
        }

        pub fn sample(&mut self) -> Result<Vec<SocketSample>, String> {
            self.sample_with(&|_| false)
        }

        /// A full sample; `attributed` says which TCP connections the kernel events already
        /// know the owner of (their pid then comes from the events): those never cost a scan
        /// of every process's descriptors, which a host opening connections all the time
        /// would otherwise pay at every full sample.
        pub fn sample_with(
            &mut self,
            attributed: &dyn Fn(crate::facts::FlowTuple) -> bool,
        ) -> Result<Vec<SocketSample>, String> {
            self.raw.clear();
            let mut results = Vec::with_capacity(4);
            let mut dumps: Vec<(u8, u8)> = Vec::with_capacity(4);
            let (v4, v6) = (libc::AF_INET as u8, libc::AF_INET6 as u8);
            let (tcp, udp) = (libc::IPPROTO_TCP as u8, libc::IPPROTO_UDP as u8);
            // TCP in one request for both families where the kernel takes it: the hash
            // tables are walked once, not once per family (each walk visits every socket of
            // both). Measured (bench `collectors`, Linux 6.18 arm64, 2 vCPUs, 20,000 idle
            // loopback IPv4 sockets): 18.8-19.5 ms of CPU per TCP dump against 20.4-20.7 ms
            // for the two per-family requests (23.1-23.5 ms when they also asked for
            // bound-inactive sockets, as before).
            if self.tcp_compat != Some(false) {
                let seq = self.next_seq();
                match self.dump_into(&tcp_compat_dump_request(seq), true) {
                    Ok(()) => {
                        self.tcp_compat = Some(true);
                        results.push(Ok(()));
                    }
                    // Not an error of the sample: TCP is read per family instead.
                    Err(e) => {
                        if self.tcp_compat.is_none() {
                            log::info!("sock_diag: TCP dumped per family ({e})");
                            self.tcp_compat = Some(false);
                        }
                        dumps.extend([(v4, tcp), (v6, tcp)]);
                    }
                }
            } else {
                dumps.extend([(v4, tcp), (v6, tcp)]);
            }
            dumps.extend([(v4, udp), (v6, udp)]);
            for (family, protocol) in dumps {
                let seq = self.next_seq();
                results.push(self.dump_into(&dump_request(family, protocol, seq), protocol == tcp));
            }
            self.keep_what_was_read(results)?;
            // Each inode is looked up once: its owner, kept for the sample below.
            let owner: Vec<Option<i64>> = self
                .raw
                .iter()
                .map(|(_, s)| {
                    (s.inode != 0)
                        .then(|| self.owners.get(&s.inode).copied())
                        .flatten()
                })
                .collect();
            let unknown = to_scan_for(&self.raw, &owner, &self.ownerless, attributed);
            let mut owner = owner;
            if !unknown.is_empty() {
                // Owners of sockets gone from the dump go (an inode number can come back);
                // the scan adds the new ones.
                let present: FastSet<u32> = self.raw.iter().map(|(_, s)| s.inode).collect();
                self.owners.retain(|i, _| present.contains(i));
                self.find_owners(&unknown, &present);
                self.ownerless.clear();
                owner.clear();
                for (_, s) in &self.raw {
                    let pid = (s.inode != 0)
                        .then(|| self.owners.get(&s.inode).copied())
                        .flatten();
                    if s.inode != 0 && pid.is_none() {
                        self.ownerless.insert(s.inode);
                    }
                    owner.push(pid);
                }
            } else if !self.ownerless.is_empty() {
                // Forget ownerless inodes that left the dump: an inode number can come back.
                let present: FastSet<u32> = self.raw.iter().map(|(_, s)| s.inode).collect();
                self.ownerless.retain(|i| present.contains(i));
            }
            Ok(self
                .raw
                .iter()
                .zip(owner)
                .map(|(&(tcp, s), pid)| socket_sample_of(tcp, s, pid))
                .collect())
        }

        /// Adds the owners of the `wanted` inodes (and of any other socket in `present` the
        /// walk meets on the way). Through the BPF iterator every socket descriptor on the
        /// host comes back at once, costing about what reading a few hundred `/proc` links
        /// does; a socket several processes hold goes to the newest (highest pid), as the
        /// `/proc` walk, newest first, gives it.
        fn find_owners(&mut self, wanted: &FastSet<u32>, present: &FastSet<u32>) {
            if matches!(self.owner_iter, OwnerIter::Untried) {
                self.owner_iter = match crate::platform::linux::fd_iter::SocketOwnerIter::load() {
                    Ok(it) => OwnerIter::Ready(it, 0),
                    Err(e) => {
                        log::info!("sock_diag: socket owners from /proc/<pid>/fd ({e})");
                        OwnerIter::Unavailable(e)
                    }
                };
            }
            if let OwnerIter::Ready(it, failures) = &mut self.owner_iter {
                let mut found: FastMap<u32, i64> = FastMap::default();
                let scanned = it.scan(|inode, pid| newest_holder(&mut found, present, inode, pid));
                match scanned {
                    Ok(()) => {
                        *failures = 0;
                        for (inode, pid) in found {
                            self.owners.entry(inode).or_insert(pid);
                        }
                        return;
                    }
                    // Out of descriptors or memory for a moment: this sample walks /proc;
                    // after three failures in a row the iterator is given up.
                    Err(e) if *failures < 2 => {
                        *failures += 1;
                        log::info!("sock_diag: this sample's socket owners from /proc ({e})");
                    }
                    Err(e) => {
                        log::warn!(
                            "sock_diag: socket owners from /proc/<pid>/fd from now on ({e})"
                        );
                        self.owner_iter = OwnerIter::Unavailable(e);
                    }
                }
            }
            owners_of(&mut self.owners, Some(wanted));
        }

        /// Why socket owners come from `/proc/<pid>/fd` rather than the kernel's descriptor
        /// iterator (`None` while the iterator works or before it was needed).
        pub fn owner_fallback(&self) -> Option<String> {
            match &self.owner_iter {
                OwnerIter::Unavailable(why) => {
                    Some(format!("socket owners from /proc/<pid>/fd: {why}"))
                }
                _ => None,
            }
        }

        fn socket_sample(&self, tcp: bool, s: DiagSocket) -> SocketSample {
            let pid = (s.inode != 0)
                .then(|| self.owners.get(&s.inode).copied())
                .flatten();
            socket_sample_of(tcp, s, pid)
        }
    }

    /// Keeps, per socket in `present`, its holder with the highest pid: the newest process,
    /// which the `/proc` walk (newest first, first holder kept) gives it too.
    pub(crate) fn newest_holder(
        found: &mut FastMap<u32, i64>,
        present: &FastSet<u32>,
        inode: u32,
        pid: i64,
    ) {
        if present.contains(&inode) {
            let owner = found.entry(inode).or_insert(pid);
            *owner = (*owner).max(pid);
        }
    }

    /// The socket inodes a descriptor scan must look for: connections (a listener or an
    /// unconnected UDP socket is no flow, so its owner is never asked for) owned by no pid
    /// known yet, not already scanned for in vain, and not a TCP connection the kernel
    /// events attributed. Leaving the others out lets the scan, which walks the newest
    /// processes first, stop early: an old daemon's listener no longer sends it through
    /// every process on the host.
    pub(crate) fn to_scan_for(
        raw: &[(bool, DiagSocket)],
        owner: &[Option<i64>],
        ownerless: &FastSet<u32>,
        attributed: &dyn Fn(crate::facts::FlowTuple) -> bool,
    ) -> FastSet<u32> {
        raw.iter()
            .zip(owner)
            .filter(|((tcp, s), pid)| {
                s.inode != 0
                    && crate::platform::is_connection(
                        *tcp && s.state == super::TCP_LISTEN,
                        s.remote,
                        s.remote_port,
                    )
                    && pid.is_none()
                    && !ownerless.contains(&s.inode)
                    && !(*tcp
                        && attributed((
                            libc::IPPROTO_TCP as u8,
                            s.local,
                            s.local_port,
                            s.remote,
                            s.remote_port,
                        )))
            })
            .map(|((_, s), _)| s.inode)
            .collect()
    }

    fn socket_sample_of(tcp: bool, s: DiagSocket, pid: Option<i64>) -> SocketSample {
        SocketSample {
            protocol: if tcp { "tcp" } else { "udp" },
            local: s.local,
            local_port: s.local_port,
            remote: s.remote,
            remote_port: s.remote_port,
            // UDP "state" 7 (CLOSE) means unconnected, not closed: no TCP state for UDP.
            state: if tcp { tcp_state_name(s.state) } else { None },
            listening: tcp && s.state == super::TCP_LISTEN,
            pid,
            delegate_pid: None,
            socket_id: s.inode as u64,
            // tcpi_bytes_acked: the connecting side's SYN counts as one byte (the
            // accepting side's SYN-ACK does not), so it can exceed the payload by one.
            bytes_sent: s.bytes_acked.map(|b| b as i64),
            bytes_received: s.bytes_received.map(|b| b as i64),
        }
    }

    /// The exact requests for these TCP tuples, in sends of at most `BATCH` (bytes, count):
    /// each tuple as itself and, for IPv4, as IPv4-mapped IPv6.
    fn exact_batches(tuples: &[crate::facts::FlowTuple], seq: &mut u32) -> Vec<(Vec<u8>, usize)> {
        // Requests per send: their replies (~400 bytes each) must fit the default receive
        // buffer, or the kernel drops them.
        const BATCH: usize = 128;
        let mut requests = Vec::new();
        for &(proto, local, local_port, remote, remote_port) in tuples {
            if proto != libc::IPPROTO_TCP as u8 {
                continue;
            }
            let tuple = (local, local_port, remote, remote_port);
            if local.is_ipv4() {
                requests.push((libc::AF_INET as u8, tuple));
            }
            requests.push((libc::AF_INET6 as u8, tuple));
        }
        requests
            .chunks(BATCH)
            .map(|batch| {
                let mut bytes = Vec::with_capacity(batch.len() * 72);
                for &(family, tuple) in batch {
                    *seq = seq.wrapping_add(1);
                    bytes.extend(exact_request(family, libc::IPPROTO_TCP as u8, tuple, *seq));
                }
                (bytes, batch.len())
            })
            .collect()
    }

    /// Sends each batch of exact requests and hands every socket found to `each`; a
    /// connection that closed meanwhile is skipped, another error fails the read only when
    /// nothing was found.
    fn exact_on(
        sock: &Netlink,
        batches: &[(Vec<u8>, usize)],
        buf: &mut Vec<u8>,
        each: &mut dyn FnMut(DiagSocket),
    ) -> Result<(), String> {
        buf.resize(64 * 1024, 0);
        let mut replies = ExactReplies::default();
        let mut found = 0;
        for (bytes, count) in batches {
            send_to_kernel(sock, bytes)?;
            let want = replies.answered + count;
            while replies.answered < want {
                // SAFETY: buf is valid for its length.
                let n = unsafe { libc::recv(sock.0, buf.as_mut_ptr().cast(), buf.len(), 0) };
                if n <= 0 {
                    return Err(format!(
                        "sock_diag receive: {}",
                        std::io::Error::last_os_error()
                    ));
                }
                parse_exact_replies(&buf[..n as usize], &mut replies)?;
                found += replies.sockets.len();
                replies.sockets.drain(..).for_each(&mut *each);
            }
        }
        match replies.error {
            Some(e) if found == 0 => Err(e),
            _ => Ok(()),
        }
    }
}
